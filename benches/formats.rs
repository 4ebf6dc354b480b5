//! Decoding throughput per input format (native, OpenAI Chat Completions,
//! OTLP/JSON) against a bare serde baseline over the same lines, measured
//! in the same run.
//!
//! Each corpus is generated in memory (seeded, deterministic), one line per
//! record, and measured three ways, interleaved over `TOKWATCH_BENCH_RUNS`
//! rounds (default 7; the sides' results are checked to agree after the
//! first):
//!
//! - **baseline**: `serde_json::from_slice` of each line into a typed struct
//!   of the fields tokwatch reads for that format, strings borrowed (`&str`:
//!   the fastest typed parse serde_json offers), counting model calls and
//!   summing tokens;
//! - **decode**: a `Decoder` (detection included) emitting events into a sum;
//! - **decode+fold**: `parsed::fold_lines` into a `Ledger`, then a snapshot.
//!
//! All single-threaded: one-core figures.
//!
//! cargo bench --bench formats
//! TOKWATCH_BENCH_LINES=50000 TOKWATCH_BENCH_RUNS=3 cargo bench --bench formats
//! TOKWATCH_BENCH_ONLY=otlp/decode perf record -g target/release/deps/formats-<hash>
//!   (`TOKWATCH_BENCH_ONLY`: a format, a side, or `format/side`; sides are
//!   `baseline`, `decode`, `fold`)

use std::fmt::Write as _;
use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::ensure;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use tokwatch::ingest::formats::{Decoder, Emit, Outcome};
use tokwatch::ingest::parsed::fold_lines;
use tokwatch::ingest::{Ingestor, TimeWindow};
use tokwatch::model::{EventKind, Ledger, LedgerConfig, TelemetryEvent};
use tokwatch::pricing::PriceBook;
use tokwatch::workload::{RunSpec, Style, workflow_run};

#[path = "support/native_baseline.rs"]
mod native_baseline;
use native_baseline::Baseline as NativeBaseline;

const DEFAULT_LINES: usize = 200_000;
const SEED: u64 = 7;

// ------------------------------------------------------------------ corpora

/// Lines in one buffer, as a read buffer holds them.
struct Corpus {
    name: &'static str,
    text: Vec<u8>,
    lines: Vec<Range<usize>>,
}

impl Corpus {
    fn new(name: &'static str) -> Self {
        Corpus {
            name,
            text: Vec::new(),
            lines: Vec::new(),
        }
    }

    fn push(&mut self, line: &str) {
        let start = self.text.len();
        self.text.extend_from_slice(line.as_bytes());
        self.lines.push(start..self.text.len());
        self.text.push(b'\n');
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.lines.iter().map(|r| &self.text[r.clone()])
    }

    /// Lines numbered from 1, as sources number them.
    fn numbered(&self) -> impl Iterator<Item = (u64, &[u8])> {
        (1_u64..).zip(self.lines())
    }
}

/// The native corpus of `benches/report.rs` (`workload::write_bench_corpus`,
/// seed 7): its first `lines` records, hops with budget and `run_end`
/// events between them, unique run ids.
fn native_corpus(lines: usize) -> Corpus {
    const TIERS: [&str; 3] = ["free", "pro", "enterprise"];
    // `workload`'s sample start, 2026-11-23T08:00:00Z.
    const START_MS: i64 = 1_795_420_800_000;
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut corpus = Corpus::new("native");
    let mut run = 0_i64;
    while corpus.len() < lines {
        run += 1;
        let (style, team) = if run % 3 == 0 {
            (Style::Naive, "naive")
        } else {
            (Style::Lean, "lean")
        };
        let user_no = rng.random_range(1..=500_usize);
        let spec = RunSpec {
            run_id: format!("bench-{run:08}"),
            team,
            user: format!("{team}-u{user_no:03}"),
            tier: TIERS[user_no % TIERS.len()],
            start_ms: START_MS + run * 7_000,
        };
        for record in workflow_run(style, &spec, &mut rng) {
            if corpus.len() == lines {
                break;
            }
            corpus.push(&record.to_line());
        }
    }
    corpus
}

const WORDS: [&str; 24] = [
    "the",
    "invoice",
    "total",
    "was",
    "computed",
    "from",
    "line",
    "items",
    "and",
    "tax",
    "rates",
    "per",
    "region;",
    "please",
    "confirm",
    "whether",
    "shipping",
    "applies",
    "to",
    "order",
    "#4821,",
    "which",
    "customer",
    "requested.",
];

/// Assistant text of 200–600 bytes, with the escapes real content has.
fn content(rng: &mut ChaCha8Rng) -> String {
    let target = rng.random_range(200..=600_usize);
    let mut text = String::with_capacity(target + 32);
    while text.len() < target {
        let word = WORDS[rng.random_range(0..WORDS.len())];
        match rng.random_range(0..40_u32) {
            0 => text.push_str("\\n\\n"),
            1 => {
                let _ = write!(text, "\\\"{word}\\\" ");
                continue;
            }
            _ => text.push(' '),
        }
        text.push_str(word);
    }
    text
}

fn hex_id(rng: &mut ChaCha8Rng) -> String {
    format!("{:016x}", rng.random::<u64>())
}

/// OpenAI Chat Completions response objects (non-streamed), unique ids.
fn openai_corpus(lines: usize) -> Corpus {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + 1);
    let mut corpus = Corpus::new("openai");
    for n in 0..lines as u64 {
        let prompt = rng.random_range(200..=12_000_u64);
        let cached = if rng.random_bool(0.6) {
            prompt * rng.random_range(0..=90_u64) / 100 / 128 * 128
        } else {
            0
        };
        let completion = rng.random_range(20..=1_500_u64);
        let reasoning = if rng.random_bool(0.3) {
            completion * rng.random_range(0..=80_u64) / 100
        } else {
            0
        };
        let id = format!("{}{n:06}", hex_id(&mut rng));
        let created = 1_760_000_000 + n * 3;
        let content = content(&mut rng);
        corpus.push(&format!(
            r#"{{"id":"chatcmpl-{id}","object":"chat.completion","created":{created},"model":"gpt-4o-mini-2024-07-18","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}","refusal":null,"annotations":[]}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{total},"prompt_tokens_details":{{"cached_tokens":{cached},"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":{reasoning},"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"service_tier":"default","system_fingerprint":"fp_560af6e559"}}"#,
            total = prompt + completion,
        ));
    }
    corpus
}

fn attr(out: &mut String, key: &str, value: &str) {
    if !out.ends_with('[') {
        out.push(',');
    }
    let _ = write!(out, r#"{{"key":"{key}","value":{value}}}"#);
}

fn s(text: &str) -> String {
    format!(r#"{{"stringValue":"{text}"}}"#)
}

/// `intValue` as the OTLP/JSON mapping writes int64: a string.
fn int(n: u64) -> String {
    format!(r#"{{"intValue":"{n}"}}"#)
}

fn span(
    out: &mut String,
    (trace, id, parent): (&str, &str, Option<&str>),
    name: &str,
    start_ns: u64,
    attrs: impl FnOnce(&mut String),
) {
    if !out.ends_with('[') {
        out.push(',');
    }
    let _ = write!(out, r#"{{"traceId":"{trace}","spanId":"{id}","#);
    if let Some(parent) = parent {
        let _ = write!(out, r#""parentSpanId":"{parent}","#);
    }
    let _ = write!(
        out,
        r#""name":"{name}","kind":1,"startTimeUnixNano":"{start_ns}","endTimeUnixNano":"{}","attributes":["#,
        start_ns + 1_800_000_000
    );
    attrs(out);
    out.push_str(r#"],"status":{}}"#);
}

/// OTLP/JSON export requests, one per line: an `invoke_agent` span and two
/// `chat` spans under it, with GenAI usage; unique trace ids.
fn otlp_corpus(lines: usize) -> Corpus {
    const AGENTS: [&str; 4] = ["Triage", "Planner", "Researcher", "Writer"];
    const MODELS: [(&str, &str); 2] = [
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
        ("gpt-4.1", "gpt-4.1-2025-04-14"),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + 2);
    let mut corpus = Corpus::new("otlp");
    let mut line = String::new();
    for n in 0..lines as u64 {
        let trace = format!("{}{n:016x}", hex_id(&mut rng));
        let agent_id = hex_id(&mut rng);
        let agent = AGENTS[rng.random_range(0..AGENTS.len())];
        let start = (1_760_000_000 + n * 5) * 1_000_000_000;
        line.clear();
        line.push_str(r#"{"resourceSpans":[{"resource":{"attributes":["#);
        attr(&mut line, "service.name", &s("support-bot"));
        let user = format!("user-{}", rng.random_range(1..=500_u32));
        attr(&mut line, "enduser.id", &s(&user));
        line.push_str(r#"]},"scopeSpans":[{"scope":{"name":"opentelemetry.instrumentation.openai_v2","version":"2.1b0"},"spans":["#);
        span(
            &mut line,
            (&trace, &agent_id, None),
            &format!("invoke_agent {agent}"),
            start,
            |out| {
                attr(out, "gen_ai.operation.name", &s("invoke_agent"));
                attr(out, "gen_ai.provider.name", &s("openai"));
                attr(out, "gen_ai.agent.name", &s(agent));
                attr(out, "gen_ai.conversation.id", &s(&format!("conv_{trace}")));
            },
        );
        for call in 0..2_u64 {
            let (request, response) = MODELS[rng.random_range(0..MODELS.len())];
            let input = rng.random_range(200..=12_000_u64);
            let cached = input * rng.random_range(0..=90_u64) / 100 / 128 * 128;
            let output = rng.random_range(20..=1_500_u64);
            let id = hex_id(&mut rng);
            span(
                &mut line,
                (&trace, &id, Some(&agent_id)),
                &format!("chat {request}"),
                start + (call + 1) * 2_000_000_000,
                |out| {
                    attr(out, "gen_ai.operation.name", &s("chat"));
                    attr(out, "gen_ai.provider.name", &s("openai"));
                    attr(out, "gen_ai.request.model", &s(request));
                    attr(out, "gen_ai.response.model", &s(response));
                    attr(out, "gen_ai.usage.input_tokens", &int(input));
                    attr(out, "gen_ai.usage.cache_read.input_tokens", &int(cached));
                    attr(out, "gen_ai.usage.output_tokens", &int(output));
                    attr(out, "server.port", &int(443));
                },
            );
        }
        line.push_str("]}]}]}");
        corpus.push(&line);
    }
    corpus
}

// ---------------------------------------------------------------- baselines

/// OpenAI: what the decoder reads of a Chat Completions object.
#[derive(Deserialize)]
#[allow(dead_code)]
struct OpenAiBaseline<'a> {
    id: Option<&'a str>,
    model: Option<&'a str>,
    created: Option<i64>,
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct OpenAiUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
    prompt_tokens_details: Option<OpenAiDetails>,
    completion_tokens_details: Option<OpenAiDetails>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct OpenAiDetails {
    cached_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
}

/// OTLP: the request's nesting down to the attributes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OtlpRequest<'a> {
    #[serde(borrow, default)]
    resource_spans: Vec<OtlpResourceSpans<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct OtlpResourceSpans<'a> {
    #[serde(borrow)]
    resource: Option<OtlpResource<'a>>,
    #[serde(borrow, default)]
    scope_spans: Vec<OtlpScopeSpans<'a>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct OtlpResource<'a> {
    #[serde(borrow, default)]
    attributes: Vec<OtlpKeyValue<'a>>,
}

#[derive(Deserialize)]
struct OtlpScopeSpans<'a> {
    #[serde(borrow, default)]
    spans: Vec<OtlpSpan<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct OtlpSpan<'a> {
    trace_id: &'a str,
    span_id: &'a str,
    parent_span_id: Option<&'a str>,
    name: Option<&'a str>,
    start_time_unix_nano: Option<&'a str>,
    end_time_unix_nano: Option<&'a str>,
    #[serde(borrow, default)]
    attributes: Vec<OtlpKeyValue<'a>>,
    status: Option<OtlpStatus>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct OtlpStatus {
    code: Option<i64>,
}

#[derive(Deserialize)]
struct OtlpKeyValue<'a> {
    key: &'a str,
    #[serde(borrow)]
    value: Option<OtlpAnyValue<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct OtlpAnyValue<'a> {
    string_value: Option<&'a str>,
    int_value: Option<&'a str>,
    double_value: Option<f64>,
    bool_value: Option<bool>,
}

/// Model calls and their tokens (input + output).
type Tally = (u64, u64);

/// Each baseline adds a line's model calls to the tally; `false` for a line
/// that does not parse.
fn baseline_native(line: &[u8], tally: &mut Tally) -> bool {
    let Ok(record) = serde_json::from_slice::<NativeBaseline<'_>>(line) else {
        return false;
    };
    if matches!(record.kind, None | Some("hop")) {
        tally.0 += 1;
        tally.1 += record.input_tokens.unwrap_or(0) + record.output_tokens.unwrap_or(0);
    }
    true
}

fn baseline_openai(line: &[u8], tally: &mut Tally) -> bool {
    let Ok(record) = serde_json::from_slice::<OpenAiBaseline<'_>>(line) else {
        return false;
    };
    if let Some(usage) = record.usage {
        tally.0 += 1;
        tally.1 += usage.prompt_tokens.unwrap_or(0) + usage.completion_tokens.unwrap_or(0);
    }
    true
}

fn baseline_otlp(line: &[u8], tally: &mut Tally) -> bool {
    let Ok(request) = serde_json::from_slice::<OtlpRequest<'_>>(line) else {
        return false;
    };
    for span in request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        let (mut chat, mut tokens) = (false, 0);
        for kv in &span.attributes {
            let Some(value) = &kv.value else { continue };
            match kv.key {
                "gen_ai.operation.name" => chat = value.string_value == Some("chat"),
                "gen_ai.usage.input_tokens" | "gen_ai.usage.output_tokens" => {
                    match value.int_value.map(str::parse::<u64>) {
                        Some(Ok(n)) => tokens += n,
                        _ => return false,
                    }
                }
                _ => {}
            }
        }
        if chat {
            tally.0 += 1;
            tally.1 += tokens;
        }
    }
    true
}

// ------------------------------------------------------------------- sides

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Baseline,
    Decode,
    Fold,
}

const SIDES: [Side; 3] = [Side::Baseline, Side::Decode, Side::Fold];

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Baseline => "baseline",
            Side::Decode => "decode",
            Side::Fold => "fold",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Side::Baseline => "bare serde baseline",
            Side::Decode => "tokwatch decode only",
            Side::Fold => "tokwatch decode + fold",
        }
    }
}

type Baseline = fn(&[u8], &mut Tally) -> bool;

/// Makes a corpus of so many lines.
type Generate = fn(usize) -> Corpus;

fn baseline(corpus: &Corpus, parse: Baseline) -> anyhow::Result<Tally> {
    let mut tally = (0, 0);
    let mut failed = 0_u64;
    for line in corpus.lines() {
        if !parse(line, &mut tally) {
            failed += 1;
        }
    }
    ensure!(
        failed == 0,
        "{}: {failed} lines the baseline rejects",
        corpus.name
    );
    Ok(tally)
}

/// Sums the model calls a decoder emits.
#[derive(Default)]
struct Sum {
    calls: u64,
    tokens: u64,
}

impl Emit for Sum {
    fn event(&mut self, _line_no: u64, event: TelemetryEvent<'_>) {
        if event.kind == EventKind::Hop {
            self.calls += 1;
            self.tokens += event.usage.total();
        }
    }
}

fn decode(corpus: &Corpus) -> anyhow::Result<Tally> {
    let mut decoder = Decoder::plain("bench");
    let mut sum = Sum::default();
    let mut rejected = 0_u64;
    for (line_no, line) in corpus.numbered() {
        if let Outcome::Rejected { .. } = decoder.decode_bytes(line, line_no, &mut sum) {
            rejected += 1;
        }
    }
    decoder.flush(&mut sum);
    ensure!(rejected == 0, "{}: {rejected} lines rejected", corpus.name);
    Ok((sum.calls, sum.tokens))
}

fn fold(corpus: &Corpus) -> anyhow::Result<Tally> {
    let mut ledger = Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            recent_capacity: 0,
            period: None,
            per_minute: true,
            ..LedgerConfig::default()
        },
    );
    let mut ingestor = Ingestor::new(&mut ledger, TimeWindow::default());
    let source = ingestor.stats.add_source("bench".into(), "bench".into());
    let mut decoder = Decoder::plain("bench");
    fold_lines(&mut ingestor, source, &mut decoder, corpus.numbered());
    let stats = &ingestor.stats;
    let rejected = stats.malformed + stats.invalid_utf8 + stats.oversized;
    ensure!(rejected == 0, "{}: {rejected} lines rejected", corpus.name);
    let snapshot = ledger.snapshot();
    Ok((snapshot.totals.events, snapshot.totals.total_tokens))
}

// ------------------------------------------------------------- measurement

/// On-CPU time of this thread (`/proc/thread-self/schedstat`, Linux).
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

#[derive(Default)]
struct Samples {
    wall: Vec<f64>,
    cpu: Vec<f64>,
    tally: Option<Tally>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

fn best(values: &[f64]) -> f64 {
    values.iter().copied().reduce(f64::min).unwrap_or(f64::NAN)
}

impl Samples {
    /// Runs `f` once, timed.
    fn run(&mut self, f: impl FnOnce() -> anyhow::Result<Tally>) -> anyhow::Result<()> {
        let cpu_start = thread_cpu();
        let start = Instant::now();
        let tally = std::hint::black_box(f()?);
        let wall = start.elapsed();
        let cpu = thread_cpu()
            .zip(cpu_start)
            .map(|(end, start)| end.saturating_sub(start));
        ensure!(
            self.tally.is_none_or(|t| t == tally),
            "a round gave a different result"
        );
        self.tally = Some(tally);
        self.wall.push(wall.as_secs_f64());
        if let Some(cpu) = cpu {
            self.cpu.push(cpu.as_secs_f64());
        }
        Ok(())
    }
}

struct Bench {
    corpus: Corpus,
    baseline: Baseline,
    samples: [Samples; 3],
}

impl Bench {
    fn new(corpus: Corpus, baseline: Baseline) -> Self {
        Bench {
            corpus,
            baseline,
            samples: Default::default(),
        }
    }

    fn run(&mut self, side: Side) -> anyhow::Result<()> {
        let corpus = &self.corpus;
        let parse = self.baseline;
        let samples = &mut self.samples[side as usize];
        match side {
            Side::Baseline => samples.run(|| baseline(corpus, parse)),
            Side::Decode => samples.run(|| decode(corpus)),
            Side::Fold => samples.run(|| fold(corpus)),
        }
    }

    /// All sides agree on model calls; tokwatch's two on tokens.
    fn check(&self) -> anyhow::Result<()> {
        let [base, decode, fold] = self.samples.each_ref().map(|s| s.tally);
        let name = self.corpus.name;
        let calls: Vec<u64> = [base, decode, fold].iter().flatten().map(|t| t.0).collect();
        ensure!(
            calls.windows(2).all(|w| w[0] == w[1]),
            "{name}: the sides disagree on model calls: baseline {base:?}, decode {decode:?}, fold {fold:?}"
        );
        if let (Some(decode), Some(fold)) = (decode, fold) {
            ensure!(
                decode.1 == fold.1,
                "{name}: decode sums {} tokens, decode+fold {}",
                decode.1,
                fold.1
            );
        }
        Ok(())
    }

    fn print(&self, runs: usize) {
        let corpus = &self.corpus;
        let lines = corpus.len() as f64;
        let mb = corpus.text.len() as f64 / 1e6;
        let calls = self.samples.iter().find_map(|s| s.tally);
        println!();
        println!(
            "### {}: {} lines, {:.1} MB ({:.0} B/line), {} model calls, {} tokens",
            corpus.name,
            corpus.len(),
            mb,
            corpus.text.len() as f64 / lines,
            calls.map_or_else(|| "?".into(), |t| t.0.to_string()),
            calls.map_or_else(|| "?".into(), |t| t.1.to_string()),
        );
        if let Some((base, decode)) = self.samples[0].tally.zip(self.samples[1].tally) {
            println!(
                "(baseline tokens, input + output: {}{})",
                base.1,
                if base.1 == decode.1 {
                    ", as tokwatch's"
                } else {
                    ", tokwatch's differ"
                }
            );
        }
        println!();
        println!(
            "| side | median s | best s | median cpu s | lines/s (median) | MB/s (median) | × baseline (median / best) |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let base = &self.samples[Side::Baseline as usize];
        for side in SIDES {
            let s = &self.samples[side as usize];
            if s.wall.is_empty() {
                continue;
            }
            let (med, top) = (median(&s.wall), best(&s.wall));
            let ratio = if base.wall.is_empty() {
                "–".to_owned()
            } else {
                format!(
                    "{:.2}× / {:.2}×",
                    med / median(&base.wall),
                    top / best(&base.wall)
                )
            };
            println!(
                "| {} | {med:.3} | {top:.3} | {:.3} | {:.0} | {:.0} | {ratio} |",
                side.label(),
                median(&s.cpu),
                lines / med,
                mb / med,
            );
        }
        println!("({runs} rounds, interleaved, one thread)");
    }
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() -> anyhow::Result<()> {
    let runs: usize = env("TOKWATCH_BENCH_RUNS").unwrap_or(7).max(1);
    let lines: usize = env("TOKWATCH_BENCH_LINES").unwrap_or(DEFAULT_LINES);
    let only = std::env::var("TOKWATCH_BENCH_ONLY").ok();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!("cores: {cores} (every side runs on one thread)");

    let wanted = |format: &str, side: Side| {
        only.as_deref().is_none_or(|o| {
            o == format || o == side.name() || o == format!("{format}/{}", side.name())
        })
    };
    let generated = Instant::now();
    let formats: [(&str, Generate, Baseline); 3] = [
        ("native", native_corpus, baseline_native),
        ("openai", openai_corpus, baseline_openai),
        ("otlp", otlp_corpus, baseline_otlp),
    ];
    // Only the corpora measured (a profile of one side is then that side's).
    let mut benches: Vec<Bench> = formats
        .into_iter()
        .filter(|(name, ..)| SIDES.iter().any(|side| wanted(name, *side)))
        .map(|(_, generate, parse)| Bench::new(generate(lines), parse))
        .collect();
    println!(
        "corpora generated in {:.1} s",
        generated.elapsed().as_secs_f64()
    );

    // Every side of every format once per round; after the first, the sides
    // must agree (and every later round must give the same results).
    for round in 0..runs {
        for bench in &mut benches {
            for side in SIDES {
                if wanted(bench.corpus.name, side) {
                    bench.run(side)?;
                }
            }
            if round == 0 {
                bench.check()?;
            }
        }
    }
    for bench in &benches {
        if bench.samples.iter().any(|s| !s.wall.is_empty()) {
            bench.print(runs);
        }
    }
    Ok(())
}
