//! `focalgate.v1.Submissions`: submit, get, list.

use crate::rpc::submissions_server::Submissions;
use std::{sync::Arc, time::Instant};

use prost::Message;
use rustls_pki_types::UnixTime;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{ApiError, Gateway, error::finish};
use crate::entry::sha256;
use crate::{
    envelope,
    identity::{Caller, MemberId, Role},
    ledger::Accepted,
    proto::{
        GetSubmissionRequest, ListSubmissionsRequest, Receipt, RevisionStatus, SignedEnvelope,
        Submission, SubmissionBody, SubmissionSummary,
    },
    receipt::timestamp_from_millis,
    schema::{self, Dataflow, Echo, Period, Rule, SUBMISSION_PAYLOAD_TYPE, Violation},
    store::{self, ListFilter},
};

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

/// The Submissions service.
pub struct SubmissionsService {
    gateway: Arc<Gateway>,
}

impl SubmissionsService {
    pub(super) fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }

    /// Identity → signature over the raw bytes → decode → reporter → schema → ledger.
    async fn submit(&self, caller: &Caller, env: SignedEnvelope) -> Result<Receipt, ApiError> {
        let g = &self.gateway;
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
    fn sees_all(caller: &Caller) -> bool {
        caller.has(Role::Auditor) || caller.has(Role::Admin)
    }

    async fn get(&self, caller: &Caller, id: &str) -> Result<Submission, ApiError> {
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
            .gateway
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
            summary: Some(to_proto(stored.summary)),
            envelope_bytes: stored.envelope,
            signing_certificate: stored.signing_cert,
        })
    }

    fn list_filter(
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
        if !req.ref_area.is_empty() && self.gateway.lists.area.get(&req.ref_area).is_none() {
            violations.push(Violation::new(
                "ref_area",
                Rule::UnknownCode,
                format!(
                    "{} is not in {}",
                    Echo(&req.ref_area),
                    self.gateway.lists.area
                ),
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

fn to_proto(s: store::SubmissionSummary) -> SubmissionSummary {
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

#[tonic::async_trait]
impl Submissions for SubmissionsService {
    async fn submit(&self, request: Request<SignedEnvelope>) -> Result<Response<Receipt>, Status> {
        let started = Instant::now();
        let caller = self.gateway.caller(&request);
        self.gateway
            .handle_as("Submit", started, caller, |caller| async move {
                SubmissionsService::submit(self, &caller, request.into_inner()).await
            })
            .await
            .map(Response::new)
    }

    async fn get_submission(
        &self,
        request: Request<GetSubmissionRequest>,
    ) -> Result<Response<Submission>, Status> {
        let id = &request.get_ref().submission_id;
        self.gateway
            .handle("GetSubmission", &request, |caller| async move {
                self.get(&caller, id).await
            })
            .await
            .map(Response::new)
    }

    type ListSubmissionsStream = ReceiverStream<Result<SubmissionSummary, Status>>;

    async fn list_submissions(
        &self,
        request: Request<ListSubmissionsRequest>,
    ) -> Result<Response<Self::ListSubmissionsStream>, Status> {
        let started = Instant::now();
        let caller = self.gateway.caller(&request);
        let member = caller.as_ref().ok().map(|c| c.member().to_string());
        let filter = caller.and_then(|c| self.list_filter(&c, request.get_ref()));
        let filter = finish("ListSubmissions", member.as_deref(), started, filter)?;

        let (tx, rx) = mpsc::channel(64);
        let store = self.gateway.store.clone();
        tokio::spawn(async move {
            let mut before = None;
            loop {
                let page = match store.list(&filter, before).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(error = %e, "listing submissions failed");
                        let _ = tx.send(Err(ApiError::Store(e).into())).await;
                        return;
                    }
                };
                let full = page.len() as u32 == store::LIST_PAGE;
                before = page.last().map(|s| s.seq);
                for s in page {
                    if tx.send(Ok(to_proto(s))).await.is_err() {
                        return; // the caller went away
                    }
                }
                if !full {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
