//! Key material and certificates: the certificate profile (see [`crate::identity`]), private
//! key files, the gateway's own Ed25519 key, and the demo PKI in `certs-example/`.

use std::{io::Write, path::Path};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, RevocationReason, RevokedCertParams,
    SanType, SerialNumber,
};
use ring::{rand::SecureRandom, signature::Ed25519KeyPair};
use rustls_pki_types::{PrivateKeyDer, pem::PemObject};
use time::{Duration, OffsetDateTime};

use crate::{
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
    /// A member or name that the profile cannot encode.
    #[error("{0}")]
    Profile(String),
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

/// Loads the gateway's Ed25519 key from `path`, creating it (mode 0600) if it does not exist.
/// Returns the key and whether it was created.
pub fn load_or_create_gateway_key(path: &Path) -> Result<(Ed25519KeyPair, bool), PkiError> {
    let created = if path.exists() {
        false
    } else {
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        write_private(path, key.serialize_pem().as_bytes())?;
        true
    };
    let der = read_pkcs8(path)?;
    let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| PkiError::BadKey {
        path: path.display().to_string(),
        reason: format!("not an Ed25519 key: {e}"),
    })?;
    Ok((key, created))
}

/// The demo PKI: what `focalgate ca demo` writes into `certs-example/`.
pub mod demo {
    use super::*;

    /// Country members of the demo (member id, organisation, signing key algorithm).
    pub const MEMBERS: [(&str, &str, &str); 6] = [
        (
            "KAZ:nfp",
            "Kazakhstan national focal point (demo)",
            "ed25519",
        ),
        (
            "KGZ:nfp",
            "Kyrgyzstan national focal point (demo)",
            "ed25519",
        ),
        (
            "TJK:nfp",
            "Tajikistan national focal point (demo)",
            "ed25519",
        ),
        (
            "TKM:nfp",
            "Turkmenistan national focal point (demo)",
            "ed25519",
        ),
        (
            "UZB:nfp",
            "Uzbekistan national focal point (demo)",
            "ed25519",
        ),
        ("DEU:nfp", "Germany national focal point (demo)", "p256"),
    ];
    /// Role identities of the demo: (folder, member id, organisation, role).
    pub const ROLES: [(&str, &str, &str, &str); 3] = [
        (
            "analyst",
            "PRT:analyst",
            "Regional analysis unit (demo)",
            "analyst",
        ),
        (
            "auditor",
            "LTU:auditor",
            "Partner audit office (demo)",
            "auditor",
        ),
        ("admin", "BEL:admin", "Hub operator (demo)", "admin"),
    ];

    /// The demo's sharing rules: most reporters share their country-level figures with every
    /// member; Turkmenistan only with the regional analysis group.
    const SHARING: &str = "\n# Who may see each reporter's country-level figures (a member always sees its own).\n\
                           [sharing]\ndefault = [\"everyone\"]\n\n[sharing.reporters]\nTKM = [\"group:regional-analysis\"]\n";

    struct Writer<'a> {
        out: &'a Path,
        ca_pem: String,
    }

    impl Writer<'_> {
        fn identity(
            &self,
            folder: &str,
            auth: (&rcgen::Certificate, &KeyPair),
            signing: (&rcgen::Certificate, &KeyPair),
        ) -> Result<(), PkiError> {
            let dir = self.out.join(folder);
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            write_public(&dir.join("ca.pem"), self.ca_pem.as_bytes())?;
            write_public(&dir.join("auth.pem"), auth.0.pem().as_bytes())?;
            write_private(&dir.join("auth.key"), auth.1.serialize_pem().as_bytes())?;
            write_public(&dir.join("signing.pem"), signing.0.pem().as_bytes())?;
            write_private(
                &dir.join("signing.key"),
                signing.1.serialize_pem().as_bytes(),
            )
        }
    }

    fn member(id: &str) -> Result<MemberId, PkiError> {
        MemberId::parse(id).ok_or_else(|| PkiError::Profile(format!("bad member id {id}")))
    }

    /// Generates the whole demo PKI into `out`, replacing what is there: the CA and its CRL,
    /// the server certificate, one identity folder per member and role, the negative
    /// identities `expired/`, `revoked/` and `wrong-ca/`, and the demo `policy.toml`.
    pub fn generate(out: &Path, lists: &CodeLists) -> Result<(), PkiError> {
        let now = OffsetDateTime::now_utc();
        let (from, until) = (now - Duration::days(1), now + Duration::days(10 * 365));
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let ca = CertifiedIssuer::self_signed(
            ca_params("focalgate demo partnership CA", from, until)?,
            ca_key,
        )?;
        let w = Writer {
            out,
            ca_pem: ca.pem(),
        };
        let ca_dir = out.join("ca");
        std::fs::create_dir_all(&ca_dir).map_err(io_err(&ca_dir))?;
        write_public(&ca_dir.join("ca.pem"), w.ca_pem.as_bytes())?;
        write_private(&ca_dir.join("ca.key"), ca.key().serialize_pem().as_bytes())?;

        let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let server =
            server_params(&["localhost", "127.0.0.1"], from, until)?.signed_by(&server_key, &ca)?;
        let server_dir = out.join("server");
        std::fs::create_dir_all(&server_dir).map_err(io_err(&server_dir))?;
        write_public(&server_dir.join("server.pem"), server.pem().as_bytes())?;
        write_private(
            &server_dir.join("server.key"),
            server_key.serialize_pem().as_bytes(),
        )?;

        let issue = |id: &MemberId, org: &str, kind, alg, from, until| -> Result<_, PkiError> {
            let key = KeyPair::generate_for(alg)?;
            let cert = member_params(id, org, kind, lists, from, until)?.signed_by(&key, &ca)?;
            Ok((cert, key))
        };
        let mut policy = String::from(
            "# Demo policy: who may do what. Keyed by member id (the certificate's SAN URI\n\
             # urn:focalgate:member:<ISO3>:<slug>); signing certificate paths are relative to this file.\n\
             version = 1\n",
        );
        for (id, org, alg) in MEMBERS {
            let m = member(id)?;
            let signing_alg = if alg == "p256" {
                &PKCS_ECDSA_P256_SHA256
            } else {
                &PKCS_ED25519
            };
            let auth = issue(
                &m,
                org,
                CertKind::Auth,
                &PKCS_ECDSA_P256_SHA256,
                from,
                until,
            )?;
            let signing = issue(&m, org, CertKind::Signing, signing_alg, from, until)?;
            let folder = m.country();
            w.identity(folder, (&auth.0, &auth.1), (&signing.0, &signing.1))?;
            let extra = if id == "KAZ:nfp" {
                ", \"expired/signing.pem\", \"revoked/signing.pem\""
            } else {
                ""
            };
            policy.push_str(&format!(
                "\n[members.\"{id}\"]\nroles = [\"submitter\"]\nsigning_certificates = [\"{folder}/signing.pem\"{extra}]\n"
            ));
        }
        for (folder, id, org, role) in ROLES {
            let m = member(id)?;
            let auth = issue(
                &m,
                org,
                CertKind::Auth,
                &PKCS_ECDSA_P256_SHA256,
                from,
                until,
            )?;
            let signing = issue(&m, org, CertKind::Signing, &PKCS_ED25519, from, until)?;
            w.identity(folder, (&auth.0, &auth.1), (&signing.0, &signing.1))?;
            let groups = if role == "analyst" {
                "groups = [\"regional-analysis\"]\n"
            } else {
                ""
            };
            policy.push_str(&format!(
                "\n[members.\"{id}\"]\nroles = [\"{role}\"]\n{groups}signing_certificates = [\"{folder}/signing.pem\"]\n"
            ));
        }
        policy.push_str(SHARING);

        // Negative identities, all claiming to be KAZ:nfp.
        let kaz = member("KAZ:nfp")?;
        let org = "Kazakhstan national focal point (demo)";
        let (old_from, old_until) = (now - Duration::days(400), now - Duration::days(35));
        let auth = issue(
            &kaz,
            org,
            CertKind::Auth,
            &PKCS_ECDSA_P256_SHA256,
            old_from,
            old_until,
        )?;
        let signing = issue(
            &kaz,
            org,
            CertKind::Signing,
            &PKCS_ED25519,
            old_from,
            old_until,
        )?;
        w.identity("expired", (&auth.0, &auth.1), (&signing.0, &signing.1))?;

        let auth = issue(
            &kaz,
            org,
            CertKind::Auth,
            &PKCS_ECDSA_P256_SHA256,
            from,
            until,
        )?;
        let signing = issue(&kaz, org, CertKind::Signing, &PKCS_ED25519, from, until)?;
        w.identity("revoked", (&auth.0, &auth.1), (&signing.0, &signing.1))?;
        let revoked = [&auth.0, &signing.0]
            .iter()
            .map(|c| {
                let (_, parsed) = x509_parser::parse_x509_certificate(c.der())
                    .map_err(|_| PkiError::Profile("unparseable".into()))?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(parsed.raw_serial()),
                    revocation_time: now - Duration::hours(1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let crl = CertificateRevocationListParams {
            this_update: now - Duration::hours(1),
            next_update: until,
            crl_number: SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ca)?;
        write_public(&ca_dir.join("crl.pem"), crl.pem()?.as_bytes())?;

        let rogue_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let rogue = CertifiedIssuer::self_signed(
            ca_params("not the partnership CA", from, until)?,
            rogue_key,
        )?;
        let rogue_issue = |kind, alg| -> Result<_, PkiError> {
            let key = KeyPair::generate_for(alg)?;
            let cert =
                member_params(&kaz, org, kind, lists, from, until)?.signed_by(&key, &rogue)?;
            Ok((cert, key))
        };
        let auth = rogue_issue(CertKind::Auth, &PKCS_ECDSA_P256_SHA256)?;
        let signing = rogue_issue(CertKind::Signing, &PKCS_ED25519)?;
        w.identity("wrong-ca", (&auth.0, &auth.1), (&signing.0, &signing.1))?;
        write_public(
            &out.join("wrong-ca").join("rogue-ca.pem"),
            rogue.pem().as_bytes(),
        )?;

        write_public(&out.join("policy.toml"), policy.as_bytes())
    }
}
