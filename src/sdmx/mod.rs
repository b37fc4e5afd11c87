//! SDMX messages written from [`schema::structure`](crate::schema::structure): the structure
//! messages (SDMX-ML 2.1, what `sdmx1`, `rsdmx` and the .Stat Suite read, and SDMX-JSON 2.0,
//! what `pysdmx` and web clients read), for the API and for `focalgate structures`; data ([`data`]) as SDMX-CSV 2.0, SDMX-ML 2.1 structure-specific data
//! and SDMX-JSON 2.0; and SDMX REST requests ([`rest`]).

pub mod data;
pub mod rest;
mod structure;
mod xml;

pub use structure::{Artefact, Detail, Selection, structure_json, structure_message};

/// The SDMX URN of a maintainable artefact: `urn:sdmx:org.sdmx.infomodel.<class>=FOCALGATE:ID(VERSION)`.
pub fn urn(class: &str, id: &str, version: &str) -> String {
    format!(
        "urn:sdmx:org.sdmx.infomodel.{class}={}:{id}({version})",
        crate::schema::structure::AGENCY
    )
}

/// An SDMX-JSON message, `meta` first: readers that tell the kind of message by the schema
/// named in its first bytes (as `pysdmx` does) find it there.
fn json_message(meta: &serde_json::Value, data: &serde_json::Value) -> String {
    format!("{{\"meta\":{meta},\"data\":{data}}}")
}
