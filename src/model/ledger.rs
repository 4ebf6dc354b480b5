//! The ledger folds events into aggregates. Memory grows with the number of
//! distinct keys (runs, hops, agents, models, minutes), never with events;
//! only a bounded ring of recent events is kept.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, TimeZone};
use hashbrown::hash_map::EntryRef;
use hashbrown::{HashMap, HashSet};

use super::counters::{Costing, Counters, Provenance};
use super::event::{EventKind, TelemetryEvent, Usage, infer_provider};
use super::money::Usd;
use super::snapshot::Snapshot;
use crate::pricing::{PriceBook, PriceRef};

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
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            recent_capacity: 500,
            period: None,
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

/// The optional labels of a hop, interned as one value: hops of the same
/// workflow share them, which keeps a hop small (there is one per key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HopLabels {
    pub parent_agent: Option<Arc<str>>,
    pub task: Option<Arc<str>>,
    pub tool: Option<Arc<str>>,
    pub status: Option<Arc<str>>,
}

/// Borrowed form of [`HopLabels`] for look-ups without allocating.
#[derive(Hash)]
struct HopLabelsRef<'a> {
    parent_agent: Option<&'a str>,
    task: Option<&'a str>,
    tool: Option<&'a str>,
    status: Option<&'a str>,
}

impl HopLabels {
    fn borrowed(&self) -> HopLabelsRef<'_> {
        HopLabelsRef {
            parent_agent: self.parent_agent.as_deref(),
            task: self.task.as_deref(),
            tool: self.tool.as_deref(),
            status: self.status.as_deref(),
        }
    }
}

/// `Arc<str>` hashes as `str`, so hashing the borrowed form matches.
impl std::hash::Hash for InternedLabels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.borrowed().hash(state);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct InternedLabels(Arc<HopLabels>);

impl hashbrown::Equivalent<InternedLabels> for HopLabelsRef<'_> {
    fn equivalent(&self, key: &InternedLabels) -> bool {
        let other = key.0.borrowed();
        self.parent_agent == other.parent_agent
            && self.task == other.task
            && self.tool == other.tool
            && self.status == other.status
    }
}

/// One position in a run; several calls at the same position add up.
/// Kept compact: a ledger holds one per distinct (run, hop).
#[derive(Debug, Clone)]
pub struct HopAgg {
    pub hop: u32,
    pub calls: u32,
    pub agent: Arc<str>,
    pub model: Arc<str>,
    pub labels: Arc<HopLabels>,
    /// The usage of the hop's calls, summed.
    pub usage: Usage,
    /// Reported where a call had a cost, computed otherwise; unpriced calls add nothing.
    pub cost: Usd,
    pub computed_cost: Usd,
    pub reported_cost: Usd,
    pub reported_calls: u32,
    pub computed_calls: u32,
    pub estimated_calls: u32,
    pub unpriced_calls: u32,
    pub long_context_calls: u32,
    pub unpriced_tokens: u64,
    pub first_ts_ms: Option<i64>,
    pub latency_ms: Option<u64>,
    pub provenance: Provenance,
    /// Price-table version that priced the hop, when computed.
    pub price_version: Option<Arc<str>>,
    pub budget_hit: Option<Box<BudgetHit>>,
}

#[derive(Debug, Clone)]
pub struct RunAgg {
    pub run_id: Arc<str>,
    /// Sorted by hop position.
    pub hops: Vec<HopAgg>,
    pub counters: Counters,
    pub segment: Option<Arc<str>>,
    pub user: Option<Arc<str>>,
    pub first_ts_ms: Option<i64>,
    pub last_ts_ms: Option<i64>,
    /// `status` of the `run_end` record, once seen.
    pub ended: Option<Arc<str>>,
    pub budget_hits: Vec<BudgetHit>,
}

impl RunAgg {
    fn new(run_id: Arc<str>) -> Self {
        RunAgg {
            run_id,
            hops: Vec::new(),
            counters: Counters::default(),
            segment: None,
            user: None,
            first_ts_ms: None,
            last_ts_ms: None,
            ended: None,
            budget_hits: Vec::new(),
        }
    }

    /// Run tokens ÷ first hop's tokens: how much re-sent context costs.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn multiplier(&self) -> Option<f64> {
        let first = self.hops.first()?.usage.total();
        (first > 0).then(|| self.counters.total_tokens as f64 / first as f64)
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

    /// The hop at `hop` (or the next position), created from `make` when new.
    fn hop_slot(&mut self, hop: Option<u32>, make: impl FnOnce(u32) -> HopAgg) -> &mut HopAgg {
        let position =
            hop.unwrap_or_else(|| self.hops.last().map_or(1, |h| h.hop.saturating_add(1)));
        // Hops usually arrive in order: check the end before searching.
        let index = match self.hops.last() {
            Some(last) if last.hop == position => self.hops.len() - 1,
            Some(last) if last.hop < position => {
                self.hops.push(make(position));
                self.hops.len() - 1
            }
            None => {
                self.hops.reserve_exact(8);
                self.hops.push(make(position));
                0
            }
            Some(_) => match self.hops.binary_search_by_key(&position, |h| h.hop) {
                Ok(index) => index,
                Err(index) => {
                    self.hops.insert(index, make(position));
                    index
                }
            },
        };
        &mut self.hops[index]
    }
}

impl HopAgg {
    fn new(hop: u32, agent: Arc<str>, model: Arc<str>, labels: Arc<HopLabels>) -> Self {
        HopAgg {
            hop,
            calls: 0,
            agent,
            model,
            labels,
            usage: Usage::default(),
            cost: Usd::ZERO,
            computed_cost: Usd::ZERO,
            reported_cost: Usd::ZERO,
            reported_calls: 0,
            computed_calls: 0,
            estimated_calls: 0,
            unpriced_calls: 0,
            long_context_calls: 0,
            unpriced_tokens: 0,
            first_ts_ms: None,
            latency_ms: None,
            provenance: Provenance::Reported,
            price_version: None,
            budget_hit: None,
        }
    }

    fn add(&mut self, usage: &Usage, costing: &Costing) {
        self.calls = self.calls.saturating_add(1);
        add_usage(&mut self.usage, usage);
        match costing.effective {
            Some(cost) => self.cost += cost,
            None => {
                self.unpriced_calls += 1;
                self.unpriced_tokens += usage.total();
            }
        }
        if let Some(cost) = costing.computed {
            self.computed_cost += cost;
            self.computed_calls += 1;
        }
        if let Some(cost) = costing.reported {
            self.reported_cost += cost;
            self.reported_calls += 1;
        }
        self.estimated_calls += u32::from(costing.provenance == Provenance::Estimated);
        self.long_context_calls += u32::from(costing.long_context);
        self.provenance = if self.calls == 1 {
            costing.provenance
        } else {
            self.provenance.max(costing.provenance)
        };
    }

    /// The hop as [`Counters`], like every other aggregate.
    #[must_use]
    pub fn counters(&self) -> Counters {
        let u = &self.usage;
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
            computed_cost: self.computed_cost,
            reported_cost: self.reported_cost,
            reported_events: u64::from(self.reported_calls),
            computed_events: u64::from(self.computed_calls),
            estimated_events: u64::from(self.estimated_calls),
            unpriced_events: u64::from(self.unpriced_calls),
            unpriced_tokens: self.unpriced_tokens,
            long_context_events: u64::from(self.long_context_calls),
        }
    }

    /// Cost of the hop, `None` when any call is unpriced.
    #[must_use]
    pub fn complete_cost(&self) -> Option<Usd> {
        (self.unpriced_calls == 0).then_some(self.cost)
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecentKind {
    Hop,
    BudgetExceeded,
    RunEnd,
}

/// Everything the views and reports are computed from.
#[derive(Debug, Clone)]
pub struct Ledger {
    prices: PriceBook,
    config: LedgerConfig,
    pub(crate) totals: Counters,
    /// Shared with snapshots; copied on write only while a snapshot holds it.
    pub(crate) runs: HashMap<Arc<str>, Arc<RunAgg>>,
    pub(crate) agents: HashMap<Arc<str>, KeyedAgg>,
    pub(crate) segments: HashMap<Arc<str>, KeyedAgg>,
    pub(crate) users: HashMap<Arc<str>, KeyedAgg>,
    pub(crate) models: HashMap<Arc<str>, ModelAgg>,
    /// Minute since the epoch → counters (burn rate).
    pub(crate) minutes: BTreeMap<i64, Counters>,
    pub(crate) periods: BTreeMap<NaiveDate, Counters>,
    pub(crate) recent: VecDeque<RecentEvent>,
    pub(crate) budget_events: u64,
    pub(crate) run_ends: u64,
    pub(crate) first_ts_ms: Option<i64>,
    pub(crate) last_ts_ms: Option<i64>,
    /// Interned strings for small optional labels (task, tool, status …).
    labels: HashSet<Arc<str>>,
    hop_labels: HashSet<InternedLabels>,
}

/// Finds or creates the entry for `key`, allocating the shared name once.
fn slot<'m, V>(
    map: &'m mut HashMap<Arc<str>, V>,
    key: &str,
    make: impl FnOnce(Arc<str>) -> V,
) -> &'m mut V {
    match map.entry_ref(key) {
        EntryRef::Occupied(entry) => entry.into_mut(),
        EntryRef::Vacant(entry) => {
            let name: Arc<str> = Arc::from(key);
            entry.insert_with_key(name.clone(), make(name))
        }
    }
}

fn keyed(name: Arc<str>) -> KeyedAgg {
    KeyedAgg {
        name,
        counters: Counters::default(),
    }
}

impl Ledger {
    #[must_use]
    pub fn new(prices: PriceBook, config: LedgerConfig) -> Self {
        Ledger {
            prices,
            config,
            totals: Counters::default(),
            runs: HashMap::new(),
            agents: HashMap::new(),
            segments: HashMap::new(),
            users: HashMap::new(),
            models: HashMap::new(),
            minutes: BTreeMap::new(),
            periods: BTreeMap::new(),
            recent: VecDeque::new(),
            budget_events: 0,
            run_ends: 0,
            first_ts_ms: None,
            last_ts_ms: None,
            labels: HashSet::new(),
            hop_labels: HashSet::new(),
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
        for model in self.models.values_mut() {
            model.resolve(&self.prices);
        }
    }

    /// The interned labels of a hop event.
    fn hop_labels(&mut self, event: &TelemetryEvent<'_>) -> Arc<HopLabels> {
        let key = HopLabelsRef {
            parent_agent: event.parent_agent.as_deref(),
            task: event.task.as_deref(),
            tool: event.tool.as_deref(),
            status: event.status.as_deref(),
        };
        if let Some(found) = self.hop_labels.get(&key) {
            return found.0.clone();
        }
        let labels = Arc::new(HopLabels {
            parent_agent: key.parent_agent.map(|t| self.label(t)),
            task: key.task.map(|t| self.label(t)),
            tool: key.tool.map(|t| self.label(t)),
            status: key.status.map(|t| self.label(t)),
        });
        self.hop_labels.insert(InternedLabels(labels.clone()));
        labels
    }

    fn label(&mut self, text: &str) -> Arc<str> {
        self.labels
            .get_or_insert_with(text, |t| Arc::from(t))
            .clone()
    }

    /// Folds one event in.
    pub fn apply(&mut self, event: &TelemetryEvent<'_>) {
        if let Some(ts) = event.ts_ms {
            self.first_ts_ms = Some(self.first_ts_ms.map_or(ts, |t| t.min(ts)));
            self.last_ts_ms = Some(self.last_ts_ms.map_or(ts, |t| t.max(ts)));
        }
        match &event.kind {
            EventKind::Hop => self.apply_hop(event),
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
                let run = Arc::make_mut(slot(&mut self.runs, &event.run_id, |id| {
                    Arc::new(RunAgg::new(id))
                }));
                touch_run_time(run, event.ts_ms);
                if let Some(hop) = event.hop
                    && let Ok(i) = run.hops.binary_search_by_key(&hop, |h| h.hop)
                {
                    run.hops[i].budget_hit = Some(Box::new(hit.clone()));
                }
                run.budget_hits.push(hit);
                let run_id = run.run_id.clone();
                self.push_recent(
                    event,
                    run_id,
                    event.hop.unwrap_or(0),
                    None,
                    Provenance::Reported,
                    RecentKind::BudgetExceeded,
                );
            }
            EventKind::RunEnd => {
                self.run_ends += 1;
                let status = self.label(event.status.as_deref().unwrap_or("ok"));
                let run = Arc::make_mut(slot(&mut self.runs, &event.run_id, |id| {
                    Arc::new(RunAgg::new(id))
                }));
                touch_run_time(run, event.ts_ms);
                run.ended = Some(status);
                let run_id = run.run_id.clone();
                self.push_recent(
                    event,
                    run_id,
                    event.hop.unwrap_or(0),
                    None,
                    Provenance::Reported,
                    RecentKind::RunEnd,
                );
            }
        }
    }

    fn costing(&mut self, event: &TelemetryEvent<'_>) -> (Costing, Option<Arc<str>>, Arc<str>) {
        let prices = &self.prices;
        let model = slot(&mut self.models, &event.model, |name| {
            ModelAgg::new(name, prices)
        });
        if model.provider.is_none()
            && let Some(provider) = &event.provider
        {
            model.provider = Some(Arc::from(provider.as_ref()));
        }
        let quote = model.price.map(|p| prices.quote(p, &event.usage));
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
        model.counters.add(&event.usage, &costing);
        (costing, model.price_version.clone(), model.name.clone())
    }

    fn apply_hop(&mut self, event: &TelemetryEvent<'_>) {
        let (costing, price_version, model) = self.costing(event);
        let usage = &event.usage;
        self.totals.add(usage, &costing);

        let agent = slot(&mut self.agents, &event.agent, keyed);
        agent.counters.add(usage, &costing);
        let agent_name = agent.name.clone();
        let segment = event.segment.as_deref().map(|s| {
            let entry = slot(&mut self.segments, s, keyed);
            entry.counters.add(usage, &costing);
            entry.name.clone()
        });
        let user = event.user.as_deref().map(|u| {
            let entry = slot(&mut self.users, u, keyed);
            entry.counters.add(usage, &costing);
            entry.name.clone()
        });
        if let Some(ts) = event.ts_ms {
            self.minutes
                .entry(ts.div_euclid(60_000))
                .or_default()
                .add(usage, &costing);
            if let Some(start) = self.config.period.and_then(|p| p.start_of(ts)) {
                self.periods.entry(start).or_default().add(usage, &costing);
            }
        }
        let labels = self.hop_labels(event);

        let run = Arc::make_mut(slot(&mut self.runs, &event.run_id, |id| {
            Arc::new(RunAgg::new(id))
        }));
        touch_run_time(run, event.ts_ms);
        run.counters.add(usage, &costing);
        if segment.is_some() {
            run.segment = segment;
        }
        if user.is_some() {
            run.user = user;
        }
        let hop = run.hop_slot(event.hop, |position| {
            HopAgg::new(position, agent_name.clone(), model.clone(), labels.clone())
        });
        if hop.calls > 0 && *hop.labels != *labels && *labels != HopLabels::default() {
            hop.labels = labels;
        }
        if let Some(ts) = event.ts_ms {
            hop.first_ts_ms = Some(hop.first_ts_ms.map_or(ts, |first| first.min(ts)));
        }
        if price_version.is_some() {
            hop.price_version = price_version;
        }
        if let Some(latency) = event.latency_ms {
            hop.latency_ms = Some(hop.latency_ms.unwrap_or(0).saturating_add(latency));
        }
        hop.add(usage, &costing);
        let hop_number = hop.hop;
        let run_id = run.run_id.clone();
        self.push_recent_hop(event, run_id, hop_number, agent_name, model, &costing);
    }

    fn push_recent_hop(
        &mut self,
        event: &TelemetryEvent<'_>,
        run_id: Arc<str>,
        hop: u32,
        agent: Arc<str>,
        model: Arc<str>,
        costing: &Costing,
    ) {
        if self.config.recent_capacity == 0 {
            return;
        }
        if self.recent.len() == self.config.recent_capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(RecentEvent {
            ts_ms: event.ts_ms,
            run_id,
            hop,
            agent,
            model,
            usage: event.usage,
            cost: costing.effective,
            provenance: costing.provenance,
            kind: RecentKind::Hop,
        });
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
        if self.recent.len() == self.config.recent_capacity {
            self.recent.pop_front();
        }
        let agent = self.label(&event.agent);
        let model = self.label(&event.model);
        self.recent.push_back(RecentEvent {
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

    #[must_use]
    pub fn totals(&self) -> &Counters {
        &self.totals
    }

    /// An immutable view for reports and the UI.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::from_ledger(self)
    }
}

fn touch_run_time(run: &mut RunAgg, ts: Option<i64>) {
    if let Some(ts) = ts {
        run.first_ts_ms = Some(run.first_ts_ms.map_or(ts, |t| t.min(ts)));
        run.last_ts_ms = Some(run.last_ts_ms.map_or(ts, |t| t.max(ts)));
    }
}

fn add_usage(into: &mut Usage, usage: &Usage) {
    into.input_uncached += usage.input_uncached;
    into.cache_read += usage.cache_read;
    into.cache_write_5m += usage.cache_write_5m;
    into.cache_write_1h += usage.cache_write_1h;
    into.output += usage.output;
    into.reasoning += usage.reasoning;
}

#[cfg(test)]
mod tests;
