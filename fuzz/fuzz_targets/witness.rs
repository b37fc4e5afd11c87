//! What a witness reads from untrusted callers and files: `add-checkpoint` request bodies
//! (and the checkpoint note inside), and policy files.
#![no_main]

use focalgate::{
    checkpoint::{Checkpoint, note, policy::Policy},
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
    }
});
