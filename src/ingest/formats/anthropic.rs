//! Anthropic Messages responses and stream events (formats.md §2), bare or
//! in a gateway's envelope (`envelope`).
//!
//! | source field | normalized |
//! |---|---|
//! | `usage.input_tokens` (already without cache reads and writes) | `input_uncached` |
//! | `usage.cache_read_input_tokens` | `cache_read` |
//! | `usage.cache_creation.ephemeral_5m_input_tokens` (else all of `cache_creation_input_tokens`) | `cache_write_5m` |
//! | `usage.cache_creation.ephemeral_1h_input_tokens` | `cache_write_1h` (billed 2× input) |
//! | `usage.output_tokens` | `output` |
//! | `usage.output_tokens_details.thinking_tokens` | `reasoning` (inside `output`) |
//! | `model`, `id` | model, call identity |
//!
//! Streams: `message_start` carries the message and its input usage (with a
//! placeholder output); each `message_delta`'s usage is *cumulative* and
//! overwrites it field by field (never added): the call is emitted at the
//! delta, and a later delta of the same message replaces it. A
//! `message_start` whose delta never came (a cut stream) is counted with
//! what it had when the source ends. `server_tool_use` requests (web
//! search) are billed per request, not per token: they are not tokens and
//! are left out.

use std::borrow::Cow;

use serde::Deserialize;

use super::envelope::{self, Resolved};
use super::json::{self, Count, Str};
use super::openai::hop_event;
use super::{Context, Decoded, Emit, FormatDecoder};
use crate::types::event::{CallId, Format, Supersede};
use crate::types::usage::Usage;

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: Option<Count>,
    #[serde(default)]
    ephemeral_1h_input_tokens: Option<Count>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct OutputDetails {
    #[serde(default)]
    thinking_tokens: Option<Count>,
}

/// Anthropic's `usage` object (also Claude Code's).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(super) struct RawUsage {
    #[serde(default)]
    input_tokens: Option<Count>,
    #[serde(default)]
    output_tokens: Option<Count>,
    #[serde(default)]
    cache_creation_input_tokens: Option<Count>,
    #[serde(default)]
    cache_read_input_tokens: Option<Count>,
    #[serde(default)]
    cache_creation: Option<CacheCreation>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

impl RawUsage {
    /// Overwrites the fields `later` reports (a cumulative `message_delta`).
    fn overwrite_with(&mut self, later: &RawUsage) {
        let take = |mine: &mut Option<Count>, theirs: Option<Count>| {
            if theirs.is_some() {
                *mine = theirs;
            }
        };
        take(&mut self.input_tokens, later.input_tokens);
        take(&mut self.output_tokens, later.output_tokens);
        take(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        take(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        if later.cache_creation.is_some() {
            self.cache_creation = later.cache_creation;
        }
        if later.output_tokens_details.is_some() {
            self.output_tokens_details = later.output_tokens_details;
        }
    }

    /// Whether any count is present.
    fn is_empty(&self) -> bool {
        self.input_tokens.is_none()
            && self.output_tokens.is_none()
            && self.cache_creation_input_tokens.is_none()
            && self.cache_read_input_tokens.is_none()
            && self.cache_creation.is_none()
    }
}

/// Normalizes an exclusive (Anthropic-convention) usage.
///
/// # Errors
/// Thinking tokens above the output.
pub(super) fn usage(raw: &RawUsage) -> Result<Usage, String> {
    let output = json::count(raw.output_tokens);
    let reasoning = json::count(raw.output_tokens_details.and_then(|d| d.thinking_tokens));
    if reasoning > output {
        return Err(format!(
            "output_tokens_details.thinking_tokens ({reasoning}) exceed output_tokens ({output}), which must include them"
        ));
    }
    // The breakdown by lifetime, when present, is what is billed; without
    // it every write is a 5-minute one.
    let (write_5m, write_1h) = match raw.cache_creation {
        Some(breakdown)
            if breakdown.ephemeral_5m_input_tokens.is_some()
                || breakdown.ephemeral_1h_input_tokens.is_some() =>
        {
            (
                json::count(breakdown.ephemeral_5m_input_tokens),
                json::count(breakdown.ephemeral_1h_input_tokens),
            )
        }
        _ => (json::count(raw.cache_creation_input_tokens), 0),
    };
    Usage {
        input_uncached: json::count(raw.input_tokens),
        cache_read: json::count(raw.cache_read_input_tokens),
        cache_write_5m: write_5m,
        cache_write_1h: write_1h,
        output,
        reasoning,
    }
    .plausible()
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

/// A Messages body or a stream event.
#[derive(Deserialize)]
struct Body<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    model: Option<Str<'a>>,
    #[serde(default)]
    usage: Option<RawUsage>,
    /// `message_start`'s message.
    #[serde(borrow, default)]
    message: Option<Message<'a>>,
}

/// A `message_start` waiting for its deltas.
#[derive(Debug)]
struct Open {
    id: Option<String>,
    model: Option<String>,
    usage: RawUsage,
    line_no: u64,
    /// Counted at a delta already (a later delta replaces that count).
    emitted: bool,
}

#[derive(Debug, Default)]
pub struct Anthropic {
    open: Option<Open>,
}

fn call_id(id: Option<&str>) -> Option<CallId> {
    id.map(|id| CallId {
        key: json::call_key(Format::Anthropic, &[id]),
        attempt: 0,
        replay: false,
        rule: Supersede::Largest,
        pin: false,
    })
}

impl Anthropic {
    fn emit_open(
        &mut self,
        line_no: u64,
        cx: Context<'_>,
        out: &mut dyn Emit,
    ) -> Result<(), String> {
        let Some(open) = &mut self.open else {
            return Ok(());
        };
        let usage = usage(&open.usage)?;
        open.emitted = true;
        let event = hop_event(
            Format::Anthropic,
            cx,
            Resolved::default(),
            None,
            None,
            open.model.as_deref().map(Cow::Borrowed),
            usage,
            None,
            None,
            call_id(open.id.as_deref()),
        );
        out.event(line_no, event);
        Ok(())
    }
}

impl FormatDecoder for Anthropic {
    fn decode(
        &mut self,
        line: &[u8],
        line_no: u64,
        cx: Context<'_>,
        out: &mut dyn Emit,
    ) -> Result<Decoded, String> {
        let (labels, body): (_, Body<'_>) = envelope::open(line)?;
        match body.kind.as_ref().map(Str::as_str) {
            Some("message_start") => {
                let message = body.message.ok_or("message_start without its message")?;
                // A start whose deltas never came is counted as it was.
                self.flush(cx, out);
                self.open = Some(Open {
                    // Without an id, the deltas of this stream still replace
                    // one another.
                    id: Some(message.id.map_or_else(
                        || format!("stream:{}:{line_no}", cx.scope),
                        |s| s.0.into_owned(),
                    )),
                    model: message.model.map(|s| s.0.into_owned()),
                    usage: message.usage.unwrap_or_default(),
                    line_no,
                    emitted: false,
                });
                Ok(Decoded::Ignored)
            }
            Some("message_delta") => {
                let delta = body.usage.unwrap_or_default();
                let Some(open) = &mut self.open else {
                    return Err(
                        "message_delta without a message_start before it (its usage cannot be attributed)".into(),
                    );
                };
                open.usage.overwrite_with(&delta);
                self.emit_open(line_no, cx, out)?;
                Ok(Decoded::Events)
            }
            Some("message_stop") => {
                if self.open.as_ref().is_some_and(|o| o.emitted) {
                    self.open = None;
                }
                Ok(Decoded::Ignored)
            }
            Some(
                "content_block_start"
                | "content_block_delta"
                | "content_block_stop"
                | "ping"
                | "error",
            ) => Ok(Decoded::Ignored),
            _ => {
                let Some(raw) = body.usage.filter(|u| !u.is_empty()) else {
                    return Ok(Decoded::Ignored);
                };
                let usage = usage(&raw)?;
                let run = labels.run.clone();
                let ts_ms = labels.ts_ms;
                let id = json::text(body.id);
                let event = hop_event(
                    Format::Anthropic,
                    cx,
                    labels,
                    run,
                    ts_ms,
                    json::text(body.model),
                    usage,
                    None,
                    None,
                    call_id(id.as_deref()),
                );
                out.event(line_no, event);
                Ok(Decoded::Events)
            }
        }
    }

    fn flush(&mut self, cx: Context<'_>, out: &mut dyn Emit) {
        if let Some(open) = &self.open
            && !open.emitted
        {
            let line_no = open.line_no;
            // A usage that was valid at message_start stays valid.
            let _ = self.emit_open(line_no, cx, out);
        }
        self.open = None;
    }
}

#[cfg(test)]
mod tests;
