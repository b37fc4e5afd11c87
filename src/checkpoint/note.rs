//! C2SP signed notes: text plus signature lines, verifier and signer keys.
//!
//! ```text
//! <text: UTF-8, no control characters but newlines, ending in a newline>
//! <blank line>
//! — <key name> <base64(4-byte key id || signature)>
//! …
//! ```
//!
//! The text ends at the *last* blank line. A key is named `name+<8 hex key id>+<base64(type ||
//! public key)>` (a verifier key, "vkey") or `PRIVATE+KEY+name+<key id>+<base64(type || seed)>`
//! (a signer key). The key id is the first four bytes of SHA-256(name || 0x0A || type ||
//! public key). Types: 0x01 Ed25519 (C2SP signed-note), 0x04 timestamped Ed25519 cosignature
//! (C2SP tlog-cosignature).
//!
//! Opening a note: signatures by unknown keys are set aside; a known key whose signature does
//! not verify rejects the note; at least one known key must have signed. Malformed input gets
//! one plain error, whatever is wrong with it: a parser is no oracle.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use ring::{
    digest::{SHA256, digest},
    signature::{self, Ed25519KeyPair, KeyPair},
};

/// Most signature lines a note may carry (C2SP requires accepting at least 16).
pub const MAX_SIGNATURES: usize = 100;
/// Largest note accepted, in bytes.
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// The separator of a signature line: an em dash and a space.
const DASH: &str = "\u{2014} ";

/// Signature algorithm of a note key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// 0x01: Ed25519 over the note text.
    Ed25519,
    /// 0x04: Ed25519 over "cosignature/v1\ntime T\n" and the checkpoint, with the time T in
    /// the signature (C2SP tlog-cosignature).
    Cosignature,
}

impl KeyType {
    fn byte(self) -> u8 {
        match self {
            Self::Ed25519 => 0x01,
            Self::Cosignature => 0x04,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x01 => Some(Self::Ed25519),
            0x04 => Some(Self::Cosignature),
            _ => None,
        }
    }
}

/// Why a note or key was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Not a well-formed note, whatever the detail.
    #[error("malformed note")]
    Malformed,
    /// Not a well-formed key.
    #[error("malformed key")]
    MalformedKey,
    /// No signature by a known key.
    #[error("note has no verifiable signatures")]
    NoVerifiableSignatures {
        /// The signatures by unknown keys.
        unverified: Vec<NoteSignature>,
    },
    /// A known key's signature does not verify.
    #[error("invalid signature for key {0}")]
    InvalidSignature(String),
    /// Two verifiers share a name and key id and the note uses it.
    #[error("ambiguous key {0}")]
    AmbiguousKey(String),
}

/// A key name: non-empty, valid UTF-8, no spaces, no `+`, no control characters.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// The key id of a name and typed public key.
fn key_id(name: &str, kind: KeyType, public_key: &[u8]) -> u32 {
    let mut input = Vec::with_capacity(name.len() + 2 + public_key.len());
    input.extend_from_slice(name.as_bytes());
    input.push(b'\n');
    input.push(kind.byte());
    input.extend_from_slice(public_key);
    let d = digest(&SHA256, &input);
    u32::from_be_bytes([d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]])
}

/// A key that can check signatures: parsed from a vkey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: u32,
    kind: KeyType,
    public_key: [u8; 32],
}

impl NoteVerifier {
    /// Parses `name+<hex key id>+<base64(type || public key)>`.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::MalformedKey);
        };
        if !valid_name(name) || id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::MalformedKey);
        }
        let id = u32::from_str_radix(id, 16).map_err(|_| NoteError::MalformedKey)?;
        let key = STANDARD.decode(key).map_err(|_| NoteError::MalformedKey)?;
        let (kind, public_key) = match key.split_first() {
            Some((&t, pk)) => (KeyType::from_byte(t).ok_or(NoteError::MalformedKey)?, pk),
            None => return Err(NoteError::MalformedKey),
        };
        let public_key: [u8; 32] = public_key.try_into().map_err(|_| NoteError::MalformedKey)?;
        if key_id(name, kind, &public_key) != id {
            return Err(NoteError::MalformedKey);
        }
        Ok(Self {
            name: name.to_owned(),
            id,
            kind,
            public_key,
        })
    }

    /// A verifier for a raw Ed25519 public key.
    pub fn new(name: &str, kind: KeyType, public_key: [u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::MalformedKey);
        }
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, kind, &public_key),
            kind,
            public_key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The key type.
    pub fn kind(&self) -> KeyType {
        self.kind
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// Checks a signature's bytes (without the key id) over `text`.
    fn verify(&self, text: &str, sig: &[u8]) -> bool {
        let key = signature::UnparsedPublicKey::new(&signature::ED25519, &self.public_key);
        match self.kind {
            KeyType::Ed25519 => key.verify(text.as_bytes(), sig).is_ok(),
            KeyType::Cosignature => {
                let Some((time, sig)) = sig.split_first_chunk::<8>() else {
                    return false;
                };
                let message = cosigned_message(u64::from_be_bytes(*time), text);
                key.verify(message.as_bytes(), sig).is_ok()
            }
        }
    }
}

impl fmt::Display for NoteVerifier {
    /// The vkey form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = vec![self.kind.byte()];
        key.extend_from_slice(&self.public_key);
        write!(f, "{}+{:08x}+{}", self.name, self.id, STANDARD.encode(key))
    }
}

/// The message a cosignature at `time` over a checkpoint body signs (C2SP tlog-cosignature).
pub fn cosigned_message(time: u64, checkpoint: &str) -> String {
    format!("cosignature/v1\ntime {time}\n{checkpoint}")
}

/// A key that signs notes.
pub struct NoteSigner {
    verifier: NoteVerifier,
    key: Ed25519KeyPair,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteSigner({})", self.verifier)
    }
}

impl NoteSigner {
    /// Parses `PRIVATE+KEY+name+<hex key id>+<base64(type || seed)>`.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let rest = skey
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::MalformedKey)?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::MalformedKey);
        };
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::MalformedKey);
        }
        let id = u32::from_str_radix(id, 16).map_err(|_| NoteError::MalformedKey)?;
        let key = STANDARD.decode(key).map_err(|_| NoteError::MalformedKey)?;
        let (kind, seed) = match key.split_first() {
            Some((&t, seed)) => (KeyType::from_byte(t).ok_or(NoteError::MalformedKey)?, seed),
            None => return Err(NoteError::MalformedKey),
        };
        let signer = Self::from_seed(name, kind, seed)?;
        if signer.verifier.id != id {
            return Err(NoteError::MalformedKey);
        }
        Ok(signer)
    }

    /// A signer from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, kind: KeyType, seed: &[u8]) -> Result<Self, NoteError> {
        let key = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| NoteError::MalformedKey)?;
        Self::from_key_pair(name, kind, key)
    }

    /// A signer from an Ed25519 key pair.
    pub fn from_key_pair(
        name: &str,
        kind: KeyType,
        key: Ed25519KeyPair,
    ) -> Result<Self, NoteError> {
        let public_key: [u8; 32] = key
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| NoteError::MalformedKey)?;
        Ok(Self {
            verifier: NoteVerifier::new(name, kind, public_key)?,
            key,
        })
    }

    /// The matching verifier.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The Ed25519 key pair, for signing what is not a note (receipts).
    pub fn key_pair(&self) -> &Ed25519KeyPair {
        &self.key
    }

    /// The signature line this key makes over `text` (a cosignature at `time`).
    pub fn sign(&self, text: &str, time: u64) -> NoteSignature {
        let mut sig = Vec::with_capacity(72);
        match self.verifier.kind {
            KeyType::Ed25519 => sig.extend_from_slice(self.key.sign(text.as_bytes()).as_ref()),
            KeyType::Cosignature => {
                sig.extend_from_slice(&time.to_be_bytes());
                sig.extend_from_slice(
                    self.key
                        .sign(cosigned_message(time, text).as_bytes())
                        .as_ref(),
                );
            }
        }
        NoteSignature {
            name: self.verifier.name.clone(),
            key_id: self.verifier.id,
            sig,
        }
    }
}

/// One signature line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id.
    pub key_id: u32,
    /// The signature bytes after the key id.
    pub sig: Vec<u8>,
}

impl NoteSignature {
    /// The line's base64: key id and signature.
    pub fn base64(&self) -> String {
        let mut raw = self.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.sig);
        STANDARD.encode(raw)
    }
}

impl fmt::Display for NoteSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{DASH}{} {}", self.name, self.base64())
    }
}

/// A note taken apart but not verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The signed text, ending in a newline.
    pub text: String,
    /// Its signatures, in order.
    pub signatures: Vec<NoteSignature>,
}

/// Checks note text: UTF-8, ends in a newline, no control characters but newlines.
fn valid_text(text: &str) -> bool {
    text.ends_with('\n') && !text.chars().any(|c| c.is_control() && c != '\n')
}

/// Writes `text` with signature lines appended.
pub fn sign(text: &str, signatures: &[NoteSignature]) -> Result<String, NoteError> {
    if !valid_text(text) {
        return Err(NoteError::Malformed);
    }
    let mut out = format!("{text}\n");
    for s in signatures {
        out.push_str(&format!("{s}\n"));
    }
    Ok(out)
}

/// Takes a signed note apart, checking only its form.
pub fn parse(msg: &[u8]) -> Result<Note, NoteError> {
    if msg.len() > MAX_NOTE_BYTES {
        return Err(NoteError::Malformed);
    }
    let msg = std::str::from_utf8(msg).map_err(|_| NoteError::Malformed)?;
    // The text ends at the last blank line; the signature block follows it.
    let split = msg.rfind("\n\n").ok_or(NoteError::Malformed)?;
    let (text, sigs) = (&msg[..split + 1], &msg[split + 2..]);
    if !valid_text(text) || !sigs.ends_with('\n') {
        return Err(NoteError::Malformed);
    }
    let mut signatures = Vec::new();
    for line in sigs[..sigs.len() - 1].split('\n') {
        if signatures.len() == MAX_SIGNATURES {
            return Err(NoteError::Malformed);
        }
        let rest = line.strip_prefix(DASH).ok_or(NoteError::Malformed)?;
        let (name, b64) = rest.split_once(' ').ok_or(NoteError::Malformed)?;
        if !valid_name(name) {
            return Err(NoteError::Malformed);
        }
        let raw = STANDARD.decode(b64).map_err(|_| NoteError::Malformed)?;
        let Some((id, sig)) = raw.split_first_chunk::<4>() else {
            return Err(NoteError::Malformed);
        };
        signatures.push(NoteSignature {
            name: name.to_owned(),
            key_id: u32::from_be_bytes(*id),
            sig: sig.to_vec(),
        });
    }
    if signatures.is_empty() {
        return Err(NoteError::Malformed);
    }
    Ok(Note {
        text: text.to_owned(),
        signatures,
    })
}

/// A note whose signatures were checked. Built only by [`open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedNote {
    /// The signed text.
    text: String,
    /// Signatures by known keys, all valid, each once.
    verified: Vec<NoteSignature>,
    /// Signatures by unknown keys, each distinct line once.
    unverified: Vec<NoteSignature>,
}

impl VerifiedNote {
    /// The signed text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Signatures by known keys, all valid, each once.
    pub fn verified(&self) -> &[NoteSignature] {
        &self.verified
    }

    /// Signatures by unknown keys, each distinct line once (not checked).
    pub fn unverified(&self) -> &[NoteSignature] {
        &self.unverified
    }
}

/// Parses and verifies a signed note against known keys.
pub fn open(msg: &[u8], known: &[NoteVerifier]) -> Result<VerifiedNote, NoteError> {
    let note = parse(msg)?;
    let mut verified: Vec<NoteSignature> = Vec::new();
    let mut unverified: Vec<NoteSignature> = Vec::new();
    for s in note.signatures {
        let mut keys = known
            .iter()
            .filter(|k| k.name == s.name && k.id == s.key_id);
        let Some(key) = keys.next() else {
            if !unverified.contains(&s) {
                unverified.push(s);
            }
            continue;
        };
        let shown = format!("{}+{:08x}", s.name, s.key_id);
        if keys.next().is_some() {
            return Err(NoteError::AmbiguousKey(shown));
        }
        if !key.verify(&note.text, &s.sig) {
            return Err(NoteError::InvalidSignature(shown));
        }
        if !verified.contains(&s) {
            verified.push(s);
        }
    }
    if verified.is_empty() {
        return Err(NoteError::NoVerifiableSignatures { unverified });
    }
    Ok(VerifiedNote {
        text: note.text,
        verified,
        unverified,
    })
}
