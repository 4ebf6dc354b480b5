//! The dashboard's event loop. One task owns the terminal; the live service
//! (`live::LiveService`, on a thread of its own) owns the ledger and
//! publishes at most one snapshot per `snapshot_interval`, only when
//! something changed; the loop only receives them. Frames are drawn only
//! when something changed, at most `max_fps` per second. Nothing ticks while
//! nothing happens, except a once-a-second redraw of the "last event … ago"
//! clock.

use std::io;
use std::sync::Arc;
use std::time::Duration;

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
use crate::live::{LiveService, LiveSettings, Publication, Publish};
use crate::model::Snapshot;
use crate::model::budget::{Limits, Scope};
use crate::model::insights::BleedRules;
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
    /// The advisor's rules (the what-if overlay re-prices with them).
    pub advisor: crate::model::advisor::AdvisorRules,
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
    /// `--metrics`: the links' reports folded for the scrapes.
    metrics: Option<(
        crate::metrics::runtimes::RuntimeFold,
        watch::Sender<Arc<crate::metrics::server::RuntimeBoard>>,
    )>,
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
            metrics: None,
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
        if let Some((fold, board)) = &mut self.metrics
            && fold.apply(&event)
        {
            board.send_replace(Arc::new(fold.board()));
        }
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

/// Runs the live service and the dashboard until the user quits or a signal
/// arrives.
///
/// # Errors
/// Sources cannot start, or the terminal cannot be used.
pub async fn run_tui(
    settings: LiveSettings,
    prices: PriceBook,
    ui: UiSettings,
) -> anyhow::Result<()> {
    let service = LiveService::start(
        &settings,
        prices.clone(),
        Publish::Dashboard {
            every: ui.snapshot_interval,
            rules: ui.rules.clone(),
            recent_events: ui.recent_events,
        },
    )?;
    let base = Published {
        sources: settings
            .follow
            .iter()
            .cloned()
            .chain(service.listening.iter().cloned())
            .collect(),
        prices: Some(Arc::new(prices)),
        advisor: Some(Arc::new(ui.advisor.clone())),
        ..Published::default()
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut control = Control::start(&ui, &stop_rx)?;
    if service.metrics_addr().is_some() {
        let names: Vec<String> = ui.control.iter().map(ToString::to_string).collect();
        control.metrics = Some((
            crate::metrics::runtimes::RuntimeFold::new(&names),
            service.runtime_board(),
        ));
    }
    let mut published = service.subscribe();
    let result = async {
        // Never dropped: ratatui's `Terminal` prints to stderr on drop when the
        // cursor cannot be shown, which panics once the terminal is gone (SIGHUP)
        // and so skips the caller's cleanup; `TerminalGuard` restores instead.
        let mut terminal =
            std::mem::ManuallyDrop::new(ratatui::try_init().context("cannot use the terminal")?);
        let _guard = TerminalGuard { mouse: ui.mouse };
        if ui.mouse {
            ratatui::crossterm::execute!(
                io::stdout(),
                ratatui::crossterm::event::EnableMouseCapture
            )?;
        }
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // A closed terminal sends SIGHUP: end as on SIGTERM, so that what the
        // caller cleans up at exit (the demo's temporary files) is cleaned up.
        let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let signal = async {
            tokio::select! {
                _ = sigterm.recv() => {}
                _ = sighup.recv() => {}
            }
        };
        dashboard(
            &mut terminal,
            EventStream::new(),
            signal,
            &mut published,
            &base,
            &ui,
            control,
        )
        .await
    }
    .await;
    let _ = stop_tx.send(true);
    // What is still in flight is folded for at most 3 s after quitting.
    let _ = tokio::time::timeout(Duration::from_secs(3), service.stop()).await;
    result
}

/// The budgets' usage follows the data shown: the board's, and the open
/// editor's review (measured here, never while drawing).
fn measure_budgets(board: &mut BudgetBoard, view: &mut ViewState, snapshot: &Snapshot) {
    board.refresh_usage(snapshot);
    if let Some(editor) = &mut view.editor {
        editor.measure(snapshot);
    }
}

/// What the dashboard shows of a publication.
fn shown(publication: &Publication, base: &Published) -> Arc<Published> {
    Arc::new(Published {
        snapshot: publication.snapshot.clone(),
        stats: publication.stats.clone(),
        insights: publication.insights.clone().unwrap_or_default(),
        lines_per_sec: publication.lines_per_sec,
        last_event_ms: publication.last_event_ms,
        sources: base.sources.clone(),
        reading_backlog: !publication.caught_up,
        live: None,
        prices: base.prices.clone(),
        advisor: base.advisor.clone(),
        anomalies: publication.anomalies.clone(),
    })
}

/// The dashboard's loop: terminal events (`events`) become inputs, the
/// service's publications the data shown, link events the budget board;
/// draws when something changed, at most `max_fps` a second. Ends on the
/// quit key, the end of `events`, or `stop`.
async fn dashboard<B, E>(
    terminal: &mut ratatui::Terminal<B>,
    mut events: E,
    stop: impl std::future::Future<Output = ()>,
    published: &mut watch::Receiver<Arc<Publication>>,
    base: &Published,
    ui: &UiSettings,
    mut control: Control,
) -> anyhow::Result<()>
where
    B: ratatui::backend::Backend,
    B::Error: Send + Sync + 'static,
    E: futures_util::Stream<Item = io::Result<Event>> + Unpin,
{
    tokio::pin!(stop);
    let mut view = ViewState::default();
    let mut theme_index = 0;
    // Until the first publication: the sources and prices, nothing counted.
    let mut data = Arc::new(base.clone());
    let mut rows = Rows::compute(&data, view.screen(), &view);
    let frame_time = Duration::from_secs_f64(1.0 / f64::from(ui.max_fps.max(1)));
    let mut dirty = true;
    let mut next_frame = tokio::time::Instant::now();
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = &mut stop => break,
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
                                measure_budgets(&mut control.board, &mut view, &data.snapshot);
                            }
                            None => {}
                        }
                        view.hold_clock(chrono::Utc::now().timestamp_millis());
                        if !view.frozen && data.live.is_some() {
                            // resumed: back to the latest state at once
                            data = shown(&published.borrow(), base);
                            measure_budgets(&mut control.board, &mut view, &data.snapshot);
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
                let latest = shown(&published.borrow_and_update(), base);
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
                    measure_budgets(&mut control.board, &mut view, &data.snapshot);
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
                control.board.refresh_usage_if_changed(&data.snapshot);
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Instant;

    use ratatui::backend::{Backend, ClearType, TestBackend, WindowSize};
    use ratatui::buffer::Cell;
    use ratatui::layout::{Position, Size};

    use super::*;
    use crate::ingest::TimeWindow;
    use crate::ingest::sources::files::DEFAULT_MAX_LINE_BYTES;
    use crate::live::{Aggregator, Sources, TestHold};

    /// A `TestBackend` the test reads while the dashboard draws on it.
    #[derive(Clone)]
    struct Shared(Arc<Mutex<TestBackend>>);

    impl Backend for Shared {
        type Error = <TestBackend as Backend>::Error;
        fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
        where
            I: Iterator<Item = (u16, u16, &'a Cell)>,
        {
            self.0.lock().unwrap().draw(content)
        }
        fn hide_cursor(&mut self) -> Result<(), Self::Error> {
            self.0.lock().unwrap().hide_cursor()
        }
        fn show_cursor(&mut self) -> Result<(), Self::Error> {
            self.0.lock().unwrap().show_cursor()
        }
        fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
            self.0.lock().unwrap().get_cursor_position()
        }
        fn set_cursor_position<P: Into<Position>>(&mut self, p: P) -> Result<(), Self::Error> {
            self.0.lock().unwrap().set_cursor_position(p)
        }
        fn clear(&mut self) -> Result<(), Self::Error> {
            self.0.lock().unwrap().clear()
        }
        fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
            self.0.lock().unwrap().clear_region(clear_type)
        }
        fn size(&self) -> Result<Size, Self::Error> {
            self.0.lock().unwrap().size()
        }
        fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
            self.0.lock().unwrap().window_size()
        }
        fn flush(&mut self) -> Result<(), Self::Error> {
            self.0.lock().unwrap().flush()
        }
    }

    fn ui_settings() -> UiSettings {
        UiSettings {
            advisor: crate::model::advisor::AdvisorRules::default(),
            themes: vec![Theme::builtin(Theme::builtin_names()[0]).unwrap()],
            keymap: Keymap::default(),
            max_fps: 30,
            snapshot_interval: Duration::from_millis(100),
            mouse: false,
            rules: BleedRules::default(),
            recent_events: 500,
            control: Vec::new(),
            control_token: None,
            budgets_path: None,
            readonly: false,
        }
    }

    fn key(c: char) -> Event {
        Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
    }

    /// Polls `done` until it holds; fails after 30 s with `what`.
    fn eventually(what: &str, mut done: impl FnMut() -> Option<String>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match done() {
                None => return,
                Some(state) if Instant::now() > deadline => panic!("{what}; {state}"),
                Some(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// The stall: the fold is busy (here: blocked until released)
    /// while a client keeps one of the runtime's two workers busy. The
    /// dashboard still draws what is typed, and quits when asked; nothing
    /// read meanwhile is lost.
    #[test]
    fn input_is_answered_while_the_aggregator_is_busy() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let _entered_runtime = runtime.enter();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.jsonl");
        let line = "{\"ts\":\"2026-11-28T10:00:00Z\",\"run_id\":\"r1\",\"agent\":\"a\",\"model\":\"gpt-4o-mini\",\"input_tokens\":100,\"output_tokens\":10}\n";
        std::fs::write(&log, line.repeat(3)).unwrap();
        let settings = LiveSettings::following(&[&log]);
        let sources = Sources::start(&settings).unwrap();
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let mut aggregator = Aggregator::new(
            PriceBook::embedded(),
            TimeWindow::default(),
            DEFAULT_MAX_LINE_BYTES,
            None,
        );
        aggregator.hold = Some(TestHold {
            entered: entered_tx,
            release: release_rx,
        });
        let ui = ui_settings();
        let service = LiveService::with_parts(
            sources,
            aggregator,
            Publish::Dashboard {
                every: ui.snapshot_interval,
                rules: ui.rules.clone(),
                recent_events: ui.recent_events,
            },
        )
        .unwrap();
        entered
            .recv_timeout(Duration::from_secs(30))
            .expect("the aggregator never received the file's lines");
        // A busy client on the runtime (a blocking task holds a worker).
        let (busy_tx, busy) = std::sync::mpsc::channel();
        let (unbusy, unbusy_rx) = std::sync::mpsc::channel::<()>();
        runtime.spawn(async move {
            let _ = busy_tx.send(());
            let _ = unbusy_rx.recv();
        });
        busy.recv_timeout(Duration::from_secs(30)).unwrap();

        let screen = Arc::new(Mutex::new(TestBackend::new(100, 30)));
        // Bounded like a terminal's input: the test types two keys.
        let (keys, keys_rx) = mpsc::channel::<Event>(8);
        let mut published = service.subscribe();
        let handle = runtime.handle().clone();
        let backend = Shared(screen.clone());
        let dashboard_thread = std::thread::spawn(move || {
            handle.block_on(async move {
                let mut terminal = ratatui::Terminal::new(backend).unwrap();
                let (_stop, stop_rx) = watch::channel(false);
                let control = Control::start(&ui, &stop_rx).unwrap();
                let events = Box::pin(futures_util::stream::unfold(keys_rx, |mut rx| async {
                    rx.recv().await.map(|event| (Ok(event), rx))
                }));
                let base = Published::default();
                dashboard(
                    &mut terminal,
                    events,
                    std::future::pending(),
                    &mut published,
                    &base,
                    &ui,
                    control,
                )
                .await
            })
        });
        keys.blocking_send(key('?')).unwrap();
        eventually("the help overlay was never drawn", || {
            let text = screen.lock().unwrap().to_string();
            (!text.contains("this help (j/k, PgUp/PgDn scroll it)")).then_some(text)
        });
        keys.blocking_send(key('q')).unwrap();
        eventually("the dashboard did not quit", || {
            (!dashboard_thread.is_finished()).then(|| "still running".to_owned())
        });
        dashboard_thread.join().unwrap().unwrap();

        // The fold was held all along; released, it counts every line.
        drop(release);
        drop(unbusy);
        let mut published = service.subscribe();
        runtime.block_on(service.stop()).unwrap();
        let last = published.borrow_and_update().clone();
        assert!(last.last);
        assert_eq!(last.stats.events, 3);
        assert_eq!(last.snapshot.totals.input_tokens, 300);
    }
}
