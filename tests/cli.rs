//! The `focalgate` binary as a user runs it: serve from a configuration file, submit the
//! sample files, list and read back, see a validation error, stop with SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{ChildGateway, cli as run, pki, samples};

#[test]
fn serve_without_configuration_says_what_to_do() {
    let out = run(&["serve"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--config FILE") && err.contains("focalgate serve --demo"),
        "{err}"
    );

    let dir = common::tempdir();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:1\"\nlisten_port = 5\n").unwrap();
    let out = run(&["serve", "--config", file.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listen_port"),
        "unknown keys are named"
    );
}

#[test]
fn the_walkthrough_works_end_to_end() {
    let dir = common::tempdir();
    let server = ChildGateway::start(dir.path());
    let kaz = pki().join("KAZ");
    let (server_arg, identity) = (server.url.as_str(), kaz.to_str().unwrap());

    let file = samples().join("KAZ-SEIZURES.csv");
    let out = run(&[
        "submit",
        file.to_str().unwrap(),
        "--server",
        server_arg,
        "--identity",
        identity,
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("accepted KAZ.SEIZURES.").count(),
        28,
        "one submission per quarter 2019-2025"
    );
    assert!(
        stdout.contains("28 submission(s) sent: 28 accepted, 0 refused"),
        "{stdout}"
    );

    let routes = samples().join("KAZ-ROUTES.csv");
    let out = run(&[
        "submit",
        routes.to_str().unwrap(),
        "--server",
        server_arg,
        "--identity",
        identity,
    ]);
    assert!(out.status.success());

    // A second run of the same file is a new revision of every period.
    let out = run(&[
        "submit",
        file.to_str().unwrap(),
        "--server",
        server_arg,
        "--identity",
        identity,
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted KAZ.SEIZURES.2025-Q4.r2"));

    let out = run(&[
        "submissions",
        "list",
        "--server",
        server_arg,
        "--identity",
        identity,
        "--dataflow",
        "SEIZURES",
        "--from",
        "2025-Q4",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("KAZ.SEIZURES.2025-Q4.r2") && stdout.contains("current"),
        "{stdout}"
    );
    assert!(
        stdout.contains("KAZ.SEIZURES.2025-Q4.r1") && stdout.contains("superseded"),
        "{stdout}"
    );

    let env_file = dir.path().join("envelope.bin");
    let out = run(&[
        "submissions",
        "get",
        "KAZ.SEIZURES.2025-Q4.r1",
        "--server",
        server_arg,
        "--identity",
        identity,
        "--envelope",
        env_file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid over the stored payload"));
    assert!(std::fs::metadata(&env_file).unwrap().len() > 100);

    // A file with mistakes: every problem, pointed at its line.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "STRUCTURE,STRUCTURE_ID,ACTION,REF_AREA,FREQ,TIME_PERIOD,DRUG,UNIT_MEASURE,QUANTITY\n\
         dataflow,FOCALGATE:SEIZURES(1.0),R,KAZ,A,2024,HEROIN,KG,12.5\n\
         dataflow,FOCALGATE:SEIZURES(1.0),R,KAZ,A,2024,HEROIN,U,3\n\
         dataflow,FOCALGATE:SEIZURES(1.0),R,KAZ,A,2024,COCAIN,KG,1.5\n",
    )
    .unwrap();
    let out = run(&[
        "submit",
        bad.to_str().unwrap(),
        "--server",
        server_arg,
        "--identity",
        identity,
    ]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bad.csv:3 observations[1].unit_measure: HEROIN is not reported in U"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad.csv:4 observations[2].drug: \"COCAIN\" is not in CL_DRUG"),
        "{stdout}"
    );

    // The dry run finds the same problems without a server.
    let out = run(&[
        "submit",
        bad.to_str().unwrap(),
        "--dry-run",
        "--identity",
        identity,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.csv:3: observations[1].unit_measure")
    );

    // Identities the gateway refuses are told why, from the TLS alert it sends.
    for (who, why) in [
        ("revoked", "your authentication certificate is revoked"),
        ("expired", "your authentication certificate has expired"),
        (
            "wrong-ca",
            "your authentication certificate is not from the partnership CA",
        ),
    ] {
        let identity = pki().join(who);
        let out = run(&[
            "submissions",
            "list",
            "--server",
            server_arg,
            "--identity",
            identity.to_str().unwrap(),
        ]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{who}: {stderr}");
    }

    let status = server.terminate();
    assert!(status.success(), "SIGTERM is a clean shutdown: {status:?}");
}

/// The README's Python verifier of a receipt's gateway signature, run as a partner would: on
/// the receipt files `focalgate submit --receipt` wrote and the gateway's `log.vkey`. A receipt
/// with one field changed must fail.
#[test]
fn the_readme_python_receipt_check_verifies_real_receipts() {
    let dir = common::tempdir();
    let server = ChildGateway::start(dir.path());
    let receipts = dir.path().join("receipts");
    let file = samples().join("KAZ-ROUTES.csv");
    let out = run(&[
        "submit",
        file.to_str().unwrap(),
        "--server",
        &server.url,
        "--identity",
        pki().join("KAZ").to_str().unwrap(),
        "--receipt",
        receipts.to_str().unwrap(),
    ]);
    assert!(out.status.success());

    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```python\n# verify-receipt.py")
        .expect("the README shows the Python receipt check")
        + "```python\n".len();
    let script = &readme[start..start + readme[start..].find("```").unwrap()];
    let script_path = dir.path().join("verify-receipt.py");
    std::fs::write(&script_path, script).unwrap();
    let vkey = dir.path().join("data/log.vkey");
    let python = |receipt: &std::path::Path| match Command::new("python3")
        .args([&script_path, receipt, &vkey])
        .output()
    {
        Ok(out) => Some(out),
        Err(_) if std::env::var("CI").as_deref() != Ok("true") => None,
        Err(e) => panic!("python3 is needed by this test (CI=true): {e}"),
    };

    let mut checked = 0;
    for entry in std::fs::read_dir(&receipts).unwrap() {
        let path = entry.unwrap().path();
        let Some(out) = python(&path) else { return };
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("OK "),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
        if checked == 1 {
            let text = std::fs::read_to_string(&path).unwrap();
            let tampered = dir.path().join("tampered.json");
            std::fs::write(
                &tampered,
                text.replace("\"revision\": 1", "\"revision\": 2"),
            )
            .unwrap();
            let out = python(&tampered).unwrap();
            assert!(!out.status.success(), "a changed receipt must fail");
            assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidSignature"));
        }
    }
    assert!(checked >= 7, "{checked} receipts");
}

/// Output piped into a reader that stops early (`focalgate … | head`) ends the command quietly,
/// as a Unix tool ends: no panic, no backtrace, the exit status a shell gives for SIGPIPE.
#[test]
fn a_closed_output_pipe_ends_the_command_quietly() {
    let mut child = Command::new(common::BIN)
        .args(["ca", "list", "--ca-dir"])
        .arg(pki().join("ca"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
