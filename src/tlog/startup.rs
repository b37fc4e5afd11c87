//! The start-up check: the stored log must be the one this gateway signed.
//!
//! - The log's origin is recorded at first start and must match the key's name afterwards;
//!   so must the verifier key (every replica signs with the log's one key).
//! - The last signed checkpoint must verify with the key, and the stored tree must have
//!   exactly its size and its root; the root recomputed from every stored entry must be it
//!   too, and every logged submission must be in the store with the envelope it logged (else
//!   the store was altered, restored or rolled back).
//! - The store must hold the tree of the checkpoint last published outside it, or extend it.
//! - Every stored submission has its log entry (a store from before the log is refused).

use super::{Log, LogError, ORIGIN, Published, VERIFIER_KEY, ensure_meta};
use crate::{
    checkpoint::{self, NoteSigner},
    entry::Entry,
    identity::Registry,
    merkle::{self, Hash},
    store::{LogRecords, Store},
};

/// Makes the stored log safe to serve, before the ledger starts:
/// - the log's origin is recorded at first start and must match `key`'s name afterwards;
/// - the last signed checkpoint must verify with `key`, and the stored tree must have exactly
///   its size and its root (else the store was altered, restored or rolled back);
/// - every stored submission has its log entry.
///
/// The entries read on the way feed `registry` (certificates issued and revoked). Returns the
/// size of the log.
impl Log {
    /// Makes the stored log safe to serve, before the ledger starts: see the module.
    pub async fn prepare(
        &self,
        store: &dyn Store,
        accept_restored_log: bool,
        registry: &Registry,
    ) -> Result<u64, LogError> {
        let (key, published) = (&*self.key, &self.published);
        let origin = key.verifier().name();
        let stored = ensure_meta(store, ORIGIN, origin).await?;
        if stored != origin {
            return Err(LogError::Integrity(format!(
                "this store holds the log \"{stored}\", but the gateway is configured as \"{origin}\" (log.origin)"
            )));
        }
        let vkey = key.verifier().to_string();
        let stored = ensure_meta(store, VERIFIER_KEY, &vkey).await?;
        if stored != vkey {
            return Err(LogError::Integrity(format!(
                "this store's log is signed with the key {stored}, but this gateway holds {vkey} (log.key): \
             every replica must use the log's one key"
            )));
        }

        let unlogged = store.unlogged().await?;
        if unlogged > 0 {
            return Err(LogError::Integrity(format!(
                "the store holds {unlogged} submission(s) without a log entry: it was written before \
                 the gateway had a transparency log, and no partner could verify them; copy what \
                 should be kept into a new store by submitting it again"
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
                return Err(LogError::Integrity(format!(
                    "the log holds {size} entries but no signed checkpoint"
                )));
            }
            Some(cp) => {
                let signed = checkpoint::open(cp.note.as_bytes(), key.verifier(), &[]).map_err(|e| {
                LogError::Integrity(format!(
                    "the last stored checkpoint (size {}) does not verify with this gateway's key: {e}",
                    cp.size
                ))
            })?;
                let signed = signed.into_checkpoint();
                if signed.size != size {
                    return Err(LogError::Integrity(format!(
                        "the log holds {size} entries, but the last checkpoint the gateway signed is for {}",
                        signed.size
                    )));
                }
                let nodes = store.nodes(merkle::root_nodes(size)).await?;
                let stored = merkle::root(size, &nodes).map_err(|e| {
                    LogError::Integrity(format!("the stored tree is incomplete: {e}"))
                })?;
                if stored != signed.root {
                    return Err(LogError::Integrity(format!(
                        "the stored tree of size {size} has root {stored}, but the gateway signed {}",
                        signed.root
                    )));
                }
                let recomputed = recompute_root(store, size, registry).await?;
                if recomputed != signed.root {
                    return Err(LogError::Integrity(format!(
                        "the stored entries recompute root {recomputed}, but the gateway signed {} for size {size}: \
                     entries were altered behind the gateway's back",
                        signed.root
                    )));
                }
            }
        }

        check_published(store, key, published, size, accept_restored_log).await?;

        if let Some(cp) = store.latest_checkpoint().await? {
            published
                .write(cp.size, &cp.note)
                .map_err(|e| published_error(published, e))?;
        }
        Ok(size)
    }
}

fn published_error(published: &Published, source: std::io::Error) -> LogError {
    LogError::Published {
        path: published.path().to_owned(),
        source,
    }
}

/// The store must hold the tree of the checkpoint the gateway last published, or extend it.
async fn check_published(
    store: &dyn LogRecords,
    key: &NoteSigner,
    published: &Published,
    size: u64,
    accept_restored_log: bool,
) -> Result<(), LogError> {
    let Some(note) = published
        .read()
        .map_err(|e| published_error(published, e))?
    else {
        return Ok(());
    };
    let last = checkpoint::open(note.as_bytes(), key.verifier(), &[])
        .map_err(|e| {
            LogError::Integrity(format!(
                "{} does not verify with this gateway's key: {e}",
                published.path().display()
            ))
        })?
        .into_checkpoint();
    let problem = if size < last.size {
        Some(format!(
            "the store holds {size} log entries, but this gateway already published a checkpoint of size {} \
             ({}): the store was restored from an older backup or replaced",
            last.size,
            published.path().display()
        ))
    } else {
        let nodes = store.nodes(merkle::root_nodes(last.size)).await?;
        match merkle::root(last.size, &nodes) {
            Ok(root) if root == last.root => None,
            _ => Some(format!(
                "the store's tree of size {} is not the one this gateway published ({}): the store was replaced",
                last.size,
                published.path().display()
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
        Some(p) => Err(LogError::Integrity(format!(
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
) -> Result<Hash, LogError> {
    const PAGE: u64 = 10_000;
    let mut tree = merkle::CompactTree::default();
    while tree.size() < size {
        let start = tree.size();
        let end = (start + PAGE).min(size);
        let page = store.entries(start, end).await?;
        if page.is_empty() {
            return Err(LogError::Integrity(format!("log entry {start} is missing")));
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
                        return Err(LogError::Integrity(format!(
                            "submission {} (log entry {index}) is stored with another envelope than the one logged: \
                             the store was altered behind the gateway's back",
                            s.submission_id
                        )));
                    }
                    None => {
                        return Err(LogError::Integrity(format!(
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
                return Err(LogError::Integrity(format!(
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
