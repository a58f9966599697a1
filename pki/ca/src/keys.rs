//! Private keys: generated locally, written with mode 0600, never replaced
//! without `--force`, and optionally encrypted with a passphrase (PKCS#8 with
//! scrypt and AES-256-CBC, which `openssl pkey` reads).

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use pkcs8::der::pem::LineEnding;
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use rcgen::KeyPair;

use super::PkiError;

/// The key types certgate generates. ECDSA P-256 is the default: small, fast,
/// and accepted by every TLS stack and browser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyKind {
    #[default]
    /// ECDSA P-256 with SHA-256.
    P256,
    /// ECDSA P-384 with SHA-384.
    P384,
    /// Ed25519 (not every browser takes it).
    Ed25519,
}

impl KeyKind {
    /// A fresh key of this kind; `name` is for the error.
    pub fn generate(self, name: &str) -> Result<KeyPair, PkiError> {
        let alg = match self {
            KeyKind::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyKind::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyKind::Ed25519 => &rcgen::PKCS_ED25519,
        };
        KeyPair::generate_for(alg).map_err(PkiError::cert(name))
    }
}

/// Where a passphrase comes from: the first line of a file, else a prompt on the
/// terminal. With neither, the operation stops and says which flag to give.
#[derive(Debug, Clone, Default)]
pub struct Passphrase {
    /// The file holding it, if one was given.
    pub file: Option<PathBuf>,
    /// The flag that gives the file, for the error message.
    pub flag: &'static str,
}

impl Passphrase {
    /// A passphrase read from `file`, or asked for; `flag` names the option that gives the file.
    pub fn from_file(file: Option<PathBuf>, flag: &'static str) -> Self {
        Passphrase { file, flag }
    }

    /// Reads the passphrase; `confirm` asks twice when prompting (for a new one).
    pub fn get(&self, what: &str, confirm: bool) -> Result<String, PkiError> {
        if let Some(path) = &self.file {
            let text = fs::read_to_string(path).map_err(PkiError::read(path))?;
            let line = text.lines().next().unwrap_or("");
            if line.is_empty() {
                return Err(PkiError::bad_file(path, "the passphrase file is empty"));
            }
            return Ok(line.to_owned());
        }
        if !std::io::stdin().is_terminal() {
            return Err(PkiError::Usage(format!(
                "{what} needs a passphrase: give {} FILE (not on a terminal, so no prompt)",
                self.flag
            )));
        }
        let prompt_err = |e: std::io::Error| PkiError::Usage(format!("cannot read the passphrase for {what}: {e}"));
        let first = rpassword::prompt_password(format!("Passphrase for {what}: ")).map_err(prompt_err)?;
        if first.is_empty() {
            return Err(PkiError::Usage(format!("an empty passphrase for {what} is not allowed")));
        }
        if confirm {
            let again = rpassword::prompt_password("Again: ").map_err(prompt_err)?;
            if again != first {
                return Err(PkiError::Usage(format!(
                    "the two passphrases for {what} differ; nothing was written"
                )));
            }
        }
        Ok(first)
    }
}

/// Writes `contents` to a new file; an existing one is an error unless `force`.
/// `private` files get mode 0600 from the moment they exist.
pub fn write_new(path: &Path, contents: &[u8], force: bool, private: bool) -> Result<(), PkiError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(PkiError::write(parent))?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => PkiError::Exists { path: path.to_owned() },
        _ => PkiError::Write {
            path: path.to_owned(),
            cause: source,
        },
    })?;
    // An existing file kept its old mode when replaced with --force.
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(PkiError::write(path))?;
    }
    file.write_all(contents).map_err(PkiError::write(path))?;
    file.sync_all().map_err(PkiError::write(path))?;
    sync_dir(path)
}

/// Flushes the directory holding `path`, so a file just created or renamed
/// there survives a crash as the directory's entry too.
fn sync_dir(path: &Path) -> Result<(), PkiError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(PkiError::write(dir))
}

/// Replaces `path` with `contents` at once: written to a temporary file in the
/// same directory, synced, renamed over it, and the directory synced. A
/// reader (Envoy watching an SDS file, `certgate serve` reloading) sees the
/// old file or the new one, never half of one, also after a crash; Envoy's
/// file watch reacts to the rename.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(PkiError::write(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".certgate-")
        .tempfile_in(dir)
        .map_err(PkiError::write(dir))?;
    tmp.write_all(contents).map_err(PkiError::write(tmp.path()))?;
    tmp.as_file().sync_all().map_err(PkiError::write(tmp.path()))?;
    // readable as the file it replaces was (a new file: 0644, not the temp file's 0600)
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0o644);
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode)).map_err(PkiError::write(tmp.path()))?;
    }
    tmp.persist(path).map_err(|e| PkiError::Write {
        path: path.to_owned(),
        cause: e.error,
    })?;
    sync_dir(path)
}

/// The key as PEM: plain PKCS#8, or encrypted PKCS#8 under `passphrase`.
pub fn key_pem(key: &KeyPair, passphrase: Option<&str>) -> Result<String, PkiError> {
    let Some(passphrase) = passphrase else {
        return Ok(key.serialize_pem());
    };
    let der = key.serialize_der();
    let fail = |e: &dyn std::fmt::Display| PkiError::Internal(format!("cannot encrypt the key: {e}"));
    let info = PrivateKeyInfoRef::try_from(der.as_slice()).map_err(|e| fail(&e))?;
    let encrypted = info.encrypt(passphrase.as_bytes()).map_err(|e| fail(&e))?;
    let pem = encrypted.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF).map_err(|e| fail(&e))?;
    Ok(pem.to_string())
}

/// Reads a private key file, asking for the passphrase only if it is encrypted.
pub fn load_key(path: &Path, passphrase: &Passphrase) -> Result<KeyPair, PkiError> {
    let text = fs::read_to_string(path).map_err(PkiError::read(path))?;
    let bad = |m: String| PkiError::bad_file(path, m);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let (_, der) = pem_rfc7468::decode_vec(text.trim().as_bytes()).map_err(|e| bad(format!("not PEM: {e}")))?;
        let info = EncryptedPrivateKeyInfoRef::try_from(der.as_slice()).map_err(|e| bad(format!("not an encrypted PKCS#8 key: {e}")))?;
        let password = passphrase.get(&path.display().to_string(), false)?;
        let plain = info.decrypt(password.as_bytes()).map_err(|_| PkiError::Password {
            path: path.to_owned(),
            message: "wrong passphrase (or a damaged file): the key did not decrypt".into(),
        })?;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(plain.as_bytes());
        return KeyPair::try_from(&der).map_err(|e| bad(format!("not a usable private key: {e}")));
    }
    KeyPair::from_pem(&text).map_err(|e| bad(format!("not a PKCS#8 private key certgate can use: {e}")))
}
