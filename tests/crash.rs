//! A gateway killed with SIGKILL during concurrent submissions: after a restart every
//! submission that got a receipt is present and provable, the log verifies, and no index is
//! missing or duplicated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use focalgate::rpc::{audit_client::AuditClient, submissions_client::SubmissionsClient};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{BIN, ChildGateway, Signer, body, pki, seizure};
use focalgate::{
    checkpoint, merkle,
    proto::{
        GetCheckpointRequest, GetEntriesRequest, GetInclusionProofRequest, GetSubmissionRequest,
        Receipt, get_inclusion_proof_request::Leaf,
    },
    receipt,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

async fn channel(url: &str, who: &str) -> Channel {
    let dir = pki().join(who);
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read(pki().join("ca/ca.pem")).unwrap(),
        ))
        .identity(Identity::from_pem(
            std::fs::read(dir.join("auth.pem")).unwrap(),
            std::fs::read(dir.join("auth.key")).unwrap(),
        ));
    Endpoint::from_shared(url.to_owned())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipted_submissions_survive_sigkill() {
    let dir = common::tempdir();
    let gw = ChildGateway::start(dir.path());
    let receipts: Arc<Mutex<Vec<Receipt>>> = Arc::default();
    let mut tasks = Vec::new();
    for (c, who) in ["KAZ", "KGZ", "TJK", "TKM", "UZB", "KAZ", "KGZ", "UZB"]
        .into_iter()
        .enumerate()
    {
        let (url, receipts) = (gw.url.clone(), receipts.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = SubmissionsClient::new(channel(&url, who).await);
            let signer = Signer::of(who);
            for i in 0u32.. {
                let obs = (0..20).map(|j| {
                    seizure(
                        ["HEROIN", "OPIUM", "COCAINE", "METHAMPHETAMINE"][j % 4],
                        "KG",
                        &format!("{i}.{j}"),
                        1,
                    )
                });
                let mut b = body(
                    "SEIZURES",
                    who,
                    &format!("{}-Q{}", 2001 + i % 24, 1 + c % 4),
                    Vec::new(),
                );
                b.observations = obs
                    .enumerate()
                    .map(|(j, mut o)| {
                        o.transport_mode = ["ROAD", "RAIL", "AIR", "SEA", "POSTAL"][j / 4].into();
                        o
                    })
                    .collect();
                b.prepared_at.as_mut().unwrap().nanos = (c as i32) * 1_000_000 + i as i32;
                match client.submit(signer.seal(&b)).await {
                    Ok(r) => receipts.lock().unwrap().push(r.into_inner()),
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (config, url) = (gw.config.clone(), gw.url.clone());
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let mut gw = gw;
    gw.child.kill().unwrap(); // SIGKILL
    gw.child.wait().unwrap();
    drop(gw);
    for t in tasks {
        t.await.unwrap();
    }
    let receipts = std::mem::take(&mut *receipts.lock().unwrap());
    assert!(
        receipts.len() > 20,
        "the clients got going: {} receipts",
        receipts.len()
    );

    let gw = ChildGateway::spawn(config, port);
    let key = {
        let vkey = std::fs::read_to_string(dir.path().join("data/log.vkey")).unwrap();
        checkpoint::NoteVerifier::parse(vkey.trim()).unwrap()
    };
    let auditor = channel(&gw.url, "auditor").await;
    let mut audit = AuditClient::new(auditor.clone());
    let mut submissions = SubmissionsClient::new(auditor);
    let head = audit
        .get_checkpoint(GetCheckpointRequest { tree_size: 0 })
        .await
        .unwrap()
        .into_inner();
    let head = checkpoint::open(head.note.as_bytes(), &key, &[])
        .unwrap()
        .into_checkpoint();

    // Every receipted submission is there, with the receipt it got, and provable.
    let mut wrong = Vec::new();
    for r in &receipts {
        receipt::verify_offline(r, &key).unwrap();
        let stored = submissions
            .get_submission(GetSubmissionRequest {
                submission_id: r.submission_id.clone(),
            })
            .await;
        if stored
            .map(|s| s.into_inner().receipt)
            .ok()
            .flatten()
            .as_ref()
            != Some(r)
        {
            wrong.push(format!("{} missing or changed", r.submission_id));
        }
        let p = audit
            .get_inclusion_proof(GetInclusionProofRequest {
                leaf: Some(Leaf::LeafIndex(r.log_index)),
                tree_size: head.size,
            })
            .await
            .unwrap()
            .into_inner();
        let hashes = merkle::decode_proof(&p.hashes).unwrap();
        if merkle::verify_inclusion(
            r.log_index,
            head.size,
            &merkle::leaf_hash(&r.log_entry),
            &hashes,
            &head.root,
        )
        .is_err()
        {
            wrong.push(format!("{} not provable at {}", r.submission_id, head.size));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} receipts wrong: {wrong:?}",
        wrong.len(),
        receipts.len()
    );

    // Indices 0..size-1, each once, and receipted indices are among them.
    let mut indices = Vec::new();
    while (indices.len() as u64) < head.size {
        let mut s = audit
            .get_entries(GetEntriesRequest {
                start: indices.len() as u64,
                end: head.size,
            })
            .await
            .unwrap()
            .into_inner();
        while let Some(e) = s.message().await.unwrap() {
            indices.push(e.index);
        }
    }
    assert_eq!(indices, (0..head.size).collect::<Vec<_>>());
    let mut receipted: Vec<u64> = receipts.iter().map(|r| r.log_index).collect();
    receipted.sort();
    receipted.dedup();
    assert_eq!(receipted.len(), receipts.len(), "no index given twice");

    // And the whole log verifies, signatures included.
    let out = std::process::Command::new(BIN)
        .args(["log", "verify", "--server", &gw.url, "--identity"])
        .arg(pki().join("auditor"))
        .args(["--log-key", &key.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gw.terminate();
}
