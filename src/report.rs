//! Headless reports of a [`Snapshot`]: a human table, JSON (stable, see
//! `docs/report-schema.md`), CSV and Markdown. Pure: returns text.

pub mod insights;

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::{CellAlignment, ContentArrangement, Table};
use serde::Serialize;

use crate::advise::PendingAdvice;
use crate::ingest::IngestStats;
use crate::ingest::stats::LiveStats;
use crate::model::insights::{BleedReason, BleedRules, hop_bleeding};
use crate::model::ledger::{BudgetHit, HopAgg, KeyedAgg, ModelAgg, RunAgg};
use crate::model::snapshot::NO_SEGMENT;
use crate::model::{Counters, Snapshot, Usd};
use crate::sanitize::sanitize;

mod duplicates;

/// Version of the JSON document; bumped only on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    Markdown,
}

#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub format: ReportFormat,
    /// Per-hop detail for each run.
    pub hops: bool,
    /// Runs shown in table and Markdown output (0 = all). JSON and CSV have all.
    pub top_runs: usize,
    /// Runs in JSON output, the most expensive first (0 = all). Live
    /// snapshots cap it so a snapshot stays small; `totals.runs` stays exact.
    pub json_runs: usize,
    /// Echoed in the JSON `filters` object.
    pub filters: Filters,
    /// Thresholds of the bleeding-hop rule.
    pub rules: BleedRules,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Filters {
    pub since: Option<String>,
    pub until: Option<String>,
    pub group_by: Option<String>,
    pub timezone: Option<String>,
    pub prices: Option<String>,
}

/// Renders the report in the chosen format.
///
/// # Errors
/// The JSON or CSV could not be written (a bug: nothing is printed rather
/// than an empty or partial report).
pub fn render(
    snapshot: &Snapshot,
    ingest: &IngestStats,
    options: &ReportOptions,
) -> anyhow::Result<String> {
    render_with_late_advice(snapshot, ingest, options, None)
}

/// [`render`], with the advice `late` works out on a thread of its own:
/// the JSON document writes `insights` last and waits for it only there,
/// so the advisor finishes while the rest is rendered. (The other formats
/// show no advice.)
///
/// # Errors
/// As [`render`]. (A panic on the advisor's thread is resumed here.)
pub fn render_with_late_advice(
    snapshot: &Snapshot,
    ingest: &IngestStats,
    options: &ReportOptions,
    late: Option<&PendingAdvice>,
) -> anyhow::Result<String> {
    Ok(match options.format {
        ReportFormat::Json => render_json(snapshot, ingest, options, late)?,
        ReportFormat::Csv => render_csv(snapshot, options)?,
        ReportFormat::Table => render_text(snapshot, ingest, options, false),
        ReportFormat::Markdown => render_text(snapshot, ingest, options, true),
    })
}

/// One warning per input that could not be read (skipped, or cut short
/// where it failed), for stderr: `'path': reason`, sanitized.
#[must_use]
pub fn unreadable_warnings(ingest: &IngestStats) -> Vec<String> {
    unreadable(ingest)
        .map(|(name, reason, lines)| {
            let skipped = if lines == 0 { "skipped " } else { "" };
            format!("{skipped}'{}': {}", sanitize(name), sanitize(reason))
        })
        .collect()
}

/// Sources with a read error: name, reason, lines read before it.
fn unreadable(ingest: &IngestStats) -> impl Iterator<Item = (&str, &str, u64)> {
    ingest.sources.iter().filter_map(|s| {
        s.live
            .last_error
            .as_deref()
            .filter(|_| s.live.errors > 0)
            .map(|reason| (s.name.as_str(), reason, s.lines))
    })
}

fn iso(ts_ms: Option<i64>) -> Option<String> {
    ts_ms
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

// ---------------------------------------------------------------- JSON

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    generator: String,
    price_table: &'a str,
    filters: &'a Filters,
    time_range: TimeRange,
    totals: JsonTotals<'a>,
    by_agent: Vec<JsonAgent<'a>>,
    by_segment: Vec<JsonSegment<'a>>,
    by_user: Vec<JsonUser<'a>>,
    by_model: Vec<JsonModel<'a>>,
    by_format: Vec<JsonFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    by_period: Option<Vec<JsonPeriod<'a>>>,
    runs: Vec<JsonRun<'a>>,
    ingest: JsonIngest<'a>,
    /// When there is advice, a prompt fingerprint, or (live `--jsonl`
    /// lines, [`render_live_json_line`]) anomalies to report.
    #[serde(skip_serializing_if = "insights::JsonInsights::is_empty")]
    insights: insights::JsonInsights<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    live: Option<LiveInfo>,
}

/// Ingest statistics with the live counters summed over sources.
#[derive(Serialize)]
struct JsonIngest<'a> {
    #[serde(flatten)]
    stats: &'a IngestStats,
    #[serde(flatten)]
    live: LiveStats,
}

/// Where a live snapshot stands in its stream (`tokwatch --jsonl`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LiveInfo {
    /// 1, 2, 3 … per printed snapshot.
    pub sequence: u64,
    /// Milliseconds since tokwatch started.
    pub uptime_ms: u64,
    /// The final snapshot, printed on exit.
    pub last: bool,
    /// Every followed file has been read to its end at least once: the
    /// backlog present at start is all counted (true from the start when
    /// no file is followed).
    pub caught_up: bool,
}

#[derive(Serialize)]
struct TimeRange {
    first: Option<String>,
    last: Option<String>,
}

#[derive(Serialize)]
struct JsonTotals<'a> {
    runs: usize,
    /// Live mode only, once runs were evicted past the cap (`docs/live.md`).
    #[serde(skip_serializing_if = "is_zero")]
    runs_evicted: u64,
    #[serde(flatten)]
    counters: &'a Counters,
    cache_hit_ratio: f64,
    budget_exceeded_events: u64,
    run_end_events: u64,
}

/// Rows of `by_agent`, `by_segment`, `by_user`: the key field is named after the grouping.
macro_rules! keyed_row {
    ($name:ident, $field:literal) => {
        #[derive(Serialize)]
        struct $name<'a> {
            #[serde(rename = $field)]
            name: &'a str,
            #[serde(flatten)]
            counters: &'a Counters,
        }
        impl<'a> From<&'a KeyedAgg> for $name<'a> {
            fn from(row: &'a KeyedAgg) -> Self {
                $name {
                    name: &row.name,
                    counters: &row.counters,
                }
            }
        }
    };
}
keyed_row!(JsonAgent, "agent");
keyed_row!(JsonSegment, "segment");
keyed_row!(JsonUser, "user");

#[derive(Serialize)]
struct JsonModel<'a> {
    model: &'a str,
    provider: Option<&'a str>,
    priced: bool,
    priced_as: Option<&'a str>,
    #[serde(flatten)]
    counters: &'a Counters,
}

/// Where the numbers came from: the input format of the counted calls.
#[derive(Serialize)]
struct JsonFormat<'a> {
    format: &'static str,
    #[serde(flatten)]
    counters: &'a Counters,
}

#[derive(Serialize)]
struct JsonPeriod<'a> {
    period: &'a str,
    #[serde(flatten)]
    counters: &'a Counters,
}

#[derive(Serialize)]
struct JsonRun<'a> {
    run_id: &'a str,
    hops: usize,
    multiplier: Option<f64>,
    segment: Option<&'a str>,
    user: Option<&'a str>,
    agent_path: Vec<&'a str>,
    first_ts: Option<String>,
    last_ts: Option<String>,
    status: Option<&'a str>,
    budget_exceeded: Vec<JsonBudgetHit<'a>>,
    #[serde(flatten)]
    counters: Counters,
    #[serde(skip_serializing_if = "Option::is_none")]
    hop_details: Option<Vec<JsonHop<'a>>>,
}

#[derive(Serialize)]
struct JsonBudgetHit<'a> {
    hop: Option<u32>,
    limit_kind: Option<&'a str>,
    limit: Option<u64>,
    tokens: Option<u64>,
    action: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonHop<'a> {
    hop: u32,
    agent: &'a str,
    parent_agent: Option<&'a str>,
    model: &'a str,
    task: Option<&'a str>,
    tool: Option<&'a str>,
    ts: Option<String>,
    calls: u64,
    input_tokens: u64,
    uncached_input_tokens: u64,
    cache_read_tokens: u64,
    cache_write_tokens: u64,
    cache_write_1h_tokens: u64,
    output_tokens: u64,
    reasoning_tokens: u64,
    total_tokens: u64,
    /// Input growth over the previous hop of the run.
    input_growth: Option<i64>,
    cost_usd: Option<Usd>,
    computed_cost_usd: Option<Usd>,
    reported_cost_usd: Option<Usd>,
    provenance: &'static str,
    price_table: Option<&'a str>,
    long_context: bool,
    latency_ms: Option<u64>,
    status: Option<&'a str>,
    budget_exceeded: Option<JsonBudgetHit<'a>>,
    /// The hop bleeds (docs/insights.md).
    bleeding: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    bleeding_reason: Option<JsonBleed>,
}

#[derive(Serialize)]
struct JsonBleed {
    kind: &'static str,
    message: String,
}

fn json_keyed<'a, T: From<&'a KeyedAgg>>(rows: &'a [KeyedAgg]) -> Vec<T> {
    rows.iter().map(T::from).collect()
}

fn json_budget(hit: &BudgetHit) -> JsonBudgetHit<'_> {
    JsonBudgetHit {
        hop: hit.hop,
        limit_kind: hit.limit_kind.as_deref(),
        limit: hit.limit,
        tokens: hit.observed,
        action: hit.action.as_deref(),
    }
}

fn json_hop<'a>(
    hop: &'a HopAgg,
    previous: Option<&HopAgg>,
    bleeding: Option<BleedReason>,
) -> JsonHop<'a> {
    let c = &hop.counters();
    JsonHop {
        hop: hop.hop,
        agent: &hop.agent,
        parent_agent: hop.labels.parent_agent.as_deref(),
        model: &hop.model,
        task: hop.labels.task.as_deref(),
        tool: hop.labels.tool.as_deref(),
        ts: iso(hop.first_ts_ms),
        calls: c.events,
        input_tokens: c.input_tokens,
        uncached_input_tokens: c.uncached_input_tokens,
        cache_read_tokens: c.cache_read_tokens,
        cache_write_tokens: c.cache_write_tokens,
        cache_write_1h_tokens: c.cache_write_1h_tokens,
        output_tokens: c.output_tokens,
        reasoning_tokens: c.reasoning_tokens,
        total_tokens: c.total_tokens,
        input_growth: previous
            .map(|p| saturating_i64(c.input_tokens) - saturating_i64(p.usage.input_total())),
        cost_usd: hop.complete_cost(),
        computed_cost_usd: (c.computed_events == c.events).then_some(c.computed_cost),
        reported_cost_usd: (c.reported_events > 0).then_some(c.reported_cost),
        provenance: hop.provenance.as_str(),
        price_table: hop.price_version.as_deref(),
        long_context: c.long_context_events > 0,
        latency_ms: hop.latency_ms,
        status: hop.labels.status.as_deref(),
        budget_exceeded: hop.budget_hit().map(json_budget),
        bleeding: bleeding.is_some(),
        bleeding_reason: bleeding.map(|reason| JsonBleed {
            kind: reason.code(),
            message: reason.to_string(),
        }),
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn json_run<'a>(run: &'a RunAgg, hops: bool, rules: &BleedRules) -> JsonRun<'a> {
    JsonRun {
        run_id: &run.run_id,
        hops: run.hops.len(),
        multiplier: run.multiplier().map(|m| (m * 100.0).round() / 100.0),
        segment: run.segment.as_deref(),
        user: run.user.as_deref(),
        agent_path: run.hops.iter().fold(Vec::new(), |mut path: Vec<&str>, h| {
            if path.last() != Some(&&*h.agent) {
                path.push(&h.agent);
            }
            path
        }),
        first_ts: iso(run.first_ts_ms),
        last_ts: iso(run.last_ts_ms),
        status: run.ended.as_deref(),
        budget_exceeded: run.budget_hits.iter().map(json_budget).collect(),
        counters: run.counters(),
        hop_details: hops.then(|| {
            run.hops
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let previous = i.checked_sub(1).map(|p| &run.hops[p]);
                    json_hop(h, previous, hop_bleeding(run, i, rules))
                })
                .collect()
        }),
    }
}

fn render_json(
    snapshot: &Snapshot,
    ingest: &IngestStats,
    options: &ReportOptions,
    late: Option<&PendingAdvice>,
) -> serde_json::Result<String> {
    let mut report = json_report(snapshot, ingest, options, None);
    if let Some(late) = late {
        report.insights.advice = Some(insights::AdviceToWrite::Late(late));
    }
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    Ok(text)
}

/// The report JSON on one line (live snapshots: one per line).
///
/// # Errors
/// The snapshot could not be serialized (a bug).
pub fn try_render_json_line(
    snapshot: &Snapshot,
    ingest: &IngestStats,
    options: &ReportOptions,
    live: Option<LiveInfo>,
) -> serde_json::Result<String> {
    let report = json_report(snapshot, ingest, options, live);
    let mut text = serde_json::to_string(&report)?;
    text.push('\n');
    Ok(text)
}

/// [`try_render_json_line`] for a stream that must go on: a snapshot that
/// cannot be serialized becomes a line `{"error": "…"}` (valid JSON, never
/// an empty line).
#[must_use]
pub fn render_json_line(
    snapshot: &Snapshot,
    ingest: &IngestStats,
    options: &ReportOptions,
    live: Option<LiveInfo>,
) -> String {
    try_render_json_line(snapshot, ingest, options, live).unwrap_or_else(|e| {
        let mut line = serde_json::json!({ "error": e.to_string() }).to_string();
        line.push('\n');
        line
    })
}

/// A live `--jsonl` line: [`render_json_line`] with the latest anomalies
/// in `insights.anomalies` (oldest first; `docs/report-schema.md`).
#[must_use]
pub fn render_live_json_line(
    snapshot: &Snapshot,
    ingest: &IngestStats,
    options: &ReportOptions,
    live: LiveInfo,
    anomalies: &[crate::model::anomaly::Anomaly],
) -> String {
    let mut report = json_report(snapshot, ingest, options, Some(live));
    report.insights.anomalies = Some(anomalies);
    match serde_json::to_string(&report) {
        Ok(mut text) => {
            text.push('\n');
            text
        }
        Err(e) => {
            let mut line = serde_json::json!({ "error": e.to_string() }).to_string();
            line.push('\n');
            line
        }
    }
}

fn json_report<'a>(
    snapshot: &'a Snapshot,
    ingest: &'a IngestStats,
    options: &'a ReportOptions,
    live: Option<LiveInfo>,
) -> JsonReport<'a> {
    JsonReport {
        schema_version: SCHEMA_VERSION,
        generator: format!("tokwatch {}", env!("CARGO_PKG_VERSION")),
        price_table: &snapshot.price_version,
        filters: &options.filters,
        time_range: TimeRange {
            first: iso(snapshot.first_ts_ms),
            last: iso(snapshot.last_ts_ms),
        },
        totals: JsonTotals {
            runs: snapshot.runs_total,
            runs_evicted: snapshot.runs_evicted,
            counters: &snapshot.totals,
            cache_hit_ratio: (snapshot.totals.cache_hit_ratio() * 10_000.0).round() / 10_000.0,
            budget_exceeded_events: snapshot.budget_events,
            run_end_events: snapshot.run_ends,
        },
        by_agent: json_keyed(&snapshot.by_agent),
        by_segment: json_keyed(&snapshot.by_segment),
        by_user: json_keyed(&snapshot.by_user),
        by_model: snapshot.by_model.iter().map(json_model).collect(),
        by_format: snapshot
            .by_format
            .iter()
            .map(|(format, counters)| JsonFormat {
                format: format.name(),
                counters,
            })
            .collect(),
        by_period: options.filters.group_by.as_ref().map(|_| {
            snapshot
                .periods
                .iter()
                .map(|(p, c)| JsonPeriod {
                    period: p,
                    counters: c,
                })
                .collect()
        }),
        runs: snapshot
            .runs
            .iter()
            .take(if options.json_runs == 0 {
                usize::MAX
            } else {
                options.json_runs
            })
            .map(|r| json_run(r, options.hops, &options.rules))
            .collect(),
        ingest: JsonIngest {
            stats: ingest,
            live: ingest.live_totals(),
        },
        insights: insights::JsonInsights {
            advice: snapshot
                .advice
                .as_deref()
                .map(insights::AdviceToWrite::Ready),
            duplicates: snapshot.duplicates.as_deref().map(duplicates::json),
            anomalies: None,
        },
        live,
    }
}

fn json_model(model: &ModelAgg) -> JsonModel<'_> {
    JsonModel {
        model: &model.name,
        provider: model.provider.as_deref(),
        priced: model.priced_as.is_some(),
        priced_as: model.priced_as.as_deref(),
        counters: &model.counters,
    }
}

// ---------------------------------------------------------------- CSV

const CSV_HEADER: [&str; 22] = [
    "section",
    "key",
    "run_id",
    "hop",
    "agent",
    "model",
    "segment",
    "events",
    "input_tokens",
    "uncached_input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
    "computed_cost_usd",
    "reported_cost_usd",
    "unpriced_events",
    "hops",
    "multiplier",
    "provenance",
];

#[derive(Default)]
struct CsvRow<'a> {
    section: &'a str,
    key: &'a str,
    run_id: &'a str,
    hop: Option<u32>,
    agent: &'a str,
    model: &'a str,
    segment: &'a str,
    hops: Option<usize>,
    multiplier: Option<f64>,
    provenance: &'a str,
}

/// Untrusted text for a CSV cell. Control characters (C0, DEL, C1: ESC
/// of OSC 52 or `ESC[2J`, tab, CR, newline) and bidi controls are written
/// as visible `\u{…}` escapes; a cell that a spreadsheet would take for
/// a formula (starting with `=`, `+`, `-`, `@` or `%`, also after leading
/// whitespace such as a space, a tab or a no-break space, which spreadsheets
/// skip) gets a leading `'` (OWASP's CSV injection rule). Only text columns
/// go through it: numbers stay numbers.
fn csv_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    if text
        .trim_start_matches(char::is_whitespace)
        .starts_with(['=', '+', '-', '@', '%'])
    {
        out.push('\'');
    }
    for c in text.chars() {
        if crate::sanitize::is_unsafe(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

fn csv_record(row: &CsvRow<'_>, c: &Counters) -> Vec<String> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    vec![
        row.section.to_owned(),
        csv_text(row.key),
        csv_text(row.run_id),
        opt(row.hop.map(|h| h.to_string())),
        csv_text(row.agent),
        csv_text(row.model),
        csv_text(row.segment),
        c.events.to_string(),
        c.input_tokens.to_string(),
        c.uncached_input_tokens.to_string(),
        c.cache_read_tokens.to_string(),
        c.cache_write_tokens.to_string(),
        c.output_tokens.to_string(),
        c.reasoning_tokens.to_string(),
        c.total_tokens.to_string(),
        opt(c.known_cost().map(|v| v.to_string())),
        opt(c.known_computed_cost().map(|v| v.to_string())),
        opt(c.known_reported_cost().map(|v| v.to_string())),
        c.unpriced_events.to_string(),
        opt(row.hops.map(|h| h.to_string())),
        opt(row.multiplier.map(|m| format!("{m:.2}"))),
        row.provenance.to_owned(),
    ]
}

/// One long table with a `section` column (totals, agent, segment, user,
/// model, period, run, hop) so it loads into any spreadsheet; money is exact.
fn render_csv(snapshot: &Snapshot, options: &ReportOptions) -> anyhow::Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut rows: Vec<Vec<String>> = vec![CSV_HEADER.iter().map(|s| (*s).to_owned()).collect()];
    rows.push(csv_record(
        &CsvRow {
            section: "totals",
            ..CsvRow::default()
        },
        &snapshot.totals,
    ));
    for (section, list) in [
        ("agent", &snapshot.by_agent),
        ("segment", &snapshot.by_segment),
        ("user", &snapshot.by_user),
    ] {
        for r in list {
            rows.push(csv_record(
                &CsvRow {
                    section,
                    key: &r.name,
                    ..CsvRow::default()
                },
                &r.counters,
            ));
        }
    }
    for m in &snapshot.by_model {
        rows.push(csv_record(
            &CsvRow {
                section: "model",
                key: &m.name,
                model: &m.name,
                ..CsvRow::default()
            },
            &m.counters,
        ));
    }
    for (period, c) in &snapshot.periods {
        rows.push(csv_record(
            &CsvRow {
                section: "period",
                key: period,
                ..CsvRow::default()
            },
            c,
        ));
    }
    for run in &snapshot.runs {
        let segment = run.segment.as_deref().unwrap_or("");
        rows.push(csv_record(
            &CsvRow {
                section: "run",
                key: &run.run_id,
                run_id: &run.run_id,
                segment,
                hops: Some(run.hops.len()),
                multiplier: run.multiplier(),
                ..CsvRow::default()
            },
            &run.counters(),
        ));
        if options.hops {
            for hop in &run.hops {
                rows.push(csv_record(
                    &CsvRow {
                        section: "hop",
                        key: &run.run_id,
                        run_id: &run.run_id,
                        hop: Some(hop.hop),
                        agent: &hop.agent,
                        model: &hop.model,
                        segment,
                        provenance: hop.provenance.as_str(),
                        ..CsvRow::default()
                    },
                    &hop.counters(),
                ));
            }
        }
    }
    for row in rows {
        writer.write_record(&row)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write the CSV: {}", e.error()))?;
    Ok(String::from_utf8(bytes)?)
}

// ---------------------------------------------------------------- table / Markdown

fn tokens(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn dollars(amount: Usd) -> String {
    format!("${}", amount.display_significant(4))
}

/// Cost cell: marks partial totals where some events had no price.
fn cost_cell(c: &Counters) -> String {
    if c.unpriced_events == c.events && c.events > 0 {
        "unpriced".to_owned()
    } else if c.unpriced_events > 0 {
        format!("{}+?", dollars(c.cost))
    } else {
        dollars(c.cost)
    }
}

/// Untrusted text for a table cell (or a heading): sanitized, and in
/// Markdown, every character that would split the cell (`|`), start code
/// (`` ` ``), emphasis (`*`, `_`), a link (`[`, `]`), HTML (`<`, `>`) or
/// an escape (`\`) is escaped with a backslash, so it shows as written.
fn cell(text: &str, markdown: bool) -> String {
    let clean = sanitize(text);
    if !markdown {
        return clean.into_owned();
    }
    let mut out = String::with_capacity(clean.len());
    for c in clean.chars() {
        if matches!(c, '|' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn new_table(markdown: bool, header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(if markdown {
            ASCII_MARKDOWN
        } else {
            UTF8_FULL_CONDENSED
        })
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    table
}

fn align_numbers(table: &mut Table, from: usize) {
    for i in from..table.column_count() {
        if let Some(column) = table.column_mut(i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
}

const COUNTER_HEADER: [&str; 8] = [
    "calls",
    "input",
    "cache read",
    "cache write",
    "output",
    "reasoning",
    "cost",
    "share",
];

#[allow(clippy::cast_precision_loss)]
fn counter_cells(c: &Counters, total: &Counters) -> Vec<String> {
    let share = if total.cost > Usd::ZERO {
        format!("{:.1}%", c.cost.to_f64() / total.cost.to_f64() * 100.0)
    } else {
        "-".to_owned()
    };
    vec![
        tokens(c.events),
        tokens(c.input_tokens),
        tokens(c.cache_read_tokens),
        tokens(c.cache_write_tokens),
        tokens(c.output_tokens),
        tokens(c.reasoning_tokens),
        cost_cell(c),
        share,
    ]
}

fn section(out: &mut String, markdown: bool, title: &str, table: &Table) {
    if markdown {
        let _ = write!(out, "\n## {title}\n\n{table}\n");
    } else {
        let _ = write!(out, "\n{title}\n{table}\n");
    }
}

fn keyed_table(markdown: bool, label: &str, rows: &[KeyedAgg], total: &Counters) -> Table {
    let mut header = vec![label];
    header.extend(COUNTER_HEADER);
    let mut table = new_table(markdown, &header);
    for r in rows {
        let mut cells = vec![cell(&r.name, markdown)];
        cells.extend(counter_cells(&r.counters, total));
        table.add_row(cells);
    }
    align_numbers(&mut table, 1);
    table
}

fn render_text(
    snapshot: &Snapshot,
    ingest: &IngestStats,
    options: &ReportOptions,
    markdown: bool,
) -> String {
    let mut out = String::new();
    let t = &snapshot.totals;
    let range = match (iso(snapshot.first_ts_ms), iso(snapshot.last_ts_ms)) {
        (Some(a), Some(b)) => format!("{a} → {b}"),
        _ => "no timestamps".to_owned(),
    };
    let heading = if markdown {
        "# tokwatch report\n\n"
    } else {
        "tokwatch report\n"
    };
    out.push_str(heading);
    let _ = writeln!(
        out,
        "{} model calls in {} runs ({} records from {} files) · {range} · prices {}",
        tokens(t.events),
        tokens(snapshot.runs.len() as u64),
        tokens(ingest.events),
        ingest.files,
        cell(&snapshot.price_version, markdown)
    );

    let mut totals = new_table(markdown, &["", "tokens", "cost"]);
    totals.add_row(vec![
        "input (all)".to_owned(),
        tokens(t.input_tokens),
        String::new(),
    ]);
    totals.add_row(vec![
        "  uncached".to_owned(),
        tokens(t.uncached_input_tokens),
        String::new(),
    ]);
    totals.add_row(vec![
        "  cache read".to_owned(),
        tokens(t.cache_read_tokens),
        format!("{:.1}% of input", t.cache_hit_ratio() * 100.0),
    ]);
    totals.add_row(vec![
        "  cache write".to_owned(),
        tokens(t.cache_write_tokens),
        String::new(),
    ]);
    totals.add_row(vec![
        "output (all)".to_owned(),
        tokens(t.output_tokens),
        String::new(),
    ]);
    totals.add_row(vec![
        "  reasoning".to_owned(),
        tokens(t.reasoning_tokens),
        String::new(),
    ]);
    if t.reported_events > 0 {
        add_cost_split(&mut totals, t);
    } else {
        totals.add_row(vec![
            "total".to_owned(),
            tokens(t.total_tokens),
            cost_cell(t),
        ]);
    }
    if t.unpriced_events > 0 {
        totals.add_row(vec![
            format!("UNPRICED: {}", calls(t.unpriced_events)),
            tokens(t.unpriced_tokens),
            "not in total".to_owned(),
        ]);
    }
    if t.estimated_events > 0 {
        totals.add_row(vec![
            format!("estimated from text: {}", calls(t.estimated_events)),
            String::new(),
            String::new(),
        ]);
    }
    align_numbers(&mut totals, 1);
    section(&mut out, markdown, "Totals", &totals);

    if !snapshot.periods.is_empty() {
        let label = options.filters.group_by.as_deref().unwrap_or("period");
        let rows: Vec<KeyedAgg> = snapshot
            .periods
            .iter()
            .map(|(p, c)| KeyedAgg {
                name: p.as_str().into(),
                counters: *c,
            })
            .collect();
        section(
            &mut out,
            markdown,
            "By period",
            &keyed_table(markdown, label, &rows, t),
        );
    }
    section(
        &mut out,
        markdown,
        "By agent",
        &keyed_table(markdown, "agent", &snapshot.by_agent, t),
    );
    if snapshot.by_format.len() > 1
        || snapshot
            .by_format
            .first()
            .is_some_and(|(f, _)| *f != crate::types::Format::Native)
    {
        let rows: Vec<KeyedAgg> = snapshot
            .by_format
            .iter()
            .map(|(f, c)| KeyedAgg {
                name: f.name().into(),
                counters: *c,
            })
            .collect();
        section(
            &mut out,
            markdown,
            "By input format",
            &keyed_table(markdown, "format", &rows, t),
        );
    }
    if !snapshot.by_segment.is_empty() {
        // calls without a segment make a `(none)` row: shares add up to 100 %
        let mut segments = snapshot.by_segment.clone();
        let rest = snapshot.unsegmented();
        if rest.events > 0 {
            segments.push(KeyedAgg {
                name: NO_SEGMENT.into(),
                counters: rest,
            });
            segments.sort_by(|a, b| {
                b.counters
                    .cost
                    .cmp(&a.counters.cost)
                    .then(b.counters.total_tokens.cmp(&a.counters.total_tokens))
                    .then_with(|| a.name.cmp(&b.name))
            });
        }
        section(
            &mut out,
            markdown,
            "By segment",
            &keyed_table(markdown, "segment", &segments, t),
        );
    }

    let mut header = vec!["model", "provider"];
    header.extend(COUNTER_HEADER);
    let mut models = new_table(markdown, &header);
    for m in &snapshot.by_model {
        let name = match &m.priced_as {
            Some(p) if **p != *m.name => {
                format!("{} (as {})", cell(&m.name, markdown), cell(p, markdown))
            }
            Some(_) => cell(&m.name, markdown),
            None => format!("{} [unpriced]", cell(&m.name, markdown)),
        };
        let mut cells = vec![name, cell(m.provider.as_deref().unwrap_or("?"), markdown)];
        cells.extend(counter_cells(&m.counters, t));
        models.add_row(cells);
    }
    align_numbers(&mut models, 2);
    section(&mut out, markdown, "By model", &models);
    if let Some(summary) = &snapshot.duplicates {
        duplicates::render_text(&mut out, summary, markdown);
    }

    render_runs(&mut out, snapshot, options, markdown);
    render_ingest(&mut out, ingest, markdown);
    out
}

/// `1 call`, `2 calls`.
fn calls(n: u64) -> String {
    if n == 1 {
        "1 call".to_owned()
    } else {
        format!("{} calls", tokens(n))
    }
}

/// `1 reported call`, `2 reported calls`.
fn reported_calls(n: u64) -> String {
    if n == 1 {
        "1 reported call".to_owned()
    } else {
        format!("{} reported calls", tokens(n))
    }
}

/// The total row, then the parts it adds up (`docs/report-schema.md`): what
/// the calls that reported a cost reported, plus the other priced calls at
/// list prices. Unpriced calls add nothing (their row follows). What the
/// reporting calls would cost at list prices is shown for comparison,
/// marked as not in the total. All amounts have as many decimals as it
/// takes for the shown parts to add up to the shown total (4 in practice;
/// the exact amounts at worst).
fn add_cost_split(totals: &mut Table, t: &Counters) {
    // `cost` is the reported cost where a call reported one, else its
    // computed cost: the rest of `cost` is the computed cost of the others.
    let listed = t.cost.saturating_sub(t.reported_cost);
    let listed_events = t
        .events
        .saturating_sub(t.reported_events)
        .saturating_sub(t.unpriced_events);
    // The reporting calls that are priced too, at list prices.
    let compared_events = t.computed_events.saturating_sub(listed_events);
    let compared = t.computed_cost.saturating_sub(listed);
    let mut parts = vec![t.reported_cost];
    if listed_events > 0 {
        parts.push(listed);
    }
    let places = common_places(t.cost, &parts);
    let money = |amount: Usd| format!("${}", amount.display_rounded(places));
    let unknown = if t.unpriced_events > 0 { "+?" } else { "" };
    totals.add_row(vec![
        "total".to_owned(),
        tokens(t.total_tokens),
        format!("{}{unknown}", money(t.cost)),
    ]);
    totals.add_row(vec![
        format!("  = reported in the logs ({})", calls(t.reported_events)),
        String::new(),
        money(t.reported_cost),
    ]);
    if listed_events > 0 {
        totals.add_row(vec![
            format!("  + at list prices ({})", calls(listed_events)),
            String::new(),
            money(listed),
        ]);
    }
    if compared_events > 0 {
        let which = if compared_events == t.reported_events {
            format!("the {}", reported_calls(compared_events))
        } else {
            format!(
                "{} of the {}",
                tokens(compared_events),
                reported_calls(t.reported_events)
            )
        };
        totals.add_row(vec![
            format!("    ({which} at list prices)"),
            String::new(),
            format!("{}, not in total", dollars(compared)),
        ]);
    }
}

/// The fewest decimals (at least 4, enough to show each part as non-zero)
/// at which the rounded parts add up to the rounded total.
fn common_places(total: Usd, parts: &[Usd]) -> u32 {
    let shown = |amount: Usd, places: u32| {
        Usd::parse_decimal(&amount.display_rounded(places)).unwrap_or(Usd::ZERO)
    };
    let mut places = parts
        .iter()
        .map(|p| {
            let text = p.display_significant(4);
            text.split_once('.').map_or(0, |(_, d)| d.len() as u32)
        })
        .max()
        .unwrap_or(4)
        .max(4);
    while places < 12
        && parts
            .iter()
            .map(|&p| shown(p, places))
            .fold(Usd::ZERO, |a, b| a + b)
            != shown(total, places)
    {
        places += 1;
    }
    places
}

fn render_runs(out: &mut String, snapshot: &Snapshot, options: &ReportOptions, markdown: bool) {
    let shown = if options.top_runs == 0 {
        snapshot.runs.len()
    } else {
        options.top_runs.min(snapshot.runs.len())
    };
    let mut runs = new_table(
        markdown,
        &[
            "run",
            "segment",
            "agents",
            "hops",
            "tokens",
            "×first hop",
            "cost",
            "status",
        ],
    );
    for run in &snapshot.runs[..shown] {
        let path: Vec<String> = run.agent_path().iter().map(|a| cell(a, markdown)).collect();
        let status = match (&run.ended, run.budget_hits.is_empty()) {
            (Some(s), true) => cell(s, markdown),
            (Some(s), false) => format!("{} ! budget", cell(s, markdown)),
            (None, false) => "! budget".to_owned(),
            (None, true) => String::new(),
        };
        runs.add_row(vec![
            cell(&run.run_id, markdown),
            cell(run.segment.as_deref().unwrap_or(""), markdown),
            path.join("→"),
            run.hops.len().to_string(),
            tokens(run.counters().total_tokens),
            run.multiplier()
                .map_or_else(|| "-".to_owned(), |m| format!("{m:.1}×")),
            cost_cell(&run.counters()),
            status,
        ]);
    }
    align_numbers(&mut runs, 3);
    if let Some(column) = runs.column_mut(7) {
        column.set_cell_alignment(CellAlignment::Left);
    }
    let title = if shown < snapshot.runs.len() {
        format!(
            "Runs (top {shown} of {} by cost; --top 0 for all)",
            snapshot.runs.len()
        )
    } else {
        "Runs (by cost)".to_owned()
    };
    section(out, markdown, &title, &runs);

    if options.hops {
        for run in &snapshot.runs[..shown] {
            let mut hops = new_table(
                markdown,
                &[
                    "hop",
                    "agent",
                    "model",
                    "uncached",
                    "cache read",
                    "cache write",
                    "output",
                    "reasoning",
                    "Δ input",
                    "cost",
                    "source",
                ],
            );
            let mut previous: Option<&HopAgg> = None;
            for (index, hop) in run.hops.iter().enumerate() {
                let c = &hop.counters();
                let growth = previous.map_or_else(String::new, |p| {
                    let delta =
                        saturating_i64(c.input_tokens) - saturating_i64(p.usage.input_total());
                    format!("{delta:+}")
                });
                let mut cost = hop
                    .complete_cost()
                    .map_or_else(|| "unpriced".to_owned(), dollars);
                if c.cost_mismatch() {
                    let _ = write!(cost, " (computed {})", dollars(c.computed_cost));
                }
                // a marker, not colour alone: "!" bleeding
                let marker = if hop_bleeding(run, index, &options.rules).is_some() {
                    " !"
                } else {
                    ""
                };
                hops.add_row(vec![
                    format!("{}{marker}", hop.hop),
                    cell(&hop.agent, markdown),
                    cell(&hop.model, markdown),
                    tokens(c.uncached_input_tokens),
                    tokens(c.cache_read_tokens),
                    tokens(c.cache_write_tokens),
                    tokens(c.output_tokens),
                    tokens(c.reasoning_tokens),
                    growth,
                    cost,
                    hop.provenance.as_str().to_owned(),
                ]);
                previous = Some(hop);
            }
            align_numbers(&mut hops, 3);
            if let Some(column) = hops.column_mut(10) {
                column.set_cell_alignment(CellAlignment::Left);
            }
            section(
                out,
                markdown,
                &format!("Run {} hops", cell(&run.run_id, markdown)),
                &hops,
            );
        }
    }
}

fn render_ingest(out: &mut String, ingest: &IngestStats, markdown: bool) {
    let mut line = format!(
        "{} lines, {} events, {} malformed",
        tokens(ingest.lines),
        tokens(ingest.events),
        tokens(ingest.malformed)
    );
    if ingest.invalid_utf8 > 0 || ingest.oversized > 0 {
        let _ = write!(
            line,
            " ({} invalid UTF-8, {} oversized)",
            ingest.invalid_utf8, ingest.oversized
        );
    }
    if ingest.filtered > 0 {
        let _ = write!(
            line,
            ", {} outside the time filter",
            tokens(ingest.filtered)
        );
    }
    for (count, what) in [
        (ingest.ignored, "not model calls"),
        (ingest.duplicates, "duplicates"),
        (ingest.revised, "revised"),
        (ingest.unrevisable, "too late to revise"),
    ] {
        if count > 0 {
            let _ = write!(line, ", {} {what}", tokens(count));
        }
    }
    let formats = line_formats(ingest);
    if formats.len() > 1 || formats.first().is_some_and(|(f, _)| *f != "native") {
        let listed: Vec<String> = formats
            .iter()
            .map(|(f, n)| format!("{f} {}", tokens(*n)))
            .collect();
        let _ = write!(line, "; lines by format: {}", listed.join(", "));
    }
    if markdown {
        let _ = writeln!(out, "\n## Ingest\n\n{line}");
    } else {
        let _ = writeln!(out, "\nIngest: {line}");
    }
    // Lists: indented in a table report, bullets in Markdown (where
    // indented lines would run together into one paragraph).
    let item = if markdown { "- " } else { "  " };
    for sample in &ingest.malformed_samples {
        let _ = writeln!(
            out,
            "{item}{}: {}",
            cell(&sample.location, markdown),
            cell(&sample.reason, markdown)
        );
    }
    let noted = ingest.malformed + ingest.unrevisable;
    if noted > ingest.malformed_samples.len() as u64 {
        let _ = writeln!(
            out,
            "{item}… and {} more",
            noted - ingest.malformed_samples.len() as u64
        );
    }
    let unreadable: Vec<(&str, &str, u64)> = unreadable(ingest).collect();
    if !unreadable.is_empty() {
        let entries = if unreadable.len() == 1 {
            "entry"
        } else {
            "entries"
        };
        let _ = writeln!(
            out,
            "{}{} {entries} skipped (cannot be read):",
            if markdown { "\n" } else { "" },
            unreadable.len()
        );
        if markdown {
            out.push('\n');
        }
        for (name, reason, _) in unreadable {
            let _ = writeln!(
                out,
                "{item}'{}': {}",
                cell(name, markdown),
                cell(reason, markdown)
            );
        }
    }
}

/// Lines per input format over all sources, most first.
fn line_formats(ingest: &IngestStats) -> Vec<(&'static str, u64)> {
    let mut total: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for source in &ingest.sources {
        for (format, lines) in &source.formats {
            *total.entry(format).or_default() += lines;
        }
    }
    let mut formats: Vec<(&'static str, u64)> = total.into_iter().collect();
    formats.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    formats
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Usd {
        Usd::parse_decimal(text).unwrap()
    }

    #[test]
    fn the_shown_parts_add_up_to_the_shown_total() {
        // Rounded separately at 4 decimals, 0.00005 + 0.00005 would show as
        // 0.0001 + 0.0001 = 0.0002 beside a total of 0.0001.
        let (a, b) = (usd("0.00005"), usd("0.00005"));
        assert_eq!(common_places(a + b, &[a, b]), 5);
        let (a, b) = (usd("0.01534"), usd("36.55286"));
        assert_eq!(common_places(a + b, &[a, b]), 4);
        // Exact at worst.
        let (a, b) = (usd("0.000000000005"), usd("0.000000000005"));
        assert_eq!(common_places(a + b, &[a, b]), 12);
        // A tiny part is never shown as $0.0000.
        assert_eq!(
            common_places(usd("1.00002"), &[usd("1"), usd("0.00002")]),
            5
        );
    }

    #[test]
    fn a_total_of_reported_costs_alone_has_no_list_price_part() {
        let mut t = Counters {
            events: 3,
            reported_events: 3,
            reported_cost: usd("0.3"),
            cost: usd("0.3"),
            computed_events: 1,
            computed_cost: usd("0.25"),
            ..Counters::default()
        };
        let mut table = new_table(false, &["", "tokens", "cost"]);
        add_cost_split(&mut table, &t);
        let text = table.to_string();
        assert!(text.contains("= reported in the logs (3 calls)"), "{text}");
        assert!(!text.contains("+ at list prices"), "{text}");
        assert!(
            text.contains("(1 of the 3 reported calls at list prices)")
                && text.contains("$0.2500, not in total"),
            "{text}"
        );
        // No reported call priced: nothing to compare.
        t.computed_events = 0;
        t.computed_cost = Usd::ZERO;
        let mut table = new_table(false, &["", "tokens", "cost"]);
        add_cost_split(&mut table, &t);
        assert!(!table.to_string().contains("not in total"));
    }
}
