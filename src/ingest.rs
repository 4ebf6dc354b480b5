//! Ingestion: bytes from sources (files, followed files, sockets, standard
//! input) decoded by input formats into normalized events, then folded into
//! the ledger, counting and locating every line that is rejected.
//!
//! - `sources/`: where lines come from; `lines`: splitting them;
//! - `formats/`: what lines mean (one decoder per source, format detected);
//! - `parsed`: decoded lines in batches that cross threads; `pipeline`: the
//!   report's decode thread; `channel`: live sources → aggregator;
//! - [`Ingestor`] + `dedup`: folding events into the ledger, one count per
//!   call across sources; `stats`: what happened to every line.

pub mod channel;
pub mod dedup;
pub mod estimate;
pub mod formats;
pub mod lines;
pub mod parsed;
pub mod pipeline;
pub mod record;
pub mod sources;
pub mod stats;

use crate::model::Ledger;
use crate::types::event::{EventKind, TelemetryEvent};
use dedup::{CallRegistry, Settled};
pub use formats::native::{LineOrigin, ParseError};
pub use stats::{IngestStats, RejectKind};

/// Keeps events whose timestamp falls in `[since, until)` (epoch ms). When
/// either bound is set, events without a timestamp are filtered out too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl TimeWindow {
    #[must_use]
    pub fn is_unbounded(&self) -> bool {
        self.since_ms.is_none() && self.until_ms.is_none()
    }

    #[must_use]
    pub fn contains(&self, ts_ms: Option<i64>) -> bool {
        if self.is_unbounded() {
            return true;
        }
        let Some(ts) = ts_ms else { return false };
        self.since_ms.is_none_or(|s| ts >= s) && self.until_ms.is_none_or(|u| ts < u)
    }
}

/// Folds decoded events from any source into a ledger, keeping statistics
/// and one count per call ([`CallRegistry`]).
pub struct Ingestor<'l> {
    pub ledger: &'l mut Ledger,
    pub stats: IngestStats,
    pub window: TimeWindow,
    pub calls: CallRegistry,
}

impl<'l> Ingestor<'l> {
    #[must_use]
    pub fn new(ledger: &'l mut Ledger, window: TimeWindow) -> Self {
        Ingestor {
            ledger,
            stats: IngestStats::default(),
            window,
            calls: CallRegistry::default(),
        }
    }

    /// Folds one event of source number `source` (an index into
    /// `stats.sources`); `locate` names its line for warnings.
    pub fn event(
        &mut self,
        source: usize,
        event: &TelemetryEvent<'_>,
        locate: impl FnOnce() -> String,
    ) {
        let in_window = self.window.contains(event.ts_ms);
        let call = event.call.filter(|_| event.kind == EventKind::Hop);
        let Some(call) = call else {
            if in_window {
                self.ledger.apply(event);
                self.stats.count_event(source);
            } else {
                self.stats.count_filtered(source);
            }
            return;
        };
        match self.calls.settle(call, event, in_window, self.ledger) {
            Settled::Counted => self.stats.count_event(source),
            Settled::Filtered => self.stats.count_filtered(source),
            Settled::Duplicate => self.stats.count_duplicate(source),
            Settled::Revised => self.stats.count_revised(source),
            Settled::Unrevisable => self.stats.count_unrevisable(source, locate()),
        }
        self.stats.forgotten_calls = self.calls.forgotten;
    }
}
