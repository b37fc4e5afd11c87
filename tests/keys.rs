//! Every private key the project writes loads in the crypto stacks partners write clients in:
//! OpenSSL, Node.js and Python's `cryptography`. The keys come from the real commands: the
//! demo PKI (`ca demo`), a CA (`ca init`, `ca issue` of both kinds and key types), a member's own
//! request (`csr`), and the gateway's key (created at first start). Each must load, and its
//! public key must be the one its certificate (or request) carries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::BIN;

fn focalgate(args: &[&str]) {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "focalgate {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a tool of the partners' stacks; `None` when it is not installed here (outside CI).
fn tool(program: &str, args: &[&str]) -> Option<(bool, String)> {
    match Command::new(program).args(args).output() {
        Ok(out) => Some((
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )),
        Err(_) if std::env::var("CI").as_deref() != Ok("true") => None,
        Err(e) => panic!("{program} is needed by this test (CI=true): {e}"),
    }
}

fn keys_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            keys_under(&path, found);
        } else if path.extension().is_some_and(|e| e == "key") {
            found.push(path);
        }
    }
}

/// The public key (SubjectPublicKeyInfo PEM) OpenSSL derives from a private key.
fn openssl_public(key: &Path) -> Result<String, String> {
    let path = key.to_str().unwrap();
    match tool("openssl", &["pkey", "-in", path, "-pubout"]) {
        Some((true, out)) => Ok(out),
        Some((false, out)) => Err(format!("{}: openssl pkey: {out}", key.display())),
        None => Ok(String::new()),
    }
}

/// The public key of the certificate (`.pem`) or request (`.csr`) beside a key.
fn partner_public(key: &Path) -> Option<String> {
    let pem = key.with_extension("pem");
    let csr = key.with_extension("csr");
    let (args, file) = if pem.exists() {
        (vec!["x509", "-pubkey", "-noout", "-in"], pem)
    } else if csr.exists() {
        (vec!["req", "-pubkey", "-noout", "-in"], csr)
    } else {
        return None;
    };
    let mut args = args;
    args.push(file.to_str().unwrap());
    let (ok, out) = tool("openssl", &args)?;
    assert!(ok, "{}: {out}", file.display());
    Some(out)
}

const NODE: &str = r#"
const crypto = require('crypto'), fs = require('fs');
const bad = [];
for (const f of process.argv.slice(1)) {
  try {
    const k = crypto.createPrivateKey(fs.readFileSync(f));
    const sig = crypto.sign(k.asymmetricKeyType === 'ed25519' ? null : 'sha256', Buffer.from('focalgate'), k);
    if (!crypto.verify(k.asymmetricKeyType === 'ed25519' ? null : 'sha256', Buffer.from('focalgate'), crypto.createPublicKey(k), sig)) bad.push(f + ': signature does not verify');
  } catch (e) { bad.push(f + ': ' + e.message); }
}
if (bad.length) { console.log(bad.join('\n')); process.exit(1); }
"#;

const PYTHON: &str = r#"
import sys
from cryptography.hazmat.primitives.serialization import load_pem_private_key
bad = []
for f in sys.argv[1:]:
    try:
        load_pem_private_key(open(f, 'rb').read(), password=None)
    except Exception as e:
        bad.append(f"{f}: {e}")
if bad:
    print("\n".join(bad)); sys.exit(1)
"#;

#[test]
fn every_key_the_project_writes_loads_in_openssl_node_and_python() {
    let dir = common::tempdir();
    let root = dir.path();
    let demo = root.join("demo");
    focalgate(&["ca", "demo", "--out", demo.to_str().unwrap()]);
    let ca = root.join("ca");
    let ca_arg = ca.to_str().unwrap();
    focalgate(&["ca", "init", "--ca-dir", ca_arg, "--name", "Test CA"]);
    for (kind, key, out) in [
        ("auth", "p256", "issued-auth-p256"),
        ("auth", "ed25519", "issued-auth-ed25519"),
        ("signing", "ed25519", "issued-signing-ed25519"),
        ("signing", "p256", "issued-signing-p256"),
    ] {
        let out = root.join(out);
        focalgate(&[
            "ca",
            "issue",
            "--ca-dir",
            ca_arg,
            "--member",
            "KAZ",
            "--org",
            "Focal point",
            "--kind",
            kind,
            "--key-type",
            key,
            "--out",
            out.to_str().unwrap(),
        ]);
    }
    let member = root.join("member");
    for kind in ["auth", "signing"] {
        focalgate(&[
            "csr",
            "--member",
            "KAZ",
            "--org",
            "Focal point",
            "--kind",
            kind,
            "--out",
            member.to_str().unwrap(),
        ]);
    }
    let gateway_key = root.join("gateway").join("gateway.key");
    std::fs::create_dir_all(gateway_key.parent().unwrap()).unwrap();
    focalgate::pki::load_or_create_gateway_key(&gateway_key).unwrap();

    let mut keys = Vec::new();
    keys_under(root, &mut keys);
    keys.sort();
    assert!(keys.len() >= 30, "{} keys found", keys.len());

    let mut wrong = Vec::new();
    for key in &keys {
        match openssl_public(key) {
            Err(e) => wrong.push(e),
            Ok(public) => {
                if let Some(expected) = partner_public(key)
                    && public != expected
                {
                    wrong.push(format!(
                        "{}: not the key of its certificate or request",
                        key.display()
                    ));
                }
            }
        }
    }
    let paths: Vec<&str> = keys.iter().map(|k| k.to_str().unwrap()).collect();
    let mut node = vec!["-e", NODE];
    node.extend(&paths);
    if let Some((false, out)) = tool("node", &node) {
        wrong.push(format!("Node.js: {out}"));
    }
    let mut python = vec!["-c", PYTHON];
    python.extend(&paths);
    if let Some((false, out)) = tool("python3", &python) {
        wrong.push(format!("Python cryptography: {out}"));
    }
    assert!(
        wrong.is_empty(),
        "{} of {} keys problems:\n{}",
        wrong.len(),
        keys.len(),
        wrong.join("\n")
    );
}
