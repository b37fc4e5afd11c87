//! The SDMX structures of the schema: one description of every dataflow's components, from
//! which the structure messages and every SDMX export are written, and whose code lists are
//! the ones the validator checks against.
//!
//! Four dataflows of agency [`AGENCY`]: `SEIZURES` and `ROUTES` are what members submit;
//! `SEIZURES_AGG` and `ROUTES_AGG` are the aggregates analysts query, a different dataset
//! with its own measure N_REPORTERS and totals.
//!
//! # The transit path
//! A route's transit countries form one dimension, TRANSIT_PATH, whose value is the path
//! code: the CL_AREA codes in travel order joined by `-` (`TJK-KGZ`), `_Z` for a direct route
//! and, in aggregates, `_T` for all routes. SDMX 3.0 lets measures and attributes take several
//! values but never a dimension, so a list in one cell is no key. An attribute would not tell
//! two routes apart, and one dimension per position would fix the number of positions in the
//! structure (the gateway's `max_transit` is a setting), make every key that long, and turn
//! "routes through UZB" into a condition over every position. The path code keeps one series
//! per route, stays a valid key part (no `.` or `+`), and each of its parts is a CL_AREA code.
//!
//! # One measure
//! SDMX 2.1, which `sdmx1` and most tools read, has one measure per structure and always calls
//! it OBS_VALUE: here it is the quantity (concept QUANTITY, in UNIT_MEASURE). N_SEIZURES and, in
//! aggregates, N_REPORTERS are attributes of the observation, so that a reader takes the
//! quantity as the value and keeps the counts beside it. The same structure is valid SDMX 3.0,
//! so SDMX-CSV 2.0 uses these ids too.
//!
//! # Aggregates
//! An aggregate cell has the full key of its dataflow: a dimension the query did not group by
//! is `_T` (all), DRUG_GROUP is written as the group's code in DRUG (CL_DRUG is a hierarchy),
//! a group-by OBS_STATUS is the dimension REPORTED_STATUS (OBS_STATUS stays the cell's
//! attribute, `Q` when suppressed), and TIME_PERIOD is the rolled-up period, or, when the
//! periods were summed, the SDMX time range they span (`2019-01-01/P6Y`).

use std::fmt;

use time::Date;

use super::{CodeList, CodeLists, Dataflow, NOT_APPLICABLE, Period, TOTAL};

/// The maintenance agency of every structure.
pub const AGENCY: &str = "FOCALGATE";

/// The version of the dataflows, their data structure definitions and the concept scheme.
pub const VERSION: &str = "1.0";

/// The concept scheme's id.
pub const CONCEPT_SCHEME: &str = "CS_FOCALGATE";

/// What the transit path code joins its areas with.
pub const PATH_SEPARATOR: char = '-';

/// A dataflow as SDMX sees it: what is submitted, or the aggregate analysts query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    /// Observations as members submit them.
    Submissions(Dataflow),
    /// Aggregates of the submissions, as `Statistics.Query` computes them.
    Aggregates(Dataflow),
}

impl Flow {
    /// Every dataflow, submissions first.
    pub const ALL: [Flow; 4] = [
        Flow::Submissions(Dataflow::Seizures),
        Flow::Submissions(Dataflow::Routes),
        Flow::Aggregates(Dataflow::Seizures),
        Flow::Aggregates(Dataflow::Routes),
    ];

    /// The dataflow id: `SEIZURES`, `ROUTES`, `SEIZURES_AGG`, `ROUTES_AGG`.
    pub fn id(self) -> &'static str {
        match self {
            Self::Submissions(Dataflow::Seizures) => "SEIZURES",
            Self::Submissions(Dataflow::Routes) => "ROUTES",
            Self::Aggregates(Dataflow::Seizures) => "SEIZURES_AGG",
            Self::Aggregates(Dataflow::Routes) => "ROUTES_AGG",
        }
    }

    /// The dataflow of this id.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.id() == id)
    }

    /// The id of its data structure definition: `DSD_` and the dataflow id.
    pub fn dsd_id(self) -> String {
        format!("DSD_{}", self.id())
    }

    /// The submission dataflow it is made of.
    pub fn dataflow(self) -> Dataflow {
        match self {
            Self::Submissions(d) | Self::Aggregates(d) => d,
        }
    }

    /// Its English name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Submissions(Dataflow::Seizures) => "Drug seizures",
            Self::Submissions(Dataflow::Routes) => "Drug trafficking routes",
            Self::Aggregates(Dataflow::Seizures) => "Drug seizures, aggregated over reporters",
            Self::Aggregates(Dataflow::Routes) => {
                "Drug trafficking routes, aggregated over reporters"
            }
        }
    }

    /// `FOCALGATE:SEIZURES_AGG(1.0)`: how SDMX-CSV's STRUCTURE_ID names it.
    pub fn reference(self) -> String {
        format!("{AGENCY}:{}({VERSION})", self.id())
    }

    /// Its components in structure order: dimensions (TIME_PERIOD last), the measure,
    /// attributes.
    pub fn components(self) -> Vec<Component> {
        use Representation::{Codes, Decimal, Integer};
        let aggregate = matches!(self, Self::Aggregates(_));
        let dim = |id, list| Component::new(id, Role::Dimension, Codes(list), true);
        let mut c = vec![
            dim("FREQ", List::Freq),
            dim("REF_AREA", List::Area),
            dim("DRUG", List::Drug),
        ];
        if self.dataflow() == Dataflow::Routes {
            c.extend([
                dim("ORIGIN_AREA", List::Area),
                dim("DEPARTURE_AREA", List::Area),
                Component::new(
                    "TRANSIT_PATH",
                    Role::Dimension,
                    Representation::Text {
                        pattern: if aggregate {
                            TRANSIT_PATH_PATTERN_AGGREGATE
                        } else {
                            TRANSIT_PATH_PATTERN
                        },
                    },
                    true,
                ),
                dim("DESTINATION_AREA", List::Area),
            ]);
        }
        c.push(dim("TRANSPORT_MODE", List::TransportMode));
        if aggregate {
            c.push(dim("REPORTED_STATUS", List::ObsStatus));
        }
        c.extend([
            dim("UNIT_MEASURE", List::UnitMeasure),
            Component::new(
                "TIME_PERIOD",
                Role::TimeDimension,
                Representation::TimePeriod,
                true,
            ),
            Component {
                concept: "QUANTITY",
                ..Component::new("OBS_VALUE", Role::Measure, Decimal, false)
            },
            Component::new("N_SEIZURES", Role::Attribute, Integer, false),
        ]);
        if aggregate {
            c.push(Component::new(
                "N_REPORTERS",
                Role::Attribute,
                Integer,
                false,
            ));
        }
        c.extend([
            Component::new("OBS_STATUS", Role::Attribute, Codes(List::ObsStatus), true),
            Component::new(
                "CONF_STATUS",
                Role::Attribute,
                Codes(List::ConfStatus),
                true,
            ),
        ]);
        if !aggregate {
            c.extend([
                Component::new(
                    "EMBARGO_TIME",
                    Role::Attribute,
                    Representation::DateTime,
                    false,
                ),
                Component::new("COMMENT", Role::Attribute, Representation::Comment, false),
            ]);
        }
        c
    }

    /// The ids of its dimensions, in key order (TIME_PERIOD last).
    pub fn dimensions(self) -> Vec<&'static str> {
        self.components()
            .into_iter()
            .filter(|c| c.role.is_dimension())
            .map(|c| c.id)
            .collect()
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A transit path code: areas in travel order, as in [`Flow`]'s TRANSIT_PATH.
pub const TRANSIT_PATH_PATTERN: &str = "_Z|([A-Z]{3}|_U)(-([A-Z]{3}|_U))*";

/// A transit path code of an aggregate: also `_T`, all routes.
pub const TRANSIT_PATH_PATTERN_AGGREGATE: &str = "_T|_Z|([A-Z]{3}|_U)(-([A-Z]{3}|_U))*";

/// The path code of transit areas in travel order: joined by `-`, `_Z` when there are none.
pub fn transit_path<S: AsRef<str>>(areas: &[S]) -> String {
    if areas.is_empty() {
        return NOT_APPLICABLE.to_owned();
    }
    let parts: Vec<&str> = areas.iter().map(AsRef::as_ref).collect();
    parts.join(&PATH_SEPARATOR.to_string())
}

/// The transit areas of a path code, in travel order; `_Z` is none.
pub fn transit_areas(path: &str) -> Vec<&str> {
    if path == NOT_APPLICABLE || path.is_empty() {
        Vec::new()
    } else {
        path.split(PATH_SEPARATOR).collect()
    }
}

/// What part a component plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Part of the series key.
    Dimension,
    /// The time dimension, TIME_PERIOD.
    TimeDimension,
    /// A value observed.
    Measure,
    /// Describes an observation.
    Attribute,
}

impl Role {
    /// A key dimension, time included.
    pub fn is_dimension(self) -> bool {
        matches!(self, Self::Dimension | Self::TimeDimension)
    }
}

/// What values a component takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    /// A code of one of the schema's code lists.
    Codes(List),
    /// An SDMX observational time period (a reporting period or a time range).
    TimePeriod,
    /// A non-negative whole number.
    Integer,
    /// An exact decimal.
    Decimal,
    /// An RFC 3339 date and time.
    DateTime,
    /// Free text, short.
    Comment,
    /// Text matching a regular expression (XML Schema syntax, whole value).
    Text {
        /// The expression.
        pattern: &'static str,
    },
}

/// A component of a data structure definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Component {
    /// Its id: its concept's, but for the measure, which SDMX 2.1 calls OBS_VALUE.
    pub id: &'static str,
    /// The concept it stands for.
    pub concept: &'static str,
    /// Dimension, measure or attribute.
    pub role: Role,
    /// Its values.
    pub representation: Representation,
    /// Whether every observation has it (dimensions always do).
    pub mandatory: bool,
}

impl Component {
    const fn new(
        id: &'static str,
        role: Role,
        representation: Representation,
        mandatory: bool,
    ) -> Self {
        Self {
            id,
            concept: id,
            role,
            representation,
            mandatory,
        }
    }

    /// Its concept's English name.
    pub fn name(&self) -> &'static str {
        concept_name(self.concept).unwrap_or(self.concept)
    }
}

/// One of the schema's code lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum List {
    /// CL_AREA.
    Area,
    /// CL_FREQ.
    Freq,
    /// CL_DRUG.
    Drug,
    /// CL_UNIT_MEASURE.
    UnitMeasure,
    /// CL_TRANSPORT_MODE.
    TransportMode,
    /// CL_OBS_STATUS.
    ObsStatus,
    /// CL_CONF_STATUS.
    ConfStatus,
}

impl List {
    /// Every list, in the order structure messages give them.
    pub const ALL: [List; 7] = [
        List::Area,
        List::ConfStatus,
        List::Drug,
        List::Freq,
        List::ObsStatus,
        List::TransportMode,
        List::UnitMeasure,
    ];

    /// The list itself, as loaded (built in or replaced by the deployment).
    pub fn of(self, lists: &CodeLists) -> &CodeList {
        match self {
            Self::Area => &lists.area,
            Self::Freq => &lists.freq,
            Self::Drug => &lists.drug,
            Self::UnitMeasure => &lists.unit_measure,
            Self::TransportMode => &lists.transport_mode,
            Self::ObsStatus => &lists.obs_status,
            Self::ConfStatus => &lists.conf_status,
        }
    }
}

/// Every concept of [`CONCEPT_SCHEME`]: (id, English name).
pub const CONCEPTS: [(&str, &str); 18] = [
    ("FREQ", "Frequency"),
    ("REF_AREA", "Reporting area"),
    ("DRUG", "Drug or precursor"),
    ("ORIGIN_AREA", "Area of origin"),
    ("DEPARTURE_AREA", "Area of departure"),
    ("TRANSIT_PATH", "Transit areas, in travel order"),
    ("DESTINATION_AREA", "Area of destination"),
    ("TRANSPORT_MODE", "Transport mode"),
    (
        "REPORTED_STATUS",
        "Observation status of the observations summed",
    ),
    ("UNIT_MEASURE", "Unit of measure"),
    ("TIME_PERIOD", "Time period"),
    ("QUANTITY", "Quantity seized"),
    ("N_SEIZURES", "Number of seizures"),
    ("N_REPORTERS", "Number of reporting areas"),
    ("OBS_STATUS", "Observation status"),
    ("CONF_STATUS", "Confidentiality status"),
    ("EMBARGO_TIME", "Embargo time"),
    ("COMMENT", "Comment"),
];

fn concept_name(id: &str) -> Option<&'static str> {
    CONCEPTS.iter().find(|(c, _)| *c == id).map(|(_, n)| *n)
}

/// The SDMX time range from the first day of `start` to the last of `end`, both in whole
/// months: `2019-01-01/P6Y`, `2024-01-01/P5M`.
pub fn time_range(start: Date, end: Date) -> String {
    let months = (end.year() - start.year()) * 12 + i32::from(end.month() as u8)
        - i32::from(start.month() as u8)
        + 1;
    let duration = if months % 12 == 0 {
        format!("P{}Y", months / 12)
    } else {
        format!("P{months}M")
    };
    format!("{start}/{duration}")
}

/// Where each dimension of an aggregate dataflow finds its value in the rows of one answer:
/// worked out once from the answer's header, then applied to each row.
#[derive(Clone, Debug)]
pub struct AggregateKeys {
    parts: Vec<KeyPart>,
    /// The frequency of rows whose TIME_PERIOD is not a period of theirs.
    freq: String,
    /// The TIME_PERIOD of rows that sum over periods.
    time_range: String,
    /// The position of TIME_PERIOD in the rows' keys, if grouped by.
    time: Option<usize>,
}

#[derive(Clone, Debug)]
enum KeyPart {
    Freq,
    TimePeriod,
    /// A coded value at this position of the row's key (`_Z` when empty), or `_T`.
    Coded(Option<usize>),
    /// The transit path at this position of the row's key (`TJK;KGZ`), or `_T`.
    Path(Option<usize>),
    /// The row's unit.
    Unit,
}

impl AggregateKeys {
    /// The keys of the rows of an answer grouped by `dimensions` (their ids, in the rows' key
    /// order), of frequency `freq` over `time_range`, under [`Flow::Aggregates`] of
    /// `dataflow`.
    pub fn new(dataflow: Dataflow, dimensions: &[String], freq: &str, time_range: &str) -> Self {
        let at = |id: &str| dimensions.iter().position(|d| d == id);
        let parts = Flow::Aggregates(dataflow)
            .dimensions()
            .into_iter()
            .map(|d| match d {
                "FREQ" => KeyPart::Freq,
                "TIME_PERIOD" => KeyPart::TimePeriod,
                "DRUG" => KeyPart::Coded(at("DRUG").or(at("DRUG_GROUP"))),
                "TRANSIT_PATH" => KeyPart::Path(at("TRANSIT_AREA")),
                "REPORTED_STATUS" => KeyPart::Coded(at("OBS_STATUS")),
                "UNIT_MEASURE" => KeyPart::Unit,
                other => KeyPart::Coded(at(other)),
            })
            .collect();
        Self {
            parts,
            freq: freq.to_owned(),
            time_range: time_range.to_owned(),
            time: at("TIME_PERIOD"),
        }
    }

    /// The full key, in the order of [`Flow::dimensions`], of the row with the key `key`
    /// (in the answer's order), the unit `unit`, a total when `total`.
    pub fn key(&self, key: &[String], unit: &str, total: bool) -> Vec<String> {
        let value = |i: Option<usize>| i.and_then(|i| key.get(i)).map(String::as_str);
        let coded = |v: Option<&str>| match v {
            None => TOTAL.to_owned(),
            Some("") => NOT_APPLICABLE.to_owned(),
            Some(v) => v.to_owned(),
        };
        let period = value(self.time)
            .filter(|p| !total && *p != TOTAL)
            .and_then(|p| Period::parse(p).ok());
        self.parts
            .iter()
            .map(|part| match part {
                KeyPart::Freq => {
                    period.map_or_else(|| self.freq.clone(), |p| p.frequency().code().to_owned())
                }
                KeyPart::TimePeriod => {
                    period.map_or_else(|| self.time_range.clone(), |p| p.to_string())
                }
                KeyPart::Coded(i) => coded(value(*i)),
                KeyPart::Path(i) => match value(*i) {
                    None | Some(TOTAL) => TOTAL.to_owned(),
                    Some(p) => {
                        transit_path(&p.split(';').filter(|a| !a.is_empty()).collect::<Vec<_>>())
                    }
                },
                KeyPart::Unit => coded(Some(unit)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn every_component_has_a_concept_and_every_coded_one_a_loaded_list() {
        let lists = CodeLists::builtin().unwrap();
        for flow in Flow::ALL {
            let c = flow.components();
            assert_eq!(c.last().unwrap().role, Role::Attribute);
            let time = c
                .iter()
                .position(|c| c.role == Role::TimeDimension)
                .unwrap();
            assert!(
                c[..time].iter().all(|c| c.role == Role::Dimension),
                "{flow}"
            );
            for comp in &c {
                assert!(concept_name(comp.concept).is_some(), "{flow}: {}", comp.id);
                if let Representation::Codes(l) = comp.representation {
                    assert!(!l.of(&lists).codes().is_empty());
                }
            }
            assert_eq!(Flow::from_id(flow.id()), Some(flow));
        }
        assert_eq!(
            Flow::Aggregates(Dataflow::Routes).reference(),
            "FOCALGATE:ROUTES_AGG(1.0)"
        );
    }

    #[test]
    fn transit_paths_are_codes_that_give_their_areas_back() {
        assert_eq!(transit_path(&["TJK", "KGZ"]), "TJK-KGZ");
        assert_eq!(transit_path::<&str>(&[]), "_Z");
        assert_eq!(transit_areas("TJK-KGZ"), ["TJK", "KGZ"]);
        assert!(transit_areas("_Z").is_empty());
    }

    #[test]
    fn time_ranges_are_whole_years_or_months() {
        assert_eq!(
            time_range(date!(2019 - 01 - 01), date!(2024 - 12 - 31)),
            "2019-01-01/P6Y"
        );
        assert_eq!(
            time_range(date!(2024 - 01 - 01), date!(2024 - 05 - 31)),
            "2024-01-01/P5M"
        );
        assert_eq!(
            time_range(date!(2024 - 04 - 01), date!(2024 - 06 - 30)),
            "2024-04-01/P3M"
        );
    }

    #[test]
    fn an_aggregate_cell_has_the_full_key_with_totals_and_ranges() {
        let dimensions: Vec<String> = ["DRUG_GROUP", "TIME_PERIOD", "TRANSIT_AREA"]
            .map(String::from)
            .to_vec();
        let keys = AggregateKeys::new(Dataflow::Routes, &dimensions, "Q", "2019-01-01/P2Y");
        let row: Vec<String> = ["OPIOIDS", "2019", "TJK;KGZ"].map(String::from).to_vec();
        assert_eq!(
            keys.key(&row, "KG", false),
            [
                "A", "_T", "OPIOIDS", "_T", "_T", "TJK-KGZ", "_T", "_T", "_T", "KG", "2019"
            ]
        );
        assert_eq!(
            keys.key(&vec!["_T".into(); 3], "", true),
            [
                "Q",
                "_T",
                "_T",
                "_T",
                "_T",
                "_T",
                "_T",
                "_T",
                "_T",
                "_Z",
                "2019-01-01/P2Y"
            ]
        );
        let direct: Vec<String> = ["OPIOIDS", "2019-Q2", ""].map(String::from).to_vec();
        let key = keys.key(&direct, "KG", false);
        assert_eq!((key[0].as_str(), key[5].as_str()), ("Q", "_Z"));
    }
}
