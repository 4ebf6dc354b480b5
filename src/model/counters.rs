//! Additive token and cost counters shared by every aggregate.

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use crate::types::money::Usd;
use crate::types::usage::Usage;

/// How a hop's cost was obtained. Ordered from most to least trustworthy;
/// an aggregate of several calls takes the least trustworthy one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Provenance {
    /// The record's own `cost_usd` (provider or gateway).
    Reported,
    /// Computed from exact token counts and the price table.
    #[default]
    Computed,
    /// Computed from token counts estimated from prompt/completion text.
    Estimated,
    /// The model has no price and the record reported no cost.
    Unpriced,
}

impl Provenance {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Reported => "reported",
            Provenance::Computed => "computed",
            Provenance::Estimated => "estimated",
            Provenance::Unpriced => "unpriced",
        }
    }
}

/// The cost side of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Costing {
    /// Reported cost when present, else computed; `None` when unpriced.
    pub effective: Option<Usd>,
    pub computed: Option<Usd>,
    pub reported: Option<Usd>,
    pub provenance: Provenance,
    pub long_context: bool,
}

/// Sums of disjoint token buckets and costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub events: u64,
    /// All prompt input, cache reads and writes included.
    pub input_tokens: u64,
    pub uncached_input_tokens: u64,
    pub cache_read_tokens: u64,
    /// 5-minute and 1-hour writes.
    pub cache_write_tokens: u64,
    pub cache_write_1h_tokens: u64,
    /// All output, reasoning included.
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub total_tokens: u64,
    /// Reported where a record had a cost, computed otherwise.
    pub cost: Usd,
    /// Over events whose model has a price.
    pub computed_cost: Usd,
    /// Over events that reported a cost.
    pub reported_cost: Usd,
    pub reported_events: u64,
    /// Events the price table priced (whatever they reported).
    pub computed_events: u64,
    pub estimated_events: u64,
    pub unpriced_events: u64,
    pub unpriced_tokens: u64,
    pub long_context_events: u64,
}

impl Counters {
    /// The known cost; `None` when every call is unpriced (never $0).
    #[must_use]
    pub fn known_cost(&self) -> Option<Usd> {
        (self.events == 0 || self.unpriced_events < self.events).then_some(self.cost)
    }

    /// Cost at list prices; `None` when no call's model is priced.
    #[must_use]
    pub fn known_computed_cost(&self) -> Option<Usd> {
        (self.computed_events > 0).then_some(self.computed_cost)
    }

    /// Sum of reported costs; `None` when no call reported one.
    #[must_use]
    pub fn known_reported_cost(&self) -> Option<Usd> {
        (self.reported_events > 0).then_some(self.reported_cost)
    }

    /// Counts one call. Every sum saturates at its largest value rather
    /// than wrapping round to a small one ([`Counters::saturated`]); with
    /// calls limited per record (`types::usage::MAX_CALL_TOKENS`,
    /// `types::money::MAX_CALL_COST`) no real workload comes near.
    pub fn add(&mut self, usage: &Usage, costing: &Costing) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.events, 1);
        add(&mut self.input_tokens, usage.input_total());
        add(&mut self.uncached_input_tokens, usage.input_uncached);
        add(&mut self.cache_read_tokens, usage.cache_read);
        add(&mut self.cache_write_tokens, usage.cache_write());
        add(&mut self.cache_write_1h_tokens, usage.cache_write_1h);
        add(&mut self.output_tokens, usage.output);
        add(&mut self.reasoning_tokens, usage.reasoning);
        add(&mut self.total_tokens, usage.total());
        if let Some(cost) = costing.effective {
            self.cost += cost;
        } else {
            add(&mut self.unpriced_events, 1);
            add(&mut self.unpriced_tokens, usage.total());
        }
        if let Some(cost) = costing.computed {
            self.computed_cost += cost;
            add(&mut self.computed_events, 1);
        }
        if let Some(cost) = costing.reported {
            self.reported_cost += cost;
            add(&mut self.reported_events, 1);
        }
        if costing.provenance == Provenance::Estimated {
            add(&mut self.estimated_events, 1);
        }
        if costing.long_context {
            add(&mut self.long_context_events, 1);
        }
    }

    /// Adds another aggregate, saturating like [`Counters::add`].
    pub fn merge(&mut self, other: &Counters) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.events, other.events);
        add(&mut self.input_tokens, other.input_tokens);
        add(&mut self.uncached_input_tokens, other.uncached_input_tokens);
        add(&mut self.cache_read_tokens, other.cache_read_tokens);
        add(&mut self.cache_write_tokens, other.cache_write_tokens);
        add(&mut self.cache_write_1h_tokens, other.cache_write_1h_tokens);
        add(&mut self.output_tokens, other.output_tokens);
        add(&mut self.reasoning_tokens, other.reasoning_tokens);
        add(&mut self.total_tokens, other.total_tokens);
        self.cost += other.cost;
        self.computed_cost += other.computed_cost;
        self.reported_cost += other.reported_cost;
        add(&mut self.reported_events, other.reported_events);
        add(&mut self.computed_events, other.computed_events);
        add(&mut self.estimated_events, other.estimated_events);
        add(&mut self.unpriced_events, other.unpriced_events);
        add(&mut self.unpriced_tokens, other.unpriced_tokens);
        add(&mut self.long_context_events, other.long_context_events);
    }

    /// Takes back what [`Counters::merge`] added (a call reported again
    /// with other numbers, or counted elsewhere). Never below zero.
    pub fn unmerge(&mut self, other: &Counters) {
        let sub = |a: &mut u64, b: u64| *a = a.saturating_sub(b);
        sub(&mut self.events, other.events);
        sub(&mut self.input_tokens, other.input_tokens);
        sub(&mut self.uncached_input_tokens, other.uncached_input_tokens);
        sub(&mut self.cache_read_tokens, other.cache_read_tokens);
        sub(&mut self.cache_write_tokens, other.cache_write_tokens);
        sub(&mut self.cache_write_1h_tokens, other.cache_write_1h_tokens);
        sub(&mut self.output_tokens, other.output_tokens);
        sub(&mut self.reasoning_tokens, other.reasoning_tokens);
        sub(&mut self.total_tokens, other.total_tokens);
        self.cost -= other.cost;
        self.computed_cost -= other.computed_cost;
        self.reported_cost -= other.reported_cost;
        sub(&mut self.reported_events, other.reported_events);
        sub(&mut self.computed_events, other.computed_events);
        sub(&mut self.estimated_events, other.estimated_events);
        sub(&mut self.unpriced_events, other.unpriced_events);
        sub(&mut self.unpriced_tokens, other.unpriced_tokens);
        sub(&mut self.long_context_events, other.long_context_events);
    }

    /// Some sum reached its largest value and stopped there: it is a lower
    /// bound, not exact (it shows as `18446744073709551615` tokens or
    /// ±$170141183460469231731687303.715884105727, never wrapped).
    #[must_use]
    pub fn saturated(&self) -> bool {
        let counts = [
            self.events,
            self.input_tokens,
            self.uncached_input_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.cache_write_1h_tokens,
            self.output_tokens,
            self.reasoning_tokens,
            self.total_tokens,
            self.reported_events,
            self.computed_events,
            self.estimated_events,
            self.unpriced_events,
            self.unpriced_tokens,
            self.long_context_events,
        ];
        let extreme = |usd: Usd| usd.picos() == i128::MAX || usd.picos() == i128::MIN;
        counts.contains(&u64::MAX)
            || extreme(self.cost)
            || extreme(self.computed_cost)
            || extreme(self.reported_cost)
    }

    /// Share of input served from cache, 0–1.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn cache_hit_ratio(&self) -> f64 {
        if self.input_tokens == 0 {
            0.0
        } else {
            self.cache_read_tokens as f64 / self.input_tokens as f64
        }
    }

    /// Every event both reported a cost and was priced, and the sums differ.
    #[must_use]
    pub fn cost_mismatch(&self) -> bool {
        self.reported_events == self.events
            && self.computed_events == self.events
            && self.reported_cost != self.computed_cost
    }
}

/// Field names are the JSON report's (`docs/report-schema.md`); absent money
/// is `null`, never `0`.
impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Counters", 18)?;
        out.serialize_field("events", &self.events)?;
        out.serialize_field("input_tokens", &self.input_tokens)?;
        out.serialize_field("uncached_input_tokens", &self.uncached_input_tokens)?;
        out.serialize_field("cache_read_tokens", &self.cache_read_tokens)?;
        out.serialize_field("cache_write_tokens", &self.cache_write_tokens)?;
        out.serialize_field("cache_write_1h_tokens", &self.cache_write_1h_tokens)?;
        out.serialize_field("output_tokens", &self.output_tokens)?;
        out.serialize_field("reasoning_tokens", &self.reasoning_tokens)?;
        out.serialize_field("total_tokens", &self.total_tokens)?;
        out.serialize_field("cost_usd", &self.known_cost())?;
        out.serialize_field("computed_cost_usd", &self.known_computed_cost())?;
        out.serialize_field("reported_cost_usd", &self.known_reported_cost())?;
        out.serialize_field("reported_events", &self.reported_events)?;
        out.serialize_field("computed_events", &self.computed_events)?;
        out.serialize_field("estimated_events", &self.estimated_events)?;
        out.serialize_field("unpriced_events", &self.unpriced_events)?;
        out.serialize_field("unpriced_tokens", &self.unpriced_tokens)?;
        out.serialize_field("long_context_events", &self.long_context_events)?;
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn costing(cost: i128) -> Costing {
        Costing {
            effective: Some(Usd::from_picos(cost)),
            computed: Some(Usd::from_picos(cost)),
            reported: None,
            provenance: Provenance::Computed,
            long_context: false,
        }
    }

    /// Sums saturate at the largest value, never wrap round to a small one
    /// (two calls of 2^63 tokens used to sum to 0).
    #[test]
    fn sums_saturate_instead_of_wrapping() {
        let huge = Usage {
            input_uncached: 1 << 63,
            output: 1 << 63,
            ..Usage::default()
        };
        let mut counters = Counters::default();
        counters.add(&huge, &costing(i128::MAX));
        counters.add(&huge, &costing(i128::MAX));
        counters.add(
            &Usage {
                input_uncached: 5,
                ..Usage::default()
            },
            &costing(1),
        );
        assert_eq!(counters.input_tokens, u64::MAX);
        assert_eq!(counters.total_tokens, u64::MAX);
        assert_eq!(counters.cost, Usd::from_picos(i128::MAX));
        assert!(counters.saturated());
        let mut merged = counters;
        merged.merge(&counters);
        assert_eq!(merged.output_tokens, u64::MAX);
        assert_eq!(merged.events, 6);
        let full = Counters {
            events: u64::MAX,
            ..Counters::default()
        };
        let mut sum = full;
        sum.merge(&full);
        assert_eq!(sum.events, u64::MAX);
        let mut one = Counters::default();
        one.add(&Usage::default(), &costing(0));
        assert!(!one.saturated());
        sum.add(&Usage::default(), &costing(0));
        assert_eq!(sum.events, u64::MAX);
        assert!(sum.saturated());
    }
}
