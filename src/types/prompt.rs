//! Prompt fingerprints: what tokwatch keeps of a prompt's text (never the
//! text itself), computed where the line is decoded.
//!
//! Definitions (`docs/insights.md` § Duplicate prompts, which these must
//! match):
//!
//! - **hash** `H(bytes) = mix(fnv1a64(bytes))`: FNV-1a 64 (offset basis
//!   `0xcbf29ce484222325`, prime `0x100000001b3`) followed by the SplitMix64
//!   finalizer, so that every output bit depends on every input byte (the
//!   SimHash needs evenly spread bits). Both are fixed by their
//!   specification: prints are stable across builds, platforms and Rust
//!   releases (unlike `DefaultHasher`), so saved reports compare.
//! - **normalized text**: every character lowercased (Unicode, Rust's
//!   `char::to_lowercase`), runs of whitespace (`char::is_whitespace`) made
//!   one space, leading and trailing whitespace removed. Punctuation and
//!   digits are kept.
//! - **words**: the maximal runs of alphanumeric characters
//!   (`char::is_alphanumeric`) of the normalized text: punctuation,
//!   symbols and whitespace separate words and are otherwise ignored.
//! - **exact print** of a text: `H(0x00 ‖ normalized text)`; of a
//!   `prompt_hash` value: `H(0x01 ‖ value)`, the value with surrounding
//!   ASCII whitespace removed (the two never collide by construction of
//!   their first byte, whatever the hash).
//! - **near print** (a 64-bit SimHash over the words): for each word `w`
//!   (repeats count again) and bit `i`, add +1 to counter `i` when bit `i`
//!   of `H(w)` is set, else −1; bit `i` of the print is set when counter
//!   `i` is above 0. A text without words has no near print.
//!
//! A print of 0 is stored as 1 (the field's niche keeps `Option` of a
//! print at 16 bytes); the chance that it matters is 2⁻⁶⁴.

use std::num::NonZeroU64;

/// The fingerprints of one call's prompt: 16 bytes, `Option` included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PromptPrint {
    /// Identity of the prompt: the normalized text's hash, or the
    /// `prompt_hash` value's when the record gives one.
    pub exact: NonZeroU64,
    /// SimHash of the text's words (`None`: no text, or no words in it).
    pub near: Option<NonZeroU64>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Domain bytes put before what is hashed for an exact print.
const TEXT_DOMAIN: u8 = 0;
const HASH_DOMAIN: u8 = 1;

/// FNV-1a 64, fed in pieces.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    const fn new() -> Self {
        Fnv(FNV_OFFSET)
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }

    #[inline]
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    #[inline]
    fn char(&mut self, c: char) {
        let mut buf = [0_u8; 4];
        self.bytes(c.encode_utf8(&mut buf).as_bytes());
    }

    /// The hash so far, finalized ([`mix`]).
    #[inline]
    fn finish(self) -> u64 {
        mix(self.0)
    }
}

/// SplitMix64's finalizer (a bijection: distinct inputs stay distinct).
#[inline]
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `H(bytes)` of the module documentation.
#[must_use]
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.bytes(bytes);
    h.finish()
}

fn non_zero(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN)
}

/// The normalized text (module documentation), as a string: for tests and
/// documentation; [`PromptPrint::of_text`] hashes it without building it.
#[must_use]
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The words of `text` (module documentation), for tests.
#[must_use]
pub fn words(text: &str) -> Vec<String> {
    normalize(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Adds ±1 per bit of a word's hash to the SimHash counters.
#[inline]
fn vote(counters: &mut [i32; 64], hash: u64) {
    for (i, counter) in counters.iter_mut().enumerate() {
        // +1 when the bit is set, −1 otherwise, without a branch.
        *counter += (((hash >> i) & 1) as i32) * 2 - 1;
    }
}

impl PromptPrint {
    /// The prints of a prompt's text: one pass over it, nothing allocated.
    #[must_use]
    pub fn of_text(text: &str) -> PromptPrint {
        let mut exact = Fnv::new();
        exact.byte(TEXT_DOMAIN);
        let mut counters = [0_i32; 64];
        let mut words = 0_u64;
        let mut word = Fnv::new();
        let mut in_word = false;
        // Whether something was written yet, and whether a space is due
        // before the next character (whitespace collapsed, ends trimmed).
        let mut started = false;
        let mut space = false;
        for c in text.chars() {
            if c.is_whitespace() {
                space = started;
                if in_word {
                    vote(&mut counters, word.finish());
                    words += 1;
                    word = Fnv::new();
                    in_word = false;
                }
                continue;
            }
            if space {
                exact.byte(b' ');
                space = false;
            }
            started = true;
            for lower in c.to_lowercase() {
                exact.char(lower);
                if lower.is_alphanumeric() {
                    word.char(lower);
                    in_word = true;
                } else if in_word {
                    vote(&mut counters, word.finish());
                    words += 1;
                    word = Fnv::new();
                    in_word = false;
                }
            }
        }
        if in_word {
            vote(&mut counters, word.finish());
            words += 1;
        }
        let near = (words > 0).then(|| {
            let bits = counters
                .iter()
                .enumerate()
                .fold(0_u64, |acc, (i, &n)| acc | (u64::from(n > 0) << i));
            non_zero(bits)
        });
        PromptPrint {
            exact: non_zero(exact.finish()),
            near,
        }
    }

    /// The print of a `prompt_hash` value (exact only); `None` for a value
    /// that is empty once trimmed.
    #[must_use]
    pub fn of_hash(value: &str) -> Option<PromptPrint> {
        let value = value.trim_ascii();
        if value.is_empty() {
            return None;
        }
        let mut h = Fnv::new();
        h.byte(HASH_DOMAIN);
        h.bytes(value.as_bytes());
        Some(PromptPrint {
            exact: non_zero(h.finish()),
            near: None,
        })
    }

    /// What a record gives: `prompt_hash` for the exact print when present
    /// (an agent's hash may cover more than the text: system prompt,
    /// attachments), the text for the near print (and for the exact one
    /// without a hash). `None` when there is neither.
    #[must_use]
    pub fn of_record(text: Option<&str>, hash: Option<&str>) -> Option<PromptPrint> {
        let from_hash = hash.and_then(PromptPrint::of_hash);
        let from_text = text.map(PromptPrint::of_text);
        match (from_hash, from_text) {
            (Some(h), Some(t)) => Some(PromptPrint {
                exact: h.exact,
                near: t.near,
            }),
            (h, t) => h.or(t),
        }
    }

    /// The exact print as 16 lowercase hex digits (how reports show it).
    #[must_use]
    pub fn hex(print: NonZeroU64) -> String {
        format!("{:016x}", print.get())
    }
}

/// Bits that differ between two near prints.
#[must_use]
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests;
