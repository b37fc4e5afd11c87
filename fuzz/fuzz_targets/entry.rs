//! Log entries from untrusted bytes (what `log verify` downloads).
#![no_main]

use focalgate::entry::Entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Entry::parse(data) {
        assert_eq!(
            entry.encode().as_deref(),
            Ok(data),
            "one encoding per entry"
        );
    }
});
