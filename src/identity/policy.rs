//! The server-side policy (roles per member, each member's signing certificates) and the
//! [`Directory`] that answers "who is this caller" and "may this key sign for them".

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls_pki_types::{CertificateDer, UnixTime, pem::PemObject};
use serde::Deserialize;
use x509_parser::prelude::*;

use super::{
    Caller, CertError, IdentityError, MemberId, Registry, Role, Trust, cert_digest_hex, identify,
};
use crate::{
    checkpoint::{self, NoteVerifier},
    envelope::{Algorithm, VerifyingKey},
    schema::CodeLists,
};

/// One member's entry in the policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberEntry {
    roles: BTreeSet<Role>,
    #[serde(default)]
    groups: BTreeSet<String>,
    #[serde(default)]
    signing_certificates: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SharingSection {
    #[serde(default)]
    default: Vec<String>,
    #[serde(default)]
    reporters: BTreeMap<String, Vec<String>>,
}

/// The `[witnesses]` section: the witness roster and quorum, and who runs each witness.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WitnessesSection {
    /// C2SP tlog-policy lines without the log line.
    policy: String,
    /// The member that runs each witness of the roster, by its name there.
    members: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: u32,
    #[serde(default)]
    members: BTreeMap<String, MemberEntry>,
    #[serde(default)]
    sharing: SharingSection,
    witnesses: Option<WitnessesSection>,
}

/// Who witnesses the log, as the policy says: the witnesses the gateway asks to cosign its
/// checkpoints, the quorum a checkpoint needs before it is presented as witnessed, and the
/// member that runs each witness.
#[derive(Clone, Debug)]
pub struct Witnessing {
    /// The roster's C2SP tlog-policy lines, as written (without the log line).
    pub text: String,
    /// The roster, parsed: add the log's key with [`checkpoint::policy::Policy::with_log`].
    pub roster: checkpoint::policy::Policy,
    /// The member that runs each witness, by its name in the roster.
    pub members: BTreeMap<String, MemberId>,
}

impl Witnessing {
    /// The whole C2SP tlog-policy of the log whose verifier key is `log`: what partners
    /// check witnessed checkpoints with.
    pub fn policy_text(&self, log: &NoteVerifier) -> String {
        format!("log {log}\n{}", self.text.trim_start())
    }

    fn parse(
        section: WitnessesSection,
        roles: &HashMap<MemberId, BTreeSet<Role>>,
    ) -> Result<Self, String> {
        let roster = checkpoint::policy::Policy::parse_roster(&section.policy)
            .map_err(|e| format!("witnesses.policy: {e}"))?;
        let mut members = BTreeMap::new();
        for w in roster.witnesses() {
            let Some(id) = section.members.get(&w.name) else {
                return Err(format!(
                    "witnesses.members: witness {} is run by no member",
                    w.name
                ));
            };
            let member = MemberId::parse(id)
                .filter(|m| roles.contains_key(m))
                .ok_or_else(|| {
                    format!(
                        "witnesses.members.{}: \"{id}\" is not a member of the policy",
                        w.name
                    )
                })?;
            if !w.url.as_deref().is_some_and(|u| u.starts_with("https://")) {
                return Err(format!(
                    "witnesses.policy: witness {} needs its https:// URL",
                    w.name
                ));
            }
            members.insert(w.name.clone(), member);
        }
        if let Some(extra) = section.members.keys().find(|n| !members.contains_key(*n)) {
            return Err(format!(
                "witnesses.members: {extra} is not a witness of witnesses.policy"
            ));
        }
        Ok(Self {
            text: section.policy,
            roster,
            members,
        })
    }
}

/// Who may see a reporter's country-level figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audience {
    /// Every member.
    pub everyone: bool,
    /// These members.
    pub members: BTreeSet<MemberId>,
    /// Members of these groups.
    pub groups: BTreeSet<String>,
}

impl Audience {
    /// Parses `["everyone" | "member:<ISO3>:<slug>" | "group:<name>", …]`.
    fn parse(entries: &[String]) -> Result<Self, String> {
        let mut a = Self::default();
        for e in entries {
            if e == "everyone" {
                a.everyone = true;
            } else if let Some(m) = e.strip_prefix("member:") {
                a.members
                    .insert(MemberId::parse(m).ok_or_else(|| format!("\"{e}\": not a member id"))?);
            } else if let Some(g) = e.strip_prefix("group:").filter(|g| !g.is_empty()) {
                a.groups.insert(g.to_owned());
            } else {
                return Err(format!(
                    "\"{e}\" is not everyone, member:<ISO3>:<slug> or group:<name>"
                ));
            }
        }
        Ok(a)
    }
}

/// Roles and groups per member, and who may see each reporter's country-level figures, as
/// configured. Loaded from a TOML file:
///
/// ```toml
/// version = 1
/// [members."KAZ:nfp"]
/// roles = ["submitter"]
/// signing_certificates = ["KAZ/signing.pem"]   # relative to the policy file
///
/// [members."PRT:analyst"]
/// roles = ["analyst"]
/// groups = ["regional-analysis"]
///
/// [sharing]
/// default = ["everyone"]                        # reporters without a rule of their own
/// reporters.TKM = ["group:regional-analysis", "member:DEU:nfp"]
/// ```
///
/// A sharing rule lists `everyone`, `member:<id>` and `group:<name>`; an empty list means the
/// reporter alone. Without a `[sharing]` section, each reporter's country-level figures are
/// its own (aggregates still use them, under small-cell suppression).
#[derive(Clone, Debug, Default)]
pub struct Policy {
    roles: HashMap<MemberId, BTreeSet<Role>>,
    groups: HashMap<MemberId, BTreeSet<String>>,
    /// Sharing rule per reporter (ISO3).
    sharing: HashMap<String, Audience>,
    /// The rule of reporters without one of their own.
    default_sharing: Audience,
    /// Who witnesses the log, if anyone.
    witnessing: Option<Arc<Witnessing>>,
}

impl Policy {
    /// The roles granted to a member; `None` if the member is not in the policy.
    pub fn roles(&self, member: &MemberId) -> Option<&BTreeSet<Role>> {
        self.roles.get(member)
    }

    /// The groups a member belongs to.
    pub fn groups(&self, member: &MemberId) -> BTreeSet<String> {
        self.groups.get(member).cloned().unwrap_or_default()
    }

    /// Who witnesses the log: `None` when the policy names no witnesses.
    pub fn witnessing(&self) -> Option<&Arc<Witnessing>> {
        self.witnessing.as_ref()
    }

    /// Every member in the policy.
    pub fn members(&self) -> impl Iterator<Item = (&MemberId, &BTreeSet<Role>)> {
        self.roles.iter()
    }

    /// Whether `viewer` may see the country-level figures of `reporter` (ISO3). A member always
    /// sees its own country's.
    pub fn may_see(&self, viewer: &MemberId, reporter: &str) -> bool {
        if viewer.country() == reporter {
            return true;
        }
        let rule = self.sharing.get(reporter).unwrap_or(&self.default_sharing);
        rule.everyone
            || rule.members.contains(viewer)
            || self
                .groups
                .get(viewer)
                .is_some_and(|g| !g.is_disjoint(&rule.groups))
    }
}

/// Why a policy was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The policy is not valid.
    #[error("policy {path}: {reason}")]
    Invalid {
        /// The policy file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A signing certificate in the member registry.
#[derive(Clone, Debug)]
pub struct SigningCert {
    /// The member it belongs to.
    pub member: MemberId,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Its DER.
    pub der: Vec<u8>,
    /// Lowercase hex SHA-256 of the DER: the signature `keyid`.
    pub keyid: String,
    /// Its public key.
    pub key: VerifyingKey,
    /// End of validity, Unix seconds.
    pub not_after: i64,
}

/// Everything needed to identify callers and signers: CA and CRLs, policy, signing
/// certificates. A snapshot: a reload builds a new one; what the log says (revocations,
/// certificates issued through it) lives in the shared [`Registry`] and applies at once.
#[derive(Debug)]
pub struct Directory {
    /// The CA and CRLs in force.
    pub trust: Trust,
    /// Roles per member.
    pub policy: Policy,
    /// The policy file, its text and SHA-256: what `Admin.GetPolicy` returns and a
    /// `policy-changed` entry commits to.
    policy_source: PolicySource,
    lists: Arc<CodeLists>,
    /// Signing certificates listed in the policy, by key id.
    signing: HashMap<String, SigningCert>,
    /// The log's certificate facts, shared across snapshots.
    registry: Arc<Registry>,
    /// Certificates (by SHA-256 of their DER, hex) whose chain and revocation status were
    /// checked, and until when (Unix seconds) that check holds: the certificate's end of
    /// validity, the CRLs' `nextUpdate`, or a few minutes, whichever comes first. A new trust
    /// or policy is a new `Directory`, so a reload empties it.
    checked: std::sync::Mutex<HashMap<String, i64>>,
}

/// Where a policy came from.
#[derive(Clone, Debug)]
pub struct PolicySource {
    /// The file (signing certificate paths are relative to its folder).
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// SHA-256 of the text.
    pub digest: [u8; 32],
}

/// How long a successful certificate check is reused, in seconds.
const CHECK_REUSE_SECS: i64 = 300;

/// Why a caller is not authenticated. Only ever shown to operators; peers get a plain
/// UNAUTHENTICATED.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The connection carries no client certificate (cannot happen over the gateway's TLS).
    #[error("no client certificate")]
    NoCertificate,
    /// The certificate names no member.
    #[error("certificate does not name a member: {0}")]
    Identity(#[from] IdentityError),
    /// The member is not in the policy.
    #[error("member {0} is not in the policy")]
    UnknownMember(MemberId),
    /// The transparency log revokes the certificate.
    #[error("certificate {0} is revoked")]
    Revoked(String),
    /// The certificate no longer passes the checks the handshake made (a reload changed the
    /// CA or CRL, or it expired while the connection was open).
    #[error("{0}")]
    Rejected(#[from] CertError),
}

/// Why a signing certificate may not sign for a member now. The text is shown to the sender.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// Neither in the policy nor issued through the log.
    #[error("not a registered signing certificate")]
    Unregistered,
    /// Another member's.
    #[error("the signing certificate belongs to another member")]
    OtherMember,
    /// The log revokes it.
    #[error("the signing certificate is revoked")]
    Revoked,
    /// It no longer passes under the trust in force.
    #[error(transparent)]
    Certificate(#[from] CertError),
}

impl Directory {
    /// Loads the policy file and every signing certificate it names, checking that each
    /// certificate parses and belongs to the member it is listed under.
    pub fn load(
        trust: Trust,
        policy_path: &Path,
        lists: Arc<CodeLists>,
        registry: Arc<Registry>,
    ) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(policy_path).map_err(|source| PolicyError::Read {
            path: policy_path.display().to_string(),
            source,
        })?;
        Self::from_text(trust, policy_path, text, lists, registry)
    }

    /// As [`load`](Self::load), with the policy's text given (a replacement to check before
    /// it is written to `policy_path`).
    pub fn from_text(
        trust: Trust,
        policy_path: &Path,
        text: String,
        lists: Arc<CodeLists>,
        registry: Arc<Registry>,
    ) -> Result<Self, PolicyError> {
        let shown = policy_path.display().to_string();
        let invalid = |reason: String| PolicyError::Invalid {
            path: shown.clone(),
            reason,
        };
        let file: PolicyFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if file.version != 1 {
            return Err(invalid(format!(
                "version {} is not supported (expected 1)",
                file.version
            )));
        }
        let base = policy_path.parent().unwrap_or(Path::new("."));
        let mut roles = HashMap::new();
        let mut groups = HashMap::new();
        let mut signing = HashMap::new();
        for (id, entry) in file.members {
            let member = MemberId::parse(&id).ok_or_else(|| {
                invalid(format!("member \"{id}\" is not of the form <ISO3>:<slug>"))
            })?;
            if lists
                .area
                .get(member.country())
                .and_then(|c| c.alpha2.as_ref())
                .is_none()
            {
                return Err(invalid(format!(
                    "member {member}: {} is not a country in CL_AREA",
                    member.country()
                )));
            }
            for path in &entry.signing_certificates {
                let path = base.join(path);
                let cert = load_signing_cert(&path, &lists).map_err(|reason| {
                    invalid(format!("member {member}: {}: {reason}", path.display()))
                })?;
                if cert.member != member {
                    return Err(invalid(format!(
                        "member {member}: {} belongs to member {}",
                        path.display(),
                        cert.member
                    )));
                }
                signing.insert(cert.keyid.clone(), cert);
            }
            groups.insert(member.clone(), entry.groups);
            roles.insert(member, entry.roles);
        }
        let default_sharing = Audience::parse(&file.sharing.default)
            .map_err(|e| invalid(format!("sharing.default: {e}")))?;
        let mut sharing = HashMap::new();
        for (reporter, audience) in &file.sharing.reporters {
            if lists
                .area
                .get(reporter)
                .and_then(|c| c.alpha2.as_ref())
                .is_none()
            {
                return Err(invalid(format!(
                    "sharing.reporters: {reporter} is not a country in CL_AREA"
                )));
            }
            let a = Audience::parse(audience)
                .map_err(|e| invalid(format!("sharing.reporters.{reporter}: {e}")))?;
            sharing.insert(reporter.clone(), a);
        }
        let witnessing = file
            .witnesses
            .map(|w| Witnessing::parse(w, &roles).map(Arc::new))
            .transpose()
            .map_err(invalid)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        Ok(Self {
            trust,
            policy: Policy {
                roles,
                groups,
                sharing,
                default_sharing,
                witnessing,
            },
            policy_source: PolicySource {
                path: policy_path.to_owned(),
                digest: digest.as_ref().try_into().unwrap_or([0; 32]),
                text,
            },
            lists,
            signing,
            registry,
            checked: Default::default(),
        })
    }

    /// The policy file, its text and digest.
    pub fn policy_source(&self) -> &PolicySource {
        &self.policy_source
    }

    /// The log's certificate facts.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Whether a certificate's check (by DER digest) still holds at `secs`; if not, runs
    /// `check` and remembers the result until `not_after`, the CRLs' next update or a few
    /// minutes from now.
    fn checked(
        &self,
        digest: &str,
        not_after: i64,
        secs: i64,
        check: impl FnOnce() -> Result<(), CertError>,
    ) -> Result<(), CertError> {
        let fresh = |c: &HashMap<String, i64>| c.get(digest).is_some_and(|&until| secs < until);
        if fresh(&self.checked.lock().unwrap_or_else(|p| p.into_inner())) {
            return Ok(());
        }
        check()?;
        let until = [not_after, secs + CHECK_REUSE_SECS]
            .into_iter()
            .chain(self.trust.crls_valid_until())
            .min()
            .unwrap_or(secs);
        self.checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_owned(), until);
        Ok(())
    }

    /// The code lists member countries are read with.
    pub fn code_lists(&self) -> &CodeLists {
        &self.lists
    }

    /// Identifies the caller from its TLS peer certificate (leaf, DER), on every request: the
    /// certificate must still pass what the handshake checked under the trust in force now
    /// (a reload may have changed the CA or CRL since the connection opened), must not be
    /// revoked in the log, and its member must be in the policy.
    pub fn caller(&self, leaf: Option<&[u8]>, now: UnixTime) -> Result<Caller, AuthError> {
        let der = leaf.ok_or(AuthError::NoCertificate)?;
        let identity = identify(der, &self.lists)?;
        if self.registry.is_revoked(&identity.serial) {
            return Err(AuthError::Revoked(identity.serial));
        }
        let secs = now.as_secs() as i64;
        self.checked(&cert_digest_hex(der), identity.not_after, secs, || {
            self.trust.check_client_cert(der, now)
        })
        .map_err(AuthError::Rejected)?;
        let roles = self
            .policy
            .roles(&identity.member)
            .ok_or_else(|| AuthError::UnknownMember(identity.member.clone()))?;
        if self
            .registry
            .saw_auth(&identity.member, &identity.serial, identity.not_after)
        {
            super::expiry::warn_if_expiring(
                "member authentication",
                identity.member.as_str(),
                &identity.serial,
                identity.not_after,
                secs,
            );
        }
        Ok(Caller {
            roles: roles.clone(),
            identity,
        })
    }

    /// The signing certificate named by `keyid`, if it may sign for `member` at `now`:
    /// listed in the policy or issued through the log, the member's own, chained to the CA,
    /// unexpired, and revoked neither by a CRL nor in the log.
    pub fn signing_key(
        &self,
        keyid: &str,
        member: &MemberId,
        now: UnixTime,
    ) -> Result<(SigningCert, VerifyingKey), SignerError> {
        let cert = self.signing_cert(keyid).ok_or(SignerError::Unregistered)?;
        if &cert.member != member {
            return Err(SignerError::OtherMember);
        }
        if self.registry.is_revoked(&cert.serial) {
            return Err(SignerError::Revoked);
        }
        self.checked(keyid, cert.not_after, now.as_secs() as i64, || {
            self.trust.check_signing_cert(&cert.der, now)
        })?;
        let key = cert.key.clone();
        Ok((cert, key))
    }

    /// Every signing certificate: listed in the policy, then issued through the log.
    pub fn signing_certs(&self) -> Vec<SigningCert> {
        let mut all: Vec<SigningCert> = self.signing.values().cloned().collect();
        all.extend(
            self.registry
                .signing_certs()
                .into_iter()
                .filter(|c| !self.signing.contains_key(&c.keyid)),
        );
        all
    }

    /// A signing certificate by key id: listed in the policy or issued through the log.
    pub fn signing_cert(&self, keyid: &str) -> Option<SigningCert> {
        self.signing
            .get(keyid)
            .cloned()
            .or_else(|| self.registry.signing(keyid))
    }
}

/// Reads a PEM signing certificate and its member and public key.
fn load_signing_cert(path: &Path, lists: &CodeLists) -> Result<SigningCert, String> {
    let der =
        CertificateDer::from_pem_file(path).map_err(|e| format!("not a PEM certificate: {e}"))?;
    signing_cert_from_der(der.as_ref(), lists)
}

/// Builds a registry entry from a signing certificate's DER.
pub(crate) fn signing_cert_from_der(der: &[u8], lists: &CodeLists) -> Result<SigningCert, String> {
    let identity = identify(der, lists).map_err(|e| e.to_string())?;
    Ok(SigningCert {
        member: identity.member,
        serial: identity.serial,
        keyid: cert_digest_hex(der),
        key: public_key_of(der)?,
        not_after: identity.not_after,
        der: der.to_vec(),
    })
}

/// The Ed25519 or ECDSA P-256 public key of a certificate.
pub fn public_key_of(der: &[u8]) -> Result<VerifyingKey, String> {
    const ED25519: &str = "1.3.101.112";
    const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    const P256: &str = "1.2.840.10045.3.1.7";
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|_| "not an X.509 certificate".to_owned())?;
    let spki = cert.public_key();
    let algorithm = match spki.algorithm.algorithm.to_id_string().as_str() {
        ED25519 => Algorithm::Ed25519,
        EC_PUBLIC_KEY
            if spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .as_deref()
                == Some(P256) =>
        {
            Algorithm::EcdsaP256Sha256
        }
        other => {
            return Err(format!(
                "key algorithm {other} is not Ed25519 or ECDSA P-256"
            ));
        }
    };
    Ok(VerifyingKey {
        algorithm,
        public_key: spki.subject_public_key.data.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::checkpoint::{KeyType, NoteSigner};

    fn vkey(name: &str, seed: u8) -> String {
        NoteSigner::from_seed(name, KeyType::Cosignature, &[seed; 32])
            .unwrap()
            .verifier()
            .to_string()
    }

    fn parse(members: &str, policy: &str) -> Result<Witnessing, String> {
        let section: WitnessesSection =
            toml::from_str(&format!("policy = '''\n{policy}'''\n[members]\n{members}")).unwrap();
        let roles = HashMap::from([
            (MemberId::parse("KAZ:nfp").unwrap(), BTreeSet::new()),
            (MemberId::parse("UZB:nfp").unwrap(), BTreeSet::new()),
        ]);
        Witnessing::parse(section, &roles)
    }

    #[test]
    fn every_witness_of_the_roster_is_run_by_a_member_of_the_policy_and_has_a_url() {
        let roster = format!(
            "witness KAZ {} https://w.kaz.example\nwitness UZB {} https://w.uzb.example\n\
             group ca 2 KAZ UZB\nquorum ca\n",
            vkey("w.kaz.example", 1),
            vkey("w.uzb.example", 2)
        );
        let ok = parse("KAZ = \"KAZ:nfp\"\nUZB = \"UZB:nfp\"\n", &roster).unwrap();
        assert_eq!(ok.members["UZB"].to_string(), "UZB:nfp");
        let log = NoteSigner::from_seed("hub.example/log", KeyType::Ed25519, &[3; 32]).unwrap();
        let full = checkpoint::policy::Policy::parse(&ok.policy_text(log.verifier())).unwrap();
        assert_eq!(full.witnesses().len(), 2);

        let e = parse("KAZ = \"KAZ:nfp\"\n", &roster).unwrap_err();
        assert!(e.contains("witness UZB is run by no member"), "{e}");
        let e = parse("KAZ = \"KAZ:nfp\"\nUZB = \"TJK:nfp\"\n", &roster).unwrap_err();
        assert!(
            e.contains("witnesses.members.UZB: \"TJK:nfp\" is not a member"),
            "{e}"
        );
        let e = parse(
            "KAZ = \"KAZ:nfp\"\nUZB = \"UZB:nfp\"\nTKM = \"KAZ:nfp\"\n",
            &roster,
        )
        .unwrap_err();
        assert!(e.contains("TKM is not a witness"), "{e}");
        let no_url = roster.replace(" https://w.uzb.example", "");
        let e = parse("KAZ = \"KAZ:nfp\"\nUZB = \"UZB:nfp\"\n", &no_url).unwrap_err();
        assert!(e.contains("witness UZB needs its https:// URL"), "{e}");
        let e = parse("KAZ = \"KAZ:nfp\"\n", "quorum KAZ\n").unwrap_err();
        assert!(e.contains("witnesses.policy: policy line 1"), "{e}");
    }
}
