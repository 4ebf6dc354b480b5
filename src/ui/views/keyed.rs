//! The Agents, Segments and Models tables (rows keyed by a name).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;

use crate::model::ledger::KeyedAgg;
use crate::model::{Counters, Usd};
use crate::sanitize::sanitize;
use unicode_width::UnicodeWidthStr;

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
    // a name is cut only below 20 cells: low-priority columns go first
    let names: Vec<&str> = match list {
        ListKind::Agents => snap.by_agent.iter().map(|r| &*r.name).collect(),
        ListKind::Segments => segments.iter().map(|r| &*r.name).collect(),
        _ => snap.by_model.iter().map(|r| &*r.name).collect(),
    };
    let widest = names.iter().map(|n| sanitize(n).width()).max().unwrap_or(0);
    let name_min = u16::try_from(widest.clamp(10, 20)).unwrap_or(20);
    let mut table = DataTable::new(vec![
        Column::text(label, 0, name_min, 40).sorts(SortKey::Name),
        Column::number("calls", 3).sorts(SortKey::Calls),
        Column::number("input", 2),
        Column::number("cache rd", 4),
        Column::number("cache wr", 5),
        Column::number("output", 2),
        Column::number("reason.", 6),
        Column::number("tokens", 1).sorts(SortKey::Tokens),
        Column::number("cost", 0).sorts(SortKey::Cost),
        Column::number("share", 1),
        Column::number("$/call", 7),
        Column::text("", 6, 10, 40),
    ])
    .sorted(cx.view.sort(list), list)
    .header_style(cx.theme.header);
    for (position, i) in cx.rows.window(offset, visible) {
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
                TableCell::number(tokens(counters.cache_write_tokens)),
                TableCell::number(tokens(counters.output_tokens)),
                TableCell::number(tokens(counters.reasoning_tokens)),
                TableCell::number(tokens(counters.total_tokens)),
                TableCell::number(cost_cell(counters)).styled(if is_selected {
                    Style::default()
                } else {
                    cx.theme.cost_style(share)
                }),
                TableCell::number(percent(share)),
                TableCell::number(per_call(counters)),
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

/// The mean cost of a priced call (`unpriced` when none was priced).
fn per_call(c: &Counters) -> String {
    let priced = c.events.saturating_sub(c.unpriced_events);
    if priced == 0 {
        return "unpriced".to_owned();
    }
    crate::ui::format::dollars(Usd::from_picos(c.cost.picos() / i128::from(priced)))
}
