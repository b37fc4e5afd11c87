//! C2SP tlog-proof files (`c2sp.org/tlog-proof@v1`, `.tlog-proof`): an entry, its index, its
//! inclusion path and a checkpoint with the witnesses' cosignatures — proof, offline and with
//! public keys alone, that the entry is in a tree a quorum of witnesses saw.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the entry's exact bytes>
//! index <N>
//! <base64 hash, leaf side first>…
//!
//! <the checkpoint note, its signature and cosignatures included>
//! ```
//!
//! focalgate's `extra` is the log entry itself: the leaf is `SHA-256(0x00 || extra)`.

use base64::{Engine as _, engine::general_purpose::STANDARD};

use crate::{
    checkpoint::{
        Checkpoint,
        policy::{Policy, QuorumError},
    },
    merkle::{self, Hash, ProofError},
};

/// The first line.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The file extension, without its dot.
pub const EXTENSION: &str = "tlog-proof";

/// Largest proof file read.
pub const MAX_BYTES: usize = 64 * 1024;

/// Most hashes an inclusion path has (a tree of 2^64 entries).
const MAX_HASHES: usize = 64;

/// A parsed proof file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// The opaque extra data: here the entry's bytes.
    pub extra: Option<Vec<u8>>,
    /// The entry's index.
    pub index: u64,
    /// The inclusion path, leaf side first.
    pub hashes: Vec<Hash>,
    /// The checkpoint note, verbatim.
    pub checkpoint: String,
}

/// Why a proof file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProofFileError {
    /// Not the format.
    #[error("not a tlog-proof: {0}")]
    Malformed(String),
    /// No `extra` line: nothing to prove the inclusion of.
    #[error("the proof carries no entry (no extra line)")]
    NoEntry,
    /// The checkpoint does not count under the policy.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// The entry is not in the checkpoint's tree.
    #[error("the entry is not in the checkpoint's tree: {0}")]
    Inclusion(#[from] ProofError),
}

impl TlogProof {
    /// The file's text.
    pub fn encode(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", STANDARD.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.hashes {
            out.push_str(&STANDARD.encode(h.as_bytes()));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses a proof file, checking its form only.
    pub fn parse(text: &str) -> Result<Self, ProofFileError> {
        let bad = |why: &str| ProofFileError::Malformed(why.to_owned());
        if text.len() > MAX_BYTES {
            return Err(bad("larger than 64 KiB"));
        }
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(bad("the first line is not c2sp.org/tlog-proof@v1"));
        }
        let mut line = lines.next().ok_or_else(|| bad("no index line"))?;
        let extra = match line.strip_prefix("extra ") {
            Some(b64) => {
                let bytes = STANDARD
                    .decode(b64)
                    .map_err(|_| bad("the extra line is not base64"))?;
                line = lines.next().ok_or_else(|| bad("no index line"))?;
                Some(bytes)
            }
            None => None,
        };
        let index = line
            .strip_prefix("index ")
            .filter(|n| *n == "0" || !n.starts_with('0'))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| bad("no index line (index <decimal>)"))?;
        let mut hashes = Vec::new();
        for l in lines {
            if hashes.len() == MAX_HASHES {
                return Err(bad("more than 64 proof hashes"));
            }
            let h = STANDARD
                .decode(l)
                .ok()
                .and_then(|b| Hash::from_bytes(&b))
                .ok_or_else(|| bad("a proof line is not a base64 SHA-256 hash"))?;
            hashes.push(h);
        }
        Ok(Self {
            extra,
            index,
            hashes,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Checks the proof offline: the checkpoint signed by a log of `policy` and cosigned by a
    /// quorum of its witnesses, and the entry in its tree at the index. Returns the
    /// checkpoint, the witnesses that cosigned it, and the entry's bytes.
    pub fn verify(
        &self,
        policy: &Policy,
    ) -> Result<(Checkpoint, Vec<String>, &[u8]), ProofFileError> {
        let entry = self.extra.as_deref().ok_or(ProofFileError::NoEntry)?;
        let (opened, cosigned) = policy.verify(self.checkpoint.as_bytes())?;
        let cp = opened.into_checkpoint();
        merkle::verify_inclusion(
            self.index,
            cp.size,
            &merkle::leaf_hash(entry),
            &self.hashes,
            &cp.root,
        )?;
        Ok((cp, cosigned, entry))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::checkpoint::{KeyType, NoteSigner, note};

    fn signer(name: &str, kind: KeyType, seed: u8) -> NoteSigner {
        NoteSigner::from_seed(name, kind, &[seed; 32]).unwrap()
    }

    /// A tree of five entries, its checkpoint cosigned by `by` of three witnesses, and the
    /// 2-of-3 policy.
    fn fixture(by: &[u8]) -> (TlogProof, Policy) {
        let log = signer("log.example", KeyType::Ed25519, 1);
        let entries: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'e', i]).collect();
        let mut nodes = merkle::Nodes::new();
        for (i, e) in entries.iter().enumerate() {
            let added = merkle::append(i as u64, merkle::leaf_hash(e), &nodes).unwrap();
            nodes.extend(added);
        }
        let body = Checkpoint {
            origin: "log.example".into(),
            size: 5,
            root: merkle::root(5, &nodes).unwrap(),
            extensions: Vec::new(),
        }
        .body();
        let witnesses: Vec<NoteSigner> = (0..3)
            .map(|i| signer(&format!("w{i}.example"), KeyType::Cosignature, 10 + i))
            .collect();
        let mut sigs = vec![log.sign(&body, 0)];
        sigs.extend(
            by.iter()
                .map(|&i| witnesses[i as usize].sign(&body, 1_700_000_000)),
        );
        let mut policy = format!("log {}\n", log.verifier());
        for (i, w) in witnesses.iter().enumerate() {
            policy.push_str(&format!("witness W{i} {}\n", w.verifier()));
        }
        policy.push_str("group g 2 W0 W1 W2\nquorum g\n");
        let proof = TlogProof {
            extra: Some(entries[3].clone()),
            index: 3,
            hashes: merkle::inclusion_proof(3, 5, &nodes).unwrap(),
            checkpoint: note::sign(&body, &sigs).unwrap(),
        };
        (proof, Policy::parse(&policy).unwrap())
    }

    #[test]
    fn a_proof_round_trips_and_verifies_with_a_quorum_only() {
        let (proof, policy) = fixture(&[0, 2]);
        let text = proof.encode();
        assert!(
            text.starts_with("c2sp.org/tlog-proof@v1\nextra ZQM=\nindex 3\n"),
            "{text}"
        );
        let parsed = TlogProof::parse(&text).unwrap();
        assert_eq!(parsed, proof);
        let (cp, by, entry) = parsed.verify(&policy).unwrap();
        assert_eq!(
            (cp.size, by, entry),
            (5, vec!["W0".to_owned(), "W2".to_owned()], &b"e\x03"[..])
        );

        let (lonely, _) = fixture(&[1]);
        assert!(matches!(
            lonely.verify(&policy),
            Err(ProofFileError::Quorum(QuorumError::NoQuorum { .. }))
        ));
    }

    #[test]
    fn a_changed_entry_index_path_or_cosignature_fails() {
        let (proof, policy) = fixture(&[0, 1]);
        let mut other = proof.clone();
        other.extra = Some(b"e\x04".to_vec());
        assert!(matches!(
            other.verify(&policy),
            Err(ProofFileError::Inclusion(_))
        ));
        let mut other = proof.clone();
        other.index = 2;
        assert!(matches!(
            other.verify(&policy),
            Err(ProofFileError::Inclusion(_))
        ));
        let mut other = proof.clone();
        other.hashes.pop();
        assert!(matches!(
            other.verify(&policy),
            Err(ProofFileError::Inclusion(_))
        ));
        // One character of a cosignature changed: the whole checkpoint is refused.
        let text = proof.encode();
        let at = text.rfind("— w1.example ").unwrap() + "— w1.example ".len() + 10;
        let mut bytes = text.into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let tampered = TlogProof::parse(std::str::from_utf8(&bytes).unwrap()).unwrap();
        assert!(matches!(
            tampered.verify(&policy),
            Err(ProofFileError::Quorum(QuorumError::Checkpoint(_)))
        ));
    }

    #[test]
    fn malformed_files_are_refused() {
        let (proof, _) = fixture(&[0, 1]);
        let good = proof.encode();
        for bad in [
            good.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"),
            good.replace("index 3", "index 03"),
            good.replace("index 3", "index x"),
            good.replacen("\n\n", "\n", 1),
            good.replace("extra ZQM=", "extra !!"),
            format!("{HEADER}\nindex 1\n{}\n\nx", "AAAA\n".repeat(70)),
            "x".repeat(MAX_BYTES + 1),
        ] {
            assert!(
                matches!(TlogProof::parse(&bad), Err(ProofFileError::Malformed(_))),
                "{bad:.80}"
            );
        }
        let mut no_entry = proof;
        no_entry.extra = None;
        let parsed = TlogProof::parse(&no_entry.encode()).unwrap();
        assert_eq!(parsed.extra, None);
    }
}
