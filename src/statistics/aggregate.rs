//! Running a query: visibility, aggregation, small-cell suppression, totals.
//!
//! # What a caller sees
//! - Observations with CONF_STATUS `C` count only in their reporter's own answers; `E` ones
//!   likewise until their EMBARGO_TIME has passed.
//! - Everything else counts in everyone's aggregates, but a reporter's *country-level* figures
//!   are protected by the threshold rule below unless the policy shares them with the caller.
//!
//! # Small-cell suppression (threshold rule)
//! A cell is suppressed when the caller may not see the country-level figures of every
//! reporter it is computed from, *and* it is computed from fewer than `min_seizures` seizures
//! (the sum of N_SEIZURES; observations without a count count as none) or from fewer than
//! `min_reporters` reporters. A suppressed cell keeps its key and carries no measure, with
//! OBS_STATUS `Q` and CONF_STATUS `A`.
//!
//! Secondary suppression: a total row would let the caller subtract the visible cells and
//! recover a suppressed one, so the total of a unit is withheld (suppressed the same way) as
//! soon as any cell of that unit is suppressed. `top_n` keeps the largest *visible* cells.
//! The rule protects one answer; it does not stop differencing across many queries with
//! different filters, which the access trail exists to notice.
//!
//! # Statuses of a cell
//! OBS_STATUS is `A` when every contributing observation is `A`; otherwise the strongest of
//! `U` (low reliability) > `E` (estimated) > `P` (provisional) > any other code. CONF_STATUS is
//! the most restrictive contributing status: `C` > `E` > `N` > `D` > `F`.

use std::collections::{HashMap, HashSet};

use super::{
    index::{Index, NONE, Row, Sub},
    query::{Dimension, Query},
};
use time::Date;

use crate::schema::{Frequency, Period, Rule, TOTAL, Violation};

/// Suppression thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// k: fewest seizures a cell may be computed from.
    pub min_seizures: u64,
    /// m: fewest reporters a cell may be computed from.
    pub min_reporters: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            min_seizures: 3,
            min_reporters: 2,
        }
    }
}

/// Who asks.
pub struct Viewer<'a> {
    /// The caller's country (ISO3): it sees its own confidential and embargoed values.
    pub country: &'a str,
    /// Whether the caller may see a reporter's country-level figures.
    pub may_see: &'a dyn Fn(&str) -> bool,
}

/// One cell of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// Dimension values, in the query's group-by order.
    pub key: Vec<String>,
    /// Unit of measure; empty for counts without quantity.
    pub unit_measure: String,
    /// Sum of QUANTITY in millionths; `None` when withheld or absent.
    pub quantity: Option<i128>,
    /// Sum of N_SEIZURES; `None` when withheld or absent.
    pub n_seizures: Option<u64>,
    /// Reporters the cell is computed from; 0 when withheld.
    pub n_reporters: u32,
    /// OBS_STATUS.
    pub obs_status: String,
    /// CONF_STATUS.
    pub conf_status: String,
    /// Whether the cell was suppressed.
    pub suppressed: bool,
    /// Whether this is a total row.
    pub total: bool,
}

/// The answer to a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The frequency of the series combined (`None` when nothing was selected).
    pub freq: Option<Frequency>,
    /// The group-by dimensions, in key order.
    pub dimensions: Vec<Dimension>,
    /// The first day and the last of the periods that contributed (`None` when none did).
    pub span: Option<(Date, Date)>,
    /// The cells, sorted by key and unit, totals last.
    pub cells: Cells,
}

impl Answer {
    /// The number of suppressed cells (totals included).
    pub fn suppressed(&self) -> usize {
        (0..self.cells.len())
            .filter(|&i| self.cells.suppressed(i))
            .count()
    }
}

/// The cells of an answer, held compactly: each cell's key (its group-by values, then its
/// unit) is a row of ids into the answer's own names, its measures fixed-size beside it. A
/// cell is made a [`Cell`] only when it is written, so an answer of a million cells costs
/// tens of megabytes, not the hundreds its strings would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cells {
    /// Ids per cell: the group-by values, then the unit.
    width: usize,
    keys: Vec<u32>,
    measures: Vec<Measures>,
    /// The names the ids stand for, each once.
    names: Vec<Box<str>>,
    /// Per id, its place in the names sorted: comparing ranks compares names.
    ranks: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Measures {
    quantity: Option<i128>,
    n_seizures: Option<u64>,
    n_reporters: u32,
    obs_status: u32,
    conf_status: u32,
    suppressed: bool,
    total: bool,
}

impl Cells {
    /// How many cells.
    pub fn len(&self) -> usize {
        self.measures.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.measures.is_empty()
    }

    /// Whether cell `i` is suppressed.
    pub fn suppressed(&self, i: usize) -> bool {
        self.measures[i].suppressed
    }

    fn key(&self, i: usize) -> &[u32] {
        &self.keys[i * self.width..(i + 1) * self.width]
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// Cell `i`, written out.
    pub fn get(&self, i: usize) -> Cell {
        let (parts, unit) = self.key(i).split_at(self.width - 1);
        let m = &self.measures[i];
        Cell {
            key: parts.iter().map(|&id| self.name(id).to_owned()).collect(),
            unit_measure: self.name(unit[0]).to_owned(),
            quantity: m.quantity,
            n_seizures: m.n_seizures,
            n_reporters: m.n_reporters,
            obs_status: self.name(m.obs_status).to_owned(),
            conf_status: self.name(m.conf_status).to_owned(),
            suppressed: m.suppressed,
            total: m.total,
        }
    }

    /// The order of cells `a` and `b` by their keys (then units), leaving out the key's
    /// value at `skip` (such as TIME_PERIOD, to gather each series).
    pub fn cmp_without(&self, skip: Option<usize>, a: usize, b: usize) -> std::cmp::Ordering {
        let (ka, kb) = (self.key(a), self.key(b));
        ka.iter()
            .zip(kb)
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, (x, y))| self.ranks[*x as usize].cmp(&self.ranks[*y as usize]))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }

    /// Keeps only the cells of `order`, in that order: a permutation of all of them is
    /// applied in place, following its cycles; a selection is copied.
    fn arrange(&mut self, mut order: Vec<usize>) {
        let w = self.width;
        if order.len() < self.len() {
            let mut keys = Vec::with_capacity(order.len() * w);
            let mut measures = Vec::with_capacity(order.len());
            for &i in &order {
                keys.extend_from_slice(self.key(i));
                measures.push(self.measures[i]);
            }
            (self.keys, self.measures) = (keys, measures);
            return;
        }
        // Cell `order[i]` goes to `i`; a place done is marked by pointing at itself.
        let mut held = vec![0; w];
        for start in 0..order.len() {
            if order[start] == start {
                continue;
            }
            held.copy_from_slice(self.key(start));
            let measures = self.measures[start];
            let mut at = start;
            loop {
                let from = order[at];
                order[at] = at;
                if from == start {
                    self.keys[at * w..(at + 1) * w].copy_from_slice(&held);
                    self.measures[at] = measures;
                    break;
                }
                self.keys.copy_within(from * w..(from + 1) * w, at * w);
                self.measures[at] = self.measures[from];
                at = from;
            }
        }
    }
}

/// How the cells of one answer are named and measured: the index's codes and the period
/// labels given the answer's own ids, and the suppression rule applied.
struct Naming<'a> {
    index: &'a Index,
    names: Names,
    /// Index code id to the answer's id.
    codes: HashMap<u32, u32>,
    /// Period label (by the id keys hold for TIME_PERIOD) to the answer's id.
    labels: Vec<Option<u32>>,
    /// The reporters the viewer may see.
    visible: ReporterSet,
    thresholds: Thresholds,
}

impl Naming<'_> {
    fn code(&mut self, id: u32) -> u32 {
        let (index, names) = (self.index, &mut self.names);
        *self
            .codes
            .entry(id)
            .or_insert_with(|| names.id(index.codes.name(id)))
    }

    fn label(&mut self, id: u32, labels: &[String]) -> u32 {
        let names = &mut self.names;
        *self.labels[id as usize].get_or_insert_with(|| names.id(&labels[id as usize]))
    }

    /// A cell (or a unit's total) whose measures are withheld.
    fn withheld(&mut self, total: bool) -> Measures {
        Measures {
            quantity: None,
            n_seizures: None,
            n_reporters: 0,
            obs_status: self.names.id("Q"),
            conf_status: self.names.id("A"),
            suppressed: true,
            total,
        }
    }

    /// The measures of `acc`, withheld when the viewer may not see every reporter behind
    /// them and they come from too few seizures or reporters.
    fn measures(&mut self, acc: &Acc, total: bool) -> Measures {
        let t = self.thresholds;
        let exposed = acc.reporters.subset_of(&self.visible);
        let small = acc.n_seizures < t.min_seizures || acc.reporters.len() < t.min_reporters;
        if !exposed && small {
            return self.withheld(total);
        }
        Measures {
            quantity: acc.has_quantity.then_some(acc.quantity),
            n_seizures: acc.has_n.then_some(acc.n_seizures),
            n_reporters: acc.reporters.len(),
            obs_status: self.code(acc.obs.1),
            conf_status: self.code(acc.conf.1),
            suppressed: false,
            total,
        }
    }
}

/// The names an answer's cells use, each given an id once.
#[derive(Default)]
struct Names {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    /// The names, and each one's rank in sorted order.
    fn finish(self) -> (Vec<Box<str>>, Vec<u32>) {
        let mut sorted: Vec<u32> = (0..self.names.len() as u32).collect();
        sorted.sort_unstable_by(|a, b| self.names[*a as usize].cmp(&self.names[*b as usize]));
        let mut ranks = vec![0; self.names.len()];
        for (rank, id) in sorted.into_iter().enumerate() {
            ranks[id as usize] = rank as u32;
        }
        (self.names, ranks)
    }
}

/// A set of up to 256 reporters ([`MAX_REPORTING_AREAS`](crate::schema::MAX_REPORTING_AREAS):
/// a reporter is an area that may report, and the code lists allow no more).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct ReporterSet([u64; 4]);

impl ReporterSet {
    fn insert(&mut self, i: u8) {
        self.0[(i >> 6) as usize] |= 1 << (i & 63);
    }
    fn union(&mut self, other: &Self) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }
    fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }
    fn subset_of(&self, other: &Self) -> bool {
        self.0.iter().zip(other.0).all(|(a, b)| a & !b == 0)
    }
}

#[derive(Clone, Copy, Default)]
struct Acc {
    quantity: i128,
    has_quantity: bool,
    n_seizures: u64,
    has_n: bool,
    reporters: ReporterSet,
    obs: (u8, u32),
    conf: (u8, u32),
}

impl Acc {
    fn add(&mut self, row: &Row, reporter: u8, obs_rank: u8, conf_rank: u8) {
        if row.quantity != NONE {
            self.quantity += i128::from(row.quantity);
            self.has_quantity = true;
        }
        if row.n_seizures != NONE {
            self.n_seizures += row.n_seizures as u64;
            self.has_n = true;
        }
        self.reporters.insert(reporter);
        self.obs = self.obs.max((obs_rank, row.obs_status));
        self.conf = self.conf.max((conf_rank, row.conf_status));
    }

    fn merge(&mut self, other: &Acc) {
        self.quantity += other.quantity;
        self.has_quantity |= other.has_quantity;
        self.n_seizures += other.n_seizures;
        self.has_n |= other.has_n;
        self.reporters.union(&other.reporters);
        self.obs = self.obs.max(other.obs);
        self.conf = self.conf.max(other.conf);
    }
}

fn obs_rank(code: &str) -> u8 {
    match code {
        "A" => 0,
        "P" => 2,
        "E" => 3,
        "U" => 4,
        _ => 1,
    }
}

fn conf_rank(code: &str) -> u8 {
    match code {
        "C" => 4,
        "E" => 3,
        "N" => 2,
        "D" => 1,
        _ => 0,
    }
}

/// The label of a period rolled up to `to`.
fn rolled(p: Period, to: Frequency) -> String {
    let month = p.start().month() as u8;
    match to {
        Frequency::Annual => format!("{:04}", p.year()),
        Frequency::Quarterly => format!("{:04}-Q{}", p.year(), (month - 1) / 3 + 1),
        Frequency::Monthly => p.to_string(),
    }
}

/// Interned ids of a filter's codes; `None` for no filter. Codes never seen match nothing.
fn ids(index: &Index, filter: &Option<std::collections::BTreeSet<String>>) -> Option<Vec<u32>> {
    filter
        .as_ref()
        .map(|set| set.iter().filter_map(|c| index.codes.get(c)).collect())
}

fn passes(filter: &Option<Vec<u32>>, id: u32) -> bool {
    filter.as_ref().is_none_or(|f| f.contains(&id))
}

/// Runs `q` over the tree of `size` entries for `viewer` at `now_ms`.
///
/// Without a frequency in `q`, the selected series must all have one frequency: otherwise the
/// answer is refused (field `freq`) rather than adding a reporter's months to its years. Only
/// series the viewer sees count towards that, so the refusal gives nothing hidden away.
pub fn aggregate(
    index: &Index,
    q: &Query,
    size: u64,
    now_ms: i64,
    viewer: &Viewer<'_>,
    t: Thresholds,
) -> Result<Answer, Violation> {
    let grouped = group(index, q, size, now_ms, viewer);
    let freq = one_frequency(&grouped.seen, q.rollup)?;
    Ok(Answer {
        freq,
        dimensions: q.group_by.clone(),
        span: grouped.span,
        cells: publish(index, q, grouped, t),
    })
}

/// The code-list filters of a query, as code ids, and its transit filter.
pub(super) struct Filter {
    ref_area: Option<Vec<u32>>,
    drug: Option<Vec<u32>>,
    mode: Option<Vec<u32>>,
    origin: Option<Vec<u32>>,
    destination: Option<Vec<u32>>,
    obs: Option<Vec<u32>>,
    unit: Option<Vec<u32>>,
    /// Countries one of which a route must pass through.
    transit: Option<Vec<String>>,
    /// Per transit path (code id), whether it passes; computed once per path.
    transit_ok: HashMap<u32, bool>,
}

impl Filter {
    pub(super) fn new(index: &Index, q: &Query) -> Self {
        Self {
            ref_area: ids(index, &q.ref_area),
            drug: ids(index, &q.drug),
            mode: ids(index, &q.transport_mode),
            origin: ids(index, &q.origin_area),
            destination: ids(index, &q.destination_area),
            obs: ids(index, &q.obs_status),
            unit: ids(index, &q.unit_measure),
            transit: q.transit_area.as_ref().map(|s| s.iter().cloned().collect()),
            transit_ok: HashMap::new(),
        }
    }

    /// Whether `row` holds a figure and passes every filter.
    fn admits(&mut self, index: &Index, row: &Row) -> bool {
        (row.quantity != NONE || row.n_seizures != NONE) && self.selects(index, row)
    }

    /// Whether the submission `sub` passes the query's frequency, periods and reporters.
    pub(super) fn sub(&self, q: &Query, sub: &Sub) -> bool {
        q.freq.is_none_or(|f| sub.period.frequency() == f)
            && q.from.is_none_or(|d| sub.start >= d)
            && q.to.is_none_or(|d| sub.end <= d)
            && passes(&self.ref_area, sub.ref_area)
    }

    /// Whether `row` passes every filter.
    pub(super) fn selects(&mut self, index: &Index, row: &Row) -> bool {
        if !passes(&self.drug, row.drug)
            || !passes(&self.mode, row.transport_mode)
            || !passes(&self.origin, row.origin_area)
            || !passes(&self.destination, row.destination_area)
            || !passes(&self.obs, row.obs_status)
            || !passes(&self.unit, row.unit_measure)
        {
            return false;
        }
        let Some(through) = &self.transit else {
            return true;
        };
        *self.transit_ok.entry(row.transit_area).or_insert_with(|| {
            index
                .codes
                .name(row.transit_area)
                .split(';')
                .any(|c| through.iter().any(|t| t == c))
        })
    }
}

/// What a viewer may not count of the rows it reads: its own rows are all visible; of other
/// reporters', confidential values (CONF_STATUS `C`) and embargoed ones (`E`) before their
/// EMBARGO_TIME are hidden.
pub(super) struct Hidden {
    own: Option<u32>,
    confidential: u32,
    embargoed: u32,
    now_ms: i64,
}

impl Hidden {
    pub(super) fn new(index: &Index, viewer: &Viewer<'_>, now_ms: i64) -> Self {
        let code = |c: &str| index.codes.get(c).unwrap_or(u32::MAX);
        Self {
            own: index.codes.get(viewer.country),
            confidential: code("C"),
            embargoed: code("E"),
            now_ms,
        }
    }

    /// Whether `sub` is the viewer's own data.
    pub(super) fn own(&self, sub: &Sub) -> bool {
        Some(sub.ref_area) == self.own
    }

    /// Whether `row` of a submission (the viewer's own when `own_data`) is hidden.
    pub(super) fn row(&self, own_data: bool, row: &Row) -> bool {
        !own_data
            && (row.conf_status == self.confidential
                || (row.conf_status == self.embargoed && row.embargo_ms > self.now_ms))
    }
}

/// Most ids in a cell's key: every dimension once (a query groups by each at most once),
/// then the unit.
const KEY: usize = Dimension::ALL.len() + 1;

/// A cell's key while it is accumulated: the group-by codes, then the unit, then zeros. Of
/// fixed size, so that a million cells are one table and no allocation each.
type Key = [u32; KEY];

/// The selected rows, accumulated per cell.
struct Grouped {
    /// Per key, its accumulator.
    cells: HashMap<Key, Acc>,
    /// The rolled-up period labels, by the ids keys hold for TIME_PERIOD.
    labels: Vec<String>,
    /// The reporters the viewer may see.
    visible: ReporterSet,
    /// The frequencies of the series that contributed.
    seen: HashSet<Frequency>,
    /// The first day and the last of the periods that contributed.
    span: Option<(Date, Date)>,
}

/// Accumulates every row of the tree of `size` that `q` selects and `viewer` may count (its
/// own data, or data neither confidential nor under embargo at `now_ms`) into its cell.
fn group(index: &Index, q: &Query, size: u64, now_ms: i64, viewer: &Viewer<'_>) -> Grouped {
    let mut filter = Filter::new(index, q);
    let hidden = Hidden::new(index, viewer, now_ms);
    // Per-code ranks, computed once.
    let rank = |f: fn(&str) -> u8| -> Vec<u8> {
        (0..index.codes.len())
            .map(|i| f(index.codes.name(i as u32)))
            .collect()
    };
    let (obs_ranks, conf_ranks) = (rank(obs_rank), rank(conf_rank));
    let mut reporters: HashMap<u32, u8> = HashMap::new();
    // Period → the id of its rolled-up label; periods sharing a label share the id.
    let mut periods: HashMap<Period, u32> = HashMap::new();
    let mut label_ids: HashMap<String, u32> = HashMap::new();
    let mut out = Grouped {
        cells: HashMap::new(),
        labels: Vec::new(),
        visible: ReporterSet::default(),
        seen: HashSet::new(),
        span: None,
    };
    for sub in index.counting(q.dataflow, size) {
        if !filter.sub(q, sub) {
            continue;
        }
        let next = reporters.len() as u8;
        let reporter = *reporters.entry(sub.ref_area).or_insert_with(|| {
            if (viewer.may_see)(index.codes.name(sub.ref_area)) {
                out.visible.insert(next);
            }
            next
        });
        let period = *periods.entry(sub.period).or_insert_with(|| {
            let label = rolled(sub.period, q.rollup.unwrap_or(sub.period.frequency()));
            *label_ids.entry(label.clone()).or_insert_with(|| {
                out.labels.push(label);
                out.labels.len() as u32 - 1
            })
        });
        let own_data = hidden.own(sub);
        let mut counted = false;
        for row in rows(index, sub) {
            if !filter.admits(index, row) || hidden.row(own_data, row) {
                continue;
            }
            counted = true;
            let mut key: Key = [0; KEY];
            let parts = q.group_by.iter().map(|d| match d {
                Dimension::RefArea => sub.ref_area,
                Dimension::TimePeriod => period,
                Dimension::Drug => row.drug,
                Dimension::DrugGroup => row.drug_group,
                Dimension::TransportMode => row.transport_mode,
                Dimension::ObsStatus => row.obs_status,
                Dimension::OriginArea => row.origin_area,
                Dimension::DepartureArea => row.departure_area,
                Dimension::TransitArea => row.transit_area,
                Dimension::DestinationArea => row.destination_area,
            });
            for (slot, id) in key.iter_mut().zip(parts.chain([row.unit_measure])) {
                *slot = id;
            }
            let (o, c) = (
                obs_ranks[row.obs_status as usize],
                conf_ranks[row.conf_status as usize],
            );
            out.cells.entry(key).or_default().add(row, reporter, o, c);
        }
        if counted {
            out.seen.insert(sub.period.frequency());
            out.span = Some(match out.span {
                None => (sub.start, sub.end),
                Some((s, e)) => (s.min(sub.start), e.max(sub.end)),
            });
        }
    }
    out
}

/// The one frequency of the series that contributed, which `rollup` must be able to reach.
fn one_frequency(
    seen: &HashSet<Frequency>,
    rollup: Option<Frequency>,
) -> Result<Option<Frequency>, Violation> {
    if seen.len() > 1 {
        let mut codes: Vec<_> = seen.iter().map(|f| f.code()).collect();
        codes.sort_unstable();
        return Err(Violation::new(
            "freq",
            Rule::Required,
            format!(
                "the selection holds series of frequencies {}: name one (A, Q or M), since an \
                 aggregate combines series of one frequency",
                codes.join(", ")
            ),
        ));
    }
    let freq = seen.iter().next().copied();
    if let (Some(f), Some(r)) = (freq, rollup)
        && !f.rolls_up_to(r)
    {
        return Err(Violation::new(
            "rollup",
            Rule::OutOfRange,
            format!(
                "the selected {} periods cannot be rolled down to {}",
                f.code(),
                r.code()
            ),
        ));
    }
    Ok(freq)
}

/// The cells as published: small cells of reporters the viewer may not see suppressed, the
/// top N kept of each unit if asked, in key order, then the totals per unit if asked (each
/// suppressed too when it would give a suppressed cell away).
fn publish(index: &Index, q: &Query, grouped: Grouped, t: Thresholds) -> Cells {
    let width = q.group_by.len() + 1;
    let mut names = Naming {
        index,
        names: Names::default(),
        codes: HashMap::new(),
        labels: vec![None; grouped.labels.len()],
        visible: grouped.visible,
        thresholds: t,
    };

    let mut keys: Vec<u32> = Vec::with_capacity(grouped.cells.len() * width);
    let mut cells: Vec<Measures> = Vec::with_capacity(grouped.cells.len());
    let mut per_unit: HashMap<u32, (Acc, bool)> = HashMap::new();
    for (k, acc) in grouped.cells {
        let (unit, parts) = k[..width].split_last().unwrap_or((&0, &[]));
        for (i, &id) in parts.iter().enumerate() {
            keys.push(match q.group_by.get(i) {
                Some(Dimension::TimePeriod) => names.label(id, &grouped.labels),
                _ => names.code(id),
            });
        }
        keys.push(names.code(*unit));
        let m = names.measures(&acc, false);
        let slot = per_unit.entry(*unit).or_default();
        slot.0.merge(&acc);
        slot.1 |= m.suppressed;
        cells.push(m);
    }
    let total_id = names.names.id(TOTAL);
    let mut totals: Vec<(u32, Measures)> = Vec::new();
    if q.totals {
        for (unit, (acc, any_suppressed)) in per_unit {
            // Secondary suppression: the total minus the visible cells would give a
            // suppressed one away.
            let m = if any_suppressed {
                names.withheld(true)
            } else {
                names.measures(&acc, true)
            };
            totals.push((names.code(unit), m));
        }
    }
    let (names, ranks) = names.names.finish();
    let all = Cells {
        width,
        keys,
        measures: cells,
        names,
        ranks,
    };
    let mut order: Vec<usize> = (0..all.len()).collect();
    if let Some(n) = q.top_n {
        order.retain(|&i| !all.measures[i].suppressed);
        order.sort_unstable_by(|&a, &b| {
            all.measures[b]
                .quantity
                .cmp(&all.measures[a].quantity)
                .then_with(|| all.cmp_without(None, a, b))
        });
        let mut kept: HashMap<u32, u32> = HashMap::new();
        order.retain(|&i| {
            let count = kept.entry(all.key(i)[width - 1]).or_default();
            *count += 1;
            *count <= n
        });
    }
    order.sort_unstable_by(|&a, &b| all.cmp_without(None, a, b));
    let mut out = all;
    out.arrange(order);
    totals.sort_by_key(|(unit, _)| out.ranks[*unit as usize]);
    for (unit, m) in totals {
        out.keys.extend(std::iter::repeat_n(total_id, width - 1));
        out.keys.push(unit);
        out.measures.push(m);
    }
    out
}

pub(super) fn rows<'a>(index: &'a Index, sub: &Sub) -> &'a [Row] {
    let first = sub.first as usize;
    &index.rows[first..first + sub.len as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(n: u32) -> Cells {
        let mut names = Names::default();
        let ids: Vec<u32> = (0..n).map(|i| names.id(&format!("C{i}"))).collect();
        let (names, ranks) = names.finish();
        Cells {
            width: 2,
            keys: ids.iter().flat_map(|&i| [i, i]).collect(),
            measures: (0..n)
                .map(|i| Measures {
                    quantity: Some(i128::from(i)),
                    n_seizures: None,
                    n_reporters: i,
                    obs_status: 0,
                    conf_status: 0,
                    suppressed: false,
                    total: false,
                })
                .collect(),
            names,
            ranks,
        }
    }

    /// A permutation applied in place, cycle by cycle, moves each cell's key and measures
    /// together; a selection keeps only the cells named, in their order.
    #[test]
    fn cells_are_arranged_whole() {
        let orders: [&[usize]; 4] = [
            &[0, 1, 2, 3, 4, 5],
            &[5, 4, 3, 2, 1, 0],
            &[1, 2, 0, 4, 5, 3],
            &[2, 0, 1, 3, 5, 4],
        ];
        for order in orders {
            let mut c = cells(6);
            c.arrange(order.to_vec());
            for (at, &from) in order.iter().enumerate() {
                let cell = c.get(at);
                assert_eq!(cell.key, [format!("C{from}")], "{order:?}");
                assert_eq!(cell.unit_measure, format!("C{from}"));
                assert_eq!(cell.n_reporters, from as u32);
            }
        }
        let mut c = cells(6);
        c.arrange(vec![4, 1]);
        assert_eq!(c.len(), 2);
        assert_eq!((c.get(0).n_reporters, c.get(1).n_reporters), (4, 1));
    }

    /// Leaving TIME_PERIOD out of the comparison gathers each series' cells whatever the
    /// order of the rows (grouped by TIME_PERIOD first), and a stable sort keeps its periods
    /// in order: what SDMX-ML in series writes.
    #[test]
    fn series_gather_their_cells_whatever_the_order_of_the_rows() {
        let mut names = Names::default();
        // Keys (TIME_PERIOD, REF_AREA, unit), sorted as an answer is: by period first.
        let rows = [("2020", "KAZ"), ("2020", "UZB"), ("2021", "KAZ")];
        let keys: Vec<u32> = rows
            .iter()
            .flat_map(|(year, area)| [names.id(year), names.id(area), names.id("KG")])
            .collect();
        let (names, ranks) = names.finish();
        let measures = vec![cells(1).measures[0]; rows.len()];
        let c = Cells {
            width: 3,
            keys,
            measures,
            names,
            ranks,
        };
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by(|&a, &b| c.cmp_without(Some(0), a, b));
        let written: Vec<(String, String)> = order
            .iter()
            .map(|&i| {
                let cell = c.get(i);
                (cell.key[1].clone(), cell.key[0].clone())
            })
            .collect();
        let pair = |a: &str, y: &str| (a.to_owned(), y.to_owned());
        assert_eq!(
            written,
            [
                pair("KAZ", "2020"),
                pair("KAZ", "2021"),
                pair("UZB", "2020")
            ]
        );
    }

    /// Ranks order ids as their names sort, so that comparing keys by rank is comparing them
    /// by name.
    #[test]
    fn ranks_sort_as_names() {
        let mut names = Names::default();
        for n in ["KGZ", "AFG", "_T", "2019-Q2", "2019", "KAZ"] {
            names.id(n);
        }
        assert_eq!(names.id("AFG"), 1, "a name is given one id");
        let (names, ranks) = names.finish();
        let mut by_rank: Vec<usize> = (0..names.len()).collect();
        by_rank.sort_by_key(|&i| ranks[i]);
        let sorted: Vec<&str> = by_rank.iter().map(|&i| &*names[i]).collect();
        assert_eq!(sorted, ["2019", "2019-Q2", "AFG", "KAZ", "KGZ", "_T"]);
    }
}
