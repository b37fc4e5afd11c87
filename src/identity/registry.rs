//! What the transparency log says about certificates: the signing certificates issued through
//! the Admin service (their entries carry the certificate) and every revocation; and which
//! policy it last recorded. The log is the registry's source of truth: it is read at start and
//! followed afterwards, so every gateway sharing the log converges on the same registry.
//!
//! One `Registry` lives as long as the gateway and is shared by every [`Directory`] snapshot,
//! the TLS client-certificate verifier and the ledger, so that a revocation takes effect for
//! new handshakes, for requests on open connections and for submissions already in flight
//! at once, without waiting for a reload.
//!
//! [`Directory`]: super::Directory

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use super::{MemberId, SigningCert, policy::signing_cert_from_der};
use crate::{
    entry::{AdminAction, AdminEntry, Entry},
    schema::CodeLists,
};

/// A revocation recorded in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRevocation {
    /// Its log index; `None` while the entry is being written.
    pub index: Option<u64>,
    /// When, Unix milliseconds.
    pub time_ms: i64,
    /// Why, as logged.
    pub reason: Option<String>,
}

/// An authentication certificate seen on a request, for expiry reporting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenCert {
    /// Its member.
    pub member: MemberId,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// End of validity, Unix seconds.
    pub not_after: i64,
}

#[derive(Debug, Default)]
struct State {
    /// Signing certificates issued through the log, by key id.
    signing: HashMap<String, SigningCert>,
    /// Revoked serial numbers (lowercase hex).
    revoked: HashMap<String, LoggedRevocation>,
    /// The latest `policy-changed` entry: its log index and the policy's SHA-256.
    policy: Option<(u64, [u8; 32])>,
    /// The next log index to read.
    next: u64,
    /// Authentication certificates seen on requests, by serial.
    seen_auth: HashMap<String, SeenCert>,
}

/// The certificate facts of the log (see the module documentation).
#[derive(Debug)]
pub struct Registry {
    lists: Arc<CodeLists>,
    state: RwLock<State>,
}

impl Registry {
    /// An empty registry; feed it the log with [`apply`](Self::apply).
    pub fn new(lists: Arc<CodeLists>) -> Self {
        Self {
            lists,
            state: RwLock::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the maps themselves stay consistent.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the log entry at `index` (its exact bytes), the next one in log order: takes in
    /// what it says and moves the position past it.
    pub fn follow(&self, index: u64, bytes: &[u8]) {
        self.apply(index, bytes);
        let mut s = self.write();
        s.next = s.next.max(index + 1);
    }

    /// Takes in the log entry at `index` (its exact bytes) out of order (one this gateway
    /// just wrote), without moving the position: following the log reads it again, which
    /// changes nothing. Returns the administrative act, if it is one.
    pub fn apply(&self, index: u64, bytes: &[u8]) -> Option<AdminEntry> {
        if !crate::entry::is_admin(bytes) {
            return None;
        }
        let Ok(Entry::Admin(a)) = Entry::parse(bytes) else {
            return None;
        };
        let mut s = self.write();
        match a.action {
            AdminAction::CertificateIssued => {
                if let Some(cert) = a
                    .certificate
                    .as_deref()
                    .and_then(|der| signing_cert_from_der(der, &self.lists).ok())
                {
                    s.signing.insert(cert.keyid.clone(), cert);
                }
            }
            AdminAction::CertificateRevoked => {
                if let Some(serial) = &a.serial {
                    s.revoked.insert(
                        serial.clone(),
                        LoggedRevocation {
                            index: Some(index),
                            time_ms: a.time_ms,
                            reason: a.reason.clone(),
                        },
                    );
                }
            }
            AdminAction::PolicyChanged => {
                if s.policy.is_none_or(|(latest, _)| latest <= index) {
                    s.policy = Some((index, a.digest));
                }
            }
        }
        drop(s);
        Some(a)
    }

    /// Enforces a revocation before its log entry is written, so that nothing signed with
    /// the certificate can be logged after the revocation's entry.
    pub fn revoke_now(&self, serial: &str, time_ms: i64, reason: &str) {
        self.write()
            .revoked
            .entry(serial.to_owned())
            .or_insert(LoggedRevocation {
                index: None,
                time_ms,
                reason: Some(reason.to_owned()),
            });
    }

    /// Whether the log, as far as read, already says what `entry` would: the policy it names
    /// is the latest logged, or the certificate it revokes has a revocation entry. An issued
    /// certificate is a new act each time.
    pub fn records(&self, entry: &AdminEntry) -> bool {
        match entry.action {
            AdminAction::CertificateIssued => false,
            AdminAction::CertificateRevoked => entry
                .serial
                .as_ref()
                .is_some_and(|serial| self.revocation_logged(serial)),
            AdminAction::PolicyChanged => self.policy_digest() == Some(entry.digest),
        }
    }

    /// Whether the log records the revocation of `serial` (not only enforced ahead of its
    /// entry by [`revoke_now`](Self::revoke_now)).
    pub fn revocation_logged(&self, serial: &str) -> bool {
        self.read()
            .revoked
            .get(serial)
            .is_some_and(|r| r.index.is_some())
    }

    /// The next log index the registry has not read.
    pub fn next_index(&self) -> u64 {
        self.read().next
    }

    /// The revocation of a serial number (lowercase hex), if the log has one.
    pub fn revocation(&self, serial: &str) -> Option<LoggedRevocation> {
        self.read().revoked.get(serial).cloned()
    }

    /// How many certificates the log (or an act ahead of its entry) revokes.
    pub fn revocation_count(&self) -> usize {
        self.read().revoked.len()
    }

    /// Whether the log revokes the serial number (lowercase hex).
    pub fn is_revoked(&self, serial: &str) -> bool {
        self.read().revoked.contains_key(serial)
    }

    /// The SHA-256 of the policy the log last recorded as changed, if it records any.
    pub fn policy_digest(&self) -> Option<[u8; 32]> {
        self.read().policy.map(|(_, digest)| digest)
    }

    /// A signing certificate issued through the log, by key id.
    pub fn signing(&self, keyid: &str) -> Option<SigningCert> {
        self.read().signing.get(keyid).cloned()
    }

    /// Every signing certificate issued through the log.
    pub fn signing_certs(&self) -> Vec<SigningCert> {
        self.read().signing.values().cloned().collect()
    }

    /// Notes an authentication certificate seen on a request; true the first time.
    pub fn saw_auth(&self, member: &MemberId, serial: &str, not_after: i64) -> bool {
        if self.read().seen_auth.contains_key(serial) {
            return false;
        }
        self.write()
            .seen_auth
            .insert(
                serial.to_owned(),
                SeenCert {
                    member: member.clone(),
                    serial: serial.to_owned(),
                    not_after,
                },
            )
            .is_none()
    }

    /// Authentication certificates seen on requests since the gateway started.
    pub fn seen_auth(&self) -> Vec<SeenCert> {
        self.read().seen_auth.values().cloned().collect()
    }
}
