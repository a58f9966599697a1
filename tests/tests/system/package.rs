//! `certgate package` against a real registry: Debian's `docker-registry`
//! (the CNCF distribution registry) started on loopback, `skopeo` to push
//! and pull (`./dev test` installs both). Both formats round-trip: the
//! registry serves the manifest under the digest `certgate package`
//! printed, and the module pulled back is byte for byte the one packaged.

use crate::common;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::envoy::free_port;
use common::{certgate, wait_for_port, wasm, KillOnDrop, TempDir};
use serde_json::Value;

/// A registry on a loopback port, storing in a scratch directory; stopped on drop.
struct Registry {
    _child: KillOnDrop,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = TempDir::new("registry").unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = format!(
            "version: 0.1\nlog: {{ level: error }}\nstorage: {{ filesystem: {{ rootdirectory: {} }} }}\nhttp: {{ addr: {addr} }}\n",
            dir.0.join("data").display()
        );
        std::fs::write(dir.0.join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.0.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (./dev test installs Debian's docker-registry)");
        let child = KillOnDrop(child);
        wait_for_port(addr, "the registry", Duration::from_secs(20));
        Registry {
            _child: child,
            addr,
            _dir: dir,
        }
    }
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo (./dev test installs Debian's skopeo)");
    assert!(out.status.success(), "skopeo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap()
}

/// The module inside an image layout's manifest for `tag`.
fn module_in(layout: &Path, tag: &str) -> (Value, Vec<u8>) {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"))
        .clone();
    let manifest: Value = serde_json::from_slice(&blob(layout, entry["digest"].as_str().unwrap())).unwrap();
    let layer = &manifest["layers"][0];
    let bytes = blob(layout, layer["digest"].as_str().unwrap());
    let module = if layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip" {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some("plugin.wasm"));
        let mut module = Vec::new();
        entry.read_to_end(&mut module).unwrap();
        assert!(entries.next().is_none(), "one file in the layer");
        module
    } else {
        bytes
    };
    (manifest, module)
}

/// `certgate package`'s output: the line starting with `label:`.
fn printed(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {stdout}"))
        .trim()
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn both_formats_round_trip_through_a_registry_with_the_printed_digest() {
    let registry = Registry::start();
    let dir = TempDir::new("package").unwrap();
    let module = std::fs::read(wasm()).unwrap();
    for format in ["compat", "artifact"] {
        let out = dir.0.join(format);
        let run = certgate()
            .args(["package", "--format", format, "--tag", "1.0.0", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        let digest = printed(&stdout, "manifest:");
        assert_eq!(printed(&stdout, "module:"), format!("sha256:{}", common::sha256_hex(&module)));

        // reproducible: packaging again gives the same digest
        let again = certgate()
            .args(["package", "--format", format, "--tag", "1.0.0", "--out"])
            .arg(dir.0.join(format!("{format}-again")))
            .output()
            .unwrap();
        assert_eq!(
            printed(&String::from_utf8_lossy(&again.stdout), "manifest:"),
            digest,
            "{format}: the same module gives the same digest"
        );

        let reference = format!("docker://{}/certgate-{format}:1.0.0", registry.addr);
        skopeo(&[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &format!("oci:{}:1.0.0", out.display()),
            &reference,
        ]);
        let served = skopeo(&["inspect", "--raw", "--tls-verify=false", &reference]);
        assert_eq!(
            format!("sha256:{}", common::sha256_hex(&served)),
            digest,
            "{format}: the registry serves the manifest under the printed digest"
        );

        let pulled = dir.0.join(format!("{format}-pulled"));
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("{reference}@{digest}").replace(":1.0.0@", "@"),
            &format!("oci:{}:pulled", pulled.display()),
        ]);
        let (manifest, pulled_module) = module_in(&pulled, "pulled");
        assert!(
            pulled_module == module,
            "{format}: the pulled module is the packaged one, byte for byte"
        );
        match format {
            "compat" => assert_eq!(manifest["annotations"]["module.wasm.image/variant"], "compat"),
            _ => {
                assert_eq!(manifest["config"]["mediaType"], "application/vnd.module.wasm.config.v1+json");
                assert_eq!(
                    manifest["layers"][0]["mediaType"],
                    "application/vnd.module.wasm.content.layer.v1+wasm"
                );
            }
        }
    }
}
