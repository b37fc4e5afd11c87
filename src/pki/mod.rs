//! Key material and certificates: the certificate profile (see [`crate::identity`]), private
//! key files, the gateway's own Ed25519 key, and the demo PKI in `certs-example/`.

use std::{io::Write, path::Path};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ED25519, SanType, SerialNumber,
};
use ring::{rand::SecureRandom, signature::Ed25519KeyPair};
use rustls_pki_types::{PrivateKeyDer, pem::PemObject};
use time::OffsetDateTime;

use crate::{
    checkpoint::{KeyType, NoteSigner, NoteVerifier},
    identity::{MEMBER_URI_PREFIX, MemberId},
    schema::CodeLists,
};

/// id-kp-documentSigning (RFC 9336) as OID arcs.
const DOCUMENT_SIGNING: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 3, 36];

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Certificate or key generation failed.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A key file holds no usable key.
    #[error("{path}: {reason}")]
    BadKey {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A member or name that the profile cannot encode, or CA state that is not usable.
    #[error("{0}")]
    Profile(String),
    /// A certificate signing request that cannot be honoured.
    #[error("certificate request: {0}")]
    Csr(String),
    /// No such certificate.
    #[error("{0}")]
    NotFound(String),
    /// The certificate is revoked already.
    #[error("{0}")]
    AlreadyRevoked(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What a member certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// TLS client authentication (EKU clientAuth, key usage digitalSignature).
    Auth,
    /// Content commitment on submissions (EKU documentSigning, key usages digitalSignature and
    /// contentCommitment).
    Signing,
}

impl CertKind {
    /// `auth` or `signing`: the name on the wire, on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Signing => "signing",
        }
    }

    /// The kind named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Auth, Self::Signing]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// A fresh random serial number: 16 bytes, positive, never starting with a zero byte.
pub fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Profile("the operating system provided no randomness".into()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Parameters of the partnership CA certificate.
pub fn ca_params(
    name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "focalgate partnership");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    params.key_identifier_method = KeyIdMethod::Sha256;
    Ok(params)
}

/// Parameters of a member certificate following the profile in [`crate::identity`].
pub fn member_params(
    member: &MemberId,
    organisation: &str,
    kind: CertKind,
    lists: &CodeLists,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, PkiError> {
    let alpha2 = lists
        .area
        .get(member.country())
        .and_then(|c| c.alpha2.clone())
        .ok_or_else(|| {
            PkiError::Profile(format!("{} is not a country in CL_AREA", member.country()))
        })?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CountryName, alpha2);
    params
        .distinguished_name
        .push(DnType::OrganizationName, organisation);
    let purpose = match kind {
        CertKind::Auth => "authentication",
        CertKind::Signing => "signing",
    };
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{member} {purpose}"));
    let uri = format!("{MEMBER_URI_PREFIX}{member}");
    params.subject_alt_names = vec![SanType::URI(
        uri.try_into()
            .map_err(|_| PkiError::Profile("bad member URI".into()))?,
    )];
    match kind {
        CertKind::Auth => {
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        CertKind::Signing => {
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::ContentCommitment,
            ];
            params.extended_key_usages =
                vec![ExtendedKeyUsagePurpose::Other(DOCUMENT_SIGNING.to_vec())];
        }
    }
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// Parameters of the gateway's TLS server certificate for DNS names and IP addresses.
pub fn server_params(
    names: &[&str],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, PkiError> {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "focalgate partnership");
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("focalgate"),
    );
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// Writes a file readable by its owner only (0600 on Unix), replacing any existing one.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io_err(path))?;
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(io_err(path))?;
    file.write_all(contents).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// Writes a public file (certificate, CRL).
pub fn write_public(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    std::fs::write(path, contents).map_err(io_err(path))
}

/// Replaces `path` with `contents` in one step (write beside it, sync, rename), so that a
/// reader — the gateway watching its CRL — never sees half a file.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    write_public(&tmp, contents)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// A PEM block with 64-character lines.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Reads a PEM private key as PKCS#8 DER.
pub fn read_pkcs8(path: &Path) -> Result<Vec<u8>, PkiError> {
    let bad = |reason: String| PkiError::BadKey {
        path: path.display().to_string(),
        reason,
    };
    match PrivateKeyDer::from_pem_file(path) {
        Ok(PrivateKeyDer::Pkcs8(der)) => Ok(der.secret_pkcs8_der().to_vec()),
        Ok(_) => Err(bad(
            "not a PKCS#8 private key (\"BEGIN PRIVATE KEY\")".into()
        )),
        Err(e) => Err(bad(format!("not a PEM private key: {e}"))),
    }
}

/// The DER prefix of an Ed25519 private key in PKCS#8 v1 (RFC 8410 §7): `SEQUENCE { INTEGER 0,
/// AlgorithmIdentifier { 1.3.101.112 }, OCTET STRING { OCTET STRING (32 bytes) } }`; the seed
/// follows. What `openssl genpkey -algorithm ed25519` writes.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A fresh key pair for `alg`. Ed25519 keys are PKCS#8 v1, without the public key that v2 adds
/// (RFC 5958): OpenSSL 3.0, Node.js and Python's `cryptography` refuse the v2 form that *ring*
/// generates. ECDSA keys are PKCS#8 v1 already. Every key the project writes comes from here.
pub fn generate_key(alg: &'static rcgen::SignatureAlgorithm) -> Result<KeyPair, PkiError> {
    if alg != &PKCS_ED25519 {
        #[allow(clippy::disallowed_methods)]
        // the one call, for the algorithms that are v1 already
        return Ok(KeyPair::generate_for(alg)?);
    }
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    let mut der = ED25519_PKCS8_V1_PREFIX.to_vec();
    der.extend_from_slice(&seed);
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(der),
        alg,
    )?)
}

/// Loads the gateway's Ed25519 key from `path`, creating it (mode 0600) if it does not exist.
/// Returns the key and whether it was created.
pub fn load_or_create_gateway_key(path: &Path) -> Result<(Ed25519KeyPair, bool), PkiError> {
    let created = if path.exists() {
        false
    } else {
        let key = generate_key(&PKCS_ED25519)?;
        write_private(path, key.serialize_pem().as_bytes())?;
        true
    };
    Ok((read_ed25519_key(path)?, created))
}

/// The files of a witness's directory: its cosigning key and its verifier key.
pub const WITNESS_KEY: &str = "witness.key";
/// See [`WITNESS_KEY`].
pub const WITNESS_VKEY: &str = "witness.vkey";

/// Makes a witness's cosigning key named `name` in `dir` (`witness.key`, Ed25519 PKCS#8,
/// mode 0600) and writes its verifier key (`witness.vkey`); never replaces a key.
pub fn create_witness_key(dir: &Path, name: &str) -> Result<NoteVerifier, PkiError> {
    let key_path = dir.join(WITNESS_KEY);
    if key_path.exists() {
        return Err(PkiError::Profile(format!(
            "{} exists: a witness keeps its key (a new key is a new witness)",
            key_path.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let (key, _) = load_or_create_gateway_key(&key_path)?;
    let signer = NoteSigner::from_key_pair(name, KeyType::Cosignature, key)
        .map_err(|e| PkiError::Profile(format!("witness name {name}: {e}")))?;
    let vkey = signer.verifier().clone();
    write_public(&dir.join(WITNESS_VKEY), format!("{vkey}\n").as_bytes())?;
    Ok(vkey)
}

/// The cosigning key in a witness's directory (`witness.key`), named as its `witness.vkey`
/// says, which it must match.
pub fn read_witness_key(dir: &Path) -> Result<NoteSigner, PkiError> {
    let vkey_path = dir.join(WITNESS_VKEY);
    let bad = |reason: String| PkiError::BadKey {
        path: vkey_path.display().to_string(),
        reason,
    };
    let vkey = std::fs::read_to_string(&vkey_path)
        .map_err(|e| bad(format!("{e} (run `focalgate witness init`)")))?;
    let verifier = NoteVerifier::parse(vkey.trim()).map_err(|e| bad(e.to_string()))?;
    let key = read_ed25519_key(&dir.join(WITNESS_KEY))?;
    let signer = NoteSigner::from_key_pair(verifier.name(), KeyType::Cosignature, key)
        .map_err(|e| bad(e.to_string()))?;
    if signer.verifier() != &verifier {
        return Err(bad(format!(
            "not the verifier key of {}",
            dir.join(WITNESS_KEY).display()
        )));
    }
    Ok(signer)
}

/// Reads an Ed25519 private key (PKCS#8 PEM) from `path`.
pub fn read_ed25519_key(path: &Path) -> Result<Ed25519KeyPair, PkiError> {
    let der = read_pkcs8(path)?;
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| PkiError::BadKey {
        path: path.display().to_string(),
        reason: format!("not an Ed25519 key: {e}"),
    })
}

pub mod ca;
pub mod demo;
pub mod pkcs12;
