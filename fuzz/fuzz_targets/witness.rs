//! What a witness reads from untrusted callers and files: `add-checkpoint` request bodies
//! (and the checkpoint note inside), and policy files; and what a partner reads: tlog-proof
//! files.
#![no_main]

use focalgate::{
    checkpoint::{Checkpoint, note, policy::Policy},
    tlog_proof::TlogProof,
    witness::AddCheckpoint,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = AddCheckpoint::parse(data)
        && let Ok(n) = note::parse(request.checkpoint.as_bytes())
    {
        let _ = Checkpoint::parse_body(&n.text);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Policy::parse(text);
        if let (Ok(proof), Ok(policy)) = (
            TlogProof::parse(text),
            Policy::parse("log focalgate.demo/log+ed2e6ae7+AXP5++/UdGJE8zm+7ny85Og0MS69YWzlz5pY3F5gTtaV\nquorum none\n"),
        ) {
            let _ = proof.verify(&policy);
        }
    }
});
