//! Prometheus metrics (`--metrics HOST:PORT`, `docs/metrics.md`): what a
//! scrape reads ([`MetricsView`], taken by the aggregator thread at the
//! moment of the scrape), its exposition in the Prometheus text format 0.0.4
//! ([`render`], pure), and the HTTP server ([`server`]).

use std::fmt::Write as _;
use std::sync::Arc;

use crate::ingest::IngestStats;
use crate::ingest::stats::OtlpStats;
use crate::model::ledger::series::{SeriesRow, SeriesView};
use crate::types::money::Usd;

pub mod runtimes;
pub mod server;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything one scrape exports.
#[derive(Debug, Clone, Default)]
pub struct MetricsView {
    /// Per (agent, segment, model) sums, with the corrections.
    pub series: SeriesView,
    /// Runs counted since the start.
    pub runs: u64,
    /// Cost of the calls timed in the last full minute before the scrape.
    pub cost_last_minute: Usd,
    /// Cost of the calls timed in the last five full minutes.
    pub cost_last_5_minutes: Usd,
    /// Ingest counters per source kind, by kind.
    pub ingest: Vec<IngestKind>,
    /// Budgets in force per runtime (`--control`).
    pub budgets: Vec<BudgetGauge>,
    /// Control links to runtimes (`--control`): connected or not.
    pub runtimes: Vec<(Arc<str>, bool)>,
}

/// One budget a runtime has in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetGauge {
    pub runtime: Arc<str>,
    /// `global`, `agent:NAME` or `segment:NAME` (a name that had to be
    /// shortened or sanitized ends with `~` and a hash of it: two scopes
    /// never share a series).
    pub scope: Arc<str>,
    /// The limit's kind: `per_hop_input_tokens`, `run_tokens`, `run_cost_usd`.
    pub kind: Arc<str>,
    /// Exact decimal text (dollars for a cost limit, a count otherwise).
    pub value: String,
}

/// Ingest counters of every source of one kind (what [`IngestStats`] keeps
/// per source, summed by [`source_kind`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestKind {
    /// `file`, `stdin`, `unix`, `tcp`, `otlp-http`, `otlp-grpc`.
    pub kind: &'static str,
    pub sources: u64,
    pub lines: u64,
    pub events: u64,
    pub malformed: u64,
    pub oversized: u64,
    pub dropped: u64,
    pub errors: u64,
    pub duplicates: u64,
    pub revised: u64,
    /// The OTLP receivers' own counters, summed (OTLP kinds only).
    pub otlp: Option<OtlpStats>,
}

/// The kind of a source, from the name live mode gives it.
#[must_use]
pub fn source_kind(name: &str) -> &'static str {
    match name.split_once(':').map(|(scheme, _)| scheme) {
        Some("unix") => "unix",
        Some("tcp") => "tcp",
        Some("otlp-http") => "otlp-http",
        Some("otlp-grpc") => "otlp-grpc",
        _ if name == "stdin" || name == "-" => "stdin",
        _ => "file",
    }
}

/// Ingest counters per source kind (a bounded set of series however many
/// files are followed).
#[must_use]
pub fn ingest_by_kind(stats: &IngestStats) -> Vec<IngestKind> {
    let mut kinds: Vec<IngestKind> = Vec::new();
    for source in &stats.sources {
        let kind = source_kind(&source.name);
        let at = match kinds.iter().position(|k| k.kind == kind) {
            Some(at) => at,
            None => {
                kinds.push(IngestKind {
                    kind,
                    ..IngestKind::default()
                });
                kinds.len() - 1
            }
        };
        let k = &mut kinds[at];
        k.sources += 1;
        k.lines += source.lines;
        k.events += source.events;
        k.malformed += source.malformed;
        k.oversized += source.oversized;
        k.dropped += source.live.dropped;
        k.errors += source.live.errors;
        k.duplicates += source.duplicates;
        k.revised += source.revised;
        if let Some(o) = &source.otlp {
            let sum = k.otlp.get_or_insert_with(|| OtlpStats {
                protocol: kind,
                ..OtlpStats::default()
            });
            sum.requests += o.requests;
            sum.spans_accepted += o.spans_accepted;
            sum.spans_rejected += o.spans_rejected;
            sum.throttled += o.throttled;
            sum.refused += o.refused;
        }
    }
    kinds.sort_by_key(|k| k.kind);
    kinds
}

/// A label value escaped for the text format: `\` `"` and line feeds.
fn escape_label(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `value` scaled down by `10^scale`, as exact decimal text.
fn decimal(value: i128, scale: u32) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.unsigned_abs();
    let unit = 10_u128.pow(scale);
    let (whole, frac) = (abs / unit, abs % unit);
    if frac == 0 {
        return format!("{sign}{whole}");
    }
    let frac = format!("{frac:0width$}", width = scale as usize);
    format!("{sign}{whole}.{}", frac.trim_end_matches('0'))
}

/// Dollars per minute over `minutes` minutes, exact (picodollars ÷ 1 or ÷ 5
/// are exact decimals; another divisor is rounded to 10⁻¹⁸ $).
fn per_minute(cost: Usd, minutes: u32) -> String {
    match minutes {
        1 => cost.to_string(),
        // ÷5 = ×2 ÷10: one more decimal.
        5 => decimal(cost.picos().saturating_mul(2), 13),
        m => decimal(
            cost.picos().saturating_mul(1_000_000) / i128::from(m.max(1)),
            18,
        ),
    }
}

struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: &str) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(label);
                self.text.push_str("=\"");
                escape_label(value, &mut self.text);
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(value);
        self.text.push('\n');
    }
}

/// The kinds of `tokwatch_tokens_total`, disjoint: each token is in one.
pub const TOKEN_KINDS: [&str; 5] = [
    "uncached_input",
    "cache_read",
    "cache_write_5m",
    "cache_write_1h",
    "output",
];

fn series_labels(row: &SeriesRow) -> [(&'static str, &str); 3] {
    [
        ("agent", &row.agent),
        ("segment", &row.segment),
        ("model", &row.model),
    ]
}

/// The exposition of `view` in the Prometheus text format 0.0.4. Series
/// are sorted by their labels; money is the exact decimal.
#[must_use]
pub fn render(view: &MetricsView) -> String {
    let mut out = Out {
        text: String::with_capacity(256 + view.series.rows.len() * 1_024),
    };
    let mut rows: Vec<&SeriesRow> = view.series.rows.iter().collect();
    rows.sort_by(|a, b| (&a.agent, &a.segment, &a.model).cmp(&(&b.agent, &b.segment, &b.model)));

    out.family(
        "tokwatch_tokens_total",
        "counter",
        "Tokens of model calls, by disjoint kind (their sum counts every token once).",
    );
    for row in &rows {
        let u = &row.sums.usage;
        let values = [
            u.input_uncached,
            u.cache_read,
            u.cache_write_5m,
            u.cache_write_1h,
            u.output,
        ];
        let [agent, segment, model] = series_labels(row);
        for (kind, value) in TOKEN_KINDS.iter().zip(values) {
            out.sample(
                "tokwatch_tokens_total",
                &[("kind", kind), agent, segment, model],
                &value.to_string(),
            );
        }
    }
    out.family(
        "tokwatch_reasoning_tokens_total",
        "counter",
        "Reasoning tokens: a part of the output tokens, never counted twice.",
    );
    for row in &rows {
        let value = row.sums.usage.reasoning.to_string();
        out.sample(
            "tokwatch_reasoning_tokens_total",
            &series_labels(row),
            &value,
        );
    }
    out.family(
        "tokwatch_cost_usd_total",
        "counter",
        "Cost in US dollars of priced calls (reported, else computed); unpriced calls add nothing.",
    );
    for row in rows.iter().filter(|r| r.priced) {
        let value = row.sums.cost.to_string();
        out.sample("tokwatch_cost_usd_total", &series_labels(row), &value);
    }
    out.family(
        "tokwatch_calls_total",
        "counter",
        "Model calls, priced or not.",
    );
    for row in &rows {
        let value = row.sums.calls.to_string();
        out.sample("tokwatch_calls_total", &series_labels(row), &value);
    }
    out.family(
        "tokwatch_unpriced_calls_total",
        "counter",
        "Model calls without a price (in the tokens and calls, never in the cost).",
    );
    for (model, calls) in &view.series.unpriced_calls {
        out.sample(
            "tokwatch_unpriced_calls_total",
            &[("model", model)],
            &calls.to_string(),
        );
    }
    out.family("tokwatch_runs_total", "counter", "Runs seen.");
    out.sample("tokwatch_runs_total", &[], &view.runs.to_string());
    out.family(
        "tokwatch_call_corrections_total",
        "counter",
        "Calls taken back or replaced after they were counted (a retry, a late parent span).",
    );
    out.sample(
        "tokwatch_call_corrections_total",
        &[],
        &view.series.corrections.to_string(),
    );
    out.family(
        "tokwatch_series_decreases_total",
        "counter",
        "Corrections that lowered a counter series (read by rate() as a reset).",
    );
    out.sample(
        "tokwatch_series_decreases_total",
        &[],
        &view.series.decreases.to_string(),
    );
    out.family(
        "tokwatch_metrics_series",
        "gauge",
        "Label combinations exported (capped; newcomers past a cap are in (other)).",
    );
    out.sample(
        "tokwatch_metrics_series",
        &[],
        &view.series.rows.len().to_string(),
    );
    out.family(
        "tokwatch_burn_rate_usd_per_minute",
        "gauge",
        "Cost per minute of the calls timed in the last full minute (window=1m) or the last five (window=5m).",
    );
    out.sample(
        "tokwatch_burn_rate_usd_per_minute",
        &[("window", "1m")],
        &per_minute(view.cost_last_minute, 1),
    );
    out.sample(
        "tokwatch_burn_rate_usd_per_minute",
        &[("window", "5m")],
        &per_minute(view.cost_last_5_minutes, 5),
    );

    render_ingest(&mut out, &view.ingest);

    out.family(
        "tokwatch_runtime_up",
        "gauge",
        "1 while the control link to a runtime (--control) is connected.",
    );
    for (runtime, up) in &view.runtimes {
        out.sample(
            "tokwatch_runtime_up",
            &[("runtime", runtime)],
            if *up { "1" } else { "0" },
        );
    }
    out.family(
        "tokwatch_budget_limit",
        "gauge",
        "Budgets a runtime has in force, per scope and limit kind (dollars for cost limits).",
    );
    for b in &view.budgets {
        out.sample(
            "tokwatch_budget_limit",
            &[
                ("runtime", &b.runtime),
                ("scope", &b.scope),
                ("kind", &b.kind),
            ],
            &b.value,
        );
    }
    out.text
}

fn render_ingest(out: &mut Out, kinds: &[IngestKind]) {
    type Field = fn(&IngestKind) -> u64;
    let families: [(&str, &str, &str, Field); 9] = [
        (
            "tokwatch_ingest_sources",
            "gauge",
            "Sources seen, per kind.",
            |k| k.sources,
        ),
        (
            "tokwatch_ingest_lines_total",
            "counter",
            "Lines read, per source kind.",
            |k| k.lines,
        ),
        (
            "tokwatch_ingest_events_total",
            "counter",
            "Events decoded, per source kind.",
            |k| k.events,
        ),
        (
            "tokwatch_ingest_malformed_total",
            "counter",
            "Lines rejected (invalid JSON or schema, invalid UTF-8, oversized), per source kind.",
            |k| k.malformed,
        ),
        (
            "tokwatch_ingest_oversized_total",
            "counter",
            "Lines over --max-line-bytes, per source kind.",
            |k| k.oversized,
        ),
        (
            "tokwatch_ingest_dropped_total",
            "counter",
            "Events dropped (backpressure is applied instead: stays 0), per source kind.",
            |k| k.dropped,
        ),
        (
            "tokwatch_ingest_errors_total",
            "counter",
            "Failures to list, open or read, and connections turned away, per source kind.",
            |k| k.errors,
        ),
        (
            "tokwatch_ingest_duplicates_total",
            "counter",
            "Reports of a call already counted that changed nothing, per source kind.",
            |k| k.duplicates,
        ),
        (
            "tokwatch_ingest_revised_total",
            "counter",
            "Reports that replaced or took back a call's count, per source kind.",
            |k| k.revised,
        ),
    ];
    for (name, kind, help, field) in families {
        out.family(name, kind, help);
        for k in kinds {
            out.sample(name, &[("source_kind", k.kind)], &field(k).to_string());
        }
    }
    type OtlpField = fn(&OtlpStats) -> u64;
    let otlp: [(&str, &str, OtlpField); 5] = [
        (
            "tokwatch_otlp_requests_total",
            "OTLP export requests decoded (accepted, maybe in part, or malformed), per receiver protocol.",
            |o| o.requests,
        ),
        (
            "tokwatch_otlp_spans_accepted_total",
            "Spans passed on to the decoder, per receiver protocol.",
            |o| o.spans_accepted,
        ),
        (
            "tokwatch_otlp_spans_rejected_total",
            "Spans rejected alone (named in partial_success), per receiver protocol.",
            |o| o.spans_rejected,
        ),
        (
            "tokwatch_otlp_throttled_total",
            "Requests turned away to be retried because the aggregator was behind (429, RESOURCE_EXHAUSTED).",
            |o| o.throttled,
        ),
        (
            "tokwatch_otlp_refused_total",
            "Requests refused before decoding: token, size, content type or encoding, stopping.",
            |o| o.refused,
        ),
    ];
    for (name, help, field) in otlp {
        out.family(name, "counter", help);
        for (k, o) in kinds.iter().filter_map(|k| Some((k, k.otlp.as_ref()?))) {
            out.sample(name, &[("source_kind", k.kind)], &field(o).to_string());
        }
    }
}

#[cfg(test)]
mod tests;
