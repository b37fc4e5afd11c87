//! Log entries: what the transparency log commits to, in the exact bytes that are hashed.
//!
//! An entry is UTF-8 text: a header line naming the format version, then `name: value` lines
//! in a fixed order, each ending in a newline. The leaf hash is SHA-256(0x00 || these bytes).
//! There is exactly one encoding of each entry: [`Entry::parse`] refuses anything that
//! [`Entry::encode`] would not have written.
//!
//! A submission:
//!
//! ```text
//! focalgate log entry v1
//! kind: submission
//! time: 2026-11-29T21:00:00.123Z
//! submission: KAZ.SEIZURES.2024-Q3.r2
//! member: KAZ:nfp
//! dataflow: SEIZURES
//! ref_area: KAZ
//! time_period: 2024-Q3
//! revision: 2
//! payload: sha256:<64 hex digits>
//! envelope: sha256:<64 hex digits>
//! signing_certificate: sha256:<64 hex digits>
//! ```
//!
//! An administrative act (`kind` is `certificate-issued`, `certificate-revoked` or
//! `policy-changed`), with the optional lines present only when they apply:
//!
//! ```text
//! focalgate log entry v1
//! kind: certificate-revoked
//! time: 2026-11-29T21:00:00.123Z
//! actor: BEL:admin
//! subject: KAZ:nfp
//! serial: 5a1f…                     (certificates)
//! digest: sha256:<64 hex digits>    (the certificate's DER, or the policy file)
//! reason: keyCompromise             (revocations)
//! certificate: <base64 DER>         (issued signing certificates, so that signatures can be
//!                                    re-verified from the log alone)
//! ```

use std::fmt::Write as _;

use base64::{Engine, engine::general_purpose::STANDARD};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::receipt::format_millis;

const HEADER: &str = "focalgate log entry v1";

/// SHA-256 of `bytes`: the digests entries commit to.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

/// Whether `bytes` start like an administrative entry (any kind but `submission`): a cheap
/// test for scanning the log; [`Entry::parse`] still decides.
pub fn is_admin(bytes: &[u8]) -> bool {
    bytes
        .strip_prefix(HEADER.as_bytes())
        .and_then(|rest| rest.strip_prefix(b"\nkind: "))
        .is_some_and(|kind| !kind.starts_with(b"submission\n"))
}

/// Largest entry accepted, in bytes (a certificate fits many times over).
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// A submission accepted into the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmissionEntry {
    /// When the gateway accepted it, Unix milliseconds.
    pub time_ms: i64,
    /// The submission id.
    pub submission_id: String,
    /// The sender's member id.
    pub member: String,
    /// Dataflow id.
    pub dataflow: String,
    /// Reporting country.
    pub ref_area: String,
    /// TIME_PERIOD.
    pub time_period: String,
    /// Revision number.
    pub revision: u32,
    /// SHA-256 of the signed payload.
    pub payload_digest: [u8; 32],
    /// SHA-256 of the stored envelope.
    pub envelope_digest: [u8; 32],
    /// SHA-256 of the signing certificate's DER.
    pub signing_cert_digest: [u8; 32],
}

/// What an administrative entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminAction {
    /// A certificate was issued.
    CertificateIssued,
    /// A certificate was revoked.
    CertificateRevoked,
    /// The policy (roles, sharing rules) was replaced.
    PolicyChanged,
}

impl AdminAction {
    /// The `kind` line of the entry.
    pub fn kind(self) -> &'static str {
        match self {
            Self::CertificateIssued => "certificate-issued",
            Self::CertificateRevoked => "certificate-revoked",
            Self::PolicyChanged => "policy-changed",
        }
    }

    fn from_kind(kind: &str) -> Option<Self> {
        [
            Self::CertificateIssued,
            Self::CertificateRevoked,
            Self::PolicyChanged,
        ]
        .into_iter()
        .find(|a| a.kind() == kind)
    }
}

/// An administrative act.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminEntry {
    /// What was done.
    pub action: AdminAction,
    /// When, Unix milliseconds.
    pub time_ms: i64,
    /// Who did it (member id).
    pub actor: String,
    /// To whom or what: a member id, or `policy`.
    pub subject: String,
    /// The certificate's serial number, lowercase hex.
    pub serial: Option<String>,
    /// SHA-256 of the certificate DER or of the policy.
    pub digest: [u8; 32],
    /// Why (revocations).
    pub reason: Option<String>,
    /// The certificate itself (issued signing certificates).
    pub certificate: Option<Vec<u8>>,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A submission.
    Submission(SubmissionEntry),
    /// An administrative act.
    Admin(AdminEntry),
}

/// The one error for entries that are not exactly as [`Entry::encode`] writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed log entry")]
pub struct MalformedEntry;

fn digest_text(d: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(d))
}

/// A value may not break its line.
fn value_ok(v: &str) -> bool {
    !v.is_empty() && v.len() <= 4096 && !v.chars().any(char::is_control)
}

impl Entry {
    /// The exact bytes of the entry: the Merkle leaf input.
    pub fn encode(&self) -> Result<Vec<u8>, MalformedEntry> {
        let mut out = format!("{HEADER}\n");
        let mut line = |name: &str, value: &str| -> Result<(), MalformedEntry> {
            if !value_ok(value) {
                return Err(MalformedEntry);
            }
            let _ = writeln!(out, "{name}: {value}");
            Ok(())
        };
        match self {
            Entry::Submission(s) => {
                line("kind", "submission")?;
                line("time", &format_millis(s.time_ms).ok_or(MalformedEntry)?)?;
                line("submission", &s.submission_id)?;
                line("member", &s.member)?;
                line("dataflow", &s.dataflow)?;
                line("ref_area", &s.ref_area)?;
                line("time_period", &s.time_period)?;
                line("revision", &s.revision.to_string())?;
                line("payload", &digest_text(&s.payload_digest))?;
                line("envelope", &digest_text(&s.envelope_digest))?;
                line("signing_certificate", &digest_text(&s.signing_cert_digest))?;
            }
            Entry::Admin(a) => {
                line("kind", a.action.kind())?;
                line("time", &format_millis(a.time_ms).ok_or(MalformedEntry)?)?;
                line("actor", &a.actor)?;
                line("subject", &a.subject)?;
                if let Some(serial) = &a.serial {
                    line("serial", serial)?;
                }
                line("digest", &digest_text(&a.digest))?;
                if let Some(reason) = &a.reason {
                    line("reason", reason)?;
                }
                if let Some(cert) = &a.certificate {
                    line("certificate", &STANDARD.encode(cert))?;
                }
            }
        }
        if out.len() > MAX_ENTRY_BYTES {
            return Err(MalformedEntry);
        }
        Ok(out.into_bytes())
    }

    /// Parses entry bytes; anything but the canonical encoding is refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, MalformedEntry> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(MalformedEntry);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| MalformedEntry)?;
        let body = text.strip_suffix('\n').ok_or(MalformedEntry)?;
        let mut lines = body.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(MalformedEntry);
        }
        let mut fields: Vec<(&str, &str)> = Vec::new();
        for l in lines {
            fields.push(l.split_once(": ").ok_or(MalformedEntry)?);
        }
        let mut fields = Fields(fields.into_iter().peekable());
        let entry = match fields.take("kind")? {
            "submission" => Entry::Submission(SubmissionEntry {
                time_ms: fields.time()?,
                submission_id: fields.take("submission")?.to_owned(),
                member: fields.take("member")?.to_owned(),
                dataflow: fields.take("dataflow")?.to_owned(),
                ref_area: fields.take("ref_area")?.to_owned(),
                time_period: fields.take("time_period")?.to_owned(),
                revision: fields
                    .take("revision")?
                    .parse()
                    .map_err(|_| MalformedEntry)?,
                payload_digest: fields.digest("payload")?,
                envelope_digest: fields.digest("envelope")?,
                signing_cert_digest: fields.digest("signing_certificate")?,
            }),
            kind => Entry::Admin(AdminEntry {
                action: AdminAction::from_kind(kind).ok_or(MalformedEntry)?,
                time_ms: fields.time()?,
                actor: fields.take("actor")?.to_owned(),
                subject: fields.take("subject")?.to_owned(),
                serial: fields.optional("serial").map(str::to_owned),
                digest: fields.digest("digest")?,
                reason: fields.optional("reason").map(str::to_owned),
                certificate: fields
                    .optional("certificate")
                    .map(|c| STANDARD.decode(c).map_err(|_| MalformedEntry))
                    .transpose()?,
            }),
        };
        if fields.0.next().is_some() || entry.encode()? != bytes {
            return Err(MalformedEntry);
        }
        Ok(entry)
    }
}

/// The `name: value` lines of an entry, taken in order.
struct Fields<'a, I: Iterator<Item = (&'a str, &'a str)>>(std::iter::Peekable<I>);

impl<'a, I: Iterator<Item = (&'a str, &'a str)>> Fields<'a, I> {
    fn take(&mut self, name: &str) -> Result<&'a str, MalformedEntry> {
        match self.0.next() {
            Some((n, v)) if n == name => Ok(v),
            _ => Err(MalformedEntry),
        }
    }

    fn optional(&mut self, name: &str) -> Option<&'a str> {
        self.0.next_if(|(n, _)| *n == name).map(|(_, v)| v)
    }

    fn time(&mut self) -> Result<i64, MalformedEntry> {
        let t = OffsetDateTime::parse(self.take("time")?, &Rfc3339).map_err(|_| MalformedEntry)?;
        Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    fn digest(&mut self, name: &str) -> Result<[u8; 32], MalformedEntry> {
        let hex_text = self
            .take(name)?
            .strip_prefix("sha256:")
            .ok_or(MalformedEntry)?;
        let bytes = hex::decode(hex_text).map_err(|_| MalformedEntry)?;
        bytes.try_into().map_err(|_| MalformedEntry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission() -> Entry {
        Entry::Submission(SubmissionEntry {
            time_ms: 1_796_000_000_123,
            submission_id: "KAZ.SEIZURES.2024-Q3.r2".into(),
            member: "KAZ:nfp".into(),
            dataflow: "SEIZURES".into(),
            ref_area: "KAZ".into(),
            time_period: "2024-Q3".into(),
            revision: 2,
            payload_digest: [1; 32],
            envelope_digest: [2; 32],
            signing_cert_digest: [3; 32],
        })
    }

    fn revocation() -> Entry {
        Entry::Admin(AdminEntry {
            action: AdminAction::CertificateRevoked,
            time_ms: 1_796_000_000_000,
            actor: "BEL:admin".into(),
            subject: "KAZ:nfp".into(),
            serial: Some("5a1f".into()),
            digest: [4; 32],
            reason: Some("keyCompromise".into()),
            certificate: None,
        })
    }

    #[test]
    fn entries_round_trip_in_the_documented_form() {
        let bytes = submission().encode().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("focalgate log entry v1\nkind: submission\ntime: 2026-11-30T00:53:20.123Z\nsubmission: KAZ.SEIZURES.2024-Q3.r2\n"));
        assert!(text.ends_with(&format!(
            "signing_certificate: sha256:{}\n",
            "03".repeat(32)
        )));
        for e in [submission(), revocation()] {
            assert_eq!(Entry::parse(&e.encode().unwrap()), Ok(e));
        }
        let mut issued = revocation();
        if let Entry::Admin(a) = &mut issued {
            a.action = AdminAction::CertificateIssued;
            a.reason = None;
            a.certificate = Some(vec![0x30, 0x82, 1, 2, 3]);
        }
        assert_eq!(Entry::parse(&issued.encode().unwrap()), Ok(issued));
        assert!(!is_admin(&submission().encode().unwrap()));
        assert!(is_admin(&revocation().encode().unwrap()));
    }

    #[test]
    fn every_other_encoding_is_refused() {
        let good = String::from_utf8(submission().encode().unwrap()).unwrap();
        let variants = [
            good.replace("kind: submission", "kind:  submission"),
            good.replace(".123Z", ".123000Z"),
            good.replace("2026-11-30T00:53:20.123Z", "2026-11-30T01:53:20.123+01:00"),
            good.replace("revision: 2", "revision: 02"),
            good.replace("sha256:0101", "SHA256:0101"),
            good.replace("member: KAZ:nfp\n", ""),
            good.replace("\n", "\r\n"),
            good.trim_end().to_owned(),
            format!("{good}extra: line\n"),
            good.replace("v1", "v2"),
        ];
        let accepted: Vec<_> = variants
            .iter()
            .filter(|v| Entry::parse(v.as_bytes()).is_ok())
            .collect();
        assert!(
            accepted.is_empty(),
            "{} of {} accepted: {accepted:?}",
            accepted.len(),
            variants.len()
        );
        let mut with_newline = submission();
        if let Entry::Submission(s) = &mut with_newline {
            s.member = "KAZ:nfp\nrevision: 9".into();
        }
        assert_eq!(with_newline.encode(), Err(MalformedEntry));
    }
}
