//! `focalgate admin …`: the Admin service from the command line (admin identity), and
//! `focalgate csr`: a member's key and certificate signing request, made where the key stays.

use crate::rpc::admin_client::AdminClient;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use rcgen::{CertificateParams, DnType, SanType};

use super::{Connection, ca::CsrRequest, ca::Kind, ca::member_arg};
use crate::{
    identity::MEMBER_URI_PREFIX,
    pki::{ca::KeyType, pem_encode, write_private, write_public},
    proto::{
        AdminLogEntry, GetCertificateExpiryRequest, GetCrlRequest, GetPolicyRequest,
        IssueCertificateRequest, ListCertificatesRequest, ListMembersRequest, ReplacePolicyRequest,
        RevokeCertificateRequest,
    },
    receipt::format_timestamp,
    schema::CodeLists,
};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Members of the policy with their roles, groups and signing key ids.
    Members(Conn),
    /// Certificates the CA issued (or the signing certificates in use) and their status.
    Certificates(Conn),
    /// Issue a certificate from a member's certificate signing request (see `focalgate csr`).
    Issue(IssueArgs),
    /// Revoke a certificate: refused at once for new handshakes and open connections.
    Revoke {
        #[command(flatten)]
        connection: Connection,
        /// Serial number, hex.
        serial: String,
        /// RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded,
        /// cessationOfOperation.
        #[arg(long)]
        reason: String,
    },
    /// Write the CRLs in force (PEM) to a file.
    Crl {
        #[command(flatten)]
        connection: Connection,
        /// Where to write them.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the policy in force, or replace it with a file.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Every certificate in use and the days until it expires.
    Expiry(Conn),
}

#[derive(Debug, Args)]
pub struct Conn {
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the policy in force (TOML) and its digest.
    Get(Conn),
    /// Replace the policy with FILE, checked completely by the gateway first.
    Set {
        #[command(flatten)]
        connection: Connection,
        /// The new policy (TOML).
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(flatten)]
    request: CsrRequest,
    /// Where to write the certificate (PEM).
    #[arg(long)]
    out: PathBuf,
}

/// `focalgate csr`.
#[derive(Debug, Args)]
pub struct CsrArgs {
    /// The member: ISO 3166-1 alpha-3 country (the focal point) or `<ISO3>:<slug>`.
    #[arg(long)]
    member: String,
    /// The member's organisation.
    #[arg(long)]
    org: String,
    /// What the certificate will be for.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Identity folder to write `<kind>.key` (0600) and `<kind>.csr` into.
    #[arg(long)]
    out: PathBuf,
}

fn failed(status: tonic::Status) -> String {
    super::describe_status(&status, |_| String::new())
}

fn logged(log: Option<&AdminLogEntry>) -> String {
    log.map_or_else(String::new, |l| format!(" (log entry {})", l.log_index))
}

pub async fn run(cmd: AdminCommand) -> Result<(), String> {
    let connection = match &cmd {
        AdminCommand::Members(c) | AdminCommand::Certificates(c) | AdminCommand::Expiry(c) => {
            &c.connection
        }
        AdminCommand::Policy(PolicyCommand::Get(c)) => &c.connection,
        AdminCommand::Issue(a) => &a.connection,
        AdminCommand::Revoke { connection, .. }
        | AdminCommand::Crl { connection, .. }
        | AdminCommand::Policy(PolicyCommand::Set { connection, .. }) => connection,
    };
    let mut client = AdminClient::new(connection.connect().await?);
    match cmd {
        AdminCommand::Members(_) => members(&mut client).await,
        AdminCommand::Certificates(_) => certificates(&mut client).await,
        AdminCommand::Issue(a) => issue(&mut client, a).await,
        AdminCommand::Revoke { serial, reason, .. } => revoke(&mut client, serial, reason).await,
        AdminCommand::Crl { out, .. } => crl(&mut client, out).await,
        AdminCommand::Policy(PolicyCommand::Get(_)) => get_policy(&mut client).await,
        AdminCommand::Policy(PolicyCommand::Set { file, .. }) => {
            set_policy(&mut client, file).await
        }
        AdminCommand::Expiry(_) => expiry(&mut client).await,
    }
}

/// A client of the Admin service.
type Client = AdminClient<tonic::transport::Channel>;

/// Prints the policy's members.
async fn members(client: &mut Client) -> Result<(), String> {
    let members = client
        .list_members(ListMembersRequest {})
        .await
        .map_err(failed)?
        .into_inner()
        .members;
    let mut rows = vec![
        ["MEMBER", "ROLES", "GROUPS", "SIGNING KEYS"]
            .map(String::from)
            .to_vec(),
    ];
    for m in members {
        rows.push(vec![
            m.member,
            m.roles.join(","),
            m.groups.join(","),
            m.signing_keyids.len().to_string(),
        ]);
    }
    print!("{}", super::aligned(&rows, |i| i == 3));
    Ok(())
}

/// Prints the certificates and their status.
async fn certificates(client: &mut Client) -> Result<(), String> {
    let certs = client
        .list_certificates(ListCertificatesRequest {})
        .await
        .map_err(failed)?
        .into_inner()
        .certificates;
    let mut rows = vec![
        ["MEMBER", "KIND", "SERIAL", "EXPIRES", "STATUS"]
            .map(String::from)
            .to_vec(),
    ];
    for c in certs {
        let member = if c.member.is_empty() {
            c.common_name
        } else {
            c.member
        };
        let status = match c.revocation_reason.as_str() {
            "" => c.status,
            reason => format!("{} ({reason})", c.status),
        };
        rows.push(vec![
            member,
            c.kind,
            c.serial,
            c.not_after
                .as_ref()
                .and_then(format_timestamp)
                .unwrap_or_default(),
            status,
        ]);
    }
    print!("{}", super::aligned(&rows, |_| false));
    Ok(())
}

/// Issues a certificate from a CSR and writes it (and the CA certificate, if absent).
async fn issue(client: &mut Client, a: IssueArgs) -> Result<(), String> {
    let r = &a.request;
    let issued = client
        .issue_certificate(IssueCertificateRequest {
            csr_pem: r.read()?,
            kind: r.kind.name().into(),
            member: r.member()?.map(|m| m.to_string()).unwrap_or_default(),
            organisation: r.org.clone().unwrap_or_default(),
            validity_days: r.days,
        })
        .await
        .map_err(failed)?
        .into_inner();
    write_public(&a.out, issued.certificate_pem.as_bytes()).map_err(|e| e.to_string())?;
    let ca = a.out.with_file_name("ca.pem");
    if !ca.exists() {
        write_public(&ca, issued.ca_pem.as_bytes()).map_err(|e| e.to_string())?;
    }
    println!(
        "issued {} certificate {}: {}{}",
        r.kind.name(),
        issued.serial,
        a.out.display(),
        logged(issued.log.as_ref())
    );
    Ok(())
}

/// Revokes a certificate.
async fn revoke(client: &mut Client, serial: String, reason: String) -> Result<(), String> {
    let r = client
        .revoke_certificate(RevokeCertificateRequest { serial, reason })
        .await
        .map_err(failed)?
        .into_inner();
    println!(
        "revoked certificate {} of {} at {}{}",
        r.serial,
        r.member,
        r.revoked_at
            .as_ref()
            .and_then(format_timestamp)
            .unwrap_or_default(),
        logged(r.log.as_ref())
    );
    Ok(())
}

/// Writes the current CRLs.
async fn crl(client: &mut Client, out: PathBuf) -> Result<(), String> {
    let crl = client
        .get_crl(GetCrlRequest {})
        .await
        .map_err(failed)?
        .into_inner();
    let pem: String = crl
        .crls
        .iter()
        .map(|der| pem_encode("X509 CRL", der))
        .collect();
    write_public(&out, pem.as_bytes()).map_err(|e| e.to_string())?;
    println!(
        "{} CRL(s), next update {}: {}",
        crl.crls.len(),
        crl.next_update
            .as_ref()
            .and_then(format_timestamp)
            .unwrap_or_default(),
        out.display()
    );
    Ok(())
}

/// Prints the policy in force (its digest on stderr).
async fn get_policy(client: &mut Client) -> Result<(), String> {
    let p = client
        .get_policy(GetPolicyRequest {})
        .await
        .map_err(failed)?
        .into_inner();
    print!("{}", p.text);
    eprintln!("policy digest sha256:{}", hex::encode(&p.digest));
    Ok(())
}

/// Replaces the policy with `file`, if nobody replaced it since it was read.
async fn set_policy(client: &mut Client, file: PathBuf) -> Result<(), String> {
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let current = client
        .get_policy(GetPolicyRequest {})
        .await
        .map_err(failed)?
        .into_inner();
    let replaced = client
        .replace_policy(ReplacePolicyRequest {
            text,
            expected_digest: current.digest,
        })
        .await
        .map_err(failed)?
        .into_inner();
    println!(
        "policy replaced: sha256:{}{}",
        hex::encode(&replaced.digest),
        logged(replaced.log.as_ref())
    );
    Ok(())
}

/// Prints the certificates by expiry, marking those within the warning period.
async fn expiry(client: &mut Client) -> Result<(), String> {
    let report = client
        .get_certificate_expiry(GetCertificateExpiryRequest {})
        .await
        .map_err(failed)?
        .into_inner();
    let mut rows = vec![
        ["KIND", "SUBJECT", "SERIAL", "EXPIRES", "DAYS"]
            .map(String::from)
            .to_vec(),
    ];
    for c in report.certificates {
        let days = if c.days_left <= i64::from(report.warn_days) {
            format!("{} !", c.days_left)
        } else {
            c.days_left.to_string()
        };
        rows.push(vec![
            c.kind,
            c.subject,
            c.serial,
            c.not_after
                .as_ref()
                .and_then(format_timestamp)
                .unwrap_or_default(),
            days,
        ]);
    }
    print!("{}", super::aligned(&rows, |i| i == 4));
    eprintln!("! expires within {} days", report.warn_days);
    Ok(())
}

/// Makes a key and a certificate signing request naming the member, for its CA to sign.
pub fn csr(args: CsrArgs) -> Result<(), String> {
    let member = member_arg(&args.member)?;
    let lists = CodeLists::builtin().map_err(|e| e.to_string())?;
    let alpha2 = lists
        .area
        .get(member.country())
        .and_then(|c| c.alpha2.clone())
        .ok_or_else(|| format!("{} is not a country in CL_AREA", member.country()))?;
    let key_type = match args.kind {
        Kind::Auth => KeyType::P256,
        Kind::Signing => KeyType::Ed25519,
    };
    let key = key_type.generate().map_err(|e| e.to_string())?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CountryName, alpha2);
    params
        .distinguished_name
        .push(DnType::OrganizationName, args.org.as_str());
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{member} {}", args.kind.name()));
    let uri = format!("{MEMBER_URI_PREFIX}{member}");
    params.subject_alt_names = vec![SanType::URI(
        uri.try_into().map_err(|_| "bad member URI".to_owned())?,
    )];
    let request = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let stem = args.kind.name();
    let key_path = args.out.join(format!("{stem}.key"));
    if key_path.exists() {
        return Err(format!(
            "{} exists: refusing to replace a private key (choose another --out)",
            key_path.display()
        ));
    }
    write_private(&key_path, key.serialize_pem().as_bytes()).map_err(|e| e.to_string())?;
    let csr_path = args.out.join(format!("{stem}.csr"));
    write_public(&csr_path, request.as_bytes()).map_err(|e| e.to_string())?;
    println!(
        "wrote {} (keep it here) and {}: send the request to the partnership's administrator",
        key_path.display(),
        csr_path.display()
    );
    Ok(())
}
