//! Persistence behind a trait: submissions, their observations and receipts.
//!
//! No backend type appears above this module. The [`Store`] offers reads and one kind of
//! write, a [`WriteTx`]: the [`crate::ledger`] opens one per batch of submissions, asks what it
//! must know (is this payload already stored, what is the current revision), inserts, and
//! commits once; the commit is durable before any receipt of the batch is sent.
//!
//! Backends: [`sqlite`] (the embedded default).

pub mod sqlite;

use std::collections::HashMap;

use async_trait::async_trait;
use time::Date;

use crate::schema::{Dataflow, ValidObservation};

/// A storage failure. Peers only ever learn the kind, never the detail.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is busy beyond its timeout; retrying may help.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, a corrupt file, a constraint the caller should have prevented.
    #[error("store failure: {0}")]
    Internal(String),
}

/// Identifies a series of revisions: one reporter's figures of one dataflow for one period.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    /// Reporting country.
    pub ref_area: String,
    /// Dataflow id.
    pub dataflow: Dataflow,
    /// TIME_PERIOD as written.
    pub time_period: String,
}

/// Everything stored for one accepted submission.
#[derive(Clone, Debug)]
pub struct SubmissionRecord {
    /// `REF_AREA.DATAFLOW.TIME_PERIOD.rREVISION`.
    pub id: String,
    /// Sender's member id.
    pub member: String,
    /// The series it revises.
    pub series: SeriesKey,
    /// FREQ code.
    pub freq: &'static str,
    /// First day of the period.
    pub period_start: Date,
    /// Last day of the period.
    pub period_end: Date,
    /// Revision number, from 1.
    pub revision: u32,
    /// When the gateway accepted it, Unix milliseconds.
    pub received_at_ms: i64,
    /// SHA-256 of the signed payload.
    pub payload_digest: [u8; 32],
    /// SHA-256 of `envelope`.
    pub envelope_digest: [u8; 32],
    /// The encoded SignedEnvelope.
    pub envelope: Vec<u8>,
    /// DER of the signing certificate.
    pub signing_cert: Vec<u8>,
    /// The encoded Receipt.
    pub receipt: Vec<u8>,
    /// The validated observations.
    pub observations: Vec<ValidObservation>,
}

/// A submission as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmissionSummary {
    /// Store order; newer submissions have larger numbers.
    pub seq: i64,
    /// Submission id.
    pub id: String,
    /// Sender's member id.
    pub member: String,
    /// Dataflow id.
    pub dataflow: String,
    /// Reporting country.
    pub ref_area: String,
    /// FREQ code.
    pub freq: String,
    /// TIME_PERIOD.
    pub time_period: String,
    /// Revision number.
    pub revision: u32,
    /// Whether this is the current revision of its series.
    pub is_current: bool,
    /// Unix milliseconds.
    pub received_at_ms: i64,
    /// Number of observations.
    pub observation_count: u32,
    /// SHA-256 of the stored envelope.
    pub envelope_digest: Vec<u8>,
}

/// One stored submission with its evidence.
#[derive(Clone, Debug)]
pub struct StoredSubmission {
    /// The summary.
    pub summary: SubmissionSummary,
    /// The encoded SignedEnvelope.
    pub envelope: Vec<u8>,
    /// DER of the signing certificate.
    pub signing_cert: Vec<u8>,
    /// The encoded Receipt.
    pub receipt: Vec<u8>,
}

/// Which submissions to list.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only this member's.
    pub member: Option<String>,
    /// Only this reporter's.
    pub ref_area: Option<String>,
    /// Only this dataflow.
    pub dataflow: Option<Dataflow>,
    /// Only periods starting on or after this day.
    pub starts_from: Option<Date>,
    /// Only periods ending on or before this day.
    pub ends_until: Option<Date>,
    /// Only current revisions.
    pub current_only: bool,
}

/// Most rows one [`Store::list`] call returns; callers page with `before_seq`.
pub const LIST_PAGE: u32 = 500;

/// A store of submissions.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Opens the write transaction of one batch. Writers are serialised.
    async fn begin(&self) -> Result<Box<dyn WriteTx>, StoreError>;

    /// One submission by id.
    async fn submission(&self, id: &str) -> Result<Option<StoredSubmission>, StoreError>;

    /// Up to [`LIST_PAGE`] submissions matching `filter` with `seq < before_seq`, newest first.
    async fn list(
        &self,
        filter: &ListFilter,
        before_seq: Option<i64>,
    ) -> Result<Vec<SubmissionSummary>, StoreError>;
}

/// The write transaction of one batch. Dropping it without [`commit`](WriteTx::commit) rolls
/// everything back. Every method works on the whole batch, so a batch costs a handful of
/// round trips to the database however many submissions it holds.
#[async_trait]
pub trait WriteTx: Send {
    /// The stored receipts of submissions with any of these payload digests.
    async fn receipts_by_payload(
        &mut self,
        payload_digests: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>, StoreError>;

    /// The current revisions of these series; a series with nothing submitted yet is absent.
    async fn current_revisions(
        &mut self,
        series: &[SeriesKey],
    ) -> Result<HashMap<SeriesKey, u32>, StoreError>;

    /// Inserts submissions in order. The previous current revision of each series is marked
    /// superseded, and the last record of each series becomes its current revision.
    async fn insert(&mut self, records: Vec<SubmissionRecord>) -> Result<(), StoreError>;

    /// Commits durably.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
