//! The Budgets screen and the budget editor popup.
//!
//! ```text
//! ┌ Budgets · b: edit global … ───────────────────────────────────────────────────────────┐
//! │  scope   wanted here        in force at the runtime   state                    largest hop │
//! │! global  per-hop 20000 v2   per-hop 9000 (trim) v3    set by another controller 40.2k / 9.0k │
//! └────────────────────────────────────────────────────────────────────────────────────────┘
//! ┌ Runtimes ──────────────────────────────────────────────────────────────────────────────┐
//! │ unix:/run/agents.sock connected to … · what it has in force is shown                    │
//! └────────────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! One row per scope and runtime: what this dashboard wants beside what the
//! runtime has in force (scopes set elsewhere included). "applied" only for
//! what a connected runtime confirmed; a runtime that is down shows its last
//! known state as unconfirmed. Columns are dropped by priority when the
//! terminal is narrow; text is shortened with `…`, numbers never.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Clear, Paragraph, Row, Table, Wrap};

use crate::config::keys::Action;
use crate::sanitize::sanitize;

use super::ViewCx;
use super::widgets::block;
use crate::control::client::Link;
use crate::model::budget::{self, Limits, Scope};
use crate::ui::budgets::{BudgetEditor, FIELDS, ScopeState, Stage};
use crate::ui::format::{age, fit, tokens};

/// The text of a scope's state at a runtime, and how it is styled.
fn state_text(state: &ScopeState, cx: &ViewCx) -> (String, Style) {
    match state {
        ScopeState::Applied(v) => (format!("applied v{v}"), cx.theme.budget_ok),
        ScopeState::Pending { version, since_ms } => (
            match since_ms {
                Some(ms) => format!("pending v{version} ({} ago)", age(cx.now_ms - ms)),
                None => format!("pending v{version}"),
            },
            cx.theme.budget_warn,
        ),
        ScopeState::Rejected { version, reason } => (
            format!("rejected v{version}: {}", sanitize(reason)),
            cx.theme.error,
        ),
        ScopeState::Conflict { version, in_force } => (
            format!("v{version} refused: v{in_force} set by another controller"),
            cx.theme.error,
        ),
        ScopeState::Elsewhere(v) => (format!("v{v} set by another controller"), cx.theme.warning),
        ScopeState::Unconfirmed { last, waiting } => {
            let mut text = match last {
                Some(v) => format!("unconfirmed: last known v{v}"),
                None => "unconfirmed".to_owned(),
            };
            if let Some(v) = waiting {
                text.push_str(&format!(" · v{v} waits"));
            }
            (text, cx.theme.muted)
        }
        ScopeState::NotSet => ("not set".to_owned(), cx.theme.muted),
    }
}

/// A column of the budgets table.
struct Column {
    header: &'static str,
    /// Lower is kept longer when the terminal is narrow.
    priority: u8,
    /// Text that may be shortened with `…`, down to `min` cells.
    shrink_to: Option<usize>,
    cells: Vec<String>,
}

impl Column {
    fn width(&self) -> usize {
        self.cells
            .iter()
            .map(|c| c.chars().count())
            .chain([self.header.chars().count()])
            .max()
            .unwrap_or(0)
    }
}

/// Which columns fit in `width` (dropping the lowest priority first), and
/// their widths (text columns shortened last, never below their minimum).
fn fit_columns(columns: &[Column], width: usize) -> Vec<(usize, usize)> {
    let mut kept: Vec<usize> = (0..columns.len()).collect();
    let total = |kept: &[usize], widths: &dyn Fn(usize) -> usize| -> usize {
        kept.iter().map(|&i| widths(i)).sum::<usize>() + kept.len().saturating_sub(1)
    };
    let natural = |i: usize| columns[i].width();
    let least = |i: usize| {
        columns[i]
            .shrink_to
            .map_or(columns[i].width(), |m| m.min(columns[i].width()))
    };
    while kept.len() > 1 && total(&kept, &least) > width {
        let Some(drop) = kept
            .iter()
            .enumerate()
            .max_by_key(|&(_, &i)| columns[i].priority)
            .map(|(at, _)| at)
        else {
            break;
        };
        kept.remove(drop);
    }
    let mut widths: Vec<(usize, usize)> = kept.iter().map(|&i| (i, natural(i))).collect();
    let mut over = total(&kept, &natural).saturating_sub(width);
    // Shorten the widest text columns first.
    while over > 0 {
        let Some(slot) = widths
            .iter_mut()
            .filter(|(i, w)| *w > least(*i))
            .max_by_key(|(_, w)| *w)
        else {
            break;
        };
        slot.1 -= 1;
        over -= 1;
    }
    widths
}

/// Every scope: what this dashboard wants, what each runtime has in force,
/// its state there, and usage against the current limits.
pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let board = cx.budgets;
    let snap = &cx.data.snapshot;
    let runtime_lines = board.runtimes.len().max(1) + 1 + board.exceeded.len().min(2);
    let notes_height = u16::try_from(runtime_lines + 2).unwrap_or(6).min(8);
    let [table_area, notes] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(notes_height)]).areas(area);
    let edit_key = cx.keymap.describe(Action::EditBudget);
    let title = if board.readonly {
        "Budgets (read-only)".to_owned()
    } else {
        format!("Budgets · {edit_key}: edit global (agents, segments, runs: on their screens)")
    };
    let scopes = board.scopes();
    if scopes.is_empty() {
        render_empty(frame, table_area, cx, title);
    } else {
        render_table(frame, table_area, cx, title, &scopes);
    }

    let mut lines: Vec<Line> = Vec::new();
    for (addr, runtime) in &board.runtimes {
        let link = match &runtime.link {
            Link::Connecting => Span::styled(
                "connecting… (budgets shown are the last known, unconfirmed)",
                cx.theme.muted,
            ),
            Link::Connected {
                runtime: name,
                runtime_id,
            } => Span::styled(
                format!(
                    "connected to {} ({}){}",
                    sanitize(name),
                    sanitize(runtime_id),
                    if runtime.confirmed {
                        ""
                    } else {
                        " · asking what it has in force…"
                    }
                ),
                cx.theme.good,
            ),
            Link::Down { error, retry_in } => Span::styled(
                format!(
                    "down: {} — retrying in {:.0}s; its budgets are the last known, unconfirmed",
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
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block("Runtimes".into(), cx)),
        notes,
    );
}

/// No budget anywhere: say what to do.
fn render_empty(frame: &mut Frame, area: Rect, cx: &ViewCx, title: String) {
    let board = cx.budgets;
    let edit_key = cx.keymap.describe(Action::EditBudget);
    let mut lines = vec![
        Line::from(Span::styled(
            "No budget: none is in force at a runtime, none is wanted here.",
            cx.theme.text,
        )),
        Line::from(""),
    ];
    if board.readonly {
        lines.push(Line::from(Span::styled(
            "Read-only (--readonly): budgets cannot be edited from this dashboard.",
            cx.theme.muted,
        )));
    } else {
        lines.push(Line::from(vec![
            Span::styled("Press ", cx.theme.text),
            Span::styled(edit_key.clone(), cx.theme.accent),
            Span::styled(
                " here to set the global budget (a per-hop limit trims each hop's context; run limits stop a run).",
                cx.theme.text,
            ),
        ]));
        lines.push(Line::from(vec![
            Span::styled(
                "For one agent, segment or run: select it on its screen (3 Agents, 4 Segments, 2 Runs) and press ",
                cx.theme.text,
            ),
            Span::styled(edit_key, cx.theme.accent),
            Span::styled(".", cx.theme.text),
        ]));
    }
    if board.runtimes.is_empty() {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            "No runtime to push to: start tokwatch with --control ADDR (unix:PATH or tcp:127.0.0.1:PORT) \
             so budgets reach the runtime that enforces them; without it, changes are only saved here.",
            cx.theme.warning,
        )));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(title, cx)),
        area,
    );
}

fn render_table(frame: &mut Frame, area: Rect, cx: &ViewCx, title: String, scopes: &[Scope]) {
    let board = cx.budgets;
    let snap = &cx.data.snapshot;
    let addrs: Vec<&String> = board.runtimes.keys().collect();
    let several = addrs.len() > 1;
    let names = [
        "",
        "scope",
        "wanted here",
        "runtime",
        "in force at the runtime",
        "state",
        "largest hop",
        "worst run",
        "would breach",
    ];
    // Priorities: the marker, scope, what is in force and its state first.
    let priorities = [0, 1, 5, if several { 4 } else { 9 }, 2, 3, 6, 7, 8];
    let shrink = [
        None,
        Some(8),
        Some(10),
        Some(10),
        Some(12),
        Some(12),
        None,
        None,
        None,
    ];
    let mut columns: Vec<Column> = names
        .iter()
        .zip(priorities)
        .zip(shrink)
        .map(|((header, priority), shrink_to)| Column {
            header,
            priority,
            shrink_to,
            cells: Vec::new(),
        })
        .collect();
    let mut styles: Vec<Style> = Vec::new();
    for scope in scopes {
        let limits = board
            .current(scope)
            .map(|(b, _)| b.limits)
            .unwrap_or_default();
        let usage = board
            .usage
            .get(scope)
            .cloned()
            .unwrap_or_else(|| budget::usage(snap, scope, &limits));
        let over = usage.hops_over > 0 || usage.runs_over > 0;
        let wanted = board.desired.budgets.get(scope).map_or_else(
            || "—".to_owned(),
            |w| format!("{} v{}", w.limits.describe(), w.version),
        );
        let hop_usage = match limits.per_hop_limit {
            Some(limit) => format!("{} / {}", tokens(usage.largest_hop), tokens(limit)),
            None => tokens(usage.largest_hop),
        };
        let run_usage = match limits.total_run_limit {
            Some(limit) => format!("{} / {}", tokens(usage.worst_run_tokens), tokens(limit)),
            None => tokens(usage.worst_run_tokens),
        };
        let breach = format!("{} hops, {} runs", usage.hops_over, usage.runs_over);
        let per_runtime: Vec<(String, String, String, Style)> = if addrs.is_empty() {
            let text = if board.desired.budgets.contains_key(scope) {
                "saved here, no runtime"
            } else {
                "not set"
            };
            vec![(
                "—".to_owned(),
                "—".to_owned(),
                text.to_owned(),
                cx.theme.muted,
            )]
        } else {
            addrs
                .iter()
                .map(|addr| {
                    let runtime = &board.runtimes[*addr];
                    let in_force = runtime.in_force.get(scope).map_or_else(
                        || "none".to_owned(),
                        |b| format!("{} v{}", b.limits.describe(), b.version),
                    );
                    let (state, style) = state_text(&board.state(addr, scope), cx);
                    (sanitize(addr).into_owned(), in_force, state, style)
                })
                .collect()
        };
        for (n, (addr, in_force, state, style)) in per_runtime.into_iter().enumerate() {
            let first = n == 0;
            let cells = [
                if over && first { "!" } else { "" }.to_owned(),
                if first {
                    sanitize(&scope.to_string()).into_owned()
                } else {
                    String::new()
                },
                if first { wanted.clone() } else { String::new() },
                addr,
                in_force,
                state,
                if first {
                    hop_usage.clone()
                } else {
                    String::new()
                },
                if first {
                    run_usage.clone()
                } else {
                    String::new()
                },
                if first { breach.clone() } else { String::new() },
            ];
            for (column, cell) in columns.iter_mut().zip(cells) {
                column.cells.push(cell);
            }
            styles.push(if over && style == cx.theme.budget_ok {
                cx.theme.budget_over
            } else {
                style
            });
        }
    }
    let inner = usize::from(area.width.saturating_sub(2));
    // Leave room for the selection gutter ratatui's Table does not use here.
    let fitted = fit_columns(&columns, inner);
    let header = Row::new(
        fitted
            .iter()
            .map(|&(i, w)| Cell::from(fit(columns[i].header, w)))
            .collect::<Vec<_>>(),
    )
    .style(cx.theme.header);
    let rows: Vec<Row> = styles
        .iter()
        .enumerate()
        .map(|(r, style)| {
            Row::new(
                fitted
                    .iter()
                    .map(|&(i, w)| Cell::from(fit(&columns[i].cells[r], w)))
                    .collect::<Vec<_>>(),
            )
            .style(*style)
        })
        .collect();
    let widths: Vec<Constraint> = fitted
        .iter()
        .map(|&(_, w)| Constraint::Length(u16::try_from(w).unwrap_or(u16::MAX)))
        .collect();
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block(title, cx))
            .column_spacing(1),
        area,
    );
}

/// The editor's body (scrolls when the popup is short) and its footer (the
/// prompt or the key help, and the error: always visible).
fn editor_lines<'a>(
    cx: &ViewCx,
    editor: &'a BudgetEditor,
) -> (Vec<Line<'a>>, Vec<Line<'a>>, usize) {
    let mut body = vec![
        Line::from(Span::styled(
            format!("Budget for {}", sanitize(&editor.scope.to_string())),
            cx.theme.title,
        )),
        Line::from(vec![
            Span::styled("now  ", cx.theme.muted),
            Span::styled(
                match &editor.before {
                    Some(limits) => {
                        format!("{} — {}", limits.describe(), sanitize(&editor.before_from))
                    }
                    None => "no budget for this scope".to_owned(),
                },
                cx.theme.text,
            ),
        ]),
        Line::from(""),
    ];
    let first_field = body.len();
    let actions = [editor.hop_action.as_str(), editor.run_action.as_str()];
    for (i, label) in FIELDS.iter().enumerate() {
        let focused = i == editor.focus && editor.stage == Stage::Editing;
        let style = if focused {
            cx.theme.selected
        } else {
            cx.theme.text
        };
        let value = if i < 3 {
            let v = &editor.values[i];
            if v.is_empty() {
                let shown = match (editor.inherited_value(i), &editor.inherited_from) {
                    (Some(value), Some(from)) => format!("{value} (from {})", sanitize(from)),
                    _ => "— (not set)".to_owned(),
                };
                Span::styled(shown, if focused { style } else { cx.theme.muted })
            } else {
                Span::styled(v.clone(), style)
            }
        } else {
            Span::styled(format!("‹ {} ›", actions[i - 3]), style)
        };
        body.push(Line::from(vec![
            Span::styled(format!("{label:>30}  "), cx.theme.muted),
            value,
        ]));
    }
    let focus_line = first_field + editor.focus;
    let mut footer = Vec::new();
    match (&editor.stage, editor.limits()) {
        (Stage::Review { strict }, Ok(after)) => {
            body.push(Line::from(""));
            let before = editor
                .before
                .as_ref()
                .map_or_else(|| "no budget".to_owned(), Limits::describe);
            body.push(Line::from(vec![
                Span::styled("before  ", cx.theme.muted),
                Span::styled(before, cx.theme.text),
            ]));
            body.push(Line::from(vec![
                Span::styled("after   ", cx.theme.muted),
                Span::styled(after.describe(), cx.theme.accent),
            ]));
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
            body.push(Line::from(Span::styled(
                impact,
                if *strict {
                    cx.theme.budget_over
                } else {
                    cx.theme.text
                },
            )));
            let prompt = if *strict {
                "BELOW CURRENT USAGE — press Y (shift+y) to push anyway, any other key to edit, Esc to cancel"
            } else {
                "press y or Enter to push, any other key to edit, Esc to cancel"
            };
            footer.push(Line::from(Span::styled(
                prompt,
                if *strict {
                    cx.theme.warning
                } else {
                    cx.theme.accent
                },
            )));
        }
        _ => footer.push(Line::from(Span::styled(
            "type digits · +/- step · ←/→ action · ↑/↓ field · Enter review · Esc cancel (empty = inherited, not set here)",
            cx.theme.muted,
        ))),
    }
    if let Some(error) = &editor.error {
        footer.push(Line::from(Span::styled(
            sanitize(error).into_owned(),
            cx.theme.error,
        )));
    }
    (body, footer, focus_line)
}

/// The budget editor: the scope's limits now, the fields, then the diff and
/// what it would have breached. Sized after wrapping; the prompt and the
/// error stay visible at every size (the body scrolls instead).
pub(super) fn render_editor(frame: &mut Frame, area: Rect, cx: &ViewCx, editor: &BudgetEditor) {
    let (body, footer, focus_line) = editor_lines(cx, editor);
    let width = area.width.min(96);
    let inner = width.saturating_sub(2).max(1);
    let wrapped = |lines: &[Line]| {
        u16::try_from(
            Paragraph::new(lines.to_vec())
                .wrap(Wrap { trim: false })
                .line_count(inner),
        )
        .unwrap_or(u16::MAX)
    };
    let body_height = wrapped(&body);
    let footer_height = wrapped(&footer);
    let height = area
        .height
        .min(body_height.saturating_add(footer_height).saturating_add(2));
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let inside = popup.inner(ratatui::layout::Margin::new(1, 1));
    let footer_rows = footer_height.min(inside.height);
    let [body_area, footer_area] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(footer_rows)]).areas(inside);
    // Scroll the body: to the end when reviewing (the diff and its impact),
    // else so that the focused field is in view.
    let hidden = body_height.saturating_sub(body_area.height);
    let scroll = match editor.stage {
        Stage::Review { .. } => hidden,
        Stage::Editing => {
            let focus_at = wrapped(&body[..=focus_line]);
            focus_at.saturating_sub(body_area.height).min(hidden)
        }
    };
    let title = if hidden > 0 {
        format!(
            "Edit budget · {} of {} lines, scrolled",
            body_area.height, body_height
        )
    } else {
        "Edit budget".to_owned()
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        block(title, cx).border_style(cx.theme.border_focused),
        popup,
    );
    frame.render_widget(
        Paragraph::new(body)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        body_area,
    );
    frame.render_widget(
        Paragraph::new(footer).wrap(Wrap { trim: false }),
        footer_area,
    );
}
