//! The one place where errors become gRPC statuses, and where every request is logged.
//!
//! | cause                                   | code                 |
//! |-----------------------------------------|----------------------|
//! | no, unknown or unmapped certificate     | `UNAUTHENTICATED`    |
//! | known member without the right          | `PERMISSION_DENIED`  |
//! | bad data or envelope (every violation)  | `INVALID_ARGUMENT`   |
//! | `supersedes_revision` out of date       | `ABORTED`            |
//! | above a size limit                      | `RESOURCE_EXHAUSTED` |
//! | not there (or not the caller's to see)  | `NOT_FOUND`          |
//! | not possible in this state (no CA here) | `FAILED_PRECONDITION`|
//! | changed meanwhile (policy digest)       | `ABORTED`            |
//! | store down or busy, shutting down       | `UNAVAILABLE`        |
//! | anything else                           | `INTERNAL`           |
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

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unauthenticated(_) => Status::unauthenticated(
                "the client certificate does not identify a member of this gateway",
            ),
            ApiError::PermissionDenied(why) => Status::permission_denied(cut(&why, MESSAGE_BUDGET)),
            ApiError::FieldDenied(v) => Status::with_error_details(
                Code::PermissionDenied,
                bounded(&v).to_string(),
                bad_request(std::slice::from_ref(&v)),
            ),
            ApiError::Invalid(violations) => Status::with_error_details(
                Code::InvalidArgument,
                summary(&violations),
                bad_request(&violations),
            ),
            ApiError::TooLarge(why) => Status::resource_exhausted(cut(&why, MESSAGE_BUDGET)),
            ApiError::NotFound(what) => Status::not_found(cut(&what, MESSAGE_BUDGET)),
            ApiError::FailedPrecondition(why) => {
                Status::failed_precondition(cut(&why, MESSAGE_BUDGET))
            }
            ApiError::Aborted(why) => Status::aborted(cut(&why, MESSAGE_BUDGET)),
            ApiError::Internal(_) => Status::internal("internal error"),
            ApiError::Ledger(e) => ledger_status(&e),
            ApiError::Log(e) => log_status(&e),
            ApiError::Store(e) => store_status(&e),
        }
    }
}

fn ledger_status(e: &LedgerError) -> Status {
    match e {
        LedgerError::SignerRevoked(serial) => {
            let v = Violation::new(
                "signatures",
                Rule::EnvelopeSigner,
                format!(
                    "the signing certificate {serial} was revoked before the submission was logged"
                ),
            );
            Status::with_error_details(
                Code::InvalidArgument,
                v.to_string(),
                bad_request(std::slice::from_ref(&v)),
            )
        }
        LedgerError::RevisionConflict { current, expected } => Status::aborted(format!(
            "supersedes_revision is {expected}, but the current revision is {current}; nothing was stored"
        )),
        LedgerError::Closed => Status::unavailable("the gateway is shutting down"),
        LedgerError::Store(e) => store_status(e),
        LedgerError::Log(e) => log_status(e),
        LedgerError::Receipt(_) => Status::internal("internal error"),
        LedgerError::Batch(e) => ledger_status(e),
    }
}

fn log_status(e: &LogError) -> Status {
    match e {
        LogError::Store(e) => store_status(e),
        _ => Status::internal("internal error"),
    }
}

fn store_status(e: &StoreError) -> Status {
    match e {
        StoreError::Unavailable(_) => {
            Status::unavailable("the store is temporarily unavailable; retry later")
        }
        StoreError::Conflict(_)
        | StoreError::Corrupt { .. }
        | StoreError::Refused(_)
        | StoreError::Failed(_) => Status::internal("internal error"),
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
    let detail = match &e {
        ApiError::Unauthenticated(why) => Some(why.to_string()),
        ApiError::Ledger(l) => match l.cause() {
            LedgerError::Store(_) | LedgerError::Log(_) | LedgerError::Receipt(_) => {
                Some(l.to_string())
            }
            _ => None,
        },
        ApiError::Store(e) => Some(e.to_string()),
        ApiError::Log(e) => Some(e.to_string()),
        ApiError::Internal(why) => Some(why.clone()),
        _ => None,
    };
    let status = Status::from(e);
    if let Some(detail) = detail {
        let code = format!("{:?}", status.code());
        tracing::warn!(target: "focalgate::request", member = member.unwrap_or("-"), method, code, detail, "request failed");
    }
    Err(status)
}
