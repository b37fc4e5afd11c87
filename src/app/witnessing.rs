//! Witnessing: the policy's witnesses asked to cosign the log's latest checkpoint, what they
//! answered kept in the store, and the witnessed checkpoint and status read back from it.
//!
//! Submissions never wait for this: receipts carry the log's checkpoint at once. Each round
//! reads the latest checkpoint and asks, in parallel, the witnesses that have not cosigned
//! it — at most once per period however fast the log grows, and a witness that failed only
//! after a pause — from the size each is known to hold. Every replica runs the same rounds
//! over the same store; a witness's single check-and-update keeps their answers consistent.

use std::{collections::HashMap, sync::Arc, time::Duration};

use super::{ApiError, Gateway};
use crate::{
    checkpoint::policy::{Policy, PolicyWitness},
    identity::{Caller, MemberId, Witnessing},
    merkle::Hash,
    receipt::now_ms,
    store::{Cosignature, RoundRecord, StoreError, StoredCheckpoint, WitnessState, WitnessedAt},
    tlog::{self, LogError, Witnessed},
    witness::client::{Outcome, Round, WitnessClient},
};

/// How the gateway asks witnesses.
#[derive(Clone)]
pub struct WitnessingOptions {
    /// The client, with the gateway's identity for witnesses.
    pub client: WitnessClient,
    /// How often the latest checkpoint is looked at.
    pub period: Duration,
    /// How long a witness that failed is left alone.
    pub retry: Duration,
}

/// What one witness holds, as the gateway last learnt it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessStatus {
    /// Its name in the policy.
    pub name: String,
    /// The member that runs it.
    pub member: MemberId,
    /// Where it is asked.
    pub url: String,
    /// What the store holds of it (`None`: never asked).
    pub state: Option<WitnessState>,
}

/// The log and its witnesses, for `log status`.
#[derive(Clone, Debug)]
pub struct LogStatus {
    /// The latest checkpoint.
    pub latest: Option<StoredCheckpoint>,
    /// The latest witnessed checkpoint.
    pub witnessed: Option<Witnessed>,
    /// Each witness of the policy, in policy order (none when it names no witnesses).
    pub witnesses: Vec<WitnessStatus>,
    /// The whole C2SP tlog-policy partners check witnessed checkpoints with, if any.
    pub policy: Option<String>,
}

/// Whether `w` should be asked to cosign the checkpoint of `size` now, given what is known.
/// A witness whose last exchange failed is asked again once `retry` has passed, whatever size
/// that exchange reported: a size learnt from a conflict and then a failure says nothing of
/// what the witness holds when it comes back (a restart, another host in its place).
fn due(state: Option<&WitnessState>, size: u64, now_ms: i64, retry: Duration) -> bool {
    match state {
        None => true,
        Some(s) if s.last_error.is_some() => {
            now_ms.saturating_sub(s.updated_at_ms) >= retry.as_millis() as i64
        }
        Some(s) => s.size < size,
    }
}

impl Gateway {
    /// The roster in force and the whole policy it makes with this log's key.
    pub fn witness_policy(&self) -> Option<(Arc<Witnessing>, Policy)> {
        let witnessing = self.directory().policy.witnessing()?.clone();
        let policy = witnessing
            .roster
            .clone()
            .with_log(self.log.verifier().clone());
        Some((witnessing, policy))
    }

    /// What the store holds of each witness, by name.
    async fn witness_states(&self) -> Result<HashMap<String, WitnessState>, StoreError> {
        Ok(self
            .store
            .witness_states()
            .await?
            .into_iter()
            .map(|s| (s.witness.clone(), s))
            .collect())
    }

    /// The log, its witnessed checkpoint and what each witness holds: for any member.
    pub async fn witness_status(&self, _caller: &Caller) -> Result<LogStatus, ApiError> {
        let latest = tlog::latest(&*self.store).await?;
        let Some((roster, policy)) = self.witness_policy() else {
            return Ok(LogStatus {
                latest,
                witnessed: None,
                witnesses: Vec::new(),
                policy: None,
            });
        };
        let witnessed = tlog::witnessed(&*self.store, &policy).await?;
        let mut states = self.witness_states().await?;
        let witnesses = policy
            .witnesses()
            .iter()
            .filter_map(|w| {
                Some(WitnessStatus {
                    name: w.name.clone(),
                    member: roster.members.get(&w.name)?.clone(),
                    url: w.url.clone().unwrap_or_default(),
                    state: states.remove(&w.name),
                })
            })
            .collect();
        Ok(LogStatus {
            latest,
            witnessed,
            witnesses,
            policy: Some(roster.policy_text(self.log.verifier())),
        })
    }

    /// One round: the latest checkpoint to every witness that is due, what they answered
    /// recorded, the gauges set. Returns how many witnesses were asked.
    pub async fn witness_round(&self, options: &WitnessingOptions) -> Result<usize, LogError> {
        let Some((_, policy)) = self.witness_policy() else {
            return Ok(0);
        };
        let Some(checkpoint) = self.store.latest_checkpoint().await? else {
            return Ok(0);
        };
        let size = checkpoint.size;
        let states = self.witness_states().await?;
        let now = now_ms();
        let due: Vec<PolicyWitness> = policy
            .witnesses()
            .iter()
            .filter(|w| due(states.get(&w.name), size, now, options.retry))
            .cloned()
            .collect();
        if !due.is_empty() {
            let held = states.iter().map(|(n, s)| (n.clone(), s.size)).collect();
            // Witnesses that hold the same size share one consistency proof, made once.
            type Proofs = tokio::sync::Mutex<HashMap<u64, Vec<Hash>>>;
            let proofs: Arc<Proofs> = Arc::default();
            let store = self.store.clone();
            let proof = move |from: u64| {
                let (store, proofs) = (store.clone(), proofs.clone());
                async move {
                    let mut made = proofs.lock().await;
                    if let Some(p) = made.get(&from) {
                        return Ok(p.clone());
                    }
                    let p = tlog::consistency_proof(&*store, from, size)
                        .await
                        .map_err(|e| format!("the consistency proof from {from}: {e}"))?;
                    made.insert(from, p.clone());
                    Ok(p)
                }
            };
            let rounds = crate::witness::client::collect(
                &options.client,
                &due,
                &held,
                size,
                &checkpoint.note,
                proof,
            )
            .await;
            self.record_round(&policy, &checkpoint, &due, &states, &rounds)
                .await?;
        }
        self.set_witness_gauges(&policy, size).await?;
        Ok(due.len())
    }

    /// Keeps what a round learnt: cosignatures beside their checkpoint, each witness's state.
    /// The checkpoint becomes witnessed when its cosignatures, stored and new, meet the quorum.
    async fn record_round(
        &self,
        policy: &Policy,
        checkpoint: &StoredCheckpoint,
        asked: &[PolicyWitness],
        before: &HashMap<String, WitnessState>,
        rounds: &HashMap<String, Round>,
    ) -> Result<(), LogError> {
        let size = checkpoint.size;
        let now = now_ms();
        let mut cosignatures = Vec::new();
        let mut states = Vec::new();
        for w in asked {
            let Some(round) = rounds.get(&w.name) else {
                continue;
            };
            self.telemetry.witness_request(
                &w.name,
                round.outcome.label(),
                round.took.as_secs_f64(),
            );
            let previous = before.get(&w.name);
            let cosigned_at_ms = match &round.outcome {
                Outcome::Cosigned(line) => {
                    cosignatures.push(Cosignature {
                        size,
                        witness: w.key.name().to_owned(),
                        signature: line.clone(),
                        received_at_ms: now,
                    });
                    Some(now)
                }
                _ => previous.and_then(|p| p.cosigned_at_ms),
            };
            let error = round.outcome.error().map(str::to_owned);
            match (&error, previous.and_then(|p| p.last_error.as_deref())) {
                (Some(e), None) => {
                    tracing::warn!(witness = %w.name, size, error = %e, "a witness did not cosign");
                }
                (Some(e), Some(before)) if e != before => {
                    tracing::warn!(witness = %w.name, size, error = %e, "a witness did not cosign");
                }
                (None, Some(_)) => {
                    tracing::info!(witness = %w.name, size, "a witness cosigns again");
                }
                _ => {}
            }
            states.push(WitnessState {
                witness: w.name.clone(),
                size: round.size,
                cosigned_at_ms,
                last_error: error,
                updated_at_ms: now,
            });
        }
        let mut all = self.store.cosignatures(size).await?;
        all.extend(cosignatures.iter().cloned());
        let note = tlog::cosigned_note(checkpoint, &all, policy);
        let witnessed = match policy.verify(note.as_bytes()) {
            Ok(_) => vec![WitnessedAt { size, at_ms: now }],
            Err(_) => Vec::new(),
        };
        self.store
            .record_round(RoundRecord {
                cosignatures,
                states,
                witnessed,
            })
            .await?;
        Ok(())
    }

    async fn set_witness_gauges(&self, policy: &Policy, size: u64) -> Result<(), LogError> {
        let t = &self.telemetry;
        for s in self.store.witness_states().await? {
            if policy.witnesses().iter().any(|w| w.name == s.witness) {
                let lag = size.saturating_sub(s.size) as f64;
                t.set(
                    "focalgate_witness_lag_entries",
                    &[("witness", &s.witness)],
                    lag,
                );
            }
        }
        let witnessed = tlog::witnessed(&*self.store, policy).await?;
        let witnessed_size = witnessed.as_ref().map_or(0, |w| w.checkpoint.size);
        t.set("focalgate_log_witnessed_size", &[], witnessed_size as f64);
        let met = if witnessed_size >= size { 1.0 } else { 0.0 };
        t.set("focalgate_witness_quorum", &[], met);
        Ok(())
    }
}

/// Until `stop` fires: a round every period. A round under way is finished first.
pub(crate) async fn run(
    gateway: Arc<Gateway>,
    options: WitnessingOptions,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(options.period.max(Duration::from_millis(10)));
    // A slow round delays the next one instead of causing a burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => return,
        }
        match gateway.witness_round(&options).await {
            Ok(_) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "witnessing: cannot read or record the round");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(size: u64, error: Option<&str>, updated_at_ms: i64) -> WitnessState {
        WitnessState {
            witness: "KAZ".into(),
            size,
            cosigned_at_ms: None,
            last_error: error.map(str::to_owned),
            updated_at_ms,
        }
    }

    #[test]
    fn a_witness_is_asked_until_it_holds_the_size_and_after_a_pause_when_it_failed() {
        let retry = Duration::from_secs(5);
        assert!(due(None, 3, 0, retry));
        assert!(due(Some(&state(2, None, 0)), 3, 0, retry));
        assert!(!due(Some(&state(3, None, 0)), 3, 0, retry));
        assert!(!due(Some(&state(4, None, 0)), 3, 0, retry));
        assert!(!due(Some(&state(2, Some("down"), 1_000)), 3, 5_999, retry));
        assert!(due(Some(&state(2, Some("down"), 1_000)), 3, 6_000, retry));
        // A failure that reported the log's size (a 409, then no answer) is retried on an
        // idle log too.
        assert!(!due(Some(&state(3, Some("down"), 1_000)), 3, 5_999, retry));
        assert!(due(Some(&state(3, Some("down"), 1_000)), 3, 6_000, retry));
    }
}
