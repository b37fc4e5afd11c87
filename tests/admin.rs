//! Certificate administration over real mTLS: the life of a member (issue from a CSR, connect,
//! submit, revoke, refused at once on the open connection and at the handshake), rotation with
//! two signing certificates, the Admin service's rights, policy replacement and hot reload
//! (bad files refused, the old configuration kept), every act in the log with its proof, and
//! expiry warnings. Each test works on its own copy of the demo PKI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use focalgate::rpc::{
    admin_client::AdminClient, audit_client::AuditClient, statistics_client::StatisticsClient,
    submissions_client::SubmissionsClient,
};
use std::{
    path::Path,
    time::{Duration, Instant},
};

use common::{BIN, Gateway, Signer, body, copy_pki, identity_tls, seizure, settings_with_pki};
use focalgate::{
    checkpoint,
    entry::{AdminAction, Entry},
    merkle::{self, Hash},
    pki::{
        CertKind,
        ca::{CaDir, KeyType, Validity, write_identity},
    },
    proto::{
        AdminLogEntry, GetCertificateExpiryRequest, GetEntriesRequest, GetPolicyRequest,
        IssueCertificateRequest, ListCertificatesRequest, ListMembersRequest, ReplacePolicyRequest,
        RevokeCertificateRequest,
    },
    schema::CodeLists,
};
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, SanType};
use rustls_pki_types::{CertificateRevocationListDer, pem::PemObject};
use tonic::{Code, transport::Channel};

/// A certificate signing request made the way a member would, with its own key: rcgen's
/// request builder, not the CA's code.
fn csr(member_uri: Option<&str>, country: &str, org: &str, key: &KeyPair) -> String {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CountryName, country);
    params
        .distinguished_name
        .push(DnType::OrganizationName, org);
    params
        .distinguished_name
        .push(DnType::CommonName, "requested name");
    if let Some(uri) = member_uri {
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    }
    params.serialize_request(key).unwrap().pem().unwrap()
}

fn kaz_csr(key: &KeyPair) -> String {
    csr(
        Some("urn:focalgate:member:KAZ:nfp"),
        "KZ",
        "Kazakhstan national focal point (demo)",
        key,
    )
}

async fn admin(gw: &Gateway, pki: &Path) -> AdminClient<Channel> {
    AdminClient::new(gw.channel_with(identity_tls(&pki.join("admin"))).await)
}

/// Issues a certificate through the Admin service for a key made here, and writes the
/// identity folder `dir` (`<kind>.pem`, `<kind>.key`, `ca.pem`).
async fn issue(
    gw: &Gateway,
    pki: &Path,
    kind: &str,
    key: KeyPair,
    dir: &Path,
) -> (String, AdminLogEntry) {
    let issued = admin(gw, pki)
        .await
        .issue_certificate(IssueCertificateRequest {
            csr_pem: kaz_csr(&key),
            kind: kind.into(),
            validity_days: 30,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.pem"), &issued.ca_pem).unwrap();
    std::fs::write(dir.join(format!("{kind}.pem")), &issued.certificate_pem).unwrap();
    std::fs::write(dir.join(format!("{kind}.key")), key.serialize_pem()).unwrap();
    (issued.serial, issued.log.unwrap())
}

/// The entry of an administrative act verifies: its checkpoint with the log's key, its
/// inclusion proof into that checkpoint's root, and it decodes as the act.
fn check_logged(gw: &Gateway, log: &AdminLogEntry, action: AdminAction) {
    let opened = checkpoint::open(log.checkpoint.as_bytes(), &gw.log_key(), &[]).unwrap();
    let cp = opened.checkpoint().clone();
    let proof: Vec<Hash> = merkle::decode_proof(&log.inclusion_proof).unwrap();
    merkle::verify_inclusion(
        log.log_index,
        cp.size,
        &merkle::leaf_hash(&log.entry),
        &proof,
        &cp.root,
    )
    .unwrap();
    match Entry::parse(&log.entry).unwrap() {
        Entry::Admin(a) => {
            assert_eq!(a.action, action);
            assert_eq!(a.actor, "BEL:admin");
        }
        other => panic!("not an administrative entry: {other:?}"),
    }
}

/// Whether the analyst may query statistics, or the code it gets.
async fn analyst_can_query(gw: &Gateway, pki: &Path) -> Result<(), Code> {
    let channel = gw.channel_with(identity_tls(&pki.join("analyst"))).await;
    StatisticsClient::new(channel)
        .query(focalgate::proto::AggregateQuery {
            dataflow: "SEIZURES".into(),
            group_by: vec!["DRUG".into()],
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|e| e.code())
}

/// The serial numbers a PEM CRL revokes.
fn crl_serials(path: &Path) -> Vec<String> {
    let der = CertificateRevocationListDer::from_pem_file(path).unwrap();
    let (_, parsed) = x509_parser::parse_x509_crl(der.as_ref()).unwrap();
    parsed
        .iter_revoked_certificates()
        .map(|r| hex::encode(r.raw_serial()))
        .collect()
}

fn heroin(period: &str) -> focalgate::proto::SubmissionBody {
    body(
        "SEIZURES",
        "KAZ",
        period,
        vec![seizure("HEROIN", "KG", "1", 1)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_life_of_a_member_issue_connect_submit_revoke() {
    let dir = common::tempdir();
    let pki = copy_pki(dir.path());
    let gw = Gateway::start_with(settings_with_pki(&dir.path().join("data"), &pki)).await;

    // Issue: an authentication and a signing certificate from the member's own requests.
    let member = dir.path().join("kaz-new");
    let (auth_serial, auth_log) = issue(
        &gw,
        &pki,
        "auth",
        focalgate::pki::generate_key(&PKCS_ECDSA_P256_SHA256).unwrap(),
        &member,
    )
    .await;
    let (_, signing_log) = issue(
        &gw,
        &pki,
        "signing",
        focalgate::pki::generate_key(&PKCS_ED25519).unwrap(),
        &member,
    )
    .await;
    check_logged(&gw, &auth_log, AdminAction::CertificateIssued);
    check_logged(&gw, &signing_log, AdminAction::CertificateIssued);
    match Entry::parse(&signing_log.entry).unwrap() {
        Entry::Admin(a) => assert!(a.certificate.is_some(), "the signing certificate is logged"),
        _ => unreachable!(),
    }

    // Connect and submit, signed with the new signing key: no restart, no policy edit.
    let channel = gw.channel_with(identity_tls(&member)).await;
    let mut client = SubmissionsClient::new(channel.clone());
    let signer = Signer::from_files(&member.join("signing.key"), &member.join("signing.pem"));
    let receipt = client
        .submit(signer.seal(&heroin("2023")))
        .await
        .unwrap()
        .into_inner();
    assert!(receipt.log_index > signing_log.log_index);

    // Revoke through the Admin service; the open connection's next request and a new
    // handshake are refused at once.
    let revoked = admin(&gw, &pki)
        .await
        .revoke_certificate(RevokeCertificateRequest {
            serial: auth_serial.to_uppercase(),
            reason: "keyCompromise".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let at = Instant::now();
    assert_eq!(
        (revoked.serial.as_str(), revoked.member.as_str()),
        (auth_serial.as_str(), "KAZ:nfp")
    );
    check_logged(
        &gw,
        revoked.log.as_ref().unwrap(),
        AdminAction::CertificateRevoked,
    );
    let err = client
        .submit(signer.seal(&heroin("2022")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let fresh = tonic::transport::Endpoint::from_shared(gw.url())
        .unwrap()
        .tls_config(identity_tls(&member))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = fresh {
        let err = SubmissionsClient::new(channel)
            .submit(signer.seal(&heroin("2022")))
            .await
            .unwrap_err();
        // Refused by the handshake itself, not by the per-request check.
        assert_ne!(err.code(), Code::Unauthenticated, "{err:?}");
    }
    assert!(at.elapsed() < Duration::from_secs(1));

    // The CA published a fresh CRL naming it; the other members are unaffected.
    assert!(crl_serials(&pki.join("ca/crl.pem")).contains(&auth_serial));
    gw.client("KGZ")
        .await
        .submit(Signer::of("KGZ").seal(&body(
            "SEIZURES",
            "KGZ",
            "2023",
            vec![seizure("HEROIN", "KG", "1", 1)],
        )))
        .await
        .unwrap();

    // Revoking again is refused and changes nothing; an unknown serial is not found.
    let mut a = admin(&gw, &pki).await;
    let again = a
        .revoke_certificate(RevokeCertificateRequest {
            serial: auth_serial.clone(),
            reason: "keyCompromise".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    let unknown = a
        .revoke_certificate(RevokeCertificateRequest {
            serial: "0badc0de".into(),
            reason: "superseded".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = a
        .revoke_certificate(RevokeCertificateRequest {
            serial: "xyz".into(),
            reason: "because".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("serial") && bad.message().contains("reason"));

    // The certificate list shows it revoked.
    let listed = a
        .list_certificates(ListCertificatesRequest {})
        .await
        .unwrap()
        .into_inner();
    let cert = listed
        .certificates
        .iter()
        .find(|c| c.serial == auth_serial)
        .unwrap();
    assert_eq!(
        (
            cert.status.as_str(),
            cert.revocation_reason.as_str(),
            cert.kind.as_str()
        ),
        ("revoked", "keyCompromise", "auth")
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_with_two_signing_certificates_and_revocation_of_the_old_one() {
    let dir = common::tempdir();
    let pki = copy_pki(dir.path());
    let gw = Gateway::start_with(settings_with_pki(&dir.path().join("data"), &pki)).await;
    let old = Signer::from_files(&pki.join("KAZ/signing.key"), &pki.join("KAZ/signing.pem"));
    let new_dir = dir.path().join("kaz-rotated");
    issue(
        &gw,
        &pki,
        "signing",
        focalgate::pki::generate_key(&PKCS_ED25519).unwrap(),
        &new_dir,
    )
    .await;
    let new = Signer::from_files(&new_dir.join("signing.key"), &new_dir.join("signing.pem"));

    // During the rollover both sign.
    let mut kaz = SubmissionsClient::new(gw.channel_with(identity_tls(&pki.join("KAZ"))).await);
    let before = kaz
        .submit(old.seal(&heroin("2021")))
        .await
        .unwrap()
        .into_inner();
    kaz.submit(new.seal(&heroin("2020"))).await.unwrap();

    // The old one is revoked (superseded): it signs no more; the new one still does.
    let old_serial = {
        let der = focalgate::tls::read_chain(&pki.join("KAZ/signing.pem"))
            .unwrap()
            .remove(0);
        let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        hex::encode(c.raw_serial())
    };
    let revoked = admin(&gw, &pki)
        .await
        .revoke_certificate(RevokeCertificateRequest {
            serial: old_serial,
            reason: "superseded".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(before.log_index < revoked.log.unwrap().log_index);
    let err = kaz.submit(old.seal(&heroin("2019"))).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("revoked"), "{}", err.message());
    kaz.submit(new.seal(&heroin("2019"))).await.unwrap();

    // What the old certificate signed before its revocation stays verifiable: `log verify`
    // re-verifies every submission, with the revocation's place in the log as the evidence.
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(BIN)
            .args(["log", "verify", "--server", &gw.url(), "--identity"])
            .arg(pki.join("auditor"))
            .arg("--log-key")
            .arg(gw.data_dir.join("log.vkey"))
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("3 submission signature(s)"), "{stdout}");
    assert!(
        stdout.contains("1 revocation(s) and 1 signing certificate(s) in the log"),
        "{stdout}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn only_administrators_call_admin() {
    let dir = common::tempdir();
    let pki = copy_pki(dir.path());
    let gw = Gateway::start_with(settings_with_pki(&dir.path().join("data"), &pki)).await;
    for who in ["KAZ", "analyst", "auditor"] {
        let mut client = AdminClient::new(gw.channel_with(identity_tls(&pki.join(who))).await);
        let err = client
            .list_members(ListMembersRequest {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who}");
        let err = client
            .revoke_certificate(RevokeCertificateRequest {
                serial: "01".into(),
                reason: "superseded".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who}");
    }
    // Auditors may read expiry; analysts may not.
    let mut auditor = AdminClient::new(gw.channel_with(identity_tls(&pki.join("auditor"))).await);
    auditor
        .get_certificate_expiry(GetCertificateExpiryRequest {})
        .await
        .unwrap();
    let mut analyst = AdminClient::new(gw.channel_with(identity_tls(&pki.join("analyst"))).await);
    let err = analyst
        .get_certificate_expiry(GetCertificateExpiryRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let members = admin(&gw, &pki)
        .await
        .list_members(ListMembersRequest {})
        .await
        .unwrap()
        .into_inner()
        .members;
    let analyst = members.iter().find(|m| m.member == "PRT:analyst").unwrap();
    assert_eq!(
        (analyst.roles.clone(), analyst.groups.clone()),
        (
            vec!["analyst".to_owned()],
            vec!["regional-analysis".to_owned()]
        )
    );
    assert_eq!(gw.count("log_entries").await, 0, "reads are not logged");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_replacement_and_hot_reload_keep_the_old_configuration_on_bad_files() {
    let dir = common::tempdir();
    let pki = copy_pki(dir.path());
    let gw = Gateway::start_with(settings_with_pki(&dir.path().join("data"), &pki)).await;
    let mut a = admin(&gw, &pki).await;
    let policy = a
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner();

    // A malformed policy through the Admin service: refused, naming what is wrong.
    let err = a
        .replace_policy(ReplacePolicyRequest {
            text: policy
                .text
                .replace("roles = [\"analyst\"]", "roles = [\"analyst\""),
            expected_digest: policy.digest.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("text"), "{}", err.message());
    let err = a
        .replace_policy(ReplacePolicyRequest {
            text: policy
                .text
                .replace("roles = [\"analyst\"]", "roles = [\"pilot\"]"),
            expected_digest: policy.digest.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // A valid one, taking the analyst role away: logged, in force at once.
    assert_eq!(analyst_can_query(&gw, &pki).await, Ok(()));
    let new_text = policy.text.replace("roles = [\"analyst\"]", "roles = []");
    let replaced = a
        .replace_policy(ReplacePolicyRequest {
            text: new_text.clone(),
            expected_digest: policy.digest.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let log = replaced.log.unwrap();
    check_logged(&gw, &log, AdminAction::PolicyChanged);
    let digest = ring::digest::digest(&ring::digest::SHA256, new_text.as_bytes());
    assert_eq!(replaced.digest, digest.as_ref());
    match Entry::parse(&log.entry).unwrap() {
        Entry::Admin(e) => assert_eq!(e.digest.as_slice(), digest.as_ref()),
        _ => unreachable!(),
    }
    assert_eq!(
        analyst_can_query(&gw, &pki).await,
        Err(Code::PermissionDenied)
    );
    // A stale digest: someone else changed it meanwhile.
    let err = a
        .replace_policy(ReplacePolicyRequest {
            text: policy.text.clone(),
            expected_digest: policy.digest.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);

    // Editing the files: a broken policy or CRL is refused and the old configuration stays.
    let size = gw.count("log_entries").await;
    std::fs::write(
        pki.join("policy.toml"),
        "version = 1\n[members.\"KAZ:nfp\"\n",
    )
    .unwrap();
    std::fs::write(
        pki.join("ca/crl.pem"),
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.client("KAZ")
        .await
        .submit(Signer::of("KAZ").seal(&heroin("2018")))
        .await
        .expect("the old configuration stays in force");
    assert_eq!(
        analyst_can_query(&gw, &pki).await,
        Err(Code::PermissionDenied)
    );
    assert_eq!(
        a.get_policy(GetPolicyRequest {})
            .await
            .unwrap()
            .into_inner()
            .digest,
        replaced.digest
    );

    // Fixed files are picked up without a restart, and the change is logged.
    CaDir::open(&pki.join("ca"))
        .unwrap()
        .publish_crl(None)
        .unwrap();
    std::fs::write(pki.join("policy.toml"), &policy.text).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while analyst_can_query(&gw, &pki).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the fixed policy was not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let entries = AuditClient::new(gw.channel("auditor").await)
        .get_entries(GetEntriesRequest {
            start: size as u64,
            end: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut stream = entries;
    let mut operator_change = false;
    while let Some(e) = stream.message().await.unwrap() {
        if let Ok(Entry::Admin(a)) = Entry::parse(&e.entry) {
            operator_change |= a.action == AdminAction::PolicyChanged && a.actor == "operator";
        }
    }
    assert!(
        operator_change,
        "a policy edited on disk is logged as the operator's"
    );
    gw.stop().await;
}

#[tokio::test]
async fn edits_made_while_the_gateway_is_stopped_are_logged_at_its_next_start() {
    let dir = common::tempdir();
    let pki = copy_pki(dir.path());
    let settings = settings_with_pki(&dir.path().join("data"), &pki);
    let policy_file = pki.join("policy.toml");
    let original = std::fs::read_to_string(&policy_file).unwrap();

    // The first start logs nothing: the policy in force and the revocations already in the
    // CRL (the demo's revoked/ identity) are the reference.
    let gw = Gateway::start_with(settings.clone()).await;
    gw.client("KAZ")
        .await
        .submit(Signer::of("KAZ").seal(&heroin("2018")))
        .await
        .unwrap();
    assert_eq!(gw.count("log_entries").await, 1);
    gw.stop().await;

    // Restarting unchanged logs nothing either.
    let gw = Gateway::start_with(settings.clone()).await;
    assert_eq!(gw.count("log_entries").await, 1);
    gw.stop().await;

    // While stopped, the analyst loses its role and `ca revoke` revokes DEU's signing
    // certificate. The next start logs both, as the operator's acts, before anyone is served.
    let edited = original.replace("roles = [\"analyst\"]", "roles = []");
    assert_ne!(
        edited, original,
        "the demo policy gives the analyst its role"
    );
    std::fs::write(&policy_file, &edited).unwrap();
    let deu_signing = common::revoke_signing_cert(&pki, "DEU");
    let gw = Gateway::start_with(settings.clone()).await;
    let logged = gw.admin_entries(1).await;
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert_eq!(logged[0].action, AdminAction::PolicyChanged);
    assert_eq!(logged[0].actor, "operator");
    assert_eq!(
        logged[0].digest,
        focalgate::entry::sha256(edited.as_bytes())
    );
    assert_eq!(logged[1].action, AdminAction::CertificateRevoked);
    assert_eq!(logged[1].actor, "operator");
    assert_eq!(logged[1].subject, "DEU:nfp");
    assert_eq!(logged[1].serial.as_deref(), Some(deu_signing.as_str()));
    assert_eq!(logged[1].reason.as_deref(), Some("keyCompromise"));
    assert_eq!(
        admin(&gw, &pki)
            .await
            .get_policy(GetPolicyRequest {})
            .await
            .unwrap()
            .into_inner()
            .digest,
        logged[0].digest.to_vec()
    );
    assert_eq!(
        analyst_can_query(&gw, &pki).await,
        Err(Code::PermissionDenied)
    );
    gw.stop().await;

    // Unchanged since: nothing new. The policy put back while stopped: logged again, against
    // the logged policy this time.
    let gw = Gateway::start_with(settings.clone()).await;
    assert_eq!(gw.count("log_entries").await, 3);
    gw.stop().await;
    std::fs::write(&policy_file, &original).unwrap();
    let gw = Gateway::start_with(settings).await;
    let logged = gw.admin_entries(3).await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].action, AdminAction::PolicyChanged);
    assert_eq!(
        logged[0].digest,
        focalgate::entry::sha256(original.as_bytes())
    );
    assert_eq!(analyst_can_query(&gw, &pki).await, Ok(()));
    gw.stop().await;
}

#[test]
fn sign_csr_issues_from_an_external_request_and_checks_it() {
    let dir = common::tempdir();
    let ca_dir = dir.path().join("ca");
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .arg("--ca-dir")
            .arg(&ca_dir)
            .output()
            .unwrap()
    };
    assert!(run(&["ca", "init", "--name", "Test CA"]).status.success());
    let refused = run(&["ca", "init"]);
    assert!(
        !refused.status.success(),
        "an existing CA is never replaced"
    );

    let key = focalgate::pki::generate_key(&PKCS_ED25519).unwrap();
    let request = dir.path().join("kgz.csr");
    std::fs::write(
        &request,
        csr(
            Some("urn:focalgate:member:KGZ:nfp"),
            "KG",
            "Kyrgyz NFP",
            &key,
        ),
    )
    .unwrap();
    let cert = dir.path().join("kgz-signing.pem");
    let out = run(&[
        "ca",
        "sign-csr",
        request.to_str().unwrap(),
        "--kind",
        "signing",
        "--out",
        cert.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The certificate follows the profile, whatever the request asked for, and carries the
    // requester's key.
    let der = focalgate::tls::read_chain(&cert).unwrap().remove(0);
    let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    let lists = CodeLists::builtin().unwrap();
    let id = focalgate::identity::identify(der.as_ref(), &lists).unwrap();
    assert_eq!(
        (id.member.as_str(), id.organisation.as_str()),
        ("KGZ:nfp", "Kyrgyz NFP")
    );
    assert_eq!(
        c.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
    let ku = c.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.non_repudiation());
    let eku = c.extended_key_usage().unwrap().unwrap().value;
    assert!(
        !eku.client_auth
            && eku
                .other
                .iter()
                .any(|o| o.to_id_string() == "1.3.6.1.5.5.7.3.36")
    );
    assert!(c.subject().to_string().contains("CN=KGZ:nfp signing"));

    // Refused: a request for one country issued to another; one without a member; garbage.
    let kz = dir.path().join("kz.csr");
    std::fs::write(&kz, csr(None, "KZ", "Kazakh NFP", &key)).unwrap();
    let wrong = run(&[
        "ca",
        "sign-csr",
        kz.to_str().unwrap(),
        "--kind",
        "auth",
        "--member",
        "KGZ",
    ]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("country"));
    let anonymous = run(&["ca", "sign-csr", kz.to_str().unwrap(), "--kind", "auth"]);
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("--member"));
    let ok = run(&[
        "ca",
        "sign-csr",
        kz.to_str().unwrap(),
        "--kind",
        "auth",
        "--member",
        "KAZ",
    ]);
    assert!(ok.status.success());
    let garbage = dir.path().join("garbage.csr");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
    )
    .unwrap();
    assert!(
        !run(&[
            "ca",
            "sign-csr",
            garbage.to_str().unwrap(),
            "--kind",
            "auth"
        ])
        .status
        .success()
    );

    // Listed, with its status; revoked by serial; the CRL names it.
    let list = String::from_utf8(run(&["ca", "list"]).stdout).unwrap();
    assert!(
        list.contains("KGZ:nfp") && list.contains("signing"),
        "{list}"
    );
    let serial = hex::encode(c.raw_serial());
    let revoke = run(&["ca", "revoke", &serial, "--reason", "superseded"]);
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let list = String::from_utf8(run(&["ca", "list"]).stdout).unwrap();
    assert!(list.contains("revoked"), "{list}");
    assert!(crl_serials(&ca_dir.join("crl.pem")).contains(&serial));
    // Keys are owner-only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ca_dir.join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_warned_30_days_ahead_and_reported() {
    let dir = common::tempdir();
    let pki = copy_pki(dir.path());
    let lists = CodeLists::builtin().unwrap();
    let ca = CaDir::open(&pki.join("ca")).unwrap();
    // A server certificate with ten days left, and a member signing certificate with twenty.
    let (server, key) = ca
        .issue_server(&["localhost", "127.0.0.1"], Validity::days(10))
        .unwrap();
    write_identity(
        &pki.join("server"),
        &ca.ca_pem().unwrap(),
        "server",
        &server,
        &key,
    )
    .unwrap();
    let kaz = focalgate::identity::MemberId::parse("KAZ:nfp").unwrap();
    let (signing, key) = ca
        .issue(
            &kaz,
            "KZ NFP",
            CertKind::Signing,
            KeyType::Ed25519,
            Validity::days(20),
            &lists,
        )
        .unwrap();
    write_identity(
        &pki.join("KAZ-short"),
        &ca.ca_pem().unwrap(),
        "signing",
        &signing,
        &key,
    )
    .unwrap();
    let policy = std::fs::read_to_string(pki.join("policy.toml"))
        .unwrap()
        .replace(
            "signing_certificates = [\"KAZ/signing.pem\"",
            "signing_certificates = [\"KAZ-short/signing.pem\", \"KAZ/signing.pem\"",
        );
    std::fs::write(pki.join("policy.toml"), policy).unwrap();

    // The binary warns at start, in its JSON log.
    let port = common::free_port();
    let config = dir.path().join("gw.toml");
    common::write_config(&config, port, &dir.path().join("data"), &pki, "");
    let child = common::ChildGateway::spawn(config, port);
    let warned = |kind: &str, days: i64| {
        child.lines().iter().any(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
            v["level"] == "WARN"
                && v["fields"]["message"] == "certificate expires soon"
                && v["fields"]["kind"] == kind
                && v["fields"]["days_left"]
                    .as_i64()
                    .is_some_and(|d| (days - 1..=days).contains(&d))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(warned("server", 10) && warned("member signing", 20)) {
        assert!(
            Instant::now() < deadline,
            "no warnings in:\n{}",
            child.lines().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !warned("ca", 3650),
        "nothing far from expiry is warned about"
    );

    // And over the Admin service, for an auditor.
    let channel = tonic::transport::Endpoint::from_shared(child.url.clone())
        .unwrap()
        .tls_config(identity_tls(&pki.join("auditor")))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let report = AdminClient::new(channel)
        .get_certificate_expiry(GetCertificateExpiryRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.warn_days, 30);
    let first = report
        .certificates
        .iter()
        .find(|c| c.kind == "server")
        .unwrap();
    assert_eq!(first.serial, server.serial);
    assert!((9..=10).contains(&first.days_left));
    // Soonest first: the demo's expired signing certificate, still listed in its policy.
    assert!(report.certificates[0].days_left < 0);
    assert!(
        report
            .certificates
            .iter()
            .any(|c| c.kind == "member signing"
                && c.serial == signing.serial
                && (19..=20).contains(&c.days_left))
    );
    assert!(
        report
            .certificates
            .iter()
            .any(|c| c.kind == "member authentication")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_runs_a_members_life_and_sighup_reloads() {
    let dir = common::tempdir();
    let pki = copy_pki(dir.path());
    let port = common::free_port();
    let config = dir.path().join("gw.toml");
    let extra = format!(
        "[ca]\ndir = \"{}\"\n[reload]\nwatch_ms = 0\n",
        pki.join("ca").display()
    );
    common::write_config(&config, port, &dir.path().join("data"), &pki, &extra);
    let gw = common::ChildGateway::spawn(config, port);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env("FOCALGATE_SERVER", &gw.url)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let admin_id = path(&pki.join("admin"));
    let member = dir.path().join("kaz-2027");
    let m = path(&member);

    // The member makes its keys and requests; the administrator issues; the member submits.
    for kind in ["auth", "signing"] {
        let (ok, out) = run(&[
            "csr", "--member", "KAZ", "--org", "KZ NFP", "--kind", kind, "--out", &m,
        ]);
        assert!(ok, "{out}");
        let csr = path(&member.join(format!("{kind}.csr")));
        let cert = path(&member.join(format!("{kind}.pem")));
        let (ok, out) = run(&[
            "admin",
            "issue",
            &csr,
            "--kind",
            kind,
            "--out",
            &cert,
            "--identity",
            &admin_id,
        ]);
        assert!(ok, "{out}");
    }
    let sample = path(&common::samples().join("KAZ-SEIZURES.csv"));
    let (ok, out) = run(&["submit", &sample, "--identity", &m]);
    assert!(ok && out.contains("28 accepted"), "{out}");

    // Revoked: the member's next call fails, with a hint.
    let der = focalgate::tls::read_chain(&member.join("auth.pem"))
        .unwrap()
        .remove(0);
    let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    let serial = hex::encode(c.raw_serial());
    let (ok, out) = run(&[
        "admin",
        "revoke",
        &serial,
        "--reason",
        "keyCompromise",
        "--identity",
        &admin_id,
    ]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["submissions", "list", "--identity", &m]);
    assert!(
        !ok && out.contains("your authentication certificate is revoked"),
        "{out}"
    );

    // Files edited by the operator take effect on SIGHUP (watching is off here), and the
    // changes are logged: a policy edit and an offline revocation with `focalgate ca`.
    let policy = std::fs::read_to_string(pki.join("policy.toml")).unwrap();
    std::fs::write(
        pki.join("policy.toml"),
        policy.replace("roles = [\"analyst\"]", "roles = []"),
    )
    .unwrap();
    let kgz = focalgate::tls::read_chain(&pki.join("KGZ/auth.pem"))
        .unwrap()
        .remove(0);
    let (_, c) = x509_parser::parse_x509_certificate(kgz.as_ref()).unwrap();
    let kgz_serial = hex::encode(c.raw_serial());
    let ca_dir = path(&pki.join("ca"));
    let (ok, out) = run(&[
        "ca",
        "revoke",
        &kgz_serial,
        "--reason",
        "cessationOfOperation",
        "--ca-dir",
        &ca_dir,
    ]);
    assert!(ok, "{out}");
    let query = [
        "query",
        "--dataflow",
        "SEIZURES",
        "--group-by",
        "drug",
        "--identity",
    ];
    let analyst = path(&pki.join("analyst"));
    let (ok, out) = run(&[&query[..], &[analyst.as_str()]].concat());
    assert!(ok, "not reloaded yet: {out}");
    std::process::Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw
        .lines()
        .iter()
        .any(|l| l.contains("configuration reloaded") && l.contains("SIGHUP"))
    {
        assert!(Instant::now() < deadline, "{}", gw.lines().join("\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ok, out) = run(&[&query[..], &[analyst.as_str()]].concat());
    assert!(!ok && out.contains("PermissionDenied"), "{out}");
    let (ok, _) = run(&["submissions", "list", "--identity", &path(&pki.join("KGZ"))]);
    assert!(!ok, "KGZ's certificate is revoked by the new CRL");
    // The new configuration is in force before its acts are durably logged: wait for them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let operator_acts: Vec<String> = gw
            .lines()
            .into_iter()
            .filter(|l| l.contains("administrative act logged") && l.contains("\"operator\""))
            .collect();
        if operator_acts.iter().any(|l| l.contains("policy-changed"))
            && operator_acts
                .iter()
                .any(|l| l.contains("certificate-revoked") && l.contains(&kgz_serial))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{operator_acts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ok, out) = run(&["admin", "expiry", "--identity", &admin_id]);
    assert!(ok && out.contains("server"), "{out}");
}

/// The serial number of the certificate the gateway presents to a new TLS connection.
async fn served_certificate(gw: &Gateway, pki: &Path) -> String {
    use rustls_pki_types::ServerName;
    let config = focalgate::tls::IdentityDir::new(pki.join("KAZ"))
        .rustls_client()
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, c) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
    hex::encode(c.raw_serial())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_certificate_is_served_without_a_restart() {
    let dir = common::tempdir();
    let pki = copy_pki(dir.path());
    let gw = Gateway::start_with(settings_with_pki(&dir.path().join("data"), &pki)).await;
    let before = served_certificate(&gw, &pki).await;
    let open = SubmissionsClient::new(gw.channel_with(identity_tls(&pki.join("KAZ"))).await);

    // The operator renews the server certificate in place (certificate and key).
    let ca = CaDir::open(&pki.join("ca")).unwrap();
    let (renewed, key) = ca
        .issue_server(&["localhost", "127.0.0.1"], Validity::days(90))
        .unwrap();
    let staging = dir.path().join("staging");
    write_identity(&staging, &ca.ca_pem().unwrap(), "server", &renewed, &key).unwrap();
    std::fs::rename(staging.join("server.key"), pki.join("server/server.key")).unwrap();
    std::fs::rename(staging.join("server.pem"), pki.join("server/server.pem")).unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = served_certificate(&gw, &pki).await;
        if now == renewed.serial {
            break;
        }
        assert_eq!(now, before, "only the old or the new certificate");
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Connections opened before keep working.
    let mut open = open;
    open.submit(
        Signer::from_files(&pki.join("KAZ/signing.key"), &pki.join("KAZ/signing.pem"))
            .seal(&heroin("2017")),
    )
    .await
    .unwrap();
    gw.stop().await;
}
