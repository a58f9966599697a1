//! `certgate package`: the filter's `.wasm` as an OCI image, in the two
//! formats istio-agent and Envoy Gateway pull, written as an OCI image layout
//! directory that `skopeo copy oci:DIR:TAG docker://...` pushes.
//!
//! - *compat*: an OCI image whose one layer is a gzip tar holding
//!   `plugin.wasm` (the manifest says `module.wasm.image/variant: compat`);
//!   docker, podman and every registry handle it as an ordinary image.
//! - *artifact*: the Wasm OCI artifact: a config of media type
//!   `application/vnd.module.wasm.config.v1+json` and one layer
//!   `application/vnd.module.wasm.content.layer.v1+wasm`, the raw module.
//!
//! Both are reproducible: the same `.wasm` gives the same manifest digest,
//! which is what a WasmPlugin's or EnvoyExtensionPolicy's `sha256` pins.
#![warn(missing_docs)]

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use certgate_x509::sha256_hex;
use flate2::{Compression, GzBuilder};
use oci_spec::image::{
    Arch, Descriptor, DescriptorBuilder, ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType, OciLayoutBuilder,
    Os, RootFsBuilder, Sha256Digest,
};

/// Media type of the Wasm artifact's config.
pub const WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
/// Media type of the Wasm artifact's one layer: the raw module.
pub const WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// The file the compat layer holds.
pub const COMPAT_FILE: &str = "plugin.wasm";

/// Which image to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An ordinary OCI image: one gzip tar layer holding `plugin.wasm`.
    Compat,
    /// The Wasm OCI artifact: the raw module as its one layer.
    Artifact,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Compat => "compat",
            Format::Artifact => "artifact",
        })
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packaged {
    /// `sha256:<hex>` of the image manifest: the digest to pin.
    pub manifest_digest: String,
    /// `sha256:<hex>` of the module itself (what `vm_config.code.remote.sha256` pins).
    pub module_digest: String,
    /// The module's size in bytes.
    pub module_bytes: usize,
}

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // each variant's message says what it is
pub enum PackageError {
    #[error("cannot read the module {path}: {source}")]
    ReadModule { path: String, source: std::io::Error },
    #[error("{path} is not a WebAssembly module (no `\\0asm` header)")]
    NotWasm { path: String },
    #[error("{path} exists and is not empty: give a new or empty directory for the image layout")]
    OutNotEmpty { path: String },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("`{tag}` is not a tag: 1-128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`")]
    BadTag { tag: String },
    #[error("building the OCI {what}: {source}")]
    Oci {
        what: &'static str,
        source: oci_spec::OciSpecError,
    },
}

fn oci(what: &'static str) -> impl Fn(oci_spec::OciSpecError) -> PackageError {
    move |source| PackageError::Oci { what, source }
}

/// An OCI image layout being written: blobs by digest.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn create(dir: &Path) -> Result<Layout, PackageError> {
        let write_err = |source| PackageError::Write {
            path: dir.display().to_string(),
            source,
        };
        if dir.exists() && std::fs::read_dir(dir).map_err(write_err)?.next().is_some() {
            return Err(PackageError::OutNotEmpty {
                path: dir.display().to_string(),
            });
        }
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|source| PackageError::Write {
            path: blobs.display().to_string(),
            source,
        })?;
        Ok(Layout { dir: dir.to_path_buf() })
    }

    fn write(&self, rel: &Path, bytes: &[u8]) -> Result<(), PackageError> {
        let path = self.dir.join(rel);
        std::fs::write(&path, bytes).map_err(|source| PackageError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// Stores a blob and describes it.
    fn blob(&self, media_type: MediaType, bytes: &[u8], annotations: Option<HashMap<String, String>>) -> Result<Descriptor, PackageError> {
        let hex = sha256_hex(bytes);
        self.write(&Path::new("blobs").join("sha256").join(&hex), bytes)?;
        let digest = Sha256Digest::from_str(&hex).map_err(oci("digest"))?;
        let mut builder = DescriptorBuilder::default()
            .media_type(media_type)
            .digest(digest)
            .size(bytes.len() as u64);
        if let Some(a) = annotations {
            builder = builder.annotations(a);
        }
        builder.build().map_err(oci("descriptor"))
    }
}

/// A tar holding `plugin.wasm`, the same bytes for the same module: no
/// times, owners or modes from the machine that built it.
fn compat_tar(wasm: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_path(COMPAT_FILE)?;
    header.set_size(wasm.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder.append(&header, wasm)?;
    builder.into_inner()
}

/// Gzip with no file name and time 0 in its header, so it is reproducible.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut encoder = GzBuilder::new().mtime(0).write(Vec::new(), Compression::best());
    encoder.write_all(bytes)?;
    encoder.finish()
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Writes `wasm` as an image of `format` into the layout directory `out`,
/// tagged `tag` (its `org.opencontainers.image.ref.name`), for `root_id`.
pub fn write_layout(wasm_path: &Path, out: &Path, format: Format, tag: &str, root_id: &str) -> Result<Packaged, PackageError> {
    if !valid_tag(tag) {
        return Err(PackageError::BadTag { tag: tag.to_owned() });
    }
    let wasm = std::fs::read(wasm_path).map_err(|source| PackageError::ReadModule {
        path: wasm_path.display().to_string(),
        source,
    })?;
    if !wasm.starts_with(b"\0asm") {
        return Err(PackageError::NotWasm {
            path: wasm_path.display().to_string(),
        });
    }
    let layout = Layout::create(out)?;
    let io = |source| PackageError::Write {
        path: out.display().to_string(),
        source,
    };
    let (config, layer, annotations) = match format {
        Format::Compat => {
            let tar = compat_tar(&wasm).map_err(io)?;
            let rootfs = RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![format!("sha256:{}", sha256_hex(&tar))])
                .build()
                .map_err(oci("rootfs"))?;
            let config = ImageConfigurationBuilder::default()
                .architecture(Arch::Wasm)
                .os(Os::Other("wasip1".into()))
                .rootfs(rootfs)
                .build()
                .map_err(oci("image configuration"))?;
            let config_json = serde_json::to_vec(&config).map_err(|e| io(e.into()))?;
            let config = layout.blob(MediaType::ImageConfig, &config_json, None)?;
            let layer = layout.blob(MediaType::ImageLayerGzip, &gzip(&tar).map_err(io)?, None)?;
            (
                config,
                layer,
                HashMap::from([("module.wasm.image/variant".to_owned(), "compat".to_owned())]),
            )
        }
        Format::Artifact => {
            let runtime = serde_json::json!({
                "type": "envoy_proxy",
                "abiVersions": ["v0.2.1"],
                "config": { "rootIds": [root_id] },
            });
            let config = layout.blob(MediaType::Other(WASM_CONFIG.into()), runtime.to_string().as_bytes(), None)?;
            let title = HashMap::from([("org.opencontainers.image.title".to_owned(), COMPAT_FILE.to_owned())]);
            let layer = layout.blob(MediaType::Other(WASM_LAYER.into()), &wasm, Some(title))?;
            (config, layer, HashMap::new())
        }
    };
    let mut manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(vec![layer]);
    if !annotations.is_empty() {
        manifest = manifest.annotations(annotations);
    }
    let manifest = manifest.build().map_err(oci("manifest"))?;
    let manifest_json = serde_json::to_vec(&manifest).map_err(|e| io(e.into()))?;
    let reference = HashMap::from([("org.opencontainers.image.ref.name".to_owned(), tag.to_owned())]);
    let descriptor = layout.blob(MediaType::ImageManifest, &manifest_json, Some(reference))?;
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![descriptor])
        .build()
        .map_err(oci("index"))?;
    layout.write(Path::new("index.json"), &serde_json::to_vec(&index).map_err(|e| io(e.into()))?)?;
    let oci_layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()
        .map_err(oci("layout"))?;
    layout.write(Path::new("oci-layout"), &serde_json::to_vec(&oci_layout).map_err(|e| io(e.into()))?)?;
    Ok(Packaged {
        manifest_digest: format!("sha256:{}", sha256_hex(&manifest_json)),
        module_digest: format!("sha256:{}", sha256_hex(&wasm)),
        module_bytes: wasm.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(dir: &Path) -> PathBuf {
        let p = dir.join("m.wasm");
        std::fs::write(&p, b"\0asm\x01\0\0\0").unwrap();
        p
    }

    #[test]
    fn the_same_module_gives_the_same_digest_in_both_formats() {
        let d = tempfile::tempdir().unwrap();
        let d = d.path();
        let m = module(d);
        for format in [Format::Compat, Format::Artifact] {
            let a = write_layout(&m, &d.join(format!("{format:?}-a")), format, "v1", "certgate").unwrap();
            let b = write_layout(&m, &d.join(format!("{format:?}-b")), format, "v1", "certgate").unwrap();
            assert_eq!(a, b, "{format:?}");
            let blob = d
                .join(format!("{format:?}-a/blobs/sha256"))
                .join(a.manifest_digest.trim_start_matches("sha256:"));
            let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap();
            let layer = manifest["layers"][0]["mediaType"].as_str().unwrap().to_owned();
            match format {
                Format::Compat => assert_eq!(layer, "application/vnd.oci.image.layer.v1.tar+gzip"),
                Format::Artifact => assert_eq!(layer, WASM_LAYER),
            }
        }
    }

    #[test]
    fn bad_input_is_refused_with_what_is_wrong() {
        let d = tempfile::tempdir().unwrap();
        let d = d.path();
        let m = module(d);
        let not_wasm = d.join("x.txt");
        std::fs::write(&not_wasm, "hello").unwrap();
        let out = d.join("out");
        assert!(matches!(
            write_layout(&not_wasm, &out, Format::Compat, "v1", "r"),
            Err(PackageError::NotWasm { .. })
        ));
        assert!(matches!(
            write_layout(&d.join("none.wasm"), &out, Format::Compat, "v1", "r"),
            Err(PackageError::ReadModule { .. })
        ));
        assert!(matches!(
            write_layout(&m, &out, Format::Compat, "-bad", "r"),
            Err(PackageError::BadTag { .. })
        ));
        write_layout(&m, &out, Format::Compat, "v1", "r").unwrap();
        let again = write_layout(&m, &out, Format::Compat, "v1", "r").unwrap_err();
        assert!(again.to_string().contains("not empty"), "{again}");
    }
}
