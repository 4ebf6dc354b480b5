//! One run, hop by hop, re-priced as it would be with each lever applied:
//! routing, trimming carried context, caching the carried prefix — alone
//! and all together. Pure arithmetic on a run's hops (`docs/insights.md`,
//! "Advisor").

use std::sync::Arc;

use super::rules::{AdvisorRules, Candidates, RouteTarget};
use crate::model::insights::{BleedRules, carried_tokens};
use crate::model::ledger::{HopAgg, RunAgg};
use crate::pricing::{ModelPrice, Rates};
use crate::types::money::Usd;
use crate::types::usage::Usage;

/// What the hops' models cost: resolved once per model name by the caller.
pub trait PriceOf {
    /// The price of `model`, `None` when unpriced.
    fn price_of(&mut self, model: &Arc<str>) -> Option<Arc<ModelPrice>>;
}

/// Prices straight from a book, resolved on each call (one run at a time:
/// the what-if overlay).
pub struct BookPrices<'a>(pub &'a crate::pricing::PriceBook);

impl PriceOf for BookPrices<'_> {
    fn price_of(&mut self, model: &Arc<str>) -> Option<Arc<ModelPrice>> {
        self.0
            .resolve(model)
            .map(|p| Arc::new(self.0.model(p).clone()))
    }
}

/// How one hop fares under each lever.
#[derive(Debug, Clone, PartialEq)]
pub struct HopWhatIf {
    pub hop: u32,
    /// Its cost under its own model's prices, recomputed from its tokens
    /// (what the levers are compared with); `None` when its model is unpriced.
    pub current: Option<Usd>,
    /// Tokens of its input carried from the previous hop.
    pub carried: u64,
    /// Routing: the rule (index) and the model it would move to.
    pub route: Option<(usize, Arc<ModelPrice>)>,
    pub routed: Usd,
    /// Tokens trimming would cut, and the cost after.
    pub trimmed_tokens: u64,
    pub trimmed: Usd,
    /// Caching the carried prefix: the cost after (the write premium
    /// included), and whether the run had cache reads before this hop
    /// (then a hop without them is a cache break, not a missed cache).
    pub cached: Usd,
    pub cache_tokens: u64,
    pub cache_broke: bool,
    /// Routing and trimming (the step between routing and all three).
    pub routed_trimmed: Usd,
    /// Routing, trimming and caching together: the cost, the tokens by
    /// bucket and the model (the what-if waterfall draws them).
    pub combined: Usd,
    pub combined_usage: Usage,
    pub combined_model: Option<Arc<ModelPrice>>,
    /// Reasoning beyond the allowed multiple of the visible output on a
    /// simple task, and its cost at the model's output price.
    pub reasoning_excess: u64,
    pub reasoning_excess_cost: Usd,
}

/// The rates `usage` is billed at: long-context tier when one call's
/// input (the mean of the hop's calls) passes the threshold.
fn rates_for(price: &ModelPrice, usage: &Usage, calls: u32) -> Rates {
    match price.long_context {
        Some(tier) if usage.input_total() / u64::from(calls.max(1)) > tier.threshold => tier.rates,
        _ => price.rates,
    }
}

/// Cost of `usage` (`calls` calls) under `price`.
#[must_use]
pub fn cost(price: &ModelPrice, usage: &Usage, calls: u32) -> Usd {
    let r = rates_for(price, usage, calls);
    Usd::for_tokens(usage.input_uncached, r.input)
        + Usd::for_tokens(usage.cache_read, r.cache_read)
        + Usd::for_tokens(usage.cache_write_5m, r.cache_write_5m)
        + Usd::for_tokens(usage.cache_write_1h, r.cache_write_1h)
        + Usd::for_tokens(usage.output, r.output)
}

/// `usage` with `cut` input tokens taken out: uncached first (carried
/// history is the uncached tail), then cache writes, then cache reads —
/// what a runtime's per-hop limit (action `trim`) does.
#[must_use]
pub fn trim(mut usage: Usage, cut: u64) -> Usage {
    let mut left = cut;
    for bucket in [
        &mut usage.input_uncached,
        &mut usage.cache_write_5m,
        &mut usage.cache_write_1h,
        &mut usage.cache_read,
    ] {
        let take = left.min(*bucket);
        *bucket -= take;
        left -= take;
    }
    usage
}

/// The model a rule sends `hop` to, if one is cheaper for it.
fn route_hop(
    hop: &HopAgg,
    price: &ModelPrice,
    rules: &AdvisorRules,
    candidates: &Candidates,
) -> Option<(usize, Arc<ModelPrice>)> {
    let calls = u64::from(hop.calls.max(1));
    let u = &hop.usage;
    let provider = price.provider.as_deref()?;
    let (index, rule) = rules.routes.iter().enumerate().find(|(_, rule)| {
        let task_ok = rule.tasks.is_empty()
            || hop
                .labels
                .task
                .as_deref()
                .is_some_and(|t| rule.tasks.iter().any(|x| x.eq_ignore_ascii_case(t)));
        let agent_ok = rule.agents.is_empty() || rule.agents.iter().any(|a| **a == *hop.agent);
        let output_ok = rule
            .max_output_tokens
            .is_none_or(|max| u.output / calls <= max);
        #[allow(clippy::cast_precision_loss)]
        let reasoning_ok = rule
            .max_reasoning_share
            .is_none_or(|max| u.output == 0 || u.reasoning as f64 / u.output as f64 <= max);
        task_ok && agent_ok && output_ok && reasoning_ok
    })?;
    let here = cost(price, u, hop.calls);
    let cheaper = candidates
        .of(provider)
        .iter()
        .filter(|m| m.name != price.name)
        .map(|m| (cost(m, u, hop.calls), m))
        .filter(|(c, _)| *c < here);
    let chosen = match &rule.to {
        RouteTarget::Cheapest => cheaper.min_by(|a, b| a.0.cmp(&b.0).then(a.1.name.cmp(&b.1.name))),
        RouteTarget::NextCheaper => {
            cheaper.max_by(|a, b| a.0.cmp(&b.0).then(b.1.name.cmp(&a.1.name)))
        }
        RouteTarget::Model(name) => cheaper
            .into_iter()
            .find(|(_, m)| m.name.eq_ignore_ascii_case(name)),
    }?;
    Some((index, chosen.1.clone()))
}

/// What caching the carried prefixes would do to a run's hops (each
/// `(model, usage, calls, carried)` as the other levers left it): per hop,
/// the usage with the prefix read from cache and, where a later hop of the
/// same model reads what this hop sent, the write premium. Hops that
/// already read or write a cache are left as they are.
fn with_cache(hops: &mut [(Arc<ModelPrice>, Usage, u32, u64)], rules: &AdvisorRules) -> Vec<u64> {
    let n = hops.len();
    let mut read = vec![0_u64; n];
    let mut writer = vec![false; n];
    for k in 0..n {
        let (model, usage, calls, _) = &hops[k];
        if usage.cache_read > 0
            || usage.cache_write() > 0
            || model.rates.cache_read >= model.rates.input
        {
            continue;
        }
        // The last earlier hop on the same model, the chain of carried
        // context unbroken since: its input is a prefix of this one's.
        let mut prefix = u64::MAX;
        let mut from = None;
        for j in (0..k).rev() {
            prefix = prefix.min(hops[j + 1].3);
            if prefix == 0 {
                break;
            }
            if hops[j].0.name == model.name {
                from = Some(j);
                prefix = prefix.min(hops[j].1.input_total());
                break;
            }
        }
        let Some(j) = from else { continue };
        let tokens = prefix.min(usage.input_uncached);
        if tokens / u64::from((*calls).max(1)) < rules.cache_min(model) {
            continue;
        }
        read[k] = tokens;
        writer[j] = true;
    }
    for k in 0..n {
        let (model, usage, _, _) = &mut hops[k];
        let r = read[k];
        usage.input_uncached -= r;
        usage.cache_read += r;
        if writer[k] && model.rates.cache_write_5m > model.rates.input {
            // explicit caching (Anthropic): what was not read is written
            usage.cache_write_5m += usage.input_uncached;
            usage.input_uncached = 0;
        }
    }
    read
}

/// Every hop of `run` under each lever. Hops of unpriced models are
/// listed with `current: None` and change nothing.
pub fn analyze(
    run: &RunAgg,
    rules: &AdvisorRules,
    bleed: &BleedRules,
    candidates: &Candidates,
    prices: &mut impl PriceOf,
) -> Vec<HopWhatIf> {
    let hops = &run.hops;
    let first_per_call = hops
        .first()
        .map_or(0, |h| h.usage.input_total() / u64::from(h.calls.max(1)));
    let limit = rules.trim_limit(first_per_call);
    let mut out: Vec<HopWhatIf> = Vec::with_capacity(hops.len());
    // per lever: (model, usage, calls, carried) for the caching pass
    let mut alone: Vec<(Arc<ModelPrice>, Usage, u32, u64)> = Vec::with_capacity(hops.len());
    let mut together: Vec<(Arc<ModelPrice>, Usage, u32, u64)> = Vec::with_capacity(hops.len());
    let mut priced: Vec<usize> = Vec::with_capacity(hops.len());
    let mut seen_cache = false;
    for (i, hop) in hops.iter().enumerate() {
        let carried = carried_tokens(hops, i, bleed);
        let price = prices.price_of(&hop.model);
        let mut what = HopWhatIf {
            hop: hop.hop,
            current: None,
            carried,
            route: None,
            routed: Usd::ZERO,
            trimmed_tokens: 0,
            trimmed: Usd::ZERO,
            cached: Usd::ZERO,
            cache_tokens: 0,
            cache_broke: false,
            routed_trimmed: Usd::ZERO,
            combined: Usd::ZERO,
            combined_usage: hop.usage,
            combined_model: None,
            reasoning_excess: 0,
            reasoning_excess_cost: Usd::ZERO,
        };
        let Some(price) = price else {
            out.push(what);
            continue;
        };
        let u = hop.usage;
        let current = cost(&price, &u, hop.calls);
        what.current = Some(current);
        what.cache_broke = seen_cache && u.cache_read == 0;
        seen_cache |= u.cache_read > 0;
        what.route = route_hop(hop, &price, rules, candidates);
        let routed_model = what.route.as_ref().map_or(&price, |(_, m)| m).clone();
        what.routed = cost(&routed_model, &u, hop.calls);
        let allowed = limit.saturating_mul(u64::from(hop.calls.max(1)));
        what.trimmed_tokens = u.input_total().saturating_sub(allowed);
        let trimmed_usage = trim(u, what.trimmed_tokens);
        what.trimmed = cost(&price, &trimmed_usage, hop.calls);
        // carried after trimming: a trimmed context keeps a stable head
        let before = together.last().map_or(0, |p| p.1.input_total());
        let carried_trimmed = carried.min(trimmed_usage.input_total()).min(before);
        what.routed_trimmed = cost(&routed_model, &trimmed_usage, hop.calls);
        alone.push((price.clone(), u, hop.calls, carried));
        together.push((routed_model, trimmed_usage, hop.calls, carried_trimmed));
        if rules.is_simple(hop.labels.task.as_deref()) {
            let calls = u64::from(hop.calls.max(1));
            let visible = u.output.saturating_sub(u.reasoning);
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let allowed = (visible as f64 * rules.reasoning_over_visible) as u64;
            if u.reasoning / calls >= rules.reasoning_min_tokens && u.reasoning > allowed {
                what.reasoning_excess = u.reasoning - allowed;
                what.reasoning_excess_cost = Usd::for_tokens(
                    what.reasoning_excess,
                    rates_for(&price, &u, hop.calls).output,
                );
            }
        }
        priced.push(out.len());
        out.push(what);
    }
    let cached_reads = with_cache(&mut alone, rules);
    with_cache(&mut together, rules);
    for (k, &i) in priced.iter().enumerate() {
        let what = &mut out[i];
        let (model, usage, calls, _) = &alone[k];
        what.cache_tokens = cached_reads[k];
        what.cached = cost(model, usage, *calls);
        let (model, usage, calls, _) = &together[k];
        what.combined = cost(model, usage, *calls);
        what.combined_usage = *usage;
        what.combined_model = Some(model.clone());
    }
    out
}
