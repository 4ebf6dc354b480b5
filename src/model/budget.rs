//! Budgets: limits per scope, their precedence, and usage against them.
//! Pure data and arithmetic; the control client pushes them, the runtime
//! enforces them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::snapshot::Snapshot;
use crate::types::money::Usd;

/// What a budget applies to. Precedence, most specific first: agent,
/// segment, global (per limit: an agent budget without a run limit takes the
/// segment's or the global one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Scope {
    Global,
    Agent(String),
    Segment(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Agent(name) => write!(f, "agent {name}"),
            Scope::Segment(name) => write!(f, "segment {name}"),
        }
    }
}

/// What the runtime does when a limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BreachAction {
    /// Trim the context to the limit (per-hop limits).
    Trim,
    /// Stop the run (`RunBudgetExceeded`).
    Abort,
    /// Hold the run until the limit is raised.
    Pause,
    /// Only report.
    Warn,
}

impl BreachAction {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            BreachAction::Trim => "trim",
            BreachAction::Abort => "abort",
            BreachAction::Pause => "pause",
            BreachAction::Warn => "warn",
        }
    }
}

/// The limits of one scope. `None` means "not set here" (a less specific
/// scope's limit applies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Input tokens per hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_hop_limit: Option<u64>,
    /// Tokens (input + output) per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_run_limit: Option<u64>,
    /// Dollars per run, as an exact decimal string (`"0.50"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_cost_limit_usd: Option<String>,
    /// On a per-hop breach (default `trim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_hop_breach: Option<BreachAction>,
    /// On a run breach, tokens or cost (default `abort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_run_breach: Option<BreachAction>,
}

/// Why limits are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("{0} must be greater than 0")]
    Zero(&'static str),
    #[error("run_cost_limit_usd '{0}' is not a positive amount of dollars")]
    BadCost(String),
    #[error("per_hop_limit ({hop}) exceeds total_run_limit ({run})")]
    HopOverRun { hop: u64, run: u64 },
    #[error("a budget needs at least one limit")]
    Empty,
}

impl Limits {
    /// Checks the limits a runtime would refuse.
    ///
    /// # Errors
    /// Zero limits, a bad dollar amount, a per-hop limit above the run limit,
    /// no limit at all.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.per_hop_limit.is_none()
            && self.total_run_limit.is_none()
            && self.run_cost_limit_usd.is_none()
        {
            return Err(LimitsError::Empty);
        }
        if self.per_hop_limit == Some(0) {
            return Err(LimitsError::Zero("per_hop_limit"));
        }
        if self.total_run_limit == Some(0) {
            return Err(LimitsError::Zero("total_run_limit"));
        }
        if let Some(text) = &self.run_cost_limit_usd {
            match Usd::parse_decimal(text) {
                Ok(amount) if amount > Usd::ZERO => {}
                _ => return Err(LimitsError::BadCost(text.clone())),
            }
        }
        if let (Some(hop), Some(run)) = (self.per_hop_limit, self.total_run_limit)
            && hop > run
        {
            return Err(LimitsError::HopOverRun { hop, run });
        }
        Ok(())
    }

    #[must_use]
    pub fn run_cost_limit(&self) -> Option<Usd> {
        self.run_cost_limit_usd
            .as_deref()
            .and_then(|t| Usd::parse_decimal(t).ok())
    }

    /// Fills what `self` leaves unset from `fallback`.
    #[must_use]
    pub fn or(&self, fallback: &Limits) -> Limits {
        Limits {
            per_hop_limit: self.per_hop_limit.or(fallback.per_hop_limit),
            total_run_limit: self.total_run_limit.or(fallback.total_run_limit),
            run_cost_limit_usd: self
                .run_cost_limit_usd
                .clone()
                .or_else(|| fallback.run_cost_limit_usd.clone()),
            on_hop_breach: self.on_hop_breach.or(fallback.on_hop_breach),
            on_run_breach: self.on_run_breach.or(fallback.on_run_breach),
        }
    }

    /// A one-line description (`per-hop 9,000 (trim) · run 60,000 (abort) · run $0.50 (abort)`).
    #[must_use]
    pub fn describe(&self) -> String {
        let hop = self.on_hop_breach.unwrap_or(BreachAction::Trim).as_str();
        let run = self.on_run_breach.unwrap_or(BreachAction::Abort).as_str();
        let mut parts = Vec::new();
        if let Some(n) = self.per_hop_limit {
            parts.push(format!("per-hop {n} ({hop})"));
        }
        if let Some(n) = self.total_run_limit {
            parts.push(format!("run {n} tokens ({run})"));
        }
        if let Some(usd) = &self.run_cost_limit_usd {
            let usd = Usd::parse_decimal(usd).map_or_else(|_| usd.clone(), money_text);
            parts.push(format!("run ${usd} ({run})"));
        }
        if parts.is_empty() {
            "no limits".to_owned()
        } else {
            parts.join(" · ")
        }
    }
}

/// An exact dollar amount with at least two decimals (`0.50`, `0.125`):
/// never rounded.
#[must_use]
pub fn money_text(usd: Usd) -> String {
    let text = usd.to_string();
    match text.split_once('.') {
        Some((_, frac)) if frac.len() >= 2 => text,
        Some((_, frac)) => format!("{text}{}", "0".repeat(2 - frac.len())),
        None => format!("{text}.00"),
    }
}

/// Limits by scope: a budgets store's, the limits a dashboard shows, the
/// run limits a report's forecasts are measured against.
pub type LimitsByScope = BTreeMap<Scope, Limits>;

/// The effective limits for a hop of `agent` in `segment`, from a set of
/// scoped limits (agent over segment over global, per limit).
#[must_use]
pub fn effective(budgets: &LimitsByScope, agent: Option<&str>, segment: Option<&str>) -> Limits {
    let global = budgets.get(&Scope::Global).cloned().unwrap_or_default();
    let segment = segment
        .and_then(|s| budgets.get(&Scope::Segment(s.to_owned())))
        .cloned()
        .unwrap_or_default();
    let agent = agent
        .and_then(|a| budgets.get(&Scope::Agent(a.to_owned())))
        .cloned()
        .unwrap_or_default();
    agent.or(&segment).or(&global)
}

/// Current usage measured against a scope's limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// The largest hop input in scope, and where.
    pub largest_hop: u64,
    pub largest_hop_at: Option<(Arc<str>, u32)>,
    /// The worst run's tokens and cost in scope.
    pub worst_run_tokens: u64,
    pub worst_run_cost: Usd,
    pub worst_run: Option<Arc<str>>,
    /// Of the runs and hops in scope, how many would breach the limits.
    pub hops_over: u64,
    pub runs_over: u64,
    pub hops: u64,
    pub runs: u64,
}

/// Usage of `scope` in `snapshot` against `limits` (what would have breached).
#[must_use]
pub fn usage(snapshot: &Snapshot, scope: &Scope, limits: &Limits) -> Usage {
    usage_each(snapshot, &[(scope, limits)])
        .pop()
        .unwrap_or_default()
}

/// [`usage`] of each scope against its limits, in one pass over the runs
/// (the Budgets screen measures every budget listed once per snapshot:
/// at 10k runs, reading the hops once instead of once per budget is most
/// of the cost). A run outside a segment's scope is told apart without
/// reading its hops.
#[must_use]
pub fn usage_each(snapshot: &Snapshot, scopes: &[(&Scope, &Limits)]) -> Vec<Usage> {
    let mut out = vec![Usage::default(); scopes.len()];
    let cost_limits: Vec<Option<Usd>> = scopes.iter().map(|(_, l)| l.run_cost_limit()).collect();
    // per scope, for the run being read: whether it may hold hops in scope,
    // and how many it does
    let mut open = vec![false; scopes.len()];
    let mut hops_in = vec![0_u64; scopes.len()];
    for run in &snapshot.runs {
        let segment = run.segment.as_deref();
        for (i, (scope, _)) in scopes.iter().enumerate() {
            open[i] = match scope {
                Scope::Segment(name) => segment == Some(name.as_str()),
                Scope::Global | Scope::Agent(_) => true,
            };
            hops_in[i] = 0;
        }
        if !open.contains(&true) {
            continue;
        }
        for hop in &run.hops {
            let input = hop.usage.input_total();
            for (i, (scope, limits)) in scopes.iter().enumerate() {
                // `open` decided the global and segment scopes for the run
                let in_scope = open[i]
                    && match scope {
                        Scope::Agent(name) => **name == *hop.agent,
                        Scope::Global | Scope::Segment(_) => true,
                    };
                if !in_scope {
                    continue;
                }
                hops_in[i] += 1;
                let usage = &mut out[i];
                if input > usage.largest_hop {
                    usage.largest_hop = input;
                    usage.largest_hop_at = Some((run.run_id.clone(), hop.hop));
                }
                if limits.per_hop_limit.is_some_and(|l| input > l) {
                    usage.hops_over = usage.hops_over.saturating_add(1);
                }
            }
        }
        let counters = run.counters();
        let (tokens, cost) = (counters.total_tokens, counters.cost);
        for (i, (_, limits)) in scopes.iter().enumerate() {
            if hops_in[i] == 0 {
                continue;
            }
            let usage = &mut out[i];
            usage.hops = usage.hops.saturating_add(hops_in[i]);
            usage.runs = usage.runs.saturating_add(1);
            if tokens > usage.worst_run_tokens {
                usage.worst_run_tokens = tokens;
                usage.worst_run = Some(run.run_id.clone());
            }
            usage.worst_run_cost = usage.worst_run_cost.max(cost);
            if limits.total_run_limit.is_some_and(|l| tokens > l)
                || cost_limits[i].is_some_and(|l| cost > l)
            {
                usage.runs_over = usage.runs_over.saturating_add(1);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(hop: Option<u64>, run: Option<u64>) -> Limits {
        Limits {
            per_hop_limit: hop,
            total_run_limit: run,
            ..Limits::default()
        }
    }

    #[test]
    fn validation_rejects_what_a_runtime_would() {
        assert_eq!(Limits::default().validate(), Err(LimitsError::Empty));
        assert_eq!(
            limits(Some(0), None).validate(),
            Err(LimitsError::Zero("per_hop_limit"))
        );
        assert_eq!(
            limits(Some(10), Some(5)).validate(),
            Err(LimitsError::HopOverRun { hop: 10, run: 5 })
        );
        let bad = Limits {
            run_cost_limit_usd: Some("-1".into()),
            ..Limits::default()
        };
        assert!(matches!(bad.validate(), Err(LimitsError::BadCost(_))));
        assert_eq!(limits(Some(5), Some(10)).validate(), Ok(()));
    }

    #[test]
    fn most_specific_scope_wins_per_limit() {
        let mut budgets = BTreeMap::new();
        budgets.insert(
            Scope::Global,
            Limits {
                per_hop_limit: Some(100),
                total_run_limit: Some(1000),
                on_run_breach: Some(BreachAction::Warn),
                ..Limits::default()
            },
        );
        budgets.insert(Scope::Segment("pro".into()), limits(None, Some(5000)));
        budgets.insert(Scope::Agent("writer".into()), limits(Some(400), None));
        let writer_pro = effective(&budgets, Some("writer"), Some("pro"));
        assert_eq!(
            (writer_pro.per_hop_limit, writer_pro.total_run_limit),
            (Some(400), Some(5000))
        );
        assert_eq!(writer_pro.on_run_breach, Some(BreachAction::Warn));
        let other = effective(&budgets, Some("planner"), Some("free"));
        assert_eq!(
            (other.per_hop_limit, other.total_run_limit),
            (Some(100), Some(1000))
        );
        assert_eq!(effective(&BTreeMap::new(), None, None), Limits::default());
    }

    #[test]
    fn scopes_serialize_as_tagged_objects() {
        assert_eq!(
            serde_json::to_string(&Scope::Global).unwrap(),
            r#"{"kind":"global"}"#
        );
        assert_eq!(
            serde_json::to_string(&Scope::Agent("w".into())).unwrap(),
            r#"{"kind":"agent","name":"w"}"#
        );
        let back: Scope = serde_json::from_str(r#"{"kind":"segment","name":"pro"}"#).unwrap();
        assert_eq!(back, Scope::Segment("pro".into()));
    }

    #[test]
    fn descriptions_read_well() {
        let l = Limits {
            per_hop_limit: Some(9000),
            total_run_limit: Some(60000),
            run_cost_limit_usd: Some("0.50".into()),
            ..Limits::default()
        };
        assert_eq!(
            l.describe(),
            "per-hop 9000 (trim) · run 60000 tokens (abort) · run $0.50 (abort)"
        );
        // A runtime's `0.5` reads as money; exact amounts are never rounded.
        for (text, shown) in [
            ("0.5", "run $0.50 (abort)"),
            ("2", "run $2.00 (abort)"),
            ("0.125", "run $0.125 (abort)"),
        ] {
            let l = Limits {
                run_cost_limit_usd: Some(text.into()),
                ..Limits::default()
            };
            assert_eq!(l.describe(), shown);
        }
    }

    /// Runs `a` (segment s1: writer 100 + 900 input, planner 50) and `b`
    /// (segment s2: writer 300), each hop with 10 output tokens.
    fn two_runs() -> Snapshot {
        use crate::model::{Ledger, LedgerConfig, TelemetryEvent};
        use crate::pricing::PriceBook;
        use std::borrow::Cow;
        let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default().unlimited());
        let hops = [
            ("a", 1, "writer", "s1", 100),
            ("a", 2, "planner", "s1", 50),
            ("a", 3, "writer", "s1", 900),
            ("b", 1, "writer", "s2", 300),
        ];
        for (run, hop, agent, segment, input) in hops {
            let usage = crate::types::usage::Usage {
                input_uncached: input,
                output: 10,
                ..Default::default()
            };
            ledger.apply(&TelemetryEvent {
                segment: Some(Cow::Borrowed(segment)),
                ..TelemetryEvent::hop_for_test(run, hop, agent, "gpt-4o-mini", usage)
            });
        }
        ledger.snapshot()
    }

    #[test]
    fn usage_counts_the_runs_and_hops_of_each_scope_against_its_limits() {
        let snap = two_runs();
        let loose = limits(Some(200), Some(1_000));
        let global = usage(&snap, &Scope::Global, &loose);
        assert_eq!((global.runs, global.hops), (2, 4));
        assert_eq!((global.hops_over, global.runs_over), (2, 1));
        assert_eq!(global.largest_hop, 900);
        assert_eq!(global.largest_hop_at, Some((Arc::from("a"), 3)));
        // the worst run is the whole run the scope's hops are in
        assert_eq!(global.worst_run_tokens, 1_080);
        assert_eq!(global.worst_run.as_deref(), Some("a"));

        let writer = usage(&snap, &Scope::Agent("writer".into()), &loose);
        assert_eq!((writer.runs, writer.hops), (2, 3));
        assert_eq!((writer.hops_over, writer.runs_over), (2, 1));
        let planner = usage(&snap, &Scope::Agent("planner".into()), &loose);
        assert_eq!((planner.runs, planner.hops, planner.hops_over), (1, 1, 0));
        assert_eq!(planner.largest_hop_at, Some((Arc::from("a"), 2)));
        assert_eq!(planner.worst_run_tokens, 1_080);

        let s2 = usage(&snap, &Scope::Segment("s2".into()), &loose);
        assert_eq!((s2.runs, s2.hops, s2.hops_over, s2.runs_over), (1, 1, 1, 0));
        assert_eq!(s2.worst_run.as_deref(), Some("b"));
        let none = usage(&snap, &Scope::Segment("s3".into()), &loose);
        assert_eq!(none, Usage::default());

        // all at once: the same as one by one
        let scopes = [
            Scope::Global,
            Scope::Agent("writer".into()),
            Scope::Segment("s2".into()),
            Scope::Agent("planner".into()),
            Scope::Segment("s3".into()),
        ];
        let tight = limits(Some(60), None);
        let each: Vec<(&Scope, &Limits)> = scopes
            .iter()
            .zip([&loose, &tight, &loose, &tight, &loose])
            .collect();
        let one_by_one: Vec<Usage> = each.iter().map(|(s, l)| usage(&snap, s, l)).collect();
        assert_eq!(usage_each(&snap, &each), one_by_one);
        assert_eq!(one_by_one[1].hops_over, 3);
        assert_eq!(one_by_one[2], s2);
    }
}
