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
pub struct Hops(Repr);

/// Most runs have one hop: it is held in the run itself (no allocation of
/// its own), and becomes a vector when a second one arrives.
#[derive(Debug, Clone, Default)]
enum Repr {
    #[default]
    Empty,
    One(HopAgg),
    Many {
        sorted: Vec<HopAgg>,
        /// Hops that arrived out of order, not yet merged into `sorted`
        /// (never the same position in both).
        pending: Pending,
    },
}

/// Boxed: 8 bytes in every run, where the map itself would take 24.
#[allow(clippy::box_collection)]
type Pending = Option<Box<BTreeMap<u32, HopAgg>>>;

impl std::ops::Deref for Hops {
    type Target = [HopAgg];
    /// Every hop, sorted, in a snapshot; in a ledger, the merged ones.
    fn deref(&self) -> &[HopAgg] {
        match &self.0 {
            Repr::Empty => &[],
            Repr::One(hop) => std::slice::from_ref(hop),
            Repr::Many { sorted, .. } => sorted,
        }
    }
}

impl<'a> IntoIterator for &'a Hops {
    type Item = &'a HopAgg;
    type IntoIter = std::slice::Iter<'a, HopAgg>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Hops {
    /// Whether every hop is in the slice (always so in a snapshot).
    #[must_use]
    pub fn is_merged(&self) -> bool {
        self.pending().is_none()
    }

    fn pending(&self) -> Option<&BTreeMap<u32, HopAgg>> {
        match &self.0 {
            Repr::Many { pending, .. } => pending.as_deref(),
            _ => None,
        }
    }

    /// Hops, merged or not.
    pub(super) fn count(&self) -> usize {
        self.len() + self.pending().map_or(0, BTreeMap::len)
    }

    /// The position after the last hop (1 for a run without hops).
    pub(super) fn next_position(&self) -> u32 {
        let last = self.last().map(|h| h.hop);
        let last_pending = self
            .pending()
            .and_then(BTreeMap::last_key_value)
            .map(|(k, _)| *k);
        last.max(last_pending).map_or(1, |l| l.saturating_add(1))
    }

    pub(super) fn get_mut(&mut self, position: u32) -> Option<&mut HopAgg> {
        let (sorted, pending) = match &mut self.0 {
            Repr::Empty => return None,
            Repr::One(hop) => return (hop.hop == position).then_some(hop),
            Repr::Many { sorted, pending } => (sorted, pending),
        };
        // Hops usually arrive in order: check the end before searching.
        match sorted.last() {
            Some(last) if last.hop == position => return sorted.last_mut(),
            Some(last) if last.hop < position => {}
            _ => {
                if let Ok(i) = sorted.binary_search_by_key(&position, |h| h.hop) {
                    return sorted.get_mut(i);
                }
            }
        }
        pending.as_mut()?.get_mut(&position)
    }

    pub(super) fn get(&self, position: u32) -> Option<&HopAgg> {
        match self.binary_search_by_key(&position, |h| h.hop) {
            Ok(i) => Some(&self[i]),
            Err(_) => self.pending()?.get(&position),
        }
    }

    /// The vector form, the inline hop (if any) moved into it.
    fn many(&mut self) -> (&mut Vec<HopAgg>, &mut Pending) {
        if !matches!(self.0, Repr::Many { .. }) {
            let sorted = match std::mem::take(&mut self.0) {
                Repr::One(hop) => {
                    // Room for eight hops: a run with two usually has more.
                    let mut sorted = Vec::with_capacity(8);
                    sorted.push(hop);
                    sorted
                }
                _ => Vec::new(),
            };
            self.0 = Repr::Many {
                sorted,
                pending: None,
            };
        }
        match &mut self.0 {
            Repr::Many { sorted, pending } => (sorted, pending),
            _ => unreachable!("just made the vector form"),
        }
    }

    /// Adds a hop at a position that has none.
    pub(super) fn insert(&mut self, hop: HopAgg) -> &mut HopAgg {
        if matches!(self.0, Repr::Empty) {
            self.0 = Repr::One(hop);
            let Repr::One(hop) = &mut self.0 else {
                unreachable!("just set")
            };
            return hop;
        }
        let position = hop.hop;
        let (sorted, _) = self.many();
        let early = sorted.last().is_some_and(|last| last.hop > position);
        if early && sorted.len() > SHIFT_IN_PLACE {
            return self.insert_pending(hop);
        }
        let (sorted, _) = self.many();
        let index = if early {
            sorted.partition_point(|h| h.hop < position)
        } else {
            sorted.len()
        };
        if index == sorted.len() && sorted.len() == sorted.capacity() {
            // Half again, not double: a run of thousands of calls would
            // hold as much unused room.
            sorted.reserve_exact((sorted.len() / 2).max(1));
        }
        #[cfg(test)]
        super::count_work(sorted.len() - index);
        sorted.insert(index, hop);
        &mut sorted[index]
    }

    fn insert_pending(&mut self, hop: HopAgg) -> &mut HopAgg {
        let position = hop.hop;
        let (sorted, pending) = self.many();
        let held = pending.as_ref().map_or(0, |p| p.len());
        if held < sorted.len() / 8 {
            let (_, pending) = self.many();
            return pending
                .get_or_insert_with(Box::default)
                .entry(position)
                .or_insert(hop);
        }
        let (_, pending) = self.many();
        pending
            .get_or_insert_with(Box::default)
            .insert(position, hop);
        self.merge();
        let (sorted, _) = self.many();
        let index = sorted.partition_point(|h| h.hop < position);
        &mut sorted[index]
    }

    /// Merges the side map into the sorted vector.
    pub(super) fn merge(&mut self) {
        let Repr::Many { sorted, pending } = &mut self.0 else {
            return;
        };
        let Some(pending) = pending.take() else {
            return;
        };
        let old = std::mem::take(sorted);
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
        *sorted = merged;
    }

    /// Removes the hop at `position` if `empty` says so.
    pub(super) fn remove_if(&mut self, position: u32, empty: impl Fn(&HopAgg) -> bool) {
        let (sorted, pending) = match &mut self.0 {
            Repr::Empty => return,
            Repr::One(hop) => {
                if hop.hop == position && empty(hop) {
                    self.0 = Repr::Empty;
                }
                return;
            }
            Repr::Many { sorted, pending } => (sorted, pending),
        };
        if let Ok(i) = sorted.binary_search_by_key(&position, |h| h.hop) {
            if empty(&sorted[i]) {
                sorted.remove(i);
            }
            return;
        }
        if let Some(map) = pending {
            if map.get(&position).is_some_and(empty) {
                map.remove(&position);
            }
            if map.is_empty() {
                *pending = None;
            }
        }
    }
}

impl From<Vec<HopAgg>> for Hops {
    /// Hops sorted by position, as given.
    fn from(mut sorted: Vec<HopAgg>) -> Self {
        sorted.sort_by_key(|h| h.hop);
        match sorted.len() {
            0 => Hops(Repr::Empty),
            1 => Hops(sorted.pop().map_or(Repr::Empty, Repr::One)),
            _ => Hops(Repr::Many {
                sorted,
                pending: None,
            }),
        }
    }
}
