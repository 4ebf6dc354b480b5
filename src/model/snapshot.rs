//! An immutable, cheaply cloned view of the ledger that reports and views read.

use std::sync::Arc;

use super::counters::Counters;
use super::ledger::{KeyedAgg, Ledger, ModelAgg, RecentEvent, RunAgg, VACANT};
use crate::types::event::Format;
use crate::types::money::Usd;

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
    /// Runs in the ledger, listed in `runs` or not.
    pub runs_total: usize,
    /// (minute since the epoch, counters), oldest first; empty in a
    /// [`Ledger::snapshot_top`] (reports do not print it).
    pub per_minute: Vec<(i64, Counters)>,
    /// (period label, counters), oldest first; empty unless grouping was asked for.
    pub periods: Vec<(String, Counters)>,
    /// Oldest first.
    pub recent: Vec<RecentEvent>,
}

/// Highest cost, then most tokens, then run id; then the run's position.
type RunKey<'a> = (std::cmp::Reverse<(Usd, u64)>, &'a str, usize);

fn by_cost_then_name<T>(rows: &mut [T], key: impl Fn(&T) -> (&Counters, &str)) {
    rows.sort_by(|a, b| {
        let (ca, na) = key(a);
        let (cb, nb) = key(b);
        cb.cost
            .cmp(&ca.cost)
            .then(cb.total_tokens.cmp(&ca.total_tokens))
            .then_with(|| na.cmp(nb))
    });
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

    /// `run_limit` keeps only the most expensive runs (0 keeps all): live
    /// JSON snapshots list a few, and selecting them is O(runs) where
    /// sorting every run is O(runs log runs).
    /// `per_minute: false` leaves the burn series out (weeks of history are
    /// tens of thousands of minutes, copied for nothing when only printed
    /// totals are wanted).
    pub(crate) fn from_ledger<'a>(ledger: &'a Ledger, run_limit: usize, per_minute: bool) -> Self {
        // Rows whose calls were all taken back (a call re-attributed) are
        // left out, like vacant runs.
        let keyed = |rows: &[KeyedAgg]| {
            let mut rows: Vec<KeyedAgg> = rows
                .iter()
                .filter(|r| r.counters.events > 0)
                .cloned()
                .collect();
            by_cost_then_name(&mut rows, |r| (&r.counters, &r.name));
            rows
        };
        let mut by_model: Vec<ModelAgg> = ledger
            .models
            .rows
            .iter()
            .filter(|m| m.counters.events > 0)
            .cloned()
            .collect();
        by_cost_then_name(&mut by_model, |r| (&r.counters, &r.name));
        // Ranks come from the ledger's compact (cost, tokens) column; a
        // run's id is read only for runs that are kept.
        let key = |i: usize, (cost, tokens): (Usd, u64)| -> RunKey<'a> {
            (
                std::cmp::Reverse((cost, tokens)),
                &*ledger.runs.rows[i].run_id,
                i,
            )
        };
        let ranks = ledger.run_rank.iter().copied().enumerate();
        // Run ids are unique, so the order is total: an unstable sort (and
        // the selection) is exact.
        let mut order: Vec<RunKey<'_>> = if run_limit > 0 && run_limit < ledger.runs.rows.len() {
            // Keep the `run_limit` first keys in a max-heap: one comparison
            // with its top rejects almost every run, and nothing is
            // allocated per run.
            let mut top: std::collections::BinaryHeap<RunKey<'_>> =
                std::collections::BinaryHeap::with_capacity(run_limit + 1);
            for (i, rank) in ranks {
                if top.len() < run_limit {
                    top.push(key(i, rank));
                } else if let Some(mut worst) = top.peek_mut()
                    && std::cmp::Reverse(rank) <= worst.0
                {
                    let candidate = key(i, rank);
                    if candidate < *worst {
                        *worst = candidate;
                    }
                }
            }
            top.into_vec()
        } else {
            ranks.map(|(i, rank)| key(i, rank)).collect()
        };
        order.sort_unstable();
        let runs: Vec<Arc<RunAgg>> = order
            .iter()
            .filter(|&&(_, _, i)| ledger.run_rank[i] != VACANT)
            .map(|&(_, _, i)| ledger.runs.rows[i].clone())
            .collect();
        let periods = match ledger.config().period {
            Some(spec) => ledger
                .periods
                .iter()
                .map(|(start, c)| (spec.label(*start), *c))
                .collect(),
            None => Vec::new(),
        };
        // Minutes being filled are kept apart from the map, never in both.
        let per_minute: Vec<(i64, Counters)> = if per_minute {
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
            by_agent: keyed(&ledger.agents.rows),
            by_segment: keyed(&ledger.segments.rows),
            by_user: keyed(&ledger.users.rows),
            by_model,
            by_format: Format::ALL
                .into_iter()
                .zip(ledger.by_format)
                .filter(|(_, c)| c.events > 0)
                .collect(),
            runs,
            runs_total: ledger.runs.rows.len() - ledger.vacant_runs,
            per_minute,
            periods,
            recent: ledger.recent.iter().cloned().collect(),
        }
    }
}
