//! The one outcome table: every cause a use-case fails with ([`ApiError`], and the ledger's,
//! the log's and the store's errors inside it) becomes, in [`outcome`] alone, its gRPC code,
//! its HTTP status, the message the caller reads and the detail only the gateway's log
//! receives. The gRPC services and the HTTPS surfaces both translate through it.
//!
//! Messages carry what the caller needs to fix its request; internal detail (store errors,
//! which certificate check failed for an unknown peer) only goes to the gateway's log.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::{
    app::ApiError,
    ledger::LedgerError,
    schema::{Rule, Violation},
    store::StoreError,
    tlog::LogError,
};

/// Bytes of field violations sent back in one status. A status travels in HTTP/2 trailers,
/// and common gRPC clients (C-core, hence Python and R; Java) refuse metadata over 8 KiB: the
/// details (base64-encoded) and the message must fit together. What does not fit is counted.
const DETAILS_BUDGET: usize = 4_500;
/// Bytes of the readable message.
const MESSAGE_BUDGET: usize = 1_000;
/// Bytes of one violation's field path, and of its description: values are echoed cut short
/// ([`crate::schema::Echo`]) where they are written; this bounds whatever else a text holds.
const FIELD_BUDGET: usize = 200;
const DETAIL_BUDGET: usize = 500;

/// `text`, cut to at most `max` bytes on a character boundary (then ending in `…`).
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A violation with its field and description bounded.
fn bounded(v: &Violation) -> Violation {
    Violation::new(
        cut(&v.field, FIELD_BUDGET),
        v.rule,
        cut(&v.detail, DETAIL_BUDGET),
    )
}

fn bad_request(violations: &[Violation]) -> ErrorDetails {
    let mut used = 0;
    let mut fields = Vec::new();
    for v in violations.iter().map(bounded) {
        let reason = v.rule.name().to_uppercase().replace('-', "_");
        used += v.field.len() + v.detail.len() + reason.len() + 8;
        if used > DETAILS_BUDGET {
            break;
        }
        fields.push(FieldViolation {
            field: v.field,
            description: v.detail,
            reason,
            localized_message: None,
        });
    }
    if fields.len() < violations.len() {
        let more = violations.len() - fields.len();
        fields.push(FieldViolation::new(
            "",
            format!(
                "{more} more violations not listed; `focalgate submit --dry-run` lists them all"
            ),
        ));
    }
    ErrorDetails::with_bad_request(fields)
}

/// A readable message listing the first violations.
fn summary(violations: &[Violation]) -> String {
    let mut msg = format!("the request breaks {} rule(s): ", violations.len());
    let mut listed = 0;
    for v in violations {
        let text = bounded(v).to_string();
        if listed > 0 && msg.len() + text.len() > MESSAGE_BUDGET {
            break;
        }
        if listed > 0 {
            msg.push_str("; ");
        }
        msg.push_str(&text);
        listed += 1;
    }
    if listed < violations.len() {
        msg.push_str(&format!(
            "; and {} more (see the BadRequest details)",
            violations.len() - listed
        ));
    }
    msg
}

/// What a failed use-case is on every surface: its gRPC code, its HTTP status, the message
/// the caller reads, the violations it lists (fields named as the caller's surface names
/// them), the detail that only the gateway's log receives, and when to ask again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The gRPC status code.
    pub code: Code,
    /// The HTTP status.
    pub http: u16,
    /// What the caller reads: what it needs to fix its request, nothing of the gateway's
    /// inside.
    pub message: String,
    /// The field violations, each bounded; empty when the cause names none.
    pub violations: Vec<Violation>,
    /// What only the operator's log receives (why a certificate was refused, what the store
    /// said); `None` when the caller's message says it all.
    pub logged: Option<String>,
    /// When the caller may ask again, for a refusal that is only for now.
    pub retry_after: Option<std::time::Duration>,
}

impl Outcome {
    fn new(code: Code, http: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            http,
            message: cut(&message.into(), MESSAGE_BUDGET),
            violations: Vec::new(),
            logged: None,
            retry_after: None,
        }
    }

    fn logging(mut self, detail: impl std::fmt::Display) -> Self {
        self.logged = Some(detail.to_string());
        self
    }

    fn listing(code: Code, http: u16, violations: Vec<Violation>) -> Self {
        let message = summary(&violations);
        Self {
            violations: violations.iter().map(bounded).collect(),
            ..Self::new(code, http, message)
        }
    }
}

const INTERNAL: &str = "internal error";

/// The outcome of `e`, its fields named by `field` (the surface's names for the request's
/// fields: the protobuf paths over gRPC, the query parameters over SDMX REST).
///
/// | cause                                          | gRPC                 | HTTP |
/// |------------------------------------------------|----------------------|------|
/// | no, unknown, unmapped or revoked certificate   | `UNAUTHENTICATED`    | 401  |
/// | known member without the right                 | `PERMISSION_DENIED`  | 403  |
/// | a field's value the member may not use         | `PERMISSION_DENIED`  | 403  |
/// | bad data or envelope (every violation)         | `INVALID_ARGUMENT`   | 400  |
/// | signer revoked before the submission was logged| `INVALID_ARGUMENT`   | 400  |
/// | above a size limit                             | `RESOURCE_EXHAUSTED` | 413  |
/// | expensive work over its member's or the total capacity | `RESOURCE_EXHAUSTED` | 503 + `Retry-After` |
/// | not there (or not the caller's to see)         | `NOT_FOUND`          | 404  |
/// | not possible in this state (no CA here)        | `FAILED_PRECONDITION`| 409  |
/// | changed meanwhile (revision, policy digest)    | `ABORTED`            | 409  |
/// | store down or busy, shutting down              | `UNAVAILABLE`        | 503  |
/// | corrupt store, failed signature, anything else | `INTERNAL`           | 500  |
pub fn outcome(e: &ApiError, field: &dyn Fn(&str) -> String) -> Outcome {
    let rename = |v: &Violation| Violation::new(field(&v.field), v.rule, v.detail.clone());
    match e {
        ApiError::Unauthenticated(why) => Outcome::new(
            Code::Unauthenticated,
            401,
            "the client certificate does not identify a member of this gateway",
        )
        .logging(why),
        ApiError::PermissionDenied(why) => Outcome::new(Code::PermissionDenied, 403, why),
        ApiError::FieldDenied(v) => {
            let v = bounded(&rename(v));
            Outcome {
                violations: vec![v.clone()],
                ..Outcome::new(Code::PermissionDenied, 403, v.to_string())
            }
        }
        ApiError::Invalid(violations) => Outcome::listing(
            Code::InvalidArgument,
            400,
            violations.iter().map(rename).collect(),
        ),
        ApiError::TooLarge(why) => Outcome::new(Code::ResourceExhausted, 413, why),
        ApiError::Busy { why, retry_after } => Outcome {
            retry_after: Some(*retry_after),
            ..Outcome::new(Code::ResourceExhausted, 503, why)
        },
        ApiError::NotFound(what) => Outcome::new(Code::NotFound, 404, what),
        ApiError::FailedPrecondition(why) => Outcome::new(Code::FailedPrecondition, 409, why),
        ApiError::Aborted(why) => Outcome::new(Code::Aborted, 409, why),
        ApiError::Internal(why) => Outcome::new(Code::Internal, 500, INTERNAL).logging(why),
        ApiError::Ledger(e) => ledger(e),
        ApiError::Log(e) => log(e),
        ApiError::Store(e) => store(e),
    }
}

fn ledger(e: &LedgerError) -> Outcome {
    match e {
        LedgerError::SignerRevoked(serial) => Outcome::listing(
            Code::InvalidArgument,
            400,
            vec![Violation::new(
                "signatures",
                Rule::EnvelopeSigner,
                format!(
                    "the signing certificate {serial} was revoked before the submission was logged"
                ),
            )],
        ),
        LedgerError::RevisionConflict { current, expected } => Outcome::new(
            Code::Aborted,
            409,
            format!(
                "supersedes_revision is {expected}, but the current revision is {current}; \
                 nothing was stored"
            ),
        ),
        LedgerError::Closed => Outcome::new(Code::Unavailable, 503, "the gateway is shutting down"),
        LedgerError::Store(e) => store(e),
        LedgerError::Log(e) => log(e),
        LedgerError::Receipt(why) => Outcome::new(Code::Internal, 500, INTERNAL).logging(why),
        LedgerError::Batch(e) => ledger(e),
    }
}

fn log(e: &LogError) -> Outcome {
    match e {
        LogError::Store(e) => store(e),
        e => Outcome::new(Code::Internal, 500, INTERNAL).logging(e),
    }
}

fn store(e: &StoreError) -> Outcome {
    match e {
        StoreError::Unavailable(_) => Outcome::new(
            Code::Unavailable,
            503,
            "the store is temporarily unavailable; retry later",
        )
        .logging(e),
        StoreError::Conflict(_)
        | StoreError::Corrupt { .. }
        | StoreError::Refused(_)
        | StoreError::Failed(_) => Outcome::new(Code::Internal, 500, INTERNAL).logging(e),
    }
}

impl From<Outcome> for Status {
    fn from(o: Outcome) -> Self {
        let mut details = if o.violations.is_empty() {
            ErrorDetails::new()
        } else {
            bad_request(&o.violations)
        };
        if let Some(after) = o.retry_after {
            details.set_retry_info(Some(after));
        }
        if o.violations.is_empty() && o.retry_after.is_none() {
            return Status::new(o.code, o.message);
        }
        Status::with_error_details(o.code, o.message, details)
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        outcome(&e, &|f| f.to_owned()).into()
    }
}

/// Converts a use-case's outcome for the wire. The request line itself is written by the
/// layer every RPC runs under (`observe`), which sees the final status; what only the error
/// knows — why a peer was not recognised, what the store said — is logged here, for the
/// operator alone.
pub fn finish<T>(
    method: &'static str,
    member: Option<&str>,
    result: Result<T, ApiError>,
) -> Result<T, Status> {
    let e = match result {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let outcome = outcome(&e, &|f| f.to_owned());
    log_detail("gRPC", method, member, &outcome);
    Err(outcome.into())
}

/// Writes what only the operator may read of a failed request, once, on every surface alike.
pub fn log_detail(surface: &str, method: &str, member: Option<&str>, o: &Outcome) {
    if let Some(detail) = &o.logged {
        let code = format!("{:?}", o.code);
        if o.http >= 500 && o.code != Code::Unavailable {
            tracing::error!(target: "focalgate::request", surface, member = member.unwrap_or("-"), method, code, status = o.http, detail, "request failed");
        } else {
            tracing::warn!(target: "focalgate::request", surface, member = member.unwrap_or("-"), method, code, status = o.http, detail, "request failed");
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;
    use crate::{identity::AuthError, receipt::ReceiptError};

    const SECRET: &str = "secret-detail-7f3a";

    /// One error of every cause, nested ones included, with the gRPC code and the HTTP status
    /// it must have, and whether its detail may reach the caller.
    pub(in crate::service) fn every_cause() -> Vec<(ApiError, Code, u16, bool)> {
        let store = |e: fn(String) -> StoreError| e(SECRET.into());
        let corrupt = || StoreError::Corrupt {
            what: SECRET.into(),
            id: None,
        };
        let v = || Violation::new("ref_area[0]", Rule::UnknownCode, "XXX is not in CL_AREA");
        let cases = vec![
            (
                ApiError::Unauthenticated(AuthError::Revoked(SECRET.into())),
                Code::Unauthenticated,
                401,
                false,
            ),
            (
                ApiError::PermissionDenied("no".into()),
                Code::PermissionDenied,
                403,
                true,
            ),
            (
                ApiError::FieldDenied(v()),
                Code::PermissionDenied,
                403,
                true,
            ),
            (
                ApiError::Invalid(vec![v(), v()]),
                Code::InvalidArgument,
                400,
                true,
            ),
            (
                ApiError::TooLarge("big".into()),
                Code::ResourceExhausted,
                413,
                true,
            ),
            (
                ApiError::Busy {
                    why: "full".into(),
                    retry_after: Duration::from_secs(2),
                },
                Code::ResourceExhausted,
                503,
                true,
            ),
            (ApiError::NotFound("gone".into()), Code::NotFound, 404, true),
            (
                ApiError::FailedPrecondition("no CA".into()),
                Code::FailedPrecondition,
                409,
                true,
            ),
            (
                ApiError::Aborted("changed".into()),
                Code::Aborted,
                409,
                true,
            ),
            (
                ApiError::Internal(SECRET.into()),
                Code::Internal,
                500,
                false,
            ),
            (
                ApiError::Store(store(StoreError::Unavailable)),
                Code::Unavailable,
                503,
                false,
            ),
            (
                ApiError::Store(store(StoreError::Conflict)),
                Code::Internal,
                500,
                false,
            ),
            (ApiError::Store(corrupt()), Code::Internal, 500, false),
            (
                ApiError::Store(store(StoreError::Refused)),
                Code::Internal,
                500,
                false,
            ),
            (
                ApiError::Store(store(StoreError::Failed)),
                Code::Internal,
                500,
                false,
            ),
            (
                ApiError::Log(LogError::Integrity(SECRET.into())),
                Code::Internal,
                500,
                false,
            ),
            (
                ApiError::Log(LogError::Store(corrupt())),
                Code::Internal,
                500,
                false,
            ),
            (
                ApiError::Log(LogError::Store(store(StoreError::Unavailable))),
                Code::Unavailable,
                503,
                false,
            ),
            (
                ApiError::Ledger(LedgerError::SignerRevoked("0A".into())),
                Code::InvalidArgument,
                400,
                true,
            ),
            (
                ApiError::Ledger(LedgerError::RevisionConflict {
                    current: 2,
                    expected: 1,
                }),
                Code::Aborted,
                409,
                true,
            ),
            (
                ApiError::Ledger(LedgerError::Closed),
                Code::Unavailable,
                503,
                true,
            ),
            (
                ApiError::Ledger(LedgerError::Store(store(StoreError::Unavailable))),
                Code::Unavailable,
                503,
                false,
            ),
            (
                ApiError::Ledger(LedgerError::Log(LogError::Integrity(SECRET.into()))),
                Code::Internal,
                500,
                false,
            ),
            (
                ApiError::Ledger(LedgerError::Receipt(ReceiptError::Malformed(
                    "secret-detail-7f3a",
                ))),
                Code::Internal,
                500,
                false,
            ),
            (
                ApiError::Ledger(LedgerError::Batch(Arc::new(LedgerError::Store(corrupt())))),
                Code::Internal,
                500,
                false,
            ),
        ];
        for (e, ..) in &cases {
            covered(e);
        }
        cases
    }

    /// Fails to compile when a cause is added without a case above.
    fn covered(e: &ApiError) {
        match e {
            ApiError::Unauthenticated(_)
            | ApiError::PermissionDenied(_)
            | ApiError::FieldDenied(_)
            | ApiError::Invalid(_)
            | ApiError::TooLarge(_)
            | ApiError::Busy { .. }
            | ApiError::NotFound(_)
            | ApiError::FailedPrecondition(_)
            | ApiError::Aborted(_)
            | ApiError::Internal(_) => {}
            ApiError::Ledger(l) => match l {
                LedgerError::RevisionConflict { .. }
                | LedgerError::Store(_)
                | LedgerError::Log(_)
                | LedgerError::Receipt(_)
                | LedgerError::SignerRevoked(_)
                | LedgerError::Closed
                | LedgerError::Batch(_) => {}
            },
            ApiError::Store(s) => match s {
                StoreError::Unavailable(_)
                | StoreError::Conflict(_)
                | StoreError::Corrupt { .. }
                | StoreError::Refused(_)
                | StoreError::Failed(_) => {}
            },
            ApiError::Log(_) => {}
        }
    }

    /// Every cause has its code and status; a gateway fault's detail is logged and never
    /// sent; a refusal for now says when to come back, over gRPC too.
    #[test]
    fn every_cause_has_one_outcome() {
        for (e, code, http, public) in every_cause() {
            let o = outcome(&e, &|f| f.to_owned());
            assert_eq!((o.code, o.http), (code, http), "{e:?}");
            let status = Status::from(e);
            assert_eq!(status.code(), code);
            if !public {
                assert!(!status.message().contains(SECRET), "{status:?}");
                assert!(!format!("{:?}", status.details()).contains(SECRET));
                assert!(
                    o.logged.as_deref().is_some_and(|l| l.contains(SECRET)),
                    "{o:?} must log what it hides"
                );
            }
            if http == 503 && code == Code::ResourceExhausted {
                assert_eq!(
                    status.get_details_retry_info().and_then(|r| r.retry_delay),
                    Some(Duration::from_secs(2))
                );
            }
        }
    }

    /// Violations keep their rule, and name their fields as the surface names them.
    #[test]
    fn fields_are_named_by_the_surface() {
        let e = ApiError::Invalid(vec![Violation::new(
            "period_from",
            Rule::PeriodMalformed,
            "not a period",
        )]);
        let o = outcome(&e, &|f| format!("<{f}>"));
        assert_eq!(o.violations[0].field, "<period_from>");
        assert!(o.message.contains("<period_from>"), "{}", o.message);
    }
}
