//! Persistence behind traits: submissions, their observations and receipts, the log's
//! records, the access trail, and cosignatures.
//!
//! No backend type appears above this module. The [`Store`] is split by its consumers, each
//! naming only the part it reads: [`LogRecords`] (the log), [`Submissions`] (submit, list, the
//! start-up check), [`StatisticsFeed`] (the statistics index), [`AccessTrail`],
//! [`Cosignatures`] and [`Exports`] (store copy). There is one kind of write, a [`WriteTx`]:
//! the [`crate::ledger`] opens one per batch of submissions, asks what it must know (is this
//! payload already stored, what is the current revision), inserts, and commits once; the
//! commit is durable before any receipt of the batch is sent. Its [`LogTx`] part is what the
//! log reads and writes inside it.
//!
//! Backends: [`sqlite`] (the embedded default) and [`postgres`] (several replicas, one log).
//! Each runs its own SQL and maps result rows with the same functions (`rows`), so a stored
//! value that is not what the schema says is [`StoreError::Corrupt`] on both, never a panic.

pub mod copy;
pub mod postgres;
mod rows;
pub mod sqlite;

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use time::Date;

use crate::{
    merkle::{Hash, NodeId, Nodes},
    schema::{Dataflow, ValidObservation},
};

/// Opens the store a URL names: `sqlite://PATH` or `postgres://…` (also `postgresql://`),
/// applying pending migrations.
pub async fn open(
    url: &str,
    options: postgres::PgOptions,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite://") {
        Ok(std::sync::Arc::new(
            sqlite::SqliteStore::open_url(url).await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(
            postgres::PgStore::open_url(url, options).await?,
        ))
    } else {
        Err(StoreError::Refused(format!(
            "store URL \"{}\" is neither sqlite://PATH nor postgres://…",
            postgres::redact(url)
        )))
    }
}

/// A storage failure, by what the caller can do about it. Peers only ever learn the kind,
/// never the detail.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is busy beyond its timeout: retrying later may help.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A write clashed with what is stored (a uniqueness or other constraint): nothing was
    /// written. The one failure after which the ledger retries a batch's jobs one by one, since
    /// a single submission may be the cause.
    #[error("store conflict: {0}")]
    Conflict(String),
    /// Stored data cannot be read as what it must be: the store was altered or damaged.
    #[error("corrupt store: {what}{}", .id.as_ref().map(|id| format!(" of {id}")).unwrap_or_default())]
    Corrupt {
        /// What could not be read (a column, a digest, an entry).
        what: String,
        /// Which record, when known (a submission id, a node, a sequence number).
        id: Option<String>,
    },
    /// The store cannot be used as asked: a URL of no known backend, a schema newer than this
    /// gateway, a copy into a store that is not empty. The text says what to do.
    #[error("{0}")]
    Refused(String),
    /// The database failed otherwise (a statement it refused, a worker that died).
    #[error("store failure: {0}")]
    Failed(String),
}

impl StoreError {
    /// Data that is not what it must be, in the record `id`.
    pub fn corrupt(what: impl Into<String>, id: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            what: what.into(),
            id: Some(id.to_string()),
        }
    }
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
    /// Index of its entry in the transparency log.
    pub log_index: u64,
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
    pub observations: Arc<[ValidObservation]>,
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
    /// SHA-256 of the signed payload.
    pub payload_digest: Vec<u8>,
    /// Index of its log entry; `None` only in a store written before the gateway had a log,
    /// which the gateway refuses to serve.
    pub log_index: Option<u64>,
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

/// An entry appended to the transparency log.
#[derive(Clone, Debug)]
pub struct LogEntryRecord {
    /// Leaf index.
    pub index: u64,
    /// The exact entry bytes.
    pub entry: Vec<u8>,
    /// Its leaf hash.
    pub leaf_hash: Hash,
}

/// What one batch adds to the transparency log.
#[derive(Clone, Debug, Default)]
pub struct LogAppend {
    /// New entries, in index order, continuing the log without a gap.
    pub entries: Vec<LogEntryRecord>,
    /// The complete subtrees the new entries complete.
    pub nodes: Vec<(NodeId, Hash)>,
    /// The checkpoint signed over the new tree: (size, signed note).
    pub checkpoint: Option<(u64, String)>,
    /// When it was signed, Unix milliseconds.
    pub signed_at_ms: i64,
}

/// A submission and its observations, as the statistics index reads them (without comments).
#[derive(Clone, Debug)]
pub struct IndexedSubmission {
    /// Store order.
    pub seq: i64,
    /// Dataflow.
    pub dataflow: Dataflow,
    /// Reporter.
    pub ref_area: String,
    /// TIME_PERIOD.
    pub time_period: String,
    /// Its log entry.
    pub log_index: Option<u64>,
    /// When the gateway accepted it, Unix milliseconds.
    pub received_at_ms: i64,
    /// Its observations, in order.
    pub observations: Vec<ValidObservation>,
}

/// One statistics query, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRecord {
    /// Trail order; 0 before it is stored.
    pub id: i64,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Who.
    pub member: String,
    /// Which RPC.
    pub method: String,
    /// The request, JSON.
    pub request: String,
    /// The log size the answer reflects.
    pub tree_size: u64,
    /// Rows returned.
    pub rows: u32,
    /// Cells suppressed.
    pub suppressed: u32,
}

/// A witness's cosignature of one of the log's checkpoints, as stored beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// The tree size of the checkpoint it signs.
    pub size: u64,
    /// The witness key's name.
    pub witness: String,
    /// The signature line, as a note carries it (`— name base64`).
    pub signature: String,
    /// When the hub received it, Unix milliseconds.
    pub received_at_ms: i64,
}

/// A signed checkpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub size: u64,
    /// The signed note.
    pub note: String,
}

/// Most rows one [`Submissions::list`] call returns; callers page with `before_seq`.
pub const LIST_PAGE: u32 = 500;

/// The log's records, as the log reads them: its size, the tree nodes a computation names, entries
/// by index, signed checkpoints, and what is recorded about the log.
#[async_trait]
pub trait LogRecords: Send + Sync {
    /// The number of log entries.
    async fn log_size(&self) -> Result<u64, StoreError>;

    /// Stored tree nodes; absent ones are left out.
    async fn nodes(&self, ids: Vec<NodeId>) -> Result<Nodes, StoreError>;

    /// Entries with index in `start..end`, in order.
    async fn entries(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// The index of the first entry with this leaf hash.
    async fn entry_index(&self, leaf_hash: Hash) -> Result<Option<u64>, StoreError>;

    /// The checkpoint with the largest tree size.
    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// The checkpoint signed for exactly this tree size, if any.
    async fn checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// The latest checkpoint signed at or before `time_ms`.
    async fn checkpoint_before(&self, time_ms: i64)
    -> Result<Option<StoredCheckpoint>, StoreError>;

    /// A value recorded about the log (`origin`, `verifier_key`, `first_policy`, `first_crls`).
    async fn log_meta(&self, name: &str) -> Result<Option<String>, StoreError>;
}

/// Stored submissions, as the submit and list use-cases and the start-up check read them.
#[async_trait]
pub trait Submissions: Send + Sync {
    /// One submission by id.
    async fn submission(&self, id: &str) -> Result<Option<StoredSubmission>, StoreError>;

    /// Up to [`LIST_PAGE`] submissions matching `filter` with `seq < before_seq`, newest first.
    async fn list(
        &self,
        filter: &ListFilter,
        before_seq: Option<i64>,
    ) -> Result<Vec<SubmissionSummary>, StoreError>;

    /// How many submissions have no log entry: only a store written before the gateway had a
    /// transparency log can hold any, and the gateway refuses to serve it.
    async fn unlogged(&self) -> Result<u64, StoreError>;

    /// The stored submissions whose log entries have an index in `start..end`: (log index,
    /// SHA-256 of the stored envelope), in order. The start-up check compares them with the
    /// entries, so that a logged submission missing from the store is noticed.
    async fn logged_envelopes(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
}

/// What the statistics index follows: submissions in store order with their observations.
#[async_trait]
pub trait StatisticsFeed: Send + Sync {
    /// Up to `limit` submissions with `seq > after_seq`, in store order, with their observations
    /// (comments included).
    async fn submissions_since(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<IndexedSubmission>, StoreError>;
}

/// The access trail: every statistics answer, recorded before it leaves.
#[async_trait]
pub trait AccessTrail: Send + Sync {
    /// Records queries in the access trail, durably, in one transaction (outside the log's
    /// lock: the trail is no part of the log).
    async fn record_access(&self, records: Vec<AccessRecord>) -> Result<(), StoreError>;

    /// Up to `limit` access records with `id < before_id`, newest first.
    async fn access_trail(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AccessRecord>, StoreError>;
}

/// Cosignatures that witnesses returned for the log's checkpoints, kept beside them: what a
/// checkpoint needs to be presented as witnessed. Gathered after the checkpoint was signed,
/// so recorded outside the log's write lock.
#[async_trait]
pub trait Cosignatures: Send + Sync {
    /// Records what a round of witnessing learnt, durably, in one transaction: cosignatures of
    /// stored checkpoints, what the hub learnt of each witness, and the checkpoints that became
    /// witnessed. A witness's cosignature of a checkpoint already recorded stays as it was, and
    /// so does a checkpoint already recorded as witnessed; one of a checkpoint the store does
    /// not hold is a [`StoreError::Conflict`] and nothing is recorded. Each state replaces what
    /// was recorded of the same witness (its error cut to [`WitnessState::MAX_ERROR`]
    /// characters).
    async fn record_round(&self, round: RoundRecord) -> Result<(), StoreError>;

    /// The cosignatures recorded for the checkpoint of tree size `size`, by witness name.
    async fn cosignatures(&self, size: u64) -> Result<Vec<Cosignature>, StoreError>;

    /// The `limit` largest checkpoints recorded as witnessed, largest first.
    async fn witnessed_sizes(&self, limit: u32) -> Result<Vec<WitnessedAt>, StoreError>;

    /// What the hub last learnt of each witness, by name.
    async fn witness_states(&self) -> Result<Vec<WitnessState>, StoreError>;
}

/// Writes what a round learnt inside `tx` (both backends' [`Cosignatures::record_round`]).
async fn write_round(tx: &mut dyn WriteTx, round: RoundRecord) -> Result<(), StoreError> {
    if !round.cosignatures.is_empty() {
        tx.insert_cosignatures(round.cosignatures).await?;
    }
    if !round.states.is_empty() {
        tx.record_witness_states(round.states).await?;
    }
    if !round.witnessed.is_empty() {
        tx.insert_witnessed(round.witnessed).await?;
    }
    Ok(())
}

/// What one round of witnessing learnt, to record at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundRecord {
    /// Cosignatures received.
    pub cosignatures: Vec<Cosignature>,
    /// What the hub learnt of each witness asked.
    pub states: Vec<WitnessState>,
    /// The checkpoints that a quorum has now cosigned.
    pub witnessed: Vec<WitnessedAt>,
}

/// A checkpoint a quorum cosigned, and when the hub learnt it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WitnessedAt {
    /// Its tree size.
    pub size: u64,
    /// Unix milliseconds.
    pub at_ms: i64,
}

/// What the hub last learnt of one witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessState {
    /// Its name in the policy.
    pub witness: String,
    /// The size it holds, as last learnt (0 before it cosigned anything).
    pub size: u64,
    /// When it last cosigned, Unix milliseconds.
    pub cosigned_at_ms: Option<i64>,
    /// What went wrong in the last round, if anything.
    pub last_error: Option<String>,
    /// When this was learnt, Unix milliseconds.
    pub updated_at_ms: i64,
}

impl WitnessState {
    /// Most characters of an error kept.
    pub const MAX_ERROR: usize = 500;

    /// The error as stored: at most [`Self::MAX_ERROR`] characters.
    fn bounded_error(&self) -> Option<String> {
        self.last_error
            .as_ref()
            .map(|e| e.chars().take(Self::MAX_ERROR).collect())
    }
}

/// Everything stored, page by page, for copying a store into another.
#[async_trait]
pub trait Exports: Send + Sync {
    /// Up to `limit` cosignatures after `after` (tree size, witness) in that order.
    async fn export_cosignatures(
        &self,
        after: Option<(u64, String)>,
        limit: u32,
    ) -> Result<Vec<Cosignature>, StoreError>;

    /// Up to `limit` submissions with `seq > after_seq`, in store order, as they were
    /// inserted (observations with their comments), for copying the store. Submissions not yet
    /// logged are refused: a gateway logs them when it starts.
    async fn export(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, SubmissionRecord)>, StoreError>;

    /// Up to `limit` stored tree nodes after `after` in (level, index) order.
    async fn export_nodes(
        &self,
        after: Option<NodeId>,
        limit: u32,
    ) -> Result<Vec<(NodeId, Hash)>, StoreError>;

    /// Up to `limit` checkpoints with a tree size above `after_size`, smallest first, with
    /// when they were signed.
    async fn export_checkpoints(
        &self,
        after_size: u64,
        limit: u32,
    ) -> Result<Vec<SignedAt>, StoreError>;
}

/// A store of submissions and of the log that records them: every part above, the write
/// transaction, and the store's life. Each consumer names the part it reads (the log
/// [`LogRecords`], the statistics index [`StatisticsFeed`], …); a `&dyn Store` is each of them.
#[async_trait]
pub trait Store:
    LogRecords + Submissions + StatisticsFeed + AccessTrail + Cosignatures + Exports + 'static
{
    /// Opens the write transaction of one batch. Writers are serialised.
    async fn begin(&self) -> Result<Box<dyn WriteTx>, StoreError>;

    /// The connections the store holds now, for operators.
    fn pool(&self) -> PoolState;

    /// Closes the store once the gateway has stopped: every connection closes as soon as the
    /// work under way on it ends (a read whose caller went away included), and later calls
    /// fail with [`StoreError::Unavailable`]. SQLite returns once all are closed, leaving one
    /// complete file (the WAL folded in); PostgreSQL closes its idle connections at once.
    async fn close(&self);
}

/// A store's connections, as operators watch them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolState {
    /// Most connections it opens (reads; the SQLite writer is one more).
    pub max: usize,
    /// Connections open now.
    pub open: usize,
    /// Of those, idle.
    pub idle: usize,
    /// Callers waiting for a connection, where the backend knows it.
    pub waiting: Option<usize>,
}

/// A checkpoint with the time it was signed, Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedAt {
    /// The checkpoint.
    pub checkpoint: StoredCheckpoint,
    /// When it was signed.
    pub signed_at_ms: i64,
}

/// What the log reads and writes inside a write transaction: it sees everything committed
/// before the transaction took the write lock, and what the transaction wrote since.
#[async_trait]
pub trait LogTx: Send {
    /// The number of log entries.
    async fn log_size(&mut self) -> Result<u64, StoreError>;

    /// Entries with index in `start..end`, in order, as this transaction sees them.
    async fn entries(&mut self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// Stored tree nodes; absent ones are left out.
    async fn nodes(&mut self, ids: Vec<NodeId>) -> Result<Nodes, StoreError>;

    /// Appends entries, nodes and the new checkpoint to the log.
    async fn append_log(&mut self, append: LogAppend) -> Result<(), StoreError>;

    /// Records a value of the log's identity, once: a value already recorded stays.
    async fn set_log_meta(&mut self, name: &str, value: &str) -> Result<(), StoreError>;
}

/// The write transaction of one batch. Dropping it without [`commit`](WriteTx::commit) rolls
/// everything back. Every method works on the whole batch, so a batch costs a handful of
/// round trips to the database however many submissions it holds.
#[async_trait]
pub trait WriteTx: LogTx {
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

    /// Inserts checkpoints signed earlier (copying a store).
    async fn insert_checkpoints(&mut self, checkpoints: Vec<SignedAt>) -> Result<(), StoreError>;

    /// Inserts cosignatures; one already recorded for its checkpoint and witness stays.
    async fn insert_cosignatures(
        &mut self,
        cosignatures: Vec<Cosignature>,
    ) -> Result<(), StoreError>;

    /// Records what the hub learnt of witnesses; each replaces what was recorded of it.
    async fn record_witness_states(&mut self, states: Vec<WitnessState>) -> Result<(), StoreError>;

    /// Records checkpoints as witnessed; one already recorded stays.
    async fn insert_witnessed(&mut self, witnessed: Vec<WitnessedAt>) -> Result<(), StoreError>;

    /// Inserts access records in order (copying a store); their ids are assigned anew.
    async fn insert_access(&mut self, records: Vec<AccessRecord>) -> Result<(), StoreError>;

    /// Commits durably.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
