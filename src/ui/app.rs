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

use crate::config::keys::Keymap;
use crate::live::{Aggregator, LiveSettings, Sources};
use crate::model::insights::{BleedRules, Insights};
use crate::pricing::PriceBook;

use super::data::{Published, Rows};
use super::state::{Toast, ViewState};
use super::theme::Theme;
use super::update::{Effect, Input, update};
use super::views::{ViewCx, list_rows, render};

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
}

/// Maps a terminal event to an input for `update`.
#[must_use]
pub fn input_for(event: &Event, view: &ViewState, keymap: &Keymap) -> Option<Input> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => {
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
        ratatui::restore();
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
    .with_recent_events(ui.recent_events);
    let source_names: Vec<String> = settings
        .follow
        .iter()
        .cloned()
        .chain(sources.listening.iter().cloned())
        .collect();
    let (publish, mut published) = watch::channel(Arc::new(Published {
        sources: source_names.clone(),
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
        loop {
            let deadline = last_publish + interval;
            tokio::select! {
                _ = stop_rx.changed() => break,
                msg = sources.rx.recv() => match msg {
                    Some(msg) => {
                        if aggregator.handle(msg).is_err() {
                            break;
                        }
                        last_event_ms = Some(chrono::Utc::now().timestamp_millis());
                    }
                    None => std::future::pending::<()>().await, // sources done: keep showing
                },
                () = tokio::time::sleep_until(deadline), if aggregator.dirty => {
                    let elapsed = window_start.elapsed().as_secs_f64();
                    #[allow(clippy::cast_precision_loss)]
                    if elapsed >= 1.0 {
                        lines_per_sec = (aggregator.stats().lines - lines_at_window) as f64 / elapsed;
                        lines_at_window = aggregator.stats().lines;
                        window_start = Instant::now();
                    }
                    let snapshot = aggregator.snapshot();
                    let insights = Insights::compute(&snapshot, &rules, &prices);
                    let data = Published {
                        snapshot: Arc::new(snapshot),
                        stats: Arc::new(aggregator.stats().clone()),
                        insights: Arc::new(insights),
                        lines_per_sec,
                        last_event_ms,
                        sources: source_names.clone(),
                    };
                    let _ = publish.send(Arc::new(data));
                    aggregator.dirty = false;
                    last_publish = tokio::time::Instant::now();
                }
            }
        }
        let _ = sources.shutdown(|msg| aggregator.handle(msg)).await;
    });

    let result = ui_loop(&mut published, ui).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(3), aggregator_task).await;
    result
}

async fn ui_loop(
    published: &mut watch::Receiver<Arc<Published>>,
    ui: UiSettings,
) -> anyhow::Result<()> {
    let mut terminal = ratatui::try_init().context("cannot use the terminal")?;
    let _guard = TerminalGuard { mouse: ui.mouse };
    if ui.mouse {
        ratatui::crossterm::execute!(io::stdout(), ratatui::crossterm::event::EnableMouseCapture)?;
    }
    let mut events = EventStream::new();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
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
            event = events.next() => match event {
                Some(Ok(event)) => {
                    if let Event::Resize(..) = event {
                        dirty = true;
                    }
                    if let Some(input) = input_for(&event, &view, &ui.keymap) {
                        match update(&mut view, input, &data) {
                            Some(Effect::Quit) => break,
                            Some(Effect::NextTheme) => {
                                theme_index = (theme_index + 1) % ui.themes.len().max(1);
                                view.toast = Some(Toast { text: format!("theme: {}", ui.themes[theme_index].name), error: false });
                            }
                            Some(Effect::EditBudget(target)) => {
                                view.toast = Some(Toast { text: format!("budget editing ({target:?}) arrives with budget control"), error: false });
                            }
                            None => {}
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
                if !view.frozen {
                    data = latest;
                    rows = Rows::compute(&data, view.screen(), &view);
                    dirty = true;
                }
            },
            _ = clock.tick() => dirty = true,
            () = tokio::time::sleep_until(next_frame), if dirty => {
                let size = terminal.size()?;
                view.page_rows = list_rows(size.height.saturating_sub(2));
                let theme = &ui.themes[theme_index.min(ui.themes.len().saturating_sub(1))];
                let now_ms = chrono::Utc::now().timestamp_millis();
                terminal.draw(|frame| render(frame, &ViewCx { data: &data, view: &view, theme, keymap: &ui.keymap, rows: &rows, now_ms }))?;
                dirty = false;
                next_frame = tokio::time::Instant::now() + frame_time;
            },
        }
    }
    Ok(())
}
