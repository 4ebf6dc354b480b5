//! Golden screens of the dashboard on ratatui's TestBackend, from the sample
//! workload, with a pinned clock; and untrusted text never reaching the screen.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use tokwatch::model::advisor::{Advisor, AdvisorRules};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokwatch::config::keys::{Action, Bindings, Keymap};
use tokwatch::ingest::sources::files;
use tokwatch::ingest::{Ingestor, TimeWindow};
use tokwatch::model::insights::{BleedRules, Insights};
use tokwatch::model::{Ledger, LedgerConfig};
use tokwatch::pricing::PriceBook;
use tokwatch::ui::budgets::{BudgetBoard, BudgetEditor};
use tokwatch::ui::data::{Published, Rows};
use tokwatch::ui::state::ViewState;
use tokwatch::ui::theme::Theme;
use tokwatch::ui::update::{Input, update};
use tokwatch::ui::views::{ViewCx, list_rows, render};

/// 2026-11-27T09:01:00Z: one minute after the last sample event.
const NOW_MS: i64 = 1_796_202_100_000;

fn published(paths: &[&str]) -> Published {
    let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
    let mut ingestor = Ingestor::new(&mut ledger, TimeWindow::default());
    let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    let files = files::discover(&paths).unwrap();
    files::read_files(
        &files,
        files::DEFAULT_MAX_LINE_BYTES,
        &Default::default(),
        &mut ingestor,
    )
    .unwrap();
    let stats = ingestor.stats;
    let mut snapshot = ledger.snapshot();
    let mut advisor = Advisor::new(
        AdvisorRules::default(),
        BleedRules::default(),
        ledger.prices(),
    );
    advisor.sync(&ledger);
    snapshot.advice = Some(Arc::new(advisor.advice(
        snapshot.first_ts_ms.zip(snapshot.last_ts_ms),
        &snapshot.runs,
    )));
    let insights = Insights::compute(
        &snapshot,
        &BleedRules::default(),
        &PriceBook::embedded(),
        None,
    );
    Published {
        snapshot: Arc::new(snapshot),
        stats: Arc::new(stats),
        insights: Arc::new(insights),
        lines_per_sec: 0.0,
        last_event_ms: Some(NOW_MS - 4_000),
        sources: vec!["sample_logs".into()],
        reading_backlog: false,
        live: None,
        prices: Some(Arc::new(PriceBook::embedded())),
        advisor: Some(Arc::new(AdvisorRules::default())),
        anomalies: Arc::default(),
    }
}

fn keymap() -> Keymap {
    Keymap::new(&Bindings::default()).unwrap()
}

/// Applies `actions`, then draws a `width`×`height` screen.
fn screen(data: &Published, actions: &[Action], width: u16, height: u16) -> String {
    let inputs: Vec<Input> = actions.iter().map(|a| Input::Action(*a)).collect();
    draw(data, &inputs, &BudgetBoard::default(), width, height)
}

/// Applies `inputs`, then draws a `width`×`height` screen with `board`'s budgets.
fn draw(
    data: &Published,
    inputs: &[Input],
    board: &BudgetBoard,
    width: u16,
    height: u16,
) -> String {
    let mut view = ViewState {
        page_rows: list_rows(height - 2),
        ..ViewState::default()
    };
    for input in inputs {
        let effect = update(&mut view, input.clone(), data, board);
        // what the app does after every input
        view.hold_clock(NOW_MS);
        if let Some(tokwatch::ui::update::Effect::EditBudget(_)) = effect {
            // what the app does: open the editor, prefilled from the desired state
            view.editor = Some(BudgetEditor::new(
                tokwatch::model::budget::Scope::Agent("writer".into()),
                tokwatch::ui::budgets::EditorStart::default(),
            ));
        }
    }
    render_view(data, &view, board, (width, height), NOW_MS)
}

fn golden(name: &str, actions: &[Action]) {
    let data = published(&["sample_logs"]);
    insta::assert_snapshot!(format!("{name}_80x24"), screen(&data, actions, 80, 24));
    insta::assert_snapshot!(format!("{name}_160x48"), screen(&data, actions, 160, 48));
}

/// The sizes the table screens are checked at: the smallest supported
/// terminal, a common one, and a wide one.
fn golden_sizes(name: &str, actions: &[Action]) {
    let data = published(&["sample_logs"]);
    for (width, height) in [(80, 24), (120, 30), (200, 60)] {
        insta::assert_snapshot!(
            format!("{name}_{width}x{height}"),
            screen(&data, actions, width, height)
        );
    }
}

#[test]
fn overview() {
    golden("overview", &[]);
}

#[test]
fn runs() {
    golden_sizes("runs", &[Action::ScreenRuns]);
}

#[test]
fn run_detail_waterfall() {
    golden_sizes("run_detail", &[Action::ScreenRuns, Action::DrillDown]);
}

#[test]
fn advice_ranked_with_the_evidence_of_the_selected_one() {
    golden_sizes("advice", &[Action::ScreenAdvice, Action::Down]);
}

#[test]
fn a_run_what_if_with_every_recommendation_applied() {
    // Enter on a recommendation opens the run it saves most in; `w` re-draws it
    golden_sizes(
        "run_what_if",
        &[Action::ScreenAdvice, Action::DrillDown, Action::WhatIf],
    );
    let data = published(&["sample_logs"]);
    let shown = screen(
        &data,
        &[Action::ScreenAdvice, Action::DrillDown, Action::WhatIf],
        120,
        30,
    );
    assert!(shown.contains("what-if (w)"), "{shown}");
    assert!(shown.contains("claude-opus-4-6 →"), "{shown}");
    // and `w` again: as they were
    let back = screen(
        &data,
        &[
            Action::ScreenAdvice,
            Action::DrillDown,
            Action::WhatIf,
            Action::WhatIf,
        ],
        120,
        30,
    );
    assert!(!back.contains("what-if (w)"), "{back}");
}

#[test]
fn agents_with_hop_positions() {
    golden_sizes("agents", &[Action::ScreenAgents, Action::Down]);
}

#[test]
fn segments() {
    golden_sizes("segments", &[Action::ScreenSegments]);
}

#[test]
fn models() {
    golden_sizes("models", &[Action::ScreenModels]);
}

#[test]
fn events() {
    golden_sizes("events", &[Action::ScreenEvents]);
}

#[test]
fn budgets() {
    golden("budgets", &[Action::ScreenBudgets]);
}

#[test]
fn help_overlay() {
    golden_sizes("help", &[Action::ScreenRuns, Action::Help]);
}

#[test]
fn budget_editor() {
    golden("budget_editor", &[Action::ScreenAgents, Action::EditBudget]);
}

#[test]
fn runs_of_an_agent_after_drilling_from_the_overview() {
    golden("offender_runs", &[Action::DrillDown]);
}

#[test]
fn escape_sequences_in_telemetry_never_reach_the_screen() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("evil.jsonl");
    std::fs::write(
        &log,
        "{\"run_id\":\"r\\u001b[2J\",\"agent\":\"evil\\u001b]0;pwned\\u0007\\u202e\",\"segment\":\"s\\u009b31m\",\"model\":\"gpt-4o\\r\",\"input_tokens\":1,\"output_tokens\":1}\n",
    )
    .unwrap();
    let data = published(&[log.to_str().unwrap()]);
    for actions in [
        &[Action::ScreenRuns][..],
        &[Action::ScreenRuns, Action::DrillDown],
        &[Action::ScreenAgents],
        &[Action::ScreenSegments],
        &[Action::ScreenModels],
        &[Action::ScreenEvents],
    ] {
        let text = screen(&data, actions, 160, 30);
        for forbidden in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}', '\r'] {
            assert!(
                !text.contains(forbidden),
                "{actions:?} shows {forbidden:?}:\n{text}"
            );
        }
        assert!(
            text.contains('\u{FFFD}'),
            "{actions:?}: the escape is visible as U+FFFD:\n{text}"
        );
    }
}

#[test]
fn a_frame_at_250x70_renders_every_screen_without_panicking_even_when_tiny() {
    let data = published(&["sample_logs"]);
    for (w, h) in [(250, 70), (20, 5), (1, 1), (80, 3)] {
        for action in [
            Action::ScreenOverview,
            Action::ScreenRuns,
            Action::ScreenAgents,
            Action::ScreenEvents,
            Action::ScreenBudgets,
        ] {
            let _ = screen(
                &data,
                &[action, Action::DrillDown, Action::Help],
                w,
                h.max(3),
            );
        }
    }
}

#[test]
fn the_status_bar_says_when_a_backlog_is_still_being_read() {
    let mut data = published(&["sample_logs"]);
    assert!(!screen(&data, &[], 160, 48).contains("reading backlog"));
    data.reading_backlog = true;
    let text = screen(&data, &[], 160, 48);
    let status = text.lines().last().unwrap();
    assert!(status.contains("reading backlog…"), "{status}");
}

#[test]
fn the_status_bar_says_which_followed_paths_are_waited_for() {
    let mut stats = tokwatch::ingest::IngestStats::default();
    stats.set_waiting("/does/not/exist", true);
    let mut data = Published {
        stats: Arc::new(stats.clone()),
        sources: vec!["/does/not/exist".into()],
        last_event_ms: None,
        ..Published::default()
    };
    let text = screen(&data, &[], 80, 24);
    let status = text.lines().last().unwrap();
    assert!(
        status.contains("waiting for /does/not/exist to appear · no events yet"),
        "{status}"
    );
    // Once it appeared, the status bar no longer says so.
    stats.set_waiting("/does/not/exist", false);
    data.stats = Arc::new(stats);
    let text = screen(&data, &[], 80, 24);
    assert!(!text.contains("waiting for"), "{text}");
}

/// Inputs that type `text` into the filter and keep it.
fn filter(text: &str) -> Vec<Input> {
    let mut inputs = vec![Input::Action(Action::Filter)];
    inputs.extend(text.chars().map(Input::FilterChar));
    inputs.push(Input::FilterCommit);
    inputs
}

fn with(mut inputs: Vec<Input>, actions: &[Action]) -> Vec<Input> {
    inputs.extend(actions.iter().map(|a| Input::Action(*a)));
    inputs
}

/// A desired global per-hop limit of 9,000 input tokens.
fn per_hop_board() -> BudgetBoard {
    let mut board = BudgetBoard::default();
    board.desired.set(
        tokwatch::model::budget::Scope::Global,
        tokwatch::model::budget::Limits {
            per_hop_limit: Some(9_000),
            ..Default::default()
        },
        0,
    );
    board
}

fn golden_inputs(name: &str, inputs: &[Input], board: &BudgetBoard) {
    let data = published(&["sample_logs"]);
    for (width, height) in [(80, 24), (120, 30), (200, 60)] {
        insta::assert_snapshot!(
            format!("{name}_{width}x{height}"),
            draw(&data, inputs, board, width, height)
        );
    }
}

#[test]
fn run_detail_charts_input_against_the_per_hop_limit() {
    // naive-0001 (the most expensive run) with a global per-hop limit set
    let inputs = with(vec![], &[Action::ScreenRuns, Action::DrillDown]);
    golden_inputs("run_detail_with_limit", &inputs, &per_hop_board());
    // lean-0005: the limit the runtime reported enforcing
    let inputs = with(
        [with(vec![], &[Action::ScreenRuns]), filter("lean-0005")].concat(),
        &[Action::DrillDown],
    );
    let data = published(&["sample_logs"]);
    let text = draw(&data, &inputs, &BudgetBoard::default(), 120, 30);
    assert!(text.contains("Run lean-0005"), "{text}");
    assert!(
        text.contains("per-hop limit 8.0k (reported by the runtime)"),
        "{text}"
    );
}

#[test]
fn hop_detail() {
    // hop 5 of naive-0001: the writer re-sending the history
    let inputs = with(
        vec![],
        &[
            Action::ScreenRuns,
            Action::DrillDown,
            Action::Down,
            Action::Down,
            Action::Down,
            Action::Down,
            Action::DrillDown,
        ],
    );
    golden_inputs("hop_detail", &inputs, &per_hop_board());
    let data = published(&["sample_logs"]);
    let text = draw(&data, &inputs, &per_hop_board(), 200, 60);
    assert!(text.contains("Run naive-0001 · hop 5"), "{text}");
    assert!(
        text.contains("history re-sent: 45"),
        "the full reason:\n{text}"
    );
    assert!(
        text.contains(
            "9.0k (wanted here, unconfirmed, global): would have trimmed 36.6k tokens, saving $"
        ),
        "{text}"
    );
    // j moves to the next hop, Esc goes back to the waterfall
    let next = with(inputs.clone(), &[Action::Down]);
    assert!(draw(&data, &next, &per_hop_board(), 200, 60).contains("Run naive-0001 · hop 6"));
    let back = with(next, &[Action::Back]);
    let text = draw(&data, &back, &per_hop_board(), 200, 60);
    assert!(text.contains("Hops · 8 rows"), "{text}");
    // lean-0005 hop 4: the runtime trimmed it; its budget event is listed
    let inputs = with(
        [with(vec![], &[Action::ScreenRuns]), filter("lean-0005")].concat(),
        &[
            Action::DrillDown,
            Action::Down,
            Action::Down,
            Action::Down,
            Action::DrillDown,
        ],
    );
    let text = draw(&data, &inputs, &BudgetBoard::default(), 160, 40);
    assert!(text.contains("Run lean-0005 · hop 4"), "{text}");
    assert!(
        text.contains("per_hop limit 8.0k · saw 8.1k · → trim"),
        "{text}"
    );
    assert!(text.contains("(reported by the runtime)"), "{text}");
}

#[test]
fn the_help_overlay_scrolls_instead_of_being_cut() {
    let data = published(&["sample_logs"]);
    let top = screen(&data, &[Action::ScreenRuns, Action::Help], 80, 24);
    assert!(top.contains("lines 1–"), "{top}");
    assert!(!top.contains("the mouse wheel scrolls"), "{top}");
    let bottom = screen(
        &data,
        &[Action::ScreenRuns, Action::Help, Action::Bottom],
        80,
        24,
    );
    assert!(bottom.contains("the mouse wheel scrolls"), "{bottom}");
    assert!(
        bottom.contains("edit the budget of the selection"),
        "{bottom}"
    );
    insta::assert_snapshot!("help_scrolled_80x24", bottom);
    // the wheel scrolls it too, and Esc closes it
    let inputs = vec![
        Input::Action(Action::Help),
        Input::Scroll(3),
        Input::Scroll(30),
    ];
    let wheel = draw(&data, &inputs, &BudgetBoard::default(), 80, 24);
    assert!(wheel.contains("the mouse wheel scrolls"), "{wheel}");
    let closed = screen(&data, &[Action::Help, Action::Back], 80, 24);
    assert!(!closed.contains("Keys"), "{closed}");
    // every line is there at 160 columns
    let wide = screen(&data, &[Action::Help], 160, 48);
    assert!(wide.contains("the mouse wheel scrolls"), "{wide}");
    assert!(wide.contains("this help"), "{wide}");
}

#[test]
fn frozen_the_status_bar_shows_ingest_going_on() {
    let mut data = published(&["sample_logs"]);
    data.lines_per_sec = 0.0;
    data.live = Some(tokwatch::ui::data::LiveIngest {
        lines: data.stats.lines + 120,
        lines_per_sec: 40.0,
        last_event_ms: Some(NOW_MS - 500),
    });
    for width in [80, 160] {
        let text = screen(&data, &[Action::Freeze], width, 30);
        let status = text.lines().last().unwrap();
        assert!(
            status.contains("+120 lines since freeze · 40 lines/s"),
            "{status}"
        );
        assert!(!status.contains("· 0 lines/s"), "{status}");
        // the message is shown whole or shortened with `…`, never cut bare
        assert!(
            status.contains("frozen: ingest continues (f resumes)") || status.contains('…'),
            "{status}"
        );
    }
    // nothing read since the freeze: 0 lines, and 0 lines/s is then true
    data.live = None;
    let text = screen(&data, &[Action::Freeze], 120, 30);
    let status = text.lines().last().unwrap();
    assert!(
        status.contains("+0 lines since freeze · 0 lines/s"),
        "{status}"
    );
}

#[test]
fn malformed_lines_are_listed_with_their_place_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bad.jsonl");
    std::fs::write(
        &log,
        "{\"run_id\":\"r\",\"agent\":\"a\",\"model\":\"gpt-4o\",\"input_tokens\":1,\"output_tokens\":1}\nnot json at all\n{\"type\":\"heartbeat\\u001b[2J\",\"run_id\":\"r\"}\n",
    )
    .unwrap();
    let data = published(&[log.to_str().unwrap()]);
    let text = screen(&data, &[Action::ScreenEvents], 160, 30);
    assert!(text.contains("Rejected lines · 2"), "{text}");
    assert!(text.contains("bad.jsonl:2"), "{text}");
    assert!(text.contains("bad.jsonl:3"), "{text}");
    assert!(text.contains("unknown type"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
    let status = text.lines().last().unwrap();
    assert!(status.contains("2 malformed (6: Events)"), "{status}");
}

#[test]
fn calls_without_a_segment_are_a_none_row_and_shares_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mixed.jsonl");
    std::fs::write(
        &log,
        "{\"run_id\":\"r1\",\"agent\":\"a\",\"segment\":\"pro\",\"model\":\"gpt-4.1\",\"input_tokens\":1000,\"output_tokens\":0}\n\
         {\"run_id\":\"r2\",\"agent\":\"a\",\"model\":\"gpt-4.1\",\"input_tokens\":3000,\"output_tokens\":0}\n",
    )
    .unwrap();
    let data = published(&[log.to_str().unwrap()]);
    let text = screen(&data, &[Action::ScreenSegments], 120, 20);
    let row = |name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{text}"))
            .to_owned()
    };
    assert!(
        row("(none)").contains("$0.0060") && row("(none)").contains("75%"),
        "{text}"
    );
    assert!(
        row("pro").contains("$0.0020") && row("pro").contains("25%"),
        "{text}"
    );
    // Enter on it lists the runs without a segment
    let runs = screen(&data, &[Action::ScreenSegments, Action::DrillDown], 120, 20);
    assert!(runs.contains("Runs without a segment"), "{runs}");
    assert!(runs.contains("r2") && !runs.contains(" r1 "), "{runs}");
}

#[test]
fn a_sorted_column_shows_its_arrow_and_rows_go_the_way_it_points() {
    let data = published(&["sample_logs"]);
    // Runs cycle: cost, tokens, ×1st, hops, bleeding, started, name
    let sorts = [Action::NextSort; 6];
    let actions: Vec<Action> = [&[Action::ScreenRuns][..], &sorts].concat();
    let text = screen(&data, &actions, 200, 60);
    assert!(text.contains("sort name↑"), "{text}");
    assert!(text.contains(" run↑ "), "{text}");
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("naive-") || w.starts_with("lean-"))
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "name↑ is A→Z");
    let reversed = screen(
        &data,
        &[actions.clone(), vec![Action::ReverseSort]].concat(),
        200,
        60,
    );
    assert!(reversed.contains(" run↓ "), "{reversed}");
    // the hops sort names the column it sorts
    let hops = screen(
        &data,
        &[
            Action::ScreenRuns,
            Action::NextSort,
            Action::NextSort,
            Action::NextSort,
        ],
        200,
        60,
    );
    assert!(
        hops.contains("sort hops↓") && hops.contains("hops↓"),
        "{hops}"
    );
}

/// The values on a screen: words with a digit, not shortened text.
fn values(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| c.is_whitespace() || "│┌┐└┘─\"".contains(c))
        .filter(|w| w.chars().any(|c| c.is_ascii_digit()) && !w.contains('…'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn at_80_columns_no_number_is_cut() {
    let data = published(&["sample_logs"]);
    for actions in [
        &[Action::ScreenRuns][..],
        &[Action::ScreenRuns, Action::DrillDown],
        &[Action::ScreenAgents, Action::Down],
        &[Action::ScreenSegments],
        &[Action::ScreenModels],
        &[Action::ScreenEvents],
    ] {
        // every value at 80 columns is a whole value of the wide screen
        // (`$0.00` cut from `$0.0072`, `runni`, `5` from `5.0k` are not)
        let narrow = values(&screen(&data, actions, 80, 24));
        let wide = values(&screen(&data, actions, 200, 60));
        let cut: Vec<&String> = narrow.difference(&wide).collect();
        assert!(cut.is_empty(), "{actions:?}: cut values {cut:?}");
    }
}

/// `n` calls of 1M gpt-4o input tokens ($2.50 each), one per `step_ms`,
/// the last at `last_ms`.
fn spend_burst(dir: &std::path::Path, n: i64, step_ms: i64, last_ms: i64) -> PathBuf {
    let log = dir.join("burst.jsonl");
    let lines: String = (0..n)
        .map(|i| {
            let ts = chrono::DateTime::from_timestamp_millis(last_ms - (n - 1 - i) * step_ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            format!(
                "{{\"ts\":\"{ts}\",\"run_id\":\"r{i}\",\"hop\":1,\"agent\":\"a\",\"model\":\"gpt-4o\",\"input_tokens\":1000000,\"output_tokens\":0}}\n"
            )
        })
        .collect();
    std::fs::write(&log, lines).unwrap();
    log
}

#[test]
fn burn_rate_is_spend_over_the_time_actually_observed() {
    let dir = tempfile::tempdir().unwrap();
    // $30 in 11 s, the last call now: $163.64 a minute, not $30 ÷ 15
    let log = spend_burst(dir.path(), 12, 1_000, NOW_MS);
    let data = published(&[log.to_str().unwrap()]);
    let text = screen(&data, &[], 120, 30);
    assert!(text.contains("$163.64"), "{text}");
    assert!(text.contains("(11s seen)"), "{text}");
    assert!(!text.contains("$2.00"), "{text}");
    // eleven seconds say nothing about a day: no projection before 5 minutes
    assert!(!text.contains("$235,636"), "{text}");
    assert!(text.contains("→ day after 5m seen"), "{text}");
}

/// A live workload seen from `NOW_MS`: for 40 minutes a run has started
/// every 15 s, two naive runs for one lean run (the workflow of
/// `tokwatch::workload`); a per-hop budget of 20,000 tokens, set 12 minutes
/// ago, trims the naive runs that started after it (`budget_exceeded`
/// records first, as runtimes send them). Records after now are not written
/// yet: the last runs are in flight. Returns the log and the change's time.
fn live_workload(dir: &std::path::Path) -> (PathBuf, i64) {
    use rand::SeedableRng;
    use tokwatch::workload::{RunSpec, Style, workflow_run};
    const LIMIT: u64 = 20_000;
    let change_ms = NOW_MS - 12 * 60_000;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
    let mut records = Vec::new();
    for n in 0..160_i64 {
        let start_ms = NOW_MS - 40 * 60_000 + n * 15_000;
        let (style, team) = if n % 3 == 2 {
            (Style::Lean, "lean")
        } else {
            (Style::Naive, "naive")
        };
        let user = (n * 7) % 9;
        let tier = ["free", "pro", "enterprise"][usize::try_from((n / 3) % 3).unwrap()];
        let spec = RunSpec {
            run_id: format!("{team}-{n:05}"),
            team,
            user: format!("{team}-u{user:02}"),
            tier,
            start_ms,
        };
        for mut record in workflow_run(style, &spec, &mut rng) {
            if style == Style::Naive
                && start_ms >= change_ms
                && record.kind.is_none()
                && record.input_tokens.is_some_and(|t| t > LIMIT)
            {
                records.push(tokwatch::workload::NativeRecord {
                    kind: Some("budget_exceeded"),
                    ts: record.ts.clone(),
                    run_id: record.run_id.clone(),
                    hop: record.hop,
                    agent: record.agent,
                    limit_kind: Some("per_hop"),
                    limit: Some(LIMIT),
                    tokens: record.input_tokens,
                    action: Some("trim"),
                    ..Default::default()
                });
                record.input_tokens = Some(LIMIT);
            }
            records.push(record);
        }
    }
    let now = chrono::DateTime::from_timestamp_millis(NOW_MS)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // RFC 3339 UTC with milliseconds sorts as text
    records.retain(|r| r.ts <= now);
    records.sort_by(|a, b| a.ts.cmp(&b.ts));
    let log = dir.join("live.jsonl");
    let text: String = records.iter().map(|r| r.to_line() + "\n").collect();
    std::fs::write(&log, text).unwrap();
    (log, change_ms)
}

/// Draws `view` on a `width`×`height` screen.
fn draw_view(data: &Published, view: &ViewState, width: u16, height: u16) -> String {
    draw_view_at(data, view, width, height, NOW_MS)
}

/// Draws `view` on a `width`×`height` screen with the wall clock at `now_ms`.
fn draw_view_at(
    data: &Published,
    view: &ViewState,
    width: u16,
    height: u16,
    now_ms: i64,
) -> String {
    render_view(data, view, &BudgetBoard::default(), (width, height), now_ms)
}

/// Draws `view` as it stands (no input applied) on a `width`×`height`
/// TestBackend with `board`'s budgets and the wall clock at `now_ms`.
fn render_view(
    data: &Published,
    view: &ViewState,
    board: &BudgetBoard,
    (width, height): (u16, u16),
    now_ms: i64,
) -> String {
    let keymap = keymap();
    let theme = Theme::builtin("dark").unwrap();
    let rows = Rows::compute(data, view.screen(), view);
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| {
            render(
                frame,
                &ViewCx {
                    data,
                    view,
                    theme: &theme,
                    keymap: &keymap,
                    rows: &rows,
                    now_ms,
                    budgets: board,
                },
            )
        })
        .unwrap();
    terminal.backend().to_string()
}

#[test]
fn overview_of_a_live_workload_after_a_budget_change() {
    let dir = tempfile::tempdir().unwrap();
    let (log, change_ms) = live_workload(dir.path());
    let data = published(&[log.to_str().unwrap()]);
    for (w, h) in [(80, 24), (120, 30), (200, 60)] {
        let mut view = ViewState {
            page_rows: list_rows(h - 2),
            ..ViewState::default()
        };
        view.budget_changed(change_ms);
        let text = draw_view(&data, &view, w, h);
        insta::assert_snapshot!(format!("overview_live_{w}x{h}"), text);
    }
}

#[test]
fn frozen_shows_in_the_tab_bar_at_80_columns() {
    let data = published(&["sample_logs"]);
    let text = screen(&data, &[Action::ScreenRuns, Action::Freeze], 80, 24);
    let tabs = text.lines().next().unwrap();
    assert!(tabs.contains(" FROZEN "), "{tabs}");
    assert!(tabs.contains("7 Budgets"), "{tabs}");
}

#[test]
fn events_show_what_budget_breaches_and_run_ends_reported() {
    let data = published(&["sample_logs"]);
    let inputs = [with(vec![], &[Action::ScreenEvents]), filter("lean-0005")].concat();
    let text = draw(&data, &inputs, &BudgetBoard::default(), 160, 30);
    let row = |kind: &str| {
        text.lines()
            .find(|l| l.contains(kind))
            .unwrap_or_else(|| panic!("no {kind} row:\n{text}"))
            .to_owned()
    };
    let breach = row("! budget");
    assert!(
        breach.contains("researcher · per_hop limit 8.0k · saw 8.1k · → trim"),
        "{breach}"
    );
    assert!(!breach.contains("unknown"), "{breach}");
    let end = row(" end ");
    assert!(
        end.contains("ok · 8 hops · 50.9k tokens · $0.121 in all"),
        "{end}"
    );
}

#[test]
fn overview_of_the_sample_logs_at_three_sizes() {
    let data = published(&["sample_logs"]);
    for (w, h) in [(80, 24), (120, 30), (200, 60)] {
        insta::assert_snapshot!(format!("overview_sample_{w}x{h}"), screen(&data, &[], w, h));
    }
}

#[test]
fn overview_figures_are_whole_at_every_size() {
    let dir = tempfile::tempdir().unwrap();
    let (log, change_ms) = live_workload(dir.path());
    let data = published(&[log.to_str().unwrap()]);
    let mut view = ViewState::default();
    view.budget_changed(change_ms);
    let insights = &data.insights;
    let recent = tokwatch::model::insights::recent_run_cost(insights, NOW_MS, Some(change_ms));
    let dollars = tokwatch::ui::format::dollars;
    let whole = [
        format!("spend {}", dollars(data.snapshot.totals.cost)),
        format!("all: median {}", dollars(insights.run_cost.median)),
        format!("p95 {}", dollars(insights.run_cost.p95)),
        format!("last 5m: mean {}", dollars(recent.last_minutes.mean)),
        format!("median {}", dollars(recent.last_minutes.cost.median)),
        format!("last 50 runs: mean {}", dollars(recent.last_runs.mean)),
        format!("median {}", dollars(recent.last_runs.cost.median)),
        format!("mean {}", dollars(recent.since_change.unwrap().since.mean)),
        format!(
            "median {}",
            dollars(recent.since_change.unwrap().since.cost.median)
        ),
        format!(
            "p95 {}",
            dollars(recent.since_change.unwrap().since.cost.p95)
        ),
        format!(
            "was mean {}",
            dollars(recent.since_change.unwrap().before.mean)
        ),
        format!(
            "median {}",
            dollars(recent.since_change.unwrap().before.cost.median)
        ),
        format!(
            "p95 {}",
            dollars(recent.since_change.unwrap().before.cost.p95)
        ),
        "context growth: median".to_owned(),
    ];
    for w in [60, 72, 80, 96, 110, 119, 120, 150, 180, 240] {
        for h in [24, 30, 50] {
            let text = draw_view(&data, &view, w, h);
            for figure in &whole {
                assert!(text.contains(figure.as_str()), "{w}×{h}: {figure}\n{text}");
            }
        }
    }
}

#[test]
fn the_hop_detail_counts_carried_tokens_with_the_configured_rules() {
    // no re-send tolerance and no history-resent bleeding: every hop's
    // carried tokens come from the rules the insights were computed with
    let rules = BleedRules {
        resend_tolerance: 0.0,
        growth_over_first: f64::INFINITY,
        ..BleedRules::default()
    };
    let mut data = published(&["sample_logs"]);
    data.insights = Arc::new(Insights::compute(
        &data.snapshot,
        &rules,
        &PriceBook::embedded(),
        None,
    ));
    let carried = |run: &tokwatch::model::ledger::RunAgg, i: usize, rules: &BleedRules| {
        tokwatch::model::insights::carried_tokens(&run.hops, i, rules)
    };
    // a run whose context shrinks somewhere (a lean one, trimmed to a summary)
    let run = data
        .snapshot
        .runs
        .iter()
        .find(|run| {
            (1..run.hops.len())
                .any(|i| carried(run, i, &rules) != carried(run, i, &BleedRules::default()))
        })
        .expect("a run on which the rules make a difference");
    let open = |hop_index: usize| {
        let mut inputs = with(vec![], &[Action::ScreenRuns, Action::Filter]);
        inputs.extend(run.run_id.chars().map(Input::FilterChar));
        inputs.push(Input::FilterCommit);
        inputs = with(inputs, &[Action::DrillDown]);
        inputs = with(inputs, &vec![Action::Down; hop_index]);
        inputs = with(inputs, &[Action::DrillDown]);
        draw(&data, &inputs, &BudgetBoard::default(), 200, 60)
    };
    for i in 1..run.hops.len() {
        let text = open(i);
        assert!(
            text.contains(&format!("· hop {}", run.hops[i].hop)),
            "{text}"
        );
        let expected = format!(
            "{} tokens from earlier hops",
            tokwatch::ui::format::tokens(carried(run, i, &rules))
        );
        assert!(
            text.contains(&expected),
            "hop {}: {expected}\n{text}",
            i + 1
        );
    }
}

#[test]
fn the_events_screen_shows_the_latest_rejected_lines_once_more_were_rejected_than_kept() {
    use tokwatch::ingest::stats::{MAX_REJECT_SAMPLES, RejectKind, Rejected};
    let mut data = published(&["sample_logs"]);
    let mut stats = (*data.stats).clone();
    let rejected = |line: usize| Rejected {
        location: format!("live.jsonl:{line}"),
        kind: RejectKind::Malformed,
        reason: format!("line {line} is not JSON"),
    };
    let total = 3 * MAX_REJECT_SAMPLES;
    stats.malformed = total as u64;
    stats.malformed_samples = (1..=MAX_REJECT_SAMPLES).map(rejected).collect();
    stats.latest_rejected = (total - MAX_REJECT_SAMPLES + 1..=total)
        .map(rejected)
        .collect();
    data.stats = Arc::new(stats);
    for (width, height) in [(80, 24), (200, 60)] {
        let text = screen(&data, &[Action::ScreenEvents], width, height);
        assert!(
            text.contains(&format!("live.jsonl:{total} ")),
            "the newest rejected line is on screen at {width}x{height}:\n{text}"
        );
        assert!(!text.contains("live.jsonl:1 "), "{text}");
        assert!(text.contains("the latest"), "{text}");
    }
}

/// A board with one connected runtime that has global `version` per-hop `hop` in force.
fn runtime_board(version: u64, hop: u64) -> BudgetBoard {
    use tokwatch::control::client::{ClientEvent, Link};
    let mut board = BudgetBoard::default();
    board.apply(ClientEvent::Link {
        addr: "unix:/run/a.sock".into(),
        link: Link::Connected {
            runtime: "demo".into(),
            runtime_id: "1".into(),
        },
    });
    set_in_force(&mut board, version, hop);
    board
}

fn set_in_force(board: &mut BudgetBoard, version: u64, hop: u64) {
    use tokwatch::control::client::ClientEvent;
    use tokwatch::control::protocol::VersionedBudget;
    use tokwatch::model::budget::{Limits, Scope};
    board.apply(ClientEvent::State {
        addr: "unix:/run/a.sock".into(),
        budgets: vec![VersionedBudget {
            scope: Scope::Global,
            version,
            base_version: None,
            idempotency_key: Some(format!("theirs-{version}")),
            limits: Limits {
                per_hop_limit: Some(hop),
                ..Limits::default()
            },
        }],
    });
}

/// Draws `editor` over the Budgets screen.
fn draw_editor(
    data: &Published,
    board: &BudgetBoard,
    editor: BudgetEditor,
    (width, height): (u16, u16),
) -> String {
    let mut view = ViewState {
        page_rows: list_rows(height - 2),
        ..ViewState::default()
    };
    update(&mut view, Input::Action(Action::ScreenBudgets), data, board);
    view.editor = Some(editor);
    render_view(data, &view, board, (width, height), NOW_MS)
}

#[test]
fn the_open_editor_shows_a_change_another_controller_made_meanwhile() {
    use tokwatch::model::budget::Scope;
    use tokwatch::ui::budgets::EditorInput;
    let data = published(&["sample_logs"]);
    // The editor opens on v99 (30000); the user types 25000 and reviews.
    let mut board = runtime_board(99, 30_000);
    let mut editor = BudgetEditor::new(Scope::Global, board.editor_start(&Scope::Global));
    assert_eq!(editor.base_version, 99);
    for _ in 0..5 {
        editor.input(EditorInput::Backspace, &data.snapshot);
    }
    for c in "25000".chars() {
        editor.input(EditorInput::Char(c), &data.snapshot);
    }
    editor.input(EditorInput::Enter, &data.snapshot);
    let before = draw_editor(&data, &board, editor.clone(), (120, 30));
    assert!(
        !before.contains("changed by another controller"),
        "{before}"
    );
    // Another controller sets v100 (4000) while it is open.
    set_in_force(&mut board, 100, 4000);
    for size in [(80, 24), (120, 30), (200, 60)] {
        let screen = draw_editor(&data, &board, editor.clone(), size);
        let flat: String = screen
            .lines()
            .map(|l| l.trim_matches(|c| c == '"' || c == '│' || c == ' '))
            .collect::<Vec<_>>()
            .join(" ");
        for shown in [
            "changed by another controller: v100 per-hop 4000",
            "based on v99 and will be refused",
            "Esc, then b",
        ] {
            assert!(flat.contains(shown), "{size:?}: {shown}\n{screen}");
        }
    }
    insta::assert_snapshot!(
        "editor_changed_meanwhile_120x30",
        draw_editor(&data, &board, editor, (120, 30))
    );
}

#[test]
fn the_editor_review_gives_a_cost_limit_and_the_worst_run_in_dollars() {
    use tokwatch::model::budget::Scope;
    use tokwatch::ui::budgets::EditorInput;
    let data = published(&["sample_logs"]);
    let board = BudgetBoard::default();
    let mut editor = BudgetEditor::new(Scope::Global, board.editor_start(&Scope::Global));
    editor.input(EditorInput::Down, &data.snapshot);
    editor.input(EditorInput::Down, &data.snapshot);
    for c in "0.5".chars() {
        editor.input(EditorInput::Char(c), &data.snapshot);
    }
    editor.input(EditorInput::Enter, &data.snapshot);
    let screen = draw_editor(&data, &board, editor, (200, 60));
    assert!(screen.contains("after   run $0.50 (abort)"), "{screen}");
    assert!(!screen.contains("$0.5 "), "{screen}");
    let worst = screen
        .lines()
        .find(|l| l.contains("worst run"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(worst.contains("worst run $"), "{worst}");
    assert!(!worst.contains("tokens)"), "{worst}");
}

#[test]
fn run_and_hop_detail_show_the_per_hop_limit_the_runtime_enforces() {
    use tokwatch::model::budget::{Limits, Scope};
    let data = published(&["sample_logs"]);
    // This dashboard wants 7000; another controller set 5000 (v7) at the runtime.
    let mut board = runtime_board(7, 5_000);
    board.desired.set(
        Scope::Global,
        Limits {
            per_hop_limit: Some(7_000),
            ..Limits::default()
        },
        6,
    );
    let run = with(vec![], &[Action::ScreenRuns, Action::DrillDown]);
    let hop = with(
        run.clone(),
        &[
            Action::Down,
            Action::Down,
            Action::Down,
            Action::Down,
            Action::DrillDown,
        ],
    );
    let text = draw(&data, &run, &board, 200, 60);
    assert!(
        text.contains(
            "Input tokens per hop · per-hop limit 5.0k (in force at the runtime) · wanted here 7.0k"
        ),
        "{text}"
    );
    assert!(!text.contains("per-hop limit 7.0k"), "{text}");
    let text = draw(&data, &hop, &board, 200, 60);
    assert!(
        text.contains("5.0k (in force at the runtime, global): would have trimmed"),
        "{text}"
    );
    assert!(text.contains("wanted here 7.0k, not in force"), "{text}");
    // Without a runtime: what is wanted here, as such.
    let mut board = BudgetBoard::default();
    board.desired.set(
        Scope::Global,
        Limits {
            per_hop_limit: Some(7_000),
            ..Limits::default()
        },
        0,
    );
    let text = draw(&data, &run, &board, 200, 60);
    assert!(
        text.contains("per-hop limit 7.0k (wanted here, unconfirmed)"),
        "{text}"
    );
}

#[test]
fn the_status_bar_and_the_overview_name_their_clocks_apart() {
    // the sample's events are days old; its last line was read 4 s ago
    let data = published(&["sample_logs"]);
    for (width, height) in [(80, 24), (200, 60)] {
        let text = screen(&data, &[], width, height);
        let status = text.lines().last().unwrap();
        assert!(status.contains("last line read 4s ago"), "{status}");
        assert!(text.contains("newest event 5d ago"), "{text}");
        assert!(!text.contains("last event"), "{text}");
    }
}

#[test]
fn events_are_listed_newest_event_time_first() {
    let data = published(&["sample_logs"]);
    let mut view = ViewState::default();
    update(
        &mut view,
        Input::Action(Action::ScreenEvents),
        &data,
        &BudgetBoard::default(),
    );
    let rows = Rows::compute(&data, view.screen(), &view);
    let times: Vec<i64> = rows
        .indexes
        .iter()
        .map(|&i| data.snapshot.recent[i].ts_ms.unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let newest = data.snapshot.recent.iter().filter_map(|e| e.ts_ms).max();
    assert_eq!(times.first().copied(), newest);
    // reversed: oldest first
    update(
        &mut view,
        Input::Action(Action::ReverseSort),
        &data,
        &BudgetBoard::default(),
    );
    let rows = Rows::compute(&data, view.screen(), &view);
    let first = data.snapshot.recent[rows.indexes[0]].ts_ms;
    assert_eq!(
        first,
        data.snapshot.recent.iter().filter_map(|e| e.ts_ms).min()
    );
    let text = screen(&data, &[Action::ScreenEvents], 80, 24);
    let row = text.lines().nth(3).unwrap();
    assert!(row.contains("11-27"), "{text}");
}

/// The parts of a status bar line (a message and the help hint, two
/// spaces after them, left out).
fn status_parts(status: &str) -> Vec<String> {
    let status = status.trim_matches('"');
    let status = status.strip_prefix(' ').unwrap_or(status);
    let parts = status.split("  ").next().unwrap_or_default();
    parts.split(" · ").map(|p| p.trim().to_owned()).collect()
}

#[test]
fn the_status_bar_leaves_parts_out_whole_never_cut() {
    let mut stats = (*published(&["sample_logs"]).stats).clone();
    stats.malformed = 12;
    stats.set_waiting("/var/log/agents/a-rather-long-folder-name", true);
    let mut data = published(&["sample_logs"]);
    data.stats = Arc::new(stats);
    data.reading_backlog = true;
    data.lines_per_sec = 1234.0;
    data.last_event_ms = Some(NOW_MS - 500);
    let whole = [
        "4 sources (native ×4)",
        "4 sources",
        "waiting for /var/log/agents/a-rather-long-folder-name to appear",
        "waiting for 1 path",
        "reading backlog…",
        "last line read 0s ago",
        "1234 lines/s",
        "12 malformed (6: Events)",
        "12 malformed",
        "filter: naive",
    ];
    let inputs = filter("naive");
    for width in [80, 100, 120, 160, 250] {
        let text = draw(&data, &inputs, &BudgetBoard::default(), width, 24);
        let status = text.lines().last().unwrap();
        for part in status_parts(status) {
            assert!(
                whole.contains(&part.as_str()),
                "cut part {part:?} in {status}"
            );
        }
        // what matters most stays
        assert!(status.contains("filter: naive"), "{status}");
        assert!(status.contains("12 malformed"), "{status}");
        assert!(status.contains("? help"), "{status}");
    }
    let wide = draw(&data, &inputs, &BudgetBoard::default(), 250, 24);
    assert!(wide.contains("1234 lines/s"), "{wide}");
    assert!(wide.contains("4 sources (native ×4)"), "{wide}");
    // frozen at 80 columns, with the freeze message: `0 lines/s` whole
    let text = screen(&data, &[Action::Freeze], 80, 24);
    let status = text.lines().last().unwrap();
    assert!(status.contains("+0 lines since freeze"), "{status}");
    for part in status_parts(status) {
        assert!(
            !part.contains("lines") || part.ends_with("lines/s") || part.ends_with("freeze"),
            "cut part {part:?} in {status}"
        );
    }
}

#[test]
fn frozen_figures_hold_still_while_the_clock_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = live_workload(dir.path());
    let data = published(&[log.to_str().unwrap()]);
    let mut view = ViewState {
        page_rows: list_rows(28),
        ..ViewState::default()
    };
    update(
        &mut view,
        Input::Action(Action::Freeze),
        &data,
        &BudgetBoard::default(),
    );
    view.hold_clock(NOW_MS);
    for actions in [
        &[Action::ScreenOverview][..],
        &[Action::ScreenRuns],
        &[Action::ScreenRuns, Action::DrillDown],
    ] {
        for action in actions {
            update(
                &mut view,
                Input::Action(*action),
                &data,
                &BudgetBoard::default(),
            );
            view.hold_clock(NOW_MS + 1_000);
        }
        let body = |text: String| -> Vec<String> {
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            lines.pop(); // the status bar follows ingest
            lines
        };
        let at_freeze = body(draw_view_at(&data, &view, 120, 30, NOW_MS));
        let later = body(draw_view_at(&data, &view, 120, 30, NOW_MS + 3 * 60_000));
        assert_eq!(at_freeze, later, "{actions:?}");
    }
    // and resumed, the figures follow the clock again
    update(
        &mut view,
        Input::Action(Action::ScreenOverview),
        &data,
        &BudgetBoard::default(),
    );
    update(
        &mut view,
        Input::Action(Action::Freeze),
        &data,
        &BudgetBoard::default(),
    );
    view.hold_clock(NOW_MS + 3 * 60_000);
    assert!(!view.frozen && view.frozen_at_ms.is_none());
    let now = draw_view_at(&data, &view, 120, 30, NOW_MS);
    let later = draw_view_at(&data, &view, 120, 30, NOW_MS + 3 * 60_000);
    assert_ne!(now, later);
}

#[test]
fn one_of_a_thing_is_singular() {
    let data = published(&["sample_logs"]);
    let inputs = [with(vec![], &[Action::ScreenRuns]), filter("naive-0001")].concat();
    let text = draw(&data, &inputs, &BudgetBoard::default(), 120, 30);
    assert!(text.contains("Runs · 1 row ·"), "{text}");
    let mut one = data.clone();
    one.sources = vec!["a.jsonl".into()];
    let mut stats = (*one.stats).clone();
    stats.sources.truncate(1);
    one.stats = Arc::new(stats);
    let text = screen(&one, &[], 120, 30);
    let status = text.lines().last().unwrap();
    assert!(status.contains(" 1 source "), "{status}");
}

#[test]
fn runs_without_a_segment_say_none_as_segments_does() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mixed.jsonl");
    std::fs::write(
        &log,
        "{\"run_id\":\"r-seg\",\"segment\":\"team-a\",\"agent\":\"a\",\"model\":\"gpt-4o\",\"input_tokens\":1,\"output_tokens\":1}\n{\"run_id\":\"r-bare\",\"agent\":\"a\",\"model\":\"gpt-4o\",\"input_tokens\":1,\"output_tokens\":1}\n",
    )
    .unwrap();
    let data = published(&[log.to_str().unwrap()]);
    let text = screen(&data, &[Action::ScreenRuns], 120, 30);
    let row = text.lines().find(|l| l.contains("r-bare")).unwrap();
    assert!(row.contains("(none)"), "{text}");
    let row = text.lines().find(|l| l.contains("r-seg")).unwrap();
    assert!(row.contains("team-a") && !row.contains("(none)"), "{text}");
}

#[test]
fn a_long_rejection_reason_can_be_read_whole() {
    use tokwatch::ingest::stats::{RejectKind, Rejected};
    let mut data = published(&["sample_logs"]);
    let mut stats = (*data.stats).clone();
    let reason = "expected `input_tokens` to be a non-negative integer, found the string \"twelve thousand\" at column 118";
    stats.malformed = 1;
    stats.malformed_samples = vec![Rejected {
        location: "agents/live.jsonl:4711".into(),
        kind: RejectKind::Malformed,
        reason: reason.into(),
    }];
    data.stats = Arc::new(stats);
    let text = screen(&data, &[Action::ScreenEvents], 80, 24);
    // the reason, wrapped, word for word
    let panel: String = text
        .lines()
        .skip_while(|l| !l.contains("Rejected lines"))
        .map(|l| l.trim_matches('"').trim_matches(|c| c == '│' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = panel.split_whitespace().collect();
    let wanted: Vec<&str> = reason.split_whitespace().collect();
    assert!(
        words.windows(wanted.len()).any(|w| w == wanted.as_slice()),
        "{text}"
    );
    assert!(text.contains("agents/live.jsonl:4711 malformed:"), "{text}");
}

#[test]
fn the_run_chart_keeps_the_limit_apart_from_input_sitting_on_it() {
    // lean-0005: hops trimmed to the 8.0k the runtime reported
    let inputs = with(
        [with(vec![], &[Action::ScreenRuns]), filter("lean-0005")].concat(),
        &[Action::DrillDown],
    );
    let data = published(&["sample_logs"]);
    for (width, height) in [(80, 24), (120, 30), (200, 60)] {
        let text = draw(&data, &inputs, &BudgetBoard::default(), width, height);
        let chart: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.contains("Input tokens per hop"))
            .take_while(|l| !l.contains("Hops ·"))
            .collect();
        let joined = chart.join("\n");
        assert!(joined.contains('•'), "the limit's dots:\n{text}");
        assert!(
            joined.contains("input tokens") && joined.contains("• per-hop limit"),
            "the legend:\n{text}"
        );
    }
}

#[test]
fn agents_at_200_columns_show_more_columns_and_rows_by_their_count() {
    let data = published(&["sample_logs"]);
    let text = screen(&data, &[Action::ScreenAgents, Action::Down], 200, 60);
    assert!(text.contains("cache wr"), "{text}");
    assert!(text.contains("$/call"), "{text}");
    // the list is as tall as its 7 rows; the hop positions below take the rest
    let lines: Vec<&str> = text.lines().collect();
    let positions = lines
        .iter()
        .position(|l| l.contains("Hop positions of"))
        .unwrap();
    assert_eq!(positions, 1 + 7 + 3, "{text}");
    let text = screen(&data, &[Action::ScreenEvents], 200, 60);
    assert!(
        text.contains("cache rd") && text.contains("cache wr"),
        "{text}"
    );
}

#[test]
fn events_at_80_columns_show_a_budget_event_s_own_data() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = live_workload(dir.path());
    let data = published(&[log.to_str().unwrap()]);
    let text = screen(&data, &[Action::ScreenEvents], 80, 24);
    let row = text
        .lines()
        .find(|l| l.contains("! budget"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("per_hop limit 20.0k"), "{text}");
}

#[test]
fn a_page_of_the_agents_list_is_the_rows_it_shows_beside_the_hop_positions() {
    let data = published(&["sample_logs"]);
    let keymap = keymap();
    let theme = Theme::builtin("dark").unwrap();
    let mut view = ViewState::default();
    update(
        &mut view,
        Input::Action(Action::ScreenAgents),
        &data,
        &BudgetBoard::default(),
    );
    let rows = Rows::compute(&data, view.screen(), &view);
    let board = BudgetBoard::default();
    let cx = ViewCx {
        data: &data,
        view: &view,
        theme: &theme,
        keymap: &keymap,
        rows: &rows,
        now_ms: NOW_MS,
        budgets: &board,
    };
    // 80×24: the body is 22 lines; the list as tall as its 7 agents (and
    // borders and header), the hop positions below it
    let page = tokwatch::ui::views::list_page(ratatui::layout::Rect::new(0, 0, 80, 24), &cx);
    assert_eq!(
        page,
        Some(rows.len()),
        "a page is the agents shown, not the body"
    );
}

#[test]
fn run_markers_are_never_cut_at_80_columns() {
    // naive runs trimmed by a budget: bleeding hops and budget breaches,
    // `!5 $3`, a count that must show whole or not at all
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = live_workload(dir.path());
    let data = published(&[log.to_str().unwrap()]);
    // the cheapest naive runs: those the budget trimmed
    let mut inputs = with(vec![], &[Action::ScreenRuns, Action::Filter]);
    inputs.extend("naive".chars().map(Input::FilterChar));
    inputs.push(Input::FilterCommit);
    let inputs = with(inputs, &[Action::Bottom]);
    let text = draw(&data, &inputs, &BudgetBoard::default(), 80, 24);
    assert!(text.contains(" $"), "runs with budget breaches:\n{text}");
    assert!(
        text.contains("!6 $"),
        "bleeding hops and breaches, whole:\n{text}"
    );
    assert!(
        !text.contains("!6 …") && !text.contains("!…"),
        "a cut marker:\n{text}"
    );
}

#[test]
fn a_run_without_segment_reads_none_in_its_detail_as_in_the_lists() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.jsonl");
    std::fs::write(
        &log,
        "{\"run_id\":\"solo\",\"hop\":1,\"agent\":\"a\",\"model\":\"gpt-4.1\",\"input_tokens\":100,\"output_tokens\":10}\n",
    )
    .unwrap();
    let data = published(&[log.to_str().unwrap()]);
    let text = screen(&data, &[Action::ScreenRuns, Action::DrillDown], 120, 30);
    assert!(text.contains("Run solo"), "{text}");
    assert!(text.contains("segment (none)"), "{text}");
}

#[test]
fn the_status_bar_shows_read_errors_and_the_latest_one() {
    let mut stats = tokwatch::ingest::IngestStats::default();
    let dir = stats.add_source("/logs/d".into(), "d".into());
    stats.count_error(dir, "cannot list: Permission denied (os error 13)");
    let data = Published {
        stats: Arc::new(stats),
        sources: vec!["/logs/d".into()],
        last_event_ms: None,
        ..Published::default()
    };
    let text = screen(&data, &[], 120, 24);
    let status = text.lines().last().unwrap();
    assert!(
        status.contains("1 error, last: /logs/d: cannot list: Permission denied (os error 13)"),
        "{status}"
    );
    // narrow: the count stays
    let text = screen(&data, &[], 60, 24);
    let status = text.lines().last().unwrap();
    assert!(status.contains("1 error"), "{status}");
}

/// Two anomalies: a spend spike 3 s before the pinned clock (an agent name
/// with an escape sequence in the hop one, 1 minute before).
fn with_anomalies(mut data: Published) -> Published {
    use tokwatch::model::anomaly::{Anomaly, AnomalyKind, Level};
    use tokwatch::types::money::Usd;
    let hop = Anomaly {
        kind: AnomalyKind::HopTokens,
        at_ms: NOW_MS - 60_000,
        subject: Arc::from("evil\u{1b}[2Jbot"),
        hop: Some(3),
        observed: Level::Tokens(120_000),
        expected: Level::Tokens(12_000),
        z: 36.0,
        message: "hop spike: evil\u{1b}[2Jbot hop 3 sent 120,000 tokens of input, usually 12,000 tokens (z 36.0)".into(),
    };
    let spend = Anomaly {
        kind: AnomalyKind::Spend1m,
        at_ms: NOW_MS - 3_000,
        subject: Arc::from("1m"),
        hop: None,
        observed: Level::PerMinute(Usd::from_picos(10_000_000_000_000)),
        expected: Level::PerMinute(Usd::from_picos(1_000_000_000_000)),
        z: 36.0,
        message: "spend spike: $10.00/min over the last minute, usually $1.00/min (z 36.0)".into(),
    };
    data.anomalies = Arc::from(vec![hop, spend]);
    data
}

#[test]
fn a_spike_is_a_toast_and_a_mark_in_the_status_bar() {
    let data = with_anomalies(published(&["sample_logs"]));
    let view = ViewState {
        page_rows: list_rows(22),
        ..ViewState::default()
    };
    for (w, h) in [(80, 24), (160, 30)] {
        let text = draw_view(&data, &view, w, h);
        let status = text.lines().last().unwrap().to_owned();
        assert!(status.contains(" SPIKE ×2 "), "{status}");
        assert!(status.contains("! spend spike: $10.00/min"), "{status}");
        insta::assert_snapshot!(format!("spike_status_{w}x{h}"), text);
    }
    // The mark is in the theme's warning colour, reversed (and says SPIKE).
    let theme = Theme::builtin("dark").unwrap();
    let keymap = keymap();
    let rows = Rows::compute(&data, view.screen(), &view);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
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
                    now_ms: NOW_MS,
                    budgets: &BudgetBoard::default(),
                },
            )
        })
        .unwrap();
    let cell = &terminal.backend().buffer()[(1, 23)];
    assert_eq!(cell.symbol(), "S");
    assert_eq!(cell.fg, theme.warning.fg.unwrap());
    assert!(cell.modifier.contains(ratatui::style::Modifier::REVERSED));
}

#[test]
fn a_spike_toast_goes_after_seconds_and_the_mark_after_minutes() {
    let data = with_anomalies(published(&["sample_logs"]));
    let view = ViewState::default();
    let status = |now_ms| {
        draw_view_at(&data, &view, 160, 30, now_ms)
            .lines()
            .last()
            .unwrap()
            .to_owned()
    };
    // 20 s later: no toast, both still marked.
    let later = status(NOW_MS + 20_000);
    assert!(
        later.contains(" SPIKE ×2 ") && !later.contains("spend spike"),
        "{later}"
    );
    // 4½ minutes later: the hop spike (raised a minute earlier) is 5½
    // minutes old and no longer marked.
    let later = status(NOW_MS + 270_000);
    assert!(
        later.contains(" SPIKE ") && !later.contains("SPIKE ×"),
        "{later}"
    );
    let gone = status(NOW_MS + 600_000);
    assert!(!gone.contains("SPIKE"), "{gone}");
}

#[test]
fn a_hop_spike_toast_is_sanitized() {
    let mut data = with_anomalies(published(&["sample_logs"]));
    let mut list = data.anomalies.to_vec();
    list.reverse(); // the hop spike is the newest
    list[1].at_ms = NOW_MS - 1_000;
    data.anomalies = Arc::from(list);
    let text = draw_view(&data, &ViewState::default(), 200, 30);
    let status = text.lines().last().unwrap();
    assert!(status.contains("! hop spike: evil"), "{status}");
    assert!(!text.contains('\u{1b}'), "{status}");
}

/// A live run's forecast is read against the run limit in force for it:
/// the hop at which its projected tokens cross `total_run_limit`.
#[test]
fn a_live_runs_forecast_says_at_which_hop_it_crosses_the_run_limit() {
    use tokwatch::model::advisor::forecast::forecast;
    use tokwatch::model::budget::{Limits, Scope};
    let data = published(&["sample_logs"]);
    let run = data
        .snapshot
        .runs
        .iter()
        .find(|r| &*r.run_id == "loop-5-step")
        .unwrap();
    let advice = data.snapshot.advice.as_ref().unwrap();
    let seen = advice
        .forecasts
        .iter()
        .find(|f| *f.run_id == *run.run_id)
        .expect("the sample's unfinished loop has a forecast");
    let expected = seen.forecast.hops_expected;
    let book = PriceBook::embedded();
    let price = book.model(book.resolve(&run.hops.last().unwrap().model).unwrap());
    let board = |limit: u64| {
        let mut board = BudgetBoard::default();
        board.desired.set(
            Scope::Global,
            Limits {
                total_run_limit: Some(limit),
                ..Default::default()
            },
            0,
        );
        board
    };
    let open = |board: &BudgetBoard| {
        let mut inputs = with(vec![], &[Action::ScreenRuns]);
        inputs.extend(filter("loop-5-step"));
        let inputs = with(inputs, &[Action::DrillDown]);
        draw(&data, &inputs, board, 160, 48)
    };
    // 40,000 tokens: passed on a projected hop
    let crossing = forecast(run, expected, Some(40_000), None, Some(price))
        .unwrap()
        .crosses_token_limit_at
        .unwrap();
    assert!(crossing > seen.forecast.hops_seen, "{crossing}");
    let text = open(&board(40_000));
    assert!(text.contains("run limit"), "{text}");
    assert!(
        text.contains(&format!("crossed at hop {crossing}")),
        "{text}"
    );
    // a limit the loop stays under
    let text = open(&board(1_000_000));
    assert!(text.contains("run limit under 1.00M tokens"), "{text}");
    // no run limit: no line
    assert!(!open(&BudgetBoard::default()).contains("run limit"));
}
