//! The `focalgate` command line: one binary, one subcommand per job.

mod admin;
mod ca;
mod chart;
mod identity;
mod input;
mod log;
mod query;
mod serve;
mod store;
mod submissions;
mod submit;
mod witness;
mod witnessed;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::tls::IdentityDir;

/// focalgate: a secure gateway for partner countries' drug-seizure and trafficking-route
/// statistics.
#[derive(Debug, Parser)]
#[command(name = "focalgate", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// Sign and submit statistics from SDMX-CSV or JSON files, one submission per period.
    Submit(submit::SubmitArgs),
    /// List or fetch your member's submissions.
    #[command(subcommand)]
    Submissions(submissions::SubmissionsCommand),
    /// Aggregate statistics: totals and trends by drug, period, country and route.
    Query(Box<query::QueryArgs>),
    /// The access trail: every statistics query, who asked and what came back (auditors, admins).
    AccessTrail(query::TrailArgs),
    /// The transparency log: its key, a full verification, monitoring for forks and rollbacks.
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Check receipts offline.
    #[command(subcommand)]
    Receipt(log::ReceiptCommand),
    /// Make a key and a certificate signing request for your member (the key stays with you).
    Csr(admin::CsrArgs),
    /// A member's identity for a browser: its auth certificate and key as PKCS#12.
    #[command(subcommand)]
    Identity(identity::IdentityCommand),
    /// Manage certificates and policy on a running gateway (admin identity).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// The partnership CA: create it, issue and revoke certificates, publish CRLs.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// A witness of the log, run by a partner: cosigns checkpoints only while the log only grows.
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
    /// Ask a gateway whether it serves (grpc.health.v1 over mTLS); exit code 0 if it does.
    Health(HealthArgs),
    /// Copy a store to another (SQLite or PostgreSQL).
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Write a consistent backup of a SQLite store, while its gateway runs.
    Backup(store::BackupArgs),
    /// Write the SDMX structures (SDMX-ML 2.1 or SDMX-JSON 2.0): dataflows, data structure
    /// definitions, the concept scheme and every code list, as the gateway validates and serves
    /// them.
    Structures {
        /// The deployment's code lists replacing built-in ones (its `schema.codelists_dir`).
        #[arg(long)]
        codelists: Option<PathBuf>,
        /// The message's format.
        #[arg(long, value_enum, default_value_t = StructureFormat::SdmxMl)]
        format: StructureFormat,
        /// File to write; default: standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the synthetic sample data files (SDMX-CSV) used by the walkthrough and tests.
    Samples {
        /// Folder to write into.
        #[arg(long, default_value = "tests/data")]
        out: PathBuf,
    },
}

/// The format of `focalgate structures`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum StructureFormat {
    /// SDMX-ML 2.1 (sdmx1, rsdmx, the .Stat Suite).
    SdmxMl,
    /// SDMX-JSON 2.0 (pysdmx, web clients).
    SdmxJson,
}

/// `focalgate structures`: every structure, in full.
fn structures(
    codelists: Option<PathBuf>,
    format: StructureFormat,
    out: Option<PathBuf>,
) -> Result<(), String> {
    use crate::sdmx::{Artefact, Detail, Selection, structure_json, structure_message};
    let lists = crate::schema::CodeLists::load(codelists.as_deref()).map_err(|e| e.to_string())?;
    let write = match format {
        StructureFormat::SdmxMl => structure_message,
        StructureFormat::SdmxJson => structure_json,
    };
    let text = write(
        &lists,
        &Selection::new(Artefact::all(), Vec::new()),
        Detail::Full,
        time::OffsetDateTime::now_utc(),
    );
    match out {
        Some(path) => {
            std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// `focalgate health`.
#[derive(Debug, Args)]
struct HealthArgs {
    #[command(flatten)]
    connection: Connection,
    /// The service to ask about (e.g. focalgate.v1.Submissions); default: the whole server.
    #[arg(long, default_value = "")]
    service: String,
}

async fn health(args: HealthArgs) -> Result<(), String> {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let channel = args.connection.connect().await?;
    let status = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: args.service.clone(),
        })
        .await
        .map_err(|s| describe_status(&s, |_| String::new()))?
        .into_inner()
        .status();
    if status == ServingStatus::Serving {
        println!("serving");
        Ok(())
    } else {
        Err(format!("not serving: {}", status.as_str_name()))
    }
}

/// How a client command reaches the gateway.
#[derive(Debug, Args)]
struct Connection {
    /// Gateway address.
    #[arg(
        long,
        env = "FOCALGATE_SERVER",
        default_value = "https://127.0.0.1:50051"
    )]
    server: String,
    /// Identity folder holding ca.pem, auth.pem, auth.key, signing.pem and signing.key.
    #[arg(long, env = "FOCALGATE_IDENTITY")]
    identity: PathBuf,
}

/// tonic client TLS settings of an identity: trust `ca.pem`, present `auth.pem`/`auth.key`.
fn client_tls(
    identity: &IdentityDir,
) -> Result<tonic::transport::ClientTlsConfig, crate::tls::TlsError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(identity.read("ca.pem")?))
        .identity(Identity::from_pem(
            identity.read("auth.pem")?,
            identity.read("auth.key")?,
        )))
}

impl Connection {
    fn identity(&self) -> IdentityDir {
        IdentityDir::new(&self.identity)
    }

    /// Opens a mutual-TLS channel to the gateway, and says so plainly if the gateway refuses
    /// this identity's certificate (revoked, expired, foreign).
    async fn connect(&self) -> Result<tonic::transport::Channel, String> {
        let tls = client_tls(&self.identity()).map_err(|e| e.to_string())?;
        let endpoint = tonic::transport::Endpoint::from_shared(self.server.clone())
            .map_err(|e| format!("--server {}: {e}", self.server))?;
        let uri = endpoint.uri().clone();
        let channel = endpoint
            .tls_config(tls)
            .map_err(|e| format!("TLS: {e}"))?
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {}", self.server, source_chain(&e)))?;
        if let Some(host) = uri.host() {
            let port = uri.port_u16().unwrap_or(443);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if let Some(why) = self.identity().refusal(host, port).await {
                return Err(format!("{}: {why}", self.server));
            }
        }
        Ok(channel)
    }
}

/// An error and its causes on one line.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// The reason the gateway gave when it closed a connection with HTTP/2 GOAWAY
/// ENHANCE_YOUR_CALM (a connection limit): its debug data, which h2 writes as `(b"…")` at the
/// end of the error.
fn go_away_reason(status: &tonic::Status) -> Option<String> {
    if status.code() != tonic::Code::ResourceExhausted {
        return None;
    }
    let chain = source_chain(status);
    let start = chain.rfind("(b\"")? + 3;
    let end = start + chain[start..].find("\")")?;
    Some(chain[start..end].to_owned())
}

/// Describes a failed call for a person: code, message, and every field violation, each
/// prefixed by `locate(field)` (where in the input it came from).
fn describe_status(status: &tonic::Status, locate: impl Fn(&str) -> String) -> String {
    use tonic_types::StatusExt;
    let Some(bad) = status.get_details_bad_request() else {
        let hint = if let Some(why) = go_away_reason(status) {
            format!(" (the gateway closed the connection: {why})")
        } else if status.code() == tonic::Code::Unknown
            && status.message().contains("transport error")
        {
            " (the connection failed: if the gateway refused the TLS handshake, your certificate may be revoked, expired or not from the partnership CA)".to_owned()
        } else {
            String::new()
        };
        return format!("{:?}: {}{hint}", status.code(), status.message());
    };
    let mut out = format!(
        "{:?}, {} problem(s)",
        status.code(),
        bad.field_violations.len()
    );
    for v in bad.field_violations {
        out.push_str(&format!(
            "\n  {}{}: {} ({})",
            locate(&v.field),
            v.field,
            v.description,
            v.reason
        ));
    }
    out
}

/// Rows as an aligned table, columns two spaces apart; columns for which `right` holds are
/// right-aligned (numbers). The first row is the header.
fn aligned(rows: &[Vec<String>], right: impl Fn(usize) -> bool) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if right(i) {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Ends the process quietly, as a Unix tool does, when standard output is a pipe its reader
/// closed (`focalgate … | head`): `print!` then panics with "Broken pipe", since Rust ignores
/// SIGPIPE and restoring it would take unsafe code. Every other panic is reported as before.
fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            // 128 + SIGPIPE, what a shell reports for a tool the signal ended.
            std::process::exit(141);
        }
        report(info);
    }));
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Submit(args) => submit::run(args).await,
            Command::Submissions(cmd) => submissions::run(cmd).await,
            Command::Log(cmd) => log::run(cmd).await,
            Command::Query(args) => query::run(*args).await,
            Command::AccessTrail(args) => query::trail(args).await,
            Command::Receipt(cmd) => log::run_receipt(cmd).await,
            Command::Ca(cmd) => ca::run(cmd),
            Command::Witness(cmd) => witness::run(cmd).await,
            Command::Csr(args) => admin::csr(args),
            Command::Identity(cmd) => identity::run(cmd),
            Command::Health(args) => health(args).await,
            Command::Store(cmd) => store::run(cmd).await,
            Command::Backup(args) => store::backup(args).await,
            Command::Admin(cmd) => admin::run(cmd).await,
            Command::Structures {
                codelists,
                format,
                out,
            } => structures(codelists, format, out),
            Command::Samples { out } => {
                crate::synthetic::write_samples(&out).map_err(|e| e.to_string())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
