//! Ingest statistics, per source and in total.

use serde::Serialize;

/// How many rejected lines are kept with their location and reason.
pub const MAX_REJECT_SAMPLES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    Malformed,
    InvalidUtf8,
    Oversized,
}

/// A rejected line: where it is and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// `file:line`
    pub location: String,
    pub kind: RejectKind,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceStats {
    /// As the user named it (a path, `-`, `unix:…`).
    pub name: String,
    /// Short stable name used in synthetic run ids (file name).
    #[serde(skip)]
    pub origin: String,
    pub lines: u64,
    pub events: u64,
    pub blank: u64,
    /// Outside `--since`/`--until`.
    pub filtered: u64,
    /// Every rejected line: invalid JSON or schema, invalid UTF-8, oversized.
    pub malformed: u64,
    pub invalid_utf8: u64,
    pub oversized: u64,
}

/// Totals over all sources plus the first rejected locations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    pub files: u64,
    pub lines: u64,
    pub events: u64,
    pub blank: u64,
    pub filtered: u64,
    pub malformed: u64,
    pub invalid_utf8: u64,
    pub oversized: u64,
    /// The first [`MAX_REJECT_SAMPLES`] rejected lines, in reading order.
    pub malformed_samples: Vec<Rejected>,
    pub sources: Vec<SourceStats>,
}

impl IngestStats {
    /// Registers a source and returns its index.
    pub fn add_source(&mut self, name: String, origin: String) -> usize {
        self.sources.push(SourceStats {
            name,
            origin,
            ..SourceStats::default()
        });
        self.sources.len() - 1
    }

    pub(crate) fn count_line(&mut self, source: usize) {
        self.lines += 1;
        self.sources[source].lines += 1;
    }

    pub(crate) fn count_blank(&mut self, source: usize) {
        self.blank += 1;
        self.sources[source].blank += 1;
    }

    pub(crate) fn count_event(&mut self, source: usize) {
        self.events += 1;
        self.sources[source].events += 1;
    }

    pub(crate) fn count_filtered(&mut self, source: usize) {
        self.filtered += 1;
        self.sources[source].filtered += 1;
    }

    pub(crate) fn reject(&mut self, source: usize, line_no: u64, kind: RejectKind, reason: String) {
        let stats = &mut self.sources[source];
        stats.malformed += 1;
        self.malformed += 1;
        match kind {
            RejectKind::InvalidUtf8 => {
                stats.invalid_utf8 += 1;
                self.invalid_utf8 += 1;
            }
            RejectKind::Oversized => {
                stats.oversized += 1;
                self.oversized += 1;
            }
            RejectKind::Malformed => {}
        }
        if self.malformed_samples.len() < MAX_REJECT_SAMPLES {
            let location = format!("{}:{line_no}", stats.name);
            self.malformed_samples.push(Rejected { location, kind, reason });
        }
    }
}
