//! focalgate: the gateway through which national focal points of partner countries submit
//! agreed, non-sensitive drug-seizure and trafficking-route statistics — signed, over mutual
//! TLS, in one SDMX-aligned schema — and get a signed receipt for every submission, recorded in
//! an append-only Merkle log that any partner can verify without trusting the hub's operator.
//!
//! # Layout
//! Pure parts (no tonic, tokio or store):
//! - [`schema`]: dataflows `SEIZURES` and `ROUTES`, versioned code lists (data files compiled
//!   in), exact decimals, periods, and validation that reports every violation;
//!   [`schema::wire`] checks a signed payload's wire format (known fields only, repeated fields
//!   counted) before it is decoded.
//! - [`envelope`]: DSSE v1 pre-authentication encoding, signing, verification before parsing.
//! - [`merkle`]: RFC 9162 hashing; proofs generated from stored complete subtrees, verified
//!   purely; the compact tree that verifies a whole log.
//! - [`checkpoint`]: C2SP signed notes, verifier keys, tlog checkpoints and cosignatures.
//! - [`entry`]: the log entries, in the exact bytes that are hashed.
//! - [`receipt`]: the statement the gateway signs for each accepted submission, and the
//!   offline check of a whole receipt (signature, entry, checkpoint, inclusion proof).
//!
//! Around them:
//! - [`identity`]: certificate → member (the certificate profile), roles from the policy,
//!   the CA and CRLs in force, the registry of what the log says about certificates
//!   (issued, revoked), expiry of everything in use.
//! - [`pki`]: certificate profile parameters, key files, the gateway key, the CA directory
//!   behind `focalgate ca` and the Admin service, the demo PKI.
//! - [`store`]: persistence behind the [`store::Store`] trait; [`store::sqlite`] is the default,
//!   [`store::postgres`] lets several replicas share one log (an advisory lock on the log
//!   head serialises writers); [`store::copy`] moves a store between them.
//! - [`ledger`]: the single writer: revision numbering, idempotency, log appends, one
//!   checkpoint per batch, receipts, group commit; the start-up check of the log.
//! - [`codec`]: the gRPC codec of every service and client, which counts each message's
//!   repeated fields before prost decodes it.
//! - [`tls`]: rustls server configuration (TLS 1.3, client certificates, CRL), the client side.
//! - [`connections`]: the accept loop: pending handshakes bounded per address and in total
//!   (oldest shed first), connections per member and in total, idle connections closed.
//! - [`statistics`]: aggregates for analysts: an in-memory columnar index of every revision,
//!   checked queries, visibility under the sharing policy, embargoes, small-cell suppression.
//! - [`service`]: the tonic services `Submissions`, `Audit`, `Statistics` and `Admin` (thin),
//!   errors → gRPC status in one place, the server; [`service::control`]: reloading the
//!   configuration without a restart (and logging at start what was edited while stopped;
//!   once, however many replicas read the same files), following the log, expiry warnings.
//! - [`config`]: settings from a TOML file and `FOCALGATE_*` variables.
//! - [`cli`]: the `focalgate` command; [`synthetic`]: invented sample statistics.
//! - [`proto`]: the generated wire contract `focalgate.v1`.
//!
//! # Data flow of a submission
//! ```text
//! client: SubmissionBody ─encode─▶ bytes ─sign PAE(type, bytes)─▶ SignedEnvelope ─mTLS─▶ Submit
//! gateway: peer certificate ─identity::Directory─▶ Caller (member, roles)
//!          service::Gateway::accept: envelope::verify (signing certificate: registered, the
//!          caller's, CA, CRL, time) ─▶ schema::wire (shape, counts) ─▶ decode
//!          SubmissionBody ─▶ reporter is the caller's
//!          country ─▶ schema::validate
//!          ─▶ ledger (batch: idempotency, revision n+1, log entry + tree nodes, one signed
//!             checkpoint, inclusion proofs, signed receipts, one durable commit)
//!          ─▶ Receipt ─▶ client: receipt::verify_offline with the log's verifier key
//! auditor: Audit.GetEntries ─▶ merkle::CompactTree ─▶ root == signed checkpoint?
//!          Audit.GetConsistencyProof ─▶ merkle::verify_consistency (log monitor)
//! admin:   Admin.RevokeCertificate ─▶ pki::ca (CRL) ─▶ identity::Registry (in force at once:
//!          handshakes, open connections, the ledger) ─▶ log entry ─▶ reload (new CRL)
//! analyst: Statistics.Query ─▶ statistics::Query ─▶ Index brought up to the tree size of the
//!          latest (or asked) signed checkpoint, reading only what is new
//!          ─▶ aggregate (the revision of each series that counts at that size, caller's
//!             sharing rights, suppression) ─▶ access trail (durable, grouped) ─▶ header + rows
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
pub mod service;
pub mod statistics;
pub mod store;
pub mod synthetic;
pub mod tlog;
pub mod tls;

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
