//! Test harness: real gateways on 127.0.0.1:0 with the demo PKI, real mTLS clients, real
//! SQLite files in temporary directories.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use focalgate::rpc::{audit_client::AuditClient, submissions_client::SubmissionsClient};
use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use focalgate::{
    config::Settings,
    entry::{AdminEntry, Entry},
    envelope::{self, SigningKey},
    identity::cert_digest_hex,
    pki::ca::{CaDir, Reason},
    proto::{GetEntriesRequest, Observation, SignedEnvelope, SubmissionBody},
    schema::SUBMISSION_PAYLOAD_TYPE,
    service,
};
use prost::Message;
use rustls_pki_types::pem::PemObject;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The gateway binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_focalgate");

/// Runs `focalgate` with `args` (without FOCALGATE_CONFIG from the environment), shows what
/// it printed, and returns its output.
pub fn cli(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("FOCALGATE_CONFIG")
        .output()
        .unwrap();
    eprintln!(
        "$ focalgate {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether the integration tests run on PostgreSQL (`STORE_UNDER_TEST=postgres`) rather
/// than SQLite.
pub fn postgres() -> bool {
    std::env::var("STORE_UNDER_TEST").is_ok_and(|v| v == "postgres")
}

/// The PostgreSQL server the tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("POSTGRES_TEST_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Runs statements on a PostgreSQL database (outside any test runtime) and returns the rows
/// of the last one, every value as text.
pub fn pg(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e} (set POSTGRES_TEST_URL)"));
            tokio::spawn(connection);
            let mut rows = Vec::new();
            for m in client.simple_query(&sql).await.unwrap() {
                match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        rows.push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                    }
                    tokio_postgres::SimpleQueryMessage::CommandComplete(_) => {}
                    _ => {}
                }
            }
            rows
        })
    })
    .join()
    .unwrap()
}

/// PostgreSQL databases of data directories, by data directory; dropped with the
/// [`TestDir`] that holds the data directory.
static DATABASES: std::sync::Mutex<Vec<(PathBuf, String)>> = std::sync::Mutex::new(Vec::new());

/// The store of a data directory: its SQLite file, or (on PostgreSQL) a fresh database of its
/// own, created at first use and dropped with the [`TestDir`] around it.
pub fn store_url(data_dir: &Path) -> String {
    if !postgres() {
        return format!("sqlite://{}", data_dir.join("focalgate.db").display());
    }
    let mut dbs = DATABASES.lock().unwrap();
    if let Some((_, url)) = dbs.iter().find(|(d, _)| d == data_dir) {
        return url.clone();
    }
    let name = format!("fg_test_{}", hex::encode(rand_bytes()));
    let admin = postgres_admin_url();
    pg(&admin, &format!("CREATE DATABASE {name}"));
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    dbs.push((data_dir.to_owned(), url.clone()));
    url
}

fn rand_bytes() -> [u8; 8] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new().fill(&mut b).unwrap();
    b
}

/// `[store]` with the data directory's store, for configuration files.
pub fn store_section(data_dir: &Path) -> String {
    format!("[store]\nurl = \"{}\"\n", store_url(data_dir))
}

/// Rows of a query on the store at `url`, every value as text (integers in decimal, NULL as
/// `None`).
pub fn rows(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let Some(path) = url.strip_prefix("sqlite://") else {
        return pg(url, sql);
    };
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let db = rusqlite::Connection::open_with_flags(path, flags).unwrap();
    let mut stmt = db.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get::<_, rusqlite::types::Value>(i)? {
                    rusqlite::types::Value::Null => None,
                    rusqlite::types::Value::Integer(v) => Some(v.to_string()),
                    rusqlite::types::Value::Real(v) => Some(v.to_string()),
                    rusqlite::types::Value::Text(v) => Some(v),
                    rusqlite::types::Value::Blob(v) => Some(hex::encode(v)),
                })
            })
            .collect()
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Changes a data directory's store behind the gateway's back (append-only guards off):
/// `sqlite` on SQLite, `postgres` on PostgreSQL.
pub fn tamper(data_dir: &Path, sqlite: &str, postgres_sql: &str) {
    if postgres() {
        pg(&store_url(data_dir), postgres_sql);
    } else {
        let db = rusqlite::Connection::open(data_dir.join("focalgate.db")).unwrap();
        db.execute_batch(sqlite).unwrap();
    }
}

/// Backs up a data directory's store into the SQLite file `to`, as an operator would: with
/// `focalgate backup` (SQLite, while the gateway runs) or `focalgate store copy` (PostgreSQL).
pub fn backup(data_dir: &Path, to: &Path) {
    let url = store_url(data_dir);
    let target = format!("sqlite://{}", to.display());
    let args: Vec<&str> = if postgres() {
        vec!["store", "copy", "--from", &url, "--to", &target]
    } else {
        vec!["backup", "--from", &url, "--to", to.to_str().unwrap()]
    };
    let out = Command::new(BIN).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Puts a backup made by [`backup`] in place of a data directory's store (its gateway
/// stopped): the file itself on SQLite, a copy into the emptied database on PostgreSQL.
pub fn restore(data_dir: &Path, from: &Path) {
    if !postgres() {
        std::fs::copy(from, data_dir.join("focalgate.db")).unwrap();
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(data_dir.join(format!("focalgate.db{suffix}")));
        }
        return;
    }
    let url = store_url(data_dir);
    let name = url.rsplit_once('/').unwrap().1;
    let admin = postgres_admin_url();
    pg(&admin, &format!("DROP DATABASE {name} WITH (FORCE)"));
    pg(&admin, &format!("CREATE DATABASE {name}"));
    let source = format!("sqlite://{}", from.display());
    let out = Command::new(BIN)
        .args(["store", "copy", "--from", &source, "--to", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A temporary directory; the PostgreSQL databases of data directories in it are dropped
/// with it.
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let mine: Vec<String> = {
            let mut dbs = DATABASES.lock().unwrap_or_else(|p| p.into_inner());
            let (mine, others) = dbs
                .drain(..)
                .partition(|(d, _)| d.starts_with(self.0.path()));
            *dbs = others;
            mine.into_iter().map(|(_, url)| url).collect()
        };
        for url in mine {
            if let Some((_, name)) = url.rsplit_once('/') {
                pg(
                    &postgres_admin_url(),
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                );
            }
        }
    }
}

/// A fresh temporary directory for one test.
pub fn tempdir() -> TestDir {
    TestDir(tempfile::tempdir().unwrap())
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes a gateway configuration file: `port` on 127.0.0.1, `data_dir` and its store, the
/// PKI folder `pki` (CA, CRL, server certificate, policy), then `extra` (TOML).
pub fn write_config(path: &Path, port: u16, data_dir: &Path, pki: &Path, extra: &str) {
    std::fs::write(
        path,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\npolicy = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:{}\"\n[sdmx]\nlisten = \"127.0.0.1:{}\"\n[log]\norigin = \"focalgate.test/log\"\n\
             [tls]\nca = \"{}\"\ncrl = [\"{}\"]\ncert = \"{}\"\nkey = \"{}\"\n{}{extra}",
            data_dir.display(),
            pki.join("policy.toml").display(),
            free_port(),
            free_port(),
            pki.join("ca/ca.pem").display(),
            pki.join("ca/crl.pem").display(),
            pki.join("server/server.pem").display(),
            pki.join("server/server.key").display(),
            store_section(data_dir),
        ),
    )
    .unwrap();
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
        write_config(&config, port, &dir.join("data"), &pki(), "");
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

    /// Its peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
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
    s.store.url = Some(store_url(data_dir));
    s.listen = "127.0.0.1:0".parse().unwrap();
    s.data_dir = data_dir.to_path_buf();
    s.tls.ca = Some(pki.join("ca/ca.pem"));
    s.tls.crl = vec![pki.join("ca/crl.pem")];
    s.tls.cert = Some(pki.join("server/server.pem"));
    s.tls.key = Some(pki.join("server/server.key"));
    s.policy = Some(pki.join("policy.toml"));
    // The demo's witnesses are not running: a test that wants witnessing says so.
    s.witnessing.identity = None;
    s
}

/// Submits the five Central Asian members' sample files (SEIZURES and ROUTES) with the CLI.
pub fn submit_samples(gw: &Gateway) {
    for who in ["KAZ", "KGZ", "TJK", "TKM", "UZB"] {
        let out = Command::new(BIN)
            .args(["submit", "--server", &gw.url(), "--identity"])
            .arg(pki().join(who))
            .arg(samples().join(format!("{who}-SEIZURES.csv")))
            .arg(samples().join(format!("{who}-ROUTES.csv")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    /// Where its `/metrics`, `/readyz` and `/livez` are served (plain HTTP).
    pub monitoring: SocketAddr,
    /// Where its SDMX REST API is served (HTTPS).
    pub sdmx: SocketAddr,
    pub data_dir: PathBuf,
    /// Its store.
    pub store_url: String,
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
        let mut assembled = service::assemble(&settings).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let monitoring = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let monitoring_addr = monitoring.local_addr().unwrap();
        assembled.monitoring = Some(monitoring);
        let sdmx = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sdmx_addr = sdmx.local_addr().unwrap();
        assembled.sdmx = Some(sdmx);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            service::serve(assembled, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            monitoring: monitoring_addr,
            sdmx: sdmx_addr,
            store_url: settings.store_url(),
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

    /// The root of its SDMX REST API.
    pub fn sdmx_url(&self) -> String {
        format!("https://{}/sdmx", self.sdmx)
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

    /// Rows of a query on the gateway's store, read behind its back (see [`rows`]).
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        rows(&self.store_url, sql)
    }

    /// The log's administrative entries from `start` on, read through the Audit service.
    pub async fn admin_entries(&self, start: u64) -> Vec<AdminEntry> {
        let mut stream = AuditClient::new(self.channel("auditor").await)
            .get_entries(GetEntriesRequest { start, end: 0 })
            .await
            .unwrap()
            .into_inner();
        let mut out = Vec::new();
        while let Some(e) = stream.message().await.unwrap() {
            if let Entry::Admin(a) = Entry::parse(&e.entry).unwrap() {
                out.push(a);
            }
        }
        out
    }

    /// Rows in a table of the gateway's store.
    pub async fn count(&self, table: &str) -> i64 {
        let url = self.store_url.clone();
        let sql = format!("SELECT count(*) FROM {table}");
        tokio::task::spawn_blocking(move || rows(&url, &sql))
            .await
            .unwrap()[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// Revokes `member`'s demo signing certificate in the CA of the PKI copy `pki`, as `focalgate
/// ca revoke` does (a fresh CRL); returns its serial number.
pub fn revoke_signing_cert(pki: &Path, member: &str) -> String {
    revoke_cert(pki, member, "signing.pem")
}

/// Revokes the certificate `file` of `member`'s demo identity folder in the CA of the PKI copy
/// `pki`, as `focalgate ca revoke` does; returns its serial number.
pub fn revoke_cert(pki: &Path, member: &str, file: &str) -> String {
    let ca = CaDir::open(&pki.join("ca")).unwrap();
    let der = std::fs::read(pki.join(member).join(file)).unwrap();
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&der).unwrap();
    let cert = ca
        .list()
        .unwrap()
        .into_iter()
        .find(|c| c.der.as_slice() == der.as_ref())
        .unwrap();
    ca.revoke(
        &cert.serial,
        Reason::KeyCompromise,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    cert.serial
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

/// A witness served in this process on 127.0.0.1 (`port`, or any free one for 0), for the
/// hub's side: named `W<i>`, its key made from `i`, its state in `dir` (so that serving it
/// again with the same `i` and `dir` is a restart). Send `true` to stop it.
pub async fn serve_witness(
    dir: &Path,
    i: usize,
    log: &focalgate::checkpoint::NoteVerifier,
    port: u16,
) -> (
    focalgate::checkpoint::policy::PolicyWitness,
    tokio::sync::watch::Sender<bool>,
) {
    use focalgate::checkpoint::{KeyType, NoteSigner};
    let pki = pki();
    let key = NoteSigner::from_seed(
        &format!("witness-{i}.example"),
        KeyType::Cosignature,
        &[20 + i as u8; 32],
    )
    .unwrap();
    let verifier = key.verifier().clone();
    let state = focalgate::witness::State::open(&dir.join(format!("witness-{i}.db"))).unwrap();
    let witness = std::sync::Arc::new(
        focalgate::witness::Witness::new(key, vec![log.clone()], state).unwrap(),
    );
    let tls =
        focalgate::service::witness::WitnessTls::load(focalgate::service::witness::TlsFiles {
            ca: pki.join("ca/ca.pem"),
            crl: vec![pki.join("ca/crl.pem")],
            cert: pki.join("server/server.pem"),
            key: pki.join("server/server.key"),
        })
        .unwrap();
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(focalgate::service::witness::serve(
        listener, tls, witness, None, stopped,
    ));
    (
        focalgate::checkpoint::policy::PolicyWitness {
            name: format!("W{i}"),
            key: verifier,
            url: Some(url),
        },
        stop,
    )
}

/// Checks a metrics exposition with Prometheus' own parser and linter (`promtool check
/// metrics`, from Debian's prometheus package; required under CI=true).
pub fn promtool_accepts(text: &str) {
    use std::io::Write;
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("promtool (Debian's prometheus package): {e}")
        }
        Err(e) => {
            eprintln!("skipping promtool: {e}");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
