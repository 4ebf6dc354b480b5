//! Two sets of runs side by side (two teams, two segments, two agents) and
//! the differences that explain the gap in cost per run, in dollars
//! (`docs/insights.md`, "Compare").

use std::sync::Arc;

use serde::Serialize;

use super::{Advice, per, share};
use crate::model::insights::{Insights, Spread};
use crate::types::money::Usd;

/// One side's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub label: String,
    pub runs: u64,
    pub cost: Usd,
    /// Total ÷ runs (exact), median and 95th percentile (nearest rank).
    pub cost_per_run: Usd,
    pub cost_per_run_median: Usd,
    pub cost_per_run_p95: Usd,
    /// Token multiplier and context growth, medians.
    pub multiplier: f64,
    pub growth: f64,
    pub cache_hit_ratio: f64,
    pub reasoning_share: f64,
    /// Input tokens carried from the previous hop ÷ input.
    pub carried_share: f64,
    /// Model, share of the cost (dearest first).
    pub model_mix: Vec<(Arc<str>, f64)>,
    pub unpriced_hops: u64,
}

impl Side {
    /// The figures of `insights` and `advice` of the same runs.
    #[must_use]
    pub fn new(label: &str, insights: &Insights, advice: &Advice, cost: Usd) -> Side {
        let spread: Spread<Usd> = insights.run_cost;
        let total = &advice.total;
        let model_mix = advice
            .by_model
            .iter()
            .map(|m| (m.name.clone(), share(m.tally.cost, total.cost)))
            .collect();
        Side {
            label: label.to_owned(),
            runs: advice.runs,
            cost,
            cost_per_run: per(cost, advice.runs),
            cost_per_run_median: spread.median,
            cost_per_run_p95: spread.p95,
            multiplier: Insights::multiplier(insights.run_multiplier.median),
            growth: Insights::multiplier(insights.run_growth.median),
            cache_hit_ratio: total.cache_hit_ratio(),
            reasoning_share: total.reasoning_share(),
            carried_share: total.carried_share(),
            model_mix,
            unpriced_hops: total.unpriced_hops,
        }
    }
}

/// One reason for the gap, in dollars per run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub rank: usize,
    /// `model_mix`, `carried_context`, `caching`, `other`.
    pub kind: &'static str,
    pub explains_per_run: Usd,
    /// Of the gap.
    pub share: f64,
    pub message: String,
}

/// The comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub a: Side,
    pub b: Side,
    /// Which side costs more per run (`a` or `b`), and by how much.
    pub dearer: &'static str,
    pub gap_per_run: Usd,
    pub ratio: f64,
    pub differences: Vec<Difference>,
}

/// Compares two sides. The gap is explained by applying the advisor's
/// levers to the dearer side's own hops, one after the other: routing
/// (model mix), then trimming (carried context), then caching; what is
/// left is "other".
#[must_use]
pub fn compare(a: Side, advice_a: &Advice, b: Side, advice_b: &Advice) -> Comparison {
    let a_dearer = a.cost_per_run >= b.cost_per_run;
    let (dear, cheap, advice) = if a_dearer {
        (&a, &b, advice_a)
    } else {
        (&b, &a, advice_b)
    };
    let gap = dear.cost_per_run.saturating_sub(cheap.cost_per_run);
    let t = &advice.total;
    let runs = advice.runs;
    let routing = per(t.cost.saturating_sub(t.routed), runs);
    let trimming = per(t.routed.saturating_sub(t.routed_trimmed), runs);
    let caching = per(t.routed_trimmed.saturating_sub(t.combined), runs);
    let explained = routing + trimming + caching;
    let other = gap - explained;
    let top_model = |s: &Side| {
        s.model_mix.first().map_or_else(
            || "no priced model".to_owned(),
            |(m, x)| format!("{m} {:.0}%", x * 100.0),
        )
    };
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    let mut differences = vec![
        (
            "model_mix",
            routing,
            format!(
                "model mix: {} runs on {} where {} runs on {}; routing simple hops to smaller models of the same provider explains ${}/run",
                dear.label,
                top_model(dear),
                cheap.label,
                top_model(cheap),
                routing.display_significant(4)
            ),
        ),
        (
            "carried_context",
            trimming,
            format!(
                "carried context: {} re-sends {} of its input from the previous hop (growth {:.1}×) against {} for {} ({:.1}×); trimming to a per-hop limit explains ${}/run",
                dear.label,
                pct(dear.carried_share),
                dear.growth,
                pct(cheap.carried_share),
                cheap.label,
                cheap.growth,
                trimming.display_significant(4)
            ),
        ),
        (
            "caching",
            caching,
            format!(
                "caching: {} reads {} of its input from cache against {} for {}; caching the re-sent prefix explains ${}/run",
                dear.label,
                pct(dear.cache_hit_ratio),
                pct(cheap.cache_hit_ratio),
                cheap.label,
                caching.display_significant(4)
            ),
        ),
    ];
    differences.sort_by_key(|d| std::cmp::Reverse(d.1));
    let other_message = if other < Usd::ZERO {
        // the sum still makes the gap: the surplus is told as such, never
        // as a negative amount left to explain
        format!(
            "other: the levers explain ${}/run more than the gap: applied to {}'s hops they would make it cheaper than {} is now (whose own hops can save too)",
            (Usd::ZERO - other).display_significant(4),
            dear.label,
            cheap.label
        )
    } else {
        format!(
            "other: ${}/run the levers do not explain (different work, outputs, or cheaper models than the rules route to)",
            other.display_significant(4)
        )
    };
    differences.push(("other", other, other_message));
    let differences = differences
        .into_iter()
        .enumerate()
        .map(|(i, (kind, usd, message))| Difference {
            rank: i + 1,
            kind,
            explains_per_run: usd,
            share: share(usd, gap),
            message,
        })
        .collect();
    Comparison {
        dearer: if a_dearer { "a" } else { "b" },
        gap_per_run: gap,
        ratio: share(dear.cost_per_run, cheap.cost_per_run),
        differences,
        a,
        b,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::advisor::{Combined, Tally};

    fn side(label: &str, cost_per_run: Usd) -> Side {
        Side {
            label: label.to_owned(),
            runs: 10,
            cost: Usd::from_picos(cost_per_run.picos() * 10),
            cost_per_run,
            cost_per_run_median: cost_per_run,
            cost_per_run_p95: cost_per_run,
            multiplier: 1.0,
            growth: 1.0,
            cache_hit_ratio: 0.0,
            reasoning_share: 0.0,
            carried_share: 0.0,
            model_mix: Vec::new(),
            unpriced_hops: 0,
        }
    }

    /// Ten runs costing `cost` in all, `routed` routed, and so on.
    fn advice(cost: i128, routed: i128, trimmed: i128, combined: i128) -> Advice {
        Advice {
            runs: 10,
            span_ms: None,
            runs_per_month: None,
            total: Tally {
                runs: 10,
                cost: dollars(cost),
                routed: dollars(routed),
                routed_trimmed: dollars(trimmed),
                combined: dollars(combined),
                ..Tally::default()
            },
            by_agent: Vec::new(),
            by_segment: Vec::new(),
            by_model: Vec::new(),
            recommendations: Vec::new(),
            combined: Combined {
                cost_per_run: Usd::ZERO,
                combined_per_run: Usd::ZERO,
                saving_per_run: Usd::ZERO,
                saving_per_month: None,
                unpriced_hops: 0,
            },
            cache_breaks: Vec::new(),
            cache_break_runs: 0,
            forecasts: Vec::new(),
        }
    }

    fn dollars(n: i128) -> Usd {
        Usd::from_picos(n * 1_000_000_000_000)
    }

    #[test]
    fn levers_that_explain_more_than_the_gap_are_told_as_a_surplus() {
        // a: $10/run, b: $8/run; the levers take a from $100 to $40 in all
        // ($6/run: $4 routing, $1 trimming, $1 caching): $4/run beyond the gap
        let a = side("a", dollars(10));
        let b = side("b", dollars(8));
        let cmp = compare(a, &advice(100, 60, 50, 40), b, &advice(80, 80, 80, 80));
        assert_eq!(cmp.gap_per_run, dollars(2));
        let other = cmp.differences.last().unwrap();
        assert_eq!(other.kind, "other");
        assert_eq!(other.explains_per_run, dollars(-4));
        let sum: Usd = cmp.differences.iter().map(|d| d.explains_per_run).sum();
        assert_eq!(sum, cmp.gap_per_run);
        assert!(!other.message.contains('-'), "{}", other.message);
        assert!(
            other.message.contains("$4.0000/run more than the gap"),
            "{}",
            other.message
        );
    }

    #[test]
    fn what_the_levers_leave_of_the_gap_is_other() {
        let a = side("a", dollars(10));
        let b = side("b", dollars(2));
        let cmp = compare(a, &advice(100, 60, 50, 40), b, &advice(20, 20, 20, 20));
        let other = cmp.differences.last().unwrap();
        assert_eq!(other.explains_per_run, dollars(2));
        assert!(
            other
                .message
                .starts_with("other: $2.0000/run the levers do not explain"),
            "{}",
            other.message
        );
    }
}
