//! The transparency log: durable append rate, inclusion-proof latency at one million entries,
//! and full-log verification speed.
//!
//! Appends go through the gateway's own path (a write transaction, stored nodes, one signed
//! checkpoint and every new entry's inclusion proof per batch, fsync on commit). Proofs are
//! generated as the Audit service does: read the O(log n) stored nodes, then compute.
//! Verification recomputes the root from every entry, once from the store and once over mTLS
//! through the Audit service, as `focalgate log verify` does.
//!
//! `cargo bench --bench log` (environment: BENCH_LOG_ENTRIES, default 1,000,000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use focalgate::rpc::audit_client::AuditClient;
use std::time::{Duration, Instant};

use focalgate::{
    checkpoint::{KeyType, NoteSigner},
    config::Settings,
    entry::{AdminAction, AdminEntry, Entry},
    merkle::{self, CompactTree},
    proto::GetEntriesRequest,
    service,
    store::{LogRecords, sqlite::SqliteStore},
    synthetic::Rng,
    tlog::{Log, Published},
};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// The `i`th entry: an administrative entry (a policy change) of about a submission entry's
/// size. Submission entries would need their submissions in the store, which the gateway's
/// start-up check reads back; the log itself treats every entry alike.
fn entry(i: u64) -> Entry {
    Entry::Admin(AdminEntry {
        action: AdminAction::PolicyChanged,
        time_ms: 1_796_000_000_000 + i as i64,
        actor: "EU:admin".into(),
        subject: "policy".into(),
        serial: None,
        digest: merkle::leaf_hash(&i.to_be_bytes()).as_bytes().to_owned(),
        reason: Some(format!(
            "bench revision {i} of the sharing policy, {}",
            "x".repeat(160)
        )),
        certificate: None,
    })
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn main() {
    let total: u64 = std::env::var("BENCH_LOG_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("focalgate.db"))
            .await
            .unwrap();
        // The gateway's own key file, so that the gateway started below signs as the log was built.
        let (pair, _) =
            focalgate::pki::load_or_create_gateway_key(&dir.path().join("gateway.key")).unwrap();
        let key = NoteSigner::from_key_pair("focalgate.bench/log", KeyType::Ed25519, pair).unwrap();
        let log = Log::new(
            std::sync::Arc::new(key),
            Published::new(dir.path().join("checkpoint")),
        );

        // 1. Durable appends in batches the ledger would form under load.
        let mut appended = 0u64;
        let mut rates = Vec::new();
        for batch in [1u64, 16, 256] {
            let started = Instant::now();
            let target = appended + (batch * 200).min(20_000);
            while appended < target {
                let entries: Vec<Entry> = (appended..appended + batch).map(entry).collect();
                log.append_durably(&store, &entries).await.unwrap();
                appended += batch;
            }
            rates.push((
                batch,
                (batch * 200).min(20_000) as f64 / started.elapsed().as_secs_f64(),
            ));
        }

        // 2. Grow the log to `total` entries in large batches.
        let started = Instant::now();
        let before = appended;
        while appended < total {
            let n = 5_000.min(total - appended);
            let entries: Vec<Entry> = (appended..appended + n).map(entry).collect();
            log.append_durably(&store, &entries).await.unwrap();
            appended += n;
        }
        let bulk = (appended - before) as f64 / started.elapsed().as_secs_f64();

        // 3. Inclusion proofs at `total` entries, as the Audit service makes them.
        let size = store.log_size().await.unwrap();
        let mut rng = Rng::new(7);
        let mut latencies = Vec::new();
        for _ in 0..2_000 {
            let index = rng.below(size);
            let t = Instant::now();
            let nodes = store
                .nodes(merkle::inclusion_proof_nodes(index, size))
                .await
                .unwrap();
            let proof = merkle::inclusion_proof(index, size, &nodes).unwrap();
            latencies.push(t.elapsed());
            assert!(!proof.is_empty());
        }
        latencies.sort();

        // 4. Full verification from the store.
        let started = Instant::now();
        let mut tree = CompactTree::default();
        while tree.size() < size {
            for (_, e) in store
                .entries(tree.size(), (tree.size() + 10_000).min(size))
                .await
                .unwrap()
            {
                tree.push(merkle::leaf_hash(&e));
            }
        }
        let from_store = size as f64 / started.elapsed().as_secs_f64();
        let nodes = store.nodes(merkle::root_nodes(size)).await.unwrap();
        assert_eq!(
            tree.root(),
            merkle::root(size, &nodes).unwrap(),
            "recomputed root = stored root"
        );

        // 5. Full verification over mTLS through the Audit service.
        let mut settings = Settings::load_with_env(None, true, Vec::new()).unwrap();
        settings.witnessing.identity = None; // the demo witnesses are not running
        settings.data_dir = dir.path().to_path_buf();
        settings.log.origin = Some("focalgate.bench/log".into());
        drop(store);
        let started = Instant::now();
        let assembled = service::assemble(&settings).await.unwrap();
        let startup = started.elapsed();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(service::serve(assembled, listener, async {
            let _ = stopped.await;
        }));
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(
                std::fs::read("certs-example/ca/ca.pem").unwrap(),
            ))
            .identity(Identity::from_pem(
                std::fs::read("certs-example/auditor/auth.pem").unwrap(),
                std::fs::read("certs-example/auditor/auth.key").unwrap(),
            ));
        let channel = Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut audit = AuditClient::new(channel);
        let started = Instant::now();
        let mut tree = CompactTree::default();
        while tree.size() < size {
            let mut s = audit
                .get_entries(GetEntriesRequest {
                    start: tree.size(),
                    end: size,
                })
                .await
                .unwrap()
                .into_inner();
            while let Some(e) = s.message().await.unwrap() {
                tree.push(merkle::leaf_hash(&e.entry));
            }
        }
        let over_mtls = size as f64 / started.elapsed().as_secs_f64();
        assert_eq!(tree.root(), merkle::root(size, &nodes).unwrap());
        let _ = stop.send(());
        server.await.unwrap().unwrap();

        println!(
            "transparency log, SQLite (WAL, synchronous=FULL), {size} entries of ~{} bytes",
            entry(0).encode().unwrap().len()
        );
        for (batch, rate) in rates {
            println!("  durable appends, {batch:>3} entries per commit : {rate:>9.0} entries/s");
        }
        println!("  growing to {size} entries, 5,000 per commit : {bulk:>9.0} entries/s");
        println!(
            "  inclusion proof at {size} entries      : p50 {:?}  p99 {:?}  (store read + compute)",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
        println!("  full-log verification from the store   : {from_store:>9.0} entries/s");
        println!("  full-log verification over mTLS (Audit) : {over_mtls:>9.0} entries/s");
        println!("  gateway start (recomputes the root from every entry): {startup:?}");
        println!("  (Tessera publishes ~2,900 durable appends/s on a 12-core POSIX machine.)");
    });
}
