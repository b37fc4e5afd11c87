//! The store contract: the same cases against every backend, SQLite (a real file) and
//! PostgreSQL (a fresh database on POSTGRES_TEST_URL, dropped afterwards), through the
//! `Store` and `WriteTx` traits alone. Without a reachable PostgreSQL its cases are skipped and
//! the output says so; under CI=true that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use focalgate::{
    merkle::{self, NodeId},
    schema::{Dataflow, Quantity, ValidObservation},
    store::{
        self, AccessRecord, Cosignature, ListFilter, LogAppend, LogEntryRecord, RoundRecord,
        SeriesKey, Store, StoreError, SubmissionRecord, WitnessState, WitnessedAt,
    },
};

/// A store under test, and how to drop it.
struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    _dir: common::TestDir,
    database: Option<String>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(db) = &self.database {
            common::pg(
                &common::postgres_admin_url(),
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            );
        }
    }
}

/// Every backend, each empty and migrated.
async fn backends() -> Vec<Backend> {
    let dir = common::tempdir();
    let sqlite = store::open(
        &format!("sqlite://{}", dir.path().join("contract.db").display()),
        Default::default(),
    )
    .await
    .unwrap();
    let mut out = vec![Backend {
        name: "sqlite",
        store: sqlite,
        _dir: dir,
        database: None,
    }];
    let admin = common::postgres_admin_url();
    let reachable = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .is_ok();
    if !reachable {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL is not reachable at {admin}: CI runs the contract on both backends"
        );
        eprintln!("PostgreSQL not reachable at {admin}: its contract cases are skipped");
        return out;
    }
    let name = format!(
        "fg_contract_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    common::pg(&admin, &format!("CREATE DATABASE {name}"));
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let store = store::open(&format!("{base}/{name}"), Default::default())
        .await
        .unwrap();
    out.push(Backend {
        name: "postgres",
        store,
        _dir: common::tempdir(),
        database: Some(name),
    });
    out
}

fn observation(drug: &str, quantity: i64) -> ValidObservation {
    ValidObservation {
        drug: drug.into(),
        transport_mode: Some("ROAD".into()),
        origin_area: None,
        departure_area: None,
        transit_area: Vec::new(),
        destination_area: None,
        n_seizures: Some(3),
        quantity: Quantity::from_millionths(quantity),
        unit_measure: Some("KG".into()),
        obs_status: "A".into(),
        conf_status: "F".into(),
        embargo_time: None,
        comment: Some("a comment".into()),
    }
}

/// Revision `revision` of KAZ's SEIZURES for `period`, logged at `log_index`.
fn record(period: &str, revision: u32, log_index: u64) -> SubmissionRecord {
    let year: i32 = period.parse().unwrap();
    let day = |m, d| time::Date::from_calendar_date(year, m, d).unwrap();
    let envelope = format!("envelope {period} r{revision}").into_bytes();
    SubmissionRecord {
        id: format!("KAZ.SEIZURES.{period}.r{revision}"),
        member: "KAZ:nfp".into(),
        series: SeriesKey {
            ref_area: "KAZ".into(),
            dataflow: Dataflow::Seizures,
            time_period: period.into(),
        },
        freq: "A",
        period_start: day(time::Month::January, 1),
        period_end: day(time::Month::December, 31),
        revision,
        received_at_ms: 1_780_000_000_000 + i64::from(revision),
        log_index,
        payload_digest: focalgate::entry::sha256(&[revision as u8, year as u8]),
        envelope_digest: focalgate::entry::sha256(&envelope),
        envelope,
        signing_cert: b"certificate".to_vec(),
        receipt: b"receipt".to_vec(),
        observations: vec![
            observation("HEROIN", 1_500_000),
            observation("OPIUM", 2_000_000),
        ]
        .into(),
    }
}

/// Appends `entries` after `first`, with their nodes and a checkpoint note over the tree.
async fn append(tx: &mut dyn store::WriteTx, first: u64, entries: &[&[u8]], signed_at_ms: i64) {
    let needed: Vec<NodeId> = (first..first + entries.len() as u64)
        .flat_map(merkle::append_nodes)
        .collect();
    let mut nodes = if needed.is_empty() {
        merkle::Nodes::new()
    } else {
        tx.nodes(needed).await.unwrap()
    };
    let mut new_nodes = Vec::new();
    let mut records = Vec::new();
    for (k, entry) in entries.iter().enumerate() {
        let index = first + k as u64;
        let leaf = merkle::leaf_hash(entry);
        let added = merkle::append(index, leaf, &nodes).unwrap();
        nodes.extend(added.iter().copied());
        new_nodes.extend(added);
        records.push(LogEntryRecord {
            index,
            entry: entry.to_vec(),
            leaf_hash: leaf,
        });
    }
    let size = first + entries.len() as u64;
    tx.append_log(LogAppend {
        entries: records,
        nodes: new_nodes,
        checkpoint: Some((size, format!("note of size {size}\n"))),
        signed_at_ms,
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_store_answers_every_read_with_nothing() {
    for b in backends().await {
        let s = &*b.store;
        assert_eq!(s.log_size().await.unwrap(), 0, "{}", b.name);
        assert_eq!(s.latest_checkpoint().await.unwrap(), None, "{}", b.name);
        assert_eq!(s.checkpoint_at(1).await.unwrap(), None, "{}", b.name);
        assert!(s.entries(0, 10).await.unwrap().is_empty(), "{}", b.name);
        assert!(
            s.submission("KAZ.SEIZURES.2021.r1")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.list(&ListFilter::default(), None)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(s.submissions_since(0, 10).await.unwrap().is_empty());
        assert!(s.access_trail(None, 10).await.unwrap().is_empty());
        assert_eq!(s.log_meta("origin").await.unwrap(), None, "{}", b.name);
        assert!(s.pool().max >= 1, "{}", b.name);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_transaction_writes_reads_back_exactly_and_a_dropped_one_writes_nothing() {
    for b in backends().await {
        let s = &*b.store;
        let name = b.name;

        // Dropped without commit: nothing.
        {
            let mut tx = s.begin().await.unwrap();
            tx.insert(vec![record("2021", 1, 0)]).await.unwrap();
            append(tx.as_mut(), 0, &[b"entry 0"], 1_000).await;
        }
        assert_eq!(s.log_size().await.unwrap(), 0, "{name}: rolled back");
        assert!(
            s.submission("KAZ.SEIZURES.2021.r1")
                .await
                .unwrap()
                .is_none()
        );

        let mut tx = s.begin().await.unwrap();
        let rec = record("2021", 1, 0);
        tx.insert(vec![rec.clone()]).await.unwrap();
        append(tx.as_mut(), 0, &[b"entry 0", b"entry 1"], 1_000).await;
        tx.commit().await.unwrap();

        let got = s
            .submission(&rec.id)
            .await
            .unwrap()
            .expect("stored submission");
        assert_eq!(got.summary.member, rec.member, "{name}");
        assert_eq!(got.summary.revision, 1, "{name}");
        assert!(got.summary.is_current, "{name}");
        assert_eq!(got.summary.observation_count, 2, "{name}");
        assert_eq!(got.summary.envelope_digest, rec.envelope_digest, "{name}");
        assert_eq!(got.payload_digest, rec.payload_digest, "{name}");
        assert_eq!(got.log_index, Some(0), "{name}");
        assert_eq!(got.envelope, rec.envelope, "{name}");
        assert_eq!(got.signing_cert, rec.signing_cert, "{name}");
        assert_eq!(got.receipt, rec.receipt, "{name}");

        assert_eq!(s.log_size().await.unwrap(), 2, "{name}");
        assert_eq!(
            s.entries(0, 5).await.unwrap(),
            vec![(0, b"entry 0".to_vec()), (1, b"entry 1".to_vec())],
            "{name}"
        );
        let cp = s.latest_checkpoint().await.unwrap().expect("a checkpoint");
        assert_eq!(
            (cp.size, cp.note.as_str()),
            (2, "note of size 2\n"),
            "{name}"
        );
        assert_eq!(
            s.checkpoint_at(2).await.unwrap(),
            Some(cp.clone()),
            "{name}"
        );
        assert_eq!(s.checkpoint_before(999).await.unwrap(), None, "{name}");
        assert_eq!(
            s.checkpoint_before(1_000).await.unwrap(),
            Some(cp),
            "{name}"
        );
        let root = merkle::root(2, &s.nodes(merkle::root_nodes(2)).await.unwrap()).unwrap();
        assert_eq!(
            root,
            merkle::node_hash(
                &merkle::leaf_hash(b"entry 0"),
                &merkle::leaf_hash(b"entry 1")
            ),
            "{name}"
        );
        assert!(
            s.nodes(vec![NodeId { level: 5, index: 0 }])
                .await
                .unwrap()
                .is_empty(),
            "{name}: absent nodes are left out"
        );
        assert_eq!(
            s.entry_index(merkle::leaf_hash(b"entry 1")).await.unwrap(),
            Some(1),
            "{name}"
        );
        assert_eq!(
            s.logged_envelopes(0, 2).await.unwrap(),
            vec![(0, rec.envelope_digest.to_vec())],
            "{name}"
        );
        let indexed = s.submissions_since(0, 10).await.unwrap();
        assert_eq!(indexed.len(), 1, "{name}");
        assert_eq!(indexed[0].observations.len(), 2, "{name}");
        assert_eq!(indexed[0].observations[0].drug, "HEROIN", "{name}");
        assert_eq!(
            indexed[0].observations[0].comment.as_deref(),
            Some("a comment"),
            "{name}: the feed reads comments too, for downloads of the observations"
        );
        let exported = s.export(0, 10).await.unwrap();
        assert_eq!(exported.len(), 1, "{name}");
        assert_eq!(
            exported[0].1.observations[0].comment.as_deref(),
            Some("a comment"),
            "{name}: an export keeps them"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_revision_supersedes_the_current_one() {
    for b in backends().await {
        let s = &*b.store;
        let name = b.name;
        for (revision, index) in [(1, 0), (2, 1)] {
            let mut tx = s.begin().await.unwrap();
            tx.insert(vec![record("2022", revision, index)])
                .await
                .unwrap();
            append(tx.as_mut(), index, &[format!("e{index}").as_bytes()], 1).await;
            tx.commit().await.unwrap();
        }
        let mut tx = s.begin().await.unwrap();
        let series = record("2022", 1, 0).series;
        let current = tx
            .current_revisions(std::slice::from_ref(&series))
            .await
            .unwrap();
        assert_eq!(current.get(&series), Some(&2), "{name}");
        let digest = record("2022", 2, 1).payload_digest;
        let receipts = tx.receipts_by_payload(&[digest]).await.unwrap();
        assert_eq!(receipts.get(&digest), Some(&b"receipt".to_vec()), "{name}");
        drop(tx);
        let all = s.list(&ListFilter::default(), None).await.unwrap();
        assert_eq!(all.len(), 2, "{name}");
        assert_eq!(all[0].revision, 2, "{name}: newest first");
        let current = s
            .list(
                &ListFilter {
                    current_only: true,
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(current.len(), 1, "{name}");
        assert_eq!(current[0].id, "KAZ.SEIZURES.2022.r2", "{name}");
        let older = s
            .list(&ListFilter::default(), Some(all[0].seq))
            .await
            .unwrap();
        assert_eq!(older.len(), 1, "{name}: paging with before_seq");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_clashes_with_stored_data_is_a_conflict_and_changes_nothing() {
    for b in backends().await {
        let s = &*b.store;
        let name = b.name;
        let mut tx = s.begin().await.unwrap();
        tx.insert(vec![record("2023", 1, 0)]).await.unwrap();
        append(tx.as_mut(), 0, &[b"e0"], 1).await;
        tx.commit().await.unwrap();

        // The same submission again, at another log index.
        let mut tx = s.begin().await.unwrap();
        let again = tx.insert(vec![record("2023", 1, 1)]).await;
        assert!(
            matches!(again, Err(StoreError::Conflict(_))),
            "{name}: {again:?}"
        );
        drop(tx);
        assert_eq!(s.log_size().await.unwrap(), 1, "{name}");
        assert_eq!(
            s.list(&ListFilter::default(), None).await.unwrap().len(),
            1,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn log_meta_is_recorded_once_and_the_access_trail_pages_newest_first() {
    for b in backends().await {
        let s = &*b.store;
        let name = b.name;
        for value in ["first", "second"] {
            let mut tx = s.begin().await.unwrap();
            tx.set_log_meta("origin", value).await.unwrap();
            tx.commit().await.unwrap();
        }
        assert_eq!(
            s.log_meta("origin").await.unwrap().as_deref(),
            Some("first"),
            "{name}: a recorded value stays"
        );

        let access = |n: i64| AccessRecord {
            id: 0,
            at_ms: 1_000 + n,
            member: "UZB:analyst".into(),
            method: "Query".into(),
            request: format!("{{\"n\":{n}}}"),
            tree_size: n as u64,
            rows: 3,
            suppressed: 1,
        };
        s.record_access((0..5).map(access).collect()).await.unwrap();
        let page = s.access_trail(None, 2).await.unwrap();
        assert_eq!(
            page.iter().map(|r| r.tree_size).collect::<Vec<_>>(),
            [4, 3],
            "{name}"
        );
        let next = s.access_trail(Some(page[1].id), 10).await.unwrap();
        assert_eq!(
            next.iter().map(|r| r.tree_size).collect::<Vec<_>>(),
            [2, 1, 0],
            "{name}"
        );
        assert_eq!(next[0].request, "{\"n\":2}", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cosignatures_are_kept_beside_their_checkpoint_once_per_witness() {
    for b in backends().await {
        let s = &*b.store;
        let name = b.name;
        let mut tx = s.begin().await.unwrap();
        append(tx.as_mut(), 0, &[b"a", b"b"], 1_000).await;
        tx.commit().await.unwrap();

        let state_of = |witness: &str| WitnessState {
            witness: witness.into(),
            size: 2,
            cosigned_at_ms: Some(2_000),
            last_error: None,
            updated_at_ms: 2_000,
        };
        let cosig = |size: u64, witness: &str, sig: &str| Cosignature {
            size,
            witness: witness.into(),
            signature: format!("\u{2014} {witness} {sig}"),
            received_at_ms: 2_000,
        };
        s.record_round(RoundRecord {
            cosignatures: vec![
                cosig(2, "kz-witness", "AAAA"),
                cosig(2, "uz-witness", "BBBB"),
            ],
            ..RoundRecord::default()
        })
        .await
        .unwrap();
        // A witness's second cosignature of the same checkpoint changes nothing.
        s.record_round(RoundRecord {
            cosignatures: vec![cosig(2, "kz-witness", "CCCC")],
            ..RoundRecord::default()
        })
        .await
        .unwrap();
        assert_eq!(
            s.cosignatures(2).await.unwrap(),
            [
                cosig(2, "kz-witness", "AAAA"),
                cosig(2, "uz-witness", "BBBB")
            ],
            "{name}"
        );
        assert!(s.cosignatures(1).await.unwrap().is_empty(), "{name}");

        // A cosignature of a checkpoint the store does not hold is refused, with the rest of
        // its batch.
        let refused = s
            .record_round(RoundRecord {
                cosignatures: vec![
                    cosig(2, "tj-witness", "DDDD"),
                    cosig(7, "kz-witness", "EEEE"),
                ],
                states: vec![state_of("TJK")],
                witnessed: vec![WitnessedAt {
                    size: 2,
                    at_ms: 2_000,
                }],
            })
            .await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{name}: {refused:?}"
        );
        assert_eq!(s.cosignatures(2).await.unwrap().len(), 2, "{name}");
        assert!(
            s.witness_states().await.unwrap().is_empty()
                && s.witnessed_sizes(10).await.unwrap().is_empty(),
            "{name}: nothing of a refused round is kept"
        );

        let first = s.export_cosignatures(None, 1).await.unwrap();
        assert_eq!(first, [cosig(2, "kz-witness", "AAAA")], "{name}");
        let rest = s
            .export_cosignatures(Some((2, "kz-witness".into())), 10)
            .await
            .unwrap();
        assert_eq!(rest, [cosig(2, "uz-witness", "BBBB")], "{name}");

        // The checkpoints recorded as witnessed, largest first, each once: where a witnessed
        // checkpoint is looked for.
        let mut tx = s.begin().await.unwrap();
        append(tx.as_mut(), 2, &[b"c"], 3_000).await;
        tx.commit().await.unwrap();
        let at = |size: u64, at_ms: i64| WitnessedAt { size, at_ms };
        for (size, at_ms) in [(2, 2_500), (3, 3_500), (2, 9_999)] {
            s.record_round(RoundRecord {
                witnessed: vec![at(size, at_ms)],
                ..RoundRecord::default()
            })
            .await
            .unwrap();
        }
        assert_eq!(
            s.witnessed_sizes(10).await.unwrap(),
            [at(3, 3_500), at(2, 2_500)],
            "{name}"
        );
        assert_eq!(
            s.witnessed_sizes(1).await.unwrap(),
            [at(3, 3_500)],
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_hub_learnt_of_each_witness_is_replaced_per_round_and_bounded() {
    for b in backends().await {
        let s = &*b.store;
        let name = b.name;
        let state = |witness: &str, size: u64, error: Option<String>| WitnessState {
            witness: witness.into(),
            size,
            cosigned_at_ms: error.is_none().then_some(5_000),
            last_error: error,
            updated_at_ms: 6_000,
        };
        s.record_round(RoundRecord {
            states: vec![state("UZB", 3, None), state("KAZ", 3, None)],
            ..RoundRecord::default()
        })
        .await
        .unwrap();
        let long = "x".repeat(10_000);
        s.record_round(RoundRecord {
            states: vec![state("KAZ", 3, Some(long))],
            ..RoundRecord::default()
        })
        .await
        .unwrap();
        let states = s.witness_states().await.unwrap();
        assert_eq!(states.len(), 2, "{name}");
        assert_eq!(states[0].witness, "KAZ", "{name}: by name");
        assert_eq!(
            states[0].last_error.as_ref().map(|e| e.chars().count()),
            Some(WitnessState::MAX_ERROR),
            "{name}: an error is kept bounded"
        );
        assert_eq!(
            states[0].cosigned_at_ms, None,
            "{name}: the row is replaced"
        );
        assert_eq!(states[1], state("UZB", 3, None), "{name}");
    }
}
