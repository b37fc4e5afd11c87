//! An aggregate query, checked: every code known, every dimension one of the dataflow's.

use std::{collections::BTreeSet, fmt};

use time::Date;

use crate::{
    proto::{AggregateQuery, aggregate_query::AsOf as ProtoAsOf},
    schema::{CodeList, CodeLists, Dataflow, Echo, Frequency, Period, Rule, Violation},
};

/// A dimension an aggregate can be grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// The reporter.
    RefArea,
    /// The period, rolled up to the query's roll-up frequency.
    TimePeriod,
    /// The drug.
    Drug,
    /// The drug's CL_DRUG group.
    DrugGroup,
    /// The transport mode.
    TransportMode,
    /// The observation status.
    ObsStatus,
    /// ROUTES: origin.
    OriginArea,
    /// ROUTES: departure.
    DepartureArea,
    /// ROUTES: the transit path.
    TransitArea,
    /// ROUTES: destination.
    DestinationArea,
}

impl Dimension {
    pub(super) const ALL: [Dimension; 10] = [
        Self::RefArea,
        Self::TimePeriod,
        Self::Drug,
        Self::DrugGroup,
        Self::TransportMode,
        Self::ObsStatus,
        Self::OriginArea,
        Self::DepartureArea,
        Self::TransitArea,
        Self::DestinationArea,
    ];

    /// The SDMX concept id.
    pub fn id(self) -> &'static str {
        match self {
            Self::RefArea => "REF_AREA",
            Self::TimePeriod => "TIME_PERIOD",
            Self::Drug => "DRUG",
            Self::DrugGroup => "DRUG_GROUP",
            Self::TransportMode => "TRANSPORT_MODE",
            Self::ObsStatus => "OBS_STATUS",
            Self::OriginArea => "ORIGIN_AREA",
            Self::DepartureArea => "DEPARTURE_AREA",
            Self::TransitArea => "TRANSIT_AREA",
            Self::DestinationArea => "DESTINATION_AREA",
        }
    }

    fn routes_only(self) -> bool {
        matches!(
            self,
            Self::OriginArea | Self::DepartureArea | Self::TransitArea | Self::DestinationArea
        )
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Which state of the data a query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// The latest checkpoint.
    Latest,
    /// The log of this many entries.
    TreeSize(u64),
    /// The latest checkpoint signed at or before this time (Unix milliseconds).
    Time(i64),
}

/// Most `group_by` entries: every dimension and UNIT_MEASURE once, with room for repeats.
const MAX_GROUP_BY: usize = 2 * (Dimension::ALL.len() + 1);

/// A checked aggregate query. Built only by [`Query::from_request`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Query {
    /// Dataflow.
    pub dataflow: Dataflow,
    /// Frequency of the series combined; `None`: the one frequency of the selected series.
    pub freq: Option<Frequency>,
    /// Frequency periods are rolled up to; `None`: no roll-up.
    pub rollup: Option<Frequency>,
    /// Periods starting on or after this day.
    pub from: Option<Date>,
    /// Periods ending on or before this day.
    pub to: Option<Date>,
    /// Reporter filter.
    pub ref_area: Option<BTreeSet<String>>,
    /// Drug filter, groups expanded to their drugs.
    pub drug: Option<BTreeSet<String>>,
    /// Transport mode filter.
    pub transport_mode: Option<BTreeSet<String>>,
    /// Origin filter.
    pub origin_area: Option<BTreeSet<String>>,
    /// Transit filter: routes through any of these.
    pub transit_area: Option<BTreeSet<String>>,
    /// Destination filter.
    pub destination_area: Option<BTreeSet<String>>,
    /// Observation status filter.
    pub obs_status: Option<BTreeSet<String>>,
    /// Unit filter.
    pub unit_measure: Option<BTreeSet<String>>,
    /// Group-by dimensions, in order, without repeats.
    pub group_by: Vec<Dimension>,
    /// Add a total row per unit.
    pub totals: bool,
    /// Keep the N largest cells per unit.
    pub top_n: Option<u32>,
    /// Which state of the data.
    pub as_of: AsOf,
}

impl Query {
    /// Checks a request, collecting every problem.
    pub fn from_request(q: &AggregateQuery, lists: &CodeLists) -> Result<Self, Vec<Violation>> {
        let mut v: Vec<Violation> = Vec::new();
        let dataflow = Dataflow::from_id(&q.dataflow.to_ascii_uppercase());
        if dataflow.is_none() {
            v.push(Violation::new(
                "dataflow",
                Rule::UnknownCode,
                format!("{} is not SEIZURES or ROUTES", Echo(&q.dataflow)),
            ));
        }
        let (freq, rollup) = frequencies(q, &mut v);
        let from = period_edge(&mut v, "period_from", &q.period_from, Period::start);
        let to = period_edge(&mut v, "period_to", &q.period_to, Period::end);

        let ref_area = codes("ref_area", &q.ref_area, &lists.area, &mut v);
        let drug = codes("drug", &q.drug, &lists.drug, &mut v).map(|set| drugs(set, lists));
        let transport_mode = codes(
            "transport_mode",
            &q.transport_mode,
            &lists.transport_mode,
            &mut v,
        );
        let origin_area = codes("origin_area", &q.origin_area, &lists.area, &mut v);
        let transit_area = codes("transit_area", &q.transit_area, &lists.area, &mut v);
        let destination_area = codes("destination_area", &q.destination_area, &lists.area, &mut v);
        let obs_status = codes("obs_status", &q.obs_status, &lists.obs_status, &mut v);
        let unit_measure = codes("unit_measure", &q.unit_measure, &lists.unit_measure, &mut v);

        let group_by = group_by(q, dataflow, &mut v);
        if dataflow == Some(Dataflow::Seizures) {
            for (field, given) in [
                ("origin_area", &origin_area),
                ("transit_area", &transit_area),
                ("destination_area", &destination_area),
            ] {
                if given.is_some() {
                    v.push(Violation::new(
                        field,
                        Rule::NotInDataflow,
                        format!("{} is not a dimension of SEIZURES", field.to_uppercase()),
                    ));
                }
            }
        }
        let as_of = as_of(q, &mut v);

        match (dataflow, v.is_empty()) {
            (Some(dataflow), true) => Ok(Self {
                dataflow,
                freq,
                rollup,
                from,
                to,
                ref_area,
                drug,
                transport_mode,
                origin_area,
                transit_area,
                destination_area,
                obs_status,
                unit_measure,
                group_by,
                totals: q.totals,
                top_n: (q.top_n > 0).then_some(q.top_n),
                as_of,
            }),
            _ => Err(v),
        }
    }
}

/// FREQ (A, Q or M, when given) and the roll-up, which the frequency must reach.
fn frequencies(
    q: &AggregateQuery,
    v: &mut Vec<Violation>,
) -> (Option<Frequency>, Option<Frequency>) {
    let freq = match q.freq.to_ascii_uppercase().as_str() {
        "" => None,
        f => Frequency::from_code(f).or_else(|| {
            v.push(Violation::new(
                "freq",
                Rule::UnknownCode,
                format!("{} is not A, Q or M", Echo(&q.freq)),
            ));
            None
        }),
    };
    let rollup = match q.rollup.to_ascii_uppercase().as_str() {
        "" => None,
        r => match Frequency::from_code(r) {
            Some(r) if freq.is_none_or(|f| f.rolls_up_to(r)) => Some(r),
            Some(r) => {
                v.push(Violation::new(
                    "rollup",
                    Rule::OutOfRange,
                    format!("{} periods cannot be rolled down to {}", q.freq, r.code()),
                ));
                None
            }
            None => {
                v.push(Violation::new(
                    "rollup",
                    Rule::UnknownCode,
                    format!("{} is not Q or A", Echo(&q.rollup)),
                ));
                None
            }
        },
    };
    (freq, rollup)
}

/// The first or last day (`edge`) of the period `text` names, when given.
fn period_edge(
    v: &mut Vec<Violation>,
    field: &str,
    text: &str,
    edge: fn(Period) -> Date,
) -> Option<Date> {
    match text {
        "" => None,
        t => match Period::parse(t) {
            Ok(p) => Some(edge(p)),
            Err(e) => {
                v.push(Violation::new(field, Rule::PeriodMalformed, e.to_string()));
                None
            }
        },
    }
}

/// A code-list filter: the codes of `list` it names, each once (`None` when it names none).
fn codes(
    field: &str,
    values: &[String],
    list: &CodeList,
    v: &mut Vec<Violation>,
) -> Option<BTreeSet<String>> {
    if values.is_empty() {
        return None;
    }
    // A filter names each code once at most: more values than the list has codes is
    // refused before any is looked at (and before the access trail records them).
    if values.len() > list.codes().len() {
        v.push(Violation::new(
            field,
            Rule::OutOfRange,
            format!(
                "{} values; a filter names at most the {} codes of {list}",
                values.len(),
                list.codes().len()
            ),
        ));
        return None;
    }
    let mut set = BTreeSet::new();
    for (i, value) in values.iter().enumerate() {
        let upper = value.to_ascii_uppercase();
        let code = if value.starts_with('_') || list.get(value).is_some() {
            value.clone()
        } else {
            upper
        };
        match list.get(&code) {
            Some(_) => {
                set.insert(code);
            }
            None => v.push(Violation::new(
                format!("{field}[{i}]"),
                Rule::UnknownCode,
                format!("{} is not in {list}", Echo(value)),
            )),
        }
    }
    Some(set)
}

/// A drug filter with each group standing for its drugs.
fn drugs(set: BTreeSet<String>, lists: &CodeLists) -> BTreeSet<String> {
    set.into_iter()
        .flat_map(|d| {
            let members: Vec<String> = lists
                .drug
                .codes()
                .iter()
                .filter(|c| c.parent.as_deref() == Some(d.as_str()))
                .map(|c| c.id.clone())
                .collect();
            if members.is_empty() { vec![d] } else { members }
        })
        .collect()
}

/// The dimensions to group by: at most [`MAX_GROUP_BY`] names, each a dimension of the
/// dataflow, each kept once (UNIT_MEASURE is always part of the key).
fn group_by(
    q: &AggregateQuery,
    dataflow: Option<Dataflow>,
    v: &mut Vec<Violation>,
) -> Vec<Dimension> {
    let mut group_by = Vec::new();
    if q.group_by.len() > MAX_GROUP_BY {
        v.push(Violation::new(
            "group_by",
            Rule::OutOfRange,
            format!(
                "{} dimensions; at most {MAX_GROUP_BY} (there are {} and UNIT_MEASURE)",
                q.group_by.len(),
                Dimension::ALL.len()
            ),
        ));
    }
    for (i, name) in q.group_by.iter().take(MAX_GROUP_BY).enumerate() {
        let upper = name.trim().to_ascii_uppercase();
        if upper == "UNIT_MEASURE" {
            continue; // always part of the key
        }
        match Dimension::ALL.into_iter().find(|d| d.id() == upper) {
            Some(d) if d.routes_only() && dataflow == Some(Dataflow::Seizures) => {
                v.push(Violation::new(
                    format!("group_by[{i}]"),
                    Rule::NotInDataflow,
                    format!("{d} is not a dimension of SEIZURES"),
                ))
            }
            Some(d) if !group_by.contains(&d) => group_by.push(d),
            Some(_) => {}
            None => v.push(Violation::new(
                format!("group_by[{i}]"),
                Rule::UnknownCode,
                format!(
                    "{} is not a dimension ({}, UNIT_MEASURE)",
                    Echo(name),
                    Dimension::ALL.map(Dimension::id).join(", ")
                ),
            )),
        }
    }
    group_by
}

/// The tree size or time the answer reflects.
fn as_of(q: &AggregateQuery, v: &mut Vec<Violation>) -> AsOf {
    match &q.as_of {
        None => AsOf::Latest,
        Some(ProtoAsOf::AsOfTreeSize(0)) => {
            v.push(Violation::new(
                "as_of_tree_size",
                Rule::OutOfRange,
                "a tree size is at least 1",
            ));
            AsOf::Latest
        }
        Some(ProtoAsOf::AsOfTreeSize(n)) => AsOf::TreeSize(*n),
        Some(ProtoAsOf::AsOfTime(t)) => AsOf::Time(
            t.seconds
                .saturating_mul(1000)
                .saturating_add(i64::from(t.nanos / 1_000_000)),
        ),
    }
}
