//! The Agents table.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Cell, Row, Table};

use crate::sanitize::sanitize;

use super::widgets::block;
use super::{ViewCx, list_rows};
use crate::ui::data::selected_position;
use crate::ui::format::{dollars, tokens};
use crate::ui::state::ListKind;

pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let [list, detail] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Min(6)]).areas(area);
    super::keyed::render(frame, list, cx, ListKind::Agents);
    // per-hop-position statistics of the selected agent
    let snap = &cx.data.snapshot;
    let cursor = cx.view.cursor();
    let selected = selected_position(cx.data, cx.view.screen(), cx.rows, cursor.selected.as_ref())
        .and_then(|p| snap.by_agent.get(cx.rows.indexes[p]));
    let Some(agent) = selected else {
        frame.render_widget(block("Hop positions".into(), cx), detail);
        return;
    };
    let positions = cx
        .data
        .insights
        .positions
        .get(&agent.name)
        .map_or(&[][..], Vec::as_slice);
    let visible = list_rows(detail.height);
    let rows: Vec<Row> = positions
        .iter()
        .take(visible)
        .map(|p| {
            Row::new(vec![
                Cell::from(p.hop.to_string()),
                Cell::from(p.runs.to_string()),
                Cell::from(tokens(p.input_tokens.median)),
                Cell::from(tokens(p.input_tokens.p95)),
                Cell::from(dollars(p.cost.median)),
                Cell::from(dollars(p.cost.p95)),
            ])
            .style(cx.theme.text)
        })
        .collect();
    let header = Row::new([
        "hop",
        "runs",
        "input median",
        "input p95",
        "cost median",
        "cost p95",
    ])
    .style(cx.theme.header);
    let widths = [
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(13),
        Constraint::Length(10),
        Constraint::Length(12),
        Constraint::Length(10),
    ];
    let title = format!("Hop positions of {} across runs", sanitize(&agent.name));
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block(title, cx)),
        detail,
    );
}
