//! The runtime's side of budget control: the limits in force per scope,
//! their versions, and the answers already given per idempotency key.
//! Pure: the server feeds it requests, the simulation reads its limits.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::control::protocol::{Applied, CONFLICT, Reply, VersionedBudget};
use crate::model::budget::{Limits, Scope};

/// Answers remembered per idempotency key (oldest forgotten first).
const REMEMBERED_KEYS: usize = 10_000;

/// How a `budget.set` (or a `budget.sync` entry) was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ack {
        scope: Scope,
        version: u64,
    },
    /// Invalid limits.
    Nack {
        scope: Scope,
        version: u64,
        applied_version: u64,
        reason: String,
    },
    /// Not based on the version in force: refused with what is in force.
    Conflict {
        scope: Scope,
        version: u64,
        applied_version: u64,
        limits: Option<Limits>,
        reason: String,
    },
}

impl Outcome {
    /// The reply to the request `id`.
    #[must_use]
    pub fn reply(&self, id: &str) -> Reply {
        match self.clone() {
            Outcome::Ack { scope, version } => Reply::Ack {
                id: id.to_owned(),
                scope,
                version,
            },
            Outcome::Nack {
                scope,
                version,
                applied_version,
                reason,
            } => Reply::Nack {
                id: id.to_owned(),
                scope,
                version,
                applied_version,
                reason,
                code: None,
                limits: None,
            },
            Outcome::Conflict {
                scope,
                version,
                applied_version,
                limits,
                reason,
            } => Reply::Nack {
                id: id.to_owned(),
                scope,
                version,
                applied_version,
                reason,
                code: Some(CONFLICT.to_owned()),
                limits,
            },
        }
    }
}

#[derive(Debug, Clone)]
struct InForce {
    version: u64,
    key: Option<String>,
    limits: Limits,
}

/// Applied budgets per scope, with versions and idempotency keys.
#[derive(Debug, Default)]
pub struct BudgetTable {
    applied: BTreeMap<Scope, InForce>,
    answers: HashMap<String, Outcome>,
    keys: VecDeque<String>,
}

impl BudgetTable {
    /// Handles one change: returns the answer and whether the limits in
    /// force changed.
    ///
    /// - an empty or blank key is no key: clients that send one would
    ///   otherwise all share it and get each other's remembered answers;
    /// - a key seen before gets the same answer as the first time (and the
    ///   version in force with its own key is acknowledged: it is applied);
    /// - a version not newer than the one in force, or a change based on an
    ///   older version than the one in force (`base`), is refused as a
    ///   conflict carrying the version and limits in force;
    /// - invalid limits are refused with the reason, the previous ones stay;
    /// - otherwise the budget replaces the scope's previous one.
    pub fn set(
        &mut self,
        scope: Scope,
        version: u64,
        base: Option<u64>,
        key: Option<&str>,
        limits: Limits,
    ) -> (Outcome, bool) {
        let key = key.filter(|k| !k.trim().is_empty());
        if let Some(answer) = key.and_then(|k| self.answers.get(k)) {
            return (answer.clone(), false);
        }
        let in_force = self.applied.get(&scope);
        let applied_version = in_force.map_or(0, |b| b.version);
        if let Some(b) = in_force
            && b.version == version
            && b.key.is_some()
            && b.key.as_deref() == key
        {
            return (Outcome::Ack { scope, version }, false);
        }
        let stale = version <= applied_version;
        let behind = base.is_some_and(|b| b < applied_version);
        let (outcome, changed) = if stale || behind {
            let reason = if behind {
                format!(
                    "v{version} is based on v{} but v{applied_version} is in force (set by another controller)",
                    base.unwrap_or(0)
                )
            } else {
                format!(
                    "v{version} is not newer than v{applied_version} in force (set by another controller)"
                )
            };
            (
                Outcome::Conflict {
                    limits: in_force.map(|b| b.limits.clone()),
                    scope,
                    version,
                    applied_version,
                    reason,
                },
                false,
            )
        } else if let Err(e) = limits.validate() {
            (
                Outcome::Nack {
                    scope,
                    version,
                    applied_version,
                    reason: e.to_string(),
                },
                false,
            )
        } else {
            self.applied.insert(
                scope.clone(),
                InForce {
                    version,
                    key: key.map(str::to_owned),
                    limits,
                },
            );
            (Outcome::Ack { scope, version }, true)
        };
        if let Some(key) = key {
            self.remember(key, outcome.clone());
        }
        (outcome, changed)
    }

    fn remember(&mut self, key: &str, outcome: Outcome) {
        if self.keys.len() >= REMEMBERED_KEYS
            && let Some(oldest) = self.keys.pop_front()
        {
            self.answers.remove(&oldest);
        }
        self.keys.push_back(key.to_owned());
        self.answers.insert(key.to_owned(), outcome);
    }

    /// The version in force per scope (for `hello`).
    #[must_use]
    pub fn applied(&self) -> Vec<Applied> {
        self.applied
            .iter()
            .map(|(scope, b)| Applied {
                scope: scope.clone(),
                version: b.version,
            })
            .collect()
    }

    /// The budgets in force (for `budget.state`), each with the key of the
    /// change that set it.
    #[must_use]
    pub fn state(&self) -> Vec<VersionedBudget> {
        self.applied
            .iter()
            .map(|(scope, b)| VersionedBudget {
                scope: scope.clone(),
                version: b.version,
                base_version: None,
                idempotency_key: b.key.clone(),
                limits: b.limits.clone(),
            })
            .collect()
    }

    /// The limits in force per scope (for [`crate::model::budget::effective`]).
    #[must_use]
    pub fn limits(&self) -> BTreeMap<Scope, Limits> {
        self.applied
            .iter()
            .map(|(scope, b)| (scope.clone(), b.limits.clone()))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hop(n: u64) -> Limits {
        Limits {
            per_hop_limit: Some(n),
            ..Limits::default()
        }
    }

    #[test]
    fn newer_versions_apply_stale_and_unbased_ones_are_refused_with_what_is_in_force() {
        let mut table = BudgetTable::default();
        let (first, changed) = table.set(Scope::Global, 3, Some(0), Some("k3"), hop(9000));
        assert!(changed);
        assert_eq!(
            first,
            Outcome::Ack {
                scope: Scope::Global,
                version: 3
            }
        );
        // An older version with a new key is another change, made on stale
        // knowledge: refused (not acknowledged), with what is in force.
        let (late, changed) = table.set(Scope::Global, 2, None, Some("k2"), hop(1));
        assert!(!changed);
        assert_eq!(
            late,
            Outcome::Conflict {
                scope: Scope::Global,
                version: 2,
                applied_version: 3,
                limits: Some(hop(9000)),
                reason: "v2 is not newer than v3 in force (set by another controller)".into(),
            }
        );
        // A newer version based on an older one than in force: refused too.
        let (behind, changed) = table.set(Scope::Global, 4, Some(1), Some("k4"), hop(20_000));
        assert!(!changed);
        assert!(
            matches!(&behind, Outcome::Conflict { applied_version: 3, reason, .. }
                if reason == "v4 is based on v1 but v3 is in force (set by another controller)"),
            "{behind:?}"
        );
        assert!(matches!(
            behind.reply("c9"),
            Reply::Nack { code: Some(ref c), limits: Some(ref l), applied_version: 3, .. }
                if c == CONFLICT && *l == hop(9000)
        ));
        assert_eq!(table.limits()[&Scope::Global], hop(9000));
        // A duplicate key answers as the first time, whatever it carries.
        let (again, changed) = table.set(Scope::Global, 99, None, Some("k3"), hop(5));
        assert!(!changed);
        assert_eq!(again, first);
        // Based on the version in force: applied.
        let (rebased, changed) = table.set(Scope::Global, 5, Some(3), Some("k5"), hop(20_000));
        assert!(changed);
        assert_eq!(
            rebased,
            Outcome::Ack {
                scope: Scope::Global,
                version: 5
            }
        );
        assert_eq!(table.applied()[0].version, 5);
        assert_eq!(table.state()[0].idempotency_key.as_deref(), Some("k5"));
    }

    #[test]
    fn invalid_limits_are_refused_and_the_previous_ones_stay() {
        let mut table = BudgetTable::default();
        table.set(Scope::Agent("writer".into()), 1, None, Some("a"), hop(9000));
        let bad = Limits {
            per_hop_limit: Some(90_000),
            total_run_limit: Some(60_000),
            ..Limits::default()
        };
        let (nack, changed) = table.set(Scope::Agent("writer".into()), 2, Some(1), Some("b"), bad);
        assert!(!changed);
        assert_eq!(
            nack,
            Outcome::Nack {
                scope: Scope::Agent("writer".into()),
                version: 2,
                applied_version: 1,
                reason: "per_hop_limit (90000) exceeds total_run_limit (60000)".into(),
            }
        );
        assert_eq!(table.limits()[&Scope::Agent("writer".into())], hop(9000));
        let (empty, _) = table.set(Scope::Global, 1, None, None, Limits::default());
        assert!(matches!(
            empty,
            Outcome::Nack {
                applied_version: 0,
                ..
            }
        ));
        assert!(table.state().iter().all(|b| b.scope != Scope::Global));
    }

    #[test]
    fn empty_and_blank_keys_are_no_keys() {
        let mut table = BudgetTable::default();
        for (version, key, limit) in [(1, "", 9000), (2, "", 5000), (3, " \t", 4000)] {
            let (outcome, changed) = table.set(Scope::Global, version, None, Some(key), hop(limit));
            assert!(changed, "v{version} with key {key:?}");
            assert_eq!(
                outcome,
                Outcome::Ack {
                    scope: Scope::Global,
                    version
                }
            );
        }
        assert_eq!(table.limits()[&Scope::Global], hop(4000));
        assert_eq!(table.state()[0].idempotency_key, None);
        assert!(table.answers.is_empty() && table.keys.is_empty());
    }

    #[test]
    fn remembered_keys_are_bounded() {
        let mut table = BudgetTable::default();
        for v in 1..=(REMEMBERED_KEYS as u64 + 5) {
            table.set(Scope::Global, v, None, Some(&format!("k{v}")), hop(v));
        }
        assert_eq!(table.answers.len(), REMEMBERED_KEYS);
        assert!(!table.answers.contains_key("k1"));
    }
}
