//! What control links report (`--control`), folded for the metrics:
//! `tokwatch_runtime_up{runtime}` and `tokwatch_budget_limit{runtime,
//! scope, kind}`. Pure: [`RuntimeFold::apply`] takes the links' events.

use std::collections::BTreeMap;
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
            .map(|(addr, up)| (label_value(addr, bytes), *up))
            .collect();
        let mut budgets = Vec::new();
        'all: for (addr, list) in &self.budgets {
            let runtime = label_value(addr, bytes);
            for budget in list {
                let scope = match &budget.scope {
                    Scope::Global => Arc::from("global"),
                    Scope::Agent(name) => label_value(&format!("agent:{name}"), bytes),
                    Scope::Segment(name) => label_value(&format!("segment:{name}"), bytes),
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
                ("agent:plan\u{FFFD}ner", "per_hop_input_tokens", "8000"),
                ("agent:plan\u{FFFD}ner", "run_tokens", "50000"),
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
}
