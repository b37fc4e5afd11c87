//! The single writer: orders accepted submissions, numbers their revisions, appends them to the
//! transparency log, signs one checkpoint per batch and a receipt per submission, and commits
//! everything in one durable transaction (group commit).
//!
//! ```text
//!  Submit handlers ──Accepted──▶ mpsc ──▶ ledger task ──one WriteTx per batch──▶ Store
//!        ▲                                    │ revision n+1, log entry, nodes,
//!        │                                    │ checkpoint, inclusion proof, receipt
//!        └────────── oneshot reply ◀──────────┘ (sent only after the durable commit)
//! ```
//!
//! Everything that arrives while a commit is in flight forms the next batch, so one fsync and
//! one checkpoint signature cover many submissions under load, and a lone submission is never
//! kept waiting. A submission and its log entry share the transaction: either both are stored
//! or neither, so every receipt names an entry that exists.
//!
//! The gateway never signs two inconsistent checkpoints: each checkpoint is computed, inside
//! the write transaction that serialises all writers, from the stored tree it extends; and at
//! start [`prepare_log`] refuses to serve if the stored tree disagrees with the last checkpoint.

use std::{collections::HashMap, sync::Arc};

use prost::Message;
use tokio::sync::{mpsc, oneshot};

use crate::entry::sha256;
use crate::receipt::now_ms;
use crate::{
    checkpoint::{self, Checkpoint, NoteSigner},
    entry::{Entry, SubmissionEntry},
    identity::{MemberId, Registry},
    merkle::{self, Hash, NodeId, Nodes},
    proto::Receipt,
    receipt,
    schema::ValidSubmission,
    store::{
        LogAppend, LogEntryRecord, SeriesKey, Store, StoreError, StoredSubmission,
        SubmissionRecord, WriteTx,
    },
};

/// A submission that passed every check and waits to be stored.
#[derive(Debug)]
pub struct Accepted {
    /// The sender.
    pub member: MemberId,
    /// The validated content.
    pub submission: ValidSubmission,
    /// SHA-256 of the signed payload.
    pub payload_digest: [u8; 32],
    /// The encoded envelope, as it will be stored.
    pub envelope: Vec<u8>,
    /// SHA-256 of `envelope`.
    pub envelope_digest: [u8; 32],
    /// DER of the certificate whose signature verified.
    pub signing_cert: Vec<u8>,
    /// Its serial number (lowercase hex), checked against the log's revocations once more
    /// inside the write transaction.
    pub signing_serial: String,
}

/// Why a submission was not stored, or the log cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// `supersedes_revision` did not match the current revision.
    #[error("supersedes_revision is {expected}, but the current revision is {current}")]
    RevisionConflict {
        /// The current revision.
        current: u32,
        /// What the submission expected.
        expected: u32,
    },
    /// The store failed; nothing of the batch was stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signing certificate was revoked while the submission waited to be stored.
    #[error("the signing certificate {0} was revoked before the submission could be logged")]
    SignerRevoked(String),
    /// The ledger has stopped (the gateway is shutting down).
    #[error("the ledger is not running")]
    Closed,
    /// The stored log does not match what the gateway signed, or belongs to another log.
    #[error("refusing to serve: {0}")]
    LogIntegrity(String),
}

struct Job {
    accepted: Accepted,
    reply: oneshot::Sender<Result<Receipt, LedgerError>>,
}

/// Handle to the ledger task. Cloning it is cheap; the task ends when every handle is gone.
#[derive(Clone)]
pub struct Ledger {
    jobs: mpsc::Sender<Job>,
}

impl Ledger {
    /// Starts the ledger task over `store`, signing checkpoints and receipts with `key` (whose
    /// name is the log's origin). At most `max_batch` submissions share one commit. Call
    /// [`prepare_log`] first.
    pub fn start(
        store: Arc<dyn Store>,
        key: Arc<NoteSigner>,
        published: Published,
        registry: Arc<Registry>,
        max_batch: usize,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(max_batch.max(1) * 4);
        let writer = Writer {
            store,
            key,
            registry,
        };
        let task = tokio::spawn(run(writer, published, rx, max_batch.max(1)));
        (Self { jobs }, task)
    }

    /// Stores one submission and returns its receipt, once durably committed. A payload
    /// already stored returns the receipt it got then.
    pub async fn submit(&self, accepted: Accepted) -> Result<Receipt, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { accepted, reply })
            .await
            .map_err(|_| LedgerError::Closed)?;
        answer.await.map_err(|_| LedgerError::Closed)?
    }
}

/// What the ledger task writes with.
struct Writer {
    store: Arc<dyn Store>,
    key: Arc<NoteSigner>,
    registry: Arc<Registry>,
}

async fn run(w: Writer, published: Published, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let jobs = std::mem::take(&mut batch);
        match commit(&w, &jobs).await {
            Ok((results, checkpoint)) => {
                published.record_committed(checkpoint.as_ref());
                reply_all(jobs, results);
            }
            // One bad submission must not sink the others: retry each on its own.
            Err(StoreError::Internal(_)) if jobs.len() > 1 => {
                for job in jobs {
                    let result = match commit(&w, std::slice::from_ref(&job)).await {
                        Ok((mut results, checkpoint)) => {
                            published.record_committed(checkpoint.as_ref());
                            results.remove(0)
                        }
                        Err(e) => Err(e.into()),
                    };
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = jobs.len(), "batch not committed");
                for job in jobs {
                    let _ = job.reply.send(Err(LedgerError::Store(e.clone())));
                }
            }
        }
    }
}

/// The latest checkpoint the gateway signed, kept outside the store (`<data_dir>/checkpoint`)
/// so that a store restored from an older backup, or replaced, cannot make the gateway sign a
/// checkpoint inconsistent with one it already published.
///
/// Clones share one lock: the ledger and administrative appends write the file one at a time,
/// and a recorded checkpoint never replaces a larger one.
#[derive(Clone, Debug)]
pub struct Published {
    path: std::path::PathBuf,
    /// The size of the checkpoint last written by this process.
    written: Arc<std::sync::Mutex<u64>>,
}

impl Published {
    /// The published checkpoint kept at `path`.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self {
            path: path.into(),
            written: Arc::default(),
        }
    }

    /// The checkpoint last recorded, if any.
    fn read(&self) -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(&self.path) {
            Ok(note) => Ok(Some(note)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records the checkpoint (tree size, note) of a committed batch, if the log grew.
    fn record_committed(&self, checkpoint: Option<&(u64, String)>) {
        if let Some((size, note)) = checkpoint {
            self.record(*size, note);
        }
    }

    /// Records a newly committed checkpoint of tree size `size`, durably, before its receipts
    /// go out; unless a larger one was recorded meanwhile.
    fn record(&self, size: u64, note: &str) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if size <= *written {
            return;
        }
        match self.replace(note) {
            Ok(()) => *written = size,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot record the published checkpoint")
            }
        }
    }

    /// Makes `note` (of tree size `size`) the published checkpoint, even if smaller than the
    /// one there: at start, once the store has been checked against it.
    fn write(&self, size: u64, note: &str) -> std::io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        self.replace(note)?;
        *written = size;
        Ok(())
    }

    /// Replaces the file atomically and durably: a crash leaves the old note or the new one.
    fn replace(&self, note: &str) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(note.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn reply_all(jobs: Vec<Job>, results: Vec<Result<Receipt, LedgerError>>) {
    for (job, result) in jobs.into_iter().zip(results) {
        // A caller that went away (deadline, cancelled) still has its submission stored; its
        // retry will get the same receipt.
        let _ = job.reply.send(result);
    }
}

/// A tree failure inside a transaction: the stored tree lacks a node it must have.
fn tree_error(e: merkle::ProofError) -> StoreError {
    StoreError::Internal(format!("log tree: {e}"))
}

/// Reads into `nodes` whichever of `needed` it does not hold yet.
async fn fill(
    tx: &mut dyn WriteTx,
    nodes: &mut Nodes,
    needed: impl IntoIterator<Item = NodeId>,
) -> Result<(), StoreError> {
    let mut missing: Vec<NodeId> = needed
        .into_iter()
        .filter(|id| !nodes.contains_key(id))
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        nodes.extend(tx.nodes(missing).await?);
    }
    Ok(())
}

/// Entries appended within a transaction, not yet written.
struct Appended {
    /// Index of the first new entry.
    first: u64,
    /// The signed checkpoint of the new tree.
    checkpoint: String,
    /// The inclusion proof of each new entry in the new tree.
    proofs: Vec<Vec<Hash>>,
    /// What to write.
    append: LogAppend,
}

impl Appended {
    /// The size of the new tree.
    fn size(&self) -> u64 {
        self.first + self.proofs.len() as u64
    }
}

/// Appends `entries` to the log read through `tx`: the new tree nodes, the signed checkpoint
/// of the new tree, and each new entry's inclusion proof in it.
async fn append_entries(
    tx: &mut dyn WriteTx,
    key: &NoteSigner,
    entries: Vec<Vec<u8>>,
    signed_at_ms: i64,
) -> Result<Appended, StoreError> {
    let first = tx.log_size().await?;
    let size = first + entries.len() as u64;
    let mut nodes = Nodes::new();
    let mut new_nodes = Vec::new();
    let mut records = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let index = first + i as u64;
        let leaf = merkle::leaf_hash(&entry);
        fill(tx, &mut nodes, merkle::append_nodes(index)).await?;
        let added = merkle::append(index, leaf, &nodes).map_err(tree_error)?;
        nodes.extend(added.iter().copied());
        new_nodes.extend(added);
        records.push(LogEntryRecord {
            index,
            entry,
            leaf_hash: leaf,
        });
    }
    fill(tx, &mut nodes, merkle::root_nodes(size)).await?;
    let root = merkle::root(size, &nodes).map_err(tree_error)?;
    let body = Checkpoint {
        origin: key.verifier().name().to_owned(),
        size,
        root,
        extensions: Vec::new(),
    };
    let note = body
        .sign(key)
        .map_err(|e| StoreError::Internal(format!("checkpoint: {e}")))?;
    fill(
        tx,
        &mut nodes,
        (first..size).flat_map(|i| merkle::inclusion_proof_nodes(i, size)),
    )
    .await?;
    let proofs = (first..size)
        .map(|i| merkle::inclusion_proof(i, size, &nodes))
        .collect::<Result<Vec<_>, _>>()
        .map_err(tree_error)?;
    Ok(Appended {
        first,
        checkpoint: note.clone(),
        proofs,
        append: LogAppend {
            entries: records,
            nodes: new_nodes,
            checkpoint: Some((size, note)),
            signed_at_ms,
        },
    })
}

/// An entry appended on its own (not a submission): where it is and the proof of it.
#[derive(Clone, Debug)]
pub struct Logged {
    /// Its index.
    pub index: u64,
    /// The signed checkpoint of the tree that first includes it.
    pub checkpoint: String,
    /// Its inclusion proof in that tree.
    pub proof: Vec<Hash>,
}

/// Appends entries that are not submissions (administrative acts) in one durable transaction,
/// with a checkpoint over the new tree, recorded as published. Writers are serialised by the
/// store, so this interleaves safely with the ledger's batches.
pub async fn append_entries_durably(
    store: &dyn Store,
    key: &NoteSigner,
    published: &Published,
    entries: &[Entry],
) -> Result<Vec<Logged>, LedgerError> {
    commit_entries(store.begin().await?, key, published, entries).await
}

/// As [`append_entries_durably`], for acts that every gateway reading the same files sees (an
/// edited policy, a revocation in the CRL), so that each is logged once: holding the write
/// lock, `registry` first reads what other gateways appended since it last followed the log,
/// and the acts the log then already records are left out. Returns the entries appended, with
/// where each landed.
pub async fn append_unrecorded_durably(
    store: &dyn Store,
    key: &NoteSigner,
    published: &Published,
    registry: &Registry,
    entries: Vec<Entry>,
) -> Result<Vec<(Entry, Logged)>, LedgerError> {
    let mut tx = store.begin().await?;
    let size = tx.log_size().await?;
    follow_log(registry, size, LogReader::Tx(tx.as_mut())).await?;
    let unrecorded: Vec<Entry> = entries
        .into_iter()
        .filter(|e| !matches!(e, Entry::Admin(a) if registry.records(a)))
        .collect();
    if unrecorded.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let logged = commit_entries(tx, key, published, &unrecorded).await?;
    Ok(unrecorded.into_iter().zip(logged).collect())
}

/// Where [`follow_log`] reads entries: the store, or a write transaction (which sees everything
/// committed before it took the write lock).
pub(crate) enum LogReader<'a> {
    Store(&'a dyn Store),
    Tx(&'a mut dyn WriteTx),
}

/// Feeds `registry` the log entries it has not read, up to `size`, a page at a time.
pub(crate) async fn follow_log(
    registry: &Registry,
    size: u64,
    mut from: LogReader<'_>,
) -> Result<(), StoreError> {
    const PAGE: u64 = 1_000;
    loop {
        let start = registry.next_index();
        if start >= size {
            return Ok(());
        }
        let end = (start + PAGE).min(size);
        let page = match &mut from {
            LogReader::Store(store) => store.entries(start, end).await?,
            LogReader::Tx(tx) => tx.entries(start, end).await?,
        };
        if page.is_empty() {
            return Ok(());
        }
        for (index, entry) in page {
            registry.follow(index, &entry);
        }
    }
}

/// Appends `entries` in `tx`, with a checkpoint over the new tree, commits durably and
/// records the checkpoint as published.
async fn commit_entries(
    mut tx: Box<dyn WriteTx>,
    key: &NoteSigner,
    published: &Published,
    entries: &[Entry],
) -> Result<Vec<Logged>, LedgerError> {
    let bytes = entries
        .iter()
        .map(|e| {
            e.encode()
                .map_err(|e| StoreError::Internal(format!("log entry: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let appended = append_entries(tx.as_mut(), key, bytes, now_ms()).await?;
    let logged = appended
        .proofs
        .iter()
        .enumerate()
        .map(|(k, proof)| Logged {
            index: appended.first + k as u64,
            checkpoint: appended.checkpoint.clone(),
            proof: proof.clone(),
        })
        .collect();
    let (size, note) = (appended.size(), appended.checkpoint.clone());
    tx.append_log(appended.append).await?;
    tx.commit().await?;
    published.record(size, &note);
    Ok(logged)
}

/// A submission of the batch that will be stored.
struct Fresh {
    job: usize,
    series: SeriesKey,
    id: String,
    revision: u32,
    receipt: Receipt,
}

/// The results, in job order, and the new checkpoint (tree size, note) if the log grew.
type Committed = (Vec<Result<Receipt, LedgerError>>, Option<(u64, String)>);

/// Runs one batch in one transaction; the outer error means nothing was committed.
async fn commit(w: &Writer, jobs: &[Job]) -> Result<Committed, StoreError> {
    let key = &*w.key;
    let mut tx = w.store.begin().await?;
    let received_at_ms = now_ms();
    let series: Vec<SeriesKey> = jobs
        .iter()
        .map(|j| series_of(&j.accepted.submission))
        .collect();
    let digests: Vec<[u8; 32]> = jobs.iter().map(|j| j.accepted.payload_digest).collect();
    let stored = tx.receipts_by_payload(&digests).await?;
    let mut current = tx.current_revisions(&series).await?;

    // Results are filled in order; fresh submissions get theirs once the log is appended.
    let mut results: Vec<Option<Result<Receipt, LedgerError>>> = Vec::with_capacity(jobs.len());
    let mut fresh: Vec<Fresh> = Vec::with_capacity(jobs.len());
    let mut in_batch: HashMap<[u8; 32], usize> = HashMap::new();
    let mut duplicates: Vec<(usize, usize)> = Vec::new();
    for (i, (job, series)) in jobs.iter().zip(series).enumerate() {
        let a = &job.accepted;
        if let Some(bytes) = stored.get(&a.payload_digest) {
            let receipt = Receipt::decode(bytes.as_slice())
                .map_err(|e| StoreError::Internal(format!("stored receipt: {e}")))?;
            results.push(Some(Ok(receipt)));
            continue;
        }
        // Holding the write transaction, no revocation entry can be appended before this
        // batch's entries; one enforced since the signature was checked refuses it here.
        if w.registry.is_revoked(&a.signing_serial) {
            results.push(Some(Err(LedgerError::SignerRevoked(
                a.signing_serial.clone(),
            ))));
            continue;
        }
        if let Some(&k) = in_batch.get(&a.payload_digest) {
            duplicates.push((i, k));
            results.push(None);
            continue;
        }
        let now = current.get(&series).copied().unwrap_or(0);
        if let Some(expected) = a.submission.supersedes_revision.filter(|&e| e != now) {
            results.push(Some(Err(LedgerError::RevisionConflict {
                current: now,
                expected,
            })));
            continue;
        }
        let revision = now + 1;
        current.insert(series.clone(), revision);
        let id = format!(
            "{}.{}.{}.r{revision}",
            series.ref_area, series.dataflow, series.time_period
        );
        let receipt = Receipt {
            submission_id: id.clone(),
            envelope_digest: a.envelope_digest.to_vec(),
            payload_digest: a.payload_digest.to_vec(),
            revision,
            received_at: Some(receipt::timestamp_from_millis(received_at_ms)),
            member: a.member.to_string(),
            dataflow: series.dataflow.id().to_owned(),
            ref_area: series.ref_area.clone(),
            time_period: series.time_period.clone(),
            ..Default::default()
        };
        in_batch.insert(a.payload_digest, fresh.len());
        results.push(None);
        fresh.push(Fresh {
            job: i,
            series,
            id,
            revision,
            receipt,
        });
    }

    let mut checkpoint = None;
    if !fresh.is_empty() {
        let entries = fresh
            .iter()
            .map(|f| {
                let a = &jobs[f.job].accepted;
                Entry::Submission(SubmissionEntry {
                    time_ms: received_at_ms,
                    submission_id: f.id.clone(),
                    member: a.member.to_string(),
                    dataflow: f.series.dataflow.id().to_owned(),
                    ref_area: f.series.ref_area.clone(),
                    time_period: f.series.time_period.clone(),
                    revision: f.revision,
                    payload_digest: a.payload_digest,
                    envelope_digest: a.envelope_digest,
                    signing_cert_digest: sha256(&a.signing_cert),
                })
                .encode()
                .map_err(|e| StoreError::Internal(format!("log entry of {}: {e}", f.id)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let appended = append_entries(tx.as_mut(), key, entries, received_at_ms).await?;
        let mut records = Vec::with_capacity(fresh.len());
        for (k, f) in fresh.iter_mut().enumerate() {
            let r = &mut f.receipt;
            r.log_index = appended.first + k as u64;
            r.log_entry = appended.append.entries[k].entry.clone();
            r.checkpoint = appended.checkpoint.clone();
            r.inclusion_proof = appended.proofs[k]
                .iter()
                .map(|h| h.as_bytes().to_vec())
                .collect();
            receipt::sign(r, key.key_pair())
                .map_err(|e| StoreError::Internal(format!("receipt: {e}")))?;
            let a = &jobs[f.job].accepted;
            let s = &a.submission;
            records.push(SubmissionRecord {
                id: f.id.clone(),
                member: a.member.to_string(),
                series: f.series.clone(),
                freq: s.period.frequency().code(),
                period_start: s.period.start(),
                period_end: s.period.end(),
                revision: f.revision,
                received_at_ms,
                log_index: r.log_index,
                payload_digest: a.payload_digest,
                envelope_digest: a.envelope_digest,
                envelope: a.envelope.clone(),
                signing_cert: a.signing_cert.clone(),
                receipt: r.encode_to_vec(),
                observations: s.observations.clone(),
            });
        }
        checkpoint = Some((appended.size(), appended.checkpoint.clone()));
        tx.insert(records).await?;
        tx.append_log(appended.append).await?;
    }
    tx.commit().await?;

    for f in &fresh {
        results[f.job] = Some(Ok(f.receipt.clone()));
    }
    for (i, k) in duplicates {
        results[i] = Some(Ok(fresh[k].receipt.clone()));
    }
    let results = results
        .into_iter()
        .map(|r| r.unwrap_or(Err(LedgerError::Closed)))
        .collect();
    Ok((results, checkpoint))
}

fn series_of(s: &ValidSubmission) -> SeriesKey {
    SeriesKey {
        ref_area: s.ref_area.clone(),
        dataflow: s.dataflow,
        time_period: s.period.to_string(),
    }
}

/// The name under which the log's origin is recorded in the store.
pub(crate) const ORIGIN: &str = "origin";
/// The name under which the log's verifier key is recorded in the store: every gateway
/// serving the store (every replica) must sign with this key.
const VERIFIER_KEY: &str = "verifier_key";
/// The name under which the store records the policy in force (hex SHA-256) when no policy
/// change was logged yet: the reference for an edit made while no gateway ran.
pub(crate) const FIRST_POLICY: &str = "first_policy";
/// The name under which the store records the serial numbers (lowercase hex, sorted,
/// comma-separated) the CRLs revoked when the gateway first started on it: revocations the
/// log need not record.
pub(crate) const FIRST_CRLS: &str = "first_crls";

/// Makes the stored log safe to serve, before the ledger starts:
/// - the log's origin is recorded at first start and must match `key`'s name afterwards;
/// - the last signed checkpoint must verify with `key`, and the stored tree must have exactly
///   its size and its root (else the store was altered, restored or rolled back);
/// - submissions accepted before the log existed are appended to it.
///
/// The entries read on the way feed `registry` (certificates issued and revoked). Returns the
/// size of the log.
pub async fn prepare_log(
    store: &dyn Store,
    key: &NoteSigner,
    published: &Published,
    accept_restored_log: bool,
    registry: &Registry,
) -> Result<u64, LedgerError> {
    let origin = key.verifier().name();
    let stored = ensure_meta(store, ORIGIN, origin).await?;
    if stored != origin {
        return Err(LedgerError::LogIntegrity(format!(
            "this store holds the log \"{stored}\", but the gateway is configured as \"{origin}\" (log.origin)"
        )));
    }
    let vkey = key.verifier().to_string();
    let stored = ensure_meta(store, VERIFIER_KEY, &vkey).await?;
    if stored != vkey {
        return Err(LedgerError::LogIntegrity(format!(
            "this store's log is signed with the key {stored}, but this gateway holds {vkey} (log.key): \
             every replica must use the log's one key"
        )));
    }

    // The size first, then the checkpoint: a replica committing in between (entries and their
    // checkpoint in one transaction) makes the checkpoint larger, never smaller; retry then.
    let (mut size, mut latest) = (0, None);
    for _ in 0..50 {
        size = store.log_size().await?;
        latest = store.latest_checkpoint().await?;
        if latest.as_ref().is_none_or(|cp| cp.size <= size) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    match latest {
        None if size == 0 => {}
        None => {
            return Err(LedgerError::LogIntegrity(format!(
                "the log holds {size} entries but no signed checkpoint"
            )));
        }
        Some(cp) => {
            let signed = checkpoint::open(cp.note.as_bytes(), key.verifier(), &[]).map_err(|e| {
                LedgerError::LogIntegrity(format!(
                    "the last stored checkpoint (size {}) does not verify with this gateway's key: {e}",
                    cp.size
                ))
            })?;
            let signed = signed.into_checkpoint();
            if signed.size != size {
                return Err(LedgerError::LogIntegrity(format!(
                    "the log holds {size} entries, but the last checkpoint the gateway signed is for {}",
                    signed.size
                )));
            }
            let nodes = store.nodes(merkle::root_nodes(size)).await?;
            let stored = merkle::root(size, &nodes).map_err(|e| {
                LedgerError::LogIntegrity(format!("the stored tree is incomplete: {e}"))
            })?;
            if stored != signed.root {
                return Err(LedgerError::LogIntegrity(format!(
                    "the stored tree of size {size} has root {stored}, but the gateway signed {}",
                    signed.root
                )));
            }
            let recomputed = recompute_root(store, size, registry).await?;
            if recomputed != signed.root {
                return Err(LedgerError::LogIntegrity(format!(
                    "the stored entries recompute root {recomputed}, but the gateway signed {} for size {size}: \
                     entries were altered behind the gateway's back",
                    signed.root
                )));
            }
        }
    }

    check_published(store, key, published, size, accept_restored_log).await?;

    let unlogged = store.unlogged().await?;
    if unlogged.is_empty() {
        if let Some(cp) = store.latest_checkpoint().await? {
            published
                .write(cp.size, &cp.note)
                .map_err(|e| published_error(published, e))?;
        }
        return Ok(size);
    }
    let mut tx = store.begin().await?;
    let entries = unlogged
        .iter()
        .map(entry_of)
        .collect::<Result<Vec<_>, _>>()?;
    let appended = append_entries(tx.as_mut(), key, entries, now_ms()).await?;
    for (k, s) in unlogged.iter().enumerate() {
        tx.set_log_index(&s.summary.id, appended.first + k as u64)
            .await?;
    }
    let (size, note) = (appended.size(), appended.checkpoint.clone());
    tx.append_log(appended.append).await?;
    tx.commit().await?;
    published
        .write(size, &note)
        .map_err(|e| published_error(published, e))?;
    tracing::info!(
        count = unlogged.len(),
        size,
        "logged submissions accepted before the log existed"
    );
    Ok(size)
}

fn published_error(published: &Published, e: std::io::Error) -> LedgerError {
    LedgerError::LogIntegrity(format!("{}: {e}", published.path.display()))
}

/// The value of an item the store records about the log (`log_meta`), recorded with `value`
/// if the store has none yet (a replica starting at the same moment may record it first: the
/// stored value is returned).
pub(crate) async fn ensure_meta(
    store: &dyn Store,
    name: &str,
    value: &str,
) -> Result<String, LedgerError> {
    if let Some(v) = store.log_meta(name).await? {
        return Ok(v);
    }
    let mut tx = store.begin().await?;
    tx.set_log_meta(name, value).await?;
    tx.commit().await?;
    store
        .log_meta(name)
        .await?
        .ok_or_else(|| LedgerError::LogIntegrity(format!("the log's {name} could not be recorded")))
}

/// The store must hold the tree of the checkpoint the gateway last published, or extend it.
async fn check_published(
    store: &dyn Store,
    key: &NoteSigner,
    published: &Published,
    size: u64,
    accept_restored_log: bool,
) -> Result<(), LedgerError> {
    let Some(note) = published
        .read()
        .map_err(|e| published_error(published, e))?
    else {
        return Ok(());
    };
    let last = checkpoint::open(note.as_bytes(), key.verifier(), &[])
        .map_err(|e| {
            LedgerError::LogIntegrity(format!(
                "{} does not verify with this gateway's key: {e}",
                published.path.display()
            ))
        })?
        .into_checkpoint();
    let problem = if size < last.size {
        Some(format!(
            "the store holds {size} log entries, but this gateway already published a checkpoint of size {} \
             ({}): the store was restored from an older backup or replaced",
            last.size,
            published.path.display()
        ))
    } else {
        let nodes = store.nodes(merkle::root_nodes(last.size)).await?;
        match merkle::root(last.size, &nodes) {
            Ok(root) if root == last.root => None,
            _ => Some(format!(
                "the store's tree of size {} is not the one this gateway published ({}): the store was replaced",
                last.size,
                published.path.display()
            )),
        }
    };
    match problem {
        None => Ok(()),
        Some(p) if accept_restored_log => {
            tracing::warn!(
                "{p}; continuing because --accept-restored-log was given: the gateway will sign checkpoints that \
                 do not extend the one it published, and monitors will report a fork or rollback"
            );
            Ok(())
        }
        Some(p) => Err(LedgerError::LogIntegrity(format!(
            "{p}. Restore a newer backup, or start with --accept-restored-log to knowingly fork the log"
        ))),
    }
}

/// The root recomputed from every stored entry, read in pages; each entry also goes to
/// `registry`, and each submission entry must have its submission in the store, with the
/// envelope digest it logged (one indexed read per page: a digest column, not the envelopes;
/// `log verify` re-hashes those).
async fn recompute_root(
    store: &dyn Store,
    size: u64,
    registry: &Registry,
) -> Result<Hash, LedgerError> {
    const PAGE: u64 = 10_000;
    let mut tree = merkle::CompactTree::default();
    while tree.size() < size {
        let start = tree.size();
        let end = (start + PAGE).min(size);
        let page = store.entries(start, end).await?;
        if page.is_empty() {
            return Err(LedgerError::LogIntegrity(format!(
                "log entry {start} is missing"
            )));
        }
        let stored: std::collections::HashMap<u64, Vec<u8>> = store
            .logged_envelopes(start, end)
            .await?
            .into_iter()
            .collect();
        for (index, entry) in &page {
            if let Ok(Entry::Submission(s)) = Entry::parse(entry) {
                match stored.get(index) {
                    Some(digest) if digest[..] == s.envelope_digest[..] => {}
                    Some(_) => {
                        return Err(LedgerError::LogIntegrity(format!(
                            "submission {} (log entry {index}) is stored with another envelope than the one logged: \
                             the store was altered behind the gateway's back",
                            s.submission_id
                        )));
                    }
                    None => {
                        return Err(LedgerError::LogIntegrity(format!(
                            "the log records submission {} at entry {index}, but the store does not hold it: \
                             the store was altered behind the gateway's back; restore it from a backup",
                            s.submission_id
                        )));
                    }
                }
            }
        }
        for (index, entry) in page {
            if index != tree.size() {
                return Err(LedgerError::LogIntegrity(format!(
                    "log entry {} is missing",
                    tree.size()
                )));
            }
            tree.push(merkle::leaf_hash(&entry));
            registry.follow(index, &entry);
        }
    }
    Ok(tree.root())
}

/// The log entry of a stored submission.
fn entry_of(s: &StoredSubmission) -> Result<Vec<u8>, StoreError> {
    let digest32 = |d: &[u8], what: &str| {
        <[u8; 32]>::try_from(d).map_err(|_| {
            StoreError::Internal(format!("stored {what} of {} is not 32 bytes", s.summary.id))
        })
    };
    Entry::Submission(SubmissionEntry {
        time_ms: s.summary.received_at_ms,
        submission_id: s.summary.id.clone(),
        member: s.summary.member.clone(),
        dataflow: s.summary.dataflow.clone(),
        ref_area: s.summary.ref_area.clone(),
        time_period: s.summary.time_period.clone(),
        revision: s.summary.revision,
        payload_digest: digest32(&s.payload_digest, "payload digest")?,
        envelope_digest: digest32(&s.summary.envelope_digest, "envelope digest")?,
        signing_cert_digest: sha256(&s.signing_cert),
    })
    .encode()
    .map_err(|e| StoreError::Internal(format!("log entry of {}: {e}", s.summary.id)))
}

#[cfg(test)]
mod tests {
    use super::Published;

    #[test]
    fn published_checkpoint_never_goes_back_and_writes_never_interleave() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("checkpoint");
        let published = Published::new(&path);
        let note = |size: u64| format!("origin\n{size}\n{}\n", "r".repeat(4096));

        // Writers racing from several threads (the ledger and administrative appends).
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let published = published.clone();
                scope.spawn(move || {
                    for k in 0..25 {
                        let size = 1 + k * 4 + t;
                        published.record(size, &note(size));
                    }
                });
            }
        });
        let read = || std::fs::read_to_string(&path).expect("published checkpoint");
        assert_eq!(read(), note(100), "the largest checkpoint, whole");

        published.record(7, &note(7));
        assert_eq!(read(), note(100), "a smaller checkpoint is not recorded");

        // At start, the store's checkpoint is written as it is, after the checks.
        published.write(7, &note(7)).expect("written");
        assert_eq!(read(), note(7));
        published.record(8, &note(8));
        assert_eq!(read(), note(8));
        assert!(!path.with_extension("tmp").exists());
    }
}
