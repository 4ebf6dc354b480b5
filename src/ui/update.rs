//! `update`: user intent → new view state, plus the I/O the app should do.
//! Pure: no terminal, no clock, no channels.

use std::sync::Arc;

use crate::config::keys::Action;

use super::budgets::{BudgetBoard, EditorInput};
use super::data::{NO_SEGMENT_KEY, Published, Rows, row_key, selected_position};
use super::state::{Cursor, ListKind, Scope, Screen, Sort, SortKey, Tab, Toast, ViewState};
use crate::model::budget::{Limits, Scope as BudgetScope};

/// What the user did: a bound action, or raw input while typing a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Action(Action),
    FilterChar(char),
    FilterBackspace,
    /// Enter: keep the filter, stop typing.
    FilterCommit,
    /// Esc while typing: drop the filter.
    FilterCancel,
    /// Mouse wheel: rows up (negative) or down.
    Scroll(i32),
    /// A key while the budget editor is open.
    Editor(EditorInput),
}

/// I/O requested by `update`, performed by the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Quit,
    NextTheme,
    /// Open the budget editor for a scope (budget control).
    EditBudget(BudgetTarget),
    /// Record and push a confirmed budget change, based on the version the
    /// runtimes had in force when the editor opened.
    PushBudget {
        scope: BudgetScope,
        limits: Limits,
        base_version: u64,
    },
}

/// What a budget edit is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetTarget {
    Global,
    Agent(Arc<str>),
    Segment(Arc<str>),
}

/// Offender keys on the Overview: `agent#hop`.
fn offender_key(agent: &str, hop: u32) -> Arc<str> {
    Arc::from(format!("{agent}#{hop}"))
}

/// Applies `input` to `view`; `budgets` holds the Budgets screen's rows.
pub fn update(
    view: &mut ViewState,
    input: Input,
    data: &Published,
    budgets: &BudgetBoard,
) -> Option<Effect> {
    match input {
        Input::Action(action) => act(view, action, data, budgets),
        Input::FilterChar(c) => {
            view.filter.push(c);
            reset_offset(view);
            None
        }
        Input::FilterBackspace => {
            view.filter.pop();
            None
        }
        Input::FilterCommit => {
            view.filter_editing = false;
            None
        }
        Input::FilterCancel => {
            view.filter_editing = false;
            view.filter.clear();
            None
        }
        Input::Scroll(rows) if view.help => {
            scroll_help(view, i64::from(rows));
            None
        }
        Input::Scroll(rows) => {
            move_by(view, data, budgets, i64::from(rows));
            None
        }
        Input::Editor(EditorInput::Cancel) => {
            view.editor = None;
            None
        }
        Input::Editor(key) => {
            let editor = view.editor.as_mut()?;
            let limits = editor.input(key, &data.snapshot)?;
            let scope = editor.scope.clone();
            let base_version = editor.base_version;
            view.editor = None;
            Some(Effect::PushBudget {
                scope,
                limits,
                base_version,
            })
        }
    }
}

/// Scrolls the help overlay by `delta` lines (clamped: its last page stays
/// full).
fn scroll_help(view: &mut ViewState, delta: i64) {
    // the overlay shows the body's height less its borders: page_rows + 1
    let last = super::views::help_lines().saturating_sub(view.page_rows + 1);
    let top = i64::try_from(view.help_scroll)
        .unwrap_or(0)
        .saturating_add(delta);
    view.help_scroll = usize::try_from(top.clamp(0, i64::try_from(last).unwrap_or(0))).unwrap_or(0);
}

/// Keys while the help overlay is open: moving keys scroll it; help and
/// back close it; any other action closes it and is done.
fn help_key(view: &mut ViewState, action: Action) -> bool {
    let page = i64::try_from(view.page_rows.max(1)).unwrap_or(1);
    match action {
        Action::Up => scroll_help(view, -1),
        Action::Down => scroll_help(view, 1),
        Action::PageUp => scroll_help(view, -page),
        Action::PageDown => scroll_help(view, page),
        Action::Top => scroll_help(view, i64::MIN / 2),
        Action::Bottom => scroll_help(view, i64::MAX / 2),
        Action::Help | Action::Back => {
            view.help = false;
            view.help_scroll = 0;
        }
        _ => {
            view.help = false;
            view.help_scroll = 0;
            return false;
        }
    }
    true
}

fn act(
    view: &mut ViewState,
    action: Action,
    data: &Published,
    budgets: &BudgetBoard,
) -> Option<Effect> {
    view.toast = None;
    if view.help && help_key(view, action) {
        return None;
    }
    match action {
        Action::Quit => return Some(Effect::Quit),
        Action::Help => view.help = !view.help,
        Action::NextScreen => switch(view, Tab::ALL[(view.root.index() + 1) % Tab::ALL.len()]),
        Action::PrevScreen => switch(
            view,
            Tab::ALL[(view.root.index() + Tab::ALL.len() - 1) % Tab::ALL.len()],
        ),
        Action::ScreenOverview => switch(view, Tab::Overview),
        Action::ScreenRuns => switch(view, Tab::Runs),
        Action::ScreenAgents => switch(view, Tab::Agents),
        Action::ScreenSegments => switch(view, Tab::Segments),
        Action::ScreenModels => switch(view, Tab::Models),
        Action::ScreenEvents => switch(view, Tab::Events),
        Action::ScreenBudgets => switch(view, Tab::Budgets),
        Action::ScreenAdvice => switch(view, Tab::Advice),
        Action::Up => move_by(view, data, budgets, -1),
        Action::Down => move_by(view, data, budgets, 1),
        Action::PageUp => move_by(view, data, budgets, -page(view)),
        Action::PageDown => move_by(view, data, budgets, page(view)),
        Action::Top => move_by(view, data, budgets, i64::MIN / 2),
        Action::Bottom => move_by(view, data, budgets, i64::MAX / 2),
        Action::DrillDown => drill_down(view, data, budgets),
        Action::Back => {
            if view.help {
                view.help = false;
            } else if !view.filter.is_empty() {
                view.filter.clear();
            } else if view.stack.len() > 1 {
                view.stack.pop();
            }
        }
        Action::Filter => view.filter_editing = true,
        Action::NextSort => {
            if let Some(list) = view.screen().list() {
                let sort = view.sort(list);
                let keys = SortKey::cycle(list);
                let next = keys
                    .iter()
                    .position(|k| *k == sort.key)
                    .map_or(0, |i| (i + 1) % keys.len());
                view.sorts.insert(
                    list,
                    Sort {
                        key: keys[next],
                        reversed: false,
                    },
                );
            }
        }
        Action::ReverseSort => {
            if let Some(list) = view.screen().list() {
                let sort = view.sort(list);
                view.sorts.insert(
                    list,
                    Sort {
                        reversed: !sort.reversed,
                        ..sort
                    },
                );
            }
        }
        Action::WhatIf => view.what_if = !view.what_if,
        Action::Freeze => {
            view.frozen = !view.frozen;
            view.toast = Some(Toast {
                text: if view.frozen {
                    "frozen: ingest continues (f resumes)".into()
                } else {
                    "live".into()
                },
                error: false,
            });
        }
        Action::NextTheme => return Some(Effect::NextTheme),
        Action::EditBudget => match budget_target(view, data, budgets) {
            Some(target) => return Some(Effect::EditBudget(target)),
            None => {
                view.toast = Some(Toast {
                    text: no_budget_here(view.screen()),
                    error: false,
                });
            }
        },
    }
    None
}

/// Rows a page of the current list holds.
fn page(view: &ViewState) -> i64 {
    i64::try_from(view.page()).unwrap_or(1)
}

fn switch(view: &mut ViewState, tab: Tab) {
    view.root = tab;
    view.stack = vec![Screen::Tab(tab)];
    view.filter.clear();
    view.filter_editing = false;
}

fn reset_offset(view: &mut ViewState) {
    let screen = view.screen().clone();
    view.cursors.entry(screen).or_default().offset = 0;
}

/// Keys of the rows of the current screen, in display order.
fn row_keys(view: &ViewState, data: &Published, budgets: &BudgetBoard) -> Vec<Arc<str>> {
    let screen = view.screen();
    if *screen == Screen::Tab(Tab::Budgets) {
        return budgets.rows(&view.filter).iter().map(|r| r.key()).collect();
    }
    if *screen == Screen::Tab(Tab::Advice) {
        return data
            .snapshot
            .advice
            .as_ref()
            .map(|a| a.recommendations.iter().map(advice_key).collect())
            .unwrap_or_default();
    }
    if *screen == Screen::Tab(Tab::Overview) {
        return data
            .insights
            .offenders
            .iter()
            .map(|o| offender_key(&o.agent, o.hop))
            .collect();
    }
    let rows = Rows::compute(data, screen, view);
    rows.indexes
        .iter()
        .filter_map(|&i| row_key(data, screen, i))
        .collect()
}

/// Moves the selection by `delta` rows (clamped) and keeps it in view; on a
/// hop's detail, to the hop `delta` positions away in the run's waterfall
/// (whose selection follows).
fn move_by(view: &mut ViewState, data: &Published, budgets: &BudgetBoard, delta: i64) {
    if let Screen::Hop(run_id, hop) = view.screen().clone() {
        let Some(parent) = view.stack.len().checked_sub(2) else {
            return;
        };
        view.stack.truncate(parent + 1);
        if view.screen() != &Screen::Run(run_id.clone()) {
            view.stack.push(Screen::Run(run_id.clone()));
        }
        view.cursors
            .entry(Screen::Run(run_id.clone()))
            .or_default()
            .selected = Some(Arc::from(hop.to_string()));
        move_by(view, data, budgets, delta);
        let next = selected_key(view, data, budgets)
            .and_then(|k| k.parse::<u32>().ok())
            .unwrap_or(hop);
        view.stack.push(Screen::Hop(run_id, next));
        return;
    }
    let keys = row_keys(view, data, budgets);
    if keys.is_empty() {
        return;
    }
    let screen = view.screen().clone();
    let cursor = view.cursors.get(&screen).cloned().unwrap_or_default();
    let current = cursor
        .selected
        .as_ref()
        .and_then(|k| keys.iter().position(|x| x == k))
        .unwrap_or(0);
    let last = i64::try_from(keys.len() - 1).unwrap_or(0);
    let target =
        usize::try_from((i64::try_from(current).unwrap_or(0).saturating_add(delta)).clamp(0, last))
            .unwrap_or(0);
    let page = view.page();
    let mut offset = cursor.offset.min(target);
    if target >= offset + page {
        offset = target + 1 - page;
    }
    view.cursors.insert(
        screen,
        Cursor {
            selected: Some(keys[target].clone()),
            offset,
        },
    );
}

/// The selected row's key on the current screen (the first row if none).
/// The selection key of a recommendation: what it is about, not its rank
/// (ranks move as data comes in).
#[must_use]
pub fn advice_key(r: &crate::model::advisor::Recommendation) -> Arc<str> {
    Arc::from(format!(
        "{}|{}|{}|{}",
        r.lever.code(),
        r.agent,
        r.model,
        r.target.as_deref().unwrap_or("")
    ))
}

fn selected_key(view: &ViewState, data: &Published, budgets: &BudgetBoard) -> Option<Arc<str>> {
    let keys = row_keys(view, data, budgets);
    let cursor = view.cursor();
    cursor
        .selected
        .filter(|k| keys.contains(k))
        .or_else(|| keys.first().cloned())
}

fn drill_down(view: &mut ViewState, data: &Published, budgets: &BudgetBoard) {
    let screen = view.screen().clone();
    let next = match &screen {
        Screen::Tab(Tab::Overview) => {
            let key = selected_key(view, data, budgets);
            let offender = data
                .insights
                .offenders
                .iter()
                .find(|o| Some(offender_key(&o.agent, o.hop)) == key);
            offender.map(|o| {
                // the runs where that hop bled, worst bleeding first
                view.sorts.insert(
                    ListKind::Runs,
                    Sort {
                        key: SortKey::Bleeding,
                        reversed: false,
                    },
                );
                Screen::Runs(Scope::BleedingHop {
                    agent: o.agent.clone(),
                    hop: o.hop,
                })
            })
        }
        Screen::Tab(Tab::Runs) | Screen::Runs(_) => {
            selected_key(view, data, budgets).map(Screen::Run)
        }
        Screen::Tab(Tab::Agents) => {
            selected_key(view, data, budgets).map(|k| Screen::Runs(Scope::Agent(k)))
        }
        Screen::Tab(Tab::Segments) => selected_key(view, data, budgets).map(|k| {
            Screen::Runs(if &*k == NO_SEGMENT_KEY {
                Scope::NoSegment
            } else {
                Scope::Segment(k)
            })
        }),
        Screen::Tab(Tab::Models) => {
            selected_key(view, data, budgets).map(|k| Screen::Runs(Scope::Model(k)))
        }
        Screen::Tab(Tab::Events) => {
            let rows = Rows::compute(data, &screen, view);
            let cursor = view.cursor();
            selected_position(data, &screen, &rows, cursor.selected.as_ref())
                .and_then(|p| data.snapshot.recent.get(rows.indexes[p]))
                .map(|e| Screen::Run(e.run_id.clone()))
        }
        // a hop of the waterfall: its detail
        Screen::Run(run_id) => selected_key(view, data, budgets)
            .and_then(|k| k.parse::<u32>().ok())
            .map(|hop| Screen::Hop(run_id.clone(), hop)),
        // a recommendation: the run of its evidence that saves the most
        Screen::Tab(Tab::Advice) => {
            let key = selected_key(view, data, budgets);
            data.snapshot
                .advice
                .as_ref()
                .and_then(|a| {
                    a.recommendations
                        .iter()
                        .find(|r| Some(advice_key(r)) == key)
                })
                .and_then(|r| r.evidence.first())
                .map(|e| Screen::Run(e.run_id.clone()))
        }
        Screen::Hop(..) | Screen::Tab(Tab::Budgets) => None,
    };
    if let Some(next) = next {
        view.filter.clear();
        view.filter_editing = false;
        view.stack.push(next);
    }
}

/// What `b` says where it has no budget to edit: what it edits, and where.
fn no_budget_here(screen: &Screen) -> String {
    const EDITS: &str = "b edits agents, segments, runs, or global on Budgets";
    match screen {
        Screen::Tab(Tab::Models) => format!("no budget per model: {EDITS}"),
        Screen::Tab(Tab::Events) => format!("no budget per event: {EDITS}"),
        _ => format!("nothing selected: {EDITS}"),
    }
}

fn budget_target(
    view: &ViewState,
    data: &Published,
    budgets: &BudgetBoard,
) -> Option<BudgetTarget> {
    match view.screen() {
        Screen::Tab(Tab::Agents) => selected_key(view, data, budgets).map(BudgetTarget::Agent),
        // calls without a segment fall under the global budget
        Screen::Tab(Tab::Segments) => selected_key(view, data, budgets).map(|k| {
            if &*k == NO_SEGMENT_KEY {
                BudgetTarget::Global
            } else {
                BudgetTarget::Segment(k)
            }
        }),
        Screen::Runs(Scope::Agent(agent) | Scope::BleedingHop { agent, .. }) => {
            Some(BudgetTarget::Agent(agent.clone()))
        }
        Screen::Runs(Scope::Segment(segment)) => Some(BudgetTarget::Segment(segment.clone())),
        Screen::Runs(Scope::NoSegment) => Some(BudgetTarget::Global),
        Screen::Tab(Tab::Runs) | Screen::Runs(Scope::Model(_)) => {
            // a run's budget is its segment's (or the global one)
            let key = selected_key(view, data, budgets)?;
            let run = data.snapshot.runs.iter().find(|r| r.run_id == key)?;
            Some(
                run.segment
                    .clone()
                    .map_or(BudgetTarget::Global, BudgetTarget::Segment),
            )
        }
        Screen::Run(run_id) | Screen::Hop(run_id, _) => {
            let run = data.snapshot.runs.iter().find(|r| r.run_id == *run_id)?;
            Some(
                run.segment
                    .clone()
                    .map_or(BudgetTarget::Global, BudgetTarget::Segment),
            )
        }
        // the selected row's scope; none selected (no row): the global one
        Screen::Tab(Tab::Budgets) => {
            let key = selected_key(view, data, budgets);
            let scope = budgets
                .rows(&view.filter)
                .into_iter()
                .find(|r| Some(r.key()) == key)
                .map(|r| r.scope);
            Some(match scope {
                Some(BudgetScope::Agent(name)) => BudgetTarget::Agent(Arc::from(name)),
                Some(BudgetScope::Segment(name)) => BudgetTarget::Segment(Arc::from(name)),
                Some(BudgetScope::Global) | None => BudgetTarget::Global,
            })
        }
        Screen::Tab(Tab::Overview) => Some(BudgetTarget::Global),
        // a recommendation's agent (a trim suggests its per-hop limit)
        Screen::Tab(Tab::Advice) => {
            let key = selected_key(view, data, budgets)?;
            let advice = data.snapshot.advice.as_ref()?;
            let r = advice
                .recommendations
                .iter()
                .find(|r| advice_key(r) == key)?;
            Some(BudgetTarget::Agent(r.agent.clone()))
        }
        Screen::Tab(Tab::Models | Tab::Events) => None,
    }
}

#[cfg(test)]
mod tests;
