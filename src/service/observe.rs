//! The one tower layer every RPC runs under. It records how each RPC ended — method, caller,
//! the final `grpc-status` read from the response headers or, for a stream, its trailers;
//! latency; messages each way — writes the request log line and feeds the metrics. It also
//! identifies the caller once for the handlers, enforces the deadline (the server's, or the
//! client's `grpc-timeout` if sooner) so that a timeout is counted as `DEADLINE_EXCEEDED`,
//! and refuses an over-long request message with `RESOURCE_EXHAUSTED` as it reads the
//! message's length prefix, before tonic's own limit would answer `OUT_OF_RANGE`.
//!
//! ```text
//!  request ─▶ identify (leaf certificate) ─▶ started ─▶ [body: count messages, refuse oversize]
//!          ─▶ services ─▶ response headers (grpc-status?) ─▶ [body: count messages]
//!          ─▶ trailers (grpc-status) ─▶ handled{code}, latency, log line
//!  dropped before the end ─▶ CANCELLED (DEADLINE_EXCEEDED once past the deadline)
//! ```

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::{Buf, Bytes};
use http_body::{Body as _, Frame};
use tonic::{Status, body::Body};

use crate::{
    app::Gateway,
    identity::Caller,
    telemetry::{CODES, RpcSeries, Telemetry},
};

/// The caller the layer identified, for the handlers (absent when identification failed: the
/// handler then identifies again, to report why).
#[derive(Clone, Debug)]
pub(super) struct Identified(pub Caller);

/// What the layer needs.
struct Shared {
    gateway: Arc<Gateway>,
    telemetry: Arc<Telemetry>,
    /// Largest request message.
    max_message_bytes: usize,
    /// Longest time an RPC may take until its response headers.
    timeout: Duration,
}

/// The layer over the gRPC routes.
#[derive(Clone)]
pub(super) struct ObserveLayer(Arc<Shared>);

impl ObserveLayer {
    pub(super) fn new(
        gateway: Arc<Gateway>,
        telemetry: Arc<Telemetry>,
        max_message_bytes: usize,
        timeout: Duration,
    ) -> Self {
        Self(Arc::new(Shared {
            gateway,
            telemetry,
            max_message_bytes,
            timeout,
        }))
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            shared: self.0.clone(),
        }
    }
}

/// The service the layer makes.
#[derive(Clone)]
pub(super) struct Observe<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// `grpc-timeout` (gRPC over HTTP/2: up to 8 digits and a unit).
fn client_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The `grpc-status` of a header map, as an index into [`CODES`].
fn status_of(headers: &http::HeaderMap) -> Option<usize> {
    let code: usize = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    Some(code.min(CODES.len() - 1))
}

impl<S> tower::Service<http::Request<Body>> for Observe<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let shared = self.shared.clone();
        let started = Instant::now();
        let series = shared.telemetry.rpc(req.uri().path());
        series.started();
        let leaf = crate::connections::peer_leaf(req.extensions());
        let caller = shared.gateway.identify(leaf.as_deref()).ok();
        // In flight on its connection until the record is finished.
        let in_flight = req
            .extensions()
            .get::<crate::connections::TlsInfo>()
            .map(|i| i.get_ref().activity.start());
        let timeout =
            client_timeout(req.headers()).map_or(shared.timeout, |t| t.min(shared.timeout));
        let record = Record {
            member: caller.as_ref().map(|c| c.member().to_string()),
            series,
            started,
            deadline: started + timeout,
            received: Arc::new(AtomicU64::new(0)),
            _in_flight: in_flight,
        };
        let (mut parts, body) = req.into_parts();
        if let Some(caller) = caller {
            parts.extensions.insert(Identified(caller));
        }
        let body = Body::new(Counted {
            inner: body,
            frames: Framing::default(),
            limit: Some(shared.max_message_bytes),
            messages: record.received.clone(),
        });
        let req = http::Request::from_parts(parts, body);
        // The clone is ready only after poll_ready: call the one that was polled.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = inner.call(req);
        Box::pin(async move {
            let mut pending = Pending(Some(record));
            match tokio::time::timeout(timeout, future).await {
                Err(_) => {
                    if let Some(r) = pending.0.take() {
                        r.finish(4, 0);
                    }
                    Ok(Status::deadline_exceeded(format!(
                        "the gateway did not answer within {} ms",
                        timeout.as_millis()
                    ))
                    .into_http())
                }
                Ok(Err(e)) => {
                    if let Some(r) = pending.0.take() {
                        r.finish(2, 0);
                    }
                    Err(e)
                }
                Ok(Ok(response)) => {
                    let record = pending.0.take();
                    let code = status_of(response.headers());
                    let (parts, body) = response.into_parts();
                    Ok(http::Response::from_parts(
                        parts,
                        Body::new(Observed {
                            inner: body,
                            record,
                            code,
                            frames: Framing::default(),
                            sent: 0,
                        }),
                    ))
                }
            }
        })
    }
}

/// One RPC under way.
struct Record {
    member: Option<String>,
    series: Arc<RpcSeries>,
    started: Instant,
    deadline: Instant,
    /// Request messages read so far.
    received: Arc<AtomicU64>,
    /// The RPC counts as in flight on its connection while this is held.
    _in_flight: Option<crate::connections::InFlight>,
}

impl Record {
    /// The RPC ended with status `code` (an index into [`CODES`]) after `sent` messages.
    fn finish(self, code: usize, sent: u64) {
        let elapsed = self.started.elapsed();
        self.series.handled(code, elapsed.as_secs_f64());
        self.series.received(self.received.load(Ordering::Relaxed));
        self.series.sent(sent);
        let latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
        let m = &self.series.method;
        tracing::info!(
            target: "focalgate::request",
            member = self.member.as_deref().unwrap_or("-"),
            method = %m.method,
            service = %m.service,
            code = CODES[code],
            latency_ms,
            "request"
        );
    }

    /// What an RPC dropped before its end is: cancelled by the client, or past its deadline.
    fn abandoned(&self) -> usize {
        if Instant::now() >= self.deadline {
            4
        } else {
            1
        }
    }
}

/// Finishes the record of a response future dropped before it answered.
struct Pending(Option<Record>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            let code = r.abandoned();
            r.finish(code, 0);
        }
    }
}

/// The gRPC length-prefixed framing of a body, followed across data frames: 1 byte of flags,
/// 4 bytes of length (big-endian), then the message.
#[derive(Default)]
struct Framing {
    /// Bytes of the current prefix seen so far.
    prefix: [u8; 5],
    have: usize,
    /// Bytes of the current message still to come.
    remaining: u64,
}

impl Framing {
    /// Reads `data`; returns the lengths of the messages whose prefixes it completes.
    fn feed(&mut self, mut data: &[u8], mut on_message: impl FnMut(u64)) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(data.len() as u64);
                self.remaining -= take;
                data = &data[take as usize..];
                continue;
            }
            let take = (5 - self.have).min(data.len());
            self.prefix[self.have..self.have + take].copy_from_slice(&data[..take]);
            self.have += take;
            data = &data[take..];
            if self.have == 5 {
                self.have = 0;
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                self.remaining = u64::from(len);
                on_message(u64::from(len));
            }
        }
    }
}

/// A request body whose messages are counted, and refused past the size limit.
struct Counted {
    inner: Body,
    frames: Framing,
    /// `None` once a refusal was sent.
    limit: Option<usize>,
    messages: Arc<AtomicU64>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let Some(limit) = self.limit else {
            return Poll::Ready(None);
        };
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            let mut largest = 0;
            let mut count = 0;
            let me = &mut *self;
            me.frames.feed(data.chunk(), |len| {
                count += 1;
                largest = largest.max(len);
            });
            me.messages.fetch_add(count, Ordering::Relaxed);
            if largest > limit as u64 {
                me.limit = None;
                return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                    "the request message is {largest} bytes, larger than this gateway accepts ({limit} bytes)"
                )))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.limit.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body whose messages are counted and whose end records the RPC.
struct Observed {
    inner: Body,
    record: Option<Record>,
    /// The status from the headers, or, once read, from the trailers.
    code: Option<usize>,
    frames: Framing,
    sent: u64,
}

impl Observed {
    fn finish(&mut self, code: usize) {
        if let Some(r) = self.record.take() {
            r.finish(code, self.sent);
        }
    }
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let me = &mut *self;
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let mut n = 0;
                    me.frames.feed(data.chunk(), |_| n += 1);
                    me.sent += n;
                } else if let Some(trailers) = frame.trailers_ref() {
                    me.code = status_of(trailers).or(me.code);
                }
            }
            // The body failed: tonic ends the stream with that status.
            Poll::Ready(Some(Err(status))) => me.code = Some(status.code() as usize),
            Poll::Ready(None) => {
                let code = me.code.unwrap_or(2);
                me.finish(code);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        // A body dropped before its end: the client went away (or the deadline passed), unless
        // the status was already known and only the end of the stream was not polled.
        let code = match (&self.record, self.code) {
            (None, _) => return,
            (Some(_), Some(code)) if self.inner.is_end_stream() => code,
            (Some(r), _) => r.abandoned(),
        };
        self.finish(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_followed_across_chunks() {
        let mut stream = Vec::new();
        for len in [0u32, 3, 70_000, 1] {
            stream.push(0);
            stream.extend_from_slice(&len.to_be_bytes());
            stream.extend(std::iter::repeat_n(7u8, len as usize));
        }
        for chunk in [1, 2, 4, 5, 6, 1000, stream.len()] {
            let mut f = Framing::default();
            let mut seen = Vec::new();
            for part in stream.chunks(chunk) {
                f.feed(part, |len| seen.push(len));
            }
            assert_eq!(seen, [0, 3, 70_000, 1], "chunks of {chunk}");
        }
    }

    #[test]
    fn grpc_timeouts_are_read_as_the_spec_writes_them() {
        let t = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(
                "grpc-timeout",
                http::HeaderValue::from_str(v).expect("value"),
            );
            client_timeout(&h)
        };
        assert_eq!(t("5S"), Some(Duration::from_secs(5)));
        assert_eq!(t("250m"), Some(Duration::from_millis(250)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("99999999n"), Some(Duration::from_nanos(99_999_999)));
        assert_eq!(t("123456789S"), None, "at most 8 digits");
        assert_eq!(t("5x"), None);
        assert_eq!(t("S"), None);
    }
}
