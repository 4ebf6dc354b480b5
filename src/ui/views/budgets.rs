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
    /// Text that may be shortened with `…`: (fewest cells, most cells it
    /// takes before others are dropped).
    shrink: Option<(usize, usize)>,
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

/// `text` in `width` cells: whole ` · `-separated parts while they fit,
/// then `…`; a first part too long is cut at a word boundary. So a number is
/// shown whole or not at all.
fn fit_parts(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    for part in text.split(" · ") {
        let candidate = if out.is_empty() {
            part.to_owned()
        } else {
            format!("{out} · {part}")
        };
        if candidate.chars().count() + 2 > width {
            break;
        }
        out = candidate;
    }
    if !out.is_empty() {
        return format!("{out} …");
    }
    let mut words = String::new();
    for word in text.split(' ') {
        let candidate = if words.is_empty() {
            word.to_owned()
        } else {
            format!("{words} {word}")
        };
        if candidate.chars().count() + 1 > width {
            break;
        }
        words = candidate;
    }
    if words.is_empty() {
        fit(text, width)
    } else {
        format!("{words}…")
    }
}

/// A budget in a table cell: its version first, then each limit.
fn brief(version: u64, limits: &Limits) -> String {
    format!("v{version} {}", limits.describe())
}

/// Columns of this priority or better are kept while they fit shortened.
const ESSENTIAL: u8 = 3;
/// Usage columns (largest hop, worst run, would breach) have this priority
/// or lower: they are dropped before an essential column is shortened.
const USAGE: u8 = 5;
/// Essential text up to this many cells is worth dropping usage columns for.
const WHOLE_UP_TO: usize = 40;

/// Which columns fit in `width`, and their widths: the lowest priority is
/// dropped first while the rest does not fit whole (essential columns only
/// when they do not fit even shortened); then text is shortened, never
/// below a column's minimum.
fn fit_columns(columns: &[Column], width: usize) -> Vec<(usize, usize)> {
    let mut kept: Vec<usize> = (0..columns.len()).collect();
    let total = |kept: &[usize], widths: &dyn Fn(usize) -> usize| -> usize {
        kept.iter().map(|&i| widths(i)).sum::<usize>() + kept.len().saturating_sub(1)
    };
    let natural = |i: usize| {
        columns[i]
            .shrink
            .map_or(columns[i].width(), |(_, most)| most.min(columns[i].width()))
    };
    let least = |i: usize| {
        columns[i].shrink.map_or(columns[i].width(), |(fewest, _)| {
            fewest.min(columns[i].width())
        })
    };
    let lowest = |kept: &[usize], above: u8| {
        kept.iter()
            .enumerate()
            .filter(|&(_, &i)| columns[i].priority > above)
            .max_by_key(|&(_, &i)| columns[i].priority)
            .map(|(at, _)| at)
    };
    while total(&kept, &natural) > width {
        let Some(drop) = lowest(&kept, ESSENTIAL) else {
            break;
        };
        kept.remove(drop);
    }
    while kept.len() > 1 && total(&kept, &least) > width {
        let Some(drop) = lowest(&kept, 0) else {
            break;
        };
        kept.remove(drop);
    }
    // Widths: capped, then what is left goes to the capped columns, most
    // important first, up to their whole width; then the widest text
    // columns are shortened until the row fits.
    let assign = |kept: &[usize]| -> Vec<(usize, usize)> {
        let mut widths: Vec<(usize, usize)> = kept.iter().map(|&i| (i, natural(i))).collect();
        let mut spare = width.saturating_sub(total(kept, &natural));
        let mut by_priority: Vec<&mut (usize, usize)> = widths.iter_mut().collect();
        by_priority.sort_by_key(|(i, _)| columns[*i].priority);
        for (i, w) in by_priority {
            let grow = columns[*i].width().saturating_sub(*w).min(spare);
            *w += grow;
            spare -= grow;
        }
        let mut over = total(kept, &natural).saturating_sub(width);
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
    };
    // An essential column shortened while usage columns are shown: usage
    // columns go, lowest first, if that lets every essential column show
    // whole, or at least 40 cells of it (a long reason is shortened rather
    // than pushing them all out).
    let cut = |widths: &[(usize, usize)]| {
        widths.iter().any(|&(i, w)| {
            columns[i].priority <= ESSENTIAL && w < columns[i].width().min(WHOLE_UP_TO)
        })
    };
    let widths = assign(&kept);
    if cut(&widths) {
        let mut trial = kept.clone();
        while let Some(drop) = lowest(&trial, USAGE - 1) {
            trial.remove(drop);
            let fitted = assign(&trial);
            if !cut(&fitted) {
                return fitted;
            }
        }
    }
    widths
}

/// Every scope: what this dashboard wants, what each runtime has in force,
/// its state there, and usage against the current limits.
pub(super) fn render(frame: &mut Frame, area: Rect, cx: &ViewCx) {
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
    // The runtimes panel as tall as its wrapped lines (at most a third):
    // notifications that do not fit whole are left out.
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
    // Priorities: the marker, scope, (runtime,) what is in force and its
    // state first, then what is wanted here, then usage.
    let priorities = [0, 1, 4, if several { 2 } else { 9 }, 2, 3, 5, 6, 7];
    let shrink = [
        None,
        Some((8, 20)),
        Some((12, 22)),
        Some((8, 24)),
        Some((12, 24)),
        Some((12, 26)),
        None,
        None,
        None,
    ];
    let mut columns: Vec<Column> = names
        .iter()
        .zip(priorities)
        .zip(shrink)
        .map(|((header, priority), shrink)| Column {
            header,
            priority,
            shrink,
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
        let wanted = board
            .desired
            .budgets
            .get(scope)
            .map_or_else(|| "—".to_owned(), |w| brief(w.version, &w.limits));
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
                    let in_force = runtime
                        .in_force
                        .get(scope)
                        .map_or_else(|| "none".to_owned(), |b| brief(b.version, &b.limits));
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
                    .map(|&(i, w)| {
                        let text = &columns[i].cells[r];
                        Cell::from(if i == 1 {
                            fit(text, w) // a name
                        } else {
                            fit_parts(text, w)
                        })
                    })
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use crate::config::keys::{Bindings, Keymap};
    use crate::control::client::{ClientEvent, Link, Outcome};
    use crate::control::protocol::{Exceeded, VersionedBudget};
    use crate::ingest::sources::files;
    use crate::ingest::{Ingestor, TimeWindow};
    use crate::model::budget::{BreachAction, Limits, Scope};
    use crate::model::insights::{BleedRules, Insights};
    use crate::model::{Ledger, LedgerConfig};
    use crate::pricing::PriceBook;
    use crate::ui::budgets::{BudgetBoard, BudgetEditor, EditorInput};
    use crate::ui::data::{Published, Rows};
    use crate::ui::state::{Screen, Tab, ViewState};
    use crate::ui::theme::Theme;
    use crate::ui::views::{ViewCx, list_rows, render};

    /// 2026-11-27T09:01:00Z: one minute after the last sample event.
    const NOW_MS: i64 = 1_796_202_100_000;
    const SIZES: [(u16, u16); 3] = [(80, 24), (120, 30), (200, 60)];
    const UP: &str = "unix:/run/agents/a.sock";
    const DOWN: &str = "tcp:127.0.0.1:7701";

    fn published() -> Published {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample_logs");
        let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
        let mut ingestor = Ingestor::new(&mut ledger, TimeWindow::default());
        let found = files::discover(&[root]).unwrap();
        files::read_files(
            &found,
            files::DEFAULT_MAX_LINE_BYTES,
            &Default::default(),
            &mut ingestor,
        )
        .unwrap();
        let stats = ingestor.stats;
        let snapshot = ledger.snapshot();
        let insights = Insights::compute(&snapshot, &BleedRules::default(), &PriceBook::embedded());
        Published {
            snapshot: Arc::new(snapshot),
            stats: Arc::new(stats),
            insights: Arc::new(insights),
            lines_per_sec: 0.0,
            last_event_ms: Some(NOW_MS - 4_000),
            sources: vec!["sample_logs".into()],
            reading_backlog: false,
            live: None,
            prices: Some(Arc::new(PriceBook::embedded())),
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

    #[test]
    fn shortened_cells_never_cut_a_number() {
        let text = "v1 run 120000 tokens (abort) · run $0.50 (abort)";
        assert_eq!(super::fit_parts(text, 60), text);
        assert_eq!(super::fit_parts(text, 32), "v1 run 120000 tokens (abort) …");
        assert_eq!(super::fit_parts(text, 20), "v1 run 120000…");
        assert_eq!(super::fit_parts(text, 12), "v1 run…");
        assert_eq!(
            super::fit_parts("unconfirmed: last known v1 · v2 waits", 30),
            "unconfirmed: last known v1 …"
        );
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
