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
use crate::model::advisor::forecast;
use crate::model::budget::{self, Limits, Scope};
use crate::model::insights::{BleedReason, carried_tokens};
use crate::model::ledger::{HopAgg, RunAgg};
use crate::model::snapshot::NO_SEGMENT;
use crate::pricing::PriceBook;
use crate::sanitize::sanitize;
use crate::types::usage::Usage;
use unicode_width::UnicodeWidthStr;

use super::events::breach_parts;
use super::table::{Column, DataTable, TableCell};
use super::widgets::{block, cost_cell, kv, list_title, list_window, pack, run_status, times};
use super::{ViewCx, list_rows};
use crate::ui::budgets::BudgetBoard;
use crate::ui::format::{dollars, tokens};
use crate::ui::state::{ListKind, SortKey};

/// Where a hop's per-hop limit comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LimitSource {
    /// In force at the runtime(s) that said what they enforce (they agree),
    /// set by `scope`; `confirmed` false when one of them is down (its last
    /// known state). `runtimes`: how many said.
    InForce {
        scope: Option<Scope>,
        runtimes: usize,
        confirmed: bool,
    },
    /// The runtimes disagree: each one's limit (`None`: none in force).
    Disagree(Vec<(String, Option<u64>)>),
    /// No runtime said anything: what the runtime reported enforcing on
    /// this run (`budget_exceeded`, per_hop).
    Enforced,
    /// No runtime said anything: what this dashboard wants (the scope that
    /// sets it), unconfirmed.
    Wanted(Scope),
}

/// A hop's per-hop limit as the runtime has it in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HopLimit {
    /// The limit drawn and judged against (`None`: none in force, or the
    /// runtimes disagree).
    pub limit: Option<u64>,
    pub source: LimitSource,
    /// This dashboard's wanted limit when it is not the one in force.
    pub wanted: Option<u64>,
}

/// What one runtime has in force for a hop: its address, the limit and the
/// scope that sets it, and whether it is confirmed (connected).
type Said<'a> = (&'a str, Option<(u64, Scope)>, bool);

/// Where the forecast of `run` (a loop of `expected` hops) meets the run
/// limits now in force for it ([`BudgetBoard::current_limits`], for the
/// agent of its last hop and its segment): the text, and whether a limit
/// is crossed. `None` without a run limit.
fn forecast_against_limits(run: &RunAgg, expected: u32, cx: &ViewCx) -> Option<(String, bool)> {
    let last = run.hops.last()?;
    let limits = budget::effective(
        &cx.budgets.current_limits(),
        Some(&last.agent),
        run.segment.as_deref(),
    );
    let (token_limit, cost_limit) = (limits.total_run_limit, limits.run_cost_limit());
    if token_limit.is_none() && cost_limit.is_none() {
        return None;
    }
    let book = cx.data.prices.as_deref();
    let price = book.and_then(|b| b.resolve(&last.model).map(|p| b.model(p)));
    let f = forecast::forecast(run, expected, token_limit, cost_limit, price)?;
    let mut parts = Vec::new();
    if let Some(limit) = token_limit {
        parts.push(match f.crosses_token_limit_at {
            Some(hop) => format!("{} tokens crossed at hop {hop}", tokens(limit)),
            None => format!("under {} tokens", tokens(limit)),
        });
    }
    if let Some(limit) = cost_limit {
        parts.push(match f.crosses_cost_limit_at {
            Some(hop) => format!("{} crossed at hop {hop}", dollars(limit)),
            None => format!("under {}", dollars(limit)),
        });
    }
    let crosses = f.crosses_token_limit_at.is_some() || f.crosses_cost_limit_at.is_some();
    Some((parts.join(" · "), crosses))
}

/// The per-hop limit of a hop of `agent` in `segment` under `budgets`, and
/// the scope that sets it: agent over segment over global
/// (`model::budget::effective`).
fn per_hop(
    budgets: &BTreeMap<Scope, Limits>,
    agent: &str,
    segment: Option<&str>,
) -> Option<(u64, Scope)> {
    let limit = budget::effective(budgets, Some(agent), segment).per_hop_limit?;
    let scope = [
        Some(Scope::Agent(agent.to_owned())),
        segment.map(|s| Scope::Segment(s.to_owned())),
        Some(Scope::Global),
    ]
    .into_iter()
    .flatten()
    .find(|s| budgets.get(s).is_some_and(|l| l.per_hop_limit.is_some()))?;
    Some((limit, scope))
}

/// The per-hop input limit for each hop of `run`: what the runtimes have
/// in force (their `budget.list`, acknowledgements, conflicts; the last
/// known state of one that is down, as such), saying so when they
/// disagree; only when no runtime has said anything, the limit the runtime
/// reported enforcing on this run, else what this dashboard wants
/// (unconfirmed). This dashboard's wanted limit is kept beside when it is
/// not the one in force.
pub(super) fn hop_limits(run: &RunAgg, board: &BudgetBoard) -> Vec<Option<HopLimit>> {
    let enforced = run
        .budget_hits
        .iter()
        .filter(|h| h.limit_kind.as_deref() == Some("per_hop"))
        .find_map(|h| h.limit);
    let wanted: BTreeMap<Scope, Limits> = board
        .desired
        .budgets
        .iter()
        .map(|(scope, b)| (scope.clone(), b.limits.clone()))
        .collect();
    // Runtimes that said what they have in force (now, or before going down).
    let runtimes: Vec<(&str, BTreeMap<Scope, Limits>, bool)> = board
        .runtimes
        .iter()
        .filter(|(_, r)| r.confirmed || !r.in_force.is_empty())
        .map(|(addr, r)| {
            let limits = r
                .in_force
                .iter()
                .map(|(scope, b)| (scope.clone(), b.limits.clone()))
                .collect();
            (addr.as_str(), limits, r.confirmed)
        })
        .collect();
    let segment = run.segment.as_deref();
    run.hops
        .iter()
        .map(|hop| {
            let wants = per_hop(&wanted, &hop.agent, segment);
            if runtimes.is_empty() {
                return match (enforced, wants) {
                    (Some(limit), wants) => Some(HopLimit {
                        limit: Some(limit),
                        source: LimitSource::Enforced,
                        wanted: wants.map(|(w, _)| w).filter(|w| *w != limit),
                    }),
                    (None, Some((limit, scope))) => Some(HopLimit {
                        limit: Some(limit),
                        source: LimitSource::Wanted(scope),
                        wanted: None,
                    }),
                    (None, None) => None,
                };
            }
            let each: Vec<Said> = runtimes
                .iter()
                .map(|(addr, limits, confirmed)| {
                    (*addr, per_hop(limits, &hop.agent, segment), *confirmed)
                })
                .collect();
            let first = each[0].1.as_ref().map(|(l, _)| *l);
            let wanted = wants.map(|(w, _)| w);
            if each
                .iter()
                .any(|(_, l, _)| l.as_ref().map(|(l, _)| *l) != first)
            {
                return Some(HopLimit {
                    limit: None,
                    source: LimitSource::Disagree(
                        each.iter()
                            .map(|(addr, l, _)| ((*addr).to_owned(), l.as_ref().map(|(l, _)| *l)))
                            .collect(),
                    ),
                    wanted,
                });
            }
            let source = LimitSource::InForce {
                scope: each[0].1.as_ref().map(|(_, s)| s.clone()),
                runtimes: each.len(),
                confirmed: each.iter().all(|(_, _, c)| *c),
            };
            match first {
                Some(limit) => Some(HopLimit {
                    limit: Some(limit),
                    source,
                    wanted: wanted.filter(|w| *w != limit),
                }),
                // none in force: said only when something is wanted here
                None => wanted.map(|w| HopLimit {
                    limit: None,
                    source,
                    wanted: Some(w),
                }),
            }
        })
        .collect()
}

impl LimitSource {
    /// How the source reads beside the limit (`in force at the runtime,
    /// global`).
    fn describe(&self) -> String {
        match self {
            LimitSource::InForce {
                scope,
                runtimes,
                confirmed,
            } => {
                let at = match (runtimes, confirmed) {
                    (1, true) => "in force at the runtime".to_owned(),
                    (1, false) => "last known at the runtime, unconfirmed".to_owned(),
                    (n, true) => format!("in force at {n} runtimes"),
                    (n, false) => format!("last known at {n} runtimes, unconfirmed"),
                };
                match scope {
                    Some(scope) => format!("{at}, {}", sanitize(&scope.to_string())),
                    None => at,
                }
            }
            LimitSource::Disagree(_) => "runtimes disagree".to_owned(),
            LimitSource::Enforced => "reported by the runtime".to_owned(),
            LimitSource::Wanted(scope) => {
                format!("wanted here, unconfirmed, {}", sanitize(&scope.to_string()))
            }
        }
    }
}

/// `runtimes disagree: 4.0k at unix:/a · none at unix:/b`.
fn disagreement(each: &[(String, Option<u64>)]) -> String {
    let parts: Vec<String> = each
        .iter()
        .map(|(addr, l)| {
            format!(
                "{} at {}",
                l.map_or_else(|| "none".to_owned(), tokens),
                sanitize(addr)
            )
        })
        .collect();
    format!("runtimes disagree: {}", parts.join(" · "))
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
    let trimmed = crate::model::advisor::whatif::trim(*usage, over);
    let dollars = prices.and_then(|p| {
        let before = p.price(model, usage)?;
        let after = p.price(model, &trimmed)?;
        Some(before.cost - after.cost)
    });
    (over, dollars)
}

/// The run's hops under every recommendation together, when `w` is on
/// (and prices and rules are known).
fn what_if(cx: &ViewCx, run: &RunAgg) -> Option<Vec<crate::model::advisor::whatif::HopWhatIf>> {
    use crate::model::advisor::whatif;
    if !cx.view.what_if {
        return None;
    }
    let prices = cx.data.prices.clone()?;
    let rules = cx.data.advisor.as_deref()?;
    let mut pricer = whatif::Pricer::new(rules, prices);
    Some(whatif::analyze(
        run,
        rules,
        &cx.data.insights.rules,
        &mut pricer,
    ))
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
    // `w`: the hops as the advisor's recommendations would make them
    let what_if = what_if(cx, run);
    let mut summary = vec![
        kv(
            "cost",
            cost_cell(&run.counters()),
            cx.theme.cost.add_modifier(Modifier::BOLD),
            cx,
        ),
        kv(
            "tokens",
            tokens(run.counters().total_tokens),
            cx.theme.text,
            cx,
        ),
        kv("×first hop", times(run.multiplier()), cx.theme.text, cx),
        kv("growth", times(run.context_growth()), cx.theme.text, cx),
        kv(
            "segment",
            sanitize(run.segment.as_deref().unwrap_or(NO_SEGMENT)).into_owned(),
            cx.theme.text,
            cx,
        ),
        kv("status", run_status(run, cx.view_now()), cx.theme.text, cx),
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
    // a run still going: where its growth so far takes it
    if let Some(f) = cx
        .data
        .snapshot
        .advice
        .as_ref()
        .and_then(|a| a.forecasts.iter().find(|f| *f.run_id == *run.run_id))
    {
        summary.push(kv(
            "forecast",
            format!(
                "{} hops · {} tokens · {}",
                f.forecast.hops_expected,
                tokens(f.forecast.tokens),
                dollars(f.forecast.cost)
            ),
            cx.theme.text,
            cx,
        ));
        if let Some((text, crosses)) = forecast_against_limits(run, f.forecast.hops_expected, cx) {
            let style = if crosses {
                cx.theme.budget_over
            } else {
                cx.theme.good
            };
            summary.push(kv("run limit", text, style, cx));
        }
    }
    if let Some(hops) = &what_if {
        let (now, then) = hops.iter().fold((Usd::ZERO, Usd::ZERO), |(a, b), w| {
            (
                a + w.current.unwrap_or(Usd::ZERO),
                b + if w.current.is_some() {
                    w.combined
                } else {
                    Usd::ZERO
                },
            )
        });
        let cut = if now > Usd::ZERO {
            100.0 * (1.0 - then.to_f64() / now.to_f64())
        } else {
            0.0
        };
        summary.push(kv(
            "what-if (w)",
            format!("{} → {} (−{cut:.0}%)", dollars(now), dollars(then)),
            cx.theme.good.add_modifier(Modifier::BOLD),
            cx,
        ));
    }
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
    let limits = hop_limits(run, cx.budgets);
    if chart_height > 0 {
        render_chart(frame, chart, cx, run, &limits, what_if.as_deref());
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
    for (position, i) in cx.rows.window(offset, visible) {
        let hop: &HopAgg = &run.hops[i];
        let changed = what_if
            .as_ref()
            .and_then(|w| w.get(i))
            .filter(|w| w.current.is_some());
        let reason = bleeding
            .and_then(|b| b.iter().find(|(index, _)| *index == i))
            .map(|(_, r)| r);
        // what-if on: the inputs as they would be
        let input_at = |j: usize| {
            what_if
                .as_ref()
                .and_then(|w| w.get(j))
                .filter(|w| w.current.is_some())
                .map_or(run.hops[j].usage.input_total(), |w| {
                    w.combined_usage.input_total()
                })
        };
        let growth = i.checked_sub(1).map(|p| {
            let (now, before) = (input_at(i), input_at(p));
            if now >= before {
                format!("+{}", tokens(now - before))
            } else {
                format!("-{}", tokens(before - now))
            }
        });
        let marker = match (reason.is_some(), hop.budget_hit().is_some()) {
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
        let u = changed.map_or(&hop.usage, |w| &w.combined_usage);
        let model = match changed.and_then(|w| w.combined_model.as_ref()) {
            Some(m) if *m.name != *hop.model => {
                format!("{} → {}", sanitize(&hop.model), sanitize(&m.name))
            }
            _ => sanitize(&hop.model).into_owned(),
        };
        let cost = match changed {
            Some(w) => format!(
                "{} → {}",
                hop.complete_cost()
                    .map_or_else(|| "unpriced".to_owned(), dollars),
                dollars(w.combined)
            ),
            None => hop
                .complete_cost()
                .map_or_else(|| "unpriced".to_owned(), dollars),
        };
        hops.row(
            vec![
                TableCell::text(marker),
                TableCell::number(hop.hop.to_string()),
                TableCell::text(sanitize(&hop.agent)),
                TableCell::text(model),
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
                TableCell::number(cost),
                TableCell::text(reason.map_or_else(String::new, |r| r.code().replace('_', " "))),
            ],
            row_style,
        );
    }
    let title = if what_if.is_some() {
        list_title(
            "Hops what-if: routed, trimmed, cached".into(),
            cx,
            ListKind::Hops,
        ) + " · w: as they were"
    } else {
        list_title("Hops".into(), cx, ListKind::Hops) + " · Enter: hop detail · w: what-if"
    };
    let legend = Line::from(vec![
        Span::styled(" █ uncached ", cx.theme.chart),
        Span::styled("▒ cache read ", cx.theme.good),
        Span::styled("░ cache write ", cx.theme.accent),
        Span::styled("▓ output ", cx.theme.chart_alt),
    ]);
    hops.render(frame, table, block(title, cx).title_bottom(legend));
}

/// The chart's title: the per-hop limit in force and where it comes from,
/// this dashboard's wanted one beside when it differs, or that the
/// runtimes disagree.
fn chart_title(limits: &[Option<HopLimit>]) -> String {
    let known: Vec<&HopLimit> = limits.iter().flatten().collect();
    if let Some(LimitSource::Disagree(each)) = known
        .iter()
        .map(|l| &l.source)
        .find(|s| matches!(s, LimitSource::Disagree(_)))
    {
        return format!(
            "Input tokens per hop · per-hop limit: {}",
            disagreement(each)
        );
    }
    let range = |values: &[u64]| match (values.iter().min(), values.iter().max()) {
        (Some(low), Some(high)) if low == high => Some(tokens(*low)),
        (Some(low), Some(high)) => Some(format!("{}–{}", tokens(*low), tokens(*high))),
        _ => None,
    };
    let values: Vec<u64> = known.iter().filter_map(|l| l.limit).collect();
    let wanted: Vec<u64> = known.iter().filter_map(|l| l.wanted).collect();
    let source = known
        .iter()
        .find(|l| l.limit.is_some())
        .or(known.first())
        .map(|l| match &l.source {
            // the scope is per hop: the chart names where it is in force
            LimitSource::InForce {
                runtimes,
                confirmed,
                ..
            } => LimitSource::InForce {
                scope: None,
                runtimes: *runtimes,
                confirmed: *confirmed,
            }
            .describe(),
            LimitSource::Wanted(_) => "wanted here, unconfirmed".to_owned(),
            other => other.describe(),
        });
    let mut title = match (range(&values), &source) {
        (Some(range), Some(source)) => {
            let plural = if values.iter().min() == values.iter().max() {
                "limit"
            } else {
                "limits"
            };
            format!("Input tokens per hop · per-hop {plural} {range} ({source})")
        }
        (None, Some(source)) => format!("Input tokens per hop · per-hop limit none ({source})"),
        _ => "Input tokens per hop · no per-hop limit set".to_owned(),
    };
    if let Some(wanted) = range(&wanted) {
        title.push_str(&format!(" · wanted here {wanted}"));
    }
    title
}

/// Input tokens per hop as a line, the per-hop limit as a second one;
/// with the what-if on (`w`), the input the recommendations would send
/// (trimmed) as a third.
fn render_chart(
    frame: &mut Frame,
    area: Rect,
    cx: &ViewCx,
    run: &RunAgg,
    limits: &[Option<HopLimit>],
    what_if: Option<&[crate::model::advisor::whatif::HopWhatIf]>,
) {
    #[allow(clippy::cast_precision_loss)]
    let input: Vec<(f64, f64)> = run
        .hops
        .iter()
        .map(|h| (f64::from(h.hop), h.usage.input_total() as f64))
        .collect();
    // unpriced hops are left as they are, as in the table
    #[allow(clippy::cast_precision_loss)]
    let would_send: Vec<(f64, f64)> = what_if
        .map(|hops| {
            run.hops
                .iter()
                .zip(hops)
                .map(|(h, w)| {
                    let input = if w.current.is_some() {
                        w.combined_usage.input_total()
                    } else {
                        h.usage.input_total()
                    };
                    (f64::from(h.hop), input as f64)
                })
                .collect()
        })
        .unwrap_or_default();
    #[allow(clippy::cast_precision_loss)]
    let at_hops: Vec<(f64, f64)> = run
        .hops
        .iter()
        .zip(limits)
        .filter_map(|(h, l)| {
            l.as_ref()
                .and_then(|l| l.limit)
                .map(|l| (f64::from(h.hop), l as f64))
        })
        .collect();
    // the limit as dots every other column, drawn over the input line: where
    // trimmed hops sit right on the limit, both stay visible
    let top = top_input(run, limits);
    let plot_width = area
        .width
        .saturating_sub(3 + u16::try_from(tokens(top).len()).unwrap_or(0));
    let limit = dotted(&at_hops, plot_width / 2);
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
    // the limit is named in the title and both lines in the bottom legend
    // (ratatui's legend box would hide the lines)
    if !would_send.is_empty() {
        datasets.push(
            Dataset::default()
                .name("what-if input")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(cx.theme.good)
                .data(&would_send),
        );
    }
    if !limit.is_empty() {
        datasets.push(
            Dataset::default()
                .name("per-hop limit")
                .marker(Marker::Dot)
                .graph_type(GraphType::Scatter)
                .style(cx.theme.budget_over)
                .data(&limit),
        );
    }
    let mut legend = vec![Span::styled(" ⠤ input tokens ", cx.theme.chart)];
    if !would_send.is_empty() {
        legend.push(Span::styled("⠤ what-if (trimmed) ", cx.theme.good));
    }
    if !limit.is_empty() {
        legend.push(Span::styled("• per-hop limit ", cx.theme.budget_over));
    }
    let title = chart_title(limits);
    #[allow(clippy::cast_precision_loss)]
    let chart = Chart::new(datasets)
        .hidden_legend_constraints((Constraint::Length(0), Constraint::Length(0)))
        .block(block(title, cx).title_bottom(Line::from(legend)))
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

/// The top of the chart: the largest input or limit.
fn top_input(run: &RunAgg, limits: &[Option<HopLimit>]) -> u64 {
    run.hops
        .iter()
        .map(|h| h.usage.input_total())
        .chain(limits.iter().flatten().filter_map(|l| l.limit))
        .max()
        .unwrap_or(0)
        .max(1)
}

/// Points every `(last - first) / steps` along the line through `points`
/// (sorted by x; a gap between points is bridged straight, as a line
/// chart would).
fn dotted(points: &[(f64, f64)], steps: u16) -> Vec<(f64, f64)> {
    let (Some(&(first, _)), Some(&(last, _))) = (points.first(), points.last()) else {
        return Vec::new();
    };
    if points.len() == 1 || steps < 2 || last <= first {
        return points.to_vec();
    }
    let step = (last - first) / f64::from(steps);
    (0..=steps)
        .filter_map(|i| {
            let x = (first + step * f64::from(i)).min(last);
            let right = points.iter().position(|&(px, _)| px >= x)?;
            let (x1, y1) = points[right];
            let (x0, y0) = points[right.saturating_sub(1)];
            let y = if x1 > x0 {
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            } else {
                y1
            };
            Some((x, y))
        })
        .collect()
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
    let limits = hop_limits(run, cx.budgets);
    let saving = match limits.get(index).cloned().flatten() {
        None => Span::styled(
            "no per-hop limit set (b: edit the budget)".to_owned(),
            cx.theme.muted,
        ),
        Some(HopLimit {
            source: LimitSource::Disagree(each),
            wanted,
            ..
        }) => Span::styled(
            format!(
                "{}{}",
                disagreement(&each),
                wanted.map_or(String::new(), |w| format!(" · wanted here {}", tokens(w)))
            ),
            cx.theme.warning,
        ),
        Some(HopLimit {
            limit: None,
            source,
            wanted,
        }) => Span::styled(
            format!(
                "none ({}){}",
                source.describe(),
                wanted.map_or(String::new(), |w| format!(
                    " · wanted here {}, not in force",
                    tokens(w)
                ))
            ),
            cx.theme.muted,
        ),
        Some(HopLimit {
            limit: Some(limit),
            source,
            wanted,
        }) => {
            let source = source.describe();
            let beside = wanted.map_or(String::new(), |w| {
                format!(" · wanted here {}, not in force", tokens(w))
            });
            let (saved, dollars_saved) = trim_saving(&h.model, u, limit, cx.data.prices.as_deref());
            if saved == 0 {
                Span::styled(
                    format!("{} ({source}): within the limit{beside}", tokens(limit)),
                    cx.theme.good,
                )
            } else {
                Span::styled(
                    format!(
                        "{} ({source}): would have trimmed {} tokens, saving {}{beside}",
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
        let mut run = RunAgg::new(Arc::from("r"));
        run.segment = Some(Arc::from("pro"));
        let mut board = BudgetBoard::default();
        assert!(hop_limits(&run, &board).is_empty());
        // hops are built through a ledger: one per agent
        run.hops = run_of(&["planner", "writer"]).hops;
        assert_eq!(hop_limits(&run, &board), vec![None, None]);
        run.budget_hits.push(BudgetHit {
            limit_kind: Some("per_hop".into()),
            limit: Some(7_000),
            observed: Some(9_000),
            action: Some("trim".into()),
            hop: Some(2),
        });
        let enforced = HopLimit {
            limit: Some(7_000),
            source: LimitSource::Enforced,
            wanted: None,
        };
        assert_eq!(hop_limits(&run, &board), vec![Some(enforced.clone()); 2]);
        // Wanted here, no runtime said anything: the run's enforced limit,
        // the wanted one beside.
        board.desired.set(Scope::Global, limit(9_000), 0);
        board
            .desired
            .set(Scope::Segment("pro".into()), limit(8_000), 0);
        board
            .desired
            .set(Scope::Agent("writer".into()), limit(5_000), 0);
        assert_eq!(
            hop_limits(&run, &board),
            vec![
                Some(HopLimit {
                    wanted: Some(8_000),
                    ..enforced.clone()
                }),
                Some(HopLimit {
                    wanted: Some(5_000),
                    ..enforced
                }),
            ]
        );
        run.budget_hits.clear();
        assert_eq!(
            hop_limits(&run, &board),
            vec![
                Some(HopLimit {
                    limit: Some(8_000),
                    source: LimitSource::Wanted(Scope::Segment("pro".into())),
                    wanted: None,
                }),
                Some(HopLimit {
                    limit: Some(5_000),
                    source: LimitSource::Wanted(Scope::Agent("writer".into())),
                    wanted: None,
                }),
            ]
        );
    }

    fn limit(n: u64) -> Limits {
        Limits {
            per_hop_limit: Some(n),
            ..Limits::default()
        }
    }

    fn run_of(agents: &[&str]) -> RunAgg {
        let mut ledger =
            crate::model::Ledger::new(PriceBook::embedded(), crate::model::LedgerConfig::default());
        for (n, agent) in (1..).zip(agents) {
            let usage = Usage {
                input_uncached: 100,
                ..Usage::default()
            };
            ledger.apply(&crate::types::TelemetryEvent {
                ts_ms: Some(0),
                agent: (*agent).to_owned().into(),
                segment: Some("pro".into()),
                ..crate::types::TelemetryEvent::hop_for_test("r", n, "", "gpt-4.1", usage)
            });
        }
        (*ledger.snapshot().runs[0]).clone()
    }

    fn runtime(board: &mut BudgetBoard, addr: &str, budgets: Vec<(Scope, u64, u64)>) {
        use crate::control::client::{ClientEvent, Link};
        use crate::control::protocol::VersionedBudget;
        board.apply(ClientEvent::Link {
            addr: addr.into(),
            link: Link::Connected {
                runtime: "r".into(),
                runtime_id: "1".into(),
            },
        });
        board.apply(ClientEvent::State {
            addr: addr.into(),
            budgets: budgets
                .into_iter()
                .map(|(scope, version, hop)| VersionedBudget {
                    scope,
                    version,
                    base_version: None,
                    idempotency_key: None,
                    limits: limit(hop),
                })
                .collect(),
        });
    }

    #[test]
    fn the_per_hop_limit_shown_is_the_one_the_runtime_has_in_force() {
        let run = run_of(&["planner", "writer"]);
        let mut board = BudgetBoard::default();
        // This dashboard wants 7000; the runtime enforces 5000 (set by
        // another controller) for everyone and 4000 for the writer.
        board.desired.set(Scope::Global, limit(7_000), 0);
        runtime(
            &mut board,
            "unix:/a",
            vec![
                (Scope::Global, 7, 5_000),
                (Scope::Agent("writer".into()), 2, 4_000),
            ],
        );
        let in_force = |scope: Scope| LimitSource::InForce {
            scope: Some(scope),
            runtimes: 1,
            confirmed: true,
        };
        let limits = hop_limits(&run, &board);
        assert_eq!(
            limits,
            vec![
                Some(HopLimit {
                    limit: Some(5_000),
                    source: in_force(Scope::Global),
                    wanted: Some(7_000),
                }),
                Some(HopLimit {
                    limit: Some(4_000),
                    source: in_force(Scope::Agent("writer".into())),
                    wanted: Some(7_000),
                }),
            ]
        );
        assert_eq!(
            chart_title(&limits),
            "Input tokens per hop · per-hop limits 4.0k–5.0k (in force at the runtime) · wanted here 7.0k"
        );

        // The runtime goes down: its last known state, unconfirmed.
        board.apply(crate::control::client::ClientEvent::Link {
            addr: "unix:/a".into(),
            link: crate::control::client::Link::Down {
                error: "gone".into(),
                retry_in: std::time::Duration::from_secs(1),
            },
        });
        assert_eq!(
            hop_limits(&run, &board)[0].as_ref().unwrap().source,
            LimitSource::InForce {
                scope: Some(Scope::Global),
                runtimes: 1,
                confirmed: false
            }
        );

        // A second runtime enforcing 9000: they disagree, and it is said.
        runtime(&mut board, "unix:/b", vec![(Scope::Global, 3, 9_000)]);
        let limits = hop_limits(&run, &board);
        assert_eq!(
            limits[0],
            Some(HopLimit {
                limit: None,
                source: LimitSource::Disagree(vec![
                    ("unix:/a".into(), Some(5_000)),
                    ("unix:/b".into(), Some(9_000)),
                ]),
                wanted: Some(7_000),
            })
        );
        assert_eq!(
            chart_title(&limits),
            "Input tokens per hop · per-hop limit: runtimes disagree: 5.0k at unix:/a · 9.0k at unix:/b"
        );

        // A connected runtime with nothing in force: no limit, what is
        // wanted here beside it.
        let mut board = BudgetBoard::default();
        board.desired.set(Scope::Global, limit(7_000), 0);
        runtime(&mut board, "unix:/a", Vec::new());
        let limits = hop_limits(&run, &board);
        assert_eq!(limits[0].as_ref().unwrap().limit, None);
        assert_eq!(
            chart_title(&limits),
            "Input tokens per hop · per-hop limit none (in force at the runtime) · wanted here 7.0k"
        );
    }
}
