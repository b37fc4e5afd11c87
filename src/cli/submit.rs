//! `focalgate submit`: read, sign, send, and check each receipt against what was sent.

use crate::rpc::submissions_client::SubmissionsClient;
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use ring::digest::{SHA256, digest};
use time::OffsetDateTime;

use super::{Connection, input};
use crate::{
    envelope::{self, SigningKey},
    identity::{cert_digest_hex, public_key_of},
    proto::{Receipt, SignedEnvelope},
    receipt::{ReceiptFile, format_timestamp},
    schema::{self, CodeLists, Limits, SUBMISSION_PAYLOAD_TYPE},
    tls::IdentityDir,
};

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// SDMX-CSV (.csv) or JSON (.json) files; each may span several periods.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    connection: Connection,
    /// Validate against the built-in schema and sign, but send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Save each receipt, self-contained and verifiable offline (`focalgate receipt verify`):
    /// a file, or a directory with one `<submission id>.json` per submission when the input
    /// spans several.
    #[arg(long)]
    receipt: Option<PathBuf>,
}

/// Where receipts go.
enum ReceiptOut {
    None,
    File(PathBuf),
    Dir(PathBuf),
}

impl ReceiptOut {
    fn new(path: Option<PathBuf>, submissions: usize) -> Result<Self, String> {
        Ok(match path {
            None => Self::None,
            Some(p) if submissions > 1 || p.is_dir() => {
                std::fs::create_dir_all(&p)
                    .map_err(|e| format!("--receipt {}: {e}", p.display()))?;
                Self::Dir(p)
            }
            Some(p) => Self::File(p),
        })
    }

    fn save(&self, r: &Receipt) -> Result<Option<PathBuf>, String> {
        let path = match self {
            Self::None => return Ok(None),
            Self::File(p) => p.clone(),
            Self::Dir(d) => d.join(format!("{}.json", r.submission_id)),
        };
        let file = ReceiptFile::from_receipt(r).map_err(|e| e.to_string())?;
        let json = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
        std::fs::write(&path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Some(path))
    }
}

/// The member's signing key and the key id of its certificate.
pub struct Signer {
    key: SigningKey,
    keyid: String,
}

impl Signer {
    /// Loads `signing.key` and `signing.pem` from an identity folder and checks they match.
    pub fn load(identity: &IdentityDir) -> Result<Self, String> {
        let key_der =
            crate::pki::read_pkcs8(&identity.file("signing.key")).map_err(|e| e.to_string())?;
        let key = SigningKey::from_pkcs8(&key_der)
            .map_err(|e| format!("{}: {e}", identity.file("signing.key").display()))?;
        let cert_path = identity.file("signing.pem");
        let cert = crate::tls::read_chain(&cert_path)
            .map_err(|e| e.to_string())?
            .remove(0);
        let cert_key =
            public_key_of(cert.as_ref()).map_err(|e| format!("{}: {e}", cert_path.display()))?;
        if cert_key != key.verifying_key() {
            return Err(format!(
                "{} does not hold the key of {}",
                identity.file("signing.key").display(),
                cert_path.display()
            ));
        }
        Ok(Self {
            key,
            keyid: cert_digest_hex(cert.as_ref()),
        })
    }

    /// Signs a submission body into an envelope.
    pub fn seal(&self, body: &crate::proto::SubmissionBody) -> Result<SignedEnvelope, String> {
        envelope::seal(
            SUBMISSION_PAYLOAD_TYPE,
            body.encode_to_vec(),
            &self.key,
            &self.keyid,
        )
        .map_err(|e| e.to_string())
    }
}

pub async fn run(args: SubmitArgs) -> Result<(), String> {
    let mut prepared = Vec::new();
    let mut problems = Vec::new();
    for file in &args.files {
        match input::read(file) {
            Ok(p) => prepared.extend(p),
            Err(e) => problems.extend(e),
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        return Err(format!(
            "{} problem(s) in the input; nothing was sent",
            problems.len()
        ));
    }
    let identity = args.connection.identity();
    let signer = Signer::load(&identity)?;
    let now = OffsetDateTime::now_utc();

    if args.dry_run {
        let lists = CodeLists::builtin().map_err(|e| e.to_string())?;
        let mut failed = 0;
        for p in &prepared {
            signer.seal(&p.body)?;
            if let Err(violations) = schema::validate(&p.body, &lists, &Limits::default(), now) {
                failed += 1;
                for v in violations {
                    eprintln!("{}: {v}", p.origin.locate(observation_index(&v.field)));
                }
            }
        }
        println!(
            "{} submission(s) checked, {failed} with problems; nothing was sent",
            prepared.len()
        );
        return if failed == 0 {
            Ok(())
        } else {
            Err(format!("{failed} submission(s) would be refused"))
        };
    }

    let receipts = ReceiptOut::new(args.receipt, prepared.len())?;
    let mut client = SubmissionsClient::new(args.connection.connect().await?);
    let bar = if prepared.len() > 1 {
        ProgressBar::new(prepared.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} submissions {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut failed = 0;
    for p in &prepared {
        let mut body = p.body.clone();
        // Each run is a deliberate submission: a distinct prepared_at makes it a new revision
        // even with the same figures, while retries resend the very same envelope.
        let prepared = OffsetDateTime::now_utc();
        body.prepared_at = Some(prost_types::Timestamp {
            seconds: prepared.unix_timestamp(),
            nanos: prepared.nanosecond() as i32,
        });
        let env = signer.seal(&body)?;
        let what = format!("{} {} {}", body.ref_area, body.dataflow, body.time_period);
        bar.set_message(what.clone());
        match submit_with_retries(&mut client, &env).await {
            Ok(receipt) => {
                check_receipt(&receipt, &env, &body).map_err(|e| format!("{what}: {e}"))?;
                let saved = receipts.save(&receipt)?;
                let line = format!(
                    "accepted {}  {} observation(s)  received {}  log entry {}{}",
                    receipt.submission_id,
                    body.observations.len(),
                    receipt
                        .received_at
                        .as_ref()
                        .and_then(format_timestamp)
                        .unwrap_or_default(),
                    receipt.log_index,
                    saved
                        .map(|p| format!("  receipt {}", p.display()))
                        .unwrap_or_default(),
                );
                bar.suspend(|| println!("{line}"));
            }
            Err(status) => {
                failed += 1;
                let line = format!(
                    "refused {what} ({}): {}",
                    p.origin.locate(None),
                    describe(&status, &p.origin)
                );
                bar.suspend(|| println!("{line}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "{} submission(s) sent: {} accepted, {failed} refused",
        prepared.len(),
        prepared.len() - failed
    );
    if failed > 0 {
        Err(format!("{failed} submission(s) refused"))
    } else {
        Ok(())
    }
}

/// Sends an envelope, resending the very same envelope when the gateway or the network was
/// briefly unavailable: the gateway answers a resent envelope with its first receipt.
async fn submit_with_retries(
    client: &mut SubmissionsClient<tonic::transport::Channel>,
    env: &SignedEnvelope,
) -> Result<Receipt, tonic::Status> {
    const ATTEMPTS: u32 = 4;
    let mut attempt = 1;
    loop {
        match client.submit(env.clone()).await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s)
                if attempt < ATTEMPTS
                    && matches!(
                        s.code(),
                        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                    ) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
                attempt += 1;
            }
            Err(s) => return Err(s),
        }
    }
}

/// The gateway's receipt must speak of exactly what was sent.
fn check_receipt(
    r: &Receipt,
    env: &SignedEnvelope,
    body: &crate::proto::SubmissionBody,
) -> Result<(), String> {
    let sent = digest(&SHA256, &env.encode_to_vec());
    let payload = digest(&SHA256, &env.payload);
    if r.envelope_digest != sent.as_ref() || r.payload_digest != payload.as_ref() {
        return Err("the receipt's digests do not match the envelope sent".into());
    }
    if r.ref_area != body.ref_area
        || r.dataflow != body.dataflow
        || r.time_period != body.time_period
    {
        return Err("the receipt names another reporter, dataflow or period than sent".into());
    }
    Ok(())
}

/// `observations[3].unit_measure` → `Some(3)`.
fn observation_index(field: &str) -> Option<usize> {
    field
        .strip_prefix("observations[")?
        .split(']')
        .next()?
        .parse()
        .ok()
}

fn describe(status: &tonic::Status, origin: &input::Origin) -> String {
    super::describe_status(status, |field| {
        format!("{} ", origin.locate(observation_index(field)))
    })
}
