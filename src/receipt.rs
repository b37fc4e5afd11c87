//! Receipts: the gateway's signed acknowledgement of an accepted submission.
//!
//! The gateway signs, with its Ed25519 key, the *receipt statement*: UTF-8 text, one
//! `name: value` line per field, each line ending in a newline, in this order:
//!
//! ```text
//! focalgate receipt v1
//! submission: KAZ.SEIZURES.2024-Q3.r2
//! member: KAZ:nfp
//! dataflow: SEIZURES
//! ref_area: KAZ
//! time_period: 2024-Q3
//! revision: 2
//! payload: sha256:<64 lowercase hex digits>
//! envelope: sha256:<64 lowercase hex digits>
//! received: 2026-11-29T21:00:00.123Z
//! ```
//!
//! Any party holding the gateway's public key can rebuild the statement from the receipt's
//! fields and check the signature with any Ed25519 library.

use ring::{
    digest,
    signature::{self, Ed25519KeyPair, KeyPair},
};
use time::{OffsetDateTime, format_description::BorrowedFormatItem, macros::format_description};

use crate::proto::Receipt;

/// RFC 3339 UTC with milliseconds, as receipts write times.
const RFC3339_MILLIS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Why a receipt does not check out.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// A field cannot be written into the statement (bad digest length, missing time).
    #[error("malformed receipt: {0}")]
    Malformed(&'static str),
    /// The receipt names another key than the one it is checked against.
    #[error("receipt is signed by key {found}, expected {expected}")]
    WrongKey {
        /// The key id the receipt names.
        found: String,
        /// The id of the key checked against.
        expected: String,
    },
    /// The signature does not verify.
    #[error("the gateway signature does not verify")]
    BadSignature,
}

/// Lowercase hex SHA-256 of a raw Ed25519 public key: how receipts name the gateway's key.
pub fn key_id(public_key: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, public_key))
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds.
pub fn format_millis(unix_ms: i64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).ok()?;
    t.format(RFC3339_MILLIS).ok()
}

/// Formats a protobuf timestamp as RFC 3339 UTC with milliseconds.
pub fn format_timestamp(t: &prost_types::Timestamp) -> Option<String> {
    let millis = t
        .seconds
        .checked_mul(1000)?
        .checked_add(i64::from(t.nanos / 1_000_000))?;
    format_millis(millis)
}

/// A protobuf timestamp for Unix milliseconds.
pub fn timestamp_from_millis(unix_ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: unix_ms.div_euclid(1000),
        nanos: (unix_ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// The statement a receipt's signature covers.
pub fn statement(r: &Receipt) -> Result<String, ReceiptError> {
    let digest = |d: &[u8], what| {
        if d.len() == 32 {
            Ok(hex::encode(d))
        } else {
            Err(ReceiptError::Malformed(what))
        }
    };
    let received = r
        .received_at
        .as_ref()
        .ok_or(ReceiptError::Malformed("no received_at"))?;
    let received =
        format_timestamp(received).ok_or(ReceiptError::Malformed("received_at out of range"))?;
    for field in [
        &r.submission_id,
        &r.member,
        &r.dataflow,
        &r.ref_area,
        &r.time_period,
    ] {
        if field.contains('\n') {
            return Err(ReceiptError::Malformed("line break in a field"));
        }
    }
    Ok(format!(
        "focalgate receipt v1\nsubmission: {}\nmember: {}\ndataflow: {}\nref_area: {}\ntime_period: {}\nrevision: {}\npayload: sha256:{}\nenvelope: sha256:{}\nreceived: {received}\n",
        r.submission_id,
        r.member,
        r.dataflow,
        r.ref_area,
        r.time_period,
        r.revision,
        digest(&r.payload_digest, "payload_digest is not 32 bytes")?,
        digest(&r.envelope_digest, "envelope_digest is not 32 bytes")?,
    ))
}

/// Signs a receipt in place: sets `gateway_key_id` and `gateway_signature`.
pub fn sign(r: &mut Receipt, key: &Ed25519KeyPair) -> Result<(), ReceiptError> {
    let text = statement(r)?;
    r.gateway_key_id = key_id(key.public_key().as_ref());
    r.gateway_signature = key.sign(text.as_bytes()).as_ref().to_vec();
    Ok(())
}

/// Checks a receipt's signature against the gateway's raw Ed25519 public key.
pub fn verify(r: &Receipt, public_key: &[u8]) -> Result<(), ReceiptError> {
    let expected = key_id(public_key);
    if r.gateway_key_id != expected {
        return Err(ReceiptError::WrongKey {
            found: r.gateway_key_id.chars().take(64).collect(),
            expected,
        });
    }
    let text = statement(r)?;
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(text.as_bytes(), &r.gateway_signature)
        .map_err(|_| ReceiptError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn sample() -> Receipt {
        Receipt {
            submission_id: "KAZ.SEIZURES.2024-Q3.r2".into(),
            envelope_digest: vec![0xab; 32],
            payload_digest: vec![0xcd; 32],
            revision: 2,
            received_at: Some(prost_types::Timestamp {
                seconds: 1_796_000_000,
                nanos: 123_456_789,
            }),
            member: "KAZ:nfp".into(),
            dataflow: "SEIZURES".into(),
            ref_area: "KAZ".into(),
            time_period: "2024-Q3".into(),
            ..Default::default()
        }
    }

    #[test]
    fn statement_is_the_documented_text() {
        let text = statement(&sample()).unwrap();
        let want = format!(
            "focalgate receipt v1\nsubmission: KAZ.SEIZURES.2024-Q3.r2\nmember: KAZ:nfp\ndataflow: SEIZURES\nref_area: KAZ\ntime_period: 2024-Q3\nrevision: 2\npayload: sha256:{}\nenvelope: sha256:{}\nreceived: 2026-11-30T00:53:20.123Z\n",
            "cd".repeat(32),
            "ab".repeat(32)
        );
        assert_eq!(text, want);
    }

    #[test]
    fn signed_receipt_verifies_and_every_field_change_is_caught() {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let pk = key.public_key().as_ref().to_vec();
        let mut r = sample();
        sign(&mut r, &key).unwrap();
        verify(&r, &pk).unwrap();

        type Mutation = Box<dyn Fn(&mut Receipt)>;
        let mutations: Vec<(&str, Mutation)> = vec![
            ("submission_id", Box::new(|r| r.submission_id.push('x'))),
            ("revision", Box::new(|r| r.revision += 1)),
            ("member", Box::new(|r| r.member = "KGZ:nfp".into())),
            ("envelope_digest", Box::new(|r| r.envelope_digest[31] ^= 1)),
            ("payload_digest", Box::new(|r| r.payload_digest[0] ^= 1)),
            (
                "received_at",
                Box::new(|r| r.received_at.as_mut().unwrap().nanos += 1_000_000),
            ),
            (
                "time_period",
                Box::new(|r| r.time_period = "2024-Q4".into()),
            ),
            ("signature", Box::new(|r| r.gateway_signature[10] ^= 1)),
        ];
        let accepted: Vec<_> = mutations
            .iter()
            .filter(|(_, m)| {
                let mut changed = r.clone();
                m(&mut changed);
                verify(&changed, &pk).is_ok()
            })
            .map(|(name, _)| *name)
            .collect();
        assert!(
            accepted.is_empty(),
            "{} of {} mutations accepted: {accepted:?}",
            accepted.len(),
            mutations.len()
        );

        let other = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let other = Ed25519KeyPair::from_pkcs8(other.as_ref()).unwrap();
        assert!(matches!(
            verify(&r, other.public_key().as_ref()),
            Err(ReceiptError::WrongKey { .. })
        ));
    }
}
