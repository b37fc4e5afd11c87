//! What may be submitted, and by whom: the signature is checked over the raw bytes before
//! anything is decoded, the signer must be the sender's own valid signing certificate, and a
//! submitter reports only for its own country. Every refusal leaves the store untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, Signer, body, pki, seizure};
use focalgate::{
    envelope,
    proto::{Signature, SignedEnvelope, SubmissionBody},
};
use tonic::Code;
use tonic_types::StatusExt;

fn kaz_body() -> SubmissionBody {
    body(
        "SEIZURES",
        "KAZ",
        "2024-Q1",
        vec![seizure("HEROIN", "KG", "2.5", 1)],
    )
}

/// (field, reason) of every violation in a status.
fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    let bad = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest details: {status:?}"));
    bad.field_violations
        .into_iter()
        .map(|v| (v.field, v.reason))
        .collect()
}

#[tokio::test]
async fn tampered_or_foreign_signatures_are_refused_and_nothing_is_stored() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let kaz = Signer::of("KAZ");
    let good = kaz.seal(&kaz_body());

    let mut flipped = good.clone();
    flipped.payload[7] ^= 0x01;
    let mut retyped = good.clone();
    retyped.payload_type = "application/vnd.focalgate.submission.v2+protobuf".into();
    let mut unsigned = good.clone();
    unsigned.signatures.clear();
    let mut forged_keyid = Signer::of("KGZ").seal(&kaz_body());
    forged_keyid.signatures[0].keyid = kaz.keyid.clone();
    let auth_as_signer =
        Signer::from_files(&pki().join("KAZ/auth.key"), &pki().join("KAZ/auth.pem"))
            .seal(&kaz_body());
    let revoked = Signer::from_files(
        &pki().join("revoked/signing.key"),
        &pki().join("revoked/signing.pem"),
    )
    .seal(&kaz_body());
    let expired = Signer::from_files(
        &pki().join("expired/signing.key"),
        &pki().join("expired/signing.pem"),
    )
    .seal(&kaz_body());
    let rogue = Signer::from_files(
        &pki().join("wrong-ca/signing.key"),
        &pki().join("wrong-ca/signing.pem"),
    )
    .seal(&kaz_body());
    let mut garbage = good.clone();
    garbage.payload = b"not a protobuf \xff\xff\xff".to_vec();
    garbage.signatures = vec![Signature {
        keyid: kaz.keyid.clone(),
        sig: kaz
            .key
            .sign(&envelope::pae(&garbage.payload_type, &garbage.payload))
            .unwrap(),
    }];

    let cases: Vec<(&str, SignedEnvelope, &str, &str)> = vec![
        (
            "signed by another member's key",
            Signer::of("KGZ").seal(&kaz_body()),
            "signatures[0].keyid",
            "ENVELOPE_SIGNER",
        ),
        (
            "a flipped payload bit",
            flipped,
            "signatures[0].sig",
            "ENVELOPE_SIGNATURE",
        ),
        (
            "a wrong payload_type",
            retyped,
            "payload_type",
            "ENVELOPE_PAYLOAD_TYPE",
        ),
        ("no signature", unsigned, "signatures", "ENVELOPE_SIGNATURE"),
        (
            "another key under the sender's keyid",
            forged_keyid,
            "signatures[0].sig",
            "ENVELOPE_SIGNATURE",
        ),
        (
            "the authentication key as signer",
            auth_as_signer,
            "signatures[0].keyid",
            "ENVELOPE_SIGNER",
        ),
        (
            "a revoked signing certificate",
            revoked,
            "signatures[0].keyid",
            "ENVELOPE_SIGNER",
        ),
        (
            "an expired signing certificate",
            expired,
            "signatures[0].keyid",
            "ENVELOPE_SIGNER",
        ),
        (
            "a signing certificate from another CA",
            rogue,
            "signatures[0].keyid",
            "ENVELOPE_SIGNER",
        ),
        (
            "a signed payload that is not a SubmissionBody",
            garbage,
            "payload",
            "PAYLOAD_MALFORMED",
        ),
    ];
    let mut client = gw.client("KAZ").await;
    let mut wrong = Vec::new();
    for (what, env, field, reason) in &cases {
        match client.submit(env.clone()).await {
            Ok(_) => wrong.push(format!("{what}: accepted")),
            Err(s) if s.code() != Code::InvalidArgument => {
                wrong.push(format!("{what}: {:?} {}", s.code(), s.message()))
            }
            Err(s) => {
                let got = violations(&s);
                if !got.contains(&(field.to_string(), reason.to_string())) {
                    wrong.push(format!(
                        "{what}: expected {field} {reason}, got {got:?} ({})",
                        s.message()
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    assert_eq!(
        (
            gw.count("submissions").await,
            gw.count("observations").await
        ),
        (0, 0)
    );

    // The refusals say why, in words.
    let status = client
        .submit(
            Signer::from_files(
                &pki().join("revoked/signing.key"),
                &pki().join("revoked/signing.pem"),
            )
            .seal(&kaz_body()),
        )
        .await
        .unwrap_err();
    assert!(status.message().contains("revoked"), "{}", status.message());
    let status = client
        .submit(Signer::of("KGZ").seal(&kaz_body()))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("belongs to another member"),
        "{}",
        status.message()
    );

    // The untouched envelope still goes through.
    client.submit(good).await.unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn a_member_reports_only_for_its_own_country_and_only_with_the_submitter_role() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;

    // KGZ signs and sends a submission for KAZ with its own, valid key.
    let env = Signer::of("KGZ").seal(&kaz_body());
    let status = gw.client("KGZ").await.submit(env).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(
        violations(&status),
        [("ref_area".to_string(), "REPORTER_NOT_SENDER".to_string())]
    );
    assert!(
        status.message().contains("KGZ:nfp reports for KGZ"),
        "{}",
        status.message()
    );

    // The analyst is a member in good standing but may not submit.
    let mut b = kaz_body();
    b.ref_area = "PRT".into();
    let status = gw
        .client("analyst")
        .await
        .submit(Signer::of("analyst").seal(&b))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("no submitter role"),
        "{}",
        status.message()
    );

    assert_eq!(gw.count("submissions").await, 0);
    gw.stop().await;
}

#[tokio::test]
async fn ecdsa_p256_signing_certificates_are_accepted_too() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let deu = Signer::of("DEU");
    assert!(
        matches!(deu.key, envelope::SigningKey::EcdsaP256(..)),
        "the demo gives DEU a P-256 signing key"
    );
    let r = gw
        .client("DEU")
        .await
        .submit(deu.seal(&body(
            "SEIZURES",
            "DEU",
            "2024",
            vec![seizure("COCAINE", "KG", "1500.25", 40)],
        )))
        .await
        .unwrap();
    assert_eq!(r.into_inner().submission_id, "DEU.SEIZURES.2024.r1");
    gw.stop().await;
}
