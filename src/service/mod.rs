//! The gRPC services (thin: identify the caller, call the domain, map errors) and the server
//! that hosts them over the gateway's own mutual-TLS listener.

mod admin;
mod audit;
mod error;
pub mod https;
pub mod monitoring;
mod observe;
pub mod sdmx;
mod statistics;
mod submissions;
pub mod witness;

/// Accepts connections on `listener` until `stop` turns true, each handled by `handle` in a
/// task of its own, at most `max` at once: beyond that the *oldest* connection is closed to
/// make room, so that silent or idle connections displace each other while a client whose
/// request takes milliseconds is served long before its turn (refusing the newest instead let
/// 32 idle sockets lock every probe out). The tasks still running are then stopped.
pub(crate) async fn accept_bounded<F, Fut>(
    listener: tokio::net::TcpListener,
    max: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
    handle: F,
) where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut connections = tokio::task::JoinSet::new();
    // The connections' tasks, oldest first.
    let mut open = std::collections::VecDeque::<tokio::task::AbortHandle>::new();
    let mut shed = 0u64;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let Ok((tcp, peer)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        open.retain(|task| !task.is_finished());
        while open.len() >= max.max(1)
            && let Some(oldest) = open.pop_front()
        {
            oldest.abort(); // drops the task, and with it its connection
            shed += 1;
            if shed.is_power_of_two() {
                tracing::warn!(
                    %peer,
                    shed,
                    max,
                    "the oldest connection closed to make room (too many open)"
                );
            }
        }
        open.push_back(connections.spawn(handle(tcp, peer)));
    }
    connections.shutdown().await;
}

use crate::rpc::{
    admin_server::AdminServer, audit_server::AuditServer, statistics_server::StatisticsServer,
    submissions_server::SubmissionsServer,
};
use std::{
    future::Future,
    sync::{Arc, RwLock},
    time::Duration,
};

use tokio::net::TcpListener;
use tonic::Request;

pub use crate::app::{ApiError, Gateway};

use crate::{
    app::control,
    checkpoint::{KeyType, NoteSigner},
    config::{ConfigError, Settings},
    identity::{Caller, Registry},
    ledger::Ledger,
    pki::{PkiError, ca::CaDir},
    schema::{CodeListError, CodeLists},
    store::StoreError,
    telemetry::{Method, Telemetry},
    tlog::{Log, Published},
    tls::ServerTls,
};

impl Gateway {
    /// Runs one RPC for the caller of `request`: identifies it, runs `f` for it, and turns
    /// an error into its status.
    async fn handle<R, T, F>(
        &self,
        method: &'static str,
        request: &Request<R>,
        f: impl FnOnce(Caller) -> F,
    ) -> Result<T, tonic::Status>
    where
        F: Future<Output = Result<T, ApiError>>,
    {
        self.handle_as(method, self.caller(request), f).await
    }

    /// As [`handle`](Self::handle), for a caller identified already (when `f` needs the
    /// request itself).
    async fn handle_as<T, F>(
        &self,
        method: &'static str,
        caller: Result<Caller, ApiError>,
        f: impl FnOnce(Caller) -> F,
    ) -> Result<T, tonic::Status>
    where
        F: Future<Output = Result<T, ApiError>>,
    {
        let member = caller.as_ref().ok().map(|c| c.member().to_string());
        let result = match caller {
            Ok(caller) => f(caller).await,
            Err(e) => Err(e),
        };
        error::finish(method, member.as_deref(), result)
    }

    /// The caller of a request: the one the layer identified from the TLS peer certificate, or
    /// why there is none.
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, ApiError> {
        if let Some(observe::Identified(caller)) = request.extensions().get() {
            return Ok(caller.clone());
        }
        let leaf = crate::connections::peer_leaf(request.extensions());
        self.identify(leaf.as_deref())
    }
}

/// Room a `GetSubmission` answer needs beside the envelope it carries: the summary, the
/// signing certificate and the receipt (log entry, checkpoint, an inclusion proof of up to 64
/// hashes) take about 5 KiB.
pub const READBACK_HEADROOM: usize = 16 * 1024;

/// Limits that apply to every RPC.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Largest request or response message; larger requests get RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
    /// Longest time one RPC may take on the server.
    pub request_timeout: Duration,
    /// Connections, handshakes and idle time (the TLS handshake timeout among them).
    pub connections: crate::connections::ConnectionLimits,
    /// How often configuration files are checked for changes (zero: only on SIGHUP).
    pub watch_interval: Duration,
}

/// Serves the focalgate services, grpc.health.v1 and server reflection (v1 and v1alpha) on
/// `listener`, until `shutdown` completes; then stops accepting, lets in-flight requests
/// finish, lets the ledger commit what it holds, closes the store, and returns.
pub async fn serve(
    assembled: Assembled,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let Assembled {
        gateway,
        tls,
        options,
        ledger_task,
        monitoring,
        witnessing,
        sdmx,
    } = assembled;
    let (stop_monitoring, monitoring_stopped) = tokio::sync::watch::channel(false);
    let sdmx_stopped = monitoring_stopped.clone();
    let monitor = monitoring.map(|listener| {
        tokio::spawn(monitoring::serve(
            listener,
            gateway.clone(),
            monitoring_stopped,
        ))
    });
    let sdmx = sdmx.map(|listener| {
        tokio::spawn(sdmx::serve(
            listener,
            tls.clone(),
            gateway.clone(),
            options.connections,
            sdmx_stopped,
        ))
    });
    let keep_up = gateway.telemetry.keep_up();
    let (stop_watching, watching) = tokio::sync::oneshot::channel();
    let watcher = tokio::spawn(control::watch(
        gateway.clone(),
        options.watch_interval,
        watching,
    ));
    let witnessing = witnessing.map(|options| {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(crate::app::witnessing::run(
            gateway.clone(),
            options,
            stopped,
        ));
        (stop, task)
    });
    let store = gateway.store.clone();
    let served = serve_grpc(listener, tls, gateway, options, shutdown).await;
    // Not aborted: a store read it has under way would go on after the gateway stopped.
    let _ = stop_watching.send(());
    let _ = watcher.await;
    if let Some((stop, task)) = witnessing {
        let _ = stop.send(());
        let _ = task.await;
    }
    // The monitoring listener holds the gateway, and with it the ledger: it stops first.
    // So do the monitoring listener and the SDMX API (one stop signal).
    let _ = stop_monitoring.send(true);
    if let Some(monitor) = monitor {
        let _ = monitor.await;
    }
    if let Some(sdmx) = sdmx {
        let _ = sdmx.await;
    }
    // The services are gone: the ledger drains what it holds and stops.
    let drained = ledger_task
        .await
        .map_err(|e| ServeError::Ledger(e.to_string()));
    keep_up.abort();
    // Last, the store, once reads abandoned by cancelled calls are done.
    store.close().await;
    drained?;
    served
}

async fn serve_grpc(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    gateway: Arc<Gateway>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<SubmissionsServer<submissions::SubmissionsService>>()
        .await;
    health
        .set_serving::<AuditServer<audit::AuditService>>()
        .await;
    health
        .set_serving::<StatisticsServer<statistics::StatisticsService>>()
        .await;
    health
        .set_serving::<AdminServer<admin::AdminService>>()
        .await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let statistics = StatisticsServer::new(statistics::StatisticsService::new(gateway.clone()))
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let admin = AdminServer::new(admin::AdminService::new(gateway.clone()))
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let audit = AuditServer::new(audit::AuditService::new(gateway.clone()))
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let (gateway_lists, telemetry) = (gateway.lists.clone(), gateway.telemetry.clone());
    let observe = observe::ObserveLayer::new(
        gateway.clone(),
        telemetry.clone(),
        options.max_message_bytes,
        options.request_timeout,
    );
    let submissions = SubmissionsServer::new(submissions::SubmissionsService::new(gateway))
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);

    let incoming = crate::connections::incoming(
        listener,
        crate::connections::gateway_tls(tls, crate::tls::Listener::Grpc),
        gateway_lists,
        options.connections,
        Some(telemetry),
    );
    tonic::transport::Server::builder()
        // Deadlines, oversize requests, the request log and the metrics: see `observe`.
        .layer(observe)
        // No keepalive pings: their answers would keep an idle connection busy for ever. A
        // dead or silent peer is closed by the idle timeout instead.
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(submissions)
        .add_service(audit)
        .add_service(statistics)
        .add_service(admin)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// The witness client with the gateway's identity for witnesses, if one is configured.
fn witnessing_options(
    settings: &Settings,
) -> Result<Option<crate::app::witnessing::WitnessingOptions>, StartError> {
    let w = &settings.witnessing;
    let Some(dir) = &w.identity else {
        return Ok(None);
    };
    let tls = crate::tls::IdentityDir::new(dir)
        .rustls_client()
        .map_err(|e| StartError::Witnessing(format!("{}: {e}", dir.display())))?;
    Ok(Some(crate::app::witnessing::WitnessingOptions {
        client: crate::witness::client::WitnessClient::new(
            tls,
            Duration::from_millis(w.timeout_ms.max(1)),
        ),
        period: Duration::from_millis(w.period_ms),
        retry: Duration::from_millis(w.retry_ms),
    }))
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The compiled-in descriptor sets could not be read (a build defect).
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The HTTP/2 server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The ledger task ended abnormally.
    #[error("the ledger stopped abnormally: {0}")]
    Ledger(String),
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Code lists.
    #[error(transparent)]
    CodeLists(#[from] CodeListError),
    /// CA, CRL, policy or server certificate.
    #[error(transparent)]
    Reload(#[from] control::ReloadError),
    /// The gateway key.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The data directory.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The transparency log cannot be served.
    #[error(transparent)]
    Log(#[from] crate::tlog::LogError),
    /// The log origin is not a valid key name.
    #[error("log.origin \"{0}\" is not a valid log name (no spaces, no '+')")]
    Origin(String),
    /// The identity for witnesses (`witnessing.identity`) is not usable.
    #[error("witnessing.identity: {0}")]
    Witnessing(String),
    /// The configured CA directory is not usable.
    #[error("ca.dir: {0}")]
    Ca(PkiError),
    /// The statistics workers could not be started.
    #[error("statistics workers: {0}")]
    Workers(std::io::Error),
}

/// A gateway ready to serve: everything loaded and checked, nothing listening yet.
pub struct Assembled {
    /// The shared state of the services.
    pub gateway: Arc<Gateway>,
    /// The TLS configuration in force (a reload replaces it).
    pub tls: Arc<ServerTls>,
    /// Per-RPC limits.
    pub options: ServeOptions,
    /// The ledger task; it ends once the server and every handle are gone ([`serve`] waits
    /// for it).
    pub ledger_task: tokio::task::JoinHandle<()>,
    /// Where `/metrics`, `/readyz` and `/livez` are served (plain HTTP), if anywhere: bound by
    /// the caller (`focalgate serve` binds `metrics.listen`).
    pub monitoring: Option<TcpListener>,
    /// How the policy's witnesses are asked, if the gateway has an identity for them.
    pub witnessing: Option<crate::app::witnessing::WitnessingOptions>,
    /// Where the SDMX REST API is served (HTTPS), if anywhere: bound by the caller
    /// (`focalgate serve` binds `sdmx.listen`).
    pub sdmx: Option<TcpListener>,
}

/// Loads and checks everything the settings name: code lists, CA and CRLs, policy and signing
/// certificates, server certificate, the CA directory if any, data directory, gateway key
/// (created on first start), store (migrated), the log (which feeds the certificate
/// registry); then starts the ledger.
pub async fn assemble(settings: &Settings) -> Result<Assembled, StartError> {
    let paths = settings.resolved()?;
    if settings.limits.max_message_bytes < 4 * READBACK_HEADROOM {
        return Err(StartError::Config(ConfigError::Invalid(format!(
            "limits.max_message_bytes is {}; at least {} are needed",
            settings.limits.max_message_bytes,
            4 * READBACK_HEADROOM
        ))));
    }
    let connections = settings.connection_limits()?;
    let lists = Arc::new(CodeLists::load(settings.schema.codelists_dir.as_deref())?);
    let registry = Arc::new(Registry::new(lists.clone()));
    let (directory, tls, server_leaf) =
        control::load(&paths, lists.clone(), registry.clone()).map_err(StartError::Reload)?;
    let ca = settings
        .ca
        .dir
        .as_deref()
        .map(CaDir::open)
        .transpose()
        .map_err(StartError::Ca)?;

    let data_dir = &settings.data_dir;
    let dir_err = |source| StartError::DataDir {
        path: data_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(dir_err)?;
    #[cfg(unix)]
    std::fs::set_permissions(
        data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .map_err(dir_err)?;
    let (key, created) = crate::pki::load_or_create_gateway_key(&paths.log_key)?;
    if created {
        tracing::info!(path = %paths.log_key.display(), "generated the gateway's Ed25519 key");
    }
    let key = NoteSigner::from_key_pair(&paths.origin, KeyType::Ed25519, key)
        .map_err(|_| StartError::Origin(paths.origin.clone()))?;
    let vkey_path = data_dir.join("log.vkey");
    std::fs::write(&vkey_path, format!("{}\n", key.verifier())).map_err(|source| {
        StartError::DataDir {
            path: vkey_path.display().to_string(),
            source,
        }
    })?;

    let store = crate::store::open(&settings.store_url(), settings.store.pg_options()).await?;
    let log = Arc::new(Log::new(
        Arc::new(key),
        Published::new(data_dir.join("checkpoint")),
    ));
    let size = log
        .prepare(&*store, settings.accept_restored_log, &registry)
        .await?;
    tracing::info!(origin = %paths.origin, size, vkey = %log.verifier(), "transparency log checked");
    let telemetry = Telemetry::new(Method::from_descriptor_sets(&[
        crate::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]));
    let (ledger, ledger_task) = Ledger::start(
        store.clone(),
        log.clone(),
        registry.clone(),
        settings.store.max_batch,
        telemetry.clone(),
    );
    let drug_groups = lists
        .drug
        .codes()
        .iter()
        .filter_map(|c| Some((c.id.clone(), c.parent.clone()?)))
        .collect();
    let (max_queries, max_queries_per_member) = settings.statistics.query_slots();
    let statistics = Arc::new(crate::app::statistics::StatisticsState::new(
        crate::statistics::Index::new(drug_groups),
        store.clone(),
        crate::app::statistics::Admission::new(
            max_queries,
            max_queries_per_member,
            Duration::from_millis(settings.statistics.queue_ms),
        )
        .map_err(StartError::Workers)?,
    ));
    statistics.refresh(&*store, u64::MAX, None).await?;
    let limits = settings.limits.schema();
    let tls = Arc::new(ServerTls::new(tls));
    let gateway = Arc::new(Gateway {
        directory: RwLock::new(Arc::new(directory)),
        registry,
        lists,
        limits,
        max_envelope_bytes: settings
            .limits
            .max_message_bytes
            .saturating_sub(READBACK_HEADROOM),
        store,
        ledger,
        statistics,
        thresholds: settings.statistics.thresholds(),
        log,
        telemetry,
        control: control::Control::new(paths, ca, tls.clone(), server_leaf),
    });
    gateway.log_edits_made_while_stopped().await?;
    let witnessing = witnessing_options(settings)?;
    if witnessing.is_none() && gateway.witness_policy().is_some() {
        tracing::warn!(
            "the policy names witnesses, but witnessing.identity is not set: they are not asked, \
             and no checkpoint becomes witnessed"
        );
    }
    crate::connections::check_open_files(&connections);
    Ok(Assembled {
        gateway,
        tls,
        options: ServeOptions {
            max_message_bytes: settings.limits.max_message_bytes,
            request_timeout: settings.request_timeout(),
            connections,
            watch_interval: Duration::from_millis(settings.reload.watch_ms),
        },
        ledger_task,
        monitoring: None,
        witnessing,
        sdmx: None,
    })
}
