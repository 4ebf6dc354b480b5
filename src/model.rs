//! The pure domain model: the ledger that folds normalized events (the leaf
//! [`crate::types`]) into aggregates, and the immutable snapshot views read.
//!
//! No I/O, no tokio, no clock reads: time arrives inside events or as
//! arguments.

pub mod advisor;
pub mod anomaly;
pub mod budget;
pub mod counters;
pub mod duplicates;
pub mod insights;
pub mod ledger;
pub mod snapshot;

pub use crate::types::{EventKind, TelemetryEvent, Usage, Usd};
pub use counters::{Costing, Counters, Provenance};
pub use ledger::{Ledger, LedgerConfig, PeriodSpec, PeriodUnit, RunAgg};
pub use snapshot::Snapshot;
