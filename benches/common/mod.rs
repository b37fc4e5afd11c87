//! What the benchmarks share: the demo members, the drugs their synthetic submissions report,
//! their signing keys, a client channel as one of them, a gateway serving on loopback, data
//! loaded through the ledger, an SDMX REST client, percentiles and resident memory.
#![allow(dead_code)] // each benchmark uses its part

use focalgate::{envelope::SigningKey, identity::cert_digest_hex};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The Central Asian demo members.
pub const MEMBERS: [&str; 5] = ["KAZ", "KGZ", "TJK", "TKM", "UZB"];
/// Drugs and the unit each is reported in.
pub const DRUGS: [(&str, &str); 10] = [
    ("HEROIN", "KG"),
    ("OPIUM", "KG"),
    ("CANNABIS_HERB", "KG"),
    ("CANNABIS_RESIN", "KG"),
    ("METHAMPHETAMINE", "KG"),
    ("AMPHETAMINE", "U"),
    ("MDMA", "U"),
    ("TRAMADOL", "U"),
    ("COCAINE", "KG"),
    ("ACETIC_ANHYDRIDE", "L"),
];

/// A number from the environment, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A demo identity's signing key and key id.
pub fn signer(who: &str) -> (SigningKey, String) {
    let key =
        focalgate::pki::read_pkcs8(format!("certs-example/{who}/signing.key").as_ref()).unwrap();
    let cert = focalgate::tls::read_chain(format!("certs-example/{who}/signing.pem").as_ref())
        .unwrap()
        .remove(0);
    (
        SigningKey::from_pkcs8(&key).unwrap(),
        cert_digest_hex(cert.as_ref()),
    )
}

/// A channel to the gateway at `addr`, authenticated as the demo identity `who`.
pub async fn channel(addr: std::net::SocketAddr, who: &str) -> Channel {
    let dir = format!("certs-example/{who}");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read("certs-example/ca/ca.pem").unwrap(),
        ))
        .identity(Identity::from_pem(
            std::fs::read(format!("{dir}/auth.pem")).unwrap(),
            std::fs::read(format!("{dir}/auth.key")).unwrap(),
        ));
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A gateway serving on 127.0.0.1, until `stop` is sent.
pub struct Running {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Where its SDMX REST API listens.
    pub sdmx: std::net::SocketAddr,
    /// Its store, for what a benchmark reads directly.
    pub store: std::sync::Arc<dyn focalgate::store::Store>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Assembles a gateway from `settings` and serves it on a free port of 127.0.0.1, its SDMX
/// REST API on another.
pub async fn start(settings: &focalgate::config::Settings) -> Running {
    let mut assembled = focalgate::service::assemble(settings).await.unwrap();
    let store = assembled.gateway.store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sdmx = api.local_addr().unwrap();
    assembled.sdmx = Some(api);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        focalgate::service::serve(assembled, listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Running {
        addr,
        sdmx,
        store,
        stop,
        task,
    }
}

/// Stops the gateways and waits until each has stopped.
pub async fn shut_down(running: Vec<Running>) {
    for r in running {
        let _ = r.stop.send(());
        r.task.await.unwrap();
    }
}

/// The built-in code lists.
pub fn lists() -> &'static focalgate::schema::CodeLists {
    static LISTS: std::sync::OnceLock<focalgate::schema::CodeLists> = std::sync::OnceLock::new();
    LISTS.get_or_init(|| focalgate::schema::CodeLists::builtin().unwrap())
}

/// The `q` quantile of `v` (sorted here); zero for none.
pub fn percentile(v: &mut [std::time::Duration], q: f64) -> std::time::Duration {
    if v.is_empty() {
        return std::time::Duration::ZERO;
    }
    v.sort();
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

/// The process's resident memory, in bytes.
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Stores `bodies` in a new SQLite store in `data` through the gateway's own ledger (entries,
/// log, checkpoints, receipts), each as submitted by its reporter's `nfp` member, 64 at a
/// time, under the log `origin`; returns how many observations they held.
pub async fn load(
    data: &std::path::Path,
    origin: &str,
    bodies: impl Iterator<Item = focalgate::proto::SubmissionBody>,
) -> usize {
    use focalgate::{
        checkpoint::{KeyType, NoteSigner},
        identity::{MemberId, Registry},
        store::Store,
    };
    use std::sync::Arc;
    let store: Arc<dyn Store> = Arc::new(
        focalgate::store::sqlite::SqliteStore::open(&data.join("focalgate.db"))
            .await
            .unwrap(),
    );
    let (pair, _) = focalgate::pki::load_or_create_gateway_key(&data.join("gateway.key")).unwrap();
    let key = NoteSigner::from_key_pair(origin, KeyType::Ed25519, pair).unwrap();
    let log = Arc::new(focalgate::tlog::Log::new(
        Arc::new(key),
        focalgate::tlog::Published::new(data.join("checkpoint")),
    ));
    let registry = Arc::new(Registry::new(Arc::new(lists().clone())));
    log.prepare(&*store, false, &registry).await.unwrap();
    let telemetry = focalgate::telemetry::Telemetry::new(Default::default());
    let (ledger, task) =
        focalgate::ledger::Ledger::start(store.clone(), log, registry, 256, telemetry);
    let now = time::OffsetDateTime::now_utc();
    let mut pending = tokio::task::JoinSet::new();
    let mut observations = 0;
    for body in bodies {
        observations += body.observations.len();
        let submission =
            focalgate::schema::validate(&body, lists(), &focalgate::schema::Limits::default(), now)
                .unwrap();
        let accepted = focalgate::app::Accepted::unchecked_for_benchmarks(
            MemberId::parse(&format!("{}:nfp", body.ref_area)).unwrap(),
            submission,
            prost::Message::encode_to_vec(&body),
        );
        let ledger = ledger.clone();
        pending.spawn(async move { ledger.submit(accepted).await.unwrap() });
        while pending.len() > 64 {
            pending.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = pending.join_next().await {
        r.unwrap();
    }
    drop(ledger);
    task.await.unwrap();
    observations
}

/// An HTTP/1.1 connection to the SDMX REST API as the demo identity `who`.
pub struct Sdmx {
    send: hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
}

impl Sdmx {
    /// Connects to the API at `addr`.
    pub async fn connect(addr: std::net::SocketAddr, who: &str) -> Self {
        let mut config = focalgate::tls::IdentityDir::new(format!("certs-example/{who}"))
            .rustls_client()
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        let (send, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(connection);
        Self { send }
    }

    /// The answer to `GET path` in a representation `accept`s, its body still to be read.
    pub async fn ask(
        &mut self,
        path: &str,
        accept: &str,
    ) -> hyper::Response<hyper::body::Incoming> {
        let request = hyper::Request::get(path)
            .header("host", "localhost")
            .header("accept", accept)
            .body(http_body_util::Empty::new())
            .unwrap();
        self.send.ready().await.unwrap();
        self.send.send_request(request).await.unwrap()
    }

    /// `GET path`: the status and the size of the body, read and dropped as it arrives.
    pub async fn count(&mut self, path: &str, accept: &str) -> (u16, usize) {
        use http_body_util::BodyExt;
        let response = self.ask(path, accept).await;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = 0;
        while let Some(frame) = body.frame().await {
            bytes += frame.unwrap().data_ref().map_or(0, |d| d.len());
        }
        (status, bytes)
    }

    /// `GET path` answered 200: its body.
    pub async fn text(&mut self, path: &str, accept: &str) -> String {
        use http_body_util::BodyExt;
        let response = self.ask(path, accept).await;
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }
}

/// SDMX-CSV 2.0, as an `Accept` header asks for it.
pub const SDMX_CSV: &str = "application/vnd.sdmx.data+csv;version=2.0.0";
