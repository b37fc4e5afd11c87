//! The transparency log over real mTLS: receipts verified offline, proofs from the Audit
//! service, `log verify` on an honest and on a tampered log, `log monitor` against a rollback
//! and a fork, and the gateway refusing to serve a log that disagrees with what it signed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use focalgate::rpc::audit_client::AuditClient;

use common::{Gateway, Signer, body, cli, pki, seizure};
use focalgate::{
    checkpoint,
    merkle::{self, Hash},
    proto::{
        GetCheckpointRequest, GetConsistencyProofRequest, GetEntriesRequest,
        GetInclusionProofRequest, Receipt, get_inclusion_proof_request::Leaf, log_entry::Decoded,
    },
    receipt,
};

/// Submits `n` distinct submissions for `who`, `per_call` at a time concurrently, and returns
/// the receipts.
async fn submit_many(gw: &Gateway, who: &str, n: u32) -> Vec<Receipt> {
    let channel = gw.channel(who).await;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let channel = channel.clone();
            let who = who.to_owned();
            tokio::spawn(async move {
                let year = 2000 + (i % 25);
                let mut b = body(
                    "SEIZURES",
                    &who,
                    &year.to_string(),
                    vec![seizure("HEROIN", "KG", &format!("{i}.25"), 1)],
                );
                b.prepared_at.as_mut().unwrap().nanos = i as i32;
                let mut client =
                    focalgate::rpc::submissions_client::SubmissionsClient::new(channel);
                client
                    .submit(Signer::of(&who).seal(&b))
                    .await
                    .unwrap()
                    .into_inner()
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn hashes(v: &[Vec<u8>]) -> Vec<Hash> {
    merkle::decode_proof(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_and_audit_proofs_verify_against_signed_checkpoints() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let key = gw.log_key();
    let mut receipts = submit_many(&gw, "KAZ", 40).await;
    receipts.extend(submit_many(&gw, "TJK", 20).await);

    // Indices 0..n-1, each once.
    let mut indices: Vec<u64> = receipts.iter().map(|r| r.log_index).collect();
    indices.sort();
    assert_eq!(indices, (0..60).collect::<Vec<_>>());
    for r in &receipts {
        receipt::verify_offline(r, &key).unwrap();
    }

    let mut audit = AuditClient::new(gw.channel("analyst").await);
    let latest = audit
        .get_checkpoint(GetCheckpointRequest { tree_size: 0 })
        .await
        .unwrap()
        .into_inner();
    let head = checkpoint::open(latest.note.as_bytes(), &key, &[])
        .unwrap()
        .into_checkpoint();
    assert_eq!((head.size, latest.tree_size), (60, 60));

    // Every receipt's entry is in the latest tree, by index and by leaf hash.
    for r in &receipts {
        let leaf = merkle::leaf_hash(&r.log_entry);
        for how in [
            Leaf::LeafIndex(r.log_index),
            Leaf::LeafHash(leaf.as_bytes().to_vec()),
        ] {
            let p = audit
                .get_inclusion_proof(GetInclusionProofRequest {
                    leaf: Some(how),
                    tree_size: 0,
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(p.leaf_index, r.log_index);
            merkle::verify_inclusion(
                r.log_index,
                head.size,
                &leaf,
                &hashes(&p.hashes),
                &head.root,
            )
            .unwrap();
        }
        // The checkpoint in each receipt is consistent with the latest.
        let old = checkpoint::open(r.checkpoint.as_bytes(), &key, &[])
            .unwrap()
            .into_checkpoint();
        let c = audit
            .get_consistency_proof(GetConsistencyProofRequest {
                from_size: old.size,
                to_size: 0,
            })
            .await
            .unwrap()
            .into_inner();
        merkle::verify_consistency(
            old.size,
            head.size,
            &hashes(&c.hashes),
            &old.root,
            &head.root,
        )
        .unwrap();
    }

    // Entries come as exact bytes beside their decoded form, capped per call.
    let mut stream = audit
        .get_entries(GetEntriesRequest { start: 10, end: 15 })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(e) = stream.message().await.unwrap() {
        assert_eq!(e.leaf_hash, merkle::leaf_hash(&e.entry).as_bytes().to_vec());
        let Some(Decoded::Submission(s)) = e.decoded else {
            panic!("entry {} not decoded", e.index)
        };
        let r = receipts.iter().find(|r| r.log_index == e.index).unwrap();
        assert_eq!(
            (s.submission_id.as_str(), e.entry.as_slice()),
            (r.submission_id.as_str(), r.log_entry.as_slice())
        );
        got.push(e.index);
    }
    assert_eq!(got, [10, 11, 12, 13, 14]);

    // Out of range requests are INVALID_ARGUMENT, unknown hashes NOT_FOUND.
    let err = audit
        .get_inclusion_proof(GetInclusionProofRequest {
            leaf: Some(Leaf::LeafIndex(60)),
            tree_size: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = audit
        .get_inclusion_proof(GetInclusionProofRequest {
            leaf: Some(Leaf::LeafHash(vec![0; 32])),
            tree_size: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = audit
        .get_consistency_proof(GetConsistencyProofRequest {
            from_size: 0,
            to_size: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_verify_passes_on_an_honest_log_and_names_an_altered_entry() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    submit_many(&gw, "UZB", 30).await;
    submit_many(&gw, "KGZ", 9).await;
    let (url, vkey) = (gw.url(), dir.path().join("log.vkey"));
    let (auditor, vkey_arg) = (pki().join("auditor"), vkey.to_str().unwrap().to_owned());
    let args = |who: &std::path::Path| {
        vec![
            "log".to_owned(),
            "verify".into(),
            "--server".into(),
            url.clone(),
            "--identity".into(),
            who.display().to_string(),
            "--log-key".into(),
            vkey_arg.clone(),
        ]
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        tokio::task::block_in_place(|| cli(&a))
    };

    let out = run(args(&auditor));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("39 entries recompute the signed root"),
        "{stdout}"
    );
    assert!(
        stdout.contains("39 submission signature(s) and certificate chain(s) re-verified"),
        "{stdout}"
    );

    // A member sees the whole tree but only its own envelopes.
    let out = run(args(&pki().join("KGZ")));
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("30 submission(s) not readable with this identity")
    );

    // Alter one stored entry behind the gateway's back.
    common::tamper(
        dir.path(),
        "DROP TRIGGER log_entries_append_only_u; \
         UPDATE log_entries SET entry = CAST(replace(CAST(entry AS TEXT), 'dataflow: SEIZURES', 'dataflow: ROUTES') AS BLOB) \
         WHERE idx = 23",
        "ALTER TABLE log_entries DISABLE TRIGGER log_entries_append_only; \
         UPDATE log_entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'dataflow: SEIZURES', 'dataflow: ROUTES'), 'UTF8') \
         WHERE idx = 23",
    );
    let out = run(args(&auditor));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("entry 23 is not the entry the signed tree of size 39 holds"),
        "{stderr}"
    );

    // And a restarted gateway refuses to serve it.
    gw.stop().await;
    let err = focalgate::service::assemble(&common::settings(dir.path()))
        .await
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("entries were altered"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_monitor_reports_a_rollback_and_a_fork() {
    let dir = common::tempdir();
    let data = dir.path().join("data");
    let gw = Gateway::start(&data).await;
    submit_many(&gw, "TKM", 5).await;
    // An operator's backup of the store, taken now, while the gateway runs.
    let backup = dir.path().join("backup.db");
    tokio::task::block_in_place(|| common::backup(&data, &backup));
    submit_many(&gw, "KGZ", 5).await;

    let state = dir.path().join("monitor.json");
    let vkey = data.join("log.vkey");
    let kaz = pki().join("KAZ");
    let monitor = |url: &str| {
        let args = [
            "log",
            "monitor",
            "--server",
            url,
            "--identity",
            kaz.to_str().unwrap(),
            "--log-key",
            vkey.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ];
        tokio::task::block_in_place(|| cli(&args))
    };
    assert!(monitor(&gw.url()).status.success(), "first run");
    assert!(monitor(&gw.url()).status.success(), "no growth is fine");
    gw.stop().await;

    // The operator restores the older backup: the log shrinks.
    tokio::task::block_in_place(|| common::restore(&data, &backup));
    // The gateway itself refuses: it already published a larger checkpoint.
    let err = focalgate::service::assemble(&common::settings(&data))
        .await
        .err()
        .expect("must refuse");
    assert!(
        err.to_string()
            .contains("already published a checkpoint of size 10"),
        "{err}"
    );
    // The operator insists; the partners' monitors notice.
    let mut settings = common::settings(&data);
    settings.accept_restored_log = true;
    let gw = Gateway::start_with(settings).await;
    let out = monitor(&gw.url());
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("ROLLBACK: the log focalgate.demo/log shrank from 10 to 5 entries")
    );

    // Different entries after the restore, signed with the same key: a fork.
    submit_many(&gw, "UZB", 7).await;
    let out = monitor(&gw.url());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "FORK: the log focalgate.demo/log of size 12 does not extend the one of size 10"
    ));
    gw.stop().await;
}

/// A logged submission deleted from the store (its guards dropped first): `log verify` names
/// it and fails, whoever runs it, and a restarted gateway refuses to serve the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_submission_missing_from_the_store_fails_verification_and_start() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let receipts = submit_many(&gw, "UZB", 5).await;
    let gone = &receipts[2];
    let (url, vkey) = (gw.url(), dir.path().join("log.vkey"));
    let verify = |who: &str| {
        let args = [
            "log",
            "verify",
            "--server",
            &url,
            "--identity",
            pki().join(who).to_str().unwrap(),
            "--log-key",
            vkey.to_str().unwrap(),
        ]
        .map(str::to_owned);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        tokio::task::block_in_place(|| cli(&a))
    };
    assert!(verify("auditor").status.success());

    let id = &gone.submission_id;
    common::tamper(
        dir.path(),
        &format!(
            "DROP TRIGGER observations_never_deleted; DROP TRIGGER submissions_never_deleted; \
             DELETE FROM observations WHERE submission_seq = (SELECT seq FROM submissions WHERE id = '{id}'); \
             DELETE FROM submissions WHERE id = '{id}'"
        ),
        &format!(
            "ALTER TABLE observations DISABLE TRIGGER observations_append_only; \
             ALTER TABLE submissions DISABLE TRIGGER submissions_never_deleted; \
             DELETE FROM observations WHERE submission_seq = (SELECT seq FROM submissions WHERE id = '{id}'); \
             DELETE FROM submissions WHERE id = '{id}'"
        ),
    );
    // Whoever verifies notices: another member is denied UZB's submissions (and skips them),
    // but nobody is told "not found" for a submission the log records.
    for who in ["auditor", "UZB", "KGZ"] {
        let out = verify(who);
        assert!(
            !out.status.success(),
            "{who}: a missing submission must fail"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "entry {}: {id}: the log records this submission, but the gateway's store does not hold it",
                gone.log_index
            )),
            "{who}: {stderr}"
        );
    }

    gw.stop().await;
    let err = focalgate::service::assemble(&common::settings(dir.path()))
        .await
        .err()
        .expect("must refuse");
    assert!(
        err.to_string().contains(&format!(
            "the log records submission {id} at entry {}, but the store does not hold it",
            gone.log_index
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_submission_without_a_log_entry_is_refused_at_start() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let receipts = submit_many(&gw, "KGZ", 2).await;
    gw.stop().await;
    // As a store written before the gateway had a log would be.
    let id = &receipts[0].submission_id;
    common::tamper(
        dir.path(),
        &format!(
            "DROP TRIGGER submissions_only_superseded_or_logged; \
             UPDATE submissions SET log_index = NULL WHERE id = '{id}'"
        ),
        &format!(
            "ALTER TABLE submissions DISABLE TRIGGER submissions_update; \
             UPDATE submissions SET log_index = NULL WHERE id = '{id}'"
        ),
    );
    let err = focalgate::service::assemble(&common::settings(dir.path()))
        .await
        .err()
        .expect("must refuse");
    assert!(
        err.to_string()
            .contains("the store holds 1 submission(s) without a log entry"),
        "{err}"
    );
}
