//! The witness's HTTPS adapter (C2SP tlog-witness v1): `POST /add-checkpoint` and
//! `GET /<hex SHA-256 of the origin>/checkpoint`, over TLS 1.3 with client certificates of
//! the partnership CA. It only translates: every rule is in [`crate::witness`].
//!
//! Served on the gateway's HTTPS layer ([`super::https`]), bounded as the gateway is
//! (`limits`): at most [`MAX_CONNECTIONS`] at once (pending handshakes shed oldest first),
//! a handshake within [`HANDSHAKE_TIMEOUT`], a request head within 5 s, a body of at most
//! [`witness::MAX_BODY`] bytes read within [`BODY_TIMEOUT`]. The state file is written on the
//! blocking pool, so a slow disk holds up no other connection's handshake.
//!
//! Its trust is reread like the gateway's ([`WitnessTls`]): on SIGHUP and when the CA, a CRL,
//! the certificate or its key changes, a reload that fails changing nothing; every request
//! is checked against the trust in force, so a revocation reaches connections already open.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Response, StatusCode, header::CONTENT_TYPE};
use rustls::ServerConfig;
use tokio::net::TcpListener;

use crate::{
    identity::Trust,
    witness::{self, Witness},
};

/// The files the witness's TLS is made of.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The partnership CA (PEM): callers need a certificate it issued.
    pub ca: PathBuf,
    /// Its CRLs.
    pub crl: Vec<PathBuf>,
    /// The witness's certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl TlsFiles {
    fn all(&self) -> Vec<PathBuf> {
        let mut files = vec![self.ca.clone()];
        files.extend(self.crl.iter().cloned());
        files.extend([self.cert.clone(), self.key.clone()]);
        files
    }
}

/// The witness's TLS and the trust it checks callers against, as last loaded.
pub struct WitnessTls {
    files: TlsFiles,
    current: RwLock<(Arc<ServerConfig>, Arc<Trust>)>,
    /// The files as last read.
    prints: Mutex<crate::app::control::Fingerprints>,
}

impl WitnessTls {
    /// Loads `files`, all checked.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, String> {
        let prints = crate::app::control::fingerprints(&files.all());
        let current = Self::build(&files)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(current),
            prints: Mutex::new(prints),
        }))
    }

    fn build(files: &TlsFiles) -> Result<(Arc<ServerConfig>, Arc<Trust>), String> {
        let trust = Trust::load(&files.ca, &files.crl).map_err(|e| e.to_string())?;
        let config = crate::tls::witness_server_config(
            &trust,
            crate::tls::read_chain(&files.cert).map_err(|e| e.to_string())?,
            crate::tls::read_key(&files.key).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        Ok((config, Arc::new(trust)))
    }

    fn current(&self) -> (Arc<ServerConfig>, Arc<Trust>) {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Rereads the files, because of `why`; one that fails is logged and changes nothing.
    pub fn reload(&self, why: &str) -> Result<(), String> {
        let prints = crate::app::control::fingerprints(&self.files.all());
        match Self::build(&self.files) {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = loaded;
                *self.prints.lock().unwrap_or_else(|p| p.into_inner()) = prints;
                tracing::info!(why, "witness trust reloaded");
                Ok(())
            }
            Err(e) => {
                // Not retried until a file changes again.
                *self.prints.lock().unwrap_or_else(|p| p.into_inner()) = prints;
                tracing::error!(why, error = %e, "witness trust not reloaded: the one in force stays");
                Err(e)
            }
        }
    }

    /// Until `stop` turns true: reloads on SIGHUP, and when one of the files changed (looked
    /// at every `every`).
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let hangup = async |hup: &mut Option<tokio::signal::unix::Signal>| match hup {
            Some(h) => h.recv().await,
            None => std::future::pending().await,
        };
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let changed = crate::app::control::fingerprints(&self.files.all())
                        != *self.prints.lock().unwrap_or_else(|p| p.into_inner());
                    if changed {
                        let _ = self.reload("a trust file changed");
                    }
                }
                _ = hangup(&mut hup) => {
                    let _ = self.reload("SIGHUP");
                }
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    }
}

/// Most connections open at once; a new one beyond sheds the oldest pending handshake, so
/// that silent connections cannot keep the hub from being served.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the trust files are looked at for a change.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

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

/// The witness's routes: `POST /add-checkpoint`, `GET /{hex SHA-256 of the origin}/checkpoint`.
fn router(witness: Arc<Witness>) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/add-checkpoint", post(add_checkpoint).fallback(post_only))
        .route("/{origin}/checkpoint", get(latest))
        .fallback(not_found)
        .with_state(witness)
}

async fn post_only() -> Answer {
    text(
        StatusCode::METHOD_NOT_ALLOWED,
        "add-checkpoint takes a POST",
    )
}

async fn not_found() -> Answer {
    text(
        StatusCode::NOT_FOUND,
        "not found: POST /add-checkpoint, GET /<hex SHA-256 of the origin>/checkpoint",
    )
}

/// The checkpoint last cosigned of the log whose origin hashes to `hash` (64 lowercase hex).
async fn latest(
    axum::extract::State(witness): axum::extract::State<Arc<Witness>>,
    axum::extract::Path(hash): axum::extract::Path<String>,
) -> Answer {
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return not_found().await;
    }
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

async fn add_checkpoint(
    axum::extract::State(witness): axum::extract::State<Arc<Witness>>,
    body: axum::body::Body,
) -> Answer {
    let limited = Limited::new(body, witness::MAX_BODY);
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
    answer(
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply.content_type,
        reply.body,
    )
}

/// What a witness's callers may hold: the gateway's rules ([`crate::connections`]) with a
/// witness's sizes — pending handshakes shed oldest first (in all, and per source address),
/// at most 16 connections per member, a request head within 5 s of the handshake, and a
/// connection idle for 60 s closed.
fn limits() -> crate::connections::ConnectionLimits {
    crate::connections::ConnectionLimits {
        max_connections: MAX_CONNECTIONS,
        max_connections_per_member: 16,
        max_pending_handshakes: MAX_CONNECTIONS,
        max_pending_per_address: 16,
        handshake_timeout: HANDSHAKE_TIMEOUT,
        idle_timeout: Duration::from_secs(60),
        head_timeout: Duration::from_secs(5),
    }
}

/// Serves `witness` on `listener` with `tls` until `stop` turns true, on the HTTPS layer
/// ([`super::https`]); connections under way are then closed. Each connection's handshake
/// uses the TLS in force when it arrives, and each request is checked against the trust in
/// force.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<WitnessTls>,
    witness: Arc<Witness>,
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let lists = match crate::schema::CodeLists::builtin() {
        Ok(lists) => Arc::new(lists),
        Err(e) => {
            tracing::error!(error = %e, "the built-in code lists do not load");
            return;
        }
    };
    let source: crate::connections::TlsSource = {
        let tls = tls.clone();
        Arc::new(move || tls.current().0)
    };
    let incoming =
        crate::connections::incoming(listener, source, lists.clone(), limits(), telemetry.clone());
    let surface = super::https::Surface {
        name: "witness",
        http2: false,
        head_timeout: Duration::from_secs(5),
        max_head_bytes: 16 * 1024,
        max_streams: 1,
    };
    let routes = router(witness);
    let handler: super::https::Handler = Arc::new(move |req, peer| {
        let (tls, routes, telemetry) = (tls.clone(), routes.clone(), telemetry.clone());
        // The member the certificate names, for the log line ("-" for the hub's own).
        let member = crate::identity::identify(&peer.leaf, &lists)
            .ok()
            .map(|i| i.member.to_string());
        Box::pin(async move {
            let started = std::time::Instant::now();
            let route = match req.uri().path() {
                "/add-checkpoint" => "add-checkpoint",
                p if p.ends_with("/checkpoint") => "checkpoint",
                _ => "other",
            };
            let now = rustls_pki_types::UnixTime::now();
            let answer = match tls.current().1.check_client_cert(&peer.leaf, now) {
                Ok(()) => super::https::route(&routes, req, peer).await,
                Err(e) => {
                    let mut r = text(
                        StatusCode::FORBIDDEN,
                        &format!("the client certificate is no longer accepted: {e}"),
                    );
                    r.headers_mut().insert(
                        hyper::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                    r.map(|body| body.map_err(|never| match never {}).boxed_unsync())
                }
            };
            if let Some(t) = &telemetry {
                t.witness_served(
                    route,
                    answer.status().as_u16(),
                    started.elapsed().as_secs_f64(),
                );
            }
            super::https::Handled { answer, member }
        })
    });
    super::https::serve(incoming, surface, handler, stop).await;
}

/// Serves `telemetry`'s exposition at `GET /metrics` on `listener`, plain HTTP/1.1 (the
/// witness operator's, as the gateway's metrics listener), until `stop` turns true.
pub async fn serve_metrics(
    listener: TcpListener,
    telemetry: Arc<crate::telemetry::Telemetry>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let routes = axum::Router::new().route(
        "/metrics",
        axum::routing::get(async move || {
            answer(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                telemetry.render(),
            )
        }),
    );
    super::accept_bounded(listener, 8, stop, |tcp, _| {
        let routes = routes.clone();
        async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(
                    hyper_util::rt::TokioIo::new(tcp),
                    hyper_util::service::TowerToHyperService::new(routes),
                )
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
    let tls = WitnessTls::load(TlsFiles {
        ca: pki.join("ca/ca.pem"),
        crl: vec![pki.join("ca/crl.pem")],
        cert: pki.join("server/server.pem"),
        key: pki.join("server/server.key"),
    })?;
    tokio::spawn(tls.clone().watch(WATCH_EVERY, stop.clone()));
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
            None,
            stop.clone(),
        ));
        running.push(((*member).to_owned(), at, task));
    }
    Ok(running)
}
