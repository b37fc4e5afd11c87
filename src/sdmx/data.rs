//! Aggregate answers as SDMX data: SDMX-CSV 2.0 and SDMX-ML 2.1 structure-specific data, each
//! observation with the full key of its aggregate dataflow ([`structure::aggregate_key`]).

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    rest::{Labels, TimeFormat},
    xml::Xml,
};
use crate::{
    proto::{AggregateRow, QueryHeader},
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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            labels: Labels::Id,
            time_format: TimeFormat::Original,
            attributes: true,
            measures: true,
        }
    }
}

/// One observation: the full key and the row it came from.
pub type Observation<'a> = (Vec<String>, &'a AggregateRow);

/// The rows of an answer with their full keys, those whose key has, for each `(dimension,
/// values)` of `select`, one of the values.
pub fn observations<'a>(
    flow: Flow,
    header: &QueryHeader,
    rows: &'a [AggregateRow],
    select: &[(&str, std::collections::BTreeSet<String>)],
) -> Vec<Observation<'a>> {
    let dims = flow.dimensions();
    let positions: Vec<(usize, &std::collections::BTreeSet<String>)> = select
        .iter()
        .filter_map(|(d, v)| Some((dims.iter().position(|x| x == d)?, v)))
        .collect();
    rows.iter()
        .map(|r| (structure::aggregate_key(flow.dataflow(), header, r), r))
        .filter(|(key, _)| positions.iter().all(|(i, v)| v.contains(&key[*i])))
        .collect()
}

/// The values of a row's measure and attributes, in the order of `components` (withheld counts
/// empty).
fn values(row: &AggregateRow, components: &[Component]) -> Vec<String> {
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

fn csv_record(fields: &[String]) -> String {
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if f.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    out.push('\n');
    out
}

/// SDMX-CSV 2.0: `STRUCTURE,STRUCTURE_ID,ACTION`, then the components of `flow` in structure
/// order; `ACTION` is `I` (information).
pub fn sdmx_csv(flow: Flow, obs: &[Observation<'_>], o: &Options, lists: &CodeLists) -> String {
    let components: Vec<Component> = flow
        .components()
        .into_iter()
        .filter(|c| written(c, o))
        .collect();
    let mut head: Vec<String> = ["STRUCTURE", "STRUCTURE_ID", "ACTION"]
        .map(String::from)
        .to_vec();
    head.extend(components.iter().map(|c| match o.labels {
        Labels::Id => c.id.to_owned(),
        Labels::Both => format!("{}: {}", c.id, c.name()),
        Labels::Name => c.name().to_owned(),
    }));
    let mut out = csv_record(&head);
    let reference = flow.reference();
    let all = flow.components();
    for (key, row) in obs {
        let mut fields = vec!["dataflow".to_owned(), reference.clone(), "I".to_owned()];
        let cells = key.iter().cloned().chain(values(row, &all));
        for (c, value) in all.iter().zip(cells) {
            if !written(c, o) {
                continue;
            }
            let value = if c.id == "TIME_PERIOD" && o.time_format == TimeFormat::Normalized {
                normalized(&value)
            } else {
                value
            };
            fields.push(match (o.labels, label(c, &value, lists)) {
                (Labels::Both, Some(name)) => format!("{value}: {name}"),
                (Labels::Name, Some(name)) => name,
                _ => value,
            });
        }
        out.push_str(&csv_record(&fields));
    }
    out
}

/// SDMX-ML 2.1 structure-specific data, every dimension at the observation; the header's
/// Source carries the signed checkpoint the answer was computed at.
pub fn structure_specific(
    flow: Flow,
    header: &QueryHeader,
    obs: &[Observation<'_>],
    o: &Options,
    prepared: OffsetDateTime,
) -> String {
    let dsd = format!("{AGENCY}_{}_{}", flow.dsd_id(), VERSION.replace('.', "_"));
    let namespace = format!(
        "{}:ObsLevelDim:AllDimensions",
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
        .leaf("mes:ID", &format!("TS{}", header.tree_size))
        .leaf("mes:Test", "false")
        .leaf(
            "mes:Prepared",
            &prepared.format(&Rfc3339).unwrap_or_default(),
        );
    x.open("mes:Sender").attr("id", AGENCY).close();
    x.open("mes:Structure")
        .attr("structureID", &dsd)
        .attr("namespace", &namespace)
        .attr("dimensionAtObservation", "AllDimensions");
    x.open("com:StructureUsage");
    x.open("Ref")
        .attr("agencyID", AGENCY)
        .attr("id", flow.id())
        .attr("version", VERSION)
        .close();
    x.close();
    x.close();
    x.name_en("mes:Source", &header.checkpoint);
    x.close();
    x.open("mes:DataSet")
        .attr("ss:structureRef", &dsd)
        .attr("xsi:type", "ns1:DataSetType")
        .attr("ss:dataScope", "DataStructure")
        .attr("action", "Information");
    let all = flow.components();
    for (key, row) in obs {
        x.open("Obs");
        for (c, value) in all.iter().zip(key.iter().cloned().chain(values(row, &all))) {
            if written(c, o) && !value.is_empty() {
                x.attr(c.id, &value);
            }
        }
        x.close();
    }
    x.finish()
}
