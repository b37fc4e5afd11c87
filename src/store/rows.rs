//! Row mapping both backends share. Each backend runs its own SQL and hands each result row
//! to these functions through [`Columns`], so what a stored record means is written once: the
//! column lists, their order, and what makes a value corrupt (a negative size, a hash that is
//! not 32 bytes, a dataflow or frequency no longer known) rather than a panic.

use time::Date;

use super::{
    AccessRecord, Cosignature, IndexedSubmission, SeriesKey, SignedAt, StoreError,
    StoredCheckpoint, StoredSubmission, SubmissionRecord, SubmissionSummary, WitnessState,
    WitnessedAt,
};
use crate::{
    merkle::{Hash, NodeId},
    schema::{Dataflow, Frequency, Quantity, ValidObservation},
};

/// One result row, as a backend's driver reads it. `None` is SQL NULL; a value of another type
/// than asked is [`StoreError::Corrupt`], naming the column.
pub(super) trait Columns {
    /// An integer column (of any width the schema uses).
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    /// A text column.
    fn text(&self, i: usize) -> Result<Option<String>, StoreError>;
    /// A blob (`BLOB`, `BYTEA`) column.
    fn blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError>;
    /// A boolean column (an integer in SQLite).
    fn flag(&self, i: usize) -> Result<bool, StoreError>;
    /// The name of column `i`, for errors.
    fn name(&self, i: usize) -> String;

    /// Column `i`, which must not be NULL.
    fn some<T>(&self, i: usize, value: Option<T>) -> Result<T, StoreError> {
        value.ok_or_else(|| StoreError::Corrupt {
            what: format!("column {} (NULL)", self.name(i)),
            id: None,
        })
    }
    /// A non-NULL integer.
    fn i64(&self, i: usize) -> Result<i64, StoreError> {
        let v = self.int(i)?;
        self.some(i, v)
    }
    /// A non-NULL integer that is a count, a size or an index: never negative.
    fn u64(&self, i: usize) -> Result<u64, StoreError> {
        let v = self.i64(i)?;
        self.unsigned(i, v)
    }
    /// An integer that must fit 32 bits unsigned.
    fn u32(&self, i: usize) -> Result<u32, StoreError> {
        let v = self.i64(i)?;
        u32::try_from(v).map_err(|_| self.out_of_range(i, v))
    }
    /// A NULL or non-negative integer.
    fn opt_u64(&self, i: usize) -> Result<Option<u64>, StoreError> {
        self.int(i)?.map(|v| self.unsigned(i, v)).transpose()
    }
    /// A non-NULL text.
    fn string(&self, i: usize) -> Result<String, StoreError> {
        let v = self.text(i)?;
        self.some(i, v)
    }
    /// A non-NULL blob.
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        let v = self.blob(i)?;
        self.some(i, v)
    }
    /// A SHA-256 digest.
    fn digest(&self, i: usize) -> Result<[u8; 32], StoreError> {
        <[u8; 32]>::try_from(self.bytes(i)?).map_err(|_| StoreError::Corrupt {
            what: format!("column {} (not 32 bytes)", self.name(i)),
            id: None,
        })
    }

    /// `v` read from column `i` as an unsigned value, or corrupt.
    fn unsigned(&self, i: usize, v: i64) -> Result<u64, StoreError> {
        u64::try_from(v).map_err(|_| self.out_of_range(i, v))
    }
    /// The error for value `v` of column `i`, outside what the column may hold.
    fn out_of_range(&self, i: usize, v: i64) -> StoreError {
        StoreError::Corrupt {
            what: format!("column {} (out of range: {v})", self.name(i)),
            id: None,
        }
    }
}

/// The columns of [`summary`], in order.
pub(super) const SUMMARY_COLUMNS: &str = "seq, id, member, dataflow, ref_area, freq, time_period, revision, is_current, received_at, observation_count, envelope_digest";

/// A submission as listed, from [`SUMMARY_COLUMNS`].
pub(super) fn summary(r: &impl Columns) -> Result<SubmissionSummary, StoreError> {
    Ok(SubmissionSummary {
        seq: r.i64(0)?,
        id: r.string(1)?,
        member: r.string(2)?,
        dataflow: r.string(3)?,
        ref_area: r.string(4)?,
        freq: r.string(5)?,
        time_period: r.string(6)?,
        revision: r.u32(7)?,
        is_current: r.flag(8)?,
        received_at_ms: r.i64(9)?,
        observation_count: r.u32(10)?,
        envelope_digest: r.bytes(11)?,
    })
}

/// The columns of [`stored`], in order: the summary's, then the evidence.
pub(super) const STORED_COLUMNS: &str = "seq, id, member, dataflow, ref_area, freq, time_period, revision, is_current, received_at, observation_count, envelope_digest, payload_digest, log_index, envelope, signing_cert, receipt";

/// One stored submission with its evidence, from [`STORED_COLUMNS`].
pub(super) fn stored(r: &impl Columns) -> Result<StoredSubmission, StoreError> {
    Ok(StoredSubmission {
        summary: summary(r)?,
        payload_digest: r.bytes(12)?,
        log_index: r.opt_u64(13)?,
        envelope: r.bytes(14)?,
        signing_cert: r.bytes(15)?,
        receipt: r.bytes(16)?,
    })
}

/// The columns of [`checkpoint`] and [`signed_at`], in order.
pub(super) const CHECKPOINT_COLUMNS: &str = "size, note, signed_at";

/// A stored checkpoint, from [`CHECKPOINT_COLUMNS`] (the first two suffice).
pub(super) fn checkpoint(r: &impl Columns) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: r.u64(0)?,
        note: r.string(1)?,
    })
}

/// A stored checkpoint with when it was signed, from [`CHECKPOINT_COLUMNS`].
pub(super) fn signed_at(r: &impl Columns) -> Result<SignedAt, StoreError> {
    Ok(SignedAt {
        checkpoint: checkpoint(r)?,
        signed_at_ms: r.i64(2)?,
    })
}

/// The columns of [`cosignature`], in order.
pub(super) const COSIGNATURE_COLUMNS: &str = "size, witness, signature, received_at";

/// A stored cosignature, from [`COSIGNATURE_COLUMNS`].
pub(super) fn cosignature(r: &impl Columns) -> Result<Cosignature, StoreError> {
    Ok(Cosignature {
        size: r.u64(0)?,
        witness: r.string(1)?,
        signature: r.string(2)?,
        received_at_ms: r.i64(3)?,
    })
}

/// A witnessed checkpoint's size and when it became witnessed, from `size, at`.
pub(super) fn witnessed_at(r: &impl Columns) -> Result<WitnessedAt, StoreError> {
    Ok(WitnessedAt {
        size: r.u64(0)?,
        at_ms: r.i64(1)?,
    })
}

/// The columns of [`witness_state`], in order.
pub(super) const WITNESS_STATE_COLUMNS: &str = "witness, size, cosigned_at, last_error, updated_at";

/// What the hub learnt of a witness, from [`WITNESS_STATE_COLUMNS`].
pub(super) fn witness_state(r: &impl Columns) -> Result<WitnessState, StoreError> {
    Ok(WitnessState {
        witness: r.string(0)?,
        size: r.u64(1)?,
        cosigned_at_ms: r.int(2)?,
        last_error: r.text(3)?,
        updated_at_ms: r.i64(4)?,
    })
}

/// A stored tree node, from `level, idx, hash`.
pub(super) fn node(r: &impl Columns) -> Result<(NodeId, Hash), StoreError> {
    let level = r.i64(0)?;
    let id = NodeId {
        level: u8::try_from(level).map_err(|_| r.out_of_range(0, level))?,
        index: r.u64(1)?,
    };
    let hash = Hash::from_bytes(&r.bytes(2)?)
        .ok_or_else(|| StoreError::corrupt("hash (not 32 bytes)", format!("node {id:?}")))?;
    Ok((id, hash))
}

/// A row of (log index, blob), as [`super::LogRecords::entries`] and
/// [`super::Submissions::logged_envelopes`] select them.
pub(super) fn indexed_blob(r: &impl Columns) -> Result<(u64, Vec<u8>), StoreError> {
    Ok((r.u64(0)?, r.bytes(1)?))
}

/// The columns of [`access`], in order.
pub(super) const ACCESS_COLUMNS: &str =
    "id, at, member, method, request, tree_size, rows, suppressed";

/// One access record, from [`ACCESS_COLUMNS`].
pub(super) fn access(r: &impl Columns) -> Result<AccessRecord, StoreError> {
    Ok(AccessRecord {
        id: r.i64(0)?,
        at_ms: r.i64(1)?,
        member: r.string(2)?,
        method: r.string(3)?,
        request: r.string(4)?,
        tree_size: r.u64(5)?,
        rows: r.u32(6)?,
        suppressed: r.u32(7)?,
    })
}

/// The columns of [`indexed`], in order.
pub(super) const INDEXED_COLUMNS: &str =
    "seq, dataflow, ref_area, time_period, log_index, received_at";

/// A submission as the statistics index reads it, from [`INDEXED_COLUMNS`], its observations
/// still to come.
pub(super) fn indexed(r: &impl Columns) -> Result<IndexedSubmission, StoreError> {
    let seq = r.i64(0)?;
    let dataflow = r.string(1)?;
    Ok(IndexedSubmission {
        seq,
        dataflow: Dataflow::from_id(&dataflow).ok_or_else(|| {
            StoreError::corrupt(
                format!("dataflow {dataflow:?}"),
                format!("submission seq {seq}"),
            )
        })?,
        ref_area: r.string(2)?,
        time_period: r.string(3)?,
        log_index: r.opt_u64(4)?,
        received_at_ms: r.i64(5)?,
        observations: Vec::new(),
    })
}

/// The observation columns both backends read, in order (`comment` last, for exports only).
pub(super) const OBSERVATION_COLUMNS: &str = "submission_seq, drug, transport_mode, origin_area, departure_area, transit_area, destination_area, unit_measure, n_seizures, quantity, obs_status, conf_status, embargo_time, comment";

/// An observation row of [`OBSERVATION_COLUMNS`]; the comment only `with_comment`.
pub(super) fn observation(
    r: &impl Columns,
    with_comment: bool,
) -> Result<ValidObservation, StoreError> {
    Ok(ValidObservation {
        drug: r.string(1)?,
        transport_mode: r.text(2)?,
        origin_area: r.text(3)?,
        departure_area: r.text(4)?,
        transit_area: r
            .text(5)?
            .map(|t| t.split(';').map(str::to_owned).collect())
            .unwrap_or_default(),
        destination_area: r.text(6)?,
        unit_measure: r.text(7)?,
        n_seizures: r.opt_u64(8)?,
        quantity: r.int(9)?.and_then(Quantity::from_millionths),
        obs_status: r.string(10)?,
        conf_status: r.string(11)?,
        embargo_time: r.int(12)?.and_then(|ms| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        }),
        comment: if with_comment { r.text(13)? } else { None },
    })
}

/// Places observation rows, read in submission order, onto the submissions they belong to.
pub(super) struct Grouping {
    at: usize,
}

impl Grouping {
    /// Before the first row.
    pub fn new() -> Self {
        Self { at: 0 }
    }

    /// The submission of `out` (in store order) that the observation row `r` belongs to.
    pub fn place<'a, T>(
        &mut self,
        out: &'a mut [T],
        seq_of: impl Fn(&T) -> i64,
        r: &impl Columns,
    ) -> Result<&'a mut T, StoreError> {
        let seq = r.i64(0)?;
        while self.at < out.len() && seq_of(&out[self.at]) != seq {
            self.at += 1;
        }
        out.get_mut(self.at).ok_or_else(|| {
            StoreError::corrupt(
                "observation (of no submission listed)",
                format!("submission seq {seq}"),
            )
        })
    }
}

/// The columns of [`export`], in order.
pub(super) const EXPORT_COLUMNS: &str = "seq, id, member, dataflow, ref_area, freq, time_period, period_start, period_end, revision, received_at, log_index, payload_digest, envelope_digest, envelope, signing_cert, receipt";

/// A stored submission as inserted, from [`EXPORT_COLUMNS`], its observations still to come.
/// A submission not yet logged is refused: a store is copied only once every submission is in
/// its log.
pub(super) fn export(r: &impl Columns) -> Result<(i64, SubmissionRecord), StoreError> {
    let seq = r.i64(0)?;
    let id = r.string(1)?;
    let bad = |what: &str| StoreError::corrupt(what, &id);
    let date = |i: usize| {
        Date::parse(
            &r.string(i)?,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map_err(|_| bad("period date"))
    };
    let log_index = r.opt_u64(11)?.ok_or_else(|| {
        StoreError::Refused(format!(
            "submission {id} is not in the log: this store was written before the gateway had a transparency log"
        ))
    })?;
    let record = SubmissionRecord {
        member: r.string(2)?,
        series: SeriesKey {
            dataflow: Dataflow::from_id(&r.string(3)?).ok_or_else(|| bad("dataflow"))?,
            ref_area: r.string(4)?,
            time_period: r.string(6)?,
        },
        freq: Frequency::from_code(&r.string(5)?)
            .ok_or_else(|| bad("frequency"))?
            .code(),
        period_start: date(7)?,
        period_end: date(8)?,
        revision: r.u32(9)?,
        received_at_ms: r.i64(10)?,
        log_index,
        payload_digest: r.digest(12)?,
        envelope_digest: r.digest(13)?,
        envelope: r.bytes(14)?,
        signing_cert: r.bytes(15)?,
        receipt: r.bytes(16)?,
        observations: Vec::new().into(),
        id: id.clone(),
    };
    Ok((seq, record))
}

/// Exported submissions with the observations read for each.
pub(super) fn with_observations(
    rows: Vec<((i64, SubmissionRecord), Vec<ValidObservation>)>,
) -> Vec<(i64, SubmissionRecord)> {
    rows.into_iter()
        .map(|((seq, mut record), observations)| {
            record.observations = observations.into();
            (seq, record)
        })
        .collect()
}
