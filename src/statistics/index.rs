//! The in-memory index of every observation ever accepted, every revision included, kept in
//! compact columns so that an aggregate over a million observations is a scan of plain arrays.
//!
//! The index is derived state: it is rebuilt from the store at start and follows it by store
//! order (`seq`), so that several gateways sharing one database each keep their own. Each
//! submission knows its log index and the log index of the revision that superseded it, which
//! makes "current" and "as of tree size S" the same question: which revision of each series had
//! been logged, and not yet superseded, before entry S.

use std::collections::HashMap;

use time::Date;

use crate::{
    schema::{Dataflow, Period, ValidObservation},
    store::IndexedSubmission,
};

/// Interned strings: each distinct code gets a small number. 0 is the empty string.
#[derive(Clone, Debug)]
pub struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Default for Interner {
    fn default() -> Self {
        let mut i = Self {
            ids: HashMap::new(),
            names: Vec::new(),
        };
        i.intern("");
        i
    }
}

impl Interner {
    /// The number of `s`, adding it if new.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_owned());
        self.ids.insert(s.to_owned(), id);
        id
    }

    /// The number of `s`, if it was ever interned.
    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// The number of strings interned (the empty one included).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Never true: the empty string is always interned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The string of a number.
    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }
}

/// No value in an `i64` column.
pub const NONE: i64 = i64::MIN;

/// One observation, its codes interned.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// CL_DRUG code.
    pub drug: u32,
    /// Its CL_DRUG group.
    pub drug_group: u32,
    /// Transport mode (0: none).
    pub transport_mode: u32,
    /// ROUTES: origin area.
    pub origin_area: u32,
    /// ROUTES: departure area.
    pub departure_area: u32,
    /// ROUTES: the transit path, `;`-joined (0: none).
    pub transit_area: u32,
    /// ROUTES: destination area.
    pub destination_area: u32,
    /// Unit of measure (0: no quantity).
    pub unit_measure: u32,
    /// N_SEIZURES, or [`NONE`].
    pub n_seizures: i64,
    /// QUANTITY in millionths, or [`NONE`].
    pub quantity: i64,
    /// OBS_STATUS.
    pub obs_status: u32,
    /// CONF_STATUS.
    pub conf_status: u32,
    /// EMBARGO_TIME, Unix milliseconds, or [`NONE`].
    pub embargo_ms: i64,
    /// COMMENT, interned ("" for none): read back by downloads, never aggregated.
    pub comment: u32,
}

/// One submission: the series it revises and where its observations are.
#[derive(Clone, Debug)]
pub struct Sub {
    /// Dataflow.
    pub dataflow: Dataflow,
    /// Reporter, interned.
    pub ref_area: u32,
    /// The period.
    pub period: Period,
    /// First and last day of the period.
    pub start: Date,
    /// Last day of the period.
    pub end: Date,
    /// Its entry in the log.
    pub log_index: u64,
    /// When it was accepted, Unix milliseconds.
    pub received_ms: i64,
    /// The log index of the revision that superseded it.
    pub superseded_at: Option<u64>,
    /// When the revision that superseded it was accepted, Unix milliseconds.
    pub superseded_ms: Option<i64>,
    /// The revision it superseded (its place in [`Index::subs`]).
    pub previous: Option<u32>,
    /// Its rows: `rows[first..first + len]`.
    pub first: u32,
    /// Number of rows.
    pub len: u32,
}

impl Sub {
    /// Whether this revision is the one that counts in the tree of `size` entries.
    pub fn counts_at(&self, size: u64) -> bool {
        self.log_index < size && self.superseded_at.is_none_or(|s| s >= size)
    }
}

/// Every observation, every revision.
#[derive(Clone, Debug, Default)]
pub struct Index {
    /// Interned codes.
    pub codes: Interner,
    /// Submissions in store order.
    pub subs: Vec<Sub>,
    /// Observations, submission after submission.
    pub rows: Vec<Row>,
    /// The store order (`seq`) of the last submission added.
    pub last_seq: i64,
    /// The current revision of each series: (dataflow, reporter, period) → submission.
    current: HashMap<(Dataflow, u32, Period), usize>,
    /// CL_DRUG code → its group code.
    drug_groups: HashMap<String, String>,
}

impl Index {
    /// An empty index that knows each drug's group.
    pub fn new(drug_groups: HashMap<String, String>) -> Self {
        Self {
            drug_groups,
            ..Self::default()
        }
    }

    /// Adds submissions the store returned after `last_seq`, in store order. Submissions not
    /// yet in the log (none, once the gateway has started) are skipped.
    pub fn extend(&mut self, batch: Vec<IndexedSubmission>) {
        for s in batch {
            self.last_seq = self.last_seq.max(s.seq);
            let (Some(log_index), Ok(period)) = (s.log_index, Period::parse(&s.time_period)) else {
                continue;
            };
            let ref_area = self.codes.intern(&s.ref_area);
            let first = self.rows.len() as u32;
            for o in &s.observations {
                let row = self.row(o);
                self.rows.push(row);
            }
            let idx = self.subs.len();
            let previous = self.current.get(&(s.dataflow, ref_area, period)).copied();
            if let Some(prev) = previous {
                self.subs[prev].superseded_at = Some(log_index);
                self.subs[prev].superseded_ms = Some(s.received_at_ms);
            }
            self.current.insert((s.dataflow, ref_area, period), idx);
            self.subs.push(Sub {
                dataflow: s.dataflow,
                ref_area,
                period,
                start: period.start(),
                end: period.end(),
                log_index,
                received_ms: s.received_at_ms,
                superseded_at: None,
                superseded_ms: None,
                previous: previous.map(|p| p as u32),
                first,
                len: s.observations.len() as u32,
            });
        }
    }

    fn row(&mut self, o: &ValidObservation) -> Row {
        let mut code = |v: Option<&str>| self.codes.intern(v.unwrap_or(""));
        let drug = code(Some(&o.drug));
        let transport_mode = code(o.transport_mode.as_deref());
        let origin_area = code(o.origin_area.as_deref());
        let departure_area = code(o.departure_area.as_deref());
        let transit = o.transit_area.join(";");
        let transit_area = code(Some(&transit));
        let destination_area = code(o.destination_area.as_deref());
        let unit_measure = code(o.unit_measure.as_deref());
        let obs_status = code(Some(&o.obs_status));
        let conf_status = code(Some(&o.conf_status));
        let group = self.drug_groups.get(&o.drug).cloned().unwrap_or_default();
        Row {
            drug,
            drug_group: self.codes.intern(&group),
            transport_mode,
            origin_area,
            departure_area,
            transit_area,
            destination_area,
            unit_measure,
            // Validation bounds counts far below i64::MAX.
            n_seizures: o.n_seizures.map_or(NONE, |n| n as i64),
            quantity: o.quantity.map_or(NONE, |q| q.millionths()),
            obs_status,
            conf_status,
            embargo_ms: o
                .embargo_time
                .map_or(NONE, |t| (t.unix_timestamp_nanos() / 1_000_000) as i64),
            comment: self.codes.intern(o.comment.as_deref().unwrap_or("")),
        }
    }

    /// The submissions of `dataflow` that count in the tree of `size` entries, in store order:
    /// for each series, its latest revision logged before entry `size`. Found from each
    /// series' current revision back through the revisions logged since: the work grows with
    /// the series and with what changed after `size`, not with the whole history.
    pub fn counting(&self, dataflow: Dataflow, size: u64) -> Vec<&Sub> {
        let mut found: Vec<usize> = self
            .current
            .iter()
            .filter(|((d, _, _), _)| *d == dataflow)
            .filter_map(|(_, &latest)| {
                let mut at = latest;
                while self.subs[at].log_index >= size {
                    at = self.subs[at].previous? as usize;
                }
                Some(at)
            })
            .collect();
        found.sort_unstable();
        found.into_iter().map(|i| &self.subs[i]).collect()
    }

    /// Observations held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Revisions of a few series, interleaved, with gaps in the log (administrative entries):
    /// `counting` gives, for every size, exactly the submissions the plain rule `counts_at`
    /// selects from the whole history.
    #[test]
    fn counting_matches_the_plain_rule_at_every_size() {
        let mut index = Index::default();
        let series = [
            (Dataflow::Seizures, "KAZ", "2024"),
            (Dataflow::Seizures, "UZB", "2024"),
            (Dataflow::Seizures, "KAZ", "2023-Q1"),
            (Dataflow::Routes, "KAZ", "2024"),
        ];
        let mut log_index = 0;
        let batch: Vec<IndexedSubmission> = (0..40)
            .map(|i: i64| {
                let (dataflow, ref_area, period) = series[(i as usize * 7 + i as usize / 3) % 4];
                log_index += 1 + (i as u64 % 3); // entries between submissions
                IndexedSubmission {
                    seq: i + 1,
                    dataflow,
                    ref_area: ref_area.into(),
                    time_period: period.into(),
                    log_index: Some(log_index),
                    received_at_ms: i * 1000,
                    observations: Vec::new(),
                }
            })
            .collect();
        index.extend(batch);
        let mut wrong = Vec::new();
        for size in 0..=log_index + 2 {
            for dataflow in [Dataflow::Seizures, Dataflow::Routes] {
                let plain: Vec<u64> = index
                    .subs
                    .iter()
                    .filter(|s| s.dataflow == dataflow && s.counts_at(size))
                    .map(|s| s.log_index)
                    .collect();
                let fast: Vec<u64> = index
                    .counting(dataflow, size)
                    .iter()
                    .map(|s| s.log_index)
                    .collect();
                if plain != fast {
                    wrong.push(format!("{dataflow:?} at {size}: {plain:?} vs {fast:?}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{} sizes wrong: {wrong:#?}", wrong.len());
    }
}
