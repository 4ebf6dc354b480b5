//! Duplicate prompts: calls whose prompt was seen before, exactly or nearly,
//! and the spend a semantic cache would have saved (`docs/insights.md`
//! § Duplicate prompts has the definitions and a worked example).
//!
//! Pure and incremental: the ledger hands each counted call's prompt print
//! ([`PromptPrint`]) to [`DuplicateIndex::observe`] once, and the index
//! keeps running sums; a summary reads them (and the groups that have
//! repeats) without going over history again.
//!
//! - A call whose print is new is a **first sight** (a cache miss): its
//!   exact print is remembered, and its near print (SimHash) too.
//! - A call whose exact print was seen is an **exact duplicate**; else one
//!   whose near print is within `max_hamming` bits of a remembered first
//!   sight's is a **near duplicate**. Either is a cache hit: the whole
//!   call's cost is **avoidable** (a cache would have answered it). An
//!   unpriced hit is counted apart, never as $0.
//! - A hit belongs to the **group** of the first sight it matched (near
//!   duplicates are not remembered as first sights, as a cache answers
//!   them without storing them: groups do not drift).
//!
//! Memory is bounded ([`DuplicateRules::capacity`]): each table forgets its
//! least recently matched entries past it (down to 15/16 of it, so that
//! eviction is amortised O(1)); totals stay exact, a forgotten print is
//! simply seen again as new. Near prints are found by banding (pigeonhole:
//! `max_hamming + 1` bands, one of which two prints within `max_hamming`
//! bits share exactly), probing at most [`PROBES`] entries a band.
//!
//! Take-backs (`ingest::dedup` revising a call): a call that may be revised
//! (it carries a `CallId`) leaves a [`Mark`] keyed by its ledger receipt.
//! Taking it back undoes what it added; replacing it keeps its
//! classification and moves its avoidable spend to the new cost and agent.
//! A later report of a call is never observed again (it would match
//! itself). A first sight taken back stays remembered.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::types::money::Usd;
use crate::types::prompt::{PromptPrint, hamming};

/// Thresholds (`[duplicates]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateRules {
    /// Two near prints at most this many bits apart are near duplicates
    /// (0 to [`MAX_HAMMING`]).
    pub max_hamming: u32,
    /// Entries each table keeps (distinct exact prints, near prints, groups
    /// with repeats, revisable calls); at least 16.
    pub capacity: usize,
}

/// The largest `max_hamming` allowed: beyond it, bands of 3 bits match
/// nearly everything and the near duplicates mean little.
pub const MAX_HAMMING: u32 = 16;

impl Default for DuplicateRules {
    fn default() -> Self {
        DuplicateRules {
            max_hamming: 3,
            capacity: 100_000,
        }
    }
}

/// Entries of one band's bucket compared per lookup, newest first.
pub const PROBES: usize = 64;

/// Agents named per group.
pub const GROUP_AGENTS: usize = 4;

/// Groups listed in a summary.
pub const TOP_GROUPS: usize = 10;

/// What one counted call brings to the index.
#[derive(Debug, Clone)]
pub struct CallRef {
    pub run_id: Arc<str>,
    pub hop: u32,
    /// The agent's position in the ledger's agents table.
    pub agent: u32,
    /// The call's cost; `None` when unpriced.
    pub cost: Option<Usd>,
}

/// How a call's prompt was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sight {
    First,
    Exact,
    Near,
}

/// Where a group's first sight was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstSight {
    pub run_id: Arc<str>,
    pub hop: u32,
    pub agent: u32,
}

/// An exact print remembered: its group, when it was last matched, and,
/// for a first sight, where it was.
#[derive(Debug, Clone)]
struct Seen {
    group: u64,
    tick: u64,
    first: Option<FirstSight>,
}

/// A group that has repeats.
#[derive(Debug, Clone, Default)]
struct Group {
    first: Option<FirstSight>,
    exact: u64,
    near: u64,
    unpriced: u64,
    avoidable: Usd,
    agents: Vec<u32>,
    tick: u64,
}

/// What a revisable call added, to undo it (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    sight: Sight,
    group: u64,
    agent: u32,
    cost: Option<Usd>,
    tick: u64,
}

/// Per agent: repeats and their avoidable spend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct AgentSums {
    repeats: u64,
    unpriced: u64,
    avoidable: Usd,
}

/// Running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    prompts: u64,
    first: u64,
    exact: u64,
    near: u64,
    unpriced_exact: u64,
    unpriced_near: u64,
    avoidable_exact: Usd,
    avoidable_near: Usd,
    forgotten: u64,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct DuplicateIndex {
    rules: DuplicateRules,
    tick: u64,
    exact: HashMap<u64, Seen, FxBuildHasher>,
    near: NearIndex,
    groups: HashMap<u64, Group, FxBuildHasher>,
    marks: HashMap<u64, Mark, FxBuildHasher>,
    agents: HashMap<u32, AgentSums, FxBuildHasher>,
    totals: Totals,
}

impl DuplicateIndex {
    #[must_use]
    pub fn new(rules: DuplicateRules) -> Self {
        let rules = DuplicateRules {
            max_hamming: rules.max_hamming.min(MAX_HAMMING),
            capacity: rules.capacity.max(16),
        };
        DuplicateIndex {
            rules,
            tick: 0,
            exact: HashMap::default(),
            near: NearIndex::new(rules.max_hamming),
            groups: HashMap::default(),
            marks: HashMap::default(),
            agents: HashMap::default(),
            totals: Totals::default(),
        }
    }

    #[must_use]
    pub fn rules(&self) -> DuplicateRules {
        self.rules
    }

    /// Classifies one counted call's prompt and adds it to the sums.
    /// `revisable`: the call's receipt key when the call may be taken back
    /// or replaced later (a [`Mark`] is kept for it).
    pub fn observe(&mut self, print: PromptPrint, call: &CallRef, revisable: Option<u64>) -> Sight {
        self.tick += 1;
        let tick = self.tick;
        self.totals.prompts += 1;
        let exact = print.exact.get();
        let (sight, group) = if let Some(seen) = self.exact.get_mut(&exact) {
            seen.tick = tick;
            (Sight::Exact, seen.group)
        } else if let Some(group) = print
            .near
            .and_then(|near| self.near.find(near.get(), self.rules.max_hamming, tick))
        {
            // Remembered exactly from now on (its repeats are exact ones),
            // in the group it matched.
            let seen = Seen {
                group,
                tick,
                first: None,
            };
            self.exact.insert(exact, seen);
            (Sight::Near, group)
        } else {
            let seen = Seen {
                group: exact,
                tick,
                first: Some(FirstSight {
                    run_id: call.run_id.clone(),
                    hop: call.hop,
                    agent: call.agent,
                }),
            };
            self.exact.insert(exact, seen);
            if let Some(near) = print.near.map(NonZeroU64::get) {
                self.near.insert(near, exact, tick);
            }
            (Sight::First, exact)
        };
        if sight == Sight::First {
            self.totals.first += 1;
        } else {
            self.add_hit(sight, group, call.agent, call.cost, 1);
        }
        if let Some(key) = revisable {
            let mark = Mark {
                sight,
                group,
                agent: call.agent,
                cost: call.cost,
                tick,
            };
            self.marks.insert(key, mark);
        }
        self.bound();
        sight
    }

    /// Adds (`sign` 1) or takes back (`sign` −1) one hit.
    fn add_hit(&mut self, sight: Sight, group: u64, agent: u32, cost: Option<Usd>, sign: i8) {
        let tick = self.tick;
        let up = sign > 0;
        let step = |n: &mut u64| {
            *n = if up {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            }
        };
        let money = |sum: &mut Usd, c: Usd| *sum = if up { *sum + c } else { *sum - c };
        let totals = &mut self.totals;
        match sight {
            Sight::Exact => step(&mut totals.exact),
            Sight::Near => step(&mut totals.near),
            Sight::First => return,
        }
        match (cost, sight) {
            (Some(c), Sight::Exact) => money(&mut totals.avoidable_exact, c),
            (Some(c), _) => money(&mut totals.avoidable_near, c),
            (None, Sight::Exact) => step(&mut totals.unpriced_exact),
            (None, _) => step(&mut totals.unpriced_near),
        }
        let sums = self.agents.entry(agent).or_default();
        step(&mut sums.repeats);
        match cost {
            Some(c) => money(&mut sums.avoidable, c),
            None => step(&mut sums.unpriced),
        }
        if up && !self.groups.contains_key(&group) {
            // A group's first repeat: where its first sight was, while
            // that is remembered.
            let first = self.exact.get(&group).and_then(|seen| seen.first.clone());
            self.groups.insert(
                group,
                Group {
                    first,
                    ..Group::default()
                },
            );
        }
        // Absent when taking back from a group forgotten past the cap.
        let Some(entry) = self.groups.get_mut(&group) else {
            return;
        };
        entry.tick = tick;
        match sight {
            Sight::Exact => step(&mut entry.exact),
            _ => step(&mut entry.near),
        }
        match cost {
            Some(c) => money(&mut entry.avoidable, c),
            None => step(&mut entry.unpriced),
        }
        if up && !entry.agents.contains(&agent) && entry.agents.len() < GROUP_AGENTS {
            entry.agents.push(agent);
        }
    }

    /// Undoes what the call with receipt key `key` added (nothing when it
    /// left no mark). Its print stays remembered.
    pub fn retract(&mut self, key: u64) {
        let Some(mark) = self.marks.remove(&key) else {
            return;
        };
        self.totals.prompts = self.totals.prompts.saturating_sub(1);
        match mark.sight {
            Sight::First => self.totals.first = self.totals.first.saturating_sub(1),
            sight => self.add_hit(sight, mark.group, mark.agent, mark.cost, -1),
        }
    }

    /// The call with receipt key `old` was replaced by a report now keyed
    /// `new`, of cost `cost` and agent `agent`: same classification, new
    /// amounts. Nothing when the old report left no mark.
    pub fn replace(&mut self, old: u64, new: u64, agent: u32, cost: Option<Usd>) {
        let Some(mark) = self.marks.remove(&old) else {
            return;
        };
        if mark.sight != Sight::First {
            self.add_hit(mark.sight, mark.group, mark.agent, mark.cost, -1);
            self.add_hit(mark.sight, mark.group, agent, cost, 1);
        }
        self.marks.insert(
            new,
            Mark {
                agent,
                cost,
                ..mark
            },
        );
    }

    /// Keeps every table within the capacity.
    fn bound(&mut self) {
        let cap = self.rules.capacity;
        if self.exact.len() > cap {
            let gone = evict(&mut self.exact, cap, |s| s.tick);
            self.totals.forgotten += gone;
        }
        self.near.bound(cap);
        if self.groups.len() > cap {
            evict(&mut self.groups, cap, |g| g.tick);
        }
        if self.marks.len() > cap {
            evict(&mut self.marks, cap, |m| m.tick);
        }
    }

    /// Entries held: (exact prints, near prints, groups, marks).
    #[must_use]
    pub fn held(&self) -> (usize, usize, usize, usize) {
        (
            self.exact.len(),
            self.near.len(),
            self.groups.len(),
            self.marks.len(),
        )
    }

    /// What reports and views read: totals, the `top` groups with the most
    /// avoidable spend and every agent with repeats; `agent_name` names an
    /// agent's table position. O(groups with repeats + agents).
    #[must_use]
    pub fn summary(&self, top: usize, agent_name: impl Fn(u32) -> Arc<str>) -> DuplicateSummary {
        let t = &self.totals;
        let mut groups: Vec<(&u64, &Group)> = self
            .groups
            .iter()
            .filter(|(_, g)| g.exact + g.near > 0)
            .collect();
        let order = |a: &(&u64, &Group), b: &(&u64, &Group)| {
            (b.1.avoidable, b.1.exact + b.1.near)
                .cmp(&(a.1.avoidable, a.1.exact + a.1.near))
                .then(a.0.cmp(b.0))
        };
        if groups.len() > top && top > 0 {
            groups.select_nth_unstable_by(top - 1, order);
            groups.truncate(top);
        }
        groups.sort_unstable_by(order);
        let top_groups = groups
            .into_iter()
            .map(|(print, g)| DuplicateGroup {
                print: format!("{print:016x}"),
                repeats: g.exact + g.near,
                exact: g.exact,
                near: g.near,
                unpriced: g.unpriced,
                avoidable: g.avoidable,
                agents: g.agents.iter().map(|&a| agent_name(a)).collect(),
                first: g.first.as_ref().map(|f| (f.run_id.clone(), f.hop)),
            })
            .collect();
        let mut by_agent: Vec<DuplicateAgent> = self
            .agents
            .iter()
            .filter(|(_, s)| s.repeats > 0)
            .map(|(&a, s)| DuplicateAgent {
                agent: agent_name(a),
                repeats: s.repeats,
                unpriced: s.unpriced,
                avoidable: s.avoidable,
            })
            .collect();
        by_agent.sort_unstable_by(|a, b| {
            (b.avoidable, b.repeats)
                .cmp(&(a.avoidable, a.repeats))
                .then_with(|| a.agent.cmp(&b.agent))
        });
        DuplicateSummary {
            max_hamming: self.rules.max_hamming,
            capacity: self.rules.capacity,
            prompts: t.prompts,
            first: t.first,
            exact: t.exact,
            near: t.near,
            unpriced_exact: t.unpriced_exact,
            unpriced_near: t.unpriced_near,
            avoidable_exact: t.avoidable_exact,
            avoidable_near: t.avoidable_near,
            forgotten: t.forgotten,
            top_groups,
            by_agent,
        }
    }
}

/// Drops the entries of `map` with the lowest ticks, down to 15/16 of
/// `cap`; how many went.
fn evict<V>(map: &mut HashMap<u64, V, FxBuildHasher>, cap: usize, tick: impl Fn(&V) -> u64) -> u64 {
    let goal = cap - cap / 16;
    let excess = map.len().saturating_sub(goal);
    if excess == 0 {
        return 0;
    }
    let mut ticks: Vec<u64> = map.values().map(&tick).collect();
    ticks.select_nth_unstable(excess - 1);
    // Ticks are distinct within a table but for a group a take-back touched
    // in the same tick as another: then a few more than `excess` go.
    let cut = ticks[excess - 1];
    let before = map.len();
    map.retain(|_, v| tick(v) > cut);
    (before - map.len()) as u64
}

/// Totals and the top groups of a [`DuplicateIndex`] (docs/insights.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateSummary {
    pub max_hamming: u32,
    pub capacity: usize,
    /// Calls whose prompt had a fingerprint.
    pub prompts: u64,
    /// First sights (cache misses).
    pub first: u64,
    /// Exact and near duplicates (cache hits).
    pub exact: u64,
    pub near: u64,
    /// Exact and near hits on unpriced calls (no amount in `avoidable_*`).
    pub unpriced_exact: u64,
    pub unpriced_near: u64,
    pub avoidable_exact: Usd,
    pub avoidable_near: Usd,
    /// Exact prints forgotten past the capacity.
    pub forgotten: u64,
    /// Highest avoidable spend first, then most repeats, then print.
    pub top_groups: Vec<DuplicateGroup>,
    /// Highest avoidable spend first, then most repeats, then name.
    pub by_agent: Vec<DuplicateAgent>,
}

impl DuplicateSummary {
    /// Exact and near avoidable spend.
    #[must_use]
    pub fn avoidable(&self) -> Usd {
        self.avoidable_exact + self.avoidable_near
    }

    /// Hits on unpriced calls.
    #[must_use]
    pub fn unpriced(&self) -> u64 {
        self.unpriced_exact + self.unpriced_near
    }
}

/// One group: a first sight and its repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateGroup {
    /// The first sight's exact print, 16 hex digits.
    pub print: String,
    pub repeats: u64,
    pub exact: u64,
    pub near: u64,
    pub unpriced: u64,
    pub avoidable: Usd,
    /// Agents of the repeats (at most [`GROUP_AGENTS`]).
    pub agents: Vec<Arc<str>>,
    /// The first sight's (run, hop); `None` once forgotten.
    pub first: Option<(Arc<str>, u32)>,
}

/// One agent's repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateAgent {
    pub agent: Arc<str>,
    pub repeats: u64,
    pub unpriced: u64,
    pub avoidable: Usd,
}

/// Near prints of first sights, found by banding.
#[derive(Debug, Clone)]
struct NearIndex {
    /// (shift, mask) of each band: `max_hamming + 1` bands cover the 64
    /// bits, the first `64 % bands` one bit wider.
    bands: Vec<(u32, u64)>,
    /// Per band: band value → newest slot with it.
    heads: Vec<HashMap<u64, u32, FxBuildHasher>>,
    slots: Vec<Slot>,
    /// Per slot and band: (previous, next) slot in the band's bucket.
    links: Vec<[u32; 2]>,
    free: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    print: u64,
    group: u64,
    /// 0: free.
    tick: u64,
}

const NIL: u32 = u32::MAX;

impl NearIndex {
    fn new(max_hamming: u32) -> Self {
        let n = max_hamming + 1;
        let mut bands = Vec::with_capacity(n as usize);
        let mut shift = 0;
        for b in 0..n {
            let width = 64 / n + u32::from(b < 64 % n);
            let mask = if width == 64 {
                u64::MAX
            } else {
                (1_u64 << width) - 1
            };
            bands.push((shift, mask));
            shift += width;
        }
        NearIndex {
            heads: vec![HashMap::default(); bands.len()],
            bands,
            slots: Vec::new(),
            links: Vec::new(),
            free: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn band(&self, b: usize, print: u64) -> u64 {
        let (shift, mask) = self.bands[b];
        (print >> shift) & mask
    }

    /// The group of the closest print within `k` bits (the newest on a
    /// tie), marked as matched at `tick`.
    fn find(&mut self, print: u64, k: u32, tick: u64) -> Option<u64> {
        let n = self.bands.len();
        // (distance, tick, slot) of the best match so far.
        let mut best: Option<(u32, u64, u32)> = None;
        for b in 0..n {
            let Some(&head) = self.heads[b].get(&self.band(b, print)) else {
                continue;
            };
            // Buckets hold live slots only, newest first.
            let mut at = head;
            for _ in 0..PROBES {
                if at == NIL {
                    break;
                }
                let slot = &self.slots[at as usize];
                let d = hamming(slot.print, print);
                let better = best.is_none_or(|(bd, bt, _)| {
                    (d, std::cmp::Reverse(slot.tick)) < (bd, std::cmp::Reverse(bt))
                });
                if d <= k && better {
                    best = Some((d, slot.tick, at));
                }
                at = self.links[at as usize * n + b][1];
            }
        }
        let (_, _, slot) = best?;
        let slot = &mut self.slots[slot as usize];
        slot.tick = tick;
        Some(slot.group)
    }

    fn insert(&mut self, print: u64, group: u64, tick: u64) {
        let n = self.bands.len();
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let Ok(slot) = u32::try_from(self.slots.len()) else {
                    return;
                };
                if slot == NIL {
                    return;
                }
                self.slots.push(Slot {
                    print: 0,
                    group: 0,
                    tick: 0,
                });
                self.links.resize(self.links.len() + n, [NIL, NIL]);
                slot
            }
        };
        self.slots[slot as usize] = Slot { print, group, tick };
        for b in 0..n {
            let value = self.band(b, print);
            let next = self.heads[b].insert(value, slot).unwrap_or(NIL);
            self.links[slot as usize * n + b] = [NIL, next];
            if next != NIL {
                self.links[next as usize * n + b][0] = slot;
            }
        }
    }

    fn remove(&mut self, slot: u32) {
        let n = self.bands.len();
        let print = self.slots[slot as usize].print;
        for b in 0..n {
            let [prev, next] = self.links[slot as usize * n + b];
            if next != NIL {
                self.links[next as usize * n + b][0] = prev;
            }
            if prev == NIL {
                let value = self.band(b, print);
                if next == NIL {
                    self.heads[b].remove(&value);
                } else {
                    self.heads[b].insert(value, next);
                }
            } else {
                self.links[prev as usize * n + b][1] = next;
            }
            self.links[slot as usize * n + b] = [NIL, NIL];
        }
        self.slots[slot as usize].tick = 0;
        self.free.push(slot);
    }

    /// Past `cap` prints, forgets the least recently matched ones down to
    /// 15/16 of it.
    fn bound(&mut self, cap: usize) {
        if self.len() <= cap {
            return;
        }
        let excess = self.len() - (cap - cap / 16);
        let mut order: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.tick > 0)
            .filter_map(|(i, s)| Some((s.tick, u32::try_from(i).ok()?)))
            .collect();
        order.select_nth_unstable(excess - 1);
        for &(_, slot) in &order[..excess] {
            self.remove(slot);
        }
    }
}

#[cfg(test)]
mod tests;
