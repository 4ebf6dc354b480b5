//! Budgets in the dashboard: what each runtime applied (the board, fed by
//! the control links) and the editor (`b`): type or step values, review the
//! change as a diff with what it would have breached, confirm to push.

use std::collections::BTreeMap;

use crate::control::client::{ClientEvent, Link, Outcome};
use crate::control::protocol::Exceeded;
use crate::control::store::DesiredState;
use crate::model::Usd;
use crate::model::budget::{self, BreachAction, Limits, Scope};
use crate::model::snapshot::Snapshot;

/// One runtime as the dashboard sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeView {
    pub link: Link,
    /// Version in force per scope.
    pub applied: BTreeMap<Scope, u64>,
    /// The last answer per scope: (version, outcome).
    pub outcomes: BTreeMap<Scope, (u64, Outcome)>,
}

/// Desired budgets and what every runtime made of them.
#[derive(Debug, Clone, Default)]
pub struct BudgetBoard {
    pub desired: DesiredState,
    pub runtimes: BTreeMap<String, RuntimeView>,
    /// When the current desired version of a scope was pushed (epoch ms).
    pub pending_since: BTreeMap<Scope, i64>,
    /// Recent `budget.exceeded` notifications, newest last (at most 50).
    pub exceeded: Vec<(String, Exceeded)>,
    pub readonly: bool,
    /// Usage of each scope against its desired limits, computed once per
    /// snapshot and per change (scanning every hop is too slow per frame).
    pub usage: BTreeMap<Scope, budget::Usage>,
}

/// A scope's state at one runtime, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeState {
    Applied(u64),
    Pending { version: u64, since_ms: Option<i64> },
    Rejected { version: u64, reason: String },
    NotSet,
}

impl BudgetBoard {
    /// Applies an event from a control link; returns a message worth a toast.
    pub fn apply(&mut self, event: ClientEvent) -> Option<(String, bool)> {
        match event {
            ClientEvent::Link { addr, link } => {
                let entry = self.runtime(&addr);
                let was_up = matches!(entry.link, Link::Connected { .. });
                entry.link = link.clone();
                match link {
                    Link::Down { error, .. } if was_up => Some((
                        format!("{addr}: connection lost ({error}); changes wait"),
                        true,
                    )),
                    _ => None,
                }
            }
            ClientEvent::Applied { addr, applied } => {
                self.runtime(&addr).applied = applied;
                None
            }
            ClientEvent::Outcome {
                addr,
                scope,
                version,
                outcome,
            } => {
                let entry = self.runtime(&addr);
                let message = match &outcome {
                    Outcome::Ack => {
                        entry.applied.insert(scope.clone(), version);
                        (format!("{addr}: {scope} applied v{version}"), false)
                    }
                    Outcome::Nack {
                        reason,
                        applied_version,
                    } => (
                        format!(
                            "{addr}: {scope} v{version} rejected: {reason} (v{applied_version} stays)"
                        ),
                        true,
                    ),
                };
                entry.outcomes.insert(scope, (version, outcome));
                Some(message)
            }
            ClientEvent::Exceeded { addr, exceeded } => {
                if self.exceeded.len() == 50 {
                    self.exceeded.remove(0);
                }
                let message = format!(
                    "{addr}: run {} hit its {} limit ({})",
                    exceeded.run_id, exceeded.limit_kind, exceeded.action
                );
                self.exceeded.push((addr, exceeded));
                Some((message, true))
            }
        }
    }

    fn runtime(&mut self, addr: &str) -> &mut RuntimeView {
        self.runtimes
            .entry(addr.to_owned())
            .or_insert_with(|| RuntimeView {
                link: Link::Connecting,
                applied: BTreeMap::new(),
                outcomes: BTreeMap::new(),
            })
    }

    /// Recomputes [`BudgetBoard::usage`] for every scope.
    pub fn refresh_usage(&mut self, snapshot: &Snapshot) {
        self.usage = self
            .scopes()
            .into_iter()
            .map(|scope| {
                let limits = self
                    .desired
                    .budgets
                    .get(&scope)
                    .map(|b| b.limits.clone())
                    .unwrap_or_default();
                let usage = budget::usage(snapshot, &scope, &limits);
                (scope, usage)
            })
            .collect();
    }

    /// The highest version any runtime applies for `scope`.
    #[must_use]
    pub fn seen(&self, scope: &Scope) -> u64 {
        self.runtimes
            .values()
            .filter_map(|r| r.applied.get(scope))
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// Every scope desired here or applied somewhere.
    #[must_use]
    pub fn scopes(&self) -> Vec<Scope> {
        let mut scopes: Vec<Scope> = self.desired.budgets.keys().cloned().collect();
        for runtime in self.runtimes.values() {
            scopes.extend(runtime.applied.keys().cloned());
        }
        scopes.sort();
        scopes.dedup();
        scopes
    }

    /// The state of `scope` at runtime `addr`.
    #[must_use]
    pub fn state(&self, addr: &str, scope: &Scope) -> ScopeState {
        let Some(runtime) = self.runtimes.get(addr) else {
            return ScopeState::NotSet;
        };
        let desired = self.desired.version(scope);
        let applied = runtime.applied.get(scope).copied();
        if let Some((version, Outcome::Nack { reason, .. })) = runtime.outcomes.get(scope)
            && *version == desired
        {
            return ScopeState::Rejected {
                version: *version,
                reason: reason.clone(),
            };
        }
        match applied {
            Some(v) if v >= desired => ScopeState::Applied(v),
            _ if desired > 0 => ScopeState::Pending {
                version: desired,
                since_ms: self.pending_since.get(scope).copied(),
            },
            Some(v) => ScopeState::Applied(v),
            None => ScopeState::NotSet,
        }
    }
}

/// Which editor field has focus.
pub const FIELDS: [&str; 5] = [
    "per-hop limit (input tokens)",
    "run limit (tokens)",
    "run cost limit (USD)",
    "on per-hop breach",
    "on run breach",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    Editing,
    /// The diff is shown; `strict` when the new limits are below current
    /// usage (confirm with `Y`, not `y`).
    Review {
        strict: bool,
    },
}

/// The budget editor (`b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetEditor {
    pub scope: Scope,
    /// Text of the three numeric fields.
    pub values: [String; 3],
    pub hop_action: BreachAction,
    pub run_action: BreachAction,
    pub focus: usize,
    pub stage: Stage,
    pub error: Option<String>,
    /// What is desired now, for the diff.
    pub before: Option<Limits>,
}

/// Keys while the editor is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditorInput {
    Char(char),
    Backspace,
    Up,
    Down,
    Plus,
    Minus,
    /// ←/→/space on an action field.
    Cycle,
    Enter,
    /// `y`, or `Y` (strict confirmation).
    Confirm {
        strict: bool,
    },
    Cancel,
}

const ACTIONS: [BreachAction; 4] = [
    BreachAction::Trim,
    BreachAction::Abort,
    BreachAction::Pause,
    BreachAction::Warn,
];

impl BudgetEditor {
    #[must_use]
    pub fn new(scope: Scope, before: Option<Limits>) -> Self {
        let limits = before.clone().unwrap_or_default();
        BudgetEditor {
            scope,
            values: [
                limits
                    .per_hop_limit
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                limits
                    .total_run_limit
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                limits.run_cost_limit_usd.clone().unwrap_or_default(),
            ],
            hop_action: limits.on_hop_breach.unwrap_or(BreachAction::Trim),
            run_action: limits.on_run_breach.unwrap_or(BreachAction::Abort),
            focus: 0,
            stage: Stage::Editing,
            error: None,
            before,
        }
    }

    /// The limits as typed.
    ///
    /// # Errors
    /// A field that is not a number, or limits a runtime would refuse.
    pub fn limits(&self) -> Result<Limits, String> {
        let number = |i: usize, name: &str| -> Result<Option<u64>, String> {
            let text = self.values[i].trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.replace(['_', ','], "")
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{name}: '{text}' is not a whole number"))
        };
        let per_hop_limit = number(0, "per-hop limit")?;
        let total_run_limit = number(1, "run limit")?;
        let cost = self.values[2].trim().trim_start_matches('$');
        let run_cost_limit_usd = (!cost.is_empty()).then(|| cost.to_owned());
        let limits = Limits {
            per_hop_limit,
            total_run_limit,
            on_hop_breach: per_hop_limit.map(|_| self.hop_action),
            on_run_breach: (total_run_limit.is_some() || run_cost_limit_usd.is_some())
                .then_some(self.run_action),
            run_cost_limit_usd,
        };
        limits.validate().map_err(|e| e.to_string())?;
        Ok(limits)
    }

    /// Handles a key; returns the limits to push when confirmed.
    pub fn input(&mut self, input: EditorInput, snapshot: &Snapshot) -> Option<Limits> {
        self.error = None;
        if let Stage::Review { strict } = self.stage {
            return match input {
                EditorInput::Confirm {
                    strict: typed_strict,
                } if typed_strict || !strict => self.limits().ok(),
                EditorInput::Enter if !strict => self.limits().ok(),
                EditorInput::Confirm { .. } | EditorInput::Enter => {
                    self.error = Some("below current usage: press Y (shift+y) to confirm".into());
                    None
                }
                _ => {
                    self.stage = Stage::Editing;
                    None
                }
            };
        }
        match input {
            EditorInput::Up => self.focus = (self.focus + FIELDS.len() - 1) % FIELDS.len(),
            EditorInput::Down => self.focus = (self.focus + 1) % FIELDS.len(),
            EditorInput::Char(c)
                if self.focus < 3 && (c.is_ascii_digit() || (self.focus == 2 && c == '.')) =>
            {
                self.values[self.focus].push(c)
            }
            EditorInput::Char(' ') | EditorInput::Cycle if self.focus >= 3 => self.cycle(),
            EditorInput::Backspace if self.focus < 3 => {
                self.values[self.focus].pop();
            }
            EditorInput::Plus | EditorInput::Minus if self.focus < 3 => {
                self.step(input == EditorInput::Plus)
            }
            EditorInput::Plus | EditorInput::Minus => self.cycle(),
            EditorInput::Enter => match self.limits() {
                Ok(limits) => {
                    self.stage = Stage::Review {
                        strict: below_usage(snapshot, &self.scope, &limits),
                    }
                }
                Err(e) => self.error = Some(e),
            },
            _ => {}
        }
        None
    }

    fn cycle(&mut self) {
        let action = if self.focus == 3 {
            &mut self.hop_action
        } else {
            &mut self.run_action
        };
        let next = ACTIONS
            .iter()
            .position(|a| a == action)
            .map_or(0, |i| (i + 1) % ACTIONS.len());
        *action = ACTIONS[next];
    }

    /// `+`/`-`: steps of 1,000 tokens per hop, 10,000 per run, $0.05 per run.
    fn step(&mut self, up: bool) {
        let field = &mut self.values[self.focus];
        if self.focus == 2 {
            let current =
                Usd::parse_decimal(if field.is_empty() { "0" } else { field }).unwrap_or(Usd::ZERO);
            let step = Usd::parse_decimal("0.05").unwrap_or(Usd::ZERO);
            let next = if up {
                current + step
            } else {
                current.saturating_sub(step).max(step)
            };
            *field = next.display_rounded(2);
        } else {
            let step = if self.focus == 0 { 1_000 } else { 10_000 };
            let current: u64 = field.parse().unwrap_or(0);
            let next = if up {
                current.saturating_add(step)
            } else {
                current.saturating_sub(step).max(step)
            };
            *field = next.to_string();
        }
    }
}

/// Would `limits` have stopped what already happened in `scope`?
#[must_use]
pub fn below_usage(snapshot: &Snapshot, scope: &Scope, limits: &Limits) -> bool {
    let usage = budget::usage(snapshot, scope, limits);
    usage.hops_over > 0 || usage.runs_over > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_with_hop(input: u64) -> Snapshot {
        use crate::model::{Ledger, LedgerConfig};
        use crate::pricing::PriceBook;
        use crate::types::event::{EventKind, TelemetryEvent};
        use crate::types::usage::Usage;
        use std::borrow::Cow;
        let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
        ledger.apply(&TelemetryEvent {
            kind: EventKind::Hop,
            ts_ms: None,
            run_id: Cow::Borrowed("r"),
            hop: Some(1),
            agent: Cow::Borrowed("writer"),
            parent_agent: None,
            user: None,
            segment: Some(Cow::Borrowed("pro")),
            task: None,
            tool: None,
            provider: None,
            model: Cow::Borrowed("gpt-4o"),
            usage: Usage {
                input_uncached: input,
                output: 10,
                ..Usage::default()
            },
            reported_cost: None,
            latency_ms: None,
            status: None,
            estimated: false,
            format: crate::types::Format::Native,
            call: None,
        });
        ledger.snapshot()
    }

    #[test]
    fn typing_stepping_cycling_and_review() {
        let snap = snapshot_with_hop(5_000);
        let mut editor = BudgetEditor::new(Scope::Agent("writer".into()), None);
        for c in "8000".chars() {
            editor.input(EditorInput::Char(c), &snap);
        }
        editor.input(EditorInput::Char('x'), &snap); // ignored
        editor.input(EditorInput::Plus, &snap);
        assert_eq!(editor.values[0], "9000");
        editor.input(EditorInput::Down, &snap);
        editor.input(EditorInput::Down, &snap);
        editor.input(EditorInput::Plus, &snap);
        editor.input(EditorInput::Plus, &snap);
        assert_eq!(editor.values[2], "0.10");
        editor.input(EditorInput::Down, &snap);
        editor.input(EditorInput::Cycle, &snap);
        assert_eq!(editor.hop_action, BreachAction::Abort);
        assert_eq!(editor.input(EditorInput::Enter, &snap), None);
        assert_eq!(editor.stage, Stage::Review { strict: false });
        let limits = editor
            .input(EditorInput::Confirm { strict: false }, &snap)
            .unwrap();
        assert_eq!(limits.per_hop_limit, Some(9000));
        assert_eq!(limits.run_cost_limit_usd.as_deref(), Some("0.10"));
        assert_eq!(limits.on_hop_breach, Some(BreachAction::Abort));
        assert_eq!(limits.on_run_breach, Some(BreachAction::Abort));
    }

    #[test]
    fn lowering_below_current_usage_needs_explicit_confirmation() {
        let snap = snapshot_with_hop(50_000);
        let mut editor = BudgetEditor::new(Scope::Segment("pro".into()), None);
        editor.values[0] = "9000".into();
        editor.input(EditorInput::Enter, &snap);
        assert_eq!(editor.stage, Stage::Review { strict: true });
        assert_eq!(
            editor.input(EditorInput::Confirm { strict: false }, &snap),
            None
        );
        assert!(editor.error.as_deref().unwrap().contains("Y"));
        assert_eq!(editor.input(EditorInput::Enter, &snap), None);
        assert!(
            editor
                .input(EditorInput::Confirm { strict: true }, &snap)
                .is_some()
        );
    }

    #[test]
    fn invalid_values_stay_in_the_editor_with_a_reason() {
        let snap = snapshot_with_hop(1);
        let mut editor = BudgetEditor::new(Scope::Global, None);
        editor.input(EditorInput::Enter, &snap);
        assert_eq!(
            editor.error.as_deref(),
            Some("a budget needs at least one limit")
        );
        editor.values = ["9000".into(), "100".into(), String::new()];
        editor.input(EditorInput::Enter, &snap);
        assert!(
            editor
                .error
                .as_deref()
                .unwrap()
                .contains("exceeds total_run_limit")
        );
        assert_eq!(editor.stage, Stage::Editing);
    }

    #[test]
    fn the_board_tracks_applied_pending_and_rejected() {
        let mut board = BudgetBoard::default();
        board.desired.set(
            Scope::Global,
            Limits {
                per_hop_limit: Some(1),
                ..Limits::default()
            },
            0,
        );
        assert_eq!(board.state("unix:/a", &Scope::Global), ScopeState::NotSet);
        board.apply(ClientEvent::Link {
            addr: "unix:/a".into(),
            link: Link::Connected {
                runtime: "r".into(),
                runtime_id: "1".into(),
            },
        });
        assert!(matches!(
            board.state("unix:/a", &Scope::Global),
            ScopeState::Pending { version: 1, .. }
        ));
        let toast = board.apply(ClientEvent::Outcome {
            addr: "unix:/a".into(),
            scope: Scope::Global,
            version: 1,
            outcome: Outcome::Ack,
        });
        assert_eq!(toast, Some(("unix:/a: global applied v1".into(), false)));
        assert_eq!(
            board.state("unix:/a", &Scope::Global),
            ScopeState::Applied(1)
        );
        board.desired.set(
            Scope::Global,
            Limits {
                per_hop_limit: Some(2),
                ..Limits::default()
            },
            board.seen(&Scope::Global),
        );
        board.apply(ClientEvent::Outcome {
            addr: "unix:/a".into(),
            scope: Scope::Global,
            version: 2,
            outcome: Outcome::Nack {
                reason: "no".into(),
                applied_version: 1,
            },
        });
        assert_eq!(
            board.state("unix:/a", &Scope::Global),
            ScopeState::Rejected {
                version: 2,
                reason: "no".into()
            }
        );
        let lost = board.apply(ClientEvent::Link {
            addr: "unix:/a".into(),
            link: Link::Down {
                error: "gone".into(),
                retry_in: std::time::Duration::from_secs(1),
            },
        });
        assert!(lost.unwrap().1);
    }
}
