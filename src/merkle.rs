//! Merkle tree hashing and proofs, RFC 9162 §2.1.
//!
//! The tree over entries `D[0:n]` is
//!
//! ```text
//! MTH({})       = SHA-256()
//! MTH({d0})     = SHA-256(0x00 || d0)                                  leaf hash
//! MTH(D[0:n])   = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))          node hash,
//!                 k the largest power of two smaller than n
//! ```
//!
//! **Storage.** Every *complete* subtree — 2^level leaves starting at a multiple of 2^level — is
//! named by a [`NodeId`] and stored once, when its last leaf is appended; a tree of n leaves has
//! fewer than 2n of them. Any hash a proof needs is the hash of a range that RFC 9162's
//! recursion produces, and such a range is a run of complete subtrees from the left, so proof
//! generation reads O(log n) stored nodes and never rebuilds the tree:
//!
//! ```text
//!   size 7:            root
//!                    /      \
//!            (2,0)=[0,4)    [4,7)            (level, index) = complete subtree
//!            /     \        /    \
//!       (1,0)   (1,1)   (1,2)   (0,6)        [4,7) is not complete: its hash is
//!       /  \    /  \    /  \                 node((1,2), (0,6)), folded from the right
//!      0    1  2    3  4    5    6
//! ```
//!
//! Generation is two-phase so that it stays pure: `*_nodes` says which stored nodes an answer
//! needs, the caller reads them from wherever they live, and the computing function takes them
//! as a map. Verification ([`verify_inclusion`], [`verify_consistency`]) needs nothing but its
//! arguments.

use std::{collections::HashMap, fmt};

use ring::digest::{Context, SHA256};

/// A SHA-256 hash. Built only from 32 bytes or by hashing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; 32]);

impl Hash {
    /// The hash in 32 bytes; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn digest(parts: &[&[u8]]) -> Self {
        let mut ctx = Context::new(&SHA256);
        for p in parts {
            ctx.update(p);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Self(out)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(self.0))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(self.0))
    }
}

/// The root of the empty tree: SHA-256 of nothing, RFC 9162 §2.1.1.
pub fn empty_root() -> Hash {
    Hash::digest(&[])
}

/// SHA-256(0x00 || entry), RFC 9162 §2.1.1.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Hash::digest(&[&[0x00], entry])
}

/// SHA-256(0x01 || left || right), RFC 9162 §2.1.1.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    hash_children(&left.0, &right.0)
}

/// The node hash over any two byte strings; [`node_hash`] applies it to hashes.
pub fn hash_children(left: &[u8], right: &[u8]) -> Hash {
    Hash::digest(&[&[0x01], left, right])
}

/// Longest proof any tree of at most 2^64 leaves can need; longer proofs are refused unread.
pub const MAX_PROOF_LEN: usize = 64;

/// Why a proof does not check out, or cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// Consistency from size 0, or from a larger to a smaller tree.
    #[error("no consistency proof from size {old} to size {new}")]
    BadSizes {
        /// The earlier size.
        old: u64,
        /// The later size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has {got} hashes, {expected} expected")]
    WrongLength {
        /// Hashes expected.
        expected: usize,
        /// Hashes given.
        got: usize,
    },
    /// The proof leads to another root.
    #[error("the proof leads to root {computed}, not {expected}")]
    RootMismatch {
        /// The root checked against.
        expected: Hash,
        /// The root the proof computes.
        computed: Hash,
    },
    /// A proof element that is not a 32-byte hash.
    #[error("a proof hash has {0} bytes, not 32")]
    NotAHash(usize),
    /// A stored node the computation needs was not supplied.
    #[error("stored node {0:?} was not supplied")]
    MissingNode(NodeId),
}

/// A complete subtree: 2^level leaves starting at leaf `index · 2^level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height; leaves are level 0.
    pub level: u8,
    /// Position among the subtrees of that level.
    pub index: u64,
}

/// Stored nodes supplied to a computation.
pub type Nodes = HashMap<NodeId, Hash>;

/// The complete subtrees that tile the leaf range `[start, end)` from the left, largest first.
/// For the ranges RFC 9162's recursion produces (whose start is a multiple of a power of two at
/// least as large as the range), folding their hashes from the right gives MTH of the range.
fn tiles(mut start: u64, end: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    while start < end {
        // The largest aligned power of two at `start` that fits before `end`.
        let mut level = if start == 0 {
            63
        } else {
            start.trailing_zeros().min(63)
        };
        while level > 0 && (1u64 << level) > end - start {
            level -= 1;
        }
        out.push(NodeId {
            level: level as u8,
            index: start >> level,
        });
        start += 1u64 << level;
    }
    out
}

/// MTH of a leaf range from its tiles: node(t0, node(t1, … node(t_{k-2}, t_{k-1}))).
fn range_hash(start: u64, end: u64, nodes: &Nodes) -> Result<Hash, ProofError> {
    if start == end {
        return Ok(empty_root());
    }
    let mut hashes = tiles(start, end)
        .into_iter()
        .map(|id| nodes.get(&id).copied().ok_or(ProofError::MissingNode(id)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut acc = hashes.pop().unwrap_or_else(empty_root);
    while let Some(left) = hashes.pop() {
        acc = node_hash(&left, &acc);
    }
    Ok(acc)
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The leaf ranges whose hashes form the inclusion proof of leaf `m` in `[lo, hi)`, leaf side
/// first: RFC 9162 §2.1.3.1 PATH(m, D[lo:hi]).
fn inclusion_ranges(m: u64, lo: u64, hi: u64, out: &mut Vec<(u64, u64)>) {
    let n = hi - lo;
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        inclusion_ranges(m, lo, lo + k, out);
        out.push((lo + k, hi));
    } else {
        inclusion_ranges(m - k, lo + k, hi, out);
        out.push((lo, lo + k));
    }
}

/// The leaf ranges of the consistency proof from `m` leaves to `[lo, hi)`: RFC 9162 §2.1.4.1
/// SUBPROOF(m, D[lo:hi], b).
fn consistency_ranges(m: u64, lo: u64, hi: u64, complete: bool, out: &mut Vec<(u64, u64)>) {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push((lo, hi));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        consistency_ranges(m, lo, lo + k, complete, out);
        out.push((lo + k, hi));
    } else {
        consistency_ranges(m - k, lo + k, hi, false, out);
        out.push((lo, lo + k));
    }
}

fn nodes_of(ranges: &[(u64, u64)]) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = ranges.iter().flat_map(|&(a, b)| tiles(a, b)).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The stored nodes [`root`] needs for a tree of `size` leaves.
pub fn root_nodes(size: u64) -> Vec<NodeId> {
    tiles(0, size)
}

/// MTH(D\[0:size\]) from stored nodes.
pub fn root(size: u64, nodes: &Nodes) -> Result<Hash, ProofError> {
    range_hash(0, size, nodes)
}

fn check_index(index: u64, size: u64) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    Ok(())
}

/// The stored nodes [`inclusion_proof`] needs.
pub fn inclusion_proof_nodes(index: u64, size: u64) -> Vec<NodeId> {
    let mut ranges = Vec::new();
    if index < size {
        inclusion_ranges(index, 0, size, &mut ranges);
    }
    nodes_of(&ranges)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves, RFC 9162 §2.1.3.1.
pub fn inclusion_proof(index: u64, size: u64, nodes: &Nodes) -> Result<Vec<Hash>, ProofError> {
    check_index(index, size)?;
    let mut ranges = Vec::new();
    inclusion_ranges(index, 0, size, &mut ranges);
    ranges
        .into_iter()
        .map(|(a, b)| range_hash(a, b, nodes))
        .collect()
}

fn check_sizes(old: u64, new: u64) -> Result<(), ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    Ok(())
}

/// The stored nodes [`consistency_proof`] needs.
pub fn consistency_proof_nodes(old: u64, new: u64) -> Vec<NodeId> {
    let mut ranges = Vec::new();
    if old > 0 && old < new {
        consistency_ranges(old, 0, new, true, &mut ranges);
    }
    nodes_of(&ranges)
}

/// The consistency proof from the tree of `old` leaves to the tree of `new` leaves, RFC 9162
/// §2.1.4.1. Equal sizes have the empty proof; size 0 has none.
pub fn consistency_proof(old: u64, new: u64, nodes: &Nodes) -> Result<Vec<Hash>, ProofError> {
    check_sizes(old, new)?;
    let mut ranges = Vec::new();
    if old < new {
        consistency_ranges(old, 0, new, true, &mut ranges);
    }
    ranges
        .into_iter()
        .map(|(a, b)| range_hash(a, b, nodes))
        .collect()
}

/// The stored nodes [`append`] reads to add leaf number `n` (0-based) to a tree of `n` leaves:
/// the left siblings of the subtrees the new leaf completes.
pub fn append_nodes(n: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut index = n;
    let mut level = 0u8;
    // Each trailing one bit of n is a complete left sibling waiting for its right half.
    while index & 1 == 1 {
        out.push(NodeId {
            level,
            index: index - 1,
        });
        index >>= 1;
        level += 1;
    }
    out
}

/// Appends leaf number `n` with hash `leaf`: returns the nodes to store, the leaf first, then
/// every subtree it completes, bottom up.
pub fn append(n: u64, leaf: Hash, nodes: &Nodes) -> Result<Vec<(NodeId, Hash)>, ProofError> {
    let mut out = vec![(NodeId { level: 0, index: n }, leaf)];
    let mut hash = leaf;
    for left in append_nodes(n) {
        let left_hash = nodes.get(&left).ok_or(ProofError::MissingNode(left))?;
        hash = node_hash(left_hash, &hash);
        out.push((
            NodeId {
                level: left.level + 1,
                index: left.index >> 1,
            },
            hash,
        ));
    }
    Ok(out)
}

/// The leaf ranges whose hashes make up the inclusion proof of leaf `index` in a tree of
/// `size` leaves, in proof order. The ranges that end at or before `index` are its left
/// siblings, and together they tile `[0, index)`.
pub fn inclusion_proof_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    if index < size {
        inclusion_ranges(index, 0, size, &mut ranges);
    }
    ranges
}

/// MTH of a run of leaf hashes, RFC 9162 §2.1.1, computed from the leaves.
pub fn subtree_root(leaves: &[Hash]) -> Hash {
    let mut tree = CompactTree::default();
    for leaf in leaves {
        tree.push(*leaf);
    }
    tree.root()
}

/// A tree that keeps only its right frontier: the complete subtrees that tile its leaves, at
/// most one per level. Appending and the root cost O(log n) and memory stays O(log n), which is
/// what verifying a whole log needs.
#[derive(Clone, Debug, Default)]
pub struct CompactTree {
    size: u64,
    /// The frontier, largest subtree first.
    frontier: Vec<Hash>,
}

impl CompactTree {
    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        // Each trailing one bit of the old size is a complete subtree that now gets its right half.
        let mut n = self.size;
        while n & 1 == 1 {
            let left = self.frontier.pop().unwrap_or_else(empty_root);
            hash = node_hash(&left, &hash);
            n >>= 1;
        }
        self.frontier.push(hash);
        self.size += 1;
    }

    /// MTH of all leaves so far.
    pub fn root(&self) -> Hash {
        let mut hashes = self.frontier.iter().rev();
        let Some(mut acc) = hashes.next().copied() else {
            return empty_root();
        };
        for left in hashes {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// Decodes the hashes of a proof as they travel (raw 32-byte strings), refusing proofs longer
/// than any tree can need and hashes of any other length.
pub fn decode_proof(hashes: &[Vec<u8>]) -> Result<Vec<Hash>, ProofError> {
    if hashes.len() > MAX_PROOF_LEN {
        return Err(ProofError::WrongLength {
            expected: MAX_PROOF_LEN,
            got: hashes.len(),
        });
    }
    hashes
        .iter()
        .map(|h| Hash::from_bytes(h).ok_or(ProofError::NotAHash(h.len())))
        .collect()
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves with root `root`, RFC 9162
/// §2.1.3.2.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion(index, size, leaf, proof)?;
    if &computed != root {
        return Err(ProofError::RootMismatch {
            expected: *root,
            computed,
        });
    }
    Ok(())
}

/// The number of hashes in an inclusion proof of leaf `index` in a tree of `size` leaves.
fn inclusion_len(index: u64, size: u64) -> usize {
    let mut ranges = Vec::new();
    inclusion_ranges(index, 0, size, &mut ranges);
    ranges.len()
}

/// The root an inclusion proof leads to.
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    check_index(index, size)?;
    let expected = inclusion_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            expected,
            got: proof.len(),
        });
    }
    // fn walks the leaf's position up, sn the last leaf's; RFC 9162 §2.1.3.2 step 5.
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    Ok(r)
}

/// Checks that the tree of `new` leaves with root `new_root` extends the tree of `old` leaves
/// with root `old_root`, RFC 9162 §2.1.4.2. Equal sizes need the empty proof and equal roots;
/// size 0 and shrinking trees are refused.
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    check_sizes(old, new)?;
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch {
                expected: *new_root,
                computed: *old_root,
            });
        }
        return Ok(());
    }
    if proof.is_empty() || proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::WrongLength {
            expected: consistency_len(old, new),
            got: proof.len(),
        });
    }
    let expected = consistency_len(old, new);
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            expected,
            got: proof.len(),
        });
    }
    // Step 2: a complete old tree is its own first hash.
    let mut path = proof.iter();
    let first = if old.is_power_of_two() {
        *old_root
    } else {
        *path.next().unwrap_or(old_root)
    };
    // Steps 3-4: skip the levels where the old tree's last leaf is a right child.
    let (mut f_n, mut s_n) = (old - 1, new - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in path {
        if s_n == 0 {
            return Err(ProofError::WrongLength {
                expected,
                got: proof.len(),
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if &fr != old_root {
        return Err(ProofError::RootMismatch {
            expected: *old_root,
            computed: fr,
        });
    }
    if &sr != new_root {
        return Err(ProofError::RootMismatch {
            expected: *new_root,
            computed: sr,
        });
    }
    Ok(())
}

/// The number of hashes in a consistency proof from `old` to `new` leaves (0 < old < new).
fn consistency_len(old: u64, new: u64) -> usize {
    let mut ranges = Vec::new();
    consistency_ranges(old, 0, new, true, &mut ranges);
    ranges.len()
}

#[cfg(test)]
mod tests {
    //! The tree checked against a naive transliteration of RFC 9162 for every size up to a
    //! bound, and every index, size pair within it.
    use super::*;

    /// RFC 9162 §2.1.1, recursively, over leaf hashes.
    fn mth(leaves: &[Hash]) -> Hash {
        thread_local! {
            // Memo by (first leaf's address, length): the reference stays a transliteration
            // and the all-pairs tests stay fast.
            static MEMO: std::cell::RefCell<HashMap<(usize, usize), Hash>> = Default::default();
        }
        let key = (leaves.as_ptr() as usize, leaves.len());
        if let Some(h) = MEMO.with(|m| m.borrow().get(&key).copied()) {
            return h;
        }
        let h = match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        };
        MEMO.with(|m| m.borrow_mut().insert(key, h));
        h
    }

    /// RFC 9162 §2.1.3.1 PATH(m, D[n]).
    fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n as u64) as usize;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    /// RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b).
    fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { Vec::new() } else { vec![mth(leaves)] };
        }
        let k = split(n as u64) as usize;
        if m <= k {
            let mut p = subproof(m, &leaves[..k], b);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = subproof(m - k, &leaves[k..], false);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    /// A tree built by [`append`], with every stored node kept.
    fn build(n: u64) -> (Vec<Hash>, Nodes) {
        let mut nodes = Nodes::new();
        let mut leaves = Vec::new();
        for i in 0..n {
            let leaf = leaf_hash(&i.to_be_bytes());
            for id in append_nodes(i) {
                assert!(
                    nodes.contains_key(&id),
                    "append {i} needs {id:?}, not stored yet"
                );
            }
            nodes.extend(append(i, leaf, &nodes).unwrap());
            leaves.push(leaf);
        }
        (leaves, nodes)
    }

    /// Only the nodes a computation says it needs.
    fn only(nodes: &Nodes, ids: &[NodeId]) -> Nodes {
        ids.iter().map(|id| (*id, nodes[id])).collect()
    }

    const BOUND: u64 = 300;

    #[test]
    fn roots_match_the_reference_for_every_size() {
        let (leaves, nodes) = build(BOUND);
        let mut wrong = Vec::new();
        for size in 0..=BOUND {
            let want = mth(&leaves[..size as usize]);
            let got = root(size, &only(&nodes, &root_nodes(size)));
            if got != Ok(want) {
                wrong.push(size);
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} sizes wrong: {wrong:?}",
            wrong.len(),
            BOUND + 1
        );
        assert!(
            nodes.len() < 2 * BOUND as usize,
            "fewer than 2n stored nodes"
        );
    }

    #[test]
    fn inclusion_proofs_match_the_reference_and_verify() {
        let (leaves, nodes) = build(BOUND);
        let mut wrong = Vec::new();
        let mut cases = 0;
        for size in 1..=BOUND {
            let root = mth(&leaves[..size as usize]);
            for index in 0..size {
                cases += 1;
                let want = path(index as usize, &leaves[..size as usize]);
                let needed = inclusion_proof_nodes(index, size);
                let got = inclusion_proof(index, size, &only(&nodes, &needed));
                if got.as_ref() != Ok(&want) {
                    wrong.push(format!("generate {index}/{size}"));
                    continue;
                }
                if verify_inclusion(index, size, &leaves[index as usize], &want, &root).is_err() {
                    wrong.push(format!("verify {index}/{size}"));
                }
                if needed.len() > 2 * 64 {
                    wrong.push(format!("reads {} nodes for {index}/{size}", needed.len()));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {cases} cases wrong: {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(20)]
        );
    }

    #[test]
    fn consistency_proofs_match_the_reference_and_verify() {
        let (leaves, nodes) = build(BOUND);
        let mut wrong = Vec::new();
        let mut cases = 0;
        for new in 1..=BOUND {
            let new_root = mth(&leaves[..new as usize]);
            for old in 1..=new {
                cases += 1;
                let want = subproof(old as usize, &leaves[..new as usize], true);
                let got =
                    consistency_proof(old, new, &only(&nodes, &consistency_proof_nodes(old, new)));
                if got.as_ref() != Ok(&want) {
                    wrong.push(format!("generate {old}->{new}"));
                    continue;
                }
                let old_root = mth(&leaves[..old as usize]);
                if let Err(e) = verify_consistency(old, new, &want, &old_root, &new_root) {
                    wrong.push(format!("verify {old}->{new}: {e}"));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {cases} cases wrong: {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(20)]
        );
    }

    #[test]
    fn every_flipped_byte_of_a_proof_or_root_is_refused() {
        let (leaves, nodes) = build(37);
        let size = 37;
        let root = mth(&leaves);
        let proof = inclusion_proof(13, size, &nodes).unwrap();
        let mut accepted = 0;
        let mut cases = 0;
        for i in 0..proof.len() {
            for byte in 0..32 {
                let mut p = proof.clone();
                let mut b = *p[i].as_bytes();
                b[byte] ^= 0x01;
                p[i] = Hash(b);
                cases += 1;
                accepted += usize::from(verify_inclusion(13, size, &leaves[13], &p, &root).is_ok());
            }
        }
        for byte in 0..32 {
            let mut b = *root.as_bytes();
            b[byte] ^= 0x80;
            cases += 1;
            accepted +=
                usize::from(verify_inclusion(13, size, &leaves[13], &proof, &Hash(b)).is_ok());
        }
        // Truncated, extended, wrong index, wrong size.
        let mut shorter = proof.clone();
        shorter.pop();
        let mut longer = proof.clone();
        longer.push(root);
        // (The same proof with another size of the same shape leads to the same root: the size
        // is authenticated by the signed checkpoint that carries both, not by the proof.)
        for (idx, sz, p) in [
            (13, size, &shorter),
            (13, size, &longer),
            (12, size, &proof),
            (size, size, &proof),
        ] {
            cases += 1;
            accepted += usize::from(verify_inclusion(idx, sz, &leaves[13], p, &root).is_ok());
        }
        assert_eq!(accepted, 0, "{accepted} of {cases} mutations accepted");
    }

    #[test]
    fn the_compact_tree_has_every_root_and_left_siblings_tile_the_prefix() {
        let (leaves, _) = build(BOUND);
        let mut tree = CompactTree::default();
        let mut wrong = Vec::new();
        for (n, leaf) in leaves.iter().enumerate() {
            tree.push(*leaf);
            if tree.root() != mth(&leaves[..=n]) || subtree_root(&leaves[..=n]) != tree.root() {
                wrong.push(n + 1);
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {BOUND} sizes wrong: {wrong:?}",
            wrong.len()
        );
        for size in 1..=40u64 {
            for index in 0..size {
                let left: Vec<_> = inclusion_proof_ranges(index, size)
                    .into_iter()
                    .filter(|r| r.1 <= index)
                    .collect();
                let covered: u64 = left.iter().map(|r| r.1 - r.0).sum();
                assert_eq!(covered, index, "{index}/{size}: {left:?}");
            }
        }
    }

    #[test]
    fn refusals_say_why() {
        let h = leaf_hash(b"x");
        assert_eq!(
            verify_inclusion(3, 3, &h, &[], &h),
            Err(ProofError::IndexOutOfRange { index: 3, size: 3 })
        );
        assert_eq!(
            verify_consistency(0, 5, &[], &h, &h),
            Err(ProofError::BadSizes { old: 0, new: 5 })
        );
        assert_eq!(
            verify_consistency(5, 4, &[], &h, &h),
            Err(ProofError::BadSizes { old: 5, new: 4 })
        );
        assert_eq!(
            inclusion_proof(0, 2, &Nodes::new()),
            Err(ProofError::MissingNode(NodeId { level: 0, index: 1 }))
        );
    }
}
