//! What peers can hold, over real TCP and TLS on loopback: silent connections that never send a
//! byte, idle connections, one member opening many, the open-file limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::Gateway;
use focalgate::{proto::ListSubmissionsRequest, tls::IdentityDir};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// Keeps `n` TCP connections from `from` open to `to`, each silent, reopening every one the
/// gateway closes, until `stop`. Returns how many it opened in all.
fn silent_flood(
    from: &str,
    to: SocketAddr,
    n: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let from: SocketAddr = format!("{from}:0").parse().unwrap();
    tokio::spawn(async move {
        let opened = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (stop, opened) = (stop.clone(), opened.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let socket = TcpSocket::new_v4().unwrap();
                        socket.bind(from).unwrap();
                        let Ok(mut tcp) = socket.connect(to).await else {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        opened.fetch_add(1, Ordering::Relaxed);
                        // Hold it, silent, until the gateway closes it or the flood stops.
                        let mut byte = [0u8; 1];
                        while !stop.load(Ordering::Relaxed) {
                            let read = tcp.read(&mut byte);
                            match tokio::time::timeout(Duration::from_millis(100), read).await {
                                Err(_) => {}                     // still open
                                Ok(Ok(0)) | Ok(Err(_)) => break, // closed: reopen
                                Ok(Ok(_)) => {}
                            }
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        opened.load(Ordering::Relaxed)
    })
}

/// One `ListSubmissions` call as `who` on a connection of its own: handshake and call, timed.
async fn list_on_a_new_connection(gw: &Gateway, who: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let call = async {
        let mut client =
            focalgate::rpc::submissions_client::SubmissionsClient::new(gw.channel(who).await);
        client
            .list_submissions(ListSubmissionsRequest::default())
            .await
            .map(|_| ())
    };
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(status)) => Err(format!("{status:?}")),
        Err(_) => Err("no answer within 5 s".into()),
    }
}

/// 300 connections that never send a byte, reopened as the gateway sheds them, from another
/// address (127.0.0.2): well-behaved clients on fresh connections keep being answered, each
/// long before the 10 s a silent handshake may last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_never_stall_the_gateway() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let flood = silent_flood("127.0.0.2", gw.addr, 300, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut slowest = Duration::ZERO;
    let mut failed = Vec::new();
    for _ in 0..11 {
        match list_on_a_new_connection(&gw, "KAZ").await {
            Ok(took) => slowest = slowest.max(took),
            Err(e) => failed.push(e),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let opened = flood.await.unwrap();
    eprintln!(
        "silent flood: {opened} connections opened; 11 calls, slowest {} ms",
        slowest.as_millis()
    );
    assert!(
        failed.is_empty(),
        "{} of 11 calls failed: {failed:?}",
        failed.len()
    );
    assert!(opened >= 300, "{opened}");
    assert!(slowest < Duration::from_secs(3), "slowest call {slowest:?}");
    gw.stop().await;
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS connection as `who` that the gateway serves: the handshake done, the HTTP/2 preface
/// sent, then silent. `None` if the gateway closed it instead: at once, or after telling why
/// with GOAWAY (whose debug data must then name the limit).
async fn try_tls_as(gw: &Gateway, who: &str) -> Option<Tls> {
    let config = IdentityDir::new(common::pki().join(who))
        .rustls_client()
        .unwrap();
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .ok()?;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .ok()?;
    tls.flush().await.ok()?;
    // Frames until the gateway goes quiet (served) or says GOAWAY or closes (refused).
    loop {
        let mut header = [0u8; 9];
        match tokio::time::timeout(Duration::from_millis(500), tls.read_exact(&mut header)).await {
            Err(_) => return Some(tls),
            Ok(Err(_)) => return None,
            Ok(Ok(_)) => {}
        }
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; len];
        tls.read_exact(&mut payload).await.ok()?;
        if header[3] == 0x7 {
            let why = String::from_utf8_lossy(&payload[8..]).into_owned();
            assert!(why.contains("limits.max_connections_per_member"), "{why}");
            return None;
        }
    }
}

async fn tls_as(gw: &Gateway, who: &str) -> Tls {
    try_tls_as(gw, who).await.expect("a TLS connection")
}

/// Whether the gateway closes `from` within `within`: reads (and drops) what it sends until the
/// stream ends.
async fn closed_within(from: &mut (impl tokio::io::AsyncRead + Unpin), within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, from.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// A connection on which nothing moves is closed after the idle timeout, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let dir = common::tempdir();
    let mut settings = common::settings(dir.path());
    settings.limits.request_timeout_ms = 1_000;
    settings.limits.idle_timeout_ms = 2_000;
    let gw = Gateway::start_with(settings).await;
    let started = Instant::now();
    let mut idle = tls_as(&gw, "KAZ").await;
    assert!(closed_within(&mut idle, Duration::from_secs(10)).await);
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(1_900),
        "closed after {after:?}"
    );
    // A connection in use is not idle.
    let channel = gw.channel("KAZ").await;
    for _ in 0..5 {
        let mut client =
            focalgate::rpc::submissions_client::SubmissionsClient::new(channel.clone());
        client
            .list_submissions(ListSubmissionsRequest::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    gw.stop().await;
}

/// One member may hold `max_connections_per_member`; past `max_connections` in all, new
/// connections are closed at once and those held stay; closing frees the places.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_cannot_take_every_connection() {
    let dir = common::tempdir();
    let mut settings = common::settings(dir.path());
    settings.limits.max_connections_per_member = 4;
    settings.limits.max_connections = 9;
    let gw = Gateway::start_with(settings).await;

    let mut kaz = Vec::new();
    for _ in 0..4 {
        kaz.push(tls_as(&gw, "KAZ").await);
    }
    assert!(
        try_tls_as(&gw, "KAZ").await.is_none(),
        "KAZ's fifth is closed"
    );
    // A gRPC client's call fails: GOAWAY ENHANCE_YOUR_CALM is RESOURCE_EXHAUSTED when the
    // client reads it before sending, CANCELLED when its request was already on the way (the
    // GOAWAY's reason is checked on the wire above).
    let call = async {
        let channel = tonic::transport::Endpoint::from_shared(gw.url())
            .unwrap()
            .tls_config(common::identity_tls(&common::pki().join("KAZ")))
            .unwrap()
            .connect()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        focalgate::rpc::submissions_client::SubmissionsClient::new(channel)
            .list_submissions(ListSubmissionsRequest::default())
            .await
    };
    let status = call.await.expect_err("KAZ holds all it may");
    assert!(
        matches!(
            status.code(),
            tonic::Code::ResourceExhausted | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
    for c in &mut kaz {
        assert!(!closed_within(c, Duration::from_millis(50)).await);
    }

    // Another member is served meanwhile; with 4 + 4 held, the total (9) leaves one place, and
    // past it new connections are closed at once while the held ones stay.
    let mut uzb = Vec::new();
    for _ in 0..4 {
        uzb.push(tls_as(&gw, "UZB").await);
    }
    list_on_a_new_connection(&gw, "TJK").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // TJK's connection is closed
    let mut ninth = tls_as(&gw, "KGZ").await;
    assert!(
        try_tls_as(&gw, "KGZ").await.is_none(),
        "past the total, a new connection is closed"
    );
    assert!(
        !closed_within(&mut ninth, Duration::from_millis(50)).await,
        "the ninth stays"
    );

    drop((kaz, uzb, ninth));
    tokio::time::sleep(Duration::from_millis(300)).await;
    list_on_a_new_connection(&gw, "KAZ").await.unwrap();
    gw.stop().await;
}

/// Under an open-file limit below what the connection cap needs, the gateway says so at start.
#[test]
fn a_low_open_file_limit_is_reported_at_start() {
    use std::io::BufRead;
    let dir = common::tempdir();
    let port = common::free_port();
    let config = dir.path().join("focalgate.toml");
    common::write_config(&config, port, &dir.path().join("data"), &common::pki(), "");
    let mut child = std::process::Command::new("bash")
        .args([
            "-c",
            &format!(
                "ulimit -n 512 && exec {} serve --config {}",
                common::BIN,
                config.display()
            ),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut warned = None;
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("open-file limit") {
            warned = Some(line.clone());
        }
        if line.contains("focalgate is serving") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let warned = warned.expect("a warning about the open-file limit");
    assert!(
        warned.contains("limit=512") && warned.contains("needed=4224"),
        "{warned}"
    );
}

/// A TLS connection to `to` as the identity `who`, offering `alpn`.
async fn tls_with_alpn(to: SocketAddr, who: &str, alpn: &[u8]) -> Tls {
    let mut config = IdentityDir::new(common::pki().join(who))
        .rustls_client()
        .unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(to).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Writes `head` a byte every 100 ms on `tls` until the gateway closes it; whether it did
/// within `within`, and how much of the head was sent by then.
async fn trickle_until_closed(tls: Tls, head: Vec<u8>, within: Duration) -> (bool, usize) {
    let (mut read, mut write) = tokio::io::split(tls);
    let sent = Arc::new(AtomicUsize::new(0));
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            for b in head {
                if write.write_all(&[b]).await.is_err() || write.flush().await.is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let closed = closed_within(&mut read, within).await;
    writer.abort();
    (closed, sent.load(Ordering::Relaxed))
}

/// An HTTP/2 connection preface and empty SETTINGS, then a HEADERS frame of `len` bytes on
/// stream 1 whose payload never completes a head in time.
fn h2_head(len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut start = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    start.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    start.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, 0x1, 0x4]);
    start.extend_from_slice(&[0, 0, 0, 1]);
    (start, vec![0x82; len]) // indexed ":method: GET", over and over
}

/// On the gRPC listener and the SDMX API alike, over HTTP/2 and HTTP/1.1: a connection that
/// completes TLS and then says nothing, and one that trickles its request head a byte at a
/// time, are closed once the head timeout is past — bytes arriving do not keep them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickled_request_heads_are_closed_on_every_listener() {
    let dir = common::tempdir();
    let mut settings = common::settings(dir.path());
    settings.tls.handshake_timeout_ms = 1_000;
    settings.limits.head_timeout_ms = 1_000;
    let gw = Gateway::start_with(settings).await;
    let listeners = [
        ("gRPC, h2", gw.addr, &b"h2"[..]),
        ("SDMX, h2", gw.sdmx, &b"h2"[..]),
        ("SDMX, HTTP/1.1", gw.sdmx, &b"http/1.1"[..]),
    ];
    for (name, addr, alpn) in listeners {
        let started = Instant::now();
        let mut silent = tls_with_alpn(addr, "KAZ", alpn).await;
        assert!(
            closed_within(&mut silent, Duration::from_secs(10)).await,
            "{name}: a silent connection is closed"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{name}: not before the head timeout ({:?})",
            started.elapsed()
        );

        let mut tls = tls_with_alpn(addr, "KAZ", alpn).await;
        let trickled = if alpn == b"h2" {
            let (start, rest) = h2_head(200);
            tls.write_all(&start).await.unwrap();
            rest
        } else {
            b"GET /sdmx/structure/codelist/FOCALGATE/CL_DRUG HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
                .iter()
                .copied()
                .chain(std::iter::repeat_n(b'a', 200))
                .collect()
        };
        let (closed, sent) = trickle_until_closed(tls, trickled, Duration::from_secs(10)).await;
        assert!(
            closed,
            "{name}: a trickled head is closed ({sent} bytes sent)"
        );
        assert!(
            sent < 100,
            "{name}: closed while it still trickled ({sent} bytes)"
        );
    }
    // A connection that asks is served as before.
    list_on_a_new_connection(&gw, "KAZ").await.unwrap();
    gw.stop().await;
}

/// A member over its cap on an HTTP/1.1 connection is answered in HTTP/1.1: 503 with
/// `Retry-After` and the reason, never HTTP/2 frames it cannot read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_cap_on_http1_a_member_is_told_in_http1() {
    let dir = common::tempdir();
    let mut settings = common::settings(dir.path());
    settings.limits.max_connections_per_member = 1;
    let gw = Gateway::start_with(settings).await;
    let mut first = tls_with_alpn(gw.sdmx, "analyst", b"http/1.1").await;
    first
        .write_all(
            b"GET /sdmx/structure/codelist/FOCALGATE/CL_DRUG HTTP/1.1\r\nHost: localhost\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = [0u8; 12];
    first.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "the first is served");

    let mut second = tls_with_alpn(gw.sdmx, "analyst", b"http/1.1").await;
    let _ = second
        .write_all(
            b"GET /sdmx/structure/codelist/FOCALGATE/CL_DRUG HTTP/1.1\r\nHost: localhost\r\n\r\n",
        )
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nRetry-After: "), "{answer}");
    assert!(
        answer.contains("limits.max_connections_per_member"),
        "{answer}"
    );
    drop(first);
    gw.stop().await;
}

/// A partner's witness is served on the same layer: a silent connection and a trickled
/// HTTP/1.1 head are closed (the witness gives a head 5 s after a 10 s handshake), while the
/// witness still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_closes_silent_and_trickled_heads_too() {
    use focalgate::checkpoint::{KeyType, NoteSigner};
    let dir = common::tempdir();
    let log = NoteSigner::from_seed("focalgate.example/log", KeyType::Ed25519, &[7; 32]).unwrap();
    let (w, stop) = common::serve_witness(dir.path(), 1, log.verifier(), 0).await;
    let addr: SocketAddr = w
        .url
        .unwrap()
        .trim_start_matches("https://")
        .parse()
        .unwrap();
    let mut silent = tls_with_alpn(addr, "KAZ", b"http/1.1").await;
    let trickled = tls_with_alpn(addr, "UZB", b"http/1.1").await;
    let head: Vec<u8> = b"POST /add-checkpoint HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b'a', 400))
        .collect();
    let (silent_closed, (trickle_closed, sent)) = tokio::join!(
        closed_within(&mut silent, Duration::from_secs(25)),
        trickle_until_closed(trickled, head, Duration::from_secs(25)),
    );
    assert!(silent_closed, "a silent connection is closed");
    assert!(
        trickle_closed && sent < 300,
        "a trickled head is closed ({sent} bytes)"
    );
    let mut asked = tls_with_alpn(addr, "KAZ", b"http/1.1").await;
    asked
        .write_all(b"GET /0000000000000000000000000000000000000000000000000000000000000000/checkpoint HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut status = [0u8; 12];
    asked.read_exact(&mut status).await.unwrap();
    assert_eq!(&status, b"HTTP/1.1 404");
    let _ = stop.send(true);
}
