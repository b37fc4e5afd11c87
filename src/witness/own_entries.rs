//! The own-entry check: a member's witness, pointed at the folder where `focalgate submit
//! --receipt` keeps the member's receipts, cosigns a checkpoint only when every one of those
//! entries is still in its tree — an inclusion proof against the new checkpoint, asked from
//! the log — and refuses loudly when one is missing.
//!
//! A witness only cosigns checkpoints consistent with the ones it cosigned before, so an entry
//! proved in a cosigned checkpoint is in every later one: each receipt is proved once, and
//! only new receipts and entries new to the tree cost a request.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use crate::{
    checkpoint::{Checkpoint, NoteVerifier},
    merkle::{self, Hash},
    receipt::{self, ReceiptFile},
};

/// Most receipt files looked at in the folder.
const MAX_RECEIPTS: usize = 1_000_000;

/// Largest receipt file read.
const MAX_RECEIPT_BYTES: u64 = 256 * 1024;

/// Inclusion proofs asked at the same time.
const PARALLEL: usize = 16;

/// Where inclusion proofs come from: the log's own read API.
#[async_trait]
pub trait InclusionSource: Send + Sync {
    /// The inclusion proof of entry `index` in the tree of `size`; `Ok(None)` when the log
    /// says it has no such entry in that tree.
    async fn inclusion(&self, index: u64, size: u64) -> Result<Option<Vec<Hash>>, String>;
}

/// One receipt of the member's, for this log.
#[derive(Clone, Debug)]
struct Mine {
    id: String,
    index: u64,
    leaf: Hash,
    /// Proved in a checkpoint this witness cosigned.
    proven: bool,
}

/// Why a checkpoint is not cosigned.
#[derive(Debug, thiserror::Error)]
pub enum OwnEntryError {
    /// A receipt's entry is not in the checkpoint's tree: the log dropped or replaced it.
    #[error(
        "own-entry check: receipt {id} (log entry {index}) is not in the tree of size {size}: {why}"
    )]
    Missing {
        /// The submission the receipt is for.
        id: String,
        /// Its log index.
        index: u64,
        /// The checkpoint's size.
        size: u64,
        /// What the log answered.
        why: String,
    },
    /// The log could not be asked; nothing is cosigned unchecked.
    #[error("own-entry check: cannot ask the log for inclusion proofs: {0}")]
    Unavailable(String),
}

/// The member's receipts and the log they are checked against.
pub struct OwnEntries {
    dir: PathBuf,
    log: NoteVerifier,
    source: Arc<dyn InclusionSource>,
    /// Every file seen, by path: the receipt in it, or `None` if it is not one of this log.
    seen: Mutex<HashMap<PathBuf, Option<Mine>>>,
}

impl OwnEntries {
    /// Receipts in `dir` for the log whose key is `log`, proved with `source`.
    pub fn new(
        dir: impl Into<PathBuf>,
        log: NoteVerifier,
        source: Arc<dyn InclusionSource>,
    ) -> Self {
        Self {
            dir: dir.into(),
            log,
            source,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The log checked.
    pub fn origin(&self) -> &str {
        self.log.name()
    }

    /// Reads the receipt files not seen before. A file that is not a receipt of this log,
    /// or whose own signature and proof do not verify, is left out, with a warning.
    fn rescan(&self) -> std::io::Result<()> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for entry in std::fs::read_dir(&self.dir)?.take(MAX_RECEIPTS) {
            let path = entry?.path();
            if seen.contains_key(&path) || path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let mine = read_receipt(&path, &self.log);
            if let Err(why) = &mine {
                tracing::warn!(path = %path.display(), "own-entry check: not a receipt of this log: {why}");
            }
            seen.insert(path, mine.ok());
        }
        Ok(())
    }

    /// Checks that every receipt's entry below `cp`'s size is in `cp`'s tree. Returns the
    /// receipts proved now, to [`mark`](Self::mark) once `cp` is cosigned.
    pub async fn check(&self, cp: &Checkpoint) -> Result<Vec<PathBuf>, OwnEntryError> {
        let dir = self.dir.clone();
        self.rescan()
            .map_err(|e| OwnEntryError::Unavailable(format!("{}: {e}", dir.display())))?;
        let mut due: Vec<(PathBuf, Mine)> = {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.iter()
                .filter_map(|(p, m)| Some((p.clone(), m.clone()?)))
                .filter(|(_, m)| !m.proven && m.index < cp.size)
                .collect()
        };
        // In log order, so that a refusal names the first entry missing.
        due.sort_by_key(|(_, m)| m.index);
        let mut proved = Vec::with_capacity(due.len());
        for chunk in due.chunks(PARALLEL) {
            let mut asked = tokio::task::JoinSet::new();
            for (path, mine) in chunk.iter().cloned() {
                let (source, size) = (self.source.clone(), cp.size);
                asked.spawn(async move {
                    let answer = source.inclusion(mine.index, size).await;
                    (path, mine, answer)
                });
            }
            let mut answers = Vec::with_capacity(chunk.len());
            while let Some(done) = asked.join_next().await {
                answers.push(done.map_err(|e| OwnEntryError::Unavailable(e.to_string()))?);
            }
            answers.sort_by_key(|(_, mine, _)| mine.index);
            for (path, mine, answer) in answers {
                let missing = |why: String| OwnEntryError::Missing {
                    id: mine.id.clone(),
                    index: mine.index,
                    size: cp.size,
                    why,
                };
                let proof = answer
                    .map_err(OwnEntryError::Unavailable)?
                    .ok_or_else(|| missing("the log says it holds no such entry".into()))?;
                merkle::verify_inclusion(mine.index, cp.size, &mine.leaf, &proof, &cp.root)
                    .map_err(|e| missing(format!("the entry at that index is another ({e})")))?;
                proved.push(path);
            }
        }
        Ok(proved)
    }

    /// Remembers receipts proved in a checkpoint that was then cosigned.
    pub fn mark(&self, proved: &[PathBuf]) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for p in proved {
            if let Some(Some(m)) = seen.get_mut(p) {
                m.proven = true;
            }
        }
    }
}

/// The receipt in `path`, if it is one of the log `log` whose own signature and proof verify.
fn read_receipt(path: &Path, log: &NoteVerifier) -> Result<Mine, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_RECEIPT_BYTES {
        return Err(format!("larger than {MAX_RECEIPT_BYTES} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let r = serde_json::from_str::<ReceiptFile>(&text)
        .map_err(|e| e.to_string())?
        .to_receipt()
        .map_err(|e| e.to_string())?;
    let v = receipt::verify_offline(&r, log).map_err(|e| e.to_string())?;
    Ok(Mine {
        id: v.receipt.submission_id,
        index: r.log_index,
        leaf: merkle::leaf_hash(&r.log_entry),
        proven: false,
    })
}
