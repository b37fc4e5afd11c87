//! `focalgate log key|verify|monitor` and `focalgate receipt verify`: checking the transparency
//! log and receipts without trusting the hub's operator, with the log's verifier key alone.

use crate::rpc::{audit_client::AuditClient, submissions_client::SubmissionsClient};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use rustls_pki_types::UnixTime;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::{Connection, ca::lists};
use crate::{
    checkpoint::{self, Checkpoint, NoteVerifier, policy::Policy},
    config::Settings,
    entry::{Entry, SubmissionEntry},
    envelope,
    identity::{Registry, Trust, cert_digest_hex, public_key_of},
    merkle::{self, CompactTree, Hash},
    proto::{
        GetCheckpointRequest, GetConsistencyProofRequest, GetEntriesRequest,
        GetInclusionProofRequest, GetSubmissionRequest, get_inclusion_proof_request::Leaf,
    },
    receipt::{self, ReceiptFile},
    schema::SUBMISSION_PAYLOAD_TYPE,
    tlog::monitor::{self, Growth},
};

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print the log's verifier key (name+keyid+key), as the gateway wrote it to its data directory.
    Key {
        /// The gateway's configuration file.
        #[arg(long, env = "FOCALGATE_CONFIG")]
        config: Option<PathBuf>,
        /// The demo gateway's.
        #[arg(long)]
        demo: bool,
    },
    /// Download every entry, recompute the root, check it against the signed checkpoint, and
    /// re-verify every submission's signature and certificate chain.
    Verify(VerifyArgs),
    /// Check that the log only grew since the last run: a consistency proof from the checkpoint
    /// remembered in the state file to the current one.
    Monitor(MonitorArgs),
    /// The log's size, its witnessed size, and each witness's last cosigned size, lag and
    /// last error.
    Status(super::witnessed::StatusArgs),
}

/// What checkpoints are checked with: the log's verifier key (`--log-key` or
/// FOCALGATE_LOG_KEY, the key itself or a file holding it), or a C2SP tlog-policy
/// (`--policy`) naming the log, its witnesses and the quorum a checkpoint needs.
#[derive(Debug, Args)]
pub struct LogKey {
    /// The log's verifier key (name+keyid+base64), or a file holding it (`focalgate log key`).
    /// Not needed with --policy.
    #[arg(
        long = "log-key",
        env = "FOCALGATE_LOG_KEY",
        required_unless_present = "policy"
    )]
    log_key: Option<String>,
    /// A C2SP tlog-policy file (`focalgate log status --write-policy`): a checkpoint counts
    /// only when a quorum of its witnesses cosigned it.
    #[arg(long)]
    policy: Option<PathBuf>,
}

impl LogKey {
    /// The log's key: `--log-key`, or the policy's log.
    pub(super) fn verifier(&self) -> Result<NoteVerifier, String> {
        if let Some(k) = &self.log_key {
            return verifier_arg("--log-key", k);
        }
        let policy = self.policy()?.ok_or("give --log-key or --policy")?;
        let mut logs = policy.logs();
        match (logs.next(), logs.next()) {
            (Some(k), None) => Ok(k.clone()),
            _ => Err("the policy names several logs: say which with --log-key".into()),
        }
    }

    /// The policy, if one was given.
    pub(super) fn policy(&self) -> Result<Option<Policy>, String> {
        self.policy
            .as_deref()
            .map(super::witnessed::read_policy)
            .transpose()
    }
}

/// A verifier key given on the command line as `flag`: the key itself, or a file holding it.
pub(super) fn verifier_arg(flag: &str, arg: &str) -> Result<NoteVerifier, String> {
    let text = match std::fs::read_to_string(arg) {
        Ok(text) => text,
        Err(_) if !Path::new(arg).exists() => arg.to_owned(),
        Err(e) => return Err(format!("{flag} {arg}: {e}")),
    };
    NoteVerifier::parse(text.trim()).map_err(|e| format!("{flag}: not a verifier key ({e})"))
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(flatten)]
    key: LogKey,
    /// Submissions re-verified at the same time.
    #[arg(long, default_value_t = 16)]
    parallel: usize,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(flatten)]
    key: LogKey,
    /// Where the last verified checkpoint is kept between runs.
    #[arg(long)]
    state: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Check receipt files offline: the gateway's signature, the log entry, the signed
    /// checkpoint and the inclusion proof; and `.tlog-proof` files (`receipt upgrade`), with
    /// --policy their witnesses' quorum.
    Verify {
        /// Receipt files (as written by `focalgate submit --receipt`) or `.tlog-proof` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        key: LogKey,
    },
    /// Turn receipts into C2SP tlog-proof files (`.tlog-proof`) against the latest witnessed
    /// checkpoint: proof, offline, that a quorum of witnesses saw the entry.
    Upgrade(super::witnessed::UpgradeArgs),
}

pub async fn run(cmd: LogCommand) -> Result<(), String> {
    match cmd {
        LogCommand::Key { config, demo } => {
            let settings = Settings::load(config.as_deref(), demo).map_err(|e| e.to_string())?;
            let path = settings.data_dir.join("log.vkey");
            let vkey = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: {e} (the gateway writes it at start)", path.display()))?;
            print!("{vkey}");
            Ok(())
        }
        LogCommand::Verify(args) => verify(args).await,
        LogCommand::Monitor(args) => monitor(args).await,
        LogCommand::Status(args) => super::witnessed::status(args).await,
    }
}

pub async fn run_receipt(cmd: ReceiptCommand) -> Result<(), String> {
    let (files, key) = match cmd {
        ReceiptCommand::Verify { files, key } => (files, key),
        ReceiptCommand::Upgrade(args) => return super::witnessed::upgrade(args).await,
    };
    let log = key.verifier()?;
    let witnessed = key.policy()?.is_some();
    let mut failed = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| e.to_string());
        let checked = text.and_then(|text| {
            if text.starts_with(crate::tlog_proof::HEADER) {
                return super::witnessed::verify_proof(&text, &key);
            }
            let r = serde_json::from_str::<ReceiptFile>(&text)
                .map_err(|e| format!("not a receipt or tlog-proof file: {e}"))?
                .to_receipt()
                .map_err(|e| e.to_string())?;
            let v = receipt::verify_offline(&r, &log).map_err(|e| e.to_string())?;
            if witnessed {
                return Err(format!(
                    "a receipt carries the log's checkpoint, not a witnessed one: the policy's \
                     quorum cannot be checked (turn it into a .tlog-proof with `focalgate receipt \
                     upgrade`); its own signature and proof verify (log entry {} of {})",
                    v.receipt.log_index, v.tree_size
                ));
            }
            Ok(format!(
                "{} revision {}, log entry {} of {} (checkpoint signed by {})",
                v.receipt.submission_id,
                v.receipt.revision,
                v.receipt.log_index,
                v.tree_size,
                log.name()
            ))
        });
        match checked {
            Ok(what) => println!("OK  {}: {what}", file.display()),
            Err(e) => {
                failed += 1;
                println!("BAD {}: {e}", file.display());
            }
        }
    }
    if failed > 0 {
        Err(format!(
            "{failed} of {} receipt(s) do not verify",
            files.len()
        ))
    } else {
        Ok(())
    }
}

fn failed(status: tonic::Status) -> String {
    super::describe_status(&status, |_| String::new())
}

/// Fetches and opens the latest checkpoint; with a policy, the latest witnessed one, which
/// must have the policy's quorum.
async fn latest(
    audit: &mut AuditClient<tonic::transport::Channel>,
    key: &NoteVerifier,
    policy: Option<&Policy>,
) -> Result<(Checkpoint, String), String> {
    let cp = audit
        .get_checkpoint(GetCheckpointRequest { tree_size: 0 })
        .await
        .map_err(failed)?
        .into_inner();
    let Some(policy) = policy else {
        let opened = checkpoint::open(cp.note.as_bytes(), key, &[]).map_err(|e| {
            format!("the gateway's checkpoint does not verify with the log key: {e}")
        })?;
        return Ok((opened.into_checkpoint(), cp.note));
    };
    let w = cp.witnessed.ok_or(
        "not witnessed: the gateway has no checkpoint that a quorum of witnesses cosigned \
         (focalgate log status shows each witness)",
    )?;
    let (opened, _) = policy
        .verify(w.note.as_bytes())
        .map_err(|e| format!("the gateway's witnessed checkpoint does not count: {e}"))?;
    if opened.checkpoint().origin != key.name() {
        return Err(format!(
            "the witnessed checkpoint is of log {}, not {}",
            opened.checkpoint().origin,
            key.name()
        ));
    }
    Ok((opened.into_checkpoint(), w.note))
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what} ({{per_sec}}, {{eta}} left)");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

async fn verify(args: VerifyArgs) -> Result<(), String> {
    let key = args.key.verifier()?;
    let channel = args.connection.connect().await?;
    let mut audit = AuditClient::new(channel.clone());
    let (cp, _) = latest(&mut audit, &key, args.key.policy()?.as_ref()).await?;
    let started = std::time::Instant::now();

    // 1. Every entry, in order, into a compact tree and the registry of what the log says
    // about certificates.
    let registry = Arc::new(Registry::new(Arc::new(lists()?)));
    let downloaded = download(&mut audit, &cp, &registry).await?;

    // 2. The recomputed root against the signed one; on a mismatch, find the first entry that
    // is not what the tree committed to.
    if downloaded.root != cp.root {
        let bad = first_bad_entry(&mut audit, &downloaded.leaves, &cp).await?;
        return Err(format!(
            "entry {bad} is not the entry the signed tree of size {} holds: the entries recompute root {}, the checkpoint says {}",
            cp.size, downloaded.root, cp.root
        ));
    }

    // 3. Every submission's signature and certificate chain, from the stored envelope.
    let ca = std::fs::read(args.connection.identity().file("ca.pem"))
        .map_err(|e| format!("ca.pem: {e}"))?;
    let trust = Arc::new(Trust::from_bytes("ca.pem", &ca, &[]).map_err(|e| e.to_string())?);
    let logged_submissions = downloaded.submissions.len();
    let tally = reverify_all(
        SubmissionsClient::new(channel),
        &trust,
        &registry,
        downloaded.submissions,
        args.parallel,
    )
    .await?;

    let checked = downloaded.leaves.len();
    let problems: Vec<&String> = downloaded.problems.iter().chain(&tally.problems).collect();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        return Err(format!(
            "{} problem(s) in the log of {checked} entries",
            problems.len()
        ));
    }
    println!(
        "log {} verified: {checked} entries recompute the signed root {} ({:.0} entries/s)",
        cp.origin,
        cp.root,
        checked as f64 / started.elapsed().as_secs_f64().max(1e-9)
    );
    println!(
        "{} submission signature(s) and certificate chain(s) re-verified; {} revocation(s) and {} signing certificate(s) in the log",
        logged_submissions - tally.unreadable - tally.from_log,
        registry.revocation_count(),
        registry.signing_certs().len()
    );
    if tally.from_log > 0 {
        println!(
            "{} submission(s) not readable with this identity: their signing certificates were checked from the log alone",
            tally.from_log
        );
    }
    if tally.unreadable > 0 {
        println!(
            "{} submission(s) not readable with this identity were not re-verified (use an auditor identity)",
            tally.unreadable
        );
    }
    Ok(())
}

/// The log's entries up to a checkpoint, as downloaded.
struct Downloaded {
    /// The root they recompute.
    root: Hash,
    /// Their leaf hashes, in order.
    leaves: Vec<Hash>,
    /// The submission entries, with their indices.
    submissions: Vec<(u64, SubmissionEntry)>,
    /// Entries that are not well-formed.
    problems: Vec<String>,
}

/// Every entry of the tree of `cp`, in order; each administrative act goes to `registry`.
async fn download(
    audit: &mut AuditClient<tonic::transport::Channel>,
    cp: &Checkpoint,
    registry: &Registry,
) -> Result<Downloaded, String> {
    let bar = progress(cp.size, "entries");
    let mut tree = CompactTree::default();
    let mut out = Downloaded {
        root: tree.root(),
        leaves: Vec::with_capacity(cp.size as usize),
        submissions: Vec::new(),
        problems: Vec::new(),
    };
    while tree.size() < cp.size {
        let mut stream = audit
            .get_entries(GetEntriesRequest {
                start: tree.size(),
                end: cp.size,
            })
            .await
            .map_err(failed)?
            .into_inner();
        let before = tree.size();
        while let Some(e) = stream.message().await.map_err(failed)? {
            if e.index != tree.size() {
                return Err(format!(
                    "the gateway sent entry {} where entry {} was due",
                    e.index,
                    tree.size()
                ));
            }
            let leaf = merkle::leaf_hash(&e.entry);
            match Entry::parse(&e.entry) {
                Ok(Entry::Submission(s)) => out.submissions.push((e.index, s)),
                Ok(Entry::Admin(_)) => registry.follow(e.index, &e.entry),
                Err(_) => out
                    .problems
                    .push(format!("entry {}: not a well-formed log entry", e.index)),
            }
            tree.push(leaf);
            out.leaves.push(leaf);
            bar.inc(1);
        }
        if tree.size() == before {
            return Err(format!(
                "the gateway sent no entries from {before} on, but its checkpoint has {}",
                cp.size
            ));
        }
    }
    bar.finish_and_clear();
    out.root = tree.root();
    Ok(out)
}

/// How the re-verification of the logged submissions went.
#[derive(Default)]
struct Tally {
    /// Not readable with this identity, and not checked.
    unreadable: usize,
    /// Not readable, but their certificates checked from the log.
    from_log: usize,
    /// What failed, per entry.
    problems: Vec<String>,
}

/// Re-verifies every logged submission, `parallel` at a time.
async fn reverify_all(
    client: SubmissionsClient<tonic::transport::Channel>,
    trust: &Arc<Trust>,
    registry: &Arc<Registry>,
    submissions: Vec<(u64, SubmissionEntry)>,
    parallel: usize,
) -> Result<Tally, String> {
    let bar = progress(submissions.len() as u64, "signatures");
    let mut tally = Tally::default();
    let mut tasks = JoinSet::new();
    let mut pending = submissions.into_iter();
    loop {
        while tasks.len() < parallel.max(1) {
            let Some((index, entry)) = pending.next() else {
                break;
            };
            let (mut client, trust, registry) = (client.clone(), trust.clone(), registry.clone());
            tasks.spawn(async move {
                let outcome = match reverify(&mut client, &trust, &entry).await {
                    Reverified::Ok(cert) => revoked_before(&registry, index, &entry, &cert),
                    Reverified::Unreadable => from_log(&trust, &registry, index, &entry),
                    other => other,
                };
                (index, outcome)
            });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        let (index, outcome) = done.map_err(|e| e.to_string())?;
        match outcome {
            Reverified::Ok(_) => {}
            Reverified::FromLog => tally.from_log += 1,
            Reverified::Unreadable => tally.unreadable += 1,
            Reverified::Bad(why) => tally.problems.push(format!("entry {index}: {why}")),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(tally)
}

/// A submission this identity may not read: its signing certificate checked from the log
/// alone, if the log carries it.
fn from_log(trust: &Trust, registry: &Registry, index: u64, entry: &SubmissionEntry) -> Reverified {
    let Some(cert) = registry.signing(&hex::encode(entry.signing_cert_digest)) else {
        return Reverified::Unreadable;
    };
    if let Err(why) = check_certificate(trust, entry, &cert.der) {
        return Reverified::Bad(why);
    }
    match revoked_before(registry, index, entry, &cert.der) {
        Reverified::Ok(_) => Reverified::FromLog,
        other => other,
    }
}

/// The first entry whose leaf is not the one the signed tree holds. Entries `[0, i]` are all
/// authentic exactly when leaf `i` proves into the signed root *and* the proof's left siblings
/// (which tile `[0, i)`) equal the hashes recomputed from the downloaded entries, so the first
/// bad entry is found by bisection with O(log n) proofs.
async fn first_bad_entry(
    audit: &mut AuditClient<tonic::transport::Channel>,
    leaves: &[Hash],
    cp: &Checkpoint,
) -> Result<u64, String> {
    let (mut lo, mut hi) = (0u64, cp.size - 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if prefix_authentic(audit, leaves, cp, mid).await? {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

async fn prefix_authentic(
    audit: &mut AuditClient<tonic::transport::Channel>,
    leaves: &[Hash],
    cp: &Checkpoint,
    index: u64,
) -> Result<bool, String> {
    let proof = audit
        .get_inclusion_proof(GetInclusionProofRequest {
            leaf: Some(Leaf::LeafIndex(index)),
            tree_size: cp.size,
        })
        .await
        .map_err(failed)?
        .into_inner();
    let Ok(hashes) = merkle::decode_proof(&proof.hashes) else {
        return Ok(false);
    };
    if merkle::verify_inclusion(index, cp.size, &leaves[index as usize], &hashes, &cp.root).is_err()
    {
        return Ok(false);
    }
    let ranges = merkle::inclusion_proof_ranges(index, cp.size);
    Ok(ranges
        .iter()
        .zip(&hashes)
        .filter(|((_, end), _)| *end <= index)
        .all(|(&(a, b), h)| merkle::subtree_root(&leaves[a as usize..b as usize]) == *h))
}

enum Reverified {
    /// Signature and certificate verified; the certificate.
    Ok(Vec<u8>),
    /// Not readable, but the certificate it names is in the log and checked.
    FromLog,
    Unreadable,
    Bad(String),
}

/// A submission at `index` may not be signed with a certificate the log revoked before it:
/// the log's order is the evidence of when the signature was accepted.
fn revoked_before(
    registry: &Registry,
    index: u64,
    entry: &SubmissionEntry,
    cert: &[u8],
) -> Reverified {
    let serial = x509_parser::parse_x509_certificate(cert)
        .map(|(_, c)| hex::encode(c.raw_serial()))
        .unwrap_or_default();
    match registry.revocation(&serial).and_then(|r| r.index) {
        Some(r) if r < index => Reverified::Bad(format!(
            "{}: signed with certificate {serial}, which the log revoked at entry {r}",
            entry.submission_id
        )),
        _ => Reverified::Ok(cert.to_vec()),
    }
}

/// The certificate must have been valid, and chained to the CA, when the log took the
/// submission.
fn check_certificate(trust: &Trust, entry: &SubmissionEntry, cert: &[u8]) -> Result<(), String> {
    let at =
        UnixTime::since_unix_epoch(std::time::Duration::from_millis(entry.time_ms.max(0) as u64));
    trust
        .check_signing_cert(cert, at)
        .map_err(|why| format!("{}: {why}", entry.submission_id))
}

/// Re-verifies one submission from its stored envelope and certificate, against its log entry.
async fn reverify(
    client: &mut SubmissionsClient<tonic::transport::Channel>,
    trust: &Trust,
    entry: &SubmissionEntry,
) -> Reverified {
    let s = match client
        .get_submission(GetSubmissionRequest {
            submission_id: entry.submission_id.clone(),
        })
        .await
    {
        Ok(s) => s.into_inner(),
        Err(s) if s.code() == tonic::Code::PermissionDenied => return Reverified::Unreadable,
        // The log records it, and the gateway says it has no such submission: it was removed.
        Err(s) if s.code() == tonic::Code::NotFound => {
            return Reverified::Bad(format!(
                "{}: the log records this submission, but the gateway's store does not hold it",
                entry.submission_id
            ));
        }
        Err(s) => return Reverified::Bad(format!("{}: {}", entry.submission_id, failed(s))),
    };
    let sha = |b: &[u8]| {
        ring::digest::digest(&ring::digest::SHA256, b)
            .as_ref()
            .to_vec()
    };
    if sha(&s.envelope_bytes) != entry.envelope_digest {
        return Reverified::Bad(format!(
            "{}: the stored envelope is not the logged one",
            entry.submission_id
        ));
    }
    if cert_digest_hex(&s.signing_certificate) != hex::encode(entry.signing_cert_digest) {
        return Reverified::Bad(format!(
            "{}: the signing certificate is not the logged one",
            entry.submission_id
        ));
    }
    let env = match crate::proto::SignedEnvelope::decode(s.envelope_bytes.as_slice()) {
        Ok(env) => env,
        Err(_) => {
            return Reverified::Bad(format!(
                "{}: the stored envelope does not decode",
                entry.submission_id
            ));
        }
    };
    if sha(&env.payload) != entry.payload_digest {
        return Reverified::Bad(format!(
            "{}: the payload is not the logged one",
            entry.submission_id
        ));
    }
    let key = match public_key_of(&s.signing_certificate) {
        Ok(k) => k,
        Err(e) => return Reverified::Bad(format!("{}: {e}", entry.submission_id)),
    };
    let keyid = cert_digest_hex(&s.signing_certificate);
    let verified = envelope::verify(&env, SUBMISSION_PAYLOAD_TYPE, |id| {
        if id == keyid {
            Ok(((), key.clone()))
        } else {
            Err("not the logged certificate")
        }
    });
    if let Err(e) = verified {
        return Reverified::Bad(format!("{}: {e}", entry.submission_id));
    }
    match check_certificate(trust, entry, &s.signing_certificate) {
        Ok(()) => Reverified::Ok(s.signing_certificate),
        Err(why) => Reverified::Bad(why),
    }
}

/// What `log monitor` remembers between runs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorState {
    /// The last checkpoint verified, as signed.
    checkpoint: String,
}

async fn monitor(args: MonitorArgs) -> Result<(), String> {
    let key = args.key.verifier()?;
    let mut audit = AuditClient::new(args.connection.connect().await?);
    let (new, note) = latest(&mut audit, &key, args.key.policy()?.as_ref()).await?;
    let old = match std::fs::read_to_string(&args.state) {
        Ok(text) => {
            let state: MonitorState = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a monitor state file: {e}", args.state.display()))?;
            let old = checkpoint::open(state.checkpoint.as_bytes(), &key, &[]).map_err(|e| {
                format!(
                    "{}: the remembered checkpoint does not verify: {e}",
                    args.state.display()
                )
            })?;
            Some(old.into_checkpoint())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", args.state.display())),
    };
    match &old {
        None => println!(
            "first run: remembering checkpoint of size {} (root {})",
            new.size, new.root
        ),
        Some(old) => {
            let proof = match monitor::proof_needed(old, &new) {
                Some((from_size, to_size)) => {
                    let proof = audit
                        .get_consistency_proof(GetConsistencyProofRequest { from_size, to_size })
                        .await
                        .map_err(failed)?
                        .into_inner();
                    merkle::decode_proof(&proof.hashes)
                        .map_err(|e| format!("the gateway's consistency proof is malformed: {e}"))?
                }
                None => Vec::new(),
            };
            match monitor::step(old, &new, &proof) {
                Ok(Growth::Unchanged) => println!(
                    "the log has not grown: {} entries, root {}",
                    new.size, new.root
                ),
                Ok(Growth::Grew { from, to }) => println!(
                    "the log grew from {from} to {to} entries, consistently (root {})",
                    new.root
                ),
                Err(e) => {
                    return Err(format!(
                        "{}: the log {} {e}; keep {} as evidence",
                        e.kind(),
                        key.name(),
                        args.state.display()
                    ));
                }
            }
        }
    }
    let state = serde_json::to_string_pretty(&MonitorState { checkpoint: note })
        .map_err(|e| e.to_string())?;
    let tmp = args.state.with_extension("tmp");
    std::fs::write(&tmp, state)
        .and_then(|()| std::fs::rename(&tmp, &args.state))
        .map_err(|e| format!("{}: {e}", args.state.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_logged_after_its_certificates_revocation_is_a_problem() {
        let pem =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-example/KAZ/signing.pem");
        let cert = crate::tls::read_chain(&pem).unwrap().remove(0).to_vec();
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
        let registry = Registry::new(Arc::new(lists().unwrap()));
        let revocation = Entry::Admin(crate::entry::AdminEntry {
            action: crate::entry::AdminAction::CertificateRevoked,
            time_ms: 0,
            actor: "EU:admin".into(),
            subject: "KAZ:nfp".into(),
            serial: Some(hex::encode(parsed.raw_serial())),
            digest: [0; 32],
            reason: Some("keyCompromise".into()),
            certificate: None,
        });
        registry.follow(5, &revocation.encode().unwrap());
        let entry = SubmissionEntry {
            time_ms: 0,
            submission_id: "KAZ.SEIZURES.2024.r1".into(),
            member: "KAZ:nfp".into(),
            dataflow: "SEIZURES".into(),
            ref_area: "KAZ".into(),
            time_period: "2024".into(),
            revision: 1,
            payload_digest: [0; 32],
            envelope_digest: [0; 32],
            signing_cert_digest: [0; 32],
        };
        assert!(matches!(
            revoked_before(&registry, 4, &entry, &cert),
            Reverified::Ok(_)
        ));
        match revoked_before(&registry, 6, &entry, &cert) {
            Reverified::Bad(why) => assert!(why.contains("revoked at entry 5"), "{why}"),
            _ => panic!("a signature after the revocation must be reported"),
        }
    }
}
