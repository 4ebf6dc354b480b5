//! Shared pieces of every screen: bordered blocks, list windows, cells, popups.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders};

use crate::model::Counters;
use crate::model::ledger::RunAgg;
use crate::sanitize::sanitize;

use super::ViewCx;
use crate::ui::data::selected_position;
use crate::ui::format::{age, dollars};
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

/// Lays `groups` (each a label and its value, as [`kv`] makes them) out in
/// lines of at most `width` cells, never splitting a group: a value is
/// never cut at the edge, it moves to the next line.
pub(super) fn pack<'a>(groups: Vec<Vec<Span<'a>>>, width: u16) -> Vec<Line<'a>> {
    let width = usize::from(width);
    let mut lines: Vec<Line> = Vec::new();
    let mut current: Vec<Span> = Vec::new();
    let mut used = 0;
    for group in groups {
        let w: usize = group.iter().map(Span::width).sum();
        // the trailing gap of a group may overhang
        let tight = w - group
            .last()
            .map_or(0, |s| s.content.len() - s.content.trim_end().len());
        if used > 0 && used + tight > width {
            lines.push(Line::from(std::mem::take(&mut current)));
            used = 0;
        }
        used += w;
        current.extend(group);
    }
    if !current.is_empty() {
        lines.push(Line::from(current));
    }
    lines
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
    format!(
        "{base} · {} · sort {}{}",
        super::chrome::count(u64::try_from(cx.rows.len()).unwrap_or(u64::MAX), "row"),
        sort.key.label(),
        sort.arrow(list)
    )
}

/// A run with no event for this long and no `run_end` is shown as idle.
pub const IDLE_AFTER_MS: i64 = 5 * 60_000;

/// What a run is doing, as of `now_ms`: its `run_end` status once ended,
/// `idle 12m` when nothing arrived for [`IDLE_AFTER_MS`], else `running`.
/// The idle time counts from the run's newest event timestamp.
#[must_use]
pub fn run_status(run: &RunAgg, now_ms: i64) -> String {
    if let Some(status) = &run.ended {
        return sanitize(status).into_owned();
    }
    match run.last_ts_ms {
        Some(last) if now_ms - last >= IDLE_AFTER_MS => format!("idle {}", age(now_ms - last)),
        _ => "running".to_owned(),
    }
}

/// A ratio as `12.3×`, `-` when unknown.
#[must_use]
pub fn times(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".into(), |m| format!("{m:.1}×"))
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

/// The first title that fits `width` columns of a block's top border.
pub(super) fn title_for(width: u16, candidates: Vec<String>) -> String {
    let room = usize::from(width).saturating_sub(4);
    let last = candidates.last().cloned().unwrap_or_default();
    candidates
        .into_iter()
        .find(|t| t.chars().count() <= room)
        .unwrap_or(last)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_quiet_run_without_an_end_is_idle_not_running_forever() {
        let mut run = RunAgg::new(Arc::from("r"));
        run.first_ts_ms = Some(1_000_000);
        run.last_ts_ms = Some(1_000_000);
        assert_eq!(run_status(&run, 1_000_000 + 4_000), "running");
        assert_eq!(run_status(&run, 1_000_000 + IDLE_AFTER_MS - 1), "running");
        assert_eq!(run_status(&run, 1_000_000 + 5 * 60_000), "idle 5m");
        assert_eq!(run_status(&run, 1_000_000 + 3 * 3_600_000), "idle 3h");
        run.ended = Some(Arc::from("aborted\u{1b}[2J"));
        assert_eq!(
            run_status(&run, 1_000_000 + 3 * 3_600_000),
            "aborted\u{FFFD}[2J"
        );
    }
}
