//! The layering the crate map promises: pure core → log and store → application layer →
//! adapters. Only the adapters (the gRPC services, the CLI, the transport: connections and the
//! gRPC codec) may use tonic or the generated clients and servers (`rpc`); every other module
//! reads the contract's messages (`proto`, prost alone) at most.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// Files and folders of `src/` that are adapters.
const ADAPTERS: &[&str] = &[
    "service",
    "cli",
    "connections.rs",
    "codec.rs",
    "main.rs",
    // Declares the generated `rpc` module; holds no code of its own.
    "lib.rs",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_below_the_adapters_uses_tonic_or_the_generated_services() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut checked = 0;
    for path in &files {
        let relative = path.strip_prefix(&src).expect("under src");
        let first = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default();
        if ADAPTERS.contains(&first) {
            continue;
        }
        checked += 1;
        let text = std::fs::read_to_string(path).expect("readable source file");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if code.contains("tonic") || code.contains("rpc::") {
                problems.push(format!("{}:{}: {}", relative.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} files checked: is src/ where it was?"
    );
    assert!(
        problems.is_empty(),
        "{} line(s) below the adapters use tonic or the gRPC services:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
