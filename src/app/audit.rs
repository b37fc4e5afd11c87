//! Reading the transparency log: checkpoints, proofs and entries, for any member.

use super::{ApiError, Gateway};
use crate::{
    entry::Entry,
    identity::Caller,
    merkle::{self, Hash},
    proto::{
        self, ConsistencyProof, GetCheckpointRequest, GetConsistencyProofRequest,
        GetEntriesRequest, GetInclusionProofRequest, GetLogStatusRequest, InclusionProof, LogEntry,
        LogStatus, SignedCheckpoint, WitnessedCheckpoint, get_inclusion_proof_request::Leaf,
    },
    receipt::timestamp_from_millis,
    schema::{Rule, Violation},
    store::{StoredCheckpoint, WitnessState},
    tlog::{self, SizeError, TreeSize, Witnessed},
};

/// Most entries one GetEntries call returns.
pub const MAX_ENTRIES_PER_CALL: u64 = 1_000;

fn invalid(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::Invalid(vec![Violation::new(field, Rule::OutOfRange, detail)])
}

fn to_proto(cp: &StoredCheckpoint) -> Result<SignedCheckpoint, ApiError> {
    let parsed = tlog::stored_checkpoint(cp)?;
    Ok(SignedCheckpoint {
        note: cp.note.clone(),
        origin: parsed.origin,
        tree_size: parsed.size,
        root_hash: parsed.root.as_bytes().to_vec(),
        witnessed: None,
    })
}

fn witnessed_to_proto(w: Witnessed) -> WitnessedCheckpoint {
    WitnessedCheckpoint {
        note: w.note,
        tree_size: w.checkpoint.size,
        cosigned_by: w.cosigned,
    }
}

fn hashes(hs: Vec<Hash>) -> Vec<Vec<u8>> {
    hs.into_iter().map(|h| h.as_bytes().to_vec()).collect()
}

fn decoded(bytes: &[u8]) -> Option<proto::log_entry::Decoded> {
    Some(match Entry::parse(bytes).ok()? {
        Entry::Submission(s) => proto::log_entry::Decoded::Submission(proto::SubmissionEntry {
            time: Some(timestamp_from_millis(s.time_ms)),
            submission_id: s.submission_id,
            member: s.member,
            dataflow: s.dataflow,
            ref_area: s.ref_area,
            time_period: s.time_period,
            revision: s.revision,
            payload_digest: s.payload_digest.to_vec(),
            envelope_digest: s.envelope_digest.to_vec(),
            signing_certificate_digest: s.signing_cert_digest.to_vec(),
        }),
        Entry::Admin(a) => proto::log_entry::Decoded::Admin(proto::AdminEntry {
            action: a.action.kind().to_owned(),
            time: Some(timestamp_from_millis(a.time_ms)),
            actor: a.actor,
            subject: a.subject,
            serial: a.serial.unwrap_or_default(),
            digest: a.digest.to_vec(),
            reason: a.reason.unwrap_or_default(),
            certificate: a.certificate.unwrap_or_default(),
        }),
    })
}

impl Gateway {
    /// The latest checkpoint; the log is never empty of checkpoints once it has entries.
    async fn latest(&self) -> Result<StoredCheckpoint, ApiError> {
        tlog::latest(&*self.store)
            .await?
            .ok_or_else(|| ApiError::NotFound("the log has no entries yet".into()))
    }

    /// The tree size a request names (0: the latest checkpoint's), checked against the log.
    async fn size(
        &self,
        field: &str,
        requested: u64,
    ) -> Result<(u64, Option<StoredCheckpoint>), ApiError> {
        let asked = match requested {
            0 => TreeSize::Latest,
            n => TreeSize::Exactly(n),
        };
        // One read of the latest checkpoint; an empty log has none to prove anything in.
        match tlog::resolve(&*self.store, asked).await {
            Ok((0, None)) | Err(SizeError::Beyond { latest: 0, .. }) => {
                Err(ApiError::NotFound("the log has no entries yet".into()))
            }
            Ok(found) => Ok(found),
            Err(e) => Err(ApiError::size(field, e)),
        }
    }

    /// The checkpoint of a tree size (0: the latest).
    pub async fn checkpoint(
        &self,
        _caller: &Caller,
        req: &GetCheckpointRequest,
    ) -> Result<SignedCheckpoint, ApiError> {
        let cp = match req.tree_size {
            0 => self.latest().await?,
            n => self.store.checkpoint_at(n).await?.ok_or_else(|| {
                ApiError::NotFound(format!("no checkpoint was signed for tree size {n}"))
            })?,
        };
        let witnessed = match (self.witness_policy(), req.tree_size) {
            (None, _) => None,
            (Some((_, policy)), 0) => tlog::witnessed(&*self.store, &policy).await?,
            (Some((_, policy)), n) => tlog::witnessed_at(&*self.store, &policy, n).await?,
        };
        Ok(SignedCheckpoint {
            witnessed: witnessed.map(witnessed_to_proto),
            ..to_proto(&cp)?
        })
    }

    /// The log's size, its latest witnessed checkpoint, and each witness's state.
    pub async fn log_status(
        &self,
        caller: &Caller,
        _req: &GetLogStatusRequest,
    ) -> Result<LogStatus, ApiError> {
        let status = self.witness_status(caller).await?;
        let size = status.latest.as_ref().map_or(0, |c| c.size);
        let witnesses = status
            .witnesses
            .into_iter()
            .map(|w| {
                let state = w.state.unwrap_or(WitnessState {
                    witness: w.name.clone(),
                    size: 0,
                    cosigned_at_ms: None,
                    last_error: None,
                    updated_at_ms: 0,
                });
                proto::WitnessStatus {
                    lag: size.saturating_sub(state.size),
                    name: w.name,
                    member: w.member.to_string(),
                    url: w.url,
                    size: state.size,
                    cosigned_at: state.cosigned_at_ms.map(timestamp_from_millis),
                    last_error: state.last_error.unwrap_or_default(),
                    updated_at: (state.updated_at_ms > 0)
                        .then(|| timestamp_from_millis(state.updated_at_ms)),
                }
            })
            .collect();
        Ok(LogStatus {
            tree_size: size,
            witnessed_size: status.witnessed.map_or(0, |w| w.checkpoint.size),
            witnesses,
            policy: status.policy.unwrap_or_default(),
        })
    }

    /// The inclusion proof of an entry (by index or leaf hash) in a tree the log has.
    pub async fn inclusion(
        &self,
        _caller: &Caller,
        req: &GetInclusionProofRequest,
    ) -> Result<InclusionProof, ApiError> {
        let (size, checkpoint) = self.size("tree_size", req.tree_size).await?;
        let index = match &req.leaf {
            Some(Leaf::LeafIndex(i)) => *i,
            Some(Leaf::LeafHash(h)) => {
                let hash = Hash::from_bytes(h)
                    .ok_or_else(|| invalid("leaf_hash", "a leaf hash is 32 bytes"))?;
                self.store
                    .entry_index(hash)
                    .await?
                    .ok_or_else(|| ApiError::NotFound("no entry has this leaf hash".into()))?
            }
            None => return Err(invalid("leaf", "name the entry by leaf_index or leaf_hash")),
        };
        if index >= size {
            return Err(invalid(
                "leaf_index",
                format!("entry {index} is not in the tree of size {size}"),
            ));
        }
        let proof = tlog::inclusion_proof(&*self.store, index, size).await?;
        Ok(InclusionProof {
            leaf_index: index,
            tree_size: size,
            hashes: hashes(proof),
            checkpoint: checkpoint.as_ref().map(to_proto).transpose()?,
        })
    }

    /// The consistency proof between two tree sizes the log has.
    pub async fn consistency(
        &self,
        _caller: &Caller,
        req: &GetConsistencyProofRequest,
    ) -> Result<ConsistencyProof, ApiError> {
        let (to, checkpoint) = self.size("to_size", req.to_size).await?;
        if req.from_size == 0 || req.from_size > to {
            return Err(invalid(
                "from_size",
                format!("from_size must be between 1 and {to}"),
            ));
        }
        let proof = tlog::consistency_proof(&*self.store, req.from_size, to).await?;
        Ok(ConsistencyProof {
            from_size: req.from_size,
            to_size: to,
            hashes: hashes(proof),
            checkpoint: checkpoint.as_ref().map(to_proto).transpose()?,
        })
    }

    /// Entries `start..end`, at most [`MAX_ENTRIES_PER_CALL`] of them.
    pub async fn entries(
        &self,
        _caller: &Caller,
        req: &GetEntriesRequest,
    ) -> Result<Vec<LogEntry>, ApiError> {
        let size = self.store.log_size().await?;
        if req.start >= size && size > 0 {
            return Err(invalid("start", format!("the log has {size} entries")));
        }
        let end = match req.end {
            0 => size,
            e if e <= req.start => return Err(invalid("end", "end must be after start")),
            e => e.min(size),
        }
        .min(req.start.saturating_add(MAX_ENTRIES_PER_CALL));
        let rows = self.store.entries(req.start, end).await?;
        Ok(rows
            .into_iter()
            .map(|(index, entry)| LogEntry {
                index,
                leaf_hash: merkle::leaf_hash(&entry).as_bytes().to_vec(),
                decoded: decoded(&entry),
                entry,
            })
            .collect())
    }
}
