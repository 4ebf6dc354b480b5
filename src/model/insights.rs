//! Derived insights: which hops bleed, who the worst offenders are, run cost
//! percentiles, per-agent hop-position statistics, burn rate. Pure: computed
//! from a [`Snapshot`] and thresholds, once per snapshot (never per frame).
//! The rules are specified in `docs/insights.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::ledger::{HopAgg, RunAgg};
use super::snapshot::Snapshot;
use crate::pricing::PriceBook;
use crate::types::money::Usd;

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

#[allow(clippy::cast_precision_loss)]
fn ratio(a: u64, b: u64) -> f64 {
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

/// Why hop `index` of `run` bleeds, if it does (the first matching reason,
/// in the order of `docs/insights.md`).
#[must_use]
pub fn hop_bleeding(run: &RunAgg, index: usize, rules: &BleedRules) -> Option<BleedReason> {
    let hop = &run.hops[index];
    let input = hop.usage.input_total();
    if let Some(hit) = &hop.budget_hit {
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
    if run.hops.len() >= rules.min_hops_for_share && run.counters.cost > Usd::ZERO {
        let share = hop.cost.to_f64() / run.counters.cost.to_f64();
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
#[derive(Debug, Clone, Copy, Default, PartialEq)]
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

/// Everything derived from one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Insights {
    /// Per run (same order as `Snapshot::runs`): the bleeding hops' indexes and reasons.
    pub bleeding: Vec<Vec<(usize, BleedReason)>>,
    pub bleeding_hops: u64,
    /// Worst first: by total cost.
    pub offenders: Vec<Offender>,
    /// Cost and token multiplier per run (runs with at least one hop).
    pub run_cost: Spread<Usd>,
    pub run_multiplier: Spread<u64>,
    /// Per agent (name order): hop-position statistics.
    pub positions: BTreeMap<Arc<str>, Vec<PositionStats>>,
    /// Dollars saved by cache reads versus paying input price for them.
    pub cache_savings: Usd,
    /// Cost of hidden reasoning tokens (at output prices).
    pub reasoning_cost: Usd,
}

/// Runs, carried tokens, cost and reason counts of one (agent, hop) while summing.
type OffenderSums = (u64, u64, Usd, BTreeMap<&'static str, u64>);
/// Input tokens and costs of one (agent, hop) across runs.
type PositionSamples = (Vec<u64>, Vec<Usd>);

impl Insights {
    /// Derives insights; `prices` values cache savings and reasoning cost.
    #[must_use]
    pub fn compute(snapshot: &Snapshot, rules: &BleedRules, prices: &PriceBook) -> Insights {
        let mut insights = Insights::default();
        let mut offenders: BTreeMap<(Arc<str>, u32), OffenderSums> = BTreeMap::new();
        let mut positions: BTreeMap<(Arc<str>, u32), PositionSamples> = BTreeMap::new();
        let mut run_costs = Vec::with_capacity(snapshot.runs.len());
        let mut multipliers = Vec::with_capacity(snapshot.runs.len());
        for run in &snapshot.runs {
            let mut bleeding = Vec::new();
            for (index, hop) in run.hops.iter().enumerate() {
                let entry = positions.entry((hop.agent.clone(), hop.hop)).or_default();
                entry.0.push(hop.usage.input_total());
                entry.1.push(hop.cost);
                if let Some(reason) = hop_bleeding(run, index, rules) {
                    let slot = offenders.entry((hop.agent.clone(), hop.hop)).or_default();
                    slot.0 += 1;
                    slot.1 += carried_tokens(&run.hops, index, rules);
                    slot.2 += hop.cost;
                    *slot.3.entry(reason.code()).or_default() += 1;
                    bleeding.push((index, reason));
                }
            }
            insights.bleeding_hops += bleeding.len() as u64;
            insights.bleeding.push(bleeding);
            if !run.hops.is_empty() {
                run_costs.push(run.counters.cost);
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                multipliers.push((run.multiplier().unwrap_or(1.0) * 100.0).round() as u64);
            }
        }
        insights.run_cost = spread(run_costs);
        insights.run_multiplier = spread(multipliers);
        let mut offenders: Vec<Offender> = offenders
            .into_iter()
            .map(|((agent, hop), (runs, carried, total, reasons))| Offender {
                agent,
                hop,
                runs,
                carried_tokens: carried / runs.max(1),
                cost_per_run: Usd::from_picos(total.picos() / i128::from(runs.max(1))),
                total_cost: total,
                reason: reasons
                    .into_iter()
                    .max_by_key(|(_, n)| *n)
                    .map_or("", |(r, _)| r),
            })
            .collect();
        offenders.sort_by(|a, b| {
            b.total_cost
                .cmp(&a.total_cost)
                .then(b.runs.cmp(&a.runs))
                .then(a.hop.cmp(&b.hop))
        });
        insights.offenders = offenders;
        for ((agent, hop), (inputs, costs)) in positions {
            let runs = inputs.len() as u64;
            insights
                .positions
                .entry(agent)
                .or_default()
                .push(PositionStats {
                    hop,
                    runs,
                    input_tokens: spread(inputs),
                    cost: spread(costs),
                });
        }
        for model in &snapshot.by_model {
            if let Some(price) = prices.resolve(&model.name) {
                // Standard rates: long-context premiums scale both sides alike.
                let rates = prices.model(price).rates;
                let c = &model.counters;
                insights.cache_savings += Usd::for_tokens(c.cache_read_tokens, rates.input)
                    .saturating_sub(Usd::for_tokens(c.cache_read_tokens, rates.cache_read));
                insights.reasoning_cost += Usd::for_tokens(c.reasoning_tokens, rates.output);
            }
        }
        insights
    }

    /// Multiplier spread as a ratio (stored ×100 for ordering).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn multiplier(value: u64) -> f64 {
        value as f64 / 100.0
    }
}

/// Spend per minute over the last `minutes` minutes ending at `now_minute`
/// (oldest first), for sparklines and burn rate.
#[must_use]
pub fn burn_per_minute(snapshot: &Snapshot, now_minute: i64, minutes: usize) -> Vec<Usd> {
    let start = now_minute - i64::try_from(minutes).unwrap_or(0) + 1;
    let mut out = vec![Usd::ZERO; minutes];
    for (minute, counters) in snapshot.per_minute.iter().rev() {
        if *minute < start {
            break;
        }
        if let Some(slot) = usize::try_from(*minute - start)
            .ok()
            .and_then(|i| out.get_mut(i))
        {
            *slot += counters.cost;
        }
    }
    out
}

#[cfg(test)]
mod tests;
