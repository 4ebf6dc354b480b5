//! The Overview: key figures, burn, bleeding hops, top offenders.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Sparkline, Table};

use crate::model::Usd;
use crate::model::insights::{Insights, burn_per_minute};
use crate::sanitize::sanitize;

use super::widgets::{block, kv, window};
use super::{ViewCx, list_rows};
use crate::ui::format::{dollars, fit, percent, tokens};

pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let snap = &cx.data.snapshot;
    let insights: &Insights = &cx.data.insights;
    let t = &snap.totals;
    let [summary, burn, offenders] = Layout::vertical([
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Min(3),
    ])
    .areas(area);

    let spend = if t.unpriced_events > 0 {
        format!("{}+?", dollars(t.cost))
    } else {
        dollars(t.cost)
    };
    let times = |v: u64| format!("{:.1}×", Insights::multiplier(v));
    let bold_cost = cx.theme.cost.add_modifier(Modifier::BOLD);
    let lines = vec![
        Line::from(
            [
                kv("spend", spend, bold_cost, cx),
                kv("tokens", tokens(t.total_tokens), cx.theme.text, cx),
                kv("runs", snap.runs.len().to_string(), cx.theme.text, cx),
                kv("calls", t.events.to_string(), cx.theme.text, cx),
            ]
            .concat(),
        ),
        Line::from(
            [
                kv(
                    "cost per run: median",
                    dollars(insights.run_cost.median),
                    cx.theme.cost,
                    cx,
                ),
                kv(
                    "p95",
                    dollars(insights.run_cost.p95),
                    cx.theme.cost_high,
                    cx,
                ),
            ]
            .concat(),
        ),
        Line::from(
            [
                kv(
                    "tokens per run ÷ first hop: median",
                    times(insights.run_multiplier.median),
                    cx.theme.text,
                    cx,
                ),
                kv(
                    "p95",
                    times(insights.run_multiplier.p95),
                    cx.theme.warning,
                    cx,
                ),
            ]
            .concat(),
        ),
        Line::from(
            [
                kv("cache hit", percent(t.cache_hit_ratio()), cx.theme.good, cx),
                kv("saved", dollars(insights.cache_savings), cx.theme.good, cx),
                kv(
                    "hidden reasoning",
                    tokens(t.reasoning_tokens),
                    cx.theme.text,
                    cx,
                ),
                kv("≈", dollars(insights.reasoning_cost), cx.theme.cost, cx),
            ]
            .concat(),
        ),
        Line::from(unpriced_spans(cx)),
    ];
    frame.render_widget(
        Paragraph::new(lines).block(block("Overview".into(), cx)),
        summary,
    );

    // burn rate over the last 30 minutes of activity
    let now_minute = snap.last_ts_ms.map_or(0, |ms| ms.div_euclid(60_000));
    let burn_minutes = burn_per_minute(snap, now_minute, 30);
    let recent: Usd = burn_minutes.iter().rev().take(15).copied().sum();
    let per_minute = Usd::from_picos(recent.picos() / 15);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bars: Vec<u64> = burn_minutes
        .iter()
        .map(|c| (c.picos().max(0) / 1_000_000) as u64)
        .collect();
    let [text, spark] = Layout::horizontal([Constraint::Length(34), Constraint::Min(10)])
        .areas(burn.inner(ratatui::layout::Margin::new(1, 1)));
    frame.render_widget(block("Burn (last 30 min of activity)".into(), cx), burn);
    let burn_lines = vec![
        Line::from(kv("per min", dollars(per_minute), cx.theme.cost, cx)),
        Line::from(
            [
                kv(
                    "→ hour",
                    dollars(Usd::from_picos(per_minute.picos() * 60)),
                    cx.theme.cost,
                    cx,
                ),
                kv(
                    "day",
                    dollars(Usd::from_picos(per_minute.picos() * 1440)),
                    cx.theme.cost_high,
                    cx,
                ),
            ]
            .concat(),
        ),
    ];
    frame.render_widget(Paragraph::new(burn_lines), text);
    frame.render_widget(
        Sparkline::default().data(&bars).style(cx.theme.chart),
        spark,
    );

    render_offenders(frame, offenders, cx);
}

pub(super) fn unpriced_spans<'a>(cx: &ViewCx) -> Vec<Span<'a>> {
    let snap = &cx.data.snapshot;
    let stats = &cx.data.stats;
    let unpriced: Vec<String> = snap
        .by_model
        .iter()
        .filter(|m| m.priced_as.is_none())
        .map(|m| sanitize(&m.name).into_owned())
        .collect();
    let mut spans = Vec::new();
    if unpriced.is_empty() {
        spans.extend(kv("unpriced", "none".into(), cx.theme.good, cx));
    } else {
        spans.extend(kv(
            "unpriced",
            fit(&unpriced.join(", "), 40),
            cx.theme.warning,
            cx,
        ));
    }
    let health = if stats.malformed == 0 {
        cx.theme.good
    } else {
        cx.theme.warning
    };
    spans.extend(kv(
        "ingest",
        format!(
            "{} lines, {} malformed, {} dropped",
            stats.lines,
            stats.malformed,
            stats.live_totals().dropped
        ),
        health,
        cx,
    ));
    spans
}

pub(super) fn render_offenders(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let offenders = &cx.data.insights.offenders;
    let header = Row::new([
        "",
        "agent · hop",
        "runs",
        "carried",
        "$/run",
        "total",
        "why",
    ])
    .style(cx.theme.header);
    let cursor = cx.view.cursor();
    let selected = cursor
        .selected
        .as_ref()
        .and_then(|k| {
            offenders
                .iter()
                .position(|o| format!("{}#{}", o.agent, o.hop) == **k)
        })
        .unwrap_or(0);
    let visible = list_rows(area.height);
    let offset = window(selected, cursor.offset, visible, offenders.len());
    let rows: Vec<Row> = offenders
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(i, o)| {
            Row::new(vec![
                Cell::from("!"),
                Cell::from(format!("{} · hop {}", sanitize(&o.agent), o.hop)),
                Cell::from(o.runs.to_string()),
                Cell::from(tokens(o.carried_tokens)),
                Cell::from(dollars(o.cost_per_run)),
                Cell::from(dollars(o.total_cost)),
                Cell::from(o.reason.replace('_', " ")),
            ])
            .style(if i == selected {
                cx.theme.selected
            } else {
                cx.theme.warning
            })
        })
        .collect();
    let title = if offenders.is_empty() {
        "Top bleeding hops — none".to_owned()
    } else {
        format!(
            "Top bleeding hops ({} hops in {} places) — Enter: their runs",
            cx.data.insights.bleeding_hops,
            offenders.len()
        )
    };
    let widths = [
        Constraint::Length(1),
        Constraint::Min(16),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(16),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block(title, cx)),
        area,
    );
}
