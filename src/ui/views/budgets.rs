//! The Budgets screen and the budget editor popup.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Clear, Paragraph, Row, Table, Wrap};

use crate::config::keys::Action;
use crate::sanitize::sanitize;

use super::ViewCx;
use super::widgets::{block, centered};
use crate::control::client::Link;
use crate::model::budget::{self, Limits};
use crate::ui::budgets::{BudgetEditor, FIELDS, ScopeState, Stage};
use crate::ui::format::{age, tokens};

/// Every scope: its limits, its state at each runtime, and usage against it.
pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx) {
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

/// The budget editor: fields, then the diff and what it would have breached.
pub(super) fn render_editor(frame: &mut Frame, area: Rect, cx: &ViewCx, editor: &BudgetEditor) {
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
