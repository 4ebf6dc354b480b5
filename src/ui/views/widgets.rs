//! Shared pieces of every screen: bordered blocks, list windows, cells, popups.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders};

use crate::model::Counters;

use super::ViewCx;
use crate::ui::data::selected_position;
use crate::ui::format::dollars;
use crate::ui::state::ListKind;

pub(super) fn block<'a>(title: String, cx: &ViewCx) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(cx.theme.border)
        .title(Span::styled(format!(" {title} "), cx.theme.title))
}

pub(super) fn kv<'a>(label: &'a str, value: String, style: Style, cx: &ViewCx) -> Vec<Span<'a>> {
    vec![
        Span::styled(format!("{label} "), cx.theme.muted),
        Span::styled(value, style),
        Span::raw("   "),
    ]
}

/// First visible row so that `selected` is in view.
pub(super) fn window(selected: usize, offset: usize, visible: usize, len: usize) -> usize {
    let visible = visible.max(1);
    let mut offset = offset.min(selected).min(len.saturating_sub(1));
    if selected >= offset + visible {
        offset = selected + 1 - visible;
    }
    offset
}

pub(super) fn cost_cell(c: &Counters) -> String {
    if c.events > 0 && c.unpriced_events == c.events {
        "unpriced".to_owned()
    } else if c.unpriced_events > 0 {
        format!("{}+?", dollars(c.cost))
    } else {
        dollars(c.cost)
    }
}

/// The selected position and first visible row of the current list.
pub(super) fn list_window(cx: &ViewCx, visible: usize) -> (Option<usize>, usize) {
    let screen = cx.view.screen();
    let cursor = cx.view.cursor();
    let selected = selected_position(cx.data, screen, cx.rows, cursor.selected.as_ref());
    let offset = selected.map_or(0, |s| window(s, cursor.offset, visible, cx.rows.len()));
    (selected, offset)
}

pub(super) fn list_title(base: String, cx: &ViewCx, list: ListKind) -> String {
    let sort = cx.view.sort(list);
    let arrow = if sort.reversed { "↑" } else { "↓" };
    format!(
        "{base} · {} rows · sort {}{arrow}",
        cx.rows.len(),
        sort.key.label()
    )
}

/// A popup at most `width` wide, tall enough for `lines` lines plus borders,
/// centred in `area`.
pub(super) fn centered(area: Rect, width: u16, lines: usize) -> Rect {
    let width = area.width.min(width);
    let height = area
        .height
        .min(u16::try_from(lines + 2).unwrap_or(u16::MAX));
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}
