//! The dashboard's event loop. One task owns the terminal; the aggregator
//! task owns the ledger and publishes at most one snapshot per
//! `snapshot_interval`, only when something changed; frames are drawn only
//! when something changed, at most `max_fps` per second. Nothing ticks while
//! nothing happens, except a once-a-second redraw of the "last event … ago"
//! clock.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use ratatui::crossterm::event::{
    Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind,
};
use tokio::sync::watch;

use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::config::keys::Keymap;
use crate::control::ControlAddr;
use crate::control::client::{ClientEvent, REFRESH, run_runtime_link};
use crate::control::store::{self, DesiredState};
use crate::live::{Aggregator, LiveSettings, Sources};
use crate::model::budget::{Limits, Scope};
use crate::model::insights::{BleedRules, Insights};
use crate::pricing::PriceBook;

use super::budgets::{BudgetBoard, BudgetEditor, EditorInput};
use super::data::{LiveIngest, Published, Rows};
use super::state::{Toast, ViewState};
use super::theme::Theme;
use super::update::{BudgetTarget, Effect, Input, update};
use super::views::{ViewCx, list_page, list_rows, render};

/// Dashboard settings resolved from the config file and command line.
pub struct UiSettings {
    /// Themes `t` cycles through; the first is shown first.
    pub themes: Vec<Theme>,
    pub keymap: Keymap,
    pub max_fps: u32,
    pub snapshot_interval: Duration,
    pub mouse: bool,
    pub rules: BleedRules,
    /// Length of the live tail (Events screen).
    pub recent_events: usize,
    /// Runtimes to push budgets to (`--control`), their token, the desired
    /// state file, and whether editing is disabled (`--readonly`).
    pub control: Vec<ControlAddr>,
    pub control_token: Option<String>,
    pub budgets_path: Option<PathBuf>,
    pub readonly: bool,
}

/// Budget control as the dashboard runs it: the board, the desired state
/// the links push, and their events.
struct Control {
    board: BudgetBoard,
    desired: watch::Sender<Arc<DesiredState>>,
    /// Bounded: links wait when the UI is behind.
    events: mpsc::Receiver<ClientEvent>,
    store: Option<PathBuf>,
    links: Vec<tokio::task::JoinHandle<()>>,
}

impl Control {
    fn start(ui: &UiSettings, shutdown: &watch::Receiver<bool>) -> anyhow::Result<Control> {
        let desired = match &ui.budgets_path {
            Some(path) => DesiredState::load(path)?,
            None => DesiredState::default(),
        };
        let (desired_tx, desired_rx) = watch::channel(Arc::new(desired.clone()));
        let (events_tx, events) = mpsc::channel(256);
        let links = ui
            .control
            .iter()
            .map(|addr| {
                tokio::spawn(run_runtime_link(
                    addr.clone(),
                    ui.control_token.clone(),
                    (Duration::from_secs(5), REFRESH),
                    desired_rx.clone(),
                    events_tx.clone(),
                    shutdown.clone(),
                ))
            })
            .collect();
        Ok(Control {
            board: BudgetBoard {
                desired,
                readonly: ui.readonly,
                ..BudgetBoard::default()
            },
            desired: desired_tx,
            events,
            store: ui.budgets_path.clone(),
            links,
        })
    }

    /// Records a confirmed change (based on `base_version`, the version in
    /// force when the editor opened), saves it, and hands it to the links.
    fn push(&mut self, scope: Scope, limits: Limits, base_version: u64, now_ms: i64) -> Toast {
        let before = self.board.current(&scope).map(|(b, _)| b.limits);
        // Numbered above every version a runtime reported (one may have
        // moved on while the editor was open), based on what the edit
        // started from: a stale edit is still refused as a conflict.
        let budget = self.board.change(scope.clone(), limits, base_version);
        self.board.pending_since.insert(scope.clone(), now_ms);
        if let Some(path) = &self.store {
            let saved = self
                .board
                .desired
                .save(path)
                .and_then(|()| store::audit_change(path, &budget, before.as_ref()));
            if let Err(e) = saved {
                return Toast {
                    text: format!("could not save budgets: {e:#}"),
                    error: true,
                };
            }
        }
        let _ = self.desired.send(Arc::new(self.board.desired.clone()));
        let text = if self.links.is_empty() {
            format!(
                "{scope} v{} saved; no --control runtime to push to",
                budget.version
            )
        } else {
            format!(
                "pushing {scope} v{} to {} runtime(s)…",
                budget.version,
                self.links.len()
            )
        };
        Toast { text, error: false }
    }

    /// Applies a link event; audit-logs outcomes.
    fn event(&mut self, event: ClientEvent) -> Option<Toast> {
        if let (
            Some(path),
            ClientEvent::Outcome {
                addr,
                scope,
                version,
                outcome,
            },
        ) = (&self.store, &event)
        {
            let result = outcome.audit();
            let key = self
                .board
                .desired
                .budgets
                .get(scope)
                .and_then(|b| b.idempotency_key.clone());
            let _ = store::audit_result(path, scope, *version, key.as_deref(), addr, &result);
        }
        let toast = self
            .board
            .apply(event)
            .map(|(text, error)| Toast { text, error });
        let failed = self.adopted();
        failed.or(toast)
    }

    /// Saves and audit-logs changes a runtime refused as conflicts and
    /// that were replaced by what it has in force, and hands the new
    /// desired state to the links (so the refused change is never pushed
    /// again, even after a reconnect). A toast when the store cannot be
    /// written.
    fn adopted(&mut self) -> Option<Toast> {
        let adoptions = std::mem::take(&mut self.board.adoptions);
        if adoptions.is_empty() {
            return None;
        }
        let mut failure = None;
        if let Some(path) = &self.store {
            let mut saved = self.board.desired.save(path);
            for a in &adoptions {
                saved = saved.and_then(|()| {
                    store::audit_adopt(
                        path,
                        &a.scope,
                        a.refused_version,
                        a.refused.as_ref(),
                        a.adopted.as_ref(),
                        &a.runtime,
                    )
                });
            }
            if let Err(e) = saved {
                failure = Some(Toast {
                    text: format!("could not save budgets: {e:#}"),
                    error: true,
                });
            }
        }
        let _ = self.desired.send(Arc::new(self.board.desired.clone()));
        failure
    }
}

/// Maps a terminal event to an input for `update`.
#[must_use]
pub fn input_for(event: &Event, view: &ViewState, keymap: &Keymap) -> Option<Input> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => {
            if view.editor.is_some() {
                return editor_input(key, keymap);
            }
            if view.filter_editing {
                return filter_input(key, keymap);
            }
            keymap.lookup(key).map(Input::Action)
        }
        Event::Mouse(mouse) => match mouse.kind {
            MouseEventKind::ScrollDown => Some(Input::Scroll(3)),
            MouseEventKind::ScrollUp => Some(Input::Scroll(-3)),
            _ => None,
        },
        _ => None,
    }
}

fn editor_input(key: &KeyEvent, keymap: &Keymap) -> Option<Input> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return keymap.lookup(key).map(Input::Action);
    }
    let input = match key.code {
        KeyCode::Esc => EditorInput::Cancel,
        KeyCode::Enter => EditorInput::Enter,
        KeyCode::Up | KeyCode::BackTab => EditorInput::Up,
        KeyCode::Down | KeyCode::Tab => EditorInput::Down,
        KeyCode::Left | KeyCode::Right => EditorInput::Cycle,
        KeyCode::Backspace => EditorInput::Backspace,
        KeyCode::Char('+') => EditorInput::Plus,
        KeyCode::Char('-') => EditorInput::Minus,
        KeyCode::Char('y') => EditorInput::Confirm { strict: false },
        KeyCode::Char('Y') => EditorInput::Confirm { strict: true },
        KeyCode::Char(c) => EditorInput::Char(c),
        _ => return None,
    };
    Some(Input::Editor(input))
}

fn filter_input(key: &KeyEvent, keymap: &Keymap) -> Option<Input> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        // ctrl+c still quits while typing
        return keymap.lookup(key).map(Input::Action);
    }
    match key.code {
        KeyCode::Char(c) => Some(Input::FilterChar(c)),
        KeyCode::Backspace => Some(Input::FilterBackspace),
        KeyCode::Enter => Some(Input::FilterCommit),
        KeyCode::Esc => Some(Input::FilterCancel),
        _ => None,
    }
}

/// Restores the terminal when dropped: on return, on error and on panic
/// (ratatui's init also installs a panic hook that restores first).
struct TerminalGuard {
    mouse: bool,
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if self.mouse {
            let _ = ratatui::crossterm::execute!(
                io::stdout(),
                ratatui::crossterm::event::DisableMouseCapture
            );
        }
        // Errors are ignored, never printed: when the terminal is gone
        // (closed window, SIGHUP) printing to it panics, and a panic here
        // would end the process before its caller cleans up.
        let _ = ratatui::try_restore();
        let _ = ratatui::crossterm::execute!(io::stdout(), ratatui::crossterm::cursor::Show);
    }
}

/// Runs sources, the aggregator and the dashboard until the user quits or a
/// signal arrives.
///
/// # Errors
/// Sources cannot start, or the terminal cannot be used.
pub async fn run_tui(
    settings: LiveSettings,
    prices: PriceBook,
    ui: UiSettings,
) -> anyhow::Result<()> {
    let mut sources = Sources::start(&settings)?;
    let mut aggregator = Aggregator::new(
        prices.clone(),
        settings.window,
        settings.max_line_bytes,
        sources.record.take(),
    )
    .with_input_format(settings.decoders.forced)
    .with_recent_events(ui.recent_events);
    let source_names: Vec<String> = settings
        .follow
        .iter()
        .cloned()
        .chain(sources.listening.iter().cloned())
        .collect();
    let shared_prices = Arc::new(prices.clone());
    let (publish, mut published) = watch::channel(Arc::new(Published {
        sources: source_names.clone(),
        prices: Some(shared_prices.clone()),
        ..Published::default()
    }));
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let rules = ui.rules.clone();
    let interval = ui.snapshot_interval;

    // The aggregator: applies messages, publishes when dirty, rate-limited.
    let aggregator_task = tokio::spawn(async move {
        let mut last_publish = tokio::time::Instant::now() - interval;
        let mut window_start = Instant::now();
        let mut lines_at_window = 0_u64;
        let mut lines_per_sec = 0.0;
        let mut last_event_ms = None;
        // Every source ended (standard input alone): keep publishing what was read.
        let mut sources_done = false;
        // How long the last publish took: the next waits at least four times
        // that (nine while a backlog is being read, and at least a second),
        // so building snapshots and insights of a large ledger never takes
        // more than a fifth (a tenth) of the task. The moment the backlog is
        // in, it is published.
        let mut publish_cost = Duration::ZERO;
        let mut publish_now = false;
        loop {
            let gap = if publish_now {
                Duration::ZERO
            } else if aggregator.caught_up {
                interval.max(publish_cost * 4)
            } else {
                interval.max(publish_cost * 9).max(Duration::from_secs(1))
            };
            let deadline = last_publish + gap;
            tokio::select! {
                _ = stop_rx.changed() => break,
                msg = sources.rx.recv(), if !sources_done => match msg {
                    Some(msg) => {
                        let catching_up = !aggregator.caught_up;
                        // Only telemetry is an event ("last event … ago"),
                        // not a file opened or a path waited for.
                        let telemetry = {
                            use crate::ingest::channel::IngestMsg as M;
                            matches!(msg, M::Lines { .. } | M::Oversized { .. } | M::Estimated(_))
                        };
                        if aggregator.handle(msg).is_err() {
                            break;
                        }
                        publish_now |= catching_up && aggregator.caught_up;
                        if telemetry {
                            last_event_ms = Some(chrono::Utc::now().timestamp_millis());
                        }
                    }
                    None => sources_done = true,
                },
                () = tokio::time::sleep_until(deadline), if aggregator.dirty => {
                    let elapsed = window_start.elapsed().as_secs_f64();
                    #[allow(clippy::cast_precision_loss)]
                    if elapsed >= 1.0 {
                        lines_per_sec = (aggregator.stats().lines - lines_at_window) as f64 / elapsed;
                        lines_at_window = aggregator.stats().lines;
                        window_start = Instant::now();
                    }
                    let started = Instant::now();
                    let snapshot = aggregator.snapshot();
                    let insights = Insights::compute(&snapshot, &rules, &prices);
                    let data = Published {
                        snapshot: Arc::new(snapshot),
                        stats: Arc::new(aggregator.stats().clone()),
                        insights: Arc::new(insights),
                        lines_per_sec,
                        last_event_ms,
                        sources: source_names.clone(),
                        reading_backlog: !aggregator.caught_up,
                        live: None,
                        prices: Some(shared_prices.clone()),
                    };
                    let _ = publish.send(Arc::new(data));
                    aggregator.dirty = false;
                    last_publish = tokio::time::Instant::now();
                    publish_cost = started.elapsed();
                    publish_now = false;
                }
            }
        }
        let _ = sources.shutdown(|msg| aggregator.handle(msg)).await;
    });

    let control = Control::start(&ui, &stop_tx.subscribe())?;
    let result = ui_loop(&mut published, ui, control).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(3), aggregator_task).await;
    result
}

async fn ui_loop(
    published: &mut watch::Receiver<Arc<Published>>,
    ui: UiSettings,
    mut control: Control,
) -> anyhow::Result<()> {
    // Never dropped: ratatui's `Terminal` prints to stderr on drop when the
    // cursor cannot be shown, which panics once the terminal is gone (SIGHUP)
    // and so skips the caller's cleanup; `TerminalGuard` restores instead.
    let mut terminal =
        std::mem::ManuallyDrop::new(ratatui::try_init().context("cannot use the terminal")?);
    let _guard = TerminalGuard { mouse: ui.mouse };
    if ui.mouse {
        ratatui::crossterm::execute!(io::stdout(), ratatui::crossterm::event::EnableMouseCapture)?;
    }
    let mut events = EventStream::new();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // A closed terminal sends SIGHUP: end as on SIGTERM, so that what the
    // caller cleans up at exit (the demo's temporary files) is cleaned up.
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut view = ViewState::default();
    let mut theme_index = 0;
    let mut data: Arc<Published> = published.borrow_and_update().clone();
    let mut rows = Rows::compute(&data, view.screen(), &view);
    let frame_time = Duration::from_secs_f64(1.0 / f64::from(ui.max_fps.max(1)));
    let mut dirty = true;
    let mut next_frame = tokio::time::Instant::now();
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sighup.recv() => break,
            event = events.next() => match event {
                Some(Ok(event)) => {
                    if let Event::Resize(..) = event {
                        dirty = true;
                    }
                    if let Some(input) = input_for(&event, &view, &ui.keymap) {
                        match update(&mut view, input, &data, &control.board) {
                            Some(Effect::Quit) => break,
                            Some(Effect::NextTheme) => {
                                theme_index = (theme_index + 1) % ui.themes.len().max(1);
                                view.toast = Some(Toast { text: format!("theme: {}", ui.themes[theme_index].name), error: false });
                            }
                            Some(Effect::EditBudget(target)) => {
                                if control.board.readonly {
                                    view.toast = Some(Toast { text: "read-only: budgets cannot be edited (--readonly)".into(), error: true });
                                } else {
                                    let scope = match target {
                                        BudgetTarget::Global => Scope::Global,
                                        BudgetTarget::Agent(name) => Scope::Agent(name.to_string()),
                                        BudgetTarget::Segment(name) => Scope::Segment(name.to_string()),
                                    };
                                    let start = control.board.editor_start(&scope);
                                    view.editor = Some(BudgetEditor::new(scope, start));
                                }
                            }
                            Some(Effect::PushBudget { scope, limits, base_version }) => {
                                let now_ms = chrono::Utc::now().timestamp_millis();
                                let toast = control.push(scope, limits, base_version, now_ms);
                                if !toast.error {
                                    view.budget_changed(now_ms);
                                }
                                view.toast = Some(toast);
                                control.board.refresh_usage(&data.snapshot);
                            }
                            None => {}
                        }
                        view.hold_clock(chrono::Utc::now().timestamp_millis());
                        if !view.frozen && data.live.is_some() {
                            // resumed: back to the latest state at once
                            data = published.borrow().clone();
                            control.board.refresh_usage(&data.snapshot);
                        }
                        rows = Rows::compute(&data, view.screen(), &view);
                        dirty = true;
                    }
                }
                // The terminal is gone: nothing more can be shown.
                Some(Err(_)) | None => break,
            },
            changed = published.changed() => {
                if changed.is_err() {
                    break;
                }
                let latest = published.borrow_and_update().clone();
                if view.frozen {
                    // the view holds still; the status bar follows ingest
                    let mut held = (*data).clone();
                    held.live = Some(LiveIngest {
                        lines: latest.stats.lines,
                        lines_per_sec: latest.lines_per_sec,
                        last_event_ms: latest.last_event_ms,
                    });
                    data = Arc::new(held);
                } else {
                    data = latest;
                    control.board.refresh_usage(&data.snapshot);
                    rows = Rows::compute(&data, view.screen(), &view);
                }
                dirty = true;
            },
            Some(event) = control.events.recv() => {
                let elsewhere = control.board.changed_elsewhere;
                if let Some(toast) = control.event(event) {
                    view.toast = Some(toast);
                }
                if control.board.changed_elsewhere != elsewhere {
                    view.budget_changed(chrono::Utc::now().timestamp_millis());
                }
                if control.board.usage.len() != control.board.listed().len() {
                    control.board.refresh_usage(&data.snapshot);
                }
                dirty = true;
            },
            _ = clock.tick() => dirty = true,
            () = tokio::time::sleep_until(next_frame), if dirty => {
                let size = terminal.size()?;
                view.page_rows = list_rows(size.height.saturating_sub(2));
                let theme = &ui.themes[theme_index.min(ui.themes.len().saturating_sub(1))];
                let now_ms = chrono::Utc::now().timestamp_millis();
                // a list that shares the body: paging goes by what it shows
                let page = list_page(ratatui::layout::Rect::new(0, 0, size.width, size.height), &ViewCx { data: &data, view: &view, theme, keymap: &ui.keymap, rows: &rows, now_ms, budgets: &control.board });
                view.list_page = page.map(|rows| (view.screen().clone(), rows));
                terminal.draw(|frame| render(frame, &ViewCx { data: &data, view: &view, theme, keymap: &ui.keymap, rows: &rows, now_ms, budgets: &control.board }))?;
                dirty = false;
                next_frame = tokio::time::Instant::now() + frame_time;
            },
        }
    }
    Ok(())
}
