//! Exact pricing of normalized usage. Pure: tables are parsed from text the
//! caller read; no I/O, no clock.
//!
//! Rules (see `docs/pricing.md`):
//! - cost = uncached·input + cache_read·read + write_5m·write5m + write_1h·write1h + output·output;
//!   reasoning tokens are inside output and never billed again.
//! - Long context is all-or-nothing: when a request's total input (cache
//!   included) exceeds the model's threshold, every token is billed at the
//!   premium rates.
//! - Model names match exact → without provider prefix → without date suffix;
//!   never a different model. An unmatched model is *unpriced*, never $0.

pub mod table;

use crate::types::money::Usd;
use crate::types::usage::Usage;

pub use table::{LongContext, ModelPrice, PriceTable, PriceTableError, Rates};

/// The embedded table, dated and sourced.
pub const EMBEDDED_TABLE: &str = include_str!("pricing/prices.toml");

/// Where a resolved price lives: `(table, model)` positions in a [`PriceBook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PriceRef {
    table: usize,
    model: usize,
}

/// The price of one usage record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub cost: Usd,
    /// The long-context premium applied.
    pub long_context: bool,
}

/// Price tables consulted in order: an override (`--prices`) first, then the
/// embedded table.
#[derive(Debug, Clone)]
pub struct PriceBook {
    tables: Vec<PriceTable>,
}

impl PriceBook {
    /// The embedded table alone.
    ///
    /// # Panics
    /// Never in a released build: a unit test parses the embedded table.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn embedded() -> Self {
        let table = PriceTable::from_toml(EMBEDDED_TABLE).expect("embedded price table is valid");
        PriceBook {
            tables: vec![table],
        }
    }

    /// A book with `first` consulted before the tables already here.
    #[must_use]
    pub fn with_override(mut self, first: PriceTable) -> Self {
        self.tables.insert(0, first);
        self
    }

    /// Parses an override file's text: LiteLLM JSON when it is a JSON
    /// object, tokwatch's TOML otherwise. `label` names the file in the
    /// version string, which also carries a content hash so two different
    /// files never share a version.
    ///
    /// # Errors
    /// The text is neither a valid tokwatch table nor a LiteLLM file.
    pub fn parse_override(text: &str, label: &str) -> Result<PriceTable, PriceTableError> {
        if text.trim_start().starts_with('{') {
            let version = format!("litellm:{label}#{:016x}", fnv1a(text.as_bytes()));
            PriceTable::from_litellm_json(text, version)
        } else {
            let mut table = PriceTable::from_toml(text)?;
            table.version = format!("{}:{label}#{:016x}", table.version, fnv1a(text.as_bytes()));
            Ok(table)
        }
    }

    /// Finds the price of `model` (see the module rules for the order).
    #[must_use]
    pub fn resolve(&self, model: &str) -> Option<PriceRef> {
        let candidates = name_candidates(model);
        self.tables.iter().enumerate().find_map(|(t, table)| {
            candidates
                .iter()
                .find_map(|name| table.get(name))
                .map(|m| PriceRef { table: t, model: m })
        })
    }

    #[must_use]
    pub fn model(&self, price: PriceRef) -> &ModelPrice {
        &self.tables[price.table].models[price.model]
    }

    /// The version string of the table a price came from.
    #[must_use]
    pub fn version_of(&self, price: PriceRef) -> &str {
        &self.tables[price.table].version
    }

    /// Versions of all tables, override first, joined with `+`.
    #[must_use]
    pub fn version(&self) -> String {
        self.tables
            .iter()
            .map(|t| t.version.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// Cost of `usage` at a resolved price.
    #[must_use]
    pub fn quote(&self, price: PriceRef, usage: &Usage) -> Quote {
        quote_model(self.model(price), usage)
    }

    /// Resolve and quote in one step; `None` means unpriced.
    #[must_use]
    pub fn price(&self, model: &str, usage: &Usage) -> Option<Quote> {
        self.resolve(model).map(|p| self.quote(p, usage))
    }
}

/// Cost of `usage` under one model's prices.
#[must_use]
pub fn quote_model(model: &ModelPrice, usage: &Usage) -> Quote {
    let (rates, long_context) = match model.long_context {
        Some(tier) if usage.input_total() > tier.threshold => (tier.rates, true),
        _ => (model.rates, false),
    };
    Quote {
        cost: rates.cost(usage),
        long_context,
    }
}

impl Rates {
    /// Cost of `usage`, every token at these rates (the tier already chosen).
    #[must_use]
    #[inline]
    pub fn cost(&self, usage: &Usage) -> Usd {
        let terms = [
            (usage.input_uncached, self.input),
            (usage.cache_read, self.cache_read),
            (usage.cache_write_5m, self.cache_write_5m),
            (usage.cache_write_1h, self.cache_write_1h),
            (usage.output, self.output),
        ];
        // Every count and rate below 2^61: each product is below 2^122 and
        // their sum below 2^125, so plain arithmetic is exact and cannot
        // saturate (a hot path: the advisor prices each hop several times).
        if terms.iter().all(|(n, rate)| (n | rate) >> 61 == 0) {
            let picos: u128 = terms
                .iter()
                .map(|&(n, rate)| u128::from(n) * u128::from(rate))
                .sum();
            return Usd::from_picos(i128::try_from(picos).unwrap_or(i128::MAX));
        }
        terms
            .iter()
            .map(|&(n, rate)| Usd::for_tokens(n, rate))
            .fold(Usd::ZERO, |sum, part| sum + part)
    }
}

/// Names to try, in order: as given, without a provider prefix, without a
/// date suffix, without both. All lowercase.
fn name_candidates(model: &str) -> Vec<String> {
    let lower = model.trim().to_ascii_lowercase();
    let mut out = vec![lower.clone()];
    let bare = strip_provider(&lower);
    let mut push = |name: &str| {
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    };
    push(bare);
    if let Some(undated) = strip_date(&lower) {
        push(undated);
    }
    if let Some(undated) = strip_date(bare) {
        push(undated);
    }
    out
}

/// `openai/gpt-4o` → `gpt-4o`; `vertex_ai/claude…` → `claude…`;
/// Bedrock's `us.anthropic.claude…` → `claude…`.
fn strip_provider(name: &str) -> &str {
    let after_slash = name.rsplit('/').next().unwrap_or(name);
    match after_slash.find("anthropic.") {
        Some(pos) if !after_slash[..pos].contains('-') => &after_slash[pos + "anthropic.".len()..],
        _ => after_slash,
    }
}

/// `claude-sonnet-4-20250514` → `claude-sonnet-4`; `gpt-4o-2024-08-06` →
/// `gpt-4o`; `claude-3-5-sonnet-v2@20241022` → `claude-3-5-sonnet-v2`.
fn strip_date(name: &str) -> Option<&str> {
    let is_digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((head, tail)) = name.rsplit_once(['-', '@'])
        && is_digits(tail, 8)
    {
        return Some(head);
    }
    // -YYYY-MM-DD
    let bytes = name.as_bytes();
    if bytes.len() > 11 && bytes[bytes.len() - 11] == b'-' {
        let tail = &name[name.len() - 10..];
        let parts: Vec<&str> = tail.split('-').collect();
        if parts.len() == 3
            && is_digits(parts[0], 4)
            && is_digits(parts[1], 2)
            && is_digits(parts[2], 2)
        {
            return Some(&name[..name.len() - 11]);
        }
    }
    None
}

/// FNV-1a: a stable content fingerprint for price-file versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
