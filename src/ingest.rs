//! Ingestion: turning bytes from files (and later sockets) into events for
//! the ledger, counting and locating every line that is rejected.

pub mod channel;
pub mod formats;
pub mod lines;
pub mod parsed;
pub mod pipeline;
pub mod sources;
pub mod stats;

use crate::model::Ledger;
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

/// Feeds lines from any source into a ledger, keeping statistics.
pub struct Ingestor<'l> {
    pub ledger: &'l mut Ledger,
    pub stats: IngestStats,
    pub window: TimeWindow,
}

impl<'l> Ingestor<'l> {
    #[must_use]
    pub fn new(ledger: &'l mut Ledger, window: TimeWindow) -> Self {
        Ingestor {
            ledger,
            stats: IngestStats::default(),
            window,
        }
    }

    /// Handles one complete line (newline and CR removed) of source number
    /// `source` (an index into `stats.sources`).
    pub fn line(&mut self, source: usize, line_no: u64, bytes: &[u8]) {
        self.line_at(source, bytes, |stats| {
            format!("{}:{line_no}", stats.sources[source].name)
        });
    }

    /// [`Ingestor::line`] with the location of a rejected line given by
    /// `location` (sockets say which client: `unix:/x.sock#3:12`).
    pub fn line_at(
        &mut self,
        source: usize,
        bytes: &[u8],
        location: impl FnOnce(&IngestStats) -> String,
    ) {
        self.stats.count_line(source);
        if bytes.trim_ascii().is_empty() {
            self.stats.count_blank(source);
            return;
        }
        let origin = LineOrigin {
            source: self.stats.sources[source].origin.as_str(),
        };
        match formats::native::parse_line(bytes, origin) {
            Ok(event) if self.window.contains(event.ts_ms) => {
                self.ledger.apply(&event);
                self.stats.count_event(source);
            }
            Ok(_) => self.stats.count_filtered(source),
            Err(ParseError::InvalidUtf8) => {
                let location = location(&self.stats);
                self.stats.reject_at(
                    source,
                    location,
                    RejectKind::InvalidUtf8,
                    "invalid UTF-8".into(),
                );
            }
            Err(error) => {
                let location = location(&self.stats);
                self.stats
                    .reject_at(source, location, RejectKind::Malformed, error.to_string());
            }
        }
    }

    /// A line longer than the limit was skipped without being buffered.
    pub fn oversized(&mut self, source: usize, line_no: u64, bytes: u64, limit: usize) {
        self.stats.count_line(source);
        self.stats.reject(
            source,
            line_no,
            RejectKind::Oversized,
            format!("line of {bytes} bytes exceeds --max-line-bytes {limit}"),
        );
    }
}
