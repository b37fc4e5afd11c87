//! `focalgate log status`, `receipt upgrade` and the check of `.tlog-proof` files: the
//! log's witnessed checkpoint, and receipts turned into proofs that a quorum of witnesses saw
//! the entry.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{Connection, log::LogKey};
use crate::{
    checkpoint::{self, policy::Policy},
    entry::Entry,
    merkle,
    proto::{
        GetCheckpointRequest, GetConsistencyProofRequest, GetInclusionProofRequest,
        GetLogStatusRequest, get_inclusion_proof_request::Leaf,
    },
    receipt::{self, ReceiptFile, format_timestamp},
    rpc::audit_client::AuditClient,
    tlog_proof::{self, TlogProof},
};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    connection: Connection,
    /// Write the hub's witness policy (C2SP tlog-policy) to this file; compare it with the
    /// copy you check checkpoints with.
    #[arg(long)]
    write_policy: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Receipt files (as written by `focalgate submit --receipt`); each gets a
    /// `.tlog-proof` beside it.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    connection: Connection,
    /// The C2SP tlog-policy the proofs must satisfy (log key, witnesses, quorum).
    #[arg(long)]
    policy: PathBuf,
}

fn failed(status: tonic::Status) -> String {
    super::describe_status(&status, |_| String::new())
}

/// Reads a C2SP tlog-policy file.
pub(super) fn read_policy(path: &Path) -> Result<Policy, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Policy::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub async fn status(args: StatusArgs) -> Result<(), String> {
    let mut audit = AuditClient::new(args.connection.connect().await?);
    let s = audit
        .get_log_status(GetLogStatusRequest {})
        .await
        .map_err(failed)?
        .into_inner();
    println!("log size          {}", s.tree_size);
    if s.policy.is_empty() {
        println!("witnessed size    - (the hub's policy names no witnesses)");
        return Ok(());
    }
    println!(
        "witnessed size    {} (lag {} entries)",
        s.witnessed_size,
        s.tree_size.saturating_sub(s.witnessed_size)
    );
    println!(
        "\n{:<8} {:<14} {:>8} {:>6}  {:<24} last error",
        "witness", "member", "size", "lag", "last cosigned"
    );
    for w in &s.witnesses {
        let when = w
            .cosigned_at
            .as_ref()
            .and_then(format_timestamp)
            .unwrap_or_else(|| "never".into());
        let error = if w.last_error.is_empty() {
            "-"
        } else {
            &w.last_error
        };
        println!(
            "{:<8} {:<14} {:>8} {:>6}  {:<24} {error}",
            w.name, w.member, w.size, w.lag, when
        );
    }
    if let Some(path) = &args.write_policy {
        std::fs::write(path, &s.policy).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("the hub's witness policy is in {}", path.display());
    }
    Ok(())
}

/// Turns each receipt into a `.tlog-proof` against the latest witnessed checkpoint, checked
/// with `policy` before it is written.
pub async fn upgrade(args: UpgradeArgs) -> Result<(), String> {
    let policy = read_policy(&args.policy)?;
    let mut audit = AuditClient::new(args.connection.connect().await?);
    let witnessed = audit
        .get_checkpoint(GetCheckpointRequest { tree_size: 0 })
        .await
        .map_err(failed)?
        .into_inner()
        .witnessed
        .ok_or("the gateway has no witnessed checkpoint yet: try again once a quorum of its witnesses cosigned one (focalgate log status)")?;
    let (opened, by) = policy.verify(witnessed.note.as_bytes()).map_err(|e| {
        format!(
            "the gateway's witnessed checkpoint does not count under {}: {e}",
            args.policy.display()
        )
    })?;
    let log = policy
        .logs()
        .find(|k| k.name() == opened.checkpoint().origin)
        .cloned()
        .ok_or("the policy names no log of this origin")?;
    let cp = opened.into_checkpoint();
    let mut refused = 0;
    for file in &args.files {
        match upgrade_one(&mut audit, file, &log, &cp, &witnessed.note, &policy).await {
            Ok(out) => println!(
                "OK  {} → {} (tree of {}, cosigned by {})",
                file.display(),
                out.display(),
                cp.size,
                by.join(", ")
            ),
            Err(e) => {
                refused += 1;
                println!("BAD {}: {e}", file.display());
            }
        }
    }
    match refused {
        0 => Ok(()),
        n => Err(format!(
            "{n} of {} receipt(s) not upgraded",
            args.files.len()
        )),
    }
}

async fn upgrade_one(
    audit: &mut AuditClient<tonic::transport::Channel>,
    file: &Path,
    log: &checkpoint::NoteVerifier,
    witnessed: &checkpoint::Checkpoint,
    note: &str,
    policy: &Policy,
) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let r = serde_json::from_str::<ReceiptFile>(&text)
        .map_err(|e| format!("not a receipt file: {e}"))?
        .to_receipt()
        .map_err(|e| e.to_string())?;
    let checked = receipt::verify_offline(&r, log).map_err(|e| e.to_string())?;
    if r.log_index >= witnessed.size {
        return Err(format!(
            "log entry {} is not witnessed yet (the witnessed tree has {} entries): try again later",
            r.log_index, witnessed.size
        ));
    }
    // The receipt's checkpoint and the witnessed one are one history.
    if checked.tree_size < witnessed.size {
        let proof = audit
            .get_consistency_proof(GetConsistencyProofRequest {
                from_size: checked.tree_size,
                to_size: witnessed.size,
            })
            .await
            .map_err(failed)?
            .into_inner();
        let hashes = merkle::decode_proof(&proof.hashes).map_err(|e| e.to_string())?;
        let old = checkpoint::open(r.checkpoint.as_bytes(), log, &[])
            .map_err(|e| e.to_string())?
            .into_checkpoint();
        merkle::verify_consistency(
            old.size,
            witnessed.size,
            &hashes,
            &old.root,
            &witnessed.root,
        )
        .map_err(|e| {
            format!("the receipt's checkpoint and the witnessed one are not one history: {e}")
        })?;
    }
    let inclusion = audit
        .get_inclusion_proof(GetInclusionProofRequest {
            leaf: Some(Leaf::LeafIndex(r.log_index)),
            tree_size: witnessed.size,
        })
        .await
        .map_err(failed)?
        .into_inner();
    let proof = TlogProof {
        extra: Some(r.log_entry.clone()),
        index: r.log_index,
        hashes: merkle::decode_proof(&inclusion.hashes).map_err(|e| e.to_string())?,
        checkpoint: note.to_owned(),
    };
    proof
        .verify(policy)
        .map_err(|e| format!("the proof the gateway gave does not verify: {e}"))?;
    let out = file.with_extension(tlog_proof::EXTENSION);
    std::fs::write(&out, proof.encode()).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// Checks a `.tlog-proof` file's text offline: with a policy, its quorum; with a log key
/// alone, the log's signature. Returns what to print.
pub(super) fn verify_proof(text: &str, key: &LogKey) -> Result<String, String> {
    let proof = TlogProof::parse(text).map_err(|e| e.to_string())?;
    let (cp, by, entry) = match key.policy()? {
        Some(policy) => proof.verify(&policy).map_err(|e| e.to_string())?,
        None => {
            // No witnesses to check: a policy of the log alone.
            let log = key.verifier()?;
            let policy =
                Policy::parse(&format!("log {log}\nquorum none\n")).map_err(|e| e.to_string())?;
            proof.verify(&policy).map_err(|e| e.to_string())?
        }
    };
    let what = match Entry::parse(entry) {
        Ok(Entry::Submission(s)) => format!("{} revision {}", s.submission_id, s.revision),
        Ok(Entry::Admin(a)) => format!("{} of {}", a.action.kind(), a.subject),
        Err(e) => return Err(format!("the entry is not a focalgate log entry: {e}")),
    };
    let witnessed = if by.is_empty() {
        "witnesses not checked (give --policy)".to_owned()
    } else {
        format!("cosigned by {}", by.join(", "))
    };
    Ok(format!(
        "{what}, log entry {} of {} ({witnessed})",
        proof.index, cp.size
    ))
}
