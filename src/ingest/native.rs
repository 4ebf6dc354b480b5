//! tokwatch's native JSONL telemetry schema (`docs/schema.md`).
//!
//! Usage follows the OpenTelemetry GenAI convention: `input_tokens` is all
//! prompt input and the cache fields are subsets of it; `output_tokens`
//! includes `reasoning_tokens`. Strings are borrowed from the line.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::model::event::{EventKind, TelemetryEvent, UNKNOWN, Usage};
use crate::model::money::Usd;

/// Why a line is not a valid record. Never fatal: counted and located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid UTF-8")]
    InvalidUtf8,
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Invalid(String),
}

/// Where a line came from, for synthetic run ids.
#[derive(Debug, Clone, Copy)]
pub struct LineOrigin<'s> {
    /// A short, stable name for the source (a file name, `stdin`, `socket`).
    pub source: &'s str,
}

#[derive(Deserialize, Default)]
struct RawRecord<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Text<'a>>,
    #[serde(default)]
    ts: Option<TsMillis>,
    #[serde(borrow, default)]
    run_id: Option<Text<'a>>,
    #[serde(default)]
    hop: Option<u32>,
    #[serde(borrow, default)]
    agent: Option<Text<'a>>,
    #[serde(borrow, default)]
    parent_agent: Option<Text<'a>>,
    #[serde(borrow, default)]
    user: Option<Text<'a>>,
    #[serde(borrow, default)]
    segment: Option<Text<'a>>,
    #[serde(borrow, default)]
    task: Option<Text<'a>>,
    #[serde(borrow, default)]
    tool: Option<Text<'a>>,
    #[serde(borrow, default)]
    provider: Option<Text<'a>>,
    #[serde(borrow, default)]
    model: Option<Text<'a>>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
    #[serde(default)]
    cache_write_1h_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
    #[serde(default)]
    cost_usd: Option<CostUsd>,
    #[serde(default)]
    latency_ms: Option<u64>,
    #[serde(borrow, default)]
    status: Option<Text<'a>>,
    #[serde(borrow, default)]
    prompt: Option<Text<'a>>,
    #[serde(borrow, default)]
    completion: Option<Text<'a>>,
    /// Counts were estimated from text upstream (e.g. by `--record`).
    #[serde(default)]
    estimated: Option<bool>,
    // budget_exceeded
    #[serde(borrow, default)]
    limit_kind: Option<Text<'a>>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    tokens: Option<u64>,
    #[serde(borrow, default)]
    action: Option<Text<'a>>,
}

/// A string borrowed from the line when it has no escapes. (serde's own
/// `Cow<str>` only borrows as a direct field, never inside `Option`.)
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

/// Parses one line (without its newline). Blank lines are the caller's job.
///
/// # Errors
/// Invalid JSON, wrong field types, subsets larger than their totals,
/// missing token counts with no text to estimate from, an unknown `type`.
pub fn parse_line<'a>(
    line: &'a [u8],
    origin: LineOrigin<'_>,
) -> Result<TelemetryEvent<'a>, ParseError> {
    // The fast path only borrows from the line (no `Cow::Owned`, no
    // `cost_usd`), so the record has nothing to drop; skipping its drop glue
    // saves checking each of its strings.
    let mut raw = std::mem::ManuallyDrop::new(RawRecord::default());
    if fast::record(line, &mut raw).is_some() {
        return normalize(&mut raw, origin);
    }
    parse_line_serde(line, origin)
}

/// [`parse_line`] through serde_json alone (the reference the fast path is
/// tested against).
fn parse_line_serde<'a>(
    line: &'a [u8],
    origin: LineOrigin<'_>,
) -> Result<TelemetryEvent<'a>, ParseError> {
    // serde_json validates UTF-8 inside strings as it goes (JSON outside
    // strings is ASCII), so the separate check runs only on the error path.
    let mut raw: RawRecord<'a> = serde_json::from_slice(line).map_err(|e| {
        if std::str::from_utf8(line).is_err() {
            ParseError::InvalidUtf8
        } else {
            ParseError::Json(json_reason(&e))
        }
    })?;
    normalize(&mut raw, origin)
}

/// [`parse_line`] for text already known to be UTF-8.
///
/// # Errors
/// As [`parse_line`].
pub fn parse_str<'a>(
    text: &'a str,
    origin: LineOrigin<'_>,
) -> Result<TelemetryEvent<'a>, ParseError> {
    // As in `parse_line`: nothing owned to drop on the fast path.
    let mut raw = std::mem::ManuallyDrop::new(RawRecord::default());
    if fast::record_str(text, &mut raw).is_some() {
        return normalize(&mut raw, origin);
    }
    let mut raw: RawRecord<'a> =
        serde_json::from_str(text).map_err(|e| ParseError::Json(json_reason(&e)))?;
    normalize(&mut raw, origin)
}

fn json_reason(error: &serde_json::Error) -> String {
    // serde_json appends "at line 1 column N"; the line is ours to report.
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(pos) => format!("{} (column {})", &message[..pos], error.column()),
        None => message,
    }
}

fn non_empty(text: Option<Text<'_>>) -> Option<Cow<'_, str>> {
    text.map(|t| t.0)
        .filter(|t| !t.bytes().all(|b| b.is_ascii_whitespace()))
}

/// The event `raw` describes; its strings are taken out. (By reference:
/// passed by value, the ~600-byte record was copied on every line.)
fn normalize<'a>(
    raw: &mut RawRecord<'a>,
    origin: LineOrigin<'_>,
) -> Result<TelemetryEvent<'a>, ParseError> {
    let invalid = |message: String| Err(ParseError::Invalid(message));
    let ts_ms = raw.ts.as_ref().map(|t| t.0);
    let run_id = match non_empty(raw.run_id.take()) {
        Some(id) => id,
        None => Cow::Owned(synthetic_run_id(origin.source, ts_ms)),
    };
    let agent = non_empty(raw.agent.take()).unwrap_or(Cow::Borrowed(UNKNOWN));
    let model = non_empty(raw.model.take()).unwrap_or(Cow::Borrowed(UNKNOWN));
    let kind = match raw.kind.as_ref().map(|t| t.0.as_ref()) {
        None | Some("hop") => EventKind::Hop,
        Some("budget_exceeded") => EventKind::BudgetExceeded {
            limit_kind: raw.limit_kind.take().map(|t| t.0.into_owned()),
            limit: raw.limit,
            observed: raw.tokens,
            action: raw.action.take().map(|t| t.0.into_owned()),
        },
        Some("run_end") => EventKind::RunEnd,
        Some(other) => {
            return invalid(format!(
                "unknown type '{}' (expected hop, budget_exceeded or run_end)",
                other.chars().take(40).collect::<String>()
            ));
        }
    };
    let mut estimated = raw.estimated.unwrap_or(false);
    let usage = if kind == EventKind::Hop {
        let input = match (raw.input_tokens, raw.prompt.as_ref().map(|t| t.0.as_ref())) {
            (Some(n), _) => n,
            (None, Some(text)) => {
                estimated = true;
                estimate_tokens(&model, text)
            }
            (None, None) => {
                return invalid(
                    "missing input_tokens (and no prompt text to estimate from)".into(),
                );
            }
        };
        let output = match (
            raw.output_tokens,
            raw.completion.as_ref().map(|t| t.0.as_ref()),
        ) {
            (Some(n), _) => n,
            (None, Some(text)) => {
                estimated = true;
                estimate_tokens(&model, text)
            }
            (None, None) => {
                return invalid(
                    "missing output_tokens (and no completion text to estimate from)".into(),
                );
            }
        };
        let cache_read = raw.cache_read_tokens.unwrap_or(0);
        let cache_write_5m = raw.cache_write_tokens.unwrap_or(0);
        let cache_write_1h = raw.cache_write_1h_tokens.unwrap_or(0);
        let cached = cache_read
            .saturating_add(cache_write_5m)
            .saturating_add(cache_write_1h);
        if cached > input {
            return invalid(format!(
                "cache_read_tokens ({cache_read}) + cache_write_tokens ({cache_write_5m}) + cache_write_1h_tokens ({cache_write_1h}) exceed input_tokens ({input}); input_tokens must include cached tokens"
            ));
        }
        let reasoning = raw.reasoning_tokens.unwrap_or(0);
        if reasoning > output {
            return invalid(format!(
                "reasoning_tokens ({reasoning}) exceed output_tokens ({output}); output_tokens must include reasoning"
            ));
        }
        Usage {
            input_uncached: input - cached,
            cache_read,
            cache_write_5m,
            cache_write_1h,
            output,
            reasoning,
        }
    } else {
        Usage::default()
    };
    Ok(TelemetryEvent {
        kind,
        ts_ms,
        run_id,
        hop: raw.hop,
        agent,
        parent_agent: non_empty(raw.parent_agent.take()),
        user: non_empty(raw.user.take()),
        segment: non_empty(raw.segment.take()),
        task: non_empty(raw.task.take()),
        tool: non_empty(raw.tool.take()),
        provider: non_empty(raw.provider.take()),
        model,
        usage,
        reported_cost: raw.cost_usd.take().map(|c| c.0),
        latency_ms: raw.latency_ms,
        status: non_empty(raw.status.take()),
        estimated,
    })
}

/// Records without a `run_id` from one source and one UTC day form one run.
fn synthetic_run_id(source: &str, ts_ms: Option<i64>) -> String {
    let day = ts_ms
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d").to_string());
    match day {
        Some(day) => format!("auto:{source}:{day}"),
        None => format!("auto:{source}"),
    }
}

/// Counts tokens of text with the model's tokenizer (o200k for models
/// tiktoken does not know). Only used when a record has no counts.
pub(crate) fn estimate_tokens(model: &str, text: &str) -> u64 {
    let bpe =
        tiktoken_rs::bpe_for_model(model).unwrap_or_else(|_| tiktoken_rs::o200k_base_singleton());
    u64::try_from(bpe.encode_ordinary(text).len()).unwrap_or(u64::MAX)
}

/// Epoch milliseconds from an RFC 3339 string or an integer.
struct TsMillis(i64);

/// Integers below this are almost surely epoch *seconds* (1973 in ms).
const MIN_EPOCH_MS: i64 = 100_000_000_000;

impl<'de> Deserialize<'de> for TsMillis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl Visitor<'_> for TsVisitor {
            type Value = TsMillis;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp or epoch milliseconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TsMillis, E> {
                if v < MIN_EPOCH_MS {
                    return Err(E::custom(format!(
                        "ts {v} looks like epoch seconds; expected epoch milliseconds"
                    )));
                }
                Ok(TsMillis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TsMillis, E> {
                let v = i64::try_from(v).map_err(|_| E::custom("ts is out of range"))?;
                self.visit_i64(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TsMillis, E> {
                if let Some(ms) = fast_rfc3339_millis(v) {
                    return Ok(TsMillis(ms));
                }
                chrono::DateTime::parse_from_rfc3339(v)
                    .map(|t| TsMillis(t.timestamp_millis()))
                    .map_err(|e| {
                        E::custom(format!(
                            "ts '{}' is not RFC 3339: {e}",
                            v.chars().take(40).collect::<String>()
                        ))
                    })
            }
        }
        deserializer.deserialize_any(TsVisitor)
    }
}

/// The common `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)` form without chrono's
/// general parser (a hot path: one per record). Anything else, including
/// leap seconds, returns `None` and goes to chrono.
fn fast_rfc3339_millis(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let (head, rest) = b.split_first_chunk::<19>()?;
    let next = *rest.first()?;
    if head[4] != b'-'
        || head[7] != b'-'
        || head[10] != b'T'
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    // Pairs of digits; anything but a digit wraps round to 10 or more.
    let mut bad = false;
    let mut two = |i: usize| {
        let (hi, lo) = (head[i].wrapping_sub(b'0'), head[i + 1].wrapping_sub(b'0'));
        bad |= (hi > 9) | (lo > 9);
        i64::from(hi) * 10 + i64::from(lo)
    };
    let year = two(0) * 100 + two(2);
    let (month, day) = (two(5), two(8));
    let (hour, minute, second) = (two(11), two(14), two(17));
    if bad {
        return None;
    }
    let days_in_month = match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut pos = 19;
    let mut millis = 0;
    if next == b'.' {
        let fraction = &rest[1..];
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        // Milliseconds truncate the fraction, as chrono's timestamp_millis does.
        for i in 0..3 {
            let digit = fraction.get(i).filter(|_| i < digits);
            millis = millis * 10 + digit.map_or(0, |c| i64::from(c - b'0'));
        }
        pos = 20 + digits;
    }
    let offset_minutes = match b.get(pos..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let value = |hi: u8, lo: u8| i64::from(hi - b'0') * 10 + i64::from(lo - b'0');
            let (h, m) = (value(*h1, *h2), value(*m1, *m2));
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'-' {
                -(h * 60 + m)
            } else {
                h * 60 + m
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// A non-negative USD amount, kept exact.
struct CostUsd(Usd);

impl<'de> Deserialize<'de> for CostUsd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CostVisitor;
        impl Visitor<'_> for CostVisitor {
            type Value = CostUsd;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number of US dollars")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CostUsd, E> {
                Ok(CostUsd(Usd::from_picos(
                    i128::from(v) * crate::model::money::PICOS_PER_USD,
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CostUsd, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("cost_usd must not be negative"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<CostUsd, E> {
                if !v.is_finite() || v < 0.0 {
                    return Err(E::custom("cost_usd must be a non-negative number"));
                }
                // The shortest decimal that round-trips is what the sender wrote;
                // anything finer than a picodollar is rounded.
                Usd::parse_decimal(&v.to_string())
                    .or_else(|_| Usd::parse_decimal(&format!("{v:.12}")))
                    .map(CostUsd)
                    .map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CostUsd, E> {
                let amount = Usd::parse_decimal(v).map_err(E::custom)?;
                if amount < Usd::ZERO {
                    return Err(E::custom("cost_usd must not be negative"));
                }
                Ok(CostUsd(amount))
            }
        }
        deserializer.deserialize_any(CostVisitor)
    }
}

/// A record with its `prompt` and `completion` text removed (tokwatch never
/// writes them to disk). Counts that were missing are replaced by their
/// estimates and the record is marked `"estimated": true`, so replaying it
/// gives the same totals. Lines without text, or that are not JSON objects,
/// are returned unchanged (a replay rejects them again the same way).
#[must_use]
pub fn without_text(line: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memmem::find(line, b"\"prompt\"").is_none()
        && memchr::memmem::find(line, b"\"completion\"").is_none()
    {
        return std::borrow::Cow::Borrowed(line);
    }
    let Ok(serde_json::Value::Object(mut record)) =
        serde_json::from_slice::<serde_json::Value>(line)
    else {
        return std::borrow::Cow::Borrowed(line);
    };
    let model = record
        .get("model")
        .and_then(|m| m.as_str())
        .unwrap_or(UNKNOWN)
        .to_owned();
    let mut estimated = false;
    for (text_field, count_field) in [("prompt", "input_tokens"), ("completion", "output_tokens")] {
        if let Some(text) = record.remove(text_field) {
            let missing = record
                .get(count_field)
                .is_none_or(serde_json::Value::is_null);
            if let (true, Some(text)) = (missing, text.as_str()) {
                record.insert(count_field.to_owned(), estimate_tokens(&model, text).into());
                estimated = true;
            }
        }
    }
    if estimated {
        record.insert("estimated".to_owned(), true.into());
    }
    std::borrow::Cow::Owned(serde_json::to_vec(&record).unwrap_or_default())
}

#[cfg(test)]
mod tests;

/// A schema-specific reader for the common shape of a record: one flat
/// object whose values are plain strings (no escapes), non-negative
/// integers, booleans or `null`. It builds the same [`RawRecord`] serde
/// would, skips the scalar values of keys the schema does not know (serde
/// ignores them), and gives up (`None`) on anything else (escapes, repeated
/// known keys, floats in known fields, nested values, `cost_usd`, invalid
/// UTF-8, bad timestamps …), which then goes through serde_json unchanged,
/// errors and all. About three times as fast as the generic path;
/// `fast_path_tests` checks it against serde (and the keys it knows against
/// serde's derive).
mod fast {
    use std::borrow::Cow;

    use super::{MIN_EPOCH_MS, RawRecord, Text, TsMillis, fast_rfc3339_millis};

    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;

    /// The high bit of each byte of `w` (little-endian) that is `"`, `\` or
    /// a control character (below 0x20), at least for the lowest such byte.
    ///
    /// SWAR: for `n <= 0x80`, `(w - n * 0x0101…01) & !w & 0x8080…80` sets the
    /// high bit of each byte below `n`: such a byte wraps round to
    /// `b + 0x100 - n >= 0x80`, bytes from `n` to 0x7f stay below 0x80, and
    /// `!w` masks out bytes that were 0x80 or more already (UTF-8). With
    /// `n = 1` it finds zero bytes, so XOR with a repeated `"` (or `\`) first
    /// finds those. A byte that wraps borrows from the one above it, which
    /// may then be flagged falsely, but nothing below the first true match
    /// ever is: the lowest flag (trailing zeros / 8) is exact.
    #[inline]
    fn specials(w: u64) -> u64 {
        const QUOTES: u64 = ONES * b'"' as u64;
        const BACKSLASHES: u64 = ONES * b'\\' as u64;
        const SPACES: u64 = ONES * 0x20;
        let quote = w ^ QUOTES;
        let backslash = w ^ BACKSLASHES;
        (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | w.wrapping_sub(SPACES) & !w)
            & HIGH
    }

    /// The 8 bytes at `at` as a little-endian word, when there are 8.
    #[inline]
    fn word(bytes: &[u8], at: usize) -> Option<u64> {
        Some(u64::from_le_bytes(*bytes.get(at..)?.first_chunk::<8>()?))
    }

    /// The length of the plain start of a string's body: the index of the
    /// first `"`, `\\` or control character (below 0x20) in `bytes`.
    ///
    /// 16 bytes at a time by [`has_special`] (the last 16 overlapping checked
    /// ones rather than going byte by byte), located by [`specials`].
    #[inline(always)]
    pub(super) fn plain_len(bytes: &[u8]) -> Option<usize> {
        if bytes.len() < 16 {
            return bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
        }
        let last = bytes.len() - 16;
        let mut at = 0;
        loop {
            // Past the end, the last 16 bytes (whose start is known plain).
            let from = at.min(last);
            let chunk = bytes[from..].first_chunk::<16>()?;
            if has_special(chunk) {
                let (lo, hi) = chunk.split_at(8);
                let lo = specials(u64::from_le_bytes(lo.try_into().ok()?));
                if lo != 0 {
                    return Some(from + (lo.trailing_zeros() / 8) as usize);
                }
                let hi = specials(u64::from_le_bytes(hi.try_into().ok()?));
                return Some(from + 8 + (hi.trailing_zeros() / 8) as usize);
            }
            if from == last {
                return None;
            }
            at += 16;
        }
    }

    /// Whether `chunk` has a `"`, `\\` or control character. Written as a
    /// branch-free fold of byte minimums (zero exactly for those bytes), which
    /// the compiler turns into a few SIMD instructions.
    #[inline]
    fn has_special(chunk: &[u8; 16]) -> bool {
        chunk.iter().fold(false, |any, &b| {
            any | ((b ^ b'"').min(b ^ b'\\').min(b.saturating_sub(0x1f)) == 0)
        })
    }

    struct Cursor<'a> {
        /// The line; `bytes` is the same, as bytes.
        text: &'a str,
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Cursor<'a> {
        #[inline]
        fn peek(&self) -> Option<u8> {
            self.bytes.get(self.at).copied()
        }

        #[inline]
        fn skip_ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.at += 1;
            }
        }

        /// Skips whitespace, `byte` and whitespace (compact JSON has none:
        /// one compare).
        #[inline]
        fn eat_padded(&mut self, byte: u8) -> Option<()> {
            if self.peek() == Some(byte) {
                self.at += 1;
            } else {
                self.skip_ws();
                (self.peek()? == byte).then_some(())?;
                self.at += 1;
            }
            if matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.skip_ws();
            }
            Some(())
        }

        /// The bounds of a string body without escapes or control
        /// characters; the cursor is on its opening quote (already checked)
        /// and ends past the closing one.
        #[inline(always)]
        fn span(&mut self) -> Option<(usize, usize)> {
            let start = self.at + 1;
            let end = start + plain_len(self.bytes.get(start..)?)?;
            (*self.bytes.get(end)? == b'"').then_some(())?;
            self.at = end + 1;
            Some((start, end))
        }

        /// A string (see [`Self::span`]).
        #[inline]
        fn string(&mut self) -> Option<&'a str> {
            let (start, end) = self.span()?;
            self.text.get(start..end)
        }

        /// `word` (`null`, `true` or `false`) followed by a delimiter.
        #[inline]
        fn literal(&mut self, word: &[u8]) -> Option<()> {
            let end = self.at + word.len();
            if self.bytes.get(self.at..end)? == word {
                self.at = end;
                self.delimited()
            } else {
                None
            }
        }

        /// The next byte ends a value.
        #[inline]
        fn delimited(&self) -> Option<()> {
            matches!(
                self.peek(),
                Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b'}')
            )
            .then_some(())
        }

        /// A JSON integer that fits `u64`: no sign, fraction, exponent or
        /// leading zero (those take the generic path). At most 19 digits
        /// (which cannot overflow, so no checked arithmetic per digit);
        /// longer ones go to serde too.
        #[inline(always)]
        fn integer(&mut self) -> Option<u64> {
            let rest = self.bytes.get(self.at..)?;
            let mut digits = 0;
            let mut value = 0_u64;
            while let Some(&b) = rest.get(digits) {
                let digit = b.wrapping_sub(b'0');
                if digit > 9 {
                    break;
                }
                // Wraps only past 19 digits, which are rejected below.
                value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
                digits += 1;
            }
            if digits == 0 || digits > 19 || (digits > 1 && rest[0] == b'0') {
                return None;
            }
            self.at += digits;
            self.delimited()?;
            Some(value)
        }

        /// Skips ASCII digits; whether there was at least one.
        #[inline]
        fn digits(&mut self) -> bool {
            let start = self.at;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.at += 1;
            }
            self.at > start
        }

        /// Skips a JSON number of any shape,
        /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, followed by a
        /// delimiter: exactly what serde_json accepts for a number it ignores.
        #[inline]
        fn skip_number(&mut self) -> Option<()> {
            if self.peek() == Some(b'-') {
                self.at += 1;
            }
            match self.peek()? {
                b'0' => self.at += 1,
                b'1'..=b'9' => {
                    self.digits();
                }
                _ => return None,
            }
            if self.peek() == Some(b'.') {
                self.at += 1;
                self.digits().then_some(())?;
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                self.at += 1;
                if matches!(self.peek(), Some(b'+' | b'-')) {
                    self.at += 1;
                }
                self.digits().then_some(())?;
            }
            self.delimited()
        }

        /// Skips the value of a key serde ignores, when it is a scalar that
        /// serde_json accepts: a string without escapes or control
        /// characters, a number, `true`, `false` or `null`. Objects, arrays
        /// and escaped strings are left to serde.
        #[inline]
        fn skip_scalar(&mut self) -> Option<()> {
            match self.peek()? {
                b'"' => self.span().map(drop),
                b't' => self.literal(b"true"),
                b'f' => self.literal(b"false"),
                b'n' => self.literal(b"null"),
                _ => self.skip_number(),
            }
        }

        /// A string or `null`, stored straight into its field (returned
        /// through memory instead, the value costs a store-forwarding stall).
        #[inline]
        fn text(&mut self, slot: &mut Option<Text<'a>>) -> Option<()> {
            *slot = match self.peek()? {
                b'"' => Some(Text(Cow::Borrowed(self.string()?))),
                _ => {
                    self.literal(b"null")?;
                    None
                }
            };
            Some(())
        }

        #[inline]
        fn opt_u64(&mut self, slot: &mut Option<u64>) -> Option<()> {
            *slot = match self.peek()? {
                b'n' => {
                    self.literal(b"null")?;
                    None
                }
                _ => Some(self.integer()?),
            };
            Some(())
        }

        #[inline]
        fn opt_bool(&mut self) -> Option<Option<bool>> {
            match self.peek()? {
                b'n' => self.literal(b"null").map(|()| None),
                b't' => self.literal(b"true").map(|()| Some(true)),
                _ => self.literal(b"false").map(|()| Some(false)),
            }
        }

        #[inline]
        fn opt_ts(&mut self) -> Option<Option<TsMillis>> {
            match self.peek()? {
                b'n' => self.literal(b"null").map(|()| None),
                b'"' => {
                    let text = self.string()?;
                    let ms = fast_rfc3339_millis(text).or_else(|| {
                        chrono::DateTime::parse_from_rfc3339(text)
                            .ok()
                            .map(|t| t.timestamp_millis())
                    })?;
                    Some(Some(TsMillis(ms)))
                }
                _ => {
                    let ms = i64::try_from(self.integer()?).ok()?;
                    (ms >= MIN_EPOCH_MS).then_some(Some(TsMillis(ms)))
                }
            }
        }

        /// A key (the cursor on its opening quote) and the field it names,
        /// as [`field`] says; the cursor ends past the closing quote. Known
        /// keys are matched as bytes in place, without scanning for their end
        /// first: short ones by the word they fill ([`short_field`]), long
        /// ones by their first word and then the rest ([`long_field_at`]).
        /// Anything else is scanned and looked up.
        #[inline]
        fn key(&mut self) -> Option<u32> {
            let start = self.at + 1;
            if let Some(w) = word(self.bytes, start) {
                let flags = specials(w);
                if flags != 0 {
                    let len = (flags.trailing_zeros() / 8) as usize;
                    (self.bytes[start + len] == b'"').then_some(())?;
                    self.at = start + len + 1;
                    return Some(short_field(short_key(w, len)));
                }
                if let Some((end, f)) = long_field_at(self.bytes, start, w) {
                    self.at = end + 1;
                    return f;
                }
            }
            let (start, end) = self.span()?;
            field_bytes(&self.bytes[start..end])
        }
    }

    /// What [`field`] returns for a key [`RawRecord`] does not have: serde
    /// ignores its value, and so may the fast path.
    pub(super) const IGNORED: u32 = u32::MAX;

    /// A key of at most 7 bytes as one number: its bytes (little-endian,
    /// from `w`'s low bytes) and its length in the top byte.
    #[inline]
    const fn short_key(w: u64, len: usize) -> u64 {
        let mask = (1_u64 << (8 * len)) - 1;
        (w & mask) | ((len as u64) << 56)
    }

    /// [`short_key`] of a key given as bytes.
    const fn short_key_of(key: &[u8]) -> u64 {
        let mut w = 0_u64;
        let mut i = 0;
        while i < key.len() {
            w |= (key[i] as u64) << (8 * i);
            i += 1;
        }
        short_key(w, key.len())
    }

    /// The field a key of at most 7 bytes names ([`short_key`]).
    #[inline]
    fn short_field(key: u64) -> u32 {
        const TYPE: u64 = short_key_of(b"type");
        const TS: u64 = short_key_of(b"ts");
        const RUN_ID: u64 = short_key_of(b"run_id");
        const HOP: u64 = short_key_of(b"hop");
        const AGENT: u64 = short_key_of(b"agent");
        const USER: u64 = short_key_of(b"user");
        const SEGMENT: u64 = short_key_of(b"segment");
        const TASK: u64 = short_key_of(b"task");
        const TOOL: u64 = short_key_of(b"tool");
        const MODEL: u64 = short_key_of(b"model");
        const STATUS: u64 = short_key_of(b"status");
        const PROMPT: u64 = short_key_of(b"prompt");
        const LIMIT: u64 = short_key_of(b"limit");
        const TOKENS: u64 = short_key_of(b"tokens");
        const ACTION: u64 = short_key_of(b"action");
        match key {
            TYPE => 0,
            TS => 1,
            RUN_ID => 2,
            HOP => 3,
            AGENT => 4,
            USER => 6,
            SEGMENT => 7,
            TASK => 8,
            TOOL => 9,
            MODEL => 11,
            STATUS => 19,
            PROMPT => 20,
            LIMIT => 23,
            TOKENS => 24,
            ACTION => 25,
            _ => IGNORED,
        }
    }

    /// The first 8 bytes of a key as a little-endian word.
    const fn prefix(key: &[u8]) -> u64 {
        let mut w = 0_u64;
        let mut i = 0;
        while i < 8 {
            w |= (key[i] as u64) << (8 * i);
            i += 1;
        }
        w
    }

    /// A known key of 8 bytes or more at `start` whose first 8 are `w`: the
    /// index of its closing quote and the field ([`field`]). `None` when the
    /// key is not one of those (or is `cache_write_1h_tokens`, which shares
    /// its first word with `cache_write_tokens`): then it is scanned.
    #[inline]
    fn long_field_at(bytes: &[u8], start: usize, w: u64) -> Option<(usize, Option<u32>)> {
        // Each arm compares a literal, so the compare is inlined.
        let at = |key: &[u8], f: Option<u32>| {
            let end = start + key.len();
            (bytes.get(start + 8..end)? == &key[8..] && *bytes.get(end)? == b'"')
                .then_some((end, f))
        };
        const PARENT_AGENT: u64 = prefix(b"parent_agent");
        const PROVIDER: u64 = prefix(b"provider");
        const INPUT_TOKENS: u64 = prefix(b"input_tokens");
        const OUTPUT_TOKENS: u64 = prefix(b"output_tokens");
        const CACHE_READ_TOKENS: u64 = prefix(b"cache_read_tokens");
        const CACHE_WRITE_TOKENS: u64 = prefix(b"cache_write_tokens");
        const REASONING_TOKENS: u64 = prefix(b"reasoning_tokens");
        const LATENCY_MS: u64 = prefix(b"latency_ms");
        const COMPLETION: u64 = prefix(b"completion");
        const LIMIT_KIND: u64 = prefix(b"limit_kind");
        const ESTIMATED: u64 = prefix(b"estimated");
        const COST_USD: u64 = prefix(b"cost_usd");
        match w {
            PARENT_AGENT => at(b"parent_agent", Some(5)),
            PROVIDER => at(b"provider", Some(10)),
            INPUT_TOKENS => at(b"input_tokens", Some(12)),
            OUTPUT_TOKENS => at(b"output_tokens", Some(13)),
            CACHE_READ_TOKENS => at(b"cache_read_tokens", Some(14)),
            CACHE_WRITE_TOKENS => at(b"cache_write_tokens", Some(15)),
            REASONING_TOKENS => at(b"reasoning_tokens", Some(17)),
            LATENCY_MS => at(b"latency_ms", Some(18)),
            COMPLETION => at(b"completion", Some(21)),
            LIMIT_KIND => at(b"limit_kind", Some(22)),
            ESTIMATED => at(b"estimated", Some(26)),
            COST_USD => at(b"cost_usd", None),
            _ => None,
        }
    }

    /// The field a key names, [`IGNORED`] for keys serde ignores, `None` for
    /// `cost_usd` (exact decimal parsing stays with serde). `fast_path_tests`
    /// checks this against the fields serde's derive knows.
    #[cfg(test)]
    pub(super) fn field(key: &str) -> Option<u32> {
        field_bytes(key.as_bytes())
    }

    #[inline]
    fn field_bytes(key: &[u8]) -> Option<u32> {
        if key.len() < 8 {
            return Some(short_field(short_key_of(key)));
        }
        Some(match key {
            b"parent_agent" => 5,
            b"provider" => 10,
            b"input_tokens" => 12,
            b"output_tokens" => 13,
            b"cache_read_tokens" => 14,
            b"cache_write_tokens" => 15,
            b"cache_write_1h_tokens" => 16,
            b"reasoning_tokens" => 17,
            b"latency_ms" => 18,
            b"completion" => 21,
            b"limit_kind" => 22,
            b"estimated" => 26,
            b"cost_usd" => return None,
            _ => IGNORED,
        })
    }

    /// The string field numbered `f` ([`field`]).
    #[inline]
    fn text_slot<'r, 'a>(r: &'r mut RawRecord<'a>, f: u32) -> Option<&'r mut Option<Text<'a>>> {
        Some(match f {
            0 => &mut r.kind,
            2 => &mut r.run_id,
            4 => &mut r.agent,
            5 => &mut r.parent_agent,
            6 => &mut r.user,
            7 => &mut r.segment,
            8 => &mut r.task,
            9 => &mut r.tool,
            10 => &mut r.provider,
            11 => &mut r.model,
            19 => &mut r.status,
            20 => &mut r.prompt,
            21 => &mut r.completion,
            22 => &mut r.limit_kind,
            25 => &mut r.action,
            _ => return None,
        })
    }

    /// The count field numbered `f` ([`field`]).
    #[inline]
    fn count_slot<'r>(r: &'r mut RawRecord<'_>, f: u32) -> Option<&'r mut Option<u64>> {
        Some(match f {
            12 => &mut r.input_tokens,
            13 => &mut r.output_tokens,
            14 => &mut r.cache_read_tokens,
            15 => &mut r.cache_write_tokens,
            16 => &mut r.cache_write_1h_tokens,
            17 => &mut r.reasoning_tokens,
            18 => &mut r.latency_ms,
            23 => &mut r.limit,
            24 => &mut r.tokens,
            _ => return None,
        })
    }

    /// Reads the record into `r` (a default one) when the line has the
    /// common shape; after `None`, `r` is half-filled and only fit to drop.
    /// (Filled in place: returned by value, the ~600-byte record was copied
    /// twice on the way out.)
    pub(super) fn record<'a>(line: &'a [u8], r: &mut RawRecord<'a>) -> Option<()> {
        record_str(std::str::from_utf8(line).ok()?, r)
    }

    /// [`record`] for a line already known to be UTF-8 (live batches
    /// validate each line as they store it).
    #[inline]
    pub(super) fn record_str<'a>(text: &'a str, r: &mut RawRecord<'a>) -> Option<()> {
        let line = text.as_bytes();
        let mut c = Cursor {
            text,
            bytes: line,
            at: 0,
        };
        let mut seen = 0_u32;
        c.skip_ws();
        c.eat_padded(b'{')?;
        if c.peek()? == b'}' {
            c.at += 1;
        } else {
            loop {
                (c.peek()? == b'"').then_some(())?;
                let f = c.key()?;
                c.eat_padded(b':')?;
                if f != IGNORED {
                    // A repeated field is serde's error to report (a repeated
                    // unknown key it ignores, as we do).
                    if seen & (1 << f) != 0 {
                        return None;
                    }
                    seen |= 1 << f;
                }
                // One call site each for strings and counts, so that
                // their readers are inlined once.
                match f {
                    1 => c.opt_ts().map(|v| r.ts = v),
                    3 => {
                        let mut hop = None;
                        c.opt_u64(&mut hop)?;
                        r.hop = hop.map(u32::try_from).transpose().ok()?;
                        Some(())
                    }
                    26 => c.opt_bool().map(|v| r.estimated = v),
                    IGNORED => c.skip_scalar(),
                    _ => match text_slot(r, f) {
                        Some(slot) => c.text(slot),
                        None => c.opt_u64(count_slot(r, f)?),
                    },
                }?;
                c.skip_ws();
                match c.peek()? {
                    b',' => {
                        c.at += 1;
                        c.skip_ws();
                    }
                    b'}' => {
                        c.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        c.skip_ws();
        (c.at == line.len()).then_some(())
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    const ORIGIN: LineOrigin<'static> = LineOrigin { source: "t.jsonl" };

    fn seeds() -> Vec<Vec<u8>> {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for dir in [
            "sample_logs/teams",
            "sample_logs/misc",
            "sample_logs",
            "tests/fixtures",
        ] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            paths.sort();
            for path in paths
                .iter()
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            {
                let data = std::fs::read(path).unwrap();
                lines.extend(data.split(|b| *b == b'\n').map(<[u8]>::to_vec));
            }
        }
        for extra in [
            r#"{"ts":"2026-03-01T10:00:00.000Z","run_id":"r","hop":3,"agent":"a","model":"gpt-4.1","input_tokens":10,"output_tokens":1}"#,
            r#" { "ts" : 1772400000000 , "agent" : null , "model":"m", "input_tokens":0,"output_tokens":0 } "#,
            r#"{"ts":"2026-03-05T10:00:00+05:30","agent":"a\"b","model":"m","input_tokens":1,"output_tokens":1}"#,
            r#"{"ts":"2026-03-05T10:00:00,000Z","model":"m","input_tokens":1,"output_tokens":1}"#,
            r#"{"ts":1772400000,"model":"m","input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","input_tokens":1,"output_tokens":1,"input_tokens":2}"#,
            r#"{"model":"m","input_tokens":null,"output_tokens":1,"input_tokens":2}"#,
            r#"{"model":"m","input_tokens":01,"output_tokens":1}"#,
            r#"{"model":"m","input_tokens":1.0,"output_tokens":1}"#,
            r#"{"model":"m","input_tokens":-1,"output_tokens":1}"#,
            r#"{"model":"m","input_tokens":18446744073709551616,"output_tokens":1}"#,
            r#"{"model":"m","input_tokens":18446744073709551615,"output_tokens":1}"#,
            r#"{"model":"m","hop":4294967296,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","cost_usd":0.25,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","extra":{"x":[1,2]},"input_tokens":1,"output_tokens":1}"#,
            r#"{"type":"budget_exceeded","run_id":"r","hop":2,"limit_kind":"tokens","limit":100,"tokens":120,"action":"stop"}"#,
            r#"{"type":"run_end","run_id":"r","status":"ok"}"#,
            r#"{"type":"weird","run_id":"r"}"#,
            r#"{"model":"m","prompt":"hello world","completion":"hi"}"#,
            r#"{"model":"m","input_tokens":5,"output_tokens":1,"cache_read_tokens":6}"#,
            r#"{"model":"m","input_tokens":5,"output_tokens":1,"reasoning_tokens":2,"cache_write_tokens":1,"cache_write_1h_tokens":1}"#,
            r#"{"model":"   ","agent":"","run_id":" ","input_tokens":5,"output_tokens":1}"#,
            "{\"model\":\"caf\u{e9}\",\"input_tokens\":5,\"output_tokens\":1}",
            r#"{}"#,
            r#"[]"#,
            r#"{"model":"m","input_tokens":5,"output_tokens":1}x"#,
            r#"{"model":"m","input_tokens":5,"output_tokens":1,}"#,
            r#"{"model":"m" "input_tokens":5}"#,
            r#"{"model":true,"input_tokens":5,"output_tokens":1}"#,
            r#"{"ts":"","model":"m","input_tokens":5,"output_tokens":1}"#,
            r#"{"ts":"2026-02-30T10:00:00Z","model":"m","input_tokens":5,"output_tokens":1}"#,
        ] {
            lines.push(extra.as_bytes().to_vec());
        }
        lines.push(b"{\"model\":\"\xff\",\"input_tokens\":5,\"output_tokens\":1}".to_vec());
        lines.push(b"{\"model\":\"a\tb\",\"input_tokens\":5,\"output_tokens\":1}".to_vec());
        lines.extend(unknown_key_seeds());
        lines
    }

    /// Lines with keys [`RawRecord`] does not have (every kind of value,
    /// valid and not) and with `estimated`.
    fn unknown_key_seeds() -> Vec<Vec<u8>> {
        let mut lines: Vec<Vec<u8>> = [
            r#"{"ts":"2026-11-23T08:00:22.474Z","run_id":"bench-00000001","hop":1,"agent":"planner","user":"lean-u071","segment":"lean/enterprise","task":"plan","model":"claude-haiku-4-5","input_tokens":2900,"cache_read_tokens":2200,"output_tokens":837,"latency_ms":15474,"status":"ok","trace":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#,
            r#"{"span_id":"","model":"m","input_tokens":1,"output_tokens":1}"#,
            r#"{"":"empty key","model":"m","input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","n":0,"i":-12,"f":3.25,"e":-0.5e-7,"g":1E+30,"h":2e5,"z":-0,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","big":123456789012345678901234567890,"tiny":1e-400,"huge":1e400,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","a":true,"b":false,"c":null,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m", "a" : true , "b":false ,"c" :null,"d" : 7 ,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":01,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":-01,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":1.,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":1.e5,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":-,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":--1,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":1e,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":1e+,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":1e5.5,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":.5,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":+1,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":0x10,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":NaN,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":tru,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":nulls,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":False,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":{},"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":{"input_tokens":2},"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":[1,"a"],"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":[],"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":"a\"b","input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":"a\nb","input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":"\u00e9","input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":"\q","input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x\u0079":1,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","t\u0073":1,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":1,"x":"dup","x":null,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","x":"#,
            r#"{"model":"m","x":1"#,
            r#"{"model":"m","x":"unterminated}"#,
            r#"{"model":"m","kind":"weird","Model":"M","type ":"x","input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":true}"#,
            r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":false,"trace":"t"}"#,
            r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":null}"#,
            r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated" : true }"#,
            r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":true,"estimated":false}"#,
            r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":null,"estimated":null}"#,
            r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":1}"#,
            r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":"true"}"#,
            r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":trueish}"#,
            r#"{"model":"m","prompt":"count me","output_tokens":1,"estimated":false}"#,
            r#"{"model":"m","cost_usd":"0.25","input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","cost_usd":null,"input_tokens":1,"output_tokens":1}"#,
            r#"{"model":"m","cost_usd":3,"input_tokens":1,"output_tokens":1}"#,
            r#"{"type":"budget_exceeded","run_id":"r","limit":100,"tokens":120,"usage":7,"input_tokens":"ignored?"}"#,
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .collect();
        // Raw bytes serde_json rejects (a control character) or skips without
        // validating (invalid UTF-8 in an ignored string).
        lines.push(
            b"{\"model\":\"m\",\"x\":\"a\tb\",\"input_tokens\":1,\"output_tokens\":1}".to_vec(),
        );
        lines.push(
            b"{\"model\":\"m\",\"x\":\"\xff\",\"input_tokens\":1,\"output_tokens\":1}".to_vec(),
        );
        lines.push(
            b"{\"model\":\"m\",\"x\":\"caf\xc3\xa9\",\"input_tokens\":1,\"output_tokens\":1}"
                .to_vec(),
        );
        lines
    }

    fn check(line: &[u8]) -> bool {
        let mut raw = RawRecord::default();
        if fast::record(line, &mut raw).is_none() {
            return false;
        }
        let fast = normalize(&mut raw, ORIGIN);
        let reference = parse_line_serde(line, ORIGIN);
        assert_eq!(fast, reference, "{}", String::from_utf8_lossy(line));
        true
    }

    fn takes_the_fast_path(line: &str) -> bool {
        fast::record(line.as_bytes(), &mut RawRecord::default()).is_some()
    }

    #[test]
    fn the_fast_path_agrees_with_serde_on_seeds() {
        let seeds = seeds();
        let fast = seeds.iter().filter(|l| check(l)).count();
        assert!(seeds.len() > 400, "{}", seeds.len());
        assert!(
            fast * 10 > seeds.len() * 8,
            "most lines take the fast path: {fast}/{}",
            seeds.len()
        );
    }

    #[test]
    fn parse_str_agrees_with_parse_line_on_seeds() {
        for line in seeds() {
            if let Ok(text) = std::str::from_utf8(&line) {
                assert_eq!(parse_str(text, ORIGIN), parse_line(&line, ORIGIN), "{text}");
            }
        }
    }

    /// A deterministic xorshift generator.
    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// Mutates `rounds` lines cycled from `seeds` by up to three byte edits
    /// each and checks every mutant the fast path accepts; how many it did.
    fn check_mutations(seeds: &[Vec<u8>], rounds: usize, next: &mut impl FnMut() -> u64) -> usize {
        let alphabet = b" \t\"\\{}[]:,0123456789-+.eEnultrfsaxyz\xc3\xa9\x01";
        let mut accepted = 0;
        for i in 0..rounds {
            let mut line = seeds[i % seeds.len()].clone();
            for _ in 0..=(next() % 3) {
                let pos = usize::try_from(next()).unwrap() % (line.len() + 1);
                let byte = alphabet[usize::try_from(next()).unwrap() % alphabet.len()];
                match next() % 3 {
                    0 if pos < line.len() => line[pos] = byte,
                    1 if pos < line.len() => {
                        line.remove(pos);
                    }
                    _ => line.insert(pos, byte),
                }
            }
            accepted += usize::from(check(&line));
        }
        accepted
    }

    #[test]
    fn the_fast_path_agrees_with_serde_on_mutations() {
        // Every mutation that the fast path accepts must give serde's result
        // exactly.
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let accepted = check_mutations(&seeds(), 60_000, &mut next);
        assert!(accepted > 5_000, "{accepted}");
        let accepted = check_mutations(&unknown_key_seeds(), 60_000, &mut next);
        assert!(accepted > 5_000, "{accepted}");
    }

    #[test]
    fn the_fast_path_skips_unknown_scalars_and_leaves_the_rest_to_serde() {
        let line =
            |extra: &str| format!(r#"{{"model":"m",{extra},"input_tokens":1,"output_tokens":1}}"#);
        for extra in [
            r#""trace":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx""#,
            r#""trace":"""#,
            r#""":"""#,
            r#""café":"thé""#,
            r#""kind":"hop""#,
            r#""n":0"#,
            r#""n":-0"#,
            r#""n":7"#,
            r#""n":-12"#,
            r#""n":123456789012345678901234567890"#,
            r#""n":3.25"#,
            r#""n":-0.5e-7"#,
            r#""n":1E+30"#,
            r#""n":2e5"#,
            r#""n":1e400"#,
            r#""n" : 0.0 "#,
            r#""b":true"#,
            r#""b":false"#,
            r#""b":null"#,
            r#""x":1,"x":"again""#,
            r#""estimated":true"#,
            r#""estimated":false"#,
            r#""estimated":null"#,
        ] {
            let text = line(extra);
            assert!(takes_the_fast_path(&text), "{text}");
            assert!(check(text.as_bytes()));
        }
        for extra in [
            r#""n":01"#,
            r#""n":-01"#,
            r#""n":1."#,
            r#""n":-"#,
            r#""n":1e"#,
            r#""n":1e+"#,
            r#""n":.5"#,
            r#""n":+1"#,
            r#""n":1x"#,
            r#""n":NaN"#,
            r#""b":tru"#,
            r#""b":nulls"#,
            r#""o":{}"#,
            r#""a":[]"#,
            r#""s":"a\"b""#,
            r#""s":"a\\b""#,
            "\"s\":\"a\tb\"",
            r#""t\u0073":1"#,
            r#""cost_usd":0.25"#,
            r#""cost_usd":"0.25""#,
            r#""cost_usd":null"#,
            r#""estimated":1"#,
            r#""estimated":"true""#,
            r#""estimated":true,"estimated":true"#,
        ] {
            let text = line(extra);
            assert!(!takes_the_fast_path(&text), "{text}");
        }
    }

    /// The field names serde's derive gives `deserialize_struct` for
    /// [`RawRecord`] (every key it does not ignore).
    fn serde_fields() -> &'static [&'static str] {
        struct Capture(&'static [&'static str]);
        impl<'de> Deserializer<'de> for &mut Capture {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0 = fields;
                Err(de::Error::custom("captured"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }
        let mut capture = Capture(&[]);
        assert!(RawRecord::deserialize(&mut capture).is_err());
        capture.0
    }

    #[test]
    fn the_fast_path_knows_exactly_the_keys_serde_knows() {
        // Ignoring a key serde reads would silently lose a field.
        let fields = serde_fields();
        assert_eq!(fields.len(), 28, "{fields:?}");
        let mut slots: Vec<u32> = Vec::new();
        for name in fields {
            match fast::field(name) {
                None => assert_eq!(*name, "cost_usd"),
                Some(fast::IGNORED) => panic!("the fast path ignores '{name}'"),
                Some(slot) => slots.push(slot),
            }
        }
        slots.sort_unstable();
        assert_eq!(slots, (0..27).collect::<Vec<_>>(), "one slot per field");
        for unknown in [
            "", "kind", "Model", "trace", "span_id", "ts ", "cost", "hop_", "estimate",
        ] {
            assert_eq!(fast::field(unknown), Some(fast::IGNORED), "{unknown}");
        }
    }

    #[test]
    fn the_word_scan_agrees_with_the_byte_loop() {
        let simple = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        };
        let special = [
            0x00, 0x01, 0x1f, 0x20, 0x21, b'"', 0x23, b'\\', 0x5d, 0x7f, 0x80, 0x9f, 0xa2, 0xc3,
            0xdc, 0xff,
        ];
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for len in 0..40 {
            // Every special byte at every position, alone and as a pair.
            for pos in 0..len {
                for &a in &special {
                    let mut bytes = vec![b'x'; len];
                    bytes[pos] = a;
                    assert_eq!(fast::plain_len(&bytes), simple(&bytes), "{bytes:?}");
                    if len <= 17 {
                        for later in pos + 1..len {
                            for &b in &special {
                                bytes[later] = b;
                                assert_eq!(fast::plain_len(&bytes), simple(&bytes), "{bytes:?}");
                            }
                            bytes[later] = b'x';
                        }
                    }
                }
            }
            // Random bytes, mostly ones that do not end a string.
            for _ in 0..2_000 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        let r = next();
                        match r % 16 {
                            0 => special[usize::try_from(r >> 8).unwrap() % special.len()],
                            1 => (r >> 8) as u8,
                            _ => match 0x20 + ((r >> 8) % 0xe0) as u8 {
                                b'"' | b'\\' => b'y',
                                b => b,
                            },
                        }
                    })
                    .collect();
                assert_eq!(fast::plain_len(&bytes), simple(&bytes), "{bytes:?}");
            }
        }
    }
}
