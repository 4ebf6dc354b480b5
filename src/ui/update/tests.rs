//! Action scripts → view state, on the sample workload.

use std::sync::Arc;

use super::*;
use crate::config::keys::Action;
use crate::ui::data::Published;
use crate::ui::state::{ListKind, Scope, Screen, SortKey, Tab, ViewState};

fn sample() -> Published {
    crate::ui::data::test_support::sample()
}

fn run(view: &mut ViewState, data: &Published, actions: &[Action]) -> Vec<Option<Effect>> {
    actions
        .iter()
        .map(|a| update(view, Input::Action(*a), data, &BudgetBoard::default()))
        .collect()
}

fn selected_key(view: &ViewState, data: &Published) -> Arc<str> {
    let screen = view.screen();
    let rows = Rows::compute(data, screen, view);
    let pos = selected_position(data, screen, &rows, view.cursor().selected.as_ref()).unwrap();
    row_key(data, screen, rows.indexes[pos]).unwrap()
}

fn position_of(view: &ViewState, data: &Published, key: &str) -> usize {
    let screen = view.screen();
    let rows = Rows::compute(data, screen, view);
    rows.indexes
        .iter()
        .position(|&i| row_key(data, screen, i).as_deref() == Some(key))
        .unwrap()
}

#[test]
fn tabs_switch_and_cycle() {
    let data = sample();
    let mut view = ViewState::default();
    run(&mut view, &data, &[Action::ScreenModels]);
    assert_eq!(view.screen(), &Screen::Tab(Tab::Models));
    run(&mut view, &data, &[Action::NextScreen, Action::NextScreen]);
    assert_eq!(view.screen(), &Screen::Tab(Tab::Budgets));
    run(&mut view, &data, &[Action::NextScreen]);
    assert_eq!(view.screen(), &Screen::Tab(Tab::Advice));
    run(&mut view, &data, &[Action::NextScreen]);
    assert_eq!(view.screen(), &Screen::Tab(Tab::Overview), "wraps around");
    run(&mut view, &data, &[Action::PrevScreen]);
    assert_eq!(view.screen(), &Screen::Tab(Tab::Advice));
}

#[test]
fn drill_into_a_run_and_back() {
    let data = sample();
    let mut view = ViewState::default();
    run(
        &mut view,
        &data,
        &[Action::ScreenRuns, Action::Down, Action::Down],
    );
    let chosen = selected_key(&view, &data);
    run(&mut view, &data, &[Action::DrillDown]);
    assert_eq!(view.screen(), &Screen::Run(chosen.clone()));
    assert_eq!(view.stack.len(), 2);
    // hop rows of that run
    let rows = Rows::compute(&data, view.screen(), &view);
    assert_eq!(
        rows.len(),
        data.snapshot
            .runs
            .iter()
            .find(|r| r.run_id == chosen)
            .unwrap()
            .hops
            .len()
    );
    run(&mut view, &data, &[Action::Back]);
    assert_eq!(view.screen(), &Screen::Tab(Tab::Runs));
    assert_eq!(
        selected_key(&view, &data),
        chosen,
        "the selection survives the round trip"
    );
    run(&mut view, &data, &[Action::Back, Action::Back]);
    assert_eq!(view.stack.len(), 1, "the root is never popped");
}

#[test]
fn selection_follows_the_same_row_when_rows_resort() {
    let data = sample();
    let mut view = ViewState::default();
    run(
        &mut view,
        &data,
        &[
            Action::ScreenRuns,
            Action::Down,
            Action::Down,
            Action::Down,
            Action::Down,
            Action::Down,
        ],
    );
    let chosen = selected_key(&view, &data);
    let before = position_of(&view, &data, &chosen);
    assert_eq!(before, 5);
    run(&mut view, &data, &[Action::NextSort]); // tokens
    assert_eq!(view.sort(ListKind::Runs).key, SortKey::Tokens);
    assert_eq!(selected_key(&view, &data), chosen);
    run(&mut view, &data, &[Action::ReverseSort]);
    assert!(view.sort(ListKind::Runs).reversed);
    assert_eq!(selected_key(&view, &data), chosen);
    let after = position_of(&view, &data, &chosen);
    assert_ne!(
        after, before,
        "the row moved and the selection moved with it"
    );
    run(&mut view, &data, &[Action::Down]);
    assert_eq!(
        position_of(&view, &data, &selected_key(&view, &data)),
        after + 1
    );
}

#[test]
fn filter_narrows_and_escape_clears() {
    let data = sample();
    let mut view = ViewState::default();
    run(&mut view, &data, &[Action::ScreenRuns, Action::Filter]);
    assert!(view.filter_editing);
    for c in "LEAN-".chars() {
        update(
            &mut view,
            Input::FilterChar(c),
            &data,
            &BudgetBoard::default(),
        );
    }
    update(
        &mut view,
        Input::FilterCommit,
        &data,
        &BudgetBoard::default(),
    );
    assert!(!view.filter_editing);
    let rows = Rows::compute(&data, view.screen(), &view);
    assert_eq!(rows.len(), 24, "case-insensitive substring of run ids");
    update(
        &mut view,
        Input::FilterBackspace,
        &data,
        &BudgetBoard::default(),
    );
    assert_eq!(view.filter, "LEAN");
    run(&mut view, &data, &[Action::Back]);
    assert!(view.filter.is_empty(), "Esc clears the filter first");
    assert_eq!(view.screen(), &Screen::Tab(Tab::Runs));
    run(&mut view, &data, &[Action::Filter]);
    update(
        &mut view,
        Input::FilterChar('x'),
        &data,
        &BudgetBoard::default(),
    );
    update(
        &mut view,
        Input::FilterCancel,
        &data,
        &BudgetBoard::default(),
    );
    assert!(view.filter.is_empty() && !view.filter_editing);
}

#[test]
fn agents_segments_and_models_drill_to_their_runs() {
    let data = sample();
    let mut view = ViewState::default();
    run(&mut view, &data, &[Action::ScreenAgents]);
    let agent = selected_key(&view, &data);
    run(&mut view, &data, &[Action::DrillDown]);
    assert_eq!(view.screen(), &Screen::Runs(Scope::Agent(agent.clone())));
    let rows = Rows::compute(&data, view.screen(), &view);
    assert!(!rows.is_empty());
    assert!(
        rows.indexes
            .iter()
            .all(|&i| data.snapshot.runs[i].hops.iter().any(|h| h.agent == agent))
    );
    run(&mut view, &data, &[Action::DrillDown]);
    assert!(
        matches!(view.screen(), Screen::Run(_)),
        "and on to the hops"
    );
    run(
        &mut view,
        &data,
        &[Action::ScreenSegments, Action::DrillDown],
    );
    assert!(matches!(view.screen(), Screen::Runs(Scope::Segment(_))));
    run(&mut view, &data, &[Action::ScreenModels, Action::DrillDown]);
    assert!(matches!(view.screen(), Screen::Runs(Scope::Model(_))));
}

#[test]
fn overview_drills_from_the_worst_offender_to_its_runs() {
    let data = sample();
    let mut view = ViewState::default();
    let worst = &data.insights.offenders[0];
    run(&mut view, &data, &[Action::DrillDown]);
    assert_eq!(
        view.screen(),
        &Screen::Runs(Scope::BleedingHop {
            agent: worst.agent.clone(),
            hop: worst.hop
        })
    );
    assert_eq!(view.sort(ListKind::Runs).key, SortKey::Bleeding);
}

#[test]
fn paging_clamps_and_keeps_the_selection_in_view() {
    let data = sample();
    let mut view = ViewState {
        page_rows: 10,
        ..ViewState::default()
    };
    run(
        &mut view,
        &data,
        &[Action::ScreenRuns, Action::PageDown, Action::PageDown],
    );
    assert_eq!(position_of(&view, &data, &selected_key(&view, &data)), 20);
    assert_eq!(view.cursor().offset, 11);
    run(&mut view, &data, &[Action::Bottom]);
    assert_eq!(
        position_of(&view, &data, &selected_key(&view, &data)),
        data.snapshot.runs.len() - 1
    );
    run(&mut view, &data, &[Action::Down]);
    assert_eq!(
        position_of(&view, &data, &selected_key(&view, &data)),
        data.snapshot.runs.len() - 1
    );
    run(&mut view, &data, &[Action::Top]);
    assert_eq!(view.cursor().offset, 0);
    update(&mut view, Input::Scroll(3), &data, &BudgetBoard::default());
    assert_eq!(position_of(&view, &data, &selected_key(&view, &data)), 3);
}

#[test]
fn freeze_help_theme_quit_and_budget_effects() {
    let data = sample();
    let mut view = ViewState::default();
    run(&mut view, &data, &[Action::Freeze]);
    assert!(view.frozen && view.toast.is_some());
    run(&mut view, &data, &[Action::Help]);
    assert!(view.help);
    run(&mut view, &data, &[Action::Back]);
    assert!(!view.help, "Esc closes help first");
    assert_eq!(
        run(&mut view, &data, &[Action::NextTheme]),
        vec![Some(Effect::NextTheme)]
    );
    run(&mut view, &data, &[Action::ScreenAgents]);
    let agent = selected_key(&view, &data);
    assert_eq!(
        run(&mut view, &data, &[Action::EditBudget]),
        vec![Some(Effect::EditBudget(BudgetTarget::Agent(agent)))]
    );
    assert_eq!(
        run(&mut view, &data, &[Action::Quit]),
        vec![Some(Effect::Quit)]
    );
}

#[test]
fn while_help_is_open_moving_keys_scroll_it_not_the_list() {
    let data = sample();
    let mut view = ViewState {
        page_rows: 10,
        ..ViewState::default()
    };
    run(&mut view, &data, &[Action::ScreenRuns, Action::Down]);
    let selected = selected_key(&view, &data);
    run(
        &mut view,
        &data,
        &[Action::Help, Action::Down, Action::Down],
    );
    assert_eq!(view.help_scroll, 2);
    assert_eq!(
        selected_key(&view, &data),
        selected,
        "the list did not move"
    );
    run(&mut view, &data, &[Action::Bottom]);
    let last = crate::ui::views::help_lines() - (view.page_rows + 1);
    assert_eq!(view.help_scroll, last, "the last page stays full");
    run(&mut view, &data, &[Action::PageDown, Action::Up]);
    assert_eq!(view.help_scroll, last - 1);
    update(
        &mut view,
        Input::Scroll(-100),
        &data,
        &BudgetBoard::default(),
    );
    assert_eq!(view.help_scroll, 0);
    // another key closes the help and does what it says
    run(&mut view, &data, &[Action::Help, Action::ScreenAgents]);
    assert!(!view.help);
    assert_eq!(view.screen(), &Screen::Tab(Tab::Agents));
}

#[test]
fn enter_on_a_hop_opens_its_detail_and_j_k_walk_the_hops() {
    let data = sample();
    let mut view = ViewState::default();
    run(
        &mut view,
        &data,
        &[
            Action::ScreenRuns,
            Action::DrillDown,
            Action::Down,
            Action::Down,
        ],
    );
    let Screen::Run(run_id) = view.screen().clone() else {
        panic!("{:?}", view.screen())
    };
    run(&mut view, &data, &[Action::DrillDown]);
    assert_eq!(view.screen(), &Screen::Hop(run_id.clone(), 3));
    run(&mut view, &data, &[Action::Down]);
    assert_eq!(view.screen(), &Screen::Hop(run_id.clone(), 4));
    run(&mut view, &data, &[Action::Top]);
    assert_eq!(view.screen(), &Screen::Hop(run_id.clone(), 1));
    run(&mut view, &data, &[Action::Back]);
    assert_eq!(view.screen(), &Screen::Run(run_id.clone()));
    assert_eq!(
        selected_key(&view, &data).as_ref(),
        "1",
        "the waterfall followed"
    );
}

#[test]
fn runs_sort_by_hops_and_names_go_a_to_z_under_an_up_arrow() {
    let data = sample();
    let mut view = ViewState::default();
    run(&mut view, &data, &[Action::ScreenRuns]);
    for _ in 0..3 {
        run(&mut view, &data, &[Action::NextSort]);
    }
    let sort = view.sort(ListKind::Runs);
    assert_eq!(sort.key, SortKey::Hops);
    let rows = Rows::compute(&data, view.screen(), &view);
    let hops: Vec<usize> = rows
        .indexes
        .iter()
        .map(|&i| data.snapshot.runs[i].hops.len())
        .collect();
    assert!(hops.windows(2).all(|w| w[0] >= w[1]), "{hops:?}");
    assert_eq!(sort.arrow(ListKind::Runs), "↓");
    for _ in 0..3 {
        run(&mut view, &data, &[Action::NextSort]);
    }
    let sort = view.sort(ListKind::Runs);
    assert_eq!(sort.key, SortKey::Name);
    assert_eq!(sort.arrow(ListKind::Runs), "↑");
    let rows = Rows::compute(&data, view.screen(), &view);
    let ids: Vec<&str> = rows
        .indexes
        .iter()
        .map(|&i| &*data.snapshot.runs[i].run_id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{ids:?}");
    run(&mut view, &data, &[Action::ReverseSort]);
    assert_eq!(view.sort(ListKind::Runs).arrow(ListKind::Runs), "↓");
}

#[test]
fn enter_on_a_bleeding_hop_opens_the_runs_where_that_hop_bled() {
    let data = sample();
    let mut view = ViewState::default();
    // the second offender, to be sure the selection is used
    run(&mut view, &data, &[Action::Down]);
    let offender = data.insights.offenders[1].clone();
    run(&mut view, &data, &[Action::DrillDown]);
    let rows = Rows::compute(&data, view.screen(), &view);
    let bled_at = |i: usize| {
        let run = &data.snapshot.runs[i];
        data.insights.bleeding[i]
            .iter()
            .any(|(h, _)| run.hops[*h].agent == offender.agent && run.hops[*h].hop == offender.hop)
    };
    assert_eq!(
        rows.len() as u64,
        offender.runs,
        "one row per run in which {} · hop {} bled",
        offender.agent,
        offender.hop
    );
    assert!(rows.indexes.iter().all(|&i| bled_at(i)));
}

mod budgets {
    use super::*;
    use crate::control::client::{ClientEvent, Link};
    use crate::control::protocol::VersionedBudget;
    use crate::model::budget::{Limits, Scope as BudgetScope};
    use crate::ui::budgets::BudgetRow;

    const RUNTIME: &str = "unix:/run/agents.sock";

    fn hop(n: u64) -> Limits {
        Limits {
            per_hop_limit: Some(n),
            ..Limits::default()
        }
    }

    fn theirs(scope: BudgetScope, version: u64) -> VersionedBudget {
        VersionedBudget {
            scope,
            version,
            base_version: None,
            idempotency_key: Some(format!("theirs-{version}")),
            limits: hop(9000),
        }
    }

    /// A connected runtime with `scopes` in force, set by another controller.
    fn board(scopes: &[BudgetScope]) -> BudgetBoard {
        let mut board = BudgetBoard::default();
        board.apply(ClientEvent::Link {
            addr: RUNTIME.into(),
            link: Link::Connected {
                runtime: "demo".into(),
                runtime_id: "1".into(),
            },
        });
        board.apply(ClientEvent::State {
            addr: RUNTIME.into(),
            budgets: scopes.iter().map(|s| theirs(s.clone(), 1)).collect(),
        });
        board
    }

    fn agent(name: &str) -> BudgetScope {
        BudgetScope::Agent(name.into())
    }

    fn act(
        view: &mut ViewState,
        data: &Published,
        board: &BudgetBoard,
        actions: &[Action],
    ) -> Vec<Option<Effect>> {
        actions
            .iter()
            .map(|a| update(view, Input::Action(*a), data, board))
            .collect()
    }

    /// The scope of the selected row of the Budgets screen, and its position.
    fn selected(view: &ViewState, board: &BudgetBoard) -> (BudgetScope, usize) {
        let rows = board.rows(&view.filter);
        let key = view.cursor().selected.expect("a selected row");
        let at = rows
            .iter()
            .position(|r| r.key() == key)
            .expect("a listed row");
        (rows[at].scope.clone(), at)
    }

    fn edits(view: &mut ViewState, data: &Published, board: &BudgetBoard) -> Option<Effect> {
        update(view, Input::Action(Action::EditBudget), data, board)
    }

    #[test]
    fn b_on_a_selected_agent_row_opens_that_agents_editor() {
        let data = sample();
        let board = board(&[
            BudgetScope::Global,
            agent("writer"),
            BudgetScope::Segment("naive/pro".into()),
        ]);
        let mut view = ViewState::default();
        act(&mut view, &data, &board, &[Action::ScreenBudgets]);
        // nothing selected yet: the first row, the global budget
        assert_eq!(
            edits(&mut view, &data, &board),
            Some(Effect::EditBudget(BudgetTarget::Global))
        );
        act(&mut view, &data, &board, &[Action::Down]);
        assert_eq!(selected(&view, &board), (agent("writer"), 1));
        assert_eq!(
            edits(&mut view, &data, &board),
            Some(Effect::EditBudget(BudgetTarget::Agent("writer".into())))
        );
        act(&mut view, &data, &board, &[Action::Down]);
        assert_eq!(
            edits(&mut view, &data, &board),
            Some(Effect::EditBudget(BudgetTarget::Segment(
                "naive/pro".into()
            )))
        );
        // the filter applies to scope names; the first match is selected
        act(&mut view, &data, &board, &[Action::Top, Action::Filter]);
        for c in "WRIT".chars() {
            update(&mut view, Input::FilterChar(c), &data, &board);
        }
        update(&mut view, Input::FilterCommit, &data, &board);
        assert_eq!(board.rows(&view.filter).len(), 1);
        assert_eq!(
            edits(&mut view, &data, &board),
            Some(Effect::EditBudget(BudgetTarget::Agent("writer".into())))
        );
        // a filter nothing matches, or no budget at all: the global budget
        update(&mut view, Input::FilterChar('x'), &data, &board);
        assert!(board.rows(&view.filter).is_empty());
        assert_eq!(
            edits(&mut view, &data, &board),
            Some(Effect::EditBudget(BudgetTarget::Global))
        );
        let empty = BudgetBoard::default();
        let mut view = ViewState::default();
        act(
            &mut view,
            &data,
            &empty,
            &[Action::ScreenBudgets, Action::Down],
        );
        assert_eq!(
            edits(&mut view, &data, &empty),
            Some(Effect::EditBudget(BudgetTarget::Global))
        );
    }

    #[test]
    fn the_budgets_list_moves_pages_and_keeps_the_selection_in_view() {
        let data = sample();
        let scopes: Vec<BudgetScope> = (0..30).map(|i| agent(&format!("agent-{i:02}"))).collect();
        let board = board(&scopes);
        // 30 agents and the global budget (listed though nobody set it)
        assert_eq!(board.rows("").len(), 31);
        let mut view = ViewState {
            page_rows: 20,
            // the table shares the body with its runtimes panel
            list_page: Some((Screen::Tab(Tab::Budgets), 10)),
            ..ViewState::default()
        };
        act(
            &mut view,
            &data,
            &board,
            &[Action::ScreenBudgets, Action::Down],
        );
        assert_eq!(selected(&view, &board), (agent("agent-00"), 1));
        act(
            &mut view,
            &data,
            &board,
            &[Action::PageDown, Action::PageDown],
        );
        assert_eq!(selected(&view, &board).1, 21);
        assert_eq!(
            view.cursor().offset,
            12,
            "the selection is the last row shown"
        );
        act(&mut view, &data, &board, &[Action::Bottom, Action::Down]);
        assert_eq!(selected(&view, &board), (agent("agent-29"), 30));
        act(&mut view, &data, &board, &[Action::PageUp]);
        assert_eq!(selected(&view, &board).1, 20);
        act(&mut view, &data, &board, &[Action::Top]);
        assert_eq!(selected(&view, &board), (BudgetScope::Global, 0));
        assert_eq!(view.cursor().offset, 0);
        update(&mut view, Input::Scroll(3), &data, &board);
        assert_eq!(selected(&view, &board).1, 3);
        act(&mut view, &data, &board, &[Action::Up]);
        assert_eq!(selected(&view, &board).1, 2);
    }

    #[test]
    fn the_selected_budget_row_survives_a_refresh_that_reorders_rows() {
        let data = sample();
        let mut board = board(&[BudgetScope::Global, agent("writer"), agent("zed")]);
        let mut view = ViewState::default();
        act(
            &mut view,
            &data,
            &board,
            &[Action::ScreenBudgets, Action::Down],
        );
        assert_eq!(selected(&view, &board), (agent("writer"), 1));
        // another controller sets agents that sort before writer
        board.apply(ClientEvent::State {
            addr: RUNTIME.into(),
            budgets: vec![
                theirs(BudgetScope::Global, 1),
                theirs(agent("alpha"), 1),
                theirs(agent("beta"), 1),
                theirs(agent("writer"), 1),
                theirs(agent("zed"), 1),
            ],
        });
        assert_eq!(selected(&view, &board), (agent("writer"), 3));
        assert_eq!(
            edits(&mut view, &data, &board),
            Some(Effect::EditBudget(BudgetTarget::Agent("writer".into())))
        );
        act(&mut view, &data, &board, &[Action::Down]);
        assert_eq!(selected(&view, &board), (agent("zed"), 4));
        // the row is a scope at a runtime: the same scope elsewhere is another row
        let key = view.cursor().selected.unwrap();
        assert_eq!(
            key,
            BudgetRow {
                scope: agent("zed"),
                runtime: Some(RUNTIME.into())
            }
            .key()
        );
        assert_ne!(
            key,
            BudgetRow {
                scope: agent("zed"),
                runtime: Some("tcp:127.0.0.1:7701".into())
            }
            .key()
        );
    }
}

#[test]
fn b_where_there_is_no_budget_says_what_b_edits_and_where() {
    let data = sample();
    for screen in [Action::ScreenModels, Action::ScreenEvents] {
        let mut view = ViewState::default();
        assert_eq!(
            run(&mut view, &data, &[screen, Action::EditBudget]),
            vec![None, None]
        );
        let toast = view.toast.expect("b says something");
        assert!(toast.text.contains("no budget per"), "{}", toast.text);
        assert!(
            toast.text.contains("b edits agents, segments, runs"),
            "{}",
            toast.text
        );
        assert!(toast.text.contains("global on Budgets"), "{}", toast.text);
    }
}
