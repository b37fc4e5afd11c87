//! Structure messages, SDMX-ML 2.1 and SDMX-JSON 2.0: dataflows, data structure definitions,
//! the concept scheme and the code lists, chosen as the SDMX REST structure query chooses them.
//! Both are written from the same artefacts, in the same order.

use serde_json::{Map, Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{urn, xml::Xml};
use crate::schema::{
    CodeLists,
    structure::{
        AGENCY, CONCEPT_SCHEME, CONCEPTS, Component, Flow, List, Representation, Role, VERSION,
    },
};

const MES: &str = "http://www.sdmx.org/resources/sdmxml/schemas/v2_1/message";
const STR: &str = "http://www.sdmx.org/resources/sdmxml/schemas/v2_1/structure";
const COM: &str = "http://www.sdmx.org/resources/sdmxml/schemas/v2_1/common";

/// A structure of the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Artefact {
    /// A dataflow.
    Dataflow(Flow),
    /// A dataflow's data structure definition.
    DataStructure(Flow),
    /// A code list.
    Codelist(List),
    /// The concept scheme.
    ConceptScheme,
}

impl Artefact {
    /// Every artefact, in the order a structure message gives them.
    pub fn all() -> Vec<Artefact> {
        let mut all: Vec<Artefact> = Flow::ALL.into_iter().map(Artefact::Dataflow).collect();
        all.extend(List::ALL.map(Artefact::Codelist));
        all.push(Artefact::ConceptScheme);
        all.extend(Flow::ALL.map(Artefact::DataStructure));
        all
    }

    /// What it refers to directly.
    pub fn children(self) -> Vec<Artefact> {
        match self {
            Self::Dataflow(f) => vec![Self::DataStructure(f)],
            Self::DataStructure(f) => {
                let mut c: Vec<Artefact> = List::ALL
                    .into_iter()
                    .filter(|l| {
                        f.components()
                            .iter()
                            .any(|c| c.representation == Representation::Codes(*l))
                    })
                    .map(Self::Codelist)
                    .collect();
                c.push(Self::ConceptScheme);
                c
            }
            Self::Codelist(_) | Self::ConceptScheme => Vec::new(),
        }
    }

    /// What refers to it directly.
    pub fn parents(self) -> Vec<Artefact> {
        Self::all()
            .into_iter()
            .filter(|a| a.children().contains(&self))
            .collect()
    }
}

/// Which of the selected artefacts a message gives in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Every artefact in full.
    Full,
    /// Every artefact as a stub: identification and name only.
    AllStubs,
    /// The artefacts asked for in full, those they refer to as stubs.
    ReferenceStubs,
}

/// The artefacts of a structure message: those asked for and those they refer to.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    asked: Vec<Artefact>,
    referenced: Vec<Artefact>,
}

impl Selection {
    /// The artefacts `asked`, with those `references` adds (each once, and never both).
    pub fn new(asked: Vec<Artefact>, referenced: Vec<Artefact>) -> Self {
        let mut referenced: Vec<Artefact> = referenced
            .into_iter()
            .filter(|a| !asked.contains(a))
            .collect();
        referenced.dedup();
        Self { asked, referenced }
    }

    /// Nothing selected.
    pub fn is_empty(&self) -> bool {
        self.asked.is_empty()
    }

    /// The artefacts, each with whether it is a stub under `detail`, in message order.
    fn items(&self, detail: Detail) -> Vec<(Artefact, bool)> {
        Artefact::all()
            .into_iter()
            .filter_map(|a| {
                let stub = if self.asked.contains(&a) {
                    detail == Detail::AllStubs
                } else if self.referenced.contains(&a) {
                    detail != Detail::Full
                } else {
                    return None;
                };
                Some((a, stub))
            })
            .collect()
    }
}

/// An SDMX-ML 2.1 structure message of `selection`, prepared at `prepared`.
pub fn structure_message(
    lists: &CodeLists,
    selection: &Selection,
    detail: Detail,
    prepared: OffsetDateTime,
) -> String {
    let mut x = Xml::new();
    x.open("mes:Structure")
        .attr("xmlns:mes", MES)
        .attr("xmlns:str", STR)
        .attr("xmlns:com", COM);
    x.open("mes:Header")
        .leaf("mes:ID", &format!("IDREF{}", prepared.unix_timestamp()))
        .leaf("mes:Test", "false")
        .leaf(
            "mes:Prepared",
            &prepared.format(&Rfc3339).unwrap_or_default(),
        );
    x.open("mes:Sender").attr("id", AGENCY).close();
    x.close();
    x.open("mes:Structures");
    let items = selection.items(detail);
    let group = |a: &Artefact| match a {
        Artefact::Dataflow(_) => 0,
        Artefact::Codelist(_) => 1,
        Artefact::ConceptScheme => 2,
        Artefact::DataStructure(_) => 3,
    };
    for (i, wrapper) in [
        "str:Dataflows",
        "str:Codelists",
        "str:Concepts",
        "str:DataStructures",
    ]
    .into_iter()
    .enumerate()
    {
        let here: Vec<_> = items.iter().filter(|(a, _)| group(a) == i).collect();
        if here.is_empty() {
            continue;
        }
        x.open(wrapper);
        for &&(a, stub) in &here {
            artefact(&mut x, lists, a, stub);
        }
        x.close();
    }
    x.finish()
}

const CONCEPT_SCHEME_NAME: &str = "Concepts of drug seizure and trafficking route statistics";

/// How an artefact is identified in both formats.
struct Identity {
    /// Its SDMX-ML element.
    element: &'static str,
    /// Its class, as URNs name it.
    class: &'static str,
    id: String,
    version: String,
    name: String,
}

fn identity(lists: &CodeLists, a: Artefact) -> Identity {
    let (element, class, id, version, name) = match a {
        Artefact::Dataflow(f) => (
            "str:Dataflow",
            "datastructure.Dataflow",
            f.id().to_owned(),
            VERSION.to_owned(),
            f.name().to_owned(),
        ),
        Artefact::Codelist(l) => {
            let list = l.of(lists);
            (
                "str:Codelist",
                "codelist.Codelist",
                list.id.clone(),
                list.version.clone(),
                list.name.clone(),
            )
        }
        Artefact::ConceptScheme => (
            "str:ConceptScheme",
            "conceptscheme.ConceptScheme",
            CONCEPT_SCHEME.to_owned(),
            VERSION.to_owned(),
            CONCEPT_SCHEME_NAME.to_owned(),
        ),
        Artefact::DataStructure(f) => (
            "str:DataStructure",
            "datastructure.DataStructure",
            f.dsd_id(),
            VERSION.to_owned(),
            format!("Structure of {}", f.name().to_lowercase()),
        ),
    };
    Identity {
        element,
        class,
        id,
        version,
        name,
    }
}

fn artefact(x: &mut Xml, lists: &CodeLists, a: Artefact, stub: bool) {
    let me = identity(lists, a);
    x.open(me.element)
        .attr("id", &me.id)
        .attr("urn", &urn(me.class, &me.id, &me.version))
        .attr("agencyID", AGENCY)
        .attr("version", &me.version)
        .attr("isFinal", "true");
    if stub {
        x.attr("isExternalReference", "true");
    }
    x.name_en("com:Name", &me.name);
    if !stub {
        match a {
            Artefact::Dataflow(f) => {
                x.open("str:Structure");
                reference(x, &f.dsd_id(), VERSION, "datastructure", "DataStructure");
                x.close();
            }
            Artefact::Codelist(l) => {
                let list = l.of(lists);
                let code_urn = urn("codelist.Code", &list.id, &list.version);
                for code in list.codes() {
                    x.open("str:Code")
                        .attr("id", &code.id)
                        .attr("urn", &format!("{code_urn}.{}", code.id));
                    x.name_en("com:Name", &code.name);
                    if let Some(parent) = &code.parent {
                        x.open("str:Parent");
                        x.open("Ref").attr("id", parent).close();
                        x.close();
                    }
                    x.close();
                }
            }
            Artefact::ConceptScheme => {
                for (id, name) in CONCEPTS {
                    x.open("str:Concept")
                        .attr("id", id)
                        .attr("urn", &concept_urn(id));
                    x.name_en("com:Name", name);
                    x.close();
                }
            }
            Artefact::DataStructure(f) => data_structure(x, lists, f),
        }
    }
    x.close();
}

fn reference(x: &mut Xml, id: &str, version: &str, package: &str, class: &str) {
    x.open("Ref")
        .attr("id", id)
        .attr("version", version)
        .attr("agencyID", AGENCY)
        .attr("package", package)
        .attr("class", class)
        .close();
}

/// The components in SDMX 2.1's order: dimensions, attributes, the primary measure.
fn data_structure(x: &mut Xml, lists: &CodeLists, f: Flow) {
    let components = f.components();
    x.open("str:DataStructureComponents");
    x.open("str:DimensionList")
        .attr("id", "DimensionDescriptor")
        .attr(
            "urn",
            &format!(
                "{}.DimensionDescriptor",
                urn("datastructure.DataStructure", &f.dsd_id(), VERSION)
            ),
        );
    for (i, c) in components
        .iter()
        .filter(|c| c.role.is_dimension())
        .enumerate()
    {
        let element = if c.role == Role::TimeDimension {
            "str:TimeDimension"
        } else {
            "str:Dimension"
        };
        x.open(element)
            .attr("id", c.id)
            .attr("position", &(i + 1).to_string());
        component_body(x, lists, c);
        x.close();
    }
    x.close();
    x.open("str:AttributeList")
        .attr("id", "AttributeDescriptor");
    for c in components.iter().filter(|c| c.role == Role::Attribute) {
        x.open("str:Attribute").attr("id", c.id).attr(
            "assignmentStatus",
            if c.mandatory {
                "Mandatory"
            } else {
                "Conditional"
            },
        );
        component_body(x, lists, c);
        x.open("str:AttributeRelationship");
        x.open("str:PrimaryMeasure");
        x.open("Ref").attr("id", "OBS_VALUE").close();
        x.close();
        x.close();
        x.close();
    }
    x.close();
    x.open("str:MeasureList").attr("id", "MeasureDescriptor");
    for c in components.iter().filter(|c| c.role == Role::Measure) {
        x.open("str:PrimaryMeasure").attr("id", c.id);
        component_body(x, lists, c);
        x.close();
    }
    x.close();
    x.close();
}

fn component_body(x: &mut Xml, lists: &CodeLists, c: &Component) {
    x.open("str:ConceptIdentity");
    x.open("Ref")
        .attr("id", c.concept)
        .attr("maintainableParentID", CONCEPT_SCHEME)
        .attr("maintainableParentVersion", VERSION)
        .attr("agencyID", AGENCY)
        .attr("package", "conceptscheme")
        .attr("class", "Concept")
        .close();
    x.close();
    x.open("str:LocalRepresentation");
    match c.representation {
        Representation::Codes(l) => {
            let list = l.of(lists);
            x.open("str:Enumeration");
            reference(x, &list.id, &list.version, "codelist", "Codelist");
            x.close();
        }
        other => {
            let (text_type, facet) = text_format(other);
            x.open("str:TextFormat").attr("textType", text_type);
            match facet {
                Some(Facet::NonNegative) => x.attr("minValue", "0"),
                Some(Facet::Pattern(p)) => x.attr("pattern", p),
                None => x,
            };
            x.close();
        }
    }
    x.close();
}

/// A restriction of an uncoded representation.
enum Facet {
    /// At least 0.
    NonNegative,
    /// Matching a regular expression.
    Pattern(&'static str),
}

/// The SDMX data type of an uncoded representation (the same names in SDMX-ML's `textType`
/// and SDMX-JSON's `dataType`), with its restriction.
fn text_format(r: Representation) -> (&'static str, Option<Facet>) {
    match r {
        Representation::TimePeriod => ("ObservationalTimePeriod", None),
        Representation::Integer => ("Integer", Some(Facet::NonNegative)),
        Representation::Decimal => ("Decimal", Some(Facet::NonNegative)),
        Representation::DateTime => ("DateTime", None),
        Representation::Comment | Representation::Codes(_) => ("String", None),
        Representation::Text { pattern } => ("String", Some(Facet::Pattern(pattern))),
    }
}

const JSON_SCHEMA: &str = "https://raw.githubusercontent.com/sdmx-twg/sdmx-json/master/structure-message/tools/schemas/2.0.0/sdmx-json-structure-schema.json";

/// An SDMX-JSON 2.0 structure message of `selection`, prepared at `prepared`: the same
/// artefacts as [`structure_message`], in SDMX 3.0's terms (references are URNs, the measure
/// is in a list of measures).
pub fn structure_json(
    lists: &CodeLists,
    selection: &Selection,
    detail: Detail,
    prepared: OffsetDateTime,
) -> String {
    let mut data = Map::new();
    for (a, stub) in selection.items(detail) {
        let (key, value) = json_artefact(lists, a, stub);
        match data
            .entry(key.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(items) => items.push(value),
            _ => unreachable!("every entry is an array"),
        }
    }
    let meta = json!({
        "schema": JSON_SCHEMA,
        "id": format!("IDREF{}", prepared.unix_timestamp()),
        "test": false,
        "prepared": prepared.format(&Rfc3339).unwrap_or_default(),
        "contentLanguages": ["en"],
        "sender": {"id": AGENCY},
    });
    super::json_message(&meta, &Value::Object(data))
}

/// The artefact under the `data` key its type has, and its object; a stub is its
/// identification only.
fn json_artefact(lists: &CodeLists, a: Artefact, stub: bool) -> (&'static str, Value) {
    let me = identity(lists, a);
    let mut v = json!({
        "id": me.id,
        "agencyID": AGENCY,
        "version": me.version,
        "name": me.name,
        "names": {"en": me.name},
        "links": [{"rel": "self", "urn": urn(me.class, &me.id, &me.version)}],
    });
    if stub {
        v["isExternalReference"] = json!(true);
    }
    let key = match a {
        Artefact::Dataflow(_) => "dataflows",
        Artefact::Codelist(_) => "codelists",
        Artefact::ConceptScheme => "conceptSchemes",
        Artefact::DataStructure(_) => "dataStructures",
    };
    if stub {
        return (key, v);
    }
    match a {
        Artefact::Dataflow(f) => {
            v["structure"] = json!(urn("datastructure.DataStructure", &f.dsd_id(), VERSION));
        }
        Artefact::Codelist(l) => {
            let codes: Vec<Value> = l
                .of(lists)
                .codes()
                .iter()
                .map(|code| {
                    let mut c =
                        json!({"id": code.id, "name": code.name, "names": {"en": code.name}});
                    if let Some(parent) = &code.parent {
                        c["parent"] = json!(parent);
                    }
                    c
                })
                .collect();
            v["codes"] = json!(codes);
        }
        Artefact::ConceptScheme => {
            let concepts: Vec<Value> = CONCEPTS
                .iter()
                .map(|(id, name)| json!({"id": id, "name": name, "names": {"en": name}}))
                .collect();
            v["concepts"] = json!(concepts);
        }
        Artefact::DataStructure(f) => v["dataStructureComponents"] = json_components(lists, f),
    }
    (key, v)
}

/// A data structure's components in SDMX-JSON 2.0: dimensions with the time dimension apart,
/// attributes attached to the observation, the measure.
fn json_components(lists: &CodeLists, f: Flow) -> Value {
    let components = f.components();
    let dimensions: Vec<Value> = components
        .iter()
        .filter(|c| c.role == Role::Dimension)
        .enumerate()
        .map(|(i, c)| {
            json!({
                "id": c.id,
                "position": i + 1,
                "conceptIdentity": concept_urn(c.concept),
                "localRepresentation": json_representation(lists, c),
            })
        })
        .collect();
    let mut dimension_list = json!({"id": "DimensionDescriptor", "dimensions": dimensions});
    if let Some(t) = components.iter().find(|c| c.role == Role::TimeDimension) {
        dimension_list["timeDimension"] = json!({
            "id": t.id,
            "conceptIdentity": concept_urn(t.concept),
            "localRepresentation": json_representation(lists, t),
        });
    }
    let of_role = |r: Role| components.iter().filter(move |c| c.role == r);
    let attributes: Vec<Value> = of_role(Role::Attribute)
        .map(|c| {
            json!({
                "id": c.id,
                "usage": if c.mandatory { "mandatory" } else { "optional" },
                "attributeRelationship": {"observation": {}},
                "conceptIdentity": concept_urn(c.concept),
                "localRepresentation": json_representation(lists, c),
            })
        })
        .collect();
    let measures: Vec<Value> = of_role(Role::Measure)
        .map(|c| {
            json!({
                "id": c.id,
                "usage": if c.mandatory { "mandatory" } else { "optional" },
                "conceptIdentity": concept_urn(c.concept),
                "localRepresentation": json_representation(lists, c),
            })
        })
        .collect();
    json!({
        "dimensionList": dimension_list,
        "attributeList": {"id": "AttributeDescriptor", "attributes": attributes},
        "measureList": {"id": "MeasureDescriptor", "measures": measures},
    })
}

fn concept_urn(concept: &str) -> String {
    format!(
        "{}.{concept}",
        urn("conceptscheme.Concept", CONCEPT_SCHEME, VERSION)
    )
}

fn json_representation(lists: &CodeLists, c: &Component) -> Value {
    if let Representation::Codes(l) = c.representation {
        let list = l.of(lists);
        return json!({"enumeration": urn("codelist.Codelist", &list.id, &list.version)});
    }
    let (data_type, facet) = text_format(c.representation);
    let mut format = json!({"dataType": data_type});
    match facet {
        Some(Facet::NonNegative) => format["minValue"] = json!(0),
        Some(Facet::Pattern(p)) => format["pattern"] = json!(p),
        None => {}
    }
    json!({"format": format})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dataflow_with_everything_it_refers_to_is_well_formed_xml() {
        let lists = CodeLists::builtin().unwrap();
        let asked = vec![Artefact::Dataflow(Flow::Aggregates(
            crate::schema::Dataflow::Routes,
        ))];
        let mut referenced = Vec::new();
        let mut todo = asked.clone();
        while let Some(a) = todo.pop() {
            for c in a.children() {
                if !referenced.contains(&c) {
                    referenced.push(c);
                    todo.push(c);
                }
            }
        }
        let text = structure_message(
            &lists,
            &Selection::new(asked, referenced),
            Detail::Full,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert!(text.contains("<str:Dataflow id=\"ROUTES_AGG\""), "{text}");
        assert!(text.contains("<str:Codelist id=\"CL_DRUG\""));
        assert!(text.contains("<Ref id=\"OPIOIDS\"/>"), "the drug hierarchy");
        assert!(text.contains("<str:TimeDimension id=\"TIME_PERIOD\" position=\"11\""));
        let doc = roxmltree::Document::parse(&text).unwrap();
        let ids = |tag: &str| -> Vec<&str> {
            doc.descendants()
                .filter(|n| n.tag_name().name() == tag && n.tag_name().namespace() == Some(STR))
                .filter_map(|n| n.attribute("id"))
                .collect()
        };
        assert_eq!(ids("DataStructure"), ["DSD_ROUTES_AGG"]);
        assert_eq!(ids("PrimaryMeasure"), ["OBS_VALUE"]);
        assert_eq!(
            ids("Attribute"),
            ["N_SEIZURES", "N_REPORTERS", "OBS_STATUS", "CONF_STATUS"]
        );
        assert_eq!(ids("Codelist").len(), 7, "ROUTES_AGG uses every list");
    }
}
