//! Why a use-case failed, by cause. The adapters map each cause to their own codes (gRPC
//! status, HTTP status) in one place.

use crate::{
    envelope::EnvelopeError,
    identity::AuthError,
    ledger::LedgerError,
    schema::{Rule, Violation},
    store::StoreError,
    tlog::{LogError, SizeError},
};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The peer certificate does not identify a member in the policy.
    #[error("unauthenticated: {0}")]
    Unauthenticated(#[from] AuthError),
    /// The member lacks the right; the text says which.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The member may not act on a field's value (e.g. report for another country).
    #[error("permission denied: {0}")]
    FieldDenied(Violation),
    /// The request breaks the schema or the envelope rules.
    #[error("{} violation(s)", .0.len())]
    Invalid(Vec<Violation>),
    /// The request is larger than the gateway accepts; the text says which limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// Expensive work the gateway has no room for now: the caller's share or the gateway's
    /// whole capacity for it is taken; asking again after `retry_after` may succeed.
    #[error("busy: {why}")]
    Busy {
        /// Which capacity is full, and what to do.
        why: String,
        /// When to ask again.
        retry_after: std::time::Duration,
    },
    /// Not found, or not visible to the caller.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request cannot be honoured in the gateway's state; the text says why.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// What the request expected changed meanwhile; nothing was done.
    #[error("aborted: {0}")]
    Aborted(String),
    /// A fault of the gateway; the text is for its log only.
    #[error("internal: {0}")]
    Internal(String),
    /// The submission or storage path failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A read failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The transparency log could not be read or appended to.
    #[error(transparent)]
    Log(#[from] LogError),
}

impl ApiError {
    /// A tree size the request names in `field` that the log cannot answer for.
    pub fn size(field: &str, e: SizeError) -> Self {
        match e {
            SizeError::Log(e) => Self::Log(e),
            e => Self::Invalid(vec![Violation::new(field, Rule::OutOfRange, e.to_string())]),
        }
    }
}

impl From<EnvelopeError> for ApiError {
    fn from(e: EnvelopeError) -> Self {
        let v = |field: String, rule, detail: String| Violation::new(field, rule, detail);
        let detail = e.to_string();
        ApiError::Invalid(match e {
            EnvelopeError::WrongPayloadType { .. } => {
                vec![v("payload_type".into(), Rule::EnvelopeType, detail)]
            }
            EnvelopeError::Unsigned | EnvelopeError::TooManySignatures(_) => {
                vec![v("signatures".into(), Rule::EnvelopeSignature, detail)]
            }
            EnvelopeError::BadSignature { index, .. } => {
                vec![v(
                    format!("signatures[{index}].sig"),
                    Rule::EnvelopeSignature,
                    detail,
                )]
            }
            EnvelopeError::NoAcceptableSignature { rejected } => rejected
                .into_iter()
                .map(|(i, keyid, why)| {
                    v(
                        format!("signatures[{i}].keyid"),
                        Rule::EnvelopeSigner,
                        format!("key {keyid}: {why}"),
                    )
                })
                .collect(),
            EnvelopeError::UnsupportedKey | EnvelopeError::SigningFailed => {
                vec![v("signatures".into(), Rule::EnvelopeSignature, detail)]
            }
        })
    }
}
