//! The pure domain model: normalized events, exact money, the ledger that
//! folds events into aggregates, and the immutable snapshot views read.
//!
//! No I/O, no tokio, no clock reads: time arrives inside events or as
//! arguments.

pub mod budget;
pub mod counters;
pub mod event;
pub mod insights;
pub mod ledger;
pub mod money;
pub mod snapshot;

pub use counters::{Costing, Counters, Provenance};
pub use event::{EventKind, TelemetryEvent, Usage};
pub use ledger::{Ledger, LedgerConfig, PeriodSpec, PeriodUnit, RunAgg};
pub use money::Usd;
pub use snapshot::Snapshot;
