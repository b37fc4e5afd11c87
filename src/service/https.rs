//! The one HTTPS layer the HTTP surfaces run on: the SDMX REST API of the gateway and the
//! witness a partner runs (and whatever surface comes next).
//!
//! Connections come from [`crate::connections::incoming`], as the gRPC listener's do: the
//! pending-handshake caps and shedding, the per-address and per-member caps, the deadline
//! from accept to a complete request head, the idle deadline, and over-cap answers in the
//! negotiated protocol. Each connection is then served by hyper over HTTP/1.1, and over
//! HTTP/2 where the surface speaks it. A request is in flight on its connection from its head
//! until its answer has been sent (a streamed answer included) or abandoned; it is answered
//! by the surface's [`Handler`] with the peer's leaf certificate, to identify the caller on
//! every request (a revocation reaches connections already open); and it is written as one
//! log line, `<surface> request`, with the peer, member, method, path, status and time.
//!
//! ```text
//! incoming (connections) ─▶ hyper (HTTP/1.1, HTTP/2) ─▶ in flight ─▶ Handler ─▶ log line
//!                                                         └─ until the answer is sent ─┘
//! ```

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
use hyper::{Request, Response, body::Frame, body::Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_stream::StreamExt;

use crate::connections::{InFlight, Incoming as Connections};

/// An answer's body: whole, or streamed; a stream that fails midway ends with an error, so
/// that the connection is reset rather than the answer looking complete.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// An answer.
pub type Answer = Response<Body>;

/// How a surface is served.
#[derive(Clone, Copy, Debug)]
pub struct Surface {
    /// Its name in the log (`SDMX`, `witness`).
    pub name: &'static str,
    /// Whether it speaks HTTP/2 beside HTTP/1.1.
    pub http2: bool,
    /// Longest an HTTP/1.1 request head may take once the previous answer is sent.
    pub head_timeout: Duration,
    /// Most bytes of an HTTP/1.1 request head.
    pub max_head_bytes: usize,
    /// Most requests in progress on one HTTP/2 connection.
    pub max_streams: u32,
}

/// What a surface's handler knows of the connection a request came on.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The TCP peer.
    pub addr: Option<SocketAddr>,
    /// Its leaf certificate (empty when it sent none, which the handshake does not allow).
    pub leaf: Arc<[u8]>,
}

/// What a handler answered, and the member it identified (for the log line).
pub struct Handled {
    /// The answer.
    pub answer: Answer,
    /// The caller, when identified.
    pub member: Option<String>,
}

/// The answer of an axum `router` to `req`, as the layer sends it; the request carries its
/// [`Peer`] as an extension.
pub async fn route(router: &axum::Router, mut req: Request<Incoming>, peer: Peer) -> Answer {
    use tower::ServiceExt;
    req.extensions_mut().insert(peer);
    match router.clone().oneshot(req).await {
        Ok(answer) => answer.map(|body| body.map_err(std::io::Error::other).boxed_unsync()),
        Err(never) => match never {},
    }
}

/// A surface's requests, answered.
pub type Handler = Arc<
    dyn Fn(Request<Incoming>, Peer) -> Pin<Box<dyn Future<Output = Handled> + Send>> + Send + Sync,
>;

/// Serves `surface` on the connections of `incoming` with `handler` until `stop` turns true;
/// connections under way are then closed.
pub async fn serve(
    mut incoming: Connections,
    surface: Surface,
    handler: Handler,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let next = tokio::select! {
            next = incoming.next() => next,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let Some(Ok(stream)) = next else {
            if next.is_none() {
                break;
            }
            continue;
        };
        let (tcp, tls) = stream.get_ref();
        let peer = Peer {
            addr: tcp.peer_addr(),
            leaf: tls
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().into())
                .unwrap_or_default(),
        };
        let activity = tcp.activity().clone();
        let handler = handler.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                // In flight from its head until its answer is sent or abandoned.
                let in_flight = activity.start();
                let (handler, peer) = (handler.clone(), peer.clone());
                async move {
                    let started = Instant::now();
                    let method = req.method().clone();
                    let path: String = req.uri().path().chars().take(200).collect();
                    let from = peer.addr;
                    let handled = handler(req, peer).await;
                    let status = handled.answer.status().as_u16();
                    tracing::info!(
                        target: "focalgate::request",
                        surface = surface.name,
                        peer = ?from,
                        member = handled.member.as_deref().unwrap_or("-"),
                        method = %method,
                        path = %path,
                        status,
                        took_ms = started.elapsed().as_millis() as u64,
                        "{} request",
                        surface.name
                    );
                    Ok::<_, Infallible>(handled.answer.map(|body| {
                        Sending {
                            body,
                            _in_flight: in_flight,
                        }
                        .boxed_unsync()
                    }))
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(surface.head_timeout)
                .max_buf_size(surface.max_head_bytes.max(8192));
            if surface.http2 {
                builder
                    .http2()
                    .max_header_list_size(64 * 1024)
                    .max_concurrent_streams(surface.max_streams);
            } else {
                builder = builder.http1_only();
            }
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

/// A response body that keeps its request in flight on its connection until it is sent
/// (or abandoned): an answer streaming to a slow client is a request under way.
struct Sending {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Sending {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
