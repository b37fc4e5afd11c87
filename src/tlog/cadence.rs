//! The checkpoints handed on to be witnessed: the latest one, at most once per period.
//!
//! The log signs a checkpoint per batch, inside the batch's write transaction, so that every
//! receipt carries one at once. Under load that is hundreds a second, far more than witnesses
//! should be asked to cosign. A [`Cadence`] reads the store's latest checkpoint once per period
//! and yields it when the tree grew since the last one it yielded: whichever gateway (replica)
//! signed it, and however many were signed in between, since a consistency proof spans them.

use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};

use super::LogError;
use crate::store::{LogRecords, StoredCheckpoint};

/// Yields the log's latest checkpoint at most once per period, only when the tree grew.
#[derive(Debug)]
pub struct Cadence {
    ticks: Interval,
    /// The size of the checkpoint last yielded (or known to be handled already).
    last: u64,
}

impl Cadence {
    /// A cadence of `period` that yields checkpoints larger than `after` (the size already
    /// witnessed, or 0). The first check is at once.
    pub fn new(period: Duration, after: u64) -> Self {
        let mut ticks = tokio::time::interval(period.max(Duration::from_millis(1)));
        // A slow round of witnessing delays the next check instead of causing a burst.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { ticks, last: after }
    }

    /// The next checkpoint larger than the last one yielded, waiting for it as long as it
    /// takes. A store failure is returned; calling again retries at the next tick.
    pub async fn next(&mut self, log: &dyn LogRecords) -> Result<StoredCheckpoint, LogError> {
        loop {
            self.ticks.tick().await;
            match log.latest_checkpoint().await? {
                Some(cp) if cp.size > self.last => {
                    self.last = cp.size;
                    return Ok(cp);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::store::{LogAppend, Store, sqlite::SqliteStore};

    /// Records a checkpoint of `size` (the cadence reads checkpoints only).
    async fn sign(store: &SqliteStore, size: u64) {
        let mut tx = store.begin().await.unwrap();
        tx.insert_checkpoints(vec![crate::store::SignedAt {
            checkpoint: StoredCheckpoint {
                size,
                note: format!("note {size}\n"),
            },
            signed_at_ms: 1,
        }])
        .await
        .unwrap();
        tx.append_log(LogAppend::default()).await.unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn yields_the_latest_checkpoint_once_and_only_when_the_log_grew() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("focalgate.db"))
            .await
            .unwrap();
        let mut cadence = Cadence::new(Duration::from_millis(20), 1);
        sign(&store, 1).await;
        sign(&store, 2).await;
        sign(&store, 3).await;
        // Several checkpoints since the last look: only the latest is handed on.
        let first = cadence.next(&store).await.unwrap();
        assert_eq!(first.size, 3);
        assert_eq!(first.note, "note 3\n");
        // Nothing new: nothing yielded, however many periods pass.
        let idle = tokio::time::timeout(Duration::from_millis(200), cadence.next(&store)).await;
        assert!(
            idle.is_err(),
            "yielded {idle:?} for a log that did not grow"
        );
        sign(&store, 5).await;
        assert_eq!(cadence.next(&store).await.unwrap().size, 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn starts_after_the_size_already_witnessed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("focalgate.db"))
            .await
            .unwrap();
        sign(&store, 4).await;
        let mut cadence = Cadence::new(Duration::from_millis(20), 4);
        let idle = tokio::time::timeout(Duration::from_millis(100), cadence.next(&store)).await;
        assert!(idle.is_err(), "re-yielded the size already witnessed");
        sign(&store, 6).await;
        assert_eq!(cadence.next(&store).await.unwrap().size, 6);
    }
}
