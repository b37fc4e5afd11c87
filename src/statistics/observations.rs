//! The observations as submitted, for a viewer: of each series the revision that counts at a
//! tree size, of the reporters the viewer may see (its own always), without other reporters'
//! confidential values (CONF_STATUS `C`) and their embargoed ones (`E`) before EMBARGO_TIME.
//! Nothing is summed, so nothing is suppressed: a reporter the viewer may not see is left out.
//!
//! Read in pages, each from a position in the index to the next, so that a download of every
//! observation is written out as it is read and holds the index only a page at a time.
//!
//! With [`Revisions::history`], every revision in the tree is read instead, each observation
//! with its revision's period of validity: from its acceptance to that of the revision that
//! superseded it.

use super::{
    aggregate::{Filter, Hidden, Viewer, rows},
    index::{Index, NONE, Row, Sub},
    query::Query,
};
use crate::schema::Frequency;

/// One observation, its codes by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// REF_AREA.
    pub ref_area: String,
    /// FREQ.
    pub freq: Frequency,
    /// TIME_PERIOD.
    pub period: String,
    /// DRUG.
    pub drug: String,
    /// TRANSPORT_MODE; empty when not given.
    pub transport_mode: String,
    /// ROUTES: origin.
    pub origin_area: String,
    /// ROUTES: departure; empty when not given.
    pub departure_area: String,
    /// ROUTES: the transit areas in travel order.
    pub transit_area: Vec<String>,
    /// ROUTES: destination.
    pub destination_area: String,
    /// UNIT_MEASURE; empty for a count without quantity.
    pub unit_measure: String,
    /// QUANTITY in millionths.
    pub quantity: Option<i64>,
    /// N_SEIZURES.
    pub n_seizures: Option<u64>,
    /// OBS_STATUS.
    pub obs_status: String,
    /// CONF_STATUS.
    pub conf_status: String,
    /// EMBARGO_TIME, Unix milliseconds.
    pub embargo_ms: Option<i64>,
    /// COMMENT; empty when none.
    pub comment: String,
    /// The revision it belongs to.
    pub revision: Revision,
}

/// A submission's revision of a series, and when it was the one that counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revision {
    /// Its log entry.
    pub log_index: u64,
    /// Accepted (valid from), Unix milliseconds.
    pub valid_from_ms: i64,
    /// Superseded in the tree read (valid until), Unix milliseconds; `None` while it counts.
    pub valid_to_ms: Option<i64>,
}

/// Which revisions of each series are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Revisions {
    /// Only those logged at or after this entry (0: all).
    pub since: u64,
    /// Every revision in the tree, not only the one that counts.
    pub history: bool,
}

/// A page of observations and where the next one starts (`None`: this was the last).
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The observations, in store order.
    pub observations: Vec<Observation>,
    /// The position to read the next page from.
    pub next: Option<usize>,
}

/// What a download reads: the submissions of the `revisions` asked in the tree of `size`
/// entries that `q` selects, of reporters `viewer` may see, and of those the rows `q` selects
/// that `viewer` may count at `now_ms`.
struct Reading<'a, 'v> {
    index: &'a Index,
    q: &'a Query,
    size: u64,
    viewer: &'a Viewer<'v>,
    revisions: Revisions,
    filter: Filter,
    hidden: Hidden,
}

impl<'a, 'v> Reading<'a, 'v> {
    fn new(
        index: &'a Index,
        q: &'a Query,
        size: u64,
        now_ms: i64,
        viewer: &'a Viewer<'v>,
        revisions: Revisions,
    ) -> Self {
        Self {
            index,
            q,
            size,
            viewer,
            revisions,
            filter: Filter::new(index, q),
            hidden: Hidden::new(index, viewer, now_ms),
        }
    }

    /// Whether `sub` is read, and then whether it is the viewer's own data.
    fn sub(&self, sub: &Sub) -> Option<bool> {
        let in_tree = if self.revisions.history {
            sub.log_index < self.size
        } else {
            sub.counts_at(self.size)
        };
        if sub.dataflow != self.q.dataflow
            || !in_tree
            || sub.log_index < self.revisions.since
            || !self.filter.sub(self.q, sub)
        {
            return None;
        }
        let own_data = self.hidden.own(sub);
        (own_data || (self.viewer.may_see)(self.index.codes.name(sub.ref_area))).then_some(own_data)
    }

    /// The rows of `sub` (read, the viewer's own when `own_data`) that are read.
    fn rows(&mut self, sub: &Sub, own_data: bool) -> impl Iterator<Item = &'a Row> + '_ {
        let index = self.index;
        rows(index, sub)
            .iter()
            .filter(move |row| self.filter.selects(index, row) && !self.hidden.row(own_data, row))
    }
}

/// How many observations [`observations`] reads in all, without reading them.
pub fn count(
    index: &Index,
    q: &Query,
    size: u64,
    now_ms: i64,
    viewer: &Viewer<'_>,
    revisions: Revisions,
) -> u64 {
    let mut reading = Reading::new(index, q, size, now_ms, viewer, revisions);
    let mut n = 0;
    for sub in &index.subs {
        if let Some(own_data) = reading.sub(sub) {
            n += reading.rows(sub, own_data).count() as u64;
        }
    }
    n
}

/// Reads from position `from` (0 for the first page) at least `max` observations (a
/// submission is never split) that `q` selects and `viewer` may see in the tree of `size`
/// entries at `now_ms`, of the `revisions` asked. `q`'s grouping, roll-up, totals and top-N do
/// not apply.
#[allow(clippy::too_many_arguments)]
pub fn observations(
    index: &Index,
    q: &Query,
    size: u64,
    now_ms: i64,
    viewer: &Viewer<'_>,
    revisions: Revisions,
    from: usize,
    max: usize,
) -> Page {
    let mut reading = Reading::new(index, q, size, now_ms, viewer, revisions);
    // Codes left out are interned as "".
    let name = |id: u32| index.codes.name(id).to_owned();
    let mut page = Page::default();
    for (at, sub) in index.subs.iter().enumerate().skip(from) {
        if page.observations.len() >= max {
            page.next = Some(at);
            break;
        }
        let Some(own_data) = reading.sub(sub) else {
            continue;
        };
        let revision = Revision {
            log_index: sub.log_index,
            valid_from_ms: sub.received_ms,
            valid_to_ms: sub
                .superseded_at
                .filter(|&at| at < size)
                .and(sub.superseded_ms),
        };
        for row in reading.rows(sub, own_data) {
            let transit = name(row.transit_area);
            page.observations.push(Observation {
                ref_area: name(sub.ref_area),
                freq: sub.period.frequency(),
                period: sub.period.to_string(),
                drug: name(row.drug),
                transport_mode: name(row.transport_mode),
                origin_area: name(row.origin_area),
                departure_area: name(row.departure_area),
                transit_area: transit
                    .split(';')
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect(),
                destination_area: name(row.destination_area),
                unit_measure: name(row.unit_measure),
                quantity: (row.quantity != NONE).then_some(row.quantity),
                n_seizures: (row.n_seizures != NONE).then_some(row.n_seizures as u64),
                obs_status: name(row.obs_status),
                conf_status: name(row.conf_status),
                embargo_ms: (row.embargo_ms != NONE).then_some(row.embargo_ms),
                comment: name(row.comment),
                revision,
            });
        }
    }
    page
}
