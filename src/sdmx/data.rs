//! Aggregate answers as SDMX data: SDMX-CSV 2.0 and SDMX-ML 2.1 structure-specific data, each
//! observation with the full key of its dataflow ([`structure::AggregateKeys`] for aggregates).

use std::collections::BTreeSet;

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    rest::{Labels, TimeFormat},
    xml::Xml,
};
use crate::{
    proto::AggregateRow,
    schema::{
        CodeLists, Period,
        structure::{self, AGENCY, Component, Flow, Representation, Role, VERSION},
    },
};

/// How an answer is written.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Codes, names or both (SDMX-CSV).
    pub labels: Labels,
    /// TIME_PERIOD as reported or as an interval (SDMX-CSV).
    pub time_format: TimeFormat,
    /// Attributes written.
    pub attributes: bool,
    /// The measure written.
    pub measures: bool,
    /// SDMX-ML: observations in series, TIME_PERIOD at the observation
    /// (`dimensionAtObservation=TIME_PERIOD`, the default); else each with every dimension
    /// (`AllDimensions`).
    pub series: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            labels: Labels::Id,
            time_format: TimeFormat::Original,
            attributes: true,
            measures: true,
            series: true,
        }
    }
}

/// One observation: its full key, then the values of the other components (the measure,
/// the attributes) in structure order; empty is absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Obs {
    /// The dimensions' values, in [`Flow::dimensions`] order.
    pub key: Vec<String>,
    /// The measure's and the attributes' values.
    pub values: Vec<String>,
}

/// Values of dimensions by which an answer's rows are kept, by their place in the key: a row
/// is kept when its key has, for each dimension, one of its values.
pub struct KeySelect(Vec<(usize, BTreeSet<String>)>);

impl KeySelect {
    /// `select`'s `(dimension, values)` for `flow`'s keys.
    pub fn new(flow: Flow, select: &[(&str, BTreeSet<String>)]) -> Self {
        let dims = flow.dimensions();
        Self(
            select
                .iter()
                .filter_map(|(d, v)| Some((dims.iter().position(|x| x == d)?, v.clone())))
                .collect(),
        )
    }

    /// Whether it keeps every row.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `key` is kept.
    pub fn keeps(&self, key: &[String]) -> bool {
        self.0.iter().all(|(i, values)| values.contains(&key[*i]))
    }
}

/// Rows of an aggregate answer as observations of [`Flow::Aggregates`], their full keys
/// under the answer's `keys`.
pub fn aggregate_observations(
    flow: Flow,
    keys: &structure::AggregateKeys,
    rows: &[AggregateRow],
) -> Vec<Obs> {
    let components = flow.components();
    rows.iter()
        .map(|r| Obs {
            key: keys.key(&r.key, &r.unit_measure, r.total),
            values: aggregate_values(r, &components),
        })
        .collect()
}

/// The values of an aggregate row's measure and attributes (withheld counts empty).
fn aggregate_values(row: &AggregateRow, components: &[Component]) -> Vec<String> {
    let withheld = row.obs_status == "Q";
    components
        .iter()
        .filter(|c| !c.role.is_dimension())
        .map(|c| match c.id {
            "OBS_VALUE" => row.quantity.clone(),
            "N_SEIZURES" => row.n_seizures.map(|n| n.to_string()).unwrap_or_default(),
            "N_REPORTERS" if !withheld => row.n_reporters.to_string(),
            "OBS_STATUS" => row.obs_status.clone(),
            "CONF_STATUS" => row.conf_status.clone(),
            _ => String::new(),
        })
        .collect()
}

fn written(c: &Component, o: &Options) -> bool {
    match c.role {
        Role::Measure => o.measures,
        Role::Attribute => o.attributes,
        _ => true,
    }
}

/// The name of a value of `c`, when it has one.
fn label(c: &Component, value: &str, lists: &CodeLists) -> Option<String> {
    match c.representation {
        Representation::Codes(l) => l.of(lists).get(value).map(|code| code.name.clone()),
        Representation::Text { .. } if c.id == "TRANSIT_PATH" => {
            let names: Vec<String> = structure::transit_areas(value)
                .into_iter()
                .map(|a| lists.area.get(a).map_or(a.to_owned(), |c| c.name.clone()))
                .collect();
            (!names.is_empty()).then(|| names.join(" – "))
        }
        _ => None,
    }
}

fn normalized(period: &str) -> String {
    match Period::parse(period) {
        Ok(p) => {
            let length = match p.frequency() {
                crate::schema::Frequency::Annual => "P1Y",
                crate::schema::Frequency::Quarterly => "P3M",
                crate::schema::Frequency::Monthly => "P1M",
            };
            format!("{}/{length}", p.start())
        }
        Err(_) => period.to_owned(), // already a time range
    }
}

/// Whether `labels` writes names beside or instead of codes.
fn label_needed(labels: Labels) -> bool {
    labels != Labels::Id
}

/// Appends one CSV field, quoted when it must be.
fn csv_field(out: &mut String, f: &str) {
    if f.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&f.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(f);
    }
}

fn csv_record(fields: &[String]) -> String {
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(&mut out, f);
    }
    out.push('\n');
    out
}

/// SDMX-CSV 2.0, written a part at a time: `STRUCTURE,STRUCTURE_ID,ACTION`, then the
/// components of the flow in structure order; `ACTION` is `I` (information).
pub struct CsvWriter<'a> {
    options: Options,
    lists: &'a CodeLists,
    components: Vec<Component>,
    reference: String,
}

impl<'a> CsvWriter<'a> {
    /// A writer of `flow`'s observations.
    pub fn new(flow: Flow, options: Options, lists: &'a CodeLists) -> Self {
        Self {
            options,
            lists,
            components: flow.components(),
            reference: flow.reference(),
        }
    }

    /// The header line.
    pub fn header(&self) -> String {
        let o = &self.options;
        let mut head: Vec<String> = ["STRUCTURE", "STRUCTURE_ID", "ACTION"]
            .map(String::from)
            .to_vec();
        head.extend(
            self.components
                .iter()
                .filter(|c| written(c, o))
                .map(|c| match o.labels {
                    Labels::Id => c.id.to_owned(),
                    Labels::Both => format!("{}: {}", c.id, c.name()),
                    Labels::Name => c.name().to_owned(),
                }),
        );
        csv_record(&head)
    }

    /// The lines of `obs`.
    pub fn rows(&self, obs: &[Obs]) -> String {
        let o = &self.options;
        let mut out = String::new();
        for ob in obs {
            out.push_str("dataflow,");
            csv_field(&mut out, &self.reference);
            out.push_str(",I");
            let cells = ob.key.iter().chain(&ob.values);
            for (c, value) in self.components.iter().zip(cells) {
                if !written(c, o) {
                    continue;
                }
                out.push(',');
                let normalized = (c.id == "TIME_PERIOD" && o.time_format == TimeFormat::Normalized)
                    .then(|| normalized(value));
                let value = normalized.as_deref().unwrap_or(value);
                match (
                    o.labels,
                    label_needed(o.labels).then(|| label(c, value, self.lists)),
                ) {
                    (Labels::Both, Some(Some(name))) => {
                        csv_field(&mut out, &format!("{value}: {name}"));
                    }
                    (Labels::Name, Some(Some(name))) => csv_field(&mut out, &name),
                    _ => csv_field(&mut out, value),
                }
            }
            out.push('\n');
        }
        out
    }
}

/// SDMX-CSV 2.0 of `obs`, whole.
pub fn sdmx_csv(flow: Flow, obs: &[Obs], o: &Options, lists: &CodeLists) -> String {
    let w = CsvWriter::new(flow, *o, lists);
    w.header() + &w.rows(obs)
}

/// SDMX-ML 2.1 structure-specific data, every dimension at the observation, written a part
/// at a time; the header's Source carries the signed checkpoint the data are those of.
pub struct StructureSpecificWriter {
    components: Vec<Component>,
    options: Options,
}

/// An observation's series key: every dimension but TIME_PERIOD, the key's last.
fn series_key(o: &Obs) -> &[String] {
    &o.key[..o.key.len().saturating_sub(1)]
}

/// The id a structure-specific message gives `flow`'s data structure.
fn dsd_ref(flow: Flow) -> String {
    format!("{AGENCY}_{}_{}", flow.dsd_id(), VERSION.replace('.', "_"))
}

/// Opens a `<mes:DataSet>` of `flow`'s data structure; attributes may follow.
fn open_dataset(x: &mut Xml, flow: Flow) {
    x.open("mes:DataSet")
        .attr("ss:structureRef", &dsd_ref(flow))
        .attr("xsi:type", "ns1:DataSetType")
        .attr("ss:dataScope", "DataStructure")
        .attr("action", "Information");
}

impl StructureSpecificWriter {
    /// A writer of `flow`'s observations.
    pub fn new(flow: Flow, options: Options) -> Self {
        Self {
            components: flow.components(),
            options,
        }
    }

    /// Everything before the first observation, and everything after the last. With
    /// `history` (one dataset per revision) the datasets are left to
    /// [`dataset`](Self::dataset).
    pub fn frame(
        flow: Flow,
        tree_size: u64,
        checkpoint: &str,
        prepared: OffsetDateTime,
        options: &Options,
        history: bool,
    ) -> (String, String) {
        let dsd = dsd_ref(flow);
        let at_observation = if options.series {
            "TIME_PERIOD"
        } else {
            "AllDimensions"
        };
        let namespace = format!(
            "{}:ObsLevelDim:{at_observation}",
            super::urn("datastructure.DataStructure", &flow.dsd_id(), VERSION)
        );
        let mut x = Xml::new();
        x.open("mes:StructureSpecificData")
            .attr(
                "xmlns:mes",
                "http://www.sdmx.org/resources/sdmxml/schemas/v2_1/message",
            )
            .attr(
                "xmlns:ss",
                "http://www.sdmx.org/resources/sdmxml/schemas/v2_1/data/structurespecific",
            )
            .attr(
                "xmlns:com",
                "http://www.sdmx.org/resources/sdmxml/schemas/v2_1/common",
            )
            .attr("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")
            .attr("xmlns:ns1", &namespace);
        x.open("mes:Header")
            .leaf("mes:ID", &format!("TS{tree_size}"))
            .leaf("mes:Test", "false")
            .leaf(
                "mes:Prepared",
                &prepared.format(&Rfc3339).unwrap_or_default(),
            );
        x.open("mes:Sender").attr("id", AGENCY).close();
        x.open("mes:Structure")
            .attr("structureID", &dsd)
            .attr("namespace", &namespace)
            .attr("dimensionAtObservation", at_observation);
        x.open("com:StructureUsage");
        x.open("Ref")
            .attr("agencyID", AGENCY)
            .attr("id", flow.id())
            .attr("version", VERSION)
            .close();
        x.close();
        x.close();
        x.name_en("mes:Source", checkpoint);
        x.close();
        if !history {
            open_dataset(&mut x, flow);
        }
        x.split()
    }

    /// The end of a dataset [`dataset`](Self::dataset) started.
    pub const DATASET_END: &str = "\n  </mes:DataSet>";

    /// The start of the dataset of one revision, valid from `valid_from_ms`, and until
    /// `valid_to_ms` once superseded (`validFromDate`, `validToDate`): its observations
    /// follow, then [`DATASET_END`](Self::DATASET_END).
    pub fn dataset(flow: Flow, valid_from_ms: i64, valid_to_ms: Option<i64>) -> String {
        let at = |ms: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_default()
        };
        let mut x = Xml::fragment(1);
        open_dataset(&mut x, flow);
        x.attr("validFromDate", &at(valid_from_ms));
        if let Some(ms) = valid_to_ms {
            x.attr("validToDate", &at(ms));
        }
        x.finish_fragment()
    }

    /// The `<Obs …/>` elements of `obs`; in series, one `<Series …>` for each run of
    /// observations with the same series key (a key may so come again in a later run).
    pub fn rows<O: std::borrow::Borrow<Obs>>(&self, obs: &[O]) -> String {
        let mut x = Xml::fragment(2);
        let components = &self.components;
        let runs: Vec<&[O]> = if self.options.series {
            obs.chunk_by(|a, b| series_key(a.borrow()) == series_key(b.borrow()))
                .collect()
        } else {
            vec![obs]
        };
        for run in runs.into_iter().filter(|r| !r.is_empty()) {
            let skip = if self.options.series {
                let key = series_key(run[0].borrow());
                x.open("Series");
                for (c, value) in components.iter().zip(key) {
                    if !value.is_empty() {
                        x.attr(c.id, value);
                    }
                }
                key.len()
            } else {
                0
            };
            for ob in run {
                let ob = ob.borrow();
                x.open("Obs");
                let cells = ob.key.iter().chain(&ob.values);
                for (c, value) in components.iter().zip(cells).skip(skip) {
                    if written(c, &self.options) && !value.is_empty() {
                        x.attr(c.id, value);
                    }
                }
                x.close();
            }
            if self.options.series {
                x.close();
            }
        }
        x.finish_fragment()
    }
}

/// SDMX-JSON 2.0 data, every dimension at the observation: the components with the values
/// the answer uses, then the observations keyed by the positions of their values
/// (`"0:3:1:…"`), each the measure's value and the positions of its attributes' values (`null`
/// when absent). The signed checkpoint the data are those of is an annotation of the
/// structure (type `FOCALGATE_CHECKPOINT`).
pub fn sdmx_json(
    flow: Flow,
    tree_size: u64,
    checkpoint: &str,
    obs: &[Obs],
    o: &Options,
    lists: &CodeLists,
    prepared: OffsetDateTime,
) -> String {
    use serde_json::{Map, Value, json};
    let components: Vec<Component> = flow.components();
    // Per component, its distinct values in order of first use.
    let mut seen: Vec<Vec<String>> = vec![Vec::new(); components.len()];
    let mut index: Vec<std::collections::HashMap<String, usize>> =
        vec![std::collections::HashMap::new(); components.len()];
    let mut position = |c: usize, v: &str| -> usize {
        if let Some(&i) = index[c].get(v) {
            return i;
        }
        seen[c].push(v.to_owned());
        index[c].insert(v.to_owned(), seen[c].len() - 1);
        seen[c].len() - 1
    };
    let dims = components.iter().filter(|c| c.role.is_dimension()).count();
    let mut observations = Map::new();
    for ob in obs {
        let key: Vec<String> = ob
            .key
            .iter()
            .enumerate()
            .map(|(i, v)| position(i, v).to_string())
            .collect();
        let mut cells: Vec<Value> = Vec::new();
        for (j, v) in ob.values.iter().enumerate() {
            let c = &components[dims + j];
            if !written(c, o) {
                continue;
            }
            cells.push(match (c.role, v.is_empty()) {
                (Role::Measure, true) => Value::Null,
                (Role::Measure, false) => json!(v),
                (_, true) => Value::Null,
                (_, false) => json!(position(dims + j, v)),
            });
        }
        observations.insert(key.join(":"), Value::Array(cells));
    }
    let component = |i: usize, c: &Component| -> Value {
        let values: Vec<Value> = seen[i]
            .iter()
            .map(|v| {
                let mut value = Map::new();
                if c.id == "TIME_PERIOD" {
                    value.insert("value".into(), json!(v));
                    if let Some((start, end)) = period_bounds(v) {
                        value.insert("start".into(), json!(start));
                        value.insert("end".into(), json!(end));
                    }
                } else if matches!(c.representation, Representation::Codes(_)) {
                    value.insert("id".into(), json!(v));
                } else {
                    value.insert("value".into(), json!(v));
                }
                if let Some(name) = label(c, v, lists) {
                    value.insert("name".into(), json!(name));
                }
                Value::Object(value)
            })
            .collect();
        let mut out = json!({"id": c.id, "name": c.name()});
        // A measure's values are in the observations themselves.
        if c.role != Role::Measure {
            out["values"] = json!(values);
        }
        if c.role.is_dimension() {
            out["keyPosition"] = json!(i);
        } else if c.role == Role::Attribute {
            out["relationship"] = json!({"observation": {}});
        }
        out
    };
    let of = |role: fn(Role) -> bool| -> Vec<Value> {
        components
            .iter()
            .enumerate()
            .filter(|(_, c)| role(c.role) && written(c, o))
            .map(|(i, c)| component(i, c))
            .collect()
    };
    let structure = json!({
        "structure": super::urn("datastructure.DataStructure", &flow.dsd_id(), VERSION),
        "name": flow.name(),
        "dataSets": [0],
        "dimensions": {"dataSet": [], "series": [], "observation": of(Role::is_dimension)},
        "measures": {"observation": of(|r| r == Role::Measure)},
        "attributes": {"dataSet": [], "series": [], "observation": of(|r| r == Role::Attribute)},
        "annotations": [{
            "id": "checkpoint",
            "type": "FOCALGATE_CHECKPOINT",
            "title": format!("the signed checkpoint of the log of {tree_size} entries"),
            "text": checkpoint,
        }],
    });
    let meta = json!({
        "schema": "https://raw.githubusercontent.com/sdmx-twg/sdmx-json/master/data-message/tools/schemas/2.0.0/sdmx-json-data-schema.json",
        "id": format!("TS{tree_size}"),
        "test": false,
        "prepared": prepared.format(&Rfc3339).unwrap_or_default(),
        "contentLanguages": ["en"],
        "sender": {"id": AGENCY},
    });
    let data = json!({
        "structures": [structure],
        "dataSets": [{
            "structure": 0,
            "action": "Information",
            "links": [{
                "rel": "dataflow",
                "urn": super::urn("datastructure.Dataflow", flow.id(), VERSION),
            }],
            "observations": observations,
        }],
    });
    super::json_message(&meta, &data)
}

/// The first and last instants of a reporting period or a time range, as SDMX-JSON gives
/// them.
fn period_bounds(v: &str) -> Option<(String, String)> {
    let (start, end) = match Period::parse(v) {
        Ok(p) => (p.start(), p.end()),
        Err(_) => {
            let (start, length) = v.split_once('/')?;
            let start = time::Date::parse(
                start,
                &time::macros::format_description!("[year]-[month]-[day]"),
            )
            .ok()?;
            let months: i32 = match length.strip_prefix('P')? {
                l if l.ends_with('Y') => l.trim_end_matches('Y').parse::<i32>().ok()? * 12,
                l => l.strip_suffix('M')?.parse().ok()?,
            };
            let total = start.year() * 12 + i32::from(start.month() as u8) - 1 + months;
            let next = time::Date::from_calendar_date(
                total.div_euclid(12),
                time::Month::try_from((total.rem_euclid(12) + 1) as u8).ok()?,
                1,
            )
            .ok()?;
            (start, next.previous_day()?)
        }
    };
    Some((format!("{start}T00:00:00Z"), format!("{end}T23:59:59Z")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ob(key: &[&str], value: &str) -> Obs {
        Obs {
            key: key.iter().map(|s| s.to_string()).collect(),
            values: vec![value.into()],
        }
    }

    /// In series, a run of observations of one series key is one `<Series>` holding them in
    /// order (the answer hands a series' cells out together: `Cells::cmp_without`); flat, no
    /// `<Series>` at all.
    #[test]
    fn a_run_of_one_series_key_is_one_series() {
        let flow = Flow::Aggregates(crate::schema::Dataflow::Seizures);
        let rows: Vec<Obs> = [("KAZ", "2020"), ("KAZ", "2021"), ("UZB", "2020")]
            .iter()
            .map(|(area, year)| {
                // FREQ, REF_AREA, DRUG, TRANSPORT_MODE, REPORTED_STATUS, UNIT_MEASURE, TIME_PERIOD
                ob(&["A", area, "HEROIN", "_T", "_T", "KG", year], "1.5")
            })
            .collect();
        let write = |options: Options| {
            let (open, close) = StructureSpecificWriter::frame(
                flow,
                0,
                "",
                OffsetDateTime::UNIX_EPOCH,
                &options,
                false,
            );
            open + &StructureSpecificWriter::new(flow, options).rows(&rows) + &close
        };
        let text = write(Options::default());
        let doc = roxmltree::Document::parse(&text).unwrap();
        let series: Vec<(String, Vec<String>)> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "Series")
            .map(|s| {
                let years = s
                    .children()
                    .filter(|o| o.is_element())
                    .map(|o| o.attribute("TIME_PERIOD").unwrap().to_owned())
                    .collect();
                (s.attribute("REF_AREA").unwrap().to_owned(), years)
            })
            .collect();
        assert_eq!(
            series,
            [
                ("KAZ".to_owned(), vec!["2020".to_owned(), "2021".to_owned()]),
                ("UZB".to_owned(), vec!["2020".to_owned()])
            ]
        );
        assert!(text.contains("dimensionAtObservation=\"TIME_PERIOD\""));
        let flat = write(Options {
            series: false,
            ..Options::default()
        });
        roxmltree::Document::parse(&flat).unwrap();
        assert!(!flat.contains("<Series") && flat.matches("<Obs ").count() == 3);
    }
}
