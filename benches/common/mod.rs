//! What the submit and soak benchmarks share: the demo members, the drugs their synthetic
//! submissions report, their signing keys, a client channel as one of them, and a gateway
//! serving on loopback.
#![allow(dead_code)] // each benchmark uses its part

use focalgate::{envelope::SigningKey, identity::cert_digest_hex};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The Central Asian demo members.
pub const MEMBERS: [&str; 5] = ["KAZ", "KGZ", "TJK", "TKM", "UZB"];
/// Drugs and the unit each is reported in.
pub const DRUGS: [(&str, &str); 10] = [
    ("HEROIN", "KG"),
    ("OPIUM", "KG"),
    ("CANNABIS_HERB", "KG"),
    ("CANNABIS_RESIN", "KG"),
    ("METHAMPHETAMINE", "KG"),
    ("AMPHETAMINE", "U"),
    ("MDMA", "U"),
    ("TRAMADOL", "U"),
    ("COCAINE", "KG"),
    ("ACETIC_ANHYDRIDE", "L"),
];

/// A number from the environment, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A demo identity's signing key and key id.
pub fn signer(who: &str) -> (SigningKey, String) {
    let key =
        focalgate::pki::read_pkcs8(format!("certs-example/{who}/signing.key").as_ref()).unwrap();
    let cert = focalgate::tls::read_chain(format!("certs-example/{who}/signing.pem").as_ref())
        .unwrap()
        .remove(0);
    (
        SigningKey::from_pkcs8(&key).unwrap(),
        cert_digest_hex(cert.as_ref()),
    )
}

/// A channel to the gateway at `addr`, authenticated as the demo identity `who`.
pub async fn channel(addr: std::net::SocketAddr, who: &str) -> Channel {
    let dir = format!("certs-example/{who}");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read("certs-example/ca/ca.pem").unwrap(),
        ))
        .identity(Identity::from_pem(
            std::fs::read(format!("{dir}/auth.pem")).unwrap(),
            std::fs::read(format!("{dir}/auth.key")).unwrap(),
        ));
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A gateway serving on 127.0.0.1, until `stop` is sent.
pub struct Running {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its store, for what a benchmark reads directly.
    pub store: std::sync::Arc<dyn focalgate::store::Store>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Assembles a gateway from `settings` and serves it on a free port of 127.0.0.1.
pub async fn start(settings: &focalgate::config::Settings) -> Running {
    let assembled = focalgate::service::assemble(settings).await.unwrap();
    let store = assembled.gateway.store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        focalgate::service::serve(assembled, listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Running {
        addr,
        store,
        stop,
        task,
    }
}

/// Stops the gateways and waits until each has stopped.
pub async fn shut_down(running: Vec<Running>) {
    for r in running {
        let _ = r.stop.send(());
        r.task.await.unwrap();
    }
}
