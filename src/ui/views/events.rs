//! The Events screen: the recent tail of calls, run ends and budget events,
//! each with what it reported; below it, the rejected (malformed) lines
//! with their `file:line` and reason.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use crate::ingest::stats::{RejectKind, Rejected};
use crate::model::ledger::{BudgetHit, RecentEvent, RecentKind};
use crate::sanitize::sanitize;

use super::table::{Column, DataTable, TableCell};
use super::widgets::{block, list_title, list_window};
use super::{ViewCx, list_rows};
use crate::ui::format::{dollars, tokens};
use crate::ui::state::{ListKind, SortKey};

/// What a budget breach said: `per_hop limit 9.0k · saw 12.4k · trim`.
pub(super) fn breach_parts(hit: &BudgetHit) -> Vec<String> {
    let mut parts = Vec::new();
    let kind = hit
        .limit_kind
        .as_deref()
        .map_or_else(|| "limit".to_owned(), |k| sanitize(k).into_owned());
    parts.push(match hit.limit {
        Some(limit) => format!("{kind} limit {}", tokens(limit)),
        None => kind,
    });
    if let Some(observed) = hit.observed {
        parts.push(format!("saw {}", tokens(observed)));
    }
    if let Some(action) = &hit.action {
        parts.push(format!("→ {}", sanitize(action)));
    }
    parts
}

/// The `what` of a tail line: agent and model of a call; the breach of a
/// budget event; status and totals of a run end.
fn detail(e: &RecentEvent) -> Vec<String> {
    match &e.kind {
        RecentKind::Hop => vec![
            sanitize(&e.agent).into_owned(),
            sanitize(&e.model).into_owned(),
        ],
        RecentKind::BudgetExceeded(hit) => {
            let mut parts = breach_parts(hit);
            if &*e.agent != "unknown" {
                parts.insert(0, sanitize(&e.agent).into_owned());
            }
            parts
        }
        RecentKind::RunEnd(end) => vec![
            sanitize(&end.status).into_owned(),
            format!("{} hop{}", end.hops, if end.hops == 1 { "" } else { "s" }),
            format!("{} tokens", tokens(end.tokens)),
            format!(
                "{} in all",
                end.cost.map_or_else(|| "unpriced".to_owned(), dollars)
            ),
        ],
    }
}

pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let samples = &cx.data.stats.malformed_samples;
    if samples.is_empty() {
        render_tail(frame, area, cx);
        return;
    }
    // the malformed lines below the tail: a third of the screen at most
    // room for a reason wrapped on a second line
    let wanted = u16::try_from(2 * samples.len() + 2).unwrap_or(u16::MAX);
    let height = wanted.min(area.height / 3).max(4.min(area.height));
    let [tail, malformed] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(height)]).areas(area);
    render_tail(frame, tail, cx);
    render_malformed(frame, malformed, cx);
}

/// The rejected lines ingest kept (see `ingest::stats::MAX_REJECT_SAMPLES`):
/// where, what kind and why — each reason whole, wrapped under its place —
/// the latest at the bottom, as many as the panel holds. Once more were
/// rejected than kept, the latest ones are shown (a live dashboard's news);
/// the report lists the first ones.
fn render_malformed(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let stats = &cx.data.stats;
    let kept: Vec<&Rejected> = if stats.latest_rejected.is_empty() {
        stats.malformed_samples.iter().collect()
    } else {
        stats.latest_rejected.iter().collect()
    };
    let inner = Block::bordered().inner(area);
    let entry = |rejected: &Rejected| -> Paragraph<'static> {
        let kind = match rejected.kind {
            RejectKind::Malformed => "malformed",
            RejectKind::InvalidUtf8 => "not UTF-8",
            RejectKind::Oversized => "too long",
            RejectKind::Unrevisable => "late",
        };
        Paragraph::new(Line::from(vec![
            Span::styled(sanitize(&rejected.location).into_owned(), cx.theme.warning),
            Span::styled(format!(" {kind}: "), cx.theme.muted),
            Span::styled(sanitize(&rejected.reason).into_owned(), cx.theme.text),
        ]))
        .wrap(Wrap { trim: false })
    };
    // the latest that fit, each in as many lines as its reason needs
    let mut shown: Vec<(Paragraph, u16)> = Vec::new();
    let mut used = 0;
    for rejected in kept.iter().rev() {
        let paragraph = entry(rejected);
        let lines = u16::try_from(paragraph.line_count(inner.width)).unwrap_or(u16::MAX);
        if used + lines > inner.height {
            if shown.is_empty() {
                // one reason taller than the panel: its beginning
                shown.push((paragraph, inner.height));
            }
            break;
        }
        used += lines;
        shown.push((paragraph, lines));
    }
    let rejected = stats.malformed + stats.unrevisable;
    let title = if u64::try_from(shown.len()).unwrap_or(u64::MAX) < rejected {
        format!(
            "Rejected lines · the latest {} of {rejected} · the first ones in `tokwatch report`",
            shown.len()
        )
    } else {
        format!("Rejected lines · {rejected}")
    };
    frame.render_widget(block(title, cx), area);
    let mut y = inner.y;
    for (paragraph, lines) in shown.into_iter().rev() {
        frame.render_widget(
            paragraph,
            Rect {
                y,
                height: lines,
                ..inner
            },
        );
        y += lines;
    }
}

fn render_tail(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let recent = &cx.data.snapshot.recent;
    let visible = list_rows(area.height);
    let (selected, offset) = list_window(cx, visible);
    // the token buckets beside input and output on wide terminals only:
    // below that, the names and what an event reported come first
    let buckets = area.width >= 120;
    let mut columns = vec![
        Column::number("time UTC", 1).sorts(SortKey::Position),
        Column::text("kind", 0, 8, 8),
        Column::text("run", 0, 10, 36),
        Column::number("hop", 4),
        // what happened gets its share before a long run id takes the rest
        Column::text("what", 2, 14, 64).wants(16),
        Column::number("in", 3).sorts(SortKey::Input),
        Column::number("cache rd", 6),
        Column::number("cache wr", 7),
        Column::number("out", 5),
        Column::number("reas.", 8),
        Column::number("cost", 0).sorts(SortKey::Cost),
    ];
    let bucket_columns = [6, 7, 9];
    if !buckets {
        for c in bucket_columns.iter().rev() {
            columns.remove(*c);
        }
    }
    let mut table = DataTable::new(columns)
        .sorted(cx.view.sort(ListKind::Events), ListKind::Events)
        .header_style(cx.theme.header);
    let today = chrono::DateTime::from_timestamp_millis(cx.view_now())
        .map(|t| t.date_naive())
        .unwrap_or_default();
    for (position, i) in cx.rows.window(offset, visible) {
        let e = &recent[i];
        let time = e
            .ts_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map_or_else(
                || "-".to_owned(),
                |t| {
                    // today's events by their time alone (UTC)
                    if t.date_naive() == today {
                        t.format("%H:%M:%S").to_string()
                    } else {
                        t.format("%m-%d %H:%M:%S").to_string()
                    }
                },
            );
        let (kind, style) = match &e.kind {
            RecentKind::Hop => ("call", cx.theme.text),
            RecentKind::BudgetExceeded(_) => ("! budget", cx.theme.budget_over),
            RecentKind::RunEnd(_) => ("end", cx.theme.muted),
        };
        let call = e.kind == RecentKind::Hop;
        let hop = match &e.kind {
            RecentKind::Hop => e.hop.to_string(),
            RecentKind::BudgetExceeded(hit) => hit.hop.map_or_else(String::new, |h| h.to_string()),
            RecentKind::RunEnd(_) => String::new(),
        };
        let number = |text: String| TableCell::number(if call { text } else { String::new() });
        let mut cells = vec![
            TableCell::number(time),
            TableCell::text(kind),
            TableCell::text(sanitize(&e.run_id)),
            TableCell::number(hop),
            match e.kind {
                // names, shortened at the end like any text
                RecentKind::Hop => TableCell::text(detail(e).join(" · ")),
                // values, left out whole
                _ => TableCell::parts(detail(e)),
            },
            number(tokens(e.usage.input_total())),
            number(tokens(e.usage.cache_read)),
            number(tokens(e.usage.cache_write())),
            number(tokens(e.usage.output)),
            number(tokens(e.usage.reasoning)),
            number(e.cost.map_or_else(|| "unpriced".into(), dollars)),
        ];
        if !buckets {
            for c in bucket_columns.iter().rev() {
                cells.remove(*c);
            }
        }
        table.row(
            cells,
            if Some(position) == selected {
                cx.theme.selected
            } else {
                style
            },
        );
    }
    let title = list_title("Latest events".into(), cx, ListKind::Events) + " · Enter: run";
    table.render(frame, area, block(title, cx));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::Usd;
    use crate::model::ledger::RunEnded;
    use crate::types::usage::Usage;

    fn line(kind: RecentKind) -> RecentEvent {
        RecentEvent {
            ts_ms: Some(0),
            run_id: Arc::from("r-1"),
            hop: 0,
            agent: Arc::from("unknown"),
            model: Arc::from("unknown"),
            usage: Usage::default(),
            cost: None,
            provenance: crate::model::Provenance::Reported,
            kind,
        }
    }

    #[test]
    fn run_ends_and_budget_events_say_what_they_reported() {
        let end = line(RecentKind::RunEnd(Box::new(RunEnded {
            status: Arc::from("aborted"),
            hops: 8,
            tokens: 259_600,
            cost: Some(Usd::parse_decimal("1.5").unwrap()),
        })));
        assert_eq!(
            detail(&end),
            ["aborted", "8 hops", "259.6k tokens", "$1.50 in all"]
        );
        let mut breach = line(RecentKind::BudgetExceeded(Box::new(BudgetHit {
            limit_kind: Some("per_hop".into()),
            limit: Some(9000),
            observed: Some(12_400),
            action: Some("trim".into()),
            hop: Some(4),
        })));
        assert_eq!(
            detail(&breach),
            ["per_hop limit 9.0k", "saw 12.4k", "→ trim"]
        );
        breach.agent = Arc::from("researcher");
        assert_eq!(detail(&breach)[0], "researcher");
    }
}
