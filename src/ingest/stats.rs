//! Ingest statistics, per source and in total.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::types::event::Format;

/// How many rejected lines are kept with their location and reason.
pub const MAX_REJECT_SAMPLES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    Malformed,
    InvalidUtf8,
    Oversized,
    /// Not a rejected line: a report of a call that could not be applied.
    Unrevisable,
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
    /// Lines per input format (blank and oversized lines count as native).
    pub formats: BTreeMap<&'static str, u64>,
    pub events: u64,
    pub blank: u64,
    /// Valid lines that are not model calls of their own.
    pub ignored: u64,
    /// Reports of a call already counted that change nothing.
    pub duplicates: u64,
    /// Reports that replaced (or took back) the count of a call.
    pub revised: u64,
    /// Reports that should have replaced a count kept too long ago.
    pub unrevisable: u64,
    /// Outside `--since`/`--until`.
    pub filtered: u64,
    /// Every rejected line: invalid JSON or schema, invalid UTF-8, oversized.
    pub malformed: u64,
    pub invalid_utf8: u64,
    pub oversized: u64,
    /// OTLP receivers only (`--otlp`, `--otlp-grpc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp: Option<OtlpStats>,
    /// Live sources; a one-shot report uses only `errors` and `last_error`
    /// (an input it could not read, skipped: see `sources::files`).
    #[serde(flatten)]
    pub live: LiveStats,
}

/// What an OTLP receiver did with the requests it was sent. Each request
/// decoded is one line of its source (`lines`); a malformed one, and each
/// span rejected alone, is counted in `malformed` with its location
/// (`otlp-http:127.0.0.1:4318#request 7`) and reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OtlpStats {
    /// `otlp-http` or `otlp-grpc`.
    pub protocol: &'static str,
    /// Requests decoded: accepted (200 / OK, maybe with `partial_success`)
    /// or malformed (400 / `INVALID_ARGUMENT`).
    pub requests: u64,
    /// Spans passed on to the decoder.
    pub spans_accepted: u64,
    /// Spans rejected alone (bad usage values), named in the response's
    /// `partial_success`.
    pub spans_rejected: u64,
    /// Requests turned away because the aggregator was behind (429 /
    /// `RESOURCE_EXHAUSTED`, to be retried): nothing of them was decoded.
    pub throttled: u64,
    /// Requests refused before decoding: no or a wrong token (401 /
    /// `UNAUTHENTICATED`), too large (413), an unsupported content type or
    /// encoding (415), or sent while stopping (503 / `UNAVAILABLE`).
    pub refused: u64,
}

/// What happens to live sources: files that rotate, sockets that connect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LiveStats {
    /// The path started naming a new file (rename + create).
    pub rotations: u64,
    /// The file shrank (copy-truncate) and was read again from 0.
    pub truncations: u64,
    /// An editor replaced the file with one starting with what was read.
    pub replacements: u64,
    /// New files recognized as copies of what was already read (not re-read).
    pub copies_skipped: u64,
    /// Partial last lines dropped when a file closed or a client hung up.
    pub incomplete: u64,
    /// Events dropped. tokwatch applies backpressure instead, so this stays
    /// 0; it is here so that a drop could never be silent.
    pub dropped: u64,
    /// Clients connected now / ever (sockets).
    pub clients_connected: u64,
    pub clients_total: u64,
    /// TCP connections that have not sent `--listen-token` yet (they hold
    /// handshake slots, not client slots).
    pub clients_pending: u64,
    /// Connections closed before any event: an HTTP request, a bad token.
    pub clients_rejected: u64,
    /// Failures to list, open or read, and connections turned away (also
    /// in `clients_rejected`); the last one is in `last_error`.
    pub errors: u64,
    /// Per source, the reason of its latest failure (or of the latest
    /// client turned away); in total, the latest of all sources, after the
    /// name of its source (`logs/d: cannot list: Permission denied …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl LiveStats {
    fn merge_counts(&mut self, other: &LiveStats) {
        self.rotations += other.rotations;
        self.truncations += other.truncations;
        self.replacements += other.replacements;
        self.copies_skipped += other.copies_skipped;
        self.incomplete += other.incomplete;
        self.dropped += other.dropped;
        self.clients_connected += other.clients_connected;
        self.clients_total += other.clients_total;
        self.clients_pending += other.clients_pending;
        self.clients_rejected += other.clients_rejected;
        self.errors += other.errors;
    }
}

/// Totals over all sources plus the first rejected locations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    pub files: u64,
    /// Files followed now (live): open, or closed for the open-file budget,
    /// or vanished within their grace; a file closed after it vanished (its
    /// offset remembered) is no longer followed.
    pub files_followed: u64,
    pub lines: u64,
    pub events: u64,
    pub blank: u64,
    pub ignored: u64,
    pub duplicates: u64,
    pub revised: u64,
    pub unrevisable: u64,
    /// Calls the deduplication registry forgot (`ingest::dedup` bounds).
    pub forgotten_calls: u64,
    /// Calls counted from text with another model's tokenizer (o200k):
    /// approximations (`ingest::estimate`).
    pub estimates_approximate: u64,
    pub filtered: u64,
    pub malformed: u64,
    pub invalid_utf8: u64,
    pub oversized: u64,
    /// The first [`MAX_REJECT_SAMPLES`] rejected lines, in reading order.
    pub malformed_samples: Vec<Rejected>,
    /// The latest [`MAX_REJECT_SAMPLES`] rejected lines after those, oldest
    /// first: what a live dashboard needs to see once the first are old news.
    /// Not in reports (they list the first).
    #[serde(skip)]
    pub latest_rejected: std::collections::VecDeque<Rejected>,
    pub sources: Vec<SourceStats>,
    /// Live: `--follow` targets that name nothing yet (a path that does not
    /// exist, a glob with no match), in the order they were found missing;
    /// each is read as soon as it appears. Absent from JSON when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
    /// The source of the latest error ([`IngestStats::count_error`]).
    #[serde(skip)]
    pub latest_error: Option<usize>,
}

impl IngestStats {
    /// Totals of the live counters over all sources; `last_error` is the
    /// latest error of any source (else the last source's that has one).
    #[must_use]
    pub fn live_totals(&self) -> LiveStats {
        let mut total = LiveStats::default();
        for source in &self.sources {
            total.merge_counts(&source.live);
        }
        total.last_error = self
            .latest_error
            .and_then(|index| self.sources.get(index))
            .into_iter()
            .chain(self.sources.iter().rev())
            .find_map(|source| {
                let reason = source.live.last_error.as_deref()?;
                // located: a source's own reason does not name it
                Some(if reason.starts_with(source.name.as_str()) {
                    reason.to_owned()
                } else {
                    format!("{}: {reason}", source.name)
                })
            });
        total
    }

    /// A failure of source `source` (a directory that cannot be listed, a
    /// file that cannot be opened or read): counted, its reason kept as the
    /// source's `last_error`, and the source as the one of the latest error
    /// (in total, `last_error` names it).
    pub fn count_error(&mut self, source: usize, reason: &str) {
        let live = &mut self.sources[source].live;
        live.errors += 1;
        live.last_error = Some(reason.to_owned());
        self.latest_error = Some(source);
    }

    /// Records that `target` names nothing (`missing`) or names something
    /// again.
    pub fn set_waiting(&mut self, target: &str, missing: bool) {
        let known = self.waiting_for.iter().position(|t| t == target);
        match (missing, known) {
            (true, None) => self.waiting_for.push(target.to_owned()),
            (false, Some(index)) => {
                self.waiting_for.remove(index);
            }
            _ => {}
        }
    }

    /// The index of the source named `name`, registering it when new.
    pub fn source_named(&mut self, name: &str, origin: &str) -> usize {
        match self.sources.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => self.add_source(name.to_owned(), origin.to_owned()),
        }
    }

    /// Registers a source and returns its index.
    pub fn add_source(&mut self, name: String, origin: String) -> usize {
        self.sources.push(SourceStats {
            name,
            origin,
            ..SourceStats::default()
        });
        self.sources.len() - 1
    }

    pub(crate) fn count_line(&mut self, source: usize, format: Format) {
        self.lines += 1;
        let stats = &mut self.sources[source];
        stats.lines += 1;
        *stats.formats.entry(format.name()).or_default() += 1;
    }

    pub(crate) fn count_ignored(&mut self, source: usize) {
        self.ignored += 1;
        self.sources[source].ignored += 1;
    }

    pub(crate) fn count_duplicate(&mut self, source: usize) {
        self.duplicates += 1;
        self.sources[source].duplicates += 1;
    }

    pub(crate) fn count_revised(&mut self, source: usize) {
        self.revised += 1;
        self.sources[source].revised += 1;
    }

    /// A report that could not replace its call's earlier count: kept among
    /// the samples, so that it is never silent.
    pub(crate) fn count_unrevisable(&mut self, source: usize, location: String) {
        self.unrevisable += 1;
        self.sources[source].unrevisable += 1;
        self.keep_rejected(Rejected {
            location,
            kind: RejectKind::Unrevisable,
            reason: "a later report of this call has larger usage, but its first count is too old to replace (see ingest::dedup)".into(),
        });
    }

    /// The formats of a source's lines, most lines first (`claude-code`).
    #[must_use]
    pub fn formats_of(&self, source: usize) -> Vec<&'static str> {
        let mut formats: Vec<(&'static str, u64)> = self.sources[source]
            .formats
            .iter()
            .map(|(f, n)| (*f, *n))
            .collect();
        formats.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        formats.into_iter().map(|(f, _)| f).collect()
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

    pub(crate) fn reject_at(
        &mut self,
        source: usize,
        location: String,
        kind: RejectKind,
        reason: String,
    ) {
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
            RejectKind::Malformed | RejectKind::Unrevisable => {}
        }
        self.keep_rejected(Rejected {
            location,
            kind,
            reason,
        });
    }

    /// Keeps a rejected line among the first ones, or else among the latest.
    fn keep_rejected(&mut self, rejected: Rejected) {
        if self.malformed_samples.len() < MAX_REJECT_SAMPLES {
            self.malformed_samples.push(rejected);
            return;
        }
        if self.latest_rejected.len() == MAX_REJECT_SAMPLES {
            self.latest_rejected.pop_front();
        }
        self.latest_rejected.push_back(rejected);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_counted_is_the_last_error_with_its_location() {
        let mut stats = IngestStats::default();
        let a = stats.add_source("logs/a.jsonl".into(), "a.jsonl".into());
        let b = stats.add_source("logs/b.jsonl".into(), "b.jsonl".into());
        assert_eq!(stats.live_totals().last_error, None);
        stats.count_error(b, "cannot read: Input/output error (os error 5)");
        stats.count_error(a, "cannot open: Permission denied (os error 13)");
        let total = stats.live_totals();
        assert_eq!(total.errors, 2);
        assert_eq!(
            total.last_error.as_deref(),
            Some("logs/a.jsonl: cannot open: Permission denied (os error 13)"),
            "the latest, not the last source's"
        );
        assert_eq!(
            stats.sources[a].live.last_error.as_deref(),
            Some("cannot open: Permission denied (os error 13)"),
            "a source's own reason does not repeat its name"
        );
        // an error counted elsewhere (a one-shot report's unreadable input)
        // is located all the same
        let mut report = IngestStats::default();
        let c = report.add_source("logs/c.jsonl".into(), "c.jsonl".into());
        report.sources[c].live.errors += 1;
        report.sources[c].live.last_error = Some("cannot open: gone".into());
        assert_eq!(
            report.live_totals().last_error.as_deref(),
            Some("logs/c.jsonl: cannot open: gone")
        );
        let json = serde_json::to_value(&total).unwrap_or_default();
        assert_eq!(json["errors"], 2);
        assert_eq!(
            json["last_error"],
            "logs/a.jsonl: cannot open: Permission denied (os error 13)"
        );
    }

    #[test]
    fn the_first_and_the_latest_rejected_lines_are_kept() {
        let mut stats = IngestStats::default();
        let source = stats.add_source("a.jsonl".into(), "a.jsonl".into());
        let total = 3 * MAX_REJECT_SAMPLES + 5;
        for line in 1..=total {
            stats.reject_at(
                source,
                format!("a.jsonl:{line}"),
                RejectKind::Malformed,
                "not JSON".into(),
            );
        }
        assert_eq!(stats.malformed, total as u64);
        let first: Vec<&str> = stats
            .malformed_samples
            .iter()
            .map(|r| r.location.as_str())
            .collect();
        assert_eq!(first.len(), MAX_REJECT_SAMPLES);
        assert_eq!(first[0], "a.jsonl:1");
        let latest: Vec<&str> = stats
            .latest_rejected
            .iter()
            .map(|r| r.location.as_str())
            .collect();
        assert_eq!(latest.len(), MAX_REJECT_SAMPLES);
        assert_eq!(
            latest[0],
            format!("a.jsonl:{}", total - MAX_REJECT_SAMPLES + 1)
        );
        assert_eq!(*latest.last().unwrap(), format!("a.jsonl:{total}"));
    }
}
