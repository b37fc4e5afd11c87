//! Test harness: real gateways on 127.0.0.1:0 with the demo PKI, real mTLS clients, real
//! SQLite files in temporary directories.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use focalgate::{
    config::Settings,
    envelope::{self, SigningKey},
    identity::cert_digest_hex,
    proto::{Observation, SignedEnvelope, SubmissionBody, submissions_client::SubmissionsClient},
    schema::SUBMISSION_PAYLOAD_TYPE,
    service,
};
use prost::Message;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The gateway binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_focalgate");

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gateway running as its own process, from a configuration file, as an operator runs it.
pub struct ChildGateway {
    /// Its process.
    pub child: Child,
    /// Its address.
    pub url: String,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its log lines (stderr), as they arrive.
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ChildGateway {
    /// Writes a configuration for the demo PKI with its data in `dir/data` and starts `focalgate serve`.
    pub fn start(dir: &Path) -> Self {
        let port = free_port();
        let config = dir.join("focalgate.toml");
        let p = pki();
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\npolicy = \"{}\"\n[log]\norigin = \"focalgate.test/log\"\n[tls]\nca = \"{}\"\ncrl = [\"{}\"]\ncert = \"{}\"\nkey = \"{}\"\n",
                dir.join("data").display(),
                p.join("policy.toml").display(),
                p.join("ca/ca.pem").display(),
                p.join("ca/crl.pem").display(),
                p.join("server/server.pem").display(),
                p.join("server/server.key").display(),
            ),
        )
        .unwrap();
        Self::spawn(config, port)
    }

    /// Starts `focalgate serve` on an existing configuration file.
    pub fn spawn(config: PathBuf, port: u16) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("FOCALGATE_LOGGING__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for the "serving" line.
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let Some(line) = lines.next() else {
                panic!("the server exited early:\n{}", seen.join("\n"));
            };
            let line = line.unwrap();
            seen.push(line.clone());
            if line.contains("focalgate is serving") {
                let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
                assert_eq!(v["level"], "INFO");
                break;
            }
            assert!(Instant::now() < deadline, "server did not start");
        }
        let kept = std::sync::Arc::new(std::sync::Mutex::new(seen));
        let sink = kept.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            url: format!("https://127.0.0.1:{port}"),
            config,
            lines: kept,
        }
    }

    /// Its log lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// SIGTERM, and wait for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for ChildGateway {
    /// A failed test must not leave a gateway running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo PKI folder.
pub fn pki() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-example")
}

/// The sample data folder.
pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// A copy of the demo PKI in `dir/pki`, for tests that change it (revoke, reload, replace the
/// policy): the checked-in one is never written to.
pub fn copy_pki(dir: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let to = dir.join("pki");
    copy(&pki(), &to);
    to
}

/// Settings for a demo gateway with its data in `data_dir`. It holds no CA: the checked-in
/// demo PKI is never written to (see [`copy_pki`]).
pub fn settings(data_dir: &Path) -> Settings {
    let mut s = settings_with_pki(data_dir, &pki());
    s.ca.dir = None;
    s
}

/// Settings for a gateway with its data in `data_dir` and the PKI (CA directory, CRL, server
/// certificate, policy) in `pki`, watching its files every 100 ms.
pub fn settings_with_pki(data_dir: &Path, pki: &Path) -> Settings {
    let mut s = Settings::load_with_env(None, true, Vec::new()).unwrap();
    s.ca.dir = Some(pki.join("ca"));
    s.reload.watch_ms = 100;
    s.listen = "127.0.0.1:0".parse().unwrap();
    s.data_dir = data_dir.to_path_buf();
    s.tls.ca = Some(pki.join("ca/ca.pem"));
    s.tls.crl = vec![pki.join("ca/crl.pem")];
    s.tls.cert = Some(pki.join("server/server.pem"));
    s.tls.key = Some(pki.join("server/server.key"));
    s.policy = Some(pki.join("policy.toml"));
    s
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Gateway {
    /// Starts a demo gateway with its data in `data_dir`.
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(settings(data_dir)).await
    }

    /// Starts a gateway with the given settings (listening on 127.0.0.1:0).
    pub async fn start_with(settings: Settings) -> Self {
        let assembled = service::assemble(&settings).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let service::Assembled {
            gateway,
            tls,
            options,
            ledger_task,
        } = assembled;
        let task = tokio::spawn(async move {
            service::serve(listener, tls, gateway, options, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
            ledger_task.await.unwrap();
        });
        Self {
            addr,
            data_dir: settings.data_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Shuts down gracefully and waits until everything has stopped.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A channel authenticated as the identity folder `who` of the demo PKI.
    pub async fn channel(&self, who: &str) -> Channel {
        self.channel_with(identity_tls(&pki().join(who))).await
    }

    pub async fn channel_with(&self, tls: ClientTlsConfig) -> Channel {
        Endpoint::from_shared(self.url())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn client(&self, who: &str) -> SubmissionsClient<Channel> {
        SubmissionsClient::new(self.channel(who).await)
    }

    /// The gateway's raw Ed25519 public key, read from its key file.
    pub fn public_key(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        let (key, created) =
            focalgate::pki::load_or_create_gateway_key(&self.data_dir.join("gateway.key")).unwrap();
        assert!(!created);
        key.public_key().as_ref().to_vec()
    }

    /// The log's verifier key, as the gateway published it in its data directory.
    pub fn log_key(&self) -> focalgate::checkpoint::NoteVerifier {
        let vkey = std::fs::read_to_string(self.data_dir.join("log.vkey")).unwrap();
        focalgate::checkpoint::NoteVerifier::parse(vkey.trim()).unwrap()
    }

    /// The gateway's SQLite file, opened read-only behind its back.
    pub fn database(&self) -> rusqlite::Connection {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        rusqlite::Connection::open_with_flags(self.data_dir.join("focalgate.db"), flags).unwrap()
    }

    /// Rows in a table of the gateway's SQLite file.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        self.database().query_row(&sql, [], |r| r.get(0)).unwrap()
    }
}

/// Client TLS settings from an identity folder (`ca.pem`, `auth.pem`, `auth.key`).
pub fn identity_tls(dir: &Path) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read(dir.join("ca.pem")).unwrap(),
        ))
        .identity(Identity::from_pem(
            std::fs::read(dir.join("auth.pem")).unwrap(),
            std::fs::read(dir.join("auth.key")).unwrap(),
        ))
}

/// A member's signing key and key id from its demo identity folder.
pub struct Signer {
    pub key: SigningKey,
    pub keyid: String,
}

impl Signer {
    /// `signing.key` / `signing.pem` of a demo identity folder.
    pub fn of(who: &str) -> Self {
        Self::from_files(
            &pki().join(who).join("signing.key"),
            &pki().join(who).join("signing.pem"),
        )
    }

    pub fn from_files(key: &Path, cert: &Path) -> Self {
        let der = focalgate::pki::read_pkcs8(key).unwrap();
        let cert = focalgate::tls::read_chain(cert).unwrap().remove(0);
        Self {
            key: SigningKey::from_pkcs8(&der).unwrap(),
            keyid: cert_digest_hex(cert.as_ref()),
        }
    }

    pub fn seal(&self, body: &SubmissionBody) -> SignedEnvelope {
        envelope::seal(
            SUBMISSION_PAYLOAD_TYPE,
            body.encode_to_vec(),
            &self.key,
            &self.keyid,
        )
        .unwrap()
    }
}

/// A valid SEIZURES observation.
pub fn seizure(drug: &str, unit: &str, quantity: &str, n: u64) -> Observation {
    Observation {
        drug: drug.into(),
        transport_mode: "ROAD".into(),
        unit_measure: unit.into(),
        quantity: quantity.into(),
        n_seizures: Some(n),
        ..Default::default()
    }
}

/// A valid ROUTES observation.
pub fn route(
    drug: &str,
    origin: &str,
    transit: &[&str],
    destination: &str,
    quantity: &str,
) -> Observation {
    Observation {
        drug: drug.into(),
        origin_area: origin.into(),
        departure_area: origin.into(),
        transit_area: transit.iter().map(|s| s.to_string()).collect(),
        destination_area: destination.into(),
        transport_mode: "ROAD".into(),
        unit_measure: "KG".into(),
        quantity: quantity.into(),
        n_seizures: Some(1),
        ..Default::default()
    }
}

/// A submission body: `dataflow` for `ref_area` in `period` (frequency inferred).
pub fn body(
    dataflow: &str,
    ref_area: &str,
    period: &str,
    observations: Vec<Observation>,
) -> SubmissionBody {
    let freq = if period.contains("-Q") {
        "Q"
    } else if period.contains("-M") {
        "M"
    } else {
        "A"
    };
    SubmissionBody {
        dataflow: dataflow.into(),
        ref_area: ref_area.into(),
        freq: freq.into(),
        time_period: period.into(),
        action: "R".into(),
        supersedes_revision: None,
        prepared_at: Some(prost_types::Timestamp {
            seconds: 1_780_000_000,
            nanos: 0,
        }),
        observations,
    }
}

/// Where the shared conformance vectors live; under `CI=true` their absence is a failure.
pub fn vectors_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CONFORMANCE_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors"));
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "conformance vectors not found at {} (set CONFORMANCE_VECTORS)",
            dir.display()
        );
    }
    eprintln!(
        "skipping: conformance vectors not found at {}",
        dir.display()
    );
    None
}
