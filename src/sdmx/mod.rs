//! SDMX messages written from [`schema::structure`](crate::schema::structure): the structure
//! messages (SDMX-ML 2.1, what `sdmx1`, `rsdmx` and the .Stat Suite read), for the API and for
//! `focalgate sdmx structures`.

pub mod data;
pub mod rest;
mod structure;
mod xml;

pub use structure::{Artefact, Detail, Selection, structure_message};

/// The SDMX URN of a maintainable artefact: `urn:sdmx:org.sdmx.infomodel.<class>=FOCALGATE:ID(VERSION)`.
pub fn urn(class: &str, id: &str, version: &str) -> String {
    format!(
        "urn:sdmx:org.sdmx.infomodel.{class}={}:{id}({version})",
        crate::schema::structure::AGENCY
    )
}
