//! A run's hops, sorted by position, with inserts out of order in
//! O(log n) amortised.
//!
//! Hops usually arrive in order and are appended. One that arrives before
//! the run's last hop (OTLP exporters send spans in any order) goes into a
//! side map, merged into the sorted vector once the map holds an eighth of
//! it: each merge copies the run once, so a hop costs a few copies at most
//! however the run arrives (inserting into the vector would shift every
//! later hop: quadratic for a run that arrives backwards).
//!
//! Readers see the sorted vector as a slice (`run.hops[0]`,
//! `run.hops.len()`). A ledger's own runs may have unmerged hops;
//! snapshots hold merged runs only ([`Hops::is_merged`]).

use std::collections::BTreeMap;

use super::HopAgg;

/// Runs up to this many hops insert in place (a short shift is cheaper
/// than a side map).
const SHIFT_IN_PLACE: usize = 64;

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Hops {
    sorted: Vec<HopAgg>,
    /// Hops that arrived out of order, not yet merged into `sorted`
    /// (never the same position in both). Boxed: 8 bytes in every run,
    /// where the map itself would take 24.
    #[allow(clippy::box_collection)]
    pending: Option<Box<BTreeMap<u32, HopAgg>>>,
}

impl std::ops::Deref for Hops {
    type Target = [HopAgg];
    /// Every hop, sorted, in a snapshot; in a ledger, the merged ones.
    fn deref(&self) -> &[HopAgg] {
        &self.sorted
    }
}

impl<'a> IntoIterator for &'a Hops {
    type Item = &'a HopAgg;
    type IntoIter = std::slice::Iter<'a, HopAgg>;
    fn into_iter(self) -> Self::IntoIter {
        self.sorted.iter()
    }
}

impl Hops {
    /// Whether every hop is in the slice (always so in a snapshot).
    #[must_use]
    pub fn is_merged(&self) -> bool {
        self.pending.is_none()
    }

    /// Hops, merged or not.
    pub(super) fn count(&self) -> usize {
        self.sorted.len() + self.pending.as_ref().map_or(0, |p| p.len())
    }

    /// The position after the last hop (1 for a run without hops).
    pub(super) fn next_position(&self) -> u32 {
        let last = self.sorted.last().map(|h| h.hop);
        let last_pending = self
            .pending
            .as_ref()
            .and_then(|p| p.last_key_value())
            .map(|(k, _)| *k);
        last.max(last_pending).map_or(1, |l| l.saturating_add(1))
    }

    pub(super) fn get_mut(&mut self, position: u32) -> Option<&mut HopAgg> {
        // Hops usually arrive in order: check the end before searching.
        match self.sorted.last() {
            Some(last) if last.hop == position => return self.sorted.last_mut(),
            Some(last) if last.hop < position => {}
            _ => {
                if let Ok(i) = self.sorted.binary_search_by_key(&position, |h| h.hop) {
                    return self.sorted.get_mut(i);
                }
            }
        }
        self.pending.as_mut()?.get_mut(&position)
    }

    pub(super) fn get(&self, position: u32) -> Option<&HopAgg> {
        match self.sorted.binary_search_by_key(&position, |h| h.hop) {
            Ok(i) => self.sorted.get(i),
            Err(_) => self.pending.as_ref()?.get(&position),
        }
    }

    /// Adds a hop at a position that has none.
    pub(super) fn insert(&mut self, hop: HopAgg) -> &mut HopAgg {
        let position = hop.hop;
        let index = match self.sorted.last() {
            Some(last) if last.hop > position => {
                let index = self.sorted.partition_point(|h| h.hop < position);
                if self.sorted.len() > SHIFT_IN_PLACE {
                    return self.insert_pending(hop);
                }
                index
            }
            _ => self.sorted.len(),
        };
        if index == self.sorted.len() && self.sorted.len() == self.sorted.capacity() {
            // Room for one hop first (most runs have one), then eight, then
            // half again: not double, as a run of thousands of calls would
            // hold as much unused room.
            let more = match self.sorted.len() {
                0 => 1,
                1 => 7,
                n => n / 2,
            };
            self.sorted.reserve_exact(more);
        }
        #[cfg(test)]
        super::count_work(self.sorted.len() - index);
        self.sorted.insert(index, hop);
        &mut self.sorted[index]
    }

    fn insert_pending(&mut self, hop: HopAgg) -> &mut HopAgg {
        let position = hop.hop;
        let held = self.pending.as_ref().map_or(0, |p| p.len());
        if held < self.sorted.len() / 8 {
            return self
                .pending
                .get_or_insert_with(Box::default)
                .entry(position)
                .or_insert(hop);
        }
        self.pending
            .get_or_insert_with(Box::default)
            .insert(position, hop);
        self.merge();
        let index = self.sorted.partition_point(|h| h.hop < position);
        &mut self.sorted[index]
    }

    /// Merges the side map into the sorted vector.
    pub(super) fn merge(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let old = std::mem::take(&mut self.sorted);
        #[cfg(test)]
        super::count_work(old.len() + pending.len());
        let mut merged = Vec::with_capacity(old.len() + pending.len());
        let mut late = pending.into_values().peekable();
        for hop in old {
            while let Some(early) = late.next_if(|p| p.hop < hop.hop) {
                merged.push(early);
            }
            merged.push(hop);
        }
        merged.extend(late);
        self.sorted = merged;
    }

    /// Removes the hop at `position` if `empty` says so.
    pub(super) fn remove_if(&mut self, position: u32, empty: impl Fn(&HopAgg) -> bool) {
        if let Ok(i) = self.sorted.binary_search_by_key(&position, |h| h.hop) {
            if empty(&self.sorted[i]) {
                self.sorted.remove(i);
            }
            return;
        }
        if let Some(pending) = &mut self.pending {
            if pending.get(&position).is_some_and(empty) {
                pending.remove(&position);
            }
            if pending.is_empty() {
                self.pending = None;
            }
        }
    }
}

impl From<Vec<HopAgg>> for Hops {
    /// Hops sorted by position, as given.
    fn from(mut sorted: Vec<HopAgg>) -> Self {
        sorted.sort_by_key(|h| h.hop);
        Hops {
            sorted,
            pending: None,
        }
    }
}
