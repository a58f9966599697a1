//! Access tokens bound to the client certificate (RFC 8705), end to end:
//! `envoy/bound-tokens.yaml` (Envoy's `jwt_authn` with a local JWKS, then
//! certgate) on the oldest and newest Envoy with the Wasm build and on 1.38.2
//! and the newest with the dynamic module, and the real `.wasm` in the harness with
//! the dynamic metadata `jwt_authn` sets. Tokens are ES256, signed here with
//! the test issuer's key (`fixtures/jwt/issuer.key`, whose public half is
//! `fixtures/jwt/jwks.json`).

use crate::common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding};
use certgate_backend as backend;
use certgate_core::host::JWT_AUTHN_NAMESPACE;
use common::envoy::{committed_policy, config, Build, Envoy};
use common::plugin::{certgate, client, settings};
use common::{pki, repo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The Wasm build on the oldest and newest Envoy; the module on the first
/// Envoy it runs on (whose ABI passes buffers as pointer and length) and the
/// newest.
const RUNS: [(&str, Build); 4] = [
    ("1.36.4", Build::Wasm),
    ("1.40.0", Build::Wasm),
    ("1.38.2", Build::Module),
    ("1.40.0", Build::Module),
];

const ISSUER: &str = "https://issuer.certgate.test";
const AUDIENCE: &str = "certgate-api";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A fixture client's RFC 8705 thumbprint: base64url SHA-256 of its DER.
fn thumbprint(name: &str) -> String {
    let pem = std::fs::read_to_string(pki(&format!("{name}.pem"))).unwrap();
    let (_, der) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
    certgate_x509::x5t_s256(&der)
}

/// The claims of a token for `sub`, bound to `bound_to`'s certificate if
/// given, expiring in `lifetime` seconds (negative: already expired).
fn claims(sub: &str, bound_to: Option<&str>, lifetime: i64) -> Value {
    let mut c = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now() - 60, "exp": now() + lifetime});
    if let Some(who) = bound_to {
        c["cnf"] = json!({"x5t#S256": thumbprint(who)});
    }
    c
}

/// An ES256 token signed by the test issuer.
fn sign(claims: &Value) -> String {
    let key = std::fs::read(repo().join("fixtures/jwt/issuer.key")).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("certgate-test".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_pem(&key).unwrap()).unwrap()
}

/// A signed token whose payload was then replaced: the signature is the
/// original's.
fn tampered(signed: &str, claims: &Value) -> String {
    let parts: Vec<&str> = signed.split('.').collect();
    let payload = Base64UrlUnpadded::encode_string(claims.to_string().as_bytes());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// What a forged `x-jwt-payload` header says: a payload bound to `who`.
fn forged_payload_header(who: &str) -> String {
    Base64UrlUnpadded::encode_string(claims(who, Some(who), 3600).to_string().as_bytes())
}

/// One case: who connects, what they send, and what must come back.
struct Case {
    name: &'static str,
    client: &'static str,
    headers: Vec<(&'static str, String)>,
    status: u16,
    /// certgate's reason, or (`jwt_authn:`) the start of Envoy's own reply.
    answer: &'static str,
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

fn cases() -> Vec<Case> {
    let alice = sign(&claims("alice", Some("alice"), 3600));
    let unbound = sign(&claims("alice", None, 3600));
    let case = |name, client, headers, status, answer| Case {
        name,
        client,
        headers,
        status,
        answer,
    };
    vec![
        case(
            "token bound to alice, on alice's connection",
            "alice",
            vec![bearer(&alice)],
            200,
            "allow",
        ),
        case(
            "token bound to bob, on bob's connection",
            "bob",
            vec![bearer(&sign(&claims("bob", Some("bob"), 3600)))],
            200,
            "allow",
        ),
        case(
            "alice's token, stolen, on bob's connection",
            "bob",
            vec![bearer(&alice)],
            401,
            "token_certificate_mismatch",
        ),
        case(
            "token bound to bob, on alice's connection",
            "alice",
            vec![bearer(&sign(&claims("bob", Some("bob"), 3600)))],
            401,
            "token_certificate_mismatch",
        ),
        case("unbound token", "alice", vec![bearer(&unbound)], 401, "token_unbound"),
        case("no token", "alice", vec![], 401, "token_missing"),
        case(
            "expired token bound to alice",
            "alice",
            vec![bearer(&sign(&claims("alice", Some("alice"), -600)))],
            401,
            "jwt_authn:Jwt is expired",
        ),
        case(
            "bob's token, its payload rebound to alice (signature kept)",
            "alice",
            vec![bearer(&tampered(
                &sign(&claims("bob", Some("bob"), 3600)),
                &claims("bob", Some("alice"), 3600),
            ))],
            401,
            "jwt_authn:Jwt verification fails",
        ),
        case(
            "unbound token with a null claim",
            "alice",
            vec![bearer(&sign(&with_null_claim()))],
            401,
            "token_unbound",
        ),
        case(
            "a null thumbprint",
            "alice",
            vec![bearer(&sign(&with_thumbprint(Value::Null)))],
            401,
            "token_certificate_mismatch",
        ),
        case(
            "an empty thumbprint",
            "alice",
            vec![bearer(&sign(&with_thumbprint(json!(""))))],
            401,
            "token_unbound",
        ),
        case(
            "forged payload header, no token",
            "alice",
            vec![("x-jwt-payload", forged_payload_header("alice"))],
            401,
            "token_missing",
        ),
        case(
            "forged payload header beside an unbound token",
            "alice",
            vec![bearer(&unbound), ("x-jwt-payload", forged_payload_header("alice"))],
            401,
            "token_unbound",
        ),
        case("the anonymous health check needs no token", "alice", vec![], 200, "allow"),
    ]
}

/// An unbound token one of whose claims is JSON null (Envoy cannot give
/// such a payload to a Wasm filter as bytes).
fn with_null_claim() -> Value {
    let mut c = claims("alice", None, 3600);
    c["nonce"] = Value::Null;
    c
}

/// A token for alice whose `cnf["x5t#S256"]` is `value`.
fn with_thumbprint(value: Value) -> Value {
    let mut c = claims("alice", None, 3600);
    c["cnf"] = json!({ "x5t#S256": value });
    c
}

fn path_of(case: &Case) -> &'static str {
    if case.name.starts_with("the anonymous health check") {
        "/healthz"
    } else {
        "/api/orders"
    }
}

/// What a reply says: `allow` for one the application answered, certgate's
/// reason, or `jwt_authn:<body>` for Envoy's own refusal.
fn answer_of(reply: &common::Reply) -> String {
    if reply.backend_headers.is_some() {
        return "allow".into();
    }
    match serde_json::from_str::<Value>(&reply.body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_owned))
    {
        Some(reason) => reason,
        None => format!("jwt_authn:{}", reply.body),
    }
}

#[test]
fn the_committed_jwks_is_the_test_issuers_key() {
    // a token signed with the key verifies with the JWKS's public key
    let jwks: Value = serde_json::from_str(&std::fs::read_to_string(repo().join("fixtures/jwt/jwks.json")).unwrap()).unwrap();
    let k = &jwks["keys"][0];
    let key = jsonwebtoken::DecodingKey::from_ec_components(k["x"].as_str().unwrap(), k["y"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[ISSUER]);
    let token = sign(&claims("alice", Some("alice"), 60));
    let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
    assert_eq!(data.claims["cnf"]["x5t#S256"], thumbprint("alice"));
    // and the committed configuration's policy reads the provider it sets up
    let yaml = std::fs::read_to_string(repo().join("envoy/bound-tokens.yaml")).unwrap();
    assert!(yaml.contains("payload_in_metadata: certgate_jwt") && yaml.contains("forward_payload_header: x-jwt-payload"));
    let policy: Value = serde_json::from_str(&committed_policy("bound-tokens.yaml")).unwrap();
    assert_eq!(policy["bound_tokens"]["payload_in_metadata"], "certgate_jwt");
    assert_eq!(policy["bound_tokens"]["payload_header"], "x-jwt-payload");
    let fixture = std::fs::read_to_string(repo().join("fixtures/policies/bound-tokens.json")).unwrap();
    assert_eq!(
        policy,
        serde_json::from_str::<Value>(&fixture).unwrap(),
        "the policy `certgate test` runs its cases on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_envoy_only_a_token_bound_to_the_connections_certificate_passes() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut failures = Vec::new();
    for (version, build) in RUNS {
        let yaml = build.config(&config("bound-tokens.yaml", backend.addr, None));
        let envoy = Envoy::start_version(version, &yaml).unwrap_or_else(|e| panic!("{version} {}: {e}", build.name()));
        for case in cases() {
            let headers: Vec<(&str, &str)> = case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let at = format!("{version} {}: {}", build.name(), case.name);
            match common::get(envoy.listener, Some(case.client), path_of(&case), &headers).await {
                Err(e) => failures.push(format!("{at}: {e}")),
                Ok(reply) => {
                    let answer = answer_of(&reply);
                    println!("{at}: {} {answer}", reply.status);
                    if reply.status != case.status || !answer.starts_with(case.answer) {
                        failures.push(format!("{at}: want {} {}, got {} {answer}", case.status, case.answer, reply.status));
                    }
                    // the token never reaches the application; the verified payload does
                    if reply.backend_headers.is_some() && !reply.backend_header("authorization").is_empty() {
                        failures.push(format!("{at}: the application got the token"));
                    }
                    if case.answer == "token_missing" && !reply.body.contains("token_missing") {
                        failures.push(format!("{at}: {}", reply.body));
                    }
                }
            }
        }
        // the challenge of a 401 (RFC 6750)
        let reply = common::get(envoy.listener, Some("alice"), "/api", &[]).await.unwrap();
        assert_eq!(reply.status, 401, "{version} {}", build.name());
        // each mismatch counted under the rule that decided
        let want = cases().iter().filter(|c| c.answer == "token_certificate_mismatch").count() as u64;
        let stat = build.stat("certgate_requests_total.outcome.denied.reason.token_certificate_mismatch.rule.app");
        match envoy.stat_eventually(&stat, |v| v == want) {
            Some(n) if n == want => {}
            other => failures.push(format!("{version} {}: {stat} = {other:?}, want {want}", build.name())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn in_the_harness_the_wasm_reads_the_metadata_jwt_authn_sets() {
    let policy = committed_policy("bound-tokens.yaml");
    let mut plugin = certgate().start(settings(&policy)).unwrap();
    let send = |plugin: &mut certgate_host::Plugin, who: &str, payload: Option<Value>, extra: &[(&str, String)]| {
        let mut headers = certgate_wire::header_map::request("GET", "/api", "localhost");
        for (k, v) in extra {
            certgate_wire::header_map::add(&mut headers, k, v.as_bytes().to_vec());
        }
        let metadata = payload
            .map(|p| certgate_wire::metadata::properties(JWT_AUTHN_NAMESPACE, "certgate_jwt", &p))
            .unwrap_or_default();
        let exchange = plugin.request_with_metadata(&client(who, true), headers, metadata).unwrap();
        match exchange.local_response {
            None => "allow".to_owned(),
            Some(r) => {
                let body: Value = serde_json::from_slice(&r.body).unwrap();
                format!("{} {}", r.status, body["reason"].as_str().unwrap())
            }
        }
    };
    assert_eq!(send(&mut plugin, "alice", Some(claims("alice", Some("alice"), 3600)), &[]), "allow");
    assert_eq!(
        send(&mut plugin, "bob", Some(claims("alice", Some("alice"), 3600)), &[]),
        "401 token_certificate_mismatch"
    );
    assert_eq!(
        send(&mut plugin, "alice", Some(claims("alice", None, 3600)), &[]),
        "401 token_unbound"
    );
    assert_eq!(send(&mut plugin, "alice", None, &[]), "401 token_missing");
    // a payload with a null claim is still a verified token (Envoy fails to
    // serialize it for the Wasm; certgate reads that failure as "there")
    assert_eq!(send(&mut plugin, "alice", Some(with_null_claim()), &[]), "401 token_unbound");
    // the Wasm build reads the metadata, never the header
    assert_eq!(
        send(&mut plugin, "alice", None, &[("x-jwt-payload", forged_payload_header("alice"))]),
        "401 token_missing"
    );
}
