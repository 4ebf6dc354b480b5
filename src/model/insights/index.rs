//! Insights kept up to date run by run: each run's share (its hops'
//! positions, bleeding hops, cost, points in time) is added when it is
//! seen and taken back when it changes or is evicted, so a publication
//! costs the changed runs and the size of the answer, not a pass over
//! every hop. [`Insights::compute`] is the same index filled from one
//! snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use super::{
    BleedReason, BleedRules, Enforcement, Insights, Offender, PositionStats, RECENT_SPEND_MS,
    RunPoint, SETTLED_AFTER_MS, SortedBag, Spread, carried_tokens, hop_bleeding, newest_present,
    trimmed_by_budget,
};
use crate::model::ledger::{Ledger, RunAgg, RunWatch};
use crate::model::snapshot::Snapshot;
use crate::pricing::PriceBook;
use crate::types::money::Usd;

/// Bleeding reasons in code order (offenders name the most common one,
/// the last in this order on a tie).
const REASONS: [&str; 4] = [
    "budget_enforced",
    "cost_share",
    "history_resent",
    "over_hop_budget",
];

/// One (agent, hop position)'s bleeding hops, summed over runs.
#[derive(Debug, Clone, Default)]
struct OffenderSum {
    runs: u64,
    carried: u64,
    cost: Usd,
    reasons: [u64; REASONS.len()],
}

/// One (agent, hop position)'s input tokens and costs over runs.
#[derive(Debug, Clone, Default)]
struct PositionBags {
    inputs: SortedBag<u64>,
    costs: SortedBag<Usd>,
}

/// A run as it was added: taken back from the same copy, so what is
/// removed is exactly what was added.
#[derive(Debug, Clone)]
struct Held {
    run: Arc<RunAgg>,
    bleeding: Arc<[(usize, BleedReason)]>,
}

/// Add or take back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sign {
    Add,
    Remove,
}

/// The incremental insights of a set of runs (see the module documentation).
#[derive(Debug, Clone)]
pub struct InsightsIndex {
    rules: BleedRules,
    watch: RunWatch,
    held: Vec<Option<Held>>,
    /// The slot of each run held, by the address of its `Arc` (held, so
    /// not reused): a snapshot's run is looked up without reading it.
    slot_of: HashMap<usize, usize>,
    /// The bleeding of every run without any, shared.
    no_bleeding: Arc<[(usize, BleedReason)]>,
    bleeding_hops: u64,
    trimmed_hops: u64,
    offenders: HashMap<(Arc<str>, u32), OffenderSum>,
    positions: BTreeMap<(Arc<str>, u32), PositionBags>,
    run_cost: SortedBag<Usd>,
    run_multiplier: SortedBag<u64>,
    run_growth: SortedBag<u64>,
    /// Runs with hops and both timestamps, in order.
    points: SortedBag<RunPoint>,
    /// Those of them not ended, by their last event: the ones that may
    /// still be in flight are the newest.
    open: BTreeSet<(i64, usize)>,
    /// Their costs and durations, whether finished or not.
    point_costs: SortedBag<Usd>,
    point_durations: SortedBag<i64>,
    /// Spend by the second of each hop's first call (hops that cost
    /// something), and how many hops are in it.
    spend_by_second: BTreeMap<i64, (Usd, u64)>,
    /// Budget enforcements by (kind, limit): the times of the hops, counted.
    enforced: BTreeMap<(Option<String>, Option<u64>), BTreeMap<i64, u64>>,
}

impl InsightsIndex {
    #[must_use]
    pub fn new(rules: BleedRules) -> InsightsIndex {
        InsightsIndex {
            rules,
            watch: RunWatch::default(),
            held: Vec::new(),
            slot_of: HashMap::default(),
            no_bleeding: Arc::new([]),
            bleeding_hops: 0,
            trimmed_hops: 0,
            offenders: HashMap::default(),
            positions: BTreeMap::new(),
            run_cost: SortedBag::default(),
            run_multiplier: SortedBag::default(),
            run_growth: SortedBag::default(),
            points: SortedBag::default(),
            open: BTreeSet::new(),
            point_costs: SortedBag::default(),
            point_durations: SortedBag::default(),
            spend_by_second: BTreeMap::new(),
            enforced: BTreeMap::new(),
        }
    }

    /// Takes in the runs of `ledger` that changed since the last call (one
    /// pointer comparison per run): each is taken back as it was and added
    /// as it is; an evicted run leaves the insights, which describe the runs
    /// the ledger holds.
    pub fn sync(&mut self, ledger: &Ledger) {
        let mut watch = std::mem::take(&mut self.watch);
        watch.sync(ledger, |slot, _, now| {
            self.remove(slot);
            if now.is_some() {
                self.add(slot, ledger.run_for_snapshot(slot));
            }
        });
        self.watch = watch;
    }

    /// Adds `run` in `slot` (whatever was there is taken back first).
    pub fn add(&mut self, slot: usize, run: Arc<RunAgg>) {
        self.remove(slot);
        if self.held.len() <= slot {
            self.held.resize(slot + 1, None);
        }
        let bleeding = self.apply(slot, &run, Sign::Add);
        let bleeding = if bleeding.is_empty() {
            self.no_bleeding.clone()
        } else {
            bleeding.into()
        };
        self.slot_of.insert(run.address(), slot);
        self.held[slot] = Some(Held { run, bleeding });
    }

    /// Takes back the run in `slot`, if any.
    pub fn remove(&mut self, slot: usize) {
        if let Some(held) = self.held.get_mut(slot).and_then(Option::take) {
            self.apply(slot, &held.run, Sign::Remove);
            self.slot_of.remove(&held.run.address());
        }
    }

    /// Adds or takes back `run`'s share; its bleeding hops.
    #[allow(clippy::too_many_lines)]
    fn apply(&mut self, slot: usize, run: &RunAgg, sign: Sign) -> Vec<(usize, BleedReason)> {
        let add = sign == Sign::Add;
        let step = |n: &mut u64, by: u64| *n = if add { *n + by } else { n.saturating_sub(by) };
        let mut bleeding = Vec::new();
        for (index, hop) in run.hops.iter().enumerate() {
            let key = (hop.agent.clone(), hop.hop);
            let input = hop.usage.input_total();
            if add {
                let bags = self.positions.entry(key.clone()).or_default();
                bags.inputs.insert(input);
                bags.costs.insert(hop.cost);
            } else if let Some(bags) = self.positions.get_mut(&key) {
                bags.inputs.remove(input);
                bags.costs.remove(hop.cost);
                if bags.inputs.is_empty() {
                    self.positions.remove(&key);
                }
            }
            if let Some(ts) = hop.first_ts_ms
                && hop.cost != Usd::ZERO
            {
                let second = ts.div_euclid(1_000);
                let entry = self.spend_by_second.entry(second).or_default();
                if add {
                    entry.0 += hop.cost;
                } else {
                    entry.0 = entry.0.saturating_sub(hop.cost);
                }
                step(&mut entry.1, 1);
                if entry.1 == 0 {
                    self.spend_by_second.remove(&second);
                }
            }
            let Some(reason) = hop_bleeding(run, index, &self.rules) else {
                continue;
            };
            if trimmed_by_budget(hop) {
                step(&mut self.trimmed_hops, 1);
            } else {
                step(&mut self.bleeding_hops, 1);
                let carried = carried_tokens(&run.hops, index, &self.rules);
                let code = REASONS.iter().position(|r| *r == reason.code());
                let sum = self.offenders.entry(key.clone()).or_default();
                step(&mut sum.runs, 1);
                step(&mut sum.carried, carried);
                if add {
                    sum.cost += hop.cost;
                } else {
                    sum.cost = sum.cost.saturating_sub(hop.cost);
                }
                if let Some(code) = code {
                    step(&mut sum.reasons[code], 1);
                }
                if sum.runs == 0 {
                    self.offenders.remove(&key);
                }
            }
            if add {
                bleeding.push((index, reason));
            }
        }
        for hit in &run.budget_hits {
            let at = hit
                .hop
                .and_then(|h| run.hops.binary_search_by_key(&h, |x| x.hop).ok())
                .and_then(|i| run.hops[i].first_ts_ms);
            if let Some(at) = at {
                let kind = (hit.limit_kind.clone(), hit.limit);
                let times = self.enforced.entry(kind.clone()).or_default();
                let count = times.entry(at).or_default();
                step(count, 1);
                if *count == 0 {
                    times.remove(&at);
                }
                if times.is_empty() {
                    self.enforced.remove(&kind);
                }
            }
        }
        if run.hops.is_empty() {
            return bleeding;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let hundredths = |ratio: f64| (ratio * 100.0).round() as u64;
        let cost = run.counters().cost;
        let multiplier = hundredths(run.multiplier().unwrap_or(1.0));
        let growth = run.context_growth().map(hundredths);
        let point = run_point(run, cost);
        if add {
            self.run_cost.insert(cost);
            self.run_multiplier.insert(multiplier);
            if let Some(growth) = growth {
                self.run_growth.insert(growth);
            }
            if let Some(point) = point {
                self.points.insert(point);
                if !point.ended {
                    self.open.insert((point.last_ms, slot));
                }
                self.point_costs.insert(cost);
                self.point_durations.insert(point.last_ms - point.start_ms);
            }
        } else {
            self.run_cost.remove(cost);
            self.run_multiplier.remove(multiplier);
            if let Some(growth) = growth {
                self.run_growth.remove(growth);
            }
            if let Some(point) = point {
                self.points.remove(point);
                self.open.remove(&(point.last_ms, slot));
                self.point_costs.remove(cost);
                self.point_durations.remove(point.last_ms - point.start_ms);
            }
        }
        bleeding
    }

    /// The insights of the runs held, for `snapshot` (its runs' bleeding
    /// hops, its totals' cache savings and reasoning cost), anchored on
    /// `clock_ms` as [`Insights::compute`] says.
    #[must_use]
    pub fn insights(
        &self,
        snapshot: &Snapshot,
        prices: &PriceBook,
        clock_ms: Option<i64>,
    ) -> Insights {
        let rules = &self.rules;
        let last_ts_ms = newest_present(snapshot, clock_ms);
        let mut insights = Insights {
            rules: rules.clone(),
            bleeding_hops: self.bleeding_hops,
            trimmed_hops: self.trimmed_hops,
            run_cost: spread(&self.run_cost),
            run_multiplier: spread(&self.run_multiplier),
            run_growth: spread(&self.run_growth),
            // the first event is of the present when any is
            first_ts_ms: last_ts_ms.and(snapshot.first_ts_ms),
            last_ts_ms,
            ..Insights::default()
        };
        insights.bleeding = snapshot
            .runs
            .iter()
            .map(|run| match self.slot_of.get(&run.address()) {
                Some(&slot) => self.held[slot]
                    .as_ref()
                    .map(|held| held.bleeding.clone())
                    .unwrap_or_default(),
                // not held (a snapshot of other runs, or a copy with hops
                // merged): judged on the spot
                None => (0..run.hops.len())
                    .filter_map(|i| hop_bleeding(run, i, rules).map(|r| (i, r)))
                    .collect::<Vec<_>>()
                    .into(),
            })
            .collect();
        insights.run_points = self.points.clone();
        insights.run_costs = self.point_costs.clone();
        if let Some(last) = last_ts_ms {
            self.split_finished(&mut insights, last);
            insights.recent_spend = self
                .spend_by_second
                .range((last - RECENT_SPEND_MS).div_euclid(1_000) + 1..=last.div_euclid(1_000))
                .filter(|(_, (spend, _))| *spend != Usd::ZERO)
                .map(|(&second, &(spend, _))| (second, spend))
                .collect();
        }
        let mut enforcements: Vec<Enforcement> = self
            .enforced
            .iter()
            .filter_map(|((kind, limit), times)| {
                times.keys().next().map(|&at_ms| Enforcement {
                    at_ms,
                    limit_kind: kind.clone(),
                    limit: *limit,
                })
            })
            .collect();
        enforcements.sort_by_key(|e| e.at_ms);
        insights.enforcements = enforcements;
        insights.offenders = self.offenders();
        for ((agent, hop), bags) in &self.positions {
            insights
                .positions
                .entry(agent.clone())
                .or_default()
                .push(PositionStats {
                    hop: *hop,
                    runs: bags.inputs.len() as u64,
                    input_tokens: spread(&bags.inputs),
                    cost: spread(&bags.costs),
                });
        }
        for model in &snapshot.by_model {
            if let Some(price) = prices.resolve(&model.name) {
                // Standard rates: long-context premiums scale both sides alike.
                let rates = prices.model(price).rates;
                let c = &model.counters;
                insights.cache_savings += Usd::for_tokens(c.cache_read_tokens, rates.input)
                    .saturating_sub(Usd::for_tokens(c.cache_read_tokens, rates.cache_read));
                insights.reasoning_cost += Usd::for_tokens(c.reasoning_tokens, rates.output);
            }
        }
        insights
    }

    /// Runs finished by `last` (ended, or quiet for [`SETTLED_AFTER_MS`])
    /// against those still in flight then: only runs not ended whose last
    /// event is recent can be in flight, and they are few.
    fn split_finished(&self, insights: &mut Insights, last: i64) {
        let mut unfinished: Vec<RunPoint> = self
            .open
            .range((last.saturating_sub(SETTLED_AFTER_MS) + 1, 0)..)
            .filter_map(|&(_, slot)| self.point(slot))
            .filter(|p| !p.settled(last))
            .collect();
        unfinished.sort_unstable_by_key(|p| (p.start_ms, p.last_ms, p.cost));
        let mut durations: Vec<i64> = unfinished.iter().map(|p| p.last_ms - p.start_ms).collect();
        durations.sort_unstable();
        let finished = self.point_durations.len() - durations.len();
        insights.run_lag_ms = self
            .point_durations
            .nth_without(p95_rank(finished), &durations)
            .unwrap_or_default();
        insights.unfinished = unfinished;
    }

    fn point(&self, slot: usize) -> Option<RunPoint> {
        let run = &self.held.get(slot)?.as_ref()?.run;
        run_point(run, run.counters().cost)
    }

    /// Worst first: by total cost, then runs, then hop position.
    fn offenders(&self) -> Vec<Offender> {
        let mut offenders: Vec<Offender> = self
            .offenders
            .iter()
            .map(|((agent, hop), sum)| Offender {
                agent: agent.clone(),
                hop: *hop,
                runs: sum.runs,
                carried_tokens: sum.carried / sum.runs.max(1),
                cost_per_run: Usd::from_picos(sum.cost.picos() / i128::from(sum.runs.max(1))),
                total_cost: sum.cost,
                reason: REASONS
                    .iter()
                    .zip(sum.reasons)
                    .filter(|(_, n)| *n > 0)
                    .max_by_key(|(_, n)| *n)
                    .map_or("", |(r, _)| *r),
            })
            .collect();
        offenders.sort_by(|a, b| {
            b.total_cost
                .cmp(&a.total_cost)
                .then(b.runs.cmp(&a.runs))
                .then(a.hop.cmp(&b.hop))
                .then(a.agent.cmp(&b.agent))
        });
        offenders
    }
}

/// A run's place in time (costing `cost`), when it has both timestamps.
fn run_point(run: &RunAgg, cost: Usd) -> Option<RunPoint> {
    Some(RunPoint {
        start_ms: run.first_ts_ms?,
        last_ms: run.last_ts_ms?,
        cost,
        ended: run.ended.is_some(),
    })
}

/// The rank (from 0) of the 95th percentile of `n` values, nearest rank.
fn p95_rank(n: usize) -> usize {
    (n * 95).div_ceil(100).saturating_sub(1)
}

/// Median and 95th percentile (nearest rank) of a bag.
fn spread<T: Ord + Copy + Default>(bag: &SortedBag<T>) -> Spread<T> {
    let rank = |p: usize| {
        let k = (bag.len() * p).div_ceil(100).saturating_sub(1);
        bag.nth(k.min(bag.len().saturating_sub(1)))
            .unwrap_or_default()
    };
    Spread {
        median: rank(50),
        p95: rank(95),
    }
}
