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
    if let Some(raw) = fast::record(line) {
        return normalize(raw, origin);
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
    let raw: RawRecord<'a> = serde_json::from_slice(line).map_err(|e| {
        if std::str::from_utf8(line).is_err() {
            ParseError::InvalidUtf8
        } else {
            ParseError::Json(json_reason(&e))
        }
    })?;
    normalize(raw, origin)
}

/// [`parse_line`] for text already known to be UTF-8.
///
/// # Errors
/// As [`parse_line`].
pub fn parse_str<'a>(
    text: &'a str,
    origin: LineOrigin<'_>,
) -> Result<TelemetryEvent<'a>, ParseError> {
    if let Some(raw) = fast::record(text.as_bytes()) {
        return normalize(raw, origin);
    }
    let raw: RawRecord<'a> =
        serde_json::from_str(text).map_err(|e| ParseError::Json(json_reason(&e)))?;
    normalize(raw, origin)
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

fn normalize<'a>(
    raw: RawRecord<'a>,
    origin: LineOrigin<'_>,
) -> Result<TelemetryEvent<'a>, ParseError> {
    let invalid = |message: String| Err(ParseError::Invalid(message));
    let ts_ms = raw.ts.map(|t| t.0);
    let run_id = match non_empty(raw.run_id) {
        Some(id) => id,
        None => Cow::Owned(synthetic_run_id(origin.source, ts_ms)),
    };
    let agent = non_empty(raw.agent).unwrap_or(Cow::Borrowed(UNKNOWN));
    let model = non_empty(raw.model).unwrap_or(Cow::Borrowed(UNKNOWN));
    let kind = match raw.kind.as_ref().map(|t| t.0.as_ref()) {
        None | Some("hop") => EventKind::Hop,
        Some("budget_exceeded") => EventKind::BudgetExceeded {
            limit_kind: raw.limit_kind.map(|t| t.0.into_owned()),
            limit: raw.limit,
            observed: raw.tokens,
            action: raw.action.map(|t| t.0.into_owned()),
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
        parent_agent: non_empty(raw.parent_agent),
        user: non_empty(raw.user),
        segment: non_empty(raw.segment),
        task: non_empty(raw.task),
        tool: non_empty(raw.tool),
        provider: non_empty(raw.provider),
        model,
        usage,
        reported_cost: raw.cost_usd.map(|c| c.0),
        latency_ms: raw.latency_ms,
        status: non_empty(raw.status),
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
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        b[range].iter().try_fold(0_i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month[usize::try_from(month - 1).ok()?]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut pos = 19;
    let mut millis = 0;
    if b[pos] == b'.' {
        let start = pos + 1;
        pos = start;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == start {
            return None;
        }
        // Milliseconds truncate the fraction, as chrono's timestamp_millis does.
        for i in 0..3 {
            millis = millis * 10
                + b.get(start + i)
                    .filter(|_| start + i < pos)
                    .map_or(0, |c| i64::from(c - b'0'));
        }
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
/// object of known keys whose values are plain strings (no escapes),
/// non-negative integers or `null`. It builds the same [`RawRecord`] serde
/// would, and gives up (`None`) on anything else (escapes, unknown or
/// repeated keys, floats, `cost_usd`, invalid UTF-8, bad timestamps …), which
/// then goes through serde_json unchanged, errors and all. About twice as
/// fast as the generic path; `fast_path_tests` checks it against serde.
mod fast {
    use std::borrow::Cow;

    use super::{MIN_EPOCH_MS, RawRecord, Text, TsMillis, fast_rfc3339_millis};

    struct Cursor<'a> {
        text: &'a str,
        at: usize,
    }

    impl<'a> Cursor<'a> {
        #[inline]
        fn peek(&self) -> Option<u8> {
            self.text.as_bytes().get(self.at).copied()
        }

        #[inline]
        fn skip_ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.at += 1;
            }
        }

        #[inline]
        fn eat(&mut self, byte: u8) -> Option<()> {
            (self.peek()? == byte).then(|| self.at += 1)
        }

        /// A string without escapes or control characters; the cursor is on
        /// its opening quote.
        #[inline]
        fn string(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let bytes = self.text.as_bytes();
            let start = self.at;
            let len = bytes[start..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            self.at = start + len;
            self.eat(b'"')?;
            self.text.get(start..start + len)
        }

        /// `null` followed by a delimiter.
        #[inline]
        fn null(&mut self) -> Option<()> {
            if self.text.as_bytes().get(self.at..self.at + 4)? == b"null" {
                self.at += 4;
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
        /// leading zero (those take the generic path).
        #[inline]
        fn integer(&mut self) -> Option<u64> {
            let bytes = self.text.as_bytes();
            let start = self.at;
            let mut value = 0_u64;
            while let Some(&b) = bytes.get(self.at).filter(|b| b.is_ascii_digit()) {
                value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                self.at += 1;
            }
            let digits = self.at - start;
            if digits == 0 || (digits > 1 && bytes[start] == b'0') {
                return None;
            }
            self.delimited()?;
            Some(value)
        }

        #[inline]
        fn opt_text(&mut self) -> Option<Option<Text<'a>>> {
            if self.peek()? == b'n' {
                self.null().map(|()| None)
            } else {
                self.string().map(|s| Some(Text(Cow::Borrowed(s))))
            }
        }

        #[inline]
        fn opt_u64(&mut self) -> Option<Option<u64>> {
            if self.peek()? == b'n' {
                self.null().map(|()| None)
            } else {
                self.integer().map(Some)
            }
        }

        #[inline]
        fn opt_ts(&mut self) -> Option<Option<TsMillis>> {
            match self.peek()? {
                b'n' => self.null().map(|()| None),
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
    }

    /// The field a key names (by length first: one or two compares), `None`
    /// for `cost_usd` (exact decimal parsing stays with serde) and unknown keys.
    #[inline]
    fn field(key: &str) -> Option<u32> {
        match key.len() {
            2 => (key == "ts").then_some(1),
            3 => (key == "hop").then_some(3),
            4 => match key {
                "type" => Some(0),
                "user" => Some(6),
                "task" => Some(8),
                "tool" => Some(9),
                _ => None,
            },
            5 => match key {
                "agent" => Some(4),
                "model" => Some(11),
                "limit" => Some(23),
                _ => None,
            },
            6 => match key {
                "run_id" => Some(2),
                "status" => Some(19),
                "prompt" => Some(20),
                "tokens" => Some(24),
                "action" => Some(25),
                _ => None,
            },
            7 => (key == "segment").then_some(7),
            8 => (key == "provider").then_some(10),
            10 => match key {
                "latency_ms" => Some(18),
                "completion" => Some(21),
                "limit_kind" => Some(22),
                _ => None,
            },
            12 => match key {
                "parent_agent" => Some(5),
                "input_tokens" => Some(12),
                _ => None,
            },
            13 => (key == "output_tokens").then_some(13),
            16 => (key == "reasoning_tokens").then_some(17),
            17 => (key == "cache_read_tokens").then_some(14),
            18 => (key == "cache_write_tokens").then_some(15),
            21 => (key == "cache_write_1h_tokens").then_some(16),
            _ => None,
        }
    }

    /// Sets a field once: a repeated key is serde's error to report.
    #[inline]
    fn once<T>(seen: &mut u32, bit: u32, slot: &mut Option<T>, value: Option<T>) -> Option<()> {
        if *seen & (1 << bit) != 0 {
            return None;
        }
        *seen |= 1 << bit;
        *slot = value;
        Some(())
    }

    /// The record, when the line has the common shape.
    pub(super) fn record(line: &[u8]) -> Option<RawRecord<'_>> {
        let text = std::str::from_utf8(line).ok()?;
        let mut c = Cursor { text, at: 0 };
        let mut r = RawRecord::default();
        let mut seen = 0_u32;
        c.skip_ws();
        c.eat(b'{')?;
        c.skip_ws();
        if c.peek()? == b'}' {
            c.at += 1;
        } else {
            loop {
                let key = c.string()?;
                c.skip_ws();
                c.eat(b':')?;
                c.skip_ws();
                let s = &mut seen;
                match field(key)? {
                    0 => once(s, 0, &mut r.kind, c.opt_text()?),
                    1 => once(s, 1, &mut r.ts, c.opt_ts()?),
                    2 => once(s, 2, &mut r.run_id, c.opt_text()?),
                    3 => {
                        let hop = match c.opt_u64()? {
                            Some(n) => Some(u32::try_from(n).ok()?),
                            None => None,
                        };
                        once(s, 3, &mut r.hop, hop)
                    }
                    4 => once(s, 4, &mut r.agent, c.opt_text()?),
                    5 => once(s, 5, &mut r.parent_agent, c.opt_text()?),
                    6 => once(s, 6, &mut r.user, c.opt_text()?),
                    7 => once(s, 7, &mut r.segment, c.opt_text()?),
                    8 => once(s, 8, &mut r.task, c.opt_text()?),
                    9 => once(s, 9, &mut r.tool, c.opt_text()?),
                    10 => once(s, 10, &mut r.provider, c.opt_text()?),
                    11 => once(s, 11, &mut r.model, c.opt_text()?),
                    12 => once(s, 12, &mut r.input_tokens, c.opt_u64()?),
                    13 => once(s, 13, &mut r.output_tokens, c.opt_u64()?),
                    14 => once(s, 14, &mut r.cache_read_tokens, c.opt_u64()?),
                    15 => once(s, 15, &mut r.cache_write_tokens, c.opt_u64()?),
                    16 => once(s, 16, &mut r.cache_write_1h_tokens, c.opt_u64()?),
                    17 => once(s, 17, &mut r.reasoning_tokens, c.opt_u64()?),
                    18 => once(s, 18, &mut r.latency_ms, c.opt_u64()?),
                    19 => once(s, 19, &mut r.status, c.opt_text()?),
                    20 => once(s, 20, &mut r.prompt, c.opt_text()?),
                    21 => once(s, 21, &mut r.completion, c.opt_text()?),
                    22 => once(s, 22, &mut r.limit_kind, c.opt_text()?),
                    23 => once(s, 23, &mut r.limit, c.opt_u64()?),
                    24 => once(s, 24, &mut r.tokens, c.opt_u64()?),
                    _ => once(s, 25, &mut r.action, c.opt_text()?),
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
        (c.at == line.len()).then_some(r)
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
        lines
    }

    fn check(line: &[u8]) -> bool {
        let Some(raw) = fast::record(line) else {
            return false;
        };
        let fast = normalize(raw, ORIGIN);
        let reference = parse_line_serde(line, ORIGIN);
        assert_eq!(fast, reference, "{}", String::from_utf8_lossy(line));
        true
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
    fn the_fast_path_agrees_with_serde_on_mutations() {
        // Deterministic xorshift: every mutation that the fast path accepts
        // must give serde's result exactly.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b" \t\"\\{}[]:,0123456789-+.eEnultrfaxyz\xc3\xa9\x01";
        let seeds = seeds();
        let mut accepted = 0;
        for i in 0..60_000 {
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
        assert!(accepted > 5_000, "{accepted}");
    }
}
