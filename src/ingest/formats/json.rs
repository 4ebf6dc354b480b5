//! Pieces the JSON formats share: strings borrowed from the line, token
//! counts and timestamps in their various spellings, exact money, call
//! identities, and error messages that locate the problem.

use std::borrow::Cow;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::LazyLock;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::types::event::Format;
use crate::types::money::Usd;

/// A string borrowed from the line when it has no escapes (serde's own
/// `Cow<str>` only borrows as a direct field, never inside `Option`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Str<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(StrVisitor(std::marker::PhantomData))
    }
}

impl Str<'_> {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A non-empty, non-blank string, as an event field.
#[must_use]
pub fn text(value: Option<Str<'_>>) -> Option<Cow<'_, str>> {
    value
        .map(|s| s.0)
        .filter(|t| !t.bytes().all(|b| b.is_ascii_whitespace()))
}

/// A string or a number, as text (ids some writers send as integers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for IdVisitor<'a> {
            type Value = Id<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Id<'a>, E> {
                Ok(Id(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id<'a>, E> {
                Ok(Id(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id<'a>, E> {
                Ok(Id(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id<'a>, E> {
                Ok(Id(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_any(IdVisitor(std::marker::PhantomData))
    }
}

/// A token count: an integer, an integral float (`12.0`) or a decimal
/// string (`"4263"`, as OTLP/JSON writes 64-bit integers); `null` is "not
/// reported" (use `Option<Count>` with `#[serde(default)]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl Visitor<'_> for CountVisitor {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer token count")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                u64::try_from(v)
                    .map(Count)
                    .map_err(|_| E::custom(format!("token count {v} is negative")))
            }
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "checked: integral, non-negative and below 2^53"
            )]
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Count, E> {
                if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 9.0e15 {
                    Ok(Count(v as u64))
                } else {
                    Err(E::custom(format!(
                        "token count {v} is not a non-negative integer"
                    )))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                v.trim().parse::<u64>().map(Count).map_err(|_| {
                    E::custom(format!(
                        "token count '{}' is not a non-negative integer",
                        v.chars().take(40).collect::<String>()
                    ))
                })
            }
        }
        deserializer.deserialize_any(CountVisitor)
    }
}

/// The count of an optional field, 0 when not reported.
#[must_use]
pub fn count(value: Option<Count>) -> u64 {
    value.map_or(0, |c| c.0)
}

/// A cost as the record wrote it: a JSON number's own text or a string's
/// content, never an `f64` (`12345.000000000001` stays exact, `1e-400` is
/// not $0). Read by [`usd`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cost(pub Box<str>);

impl<'de> Deserialize<'de> for Cost {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        match cost_text(raw.get()) {
            Some(text) => text.map(|t| Cost(t.into())).map_err(de::Error::custom),
            None => Err(de::Error::custom(format!(
                "invalid type: {}, expected a number of US dollars",
                raw.get().chars().take(40).collect::<String>()
            ))),
        }
    }
}

/// A cost label on a wrapper (`envelope`): a number or a string is a
/// [`Cost`]; any other value carries none (as for every label).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LooseCost(pub Option<Cost>);

impl<'de> Deserialize<'de> for LooseCost {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        match cost_text(raw.get()) {
            Some(text) => text
                .map(|t| LooseCost(Some(Cost(t.into()))))
                .map_err(de::Error::custom),
            None => Ok(LooseCost(None)),
        }
    }
}

/// The text of a cost from the raw JSON of its value: a number as written,
/// a string's content (borrowed unless it has escapes); `None` for any
/// other value.
pub fn cost_text(raw: &str) -> Option<Result<Cow<'_, str>, String>> {
    match raw.as_bytes().first()? {
        b'"' => Some(match raw[1..].strip_suffix('"') {
            Some(inner) if !inner.contains('\\') => Ok(Cow::Borrowed(inner)),
            _ => serde_json::from_str::<String>(raw)
                .map(Cow::Owned)
                .map_err(|e| e.to_string()),
        }),
        b'-' | b'0'..=b'9' => Some(Ok(Cow::Borrowed(raw))),
        _ => None,
    }
}

/// A cost one call reported, by [`Usd::reported_call_cost_text`]'s rule
/// (`Usd::parse_reported`): whole picodollars, float noise past them
/// forgiven, anything finer rejected; below `types::money::MAX_CALL_COST`.
///
/// # Errors
/// Not a number, negative, finer than a picodollar, or implausible for one
/// call; the reason quotes the text written.
pub fn usd(cost: &Cost, field: &str) -> Result<Usd, String> {
    Usd::reported_call_cost_text(&cost.0, field)
}

/// Epoch milliseconds of an RFC 3339 time.
#[must_use]
pub fn rfc3339_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Epoch milliseconds of an epoch time in seconds (`1753357673`,
/// `1760000000.25`); values that are already milliseconds (above ~1973 in
/// ms) are taken as such.
#[must_use]
#[allow(
    clippy::cast_possible_truncation,
    reason = "range-checked epoch values"
)]
pub fn epoch_ms(value: f64) -> Option<i64> {
    if !value.is_finite() || value <= 0.0 {
        return None;
    }
    let ms = if value >= 1.0e11 {
        value
    } else {
        value * 1000.0
    };
    (ms < 1.0e15).then(|| ms.round() as i64)
}

/// A time field written as RFC 3339 text or an epoch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct When(pub Option<i64>);

impl<'de> Deserialize<'de> for When {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WhenVisitor;
        impl Visitor<'_> for WhenVisitor {
            type Value = When;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a time (RFC 3339 or epoch seconds)")
            }
            #[allow(clippy::cast_precision_loss, reason = "epoch times fit")]
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<When, E> {
                Ok(When(epoch_ms(v as f64)))
            }
            #[allow(clippy::cast_precision_loss, reason = "epoch times fit")]
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<When, E> {
                Ok(When(epoch_ms(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<When, E> {
                Ok(When(epoch_ms(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<When, E> {
                Ok(When(rfc3339_ms(v).or_else(|| {
                    v.trim().parse::<f64>().ok().and_then(epoch_ms)
                })))
            }
        }
        deserializer.deserialize_any(WhenVisitor)
    }
}

/// The reason a line is not valid JSON of the expected shape, located by
/// column (serde_json's "at line 1 column N" would name the wrong line).
#[must_use]
pub fn json_reason(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(pos) => format!("{} (column {})", &message[..pos], error.column()),
        None => message,
    }
}

/// The reason of a line rejected for invalid UTF-8 (counted apart).
pub const INVALID_UTF8: &str = "invalid UTF-8";

/// Parses a line as `T`, with [`json_reason`] errors. The strings `T`
/// keeps are validated as UTF-8; what it skips is not (as serde_json does).
///
/// # Errors
/// Invalid JSON or UTF-8, or a field of the wrong type.
pub fn parse<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(line).map_err(|e| {
        if std::str::from_utf8(line).is_err() {
            INVALID_UTF8.to_owned()
        } else {
            format!("invalid JSON: {}", json_reason(&e))
        }
    })
}

/// [`parse`] for text already known to be UTF-8.
///
/// # Errors
/// Invalid JSON, or a field of the wrong type.
pub fn parse_str<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("invalid JSON: {}", json_reason(&e)))
}

/// Where the array, object or string `bytes` starts with ends (the index
/// after it), found from its structure alone: strings end at an unescaped
/// quote, brackets must match. Nothing else is checked (a skipped value's
/// numbers and literals are not). `None` when `bytes` does not start with
/// one of those values, it does not end within `bytes`, or it nests deeper
/// than 64 levels.
#[must_use]
pub fn value_end(bytes: &[u8]) -> Option<usize> {
    // One bit per open bracket: set for `[`, clear for `{`.
    let mut open: u64 = 0;
    let mut depth = 0_u32;
    let mut at = 0;
    loop {
        match *bytes.get(at)? {
            b'"' => {
                at = string_end(bytes, at + 1)?;
                if depth == 0 {
                    return Some(at);
                }
                continue;
            }
            bracket @ (b'[' | b'{') => {
                if depth == 64 {
                    return None;
                }
                open = (open << 1) | u64::from(bracket == b'[');
                depth += 1;
            }
            bracket @ (b']' | b'}') => {
                if depth == 0 || (open & 1 == 1) != (bracket == b']') {
                    return None;
                }
                open >>= 1;
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ if depth == 0 => return None,
            _ => {}
        }
        at += 1;
    }
}

/// The index after the quote that closes the string whose text starts at
/// `from`.
fn string_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', bytes.get(from..)?)?;
        if bytes[at] == b'"' {
            return Some(at + 1);
        }
        from = at + 2;
    }
}

/// Per-process random key: call identities cannot be forged to collide.
static CALL_KEYS: LazyLock<std::hash::RandomState> = LazyLock::new(std::hash::RandomState::new);

/// A call identity key: `format` and the call's own id parts, hashed with a
/// per-process random key; never 0.
#[must_use]
pub fn call_key(format: Format, parts: &[&str]) -> u64 {
    let hash = CALL_KEYS.hash_one((format.index(), parts));
    hash.max(1)
}

/// An attempt id (a request id) as a hash; 0 for none.
#[must_use]
pub fn attempt_key(attempt: Option<&str>) -> u64 {
    attempt.map_or(0, |a| CALL_KEYS.hash_one(("attempt", a)).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Counts {
        #[serde(default)]
        a: Option<Count>,
    }

    #[test]
    fn counts_accept_integers_integral_floats_and_strings() {
        let a = |json: &str| serde_json::from_str::<Counts>(json).map(|c| count(c.a));
        assert_eq!(a(r#"{"a":4263}"#).ok(), Some(4263));
        assert_eq!(a(r#"{"a":"4263"}"#).ok(), Some(4263));
        assert_eq!(a(r#"{"a":12.0}"#).ok(), Some(12));
        assert_eq!(a(r#"{"a":null}"#).ok(), Some(0));
        assert_eq!(a("{}").ok(), Some(0));
        for bad in [
            r#"{"a":-1}"#,
            r#"{"a":1.5}"#,
            r#"{"a":"x"}"#,
            r#"{"a":true}"#,
        ] {
            assert!(a(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn epoch_times_in_seconds_or_milliseconds() {
        assert_eq!(epoch_ms(1_753_357_673.0), Some(1_753_357_673_000));
        assert_eq!(epoch_ms(1_753_357_673_123.0), Some(1_753_357_673_123));
        assert_eq!(epoch_ms(1_760_000_000.25), Some(1_760_000_000_250));
        assert_eq!(epoch_ms(-1.0), None);
        assert_eq!(
            rfc3339_ms("2026-01-01T00:00:00.5Z"),
            Some(1_767_225_600_500)
        );
    }

    #[test]
    fn call_keys_depend_on_format_and_every_part() {
        let a = call_key(Format::ClaudeCode, &["msg_1"]);
        assert_eq!(a, call_key(Format::ClaudeCode, &["msg_1"]));
        assert_ne!(a, call_key(Format::Anthropic, &["msg_1"]));
        assert_ne!(a, call_key(Format::ClaudeCode, &["msg_2"]));
        assert_ne!(
            call_key(Format::Otlp, &["ab", "c"]),
            call_key(Format::Otlp, &["a", "bc"])
        );
        assert_eq!(attempt_key(None), 0);
        assert_ne!(attempt_key(Some("req_1")), 0);
    }

    #[test]
    fn value_end_skips_by_structure() {
        let ends = |text: &str| value_end(text.as_bytes());
        let line =
            r#"[{"type":"text","text":"a ] } \" \\"},{"input":{"k":[1,{"x":"]"}]}}],"usage":{}"#;
        assert_eq!(ends(line), line.find(r#","usage""#));
        assert_eq!(ends(r#""a \"quoted\" word" tail"#), Some(19));
        assert_eq!(ends(r#""ends in a backslash \\""#), Some(24));
        assert_eq!(ends("[[], {}]"), Some(8));
        // Not a value it skips, unterminated, or mismatched: the caller parses.
        for bad in [
            "12",
            "null",
            r#"["open"#,
            r#""open"#,
            "[}",
            "{]",
            "]",
            r#"["\"]"#,
        ] {
            assert_eq!(ends(bad), None, "{bad}");
        }
        let deep = "[".repeat(64) + &"]".repeat(64);
        assert_eq!(ends(&deep), Some(128));
        assert_eq!(ends(&("[".repeat(65) + &"]".repeat(65))), None);
    }
}
