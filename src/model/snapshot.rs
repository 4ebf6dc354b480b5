//! An immutable, cheaply cloned view of the ledger that reports and views read.

use std::sync::Arc;

use super::counters::Counters;
use super::duplicates::DuplicateSummary;
use super::ledger::{KeyedAgg, Ledger, ModelAgg, RecentEvent, RunAgg};
use crate::types::event::Format;

/// Aggregate rows sorted by cost (highest first), then name.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub price_version: String,
    pub first_ts_ms: Option<i64>,
    pub last_ts_ms: Option<i64>,
    pub totals: Counters,
    pub budget_events: u64,
    pub run_ends: u64,
    pub by_agent: Vec<KeyedAgg>,
    pub by_segment: Vec<KeyedAgg>,
    pub by_user: Vec<KeyedAgg>,
    pub by_model: Vec<ModelAgg>,
    /// Input formats the counted calls were decoded from, in
    /// [`Format::ALL`] order (formats without calls left out).
    pub by_format: Vec<(Format, Counters)>,
    /// Highest cost first, then run id (only the first N when the snapshot
    /// was taken with a limit: see `runs_total`).
    pub runs: Vec<Arc<RunAgg>>,
    /// Runs in the ledger, listed in `runs` or not (evicted runs are not:
    /// see `runs_evicted`).
    pub runs_total: usize,
    /// Runs the ledger evicted past its cap (`LedgerConfig::max_runs`),
    /// and their calls: `runs` of an unlimited snapshot plus `evicted` make
    /// the totals (evicted calls stay in every other list).
    pub runs_evicted: u64,
    pub evicted: Counters,
    /// Rows of each `by_*` list folded into its last row, named
    /// [`OTHER`], when the snapshot was taken with a limit (0: none).
    pub folded: Folded,
    /// (minute since the epoch, counters), oldest first; empty in a
    /// [`Ledger::snapshot_top`] (reports do not print it).
    pub per_minute: Vec<(i64, Counters)>,
    /// (period label, counters), oldest first; empty unless grouping was asked for.
    pub periods: Vec<(String, Counters)>,
    /// Oldest first.
    pub recent: Vec<RecentEvent>,
    /// What the advisor says (attached by whoever keeps an
    /// [`Advisor`](super::advisor::Advisor): reports, live publications).
    pub advice: Option<std::sync::Arc<super::advisor::Advice>>,
    /// Duplicate prompts (`None` when no call carried a prompt print).
    pub duplicates: Option<Arc<DuplicateSummary>>,
}

/// The row that stands for the rest of a list: rows past a snapshot's
/// limit, labels past the ledger's cap.
pub const OTHER: &str = "(other)";

/// A name that is literally `(other)` (an agent, model, segment, user or
/// hop label so named), as the ledger and the metrics keep it: `(other)`
/// alone always means the rows folded together, never a name.
pub const OTHER_NAMED: &str = "\"(other)\"";

/// `name`, unless it is literally [`OTHER`]: then [`OTHER_NAMED`].
#[must_use]
pub fn not_other(name: &str) -> &str {
    if name == OTHER { OTHER_NAMED } else { name }
}

/// How many rows of each list a limited snapshot folded into its
/// [`OTHER`] row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folded {
    pub agents: usize,
    pub segments: usize,
    pub users: usize,
    pub models: usize,
}

/// Rows ahead of `b` come first: highest cost, then most tokens, then name.
fn ahead(a: (&Counters, &str), b: (&Counters, &str)) -> std::cmp::Ordering {
    b.0.cost
        .cmp(&a.0.cost)
        .then(b.0.total_tokens.cmp(&a.0.total_tokens))
        .then_with(|| a.1.cmp(b.1))
}

/// A row as [`top_rows`] ranks it; the greatest comes last by [`ahead`].
struct Ranked<'a>(usize, &'a Counters, &'a str);

impl PartialEq for Ranked<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Ranked<'_> {}

impl PartialOrd for Ranked<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        ahead((self.1, self.2), (other.1, other.2)).then(self.0.cmp(&other.0))
    }
}

/// What [`top_rows`] keeps: the rows, then how many were folded and their sum.
type Top<R> = (Vec<R>, usize, Counters);

/// The first `limit` rows (0: all) by [`ahead`], sorted, each copied by
/// `copy`; rows without calls left out. The rest are counted and summed.
///
/// A max-heap holds the `limit` best rows seen, the worst on top: one
/// comparison with it rejects almost every row, and only kept rows are
/// copied (a snapshot of a million agents copies `limit` of them).
fn top_rows<T, R>(
    rows: &[T],
    limit: usize,
    key: impl Fn(&T) -> (&Counters, &str),
    copy: impl Fn(&T) -> R,
) -> Top<R> {
    let live = || {
        rows.iter()
            .enumerate()
            .filter(|(_, r)| key(r).0.events > 0)
            .map(|(i, r)| {
                let (counters, name) = key(r);
                Ranked(i, counters, name)
            })
    };
    let mut kept: Vec<Ranked<'_>> = if limit == 0 {
        live().collect()
    } else {
        let mut heap = std::collections::BinaryHeap::with_capacity(limit + 1);
        for row in live() {
            if heap.len() < limit {
                heap.push(row);
            } else if let Some(mut worst) = heap.peek_mut()
                && row < *worst
            {
                *worst = row;
            }
        }
        heap.into_vec()
    };
    kept.sort_unstable();
    let mut rest = Counters::default();
    let mut folded = 0;
    if limit > 0 && kept.len() == limit {
        let mut is_kept = vec![false; rows.len()];
        for row in &kept {
            is_kept[row.0] = true;
        }
        for row in live().filter(|r| !is_kept[r.0]) {
            rest.merge(row.1);
            folded += 1;
        }
    }
    let rows = kept.iter().map(|r| copy(&rows[r.0])).collect();
    (rows, folded, rest)
}

/// How the dashboard and the reports name the calls without a segment.
pub const NO_SEGMENT: &str = "(none)";

impl Snapshot {
    /// The calls without a segment: the totals less every segment's row (the
    /// counters add exactly), so that `by_segment` plus this make the totals.
    #[must_use]
    pub fn unsegmented(&self) -> Counters {
        let mut rest = self.totals;
        for row in &self.by_segment {
            rest.unmerge(&row.counters);
        }
        rest
    }

    pub(crate) fn from_ledger(ledger: &Ledger, limits: Limits) -> Self {
        // Rows whose calls were all taken back (a call re-attributed) are
        // left out, like vacant runs.
        let mut folded = Folded::default();
        let keyed = |rows: &[KeyedAgg], count: &mut usize| {
            let (mut kept, n, rest) = top_rows(
                rows,
                limits.rows,
                |r| (&r.counters, &r.name),
                KeyedAgg::clone,
            );
            if n > 0 {
                *count = n;
                let mut counters = rest;
                // The ledger's own row of labels past its cap joins the rest.
                if let Some(i) = kept.iter().position(|r| &*r.name == OTHER) {
                    counters.merge(&kept.remove(i).counters);
                }
                kept.push(KeyedAgg {
                    name: Arc::from(OTHER),
                    counters,
                });
            }
            kept
        };
        let by_agent = keyed(&ledger.agents.rows, &mut folded.agents);
        let by_segment = keyed(&ledger.segments.rows, &mut folded.segments);
        let by_user = keyed(&ledger.users.rows, &mut folded.users);
        let (mut by_model, n, rest) = top_rows(
            &ledger.models.rows,
            limits.rows,
            |r| (&r.counters, &r.name),
            ModelAgg::clone,
        );
        if n > 0 {
            folded.models = n;
            let mut other = ModelAgg::other();
            other.counters = rest;
            if let Some(i) = by_model.iter().position(|r| &*r.name == OTHER) {
                other.counters.merge(&by_model.remove(i).counters);
            }
            by_model.push(other);
        }
        let runs = ledger.top_runs(limits.runs);
        let periods = match ledger.config().period {
            Some(spec) => ledger
                .periods
                .iter()
                .map(|(start, c)| (spec.label(*start), *c))
                .collect(),
            None => Vec::new(),
        };
        // Minutes being filled are kept apart from the map, never in both.
        let per_minute: Vec<(i64, Counters)> = if limits.per_minute {
            let mut series: Vec<(i64, Counters)> = ledger
                .minutes
                .iter()
                .map(|(m, c)| (*m, *c))
                .chain(ledger.open_minutes.iter().copied())
                .collect();
            if !ledger.open_minutes.is_empty() {
                series.sort_unstable_by_key(|(m, _)| *m);
            }
            series
        } else {
            Vec::new()
        };
        Snapshot {
            price_version: ledger.prices().version(),
            first_ts_ms: ledger.first_ts_ms,
            last_ts_ms: ledger.last_ts_ms,
            totals: ledger.totals,
            budget_events: ledger.budget_events,
            run_ends: ledger.run_ends,
            by_agent,
            by_segment,
            by_user,
            by_model,
            by_format: Format::ALL
                .into_iter()
                .zip(ledger.by_format)
                .filter(|(_, c)| c.events > 0)
                .collect(),
            runs,
            runs_total: ledger.runs_listed(),
            runs_evicted: ledger.runs_evicted,
            evicted: ledger.evicted,
            folded,
            per_minute,
            periods,
            recent: ledger.recent.iter().cloned().collect(),
            advice: None,
            duplicates: ledger.duplicates().map(Arc::new),
        }
    }
}

/// What a snapshot lists: the first `runs` runs and `rows` rows of each
/// `by_*` list (0: all), and whether the per-minute series is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub runs: usize,
    pub rows: usize,
    pub per_minute: bool,
}

impl Limits {
    /// Everything (what `report` prints from).
    pub const ALL: Limits = Limits {
        runs: 0,
        rows: 0,
        per_minute: true,
    };
}
