//! The partnership CA on disk: what `focalgate ca …` and the Admin service operate on.
//!
//! ```text
//! <dir>/ca.pem              the CA certificate: every member's ca.pem, the gateway's tls.ca
//!       ca.key              its private key (0600)
//!       crl.pem             the latest CRL: the gateway's tls.crl
//!       state.toml          the CRL number, how long a CRL is valid, every revocation
//!       issued/<serial>.pem every certificate the CA issued, by serial number (hex)
//!       .lock               held while anything changes (an advisory file lock)
//! ```
//!
//! Certificates follow the profile in [`crate::identity`]. The CA never learns a member's
//! private key when it signs a CSR; `issue` generates the key and hands it back once.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use ::time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};
use rcgen::{
    CertificateRevocationListParams, CertificateSigningRequestParams, CertifiedIssuer, Issuer,
    KeyIdMethod, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use serde::{Deserialize, Serialize};
use x509_parser::{
    certification_request::X509CertificationRequest,
    extensions::{GeneralName, ParsedExtension},
    prelude::{FromDer, X509Certificate},
};

use super::{
    CertKind, PkiError, ca_params, io_err, member_params, pem_encode, server_params,
    write_atomically, write_private, write_public,
};
use crate::{
    identity::{EKU_DOCUMENT_SIGNING, MEMBER_URI_PREFIX, MemberId, cert_digest_hex},
    schema::CodeLists,
};

/// Why a certificate was revoked (RFC 5280 §5.3.1 CRLReason), as written in CRLs and log
/// entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// No reason given.
    Unspecified,
    /// The private key is (or may be) known to someone else.
    KeyCompromise,
    /// The holder's name or organisation changed.
    AffiliationChanged,
    /// Replaced by a new certificate (rotation).
    Superseded,
    /// The holder no longer takes part.
    CessationOfOperation,
}

impl Reason {
    /// Every reason, in CRL code order.
    pub const ALL: [Reason; 5] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
    ];

    /// The RFC 5280 name, e.g. `keyCompromise`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
        }
    }

    /// Parses an RFC 5280 name, case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name))
    }

    fn crl_code(self) -> RevocationReason {
        match self {
            Self::Unspecified => RevocationReason::Unspecified,
            Self::KeyCompromise => RevocationReason::KeyCompromise,
            Self::AffiliationChanged => RevocationReason::AffiliationChanged,
            Self::Superseded => RevocationReason::Superseded,
            Self::CessationOfOperation => RevocationReason::CessationOfOperation,
        }
    }
}

/// One revocation, as the CA records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// When, RFC 3339.
    pub time: String,
    /// Why.
    pub reason: Reason,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    /// The number of the last CRL published.
    crl_number: u64,
    /// Days from publication to a CRL's nextUpdate.
    crl_days: u32,
    #[serde(default)]
    revoked: Vec<Revocation>,
}

/// Which key a generated certificate gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// Ed25519.
    Ed25519,
    /// ECDSA P-256 with SHA-256.
    P256,
}

impl KeyType {
    /// A fresh key of this type.
    pub fn generate(self) -> Result<KeyPair, PkiError> {
        super::generate_key(match self {
            Self::Ed25519 => &PKCS_ED25519,
            Self::P256 => &PKCS_ECDSA_P256_SHA256,
        })
    }
}

/// The window a certificate is valid in.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// First moment of validity.
    pub not_before: OffsetDateTime,
    /// Last moment of validity.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From a minute ago for `days` days (the minute absorbs clock skew between machines).
    pub fn days(days: u32) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::minutes(1),
            not_after: now + Duration::days(i64::from(days)),
        }
    }
}

/// A certificate the CA just issued.
#[derive(Clone, Debug)]
pub struct Issued {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// DER.
    pub der: Vec<u8>,
    /// PEM.
    pub pem: String,
}

/// What a listed certificate is for, from its extended key usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// TLS client authentication.
    Auth,
    /// Signing submissions.
    Signing,
    /// The gateway's TLS server certificate.
    Server,
    /// Anything else.
    Other,
}

impl Usage {
    /// `auth`, `signing`, `server` or `other`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Signing => "signing",
            Self::Server => "server",
            Self::Other => "other",
        }
    }
}

/// One certificate the CA issued, with its state.
#[derive(Clone, Debug)]
pub struct Listed {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// What it is for.
    pub usage: Usage,
    /// The member it names, if it names one.
    pub member: Option<MemberId>,
    /// The subject's common name.
    pub common_name: String,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// Lowercase hex SHA-256 of the DER.
    pub digest: String,
    /// Its revocation, if revoked.
    pub revoked: Option<Revocation>,
    /// DER.
    pub der: Vec<u8>,
}

impl Listed {
    /// `revoked`, `expired` or `valid` at `now` (Unix seconds).
    pub fn status(&self, now: i64) -> &'static str {
        if self.revoked.is_some() {
            "revoked"
        } else if self.not_after < now {
            "expired"
        } else {
            "valid"
        }
    }
}

/// A published CRL.
#[derive(Clone, Debug)]
pub struct Crl {
    /// Its CRL number.
    pub number: u64,
    /// Its nextUpdate.
    pub next_update: OffsetDateTime,
    /// PEM.
    pub pem: String,
}

/// A partnership CA kept in a directory (see the module documentation).
#[derive(Clone, Debug)]
pub struct CaDir {
    dir: PathBuf,
}

impl CaDir {
    /// Creates a new CA in `dir`: an ECDSA P-256 key, a self-signed certificate valid for
    /// `days` days, and an empty CRL valid for `crl_days` days. Refuses to overwrite a CA.
    pub fn init(dir: &Path, name: &str, days: u32, crl_days: u32) -> Result<Self, PkiError> {
        if dir.join("ca.pem").exists() || dir.join("ca.key").exists() {
            return Err(PkiError::Profile(format!(
                "{} already holds a CA; refusing to replace it",
                dir.display()
            )));
        }
        if crl_days == 0 {
            return Err(PkiError::Profile(
                "a CRL must be valid for at least one day".into(),
            ));
        }
        std::fs::create_dir_all(dir.join("issued")).map_err(io_err(dir))?;
        let ca = Self {
            dir: dir.to_owned(),
        };
        let _lock = ca.lock()?;
        let v = Validity::days(days);
        let key = KeyType::P256.generate()?;
        let cert = CertifiedIssuer::self_signed(ca_params(name, v.not_before, v.not_after)?, key)?;
        write_private(&dir.join("ca.key"), cert.key().serialize_pem().as_bytes())?;
        write_public(&dir.join("ca.pem"), cert.pem().as_bytes())?;
        ca.write_state(&State {
            crl_number: 0,
            crl_days,
            revoked: Vec::new(),
        })?;
        ca.publish_locked(None)?;
        Ok(ca)
    }

    /// Opens the CA in `dir`, checking that its files are there.
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        for file in ["ca.pem", "ca.key", "state.toml"] {
            if !dir.join(file).is_file() {
                return Err(PkiError::Profile(format!(
                    "{} is not a focalgate CA directory: {file} is missing (create one with `focalgate ca init`)",
                    dir.display()
                )));
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> Result<String, PkiError> {
        let path = self.dir.join("ca.pem");
        std::fs::read_to_string(&path).map_err(io_err(&path))
    }

    /// Where the latest CRL is published.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    /// Issues a certificate for `member` with a freshly generated key, which is returned once
    /// and kept nowhere.
    pub fn issue(
        &self,
        member: &MemberId,
        organisation: &str,
        kind: CertKind,
        key_type: KeyType,
        validity: Validity,
        lists: &CodeLists,
    ) -> Result<(Issued, KeyPair), PkiError> {
        let key = key_type.generate()?;
        let params = member_params(
            member,
            organisation,
            kind,
            lists,
            validity.not_before,
            validity.not_after,
        )?;
        let _lock = self.lock()?;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok((self.record(cert.der())?, key))
    }

    /// Issues the gateway's TLS server certificate for DNS names and IP addresses.
    pub fn issue_server(
        &self,
        names: &[&str],
        validity: Validity,
    ) -> Result<(Issued, KeyPair), PkiError> {
        let key = KeyType::P256.generate()?;
        let params = server_params(names, validity.not_before, validity.not_after)?;
        let _lock = self.lock()?;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok((self.record(cert.der())?, key))
    }

    /// Issues a certificate for the key in a PKCS#10 request (PEM), whose signature must
    /// verify. Only the request's key and identity are used: the member from its
    /// `urn:focalgate:member:` SAN URI (or `member` when the request has none; both must agree
    /// when both are given) and the organisation from its subject `O` (or `organisation`).
    /// Everything else follows the profile, whatever the request asked for.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        kind: CertKind,
        member: Option<&MemberId>,
        organisation: Option<&str>,
        validity: Validity,
        lists: &CodeLists,
    ) -> Result<Issued, PkiError> {
        let bad = |reason: String| PkiError::Csr(reason);
        let der = pem_block(csr_pem, "CERTIFICATE REQUEST").ok_or_else(|| {
            bad("not a PEM certificate request (\"BEGIN CERTIFICATE REQUEST\")".into())
        })?;
        let (_, request) = X509CertificationRequest::from_der(&der)
            .map_err(|_| bad("not a PKCS#10 certificate request".into()))?;
        let info = &request.certification_request_info;
        let mut uris = Vec::new();
        for ext in request.requested_extensions().into_iter().flatten() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    if let GeneralName::URI(uri) = name
                        && let Some(rest) = uri.strip_prefix(MEMBER_URI_PREFIX)
                    {
                        uris.push(rest.to_owned());
                    }
                }
            }
        }
        let requested = match uris.as_slice() {
            [] => None,
            [one] => Some(MemberId::parse(one).ok_or_else(|| {
                bad(format!(
                    "the requested member \"{one}\" is not of the form <ISO3>:<slug>"
                ))
            })?),
            _ => return Err(bad("the request names more than one member".into())),
        };
        let member = match (requested, member) {
            (Some(r), Some(m)) if &r != m => {
                return Err(bad(format!("the request names member {r}, not {m}")));
            }
            (Some(r), _) => r,
            (None, Some(m)) => m.clone(),
            (None, None) => {
                return Err(bad(format!(
                    "the request names no member ({MEMBER_URI_PREFIX}<ISO3>:<slug> SAN URI); say which with --member"
                )));
            }
        };
        let subject_country = info
            .subject
            .iter_country()
            .next()
            .and_then(|c| c.as_str().ok());
        let member_alpha2 = lists
            .area
            .get(member.country())
            .and_then(|c| c.alpha2.as_deref());
        if let Some(c) = subject_country
            && Some(c) != member_alpha2
        {
            return Err(bad(format!(
                "the request's subject country {c} is not member {member}'s country"
            )));
        }
        let subject_org = info
            .subject
            .iter_organization()
            .next()
            .and_then(|o| o.as_str().ok())
            .map(str::to_owned);
        let organisation = organisation
            .map(str::to_owned)
            .or(subject_org)
            .ok_or_else(|| {
                bad("the request has no organisation (subject O); give one with --org".into())
            })?;
        // rcgen checks the request's self-signature and extracts its public key.
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| bad(format!("the request does not verify: {e}")))?;
        let params = member_params(
            &member,
            &organisation,
            kind,
            lists,
            validity.not_before,
            validity.not_after,
        )?;
        let _lock = self.lock()?;
        let cert = params.signed_by(&csr.public_key, &self.issuer()?)?;
        if kind == CertKind::Signing {
            // Signatures are verified with Ed25519 or ECDSA P-256 only: refuse other keys now
            // rather than at the first submission.
            crate::identity::public_key_of(cert.der()).map_err(bad)?;
        }
        self.record(cert.der())
    }

    /// Revokes a certificate this CA issued and publishes a fresh CRL. `serial` is hex, in any
    /// case, with or without colons.
    pub fn revoke(
        &self,
        serial: &str,
        reason: Reason,
        at: OffsetDateTime,
    ) -> Result<(Revocation, Listed), PkiError> {
        let serial = normalise_serial(serial).ok_or_else(|| {
            PkiError::NotFound(format!("\"{serial}\" is not a hex serial number"))
        })?;
        let _lock = self.lock()?;
        let issued = self.dir.join("issued").join(format!("{serial}.pem"));
        if !issued.is_file() {
            return Err(PkiError::NotFound(format!(
                "this CA issued no certificate with serial {serial}"
            )));
        }
        let mut state = self.read_state()?;
        if let Some(r) = state.revoked.iter().find(|r| r.serial == serial) {
            return Err(PkiError::AlreadyRevoked(format!(
                "certificate {serial} was already revoked at {} ({})",
                r.time,
                r.reason.name()
            )));
        }
        let revocation = Revocation {
            serial: serial.clone(),
            time: at
                .replace_nanosecond(0)
                .unwrap_or(at)
                .format(&Rfc3339)
                .map_err(|e| PkiError::Profile(format!("revocation time: {e}")))?,
            reason,
        };
        state.revoked.push(revocation.clone());
        self.write_state(&state)?;
        self.publish_locked(None)?;
        let listed = self.listed(&issued, &state)?;
        Ok((revocation, listed))
    }

    /// Publishes a fresh CRL listing every revocation, valid for `days` days (default: the
    /// CA's CRL validity, which `days` then becomes).
    pub fn publish_crl(&self, days: Option<u32>) -> Result<Crl, PkiError> {
        let _lock = self.lock()?;
        self.publish_locked(days)
    }

    /// Every certificate the CA issued, newest expiry last.
    pub fn list(&self) -> Result<Vec<Listed>, PkiError> {
        let state = self.read_state()?;
        let issued = self.dir.join("issued");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&issued).map_err(io_err(&issued))? {
            let path = entry.map_err(io_err(&issued))?.path();
            if path.extension().is_some_and(|e| e == "pem") {
                out.push(self.listed(&path, &state)?);
            }
        }
        out.sort_by(|a, b| (a.not_after, &a.serial).cmp(&(b.not_after, &b.serial)));
        Ok(out)
    }

    /// The revocations recorded, oldest first.
    pub fn revocations(&self) -> Result<Vec<Revocation>, PkiError> {
        Ok(self.read_state()?.revoked)
    }

    fn listed(&self, path: &Path, state: &State) -> Result<Listed, PkiError> {
        let pem = std::fs::read_to_string(path).map_err(io_err(path))?;
        let der = pem_block(&pem, "CERTIFICATE").ok_or_else(|| PkiError::BadKey {
            path: path.display().to_string(),
            reason: "not a PEM certificate".into(),
        })?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(|_| PkiError::BadKey {
            path: path.display().to_string(),
            reason: "not an X.509 certificate".into(),
        })?;
        let serial = cert.raw_serial_as_string().replace(':', "");
        let usage = match cert.extended_key_usage() {
            Ok(Some(eku)) if eku.value.client_auth => Usage::Auth,
            Ok(Some(eku)) if eku.value.server_auth => Usage::Server,
            Ok(Some(eku))
                if eku
                    .value
                    .other
                    .iter()
                    .any(|o| o.as_bytes() == EKU_DOCUMENT_SIGNING) =>
            {
                Usage::Signing
            }
            _ => Usage::Other,
        };
        let member = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|n| match n {
                    GeneralName::URI(uri) => uri.strip_prefix(MEMBER_URI_PREFIX),
                    _ => None,
                })
            })
            .and_then(MemberId::parse);
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Listed {
            revoked: state.revoked.iter().find(|r| r.serial == serial).cloned(),
            serial,
            usage,
            member,
            common_name,
            not_after: cert.validity().not_after.timestamp(),
            digest: cert_digest_hex(&der),
            der,
        })
    }

    fn publish_locked(&self, days: Option<u32>) -> Result<Crl, PkiError> {
        let mut state = self.read_state()?;
        if let Some(d) = days {
            if d == 0 {
                return Err(PkiError::Profile(
                    "a CRL must be valid for at least one day".into(),
                ));
            }
            state.crl_days = d;
        }
        state.crl_number += 1;
        let now = OffsetDateTime::now_utc();
        let next_update = now + Duration::days(i64::from(state.crl_days));
        let revoked = state
            .revoked
            .iter()
            .map(|r| {
                let bytes = hex::decode(&r.serial).map_err(|_| {
                    PkiError::Profile(format!("state.toml: bad serial {}", r.serial))
                })?;
                let time = OffsetDateTime::parse(&r.time, &Rfc3339).map_err(|_| {
                    PkiError::Profile(format!("state.toml: bad revocation time {}", r.time))
                })?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&bytes),
                    revocation_time: time,
                    reason_code: Some(r.reason.crl_code()),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let crl = CertificateRevocationListParams {
            this_update: now - Duration::minutes(1),
            next_update,
            crl_number: SerialNumber::from_slice(&state.crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer()?)?;
        let pem = crl.pem()?;
        write_atomically(&self.crl_path(), pem.as_bytes())?;
        self.write_state(&state)?;
        Ok(Crl {
            number: state.crl_number,
            next_update,
            pem,
        })
    }

    /// The CA as an rcgen issuer, from its certificate and key.
    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let key_path = self.dir.join("ca.key");
        let key_pem = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::BadKey {
            path: key_path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Issuer::from_ca_cert_pem(&self.ca_pem()?, key)?)
    }

    /// Keeps a copy of an issued certificate under its serial number.
    fn record(&self, der: &[u8]) -> Result<Issued, PkiError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|_| PkiError::Profile("rcgen produced an unparseable certificate".into()))?;
        let serial = cert.raw_serial_as_string().replace(':', "");
        let pem = pem_encode("CERTIFICATE", der);
        write_public(
            &self.dir.join("issued").join(format!("{serial}.pem")),
            pem.as_bytes(),
        )?;
        Ok(Issued {
            serial,
            der: der.to_vec(),
            pem,
        })
    }

    fn read_state(&self) -> Result<State, PkiError> {
        let path = self.dir.join("state.toml");
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        toml::from_str(&text).map_err(|e| PkiError::Profile(format!("{}: {e}", path.display())))
    }

    fn write_state(&self, state: &State) -> Result<(), PkiError> {
        let text =
            toml::to_string(state).map_err(|e| PkiError::Profile(format!("state.toml: {e}")))?;
        let header = "# The partnership CA's state, kept by `focalgate ca`: do not edit by hand.\n";
        write_atomically(
            &self.dir.join("state.toml"),
            format!("{header}{text}").as_bytes(),
        )
    }

    /// Holds the CA's advisory lock until dropped: one change at a time, across processes.
    fn lock(&self) -> Result<File, PkiError> {
        let path = self.dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.lock().map_err(io_err(&path))?;
        Ok(file)
    }
}

/// Lowercase hex without separators, or `None` if `s` is not hex.
pub fn normalise_serial(s: &str) -> Option<String> {
    let hex: String = s
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (!hex.is_empty() && hex.len() <= 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(hex)
}

/// The DER inside the first PEM block labelled `label`.
fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let body: String = pem[start..stop].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Writes an issued certificate and its key into an identity folder as `<stem>.pem` and
/// `<stem>.key` (0600), beside the CA certificate as `ca.pem`. Stems: `auth`, `signing`,
/// `server`.
pub fn write_identity(
    folder: &Path,
    ca_pem: &str,
    stem: &str,
    issued: &Issued,
    key: &KeyPair,
) -> Result<(), PkiError> {
    std::fs::create_dir_all(folder).map_err(io_err(folder))?;
    write_public(&folder.join("ca.pem"), ca_pem.as_bytes())?;
    write_public(&folder.join(format!("{stem}.pem")), issued.pem.as_bytes())?;
    write_private(
        &folder.join(format!("{stem}.key")),
        key.serialize_pem().as_bytes(),
    )
}
