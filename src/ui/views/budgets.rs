//! The Budgets screen and the budget editor popup.
//!
//! ```text
//! ┌ Budgets · 4 rows · b: edit the selected scope ─────────────────────────────────────────┐
//! │  scope         wanted here          in force at the runtime  state            largest hop │
//! │! global        v2 per-hop 20000 (…  v3 per-hop 9000 (trim)   v3 set by another… 40.2k / 9.0k │
//! │  agent writer  —                    v1 per-hop 7000 (trim)   v1 set by another… 38.0k / 7.0k │  ← selected
//! └────────────────────────────────────────────────────────────────────────────────────────┘
//! ┌ Runtimes ──────────────────────────────────────────────────────────────────────────────┐
//! │ unix:/run/agents.sock connected to … · what it has in force is shown                    │
//! └────────────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! One row per scope and runtime: what this dashboard wants beside what the
//! runtime has in force (scopes set elsewhere included). "applied" only for
//! what a connected runtime confirmed; a runtime that is down shows its last
//! known state as unconfirmed. The rows are a list like the others (a
//! selection, paging, the filter on scope names); `b` edits the selected
//! row's scope. Drawn with the shared [`DataTable`]: what is wanted here and
//! usage are dropped before what is in force and its state are shortened;
//! text is shortened with `…`, a limit never.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use crate::config::keys::Action;
use crate::sanitize::sanitize;

use super::table::{Column, DataTable, TableCell};
use super::widgets::{block, window};
use super::{ViewCx, list_rows};
use crate::control::client::Link;
use crate::model::budget::{self, Limits, Scope};
use crate::ui::budgets::{BudgetEditor, BudgetRow, FIELDS, ScopeState, Stage};
use crate::ui::format::{age, dollars, tokens};

/// The text of a scope's state at a runtime, and how it is styled.
fn state_text(state: &ScopeState, scope: &Scope, cx: &ViewCx) -> (String, Style) {
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
            match cx.budgets.refused.get(scope) {
                Some(asked) => format!(
                    "v{version} refused · yours {} · v{in_force} set by another controller",
                    asked.describe()
                ),
                None => format!("v{version} refused: v{in_force} set by another controller"),
            },
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

/// A budget in a table cell, as parts: its version with the first limit,
/// then each other limit (`v3 per-hop 9000 (trim)`, `run $0.50 (abort)`).
fn brief(version: u64, limits: &Limits) -> Vec<String> {
    let mut parts: Vec<String> = limits.describe().split(" · ").map(str::to_owned).collect();
    if let Some(first) = parts.first_mut() {
        *first = format!("v{version} {first}");
    }
    parts
}

/// The runtimes panel's lines, and how many of them must stay (the
/// notifications after them are left out when they do not fit).
fn runtime_lines(cx: &ViewCx) -> (Vec<Line<'static>>, usize) {
    let board = cx.budgets;
    let snap = &cx.data.snapshot;
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
    let fixed = lines.len();
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
    (lines, fixed)
}

/// The table's area, the runtimes panel's area below it (as tall as its
/// wrapped lines, at most a third: notifications that do not fit whole are
/// left out) and that panel's lines.
fn split(area: Rect, cx: &ViewCx) -> (Rect, Rect, Vec<Line<'static>>) {
    let (mut lines, fixed) = runtime_lines(cx);
    let most = usize::from((area.height / 3).max(4)) - 2;
    let wrapped = |lines: &[Line]| {
        Paragraph::new(lines.to_vec())
            .wrap(Wrap { trim: false })
            .line_count(area.width.saturating_sub(2))
    };
    while lines.len() > fixed && wrapped(&lines) > most {
        lines.pop();
    }
    let notes_height = u16::try_from(wrapped(&lines).min(most) + 2).unwrap_or(u16::MAX);
    let [table, notes] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(notes_height)]).areas(area);
    (table, notes, lines)
}

/// Rows of the budgets table shown at once in the screen's `area` (a page).
pub(super) fn page_rows(area: Rect, cx: &ViewCx) -> usize {
    list_rows(split(area, cx).0.height)
}

/// Every scope at every runtime, one selectable row each: what this
/// dashboard wants, what the runtime has in force, its state there, and
/// usage against the current limits; the runtimes below.
pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let board = cx.budgets;
    let (table_area, notes, lines) = split(area, cx);
    let rows = board.rows(&cx.view.filter);
    let listed = board.listed().len() * board.runtimes.len().max(1);
    let mut title = "Budgets".to_owned();
    if board.readonly {
        title.push_str(" (read-only)");
    }
    let listed_rows = super::chrome::count(u64::try_from(listed).unwrap_or(u64::MAX), "row");
    if rows.len() == listed && listed > 0 {
        title.push_str(&format!(" · {listed_rows}"));
    } else if listed > 0 {
        title.push_str(&format!(" · {} of {listed_rows}", rows.len()));
    }
    if !board.readonly {
        let what = if rows.is_empty() {
            "edit the global budget"
        } else {
            "edit the selected scope"
        };
        title.push_str(&format!(
            " · {}: {what}",
            cx.keymap.describe(Action::EditBudget)
        ));
    }
    if listed == 0 {
        render_empty(frame, table_area, cx, title);
    } else if rows.is_empty() {
        render_no_match(frame, table_area, cx, title);
    } else {
        render_table(frame, table_area, cx, title, &rows);
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

/// Budgets there are, but the filter hides them all.
fn render_no_match(frame: &mut Frame, area: Rect, cx: &ViewCx, title: String) {
    let mut lines = vec![Line::from(vec![
        Span::styled("No scope matches the filter ", cx.theme.text),
        Span::styled(
            format!("\"{}\"", sanitize(&cx.view.filter)),
            cx.theme.accent,
        ),
        Span::styled(
            format!(" ({} clears it).", cx.keymap.describe(Action::Back)),
            cx.theme.text,
        ),
    ])];
    if !cx.budgets.readonly {
        lines.push(Line::from(vec![
            Span::styled("Press ", cx.theme.text),
            Span::styled(cx.keymap.describe(Action::EditBudget), cx.theme.accent),
            Span::styled(" to edit the global budget.", cx.theme.text),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(title, cx)),
        area,
    );
}

/// The rows in view, the selected one highlighted. A scope's name, what is
/// wanted for it and its usage are on its first row (and on the first row
/// in view); its other rows are the same scope at other runtimes.
fn render_table(frame: &mut Frame, area: Rect, cx: &ViewCx, title: String, rows: &[BudgetRow]) {
    let board = cx.budgets;
    let snap = &cx.data.snapshot;
    let several = board.runtimes.len() > 1;
    let visible = list_rows(area.height);
    let cursor = cx.view.cursor();
    let selected = cursor
        .selected
        .as_ref()
        .and_then(|key| rows.iter().position(|r| r.key() == *key))
        .unwrap_or(0);
    let offset = window(selected, cursor.offset, visible, rows.len());
    // What is in force and its state (and, with several runtimes, which
    // runtime) claim room: what is wanted here and usage go first, usage
    // first of all; numbers are never cut.
    let mut runtime = Column::text("runtime", if several { 2 } else { 9 }, 8, 28);
    if several {
        runtime = runtime.wants(18);
    }
    let mut table = DataTable::new(vec![
        Column::text("", 0, 1, 1),
        Column::text("scope", 0, 8, 30).wants(24),
        // shorter than a limit or two is not worth showing
        Column::text("wanted here", 4, 20, 32),
        runtime,
        Column::text("in force at the runtime", 1, 12, 60).wants(24),
        // a long reason: whole only once every other column has its room
        Column::text("state", 1, 12, 36).wants(28),
        Column::number("largest hop", 5),
        Column::number("worst run", 6),
        Column::number("would breach", 7),
    ])
    .header_style(cx.theme.header);
    for (position, row) in rows.iter().enumerate().skip(offset).take(visible) {
        let scope = &row.scope;
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
        let (addr, in_force, (state, style)) = match &row.runtime {
            None => {
                let text = if board.desired.budgets.contains_key(scope) {
                    "saved here, no runtime"
                } else {
                    "not set"
                };
                (
                    "—".to_owned(),
                    vec!["—".to_owned()],
                    (text.to_owned(), cx.theme.muted),
                )
            }
            Some(addr) => (
                sanitize(addr).into_owned(),
                board
                    .runtimes
                    .get(addr)
                    .and_then(|r| r.in_force.get(scope))
                    .map_or_else(|| vec!["none".to_owned()], |b| brief(b.version, &b.limits)),
                state_text(&board.state(addr, scope), scope, cx),
            ),
        };
        // the scope's first row, or the first in view
        let head = position == offset || rows[position - 1].scope != *scope;
        let cells = if head {
            let wanted = board
                .desired
                .budgets
                .get(scope)
                .map_or_else(|| vec!["—".to_owned()], |w| brief(w.version, &w.limits));
            let hop_usage = match limits.per_hop_limit {
                Some(limit) => format!("{} / {}", tokens(usage.largest_hop), tokens(limit)),
                None => tokens(usage.largest_hop),
            };
            let run_usage = match limits.total_run_limit {
                Some(limit) => format!("{} / {}", tokens(usage.worst_run_tokens), tokens(limit)),
                None => tokens(usage.worst_run_tokens),
            };
            vec![
                TableCell::text(if over { "!" } else { "" }),
                TableCell::text(sanitize(&scope.to_string())),
                TableCell::parts(wanted),
                TableCell::text(addr),
                TableCell::parts(in_force),
                TableCell::parts(state.split(" · ").map(str::to_owned).collect()),
                TableCell::number(hop_usage),
                TableCell::number(run_usage),
                TableCell::number(format!(
                    "{} hops, {} runs",
                    usage.hops_over, usage.runs_over
                )),
            ]
        } else {
            vec![
                TableCell::text(""),
                TableCell::text(""),
                TableCell::text(""),
                TableCell::text(addr),
                TableCell::parts(in_force),
                TableCell::parts(state.split(" · ").map(str::to_owned).collect()),
            ]
        };
        let style = if position == selected {
            cx.theme.selected
        } else if over && style == cx.theme.budget_ok {
            cx.theme.budget_over
        } else {
            style
        };
        table.row(cells, style);
    }
    table.render(frame, area, block(title, cx));
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
    ];
    // Another controller moved the scope on while the editor is open: the
    // change is based on an older version and will be refused.
    let moved = cx.budgets.newer_than(&editor.scope, editor.base_version);
    if let Some((theirs, addr)) = moved {
        body.push(Line::from(vec![
            Span::styled("in force now  ", cx.theme.muted),
            Span::styled(
                format!(
                    "v{} {} at {} — set by another controller since the editor opened",
                    theirs.version,
                    sanitize(&theirs.limits.describe()),
                    sanitize(addr)
                ),
                cx.theme.warning,
            ),
        ]));
    }
    body.push(Line::from(""));
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
        (Stage::Review { strict, usage }, Ok(after)) => {
            body.push(Line::from(""));
            let before = editor.before.as_ref().map_or_else(
                || "no budget".to_owned(),
                |l| sanitize(&l.describe()).into_owned(),
            );
            let based = if editor.base_version > 0 {
                format!(" (v{}, what this change is based on)", editor.base_version)
            } else {
                String::new()
            };
            body.push(Line::from(vec![
                Span::styled("before  ", cx.theme.muted),
                Span::styled(format!("{before}{based}"), cx.theme.text),
            ]));
            body.push(Line::from(vec![
                Span::styled("after   ", cx.theme.muted),
                Span::styled(after.describe(), cx.theme.accent),
            ]));
            // The worst run in the unit of the run limits set: tokens,
            // dollars, or both.
            let mut worst = Vec::new();
            if after.total_run_limit.is_some() || after.run_cost_limit_usd.is_none() {
                worst.push(format!("{} tokens", tokens(usage.worst_run_tokens)));
            }
            if after.run_cost_limit_usd.is_some() {
                worst.push(dollars(usage.worst_run_cost));
            }
            let impact = format!(
                "would have breached {} of {} hops and {} of {} runs seen (largest hop {}, worst run {})",
                usage.hops_over,
                usage.hops,
                usage.runs_over,
                usage.runs,
                tokens(usage.largest_hop),
                worst.join(" · ")
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
    if let Some((theirs, _)) = moved {
        footer.push(Line::from(Span::styled(
            format!(
                "changed by another controller: v{} {} — your change is based on v{} and will be refused; Esc, then b to start from it",
                theirs.version,
                sanitize(&theirs.limits.describe()),
                editor.base_version
            ),
            cx.theme.warning,
        )));
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use std::time::Duration;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use crate::config::keys::Action;
    use crate::config::keys::{Bindings, Keymap};
    use crate::control::client::{ClientEvent, Link, Outcome};
    use crate::control::protocol::{Exceeded, VersionedBudget};

    use crate::model::budget::{BreachAction, Limits, Scope};

    use crate::ui::budgets::{BudgetBoard, BudgetEditor, EditorInput};
    use crate::ui::data::{Published, Rows};
    use crate::ui::state::{Screen, Tab, ViewState};
    use crate::ui::theme::Theme;
    use crate::ui::update::{Input, update};
    use crate::ui::views::table::fit_parts;
    use crate::ui::views::{ViewCx, list_page, list_rows, render};
    use ratatui::layout::Rect;

    /// 2026-11-27T09:01:00Z: one minute after the last sample event.
    const NOW_MS: i64 = 1_796_202_100_000;
    const SIZES: [(u16, u16); 3] = [(80, 24), (120, 30), (200, 60)];
    const UP: &str = "unix:/run/agents/a.sock";
    const DOWN: &str = "tcp:127.0.0.1:7701";

    fn published() -> Published {
        Published {
            last_event_ms: Some(NOW_MS - 4_000),
            ..crate::ui::data::test_support::sample()
        }
    }

    fn hop(n: u64) -> Limits {
        Limits {
            per_hop_limit: Some(n),
            on_hop_breach: Some(BreachAction::Trim),
            ..Limits::default()
        }
    }

    fn theirs(scope: Scope, version: u64, limits: Limits) -> VersionedBudget {
        VersionedBudget {
            scope,
            version,
            base_version: None,
            idempotency_key: Some(format!("theirs-{version}")),
            limits,
        }
    }

    /// Two runtimes: one up with budgets in every state, one down (its last
    /// known state unconfirmed).
    fn board(data: &Published) -> BudgetBoard {
        let mut board = BudgetBoard::default();
        let global = board.desired.set(Scope::Global, hop(20_000), 1);
        let pro = board.desired.set(
            Scope::Segment("naive/pro".into()),
            Limits {
                total_run_limit: Some(120_000),
                run_cost_limit_usd: Some("0.50".into()),
                on_run_breach: Some(BreachAction::Abort),
                ..Limits::default()
            },
            0,
        );
        board.desired.set(Scope::Agent("critic".into()), hop(13), 0);
        board
            .desired
            .set(Scope::Segment("lean/free".into()), hop(4000), 0);
        board
            .pending_since
            .insert(Scope::Segment("lean/free".into()), NOW_MS - 7_000);
        for (addr, runtime_id) in [(UP, "demo-1"), (DOWN, "py-2")] {
            board.apply(ClientEvent::Link {
                addr: addr.into(),
                link: Link::Connected {
                    runtime: "tokwatch-demo 0.1.0".into(),
                    runtime_id: runtime_id.into(),
                },
            });
        }
        board.apply(ClientEvent::State {
            addr: UP.into(),
            budgets: vec![
                global.clone(),
                pro.clone(),
                theirs(Scope::Agent("writer".into()), 3, hop(9000)),
            ],
        });
        board.apply(ClientEvent::State {
            addr: DOWN.into(),
            budgets: vec![theirs(Scope::Global, 1, hop(9000))],
        });
        board.apply(ClientEvent::Outcome {
            addr: UP.into(),
            scope: Scope::Agent("critic".into()),
            version: 1,
            outcome: Outcome::Nack {
                reason: "per_hop_limit (13) is below this runtime's minimum (1000)".into(),
                applied_version: 0,
            },
        });
        board.apply(ClientEvent::Link {
            addr: DOWN.into(),
            link: Link::Down {
                error: "connection refused".into(),
                retry_in: Duration::from_secs(8),
            },
        });
        board.apply(ClientEvent::Exceeded {
            addr: UP.into(),
            exceeded: Exceeded {
                run_id: "naive-0042".into(),
                hop: Some(4),
                agent: Some("writer".into()),
                segment: Some("naive/pro".into()),
                limit_kind: "per_hop".into(),
                limit: Some(9000),
                tokens: Some(12_400),
                action: "trim".into(),
                ts: None,
            },
        });
        board.refresh_usage(&data.snapshot);
        board
    }

    fn draw(data: &Published, board: &BudgetBoard, view: &ViewState, (w, h): (u16, u16)) -> String {
        let keymap = Keymap::new(&Bindings::default()).unwrap();
        let theme = Theme::builtin("dark").unwrap();
        let view = ViewState {
            page_rows: list_rows(h - 2),
            ..view.clone()
        };
        let rows = Rows::compute(data, view.screen(), &view);
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal
            .draw(|frame| {
                render(
                    frame,
                    &ViewCx {
                        data,
                        view: &view,
                        theme: &theme,
                        keymap: &keymap,
                        rows: &rows,
                        now_ms: NOW_MS,
                        budgets: board,
                    },
                );
            })
            .unwrap();
        terminal.backend().to_string()
    }

    fn budgets_view() -> ViewState {
        ViewState {
            root: Tab::Budgets,
            stack: vec![Screen::Tab(Tab::Budgets)],
            ..ViewState::default()
        }
    }

    #[test]
    fn the_budgets_screen_lists_what_each_runtime_has_in_force_beside_what_is_wanted() {
        let data = published();
        let board = board(&data);
        for size in SIZES {
            let screen = draw(&data, &board, &budgets_view(), size);
            insta::assert_snapshot!(format!("budgets_{}x{}", size.0, size.1), screen);
            for shown in ["global", "applied v2", "unconfirmed"] {
                assert!(screen.contains(shown), "{size:?}: {shown}\n{screen}");
            }
        }
        let wide = draw(&data, &board, &budgets_view(), (200, 60));
        for shown in [
            "v3 per-hop 9000 (trim)",
            "v3 set by another controller",
            "rejected v1: per_hop_limit (13)",
            "pending v1 (7s ago)",
            "unconfirmed: last known v1",
            "unconfirmed · v1 waits",
        ] {
            assert!(wide.contains(shown), "{shown}\n{wide}");
        }
    }

    #[test]
    fn a_refusal_says_what_was_refused_at_80_columns() {
        let data = published();
        let mut board = BudgetBoard::default();
        board.apply(ClientEvent::Link {
            addr: UP.into(),
            link: Link::Connected {
                runtime: "tokwatch-demo 0.1.0".into(),
                runtime_id: "demo-1".into(),
            },
        });
        board.apply(ClientEvent::State {
            addr: UP.into(),
            budgets: vec![theirs(Scope::Global, 100, hop(4000))],
        });
        let ours = board.change(Scope::Global, hop(25_000), 99);
        board.apply(ClientEvent::Outcome {
            addr: UP.into(),
            scope: Scope::Global,
            version: ours.version,
            outcome: Outcome::Conflict {
                reason: "based on v99, v100 is in force".into(),
                applied_version: 100,
                limits: Some(hop(4000)),
            },
        });
        // the refused change was replaced by theirs: the screen still says
        // what this dashboard asked for
        let screen = draw(&data, &board, &budgets_view(), (80, 24));
        assert!(screen.contains("refused"), "{screen}");
        assert!(screen.contains("25000"), "what was refused:\n{screen}");
        // a new change of the scope ends the refusal's story
        board.change(Scope::Global, hop(6000), 100);
        assert!(!board.refused.contains_key(&Scope::Global));
    }

    /// The Budgets screen after `inputs`, as the app runs them: the page of
    /// the list measured from the screen before each.
    fn after(
        data: &Published,
        board: &BudgetBoard,
        inputs: &[Input],
        (w, h): (u16, u16),
    ) -> ViewState {
        let keymap = Keymap::new(&Bindings::default()).unwrap();
        let theme = Theme::builtin("dark").unwrap();
        let mut view = ViewState {
            page_rows: list_rows(h - 2),
            ..budgets_view()
        };
        for input in inputs {
            let rows = Rows::compute(data, view.screen(), &view);
            let page = list_page(
                Rect::new(0, 0, w, h),
                &ViewCx {
                    data,
                    view: &view,
                    theme: &theme,
                    keymap: &keymap,
                    rows: &rows,
                    now_ms: NOW_MS,
                    budgets: board,
                },
            );
            view.list_page = page.map(|rows| (view.screen().clone(), rows));
            update(&mut view, input.clone(), data, board);
        }
        view
    }

    /// Many scopes at one runtime: more rows than the screen holds.
    fn long_board(data: &Published) -> BudgetBoard {
        let mut board = BudgetBoard::default();
        board.desired.set(Scope::Global, hop(20_000), 0);
        board.apply(ClientEvent::Link {
            addr: UP.into(),
            link: Link::Connected {
                runtime: "tokwatch-demo 0.1.0".into(),
                runtime_id: "demo-1".into(),
            },
        });
        board.apply(ClientEvent::State {
            addr: UP.into(),
            budgets: (0..40)
                .map(|i| theirs(Scope::Agent(format!("agent-{i:02}")), 2, hop(9000 + i)))
                .collect(),
        });
        board.refresh_usage(&data.snapshot);
        board
    }

    #[test]
    fn a_long_budgets_list_scrolls_to_the_selected_row_and_highlights_it() {
        let data = published();
        let board = long_board(&data);
        let theme = Theme::builtin("dark").unwrap();
        for size in [(80, 24), (120, 30), (200, 60)] {
            // down to the last row but ten, then the wheel up three rows
            let mut inputs = vec![Input::Action(Action::Down); 30];
            inputs.push(Input::Scroll(-3));
            let view = after(&data, &board, &inputs, size);
            let screen = draw(&data, &board, &view, size);
            if size == (80, 24) {
                insta::assert_snapshot!("budgets_scrolled_80x24", screen);
                // scrolled as the cursor went down, held still as it came
                // back up: agent-15 to agent-29 in view, agent-26 selected
                assert!(screen.contains("agent agent-15"), "{screen}");
                assert!(!screen.contains("agent agent-14"), "{screen}");
            }
            // row 27 of 41: agent-26, in view; the first rows scrolled away
            // (at 200×60 all 41 fit)
            let lines: Vec<&str> = screen.lines().collect();
            let at = lines
                .iter()
                .position(|l| l.contains("agent agent-26"))
                .unwrap_or_else(|| panic!("{size:?}: the selected row is shown\n{screen}"));
            assert!(screen.contains("v2 per-hop 9026 (trim)"), "{screen}");
            if size.1 < 60 {
                assert!(!screen.contains("agent agent-00"), "{screen}");
            }
            assert!(screen.contains("41 rows"), "{screen}");
            // highlighted: the selected style on the row, not on its neighbours
            let row = u16::try_from(at).unwrap();
            let style = |y: u16| cell_style(&data, &board, &view, size, (3, y));
            assert_eq!(style(row).bg, theme.selected.bg, "{size:?}\n{screen}");
            assert_ne!(style(row + 1).bg, theme.selected.bg, "{size:?}\n{screen}");
            assert_ne!(style(row - 1).bg, theme.selected.bg, "{size:?}\n{screen}");
        }
    }

    #[test]
    fn the_filter_narrows_the_budgets_to_matching_scope_names() {
        let data = published();
        let board = board(&data);
        let mut view = budgets_view();
        view.filter = "WRITER".into();
        let screen = draw(&data, &board, &view, (80, 24));
        assert!(screen.contains("2 of 10 rows"), "{screen}");
        assert!(screen.contains("agent writer"), "{screen}");
        assert!(!screen.contains("global "), "{screen}");
        view.filter = "nobody".into();
        let screen = draw(&data, &board, &view, (80, 24));
        assert!(screen.contains("0 of 10 rows"), "{screen}");
        assert!(
            screen.contains("No scope matches the filter \"nobody\" (esc clears it).")
                && screen.contains("Press b to edit the global budget."),
            "{screen}"
        );
    }

    /// The style of the cell at `(x, y)`.
    fn cell_style(
        data: &Published,
        board: &BudgetBoard,
        view: &ViewState,
        (w, h): (u16, u16),
        (x, y): (u16, u16),
    ) -> ratatui::style::Style {
        let keymap = Keymap::new(&Bindings::default()).unwrap();
        let theme = Theme::builtin("dark").unwrap();
        let rows = Rows::compute(data, view.screen(), view);
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal
            .draw(|frame| {
                render(
                    frame,
                    &ViewCx {
                        data,
                        view,
                        theme: &theme,
                        keymap: &keymap,
                        rows: &rows,
                        now_ms: NOW_MS,
                        budgets: board,
                    },
                );
            })
            .unwrap();
        terminal.backend().buffer()[(x, y)].style()
    }

    #[test]
    fn an_empty_budgets_screen_says_what_to_do() {
        let data = published();
        let board = BudgetBoard::default();
        let screen = draw(&data, &board, &budgets_view(), (80, 24));
        insta::assert_snapshot!("budgets_empty_80x24", screen);
        assert!(
            screen.contains("Press b") && screen.contains("--control"),
            "{screen}"
        );
    }

    /// The editor for `scope` after `keys`.
    fn editor(
        data: &Published,
        board: &BudgetBoard,
        scope: Scope,
        keys: &[EditorInput],
    ) -> ViewState {
        let mut editor = BudgetEditor::new(scope.clone(), board.editor_start(&scope));
        for key in keys {
            editor.input(key.clone(), &data.snapshot);
        }
        let mut view = budgets_view();
        view.editor = Some(editor);
        view
    }

    fn typed(text: &str) -> Vec<EditorInput> {
        text.chars().map(EditorInput::Char).collect()
    }

    #[test]
    fn the_editor_prompt_and_errors_stay_visible_at_every_size() {
        let data = published();
        let board = board(&data);
        let writer = Scope::Agent("writer".into());
        // From the limits in force (set by another controller), raised: the
        // ordinary prompt.
        let mut keys = vec![EditorInput::Backspace; 4];
        keys.extend(typed("90000"));
        keys.push(EditorInput::Enter);
        let review = editor(&data, &board, writer.clone(), &keys);
        // Per-hop 90000 above a run limit of 60000: refused with the reason.
        let mut keys = typed("90000");
        keys.push(EditorInput::Down);
        keys.extend(typed("60000"));
        keys.push(EditorInput::Enter);
        let invalid = editor(&data, &board, Scope::Agent("researcher".into()), &keys);
        // Below current usage: Y needed, and y says so.
        let mut keys = vec![EditorInput::Backspace; 5];
        keys.extend(typed("1000"));
        keys.push(EditorInput::Enter);
        keys.push(EditorInput::Confirm { strict: false });
        let strict = editor(&data, &board, Scope::Global, &keys);
        // An agent without its own limits: the inherited ones, as such.
        let inherited = editor(&data, &board, Scope::Agent("planner".into()), &[]);
        for size in SIZES {
            let (w, h) = size;
            let screen = draw(&data, &board, &review, size);
            insta::assert_snapshot!(format!("editor_review_{w}x{h}"), screen);
            assert!(screen.contains("press y or Enter"), "{size:?}\n{screen}");
            assert!(screen.contains("· set by"), "{size:?}\n{screen}");

            let screen = draw(&data, &board, &invalid, size);
            insta::assert_snapshot!(format!("editor_invalid_{w}x{h}"), screen);
            assert!(
                screen.contains("per_hop_limit (90000) exceeds total_run_limit"),
                "{size:?}\n{screen}"
            );

            let screen = draw(&data, &board, &strict, size);
            insta::assert_snapshot!(format!("editor_below_usage_{w}x{h}"), screen);
            assert!(screen.contains("BELOW CURRENT USAGE"), "{size:?}\n{screen}");
            assert!(
                screen.contains("below current usage: press Y (shift+y) to confirm"),
                "{size:?}\n{screen}"
            );

            let screen = draw(&data, &board, &inherited, size);
            insta::assert_snapshot!(format!("editor_inherited_{w}x{h}"), screen);
            assert!(screen.contains("20000 (from global)"), "{size:?}\n{screen}");
        }
    }

    /// Drawing shows the usage the review measured, and measures nothing:
    /// drawn over data without a single run, a review measured on the
    /// sample still shows the sample's breaches (measuring while drawing
    /// cost more than a frame at 10k runs, every frame of the review).
    #[test]
    fn the_review_draws_what_was_measured_not_what_drawing_would_measure() {
        let data = published();
        let board = board(&data);
        let mut keys = vec![EditorInput::Backspace; 5];
        keys.extend(typed("1000"));
        keys.push(EditorInput::Enter);
        let view = editor(&data, &board, Scope::Global, &keys);
        let measured = draw(&data, &board, &view, (200, 60));
        assert!(
            measured.contains("would have breached 395 of 396 hops"),
            "{measured}"
        );
        let mut empty = published();
        empty.snapshot = crate::model::Ledger::new(
            crate::pricing::PriceBook::embedded(),
            crate::model::LedgerConfig::default(),
        )
        .snapshot()
        .into();
        let screen = draw(&empty, &board, &view, (200, 60));
        assert!(
            screen.contains("would have breached 395 of 396 hops"),
            "{screen}"
        );
        // measured again on the new data: now it says so
        let mut view = view;
        view.editor.as_mut().unwrap().measure(&empty.snapshot);
        let screen = draw(&empty, &board, &view, (200, 60));
        assert!(
            screen.contains("would have breached 0 of 0 hops and 0 of 0 runs"),
            "{screen}"
        );
    }

    #[test]
    fn shortened_cells_never_cut_a_number() {
        let limits = Limits {
            total_run_limit: Some(120_000),
            run_cost_limit_usd: Some("0.50".into()),
            on_run_breach: Some(BreachAction::Abort),
            ..Limits::default()
        };
        let parts = super::brief(1, &limits);
        let text = "v1 run 120000 tokens (abort) · run $0.50 (abort)";
        assert_eq!(fit_parts(&parts, 60), text);
        assert_eq!(fit_parts(&parts, 32), "v1 run 120000 tokens (abort) …");
        assert_eq!(fit_parts(&parts, 20), "v1 run 120000…");
        assert_eq!(fit_parts(&parts, 12), "v1 run…");
        let state = [
            "unconfirmed: last known v1".to_owned(),
            "v2 waits".to_owned(),
        ];
        assert_eq!(fit_parts(&state, 30), "unconfirmed: last known v1 …");
    }

    #[test]
    fn a_short_terminal_scrolls_the_editor_body_and_keeps_the_prompt() {
        let data = published();
        let board = board(&data);
        let mut keys = vec![EditorInput::Backspace; 5];
        keys.extend(typed("1000"));
        keys.push(EditorInput::Enter);
        let strict = editor(&data, &board, Scope::Global, &keys);
        let screen = draw(&data, &board, &strict, (60, 12));
        assert!(screen.contains("scrolled"), "{screen}");
        assert!(screen.contains("press Y"), "{screen}");
    }
}
