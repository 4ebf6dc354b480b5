//! Disjoint token buckets (formats.md §0): `input_uncached + cache_read +
//! cache_write_5m + cache_write_1h` is all prompt input; `output` includes
//! `reasoning`, which is informational only.

/// Disjoint token buckets of one model call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens neither read from nor written to a cache.
    pub input_uncached: u64,
    pub cache_read: u64,
    /// Tokens written to a 5-minute cache.
    pub cache_write_5m: u64,
    /// Tokens written to a 1-hour cache (billed at about 2× input).
    pub cache_write_1h: u64,
    /// All output tokens, reasoning included.
    pub output: u64,
    /// Hidden reasoning tokens: a subset of `output`, never billed twice.
    pub reasoning: u64,
}

impl Usage {
    /// All prompt tokens, cached or not.
    #[must_use]
    pub fn input_total(&self) -> u64 {
        self.input_uncached
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write_5m)
            .saturating_add(self.cache_write_1h)
    }

    /// Cache writes of either lifetime.
    #[must_use]
    pub fn cache_write(&self) -> u64 {
        self.cache_write_5m.saturating_add(self.cache_write_1h)
    }

    /// Input plus output (reasoning is inside output).
    #[must_use]
    pub fn total(&self) -> u64 {
        self.input_total().saturating_add(self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_disjoint_and_reasoning_is_inside_output() {
        let usage = Usage {
            input_uncached: 100,
            cache_read: 50,
            cache_write_5m: 20,
            cache_write_1h: 10,
            output: 40,
            reasoning: 30,
        };
        assert_eq!(usage.input_total(), 180);
        assert_eq!(usage.cache_write(), 30);
        assert_eq!(usage.total(), 220);
    }
}
