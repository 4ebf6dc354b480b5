//! Leaf types every layer shares: exact money ([`Usd`]), disjoint token
//! buckets ([`Usage`]) and the normalized record every input format becomes
//! ([`TelemetryEvent`]). This module depends on nothing else in the crate;
//! `pricing`, the ledger (`model`) and the input formats (`ingest`) all use it.

pub mod event;
pub mod money;
pub mod prompt;
pub mod usage;

pub use event::{CallId, EventKind, Format, Supersede, TelemetryEvent};
pub use money::Usd;
pub use prompt::PromptPrint;
pub use usage::Usage;
