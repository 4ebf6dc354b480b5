//! What control links report (`--control`), folded for the metrics:
//! `tokwatch_runtime_up{runtime}` and `tokwatch_budget_limit{runtime,
//! scope, kind}`. Pure: [`RuntimeFold::apply`] takes the links' events.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::BudgetGauge;
use super::server::RuntimeBoard;
use crate::control::client::{ClientEvent, Link};
use crate::control::protocol::VersionedBudget;
use crate::model::budget::Scope;
use crate::model::ledger::series::{SeriesCaps, label_value};
use crate::types::money::Usd;

/// Budget series exported at most, over all runtimes (past it, the rest is
/// left out and counted in the log).
pub const MAX_BUDGET_SERIES: usize = 1_000;

/// `raw` as a label value of at most `max_bytes` that no other raw value
/// shares: as it is when [`label_value`] keeps it unchanged, else the
/// shortened, sanitized text followed by `~` and 8 hex digits of a hash of
/// `raw` (two runtimes or scopes that read alike once shortened or
/// sanitized stay two series).
fn distinct_label(raw: &str, max_bytes: usize) -> Arc<str> {
    let plain = label_value(raw, max_bytes);
    if &*plain == raw {
        return plain;
    }
    // FNV-1a, 64 bits: stable across runs (a series keeps its name).
    let hash = raw.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let tag = format!("~{:08x}", hash >> 32);
    let text = label_value(raw, max_bytes.saturating_sub(tag.len()));
    Arc::from(format!("{text}{tag}"))
}

/// The runtimes' link states and budgets in force, as last reported.
#[derive(Debug, Clone, Default)]
pub struct RuntimeFold {
    up: BTreeMap<String, bool>,
    budgets: BTreeMap<String, Vec<VersionedBudget>>,
}

impl RuntimeFold {
    /// Runtimes named on the command line, down until their link connects.
    #[must_use]
    pub fn new(runtimes: &[String]) -> Self {
        RuntimeFold {
            up: runtimes.iter().map(|r| (r.clone(), false)).collect(),
            budgets: BTreeMap::new(),
        }
    }

    /// Takes one event; returns whether the board changed.
    pub fn apply(&mut self, event: &ClientEvent) -> bool {
        match event {
            ClientEvent::Link { addr, link } => {
                let up = matches!(link, Link::Connected { .. });
                self.up.insert(addr.clone(), up) != Some(up)
            }
            ClientEvent::State { addr, budgets } => {
                let same = self.budgets.get(addr) == Some(budgets);
                self.budgets.insert(addr.clone(), budgets.clone());
                !same
            }
            ClientEvent::Outcome { .. } | ClientEvent::Exceeded { .. } => false,
        }
    }

    /// The board the metrics read. A runtime whose link is down keeps the
    /// budgets it last reported (its `tokwatch_runtime_up` says 0).
    #[must_use]
    pub fn board(&self) -> RuntimeBoard {
        let bytes = SeriesCaps::DEFAULT_LABEL_BYTES;
        let runtimes = self
            .up
            .iter()
            .map(|(addr, up)| (distinct_label(addr, bytes), *up))
            .collect();
        let mut budgets = Vec::new();
        // A runtime reporting one scope twice: its first budget.
        let mut seen = HashSet::new();
        'all: for (addr, list) in &self.budgets {
            let runtime = distinct_label(addr, bytes);
            for budget in list {
                let scope = match &budget.scope {
                    Scope::Global => Arc::from("global"),
                    Scope::Agent(name) => distinct_label(&format!("agent:{name}"), bytes),
                    Scope::Segment(name) => distinct_label(&format!("segment:{name}"), bytes),
                };
                let l = &budget.limits;
                let cost = l
                    .run_cost_limit_usd
                    .as_deref()
                    .and_then(|text| Usd::parse_decimal(text).ok())
                    .map(|usd| usd.to_string());
                let limits = [
                    (
                        "per_hop_input_tokens",
                        l.per_hop_limit.map(|n| n.to_string()),
                    ),
                    ("run_tokens", l.total_run_limit.map(|n| n.to_string())),
                    ("run_cost_usd", cost),
                ];
                for (kind, value) in limits {
                    let Some(value) = value else { continue };
                    if budgets.len() >= MAX_BUDGET_SERIES {
                        break 'all;
                    }
                    if !seen.insert((runtime.clone(), scope.clone(), kind)) {
                        continue;
                    }
                    budgets.push(BudgetGauge {
                        runtime: runtime.clone(),
                        scope: scope.clone(),
                        kind: Arc::from(kind),
                        value,
                    });
                }
            }
        }
        RuntimeBoard { runtimes, budgets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::budget::Limits;

    fn budget(scope: Scope, limits: Limits) -> VersionedBudget {
        VersionedBudget {
            scope,
            version: 3,
            base_version: None,
            idempotency_key: None,
            limits,
        }
    }

    #[test]
    fn links_and_states_become_gauges() {
        let mut fold = RuntimeFold::new(&["unix:/a.sock".into(), "unix:/b.sock".into()]);
        assert!(fold.apply(&ClientEvent::Link {
            addr: "unix:/a.sock".into(),
            link: Link::Connected {
                runtime: "rt".into(),
                runtime_id: "1".into(),
            },
        }));
        let state = ClientEvent::State {
            addr: "unix:/a.sock".into(),
            budgets: vec![
                budget(
                    Scope::Global,
                    Limits {
                        run_cost_limit_usd: Some("0.50".into()),
                        ..Limits::default()
                    },
                ),
                budget(
                    Scope::Agent("plan\u{1b}ner".into()),
                    Limits {
                        per_hop_limit: Some(8_000),
                        total_run_limit: Some(50_000),
                        ..Limits::default()
                    },
                ),
            ],
        };
        assert!(fold.apply(&state));
        assert!(!fold.apply(&state), "the same state changes nothing");
        let board = fold.board();
        assert_eq!(
            board.runtimes,
            vec![
                (Arc::from("unix:/a.sock"), true),
                (Arc::from("unix:/b.sock"), false)
            ]
        );
        let gauges: Vec<(&str, &str, &str)> = board
            .budgets
            .iter()
            .map(|b| (&*b.scope, &*b.kind, b.value.as_str()))
            .collect();
        assert_eq!(
            gauges,
            [
                ("global", "run_cost_usd", "0.5"),
                // sanitized: a hash of the name says which it was
                (
                    "agent:plan\u{FFFD}ner~fe40797c",
                    "per_hop_input_tokens",
                    "8000"
                ),
                ("agent:plan\u{FFFD}ner~fe40797c", "run_tokens", "50000"),
            ]
        );
        // Down: the last budgets stay, the runtime is down.
        assert!(fold.apply(&ClientEvent::Link {
            addr: "unix:/a.sock".into(),
            link: Link::Down {
                error: "gone".into(),
                retry_in: std::time::Duration::from_secs(1),
            },
        }));
        let board = fold.board();
        assert_eq!(board.runtimes[0], (Arc::from("unix:/a.sock"), false));
        assert_eq!(board.budgets.len(), 3);
    }

    /// Two agents whose scopes read alike once shortened to 128 bytes, or
    /// once sanitized, are two series; a scope reported twice is one.
    #[test]
    fn scopes_that_read_alike_once_shortened_or_sanitized_stay_apart() {
        let long = "a".repeat(200);
        let limits = Limits {
            total_run_limit: Some(1_000),
            ..Limits::default()
        };
        let mut fold = RuntimeFold::new(&[]);
        fold.apply(&ClientEvent::State {
            addr: "unix:/a.sock".into(),
            budgets: vec![
                budget(Scope::Agent(format!("{long}1")), limits.clone()),
                budget(Scope::Agent(format!("{long}2")), limits.clone()),
                budget(Scope::Agent("x\u{1}".into()), limits.clone()),
                budget(Scope::Agent("x\u{2}".into()), limits.clone()),
                budget(Scope::Agent("x\u{2}".into()), limits.clone()),
                budget(Scope::Agent("plain".into()), limits),
            ],
        });
        let board = fold.board();
        let scopes: Vec<&str> = board.budgets.iter().map(|b| &*b.scope).collect();
        assert_eq!(scopes.len(), 5, "{scopes:?}");
        let distinct: HashSet<&str> = scopes.iter().copied().collect();
        assert_eq!(distinct.len(), 5, "{scopes:?}");
        for scope in &scopes {
            assert!(scope.len() <= SeriesCaps::DEFAULT_LABEL_BYTES, "{scope}");
        }
        assert!(scopes[0].starts_with("agent:aaa") && scopes[0].contains("…~"));
        assert!(scopes[2].starts_with("agent:x\u{FFFD}~"), "{}", scopes[2]);
        assert_eq!(scopes[4], "agent:plain");
    }
}
