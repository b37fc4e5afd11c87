//! Checkpoints: the log's signed statement of its size and root, in the C2SP tlog-checkpoint
//! format, carried in a C2SP signed note ([`note`]).
//!
//! ```text
//! <origin>                      a unique name for the log, also its key's name
//! <tree size>                   decimal, no leading zeros
//! <base64 root hash>            RFC 9162 root of the first <tree size> entries
//! [extension lines…]            optional, each non-empty
//!
//! — <origin> <base64(key id || Ed25519 signature)>
//! ```

pub mod note;
pub mod policy;

use base64::{Engine, engine::general_purpose::STANDARD};

use crate::merkle::Hash;
pub use note::{KeyType, NoteError, NoteSignature, NoteSigner, NoteVerifier, VerifiedNote};

/// A checkpoint body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// Root hash of those entries.
    pub root: Hash,
    /// Extension lines, without their newlines.
    pub extensions: Vec<String>,
}

/// Why a checkpoint was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Not a well-formed checkpoint body, whatever the detail.
    #[error("malformed checkpoint")]
    Malformed,
    /// The note around it was refused.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// Signed by the log's key, but for another origin.
    #[error("checkpoint origin {} is not the log's origin \"{expected}\"", crate::schema::Echo(.found))]
    WrongOrigin {
        /// The log's origin.
        expected: String,
        /// What the checkpoint says (truncated).
        found: String,
    },
}

impl Checkpoint {
    /// The body text, each line ending in a newline.
    pub fn body(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root.as_bytes())
        );
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        out
    }

    /// Parses a body. Strict: a decimal size without sign or leading zeros, a 32-byte root in
    /// standard base64, non-empty extension lines.
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let malformed = CheckpointError::Malformed;
        let lines = text.strip_suffix('\n').ok_or(malformed.clone())?;
        let mut lines = lines.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed);
        };
        let size_ok = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        if origin.is_empty() || !size_ok {
            return Err(malformed);
        }
        let size = size.parse::<u64>().map_err(|_| malformed.clone())?;
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|r| Hash::from_bytes(&r))
            .ok_or(malformed.clone())?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(malformed);
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Signs the checkpoint: the signed note text.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        Ok(note::sign(&self.body(), &[signer.sign(&self.body(), 0)])?)
    }
}

/// A checkpoint whose log signature was checked. Built only by [`open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The checkpoint.
    checkpoint: Checkpoint,
    /// The note, with all its signatures (cosignatures by unknown witnesses included).
    note: VerifiedNote,
}

impl VerifiedCheckpoint {
    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The note, with all its signatures (cosignatures by unknown witnesses included).
    pub fn note(&self) -> &VerifiedNote {
        &self.note
    }

    /// The checkpoint, once the note is no longer needed.
    pub fn into_checkpoint(self) -> Checkpoint {
        self.checkpoint
    }
}

/// The checkpoint a signed note carries, parsed with the note parser but without checking any
/// signature: for notes the gateway signed and stored itself, whose signature the start-up
/// check verified.
pub fn read_unverified(msg: &[u8]) -> Result<Checkpoint, CheckpointError> {
    Checkpoint::parse_body(&note::parse(msg)?.text)
}

/// Opens a signed checkpoint: the log's key (whose name is the origin) must have signed it.
/// Signatures by other known keys (witnesses) are checked too.
pub fn open(
    msg: &[u8],
    log: &NoteVerifier,
    witnesses: &[NoteVerifier],
) -> Result<VerifiedCheckpoint, CheckpointError> {
    let mut known = vec![log.clone()];
    known.extend_from_slice(witnesses);
    let note = note::open(msg, &known)?;
    if !note
        .verified()
        .iter()
        .any(|s| s.name == log.name() && s.key_id == log.key_id())
    {
        return Err(NoteError::NoVerifiableSignatures {
            unverified: note.unverified().to_vec(),
        }
        .into());
    }
    let checkpoint = Checkpoint::parse_body(note.text())?;
    if checkpoint.origin != log.name() {
        return Err(CheckpointError::WrongOrigin {
            expected: log.name().to_owned(),
            found: checkpoint.origin.chars().take(100).collect(),
        });
    }
    Ok(VerifiedCheckpoint { checkpoint, note })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;

    #[test]
    fn every_flipped_byte_of_a_signed_checkpoint_is_refused() {
        let signer =
            NoteSigner::from_seed("focalgate.example/log", KeyType::Ed25519, &[1; 32]).unwrap();
        let cp = Checkpoint {
            origin: "focalgate.example/log".into(),
            size: 1234,
            root: leaf_hash(b"x"),
            extensions: vec![],
        };
        let signed = cp.sign(&signer).unwrap();
        assert_eq!(
            open(signed.as_bytes(), signer.verifier(), &[])
                .unwrap()
                .checkpoint,
            cp
        );
        let mut accepted = Vec::new();
        for i in 0..signed.len() {
            for bit in [0x01u8, 0x80] {
                let mut m = signed.clone().into_bytes();
                m[i] ^= bit;
                if open(&m, signer.verifier(), &[]).is_ok() {
                    accepted.push((i, bit));
                }
            }
        }
        assert!(
            accepted.is_empty(),
            "{} of {} mutations accepted: {accepted:?}",
            accepted.len(),
            2 * signed.len()
        );
    }

    #[test]
    fn a_checkpoint_for_another_origin_is_refused_even_if_signed() {
        let signer =
            NoteSigner::from_seed("focalgate.example/log", KeyType::Ed25519, &[1; 32]).unwrap();
        let cp = Checkpoint {
            origin: "other.example/log".into(),
            size: 1,
            root: leaf_hash(b"x"),
            extensions: vec![],
        };
        let err = open(cp.sign(&signer).unwrap().as_bytes(), signer.verifier(), &[]).unwrap_err();
        assert!(matches!(err, CheckpointError::WrongOrigin { .. }), "{err}");
    }

    #[test]
    fn sizes_are_strict_decimals() {
        for bad in [
            "o\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "o\n+1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "o\n 1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        ] {
            assert_eq!(
                Checkpoint::parse_body(bad),
                Err(CheckpointError::Malformed),
                "{bad:?}"
            );
        }
        assert!(
            Checkpoint::parse_body("o\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").is_ok()
        );
    }
}
