//! Who may connect: TLS 1.3 only, client certificate required, chained to the partnership CA,
//! unexpired, unrevoked, and naming a member in the policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Gateway, Signer, body, pki, seizure};
use focalgate::{
    identity::MemberId,
    pki::{CertKind, member_params},
    rpc::submissions_client::SubmissionsClient,
    schema::CodeLists,
};
use rcgen::{Issuer, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use time::{Duration, OffsetDateTime};
use tonic::{
    Code,
    transport::{Certificate, ClientTlsConfig, Identity},
};

fn ca_tls() -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
        std::fs::read(pki().join("ca/ca.pem")).unwrap(),
    ))
}

/// Connects as the identity folder `who` and tries one submission; returns the error.
async fn refused(url: &str, tls: ClientTlsConfig) -> tonic::Status {
    // Under TLS 1.3 the server checks the client certificate after the client considers the
    // handshake done: connect() may succeed, the first call must fail.
    let channel = match tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
    {
        Ok(channel) => channel,
        Err(e) => return tonic::Status::unavailable(e.to_string()),
    };
    let env = Signer::of("KAZ").seal(&body(
        "SEIZURES",
        "KAZ",
        "2024",
        vec![seizure("HEROIN", "KG", "1", 1)],
    ));
    SubmissionsClient::new(channel)
        .submit(env)
        .await
        .expect_err("the call must be refused")
}

fn identity_of(who: &str) -> Identity {
    let dir = pki().join(who);
    Identity::from_pem(
        std::fs::read(dir.join("auth.pem")).unwrap(),
        std::fs::read(dir.join("auth.key")).unwrap(),
    )
}

#[tokio::test]
async fn missing_foreign_expired_and_revoked_client_certificates_are_refused() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let cases = [
        ("no client certificate", ca_tls()),
        ("wrong CA", ca_tls().identity(identity_of("wrong-ca"))),
        ("expired", ca_tls().identity(identity_of("expired"))),
        ("revoked", ca_tls().identity(identity_of("revoked"))),
    ];
    for (what, tls) in cases {
        let status = refused(&gw.url(), tls).await;
        assert_ne!(status.code(), Code::Ok, "{what}");
    }
    assert_eq!(gw.count("submissions").await, 0);

    // The same gateway still serves a good member.
    let env = Signer::of("KAZ").seal(&body(
        "SEIZURES",
        "KAZ",
        "2024",
        vec![seizure("HEROIN", "KG", "1", 1)],
    ));
    gw.client("KAZ").await.submit(env).await.unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn a_tls12_only_client_cannot_connect() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(pki().join("ca/ca.pem")).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_file(pki().join("KAZ/auth.pem")).unwrap()];
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(pki().join("KAZ/auth.key")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(focalgate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let result = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    let err = result.expect_err("a TLS 1.2 handshake must fail");
    assert!(
        err.to_string().to_lowercase().contains("protocol") || err.to_string().contains("alert"),
        "{err}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_ca_issued_certificate_for_a_member_not_in_the_policy_is_unauthenticated() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(pki().join("ca/ca.key")).unwrap()).unwrap();
    let ca_cert = CertificateDer::from_pem_file(pki().join("ca/ca.pem")).unwrap();
    let issuer = Issuer::from_ca_cert_der(&ca_cert, ca_key).unwrap();
    let lists = CodeLists::builtin().unwrap();
    let member = MemberId::parse("FRA:stranger").unwrap();
    let now = OffsetDateTime::now_utc();
    let params = member_params(
        &member,
        "Not in the policy",
        CertKind::Auth,
        &lists,
        now - Duration::hours(1),
        now + Duration::days(1),
    )
    .unwrap();
    let key = focalgate::pki::generate_key(&PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let status = refused(
        &gw.url(),
        ca_tls().identity(Identity::from_pem(cert.pem(), key.serialize_pem())),
    )
    .await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        !status.message().contains("FRA:stranger"),
        "no internal detail to the peer: {}",
        status.message()
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_signing_certificate_cannot_be_used_for_tls_and_the_log_says_why_in_dotted_oids() {
    let dir = common::tempdir();
    let child = common::ChildGateway::start(dir.path());
    // The demo PKI's expired KAZ signing certificate is a fixture, not a fault: KAZ holds a
    // valid one, so nothing at start is logged above INFO.
    let loud: Vec<String> = child
        .lines()
        .into_iter()
        .filter(|l| l.contains("\"level\":\"ERROR\"") || l.contains("certificate has expired"))
        .collect();
    assert!(loud.is_empty(), "{loud:?}");

    let dir_kaz = pki().join("KAZ");
    let signing = Identity::from_pem(
        std::fs::read(dir_kaz.join("signing.pem")).unwrap(),
        std::fs::read(dir_kaz.join("signing.key")).unwrap(),
    );
    let status = refused(&child.url, ca_tls().identity(signing)).await;
    assert_ne!(status.code(), Code::Ok);
    let said = || {
        child.lines().into_iter().find(|l| {
            l.contains("TLS handshake refused")
                && l.contains("clientAuth (1.3.6.1.5.5.7.3.2)")
                && l.contains("documentSigning (1.3.6.1.5.5.7.3.36)")
        })
    };
    // Logged once the refusal is handled: up to 5 s on a loaded machine.
    for _ in 0..250 {
        if said().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(said().is_some(), "{:#?}", child.lines());
}
