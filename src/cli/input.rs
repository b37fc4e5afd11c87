//! Reading submissions from files: SDMX-CSV 2.x and JSON.
//!
//! **SDMX-CSV**: the first three columns are `STRUCTURE` (or `STRUCTURE[x]`, declaring `x` as
//! the sub-field separator; default `;`), `STRUCTURE_ID` and `ACTION`; the rest are keyed by
//! header, in any order: `REF_AREA`, `FREQ`, `TIME_PERIOD`, `DRUG`, `TRANSPORT_MODE`,
//! `ORIGIN_AREA`, `DEPARTURE_AREA`, `TRANSIT_AREA` (several, in travel order, joined by the
//! sub-field separator), `DESTINATION_AREA`, `UNIT_MEASURE`, `N_SEIZURES`, `QUANTITY`,
//! `OBS_STATUS`, `CONF_STATUS`, `EMBARGO_TIME` (RFC 3339) and `COMMENT`. The published
//! structures' names are read too: `OBS_VALUE` for `QUANTITY`, `TRANSIT_PATH` (`TJK-KGZ`, `_Z`
//! for none) or `TRANSIT_AREA[]` for `TRANSIT_AREA`, and `_Z` for an optional value left out.
//! `STRUCTURE` is
//! `dataflow`; `STRUCTURE_ID` is `AGENCY:DATAFLOW(VERSION)` or just the dataflow id; `ACTION`
//! must be `R` (replace). A UTF-8 byte order mark and CRLF line ends are accepted.
//!
//! **JSON**: `{"submissions": [{"dataflow", "ref_area", "freq", "time_period", "action",
//! "observations": [{"drug", "quantity": "12.5", "n_seizures": 3, ...}]}]}` with the field
//! names of the proto; quantities are strings so that they stay exact.
//!
//! Either way, the rows are grouped into one submission per (dataflow, reporter, frequency,
//! period), in order of first appearance.

use std::{collections::HashMap, fmt, path::Path};

use serde::Deserialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::proto::{Observation, SubmissionBody};

/// Where each observation of a submission came from, to point errors at the input.
#[derive(Clone, Debug)]
pub enum Origin {
    /// Lines of a CSV file, one per observation.
    Csv {
        /// The file.
        file: String,
        /// Line number of each observation.
        lines: Vec<u64>,
    },
    /// One submission object of a JSON file.
    Json {
        /// The file.
        file: String,
        /// Index in `submissions`.
        index: usize,
    },
}

impl Origin {
    /// Names the place of `observations[i]`, or of the whole submission for `None`.
    pub fn locate(&self, observation: Option<usize>) -> String {
        match (self, observation) {
            (Origin::Csv { file, lines }, Some(i)) => match lines.get(i) {
                Some(line) => format!("{file}:{line}"),
                None => file.clone(),
            },
            (Origin::Csv { file, lines }, None) => match (lines.first(), lines.last()) {
                (Some(a), Some(b)) if a != b => format!("{file}:{a}-{b}"),
                (Some(a), _) => format!("{file}:{a}"),
                _ => file.clone(),
            },
            (Origin::Json { file, index }, Some(i)) => {
                format!("{file}: submissions[{index}].observations[{i}]")
            }
            (Origin::Json { file, index }, None) => format!("{file}: submissions[{index}]"),
        }
    }
}

/// One submission to sign and send.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The body (without `prepared_at`, set when signing).
    pub body: SubmissionBody,
    /// Where it came from.
    pub origin: Origin,
}

/// A problem with an input file.
#[derive(Debug, PartialEq, Eq)]
pub struct InputError {
    /// `file` or `file:line`.
    pub place: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Reads one file, by extension: `.json` is JSON, anything else SDMX-CSV.
pub fn read(path: &Path) -> Result<Vec<Prepared>, Vec<InputError>> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        vec![InputError {
            place: name.clone(),
            message: e.to_string(),
        }]
    })?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        read_json(&name, &bytes)
    } else {
        read_csv(&name, &bytes)
    }
}

const PREFIX_COLUMNS: [&str; 3] = ["STRUCTURE", "STRUCTURE_ID", "ACTION"];

/// Parses SDMX-CSV 2.x.
pub fn read_csv(name: &str, bytes: &[u8]) -> Result<Vec<Prepared>, Vec<InputError>> {
    let err = |line: Option<u64>, message: String| InputError {
        place: line.map_or_else(|| name.to_owned(), |l| format!("{name}:{l}")),
        message,
    };
    let text = csv_text(bytes)
        .map_err(|line| vec![err(Some(line), "the file is not UTF-8 text".into())])?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| vec![err(Some(1), format!("unreadable header: {e}"))])?;
    let header = CsvHeader::read(headers).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| err(Some(1), p))
            .collect::<Vec<_>>()
    })?;

    let mut problems = Vec::new();
    let mut groups: Vec<Prepared> = Vec::new();
    let mut index: HashMap<(String, String, String, String), usize> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(csv::Position::line);
                problems.push(err(line, format!("unreadable row: {e}")));
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        let (key, observation) = match header.row(&record) {
            Ok(Some(row)) => row,
            Ok(None) => continue,
            Err(problem) => {
                problems.push(err(Some(line), problem));
                continue;
            }
        };
        let slot = *index.entry(key.clone()).or_insert_with(|| {
            groups.push(Prepared {
                body: SubmissionBody {
                    dataflow: key.0.clone(),
                    ref_area: key.1.clone(),
                    freq: key.2.clone(),
                    time_period: key.3.clone(),
                    action: "R".into(),
                    ..Default::default()
                },
                origin: Origin::Csv {
                    file: name.to_owned(),
                    lines: Vec::new(),
                },
            });
            groups.len() - 1
        });
        let group = &mut groups[slot];
        group.body.observations.push(observation);
        if let Origin::Csv { lines, .. } = &mut group.origin {
            lines.push(line);
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if groups.is_empty() {
        return Err(vec![err(None, "no observations".into())]);
    }
    Ok(groups)
}

/// The file as UTF-8 text with LF line ends, or the line of its first byte that is not UTF-8.
/// The csv crate counts lines one short after CRLF line ends, and error messages need the
/// right line (a CR inside a field is refused by the schema anyway).
fn csv_text(bytes: &[u8]) -> Result<String, u64> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64
            + 1
    })?;
    Ok(text.replace("\r\n", "\n"))
}

/// A series key of the CSV: (dataflow, REF_AREA, FREQ, TIME_PERIOD).
type CsvKey = (String, String, String, String);

/// What an SDMX-CSV 2.x header says: where each known column is, and the separator of
/// multi-valued cells.
struct CsvHeader {
    column: HashMap<&'static str, usize>,
    separator: char,
    /// Whether the transit countries come as a TRANSIT_PATH code (`TJK-KGZ`, `_Z`).
    transit_path: bool,
}

/// The published structures' names for a column ([`crate::schema::structure`]): the measure
/// OBS_VALUE is the QUANTITY; TRANSIT_PATH and the multi-valued `TRANSIT_AREA[]` are the
/// transit countries.
fn column_name(h: &str) -> &str {
    match h {
        "OBS_VALUE" => "QUANTITY",
        "TRANSIT_PATH" | "TRANSIT_AREA[]" => "TRANSIT_AREA",
        h => h,
    }
}

impl CsvHeader {
    /// Reads the header, or says every problem with it.
    fn read(headers: &csv::StringRecord) -> Result<Self, Vec<String>> {
        let headers: Vec<String> = headers
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_ascii_uppercase())
            .collect();
        let mut separator = ';';
        let mut problems = Vec::new();
        match headers.first().map(String::as_str) {
            Some("STRUCTURE") => {}
            Some(h)
                if h.starts_with("STRUCTURE[") && h.ends_with(']') && h.chars().count() == 12 =>
            {
                separator = h.chars().nth(10).unwrap_or(';');
            }
            _ => problems.push("the first column must be STRUCTURE (SDMX-CSV 2.x)".into()),
        }
        if headers.get(1).map(String::as_str) != Some("STRUCTURE_ID")
            || headers.get(2).map(String::as_str) != Some("ACTION")
        {
            problems.push(
                "the second and third columns must be STRUCTURE_ID and ACTION (SDMX-CSV 2.x)"
                    .into(),
            );
        }
        let mut column: HashMap<&'static str, usize> = HashMap::new();
        let transit_path = headers.iter().any(|h| h == "TRANSIT_PATH");
        for (i, h) in headers.iter().enumerate().skip(PREFIX_COLUMNS.len()) {
            match KNOWN_COLUMNS.iter().find(|c| **c == column_name(h)) {
                Some(known) => {
                    if column.insert(known, i).is_some() {
                        problems.push(format!("column {h} appears twice"));
                    }
                }
                None => problems.push(format!(
                    "unknown column {h}; known columns: {} (OBS_VALUE for QUANTITY, TRANSIT_PATH \
                     for TRANSIT_AREA)",
                    KNOWN_COLUMNS.join(", ")
                )),
            }
        }
        for required in ["REF_AREA", "FREQ", "TIME_PERIOD", "DRUG"] {
            if !column.contains_key(required) {
                problems.push(format!("required column {required} is missing"));
            }
        }
        if problems.is_empty() {
            Ok(Self {
                column,
                separator,
                transit_path,
            })
        } else {
            Err(problems)
        }
    }

    /// One data row: its series key and observation, `None` for a blank row, or what is wrong
    /// with it.
    fn row(&self, record: &csv::StringRecord) -> Result<Option<(CsvKey, Observation)>, String> {
        // `_Z` ("not applicable"), as the structures write an optional dimension left out, is
        // the same as an empty cell.
        let get = |c: &str| {
            match self
                .column
                .get(c)
                .and_then(|&i| record.get(i))
                .unwrap_or("")
            {
                crate::schema::NOT_APPLICABLE => "",
                v => v,
            }
            .to_owned()
        };
        if record.iter().all(str::is_empty) {
            return Ok(None);
        }
        if record.get(0) != Some("dataflow") {
            return Err(format!(
                "STRUCTURE is \"{}\", expected \"dataflow\"",
                record.get(0).unwrap_or("")
            ));
        }
        match record.get(2).unwrap_or("") {
            "R" => {}
            "I" => {
                return Err(
                    "ACTION I (append) is not supported yet: send the whole period with ACTION R"
                        .into(),
                );
            }
            "D" => {
                return Err("ACTION D (delete) is not supported: submitted figures are never deleted; send a replacement with ACTION R".into());
            }
            other => {
                return Err(format!(
                    "ACTION \"{other}\" is not supported: use R (replace)"
                ));
            }
        }
        let n_seizures = match get("N_SEIZURES").as_str() {
            "" => None,
            n => Some(
                n.parse::<u64>()
                    .map_err(|_| format!("N_SEIZURES \"{n}\" is not a whole number of seizures"))?,
            ),
        };
        let embargo_time = match get("EMBARGO_TIME").as_str() {
            "" => None,
            t => Some(parse_time(t).ok_or_else(|| {
                format!("EMBARGO_TIME \"{t}\" is not an RFC 3339 time such as 2025-06-01T00:00:00Z")
            })?),
        };
        let observation = Observation {
            drug: get("DRUG"),
            transport_mode: get("TRANSPORT_MODE"),
            origin_area: get("ORIGIN_AREA"),
            departure_area: get("DEPARTURE_AREA"),
            transit_area: get("TRANSIT_AREA")
                .split(if self.transit_path {
                    crate::schema::structure::PATH_SEPARATOR
                } else {
                    self.separator
                })
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            destination_area: get("DESTINATION_AREA"),
            n_seizures,
            quantity: get("QUANTITY"),
            unit_measure: get("UNIT_MEASURE"),
            obs_status: get("OBS_STATUS"),
            conf_status: get("CONF_STATUS"),
            embargo_time,
            comment: get("COMMENT"),
        };
        let key = (
            dataflow_of(record.get(1).unwrap_or("")),
            get("REF_AREA"),
            get("FREQ"),
            get("TIME_PERIOD"),
        );
        Ok(Some((key, observation)))
    }
}

const KNOWN_COLUMNS: [&str; 16] = [
    "REF_AREA",
    "FREQ",
    "TIME_PERIOD",
    "DRUG",
    "TRANSPORT_MODE",
    "ORIGIN_AREA",
    "DEPARTURE_AREA",
    "TRANSIT_AREA",
    "DESTINATION_AREA",
    "UNIT_MEASURE",
    "N_SEIZURES",
    "QUANTITY",
    "OBS_STATUS",
    "CONF_STATUS",
    "EMBARGO_TIME",
    "COMMENT",
];

/// `FOCALGATE:SEIZURES(1.0)` or `SEIZURES` → `SEIZURES`.
fn dataflow_of(structure_id: &str) -> String {
    let id = structure_id
        .split_once(':')
        .map_or(structure_id, |(_, rest)| rest);
    id.split_once('(').map_or(id, |(id, _)| id).to_owned()
}

fn parse_time(s: &str) -> Option<prost_types::Timestamp> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    Some(prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFile {
    submissions: Vec<JsonSubmission>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSubmission {
    dataflow: String,
    ref_area: String,
    freq: String,
    time_period: String,
    #[serde(default = "replace")]
    action: String,
    #[serde(default)]
    supersedes_revision: Option<u32>,
    observations: Vec<JsonObservation>,
}

fn replace() -> String {
    "R".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonObservation {
    drug: String,
    #[serde(default)]
    transport_mode: String,
    #[serde(default)]
    origin_area: String,
    #[serde(default)]
    departure_area: String,
    #[serde(default)]
    transit_area: Vec<String>,
    #[serde(default)]
    destination_area: String,
    #[serde(default)]
    n_seizures: Option<u64>,
    #[serde(default)]
    quantity: Option<JsonDecimal>,
    #[serde(default)]
    unit_measure: String,
    #[serde(default)]
    obs_status: String,
    #[serde(default)]
    conf_status: String,
    #[serde(default)]
    embargo_time: Option<String>,
    #[serde(default)]
    comment: String,
}

/// A quantity in JSON: a string keeps it exact; a bare number is refused with a hint.
#[derive(Deserialize)]
#[serde(untagged)]
enum JsonDecimal {
    Text(String),
    Number(serde_json::Number),
}

/// Parses the JSON input format.
pub fn read_json(name: &str, bytes: &[u8]) -> Result<Vec<Prepared>, Vec<InputError>> {
    let err = |place: String, message: String| InputError { place, message };
    let file: JsonFile = serde_json::from_slice(bytes).map_err(|e| {
        vec![err(
            format!("{name}:{}", e.line()),
            format!("not a focalgate JSON file: {e}"),
        )]
    })?;
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (index, s) in file.submissions.into_iter().enumerate() {
        let mut observations = Vec::with_capacity(s.observations.len());
        for (i, o) in s.observations.into_iter().enumerate() {
            let place = || format!("{name}: submissions[{index}].observations[{i}]");
            let quantity = match o.quantity {
                None => String::new(),
                Some(JsonDecimal::Text(t)) => t,
                Some(JsonDecimal::Number(n)) => {
                    problems.push(err(
                        place(),
                        format!(
                            "quantity {n} must be a string such as \"{n}\" so that it stays exact"
                        ),
                    ));
                    continue;
                }
            };
            let embargo_time = match o.embargo_time.as_deref() {
                None | Some("") => None,
                Some(t) => match parse_time(t) {
                    Some(ts) => Some(ts),
                    None => {
                        problems.push(err(
                            place(),
                            format!("embargo_time \"{t}\" is not an RFC 3339 time"),
                        ));
                        continue;
                    }
                },
            };
            observations.push(Observation {
                drug: o.drug,
                transport_mode: o.transport_mode,
                origin_area: o.origin_area,
                departure_area: o.departure_area,
                transit_area: o.transit_area,
                destination_area: o.destination_area,
                n_seizures: o.n_seizures,
                quantity,
                unit_measure: o.unit_measure,
                obs_status: o.obs_status,
                conf_status: o.conf_status,
                embargo_time,
                comment: o.comment,
            });
        }
        out.push(Prepared {
            body: SubmissionBody {
                dataflow: s.dataflow,
                ref_area: s.ref_area,
                freq: s.freq,
                time_period: s.time_period,
                action: s.action,
                supersedes_revision: s.supersedes_revision,
                prepared_at: None,
                observations,
            },
            origin: Origin::Json {
                file: name.to_owned(),
                index,
            },
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if out.is_empty() {
        return Err(vec![err(name.to_owned(), "no submissions".into())]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_bom_crlf_any_column_order_groups_by_period() {
        let text = "\u{feff}STRUCTURE,STRUCTURE_ID,ACTION,TIME_PERIOD,REF_AREA,FREQ,DRUG,QUANTITY,UNIT_MEASURE,N_SEIZURES\r\n\
                    dataflow,FOCALGATE:SEIZURES(1.0),R,2024-Q1,KAZ,Q,HEROIN,12.5,KG,3\r\n\
                    dataflow,FOCALGATE:SEIZURES(1.0),R,2024-Q2,KAZ,Q,HEROIN,1,KG,1\r\n\
                    dataflow,FOCALGATE:SEIZURES(1.0),R,2024-Q1,KAZ,Q,OPIUM,7,KG,\r\n";
        let got = read_csv("k.csv", text.as_bytes()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].body.time_period, "2024-Q1");
        assert_eq!(got[0].body.observations.len(), 2);
        assert_eq!(got[0].body.observations[0].quantity, "12.5");
        assert_eq!(got[0].body.observations[0].n_seizures, Some(3));
        assert_eq!(got[0].body.observations[1].n_seizures, None);
        assert_eq!(got[0].origin.locate(Some(1)), "k.csv:4");
        assert_eq!(got[1].origin.locate(None), "k.csv:3");
    }

    #[test]
    fn csv_transit_uses_the_declared_sub_field_separator() {
        let text = "STRUCTURE[|],STRUCTURE_ID,ACTION,REF_AREA,FREQ,TIME_PERIOD,DRUG,ORIGIN_AREA,TRANSIT_AREA,DESTINATION_AREA,TRANSPORT_MODE,N_SEIZURES\n\
                    dataflow,ROUTES,R,TJK,A,2024,HEROIN,AFG,UZB|KAZ,RUS,ROAD,2\n";
        let got = read_csv("r.csv", text.as_bytes()).unwrap();
        assert_eq!(got[0].body.observations[0].transit_area, ["UZB", "KAZ"]);
    }

    #[test]
    fn csv_in_the_published_structures_names_reads_the_same() {
        let text = "STRUCTURE,STRUCTURE_ID,ACTION,FREQ,REF_AREA,DRUG,ORIGIN_AREA,DEPARTURE_AREA,TRANSIT_PATH,DESTINATION_AREA,TRANSPORT_MODE,UNIT_MEASURE,TIME_PERIOD,OBS_VALUE,N_SEIZURES\n\
                    dataflow,FOCALGATE:ROUTES(1.0),R,A,TJK,HEROIN,AFG,_Z,UZB-KAZ,RUS,ROAD,KG,2024,12.5,2\n\
                    dataflow,FOCALGATE:ROUTES(1.0),R,A,TJK,HEROIN,AFG,AFG,_Z,RUS,RAIL,_Z,2024,,4\n";
        let got = read_csv("r.csv", text.as_bytes()).unwrap();
        let [a, b] = &got[0].body.observations[..] else {
            panic!("{got:?}")
        };
        assert_eq!(
            (a.transit_area.as_slice(), a.quantity.as_str()),
            (&["UZB".to_owned(), "KAZ".to_owned()][..], "12.5")
        );
        assert_eq!(a.departure_area, "");
        assert!(b.transit_area.is_empty());
        assert_eq!((b.unit_measure.as_str(), b.n_seizures), ("", Some(4)));
    }

    #[test]
    fn csv_problems_are_all_reported_with_lines() {
        let text = "STRUCTURE,STRUCTURE_ID,ACTION,REF_AREA,FREQ,TIME_PERIOD,DRUG,N_SEIZURES,EMBARGO_TIME\n\
                    dataflow,SEIZURES,D,KAZ,A,2024,HEROIN,1,\n\
                    dataflow,SEIZURES,R,KAZ,A,2024,HEROIN,many,\n\
                    dataflow,SEIZURES,R,KAZ,A,2024,HEROIN,1,tomorrow\n";
        let errs = read_csv("x.csv", text.as_bytes()).unwrap_err();
        let places: Vec<_> = errs.iter().map(|e| e.place.as_str()).collect();
        assert_eq!(places, ["x.csv:2", "x.csv:3", "x.csv:4"]);
        assert!(errs[0].message.contains("never deleted"), "{}", errs[0]);

        let errs = read_csv(
            "y.csv",
            b"STRUCTURE,STRUCTURE_ID,ACTION,REF_AREA,FREQ,TIME_PERIOD,DRUG,QUANTITTY\n",
        )
        .unwrap_err();
        assert!(
            errs[0].message.starts_with("unknown column QUANTITTY"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn json_keeps_quantities_exact_and_refuses_numbers() {
        let ok = br#"{"submissions":[{"dataflow":"SEIZURES","ref_area":"KAZ","freq":"A","time_period":"2024",
            "observations":[{"drug":"HEROIN","quantity":"0.1","unit_measure":"KG","embargo_time":"2030-01-01T00:00:00Z","conf_status":"E"}]}]}"#;
        let got = read_json("a.json", ok).unwrap();
        assert_eq!(got[0].body.observations[0].quantity, "0.1");
        assert_eq!(got[0].body.action, "R");
        assert!(got[0].body.observations[0].embargo_time.is_some());

        let bad = br#"{"submissions":[{"dataflow":"SEIZURES","ref_area":"KAZ","freq":"A","time_period":"2024",
            "observations":[{"drug":"HEROIN","quantity":0.1,"unit_measure":"KG"}]}]}"#;
        let errs = read_json("b.json", bad).unwrap_err();
        assert_eq!(errs[0].place, "b.json: submissions[0].observations[0]");
        assert!(errs[0].message.contains("must be a string"), "{}", errs[0]);
    }
}
