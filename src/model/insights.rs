//! Derived insights: which hops bleed, who the worst offenders are, run cost
//! percentiles (all time and in recent windows), per-agent hop-position
//! statistics, burn rate. Pure: computed from a [`Snapshot`] and thresholds,
//! once per snapshot (never per frame); what depends on the time of day takes
//! `now_ms` as an argument and reads only the small series prepared here.
//! The rules are specified in `docs/insights.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::ledger::{HopAgg, RunAgg, ahead_of_clock};
use super::snapshot::Snapshot;
use crate::pricing::PriceBook;
use crate::types::money::Usd;

mod bag;
mod index;
pub use bag::SortedBag;
pub use index::InsightsIndex;

/// Thresholds of the bleeding-hop rule (`[insights]` in the config file).
#[derive(Debug, Clone, PartialEq)]
pub struct BleedRules {
    /// History re-sent: the hop's input is at least this many times the run's first hop's.
    pub growth_over_first: f64,
    /// … and at least this many tokens …
    pub min_input_tokens: u64,
    /// … and at least this share of it is uncached (cached history is cheap).
    pub min_uncached_share: f64,
    /// The hop re-sends the previous hop's input: its own input is no more
    /// than this share smaller (system prompts differ between agents).
    pub resend_tolerance: f64,
    /// A hop taking at least this share of its run's cost …
    pub cost_share: f64,
    /// … in a run of at least this many hops.
    pub min_hops_for_share: usize,
    /// Input tokens per hop above which a hop is over budget (per-hop limit).
    pub per_hop_limit: Option<u64>,
}

impl Default for BleedRules {
    fn default() -> Self {
        BleedRules {
            growth_over_first: 3.0,
            min_input_tokens: 8_000,
            min_uncached_share: 0.5,
            resend_tolerance: 0.1,
            cost_share: 0.5,
            min_hops_for_share: 3,
            per_hop_limit: None,
        }
    }
}

/// Why a hop bleeds.
#[derive(Debug, Clone, PartialEq)]
pub enum BleedReason {
    /// The runtime enforced a budget at this hop (`budget_exceeded`).
    BudgetEnforced { limit_kind: String },
    /// Input above the per-hop limit.
    OverHopBudget { input: u64, limit: u64 },
    /// The whole conversation so far was sent again, uncached.
    HistoryResent {
        input: u64,
        times_first: f64,
        carried: u64,
    },
    /// One hop dominates its run's cost.
    CostShare { share: f64 },
}

impl BleedReason {
    /// Stable machine name (JSON `bleeding_reason.kind`).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            BleedReason::BudgetEnforced { .. } => "budget_enforced",
            BleedReason::OverHopBudget { .. } => "over_hop_budget",
            BleedReason::HistoryResent { .. } => "history_resent",
            BleedReason::CostShare { .. } => "cost_share",
        }
    }
}

impl fmt::Display for BleedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BleedReason::BudgetEnforced { limit_kind } => {
                write!(f, "runtime enforced a {limit_kind} budget")
            }
            BleedReason::OverHopBudget { input, limit } => {
                write!(f, "{input} input tokens over the per-hop limit of {limit}")
            }
            BleedReason::HistoryResent {
                input,
                times_first,
                carried,
            } => write!(
                f,
                "history re-sent: {input} input tokens ({times_first:.1}× the first hop), {carried} carried from earlier hops, mostly uncached"
            ),
            BleedReason::CostShare { share } => {
                write!(f, "{:.0}% of its run's cost", share * 100.0)
            }
        }
    }
}

/// `a` ÷ `b` (0 when `b` is zero).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Tokens of hop `index` carried over from earlier hops: when its input did
/// not shrink (by more than `resend_tolerance`) from the previous hop's, the
/// previous hop's whole input was sent again.
#[must_use]
pub fn carried_tokens(hops: &[HopAgg], index: usize, rules: &BleedRules) -> u64 {
    let Some(previous) = index.checked_sub(1).map(|p| &hops[p]) else {
        return 0;
    };
    let input = hops[index].usage.input_total();
    let before = previous.usage.input_total();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let floor = (before as f64 * (1.0 - rules.resend_tolerance)) as u64;
    if input >= floor { before.min(input) } else { 0 }
}

/// The runtime cut this hop's input down to a budget (`budget_exceeded` with
/// action `trim`): the hop shows the fix at work, not a leak. It is still
/// marked `budget_enforced` wherever hops are listed, but it is not counted
/// among bleeding hops nor ranked as an offender (`docs/insights.md`).
#[must_use]
pub fn trimmed_by_budget(hop: &HopAgg) -> bool {
    hop.budget_hit()
        .and_then(|hit| hit.action.as_deref())
        .is_some_and(|action| action.eq_ignore_ascii_case("trim"))
}

/// Why hop `index` of `run` bleeds, if it does (the first matching reason,
/// in the order of `docs/insights.md`).
#[must_use]
pub fn hop_bleeding(run: &RunAgg, index: usize, rules: &BleedRules) -> Option<BleedReason> {
    let hop = &run.hops[index];
    let input = hop.usage.input_total();
    if let Some(hit) = hop.budget_hit() {
        return Some(BleedReason::BudgetEnforced {
            limit_kind: hit.limit_kind.clone().unwrap_or_else(|| "budget".into()),
        });
    }
    if let Some(limit) = rules.per_hop_limit.filter(|&limit| input > limit) {
        return Some(BleedReason::OverHopBudget { input, limit });
    }
    if index > 0 {
        let first = run.hops[0].usage.input_total();
        let carried = carried_tokens(&run.hops, index, rules);
        let times_first = ratio(input, first);
        if carried > 0
            && input >= rules.min_input_tokens
            && times_first >= rules.growth_over_first
            && ratio(hop.usage.input_uncached, input) >= rules.min_uncached_share
        {
            return Some(BleedReason::HistoryResent {
                input,
                times_first,
                carried,
            });
        }
    }
    if run.hops.len() >= rules.min_hops_for_share && run.counters().cost > Usd::ZERO {
        let share = hop.cost.to_f64() / run.counters().cost.to_f64();
        if share >= rules.cost_share {
            return Some(BleedReason::CostShare { share });
        }
    }
    None
}

/// A hop position of an agent that bleeds across runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Offender {
    pub agent: Arc<str>,
    pub hop: u32,
    /// Runs in which this hop bled.
    pub runs: u64,
    /// Mean tokens carried from earlier hops.
    pub carried_tokens: u64,
    /// Mean cost of the hop in those runs.
    pub cost_per_run: Usd,
    /// Its cost summed over those runs.
    pub total_cost: Usd,
    /// The most common reason.
    pub reason: &'static str,
}

/// Median and 95th percentile (nearest rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spread<T> {
    pub median: T,
    pub p95: T,
}

fn spread<T: Copy + Ord + Default>(mut values: Vec<T>) -> Spread<T> {
    if values.is_empty() {
        return Spread::default();
    }
    values.sort_unstable();
    let rank = |p: usize| {
        values[((values.len() * p).div_ceil(100))
            .saturating_sub(1)
            .min(values.len() - 1)]
    };
    Spread {
        median: rank(50),
        p95: rank(95),
    }
}

/// Statistics of one hop position of one agent across runs.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionStats {
    pub hop: u32,
    pub runs: u64,
    pub input_tokens: Spread<u64>,
    pub cost: Spread<Usd>,
}

/// One run's place in time, for the windows over recent runs (in order of
/// start, then last event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunPoint {
    /// Its first event.
    pub start_ms: i64,
    /// Its last event.
    pub last_ms: i64,
    pub cost: Usd,
    /// A `run_end` was seen.
    pub ended: bool,
}

impl RunPoint {
    /// Finished at `now_ms`: it ended, or nothing came for [`SETTLED_AFTER_MS`].
    /// A run still in flight has paid for part of its hops only.
    #[must_use]
    pub fn settled(&self, now_ms: i64) -> bool {
        self.ended || now_ms.saturating_sub(self.last_ms) >= SETTLED_AFTER_MS
    }
}

/// A run without `run_end` counts as finished after this long without events.
pub const SETTLED_AFTER_MS: i64 = 60_000;

/// The first time the runtime was seen enforcing a limit (a `budget_exceeded`
/// with a (kind, limit) pair not seen before), at the time of the hop it
/// concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    pub at_ms: i64,
    pub limit_kind: Option<String>,
    pub limit: Option<u64>,
}

/// How far back [`Insights::recent_spend`] reaches from the last event.
pub const RECENT_SPEND_MS: i64 = 60 * 60_000;

/// Everything derived from one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Insights {
    /// Per run (same order as `Snapshot::runs`): the bleeding hops' indexes
    /// and reasons, hops trimmed by a budget included (marked `budget_enforced`).
    pub bleeding: Vec<Arc<[(usize, BleedReason)]>>,
    /// Bleeding hops, not counting those a budget trimmed (the fix, not the leak).
    pub bleeding_hops: u64,
    /// Hops a budget trimmed ([`trimmed_by_budget`]).
    pub trimmed_hops: u64,
    /// Worst first: by total cost. Hops trimmed by a budget are left out.
    pub offenders: Vec<Offender>,
    /// Cost and token multiplier per run (runs with at least one hop).
    pub run_cost: Spread<Usd>,
    pub run_multiplier: Spread<u64>,
    /// Context growth per run (last hop input ÷ first hop input, ×100 for
    /// ordering like the multiplier; runs whose first hop has input).
    pub run_growth: Spread<u64>,
    /// Runs with at least one hop and a timestamp, by start (oldest first).
    /// Shared with the index that keeps them, not copied per publication.
    pub run_points: SortedBag<RunPoint>,
    /// Their costs, cheapest first: the distribution of the runs finished
    /// by the last event (ended, or without events for [`SETTLED_AFTER_MS`])
    /// is this without the [`Insights::unfinished`] ones
    /// ([`Insights::finished_costs`]).
    pub run_costs: SortedBag<Usd>,
    /// Runs not finished by the last event (in flight then): they join the
    /// distribution once finished at the time it is drawn.
    pub unfinished: Vec<RunPoint>,
    /// How long runs take: the 95th percentile of the duration (first to
    /// last event) of the runs finished by the last event (0 without any).
    pub run_lag_ms: i64,
    /// Spend per second over the [`RECENT_SPEND_MS`] up to the last event,
    /// by the time of each hop's first call (seconds since the epoch, oldest
    /// first, seconds without spend left out).
    pub recent_spend: Vec<(i64, Usd)>,
    /// The first and last event of the snapshot (epoch ms) not timed ahead
    /// of the clock the insights were computed at ([`ahead_of_clock`]: a
    /// wrong agent clock, a span dated 2200): the present, on which the
    /// burn rate, the burn chart and the finished runs are anchored.
    pub first_ts_ms: Option<i64>,
    pub last_ts_ms: Option<i64>,
    /// Limits the runtime enforced, oldest first (see [`Enforcement`]).
    pub enforcements: Vec<Enforcement>,
    /// Per agent (name order): hop-position statistics.
    pub positions: BTreeMap<Arc<str>, Vec<PositionStats>>,
    /// Dollars saved by cache reads versus paying input price for them.
    pub cache_savings: Usd,
    /// Cost of hidden reasoning tokens (at output prices).
    pub reasoning_cost: Usd,
    /// The rules these insights were derived with (the config's, so views
    /// judge a hop as the insights did).
    pub rules: BleedRules,
}

impl Insights {
    /// Derives insights; `prices` values cache savings and reasoning cost.
    /// `clock_ms` is the caller's clock (epoch ms; the model reads none):
    /// events timed more than [`FUTURE_MINUTES`](super::ledger::FUTURE_MINUTES)
    /// after it do not move what is anchored on the newest event (burn rate,
    /// recent spend, finished runs) into the future; they are in every
    /// other figure. `None`: no clock, every event is of the present.
    /// One pass over the runs; [`InsightsIndex`] keeps the same up to date
    /// as runs change.
    #[must_use]
    pub fn compute(
        snapshot: &Snapshot,
        rules: &BleedRules,
        prices: &PriceBook,
        clock_ms: Option<i64>,
    ) -> Insights {
        let mut index = InsightsIndex::new(rules.clone());
        for (slot, run) in snapshot.runs.iter().enumerate() {
            index.add(slot, run.clone());
        }
        index.insights(snapshot, prices, clock_ms)
    }

    /// The cost of the runs finished by the last event, cheapest first (a
    /// copy: [`cost_histogram`] reads the distribution without one).
    #[must_use]
    pub fn finished_costs(&self) -> Vec<Usd> {
        let mut unfinished: Vec<Usd> = self.unfinished.iter().map(|p| p.cost).collect();
        unfinished.sort_unstable();
        let mut taken = unfinished.iter().peekable();
        self.run_costs
            .iter()
            .filter(|c| {
                let skip = taken.peek().is_some_and(|t| *t == c);
                if skip {
                    taken.next();
                }
                !skip
            })
            .collect()
    }

    /// Multiplier spread as a ratio (stored ×100 for ordering).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn multiplier(value: u64) -> f64 {
        value as f64 / 100.0
    }
}

/// The newest event of `snapshot` not timed ahead of the clock `clock_ms`
/// ([`ahead_of_clock`], the rule of the per-minute series): the snapshot's
/// last event, unless that is in the future (then the newest time of a run
/// or hop that is not; events outside runs are not looked at).
fn newest_present(snapshot: &Snapshot, clock_ms: Option<i64>) -> Option<i64> {
    let clock_minute = clock_ms.map(|now| now.div_euclid(60_000));
    let present = |ts: &i64| clock_minute.is_none_or(|now| !ahead_of_clock(*ts, now));
    let last = snapshot.last_ts_ms?;
    if present(&last) {
        return Some(last);
    }
    snapshot
        .runs
        .iter()
        .flat_map(|run| {
            [run.first_ts_ms, run.last_ts_ms]
                .into_iter()
                .chain(run.hops.iter().map(|hop| hop.first_ts_ms))
                .flatten()
        })
        .filter(present)
        .max()
}

/// Spend over one window ending now, and the part of it actually observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurnRate {
    /// The window asked for.
    pub window_ms: i64,
    /// The part of it covered by data: from the first event (at most the
    /// window, at least a second).
    pub observed_ms: i64,
    pub spend: Usd,
}

impl BurnRate {
    /// Spend per minute over the observed time.
    #[must_use]
    pub fn per_minute(&self) -> Usd {
        Usd::from_picos(self.spend.picos() * 60_000 / i128::from(self.observed_ms.max(1)))
    }

    /// Less was observed than the window asked for.
    #[must_use]
    pub fn partial(&self) -> bool {
        self.observed_ms < self.window_ms
    }
}

/// Where burn windows end: now, or the last event when it is stamped later
/// than the clock (a skewed source, by at most
/// [`FUTURE_MINUTES`](super::ledger::FUTURE_MINUTES): see
/// [`Insights::last_ts_ms`]).
fn burn_end(insights: &Insights, now_ms: i64) -> i64 {
    insights.last_ts_ms.map_or(now_ms, |last| last.max(now_ms))
}

/// Spend in the seconds `[from_s, to_s)` of the recent series.
fn spend_between(series: &[(i64, Usd)], from_s: i64, to_s: i64) -> Usd {
    let start = series.partition_point(|(s, _)| *s < from_s);
    series[start..]
        .iter()
        .take_while(|(s, _)| *s < to_s)
        .map(|(_, c)| *c)
        .sum()
}

/// Spend over the last `window_ms` before `now_ms` (each at most
/// [`RECENT_SPEND_MS`]), as a rate over the time actually observed: a
/// dashboard that has seen 11 seconds of data divides by 11 seconds, not by
/// the window. `None` without timestamped events.
#[must_use]
pub fn burn_rate(insights: &Insights, now_ms: i64, window_ms: i64) -> Option<BurnRate> {
    let first = insights.first_ts_ms?;
    let window_ms = window_ms.clamp(1_000, RECENT_SPEND_MS);
    let end = burn_end(insights, now_ms);
    // whole seconds: the second of `end` is included
    let to_s = end.div_euclid(1_000) + 1;
    let from_s = to_s - window_ms / 1_000;
    let observed_ms = (end - first).clamp(1_000, window_ms);
    Some(BurnRate {
        window_ms,
        observed_ms,
        spend: spend_between(&insights.recent_spend, from_s, to_s),
    })
}

/// Spend per bucket of `bucket_ms` (a whole number of seconds), `buckets`
/// of them ending now (oldest first), from the recent series: the burn chart.
#[must_use]
pub fn burn_series(insights: &Insights, now_ms: i64, bucket_ms: i64, buckets: usize) -> Vec<Usd> {
    let step = (bucket_ms / 1_000).max(1);
    let to_s = burn_end(insights, now_ms).div_euclid(1_000) + 1;
    let n = i64::try_from(buckets).unwrap_or(0);
    (0..n)
        .map(|i| {
            let from = to_s - (n - i) * step;
            spend_between(&insights.recent_spend, from, from + step)
        })
        .collect()
}

/// Cost per run over a set of finished runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostWindow {
    /// Finished runs counted.
    pub runs: usize,
    /// Runs of the window still in flight (left out: they paid for part of their hops).
    pub in_flight: usize,
    pub cost: Spread<Usd>,
    /// Total cost ÷ runs, exact to the picodollar (rounded down): with two
    /// kinds of runs (a naive and a lean team) the median sits on one hump or
    /// the other, the mean is what a run costs on average.
    pub mean: Usd,
}

/// The newest `limit` runs of `newest_first` that `judged` accepts; the
/// others met on the way are counted as in flight.
fn cost_window<'a>(
    newest_first: impl Iterator<Item = &'a RunPoint>,
    judged: impl Fn(&RunPoint) -> bool,
    limit: usize,
) -> CostWindow {
    let mut in_flight = 0;
    let mut costs = Vec::new();
    for p in newest_first {
        if costs.len() == limit {
            break;
        }
        if judged(p) {
            costs.push(p.cost);
        } else {
            in_flight += 1;
        }
    }
    let total: Usd = costs.iter().copied().sum();
    let mean = match i128::try_from(costs.len()) {
        Ok(n) if n > 0 => Usd::from_picos(total.picos() / n),
        _ => Usd::ZERO,
    };
    CostWindow {
        runs: costs.len(),
        in_flight,
        cost: spread(costs),
        mean,
    }
}

/// Cost per run before and after a budget change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinceChange {
    pub at_ms: i64,
    /// Finished runs that started at or after the change.
    pub since: CostWindow,
    /// The last [`RECENT_RUNS`] runs that finished before it (runs that
    /// spanned the change are in neither).
    pub before: CostWindow,
}

/// Cost per run in recent windows (`docs/insights.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecentRunCost {
    /// Runs started in the last [`RECENT_WINDOW_MS`].
    pub last_minutes: CostWindow,
    /// The last [`RECENT_RUNS`] finished runs (by start).
    pub last_runs: CostWindow,
    /// After the last budget change, when there was one.
    pub since_change: Option<SinceChange>,
}

/// The recent time window of [`RecentRunCost`]: 5 minutes.
pub const RECENT_WINDOW_MS: i64 = 5 * 60_000;
/// The recent run count of [`RecentRunCost`].
pub const RECENT_RUNS: usize = 50;

/// Cost per run of finished runs: started in the last five minutes, the last
/// fifty, and since `change_ms` (the last budget change) against before it.
///
/// Runs that finish early are the short ones, often the cheap ones: a window
/// holding only the runs that happen to have finished would favour them. So
/// a run is judged only once it is finished *and* started at least
/// [`Insights::run_lag_ms`] (how long runs take) before now; younger runs
/// count as in flight. Before a change, the runs judged are those that
/// started that long before it and finished before it.
#[must_use]
pub fn recent_run_cost(insights: &Insights, now_ms: i64, change_ms: Option<i64>) -> RecentRunCost {
    let points = &insights.run_points;
    let lag = insights.run_lag_ms;
    let all = points.len();
    let judged = |p: &RunPoint| p.settled(now_ms) && p.start_ms <= now_ms - lag;
    let recent_from = points.partition_point(|p| p.start_ms < now_ms - RECENT_WINDOW_MS);
    let since_change = change_ms.map(|at_ms| {
        let split = points.partition_point(|p| p.start_ms < at_ms);
        SinceChange {
            at_ms,
            since: cost_window(points.range(split, all).rev(), judged, usize::MAX),
            before: cost_window(
                points
                    .range(0, split)
                    .rev()
                    .filter(|p| p.last_ms < at_ms && p.start_ms <= at_ms - lag),
                |_| true,
                RECENT_RUNS,
            ),
        }
    });
    RecentRunCost {
        last_minutes: cost_window(points.range(recent_from, all).rev(), judged, usize::MAX),
        last_runs: cost_window(points.range(0, all).rev(), judged, RECENT_RUNS),
        since_change,
    }
}

/// Run costs bucketed on a logarithmic scale: the naive and the lean runs
/// of a workload, a factor of ten apart, show as two humps.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Lower edge of the first bucket, upper edge of the last (the cheapest
    /// and the dearest run above zero).
    pub low: Usd,
    pub high: Usd,
    /// Runs per bucket; runs that cost nothing are in the first.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// The edge between bucket `i - 1` and `i` (0 ..= buckets).
    #[must_use]
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    pub fn edge(&self, i: usize) -> Usd {
        if i == 0 {
            return self.low;
        }
        if i >= self.counts.len() {
            return self.high;
        }
        let (lo, hi) = (self.low.picos() as f64, self.high.picos() as f64);
        let ratio = i as f64 / self.counts.len() as f64;
        Usd::from_picos((lo * (hi / lo).powf(ratio)).round() as i128)
    }
}

/// The distribution of `costs` without `left_out` (sorted, one cost of
/// `costs` for each: the runs [`Insights::run_costs`] holds that are still
/// in flight when it is drawn) in `buckets` logarithmic buckets from the
/// cheapest to the dearest cost above zero (a bucket holds its lower edge;
/// the last one also its upper edge). O(buckets × (chunks + log runs)): drawn
/// per frame. `None` without a cost above zero.
#[must_use]
pub fn cost_histogram(
    costs: &SortedBag<Usd>,
    left_out: &[Usd],
    buckets: usize,
) -> Option<Histogram> {
    let buckets = buckets.max(1);
    let remaining = costs.len().checked_sub(left_out.len())?;
    // counts of `costs` less those left out below a value (saturating:
    // a cost left out that `costs` lacks is not a run to take back)
    let below = |pred: &dyn Fn(&Usd) -> bool| {
        costs
            .partition_point(pred)
            .saturating_sub(left_out.partition_point(pred))
    };
    let free = below(&|c| *c <= Usd::ZERO);
    let low = costs.nth_without(free, left_out)?;
    let high = costs.nth_without(remaining.checked_sub(1)?, left_out)?;
    let mut histogram = Histogram {
        low,
        high,
        counts: vec![0; buckets],
    };
    let mut from = 0;
    for i in 0..buckets {
        let to = if i + 1 == buckets {
            remaining
        } else {
            let edge = histogram.edge(i + 1);
            below(&|c| *c < edge)
        };
        histogram.counts[i] = (to.max(from) - from) as u64;
        from = to.max(from);
    }
    Some(histogram)
}

#[cfg(test)]
mod tests;
