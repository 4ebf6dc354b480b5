//! The Advice screen: the advisor's ranked recommendations (what to
//! change, what it saves per run and per month, how sure it is), and the
//! evidence of the selected one. Enter opens the run that saves the most.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::model::advisor::{Advice, Recommendation};
use crate::sanitize::sanitize;
use crate::ui::format::{dollars, tokens};
use crate::ui::update::advice_key;

use super::table::{Column, DataTable, TableCell};
use super::widgets::{block, title_for, window};
use super::{ViewCx, list_rows};

/// Lines of the evidence panel (borders included).
const DETAIL_HEIGHT: u16 = 7;

fn money_or_dash(x: Option<crate::model::Usd>) -> String {
    x.map_or_else(|| "—".to_owned(), dollars)
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// The headline: what every recommendation together would make of a run.
fn summary(advice: &Advice) -> Vec<Line<'static>> {
    let c = &advice.combined;
    let t = &advice.total;
    let mut first = vec![Span::raw(format!(
        "{} runs · $/run {} → {} with everything applied · saves {}/run",
        advice.runs,
        dollars(c.cost_per_run),
        dollars(c.combined_per_run),
        dollars(c.saving_per_run),
    ))];
    if let Some(month) = c.saving_per_month {
        first.push(Span::raw(format!(", {}/month", dollars(month))));
    }
    if c.unpriced_hops > 0 {
        first.push(Span::raw(format!(
            " · {} unpriced hops left out",
            c.unpriced_hops
        )));
    }
    let second = format!(
        "cache hit {} (saved {}) · carried context {} · reasoning {} of output ({}) · {} runs with a cache break",
        pct(t.cache_hit_ratio()),
        dollars(t.cache_saved),
        pct(t.carried_share()),
        pct(t.reasoning_share()),
        dollars(t.reasoning_cost),
        advice.cache_break_runs,
    );
    vec![Line::from(first), Line::raw(second)]
}

fn detail(r: &Recommendation) -> Vec<Line<'static>> {
    let mut lines = vec![Line::raw(format!(
        "{} · {} runs, {} hops, {} tokens · saves {} over the runs seen, {}/run, {}/month · {} sure",
        sanitize(&r.title),
        r.runs,
        r.hops,
        tokens(r.tokens),
        dollars(r.saving),
        dollars(r.saving_per_run),
        money_or_dash(r.saving_per_month),
        r.confidence.code(),
    ))];
    let evidence: Vec<String> = r
        .evidence
        .iter()
        .map(|e| {
            let hops: Vec<String> = e.hops.iter().map(u32::to_string).collect();
            format!(
                "{} (hop {}: {})",
                sanitize(&e.run_id),
                hops.join(","),
                dollars(e.saving)
            )
        })
        .collect();
    lines.push(Line::raw(format!("evidence: {}", evidence.join(" · "))));
    lines
}

pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let Some(advice) = cx.data.snapshot.advice.as_deref() else {
        frame.render_widget(
            Paragraph::new(Line::styled("no advice yet", cx.theme.muted))
                .block(block("Advice".into(), cx)),
            area,
        );
        return;
    };
    let [head, list, evidence] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Min(3),
        Constraint::Length(DETAIL_HEIGHT),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(summary(advice))
            .wrap(Wrap { trim: true })
            .block(block("Advisor".into(), cx)),
        head,
    );
    let recs = &advice.recommendations;
    if recs.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled(
                "nothing to recommend: no lever saves enough of the spend",
                cx.theme.muted,
            ))
            .block(block("Recommendations".into(), cx)),
            list,
        );
        return;
    }
    let cursor = cx.view.cursor();
    let selected = cursor
        .selected
        .as_ref()
        .and_then(|k| recs.iter().position(|r| advice_key(r) == *k))
        .unwrap_or(0);
    let visible = list_rows(list.height);
    let offset = window(selected, cursor.offset, visible, recs.len());
    let mut table = DataTable::new(vec![
        Column::number("#", 0),
        Column::text("recommendation", 0, 16, 90),
        Column::number("$/run", 0),
        Column::number("$/month", 1),
        Column::number("share", 2),
        Column::text("sure", 1, 4, 6),
        Column::number("runs", 3),
    ])
    .header_style(cx.theme.header);
    for (i, r) in recs.iter().enumerate().skip(offset).take(visible) {
        table.row(
            vec![
                TableCell::number(r.rank.to_string()),
                TableCell::text(sanitize(&r.title).into_owned()),
                TableCell::number(dollars(r.saving_per_run)),
                TableCell::number(money_or_dash(r.saving_per_month)),
                TableCell::number(pct(r.share)),
                TableCell::text(r.confidence.code()),
                TableCell::number(r.runs.to_string()),
            ],
            if i == selected {
                cx.theme.selected
            } else {
                cx.theme.text
            },
        );
    }
    let title = title_for(
        list.width,
        vec![
            format!(
                "Recommendations ({}) — Enter: the run that saves most",
                recs.len()
            ),
            format!("Recommendations ({})", recs.len()),
            "Recommendations".into(),
        ],
    );
    table.render(frame, list, block(title, cx));
    if let Some(r) = recs.get(selected) {
        frame.render_widget(
            Paragraph::new(detail(r))
                .wrap(Wrap { trim: true })
                .block(block(format!("#{} evidence", r.rank), cx)),
            evidence,
        );
    }
}
