//! `focalgate identity export`: a member's TLS identity as a PKCS#12 file, to import into a
//! browser (see [`crate::pki::pkcs12`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::pki::pkcs12::{self, Protection};

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Write an identity folder's auth certificate and key, with the CA's certificate, as a
    /// PKCS#12 file under a passphrase (PBES2, AES-256-CBC), for a browser's certificate store.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The identity folder (`ca.pem`, `auth.pem`, `auth.key`).
    #[arg(long)]
    identity: PathBuf,
    /// The file to write (mode 0600); an existing one is never replaced.
    #[arg(long)]
    out: PathBuf,
    /// A file whose first line is the passphrase.
    #[arg(long, conflicts_with = "passphrase_env")]
    passphrase_file: Option<PathBuf>,
    /// An environment variable that holds the passphrase.
    #[arg(long)]
    passphrase_env: Option<String>,
    /// Protect it with 3DES and HMAC-SHA-1 instead, for importers that read nothing newer.
    #[arg(long)]
    legacy: bool,
    /// The name importers show; default: the member the certificate names.
    #[arg(long)]
    name: Option<String>,
}

/// Most bytes of a passphrase file read.
const MAX_PASSPHRASE_BYTES: u64 = 4096;

pub fn run(cmd: IdentityCommand) -> Result<(), String> {
    match cmd {
        IdentityCommand::Export(args) => export(args),
    }
}

fn passphrase(args: &ExportArgs) -> Result<String, String> {
    match (&args.passphrase_file, &args.passphrase_env) {
        (Some(file), _) => {
            // The first line only, read no further than a passphrase can be long.
            use std::io::Read;
            let mut head = String::new();
            std::fs::File::open(file)
                .and_then(|f| f.take(MAX_PASSPHRASE_BYTES).read_to_string(&mut head))
                .map_err(|e| format!("--passphrase-file {}: {e}", file.display()))?;
            Ok(head.lines().next().unwrap_or_default().to_owned())
        }
        (None, Some(var)) => std::env::var(var)
            .map_err(|_| format!("--passphrase-env {var}: the variable is not set")),
        (None, None) => Err(
            "give --passphrase-file or --passphrase-env: a passphrase is never taken on the \
             command line, where other users of the machine can read it"
                .into(),
        ),
    }
}

fn export(args: ExportArgs) -> Result<(), String> {
    let secret = passphrase(&args)?;
    if args.out.exists() {
        return Err(format!(
            "--out {}: the file exists, and is never replaced",
            args.out.display()
        ));
    }
    let dir = crate::tls::IdentityDir::new(&args.identity);
    let read = |name: &str| crate::tls::read_chain(&dir.file(name)).map_err(|e| e.to_string());
    let mut chain: Vec<Vec<u8>> = read("auth.pem")?.into_iter().map(|c| c.to_vec()).collect();
    let Some(leaf) = chain.first().cloned() else {
        return Err(format!(
            "{}: no certificate",
            dir.file("auth.pem").display()
        ));
    };
    for ca in read("ca.pem")? {
        if !chain.iter().any(|c| c.as_slice() == ca.as_ref()) {
            chain.push(ca.to_vec());
        }
    }
    let key = match crate::tls::read_key(&dir.file("auth.key")).map_err(|e| e.to_string())? {
        rustls_pki_types::PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        _ => {
            return Err(format!(
                "{}: not a PKCS#8 key (focalgate writes PKCS#8; convert it with `openssl pkcs8 -topk8`)",
                dir.file("auth.key").display()
            ));
        }
    };
    let name = match args.name {
        Some(name) => name,
        None => crate::schema::CodeLists::builtin()
            .ok()
            .and_then(|lists| crate::identity::identify(&leaf, &lists).ok())
            .map_or_else(|| "focalgate".to_owned(), |i| i.member.to_string()),
    };
    let protection = if args.legacy {
        Protection::Legacy
    } else {
        Protection::Modern
    };
    let bytes =
        pkcs12::export(&name, &chain, &key, &secret, protection).map_err(|e| e.to_string())?;
    crate::pki::write_private(&args.out, &bytes).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} ({name}: the auth certificate, the CA's, and the key; {})",
        args.out.display(),
        match protection {
            Protection::Modern => "PBES2, PBKDF2-HMAC-SHA-256, AES-256-CBC, MAC HMAC-SHA-256",
            Protection::Legacy => "legacy: PBE-SHA1-3DES, MAC HMAC-SHA-1",
        }
    );
    Ok(())
}
