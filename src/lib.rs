//! focalgate: the gateway through which partner countries' national focal points submit
//! drug-seizure and trafficking-route statistics, signed, over mutual TLS.
//!
//! (The full map is written once the modules settle.)

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod envelope;
pub mod identity;
pub mod ledger;
pub mod pki;
pub mod receipt;
pub mod schema;
pub mod service;
pub mod store;
pub mod synthetic;
pub mod tls;

/// The wire contract, generated from `proto/focalgate/v1/*.proto`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("focalgate.v1");

    /// Encoded descriptor set of the contract, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("focalgate_descriptor");
}
