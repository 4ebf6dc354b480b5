//! Budgets in the dashboard: what each runtime applied (the board, fed by
//! the control links) and the editor (`b`): type or step values, review the
//! change as a diff with what it would have breached, confirm to push.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::control::client::{ClientEvent, Link, Outcome};
use crate::control::protocol::{Exceeded, VersionedBudget};
use crate::control::store::DesiredState;
use crate::model::Usd;
use crate::model::budget::{self, BreachAction, Limits, Scope, money_text};
use crate::model::snapshot::Snapshot;

/// One runtime as the dashboard sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeView {
    pub link: Link,
    /// The budgets in force at the runtime as it last said (`budget.list`,
    /// acknowledgements, conflicts). Kept while it is down: then only the
    /// last known state, unconfirmed.
    pub in_force: BTreeMap<Scope, VersionedBudget>,
    /// `in_force` was reported on the current connection.
    pub confirmed: bool,
    /// The last answer per scope: (version, outcome).
    pub outcomes: BTreeMap<Scope, (u64, Outcome)>,
}

impl RuntimeView {
    fn new() -> Self {
        RuntimeView {
            link: Link::Connecting,
            in_force: BTreeMap::new(),
            confirmed: false,
            outcomes: BTreeMap::new(),
        }
    }
}

/// Desired budgets and what every runtime has in force.
#[derive(Debug, Clone, Default)]
pub struct BudgetBoard {
    /// What this dashboard wants (its store).
    pub desired: DesiredState,
    pub runtimes: BTreeMap<String, RuntimeView>,
    /// When the current desired version of a scope was pushed (epoch ms).
    pub pending_since: BTreeMap<Scope, i64>,
    /// Recent `budget.exceeded` notifications, newest last (at most 50).
    pub exceeded: Vec<(String, Exceeded)>,
    pub readonly: bool,
    /// Usage of each scope against its current limits, computed once per
    /// snapshot and per change (scanning every hop is too slow per frame).
    pub usage: BTreeMap<Scope, budget::Usage>,
    /// The scopes and limits `usage` was measured against.
    pub measured: Vec<(Scope, Limits)>,
    /// Changes another controller made, seen as they happened (a connected
    /// runtime's refresh showed a new version that is not ours): the app
    /// marks them on the Overview like its own pushes.
    pub changed_elsewhere: u64,
    /// Refused changes replaced by what the runtime has in force (see
    /// [`DesiredState::adopt`]), not yet saved and audit-logged by the app.
    pub adoptions: Vec<Adoption>,
    /// Scopes refused as a conflict by a runtime that did not say what it
    /// has in force (a runtime that predates conflicts): its next
    /// `budget.state` is adopted. (runtime, scope) → refused version.
    pub awaiting_adoption: BTreeMap<(String, Scope), u64>,
    /// The limits of this dashboard's change a runtime refused, per scope:
    /// what was asked for stays readable beside the refusal (the wanted
    /// state is theirs by then) until the next change of the scope.
    pub refused: BTreeMap<Scope, Limits>,
}

/// A refused change replaced by what the runtime has in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Adoption {
    pub runtime: String,
    pub scope: Scope,
    /// The version the runtime refused, and its limits.
    pub refused_version: u64,
    pub refused: Option<Limits>,
    /// What is now wanted here (`None`: nothing in force there, nothing wanted).
    pub adopted: Option<VersionedBudget>,
}

/// One row of the Budgets screen: a scope at one runtime (`None` when no
/// runtime is configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRow {
    pub scope: Scope,
    pub runtime: Option<String>,
}

impl BudgetRow {
    /// The row's identity for the selection: the scope and the runtime, so
    /// it survives refreshes that add, remove or reorder rows.
    #[must_use]
    pub fn key(&self) -> Arc<str> {
        Arc::from(format!(
            "{}\0{}",
            self.scope,
            self.runtime.as_deref().unwrap_or("")
        ))
    }
}

/// A scope's state at one runtime, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeState {
    /// This dashboard's version is in force, confirmed by the connected runtime.
    Applied(u64),
    /// Sent (or waiting to be sent), not confirmed yet.
    Pending {
        version: u64,
        since_ms: Option<i64>,
    },
    /// The runtime refused the limits.
    Rejected {
        version: u64,
        reason: String,
    },
    /// The runtime refused this dashboard's version: `in_force`, set by
    /// another controller, is newer than what it was based on.
    Conflict {
        version: u64,
        in_force: u64,
    },
    /// In force at the runtime, set by another controller (this dashboard
    /// wants nothing for the scope, or an older version).
    Elsewhere(u64),
    /// The runtime is down or has not said yet: the last version known in
    /// force there (if any), and this dashboard's version waiting for it.
    Unconfirmed {
        last: Option<u64>,
        waiting: Option<u64>,
    },
    NotSet,
}

/// Where the editor starts: the limits of the scope now and those a wider
/// scope passes down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EditorStart {
    /// The scope's own limits now (in force, or wanted here if newer).
    pub before: Option<Limits>,
    /// Where `before` comes from (`v3 in force at unix:… · set by another controller`).
    pub before_from: String,
    /// Limits of the wider scope, for the fields this scope leaves unset.
    pub inherited: Limits,
    /// Its name (`global`).
    pub inherited_from: Option<String>,
    /// The newest version a runtime has in force for the scope: the change
    /// is based on it.
    pub base_version: u64,
}

/// Is `in_force` this dashboard's `wanted` change?
fn is_ours(in_force: &VersionedBudget, wanted: &VersionedBudget) -> bool {
    in_force.version == wanted.version
        && match (&in_force.idempotency_key, &wanted.idempotency_key) {
            (Some(theirs), Some(ours)) => theirs == ours,
            _ => in_force.limits == wanted.limits,
        }
}

impl BudgetBoard {
    /// Applies an event from a control link; returns a message worth a toast.
    pub fn apply(&mut self, event: ClientEvent) -> Option<(String, bool)> {
        match event {
            ClientEvent::Link { addr, link } => {
                let entry = self.runtime(&addr);
                let was_up = matches!(entry.link, Link::Connected { .. });
                entry.link = link.clone();
                // Confirmed again only by what the runtime says next.
                entry.confirmed = false;
                match link {
                    Link::Down { error, .. } if was_up => Some((
                        format!(
                            "{addr}: connection lost ({error}); its budgets are unconfirmed, changes wait"
                        ),
                        true,
                    )),
                    _ => None,
                }
            }
            ClientEvent::State { addr, budgets } => {
                let desired = self.desired.budgets.clone();
                let entry = self.runtime(&addr);
                let known = entry.confirmed;
                let before = std::mem::take(&mut entry.in_force);
                entry.in_force = budgets.into_iter().map(|b| (b.scope.clone(), b)).collect();
                entry.confirmed = matches!(entry.link, Link::Connected { .. });
                let in_force = entry.in_force.clone();
                // Changes made elsewhere while connected are worth saying.
                let changed: Vec<String> = in_force
                    .values()
                    .filter(|b| known && before.get(&b.scope).map(|o| o.version) != Some(b.version))
                    .filter(|b| desired.get(&b.scope).is_none_or(|d| !is_ours(b, d)))
                    .map(|b| format!("{} v{} ({})", b.scope, b.version, b.limits.describe()))
                    .collect();
                self.adopt_awaited(&addr, &in_force);
                if !changed.is_empty() {
                    self.changed_elsewhere += 1;
                }
                (!changed.is_empty()).then(|| {
                    (
                        format!("{addr}: set by another controller: {}", changed.join(", ")),
                        false,
                    )
                })
            }
            ClientEvent::Outcome {
                addr,
                scope,
                version,
                outcome,
            } => {
                let wanted = self
                    .desired
                    .budgets
                    .get(&scope)
                    .filter(|d| d.version == version)
                    .cloned();
                let entry = self.runtime(&addr);
                let message = match &outcome {
                    Outcome::Ack => {
                        if let Some(wanted) = wanted {
                            entry.in_force.insert(scope.clone(), wanted);
                        }
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
                    Outcome::Conflict {
                        applied_version,
                        limits,
                        ..
                    } => {
                        // What is in force there: the nack says, or the
                        // runtime's last state does when it is that version.
                        let known = entry
                            .in_force
                            .get(&scope)
                            .filter(|b| b.version == *applied_version)
                            .cloned();
                        let theirs = match limits {
                            Some(limits) => {
                                let theirs = VersionedBudget {
                                    scope: scope.clone(),
                                    version: *applied_version,
                                    base_version: None,
                                    idempotency_key: known
                                        .as_ref()
                                        .filter(|b| &b.limits == limits)
                                        .and_then(|b| b.idempotency_key.clone()),
                                    limits: limits.clone(),
                                };
                                entry.in_force.insert(scope.clone(), theirs.clone());
                                Some(Some(theirs))
                            }
                            None if *applied_version == 0 => Some(None),
                            None => known.map(Some),
                        };
                        let what = limits
                            .as_ref()
                            .map_or(String::new(), |l| format!(" ({})", l.describe()));
                        // Our change, refused: never pushed again. The
                        // runtime is the source of truth: what it has in
                        // force becomes what is wanted here.
                        let refused =
                            wanted.is_some() && !self.desired.adopted.contains_key(&scope);
                        let adopted = if refused {
                            match theirs {
                                Some(theirs) => {
                                    self.adopt(&addr, &scope, version, theirs);
                                    "; adopted as wanted here (b edits from it)"
                                }
                                None => {
                                    // Not said: dropped now, adopted from
                                    // the runtime's next state.
                                    self.adopt(&addr, &scope, version, None);
                                    self.awaiting_adoption
                                        .insert((addr.clone(), scope.clone()), version);
                                    "; dropped, what is in force there will be adopted"
                                }
                            }
                        } else {
                            "; b edits from it"
                        };
                        (
                            format!(
                                "{addr}: {scope} v{version} refused: v{applied_version}{what} set by another controller is in force{adopted}"
                            ),
                            true,
                        )
                    }
                };
                let adopted = self.desired.adopted.contains_key(&scope);
                let entry = self.runtime(&addr);
                // The acknowledgement of an adopted budget (theirs, pushed
                // back) does not hide that the user's change was refused.
                let keep_refusal = adopted
                    && outcome == Outcome::Ack
                    && matches!(
                        entry.outcomes.get(&scope),
                        Some((_, Outcome::Conflict { .. }))
                    );
                if !keep_refusal {
                    entry.outcomes.insert(scope, (version, outcome));
                }
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

    /// Replaces the refused version `refused` of `scope` by `theirs` (what
    /// runtime `addr` has in force) as the desired state, and records it
    /// for the app to save and audit-log.
    fn adopt(&mut self, addr: &str, scope: &Scope, refused: u64, theirs: Option<VersionedBudget>) {
        let before = self.desired.adopt(scope, theirs, addr);
        if let Some(limits) = &before {
            self.refused.insert(scope.clone(), limits.clone());
        }
        self.pending_since.remove(scope);
        self.adoptions.push(Adoption {
            runtime: addr.to_owned(),
            scope: scope.clone(),
            refused_version: refused,
            refused: before,
            adopted: self.desired.budgets.get(scope).cloned(),
        });
    }

    /// Adopts what `addr` has in force for scopes it refused without saying
    /// (unless the user made a new change since).
    fn adopt_awaited(&mut self, addr: &str, in_force: &BTreeMap<Scope, VersionedBudget>) {
        let mut awaited = Vec::new();
        self.awaiting_adoption.retain(|(a, scope), refused| {
            let mine = a == addr;
            if mine {
                awaited.push((scope.clone(), *refused));
            }
            !mine
        });
        for (scope, refused) in awaited {
            if self.desired.budgets.contains_key(&scope) {
                continue; // a new change of the user's
            }
            if let Some(theirs) = in_force.get(&scope) {
                let theirs = theirs.clone();
                let before = self.desired.adopt(&scope, Some(theirs), addr);
                self.adoptions.push(Adoption {
                    runtime: addr.to_owned(),
                    scope: scope.clone(),
                    refused_version: refused,
                    refused: before,
                    adopted: self.desired.budgets.get(&scope).cloned(),
                });
            }
        }
    }

    fn runtime(&mut self, addr: &str) -> &mut RuntimeView {
        self.runtimes
            .entry(addr.to_owned())
            .or_insert_with(RuntimeView::new)
    }

    /// Recomputes [`BudgetBoard::usage`] for every listed scope
    /// ([`BudgetBoard::listed`]), against its current limits
    /// ([`BudgetBoard::current`]).
    pub fn refresh_usage(&mut self, snapshot: &Snapshot) {
        let wanted = self.to_measure();
        let each: Vec<(&Scope, &Limits)> = wanted.iter().map(|(s, l)| (s, l)).collect();
        let usage = budget::usage_each(snapshot, &each);
        self.usage = wanted.iter().map(|(s, _)| s.clone()).zip(usage).collect();
        self.measured = wanted;
    }

    /// [`BudgetBoard::refresh_usage`] when the scopes listed or their
    /// current limits changed since it last ran (a runtime's state, a
    /// refusal): the same snapshot, measured against what is now in force.
    pub fn refresh_usage_if_changed(&mut self, snapshot: &Snapshot) {
        if self.to_measure() != self.measured {
            self.refresh_usage(snapshot);
        }
    }

    /// Every listed scope with its current limits.
    fn to_measure(&self) -> Vec<(Scope, Limits)> {
        self.listed()
            .into_iter()
            .map(|scope| {
                let limits = self
                    .current(&scope)
                    .map(|(b, _)| b.limits)
                    .unwrap_or_default();
                (scope, limits)
            })
            .collect()
    }

    /// The newest version any runtime has (or last had) in force for `scope`.
    #[must_use]
    pub fn in_force_version(&self, scope: &Scope) -> u64 {
        self.runtimes
            .values()
            .filter_map(|r| r.in_force.get(scope))
            .map(|b| b.version)
            .max()
            .unwrap_or(0)
    }

    /// The newest version any runtime reported for `scope`: in force (now
    /// or last known), or as the version that stays in force when it
    /// refused a change. A new change is numbered above it.
    #[must_use]
    pub fn seen(&self, scope: &Scope) -> u64 {
        let refusals = self
            .runtimes
            .values()
            .filter_map(|r| match r.outcomes.get(scope) {
                Some((
                    _,
                    Outcome::Nack {
                        applied_version, ..
                    }
                    | Outcome::Conflict {
                        applied_version, ..
                    },
                )) => Some(*applied_version),
                _ => None,
            });
        refusals
            .max()
            .unwrap_or(0)
            .max(self.in_force_version(scope))
    }

    /// The newest budget a runtime has in force for `scope` when it is newer
    /// than `base` (another controller changed it since an edit based on
    /// `base` started), and the runtime.
    #[must_use]
    pub fn newer_than(&self, scope: &Scope, base: u64) -> Option<(&VersionedBudget, &str)> {
        self.runtimes
            .iter()
            .filter_map(|(addr, r)| r.in_force.get(scope).map(|b| (b, addr.as_str())))
            .filter(|(b, _)| b.version > base)
            .max_by_key(|(b, _)| b.version)
    }

    /// Records the user's change of `scope` to `limits`, based on
    /// `base_version` (what the edit started from), numbered above every
    /// version a runtime reported for the scope.
    pub fn change(&mut self, scope: Scope, limits: Limits, base_version: u64) -> VersionedBudget {
        self.refused.remove(&scope);
        let seen = self.seen(&scope);
        self.desired.set_above(scope, limits, base_version, seen)
    }

    /// The scope's budget now: the newest in force at a runtime (and which),
    /// or what this dashboard wants when that is newer (not applied yet).
    #[must_use]
    pub fn current(&self, scope: &Scope) -> Option<(VersionedBudget, Option<&str>)> {
        let in_force = self
            .runtimes
            .iter()
            .filter_map(|(addr, r)| r.in_force.get(scope).map(|b| (b, addr.as_str())))
            .max_by_key(|(b, _)| b.version);
        let wanted = self.desired.budgets.get(scope);
        match (in_force, wanted) {
            (Some((b, _)), Some(w)) if w.version > b.version => Some((w.clone(), None)),
            (Some((b, addr)), _) => Some((b.clone(), Some(addr))),
            (None, Some(w)) => Some((w.clone(), None)),
            (None, None) => None,
        }
    }

    /// The limits of every scope now ([`BudgetBoard::current`]).
    #[must_use]
    pub fn current_limits(&self) -> budget::LimitsByScope {
        self.scopes()
            .into_iter()
            .filter_map(|scope| self.current(&scope).map(|(b, _)| (scope, b.limits)))
            .collect()
    }

    /// Every scope wanted here or in force at some runtime.
    #[must_use]
    pub fn scopes(&self) -> Vec<Scope> {
        let mut scopes: Vec<Scope> = self.desired.budgets.keys().cloned().collect();
        for runtime in self.runtimes.values() {
            scopes.extend(runtime.in_force.keys().cloned());
        }
        scopes.sort();
        scopes.dedup();
        scopes
    }

    /// The scopes the Budgets screen lists: [`BudgetBoard::scopes`], with
    /// the global one first even when nobody set it (so that it can be
    /// selected and edited there); none when there is no budget at all.
    #[must_use]
    pub fn listed(&self) -> Vec<Scope> {
        let mut scopes = self.scopes();
        if !scopes.is_empty() && scopes[0] != Scope::Global {
            scopes.insert(0, Scope::Global);
        }
        scopes
    }

    /// The rows of the Budgets screen in display order: each listed scope
    /// whose name (as shown: `global`, `agent writer`, `segment naive/pro`)
    /// contains `filter` (case-insensitive), at each runtime in address
    /// order.
    #[must_use]
    pub fn rows(&self, filter: &str) -> Vec<BudgetRow> {
        let filter = filter.to_lowercase();
        let runtimes: Vec<Option<String>> = if self.runtimes.is_empty() {
            vec![None]
        } else {
            self.runtimes.keys().cloned().map(Some).collect()
        };
        self.listed()
            .into_iter()
            .filter(|scope| scope.to_string().to_lowercase().contains(&filter))
            .flat_map(|scope| {
                runtimes.iter().map(move |runtime| BudgetRow {
                    scope: scope.clone(),
                    runtime: runtime.clone(),
                })
            })
            .collect()
    }

    /// The state of `scope` at runtime `addr`.
    #[must_use]
    pub fn state(&self, addr: &str, scope: &Scope) -> ScopeState {
        let Some(runtime) = self.runtimes.get(addr) else {
            return ScopeState::NotSet;
        };
        let in_force = runtime.in_force.get(scope);
        let wanted = self.desired.budgets.get(scope);
        if !runtime.confirmed {
            return ScopeState::Unconfirmed {
                last: in_force.map(|b| b.version),
                waiting: wanted
                    .filter(|w| in_force.is_none_or(|b| !is_ours(b, w)))
                    .map(|w| w.version),
            };
        }
        let Some(wanted) = wanted else {
            return in_force.map_or(ScopeState::NotSet, |b| ScopeState::Elsewhere(b.version));
        };
        // Adopted from a runtime: what another controller set, wanted here
        // (since the user's change was refused, if that was here).
        if self.desired.adopted.contains_key(scope)
            && let Some(b) = in_force.filter(|b| b.version >= wanted.version)
        {
            return match runtime.outcomes.get(scope) {
                Some((version, Outcome::Conflict { .. })) => ScopeState::Conflict {
                    version: *version,
                    in_force: b.version,
                },
                _ => ScopeState::Elsewhere(b.version),
            };
        }
        if in_force.is_some_and(|b| is_ours(b, wanted)) {
            return ScopeState::Applied(wanted.version);
        }
        match runtime.outcomes.get(scope) {
            Some((version, Outcome::Nack { reason, .. })) if *version == wanted.version => {
                return ScopeState::Rejected {
                    version: *version,
                    reason: reason.clone(),
                };
            }
            Some((
                version,
                Outcome::Conflict {
                    applied_version, ..
                },
            )) if *version == wanted.version => {
                return ScopeState::Conflict {
                    version: *version,
                    in_force: in_force.map_or(*applied_version, |b| b.version),
                };
            }
            _ => {}
        }
        match in_force {
            // A newer state set elsewhere wins.
            Some(b) if b.version >= wanted.version => ScopeState::Elsewhere(b.version),
            _ => ScopeState::Pending {
                version: wanted.version,
                since_ms: self.pending_since.get(scope).copied(),
            },
        }
    }

    /// Where the editor for `scope` starts.
    #[must_use]
    pub fn editor_start(&self, scope: &Scope) -> EditorStart {
        let (before, before_from) = match self.current(scope) {
            Some((b, Some(addr))) => {
                let who = if !self.desired.adopted.contains_key(scope)
                    && self
                        .desired
                        .budgets
                        .get(scope)
                        .is_some_and(|w| is_ours(&b, w))
                {
                    "set here"
                } else {
                    "set by another controller"
                };
                let confirmed = self.runtimes.get(addr).is_some_and(|r| r.confirmed);
                let state = if confirmed { "in force" } else { "last known" };
                (
                    Some(b.limits),
                    format!("v{} {state} at {addr} · {who}", b.version),
                )
            }
            Some((w, None)) => (
                Some(w.limits),
                format!("v{} wanted here, not confirmed", w.version),
            ),
            None => (None, String::new()),
        };
        let (inherited, inherited_from) = match scope {
            Scope::Global => (Limits::default(), None),
            Scope::Agent(_) | Scope::Segment(_) => match self.current(&Scope::Global) {
                Some((b, _)) => (b.limits, Some("global".to_owned())),
                None => (Limits::default(), None),
            },
        };
        EditorStart {
            before,
            before_from,
            inherited,
            inherited_from,
            base_version: self.in_force_version(scope),
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
    /// usage (confirm with `Y`, not `y`). `usage` is what the new limits
    /// would have breached: measured on entering the review and again on
    /// each snapshot ([`BudgetEditor::measure`]), never while drawing (at
    /// 10k runs one measure costs more than a frame's budget).
    Review {
        strict: bool,
        usage: Box<budget::Usage>,
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
    /// The scope's limits now, for the diff, and where they come from.
    pub before: Option<Limits>,
    pub before_from: String,
    /// What a wider scope passes down for fields left empty, and its name.
    pub inherited: Limits,
    pub inherited_from: Option<String>,
    /// The version the change is based on (see [`EditorStart`]).
    pub base_version: u64,
    /// Fields the user has edited: the first digit typed into a field still
    /// showing its prefilled value replaces it (as a selected value would),
    /// rather than appending to it (5000, then 30000 typed, is 30000).
    pub edited: [bool; 3],
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
    pub fn new(scope: Scope, start: EditorStart) -> Self {
        let EditorStart {
            before,
            before_from,
            inherited,
            inherited_from,
            base_version,
        } = start;
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
            hop_action: limits
                .on_hop_breach
                .or(inherited.on_hop_breach)
                .unwrap_or(BreachAction::Trim),
            run_action: limits
                .on_run_breach
                .or(inherited.on_run_breach)
                .unwrap_or(BreachAction::Abort),
            focus: 0,
            stage: Stage::Editing,
            error: None,
            before,
            before_from,
            inherited,
            inherited_from,
            base_version,
            edited: [false; 3],
        }
    }

    /// A field's inherited value when it is left empty (`9000`, `0.50`).
    #[must_use]
    pub fn inherited_value(&self, field: usize) -> Option<String> {
        match field {
            0 => self.inherited.per_hop_limit.map(|n| n.to_string()),
            1 => self.inherited.total_run_limit.map(|n| n.to_string()),
            2 => self.inherited.run_cost_limit_usd.clone(),
            _ => None,
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
        // A money amount (`0.5` → `0.50`), exact: never rounded.
        let run_cost_limit_usd = (!cost.is_empty())
            .then(|| Usd::parse_decimal(cost).map_or_else(|_| cost.to_owned(), money_text));
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
        if let Stage::Review { strict, .. } = self.stage {
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
                if !self.edited[self.focus] {
                    self.values[self.focus].clear();
                }
                self.edited[self.focus] = true;
                self.values[self.focus].push(c);
            }
            EditorInput::Char(' ') | EditorInput::Cycle if self.focus >= 3 => self.cycle(),
            EditorInput::Backspace if self.focus < 3 => {
                self.edited[self.focus] = true;
                self.values[self.focus].pop();
            }
            EditorInput::Plus | EditorInput::Minus if self.focus < 3 => {
                self.edited[self.focus] = true;
                self.step(input == EditorInput::Plus);
            }
            EditorInput::Plus | EditorInput::Minus => self.cycle(),
            EditorInput::Enter => match self.limits() {
                Ok(limits) => {
                    self.stage = Stage::Review {
                        strict: below_usage(snapshot, &self.scope, &self.replaced(), &limits),
                        usage: Box::new(budget::usage(snapshot, &self.scope, &limits)),
                    }
                }
                Err(e) => self.error = Some(e),
            },
            _ => {}
        }
        None
    }

    /// Measures the review again on `snapshot` (the data shown changed):
    /// what it would have breached, and whether that takes `Y` (a change
    /// that became below usage while shown asks for it); nothing while
    /// editing.
    pub fn measure(&mut self, snapshot: &Snapshot) {
        if !matches!(self.stage, Stage::Review { .. }) {
            return;
        }
        let Ok(limits) = self.limits() else { return };
        self.stage = Stage::Review {
            strict: below_usage(snapshot, &self.scope, &self.replaced(), &limits),
            usage: Box::new(budget::usage(snapshot, &self.scope, &limits)),
        };
    }

    /// In review, and below current usage (`Y` confirms, not `y`).
    #[must_use]
    pub fn strict(&self) -> bool {
        matches!(self.stage, Stage::Review { strict: true, .. })
    }

    /// The limits the change replaces for the scope: its own now, and for
    /// the fields it leaves unset, what a wider scope passes down.
    #[must_use]
    pub fn replaced(&self) -> Limits {
        self.before.clone().unwrap_or_default().or(&self.inherited)
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

/// The limits of `limits` that tighten what they replace (`replaced`): a
/// limit lower than the one before, or one newly set.
#[must_use]
pub fn tightened(replaced: &Limits, limits: &Limits) -> Limits {
    let lower = |new: Option<u64>, old: Option<u64>| new.filter(|n| old.is_none_or(|o| n < &o));
    let cost = match (limits.run_cost_limit(), replaced.run_cost_limit()) {
        (Some(new), Some(old)) if new >= old => None,
        (Some(_), _) => limits.run_cost_limit_usd.clone(),
        (None, _) => None,
    };
    Limits {
        per_hop_limit: lower(limits.per_hop_limit, replaced.per_hop_limit),
        total_run_limit: lower(limits.total_run_limit, replaced.total_run_limit),
        run_cost_limit_usd: cost,
        ..limits.clone()
    }
}

/// Does the change from `replaced` to `limits` tighten a limit below what
/// already happened in `scope` (a hop or run seen would breach it)?
/// Loosening a limit never is, even while usage is above both.
#[must_use]
pub fn below_usage(snapshot: &Snapshot, scope: &Scope, replaced: &Limits, limits: &Limits) -> bool {
    let tighter = tightened(replaced, limits);
    if tighter.per_hop_limit.is_none()
        && tighter.total_run_limit.is_none()
        && tighter.run_cost_limit_usd.is_none()
    {
        return false;
    }
    let usage = budget::usage(snapshot, scope, &tighter);
    usage.hops_over > 0 || usage.runs_over > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_with_hop(input: u64) -> Snapshot {
        use crate::model::{Ledger, LedgerConfig};
        use crate::pricing::PriceBook;
        use crate::types::event::TelemetryEvent;
        use crate::types::usage::Usage;
        use std::borrow::Cow;
        let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
        let usage = Usage {
            input_uncached: input,
            output: 10,
            ..Usage::default()
        };
        ledger.apply(&TelemetryEvent {
            segment: Some(Cow::Borrowed("pro")),
            ..TelemetryEvent::hop_for_test("r", 1, "writer", "gpt-4o", usage)
        });
        ledger.snapshot()
    }

    #[test]
    fn typing_into_a_prefilled_field_replaces_its_value() {
        let snap = snapshot_with_hop(5_000);
        let start = EditorStart {
            before: Some(Limits {
                per_hop_limit: Some(5_000),
                run_cost_limit_usd: Some("0.25".into()),
                ..Limits::default()
            }),
            ..EditorStart::default()
        };
        let mut editor = BudgetEditor::new(Scope::Global, start);
        assert_eq!(editor.values[0], "5000");
        for c in "30000".chars() {
            editor.input(EditorInput::Char(c), &snap);
        }
        assert_eq!(editor.values[0], "30000", "not 500030000");
        // once typed in, keys edit the field as usual
        editor.input(EditorInput::Backspace, &snap);
        editor.input(EditorInput::Char('5'), &snap);
        assert_eq!(editor.values[0], "30005");
        // a field first edited with backspace keeps the rest of its value
        editor.input(EditorInput::Down, &snap);
        editor.input(EditorInput::Down, &snap);
        editor.input(EditorInput::Backspace, &snap);
        editor.input(EditorInput::Char('9'), &snap);
        assert_eq!(editor.values[2], "0.29");
    }

    #[test]
    fn typing_stepping_cycling_and_review() {
        let snap = snapshot_with_hop(5_000);
        let mut editor = BudgetEditor::new(Scope::Agent("writer".into()), EditorStart::default());
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
        assert!(matches!(editor.stage, Stage::Review { strict: false, .. }));
        let limits = editor
            .input(EditorInput::Confirm { strict: false }, &snap)
            .unwrap();
        assert_eq!(limits.per_hop_limit, Some(9000));
        assert_eq!(limits.run_cost_limit_usd.as_deref(), Some("0.10"));
        assert_eq!(limits.on_hop_breach, Some(BreachAction::Abort));
        assert_eq!(limits.on_run_breach, Some(BreachAction::Abort));
    }

    #[test]
    fn the_review_measures_on_entering_and_on_each_snapshot_only() {
        let mut editor = BudgetEditor::new(Scope::Segment("pro".into()), EditorStart::default());
        editor.values[0] = "9000".into();
        let usage = |editor: &BudgetEditor| match &editor.stage {
            Stage::Review { usage, .. } => Some((usage.hops, usage.hops_over, usage.largest_hop)),
            Stage::Editing => None,
        };
        // editing measures nothing
        editor.measure(&snapshot_with_hop(50_000));
        assert_eq!(usage(&editor), None);
        editor.input(EditorInput::Enter, &snapshot_with_hop(50_000));
        assert_eq!(usage(&editor), Some((1, 1, 50_000)));
        assert!(editor.strict());
        // a new snapshot: the preview and the confirmation it takes follow
        // it, both ways
        editor.measure(&snapshot_with_hop(100));
        assert_eq!(usage(&editor), Some((1, 0, 100)));
        assert!(!editor.strict());
        editor.measure(&snapshot_with_hop(20_000));
        assert_eq!(usage(&editor), Some((1, 1, 20_000)));
        assert!(editor.strict());
        assert_eq!(
            editor.input(
                EditorInput::Confirm { strict: false },
                &snapshot_with_hop(20_000)
            ),
            None
        );
        // back to editing, then a review again: measured anew
        editor.input(EditorInput::Backspace, &snapshot_with_hop(100));
        assert_eq!(usage(&editor), None);
        editor.input(EditorInput::Enter, &snapshot_with_hop(100));
        assert_eq!(usage(&editor), Some((1, 0, 100)));
        assert!(!editor.strict());
    }

    #[test]
    fn the_board_measures_again_when_the_limits_in_force_change() {
        let snap = snapshot_with_hop(5_000);
        let mut board = BudgetBoard::default();
        board.desired.set(Scope::Global, hop_limit(9_000), 1);
        board.refresh_usage(&snap);
        assert_eq!(board.usage[&Scope::Global].hops_over, 0);
        // nothing changed: the measure stands
        board.usage.get_mut(&Scope::Global).unwrap().hops = 77;
        board.refresh_usage_if_changed(&snap);
        assert_eq!(board.usage[&Scope::Global].hops, 77);
        // a runtime has a lower limit in force (another controller): the
        // same snapshot, measured against it
        connect(
            &mut board,
            vec![in_force(Scope::Global, 5, "other", hop_limit(4_000))],
        );
        board.refresh_usage_if_changed(&snap);
        assert_eq!(board.usage[&Scope::Global].hops, 1);
        assert_eq!(board.usage[&Scope::Global].hops_over, 1);
    }

    #[test]
    fn lowering_below_current_usage_needs_explicit_confirmation() {
        let snap = snapshot_with_hop(50_000);
        let mut editor = BudgetEditor::new(Scope::Segment("pro".into()), EditorStart::default());
        editor.values[0] = "9000".into();
        editor.input(EditorInput::Enter, &snap);
        assert!(matches!(editor.stage, Stage::Review { strict: true, .. }));
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
    fn loosening_a_limit_never_needs_the_strong_confirmation() {
        let snap = snapshot_with_hop(50_000);
        let start = |hop: u64| EditorStart {
            before: Some(hop_limit(hop)),
            ..EditorStart::default()
        };
        // Raising a limit is never below current usage; lowering one is,
        // when a hop seen (50000) is above the new value.
        for (from, to, strict) in [
            (9_000, 20_000, false),
            (30_000, 45_000, false),
            (30_000, 25_000, true),
            (60_000, 40_000, true),
            (60_000, 55_000, false),
        ] {
            let mut editor = BudgetEditor::new(Scope::Global, start(from));
            editor.values[0] = to.to_string();
            editor.input(EditorInput::Enter, &snap);
            assert!(
                matches!(editor.stage, Stage::Review { .. }),
                "per-hop {from} → {to}"
            );
            assert_eq!(
                editor.strict(),
                strict,
                "per-hop {from} → {to} with a hop of 50000"
            );
        }
        // An inherited limit is the one replaced: an agent's own 20000 above
        // the global 9000 loosens it for the agent.
        let mut editor = BudgetEditor::new(
            Scope::Agent("writer".into()),
            EditorStart {
                inherited: hop_limit(9_000),
                inherited_from: Some("global".into()),
                ..EditorStart::default()
            },
        );
        editor.values[0] = "20000".into();
        editor.input(EditorInput::Enter, &snap);
        assert!(matches!(editor.stage, Stage::Review { strict: false, .. }));
        // A cost limit compared in dollars: raising stays ordinary, a new
        // one below the run's cost is strong.
        let cost = |usd: &str| Limits {
            run_cost_limit_usd: Some(usd.into()),
            ..Limits::default()
        };
        let run_cost = snap.runs[0].counters().cost;
        assert!(run_cost > Usd::ZERO);
        assert!(below_usage(
            &snap,
            &Scope::Global,
            &Limits::default(),
            &cost("0.0001")
        ));
        assert!(!below_usage(
            &snap,
            &Scope::Global,
            &cost("0.00001"),
            &cost("0.0001")
        ));
        assert!(below_usage(
            &snap,
            &Scope::Global,
            &cost("1"),
            &cost("0.0001")
        ));
    }

    #[test]
    fn a_cost_limit_reads_as_money() {
        let snap = snapshot_with_hop(1);
        let mut editor = BudgetEditor::new(Scope::Global, EditorStart::default());
        editor.values[2] = "0.5".into();
        assert_eq!(
            editor.limits().unwrap().run_cost_limit_usd.as_deref(),
            Some("0.50")
        );
        editor.values[2] = "$2".into();
        assert_eq!(
            editor.limits().unwrap().run_cost_limit_usd.as_deref(),
            Some("2.00")
        );
        // Exact: never rounded.
        editor.values[2] = "0.125".into();
        editor.input(EditorInput::Enter, &snap);
        assert_eq!(
            editor.limits().unwrap().run_cost_limit_usd.as_deref(),
            Some("0.125")
        );
    }

    #[test]
    fn invalid_values_stay_in_the_editor_with_a_reason() {
        let snap = snapshot_with_hop(1);
        let mut editor = BudgetEditor::new(Scope::Global, EditorStart::default());
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

    fn hop_limit(n: u64) -> Limits {
        Limits {
            per_hop_limit: Some(n),
            ..Limits::default()
        }
    }

    fn in_force(scope: Scope, version: u64, key: &str, limits: Limits) -> VersionedBudget {
        VersionedBudget {
            scope,
            version,
            base_version: None,
            idempotency_key: Some(key.into()),
            limits,
        }
    }

    const A: &str = "unix:/a";

    fn connect(board: &mut BudgetBoard, budgets: Vec<VersionedBudget>) {
        board.apply(ClientEvent::Link {
            addr: A.into(),
            link: Link::Connected {
                runtime: "r".into(),
                runtime_id: "1".into(),
            },
        });
        board.apply(ClientEvent::State {
            addr: A.into(),
            budgets,
        });
    }

    #[test]
    fn the_board_tracks_applied_pending_and_rejected() {
        let mut board = BudgetBoard::default();
        board.desired.set(Scope::Global, hop_limit(1), 0);
        assert_eq!(board.state(A, &Scope::Global), ScopeState::NotSet);
        connect(&mut board, Vec::new());
        assert!(matches!(
            board.state(A, &Scope::Global),
            ScopeState::Pending { version: 1, .. }
        ));
        let toast = board.apply(ClientEvent::Outcome {
            addr: A.into(),
            scope: Scope::Global,
            version: 1,
            outcome: Outcome::Ack,
        });
        assert_eq!(toast, Some(("unix:/a: global applied v1".into(), false)));
        assert_eq!(board.state(A, &Scope::Global), ScopeState::Applied(1));
        assert_eq!(
            board.runtimes[A].in_force[&Scope::Global].limits,
            hop_limit(1)
        );
        let base = board.seen(&Scope::Global);
        board.desired.set(Scope::Global, hop_limit(2), base);
        board.apply(ClientEvent::Outcome {
            addr: A.into(),
            scope: Scope::Global,
            version: 2,
            outcome: Outcome::Nack {
                reason: "no".into(),
                applied_version: 1,
            },
        });
        assert_eq!(
            board.state(A, &Scope::Global),
            ScopeState::Rejected {
                version: 2,
                reason: "no".into()
            }
        );
        let lost = board.apply(ClientEvent::Link {
            addr: A.into(),
            link: Link::Down {
                error: "gone".into(),
                retry_in: std::time::Duration::from_secs(1),
            },
        });
        assert!(lost.unwrap().1);
        // Down: the last known state, unconfirmed, never "applied".
        assert_eq!(
            board.state(A, &Scope::Global),
            ScopeState::Unconfirmed {
                last: Some(1),
                waiting: Some(2)
            }
        );
    }

    #[test]
    fn the_rows_are_each_scope_at_each_runtime_global_first_filtered_by_name() {
        let mut board = BudgetBoard::default();
        assert!(board.rows("").is_empty(), "no budget: no row");
        // nobody set the global budget: it is listed all the same, first
        board
            .desired
            .set(Scope::Segment("naive/pro".into()), hop_limit(5), 0);
        connect(
            &mut board,
            vec![in_force(
                Scope::Agent("writer".into()),
                1,
                "t",
                hop_limit(9),
            )],
        );
        board.apply(ClientEvent::Link {
            addr: "tcp:127.0.0.1:7701".into(),
            link: Link::Connecting,
        });
        let rows: Vec<(String, String)> = board
            .rows("")
            .into_iter()
            .map(|r| (r.scope.to_string(), r.runtime.unwrap_or_default()))
            .collect();
        let at =
            |scope: &str| ["tcp:127.0.0.1:7701", A].map(|addr| (scope.to_owned(), addr.to_owned()));
        let expected: Vec<(String, String)> = ["global", "agent writer", "segment naive/pro"]
            .into_iter()
            .flat_map(at)
            .collect();
        assert_eq!(rows, expected);
        assert_eq!(board.state(A, &Scope::Global), ScopeState::NotSet);
        let writer: Vec<Scope> = board.rows("WRIT").into_iter().map(|r| r.scope).collect();
        assert_eq!(writer, vec![Scope::Agent("writer".into()); 2]);
        assert_eq!(board.rows("segment").len(), 2);
        assert!(board.rows("nobody").is_empty());
        // every listed scope has its usage, the unset global one included
        board.refresh_usage(&snapshot_with_hop(100));
        assert_eq!(board.usage.len(), 3);
        assert_eq!(board.usage[&Scope::Global].largest_hop, 100);
    }

    #[test]
    fn what_another_controller_set_is_listed_wins_and_the_editor_starts_from_it() {
        let mut board = BudgetBoard::default();
        // Another controller set global per-hop 9000 (v1) before we connected.
        connect(
            &mut board,
            vec![in_force(Scope::Global, 1, "theirs", hop_limit(9000))],
        );
        assert_eq!(board.scopes(), vec![Scope::Global]);
        assert_eq!(board.state(A, &Scope::Global), ScopeState::Elsewhere(1));
        let start = board.editor_start(&Scope::Global);
        assert_eq!(start.before, Some(hop_limit(9000)));
        assert_eq!(start.base_version, 1);
        assert!(
            start.before_from.contains("set by another controller"),
            "{start:?}"
        );
        let editor = BudgetEditor::new(Scope::Global, start);
        assert_eq!(editor.values[0], "9000");
        // An agent's editor shows what it inherits.
        let agent = board.editor_start(&Scope::Agent("writer".into()));
        assert_eq!(agent.before, None);
        assert_eq!(agent.inherited, hop_limit(9000));
        assert_eq!(agent.inherited_from.as_deref(), Some("global"));
        let editor = BudgetEditor::new(Scope::Agent("writer".into()), agent);
        assert_eq!(editor.values[0], "");
        assert_eq!(editor.inherited_value(0).as_deref(), Some("9000"));

        // Our change is based on v1: v2.
        let ours = board.desired.set(Scope::Global, hop_limit(20_000), 1);
        assert_eq!((ours.version, ours.base_version), (2, Some(1)));
        board.apply(ClientEvent::Outcome {
            addr: A.into(),
            scope: Scope::Global,
            version: 2,
            outcome: Outcome::Ack,
        });
        assert_eq!(board.state(A, &Scope::Global), ScopeState::Applied(2));

        // The other controller sets v3 while we are connected: the refresh
        // shows it, and it wins; the Overview counts it as a budget change
        // (what was in force when we connected is not one).
        assert_eq!(board.changed_elsewhere, 0);
        let toast = board.apply(ClientEvent::State {
            addr: A.into(),
            budgets: vec![in_force(Scope::Global, 3, "theirs-2", hop_limit(7000))],
        });
        assert!(toast.unwrap().0.contains("set by another controller"));
        assert_eq!(board.changed_elsewhere, 1);
        board.apply(ClientEvent::State {
            addr: A.into(),
            budgets: vec![in_force(Scope::Global, 3, "theirs-2", hop_limit(7000))],
        });
        assert_eq!(
            board.changed_elsewhere, 1,
            "the same state again is no change"
        );
        assert_eq!(board.state(A, &Scope::Global), ScopeState::Elsewhere(3));
        assert_eq!(
            board.current(&Scope::Global).unwrap().0.limits,
            hop_limit(7000)
        );

        // A change based on v2 (the editor opened before the refresh) is
        // refused as a conflict; the board shows what is in force.
        board.desired.set(Scope::Global, hop_limit(30_000), 2);
        let toast = board.apply(ClientEvent::Outcome {
            addr: A.into(),
            scope: Scope::Global,
            version: 3,
            outcome: Outcome::Conflict {
                reason: "v3 is based on v2 but v3 is in force".into(),
                applied_version: 3,
                limits: Some(hop_limit(7000)),
            },
        });
        assert!(toast.unwrap().1, "a conflict is an error toast");
        // The refused change is dropped: what is in force there is wanted.
        assert_eq!(
            board.desired.budgets[&Scope::Global].limits,
            hop_limit(7000)
        );
        // ... and the refusal shows.
        assert_eq!(
            board.state(A, &Scope::Global),
            ScopeState::Conflict {
                version: 3,
                in_force: 3
            }
        );
        assert_eq!(
            board.editor_start(&Scope::Global).before,
            Some(hop_limit(7000))
        );
        assert_eq!(board.editor_start(&Scope::Global).base_version, 3);
    }

    #[test]
    fn a_change_is_numbered_above_what_runtimes_reported_and_based_on_the_edit() {
        let mut board = BudgetBoard::default();
        connect(
            &mut board,
            vec![in_force(Scope::Global, 99, "theirs-99", hop_limit(30_000))],
        );
        // The editor opened on v99; the other controller then set v100.
        let base = board.editor_start(&Scope::Global).base_version;
        assert_eq!(base, 99);
        board.apply(ClientEvent::State {
            addr: A.into(),
            budgets: vec![in_force(Scope::Global, 100, "theirs-100", hop_limit(4000))],
        });
        let ours = board.change(Scope::Global, hop_limit(25_000), base);
        assert_eq!(
            (ours.version, ours.base_version),
            (101, Some(99)),
            "never a version a runtime already reported; still based on the edit"
        );
    }

    #[test]
    fn a_refused_change_is_replaced_by_what_the_runtime_has_in_force() {
        let mut board = BudgetBoard::default();
        connect(
            &mut board,
            vec![in_force(Scope::Global, 100, "theirs-100", hop_limit(4000))],
        );
        board.change(Scope::Global, hop_limit(25_000), 99);
        let toast = board.apply(ClientEvent::Outcome {
            addr: A.into(),
            scope: Scope::Global,
            version: 101,
            outcome: Outcome::Conflict {
                reason: "v101 is based on v99 but v100 is in force".into(),
                applied_version: 100,
                limits: Some(hop_limit(4000)),
            },
        });
        let (text, error) = toast.unwrap();
        assert!(error && text.contains("adopted as wanted here"), "{text}");
        // What is wanted here is now theirs, with their key: a runtime that
        // has it acknowledges it, one that lost it gets it back.
        let wanted = &board.desired.budgets[&Scope::Global];
        assert_eq!(
            (
                wanted.version,
                &wanted.limits,
                wanted.idempotency_key.as_deref()
            ),
            (100, &hop_limit(4000), Some("theirs-100"))
        );
        assert_eq!(board.desired.adopted[&Scope::Global], A);
        assert_eq!(
            board.adoptions,
            vec![Adoption {
                runtime: A.into(),
                scope: Scope::Global,
                refused_version: 101,
                refused: Some(hop_limit(25_000)),
                adopted: Some(wanted.clone()),
            }]
        );
        let refusal = ScopeState::Conflict {
            version: 101,
            in_force: 100,
        };
        assert_eq!(board.state(A, &Scope::Global), refusal);
        // Theirs pushed back and acknowledged: still the refusal, shown.
        board.apply(ClientEvent::Outcome {
            addr: A.into(),
            scope: Scope::Global,
            version: 100,
            outcome: Outcome::Ack,
        });
        assert_eq!(board.state(A, &Scope::Global), refusal);
        let start = board.editor_start(&Scope::Global);
        assert_eq!(start.before, Some(hop_limit(4000)));
        assert_eq!(start.base_version, 100);
        assert!(
            start.before_from.contains("set by another controller"),
            "{start:?}"
        );

        // The runtime restarts without budgets: what is wanted is still
        // theirs (waiting to be restored), never the refused 25000.
        board.apply(ClientEvent::Link {
            addr: A.into(),
            link: Link::Down {
                error: "gone".into(),
                retry_in: std::time::Duration::from_secs(1),
            },
        });
        connect(&mut board, Vec::new());
        assert_eq!(
            board.desired.budgets[&Scope::Global].limits,
            hop_limit(4000)
        );
        assert_eq!(board.adoptions.len(), 1, "adopted once");

        // A runtime that predates conflicts acks another version without
        // saying its limits: the refused change is dropped at once, and its
        // next state adopted.
        board.change(Scope::Global, hop_limit(50_000), 100);
        let version = board.desired.budgets[&Scope::Global].version;
        board.apply(ClientEvent::Outcome {
            addr: A.into(),
            scope: Scope::Global,
            version,
            outcome: Outcome::Conflict {
                reason: "v120 is in force".into(),
                applied_version: 120,
                limits: None,
            },
        });
        assert!(!board.desired.budgets.contains_key(&Scope::Global));
        board.apply(ClientEvent::State {
            addr: A.into(),
            budgets: vec![in_force(Scope::Global, 120, "theirs-120", hop_limit(3000))],
        });
        assert_eq!(board.desired.budgets[&Scope::Global].version, 120);
        assert_eq!(board.adoptions.len(), 3);
    }
}
