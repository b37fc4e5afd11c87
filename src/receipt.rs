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
//! log_index: 1234
//! ```
//!
//! Any party holding the gateway's public key can rebuild the statement from the receipt's
//! fields and check the signature with any Ed25519 library. [`verify_offline`] checks a whole
//! receipt with nothing but the log's verifier key: the signature, the log entry's agreement
//! with the receipt, the checkpoint's signature, and the inclusion proof. [`ReceiptFile`] is
//! the same receipt as a self-contained JSON document.

use ring::{
    digest,
    signature::{self, Ed25519KeyPair, KeyPair},
};
use time::{OffsetDateTime, format_description::BorrowedFormatItem, macros::format_description};

use crate::{
    checkpoint::{self, CheckpointError, NoteVerifier},
    entry::Entry,
    merkle::{self, ProofError},
    proto::Receipt,
};

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
    /// The log entry is not the entry of this submission.
    #[error("the log entry does not match the receipt ({0})")]
    EntryMismatch(&'static str),
    /// The checkpoint was refused.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error("inclusion proof: {0}")]
    Proof(#[from] ProofError),
}

/// Lowercase hex SHA-256 of a raw Ed25519 public key: how receipts name the gateway's key.
pub fn key_id(public_key: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, public_key))
}

/// Now, Unix milliseconds: the gateway's one clock reading for receipts, entries and records.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
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
        "focalgate receipt v1\nsubmission: {}\nmember: {}\ndataflow: {}\nref_area: {}\ntime_period: {}\nrevision: {}\npayload: sha256:{}\nenvelope: sha256:{}\nreceived: {received}\nlog_index: {}\n",
        r.submission_id,
        r.member,
        r.dataflow,
        r.ref_area,
        r.time_period,
        r.revision,
        digest(&r.payload_digest, "payload_digest is not 32 bytes")?,
        digest(&r.envelope_digest, "envelope_digest is not 32 bytes")?,
        r.log_index,
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

/// A receipt checked offline: signed by the log's key, its entry in the log under a signed
/// checkpoint. Built only by [`verify_offline`].
#[derive(Clone, Debug)]
pub struct VerifiedReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// The tree size of the checkpoint it was proven against.
    pub tree_size: u64,
}

/// Checks a receipt with nothing but the log's verifier key (the gateway signs receipts and
/// checkpoints with the same key): the receipt signature, that the log entry is this
/// submission's, that the checkpoint is signed by the log, and that the entry is leaf
/// `log_index` of the checkpoint's tree.
pub fn verify_offline(r: &Receipt, log: &NoteVerifier) -> Result<VerifiedReceipt, ReceiptError> {
    verify(r, log.public_key())?;
    let Ok(Entry::Submission(e)) = Entry::parse(&r.log_entry) else {
        return Err(ReceiptError::EntryMismatch("not a submission entry"));
    };
    let received = r.received_at.as_ref().and_then(format_timestamp);
    let checks: [(bool, &'static str); 9] = [
        (e.submission_id == r.submission_id, "submission"),
        (e.member == r.member, "member"),
        (e.dataflow == r.dataflow, "dataflow"),
        (e.ref_area == r.ref_area, "ref_area"),
        (e.time_period == r.time_period, "time_period"),
        (e.revision == r.revision, "revision"),
        (e.payload_digest[..] == r.payload_digest[..], "payload"),
        (e.envelope_digest[..] == r.envelope_digest[..], "envelope"),
        (format_millis(e.time_ms) == received, "time"),
    ];
    if let Some((_, field)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(ReceiptError::EntryMismatch(field));
    }
    let cp = checkpoint::open(r.checkpoint.as_bytes(), log, &[])?.into_checkpoint();
    let proof = merkle::decode_proof(&r.inclusion_proof)?;
    merkle::verify_inclusion(
        r.log_index,
        cp.size,
        &merkle::leaf_hash(&r.log_entry),
        &proof,
        &cp.root,
    )?;
    Ok(VerifiedReceipt {
        receipt: r.clone(),
        tree_size: cp.size,
    })
}

/// A receipt as a self-contained JSON file: what `focalgate submit --receipt` writes and
/// `focalgate receipt verify` reads. Digests are `sha256:<hex>`, bytes standard base64.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptFile {
    /// Always `focalgate-receipt-v1`.
    pub format: String,
    /// Submission id.
    pub submission_id: String,
    /// Sender's member id.
    pub member: String,
    /// Dataflow id.
    pub dataflow: String,
    /// Reporting country.
    pub ref_area: String,
    /// TIME_PERIOD.
    pub time_period: String,
    /// Revision number.
    pub revision: u32,
    /// RFC 3339 with milliseconds.
    pub received_at: String,
    /// `sha256:<hex>` of the signed payload.
    pub payload_digest: String,
    /// `sha256:<hex>` of the stored envelope.
    pub envelope_digest: String,
    /// Index of the log entry.
    pub log_index: u64,
    /// The log entry, base64.
    pub log_entry: String,
    /// The checkpoint (signed note text).
    pub checkpoint: String,
    /// The inclusion proof, base64 hashes.
    pub inclusion_proof: Vec<String>,
    /// Hex SHA-256 of the gateway's public key.
    pub gateway_key_id: String,
    /// The gateway's signature, base64.
    pub gateway_signature: String,
}

const FILE_FORMAT: &str = "focalgate-receipt-v1";

impl ReceiptFile {
    /// The file form of a receipt.
    pub fn from_receipt(r: &Receipt) -> Result<Self, ReceiptError> {
        use base64::{Engine, engine::general_purpose::STANDARD};
        let digest = |d: &[u8]| format!("sha256:{}", hex::encode(d));
        Ok(Self {
            format: FILE_FORMAT.into(),
            submission_id: r.submission_id.clone(),
            member: r.member.clone(),
            dataflow: r.dataflow.clone(),
            ref_area: r.ref_area.clone(),
            time_period: r.time_period.clone(),
            revision: r.revision,
            received_at: r
                .received_at
                .as_ref()
                .and_then(format_timestamp)
                .ok_or(ReceiptError::Malformed("no received_at"))?,
            payload_digest: digest(&r.payload_digest),
            envelope_digest: digest(&r.envelope_digest),
            log_index: r.log_index,
            log_entry: STANDARD.encode(&r.log_entry),
            checkpoint: r.checkpoint.clone(),
            inclusion_proof: r
                .inclusion_proof
                .iter()
                .map(|h| STANDARD.encode(h))
                .collect(),
            gateway_key_id: r.gateway_key_id.clone(),
            gateway_signature: STANDARD.encode(&r.gateway_signature),
        })
    }

    /// The receipt this file holds.
    pub fn to_receipt(&self) -> Result<Receipt, ReceiptError> {
        use base64::{Engine, engine::general_purpose::STANDARD};
        if self.format != FILE_FORMAT {
            return Err(ReceiptError::Malformed("not a focalgate-receipt-v1 file"));
        }
        let b64 = |s: &str| {
            STANDARD
                .decode(s)
                .map_err(|_| ReceiptError::Malformed("bad base64"))
        };
        let digest = |s: &str| {
            s.strip_prefix("sha256:")
                .and_then(|h| hex::decode(h).ok())
                .filter(|d| d.len() == 32)
                .ok_or(ReceiptError::Malformed(
                    "a digest is not sha256:<64 hex digits>",
                ))
        };
        let received = OffsetDateTime::parse(
            &self.received_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|_| ReceiptError::Malformed("received_at is not RFC 3339"))?;
        Ok(Receipt {
            submission_id: self.submission_id.clone(),
            envelope_digest: digest(&self.envelope_digest)?,
            payload_digest: digest(&self.payload_digest)?,
            revision: self.revision,
            received_at: Some(prost_types::Timestamp {
                seconds: received.unix_timestamp(),
                nanos: received.nanosecond() as i32,
            }),
            member: self.member.clone(),
            dataflow: self.dataflow.clone(),
            ref_area: self.ref_area.clone(),
            time_period: self.time_period.clone(),
            log_index: self.log_index,
            log_entry: b64(&self.log_entry)?,
            checkpoint: self.checkpoint.clone(),
            inclusion_proof: self
                .inclusion_proof
                .iter()
                .map(|h| b64(h))
                .collect::<Result<_, _>>()?,
            gateway_key_id: self.gateway_key_id.clone(),
            gateway_signature: b64(&self.gateway_signature)?,
        })
    }
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
            "focalgate receipt v1\nsubmission: KAZ.SEIZURES.2024-Q3.r2\nmember: KAZ:nfp\ndataflow: SEIZURES\nref_area: KAZ\ntime_period: 2024-Q3\nrevision: 2\npayload: sha256:{}\nenvelope: sha256:{}\nreceived: 2026-11-30T00:53:20.123Z\nlog_index: 0\n",
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

    /// A receipt for entry 3 of a five-entry log, built with the pure parts alone.
    fn logged() -> (Receipt, crate::checkpoint::NoteSigner) {
        use crate::{
            checkpoint::{Checkpoint, KeyType, NoteSigner},
            entry::SubmissionEntry,
        };
        let signer =
            NoteSigner::from_seed("focalgate.test/log", KeyType::Ed25519, &[5; 32]).unwrap();
        let mut r = sample();
        r.received_at = Some(timestamp_from_millis(1_796_000_000_123));
        let mut nodes = merkle::Nodes::new();
        let mut entry_bytes = Vec::new();
        for i in 0..5u64 {
            let e = Entry::Submission(SubmissionEntry {
                time_ms: 1_796_000_000_123,
                submission_id: if i == 3 {
                    r.submission_id.clone()
                } else {
                    format!("X.{i}")
                },
                member: r.member.clone(),
                dataflow: r.dataflow.clone(),
                ref_area: r.ref_area.clone(),
                time_period: r.time_period.clone(),
                revision: r.revision,
                payload_digest: [0xcd; 32],
                envelope_digest: [0xab; 32],
                signing_cert_digest: [0; 32],
            })
            .encode()
            .unwrap();
            nodes.extend(merkle::append(i, merkle::leaf_hash(&e), &nodes).unwrap());
            entry_bytes.push(e);
        }
        let cp = Checkpoint {
            origin: "focalgate.test/log".into(),
            size: 5,
            root: merkle::root(5, &nodes).unwrap(),
            extensions: vec![],
        };
        r.log_index = 3;
        r.log_entry = entry_bytes[3].clone();
        r.checkpoint = cp.sign(&signer).unwrap();
        r.inclusion_proof = merkle::inclusion_proof(3, 5, &nodes)
            .unwrap()
            .iter()
            .map(|h| h.as_bytes().to_vec())
            .collect();
        sign(&mut r, signer.key_pair()).unwrap();
        (r, signer)
    }

    #[test]
    fn a_logged_receipt_verifies_offline_and_survives_its_file_form() {
        let (r, signer) = logged();
        let v = verify_offline(&r, signer.verifier()).unwrap();
        assert_eq!(v.tree_size, 5);
        let file = ReceiptFile::from_receipt(&r).unwrap();
        let json = serde_json::to_string_pretty(&file).unwrap();
        let back: ReceiptFile = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_receipt().unwrap(), r);
    }

    #[test]
    fn every_flipped_byte_of_a_logged_receipt_is_refused() {
        let (r, signer) = logged();
        let mut cases = 0;
        let mut accepted = Vec::new();
        let mut check = |what: String, changed: Receipt| {
            cases += 1;
            if verify_offline(&changed, signer.verifier()).is_ok() {
                accepted.push(what);
            }
        };
        for i in 0..r.log_entry.len() {
            let mut m = r.clone();
            m.log_entry[i] ^= 1;
            check(format!("log_entry[{i}]"), m);
        }
        for i in 0..r.checkpoint.len() {
            let mut bytes = r.checkpoint.clone().into_bytes();
            bytes[i] ^= 1;
            let mut m = r.clone();
            m.checkpoint = String::from_utf8_lossy(&bytes).into_owned();
            check(format!("checkpoint[{i}]"), m);
        }
        for (p, h) in r.inclusion_proof.iter().enumerate() {
            for i in 0..h.len() {
                let mut m = r.clone();
                m.inclusion_proof[p][i] ^= 1;
                check(format!("proof[{p}][{i}]"), m);
            }
        }
        for i in 0..r.gateway_signature.len() {
            let mut m = r.clone();
            m.gateway_signature[i] ^= 1;
            check(format!("signature[{i}]"), m);
        }
        let mut m = r.clone();
        m.log_index ^= 1;
        check("log_index".into(), m);
        let mut m = r.clone();
        m.inclusion_proof.pop();
        check("truncated proof".into(), m);
        assert!(
            accepted.is_empty(),
            "{} of {cases} mutations accepted: {accepted:?}",
            accepted.len()
        );
    }
}
