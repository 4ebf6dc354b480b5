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
    differences.push((
        "other",
        other,
        format!(
            "other: ${}/run the levers do not explain (different work, outputs, or cheaper models than the rules route to)",
            other.display_significant(4)
        ),
    ));
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
