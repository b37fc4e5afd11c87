//! Beyond one machine: two gateway replicas on one PostgreSQL database keep one unforked log
//! under concurrent load and log each edit of the files they share once, and `store copy`
//! moves a store between backends with the same root and the same answers. The replica tests
//! run in the PostgreSQL suite (`tests/run`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use focalgate::rpc::{
    admin_client::AdminClient, audit_client::AuditClient, statistics_client::StatisticsClient,
    submissions_client::SubmissionsClient,
};
use std::collections::BTreeSet;

use common::{Gateway, Signer, body, seizure};
use focalgate::{
    checkpoint,
    entry::{AdminAction, sha256},
    merkle::{self, Hash},
    proto::{
        AggregateQuery, GetCheckpointRequest, GetConsistencyProofRequest, GetInclusionProofRequest,
        GetPolicyRequest, Receipt, get_inclusion_proof_request::Leaf, query_response::Item,
    },
    receipt,
};

const MEMBERS: [&str; 6] = ["KAZ", "KGZ", "TJK", "TKM", "UZB", "DEU"];

/// `n` distinct submissions from client `c`, through `gw`.
async fn load(gw: &Gateway, c: usize, n: usize) -> Vec<Receipt> {
    let who = MEMBERS[c % MEMBERS.len()];
    let signer = Signer::of(who);
    let mut client = SubmissionsClient::new(gw.channel(who).await);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let year = 1990 + (i % 30);
        let mut b = body(
            "SEIZURES",
            who,
            &year.to_string(),
            vec![seizure("HEROIN", "KG", &format!("{c}.{i:03}"), 1)],
        );
        b.prepared_at.as_mut().unwrap().nanos = (c * 1000 + i) as i32;
        out.push(client.submit(signer.seal(&b)).await.unwrap().into_inner());
    }
    out
}

/// Whether the store under test is PostgreSQL, which two replicas need; says so if not.
fn on_postgres() -> bool {
    let yes = common::postgres();
    if !yes {
        eprintln!(
            "two replicas need PostgreSQL: this test runs in the PostgreSQL suite (tests/run)"
        );
    }
    yes
}

fn hashes(v: &[Vec<u8>]) -> Vec<Hash> {
    merkle::decode_proof(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_database_keep_one_unforked_log() {
    if !on_postgres() {
        return;
    }
    let dir = common::tempdir();
    let first = common::settings(&dir.path().join("a"));
    let key = dir.path().join("a").join("gateway.key");
    let a = Gateway::start_with(first.clone()).await;
    // A replica with a key of its own is refused: one log, one key.
    let mut stranger = common::settings(&dir.path().join("c"));
    stranger.store.url = first.store.url.clone();
    let err = focalgate::service::assemble(&stranger)
        .await
        .err()
        .expect("a second key is refused");
    assert!(err.to_string().contains("every replica must use"), "{err}");
    let mut second = common::settings(&dir.path().join("b"));
    second.store.url = first.store.url.clone();
    second.log.key = Some(key);
    let b = Gateway::start_with(second).await;

    // 8 clients, alternating between the replicas, 63 submissions each.
    let (clients, each) = (8, 63);
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let gw = if c % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { load(&gw, c, each).await })
        })
        .collect();
    let mut receipts = Vec::new();
    for t in tasks {
        receipts.extend(t.await.unwrap());
    }
    let n = (clients * each) as u64;
    assert_eq!(receipts.len() as u64, n);

    // Indices 0..n-1, each once.
    let indices: BTreeSet<u64> = receipts.iter().map(|r| r.log_index).collect();
    assert_eq!(
        indices,
        (0..n).collect::<BTreeSet<_>>(),
        "no gap, no duplicate"
    );

    // Every receipt verifies offline, and its entry is in the final tree.
    let key = a.log_key();
    let mut audit = AuditClient::new(a.channel("auditor").await);
    let latest = audit
        .get_checkpoint(GetCheckpointRequest { tree_size: 0 })
        .await
        .unwrap()
        .into_inner();
    let last = checkpoint::open(latest.note.as_bytes(), &key, &[])
        .unwrap()
        .into_checkpoint();
    assert_eq!(last.size, n);
    let mut signed_sizes = BTreeSet::new();
    for r in &receipts {
        let verified = receipt::verify_offline(r, &key).unwrap();
        signed_sizes.insert(verified.tree_size);
        let proof = audit
            .get_inclusion_proof(GetInclusionProofRequest {
                leaf: Some(Leaf::LeafIndex(r.log_index)),
                tree_size: n,
            })
            .await
            .unwrap()
            .into_inner();
        merkle::verify_inclusion(
            r.log_index,
            n,
            &merkle::leaf_hash(&r.log_entry),
            &hashes(&proof.hashes),
            &last.root,
        )
        .unwrap();
    }

    // Every checkpoint either replica signed is consistent with the final one.
    let stored: Vec<u64> = a
        .rows("SELECT size FROM checkpoints ORDER BY size")
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect();
    assert!(signed_sizes.iter().all(|s| stored.contains(s)));
    let mut b_audit = AuditClient::new(b.channel("auditor").await);
    for size in stored.iter().copied().filter(|&s| s < n) {
        let cp = b_audit
            .get_checkpoint(GetCheckpointRequest { tree_size: size })
            .await
            .unwrap()
            .into_inner();
        let old = checkpoint::open(cp.note.as_bytes(), &key, &[])
            .unwrap()
            .into_checkpoint();
        let proof = audit
            .get_consistency_proof(GetConsistencyProofRequest {
                from_size: size,
                to_size: n,
            })
            .await
            .unwrap()
            .into_inner();
        merkle::verify_consistency(size, n, &hashes(&proof.hashes), &old.root, &last.root).unwrap();
    }
    eprintln!(
        "{n} submissions through two replicas, {} checkpoints, all consistent",
        stored.len()
    );
    for gw in [a, b] {
        std::sync::Arc::try_unwrap(gw).ok().unwrap().stop().await;
    }
}

/// The policy digest `gw` has in force, as an administrator reads it.
async fn policy_in_force(gw: &Gateway) -> Vec<u8> {
    AdminClient::new(gw.channel("admin").await)
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner()
        .digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_reading_the_same_files_log_each_edit_once() {
    if !on_postgres() {
        return;
    }
    let dir = common::tempdir();
    let pki = common::copy_pki(dir.path());
    let first = common::settings_with_pki(&dir.path().join("a"), &pki);
    let mut second = common::settings_with_pki(&dir.path().join("b"), &pki);
    second.store.url = first.store.url.clone();
    second.log.key = Some(dir.path().join("a").join("gateway.key"));
    let a = Gateway::start_with(first.clone()).await;
    let b = Gateway::start_with(second.clone()).await;
    assert!(a.admin_entries(0).await.is_empty());

    // While both run, a revocation (`ca revoke`) and then a policy edit, in the files both
    // read. Each replica reloads; once both enforce the new policy, both saw both edits.
    let policy_file = pki.join("policy.toml");
    let original = std::fs::read_to_string(&policy_file).unwrap();
    let edited = original.replace("roles = [\"analyst\"]", "roles = []");
    assert_ne!(edited, original);
    let deu = common::revoke_signing_cert(&pki, "DEU");
    std::fs::write(&policy_file, &edited).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for gw in [&a, &b] {
        while policy_in_force(gw).await != sha256(edited.as_bytes()) {
            assert!(
                std::time::Instant::now() < deadline,
                "a replica did not reload"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    // Stopping finishes a reload under way.
    a.stop().await;
    b.stop().await;

    // While both are stopped: the policy put back and another revocation. Both replicas
    // then start at the same moment, and each finds both edits.
    std::fs::write(&policy_file, &original).unwrap();
    let tkm = common::revoke_signing_cert(&pki, "TKM");
    let (a, b) = tokio::join!(
        Gateway::start_with(first.clone()),
        Gateway::start_with(second.clone())
    );

    let logged: Vec<(&str, String)> = a
        .admin_entries(0)
        .await
        .into_iter()
        .map(|e| {
            let what = e.serial.unwrap_or_else(|| hex::encode(e.digest));
            (e.action.kind(), what)
        })
        .collect();
    let (revoked, changed) = (
        AdminAction::CertificateRevoked.kind(),
        AdminAction::PolicyChanged.kind(),
    );
    let once: BTreeSet<(&str, String)> = [
        (revoked, deu),
        (changed, hex::encode(sha256(edited.as_bytes()))),
        (revoked, tkm),
        (changed, hex::encode(sha256(original.as_bytes()))),
    ]
    .into();
    assert_eq!(
        logged.len(),
        once.len(),
        "each edit logged once: {logged:?}"
    );
    assert_eq!(logged.iter().cloned().collect::<BTreeSet<_>>(), once);
    a.stop().await;
    b.stop().await;
}

/// Every cell of a year × drug × reporter roll-up, as the analyst sees it.
async fn answers(gw: &Gateway) -> Vec<String> {
    let mut stream = StatisticsClient::new(gw.channel("analyst").await)
        .query(AggregateQuery {
            dataflow: "SEIZURES".into(),
            rollup: "A".into(),
            group_by: vec!["TIME_PERIOD".into(), "DRUG".into(), "REF_AREA".into()],
            totals: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut cells = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        if let Some(Item::Row(r)) = m.item {
            cells.push(format!("{r:?}"));
        }
    }
    cells
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_between_backends_keeps_the_root_and_the_answers() {
    let dir = common::tempdir();
    let data = dir.path().join("data");
    // The source is always SQLite; the copy goes to the backend under test.
    let source = format!("sqlite://{}", data.join("focalgate.db").display());
    let mut settings = common::settings(&data);
    settings.store.url = Some(source.clone());
    let gw = Gateway::start_with(settings).await;
    for c in 0..3 {
        load(&gw, c, 20).await;
    }
    // A revision (KAZ again, other figures) and a query, so that revisions and the access
    // trail travel too.
    load(&gw, 6, 1).await;
    let before = answers(&gw).await;
    let root_before = gw
        .rows("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1")
        .remove(0)
        .remove(0)
        .unwrap();
    let references = "SELECT name, value FROM log_meta WHERE name IN ('first_policy', 'first_crls') ORDER BY name";
    let references_before = gw.rows(references);
    assert_eq!(references_before.len(), 2, "recorded at first start");
    gw.stop().await;

    let other = dir.path().join("copy");
    std::fs::create_dir_all(&other).unwrap();
    let target = common::store_url(&other);
    let out = std::process::Command::new(common::BIN)
        .args(["store", "copy", "--from", &source, "--to", &target])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("61 submission(s), 61 log entries"),
        "{stdout}"
    );
    assert!(stdout.contains("both logs recompute root"), "{stdout}");

    // A gateway on the copy (with the same key and published checkpoint) answers the same.
    for f in ["gateway.key", "checkpoint"] {
        std::fs::copy(data.join(f), other.join(f)).unwrap();
    }
    let copy = Gateway::start(&other).await;
    assert_eq!(answers(&copy).await, before);
    assert_eq!(
        copy.rows("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1")[0][0].as_deref(),
        Some(root_before.as_str())
    );
    assert_eq!(copy.count("access_trail").await, 2, "the trail came along");
    assert_eq!(
        copy.rows(references),
        references_before,
        "the references for edits made while stopped came along"
    );

    // A second copy into the now non-empty store is refused.
    let again = std::process::Command::new(common::BIN)
        .args(["store", "copy", "--from", &source, "--to", &target])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    copy.stop().await;
}
