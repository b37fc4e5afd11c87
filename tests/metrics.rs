//! The operators' listener as Prometheus and a load balancer reach it: `/metrics` scraped
//! with curl after real calls over mutual TLS, the exposition checked by `promtool check
//! metrics` (Debian's prometheus package), `/readyz` and `/livez`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::HashMap, net::SocketAddr, process::Command};

use common::{Gateway, Signer, body, seizure};
use focalgate::{
    proto::{ListMembersRequest, ListSubmissionsRequest},
    rpc::admin_client::AdminClient,
};
use tonic::Code;

/// `curl -s -w '%{http_code}'` of `path` on the monitoring listener: (status, body).
fn curl(at: SocketAddr, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://{at}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let (body, code) = text.rsplit_once('\n').expect("a status line");
    (
        code.trim().parse().expect("an HTTP status"),
        body.to_owned(),
    )
}

/// The samples of an exposition, by series (name and labels, as written).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the series named `name` whose labels include every one of `labels`.
fn value(samples: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(series, _)| {
            series
                .strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| *v)
}

fn rpc<'a>(service: &'a str, method: &'a str, kind: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("grpc_service", service),
        ("grpc_method", method),
        ("grpc_type", kind),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_every_rpc_by_its_final_status_and_promtool_parses_them() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let kaz = Signer::of("KAZ");
    let mut client = gw.client("KAZ").await;
    for year in ["2021", "2022"] {
        client
            .submit(kaz.seal(&body(
                "SEIZURES",
                "KAZ",
                year,
                vec![seizure("HEROIN", "KG", "1.5", 2)],
            )))
            .await
            .unwrap();
    }
    let bad = client
        .submit(kaz.seal(&body(
            "SEIZURES",
            "KAZ",
            "2023",
            vec![seizure("NOT_A_DRUG", "KG", "1", 1)],
        )))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let mut admin = AdminClient::new(gw.channel("KAZ").await);
    let denied = admin.list_members(ListMembersRequest {}).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut listed = client
        .list_submissions(ListSubmissionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while listed.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 2);
    // A stream whose status comes in its trailers only after its messages: the layer reads
    // it there. Give the listing's end a moment to be recorded.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let (status, text) = tokio::task::block_in_place(|| curl(gw.monitoring, "/metrics"));
    assert_eq!(status, 200, "{text}");
    let s = samples(&text);
    let submit = rpc("focalgate.v1.Submissions", "Submit", "unary");
    let list = rpc(
        "focalgate.v1.Submissions",
        "ListSubmissions",
        "server_stream",
    );
    let members = rpc("focalgate.v1.Admin", "ListMembers", "unary");
    let with = |labels: &[(&'static str, &'static str)], code: &'static str| {
        let mut l = labels.to_vec();
        l.push(("grpc_code", code));
        l
    };
    let mut problems = Vec::new();
    let mut expect = |what: &str, got: Option<f64>, want: f64| {
        if got != Some(want) {
            problems.push(format!("{what}: {got:?}, expected {want}"));
        }
    };
    expect(
        "Submit started",
        value(&s, "grpc_server_started_total", &submit),
        3.0,
    );
    expect(
        "Submit OK",
        value(&s, "grpc_server_handled_total", &with(&submit, "OK")),
        2.0,
    );
    expect(
        "Submit InvalidArgument",
        value(
            &s,
            "grpc_server_handled_total",
            &with(&submit, "InvalidArgument"),
        ),
        1.0,
    );
    expect(
        "Submit Internal, created up front",
        value(&s, "grpc_server_handled_total", &with(&submit, "Internal")),
        0.0,
    );
    expect(
        "Submit latencies",
        value(&s, "grpc_server_handling_seconds_count", &submit),
        3.0,
    );
    expect(
        "Submit messages received",
        value(&s, "grpc_server_msg_received_total", &submit),
        3.0,
    );
    expect(
        "ListMembers PermissionDenied",
        value(
            &s,
            "grpc_server_handled_total",
            &with(&members, "PermissionDenied"),
        ),
        1.0,
    );
    expect(
        "ListSubmissions OK (from the trailers)",
        value(&s, "grpc_server_handled_total", &with(&list, "OK")),
        1.0,
    );
    expect(
        "ListSubmissions messages sent",
        value(&s, "grpc_server_msg_sent_total", &list),
        2.0,
    );
    expect(
        "GetSubmission, never called, created up front",
        value(
            &s,
            "grpc_server_started_total",
            &rpc("focalgate.v1.Submissions", "GetSubmission", "unary"),
        ),
        0.0,
    );
    expect("log size", value(&s, "focalgate_log_size", &[]), 2.0);
    expect("store up", value(&s, "focalgate_store_up", &[]), 1.0);
    expect(
        "handshake refusals, created up front",
        value(
            &s,
            "focalgate_connections_refused_total",
            &[("reason", "max_connections_per_member")],
        ),
        0.0,
    );
    let ca_left = value(
        &s,
        "focalgate_certificate_expiry_seconds",
        &[("kind", "ca")],
    );
    if ca_left.is_none_or(|d| d < 30.0 * 86_400.0) {
        problems.push(format!("the demo CA's seconds to expiry: {ca_left:?}"));
    }
    if value(
        &s,
        "focalgate_certificate_expiry_seconds",
        &[("kind", "server")],
    )
    .is_none()
    {
        problems.push("no expiry of the server certificate".into());
    }
    if value(&s, "focalgate_connections_open", &[]).is_none_or(|n| n < 2.0) {
        problems.push("open connections: fewer than the two this test holds".into());
    }
    if value(&s, "focalgate_ledger_batch_size_count", &[]).is_none_or(|n| n < 1.0) {
        problems.push("no ledger batch recorded".into());
    }
    if value(&s, "focalgate_log_checkpoint_age_seconds", &[]).is_none_or(|a| a > 60.0) {
        problems.push("no recent checkpoint age".into());
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in the exposition:\n{}\n\n{text}",
        problems.len(),
        problems.join("\n")
    );

    // Prometheus' own parser and linter.
    tokio::task::block_in_place(|| common::promtool_accepts(&text));

    assert_eq!(
        tokio::task::block_in_place(|| curl(gw.monitoring, "/livez")).0,
        200
    );
    assert_eq!(
        tokio::task::block_in_place(|| curl(gw.monitoring, "/readyz")),
        (200, "ready\n".to_owned())
    );
    assert_eq!(
        tokio::task::block_in_place(|| curl(gw.monitoring, "/nothing")).0,
        404
    );
    // Graceful shutdown waits for open connections.
    drop((client, admin, listed));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_turns_false_when_the_store_is_unreachable() {
    if !common::postgres() {
        eprintln!("on PostgreSQL only: the SQLite store is a file the gateway always reaches");
        return;
    }
    // The gateway reaches PostgreSQL through a TCP relay this test cuts.
    let dir = common::tempdir();
    let url = common::store_url(&dir.path().join("data"));
    let target: SocketAddr = {
        let after = url.split_once('@').expect("user@host").1;
        let hostport = after.split_once('/').expect("/database").0;
        tokio::net::lookup_host(hostport)
            .await
            .unwrap()
            .next()
            .unwrap()
    };
    let relay = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let relaying = tokio::spawn(async move {
        let mut pipes = tokio::task::JoinSet::new();
        loop {
            let (mut inbound, _) = relay.accept().await.unwrap();
            pipes.spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let mut settings = common::settings(&dir.path().join("data"));
    settings.store.url = Some(url.replacen(&target.to_string(), &relay_addr.to_string(), 1));
    settings.store.connect_timeout_ms = 1_000;
    let gw = Gateway::start_with(settings).await;
    assert_eq!(
        tokio::task::block_in_place(|| curl(gw.monitoring, "/readyz")),
        (200, "ready\n".to_owned())
    );

    // Cut: the relay stops, and every connection through it closes.
    relaying.abort();
    let _ = relaying.await;
    let (status, text) = tokio::task::block_in_place(|| curl(gw.monitoring, "/readyz"));
    assert_eq!(status, 503, "{text}");
    assert!(text.starts_with("not ready: store unavailable"), "{text}");
    let (_, metrics) = tokio::task::block_in_place(|| curl(gw.monitoring, "/metrics"));
    assert_eq!(
        value(&samples(&metrics), "focalgate_store_up", &[]),
        Some(0.0)
    );
    assert_eq!(
        tokio::task::block_in_place(|| curl(gw.monitoring, "/livez")).0,
        200,
        "alive, though not ready"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_servers_timeout_is_counted_as_deadline_exceeded() {
    let dir = common::tempdir();
    let mut settings = common::settings(dir.path());
    // No durable commit takes less than a millisecond.
    settings.limits.request_timeout_ms = 1;
    let gw = Gateway::start_with(settings).await;
    let mut client = gw.client("KAZ").await;
    let late = client
        .submit(Signer::of("KAZ").seal(&body(
            "SEIZURES",
            "KAZ",
            "2021",
            vec![seizure("HEROIN", "KG", "1.5", 2)],
        )))
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late:?}");
    let (_, text) = tokio::task::block_in_place(|| curl(gw.monitoring, "/metrics"));
    let mut labels = rpc("focalgate.v1.Submissions", "Submit", "unary").to_vec();
    labels.push(("grpc_code", "DeadlineExceeded"));
    assert_eq!(
        value(&samples(&text), "grpc_server_handled_total", &labels),
        Some(1.0),
        "{text}"
    );
    drop(client);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sockets_never_lock_a_probe_out() {
    let dir = common::tempdir();
    let gw = Gateway::start(&dir.path().join("data")).await;
    // More silent connections than the listener holds, each opened before the probe.
    let mut idle = Vec::new();
    for _ in 0..focalgate::service::monitoring::MAX_CONNECTIONS + 16 {
        idle.push(tokio::net::TcpStream::connect(gw.monitoring).await.unwrap());
    }
    for _ in 0..3 {
        assert_eq!(
            tokio::task::block_in_place(|| curl(gw.monitoring, "/readyz")),
            (200, "ready\n".to_owned()),
            "the oldest idle connection makes room for the probe"
        );
        idle.push(tokio::net::TcpStream::connect(gw.monitoring).await.unwrap());
    }
    drop(idle);
    gw.stop().await;
}

/// A request head trickled a byte at a time to the metrics listener is closed once its head
/// timeout (5 s) is past, however long the trickle would go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_head_is_closed_on_the_metrics_listener() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = common::tempdir();
    let gw = Gateway::start(&dir.path().join("data")).await;
    let tcp = tokio::net::TcpStream::connect(gw.monitoring).await.unwrap();
    let (mut read, mut write) = tcp.into_split();
    let head: Vec<u8> = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b'a', 300))
        .collect();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            for b in head {
                if write.write_all(&[b]).await.is_err() {
                    return;
                }
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    };
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    writer.abort();
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        closed.is_ok() && sent < 200,
        "closed while trickling ({sent} bytes sent)"
    );
    gw.stop().await;
}
