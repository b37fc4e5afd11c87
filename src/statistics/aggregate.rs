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
    pub cells: Vec<Cell>,
}

impl Answer {
    /// The number of suppressed cells (totals included).
    pub fn suppressed(&self) -> usize {
        self.cells.iter().filter(|c| c.suppressed).count()
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
        cells: publish(index, q, &grouped, t),
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

/// The selected rows, accumulated per cell.
struct Grouped {
    /// Per key (the group-by codes, then the unit), its accumulator.
    cells: HashMap<Box<[u32]>, Acc>,
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
    let mut key: Vec<u32> = Vec::with_capacity(q.group_by.len() + 1);
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
            key.clear();
            key.extend(q.group_by.iter().map(|d| match d {
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
            }));
            key.push(row.unit_measure);
            let (o, c) = (
                obs_ranks[row.obs_status as usize],
                conf_ranks[row.conf_status as usize],
            );
            match out.cells.get_mut(key.as_slice()) {
                Some(acc) => acc.add(row, reporter, o, c),
                None => {
                    let mut acc = Acc::default();
                    acc.add(row, reporter, o, c);
                    out.cells.insert(key.clone().into_boxed_slice(), acc);
                }
            }
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
fn publish(index: &Index, q: &Query, grouped: &Grouped, t: Thresholds) -> Vec<Cell> {
    let finish = |key: Vec<String>, unit: u32, acc: &Acc, total: bool| -> Cell {
        let exposed = acc.reporters.subset_of(&grouped.visible);
        let small = acc.n_seizures < t.min_seizures || acc.reporters.len() < t.min_reporters;
        let suppressed = !exposed && small;
        Cell {
            key,
            unit_measure: index.codes.name(unit).to_owned(),
            quantity: (!suppressed && acc.has_quantity).then_some(acc.quantity),
            n_seizures: (!suppressed && acc.has_n).then_some(acc.n_seizures),
            n_reporters: if suppressed { 0 } else { acc.reporters.len() },
            obs_status: if suppressed {
                "Q".into()
            } else {
                index.codes.name(acc.obs.1).to_owned()
            },
            conf_status: if suppressed {
                "A".into()
            } else {
                index.codes.name(acc.conf.1).to_owned()
            },
            suppressed,
            total,
        }
    };
    let name = |d: Option<&Dimension>, id: u32| match d {
        Some(Dimension::TimePeriod) => grouped.labels[id as usize].clone(),
        _ => index.codes.name(id).to_owned(),
    };

    let mut out: Vec<Cell> = Vec::with_capacity(grouped.cells.len());
    let mut per_unit: HashMap<u32, (Acc, bool)> = HashMap::new();
    for (k, acc) in &grouped.cells {
        let (unit, parts) = k.split_last().unwrap_or((&0, &[]));
        let key = parts
            .iter()
            .enumerate()
            .map(|(i, &id)| name(q.group_by.get(i), id))
            .collect();
        let cell = finish(key, *unit, acc, false);
        let slot = per_unit.entry(*unit).or_default();
        slot.0.merge(acc);
        slot.1 |= cell.suppressed;
        out.push(cell);
    }
    if let Some(n) = q.top_n {
        out.retain(|c| !c.suppressed);
        out.sort_by(|a, b| b.quantity.cmp(&a.quantity).then_with(|| a.key.cmp(&b.key)));
        let mut kept: HashMap<String, u32> = HashMap::new();
        out.retain(|c| {
            let count = kept.entry(c.unit_measure.clone()).or_default();
            *count += 1;
            *count <= n
        });
    }
    out.sort_by(|a, b| (&a.key, &a.unit_measure).cmp(&(&b.key, &b.unit_measure)));
    if q.totals {
        let mut units: Vec<_> = per_unit.into_iter().collect();
        units.sort_by(|a, b| index.codes.name(a.0).cmp(index.codes.name(b.0)));
        for (unit, (acc, any_suppressed)) in units {
            let key = vec![TOTAL.to_owned(); q.group_by.len()];
            let mut total = finish(key, unit, &acc, true);
            if any_suppressed && !total.suppressed {
                // Secondary suppression: the total minus the visible cells would give a
                // suppressed one away.
                total = Cell {
                    quantity: None,
                    n_seizures: None,
                    n_reporters: 0,
                    obs_status: "Q".into(),
                    conf_status: "A".into(),
                    suppressed: true,
                    ..total
                };
            }
            out.push(total);
        }
    }
    out
}

pub(super) fn rows<'a>(index: &'a Index, sub: &Sub) -> &'a [Row] {
    let first = sub.first as usize;
    &index.rows[first..first + sub.len as usize]
}
