//! tokwatch's native JSONL telemetry schema (`docs/schema.md`).
//!
//! Usage follows the OpenTelemetry GenAI convention: `input_tokens` is all
//! prompt input and the cache fields are subsets of it; `output_tokens`
//! includes `reasoning_tokens`. Strings are borrowed from the line.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::types::event::{EventKind, Format, MAX_HOP, TelemetryEvent, UNKNOWN};
use crate::types::money::Usd;
use crate::types::prompt::PromptPrint;
use crate::types::usage::{MAX_CALL_TOKENS, Usage, implausible_tokens};

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

/// Where a line came from, for synthetic run ids, and how text without
/// counts is counted.
#[derive(Debug, Clone, Copy)]
pub struct LineOrigin<'s> {
    /// Count text roughly (a token per 4 bytes) and leave the exact count to
    /// an estimator off this path (`ingest::estimate`); else count it here.
    pub rough: bool,
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
    /// Read as `u64` so that both paths give one reason for an index out
    /// of range ([`MAX_HOP`]).
    #[serde(default)]
    hop: Option<u64>,
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
    /// Any hash of the prompt the agent computed (an exact fingerprint).
    #[serde(borrow, default)]
    prompt_hash: Option<Text<'a>>,
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
    let reported_cost = match raw.cost_usd.take().map(|c| c.0).transpose() {
        Ok(cost) => cost,
        Err(reason) => return invalid(reason),
    };
    let hop = match raw.hop {
        Some(hop) if hop > u64::from(MAX_HOP) => {
            return invalid(format!(
                "hop {hop} is out of range: a run has fewer than 10^9 hops"
            ));
        }
        hop => hop.and_then(|h| u32::try_from(h).ok()),
    };
    let mut estimated = raw.estimated.unwrap_or(false);
    let usage = if kind == EventKind::Hop {
        for (field, count) in [
            ("input_tokens", raw.input_tokens),
            ("output_tokens", raw.output_tokens),
            ("cache_read_tokens", raw.cache_read_tokens),
            ("cache_write_tokens", raw.cache_write_tokens),
            ("cache_write_1h_tokens", raw.cache_write_1h_tokens),
            ("reasoning_tokens", raw.reasoning_tokens),
        ] {
            if let Some(n) = count.filter(|n| *n >= MAX_CALL_TOKENS) {
                return invalid(implausible_tokens(field, n));
            }
        }
        let input = match (raw.input_tokens, raw.prompt.as_ref().map(|t| t.0.as_ref())) {
            (Some(n), _) => n,
            (None, Some(text)) => {
                estimated = true;
                count_text(&model, text, origin)
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
                count_text(&model, text, origin)
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
        .plausible()
        .map_err(ParseError::Invalid)?
    } else {
        Usage::default()
    };
    // Fingerprints only: the text goes no further than this decoder. The
    // same `RawRecord` comes from both paths, so they agree by construction.
    let prompt = if kind == EventKind::Hop {
        PromptPrint::of_record(
            raw.prompt.as_ref().map(|t| t.0.as_ref()),
            raw.prompt_hash.as_ref().map(|t| t.0.as_ref()),
        )
    } else {
        None
    };
    Ok(TelemetryEvent {
        kind,
        ts_ms,
        run_id,
        hop,
        agent,
        parent_agent: non_empty(raw.parent_agent.take()),
        user: non_empty(raw.user.take()),
        segment: non_empty(raw.segment.take()),
        task: non_empty(raw.task.take()),
        tool: non_empty(raw.tool.take()),
        provider: non_empty(raw.provider.take()),
        model,
        usage,
        reported_cost,
        latency_ms: raw.latency_ms,
        status: non_empty(raw.status.take()),
        estimated,
        format: Format::Native,
        call: None,
        prompt,
    })
}

/// Records without a `run_id` from one source and one UTC day form one run.
pub(crate) fn synthetic_run_id(source: &str, ts_ms: Option<i64>) -> String {
    use std::fmt::Write as _;
    let mut id = String::with_capacity(source.len() + 16);
    id.push_str("auto:");
    id.push_str(source);
    if let Some((year, month, day)) = ts_ms.and_then(utc_date) {
        let _ = write!(id, ":{year:04}-{month:02}-{day:02}");
    }
    id
}

/// The UTC calendar date of an epoch time (Howard Hinnant's
/// `civil_from_days`; chrono's formatting costs more than the decoding of
/// a line, and it runs for every record without a run id).
fn utc_date(ts_ms: i64) -> Option<(i64, i64, i64)> {
    let days = ts_ms.div_euclid(86_400_000);
    let z = days.checked_add(719_468)?;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (0..=9999).contains(&year).then_some((year, month, day))
}

/// Counts tokens of text with the model's tokenizer (o200k for models
/// tiktoken does not know). Only used when a record has no counts.
pub(crate) fn estimate_tokens(model: &str, text: &str) -> u64 {
    let (tokenizer, _) = crate::ingest::estimate::tokenizer_for(model);
    crate::ingest::estimate::count_tokens(tokenizer, text)
}

fn count_text(model: &str, text: &str, origin: LineOrigin<'_>) -> u64 {
    if origin.rough {
        crate::ingest::estimate::rough_tokens(text)
    } else {
        estimate_tokens(model, text)
    }
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

/// A non-negative USD amount below [`crate::types::money::MAX_CALL_COST`],
/// read from the text written (a number's own token, a string's content;
/// never an `f64`) by [`Usd::reported_call_cost_text`]: whole picodollars,
/// float noise past them forgiven, anything finer rejected. A number or a
/// string that breaks those rules is kept as its reason, so that the line
/// is rejected for the value (in `normalize`), not as invalid JSON.
struct CostUsd(Result<Usd, String>);

impl<'de> Deserialize<'de> for CostUsd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Borrowed: the line is always parsed from a slice or a str.
        let raw = <&'de serde_json::value::RawValue>::deserialize(deserializer)?;
        match super::json::cost_text(raw.get()) {
            Some(Ok(text)) => Ok(CostUsd(Usd::reported_call_cost_text(&text, "cost_usd"))),
            Some(Err(error)) => Err(de::Error::custom(error)),
            None => Err(de::Error::custom(format!(
                "invalid type: {}, expected a non-negative number of US dollars",
                raw.get().chars().take(40).collect::<String>()
            ))),
        }
    }
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
mod fast;

#[cfg(test)]
mod fast_path_tests;
