//! Administration: members, certificates, CRLs and policy, for the admin role. Every change
//! is a log entry; changes hold the configuration lock (see [`super::control`]).

use rustls_pki_types::UnixTime;

use super::{ApiError, Gateway};
use crate::entry::sha256;
use crate::receipt::now_ms;
use crate::{
    entry::{AdminAction, AdminEntry, Entry},
    identity::{Caller, Directory, MemberId, Role, Trust, expiry},
    pki::{
        CertKind, PkiError,
        ca::{CaDir, Reason, Validity, normalise_serial},
    },
    proto::{
        AdminLogEntry, CertificateExpiry, CertificateInfo, ExpiringCertificate, GetCrlResponse,
        IssueCertificateRequest, IssueCertificateResponse, ListCertificatesResponse,
        ListMembersResponse, Member, PolicyDocument, ReplacePolicyRequest, ReplacePolicyResponse,
        RevokeCertificateRequest, RevokeCertificateResponse,
    },
    receipt::timestamp_from_millis,
    schema::{Echo, Rule, Violation},
    tlog::Logged,
};

/// Longest validity the Admin service issues, in days.
const MAX_VALIDITY_DAYS: u32 = 3 * 366;
/// Largest policy accepted, in bytes.
const MAX_POLICY_BYTES: usize = 1024 * 1024;

fn invalid(field: &str, rule: Rule, detail: impl Into<String>) -> ApiError {
    ApiError::Invalid(vec![Violation::new(field, rule, detail)])
}

fn pki_error(e: PkiError) -> ApiError {
    match e {
        PkiError::Csr(why) => invalid("csr_pem", Rule::CertificateRequest, why),
        PkiError::Profile(why) => invalid("member", Rule::CertificateRequest, why),
        PkiError::NotFound(why) => ApiError::NotFound(why),
        PkiError::AlreadyRevoked(why) => ApiError::FailedPrecondition(why),
        other => ApiError::Internal(other.to_string()),
    }
}

fn log_entry(entry: &Entry, logged: &Logged) -> AdminLogEntry {
    AdminLogEntry {
        log_index: logged.index,
        entry: entry.encode().unwrap_or_default(),
        checkpoint: logged.checkpoint.clone(),
        inclusion_proof: logged.proof.iter().map(|h| h.as_bytes().to_vec()).collect(),
    }
}

impl Gateway {
    /// The CA, or why acts that need it cannot happen here.
    fn ca(&self) -> Result<CaDir, ApiError> {
        self.control.ca.clone().ok_or_else(|| {
            ApiError::FailedPrecondition(
                "this gateway holds no partnership CA (configuration key ca.dir): issue and revoke with `focalgate ca` where the CA is kept".into(),
            )
        })
    }

    /// Admin.ListMembers.
    pub fn list_members(&self, caller: &Caller) -> Result<ListMembersResponse, ApiError> {
        admit(caller, ADMIN, "ListMembers")?;
        let d = self.directory();
        let signing = d.signing_certs();
        let mut members: Vec<Member> = d
            .policy
            .members()
            .map(|(id, roles)| Member {
                member: id.to_string(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                groups: d.policy.groups(id).iter().cloned().collect(),
                signing_keyids: signing
                    .iter()
                    .filter(|c| &c.member == id)
                    .map(|c| c.keyid.clone())
                    .collect(),
            })
            .collect();
        members.sort_by(|a, b| a.member.cmp(&b.member));
        Ok(ListMembersResponse { members })
    }

    /// Admin.ListCertificates.
    pub fn list_certificates(&self, caller: &Caller) -> Result<ListCertificatesResponse, ApiError> {
        admit(caller, ADMIN, "ListCertificates")?;
        let now = UnixTime::now().as_secs() as i64;
        let d = self.directory();
        let revoked_reason = |serial: &str| {
            self.registry
                .revocation(serial)
                .map(|r| r.reason.unwrap_or_default())
                .or_else(|| {
                    d.trust
                        .revoked_serials()
                        .get(serial)
                        .map(|r| r.clone().unwrap_or_default())
                })
        };
        let certificates = match &self.control.ca {
            Some(ca) => ca
                .list()
                .map_err(pki_error)?
                .into_iter()
                .map(|c| {
                    let reason = c
                        .revoked
                        .as_ref()
                        .map(|r| r.reason.name().to_owned())
                        .or_else(|| revoked_reason(&c.serial));
                    CertificateInfo {
                        status: if reason.is_some() {
                            "revoked"
                        } else {
                            c.status(now)
                        }
                        .into(),
                        serial: c.serial,
                        kind: c.usage.name().into(),
                        member: c.member.map(|m| m.to_string()).unwrap_or_default(),
                        common_name: c.common_name,
                        not_after: Some(timestamp_from_millis(c.not_after * 1000)),
                        digest: c.digest,
                        revocation_reason: reason.unwrap_or_default(),
                    }
                })
                .collect(),
            None => d
                .signing_certs()
                .into_iter()
                .map(|c| {
                    let reason = revoked_reason(&c.serial);
                    let status = match (&reason, c.not_after < now) {
                        (Some(_), _) => "revoked",
                        (None, true) => "expired",
                        (None, false) => "valid",
                    };
                    CertificateInfo {
                        serial: c.serial,
                        kind: "signing".into(),
                        member: c.member.to_string(),
                        common_name: String::new(),
                        not_after: Some(timestamp_from_millis(c.not_after * 1000)),
                        status: status.into(),
                        digest: c.keyid,
                        revocation_reason: reason.unwrap_or_default(),
                    }
                })
                .collect(),
        };
        Ok(ListCertificatesResponse { certificates })
    }

    /// Admin.IssueCertificate.
    pub async fn issue_certificate(
        &self,
        caller: &Caller,
        req: IssueCertificateRequest,
    ) -> Result<IssueCertificateResponse, ApiError> {
        admit(caller, ADMIN, "IssueCertificate")?;
        let ca = self.ca()?;
        let mut problems = Vec::new();
        let kind = CertKind::from_name(&req.kind);
        if kind.is_none() {
            problems.push(Violation::new(
                "kind",
                Rule::UnknownCode,
                format!("{} is not auth or signing", Echo(&req.kind)),
            ));
        }
        let member = match req.member.as_str() {
            "" => None,
            m => match MemberId::parse(m) {
                Some(m) => Some(m),
                None => {
                    problems.push(Violation::new(
                        "member",
                        Rule::CertificateRequest,
                        format!("{} is not of the form <ISO3>:<slug>", Echo(m)),
                    ));
                    None
                }
            },
        };
        let days = match req.validity_days {
            0 => 365,
            d if d > MAX_VALIDITY_DAYS => {
                problems.push(Violation::new(
                    "validity_days",
                    Rule::OutOfRange,
                    format!("at most {MAX_VALIDITY_DAYS} days"),
                ));
                0
            }
            d => d,
        };
        if req.csr_pem.is_empty() {
            problems.push(Violation::new(
                "csr_pem",
                Rule::Required,
                "a PEM certificate signing request is required",
            ));
        }
        let Some(kind) = kind.filter(|_| problems.is_empty()) else {
            return Err(ApiError::Invalid(problems));
        };
        let g = self;
        let _lock = g.control.lock().await;
        let lists = g.lists.clone();
        let organisation = (!req.organisation.is_empty()).then_some(req.organisation);
        let issued = {
            let ca = ca.clone();
            tokio::task::spawn_blocking(move || {
                ca.sign_csr(
                    &req.csr_pem,
                    kind,
                    member.as_ref(),
                    organisation.as_deref(),
                    Validity::days(days),
                    &lists,
                )
            })
            .await
            .map_err(|e| ApiError::Internal(format!("issuing task: {e}")))?
            .map_err(pki_error)?
        };
        let identity = crate::identity::identify(&issued.der, &g.lists)
            .map_err(|e| ApiError::Internal(format!("issued certificate: {e}")))?;
        let entry = Entry::Admin(AdminEntry {
            action: AdminAction::CertificateIssued,
            time_ms: now_ms(),
            actor: caller.member().to_string(),
            subject: identity.member.to_string(),
            serial: Some(issued.serial.clone()),
            digest: sha256(&issued.der),
            reason: None,
            // A signing certificate travels in its entry, so that signatures can be checked
            // from the log alone; it joins the member's signing certificates with it.
            certificate: (kind == CertKind::Signing).then(|| issued.der.clone()),
        });
        let logged = g.log_admin(std::slice::from_ref(&entry)).await?;
        Ok(IssueCertificateResponse {
            certificate_pem: issued.pem,
            serial: issued.serial,
            ca_pem: ca.ca_pem().map_err(pki_error)?,
            log: logged.first().map(|l| log_entry(&entry, l)),
        })
    }

    /// Admin.RevokeCertificate.
    pub async fn revoke_certificate(
        &self,
        caller: &Caller,
        req: RevokeCertificateRequest,
    ) -> Result<RevokeCertificateResponse, ApiError> {
        admit(caller, ADMIN, "RevokeCertificate")?;
        let ca = self.ca()?;
        let mut problems = Vec::new();
        let serial = normalise_serial(&req.serial);
        if serial.is_none() {
            problems.push(Violation::new(
                "serial",
                Rule::Required,
                format!("{} is not a hex serial number", Echo(&req.serial)),
            ));
        }
        let reason = Reason::parse(&req.reason);
        if reason.is_none() {
            let names: Vec<_> = Reason::ALL.iter().map(|r| r.name()).collect();
            problems.push(Violation::new(
                "reason",
                Rule::UnknownCode,
                format!(
                    "{} is not a revocation reason; one of {}",
                    Echo(&req.reason),
                    names.join(", ")
                ),
            ));
        }
        let (Some(serial), Some(reason), true) = (serial, reason, problems.is_empty()) else {
            return Err(ApiError::Invalid(problems));
        };
        let g = self;
        let mut lock = g.control.lock().await;
        let at = time::OffsetDateTime::now_utc();
        let logged_before = g.registry.revocation_logged(&serial);
        let revoked = {
            let (ca, serial) = (ca.clone(), serial.clone());
            tokio::task::spawn_blocking(move || ca.revoke(&serial, reason, at))
                .await
                .map_err(|e| ApiError::Internal(format!("revoking task: {e}")))?
        };
        let listed = match revoked {
            Ok((_, listed)) => listed,
            // Revoked by the CA but never logged (the log was unavailable then): log it now.
            Err(PkiError::AlreadyRevoked(_)) if !logged_before => ca
                .list()
                .map_err(pki_error)?
                .into_iter()
                .find(|c| c.serial == serial)
                .ok_or_else(|| ApiError::NotFound(format!("no certificate {serial}")))?,
            Err(e) => return Err(pki_error(e)),
        };
        let time_ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
        // In force before its entry is written: nothing signed with the certificate can be
        // logged after the revocation.
        g.registry.revoke_now(&serial, time_ms, reason.name());
        let subject = listed
            .member
            .as_ref()
            .map_or(listed.common_name.clone(), |m| m.to_string());
        let entry = Entry::Admin(AdminEntry {
            action: AdminAction::CertificateRevoked,
            time_ms,
            actor: caller.member().to_string(),
            subject: subject.clone(),
            serial: Some(serial.clone()),
            digest: sha256(&listed.der),
            reason: Some(reason.name().to_owned()),
            certificate: None,
        });
        let logged = g.log_admin(std::slice::from_ref(&entry)).await?;
        // The CA's fresh CRL, in force for new handshakes (the log's revocation already is).
        let _ = g
            .reload_locked(
                &mut lock,
                "a certificate was revoked",
                caller.member().as_str(),
            )
            .await;
        Ok(RevokeCertificateResponse {
            serial,
            member: subject,
            revoked_at: Some(timestamp_from_millis(time_ms)),
            log: logged.first().map(|l| log_entry(&entry, l)),
        })
    }

    /// Admin.GetCrl.
    pub fn get_crl(&self, caller: &Caller) -> Result<GetCrlResponse, ApiError> {
        admit(caller, ADMIN, "GetCrl")?;
        let d = self.directory();
        Ok(GetCrlResponse {
            crls: d.trust.crls().iter().map(|c| c.as_ref().to_vec()).collect(),
            next_update: d
                .trust
                .crls_valid_until()
                .map(|s| timestamp_from_millis(s * 1000)),
        })
    }

    /// Admin.GetPolicy.
    pub fn get_policy(&self, caller: &Caller) -> Result<PolicyDocument, ApiError> {
        admit(caller, ADMIN, "GetPolicy")?;
        let d = self.directory();
        let source = d.policy_source();
        Ok(PolicyDocument {
            text: source.text.clone(),
            digest: source.digest.to_vec(),
        })
    }

    /// Admin.ReplacePolicy.
    pub async fn replace_policy(
        &self,
        caller: &Caller,
        req: ReplacePolicyRequest,
    ) -> Result<ReplacePolicyResponse, ApiError> {
        admit(caller, ADMIN, "ReplacePolicy")?;
        if req.text.len() > MAX_POLICY_BYTES {
            return Err(invalid(
                "text",
                Rule::PolicyInvalid,
                format!("a policy is at most {MAX_POLICY_BYTES} bytes"),
            ));
        }
        if req.expected_digest.len() != 32 {
            return Err(invalid(
                "expected_digest",
                Rule::Required,
                "the 32-byte digest of the policy being replaced (from GetPolicy) is required",
            ));
        }
        let g = self;
        let mut lock = g.control.lock().await;
        let current = g.directory();
        if current.policy_source().digest.as_slice() != req.expected_digest.as_slice() {
            return Err(ApiError::Aborted(
                "the policy in force is not the one expected_digest names: it changed meanwhile; read it again with GetPolicy"
                    .into(),
            ));
        }
        let path = g.control.policy_path().to_owned();
        // The whole policy is checked, signing certificates included, before anything is
        // written.
        let trust = Trust::load(&g.control.paths().ca, &g.control.paths().crl)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Directory::from_text(
            trust,
            &path,
            req.text.clone(),
            g.lists.clone(),
            g.registry.clone(),
        )
        .map_err(|e| invalid("text", Rule::PolicyInvalid, e.to_string()))?;
        crate::pki::write_atomically(&path, req.text.as_bytes())
            .map_err(|e| ApiError::FailedPrecondition(format!("cannot write the policy: {e}")))?;
        let logged = g
            .reload_locked(
                &mut lock,
                "the policy was replaced",
                caller.member().as_str(),
            )
            .await
            .map_err(|e| ApiError::Internal(format!("reload after replacing the policy: {e}")))?;
        let digest = g.directory().policy_source().digest.to_vec();
        let log = logged.iter().find_map(|(entry, l)| match entry {
            Entry::Admin(a) if a.action == AdminAction::PolicyChanged => Some(log_entry(entry, l)),
            _ => None,
        });
        Ok(ReplacePolicyResponse { digest, log })
    }

    /// Admin.GetCertificateExpiry.
    pub fn certificate_expiry(&self, caller: &Caller) -> Result<CertificateExpiry, ApiError> {
        admit(
            caller,
            &[Role::Admin, Role::Auditor],
            "GetCertificateExpiry",
        )?;
        let now = UnixTime::now().as_secs() as i64;
        let leaf = self.control.server_leaf();
        let items = expiry::in_use(&self.directory(), Some(&leaf));
        Ok(CertificateExpiry {
            certificates: items
                .into_iter()
                .map(|e| ExpiringCertificate {
                    kind: e.kind.into(),
                    days_left: e.days_left(now),
                    subject: e.subject,
                    serial: e.serial,
                    not_after: Some(timestamp_from_millis(e.not_after * 1000)),
                })
                .collect(),
            warn_days: expiry::WARN_DAYS as u32,
        })
    }
}

/// Whether `caller` holds one of `roles`, which `method` needs.
fn admit(caller: &Caller, roles: &[Role], method: &str) -> Result<(), ApiError> {
    if roles.iter().any(|r| caller.has(*r)) {
        return Ok(());
    }
    Err(ApiError::PermissionDenied(format!(
        "member {} may not call Admin.{method}",
        caller.member()
    )))
}

const ADMIN: &[Role] = &[Role::Admin];
