//! A long day of load, compressed: many clients at once for several minutes against one gateway
//! on SQLite, half of them submitting, a quarter querying aggregates, a quarter listing their
//! submissions. Work that grows with the whole store, rather than with what changed or what was
//! asked, shows as a last minute slower than the first.
//!
//! Prints, for the first and the last minute, each method's calls per second and latencies
//! (p50, p99), all calls per second and the ratio last/first (goal: at least 0.8), the store's
//! size at the end, and the process's resident memory (clients and gateway alike) at start and
//! end.
//!
//! Submitters sign as they go: 20 observations per submission, monthly periods from 1990 for
//! each of five members, so the store first gains series and then revisions of them. Queries
//! are an analyst's year × drug roll-up of 2020-2024; listings ask a member's current revisions
//! of one year.
//!
//! `cargo bench --bench soak` (environment: BENCH_SOAK_SECS, default 300; BENCH_SOAK_CLIENTS,
//! default 64).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DRUGS, MEMBERS, channel, env_or, shut_down, signer, start};
use focalgate::rpc::{statistics_client::StatisticsClient, submissions_client::SubmissionsClient};

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use focalgate::{
    config::Settings,
    envelope,
    proto::{AggregateQuery, ListSubmissionsRequest, Observation, SubmissionBody},
    schema::SUBMISSION_PAYLOAD_TYPE,
};
use prost::Message;

const MODES: [&str; 2] = ["ROAD", "RAIL"];
/// Monthly periods from 1990-M01: 36 years.
const MONTHS: usize = 36 * 12;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Submit,
    Query,
    List,
}

const METHODS: [(Method, &str); 3] = [
    (Method::Submit, "Submit"),
    (Method::Query, "Query"),
    (Method::List, "ListSubmissions"),
];

/// One call: what, when it ended (since the start), how long it took, and its status code if
/// it failed.
struct Call {
    method: Method,
    ended: Duration,
    took: Duration,
    failed: Option<tonic::Code>,
}

/// The `n`-th submission of `member`: month `n % MONTHS` from 1990, 20 observations.
fn submission(member: &str, n: usize) -> SubmissionBody {
    let month = n % MONTHS;
    let observations = (0..20)
        .map(|j| {
            let (drug, unit) = DRUGS[j % 10];
            Observation {
                drug: drug.into(),
                transport_mode: MODES[j / 10].into(),
                unit_measure: unit.into(),
                quantity: format!("{}.{:03}", 1 + (n * 7 + j * 13) % 5000, j),
                n_seizures: Some(1 + (j as u64 + n as u64) % 40),
                ..Default::default()
            }
        })
        .collect();
    SubmissionBody {
        dataflow: "SEIZURES".into(),
        ref_area: member.into(),
        freq: "M".into(),
        time_period: format!("{}-M{:02}", 1990 + month / 12, 1 + month % 12),
        action: "R".into(),
        prepared_at: Some(prost_types::Timestamp {
            seconds: 1_780_000_000 + n as i64,
            nanos: 0,
        }),
        observations,
        ..Default::default()
    }
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    let secs = env_or("BENCH_SOAK_SECS", 300).max(120) as u64;
    let clients = env_or("BENCH_SOAK_CLIENTS", 64).max(4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::load_with_env(None, true, Vec::new()).unwrap();
        settings.witnessing.identity = None; // the demo witnesses are not running
        settings.data_dir = dir.path().join("data");
        let gateway = start(&settings).await;
        let (addr, store) = (gateway.addr, gateway.store.clone());
        let memory_at_start = rss_mib();

        let (submitters, queriers) = (clients / 2, clients / 4);
        let listers = clients - submitters - queriers;
        eprintln!(
            "soak: {secs} s, {clients} clients ({submitters} Submit, {queriers} Query, {listers} ListSubmissions), SQLite"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let counters: Arc<Vec<AtomicUsize>> =
            Arc::new(MEMBERS.iter().map(|_| AtomicUsize::new(0)).collect());
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (stop, counters) = (stop.clone(), counters.clone());
            let member = c % MEMBERS.len();
            let method = if c < submitters {
                Method::Submit
            } else if c < submitters + queriers {
                Method::Query
            } else {
                Method::List
            };
            let who = if method == Method::Query {
                "analyst"
            } else {
                MEMBERS[member]
            };
            let channel = channel(addr, who).await;
            tasks.push(tokio::spawn(async move {
                let mut calls = Vec::new();
                let (key, keyid) = signer(MEMBERS[member]);
                let mut submissions = SubmissionsClient::new(channel.clone())
                    .max_decoding_message_size(64 * 1024 * 1024);
                let mut statistics = StatisticsClient::new(channel);
                let mut round = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let t = Instant::now();
                    let outcome: Result<(), tonic::Status> = async {
                    match method {
                        Method::Submit => {
                            let n = counters[member].fetch_add(1, Ordering::Relaxed);
                            let body = submission(MEMBERS[member], n);
                            let env = envelope::seal(
                                SUBMISSION_PAYLOAD_TYPE,
                                body.encode_to_vec(),
                                &key,
                                &keyid,
                            )
                            .unwrap();
                            submissions.submit(env).await?;
                        }
                        Method::Query => {
                            let q = AggregateQuery {
                                dataflow: "SEIZURES".into(),
                                freq: "M".into(),
                                rollup: "A".into(),
                                period_from: "2020".into(),
                                period_to: "2024".into(),
                                group_by: vec!["time_period".into(), "drug".into()],
                                ..Default::default()
                            };
                            let mut s = statistics.query(q).await?.into_inner();
                            while s.message().await?.is_some() {}
                        }
                        Method::List => {
                            let year = 1990 + round % 36;
                            let r = ListSubmissionsRequest {
                                dataflow: "SEIZURES".into(),
                                period_from: year.to_string(),
                                period_to: year.to_string(),
                                current_only: true,
                                ..Default::default()
                            };
                            let mut s = submissions.list_submissions(r).await?.into_inner();
                            while s.message().await?.is_some() {}
                        }
                    }
                    Ok(())
                    }
                    .await;
                    calls.push(Call {
                        method,
                        ended: started.elapsed(),
                        took: t.elapsed(),
                        failed: outcome.err().map(|s| s.code()),
                    });
                }
                calls
            }));
        }
        let mut minute = 0;
        while started.elapsed() < Duration::from_secs(secs) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let m = started.elapsed().as_secs() / 60;
            if m > minute {
                minute = m;
                eprintln!("  {m} min: {:.0} MiB resident", rss_mib());
            }
        }
        stop.store(true, Ordering::Relaxed);
        let mut calls = Vec::new();
        for t in tasks {
            calls.extend(t.await.unwrap());
        }
        let memory_at_end = rss_mib();
        let total = started.elapsed();
        let stored = store.log_size().await.unwrap_or(0);
        shut_down(vec![gateway]).await;

        let first = Duration::ZERO..Duration::from_secs(60);
        let last = total - Duration::from_secs(60)..total;
        println!("soak: {} s, {clients} clients, SQLite", total.as_secs());
        println!(
            "  {:<16} {:>28}   {:>28}",
            "", "first minute", "last minute"
        );
        let mut all = [0usize; 2];
        for (method, name) in METHODS {
            let mut cols = Vec::new();
            for (w, window) in [&first, &last].into_iter().enumerate() {
                let in_window: Vec<&Call> = calls
                    .iter()
                    .filter(|c| c.method == method && window.contains(&c.ended))
                    .collect();
                let failed = in_window.iter().filter(|c| c.failed.is_some()).count();
                let mut took: Vec<Duration> = in_window
                    .iter()
                    .filter(|c| c.failed.is_none())
                    .map(|c| c.took)
                    .collect();
                took.sort();
                all[w] += took.len();
                let at = |q: f64| {
                    took.get(((took.len() as f64 * q) as usize).min(took.len().saturating_sub(1)))
                        .copied()
                        .unwrap_or_default()
                };
                cols.push(format!(
                    "{:>6.0}/s p50 {:>8.2?} p99 {:>8.2?}{}",
                    took.len() as f64 / 60.0,
                    at(0.5),
                    at(0.99),
                    if failed > 0 {
                        format!(" ({failed} failed)")
                    } else {
                        String::new()
                    }
                ));
            }
            println!("  {name:<16} {}   {}", cols[0], cols[1]);
        }
        let (a, b) = (all[0] as f64 / 60.0, all[1] as f64 / 60.0);
        println!(
            "  {:<16} {a:>6.0}/s {:>22}{b:>6.0}/s   ratio last/first {:.2} (goal >= 0.8)",
            "all calls",
            "",
            b / a
        );
        let mut failures: Vec<String> = Vec::new();
        for (method, name) in METHODS {
            let mut codes: Vec<tonic::Code> = calls
                .iter()
                .filter(|c| c.method == method)
                .filter_map(|c| c.failed)
                .collect();
            codes.sort_by_key(|c| *c as i32);
            codes.dedup();
            let n = calls.iter().filter(|c| c.method == method && c.failed.is_some()).count();
            if n > 0 {
                failures.push(format!("{name}: {n} failed ({codes:?})"));
            }
        }
        if !failures.is_empty() {
            println!("  FAILED CALLS: {}", failures.join("; "));
        }
        println!(
            "  store: a log of {stored} entries at the end; memory (RSS, clients and gateway): {memory_at_start:.0} MiB at start, {memory_at_end:.0} MiB at end"
        );
    });
}
