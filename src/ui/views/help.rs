//! The help overlay: every key binding and what the marks mean. It scrolls
//! (`j`/`k`, page keys, `g`/`G`, the mouse wheel) when the terminal is too
//! short for it; long lines wrap.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use crate::config::keys::Action;

use super::ViewCx;
use super::widgets::{block, centered};

/// Key bindings, in the order shown.
const ENTRIES: [(Action, &str); 27] = [
    (Action::Help, "this help (j/k, PgUp/PgDn scroll it)"),
    (Action::Quit, "quit"),
    (Action::NextScreen, "next screen"),
    (Action::PrevScreen, "previous screen"),
    (Action::ScreenOverview, "Overview"),
    (Action::ScreenRuns, "Runs"),
    (Action::ScreenAgents, "Agents"),
    (Action::ScreenSegments, "Segments"),
    (Action::ScreenModels, "Models"),
    (Action::ScreenEvents, "Events (and the malformed lines)"),
    (Action::ScreenBudgets, "Budgets"),
    (
        Action::ScreenAdvice,
        "Advice (what to change, what it saves)",
    ),
    (Action::Up, "up"),
    (Action::Down, "down"),
    (Action::PageUp, "page up"),
    (Action::PageDown, "page down"),
    (Action::Top, "first row"),
    (Action::Bottom, "last row"),
    (Action::DrillDown, "drill down (runs → hops → one hop)"),
    (Action::Back, "back / clear filter / close"),
    (Action::Filter, "filter (Esc clears)"),
    (Action::NextSort, "next sort column (the header's arrow)"),
    (Action::ReverseSort, "reverse sort"),
    (Action::Freeze, "freeze the view (ingest continues)"),
    (
        Action::WhatIf,
        "what-if: a run with every recommendation applied",
    ),
    (Action::NextTheme, "next theme"),
    (Action::EditBudget, "edit the budget of the selection"),
];

/// What the marks and columns mean, after the keys.
const NOTES: [&str; 6] = [
    "!6   six bleeding hops (docs/insights.md) · $2  two budget breaches",
    "×1st run tokens ÷ first hop's · growth  last hop input ÷ first hop's",
    "idle 5m  no event for 5 minutes and no run_end yet",
    "(none)   the calls without a segment",
    "↓ ↑  the sorted column and its direction",
    "the mouse wheel scrolls",
];

/// Lines of the help text (keys, a blank line, notes).
#[must_use]
pub fn line_count() -> usize {
    ENTRIES.len() + 1 + NOTES.len()
}

pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let mut lines: Vec<Line> = ENTRIES
        .iter()
        .map(|(action, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{:>16}  ", cx.keymap.describe(*action)),
                    cx.theme.accent,
                ),
                Span::styled(*what, cx.theme.text),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.extend(
        NOTES
            .iter()
            .map(|note| Line::from(Span::styled(*note, cx.theme.muted))),
    );
    let popup = centered(area, 84, lines.len());
    let inner = usize::from(popup.height.saturating_sub(2));
    // wrapped lines count: a line wider than the popup takes more rows
    let width = usize::from(popup.width.saturating_sub(2)).max(1);
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(width).max(1)).sum();
    let top = cx.view.help_scroll.min(rows.saturating_sub(inner));
    let title = if rows > inner {
        format!(
            "Keys · lines {}–{} of {rows} · j/k scroll",
            top + 1,
            (top + inner).min(rows)
        )
    } else {
        "Keys".to_owned()
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((u16::try_from(top).unwrap_or(u16::MAX), 0))
            .block(block(title, cx).border_style(cx.theme.border_focused)),
        popup,
    );
}
