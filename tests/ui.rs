//! Golden screens of the dashboard on ratatui's TestBackend, from the sample
//! workload, with a pinned clock; and untrusted text never reaching the screen.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

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
    let snapshot = ledger.snapshot();
    let insights = Insights::compute(&snapshot, &BleedRules::default(), &PriceBook::embedded());
    Published {
        snapshot: Arc::new(snapshot),
        stats: Arc::new(stats),
        insights: Arc::new(insights),
        lines_per_sec: 0.0,
        last_event_ms: Some(NOW_MS - 4_000),
        sources: vec!["sample_logs".into()],
        reading_backlog: false,
    }
}

fn keymap() -> Keymap {
    Keymap::new(&Bindings::default()).unwrap()
}

/// Applies `actions`, then draws a `width`×`height` screen.
fn screen(data: &Published, actions: &[Action], width: u16, height: u16) -> String {
    let keymap = keymap();
    let theme = Theme::builtin("dark").unwrap();
    let mut view = ViewState {
        page_rows: list_rows(height - 2),
        ..ViewState::default()
    };
    for action in actions {
        if let Some(tokwatch::ui::update::Effect::EditBudget(_)) =
            update(&mut view, Input::Action(*action), data)
        {
            // what the app does: open the editor, prefilled from the desired state
            view.editor = Some(BudgetEditor::new(
                tokwatch::model::budget::Scope::Agent("writer".into()),
                tokwatch::ui::budgets::EditorStart::default(),
            ));
        }
    }
    let board = BudgetBoard::default();
    let rows = Rows::compute(data, view.screen(), &view);
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| {
            render(
                frame,
                &ViewCx {
                    data,
                    view: &view,
                    theme: &theme,
                    keymap: &keymap,
                    rows: &rows,
                    now_ms: NOW_MS,
                    budgets: &board,
                },
            )
        })
        .unwrap();
    terminal.backend().to_string()
}

fn golden(name: &str, actions: &[Action]) {
    let data = published(&["sample_logs"]);
    insta::assert_snapshot!(format!("{name}_80x24"), screen(&data, actions, 80, 24));
    insta::assert_snapshot!(format!("{name}_160x48"), screen(&data, actions, 160, 48));
}

#[test]
fn overview() {
    golden("overview", &[]);
}

#[test]
fn runs() {
    golden("runs", &[Action::ScreenRuns]);
}

#[test]
fn run_detail_waterfall() {
    golden("run_detail", &[Action::ScreenRuns, Action::DrillDown]);
}

#[test]
fn agents_with_hop_positions() {
    golden("agents", &[Action::ScreenAgents, Action::Down]);
}

#[test]
fn segments() {
    golden("segments", &[Action::ScreenSegments]);
}

#[test]
fn models() {
    golden("models", &[Action::ScreenModels]);
}

#[test]
fn events() {
    golden("events", &[Action::ScreenEvents]);
}

#[test]
fn budgets() {
    golden("budgets", &[Action::ScreenBudgets]);
}

#[test]
fn help_overlay() {
    golden("help", &[Action::ScreenRuns, Action::Help]);
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
