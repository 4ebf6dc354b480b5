//! The Agents table.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};

use crate::sanitize::sanitize;

use super::table::{Column, DataTable, TableCell};
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
    let widest = positions
        .iter()
        .map(|p| p.input_tokens.p95.max(p.input_tokens.median))
        .max()
        .unwrap_or(1);
    let mut table = DataTable::new(vec![
        Column::number("hop", 0),
        Column::number("runs", 1),
        Column::number("input median", 0),
        Column::number("input p95", 1),
        Column::number("cost median", 0),
        Column::number("cost p95", 1),
        Column::bar("input: █ median ░ to p95", 2, 10, 100),
    ])
    .header_style(cx.theme.header);
    for p in positions.iter().take(visible) {
        table.row(
            vec![
                TableCell::number(p.hop.to_string()),
                TableCell::number(p.runs.to_string()),
                TableCell::number(tokens(p.input_tokens.median)),
                TableCell::number(tokens(p.input_tokens.p95)),
                TableCell::number(dollars(p.cost.median)),
                TableCell::number(dollars(p.cost.p95)),
                TableCell::bar(
                    vec![
                        (p.input_tokens.median, '█', cx.theme.chart),
                        (
                            p.input_tokens.p95.saturating_sub(p.input_tokens.median),
                            '░',
                            cx.theme.chart_alt,
                        ),
                    ],
                    widest,
                ),
            ],
            cx.theme.text,
        );
    }
    let title = format!("Hop positions of {} across runs", sanitize(&agent.name));
    table.render(frame, detail, block(title, cx));
}
