//! Claude Code transcripts (`~/.claude/projects/<project>/<session>.jsonl`,
//! sub-agents under `<session>/subagents/`), formats.md §3.
//!
//! | source field | normalized |
//! |---|---|
//! | `message.usage` | Anthropic buckets (`anthropic`): input without cache, 5-minute and 1-hour writes, reads, output with thinking |
//! | `sessionId` | run (one session, one run) |
//! | `isSidechain` | agent `subagent` (parent agent `main`), else `main` |
//! | `cwd` | segment (the project) |
//! | `message.model` | model |
//! | `timestamp` | time |
//! | `costUSD` (old versions only) | reported cost |
//! | `message.id` + `requestId` | call identity |
//!
//! Claude Code writes one line per content block of a message, with the
//! same ids and a growing `output_tokens`; resumed sessions copy earlier
//! messages into a new file; a sidechain may replay its parent's message
//! under a new request id. So every call carries its identity and is
//! settled across all files (`ingest::dedup`): one count per (message id,
//! request id) — message id alone when the request id is missing — keeping
//! the largest usage, and a sidechain copy never displaces (or adds to) the
//! original. `<synthetic>` messages and API-error lines are not calls.
//!
//! Only lines with a `"usage"` key can be calls: the others (user turns with
//! their tool results, which are most of the bytes) are checked for the
//! shape of a JSON object and not parsed. In the lines that are parsed, a
//! message's content blocks (thinking, text, tool inputs) are skipped by
//! their structure (strings and brackets), not parsed: nothing is read from
//! them.

use std::borrow::Cow;

use serde::Deserialize;

use super::anthropic::{self, RawUsage};
use super::json::{self, Str, When};
use super::{Context, Decoded, Emit, FormatDecoder};
use crate::types::event::{CallId, EventKind, Format, Supersede, TelemetryEvent, UNKNOWN};

/// The agent of a session's main thread, and of its sidechains.
pub const MAIN_AGENT: &str = "main";
pub const SUBAGENT: &str = "subagent";

/// Model name of lines Claude Code wrote itself (errors, interruptions).
const SYNTHETIC: &str = "<synthetic>";

#[derive(Debug, Default)]
pub struct ClaudeCode {
    /// An assistant line with its content blocks left out (reused).
    without_content: String,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    model: Option<Str<'a>>,
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(rename = "sessionId", borrow, default)]
    session_id: Option<Str<'a>>,
    #[serde(rename = "requestId", borrow, default)]
    request_id: Option<Str<'a>>,
    #[serde(default)]
    timestamp: Option<When>,
    #[serde(rename = "isSidechain", default)]
    is_sidechain: Option<bool>,
    #[serde(rename = "isApiErrorMessage", default)]
    is_api_error: Option<bool>,
    #[serde(borrow, default)]
    cwd: Option<Str<'a>>,
    #[serde(rename = "costUSD", default)]
    cost_usd: Option<json::Cost>,
    #[serde(borrow, default)]
    message: Option<Message<'a>>,
}

/// The line's own `type`, when it comes before any nested value (Claude
/// Code writes a user line's `type` before its `message`: most of a
/// transcript's bytes are user lines with tool results, skipped here after
/// a few hundred bytes). Before the first `{` or `[` past the opening one,
/// every key is the line's own; a brace inside an earlier string value
/// only makes this give up (`None`).
fn leading_type(line: &[u8]) -> Option<&[u8]> {
    let body = line.trim_ascii_start().strip_prefix(b"{")?;
    let prefix = &body[..memchr::memchr2(b'{', b'[', body).unwrap_or(body.len())];
    static TYPE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"type\""));
    TYPE.find_iter(prefix).find_map(|at| {
        let rest = prefix[at + 6..].trim_ascii_start().strip_prefix(b":")?;
        let value = rest.trim_ascii_start().strip_prefix(b"\"")?;
        let end = memchr::memchr2(b'"', b'\\', value)?;
        (value[end] == b'"').then_some(&value[..end])
    })
}

/// Whether a line has a `"usage"` key anywhere: lines without one are not
/// calls and need not be parsed.
fn may_have_usage(line: &[u8]) -> bool {
    static USAGE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));
    // Forward: memchr's reverse search has no SIMD prefilter (measured:
    // twice the decoding time on a Claude Code corpus).
    USAGE.find(line).is_some()
}

/// Where the value of the line's first `"content"` key is (a message's
/// content blocks: most of an assistant line's bytes), when it is an array,
/// an object or a string that ends within the line. The byte sequence
/// `"content":` cannot occur inside a JSON string (a quote there is
/// escaped), so the match is a key; the value is then skipped by its
/// structure ([`json::value_end`]), far faster than by parsing it.
fn content_value(line: &[u8]) -> Option<std::ops::Range<usize>> {
    static CONTENT: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"content\":"));
    let after_key = CONTENT.find(line)? + 10;
    let rest = line.get(after_key..)?;
    let start = after_key + (rest.len() - rest.trim_ascii_start().len());
    let end = start + json::value_end(&line[start..])?;
    Some(start..end)
}

impl FormatDecoder for ClaudeCode {
    fn decode(
        &mut self,
        line: &[u8],
        line_no: u64,
        cx: Context<'_>,
        out: &mut dyn Emit,
    ) -> Result<Decoded, String> {
        let typed_other = leading_type(line).is_some_and(|kind| kind != b"assistant");
        let content = if typed_other {
            None
        } else {
            content_value(line)
        };
        let may_be_a_call = !typed_other
            && match &content {
                Some(content) => {
                    may_have_usage(&line[..content.start]) || may_have_usage(&line[content.end..])
                }
                None => may_have_usage(line),
            };
        if !may_be_a_call {
            let trimmed = line.trim_ascii();
            if !(trimmed.starts_with(b"{") && trimmed.ends_with(b"}")) {
                return Err("not a JSON object (a truncated line?)".into());
            }
            return Ok(Decoded::Ignored);
        }
        // Validated once, then parsed as text: serde_json checks every key
        // and kept string of a byte slice on its own, which costs more on
        // these long lines than one pass over them.
        let text = std::str::from_utf8(line).map_err(|_| json::INVALID_UTF8.to_owned())?;
        // The line without its content blocks (read by nothing here), else
        // whole; a line the shorter text does not parse as is judged whole,
        // so that errors point into the line as written.
        let shorter = content.and_then(|content| {
            let scratch = &mut self.without_content;
            scratch.clear();
            scratch.push_str(&text[..content.start]);
            scratch.push_str("[]");
            scratch.push_str(&text[content.end..]);
            serde_json::from_str::<Line<'_>>(scratch).ok()
        });
        let parsed: Line<'_> = match shorter {
            Some(parsed) => parsed,
            None => json::parse_str(text)?,
        };
        match decode_line(parsed, cx)? {
            Some(event) => {
                out.event(line_no, event);
                Ok(Decoded::Events)
            }
            None => Ok(Decoded::Ignored),
        }
    }
}

/// The call a parsed line reports, if it is one.
fn decode_line<'a>(line: Line<'a>, cx: Context<'_>) -> Result<Option<TelemetryEvent<'a>>, String> {
    if line
        .kind
        .as_ref()
        .is_some_and(|k| k.as_str() != "assistant")
        || line.is_api_error == Some(true)
    {
        return Ok(None);
    }
    let Some(message) = line.message else {
        return Ok(None);
    };
    let Some(raw) = message.usage else {
        return Ok(None);
    };
    let model = json::text(message.model);
    if model.as_deref() == Some(SYNTHETIC) {
        return Ok(None);
    }
    let usage = anthropic::usage(&raw)?;
    let ts_ms = line.timestamp.and_then(|w| w.0);
    let sidechain = line.is_sidechain == Some(true);
    let reported_cost = match line.cost_usd {
        Some(cost) => Some(json::usd(&cost, "costUSD")?),
        None => None,
    };
    let message_id = json::text(message.id);
    let request_id = json::text(line.request_id);
    let call = message_id.as_deref().map(|id| CallId {
        key: json::call_key(Format::ClaudeCode, &[id]),
        attempt: json::attempt_key(request_id.as_deref()),
        replay: sidechain,
        rule: Supersede::Largest,
        pin: false,
    });
    Ok(Some(TelemetryEvent {
        kind: EventKind::Hop,
        ts_ms,
        run_id: json::text(line.session_id)
            .unwrap_or_else(|| Cow::Owned(super::openai::synthetic_run_id(cx.origin, ts_ms))),
        hop: None,
        agent: Cow::Borrowed(if sidechain { SUBAGENT } else { MAIN_AGENT }),
        parent_agent: sidechain.then_some(Cow::Borrowed(MAIN_AGENT)),
        user: None,
        segment: json::text(line.cwd),
        task: None,
        tool: None,
        provider: Some(Cow::Borrowed("anthropic")),
        model: model.unwrap_or(Cow::Borrowed(UNKNOWN)),
        usage,
        reported_cost,
        latency_ms: None,
        status: None,
        estimated: false,
        format: Format::ClaudeCode,
        call,
        prompt: None,
    }))
}

#[cfg(test)]
mod tests;
