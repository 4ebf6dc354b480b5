//! What the user is looking at: screens, the drill-down stack, selection,
//! sorting, filter, freeze, overlays. Pure data, changed only by `update`.

use std::collections::HashMap;
use std::sync::Arc;

/// The top-level screens, in tab order (`1`–`7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tab {
    Overview,
    Runs,
    Agents,
    Segments,
    Models,
    Events,
    Budgets,
    Advice,
}

impl Tab {
    pub const ALL: [Tab; 8] = [
        Tab::Overview,
        Tab::Runs,
        Tab::Agents,
        Tab::Segments,
        Tab::Models,
        Tab::Events,
        Tab::Budgets,
        Tab::Advice,
    ];

    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Runs => "Runs",
            Tab::Agents => "Agents",
            Tab::Segments => "Segments",
            Tab::Models => "Models",
            Tab::Events => "Events",
            Tab::Budgets => "Budgets",
            Tab::Advice => "Advice",
        }
    }

    /// A shorter title for narrow terminals.
    #[must_use]
    pub fn short_title(self) -> &'static str {
        match self {
            Tab::Overview => "Over",
            Tab::Segments => "Segs",
            other => other.title(),
        }
    }

    #[must_use]
    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// What the runs list is narrowed to after a drill-down.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Agent(Arc<str>),
    Segment(Arc<str>),
    /// Runs whose calls carry no segment (the Segments `(none)` row).
    NoSegment,
    Model(Arc<str>),
    /// Runs in which this agent's hop at this position bled (an offender of
    /// the Overview).
    BleedingHop {
        agent: Arc<str>,
        hop: u32,
    },
}

/// One entry of the drill-down stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Screen {
    Tab(Tab),
    /// Runs of one agent, segment or model.
    Runs(Scope),
    /// Hop-by-hop waterfall of one run.
    Run(Arc<str>),
    /// One hop of a run (by position): why it bleeds, what a per-hop limit
    /// would have saved, its budget events.
    Hop(Arc<str>, u32),
}

impl Screen {
    /// The tab this screen belongs to (for the tab bar).
    #[must_use]
    pub fn tab(&self, root: Tab) -> Tab {
        match self {
            Screen::Tab(tab) => *tab,
            Screen::Runs(_) | Screen::Run(_) | Screen::Hop(..) => root,
        }
    }

    /// Which list this screen shows, if any.
    #[must_use]
    pub fn list(&self) -> Option<ListKind> {
        match self {
            Screen::Tab(Tab::Runs) | Screen::Runs(_) => Some(ListKind::Runs),
            Screen::Tab(Tab::Agents) => Some(ListKind::Agents),
            Screen::Tab(Tab::Segments) => Some(ListKind::Segments),
            Screen::Tab(Tab::Models) => Some(ListKind::Models),
            Screen::Tab(Tab::Events) => Some(ListKind::Events),
            Screen::Run(_) => Some(ListKind::Hops),
            Screen::Tab(Tab::Overview | Tab::Budgets | Tab::Advice) | Screen::Hop(..) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Runs,
    Agents,
    Segments,
    Models,
    Events,
    Hops,
}

/// Sort columns, per list (`s` cycles, `r` reverses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    Cost,
    Tokens,
    /// Input tokens (hops and events: the `in` column).
    Input,
    Calls,
    /// Hops of a run (the runs' `hops` column).
    Hops,
    Multiplier,
    Started,
    Bleeding,
    Name,
    /// Hop position / arrival order.
    Position,
}

impl SortKey {
    /// The columns a list can sort by; the first is the default.
    #[must_use]
    pub fn cycle(list: ListKind) -> &'static [SortKey] {
        match list {
            ListKind::Runs => &[
                SortKey::Cost,
                SortKey::Tokens,
                SortKey::Multiplier,
                SortKey::Hops,
                SortKey::Bleeding,
                SortKey::Started,
                SortKey::Name,
            ],
            ListKind::Agents | ListKind::Segments | ListKind::Models => &[
                SortKey::Cost,
                SortKey::Tokens,
                SortKey::Calls,
                SortKey::Name,
            ],
            ListKind::Events => &[SortKey::Position, SortKey::Cost, SortKey::Input],
            ListKind::Hops => &[SortKey::Position, SortKey::Cost, SortKey::Input],
        }
    }

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Cost => "cost",
            SortKey::Tokens => "tokens",
            SortKey::Input => "input",
            SortKey::Calls => "calls",
            SortKey::Hops => "hops",
            SortKey::Multiplier => "multiplier",
            SortKey::Started => "started",
            SortKey::Bleeding => "bleeding",
            SortKey::Name => "name",
            SortKey::Position => "order",
        }
    }

    /// Whether this key's natural order (before `r`) is descending: largest,
    /// newest or most first; names A→Z and hops in run order ascend.
    #[must_use]
    pub fn natural_descending(self, list: ListKind) -> bool {
        match self {
            SortKey::Name => false,
            // events: newest first; hops: in run order
            SortKey::Position => list == ListKind::Events,
            _ => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    /// The other way round from the key's natural order (largest first;
    /// names A→Z: see [`SortKey::natural_descending`]).
    pub reversed: bool,
}

impl Sort {
    /// Whether rows of `list` are shown in descending order of the key.
    #[must_use]
    pub fn descending(self, list: ListKind) -> bool {
        self.key.natural_descending(list) != self.reversed
    }

    /// `↓` for a descending order, `↑` for an ascending one: the arrow says
    /// what the rows do.
    #[must_use]
    pub fn arrow(self, list: ListKind) -> &'static str {
        if self.descending(list) { "↓" } else { "↑" }
    }
}

/// Per-screen position: the selected row by key (stable under re-sorting)
/// and the first visible row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    pub selected: Option<Arc<str>>,
    pub offset: usize,
}

/// A short message in the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub text: String,
    pub error: bool,
}

#[derive(Debug, Clone)]
pub struct ViewState {
    /// The tab the stack starts from.
    pub root: Tab,
    /// Drill-down stack; never empty; the last is shown.
    pub stack: Vec<Screen>,
    pub cursors: HashMap<Screen, Cursor>,
    pub sorts: HashMap<ListKind, Sort>,
    /// Substring filter (case-insensitive) of the current list.
    pub filter: String,
    /// Typing into the filter.
    pub filter_editing: bool,
    /// Data stops updating on screen; ingest continues.
    pub frozen: bool,
    /// While frozen: the wall clock when the view was frozen (epoch ms).
    /// What is derived from "now" (rates, ages, idle runs, windows) is
    /// computed at this time, so frozen figures hold still.
    pub frozen_at_ms: Option<i64>,
    pub help: bool,
    /// The run's waterfall with the advisor's recommendations applied (`w`).
    pub what_if: bool,
    /// First line of the help overlay shown (it scrolls when too tall).
    pub help_scroll: usize,
    pub toast: Option<Toast>,
    /// Rows of the list area, set from the terminal size by the app.
    pub page_rows: usize,
    /// Rows the list of this screen shows when it has less than the whole
    /// body (the Budgets table, above its runtimes panel), set by the app
    /// with each frame: paging and scrolling go by it on that screen, by
    /// [`ViewState::page_rows`] elsewhere.
    pub list_page: Option<(Screen, usize)>,
    /// The budget editor, when open (it takes the keyboard).
    pub editor: Option<super::budgets::BudgetEditor>,
    /// When this dashboard pushed budget changes, or saw another controller
    /// make one at a connected runtime (wall clock, epoch ms,
    /// oldest first, the last [`BUDGET_CHANGES_KEPT`]): the Overview's burn
    /// chart marks them and compares cost per run since the last one.
    pub budget_changes: Vec<i64>,
}

/// Budget change times kept in [`ViewState::budget_changes`].
pub const BUDGET_CHANGES_KEPT: usize = 64;

impl Default for ViewState {
    fn default() -> Self {
        ViewState {
            root: Tab::Overview,
            stack: vec![Screen::Tab(Tab::Overview)],
            cursors: HashMap::new(),
            sorts: HashMap::new(),
            filter: String::new(),
            filter_editing: false,
            frozen: false,
            frozen_at_ms: None,
            help: false,
            what_if: false,
            help_scroll: 0,
            toast: None,
            page_rows: 20,
            list_page: None,
            editor: None,
            budget_changes: Vec::new(),
        }
    }
}

impl ViewState {
    #[must_use]
    pub fn screen(&self) -> &Screen {
        // The stack is never empty: `update` keeps the root.
        self.stack.last().unwrap_or(&Screen::Tab(Tab::Overview))
    }

    #[must_use]
    pub fn cursor(&self) -> Cursor {
        self.cursors.get(self.screen()).cloned().unwrap_or_default()
    }

    /// Rows a page of the current screen's list holds.
    #[must_use]
    pub fn page(&self) -> usize {
        match &self.list_page {
            Some((screen, rows)) if screen == self.screen() => *rows,
            _ => self.page_rows,
        }
        .max(1)
    }

    /// Keeps the freeze time: set to `now_ms` when the view was just
    /// frozen, cleared when it resumes. The app calls it after every input.
    pub fn hold_clock(&mut self, now_ms: i64) {
        self.frozen_at_ms = if self.frozen {
            Some(self.frozen_at_ms.unwrap_or(now_ms))
        } else {
            None
        };
    }

    /// The time the view's figures are computed at: the freeze time while
    /// frozen, else `now_ms`.
    #[must_use]
    pub fn view_now(&self, now_ms: i64) -> i64 {
        match self.frozen_at_ms {
            Some(at) if self.frozen => at,
            _ => now_ms,
        }
    }

    /// Records a budget change pushed at `at_ms`.
    pub fn budget_changed(&mut self, at_ms: i64) {
        if self.budget_changes.len() >= BUDGET_CHANGES_KEPT {
            self.budget_changes.remove(0);
        }
        self.budget_changes.push(at_ms);
    }

    #[must_use]
    pub fn sort(&self, list: ListKind) -> Sort {
        self.sorts.get(&list).copied().unwrap_or(Sort {
            key: SortKey::cycle(list)[0],
            reversed: false,
        })
    }
}
