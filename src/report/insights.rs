//! The `insights` object of the JSON report and the `--jsonl` snapshots,
//! and the `advise` and `compare` documents (table, JSON, Markdown).
//! Pure: returns values or text ([`AdviceToWrite::Late`] waits for the
//! advisor's thread where it is written).

use serde::Serialize;
use std::fmt::Write as _;

use crate::advise::PendingAdvice;
use crate::model::Usd;
use crate::model::advisor::compare::Comparison;
use crate::model::advisor::{
    Advice, CacheBreak, Combined, Named, Recommendation, RunForecast, share,
};
use crate::sanitize::sanitize;

/// `insights` in the JSON report and the `--jsonl` snapshots
/// (`docs/report-schema.md`): the advisor's figures when there is advice,
/// repeated prompts when calls carried fingerprints, the latest anomalies
/// in live snapshots.
#[derive(Serialize)]
pub struct JsonInsights<'a> {
    #[serde(flatten)]
    pub advice: Option<AdviceToWrite<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) duplicates: Option<super::duplicates::JsonDuplicates<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomalies: Option<&'a [crate::model::anomaly::Anomaly]>,
}

impl JsonInsights<'_> {
    /// Nothing to say.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.advice.is_none() && self.duplicates.is_none() && self.anomalies.is_none()
    }
}

/// The advice `insights` writes: at hand, or still being worked out on a
/// thread of its own ([`PendingAdvice`]) — then waited for only where it
/// is written: `insights` comes last in a report, so the advisor finishes
/// while everything before it is rendered.
#[derive(Clone, Copy)]
pub enum AdviceToWrite<'a> {
    Ready(&'a Advice),
    Late(&'a PendingAdvice),
}

impl Serialize for AdviceToWrite<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let advice = match self {
            AdviceToWrite::Ready(advice) => advice,
            AdviceToWrite::Late(pending) => pending
                .wait()
                .ok_or_else(|| serde::ser::Error::custom("the advisor failed"))?,
        };
        json_advice(advice).serialize(serializer)
    }
}

/// The advisor's part of `insights`.
#[derive(Debug, Serialize)]
pub struct JsonAdvice<'a> {
    pub advisor: JsonAdvisor<'a>,
    pub carried_context: Vec<JsonCarried<'a>>,
    pub caching: JsonCaching<'a>,
    pub routing: JsonRouting<'a>,
    pub reasoning: JsonReasoning<'a>,
    pub forecasts: &'a [RunForecast],
}

#[derive(Debug, Serialize)]
pub struct JsonAdvisor<'a> {
    pub runs: u64,
    pub runs_per_month: Option<f64>,
    pub combined: &'a Combined,
    pub recommendations: &'a [Recommendation],
}

#[derive(Debug, Serialize)]
pub struct JsonCarried<'a> {
    pub agent: &'a str,
    pub input_tokens: u64,
    pub carried_tokens: u64,
    pub carried_share: f64,
    pub carried_cost: Usd,
    pub trimmed_saving: Usd,
}

#[derive(Debug, Serialize)]
pub struct JsonCacheRow<'a> {
    pub name: &'a str,
    pub hit_ratio: f64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub saved: Usd,
    pub missed_saving: Usd,
}

#[derive(Debug, Serialize)]
pub struct JsonCaching<'a> {
    pub hit_ratio: f64,
    pub saved: Usd,
    pub missed_saving: Usd,
    pub by_agent: Vec<JsonCacheRow<'a>>,
    pub by_model: Vec<JsonCacheRow<'a>>,
    pub cache_break_runs: u64,
    pub cache_breaks: &'a [CacheBreak],
}

#[derive(Debug, Serialize)]
pub struct JsonRouteRow<'a> {
    pub name: &'a str,
    pub cost: Usd,
    pub routed: Usd,
    pub saving: Usd,
    pub saving_share: f64,
}

#[derive(Debug, Serialize)]
pub struct JsonRouting<'a> {
    pub by_agent: Vec<JsonRouteRow<'a>>,
    pub by_segment: Vec<JsonRouteRow<'a>>,
}

#[derive(Debug, Serialize)]
pub struct JsonReasoningRow<'a> {
    pub name: &'a str,
    pub reasoning_tokens: u64,
    pub output_tokens: u64,
    pub share: f64,
    pub cost: Usd,
}

#[derive(Debug, Serialize)]
pub struct JsonReasoning<'a> {
    pub reasoning_tokens: u64,
    pub cost: Usd,
    pub share: f64,
    pub by_agent: Vec<JsonReasoningRow<'a>>,
    pub by_model: Vec<JsonReasoningRow<'a>>,
}

fn cache_row(n: &Named) -> JsonCacheRow<'_> {
    let t = &n.tally;
    JsonCacheRow {
        name: &n.name,
        hit_ratio: t.cache_hit_ratio(),
        cache_read_tokens: t.cache_read_tokens,
        cache_write_tokens: t.cache_write_tokens,
        saved: t.cache_saved,
        missed_saving: t.cost.saturating_sub(t.cached),
    }
}

fn route_row(n: &Named) -> JsonRouteRow<'_> {
    let t = &n.tally;
    let saving = t.cost.saturating_sub(t.routed);
    JsonRouteRow {
        name: &n.name,
        cost: t.cost,
        routed: t.routed,
        saving,
        saving_share: share(saving, t.cost),
    }
}

fn reasoning_row(n: &Named) -> JsonReasoningRow<'_> {
    let t = &n.tally;
    JsonReasoningRow {
        name: &n.name,
        reasoning_tokens: t.reasoning_tokens,
        output_tokens: t.output_tokens,
        share: t.reasoning_share(),
        cost: t.reasoning_cost,
    }
}

/// The advisor's part of the `insights` object (and the forecasts of live runs).
#[must_use]
fn json_advice(advice: &Advice) -> JsonAdvice<'_> {
    let t = &advice.total;
    JsonAdvice {
        advisor: JsonAdvisor {
            runs: advice.runs,
            runs_per_month: advice.runs_per_month,
            combined: &advice.combined,
            recommendations: &advice.recommendations,
        },
        carried_context: advice
            .by_agent
            .iter()
            .map(|n| JsonCarried {
                agent: &n.name,
                input_tokens: n.tally.input_tokens,
                carried_tokens: n.tally.carried_tokens,
                carried_share: n.tally.carried_share(),
                carried_cost: n.tally.carried_cost,
                trimmed_saving: n.tally.cost.saturating_sub(n.tally.trimmed),
            })
            .collect(),
        caching: JsonCaching {
            hit_ratio: t.cache_hit_ratio(),
            saved: t.cache_saved,
            missed_saving: t.cost.saturating_sub(t.cached),
            by_agent: advice.by_agent.iter().map(cache_row).collect(),
            by_model: advice.by_model.iter().map(cache_row).collect(),
            cache_break_runs: advice.cache_break_runs,
            cache_breaks: &advice.cache_breaks,
        },
        routing: JsonRouting {
            by_agent: advice.by_agent.iter().map(route_row).collect(),
            by_segment: advice.by_segment.iter().map(route_row).collect(),
        },
        reasoning: JsonReasoning {
            reasoning_tokens: t.reasoning_tokens,
            cost: t.reasoning_cost,
            share: t.reasoning_share(),
            by_agent: advice.by_agent.iter().map(reasoning_row).collect(),
            by_model: advice.by_model.iter().map(reasoning_row).collect(),
        },
        forecasts: &advice.forecasts,
    }
}

/// Dollars for people: four significant decimals at most.
fn usd(x: Usd) -> String {
    format!("${}", x.display_significant(4))
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// `tokwatch advise` as text: a ranked list (Markdown when `markdown`).
#[must_use]
pub fn advise_text(advice: &Advice, markdown: bool) -> String {
    let mut out = String::new();
    let c = &advice.combined;
    let month = |m: Option<Usd>| m.map_or_else(|| "-".to_owned(), usd);
    if markdown {
        let _ = writeln!(out, "# tokwatch advise\n");
    } else {
        let _ = writeln!(out, "tokwatch advise");
    }
    let _ = writeln!(
        out,
        "{} runs{} · cost per run {} → {} with every recommendation applied (saves {} per run, {} per month){}\n",
        advice.runs,
        advice.runs_per_month.map_or_else(String::new, |r| format!(
            " (≈{r:.0} a month at this volume)"
        )),
        usd(c.cost_per_run),
        usd(c.combined_per_run),
        usd(c.saving_per_run),
        month(c.saving_per_month),
        if c.unpriced_hops > 0 {
            format!(" · {} hops of unpriced models left out", c.unpriced_hops)
        } else {
            String::new()
        }
    );
    if advice.recommendations.is_empty() {
        let _ = writeln!(
            out,
            "No recommendation: nothing to save above the threshold."
        );
        return out;
    }
    let mut table = comfy_table::Table::new();
    table.load_style(if markdown {
        comfy_table::presets::ASCII_MARKDOWN
    } else {
        comfy_table::presets::UTF8_FULL_CONDENSED
    });
    table.set_header(vec![
        "#",
        "recommendation",
        "$/run",
        "$/month",
        "share",
        "sure",
        "evidence",
    ]);
    for r in &advice.recommendations {
        let evidence = r
            .evidence
            .iter()
            .take(3)
            .map(|e| {
                let hops = e
                    .hops
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                format!("{} hop {hops}", sanitize(&e.run_id))
            })
            .collect::<Vec<_>>()
            .join("; ");
        table.add_row(vec![
            r.rank.to_string(),
            sanitize(&r.title).into_owned(),
            usd(r.saving_per_run),
            month(r.saving_per_month),
            pct(r.share),
            r.confidence.code().to_owned(),
            if r.lever == crate::model::advisor::Lever::SemanticCache {
                format!("{} repeats: {evidence}", r.hops)
            } else {
                format!("{} runs: {evidence}", r.runs)
            },
        ]);
    }
    let _ = writeln!(out, "{table}");
    out
}

/// `tokwatch compare` as text (Markdown when `markdown`).
#[must_use]
pub fn compare_text(cmp: &Comparison, markdown: bool) -> String {
    let mut out = String::new();
    let (a, b) = (&cmp.a, &cmp.b);
    if markdown {
        let _ = writeln!(out, "# tokwatch compare\n");
    } else {
        let _ = writeln!(out, "tokwatch compare");
    }
    let mut table = comfy_table::Table::new();
    table.load_style(if markdown {
        comfy_table::presets::ASCII_MARKDOWN
    } else {
        comfy_table::presets::UTF8_FULL_CONDENSED
    });
    table.set_header(vec![
        String::new(),
        sanitize(&a.label).into_owned(),
        sanitize(&b.label).into_owned(),
    ]);
    let mix = |s: &crate::model::advisor::compare::Side| {
        s.model_mix
            .iter()
            .take(3)
            .map(|(m, x)| format!("{} {}", sanitize(m), pct(*x)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rows: Vec<(&str, String, String)> = vec![
        ("runs", a.runs.to_string(), b.runs.to_string()),
        ("cost", usd(a.cost), usd(b.cost)),
        (
            "cost per run (mean)",
            usd(a.cost_per_run),
            usd(b.cost_per_run),
        ),
        (
            "cost per run (median)",
            usd(a.cost_per_run_median),
            usd(b.cost_per_run_median),
        ),
        (
            "cost per run (p95)",
            usd(a.cost_per_run_p95),
            usd(b.cost_per_run_p95),
        ),
        (
            "token multiplier (median)",
            format!("{:.1}×", a.multiplier),
            format!("{:.1}×", b.multiplier),
        ),
        (
            "context growth (median)",
            format!("{:.1}×", a.growth),
            format!("{:.1}×", b.growth),
        ),
        (
            "cache hit ratio",
            pct(a.cache_hit_ratio),
            pct(b.cache_hit_ratio),
        ),
        (
            "carried context",
            pct(a.carried_share),
            pct(b.carried_share),
        ),
        (
            "reasoning share",
            pct(a.reasoning_share),
            pct(b.reasoning_share),
        ),
        ("model mix", mix(a), mix(b)),
    ];
    for (name, x, y) in rows {
        table.add_row(vec![name.to_owned(), x, y]);
    }
    let _ = writeln!(out, "{table}\n");
    let (dear, cheap) = if cmp.dearer == "a" { (a, b) } else { (b, a) };
    let _ = writeln!(
        out,
        "{} costs {} more per run than {} ({:.1}×). Why:",
        sanitize(&dear.label),
        usd(cmp.gap_per_run),
        sanitize(&cheap.label),
        cmp.ratio
    );
    for d in &cmp.differences {
        // a surplus (levers saving more than the gap) is no share of it
        let of_gap = if d.share < 0.0 {
            "beyond the gap".to_owned()
        } else {
            format!("{} of the gap", pct(d.share))
        };
        let _ = writeln!(
            out,
            "{}{}. {} ({of_gap})",
            if markdown { "" } else { "  " },
            d.rank,
            sanitize(&d.message),
        );
    }
    out
}
