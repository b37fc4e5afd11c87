//! Signed notes and checkpoints from untrusted bytes: parse, open against a known key (the key
//! that signed the notes in `seeds/checkpoint`).
#![no_main]

use focalgate::checkpoint::{self, NoteVerifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = NoteVerifier::parse(
        "focalgate.demo/log+e1c8776e+AcrBh5nkY3bb8VrwDBefxM72w5DLsyyXenF7P4bV3TD/",
    )
    .expect("a valid key");
    let _ = checkpoint::open(data, &key, &[]);
});
