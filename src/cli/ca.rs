//! `focalgate ca …`: the partnership CA, kept in a directory (see [`crate::pki::ca`]).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use time::OffsetDateTime;

use crate::{
    identity::MemberId,
    pki::{
        CertKind,
        ca::{CaDir, KeyType, Reason, Validity, write_identity},
    },
    schema::CodeLists,
};

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the partnership CA: a key, a self-signed certificate and an empty CRL.
    Init {
        #[command(flatten)]
        ca: CaArg,
        /// The CA's name (subject CN).
        #[arg(long, default_value = "focalgate partnership CA")]
        name: String,
        /// Validity of the CA certificate, in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Validity of each CRL the CA publishes, in days: publish a fresh one (`ca crl`)
        /// before it runs out, or the gateway refuses every client.
        #[arg(long, default_value_t = 30)]
        crl_days: u32,
    },
    /// Issue a certificate and a new key for a member (or an analyst, auditor or admin
    /// identity) into an identity folder: `<kind>.pem`, `<kind>.key` (0600) and `ca.pem`.
    Issue(IssueArgs),
    /// Issue a certificate for a member's own key from its certificate signing request (PEM);
    /// the member keeps its private key.
    SignCsr(SignCsrArgs),
    /// Revoke a certificate by serial number and publish a fresh CRL.
    Revoke {
        #[command(flatten)]
        ca: CaArg,
        /// Serial number, hex (as `ca list` shows it).
        serial: String,
        /// Why (RFC 5280): unspecified, keyCompromise, affiliationChanged, superseded,
        /// cessationOfOperation.
        #[arg(long, value_parser = parse_reason)]
        reason: Reason,
    },
    /// Publish a fresh CRL (with a new nextUpdate) listing every revocation.
    Crl {
        #[command(flatten)]
        ca: CaArg,
        /// Validity of this and later CRLs, in days (default: as before).
        #[arg(long)]
        days: Option<u32>,
    },
    /// Every certificate the CA issued: member, kind, serial, expiry and status.
    List {
        #[command(flatten)]
        ca: CaArg,
        /// Only certificates that expire within this period and are not revoked (e.g. 30d).
        #[arg(long, value_parser = parse_days)]
        expiring: Option<u32>,
    },
    /// Regenerate the demo PKI (CA and CRL, server, members, roles, negative identities,
    /// policy) with the same operations.
    Demo {
        /// Folder to write into; replaces its contents.
        #[arg(long, default_value = crate::config::DEMO_PKI)]
        out: PathBuf,
    },
}

/// Where the CA lives.
#[derive(Debug, Args)]
pub struct CaArg {
    /// The CA directory.
    #[arg(long = "ca-dir", env = "FOCALGATE_CA__DIR", default_value = "ca")]
    dir: PathBuf,
}

/// What a member certificate is for.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    /// TLS client authentication.
    Auth,
    /// Signing submissions.
    Signing,
}

impl Kind {
    /// `auth` or `signing`.
    pub fn name(self) -> &'static str {
        CertKind::from(self).name()
    }
}

impl From<Kind> for CertKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Auth => CertKind::Auth,
            Kind::Signing => CertKind::Signing,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Key {
    Ed25519,
    P256,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    #[command(flatten)]
    ca: CaArg,
    /// The member: ISO 3166-1 alpha-3 country (the focal point, `<ISO3>:nfp`) or a full member
    /// id `<ISO3>:<slug>` (e.g. PRT:analyst).
    #[arg(long)]
    member: String,
    /// The member's organisation (subject O).
    #[arg(long)]
    org: String,
    /// What the certificate is for.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Key type (default: P-256 for auth, Ed25519 for signing).
    #[arg(long, value_enum)]
    key_type: Option<Key>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Identity folder to write into (created if needed).
    #[arg(long)]
    out: PathBuf,
}

/// A member's certificate signing request and what to issue from it (`ca sign-csr`,
/// `admin issue`).
#[derive(Debug, Args)]
pub struct CsrRequest {
    /// The certificate signing request (PEM).
    csr: PathBuf,
    /// What the certificate is for.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// The member, when the request carries no urn:focalgate:member: SAN URI.
    #[arg(long)]
    member: Option<String>,
    /// The organisation, when the request's subject has no O.
    #[arg(long)]
    pub org: Option<String>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
}

impl CsrRequest {
    /// The request's PEM text.
    pub fn read(&self) -> Result<String, String> {
        std::fs::read_to_string(&self.csr).map_err(|e| format!("{}: {e}", self.csr.display()))
    }

    /// The member given with `--member`, checked.
    pub fn member(&self) -> Result<Option<MemberId>, String> {
        self.member.as_deref().map(member_arg).transpose()
    }
}

#[derive(Debug, Args)]
pub struct SignCsrArgs {
    #[command(flatten)]
    ca: CaArg,
    #[command(flatten)]
    request: CsrRequest,
    /// Where to write the certificate (PEM); default: standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_reason(s: &str) -> Result<Reason, String> {
    Reason::parse(s).ok_or_else(|| {
        let names: Vec<_> = Reason::ALL.iter().map(|r| r.name()).collect();
        format!("not a revocation reason; one of {}", names.join(", "))
    })
}

/// `30d`, `30` → 30 days.
fn parse_days(s: &str) -> Result<u32, String> {
    s.strip_suffix('d')
        .unwrap_or(s)
        .parse()
        .map_err(|_| format!("\"{s}\" is not a number of days (e.g. 30d)"))
}

/// A member id from `ISO3` (the focal point) or `ISO3:slug`.
pub fn member_arg(s: &str) -> Result<MemberId, String> {
    let id = if s.contains(':') {
        s.to_owned()
    } else {
        format!("{s}:nfp")
    };
    MemberId::parse(&id).ok_or_else(|| {
        format!("--member \"{s}\" is not an ISO 3166-1 alpha-3 country or <ISO3>:<slug>")
    })
}

/// The code lists built into the gateway.
pub(super) fn lists() -> Result<CodeLists, String> {
    CodeLists::builtin().map_err(|e| e.to_string())
}

fn open(ca: &CaArg) -> Result<CaDir, String> {
    CaDir::open(&ca.dir).map_err(|e| e.to_string())
}

pub fn run(cmd: CaCommand) -> Result<(), String> {
    let now = OffsetDateTime::now_utc();
    match cmd {
        CaCommand::Init {
            ca,
            name,
            days,
            crl_days,
        } => {
            let dir = CaDir::init(&ca.dir, &name, days, crl_days).map_err(|e| e.to_string())?;
            println!(
                "created the CA \"{name}\" in {}: give {} to every member and to the gateway (tls.ca); \
                 the gateway's tls.crl is {}; keep ca.key secret",
                dir.path().display(),
                dir.path().join("ca.pem").display(),
                dir.crl_path().display()
            );
            Ok(())
        }
        CaCommand::Issue(a) => issue(a),
        CaCommand::SignCsr(a) => sign_csr(a),
        CaCommand::Revoke { ca, serial, reason } => revoke(ca, serial, reason, now),
        CaCommand::Crl { ca, days } => {
            let ca = open(&ca)?;
            let crl = ca.publish_crl(days).map_err(|e| e.to_string())?;
            println!(
                "published CRL number {} ({} revocation(s)), next update {}: {}",
                crl.number,
                ca.revocations().map_err(|e| e.to_string())?.len(),
                crl.next_update.date(),
                ca.crl_path().display()
            );
            Ok(())
        }
        CaCommand::List { ca, expiring } => list(ca, expiring, now),
        CaCommand::Demo { out } => {
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            crate::pki::demo::generate(&out, &lists()?).map_err(|e| e.to_string())?;
            println!(
                "wrote the demo PKI to {} (its private keys are public: for demos and tests only)",
                out.display()
            );
            Ok(())
        }
    }
}

/// Issues a certificate and its key, written to the output directory.
fn issue(a: IssueArgs) -> Result<(), String> {
    let ca = open(&a.ca)?;
    let member = member_arg(&a.member)?;
    let key_type = match (a.key_type, a.kind) {
        (Some(Key::Ed25519), _) | (None, Kind::Signing) => KeyType::Ed25519,
        (Some(Key::P256), _) | (None, Kind::Auth) => KeyType::P256,
    };
    let (issued, key) = ca
        .issue(
            &member,
            &a.org,
            a.kind.into(),
            key_type,
            Validity::days(a.days),
            &lists()?,
        )
        .map_err(|e| e.to_string())?;
    let stem = a.kind.name();
    write_identity(
        &a.out,
        &ca.ca_pem().map_err(|e| e.to_string())?,
        stem,
        &issued,
        &key,
    )
    .map_err(|e| e.to_string())?;
    println!(
        "issued {stem} certificate {} for {member}, valid {} days: {}",
        issued.serial,
        a.days,
        a.out.join(format!("{stem}.pem")).display()
    );
    if matches!(a.kind, Kind::Signing) {
        println!(
            "the gateway accepts it once the policy lists it under [members.\"{member}\"] signing_certificates \
             (or issue it through the Admin service, which registers it in the log)"
        );
    }
    Ok(())
}

/// Issues a certificate for the key of a certificate signing request.
fn sign_csr(a: SignCsrArgs) -> Result<(), String> {
    let ca = open(&a.ca)?;
    let r = &a.request;
    let issued = ca
        .sign_csr(
            &r.read()?,
            r.kind.into(),
            r.member()?.as_ref(),
            r.org.as_deref(),
            Validity::days(r.days),
            &lists()?,
        )
        .map_err(|e| e.to_string())?;
    match &a.out {
        Some(path) => {
            write(path, &issued.pem)?;
            eprintln!(
                "issued {} certificate {}: {}",
                a.request.kind.name(),
                issued.serial,
                path.display()
            );
        }
        None => print!("{}", issued.pem),
    }
    Ok(())
}

/// Revokes a certificate and publishes a fresh CRL.
fn revoke(ca: CaArg, serial: String, reason: Reason, now: OffsetDateTime) -> Result<(), String> {
    let ca = open(&ca)?;
    let (revocation, cert) = ca.revoke(&serial, reason, now).map_err(|e| e.to_string())?;
    println!(
        "revoked {} certificate {} of {} ({}); published {}",
        cert.usage.name(),
        revocation.serial,
        cert.member
            .as_ref()
            .map_or(cert.common_name.clone(), |m| m.to_string()),
        revocation.reason.name(),
        ca.crl_path().display()
    );
    println!(
        "a gateway using this CRL refuses the certificate once it reloads it (at once if it watches the file, or on SIGHUP)"
    );
    Ok(())
}

/// Prints the certificates issued, or those expiring within `expiring` days.
fn list(ca: CaArg, expiring: Option<u32>, now: OffsetDateTime) -> Result<(), String> {
    let ca = open(&ca)?;
    let now = now.unix_timestamp();
    let rows: Vec<_> = ca
        .list()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|c| {
            expiring
                .is_none_or(|d| c.revoked.is_none() && c.not_after <= now + i64::from(d) * 86_400)
        })
        .collect();
    let mut table = vec![
        ["MEMBER", "KIND", "SERIAL", "EXPIRES", "DAYS", "STATUS"]
            .map(String::from)
            .to_vec(),
    ];
    for c in &rows {
        table.push(vec![
            c.member
                .as_ref()
                .map_or(c.common_name.clone(), |m| m.to_string()),
            c.usage.name().into(),
            c.serial.clone(),
            day(c.not_after),
            ((c.not_after - now).div_euclid(86_400)).to_string(),
            match &c.revoked {
                Some(r) => format!("revoked {} ({})", &r.time[..10], r.reason.name()),
                None => c.status(now).into(),
            },
        ]);
    }
    print!("{}", super::aligned(&table, |i| i == 4));
    eprintln!("{} certificate(s)", rows.len());
    Ok(())
}

/// The UTC date of a Unix time.
fn day(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_or_else(|_| secs.to_string(), |t| t.date().to_string())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
