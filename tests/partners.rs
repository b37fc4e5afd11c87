//! The gateway as partners reach it with their own tools: a Python client written with grpcio's
//! defaults and `cryptography` (stubs generated from `proto/` by grpc_tools), signing with the
//! key focalgate issued, over mutual TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::Gateway;

/// Runs `python3 args…`; `None` when Python or its gRPC packages are missing here (outside CI).
fn python(args: &[&str]) -> Option<String> {
    let out = Command::new("python3").args(args).output();
    match out {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "python3 {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(out) => {
            eprintln!("skipping: {}", String::from_utf8_lossy(&out.stderr));
            None
        }
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("python3: {e}"),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_grpcio_client_submits_and_is_told_what_is_wrong_within_its_limits() {
    let dir = common::tempdir();
    let gw = Gateway::start(&dir.path().join("data")).await;
    let stubs = dir.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let protos: Vec<String> = std::fs::read_dir(format!("{root}/proto/focalgate/v1"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    let out_python = format!("--python_out={}", stubs.display());
    let out_grpc = format!("--grpc_python_out={}", stubs.display());
    let include = format!("-I{root}/proto");
    let mut args = vec!["-m", "grpc_tools.protoc", &include, &out_python, &out_grpc];
    args.extend(protos.iter().map(String::as_str));
    if tokio::task::block_in_place(|| python(&args)).is_none() {
        return;
    }
    let script = format!("{root}/tests/partners/submit_python.py");
    let identity = common::pki().join("KAZ");
    let target = gw.addr.to_string();
    let submit = |quantity: &str| {
        let args = [
            script.as_str(),
            stubs.to_str().unwrap(),
            identity.to_str().unwrap(),
            target.as_str(),
            quantity,
        ];
        tokio::task::block_in_place(|| python(&args)).unwrap()
    };

    let ok = submit("12.5");
    assert_eq!(ok.trim(), "OK KAZ.SEIZURES.2024.r1", "{ok}");
    // A 20,000-digit quantity: grpcio's 8 KiB metadata limit would turn an unbounded status
    // into "received metadata size exceeds hard limit"; the gateway's status fits.
    let huge = submit(&"9".repeat(20_000));
    assert!(
        huge.starts_with("INVALID_ARGUMENT ")
            && huge.contains("observations[0].quantity")
            && huge.contains("(20000 characters)"),
        "{huge}"
    );
    assert_eq!(gw.count("submissions").await, 1);
    gw.stop().await;
}
