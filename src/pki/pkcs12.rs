//! A member's TLS identity as a PKCS#12 file, for a browser or an operating system's
//! certificate store: the auth certificate, the partnership CA's certificate after it, and
//! the private key, under a passphrase.
//!
//! By default the file is what OpenSSL 3, NSS (Firefox, Chromium on Linux) and current
//! browsers write and import: the key and the certificates encrypted with PBES2 (PBKDF2 with
//! HMAC-SHA-256, AES-256-CBC), the whole protected by an HMAC-SHA-256 MAC, both derived with
//! [`ITERATIONS`] iterations. [`Protection::Legacy`] (3DES, HMAC-SHA-1) is for the old
//! importers that know nothing else, on request only.

use super::PkiError;

/// Key-derivation iterations, for the encryption and for the MAC.
pub const ITERATIONS: u32 = 100_000;

/// Shortest passphrase accepted: the file holds a private key.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

/// How the file is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// PBES2 / PBKDF2-HMAC-SHA-256 / AES-256-CBC, MAC HMAC-SHA-256.
    Modern,
    /// PBE-SHA1-3DES, MAC HMAC-SHA-1: for importers that read nothing newer.
    Legacy,
}

/// The PKCS#12 file of `chain` (the leaf first, then the CA) and `key` (PKCS#8 DER), named
/// `alias`, under `passphrase`.
pub fn export(
    alias: &str,
    chain: &[Vec<u8>],
    key_pkcs8: &[u8],
    passphrase: &str,
    protection: Protection,
) -> Result<Vec<u8>, PkiError> {
    use p12_keystore::{
        Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
        PrivateKeyChain,
    };
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(PkiError::Profile(format!(
            "the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters: the file \
             holds the private key"
        )));
    }
    let bad = |what: &str, e: p12_keystore::error::Error| {
        PkiError::Profile(format!("{what} cannot go into a PKCS#12 file: {e}"))
    };
    let certs = chain
        .iter()
        .map(|der| Certificate::from_der(der).map_err(|e| bad("a certificate", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(leaf) = chain.first() else {
        return Err(PkiError::Profile("no certificate to export".into()));
    };
    let key = PrivateKey::from_der(key_pkcs8).map_err(|e| bad("the key", e))?;
    // The local key id ties the key to its certificate, as importers pair them.
    let id = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf);
    let mut store = KeyStore::new();
    store.add_entry(
        alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(id.as_ref().to_vec(), key, certs)),
    );
    let (encryption, mac) = match protection {
        Protection::Modern => (
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            MacAlgorithm::HmacSha256,
        ),
        Protection::Legacy => (
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            MacAlgorithm::HmacSha1,
        ),
    };
    store
        .writer(passphrase)
        .encryption_algorithm(encryption)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(mac)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|e| bad("the identity", e))
}
