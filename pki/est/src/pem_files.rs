//! The PEM files the server and the client read (certificate chains, keys,
//! CRLs); an error names the file.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// A file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {what}", path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub what: String,
}

impl FileError {
    /// `path` cannot be used because of `what`.
    pub fn new(path: &Path, what: impl ToString) -> Self {
        FileError {
            path: path.to_owned(),
            what: what.to_string(),
        }
    }
}

fn blocks<T: PemObject>(path: &Path) -> Result<Vec<T>, FileError> {
    T::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| FileError::new(path, e))
}

/// Every certificate in the file; none is an error.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let found = blocks(path)?;
    if found.is_empty() {
        return Err(FileError::new(path, "no CERTIFICATE in the file"));
    }
    Ok(found)
}

/// Every CRL in the file.
pub fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, FileError> {
    blocks(path)
}

/// The private key in the file.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, FileError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| FileError::new(path, format!("no usable private key: {e}")))
}
