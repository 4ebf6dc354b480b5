//! The Segments and Models tables (rows keyed by a name).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Table};

use crate::model::Usd;
use crate::sanitize::sanitize;

use super::widgets::{block, cost_cell, list_title, list_window};
use super::{ViewCx, list_rows};
use crate::ui::format::{percent, tokens};
use crate::ui::state::ListKind;

pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx, list: ListKind) {
    let snap = &cx.data.snapshot;
    let total = snap.totals.cost;
    let visible = list_rows(area.height);
    let (selected, offset) = list_window(cx, visible);
    let rows: Vec<Row> = cx
        .rows
        .indexes
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(position, &i)| {
            let (name, counters, extra) = match list {
                ListKind::Agents => (
                    &snap.by_agent[i].name,
                    &snap.by_agent[i].counters,
                    String::new(),
                ),
                ListKind::Segments => (
                    &snap.by_segment[i].name,
                    &snap.by_segment[i].counters,
                    String::new(),
                ),
                _ => {
                    let m = &snap.by_model[i];
                    let extra = match &m.priced_as {
                        None => "! unpriced".to_owned(),
                        Some(p) if **p != *m.name => format!("as {}", sanitize(p)),
                        Some(_) => String::new(),
                    };
                    (&m.name, &m.counters, extra)
                }
            };
            let share = if total > Usd::ZERO {
                counters.cost.to_f64() / total.to_f64()
            } else {
                0.0
            };
            let style = if Some(position) == selected {
                cx.theme.selected
            } else if extra.starts_with('!') {
                cx.theme.warning
            } else {
                cx.theme.text
            };
            Row::new(vec![
                Cell::from(sanitize(name).into_owned()),
                Cell::from(counters.events.to_string()),
                Cell::from(tokens(counters.input_tokens)),
                Cell::from(tokens(counters.cache_read_tokens)),
                Cell::from(tokens(counters.output_tokens)),
                Cell::from(tokens(counters.reasoning_tokens)),
                Cell::from(Span::styled(
                    cost_cell(counters),
                    if Some(position) == selected {
                        Style::default()
                    } else {
                        cx.theme.cost_style(share)
                    },
                )),
                Cell::from(percent(share)),
                Cell::from(extra),
            ])
            .style(style)
        })
        .collect();
    let label = match list {
        ListKind::Agents => "agent",
        ListKind::Segments => "segment",
        _ => "model",
    };
    let header = Row::new([
        label, "calls", "input", "cache rd", "output", "reason.", "cost", "share", "",
    ])
    .style(cx.theme.header);
    let widths = [
        Constraint::Min(14),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(14),
    ];
    let base = match list {
        ListKind::Agents => "Agents",
        ListKind::Segments => "Segments",
        _ => "Models",
    };
    let title = list_title(base.into(), cx, list) + " · Enter: runs";
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block(title, cx))
            .column_spacing(1),
        area,
    );
}
