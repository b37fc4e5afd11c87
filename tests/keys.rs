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

/// A member's identity exported for a browser (`identity export`) is a PKCS#12 file that
/// OpenSSL 3 and Python's `cryptography` open with the passphrase and with nothing else: PBES2
/// (PBKDF2-HMAC-SHA-256, AES-256-CBC) and an HMAC-SHA-256 MAC by default, holding the auth
/// certificate, the CA's, and the key that goes with the certificate; `--legacy` on request;
/// never written without a passphrase, and never over an existing file.
#[test]
fn an_identity_exports_as_pkcs12_that_openssl_and_python_open() {
    let dir = common::tempdir();
    let pki = common::pki();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "correct horse battery\n").unwrap();
    let p12 = dir.path().join("analyst.p12");
    let export = |out: &Path, more: &[&str]| {
        Command::new(BIN)
            .args(["identity", "export", "--identity"])
            .arg(pki.join("analyst"))
            .arg("--out")
            .arg(out)
            .args(more)
            .output()
            .unwrap()
    };
    let out = export(&p12, &["--passphrase-file", pass.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p12).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "it holds a private key");

    let passin = format!("file:{}", pass.display());
    let p12s = p12.to_str().unwrap();
    if let Some((ok, info)) = tool(
        "openssl",
        &["pkcs12", "-info", "-noout", "-in", p12s, "-passin", &passin],
    ) {
        assert!(ok, "{info}");
        assert!(info.contains("MAC: sha256"), "{info}");
        assert!(
            info.contains("Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC"),
            "{info}"
        );
        assert!(info.contains("PRF hmacWithSHA256"), "{info}");
        let (ok, _) = tool(
            "openssl",
            &[
                "pkcs12",
                "-info",
                "-noout",
                "-in",
                p12s,
                "-passin",
                "pass:wrong-passphrase",
            ],
        )
        .unwrap();
        assert!(!ok, "a wrong passphrase opens nothing");
        let (ok, certs) = tool(
            "openssl",
            &[
                "pkcs12", "-in", p12s, "-passin", &passin, "-nokeys", "-clcerts",
            ],
        )
        .unwrap();
        assert!(ok, "{certs}");
        let leaf = std::fs::read_to_string(pki.join("analyst/auth.pem")).unwrap();
        let body = |pem: &str| -> String {
            pem.lines()
                .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
                .take_while(|l| !l.starts_with("-----END CERTIFICATE"))
                .collect()
        };
        assert_eq!(
            body(&certs),
            body(&leaf),
            "the leaf is the auth certificate"
        );
    }

    let python = format!(
        r#"
import sys
from cryptography.hazmat.primitives.serialization import pkcs12, Encoding, PublicFormat
from cryptography import x509
for path, secret in [({p12:?}, b"correct horse battery"), ({legacy:?}, b"correct horse battery")]:
    key, cert, more = pkcs12.load_key_and_certificates(open(path, "rb").read(), secret)
    leaf = x509.load_pem_x509_certificate(open({leaf:?}, "rb").read())
    ca = x509.load_pem_x509_certificate(open({ca:?}, "rb").read())
    assert cert == leaf, "the leaf"
    assert ca in more, "the CA beside it"
    pub = lambda k: k.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert pub(key.public_key()) == pub(leaf.public_key()), "the key of the certificate"
print("ok")
"#,
        p12 = p12.display().to_string(),
        legacy = dir.path().join("legacy.p12").display().to_string(),
        leaf = pki.join("analyst/auth.pem").display().to_string(),
        ca = pki.join("ca/ca.pem").display().to_string(),
    );
    // NSS, which Firefox and Chromium on Linux keep certificates in: imported, the key with
    // its certificate (a user certificate, trust "u,u,u").
    let nss = format!("sql:{}", dir.path().join("nss").display());
    std::fs::create_dir_all(dir.path().join("nss")).unwrap();
    if let Some((ok, out)) = tool("certutil", &["-N", "-d", &nss, "--empty-password"]) {
        assert!(ok, "{out}");
        let (ok, out) = tool(
            "pk12util",
            &["-d", &nss, "-i", p12s, "-w", pass.to_str().unwrap()],
        )
        .unwrap();
        assert!(ok && out.contains("PKCS12 IMPORT SUCCESSFUL"), "{out}");
        let (ok, listed) = tool("certutil", &["-d", &nss, "-L"]).unwrap();
        assert!(ok, "{listed}");
        assert!(
            listed.lines().any(
                |l| l.contains("PRT:analyst authentication") && l.trim_end().ends_with("u,u,u")
            ),
            "{listed}"
        );
    }

    let legacy = export(
        &dir.path().join("legacy.p12"),
        &["--passphrase-file", pass.to_str().unwrap(), "--legacy"],
    );
    assert!(
        legacy.status.success(),
        "{}",
        String::from_utf8_lossy(&legacy.stderr)
    );
    if let Some((ok, out)) = tool("python3", &["-c", &python]) {
        assert!(ok, "{out}");
    }

    // Refusals: no passphrase, a short one, an existing file.
    let none = export(&dir.path().join("none.p12"), &[]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("--passphrase-file"));
    std::fs::write(&pass, "short\n").unwrap();
    let short = export(
        &dir.path().join("short.p12"),
        &["--passphrase-file", pass.to_str().unwrap()],
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8 characters"));
    assert!(!dir.path().join("short.p12").exists());
    std::fs::write(&pass, "correct horse battery\n").unwrap();
    let again = export(&p12, &["--passphrase-file", pass.to_str().unwrap()]);
    assert!(!again.status.success(), "never over an existing file");
    assert!(String::from_utf8_lossy(&again.stderr).contains("never replaced"));
}
