//! Mutual TLS: the gateway's rustls server configuration (TLS 1.3 only, client certificate
//! required and checked against the partnership CA and its CRLs), what a refused handshake
//! means, and the client side used by the CLI. The accept loop is [`crate::connections`].

use std::{io, path::Path, sync::Arc, time::Duration};

use rustls::{
    DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
    client::danger::HandshakeSignatureValid,
    server::danger::{ClientCertVerified, ClientCertVerifier},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject};
use tokio::net::TcpStream;

use crate::identity::{Registry, Trust, TrustError};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file is unreadable or malformed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The CA or CRL was refused.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// rustls refused the combination.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider used everywhere: *ring*.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File {
        path: path.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if chain.is_empty() {
        return Err(bad("no certificate found".into()));
    }
    Ok(chain)
}

/// Reads a PEM private key.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// The gateway's TLS configuration: TLS 1.3 only, ALPN `h2`, client certificates required and
/// verified against `trust`, and refused if the transparency log revokes them.
pub fn server_config(
    trust: &Trust,
    registry: Arc<Registry>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let verifier = Arc::new(LogRevocations {
        inner: trust.client_verifier(provider.clone())?,
        registry,
    });
    tls13_server(provider, verifier, chain, key, b"h2")
}

/// A witness's TLS configuration: TLS 1.3 only, ALPN `http/1.1`, client certificates of the
/// partnership CA required, checked against its CRLs.
pub fn witness_server_config(
    trust: &Trust,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let verifier = trust.client_verifier(provider.clone())?;
    tls13_server(provider, verifier, chain, key, b"http/1.1")
}

fn tls13_server(
    provider: Arc<rustls::crypto::CryptoProvider>,
    verifier: Arc<dyn ClientCertVerifier>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[u8],
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// The server configuration in force; a reload replaces it for the next handshakes. It is
/// held twice: as built (ALPN `h2`, for gRPC), and for the SDMX REST API, which also speaks
/// HTTP/1.1 (ALPN `h2`, `http/1.1`) under the same certificates and checks.
#[derive(Debug)]
pub struct ServerTls(std::sync::RwLock<(Arc<ServerConfig>, Arc<ServerConfig>)>);

/// Which of the listeners a configuration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The gRPC services: HTTP/2 only.
    Grpc,
    /// The SDMX REST API: HTTP/2 and HTTP/1.1.
    Http,
}

impl ServerTls {
    /// Starts with `config`.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self(std::sync::RwLock::new(Self::pair(config)))
    }

    fn pair(config: Arc<ServerConfig>) -> (Arc<ServerConfig>, Arc<ServerConfig>) {
        let mut http = (*config).clone();
        http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        (config, Arc::new(http))
    }

    /// The gRPC listener's configuration for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.for_listener(Listener::Grpc)
    }

    /// The configuration of `listener` for the next handshake.
    pub fn for_listener(&self, listener: Listener) -> Arc<ServerConfig> {
        let pair = self.0.read().unwrap_or_else(|p| p.into_inner());
        match listener {
            Listener::Grpc => pair.0.clone(),
            Listener::Http => pair.1.clone(),
        }
    }

    /// Replaces the configuration; connections already open keep theirs.
    pub fn replace(&self, config: Arc<ServerConfig>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Self::pair(config);
    }
}

/// The CA's verifier (chain, validity, CRLs), then the transparency log's revocations, which
/// take effect before the CA publishes a new CRL and on every gateway sharing the log.
#[derive(Debug)]
struct LogRevocations {
    inner: Arc<dyn ClientCertVerifier>,
    registry: Arc<Registry>,
}

impl ClientCertVerifier for LogRevocations {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let serial = x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map(|(_, c)| hex::encode(c.raw_serial()))
            .map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
            })?;
        if self.registry.is_revoked(&serial) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a handshake failed, for the operator: rustls's words, except that extended key usages
/// are named and written as dotted OIDs (rustls writes `1, 3, 6, 1, 5, 5, 7, 3, 36`).
pub(crate) fn handshake_error(e: &io::Error) -> String {
    use rustls::{CertificateError, Error};
    match e.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
        Some(Error::InvalidCertificate(CertificateError::InvalidPurposeContext {
            required,
            presented,
        })) => {
            let presented: Vec<String> = presented.iter().map(key_purpose).collect();
            format!(
                "the client certificate is not for {} (extended key usage: {})",
                key_purpose(required),
                if presented.is_empty() {
                    "none".to_owned()
                } else {
                    presented.join(", ")
                }
            )
        }
        _ => e.to_string(),
    }
}

/// An extended key usage by name and dotted OID (RFC 5280 §4.2.1.12, RFC 9336).
fn key_purpose(p: &rustls::ExtendedKeyPurpose) -> String {
    use rustls::ExtendedKeyPurpose as P;
    let (name, arcs) = match p {
        P::ClientAuth => ("clientAuth", vec![1, 3, 6, 1, 5, 5, 7, 3, 2]),
        P::ServerAuth => ("serverAuth", vec![1, 3, 6, 1, 5, 5, 7, 3, 1]),
        P::Other(arcs) if arcs[..] == [1, 3, 6, 1, 5, 5, 7, 3, 36] => {
            ("documentSigning", arcs.clone())
        }
        P::Other(arcs) => ("", arcs.clone()),
    };
    let dotted = arcs
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(".");
    if name.is_empty() {
        dotted
    } else {
        format!("{name} ({dotted})")
    }
}

/// A member's identity folder: `ca.pem`, `auth.pem`, `auth.key`, `signing.pem`, `signing.key`.
#[derive(Clone, Debug)]
pub struct IdentityDir {
    dir: std::path::PathBuf,
}

impl IdentityDir {
    /// An identity folder; files are read when needed.
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Path of one of the five files.
    pub fn file(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }

    /// The bytes of a file in the folder.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, TlsError> {
        let path = self.file(name);
        std::fs::read(&path).map_err(|e| TlsError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Whether the gateway at `host:port` refuses this identity's certificate, and why: the
    /// TLS alert it sends once it has checked the certificate. In TLS 1.3 that alert arrives
    /// after the client has finished its side of the handshake, so a gRPC client only sees a
    /// connection that closes; this opens one connection of its own to read the alert. `None`
    /// when the gateway answers, or sends no alert within a few seconds.
    pub async fn refusal(&self, host: &str, port: u16) -> Option<String> {
        let config = self.rustls_client().ok()?;
        let name = rustls_pki_types::ServerName::try_from(host.to_owned()).ok()?;
        let talk = async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let tcp = TcpStream::connect((host, port)).await?;
            let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await?;
            tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
            tls.flush().await?;
            let mut first = [0u8; 1];
            tls.read(&mut first).await
        };
        // Only an alert is an answer; anything else is left to the real call to report.
        match tokio::time::timeout(Duration::from_secs(5), talk).await {
            Ok(Err(e)) => match e.get_ref()?.downcast_ref::<rustls::Error>()? {
                rustls::Error::AlertReceived(alert) => Some(refusal_reason(*alert)),
                _ => None,
            },
            _ => None,
        }
    }

    /// A rustls client configuration as the gateway expects it: TLS 1.3, ALPN `h2`, trusting
    /// `ca.pem` and presenting `auth.pem`/`auth.key`.
    pub fn rustls_client(&self) -> Result<rustls::ClientConfig, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in read_chain(&self.file("ca.pem"))? {
            roots.add(ca)?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(
                read_chain(&self.file("auth.pem"))?,
                read_key(&self.file("auth.key"))?,
            )?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// What a TLS alert from the gateway means for the holder of the refused certificate.
fn refusal_reason(alert: rustls::AlertDescription) -> String {
    use rustls::AlertDescription as A;
    let why = match alert {
        A::CertificateRevoked => "your authentication certificate is revoked",
        A::CertificateExpired => "your authentication certificate has expired or is not yet valid",
        A::UnknownCA => "your authentication certificate is not from the partnership CA",
        A::BadCertificate | A::UnsupportedCertificate => {
            "your authentication certificate is not acceptable (key usage, extended key usage or encoding)"
        }
        A::CertificateRequired => "no authentication certificate was presented",
        _ => "the TLS handshake failed",
    };
    format!("the gateway refused the connection: {why} (TLS alert {alert:?})")
}
