//! One run: its hop-by-hop waterfall.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use crate::model::ledger::HopAgg;
use crate::sanitize::sanitize;

use super::widgets::{block, cost_cell, kv, list_title, list_window};
use super::{ViewCx, list_rows};
use crate::ui::format::{dollars, tokens};
use crate::ui::state::ListKind;

/// The hop-by-hop waterfall of one run: input split into uncached (█),
/// cache read (▒), cache write (░), and output (▓), to scale.
pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx, run_id: &str) {
    let snap = &cx.data.snapshot;
    let Some((run_index, run)) = snap
        .runs
        .iter()
        .enumerate()
        .find(|(_, r)| &*r.run_id == run_id)
    else {
        let text = Paragraph::new(format!(
            "run {} is gone (filtered out or not ingested)",
            sanitize(run_id)
        ))
        .block(block("Run".into(), cx));
        frame.render_widget(text, area);
        return;
    };
    let bleeding = cx.data.insights.bleeding.get(run_index);
    let [head, table] = Layout::vertical([Constraint::Length(3), Constraint::Min(3)]).areas(area);
    let status = run
        .ended
        .as_deref()
        .map_or_else(|| "running".to_owned(), |s| sanitize(s).into_owned());
    let summary = Line::from(
        [
            kv(
                "cost",
                cost_cell(&run.counters),
                cx.theme.cost.add_modifier(Modifier::BOLD),
                cx,
            ),
            kv(
                "tokens",
                tokens(run.counters.total_tokens),
                cx.theme.text,
                cx,
            ),
            kv(
                "×first hop",
                run.multiplier()
                    .map_or_else(|| "-".into(), |m| format!("{m:.1}×")),
                cx.theme.text,
                cx,
            ),
            kv(
                "segment",
                sanitize(run.segment.as_deref().unwrap_or("-")).into_owned(),
                cx.theme.text,
                cx,
            ),
            kv("status", status, cx.theme.text, cx),
            kv(
                "budget breaches",
                run.budget_hits.len().to_string(),
                if run.budget_hits.is_empty() {
                    cx.theme.good
                } else {
                    cx.theme.budget_over
                },
                cx,
            ),
        ]
        .concat(),
    );
    frame.render_widget(
        Paragraph::new(summary).block(block(format!("Run {}", sanitize(run_id)), cx)),
        head,
    );

    let visible = list_rows(table.height);
    let (selected, offset) = list_window(cx, visible);
    // What the other columns leave (their widths + spacing + borders ≈ 89).
    let bar_width = usize::from(table.width.saturating_sub(89)).clamp(8, 80);
    let max = run
        .hops
        .iter()
        .map(|h| h.usage.total())
        .max()
        .unwrap_or(1)
        .max(1);
    let rows: Vec<Row> = cx
        .rows
        .indexes
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(position, &i)| {
            let hop: &HopAgg = &run.hops[i];
            let reason = bleeding
                .and_then(|b| b.iter().find(|(index, _)| *index == i))
                .map(|(_, r)| r);
            let growth = i.checked_sub(1).map(|p| {
                let (now, before) = (hop.usage.input_total(), run.hops[p].usage.input_total());
                if now >= before {
                    format!("+{}", tokens(now - before))
                } else {
                    format!("-{}", tokens(before - now))
                }
            });
            let marker = match (reason.is_some(), hop.budget_hit.is_some()) {
                (_, true) => "!$",
                (true, false) => "!",
                _ => "",
            };
            let row_style = if Some(position) == selected {
                cx.theme.selected
            } else if reason.is_some() {
                cx.theme.warning
            } else {
                cx.theme.text
            };
            Row::new(vec![
                Cell::from(marker),
                Cell::from(hop.hop.to_string()),
                Cell::from(sanitize(&hop.agent).into_owned()),
                Cell::from(sanitize(&hop.model).into_owned()),
                Cell::from(waterfall(hop, max, bar_width, cx)),
                Cell::from(tokens(hop.usage.input_total())),
                Cell::from(tokens(hop.usage.output)),
                Cell::from(tokens(hop.usage.reasoning)),
                Cell::from(growth.unwrap_or_default()),
                Cell::from(
                    hop.complete_cost()
                        .map_or_else(|| "unpriced".to_owned(), dollars),
                ),
                Cell::from(reason.map_or_else(String::new, |r| r.code().replace('_', " "))),
            ])
            .style(row_style)
        })
        .collect();
    let header = Row::new([
        "",
        "hop",
        "agent",
        "model",
        "█ uncached ▒ cache read ░ cache write ▓ output",
        "in",
        "out",
        "reas.",
        "Δ in",
        "cost",
        "bleeding",
    ])
    .style(cx.theme.header);
    let widths = [
        Constraint::Length(2),
        Constraint::Length(3),
        Constraint::Length(12),
        Constraint::Length(18),
        Constraint::Length(u16::try_from(bar_width).unwrap_or(10)),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Min(8),
    ];
    let title = list_title("Hops".into(), cx, ListKind::Hops);
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block(title, cx))
            .column_spacing(1),
        table,
    );
}

pub(super) fn waterfall<'a>(hop: &HopAgg, max: u64, width: usize, cx: &ViewCx) -> Line<'a> {
    let u = &hop.usage;
    let scale = |n: u64| -> usize {
        let cells = u128::from(n) * width as u128 / u128::from(max);
        usize::try_from(cells).unwrap_or(width)
    };
    let parts = [
        (scale(u.input_uncached), '█', cx.theme.chart),
        (scale(u.cache_read), '▒', cx.theme.good),
        (scale(u.cache_write()), '░', cx.theme.accent),
        (
            scale(u.output).max(usize::from(u.output > 0)),
            '▓',
            cx.theme.chart_alt,
        ),
    ];
    Line::from(
        parts
            .into_iter()
            .filter(|(n, _, _)| *n > 0)
            .map(|(n, c, style)| Span::styled(c.to_string().repeat(n), style))
            .collect::<Vec<_>>(),
    )
}
