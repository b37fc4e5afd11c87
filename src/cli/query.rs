//! `focalgate query` and `focalgate access-trail`: aggregates for analysts, in the formats their
//! tools read, and the record of who asked what.

use crate::rpc::statistics_client::StatisticsClient;
use std::{io::IsTerminal, path::PathBuf};

use clap::{Args, ValueEnum};

use super::{Connection, chart};
use crate::{
    app::render::{self, Answer},
    proto::{AggregateQuery, ListAccessTrailRequest, aggregate_query::AsOf, query_response::Item},
    receipt::format_timestamp,
};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned table (the default on a terminal).
    Table,
    /// CSV named after the concepts (the default otherwise).
    Csv,
    /// SDMX-CSV 2.x.
    SdmxCsv,
    /// JSON, with the header.
    Json,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    connection: Connection,
    /// SEIZURES or ROUTES.
    #[arg(long)]
    dataflow: String,
    /// Frequency of the series combined: A, Q or M (default: the one the selected series have).
    #[arg(long)]
    freq: Option<String>,
    /// Roll periods up to Q or A.
    #[arg(long)]
    rollup: Option<String>,
    /// Dimensions to group by, comma-separated, case-insensitive (drug,unit_measure,…).
    #[arg(long, value_delimiter = ',')]
    group_by: Vec<String>,
    /// Periods starting on or after this one.
    #[arg(long)]
    from: Option<String>,
    /// Periods ending on or before this one.
    #[arg(long)]
    to: Option<String>,
    /// Reporters (comma-separated).
    #[arg(long, value_delimiter = ',')]
    reporter: Vec<String>,
    /// Drugs or drug groups.
    #[arg(long, value_delimiter = ',')]
    drug: Vec<String>,
    /// Transport modes.
    #[arg(long, value_delimiter = ',')]
    transport_mode: Vec<String>,
    /// ROUTES: origins.
    #[arg(long, value_delimiter = ',')]
    origin: Vec<String>,
    /// ROUTES: routes through any of these countries.
    #[arg(long, value_delimiter = ',')]
    transit: Vec<String>,
    /// ROUTES: destinations.
    #[arg(long, value_delimiter = ',')]
    destination: Vec<String>,
    /// Observation statuses.
    #[arg(long, value_delimiter = ',')]
    obs_status: Vec<String>,
    /// Units of measure.
    #[arg(long, value_delimiter = ',')]
    unit: Vec<String>,
    /// Add a total row per unit.
    #[arg(long)]
    totals: bool,
    /// Keep the N largest cells per unit (top routes).
    #[arg(long)]
    top: Option<u32>,
    /// The data as it was in the log of this many entries (a signed checkpoint's size).
    #[arg(long, conflicts_with = "as_of")]
    as_of_size: Option<u64>,
    /// The data as it was at this time (RFC 3339).
    #[arg(long)]
    as_of: Option<String>,
    /// Output format; a table on a terminal, CSV otherwise.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Also draw the answer as SVG: a time series per series key, a flow chart for routes.
    #[arg(long)]
    chart: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TrailArgs {
    #[command(flatten)]
    connection: Connection,
    /// At most this many records, newest first.
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

fn failed(status: tonic::Status) -> String {
    super::describe_status(&status, |_| String::new())
}

pub async fn run(args: QueryArgs) -> Result<(), String> {
    let as_of = match (&args.as_of_size, &args.as_of) {
        (Some(n), _) => Some(AsOf::AsOfTreeSize(*n)),
        (None, Some(t)) => {
            let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| format!("--as-of {t}: not an RFC 3339 time"))?;
            Some(AsOf::AsOfTime(prost_types::Timestamp {
                seconds: t.unix_timestamp(),
                nanos: t.nanosecond() as i32,
            }))
        }
        (None, None) => None,
    };
    let request = AggregateQuery {
        dataflow: args.dataflow.clone(),
        freq: args.freq.clone().unwrap_or_default(),
        rollup: args.rollup.clone().unwrap_or_default(),
        period_from: args.from.clone().unwrap_or_default(),
        period_to: args.to.clone().unwrap_or_default(),
        ref_area: args.reporter.clone(),
        drug: args.drug.clone(),
        transport_mode: args.transport_mode.clone(),
        origin_area: args.origin.clone(),
        transit_area: args.transit.clone(),
        destination_area: args.destination.clone(),
        obs_status: args.obs_status.clone(),
        unit_measure: args.unit.clone(),
        group_by: args.group_by.clone(),
        totals: args.totals,
        top_n: args.top.unwrap_or(0),
        as_of,
    };
    let mut client = StatisticsClient::new(args.connection.connect().await?);
    let mut stream = client.query(request).await.map_err(failed)?.into_inner();
    let mut header = None;
    let mut rows = Vec::new();
    while let Some(item) = stream.message().await.map_err(failed)? {
        match item.item {
            Some(Item::Header(h)) => header = Some(h),
            Some(Item::Row(r)) => rows.push(r),
            None => {}
        }
    }
    let header = header.ok_or("the gateway sent no header")?;
    let answer = Answer {
        dataflow: args.dataflow.to_ascii_uppercase(),
        header,
        rows,
    };
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Csv
    });
    print!("{}", render(&answer, format)?);
    if let Some(path) = &args.chart {
        let svg = chart::draw(&answer)?;
        std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    let suppressed = answer.rows.iter().filter(|r| r.obs_status == "Q").count();
    eprintln!(
        "{} row(s), {suppressed} suppressed; computed at the log of {} entries",
        answer.rows.len(),
        answer.header.tree_size
    );
    Ok(())
}

/// Renders an answer in one of the formats: a table here, the others by the library.
fn render(a: &Answer, format: Format) -> Result<String, String> {
    let format = match format {
        Format::Table => {
            let head = render::columns(&a.header);
            let numeric = |i: usize| i >= head.len() - 5 && i < head.len() - 2;
            let rows: Vec<Vec<String>> = std::iter::once(head.clone())
                .chain(a.rows.iter().map(render::values))
                .collect();
            return Ok(super::aligned(&rows, numeric));
        }
        Format::Csv => render::Format::Csv,
        Format::SdmxCsv => render::Format::SdmxCsv,
        Format::Json => render::Format::Json,
    };
    render::render(a, format).map_err(|e| e.to_string())
}

pub async fn trail(args: TrailArgs) -> Result<(), String> {
    let mut client = StatisticsClient::new(args.connection.connect().await?);
    let mut stream = client
        .list_access_trail(ListAccessTrailRequest {
            before_id: 0,
            limit: args.limit,
        })
        .await
        .map_err(failed)?
        .into_inner();
    println!(
        "{:>6}  {:<24}  {:<14}  {:>9}  {:>6}  {:>10}  REQUEST",
        "ID", "AT", "MEMBER", "TREE", "ROWS", "SUPPRESSED"
    );
    while let Some(r) = stream.message().await.map_err(failed)? {
        println!(
            "{:>6}  {:<24}  {:<14}  {:>9}  {:>6}  {:>10}  {}",
            r.id,
            r.at.as_ref().and_then(format_timestamp).unwrap_or_default(),
            r.member,
            r.tree_size,
            r.rows,
            r.suppressed,
            r.request
        );
    }
    Ok(())
}
