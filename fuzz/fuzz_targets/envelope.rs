//! A submission from untrusted bytes: the envelope decoded and its signatures checked over the
//! raw payload; the payload, as the body decoder and the schema would see it once verified.
#![no_main]

use focalgate::{
    envelope::{self, Algorithm, VerifyingKey},
    proto::{SignedEnvelope, SubmissionBody},
    schema::{self, CodeLists, Limits, SUBMISSION_PAYLOAD_TYPE},
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = SignedEnvelope::decode(data) else {
        return;
    };
    // Any key id names this key; the fuzzer cannot sign with it, so decoding past the signature
    // check is reached only through the body below.
    let key = VerifyingKey {
        algorithm: Algorithm::Ed25519,
        public_key: vec![0x42; 32],
    };
    let _ = envelope::verify(&env, SUBMISSION_PAYLOAD_TYPE, |_| {
        Ok::<_, &str>(((), key.clone()))
    });
    if let Ok(body) = SubmissionBody::decode(env.payload.as_slice()) {
        static LISTS: std::sync::OnceLock<CodeLists> = std::sync::OnceLock::new();
        let lists = LISTS.get_or_init(|| CodeLists::builtin().expect("built-in lists"));
        let _ = schema::validate(
            &body,
            lists,
            &Limits::default(),
            time::OffsetDateTime::UNIX_EPOCH,
        );
    }
});
