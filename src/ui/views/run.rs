//! One run: input per hop as a chart against the per-hop limit, its
//! hop-by-hop waterfall, and the detail of one hop.

use std::collections::BTreeMap;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Wrap};

use crate::model::Usd;
use crate::model::budget::{self, Limits, Scope};
use crate::model::insights::{BleedReason, carried_tokens};
use crate::model::ledger::{HopAgg, RunAgg};
use crate::pricing::PriceBook;
use crate::sanitize::sanitize;
use crate::types::usage::Usage;
use unicode_width::UnicodeWidthStr;

use super::events::breach_parts;
use super::table::{Column, DataTable, TableCell};
use super::widgets::{block, cost_cell, kv, list_title, list_window, pack, run_status, times};
use super::{ViewCx, list_rows};
use crate::ui::format::{dollars, tokens};
use crate::ui::state::{ListKind, SortKey};

/// Where a hop's per-hop limit comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LimitSource {
    /// This dashboard's desired budgets (the scope that sets it).
    Desired(Scope),
    /// What the runtime reported enforcing (`budget_exceeded`, per_hop).
    Enforced,
}

/// The per-hop input limit in force for each hop of `run`: the desired
/// budgets (agent over segment over global, `model::budget::effective`),
/// else the limit the runtime reported when it enforced one on this run.
pub(super) fn hop_limits(
    run: &RunAgg,
    desired: &BTreeMap<Scope, Limits>,
) -> Vec<Option<(u64, LimitSource)>> {
    let enforced = run
        .budget_hits
        .iter()
        .filter(|h| h.limit_kind.as_deref() == Some("per_hop"))
        .find_map(|h| h.limit);
    let segment = run.segment.as_deref();
    run.hops
        .iter()
        .map(|hop| {
            let limit = budget::effective(desired, Some(&hop.agent), segment).per_hop_limit;
            match limit {
                Some(limit) => {
                    // the most specific scope that sets it
                    let scope = [
                        Scope::Agent(hop.agent.to_string()),
                        Scope::Segment(segment.unwrap_or_default().to_owned()),
                        Scope::Global,
                    ]
                    .into_iter()
                    .find(|s| {
                        desired
                            .get(s)
                            .is_some_and(|l| l.per_hop_limit == Some(limit))
                    })
                    .unwrap_or(Scope::Global);
                    Some((limit, LimitSource::Desired(scope)))
                }
                None => enforced.map(|l| (l, LimitSource::Enforced)),
            }
        })
        .collect()
}

/// What trimming `usage` to `limit` input tokens would have saved: the
/// tokens, and the exact dollars at list prices (uncached input goes first,
/// then cache writes, then cache reads). `None` dollars: unpriced model.
pub(super) fn trim_saving(
    model: &str,
    usage: &Usage,
    limit: u64,
    prices: Option<&PriceBook>,
) -> (u64, Option<Usd>) {
    let over = usage.input_total().saturating_sub(limit);
    if over == 0 {
        return (0, Some(Usd::ZERO));
    }
    let mut trimmed = *usage;
    let mut left = over;
    for bucket in [
        &mut trimmed.input_uncached,
        &mut trimmed.cache_write_5m,
        &mut trimmed.cache_write_1h,
        &mut trimmed.cache_read,
    ] {
        let take = left.min(*bucket);
        *bucket -= take;
        left -= take;
    }
    let dollars = prices.and_then(|p| {
        let before = p.price(model, usage)?;
        let after = p.price(model, &trimmed)?;
        Some(before.cost - after.cost)
    });
    (over, dollars)
}

fn desired_limits(cx: &ViewCx) -> BTreeMap<Scope, Limits> {
    cx.budgets
        .desired
        .budgets
        .iter()
        .map(|(scope, b)| (scope.clone(), b.limits.clone()))
        .collect()
}

fn find_run<'a>(cx: &'a ViewCx, run_id: &str) -> Option<(usize, &'a RunAgg)> {
    cx.data
        .snapshot
        .runs
        .iter()
        .enumerate()
        .find(|(_, r)| &*r.run_id == run_id)
        .map(|(i, r)| (i, &**r))
}

fn gone(frame: &mut Frame, area: Rect, cx: &ViewCx, run_id: &str) {
    let text = Paragraph::new(format!(
        "run {} is gone (filtered out or not ingested)",
        sanitize(run_id)
    ))
    .block(block("Run".into(), cx));
    frame.render_widget(text, area);
}

/// The hop-by-hop waterfall of one run: input split into uncached (█),
/// cache read (▒), cache write (░), and output (▓), to scale.
pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx, run_id: &str) {
    let Some((run_index, run)) = find_run(cx, run_id) else {
        gone(frame, area, cx, run_id);
        return;
    };
    let bleeding = cx.data.insights.bleeding.get(run_index);
    let summary = vec![
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
        kv("×first hop", times(run.multiplier()), cx.theme.text, cx),
        kv("growth", times(run.context_growth()), cx.theme.text, cx),
        kv(
            "segment",
            sanitize(run.segment.as_deref().unwrap_or("-")).into_owned(),
            cx.theme.text,
            cx,
        ),
        kv("status", run_status(run, cx.now_ms), cx.theme.text, cx),
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
    ];
    let summary = pack(summary, area.width.saturating_sub(2));
    let head_height = u16::try_from(summary.len()).unwrap_or(1).saturating_add(2);
    // the chart when there is room for it and for a few hops below
    let chart_height = match area.height.saturating_sub(head_height) {
        0..16 => 0,
        16..28 => 7,
        rest => (rest / 3).min(16),
    };
    let [head, chart, table] = Layout::vertical([
        Constraint::Length(head_height),
        Constraint::Length(chart_height),
        Constraint::Min(3),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(summary).block(block(format!("Run {}", sanitize(run_id)), cx)),
        head,
    );
    let limits = hop_limits(run, &desired_limits(cx));
    if chart_height > 0 {
        render_chart(frame, chart, cx, run, &limits);
    }

    let visible = list_rows(table.height);
    let (selected, offset) = list_window(cx, visible);
    let max = run
        .hops
        .iter()
        .map(|h| h.usage.total())
        .max()
        .unwrap_or(1)
        .max(1);
    let mut hops = DataTable::new(vec![
        Column::text("", 1, 2, 2),
        Column::number("hop", 0).sorts(SortKey::Position),
        Column::text("agent", 2, 6, 20),
        Column::text("model", 4, 8, 30),
        Column::bar("input + output", 6, 8, 60),
        Column::number("in", 0).sorts(SortKey::Input),
        Column::number("out", 3),
        Column::number("reas.", 5),
        Column::number("Δ in", 3),
        Column::number("cost", 0).sorts(SortKey::Cost),
        Column::text("bleeding", 2, 7, 20),
    ])
    .sorted(cx.view.sort(ListKind::Hops), ListKind::Hops)
    .header_style(cx.theme.header);
    for (position, &i) in cx
        .rows
        .indexes
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
    {
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
        let u = &hop.usage;
        hops.row(
            vec![
                TableCell::text(marker),
                TableCell::number(hop.hop.to_string()),
                TableCell::text(sanitize(&hop.agent)),
                TableCell::text(sanitize(&hop.model)),
                TableCell::bar(
                    vec![
                        (u.input_uncached, '█', cx.theme.chart),
                        (u.cache_read, '▒', cx.theme.good),
                        (u.cache_write(), '░', cx.theme.accent),
                        (u.output, '▓', cx.theme.chart_alt),
                    ],
                    max,
                ),
                TableCell::number(tokens(u.input_total())),
                TableCell::number(tokens(u.output)),
                TableCell::number(tokens(u.reasoning)),
                TableCell::number(growth.unwrap_or_default()),
                TableCell::number(
                    hop.complete_cost()
                        .map_or_else(|| "unpriced".to_owned(), dollars),
                ),
                TableCell::text(reason.map_or_else(String::new, |r| r.code().replace('_', " "))),
            ],
            row_style,
        );
    }
    let title = list_title("Hops".into(), cx, ListKind::Hops) + " · Enter: hop detail";
    let legend = Line::from(vec![
        Span::styled(" █ uncached ", cx.theme.chart),
        Span::styled("▒ cache read ", cx.theme.good),
        Span::styled("░ cache write ", cx.theme.accent),
        Span::styled("▓ output ", cx.theme.chart_alt),
    ]);
    hops.render(frame, table, block(title, cx).title_bottom(legend));
}

/// Input tokens per hop as a line, the per-hop limit as a second one.
fn render_chart(
    frame: &mut Frame,
    area: Rect,
    cx: &ViewCx,
    run: &RunAgg,
    limits: &[Option<(u64, LimitSource)>],
) {
    #[allow(clippy::cast_precision_loss)]
    let input: Vec<(f64, f64)> = run
        .hops
        .iter()
        .map(|h| (f64::from(h.hop), h.usage.input_total() as f64))
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let limit: Vec<(f64, f64)> = run
        .hops
        .iter()
        .zip(limits)
        .filter_map(|(h, l)| l.as_ref().map(|(l, _)| (f64::from(h.hop), *l as f64)))
        .collect();
    let top = run
        .hops
        .iter()
        .map(|h| h.usage.input_total())
        .chain(limits.iter().flatten().map(|(l, _)| *l))
        .max()
        .unwrap_or(0)
        .max(1);
    let (first, last) = (
        run.hops.first().map_or(0, |h| h.hop),
        run.hops.last().map_or(1, |h| h.hop),
    );
    let mut datasets = vec![
        Dataset::default()
            .name("input tokens")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(cx.theme.chart)
            .data(&input),
    ];
    // the limit is named in the title (a legend would hide the lines)
    let values: Vec<u64> = limits.iter().flatten().map(|(l, _)| *l).collect();
    let source = match limits.iter().flatten().next() {
        Some((_, LimitSource::Enforced)) => " (reported by the runtime)",
        _ => "",
    };
    if !limit.is_empty() {
        datasets.push(
            Dataset::default()
                .name("per-hop limit")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(cx.theme.budget_over)
                .data(&limit),
        );
    }
    let title = match (values.iter().min(), values.iter().max()) {
        (Some(low), Some(high)) if low == high => format!(
            "Input tokens per hop · per-hop limit {}{source}",
            tokens(*low)
        ),
        (Some(low), Some(high)) => format!(
            "Input tokens per hop · per-hop limits {}–{}{source}",
            tokens(*low),
            tokens(*high)
        ),
        _ => "Input tokens per hop · no per-hop limit set".to_owned(),
    };
    #[allow(clippy::cast_precision_loss)]
    let chart = Chart::new(datasets)
        .hidden_legend_constraints((Constraint::Length(0), Constraint::Length(0)))
        .block(block(title, cx))
        .x_axis(
            Axis::default()
                .style(cx.theme.muted)
                .bounds([f64::from(first), f64::from(last.max(first + 1))])
                .labels([format!("hop {first}"), format!("hop {last}")]),
        )
        .y_axis(
            Axis::default()
                .style(cx.theme.muted)
                .bounds([0.0, top as f64 * 1.05])
                .labels(["0".to_owned(), tokens(top)]),
        );
    frame.render_widget(chart, area);
}

/// One hop: what it sent and cost, why it bleeds (in full), how much of its
/// input was carried from earlier hops, what the per-hop limit would have
/// saved, and the budget events the runtime reported for it.
pub(super) fn render_hop(frame: &mut Frame, area: Rect, cx: &ViewCx, run_id: &str, hop: u32) {
    let Some((run_index, run)) = find_run(cx, run_id) else {
        gone(frame, area, cx, run_id);
        return;
    };
    let Some(index) = run.hops.iter().position(|h| h.hop == hop) else {
        gone(frame, area, cx, run_id);
        return;
    };
    let h = &run.hops[index];
    let u = &h.usage;
    let reason: Option<&BleedReason> = cx
        .data
        .insights
        .bleeding
        .get(run_index)
        .and_then(|b| b.iter().find(|(i, _)| *i == index))
        .map(|(_, r)| r);
    let label = |text: &str| Span::styled(format!("{text:<16}"), cx.theme.muted);
    let mut lines: Vec<Line> = Vec::new();
    lines.push(Line::from(vec![
        label("agent · model"),
        Span::styled(
            format!("{} · {}", sanitize(&h.agent), sanitize(&h.model)),
            cx.theme.text,
        ),
    ]));
    lines.push(Line::from(vec![
        label("input"),
        Span::styled(
            format!(
                "{} (uncached {} · cache read {} · cache write {})",
                tokens(u.input_total()),
                tokens(u.input_uncached),
                tokens(u.cache_read),
                tokens(u.cache_write())
            ),
            cx.theme.text,
        ),
    ]));
    lines.push(Line::from(vec![
        label("output"),
        Span::styled(
            format!(
                "{} (reasoning {}) · {} call{}",
                tokens(u.output),
                tokens(u.reasoning),
                h.calls,
                if h.calls == 1 { "" } else { "s" }
            ),
            cx.theme.text,
        ),
    ]));
    lines.push(Line::from(vec![
        label("cost"),
        Span::styled(
            h.complete_cost()
                .map_or_else(|| "unpriced".to_owned(), dollars),
            cx.theme.cost.add_modifier(Modifier::BOLD),
        ),
    ]));
    let carried = match reason {
        Some(BleedReason::HistoryResent { carried, .. }) => *carried,
        _ => carried_tokens(&run.hops, index, &cx.data.insights.rules),
    };
    lines.push(Line::from(vec![
        label("carried"),
        Span::styled(
            if index == 0 {
                "first hop: nothing carried".to_owned()
            } else {
                format!(
                    "{} tokens from earlier hops (the previous hop's input sent again)",
                    tokens(carried)
                )
            },
            cx.theme.text,
        ),
    ]));
    lines.push(Line::from(vec![
        label("bleeding"),
        match reason {
            Some(r) => Span::styled(r.to_string(), cx.theme.warning),
            None => Span::styled("no", cx.theme.good),
        },
    ]));
    let limits = hop_limits(run, &desired_limits(cx));
    let saving = match limits.get(index).cloned().flatten() {
        None => Span::styled(
            "no per-hop limit set (b: edit the budget)".to_owned(),
            cx.theme.muted,
        ),
        Some((limit, source)) => {
            let source = match source {
                LimitSource::Desired(scope) => format!("desired, {}", sanitize(&scope.to_string())),
                LimitSource::Enforced => "reported by the runtime".to_owned(),
            };
            let (saved, dollars_saved) = trim_saving(&h.model, u, limit, cx.data.prices.as_deref());
            if saved == 0 {
                Span::styled(
                    format!("{} ({source}): within the limit", tokens(limit)),
                    cx.theme.good,
                )
            } else {
                Span::styled(
                    format!(
                        "{} ({source}): would have trimmed {} tokens, saving {}",
                        tokens(limit),
                        tokens(saved),
                        dollars_saved.map_or_else(
                            || "an unpriced amount".to_owned(),
                            |d| format!("{} at list prices", dollars(d))
                        )
                    ),
                    cx.theme.budget_over,
                )
            }
        }
    };
    lines.push(Line::from(vec![label("per-hop limit"), saving]));
    let events: Vec<String> = run
        .budget_hits
        .iter()
        .filter(|b| b.hop == Some(hop))
        .map(|b| breach_parts(b).join(" · "))
        .collect();
    if events.is_empty() {
        lines.push(Line::from(vec![
            label("budget events"),
            Span::styled("none", cx.theme.muted),
        ]));
    } else {
        for (i, event) in events.into_iter().enumerate() {
            lines.push(Line::from(vec![
                label(if i == 0 { "budget events" } else { "" }),
                Span::styled(event, cx.theme.budget_over),
            ]));
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "j/k: previous / next hop · Esc: back to the run",
        cx.theme.muted,
    )));
    let lines = hang(lines, area.width.saturating_sub(2));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(format!("Run {} · hop {hop}", sanitize(run_id)), cx)),
        area,
    );
}

/// Wraps the value of `label  value` lines under the value (a hanging
/// indent of the label's width), at word boundaries.
fn hang(lines: Vec<Line<'_>>, width: u16) -> Vec<Line<'_>> {
    const INDENT: usize = 16;
    let room = usize::from(width).saturating_sub(INDENT);
    let mut out = Vec::new();
    for line in lines {
        let [label, value] = line.spans.as_slice() else {
            out.push(line);
            continue;
        };
        if room < 12 || label.width() != INDENT || INDENT + value.width() <= usize::from(width) {
            out.push(line);
            continue;
        }
        let mut rows: Vec<String> = vec![String::new()];
        for word in value.content.split(' ') {
            let last = rows.last_mut().map_or(0, |r| r.width());
            if last > 0 && last + 1 + word.width() > room {
                rows.push(String::new());
            }
            if let Some(row) = rows.last_mut() {
                if !row.is_empty() {
                    row.push(' ');
                }
                row.push_str(word);
            }
        }
        for (i, row) in rows.into_iter().enumerate() {
            let head = if i == 0 {
                label.clone()
            } else {
                Span::raw(" ".repeat(INDENT))
            };
            out.push(Line::from(vec![head, Span::styled(row, value.style)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::Counters;
    use crate::model::ledger::BudgetHit;

    #[test]
    fn a_trim_saves_the_tokens_over_the_limit_at_their_exact_price() {
        let prices = PriceBook::embedded();
        let usage = Usage {
            input_uncached: 40_000,
            cache_read: 5_600,
            output: 2_900,
            ..Usage::default()
        };
        let (saved, dollars) = trim_saving("gpt-4.1", &usage, 9_000, Some(&prices));
        assert_eq!(saved, 36_600);
        // gpt-4.1: $2 per million uncached input tokens; taken from uncached first
        assert_eq!(dollars, Some(Usd::from_picos(36_600 * 2_000_000)));
        assert_eq!(
            trim_saving("gpt-4.1", &usage, 50_000, Some(&prices)),
            (0, Some(Usd::ZERO))
        );
        assert_eq!(
            trim_saving("mystery-9", &usage, 9_000, Some(&prices)),
            (36_600, None)
        );
    }

    #[test]
    fn the_per_hop_limit_follows_precedence_then_what_the_runtime_enforced() {
        let mut run = RunAgg {
            run_id: Arc::from("r"),
            hops: Vec::new(),
            counters: Counters::default(),
            segment: Some(Arc::from("pro")),
            user: None,
            first_ts_ms: None,
            last_ts_ms: None,
            ended: None,
            budget_hits: Vec::new(),
        };
        let mut desired = BTreeMap::new();
        assert!(hop_limits(&run, &desired).is_empty());
        // hops are built through a ledger: one per agent
        let mut ledger =
            crate::model::Ledger::new(PriceBook::embedded(), crate::model::LedgerConfig::default());
        for (n, agent) in [(1, "planner"), (2, "writer")] {
            let event = crate::types::TelemetryEvent {
                kind: crate::types::EventKind::Hop,
                ts_ms: Some(0),
                run_id: "r".into(),
                hop: Some(n),
                agent: agent.into(),
                parent_agent: None,
                user: None,
                segment: Some("pro".into()),
                task: None,
                tool: None,
                provider: None,
                model: "gpt-4.1".into(),
                usage: Usage {
                    input_uncached: 100,
                    ..Usage::default()
                },
                reported_cost: None,
                latency_ms: None,
                status: None,
                estimated: false,
                format: crate::types::Format::Native,
                call: None,
            };
            ledger.apply(&event);
        }
        run.hops = ledger.snapshot().runs[0].hops.clone();
        assert_eq!(hop_limits(&run, &desired), vec![None, None]);
        run.budget_hits.push(BudgetHit {
            limit_kind: Some("per_hop".into()),
            limit: Some(7_000),
            observed: Some(9_000),
            action: Some("trim".into()),
            hop: Some(2),
        });
        assert_eq!(
            hop_limits(&run, &desired),
            vec![Some((7_000, LimitSource::Enforced)); 2]
        );
        let limit = |n: u64| Limits {
            per_hop_limit: Some(n),
            ..Limits::default()
        };
        desired.insert(Scope::Global, limit(9_000));
        desired.insert(Scope::Segment("pro".into()), limit(8_000));
        desired.insert(Scope::Agent("writer".into()), limit(5_000));
        assert_eq!(
            hop_limits(&run, &desired),
            vec![
                Some((8_000, LimitSource::Desired(Scope::Segment("pro".into())))),
                Some((5_000, LimitSource::Desired(Scope::Agent("writer".into())))),
            ]
        );
    }
}
