//! The partnership CA and its certificate revocation lists: what the TLS verifier and the
//! signing-certificate check both trust.

use std::{path::Path, sync::Arc};

use rustls::{RootCertStore, server::WebPkiClientVerifier};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, TrustAnchor, UnixTime, pem::PemObject,
};
use webpki::{
    CertRevocationList, EndEntityCert, KeyUsage, OwnedCertRevocationList, RevocationCheckDepth,
};

/// id-kp-documentSigning (1.3.6.1.5.5.7.3.36, RFC 9336), DER contents of the OID.
pub const EKU_DOCUMENT_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x24];

/// Algorithms the CA may sign certificates with.
static CERT_SIGNATURE_ALGS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
];

/// The trusted CA certificates and the CRLs in force.
#[derive(Debug)]
pub struct Trust {
    ca_certs: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    parsed_crls: Vec<CertRevocationList<'static>>,
    /// The earliest `nextUpdate` of the CRLs (Unix seconds): after it, every check fails.
    crls_valid_until: Option<i64>,
    /// Serial numbers (lowercase hex) the CRLs revoke, with the reason if given.
    revoked: std::collections::BTreeMap<String, Option<String>>,
}

/// Why trust material was refused.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file holds no usable certificate or CRL.
    #[error("{what}: {reason}")]
    Invalid {
        /// The file or item.
        what: String,
        /// What is wrong.
        reason: String,
    },
}

impl Trust {
    /// Loads the CA bundle (PEM) and the CRLs (PEM or DER), refusing empty or unparseable files.
    pub fn load(ca: &Path, crls: &[impl AsRef<Path>]) -> Result<Self, TrustError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TrustError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let ca_pem = read(ca)?;
        let crl_bytes = crls
            .iter()
            .map(|p| Ok((p.as_ref().display().to_string(), read(p.as_ref())?)))
            .collect::<Result<Vec<_>, TrustError>>()?;
        Self::from_bytes(&ca.display().to_string(), &ca_pem, &crl_bytes)
    }

    /// Builds trust from a PEM CA bundle and named CRLs (PEM or DER).
    pub fn from_bytes(
        ca_name: &str,
        ca_pem: &[u8],
        crls: &[(String, Vec<u8>)],
    ) -> Result<Self, TrustError> {
        let invalid = |what: &str, reason: String| TrustError::Invalid {
            what: what.to_owned(),
            reason,
        };
        let ca_certs = CertificateDer::pem_slice_iter(ca_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(ca_name, format!("not a PEM certificate bundle: {e}")))?;
        if ca_certs.is_empty() {
            return Err(invalid(ca_name, "no certificate found".into()));
        }
        let anchors = ca_certs
            .iter()
            .map(|c| webpki::anchor_from_trusted_cert(c).map(|a| a.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(ca_name, format!("not a usable CA certificate: {e}")))?;

        let mut ders = Vec::new();
        let mut parsed = Vec::new();
        let mut crls_valid_until: Option<i64> = None;
        let mut revoked = std::collections::BTreeMap::new();
        for (name, bytes) in crls {
            let der = if bytes.starts_with(b"-----BEGIN") {
                CertificateRevocationListDer::from_pem_slice(bytes)
                    .map_err(|e| invalid(name, format!("not a PEM CRL: {e}")))?
            } else {
                CertificateRevocationListDer::from(bytes.clone())
            };
            let crl = OwnedCertRevocationList::from_der(der.as_ref())
                .map(CertRevocationList::Owned)
                .map_err(|e| invalid(name, format!("not a CRL: {e}")))?;
            if !anchors.iter().any(|a| a.subject.as_ref() == crl.issuer()) {
                return Err(invalid(
                    name,
                    "the CRL is not issued by a trusted CA".into(),
                ));
            }
            let (_, parsed_crl) = x509_parser::parse_x509_crl(der.as_ref())
                .map_err(|e| invalid(name, format!("not a CRL: {e}")))?;
            let next_update = parsed_crl
                .next_update()
                .map(|t| t.timestamp())
                .ok_or_else(|| invalid(name, "the CRL has no nextUpdate".into()))?;
            for r in parsed_crl.iter_revoked_certificates() {
                let reason = r.reason_code().map(|(_, code)| reason_name(code.0));
                revoked.insert(hex::encode(r.raw_serial()), reason);
            }
            crls_valid_until = Some(crls_valid_until.map_or(next_update, |t| t.min(next_update)));
            ders.push(der);
            parsed.push(crl);
        }
        Ok(Self {
            ca_certs,
            anchors,
            crls: ders,
            parsed_crls: parsed,
            crls_valid_until,
            revoked,
        })
    }

    /// Serial numbers (lowercase hex) revoked by the CRLs in force, with the RFC 5280 reason.
    pub fn revoked_serials(&self) -> &std::collections::BTreeMap<String, Option<String>> {
        &self.revoked
    }

    /// The CRLs in force, DER.
    pub fn crls(&self) -> &[CertificateRevocationListDer<'static>] {
        &self.crls
    }

    /// The earliest `nextUpdate` of the CRLs in force, Unix seconds.
    pub fn crls_valid_until(&self) -> Option<i64> {
        self.crls_valid_until
    }

    /// The CA certificates.
    pub fn ca_certs(&self) -> &[CertificateDer<'static>] {
        &self.ca_certs
    }

    /// A rustls verifier that requires a client certificate chained to the CA, refuses revoked
    /// ones, and treats an expired CRL as unusable (fail closed).
    pub fn client_verifier(
        &self,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TrustError> {
        let mut roots = RootCertStore::empty();
        for cert in &self.ca_certs {
            roots.add(cert.clone()).map_err(|e| TrustError::Invalid {
                what: "CA certificate".into(),
                reason: e.to_string(),
            })?;
        }
        let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .with_crls(self.crls.iter().cloned())
            .only_check_end_entity_revocation();
        if !self.crls.is_empty() {
            builder = builder.enforce_revocation_expiration();
        }
        builder.build().map_err(|e| TrustError::Invalid {
            what: "client verifier".into(),
            reason: e.to_string(),
        })
    }

    /// Checks a signing certificate at `now`: chained to the CA, within its validity, carrying
    /// EKU documentSigning, and not revoked by any CRL in force. The error is for a person.
    pub fn check_signing_cert(&self, der: &[u8], now: UnixTime) -> Result<(), CertError> {
        self.check(
            der,
            now,
            KeyUsage::required(EKU_DOCUMENT_SIGNING),
            "signing",
        )
    }

    /// Checks a TLS client certificate at `now` as the handshake did (chain, validity, EKU
    /// clientAuth, CRLs), for requests on connections opened before a reload.
    pub fn check_client_cert(&self, der: &[u8], now: UnixTime) -> Result<(), CertError> {
        self.check(der, now, KeyUsage::client_auth(), "client")
    }

    fn check(
        &self,
        der: &[u8],
        now: UnixTime,
        usage: KeyUsage,
        what: &'static str,
    ) -> Result<(), CertError> {
        let der = CertificateDer::from(der);
        let cert =
            EndEntityCert::try_from(&der).map_err(|e| CertError::Malformed(e.to_string()))?;
        let crls: Vec<&CertRevocationList<'_>> = self.parsed_crls.iter().collect();
        let revocation = webpki::RevocationOptionsBuilder::new(&crls).ok().map(|b| {
            b.with_depth(RevocationCheckDepth::EndEntity)
                .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
                .build()
        });
        cert.verify_for_usage(
            CERT_SIGNATURE_ALGS,
            &self.anchors,
            &[],
            now,
            usage,
            revocation,
            None,
        )
        .map(|_| ())
        .map_err(|e| match e {
            webpki::Error::CertRevoked => CertError::Revoked(what),
            webpki::Error::CertExpired { .. } => CertError::Expired(what),
            webpki::Error::CertNotValidYet { .. } => CertError::NotYetValid(what),
            webpki::Error::UnknownIssuer => CertError::UnknownIssuer(what),
            webpki::Error::RequiredEkuNotFoundContext(_) => CertError::WrongUsage(what),
            webpki::Error::CrlExpired { .. } => CertError::CrlExpired,
            other => CertError::Unacceptable(what, other.to_string()),
        })
    }
}

/// Why a certificate does not pass under the trust in force; the text is for a person. The
/// `&str` says which certificate: `signing` or `client`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Not a certificate.
    #[error("not a certificate: {0}")]
    Malformed(String),
    /// A CRL in force revokes it.
    #[error("the {0} certificate is revoked")]
    Revoked(&'static str),
    /// Past its validity.
    #[error("the {0} certificate has expired")]
    Expired(&'static str),
    /// Before its validity.
    #[error("the {0} certificate is not valid yet")]
    NotYetValid(&'static str),
    /// Not chained to the partnership CA.
    #[error("the {0} certificate is not issued by the partnership CA")]
    UnknownIssuer(&'static str),
    /// Without the extended key usage its use needs.
    #[error("the certificate is not a {0} certificate (wrong extended key usage)")]
    WrongUsage(&'static str),
    /// The CRL that would say whether it is revoked has expired (fail closed).
    #[error("the certificate revocation list has expired")]
    CrlExpired,
    /// Anything else the path validation refused.
    #[error("the {0} certificate is not acceptable: {1}")]
    Unacceptable(&'static str, String),
}

/// The RFC 5280 name of a CRL reason code.
fn reason_name(code: u8) -> String {
    match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => "unknown",
    }
    .to_owned()
}
