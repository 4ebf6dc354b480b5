//! The Events screen: the recent tail of calls, run ends and budget events.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Row, Table};

use crate::model::ledger::RecentKind;
use crate::sanitize::sanitize;

use super::widgets::{block, list_title, list_window};
use super::{ViewCx, list_rows};
use crate::ui::format::{dollars, tokens};
use crate::ui::state::ListKind;

pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let recent = &cx.data.snapshot.recent;
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
            let e = &recent[i];
            let time = e
                .ts_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map_or_else(
                    || "-".to_owned(),
                    |t| t.format("%m-%d %H:%M:%S").to_string(),
                );
            let (kind, style) = match e.kind {
                RecentKind::Hop => ("call", cx.theme.text),
                RecentKind::BudgetExceeded => ("! budget", cx.theme.budget_over),
                RecentKind::RunEnd => ("end", cx.theme.muted),
            };
            Row::new(vec![
                Cell::from(time),
                Cell::from(kind),
                Cell::from(sanitize(&e.run_id).into_owned()),
                Cell::from(e.hop.to_string()),
                Cell::from(sanitize(&e.agent).into_owned()),
                Cell::from(sanitize(&e.model).into_owned()),
                Cell::from(tokens(e.usage.input_total())),
                Cell::from(tokens(e.usage.output)),
                Cell::from(e.cost.map_or_else(
                    || {
                        if e.kind == RecentKind::Hop {
                            "unpriced".into()
                        } else {
                            String::new()
                        }
                    },
                    dollars,
                )),
            ])
            .style(if Some(position) == selected {
                cx.theme.selected
            } else {
                style
            })
        })
        .collect();
    let header = Row::new([
        "time", "kind", "run", "hop", "agent", "model", "in", "out", "cost",
    ])
    .style(cx.theme.header);
    let widths = [
        Constraint::Length(14),
        Constraint::Length(8),
        Constraint::Min(12),
        Constraint::Length(4),
        Constraint::Length(12),
        Constraint::Length(18),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(9),
    ];
    let title = list_title("Latest events".into(), cx, ListKind::Events) + " · Enter: run";
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block(title, cx))
            .column_spacing(1),
        area,
    );
}
