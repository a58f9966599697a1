//! What the benches share beyond the tests' `common`: Envoy configurations
//! with another filter in certgate's place, many distinct clients, and
//! Envoy's memory figures.

use std::path::PathBuf;

use certgate_pki::keys::{KeyKind, Passphrase};
use certgate_pki::ops::{self, LeafSpec};
use certgate_pki::profile::{Sans, Subject, Validity};
use certgate_pki::store::Home;

use crate::common::envoy::{admin_get, certgate_block, Envoy};
use crate::common::repo;

/// Replaces the certgate filter block of required-mtls.yaml, and drops its
/// access log.
pub fn with_filter(yaml: &str, filter: &str) -> String {
    let at = certgate_block(yaml);
    let yaml = format!("{}{}{}", &yaml[..at.start], filter, &yaml[at.end..]);
    let log = yaml.find("          access_log:").unwrap();
    let log_end = yaml.find("          forward_client_cert_details").unwrap();
    format!("{}{}", &yaml[..log], &yaml[log_end..])
}

/// Envoy's native RBAC admitting alice's URI SAN, for [`with_filter`]: what
/// Envoy does with no extension at all.
pub const RBAC_FILTER: &str = r#"          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  alice:
                    permissions: [{ any: true }]
                    principals: [{ authenticated: { principal_name: { exact: "spiffe://example.org/ns/default/sa/alice" } } }]
"#;

/// A proxy-wasm filter block (V8, `fail_open: false`) for [`with_filter`].
pub fn wasm_filter(path: &str, config: &str) -> String {
    format!(
        r#"          - name: wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: wasm
                fail_open: false
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {path} }} }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{config}'
"#
    )
}

/// Anonymous memory backed by transparent huge pages (`AnonHugePages`
/// of `smaps_rollup`), KiB; 0 if unreadable.
pub fn huge_pages_kib(envoy: &Envoy) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/smaps_rollup", envoy.pid()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("AnonHugePages:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Envoy's allocator figures from the admin `/memory` endpoint (bytes):
/// `allocated`, `heap_size`, `pageheap_free`, `pageheap_unmapped`,
/// `total_thread_cache`, ...; empty if unreadable.
pub fn allocator(envoy: &Envoy) -> std::collections::BTreeMap<String, u64> {
    let json = admin_get(envoy.admin, "/memory").unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    value
        .as_object()
        .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.parse().ok()?))).collect())
        .unwrap_or_default()
}

/// `n` client certificates `load-<i>` from the fixture client CA, with
/// `certgate pki` in a scratch PKI home: (chain, key) paths.
pub fn distinct_clients(dir: &std::path::Path, n: usize) -> Vec<(PathBuf, PathBuf)> {
    let ca = dir.join("client-ca");
    std::fs::create_dir_all(&ca).unwrap();
    for f in ["pem", "key"] {
        std::fs::copy(repo().join(format!("fixtures/pki/client-ca.{f}")), ca.join(format!("ca.{f}"))).unwrap();
    }
    let home = Home::new(dir);
    (0..n)
        .map(|i| {
            let name = format!("load-{i}");
            let spec = LeafSpec {
                name: name.clone(),
                subject: Subject {
                    org: Some("Example".into()),
                    ..Subject::cn(&name)
                },
                sans: Sans {
                    uris: vec![format!("spiffe://example.org/ns/load/sa/{i}")],
                    ..Sans::default()
                },
                validity: Validity::days(30),
                key: KeyKind::P256,
                serial: None,
                force: false,
            };
            ops::client(&home, "client-ca", &Passphrase::default(), &spec).unwrap();
            (home.issued(&format!("{name}-chain.pem")), home.issued(&format!("{name}.key")))
        })
        .collect()
}
