//! The operators' listener, plain HTTP/1.1, apart from the partners' mutual-TLS port and bound
//! to loopback by default (`metrics.listen`):
//!
//! | path       | answer                                                                  |
//! |------------|-------------------------------------------------------------------------|
//! | `/metrics` | Prometheus text format 0.0.4 (see [`crate::telemetry`])                 |
//! | `/readyz`  | 200 when the store answers a read within 2 s; 503 with the reason if not |
//! | `/livez`   | 200 while the process serves                                            |
//!
//! Bounded like everything else: at most [`MAX_CONNECTIONS`] at once (the oldest is closed to
//! make room for a new one), a request's head must arrive within 5 s, and only `GET` (or
//! `HEAD`) of these paths is answered (routed by axum; another method gets 405 with `Allow`).

use std::{sync::Arc, time::Duration};

use axum::extract::State;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::app::Gateway;

/// Most monitoring connections open at once; a new one beyond closes the oldest.
pub const MAX_CONNECTIONS: usize = 32;
/// Longest a readiness probe waits for the store.
const READY_WITHIN: Duration = Duration::from_secs(2);

fn answer(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

const TEXT: &str = "text/plain; charset=utf-8";

/// The listener's routes; `GET` (and so `HEAD`) only, other methods answered 405 with
/// `Allow`.
fn router(gateway: Arc<Gateway>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .route(
            "/livez",
            get(async || answer(StatusCode::OK, TEXT, "alive\n".into())),
        )
        .fallback(async || {
            answer(
                StatusCode::NOT_FOUND,
                TEXT,
                "not found: /metrics, /readyz and /livez are served here\n".into(),
            )
        })
        .with_state(gateway)
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response<Full<Bytes>> {
    let leaf = gateway.control.server_leaf();
    gateway.sample(Some(&leaf)).await;
    answer(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        gateway.telemetry.render(),
    )
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response<Full<Bytes>> {
    match gateway.ready(READY_WITHIN).await {
        Ok(()) => answer(StatusCode::OK, TEXT, "ready\n".into()),
        Err(e) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            format!("not ready: {e}\n"),
        ),
    }
}

/// Serves the monitoring endpoints on `listener` until `stop` turns true; connections under
/// way are then closed.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let routes = router(gateway);
    super::accept_bounded(listener, MAX_CONNECTIONS, stop, |tcp, _| {
        let routes = routes.clone();
        async move {
            let service = hyper_util::service::TowerToHyperService::new(routes);
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        }
    })
    .await;
}
