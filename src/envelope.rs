//! Signed envelopes: DSSE v1 pre-authentication encoding, signing and verification.
//!
//! A signature covers `PAE(payload_type, payload)`:
//!
//! ```text
//! "DSSEv1" SP LEN(payload_type) SP payload_type SP LEN(payload) SP payload
//! ```
//!
//! with LEN the ASCII decimal byte length and SP a single space (DSSE v1 protocol, "Signature
//! definition"). Verification works on the payload bytes exactly as received and hands back a
//! [`Verified`] envelope; only then may the payload be decoded.

use ring::{
    rand::SystemRandom,
    signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair},
};

use crate::proto::{Signature, SignedEnvelope};

/// Most signatures an envelope may carry; more is refused before any is checked.
pub const MAX_SIGNATURES: usize = 4;

/// DSSE v1 pre-authentication encoding of a payload and its type.
///
/// ```
/// let pae = focalgate::envelope::pae("http://example.com/HelloWorld", b"hello world");
/// assert_eq!(pae, b"DSSEv1 29 http://example.com/HelloWorld 11 hello world");
/// ```
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let header = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    );
    let mut out = Vec::with_capacity(header.len() + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// The signature algorithms a signing certificate may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032): 64-byte signatures.
    Ed25519,
    /// ECDSA over P-256 with SHA-256: ASN.1 DER signatures.
    EcdsaP256Sha256,
}

/// A public key that can check envelope signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKey {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Raw public key: 32 bytes (Ed25519) or an uncompressed SEC1 point (P-256).
    pub public_key: Vec<u8>,
}

impl VerifyingKey {
    /// Whether `sig` is a valid signature of `message` by this key.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.algorithm {
            Algorithm::Ed25519 => &signature::ED25519,
            Algorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
        };
        signature::UnparsedPublicKey::new(alg, &self.public_key)
            .verify(message, sig)
            .is_ok()
    }
}

/// A private key that signs envelopes.
pub enum SigningKey {
    /// Ed25519.
    Ed25519(Ed25519KeyPair),
    /// ECDSA P-256 with SHA-256, ASN.1 signatures.
    EcdsaP256(EcdsaKeyPair, SystemRandom),
}

/// Why a key or an envelope was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The private key is neither Ed25519 nor ECDSA P-256 PKCS#8.
    #[error("the signing key is not an Ed25519 or ECDSA P-256 PKCS#8 key")]
    UnsupportedKey,
    /// Signing failed (ECDSA needs randomness).
    #[error("signing failed")]
    SigningFailed,
    /// The payload type is not the one expected.
    #[error("payload_type is {}, expected \"{expected}\"", crate::schema::Echo(.found))]
    WrongPayloadType {
        /// What was expected.
        expected: String,
        /// What the envelope says (truncated).
        found: String,
    },
    /// The envelope carries no signature.
    #[error("the envelope carries no signature")]
    Unsigned,
    /// More signatures than [`MAX_SIGNATURES`].
    #[error("the envelope carries {0} signatures, at most {MAX_SIGNATURES} are accepted")]
    TooManySignatures(usize),
    /// A signature by an acceptable key does not verify: the payload or its type was altered.
    #[error("signature {index} (key {keyid}) does not verify over the payload")]
    BadSignature {
        /// Position of the signature in the envelope.
        index: usize,
        /// The signature's key id (truncated).
        keyid: String,
    },
    /// No signature was made by a key acceptable for this sender.
    #[error("no signature by an acceptable signing certificate: {}", describe(.rejected))]
    NoAcceptableSignature {
        /// Each signature's position, key id (truncated) and why its key was not acceptable.
        rejected: Vec<(usize, String, String)>,
    },
}

fn describe(rejected: &[(usize, String, String)]) -> String {
    rejected
        .iter()
        .map(|(_, k, why)| format!("key {k}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl SigningKey {
    /// Loads a PKCS#8 private key (DER), Ed25519 or ECDSA P-256.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, EnvelopeError> {
        if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(Self::Ed25519(k));
        }
        let rng = SystemRandom::new();
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng)
            .map(|k| Self::EcdsaP256(k, rng))
            .map_err(|_| EnvelopeError::UnsupportedKey)
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            Self::Ed25519(k) => VerifyingKey {
                algorithm: Algorithm::Ed25519,
                public_key: k.public_key().as_ref().to_vec(),
            },
            Self::EcdsaP256(k, _) => VerifyingKey {
                algorithm: Algorithm::EcdsaP256Sha256,
                public_key: k.public_key().as_ref().to_vec(),
            },
        }
    }

    /// Signs raw bytes.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        match self {
            Self::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            Self::EcdsaP256(k, rng) => k
                .sign(rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| EnvelopeError::SigningFailed),
        }
    }
}

/// Wraps `payload` in an envelope signed by `key`, naming it by `keyid`.
pub fn seal(
    payload_type: &str,
    payload: Vec<u8>,
    key: &SigningKey,
    keyid: &str,
) -> Result<SignedEnvelope, EnvelopeError> {
    let sig = key.sign(&pae(payload_type, &payload))?;
    Ok(SignedEnvelope {
        payload_type: payload_type.to_owned(),
        payload,
        signatures: vec![Signature {
            keyid: keyid.to_owned(),
            sig,
        }],
    })
}

/// An envelope whose signature has been checked. Built only by [`verify`].
#[derive(Debug)]
pub struct Verified<'a, K> {
    /// The payload bytes, exactly as signed.
    payload: &'a [u8],
    /// The key (as returned by the lookup) whose signature verified.
    signer: K,
}

impl<'a, K> Verified<'a, K> {
    /// The payload bytes, exactly as signed.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The key (as returned by the lookup) whose signature verified.
    pub fn signer(&self) -> &K {
        &self.signer
    }

    /// The key whose signature verified, once the payload is no longer needed.
    pub fn into_signer(self) -> K {
        self.signer
    }
}

/// Verifies an envelope.
///
/// `lookup` maps a signature's `keyid` to the key it names, if that key is acceptable for this
/// sender (known, valid, theirs), or to the reason it is not. Signatures by unacceptable keys are
/// set aside; a signature by an acceptable key that does not verify rejects the whole envelope.
/// At least one signature must verify.
pub fn verify<'a, K, E, F>(
    env: &'a SignedEnvelope,
    expected_type: &str,
    mut lookup: F,
) -> Result<Verified<'a, K>, EnvelopeError>
where
    E: std::fmt::Display,
    F: FnMut(&str) -> Result<(K, VerifyingKey), E>,
{
    if env.payload_type != expected_type {
        return Err(EnvelopeError::WrongPayloadType {
            expected: expected_type.to_owned(),
            found: env.payload_type.chars().take(100).collect(),
        });
    }
    match env.signatures.len() {
        0 => return Err(EnvelopeError::Unsigned),
        n if n > MAX_SIGNATURES => return Err(EnvelopeError::TooManySignatures(n)),
        _ => {}
    }
    let message = pae(&env.payload_type, &env.payload);
    let mut accepted = None;
    let mut rejected = Vec::new();
    for (index, sig) in env.signatures.iter().enumerate() {
        let keyid: String = sig.keyid.chars().take(64).collect();
        match lookup(&sig.keyid) {
            Ok((handle, key)) => {
                if !key.verify(&message, &sig.sig) {
                    return Err(EnvelopeError::BadSignature { index, keyid });
                }
                accepted.get_or_insert(handle);
            }
            Err(why) => rejected.push((index, keyid, why.to_string())),
        }
    }
    match accepted {
        Some(signer) => Ok(Verified {
            payload: &env.payload,
            signer,
        }),
        None => Err(EnvelopeError::NoAcceptableSignature { rejected }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::Ed25519KeyPair;

    fn ed25519() -> SigningKey {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        SigningKey::from_pkcs8(doc.as_ref()).unwrap()
    }

    fn p256() -> SigningKey {
        let rng = SystemRandom::new();
        let doc =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        SigningKey::from_pkcs8(doc.as_ref()).unwrap()
    }

    #[test]
    fn pae_matches_the_dsse_specification_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
        // Lengths are byte lengths, not character counts.
        assert_eq!(pae("é", "ü".as_bytes()), "DSSEv1 2 é 2 ü".as_bytes());
    }

    #[test]
    fn both_algorithms_round_trip_and_detect_tampering() {
        for key in [ed25519(), p256()] {
            let vk = key.verifying_key();
            let env = seal("t", b"payload".to_vec(), &key, "k1").unwrap();
            let ok = verify(&env, "t", |id| {
                if id == "k1" {
                    Ok((1, vk.clone()))
                } else {
                    Err("unknown")
                }
            })
            .unwrap();
            assert_eq!((ok.payload, ok.signer), (&b"payload"[..], 1));

            let mut flipped = env.clone();
            flipped.payload[0] ^= 1;
            assert_eq!(
                verify(&flipped, "t", |_| Ok::<_, &str>((1, vk.clone()))).unwrap_err(),
                EnvelopeError::BadSignature {
                    index: 0,
                    keyid: "k1".into()
                }
            );
            let mut retyped = env.clone();
            retyped.payload_type = "u".into();
            assert!(matches!(
                verify(&retyped, "u", |_| Ok::<_, &str>((1, vk.clone()))),
                Err(EnvelopeError::BadSignature { .. })
            ));
            assert!(matches!(
                verify(&env, "u", |_| Ok::<_, &str>((1, vk.clone()))),
                Err(EnvelopeError::WrongPayloadType { .. })
            ));
        }
    }

    #[test]
    fn unacceptable_keys_are_reported_and_limits_hold() {
        let key = ed25519();
        let env = seal("t", b"x".to_vec(), &key, "k1").unwrap();
        let err =
            verify::<u8, &str, _>(&env, "t", |_| Err("belongs to another member")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no signature by an acceptable signing certificate: key k1: belongs to another member"
        );

        let mut unsigned = env.clone();
        unsigned.signatures.clear();
        assert_eq!(
            verify::<u8, &str, _>(&unsigned, "t", |_| unreachable!()).unwrap_err(),
            EnvelopeError::Unsigned
        );

        let mut many = env.clone();
        many.signatures = vec![env.signatures[0].clone(); MAX_SIGNATURES + 1];
        assert_eq!(
            verify::<u8, &str, _>(&many, "t", |_| unreachable!()).unwrap_err(),
            EnvelopeError::TooManySignatures(MAX_SIGNATURES + 1)
        );
    }

    #[test]
    fn a_second_signature_by_an_unknown_key_is_ignored() {
        let (a, b) = (ed25519(), ed25519());
        let mut env = seal("t", b"x".to_vec(), &a, "a").unwrap();
        env.signatures.push(
            seal("t", b"x".to_vec(), &b, "b")
                .unwrap()
                .signatures
                .remove(0),
        );
        let va = a.verifying_key();
        let ok = verify(&env, "t", |id| {
            if id == "a" {
                Ok(("a", va.clone()))
            } else {
                Err("unknown")
            }
        })
        .unwrap();
        assert_eq!(ok.signer, "a");
    }
}
