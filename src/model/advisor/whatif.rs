//! One run, hop by hop, re-priced as it would be with each lever applied:
//! routing, trimming carried context, caching the carried prefix — alone
//! and all together. Pure arithmetic on a run's hops (`docs/insights.md`,
//! "Advisor").
//!
//! A report analyses every hop it read, so the per-hop path names models by
//! index ([`Pricer`]) and works in buffers reused from run to run
//! ([`Scan`]): no allocation, no reference count and no string comparison
//! per hop.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use super::rules::{AdvisorRules, RouteRule, RouteTarget};
use crate::model::insights::{BleedRules, carried_tokens};
use crate::model::ledger::{HopAgg, HopIdent, RunAgg};
use crate::pricing::{LongContext, ModelPrice, PriceBook, PriceRef, Rates};
use crate::types::money::Usd;
use crate::types::usage::Usage;

/// A model a [`Pricer`] resolved: its price and what the rules say of it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub price: Arc<ModelPrice>,
    /// The price's rates and long-context tier, held here: the per-hop
    /// path prices with them without following `price`.
    rates: Rates,
    long_context: Option<LongContext>,
    /// The canonical name, shared (a recommendation's key holds it).
    pub name: Arc<str>,
    /// The least cacheable prefix ([`AdvisorRules::cache_min`]).
    cache_min: u64,
    /// The routing candidates of its provider other than itself, in the
    /// order of the rules' targets.
    pool: Vec<u32>,
}

/// What the rules say of one interned hop identity (agent, model, labels).
#[derive(Debug, Clone, Copy)]
struct IdentFacts {
    model: Option<u32>,
    /// Bit `i`: route rule `i`'s task and agent conditions hold (the first
    /// [`MASKED_RULES`] rules; later ones are tested per hop).
    rules: u64,
    simple: bool,
}

const MASKED_RULES: usize = 64;

/// Bound on the memo of names and identities: both are read from the input.
const MEMO_CAP: usize = 4_096;

/// Prices resolved once per model (names by index from then on), the
/// routing candidates, and the rules' verdicts once per hop identity.
#[derive(Debug, Clone)]
pub struct Pricer {
    book: Arc<PriceBook>,
    models: Vec<Resolved>,
    /// The first `kept` models are the routing candidates: kept when the
    /// memo is reset.
    kept: usize,
    by_ref: HashMap<PriceRef, u32>,
    /// (provider, candidate models), in the order of the rules' targets.
    candidates: Vec<(String, Vec<u32>)>,
    by_name: HashMap<Arc<str>, Option<u32>>,
    /// Keyed by the identity's address; the `Arc` is held so that the
    /// address is not reused while the entry lives.
    by_ident: HashMap<usize, (Arc<HopIdent>, IdentFacts)>,
    /// How many times the memo was forgotten.
    pub(super) forgot: u64,
}

impl Pricer {
    /// The targets of `rules` that the book prices and that name a
    /// provider are the routing candidates (a model without one is never a
    /// target). The book is shared, not copied (a view builds one per draw).
    #[must_use]
    pub fn new(rules: &AdvisorRules, book: Arc<PriceBook>) -> Pricer {
        let mut pricer = Pricer {
            book,
            models: Vec::new(),
            kept: 0,
            by_ref: HashMap::default(),
            candidates: Vec::new(),
            by_name: HashMap::default(),
            by_ident: HashMap::default(),
            forgot: 0,
        };
        for name in &rules.route_targets {
            let Some(found) = pricer.book.resolve(name) else {
                continue;
            };
            let Some(provider) = pricer.book.model(found).provider.clone() else {
                continue;
            };
            let ix = pricer.intern(found, rules);
            let i = match pricer.candidates.iter().position(|(p, _)| *p == provider) {
                Some(i) => i,
                None => {
                    pricer.candidates.push((provider, Vec::new()));
                    pricer.candidates.len() - 1
                }
            };
            let slot = &mut pricer.candidates[i].1;
            let name = &pricer.models[ix as usize].price.name;
            if !slot
                .iter()
                .any(|m| pricer.models[*m as usize].price.name == *name)
            {
                slot.push(ix);
            }
        }
        pricer.kept = pricer.models.len();
        for ix in 0..pricer.kept {
            pricer.models[ix].pool = pricer.pool_of(&pricer.models[ix].price);
        }
        pricer
    }

    #[must_use]
    pub fn book(&self) -> &PriceBook {
        &self.book
    }

    /// The model at `ix` (an index this pricer gave).
    #[must_use]
    pub fn model(&self, ix: u32) -> &Resolved {
        &self.models[ix as usize]
    }

    /// The price of `model`, `None` when unpriced.
    fn resolve(&mut self, model: &Arc<str>, rules: &AdvisorRules) -> Option<u32> {
        if let Some(hit) = self.by_name.get(model) {
            return *hit;
        }
        let ix = self.book.resolve(model).map(|p| self.intern(p, rules));
        self.by_name.insert(model.clone(), ix);
        ix
    }

    /// Whether the memo of names and identities reached its bound.
    #[must_use]
    pub fn memo_full(&self) -> bool {
        self.by_name.len() + self.by_ident.len() > MEMO_CAP
    }

    /// Forgets the models and identities seen but the routing candidates
    /// (call between runs: the indices of the run analysed last go).
    pub fn forget(&mut self) {
        self.forgot += 1;
        self.by_name.clear();
        self.by_ident.clear();
        self.models.truncate(self.kept);
        let kept = u32::try_from(self.kept).unwrap_or(u32::MAX);
        self.by_ref.retain(|_, ix| *ix < kept);
    }

    fn intern(&mut self, found: PriceRef, rules: &AdvisorRules) -> u32 {
        if let Some(ix) = self.by_ref.get(&found) {
            return *ix;
        }
        let price = self.book.model(found).clone();
        let pool = self.pool_of(&price);
        let ix = u32::try_from(self.models.len()).unwrap_or(u32::MAX);
        self.models.push(Resolved {
            rates: price.rates,
            long_context: price.long_context,
            name: Arc::from(price.name.as_str()),
            cache_min: rules.cache_min(&price),
            price: Arc::new(price),
            pool,
        });
        self.by_ref.insert(found, ix);
        ix
    }

    fn pool_of(&self, price: &ModelPrice) -> Vec<u32> {
        let Some(provider) = price.provider.as_deref() else {
            return Vec::new();
        };
        self.candidates
            .iter()
            .find(|(p, _)| p == provider)
            .map_or(&[][..], |(_, models)| models)
            .iter()
            .copied()
            .filter(|m| self.models[*m as usize].price.name != price.name)
            .collect()
    }

    fn ident(&mut self, hop: &HopAgg, rules: &AdvisorRules) -> IdentFacts {
        let ident = hop.ident();
        let key = Arc::as_ptr(ident) as usize;
        if let Some((_, facts)) = self.by_ident.get(&key) {
            return *facts;
        }
        let mut mask = 0_u64;
        for (i, rule) in rules.routes.iter().enumerate().take(MASKED_RULES) {
            if fixed_conditions(rule, hop) {
                mask |= 1 << i;
            }
        }
        let facts = IdentFacts {
            model: self.resolve(&hop.model, rules),
            rules: mask,
            simple: rules.is_simple(hop.labels.task.as_deref()),
        };
        self.by_ident.insert(key, (ident.clone(), facts));
        facts
    }
}

impl Resolved {
    /// Its base rates (the price's, held here).
    #[must_use]
    pub fn rates(&self) -> Rates {
        self.rates
    }

    /// Cost of `usage` (`calls` calls) at this model's prices ([`cost`]).
    fn cost(&self, usage: &Usage, calls: u32) -> Usd {
        billed_rates(self.rates, self.long_context, usage, calls).cost(usage)
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

/// [`HopWhatIf`] with models as [`Pricer`] indices: what [`scan`] fills.
#[derive(Debug, Clone, Copy, Default)]
pub struct HopLevers {
    /// The hop's own model; `None` when unpriced (then nothing below is set
    /// but `carried` and `combined_usage`).
    pub model: Option<u32>,
    pub current: Usd,
    pub carried: u64,
    pub route: Option<(usize, u32)>,
    pub routed: Usd,
    pub trimmed_tokens: u64,
    pub trimmed: Usd,
    pub cached: Usd,
    pub cache_tokens: u64,
    pub cache_broke: bool,
    pub routed_trimmed: Usd,
    pub combined: Usd,
    pub combined_usage: Usage,
    pub combined_model: Option<u32>,
    pub reasoning_excess: u64,
    pub reasoning_excess_cost: Usd,
}

/// One priced hop as a lever left it, for the caching pass.
#[derive(Debug, Clone, Copy)]
struct Slot {
    model: u32,
    usage: Usage,
    calls: u32,
    carried: u64,
}

/// Buffers of [`scan`], reused from run to run.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// One per hop of the run scanned last.
    pub hops: Vec<HopLevers>,
    /// Per priced hop: its index in `hops`; the hop under the levers alone,
    /// and under routing and trimming together.
    priced: Vec<usize>,
    alone: Vec<Slot>,
    together: Vec<Slot>,
    read: Vec<u64>,
    writer: Vec<bool>,
}

/// The rates `usage` (`calls` calls) is billed at: the long-context tier
/// when one call's input (the mean of the hop's calls) passes the threshold.
fn billed_rates(rates: Rates, long: Option<LongContext>, usage: &Usage, calls: u32) -> Rates {
    match long {
        Some(tier) if usage.input_total() / u64::from(calls.max(1)) > tier.threshold => tier.rates,
        _ => rates,
    }
}

/// Cost of `usage` (`calls` calls) under `price`.
#[must_use]
pub fn cost(price: &ModelPrice, usage: &Usage, calls: u32) -> Usd {
    billed_rates(price.rates, price.long_context, usage, calls).cost(usage)
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

/// A rule's conditions on the hop's identity: its task and its agent.
fn fixed_conditions(rule: &RouteRule, hop: &HopAgg) -> bool {
    let task_ok = rule.tasks.is_empty()
        || hop
            .labels
            .task
            .as_deref()
            .is_some_and(|t| rule.tasks.iter().any(|x| x.eq_ignore_ascii_case(t)));
    let agent_ok = rule.agents.is_empty() || rule.agents.iter().any(|a| **a == *hop.agent);
    task_ok && agent_ok
}

/// The model the first rule matching `hop` sends it to, if one is cheaper
/// for it than `here` (its cost on its own model): the rule, the model and
/// the hop's cost there.
fn route_hop(
    hop: &HopAgg,
    own: &Resolved,
    facts: IdentFacts,
    here: Usd,
    rules: &AdvisorRules,
    pricer: &Pricer,
) -> Option<(usize, u32, Usd)> {
    // no candidate of its provider (or no provider): nothing to route to
    if own.pool.is_empty() {
        return None;
    }
    let calls = u64::from(hop.calls.max(1));
    let u = &hop.usage;
    let (index, rule) = rules.routes.iter().enumerate().find(|(i, rule)| {
        let fixed = if *i < MASKED_RULES {
            facts.rules >> i & 1 == 1
        } else {
            fixed_conditions(rule, hop)
        };
        let output_ok = || {
            rule.max_output_tokens
                .is_none_or(|max| u.output / calls <= max)
        };
        #[allow(clippy::cast_precision_loss)]
        let reasoning_ok = || {
            rule.max_reasoning_share
                .is_none_or(|max| u.output == 0 || u.reasoning as f64 / u.output as f64 <= max)
        };
        fixed && output_ok() && reasoning_ok()
    })?;
    let name = |m: u32| pricer.model(m).price.name.as_str();
    let cheaper = own
        .pool
        .iter()
        .map(|&m| (pricer.model(m).cost(u, hop.calls), m))
        .filter(|(c, _)| *c < here);
    let chosen = match &rule.to {
        RouteTarget::Cheapest => {
            cheaper.min_by(|a, b| a.0.cmp(&b.0).then_with(|| name(a.1).cmp(name(b.1))))
        }
        RouteTarget::NextCheaper => {
            cheaper.max_by(|a, b| a.0.cmp(&b.0).then_with(|| name(b.1).cmp(name(a.1))))
        }
        RouteTarget::Model(target) => cheaper
            .into_iter()
            .find(|(_, m)| name(*m).eq_ignore_ascii_case(target)),
    }?;
    Some((index, chosen.1, chosen.0))
}

/// What caching the carried prefixes would do to a run's priced hops (as
/// the other levers left them): per hop, the usage with the prefix read
/// from cache and, where a later hop of the same model reads what this hop
/// sent, the write premium. Hops that already read or write a cache are
/// left as they are. `read` gets the tokens each hop would read.
fn with_cache(slots: &mut [Slot], read: &mut Vec<u64>, writer: &mut Vec<bool>, pricer: &Pricer) {
    let n = slots.len();
    read.clear();
    read.resize(n, 0);
    writer.clear();
    writer.resize(n, false);
    let same_model =
        |a: u32, b: u32| a == b || pricer.model(a).price.name == pricer.model(b).price.name;
    for k in 0..n {
        let Slot {
            model,
            usage,
            calls,
            ..
        } = slots[k];
        let resolved = pricer.model(model);
        let rates = resolved.rates;
        if usage.cache_read > 0 || usage.cache_write() > 0 || rates.cache_read >= rates.input {
            continue;
        }
        // The last earlier hop on the same model, the chain of carried
        // context unbroken since: its input is a prefix of this one's.
        let mut prefix = u64::MAX;
        let mut from = None;
        for j in (0..k).rev() {
            prefix = prefix.min(slots[j + 1].carried);
            if prefix == 0 {
                break;
            }
            if same_model(slots[j].model, model) {
                from = Some(j);
                prefix = prefix.min(slots[j].usage.input_total());
                break;
            }
        }
        let Some(j) = from else { continue };
        let tokens = prefix.min(usage.input_uncached);
        if tokens / u64::from(calls.max(1)) < resolved.cache_min {
            continue;
        }
        read[k] = tokens;
        writer[j] = true;
    }
    for (k, slot) in slots.iter_mut().enumerate() {
        let rates = pricer.model(slot.model).rates;
        let usage = &mut slot.usage;
        usage.input_uncached -= read[k];
        usage.cache_read += read[k];
        if writer[k] && rates.cache_write_5m > rates.input {
            // explicit caching (Anthropic): what was not read is written
            usage.cache_write_5m += usage.input_uncached;
            usage.input_uncached = 0;
        }
    }
}

/// Every hop of `run` under each lever, into `out.hops` (one per hop, in
/// order). Hops of unpriced models have `model: None` and change nothing.
pub fn scan(
    run: &RunAgg,
    rules: &AdvisorRules,
    bleed: &BleedRules,
    pricer: &mut Pricer,
    out: &mut Scan,
) {
    let hops = &run.hops;
    let first_per_call = hops
        .first()
        .map_or(0, |h| h.usage.input_total() / u64::from(h.calls.max(1)));
    let limit = rules.trim_limit(first_per_call);
    out.hops.clear();
    out.priced.clear();
    out.alone.clear();
    out.together.clear();
    let mut seen_cache = false;
    for (i, hop) in hops.iter().enumerate() {
        let carried = carried_tokens(hops, i, bleed);
        let facts = pricer.ident(hop, rules);
        let mut what = HopLevers {
            carried,
            combined_usage: hop.usage,
            ..HopLevers::default()
        };
        let Some(model) = facts.model else {
            out.hops.push(what);
            continue;
        };
        let own = pricer.model(model);
        let u = hop.usage;
        let current = own.cost(&u, hop.calls);
        what.model = Some(model);
        what.current = current;
        what.cache_broke = seen_cache && u.cache_read == 0;
        seen_cache |= u.cache_read > 0;
        let route = route_hop(hop, own, facts, current, rules, pricer);
        what.route = route.map(|(rule, m, _)| (rule, m));
        what.routed = route.map_or(current, |(_, _, routed)| routed);
        let routed_model = route.map_or(model, |(_, m, _)| m);
        let routed_to = pricer.model(routed_model);
        let allowed = limit.saturating_mul(u64::from(hop.calls.max(1)));
        what.trimmed_tokens = u.input_total().saturating_sub(allowed);
        let trimmed_usage = trim(u, what.trimmed_tokens);
        what.trimmed = if what.trimmed_tokens == 0 {
            current
        } else {
            own.cost(&trimmed_usage, hop.calls)
        };
        // carried after trimming: a trimmed context keeps a stable head
        let before = out.together.last().map_or(0, |p| p.usage.input_total());
        let carried_trimmed = carried.min(trimmed_usage.input_total()).min(before);
        what.routed_trimmed = if what.trimmed_tokens == 0 {
            what.routed
        } else {
            routed_to.cost(&trimmed_usage, hop.calls)
        };
        out.alone.push(Slot {
            model,
            usage: u,
            calls: hop.calls,
            carried,
        });
        out.together.push(Slot {
            model: routed_model,
            usage: trimmed_usage,
            calls: hop.calls,
            carried: carried_trimmed,
        });
        if facts.simple {
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
                    billed_rates(own.rates, own.long_context, &u, hop.calls).output,
                );
            }
        }
        out.priced.push(out.hops.len());
        out.hops.push(what);
    }
    let pricer = &*pricer;
    with_cache(&mut out.alone, &mut out.read, &mut out.writer, pricer);
    for (k, &i) in out.priced.iter().enumerate() {
        let slot = &out.alone[k];
        let what = &mut out.hops[i];
        what.cache_tokens = out.read[k];
        what.cached = if what.cache_tokens == 0 && !out.writer[k] {
            what.current
        } else {
            pricer.model(slot.model).cost(&slot.usage, slot.calls)
        };
    }
    with_cache(&mut out.together, &mut out.read, &mut out.writer, pricer);
    for (k, &i) in out.priced.iter().enumerate() {
        let slot = &out.together[k];
        let what = &mut out.hops[i];
        what.combined = if out.read[k] == 0 && !out.writer[k] {
            what.routed_trimmed
        } else {
            pricer.model(slot.model).cost(&slot.usage, slot.calls)
        };
        what.combined_usage = slot.usage;
        what.combined_model = Some(slot.model);
    }
}

/// Every hop of `run` under each lever, with the models named (the what-if
/// overlay: one run at a time).
pub fn analyze(
    run: &RunAgg,
    rules: &AdvisorRules,
    bleed: &BleedRules,
    pricer: &mut Pricer,
) -> Vec<HopWhatIf> {
    let mut out = Scan::default();
    scan(run, rules, bleed, pricer, &mut out);
    let price = |m: u32| pricer.model(m).price.clone();
    run.hops
        .iter()
        .zip(&out.hops)
        .map(|(hop, what)| {
            let priced = what.model.is_some();
            HopWhatIf {
                hop: hop.hop,
                current: what.model.map(|_| what.current),
                carried: what.carried,
                route: what.route.map(|(rule, m)| (rule, price(m))),
                routed: what.routed,
                trimmed_tokens: what.trimmed_tokens,
                trimmed: what.trimmed,
                cached: what.cached,
                cache_tokens: what.cache_tokens,
                cache_broke: priced && what.cache_broke,
                routed_trimmed: what.routed_trimmed,
                combined: what.combined,
                combined_usage: what.combined_usage,
                combined_model: what.combined_model.map(price),
                reasoning_excess: what.reasoning_excess,
                reasoning_excess_cost: what.reasoning_excess_cost,
            }
        })
        .collect()
}
