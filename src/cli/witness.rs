//! `focalgate witness init|serve|demo`: the witness a partner runs at home.
//!
//! Its directory holds `witness.key` (Ed25519, PKCS#8, mode 0600), `witness.vkey` (its
//! verifier key, for the logs' policies) and `state.db` (what it last cosigned per log).

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use clap::{Args, Subcommand};

use crate::{
    checkpoint::NoteVerifier,
    merkle::Hash,
    pki::WITNESS_KEY,
    service::witness::{TlsFiles, WATCH_EVERY, WitnessTls},
    witness::{InclusionSource, OwnEntries, Witness},
};

#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Make the witness's cosigning key (mode 0600) and print its verifier key.
    Init {
        /// The witness's directory.
        #[arg(long)]
        dir: PathBuf,
        /// The key's name, as cosignatures carry it (e.g. witness.kaz.example).
        #[arg(long)]
        name: String,
    },
    /// Run the witness over HTTPS with client certificates.
    Serve(Box<ServeArgs>),
    /// Run the demo's five witnesses, one per Central Asian member, on 127.0.0.1:7381–7385 for
    /// the demo gateway (`serve --demo`): their keys are in certs-example/witnesses/.
    Demo {
        /// Where each witness keeps its state (a folder per member).
        #[arg(long, default_value = "focalgate-witnesses")]
        dir: PathBuf,
        /// The verifier key of the log to witness; default: the demo gateway's
        /// (`focalgate log key --demo`).
        #[arg(long = "log-key")]
        log_key: Option<String>,
        /// Run only these members' witnesses (e.g. KAZ,KGZ), to see the others down.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The witness's directory (`witness init`).
    #[arg(long)]
    dir: PathBuf,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:7380")]
    listen: SocketAddr,
    /// The verifier key of a log to witness (its name is the origin); repeatable.
    #[arg(long = "log-key", required = true)]
    log_keys: Vec<String>,
    /// The witness's TLS certificate chain (PEM), issued by the partnership CA.
    #[arg(long)]
    tls_cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    tls_key: PathBuf,
    /// The partnership CA (PEM): callers need a certificate it issued.
    #[arg(long)]
    ca: PathBuf,
    /// The CA's CRL (PEM or DER); repeatable.
    #[arg(long)]
    crl: Vec<PathBuf>,
    /// The member's receipts folder (`focalgate submit --receipt`): cosign a checkpoint of
    /// their log only when every receipt's entry is in its tree, asked from --gateway.
    #[arg(long, requires = "identity")]
    receipts: Option<PathBuf>,
    /// The gateway the inclusion proofs are asked from.
    #[arg(long, default_value = "https://127.0.0.1:50051")]
    gateway: String,
    /// The member's identity folder, for asking the gateway.
    #[arg(long)]
    identity: Option<PathBuf>,
    /// Serve the witness's metrics at `http://<this>/metrics` (plain HTTP: keep it on
    /// loopback or an operators' network).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
}

/// Inclusion proofs from the gateway's Audit service.
struct GatewayProofs {
    audit: crate::rpc::audit_client::AuditClient<tonic::transport::Channel>,
}

#[async_trait::async_trait]
impl InclusionSource for GatewayProofs {
    async fn inclusion(&self, index: u64, size: u64) -> Result<Option<Vec<Hash>>, String> {
        use crate::proto::{GetInclusionProofRequest, get_inclusion_proof_request::Leaf};
        let asked = self
            .audit
            .clone()
            .get_inclusion_proof(GetInclusionProofRequest {
                leaf: Some(Leaf::LeafIndex(index)),
                tree_size: size,
            })
            .await;
        match asked {
            Ok(proof) => crate::merkle::decode_proof(&proof.into_inner().hashes)
                .map(Some)
                .map_err(|e| format!("a malformed proof: {e}")),
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::NotFound | tonic::Code::InvalidArgument
                ) =>
            {
                Ok(None)
            }
            Err(s) => Err(super::describe_status(&s, |_| String::new())),
        }
    }
}

/// The own-entry check of `args`, if it asks for one.
fn own_entries(args: &ServeArgs, log: &NoteVerifier) -> Result<Option<OwnEntries>, String> {
    let (Some(receipts), Some(identity)) = (&args.receipts, &args.identity) else {
        return Ok(None);
    };
    if !receipts.is_dir() {
        return Err(format!("--receipts {}: not a folder", receipts.display()));
    }
    let tls =
        super::client_tls(&crate::tls::IdentityDir::new(identity)).map_err(|e| e.to_string())?;
    let channel = tonic::transport::Endpoint::from_shared(args.gateway.clone())
        .map_err(|e| format!("--gateway {}: {e}", args.gateway))?
        .tls_config(tls)
        .map_err(|e| format!("TLS: {e}"))?
        .connect_lazy();
    let source = GatewayProofs {
        audit: crate::rpc::audit_client::AuditClient::new(channel),
    };
    Ok(Some(OwnEntries::new(
        receipts,
        log.clone(),
        Arc::new(source),
    )))
}

pub async fn run(cmd: WitnessCommand) -> Result<(), String> {
    match cmd {
        WitnessCommand::Init { dir, name } => init(dir, &name),
        WitnessCommand::Serve(args) => serve(*args).await,
        WitnessCommand::Demo { dir, log_key, only } => demo(dir, log_key, only).await,
    }
}

fn init(dir: PathBuf, name: &str) -> Result<(), String> {
    let vkey = crate::pki::create_witness_key(&dir, name).map_err(|e| e.to_string())?;
    println!("{vkey}");
    eprintln!(
        "witness key in {}; give the verifier key above to the log's operators for its policy",
        dir.join(WITNESS_KEY).display()
    );
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    super::serve::init_log(&crate::config::LogSettings::default());
    let logs = args
        .log_keys
        .iter()
        .map(|k| super::log::verifier_arg("--log-key", k))
        .collect::<Result<Vec<_>, _>>()?;
    let own = match logs.as_slice() {
        [log] => own_entries(&args, log)?,
        _ if args.receipts.is_some() => {
            return Err("--receipts checks one log: give one --log-key".into());
        }
        _ => None,
    };
    let mut witness = Witness::open(&args.dir, &args.dir, logs)?;
    if let Some(own) = own {
        tracing::info!(gateway = %args.gateway, "own-entry check of the receipts in --receipts");
        witness = witness.with_own_entries(own)?;
    }
    let witness = Arc::new(witness);
    let tls = WitnessTls::load(TlsFiles {
        ca: args.ca.clone(),
        crl: args.crl.clone(),
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
    })?;
    let stop = stopped_by_signal();
    tokio::spawn(tls.clone().watch(WATCH_EVERY, stop.clone()));
    let telemetry = match args.metrics_listen {
        Some(at) => {
            let telemetry = crate::telemetry::Telemetry::new(Default::default());
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| format!("--metrics-listen {at}: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            println!("witness metrics at http://{addr}/metrics");
            // Detached: it runs as long as the process.
            drop(telemetry.keep_up());
            tokio::spawn(crate::service::witness::serve_metrics(
                listener,
                telemetry.clone(),
                stop.clone(),
            ));
            Some(telemetry)
        }
        None => None,
    };
    let listener = bind(args.listen, &witness).await?;
    crate::service::witness::serve(listener, tls, witness, telemetry, stop).await;
    Ok(())
}

async fn bind(at: SocketAddr, witness: &Witness) -> Result<tokio::net::TcpListener, String> {
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .map_err(|e| format!("{at}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, witness = %witness.verifier(), "witness listening");
    println!(
        "witness {} listening on https://{addr}",
        witness.verifier().name()
    );
    Ok(listener)
}

/// A stop signal that fires on SIGTERM or Ctrl-C.
fn stopped_by_signal() -> tokio::sync::watch::Receiver<bool> {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        super::serve::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    stop
}

async fn demo(dir: PathBuf, log_key: Option<String>, only: Vec<String>) -> Result<(), String> {
    use crate::pki::demo::WITNESSES;
    super::serve::init_log(&crate::config::LogSettings::default());
    let log = match log_key {
        Some(k) => super::log::verifier_arg("--log-key", &k)?,
        None => {
            let settings = crate::config::Settings::load(None, true).map_err(|e| e.to_string())?;
            let path = settings.data_dir.join("log.vkey");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "{}: {e} (start the demo gateway first, or give --log-key)",
                    path.display()
                )
            })?;
            super::log::verifier_arg(&path.display().to_string(), text.trim())?
        }
    };
    if let Some(unknown) = only.iter().find(|m| !WITNESSES.contains(&m.as_str())) {
        return Err(format!(
            "--only: {unknown} runs no demo witness (they are {})",
            WITNESSES.join(", ")
        ));
    }
    let stop = stopped_by_signal();
    let running = crate::service::witness::demo(&dir, &log, &only, stop).await?;
    for (member, addr, _) in &running {
        println!("witness of {member} listening on https://{addr}");
    }
    tracing::warn!(
        "DEMO WITNESSES: their keys in {}/witnesses/ are public; never witness a real log with them",
        crate::config::DEMO_PKI
    );
    for (_, _, task) in running {
        let _ = task.await;
    }
    Ok(())
}
