//! The witness's HTTPS adapter (C2SP tlog-witness v1): `POST /add-checkpoint` and
//! `GET /<hex SHA-256 of the origin>/checkpoint`, over TLS 1.3 with client certificates of
//! the partnership CA. It only translates: every rule is in [`crate::witness`].
//!
//! Bounded like the gateway: at most [`MAX_CONNECTIONS`] at once (the oldest closed to make
//! room), a handshake within [`HANDSHAKE_TIMEOUT`], headers within 5 s, a body of at most
//! [`witness::MAX_BODY`] bytes read within [`BODY_TIMEOUT`]. The state file is written on the
//! blocking pool, so a slow disk holds up no other connection's handshake.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header::CONTENT_TYPE};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::witness::{self, Witness};

/// Most connections open at once; a new one beyond closes the oldest, so that silent
/// connections cannot keep the hub from being served.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, content_type: &str, body: String) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

fn text(status: StatusCode, body: &str) -> Answer {
    answer(status, "text/plain; charset=utf-8", format!("{body}\n"))
}

async fn route(witness: &Arc<Witness>, peer: SocketAddr, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::POST, "/add-checkpoint") => add_checkpoint(witness, peer, req).await,
        (&Method::GET, p) if let Some(hash) = checkpoint_path(p) => {
            let (hash, witness) = (hash.to_owned(), witness.clone());
            match tokio::task::spawn_blocking(move || witness.latest(&hash)).await {
                Ok(Ok(Some(note))) => answer(StatusCode::OK, "text/plain; charset=utf-8", note),
                Ok(Ok(None)) => text(StatusCode::NOT_FOUND, "no checkpoint of that log cosigned"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "witness state");
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the witness state is unavailable",
                    )
                }
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "the witness failed"),
            }
        }
        (_, "/add-checkpoint") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "add-checkpoint takes a POST",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: POST /add-checkpoint, GET /<hex SHA-256 of the origin>/checkpoint",
        ),
    }
}

/// The origin hash of `/<64 lowercase hex>/checkpoint`.
fn checkpoint_path(path: &str) -> Option<&str> {
    let hash = path.strip_prefix('/')?.strip_suffix("/checkpoint")?;
    (hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then_some(hash)
}

async fn add_checkpoint(
    witness: &Arc<Witness>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Answer {
    let limited = Limited::new(req.into_body(), witness::MAX_BODY);
    let body = match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("the body is over {} bytes, or broken", witness::MAX_BODY),
            );
        }
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            );
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let reply = witness.answer(body.to_vec(), now).await;
    tracing::info!(%peer, status = reply.status, "add-checkpoint");
    answer(
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply.content_type,
        reply.body,
    )
}

/// Serves `witness` on `listener` with `tls` until `stop` turns true; connections under way
/// are then closed.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    witness: Arc<Witness>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    super::accept_bounded(listener, MAX_CONNECTIONS, stop, |tcp, peer| {
        let (acceptor, witness) = (acceptor.clone(), witness.clone());
        async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "witness handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(move |req| {
                let witness = witness.clone();
                async move { Ok::<_, Infallible>(route(&witness, peer, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    })
    .await;
}

/// Serves the demo's witnesses (all five, or the members in `only`) for the log `log`, each
/// on its port of 127.0.0.1 with the demo server certificate, its state in `dir/<member>`,
/// until `stop` turns true: each member, where it listens, and its task.
pub async fn demo(
    dir: &std::path::Path,
    log: &crate::checkpoint::NoteVerifier,
    only: &[String],
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<(String, SocketAddr, tokio::task::JoinHandle<()>)>, String> {
    use crate::pki::demo::{WITNESS_PORT, WITNESSES};
    let pki = std::path::Path::new(crate::config::DEMO_PKI);
    let trust = crate::identity::Trust::load(&pki.join("ca/ca.pem"), &[pki.join("ca/crl.pem")])
        .map_err(|e| e.to_string())?;
    let tls = crate::tls::witness_server_config(
        &trust,
        crate::tls::read_chain(&pki.join("server/server.pem")).map_err(|e| e.to_string())?,
        crate::tls::read_key(&pki.join("server/server.key")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let mut running = Vec::new();
    for (i, member) in WITNESSES.iter().enumerate() {
        if !only.is_empty() && !only.iter().any(|m| m == member) {
            continue;
        }
        let witness = Witness::open(
            &pki.join("witnesses").join(member),
            &dir.join(member),
            vec![log.clone()],
        )?;
        let at = SocketAddr::from(([127, 0, 0, 1], WITNESS_PORT + i as u16));
        let listener = TcpListener::bind(at)
            .await
            .map_err(|e| format!("the demo witness of {member} cannot listen on {at}: {e}"))?;
        tracing::info!(%at, witness = %witness.verifier(), "witness listening");
        let task = tokio::spawn(serve(
            listener,
            tls.clone(),
            Arc::new(witness),
            stop.clone(),
        ));
        running.push(((*member).to_owned(), at, task));
    }
    Ok(running)
}
