//! Metrics for operators, in the Prometheus text format: per RPC the series of
//! go-grpc-prometheus (so existing dashboards work), refused handshakes and open connections,
//! the ledger's batches, and the gauges a scrape samples (the log, the store's pool, the time
//! until each certificate in use expires, in seconds as Prometheus' linter wants base units).
//!
//! Each gateway has its own recorder (`metrics-exporter-prometheus`, no global state), so that
//! gateways in one process never mix their counts. Series a dashboard expects are created up
//! front, at zero: every method of every service with every status code. A method the gateway
//! does not serve is counted under `grpc_service="unknown"`, so no peer can add series.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use metrics::{Counter, Histogram, Key, KeyName, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use metrics_util::MetricKindMask;
use prost::Message;

/// The gRPC status codes, by number, as go-grpc-prometheus names them.
pub const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// Upper bounds of the RPC latency histogram, in seconds (go-grpc-prometheus' defaults, with
/// finer steps below 100 ms where the gateway's calls are).
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the ledger's batch-size histogram, in submissions.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// Every series' name and help text.
const DESCRIPTIONS: [(&str, &str); 23] = [
    (
        "grpc_server_started_total",
        "Total number of RPCs started on the server.",
    ),
    (
        "grpc_server_handled_total",
        "Total number of RPCs completed on the server, regardless of success or failure.",
    ),
    (
        "grpc_server_handling_seconds",
        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
    ),
    (
        "grpc_server_msg_received_total",
        "Total number of RPC stream messages received on the server.",
    ),
    (
        "grpc_server_msg_sent_total",
        "Total number of gRPC stream messages sent by the server.",
    ),
    (
        "focalgate_connections_refused_total",
        "Connections turned away before the gRPC server, by reason.",
    ),
    (
        "focalgate_connections_open",
        "Established mutual-TLS connections.",
    ),
    (
        "focalgate_ledger_batch_size",
        "Submissions committed together (one log append, one checkpoint, one fsync).",
    ),
    (
        "focalgate_ledger_commit_seconds",
        "Time to commit one batch durably, log and receipts included.",
    ),
    ("focalgate_log_size", "Entries in the transparency log."),
    (
        "focalgate_log_checkpoint_age_seconds",
        "Seconds since the latest checkpoint was signed.",
    ),
    (
        "focalgate_store_up",
        "1 if the store answered the scrape's reads, 0 if not.",
    ),
    (
        "focalgate_store_pool_connections",
        "The store's connections, by state (max, open, idle, waiting).",
    ),
    (
        "focalgate_sdmx_requests_total",
        "SDMX REST API requests, by resource (structure, data, download, other) and HTTP status.",
    ),
    (
        "focalgate_sdmx_request_seconds",
        "Time to answer an SDMX REST request, by resource (a download: until its stream starts).",
    ),
    (
        "focalgate_witness_served_total",
        "Requests a witness answered, by route (add-checkpoint, checkpoint, other) and HTTP status.",
    ),
    (
        "focalgate_witness_served_seconds",
        "Time a witness took to answer a request, by route.",
    ),
    (
        "focalgate_witness_requests_total",
        "add-checkpoint requests to each witness, by outcome (cosigned, stale, refused, failed).",
    ),
    (
        "focalgate_witness_request_seconds",
        "Time for one witness to answer add-checkpoint (its retry after a 409 included).",
    ),
    (
        "focalgate_witness_lag_entries",
        "Entries of the latest checkpoint that each witness has not cosigned yet.",
    ),
    (
        "focalgate_log_witnessed_size",
        "Tree size of the latest checkpoint a quorum of witnesses cosigned.",
    ),
    (
        "focalgate_witness_quorum",
        "1 if the latest checkpoint is witnessed (a quorum cosigned it), 0 if not.",
    ),
    (
        "focalgate_certificate_expiry_seconds",
        "Seconds until a certificate in use expires (a CRL: until its next update); negative once expired. Alert 30 days ahead: < 30 * 86400.",
    ),
];

/// How long a gauge no scrape has set stays in the exposition.
const GAUGE_IDLE: Duration = Duration::from_secs(15 * 60);

/// How the recorder is told what it records.
static METADATA: Metadata<'static> =
    metrics::Metadata::new("focalgate", metrics::Level::INFO, Some(module_path!()));

/// One RPC method the gateway serves, as the metrics label it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Method {
    /// `package.Service`.
    pub service: String,
    /// The method's name.
    pub method: String,
    /// `unary`, `client_stream`, `server_stream` or `bidi_stream`.
    pub kind: &'static str,
}

impl Method {
    /// Every method of the services in encoded descriptor sets, by request path
    /// (`/package.Service/Method`).
    pub fn from_descriptor_sets(sets: &[&[u8]]) -> HashMap<String, Method> {
        let mut out = HashMap::new();
        for set in sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
                continue;
            };
            for file in set.file {
                for service in &file.service {
                    let name = format!("{}.{}", file.package(), service.name());
                    for m in &service.method {
                        let kind = match (m.client_streaming(), m.server_streaming()) {
                            (false, false) => "unary",
                            (true, false) => "client_stream",
                            (false, true) => "server_stream",
                            (true, true) => "bidi_stream",
                        };
                        out.insert(
                            format!("/{name}/{}", m.name()),
                            Method {
                                service: name.clone(),
                                method: m.name().to_owned(),
                                kind,
                            },
                        );
                    }
                }
            }
        }
        out
    }
}

/// The series of one method.
pub struct RpcSeries {
    /// Its labels, for the log line.
    pub method: Method,
    started: Counter,
    handled: [Counter; 17],
    seconds: Histogram,
    received: Counter,
    sent: Counter,
}

impl RpcSeries {
    /// The RPC began.
    pub fn started(&self) {
        self.started.increment(1);
    }

    /// The RPC ended with `code` after `seconds`.
    pub fn handled(&self, code: usize, seconds: f64) {
        self.handled[code.min(16)].increment(1);
        self.seconds.record(seconds);
    }

    /// `n` request messages were read.
    pub fn received(&self, n: u64) {
        self.received.increment(n);
    }

    /// `n` response messages were written.
    pub fn sent(&self, n: u64) {
        self.sent.increment(n);
    }
}

/// Why a connection was turned away before it reached the gRPC server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The TLS handshake failed (no, unknown, revoked or expired certificate; not TLS).
    Handshake,
    /// The handshake took longer than `tls.handshake_timeout_ms`.
    HandshakeTimeout,
    /// Shed to make room for newer handshakes (per address or in all).
    Shed,
    /// Closed at once: `limits.max_connections` reached.
    TotalCap,
    /// Its member already had `limits.max_connections_per_member`.
    MemberCap,
}

impl Refusal {
    const ALL: [Refusal; 5] = [
        Refusal::Handshake,
        Refusal::HandshakeTimeout,
        Refusal::Shed,
        Refusal::TotalCap,
        Refusal::MemberCap,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Handshake => "handshake_failed",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::Shed => "shed",
            Self::TotalCap => "max_connections",
            Self::MemberCap => "max_connections_per_member",
        }
    }
}

/// A gateway's metrics.
pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// The series of every method served, by request path.
    methods: HashMap<String, Arc<RpcSeries>>,
    /// Where unknown paths are counted.
    unknown: Arc<RpcSeries>,
    refused: [Counter; 5],
    /// Established connections now.
    open: AtomicI64,
    batch_size: Histogram,
    commit_seconds: Histogram,
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.to_string()))
            .collect::<Vec<_>>(),
    )
}

impl Telemetry {
    /// Metrics for a gateway serving `methods` (by request path).
    pub fn new(methods: HashMap<String, Method>) -> Arc<Self> {
        let recorder = PrometheusBuilder::new()
            // Gauges are set by each scrape; one not set for this long (a certificate no
            // longer in use) leaves the exposition.
            .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
            .set_buckets_for_metric(
                Matcher::Full("grpc_server_handling_seconds".into()),
                &LATENCY_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("focalgate_ledger_commit_seconds".into()),
                    &LATENCY_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("focalgate_witness_request_seconds".into()),
                    &LATENCY_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("focalgate_sdmx_request_seconds".into()),
                    &LATENCY_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("focalgate_witness_served_seconds".into()),
                    &LATENCY_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("focalgate_ledger_batch_size".into()),
                    &BATCH_BUCKETS,
                )
            })
            // Only fails on empty bucket lists, which these are not.
            .unwrap_or_default()
            .build_recorder();
        for (name, help) in DESCRIPTIONS {
            recorder.describe_counter(KeyName::from_const_str(name), None, help.into());
        }

        let series = |m: Method| {
            let l = [
                ("grpc_service", m.service.as_str()),
                ("grpc_method", m.method.as_str()),
                ("grpc_type", m.kind),
            ];
            let counter = |name| recorder.register_counter(&key(name, &l), &METADATA);
            let handled = CODES.map(|code| {
                let mut with_code = l.to_vec();
                with_code.push(("grpc_code", code));
                recorder.register_counter(&key("grpc_server_handled_total", &with_code), &METADATA)
            });
            Arc::new(RpcSeries {
                started: counter("grpc_server_started_total"),
                received: counter("grpc_server_msg_received_total"),
                sent: counter("grpc_server_msg_sent_total"),
                seconds: recorder
                    .register_histogram(&key("grpc_server_handling_seconds", &l), &METADATA),
                handled,
                method: m,
            })
        };
        let unknown = series(Method {
            service: "unknown".into(),
            method: "unknown".into(),
            kind: "unary",
        });
        let methods = methods
            .into_iter()
            .map(|(path, m)| (path, series(m)))
            .collect();
        let refused = Refusal::ALL.map(|r| {
            recorder.register_counter(
                &key(
                    "focalgate_connections_refused_total",
                    &[("reason", r.label())],
                ),
                &METADATA,
            )
        });
        let batch_size =
            recorder.register_histogram(&key("focalgate_ledger_batch_size", &[]), &METADATA);
        let commit_seconds =
            recorder.register_histogram(&key("focalgate_ledger_commit_seconds", &[]), &METADATA);
        let handle = recorder.handle();
        Arc::new(Self {
            recorder,
            handle,
            methods,
            unknown,
            refused,
            open: AtomicI64::new(0),
            batch_size,
            commit_seconds,
        })
    }

    /// The series of the method at request path `path`.
    pub fn rpc(&self, path: &str) -> Arc<RpcSeries> {
        self.methods.get(path).unwrap_or(&self.unknown).clone()
    }

    /// A connection was turned away.
    pub fn refused(&self, why: Refusal) {
        let i = Refusal::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.refused[i].increment(1);
    }

    /// A connection was established (`1`) or closed (`-1`).
    pub fn connections(&self, delta: i64) {
        self.open.fetch_add(delta, Ordering::Relaxed);
    }

    /// The ledger committed `size` submissions in `seconds`.
    pub fn batch(&self, size: usize, seconds: f64) {
        self.batch_size.record(size as f64);
        self.commit_seconds.record(seconds);
    }

    /// A witness answered (`outcome`) in `seconds`.
    pub fn witness_request(&self, witness: &str, outcome: &'static str, seconds: f64) {
        let labels = [("witness", witness), ("outcome", outcome)];
        self.recorder
            .register_counter(&key("focalgate_witness_requests_total", &labels), &METADATA)
            .increment(1);
        self.recorder
            .register_histogram(
                &key("focalgate_witness_request_seconds", &[("witness", witness)]),
                &METADATA,
            )
            .record(seconds);
    }

    /// An SDMX REST request of `resource` was answered with `status` in `seconds`.
    pub fn sdmx_request(&self, resource: &'static str, status: u16, seconds: f64) {
        let names = (
            "focalgate_sdmx_requests_total",
            "focalgate_sdmx_request_seconds",
        );
        self.answered(names, ("resource", resource), status, seconds);
    }

    /// A witness answered a request of `route` with `status` in `seconds`.
    pub fn witness_served(&self, route: &'static str, status: u16, seconds: f64) {
        let names = (
            "focalgate_witness_served_total",
            "focalgate_witness_served_seconds",
        );
        self.answered(names, ("route", route), status, seconds);
    }

    /// An HTTP request of one surface answered: counted by `what` and status in the counter
    /// `names.0`, its time by `what` in the histogram `names.1`.
    fn answered(
        &self,
        names: (&'static str, &'static str),
        what: (&'static str, &'static str),
        status: u16,
        seconds: f64,
    ) {
        let status = status.to_string();
        self.recorder
            .register_counter(
                &key(names.0, &[what, ("status", status.as_str())]),
                &METADATA,
            )
            .increment(1);
        self.recorder
            .register_histogram(&key(names.1, &[what]), &METADATA)
            .record(seconds);
    }

    /// Sets a gauge a scrape samples.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        self.recorder
            .register_gauge(&key(name, labels), &METADATA)
            .set(value);
    }

    /// The exposition, in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        let open = self.open.load(Ordering::Relaxed).max(0);
        self.set("focalgate_connections_open", &[], open as f64);
        self.handle.render()
    }

    /// Folds recorded histogram samples into their buckets, so that memory stays bounded
    /// however long nobody scrapes. Runs until the returned task is dropped or aborted.
    pub fn keep_up(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                match me.upgrade() {
                    Some(t) => t.handle.run_upkeep(),
                    None => return,
                }
            }
        })
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("methods", &self.methods.len())
            .finish_non_exhaustive()
    }
}
