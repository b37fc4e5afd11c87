//! Signed submissions per second over mutual TLS on loopback, side by side with a bare tonic
//! mTLS unary call carrying the same bytes.
//!
//! Both servers use the gateway's own TLS stack (rustls, TLS 1.3, client certificates checked
//! against the CA and CRL). The gateway verifies each signature and certificate, decodes,
//! validates 100 observations and commits durably to SQLite (WAL, synchronous=FULL, group
//! commit) before answering; the baseline answers at once. Envelopes are signed before the
//! clock starts, so both runs send exactly the same bytes.
//!
//! Then the same submissions into PostgreSQL (a fresh database on POSTGRES_TEST_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres), through one gateway and through two replicas
//! sharing the database and the log key, the clients split between them; printed with the
//! ratios PostgreSQL/SQLite and two replicas/one. Without a reachable PostgreSQL those runs are
//! skipped, and the output says so.
//!
//! To show where the gateway's time goes, a Submit handler's two parts are also measured on
//! their own with the same submissions: its checks (`Gateway::accept`: signature, decoding,
//! schema) on one thread, and the ledger (the single writer: revisions, log, receipts, durable
//! commit to SQLite) fed the checked submissions by as many concurrent submitters.
//!
//! Each run but PostgreSQL's (whose server runs outside this process) also prints the
//! process's CPU time per call, clients and servers alike, and how busy it kept the cores.
//! Bare CPU per call over the gateway's is the ratio the gateway could reach if both were
//! limited by the CPU alone: no faster storage lifts it. Bare CPU per call over itself plus
//! the checks is that ratio for a gateway whose storage, log and receipts cost nothing.
//!
//! The SQLite run is repeated with the demo's five witnesses served in this process (on their
//! demo ports, 127.0.0.1:7381–7385), the gateway asking them as in production: throughput with
//! witnessing over without, and the witness lag of every checkpoint (signed → first witnessed
//! checkpoint covering it, from when the store recorded each), p50 and p99.
//!
//! `cargo bench --bench submit` (environment: BENCH_SUBMISSIONS, BENCH_CLIENTS).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DRUGS, MEMBERS, channel, env_or, shut_down, signer, start};
use focalgate::rpc::{
    submissions_client::SubmissionsClient,
    submissions_server::{Submissions, SubmissionsServer},
};

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use cpu_time::ProcessTime;
use focalgate::{
    app::Accepted,
    config::Settings,
    envelope::{self, SigningKey},
    identity::MemberId,
    proto::{
        GetSubmissionRequest, ListSubmissionsRequest, Observation, Receipt, SignedEnvelope,
        Submission, SubmissionBody, SubmissionSummary,
    },
    schema::SUBMISSION_PAYLOAD_TYPE,
    service,
};
use prost::Message;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

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

/// `n` distinct signed submissions of 100 observations, spread over members and periods.
fn envelopes(n: usize) -> Vec<(usize, SignedEnvelope)> {
    let signers: Vec<(SigningKey, String)> = MEMBERS.iter().map(|m| signer(m)).collect();
    (0..n)
        .map(|i| {
            let member = i % MEMBERS.len();
            let observations = (0..100)
                .map(|j| {
                    let (drug, unit) = DRUGS[j % 10];
                    Observation {
                        drug: drug.into(),
                        transport_mode: MODES[j / 10].into(),
                        unit_measure: unit.into(),
                        quantity: format!("{}.{:03}", 1 + (i * 7 + j * 13) % 5000, j),
                        n_seizures: Some(1 + (j as u64 % 40)),
                        ..Default::default()
                    }
                })
                .collect();
            let body = SubmissionBody {
                dataflow: "SEIZURES".into(),
                ref_area: MEMBERS[member].into(),
                freq: "M".into(),
                time_period: format!("{}-M{:02}", 2015 + (i / 12) % 10, 1 + i % 12),
                action: "R".into(),
                prepared_at: Some(prost_types::Timestamp {
                    seconds: 1_780_000_000,
                    nanos: i as i32,
                }),
                observations,
                ..Default::default()
            };
            let (key, keyid) = &signers[member];
            (
                member,
                envelope::seal(SUBMISSION_PAYLOAD_TYPE, body.encode_to_vec(), key, keyid).unwrap(),
            )
        })
        .collect()
}

/// The baseline: a Submissions service that answers every call at once.
struct Echo;

#[tonic::async_trait]
impl Submissions for Echo {
    async fn submit(&self, request: Request<SignedEnvelope>) -> Result<Response<Receipt>, Status> {
        let env = request.into_inner();
        Ok(Response::new(Receipt {
            payload_digest: env.payload[..32.min(env.payload.len())].to_vec(),
            ..Default::default()
        }))
    }
    async fn get_submission(
        &self,
        _: Request<GetSubmissionRequest>,
    ) -> Result<Response<Submission>, Status> {
        Err(Status::unimplemented("baseline"))
    }
    type ListSubmissionsStream = tokio_stream::Empty<Result<SubmissionSummary, Status>>;
    async fn list_submissions(
        &self,
        _: Request<ListSubmissionsRequest>,
    ) -> Result<Response<Self::ListSubmissionsStream>, Status> {
        Err(Status::unimplemented("baseline"))
    }
}

struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time of the whole process (clients and servers alike) per call, and the share of
    /// the machine's cores it kept busy; `None` where the process's CPU time cannot be read.
    cpu: Option<(Duration, f64)>,
}

/// When a run started, by the wall clock and by the process's CPU time (every thread, ended
/// ones too), if the system tells it.
struct Start {
    wall: Instant,
    cpu: Option<ProcessTime>,
}

impl Start {
    fn now() -> Self {
        Self {
            cpu: ProcessTime::try_now().ok(),
            wall: Instant::now(),
        }
    }
}

/// Sends every envelope from `clients` concurrent clients (one connection each, as the member
/// that signed it) and measures throughput and latency.
async fn drive(
    addrs: &[std::net::SocketAddr],
    envs: &[(usize, SignedEnvelope)],
    clients: usize,
) -> Run {
    let envs = Arc::new(envs.to_vec());
    let mut channels = Vec::new();
    for c in 0..clients {
        let mut per_member = Vec::new();
        for m in MEMBERS {
            per_member.push(channel(addrs[c % addrs.len()], m).await);
        }
        channels.push((c, per_member));
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Start::now();
    let tasks: Vec<_> = channels
        .into_iter()
        .map(|(_, per_member)| {
            let (envs, next) = (envs.clone(), next.clone());
            tokio::spawn(async move {
                let mut clients: Vec<_> =
                    per_member.into_iter().map(SubmissionsClient::new).collect();
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((member, env)) = envs.get(i) else {
                        break;
                    };
                    let t = Instant::now();
                    clients[*member].submit(env.clone()).await.unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    measured(envs.len(), started, tasks).await
}

/// A Submit handler's two parts on their own, on a gateway assembled from `settings` (not
/// serving): its checks (signature, decoding, schema), one submission after another on one
/// thread; then its ledger, fed the checked submissions by `clients` concurrent submitters.
/// Returns the checks' time per submission and the ledger's run.
async fn parts(
    settings: &Settings,
    envs: &[(usize, SignedEnvelope)],
    clients: usize,
) -> (Duration, Run) {
    let assembled = service::assemble(settings).await.unwrap();
    let gateway = assembled.gateway.clone();
    let members: Vec<MemberId> = MEMBERS
        .iter()
        .map(|m| MemberId::parse(&format!("{m}:nfp")).unwrap())
        .collect();
    let started = Instant::now();
    let accepted: Vec<Accepted> = envs
        .iter()
        .map(|(member, env)| gateway.accept(&members[*member], env).unwrap())
        .collect();
    let checks = started.elapsed() / envs.len() as u32;

    let queue = Arc::new(std::sync::Mutex::new(accepted));
    let started = Start::now();
    let submitters: Vec<_> = (0..clients)
        .map(|_| {
            let (ledger, queue) = (gateway.ledger.clone(), queue.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let Some(a) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let t = Instant::now();
                    ledger.submit(a).await.unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let ledger = measured(envs.len(), started, submitters).await;
    drop((gateway, assembled.gateway));
    assembled.ledger_task.await.unwrap();
    (checks, ledger)
}

/// Throughput and latency percentiles of `n` calls made since `started` by `callers`, each of
/// which returns the latencies of its calls.
async fn measured(
    n: usize,
    started: Start,
    callers: Vec<tokio::task::JoinHandle<Vec<Duration>>>,
) -> Run {
    let mut latencies = Vec::new();
    for c in callers {
        latencies.extend(c.await.unwrap());
    }
    let elapsed = started.wall.elapsed();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let cpu = started.cpu.and_then(|c| c.try_elapsed().ok()).map(|used| {
        (
            used / n as u32,
            used.as_secs_f64() / (elapsed.as_secs_f64() * cores as f64),
        )
    });
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Run {
        per_second: n as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
        cpu,
    }
}

/// The gateway on SQLite (from `settings`, its data in `dir`) with the demo's five witnesses
/// served in this process on their demo ports (quorum 3), asked as in production: the run,
/// and the witness lag of every checkpoint signed (from its signing to the first witnessed
/// checkpoint that covers it), sorted.
async fn witnessed_run(
    settings: &Settings,
    dir: &std::path::Path,
    envs: &[(usize, SignedEnvelope)],
    clients: usize,
) -> (Run, Vec<Duration>) {
    use focalgate::checkpoint::{KeyType, NoteSigner};
    let mut s = settings.clone();
    s.data_dir = dir.join("data");
    std::fs::create_dir_all(&s.data_dir).unwrap();
    // The log key first: the witnesses are told it before the gateway starts.
    let (key, _) =
        focalgate::pki::load_or_create_gateway_key(&s.data_dir.join("gateway.key")).unwrap();
    let log = NoteSigner::from_key_pair(focalgate::config::DEMO_ORIGIN, KeyType::Ed25519, key)
        .unwrap()
        .verifier()
        .clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The witnesses stand in for partners' machines: their state, fsynced as ever, is kept
    // off the disk the hub's store is on (in /dev/shm where there is one).
    let shm = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let witnesses = service::witness::demo(&shm.path().join("witnesses"), &log, &[], stopped)
        .await
        .unwrap();
    s.witnessing.identity = Some(std::path::Path::new(focalgate::config::DEMO_PKI).join("hub"));
    let gw = start(&s).await;
    let run = drive(&[gw.addr], envs, clients).await;
    let store = gw.store.clone();
    let size = store.log_size().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while store
        .witnessed_sizes(1)
        .await
        .unwrap()
        .first()
        .map(|w| w.size)
        != Some(size)
    {
        assert!(
            Instant::now() < deadline,
            "the last checkpoint was never witnessed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lags = lags(&*store).await;
    shut_down(vec![gw]).await;
    let _ = stop.send(true);
    for (_, _, task) in witnesses {
        let _ = task.await;
    }
    (run, lags)
}

/// For every checkpoint in the store: the time from its signing to the moment the first
/// checkpoint at least as large was recorded as witnessed, sorted.
async fn lags(store: &dyn focalgate::store::Store) -> Vec<Duration> {
    // Largest first: the earliest witnessing among sizes at least as large, as a running min.
    let mut earliest = Vec::new();
    let mut min = i64::MAX;
    for w in store.witnessed_sizes(u32::MAX).await.unwrap() {
        min = min.min(w.at_ms);
        earliest.push((w.size, min));
    }
    earliest.reverse();
    let mut lags = Vec::new();
    let mut after = 0;
    loop {
        let page = store.export_checkpoints(after, 1_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.checkpoint.size;
        for cp in page {
            let at = earliest.partition_point(|(s, _)| *s < cp.checkpoint.size);
            let (_, witnessed) = earliest[at];
            lags.push(Duration::from_millis(
                (witnessed - cp.signed_at_ms).max(0) as u64
            ));
        }
    }
    lags.sort();
    lags
}

/// A fresh PostgreSQL database for one run, or why there is none.
async fn fresh_database(admin: &str) -> Result<(String, String), String> {
    let (client, connection) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let name = format!("fg_bench_{}", std::process::id());
    let said = |e: tokio_postgres::Error| {
        e.as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned())
    };
    // Separate statements: CREATE DATABASE cannot run inside a transaction block.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        client.batch_execute(&sql).await.map_err(said)?;
    }
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    Ok((format!("{base}/{name}"), name))
}

async fn drop_database(admin: &str, name: &str) {
    if let Ok((client, connection)) = tokio_postgres::connect(admin, tokio_postgres::NoTls).await {
        tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

fn line(label: &str, r: &Run) {
    let cpu = r.cpu.map_or_else(String::new, |(per_call, busy)| {
        format!("   CPU {per_call:>7.1?}/call, {:>3.0}% busy", busy * 100.0)
    });
    println!(
        "  {label:<36}: {:>8.0} calls/s   p50 {:>7.2?}  p99 {:>7.2?}{cpu}",
        r.per_second, r.p50, r.p99
    );
}

fn main() {
    let n = env_or("BENCH_SUBMISSIONS", 4_000);
    let clients = env_or("BENCH_CLIENTS", 16);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        eprintln!("signing {n} submissions of 100 observations ...");
        let envs = envelopes(n);
        let bytes: usize = envs.iter().map(|(_, e)| e.encoded_len()).sum();

        // Baseline: bare tonic over the same TLS stack.
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::load_with_env(None, true, Vec::new()).unwrap();
        settings.data_dir = dir.path().join("data");
        // No witnesses but in the run that has them.
        settings.witnessing.identity = None;
        let assembled = service::assemble(&settings).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = focalgate::connections::incoming(
            listener,
            focalgate::connections::gateway_tls(assembled.tls.clone(), focalgate::tls::Listener::Grpc),
            assembled.gateway.lists.clone(),
            settings.connection_limits().unwrap(),
            Some(assembled.gateway.telemetry.clone()),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let baseline = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(SubmissionsServer::new(Echo).max_decoding_message_size(settings.limits.max_message_bytes))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                }),
        );
        let bare = drive(&[addr], &envs, clients).await;
        let _ = stop.send(());
        baseline.await.unwrap().unwrap();
        drop(assembled);

        // The gateway on SQLite.
        let sqlite_dir = tempfile::tempdir().unwrap();
        settings.data_dir = sqlite_dir.path().join("data");
        let one = start(&settings).await;
        let gw = drive(&[one.addr], &envs, clients).await;
        shut_down(vec![one]).await;

        // The same, witnessed by five witnesses in this process, three times, each beside
        // one more run without: the disk's fsync time varies from run to run more than
        // witnessing costs, so the ratio is of medians of runs made side by side.
        let mut without = vec![gw.per_second];
        let mut with = Vec::new();
        let (mut cpu_without, mut cpu_with) = (Vec::from_iter(gw.cpu.map(|c| c.0.as_secs_f64())), Vec::new());
        let mut lag = Vec::new();
        let mut witnessed = None;
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let (run, lags) = witnessed_run(&settings, dir.path(), &envs, clients).await;
            with.push(run.per_second);
            cpu_with.extend(run.cpu.map(|c| c.0.as_secs_f64()));
            lag.extend(lags);
            witnessed.get_or_insert(run);
            let dir = tempfile::tempdir().unwrap();
            settings.data_dir = dir.path().join("data");
            let plain = start(&settings).await;
            let run = drive(&[plain.addr], &envs, clients).await;
            without.push(run.per_second);
            cpu_without.extend(run.cpu.map(|c| c.0.as_secs_f64()));
            shut_down(vec![plain]).await;
        }
        lag.sort();
        let witnessed = witnessed.unwrap();
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (with, without) = (median(&mut with), median(&mut without));
        let cpu = (!cpu_with.is_empty() && !cpu_without.is_empty())
            .then(|| (median(&mut cpu_with), median(&mut cpu_without)));

        // Its parts on their own, on a fresh store.
        let parts_dir = tempfile::tempdir().unwrap();
        settings.data_dir = parts_dir.path().join("data");
        let (check_time, writer) = parts(&settings, &envs, clients).await;

        // On PostgreSQL: one gateway, then two replicas.
        let admin = std::env::var("POSTGRES_TEST_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut postgres = None;
        match fresh_database(&admin).await {
            Err(e) => eprintln!("PostgreSQL runs skipped: {e} (set POSTGRES_TEST_URL)"),
            Ok((url, name)) => {
                let pg_dir = tempfile::tempdir().unwrap();
                let mut pg = settings.clone();
                pg.data_dir = pg_dir.path().join("one");
                pg.store.url = Some(url);
                let one = start(&pg).await;
                let single = drive(&[one.addr], &envs, clients).await;
                shut_down(vec![one]).await;
                drop_database(&admin, &name).await;

                let (url, name) = fresh_database(&admin).await.unwrap();
                let mut a = settings.clone();
                a.data_dir = pg_dir.path().join("a");
                a.store.url = Some(url);
                let first = start(&a).await;
                let mut b = a.clone();
                b.data_dir = pg_dir.path().join("b");
                b.log.key = Some(a.data_dir.join("gateway.key"));
                let second = start(&b).await;
                let pair = drive(&[first.addr, second.addr], &envs, clients).await;
                shut_down(vec![first, second]).await;
                drop_database(&admin, &name).await;
                postgres = Some((single, pair));
            }
        }

        println!("signed submit over mTLS: {n} submissions x 100 observations ({:.0} bytes each), {clients} concurrent clients", bytes as f64 / n as f64);
        line("bare tonic mTLS echo", &bare);
        line("focalgate Submit, SQLite", &gw);
        println!("  ratio gateway/bare (SQLite)         : {:.2} (goal >= 0.30)", gw.per_second / bare.per_second);
        if let (Some((bare_cpu, _)), Some((gw_cpu, _))) = (bare.cpu, gw.cpu) {
            // Were both runs CPU-bound, each would do cores / (CPU per call) calls a second.
            println!(
                "  ratio its CPU cost allows           : {:.2} (bare CPU per call / gateway's)",
                bare_cpu.as_secs_f64() / gw_cpu.as_secs_f64()
            );
        }
        line("focalgate Submit, SQLite, 5 witnesses", &witnessed);
        let at = |q: f64| lag[((lag.len() as f64 * q) as usize).min(lag.len() - 1)];
        println!(
            "  witnessed/not, medians of 3 and 4   : {with:.0} / {without:.0} calls/s = {:.2} (goal >= 0.95)",
            with / without
        );
        if let Some((with, without)) = cpu {
            println!(
                "  CPU per call witnessed/not, medians : {:.1?} / {:.1?} = {:.2}",
                Duration::from_secs_f64(with),
                Duration::from_secs_f64(without),
                with / without
            );
        }
        println!(
            "  witness lag, {} checkpoints         : p50 {:?}  p99 {:?}  max {:?} (goal p99 < 1 s; witnessing.period_ms {})",
            lag.len(),
            at(0.5),
            at(0.99),
            lag[lag.len() - 1],
            settings.witnessing.period_ms
        );
        println!("  where the time goes:");
        println!(
            "    checks alone, one thread          : {:>8.1?} per submission (signature, decoding, schema)",
            check_time
        );
        if let Some((bare_cpu, _)) = bare.cpu {
            // The most the CPU allows were storage, log and receipts free: a bare call plus checks.
            println!(
                "    ratio if only checks were added   : {:.2} (bare CPU per call / (that + checks))",
                bare_cpu.as_secs_f64() / (bare_cpu + check_time).as_secs_f64()
            );
        }
        line("  ledger alone, SQLite", &writer);
        println!("    ratio ledger alone/bare           : {:.2}", writer.per_second / bare.per_second);
        match postgres {
            Some((mut single, mut pair)) => {
                // This process's CPU time leaves out PostgreSQL's own: not shown.
                (single.cpu, pair.cpu) = (None, None);
                line("focalgate Submit, PostgreSQL", &single);
                line("two replicas, one PostgreSQL", &pair);
                println!("  ratio PostgreSQL/SQLite             : {:.2}", single.per_second / gw.per_second);
                println!("  ratio two replicas/one (PostgreSQL) : {:.2}", pair.per_second / single.per_second);
            }
            None => println!("  PostgreSQL: skipped (no server reachable at POSTGRES_TEST_URL)"),
        }
    });
}
