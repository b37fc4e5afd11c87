//! Changing the configuration in force without a restart: reloading the CA bundle, CRLs,
//! policy and server certificate (on SIGHUP, when their files change, after an administrative
//! act), following the log for other gateways' administrative acts, and expiry warnings.
//!
//! ```text
//!  SIGHUP ─┐
//!  files ──┼─▶ reload: Trust + Directory + ServerConfig, all or nothing ─▶ swap
//!  Admin ──┘      │ (a bad file: logged, the old configuration stays)
//!                 └─▶ what changed (policy, CRL revocations) ─▶ log entries (actor "operator")
//!  every tick: log entries since the registry's position ─▶ Registry
//!  start: edits made while stopped (policy, CRL revocations) ─▶ log entries (actor "operator")
//! ```
//!
//! One lock serialises reloads and administrative acts, so an act's own reload never logs the
//! act a second time.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use rustls_pki_types::UnixTime;

use super::Gateway;
use crate::entry::sha256;
use crate::receipt::now_ms;
use crate::{
    config::Resolved,
    entry::{AdminAction, AdminEntry, Entry},
    identity::{Directory, Registry, Trust, expiry},
    pki::ca::CaDir,
    tlog::{self, LogError, Logged},
    tls::ServerTls,
};

/// Who the log names for changes made by editing files on the gateway's host.
pub const OPERATOR: &str = "operator";

/// How often expiry warnings are repeated while the gateway runs.
const EXPIRY_WARNING_EVERY: Duration = Duration::from_secs(12 * 3600);

/// The length and modification time of each watched file, as last read.
pub(crate) type Fingerprints = Vec<Option<(u64, SystemTime)>>;

/// What a reload re-reads, and the lock over changing it.
pub struct Control {
    paths: Resolved,
    /// The partnership CA, when this gateway holds it (`ca.dir`).
    pub ca: Option<CaDir>,
    tls: Arc<ServerTls>,
    /// The server certificate in force (leaf, DER), for expiry reports.
    server_leaf: RwLock<Vec<u8>>,
    /// Held while the configuration changes; guards the watched files' fingerprints.
    lock: tokio::sync::Mutex<Fingerprints>,
}

impl Control {
    pub(crate) fn new(
        paths: Resolved,
        ca: Option<CaDir>,
        tls: Arc<ServerTls>,
        server_leaf: Vec<u8>,
    ) -> Self {
        let prints = fingerprints(&watched(&paths));
        Self {
            paths,
            ca,
            tls,
            server_leaf: RwLock::new(server_leaf),
            lock: tokio::sync::Mutex::new(prints),
        }
    }

    /// The server certificate in force (leaf, DER).
    pub fn server_leaf(&self) -> Vec<u8> {
        self.server_leaf
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The policy file.
    pub fn policy_path(&self) -> &Path {
        &self.paths.policy
    }

    /// The files the configuration is read from.
    pub fn paths(&self) -> &Resolved {
        &self.paths
    }

    /// Serialises a change of configuration (reload or administrative act).
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, Fingerprints> {
        self.lock.lock().await
    }
}

/// The files a reload reads.
fn watched(paths: &Resolved) -> Vec<PathBuf> {
    let mut files = vec![paths.ca.clone()];
    files.extend(paths.crl.iter().cloned());
    files.extend([paths.cert.clone(), paths.key.clone(), paths.policy.clone()]);
    files
}

pub(crate) fn fingerprints(files: &[PathBuf]) -> Fingerprints {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        })
        .collect()
}

/// Loads the CA bundle, CRLs, policy and server certificate from `paths`, all checked.
pub(crate) fn load(
    paths: &Resolved,
    lists: Arc<crate::schema::CodeLists>,
    registry: Arc<Registry>,
) -> Result<(Directory, Arc<rustls::ServerConfig>, Vec<u8>), ReloadError> {
    let trust = Trust::load(&paths.ca, &paths.crl)?;
    let chain = crate::tls::read_chain(&paths.cert)?;
    let leaf = chain
        .first()
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    let key = crate::tls::read_key(&paths.key)?;
    let tls = crate::tls::server_config(&trust, registry.clone(), chain, key)?;
    let directory = Directory::load(trust, &paths.policy, lists, registry)?;
    Ok((directory, tls, leaf))
}

/// Why the configuration files could not be put in force (the configuration in force stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The CA bundle or a CRL.
    #[error(transparent)]
    Trust(#[from] crate::identity::TrustError),
    /// The server certificate or key.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The policy or a signing certificate it names.
    #[error(transparent)]
    Policy(#[from] crate::identity::PolicyError),
    /// The changes could not be written to the log (they are in force).
    #[error("logging the changes: {0}")]
    Log(#[from] LogError),
}

/// The entry saying that the policy in force is now the one of SHA-256 `digest`.
fn policy_changed(digest: [u8; 32], actor: &str, now_ms: i64) -> Entry {
    Entry::Admin(AdminEntry {
        action: AdminAction::PolicyChanged,
        time_ms: now_ms,
        actor: actor.to_owned(),
        subject: "policy".into(),
        serial: None,
        digest,
        reason: None,
        certificate: None,
    })
}

impl Gateway {
    /// Re-reads the CA bundle, CRLs, policy and server certificate and puts them in force
    /// together, or, if anything is wrong, logs why and keeps the configuration in force.
    /// Changes made by editing the files are written to the log with the actor `operator`.
    pub async fn reload(&self, why: &str) -> Result<(), ReloadError> {
        let mut prints = self.control.lock().await;
        self.reload_locked(&mut prints, why, OPERATOR)
            .await
            .map(|_| ())
    }

    /// As [`reload`](Self::reload), holding the lock (whose guarded fingerprints it renews);
    /// changes not yet logged are logged as made by `actor`, and returned with where they
    /// landed.
    pub(crate) async fn reload_locked(
        &self,
        prints: &mut Fingerprints,
        why: &str,
        actor: &str,
    ) -> Result<Vec<(Entry, Logged)>, ReloadError> {
        *prints = fingerprints(&watched(&self.control.paths));
        let (directory, tls, leaf) = match load(
            &self.control.paths,
            self.lists.clone(),
            self.registry.clone(),
        ) {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(
                    target: "focalgate::reload",
                    why,
                    error = %e,
                    "reload refused: the configuration in force stays"
                );
                return Err(e);
            }
        };
        let old = self.directory();
        let mut entries = Vec::new();
        let now_ms = now_ms();
        if directory.policy_source().digest != old.policy_source().digest {
            entries.push(policy_changed(
                directory.policy_source().digest,
                actor,
                now_ms,
            ));
        }
        // Revocations new in the CRL and not yet in the log (one the Admin service makes is
        // logged before the reload that brings its CRL).
        let was_revoked = old.trust.revoked_serials();
        entries.extend(self.revocation_entries(
            &directory,
            |serial| was_revoked.contains_key(serial),
            actor,
            now_ms,
        ));
        self.set_directory(Arc::new(directory));
        self.control.tls.replace(tls);
        *self
            .control
            .server_leaf
            .write()
            .unwrap_or_else(|p| p.into_inner()) = leaf;
        tracing::info!(target: "focalgate::reload", why, changes = entries.len(), "configuration reloaded");
        let logged = if entries.is_empty() {
            Vec::new()
        } else {
            self.log_found(entries).await?
        };
        self.warn_expiring();
        Ok(logged)
    }

    /// Entries for the revocations `directory`'s CRLs make that the log does not record yet,
    /// leaving out those `known` names; each is enforced at once, before its entry is written.
    fn revocation_entries(
        &self,
        directory: &Directory,
        known: impl Fn(&str) -> bool,
        actor: &str,
        now_ms: i64,
    ) -> Vec<Entry> {
        directory
            .trust
            .revoked_serials()
            .iter()
            .filter(|(serial, _)| !known(serial) && !self.registry.revocation_logged(serial))
            .map(|(serial, reason)| {
                let (subject, digest) = self.describe_serial(serial, directory);
                self.registry.revoke_now(
                    serial,
                    now_ms,
                    reason.as_deref().unwrap_or("unspecified"),
                );
                Entry::Admin(AdminEntry {
                    action: AdminAction::CertificateRevoked,
                    time_ms: now_ms,
                    actor: actor.to_owned(),
                    subject,
                    serial: Some(serial.clone()),
                    digest,
                    reason: reason.clone(),
                    certificate: None,
                })
            })
            .collect()
    }

    /// Who a serial number belongs to and the digest its revocation entry commits to: the
    /// certificate's DER when the CA or the signing registry knows it, else the CRLs'.
    fn describe_serial(&self, serial: &str, directory: &Directory) -> (String, [u8; 32]) {
        let listed = self
            .control
            .ca
            .as_ref()
            .and_then(|ca| ca.list().ok())
            .and_then(|all| all.into_iter().find(|c| c.serial == serial));
        if let Some(c) = listed {
            let member = c.member.map_or(c.common_name, |m| m.to_string());
            return (member, sha256(&c.der));
        }
        if let Some(c) = directory
            .signing_certs()
            .into_iter()
            .find(|c| c.serial == serial)
        {
            return (c.member.to_string(), sha256(&c.der));
        }
        let crls: Vec<u8> = directory
            .trust
            .crls()
            .iter()
            .flat_map(|c| c.as_ref().to_vec())
            .collect();
        ("unknown".into(), sha256(&crls))
    }

    /// Logs, at start, what changed in the files while no gateway ran, as a running gateway
    /// logs an edit (actor `operator`): the policy in force if it is not the one the log last
    /// recorded, and revocations in the CRLs that the log does not record. Until the log
    /// records a policy change, the reference policy is the one in force when this check
    /// first ran on the store; revocations already in the CRLs then are not logged.
    pub(crate) async fn log_edits_made_while_stopped(&self) -> Result<(), LogError> {
        let _lock = self.control.lock().await;
        let directory = self.directory();
        let store = &*self.store;
        let now_ms = now_ms();
        let mut entries = Vec::new();

        let current = directory.policy_source().digest;
        let logged = match self.registry.policy_digest() {
            Some(digest) => digest,
            None => {
                let first =
                    tlog::ensure_meta(store, tlog::FIRST_POLICY, &hex::encode(current)).await?;
                hex::decode(&first)
                    .ok()
                    .and_then(|d| <[u8; 32]>::try_from(d).ok())
                    .ok_or_else(|| {
                        LogError::Integrity(format!(
                            "the store's {} \"{first}\" is not a SHA-256 digest",
                            tlog::FIRST_POLICY
                        ))
                    })?
            }
        };
        if logged != current {
            entries.push(policy_changed(current, OPERATOR, now_ms));
        }

        let mut in_crls: Vec<&str> = directory
            .trust
            .revoked_serials()
            .keys()
            .map(String::as_str)
            .collect();
        in_crls.sort_unstable();
        let first_crls = tlog::ensure_meta(store, tlog::FIRST_CRLS, &in_crls.join(",")).await?;
        let first_crls: std::collections::HashSet<&str> = first_crls.split(',').collect();
        entries.extend(self.revocation_entries(
            &directory,
            |serial| first_crls.contains(serial),
            OPERATOR,
            now_ms,
        ));

        if !entries.is_empty() {
            self.log_found(entries).await?;
        }
        Ok(())
    }

    /// Appends administrative entries durably and takes them into the registry.
    pub(crate) async fn log_admin(&self, entries: &[Entry]) -> Result<Vec<Logged>, LogError> {
        let logged = self.log.append_durably(&*self.store, entries).await?;
        self.take_in(entries.iter().zip(&logged));
        Ok(logged)
    }

    /// As [`log_admin`](Self::log_admin), for changes found in the files, which every replica
    /// reading them finds: those the log already records (another gateway logged them) are
    /// left out. Returns the entries appended, with where each landed.
    async fn log_found(&self, entries: Vec<Entry>) -> Result<Vec<(Entry, Logged)>, LogError> {
        let logged = self
            .log
            .append_unrecorded_durably(&*self.store, &self.registry, entries)
            .await?;
        self.take_in(logged.iter().map(|(e, l)| (e, l)));
        Ok(logged)
    }

    /// Takes entries just appended into the registry, and reports each.
    fn take_in<'a>(&self, logged: impl Iterator<Item = (&'a Entry, &'a Logged)>) {
        for (e, l) in logged {
            if let Ok(bytes) = e.encode() {
                self.registry.apply(l.index, &bytes);
            }
            if let Entry::Admin(a) = e {
                tracing::info!(
                    target: "focalgate::admin",
                    kind = a.action.kind(),
                    actor = %a.actor,
                    subject = %a.subject,
                    serial = a.serial.as_deref().unwrap_or("-"),
                    "administrative act logged"
                );
            }
        }
    }

    /// Reads the log entries the registry has not seen (other gateways' administrative acts).
    pub async fn follow_log(&self) -> Result<(), crate::store::StoreError> {
        let size = self.store.log_size().await?;
        tlog::follow(&self.registry, size, tlog::EntrySource::Store(&*self.store)).await
    }

    /// Logs a warning for every certificate in use within the warning period.
    pub fn warn_expiring(&self) {
        let leaf = self.control.server_leaf();
        let items = expiry::in_use(&self.directory(), Some(&leaf));
        expiry::warn_all(&items, UnixTime::now().as_secs() as i64);
    }
}

/// Until `stop` fires: every `every`, reloads if a watched file changed and follows the log;
/// twice a day, repeats the expiry warnings. `every` of zero watches nothing (SIGHUP still
/// reloads). A round under way is finished first, so that no read of the store outlives the
/// gateway.
pub(crate) async fn watch(
    gateway: Arc<Gateway>,
    every: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    gateway.warn_expiring();
    let mut last_warning = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(if every.is_zero() {
        Duration::from_secs(1)
    } else {
        every
    });
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => return,
        }
        if !every.is_zero() {
            let mut prints = gateway.control.lock().await;
            if fingerprints(&watched(&gateway.control.paths)) != *prints {
                let _ = gateway
                    .reload_locked(&mut prints, "a configuration file changed", OPERATOR)
                    .await;
            }
        }
        if let Err(e) = gateway.follow_log().await {
            tracing::warn!(error = %e, "cannot follow the log");
        }
        if last_warning.elapsed() >= EXPIRY_WARNING_EVERY {
            last_warning = tokio::time::Instant::now();
            gateway.warn_expiring();
        }
    }
}
