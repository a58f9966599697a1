//! The PKI home on disk: one directory per CA, the issued certificates, the CRL
//! bundle. Every write goes through `keys::write_new`, so nothing is replaced
//! without `--force`.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{Issuer, KeyPair, PublicKeyData};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::index::{Entry, Index};
use super::keys::{load_key, write_atomically, write_new, Passphrase};
use super::PkiError;

// The files of a CA directory.
/// The CA's certificate.
pub const CERT_FILE: &str = "ca.pem";
/// The CA's private key (mode 0600; may be moved offline).
pub const KEY_FILE: &str = "ca.key";
/// The CA's latest CRL.
pub const CRL_FILE: &str = "crl.pem";

/// The PKI home directory.
#[derive(Debug, Clone)]
pub struct Home {
    /// Where it is.
    pub dir: PathBuf,
}

/// Names of CAs and issued certificates become file names: keep them plain.
pub fn check_name(what: &str, name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(PkiError::Name(format!(
            "{what} {name:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@', not starting with '.' or '-'"
        )))
    }
}

impl Home {
    /// The PKI home at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Home { dir: dir.into() }
    }

    /// The directory of the CA named `name`.
    pub fn ca_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A file under `issued/`.
    pub fn issued(&self, file: &str) -> PathBuf {
        self.dir.join("issued").join(file)
    }

    /// `crls.pem`: every CA's latest CRL, for Envoy and `certgate serve`.
    pub fn crl_bundle(&self) -> PathBuf {
        self.dir.join("crls.pem")
    }

    /// The CAs present (directories holding a `ca.pem`), sorted by name.
    pub fn ca_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join(CERT_FILE).is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    /// The CA named `name`, or an error listing the CAs there are.
    pub fn open_ca(&self, name: &str) -> Result<Ca, PkiError> {
        check_name("CA name", name)?;
        let dir = self.ca_dir(name);
        if !dir.join(CERT_FILE).is_file() {
            let names = self.ca_names();
            let known = if names.is_empty() {
                String::new()
            } else {
                format!(" (CAs here: {})", names.join(", "))
            };
            return Err(PkiError::NoSuchCa {
                name: name.to_owned(),
                home: self.dir.clone(),
                known,
            });
        }
        Ca::open(name, dir)
    }

    /// The CAs here whose subject is `name` (compared as DER, byte for
    /// byte, as a verifier chains): the possible issuers of a certificate
    /// whose issuer field that is.
    pub fn cas_named(&self, name: &x509_parser::x509::X509Name<'_>) -> Result<Vec<Ca>, PkiError> {
        let mut out = Vec::new();
        for ca_name in self.ca_names() {
            let ca = self.open_ca(&ca_name)?;
            if parse_cert(&ca.cert_path(), &ca.cert_der)?.subject().as_raw() == name.as_raw() {
                out.push(ca);
            }
        }
        Ok(out)
    }

    /// Rewrites `crls.pem` from every CA's latest CRL.
    pub fn rebuild_crl_bundle(&self) -> Result<PathBuf, PkiError> {
        let mut bundle = String::new();
        for name in self.ca_names() {
            let path = self.ca_dir(&name).join(CRL_FILE);
            if path.is_file() {
                bundle.push_str(&fs::read_to_string(&path).map_err(PkiError::read(&path))?);
            }
        }
        let path = self.crl_bundle();
        write_atomically(&path, bundle.as_bytes())?;
        Ok(path)
    }
}

/// The CA's lock, held until dropped.
#[derive(Debug)]
pub struct CaLock {
    _file: fs::File,
}

/// One CA directory.
#[derive(Debug, Clone)]
pub struct Ca {
    /// Its name (the directory's).
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its certificate, PEM.
    pub cert_pem: String,
    /// Its certificate, DER.
    pub cert_der: Vec<u8>,
}

/// What a CA certificate allows, read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFacts {
    /// Issuer and subject are the same: a root.
    pub self_signed: bool,
    /// Its extended key usage is clientAuth only: it must not sign servers.
    pub client_only: bool,
    /// When it expires.
    pub not_after: OffsetDateTime,
}

/// The DER of every certificate in a PEM file, in order.
pub fn cert_file(path: &Path) -> Result<Vec<Vec<u8>>, PkiError> {
    let text = fs::read(path).map_err(PkiError::read(path))?;
    let certs = certgate_x509::pem::certificates(&text);
    if certs.is_empty() {
        return Err(PkiError::bad_file(path, "no CERTIFICATE in the file".to_owned()));
    }
    Ok(certs)
}

/// Parses a certificate read from `path`; the error names the file.
pub fn parse_cert<'a>(path: &Path, der: &'a [u8]) -> Result<X509Certificate<'a>, PkiError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| PkiError::bad_file(path, format!("not an X.509 certificate: {e}")))
}

impl Ca {
    fn open(name: &str, dir: PathBuf) -> Result<Ca, PkiError> {
        let path = dir.join(CERT_FILE);
        let cert_pem = fs::read_to_string(&path).map_err(PkiError::read(&path))?;
        let cert_der = cert_file(&path)?.into_iter().next().unwrap_or_default();
        let ca = Ca {
            name: name.to_owned(),
            dir,
            cert_pem,
            cert_der,
        };
        let cert = parse_cert(&path, &ca.cert_der)?;
        if !cert.is_ca() {
            return Err(PkiError::bad_file(&path, "is not a CA certificate (basicConstraints CA:FALSE)"));
        }
        Ok(ca)
    }

    /// `ca.pem`.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CERT_FILE)
    }
    /// `ca.key`.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }
    /// `index.txt`.
    pub fn index_path(&self) -> PathBuf {
        self.dir.join("index.txt")
    }
    /// `crl.pem`.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join(CRL_FILE)
    }

    /// `crl.der`: the CRL in the form relying parties download from the URL.
    pub fn crl_der_path(&self) -> PathBuf {
        self.dir.join("crl.der")
    }

    /// Where its CRL is published (`crl-url` in its directory), if set: every
    /// certificate it signs names that URL.
    pub fn crl_url(&self) -> Result<Option<String>, PkiError> {
        let path = self.dir.join("crl-url");
        match fs::read_to_string(&path) {
            Ok(text) => {
                let url = text.trim().to_owned();
                super::profile::check_crl_url(&url).map_err(|e| PkiError::bad_file(&path, e.to_string()))?;
                Ok(Some(url))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(cause) => Err(PkiError::Read { path, cause }),
        }
    }

    /// Sets where its CRL is published, for the certificates it signs from now on.
    pub fn set_crl_url(&self, url: &str) -> Result<PathBuf, PkiError> {
        super::profile::check_crl_url(url)?;
        let path = self.dir.join("crl-url");
        write_atomically(&path, format!("{url}\n").as_bytes())?;
        Ok(path)
    }

    /// What its certificate allows.
    pub fn facts(&self) -> Result<CaFacts, PkiError> {
        let cert = parse_cert(&self.cert_path(), &self.cert_der)?;
        let client_only = match cert.extended_key_usage() {
            Ok(Some(eku)) => {
                let e = &eku.value;
                e.client_auth && !e.server_auth && !e.any
            }
            _ => false,
        };
        Ok(CaFacts {
            self_signed: cert.subject() == cert.issuer() && cert.verify_signature(None).is_ok(),
            client_only,
            not_after: cert.validity().not_after.to_datetime(),
        })
    }

    /// The CA's signing key, checked to belong to its certificate. The error
    /// for a key moved offline says so.
    pub fn issuer(&self, passphrase: &Passphrase) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let key_path = self.key_path();
        if !key_path.is_file() {
            return Err(PkiError::NotFound(format!(
                "{} is not there: CA {} cannot sign without its key (if it was moved offline, put it back for this step)",
                key_path.display(),
                self.name
            )));
        }
        let key = load_key(&key_path, passphrase)?;
        let cert = parse_cert(&self.cert_path(), &self.cert_der)?;
        if key.subject_public_key_info() != cert.public_key().raw {
            return Err(PkiError::bad_file(
                &key_path,
                format!("is not the key of {}", self.cert_path().display()),
            ));
        }
        Issuer::from_ca_cert_der(&self.cert_der.as_slice().into(), key).map_err(PkiError::cert(&self.name))
    }

    /// Its index, read from `index.txt` (empty if there is none yet).
    /// Its index as far as it can be read, and each line that cannot
    /// (`index.txt: line N: ...`), for `pki list`.
    pub fn index_lenient(&self) -> Result<(Index, Vec<String>), PkiError> {
        let path = self.index_path();
        match fs::read_to_string(&path) {
            Ok(text) => {
                let (index, bad) = Index::parse_all(&text);
                Ok((index, bad.into_iter().map(|b| format!("{}: {b}", path.display())).collect()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Index::default(), Vec::new())),
            Err(e) => Err(PkiError::Read { path, cause: e }),
        }
    }

    /// Its index; a line that cannot be read is an error naming it.
    pub fn index(&self) -> Result<Index, PkiError> {
        let path = self.index_path();
        match fs::read_to_string(&path) {
            Ok(text) => Index::parse(&text).map_err(|m| PkiError::bad_file(&path, m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(PkiError::Read { path, cause: e }),
        }
    }

    /// Writes its index to `index.txt`: whole, synced, then renamed over
    /// the old one (and the directory synced), so a crash leaves the old
    /// index or the new one, never half of one.
    pub fn save_index(&self, index: &Index) -> Result<(), PkiError> {
        write_atomically(&self.index_path(), index.to_text().as_bytes())
    }

    /// Holds the lock of its index (`.lock`, an advisory `flock`) until the
    /// guard is dropped: one writer of the index at a time, across threads and
    /// processes (the EST server's workers, `pki revoke`, `pki requests approve`).
    pub fn lock(&self) -> Result<CaLock, PkiError> {
        self.lock_file(".lock")
    }

    /// Holds the lock of its approval queue (`.queue-lock`): one decision on a
    /// request at a time. Taken before the index's, never after it.
    pub fn lock_queue(&self) -> Result<CaLock, PkiError> {
        self.lock_file(".queue-lock")
    }

    fn lock_file(&self, name: &str) -> Result<CaLock, PkiError> {
        let path = self.dir.join(name);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(PkiError::write(&path))?;
        file.lock().map_err(PkiError::write(&path))?;
        Ok(CaLock { _file: file })
    }

    /// Reads the index, changes it and writes it back, under the CA's lock,
    /// so no other writer's line is lost in between.
    pub fn update_index<T>(&self, change: impl FnOnce(&mut Index) -> Result<T, PkiError>) -> Result<T, PkiError> {
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let out = change(&mut index)?;
        self.save_index(&index)?;
        Ok(out)
    }

    /// Records a certificate this CA signed: a copy under `certs/`, then a
    /// line in the index. A crash between the two leaves a copy without a
    /// line, which [`Ca::reconcile`] sets aside; the certificate was never
    /// handed out, as that happens only after both.
    pub fn record(&self, entry: Entry, cert_pem: &str) -> Result<(), PkiError> {
        self.update_index(|index| {
            // a serial a crash set aside is taken too; an existing copy makes write_new refuse
            if index.find_serial(&entry.serial).is_some() || self.unrecorded_copy(&entry.serial).exists() {
                return Err(PkiError::Conflict(format!(
                    "CA {} already issued serial {}",
                    self.name, entry.serial
                )));
            }
            write_new(&self.issued_copy(&entry.serial), cert_pem.as_bytes(), false, false)?;
            index.entries.push(entry);
            Ok(())
        })
    }

    /// After a crash: every copy under `certs/` without an index line is
    /// moved to `certs/unrecorded/` (kept, so its serial is never reused),
    /// and every index line must have its copy. Returns what it moved.
    pub fn reconcile(&self) -> Result<Vec<PathBuf>, PkiError> {
        let _lock = self.lock()?;
        let index = self.index()?;
        let certs = self.dir.join("certs");
        let mut moved = Vec::new();
        for entry in fs::read_dir(&certs).into_iter().flatten().flatten() {
            let path = entry.path();
            let Some(serial) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".pem")) else {
                continue;
            };
            if index.find_serial(serial).is_none() {
                let to = self.unrecorded_copy(serial);
                fs::create_dir_all(certs.join("unrecorded")).map_err(PkiError::write(&to))?;
                fs::rename(&path, &to).map_err(PkiError::write(&to))?;
                moved.push(to);
            }
        }
        if let Some(missing) = index.entries.iter().find(|e| !self.issued_copy(&e.serial).is_file()) {
            return Err(PkiError::bad_file(
                &self.index_path(),
                format!("serial {} has no copy under {}", missing.serial, certs.display()),
            ));
        }
        Ok(moved)
    }

    /// `certs/<serial>.pem`: the copy of a certificate this CA issued.
    pub fn issued_copy(&self, serial: &str) -> PathBuf {
        self.dir.join("certs").join(format!("{serial}.pem"))
    }

    /// `certs/unrecorded/<serial>.pem`: a copy a crash left without its index line.
    fn unrecorded_copy(&self, serial: &str) -> PathBuf {
        self.dir.join("certs").join("unrecorded").join(format!("{serial}.pem"))
    }

    /// The next CRL number, saved before use so a number is never reused.
    pub fn next_crl_number(&self) -> Result<u64, PkiError> {
        let path = self.dir.join("crlnumber");
        let last = match fs::read_to_string(&path) {
            Ok(t) => t.trim().parse::<u64>().map_err(|_| PkiError::bad_file(&path, "is not a number"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(PkiError::Read { path, cause: e }),
        };
        let next = last.saturating_add(1);
        write_atomically(&path, format!("{next}\n").as_bytes())?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyKind;
    use crate::ops::{init_root, CaSpec};
    use crate::profile::{Subject, Validity};

    fn a_ca() -> (tempfile::TempDir, Ca) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let spec = CaSpec {
            name: "root-ca".into(),
            subject: Subject::cn("Test Root"),
            validity: Validity::days(30),
            key: KeyKind::P256,
            serial: None,
            encrypt: None,
            crl_days: 30,
            crl_url: None,
        };
        init_root(&home, &spec).unwrap();
        let ca = home.open_ca("root-ca").unwrap();
        (dir, ca)
    }

    #[test]
    fn a_copy_signed_but_never_recorded_is_set_aside_and_its_serial_stays_taken() {
        let (_dir, ca) = a_ca();
        let orphan = ca.dir.join("certs").join("0ABC.pem");
        std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
        std::fs::write(&orphan, "a certificate a crash left without its index line").unwrap();
        let moved = ca.reconcile().unwrap();
        assert_eq!(moved, vec![ca.dir.join("certs/unrecorded/0ABC.pem")]);
        assert!(!orphan.exists());
        let again = Entry {
            serial: "0ABC".into(),
            not_after: crate::profile::now(),
            revoked: None,
            name: "again".into(),
            subject: "CN=again".into(),
            issued_by: crate::index::IssuedBy::Cli,
        };
        let err = ca.record(again, "a certificate with the serial set aside").unwrap_err().to_string();
        assert!(err.contains("already issued serial 0ABC"), "never reused: {err}");
        assert!(ca.reconcile().unwrap().is_empty(), "once");
    }

    #[test]
    fn an_index_line_without_its_copy_is_named() {
        let (_dir, ca) = a_ca();
        ca.update_index(|index| {
            index.entries.push(Entry {
                serial: "0DEF".into(),
                not_after: crate::profile::now(),
                revoked: None,
                name: "lost".into(),
                subject: "CN=lost".into(),
                issued_by: crate::index::IssuedBy::Cli,
            });
            Ok(())
        })
        .unwrap();
        let err = ca.reconcile().unwrap_err().to_string();
        assert!(err.contains("serial 0DEF has no copy"), "{err}");
    }
}
