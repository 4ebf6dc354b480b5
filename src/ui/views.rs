//! Pure rendering: `render(frame, &ViewCx)` draws the current screen from
//! published data and view state. No I/O, no clock (`now_ms` is passed in),
//! and only the visible rows of a list are built.
//!
//! ```text
//! ┌ tokwatch  1 Overview  2 Runs  3 Agents  4 Segments  5 Models  6 Events  7 Budgets   FROZEN ┐
//! │ body: the screen (tables, waterfall, panels)                                             │
//! └ status: sources · last event · ingest health · messages · ? help ────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, Wrap};

use crate::config::keys::{Action, Keymap};
use crate::model::insights::{Insights, burn_per_minute};
use crate::model::ledger::{HopAgg, RecentKind, RunAgg};
use crate::model::{Counters, Usd};
use crate::sanitize::sanitize;

use super::budgets::{BudgetBoard, BudgetEditor, FIELDS, ScopeState, Stage};
use super::data::{Published, Rows, selected_position};
use super::format::{age, dollars, fit, percent, tokens};
use super::state::{ListKind, Scope, Screen, Tab, ViewState};
use super::theme::Theme;
use crate::control::client::Link;
use crate::model::budget::{self, Limits};

/// Everything a frame is drawn from.
pub struct ViewCx<'a> {
    pub data: &'a Published,
    pub view: &'a ViewState,
    pub theme: &'a Theme,
    pub keymap: &'a Keymap,
    /// Rows of the current list, computed when data or view changed.
    pub rows: &'a Rows,
    /// Wall clock, epoch ms (pinned in tests).
    pub now_ms: i64,
    /// Desired budgets and what runtimes applied.
    pub budgets: &'a BudgetBoard,
}

/// Draws one frame.
pub fn render(frame: &mut Frame, cx: &ViewCx) {
    let area = frame.area();
    let [tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    render_tabs(frame, tabs, cx);
    match cx.view.screen() {
        Screen::Tab(Tab::Overview) => render_overview(frame, body, cx),
        Screen::Tab(Tab::Runs) => render_runs(frame, body, cx, None),
        Screen::Runs(scope) => render_runs(frame, body, cx, Some(scope)),
        Screen::Run(run_id) => render_run(frame, body, cx, run_id),
        Screen::Tab(Tab::Agents) => render_agents(frame, body, cx),
        Screen::Tab(Tab::Segments) => render_keyed(frame, body, cx, ListKind::Segments),
        Screen::Tab(Tab::Models) => render_keyed(frame, body, cx, ListKind::Models),
        Screen::Tab(Tab::Events) => render_events(frame, body, cx),
        Screen::Tab(Tab::Budgets) => render_budgets(frame, body, cx),
    }
    render_status(frame, status, cx);
    if let Some(editor) = &cx.view.editor {
        render_editor(frame, body, cx, editor);
    }
    if cx.view.help {
        render_help(frame, body, cx);
    }
}

/// Rows a list body of `height` lines shows (borders and header excluded).
#[must_use]
pub fn list_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(3))
}

fn block<'a>(title: String, cx: &ViewCx) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(cx.theme.border)
        .title(Span::styled(format!(" {title} "), cx.theme.title))
}

fn render_tabs(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let current = cx.view.screen().tab(cx.view.root);
    let mut spans = vec![Span::styled(
        " tokwatch ",
        cx.theme.accent.add_modifier(Modifier::BOLD),
    )];
    // Fits 80 columns; wider terminals get more air.
    let pad = if area.width >= 100 { " " } else { "" };
    for (i, tab) in Tab::ALL.iter().enumerate() {
        let label = format!("{pad}{} {} ", i + 1, tab.title());
        let style = if *tab == current {
            cx.theme.selected
        } else {
            cx.theme.muted
        };
        spans.push(Span::styled(label, style));
    }
    if cx.view.frozen {
        spans.push(Span::styled(
            " FROZEN ",
            cx.theme.warning.add_modifier(Modifier::REVERSED),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn render_status(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let data = cx.data;
    let stats = &data.stats;
    let live = stats.live_totals();
    let mut parts = vec![format!(
        " {} sources{}",
        data.sources.len().max(stats.sources.len()),
        source_formats(stats)
    )];
    if data.reading_backlog {
        parts.push("reading backlog…".to_owned());
    }
    match data.last_event_ms {
        Some(ms) => parts.push(format!("last event {} ago", age(cx.now_ms - ms))),
        None => parts.push("no events yet".to_owned()),
    }
    // The rate is measured while lines arrive; quiet for 2 s means 0.
    let quiet = data.last_event_ms.is_none_or(|ms| cx.now_ms - ms > 2_000);
    parts.push(format!(
        "{:.0} lines/s",
        if quiet { 0.0 } else { data.lines_per_sec }
    ));
    if stats.malformed > 0 {
        parts.push(format!("{} malformed", stats.malformed));
    }
    if live.dropped > 0 {
        parts.push(format!("{} DROPPED", live.dropped));
    }
    if cx.view.filter_editing || !cx.view.filter.is_empty() {
        let cursor = if cx.view.filter_editing { "▏" } else { "" };
        parts.push(format!("filter: {}{cursor}", sanitize(&cx.view.filter)));
    }
    let mut spans = vec![Span::styled(parts.join(" · "), cx.theme.status)];
    if let Some(toast) = &cx.view.toast {
        let style = if toast.error {
            cx.theme.error
        } else {
            cx.theme.accent
        };
        spans.push(Span::styled(format!("  {}", sanitize(&toast.text)), style));
    }
    let help = format!("  {} help ", cx.keymap.describe(Action::Help));
    let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    let pad = usize::from(area.width).saturating_sub(used + help.chars().count());
    spans.push(Span::styled(" ".repeat(pad), cx.theme.status));
    spans.push(Span::styled(
        help,
        cx.theme.status.add_modifier(Modifier::BOLD),
    ));
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(cx.theme.status),
        area,
    );
}

/// The input formats sources were read in, by how many sources (each
/// counted under the format most of its lines had): ` (claude-code ×12,
/// native)`. Empty before any line.
fn source_formats(stats: &crate::ingest::IngestStats) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for index in 0..stats.sources.len() {
        if let Some(format) = stats.formats_of(index).first() {
            match counts.iter_mut().find(|(f, _)| f == format) {
                Some((_, n)) => *n += 1,
                None => counts.push((format, 1)),
            }
        }
    }
    if counts.is_empty() {
        return String::new();
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let listed: Vec<String> = counts
        .iter()
        .map(|(f, n)| {
            if *n > 1 {
                format!("{f} ×{n}")
            } else {
                (*f).to_owned()
            }
        })
        .collect();
    format!(" ({})", listed.join(", "))
}

// ------------------------------------------------------------------ Overview

fn kv<'a>(label: &'a str, value: String, style: Style, cx: &ViewCx) -> Vec<Span<'a>> {
    vec![
        Span::styled(format!("{label} "), cx.theme.muted),
        Span::styled(value, style),
        Span::raw("   "),
    ]
}

fn render_overview(frame: &mut Frame, area: Rect, cx: &ViewCx) {
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

fn unpriced_spans<'a>(cx: &ViewCx) -> Vec<Span<'a>> {
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

fn render_offenders(frame: &mut Frame, area: Rect, cx: &ViewCx) {
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

/// First visible row so that `selected` is in view.
fn window(selected: usize, offset: usize, visible: usize, len: usize) -> usize {
    let visible = visible.max(1);
    let mut offset = offset.min(selected).min(len.saturating_sub(1));
    if selected >= offset + visible {
        offset = selected + 1 - visible;
    }
    offset
}

// ------------------------------------------------------------------ lists

fn cost_cell(c: &Counters) -> String {
    if c.events > 0 && c.unpriced_events == c.events {
        "unpriced".to_owned()
    } else if c.unpriced_events > 0 {
        format!("{}+?", dollars(c.cost))
    } else {
        dollars(c.cost)
    }
}

/// The selected position and first visible row of the current list.
fn list_window(cx: &ViewCx, visible: usize) -> (Option<usize>, usize) {
    let screen = cx.view.screen();
    let cursor = cx.view.cursor();
    let selected = selected_position(cx.data, screen, cx.rows, cursor.selected.as_ref());
    let offset = selected.map_or(0, |s| window(s, cursor.offset, visible, cx.rows.len()));
    (selected, offset)
}

fn list_title(base: String, cx: &ViewCx, list: ListKind) -> String {
    let sort = cx.view.sort(list);
    let arrow = if sort.reversed { "↑" } else { "↓" };
    format!(
        "{base} · {} rows · sort {}{arrow}",
        cx.rows.len(),
        sort.key.label()
    )
}

fn render_runs(frame: &mut Frame, area: Rect, cx: &ViewCx, scope: Option<&Scope>) {
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

/// The hop-by-hop waterfall of one run: input split into uncached (█),
/// cache read (▒), cache write (░), and output (▓), to scale.
fn render_run(frame: &mut Frame, area: Rect, cx: &ViewCx, run_id: &str) {
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

fn waterfall<'a>(hop: &HopAgg, max: u64, width: usize, cx: &ViewCx) -> Line<'a> {
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

fn render_agents(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let [list, detail] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Min(6)]).areas(area);
    render_keyed(frame, list, cx, ListKind::Agents);
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

fn render_keyed(frame: &mut Frame, area: Rect, cx: &ViewCx, list: ListKind) {
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

fn render_events(frame: &mut Frame, area: Rect, cx: &ViewCx) {
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

/// Every scope: its limits, its state at each runtime, and usage against it.
fn render_budgets(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let board = cx.budgets;
    let snap = &cx.data.snapshot;
    let [table_area, notes] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(6)]).areas(area);
    let runtimes: Vec<&String> = board.runtimes.keys().collect();
    let rows: Vec<Row> = board
        .scopes()
        .iter()
        .map(|scope| {
            let limits = board
                .desired
                .budgets
                .get(scope)
                .map(|b| b.limits.clone())
                .unwrap_or_default();
            let usage = board
                .usage
                .get(scope)
                .cloned()
                .unwrap_or_else(|| budget::usage(snap, scope, &limits));
            let states: Vec<String> = runtimes
                .iter()
                .map(|addr| match board.state(addr, scope) {
                    ScopeState::Applied(v) => format!("applied v{v}"),
                    ScopeState::Pending { version, since_ms } => match since_ms {
                        Some(ms) => format!("pending v{version} ({} ago)", age(cx.now_ms - ms)),
                        None => format!("pending v{version}"),
                    },
                    ScopeState::Rejected { version, reason } => {
                        format!("rejected v{version}: {}", sanitize(&reason))
                    }
                    ScopeState::NotSet => "-".to_owned(),
                })
                .collect();
            let over = usage.hops_over > 0 || usage.runs_over > 0;
            let hop_usage = match limits.per_hop_limit {
                Some(limit) => format!("{} / {}", tokens(usage.largest_hop), tokens(limit)),
                None => tokens(usage.largest_hop),
            };
            let run_usage = match limits.total_run_limit {
                Some(limit) => format!("{} / {}", tokens(usage.worst_run_tokens), tokens(limit)),
                None => tokens(usage.worst_run_tokens),
            };
            let style = if states.iter().any(|s| s.starts_with("rejected")) {
                cx.theme.error
            } else if over {
                cx.theme.budget_over
            } else if states.iter().any(|s| s.starts_with("pending")) {
                cx.theme.budget_warn
            } else {
                cx.theme.budget_ok
            };
            Row::new(vec![
                Cell::from(if over { "!" } else { "" }),
                Cell::from(sanitize(&scope.to_string()).into_owned()),
                Cell::from(limits.describe()),
                Cell::from(if states.is_empty() {
                    "no runtime".to_owned()
                } else {
                    states.join(" · ")
                }),
                Cell::from(hop_usage),
                Cell::from(run_usage),
                Cell::from(format!(
                    "{} hops, {} runs",
                    usage.hops_over, usage.runs_over
                )),
            ])
            .style(style)
        })
        .collect();
    let header = Row::new([
        "",
        "scope",
        "limits",
        "state",
        "largest hop",
        "worst run",
        "would breach",
    ])
    .style(cx.theme.header);
    let widths = [
        Constraint::Length(1),
        Constraint::Length(18),
        Constraint::Min(24),
        Constraint::Min(18),
        Constraint::Length(15),
        Constraint::Length(17),
        Constraint::Length(18),
    ];
    let edit_key = cx.keymap.describe(Action::EditBudget);
    let title = if board.readonly {
        "Budgets (read-only)".to_owned()
    } else {
        format!(
            "Budgets · {edit_key}: edit global (or the selected agent/segment/run on their screens)"
        )
    };
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block(title, cx))
            .column_spacing(1),
        table_area,
    );

    let mut lines: Vec<Line> = Vec::new();
    for (addr, runtime) in &board.runtimes {
        let link = match &runtime.link {
            Link::Connecting => Span::styled("connecting…", cx.theme.muted),
            Link::Connected {
                runtime,
                runtime_id,
            } => Span::styled(
                format!(
                    "connected to {} ({})",
                    sanitize(runtime),
                    sanitize(runtime_id)
                ),
                cx.theme.good,
            ),
            Link::Down { error, retry_in } => Span::styled(
                format!(
                    "down: {} — retrying in {:.0}s",
                    sanitize(error),
                    retry_in.as_secs_f64()
                ),
                cx.theme.error,
            ),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{} ", sanitize(addr)), cx.theme.accent),
            link,
        ]));
    }
    if board.runtimes.is_empty() {
        lines.push(Line::from(Span::styled(
            "no runtime: start with --control ADDR to push budgets (changes are saved either way)",
            cx.theme.muted,
        )));
    }
    lines.push(Line::from(Span::styled(
        format!(
            "budget breaches in telemetry: {} · latest notifications: {}",
            snap.budget_events,
            board.exceeded.len()
        ),
        cx.theme.text,
    )));
    for (addr, e) in board.exceeded.iter().rev().take(2) {
        lines.push(Line::from(Span::styled(
            format!(
                "{} run {} hop {} ({}): {} limit {} at {} tokens → {}",
                sanitize(addr),
                sanitize(&e.run_id),
                e.hop.map_or_else(|| "-".into(), |h| h.to_string()),
                sanitize(e.agent.as_deref().unwrap_or("?")),
                sanitize(&e.limit_kind),
                e.limit.map_or_else(|| "-".into(), tokens),
                e.tokens.map_or_else(|| "-".into(), tokens),
                sanitize(&e.action)
            ),
            cx.theme.budget_over,
        )));
    }
    frame.render_widget(
        Paragraph::new(lines).block(block("Runtimes".into(), cx)),
        notes,
    );
}

/// A popup at most `width` wide, tall enough for `lines` lines plus borders,
/// centred in `area`.
fn centered(area: Rect, width: u16, lines: usize) -> Rect {
    let width = area.width.min(width);
    let height = area
        .height
        .min(u16::try_from(lines + 2).unwrap_or(u16::MAX));
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// The budget editor: fields, then the diff and what it would have breached.
fn render_editor(frame: &mut Frame, area: Rect, cx: &ViewCx, editor: &BudgetEditor) {
    let mut lines = vec![
        Line::from(Span::styled(
            format!("Budget for {}", sanitize(&editor.scope.to_string())),
            cx.theme.title,
        )),
        Line::from(""),
    ];
    let actions = [editor.hop_action.as_str(), editor.run_action.as_str()];
    for (i, label) in FIELDS.iter().enumerate() {
        let value = if i < 3 {
            let v = &editor.values[i];
            if v.is_empty() {
                "—".to_owned()
            } else {
                v.clone()
            }
        } else {
            format!("‹ {} ›", actions[i - 3])
        };
        let style = if i == editor.focus && editor.stage == Stage::Editing {
            cx.theme.selected
        } else {
            cx.theme.text
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{label:>30}  "), cx.theme.muted),
            Span::styled(value, style),
        ]));
    }
    lines.push(Line::from(""));
    match (&editor.stage, editor.limits()) {
        (Stage::Review { strict }, Ok(after)) => {
            let before = editor.before.as_ref().map_or_else(|| "no budget".to_owned(), Limits::describe);
            lines.push(Line::from(vec![Span::styled("before  ", cx.theme.muted), Span::styled(before, cx.theme.text)]));
            lines.push(Line::from(vec![Span::styled("after   ", cx.theme.muted), Span::styled(after.describe(), cx.theme.accent)]));
            let usage = budget::usage(&cx.data.snapshot, &editor.scope, &after);
            let impact = format!(
                "would have breached {} of {} hops and {} of {} runs seen (largest hop {}, worst run {})",
                usage.hops_over,
                usage.hops,
                usage.runs_over,
                usage.runs,
                tokens(usage.largest_hop),
                tokens(usage.worst_run_tokens)
            );
            lines.push(Line::from(Span::styled(impact, if *strict { cx.theme.budget_over } else { cx.theme.text })));
            let prompt = if *strict {
                "BELOW CURRENT USAGE — press Y (shift+y) to push anyway, any other key to edit, Esc to cancel"
            } else {
                "press y or Enter to push, any other key to edit, Esc to cancel"
            };
            lines.push(Line::from(Span::styled(prompt, if *strict { cx.theme.warning } else { cx.theme.accent })));
        }
        _ => lines.push(Line::from(Span::styled(
            "type digits · +/- step · ←/→ action · ↑/↓ field · Enter review · Esc cancel (empty = not set here)",
            cx.theme.muted,
        ))),
    }
    if let Some(error) = &editor.error {
        lines.push(Line::from(Span::styled(
            sanitize(error).into_owned(),
            cx.theme.error,
        )));
    }
    let popup = centered(area, 96, lines.len());
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block("Edit budget".into(), cx).border_style(cx.theme.border_focused)),
        popup,
    );
}

fn render_help(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let entries: [(Action, &str); 19] = [
        (Action::Help, "this help"),
        (Action::Quit, "quit"),
        (Action::NextScreen, "next screen (1–7: jump)"),
        (Action::PrevScreen, "previous screen"),
        (Action::Up, "up"),
        (Action::Down, "down"),
        (Action::PageUp, "page up"),
        (Action::PageDown, "page down"),
        (Action::Top, "first row"),
        (Action::Bottom, "last row"),
        (Action::DrillDown, "drill down (runs → hops)"),
        (Action::Back, "back / clear filter"),
        (Action::Filter, "filter (Esc clears)"),
        (Action::NextSort, "next sort column"),
        (Action::ReverseSort, "reverse sort"),
        (Action::Freeze, "freeze the view (ingest continues)"),
        (Action::NextTheme, "next theme"),
        (Action::EditBudget, "edit the budget of the selection"),
        (
            Action::ScreenOverview,
            "overview (2 runs, 3 agents, 4 segments, 5 models, 6 events, 7 budgets)",
        ),
    ];
    let mut lines: Vec<Line> = entries
        .iter()
        .map(|(action, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{:>16}  ", cx.keymap.describe(*action)),
                    cx.theme.accent,
                ),
                Span::styled(*what, cx.theme.text),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "! marks a bleeding hop (docs/insights.md) · mouse wheel scrolls",
        cx.theme.muted,
    )));
    let popup = centered(area, 84, lines.len());
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(block("Keys".into(), cx).border_style(cx.theme.border_focused)),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use crate::ingest::IngestStats;

    #[test]
    fn the_status_bar_names_the_formats_sources_were_read_in() {
        let mut stats = IngestStats::default();
        assert_eq!(super::source_formats(&stats), "");
        for (name, formats) in [
            ("a", &[("claude-code", 90), ("native", 1)][..]),
            ("b", &[("claude-code", 5)][..]),
            ("c", &[("native", 3)][..]),
            ("d", &[][..]),
        ] {
            let index = stats.add_source(name.into(), name.into());
            for (format, lines) in formats {
                stats.sources[index].formats.insert(format, *lines);
            }
        }
        assert_eq!(super::source_formats(&stats), " (claude-code ×2, native)");
    }
}
