//! The Agents, Segments and Models tables (rows keyed by a name).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;

use crate::model::ledger::KeyedAgg;
use crate::model::{Counters, Usd};
use crate::sanitize::sanitize;

use super::table::{Column, DataTable, TableCell};
use super::widgets::{block, cost_cell, list_title, list_window};
use super::{ViewCx, list_rows};
use crate::ui::data::segment_rows;
use crate::ui::format::{percent, tokens};
use crate::ui::state::{ListKind, SortKey};

pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx, list: ListKind) {
    let snap = &cx.data.snapshot;
    let total = snap.totals.cost;
    let visible = list_rows(area.height);
    let (selected, offset) = list_window(cx, visible);
    // Segments end with the `(none)` row of calls without a segment.
    let segments: Vec<KeyedAgg> = if list == ListKind::Segments {
        segment_rows(snap)
    } else {
        Vec::new()
    };
    let label = match list {
        ListKind::Agents => "agent",
        ListKind::Segments => "segment",
        _ => "model",
    };
    let mut table = DataTable::new(vec![
        Column::text(label, 0, 10, 40).sorts(SortKey::Name),
        Column::number("calls", 3).sorts(SortKey::Calls),
        Column::number("input", 2),
        Column::number("cache rd", 4),
        Column::number("output", 2),
        Column::number("reason.", 5),
        Column::number("tokens", 1).sorts(SortKey::Tokens),
        Column::number("cost", 0).sorts(SortKey::Cost),
        Column::number("share", 1),
        Column::text("", 6, 10, 40),
    ])
    .sorted(cx.view.sort(list), list)
    .header_style(cx.theme.header);
    for (position, &i) in cx
        .rows
        .indexes
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
    {
        let (name, counters, extra, none): (&str, &Counters, String, bool) = match list {
            ListKind::Agents => (
                &snap.by_agent[i].name,
                &snap.by_agent[i].counters,
                String::new(),
                false,
            ),
            ListKind::Segments => (
                &segments[i].name,
                &segments[i].counters,
                String::new(),
                i >= snap.by_segment.len(),
            ),
            _ => {
                let m = &snap.by_model[i];
                let extra = match &m.priced_as {
                    None => "! unpriced".to_owned(),
                    Some(p) if **p != *m.name => format!("as {}", sanitize(p)),
                    Some(_) => String::new(),
                };
                (&m.name, &m.counters, extra, false)
            }
        };
        let share = if total > Usd::ZERO {
            counters.cost.to_f64() / total.to_f64()
        } else {
            0.0
        };
        let is_selected = Some(position) == selected;
        let style = if is_selected {
            cx.theme.selected
        } else if extra.starts_with('!') {
            cx.theme.warning
        } else if none {
            cx.theme.muted
        } else {
            cx.theme.text
        };
        table.row(
            vec![
                // `(none)` is ours, not a name from the logs
                TableCell::text(if none { name.into() } else { sanitize(name) }),
                TableCell::number(counters.events.to_string()),
                TableCell::number(tokens(counters.input_tokens)),
                TableCell::number(tokens(counters.cache_read_tokens)),
                TableCell::number(tokens(counters.output_tokens)),
                TableCell::number(tokens(counters.reasoning_tokens)),
                TableCell::number(tokens(counters.total_tokens)),
                TableCell::number(cost_cell(counters)).styled(if is_selected {
                    Style::default()
                } else {
                    cx.theme.cost_style(share)
                }),
                TableCell::number(percent(share)),
                TableCell::text(extra),
            ],
            style,
        );
    }
    let base = match list {
        ListKind::Agents => "Agents",
        ListKind::Segments => "Segments",
        _ => "Models",
    };
    let title = list_title(base.into(), cx, list) + " · Enter: runs";
    table.render(frame, area, block(title, cx));
}
