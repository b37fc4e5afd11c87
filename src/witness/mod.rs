//! The witness a partner runs at home (C2SP tlog-witness v1): it remembers, per log, the last
//! checkpoint it cosigned, and cosigns a new one only when a consistency proof shows that the
//! log only grew since.
//!
//! ```text
//!  hub ──POST /add-checkpoint (old N, proof, checkpoint)──▶ Witness::add_checkpoint
//!        parse (bounded) ─▶ known origin? ─▶ log signature ─▶ State::advance, one durable
//!        transaction: old == size held? ─▶ consistency proof ─▶ cosign (cosignature/v1)
//!        ─▶ stored before the answer ◀── 200 cosignature line | 409 size held | 422 | 403 | 404 | 400
//! ```
//!
//! The answer codes are those of the tlog-witness text as revised in July 2026 (a proof that
//! cannot hold, such as a non-empty one from size 0, is 422, not 400). What the witness holds
//! changes only by one atomic check-and-update ([`State::advance`]), durable before it
//! answers, so it never cosigns a checkpoint inconsistent with one it cosigned — after a
//! crash, or when two hub replicas post at the same moment.
//!
//! The witness's HTTPS server lives with the adapters ([`crate::service::witness`]).
//! [`client`] is the hub's side: asking every witness of the policy, in parallel, each within
//! a bounded time, and keeping only cosignatures that verify.

pub mod client;
mod own_entries;
mod state;

use std::{collections::HashMap, sync::Arc};

use base64::{Engine as _, engine::general_purpose::STANDARD};

pub use own_entries::{InclusionSource, OwnEntries, OwnEntryError};
pub use state::{Held, State, StateError};

use crate::{
    checkpoint::{self, Checkpoint, KeyType, NoteSigner, NoteVerifier},
    merkle::{self, Hash},
};

/// The largest request body a witness reads: the `old` line, a consistency proof of at most
/// [`merkle::MAX_PROOF_LEN`] hashes, and a checkpoint note with its signatures.
pub const MAX_BODY: usize = 16 * 1024;

/// Most signature lines a checkpoint may carry (the log's and cosignatures).
const MAX_SIGNATURES: usize = 64;

/// The content type of a 409 answer: the size the witness holds, in decimal.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// An answer to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Its content type.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Self {
        let mut body = body.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}

/// An `add-checkpoint` request, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the caller believes the witness holds.
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The checkpoint, a signed note.
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// Reads a request body: `old N`, one base64 hash per line, an empty line, the checkpoint.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        if body.len() > MAX_BODY {
            return Err(format!("the body is over {MAX_BODY} bytes"));
        }
        let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or("no empty line between the proof and the checkpoint")?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| !n.is_empty() && (n == &"0" || !n.starts_with('0')))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or("the first line must be \"old <size>\" in decimal")?;
        let mut proof = Vec::new();
        for (i, line) in lines.enumerate() {
            if proof.len() == merkle::MAX_PROOF_LEN {
                return Err(format!(
                    "the proof has more than {} hashes",
                    merkle::MAX_PROOF_LEN
                ));
            }
            let hash = STANDARD
                .decode(line)
                .ok()
                .and_then(|b| Hash::from_bytes(&b))
                .ok_or_else(|| format!("proof line {}: not a base64 SHA-256 hash", i + 1))?;
            proof.push(hash);
        }
        Ok(Self {
            old,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }
}

/// A witness: its cosigning key, the logs it witnesses, and what it holds of each.
pub struct Witness {
    key: NoteSigner,
    logs: HashMap<String, NoteVerifier>,
    /// Each origin by its SHA-256 (lowercase hex), as monitors name it.
    by_hash: HashMap<String, String>,
    state: State,
    /// The member's receipts, checked before each cosignature of their log, if configured.
    own_entries: Option<OwnEntries>,
}

impl Witness {
    /// A witness cosigning with `key` (a [`KeyType::Cosignature`] key) the logs `logs` (their
    /// verifier keys, whose names are their origins), holding its state in `state`.
    pub fn new(key: NoteSigner, logs: Vec<NoteVerifier>, state: State) -> Result<Self, String> {
        if key.verifier().kind() != KeyType::Cosignature {
            return Err(format!(
                "the witness key {} is not a cosignature (type 0x04) key",
                key.verifier().name()
            ));
        }
        let logs: HashMap<String, NoteVerifier> =
            logs.into_iter().map(|v| (v.name().to_owned(), v)).collect();
        let by_hash = logs
            .keys()
            .map(|o| {
                let digest = ring::digest::digest(&ring::digest::SHA256, o.as_bytes());
                (hex::encode(digest), o.clone())
            })
            .collect();
        Ok(Self {
            key,
            logs,
            by_hash,
            state,
            own_entries: None,
        })
    }

    /// The witness whose keys are in the directory `keys` (`witness init`) and whose state
    /// is in `state` (`state.db`, created if need be), for `logs`.
    pub fn open(
        keys: &std::path::Path,
        state: &std::path::Path,
        logs: Vec<NoteVerifier>,
    ) -> Result<Self, String> {
        let key = crate::pki::read_witness_key(keys).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(state).map_err(|e| format!("{}: {e}", state.display()))?;
        let held = State::open(&state.join("state.db")).map_err(|e| e.to_string())?;
        Self::new(key, logs, held)
    }

    /// This witness, cosigning a checkpoint of `own`'s log only once every receipt of the
    /// member's is proved in its tree.
    pub fn with_own_entries(mut self, own: OwnEntries) -> Result<Self, String> {
        if !self.logs.contains_key(own.origin()) {
            return Err(format!(
                "the receipts' log {} is not one this witness witnesses",
                own.origin()
            ));
        }
        self.own_entries = Some(own);
        Ok(self)
    }

    /// Answers an `add-checkpoint` request as [`add_checkpoint`](Self::add_checkpoint) does,
    /// after the own-entry check if one is configured: a receipt's entry missing from the
    /// checkpoint's tree is refused with 422 and logged as an error; a log that cannot be
    /// asked for proofs, with 503.
    pub async fn answer(self: &Arc<Self>, body: Vec<u8>, now: u64) -> Reply {
        let mut proved = Vec::new();
        if let Some(own) = &self.own_entries {
            match self.checked(&body) {
                Ok(cp) if cp.origin == own.origin() => match own.check(&cp).await {
                    Ok(p) => proved = p,
                    Err(e @ OwnEntryError::Missing { .. }) => {
                        tracing::error!(origin = %cp.origin, size = cp.size, "refused a checkpoint: {e}");
                        return Reply::text(422, e.to_string());
                    }
                    Err(e) => {
                        tracing::warn!(origin = %cp.origin, size = cp.size, "{e}");
                        return Reply::text(503, e.to_string());
                    }
                },
                Ok(_) => {}
                Err(reply) => return reply,
            }
        }
        let me = self.clone();
        let reply = match tokio::task::spawn_blocking(move || me.add_checkpoint(&body, now)).await {
            Ok(reply) => reply,
            Err(_) => return Reply::text(500, "the witness failed"),
        };
        if reply.status == 200
            && let Some(own) = &self.own_entries
        {
            own.mark(&proved);
        }
        reply
    }

    /// The checkpoint a request carries, signed by a log this witness witnesses.
    fn checked(&self, body: &[u8]) -> Result<Checkpoint, Reply> {
        let request = AddCheckpoint::parse(body).map_err(|why| Reply::text(400, why))?;
        self.verified(&request).map(|(cp, _)| cp)
    }

    /// The request's checkpoint, and the note's text, once the log's signature verifies.
    fn verified(&self, request: &AddCheckpoint) -> Result<(Checkpoint, String), Reply> {
        let note = match checkpoint::note::parse(request.checkpoint.as_bytes()) {
            Ok(n) if n.signatures.len() <= MAX_SIGNATURES => n,
            Ok(_) => {
                return Err(Reply::text(
                    400,
                    format!("more than {MAX_SIGNATURES} signatures"),
                ));
            }
            Err(e) => {
                return Err(Reply::text(
                    400,
                    format!("the checkpoint is not a signed note: {e}"),
                ));
            }
        };
        let Ok(body) = Checkpoint::parse_body(&note.text) else {
            return Err(Reply::text(400, "the note is not a checkpoint"));
        };
        let Some(log) = self.logs.get(&body.origin) else {
            return Err(Reply::text(404, "this witness does not witness that log"));
        };
        checkpoint::open(request.checkpoint.as_bytes(), log, &[])
            .map(|v| (v.into_checkpoint(), note.text))
            .map_err(|e| Reply::text(403, format!("the log's signature does not verify: {e}")))
    }

    /// The witness's verifier key, for the logs' policies.
    pub fn verifier(&self) -> &NoteVerifier {
        self.key.verifier()
    }

    /// Answers an `add-checkpoint` request at `now` (Unix seconds, the cosignature's time).
    pub fn add_checkpoint(&self, body: &[u8], now: u64) -> Reply {
        let request = match AddCheckpoint::parse(body) {
            Ok(r) => r,
            Err(why) => return Reply::text(400, why),
        };
        let (verified, text) = match self.verified(&request) {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        if request.old > verified.size {
            return Reply::text(
                400,
                format!(
                    "old size {} is beyond the checkpoint's size {}",
                    request.old, verified.size
                ),
            );
        }
        // Well-formed but unprovable: 422, as the tlog-witness text says for a proof that
        // cannot verify.
        if (request.old == 0 || request.old == verified.size) && !request.proof.is_empty() {
            return Reply::text(
                422,
                "a consistency proof from size 0, or to the same size, must be empty",
            );
        }
        if verified.size == 0 && verified.root != merkle::empty_root() {
            return Reply::text(
                422,
                "a checkpoint of size 0 must carry the empty tree's root (SHA-256 of nothing)",
            );
        }
        let signature = self.key.sign(&text, now);
        let cosigned = cosigned_note(&request.checkpoint, &signature.to_string());
        let advanced = self
            .state
            .advance(&verified, request.old, &cosigned, |held| {
                consistent(held, &verified, &request.proof)
            });
        match advanced {
            Ok(()) => Reply::text(200, signature.to_string()),
            Err(StateError::Stale { held }) => Reply {
                status: 409,
                content_type: SIZE_CONTENT_TYPE,
                body: format!("{held}\n"),
            },
            Err(StateError::Inconsistent(why)) => {
                tracing::error!(origin = %verified.origin, size = verified.size, old = request.old, "refused a checkpoint: {why}");
                Reply::text(422, why)
            }
            Err(e @ StateError::Store(_)) => {
                tracing::error!(error = %e, "witness state");
                Reply::text(500, "the witness could not record its state")
            }
        }
    }

    /// The checkpoint last cosigned for the log whose origin hashes (SHA-256, lowercase hex) to
    /// `origin_hash`, with the cosignature: what `GET /<hash>/checkpoint` returns.
    pub fn latest(&self, origin_hash: &str) -> Result<Option<String>, StateError> {
        let Some(origin) = self.by_hash.get(origin_hash) else {
            return Ok(None);
        };
        Ok(self.state.held(origin)?.map(|h| h.checkpoint))
    }
}

/// Whether `new` extends what the witness holds, by `proof`.
fn consistent(held: Option<&Held>, new: &Checkpoint, proof: &[Hash]) -> Result<(), String> {
    let Some(held) = held.filter(|h| h.size > 0) else {
        return Ok(());
    };
    if held.size == new.size {
        return if held.root == new.root {
            Ok(())
        } else {
            Err(format!(
                "a checkpoint of size {} with another root than the one cosigned: the log forked",
                new.size
            ))
        };
    }
    merkle::verify_consistency(held.size, new.size, proof, &held.root, &new.root).map_err(|e| {
        format!(
            "the consistency proof from size {} to {} does not verify: {e}",
            held.size, new.size
        )
    })
}

/// The signed note with one more signature line.
fn cosigned_note(note: &str, line: &str) -> String {
    let mut out = note.trim_end_matches('\n').to_owned();
    out.push('\n');
    out.push_str(line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests;
