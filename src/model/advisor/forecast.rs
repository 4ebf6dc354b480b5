//! Where a live run is heading: from its per-hop growth so far, the tokens
//! and dollars at the end of the loop and the hop at which it crosses its
//! run limit (`docs/insights.md`, "Run forecast").

use serde::Serialize;

use crate::model::ledger::RunAgg;
use crate::types::money::Usd;

/// A run's projected end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Forecast {
    pub hops_seen: u32,
    /// The loop's expected length: the median hop count of finished runs
    /// (at least the hops seen).
    pub hops_expected: u32,
    /// Input tokens added per hop so far (a straight line from the first
    /// hop to the last, per call).
    pub input_growth_per_hop: i64,
    /// Tokens (input + output) and dollars at the end.
    pub tokens: u64,
    pub cost: Usd,
    /// The hop at which the run's tokens pass `token_limit`, and its cost
    /// passes `cost_limit` (already passed: a hop seen).
    pub crosses_token_limit_at: Option<u32>,
    pub crosses_cost_limit_at: Option<u32>,
}

/// The forecast of `run` for a loop of `expected_hops` hops; `None` for a
/// run with fewer than two hops (no growth to read yet).
#[must_use]
pub fn forecast(
    run: &RunAgg,
    expected_hops: u32,
    token_limit: Option<u64>,
    cost_limit: Option<Usd>,
) -> Option<Forecast> {
    let hops = &run.hops;
    if hops.len() < 2 {
        return None;
    }
    let seen = u32::try_from(hops.len()).unwrap_or(u32::MAX);
    let per_call = |h: &crate::model::ledger::HopAgg| {
        i64::try_from(h.usage.input_total() / u64::from(h.calls.max(1))).unwrap_or(i64::MAX)
    };
    let first = per_call(&hops[0]);
    let last = per_call(&hops[hops.len() - 1]);
    let growth = (last - first) / i64::from(seen - 1);
    let counters = run.counters();
    let input_seen = counters.input_tokens;
    let output_seen = counters.output_tokens;
    // dollars per token as paid so far, input and output apart
    let output_cost: Usd = hops
        .iter()
        .map(|h| {
            if h.usage.total() == 0 {
                Usd::ZERO
            } else {
                Usd::from_picos(
                    h.cost.picos() * i128::from(h.usage.output) / i128::from(h.usage.total()),
                )
            }
        })
        .sum();
    let input_cost = counters.cost.saturating_sub(output_cost);
    let mean_output = output_seen / u64::from(seen);
    let mut tokens = counters.total_tokens;
    let mut cost = counters.cost;
    let mut crosses_tokens = None;
    let mut crosses_cost = None;
    // crossings among the hops seen
    let mut running_tokens = 0_u64;
    let mut running_cost = Usd::ZERO;
    for h in hops.iter() {
        running_tokens += h.usage.total();
        running_cost += h.cost;
        if crosses_tokens.is_none() && token_limit.is_some_and(|l| running_tokens > l) {
            crosses_tokens = Some(h.hop);
        }
        if crosses_cost.is_none() && cost_limit.is_some_and(|l| running_cost > l) {
            crosses_cost = Some(h.hop);
        }
    }
    let expected = expected_hops.max(seen);
    let last_position = hops[hops.len() - 1].hop;
    for step in 1..=(expected - seen) {
        let input = u64::try_from(last + growth * i64::from(step)).unwrap_or(0);
        let hop_tokens = input + mean_output;
        let hop_cost =
            scale(input_cost, input, input_seen) + scale(output_cost, mean_output, output_seen);
        tokens += hop_tokens;
        cost += hop_cost;
        let position = last_position + step;
        if crosses_tokens.is_none() && token_limit.is_some_and(|l| tokens > l) {
            crosses_tokens = Some(position);
        }
        if crosses_cost.is_none() && cost_limit.is_some_and(|l| cost > l) {
            crosses_cost = Some(position);
        }
    }
    Some(Forecast {
        hops_seen: seen,
        hops_expected: expected,
        input_growth_per_hop: growth,
        tokens,
        cost,
        crosses_token_limit_at: crosses_tokens,
        crosses_cost_limit_at: crosses_cost,
    })
}

fn scale(usd: Usd, part: u64, whole: u64) -> Usd {
    if whole == 0 {
        Usd::ZERO
    } else {
        Usd::from_picos(usd.picos() * i128::from(part) / i128::from(whole))
    }
}
