//! The runs list (all runs, or those of one agent, segment or model).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Table};

use crate::model::Usd;
use crate::model::ledger::RunAgg;
use crate::sanitize::sanitize;

use super::widgets::{block, cost_cell, list_title, list_window};
use super::{ViewCx, list_rows};
use crate::ui::format::tokens;
use crate::ui::state::{ListKind, Scope};

pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx, scope: Option<&Scope>) {
    let snap = &cx.data.snapshot;
    let visible = list_rows(area.height);
    let (selected, offset) = list_window(cx, visible);
    let total = snap.totals.cost;
    let rows: Vec<Row> = cx
        .rows
        .indexes
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(position, &index)| {
            let run: &RunAgg = &snap.runs[index];
            let bleeding = cx.data.insights.bleeding.get(index).map_or(0, Vec::len);
            let path: Vec<String> = run
                .agent_path()
                .iter()
                .map(|a| sanitize(a).into_owned())
                .collect();
            let status = match (&run.ended, run.budget_hits.is_empty()) {
                (_, false) => "! budget".to_owned(),
                (Some(s), true) => sanitize(s).into_owned(),
                (None, true) => "running".to_owned(),
            };
            let share = if total > Usd::ZERO {
                run.counters.cost.to_f64() / total.to_f64()
            } else {
                0.0
            };
            let style = if Some(position) == selected {
                cx.theme.selected
            } else if bleeding > 0 {
                cx.theme.warning
            } else {
                cx.theme.text
            };
            Row::new(vec![
                Cell::from(if bleeding > 0 {
                    format!("!{bleeding}")
                } else {
                    String::new()
                }),
                Cell::from(sanitize(&run.run_id).into_owned()),
                Cell::from(sanitize(run.segment.as_deref().unwrap_or("")).into_owned()),
                Cell::from(path.join("→")),
                Cell::from(run.hops.len().to_string()),
                Cell::from(tokens(run.counters.total_tokens)),
                Cell::from(
                    run.multiplier()
                        .map_or_else(|| "-".into(), |m| format!("{m:.1}×")),
                ),
                Cell::from(Span::styled(
                    cost_cell(&run.counters),
                    if Some(position) == selected {
                        Style::default()
                    } else {
                        cx.theme.cost_style(share)
                    },
                )),
                Cell::from(status),
            ])
            .style(style)
        })
        .collect();
    let header = Row::new([
        "!", "run", "segment", "agents", "hops", "tokens", "×1st", "cost", "status",
    ])
    .style(cx.theme.header);
    let widths = [
        Constraint::Length(3),
        Constraint::Min(12),
        Constraint::Length(14),
        Constraint::Min(16),
        Constraint::Length(4),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(9),
    ];
    let base = match scope {
        None => "Runs".to_owned(),
        Some(Scope::Agent(a)) => format!("Runs with agent {}", sanitize(a)),
        Some(Scope::Segment(s)) => format!("Runs of segment {}", sanitize(s)),
        Some(Scope::Model(m)) => format!("Runs using {}", sanitize(m)),
    };
    let title = list_title(base, cx, ListKind::Runs) + " · Enter: hops";
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block(title, cx))
            .column_spacing(1),
        area,
    );
}
