//! The witness as a partner runs it: `focalgate witness init` and `witness serve` as a separate
//! process, spoken to with curl over HTTPS with client certificates of the demo CA, killed
//! with SIGKILL and started again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use focalgate::{
    checkpoint::{self, Checkpoint, KeyType, NoteSigner, NoteVerifier},
    merkle::{self, Hash, Nodes},
};

const ORIGIN: &str = "focalgate.example/witnessed-log";

/// A log in the test: its tree, signed with a key made here.
struct TestLog {
    key: NoteSigner,
    nodes: Nodes,
    size: u64,
}

impl TestLog {
    fn new() -> Self {
        Self {
            key: NoteSigner::from_seed(ORIGIN, KeyType::Ed25519, &[7; 32]).unwrap(),
            nodes: Nodes::new(),
            size: 0,
        }
    }

    fn grow(&mut self, n: u64) {
        for _ in 0..n {
            let leaf = merkle::leaf_hash(format!("entry {}", self.size).as_bytes());
            let added = merkle::append(self.size, leaf, &self.nodes).unwrap();
            self.nodes.extend(added);
            self.size += 1;
        }
    }

    fn checkpoint(&self) -> String {
        Checkpoint {
            origin: ORIGIN.into(),
            size: self.size,
            root: merkle::root(self.size, &self.nodes).unwrap(),
            extensions: Vec::new(),
        }
        .sign(&self.key)
        .unwrap()
    }

    fn request(&self, old: u64) -> String {
        let proof: Vec<Hash> = if old == 0 || old == self.size {
            Vec::new()
        } else {
            merkle::consistency_proof(old, self.size, &self.nodes).unwrap()
        };
        let mut out = format!("old {old}\n");
        for h in proof {
            out.push_str(&STANDARD.encode(h.as_bytes()));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint());
        out
    }
}

/// A `witness serve` process.
struct WitnessProcess {
    child: Child,
    url: String,
    /// Its metrics, when asked for (`--metrics-listen`).
    metrics: Option<String>,
}

impl WitnessProcess {
    fn start(dir: &Path, log: &NoteVerifier, port: u16) -> Self {
        Self::start_with(dir, log, port, &[])
    }

    /// As `start`, with more arguments for `witness serve`.
    fn start_with(dir: &Path, log: &NoteVerifier, port: u16, more: &[&str]) -> Self {
        Self::start_in(dir, log, port, &common::pki(), more)
    }

    /// As `start_with`, with the CA, CRL and server certificate of `pki`; `port` 0 takes a
    /// free one, which the witness reports.
    fn start_in(dir: &Path, log: &NoteVerifier, port: u16, pki: &Path, more: &[&str]) -> Self {
        let mut child = Command::new(common::BIN)
            .args(["witness", "serve", "--dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--log-key"])
            .arg(log.to_string())
            .arg("--tls-cert")
            .arg(pki.join("server/server.pem"))
            .arg("--tls-key")
            .arg(pki.join("server/server.key"))
            .arg("--ca")
            .arg(pki.join("ca/ca.pem"))
            .arg("--crl")
            .arg(pki.join("ca/crl.pem"))
            .args(more)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut metrics = None;
        let url = loop {
            let line = lines.next().expect("the witness exited early").unwrap();
            if let Some((_, url)) = line.split_once("metrics at ") {
                metrics = Some(url.trim().to_owned());
            }
            if let Some((_, url)) = line.split_once("listening on ") {
                break url.trim().to_owned();
            }
            assert!(Instant::now() < deadline, "the witness did not start");
        };
        Self {
            child,
            url,
            metrics,
        }
    }

    fn kill(mut self) {
        // SIGKILL: nothing gets to flush or close.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// curl with `who`'s client certificate (or none): (HTTP status, content type, body), or the
/// status 0 when no HTTP answer came.
fn curl(url: &str, who: Option<&str>, method: &str, body: Option<&str>) -> (u16, String, String) {
    let pki = common::pki();
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--http1.1", "-X", method, "--cacert"])
        .arg(pki.join("ca/ca.pem"))
        .args(["-w", "\n%{http_code} %{content_type}"]);
    if let Some(who) = who {
        cmd.arg("--cert")
            .arg(pki.join(who).join("auth.pem"))
            .arg("--key")
            .arg(pki.join(who).join("auth.key"));
    }
    if let Some(body) = body {
        cmd.args(["--data-binary", body]);
    }
    let out = cmd.arg(url).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, content_type) = tail.split_once(' ').unwrap_or((tail, ""));
    (
        code.parse().unwrap_or(0),
        content_type.to_owned(),
        body.to_owned(),
    )
}

/// Checks a cosignature line as C2SP tlog-cosignature says, with Python's `cryptography`: the
/// key id is SHA-256(name, 0x0A, 0x04, key)[:4], the signature is time (8 bytes, big-endian)
/// and Ed25519 over "cosignature/v1\ntime T\n" and the checkpoint body.
fn python_verifies(vkey: &str, note: &str, line: &str) {
    const SCRIPT: &str = r#"
import base64, hashlib, struct, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
vkey, note, line = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
name, keyid, key = vkey.split("+", 2)
key = base64.b64decode(key)
assert key[0] == 4, "a cosignature/v1 key"
body = note.split("\n\n")[0] + "\n"
dash, signer, sig = line.split(" ")
assert dash == "\u2014" and signer == name
sig = base64.b64decode(sig)
assert sig[:4] == hashlib.sha256(name.encode() + b"\n" + key).digest()[:4] and sig[:4].hex() == keyid
(t,) = struct.unpack(">Q", sig[4:12])
Ed25519PublicKey.from_public_bytes(key[1:]).verify(sig[12:], b"cosignature/v1\ntime %d\n" % t + body.encode())
print("OK", t)
"#;
    let dir = common::tempdir();
    let note_path = dir.path().join("checkpoint");
    std::fs::write(&note_path, note).unwrap();
    match Command::new("python3")
        .args(["-c", SCRIPT, vkey])
        .arg(&note_path)
        .arg(line)
        .output()
    {
        Ok(out) => assert!(
            out.status.success() && out.stdout.starts_with(b"OK "),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 is needed by this test (CI=true): {e}"
        ),
    }
}

#[test]
fn a_partners_witness_cosigns_over_mtls_and_keeps_its_state_through_sigkill() {
    let dir = common::tempdir();
    let home = dir.path().join("witness");

    // init: a key only its owner reads, PKCS#8 that OpenSSL reads, and the verifier key.
    let witness_init = || {
        Command::new(common::BIN)
            .args(["witness", "init", "--dir"])
            .arg(&home)
            .args(["--name", "witness.kaz.example"])
            .output()
            .unwrap()
    };
    let init = witness_init();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let vkey = String::from_utf8(init.stdout).unwrap();
    let witness_key = NoteVerifier::parse(vkey.trim()).unwrap();
    assert_eq!(witness_key.kind(), KeyType::Cosignature);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(home.join("witness.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let openssl = Command::new("openssl")
        .args(["pkey", "-noout", "-in"])
        .arg(home.join("witness.key"))
        .status()
        .unwrap();
    assert!(openssl.success(), "OpenSSL reads the witness key");
    let again = witness_init();
    assert!(
        !again.status.success(),
        "init never replaces a witness's key"
    );

    let mut log = TestLog::new();
    log.grow(5);
    let port = common::free_port();
    let witness = WitnessProcess::start(&home, log.key.verifier(), port);
    let add = format!("{}/add-checkpoint", witness.url);

    // A caller needs a certificate of the partnership CA, not revoked.
    assert_eq!(curl(&add, None, "POST", Some(&log.request(0))).0, 0);
    assert_eq!(
        curl(&add, Some("revoked"), "POST", Some(&log.request(0))).0,
        0
    );

    let (code, _, body) = curl(&add, Some("admin"), "POST", Some(&log.request(0)));
    assert_eq!(code, 200, "{body}");
    let cosigned = format!("{}{}\n", log.checkpoint(), body.trim_end());
    let opened = checkpoint::open(
        cosigned.as_bytes(),
        log.key.verifier(),
        std::slice::from_ref(&witness_key),
    )
    .unwrap();
    assert!(
        opened
            .note()
            .verified()
            .iter()
            .any(|s| s.name == "witness.kaz.example"),
        "the cosignature verifies with the witness's verifier key"
    );

    // A partner's own C2SP reader, in Python with `cryptography`, verifies the cosignature.
    python_verifies(&witness_key.to_string(), &log.checkpoint(), body.trim_end());

    // Stale, then the retry from the size the witness reports.
    log.grow(3);
    let (code, content_type, body) = curl(&add, Some("admin"), "POST", Some(&log.request(2)));
    assert_eq!(
        (code, content_type.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "5\n")
    );
    assert_eq!(
        curl(&add, Some("admin"), "POST", Some(&log.request(5))).0,
        200
    );

    // Monitors read what it cosigned.
    let origin_hash = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        ORIGIN.as_bytes(),
    ));
    let (code, _, held) = curl(
        &format!("{}/{origin_hash}/checkpoint", witness.url),
        Some("KAZ"),
        "GET",
        None,
    );
    assert_eq!(code, 200);
    assert!(held.starts_with(&format!("{ORIGIN}\n8\n")), "{held}");
    let (code, _, _) = curl(
        &format!("{}/{}/checkpoint", witness.url, "0".repeat(64)),
        Some("KAZ"),
        "GET",
        None,
    );
    assert_eq!(code, 404);
    let (code, _, _) = curl(&add, Some("KAZ"), "GET", None);
    assert_eq!(code, 405);
    let (code, _, body) = curl(&add, Some("KAZ"), "POST", Some("old 0\n"));
    assert_eq!(code, 400, "{body}");

    // SIGKILL right after an answer: what it answered is what it holds after a restart.
    witness.kill();
    let witness = WitnessProcess::start(&home, log.key.verifier(), port);
    log.grow(2);
    let (code, _, body) = curl(&add, Some("admin"), "POST", Some(&log.request(5)));
    assert_eq!(
        (code, body.as_str()),
        (409, "8\n"),
        "the restarted witness holds size 8"
    );
    assert_eq!(
        curl(&add, Some("admin"), "POST", Some(&log.request(8))).0,
        200
    );
    drop(witness);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_collects_a_quorum_from_five_witnesses_and_none_without_it() {
    use focalgate::{
        checkpoint::policy::Policy,
        witness::client::{Outcome, Round, WitnessClient, collect},
    };
    let dir = common::tempdir();
    let mut log = TestLog::new();
    log.grow(6);
    let mut witnesses = Vec::new();
    let mut stops = Vec::new();
    for i in 0..5 {
        let (w, stop) = common::serve_witness(dir.path(), i, log.key.verifier(), 0).await;
        witnesses.push(w);
        stops.push(stop);
    }
    let mut policy_text = format!("log {}\n", log.key.verifier());
    for w in &witnesses {
        policy_text.push_str(&format!(
            "witness {} {} {}\n",
            w.name,
            w.key,
            w.url.as_deref().unwrap()
        ));
    }
    policy_text.push_str("group central-asia 3 W0 W1 W2 W3 W4\nquorum central-asia\n");
    let policy = Policy::parse(&policy_text).unwrap();
    let client = WitnessClient::new(
        focalgate::tls::IdentityDir::new(common::pki().join("admin"))
            .rustls_client()
            .unwrap(),
        Duration::from_secs(2),
    );

    // One round: the log's checkpoint, cosigned by whoever answers, checked against the policy.
    let round = |log: &TestLog, held: std::collections::HashMap<String, u64>| {
        let (nodes, size, note) = (log.nodes.clone(), log.size, log.checkpoint());
        let (client, witnesses) = (client.clone(), policy.witnesses().to_vec());
        async move {
            let proof = move |from: u64| {
                let nodes = nodes.clone();
                async move { merkle::consistency_proof(from, size, &nodes).map_err(|e| e.to_string()) }
            };
            let outcomes = collect(&client, &witnesses, &held, size, &note, proof).await;
            let mut cosigned = note.clone();
            for w in &witnesses {
                if let Some(Round {
                    outcome: Outcome::Cosigned(line),
                    ..
                }) = outcomes.get(&w.name)
                {
                    cosigned.push_str(line);
                    cosigned.push('\n');
                }
            }
            (outcomes, cosigned)
        }
    };

    // All up: all five cosign, and the note meets the quorum.
    let started = Instant::now();
    let (outcomes, note) = round(&log, Default::default()).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a round took {:?}",
        started.elapsed()
    );
    assert!(
        outcomes
            .values()
            .all(|r| matches!(r.outcome, Outcome::Cosigned(_)) && r.size == 6),
        "{outcomes:?}"
    );
    let (_, by) = policy.verify(note.as_bytes()).unwrap();
    assert_eq!(by.len(), 5);
    let held: std::collections::HashMap<String, u64> =
        outcomes.iter().map(|(n, r)| (n.clone(), r.size)).collect();

    // Silent connections, more than a witness holds, each opened before the hub asks: the
    // oldest make room, and the hub is answered.
    let w0 = witnesses[0]
        .url
        .as_deref()
        .unwrap()
        .trim_start_matches("https://")
        .to_owned();
    let mut silent = Vec::new();
    for _ in 0..focalgate::service::witness::MAX_CONNECTIONS + 16 {
        silent.push(tokio::net::TcpStream::connect(&w0).await.unwrap());
    }
    let (again, _) = round(&log, held.clone()).await;
    assert!(
        matches!(again["W0"].outcome, Outcome::Cosigned(_)),
        "{:?}",
        again["W0"]
    );
    drop(silent);

    // Two down: still witnessed. The hub believes W4 holds nothing yet: it is told 6 and retries.
    stops[0].send(true).unwrap();
    stops[1].send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    log.grow(4);
    let mut stale = held.clone();
    stale.insert("W4".into(), 0);
    let (outcomes, note) = round(&log, stale).await;
    assert!(matches!(outcomes["W0"].outcome, Outcome::Failed(_)));
    assert!(
        matches!(
            outcomes["W4"],
            Round {
                outcome: Outcome::Cosigned(_),
                size: 10,
                ..
            }
        ),
        "{:?}",
        outcomes["W4"]
    );
    let (_, by) = policy.verify(note.as_bytes()).unwrap();
    assert_eq!(by, ["W2", "W3", "W4"]);

    // Three down: cosigned by two, which is no quorum.
    stops[2].send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    log.grow(1);
    let held: std::collections::HashMap<String, u64> =
        outcomes.iter().map(|(n, r)| (n.clone(), r.size)).collect();
    let (outcomes, note) = round(&log, held).await;
    let cosigned = outcomes
        .values()
        .filter(|r| matches!(r.outcome, Outcome::Cosigned(_)))
        .count();
    assert_eq!(cosigned, 2);
    assert!(matches!(
        policy.verify(note.as_bytes()),
        Err(focalgate::checkpoint::policy::QuorumError::NoQuorum { .. })
    ));
}

/// How many inclusion proofs the gateway has served, by its metrics.
fn inclusion_proofs_served(gw: &common::Gateway) -> u64 {
    let out = Command::new("curl")
        .args(["-sf", &format!("http://{}/metrics", gw.monitoring)])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            l.starts_with("grpc_server_handled_total")
                && l.contains("grpc_method=\"GetInclusionProof\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// An add-checkpoint request from size 0 for the gateway's latest checkpoint.
async fn latest_request(gw: &common::Gateway) -> String {
    use focalgate::{proto::GetCheckpointRequest, rpc::audit_client::AuditClient};
    let note = AuditClient::new(gw.channel("KAZ").await)
        .get_checkpoint(GetCheckpointRequest { tree_size: 0 })
        .await
        .unwrap()
        .into_inner()
        .note;
    format!("old 0\n\n{note}")
}

/// A member's witness checks its own receipts: against the gateway that issued them it
/// cosigns; against another gateway with the same log key and a different history (a split
/// view) it refuses, naming the receipt whose entry is missing, and holds nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_own_entry_check_refuses_a_checkpoint_without_the_members_entries() {
    let dir = common::tempdir();
    let receipts = dir.path().join("receipts");
    let init = |name: &str| {
        let home = dir.path().join(name);
        let out = Command::new(common::BIN)
            .args(["witness", "init", "--dir"])
            .arg(&home)
            .args(["--name", &format!("{name}.kaz.example")])
            .output()
            .unwrap();
        assert!(out.status.success());
        home
    };

    // The gateway that issued the member's receipts.
    let a = common::Gateway::start(&dir.path().join("a")).await;
    let csv = common::samples().join("KAZ-SEIZURES.csv");
    let out = Command::new(common::BIN)
        .arg("submit")
        .arg(&csv)
        .arg("--identity")
        .arg(common::pki().join("KAZ"))
        .args(["--server", &a.url(), "--receipt"])
        .arg(&receipts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = a.log_key();
    let kaz = common::pki().join("KAZ");
    let own = |gw: &common::Gateway| {
        vec![
            "--receipts".to_owned(),
            receipts.display().to_string(),
            "--gateway".to_owned(),
            gw.url(),
            "--identity".to_owned(),
            kaz.display().to_string(),
        ]
    };
    let args = own(&a);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let port = common::free_port();
    let honest = WitnessProcess::start_with(&init("honest"), &log, port, &args);
    let add = format!("{}/add-checkpoint", honest.url);
    let (status, _, body) = curl(&add, Some("admin"), "POST", Some(&latest_request(&a).await));
    assert_eq!(status, 200, "{body}");
    assert_eq!(inclusion_proofs_served(&a), 28, "one proof per receipt");

    // The log grows by an entry of another member's: cosigned again, with none of the 28
    // receipts proved twice (an entry in a cosigned tree is in every consistent later one).
    let mut kgz =
        focalgate::rpc::submissions_client::SubmissionsClient::new(a.channel("KGZ").await);
    let body = common::body(
        "SEIZURES",
        "KGZ",
        "2001",
        vec![common::seizure("HEROIN", "KG", "1", 1)],
    );
    kgz.submit(common::Signer::of("KGZ").seal(&body))
        .await
        .unwrap();
    let proof = focalgate::rpc::audit_client::AuditClient::new(a.channel("KAZ").await)
        .get_consistency_proof(focalgate::proto::GetConsistencyProofRequest {
            from_size: 28,
            to_size: 29,
        })
        .await
        .unwrap()
        .into_inner();
    let grown = latest_request(&a).await.replacen(
        "old 0\n",
        &format!(
            "old 28\n{}",
            proof
                .hashes
                .iter()
                .map(|h| format!("{}\n", STANDARD.encode(h)))
                .collect::<String>()
        ),
        1,
    );
    let (status, _, body) = curl(&add, Some("admin"), "POST", Some(&grown));
    assert_eq!(status, 200, "{body}");
    assert_eq!(inclusion_proofs_served(&a), 28, "no receipt proved twice");
    a.stop().await;

    // The same log key, another history: the first entries are another member's.
    let b_dir = dir.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    std::fs::copy(dir.path().join("a/gateway.key"), b_dir.join("gateway.key")).unwrap();
    let b = common::Gateway::start(&b_dir).await;
    assert_eq!(b.log_key(), log);
    let mut kgz =
        focalgate::rpc::submissions_client::SubmissionsClient::new(b.channel("KGZ").await);
    for year in ["2001", "2002", "2003"] {
        let body = common::body(
            "SEIZURES",
            "KGZ",
            year,
            vec![common::seizure("HEROIN", "KG", "1", 1)],
        );
        kgz.submit(common::Signer::of("KGZ").seal(&body))
            .await
            .unwrap();
    }
    let args = own(&b);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let port = common::free_port();
    let fresh = WitnessProcess::start_with(&init("fresh"), &log, port, &args);
    let (status, _, body) = curl(
        &format!("{}/add-checkpoint", fresh.url),
        Some("admin"),
        "POST",
        Some(&latest_request(&b).await),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("own-entry check: receipt KAZ.SEIZURES.2019-Q1.r1 (log entry 0) is not in the tree of size 3"),
        "{body}"
    );
    let origin = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        log.name().as_bytes(),
    ));
    let (status, _, _) = curl(
        &format!("{}/{origin}/checkpoint", fresh.url),
        Some("admin"),
        "GET",
        None,
    );
    assert_eq!(status, 404, "the refusing witness holds nothing");
    b.stop().await;
    drop(honest);
}

/// An HTTP/1.1 keep-alive connection to a witness as the demo identity `who` of `pki`.
struct Connection {
    send: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
}

impl Connection {
    async fn open(url: &str, pki: &Path, who: &str) -> Option<Self> {
        let mut config = focalgate::tls::IdentityDir::new(pki.join(who))
            .rustls_client()
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let addr = url.trim_start_matches("https://");
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .ok()?;
        let (send, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .ok()?;
        tokio::spawn(connection);
        Some(Self { send })
    }

    /// The status of `GET /<hash of ORIGIN>/checkpoint`; `None` when the witness closed the
    /// connection (a TLS 1.3 server refuses a client certificate after the handshake
    /// completed on the client's side).
    async fn latest(&mut self) -> Option<u16> {
        let hash = hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            ORIGIN.as_bytes(),
        ));
        let request = hyper::Request::get(format!("/{hash}/checkpoint"))
            .header("host", "localhost")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        self.send.ready().await.ok()?;
        let response = self.send.send_request(request).await.ok()?;
        Some(response.status().as_u16())
    }
}

/// Whether a new connection of `who` is refused by the witness at `url`.
async fn refused(url: &str, pki: &Path, who: &str) -> bool {
    match Connection::open(url, pki, who).await {
        None => true,
        Some(mut c) => c.latest().await.is_none(),
    }
}

/// A running witness rereads its trust: a revocation by the CA (a new CRL file) closes new
/// connections of the revoked member and refuses requests on the connection it already had,
/// while others are still served; SIGHUP rereads the files too, and does not stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_witness_sees_a_revocation_and_rereads_its_trust_on_sighup() {
    let dir = common::tempdir();
    let pki = common::copy_pki(dir.path());
    let log = TestLog::new();
    let home = dir.path().join("witness");
    let init = Command::new(common::BIN)
        .args(["witness", "init", "--dir"])
        .arg(&home)
        .args(["--name", "witness.kaz.example"])
        .output()
        .unwrap();
    assert!(init.status.success());
    let mut witness = WitnessProcess::start_in(
        &home,
        log.key.verifier(),
        0,
        &pki,
        &["--metrics-listen", "127.0.0.1:0"],
    );

    let mut held = Connection::open(&witness.url, &pki, "KAZ").await.unwrap();
    assert_eq!(
        held.latest().await,
        Some(404),
        "served: nothing cosigned yet"
    );

    common::revoke_cert(&pki, "KAZ", "auth.pem");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if refused(&witness.url, &pki, "KAZ").await {
            break;
        }
        assert!(Instant::now() < deadline, "the revocation was never seen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        held.latest().await,
        Some(403),
        "the connection held from before is refused too"
    );
    let mut other = Connection::open(&witness.url, &pki, "UZB").await.unwrap();
    assert_eq!(
        other.latest().await,
        Some(404),
        "other members are still served"
    );

    let pid = witness.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut after = Connection::open(&witness.url, &pki, "UZB").await.unwrap();
    assert_eq!(after.latest().await, Some(404), "served after SIGHUP");
    assert!(
        refused(&witness.url, &pki, "KAZ").await,
        "still revoked after SIGHUP"
    );
    assert!(
        witness.child.try_wait().unwrap().is_none(),
        "SIGHUP does not stop the witness"
    );

    // Its operator's metrics count what it answered, and what its connections refused.
    let metrics = witness.metrics.clone().expect("--metrics-listen");
    let out = Command::new("curl")
        .args(["-s", &metrics])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for series in [
        r#"focalgate_witness_served_total{route="checkpoint",status="404"}"#,
        r#"focalgate_witness_served_total{route="checkpoint",status="403"}"#,
        r#"focalgate_witness_served_seconds_count{route="checkpoint"}"#,
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    common::promtool_accepts(&text);
}
