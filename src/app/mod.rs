//! The application layer: the gateway's use-cases, each a function of an identified
//! [`Caller`] and a request, returning a domain error ([`ApiError`]). No transport here: the
//! gRPC services ([`crate::service`]) and the CLI translate to and from it.
//!
//! - [`submissions`]: the checks before the ledger ([`Accepted`], built only by
//!   [`Gateway::accept`]), submit, get and list;
//! - [`statistics`]: aggregate queries (role, `as_of`, the index brought up to date, the access
//!   record written before any answer leaves) and the access trail;
//! - [`audit`]: checkpoints, proofs and entries of the log;
//! - [`admin`]: members, certificates, CRLs, the policy;
//! - [`control`]: reloading the configuration, logging what changed, following the log;
//! - [`witnessing`]: rounds that ask the policy's witnesses to cosign the latest checkpoint,
//!   the witnessed checkpoint, the log's status;
//! - [`render`]: answers as CSV, SDMX-CSV and JSON.

pub mod admin;
pub mod audit;
pub mod control;
mod error;
pub mod render;

pub mod statistics;
pub mod submissions;
pub mod witnessing;

use std::sync::{Arc, RwLock};

use rustls_pki_types::UnixTime;

pub use error::ApiError;
pub use submissions::Accepted;

use crate::{
    identity::{Caller, Directory, Registry},
    ledger::Ledger,
    schema::{CodeLists, Limits},
    store::Store,
    telemetry::Telemetry,
    tlog::Log,
};

/// What the use-cases share: the configuration in force, the store, the ledger, the log, the
/// statistics index. Built by [`crate::service::assemble`].
pub struct Gateway {
    /// CA, CRLs, policy and signing certificates in force; a reload replaces the snapshot.
    pub(crate) directory: RwLock<Arc<Directory>>,
    /// What the log says about certificates (issued, revoked), shared by every snapshot.
    pub registry: Arc<Registry>,
    /// Code lists the schema validates against.
    pub lists: Arc<CodeLists>,
    /// Bounds on one submission.
    pub limits: Limits,
    /// Largest envelope accepted: the message limit less [`crate::service::READBACK_HEADROOM`], so that
    /// whatever is accepted can be read back (`GetSubmission`) in one message.
    pub max_envelope_bytes: usize,
    /// Reads.
    pub store: Arc<dyn Store>,
    /// Writes, in order, with receipts.
    pub ledger: Ledger,
    /// The in-memory index of observations that statistics queries run on.
    pub statistics: Arc<statistics::StatisticsState>,
    /// Small-cell suppression thresholds.
    pub thresholds: crate::statistics::Thresholds,
    /// The transparency log, for administrative entries (the ledger holds its own handle).
    pub(crate) log: Arc<Log>,
    /// Metrics for operators.
    pub telemetry: Arc<Telemetry>,
    /// What a reload re-reads, the CA, and the lock over configuration changes.
    pub control: control::Control,
}

impl Gateway {
    /// The directory in force.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_directory(&self, directory: Arc<Directory>) {
        *self.directory.write().unwrap_or_else(|p| p.into_inner()) = directory;
    }

    /// The caller a transport's peer presented `leaf` (its TLS client certificate, DER) is:
    /// checked against the configuration and the log's revocations in force now. Every
    /// adapter identifies its callers here.
    pub fn identify(&self, leaf: Option<&[u8]>) -> Result<Caller, ApiError> {
        Ok(self.directory().caller(leaf, UnixTime::now())?)
    }
}

/// Longest a scrape waits for the store's reads.
const SAMPLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

impl Gateway {
    /// Sets the gauges a scrape samples: the log's size and the age of its latest checkpoint,
    /// whether the store answered, its pool, and the seconds until each certificate in use
    /// (and each CRL's next update) runs out. Returns whether the store answered.
    pub async fn sample(&self, server_leaf: Option<&[u8]>) -> bool {
        let t = &self.telemetry;
        let now_ms = crate::receipt::now_ms();
        let log = async {
            let size = self.store.log_size().await?;
            let signed = match size {
                0 => None,
                n => self
                    .store
                    .export_checkpoints(n - 1, 1)
                    .await?
                    .into_iter()
                    .next(),
            };
            Ok::<_, crate::store::StoreError>((size, signed))
        };
        // A scrape must not wait for a store that does not answer.
        let answered = tokio::time::timeout(SAMPLE_WITHIN, log)
            .await
            .unwrap_or_else(|_| {
                Err(crate::store::StoreError::Unavailable(format!(
                    "no answer within {} ms",
                    SAMPLE_WITHIN.as_millis()
                )))
            });
        let up = match answered {
            Ok((size, signed)) => {
                t.set("focalgate_log_size", &[], size as f64);
                if let Some(s) = signed {
                    let age = (now_ms - s.signed_at_ms).max(0) as f64 / 1e3;
                    t.set("focalgate_log_checkpoint_age_seconds", &[], age);
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: the store did not answer");
                false
            }
        };
        t.set("focalgate_store_up", &[], if up { 1.0 } else { 0.0 });
        let pool = self.store.pool();
        for (state, n) in [
            ("max", Some(pool.max)),
            ("open", Some(pool.open)),
            ("idle", Some(pool.idle)),
            ("waiting", pool.waiting),
        ] {
            if let Some(n) = n {
                t.set(
                    "focalgate_store_pool_connections",
                    &[("state", state)],
                    n as f64,
                );
            }
        }
        let now = now_ms / 1000;
        for e in crate::identity::expiry::in_use(&self.directory(), server_leaf) {
            let left = (e.not_after - now) as f64;
            t.set(
                "focalgate_certificate_expiry_seconds",
                &[
                    ("kind", e.kind),
                    ("subject", &e.subject),
                    ("serial", &e.serial),
                ],
                left,
            );
        }
        up
    }

    /// Whether the gateway can serve: its store answers a read within `within`.
    pub async fn ready(&self, within: std::time::Duration) -> Result<(), crate::store::StoreError> {
        match tokio::time::timeout(within, self.store.log_size()).await {
            Ok(answer) => answer.map(|_| ()),
            Err(_) => Err(crate::store::StoreError::Unavailable(format!(
                "no answer within {} ms",
                within.as_millis()
            ))),
        }
    }
}
