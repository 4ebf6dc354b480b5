//! Additive sums of what the advisor derives from runs: a run's share is
//! added when it is seen and subtracted when it changes, so the totals
//! follow the ledger without going over every run again.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::model::insights::ratio;
use crate::types::money::Usd;

/// Sums over hops (of an agent, a segment, a model, or all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Runs with a hop here.
    pub runs: u64,
    pub hops: u64,
    /// Hops of unpriced models: in no dollar figure below.
    pub unpriced_hops: u64,
    /// Cost recomputed from the tokens at the model's prices (priced hops).
    pub cost: Usd,
    pub input_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// Input tokens carried from the previous hop, and what they cost as billed.
    pub carried_tokens: u64,
    pub carried_cost: Usd,
    /// Cache reads at the input price, less the reads, less the write premium.
    pub cache_saved: Usd,
    /// Reasoning tokens at the output price.
    pub reasoning_cost: Usd,
    /// Cost of the same hops under each lever, and all of them together.
    pub routed: Usd,
    pub trimmed: Usd,
    pub cached: Usd,
    /// Routing then trimming (the step before caching).
    pub routed_trimmed: Usd,
    pub combined: Usd,
}

impl Tally {
    /// Adds (`sign` 1) or subtracts (`sign` -1) `other`.
    pub fn fold(&mut self, other: &Tally, sign: i8) {
        let n = |a: &mut u64, b: u64| {
            *a = if sign > 0 {
                a.saturating_add(b)
            } else {
                a.saturating_sub(b)
            };
        };
        let m = |a: &mut Usd, b: Usd| {
            if sign > 0 {
                *a += b;
            } else {
                *a -= b;
            }
        };
        n(&mut self.runs, other.runs);
        n(&mut self.hops, other.hops);
        n(&mut self.unpriced_hops, other.unpriced_hops);
        m(&mut self.cost, other.cost);
        n(&mut self.input_tokens, other.input_tokens);
        n(&mut self.cache_read_tokens, other.cache_read_tokens);
        n(&mut self.cache_write_tokens, other.cache_write_tokens);
        n(&mut self.output_tokens, other.output_tokens);
        n(&mut self.reasoning_tokens, other.reasoning_tokens);
        n(&mut self.carried_tokens, other.carried_tokens);
        m(&mut self.carried_cost, other.carried_cost);
        m(&mut self.cache_saved, other.cache_saved);
        m(&mut self.reasoning_cost, other.reasoning_cost);
        m(&mut self.routed, other.routed);
        m(&mut self.trimmed, other.trimmed);
        m(&mut self.cached, other.cached);
        m(&mut self.routed_trimmed, other.routed_trimmed);
        m(&mut self.combined, other.combined);
    }

    /// Whether nothing is left (every run subtracted).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.runs == 0 && self.hops == 0
    }

    /// Cache reads ÷ input.
    #[must_use]
    pub fn cache_hit_ratio(&self) -> f64 {
        ratio(self.cache_read_tokens, self.input_tokens)
    }

    /// Reasoning ÷ output.
    #[must_use]
    pub fn reasoning_share(&self) -> f64 {
        ratio(self.reasoning_tokens, self.output_tokens)
    }

    /// Carried ÷ input.
    #[must_use]
    pub fn carried_share(&self) -> f64 {
        ratio(self.carried_tokens, self.input_tokens)
    }
}

/// Tallies by name; a name whose tally empties goes.
#[derive(Debug, Clone, Default)]
pub struct Tallies(pub BTreeMap<Arc<str>, Tally>);

impl Tallies {
    pub fn fold(&mut self, name: &Arc<str>, tally: &Tally, sign: i8) {
        if sign > 0 {
            // the name is counted again (an `Arc` clone) only when new
            match self.0.get_mut(name) {
                Some(slot) => slot.fold(tally, 1),
                None => {
                    self.0.insert(name.clone(), *tally);
                }
            }
        } else if let Some(slot) = self.0.get_mut(name) {
            slot.fold(tally, -1);
            if slot.is_empty() {
                self.0.remove(name);
            }
        }
    }
}
