//! `focalgate serve`.

use std::path::PathBuf;

use clap::Args;
use tokio::net::TcpListener;

use crate::{
    config::{LogFormat, Settings},
    service,
};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); FOCALGATE_* environment variables override it.
    #[arg(long, env = "FOCALGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Run the demo: the demo PKI in certs-example/, data in ./focalgate-data, 127.0.0.1:50051.
    #[arg(long)]
    demo: bool,
    /// Serve even though the store's log does not extend the checkpoint this gateway last
    /// published (the store was restored from an older backup): the log forks, and every
    /// partner's monitor will say so.
    #[arg(long)]
    accept_restored_log: bool,
}

pub async fn run(args: ServeArgs) -> Result<(), String> {
    let mut settings =
        Settings::load(args.config.as_deref(), args.demo).map_err(|e| e.to_string())?;
    settings.accept_restored_log = args.accept_restored_log;
    init_logging(&settings);
    if args.demo {
        tracing::warn!(
            "DEMO MODE: the private keys in {}/ are public. Anyone can impersonate any demo member. \
             Never use the demo PKI for real data.",
            crate::config::DEMO_PKI
        );
    }
    let mut assembled = service::assemble(&settings)
        .await
        .map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    if settings.metrics.enabled {
        let at = settings.metrics.listen;
        let monitoring = TcpListener::bind(at).await.map_err(|e| {
            format!(
                "cannot listen on {at} (metrics.listen; metrics.enabled = false turns it off): {e}"
            )
        })?;
        tracing::info!(listen = %at, "metrics, readiness and liveness at http://{at}/metrics, /readyz, /livez");
        assembled.monitoring = Some(monitoring);
    }
    if settings.sdmx.enabled {
        let at = settings.sdmx.listen;
        let api = TcpListener::bind(at).await.map_err(|e| {
            format!("cannot listen on {at} (sdmx.listen; sdmx.enabled = false turns it off): {e}")
        })?;
        tracing::info!(listen = %at, "SDMX REST API at https://{at}{}", service::sdmx::ROOT);
        assembled.sdmx = Some(api);
    }
    tracing::info!(
        listen = %settings.listen,
        data_dir = %settings.data_dir.display(),
        store = %settings.store_url(),
        "focalgate is serving (TLS 1.3, client certificates required)"
    );
    #[cfg(unix)]
    let reloader = tokio::spawn(reload_on_sighup(assembled.gateway.clone()));
    let shutdown = async move {
        shutdown_signal().await;
        // The reloader holds the gateway, and so the ledger: it goes first.
        #[cfg(unix)]
        reloader.abort();
    };
    let served = service::serve(assembled, listener, shutdown).await;
    tracing::info!("focalgate stopped");
    served.map_err(|e| e.to_string())
}

/// Reloads the CA bundle, CRLs, policy and server certificate on every SIGHUP.
#[cfg(unix)]
async fn reload_on_sighup(gateway: std::sync::Arc<service::Gateway>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: reload by editing the files instead");
        return;
    };
    while hup.recv().await.is_some() {
        // A refused reload is logged with its reason and changes nothing.
        let _ = gateway.reload("SIGHUP").await;
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub(super) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

fn init_logging(settings: &Settings) {
    init_log(&settings.logging);
}

/// Logs to stderr as `logging` says (`RUST_LOG` overrides the level).
pub(super) fn init_log(logging: &crate::config::LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&logging.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a journal or a log file gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match logging.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
