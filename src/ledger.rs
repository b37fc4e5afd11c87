//! The single writer: orders accepted submissions, numbers their revisions, issues receipts,
//! and commits them to the store in batches (group commit).
//!
//! ```text
//!  Submit handlers ──Accepted──▶ mpsc ──▶ ledger task ──one WriteTx per batch──▶ Store
//!        ▲                                    │ revision n+1, signed receipt
//!        └────────── oneshot reply ◀──────────┘ (sent only after the durable commit)
//! ```
//!
//! Everything that arrives while a commit is in flight forms the next batch, so one fsync
//! covers many submissions under load, and a lone submission is never kept waiting.

use std::{collections::HashMap, sync::Arc};

use prost::Message;
use ring::signature::Ed25519KeyPair;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::{
    identity::MemberId,
    proto::Receipt,
    receipt,
    schema::ValidSubmission,
    store::{SeriesKey, Store, StoreError, SubmissionRecord},
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
}

/// Why a submission was not stored.
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
    /// The ledger has stopped (the gateway is shutting down).
    #[error("the ledger is not running")]
    Closed,
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
    /// Starts the ledger task over `store`, signing receipts with `key`. At most `max_batch`
    /// submissions share one commit.
    pub fn start(
        store: Arc<dyn Store>,
        key: Arc<Ed25519KeyPair>,
        max_batch: usize,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(max_batch.max(1) * 4);
        let task = tokio::spawn(run(store, key, rx, max_batch.max(1)));
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

async fn run(
    store: Arc<dyn Store>,
    key: Arc<Ed25519KeyPair>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let jobs = std::mem::take(&mut batch);
        match commit(&*store, &key, &jobs).await {
            Ok(results) => reply_all(jobs, results),
            // One bad submission must not sink the others: retry each on its own.
            Err(StoreError::Internal(_)) if jobs.len() > 1 => {
                for job in jobs {
                    let result = commit(&*store, &key, std::slice::from_ref(&job)).await;
                    let result = result
                        .map(|mut r| r.remove(0))
                        .unwrap_or_else(|e| Err(e.into()));
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
    encoded: Vec<u8>,
}

/// Runs one batch in one transaction; the outer error means nothing was committed.
async fn commit(
    store: &dyn Store,
    key: &Ed25519KeyPair,
    jobs: &[Job],
) -> Result<Vec<Result<Receipt, LedgerError>>, StoreError> {
    let mut tx = store.begin().await?;
    let received_at_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let series: Vec<SeriesKey> = jobs
        .iter()
        .map(|j| series_of(&j.accepted.submission))
        .collect();
    let digests: Vec<[u8; 32]> = jobs.iter().map(|j| j.accepted.payload_digest).collect();
    let stored = tx.receipts_by_payload(&digests).await?;
    let mut current = tx.current_revisions(&series).await?;

    let mut results = Vec::with_capacity(jobs.len());
    let mut fresh: Vec<Fresh> = Vec::with_capacity(jobs.len());
    let mut in_batch: HashMap<[u8; 32], usize> = HashMap::new();
    for (i, (job, series)) in jobs.iter().zip(series).enumerate() {
        let a = &job.accepted;
        if let Some(bytes) = stored.get(&a.payload_digest) {
            let receipt = Receipt::decode(bytes.as_slice())
                .map_err(|e| StoreError::Internal(format!("stored receipt: {e}")))?;
            results.push(Ok(receipt));
            continue;
        }
        if let Some(&k) = in_batch.get(&a.payload_digest) {
            results.push(Ok(fresh[k].receipt.clone()));
            continue;
        }
        let now = current.get(&series).copied().unwrap_or(0);
        if let Some(expected) = a.submission.supersedes_revision.filter(|&e| e != now) {
            results.push(Err(LedgerError::RevisionConflict {
                current: now,
                expected,
            }));
            continue;
        }
        let revision = now + 1;
        current.insert(series.clone(), revision);
        let id = format!(
            "{}.{}.{}.r{revision}",
            series.ref_area, series.dataflow, series.time_period
        );
        let mut r = Receipt {
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
        receipt::sign(&mut r, key).map_err(|e| StoreError::Internal(format!("receipt: {e}")))?;
        in_batch.insert(a.payload_digest, fresh.len());
        results.push(Ok(r.clone()));
        fresh.push(Fresh {
            job: i,
            series,
            id,
            revision,
            encoded: r.encode_to_vec(),
            receipt: r,
        });
    }

    if !fresh.is_empty() {
        let records: Vec<SubmissionRecord> = fresh
            .into_iter()
            .map(|f| {
                let a = &jobs[f.job].accepted;
                let s = &a.submission;
                SubmissionRecord {
                    id: f.id,
                    member: a.member.to_string(),
                    series: f.series,
                    freq: s.period.frequency().code(),
                    period_start: s.period.start(),
                    period_end: s.period.end(),
                    revision: f.revision,
                    received_at_ms,
                    payload_digest: a.payload_digest,
                    envelope_digest: a.envelope_digest,
                    envelope: a.envelope.clone(),
                    signing_cert: a.signing_cert.clone(),
                    receipt: f.encoded,
                    observations: s.observations.clone(),
                }
            })
            .collect();
        tx.insert(records).await?;
    }
    tx.commit().await?;
    Ok(results)
}

fn series_of(s: &ValidSubmission) -> SeriesKey {
    SeriesKey {
        ref_area: s.ref_area.clone(),
        dataflow: s.dataflow,
        time_period: s.period.to_string(),
    }
}
