//! The Overview: key figures, burn over time, cost per run (recent windows
//! and distribution), top bleeding hops, spend by agent, segment and model.
//!
//! ```text
//! wide (≥ 120 columns): two columns
//! ┌ Overview ─────────────────────┐┌ Top bleeding hops ─────────────┐
//! │ spend, burn/min, cost per run ││ agent · hop  runs … $/run  why  │
//! │ (windows, since the change) … │└────────────────────────────────┘
//! └───────────────────────────────┘┌ Spend by agent ┐┌ … by segment ┐
//! ┌ Burn $/min ───────────────────┐│ ████▌  $1.23    ││ ██  $0.40     │
//! │ ▄█▄ ▄▄ ┊ (budget change)      │└────────────────┘└──────────────┘
//! └───────────────────────────────┘┌ Model mix ─────────────────────┐
//! ┌ Cost per run (log scale) ─────┐│ ██████  $3.10 · 1.2M tok       │
//! │ ▆█▂      ▂▇█▃                 │└────────────────────────────────┘
//! └───────────────────────────────┘
//! narrow: the same panels stacked by priority (figures, bleeding hops,
//! burn, cost per run, spend by agent, by segment, model mix); a panel
//! that does not fit is left out whole, values are never cut.
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::model::Usd;
use crate::model::insights::{
    BurnRate, CostWindow, Insights, RECENT_RUNS, RECENT_SPEND_MS, RECENT_WINDOW_MS, burn_rate,
    burn_series, cost_histogram, recent_run_cost,
};
use crate::sanitize::sanitize;

use super::charts::{BarRow, Markers, TimeBars, figure, flow, hbars, histogram, time_bars};
use super::table::{Column, DataTable, TableCell};
use super::widgets::{block, cost_cell, title_for, window};
use super::{ViewCx, list_rows};
use crate::ui::format::{dollars, fit, percent, tokens};

/// Panels of the Overview, in priority order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Panel {
    Figures,
    Offenders,
    Burn,
    Histogram,
    /// Spend by agent and by segment side by side.
    Spend,
    Agents,
    Segments,
    Models,
}

/// Minimum and wanted heights of a panel; `flex` panels take what is left.
struct Size {
    min: u16,
    want: u16,
    flex: bool,
}

pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let spend = |width: u16| -> &'static [Panel] {
        if width >= 90 {
            &[Panel::Spend]
        } else {
            &[Panel::Agents, Panel::Segments]
        }
    };
    if area.width >= 120 && area.height >= 20 {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(area);
        // the histogram goes where there is room: right when the right
        // column's panels leave enough, else under the burn chart, else
        // right before the panels of lower priority
        let mut right_panels = vec![Panel::Offenders];
        right_panels.extend(spend(right.width));
        right_panels.push(Panel::Models);
        let right_wants: u16 = right_panels
            .iter()
            .map(|p| size(*p, right.width, cx).want)
            .sum();
        let hist_min = size(Panel::Histogram, right.width, cx).min;
        let mut left_panels = vec![Panel::Figures, Panel::Burn];
        if right_wants + hist_min <= right.height {
            right_panels.insert(1, Panel::Histogram);
        } else {
            left_panels.push(Panel::Histogram);
            if allocate(&left_panels, left, cx)[2] == 0 {
                left_panels.pop();
                right_panels.insert(1, Panel::Histogram);
            }
        }
        let left_heights = allocate(&left_panels, left, cx);
        let right_heights = allocate(&right_panels, right, cx);
        draw(frame, left, &left_panels, &left_heights, cx);
        draw(frame, right, &right_panels, &right_heights, cx);
    } else {
        let panels: Vec<Panel> = [
            Panel::Figures,
            Panel::Offenders,
            Panel::Burn,
            Panel::Histogram,
        ]
        .into_iter()
        .chain(spend(area.width).iter().copied())
        .chain(std::iter::once(Panel::Models))
        .collect();
        let heights = allocate(&panels, area, cx);
        draw(frame, area, &panels, &heights, cx);
    }
}

fn rows_height(rows: usize, cap: usize) -> u16 {
    u16::try_from(rows.min(cap)).unwrap_or(u16::MAX)
}

fn size(panel: Panel, width: u16, cx: &ViewCx) -> Size {
    let snap = &cx.data.snapshot;
    match panel {
        Panel::Figures => {
            let h = rows_height(figure_lines(cx, width.saturating_sub(2)).len(), 100) + 2;
            Size {
                min: h,
                want: h,
                flex: false,
            }
        }
        Panel::Offenders => {
            let n = cx.data.insights.offenders.len();
            Size {
                min: rows_height(n, 3).max(1) + 3,
                want: rows_height(n, 10).max(1) + 3,
                flex: false,
            }
        }
        Panel::Burn => Size {
            min: 7,
            want: 12,
            flex: true,
        },
        Panel::Histogram => Size {
            min: 7,
            want: 12,
            flex: true,
        },
        Panel::Spend => Size {
            min: rows_height(snap.by_agent.len().max(snap.by_segment.len()), 3).max(1) + 2,
            want: rows_height(snap.by_agent.len().max(snap.by_segment.len()), 10).max(1) + 2,
            flex: false,
        },
        Panel::Agents => Size {
            min: rows_height(snap.by_agent.len(), 3).max(1) + 2,
            want: rows_height(snap.by_agent.len(), 8).max(1) + 2,
            flex: false,
        },
        Panel::Segments => Size {
            min: rows_height(snap.by_segment.len(), 3).max(1) + 2,
            want: rows_height(snap.by_segment.len(), 8).max(1) + 2,
            flex: false,
        },
        Panel::Models => Size {
            min: rows_height(snap.by_model.len(), 3).max(1) + 2,
            want: rows_height(snap.by_model.len(), 8).max(1) + 2,
            flex: false,
        },
    }
}

/// Heights of `panels` (highest priority first) stacked in `area`: each
/// gets what it wants (flexible ones their minimum), else its minimum, else
/// nothing — a panel that does not fit is left out whole; flexible panels
/// then share the rest.
fn allocate(panels: &[Panel], area: Rect, cx: &ViewCx) -> Vec<u16> {
    let sizes: Vec<Size> = panels.iter().map(|p| size(*p, area.width, cx)).collect();
    let mut heights = vec![0_u16; panels.len()];
    let mut left = area.height;
    for (i, s) in sizes.iter().enumerate() {
        let want = if s.flex { s.min } else { s.want };
        // the key figures are always drawn, even on a tiny terminal
        let h = if want <= left {
            want
        } else if s.min <= left || i == 0 {
            s.min.min(left)
        } else {
            0
        };
        heights[i] = h;
        left -= h;
    }
    let flex: Vec<usize> = (0..panels.len())
        .filter(|&i| heights[i] > 0 && sizes[i].flex)
        .collect();
    let receivers: Vec<usize> = if flex.is_empty() {
        (0..panels.len())
            .rev()
            .find(|&i| heights[i] > 0)
            .into_iter()
            .collect()
    } else {
        flex
    };
    let count = u16::try_from(receivers.len()).unwrap_or(1).max(1);
    let share = left / count;
    let mut extra = left % count;
    for &i in &receivers {
        heights[i] += share + u16::from(extra > 0);
        extra = extra.saturating_sub(1);
    }
    heights
}

fn draw(frame: &mut Frame, area: Rect, panels: &[Panel], heights: &[u16], cx: &ViewCx) {
    let mut y = area.y;
    for (panel, &h) in panels.iter().zip(heights) {
        if h == 0 {
            continue;
        }
        let rect = Rect {
            y,
            height: h,
            ..area
        };
        y += h;
        match panel {
            Panel::Figures => render_figures(frame, rect, cx),
            Panel::Offenders => render_offenders(frame, rect, cx),
            Panel::Burn => render_burn(frame, rect, cx),
            Panel::Histogram => render_histogram(frame, rect, cx),
            Panel::Spend => {
                let [a, s] =
                    Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                        .areas(rect);
                render_agents(frame, a, cx);
                render_segments(frame, s, cx);
            }
            Panel::Agents => render_agents(frame, rect, cx),
            Panel::Segments => render_segments(frame, rect, cx),
            Panel::Models => render_models(frame, rect, cx),
        }
    }
}

/// `11s`, `14.5s`, `2m 11s`, `60m`: how long a window really covered.
fn span(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1_000;
    match (s / 60, s % 60) {
        (0, s) if ms % 1_000 >= 100 => format!("{s}.{}s", (ms % 1_000) / 100),
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m {s}s"),
    }
}

/// `3s`, `4m`, `2h 5m`, `3d` ago.
fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1_000;
    if s < 60 {
        format!("{s}s")
    } else if s < 3_600 {
        format!("{}m", s / 60)
    } else if s < 86_400 {
        format!("{}h {}m", s / 3_600, (s % 3_600) / 60)
    } else {
        format!("{}d", s / 86_400)
    }
}

fn times(v: u64) -> String {
    format!("{:.1}×", Insights::multiplier(v))
}

fn window_label(ms: i64) -> String {
    format!("{}m", ms / 60_000)
}

/// The burn figures: rates over 1, 5 and 60 minutes, merged where they are
/// the same (less data than the longer windows), with the time they cover
/// when it is shorter than the window.
fn burn_figures<'a>(cx: &ViewCx) -> Vec<Vec<Span<'a>>> {
    let insights = &cx.data.insights;
    let rates: Vec<BurnRate> = [60_000, 5 * 60_000, RECENT_SPEND_MS]
        .into_iter()
        .filter_map(|w| burn_rate(insights, cx.view_now(), w))
        .collect();
    let mut items = vec![vec![Span::styled("burn per min", cx.theme.muted)]];
    if rates.is_empty() {
        items.push(figure("", "no timed events".into(), cx.theme.muted, cx));
        return items;
    }
    if let Some(idle) = idle_for(cx).filter(|_| rates.iter().all(|r| r.spend == Usd::ZERO)) {
        items.push(figure(
            "",
            format!(
                "none in the last {} (newest event {} ago)",
                window_label(RECENT_SPEND_MS),
                ago(idle)
            ),
            cx.theme.muted,
            cx,
        ));
        return items;
    }
    let mut i = 0;
    while i < rates.len() {
        let rate = rates[i];
        let mut labels = vec![window_label(rate.window_ms)];
        let mut j = i + 1;
        while j < rates.len()
            && rates[j].spend == rate.spend
            && rates[j].observed_ms == rate.observed_ms
        {
            labels.push(window_label(rates[j].window_ms));
            j += 1;
        }
        let mut value = dollars(rate.per_minute());
        if rate.partial() {
            value.push_str(&format!(" ({} seen)", span(rate.observed_ms)));
        }
        items.push(figure(&labels.join("/"), value, cx.theme.cost, cx));
        i = j;
    }
    if let Some(hour) = rates.last() {
        if hour.observed_ms >= PROJECT_AFTER_MS {
            items.push(figure(
                "→ day",
                dollars(Usd::from_picos(hour.per_minute().picos() * 1_440)),
                cx.theme.cost_high,
                cx,
            ));
        } else {
            items.push(figure(
                "→ day",
                format!("after {} seen", window_label(PROJECT_AFTER_MS)),
                cx.theme.muted,
                cx,
            ));
        }
    }
    items
}

/// Spend is projected to a day only from this much observed time: a few
/// seconds of a starting workload say nothing about a day.
const PROJECT_AFTER_MS: i64 = 5 * 60_000;

/// How long since the last event, when it is longer than the burn chart's
/// reach (an hour): the chart then shows the hour before the last event.
fn idle_for(cx: &ViewCx) -> Option<i64> {
    let last = cx.data.insights.last_ts_ms?;
    let idle = cx.view_now() - last;
    (idle > RECENT_SPEND_MS).then_some(idle)
}

/// `label` median, then ` p95` value, as one figure (money in the cost
/// styles, ratios in text and warning).
fn spread_figure<'a>(label: &str, median: String, p95: String, cx: &ViewCx) -> Vec<Span<'a>> {
    let (m, p) = if median.starts_with('$') {
        (cx.theme.cost, cx.theme.cost_high)
    } else {
        (cx.theme.text, cx.theme.warning)
    };
    let mut spans = figure(label, median, m, cx);
    spans.extend(figure(" p95", p95, p, cx));
    spans
}

fn window_figures<'a>(label: &str, w: &CostWindow, cx: &ViewCx) -> Vec<Vec<Span<'a>>> {
    let flight = if w.in_flight > 0 {
        format!(", {} in flight", w.in_flight)
    } else {
        String::new()
    };
    if w.runs == 0 {
        return vec![figure(
            label,
            format!("no finished run{flight}"),
            cx.theme.muted,
            cx,
        )];
    }
    let label = if label.is_empty() {
        "mean".to_owned()
    } else {
        format!("{label} mean")
    };
    let mut spans = figure(&label, dollars(w.mean), cx.theme.cost, cx);
    spans.extend(figure(" median", dollars(w.cost.median), cx.theme.cost, cx));
    spans.extend(figure(" p95", dollars(w.cost.p95), cx.theme.cost_high, cx));
    vec![
        spans,
        vec![Span::styled(
            format!("({} runs{flight})", w.runs),
            cx.theme.muted,
        )],
    ]
}

/// The key figures, as flowing groups of whole values.
fn figure_lines<'a>(cx: &ViewCx, width: u16) -> Vec<Line<'a>> {
    let snap = &cx.data.snapshot;
    let insights: &Insights = &cx.data.insights;
    let t = &snap.totals;
    let spend = if t.unpriced_events > 0 {
        format!("{}+?", dollars(t.cost))
    } else {
        dollars(t.cost)
    };
    let bold_cost = cx.theme.cost.add_modifier(Modifier::BOLD);
    let change = cx.view.budget_changes.last().copied();
    let recent = recent_run_cost(insights, cx.view_now(), change);
    let mut groups = vec![
        vec![
            figure("spend", spend, bold_cost, cx),
            figure("tokens", tokens(t.total_tokens), cx.theme.text, cx),
            figure("runs", snap.runs_total.to_string(), cx.theme.text, cx),
            figure("calls", t.events.to_string(), cx.theme.text, cx),
        ],
        burn_figures(cx),
    ];
    let no_runs = snap.runs.is_empty();
    if no_runs {
        groups.push(vec![
            vec![Span::styled("cost per run", cx.theme.muted)],
            figure("", "no runs yet".into(), cx.theme.muted, cx),
        ]);
    } else {
        groups.push(vec![
            vec![Span::styled("cost per run", cx.theme.muted)],
            spread_figure(
                "all: median",
                dollars(insights.run_cost.median),
                dollars(insights.run_cost.p95),
                cx,
            ),
        ]);
        groups.push(window_figures(
            &format!("  last {}:", window_label(RECENT_WINDOW_MS)),
            &recent.last_minutes,
            cx,
        ));
        groups.push(window_figures(
            &format!("  last {RECENT_RUNS} runs:"),
            &recent.last_runs,
            cx,
        ));
    }
    if let Some(since) = recent.since_change {
        let mut group = vec![vec![Span::styled(
            format!(
                "since the budget change {} ago: $/run",
                ago(cx.view_now() - since.at_ms)
            ),
            cx.theme.muted,
        )]];
        group.extend(window_figures("", &since.since, cx));
        if since.before.runs > 0 {
            let mut was = figure("was mean", dollars(since.before.mean), cx.theme.cost, cx);
            was.extend(figure(
                " median",
                dollars(since.before.cost.median),
                cx.theme.cost,
                cx,
            ));
            was.extend(figure(
                " p95",
                dollars(since.before.cost.p95),
                cx.theme.cost_high,
                cx,
            ));
            group.push(was);
            group.push(vec![Span::styled(
                format!("({} runs)", since.before.runs),
                cx.theme.muted,
            )]);
        }
        groups.push(group);
    }
    if !no_runs {
        groups.push(vec![
            spread_figure(
                "tokens per run ÷ first hop: median",
                times(insights.run_multiplier.median),
                times(insights.run_multiplier.p95),
                cx,
            ),
            spread_figure(
                "context growth: median",
                times(insights.run_growth.median),
                times(insights.run_growth.p95),
                cx,
            ),
        ]);
    }
    groups.push(vec![
        figure("cache hit", percent(t.cache_hit_ratio()), cx.theme.good, cx),
        figure("saved", dollars(insights.cache_savings), cx.theme.good, cx),
        {
            let mut r = figure(
                "hidden reasoning",
                tokens(t.reasoning_tokens),
                cx.theme.text,
                cx,
            );
            r.extend(figure(
                " ≈",
                dollars(insights.reasoning_cost),
                cx.theme.cost,
                cx,
            ));
            r
        },
    ]);
    groups.push(health_figures(cx, width));
    flow(groups, width)
}

fn health_figures<'a>(cx: &ViewCx, width: u16) -> Vec<Vec<Span<'a>>> {
    let snap = &cx.data.snapshot;
    let stats = &cx.data.stats;
    let unpriced: Vec<String> = snap
        .by_model
        .iter()
        .filter(|m| m.priced_as.is_none())
        .map(|m| sanitize(&m.name).into_owned())
        .collect();
    let unpriced = if unpriced.is_empty() {
        figure("unpriced", "none".into(), cx.theme.good, cx)
    } else {
        // names are text: shortened to the line, with …
        let room = usize::from(width).saturating_sub("unpriced ".len()).min(60);
        figure(
            "unpriced",
            fit(&unpriced.join(", "), room),
            cx.theme.warning,
            cx,
        )
    };
    let health = if stats.malformed == 0 {
        cx.theme.good
    } else {
        cx.theme.warning
    };
    vec![
        unpriced,
        figure(
            "ingest",
            format!(
                "{} lines, {} malformed, {} dropped",
                stats.lines,
                stats.malformed,
                stats.live_totals().dropped
            ),
            health,
            cx,
        ),
    ]
}

fn render_figures(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let lines = figure_lines(cx, area.width.saturating_sub(2));
    frame.render_widget(
        Paragraph::new(lines).block(block("Overview".into(), cx)),
        area,
    );
}

/// The chart's span and bucket: the time observed (1 to 60 minutes) rounded
/// up to a round span, in as few seconds per bucket as the columns allow.
fn burn_scale(observed_ms: i64, columns: u16) -> (i64, i64) {
    const SPANS: [i64; 8] = [60, 120, 300, 600, 900, 1_200, 1_800, 3_600];
    const STEPS: [i64; 18] = [
        1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300,
    ];
    let observed = observed_ms / 1_000;
    let span = SPANS.into_iter().find(|s| *s >= observed).unwrap_or(3_600);
    let columns = i64::from(columns.max(1));
    let step = STEPS
        .into_iter()
        .find(|step| span / step <= columns)
        .unwrap_or(300);
    (span, step)
}

fn render_burn(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let insights = &cx.data.insights;
    let Some(hour) = burn_rate(insights, cx.view_now(), RECENT_SPEND_MS) else {
        frame.render_widget(
            Paragraph::new(Line::styled("no timed events yet", cx.theme.muted))
                .block(block("Burn".into(), cx)),
            area,
        );
        return;
    };
    // a first guess of the scale's width, for the number of columns
    let guess = dollars(Usd::from_picos(1_000 * 1_000_000_000_000)).len() + 5;
    let columns = area
        .width
        .saturating_sub(2 + u16::try_from(guess).unwrap_or(12));
    // long idle: the hour before the last event rather than an empty chart
    let idle = idle_for(cx);
    let end_ms = match (idle, insights.last_ts_ms) {
        (Some(_), Some(last)) => last,
        (_, last) => last.map_or(cx.view_now(), |l| l.max(cx.view_now())),
    };
    let observed = match insights.first_ts_ms {
        Some(first) if idle.is_some() => (end_ms - first).clamp(1_000, RECENT_SPEND_MS),
        _ => hour.observed_ms,
    };
    let (span_s, step_s) = burn_scale(observed, columns);
    let buckets = usize::try_from(span_s / step_s).unwrap_or(1);
    let spend = burn_series(insights, end_ms, step_s * 1_000, buckets);
    // $/min of each bucket
    let per_min: Vec<Usd> = spend
        .iter()
        .map(|s| Usd::from_picos(s.picos() * 60 / i128::from(step_s)))
        .collect();
    let top = per_min.iter().copied().max().unwrap_or(Usd::ZERO);
    let values: Vec<u64> = per_min.iter().map(|u| bar_value(*u)).collect();
    // the bucket of a moment (epoch ms), if it is in the chart
    let end_s = end_ms.div_euclid(1_000) + 1;
    let first_s = end_s - span_s;
    let bucket = |ms: i64| {
        let s = ms.div_euclid(1_000);
        (s >= first_s && s < end_s)
            .then(|| usize::try_from((s - first_s) / step_s).ok())
            .flatten()
    };
    let markers = vec![
        Markers {
            symbol: '▲',
            name: "budget set here",
            at: cx
                .view
                .budget_changes
                .iter()
                .filter_map(|t| bucket(*t))
                .collect(),
            style: cx.theme.warning,
        },
        Markers {
            symbol: '△',
            name: "limit first enforced",
            at: insights
                .enforcements
                .iter()
                .filter_map(|e| bucket(e.at_ms))
                .collect(),
            style: cx.theme.good,
        },
    ];
    let (over, bar) = (span(span_s * 1_000), span(step_s * 1_000));
    let title = title_for(
        area.width,
        match idle {
            Some(idle) => vec![
                format!(
                    "Burn $/min in the {over} before the newest event ({} ago), {bar} a bar",
                    ago(idle)
                ),
                format!(
                    "Burn $/min in the {over} before the newest event ({} ago)",
                    ago(idle)
                ),
                format!("Burn $/min before the newest event ({} ago)", ago(idle)),
                "Burn $/min before the newest event".into(),
                "Burn $/min".into(),
            ],
            None => vec![
                format!("Burn $/min over the last {over}, {bar} a bar"),
                format!("Burn $/min over the last {over}"),
                "Burn $/min".into(),
            ],
        },
    );
    time_bars(
        frame,
        area,
        block(title, cx),
        TimeBars {
            values,
            markers,
            y_top: format!("{}/min", dollars(top)),
            x_labels: [
                format!("-{}", span(span_s * 1_000)),
                format!("-{}", span(span_s * 500)),
                if idle.is_some() {
                    "newest event".into()
                } else {
                    "now".into()
                },
            ],
        },
        cx,
    );
}

fn render_histogram(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let inner_w = area.width.saturating_sub(2);
    let buckets = usize::from((inner_w / 2).clamp(8, 40));
    let insights = &cx.data.insights;
    // runs in flight at the last event that are still in flight now
    let mut in_flight: Vec<Usd> = insights
        .unfinished
        .iter()
        .filter(|p| !p.settled(cx.view_now()))
        .map(|p| p.cost)
        .collect();
    in_flight.sort_unstable();
    let Some(h) = cost_histogram(&insights.run_costs, &in_flight, buckets) else {
        frame.render_widget(
            Paragraph::new(Line::styled("no run with a cost yet", cx.theme.muted))
                .block(block("Cost per finished run".into(), cx)),
            area,
        );
        return;
    };
    let title = format!(
        "Cost per finished run, {} runs (log scale)",
        h.counts.iter().sum::<u64>()
    );
    histogram(
        frame,
        area,
        block(title, cx),
        &h.counts,
        [
            dollars(h.low),
            dollars(h.edge(buckets / 2)),
            dollars(h.high),
        ],
        cx,
    );
}

fn share_text(cost_text: String, cost: Usd, total: Usd) -> String {
    if total > Usd::ZERO {
        format!("{cost_text} {:>4}", percent(cost.to_f64() / total.to_f64()))
    } else {
        cost_text
    }
}

fn bar_value(cost: Usd) -> u64 {
    u64::try_from(cost.picos().max(0) / 1_000).unwrap_or(u64::MAX)
}

fn keyed_bars(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    rows: &[crate::model::ledger::KeyedAgg],
    cx: &ViewCx,
) {
    let total = cx.data.snapshot.totals.cost;
    let bars: Vec<BarRow> = rows
        .iter()
        .map(|r| BarRow {
            label: sanitize(&r.name).into_owned(),
            value: bar_value(r.counters.cost),
            text: share_text(cost_cell(&r.counters), r.counters.cost, total),
            style: cx.theme.chart,
        })
        .collect();
    let b = block(title.into(), cx);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    hbars(frame, inner, &bars, cx);
}

fn render_agents(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    keyed_bars(
        frame,
        area,
        "Spend by agent",
        &cx.data.snapshot.by_agent,
        cx,
    );
}

fn render_segments(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    keyed_bars(
        frame,
        area,
        "Spend by segment",
        &cx.data.snapshot.by_segment,
        cx,
    );
}

fn render_models(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let snap = &cx.data.snapshot;
    let total = snap.totals.cost;
    let bars: Vec<BarRow> = snap
        .by_model
        .iter()
        .map(|m| BarRow {
            label: sanitize(&m.name).into_owned(),
            value: bar_value(m.counters.cost),
            text: format!(
                "{} · {} tok",
                share_text(cost_cell(&m.counters), m.counters.cost, total),
                tokens(m.counters.total_tokens)
            ),
            style: if m.priced_as.is_none() {
                cx.theme.warning
            } else {
                cx.theme.chart_alt
            },
        })
        .collect();
    let b = block("Model mix (spend · tokens)".into(), cx);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    hbars(frame, inner, &bars, cx);
}

fn render_offenders(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let insights = &cx.data.insights;
    let offenders = &insights.offenders;
    if offenders.is_empty() {
        let title = if insights.trimmed_hops > 0 {
            format!(
                "Bleeding hops — none · {} trimmed by budgets",
                insights.trimmed_hops
            )
        } else {
            "Bleeding hops — none".to_owned()
        };
        frame.render_widget(
            Paragraph::new(Line::styled(
                "no hop re-sends its history, passes a per-hop limit or dominates its run",
                cx.theme.muted,
            ))
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(block(
                title_for(area.width, vec![title, "Bleeding hops".into()]),
                cx,
            )),
            area,
        );
        return;
    }
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
    // numbers are never cut; "why", then "carried" go when room is short;
    // then agent names are shortened with … (the hop number is a column)
    let mut table = DataTable::new(vec![
        Column::text("!", 0, 1, 1),
        Column::text("agent", 0, 6, 32),
        Column::number("hop", 0),
        Column::number("runs", 0),
        Column::number("carried", 2),
        Column::number("$/run", 0),
        Column::number("total", 0),
        Column::text("why", 3, 8, 16),
    ])
    .header_style(cx.theme.header);
    for (i, o) in offenders.iter().enumerate().skip(offset).take(visible) {
        table.row(
            vec![
                TableCell::text("!"),
                TableCell::text(sanitize(&o.agent).into_owned()),
                TableCell::number(o.hop.to_string()),
                TableCell::number(o.runs.to_string()),
                TableCell::number(tokens(o.carried_tokens)),
                TableCell::number(dollars(o.cost_per_run)),
                TableCell::number(dollars(o.total_cost)),
                TableCell::text(o.reason.replace('_', " ")),
            ],
            if i == selected {
                cx.theme.selected
            } else {
                cx.theme.warning
            },
        );
    }
    let (n, places, trimmed) = (
        insights.bleeding_hops,
        offenders.len(),
        insights.trimmed_hops,
    );
    let trim = |long: bool| match (trimmed, long) {
        (0, _) => String::new(),
        (t, true) => format!(" · {t} trimmed by budgets"),
        (t, false) => format!(" · {t} trimmed"),
    };
    let title = title_for(
        area.width,
        vec![
            format!(
                "Top bleeding hops ({n} hops in {places} places{}) — Enter: their runs",
                trim(true)
            ),
            format!(
                "Top bleeding hops ({n} hops in {places} places{})",
                trim(true)
            ),
            format!("Bleeding hops ({n} in {places} places{})", trim(false)),
            format!("Bleeding hops ({n} in {places} places)"),
            "Bleeding hops".into(),
        ],
    );
    table.render(frame, area, block(title, cx));
}
