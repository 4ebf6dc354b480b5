//! The ledger folds events into aggregates. Memory grows with the number of
//! distinct keys (runs, hops, agents, models, minutes), never with events;
//! only a bounded ring of recent events is kept.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use std::hash::BuildHasher;

use chrono::{Datelike, NaiveDate, TimeZone};
use hashbrown::{DefaultHashBuilder, HashSet, HashTable};

use super::anomaly::{AnomalyDetector, AnomalyRules};
use super::counters::{Costing, Counters, Provenance};
use super::duplicates::{CallRef, DuplicateIndex, DuplicateRules, DuplicateSummary, TOP_GROUPS};
use super::snapshot::{Limits, OTHER, Snapshot, not_other};
use crate::pricing::{PriceBook, PriceRef};
use crate::types::event::{EventKind, Format, TelemetryEvent, UNKNOWN, infer_provider};
use crate::types::money::Usd;
use crate::types::usage::Usage;

/// Calendar buckets for `--group-by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodUnit {
    Day,
    /// ISO weeks, starting Monday.
    Week,
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodSpec {
    pub unit: PeriodUnit,
    pub timezone: chrono_tz::Tz,
}

impl PeriodSpec {
    /// The first day of the period holding `ts_ms`, in the configured zone.
    #[must_use]
    pub fn start_of(&self, ts_ms: i64) -> Option<NaiveDate> {
        let local = self.timezone.timestamp_millis_opt(ts_ms).single()?;
        let day = local.date_naive();
        Some(match self.unit {
            PeriodUnit::Day => day,
            PeriodUnit::Week => {
                day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday()))
            }
            PeriodUnit::Month => day.with_day(1)?,
        })
    }

    #[must_use]
    pub fn label(&self, start: NaiveDate) -> String {
        match self.unit {
            PeriodUnit::Day => start.format("%Y-%m-%d").to_string(),
            PeriodUnit::Week => {
                let week = start.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
            PeriodUnit::Month => start.format("%Y-%m").to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// How many recent events to keep for live tails.
    pub recent_capacity: usize,
    pub period: Option<PeriodSpec>,
    /// Keep counters per minute (the burn rate). A one-shot report prints
    /// none, and weeks of calls are tens of thousands of minutes.
    pub per_minute: bool,
    /// Distinct runs kept (0: no limit). Past it, the runs least recently
    /// active are evicted: their calls stay in the totals and in their
    /// agent, segment, user and model rows, and are counted in
    /// `runs_evicted` and `evicted` (`docs/limits.md`).
    pub max_runs: usize,
    /// Distinct names kept in each list (agents, segments, users, models,
    /// and each hop label: task, tool, status, parent agent); 0: no limit.
    /// Past it, new names are counted in one row named `(other)`.
    pub max_labels: usize,
    /// Minutes of the per-minute series kept before the newest one (0: all).
    pub minutes_kept: i64,
    /// Keep per-series sums for the Prometheus metrics, under these caps
    /// (`None`: none; see [`series`]).
    pub series: Option<SeriesCaps>,
    /// Thresholds and capacity of the duplicate-prompt index
    /// ([`super::duplicates`]).
    pub duplicates: DuplicateRules,
}

impl LedgerConfig {
    /// Live mode's bounds: memory stays bounded however long it runs.
    pub const LIVE_MAX_RUNS: usize = 100_000;
    pub const LIVE_MAX_LABELS: usize = 10_000;
    /// The longest window the dashboard shows (an hour of burn), and a day
    /// of margin for late events.
    pub const LIVE_MINUTES_KEPT: i64 = 25 * 60;

    /// No limit on keys (what a one-shot `report` uses: it prints them all).
    #[must_use]
    pub fn unlimited(self) -> Self {
        LedgerConfig {
            max_runs: 0,
            max_labels: 0,
            minutes_kept: 0,
            ..self
        }
    }
}

impl Default for LedgerConfig {
    /// Live mode's: a tail of 500 events, the per-minute series of the last
    /// day, at most [`Self::LIVE_MAX_RUNS`] runs and
    /// [`Self::LIVE_MAX_LABELS`] names per list.
    fn default() -> Self {
        LedgerConfig {
            recent_capacity: 500,
            period: None,
            per_minute: true,
            max_runs: Self::LIVE_MAX_RUNS,
            max_labels: Self::LIVE_MAX_LABELS,
            minutes_kept: Self::LIVE_MINUTES_KEPT,
            series: None,
            duplicates: DuplicateRules::default(),
        }
    }
}

/// A budget the runtime enforced on a hop or run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetHit {
    pub limit_kind: Option<String>,
    pub limit: Option<u64>,
    pub observed: Option<u64>,
    pub action: Option<String>,
    pub hop: Option<u32>,
}

/// The optional labels of a hop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HopLabels {
    pub parent_agent: Option<Arc<str>>,
    pub task: Option<Arc<str>>,
    pub tool: Option<Arc<str>>,
    pub status: Option<Arc<str>>,
}

/// Borrowed form of [`HopLabels`], compared and hashed without allocating.
#[derive(Debug, Clone, Copy, Default, Eq, Hash)]
struct LabelsRef<'a> {
    parent_agent: Option<&'a str>,
    task: Option<&'a str>,
    tool: Option<&'a str>,
    status: Option<&'a str>,
}

impl PartialEq for LabelsRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        same_opt(self.parent_agent, other.parent_agent)
            && same_opt(self.task, other.task)
            && same_opt(self.tool, other.tool)
            && same_opt(self.status, other.status)
    }
}

impl HopLabels {
    fn borrowed(&self) -> LabelsRef<'_> {
        LabelsRef {
            parent_agent: self.parent_agent.as_deref(),
            task: self.task.as_deref(),
            tool: self.tool.as_deref(),
            status: self.status.as_deref(),
        }
    }
}

impl<'a> LabelsRef<'a> {
    fn of(event: &'a TelemetryEvent<'_>) -> Self {
        LabelsRef {
            parent_agent: event.parent_agent.as_deref(),
            task: event.task.as_deref(),
            tool: event.tool.as_deref(),
            status: event.status.as_deref(),
        }
    }

    fn is_empty(&self) -> bool {
        *self == LabelsRef::default()
    }
}

/// What a hop is (agent, model, labels, price version), interned: hops of
/// the same workflow share one, which keeps a hop small (there is one hop per
/// distinct (run, position), about one per event). A hop reads these fields
/// directly through `Deref` (`hop.agent`, `hop.labels.task`).
#[derive(Debug, PartialEq, Eq)]
pub struct HopIdent {
    pub agent: Arc<str>,
    pub model: Arc<str>,
    pub labels: HopLabels,
    /// Price-table version that priced the hop, when computed.
    pub price_version: Option<Arc<str>>,
    /// Positions of `agent` and `model` in the ledger's tables (the interning key).
    agent_ix: usize,
    model_ix: usize,
}

/// The interning key of a [`HopIdent`].
#[derive(Hash, Eq)]
struct IdentKey<'a> {
    agent_ix: usize,
    model_ix: usize,
    labels: LabelsRef<'a>,
    price_version: Option<&'a str>,
}

impl PartialEq for IdentKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.agent_ix == other.agent_ix
            && self.model_ix == other.model_ix
            && self.labels == other.labels
            && same_opt(self.price_version, other.price_version)
    }
}

impl HopIdent {
    fn key(&self) -> IdentKey<'_> {
        IdentKey {
            agent_ix: self.agent_ix,
            model_ix: self.model_ix,
            labels: self.labels.borrowed(),
            price_version: self.price_version.as_deref(),
        }
    }
}

/// Per-call tallies a hop needs only once one of its calls was not simply
/// priced from the table (reported, estimated, unpriced or long-context).
#[derive(Debug, Clone, Default)]
struct HopTally {
    computed_cost: Usd,
    reported_cost: Usd,
    reported_calls: u32,
    computed_calls: u32,
    estimated_calls: u32,
    unpriced_calls: u32,
    long_context_calls: u32,
    unpriced_tokens: u64,
}

impl HopTally {
    fn add(&mut self, usage: &Usage, costing: &Costing) {
        if costing.effective.is_none() {
            self.unpriced_calls = self.unpriced_calls.saturating_add(1);
            self.unpriced_tokens = self.unpriced_tokens.saturating_add(usage.total());
        }
        if let Some(cost) = costing.computed {
            self.computed_cost += cost;
            self.computed_calls = self.computed_calls.saturating_add(1);
        }
        if let Some(cost) = costing.reported {
            self.reported_cost += cost;
            self.reported_calls = self.reported_calls.saturating_add(1);
        }
        let estimated = u32::from(costing.provenance == Provenance::Estimated);
        self.estimated_calls = self.estimated_calls.saturating_add(estimated);
        self.long_context_calls = self
            .long_context_calls
            .saturating_add(u32::from(costing.long_context));
    }
}

impl HopTally {
    fn remove(&mut self, usage: &Usage, costing: &Costing) {
        let sub = |a: &mut u32, b: bool| *a = a.saturating_sub(u32::from(b));
        if costing.effective.is_none() {
            sub(&mut self.unpriced_calls, true);
            self.unpriced_tokens = self.unpriced_tokens.saturating_sub(usage.total());
        }
        if let Some(cost) = costing.computed {
            self.computed_cost -= cost;
            sub(&mut self.computed_calls, true);
        }
        if let Some(cost) = costing.reported {
            self.reported_cost -= cost;
            sub(&mut self.reported_calls, true);
        }
        sub(
            &mut self.estimated_calls,
            costing.provenance == Provenance::Estimated,
        );
        sub(&mut self.long_context_calls, costing.long_context);
    }
}

/// A call priced from the table alone: its hop needs no [`HopTally`].
fn simply_computed(costing: &Costing) -> bool {
    costing.reported.is_none()
        && costing.computed.is_some()
        && costing.provenance == Provenance::Computed
        && !costing.long_context
}

/// One position in a run; several calls at the same position add up.
/// Kept compact: a ledger holds one per distinct (run, hop).
#[derive(Debug, Clone)]
pub struct HopAgg {
    /// The usage of the hop's calls, summed.
    pub usage: Usage,
    /// Reported where a call had a cost, computed otherwise; unpriced calls add nothing.
    pub cost: Usd,
    pub first_ts_ms: Option<i64>,
    pub latency_ms: Option<u64>,
    ident: Arc<HopIdent>,
    /// What few hops have (a tally, a breach), boxed together: 8 bytes in
    /// every hop, where both would take 16 and make a hop 144 bytes, not 128.
    extra: Option<Box<HopExtra>>,
    pub hop: u32,
    pub calls: u32,
    pub provenance: Provenance,
}

/// The rarely used parts of a [`HopAgg`].
#[derive(Debug, Clone, Default)]
struct HopExtra {
    /// `None` while every call was simply computed from the table: then the
    /// computed cost is `cost` and every call is a computed call.
    tally: Option<HopTally>,
    budget_hit: Option<BudgetHit>,
}

impl std::ops::Deref for HopAgg {
    type Target = HopIdent;
    fn deref(&self) -> &HopIdent {
        &self.ident
    }
}

#[derive(Debug, Clone)]
pub struct RunAgg {
    pub run_id: Arc<str>,
    /// Sorted by hop position (see [`Hops`]).
    pub hops: Hops,
    /// The run's sum once it has had two hops; before, its hop's counters
    /// are the run's (single-hop runs are the many: see [`RunAgg::counters`]).
    sum: Option<Box<Counters>>,
    pub segment: Option<Arc<str>>,
    pub user: Option<Arc<str>>,
    pub first_ts_ms: Option<i64>,
    pub last_ts_ms: Option<i64>,
    /// `status` of the `run_end` record, once seen.
    pub ended: Option<Arc<str>>,
    /// One per (hop, limit kind), in the order they were first reported.
    pub budget_hits: Vec<BudgetHit>,
    /// Where `budget_hits` are, once there are many (kept by the ledger).
    hit_index: Option<Box<HitIndex>>,
}

/// Positions in a run's `budget_hits`, so that a run with a breach on
/// each of thousands of hops finds one without scanning them all.
#[derive(Debug, Clone, Default)]
struct HitIndex {
    /// By (hop, limit kind).
    by_kind: HashTable<u32>,
    /// The last reported of each hop's.
    last_of_hop: hashbrown::HashMap<Option<u32>, u32>,
    hasher: DefaultHashBuilder,
}

/// Breaches a run scans before it indexes them.
const SCANNED_HITS: usize = 8;

impl RunAgg {
    /// Where this run is: its identity while it is held (an `Arc` held
    /// keeps its address from being reused), read without touching it.
    #[must_use]
    pub fn address(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    /// A run without calls.
    #[must_use]
    pub fn new(run_id: Arc<str>) -> Self {
        RunAgg {
            run_id,
            hops: Hops::default(),
            sum: None,
            segment: None,
            user: None,
            first_ts_ms: None,
            last_ts_ms: None,
            ended: None,
            budget_hits: Vec::new(),
            hit_index: None,
        }
    }

    /// Every call of the run, summed.
    #[must_use]
    pub fn counters(&self) -> Counters {
        match (&self.sum, self.hops.first()) {
            (Some(sum), _) => **sum,
            (None, Some(hop)) => hop.counters(),
            (None, None) => Counters::default(),
        }
    }

    /// (cost, total tokens): what runs are ranked by.
    fn rank(&self) -> Rank {
        // What `counters()` would say, without building them (once per call).
        match (&self.sum, self.hops.first()) {
            (Some(sum), _) => (rank_cost(sum.cost), sum.total_tokens),
            (None, Some(hop)) => (rank_cost(hop.cost), hop.usage.total()),
            (None, None) => (0, 0),
        }
    }

    /// The breach last reported for hop `position`.
    fn last_hit_of(&self, position: u32) -> Option<&BudgetHit> {
        match &self.hit_index {
            Some(index) => index
                .last_of_hop
                .get(&Some(position))
                .and_then(|&i| self.budget_hits.get(i as usize)),
            None => {
                #[cfg(test)]
                count_work(self.budget_hits.len());
                self.budget_hits
                    .iter()
                    .rev()
                    .find(|h| h.hop == Some(position))
            }
        }
    }

    /// Keeps `hit`, over the one of the same hop and limit kind if any.
    fn record_hit(&mut self, hit: BudgetHit) {
        let hash = |index: &HitIndex, h: &BudgetHit| {
            index.hasher.hash_one((h.hop, h.limit_kind.as_deref()))
        };
        let existing = match &self.hit_index {
            Some(index) => {
                let hits = &self.budget_hits;
                index
                    .by_kind
                    .find(hash(index, &hit), |&i| {
                        let h = &hits[i as usize];
                        h.hop == hit.hop && h.limit_kind == hit.limit_kind
                    })
                    .map(|&i| i as usize)
            }
            None => {
                #[cfg(test)]
                count_work(self.budget_hits.len());
                self.budget_hits
                    .iter()
                    .position(|h| h.hop == hit.hop && h.limit_kind == hit.limit_kind)
            }
        };
        if let Some(i) = existing {
            self.budget_hits[i] = hit;
            return;
        }
        self.budget_hits.push(hit);
        if self.hit_index.is_none() && self.budget_hits.len() > SCANNED_HITS {
            self.hit_index = Some(Box::default());
            for i in 0..self.budget_hits.len() - 1 {
                self.index_hit(i);
            }
        }
        self.index_hit(self.budget_hits.len() - 1);
    }

    fn index_hit(&mut self, i: usize) {
        let (Some(index), Some(hit)) = (&mut self.hit_index, self.budget_hits.get(i)) else {
            return;
        };
        let Ok(at) = u32::try_from(i) else {
            return;
        };
        let hash = index.hasher.hash_one((hit.hop, hit.limit_kind.as_deref()));
        let (hits, hasher) = (&self.budget_hits, &index.hasher);
        index.by_kind.insert_unique(hash, at, |&j| {
            let h = &hits[j as usize];
            hasher.hash_one((h.hop, h.limit_kind.as_deref()))
        });
        index.last_of_hop.insert(hit.hop, at);
    }

    /// Run tokens ÷ first hop's tokens: how much re-sent context costs.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn multiplier(&self) -> Option<f64> {
        let first = self.hops.first()?.usage.total();
        (first > 0).then(|| self.counters().total_tokens as f64 / first as f64)
    }

    /// Last hop's input ÷ first hop's input: whether the context grows along
    /// the run. A flat 10-hop loop has a 10× multiplier but 1.0× growth; a
    /// loop that re-sends its history grows with every hop.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn context_growth(&self) -> Option<f64> {
        let first = self.hops.first()?.usage.input_total();
        let last = self.hops.last()?.usage.input_total();
        (first > 0).then(|| last as f64 / first as f64)
    }

    /// The part of the run made of `agent`'s hops, as a run of its own (the
    /// agent's sub-loop: its first hop is the first of these; its budget
    /// hits are those of these hops); `None` when the agent has no hop in it.
    #[must_use]
    pub fn only_agent(&self, agent: &str) -> Option<RunAgg> {
        let hops: Vec<HopAgg> = self
            .hops
            .iter()
            .filter(|h| &*h.agent == agent)
            .cloned()
            .collect();
        if hops.is_empty() {
            return None;
        }
        let mut part = RunAgg::new(self.run_id.clone());
        part.segment.clone_from(&self.segment);
        part.user.clone_from(&self.user);
        part.ended.clone_from(&self.ended);
        part.first_ts_ms = hops.iter().filter_map(|h| h.first_ts_ms).min();
        part.last_ts_ms = hops.iter().filter_map(|h| h.first_ts_ms).max();
        if hops.len() > 1 {
            let mut sum = Counters::default();
            for hop in &hops {
                sum.merge(&hop.counters());
            }
            part.sum = Some(Box::new(sum));
        }
        for hit in &self.budget_hits {
            if hit
                .hop
                .is_some_and(|h| hops.binary_search_by_key(&h, |x| x.hop).is_ok())
            {
                part.record_hit(hit.clone());
            }
        }
        part.hops = Hops::from(hops);
        Some(part)
    }

    /// Agents in hop order, consecutive repeats folded (`planner→researcher→writer`).
    #[must_use]
    pub fn agent_path(&self) -> Vec<Arc<str>> {
        let mut path: Vec<Arc<str>> = Vec::new();
        for hop in &self.hops {
            if path.last() != Some(&hop.agent) {
                path.push(hop.agent.clone());
            }
        }
        path
    }
}

impl HopAgg {
    /// The hop's interned identity (agent, model, labels): hops that share
    /// it share this `Arc`, so per-identity work can be done once.
    #[must_use]
    pub fn ident(&self) -> &Arc<HopIdent> {
        &self.ident
    }

    fn new(hop: u32, ident: Arc<HopIdent>) -> Self {
        HopAgg {
            usage: Usage::default(),
            cost: Usd::ZERO,
            first_ts_ms: None,
            latency_ms: None,
            ident,
            extra: None,
            hop,
            calls: 0,
            provenance: Provenance::Reported,
        }
    }

    fn add(&mut self, usage: &Usage, costing: &Costing) {
        // Leave the compact form before the call counts could diverge.
        if self.tally().is_none() && (!simply_computed(costing) || self.calls >= u32::MAX - 1) {
            self.extra.get_or_insert_with(Box::default).tally = Some(HopTally {
                computed_cost: self.cost,
                computed_calls: self.calls,
                ..HopTally::default()
            });
        }
        self.calls = self.calls.saturating_add(1);
        add_usage(&mut self.usage, usage);
        if let Some(cost) = costing.effective {
            self.cost += cost;
        }
        if let Some(tally) = self.tally_mut() {
            tally.add(usage, costing);
        }
        self.provenance = if self.calls == 1 {
            costing.provenance
        } else {
            self.provenance.max(costing.provenance)
        };
    }

    /// Takes one call back (see [`Ledger::retract`]).
    fn remove(&mut self, usage: &Usage, costing: &Costing, latency_ms: Option<u64>) {
        self.calls = self.calls.saturating_sub(1);
        sub_usage(&mut self.usage, usage);
        if let (Some(total), Some(latency)) = (self.latency_ms, latency_ms) {
            self.latency_ms = Some(total.saturating_sub(latency)).filter(|_| self.calls > 0);
        }
        if let Some(cost) = costing.effective {
            self.cost -= cost;
        }
        // Without a tally every call was simply computed: cost and calls say it all.
        let calls = self.calls;
        self.provenance = match self.tally_mut() {
            None => Provenance::Computed,
            Some(tally) => {
                tally.remove(usage, costing);
                if tally.unpriced_calls > 0 {
                    Provenance::Unpriced
                } else if tally.estimated_calls > 0 {
                    Provenance::Estimated
                } else if calls > tally.reported_calls {
                    Provenance::Computed
                } else {
                    Provenance::Reported
                }
            }
        };
    }

    /// The hop as [`Counters`], like every other aggregate.
    #[must_use]
    pub fn counters(&self) -> Counters {
        let u = &self.usage;
        let simple = HopTally {
            computed_cost: self.cost,
            computed_calls: self.calls,
            ..HopTally::default()
        };
        let t = self.tally().unwrap_or(&simple);
        Counters {
            events: u64::from(self.calls),
            input_tokens: u.input_total(),
            uncached_input_tokens: u.input_uncached,
            cache_read_tokens: u.cache_read,
            cache_write_tokens: u.cache_write(),
            cache_write_1h_tokens: u.cache_write_1h,
            output_tokens: u.output,
            reasoning_tokens: u.reasoning,
            total_tokens: u.total(),
            cost: self.cost,
            computed_cost: t.computed_cost,
            reported_cost: t.reported_cost,
            reported_events: u64::from(t.reported_calls),
            computed_events: u64::from(t.computed_calls),
            estimated_events: u64::from(t.estimated_calls),
            unpriced_events: u64::from(t.unpriced_calls),
            unpriced_tokens: t.unpriced_tokens,
            long_context_events: u64::from(t.long_context_calls),
        }
    }

    /// Cost of the hop, `None` when any call is unpriced.
    #[must_use]
    pub fn complete_cost(&self) -> Option<Usd> {
        let unpriced = self.tally().map_or(0, |t| t.unpriced_calls);
        (unpriced == 0).then_some(self.cost)
    }

    /// The breach last reported for this hop, if any.
    #[must_use]
    pub fn budget_hit(&self) -> Option<&BudgetHit> {
        self.extra.as_ref()?.budget_hit.as_ref()
    }

    fn set_budget_hit(&mut self, hit: BudgetHit) {
        self.extra.get_or_insert_with(Box::default).budget_hit = Some(hit);
    }

    fn tally(&self) -> Option<&HopTally> {
        self.extra.as_ref()?.tally.as_ref()
    }

    fn tally_mut(&mut self) -> Option<&mut HopTally> {
        self.extra.as_mut()?.tally.as_mut()
    }
}

/// A labelled aggregate (agent, segment, user).
#[derive(Debug, Clone)]
pub struct KeyedAgg {
    pub name: Arc<str>,
    pub counters: Counters,
}

#[derive(Debug, Clone)]
pub struct ModelAgg {
    pub name: Arc<str>,
    pub provider: Option<Arc<str>>,
    pub counters: Counters,
    /// Price resolution, cached per distinct model name.
    price: Option<PriceRef>,
    /// Canonical name of the matched price entry.
    pub priced_as: Option<Arc<str>>,
    /// Version of the table the price came from.
    price_version: Option<Arc<str>>,
}

impl ModelAgg {
    fn new(name: Arc<str>, prices: &PriceBook) -> Self {
        let price = prices.resolve(&name);
        let provider = infer_provider(&name)
            .map(Arc::from)
            .or_else(|| price.and_then(|p| prices.model(p).provider.as_deref().map(Arc::from)));
        let mut model = ModelAgg {
            name,
            provider,
            counters: Counters::default(),
            price: None,
            priced_as: None,
            price_version: None,
        };
        model.resolve(prices);
        model
    }

    /// The row of models folded together (never priced as one).
    pub(crate) fn other() -> Self {
        ModelAgg {
            name: Arc::from(OTHER),
            provider: None,
            counters: Counters::default(),
            price: None,
            priced_as: None,
            price_version: None,
        }
    }

    fn resolve(&mut self, prices: &PriceBook) {
        self.price = prices.resolve(&self.name);
        self.priced_as = self.price.map(|p| Arc::from(prices.model(p).name.as_str()));
        self.price_version = self.price.map(|p| Arc::from(prices.version_of(p)));
    }
}

/// A compact copy of a recent event for live tails.
#[derive(Debug, Clone)]
pub struct RecentEvent {
    pub ts_ms: Option<i64>,
    pub run_id: Arc<str>,
    pub hop: u32,
    pub agent: Arc<str>,
    pub model: Arc<str>,
    pub usage: Usage,
    pub cost: Option<Usd>,
    pub provenance: Provenance,
    pub kind: RecentKind,
}

/// What a line of the recent tail is, with what a non-call line reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecentKind {
    /// A model call (the line's usage and cost are the call's).
    Hop,
    /// The runtime enforced a budget: limit kind, limit, observed, action.
    BudgetExceeded(Box<BudgetHit>),
    /// The run ended: its status and its totals at that moment.
    RunEnd(Box<RunEnded>),
}

/// A run as it was when its `run_end` arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnded {
    pub status: Arc<str>,
    pub hops: usize,
    pub tokens: u64,
    /// `None` when every call was unpriced.
    pub cost: Option<Usd>,
}

/// Rows addressed by name: a vector (stable positions) plus a hash index,
/// and the position of the last name looked up, since consecutive events
/// usually share their run, segment and user.
#[derive(Debug, Clone)]
pub(crate) struct Table<V> {
    pub(crate) rows: Vec<V>,
    /// (hash of the name, position): growing never re-hashes names.
    /// Positions, hashed by name (4 bytes a row: growing re-hashes the
    /// names, once per doubling).
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    last: usize,
    /// Positions of removed rows, reused by new names (runs only).
    free: Vec<usize>,
}

/// String equality for short names and labels, inlined (a `memcmp` call
/// costs more than the compare itself at these lengths).
#[inline]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    // Words as integers and the tail byte by byte: comparing the chunks as
    // slices would still call `memcmp` for each.
    let word = |w: &[u8]| u64::from_ne_bytes(w.try_into().unwrap_or_default());
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    x.by_ref().zip(y.by_ref()).all(|(p, q)| word(p) == word(q))
        && x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
}

fn same_opt(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// How a [`Table`] row is named.
pub(crate) trait Named {
    fn name(&self) -> &str;
}

impl Named for KeyedAgg {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for ModelAgg {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for Arc<RunAgg> {
    fn name(&self) -> &str {
        &self.run_id
    }
}

impl<V: Named> Table<V> {
    fn new() -> Self {
        Table {
            rows: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            last: usize::MAX,
            free: Vec::new(),
        }
    }

    /// Like [`Table::locate`], but past `cap` rows (0: no cap) a new name
    /// gets the row named [`OTHER`]. Returns the position and whether the
    /// name was folded. A name that is literally `(other)` is kept as
    /// [`super::snapshot::OTHER_NAMED`], apart from the folded rows.
    fn locate_capped(
        &mut self,
        name: &str,
        cap: usize,
        make: impl FnOnce(Arc<str>) -> V,
    ) -> (usize, bool) {
        let name = not_other(name);
        if cap == 0 || self.rows.len() < cap {
            return (self.locate(name, make), false);
        }
        match self.find(name) {
            Some(position) => {
                self.last = position;
                (position, false)
            }
            None => (self.locate(OTHER, make), true),
        }
    }

    /// Removes the row at `position` from the index; its position is
    /// reused by a new name.
    fn unlist(&mut self, position: usize) {
        let Some(row) = self.rows.get(position) else {
            return;
        };
        let hash = self.hasher.hash_one(row.name());
        if let Ok(entry) = self.index.find_entry(hash, |&i| i as usize == position) {
            entry.remove();
        }
        if self.last == position {
            self.last = usize::MAX;
        }
        self.free.push(position);
    }

    /// The position of `name`, its row created by `make` when new.
    fn locate(&mut self, name: &str, make: impl FnOnce(Arc<str>) -> V) -> usize {
        if self
            .rows
            .get(self.last)
            .is_some_and(|row| same(row.name(), name))
        {
            return self.last;
        }
        let hash = self.hasher.hash_one(name);
        let rows = &self.rows;
        let found = self
            .index
            .find(hash, |&i| same(rows[i as usize].name(), name))
            .map(|&i| i as usize);
        let position = found.unwrap_or_else(|| {
            let position = match self.free.pop() {
                Some(position) => {
                    self.rows[position] = make(Arc::from(name));
                    position
                }
                None => {
                    self.rows.push(make(Arc::from(name)));
                    self.rows.len() - 1
                }
            };
            let (rows, hasher) = (&self.rows, &self.hasher);
            self.index.insert_unique(hash, row_u32(position), |&i| {
                hasher.hash_one(rows[i as usize].name())
            });
            position
        });
        self.last = position;
        position
    }

    /// The position of `name`, if it has a row.
    fn find(&self, name: &str) -> Option<usize> {
        if self
            .rows
            .get(self.last)
            .is_some_and(|row| same(row.name(), name))
        {
            return Some(self.last);
        }
        let hash = self.hasher.hash_one(name);
        self.index
            .find(hash, |&i| same(self.rows[i as usize].name(), name))
            .map(|&i| i as usize)
    }
}

/// Interned [`HopIdent`]s.
#[derive(Debug, Clone, Default)]
struct Idents {
    index: HashTable<Arc<HopIdent>>,
    hasher: DefaultHashBuilder,
    /// Interned label strings, shared by idents.
    labels: HashSet<Arc<str>>,
    /// Recently used idents by (agent, model, position) slot.
    cache: Vec<Option<Arc<HopIdent>>>,
    /// Distinct hop labels kept (0: no limit): past it, `(other)`.
    cap: usize,
}

const IDENT_CACHE: usize = 64;

impl Idents {
    /// `text`, shared with its earlier copies while under the cap.
    fn label(&mut self, text: &str) -> Arc<str> {
        if self.cap > 0 && self.labels.len() >= self.cap && !self.labels.contains(text) {
            return Arc::from(text);
        }
        self.labels
            .get_or_insert_with(text, |t| Arc::from(t))
            .clone()
    }

    /// A hop label: past the cap, a new one is `(other)` (and a label
    /// that is literally `(other)` is [`super::snapshot::OTHER_NAMED`]).
    fn hop_label(&mut self, text: &str) -> Arc<str> {
        let text = not_other(text);
        if self.cap > 0 && self.labels.len() >= self.cap && !self.labels.contains(text) {
            return self.label(OTHER);
        }
        self.label(text)
    }

    /// Forgets the idents no hop holds any more (after runs were evicted).
    fn purge(&mut self) {
        self.cache.clear();
        let hasher = &self.hasher;
        self.index.retain(|ident| Arc::strong_count(ident) > 1);
        self.index.shrink_to_fit(|i| hasher.hash_one(i.key()));
    }

    /// The ident with these parts; `agent` and `model` name positions
    /// `agent_ix` and `model_ix`. `position` (the hop's) picks a slot in a
    /// small cache checked before hashing: workflows repeat the same
    /// agent, model and labels at the same positions run after run.
    fn intern(
        &mut self,
        (agent_ix, agent): (usize, &Arc<str>),
        (model_ix, model): (usize, &Arc<str>),
        labels: LabelsRef<'_>,
        price_version: Option<&Arc<str>>,
        position: u32,
    ) -> Arc<HopIdent> {
        let key = IdentKey {
            agent_ix,
            model_ix,
            labels,
            price_version: price_version.map(|v| &**v),
        };
        let slot = (agent_ix.wrapping_mul(31) ^ model_ix.wrapping_mul(7) ^ position as usize)
            % IDENT_CACHE;
        if let Some(cached) = self.cache.get(slot).and_then(Option::as_ref)
            && cached.key() == key
        {
            return cached.clone();
        }
        if self.cache.is_empty() {
            self.cache = vec![None; IDENT_CACHE];
        }
        let hash = self.hasher.hash_one(&key);
        if let Some(found) = self.index.find(hash, |ident| ident.key() == key) {
            self.cache[slot] = Some(found.clone());
            return found.clone();
        }
        let ident = Arc::new(HopIdent {
            agent: agent.clone(),
            model: model.clone(),
            labels: HopLabels {
                parent_agent: labels.parent_agent.map(|t| self.hop_label(t)),
                task: labels.task.map(|t| self.hop_label(t)),
                tool: labels.tool.map(|t| self.hop_label(t)),
                status: labels.status.map(|t| self.hop_label(t)),
            },
            price_version: price_version.cloned(),
            agent_ix,
            model_ix,
        });
        let hasher = &self.hasher;
        self.index
            .insert_unique(hash, ident.clone(), |i| hasher.hash_one(i.key()));
        self.cache[slot] = Some(ident.clone());
        ident
    }
}

/// Everything the views and reports are computed from.
#[derive(Debug, Clone)]
pub struct Ledger {
    prices: PriceBook,
    config: LedgerConfig,
    pub(crate) totals: Counters,
    /// Shared with snapshots; copied on write only while a snapshot holds it.
    pub(crate) runs: Table<Arc<RunAgg>>,
    /// (cost, total tokens) of `runs.rows[i]`, side by side: picking the
    /// most expensive runs scans this instead of visiting every run.
    pub(crate) run_rank: Vec<Rank>,
    pub(crate) agents: Table<KeyedAgg>,
    pub(crate) segments: Table<KeyedAgg>,
    pub(crate) users: Table<KeyedAgg>,
    pub(crate) models: Table<ModelAgg>,
    /// Minute since the epoch → counters (burn rate), except the few
    /// minutes being filled, which are in `open_minutes` (never in both).
    pub(crate) minutes: BTreeMap<i64, Counters>,
    pub(crate) open_minutes: Vec<(i64, Counters)>,
    pub(crate) periods: BTreeMap<NaiveDate, Counters>,
    pub(crate) recent: VecDeque<RecentEvent>,
    pub(crate) budget_events: u64,
    pub(crate) run_ends: u64,
    pub(crate) first_ts_ms: Option<i64>,
    pub(crate) last_ts_ms: Option<i64>,
    /// Per input format, indexed by [`Format::index`].
    pub(crate) by_format: [Counters; Format::ALL.len()],
    /// Runs whose every call was taken back (`run_rank` holds [`VACANT`]
    /// for them): left out of snapshots.
    pub(crate) vacant_runs: usize,
    /// Per run position: the ledger's tick when the run was last active
    /// (runs are evicted least recently active first) and how many runs
    /// held the position before (a receipt of an evicted run is told apart).
    run_touch: Vec<u64>,
    run_gen: Vec<u16>,
    /// Events applied: the clock of `run_touch`.
    tick: u64,
    /// Runs evicted past `max_runs`, and their calls.
    pub(crate) runs_evicted: u64,
    pub(crate) evicted: Counters,
    /// What an evicted run's position holds until it is reused.
    no_run: Arc<RunAgg>,
    /// The newest minute of the per-minute series.
    newest_minute: Option<i64>,
    /// The caller's clock ([`Ledger::set_clock`]), in minutes: calls timed
    /// more than [`FUTURE_MINUTES`] after it stay out of the per-minute
    /// series. `None`: no clock (every call is in it).
    clock_minute: Option<i64>,
    idents: Idents,
    /// Per-series sums for the metrics (`LedgerConfig::series`).
    series: Option<Box<Series>>,
    /// Live mode: spikes, fed each call when first counted
    /// ([`Ledger::watch_anomalies`]).
    anomalies: Option<Box<AnomalyDetector>>,
    /// Duplicate prompts, made at the first call with a prompt print.
    pub(crate) duplicates: Option<Box<DuplicateIndex>>,
    /// Positions of the runs whose first `run_end` arrived since the last
    /// [`Ledger::take_ended_runs`]; `None` unless [`Ledger::note_ended_runs`].
    ended_runs: Option<Vec<usize>>,
}

/// `run_rank` of a run whose calls were all taken back.
pub(crate) const VACANT: Rank = (i64::MIN, 0);

/// `run_rank` of a position whose run was evicted (free for a new run).
const FREE: Rank = (i64::MIN, 1);

/// A run's (cost in picodollars, saturated to ±$9.2 million, total
/// tokens): half the room of the exact pair, kept for every run.
pub(crate) type Rank = (i64, u64);

fn rank_cost(cost: Usd) -> i64 {
    i64::try_from(cost.picos()).unwrap_or(if cost < Usd::ZERO {
        i64::MIN + 1
    } else {
        i64::MAX
    })
}

/// What one call added to the ledger: enough to take it back exactly
/// ([`Ledger::retract`], [`Ledger::replace`]), with the cost it was given
/// whatever the prices are by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    usage: Usage,
    /// Effective, computed and reported cost ([`CompactCosting`]).
    amounts: [i64; 3],
    /// [`NO_TIME`] when the call had none.
    ts_ms: i64,
    run_ix: u32,
    /// `run_gen` of the run's position when the call was counted (16 bits
    /// keep a receipt in 112 bytes; a position would have to be reused
    /// 65,536 times while the receipt is kept to be mistaken).
    run_gen: u16,
    hop: u32,
    agent_ix: u32,
    model_ix: u32,
    /// `u32::MAX` when the call had none.
    segment_ix: u32,
    user_ix: u32,
    cost_flags: u8,
    format: Format,
    /// [`NO_LATENCY`] when the call had none (a latency too large to keep
    /// makes the receipt inexact).
    latency_ms: u32,
}

const NO_ROW: u32 = u32::MAX;

/// `Receipt::latency_ms` of a call without a latency.
const NO_LATENCY: u32 = u32::MAX;

/// `Receipt::ts_ms` of a call without a timestamp.
const NO_TIME: i64 = i64::MIN;

/// A [`Costing`] in a third of the room (receipts are kept by the thousand):
/// amounts in picodollars as `i64` (±$9.2 million, far above any one call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CompactCosting {
    effective: i64,
    computed: i64,
    reported: i64,
    /// Which amounts are present, the provenance, long context.
    flags: u8,
}

const HAS_EFFECTIVE: u8 = 1;
const HAS_COMPUTED: u8 = 2;
const HAS_REPORTED: u8 = 4;
const LONG_CONTEXT: u8 = 8;
/// An amount did not fit: the receipt cannot be taken back.
const TOO_LARGE: u8 = 16;
const PROVENANCE_SHIFT: u8 = 5;
const PROVENANCE_MASK: u8 = 3;
/// The call is not in the per-minute series (timed too far ahead of the
/// clock): taking it back leaves the series alone.
const OFF_MINUTES: u8 = 128;

/// How far ahead of the caller's clock a call may be timed and still count
/// in the per-minute series (a skewed agent clock); calls further ahead are
/// left out of it, so that they can never push the present out.
pub const FUTURE_MINUTES: i64 = 5;

/// A call timed at `ts_ms` is more than [`FUTURE_MINUTES`] (whole minutes)
/// after the clock minute `clock_minute` (epoch ms ÷ 60,000): a wrong agent
/// clock or a hostile span, left out of what is anchored on the present
/// (the per-minute series here, the dashboard's burn rate in insights).
#[must_use]
pub fn ahead_of_clock(ts_ms: i64, clock_minute: i64) -> bool {
    ts_ms.div_euclid(60_000) > clock_minute.saturating_add(FUTURE_MINUTES)
}

impl CompactCosting {
    fn new(costing: &Costing) -> Self {
        let mut flags = 0;
        let mut amount = |usd: Option<Usd>, bit: u8| match usd {
            Some(usd) => {
                flags |= bit;
                i64::try_from(usd.picos()).unwrap_or_else(|_| {
                    flags |= TOO_LARGE;
                    0
                })
            }
            None => 0,
        };
        let effective = amount(costing.effective, HAS_EFFECTIVE);
        let computed = amount(costing.computed, HAS_COMPUTED);
        let reported = amount(costing.reported, HAS_REPORTED);
        let provenance = match costing.provenance {
            Provenance::Reported => 0,
            Provenance::Computed => 1,
            Provenance::Estimated => 2,
            Provenance::Unpriced => 3,
        };
        if costing.long_context {
            flags |= LONG_CONTEXT;
        }
        CompactCosting {
            effective,
            computed,
            reported,
            flags: flags | (provenance << PROVENANCE_SHIFT),
        }
    }

    fn costing(&self) -> Costing {
        let amount = |picos: i64, bit: u8| {
            (self.flags & bit != 0).then(|| Usd::from_picos(i128::from(picos)))
        };
        Costing {
            effective: amount(self.effective, HAS_EFFECTIVE),
            computed: amount(self.computed, HAS_COMPUTED),
            reported: amount(self.reported, HAS_REPORTED),
            provenance: match (self.flags >> PROVENANCE_SHIFT) & PROVENANCE_MASK {
                0 => Provenance::Reported,
                1 => Provenance::Computed,
                2 => Provenance::Estimated,
                _ => Provenance::Unpriced,
            },
            long_context: self.flags & LONG_CONTEXT != 0,
        }
    }
}

impl Receipt {
    /// Whether the call can be taken back exactly (its amounts fit).
    #[must_use]
    pub fn is_exact(&self) -> bool {
        self.cost_flags & TOO_LARGE == 0
    }

    /// A 64-bit digest of everything the receipt holds: the key of its
    /// duplicate-prompt mark (two calls with equal receipts are alike in
    /// every sum, so one key for both loses nothing but which was a repeat).
    fn key(&self) -> u64 {
        use std::hash::{BuildHasher as _, Hash as _, Hasher as _};
        let mut h = rustc_hash::FxBuildHasher.build_hasher();
        let u = &self.usage;
        for n in [
            u.input_uncached,
            u.cache_read,
            u.cache_write_5m,
            u.cache_write_1h,
            u.output,
            u.reasoning,
        ] {
            h.write_u64(n);
        }
        self.amounts.hash(&mut h);
        h.write_i64(self.ts_ms);
        for n in [
            self.run_ix,
            u32::from(self.run_gen),
            self.hop,
            self.agent_ix,
            self.model_ix,
            self.segment_ix,
            self.user_ix,
            self.latency_ms,
        ] {
            h.write_u32(n);
        }
        h.write_u8(self.cost_flags);
        self.format.hash(&mut h);
        h.finish()
    }

    fn costing(&self) -> Costing {
        let [effective, computed, reported] = self.amounts;
        CompactCosting {
            effective,
            computed,
            reported,
            flags: self.cost_flags,
        }
        .costing()
    }
}

/// A table position as stored in a [`Receipt`] (tables hold far fewer than
/// 2³² rows: every row is a distinct name read from the input).
fn row_u32(position: usize) -> u32 {
    u32::try_from(position).unwrap_or(NO_ROW)
}

/// Minutes kept open outside the map: events of concurrent runs interleave
/// a few neighbouring minutes.
const OPEN_MINUTES: usize = 4;

fn keyed(name: Arc<str>) -> KeyedAgg {
    KeyedAgg {
        name,
        counters: Counters::default(),
    }
}

fn new_run(run_id: Arc<str>) -> Arc<RunAgg> {
    Arc::new(RunAgg::new(run_id))
}

/// One event's contribution to every aggregate it counts in: computed once,
/// then added to each with [`Counters::merge`] (the same sums as
/// [`Counters::add`], without recomputing the buckets six times).
fn delta(usage: &Usage, costing: &Costing) -> Counters {
    let mut one = Counters::default();
    one.add(usage, costing);
    one
}

impl Ledger {
    #[must_use]
    pub fn new(prices: PriceBook, config: LedgerConfig) -> Self {
        let label_cap = config.max_labels;
        let series = config.series.map(|caps| Box::new(Series::new(caps)));
        Ledger {
            prices,
            config,
            totals: Counters::default(),
            runs: Table::new(),
            run_rank: Vec::new(),
            agents: Table::new(),
            segments: Table::new(),
            users: Table::new(),
            models: Table::new(),
            minutes: BTreeMap::new(),
            open_minutes: Vec::with_capacity(OPEN_MINUTES),
            periods: BTreeMap::new(),
            recent: VecDeque::new(),
            budget_events: 0,
            run_ends: 0,
            first_ts_ms: None,
            last_ts_ms: None,
            by_format: [Counters::default(); Format::ALL.len()],
            vacant_runs: 0,
            run_touch: Vec::new(),
            run_gen: Vec::new(),
            tick: 0,
            runs_evicted: 0,
            evicted: Counters::default(),
            no_run: Arc::new(RunAgg::new(Arc::from(""))),
            newest_minute: None,
            clock_minute: None,
            idents: Idents {
                cap: label_cap,
                ..Idents::default()
            },
            series,
            anomalies: None,
            ended_runs: None,
            duplicates: None,
        }
    }

    #[must_use]
    pub fn prices(&self) -> &PriceBook {
        &self.prices
    }

    #[must_use]
    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    /// Replaces the price book for events applied from now on. Hops already
    /// in the ledger keep the cost and price version they were given: history
    /// is never silently repriced.
    pub fn set_prices(&mut self, prices: PriceBook) {
        self.prices = prices;
        for model in &mut self.models.rows {
            model.resolve(&self.prices);
        }
    }

    /// Folds one event in.
    pub fn apply(&mut self, event: &TelemetryEvent<'_>) {
        self.apply_one(event);
        self.evict_runs();
    }

    fn apply_one(&mut self, event: &TelemetryEvent<'_>) {
        self.touch_time(event.ts_ms);
        match &event.kind {
            EventKind::Hop => {
                let receipt = self.apply_hop(event, None);
                self.observe_prompt(event, &receipt);
                self.show_call(&receipt, event.ts_ms, None);
                self.observe_anomalies(&receipt);
            }
            EventKind::BudgetExceeded {
                limit_kind,
                limit,
                observed,
                action,
            } => {
                self.budget_events += 1;
                let hit = BudgetHit {
                    limit_kind: limit_kind.clone(),
                    limit: *limit,
                    observed: *observed,
                    action: action.clone(),
                    hop: event.hop,
                };
                let run = self.run_mut(&event.run_id);
                touch_run_time(run, event.ts_ms);
                if let Some(hop) = event.hop.and_then(|h| run.hops.get_mut(h)) {
                    hop.set_budget_hit(hit.clone());
                }
                // One entry per (hop, limit kind): memory follows distinct
                // breaches, not repeated reports of the same one.
                let shown = Box::new(hit.clone());
                run.record_hit(hit);
                let run_id = run.run_id.clone();
                self.push_recent(
                    event,
                    run_id,
                    event.hop.unwrap_or(0),
                    None,
                    Provenance::Reported,
                    RecentKind::BudgetExceeded(shown),
                );
            }
            EventKind::RunEnd => {
                self.run_ends += 1;
                let status = self.idents.label(event.status.as_deref().unwrap_or("ok"));
                let run_ix = self.active_run(&event.run_id);
                let run = Arc::make_mut(&mut self.runs.rows[run_ix]);
                touch_run_time(run, event.ts_ms);
                if run.ended.is_none()
                    && let Some(ended) = &mut self.ended_runs
                {
                    ended.push(run_ix);
                }
                run.ended = Some(status.clone());
                let ended = Box::new(RunEnded {
                    status,
                    hops: run.hops.count(),
                    tokens: run.counters().total_tokens,
                    cost: run.counters().known_cost(),
                });
                let run_id = run.run_id.clone();
                self.push_recent(
                    event,
                    run_id,
                    event.hop.unwrap_or(0),
                    None,
                    Provenance::Reported,
                    RecentKind::RunEnd(ended),
                );
            }
        }
    }

    /// The run named `run_id` (created when new), for events that do not
    /// change its counters.
    fn run_mut(&mut self, run_id: &str) -> &mut RunAgg {
        let run_ix = self.active_run(run_id);
        Arc::make_mut(&mut self.runs.rows[run_ix])
    }

    /// The position of run `run_id` (created when new), no longer vacant.
    fn active_run(&mut self, run_id: &str) -> usize {
        let run_ix = self.locate_run(run_id);
        if self.run_rank[run_ix] == VACANT {
            self.run_rank[run_ix] = (0, 0);
            self.vacant_runs -= 1;
        }
        run_ix
    }

    /// The position of run `run_id` (created when new, in the position of
    /// an evicted run if there is one), marked as active now.
    fn locate_run(&mut self, run_id: &str) -> usize {
        let run_ix = self.runs.locate(run_id, new_run);
        let len = self.runs.rows.len();
        if self.run_rank.len() < len {
            self.run_rank.resize(len, (0, 0));
        }
        if self.run_rank[run_ix] == FREE {
            self.run_rank[run_ix] = (0, 0);
        }
        // Without a cap nothing is evicted: no column to keep.
        if self.config.max_runs > 0 {
            if self.run_touch.len() < len {
                self.run_touch.resize(len, 0);
                self.run_gen.resize(len, 0);
            }
            self.tick += 1;
            self.run_touch[run_ix] = self.tick;
        }
        run_ix
    }

    /// Runs held, listed or vacant (not the free positions).
    fn runs_held(&self) -> usize {
        self.runs.rows.len() - self.runs.free.len()
    }

    /// Past `max_runs`, evicts the runs least recently active, down to
    /// 15/16 of the cap (one pass per cap/16 new runs: amortised O(1)).
    fn evict_runs(&mut self) {
        let cap = self.config.max_runs;
        if cap == 0 || self.runs_held() <= cap {
            return;
        }
        let goal = cap - cap / 16;
        let excess = self.runs_held() - goal.max(1);
        let mut order: Vec<(u64, u32)> = (0..self.runs.rows.len())
            .filter(|&i| self.run_rank[i] != FREE)
            .map(|i| (self.run_touch[i], row_u32(i)))
            .collect();
        if excess == 0 || excess > order.len() {
            return;
        }
        order.select_nth_unstable(excess - 1);
        for &(_, i) in &order[..excess] {
            self.evict_run(i as usize);
        }
        self.idents.purge();
    }

    /// Drops run `i`: its calls stay in every other aggregate and in
    /// `evicted`.
    fn evict_run(&mut self, i: usize) {
        if self.run_rank[i] == VACANT {
            self.vacant_runs -= 1;
        } else {
            self.evicted.merge(&self.runs.rows[i].counters());
            self.runs_evicted += 1;
        }
        self.runs.unlist(i);
        self.runs.rows[i] = self.no_run.clone();
        self.run_rank[i] = FREE;
        self.run_gen[i] = self.run_gen[i].wrapping_add(1);
    }

    /// Whether the run a receipt counted in is still held.
    fn holds_run_of(&self, r: &Receipt) -> bool {
        let i = r.run_ix as usize;
        self.run_gen.get(i).copied().unwrap_or(0) == r.run_gen
            && self.run_rank.get(i).is_some_and(|&rank| rank != FREE)
    }

    /// Folds one event in; for a model call, returns what it added so that
    /// it can be taken back when the call is reported again.
    pub fn apply_call(&mut self, event: &TelemetryEvent<'_>) -> Option<Receipt> {
        if event.kind != EventKind::Hop {
            self.apply(event);
            return None;
        }
        self.touch_time(event.ts_ms);
        let receipt = self.apply_hop(event, None);
        self.observe_prompt(event, &receipt);
        self.show_call(&receipt, event.ts_ms, None);
        self.observe_anomalies(&receipt);
        self.evict_runs();
        Some(receipt)
    }

    /// Feeds every call counted from now on to an anomaly detector
    /// (`model::anomaly`). A call is seen once, when first counted: a later
    /// report that replaces it or takes it back (`ingest::dedup`) changes
    /// the totals, not the detector's history, nor an alert raised.
    pub fn watch_anomalies(&mut self, rules: AnomalyRules) {
        let mut detector = AnomalyDetector::new(rules);
        if let Some(minute) = self.clock_minute {
            detector.set_clock(minute * 60_000);
        }
        self.anomalies = Some(Box::new(detector));
    }

    /// Notes each run whose `run_end` arrives from now on, for
    /// [`Ledger::take_ended_runs`].
    pub fn note_ended_runs(&mut self) {
        self.ended_runs.get_or_insert_default();
    }

    /// The runs whose first `run_end` arrived since the last call (with
    /// [`Ledger::note_ended_runs`]), shared: a run changed later is
    /// copied on write, so a caller holding it can tell (its `Arc` is then
    /// no longer the ledger's).
    pub fn take_ended_runs(&mut self, out: &mut Vec<Arc<RunAgg>>) {
        let Some(ended) = &mut self.ended_runs else {
            return;
        };
        for run_ix in ended.drain(..) {
            let run = &self.runs.rows[run_ix];
            // An evicted run's position may hold another run by now.
            if run.ended.is_some() {
                out.push(Arc::clone(run));
            }
        }
    }

    /// The same ledger, still empty, under another config: what was set
    /// on it beside its config (the anomaly detector, the clock) is kept.
    #[must_use]
    pub fn reconfigured(self, change: impl FnOnce(&mut LedgerConfig)) -> Ledger {
        debug_assert!(
            self.totals.events == 0,
            "reconfigured after events were applied"
        );
        let mut config = self.config.clone();
        change(&mut config);
        let mut ledger = Ledger::new(self.prices, config);
        ledger.anomalies = self.anomalies;
        ledger.clock_minute = self.clock_minute;
        ledger.ended_runs = self.ended_runs;
        ledger
    }

    /// The anomaly detector, when watched.
    pub fn anomalies_mut(&mut self) -> Option<&mut AnomalyDetector> {
        self.anomalies.as_deref_mut()
    }

    fn observe_anomalies(&mut self, r: &Receipt) {
        let Some(detector) = self.anomalies.as_deref_mut() else {
            return;
        };
        let Some(agent) = self.agents.rows.get(r.agent_ix as usize) else {
            return;
        };
        let ts = (r.ts_ms != NO_TIME).then_some(r.ts_ms);
        let cost = r.costing().effective;
        detector.observe(ts, cost, &agent.name, r.hop, r.usage.input_total());
    }

    /// Sets the caller's clock (epoch milliseconds; the model reads none):
    /// calls timed more than [`FUTURE_MINUTES`] after it are left out of the
    /// per-minute series (the burn rate) — a wrong agent clock cannot move
    /// the series into the future and prune the present. They are in every
    /// total all the same.
    pub fn set_clock(&mut self, now_ms: i64) {
        self.clock_minute = Some(now_ms.div_euclid(60_000));
        if let Some(detector) = &mut self.anomalies {
            detector.set_clock(now_ms);
        }
    }

    fn touch_time(&mut self, ts: Option<i64>) {
        if let Some(ts) = ts {
            self.first_ts_ms = Some(self.first_ts_ms.map_or(ts, |t| t.min(ts)));
            self.last_ts_ms = Some(self.last_ts_ms.map_or(ts, |t| t.max(ts)));
        }
    }

    /// Takes back everything one call added (its run keeps its place in the
    /// tables; a hop left without calls is removed, a run left with nothing
    /// is no longer listed).
    pub fn retract(&mut self, receipt: &Receipt) {
        if let Some(duplicates) = &mut self.duplicates {
            duplicates.retract(receipt.key());
        }
        let first = self.take_back(receipt);
        if let (Some(series), Some(first)) = (&mut self.series, first) {
            series.corrected(first);
        }
        if self.holds_run_of(receipt) {
            self.drop_if_empty(receipt.run_ix as usize, receipt.hop);
        }
        if let Some(line) = self.line_of(receipt) {
            self.recent.remove(line);
        }
    }

    /// Replaces a call counted earlier with a new report of it: the new
    /// numbers, labels or run. A report without a position that stays in
    /// the same run keeps the call's position.
    ///
    /// The ledger's and the run's first and last times keep the old
    /// report's time too; so does a hop's first time while another call
    /// holds the hop (a hop left empty is rebuilt from the new report).
    pub fn replace(&mut self, old: &Receipt, event: &TelemetryEvent<'_>) -> Receipt {
        let first = self.take_back(old);
        let held = self.holds_run_of(old);
        if held {
            self.drop_if_empty(old.run_ix as usize, old.hop);
        }
        let same_run = held && self.runs.find(&event.run_id) == Some(old.run_ix as usize);
        let at = (event.hop.is_none() && same_run).then_some(old.hop);
        self.touch_time(event.ts_ms);
        let receipt = self.apply_hop(event, at);
        if let Some(duplicates) = &mut self.duplicates {
            let cost = receipt.costing().effective;
            duplicates.replace(old.key(), receipt.key(), receipt.agent_ix, cost);
        }
        if let (Some(series), Some(first)) = (&mut self.series, first) {
            series.corrected(first);
        }
        self.show_call(&receipt, event.ts_ms, Some(old));
        self.evict_runs();
        receipt
    }

    /// Hands a counted call's prompt print to the duplicate index (the
    /// first report of a call only: `replace` revises, never re-observes).
    fn observe_prompt(&mut self, event: &TelemetryEvent<'_>, receipt: &Receipt) {
        let Some(print) = event.prompt else {
            return;
        };
        let Some(run) = self.runs.rows.get(receipt.run_ix as usize) else {
            return;
        };
        let call = CallRef {
            run_id: run.run_id.clone(),
            hop: receipt.hop,
            agent: receipt.agent_ix,
            cost: receipt.costing().effective,
        };
        let rules = self.config.duplicates;
        let index = self
            .duplicates
            .get_or_insert_with(|| Box::new(DuplicateIndex::new(rules)));
        // Only a call that may be revised keeps a mark to undo.
        index.observe(print, &call, event.call.map(|_| receipt.key()));
    }

    /// The duplicate-prompt summary (`None` until a call had a print).
    #[must_use]
    pub fn duplicates(&self) -> Option<DuplicateSummary> {
        let index = self.duplicates.as_ref()?;
        Some(index.summary(TOP_GROUPS, |agent| {
            self.agents
                .rows
                .get(agent as usize)
                .map_or_else(|| Arc::from(UNKNOWN), |row| row.name.clone())
        }))
    }

    /// The recent tail's line of a call: the last one of its run, hop,
    /// agent, model and usage (lines that share all of these look alike).
    fn line_of(&self, r: &Receipt) -> Option<usize> {
        if !self.holds_run_of(r) {
            return None;
        }
        let run = &self.runs.rows.get(r.run_ix as usize)?.run_id;
        let agent = &self.agents.rows.get(r.agent_ix as usize)?.name;
        let model = &self.models.rows.get(r.model_ix as usize)?.name;
        self.recent.iter().rposition(|e| {
            e.kind == RecentKind::Hop
                && e.hop == r.hop
                && e.usage == r.usage
                && e.run_id == *run
                && e.agent == *agent
                && e.model == *model
        })
    }

    /// Puts a call in the recent tail: over the line of the call it
    /// replaces while that is still there, else at the end.
    fn show_call(&mut self, receipt: &Receipt, ts_ms: Option<i64>, replacing: Option<&Receipt>) {
        if self.config.recent_capacity == 0 {
            return;
        }
        let costing = receipt.costing();
        let (Some(run), Some(agent), Some(model)) = (
            self.runs.rows.get(receipt.run_ix as usize),
            self.agents.rows.get(receipt.agent_ix as usize),
            self.models.rows.get(receipt.model_ix as usize),
        ) else {
            return;
        };
        let line = RecentEvent {
            ts_ms,
            run_id: run.run_id.clone(),
            hop: receipt.hop,
            agent: agent.name.clone(),
            model: model.name.clone(),
            usage: receipt.usage,
            cost: costing.effective,
            provenance: costing.provenance,
            kind: RecentKind::Hop,
        };
        match replacing.and_then(|old| self.line_of(old)) {
            Some(earlier) => self.recent[earlier] = line,
            None => self.push(line),
        }
    }

    /// Subtracts a receipt from every aggregate it was added to; with
    /// per-series sums, returns the call's series row and what it held before.
    fn take_back(&mut self, r: &Receipt) -> Option<(usize, SeriesSums)> {
        let costing = r.costing();
        let one = delta(&r.usage, &costing);
        let first = self.series.as_mut().map(|series| {
            fn name(row: Option<&str>) -> &str {
                row.unwrap_or(OTHER)
            }
            let place = Place {
                agent: (
                    r.agent_ix,
                    name(self.agents.rows.get(r.agent_ix as usize).map(|a| &*a.name)),
                ),
                segment: (r.segment_ix != NO_ROW).then(|| {
                    (
                        r.segment_ix,
                        name(
                            self.segments
                                .rows
                                .get(r.segment_ix as usize)
                                .map(|s| &*s.name),
                        ),
                    )
                }),
                model: (
                    r.model_ix,
                    name(self.models.rows.get(r.model_ix as usize).map(|m| &*m.name)),
                ),
            };
            series.remove(&place, &r.usage, &costing)
        });
        self.totals.unmerge(&one);
        self.by_format[r.format.index()].unmerge(&one);
        if let Some(model) = self.models.rows.get_mut(r.model_ix as usize) {
            model.counters.unmerge(&one);
        }
        if let Some(agent) = self.agents.rows.get_mut(r.agent_ix as usize) {
            agent.counters.unmerge(&one);
        }
        if let Some(segment) = self.segments.rows.get_mut(r.segment_ix as usize) {
            segment.counters.unmerge(&one);
        }
        if let Some(user) = self.users.rows.get_mut(r.user_ix as usize) {
            user.counters.unmerge(&one);
        }
        if r.ts_ms != NO_TIME {
            let ts = r.ts_ms;
            let at = ts.div_euclid(60_000);
            // A call timed too far ahead was never in the per-minute series.
            let in_minutes = r.cost_flags & OFF_MINUTES == 0;
            if let Some((_, counters)) = self
                .open_minutes
                .iter_mut()
                .find(|(m, _)| in_minutes && *m == at)
            {
                counters.unmerge(&one);
            } else if in_minutes && let Some(counters) = self.minutes.get_mut(&at) {
                counters.unmerge(&one);
            }
            if let Some(start) = self.config.period.and_then(|p| p.start_of(ts))
                && let Some(counters) = self.periods.get_mut(&start)
            {
                counters.unmerge(&one);
            }
        }
        let run_ix = r.run_ix as usize;
        if !self.holds_run_of(r) {
            // Its run was evicted: the call is in `evicted`.
            self.evicted.unmerge(&one);
            return first;
        }
        let Some(run) = self.runs.rows.get_mut(run_ix) else {
            return first;
        };
        let run = Arc::make_mut(run);
        if let Some(sum) = &mut run.sum {
            sum.unmerge(&one);
        }
        if let Some(hop) = run.hops.get_mut(r.hop) {
            let latency = (r.latency_ms != NO_LATENCY).then_some(u64::from(r.latency_ms));
            hop.remove(&r.usage, &costing, latency);
        }
        self.run_rank[run_ix] = run.rank();
        first
    }

    /// Removes hop `hop` of run `run_ix` if no call is left in it, and
    /// stops listing the run if nothing is left in it.
    fn drop_if_empty(&mut self, run_ix: usize, hop: u32) {
        let Some(run) = self.runs.rows.get_mut(run_ix) else {
            return;
        };
        if run.hops.get(hop).is_some_and(|h| h.calls == 0) {
            Arc::make_mut(run).hops.remove_if(hop, |h| h.calls == 0);
        }
        let vacant = run.hops.count() == 0
            && run.counters().events == 0
            && run.budget_hits.is_empty()
            && run.ended.is_none();
        if vacant && self.run_rank[run_ix] != VACANT {
            self.run_rank[run_ix] = VACANT;
            self.vacant_runs += 1;
        }
    }

    /// Folds a model call in, at position `at` when the event has none of
    /// its own and one is given.
    fn apply_hop(&mut self, event: &TelemetryEvent<'_>, at: Option<u32>) -> Receipt {
        let run_ix = self.locate_run(&event.run_id);
        let run_gen = self.run_gen.get(run_ix).copied().unwrap_or(0);
        // Disjoint borrows of the tables, so rows can be held side by side.
        let Ledger {
            prices,
            config,
            totals,
            runs,
            run_rank,
            agents,
            segments,
            users,
            models,
            minutes,
            open_minutes,
            periods,
            idents,
            by_format,
            vacant_runs,
            newest_minute,
            clock_minute,
            series,
            ..
        } = self;
        let usage = &event.usage;
        let cap = config.max_labels;

        let (model_ix, folded) =
            models.locate_capped(&event.model, cap, |name| ModelAgg::new(name, prices));
        let model = &mut models.rows[model_ix];
        if model.provider.is_none()
            && !folded
            && let Some(provider) = &event.provider
        {
            model.provider = Some(Arc::from(provider.as_ref()));
        }
        // A model counted in `(other)` is still priced by its own name.
        let (price, folded_version) = if folded {
            let price = prices.resolve(&event.model);
            let version: Option<Arc<str>> = price.map(|p| Arc::from(prices.version_of(p)));
            (price, version)
        } else {
            (model.price, None)
        };
        let quote = price.map(|p| prices.quote(p, usage));
        let computed = quote.map(|q| q.cost);
        let provenance = match (event.reported_cost, computed) {
            (Some(_), _) => Provenance::Reported,
            (None, Some(_)) if event.estimated => Provenance::Estimated,
            (None, Some(_)) => Provenance::Computed,
            (None, None) => Provenance::Unpriced,
        };
        let costing = Costing {
            effective: event.reported_cost.or(computed),
            computed,
            reported: event.reported_cost,
            provenance,
            long_context: quote.is_some_and(|q| q.long_context),
        };
        let one = delta(usage, &costing);
        model.counters.merge(&one);
        totals.merge(&one);
        by_format[event.format.index()].merge(&one);

        let (agent_ix, _) = agents.locate_capped(&event.agent, cap, keyed);
        agents.rows[agent_ix].counters.merge(&one);
        let mut segment_ix = NO_ROW;
        let segment = event.segment.as_deref().map(|s| {
            let (position, _) = segments.locate_capped(s, cap, keyed);
            segment_ix = row_u32(position);
            let row = &mut segments.rows[position];
            row.counters.merge(&one);
            &row.name
        });
        let mut user_ix = NO_ROW;
        let user = event.user.as_deref().map(|u| {
            let (position, _) = users.locate_capped(u, cap, keyed);
            user_ix = row_u32(position);
            let row = &mut users.rows[position];
            row.counters.merge(&one);
            &row.name
        });
        if let Some(series) = series {
            let place = Place {
                agent: (row_u32(agent_ix), &agents.rows[agent_ix].name),
                segment: segment.map(|name| (segment_ix, &**name)),
                model: (row_u32(model_ix), &models.rows[model_ix].name),
            };
            series.add(&place, usage, &costing);
        }
        let mut off_minutes = false;
        if let Some(ts) = event.ts_ms {
            let at = ts.div_euclid(60_000);
            // Timed far ahead of the clock: out of the per-minute series,
            // which it would otherwise move into the future.
            off_minutes =
                config.per_minute && clock_minute.is_some_and(|now| ahead_of_clock(ts, now));
            if config.per_minute && !off_minutes {
                let kept = config.minutes_kept;
                if kept == 0 || newest_minute.is_none_or(|n| at >= n.saturating_sub(kept)) {
                    add_minute(open_minutes, minutes, at, &one);
                }
                if kept > 0 && newest_minute.is_none_or(|n| at > n) {
                    *newest_minute = Some(at);
                    prune_minutes(open_minutes, minutes, at.saturating_sub(kept));
                }
            }
            if let Some(start) = config.period.and_then(|p| p.start_of(ts)) {
                periods.entry(start).or_default().merge(&one);
            }
        }

        if run_rank[run_ix] == VACANT {
            *vacant_runs -= 1;
        }
        let run = Arc::make_mut(&mut runs.rows[run_ix]);
        touch_run_time(run, event.ts_ms);
        // Assign only on change: most events repeat their run's segment and user.
        if let Some(segment) = segment
            && !run
                .segment
                .as_ref()
                .is_some_and(|s| Arc::ptr_eq(s, segment))
        {
            run.segment = Some(segment.clone());
        }
        if let Some(user) = user
            && !run.user.as_ref().is_some_and(|u| Arc::ptr_eq(u, user))
        {
            run.user = Some(user.clone());
        }

        let model = &models.rows[model_ix];
        let price_version = if folded {
            folded_version.as_ref()
        } else {
            model.price_version.as_ref()
        };
        let labels = LabelsRef::of(event);
        let position = event.hop.or(at).unwrap_or_else(|| run.hops.next_position());
        let hop = match run.hops.get_mut(position) {
            Some(hop) => {
                // A later call's labels replace the hop's when it has any;
                // a priced call stamps its table's version.
                let relabel = !labels.is_empty() && labels != hop.labels.borrowed();
                let reversion = price_version.is_some()
                    && price_version.map(|v| &**v) != hop.price_version.as_deref();
                if relabel || reversion {
                    let (agent_ix, model_ix) = (hop.agent_ix, hop.model_ix);
                    let ident = hop.ident.clone();
                    hop.ident = idents.intern(
                        (agent_ix, &ident.agent),
                        (model_ix, &ident.model),
                        if relabel {
                            labels
                        } else {
                            ident.labels.borrowed()
                        },
                        price_version.or(ident.price_version.as_ref()),
                        hop.hop,
                    );
                }
                hop
            }
            None => {
                let ident = idents.intern(
                    (agent_ix, &agents.rows[agent_ix].name),
                    (model_ix, &model.name),
                    labels,
                    price_version,
                    position,
                );
                if run.sum.is_none() && run.hops.count() > 0 {
                    // A second hop: the run's sum is no longer its hop's.
                    run.sum = Some(Box::new(run.counters()));
                }
                let mut hop = HopAgg::new(position, ident);
                // Runtimes report a breach before the (trimmed) hop it was for.
                if let Some(hit) = run.last_hit_of(position) {
                    hop.set_budget_hit(hit.clone());
                }
                run.hops.insert(hop)
            }
        };
        if let Some(ts) = event.ts_ms {
            hop.first_ts_ms = Some(hop.first_ts_ms.map_or(ts, |first| first.min(ts)));
        }
        if let Some(latency) = event.latency_ms {
            hop.latency_ms = Some(hop.latency_ms.unwrap_or(0).saturating_add(latency));
        }
        hop.add(usage, &costing);
        let hop_position = hop.hop;
        if let Some(sum) = &mut run.sum {
            sum.merge(&one);
        }
        run_rank[run_ix] = run.rank();
        let compact = CompactCosting::new(&costing);
        let mut receipt = Receipt {
            usage: *usage,
            amounts: [compact.effective, compact.computed, compact.reported],
            cost_flags: compact.flags,
            ts_ms: event.ts_ms.unwrap_or(NO_TIME),
            run_ix: row_u32(run_ix),
            run_gen,
            hop: hop_position,
            agent_ix: row_u32(agent_ix),
            model_ix: row_u32(model_ix),
            segment_ix,
            user_ix,
            format: event.format,
            latency_ms: NO_LATENCY,
        };
        if off_minutes {
            receipt.cost_flags |= OFF_MINUTES;
        }
        if let Some(latency) = event.latency_ms {
            match u32::try_from(latency).ok().filter(|l| *l != NO_LATENCY) {
                Some(latency) => receipt.latency_ms = latency,
                None => receipt.cost_flags |= TOO_LARGE,
            }
        }
        receipt
    }

    fn push(&mut self, recent: RecentEvent) {
        if self.recent.len() >= self.config.recent_capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(recent);
    }

    fn push_recent(
        &mut self,
        event: &TelemetryEvent<'_>,
        run_id: Arc<str>,
        hop: u32,
        cost: Option<Usd>,
        provenance: Provenance,
        kind: RecentKind,
    ) {
        if self.config.recent_capacity == 0 {
            return;
        }
        let agent = self.idents.label(&event.agent);
        let model = self.idents.label(&event.model);
        self.push(RecentEvent {
            ts_ms: event.ts_ms,
            run_id,
            hop,
            agent,
            model,
            usage: event.usage,
            cost,
            provenance,
            kind,
        });
    }

    /// Slots of the run table ([`Ledger::run_slot`] for each).
    pub(crate) fn run_slots(&self) -> usize {
        self.runs.rows.len()
    }

    /// The run held in slot `i` (its calls all taken back or not), `None`
    /// for a free slot (a run evicted past the cap, or never used).
    pub(crate) fn run_slot(&self, i: usize) -> Option<&Arc<RunAgg>> {
        (self.run_rank.get(i).is_some_and(|&r| r != FREE)).then(|| &self.runs.rows[i])
    }

    /// Runs listed in snapshots (all but the vacant ones).
    pub(crate) fn runs_listed(&self) -> usize {
        self.runs_held() - self.vacant_runs
    }

    /// The `limit` most expensive runs (0: all): highest cost, then most
    /// tokens, then run id.
    pub(crate) fn top_runs(&self, limit: usize) -> Vec<Arc<RunAgg>> {
        let rank = &self.run_rank;
        let id = |i: usize| &*self.runs.rows[i].run_id;
        let live = (0..rank.len()).filter(|&i| rank[i] != VACANT && rank[i] != FREE);
        let mut kept: Vec<usize> = if limit > 0 && limit < rank.len() {
            // The `limit` best ranks in a max-heap: one comparison with its
            // top rejects almost every run, and no run is read (a run's id
            // is a cache miss away). Runs ranked above the worst rank kept
            // are all in; of those tied with it, the smallest ids.
            type Key = (std::cmp::Reverse<Rank>, usize);
            let mut top: std::collections::BinaryHeap<Key> =
                std::collections::BinaryHeap::with_capacity(limit + 1);
            for i in live.clone() {
                let key = (std::cmp::Reverse(rank[i]), i);
                if top.len() < limit {
                    top.push(key);
                } else if let Some(mut worst) = top.peek_mut()
                    && key.0 < worst.0
                {
                    *worst = key;
                }
            }
            let edge = top.peek().map(|(std::cmp::Reverse(r), _)| *r);
            let mut kept: Vec<usize> = top
                .into_iter()
                .filter(|(std::cmp::Reverse(r), _)| Some(*r) != edge)
                .map(|(_, i)| i)
                .collect();
            let wanted = limit - kept.len();
            let mut tied: Vec<usize> = live.filter(|&i| Some(rank[i]) == edge).collect();
            if tied.len() > wanted {
                tied.select_nth_unstable_by(wanted, |&a, &b| id(a).cmp(id(b)));
                tied.truncate(wanted);
            }
            kept.extend(tied);
            kept
        } else {
            live.collect()
        };
        // Run ids are unique: the order is total, an unstable sort exact.
        // Positions alone are sorted (8 bytes a run, not a 40-byte key).
        kept.sort_unstable_by(|&a, &b| rank[b].cmp(&rank[a]).then_with(|| id(a).cmp(id(b))));
        kept.into_iter().map(|i| self.run_for_snapshot(i)).collect()
    }

    /// Run `i` as a snapshot holds it: every hop merged (a copy when some
    /// arrived out of order and are not merged yet).
    pub(crate) fn run_for_snapshot(&self, i: usize) -> Arc<RunAgg> {
        let run = &self.runs.rows[i];
        if run.hops.is_merged() {
            return run.clone();
        }
        let mut copy = RunAgg::clone(run);
        copy.hops.merge();
        Arc::new(copy)
    }

    #[must_use]
    pub fn totals(&self) -> &Counters {
        &self.totals
    }

    /// An immutable view of everything, for reports.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::from_ledger(self, Limits::ALL)
    }

    /// A live snapshot: the `top` most expensive runs and rows of each
    /// `by_*` list (0: all), the rest of each list folded into an
    /// `(other)` row so that every list still adds up to the totals
    /// (`runs_total` counts every run). Its cost follows `top`, not the
    /// number of keys, beyond one pass over each table.
    #[must_use]
    pub fn snapshot_live(&self, top: usize) -> Snapshot {
        Snapshot::from_ledger(
            self,
            Limits {
                runs: top,
                rows: top,
                per_minute: true,
            },
        )
    }

    /// A snapshot for printing: like [`Ledger::snapshot_live`] without
    /// the per-minute series.
    #[must_use]
    pub fn snapshot_top(&self, top: usize) -> Snapshot {
        Snapshot::from_ledger(
            self,
            Limits {
                runs: top,
                rows: top,
                per_minute: false,
            },
        )
    }
}

fn touch_run_time(run: &mut RunAgg, ts: Option<i64>) {
    if let Some(ts) = ts {
        run.first_ts_ms = Some(run.first_ts_ms.map_or(ts, |t| t.min(ts)));
        run.last_ts_ms = Some(run.last_ts_ms.map_or(ts, |t| t.max(ts)));
    }
}

/// Forgets the minutes before `from`.
fn prune_minutes(
    open_minutes: &mut Vec<(i64, Counters)>,
    minutes: &mut BTreeMap<i64, Counters>,
    from: i64,
) {
    open_minutes.retain(|(m, _)| *m >= from);
    while minutes.first_key_value().is_some_and(|(m, _)| *m < from) {
        minutes.pop_first();
    }
}

/// Adds a call to minute `at`: the few minutes being filled stay open
/// outside the map (concurrent runs interleave neighbouring minutes).
fn add_minute(
    open_minutes: &mut Vec<(i64, Counters)>,
    minutes: &mut BTreeMap<i64, Counters>,
    at: i64,
    one: &Counters,
) {
    if let Some((_, counters)) = open_minutes.iter_mut().find(|(m, _)| *m == at) {
        counters.merge(one);
    } else {
        // Park the oldest open minute in the map; take the new one out.
        if open_minutes.len() == OPEN_MINUTES {
            let (m, counters) = open_minutes.remove(0);
            minutes.insert(m, counters);
        }
        let mut counters = minutes.remove(&at).unwrap_or_default();
        counters.merge(one);
        open_minutes.push((at, counters));
    }
}

fn sub_usage(from: &mut Usage, usage: &Usage) {
    from.input_uncached = from.input_uncached.saturating_sub(usage.input_uncached);
    from.cache_read = from.cache_read.saturating_sub(usage.cache_read);
    from.cache_write_5m = from.cache_write_5m.saturating_sub(usage.cache_write_5m);
    from.cache_write_1h = from.cache_write_1h.saturating_sub(usage.cache_write_1h);
    from.output = from.output.saturating_sub(usage.output);
    from.reasoning = from.reasoning.saturating_sub(usage.reasoning);
}

fn add_usage(into: &mut Usage, usage: &Usage) {
    *into = into.saturating_add(usage);
}

#[cfg(test)]
thread_local! {
    /// Steps of hop bookkeeping on this thread: hops shifted or copied,
    /// breaches scanned (tests check it grows near-linearly).
    static WORK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn count_work(steps: usize) {
    WORK.with(|w| w.set(w.get() + steps as u64));
}

#[cfg(test)]
fn work_done() -> u64 {
    WORK.with(std::cell::Cell::get)
}

mod hops;
pub use hops::Hops;

pub mod series;
mod watch;
use series::{Place, Series, SeriesSums};
pub use series::{SeriesCaps, SeriesView};
pub use watch::RunWatch;

#[cfg(test)]
mod tests;
