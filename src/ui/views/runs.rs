//! The runs list (all runs, or those of one agent, segment or model).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;

use crate::model::Usd;
use crate::model::ledger::RunAgg;
use crate::model::snapshot::NO_SEGMENT;
use crate::sanitize::sanitize;

use super::table::{Column, DataTable, TableCell};
use super::widgets::{block, cost_cell, list_title, list_window, run_status, times};
use super::{ViewCx, list_rows};
use crate::ui::format::{age, tokens};
use crate::ui::state::{ListKind, Scope, SortKey};

/// `!6` bleeding hops, `$2` budget breaches.
pub(super) fn marker(bleeding: usize, breaches: usize) -> String {
    let mut out = Vec::new();
    if bleeding > 0 {
        out.push(format!("!{bleeding}"));
    }
    if breaches > 0 {
        out.push(format!("${breaches}"));
    }
    out.join(" ")
}

pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx, scope: Option<&Scope>) {
    let snap = &cx.data.snapshot;
    let visible = list_rows(area.height);
    let (selected, offset) = list_window(cx, visible);
    let total = snap.totals.cost;
    let mut table = DataTable::new(vec![
        // counts (`!6 $2`): shown whole or, when there is no room, not at all
        Column::number("!", 2).sorts(SortKey::Bleeding),
        Column::text("run", 0, 10, 36).sorts(SortKey::Name),
        Column::text("segment", 3, 8, 24),
        Column::text("agents", 6, 12, 60),
        Column::number("hops", 4).sorts(SortKey::Hops),
        Column::number("tokens", 1).sorts(SortKey::Tokens),
        Column::number("×1st", 2).sorts(SortKey::Multiplier),
        Column::number("growth", 5),
        Column::number("cost", 0).sorts(SortKey::Cost),
        Column::text("status", 1, 8, 16),
        Column::number("started", 7).sorts(SortKey::Started),
    ])
    .sorted(cx.view.sort(ListKind::Runs), ListKind::Runs)
    .header_style(cx.theme.header);
    for (position, index) in cx.rows.window(offset, visible) {
        let run: &RunAgg = &snap.runs[index];
        let bleeding = cx.data.insights.bleeding.get(index).map_or(0, |b| b.len());
        let path: Vec<String> = run
            .agent_path()
            .iter()
            .map(|a| sanitize(a).into_owned())
            .collect();
        let share = if total > Usd::ZERO {
            run.counters().cost.to_f64() / total.to_f64()
        } else {
            0.0
        };
        let is_selected = Some(position) == selected;
        let style = if is_selected {
            cx.theme.selected
        } else if bleeding > 0 {
            cx.theme.warning
        } else {
            cx.theme.text
        };
        let mut status = TableCell::text(run_status(run, cx.view_now()));
        if !run.budget_hits.is_empty() && !is_selected {
            status = status.styled(cx.theme.budget_over);
        }
        table.row(
            vec![
                TableCell::text(marker(bleeding, run.budget_hits.len())),
                TableCell::text(sanitize(&run.run_id)),
                match run.segment.as_deref() {
                    Some(segment) => TableCell::text(sanitize(segment)),
                    // as the Segments screen names calls without one
                    None if is_selected => TableCell::text(NO_SEGMENT),
                    None => TableCell::text(NO_SEGMENT).styled(cx.theme.muted),
                },
                TableCell::text(path.join("→")),
                TableCell::number(run.hops.len().to_string()),
                TableCell::number(tokens(run.counters().total_tokens)),
                TableCell::number(times(run.multiplier())),
                TableCell::number(times(run.context_growth())),
                TableCell::number(cost_cell(&run.counters())).styled(if is_selected {
                    Style::default()
                } else {
                    cx.theme.cost_style(share)
                }),
                status,
                TableCell::number(
                    run.first_ts_ms
                        .map_or_else(String::new, |t| format!("{} ago", age(cx.view_now() - t))),
                ),
            ],
            style,
        );
    }
    let base = match scope {
        None => "Runs".to_owned(),
        Some(Scope::Agent(a)) => format!("Runs with agent {}", sanitize(a)),
        Some(Scope::Segment(s)) => format!("Runs of segment {}", sanitize(s)),
        Some(Scope::NoSegment) => "Runs without a segment".to_owned(),
        Some(Scope::Model(m)) => format!("Runs using {}", sanitize(m)),
        Some(Scope::BleedingHop { agent, hop }) => {
            format!("Runs where {} · hop {hop} bled", sanitize(agent))
        }
    };
    let title = list_title(base, cx, ListKind::Runs) + " · Enter: hops";
    table.render(frame, area, block(title, cx));
}
