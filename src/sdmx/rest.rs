//! SDMX REST requests, read into what the gateway answers: a structure selection, or a query
//! of a dataflow — the observations of `SEIZURES` / `ROUTES` as submitted, or the aggregates of
//! `SEIZURES_AGG` / `ROUTES_AGG` — and how to write its answer.
//!
//! Paths (under the API's root):
//!
//! | path                                                 | SDMX REST |
//! |------------------------------------------------------|-----------|
//! | `structure/{type}/{agency}/{id}/{version}`           | 2.x       |
//! | `{type}/{agency}/{id}/{version}`                     | 1.5       |
//! | `data/dataflow/{agency}/{id}/{version}/{key}`        | 2.x       |
//! | `data/{flowRef}/{key}/{providerRef}`                 | 1.5       |
//!
//! A key has one part per dimension but TIME_PERIOD, in structure order, separated by `.`; a
//! part is empty or `*` (every value, each its own series), codes joined by `+` or `,` (those
//! values, each its own series), or `_T` (summed over). A dimension asked for by value or
//! wildcard is grouped by; `_T` is not. FREQ names the frequency periods are rolled up to;
//! DRUG may name CL_DRUG groups (then DRUG holds the group). `c[COMPONENT]` filters
//! (`eq`, `ne`, `lt`, `le`, `gt`, `ge`; OR with `,`, AND with `+`) apply to the dimensions, with
//! ranges on TIME_PERIOD; `startPeriod`/`endPeriod` too. Extensions where SDMX has no word:
//! `freq` (the frequency of the series combined, when several exist), `top` (the N largest
//! cells per unit), `totals` (one `_T` row per unit). Of `SEIZURES` and `ROUTES` nothing is
//! grouped: a key part selects values, and `_T` is refused (there are no totals).

use std::collections::BTreeSet;

use super::{Artefact, Detail, Selection};
use crate::{
    proto::{AggregateQuery, aggregate_query::AsOf},
    schema::{
        CodeLists, Echo, Frequency, NOT_APPLICABLE, Period, TOTAL,
        structure::{AGENCY, CONCEPT_SCHEME, Flow, Representation, VERSION},
    },
};

/// Longest request target (path and query) read; longer ones are refused with 414.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;

/// Largest `limit`: more rows than any answer can have (answers are bounded by the cells of
/// the aggregate).
pub const MAX_LIMIT: u64 = 10_000_000;

/// Why a request is refused: the HTTP status and a readable reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct RestError {
    /// 400, 404, 406, 414 or 501.
    pub status: u16,
    /// What is wrong, naming the part of the request.
    pub message: String,
}

impl RestError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }

    fn unsupported(message: impl Into<String>) -> Self {
        Self::new(501, message)
    }
}

/// What a request asks.
#[derive(Clone, Debug)]
pub enum Route {
    /// Structures.
    Structure {
        /// Which.
        selection: Selection,
        /// How much of each.
        detail: Detail,
    },
    /// Data of a dataflow.
    Data(Box<DataRequest>),
}

/// A data request, read.
#[derive(Clone, Debug)]
pub struct DataRequest {
    /// The dataflow: submitted observations, or aggregates.
    pub flow: Flow,
    /// The query it is (for submitted observations, only its filters and `as_of` apply).
    pub query: AggregateQuery,
    /// Values of dimensions the query cannot select by (TRANSIT_PATH, DEPARTURE_AREA, `_Z`):
    /// the answer's rows are kept when their key has one of them, in each.
    pub select: Vec<(&'static str, BTreeSet<String>)>,
    /// Rows skipped.
    pub offset: u64,
    /// Most rows returned.
    pub limit: Option<u64>,
    /// `updatedAfter` (submitted observations only): series revised after this time, Unix ms.
    pub updated_after_ms: Option<i64>,
    /// `includeHistory` (submitted observations only): every revision, one dataset each with
    /// its period of validity.
    pub include_history: bool,
    /// How codes are written.
    pub labels: Labels,
    /// How TIME_PERIOD is written.
    pub time_format: TimeFormat,
    /// Whether attributes are written.
    pub attributes: bool,
    /// Whether the measure is written.
    pub measures: bool,
    /// SDMX-ML: in series (`dimensionAtObservation=TIME_PERIOD`, the default) or flat
    /// (`AllDimensions`).
    pub series: bool,
}

impl DataRequest {
    /// How its answer is written.
    pub fn options(&self) -> super::data::Options {
        super::data::Options {
            labels: self.labels,
            time_format: self.time_format,
            attributes: self.attributes,
            measures: self.measures,
            series: self.series,
        }
    }
}

/// SDMX-CSV's `labels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Labels {
    /// Codes only.
    Id,
    /// `CODE: Name`, and `ID: Name` in the header.
    Both,
    /// Names only.
    Name,
}

/// SDMX-CSV's `timeFormat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFormat {
    /// As SDMX reports it (`2024-Q1`).
    Original,
    /// As an ISO 8601 interval (`2024-01-01/P3M`).
    Normalized,
}

/// A response format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// SDMX-CSV 2.0.
    SdmxCsv,
    /// SDMX-ML 2.1 structure-specific data.
    StructureSpecific,
    /// SDMX-ML 2.1 structure message.
    StructureXml,
    /// SDMX-JSON 2.0 structure message.
    StructureJson,
    /// SDMX-JSON 2.0 data (aggregates).
    SdmxJson,
}

impl Format {
    /// Its media type, as the Content-Type of an answer.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::SdmxCsv => "application/vnd.sdmx.data+csv; version=2.0.0; charset=utf-8",
            Self::StructureSpecific => {
                "application/vnd.sdmx.structurespecificdata+xml; version=2.1; charset=utf-8"
            }
            Self::StructureXml => "application/vnd.sdmx.structure+xml; version=2.1; charset=utf-8",
            Self::StructureJson => {
                "application/vnd.sdmx.structure+json; version=2.0.0; charset=utf-8"
            }
            Self::SdmxJson => "application/vnd.sdmx.data+json; version=2.0.0; charset=utf-8",
        }
    }
}

/// The format of an answer to `route` for an `Accept` header (none: SDMX-ML); 406 when no
/// acceptable one is served.
pub fn negotiate(route: &Route, accept: Option<&str>) -> Result<Format, RestError> {
    let data = matches!(route, Route::Data(_));
    let accept = accept.unwrap_or("*/*");
    let mut ranges: Vec<(f32, usize, Format)> = Vec::new();
    for (i, range) in accept.split(',').enumerate().take(32) {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let mut q = 1.0f32;
        let mut version = None;
        for p in parts {
            if let Some(v) = p.strip_prefix("q=") {
                q = v.parse().unwrap_or(0.0);
            } else if let Some(v) = p.strip_prefix("version=") {
                version = Some(v.trim_matches('"'));
            }
        }
        if q > 0.0
            && let Some(format) = served(media, version, data)
        {
            ranges.push((q, i, format));
        }
    }
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges.first().map(|r| r.2).ok_or_else(|| {
        RestError::new(
            406,
            if data {
                "this API serves data as SDMX-CSV 2.0 (application/vnd.sdmx.data+csv;\
                 version=2.0.0), SDMX-JSON 2.0 (application/vnd.sdmx.data+json;version=2.0.0) \
                 and SDMX-ML 2.1 structure-specific data \
                 (application/vnd.sdmx.structurespecificdata+xml;version=2.1)"
            } else {
                "this API serves structures as SDMX-ML 2.1 \
                 (application/vnd.sdmx.structure+xml;version=2.1) and SDMX-JSON 2.0 \
                 (application/vnd.sdmx.structure+json;version=2.0.0)"
            },
        )
    })
}

fn served(media: &str, version: Option<&str>, data: bool) -> Option<Format> {
    let media = media.to_ascii_lowercase();
    let xml = if data {
        Format::StructureSpecific
    } else {
        Format::StructureXml
    };
    let v21 = version.is_none_or(|v| v == "2.1");
    match media.as_str() {
        "*/*" | "application/*" | "application/xml" | "text/xml" => Some(xml),
        "text/*" | "text/csv" | "application/vnd.sdmx.data+csv" if data => version
            .is_none_or(|v| v.starts_with("2.0"))
            .then_some(Format::SdmxCsv),
        "application/vnd.sdmx.structurespecificdata+xml" if data && v21 => Some(xml),
        "application/json" | "application/vnd.sdmx.data+json" if data => version
            .is_none_or(|v| v.starts_with("2.0"))
            .then_some(Format::SdmxJson),
        "application/vnd.sdmx.structure+xml" if !data && v21 => Some(xml),
        "application/json" | "application/vnd.sdmx.structure+json" if !data => version
            .is_none_or(|v| v.starts_with("2.0"))
            .then_some(Format::StructureJson),
        _ => None,
    }
}

/// The part of an SDMX REST request that a field of the aggregate query it was read into
/// comes from: what an error names, so that the caller recognises its own request
/// (`period_from` was `startPeriod`, `ref_area[2]` a value of REF_AREA in the key or in
/// `c[REF_AREA]`).
pub fn parameter(field: &str) -> String {
    let base = field.split_once('[').map_or(field, |(b, _)| b);
    match base {
        "period_from" => "startPeriod (or c[TIME_PERIOD])".into(),
        "period_to" => "endPeriod (or c[TIME_PERIOD])".into(),
        "as_of_time" | "as_of_tree_size" => "asOf".into(),
        "updated_after" => "updatedAfter".into(),
        "top_n" => "top".into(),
        "transit_area" => "transit".into(),
        "rollup" => "FREQ (the key's first part)".into(),
        "dataflow" => "flowRef".into(),
        "group_by" => "key".into(),
        "obs_status" => "REPORTED_STATUS (the key, or c[REPORTED_STATUS])".into(),
        "ref_area" | "drug" | "transport_mode" | "origin_area" | "destination_area"
        | "unit_measure" => {
            let dim = base.to_ascii_uppercase();
            format!("{dim} (the key, or c[{dim}])")
        }
        other => other.to_owned(),
    }
}

/// Reads a request target: `path` below the API's root, `query` without the `?`.
pub fn route(path: &str, query: Option<&str>, lists: &CodeLists) -> Result<Route, RestError> {
    if path.len() + query.map_or(0, str::len) > MAX_TARGET_BYTES {
        return Err(RestError::new(
            414,
            format!("the request target is over {MAX_TARGET_BYTES} bytes"),
        ));
    }
    let params = Params::parse(query.unwrap_or_default())?;
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(decode)
        .collect::<Result<_, _>>()?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["structure", kind, rest @ ..] => structure(kind, rest, &params, lists),
        ["data", "dataflow", rest @ ..] => {
            if rest.len() > 4 {
                return Err(RestError::bad(
                    "data/dataflow/{agency}/{id}/{version}/{key}: too many parts",
                ));
            }
            let flow = flow(part(rest, 0), part(rest, 1), part(rest, 2))?;
            data(flow, part(rest, 3), &params, lists)
        }
        ["data", flow_ref, rest @ ..] => {
            if rest.len() > 2 {
                return Err(RestError::bad(
                    "data/{flowRef}/{key}/{providerRef}: too many parts",
                ));
            }
            if !matches!(part(rest, 1), "all" | "*" | "") {
                return Err(RestError::not_found(format!(
                    "data provider {}: the hub publishes the aggregates itself",
                    Echo(part(rest, 1))
                )));
            }
            let refs: Vec<&str> = flow_ref.split(',').collect();
            let (agency, id, version) = match refs.as_slice() {
                [id] => ("*", *id, "*"),
                [agency, id] => (*agency, *id, "*"),
                [agency, id, version] => (*agency, *id, *version),
                _ => {
                    return Err(RestError::bad(format!(
                        "flowRef {} is malformed",
                        Echo(flow_ref)
                    )));
                }
            };
            data(flow(agency, id, version)?, part(rest, 0), &params, lists)
        }
        [kind, rest @ ..] if STRUCTURE_TYPES.contains(kind) => {
            structure(kind, rest, &params, lists)
        }
        _ => Err(RestError::not_found(format!(
            "{}: not an SDMX REST resource of this API (structure/…, data/…)",
            Echo(path.trim_matches('/'))
        ))),
    }
}

/// Part `i` of a path, `*` when absent or empty.
fn part<'a>(rest: &[&'a str], i: usize) -> &'a str {
    match rest.get(i) {
        Some(p) if !p.is_empty() => p,
        _ => "*",
    }
}

const STRUCTURE_TYPES: [&str; 5] = [
    "dataflow",
    "datastructure",
    "codelist",
    "conceptscheme",
    "*",
];

/// Most query parameters read.
const MAX_PARAMS: usize = 64;

/// A request's query parameters, decoded, each named once.
#[derive(Debug, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Result<Self, RestError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            if out.len() == MAX_PARAMS {
                return Err(RestError::bad(format!(
                    "more than {MAX_PARAMS} query parameters"
                )));
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, value) = (decode(name)?, decode(value)?);
            if out.iter().any(|(n, _)| *n == name) {
                return Err(RestError::bad(format!(
                    "query parameter {} is given twice",
                    Echo(&name)
                )));
            }
            out.push((name, value));
        }
        Ok(Self(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Refuses any parameter not in `known` and not a `c[…]` filter when `filters`.
    fn only(&self, known: &[&str], filters: bool) -> Result<(), RestError> {
        match self.0.iter().find(|(n, _)| {
            let filter = filters && n.starts_with("c[") && n.ends_with(']');
            !(known.contains(&n.as_str()) || filter)
        }) {
            Some((n, _)) => Err(RestError::bad(format!(
                "query parameter {} is not one this resource takes ({})",
                Echo(n),
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

/// Percent-decoding of a path segment or query part (`+` stays `+`: SDMX uses it as an
/// operator, and `%2B` means the same).
fn decode(s: &str) -> Result<String, RestError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    RestError::bad(format!("malformed percent-encoding in {}", Echo(s)))
                })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| RestError::bad(format!("{} is not UTF-8", Echo(s))))
}

fn matches_version(asked: &str, version: &str) -> bool {
    matches!(asked, "*" | "~" | "latest" | "all") || asked == version
}

fn matches_agency(asked: &str) -> bool {
    matches!(asked, "*" | "all") || asked.split(',').any(|a| a == AGENCY)
}

fn matches_id(asked: &str, id: &str) -> bool {
    matches!(asked, "*" | "all") || asked.split(',').any(|a| a == id)
}

/// The aggregate dataflow `agency:id(version)`.
fn flow(agency: &str, id: &str, version: &str) -> Result<Flow, RestError> {
    let found = Flow::from_id(id)
        .filter(|_| matches_agency(agency) && matches_version(version, VERSION))
        .ok_or_else(|| {
            RestError::not_found(format!(
                "no dataflow {}; the dataflows are {}",
                Echo(&format!("{agency}:{id}({version})")),
                Flow::ALL.map(|f| f.reference()).join(", ")
            ))
        })?;
    Ok(found)
}

fn structure(
    kind: &str,
    rest: &[&str],
    params: &Params,
    lists: &CodeLists,
) -> Result<Route, RestError> {
    params.only(&["references", "detail"], false)?;
    if rest.len() > 4 || !matches!(part(rest, 3), "*" | "all") {
        return Err(RestError::unsupported(
            "item queries are not served: ask for the whole artefact",
        ));
    }
    if !STRUCTURE_TYPES.contains(&kind) {
        return Err(RestError::unsupported(format!(
            "structure type {}: this API serves {}",
            Echo(kind),
            STRUCTURE_TYPES.join(", ")
        )));
    }
    let (agency, id, version) = (part(rest, 0), part(rest, 1), part(rest, 2));
    let asked: Vec<Artefact> = Artefact::all()
        .into_iter()
        .filter(|a| {
            let (k, aid, aversion) = match a {
                Artefact::Dataflow(f) => ("dataflow", f.id().to_owned(), VERSION.to_owned()),
                Artefact::DataStructure(f) => ("datastructure", f.dsd_id(), VERSION.to_owned()),
                Artefact::Codelist(l) => {
                    let list = l.of(lists);
                    ("codelist", list.id.clone(), list.version.clone())
                }
                Artefact::ConceptScheme => (
                    "conceptscheme",
                    CONCEPT_SCHEME.to_owned(),
                    VERSION.to_owned(),
                ),
            };
            (kind == "*" || kind == k)
                && matches_agency(agency)
                && matches_id(id, &aid)
                && matches_version(version, &aversion)
        })
        .collect();
    if asked.is_empty() {
        return Err(RestError::not_found(format!(
            // `kind` is one of STRUCTURE_TYPES by now.
            "no {kind} {}",
            Echo(&format!("{agency}:{id}({version})"))
        )));
    }
    let detail = match params.get("detail").unwrap_or("full") {
        "full" => Detail::Full,
        "allstubs" => Detail::AllStubs,
        "referencestubs" => Detail::ReferenceStubs,
        other => {
            return Err(RestError::unsupported(format!(
                "detail={}: this API serves full, allstubs and referencestubs",
                Echo(other)
            )));
        }
    };
    let mut referenced = Vec::new();
    let closure = |step: fn(Artefact) -> Vec<Artefact>, deep: bool, into: &mut Vec<Artefact>| {
        let mut todo = asked.clone();
        while let Some(a) = todo.pop() {
            for b in step(a) {
                if !into.contains(&b) {
                    into.push(b);
                    if deep {
                        todo.push(b);
                    }
                }
            }
        }
    };
    match params.get("references").unwrap_or("none") {
        "none" => {}
        "children" => closure(Artefact::children, false, &mut referenced),
        "descendants" => closure(Artefact::children, true, &mut referenced),
        "parents" => closure(Artefact::parents, false, &mut referenced),
        "ancestors" => closure(Artefact::parents, true, &mut referenced),
        "parentsandsiblings" => {
            closure(Artefact::parents, false, &mut referenced);
            let parents = referenced.clone();
            for p in parents {
                for c in p.children() {
                    if !referenced.contains(&c) {
                        referenced.push(c);
                    }
                }
            }
        }
        "all" => {
            closure(Artefact::parents, true, &mut referenced);
            closure(Artefact::children, true, &mut referenced);
        }
        kind @ ("dataflow" | "datastructure" | "codelist" | "conceptscheme") => {
            closure(Artefact::parents, true, &mut referenced);
            closure(Artefact::children, true, &mut referenced);
            referenced.retain(|a| {
                matches!(
                    (kind, a),
                    ("dataflow", Artefact::Dataflow(_))
                        | ("datastructure", Artefact::DataStructure(_))
                        | ("codelist", Artefact::Codelist(_))
                        | ("conceptscheme", Artefact::ConceptScheme)
                )
            });
        }
        other => {
            return Err(RestError::bad(format!(
                "references={}: none, parents, parentsandsiblings, ancestors, children, \
                 descendants, all, or a structure type",
                Echo(other)
            )));
        }
    }
    Ok(Route::Structure {
        selection: Selection::new(asked, referenced),
        detail,
    })
}

/// What a request asks of one dimension.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    /// Every value, each its own series.
    Every,
    /// These values, each its own series.
    Values(BTreeSet<String>),
    /// Summed over.
    Total,
}

const DATA_PARAMS: [&str; 18] = [
    "startPeriod",
    "endPeriod",
    "asOf",
    "updatedAfter",
    "includeHistory",
    "attributes",
    "measures",
    "limit",
    "offset",
    "labels",
    "timeFormat",
    "dimensionAtObservation",
    "detail",
    "freq",
    "top",
    "totals",
    "transit",
    "format",
];

fn data(flow: Flow, key: &str, params: &Params, lists: &CodeLists) -> Result<Route, RestError> {
    params.only(&DATA_PARAMS, true)?;
    let dimensions = flow.dimensions();
    let keyed: Vec<&str> = dimensions
        .iter()
        .copied()
        .filter(|d| *d != "TIME_PERIOD")
        .collect();
    let mut asks: Vec<Ask> = if matches!(key, "all" | "*" | "") {
        keyed.iter().map(|_| Ask::Every).collect()
    } else {
        let parts: Vec<&str> = key.split('.').collect();
        if parts.len() != keyed.len() {
            return Err(RestError::bad(format!(
                "the key {} has {} parts; {} has {} dimensions before TIME_PERIOD: {}",
                Echo(key),
                parts.len(),
                flow.id(),
                keyed.len(),
                keyed.join(".")
            )));
        }
        parts.into_iter().map(ask).collect()
    };
    // c[…] filters: the dimensions' values narrowed, TIME_PERIOD bounded.
    let (mut from, mut to) = (
        params.get("startPeriod").map(str::to_owned),
        params.get("endPeriod").map(str::to_owned),
    );
    for (name, value) in &params.0 {
        let Some(component) = name.strip_prefix("c[").and_then(|n| n.strip_suffix(']')) else {
            continue;
        };
        if component == "TIME_PERIOD" {
            time_filter(value, &mut from, &mut to)?;
            continue;
        }
        let Some(i) = keyed.iter().position(|d| *d == component) else {
            return Err(RestError::bad(format!(
                "c[{}]: {} has no such dimension; its dimensions are {}",
                Echo(component),
                flow.id(),
                dimensions.join(", ")
            )));
        };
        let list = flow
            .components()
            .into_iter()
            .find(|c| c.id == component)
            .and_then(|c| match c.representation {
                Representation::Codes(l) => Some(l),
                _ => None,
            });
        let values = filter_values(component, value, list.map(|l| l.of(lists)))?;
        asks[i] = match std::mem::replace(&mut asks[i], Ask::Every) {
            Ask::Every | Ask::Total => Ask::Values(values),
            Ask::Values(v) => Ask::Values(v.intersection(&values).cloned().collect()),
        };
    }

    let mut q = AggregateQuery {
        dataflow: flow.dataflow().id().to_owned(),
        ..Default::default()
    };
    let mut select: Vec<(&'static str, BTreeSet<String>)> = Vec::new();
    let aggregate = matches!(flow, Flow::Aggregates(_));
    for (dim, ask) in keyed.iter().zip(asks) {
        let values = match &ask {
            Ask::Values(v) => Some(v.clone()),
            _ => None,
        };
        if !aggregate && ask == Ask::Total {
            return Err(RestError::bad(format!(
                "{dim} _T: {} holds the observations as submitted, with no totals; its \
                 aggregates are {}",
                flow.id(),
                Flow::Aggregates(flow.dataflow()).id()
            )));
        }
        // Submitted observations are never grouped: each is its own.
        let grouped = aggregate && ask != Ask::Total;
        let codes =
            |v: &Option<BTreeSet<String>>| -> Vec<String> { v.iter().flatten().cloned().collect() };
        match *dim {
            "FREQ" if !aggregate => match values {
                Some(v) if v.len() == 1 => q.freq = v.into_iter().next().unwrap_or_default(),
                Some(v) => select.push(("FREQ", v)),
                None => {}
            },
            "FREQ" => match (&ask, values.as_ref().map(|v| v.len())) {
                (Ask::Values(v), Some(1)) => {
                    let f = v.iter().next().cloned().unwrap_or_default();
                    Frequency::from_code(&f).ok_or_else(|| {
                        RestError::bad(format!("FREQ {}: not in CL_FREQ (A, Q, M)", Echo(&f)))
                    })?;
                    q.rollup = f;
                    q.group_by.push("TIME_PERIOD".into());
                }
                (Ask::Values(_), _) => {
                    return Err(RestError::bad(
                        "FREQ: one frequency per answer (A, Q or M): periods are rolled up to it",
                    ));
                }
                (Ask::Every, _) => q.group_by.push("TIME_PERIOD".into()),
                (Ask::Total, _) => {}
            },
            "DRUG" => {
                let groups = values.as_ref().is_some_and(|v| {
                    !v.is_empty()
                        && v.iter().all(|d| {
                            lists
                                .drug
                                .codes()
                                .iter()
                                .any(|c| c.parent.as_deref() == Some(d.as_str()))
                        })
                });
                q.drug = codes(&values);
                if grouped {
                    q.group_by
                        .push(if groups { "DRUG_GROUP" } else { "DRUG" }.into());
                }
            }
            "TRANSIT_PATH" => {
                if grouped {
                    q.group_by.push("TRANSIT_AREA".into());
                }
                select.extend(values.map(|v| ("TRANSIT_PATH", v)));
            }
            dim => {
                let field = match dim {
                    "REF_AREA" => Some(&mut q.ref_area),
                    "TRANSPORT_MODE" => Some(&mut q.transport_mode),
                    "ORIGIN_AREA" => Some(&mut q.origin_area),
                    "DESTINATION_AREA" => Some(&mut q.destination_area),
                    "REPORTED_STATUS" => Some(&mut q.obs_status),
                    "UNIT_MEASURE" => Some(&mut q.unit_measure),
                    _ => None,
                };
                match (field, values) {
                    (Some(f), values)
                        if !values.as_ref().is_some_and(|v| v.contains(NOT_APPLICABLE)) =>
                    {
                        *f = codes(&values);
                    }
                    (_, Some(values)) => select.push((dim, values)),
                    (_, None) => {}
                }
                if grouped && dim != "UNIT_MEASURE" {
                    q.group_by.push(
                        match dim {
                            "REPORTED_STATUS" => "OBS_STATUS",
                            d => d,
                        }
                        .into(),
                    );
                }
            }
        }
    }
    q.period_from = from.unwrap_or_default();
    q.period_to = to.unwrap_or_default();
    if let Some(f) = params.get("freq") {
        q.freq = f.to_owned();
    }
    if let Some(t) = params.get("transit") {
        q.transit_area = t.split(',').map(str::to_owned).collect();
    }
    q.totals = flag(params, "totals")?;
    let aggregates_only = ["freq", "top", "totals"];
    if !aggregate && let Some(p) = aggregates_only.iter().find(|p| params.get(p).is_some()) {
        return Err(RestError::bad(format!(
            "{p}: {} holds the observations as submitted; {p} applies to its aggregates, {}",
            flow.id(),
            Flow::Aggregates(flow.dataflow()).id()
        )));
    }
    if q.totals && !select.is_empty() {
        return Err(RestError::bad(format!(
            "totals=true with values of {}: the totals would not be those of the rows \
             returned (for routes through a country, use transit=)",
            select
                .iter()
                .map(|(d, _)| *d)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    q.top_n = number(params, "top", u64::from(u32::MAX))?.unwrap_or(0) as u32;
    if let Some(at) = params.get("asOf") {
        let ms = rfc3339_ms("asOf", at)?;
        q.as_of = Some(AsOf::AsOfTime(prost_types::Timestamp {
            seconds: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
        }));
    }
    let updated_after_ms = match params.get("updatedAfter") {
        None => None,
        Some(_) if aggregate => {
            return Err(RestError::unsupported(
                "updatedAfter: aggregates are recomputed at a checkpoint; ask asOf instead, or \
                 the observations as submitted (SEIZURES, ROUTES) updated after a time",
            ));
        }
        Some(at) => Some(rfc3339_ms("updatedAfter", at)?),
    };
    let include_history = flag(params, "includeHistory")?;
    if include_history && aggregate {
        return Err(RestError::unsupported(
            "includeHistory=true: aggregates are recomputed at a checkpoint; ask asOf for an \
             aggregate as it was, or the observations as submitted (SEIZURES, ROUTES) with their \
             history",
        ));
    }
    let series = match params.get("dimensionAtObservation") {
        None | Some("TIME_PERIOD") => true,
        Some("AllDimensions") => false,
        // Another dimension at the observation level is valid SDMX this API does not serve;
        // a name that is no dimension at all is the client's mistake.
        Some(other) if dimensions.contains(&other) => {
            return Err(RestError::unsupported(format!(
                "dimensionAtObservation={other}: this API serves TIME_PERIOD (series, the \
                 default) or AllDimensions"
            )));
        }
        Some(other) => {
            return Err(RestError::bad(format!(
                "dimensionAtObservation={}: not a dimension of {} ({}); TIME_PERIOD (series, the \
                 default) or AllDimensions",
                Echo(other),
                flow.id(),
                dimensions.join(", ")
            )));
        }
    };
    let (mut attributes, mut measures) = (true, true);
    match params.get("detail").unwrap_or("full") {
        "full" => {}
        "dataonly" => attributes = false,
        other => {
            return Err(RestError::unsupported(format!(
                "detail={}: this API serves full and dataonly",
                Echo(other)
            )));
        }
    }
    match params.get("attributes").unwrap_or("dsd") {
        "dsd" | "all" => {}
        "none" => attributes = false,
        other => {
            return Err(RestError::unsupported(format!(
                "attributes={}: dsd, all or none",
                Echo(other)
            )));
        }
    }
    match params.get("measures").unwrap_or("all") {
        "all" | "OBS_VALUE" => {}
        "none" => measures = false,
        other => {
            return Err(RestError::bad(format!(
                "measures={}: all, OBS_VALUE or none",
                Echo(other)
            )));
        }
    }
    let labels = match params.get("labels").unwrap_or("id") {
        "id" => Labels::Id,
        "both" => Labels::Both,
        "name" => Labels::Name,
        other => {
            return Err(RestError::bad(format!(
                "labels={}: id, both or name",
                Echo(other)
            )));
        }
    };
    let time_format = match params.get("timeFormat").unwrap_or("original") {
        "original" => TimeFormat::Original,
        "normalized" => TimeFormat::Normalized,
        other => {
            return Err(RestError::bad(format!(
                "timeFormat={}: original or normalized",
                Echo(other)
            )));
        }
    };
    Ok(Route::Data(Box::new(DataRequest {
        flow,
        query: q,
        select,
        offset: number(params, "offset", MAX_LIMIT)?.unwrap_or(0),
        updated_after_ms,
        include_history,
        series,
        limit: number(params, "limit", MAX_LIMIT)?,
        labels,
        time_format,
        attributes,
        measures,
    })))
}

/// An RFC 3339 time in Unix milliseconds.
fn rfc3339_ms(name: &str, at: &str) -> Result<i64, RestError> {
    let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map_err(|_| RestError::bad(format!("{name} {}: not an RFC 3339 time", Echo(at))))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn ask(part: &str) -> Ask {
    match part {
        "" | "*" => Ask::Every,
        TOTAL => Ask::Total,
        p => Ask::Values(p.split(['+', ',']).map(str::to_owned).collect()),
    }
}

fn flag(params: &Params, name: &str) -> Result<bool, RestError> {
    match params.get(name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(RestError::bad(format!(
            "{name}={}: true or false",
            Echo(other)
        ))),
    }
}

fn number(params: &Params, name: &str, max: u64) -> Result<Option<u64>, RestError> {
    params
        .get(name)
        .map(|v| match v.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(RestError::bad(format!(
                "{name}={}: a whole number from 0 to {max}",
                Echo(v)
            ))),
        })
        .transpose()
}

/// The values of a `c[…]` filter on a coded dimension: `eq` (the default) and `ne` joined by
/// `,` (OR); `ne` keeps every code of the list but those.
fn filter_values(
    component: &str,
    value: &str,
    list: Option<&crate::schema::CodeList>,
) -> Result<BTreeSet<String>, RestError> {
    let mut out = BTreeSet::new();
    for term in value.split(',') {
        if term.contains(['+', ' ']) {
            return Err(RestError::bad(format!(
                "c[{component}]={}: AND (+) applies to ranges of TIME_PERIOD only",
                Echo(value)
            )));
        }
        let (op, code) = term.split_once(':').unwrap_or(("eq", term));
        match op {
            "eq" => {
                out.insert(code.to_owned());
            }
            "ne" => {
                let list = list.ok_or_else(|| {
                    RestError::unsupported(format!(
                        "c[{component}]: ne applies to coded dimensions"
                    ))
                })?;
                out.extend(
                    list.codes()
                        .iter()
                        .filter(|c| c.id != code && c.reportable)
                        .map(|c| c.id.clone()),
                );
            }
            "lt" | "le" | "gt" | "ge" => {
                return Err(RestError::bad(format!(
                    "c[{component}]: {op} orders numbers and times, not codes"
                )));
            }
            other => {
                return Err(RestError::bad(format!(
                    "c[{component}]: operator {} is not eq, ne, lt, le, gt or ge",
                    Echo(other)
                )));
            }
        }
    }
    Ok(out)
}

/// A `c[TIME_PERIOD]` filter: terms joined by `+` (AND), each `ge:`, `gt:`, `le:`, `lt:` or
/// `eq:` a period; narrows `from` and `to` (periods, inclusive).
fn time_filter(
    value: &str,
    from: &mut Option<String>,
    to: &mut Option<String>,
) -> Result<(), RestError> {
    for term in value.split(['+', ' ']).filter(|t| !t.is_empty()) {
        if term.contains(',') {
            return Err(RestError::unsupported(
                "c[TIME_PERIOD]: OR (,) of periods is not served; ask one range",
            ));
        }
        let (op, p) = term.split_once(':').unwrap_or(("eq", term));
        let period = Period::parse(p)
            .map_err(|e| RestError::bad(format!("c[TIME_PERIOD]={}: {e}", Echo(value))))?;
        match op {
            "ge" => *from = Some(period.to_string()),
            "gt" => *from = Some(step(period, 1).to_string()),
            "le" => *to = Some(period.to_string()),
            "lt" => *to = Some(step(period, -1).to_string()),
            "eq" => {
                *from = Some(period.to_string());
                *to = Some(period.to_string());
            }
            other => {
                return Err(RestError::bad(format!(
                    "c[TIME_PERIOD]: operator {} is not eq, lt, le, gt or ge",
                    Echo(other)
                )));
            }
        }
    }
    Ok(())
}

/// The period `by` periods of its frequency after `p` (before, when negative).
fn step(p: Period, by: i32) -> Period {
    let per_year = match p.frequency() {
        Frequency::Annual => 1,
        Frequency::Quarterly => 4,
        Frequency::Monthly => 12,
    };
    let start = p.start();
    let index = start.year() * per_year + (i32::from(start.month() as u8) - 1) * per_year / 12 + by;
    let (year, n) = (index.div_euclid(per_year), index.rem_euclid(per_year) + 1);
    let text = match p.frequency() {
        Frequency::Annual => format!("{year:04}"),
        Frequency::Quarterly => format!("{year:04}-Q{n}"),
        Frequency::Monthly => format!("{year:04}-M{n:02}"),
    };
    Period::parse(&text).unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists() -> CodeLists {
        CodeLists::builtin().unwrap()
    }

    fn data_of(path: &str, query: &str) -> DataRequest {
        match route(path, Some(query), &lists()).unwrap() {
            Route::Data(d) => *d,
            other => panic!("{other:?}"),
        }
    }

    fn refused(path: &str, query: &str) -> u16 {
        route(path, Some(query), &lists()).unwrap_err().status
    }

    #[test]
    fn keys_become_filters_groups_and_totals() {
        let d = data_of("data/SEIZURES_AGG/A..OPIOIDS._T._T.KG", "startPeriod=2019");
        assert_eq!(d.query.rollup, "A");
        assert_eq!(d.query.group_by, ["TIME_PERIOD", "REF_AREA", "DRUG_GROUP"]);
        assert_eq!(d.query.drug, ["OPIOIDS"]);
        assert_eq!(d.query.unit_measure, ["KG"]);
        assert_eq!(d.query.period_from, "2019");
        let v2 = data_of(
            "data/dataflow/FOCALGATE/SEIZURES_AGG/1.0/_T.KAZ,UZB.*._T._T.*",
            "c[TIME_PERIOD]=gt:2019-Q4+lt:2021-Q1&c[DRUG]=HEROIN,OPIUM",
        );
        assert_eq!(v2.query.group_by, ["REF_AREA", "DRUG"]);
        assert_eq!(v2.query.ref_area, ["KAZ", "UZB"]);
        assert_eq!(v2.query.drug, ["HEROIN", "OPIUM"]);
        assert_eq!(
            (v2.query.period_from.as_str(), v2.query.period_to.as_str()),
            ("2020-Q1", "2020-Q4")
        );
    }

    #[test]
    fn errors_name_the_request_s_own_parameters() {
        assert_eq!(parameter("period_from"), "startPeriod (or c[TIME_PERIOD])");
        assert_eq!(
            parameter("ref_area[0]"),
            "REF_AREA (the key, or c[REF_AREA])"
        );
        assert_eq!(parameter("as_of_time"), "asOf");
        assert_eq!(parameter("top_n"), "top");
    }

    #[test]
    fn bad_requests_get_their_status() {
        assert_eq!(refused("data/NOPE/all", ""), 404);
        assert_eq!(
            refused("data/dataflow/FOCALGATE/SEIZURES_AGG/9.9/*", ""),
            404
        );
        assert_eq!(refused("data/SEIZURES_AGG/A.KAZ", ""), 400);
        assert_eq!(refused("data/SEIZURES_AGG/all", "c[NOPE]=1"), 400);
        assert_eq!(refused("data/SEIZURES_AGG/all", "limit=99999999999"), 400);
        assert_eq!(refused("data/SEIZURES_AGG/all", "bogus=1"), 400);
        assert_eq!(
            refused("data/SEIZURES_AGG/all", "updatedAfter=2020-01-01T00:00:00Z"),
            501
        );
        assert_eq!(
            refused("data/SEIZURES_AGG/all", "dimensionAtObservation=DRUG"),
            501
        );
        assert_eq!(
            refused("data/SEIZURES_AGG/all", "dimensionAtObservation=NOPE"),
            400,
            "a name that is no dimension is the client's mistake"
        );
        assert!(
            data_of("data/SEIZURES_AGG/all", "").series,
            "series by default"
        );
        assert!(
            !data_of(
                "data/SEIZURES_AGG/all",
                "dimensionAtObservation=AllDimensions"
            )
            .series
        );
        assert_eq!(refused("data/SEIZURES/A._T.*.*.*", ""), 400);
        assert_eq!(refused("data/SEIZURES/all", "totals=true"), 400);
        assert_eq!(
            refused(&format!("data/SEIZURES_AGG/{}", "A".repeat(9000)), ""),
            414
        );
        assert_eq!(refused("codelist/FOCALGATE/CL_NOPE", ""), 404);
    }

    #[test]
    fn structure_queries_follow_references() {
        let Route::Structure { selection, .. } = route(
            "structure/dataflow/FOCALGATE/ROUTES_AGG/1.0",
            Some("references=descendants"),
            &lists(),
        )
        .unwrap() else {
            panic!()
        };
        assert!(!selection.is_empty());
        let codelists = route("codelist", None, &lists()).unwrap();
        assert_eq!(
            negotiate(
                &codelists,
                Some("application/vnd.sdmx.structure+json;version=2.0.0, application/xml;q=0.5")
            )
            .unwrap(),
            Format::StructureJson
        );
        assert_eq!(negotiate(&codelists, None).unwrap(), Format::StructureXml);
        assert_eq!(
            negotiate(
                &route("codelist", None, &lists()).unwrap(),
                Some("application/vnd.sdmx.structure+json;version=1.0")
            )
            .unwrap_err()
            .status,
            406
        );
    }

    #[test]
    fn periods_step_across_years() {
        let p = |s| Period::parse(s).unwrap();
        assert_eq!(step(p("2019-Q4"), 1).to_string(), "2020-Q1");
        assert_eq!(step(p("2020-M01"), -1).to_string(), "2019-M12");
        assert_eq!(step(p("2020"), 1).to_string(), "2021");
    }
}
