//! The advisor: what to change and what it saves, from telemetry alone —
//! route simple hops to small models, trim carried context, cache the
//! carried prefix, rein in reasoning on simple tasks — with the evidence
//! (runs and hops), the saving per run and per month, and how sure it is.
//!
//! Incremental: each run is analysed when it changes ([`Advisor::observe`])
//! and its share replaces the previous one in additive sums, so a
//! publication costs the changed runs and the size of the answer, never a
//! pass over history. Pure: no I/O, no clock. Rules in `docs/insights.md`.

pub mod compare;
pub mod forecast;
pub mod rules;
pub mod tally;
pub mod whatif;

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::budget::{self, LimitsByScope};
use super::duplicates::DuplicateSummary;
use super::insights::BleedRules;
use super::ledger::{HopAgg, Ledger, RunAgg, RunWatch};
use crate::pricing::PriceBook;
use crate::types::money::Usd;
pub use rules::{AdvisorRules, Confidence, RouteRule, RouteTarget};
pub use tally::{Tallies, Tally};
use whatif::{HopLevers, HopWhatIf, Pricer, Scan};

/// The kind of fix a recommendation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lever {
    /// Move matching hops to a cheaper model of the same provider.
    Route,
    /// Cap input per hop: stop re-sending the whole history.
    Trim,
    /// Cache the prefix hops re-send (none is cached today).
    Cache,
    /// Runs whose cache reads stop mid-loop.
    CacheBreak,
    /// Reasoning far beyond the visible output on simple tasks.
    Reasoning,
    /// Repeated prompts a semantic cache would answer (`model::duplicates`).
    SemanticCache,
}

impl Lever {
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Lever::Route => "route",
            Lever::Trim => "trim",
            Lever::Cache => "cache",
            Lever::CacheBreak => "cache_break",
            Lever::Reasoning => "reasoning",
            Lever::SemanticCache => "semantic_cache",
        }
    }
}

/// What a recommendation is about: a lever, an agent, and for routing the
/// rule and the two models.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct RecKey {
    lever: Lever,
    agent: Arc<str>,
    model: Arc<str>,
    target: Option<Arc<str>>,
    rule: Option<usize>,
}

/// One run's part of a recommendation.
#[derive(Debug, Clone)]
struct RunRec {
    key: RecKey,
    saving: Usd,
    tokens: u64,
    hops: Vec<u32>,
    /// The trim limit of the run.
    limit: Option<u64>,
}

/// A recommendation's sums over runs.
#[derive(Debug, Clone, Default)]
struct RecSum {
    saving: Usd,
    tokens: u64,
    hops: u64,
    runs: u64,
    /// Trim limits of the runs, counted (the suggestion is their median).
    limits: BTreeMap<u64, u64>,
    /// The runs, by their saving, with the hops concerned (the evidence is
    /// the largest few; only those few when runs are final:
    /// [`Advisor::observe_final`]). A tree, not a hash map: it holds every
    /// live run, and a hash map grows by moving all of them at once.
    evidence: BTreeMap<(Usd, Arc<str>), Vec<u32>>,
}

/// One run's share of every sum.
#[derive(Debug, Clone, Default)]
struct RunFacts {
    total: Tally,
    segment: Option<(Arc<str>, Tally)>,
    agents: Vec<(Arc<str>, Tally)>,
    models: Vec<(Arc<str>, Tally)>,
    recs: Vec<RunRec>,
    /// The hop at which the run's cache reads stopped, if they did.
    cache_broke_at: Option<u32>,
    /// Hops of a run that ended (`run_end`): the loop lengths forecasts use.
    ended_hops: Option<u32>,
}

/// One run's share as [`Advisor::facts_of`] finds it: names are the
/// positions of hops that carry them, resolved to names only where they
/// are kept ([`RunShare::to_facts`], [`Batch::add`]).
#[derive(Debug, Clone, Default)]
struct RunShare {
    total: Tally,
    agents: Vec<(usize, Tally)>,
    models: Vec<(usize, Tally)>,
    recs: Vec<ShareRec>,
    cache_broke_at: Option<u32>,
    ended_hops: Option<u32>,
}

/// One run's part of a recommendation: agent and model by a hop's
/// position, the routing target by its index in the [`Pricer`].
#[derive(Debug, Clone)]
struct ShareRec {
    lever: Lever,
    /// Its (agent, model) in [`Spare::groups`].
    group: usize,
    rule: Option<usize>,
    agent: usize,
    model: usize,
    target: Option<u32>,
    saving: Usd,
    tokens: u64,
    hops: Vec<u32>,
    limit: Option<u64>,
}

impl RunShare {
    /// With its names, to be kept (a live run can be taken back).
    fn to_facts(&self, run: &RunAgg, pricer: &Pricer) -> RunFacts {
        let named = |list: &[(usize, Tally)], name: fn(&HopAgg) -> &Arc<str>| {
            list.iter()
                .map(|(at, t)| (name(&run.hops[*at]).clone(), *t))
                .collect()
        };
        RunFacts {
            total: self.total,
            segment: (self.total.hops > 0)
                .then(|| run.segment.clone().map(|s| (s, self.total)))
                .flatten(),
            agents: named(&self.agents, agent_of),
            models: named(&self.models, model_of),
            recs: self
                .recs
                .iter()
                .map(|rec| RunRec {
                    key: rec.key(run, pricer),
                    saving: rec.saving,
                    tokens: rec.tokens,
                    hops: rec.hops.clone(),
                    limit: rec.limit,
                })
                .collect(),
            cache_broke_at: self.cache_broke_at,
            ended_hops: self.ended_hops,
        }
    }
}

impl ShareRec {
    fn key(&self, run: &RunAgg, pricer: &Pricer) -> RecKey {
        RecKey {
            lever: self.lever,
            agent: run.hops[self.agent].agent.clone(),
            model: run.hops[self.model].model.clone(),
            target: self.target.map(|m| pricer.model(m).name.clone()),
            rule: self.rule,
        }
    }
}

/// Buffers [`Advisor::facts_of`] reuses from run to run.
#[derive(Debug, Clone, Default)]
struct Spare {
    /// Emptied hop lists of recommendations.
    hops: Vec<Vec<u32>>,
    /// The run's hop identities met so far, and its (agent, model) pairs.
    places: Vec<IdentPlace>,
    groups: Vec<RecGroup>,
}

/// Where the hops of one identity (by its address) add up in the run
/// being read: their agent's and model's places in [`RunShare`]'s lists,
/// and their (agent, model) pair in [`Spare::groups`]. Found once per
/// identity, so a hop costs no name comparison.
#[derive(Debug, Clone, Copy)]
struct IdentPlace {
    ident: usize,
    agent: usize,
    model: usize,
    group: usize,
}

/// The run's recommendations of one (agent, model): for each lever but
/// routing, its index in [`RunShare::recs`] once it has one (routing is
/// also keyed by rule and target, and searched).
#[derive(Debug, Clone, Copy)]
struct RecGroup {
    agent: usize,
    model: usize,
    levers: [Option<usize>; 4],
}

/// The slot of `lever` in [`RecGroup::levers`] (`None`: routing, and the
/// levers no hop feeds).
fn lever_slot(lever: Lever) -> Option<usize> {
    match lever {
        Lever::Trim => Some(0),
        Lever::Cache => Some(1),
        Lever::CacheBreak => Some(2),
        Lever::Reasoning => Some(3),
        Lever::Route | Lever::SemanticCache => None,
    }
}

impl RecSum {
    /// Adds one run's part (not its evidence).
    fn add(&mut self, saving: Usd, tokens: u64, hops: &[u32], limit: Option<u64>) {
        self.saving += saving;
        self.tokens += tokens;
        self.hops += hops.len() as u64;
        self.runs += 1;
        if let Some(limit) = limit {
            *self.limits.entry(limit).or_default() += 1;
        }
    }

    /// Names a final run as evidence if it is among the largest few: a
    /// final run can never leave, so the largest few are all the evidence
    /// there will be (one below the smallest of a full list would go again
    /// at once, and costs no clone).
    fn offer_final(&mut self, run_id: &Arc<str>, saving: Usd, hops: &[u32]) {
        if self.evidence.len() >= EVIDENCE_RUNS
            && self
                .evidence
                .first_key_value()
                .is_some_and(|((least, id), _)| (saving, run_id) < (*least, id))
        {
            return;
        }
        self.evidence
            .insert((saving, run_id.clone()), hops.to_vec());
        self.keep_largest();
    }

    /// Adds the sums of other final runs.
    fn absorb(&mut self, other: RecSum) {
        self.saving += other.saving;
        self.tokens += other.tokens;
        self.hops += other.hops;
        self.runs += other.runs;
        for (limit, n) in other.limits {
            *self.limits.entry(limit).or_default() += n;
        }
        self.evidence.extend(other.evidence);
        // final runs: the largest few of both are the largest few of all
        self.keep_largest();
    }

    fn keep_largest(&mut self) {
        while self.evidence.len() > EVIDENCE_RUNS {
            self.evidence.pop_first();
        }
    }
}

/// A recommendation's key by the addresses of its names, each held by the
/// [`RecKey`] beside it in a [`Batch`] (so no address is reused meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct StagedKey {
    lever: Lever,
    rule: Option<usize>,
    agent: usize,
    model: usize,
    target: Option<usize>,
}

/// Sums of final runs keyed by the addresses of their names instead of
/// the names: hashing a word per name once per run, where the advisor's
/// sums compare names. Folded into those sums by name at the end
/// ([`Advisor::absorb`]); names that are equal but not shared meet there.
#[derive(Debug, Default)]
struct Batch {
    total: Tally,
    agents: HashMap<usize, (Arc<str>, Tally)>,
    models: HashMap<usize, (Arc<str>, Tally)>,
    segments: HashMap<usize, (Arc<str>, Tally)>,
    recs: HashMap<StagedKey, (RecKey, RecSum)>,
}

fn agent_of(hop: &HopAgg) -> &Arc<str> {
    &hop.agent
}

fn model_of(hop: &HopAgg) -> &Arc<str> {
    &hop.model
}

fn address(name: &Arc<str>) -> usize {
    Arc::as_ptr(name).cast::<u8>() as usize
}

impl Batch {
    fn add(&mut self, run: &RunAgg, share: &RunShare, pricer: &Pricer) {
        self.total.fold(&share.total, 1);
        let hops = &run.hops;
        for (map, list, name) in [
            (
                &mut self.agents,
                &share.agents,
                agent_of as fn(&HopAgg) -> &Arc<str>,
            ),
            (&mut self.models, &share.models, model_of),
        ] {
            for (at, tally) in list {
                let name = name(&hops[*at]);
                map.entry(address(name))
                    .and_modify(|(_, sum)| sum.fold(tally, 1))
                    .or_insert_with(|| (name.clone(), *tally));
            }
        }
        if let Some(segment) = &run.segment {
            self.segments
                .entry(address(segment))
                .and_modify(|(_, sum)| sum.fold(&share.total, 1))
                .or_insert_with(|| (segment.clone(), share.total));
        }
        for rec in &share.recs {
            let staged = StagedKey {
                lever: rec.lever,
                rule: rec.rule,
                agent: address(&hops[rec.agent].agent),
                model: address(&hops[rec.model].model),
                target: rec.target.map(|m| address(&pricer.model(m).name)),
            };
            let (_, sum) = self
                .recs
                .entry(staged)
                .or_insert_with(|| (rec.key(run, pricer), RecSum::default()));
            sum.add(rec.saving, rec.tokens, &rec.hops, rec.limit);
            sum.offer_final(&run.run_id, rec.saving, &rec.hops);
        }
    }
}

/// The incremental advisor (see the module documentation).
#[derive(Debug, Clone)]
pub struct Advisor {
    rules: AdvisorRules,
    bleed: BleedRules,
    pricer: Pricer,
    /// Buffers of the per-run analysis, reused: the hops under each lever,
    /// the run's share, spare hop lists.
    scan: Scan,
    share: RunShare,
    spare: Spare,
    /// Boxed: a share is hundreds of bytes, and growing the map moves
    /// every entry at once (a publication that would stall for ms).
    runs: HashMap<Arc<str>, Box<RunFacts>>,
    total: Tally,
    by_agent: Tallies,
    by_segment: Tallies,
    by_model: Tallies,
    recs: HashMap<RecKey, RecSum>,
    /// Runs with a cache break, by run id (the hop).
    breaks: BTreeMap<Arc<str>, u32>,
    /// The ledger's runs as last seen ([`Advisor::sync`]).
    watch: RunWatch,
    /// Hop counts of ended runs, counted.
    loop_lengths: BTreeMap<u64, u64>,
    /// The run limits forecasts are measured against, by scope
    /// ([`Advisor::set_run_limits`]).
    run_limits: LimitsByScope,
}

impl Advisor {
    #[must_use]
    pub fn new(rules: AdvisorRules, bleed: BleedRules, prices: &PriceBook) -> Advisor {
        Advisor::with_book(rules, bleed, Arc::new(prices.clone()))
    }

    /// [`Advisor::new`] with a book it shares instead of copying.
    #[must_use]
    pub fn with_book(rules: AdvisorRules, bleed: BleedRules, book: Arc<PriceBook>) -> Advisor {
        Advisor {
            pricer: Pricer::new(&rules, book),
            scan: Scan::default(),
            share: RunShare::default(),
            spare: Spare::default(),
            rules,
            bleed,
            runs: HashMap::default(),
            total: Tally::default(),
            by_agent: Tallies::default(),
            by_segment: Tallies::default(),
            by_model: Tallies::default(),
            recs: HashMap::default(),
            breaks: BTreeMap::new(),
            loop_lengths: BTreeMap::new(),
            watch: RunWatch::default(),
            run_limits: BTreeMap::new(),
        }
    }

    #[must_use]
    pub fn rules(&self) -> &AdvisorRules {
        &self.rules
    }

    /// The run as it is now replaces what was seen of it before (a run
    /// without hops takes its share back).
    pub fn observe(&mut self, run: &RunAgg) {
        if self.pricer.memo_full() {
            self.pricer.forget();
        }
        self.fill_facts(run);
        if let Some(old) = self.runs.remove(&run.run_id) {
            self.apply(&run.run_id, &old, -1);
        }
        if self.share.total.hops > 0 {
            let facts = self.share.to_facts(run, &self.pricer);
            self.apply(&run.run_id, &facts, 1);
            self.runs.insert(run.run_id.clone(), Box::new(facts));
        }
    }

    /// Runs that will not change (a report): their shares are added, and
    /// only what can still be named as evidence is kept of them — memory
    /// and time stay flat over a large report. Never mix with
    /// [`Advisor::observe`] for the same run.
    pub fn observe_final<'a>(&mut self, runs: impl IntoIterator<Item = &'a RunAgg>) {
        let mut batch = Batch::default();
        for run in runs {
            if self.pricer.memo_full() {
                // the batch holds the names it is keyed by: it can go on
                self.pricer.forget();
            }
            self.fill_facts(run);
            if self.share.total.hops > 0 {
                batch.add(run, &self.share, &self.pricer);
                let (ended, broke) = (self.share.ended_hops, self.share.cache_broke_at);
                self.count_run(&run.run_id, ended, broke, 1);
            }
        }
        self.absorb(batch);
    }

    /// Adds what `other` saw: afterwards `self` says what one advisor fed
    /// both advisors' runs would say, in any order and however the runs
    /// were split (sums are additive, evidence is ordered by saving and run
    /// id). For advisors fed with [`Advisor::observe_final`] only (a report
    /// analysed on several threads), with the same rules, over distinct runs.
    pub fn merge(&mut self, other: Advisor) {
        debug_assert!(self.runs.is_empty() && other.runs.is_empty());
        self.total.fold(&other.total, 1);
        for (mine, theirs) in [
            (&mut self.by_agent, other.by_agent),
            (&mut self.by_segment, other.by_segment),
            (&mut self.by_model, other.by_model),
        ] {
            for (name, t) in &theirs.0 {
                mine.fold(name, t, 1);
            }
        }
        for (key, theirs) in other.recs {
            self.recs.entry(key).or_default().absorb(theirs);
        }
        self.breaks.extend(other.breaks);
        for (n, count) in other.loop_lengths {
            *self.loop_lengths.entry(n).or_default() += count;
        }
    }

    /// Folds a batch of final runs into the sums, by name.
    fn absorb(&mut self, batch: Batch) {
        self.total.fold(&batch.total, 1);
        for (mine, theirs) in [
            (&mut self.by_agent, batch.agents),
            (&mut self.by_model, batch.models),
            (&mut self.by_segment, batch.segments),
        ] {
            for (_, (name, t)) in theirs {
                mine.fold(&name, &t, 1);
            }
        }
        for (_, (key, theirs)) in batch.recs {
            self.recs.entry(key).or_default().absorb(theirs);
        }
    }

    /// Takes in the runs of `ledger` that changed since the last call:
    /// one pointer comparison per run, an analysis per changed run. A run
    /// the ledger evicted is frozen ([`Advisor::freeze`]).
    pub fn sync(&mut self, ledger: &Ledger) {
        let mut watch = std::mem::take(&mut self.watch);
        watch.sync(ledger, |slot, before, now| {
            if let Some(old) = before
                && now.is_none_or(|new| new.run_id != old.run_id)
            {
                self.freeze(&old.run_id);
            }
            if now.is_some() {
                self.observe(&ledger.run_for_snapshot(slot));
            }
        });
        self.watch = watch;
    }

    /// The ledger let the run go (evicted past its cap): its share stays in
    /// every sum, but it can no longer change (nor be named as evidence).
    pub fn freeze(&mut self, run_id: &str) {
        if let Some((run_id, facts)) = self.runs.remove_entry(run_id) {
            for rec in &facts.recs {
                if let Some(sum) = self.recs.get_mut(&rec.key) {
                    sum.evidence.remove(&(rec.saving, run_id.clone()));
                }
            }
            self.breaks.remove(&run_id);
        }
    }

    /// Runs held (not frozen).
    #[must_use]
    pub fn runs_held(&self) -> usize {
        self.runs.len()
    }

    /// The median hop count of ended runs: how long loops run.
    #[must_use]
    pub fn expected_hops(&self) -> Option<u32> {
        median_of(&self.loop_lengths).and_then(|n| u32::try_from(n).ok())
    }

    /// The budgets whose run limits forecasts are measured against: a
    /// run's are those of the agent of its last hop, its segment and the
    /// global scope, the narrowest first ([`budget::effective`], as a
    /// runtime applies them).
    pub fn set_run_limits(&mut self, limits: LimitsByScope) {
        self.run_limits = limits;
    }

    /// Forecasts of the runs of `runs` still going (no `run_end`), the
    /// first [`FORECAST_RUNS`] of them, for loops of [`Advisor::expected_hops`],
    /// against their run limits ([`Advisor::set_run_limits`]).
    #[must_use]
    pub fn forecasts(&self, runs: &[Arc<RunAgg>]) -> Vec<RunForecast> {
        let Some(expected) = self.expected_hops() else {
            return Vec::new();
        };
        runs.iter()
            .filter(|r| r.ended.is_none())
            .filter_map(|r| {
                let book = self.pricer.book();
                let last = r.hops.last()?;
                let price = book.resolve(&last.model).map(|p| book.model(p));
                let limits =
                    budget::effective(&self.run_limits, Some(&last.agent), r.segment.as_deref());
                let (tokens, cost) = (limits.total_run_limit, limits.run_cost_limit());
                forecast::forecast(r, expected, tokens, cost, price).map(|f| RunForecast {
                    run_id: r.run_id.clone(),
                    forecast: f,
                })
            })
            .take(FORECAST_RUNS)
            .collect()
    }

    /// The run's hops under each lever (for the what-if overlay).
    #[must_use]
    pub fn what_if(&mut self, run: &RunAgg) -> Vec<HopWhatIf> {
        whatif::analyze(run, &self.rules, &self.bleed, &mut self.pricer)
    }

    /// `self.share` becomes `run`'s share of every sum.
    fn fill_facts(&mut self, run: &RunAgg) {
        let mut scan = std::mem::take(&mut self.scan);
        let mut facts = std::mem::take(&mut self.share);
        let mut spare = std::mem::take(&mut self.spare);
        whatif::scan(run, &self.rules, &self.bleed, &mut self.pricer, &mut scan);
        self.facts_of(run, &scan.hops, &mut facts, &mut spare);
        self.scan = scan;
        self.share = facts;
        self.spare = spare;
    }

    /// The run's share of every sum, from its hops under each lever, into
    /// `facts` (its buffers reused; `spare` keeps the hop lists' buffers).
    fn facts_of(
        &self,
        run: &RunAgg,
        levers: &[HopLevers],
        facts: &mut RunShare,
        spare: &mut Spare,
    ) {
        let pricer = &self.pricer;
        facts.total = Tally::default();
        facts.cache_broke_at = None;
        facts.ended_hops = None;
        // a run has few agents and models: a short list beats a map
        let agents = &mut facts.agents;
        let models = &mut facts.models;
        agents.clear();
        models.clear();
        for mut rec in facts.recs.drain(..) {
            rec.hops.clear();
            spare.hops.push(rec.hops);
        }
        let recs = &mut facts.recs;
        let Spare {
            hops: spare_hops,
            places,
            groups,
        } = spare;
        places.clear();
        groups.clear();
        let same_target = |a: Option<u32>, b: Option<u32>| match (a, b) {
            (Some(a), Some(b)) => a == b || pricer.model(a).name == pricer.model(b).name,
            (a, b) => a.is_none() && b.is_none(),
        };
        let hops = &run.hops;
        let mut cache_broke_at = None;
        let limit = {
            let first = run.hops.first();
            let per_call = first.map_or(0, |h| h.usage.input_total() / u64::from(h.calls.max(1)));
            self.rules.trim_limit(per_call)
        };
        for (at, (hop, what)) in run.hops.iter().zip(levers).enumerate() {
            let ident = Arc::as_ptr(hop.ident()).addr();
            let place = match places.iter().find(|p| p.ident == ident) {
                Some(place) => *place,
                None => {
                    let place_in =
                        |list: &mut Vec<(usize, Tally)>, name: fn(&HopAgg) -> &Arc<str>| {
                            let mine = name(hop);
                            list.iter()
                                .position(|(other, _)| Arc::ptr_eq(name(&hops[*other]), mine))
                                .or_else(|| {
                                    list.iter()
                                        .position(|(other, _)| name(&hops[*other]) == mine)
                                })
                                .unwrap_or_else(|| {
                                    list.push((at, Tally::default()));
                                    list.len() - 1
                                })
                        };
                    let agent = place_in(agents, agent_of);
                    let model = place_in(models, model_of);
                    let group = groups
                        .iter()
                        .position(|g| g.agent == agent && g.model == model)
                        .unwrap_or_else(|| {
                            groups.push(RecGroup {
                                agent,
                                model,
                                levers: [None; 4],
                            });
                            groups.len() - 1
                        });
                    let place = IdentPlace {
                        ident,
                        agent,
                        model,
                        group,
                    };
                    places.push(place);
                    place
                }
            };
            let mut t = Tally {
                hops: 1,
                input_tokens: hop.usage.input_total(),
                cache_read_tokens: hop.usage.cache_read,
                cache_write_tokens: hop.usage.cache_write(),
                output_tokens: hop.usage.output,
                reasoning_tokens: hop.usage.reasoning,
                carried_tokens: what.carried,
                ..Tally::default()
            };
            let mut add_rec = |lever: Lever,
                               target: Option<(usize, u32)>,
                               saving: Usd,
                               tokens: u64,
                               limit: Option<u64>| {
                // a hop may lose (a cache write premium): the run's net counts
                if saving == Usd::ZERO && tokens == 0 {
                    return;
                }
                let rule = target.map(|(rule, _)| rule);
                let target = target.map(|(_, model)| model);
                let group = &mut groups[place.group];
                let slot = lever_slot(lever);
                let found = match slot {
                    Some(slot) => group.levers[slot],
                    None => recs.iter().position(|r| {
                        r.lever == lever
                            && r.group == place.group
                            && r.rule == rule
                            && same_target(r.target, target)
                    }),
                };
                let entry = match found {
                    Some(i) => &mut recs[i],
                    None => {
                        recs.push(ShareRec {
                            lever,
                            group: place.group,
                            rule,
                            agent: agents[group.agent].0,
                            model: models[group.model].0,
                            target,
                            saving: Usd::ZERO,
                            tokens: 0,
                            hops: spare_hops.pop().unwrap_or_default(),
                            limit,
                        });
                        let last = recs.len() - 1;
                        if let Some(slot) = slot {
                            group.levers[slot] = Some(last);
                        }
                        &mut recs[last]
                    }
                };
                entry.saving += saving;
                entry.tokens += tokens;
                entry.hops.push(hop.hop);
            };
            match what.model {
                None => t.unpriced_hops = 1,
                Some(model) => {
                    let current = what.current;
                    let u = &hop.usage;
                    let r = pricer.model(model).rates();
                    t.cache_saved = Usd::for_tokens(u.cache_read, r.input)
                        .saturating_sub(Usd::for_tokens(u.cache_read, r.cache_read))
                        - Usd::for_tokens(
                            u.cache_write_5m,
                            r.cache_write_5m.saturating_sub(r.input),
                        )
                        - Usd::for_tokens(
                            u.cache_write_1h,
                            r.cache_write_1h.saturating_sub(r.input),
                        );
                    t.reasoning_cost = Usd::for_tokens(u.reasoning, r.output);
                    t.cost = current;
                    let input_cost = current.saturating_sub(Usd::for_tokens(u.output, r.output));
                    t.carried_cost = if what.carried == 0 {
                        Usd::ZERO
                    } else if what.carried == u.input_total() {
                        input_cost
                    } else {
                        scale(input_cost, what.carried, u.input_total())
                    };
                    t.routed = what.routed;
                    t.trimmed = what.trimmed;
                    t.cached = what.cached;
                    t.routed_trimmed = what.routed_trimmed;
                    t.combined = what.combined;
                    if let Some(route) = what.route {
                        add_rec(
                            Lever::Route,
                            Some(route),
                            current - what.routed,
                            u.total(),
                            None,
                        );
                    }
                    add_rec(
                        Lever::Trim,
                        None,
                        current - what.trimmed,
                        what.trimmed_tokens,
                        Some(limit),
                    );
                    let lever = if what.cache_broke {
                        Lever::CacheBreak
                    } else {
                        Lever::Cache
                    };
                    if what.cached != current {
                        add_rec(lever, None, current - what.cached, what.cache_tokens, None);
                    }
                    add_rec(
                        Lever::Reasoning,
                        None,
                        what.reasoning_excess_cost,
                        what.reasoning_excess,
                        None,
                    );
                    if what.cache_broke && what.cache_tokens > 0 && cache_broke_at.is_none() {
                        cache_broke_at = Some(hop.hop);
                    }
                }
            }
            agents[place.agent].1.fold(&t, 1);
            models[place.model].1.fold(&t, 1);
        }
        // the agents partition the hops: their sum is the run's
        for (_, t) in agents.iter() {
            facts.total.fold(t, 1);
        }
        if facts.total.hops > 0 {
            facts.total.runs = 1;
            for (_, t) in agents.iter_mut().chain(models.iter_mut()) {
                t.runs = 1;
            }
            if run.ended.is_some() {
                facts.ended_hops = u32::try_from(run.hops.len()).ok();
            }
        }
        facts.cache_broke_at = cache_broke_at;
        // what saves nothing over the whole run is no recommendation
        let mut i = 0;
        while i < recs.len() {
            if recs[i].saving > Usd::ZERO {
                i += 1;
            } else {
                let mut gone = recs.swap_remove(i);
                gone.hops.clear();
                spare_hops.push(gone.hops);
            }
        }
    }

    /// Adds (`sign` 1) or takes back (-1) a run's share, by name.
    fn apply(&mut self, run_id: &Arc<str>, facts: &RunFacts, sign: i8) {
        self.total.fold(&facts.total, sign);
        for (name, t) in &facts.agents {
            self.by_agent.fold(name, t, sign);
        }
        for (name, t) in &facts.models {
            self.by_model.fold(name, t, sign);
        }
        if let Some((name, t)) = &facts.segment {
            self.by_segment.fold(name, t, sign);
        }
        for rec in &facts.recs {
            if sign > 0 {
                // the key is cloned (its names counted again) once per key,
                // not once per run
                if !self.recs.contains_key(&rec.key) {
                    self.recs.insert(rec.key.clone(), RecSum::default());
                }
                let Some(sum) = self.recs.get_mut(&rec.key) else {
                    continue;
                };
                sum.add(rec.saving, rec.tokens, &rec.hops, rec.limit);
                sum.evidence
                    .insert((rec.saving, run_id.clone()), rec.hops.clone());
            } else if let Some(sum) = self.recs.get_mut(&rec.key) {
                sum.saving -= rec.saving;
                sum.tokens = sum.tokens.saturating_sub(rec.tokens);
                sum.hops = sum.hops.saturating_sub(rec.hops.len() as u64);
                sum.runs = sum.runs.saturating_sub(1);
                if let Some(limit) = rec.limit
                    && let Some(n) = sum.limits.get_mut(&limit)
                {
                    *n -= 1;
                    if *n == 0 {
                        sum.limits.remove(&limit);
                    }
                }
                sum.evidence.remove(&(rec.saving, run_id.clone()));
                if sum.runs == 0 {
                    self.recs.remove(&rec.key);
                }
            }
        }
        self.count_run(run_id, facts.ended_hops, facts.cache_broke_at, sign);
    }

    /// A run's loop length (when it ended) and cache break, added or taken back.
    fn count_run(
        &mut self,
        run_id: &Arc<str>,
        ended_hops: Option<u32>,
        cache_broke_at: Option<u32>,
        sign: i8,
    ) {
        if let Some(n) = ended_hops {
            let slot = self.loop_lengths.entry(u64::from(n)).or_default();
            if sign > 0 {
                *slot += 1;
            } else {
                *slot = slot.saturating_sub(1);
                if *slot == 0 {
                    self.loop_lengths.remove(&u64::from(n));
                }
            }
        }
        match (sign > 0, cache_broke_at) {
            (true, Some(hop)) => {
                self.breaks.insert(run_id.clone(), hop);
            }
            (false, Some(_)) => {
                self.breaks.remove(run_id);
            }
            _ => {}
        }
    }

    /// The advice at this point: sums, the ranked recommendations, and the
    /// saving of all of them together. `span` is the first and last event
    /// (epoch ms) the volume per month is projected from.
    #[must_use]
    pub fn advice(&self, span: Option<(i64, i64)>, runs_listed: &[Arc<RunAgg>]) -> Advice {
        let runs = self.total.runs;
        let span_ms = span.map(|(a, b)| (b - a).max(0));
        #[allow(clippy::cast_precision_loss)]
        let runs_per_month = span_ms
            .filter(|&ms| ms > 0 && runs > 0)
            .map(|ms| runs as f64 * f64::from(self.rules.month_days) * 86_400_000.0 / ms as f64);
        let short_span = span_ms.is_none_or(|ms| ms < 86_400_000);
        let per_run = |usd: Usd| per(usd, runs);
        let per_month = |usd: Usd| runs_per_month.map(|rpm| scale_f(per_run(usd), rpm));
        let min_saving = scale_f(self.total.cost, self.rules.min_saving_share);
        // in key order: ties in the ranking below do not depend on how the
        // map was filled (one advisor or several merged)
        let mut recs: Vec<(&RecKey, &RecSum)> = self.recs.iter().collect();
        recs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut recommendations: Vec<Recommendation> = recs
            .into_iter()
            .filter(|(_, sum)| sum.saving > Usd::ZERO && sum.saving >= min_saving)
            .map(|(key, sum)| {
                let rule = key.rule.and_then(|i| self.rules.routes.get(i));
                let base = match key.lever {
                    Lever::Route => rule.map_or(Confidence::Medium, |r| r.confidence),
                    Lever::Trim | Lever::Cache => Confidence::High,
                    Lever::CacheBreak | Lever::Reasoning | Lever::SemanticCache => {
                        Confidence::Medium
                    }
                };
                let thin = sum.runs < 5 || short_span;
                let confidence = if thin { lower(base) } else { base };
                let suggested_limit = median_of(&sum.limits);
                let evidence = sum
                    .evidence
                    .iter()
                    .rev()
                    .take(EVIDENCE_RUNS)
                    .map(|((saving, run_id), hops)| Evidence {
                        run_id: run_id.clone(),
                        hops: hops.clone(),
                        saving: *saving,
                    })
                    .collect();
                Recommendation {
                    rank: 0,
                    lever: key.lever,
                    title: title(key, rule, suggested_limit, self.breaks.len()),
                    agent: key.agent.clone(),
                    model: key.model.clone(),
                    target: key.target.clone(),
                    rule: rule.map(|r| r.name.clone()),
                    suggested_limit,
                    runs: sum.runs,
                    hops: sum.hops,
                    tokens: sum.tokens,
                    saving: sum.saving,
                    saving_per_run: per_run(sum.saving),
                    saving_per_month: per_month(sum.saving),
                    share: share(sum.saving, self.total.cost),
                    confidence,
                    evidence,
                }
            })
            .collect();
        recommendations.sort_by(|a, b| {
            b.saving
                .cmp(&a.saving)
                .then(a.lever.cmp(&b.lever))
                .then(a.agent.cmp(&b.agent))
                .then(a.model.cmp(&b.model))
                .then(a.target.cmp(&b.target))
        });
        for (i, r) in recommendations.iter_mut().enumerate() {
            r.rank = i + 1;
        }
        let together = self.total.cost.saturating_sub(self.total.combined);
        Advice {
            runs,
            span_ms,
            runs_per_month,
            total: self.total,
            by_agent: named(&self.by_agent),
            by_segment: named(&self.by_segment),
            by_model: named(&self.by_model),
            combined: Combined {
                cost_per_run: per_run(self.total.cost),
                combined_per_run: per_run(self.total.combined),
                saving_per_run: per_run(together),
                saving_per_month: per_month(together),
                unpriced_hops: self.total.unpriced_hops,
            },
            cache_breaks: self
                .breaks
                .iter()
                .take(EVIDENCE_RUNS)
                .map(|(run, hop)| CacheBreak {
                    run_id: run.clone(),
                    hop: *hop,
                })
                .collect(),
            cache_break_runs: self.breaks.len() as u64,
            recommendations,
            forecasts: self.forecasts(runs_listed),
        }
    }
}

impl Advice {
    /// Adds the duplicate prompts' lever: per agent, the spend of the calls
    /// a semantic cache would have answered (exact and near repeats;
    /// `docs/insights.md`, "Duplicate prompts"), and ranks the list again.
    /// Not in [`Advice::combined`]: a repeat may also be routed or trimmed.
    /// `spend` is what the runs cost as counted (reported costs included:
    /// the repeats' spend is counted that way).
    pub fn add_duplicates(
        &mut self,
        duplicates: &DuplicateSummary,
        rules: &AdvisorRules,
        spend: Usd,
    ) {
        let min_saving = scale_f(spend, rules.min_saving_share);
        let thin = self.runs < 5 || self.span_ms.is_none_or(|ms| ms < 86_400_000);
        let per_month = |usd: Usd| {
            self.runs_per_month
                .map(|rpm| scale_f(per(usd, self.runs), rpm))
        };
        for agent in &duplicates.by_agent {
            if agent.avoidable <= Usd::ZERO || agent.avoidable < min_saving {
                continue;
            }
            let evidence = duplicates
                .top_groups
                .iter()
                .filter(|g| g.agents.contains(&agent.agent))
                .filter_map(|g| {
                    g.first.as_ref().map(|(run_id, hop)| Evidence {
                        run_id: run_id.clone(),
                        hops: vec![*hop],
                        saving: g.avoidable,
                    })
                })
                .take(EVIDENCE_RUNS)
                .collect();
            let key = RecKey {
                lever: Lever::SemanticCache,
                agent: agent.agent.clone(),
                model: Arc::from(""),
                target: None,
                rule: None,
            };
            self.recommendations.push(Recommendation {
                rank: 0,
                lever: Lever::SemanticCache,
                title: title(&key, None, None, 0),
                agent: agent.agent.clone(),
                model: Arc::from(""),
                target: None,
                rule: None,
                suggested_limit: None,
                runs: 0,
                hops: agent.repeats,
                tokens: 0,
                saving: agent.avoidable,
                saving_per_run: per(agent.avoidable, self.runs),
                saving_per_month: per_month(agent.avoidable),
                share: share(agent.avoidable, spend),
                confidence: if thin {
                    Confidence::Low
                } else {
                    Confidence::Medium
                },
                evidence,
            });
        }
        self.recommendations.sort_by(|a, b| {
            b.saving
                .cmp(&a.saving)
                .then(a.lever.cmp(&b.lever))
                .then(a.agent.cmp(&b.agent))
                .then(a.model.cmp(&b.model))
                .then(a.target.cmp(&b.target))
        });
        for (i, r) in self.recommendations.iter_mut().enumerate() {
            r.rank = i + 1;
        }
    }
}

/// Live runs forecast in an [`Advice`].
pub const FORECAST_RUNS: usize = 50;

/// A live run's forecast, with its id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunForecast {
    pub run_id: Arc<str>,
    #[serde(flatten)]
    pub forecast: forecast::Forecast,
}

/// Runs named as evidence per recommendation.
pub const EVIDENCE_RUNS: usize = 5;

fn lower(c: Confidence) -> Confidence {
    match c {
        Confidence::High => Confidence::Medium,
        _ => Confidence::Low,
    }
}

fn median_of(counts: &BTreeMap<u64, u64>) -> Option<u64> {
    let n: u64 = counts.values().sum();
    let mut seen = 0;
    for (value, count) in counts {
        seen += count;
        if seen * 2 >= n {
            return Some(*value);
        }
    }
    None
}

fn named(tallies: &Tallies) -> Vec<Named> {
    let mut out: Vec<Named> = tallies
        .0
        .iter()
        .map(|(name, tally)| Named {
            name: name.clone(),
            tally: *tally,
        })
        .collect();
    out.sort_by(|a, b| b.tally.cost.cmp(&a.tally.cost).then(a.name.cmp(&b.name)));
    out
}

/// `usd` × `part` ÷ `whole`, exact (rounded toward zero), for a part of
/// a whole (`part` ≤ `whole`): where the product would leave i128, as
/// quotient and remainder, so that no amount is too large (a greater
/// `part` saturates).
pub(crate) fn scale(usd: Usd, part: u64, whole: u64) -> Usd {
    if whole == 0 {
        return Usd::ZERO;
    }
    let picos = usd.picos();
    // the common case (a hop's cost, a token count): plain 64-bit
    // arithmetic, where the 128-bit division is a library call
    if let Ok(small) = u64::try_from(picos)
        && let Some(product) = small.checked_mul(part)
    {
        return Usd::from_picos(i128::from(product / whole));
    }
    if let Some(product) = picos.checked_mul(i128::from(part)) {
        return Usd::from_picos(product / i128::from(whole));
    }
    let quotient = picos / i128::from(whole);
    let remainder = picos % i128::from(whole);
    // |remainder| < whole: |remainder| × part fits u128; the fraction is below part
    let fraction = remainder.unsigned_abs() * u128::from(part) / u128::from(whole);
    let fraction = i128::try_from(fraction).unwrap_or(i128::MAX);
    let fraction = if remainder < 0 { -fraction } else { fraction };
    let whole_part = quotient.saturating_mul(i128::from(part));
    Usd::from_picos(whole_part.saturating_add(fraction))
}

/// `usd` ÷ `n`, exact (rounded down); zero when `n` is 0.
#[must_use]
pub fn per(usd: Usd, n: u64) -> Usd {
    if n == 0 {
        Usd::ZERO
    } else {
        Usd::from_picos(usd.picos() / i128::from(n))
    }
}

/// `usd` × a ratio (a projection: rounded to the picodollar).
#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
fn scale_f(usd: Usd, factor: f64) -> Usd {
    Usd::from_picos((usd.picos() as f64 * factor).round() as i128)
}

/// `a` ÷ `b` as a ratio to print (0 when `b` is zero).
#[must_use]
pub fn share(a: Usd, b: Usd) -> f64 {
    if b == Usd::ZERO {
        0.0
    } else {
        a.to_f64() / b.to_f64()
    }
}

fn title(key: &RecKey, rule: Option<&RouteRule>, limit: Option<u64>, breaks: usize) -> String {
    match key.lever {
        Lever::Route => format!(
            "route {}'s {} hops to {} ({})",
            key.agent,
            key.model,
            key.target.as_deref().unwrap_or("?"),
            rule.map_or("rule", |r| r.name.as_str())
        ),
        Lever::Trim => format!(
            "trim {}'s carried context: per-hop limit {} input tokens",
            key.agent,
            limit.map_or_else(|| "?".to_owned(), |l| l.to_string())
        ),
        Lever::Cache => format!(
            "cache the prefix {} re-sends on {} (no cache reads today)",
            key.agent, key.model
        ),
        Lever::CacheBreak => format!(
            "fix the cache that breaks mid-run for {} on {} ({breaks} runs)",
            key.agent, key.model
        ),
        Lever::Reasoning => format!(
            "lower reasoning effort for {} on {}: simple tasks reason far beyond their output",
            key.agent, key.model
        ),
        Lever::SemanticCache => format!(
            "answer {}'s repeated prompts from a semantic cache",
            key.agent
        ),
    }
}

/// A tally with its name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Named {
    pub name: Arc<str>,
    #[serde(flatten)]
    pub tally: Tally,
}

/// A run named as evidence, with the hops concerned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub run_id: Arc<str>,
    pub hops: Vec<u32>,
    pub saving: Usd,
}

/// One ranked recommendation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub rank: usize,
    pub lever: Lever,
    pub title: String,
    pub agent: Arc<str>,
    pub model: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_limit: Option<u64>,
    /// Runs and hops it applies to, tokens it concerns.
    pub runs: u64,
    pub hops: u64,
    pub tokens: u64,
    /// Over the runs seen; per run of all runs; per month at the volume seen.
    pub saving: Usd,
    pub saving_per_run: Usd,
    pub saving_per_month: Option<Usd>,
    /// Of the spend (priced hops).
    pub share: f64,
    #[serde(serialize_with = "confidence_code")]
    pub confidence: Confidence,
    pub evidence: Vec<Evidence>,
}

fn confidence_code<S: serde::Serializer>(c: &Confidence, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.code())
}

/// Every lever at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Combined {
    /// Recomputed from the tokens, priced hops only.
    pub cost_per_run: Usd,
    /// With routing, trimming and caching all applied.
    pub combined_per_run: Usd,
    pub saving_per_run: Usd,
    pub saving_per_month: Option<Usd>,
    /// Hops of unpriced models, in neither figure.
    pub unpriced_hops: u64,
}

/// A run whose cache reads stopped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheBreak {
    pub run_id: Arc<str>,
    pub hop: u32,
}

/// Everything the advisor says at one point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    pub runs: u64,
    pub span_ms: Option<i64>,
    pub runs_per_month: Option<f64>,
    pub total: Tally,
    pub by_agent: Vec<Named>,
    pub by_segment: Vec<Named>,
    pub by_model: Vec<Named>,
    pub recommendations: Vec<Recommendation>,
    pub combined: Combined,
    pub cache_breaks: Vec<CacheBreak>,
    pub cache_break_runs: u64,
    /// Runs still going, projected to the end of their loop.
    pub forecasts: Vec<RunForecast>,
}

#[cfg(test)]
mod tests;
