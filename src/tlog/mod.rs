//! The transparency log: RFC 9162 entries and tree, C2SP checkpoints signed by the gateway's
//! key, inclusion and consistency proofs, the start-up check, and the monitor's step.
//!
//! ```text
//!  ledger / admin acts ──entries──▶ Log::append (inside the caller's WriteTx)
//!                                   │ leaf hashes, the tree nodes they complete,
//!                                   │ one signed checkpoint, each entry's inclusion proof
//!                                   ▼
//!                                 Store (log_entries, log_nodes, checkpoints) ──▶ Published
//!  Audit, statistics, CLI ◀── reads: checkpoint at a size, proofs, entries
//!  witnesses ◀── the latest checkpoint (app::witnessing) ──▶ cosignatures, stored
//!  GetCheckpoint, receipt upgrade ◀── witnessed (the largest with the policy's quorum)
//!  log monitor / verify, witnesses ◀── monitor::step (pure: grew, unchanged, fork, rollback)
//! ```
//!
//! The log asks the store only for what it needs: the size, the nodes a computation names
//! (as golang.org/x/mod's `tlog.HashReader`), entries by index, checkpoints. Proofs are made
//! from stored complete subtrees ([`merkle`]); verification stays pure.
//!
//! The gateway never signs two inconsistent checkpoints: each is computed, inside the write
//! transaction that serialises all writers, from the stored tree it extends; [`Published`]
//! keeps the last one outside the store; and at start [`Log::prepare`] refuses to serve a store
//! whose tree disagrees with what was signed.
//!
//! For witnesses: a checkpoint is a stored row of its own (size, note, when), and the
//! cosignatures gathered for it are kept beside it ([`crate::store::Cosignatures`]);
//! [`witnessed`] finds the largest a quorum cosigned.

pub mod monitor;
mod published;
mod startup;
mod witnessed;

use std::sync::Arc;

pub use published::Published;
pub use witnessed::{Witnessed, cosigned_note, witnessed, witnessed_at};

use crate::{
    checkpoint::{self, Checkpoint, CheckpointError, NoteSigner, NoteVerifier},
    entry::{Entry, MalformedEntry},
    identity::Registry,
    merkle::{self, Hash, NodeId, Nodes, ProofError},
    receipt::now_ms,
    store::{
        LogAppend, LogEntryRecord, LogRecords, LogTx, Store, StoreError, StoredCheckpoint, WriteTx,
    },
};

/// Why the log could not be appended to, read, or served.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored tree lacks a node it must have (or a proof was asked of sizes it cannot
    /// have: callers check sizes first).
    #[error("log tree: {0}")]
    Tree(#[from] ProofError),
    /// A checkpoint could not be signed, or a stored one read.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// An entry could not be encoded (a value that cannot be written in an entry).
    #[error("log entry: {0}")]
    Entry(#[from] MalformedEntry),
    /// The published checkpoint file could not be read or written.
    #[error("{path}: {source}", path = .path.display())]
    Published {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The stored log does not match what the gateway signed, or belongs to another log; the
    /// text says what was found and what to do.
    #[error("refusing to serve: {0}")]
    Integrity(String),
}

/// The tree size a read names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeSize {
    /// The latest checkpoint's.
    Latest,
    /// This size, at most the latest checkpoint's; its checkpoint if one was signed for it.
    Exactly(u64),
    /// This size, for which a checkpoint must have been signed.
    Signed(u64),
    /// The latest checkpoint signed at or before this time, Unix milliseconds (0 if none).
    AsOfTime(i64),
}

/// A tree size a read was asked for that the log cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum SizeError {
    /// Beyond the latest checkpoint.
    #[error("{asked} is beyond the latest checkpoint's tree size {latest}")]
    Beyond {
        /// What was asked.
        asked: u64,
        /// The latest checkpoint's size.
        latest: u64,
    },
    /// No checkpoint was signed for this size.
    #[error("no checkpoint was signed for tree size {0}: name the size of a signed checkpoint")]
    Unsigned(u64),
    /// The store failed.
    #[error(transparent)]
    Log(#[from] LogError),
}

impl From<StoreError> for SizeError {
    fn from(e: StoreError) -> Self {
        Self::Log(e.into())
    }
}

/// The transparency log the gateway signs: its key (whose name is the origin) and the
/// checkpoint it last published. Writers are serialised by the store's write transaction.
#[derive(Debug)]
pub struct Log {
    /// Signs checkpoints and, for the ledger, receipts.
    key: Arc<NoteSigner>,
    /// The checkpoint last published, outside the store.
    published: Published,
}

/// Entries appended within a transaction, not yet written.
pub(crate) struct Appended {
    /// Index of the first new entry.
    pub first: u64,
    /// The signed checkpoint of the new tree.
    pub checkpoint: String,
    /// The inclusion proof of each new entry in the new tree.
    pub proofs: Vec<Vec<Hash>>,
    /// What to write.
    pub append: LogAppend,
}

impl Appended {
    /// The size of the new tree.
    pub fn size(&self) -> u64 {
        self.first + self.proofs.len() as u64
    }
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

/// Reads into `nodes` whichever of `needed` it does not hold yet.
async fn fill(
    tx: &mut dyn LogTx,
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

/// Where [`Log::follow`] reads entries: the store, or a write transaction (which sees
/// everything committed before it took the write lock).
pub(crate) enum EntrySource<'a> {
    Store(&'a dyn LogRecords),
    Tx(&'a mut dyn LogTx),
}

impl Log {
    /// The log signed with `key`, publishing its checkpoints to `published`.
    pub fn new(key: Arc<NoteSigner>, published: Published) -> Self {
        Self { key, published }
    }

    /// The key checkpoints (and receipts) are signed with.
    pub fn key(&self) -> &NoteSigner {
        &self.key
    }

    /// The log's verifier key; its name is the origin.
    pub fn verifier(&self) -> &NoteVerifier {
        self.key.verifier()
    }

    /// The checkpoint last published.
    pub fn published(&self) -> &Published {
        &self.published
    }

    /// Appends `entries` to the log read through `tx`: the new tree nodes, the signed
    /// checkpoint of the new tree, and each new entry's inclusion proof in it. Nothing is
    /// written until the caller hands [`Appended::append`] to the transaction.
    pub(crate) async fn append(
        &self,
        tx: &mut dyn LogTx,
        entries: Vec<Vec<u8>>,
        signed_at_ms: i64,
    ) -> Result<Appended, LogError> {
        let first = tx.log_size().await?;
        let size = first + entries.len() as u64;
        let mut nodes = Nodes::new();
        let mut new_nodes = Vec::new();
        let mut records = Vec::with_capacity(entries.len());
        for (i, entry) in entries.into_iter().enumerate() {
            let index = first + i as u64;
            let leaf = merkle::leaf_hash(&entry);
            fill(tx, &mut nodes, merkle::append_nodes(index)).await?;
            let added = merkle::append(index, leaf, &nodes)?;
            nodes.extend(added.iter().copied());
            new_nodes.extend(added);
            records.push(LogEntryRecord {
                index,
                entry,
                leaf_hash: leaf,
            });
        }
        fill(tx, &mut nodes, merkle::root_nodes(size)).await?;
        let root = merkle::root(size, &nodes)?;
        let note = Checkpoint {
            origin: self.verifier().name().to_owned(),
            size,
            root,
            extensions: Vec::new(),
        }
        .sign(&self.key)?;
        fill(
            tx,
            &mut nodes,
            (first..size).flat_map(|i| merkle::inclusion_proof_nodes(i, size)),
        )
        .await?;
        let proofs = (first..size)
            .map(|i| merkle::inclusion_proof(i, size, &nodes))
            .collect::<Result<Vec<_>, _>>()?;
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

    /// Appends entries that are not submissions (administrative acts) in one durable
    /// transaction, with a checkpoint over the new tree, recorded as published. Writers are
    /// serialised by the store, so this interleaves safely with the ledger's batches.
    pub async fn append_durably(
        &self,
        store: &dyn Store,
        entries: &[Entry],
    ) -> Result<Vec<Logged>, LogError> {
        self.commit_entries(store.begin().await?, entries).await
    }

    /// As [`append_durably`](Self::append_durably), for acts that every gateway reading the
    /// same files sees (an edited policy, a revocation in the CRL), so that each is logged
    /// once: holding the write lock, `registry` first reads what other gateways appended since
    /// it last followed the log, and the acts the log then already records are left out.
    /// Returns the entries appended, with where each landed.
    pub async fn append_unrecorded_durably(
        &self,
        store: &dyn Store,
        registry: &Registry,
        entries: Vec<Entry>,
    ) -> Result<Vec<(Entry, Logged)>, LogError> {
        let mut tx = store.begin().await?;
        let size = tx.log_size().await?;
        follow(registry, size, EntrySource::Tx(tx.as_mut())).await?;
        let unrecorded: Vec<Entry> = entries
            .into_iter()
            .filter(|e| !matches!(e, Entry::Admin(a) if registry.records(a)))
            .collect();
        if unrecorded.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let logged = self.commit_entries(tx, &unrecorded).await?;
        Ok(unrecorded.into_iter().zip(logged).collect())
    }

    /// Appends `entries` in `tx`, with a checkpoint over the new tree, commits durably and
    /// records the checkpoint as published.
    async fn commit_entries(
        &self,
        mut tx: Box<dyn WriteTx>,
        entries: &[Entry],
    ) -> Result<Vec<Logged>, LogError> {
        let bytes = entries
            .iter()
            .map(Entry::encode)
            .collect::<Result<Vec<_>, _>>()?;
        let appended = self.append(tx.as_mut(), bytes, now_ms()).await?;
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
        self.published.record(size, &note);
        Ok(logged)
    }
}

/// Feeds `registry` the log entries it has not read, up to `size`, a page at a time.
pub(crate) async fn follow(
    registry: &Registry,
    size: u64,
    mut from: EntrySource<'_>,
) -> Result<(), StoreError> {
    const PAGE: u64 = 1_000;
    loop {
        let start = registry.next_index();
        if start >= size {
            return Ok(());
        }
        let end = (start + PAGE).min(size);
        let page = match &mut from {
            EntrySource::Store(store) => store.entries(start, end).await?,
            EntrySource::Tx(tx) => tx.entries(start, end).await?,
        };
        if page.is_empty() {
            return Ok(());
        }
        for (index, entry) in page {
            registry.follow(index, &entry);
        }
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

/// The value of an item the store records about the log (`log_meta`), recorded with `value`
/// if the store has none yet (a replica starting at the same moment may record it first: the
/// stored value is returned).
pub(crate) async fn ensure_meta(
    store: &dyn Store,
    name: &str,
    value: &str,
) -> Result<String, LogError> {
    if let Some(v) = store.log_meta(name).await? {
        return Ok(v);
    }
    let mut tx = store.begin().await?;
    tx.set_log_meta(name, value).await?;
    tx.commit().await?;
    store
        .log_meta(name)
        .await?
        .ok_or_else(|| LogError::Integrity(format!("the log's {name} could not be recorded")))
}

/// The latest checkpoint, if the log has one.
pub async fn latest(store: &dyn LogRecords) -> Result<Option<StoredCheckpoint>, LogError> {
    Ok(store.latest_checkpoint().await?)
}

/// The tree size a read reflects and the checkpoint signed for it (`None` only for an empty
/// log, or a time before the first checkpoint).
pub async fn resolve(
    store: &dyn LogRecords,
    asked: TreeSize,
) -> Result<(u64, Option<StoredCheckpoint>), SizeError> {
    if let TreeSize::AsOfTime(ms) = asked {
        let cp = store.checkpoint_before(ms).await?;
        return Ok((cp.as_ref().map_or(0, |c| c.size), cp));
    }
    let latest = store.latest_checkpoint().await?;
    let latest_size = latest.as_ref().map_or(0, |c| c.size);
    match asked {
        TreeSize::Exactly(n) | TreeSize::Signed(n) if n > latest_size => Err(SizeError::Beyond {
            asked: n,
            latest: latest_size,
        }),
        TreeSize::Exactly(n) | TreeSize::Signed(n) if n == latest_size => Ok((n, latest)),
        TreeSize::Exactly(n) => Ok((n, store.checkpoint_at(n).await?)),
        TreeSize::Signed(n) => match store.checkpoint_at(n).await? {
            Some(cp) => Ok((n, Some(cp))),
            None => Err(SizeError::Unsigned(n)),
        },
        TreeSize::Latest | TreeSize::AsOfTime(_) => Ok((latest_size, latest)),
    }
}

/// The checkpoint a stored note carries. The gateway signed it and the start-up check verified
/// the latest; it is read, not re-verified, here.
pub fn stored_checkpoint(cp: &StoredCheckpoint) -> Result<Checkpoint, LogError> {
    checkpoint::read_unverified(cp.note.as_bytes()).map_err(|e| {
        LogError::Store(StoreError::corrupt(
            format!("signed note ({e})"),
            format!("the checkpoint of size {}", cp.size),
        ))
    })
}

/// The inclusion proof of entry `index` in the tree of `size` (`index < size`, a size the log
/// has), from the O(log n) stored nodes it needs.
pub async fn inclusion_proof(
    store: &dyn LogRecords,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, LogError> {
    let nodes = store
        .nodes(merkle::inclusion_proof_nodes(index, size))
        .await?;
    Ok(merkle::inclusion_proof(index, size, &nodes)?)
}

/// The consistency proof from the tree of `from` entries to the tree of `to` (`0 < from <=
/// to`, a size the log has).
pub async fn consistency_proof(
    store: &dyn LogRecords,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, LogError> {
    let nodes = store
        .nodes(merkle::consistency_proof_nodes(from, to))
        .await?;
    Ok(merkle::consistency_proof(from, to, &nodes)?)
}
