//! Who is who: certificate → member, roles and the signing-certificate registry.
//!
//! # Certificate profile
//! Every focalgate certificate names its member twice, in forms that must agree:
//! - the subject: `C` (ISO 3166-1 alpha-2 country), `O` (organisation) and a descriptive `CN`;
//! - a SAN URI `urn:focalgate:member:<ISO3>:<slug>`, e.g. `urn:focalgate:member:KAZ:nfp`, whose
//!   last two parts are the member id `KAZ:nfp` that the policy is keyed by.
//!
//! Authentication certificates carry EKU `clientAuth` and are only good for TLS. Signing
//! certificates carry EKU `documentSigning` (RFC 9336) and key usages `digitalSignature` and
//! `contentCommitment`, so a TLS stack refuses them as client certificates and the gateway
//! refuses authentication certificates as signers.
//!
//! Roles and sharing rules live in the server-side [`Policy`], never in certificates: a role
//! change needs no new certificate.

pub mod expiry;
mod policy;
mod registry;
mod trust;

use std::{collections::BTreeSet, fmt};

use x509_parser::{extensions::GeneralName, prelude::*};

pub use policy::{
    Audience, AuthError, Directory, Policy, PolicyError, PolicySource, SigningCert, Witnessing,
    public_key_of,
};
pub use registry::{LoggedRevocation, Registry, SeenCert};
pub use trust::{CertError, EKU_DOCUMENT_SIGNING, Trust, TrustError};

use crate::schema::CodeLists;

/// The URI prefix of a member identity in a certificate's subject alternative name.
pub const MEMBER_URI_PREFIX: &str = "urn:focalgate:member:";

/// A member identity, `<ISO3>:<slug>`, e.g. `KAZ:nfp`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(String);

impl MemberId {
    /// Parses `<ISO3>:<slug>`: three capital letters, then a lowercase slug of letters, digits
    /// and hyphens (at most 63 characters).
    pub fn parse(s: &str) -> Option<Self> {
        let (country, slug) = s.split_once(':')?;
        let country_ok = country.len() == 3 && country.bytes().all(|b| b.is_ascii_uppercase());
        let slug_ok = (1..=63).contains(&slug.len())
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !slug.starts_with('-');
        (country_ok && slug_ok).then(|| Self(s.to_owned()))
    }

    /// The member's country, ISO 3166-1 alpha-3.
    pub fn country(&self) -> &str {
        &self.0[..3]
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a member may do. Granted by the policy, never by a certificate.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Submits statistics for its own country.
    Submitter,
    /// Reads aggregates.
    Analyst,
    /// Reads the log, the access trail and every submission.
    Auditor,
    /// Manages certificates and policy.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Submitter => "submitter",
            Self::Analyst => "analyst",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        })
    }
}

/// What a certificate says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertIdentity {
    /// The member id from the SAN URI.
    pub member: MemberId,
    /// Subject organisation.
    pub organisation: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
}

/// A caller whose certificate chained to the partnership CA and whose member is in the policy.
#[derive(Clone, Debug)]
pub struct Caller {
    /// What its certificate says.
    pub identity: CertIdentity,
    /// What the policy grants it.
    pub roles: BTreeSet<Role>,
}

impl Caller {
    /// The caller's member id.
    pub fn member(&self) -> &MemberId {
        &self.identity.member
    }

    /// Whether the policy grants `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Why a certificate does not name a member.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not a parseable X.509 certificate.
    #[error("not an X.509 certificate")]
    Malformed,
    /// No `urn:focalgate:member:` SAN URI, or more than one.
    #[error(
        "the certificate carries no single {MEMBER_URI_PREFIX}<ISO3>:<slug> subject alternative name"
    )]
    NoMemberUri,
    /// The SAN URI is not `<ISO3>:<slug>`.
    #[error("member URI \"{0}\" is not of the form {MEMBER_URI_PREFIX}<ISO3>:<slug>")]
    BadMemberUri(String),
    /// The subject country does not match the member's country.
    #[error("subject country {subject:?} does not match member country {member}")]
    CountryMismatch {
        /// The subject's C, as found.
        subject: Option<String>,
        /// The member id's country.
        member: String,
    },
}

/// Reads the member identity out of a certificate (DER). Does not check the chain: that is the
/// TLS verifier's or [`Trust::check_signing_cert`]'s job.
pub fn identify(der: &[u8], lists: &CodeLists) -> Result<CertIdentity, IdentityError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::Malformed)?;
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && let Some(rest) = uri.strip_prefix(MEMBER_URI_PREFIX)
            {
                uris.push(rest);
            }
        }
    }
    let [uri] = uris[..] else {
        return Err(IdentityError::NoMemberUri);
    };
    let member = MemberId::parse(uri)
        .ok_or_else(|| IdentityError::BadMemberUri(uri.chars().take(80).collect()))?;
    let subject = cert.subject();
    let country = subject
        .iter_country()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned);
    if country.as_deref().and_then(|c| lists.alpha3_of(c)) != Some(member.country()) {
        return Err(IdentityError::CountryMismatch {
            subject: country,
            member: member.country().to_owned(),
        });
    }
    let organisation = subject
        .iter_organization()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(CertIdentity {
        member,
        organisation,
        serial: cert.raw_serial_as_string().replace(':', ""),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Lowercase hex SHA-256 of a certificate's DER: the `keyid` of signatures it makes.
pub fn cert_digest_hex(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der))
}
