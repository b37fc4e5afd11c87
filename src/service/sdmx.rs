//! The SDMX REST API (translation only; see [`crate::sdmx::rest`] for what a request means):
//! HTTPS on its own listener (`sdmx.listen`), HTTP/1.1 and HTTP/2, under the gRPC listener's
//! trust: TLS 1.3, client certificates of the partnership CA and its CRL, the log's
//! revocations, and the same accept loop and connection limits. Every data answer comes from
//! the `Statistics.Query` use-case — roles, sharing rules, embargoes, small-cell suppression,
//! and the access trail recorded before the answer leaves.
//!
//! Its own port rather than the gRPC one: the gRPC listener keeps its HTTP/2-only server and
//! its tuned limits untouched, a flaw in HTTP/1.1 handling cannot reach submissions, and an
//! operator can expose the read API to analysts' networks alone.
//!
//! Every data answer names the checkpoint it was computed at: headers `Focalgate-Tree-Size`
//! and `Focalgate-Root` (base64, as in the checkpoint), and in SDMX-ML the signed checkpoint
//! itself as the header's Source.

use std::{io::Write, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header};
use tokio::net::TcpListener;

use crate::{
    app::{
        ApiError, Gateway,
        statistics::{Aggregates, AnswerHeader, Keep, KeepCells, Window},
    },
    identity::Caller,
    receipt::{format_timestamp, timestamp_from_millis},
    schema::{
        NOT_APPLICABLE, format_millionths,
        structure::{AggregateKeys, Component, Flow, transit_path},
    },
    sdmx::{
        data::{self, CsvWriter, KeySelect, Obs, StructureSpecificWriter},
        rest::{self, DataRequest, Format, RestError, Route},
        structure_json, structure_message,
    },
    statistics,
    tls::{Listener, ServerTls},
};

/// The path under which the API answers: `https://host:port/sdmx/…`.
pub const ROOT: &str = "/sdmx/";

/// Most HTTP/2 requests in progress on one connection: each may be a query or a download, and
/// a member's connections are capped too (`limits.max_connections_per_member`).
const MAX_STREAMS: u32 = 16;

use super::https::{self, Answer};

fn full(bytes: impl Into<Bytes>) -> https::Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn text(status: u16, message: &str) -> Answer {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = format!(
        "{} {}: {message}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    );
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A domain error as its HTTP status ([`super::error::outcome`]), the fields named by their
/// SDMX REST parameters; what the caller may not know stays in the log.
fn refusal(e: &ApiError, caller: Option<&Caller>) -> Answer {
    let o = super::error::outcome(e, &|f| rest::parameter(f));
    let member = caller.map(|c| c.member().to_string());
    super::error::log_detail("SDMX", "GET", member.as_deref(), &o);
    let mut r = text(o.http, &o.message);
    if let Some(after) = o.retry_after {
        let seconds = after.as_secs().max(1).to_string();
        if let Ok(v) = http::HeaderValue::from_str(&seconds) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

/// Serves the API on `listener` until `stop` turns true, on the HTTPS layer
/// ([`super::https`]); connections under way are then closed.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    gateway: Arc<Gateway>,
    limits: crate::connections::ConnectionLimits,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let incoming = crate::connections::incoming(
        listener,
        crate::connections::gateway_tls(tls, Listener::Http),
        gateway.lists.clone(),
        limits,
        Some(gateway.telemetry.clone()),
    );
    let surface = https::Surface {
        name: "SDMX",
        http2: true,
        head_timeout: limits.head_timeout,
        max_head_bytes: rest::MAX_TARGET_BYTES * 4,
        max_streams: MAX_STREAMS,
    };
    let handler: https::Handler = Arc::new(move |req, peer| {
        let gateway = gateway.clone();
        Box::pin(async move {
            // Each request: a revocation takes effect on open connections too.
            let caller = gateway.identify((!peer.leaf.is_empty()).then_some(&*peer.leaf));
            let member = caller.as_ref().ok().map(|c| c.member().to_string());
            https::Handled {
                answer: handle(&gateway, caller, req).await,
                member,
            }
        })
    });
    https::serve(incoming, surface, handler, stop).await;
}

/// Answers one request, and counts it in the API's metrics.
async fn handle(
    gateway: &Gateway,
    caller: Result<Caller, ApiError>,
    req: Request<Incoming>,
) -> Answer {
    let started = std::time::Instant::now();
    let resource = resource(req.uri().path());
    let answer = answer(gateway, caller, &req).await;
    gateway.telemetry.sdmx_request(
        resource,
        answer.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    answer
}

/// What a path asks for, as the metrics name it: `structure`, `data` (aggregates),
/// `download` (the submitted observations) or `other`.
fn resource(path: &str) -> &'static str {
    let Some(rest) = path.strip_prefix(ROOT) else {
        return "other";
    };
    let flow = match rest.strip_prefix("data/dataflow/") {
        Some(r) => r.split('/').nth(1),
        None => rest.strip_prefix("data/").and_then(|r| r.split('/').next()),
    };
    match flow {
        Some(f) if f.contains("_AGG") => "data",
        Some(_) => "download",
        None => "structure",
    }
}

async fn answer(
    gateway: &Gateway,
    caller: Result<Caller, ApiError>,
    req: &Request<Incoming>,
) -> Answer {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(405, "the SDMX REST API is read-only: GET");
        r.headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return refusal(&e, None),
    };
    let Some(path) = req.uri().path().strip_prefix(ROOT) else {
        return text(404, &format!("the SDMX REST API is under {ROOT}"));
    };
    let route = match rest::route(path, req.uri().query(), &gateway.lists) {
        Ok(r) => r,
        Err(e) => return rest_error(&e),
    };
    let headers = req.headers();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = match rest::negotiate(&route, accept) {
        Ok(f) => f,
        Err(e) => return rest_error(&e),
    };
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let now = time::OffsetDateTime::now_utc();
    let mut r = match route {
        Route::Structure { selection, detail } => body(
            if format == Format::StructureJson {
                structure_json(&gateway.lists, &selection, detail, now)
            } else {
                structure_message(&gateway.lists, &selection, detail, now)
            },
            format,
            gzip,
        ),
        Route::Data(request) if matches!(request.flow, Flow::Submissions(_)) => {
            match download(gateway, &caller, *request, format, gzip, now).await {
                Ok(r) => r,
                Err(r) => return r,
            }
        }
        Route::Data(request) => {
            match data_answer(gateway, &caller, &request, format, gzip, now).await {
                Ok(r) => r,
                Err(r) => return r,
            }
        }
    };
    if req.method() == Method::HEAD {
        *r.body_mut() = full(Bytes::new());
    }
    r
}

fn rest_error(e: &RestError) -> Answer {
    text(e.status, &e.message)
}

fn body(text: String, format: Format, gzip: bool) -> Answer {
    let mut r = if gzip {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let bytes = match z.write_all(text.as_bytes()).and_then(|()| z.finish()) {
            Ok(b) => b,
            Err(_) => return self::text(500, "compression failed"),
        };
        let mut r = Response::new(full(bytes));
        r.headers_mut().insert(
            header::CONTENT_ENCODING,
            http::HeaderValue::from_static("gzip"),
        );
        r
    } else {
        Response::new(full(text))
    };
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(format.media_type()),
    );
    r.headers_mut().insert(
        header::VARY,
        http::HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    r
}

/// An answer that holds nothing (`204 No Content`), naming the checkpoint it was computed at.
fn empty(tree_size: u64, checkpoint: &str) -> Answer {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    checkpoint_headers(&mut r, tree_size, checkpoint);
    r
}

/// Names the checkpoint an answer was computed at, in its headers.
fn checkpoint_headers(r: &mut Answer, tree_size: u64, checkpoint: &str) {
    for (name, value) in [
        ("focalgate-tree-size", tree_size.to_string()),
        ("focalgate-root", root_of(checkpoint)),
    ] {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            r.headers_mut().insert(name, v);
        }
    }
}

/// Submitted observations as observations of `SEIZURES` or `ROUTES`: `_Z` for an optional
/// dimension left out.
struct Submitted {
    components: Vec<Component>,
}

impl Submitted {
    fn new(flow: Flow) -> Self {
        Self {
            components: flow.components(),
        }
    }

    fn key(&self, o: &statistics::observations::Observation) -> Vec<String> {
        let coded = |v: &str| {
            if v.is_empty() {
                NOT_APPLICABLE.to_owned()
            } else {
                v.to_owned()
            }
        };
        self.components
            .iter()
            .filter(|c| c.role.is_dimension())
            .map(|c| match c.id {
                "FREQ" => o.freq.code().to_owned(),
                "REF_AREA" => o.ref_area.clone(),
                "DRUG" => o.drug.clone(),
                "ORIGIN_AREA" => coded(&o.origin_area),
                "DEPARTURE_AREA" => coded(&o.departure_area),
                "TRANSIT_PATH" => transit_path(&o.transit_area),
                "DESTINATION_AREA" => coded(&o.destination_area),
                "TRANSPORT_MODE" => coded(&o.transport_mode),
                "UNIT_MEASURE" => coded(&o.unit_measure),
                "TIME_PERIOD" => o.period.clone(),
                _ => String::new(),
            })
            .collect()
    }

    fn obs(&self, o: &statistics::observations::Observation) -> Obs {
        let values = self
            .components
            .iter()
            .filter(|c| !c.role.is_dimension())
            .map(|c| match c.id {
                "OBS_VALUE" => o
                    .quantity
                    .map(|q| format_millionths(i128::from(q)))
                    .unwrap_or_default(),
                "N_SEIZURES" => o.n_seizures.map(|n| n.to_string()).unwrap_or_default(),
                "OBS_STATUS" => o.obs_status.clone(),
                "CONF_STATUS" => o.conf_status.clone(),
                "EMBARGO_TIME" => o
                    .embargo_ms
                    .and_then(|ms| format_timestamp(&timestamp_from_millis(ms)))
                    .unwrap_or_default(),
                "COMMENT" => o.comment.clone(),
                _ => String::new(),
            })
            .collect();
        Obs {
            key: self.key(o),
            values,
        }
    }
}

/// Bytes of an answer written before they go to the client; a slow client holds at most a few
/// of these.
const CHUNK: usize = 64 * 1024;

/// Longest a client may leave a part of its answer unread before the answer is abandoned,
/// and its room among the queries under way given back.
const SEND_DEADLINE: Duration = crate::service::statistics::SEND_DEADLINE;

/// The observations of `SEIZURES` or `ROUTES`, streamed: read from the index a page at a
/// time, written and sent as they are read, so that a full download holds a page and a few
/// chunks in memory whatever its size.
async fn download(
    gateway: &Gateway,
    caller: &Caller,
    request: DataRequest,
    format: Format,
    gzip: bool,
    now: time::OffsetDateTime,
) -> Result<Answer, Answer> {
    let flow = request.flow;
    if format == Format::SdmxJson {
        // SDMX-JSON lists every value before the observations that use them: not a stream.
        return Err(text(
            406,
            "the observations as submitted are streamed as SDMX-CSV 2.0 or SDMX-ML 2.1; \
             SDMX-JSON 2.0 is served for the aggregates",
        ));
    }
    if request.include_history && format != Format::StructureSpecific {
        // SDMX-CSV has no place for the validity of a dataset.
        return Err(text(
            406,
            "includeHistory=true is answered in SDMX-ML 2.1 structure-specific data \
             (application/vnd.sdmx.structurespecificdata+xml;version=2.1): one dataset per \
             revision, with its validFromDate and validToDate",
        ));
    }
    let select = KeySelect::new(flow, &request.select);
    let keep: Keep = (!select.is_empty()).then(|| {
        let submitted = Submitted::new(flow);
        Arc::new(move |o: &statistics::observations::Observation| select.keeps(&submitted.key(o)))
            as _
    });
    let window = Window {
        offset: request.offset,
        limit: request.limit,
    };
    let mut download = gateway
        .download(
            caller,
            &request.query,
            request.updated_after_ms,
            request.include_history,
            keep,
            window,
        )
        .await
        .map_err(|e| refusal(&e, Some(caller)))?;
    let (tree_size, checkpoint) = (download.tree_size, download.checkpoint.clone());
    let named = checkpoint.clone();
    if download.total == 0 {
        return Ok(empty(tree_size, &checkpoint));
    }
    let options = request.options();
    let lists = gateway.lists.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    tokio::spawn(async move {
        let (open, close) = match format {
            Format::SdmxCsv => (
                CsvWriter::new(flow, options, &lists).header(),
                String::new(),
            ),
            _ => StructureSpecificWriter::frame(
                flow,
                tree_size,
                &checkpoint,
                now,
                &options,
                request.include_history,
            ),
        };
        let mut out = Chunks::new(tx, gzip);
        if !out.write(open).await {
            return;
        }
        let csv = CsvWriter::new(flow, options, &lists);
        let xml = StructureSpecificWriter::new(flow, options);
        let submitted = Submitted::new(flow);
        // With includeHistory: whether a revision's dataset is open.
        let mut dataset_open = false;
        loop {
            let taken = match download.next_page().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "SDMX download failed midway");
                    out.fail().await;
                    return;
                }
            };
            let mut text = String::new();
            // With the history, one run per revision, each in its own dataset: a page never
            // splits a revision (but where the window cuts), so every run is a new one.
            let runs: Vec<&[statistics::observations::Observation]> = if request.include_history {
                taken.chunk_by(|a, b| a.revision == b.revision).collect()
            } else {
                vec![&taken]
            };
            for run in runs.into_iter().filter(|r| !r.is_empty()) {
                if request.include_history {
                    if dataset_open {
                        text.push_str(StructureSpecificWriter::DATASET_END);
                    }
                    let revision = run[0].revision;
                    text.push_str(&StructureSpecificWriter::dataset(
                        flow,
                        revision.valid_from_ms,
                        revision.valid_to_ms,
                    ));
                    dataset_open = true;
                }
                let obs: Vec<Obs> = run.iter().map(|o| submitted.obs(o)).collect();
                text.push_str(&match format {
                    Format::SdmxCsv => csv.rows(&obs),
                    _ => xml.rows(&obs),
                });
            }
            if !out.write(text).await {
                return; // the client went away
            }
        }
        let close = if dataset_open {
            StructureSpecificWriter::DATASET_END.to_owned() + &close
        } else {
            close
        };
        let _ = out.write(close).await;
        out.finish().await;
    });
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed_unsync();
    Ok(streamed(body, format, gzip, tree_size, &named))
}

/// A streamed answer in `format`, gzip-compressed when `gzip`, naming the checkpoint it is
/// of.
fn streamed(
    body: https::Body,
    format: Format,
    gzip: bool,
    tree_size: u64,
    checkpoint: &str,
) -> Answer {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(format.media_type()),
    );
    r.headers_mut().insert(
        header::VARY,
        http::HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    if gzip {
        r.headers_mut().insert(
            header::CONTENT_ENCODING,
            http::HeaderValue::from_static("gzip"),
        );
    }
    checkpoint_headers(&mut r, tree_size, checkpoint);
    r
}

/// Text as the bytes sent, gzip-compressed on request, a part at a time.
struct Encoder(Option<flate2::write::GzEncoder<Vec<u8>>>);

impl Encoder {
    fn new(gzip: bool) -> Self {
        Self(gzip.then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())))
    }

    /// The bytes ready to send once `text` is added.
    fn push(&mut self, text: &str) -> std::io::Result<Vec<u8>> {
        match &mut self.0 {
            Some(z) => {
                z.write_all(text.as_bytes())?;
                Ok(std::mem::take(z.get_mut()))
            }
            None => Ok(text.as_bytes().to_vec()),
        }
    }

    /// The last bytes (gzip's trailer).
    fn finish(self) -> std::io::Result<Vec<u8>> {
        self.0.map_or(Ok(Vec::new()), |z| z.finish())
    }
}

/// Where a streamed answer's frames go: each is sent once the channel has room, and an
/// answer the client leaves unread for [`SEND_DEADLINE`] is abandoned.
type Frames = tokio::sync::mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>;

/// Sends `bytes`; `false` once the client is gone or stopped reading.
async fn send(tx: &Frames, bytes: Vec<u8>) -> bool {
    bytes.is_empty()
        || tx
            .send_timeout(Ok(Frame::data(Bytes::from(bytes))), SEND_DEADLINE)
            .await
            .is_ok()
}

/// Ends the stream with an error: the client sees a broken answer, never a short one.
async fn fail(tx: &Frames) {
    let _ = tx
        .send_timeout(
            Err(std::io::Error::other("the answer could not be completed")),
            SEND_DEADLINE,
        )
        .await;
}

/// The frames of a streamed download: text gathered into chunks of about [`CHUNK`] bytes.
struct Chunks {
    tx: Frames,
    encoder: Encoder,
    pending: Vec<u8>,
}

impl Chunks {
    fn new(tx: Frames, gzip: bool) -> Self {
        Self {
            tx,
            encoder: Encoder::new(gzip),
            pending: Vec::new(),
        }
    }

    /// Adds `text`, sending what is ready; `false` once the client is gone.
    async fn write(&mut self, text: String) -> bool {
        match self.encoder.push(&text) {
            Ok(bytes) => self.pending.extend_from_slice(&bytes),
            Err(_) => return false,
        }
        if self.pending.len() < CHUNK {
            return true;
        }
        send(&self.tx, std::mem::take(&mut self.pending)).await
    }

    /// Sends the rest (and gzip's trailer).
    async fn finish(mut self) {
        match self.encoder.finish() {
            Ok(rest) => self.pending.extend_from_slice(&rest),
            Err(_) => return fail(&self.tx).await,
        }
        let _ = send(&self.tx, self.pending).await;
    }

    async fn fail(&mut self) {
        fail(&self.tx).await;
    }
}

/// The root hash of a signed checkpoint, base64 as the checkpoint writes it; empty when there
/// is none (an empty log).
fn root_of(note: &str) -> String {
    use base64::Engine;
    crate::checkpoint::note::parse(note.as_bytes())
        .ok()
        .and_then(|n| crate::checkpoint::Checkpoint::parse_body(&n.text).ok())
        .map(|c| base64::engine::general_purpose::STANDARD.encode(c.root.as_bytes()))
        .unwrap_or_default()
}

/// An aggregate answer: computed by the `Statistics.Query` use-case, which keeps the cells
/// the request's key selects and cuts its window before any is written; then written and
/// sent a page of cells at a time, off the runtime, as the client reads (SDMX-JSON, which
/// lists every value before the observations, is written whole, off the runtime too).
async fn data_answer(
    gateway: &Gateway,
    caller: &Caller,
    request: &DataRequest,
    format: Format,
    gzip: bool,
    now: time::OffsetDateTime,
) -> Result<Answer, Answer> {
    let flow = request.flow;
    let keep: KeepCells = (!request.select.is_empty()).then(|| {
        let select = request.select.clone();
        Box::new(move |h: &AnswerHeader| {
            let keys = AggregateKeys::new(flow.dataflow(), &h.dimensions, &h.freq, &h.time_range);
            let select = KeySelect::new(flow, &select);
            Box::new(move |c: &statistics::Cell| {
                select.keeps(&keys.key(&c.key, &c.unit_measure, c.total))
            }) as Box<dyn Fn(&statistics::Cell) -> bool + Send>
        }) as _
    });
    let window = Window {
        offset: request.offset,
        limit: request.limit,
    };
    let answer = gateway
        .query(caller, &request.query, keep, window)
        .await
        .map_err(|e| refusal(&e, Some(caller)))?;
    let (tree_size, checkpoint) = (answer.header.tree_size, answer.header.checkpoint.clone());
    if answer.header.rows == 0 {
        return Ok(empty(tree_size, &checkpoint));
    }
    let text = AggregateText::new(
        answer,
        flow,
        format,
        request.options(),
        gateway.lists.clone(),
        now,
    );
    Ok(streamed(
        stream(text, gzip),
        format,
        gzip,
        tree_size,
        &checkpoint,
    ))
}

/// An aggregate answer being written: the opening, the cells a page at a time, the closing.
struct AggregateText {
    answer: Aggregates,
    keys: AggregateKeys,
    flow: Flow,
    format: Format,
    options: data::Options,
    lists: Arc<crate::schema::CodeLists>,
    prepared: time::OffsetDateTime,
    /// Whether the series are gathered yet (SDMX-ML in series writes each series once).
    arranged: bool,
    /// The opening, until written.
    open: Option<String>,
    /// The closing, until written.
    close: Option<String>,
}

impl AggregateText {
    fn new(
        answer: Aggregates,
        flow: Flow,
        format: Format,
        options: data::Options,
        lists: Arc<crate::schema::CodeLists>,
        prepared: time::OffsetDateTime,
    ) -> Self {
        let h = &answer.header;
        let keys = AggregateKeys::new(flow.dataflow(), &h.dimensions, &h.freq, &h.time_range);
        let (open, close) = match format {
            Format::SdmxCsv => (
                CsvWriter::new(flow, options, &lists).header(),
                String::new(),
            ),
            Format::SdmxJson => (String::new(), String::new()),
            _ => StructureSpecificWriter::frame(
                flow,
                h.tree_size,
                &h.checkpoint,
                prepared,
                &options,
                false,
            ),
        };
        Self {
            answer,
            keys,
            flow,
            format,
            options,
            lists,
            prepared,
            arranged: false,
            open: Some(open),
            close: Some(close),
        }
    }

    /// The next page of the answer, as observations of its aggregate dataflow.
    fn page(&mut self) -> Option<Vec<Obs>> {
        let rows: Vec<_> = self
            .answer
            .next_page()?
            .into_iter()
            .map(super::statistics::aggregate_row)
            .collect();
        Some(data::aggregate_observations(self.flow, &self.keys, &rows))
    }

    /// The next part of the text; `None` once it is all written. CPU work: call it off the
    /// runtime.
    fn next(&mut self) -> Option<String> {
        if self.format == Format::SdmxJson {
            self.open.take()?;
            let mut obs = Vec::new();
            while let Some(page) = self.page() {
                obs.extend(page);
            }
            let h = &self.answer.header;
            return Some(data::sdmx_json(
                self.flow,
                h.tree_size,
                &h.checkpoint,
                &obs,
                &self.options,
                &self.lists,
                self.prepared,
            ));
        }
        if let Some(open) = self.open.take() {
            return Some(open);
        }
        if self.format == Format::StructureSpecific && self.options.series && !self.arranged {
            self.arranged = true;
            // Each series together, in key order without TIME_PERIOD; a stable sort keeps
            // its periods in order.
            let time = self
                .answer
                .header
                .dimensions
                .iter()
                .position(|d| d == "TIME_PERIOD");
            self.answer.arrange(|cells, order| {
                order.sort_by(|&a, &b| cells.cmp_without(time, a as usize, b as usize));
            });
        }
        if let Some(obs) = self.page() {
            return Some(match self.format {
                Format::SdmxCsv => CsvWriter::new(self.flow, self.options, &self.lists).rows(&obs),
                _ => StructureSpecificWriter::new(self.flow, self.options).rows(&obs),
            });
        }
        self.close.take()
    }
}

/// The body of `text`, written a part at a time on its answer's worker and sent as the
/// client reads.
fn stream(text: AggregateText, gzip: bool) -> https::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    tokio::spawn(async move {
        let worker = text.answer.worker();
        let mut state = (text, Encoder::new(gzip));
        loop {
            let step = worker
                .run(move || {
                    let (mut text, mut encoder) = state;
                    let bytes = text.next().map(|t| encoder.push(&t)).transpose();
                    (text, encoder, bytes)
                })
                .await;
            let (text, encoder, bytes) = match step {
                Ok(step) => step,
                Err(e) => {
                    tracing::error!(error = %e, "SDMX answer failed midway");
                    return fail(&tx).await;
                }
            };
            match bytes {
                Ok(Some(bytes)) => {
                    if !send(&tx, bytes).await {
                        return; // the client went away, or stopped reading
                    }
                    state = (text, encoder);
                }
                Ok(None) => {
                    drop(text); // its room among the queries under way, given back
                    match encoder.finish() {
                        Ok(rest) => {
                            send(&tx, rest).await;
                        }
                        Err(_) => fail(&tx).await,
                    }
                    return;
                }
                Err(_) => return fail(&tx).await,
            }
        }
    });
    StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cause reaches an SDMX client with the status of the one outcome table, the
    /// same code a gRPC client gets, and nothing the table keeps for the log.
    #[tokio::test]
    async fn every_cause_has_the_tables_status() {
        for (e, _, http, public) in super::super::error::tests::every_cause() {
            let r = refusal(&e, None);
            assert_eq!(r.status().as_u16(), http, "{e:?}");
            let busy = matches!(e, ApiError::Busy { .. });
            assert_eq!(
                r.headers().get(header::RETRY_AFTER).is_some(),
                busy,
                "{e:?}"
            );
            let body = r.into_body().collect().await.unwrap().to_bytes();
            let body = String::from_utf8_lossy(&body);
            if !public {
                assert!(!body.contains("secret-detail"), "{e:?}: {body}");
            }
            if let ApiError::Invalid(_) | ApiError::FieldDenied(_) = e {
                assert!(
                    body.contains("c[REF_AREA]") || body.contains("REF_AREA"),
                    "{body}"
                );
                assert!(!body.contains("ref_area[0]"), "{body}");
            }
        }
    }
}
