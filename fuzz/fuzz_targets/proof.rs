//! Inclusion and consistency proofs from untrusted bytes: an InclusionProof / ConsistencyProof
//! message decoded and checked against a root.
#![no_main]

use focalgate::{merkle, proto};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let root = merkle::leaf_hash(b"root");
    if let Ok(p) = proto::InclusionProof::decode(data)
        && let Ok(hashes) = merkle::decode_proof(&p.hashes)
    {
        let _ = merkle::verify_inclusion(p.leaf_index, p.tree_size, &root, &hashes, &root);
    }
    if let Ok(p) = proto::ConsistencyProof::decode(data)
        && let Ok(hashes) = merkle::decode_proof(&p.hashes)
    {
        let _ = merkle::verify_consistency(p.from_size, p.to_size, &hashes, &root, &root);
    }
});
