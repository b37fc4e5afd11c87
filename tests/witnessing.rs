//! The hub and its witnesses: a real gateway asking five witnesses (each its own HTTPS
//! server with client certificates) to cosign its checkpoints, a quorum of three; witnesses
//! stopped and started again; receipts upgraded to tlog-proof files and checked offline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use common::{Gateway, Signer, body, cli, seizure};
use focalgate::{
    checkpoint::{KeyType, NoteSigner, NoteVerifier, policy::PolicyWitness},
    proto::{GetCheckpointRequest, GetLogStatusRequest, LogStatus, SignedCheckpoint},
    rpc::{audit_client::AuditClient, submissions_client::SubmissionsClient},
};
use tokio::sync::watch;

/// The log key the gateway in `data_dir` will sign with, made before it starts so that the
/// witnesses can be told it.
fn log_key(data_dir: &Path) -> NoteVerifier {
    std::fs::create_dir_all(data_dir).unwrap();
    let (key, _) =
        focalgate::pki::load_or_create_gateway_key(&data_dir.join("gateway.key")).unwrap();
    NoteSigner::from_key_pair(focalgate::config::DEMO_ORIGIN, KeyType::Ed25519, key)
        .unwrap()
        .verifier()
        .clone()
}

/// A copy of the demo PKI whose policy's roster is `witnesses`, run by the five Central
/// Asian members, three of them a quorum.
fn pki_with_roster(dir: &Path, witnesses: &[PolicyWitness]) -> std::path::PathBuf {
    let pki = common::copy_pki(dir);
    let policy = std::fs::read_to_string(pki.join("policy.toml")).unwrap();
    let (before, _) = policy.split_once("\n[witnesses]").unwrap();
    let mut roster = String::new();
    let mut members = String::new();
    for (w, country) in witnesses.iter().zip(["KAZ", "KGZ", "TJK", "TKM", "UZB"]) {
        roster.push_str(&format!(
            "witness {} {} {}\n",
            w.name,
            w.key,
            w.url.as_deref().unwrap()
        ));
        members.push_str(&format!("{} = \"{country}:nfp\"\n", w.name));
    }
    std::fs::write(
        pki.join("policy.toml"),
        format!(
            "{before}\n[witnesses]\npolicy = \"\"\"\n{roster}group central-asia 3 W0 W1 W2 W3 W4\nquorum central-asia\n\"\"\"\n\n[witnesses.members]\n{members}"
        ),
    )
    .unwrap();
    pki
}

struct Hub {
    gateway: Gateway,
    audit: AuditClient<tonic::transport::Channel>,
    submissions: SubmissionsClient<tonic::transport::Channel>,
    submitted: u32,
}

impl Hub {
    /// Submits one more KAZ submission and returns the log size after it.
    async fn submit(&mut self) -> u64 {
        self.submitted += 1;
        let year = 1990 + self.submitted;
        let b = body(
            "SEIZURES",
            "KAZ",
            &year.to_string(),
            vec![seizure("HEROIN", "KG", "1.5", 1)],
        );
        let receipt = self
            .submissions
            .submit(Signer::of("KAZ").seal(&b))
            .await
            .expect("a submission is accepted whatever the witnesses do")
            .into_inner();
        receipt.log_index + 1
    }

    async fn checkpoint(&mut self) -> SignedCheckpoint {
        self.audit
            .get_checkpoint(GetCheckpointRequest { tree_size: 0 })
            .await
            .unwrap()
            .into_inner()
    }

    async fn status(&mut self) -> LogStatus {
        self.audit
            .get_log_status(GetLogStatusRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    /// Waits (at most `within`) until the witnessed checkpoint has `size` entries; returns
    /// how long it took, or `None`.
    async fn witnessed(&mut self, size: u64, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < within {
            let cp = self.checkpoint().await;
            if cp.witnessed.as_ref().is_some_and(|w| w.tree_size == size) {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn five_witnesses_quorum_three_lag_when_three_are_down_and_catch_up_when_they_return() {
    let dir = common::tempdir();
    let data = dir.path().join("data");
    let log = log_key(&data);
    let mut witnesses = Vec::new();
    let mut stops: Vec<watch::Sender<bool>> = Vec::new();
    for i in 0..5 {
        let (w, stop) = common::serve_witness(dir.path(), i, &log, 0).await;
        witnesses.push(w);
        stops.push(stop);
    }
    let pki = pki_with_roster(dir.path(), &witnesses);
    let mut settings = common::settings_with_pki(&data, &pki);
    settings.witnessing.identity = Some(pki.join("hub"));
    settings.witnessing.period_ms = 50;
    settings.witnessing.retry_ms = 200;
    settings.witnessing.timeout_ms = 2_000;
    let gateway = Gateway::start_with(settings).await;
    let mut hub = Hub {
        audit: AuditClient::new(gateway.channel("KGZ").await),
        submissions: SubmissionsClient::new(gateway.channel("KAZ").await),
        gateway,
        submitted: 0,
    };

    // All up: witnessed within a second of the log's checkpoint, by all five.
    let size = hub.submit().await;
    let took = hub.witnessed(size, Duration::from_secs(1)).await;
    assert!(took.is_some(), "not witnessed within a second");
    let w = hub.checkpoint().await.witnessed.unwrap();
    assert_eq!(w.cosigned_by, ["W0", "W1", "W2", "W3", "W4"]);
    let policy = focalgate::checkpoint::policy::Policy::parse(&hub.status().await.policy).unwrap();
    let (_, by) = policy.verify(w.note.as_bytes()).unwrap();
    assert_eq!(by.len(), 5);

    // Two down: still witnessed, by the other three.
    stops[0].send(true).unwrap();
    stops[1].send(true).unwrap();
    let size = hub.submit().await;
    assert!(hub.witnessed(size, Duration::from_secs(2)).await.is_some());
    let w = hub.checkpoint().await.witnessed.unwrap();
    assert_eq!(w.cosigned_by, ["W2", "W3", "W4"]);

    // Three down: submissions are still accepted; the witnessed size lags and says why.
    stops[2].send(true).unwrap();
    let witnessed_before = size;
    let mut size = 0;
    for _ in 0..3 {
        size = hub.submit().await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = hub.status().await;
    assert_eq!(status.tree_size, size);
    assert_eq!(status.witnessed_size, witnessed_before, "{status:?}");
    let cp = hub.checkpoint().await;
    assert_eq!(cp.tree_size, size);
    assert_eq!(cp.witnessed.unwrap().tree_size, witnessed_before);
    for w in &status.witnesses[..3] {
        assert!(w.lag > 0 && !w.last_error.is_empty(), "{w:?}");
    }
    for w in &status.witnesses[3..] {
        assert!(w.lag == 0 && w.last_error.is_empty(), "{w:?}");
    }
    assert_eq!(status.witnesses[0].member, "KAZ:nfp");
    let metrics = metrics_of(&hub.gateway).await;
    assert!(metrics.contains("focalgate_witness_quorum 0"), "{metrics}");
    assert!(
        metrics.contains(&format!("focalgate_log_witnessed_size {witnessed_before}")),
        "{metrics}"
    );
    assert!(
        metrics.contains("focalgate_witness_requests_total{witness=\"W0\",outcome=\"failed\"}")
    );
    audits_with_a_policy_end_on_the_witnessed_checkpoint(
        &hub,
        &status.policy,
        witnessed_before,
        dir.path(),
    );

    // They return, on the same addresses, with the state they kept: the hub catches up.
    for i in 0..3 {
        let port: u16 = witnesses[i]
            .url
            .as_deref()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let (_, stop) = common::serve_witness(dir.path(), i, &log, port).await;
        stops[i] = stop;
    }
    assert!(
        hub.witnessed(size, Duration::from_secs(3)).await.is_some(),
        "{:?}",
        hub.status().await
    );
    // The third to return may answer a round after the quorum was met.
    let start = Instant::now();
    let mut status = hub.status().await;
    while !status
        .witnesses
        .iter()
        .all(|w| w.lag == 0 && w.last_error.is_empty())
    {
        assert!(start.elapsed() < Duration::from_secs(2), "{status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = hub.status().await;
    }
    let metrics = metrics_of(&hub.gateway).await;
    assert!(metrics.contains("focalgate_witness_quorum 1"), "{metrics}");
    common::promtool_accepts(&metrics);

    a_forged_checkpoint_signed_with_the_log_key_is_refused_by_every_witness(
        &mut hub, &data, &witnesses, &pki,
    )
    .await;
    receipts_become_tlog_proofs_that_a_partner_checks_offline(&mut hub, &pki, dir.path()).await;
    hub.gateway.stop().await;
}

/// Someone holding the log's key (a hub operator rewriting history) signs a checkpoint of
/// another tree of the same size, and a rollback to a smaller one: every witness refuses
/// both, and the hub's witnessed checkpoint stays what it was.
async fn a_forged_checkpoint_signed_with_the_log_key_is_refused_by_every_witness(
    hub: &mut Hub,
    data: &Path,
    witnesses: &[PolicyWitness],
    pki: &Path,
) {
    use focalgate::{
        checkpoint::Checkpoint,
        merkle,
        witness::client::{Answer, WitnessClient},
    };
    let before = hub.checkpoint().await.witnessed.unwrap();
    let (key, _) = focalgate::pki::load_or_create_gateway_key(&data.join("gateway.key")).unwrap();
    let log =
        NoteSigner::from_key_pair(focalgate::config::DEMO_ORIGIN, KeyType::Ed25519, key).unwrap();
    let sign = |size: u64, root: merkle::Hash| {
        let body = Checkpoint {
            origin: focalgate::config::DEMO_ORIGIN.into(),
            size,
            root,
            extensions: Vec::new(),
        }
        .body();
        focalgate::checkpoint::note::sign(&body, &[log.sign(&body, 0)]).unwrap()
    };
    let client = WitnessClient::new(
        focalgate::tls::IdentityDir::new(pki.join("hub"))
            .rustls_client()
            .unwrap(),
        Duration::from_secs(2),
    );
    let fork = sign(before.tree_size, merkle::leaf_hash(b"another history"));
    let rollback = sign(before.tree_size - 1, merkle::leaf_hash(b"an older history"));
    for w in witnesses {
        let url = w.url.as_deref().unwrap();
        let answer = client
            .add_checkpoint(url, &w.key, before.tree_size, &[], &fork)
            .await
            .unwrap();
        assert!(
            matches!(answer, Answer::Refused(422, _)),
            "{}: {answer:?}",
            w.name
        );
        let answer = client
            .add_checkpoint(url, &w.key, before.tree_size - 1, &[], &rollback)
            .await
            .unwrap();
        assert!(
            matches!(answer, Answer::Stale(n) if n == before.tree_size),
            "{}: {answer:?}",
            w.name
        );
    }
    assert_eq!(hub.checkpoint().await.witnessed.unwrap(), before);
}

/// The README's Python check of a tlog-proof, written against the C2SP specifications alone,
/// accepts every proof, and refuses one whose entry was changed.
fn python_checks_the_proofs(proofs: &[String], policy: &Path, dir: &Path) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```python\n# verify-tlog-proof.py")
        .expect("the README shows the Python tlog-proof check")
        + "```python\n".len();
    let script = dir.join("verify-tlog-proof.py");
    std::fs::write(
        &script,
        &readme[start..start + readme[start..].find("```").unwrap()],
    )
    .unwrap();
    let python = |proof: &str| match std::process::Command::new("python3")
        .arg(&script)
        .arg(proof)
        .arg(policy)
        .output()
    {
        Ok(out) => Some(out),
        Err(_) if std::env::var("CI").as_deref() != Ok("true") => None,
        Err(e) => panic!("python3 is needed by this test (CI=true): {e}"),
    };
    for proof in proofs {
        let Some(out) = python(proof) else { return };
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("OK entry"),
            "{proof}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Another entry under the same path: refused.
    let text = std::fs::read_to_string(&proofs[0]).unwrap();
    let changed = dir.join("changed.tlog-proof");
    std::fs::write(&changed, text.replacen("extra ", "extra AAAA", 1)).unwrap();
    let out = python(changed.to_str().unwrap()).unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the entry is not in the tree"));
}

/// A member submits with the CLI, keeps its receipts, upgrades them once witnessed, and
/// checks the proofs offline against the policy; a changed cosignature fails.
async fn receipts_become_tlog_proofs_that_a_partner_checks_offline(
    hub: &mut Hub,
    pki: &Path,
    dir: &Path,
) {
    let server = hub.gateway.url();
    let uzb = pki.join("UZB");
    let receipts = dir.join("receipts");
    let csv = common::samples().join("UZB-SEIZURES.csv");
    let out = cli(&[
        "submit",
        csv.to_str().unwrap(),
        "--identity",
        uzb.to_str().unwrap(),
        "--server",
        &server,
        "--receipt",
        receipts.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let size = hub.checkpoint().await.tree_size;
    assert!(hub.witnessed(size, Duration::from_secs(3)).await.is_some());

    let policy = dir.join("hub.policy");
    let out = cli(&[
        "log",
        "status",
        "--identity",
        uzb.to_str().unwrap(),
        "--server",
        &server,
        "--write-policy",
        policy.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!("witnessed size    {size} (lag 0 entries)")),
        "{shown}"
    );

    let mut files: Vec<String> = std::fs::read_dir(&receipts)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.sort();
    let mut args = vec!["receipt", "upgrade"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--identity", uzb.to_str().unwrap(), "--server", &server]);
    args.extend(["--policy", policy.to_str().unwrap()]);
    assert!(cli(&args).status.success());
    let proofs: Vec<String> = files
        .iter()
        .map(|f| f.replace(".json", ".tlog-proof"))
        .collect();
    let mut args = vec!["receipt", "verify", "--policy", policy.to_str().unwrap()];
    args.extend(proofs.iter().map(String::as_str));
    let out = cli(&args);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("cosigned by W0, W1, W2, W3, W4")
            .count(),
        proofs.len()
    );

    python_checks_the_proofs(&proofs, &policy, dir);

    // A receipt alone carries no cosignatures: the policy's quorum is not met.
    let out = cli(&[
        "receipt",
        "verify",
        "--policy",
        policy.to_str().unwrap(),
        &files[0],
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("not a witnessed one"));

    // One cosignature changed by a character: the proof fails.
    let text = std::fs::read_to_string(&proofs[0]).unwrap();
    let at = text.find("— witness-3.example ").unwrap() + "— witness-3.example ".len() + 20;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let tampered = dir.join("tampered.tlog-proof");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = cli(&[
        "receipt",
        "verify",
        "--policy",
        policy.to_str().unwrap(),
        tampered.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("BAD"));
}

/// `log verify` and `log monitor` with a policy end on the witnessed checkpoint (of
/// `witnessed` entries, while the log is larger), and fail under a policy whose quorum it does
/// not meet (all five, when three cosigned it).
fn audits_with_a_policy_end_on_the_witnessed_checkpoint(
    hub: &Hub,
    policy: &str,
    witnessed: u64,
    dir: &Path,
) {
    let (hub_policy, strict) = (dir.join("audit.policy"), dir.join("strict.policy"));
    std::fs::write(&hub_policy, policy).unwrap();
    std::fs::write(
        &strict,
        policy.replace("group central-asia 3 ", "group central-asia all "),
    )
    .unwrap();
    let (server, auditor) = (hub.gateway.url(), common::pki().join("auditor"));
    let (server, auditor) = (server.as_str(), auditor.to_str().unwrap());
    let state = dir.join("monitor.json");
    let state = state.to_str().unwrap();
    for (p, ok) in [(&hub_policy, true), (&strict, false)] {
        let p = p.to_str().unwrap();
        let out = cli(&[
            "log",
            "verify",
            "--server",
            server,
            "--identity",
            auditor,
            "--policy",
            p,
        ]);
        assert_eq!(out.status.success(), ok);
        let shown =
            String::from_utf8_lossy(if ok { &out.stdout } else { &out.stderr }).into_owned();
        if ok {
            assert!(
                shown.contains(&format!("{witnessed} entries recompute")),
                "{shown}"
            );
        } else {
            assert!(shown.contains("not witnessed"), "{shown}");
        }
        let args = [
            "log",
            "monitor",
            "--server",
            server,
            "--identity",
            auditor,
            "--policy",
            p,
            "--state",
            state,
        ];
        let out = cli(&args);
        assert_eq!(out.status.success(), ok);
        if ok {
            let shown = String::from_utf8_lossy(&out.stdout);
            assert!(
                shown.contains(&format!("remembering checkpoint of size {witnessed}")),
                "{shown}"
            );
        }
    }
}

/// The gateway's metrics exposition.
async fn metrics_of(gateway: &Gateway) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("http://{}/metrics", gateway.monitoring)])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Two replicas on one PostgreSQL database, each running its own witnessing rounds against
/// the same five witnesses while clients submit through both: the witnesses see one history
/// (never a refusal for inconsistency), both replicas present the same witnessed checkpoint,
/// and it catches up with the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_one_witnessed_checkpoint_and_never_post_inconsistent_ones() {
    if !common::postgres() {
        eprintln!("two replicas need PostgreSQL: this test runs in the PostgreSQL suite");
        return;
    }
    let dir = common::tempdir();
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let log = log_key(&data_a);
    let mut witnesses = Vec::new();
    let mut stops = Vec::new();
    for i in 0..5 {
        let (w, stop) = common::serve_witness(dir.path(), i, &log, 0).await;
        witnesses.push(w);
        stops.push(stop);
    }
    let pki = pki_with_roster(dir.path(), &witnesses);
    let replica = |data: &Path| {
        let mut s = common::settings_with_pki(data, &pki);
        s.ca.dir = None;
        s.witnessing.identity = Some(pki.join("hub"));
        s.witnessing.period_ms = 20;
        s.witnessing.retry_ms = 100;
        s
    };
    let first = replica(&data_a);
    let mut second = replica(&data_b);
    second.store.url = first.store.url.clone();
    second.log.key = Some(data_a.join("gateway.key"));
    let a = std::sync::Arc::new(Gateway::start_with(first).await);
    let b = std::sync::Arc::new(Gateway::start_with(second).await);

    let (clients, each) = (4u32, 30u32);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let gw = if c % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let who = ["KAZ", "KGZ", "TJK", "UZB"][c as usize];
                let mut client = SubmissionsClient::new(gw.channel(who).await);
                for i in 0..each {
                    let mut b = body(
                        "SEIZURES",
                        who,
                        &(1990 + i).to_string(),
                        vec![seizure("HEROIN", "KG", &format!("{c}.{i:03}"), 1)],
                    );
                    b.prepared_at.as_mut().unwrap().nanos = (c * 1000 + i) as i32;
                    client.submit(Signer::of(who).seal(&b)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let n = u64::from(clients * each);

    let mut hubs = Vec::new();
    for gw in [&a, &b] {
        hubs.push(AuditClient::new(gw.channel("auditor").await));
    }
    let start = Instant::now();
    let witnessed = loop {
        let cp = hubs[0]
            .get_checkpoint(GetCheckpointRequest { tree_size: 0 })
            .await
            .unwrap()
            .into_inner();
        if let Some(w) = cp.witnessed.filter(|w| w.tree_size == n) {
            break w;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not witnessed at {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let other = hubs[1]
        .get_checkpoint(GetCheckpointRequest { tree_size: 0 })
        .await
        .unwrap()
        .into_inner()
        .witnessed
        .unwrap();
    // The same checkpoint, with the log's signature: cosignatures may have been added between
    // the two reads.
    let signed = |note: &str| note.split("\n\u{2014} witness-").next().unwrap().to_owned();
    assert_eq!(
        (other.tree_size, signed(&other.note)),
        (witnessed.tree_size, signed(&witnessed.note)),
        "both replicas present one witnessed checkpoint"
    );

    // Every witness ends on the log's own checkpoint, and none ever saw an inconsistent one.
    let status = hubs[1]
        .get_log_status(GetLogStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    for w in &status.witnesses {
        assert!(!w.last_error.contains("422"), "{w:?}");
    }
    for i in 0..5 {
        let state =
            focalgate::witness::State::open(&dir.path().join(format!("witness-{i}.db"))).unwrap();
        let held = state.held(log.name()).unwrap().unwrap();
        let logs = hubs[0]
            .get_checkpoint(GetCheckpointRequest {
                tree_size: held.size,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            held.checkpoint.starts_with(logs.note.trim_end()),
            "witness {i} holds the log's own checkpoint of size {}",
            held.size
        );
    }
    let policy = focalgate::checkpoint::policy::Policy::parse(&status.policy).unwrap();
    let (_, by) = policy.verify(witnessed.note.as_bytes()).unwrap();
    assert!(by.len() >= 3);
    drop(stops);
    std::sync::Arc::into_inner(a).unwrap().stop().await;
    std::sync::Arc::into_inner(b).unwrap().stop().await;
}

/// The roster and the quorum are part of the policy: changing them is a logged
/// `policy-changed` act in force at once, and a roster that names a witness nobody runs is
/// refused, naming the rule, with the policy in force unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn a_roster_or_quorum_change_is_a_logged_policy_change() {
    use focalgate::{
        proto::{GetPolicyRequest, ReplacePolicyRequest},
        rpc::admin_client::AdminClient,
    };
    let dir = common::tempdir();
    let pki = common::copy_pki(dir.path());
    let gw = Gateway::start_with(common::settings_with_pki(&dir.path().join("data"), &pki)).await;
    let mut admin = AdminClient::new(gw.channel("admin").await);
    let mut audit = AuditClient::new(gw.channel("KGZ").await);
    let policy = admin
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        policy
            .text
            .contains("group central-asia 3 KAZ KGZ TJK TKM UZB")
    );

    let orphan = policy.text.replace("UZB = \"UZB:nfp\"\n", "");
    let err = admin
        .replace_policy(ReplacePolicyRequest {
            text: orphan,
            expected_digest: policy.digest.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message()
            .contains("witnesses.members: witness UZB is run by no member"),
        "{}",
        err.message()
    );

    let two = policy
        .text
        .replace("group central-asia 3 ", "group central-asia 2 ");
    let replaced = admin
        .replace_policy(ReplacePolicyRequest {
            text: two,
            expected_digest: policy.digest.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let logged = replaced.log.expect("the change is a log entry");
    match focalgate::entry::Entry::parse(&logged.entry).unwrap() {
        focalgate::entry::Entry::Admin(e) => {
            assert_eq!(e.action, focalgate::entry::AdminAction::PolicyChanged);
        }
        other => panic!("{other:?}"),
    }
    let status = audit
        .get_log_status(GetLogStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        status.policy.contains("group central-asia 2 KAZ"),
        "{}",
        status.policy
    );
    gw.stop().await;
}
