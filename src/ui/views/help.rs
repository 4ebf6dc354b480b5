//! The help overlay: every key binding.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use crate::config::keys::Action;

use super::ViewCx;
use super::widgets::{block, centered};

pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let entries: [(Action, &str); 19] = [
        (Action::Help, "this help"),
        (Action::Quit, "quit"),
        (Action::NextScreen, "next screen (1–7: jump)"),
        (Action::PrevScreen, "previous screen"),
        (Action::Up, "up"),
        (Action::Down, "down"),
        (Action::PageUp, "page up"),
        (Action::PageDown, "page down"),
        (Action::Top, "first row"),
        (Action::Bottom, "last row"),
        (Action::DrillDown, "drill down (runs → hops)"),
        (Action::Back, "back / clear filter"),
        (Action::Filter, "filter (Esc clears)"),
        (Action::NextSort, "next sort column"),
        (Action::ReverseSort, "reverse sort"),
        (Action::Freeze, "freeze the view (ingest continues)"),
        (Action::NextTheme, "next theme"),
        (Action::EditBudget, "edit the budget of the selection"),
        (
            Action::ScreenOverview,
            "overview (2 runs, 3 agents, 4 segments, 5 models, 6 events, 7 budgets)",
        ),
    ];
    let mut lines: Vec<Line> = entries
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
    lines.push(Line::from(Span::styled(
        "! marks a bleeding hop (docs/insights.md) · mouse wheel scrolls",
        cx.theme.muted,
    )));
    let popup = centered(area, 84, lines.len());
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(block("Keys".into(), cx).border_style(cx.theme.border_focused)),
        popup,
    );
}
