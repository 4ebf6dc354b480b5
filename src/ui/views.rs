//! Pure rendering: `render(frame, &ViewCx)` draws the current screen from
//! published data and view state. No I/O, no clock (`now_ms` is passed in),
//! and only the visible rows of a list are built.
//!
//! ```text
//! ┌ tokwatch  1 Overview  2 Runs  3 Agents  4 Segments  5 Models  6 Events  7 Budgets   FROZEN ┐
//! │ body: the screen (tables, waterfall, panels)                                             │
//! └ status: sources · last event · ingest health · messages · ? help ────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};

use crate::config::keys::Keymap;

use super::budgets::BudgetBoard;
use super::data::{Published, Rows};
use super::state::{ListKind, Screen, Tab, ViewState};
use super::theme::Theme;

mod advice;
mod agents;
mod budgets;
mod charts;
mod chrome;
mod events;
mod help;
mod keyed;
mod overview;
mod run;
mod runs;
mod table;
mod widgets;

/// Everything a frame is drawn from.
pub struct ViewCx<'a> {
    pub data: &'a Published,
    pub view: &'a ViewState,
    pub theme: &'a Theme,
    pub keymap: &'a Keymap,
    /// Rows of the current list, computed when data or view changed.
    pub rows: &'a Rows,
    /// Wall clock, epoch ms (pinned in tests). Figures derived from the
    /// data use [`ViewCx::view_now`] (held while frozen); the status bar's
    /// live ingest part uses this.
    pub now_ms: i64,
    /// Desired budgets and what runtimes applied.
    pub budgets: &'a BudgetBoard,
}

impl ViewCx<'_> {
    /// The time figures are computed at: the freeze time while frozen (so
    /// they hold still), else the wall clock.
    #[must_use]
    pub fn view_now(&self) -> i64 {
        self.view.view_now(self.now_ms)
    }
}

/// Draws one frame.
pub fn render(frame: &mut Frame, cx: &ViewCx) {
    let [tabs, body, status] = areas(frame.area());
    chrome::render_tabs(frame, tabs, cx);
    match cx.view.screen() {
        Screen::Tab(Tab::Overview) => overview::render(frame, body, cx),
        Screen::Tab(Tab::Runs) => runs::render(frame, body, cx, None),
        Screen::Runs(scope) => runs::render(frame, body, cx, Some(scope)),
        Screen::Run(run_id) => run::render(frame, body, cx, run_id),
        Screen::Hop(run_id, hop) => run::render_hop(frame, body, cx, run_id, *hop),
        Screen::Tab(Tab::Agents) => agents::render(frame, body, cx),
        Screen::Tab(Tab::Segments) => keyed::render(frame, body, cx, ListKind::Segments),
        Screen::Tab(Tab::Models) => keyed::render(frame, body, cx, ListKind::Models),
        Screen::Tab(Tab::Events) => events::render(frame, body, cx),
        Screen::Tab(Tab::Budgets) => budgets::render(frame, body, cx),
        Screen::Tab(Tab::Advice) => advice::render(frame, body, cx),
    }
    chrome::render_status(frame, status, cx);
    if let Some(editor) = &cx.view.editor {
        budgets::render_editor(frame, body, cx, editor);
    }
    if cx.view.help {
        help::render(frame, body, cx);
    }
}

/// The tab bar, the screen's body and the status bar.
fn areas(area: ratatui::layout::Rect) -> [ratatui::layout::Rect; 3] {
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// Lines of the help overlay's text (for scrolling it).
#[must_use]
pub fn help_lines() -> usize {
    help::line_count()
}

/// Rows a page of the current screen's list holds in a terminal of `area`
/// when that is not [`list_rows`] of the whole body (the Budgets table
/// shares it with the runtimes panel, the Agents list with the hop-positions
/// panel): the app keeps it in
/// [`ViewState::list_page`] for paging and scrolling.
#[must_use]
pub fn list_page(area: ratatui::layout::Rect, cx: &ViewCx) -> Option<usize> {
    let [_, body, _] = areas(area);
    match cx.view.screen() {
        Screen::Tab(Tab::Budgets) => Some(budgets::page_rows(body, cx)),
        Screen::Tab(Tab::Agents) => Some(agents::page_rows(body, cx)),
        _ => None,
    }
}

/// Rows a list body of `height` lines shows (borders and header excluded).
#[must_use]
pub fn list_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(3))
}
