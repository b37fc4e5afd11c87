//! The gRPC services (thin: identify the caller, call the domain, map errors) and the server
//! that hosts them over the gateway's own mutual-TLS listener.

mod error;
mod submissions;

use std::{future::Future, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::Request;

pub use error::ApiError;

use crate::{
    identity::{Caller, Directory},
    ledger::Ledger,
    proto::submissions_server::SubmissionsServer,
    schema::{CodeLists, Limits},
    store::Store,
};

/// What the services share.
pub struct Gateway {
    /// CA, CRLs, policy and signing-certificate registry.
    pub directory: Arc<Directory>,
    /// Code lists the schema validates against.
    pub lists: Arc<CodeLists>,
    /// Bounds on one submission.
    pub limits: Limits,
    /// Reads.
    pub store: Arc<dyn Store>,
    /// Writes, in order, with receipts.
    pub ledger: Ledger,
}

impl Gateway {
    /// The caller of a request, from its TLS peer certificate only.
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, ApiError> {
        let certs = request.peer_certs();
        let leaf = certs.as_deref().and_then(|c| c.first()).map(|c| c.as_ref());
        Ok(self.directory.caller(leaf)?)
    }
}

/// Limits that apply to every RPC.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Largest request or response message; larger requests get RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
    /// Longest time one RPC may take on the server.
    pub request_timeout: Duration,
    /// Longest time a TLS handshake may take.
    pub handshake_timeout: Duration,
}

/// Serves the focalgate services, grpc.health.v1 and server reflection (v1 and v1alpha) on
/// `listener` with `tls`, until `shutdown` completes; then stops accepting, lets in-flight
/// requests finish, and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    gateway: Arc<Gateway>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<SubmissionsServer<submissions::SubmissionsService>>().await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let submissions = SubmissionsServer::new(submissions::SubmissionsService::new(gateway))
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);

    let incoming = crate::tls::incoming(listener, tls, options.handshake_timeout);
    tonic::transport::Server::builder()
        .timeout(options.request_timeout)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(submissions)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The compiled-in descriptor sets could not be read (a build defect).
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The HTTP/2 server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}
