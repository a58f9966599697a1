//! certgate's dynamic module (`libcertgate.so`) as Envoy loads it: where it
//! runs and where it is refused, the committed configuration, a policy it
//! cannot serve, and a panic inside it. The scenario table, resumed
//! sessions and the nginx pattern (`envoy_versions.rs`), the spoofing matrix
//! (`spoofing.rs`), the bypass matrix (`bypass.rs`), the gunicorn migration
//! (`migration.rs`), the access log and Prometheus run through both builds
//! in their own suites.

use crate::common;

use std::time::{Duration, Instant};

use certgate_backend as backend;
use common::envoy::{
    config, matrix, native, native_with, native_xfcc, panicking_module, with_listener_verification, Build, Envoy, MODULE_VERSIONS,
};
use common::{get, repo};
use serde_json::Value;

#[test]
fn the_module_versions_are_the_matrix_from_1_38() {
    let from_1_38: Vec<String> = matrix()
        .into_iter()
        .filter(|v| !v.starts_with("1.36.") && !v.starts_with("1.37."))
        .collect();
    assert_eq!(from_1_38, MODULE_VERSIONS);
}

/// A YAML document as data, with the inline policy read as JSON (its text
/// differs: a block in the committed file, one line when made).
fn yaml_value(text: &str) -> Value {
    let mut v: Value = serde_yaml_ng::from_str(text).unwrap();
    fn policies_as_json(v: &mut Value) {
        match v {
            Value::Object(o) => {
                if o.get("@type").and_then(Value::as_str) == Some("type.googleapis.com/google.protobuf.StringValue") {
                    if let Some(Value::String(text)) = o.get("value") {
                        let json: Value = serde_json::from_str(text).unwrap();
                        o.insert("value".into(), json);
                    }
                }
                o.values_mut().for_each(policies_as_json);
            }
            Value::Array(a) => a.iter_mut().for_each(policies_as_json),
            _ => {}
        }
    }
    policies_as_json(&mut v);
    v
}

#[test]
fn the_committed_native_configuration_is_the_wasm_one_with_the_module_in_its_place() {
    let read = |file: &str| std::fs::read_to_string(repo().join("envoy").join(file)).unwrap();
    let made = native(&read("required-mtls.yaml")).replace(&repo().join("target/").display().to_string(), "target/");
    assert_eq!(yaml_value(&made), yaml_value(&read("required-mtls-native.yaml")));
}

/// Envoy 1.36 and 1.37 (Istio 1.28-1.29, Envoy Gateway 1.6-1.7): their
/// configuration cannot load a module by path, and by name (the search
/// path) the module refuses them when loaded, saying why, in Envoy's log.
#[test]
fn envoy_before_1_38_refuses_the_module_with_a_message_that_says_why() {
    let dir = common::envoy::module().parent().unwrap().to_owned();
    for version in ["1.36.4", "1.37.0"] {
        // the module alone: these Envoys would refuse the network filter first
        let yaml = native_xfcc(&config("required-mtls.yaml", "127.0.0.1:9".parse().unwrap(), None));
        let by_path = Envoy::start_version(version, &yaml).map(|_| ()).unwrap_err();
        // (Envoy's protobuf messages vary their spacing on purpose)
        assert!(
            by_path.contains("'module'") && by_path.contains("unknown fields"),
            "{version}: {by_path}"
        );
        let by_name = yaml.replace(
            &format!("module: {{ local: {{ filename: {} }} }}", common::envoy::module().display()),
            "name: certgate",
        );
        assert!(by_name.contains("name: certgate\n"));
        let err = Envoy::start_version_env(version, &by_name, &[("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", &dir)])
            .map(|_| ())
            .unwrap_err();
        assert!(
            err.contains("certgate: this Envoy") && err.contains("on older Envoys use certgate_filter.wasm"),
            "{version}: {err}"
        );
    }
}

/// A policy the module cannot serve, or one the filter refuses anyway: Envoy
/// does not start, and its log names the setting or JSON path, in the words
/// the Wasm build uses for the same policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_refuses_a_policy_by_its_json_path() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let refused = |build: Build, policy: &str| match Envoy::start(&build.config(&config("required-mtls.yaml", backend.addr, Some(policy))))
    {
        Err(log) => log,
        Ok(e) => panic!("{build:?}: Envoy started with {policy}; log:\n{}", e.log_tail()),
    };
    // (The certificate and Envoy's verification flag the module reads from
    // the connection's filter state: no policy is refused for what it reads.)
    // What neither build accepts: the same message in each log.
    for (bad, path) in [
        (
            r#"{"verification":"listener","rules":[{"name":"a","issuer":[]}]}"#,
            "rules[0].issuer",
        ),
        (
            r#"{"verification":"listener","rules":[{"name":"a","isuer":["CN=x"]}]}"#,
            "rules[0].isuer",
        ),
        ("not json", "`.`"),
    ] {
        let messages: Vec<String> = Build::BOTH
            .iter()
            .map(|b| {
                let log = refused(*b, bad);
                let line = log
                    .lines()
                    .find(|l| l.contains("certgate configuration: at "))
                    .unwrap_or_else(|| panic!("{b:?} {bad}:\n{log}"));
                line[line.find("certgate configuration").unwrap()..].to_owned()
            })
            .collect();
        assert!(messages[0].contains(path), "{bad}: {messages:?}");
        assert_eq!(messages[0], messages[1], "{bad}: both builds say the same");
    }
}

/// The test build of the module panics on a request carrying
/// `x-certgate-test-panic`: that request gets 500 `internal_error`, is
/// counted (as a panic, and as denied for `internal_error`) and published;
/// Envoy and the module go on serving, the next request at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_its_request_closed_and_the_next_is_served() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for version in MODULE_VERSIONS {
        let yaml = native_with(&config("required-mtls.yaml", backend.addr, None), &panicking_module());
        let envoy = Envoy::start_version(version, &yaml).unwrap();
        let before = get(envoy.listener, Some("alice"), "/app/", &[]).await.unwrap();
        assert_eq!(before.status, 200, "{version}: {}", before.body);
        for _ in 0..3 {
            let r = get(envoy.listener, Some("alice"), "/app/", &[("x-certgate-test-panic", "1")])
                .await
                .unwrap();
            assert_eq!((r.status, r.backend_headers.is_none()), (500, true), "{version}: {}", r.body);
            assert!(r.body.contains(r#""reason":"internal_error""#), "{version}: {}", r.body);
            let at = Instant::now();
            let after = get(envoy.listener, Some("alice"), "/app/", &[]).await.unwrap();
            assert_eq!(after.status, 200, "{version}: the request after a panic: {}", after.body);
            eprintln!("Envoy {version}: served again {:?} after a panic", at.elapsed());
        }
        assert_eq!(envoy.stat(&Build::Module.stat("certgate_panics_total")), Some(3), "{version}");
        assert_eq!(
            envoy.stat(&Build::Module.stat("certgate_requests_total.outcome.denied.reason.internal_error")),
            Some(3),
            "{version}"
        );
        assert_eq!(
            envoy.stat(&Build::Module.stat("certgate_requests_total.outcome.allowed.rule.app")),
            Some(4),
            "{version}"
        );
        assert!(
            envoy.log_eventually_contains("certgate panicked (the request fails closed)"),
            "{version}:\n{}",
            envoy.log_tail()
        );
        let published = r#"500 certgate={"decision":"deny","reason":"internal_error"}"#;
        let start = Instant::now();
        while !envoy.access_log().contains(published) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(envoy.access_log().contains(published), "{version}: {}", envoy.access_log());
    }
}

/// The shipped module has no way to make it panic: the test header is an
/// ordinary header there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_module_ignores_the_test_panic_header() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let envoy = Envoy::start(&native(&config("required-mtls.yaml", backend.addr, None))).unwrap();
    let r = get(envoy.listener, Some("alice"), "/app/", &[("x-certgate-test-panic", "1")])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(envoy.stat(&Build::Module.stat("certgate_panics_total")), Some(0));
}

/// Policies are the same JSON for both builds; a policy with
/// `"verification": "listener"` loads in each, with the same rules logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_build_loads_the_committed_policies() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for file in ["example.json", "gunicorn.json", "nginx-optional.json"] {
        let policy = with_listener_verification(&std::fs::read_to_string(repo().join("fixtures/policies").join(file)).unwrap());
        let envoy = Envoy::start(&native(&config("optional-mtls.yaml", backend.addr, Some(&policy)))).unwrap();
        assert!(
            envoy.log_eventually_contains("certgate: filter certgate loaded:"),
            "{file}:\n{}",
            envoy.log_tail()
        );
    }
}

/// The dynamic symbols a shared library exports, and its machine (`readelf`).
fn exports(so: &std::path::Path) -> (String, Vec<String>) {
    let run = |arg: &str| {
        let out = std::process::Command::new("readelf").args([arg, "-W"]).arg(so).output().unwrap();
        assert!(
            out.status.success(),
            "readelf {arg} {}: {}",
            so.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let machine = run("-h")
        .lines()
        .find_map(|l| l.trim().strip_prefix("Machine:").map(|m| m.trim().to_owned()))
        .unwrap();
    let mut symbols: Vec<String> = run("--dyn-syms")
        .lines()
        .filter(|l| l.contains(" FUNC ") && l.contains(" GLOBAL ") && !l.contains(" UND "))
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .filter(|name| name.starts_with("envoy_dynamic_module_on_"))
        .collect();
    symbols.sort();
    (machine, symbols)
}

/// The aarch64 build (`./dev` cross-builds it) is an AArch64 library that
/// exports every hook the x86-64 one does, and takes none of Envoy's
/// callbacks at link time (it finds them by name when loaded). No aarch64
/// Envoy runs here, so that is as far as it is checked.
#[test]
fn the_aarch64_module_exports_every_hook_of_the_x86_64_one() {
    let aarch64 = repo().join("target/aarch64-unknown-linux-gnu/release/libcertgate.so");
    assert!(aarch64.is_file(), "{} missing: `./dev test` cross-builds it", aarch64.display());
    let (machine, hooks) = exports(&common::envoy::module());
    let (arm, arm_hooks) = exports(&aarch64);
    assert!(machine.contains("X86-64"), "{machine}");
    assert!(arm.contains("AArch64"), "{arm}");
    assert!(
        hooks.len() >= 30 && hooks.contains(&"envoy_dynamic_module_on_http_filter_request_headers".to_owned()),
        "{hooks:?}"
    );
    assert_eq!(arm_hooks, hooks);
    for so in [common::envoy::module(), aarch64] {
        let out = std::process::Command::new("readelf")
            .args(["--dyn-syms", "-W"])
            .arg(&so)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let imported: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" UND ") && l.contains("envoy_dynamic_module_callback"))
            .collect();
        assert!(imported.is_empty(), "{}: {imported:?}", so.display());
    }
}

/// The committed configuration gives the module the certificate through the
/// connection's filter state: no XFCC is built, none reaches the
/// application, and what a client sends under the filter state's name or as
/// XFCC changes nothing, on HTTP/1.1 and on several HTTP/2 streams of one
/// connection. The XFCC alternative (no network filter) gives the same
/// identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_reads_the_certificate_from_filter_state_and_no_xfcc_is_built() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = config("required-mtls.yaml", backend.addr, None);
    let spoofs = [
        (
            "x-forwarded-client-cert",
            "Hash=00;Subject=\"CN=admin\";URI=spiffe://example.org/ns/default/sa/admin",
        ),
        ("certgate.peer_cert", "-----BEGIN%20CERTIFICATE-----"),
        ("x-client-cn", "admin"),
    ];
    for (how, yaml) in [("filter state", native(&base)), ("XFCC", native_xfcc(&base))] {
        let envoy = Envoy::start(&yaml).unwrap();
        for h2 in [false, true] {
            let mut conn = common::connect(envoy.listener, Some("alice"), h2).await.unwrap();
            for _ in 0..3 {
                let r = conn.send("GET", "/app/", &spoofs).await.unwrap();
                assert_eq!(r.status, 200, "{how} h2={h2}: {}", r.body);
                let seen = r.backend_headers.clone().unwrap();
                let one = |name: &str| seen.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect::<Vec<_>>();
                assert_eq!(one("x-client-cn"), ["alice"], "{how} h2={h2}");
                assert_eq!(
                    one("x-client-spiffe-id"),
                    ["spiffe://example.org/ns/default/sa/alice"],
                    "{how} h2={h2}"
                );
                // a header under the filter state's name is only a header: it
                // reaches the application as sent, the identity stays alice's
                assert_eq!(one("certgate.peer_cert"), ["-----BEGIN%20CERTIFICATE-----"], "{how} h2={h2}");
                let xfcc = one("x-forwarded-client-cert");
                match how {
                    "filter state" => assert!(xfcc.is_empty(), "no XFCC is built: {xfcc:?}"),
                    _ => assert!(xfcc.len() == 1 && !xfcc[0].contains("CN=admin"), "Envoy's own XFCC only: {xfcc:?}"),
                }
            }
        }
        // bob is denied on /admin/ either way: the identity is his own
        let r = get(envoy.listener, Some("bob"), "/admin/", &spoofs).await.unwrap();
        assert_eq!(r.status, 403, "{how}: {}", r.body);
    }
}

/// Without the network filter and without XFCC the module has no
/// certificate to read: it fails closed, and its log names the setting to
/// add (not the subject properties' partial identity, with no issuer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_network_filter_or_xfcc_no_identity_is_made_up() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let yaml = native(&config("required-mtls.yaml", backend.addr, None));
    let at = yaml.find("      - name: envoy.filters.network.set_filter_state\n").unwrap();
    let end = yaml.find("      - name: envoy.filters.network.http_connection_manager\n").unwrap();
    let without = format!("{}{}", &yaml[..at], &yaml[end..]);
    let envoy = Envoy::start(&without).unwrap();
    let r = get(envoy.listener, Some("alice"), "/app/", &[]).await.unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("unparseable_certificate"), "{}", r.body);
    assert!(r.backend_headers.is_none());
    assert!(
        envoy.log_eventually_contains("envoy.filters.network.set_filter_state"),
        "the log names the missing setting:\n{}",
        envoy.log_tail()
    );
}
