//! The submission path end to end over real mTLS: receipts, revisions, idempotency,
//! restarts, limits, listing and reading back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, Signer, body, route, seizure};
use focalgate::{
    proto::{GetSubmissionRequest, ListSubmissionsRequest, RevisionStatus, SubmissionSummary},
    receipt,
    schema::CodeLists,
};
use prost::Message;
use ring::digest::{SHA256, digest};
use tonic::Code;

async fn list_all(gw: &Gateway, who: &str, req: ListSubmissionsRequest) -> Vec<SubmissionSummary> {
    let mut stream = gw
        .client(who)
        .await
        .list_submissions(req)
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(s) = stream.message().await.unwrap() {
        out.push(s);
    }
    out
}

#[tokio::test]
async fn each_dataflow_is_accepted_with_a_signed_receipt_and_reads_back_verbatim() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let kaz = Signer::of("KAZ");

    let cases = [
        body(
            "SEIZURES",
            "KAZ",
            "2024-Q3",
            vec![
                seizure("HEROIN", "KG", "12.5", 3),
                seizure("TRAMADOL", "U", "12000", 4),
            ],
        ),
        body(
            "ROUTES",
            "KAZ",
            "2024",
            vec![route("HEROIN", "AFG", &["TJK", "KGZ"], "RUS", "80.25")],
        ),
    ];
    for b in cases {
        let env = kaz.seal(&b);
        let r = gw
            .client("KAZ")
            .await
            .submit(env.clone())
            .await
            .unwrap()
            .into_inner();
        let id = format!("KAZ.{}.{}.r1", b.dataflow, b.time_period);
        assert_eq!(r.submission_id, id);
        assert_eq!(
            (r.revision, r.member.as_str(), r.ref_area.as_str()),
            (1, "KAZ:nfp", "KAZ")
        );
        assert_eq!(
            r.envelope_digest,
            digest(&SHA256, &env.encode_to_vec()).as_ref()
        );
        assert_eq!(r.payload_digest, digest(&SHA256, &env.payload).as_ref());
        receipt::verify(&r, &gw.public_key()).unwrap();
        let verified = receipt::verify_offline(&r, &gw.log_key()).unwrap();
        assert_eq!(
            verified.tree_size,
            r.log_index + 1,
            "each receipt carries the checkpoint of its own batch"
        );

        let got = gw
            .client("KAZ")
            .await
            .get_submission(GetSubmissionRequest { submission_id: id })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            got.envelope_bytes,
            env.encode_to_vec(),
            "the stored envelope is what was sent"
        );
        assert_eq!(
            focalgate::proto::SignedEnvelope::decode(got.envelope_bytes.as_slice()).unwrap(),
            env
        );
        assert_eq!(got.receipt.unwrap(), r);
        let cert = focalgate::tls::read_chain(&common::pki().join("KAZ/signing.pem"))
            .unwrap()
            .remove(0);
        assert_eq!(got.signing_certificate, cert.as_ref());
        let summary = got.summary.unwrap();
        assert_eq!(
            (summary.status(), summary.observation_count),
            (RevisionStatus::Current, b.observations.len() as u32)
        );
    }
    assert_eq!(gw.count("observations").await, 3);
    gw.stop().await;
}

#[tokio::test]
async fn a_new_revision_replaces_the_last_which_stays_readable() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let kgz = Signer::of("KGZ");
    let mut client = gw.client("KGZ").await;

    let mut first = body(
        "SEIZURES",
        "KGZ",
        "2023",
        vec![seizure("OPIUM", "KG", "100", 10)],
    );
    let r1 = client.submit(kgz.seal(&first)).await.unwrap().into_inner();
    first.observations[0].quantity = "101.5".into();
    first.prepared_at.as_mut().unwrap().seconds += 60;
    let r2 = client.submit(kgz.seal(&first)).await.unwrap().into_inner();
    assert_eq!((r1.revision, r2.revision), (1, 2));
    assert_eq!(r2.submission_id, "KGZ.SEIZURES.2023.r2");

    let old = client
        .get_submission(GetSubmissionRequest {
            submission_id: r1.submission_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.summary.unwrap().status(), RevisionStatus::Superseded);
    let old_env = focalgate::proto::SignedEnvelope::decode(old.envelope_bytes.as_slice()).unwrap();
    let old_body = focalgate::proto::SubmissionBody::decode(old_env.payload.as_slice()).unwrap();
    assert_eq!(
        old_body.observations[0].quantity, "100",
        "revision 1 is kept as it was"
    );

    let listed = list_all(&gw, "KGZ", ListSubmissionsRequest::default()).await;
    let revs: Vec<_> = listed.iter().map(|s| (s.revision, s.status())).collect();
    assert_eq!(
        revs,
        [
            (2, RevisionStatus::Current),
            (1, RevisionStatus::Superseded)
        ]
    );
    let current = list_all(
        &gw,
        "KGZ",
        ListSubmissionsRequest {
            current_only: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(current.len(), 1);

    // An optimistic lock on an out-of-date revision is refused, and nothing is stored.
    first.supersedes_revision = Some(1);
    first.prepared_at.as_mut().unwrap().seconds += 60;
    let err = client.submit(kgz.seal(&first)).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    assert!(
        err.message().contains("current revision is 2"),
        "{}",
        err.message()
    );
    first.supersedes_revision = Some(2);
    assert_eq!(
        client
            .submit(kgz.seal(&first))
            .await
            .unwrap()
            .into_inner()
            .revision,
        3
    );
    gw.stop().await;
}

#[tokio::test]
async fn resending_the_same_envelope_is_idempotent() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let tjk = Signer::of("TJK");
    let env = tjk.seal(&body(
        "SEIZURES",
        "TJK",
        "2024-M02",
        vec![seizure("HEROIN", "KG", "7.125", 2)],
    ));
    let mut client = gw.client("TJK").await;
    let first = client.submit(env.clone()).await.unwrap().into_inner();
    // Sequential and concurrent retries.
    let second = client.submit(env.clone()).await.unwrap().into_inner();
    let concurrent = futures_join(&gw, "TJK", env, 8).await;
    assert_eq!(first, second);
    assert!(concurrent.iter().all(|r| *r == first));
    assert_eq!(gw.count("submissions").await, 1);
    assert_eq!(gw.count("observations").await, 1);
    gw.stop().await;
}

async fn futures_join(
    gw: &Gateway,
    who: &str,
    env: focalgate::proto::SignedEnvelope,
    n: usize,
) -> Vec<focalgate::proto::Receipt> {
    let channel = gw.channel(who).await;
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let mut client =
                focalgate::rpc::submissions_client::SubmissionsClient::new(channel.clone());
            let env = env.clone();
            tokio::spawn(async move { client.submit(env).await.unwrap().into_inner() })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn data_and_revisions_survive_a_restart() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let uzb = Signer::of("UZB");
    let mut b = body(
        "SEIZURES",
        "UZB",
        "2022-Q4",
        vec![seizure("OPIUM", "KG", "55", 5)],
    );
    let r1 = gw
        .client("UZB")
        .await
        .submit(uzb.seal(&b))
        .await
        .unwrap()
        .into_inner();
    b.prepared_at.as_mut().unwrap().seconds += 1;
    let r2 = gw
        .client("UZB")
        .await
        .submit(uzb.seal(&b))
        .await
        .unwrap()
        .into_inner();
    let key = gw.public_key();
    gw.stop().await;

    let gw = Gateway::start(dir.path()).await;
    assert_eq!(gw.public_key(), key, "the gateway key survives too");
    let listed = list_all(&gw, "UZB", ListSubmissionsRequest::default()).await;
    assert_eq!(
        listed
            .iter()
            .map(|s| s.submission_id.as_str())
            .collect::<Vec<_>>(),
        [r2.submission_id.as_str(), r1.submission_id.as_str()]
    );
    let got = gw
        .client("UZB")
        .await
        .get_submission(GetSubmissionRequest {
            submission_id: r1.submission_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(got.into_inner().receipt.unwrap(), r1);
    b.prepared_at.as_mut().unwrap().seconds += 1;
    let r3 = gw
        .client("UZB")
        .await
        .submit(uzb.seal(&b))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r3.revision, 3, "numbering continues after the restart");
    gw.stop().await;
}

#[tokio::test]
async fn a_stopped_gateway_leaves_its_store_complete_and_closed() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let tjk = Signer::of("TJK");
    let mut client = gw.client("TJK").await;
    for year in 2015..2020 {
        let b = body(
            "SEIZURES",
            "TJK",
            &year.to_string(),
            vec![seizure("HEROIN", "KG", "3.5", 2)],
        );
        client.submit(tjk.seal(&b)).await.unwrap();
    }
    // A caller that reads one item of its list, then goes away.
    let mut stream = client
        .list_submissions(ListSubmissionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    drop((stream, client));
    let store_url = gw.store_url.clone();
    gw.stop().await;

    match store_url.strip_prefix("sqlite://") {
        // Every connection closed: the WAL is folded into the one database file, which a
        // backup can copy on its own.
        Some(db) => {
            assert!(std::path::Path::new(db).is_file());
            for suffix in ["-wal", "-shm"] {
                let left = format!("{db}{suffix}");
                assert!(!std::path::Path::new(&left).exists(), "{left} left behind");
            }
            assert_eq!(
                common::rows(&store_url, "SELECT count(*) FROM submissions"),
                [[Some("5".to_owned())]]
            );
        }
        // No connection to the database is left open.
        None => {
            let name = store_url.rsplit('/').next().unwrap();
            let open = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while common::pg(&common::postgres_admin_url(), &open) != [[Some("0".to_owned())]] {
                assert!(
                    std::time::Instant::now() < deadline,
                    "connections to {name} left open"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn oversized_messages_are_resource_exhausted() {
    let dir = common::tempdir();
    let mut settings = common::settings(dir.path());
    settings.limits.max_message_bytes = 64 * 1024;
    let gw = Gateway::start_with(settings).await;
    let kaz = Signer::of("KAZ");
    let mut obs = Vec::new();
    for i in 0..2_000 {
        let mut o = seizure("HEROIN", "KG", &format!("{i}.5"), 1);
        o.comment = format!("row {i} with some padding to make the message large enough");
        obs.push(o);
    }
    let err = gw
        .client("KAZ")
        .await
        .submit(kaz.seal(&body("SEIZURES", "KAZ", "2021", obs)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .contains("larger than this gateway accepts (65536 bytes)"),
        "{err:?}"
    );
    assert_eq!(gw.count("submissions").await, 0);
    gw.stop().await;
}

#[tokio::test]
async fn listing_filters_and_visibility() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    for (who, period, dataflow) in [
        ("KAZ", "2023-Q1", "SEIZURES"),
        ("KAZ", "2024-Q2", "SEIZURES"),
        ("KAZ", "2024", "ROUTES"),
        ("TJK", "2024-Q2", "SEIZURES"),
    ] {
        let obs = if dataflow == "ROUTES" {
            route("OPIUM", "AFG", &[], "KAZ", "3")
        } else {
            seizure("OPIUM", "KG", "3", 1)
        };
        gw.client(who)
            .await
            .submit(Signer::of(who).seal(&body(dataflow, who, period, vec![obs])))
            .await
            .unwrap();
    }
    let ids =
        |v: Vec<SubmissionSummary>| v.into_iter().map(|s| s.submission_id).collect::<Vec<_>>();

    assert_eq!(
        list_all(&gw, "KAZ", ListSubmissionsRequest::default())
            .await
            .len(),
        3,
        "a member sees its own only"
    );
    let req = ListSubmissionsRequest {
        dataflow: "SEIZURES".into(),
        period_from: "2024".into(),
        ..Default::default()
    };
    assert_eq!(
        ids(list_all(&gw, "KAZ", req).await),
        ["KAZ.SEIZURES.2024-Q2.r1"]
    );
    let req = ListSubmissionsRequest {
        period_to: "2023-M12".into(),
        ..Default::default()
    };
    assert_eq!(
        ids(list_all(&gw, "KAZ", req).await),
        ["KAZ.SEIZURES.2023-Q1.r1"]
    );
    assert_eq!(
        list_all(&gw, "auditor", ListSubmissionsRequest::default())
            .await
            .len(),
        4,
        "an auditor sees all"
    );
    let req = ListSubmissionsRequest {
        ref_area: "TJK".into(),
        ..Default::default()
    };
    assert_eq!(
        ids(list_all(&gw, "auditor", req).await),
        ["TJK.SEIZURES.2024-Q2.r1"]
    );

    // Another member's submission is not readable (the log says it exists); an analyst may
    // not list at all.
    let err = gw
        .client("TJK")
        .await
        .get_submission(GetSubmissionRequest {
            submission_id: "KAZ.ROUTES.2024.r1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = gw
        .client("analyst")
        .await
        .list_submissions(ListSubmissionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = gw
        .client("KAZ")
        .await
        .list_submissions(ListSubmissionsRequest {
            period_from: "2024-Q9".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    gw.stop().await;
}

#[tokio::test]
async fn many_concurrent_submitters_get_gapless_revisions() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let mut tasks = Vec::new();
    for who in ["KAZ", "KGZ", "TJK", "TKM", "UZB"] {
        let channel = gw.channel(who).await;
        for i in 0..20u32 {
            let channel = channel.clone();
            tasks.push(tokio::spawn(async move {
                let mut b = body(
                    "SEIZURES",
                    who,
                    "2024-Q1",
                    vec![seizure("HEROIN", "KG", &format!("{i}"), 1)],
                );
                b.prepared_at.as_mut().unwrap().nanos = i as i32;
                let mut client =
                    focalgate::rpc::submissions_client::SubmissionsClient::new(channel);
                client
                    .submit(Signer::of(who).seal(&b))
                    .await
                    .unwrap()
                    .into_inner()
            }));
        }
    }
    let mut by_member: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    for t in tasks {
        let r = t.await.unwrap();
        by_member
            .entry(r.ref_area.clone())
            .or_default()
            .push(r.revision);
    }
    for (member, mut revs) in by_member {
        revs.sort();
        assert_eq!(revs, (1..=20).collect::<Vec<_>>(), "{member}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn health_and_reflection_are_served_over_mtls() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let channel = gw.channel("KAZ").await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "focalgate.v1.Submissions".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"focalgate.v1.Submissions".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_submissions_and_loses_none() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let channel = gw.channel("TKM").await;
    let tasks: Vec<_> = (0..60u32)
        .map(|i| {
            let channel = channel.clone();
            tokio::spawn(async move {
                let obs = seizure("OPIUM", "KG", &format!("{i}.5"), 1);
                let mut b = body(
                    "SEIZURES",
                    "TKM",
                    &format!("20{:02}", 10 + i % 15),
                    vec![obs],
                );
                b.prepared_at.as_mut().unwrap().nanos = i as i32;
                let mut client =
                    focalgate::rpc::submissions_client::SubmissionsClient::new(channel);
                client
                    .submit(Signer::of("TKM").seal(&b))
                    .await
                    .map(|r| r.into_inner())
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    gw.stop().await;
    let mut receipts = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await.unwrap() {
            receipts.push(r);
        }
    }

    let gw = Gateway::start(dir.path()).await;
    let mut client = gw.client("TKM").await;
    for r in &receipts {
        let got = client
            .get_submission(GetSubmissionRequest {
                submission_id: r.submission_id.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            got.into_inner().receipt.as_ref(),
            Some(r),
            "every receipted submission survives"
        );
    }
    assert_eq!(
        gw.count("submissions").await as usize,
        receipts.len(),
        "and nothing without a receipt was kept"
    );
    gw.stop().await;
}

#[tokio::test]
async fn observations_are_stored_exactly_as_validated() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let mut embargoed = seizure("METHAMPHETAMINE", "KG", "0.000001", 1);
    embargoed.conf_status = "E".into();
    embargoed.embargo_time = Some(prost_types::Timestamp {
        seconds: 1_900_000_000,
        nanos: 123_000_000,
    });
    embargoed.comment = "contains \"quotes\", commas; and ünïcode".into();
    let mut counted = seizure("TRAMADOL", "U", "", 12);
    counted.quantity.clear();
    counted.unit_measure.clear();
    counted.transport_mode.clear();
    let b = body(
        "SEIZURES",
        "UZB",
        "2024-M03",
        vec![
            seizure("OPIUM", "KG", "999999999999.999999", 7),
            embargoed,
            counted,
        ],
    );
    gw.client("UZB")
        .await
        .submit(Signer::of("UZB").seal(&b))
        .await
        .unwrap();
    let r = body(
        "ROUTES",
        "UZB",
        "2024",
        vec![route("HEROIN", "AFG", &["TJK", "KGZ", "KAZ"], "RUS", "10")],
    );
    gw.client("UZB")
        .await
        .submit(Signer::of("UZB").seal(&r))
        .await
        .unwrap();

    let got = gw.rows(
        "SELECT s.id, o.idx, o.drug, o.transport_mode, o.transit_area, o.unit_measure, o.n_seizures, o.quantity, \
         o.conf_status, o.embargo_time, o.comment FROM observations o JOIN submissions s ON s.seq = o.submission_seq \
         ORDER BY s.seq, o.idx",
    );
    let row = |v: [Option<&str>; 11]| -> Vec<Option<String>> {
        v.iter().map(|c| c.map(str::to_owned)).collect()
    };
    let s = Some;
    let want = vec![
        row([
            s("UZB.SEIZURES.2024-M03.r1"),
            s("0"),
            s("OPIUM"),
            s("ROAD"),
            None,
            s("KG"),
            s("7"),
            s("999999999999999999"),
            s("F"),
            None,
            None,
        ]),
        row([
            s("UZB.SEIZURES.2024-M03.r1"),
            s("1"),
            s("METHAMPHETAMINE"),
            s("ROAD"),
            None,
            s("KG"),
            s("1"),
            s("1"),
            s("E"),
            s("1900000000123"),
            s("contains \"quotes\", commas; and ünïcode"),
        ]),
        row([
            s("UZB.SEIZURES.2024-M03.r1"),
            s("2"),
            s("TRAMADOL"),
            None,
            None,
            None,
            s("12"),
            None,
            s("F"),
            None,
            None,
        ]),
        row([
            s("UZB.ROUTES.2024.r1"),
            s("0"),
            s("HEROIN"),
            s("ROAD"),
            s("TJK;KGZ;KAZ"),
            s("KG"),
            s("1"),
            s("10000000"),
            s("F"),
            None,
            None,
        ]),
    ];
    assert_eq!(got, want);
    gw.stop().await;
}

#[tokio::test]
async fn a_hundred_observations_are_stored_in_order() {
    // More observations than one multi-row insert holds: full inserts, then the rest.
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    // 10 drugs x 10 transport modes (the last one not given): 100 distinct keys.
    let lists = CodeLists::builtin().unwrap();
    let drugs: Vec<(&str, &str)> = lists
        .drug
        .codes()
        .iter()
        .filter(|c| c.reportable)
        .take(10)
        .map(|c| (c.id.as_str(), c.units[0].as_str()))
        .collect();
    let mut modes: Vec<&str> = lists
        .transport_mode
        .codes()
        .iter()
        .map(|c| c.id.as_str())
        .take(9)
        .collect();
    modes.push("");
    assert_eq!((drugs.len(), modes.len()), (10, 10));
    let observations: Vec<_> = (0..100)
        .map(|i| {
            let (drug, unit) = drugs[i % 10];
            let mut o = seizure(drug, unit, &format!("{i}.5"), 1 + i as u64);
            o.transport_mode = modes[i / 10].into();
            o
        })
        .collect();
    let b = body("SEIZURES", "KAZ", "2024-M05", observations.clone());
    gw.client("KAZ")
        .await
        .submit(Signer::of("KAZ").seal(&b))
        .await
        .unwrap();

    let got = gw.rows(
        "SELECT o.idx, o.drug, o.transport_mode, o.n_seizures, o.quantity FROM observations o \
         JOIN submissions s ON s.seq = o.submission_seq WHERE s.id = 'KAZ.SEIZURES.2024-M05.r1' \
         ORDER BY o.idx",
    );
    let want: Vec<Vec<Option<String>>> = observations
        .iter()
        .enumerate()
        .map(|(i, o)| {
            vec![
                Some(i.to_string()),
                Some(o.drug.clone()),
                (!o.transport_mode.is_empty()).then(|| o.transport_mode.clone()),
                Some((1 + i).to_string()),
                Some((i * 1_000_000 + 500_000).to_string()),
            ]
        })
        .collect();
    assert_eq!(got, want);
    gw.stop().await;
}
