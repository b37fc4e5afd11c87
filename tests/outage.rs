//! PostgreSQL stopped and started under load: calls fail with UNAVAILABLE within their
//! deadline while it is down, the gateway recovers by itself, and every receipted submission
//! is there afterwards. Runs in the PostgreSQL suite (`tests/run`), alone in its test binary
//! because it stops the database server: with `pg_ctlcluster` (Debian's PostgreSQL), or the
//! commands in POSTGRES_STOP_COMMAND and POSTGRES_START_COMMAND.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use focalgate::rpc::submissions_client::SubmissionsClient;
use std::{
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{Gateway, Signer, body, seizure};
use focalgate::proto::GetSubmissionRequest;
use tonic::Code;

/// Stops and starts the PostgreSQL server; starts it again if dropped while stopped.
struct Server {
    stop: String,
    start: String,
    stopped: bool,
}

impl Server {
    fn find() -> Option<Self> {
        if let (Ok(stop), Ok(start)) = (
            std::env::var("POSTGRES_STOP_COMMAND"),
            std::env::var("POSTGRES_START_COMMAND"),
        ) {
            return Some(Self {
                stop,
                start,
                stopped: false,
            });
        }
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max()?;
        let ctl = format!("pg_ctlcluster --skip-systemctl-redirect {version} main");
        Command::new("pg_ctlcluster").arg("--help").output().ok()?;
        Some(Self {
            stop: format!("{ctl} stop -m fast"),
            start: format!("{ctl} start"),
            stopped: false,
        })
    }

    fn run(command: &str) {
        let status = Command::new("sh").args(["-c", command]).status().unwrap();
        assert!(status.success(), "{command}");
    }

    fn stop(&mut self) {
        Self::run(&self.stop);
        self.stopped = true;
    }

    fn start(&mut self) {
        Self::run(&self.start);
        self.stopped = false;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.stopped {
            Self::run(&self.start);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_rides_out_a_database_restart() {
    if !common::postgres() {
        eprintln!("stops PostgreSQL: runs in the PostgreSQL suite (tests/run)");
        return;
    }
    let Some(mut server) = Server::find() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must be able to stop and start PostgreSQL (pg_ctlcluster, or POSTGRES_STOP_COMMAND and POSTGRES_START_COMMAND)"
        );
        eprintln!(
            "skipped: no way to stop PostgreSQL here (set POSTGRES_STOP_COMMAND and POSTGRES_START_COMMAND)"
        );
        return;
    };
    let dir = common::tempdir();
    let mut settings = common::settings(&dir.path().join("data"));
    settings.store.statement_timeout_ms = 2_000;
    settings.store.connect_timeout_ms = 1_000;
    let gw = Gateway::start_with(settings).await;

    // Four clients submit without pause, each call with a 3-second deadline.
    let deadline = Duration::from_secs(3);
    let done = Arc::new(AtomicBool::new(false));
    let receipts = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut channels = Vec::new();
    for who in ["KAZ", "KGZ", "TJK", "UZB"] {
        channels.push((who, gw.channel(who).await));
    }
    let clients: Vec<_> = channels
        .into_iter()
        .enumerate()
        .map(|(c, (who, channel))| {
            let (done, receipts, failures) = (done.clone(), receipts.clone(), failures.clone());
            async move {
                let mut client = SubmissionsClient::new(channel);
                let signer = Signer::of(who);
                let mut i = 0u32;
                while !done.load(Ordering::Relaxed) {
                    i += 1;
                    let mut b = body(
                        "SEIZURES",
                        who,
                        &(1980 + i % 40).to_string(),
                        vec![seizure("OPIUM", "KG", &format!("{c}.{i}"), 1)],
                    );
                    b.prepared_at.as_mut().unwrap().nanos = i as i32;
                    let mut request = tonic::Request::new(signer.seal(&b));
                    request.set_timeout(deadline);
                    let started = Instant::now();
                    match client.submit(request).await {
                        Ok(r) => receipts.lock().unwrap().push(r.into_inner()),
                        Err(s) => {
                            failures.lock().unwrap().push((s.code(), started.elapsed()));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        })
        .map(tokio::spawn)
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = receipts.lock().unwrap().len();
    tokio::task::block_in_place(|| server.stop());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = failures.lock().unwrap().len();
    tokio::task::block_in_place(|| server.start());
    // The gateway recovers by itself: submissions succeed again.
    let recovered = Instant::now();
    let after_restart = receipts.lock().unwrap().len();
    while receipts.lock().unwrap().len() < after_restart + 20 {
        assert!(
            recovered.elapsed() < Duration::from_secs(30),
            "no recovery after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    assert!(before > 0, "submissions succeeded before the outage");
    assert!(during > 0, "submissions failed during the outage");
    let failures = failures.lock().unwrap().clone();
    for (code, took) in &failures {
        assert_eq!(*code, Code::Unavailable, "{failures:?}");
        assert!(*took <= deadline + Duration::from_millis(500), "{took:?}");
    }

    // Every receipted submission is there, with the receipt it was given.
    let receipts = receipts.lock().unwrap().clone();
    let mut client = SubmissionsClient::new(gw.channel("auditor").await);
    for r in &receipts {
        let stored = client
            .get_submission(GetSubmissionRequest {
                submission_id: r.submission_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stored.receipt.as_ref(), Some(r));
    }
    eprintln!(
        "{} receipted submissions, {} refused with UNAVAILABLE during the outage",
        receipts.len(),
        failures.len()
    );
    gw.stop().await;
}
