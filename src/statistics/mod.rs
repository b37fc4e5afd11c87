//! Aggregates for analysts over the submitted statistics, under the partners' sharing rules.
//!
//! ```text
//!  Store ──observations since seq──▶ Index (every revision, compact columns, in memory)
//!  AggregateQuery ──Query::from_request──▶ Query ──aggregate(index, query, tree size, viewer)──▶ Answer
//! ```
//!
//! [`aggregate()`] is pure: the service resolves the tree size (the latest checkpoint or the one
//! `as_of` names), refreshes the index, runs the query, records it in the access trail, and
//! streams the answer. See [`aggregate`'s module](mod@aggregate) for the visibility and
//! suppression rules. [`observations()`] reads the observations themselves, page by page,
//! under the same visibility rules.

pub mod aggregate;
pub mod index;
pub mod observations;
pub mod query;

pub use aggregate::{Answer, Cell, Cells, Thresholds, Viewer, aggregate};
pub use index::Index;
pub use observations::{Page, Revisions, observations};
pub use query::{AsOf, Dimension, Query};
