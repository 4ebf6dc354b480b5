//! Disjoint token buckets (formats.md §0): `input_uncached + cache_read +
//! cache_write_5m + cache_write_1h` is all prompt input; `output` includes
//! `reasoning`, which is informational only.

/// No real model call has this many tokens (10¹⁰) of input or of output:
/// a record that says so is rejected as malformed (`docs/schema.md`), so
/// that sums of plausible calls never come near `u64::MAX`.
pub const MAX_CALL_TOKENS: u64 = 10_000_000_000;

/// The reason a count is rejected: `what` (a field name, or a bucket's
/// tokens) `n` is implausible.
#[must_use]
pub fn implausible_tokens(what: &str, n: u64) -> String {
    format!("{what} {n} is implausible: no call has 10^10 tokens or more")
}

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

    /// Two calls' usage bucket by bucket (calls at one position of a run),
    /// each saturating rather than wrapping.
    #[must_use]
    pub fn saturating_add(&self, other: &Usage) -> Usage {
        Usage {
            input_uncached: self.input_uncached.saturating_add(other.input_uncached),
            cache_read: self.cache_read.saturating_add(other.cache_read),
            cache_write_5m: self.cache_write_5m.saturating_add(other.cache_write_5m),
            cache_write_1h: self.cache_write_1h.saturating_add(other.cache_write_1h),
            output: self.output.saturating_add(other.output),
            reasoning: self.reasoning.saturating_add(other.reasoning),
        }
    }

    /// The usage, when no bucket, neither the input nor the output, and
    /// not their total reaches [`MAX_CALL_TOKENS`]; every decoder checks
    /// what it built, derived buckets included (an OpenAI `total_tokens`
    /// beyond input and output becomes output and reasoning).
    ///
    /// # Errors
    /// The first implausible count, named by its bucket.
    pub fn plausible(self) -> Result<Usage, String> {
        let counts = [
            ("uncached input tokens", self.input_uncached),
            ("cache read tokens", self.cache_read),
            ("cache write tokens", self.cache_write_5m),
            ("1-hour cache write tokens", self.cache_write_1h),
            ("input tokens", self.input_total()),
            ("output tokens", self.output),
            ("reasoning tokens", self.reasoning),
            ("total tokens", self.total()),
        ];
        match counts.iter().find(|(_, n)| *n >= MAX_CALL_TOKENS) {
            Some((what, n)) => Err(implausible_tokens(what, *n)),
            None => Ok(self),
        }
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
    fn usage_sums_saturate() {
        let half = Usage {
            input_uncached: 1 << 63,
            cache_read: 2,
            cache_write_5m: 3,
            cache_write_1h: 4,
            output: u64::MAX,
            reasoning: 6,
        };
        let sum = half.saturating_add(&half);
        assert_eq!(sum.input_uncached, u64::MAX);
        assert_eq!(sum.output, u64::MAX);
        assert_eq!(
            (
                sum.cache_read,
                sum.cache_write_5m,
                sum.cache_write_1h,
                sum.reasoning
            ),
            (4, 6, 8, 12)
        );
    }

    #[test]
    fn a_call_of_ten_billion_tokens_is_implausible() {
        let most = Usage {
            input_uncached: MAX_CALL_TOKENS / 2,
            cache_read: MAX_CALL_TOKENS / 2 - 2,
            output: 1,
            reasoning: 1,
            ..Usage::default()
        };
        assert_eq!(most.plausible(), Ok(most));
        // Input and output each plausible, together not (review finding 5).
        let both = Usage {
            output: MAX_CALL_TOKENS / 2,
            reasoning: MAX_CALL_TOKENS / 2,
            ..most
        };
        assert_eq!(
            both.plausible(),
            Err("total tokens 14999999998 is implausible: no call has 10^10 tokens or more".into())
        );
        let split = Usage {
            cache_read: MAX_CALL_TOKENS / 2,
            output: 0,
            reasoning: 0,
            ..most
        };
        assert_eq!(
            split.plausible(),
            Err("input tokens 10000000000 is implausible: no call has 10^10 tokens or more".into())
        );
        let huge = Usage {
            cache_write_1h: u64::MAX,
            ..Usage::default()
        };
        assert!(
            huge.plausible()
                .unwrap_err()
                .starts_with("1-hour cache write tokens 18446744073709551615")
        );
    }

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
