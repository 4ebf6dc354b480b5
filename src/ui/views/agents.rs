//! The Agents table.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};

use crate::model::insights::PositionStats;
use crate::model::ledger::KeyedAgg;
use crate::sanitize::sanitize;

use super::table::{Column, DataTable, TableCell};
use super::widgets::block;
use super::{ViewCx, list_rows};
use crate::ui::data::selected_position;
use crate::ui::format::{dollars, tokens};
use crate::ui::state::ListKind;

/// The heights of the agents list and the hop-positions panel below it in
/// `height` lines: each as tall as its rows (borders and header included)
/// when both fit; else the panel gets at most half.
fn split(height: u16, agents: usize, positions: usize) -> (u16, u16) {
    let rows = |n: usize| u16::try_from(n).unwrap_or(u16::MAX).saturating_add(3);
    let list_want = rows(agents.max(1));
    let detail_want = rows(positions.max(1)).max(6);
    if list_want + detail_want <= height {
        // the list as tall as its rows; the panel takes the rest
        return (list_want, height - list_want);
    }
    let detail = detail_want.min(height / 2);
    (height - detail, detail)
}

/// The selected agent and its hop-position statistics.
fn selected_agent<'a>(cx: &ViewCx<'a>) -> (Option<&'a KeyedAgg>, &'a [PositionStats]) {
    let snap = &cx.data.snapshot;
    let cursor = cx.view.cursor();
    let selected = selected_position(cx.data, cx.view.screen(), cx.rows, cursor.selected.as_ref())
        .and_then(|p| snap.by_agent.get(cx.rows.indexes[p]));
    let positions = selected
        .and_then(|agent| cx.data.insights.positions.get(&agent.name))
        .map_or(&[][..], Vec::as_slice);
    (selected, positions)
}

/// Rows one page of the agents list shows in `area` (the body): it shares
/// the body with the hop-positions panel.
pub(super) fn page_rows(area: Rect, cx: &ViewCx) -> usize {
    let (_, positions) = selected_agent(cx);
    list_rows(split(area.height, cx.rows.len(), positions.len()).0)
}

pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    // per-hop-position statistics of the selected agent
    let (selected, positions) = selected_agent(cx);
    let (list_h, detail_h) = split(area.height, cx.rows.len(), positions.len());
    let [list, detail] =
        Layout::vertical([Constraint::Length(list_h), Constraint::Length(detail_h)]).areas(area);
    super::keyed::render(frame, list, cx, ListKind::Agents);
    let Some(agent) = selected else {
        frame.render_widget(block("Hop positions".into(), cx), detail);
        return;
    };
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_list_and_the_hop_positions_share_the_height_by_their_rows() {
        // 200x60: 7 agents, 2 positions: the list as tall as its rows
        assert_eq!(super::split(58, 7, 2), (10, 48));
        // many agents: the list takes what the positions leave
        assert_eq!(super::split(58, 80, 8), (47, 11));
        // 80x24 with many of both: half and half
        assert_eq!(super::split(22, 40, 30), (11, 11));
        assert_eq!(super::split(22, 7, 2), (10, 12));
    }
}
