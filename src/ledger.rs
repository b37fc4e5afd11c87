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
//! The log itself (tree nodes, checkpoints, proofs, the start-up check) is [`crate::tlog`]'s;
//! the ledger keeps the sequencing: batches, revisions, idempotency, receipts.

use std::{collections::HashMap, sync::Arc};

use prost::Message;
use tokio::sync::{mpsc, oneshot};

use crate::{
    app::Accepted,
    entry::{Entry, SubmissionEntry, sha256},
    identity::Registry,
    proto::Receipt,
    receipt::{self, ReceiptError, now_ms},
    schema::ValidSubmission,
    store::{SeriesKey, Store, StoreError, SubmissionRecord, WriteTx},
    telemetry::Telemetry,
    tlog::{Log, LogError},
};

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
    /// The log could not be appended to; nothing of the batch was stored.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A receipt could not be signed; nothing of the batch was stored.
    #[error("receipt: {0}")]
    Receipt(#[from] ReceiptError),
    /// The signing certificate was revoked while the submission waited to be stored.
    #[error("the signing certificate {0} was revoked before the submission could be logged")]
    SignerRevoked(String),
    /// The ledger has stopped (the gateway is shutting down).
    #[error("the ledger is not running")]
    Closed,
    /// The batch this submission was part of failed as a whole; nothing of it was stored.
    #[error(transparent)]
    Batch(Arc<LedgerError>),
}

impl LedgerError {
    /// What failed: for a failed batch, the batch's error.
    pub fn cause(&self) -> &LedgerError {
        match self {
            Self::Batch(e) => e.cause(),
            e => e,
        }
    }

    /// Whether the batch failed on a conflict with stored data, which one of its submissions
    /// may cause alone: the only failure after which each is retried on its own.
    fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::Store(StoreError::Conflict(_))
                | Self::Log(LogError::Store(StoreError::Conflict(_)))
        )
    }
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
    /// Starts the ledger task over `store`, appending to `log` (whose key signs checkpoints
    /// and receipts). At most `max_batch` submissions share one commit. Call
    /// [`Log::prepare`] first.
    pub fn start(
        store: Arc<dyn Store>,
        log: Arc<Log>,
        registry: Arc<Registry>,
        max_batch: usize,
        telemetry: Arc<Telemetry>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(max_batch.max(1) * 4);
        let writer = Writer {
            store,
            log,
            registry,
            telemetry,
        };
        let task = tokio::spawn(run(writer, rx, max_batch.max(1)));
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
    log: Arc<Log>,
    registry: Arc<Registry>,
    /// Batch sizes and commit latency.
    telemetry: Arc<Telemetry>,
}

async fn run(w: Writer, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    let published = w.log.published();
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let jobs = std::mem::take(&mut batch);
        let started = std::time::Instant::now();
        match commit(&w, &jobs).await {
            Ok((results, checkpoint)) => {
                w.telemetry
                    .batch(jobs.len(), started.elapsed().as_secs_f64());
                published.record_committed(checkpoint.as_ref());
                reply_all(jobs, results);
            }
            // One submission clashing with stored data must not sink the others: retry each
            // on its own.
            Err(e) if e.is_conflict() && jobs.len() > 1 => {
                for job in jobs {
                    let result = match commit(&w, std::slice::from_ref(&job)).await {
                        Ok((mut results, checkpoint)) => {
                            published.record_committed(checkpoint.as_ref());
                            results.remove(0)
                        }
                        Err(e) => Err(e),
                    };
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = jobs.len(), "batch not committed");
                let e = Arc::new(e);
                for job in jobs {
                    let _ = job.reply.send(Err(LedgerError::Batch(e.clone())));
                }
            }
        }
    }
}

fn reply_all(jobs: Vec<Job>, results: Vec<Result<Receipt, LedgerError>>) {
    for (job, result) in jobs.into_iter().zip(results) {
        // A caller that went away (deadline, cancelled) still has its submission stored; its
        // retry will get the same receipt.
        let _ = job.reply.send(result);
    }
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

/// The batch's plan: each job's result where it is known already, the submissions to store,
/// and the jobs that repeat another job's payload (job, index into `fresh`).
struct Plan {
    results: Vec<Option<Result<Receipt, LedgerError>>>,
    fresh: Vec<Fresh>,
    duplicates: Vec<(usize, usize)>,
}

/// Runs one batch in one transaction: sequence it, log and receipt what is fresh, commit.
/// The outer error means nothing was committed.
async fn commit(w: &Writer, jobs: &[Job]) -> Result<Committed, LedgerError> {
    let mut tx = w.store.begin().await?;
    let received_at_ms = now_ms();
    let Plan {
        mut results,
        mut fresh,
        duplicates,
    } = sequence(w, tx.as_mut(), jobs, received_at_ms).await?;
    let checkpoint = log_and_store(w, tx.as_mut(), jobs, &mut fresh, received_at_ms).await?;
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

/// Decides each job, holding the write transaction: a payload stored already gets its old
/// receipt, a revoked signer or an out-of-date `supersedes_revision` is refused, a payload
/// twice in the batch is stored once, and every other job gets the series' next revision.
async fn sequence(
    w: &Writer,
    tx: &mut dyn WriteTx,
    jobs: &[Job],
    received_at_ms: i64,
) -> Result<Plan, LedgerError> {
    let series: Vec<SeriesKey> = jobs
        .iter()
        .map(|j| series_of(j.accepted.submission()))
        .collect();
    let digests: Vec<[u8; 32]> = jobs.iter().map(|j| j.accepted.payload_digest()).collect();
    let stored = tx.receipts_by_payload(&digests).await?;
    let mut current = tx.current_revisions(&series).await?;

    // Results are filled in order; fresh submissions get theirs once the log is appended.
    let mut results: Vec<Option<Result<Receipt, LedgerError>>> = Vec::with_capacity(jobs.len());
    let mut fresh: Vec<Fresh> = Vec::with_capacity(jobs.len());
    let mut in_batch: HashMap<[u8; 32], usize> = HashMap::new();
    let mut duplicates: Vec<(usize, usize)> = Vec::new();
    for (i, (job, series)) in jobs.iter().zip(series).enumerate() {
        let a = &job.accepted;
        if let Some(bytes) = stored.get(&a.payload_digest()) {
            let receipt = Receipt::decode(bytes.as_slice()).map_err(|e| {
                StoreError::corrupt(format!("receipt ({e})"), hex::encode(a.payload_digest()))
            })?;
            results.push(Some(Ok(receipt)));
            continue;
        }
        // Holding the write transaction, no revocation entry can be appended before this
        // batch's entries; one enforced since the signature was checked refuses it here.
        if w.registry.is_revoked(a.signing_serial()) {
            results.push(Some(Err(LedgerError::SignerRevoked(
                a.signing_serial().to_owned(),
            ))));
            continue;
        }
        if let Some(&k) = in_batch.get(&a.payload_digest()) {
            duplicates.push((i, k));
            results.push(None);
            continue;
        }
        let now = current.get(&series).copied().unwrap_or(0);
        if let Some(expected) = a.submission().supersedes_revision.filter(|&e| e != now) {
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
            envelope_digest: a.envelope_digest().to_vec(),
            payload_digest: a.payload_digest().to_vec(),
            revision,
            received_at: Some(receipt::timestamp_from_millis(received_at_ms)),
            member: a.member().to_string(),
            dataflow: series.dataflow.id().to_owned(),
            ref_area: series.ref_area.clone(),
            time_period: series.time_period.clone(),
            ..Default::default()
        };
        in_batch.insert(a.payload_digest(), fresh.len());
        results.push(None);
        fresh.push(Fresh {
            job: i,
            series,
            id,
            revision,
            receipt,
        });
    }

    Ok(Plan {
        results,
        fresh,
        duplicates,
    })
}

/// Appends the fresh submissions' entries to the log, signs their receipts, and writes
/// submissions and log in `tx`. Returns the new checkpoint (tree size, note), if any.
async fn log_and_store(
    w: &Writer,
    tx: &mut dyn WriteTx,
    jobs: &[Job],
    fresh: &mut [Fresh],
    received_at_ms: i64,
) -> Result<Option<(u64, String)>, LedgerError> {
    if fresh.is_empty() {
        return Ok(None);
    }
    let key = w.log.key();
    let entries = fresh
        .iter()
        .map(|f| {
            let a = &jobs[f.job].accepted;
            Entry::Submission(SubmissionEntry {
                time_ms: received_at_ms,
                submission_id: f.id.clone(),
                member: a.member().to_string(),
                dataflow: f.series.dataflow.id().to_owned(),
                ref_area: f.series.ref_area.clone(),
                time_period: f.series.time_period.clone(),
                revision: f.revision,
                payload_digest: a.payload_digest(),
                envelope_digest: a.envelope_digest(),
                signing_cert_digest: sha256(a.signing_cert()),
            })
            .encode()
            .map_err(LogError::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let appended = w.log.append(tx, entries, received_at_ms).await?;
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
        receipt::sign(r, key.key_pair())?;
        let a = &jobs[f.job].accepted;
        let s = a.submission();
        records.push(SubmissionRecord {
            id: f.id.clone(),
            member: a.member().to_string(),
            series: f.series.clone(),
            freq: s.period.frequency().code(),
            period_start: s.period.start(),
            period_end: s.period.end(),
            revision: f.revision,
            received_at_ms,
            log_index: r.log_index,
            payload_digest: a.payload_digest(),
            envelope_digest: a.envelope_digest(),
            envelope: a.envelope().to_vec(),
            signing_cert: a.signing_cert().to_vec(),
            receipt: r.encode_to_vec(),
            observations: s.observations.clone(),
        });
    }
    let checkpoint = (appended.size(), appended.checkpoint.clone());
    tx.insert(records).await?;
    tx.append_log(appended.append).await?;
    Ok(Some(checkpoint))
}

fn series_of(s: &ValidSubmission) -> SeriesKey {
    SeriesKey {
        ref_area: s.ref_area.clone(),
        dataflow: s.dataflow,
        time_period: s.period.to_string(),
    }
}
