//! PKCS#12 bundles for browsers and OS key stores: the client's key, its
//! certificate and the issuing CA, under one password.

use p12_keystore::{Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey, PrivateKeyChain};
use sha2::{Digest, Sha256};

/// How the bundle is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protection {
    /// PBES2 with AES-256-CBC and an HMAC-SHA-256 MAC, as OpenSSL 3 writes:
    /// Firefox, Chromium (NSS), current macOS and Windows read it.
    #[default]
    Modern,
    /// 3DES with an HMAC-SHA-1 MAC, for older macOS Keychain and Windows.
    Legacy,
}

/// Builds the bundle. `chain_der` is the client certificate first, then its CAs.
/// `alias` becomes the friendly name a browser shows.
pub fn bundle(alias: &str, key_pkcs8_der: &[u8], chain_der: &[Vec<u8>], password: &str, protection: Protection) -> Result<Vec<u8>, String> {
    let key = PrivateKey::from_der(key_pkcs8_der).map_err(|e| format!("the private key: {e}"))?;
    let certs = chain_der
        .iter()
        .map(|der| Certificate::from_der(der).map_err(|e| format!("a certificate of the chain: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(leaf) = chain_der.first() else {
        return Err("no certificate to bundle".into());
    };
    // The local key id ties the key to its certificate; the certificate's hash
    // is unique and stable.
    let key_id = Sha256::digest(leaf).to_vec();
    let mut store = KeyStore::new();
    store.add_entry(alias, KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(key_id, key, certs)));
    let writer = store.writer(password);
    let writer = match protection {
        Protection::Modern => writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256),
        Protection::Legacy => writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1),
    };
    writer
        .encryption_iterations(100_000)
        .mac_iterations(100_000)
        .write()
        .map_err(|e| e.to_string())
}

/// What a bundle holds, read back: the alias and the DER certificates, leaf
/// first. A wrong password is told apart from a damaged file.
pub fn open(data: &[u8], password: &str) -> Result<(String, Vec<Vec<u8>>), String> {
    let store = KeyStore::from_pkcs12(data, password, p12_keystore::Pkcs12ImportPolicy::Relaxed).map_err(|e| match e {
        p12_keystore::error::Error::MacError(_) => "wrong password (the MAC does not verify)".to_owned(),
        other => format!("not a PKCS#12 file certgate can read: {other}"),
    })?;
    let (alias, chain) = store.private_key_chain().ok_or("it holds no private key")?;
    Ok((alias.to_owned(), chain.certs().iter().map(|c| c.as_der().to_vec()).collect()))
}
