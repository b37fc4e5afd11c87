//! Which checkpoints count: a log key, the witnesses, and a quorum over them, in the policy
//! file form of C2SP tlog-policy (after Sigsum's):
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> <n|all|any> <member> <member> …
//! quorum <name|none>
//! ```
//!
//! Names (of witnesses and groups) share one namespace; a group names only what is defined
//! above it, so a policy has no cycles. A checkpoint counts when one of the logs signed it
//! and the witnesses whose cosignatures verify satisfy the quorum; a cosignature that does
//! not verify makes the whole note refused, never silently ignored.

use std::collections::{HashMap, HashSet};

use super::{CheckpointError, KeyType, NoteVerifier, VerifiedCheckpoint};

/// Most lines a policy may hold.
const MAX_LINES: usize = 1_000;

/// A witness of the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyWitness {
    /// Its name in the policy.
    pub name: String,
    /// Its cosigning key.
    pub key: NoteVerifier,
    /// Where it answers `add-checkpoint`, if the policy says.
    pub url: Option<String>,
}

/// What a quorum name stands for. Members are indices of names defined before.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Witness(usize),
    Group {
        threshold: usize,
        members: Vec<usize>,
    },
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    logs: Vec<(NoteVerifier, Option<String>)>,
    witnesses: Vec<PolicyWitness>,
    /// Every name, in definition order: a group's members come before it.
    nodes: Vec<(String, Node)>,
    /// The index of each name in `nodes`.
    names: HashMap<String, usize>,
    /// The index of the quorum's name; `None` for `quorum none`.
    quorum: Option<usize>,
}

/// Why a policy file was refused, with its line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("policy line {line}: {why}")]
pub struct PolicyError {
    /// The line, from 1 (0: the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

/// Why a checkpoint does not count under a policy.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// No log of the policy signed it, or a signature by a known key does not verify.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Signed by the log, but the witnesses that cosigned it are not a quorum.
    #[error("not witnessed: cosigned by {} of the policy's witnesses ({}), which is not its quorum {quorum}", .cosigned.len(), if .cosigned.is_empty() { "none".to_owned() } else { .cosigned.join(", ") })]
    NoQuorum {
        /// The witnesses whose cosignatures verified.
        cosigned: Vec<String>,
        /// The quorum's name.
        quorum: String,
    },
}

impl Policy {
    /// Parses a policy file.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let policy = Self::parse_lines(text, true)?;
        if policy.logs.is_empty() {
            return Err(PolicyError {
                line: 0,
                why: "a policy names at least one log".into(),
            });
        }
        Ok(policy)
    }

    /// Parses the witness part of a policy — witness, group and quorum lines, no log line —
    /// for a log that adds its own key with [`with_log`](Self::with_log).
    pub fn parse_roster(text: &str) -> Result<Self, PolicyError> {
        Self::parse_lines(text, false)
    }

    /// This policy, with `key` as (another) log whose checkpoints it accepts.
    pub fn with_log(mut self, key: NoteVerifier) -> Self {
        self.logs.push((key, None));
        self
    }

    fn parse_lines(text: &str, logs_allowed: bool) -> Result<Self, PolicyError> {
        let mut policy = Self {
            logs: Vec::new(),
            witnesses: Vec::new(),
            nodes: Vec::new(),
            names: HashMap::new(),
            quorum: None,
        };
        let mut quorum_seen = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let bad = |why: String| PolicyError { line, why };
            if line > MAX_LINES {
                return Err(bad(format!("a policy has at most {MAX_LINES} lines")));
            }
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let words: Vec<&str> = content.split_whitespace().collect();
            if quorum_seen {
                return Err(bad("nothing may follow the quorum line".into()));
            }
            match words.as_slice() {
                ["log", ..] if !logs_allowed => {
                    return Err(bad(
                        "a witness roster has no log line: the log's own key is implied".into(),
                    ));
                }
                ["log", vkey, rest @ ..] if rest.len() <= 1 => {
                    let key =
                        NoteVerifier::parse(vkey).map_err(|e| bad(format!("log key: {e}")))?;
                    if key.kind() != KeyType::Ed25519 {
                        return Err(bad("a log key is an Ed25519 (type 0x01) key".into()));
                    }
                    policy
                        .logs
                        .push((key, rest.first().map(|u| (*u).to_owned())));
                }
                ["witness", name, vkey, rest @ ..] if rest.len() <= 1 => {
                    policy.define(name).map_err(bad)?;
                    let key =
                        NoteVerifier::parse(vkey).map_err(|e| bad(format!("witness key: {e}")))?;
                    if policy.witnesses.iter().any(|w| w.key == key) {
                        return Err(bad(format!("the key of {name} is another witness's too")));
                    }
                    policy.add(name, Node::Witness(policy.witnesses.len()));
                    policy.witnesses.push(PolicyWitness {
                        name: (*name).to_owned(),
                        key,
                        url: rest.first().map(|u| (*u).to_owned()),
                    });
                }
                ["group", name, threshold, members @ ..] if !members.is_empty() => {
                    policy.define(name).map_err(bad)?;
                    let mut indices = Vec::with_capacity(members.len());
                    for m in members {
                        let Some(&i) = policy.names.get(*m) else {
                            return Err(bad(format!("{m} is not defined above")));
                        };
                        if indices.contains(&i) {
                            return Err(bad(format!("{m} is named twice in the group")));
                        }
                        indices.push(i);
                    }
                    let threshold = match *threshold {
                        "all" => members.len(),
                        "any" => 1,
                        n => n
                            .parse::<usize>()
                            .ok()
                            .filter(|&n| (1..=members.len()).contains(&n))
                            .ok_or_else(|| {
                                bad(format!(
                                    "threshold {n}: all, any, or a number from 1 to {}",
                                    members.len()
                                ))
                            })?,
                    };
                    policy.add(
                        name,
                        Node::Group {
                            threshold,
                            members: indices,
                        },
                    );
                }
                ["quorum", "none"] => quorum_seen = true,
                ["quorum", name] => {
                    let Some(&i) = policy.names.get(*name) else {
                        return Err(bad(format!("{name} is not defined above")));
                    };
                    policy.quorum = Some(i);
                    quorum_seen = true;
                }
                [keyword, ..] => {
                    return Err(bad(format!(
                        "\"{}\" is not a policy line (log, witness, group, quorum) or has the wrong number of fields",
                        keyword.chars().take(20).collect::<String>()
                    )));
                }
                [] => {}
            }
        }
        if !quorum_seen {
            return Err(PolicyError {
                line: 0,
                why: "a policy ends with its quorum line (quorum <name>, or quorum none)".into(),
            });
        }
        Ok(policy)
    }

    fn add(&mut self, name: &str, node: Node) {
        self.names.insert(name.to_owned(), self.nodes.len());
        self.nodes.push((name.to_owned(), node));
    }

    fn define(&self, name: &str) -> Result<(), String> {
        if name == "none" {
            return Err("\"none\" is reserved".into());
        }
        if self.names.contains_key(name) {
            return Err(format!("{name} is defined twice"));
        }
        Ok(())
    }

    /// The witnesses, in policy order.
    pub fn witnesses(&self) -> &[PolicyWitness] {
        &self.witnesses
    }

    /// The log keys.
    pub fn logs(&self) -> impl Iterator<Item = &NoteVerifier> {
        self.logs.iter().map(|(k, _)| k)
    }

    /// Whether the witnesses named `cosigned` are a quorum. Each name is decided once, in
    /// definition order, so the cost is linear in the policy's size however groups nest.
    pub fn satisfied_by(&self, cosigned: &HashSet<&str>) -> bool {
        let Some(quorum) = self.quorum else {
            return true;
        };
        let mut holds = Vec::with_capacity(self.nodes.len());
        for (_, node) in &self.nodes {
            holds.push(match node {
                Node::Witness(i) => cosigned.contains(self.witnesses[*i].name.as_str()),
                Node::Group { threshold, members } => {
                    members.iter().filter(|&&m| holds[m]).count() >= *threshold
                }
            });
        }
        holds[quorum]
    }

    /// Opens a checkpoint note: signed by one of the policy's logs, and cosigned by a quorum
    /// of its witnesses (every cosignature by a known witness verifying).
    pub fn verify(&self, note: &[u8]) -> Result<(VerifiedCheckpoint, Vec<String>), QuorumError> {
        let keys: Vec<NoteVerifier> = self.witnesses.iter().map(|w| w.key.clone()).collect();
        let text = std::str::from_utf8(note).map_err(|_| CheckpointError::Malformed)?;
        let origin = text.lines().next().unwrap_or("");
        let log = self.logs().find(|k| k.name() == origin).ok_or_else(|| {
            CheckpointError::WrongOrigin {
                expected: self
                    .logs()
                    .map(NoteVerifier::name)
                    .collect::<Vec<_>>()
                    .join(" or "),
                found: origin.chars().take(100).collect(),
            }
        })?;
        let opened = super::open(note, log, &keys)?;
        let cosigned: Vec<String> = self
            .witnesses
            .iter()
            .filter(|w| {
                opened
                    .note()
                    .verified()
                    .iter()
                    .any(|s| s.name == w.key.name() && s.key_id == w.key.key_id())
            })
            .map(|w| w.name.clone())
            .collect();
        let set: HashSet<&str> = cosigned.iter().map(String::as_str).collect();
        if !self.satisfied_by(&set) {
            return Err(QuorumError::NoQuorum {
                cosigned,
                quorum: self
                    .quorum
                    .map_or_else(|| "none".into(), |i| self.nodes[i].0.clone()),
            });
        }
        Ok((opened, cosigned))
    }
}

#[cfg(test)]
mod tests;
