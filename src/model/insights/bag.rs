//! A multiset kept in order, for percentiles that follow additions and
//! removals without sorting everything again.

/// Values kept sorted in chunks of about [`CHUNK`]: insert and remove cost
/// a binary search and a move within one chunk, the k-th value a walk over
/// the chunks' lengths.
#[derive(Debug, Clone)]
pub(crate) struct SortedBag<T> {
    /// Never an empty chunk; each chunk's values are at most the next's.
    chunks: Vec<Vec<T>>,
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

impl<T: Ord + Copy> SortedBag<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
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
            self.chunks.push(vec![value]);
            return;
        }
        let c = self.chunk_of(&value).min(self.chunks.len() - 1);
        let chunk = &mut self.chunks[c];
        let at = chunk.partition_point(|x| *x <= value);
        chunk.insert(at, value);
        if chunk.len() > 2 * CHUNK {
            let tail = chunk.split_off(CHUNK);
            self.chunks.insert(c + 1, tail);
        }
    }

    /// Removes one `value`; false when there is none.
    pub(crate) fn remove(&mut self, value: T) -> bool {
        let c = self.chunk_of(&value);
        let Some(chunk) = self.chunks.get_mut(c) else {
            return false;
        };
        let Ok(at) = chunk.binary_search(&value) else {
            return false;
        };
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
            self.chunks[c].extend(next);
        }
        true
    }

    /// The `k`-th smallest value (from 0).
    pub(crate) fn nth(&self, mut k: usize) -> Option<T> {
        for chunk in &self.chunks {
            if k < chunk.len() {
                return Some(chunk[k]);
            }
            k -= chunk.len();
        }
        None
    }

    /// Every value, smallest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.chunks.iter().flatten().copied()
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
