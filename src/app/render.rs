//! Answers to aggregate queries in the formats analysts' tools read: CSV named after the
//! concepts, SDMX-CSV 2.0 of the aggregate dataflows, and JSON with the header. The CLI and the HTTP API render the same.

use serde_json::json;

use crate::{
    proto::{AggregateRow, QueryHeader},
    receipt::format_timestamp,
    schema::{CodeLists, Dataflow, structure::Flow},
    sdmx::data,
};

/// An answer: the dataflow asked, the header, the rows, as the gateway computed them.
#[derive(Clone, Debug)]
pub struct Answer {
    /// SEIZURES or ROUTES.
    pub dataflow: String,
    /// Dimensions, tree size, checkpoint, thresholds, when.
    pub header: QueryHeader,
    /// The cells.
    pub rows: Vec<AggregateRow>,
}

/// The formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// CSV named after the concepts.
    Csv,
    /// SDMX-CSV 2.0 of the aggregate dataflow (`SEIZURES_AGG`, `ROUTES_AGG`).
    SdmxCsv,
    /// JSON, with the header.
    Json,
}

/// Why an answer could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Writing CSV.
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    /// Writing JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The code lists that name codes.
    #[error(transparent)]
    CodeLists(#[from] crate::schema::CodeListError),
    /// An answer of a dataflow the schema does not have.
    #[error("{0} is not a dataflow of the schema")]
    Dataflow(String),
}

/// The answer's columns: dimensions, then UNIT_MEASURE and the measures and attributes.
pub fn columns(header: &QueryHeader) -> Vec<String> {
    let mut c = header.dimensions.clone();
    c.extend(
        [
            "UNIT_MEASURE",
            "QUANTITY",
            "N_SEIZURES",
            "N_REPORTERS",
            "OBS_STATUS",
            "CONF_STATUS",
        ]
        .map(String::from),
    );
    c
}

/// N_SEIZURES and N_REPORTERS as printed: empty when withheld.
fn counts(r: &AggregateRow) -> [String; 2] {
    let withheld = r.obs_status == "Q";
    [
        r.n_seizures.map(|n| n.to_string()).unwrap_or_default(),
        if withheld {
            String::new()
        } else {
            r.n_reporters.to_string()
        },
    ]
}

/// A row's values, in the order of [`columns`].
pub fn values(r: &AggregateRow) -> Vec<String> {
    let [n_seizures, n_reporters] = counts(r);
    let mut v = r.key.clone();
    v.extend([
        r.unit_measure.clone(),
        r.quantity.clone(),
        n_seizures,
        n_reporters,
        r.obs_status.clone(),
        r.conf_status.clone(),
    ]);
    v
}

fn csv_line(fields: &[String]) -> Result<String, RenderError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(fields)?;
    let bytes = w
        .into_inner()
        .map_err(|e| RenderError::Csv(e.into_error().into()))?;
    // Every field is a String: the bytes are UTF-8.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Renders an answer in one of the formats.
pub fn render(a: &Answer, format: Format) -> Result<String, RenderError> {
    let mut out = String::new();
    match format {
        Format::Csv => {
            out.push_str(&csv_line(&columns(&a.header))?);
            for r in &a.rows {
                out.push_str(&csv_line(&values(r))?);
            }
        }
        Format::SdmxCsv => {
            // The API's SDMX-CSV 2.0, of the aggregate dataflow (sdmx::data).
            let dataflow = Dataflow::from_id(&a.dataflow)
                .ok_or_else(|| RenderError::Dataflow(a.dataflow.clone()))?;
            let flow = Flow::Aggregates(dataflow);
            let lists = CodeLists::builtin()?;
            let h = &a.header;
            let keys = crate::schema::structure::AggregateKeys::new(
                dataflow,
                &h.dimensions,
                &h.freq,
                &h.time_range,
            );
            let obs = data::aggregate_observations(flow, &keys, &a.rows);
            out = data::sdmx_csv(flow, &obs, &data::Options::default(), &lists);
        }
        Format::Json => {
            let rows: Vec<_> = a
                .rows
                .iter()
                .map(|r| {
                    let key: serde_json::Map<String, serde_json::Value> = a
                        .header
                        .dimensions
                        .iter()
                        .cloned()
                        .zip(r.key.iter().map(|k| json!(k)))
                        .collect();
                    json!({
                        "key": key,
                        "unit_measure": r.unit_measure,
                        "quantity": (!r.quantity.is_empty()).then_some(&r.quantity),
                        "n_seizures": r.n_seizures,
                        "n_reporters": (r.obs_status != "Q").then_some(r.n_reporters),
                        "obs_status": r.obs_status,
                        "conf_status": r.conf_status,
                        "total": r.total,
                    })
                })
                .collect();
            let doc = json!({
                "dataflow": a.dataflow,
                "dimensions": a.header.dimensions,
                "tree_size": a.header.tree_size,
                "checkpoint": a.header.checkpoint,
                "time_range": (!a.header.time_range.is_empty()).then_some(&a.header.time_range),
                "min_seizures": a.header.min_seizures,
                "min_reporters": a.header.min_reporters,
                "computed_at": a.header.computed_at.as_ref().and_then(format_timestamp),
                "rows": rows,
            });
            out = serde_json::to_string_pretty(&doc)? + "\n";
        }
    }
    Ok(out)
}
