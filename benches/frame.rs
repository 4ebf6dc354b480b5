//! Dashboard benchmarks (issue 4).
//!
//! ```text
//! cargo bench --bench frame                 # every part, short defaults
//! cargo bench --bench frame -- frames       # goal: a frame < 2 ms at 250x70, 10k runs / 100k hops
//! cargo bench --bench frame -- publish      # goal: a publication < 5 ms at 10k runs / 100k hops (also in frames)
//! cargo bench --bench frame -- onscreen     # goal: an appended line is on screen within 100 ms (tmux)
//! cargo bench --bench frame -- idle         # goal: idle CPU <= 0.25 % of a core (tmux + --jsonl)
//! ```
//!
//! Environment:
//! - `TOKWATCH_BENCH_RUNS` (10000) and `TOKWATCH_BENCH_HOPS_PER_RUN` (10): ledger size for `frames`;
//! - `TOKWATCH_BENCH_FRAMES` (300): frames timed per screen;
//! - `TOKWATCH_BENCH_PUBLISHES` (20): publications timed by `frames`, each
//!   after about ten runs' worth of new lines;
//! - `TOKWATCH_BENCH_APPENDS` (40): appends timed by `onscreen`;
//! - `TOKWATCH_BENCH_ONSCREEN_RUNS` (0): generated runs already in the followed
//!   directory for `onscreen` (besides the sample logs), to see a big ledger's publish cost;
//! - `TOKWATCH_BENCH_IDLE_SECS` (60): measured idle period (after 5 s to settle).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokwatch::model::advisor::{Advisor, AdvisorRules};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokwatch::config::keys::{Action, Bindings, Keymap};
use tokwatch::ingest::formats::Decoder;
use tokwatch::ingest::parsed::fold_lines;
use tokwatch::ingest::{IngestStats, Ingestor, TimeWindow};
use tokwatch::model::budget::{Limits, Scope};
use tokwatch::model::insights::{BleedRules, Insights, InsightsIndex};
use tokwatch::model::{Ledger, LedgerConfig};
use tokwatch::pricing::PriceBook;
use tokwatch::ui::budgets::{BudgetBoard, BudgetEditor, EditorInput};
use tokwatch::ui::data::{Published, Rows};
use tokwatch::ui::state::ViewState;
use tokwatch::ui::theme::Theme;
use tokwatch::ui::update::{Input, update};
use tokwatch::ui::views::{ViewCx, list_rows, render};
use tokwatch::workload::{RunSpec, Style, workflow_run};

const TOKWATCH: &str = env!("CARGO_BIN_EXE_tokwatch");

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Native lines of `runs` workflow runs with `hops` hops each (the workflow
/// has 8; further hops repeat the last one at the next positions), plus
/// budget and `run_end` records. Users and segments are bounded.
fn run_lines(runs: u64, hops: u32, seed: u64, prefix: &str) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut lines = Vec::new();
    // 2026-11-23T08:00:00Z
    let start = 1_795_420_800_000_i64;
    for run in 0..runs {
        let style = if run % 3 == 0 {
            Style::Naive
        } else {
            Style::Lean
        };
        let team = if style == Style::Naive {
            "naive"
        } else {
            "lean"
        };
        let user_no = rng.random_range(1..=500_usize);
        let spec = RunSpec {
            run_id: format!("{prefix}{run:06}"),
            team,
            user: format!("{team}-u{user_no:03}"),
            tier: ["free", "pro", "enterprise"][user_no % 3],
            start_ms: start + i64::try_from(run).unwrap() * 7_000,
        };
        let records = workflow_run(style, &spec, &mut rng);
        let last_hop = records
            .iter()
            .rev()
            .find(|r| r.kind.is_none())
            .cloned()
            .unwrap();
        for record in records {
            if record.kind == Some("run_end") {
                for extra in 9..=hops {
                    let mut more = last_hop.clone();
                    more.hop = Some(extra);
                    lines.push(more.to_line());
                }
            }
            if record.hop.is_none_or(|h| h <= hops) {
                lines.push(record.to_line());
            }
        }
    }
    lines
}

struct Stats {
    mean: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

fn stats(mut samples: Vec<f64>) -> Stats {
    samples.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[i]
    };
    Stats {
        mean: samples.iter().sum::<f64>() / samples.len() as f64,
        p50: pct(0.50),
        p99: pct(0.99),
        max: pct(1.0),
    }
}

fn time_ms(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e3
}

/// On-CPU time of this thread, ms (`/proc/thread-self/schedstat`; reading it
/// costs a few µs): what other processes on a shared machine inflate least.
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e6)
}

/// (wall ms, on-CPU ms) of `f`.
fn time_both(f: impl FnOnce()) -> (f64, f64) {
    let c = thread_cpu_ms();
    let t = Instant::now();
    f();
    let wall = t.elapsed().as_secs_f64() * 1e3;
    (wall, thread_cpu_ms() - c)
}

// ---------------------------------------------------------------- frames

/// A dashboard publication as the live service builds it: the advisor's
/// and the insights index's first sync (every run analysed once), then per
/// publish — a few new hops in live runs and a few new runs, as between two
/// 100 ms publications — `snapshot_live` of 2,000 runs, the advisor (sync:
/// pointer comparisons, changed runs analysed; advice) and the insights
/// (the index's sync and its answer), each timed and summed.
fn advisor_publish(
    ledger: &mut Ledger,
    lines: &[String],
    runs: u64,
    hops: u32,
    prices: &PriceBook,
) {
    let mut advisor = Advisor::new(AdvisorRules::default(), BleedRules::default(), prices);
    let first = time_ms(|| advisor.sync(ledger));
    println!(
        "advisor      first sync ({} runs)    {first:7.2} ms",
        advisor.runs_held()
    );
    let mut index = InsightsIndex::new(BleedRules::default());
    let first = time_ms(|| index.sync(ledger));
    println!("insights     first sync              {first:7.2} ms");
    let publishes: usize = env_or("TOKWATCH_BENCH_PUBLISHES", 20).max(1);
    let extra = run_lines(10 * publishes as u64, hops, 12, "live-");
    let mut sync_ms = Vec::new();
    let mut advice_ms = Vec::new();
    let mut live_ms = Vec::new();
    let mut index_ms = Vec::new();
    let mut insights_ms = Vec::new();
    let mut total_ms = Vec::new();
    for chunk in extra.chunks(extra.len() / publishes) {
        let mut ingestor = Ingestor::new(ledger, TimeWindow::default());
        let source = ingestor.stats.source_named("bench", "bench");
        let mut decoder = Decoder::plain("bench");
        fold_lines(
            &mut ingestor,
            source,
            &mut decoder,
            (1..).zip(chunk.iter().map(|l| l.as_bytes())),
        );
        let mut snapshot = None;
        live_ms.push(time_ms(|| snapshot = Some(ledger.snapshot_live(2_000))));
        let mut snapshot = snapshot.unwrap();
        sync_ms.push(time_ms(|| advisor.sync(ledger)));
        advice_ms.push(time_ms(|| {
            let span = snapshot.first_ts_ms.zip(snapshot.last_ts_ms);
            snapshot.advice = Some(Arc::new(advisor.advice(span, &snapshot.runs)));
        }));
        index_ms.push(time_ms(|| index.sync(ledger)));
        let mut insights = None;
        insights_ms.push(time_ms(|| {
            insights = Some(index.insights(&snapshot, prices, Some(1_795_500_000_000)));
        }));
        let insights = insights.unwrap();
        assert_eq!(insights.bleeding.len(), snapshot.runs.len());
        let n = live_ms.len() - 1;
        total_ms.push(live_ms[n] + sync_ms[n] + advice_ms[n] + index_ms[n] + insights_ms[n]);
    }
    let _ = (lines, runs);
    for (name, ms) in [
        ("dashboard    snapshot_live(2000)  ", live_ms),
        ("advisor      sync per publish     ", sync_ms),
        ("advisor      advice per publish   ", advice_ms),
        ("insights     sync per publish     ", index_ms),
        ("insights     answer per publish   ", insights_ms),
        ("publication  all of the above     ", total_ms),
    ] {
        let s = stats(ms);
        println!(
            "{name} mean {:7.2} ms  p50 {:7.2}  max {:7.2}",
            s.mean, s.p50, s.max
        );
    }
}

/// The `frames` ledger: `runs` generated runs of `hops` hops folded.
fn bench_ledger(runs: u64, hops: u32) -> (Vec<String>, Ledger, IngestStats) {
    let lines = run_lines(runs, hops, 11, "r-");
    let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
    let mut ingestor = Ingestor::new(&mut ledger, TimeWindow::default());
    let source = ingestor.stats.source_named("bench", "bench");
    let mut decoder = Decoder::plain("bench");
    fold_lines(
        &mut ingestor,
        source,
        &mut decoder,
        (1..).zip(lines.iter().map(|l| l.as_bytes())),
    );
    let ingest = ingestor.stats;
    assert_eq!(ingest.malformed, 0);
    (lines, ledger, ingest)
}

/// The publications of `frames` alone (for a profiler).
fn publish() {
    let runs: u64 = env_or("TOKWATCH_BENCH_RUNS", 10_000);
    let hops: u32 = env_or("TOKWATCH_BENCH_HOPS_PER_RUN", 10);
    let (lines, mut ledger, _) = bench_ledger(runs, hops);
    advisor_publish(&mut ledger, &lines, runs, hops, &PriceBook::embedded());
}

fn frames() {
    let runs: u64 = env_or("TOKWATCH_BENCH_RUNS", 10_000);
    let hops: u32 = env_or("TOKWATCH_BENCH_HOPS_PER_RUN", 10);
    let n: usize = env_or("TOKWATCH_BENCH_FRAMES", 300);
    let (width, height) = (250_u16, 70_u16);

    let prices = PriceBook::embedded();
    let (lines, mut ledger, ingest) = bench_ledger(runs, hops);

    // What the aggregator does per publish (at most every snapshot_interval).
    let mut snapshot_ms = Vec::new();
    let mut insights_ms = Vec::new();
    let rules = BleedRules::default();
    let mut published = None;
    for _ in 0..10 {
        let mut snapshot = None;
        snapshot_ms.push(time_ms(|| snapshot = Some(ledger.snapshot())));
        let snapshot = snapshot.unwrap();
        let mut insights = None;
        insights_ms.push(time_ms(|| {
            insights = Some(Insights::compute(
                &snapshot,
                &rules,
                &prices,
                Some(1_795_500_000_000),
            ));
        }));
        published = Some(Published {
            snapshot: Arc::new(snapshot),
            stats: Arc::new(ingest.clone()),
            insights: Arc::new(insights.unwrap()),
            lines_per_sec: 1234.0,
            last_event_ms: Some(1_795_500_000_000),
            sources: vec!["logs/".into()],
            reading_backlog: false,
            live: None,
            prices: Some(Arc::new(prices.clone())),
            advisor: Some(Arc::new(AdvisorRules::default())),
            anomalies: Arc::default(),
        });
    }
    let data = published.unwrap();
    advisor_publish(&mut ledger, &lines, runs, hops, &prices);
    let total_hops: usize = data.snapshot.runs.iter().map(|r| r.hops.len()).sum();
    println!(
        "ledger: {} runs, {} hops, {} lines; terminal {width}x{height}; {n} frames per screen",
        data.snapshot.runs.len(),
        total_hops,
        lines.len()
    );
    let s = stats(snapshot_ms);
    println!(
        "per publish  Ledger::snapshot     mean {:7.2} ms  p50 {:7.2}  max {:7.2}",
        s.mean, s.p50, s.max
    );
    let s = stats(insights_ms);
    println!(
        "per publish  Insights::compute    mean {:7.2} ms  p50 {:7.2}  max {:7.2}",
        s.mean, s.p50, s.max
    );

    let keymap = Keymap::new(&Bindings::default()).unwrap();
    let theme = Theme::builtin("dark").unwrap();
    let mut board_scoped = BudgetBoard::default();
    for scope in [
        Scope::Global,
        Scope::Agent("writer".into()),
        Scope::Segment("lean/pro".into()),
    ] {
        board_scoped.desired.set(
            scope,
            Limits {
                per_hop_limit: Some(9_000),
                total_run_limit: Some(60_000),
                ..Limits::default()
            },
            0,
        );
    }
    // What the app does once per snapshot: usage against each budget.
    let usage_start = Instant::now();
    board_scoped.refresh_usage(&data.snapshot);
    println!(
        "BudgetBoard::refresh_usage (3 budgets, once per snapshot): {:.2} ms",
        usage_start.elapsed().as_secs_f64() * 1e3
    );
    let empty_board = BudgetBoard::default();

    // (name, keys, with the 3 budgets, with the budget editor open in review)
    let screens: Vec<(&str, Vec<Input>, bool, bool)> = vec![
        ("overview", vec![], false, false),
        (
            "runs",
            vec![Input::Action(Action::ScreenRuns)],
            false,
            false,
        ),
        (
            "runs, sorted by name",
            vec![
                Input::Action(Action::ScreenRuns),
                Input::Action(Action::NextSort),
                Input::Action(Action::NextSort),
                Input::Action(Action::NextSort),
                Input::Action(Action::NextSort),
                Input::Action(Action::NextSort),
                Input::Action(Action::NextSort),
            ],
            false,
            false,
        ),
        (
            "runs, filtered 'writer'",
            [
                Input::Action(Action::ScreenRuns),
                Input::Action(Action::Filter),
            ]
            .into_iter()
            .chain("writer".chars().map(Input::FilterChar))
            .chain([Input::FilterCommit])
            .collect(),
            false,
            false,
        ),
        (
            "run waterfall",
            vec![
                Input::Action(Action::ScreenRuns),
                Input::Action(Action::DrillDown),
            ],
            false,
            false,
        ),
        (
            "runs of an agent (drill from agents)",
            vec![
                Input::Action(Action::ScreenAgents),
                Input::Action(Action::DrillDown),
            ],
            false,
            false,
        ),
        (
            "agents",
            vec![Input::Action(Action::ScreenAgents)],
            false,
            false,
        ),
        (
            "segments",
            vec![Input::Action(Action::ScreenSegments)],
            false,
            false,
        ),
        (
            "models",
            vec![Input::Action(Action::ScreenModels)],
            false,
            false,
        ),
        (
            "events",
            vec![Input::Action(Action::ScreenEvents)],
            false,
            false,
        ),
        (
            "budgets (none set)",
            vec![Input::Action(Action::ScreenBudgets)],
            false,
            false,
        ),
        (
            "budgets (3 scopes)",
            vec![Input::Action(Action::ScreenBudgets)],
            true,
            false,
        ),
        (
            "budget editor, review (3 scopes)",
            vec![Input::Action(Action::ScreenBudgets)],
            true,
            true,
        ),
        (
            "help overlay on runs",
            vec![
                Input::Action(Action::ScreenRuns),
                Input::Action(Action::Help),
            ],
            false,
            false,
        ),
    ];
    println!(
        "{:<38} {:>10} {:>9} {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9} | {:>9}",
        "screen (ms)",
        "rows",
        "mean",
        "p99",
        "max",
        "cpu mean",
        "cpu p99",
        "full mean",
        "full p99",
        "fcpu mean",
        "fcpu p99",
        "render"
    );
    for (name, inputs, scoped, review) in screens {
        let mut view = ViewState {
            page_rows: list_rows(height - 2),
            ..ViewState::default()
        };
        let board = if scoped { &board_scoped } else { &empty_board };
        for input in inputs {
            update(&mut view, input, &data, board);
        }
        if review {
            // what `b` then Enter on the global budget opens (the app opens
            // the editor as an effect of `update`)
            let mut editor = BudgetEditor::new(Scope::Global, board.editor_start(&Scope::Global));
            editor.input(EditorInput::Enter, &data.snapshot);
            view.editor = Some(editor);
        }
        let mut rows = Rows::default();
        let rows_ms = stats(
            (0..20)
                .map(|_| time_ms(|| rows = Rows::compute(&data, view.screen(), &view)))
                .collect(),
        );
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        let draw = |terminal: &mut Terminal<TestBackend>, i: usize| {
            // the clock moves, as in the app (the status line's "ago" changes)
            let now_ms = 1_795_500_000_000 + i as i64 * 1_000;
            terminal
                .draw(|frame| {
                    render(
                        frame,
                        &ViewCx {
                            data: &data,
                            view: &view,
                            theme: &theme,
                            keymap: &keymap,
                            rows: &rows,
                            now_ms,
                            budgets: board,
                        },
                    );
                })
                .unwrap();
        };
        for i in 0..5 {
            draw(&mut terminal, i);
        }
        // steady state: what is drawn differs little from the previous frame
        let (steady, steady_cpu): (Vec<f64>, Vec<f64>) =
            (0..n).map(|i| time_both(|| draw(&mut terminal, i))).unzip();
        // full repaint: the previous frame is forgotten (screen switch, resize)
        let (full, full_cpu): (Vec<f64>, Vec<f64>) = (0..n)
            .map(|i| {
                terminal.clear().unwrap();
                time_both(|| draw(&mut terminal, i))
            })
            .unzip();
        // render alone, into a fresh buffer (no diff, no backend)
        let render_only: Vec<f64> = (0..n)
            .map(|i| {
                let mut frame_term = Terminal::new(TestBackend::new(width, height)).unwrap();
                let mut frame = frame_term.get_frame();
                let t = Instant::now();
                render(
                    &mut frame,
                    &ViewCx {
                        data: &data,
                        view: &view,
                        theme: &theme,
                        keymap: &keymap,
                        rows: &rows,
                        now_ms: 1_795_500_000_000 + i as i64 * 1_000,
                        budgets: board,
                    },
                );
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        let (s, f, r) = (stats(steady), stats(full), stats(render_only));
        let (sc, fc) = (stats(steady_cpu), stats(full_cpu));
        println!(
            "{name:<38} {:>10.3} {:>9.3} {:>9.3} {:>9.3} | {:>9.3} {:>9.3} | {:>9.3} {:>9.3} | {:>9.3} {:>9.3} | {:>9.3}",
            rows_ms.p50,
            s.mean,
            s.p99,
            s.max,
            sc.mean,
            sc.p99,
            f.mean,
            f.p99,
            fc.mean,
            fc.p99,
            r.mean
        );
    }
    println!(
        "rows = Rows::compute p50 (per snapshot, sort/filter change, and every key press); \
         mean/p99/max = Terminal::draw wall, steady state; cpu = the same frames' on-CPU time (schedstat, tick-quantized: p99 reads ~4 ms at 250 Hz); \
         full/fcpu = after Terminal::clear (full repaint); render = render() alone, wall"
    );
}

// ---------------------------------------------------------------- tmux helpers

struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str, width: u16, height: u16, command: &str) -> Tmux {
        let socket = format!("tokwatch-bench-{name}-{}", std::process::id());
        let status = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg(command)
            .status()
            .expect("tmux");
        assert!(status.success(), "tmux new-session failed");
        Tmux { socket }
    }

    fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pane_pid(&self) -> u32 {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "list-panes", "-F", "#{pane_pid}"])
            .output()
            .expect("tmux list-panes");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    fn wait_for(&self, needle: &str, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.capture().contains(needle) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// A dashboard command with a private config and state dir.
fn dashboard_command(home: &Path, args: &str) -> String {
    format!(
        "exec env XDG_CONFIG_HOME={home}/config XDG_STATE_HOME={home}/state NO_COLOR= {TOKWATCH} {args}",
        home = home.display()
    )
}

fn copy_samples(dir: &Path) {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_logs");
    let status = Command::new("cp")
        .arg("-r")
        .arg(samples.join("."))
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The "calls N" figure of the Overview.
fn calls(screen: &str) -> Option<u64> {
    let at = screen.find("calls ")?;
    screen[at + 6..].split_whitespace().next()?.parse().ok()
}

// ---------------------------------------------------------------- onscreen

fn onscreen() {
    let appends: usize = env_or("TOKWATCH_BENCH_APPENDS", 40);
    let extra_runs: u64 = env_or("TOKWATCH_BENCH_ONSCREEN_RUNS", 0);
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("logs");
    std::fs::create_dir_all(&dir).unwrap();
    copy_samples(&dir);
    if extra_runs > 0 {
        let lines = run_lines(extra_runs, 10, 5, "big-");
        std::fs::write(dir.join("big.jsonl"), lines.join("\n") + "\n").unwrap();
    }
    let live = dir.join("live.jsonl");
    std::fs::write(&live, "").unwrap();
    let tmux = Tmux::start(
        "onscreen",
        160,
        48,
        &dashboard_command(home.path(), &format!("--follow {}", dir.display())),
    );
    // wait until the backlog is shown and stable
    let mut shown = None;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let now = calls(&tmux.capture());
        if now.is_some() && now == shown {
            break;
        }
        shown = now;
        std::thread::sleep(Duration::from_millis(500));
    }
    let calls_before = shown.expect("the dashboard shows no 'calls' figure");
    println!(
        "onscreen: tmux 160x48, {calls_before} calls shown before appending ({extra_runs} extra runs); {appends} appends"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut latencies = Vec::new();
    let mut missed = 0;
    for i in 0..appends {
        std::thread::sleep(Duration::from_millis(rng.random_range(150..450)));
        let line = format!(
            "{{\"ts\":\"2026-11-27T09:00:{:02}.000Z\",\"run_id\":\"onscreen-{i}\",\"hop\":1,\"agent\":\"planner\",\"model\":\"gpt-4o-mini\",\"input_tokens\":1000,\"output_tokens\":100}}\n",
            i % 60
        );
        let needle = format!("calls {} ", calls_before + i as u64 + 1);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&live)
            .unwrap();
        let t = Instant::now();
        std::io::Write::write_all(&mut file, line.as_bytes()).unwrap();
        drop(file);
        match tmux.wait_for(&needle, Duration::from_secs(2)) {
            Some(_) => latencies.push(t.elapsed().as_secs_f64() * 1e3),
            None => missed += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "append -> on screen: n={} p50 {:.1} ms  p95 {:.1} ms  max {:.1} ms  (min {:.1}; not seen within 2 s: {missed}; polling capture-pane every 5 ms)",
        latencies.len(),
        pct(0.5),
        pct(0.95),
        pct(1.0),
        pct(0.0)
    );
}

// ---------------------------------------------------------------- idle

/// CPU time of a process: (utime+stime in clock ticks as seconds, sum of
/// its threads' schedstat run time in seconds).
fn cpu_of(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    // fields[0] is field 3 (state): utime is field 14, stime field 15
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = 100.0; // CLK_TCK on Linux
    let mut sched = 0.0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            sched += text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1e9;
        }
    }
    (ticks / hz, sched)
}

fn idle() {
    let secs: u64 = env_or("TOKWATCH_BENCH_IDLE_SECS", 60);
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("logs");
    std::fs::create_dir_all(&dir).unwrap();
    copy_samples(&dir);
    let tmux = Tmux::start(
        "idle",
        160,
        48,
        &dashboard_command(home.path(), &format!("--follow {}", dir.display())),
    );
    let tui_pid = tmux.pane_pid();
    let mut headless = Command::new(TOKWATCH)
        .args(["--follow", dir.to_str().unwrap(), "--jsonl"])
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_STATE_HOME", home.path().join("state"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let comm = std::fs::read_to_string(format!("/proc/{tui_pid}/comm")).unwrap_or_default();
    assert_eq!(
        comm.trim(),
        "tokwatch",
        "pane pid {tui_pid} is not tokwatch"
    );
    let (tui0, jsonl0) = (cpu_of(tui_pid), cpu_of(headless.id()));
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (tui1, jsonl1) = (cpu_of(tui_pid), cpu_of(headless.id()));
    let wall = t.elapsed().as_secs_f64();
    for (name, a, b) in [
        ("dashboard (tmux 160x48)", tui0, tui1),
        ("--jsonl --interval 1s", jsonl0, jsonl1),
    ] {
        println!(
            "idle {name:<24} {wall:.1} s: utime+stime {:.3} s = {:.3} % of a core; schedstat {:.4} s = {:.3} %",
            b.0 - a.0,
            (b.0 - a.0) / wall * 100.0,
            b.1 - a.1,
            (b.1 - a.1) / wall * 100.0
        );
    }
    let _ = headless.kill();
    let _ = headless.wait();
    drop(tmux);
}

fn main() {
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |p: &str| parts.is_empty() || parts.iter().any(|a| a == p);
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    if wanted("frames") {
        frames();
    }
    if parts.iter().any(|a| a == "publish") {
        publish();
    }
    if wanted("onscreen") {
        onscreen();
    }
    if wanted("idle") {
        idle();
    }
}
