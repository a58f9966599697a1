//! The fleet manifests (`envoy/istio/`, `envoy/gateway/`): every document
//! validates against its kind's real CRD schema (`fixtures/crds/`, from Istio,
//! Envoy Gateway and the Gateway API), every embedded policy passes
//! `certgate validate`, and the settings certgate depends on are what they
//! must be, so that an edit that breaks one fails here.

use crate::common;

use std::path::{Path, PathBuf};

use common::{certgate, repo, venv_python, TempDir};
use serde_json::Value;

/// The documents of a YAML file as kubectl reads them: YAML 1.1 rules
/// (`tests/python/kubectl_yaml.py`, PyYAML's safe loader), where an unquoted
/// all-digit digest is a number.
fn kubectl_documents(file: &Path) -> Vec<Value> {
    let out = std::process::Command::new(venv_python())
        .arg(repo().join("tests/python/kubectl_yaml.py"))
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every YAML document of every manifest file, with its file, as kubectl reads it.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for dir in ["envoy/istio", "envoy/gateway"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files.into_iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
            out.extend(kubectl_documents(&file).into_iter().map(|doc| (file.clone(), doc)));
        }
    }
    out
}

/// The CRD schema for a document's apiVersion and kind.
fn schema_for(doc: &Value) -> Option<Value> {
    let (group, version) = doc["apiVersion"].as_str()?.split_once('/')?;
    let kind = doc["kind"].as_str()?;
    std::fs::read_dir(repo().join("fixtures/crds")).ok()?.flatten().find_map(|e| {
        let crd: Value = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
        (crd["group"] == group && crd["version"] == version && crd["kind"] == kind).then(|| crd["openAPIV3Schema"].clone())
    })
}

/// The API server's view: draft 4 semantics, `metadata` only an object.
fn violations(schema: &Value, doc: &Value) -> Vec<String> {
    let mut schema = schema.clone();
    schema["properties"]["metadata"] = serde_json::json!({ "type": "object" });
    let validator = jsonschema::draft4::new(&schema).unwrap();
    validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn name(file: &Path, doc: &Value) -> String {
    format!(
        "{} {}/{}",
        file.strip_prefix(repo()).unwrap_or(file).display(),
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

#[test]
fn every_manifest_validates_against_its_crd_schema() {
    let docs = documents();
    let kinds: Vec<&str> = docs.iter().filter_map(|(_, d)| d["kind"].as_str()).collect();
    for kind in [
        "Gateway",
        "WasmPlugin",
        "HTTPRoute",
        "ClientTrafficPolicy",
        "EnvoyExtensionPolicy",
        "EnvoyProxy",
        "EnvoyPatchPolicy",
    ] {
        assert!(kinds.contains(&kind), "no {kind} manifest");
    }
    let mut failures = Vec::new();
    for (file, doc) in &docs {
        match schema_for(doc) {
            None => failures.push(format!(
                "{}: no CRD schema in fixtures/crds for {} {}",
                name(file, doc),
                doc["apiVersion"],
                doc["kind"]
            )),
            Some(schema) => failures.extend(violations(&schema, doc).into_iter().map(|v| format!("{}: {v}", name(file, doc)))),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A digest written unquoted is the number 0 (or a float) to kubectl, and
/// the CRD schema refuses it: the committed manifests quote every digest.
#[test]
fn an_unquoted_digest_is_caught_as_kubectl_reads_it() {
    let dir = TempDir::new("unquoted").unwrap();
    for file in ["envoy/istio/required-mtls.yaml", "envoy/gateway/required-mtls.yaml"] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let quoted = format!("\"{}\"", "0".repeat(64));
        assert!(text.contains(&quoted), "{file}: the digest is quoted");
        let broken = dir.0.join("broken.yaml");
        std::fs::write(&broken, text.replace(&quoted, &"0".repeat(64))).unwrap();
        let refused: Vec<String> = kubectl_documents(&broken)
            .iter()
            .flat_map(|doc| violations(&schema_for(doc).unwrap(), doc))
            .collect();
        assert!(
            refused
                .iter()
                .any(|v| v.contains("is not of type \"string\"") && v.contains("sha256")),
            "{file}: {refused:?}"
        );
    }
}

#[test]
fn the_schemas_catch_a_broken_manifest() {
    let (file, wasm_plugin) = documents().into_iter().find(|(_, d)| d["kind"] == "WasmPlugin").unwrap();
    let schema = schema_for(&wasm_plugin).unwrap();
    for (field, bad) in [("phase", "AUTHENTICATE"), ("failStrategy", "CLOSE"), ("sha256", "sha256:abc")] {
        let mut doc = wasm_plugin.clone();
        doc["spec"][field] = bad.into();
        assert!(
            !violations(&schema, &doc).is_empty(),
            "{}: {field}: {bad} must be refused",
            file.display()
        );
    }
    let (_, proxy) = documents().into_iter().find(|(_, d)| d["kind"] == "EnvoyProxy").unwrap();
    for (pointer, bad) in [
        ("/spec/dynamicModules/0/name", "Certgate"),
        ("/spec/dynamicModules/0/source/type", "File"),
    ] {
        let mut doc = proxy.clone();
        *doc.pointer_mut(pointer).unwrap() = bad.into();
        assert!(
            !violations(&schema_for(&proxy).unwrap(), &doc).is_empty(),
            "EnvoyProxy {pointer}: {bad} must be refused"
        );
    }
    let (_, patch) = documents().into_iter().find(|(_, d)| d["kind"] == "EnvoyPatchPolicy").unwrap();
    for (pointer, bad) in [
        ("/spec/type", "MergePatch"),
        ("/spec/jsonPatches/0/operation/op", "insert"),
        (
            "/spec/jsonPatches/0/type",
            "type.googleapis.com/envoy.config.listener.v3.FilterChain",
        ),
    ] {
        let mut doc = patch.clone();
        *doc.pointer_mut(pointer).unwrap() = bad.into();
        assert!(
            !violations(&schema_for(&patch).unwrap(), &doc).is_empty(),
            "EnvoyPatchPolicy {pointer}: {bad} must be refused"
        );
    }
    let (_, policy) = documents().into_iter().find(|(_, d)| d["kind"] == "ClientTrafficPolicy").unwrap();
    let mut doc = policy.clone();
    doc["spec"]["headers"]["xForwardedClientCert"]["mode"] = "Sanitise".into();
    assert!(!violations(&schema_for(&policy).unwrap(), &doc).is_empty());
}

/// The certgate policy a document carries, if any.
fn embedded_policies(doc: &Value) -> Vec<Value> {
    match doc["kind"].as_str() {
        Some("WasmPlugin") => vec![doc["spec"]["pluginConfig"].clone()],
        Some("EnvoyExtensionPolicy") => ["wasm", "dynamicModule"]
            .iter()
            .flat_map(|field| doc["spec"][field].as_array().into_iter().flatten())
            .map(|w| w["config"].clone())
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn every_embedded_policy_passes_certgate_validate() {
    let dir = TempDir::new("manifests").unwrap();
    let mut seen = 0;
    for (file, doc) in documents() {
        for (i, policy) in embedded_policies(&doc).into_iter().enumerate() {
            let path = dir.0.join(format!("policy-{seen}-{i}.json"));
            std::fs::write(&path, policy.to_string()).unwrap();
            let out = certgate().arg("validate").arg(&path).output().unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert_eq!(out.status.code(), Some(0), "{}: {text}", name(&file, &doc));
            assert!(!text.contains("never used"), "{}: {text}", name(&file, &doc));
            seen += 1;
        }
    }
    assert_eq!(seen, 5, "a policy in each WasmPlugin and EnvoyExtensionPolicy");
}

fn is_digest(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
}

#[test]
fn the_settings_certgate_depends_on_are_set() {
    let mut checked = 0;
    for (file, doc) in documents() {
        let at = name(&file, &doc);
        let spec = &doc["spec"];
        match doc["kind"].as_str().unwrap() {
            "WasmPlugin" => {
                assert_eq!(spec["phase"], "AUTHN", "{at}: before Istio's own authorization");
                assert_eq!(spec["failStrategy"], "FAIL_CLOSE", "{at}: fail closed, said explicitly");
                assert_eq!(spec["pluginName"], "certgate", "{at}: the root id");
                assert!(spec["url"].as_str().unwrap().starts_with("oci://"), "{at}");
                assert!(is_digest(&spec["sha256"]), "{at}: pinned by the manifest digest");
                assert_eq!(spec["pluginConfig"]["verification"], "listener", "{at}");
            }
            "Gateway" if doc["apiVersion"] == "networking.istio.io/v1" => {
                let mode = spec["servers"][0]["tls"]["mode"].as_str().unwrap();
                assert!(
                    ["MUTUAL", "OPTIONAL_MUTUAL"].contains(&mode),
                    "{at}: the gateway verifies client certificates ({mode})"
                );
                assert!(spec["servers"][0]["tls"]["credentialName"].is_string(), "{at}");
            }
            "ClientTrafficPolicy" => {
                let validation = &spec["tls"]["clientValidation"];
                let mode = validation["mode"].as_str().unwrap();
                assert!(
                    ["RequireAndVerify", "VerifyIfGiven"].contains(&mode),
                    "{at}: a mode that verifies ({mode})"
                );
                assert!(!validation["caCertificateRefs"].as_array().unwrap().is_empty(), "{at}: trusted CAs");
                assert!(!validation["crl"]["refs"].as_array().unwrap().is_empty(), "{at}: CRLs");
                assert!(validation["allowExpiredCertificate"].is_null(), "{at}");
                let xfcc = &spec["headers"]["xForwardedClientCert"];
                if is_native(&file) {
                    // the module reads filter state: no XFCC is built, a client's is removed
                    assert_eq!(xfcc["mode"], "Sanitize", "{at}: a client's XFCC never passes, none is built");
                    assert!(xfcc["certDetailsToAdd"].is_null(), "{at}");
                } else {
                    assert_eq!(xfcc["mode"], "SanitizeSet", "{at}: a client's XFCC never passes");
                    assert!(
                        xfcc["certDetailsToAdd"].as_array().unwrap().contains(&"Cert".into()),
                        "{at}: Cert for Envoy 1.36/1.37"
                    );
                }
            }
            "EnvoyExtensionPolicy" if spec["dynamicModule"].is_array() => {
                let module = &spec["dynamicModule"][0];
                assert_eq!(module["name"], "certgate", "{at}: the EnvoyProxy's allowlist entry");
                assert_eq!(module["filterName"], "certgate", "{at}");
                assert_eq!(module["config"]["verification"], "listener", "{at}: the module refuses the default");
            }
            "EnvoyProxy" => {
                let entry = &spec["dynamicModules"][0];
                assert_eq!(entry["name"], "certgate", "{at}");
                assert_eq!(entry["source"]["type"], "Local", "{at}");
                assert!(
                    entry["source"]["local"]["path"].as_str().unwrap().ends_with("/libcertgate.so"),
                    "{at}"
                );
            }
            "EnvoyPatchPolicy" => {
                let patch = &spec["jsonPatches"][0];
                assert_eq!(patch["type"], "type.googleapis.com/envoy.config.listener.v3.Listener", "{at}");
                assert_eq!(patch["name"], "default/certgate-native/https", "{at}: the Gateway's HTTPS listener");
                assert_eq!(patch["operation"]["op"], "add", "{at}");
                assert_eq!(patch["operation"]["path"], "/filters/0", "{at}: before the HTTP connection manager");
                assert_eq!(
                    patch["operation"]["value"],
                    native_network_filter(),
                    "{at}: the same network filter as envoy/required-mtls-native.yaml, which every module Envoy runs"
                );
            }
            "EnvoyExtensionPolicy" => {
                let wasm = &spec["wasm"][0];
                assert_eq!(wasm["failOpen"], false, "{at}: fail closed, said explicitly");
                assert_eq!(wasm["rootID"], "certgate", "{at}");
                assert_eq!(wasm["code"]["type"], "Image", "{at}");
                assert!(is_digest(&wasm["code"]["image"]["sha256"]), "{at}: pinned by the manifest digest");
                assert_eq!(wasm["config"]["verification"], "listener", "{at}");
            }
            _ => continue,
        }
        checked += 1;
    }
    assert_eq!(
        checked, 12,
        "2 Istio Gateways, 2 WasmPlugins, 3 ClientTrafficPolicies, 3 EnvoyExtensionPolicies (one a module's), 1 EnvoyProxy, 1 EnvoyPatchPolicy"
    );
}

fn is_native(file: &Path) -> bool {
    file.file_name().is_some_and(|n| n.to_string_lossy().ends_with("-native.yaml"))
}

/// The set_filter_state network filter of the committed module configuration.
fn native_network_filter() -> Value {
    let config = kubectl_documents(&repo().join("envoy/required-mtls-native.yaml")).remove(0);
    let filters = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
        .as_array()
        .unwrap()
        .clone();
    filters
        .into_iter()
        .find(|f| f["name"] == "envoy.filters.network.set_filter_state")
        .expect("envoy/required-mtls-native.yaml has the set_filter_state network filter")
}
