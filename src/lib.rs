//! focalgate: the gateway through which national focal points of partner countries submit
//! agreed, non-sensitive drug-seizure and trafficking-route statistics — signed, over mutual
//! TLS, in one SDMX-aligned schema — and get a signed receipt for every submission, recorded in
//! an append-only Merkle log that any partner can verify without trusting the hub's operator.
//!
//! # Layout
//! Four floors; each uses only the ones below it. Nothing below the adapters uses tonic or
//! the generated services (`tests/layering.rs` fails if something does).
//!
//! 1. The pure core (no I/O, no tokio, no store):
//!    - [`schema`]: dataflows `SEIZURES` and `ROUTES`, versioned code lists (data files
//!      compiled in), exact decimals, periods, and validation that reports every violation;
//!      [`schema::wire`] checks a signed payload's wire format before it is decoded;
//!      [`schema::structure`] describes every dataflow as SDMX sees it (components, code
//!      lists, the aggregate dataflows, the transit path code, full keys of aggregate cells).
//!    - [`envelope`]: DSSE v1 pre-authentication encoding, signing, verification before parsing.
//!    - [`merkle`]: RFC 9162 hashing; proofs generated from stored complete subtrees, verified
//!      purely; the compact tree that verifies a whole log.
//!    - [`checkpoint`]: C2SP signed notes, verifier keys, tlog checkpoints and cosignatures.
//!    - [`entry`]: the log entries, in the exact bytes that are hashed.
//!    - [`receipt`]: the statement the gateway signs for each accepted submission, and the
//!      offline check of a whole receipt (signature, entry, checkpoint, inclusion proof).
//!    - [`tlog_proof`]: C2SP tlog-proof files: an entry, its inclusion path and a witnessed
//!      checkpoint, checked offline against a policy.
//!    - [`sdmx`]: SDMX messages from [`schema::structure`]: structures as SDMX-ML 2.1 and
//!      SDMX-JSON 2.0, data as SDMX-CSV 2.0, SDMX-ML structure-specific data (in series or
//!      flat, one dataset per revision for a history) and SDMX-JSON 2.0, and [`sdmx::rest`],
//!      SDMX REST requests read into structure selections, aggregate queries or downloads.
//!    - [`proto`]: the wire contract's messages `focalgate.v1` (prost only).
//! 2. The log and the store, with what they need:
//!    - [`store`]: persistence behind [`store::Store`], split by consumer:
//!      [`store::LogRecords`] (the log's entries, nodes, checkpoints), [`store::Submissions`],
//!      [`store::StatisticsFeed`], [`store::AccessTrail`], [`store::Cosignatures`] (kept beside
//!      their checkpoint), [`store::Exports`]; one [`store::WriteTx`] per batch, whose
//!      [`store::LogTx`] part is what the log writes. Errors are typed by what a caller can do
//!      (unavailable, conflict, corrupt, refused, failed). [`store::sqlite`] is the default,
//!      [`store::postgres`] lets several replicas share one log; both read rows through one
//!      shared mapping; [`store::copy`] moves a store between them.
//!    - [`tlog`]: the transparency log: appends and the tree nodes they complete inside the
//!      writer's transaction, signed checkpoints, the published checkpoint, proofs, the
//!      start-up check, the witnessed checkpoint ([`tlog::witnessed`]: the largest that a
//!      quorum of the policy's witnesses cosigned, checked each time it is read), and the
//!      monitor's pure step (grew, unchanged, fork, rollback).
//!    - [`ledger`]: the single writer's sequencing: batches, revision numbers, idempotency,
//!      receipts, group commit.
//!    - [`identity`]: certificate → member, roles from the policy, the CA and CRLs in force,
//!      the registry of what the log says about certificates, expiry of everything in use.
//!    - [`pki`]: certificate profiles, key files, the gateway key, the CA directory, the demo PKI.
//!    - [`statistics`]: aggregates for analysts: an in-memory columnar index of every revision,
//!      checked queries, visibility, embargoes, small-cell suppression.
//!    - [`tls`]: rustls server and client configurations (TLS 1.3, client certificates, CRL).
//!    - [`telemetry`]: the gateway's Prometheus metrics (one recorder per gateway).
//!    - [`config`]: settings from a TOML file and `FOCALGATE_*` variables, every default once.
//!    - [`witness`]: the witness a partner runs (C2SP tlog-witness): `add-checkpoint` checked
//!      against the checkpoint it last cosigned, held in one durable check-and-update; and
//!      [`witness::client`], the hub's side that asks witnesses in parallel.
//! 3. The application layer, [`app`]: the [`app::Gateway`] and its use-cases — submit, get and
//!    list submissions, query, the access trail, log reads, the admin acts, reloads — each a
//!    function of a caller identified from its leaf certificate ([`app::Gateway::identify`])
//!    and a request, returning a domain error ([`app::ApiError`]); [`app::render`] writes
//!    answers as CSV, SDMX-CSV and JSON.
//! 4. The adapters, which only translate:
//!    - [`service`]: the tonic services `Submissions`, `Audit`, `Statistics` and `Admin`, the
//!      one outcome table (every cause → gRPC code, HTTP status, public message, logged
//!      detail), the one tower layer that records how every RPC ended (request log, metrics,
//!      deadlines, oversize requests), the server, and [`service::monitoring`]: `/metrics`,
//!      `/readyz`, `/livez`; [`service::https`]: the one HTTPS layer of the HTTP surfaces —
//!      [`service::sdmx`], the SDMX REST API (HTTP/1.1 and HTTP/2, the same trust), and
//!      [`service::witness`], the witness a partner runs.
//!    - [`connections`]: the accept loop of every TLS listener: pending handshakes bounded per
//!      address and in total (oldest shed first), connections per member and in total, a
//!      deadline to a complete request head and one for idle connections, both following the
//!      requests the server above says are in flight;
//!      [`codec`]: the gRPC codec that counts each message's repeated fields before decoding.
//!    - [`rpc`]: the generated gRPC clients and servers.
//!    - [`cli`]: the `focalgate` command; [`synthetic`]: invented sample statistics.
//!
//! # Data flow of a submission
//! ```text
//! client: SubmissionBody ─encode─▶ bytes ─sign PAE(type, bytes)─▶ SignedEnvelope ─mTLS─▶ Submit
//! gateway: service::observe: peer certificate ─app::Gateway::identify─▶ Caller (member, roles)
//!          app::Gateway::accept: envelope::verify (signing certificate: registered, the
//!          caller's, CA, CRL, time) ─▶ schema::wire (shape, counts) ─▶ decode
//!          SubmissionBody ─▶ reporter is the caller's country ─▶ schema::validate ─▶ Accepted
//!          ─▶ ledger (batch: idempotency, revision n+1) ─▶ tlog (log entry + tree nodes, one
//!             signed checkpoint, inclusion proofs) ─▶ signed receipts, one durable commit
//!          ─▶ Receipt ─▶ client: receipt::verify_offline with the log's verifier key
//! auditor: Audit.GetEntries ─▶ merkle::CompactTree ─▶ root == signed checkpoint?
//!          Audit.GetConsistencyProof ─▶ merkle::verify_consistency (log monitor)
//! admin:   Admin.RevokeCertificate ─▶ pki::ca (CRL) ─▶ identity::Registry (in force at once:
//!          handshakes, open connections, the ledger) ─▶ log entry ─▶ reload (new CRL)
//! witnesses: app::witnessing, every period: latest checkpoint ─▶ each witness of the policy
//!          that has not cosigned it: witness::client add-checkpoint (old size, consistency
//!          proof) over mTLS ─▶ cosignature verified ─▶ store, beside its checkpoint
//!          ─▶ tlog::witnessed (quorum under the policy) ─▶ Audit.GetCheckpoint.witnessed
//!          ─▶ receipt upgrade ─▶ .tlog-proof ─▶ receipt verify --policy (offline)
//! analyst: Statistics.Query ─▶ statistics::Query ─▶ a slot (app::statistics::Admission: per
//!          member and in all, or Busy) ─▶ Index snapshot brought up to the tree size of the
//!          latest (or asked) signed checkpoint, reading only what is new
//!          ─▶ aggregate on the slot's thread (the revision of each series that counts at
//!             that size, caller's sharing rights, suppression) ─▶ compact cells, window
//!          ─▶ access trail (durable, grouped) ─▶ header, then rows a page at a time
//! SDMX:    GET /sdmx/data/SEIZURES_AGG/{key} ─▶ service::sdmx ─▶ sdmx::rest (key, c[…],
//!          Accept) ─▶ AggregateQuery ─▶ the same Gateway::query ─▶ sdmx::data (full keys
//!          of SEIZURES_AGG, SDMX-CSV or SDMX-ML, the signed checkpoint in the header)
//!          GET /sdmx/data/SEIZURES/{key} ─▶ Gateway::download (access trail first)
//!          ─▶ statistics::observations a page at a time (the revisions that count, or every
//!          revision with its validity) ─▶ sdmx::data, streamed
//! ```
//!
//! # Non-goals
//! Personal data, case narratives or anything but aggregate statistics; free text is short and
//! optional. The gateway never deletes or edits a submission: a correction is a new revision.

#![forbid(unsafe_code)]

pub mod app;
pub mod checkpoint;
pub mod cli;
pub mod codec;
pub mod config;
pub mod connections;
pub mod entry;
pub mod envelope;
pub mod identity;
pub mod ledger;
pub mod merkle;
pub mod pki;
pub mod receipt;
pub mod schema;
pub mod sdmx;
pub mod service;
pub mod statistics;
pub mod store;
pub mod synthetic;
pub mod telemetry;
pub mod tlog;
pub mod tlog_proof;
pub mod tls;
pub mod witness;

/// The wire contract's messages, generated from `proto/focalgate/v1/*.proto` (prost only).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/focalgate.v1.rs"));

    /// Encoded descriptor set of the contract, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/focalgate_descriptor.bin"));
}

/// The contract's gRPC clients and servers (tonic), over [`proto`]'s messages: for the
/// adapters ([`service`], [`cli`]) only.
#[allow(missing_docs, clippy::all)]
pub mod rpc {
    include!(concat!(env!("OUT_DIR"), "/rpc/focalgate.v1.rs"));
}
