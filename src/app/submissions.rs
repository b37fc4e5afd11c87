//! Submissions: the checks before the ledger, submit, get, list.

use prost::Message;
use rustls_pki_types::UnixTime;
use time::OffsetDateTime;

use super::{ApiError, Gateway};
use crate::{
    entry::sha256,
    envelope,
    identity::{Caller, MemberId, Role},
    proto::{
        ListSubmissionsRequest, Receipt, RevisionStatus, SignedEnvelope, Submission,
        SubmissionBody, SubmissionSummary,
    },
    receipt::timestamp_from_millis,
    schema::{
        self, Dataflow, Echo, Period, Rule, SUBMISSION_PAYLOAD_TYPE, ValidSubmission, Violation,
    },
    store::{self, ListFilter},
};

/// A submission that passed every check and waits to be stored. Only [`Gateway::accept`]
/// builds one (benchmarks that skip the checks say so: [`Accepted::unchecked_for_benchmarks`]).
#[derive(Debug)]
pub struct Accepted {
    /// The sender.
    member: MemberId,
    /// The validated content.
    submission: ValidSubmission,
    /// SHA-256 of the signed payload.
    payload_digest: [u8; 32],
    /// The encoded envelope, as it will be stored.
    envelope: Vec<u8>,
    /// SHA-256 of `envelope`.
    envelope_digest: [u8; 32],
    /// DER of the certificate whose signature verified.
    signing_cert: Vec<u8>,
    /// Its serial number (lowercase hex), checked against the log's revocations once more
    /// inside the write transaction.
    signing_serial: String,
}

impl Accepted {
    /// The sender.
    pub fn member(&self) -> &MemberId {
        &self.member
    }
    /// The validated content.
    pub fn submission(&self) -> &ValidSubmission {
        &self.submission
    }
    /// SHA-256 of the signed payload.
    pub fn payload_digest(&self) -> [u8; 32] {
        self.payload_digest
    }
    /// The encoded envelope, as it will be stored.
    pub fn envelope(&self) -> &[u8] {
        &self.envelope
    }
    /// SHA-256 of the encoded envelope.
    pub fn envelope_digest(&self) -> [u8; 32] {
        self.envelope_digest
    }
    /// DER of the certificate whose signature verified.
    pub fn signing_cert(&self) -> &[u8] {
        &self.signing_cert
    }
    /// The signing certificate's serial number, lowercase hex.
    pub fn signing_serial(&self) -> &str {
        &self.signing_serial
    }

    /// A submission that skipped every check (signature, certificate, reporter), for
    /// benchmarks of the ledger alone: the `envelope` is stored as given, and its digest stands
    /// for the payload's. Never call it with data from a peer.
    #[doc(hidden)]
    pub fn unchecked_for_benchmarks(
        member: MemberId,
        submission: ValidSubmission,
        envelope: Vec<u8>,
    ) -> Self {
        let digest = sha256(&envelope);
        Self {
            member,
            submission,
            payload_digest: digest,
            envelope_digest: digest,
            envelope,
            signing_cert: b"unchecked".to_vec(),
            signing_serial: "00".into(),
        }
    }
}

impl Gateway {
    /// The checks an envelope from `member` passes before the ledger stores it, in order: a
    /// signature by one of the member's signing certificates over exactly these bytes, a
    /// payload that decodes, a reporter that is the member's country, and the schema.
    pub fn accept(&self, member: &MemberId, env: &SignedEnvelope) -> Result<Accepted, ApiError> {
        let size = env.encoded_len();
        if size > self.max_envelope_bytes {
            return Err(ApiError::TooLarge(format!(
                "the envelope is {size} bytes; this gateway accepts at most {} so that the \
                 submission can be read back with its receipt and certificate in one message",
                self.max_envelope_bytes
            )));
        }
        let now = UnixTime::now();
        let directory = self.directory();
        let verified = envelope::verify(env, SUBMISSION_PAYLOAD_TYPE, |keyid| {
            directory.signing_key(keyid, member, now)
        })?;
        schema::wire::check_payload(verified.payload(), &self.limits)
            .map_err(|v| ApiError::Invalid(vec![v]))?;
        let body = SubmissionBody::decode(verified.payload()).map_err(|e| {
            ApiError::Invalid(vec![Violation::new(
                "payload",
                Rule::PayloadMalformed,
                format!("not a SubmissionBody: {e}"),
            )])
        })?;
        if body.ref_area != member.country() {
            return Err(ApiError::FieldDenied(Violation::new(
                "ref_area",
                Rule::ReporterNotSender,
                format!(
                    "member {member} reports for {}, not for {}",
                    member.country(),
                    Echo(&body.ref_area)
                ),
            )));
        }
        let submission =
            schema::validate(&body, &self.lists, &self.limits, OffsetDateTime::now_utc())
                .map_err(ApiError::Invalid)?;
        let payload_digest = sha256(verified.payload());
        let signer = verified.into_signer();
        let encoded = env.encode_to_vec();
        Ok(Accepted {
            member: member.clone(),
            submission,
            payload_digest,
            envelope_digest: sha256(&encoded),
            envelope: encoded,
            signing_cert: signer.der,
            signing_serial: signer.serial,
        })
    }
}

impl Gateway {
    /// Identity → signature over the raw bytes → decode → reporter → schema → ledger.
    pub async fn submit(&self, caller: &Caller, env: SignedEnvelope) -> Result<Receipt, ApiError> {
        let g = self;
        if !caller.has(Role::Submitter) {
            return Err(ApiError::PermissionDenied(format!(
                "member {} has no submitter role",
                caller.member()
            )));
        }
        let accepted = g.accept(caller.member(), &env)?;
        Ok(g.ledger.submit(accepted).await?)
    }

    /// Whether the caller may see every member's submissions.
    pub fn sees_all(caller: &Caller) -> bool {
        caller.has(Role::Auditor) || caller.has(Role::Admin)
    }

    /// One submission with its evidence: the caller's own, or any for auditors and admins.
    pub async fn get_submission(&self, caller: &Caller, id: &str) -> Result<Submission, ApiError> {
        if !caller.has(Role::Submitter) && !Self::sees_all(caller) {
            return Err(ApiError::PermissionDenied(format!(
                "member {} may not read submissions",
                caller.member()
            )));
        }
        // That a submission exists is no secret: every member reads the log, whose entries
        // name every submission. So a logged submission that is not found is missing from the
        // store, which `log verify` reports as such, and one that is not the caller's is denied.
        let stored = self
            .store
            .submission(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no submission {}", Echo(id))))?;
        if stored.summary.member != caller.member().as_str() && !Self::sees_all(caller) {
            return Err(ApiError::PermissionDenied(format!(
                "submission {} is not yours to read: {} may read only its own submissions",
                Echo(id),
                caller.member()
            )));
        }
        let decode_failed = |what: &str, e: prost::DecodeError| {
            ApiError::Store(store::StoreError::corrupt(format!("{what} ({e})"), id))
        };
        Ok(Submission {
            receipt: Some(
                Receipt::decode(stored.receipt.as_slice())
                    .map_err(|e| decode_failed("receipt", e))?,
            ),
            summary: Some(summary(stored.summary)),
            envelope_bytes: stored.envelope,
            signing_certificate: stored.signing_cert,
        })
    }

    /// The store's filter for a listing by `caller`: its own submissions, or every member's
    /// for auditors and admins; the request's codes and periods checked.
    pub fn list_filter(
        &self,
        caller: &Caller,
        req: &ListSubmissionsRequest,
    ) -> Result<ListFilter, ApiError> {
        if !caller.has(Role::Submitter) && !Self::sees_all(caller) {
            return Err(ApiError::PermissionDenied(format!(
                "member {} may not list submissions",
                caller.member()
            )));
        }
        let mut violations = Vec::new();
        let dataflow = match req.dataflow.as_str() {
            "" => None,
            d => Dataflow::from_id(d).or_else(|| {
                violations.push(Violation::new(
                    "dataflow",
                    Rule::UnknownCode,
                    format!("{} is not SEIZURES or ROUTES", Echo(d)),
                ));
                None
            }),
        };
        let mut period = |field: &str, value: &str| match value {
            "" => None,
            v => Period::parse(v)
                .map_err(|e| {
                    violations.push(Violation::new(field, Rule::PeriodMalformed, e.to_string()))
                })
                .ok(),
        };
        let starts_from = period("period_from", &req.period_from).map(Period::start);
        let ends_until = period("period_to", &req.period_to).map(Period::end);
        if !req.ref_area.is_empty() && self.lists.area.get(&req.ref_area).is_none() {
            violations.push(Violation::new(
                "ref_area",
                Rule::UnknownCode,
                format!("{} is not in {}", Echo(&req.ref_area), self.lists.area),
            ));
        }
        if !violations.is_empty() {
            return Err(ApiError::Invalid(violations));
        }
        Ok(ListFilter {
            member: (!Self::sees_all(caller)).then(|| caller.member().to_string()),
            ref_area: (!req.ref_area.is_empty()).then(|| req.ref_area.clone()),
            dataflow,
            starts_from,
            ends_until,
            current_only: req.current_only,
        })
    }
}

/// A listed submission, as the contract says it.
pub fn summary(s: store::SubmissionSummary) -> SubmissionSummary {
    SubmissionSummary {
        submission_id: s.id,
        member: s.member,
        dataflow: s.dataflow,
        ref_area: s.ref_area,
        freq: s.freq,
        time_period: s.time_period,
        revision: s.revision,
        status: if s.is_current {
            RevisionStatus::Current
        } else {
            RevisionStatus::Superseded
        } as i32,
        received_at: Some(timestamp_from_millis(s.received_at_ms)),
        observation_count: s.observation_count,
        envelope_digest: s.envelope_digest,
    }
}
