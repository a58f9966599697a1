//! `certgate pki`: a small certificate authority for client-certificate set-ups.
//!
//! Everything lives in one directory (the "PKI home", `./pki` by default):
//!
//! ```text
//! pki/
//!   root-ca/            one directory per CA, named by the user
//!     ca.pem            the CA certificate
//!     ca.key            its private key, mode 0600 (optionally passphrase-encrypted);
//!                       the root's can go offline once the client CA exists
//!     index.txt         every certificate it issued: status, serial, expiry,
//!                       revocation, name, subject (tab-separated, one per line)
//!     certs/<serial>.pem  a copy of each certificate it issued
//!     crl.pem           its latest CRL;  crlnumber: the last CRL number used
//!   client-ca/ ...      an intermediate (path length 0, clientAuth only)
//!   issued/<name>.pem, <name>.key, <name>-chain.pem, <name>.p12
//!   crls.pem            every CA's latest CRL, for Envoy and `certgate serve`
//! ```
//!
//! The modules: `profile` (what goes into each kind of certificate, pure),
//! `index` (the index file), `keys` (generation, 0600 files, encryption),
//! `csr` (checking a user's request), `p12` (browser bundles), `store` (the
//! directories), `ops` (one function per subcommand) and `cli` (its
//! arguments). The test PKI is built from `ops` by `certgate-fixtures`.
#![warn(missing_docs)]

#[allow(missing_docs)]
// clap turns doc comments into --help text: every argument has one; the flattened groups and the types clap reads need none
pub mod cli;
pub mod csr;
pub mod enroll;
pub mod index;
pub mod keys;
pub mod list;
pub mod ops;
pub mod p12;
pub mod profile;
pub mod store;

use std::path::PathBuf;

/// Everything `certgate pki` can refuse or fail at. Each names the file, CA,
/// serial or field at fault.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // each variant's message says what it is
pub enum PkiError {
    // Causes are part of the message (not `source`), so `{:#}` does not repeat them.
    #[error("cannot build certificate {name}: {cause}")]
    Certificate { name: String, cause: rcgen::Error },
    #[error("cannot read {path}: {cause}")]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("cannot write {path}: {cause}")]
    Write { path: PathBuf, cause: std::io::Error },
    #[error("{path} already exists: nothing was written (give --force to replace it)")]
    Exists { path: PathBuf },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("no CA named {name} under {home}: run `certgate pki init-root` or `init-client-ca` first{known}")]
    NoSuchCa { name: String, home: PathBuf, known: String },
    #[error("{path} is encrypted: {message}")]
    Password { path: PathBuf, message: String },
    #[error("the CSR {path} is refused: {cause}")]
    CsrRefused { path: PathBuf, cause: csr::CsrError },
    /// An argument or setting cannot be used as given (a date, a serial, a
    /// count, a missing name): the person who typed it can fix it.
    #[error("{0}")]
    Usage(String),
    /// A name (a SAN, a CA's or a certificate's file name) is refused by the
    /// standard it must meet: what a requester asked for, not the CA's fault.
    #[error("{0}")]
    Name(String),
    /// What was named is not there: a request, a certificate, a serial, a
    /// CA key moved offline.
    #[error("{0}")]
    NotFound(String),
    /// The state forbids it: a request decided already, a serial revoked or
    /// taken already, a CA that would outlive its root.
    #[error("{0}")]
    Conflict(String),
    /// What should not fail did (no randomness, an encoder): nothing the
    /// caller asked for was wrong.
    #[error("{0}")]
    Internal(String),
}

impl PkiError {
    /// A read of `path` failed.
    pub fn read(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |cause| PkiError::Read {
            path: path.to_owned(),
            cause,
        }
    }

    /// A write to `path` failed.
    pub fn write(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |cause| PkiError::Write {
            path: path.to_owned(),
            cause,
        }
    }

    /// rcgen could not build the certificate `name`.
    pub fn cert(name: &str) -> impl FnOnce(rcgen::Error) -> Self + '_ {
        move |cause| PkiError::Certificate {
            name: name.to_owned(),
            cause,
        }
    }

    pub(crate) fn bad_file(path: &std::path::Path, message: impl Into<String>) -> Self {
        PkiError::BadFile {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}
