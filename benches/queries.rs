//! Heavy statistics queries while members submit: what one analyst's burst of the most
//! expensive aggregates costs everyone else.
//!
//! The store holds about 300,000 ROUTES observations (BENCH_OBSERVATIONS), loaded through the
//! gateway's own ledger. Two phases of BENCH_SECONDS each (default 20), in the same process:
//!
//! 1. the baseline: five focal points submit (10 signed submissions a second each), another
//!    member asks small aggregate queries over gRPC and structure requests over SDMX REST;
//! 2. the same, while one analyst keeps 16 aggregates grouped by every dimension, without
//!    limit, under way at once (half over SDMX REST in SDMX-CSV, half over gRPC).
//!
//! It prints Submit's and the small requests' p99 in each phase and their ratio, the heavy
//! answers given and refused as busy, and how much the process's resident memory grew
//! during phase 2 over what it held before (sampled every 5 ms; the clients read and drop
//! what they receive). Goals: growth under 256 MB, Submit p99 under 100 ms, the small
//! requests' p99 under 50 ms.
//!
//! `cargo bench --bench queries`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use common::{MEMBERS, SDMX_CSV, Sdmx, channel, env_or, percentile, rss, signer};
use focalgate::{
    config::Settings,
    envelope,
    proto::{AggregateQuery, Observation, SubmissionBody},
    rpc::{statistics_client::StatisticsClient, submissions_client::SubmissionsClient},
    schema::SUBMISSION_PAYLOAD_TYPE,
};
use prost::Message;

/// Reporters of the loaded data (any area may report into the store directly).
const REPORTERS: [&str; 20] = [
    "KAZ", "KGZ", "TJK", "TKM", "UZB", "DEU", "FRA", "ITA", "ESP", "POL", "ROU", "NLD", "BEL",
    "CZE", "GRC", "PRT", "SWE", "HUN", "AUT", "BGR",
];
const DRUGS: [(&str, &str); 10] = common::DRUGS;
const ORIGINS: [&str; 3] = ["AFG", "IRN", "PAK"];
const TRANSITS: [&[&str]; 5] = [&[], &["TJK"], &["TJK", "KGZ"], &["TKM", "UZB"], &["UZB"]];
const DESTINATIONS: [&str; 6] = ["RUS", "KAZ", "DEU", "NLD", "TUR", "CHN"];
const MODES: [&str; 6] = ["ROAD", "RAIL", "AIR", "SEA", "POSTAL", "_U"];

/// Observations per loaded submission: every (drug, origin, transit) once.
const PER_SUBMISSION: usize = 150;

/// A ROUTES submission of `reporter` for a month: each (drug, origin, transit) once, the
/// destination and the mode varying with the month, so that nearly every observation is its
/// own cell when grouped by every dimension.
fn routes(reporter: &str, year: i32, month: u8, n: usize) -> SubmissionBody {
    let observations = (0..PER_SUBMISSION)
        .map(|j| {
            let (drug, unit) = DRUGS[j % 10];
            let seed = j + n * 7;
            Observation {
                drug: drug.into(),
                origin_area: ORIGINS[(j / 10) % 3].into(),
                transit_area: TRANSITS[(j / 30) % 5]
                    .iter()
                    .map(|a| a.to_string())
                    .collect(),
                destination_area: DESTINATIONS[seed % 6].into(),
                transport_mode: MODES[(seed / 6) % 6].into(),
                unit_measure: unit.into(),
                quantity: format!("{}.{:03}", 1 + seed % 5000, j),
                n_seizures: Some(1 + (seed as u64 % 40)),
                ..Default::default()
            }
        })
        .collect();
    SubmissionBody {
        dataflow: "ROUTES".into(),
        ref_area: reporter.into(),
        freq: "M".into(),
        time_period: format!("{year}-M{month:02}"),
        action: "R".into(),
        observations,
        ..Default::default()
    }
}

/// A small SEIZURES submission of `member`, its `i`-th: a month of its own from 1950 on.
fn small(member: &str, i: usize) -> SubmissionBody {
    SubmissionBody {
        dataflow: "SEIZURES".into(),
        ref_area: member.into(),
        freq: "M".into(),
        time_period: format!("{}-M{:02}", 1950 + i / 12, 1 + i % 12),
        action: "R".into(),
        prepared_at: Some(prost_types::Timestamp {
            seconds: 1_780_000_000,
            nanos: i as i32,
        }),
        observations: DRUGS
            .iter()
            .map(|(drug, unit)| Observation {
                drug: (*drug).into(),
                unit_measure: (*unit).into(),
                quantity: format!("{}.5", 1 + i % 100),
                n_seizures: Some(3),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// What one phase measured.
#[derive(Default)]
struct Phase {
    submits: Vec<Duration>,
    small: Vec<Duration>,
    structure: Vec<Duration>,
    heavy: Vec<Duration>,
    heavy_rows: u64,
    busy: u64,
    grew: u64,
}

/// Runs one phase of `seconds`: the submitters and the small requests, and `heavy` heavy
/// queries at once when not 0. `next` numbers each member's submissions across phases.
async fn phase(
    grpc: std::net::SocketAddr,
    api: std::net::SocketAddr,
    seconds: u64,
    heavy: usize,
    next: Arc<Vec<AtomicU64>>,
) -> Phase {
    let running = Arc::new(AtomicBool::new(true));
    let mut tasks = tokio::task::JoinSet::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);

    // Five focal points, each a signed submission every 100 ms, each over its own channel.
    let submitters: Vec<_> = (0..MEMBERS.len())
        .map(|m| {
            let (running, next) = (running.clone(), next.clone());
            tokio::spawn(async move {
                let member = MEMBERS[m];
                let (key, keyid) = signer(member);
                let mut client = SubmissionsClient::new(channel(grpc, member).await);
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                let mut took = Vec::new();
                while running.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let i = next[m].fetch_add(1, Ordering::Relaxed) as usize;
                    let body = small(member, i);
                    let env =
                        envelope::seal(SUBMISSION_PAYLOAD_TYPE, body.encode_to_vec(), &key, &keyid)
                            .unwrap();
                    let t = Instant::now();
                    client.submit(env).await.unwrap();
                    took.push(t.elapsed());
                }
                took
            })
        })
        .collect();

    // Another member's small requests: an aggregate of its own figures over gRPC, and a
    // structure over SDMX REST, each every 100 ms.
    let small_queries = {
        let running = running.clone();
        tokio::spawn(async move {
            let mut client = StatisticsClient::new(channel(grpc, "TJK").await);
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut took = Vec::new();
            while running.load(Ordering::Relaxed) {
                tick.tick().await;
                let t = Instant::now();
                let mut stream = client
                    .query(AggregateQuery {
                        dataflow: "ROUTES".into(),
                        ref_area: vec!["TJK".into()],
                        period_from: "2020".into(),
                        period_to: "2020".into(),
                        group_by: vec!["DRUG".into()],
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                while stream.message().await.unwrap().is_some() {}
                took.push(t.elapsed());
            }
            took
        })
    };
    let structures = {
        let running = running.clone();
        tokio::spawn(async move {
            let mut sdmx = Sdmx::connect(api, "KGZ").await;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut took = Vec::new();
            while running.load(Ordering::Relaxed) {
                tick.tick().await;
                let t = Instant::now();
                let (status, _) = sdmx
                    .count("/sdmx/structure/codelist/FOCALGATE/CL_DRUG", "*/*")
                    .await;
                assert_eq!(status, 200);
                took.push(t.elapsed());
            }
            took
        })
    };

    // One analyst's heavy aggregates, 16 under way at once, each asked again as it ends.
    let every_dimension = AggregateQuery {
        dataflow: "ROUTES".into(),
        group_by: [
            "REF_AREA",
            "TIME_PERIOD",
            "DRUG",
            "ORIGIN_AREA",
            "DEPARTURE_AREA",
            "TRANSIT_AREA",
            "DESTINATION_AREA",
            "TRANSPORT_MODE",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    };
    for h in 0..heavy {
        let (running, query) = (running.clone(), every_dimension.clone());
        tasks.spawn(async move {
            let mut out = (Vec::new(), 0u64, 0u64);
            if h % 2 == 0 {
                let mut sdmx = Sdmx::connect(api, "analyst").await;
                while running.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let (status, bytes) = sdmx
                        .count(
                            "/sdmx/data/ROUTES_AGG/M.*.*.*.*.*.*.*.*.*?limit=10000000",
                            SDMX_CSV,
                        )
                        .await;
                    match status {
                        200 => {
                            out.0.push(t.elapsed());
                            out.1 += bytes as u64 / 80; // about 80 bytes a row
                        }
                        503 => out.2 += 1,
                        s => panic!("heavy SDMX query: {s}"),
                    }
                }
            } else {
                let mut client = StatisticsClient::new(channel(grpc, "analyst").await);
                while running.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match client.query(query.clone()).await {
                        Ok(r) => {
                            let mut stream = r.into_inner();
                            let mut rows = 0;
                            while stream.message().await.unwrap().is_some() {
                                rows += 1;
                            }
                            out.0.push(t.elapsed());
                            out.1 += rows;
                        }
                        Err(s) if s.code() == tonic::Code::ResourceExhausted => out.2 += 1,
                        Err(s) => panic!("heavy gRPC query: {s}"),
                    }
                }
            }
            out
        });
    }

    let before = rss();
    let peak = Arc::new(AtomicU64::new(before));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep_until(deadline.into()).await;
    running.store(false, Ordering::Relaxed);

    let mut out = Phase::default();
    for s in submitters {
        out.submits.extend(s.await.unwrap());
    }
    out.small = small_queries.await.unwrap();
    out.structure = structures.await.unwrap();
    while let Some(r) = tasks.join_next().await {
        let (took, rows, busy) = r.unwrap();
        out.heavy.extend(took);
        out.heavy_rows += rows;
        out.busy += busy;
    }
    sampling.abort();
    out.grew = peak.load(Ordering::Relaxed).saturating_sub(before);
    out
}

fn main() {
    let observations = env_or("BENCH_OBSERVATIONS", 300_000);
    let seconds = env_or("BENCH_SECONDS", 20) as u64;
    let heavy = env_or("BENCH_HEAVY", 16);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();

        // 1. The ROUTES observations, through the ledger.
        let started = Instant::now();
        let submissions = observations.div_ceil(PER_SUBMISSION);
        let bodies = (0..submissions).map(|n| {
            let month = n / REPORTERS.len();
            routes(
                REPORTERS[n % REPORTERS.len()],
                2015 + (month / 12) as i32,
                1 + (month % 12) as u8,
                n,
            )
        });
        let loaded = common::load(&data, "focalgate.bench/log", bodies).await;
        let load = started.elapsed();

        // 2. The gateway on that store, with its SDMX REST API.
        let mut settings = Settings::load_with_env(None, true, Vec::new()).unwrap();
        settings.witnessing.identity = None;
        settings.data_dir = data.clone();
        settings.log.origin = Some("focalgate.bench/log".into());
        let running = common::start(&settings).await;
        let (slots, per_member) = settings.statistics.query_slots();
        let (grpc, api_addr) = (running.addr, running.sdmx);
        println!(
            "queries: {loaded} ROUTES observations from {} reporters, loaded in {load:.1?}; \
             {slots} query slots, {per_member} per member; phases of {seconds} s",
            REPORTERS.len()
        );

        let next = Arc::new((0..MEMBERS.len()).map(|_| AtomicU64::new(0)).collect::<Vec<_>>());
        let mut base = phase(grpc, api_addr, seconds, 0, next.clone()).await;
        let mut load = phase(grpc, api_addr, seconds, heavy, next).await;

        let row = |name: &str, b: &mut Vec<Duration>, l: &mut Vec<Duration>, goal: &str| {
            let (b50, b99) = (percentile(b, 0.5), percentile(b, 0.99));
            let (l50, l99) = (percentile(l, 0.5), percentile(l, 0.99));
            println!(
                "  {name:<28}: alone p50 {b50:>8.1?} p99 {b99:>8.1?} | beside {heavy} heavy p50 {l50:>8.1?} p99 {l99:>8.1?} | p99 ratio {:.2} ({goal})",
                l99.as_secs_f64() / b99.as_secs_f64().max(1e-9)
            );
        };
        row("Submit (5 focal points)", &mut base.submits, &mut load.submits, "goal: p99 < 100 ms");
        row("small Query (another member)", &mut base.small, &mut load.small, "goal: p99 < 50 ms");
        row("SDMX structure (another)", &mut base.structure, &mut load.structure, "goal: p99 < 50 ms");
        let h50 = percentile(&mut load.heavy, 0.5);
        println!(
            "  heavy aggregates (every dimension, no limit): {} answered (p50 {h50:.1?}, about {} rows each), {} refused as busy",
            load.heavy.len(),
            load.heavy_rows / (load.heavy.len() as u64).max(1),
            load.busy
        );
        println!(
            "  resident memory growth: alone {:.1} MB, beside the heavy queries {:.1} MB (goal < 256 MB)",
            base.grew as f64 / 1e6,
            load.grew as f64 / 1e6
        );
        common::shut_down(vec![running]).await;
    });
}
