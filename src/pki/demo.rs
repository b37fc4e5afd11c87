//! The demo PKI: what `focalgate ca demo` writes into `certs-example/`, made with the same CA
//! operations as `focalgate ca init`, `ca issue` and `ca revoke`.

use std::path::Path;

use rcgen::{CertifiedIssuer, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};
use time::{Duration, OffsetDateTime};

use super::{
    CertKind, PkiError,
    ca::{CaDir, KeyType, Reason, Validity, write_identity},
    ca_params, io_err, member_params, write_private, write_public,
};
use crate::{identity::MemberId, schema::CodeLists};

/// Country members of the demo: (member id, organisation, signing key type).
pub const MEMBERS: [(&str, &str, KeyType); 6] = [
    (
        "KAZ:nfp",
        "Kazakhstan national focal point (demo)",
        KeyType::Ed25519,
    ),
    (
        "KGZ:nfp",
        "Kyrgyzstan national focal point (demo)",
        KeyType::Ed25519,
    ),
    (
        "TJK:nfp",
        "Tajikistan national focal point (demo)",
        KeyType::Ed25519,
    ),
    (
        "TKM:nfp",
        "Turkmenistan national focal point (demo)",
        KeyType::Ed25519,
    ),
    (
        "UZB:nfp",
        "Uzbekistan national focal point (demo)",
        KeyType::Ed25519,
    ),
    (
        "DEU:nfp",
        "Germany national focal point (demo)",
        KeyType::P256,
    ),
];

/// Role identities of the demo: (folder, member id, organisation, role).
pub const ROLES: [(&str, &str, &str, &str); 3] = [
    (
        "analyst",
        "PRT:analyst",
        "Regional analysis unit (demo)",
        "analyst",
    ),
    (
        "auditor",
        "LTU:auditor",
        "Partner audit office (demo)",
        "auditor",
    ),
    ("admin", "BEL:admin", "Hub operator (demo)", "admin"),
];

/// The demo witnesses: the Central Asian members each run one, on 127.0.0.1 from port
/// [`WITNESS_PORT`], in this order. Three of them make a quorum.
pub const WITNESSES: [&str; 5] = ["KAZ", "KGZ", "TJK", "TKM", "UZB"];

/// The port of the first demo witness; the others follow.
pub const WITNESS_PORT: u16 = 7381;

/// The demo's identity for the hub when it asks witnesses to cosign: (folder, member id,
/// organisation).
pub const HUB: (&str, &str, &str) = ("hub", "BEL:hub", "Hub operator (demo)");

/// How long the demo's CA, certificates and CRL are valid.
const DEMO_DAYS: u32 = 3650;

/// The demo's sharing rules: most reporters share their country-level figures with every
/// member; Turkmenistan only with the regional analysis group.
const SHARING: &str = "\n# Who may see each reporter's country-level figures (a member always sees its own).\n\
                       [sharing]\ndefault = [\"everyone\"]\n\n[sharing.reporters]\nTKM = [\"group:regional-analysis\"]\n";

fn member(id: &str) -> Result<MemberId, PkiError> {
    MemberId::parse(id).ok_or_else(|| PkiError::Profile(format!("bad member id {id}")))
}

/// Generates the whole demo PKI into `out`, replacing what is there: the CA (`ca/`, a CA
/// directory with its CRL), the server certificate, one identity folder per member and role,
/// the negative identities `expired/`, `revoked/` (both certificates revoked) and `wrong-ca/`,
/// and the demo `policy.toml`.
pub fn generate(out: &Path, lists: &CodeLists) -> Result<(), PkiError> {
    let ca_dir = out.join("ca");
    if ca_dir.exists() {
        std::fs::remove_dir_all(&ca_dir).map_err(io_err(&ca_dir))?;
    }
    let ca = CaDir::init(
        &ca_dir,
        "focalgate demo partnership CA",
        DEMO_DAYS,
        DEMO_DAYS,
    )?;
    let ca_pem = ca.ca_pem()?;
    let valid = Validity::days(DEMO_DAYS);

    let (server, key) = ca.issue_server(&["localhost", "127.0.0.1"], valid)?;
    write_identity(&out.join("server"), &ca_pem, "server", &server, &key)?;

    // Issues an identity folder's two certificates; returns their serial numbers.
    let identity = |folder: &str, id: &MemberId, org: &str, signing: KeyType, v: Validity| {
        let dir = out.join(folder);
        let (auth, key) = ca.issue(id, org, CertKind::Auth, KeyType::P256, v, lists)?;
        write_identity(&dir, &ca_pem, "auth", &auth, &key)?;
        let (sign, key) = ca.issue(id, org, CertKind::Signing, signing, v, lists)?;
        write_identity(&dir, &ca_pem, "signing", &sign, &key)?;
        Ok::<_, PkiError>([auth.serial, sign.serial])
    };

    let mut policy = String::from(
        "# Demo policy: who may do what. Keyed by member id (the certificate's SAN URI\n\
         # urn:focalgate:member:<ISO3>:<slug>); signing certificate paths are relative to this file.\n\
         version = 1\n",
    );
    for (id, org, signing) in MEMBERS {
        let m = member(id)?;
        let folder = m.country();
        identity(folder, &m, org, signing, valid)?;
        let extra = if id == "KAZ:nfp" {
            ", \"expired/signing.pem\", \"revoked/signing.pem\""
        } else {
            ""
        };
        policy.push_str(&format!(
            "\n[members.\"{id}\"]\nroles = [\"submitter\"]\nsigning_certificates = [\"{folder}/signing.pem\"{extra}]\n"
        ));
    }
    for (folder, id, org, role) in ROLES {
        identity(folder, &member(id)?, org, KeyType::Ed25519, valid)?;
        let groups = if role == "analyst" {
            "groups = [\"regional-analysis\"]\n"
        } else {
            ""
        };
        policy.push_str(&format!(
            "\n[members.\"{id}\"]\nroles = [\"{role}\"]\n{groups}signing_certificates = [\"{folder}/signing.pem\"]\n"
        ));
    }
    policy.push_str(SHARING);

    // The hub's client identity for witnesses, and the witnesses' keys, roster and quorum.
    let (folder, id, org) = HUB;
    let (auth, key) = ca.issue(
        &member(id)?,
        org,
        CertKind::Auth,
        KeyType::P256,
        valid,
        lists,
    )?;
    write_identity(&out.join(folder), &ca_pem, "auth", &auth, &key)?;
    let mut roster = String::new();
    let mut runs = String::new();
    for (i, country) in WITNESSES.iter().enumerate() {
        let dir = out.join("witnesses").join(country);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        let name = format!("witness.{}.demo", country.to_lowercase());
        let vkey = super::create_witness_key(&dir, &name)?;
        let port = WITNESS_PORT + i as u16;
        roster.push_str(&format!(
            "witness {country} {vkey} https://127.0.0.1:{port}\n"
        ));
        runs.push_str(&format!("{country} = \"{country}:nfp\"\n"));
    }
    policy.push_str(&format!(
        "\n# Who witnesses the log: C2SP tlog-policy lines (the log's own key is implied), and the\n\
         # member that runs each witness. A checkpoint is witnessed once 3 of the 5 cosigned it.\n\
         [witnesses]\npolicy = \"\"\"\n{roster}group central-asia 3 {}\nquorum central-asia\n\"\"\"\n\n\
         [witnesses.members]\n{runs}",
        WITNESSES.join(" ")
    ));

    // Negative identities, all claiming to be KAZ:nfp.
    let kaz = member("KAZ:nfp")?;
    let org = "Kazakhstan national focal point (demo)";
    let now = OffsetDateTime::now_utc();
    let expired = Validity {
        not_before: now - Duration::days(400),
        not_after: now - Duration::days(35),
    };
    identity("expired", &kaz, org, KeyType::Ed25519, expired)?;
    for serial in identity("revoked", &kaz, org, KeyType::Ed25519, valid)? {
        ca.revoke(&serial, Reason::KeyCompromise, now - Duration::hours(1))?;
    }

    // A look-alike from another CA: same member, same profile, wrong issuer.
    let rogue = CertifiedIssuer::self_signed(
        ca_params("not the partnership CA", valid.not_before, valid.not_after)?,
        KeyType::P256.generate()?,
    )?;
    let dir = out.join("wrong-ca");
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    write_public(&dir.join("ca.pem"), ca_pem.as_bytes())?;
    write_public(&dir.join("rogue-ca.pem"), rogue.pem().as_bytes())?;
    for (stem, kind, alg) in [
        ("auth", CertKind::Auth, &PKCS_ECDSA_P256_SHA256),
        ("signing", CertKind::Signing, &PKCS_ED25519),
    ] {
        let key = super::generate_key(alg)?;
        let params = member_params(&kaz, org, kind, lists, valid.not_before, valid.not_after)?;
        let cert = params.signed_by(&key, &rogue)?;
        write_public(&dir.join(format!("{stem}.pem")), cert.pem().as_bytes())?;
        write_private(
            &dir.join(format!("{stem}.key")),
            key.serialize_pem().as_bytes(),
        )?;
    }

    write_public(&out.join("policy.toml"), policy.as_bytes())
}
