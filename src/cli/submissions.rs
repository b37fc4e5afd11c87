//! `focalgate submissions list|get`.

use crate::rpc::submissions_client::SubmissionsClient;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use prost::Message;

use super::Connection;
use crate::{
    envelope,
    identity::{cert_digest_hex, public_key_of},
    proto::{GetSubmissionRequest, ListSubmissionsRequest, RevisionStatus},
    receipt::format_timestamp,
    schema::SUBMISSION_PAYLOAD_TYPE,
};

#[derive(Debug, Subcommand)]
pub enum SubmissionsCommand {
    /// List submissions, newest first: id, dataflow, period, revision, status, time received.
    List(ListArgs),
    /// Show one submission and re-verify its signature with the certificate the gateway returns.
    Get(GetArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    connection: Connection,
    /// Only this dataflow (SEIZURES, ROUTES).
    #[arg(long)]
    dataflow: Option<String>,
    /// Only periods starting on or after this one (2023, 2024-Q2, 2024-M07).
    #[arg(long)]
    from: Option<String>,
    /// Only periods ending on or before this one.
    #[arg(long)]
    to: Option<String>,
    /// Only this reporter (auditors and administrators).
    #[arg(long)]
    ref_area: Option<String>,
    /// Only current revisions.
    #[arg(long)]
    current: bool,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Submission id, e.g. KAZ.SEIZURES.2024-Q3.r2.
    id: String,
    #[command(flatten)]
    connection: Connection,
    /// Also write the stored envelope's exact bytes to this file.
    #[arg(long)]
    envelope: Option<PathBuf>,
}

pub async fn run(cmd: SubmissionsCommand) -> Result<(), String> {
    match cmd {
        SubmissionsCommand::List(args) => list(args).await,
        SubmissionsCommand::Get(args) => get(args).await,
    }
}

fn failed(status: tonic::Status) -> String {
    super::describe_status(&status, |_| String::new())
}

async fn list(args: ListArgs) -> Result<(), String> {
    let mut client = SubmissionsClient::new(args.connection.connect().await?);
    let request = ListSubmissionsRequest {
        dataflow: args.dataflow.unwrap_or_default(),
        period_from: args.from.unwrap_or_default(),
        period_to: args.to.unwrap_or_default(),
        ref_area: args.ref_area.unwrap_or_default(),
        current_only: args.current,
    };
    let mut stream = client
        .list_submissions(request)
        .await
        .map_err(failed)?
        .into_inner();
    println!(
        "{:<34} {:<9} {:<9} {:>4} {:<10} {:<24} {:>6}",
        "ID", "DATAFLOW", "PERIOD", "REV", "STATUS", "RECEIVED", "OBS"
    );
    let mut count = 0;
    while let Some(s) = stream.message().await.map_err(failed)? {
        let status = match s.status() {
            RevisionStatus::Current => "current",
            RevisionStatus::Superseded => "superseded",
            RevisionStatus::Unspecified => "?",
        };
        let received = s.received_at.as_ref().and_then(format_timestamp);
        println!(
            "{:<34} {:<9} {:<9} {:>4} {:<10} {:<24} {:>6}",
            s.submission_id,
            s.dataflow,
            s.time_period,
            s.revision,
            status,
            received.unwrap_or_default(),
            s.observation_count
        );
        count += 1;
    }
    eprintln!("{count} submission(s)");
    Ok(())
}

async fn get(args: GetArgs) -> Result<(), String> {
    let mut client = SubmissionsClient::new(args.connection.connect().await?);
    let s = client
        .get_submission(GetSubmissionRequest {
            submission_id: args.id.clone(),
        })
        .await
        .map_err(failed)?
        .into_inner();
    let summary = s.summary.unwrap_or_default();
    let receipt = s.receipt.unwrap_or_default();
    let env = crate::proto::SignedEnvelope::decode(s.envelope_bytes.as_slice())
        .map_err(|e| format!("envelope: {e}"))?;

    // Re-verify, trusting nothing but the returned certificate: the signature is over the
    // payload bytes exactly as stored, and the stored bytes hash to the receipt's digest.
    let key = public_key_of(&s.signing_certificate)?;
    let keyid = cert_digest_hex(&s.signing_certificate);
    let verified = envelope::verify(&env, SUBMISSION_PAYLOAD_TYPE, |id| {
        if id == keyid {
            Ok(((), key.clone()))
        } else {
            Err("not the returned certificate")
        }
    });
    let digest_ok = ring::digest::digest(&ring::digest::SHA256, &s.envelope_bytes).as_ref()
        == receipt.envelope_digest;

    println!("submission   {}", summary.submission_id);
    println!("member       {}", summary.member);
    println!(
        "dataflow     {}  reporter {}  period {} ({})",
        summary.dataflow, summary.ref_area, summary.time_period, summary.freq
    );
    println!("revision     {} ({:?})", summary.revision, summary.status());
    println!("observations {}", summary.observation_count);
    println!(
        "received     {}",
        receipt
            .received_at
            .as_ref()
            .and_then(format_timestamp)
            .unwrap_or_default()
    );
    println!(
        "envelope     sha256:{} ({})",
        hex::encode(&receipt.envelope_digest),
        if digest_ok {
            "matches the stored bytes"
        } else {
            "DOES NOT MATCH the stored bytes"
        }
    );
    println!("signed by    key {keyid} ({:?})", key.algorithm);
    println!(
        "signature    {}",
        match &verified {
            Ok(_) => "valid over the stored payload".to_owned(),
            Err(e) => format!("INVALID: {e}"),
        }
    );
    if let Some(path) = args.envelope {
        std::fs::write(&path, &s.envelope_bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote the envelope to {}", path.display());
    }
    if verified.is_err() || !digest_ok {
        return Err("the stored submission does not verify".into());
    }
    Ok(())
}
