//! Copying a whole store to another, of either backend: submissions with their observations,
//! revisions and receipts, the transparency log (entries, tree nodes, every checkpoint and the
//! witnesses' cosignatures of them), what the store records about the log (its origin, the
//! policy and CRLs first in force) and the access trail. Afterwards the target's entries must recompute the root of the source's latest
//! checkpoint, or the copy is reported as failed.
//!
//! The source should not change meanwhile: copy from a stopped gateway's store or a backup.

use super::{LogAppend, LogEntryRecord, LogRecords, RoundRecord, Store, StoreError};
use crate::{
    checkpoint,
    merkle::{self, CompactTree, Hash},
};

/// Rows per read and per write transaction.
const PAGE: u32 = 1_000;

/// What a copy moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copied {
    /// Submissions (every revision).
    pub submissions: u64,
    /// Log entries.
    pub entries: u64,
    /// Stored tree nodes.
    pub nodes: u64,
    /// Signed checkpoints.
    pub checkpoints: u64,
    /// Witnesses' cosignatures of them.
    pub cosignatures: u64,
    /// Access records.
    pub access_records: u64,
    /// The root both stores' logs recompute (`None` for an empty log).
    pub root: Option<Hash>,
}

/// Where progress is reported: what, how many so far.
type Progress<'a> = &'a (dyn Fn(&str, u64) + Sync);

/// Copies everything in `from` into the empty store `to`, reporting progress to `progress`
/// (what, how many so far).
pub async fn copy(
    from: &dyn Store,
    to: &dyn Store,
    progress: Progress<'_>,
) -> Result<Copied, StoreError> {
    if to.log_size().await? > 0
        || !to.export(0, 1).await?.is_empty()
        || to.latest_checkpoint().await?.is_some()
    {
        return Err(StoreError::Refused(
            "the target store is not empty: copy into a new database".into(),
        ));
    }
    copy_log_meta(from, to).await?;
    let submissions = copy_submissions(from, to, progress).await?;
    let entries = copy_entries(from, to, progress).await?;
    let nodes = copy_nodes(from, to, progress).await?;
    let checkpoints = copy_checkpoints(from, to, progress).await?;
    let cosignatures = copy_cosignatures(from, to, progress).await?;
    // What the hub learnt of its witnesses: a few rows, learnt again on the next round anyway.
    // The checkpoints recorded as witnessed: one row per witnessing round that met a quorum.
    to.record_round(RoundRecord {
        states: from.witness_states().await?,
        witnessed: from.witnessed_sizes(u32::MAX).await?,
        ..RoundRecord::default()
    })
    .await?;
    let access_records = copy_trail(from, to, progress).await?;
    Ok(Copied {
        submissions,
        entries,
        nodes,
        checkpoints,
        cosignatures,
        access_records,
        root: verify(from, to).await?,
    })
}

/// What the source records about its log: its origin, the policy and CRLs first in force.
async fn copy_log_meta(from: &dyn Store, to: &dyn Store) -> Result<(), StoreError> {
    let mut tx = to.begin().await?;
    for name in [
        crate::tlog::ORIGIN,
        crate::tlog::FIRST_POLICY,
        crate::tlog::FIRST_CRLS,
    ] {
        if let Some(value) = from.log_meta(name).await? {
            tx.set_log_meta(name, &value).await?;
        }
    }
    tx.commit().await
}

/// Every submission with its observations, in store order.
async fn copy_submissions(
    from: &dyn Store,
    to: &dyn Store,
    progress: Progress<'_>,
) -> Result<u64, StoreError> {
    let (mut after, mut done) = (0, 0);
    loop {
        let page = from.export(after, PAGE).await?;
        let Some(&(last, _)) = page.last() else {
            return Ok(done);
        };
        after = last;
        done += page.len() as u64;
        let mut tx = to.begin().await?;
        tx.insert(page.into_iter().map(|(_, r)| r).collect())
            .await?;
        tx.commit().await?;
        progress("submissions", done);
    }
}

/// Every log entry, in index order, without a gap.
async fn copy_entries(
    from: &dyn Store,
    to: &dyn Store,
    progress: Progress<'_>,
) -> Result<u64, StoreError> {
    let size = from.log_size().await?;
    let mut done = 0;
    while done < size {
        let page = from
            .entries(done, (done + u64::from(PAGE) * 10).min(size))
            .await?;
        if page.first().map(|e| e.0) != Some(done) {
            return Err(StoreError::Corrupt {
                what: "the source log's entries".into(),
                id: Some(format!("entry {done}")),
            });
        }
        done += page.len() as u64;
        let entries = page
            .into_iter()
            .map(|(index, entry)| LogEntryRecord {
                index,
                leaf_hash: merkle::leaf_hash(&entry),
                entry,
            })
            .collect();
        let mut tx = to.begin().await?;
        tx.append_log(LogAppend {
            entries,
            ..LogAppend::default()
        })
        .await?;
        tx.commit().await?;
        progress("log entries", done);
    }
    Ok(done)
}

/// Every stored tree node.
async fn copy_nodes(
    from: &dyn Store,
    to: &dyn Store,
    progress: Progress<'_>,
) -> Result<u64, StoreError> {
    let (mut after, mut done) = (None, 0);
    loop {
        let page = from.export_nodes(after, PAGE * 10).await?;
        let Some(&(last, _)) = page.last() else {
            return Ok(done);
        };
        after = Some(last);
        done += page.len() as u64;
        let mut tx = to.begin().await?;
        tx.append_log(LogAppend {
            nodes: page,
            ..LogAppend::default()
        })
        .await?;
        tx.commit().await?;
        progress("tree nodes", done);
    }
}

/// Every signed checkpoint, with when it was signed.
async fn copy_checkpoints(
    from: &dyn Store,
    to: &dyn Store,
    progress: Progress<'_>,
) -> Result<u64, StoreError> {
    let (mut after, mut done) = (0, 0);
    loop {
        let page = from.export_checkpoints(after, PAGE * 10).await?;
        let Some(last) = page.last() else {
            return Ok(done);
        };
        after = last.checkpoint.size;
        done += page.len() as u64;
        let mut tx = to.begin().await?;
        tx.insert_checkpoints(page).await?;
        tx.commit().await?;
        progress("checkpoints", done);
    }
}

/// Every cosignature, after the checkpoints they sign.
async fn copy_cosignatures(
    from: &dyn Store,
    to: &dyn Store,
    progress: Progress<'_>,
) -> Result<u64, StoreError> {
    let (mut after, mut done) = (None, 0);
    loop {
        let page = from.export_cosignatures(after, PAGE * 10).await?;
        let Some(last) = page.last() else {
            return Ok(done);
        };
        after = Some((last.size, last.witness.clone()));
        done += page.len() as u64;
        to.record_round(RoundRecord {
            cosignatures: page,
            ..RoundRecord::default()
        })
        .await?;
        progress("cosignatures", done);
    }
}

/// The access trail, read newest first and written oldest first, in order.
async fn copy_trail(
    from: &dyn Store,
    to: &dyn Store,
    progress: Progress<'_>,
) -> Result<u64, StoreError> {
    let mut trail = Vec::new();
    let mut before = None;
    loop {
        let page = from.access_trail(before, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        before = Some(last.id);
        trail.extend(page);
    }
    trail.reverse();
    let mut done = 0;
    for chunk in trail.chunks(PAGE as usize) {
        let mut tx = to.begin().await?;
        tx.insert_access(chunk.to_vec()).await?;
        tx.commit().await?;
        done += chunk.len() as u64;
        progress("access records", done);
    }
    Ok(done)
}

/// The target's entries, read back, must recompute the root of the source's latest
/// checkpoint, and both must hold that checkpoint.
async fn verify(from: &dyn LogRecords, to: &dyn LogRecords) -> Result<Option<Hash>, StoreError> {
    let Some(latest) = from.latest_checkpoint().await? else {
        return Ok(None);
    };
    let signed = checkpoint::read_unverified(latest.note.as_bytes()).map_err(|e| {
        StoreError::corrupt(
            format!("signed note ({e})"),
            format!("the source's checkpoint of size {}", latest.size),
        )
    })?;
    let mut tree = CompactTree::default();
    while tree.size() < signed.size {
        let start = tree.size();
        let page = to
            .entries(start, (start + u64::from(PAGE) * 10).min(signed.size))
            .await?;
        if page.is_empty() {
            return Err(StoreError::Failed(format!(
                "the copy lacks log entry {start}"
            )));
        }
        for (_, entry) in page {
            tree.push(merkle::leaf_hash(&entry));
        }
    }
    if tree.root() != signed.root || to.latest_checkpoint().await? != Some(latest) {
        return Err(StoreError::Failed(format!(
            "the copy's log recomputes root {}, but the source's latest checkpoint (size {}) says {}",
            tree.root(),
            signed.size,
            signed.root
        )));
    }
    Ok(Some(tree.root()))
}
