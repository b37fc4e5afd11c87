//! The witnessed checkpoint: the largest checkpoint that a quorum of the policy's witnesses
//! cosigned, with their cosignatures added to the log's note. A round of witnessing records a
//! checkpoint as witnessed when its cosignatures meet the quorum; it is read from the store,
//! so every replica presents the same one, and checked with the policy every time it is read:
//! a checkpoint without quorum is never presented as witnessed.

use super::LogError;
use crate::{
    checkpoint::policy::{Policy, QuorumError},
    store::{Cosignature, Cosignatures, LogRecords, StoredCheckpoint},
};

/// How many of the largest witnessed sizes are looked at for one with a quorum.
const LOOK_BACK: u32 = 8;

/// A checkpoint with the cosignatures that make it witnessed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witnessed {
    /// The log's checkpoint.
    pub checkpoint: StoredCheckpoint,
    /// Its note with the cosignature lines of the policy's witnesses added.
    pub note: String,
    /// The witnesses (policy names) whose cosignatures verify.
    pub cosigned: Vec<String>,
}

/// The checkpoint's note with the cosignatures by `policy`'s witnesses appended, in the
/// policy's order (cosignatures by keys the policy no longer names are left out).
pub fn cosigned_note(
    checkpoint: &StoredCheckpoint,
    cosignatures: &[Cosignature],
    policy: &Policy,
) -> String {
    let mut note = checkpoint.note.clone();
    for w in policy.witnesses() {
        if let Some(c) = cosignatures.iter().find(|c| c.witness == w.key.name()) {
            note.push_str(&c.signature);
            note.push('\n');
        }
    }
    note
}

/// The checkpoint of tree size `size`, if a quorum of `policy` cosigned it.
pub async fn witnessed_at<S>(
    store: &S,
    policy: &Policy,
    size: u64,
) -> Result<Option<Witnessed>, LogError>
where
    S: LogRecords + Cosignatures + ?Sized,
{
    let Some(checkpoint) = store.checkpoint_at(size).await? else {
        return Ok(None);
    };
    let cosignatures = store.cosignatures(size).await?;
    let note = cosigned_note(&checkpoint, &cosignatures, policy);
    match policy.verify(note.as_bytes()) {
        Ok((_, cosigned)) => Ok(Some(Witnessed {
            checkpoint,
            note,
            cosigned,
        })),
        Err(QuorumError::NoQuorum { .. }) => Ok(None),
        Err(QuorumError::Checkpoint(e)) => {
            // The hub's own checkpoint with cosignatures the collector verified: only a
            // policy that no longer names this log, or a damaged store, gets here.
            tracing::warn!(size, error = %e, "a cosigned checkpoint does not verify under the policy");
            Ok(None)
        }
    }
}

/// The largest checkpoint a quorum of `policy` cosigned, among the few largest recorded as
/// witnessed (each checked again: the policy may have changed since).
pub async fn witnessed<S>(store: &S, policy: &Policy) -> Result<Option<Witnessed>, LogError>
where
    S: LogRecords + Cosignatures + ?Sized,
{
    for recorded in store.witnessed_sizes(LOOK_BACK).await? {
        if let Some(w) = witnessed_at(store, policy, recorded.size).await? {
            return Ok(Some(w));
        }
    }
    Ok(None)
}
