//! Aggregate queries over a million observations, end to end over mTLS, side by side in the
//! same run with the same GROUP BY executed directly on the store (SQLite).
//!
//! The data are synthetic: 40 reporters, 20 drugs, 10 years of monthly submissions, about
//! 1,000,000 observations, stored through the gateway's own ledger (entries, log, checkpoints).
//! The gateway's timings include the mTLS call, the access-trail write (durable) and streaming
//! every row to the client.
//!
//! The first query is also asked of the SDMX REST API (`SEIZURES_AGG`, SDMX-CSV over HTTPS with
//! the same client certificate, one HTTP/1.1 connection), beside the gRPC call in the same run.
//!
//! `cargo bench --bench statistics` (environment: BENCH_RUNS, default 20).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{SDMX_CSV, Sdmx, lists, percentile, rss};
use focalgate::rpc::statistics_client::StatisticsClient;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use focalgate::{
    config::Settings,
    proto::{AggregateQuery, Observation, SubmissionBody, query_response::Item},
    synthetic::Rng,
};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const REPORTERS: [&str; 40] = [
    "KAZ", "KGZ", "TJK", "TKM", "UZB", "DEU", "FRA", "ITA", "ESP", "POL", "ROU", "NLD", "BEL",
    "CZE", "GRC", "PRT", "SWE", "HUN", "AUT", "BGR", "DNK", "FIN", "SVK", "IRL", "HRV", "LTU",
    "SVN", "LVA", "EST", "CYP", "LUX", "MLT", "AFG", "IRN", "PAK", "RUS", "CHN", "TUR", "AZE",
    "GEO",
];
const DRUGS: [(&str, &str); 20] = [
    ("HEROIN", "KG"),
    ("OPIUM", "KG"),
    ("MORPHINE", "KG"),
    ("CODEINE", "U"),
    ("TRAMADOL", "U"),
    ("COCAINE", "KG"),
    ("COCAINE_BASE", "KG"),
    ("CANNABIS_HERB", "KG"),
    ("CANNABIS_RESIN", "KG"),
    ("CANNABIS_PLANT", "PLANT"),
    ("METHAMPHETAMINE", "KG"),
    ("AMPHETAMINE", "U"),
    ("MDMA", "U"),
    ("BENZODIAZEPINES", "U"),
    ("PREGABALIN", "U"),
    ("LSD", "DOSE"),
    ("PSILOCYBIN", "KG"),
    ("SYNTHETIC_CATHINONES", "KG"),
    ("ACETIC_ANHYDRIDE", "L"),
    ("EPHEDRINE", "KG"),
];
const MODES: [&str; 10] = [
    "ROAD",
    "RAIL",
    "AIR",
    "SEA",
    "POSTAL",
    "PEDESTRIAN",
    "INLAND_WATER",
    "_O",
    "_U",
    "",
];

fn body(reporter: &str, year: i32, month: u8, rng: &mut Rng) -> SubmissionBody {
    let mut observations = Vec::with_capacity(208);
    for (d, (drug, unit)) in DRUGS.iter().enumerate() {
        for mode in MODES {
            observations.push(Observation {
                drug: (*drug).into(),
                transport_mode: mode.into(),
                unit_measure: (*unit).into(),
                quantity: format!("{}.{:03}", rng.below(5_000), rng.below(1_000)),
                n_seizures: Some(1 + rng.below(40)),
                ..Default::default()
            });
        }
        // A second unit for the drugs that have one: the key includes the unit.
        if d < 8 && *unit == "KG" {
            observations.push(Observation {
                drug: (*drug).into(),
                transport_mode: "ROAD".into(),
                unit_measure: "L".into(),
                quantity: format!("{}", 1 + rng.below(50)),
                n_seizures: Some(1),
                ..Default::default()
            });
        }
    }
    observations.retain(|o| {
        let lists = lists();
        lists
            .drug
            .get(&o.drug)
            .is_some_and(|c| c.units.contains(&o.unit_measure))
    });
    SubmissionBody {
        dataflow: "SEIZURES".into(),
        ref_area: reporter.into(),
        freq: "M".into(),
        time_period: format!("{year}-M{month:02}"),
        action: "R".into(),
        observations,
        ..Default::default()
    }
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();

        // 1. A million observations through the ledger.
        let started = Instant::now();
        let mut rng = Rng::new(11);
        let bodies = REPORTERS
            .iter()
            .flat_map(|r| (2015..2025).flat_map(move |y| (1..=12u8).map(move |m| (*r, y, m))))
            .map(|(reporter, year, month)| body(reporter, year, month, &mut rng));
        let observations = common::load(&data, "focalgate.bench/log", bodies).await;
        let load = started.elapsed();

        // 2. The gateway on that store (its start reads the million observations into memory).
        let mut settings = Settings::load_with_env(None, true, Vec::new()).unwrap();
        settings.witnessing.identity = None; // the demo witnesses are not running
        settings.data_dir = data.clone();
        settings.log.origin = Some("focalgate.bench/log".into());
        let started = Instant::now();
        let running = common::start(&settings).await;
        let startup = started.elapsed();
        let (addr, api_addr) = (running.addr, running.sdmx);
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(std::fs::read("certs-example/ca/ca.pem").unwrap()))
            .identity(Identity::from_pem(
                std::fs::read("certs-example/analyst/auth.pem").unwrap(),
                std::fs::read("certs-example/analyst/auth.key").unwrap(),
            ));
        let channel = Endpoint::from_shared(format!("https://{addr}")).unwrap().tls_config(tls).unwrap().connect().await.unwrap();
        let mut client = StatisticsClient::new(channel);

        let queries: Vec<(&str, AggregateQuery, &str)> = vec![
            (
                "year x drug x reporter roll-up",
                AggregateQuery {
                    dataflow: "SEIZURES".into(),
                    freq: "M".into(),
                    rollup: "A".into(),
                    group_by: vec!["REF_AREA".into(), "DRUG".into(), "TIME_PERIOD".into()],
                    ..Default::default()
                },
                "SELECT s.ref_area, o.drug, substr(s.time_period, 1, 4), o.unit_measure, sum(o.quantity), sum(o.n_seizures), \
                 count(DISTINCT s.ref_area) FROM observations o JOIN submissions s ON s.seq = o.submission_seq \
                 WHERE s.is_current = 1 AND s.dataflow = 'SEIZURES' AND s.freq = 'M' AND o.conf_status NOT IN ('C', 'E') \
                 GROUP BY 1, 2, 3, 4",
            ),
            (
                "drug totals by unit",
                AggregateQuery { dataflow: "SEIZURES".into(), freq: "M".into(), group_by: vec!["DRUG".into()], ..Default::default() },
                "SELECT o.drug, o.unit_measure, sum(o.quantity), sum(o.n_seizures), count(DISTINCT s.ref_area) \
                 FROM observations o JOIN submissions s ON s.seq = o.submission_seq \
                 WHERE s.is_current = 1 AND s.dataflow = 'SEIZURES' AND s.freq = 'M' AND o.conf_status NOT IN ('C', 'E') \
                 GROUP BY 1, 2",
            ),
            (
                "opioids, 5 reporters, quarters 2020-2022",
                AggregateQuery {
                    dataflow: "SEIZURES".into(),
                    freq: "M".into(),
                    rollup: "Q".into(),
                    period_from: "2020".into(),
                    period_to: "2022".into(),
                    ref_area: ["KAZ", "KGZ", "TJK", "TKM", "UZB"].map(String::from).to_vec(),
                    drug: vec!["OPIOIDS".into()],
                    group_by: vec!["REF_AREA".into(), "TIME_PERIOD".into()],
                    ..Default::default()
                },
                "SELECT s.ref_area, substr(s.time_period, 1, 4) || '-Q' || ((CAST(substr(s.time_period, 7, 2) AS INTEGER) + 2) / 3), \
                 o.unit_measure, sum(o.quantity), sum(o.n_seizures), count(DISTINCT s.ref_area) \
                 FROM observations o JOIN submissions s ON s.seq = o.submission_seq \
                 WHERE s.is_current = 1 AND s.dataflow = 'SEIZURES' AND s.freq = 'M' AND o.conf_status NOT IN ('C', 'E') \
                 AND s.period_start >= '2020-01-01' AND s.period_end <= '2022-12-31' \
                 AND s.ref_area IN ('KAZ', 'KGZ', 'TJK', 'TKM', 'UZB') \
                 AND o.drug IN ('OPIUM', 'HEROIN', 'MORPHINE', 'POPPY_STRAW', 'CODEINE', 'METHADONE', 'FENTANYL', 'TRAMADOL', 'OPIOIDS_O') \
                 GROUP BY 1, 2, 3",
            ),
        ];

        let db = rusqlite::Connection::open_with_flags(data.join("focalgate.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        println!(
            "statistics: {observations} observations (40 reporters, 20 drugs, 10 years monthly); loaded through the ledger in {load:.1?}; gateway start {startup:.1?}"
        );
        for (name, request, sql) in queries {
            let mut gateway = Vec::new();
            let mut rows = 0;
            for _ in 0..runs {
                let t = Instant::now();
                let mut stream = client.query(request.clone()).await.unwrap().into_inner();
                rows = 0;
                while let Some(m) = stream.message().await.unwrap() {
                    if matches!(m.item, Some(Item::Row(_))) {
                        rows += 1;
                    }
                }
                gateway.push(t.elapsed());
            }
            let mut direct = Vec::new();
            let mut direct_rows = 0;
            for _ in 0..runs.min(5) {
                let t = Instant::now();
                let mut stmt = db.prepare_cached(sql).unwrap();
                direct_rows = stmt.query_map([], |_| Ok(())).unwrap().count();
                direct.push(t.elapsed());
            }
            let (g50, g99) = (percentile(&mut gateway, 0.5), percentile(&mut gateway, 0.99));
            let d50 = percentile(&mut direct, 0.5);
            println!("  {name}: {rows} rows");
            println!("    gateway over mTLS     : p50 {g50:>9.1?}  p99 {g99:>9.1?}");
            println!("    GROUP BY on the store : p50 {d50:>9.1?}  ({direct_rows} rows)");
            println!("    ratio gateway/store   : {:.2} (goal <= 1.5)", g50.as_secs_f64() / d50.as_secs_f64());
            if name.starts_with("year x drug x reporter") {
                // The same cells from the SDMX REST API: every dimension of SEIZURES_AGG but
                // TRANSPORT_MODE and REPORTED_STATUS grouped, monthly series rolled up to years.
                // Each SDMX request follows a gRPC one, so that both meet the same conditions.
                let path = "/sdmx/data/SEIZURES_AGG/A.*.*._T._T.*?freq=M";
                // Connected now: the API closes a connection that sends no request for 10 s.
                let mut sdmx = Sdmx::connect(api_addr, "analyst").await;
                let (mut grpc, mut api) = (Vec::new(), Vec::new());
                let mut api_rows = 0;
                for _ in 0..runs {
                    let t = Instant::now();
                    let mut stream = client.query(request.clone()).await.unwrap().into_inner();
                    while stream.message().await.unwrap().is_some() {}
                    grpc.push(t.elapsed());
                    let t = Instant::now();
                    api_rows = sdmx.text(path, SDMX_CSV).await.lines().count() - 1;
                    api.push(t.elapsed());
                }
                let (a50, a99) = (percentile(&mut api, 0.5), percentile(&mut api, 0.99));
                let b50 = percentile(&mut grpc, 0.5);
                assert_eq!(api_rows, rows, "the API answers the same cells");
                println!("    the same, alternating with SDMX REST:");
                println!("    gRPC Query            : p50 {b50:>9.1?}");
                println!("    SDMX REST, SDMX-CSV   : p50 {a50:>9.1?}  p99 {a99:>9.1?}  ({api_rows} rows)");
                println!("    ratio SDMX/gRPC       : {:.2} (goal <= 1.2)", a50.as_secs_f64() / b50.as_secs_f64());
            }
        }
        // Downloads of SEIZURES, the observations as submitted, streamed: a tenth of them (one
        // year of ten) and all, with the growth of the process's resident memory (sampled
        // every 5 ms), which does not grow with the answer.
        for (what, path) in [
            ("2015 only", "/sdmx/data/SEIZURES/all?endPeriod=2015"),
            ("all", "/sdmx/data/SEIZURES/all"),
        ] {
            let mut sdmx = Sdmx::connect(api_addr, "analyst").await;
            let before = rss();
            let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
            let sampling = {
                let peak = peak.clone();
                tokio::spawn(async move {
                    loop {
                        peak.fetch_max(rss(), std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            };
            let t = Instant::now();
            let (status, bytes) = sdmx.count(path, SDMX_CSV).await;
            assert_eq!(status, 200);
            let took = t.elapsed();
            sampling.abort();
            let grew = peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(before);
            println!("  SEIZURES download, {what} (SDMX-CSV, the observations as submitted):");
            println!(
                "    {:.1} MB in {took:.1?} ({:.0} MB/s); resident memory grew {:.1} MB at most",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / took.as_secs_f64(),
                grew as f64 / 1e6,
            );
        }
        common::shut_down(vec![running]).await;
    });
}
