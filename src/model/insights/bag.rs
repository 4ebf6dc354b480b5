//! A multiset kept in order, for percentiles that follow additions and
//! removals without sorting everything again, and that a publication
//! hands on without copying.

use std::fmt;
use std::sync::Arc;

/// Values kept sorted in chunks of about [`CHUNK`]: insert and remove cost
/// a binary search and a move within one chunk, the k-th value a walk over
/// the chunks' lengths. Chunks are shared between clones and copied on
/// write: a clone costs one count per chunk, and a change after it copies
/// the one chunk it touches.
#[derive(Clone)]
pub struct SortedBag<T> {
    /// Never an empty chunk; each chunk's values are at most the next's.
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

const CHUNK: usize = 512;

impl<T> Default for SortedBag<T> {
    fn default() -> Self {
        SortedBag {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

/// The values in order (however they are chunked).
impl<T: fmt::Debug> fmt::Debug for SortedBag<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.chunks.iter().flat_map(|c| c.iter()))
            .finish()
    }
}

impl<T: Ord + Copy> FromIterator<T> for SortedBag<T> {
    fn from_iter<I: IntoIterator<Item = T>>(values: I) -> Self {
        let mut values: Vec<T> = values.into_iter().collect();
        values.sort_unstable();
        SortedBag {
            len: values.len(),
            chunks: values.chunks(CHUNK).map(|c| Arc::new(c.to_vec())).collect(),
        }
    }
}

impl<T: Ord + Copy> SortedBag<T> {
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first chunk whose last value is not below `value`.
    fn chunk_of(&self, value: &T) -> usize {
        self.chunks
            .partition_point(|c| c.last().is_some_and(|last| last < value))
    }

    pub(crate) fn insert(&mut self, value: T) {
        self.len += 1;
        if self.chunks.is_empty() {
            self.chunks.push(Arc::new(vec![value]));
            return;
        }
        let c = self.chunk_of(&value).min(self.chunks.len() - 1);
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        let at = chunk.partition_point(|x| *x <= value);
        chunk.insert(at, value);
        if chunk.len() > 2 * CHUNK {
            let tail = chunk.split_off(CHUNK);
            self.chunks.insert(c + 1, Arc::new(tail));
        }
    }

    /// Removes one `value`; false when there is none.
    pub(crate) fn remove(&mut self, value: T) -> bool {
        let c = self.chunk_of(&value);
        let Some(at) = self
            .chunks
            .get(c)
            .and_then(|chunk| chunk.binary_search(&value).ok())
        else {
            return false;
        };
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        chunk.remove(at);
        let left = chunk.len();
        self.len -= 1;
        if left == 0 {
            self.chunks.remove(c);
        } else if left < CHUNK / 4
            && c + 1 < self.chunks.len()
            && left + self.chunks[c + 1].len() <= 2 * CHUNK
        {
            // keeps the number of chunks in step with the number of values
            let next = self.chunks.remove(c + 1);
            Arc::make_mut(&mut self.chunks[c]).extend(next.iter().copied());
        }
        true
    }

    /// The `k`-th smallest value (from 0).
    #[must_use]
    pub fn nth(&self, mut k: usize) -> Option<T> {
        for chunk in &self.chunks {
            if k < chunk.len() {
                return Some(chunk[k]);
            }
            k -= chunk.len();
        }
        None
    }

    /// How many values come first: those for which `pred` holds, when it
    /// holds for the smallest values and not after (as
    /// [`slice::partition_point`]).
    pub fn partition_point(&self, mut pred: impl FnMut(&T) -> bool) -> usize {
        let c = self
            .chunks
            .partition_point(|chunk| chunk.last().is_some_and(&mut pred));
        let before: usize = self.chunks[..c].iter().map(|chunk| chunk.len()).sum();
        before
            + self
                .chunks
                .get(c)
                .map_or(0, |chunk| chunk.partition_point(pred))
    }

    /// Every value, smallest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = T> + '_ {
        self.chunks.iter().flat_map(|c| c.iter()).copied()
    }

    /// The values of ranks `from..to` (from 0, smallest first), by reference.
    pub fn range(&self, from: usize, to: usize) -> impl DoubleEndedIterator<Item = &T> + '_ {
        let to = to.min(self.len);
        let from = from.min(to);
        // (chunk, offset) of a rank: the end of the last chunk for `len`
        let locate = |mut rank: usize| {
            for (c, chunk) in self.chunks.iter().enumerate() {
                if rank < chunk.len() {
                    return (c, rank);
                }
                rank -= chunk.len();
            }
            let last = self.chunks.len().saturating_sub(1);
            (last, self.chunks.get(last).map_or(0, |c| c.len()))
        };
        let ((c0, o0), (c1, o1)) = if from == to {
            ((0, 0), (0, 0))
        } else {
            (locate(from), locate(to - 1))
        };
        let span = if from == to {
            &[][..]
        } else {
            &self.chunks[c0..=c1]
        };
        span.iter().enumerate().flat_map(move |(k, chunk)| {
            let lo = if k == 0 { o0 } else { 0 };
            let hi = if c0 + k == c1 { o1 + 1 } else { chunk.len() };
            chunk[lo..hi].iter()
        })
    }

    /// The `k`-th smallest value of the bag without `taken` (sorted, one
    /// value of the bag for each of its values): a binary search over the
    /// few ranks it can be at, no copy of the rest.
    #[must_use]
    pub fn nth_without(&self, k: usize, taken: &[T]) -> Option<T> {
        if k + taken.len() >= self.len {
            return None;
        }
        // values <= v left once `taken` is out; grows with v
        let left_up_to = |v: T| {
            (self.partition_point(|x| *x <= v)).saturating_sub(taken.partition_point(|x| *x <= v))
        };
        // the first rank j of the bag (k <= j <= k + taken) with k + 1
        // values left up to its value: that value is the k-th left
        let (mut lo, mut hi) = (k, k + taken.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if left_up_to(self.nth(mid)?) > k {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.nth(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::SortedBag;
    use proptest::prelude::*;

    proptest! {
        /// Against a sorted vector, through inserts and removals of
        /// values present and absent, with many repeats.
        #[test]
        fn keeps_the_multiset_in_order(ops in prop::collection::vec((any::<bool>(), 0u16..600), 0..6000)) {
            let mut bag = SortedBag::default();
            let mut model: Vec<u16> = Vec::new();
            for (insert, value) in ops {
                if insert {
                    bag.insert(value);
                    let at = model.partition_point(|x| *x <= value);
                    model.insert(at, value);
                } else {
                    let found = model.binary_search(&value).ok();
                    prop_assert_eq!(bag.remove(value), found.is_some());
                    if let Some(at) = found {
                        model.remove(at);
                    }
                }
            }
            prop_assert_eq!(bag.len(), model.len());
            prop_assert_eq!(bag.iter().collect::<Vec<_>>(), model.clone());
            for (k, v) in model.iter().enumerate() {
                prop_assert_eq!(bag.nth(k), Some(*v));
            }
            prop_assert_eq!(bag.nth(model.len()), None);
            prop_assert_eq!(format!("{bag:?}"), format!("{model:?}"));
        }
    }

    proptest! {
        /// Ranks, ranges and the k-th value without a few taken out,
        /// against a sorted vector; a clone does not see later changes.
        #[test]
        fn answers_like_a_sorted_vector(
            values in prop::collection::vec(0u16..300, 0..3000),
            taken_every in 1usize..40,
            cut in 0u16..320,
            from in 0usize..3100,
            to in 0usize..3100,
        ) {
            let bag: SortedBag<u16> = values.iter().copied().collect();
            let mut model = values.clone();
            model.sort_unstable();
            let before = bag.clone();
            let mut changed = bag.clone();
            changed.insert(7);
            changed.remove(model.first().copied().unwrap_or(0));
            prop_assert_eq!(format!("{before:?}"), format!("{model:?}"));
            prop_assert_eq!(bag.partition_point(|v| *v < cut), model.partition_point(|v| *v < cut));
            let (f, t) = (from.min(model.len()), to.min(model.len()));
            let want: Vec<u16> = if f < t { model[f..t].to_vec() } else { Vec::new() };
            prop_assert_eq!(bag.range(from, to).copied().collect::<Vec<_>>(), want.clone());
            prop_assert_eq!(
                bag.range(from, to).rev().copied().collect::<Vec<_>>(),
                want.into_iter().rev().collect::<Vec<_>>()
            );
            let taken: Vec<u16> = model.iter().copied().step_by(taken_every).collect();
            let mut left = model.clone();
            for t in &taken {
                let at = left.binary_search(t).unwrap();
                left.remove(at);
            }
            for k in 0..=left.len() {
                prop_assert_eq!(bag.nth_without(k, &taken), left.get(k).copied(), "k {}", k);
            }
        }
    }

    #[test]
    fn splits_and_merges_chunks() {
        let mut bag = SortedBag::default();
        for v in (0..5_000u32).rev() {
            bag.insert(v);
        }
        assert!(bag.chunks.len() > 4, "{} chunks", bag.chunks.len());
        assert!(bag.chunks.iter().all(|c| c.len() <= 1024));
        for v in 0..4_990u32 {
            assert!(bag.remove(v));
        }
        assert_eq!(
            bag.iter().collect::<Vec<_>>(),
            (4_990..5_000).collect::<Vec<_>>()
        );
        assert!(bag.chunks.len() <= 2, "{} chunks left", bag.chunks.len());
        assert!(!bag.remove(3));
    }
}
