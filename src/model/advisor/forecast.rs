//! Where a live run is heading: from its per-hop growth so far, the tokens
//! and dollars at the end of the loop and the hop at which it crosses its
//! run limit (`docs/insights.md`, "Run forecast").

use serde::Serialize;

use crate::model::ledger::{HopAgg, RunAgg};
use crate::pricing::ModelPrice;
use crate::types::money::Usd;
use crate::types::usage::Usage;

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
    /// Tokens (input + output) and dollars at the end (projected hops priced
    /// at the last hop's model, with its share of cache reads).
    pub tokens: u64,
    pub cost: Usd,
    /// The hop at which the run's tokens pass `token_limit`, and its cost
    /// passes `cost_limit` (already passed: a hop seen).
    pub crosses_token_limit_at: Option<u32>,
    /// The projected hops were priced (the last hop's model has a price).
    #[serde(skip)]
    pub priced: bool,
    pub crosses_cost_limit_at: Option<u32>,
}

/// The forecast of `run` for a loop of `expected_hops` hops; `None` for a
/// run with fewer than two hops (no growth to read yet). Projected hops are
/// priced at `price` (the model of the run's last hop) with that hop's
/// share of cache reads; without a price the projected dollars are the
/// dollars seen (and `priced` is false).
#[must_use]
pub fn forecast(
    run: &RunAgg,
    expected_hops: u32,
    token_limit: Option<u64>,
    cost_limit: Option<Usd>,
    price: Option<&ModelPrice>,
) -> Option<Forecast> {
    let hops = &run.hops;
    if hops.len() < 2 {
        return None;
    }
    let seen = u32::try_from(hops.len()).unwrap_or(u32::MAX);
    let per_call = |h: &HopAgg| h.usage.input_total() / u64::from(h.calls.max(1));
    let first = i64::try_from(per_call(&hops[0])).unwrap_or(i64::MAX);
    let last_hop = &hops[hops.len() - 1];
    let last = i64::try_from(per_call(last_hop)).unwrap_or(i64::MAX);
    let growth = (last - first) / i64::from(seen - 1);
    let counters = run.counters();
    let mean_output = counters.output_tokens / u64::from(seen);
    let last_input = last_hop.usage.input_total();
    let mut tokens = 0_u64;
    let mut cost = Usd::ZERO;
    let mut crosses_tokens = None;
    let mut crosses_cost = None;
    let mut passed = |tokens: u64, cost: Usd, position: u32| {
        if crosses_tokens.is_none() && token_limit.is_some_and(|l| tokens > l) {
            crosses_tokens = Some(position);
        }
        if crosses_cost.is_none() && cost_limit.is_some_and(|l| cost > l) {
            crosses_cost = Some(position);
        }
    };
    for h in hops.iter() {
        tokens += h.usage.total();
        cost += h.cost;
        passed(tokens, cost, h.hop);
    }
    let expected = expected_hops.max(seen);
    for step in 1..=(expected - seen) {
        let input = u64::try_from(last + growth * i64::from(step)).unwrap_or(0);
        tokens += input + mean_output;
        if let Some(price) = price {
            let cached = (input * last_hop.usage.cache_read)
                .checked_div(last_input)
                .unwrap_or(0);
            let usage = Usage {
                input_uncached: input - cached,
                cache_read: cached,
                output: mean_output,
                ..Usage::default()
            };
            cost += super::whatif::cost(price, &usage, 1);
        }
        passed(tokens, cost, last_hop.hop + step);
    }
    Some(Forecast {
        hops_seen: seen,
        hops_expected: expected,
        input_growth_per_hop: growth,
        tokens,
        cost,
        priced: price.is_some(),
        crosses_token_limit_at: crosses_tokens,
        crosses_cost_limit_at: crosses_cost,
    })
}
