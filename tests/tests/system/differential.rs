//! The harness against Envoy 1.40, with small proxy-wasm filters that are not
//! certgate (`host-harness/host/tests/filters/differential`): each runs in
//! `certgate serve` and in Envoy in front of the same backend, gets the same
//! requests, and what the client gets back must match: status, headers (but
//! for [`IGNORED`]) and body.

use crate::common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use certgate_backend as backend;
use certgate_edge::tls::ClientCertMode;
use certgate_edge::{self as edge};
use common::envoy::Envoy;
use common::{client_config, connect_with, repo, settings, Conn, TempDir};
use http_body_util::{BodyExt, Full};
use hyper::Request;

/// Headers a proxy writes its own way, or that carry framing, not meaning.
const IGNORED: &[&str] = &[
    "date",
    "server",
    "x-envoy-upstream-service-time",
    "content-length",
    "transfer-encoding",
];

fn filters_wasm() -> std::path::PathBuf {
    let p = repo().join("target/test-filters/wasm32-wasip1/release/differential_filters.wasm");
    assert!(p.is_file(), "{} missing: `./dev test` builds it", p.display());
    p
}

/// What a client got.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: u16,
    headers: BTreeMap<String, Vec<String>>,
    body: String,
}

/// One request: method, path, headers, body.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

async fn send(addr: SocketAddr, (method, path, headers, body): &Case<'_>) -> Seen {
    let Conn::H1(mut sender) = connect_with(addr, client_config(None, &[b"http/1.1"]), false).await.unwrap() else {
        unreachable!()
    };
    let mut request = Request::builder().method(*method).uri(*path).header("host", "localhost");
    for (k, v) in *headers {
        request = request.header(*k, *v);
    }
    let request = request.body(Full::new(Bytes::copy_from_slice(body.as_bytes()))).unwrap();
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let mut seen_headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in response.headers() {
        if !IGNORED.contains(&k.as_str()) {
            seen_headers
                .entry(k.as_str().to_owned())
                .or_default()
                .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
        }
    }
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Seen {
        status,
        headers: seen_headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn envoy_yaml(kind: &str, backend: SocketAddr) -> String {
    let pki = repo().join("fixtures/pki");
    let cluster = |name: &str| {
        format!(
            "  - name: {name}\n    type: STATIC\n    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint:\n            address:\n              socket_address: {{ address: 127.0.0.1, port_value: {} }}\n",
            backend.port()
        )
    };
    format!(
        r#"admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: 0 }}
static_resources:
  listeners:
  - name: differential
    address:
      socket_address: {{ address: 127.0.0.1, port_value: 0 }}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: ["http/1.1"]
            tls_certificates:
            - certificate_chain: {{ filename: {pki}/server.pem }}
              private_key: {{ filename: {pki}/server.key }}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: differential
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: backend }}
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: differential
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {kind}
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  vm_id: differential
                  code:
                    local:
                      filename: {wasm}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{backend}{authz}"#,
        pki = pki.display(),
        wasm = filters_wasm().display(),
        backend = cluster("backend"),
        authz = cluster("authz"),
    )
}

/// Runs `cases` through Envoy and the edge with the filter `kind`: every
/// difference is reported, not only the first; and the filter must have
/// done something (`sanity` on the edge's answer to the first case).
async fn check(kind: &str, cases: &[Case<'_>], sanity: impl Fn(&Seen) -> bool) {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let envoy = Envoy::start(&envoy_yaml(kind, backend.addr)).unwrap();
    let dir = TempDir::new("differential").unwrap();
    let config = dir.0.join("config.txt");
    std::fs::write(&config, kind).unwrap();
    let mut s = settings(&config, ClientCertMode::Optional, &format!("http://{}", backend.addr));
    s.wasm = filters_wasm();
    s.clusters
        .insert("authz".into(), format!("http://{}", backend.addr).parse().unwrap());
    let edge = edge::start(s).await.unwrap();
    let mut differences = Vec::new();
    let mut first = None;
    for case in cases {
        let from_envoy = send(envoy.listener, case).await;
        let from_edge = send(edge.addr, case).await;
        if from_envoy != from_edge {
            differences.push(format!(
                "{kind} {} {}:\n  envoy: {from_envoy:?}\n  edge:  {from_edge:?}",
                case.0, case.1
            ));
        }
        first.get_or_insert(from_edge);
    }
    edge.shutdown().await;
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    let first = first.unwrap();
    assert!(sanity(&first), "{kind} did nothing: {first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_headers_are_set_on_upstream_and_local_replies_alike() {
    check(
        "headers",
        &[
            ("GET", "/api/v0.1/hello", &[], ""),
            ("GET", "/teapot", &[], ""),
            ("GET", "/status/404", &[], ""),
        ],
        |s| s.headers.get("x-filter-saw-status") == Some(&vec!["200".to_owned()]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_bodies_are_redacted_both_ways() {
    let long = "a secret in a long body; ".repeat(4000);
    check(
        "redact",
        &[
            ("GET", "/api/v0.1/hello", &[], ""),
            ("POST", "/echo", &[("content-type", "text/plain")], "my secret is safe"),
            ("POST", "/echo", &[], &long),
        ],
        |s| s.body.contains("[redacted]") && !s.body.contains("world"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callout_authorizer_resumes_or_denies() {
    check(
        "authz",
        &[
            ("GET", "/api/v0.1/hello", &[], ""),
            ("GET", "/api/v0.1/hello", &[("x-want", "403")], ""),
            ("GET", "/api/v0.1/hello", &[("x-want", "500")], ""),
            ("GET", "/api/v0.1/hello", &[("x-upstream", "nowhere")], ""),
            ("GET", "/api/v0.1/hello", &[("x-second", "200")], ""),
            ("GET", "/api/v0.1/hello", &[("x-second", "403")], ""),
        ],
        |s| s.status == 200 && s.body.contains("world"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_reply_from_the_response_phase_replaces_the_response() {
    check(
        "late",
        &[
            ("GET", "/late/api", &[], ""),
            ("GET", "/api/v0.1/hello", &[], ""),
            ("GET", "/late/status/404", &[], ""),
        ],
        |s| s.status == 451,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_and_shared_data_read_the_same() {
    check(
        "props",
        &[
            ("GET", "/api/v0.1/hello?x=1", &[], ""),
            ("POST", "/echo", &[], "x"),
            ("GET", "/status/204", &[], ""),
        ],
        |s| s.headers.get("x-request-path") == Some(&vec!["/api/v0.1/hello?x=1".to_owned()]),
    )
    .await;
}
