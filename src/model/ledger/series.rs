//! Per-series sums for the Prometheus metrics (`docs/metrics.md`): one row
//! per (agent, segment, model) label combination, kept beside the ledger's
//! tables and changed by the same `apply`, `retract` and `replace`, so that
//! what a scrape reads adds up to the ledger's totals exactly.
//!
//! Label values are bounded: each label keeps at most its cap of distinct
//! values (sanitized, shortened), and the combinations are capped too; a
//! newcomer past a cap is counted under `(other)`. A value, once given its
//! own series, keeps it: the ledger's agents, segments and models are never
//! removed, and the slot of each ledger row is decided once. So a call is
//! counted, taken back and counted again always in the series its labels
//! name, and series never move.
//!
//! Pure like the rest of the model: no clock, no I/O.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::model::counters::Costing;
use crate::model::snapshot::OTHER;
use crate::sanitize::sanitize;
use crate::types::money::Usd;
use crate::types::usage::Usage;

/// Caps on what the metrics export (`[metrics]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesCaps {
    /// Distinct `agent` label values (past it: `(other)`).
    pub agents: usize,
    /// Distinct `segment` label values.
    pub segments: usize,
    /// Distinct `model` label values.
    pub models: usize,
    /// Distinct (agent, segment, model) combinations; past it a new one is
    /// counted in (`(other)`, `(other)`, `(other)`).
    pub series: usize,
    /// Longest label value, in bytes (longer ones are cut at a character
    /// boundary and end with `…`).
    pub label_bytes: usize,
}

impl SeriesCaps {
    pub const DEFAULT_AGENTS: usize = 200;
    pub const DEFAULT_SEGMENTS: usize = 50;
    pub const DEFAULT_MODELS: usize = 100;
    pub const DEFAULT_SERIES: usize = 2_000;
    pub const DEFAULT_LABEL_BYTES: usize = 128;
}

impl Default for SeriesCaps {
    fn default() -> Self {
        SeriesCaps {
            agents: Self::DEFAULT_AGENTS,
            segments: Self::DEFAULT_SEGMENTS,
            models: Self::DEFAULT_MODELS,
            series: Self::DEFAULT_SERIES,
            label_bytes: Self::DEFAULT_LABEL_BYTES,
        }
    }
}

/// A label value as exported: sanitized (control, escape and bidi
/// characters become `�`) and at most `max_bytes` long. (A name that is
/// literally `(other)` reaches it as [`crate::model::snapshot::OTHER_NAMED`]:
/// `(other)` is only ever the folded rows.)
#[must_use]
pub fn label_value(raw: &str, max_bytes: usize) -> Arc<str> {
    let clean = sanitize(raw);
    if clean.len() <= max_bytes {
        return Arc::from(&*clean);
    }
    let keep = max_bytes.saturating_sub('…'.len_utf8());
    let mut end = keep.min(clean.len());
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    Arc::from(format!("{}…", &clean[..end]))
}

/// The distinct values of one label, by slot.
#[derive(Debug, Clone, Default)]
struct LabelSet {
    values: Vec<Arc<str>>,
    index: FxHashMap<Arc<str>, u32>,
    /// Values other than `(other)` and the empty one.
    named: usize,
    cap: usize,
}

impl LabelSet {
    fn new(cap: usize) -> Self {
        LabelSet {
            cap,
            ..LabelSet::default()
        }
    }

    /// The slot of `value`, a new one while under the cap, else `(other)`'s.
    fn slot(&mut self, value: Arc<str>) -> u32 {
        if let Some(&slot) = self.index.get(&value) {
            return slot;
        }
        let special = value.is_empty() || &*value == OTHER;
        if !special && self.cap > 0 && self.named >= self.cap {
            return self.slot(Arc::from(OTHER));
        }
        self.named += usize::from(!special);
        let slot = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.values.push(value.clone());
        self.index.insert(value, slot);
        slot
    }

    fn other(&mut self) -> u32 {
        self.slot(Arc::from(OTHER))
    }
}

/// What one series holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesSums {
    /// Tokens per disjoint bucket; `reasoning` is a part of `output`.
    pub usage: Usage,
    /// Priced calls' cost (reported where a call had one, computed otherwise).
    pub cost: Usd,
    pub calls: u64,
    /// Calls without a price: in `calls` and the tokens, not in `cost`.
    pub unpriced_calls: u64,
    /// Calls with a price, now.
    pub priced_calls: u64,
}

impl SeriesSums {
    fn add(&mut self, usage: &Usage, costing: &Costing) {
        self.usage = self.usage.saturating_add(usage);
        self.calls = self.calls.saturating_add(1);
        match costing.effective {
            Some(cost) => {
                self.cost += cost;
                self.priced_calls = self.priced_calls.saturating_add(1);
            }
            None => self.unpriced_calls = self.unpriced_calls.saturating_add(1),
        }
    }

    fn remove(&mut self, usage: &Usage, costing: &Costing) {
        super::sub_usage(&mut self.usage, usage);
        self.calls = self.calls.saturating_sub(1);
        match costing.effective {
            Some(cost) => {
                self.cost -= cost;
                self.priced_calls = self.priced_calls.saturating_sub(1);
            }
            None => self.unpriced_calls = self.unpriced_calls.saturating_sub(1),
        }
    }

    /// Whether any exported figure of `self` is below `before`'s.
    fn below(&self, before: &SeriesSums) -> bool {
        let (u, b) = (&self.usage, &before.usage);
        u.input_uncached < b.input_uncached
            || u.cache_read < b.cache_read
            || u.cache_write_5m < b.cache_write_5m
            || u.cache_write_1h < b.cache_write_1h
            || u.output < b.output
            || u.reasoning < b.reasoning
            || self.cost < before.cost
            || self.calls < before.calls
            || self.unpriced_calls < before.unpriced_calls
    }
}

#[derive(Debug, Clone)]
struct Row {
    key: (u32, u32, u32),
    sums: SeriesSums,
    /// Has had a priced call: its cost is exported (from then on, also at
    /// zero). A series whose calls were all unpriced has no cost series:
    /// never `$0` for what has no price.
    priced: bool,
}

/// The per-series sums of a ledger.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    caps: SeriesCaps,
    agents: LabelSet,
    segments: LabelSet,
    models: LabelSet,
    /// Slot of each ledger agent, segment and model row (`u32::MAX`: not
    /// decided yet); ledger rows are never removed, so a slot never changes.
    agent_slot: Vec<u32>,
    segment_slot: Vec<u32>,
    model_slot: Vec<u32>,
    rows: Vec<Row>,
    index: FxHashMap<(u32, u32, u32), u32>,
    /// The row of the last call (consecutive calls often share theirs).
    last: Option<((u32, u32, u32), u32)>,
    /// Corrections after which a series was lower than before.
    decreases: u64,
    /// Calls taken back or replaced.
    corrections: u64,
}

const UNDECIDED: u32 = u32::MAX;

/// Where a call is counted: the ledger's row positions of its agent,
/// segment (`None`: none) and model, with their names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    pub agent: (u32, &'a str),
    pub segment: Option<(u32, &'a str)>,
    pub model: (u32, &'a str),
}

impl Series {
    pub(crate) fn new(caps: SeriesCaps) -> Self {
        Series {
            caps,
            agents: LabelSet::new(caps.agents),
            segments: LabelSet::new(caps.segments),
            models: LabelSet::new(caps.models),
            agent_slot: Vec::new(),
            segment_slot: Vec::new(),
            model_slot: Vec::new(),
            rows: Vec::new(),
            index: FxHashMap::default(),
            last: None,
            decreases: 0,
            corrections: 0,
        }
    }

    fn slot_of(
        slots: &mut Vec<u32>,
        set: &mut LabelSet,
        (ix, name): (u32, &str),
        max_bytes: usize,
    ) -> u32 {
        let i = ix as usize;
        if ix == u32::MAX {
            // A table past 2³² rows (never): counted in `(other)`.
            return set.other();
        }
        if slots.len() <= i {
            slots.resize(i + 1, UNDECIDED);
        }
        if slots[i] == UNDECIDED {
            slots[i] = set.slot(label_value(name, max_bytes));
        }
        slots[i]
    }

    /// The row of a place (created when new, under the caps).
    fn row_of(&mut self, place: &Place<'_>) -> usize {
        let bytes = self.caps.label_bytes;
        let agent = Self::slot_of(&mut self.agent_slot, &mut self.agents, place.agent, bytes);
        let segment = match place.segment {
            Some(segment) => {
                Self::slot_of(&mut self.segment_slot, &mut self.segments, segment, bytes)
            }
            None => self.segments.slot(Arc::from("")),
        };
        let model = Self::slot_of(&mut self.model_slot, &mut self.models, place.model, bytes);
        let key = (agent, segment, model);
        if let Some((k, row)) = self.last
            && k == key
        {
            return row as usize;
        }
        let row = match self.index.get(&key) {
            Some(&row) => row,
            None if self.caps.series == 0 || self.rows.len() < self.caps.series => self.insert(key),
            None => {
                let other = (
                    self.agents.other(),
                    self.segments.other(),
                    self.models.other(),
                );
                match self.index.get(&other) {
                    Some(&row) => row,
                    None => self.insert(other),
                }
            }
        };
        self.last = Some((key, row));
        row as usize
    }

    fn insert(&mut self, key: (u32, u32, u32)) -> u32 {
        let row = u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
        self.rows.push(Row {
            key,
            sums: SeriesSums::default(),
            priced: false,
        });
        self.index.insert(key, row);
        row
    }

    /// Counts a call; returns its row.
    pub(crate) fn add(&mut self, place: &Place<'_>, usage: &Usage, costing: &Costing) -> usize {
        let row = self.row_of(place);
        let r = &mut self.rows[row];
        r.sums.add(usage, costing);
        r.priced |= costing.effective.is_some();
        row
    }

    /// Takes a call back; returns its row and the row's sums before.
    pub(crate) fn remove(
        &mut self,
        place: &Place<'_>,
        usage: &Usage,
        costing: &Costing,
    ) -> (usize, SeriesSums) {
        let row = self.row_of(place);
        let before = self.rows[row].sums;
        self.rows[row].sums.remove(usage, costing);
        (row, before)
    }

    /// A call was taken back (`replaced`: and counted again, in `row`'s
    /// series); `before` is what its first row held before.
    pub(crate) fn corrected(&mut self, (first, before): (usize, SeriesSums)) {
        self.corrections = self.corrections.saturating_add(1);
        if self.rows[first].sums.below(&before) {
            self.decreases = self.decreases.saturating_add(1);
        }
    }

    /// What a scrape reads.
    pub(crate) fn view(&self) -> SeriesView {
        let label = |set: &LabelSet, slot: u32| set.values[slot as usize].clone();
        let mut unpriced: FxHashMap<u32, u64> = FxHashMap::default();
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let (a, s, m) = r.key;
                *unpriced.entry(m).or_default() += r.sums.unpriced_calls;
                SeriesRow {
                    agent: label(&self.agents, a),
                    segment: label(&self.segments, s),
                    model: label(&self.models, m),
                    sums: r.sums,
                    priced: r.priced,
                }
            })
            .collect();
        let mut unpriced: Vec<(Arc<str>, u64)> = unpriced
            .into_iter()
            .map(|(m, calls)| (label(&self.models, m), calls))
            .collect();
        unpriced.sort_unstable();
        SeriesView {
            rows,
            unpriced_calls: unpriced,
            corrections: self.corrections,
            decreases: self.decreases,
            caps: self.caps,
        }
    }
}

/// One exported series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRow {
    pub agent: Arc<str>,
    /// Empty when the calls had no segment.
    pub segment: Arc<str>,
    pub model: Arc<str>,
    pub sums: SeriesSums,
    /// Its cost is exported (it has had a priced call).
    pub priced: bool,
}

/// The ledger's per-series sums at one moment ([`super::Ledger::series_view`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesView {
    /// In the order series were first counted.
    pub rows: Vec<SeriesRow>,
    /// Unpriced calls per model label, by label.
    pub unpriced_calls: Vec<(Arc<str>, u64)>,
    /// Calls taken back or replaced (`ingest::dedup`).
    pub corrections: u64,
    /// Corrections after which some series was lower than before.
    pub decreases: u64,
    pub caps: SeriesCaps,
}

impl super::Ledger {
    /// The per-series sums now (`None` unless [`super::LedgerConfig::series`]
    /// asked for them).
    #[must_use]
    pub fn series_view(&self) -> Option<SeriesView> {
        self.series.as_ref().map(|series| series.view())
    }

    /// The cost of the calls timed in minutes `from..to` (minutes since the
    /// epoch; calls without a time are in none): what the burn rate reads.
    /// Only the minutes the per-minute series keeps count
    /// ([`super::LedgerConfig::minutes_kept`]).
    #[must_use]
    pub fn cost_in_minutes(&self, from: i64, to: i64) -> Usd {
        if from >= to {
            return Usd::ZERO;
        }
        let closed = self.minutes.range(from..to).map(|(_, c)| c.cost);
        let open = self
            .open_minutes
            .iter()
            .filter(|(m, _)| (from..to).contains(m))
            .map(|(_, c)| c.cost);
        closed.chain(open).fold(Usd::ZERO, |sum, cost| sum + cost)
    }

    /// Runs counted since the start: those held and those evicted (a run
    /// whose every call was taken back is not one).
    #[must_use]
    pub fn runs_counted(&self) -> u64 {
        (self.runs_listed() as u64).saturating_add(self.runs_evicted)
    }
}

#[cfg(test)]
mod tests;
