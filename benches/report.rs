//! `report` throughput against a bare "split lines + serde_json typed parse"
//! loop over the same file, measured in the same run: tokwatch on one thread
//! (the one-core figure) and pipelined (parse thread + aggregator: 2 cores).
//!
//! cargo bench --bench report                 # generates a 1,000,000-event corpus in a temp dir
//! TOKWATCH_BENCH_FILE=path cargo bench --bench report
//! TOKWATCH_BENCH_ONLY=json cargo bench --bench report   # `tokwatch report --format json`, the binary, with insights and without

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokwatch::model::advisor::AdvisorRules;
use tokwatch::model::insights::BleedRules;

use tokwatch::advise::EarlyAdvisor;
use tokwatch::ingest::formats::native;
use tokwatch::ingest::lines::Line;
use tokwatch::ingest::sources::files;
use tokwatch::ingest::sources::files::DiscoverError;
use tokwatch::ingest::{Ingestor, LineOrigin, TimeWindow, pipeline};
use tokwatch::model::{Ledger, LedgerConfig};
use tokwatch::pricing::PriceBook;

#[path = "support/native_baseline.rs"]
mod native_baseline;
use native_baseline::Baseline;

/// Lines of `path` through tokwatch's own reading loop (1 MiB chunks), so
/// both sides of the comparison read and split the file identically.
fn lines(path: &Path, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    files::for_each_line(&mut file, files::DEFAULT_MAX_LINE_BYTES, |_, line| {
        if let Line::Complete(bytes) = line {
            f(bytes);
        }
    })
}

fn baseline(path: &Path) -> io::Result<(u64, u64)> {
    let (mut events, mut tokens) = (0_u64, 0_u64);
    lines(path, |line| {
        if let Ok(record) = serde_json::from_slice::<Baseline<'_>>(line) {
            events += 1;
            tokens += record.input_tokens.unwrap_or(0) + record.output_tokens.unwrap_or(0);
        }
    })?;
    Ok((events, tokens))
}

/// tokwatch's parser alone (no ledger), for the breakdown.
fn parse_only(path: &Path) -> io::Result<(u64, u64)> {
    let (mut events, mut tokens) = (0_u64, 0_u64);
    lines(path, |line| {
        if let Ok(e) = native::parse_line(
            line,
            LineOrigin {
                source: "x",
                rough: false,
            },
        ) {
            events += 1;
            tokens += e.usage.total();
        }
    })?;
    Ok((events, tokens))
}

/// The ledger alone: events parsed beforehand, then applied and snapshotted
/// (`TOKWATCH_BENCH_SERIES=1`: keeping the per-series sums `--metrics` reads).
fn ledger_only(events: &[tokwatch::model::TelemetryEvent<'_>]) -> (u64, u64) {
    let series = std::env::var_os("TOKWATCH_BENCH_SERIES")
        .map(|_| tokwatch::model::ledger::SeriesCaps::default());
    let mut ledger = Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            recent_capacity: 0,
            period: None,
            per_minute: true,
            series,
            ..LedgerConfig::default()
        },
    );
    for event in events {
        ledger.apply(event);
    }
    let snapshot = ledger.snapshot();
    (events.len() as u64, snapshot.totals.total_tokens)
}

/// A `--metrics` scrape at full cardinality: 2,000 (agent, segment, model)
/// series (200 agents × 10 segments, 20 models), the view taken from the
/// ledger and rendered as text (`TOKWATCH_BENCH_ONLY=scrape`). Returns the
/// time of the best of `runs` and the text's size.
fn scrape(runs: usize) -> (Duration, usize) {
    use std::borrow::Cow;
    use tokwatch::model::{EventKind, TelemetryEvent, Usage};
    let mut ledger = Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            series: Some(tokwatch::model::ledger::SeriesCaps::default()),
            ..LedgerConfig::default()
        },
    );
    let models = [
        "gpt-4.1",
        "gpt-4.1-mini",
        "claude-sonnet-4",
        "o4-mini",
        "gemini-2.5-pro",
    ];
    for i in 0..2_000_u32 {
        let model = format!("{}-v{}", models[(i % 5) as usize], i % 4);
        ledger.apply(&TelemetryEvent {
            kind: EventKind::Hop,
            ts_ms: Some(1_764_000_000_000 + i64::from(i) * 1_000),
            run_id: Cow::Owned(format!("run-{}", i % 300)),
            hop: None,
            agent: Cow::Owned(format!("agent-{}", i % 200)),
            parent_agent: None,
            user: None,
            segment: Some(Cow::Owned(format!("segment-{}", i / 200))),
            task: None,
            tool: None,
            provider: None,
            model: Cow::Owned(model),
            usage: Usage {
                input_uncached: 1_000 + u64::from(i),
                cache_read: 500,
                output: 200,
                reasoning: 50,
                ..Usage::default()
            },
            reported_cost: None,
            latency_ms: None,
            status: None,
            estimated: false,
            format: tokwatch::types::Format::Native,
            call: None,
            prompt: None,
        });
    }
    let mut best = Duration::MAX;
    let mut size = 0;
    for _ in 0..runs.max(1) * 10 {
        let start = Instant::now();
        let view = tokwatch::metrics::MetricsView {
            series: ledger.series_view().unwrap_or_default(),
            ..tokwatch::metrics::MetricsView::default()
        };
        let text = tokwatch::metrics::render(&view);
        best = best.min(start.elapsed());
        size = std::hint::black_box(text).len();
    }
    (best, size)
}

/// What `tokwatch report` does before rendering: read, parse, fold, snapshot,
/// through `read` (one thread: `files::read_files`; two: `pipeline::read_files`).
type ReadFiles = fn(
    &[PathBuf],
    usize,
    &std::sync::Arc<tokwatch::ingest::formats::DecoderConfig>,
    &mut Ingestor<'_>,
) -> Result<(), DiscoverError>;

fn tokwatch_report(path: &Path, read: ReadFiles) -> anyhow::Result<(u64, u64)> {
    tokwatch_report_with(path, read, None)
}

/// The report's ledger after `read` folded `path` into it, and the events
/// read; with `early`, the advisor that read the runs as they ended
/// (`tokwatch advise` and `compare` on more than one core).
fn fold_report(
    path: &Path,
    read: ReadFiles,
    early: bool,
) -> Result<(Ledger, u64, Option<EarlyAdvisor>), DiscoverError> {
    let mut ledger = Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            recent_capacity: 0,
            period: None,
            per_minute: true,
            ..LedgerConfig::default().unlimited()
        },
    );
    let early = early.then(|| {
        ledger.note_ended_runs();
        EarlyAdvisor::start(
            AdvisorRules::default(),
            BleedRules::default(),
            ledger.prices().clone(),
        )
    });
    let (early, ended) = early.unzip();
    let mut ingestor = Ingestor::new(&mut ledger, TimeWindow::default());
    ingestor.ended = ended;
    read(
        &[path.to_path_buf()],
        files::DEFAULT_MAX_LINE_BYTES,
        &std::sync::Arc::default(),
        &mut ingestor,
    )?;
    let events = ingestor.stats.events;
    Ok((ledger, events, early))
}

/// [`tokwatch_report`], with the advisor over every run when `advised` is
/// given (what `tokwatch advise` does: the fold with the early advisor,
/// then the advice, nothing rendered): it gets the fold's time (with the
/// snapshot) and the wait for the advice after it.
fn tokwatch_report_with(
    path: &Path,
    read: ReadFiles,
    advised: Option<&mut Vec<FoldAndWait>>,
) -> anyhow::Result<(u64, u64)> {
    // as `tokwatch advise` does it: on every core (`TOKWATCH_BENCH_ADVISOR_THREADS`
    // sets how many, 1 for the advisor on the aggregating thread alone)
    let threads = std::env::var("TOKWATCH_BENCH_ADVISOR_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    // `TOKWATCH_BENCH_EARLY=0`: no advisor during the fold (all of it after)
    let early = std::env::var("TOKWATCH_BENCH_EARLY").map_or(true, |e| e != "0");
    let start = Instant::now();
    let (ledger, events, early) =
        fold_report(path, read, advised.is_some() && early && threads > 1)?;
    let snapshot = ledger.snapshot();
    let folded = start.elapsed();
    if let Some(advised) = advised {
        let advice = tokwatch::advise::advise_runs(
            &snapshot,
            (AdvisorRules::default(), BleedRules::default()),
            ledger.prices(),
            std::num::NonZeroUsize::new(threads),
            early,
            std::collections::BTreeMap::new(),
        );
        std::hint::black_box(advice);
        advised.push((folded, start.elapsed().saturating_sub(folded)));
    }
    Ok((events, snapshot.totals.total_tokens))
}

/// A fold with the advice (`advise`): the fold (with the snapshot), and
/// the wait for the advice after it.
type FoldAndWait = (Duration, Duration);

/// The wait over the fold: what the advice costs after the fold, measured
/// within one run, where the ratio of two runs' walls also carries the
/// noise between them. (The early advisor runs at idle priority, but its
/// work still slows the fold somewhat: the wall ratio shows that part.)
fn print_after_the_fold(seen: &mut [FoldAndWait]) {
    if seen.is_empty() {
        return;
    }
    let share = |(fold, wait): &FoldAndWait| wait.as_secs_f64() / fold.as_secs_f64();
    seen.sort_by(|a, b| share(a).total_cmp(&share(b)));
    let list: Vec<String> = seen
        .iter()
        .map(|(fold, wait)| {
            format!(
                "{:.0} ms after {:.3} s",
                wait.as_secs_f64() * 1e3,
                fold.as_secs_f64()
            )
        })
        .collect();
    println!("advice after the fold, each report: {}", list.join(", "));
    println!(
        "wait after the fold / fold: median {:.3}, worst {:.3}",
        share(&seen[seen.len() / 2]),
        share(&seen[seen.len() - 1])
    );
}

/// `tokwatch report PATH --format json` as a user runs it (the binary,
/// the document written to a sink), with its `insights` and without
/// (`--no-insights`): the wall time of each.
fn json_report_process(path: &Path, insights: bool) -> anyhow::Result<Duration> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tokwatch"));
    command
        .arg("report")
        .arg(path)
        .args(["--format", "json"])
        .stdout(std::process::Stdio::null());
    if !insights {
        command.arg("--no-insights");
    }
    let start = Instant::now();
    let status = command.status()?;
    let wall = start.elapsed();
    anyhow::ensure!(status.success(), "tokwatch report failed: {status}");
    Ok(wall)
}

/// Best and median of the JSON reports' walls, with insights and without,
/// and their ratios.
fn print_json_reports(with: &mut [Duration], without: &mut [Duration]) {
    if with.is_empty() || without.is_empty() {
        return;
    }
    with.sort();
    without.sort();
    let secs = |d: Duration| d.as_secs_f64();
    let summary = |list: &[Duration]| (secs(list[0]), secs(list[list.len() / 2]));
    let (with_best, with_median) = summary(with);
    let (without_best, without_median) = summary(without);
    println!(
        "tokwatch report --format json (process): {with_best:.3} s best, {with_median:.3} s median; --no-insights: {without_best:.3} s best, {without_median:.3} s median"
    );
    println!(
        "ratio json report with insights / without: {:.3}x best, {:.3}x median (goal <= 1.10x; {} each, interleaved)",
        with_best / without_best,
        with_median / without_median,
        with.len()
    );
}

/// Best (minimum) time of several runs.
#[derive(Default)]
struct Best {
    time: Option<Duration>,
    /// On-CPU time of this thread (Linux), which other processes sharing
    /// the machine do not inflate the way they inflate wall time; of the
    /// whole process (every thread) when `all_threads`.
    cpu: Option<Duration>,
    all_threads: bool,
    /// With `all_threads`: this (the aggregating) thread's share; the rest
    /// is the parse thread's. Each stage's CPU bounds the wall time the
    /// pipeline reaches when it has two cores to itself.
    main_cpu: Option<Duration>,
    parse_cpu: Option<Duration>,
    events: u64,
}

/// Nanoseconds this thread has spent on a CPU (`/proc/thread-self/schedstat`).
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// CPU time of the whole process, threads that ended included
/// (`/proc/self/stat` utime + stime, in clock ticks: 10 ms steps).
fn process_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis((utime + stime) * 10))
}

fn min(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Best {
    fn all_threads() -> Self {
        Best {
            all_threads: true,
            ..Best::default()
        }
    }

    fn run<E>(&mut self, f: impl FnOnce() -> Result<(u64, u64), E>) -> Result<(), E> {
        let clock = if self.all_threads {
            process_cpu
        } else {
            thread_cpu
        };
        let cpu_start = clock();
        let main_start = thread_cpu();
        let start = Instant::now();
        let (events, checksum) = f()?;
        let elapsed = start.elapsed();
        let since = |end: Option<Duration>, start: Option<Duration>| {
            end.zip(start).map(|(end, start)| end.saturating_sub(start))
        };
        let cpu = since(clock(), cpu_start);
        let main_cpu = since(thread_cpu(), main_start);
        std::hint::black_box(checksum);
        self.time = min(self.time, Some(elapsed));
        self.cpu = min(self.cpu, cpu);
        if self.all_threads {
            self.main_cpu = min(self.main_cpu, main_cpu);
            let parse_cpu = cpu
                .zip(main_cpu)
                .map(|(all, main)| all.saturating_sub(main));
            self.parse_cpu = min(self.parse_cpu, parse_cpu);
        }
        self.events = events;
        Ok(())
    }

    fn secs(&self) -> f64 {
        self.time.map_or(f64::NAN, |t| t.as_secs_f64())
    }

    fn cpu_secs(&self) -> f64 {
        self.cpu.map_or(f64::NAN, |t| t.as_secs_f64())
    }

    fn print(&self, label: &str) {
        if self.time.is_none() {
            return;
        }
        println!(
            "{label:<36}{:>7.3} s wall {:>10.0} ev/s | {:>7.3} s cpu {:>10.0} ev/s ({} events)",
            self.secs(),
            self.events as f64 / self.secs(),
            self.cpu_secs(),
            self.events as f64 / self.cpu_secs(),
            self.events
        );
        if let (Some(parse), Some(main)) = (self.parse_cpu, self.main_cpu) {
            println!(
                "{:<36}{:>7.3} s cpu parse thread | {:>7.3} s cpu aggregating thread",
                "",
                parse.as_secs_f64(),
                main.as_secs_f64()
            );
        }
    }
}

/// The advisor's pass over a folded report alone, on one thread, best of
/// `TOKWATCH_BENCH_RUNS` (`TOKWATCH_BENCH_ONLY=advisor`): the part of the
/// insights' cost that is theirs, without the fold's noise around it.
fn advisor_alone(path: &Path) -> anyhow::Result<()> {
    let runs: usize = std::env::var("TOKWATCH_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let (ledger, _, _) = fold_report(path, pipeline::read_files, false)?;
    let snapshot = ledger.snapshot();
    let hops: usize = snapshot.runs.iter().map(|r| r.hops.len()).sum();
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        let advisor = tokwatch::advise::advise_final_runs(
            &snapshot.runs,
            &AdvisorRules::default(),
            &BleedRules::default(),
            ledger.prices(),
            1,
        );
        std::hint::black_box(advisor.advice(
            snapshot.first_ts_ms.zip(snapshot.last_ts_ms),
            &snapshot.runs,
        ));
        best = best.min(start.elapsed());
    }
    println!(
        "advisor alone, one thread: {:.3} s for {} runs, {hops} hops: {:.0} ns per hop (best of {runs})",
        best.as_secs_f64(),
        snapshot.runs.len(),
        best.as_secs_f64() * 1e9 / hops as f64
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if std::env::var("TOKWATCH_BENCH_ONLY").as_deref() == Ok("scrape") {
        let (best, size) = scrape(7);
        println!(
            "metrics scrape, 2,000 series: view + render {:.2} ms (best of 70), {size} bytes of text",
            best.as_secs_f64() * 1e3
        );
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let path: PathBuf = match std::env::var_os("TOKWATCH_BENCH_FILE") {
        Some(p) => PathBuf::from(p),
        None => {
            let path = dir.path().join("bench.jsonl");
            let bytes = tokwatch::workload::write_bench_corpus(&path, 1_000_000, 7)?;
            println!("corpus: 1,000,000 events, {bytes} bytes");
            path
        }
    };
    if std::env::var("TOKWATCH_BENCH_ONLY").as_deref() == Ok("advisor") {
        return advisor_alone(&path);
    }
    let runs: usize = std::env::var("TOKWATCH_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    // `TOKWATCH_BENCH_ONLY=baseline|ours|pipe|insights|json|parse|ledger|scrape|advisor` runs one part (for perf).
    let only = std::env::var("TOKWATCH_BENCH_ONLY").ok();
    let parts = std::env::var_os("TOKWATCH_BENCH_PARTS").is_some()
        || matches!(only.as_deref(), Some("parse" | "ledger"));
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let (mut base, mut ours, mut parse) = (Best::default(), Best::default(), Best::default());
    let mut pipe = Best::all_threads();
    // Warm the page cache, then interleave the sides so they share cache and
    // CPU-frequency conditions; report the best of `runs` for each.
    lines(&path, |line| {
        std::hint::black_box(line);
    })?;
    let data = if parts && wanted("ledger") {
        std::fs::read(&path)?
    } else {
        Vec::new()
    };
    let parsed: Vec<_> = data
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            native::parse_line(
                line,
                LineOrigin {
                    source: "x",
                    rough: false,
                },
            )
            .ok()
        })
        .collect();
    let mut ledger = Best::default();
    let mut advised = Best::all_threads();
    let mut fold_and_wait = Vec::new();
    let (mut json_with, mut json_without) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        if wanted("json") {
            // in turn first, so that neither always follows the other
            let first_with = json_with.len() % 2 == 0;
            for insights in [first_with, !first_with] {
                let wall = json_report_process(&path, insights)?;
                if insights {
                    json_with.push(wall);
                } else {
                    json_without.push(wall);
                }
            }
        }
        if wanted("insights") {
            advised.run(|| {
                tokwatch_report_with(&path, pipeline::read_files, Some(&mut fold_and_wait))
            })?;
        }
        if wanted("baseline") {
            base.run(|| baseline(&path))?;
        }
        if wanted("ours") {
            ours.run(|| tokwatch_report(&path, files::read_files))?;
        }
        if wanted("pipe") {
            pipe.run(|| tokwatch_report(&path, pipeline::read_files))?;
        }
        if parts && wanted("parse") {
            parse.run(|| parse_only(&path))?;
        }
        if parts && wanted("ledger") {
            ledger.run(|| Ok::<_, io::Error>(ledger_only(&parsed)))?;
        }
    }
    if parts {
        parse.print("tokwatch parse only (no ledger):");
        ledger.print("tokwatch ledger+snapshot only:");
    }
    base.print("baseline split+serde typed parse:");
    ours.print("tokwatch 1 thread (1 core):");
    pipe.print("tokwatch pipelined (2 cores):");
    advised.print("tokwatch pipelined + advice (as advise):");
    print_after_the_fold(&mut fold_and_wait);
    print_json_reports(&mut json_with, &mut json_without);
    if pipe.time.is_some() && advised.time.is_some() {
        println!(
            "ratio fold + advice (advise) / fold alone: {:.3}x wall, {:.3}x cpu (best of {runs}, interleaved; the report's goal is on the json line)",
            advised.secs() / pipe.secs(),
            advised.cpu_secs() / pipe.cpu_secs()
        );
    }
    if base.time.is_some() && ours.time.is_some() {
        println!(
            "ratio tokwatch 1 thread / baseline: {:.2}x wall, {:.2}x cpu (one core each; goal <= 1.30x; best of {runs}, interleaved)",
            ours.secs() / base.secs(),
            ours.cpu_secs() / base.cpu_secs()
        );
    }
    if base.time.is_some() && pipe.time.is_some() {
        println!(
            "ratio pipelined / baseline: {:.2}x wall (2 cores vs 1), {:.2}x cpu (both threads' total vs the baseline's one)",
            pipe.secs() / base.secs(),
            pipe.cpu_secs() / base.cpu_secs()
        );
    }
    Ok(())
}
