//! What the SDMX REST API reads from untrusted callers: the request target (path and query)
//! and the Accept header.
#![no_main]

use std::sync::OnceLock;

use focalgate::{schema::CodeLists, sdmx::rest};
use libfuzzer_sys::fuzz_target;

fn lists() -> &'static CodeLists {
    static LISTS: OnceLock<CodeLists> = OnceLock::new();
    LISTS.get_or_init(|| CodeLists::builtin().expect("built-in code lists"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the target, the second the Accept header.
    let mut lines = text.splitn(2, '\n');
    let target = lines.next().unwrap_or_default();
    let accept = lines.next();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if let Ok(route) = rest::route(path, query, lists()) {
        let _ = rest::negotiate(&route, accept);
    }
});
