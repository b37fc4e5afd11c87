//! A signed payload's wire format from untrusted bytes: the shape check before decoding, then
//! the request codec's field count. Neither may panic; what the shape check passes must decode.
#![no_main]

use focalgate::schema::{Limits, wire};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if wire::check_payload(data, &Limits::default()).is_ok() {
        // Only wire-level problems are the shape check's; UTF-8 is prost's.
        let _ = focalgate::proto::SubmissionBody::decode(data);
    }
    let _ = focalgate::codec::count_fields(data);
});
