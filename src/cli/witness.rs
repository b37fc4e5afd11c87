//! `focalgate witness init|serve`: the witness a partner runs at home.
//!
//! Its directory holds `witness.key` (Ed25519, PKCS#8, mode 0600), `witness.vkey` (its
//! verifier key, for the logs' policies) and `state.db` (what it last cosigned per log).

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use clap::{Args, Subcommand};

use crate::{
    checkpoint::{KeyType, NoteSigner, NoteVerifier},
    identity::Trust,
    witness::{State, Witness},
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
    Serve(ServeArgs),
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
}

const KEY: &str = "witness.key";
const VKEY: &str = "witness.vkey";

pub async fn run(cmd: WitnessCommand) -> Result<(), String> {
    match cmd {
        WitnessCommand::Init { dir, name } => init(dir, &name),
        WitnessCommand::Serve(args) => serve(args).await,
    }
}

fn init(dir: PathBuf, name: &str) -> Result<(), String> {
    let key_path = dir.join(KEY);
    if key_path.exists() {
        return Err(format!(
            "{} exists: a witness keeps its key (a new key is a new witness)",
            key_path.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (key, _) = crate::pki::load_or_create_gateway_key(&key_path).map_err(|e| e.to_string())?;
    let signer =
        NoteSigner::from_key_pair(name, KeyType::Cosignature, key).map_err(|e| e.to_string())?;
    let vkey = signer.verifier().to_string();
    crate::pki::write_public(&dir.join(VKEY), format!("{vkey}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    println!("{vkey}");
    eprintln!(
        "witness key in {}; give the verifier key above to the log's operators for its policy",
        key_path.display()
    );
    Ok(())
}

fn signer(dir: &std::path::Path) -> Result<NoteSigner, String> {
    let vkey_path = dir.join(VKEY);
    let vkey = std::fs::read_to_string(&vkey_path).map_err(|e| {
        format!(
            "{}: {e} (run `focalgate witness init`)",
            vkey_path.display()
        )
    })?;
    let verifier =
        NoteVerifier::parse(vkey.trim()).map_err(|e| format!("{}: {e}", vkey_path.display()))?;
    let key = crate::pki::read_ed25519_key(&dir.join(KEY)).map_err(|e| e.to_string())?;
    let signer = NoteSigner::from_key_pair(verifier.name(), KeyType::Cosignature, key)
        .map_err(|e| e.to_string())?;
    if signer.verifier() != &verifier {
        return Err(format!(
            "{} is not the verifier key of {}",
            vkey_path.display(),
            dir.join(KEY).display()
        ));
    }
    Ok(signer)
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    super::serve::init_log(&crate::config::LogSettings::default());
    let logs = args
        .log_keys
        .iter()
        .map(|k| super::log::verifier_arg("--log-key", k))
        .collect::<Result<Vec<_>, _>>()?;
    let state = State::open(&args.dir.join("state.db")).map_err(|e| e.to_string())?;
    let witness = Arc::new(Witness::new(signer(&args.dir)?, logs, state)?);
    let trust = Trust::load(&args.ca, &args.crl).map_err(|e| e.to_string())?;
    let tls = crate::tls::witness_server_config(
        &trust,
        crate::tls::read_chain(&args.tls_cert).map_err(|e| e.to_string())?,
        crate::tls::read_key(&args.tls_key).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("{}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, witness = %witness.verifier(), "witness listening");
    println!(
        "witness {} listening on https://{addr}",
        witness.verifier().name()
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        super::serve::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    crate::service::witness::serve(listener, tls, witness, stop).await;
    Ok(())
}
