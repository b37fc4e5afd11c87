//! What an attacker or a careless partner sends, over real mTLS: every answer is bounded and
//! names the field and rule, and nothing that cannot be read back is stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::{Gateway, Signer, body, seizure};
use focalgate::proto::{AggregateQuery, ListSubmissionsRequest};
use focalgate::rpc::{statistics_client::StatisticsClient, submissions_client::SubmissionsClient};
use tonic::Code;

/// What a status costs in HTTP/2 trailers: its message and its details, base64-encoded, as
/// tonic sends them (`grpc-message`, `grpc-status-details-bin`).
fn trailer_bytes(status: &tonic::Status) -> usize {
    status.message().len()
        + base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(status.details())
            .len()
}

/// The 8 KiB that common gRPC clients (C-core, hence Python and R; Java) accept in metadata,
/// less room for the other trailers.
const TRAILER_LIMIT: usize = 7 * 1024;

#[tokio::test]
async fn statuses_stay_small_whatever_the_size_of_the_value_they_refuse() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let kaz = Signer::of("KAZ");
    let mut client = gw.client("KAZ").await;
    let long = "9".repeat(100_000);

    type Mutate = fn(&mut focalgate::proto::SubmissionBody, &str);
    let cases: [(&str, Mutate); 5] = [
        ("observations[0].quantity", |b, v| {
            b.observations[0].quantity = v.into()
        }),
        ("time_period", |b, v| b.time_period = v.into()),
        ("action", |b, v| b.action = v.into()),
        ("dataflow", |b, v| b.dataflow = v.into()),
        ("observations[0].drug", |b, v| {
            b.observations[0].drug = v.into()
        }),
    ];
    let mut wrong = Vec::new();
    for (field, mutate) in cases {
        let mut b = body(
            "SEIZURES",
            "KAZ",
            "2024",
            vec![seizure("HEROIN", "KG", "1", 1)],
        );
        mutate(&mut b, &long);
        let status = client.submit(kaz.seal(&b)).await.unwrap_err();
        let size = trailer_bytes(&status);
        if status.code() != Code::InvalidArgument
            || !status.message().contains(field)
            || size > TRAILER_LIMIT
            || !status.message().contains("(100000 characters)")
        {
            wrong.push(format!(
                "{field}: {:?}, {size} bytes: {}",
                status.code(),
                &status.message()[..status.message().len().min(300)]
            ));
        }
    }
    assert_eq!(gw.count("submissions").await, 0);

    let long = "X".repeat(1_000_000);
    let mut stats = StatisticsClient::new(gw.channel("analyst").await);
    let queries: [(&str, AggregateQuery); 3] = [
        (
            "dataflow",
            AggregateQuery {
                dataflow: long.clone(),
                ..Default::default()
            },
        ),
        (
            "ref_area[0]",
            AggregateQuery {
                dataflow: "SEIZURES".into(),
                ref_area: vec![long.clone()],
                ..Default::default()
            },
        ),
        (
            "group_by[0]",
            AggregateQuery {
                dataflow: "SEIZURES".into(),
                group_by: vec![long.clone()],
                ..Default::default()
            },
        ),
    ];
    for (field, query) in queries {
        let status = stats.query(query).await.unwrap_err();
        let size = trailer_bytes(&status);
        if status.code() != Code::InvalidArgument
            || !status.message().contains(field)
            || size > TRAILER_LIMIT
        {
            wrong.push(format!("Query {field}: {:?}, {size} bytes", status.code()));
        }
    }

    let lists: [(&str, ListSubmissionsRequest); 3] = [
        (
            "ref_area",
            ListSubmissionsRequest {
                ref_area: long.clone(),
                ..Default::default()
            },
        ),
        (
            "period_from",
            ListSubmissionsRequest {
                period_from: long.clone(),
                ..Default::default()
            },
        ),
        (
            "dataflow",
            ListSubmissionsRequest {
                dataflow: long.clone(),
                ..Default::default()
            },
        ),
    ];
    for (field, request) in lists {
        let status = client.list_submissions(request).await.unwrap_err();
        let size = trailer_bytes(&status);
        if status.code() != Code::InvalidArgument
            || !status.message().contains(field)
            || size > TRAILER_LIMIT
        {
            wrong.push(format!(
                "ListSubmissions {field}: {:?}, {size} bytes",
                status.code()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cases wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    gw.stop().await;
}

/// ROUTES observations from KAZ, one per (origin, destination) pair of reportable areas, each
/// with a comment of `comment` characters.
fn routes_body(period: &str, count: usize, comment: usize) -> focalgate::proto::SubmissionBody {
    let lists = focalgate::schema::CodeLists::load(None).unwrap();
    let areas: Vec<&str> = lists
        .area
        .codes()
        .iter()
        .filter(|c| c.reportable && c.id != "_U")
        .map(|c| c.id.as_str())
        .collect();
    let observations = (0..count)
        .map(|i| {
            let mut o = common::route(
                "HEROIN",
                areas[i % areas.len()],
                &[],
                areas[(i / areas.len() + 1 + i % areas.len()) % areas.len()],
                "1",
            );
            o.comment = "c".repeat(comment);
            o
        })
        .collect();
    body("ROUTES", "KAZ", period, observations)
}

/// A sealed envelope of exactly `target` bytes: observations with 500-character comments, as
/// many as fit over the target, then comments trimmed from the end (each character one byte,
/// every length prefix keeping its width while a comment stays over 127 characters).
fn sealed_of_size(kaz: &Signer, period: &str, target: usize) -> focalgate::proto::SignedEnvelope {
    use prost::Message;
    let mut b = routes_body(period, target / 400, 500);
    let overhead = kaz.seal(&b).encoded_len() - b.encoded_len();
    let size = |b: &focalgate::proto::SubmissionBody| b.encoded_len() + overhead;
    while size(&b) - (b.observations.last().unwrap().encoded_len() + 3) >= target {
        b.observations.pop();
    }
    let mut excess = size(&b) - target;
    for o in b.observations.iter_mut().rev() {
        let cut = excess.min(500 - 128);
        o.comment.truncate(500 - cut);
        excess -= cut;
    }
    let env = kaz.seal(&b);
    assert_eq!(env.encoded_len(), target);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_at_the_size_limit_reads_back_and_verifies_and_one_byte_more_is_refused() {
    use focalgate::proto::GetSubmissionRequest;
    use prost::Message;
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let kaz = Signer::of("KAZ");
    let mut client = gw.client("KAZ").await;
    let limit = focalgate::config::LimitSettings::default().max_message_bytes
        - focalgate::service::READBACK_HEADROOM;

    let env = sealed_of_size(&kaz, "2024", limit);
    let receipt = client.submit(env.clone()).await.unwrap().into_inner();
    assert_eq!(receipt.submission_id, "KAZ.ROUTES.2024.r1");
    let got = gw
        .client("auditor")
        .await
        .get_submission(GetSubmissionRequest {
            submission_id: receipt.submission_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.envelope_bytes, env.encode_to_vec());
    assert!(got.encoded_len() <= focalgate::config::LimitSettings::default().max_message_bytes);

    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(common::BIN)
            .args(["log", "verify", "--server", &gw.url(), "--identity"])
            .arg(common::pki().join("auditor"))
            .arg("--log-key")
            .arg(dir.path().join("log.vkey"))
            .output()
            .unwrap()
    });
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let status = client
        .submit(sealed_of_size(&kaz, "2023", limit + 1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains(&limit.to_string()), "{status:?}");
    assert_eq!(gw.count("submissions").await, 1);
    gw.stop().await;
}

/// Four at once of each amplification bomb, against a gateway process whose peak memory is
/// measured: a signed payload of 2,000,000 empty observations (`42 00`, 3.81 MiB), and an
/// envelope of 2,000,000 empty signatures. Each is refused before it is decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_field_bombs_are_refused_before_they_cost_memory() {
    use focalgate::proto::SignedEnvelope;
    use prost::Message;
    let dir = common::tempdir();
    let child = common::ChildGateway::start(dir.path());
    let channel = tonic::transport::Endpoint::from_shared(child.url.clone())
        .unwrap()
        .tls_config(common::identity_tls(&common::pki().join("KAZ")))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = SubmissionsClient::new(channel);
    let kaz = Signer::of("KAZ");
    let good = body(
        "SEIZURES",
        "KAZ",
        "2024",
        vec![seizure("HEROIN", "KG", "1", 1)],
    );
    client.clone().submit(kaz.seal(&good)).await.unwrap();
    let before = child.peak_memory();

    let mut payload = good.encode_to_vec();
    for _ in 0..2_000_000 {
        payload.extend_from_slice(&[0x42, 0x00]);
    }
    let observations = focalgate::envelope::seal(
        focalgate::schema::SUBMISSION_PAYLOAD_TYPE,
        payload,
        &kaz.key,
        &kaz.keyid,
    )
    .unwrap();
    let mut signatures = kaz.seal(&good).encode_to_vec();
    for _ in 0..2_000_000 {
        signatures.extend_from_slice(&[0x1a, 0x00]);
    }
    let signatures = SignedEnvelope::decode(signatures.as_slice()).unwrap();
    assert!(observations.encoded_len() > 4_000_000 && signatures.encoded_len() > 4_000_000);

    for (what, bomb, code, words) in [
        (
            "observations",
            observations,
            Code::InvalidArgument,
            "2000001 observations, at most 10000",
        ),
        (
            "signatures",
            signatures,
            Code::ResourceExhausted,
            "field number 3 repeats more than",
        ),
    ] {
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let (mut client, bomb) = (client.clone(), bomb.clone());
                tokio::spawn(async move { client.submit(bomb).await })
            })
            .collect();
        for call in calls {
            let status = call.await.unwrap().unwrap_err();
            assert_eq!(status.code(), code, "{what}: {status:?}");
            assert!(status.message().contains(words), "{what}: {status:?}");
        }
    }
    let grown = child.peak_memory().saturating_sub(before);
    eprintln!(
        "peak memory: {:.1} MiB before, grew by {:.1} MiB for 4 + 4 bombs of 3.8 MiB",
        before as f64 / 1048576.0,
        grown as f64 / 1048576.0
    );
    assert!(
        grown < 96 * 1024 * 1024,
        "peak memory grew by {grown} bytes"
    );
}

/// A valid body with a 3 MiB unknown field 1000, signed: refused with the field number, and
/// nothing stored (the signed bytes would otherwise be kept verbatim, forever).
#[tokio::test]
async fn a_signed_payload_with_a_field_the_schema_does_not_define_is_refused() {
    use prost::Message;
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let kaz = Signer::of("KAZ");
    let mut payload = body(
        "SEIZURES",
        "KAZ",
        "2018-Q4",
        vec![seizure("HEROIN", "KG", "1", 1)],
    )
    .encode_to_vec();
    let extra = vec![b'x'; 3 * 1024 * 1024];
    prost::encoding::bytes::encode(1000, &extra, &mut payload);
    let env = focalgate::envelope::seal(
        focalgate::schema::SUBMISSION_PAYLOAD_TYPE,
        payload,
        &kaz.key,
        &kaz.keyid,
    )
    .unwrap();
    let status = gw.client("KAZ").await.submit(env).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("field number 1000 is not a field of SubmissionBody")
            && status.message().contains("unknown-field"),
        "{status:?}"
    );
    assert_eq!(gw.count("submissions").await, 0);
    gw.stop().await;
}

/// The access trail records a bounded, canonical form of each query that ran: a filter may
/// name each code once at most, duplicates and case are folded, and a request of 400,000 values
/// is refused before it is decoded. Nothing refused is recorded.
#[tokio::test]
async fn the_access_trail_records_a_bounded_canonical_query() {
    use focalgate::proto::ListAccessTrailRequest;
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let mut stats = StatisticsClient::new(gw.channel("KAZ").await);
    let ask = |ref_area: Vec<String>| AggregateQuery {
        dataflow: "SEIZURES".into(),
        ref_area,
        group_by: vec!["drug".into(), "DRUG".into()],
        ..Default::default()
    };

    let status = stats
        .query(ask(vec!["KAZ".into(); 400_000]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let status = stats
        .query(ask(vec!["KAZ".into(); 5_000]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("ref_area: 5000 values; a filter names at most")
    );

    let lists = focalgate::schema::CodeLists::load(None).unwrap();
    let mut every: Vec<String> = lists
        .area
        .codes()
        .iter()
        .map(|c| c.id.to_lowercase())
        .collect();
    every.truncate(every.len() / 2);
    every.extend(["kaz".into(), "KAZ".into(), "Kgz".into()]);
    stats.query(ask(every.clone())).await.unwrap();
    stats
        .query(ask(vec!["uzb".into(), "KAZ".into(), "kaz".into()]))
        .await
        .unwrap();

    let mut trail = StatisticsClient::new(gw.channel("auditor").await)
        .list_access_trail(ListAccessTrailRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut records = Vec::new();
    while let Some(r) = trail.message().await.unwrap() {
        records.push(r);
    }
    assert_eq!(records.len(), 2, "refused queries are not recorded");
    assert_eq!(
        records[0].request,
        r#"{"dataflow":"SEIZURES","group_by":["DRUG"],"ref_area":["KAZ","UZB"]}"#
    );
    assert!(
        records[1].request.len() < 2_000,
        "{}",
        records[1].request.len()
    );
    gw.stop().await;
}
