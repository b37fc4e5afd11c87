//! One step of a log monitor, pure: a checkpoint seen before, a new one (both verified with
//! the log's key), and the consistency proof between them give what happened to the log.
//! `focalgate log monitor` and `log verify` take this step, and so will witnesses.
//!
//! ```text
//!  previous (size m, root r)   new (size n, root r')   proof (m → n)
//!        n < m                       ─▶ Rollback: the log shrank
//!        n = m, r' = r               ─▶ Unchanged
//!        n = m, r' ≠ r               ─▶ Fork: two roots signed for one size
//!        n > m, proof verifies       ─▶ Grew
//!        n > m, proof does not       ─▶ Fork: the new tree does not extend the old
//! ```

use crate::{
    checkpoint::Checkpoint,
    merkle::{self, Hash, ProofError},
};

/// What happened to a log between two checkpoints that agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Growth {
    /// The same tree.
    Unchanged,
    /// The new tree extends the old one.
    Grew {
        /// The old size.
        from: u64,
        /// The new size.
        to: u64,
    },
}

/// Two checkpoints of one log that cannot both be honest: keep both as evidence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Misbehaviour {
    /// The log is smaller than it was.
    #[error("shrank from {from} to {to} entries")]
    Rollback {
        /// The size seen before.
        from: u64,
        /// The size now.
        to: u64,
    },
    /// Two different roots signed for one size.
    #[error("signed two different roots for size {size}: {old} and {new}")]
    SplitView {
        /// The size.
        size: u64,
        /// The root seen before.
        old: Hash,
        /// The root now.
        new: Hash,
    },
    /// The new tree does not extend the old one.
    #[error("of size {to} does not extend the one of size {from} seen before ({why})")]
    Inconsistent {
        /// The size seen before.
        from: u64,
        /// The size now.
        to: u64,
        /// Why the proof fails.
        why: ProofError,
    },
}

impl Misbehaviour {
    /// `ROLLBACK` or `FORK`, as monitors report it; the message follows "the log NAME".
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rollback { .. } => "ROLLBACK",
            Self::SplitView { .. } | Self::Inconsistent { .. } => "FORK",
        }
    }
}

/// Whether the log needs a consistency proof from `previous` to `new`: the sizes to ask for.
pub fn proof_needed(previous: &Checkpoint, new: &Checkpoint) -> Option<(u64, u64)> {
    (new.size > previous.size).then_some((previous.size, new.size))
}

/// The step from `previous` to `new`, with the consistency proof between them (empty unless
/// [`proof_needed`] named sizes). Both checkpoints must already have verified with the log's
/// key; this checks only that they describe one append-only log.
pub fn step(
    previous: &Checkpoint,
    new: &Checkpoint,
    proof: &[Hash],
) -> Result<Growth, Misbehaviour> {
    use std::cmp::Ordering::*;
    match new.size.cmp(&previous.size) {
        Less => Err(Misbehaviour::Rollback {
            from: previous.size,
            to: new.size,
        }),
        Equal if new.root == previous.root => Ok(Growth::Unchanged),
        Equal => Err(Misbehaviour::SplitView {
            size: new.size,
            old: previous.root,
            new: new.root,
        }),
        Greater => {
            merkle::verify_consistency(previous.size, new.size, proof, &previous.root, &new.root)
                .map_err(|why| Misbehaviour::Inconsistent {
                from: previous.size,
                to: new.size,
                why,
            })?;
            Ok(Growth::Grew {
                from: previous.size,
                to: new.size,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{CompactTree, Nodes, leaf_hash};

    /// A log of `n` entries: its checkpoint and every node, for proofs.
    fn log(n: u64, salt: u8) -> (Checkpoint, Nodes) {
        let mut tree = CompactTree::default();
        let mut nodes = Nodes::new();
        for i in 0..n {
            let leaf = leaf_hash(&[salt, i as u8]);
            let added = merkle::append(i, leaf, &nodes).expect("append");
            nodes.extend(added);
            tree.push(leaf);
        }
        let cp = Checkpoint {
            origin: "example.org/log".into(),
            size: n,
            root: tree.root(),
            extensions: Vec::new(),
        };
        (cp, nodes)
    }

    #[test]
    fn every_outcome_of_a_step() {
        let (old, _) = log(5, 0);
        let (new, nodes) = log(9, 0);
        let (other, _) = log(5, 1);
        let (forked, forked_nodes) = log(9, 1);
        let proof = merkle::consistency_proof(5, 9, &nodes).expect("proof");

        assert_eq!(proof_needed(&old, &new), Some((5, 9)));
        assert_eq!(
            step(&old, &new, &proof),
            Ok(Growth::Grew { from: 5, to: 9 })
        );
        assert_eq!(proof_needed(&old, &old), None);
        assert_eq!(step(&old, &old, &[]), Ok(Growth::Unchanged));
        assert_eq!(
            step(&new, &old, &[]),
            Err(Misbehaviour::Rollback { from: 9, to: 5 })
        );
        assert_eq!(
            step(&old, &other, &[]),
            Err(Misbehaviour::SplitView {
                size: 5,
                old: old.root,
                new: other.root
            })
        );
        // A tree that does not extend the old one: its own proof does not verify against the
        // old root, nor does the honest proof against its root.
        let forked_proof = merkle::consistency_proof(5, 9, &forked_nodes).expect("proof");
        for p in [&forked_proof, &proof] {
            assert!(matches!(
                step(&old, &forked, p),
                Err(Misbehaviour::Inconsistent { from: 5, to: 9, .. })
            ));
        }
        // A truncated proof never passes.
        assert!(step(&old, &new, &proof[..proof.len() - 1]).is_err());
    }
}
