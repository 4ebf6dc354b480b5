//! OpenAI responses (formats.md §1): Chat Completions objects and stream
//! chunks, Responses API objects and `response.*` stream events, bare or in
//! a gateway's envelope (`envelope`).
//!
//! | source field | normalized |
//! |---|---|
//! | `prompt_tokens` / `input_tokens` − cached − cache writes | `input_uncached` |
//! | `…_tokens_details.cached_tokens` (else `cache_read_input_tokens`) | `cache_read` |
//! | `…_tokens_details.cache_write_tokens` (else `cache_creation_input_tokens`) | `cache_write_5m` |
//! | `completion_tokens` / `output_tokens` | `output` |
//! | `…_tokens_details.reasoning_tokens` | `reasoning` (inside `output`) |
//! | `total_tokens` above input + output | added to `output` and `reasoning` (thinking left out of `completion_tokens` by OpenAI-compatible servers) |
//! | `usage.cost` (OpenRouter) | reported cost |
//! | `model` (else the request's) | model |
//! | `created` / `created_at` (epoch s) | time, unless the envelope has one |
//! | `id` | call identity: repeats (cumulative chunks, a response logged twice) keep the largest |
//!
//! Cached tokens are *inside* the prompt here, reasoning *inside* the
//! output: a count that says otherwise is rejected. A chunk or event
//! without usage is not a call of its own (`ignored`).

use std::borrow::Cow;

use serde::Deserialize;

use super::envelope::{self, Resolved};
use super::json::{self, Count, Str, When};
use super::{Context, Decoded, Emit, FormatDecoder};
use crate::types::event::{CallId, EventKind, Format, Supersede, TelemetryEvent, UNKNOWN};
use crate::types::usage::Usage;

#[derive(Debug, Default)]
pub struct OpenAi;

#[derive(Deserialize, Default)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<Count>,
    #[serde(default)]
    cache_write_tokens: Option<Count>,
    #[serde(default)]
    reasoning_tokens: Option<Count>,
}

/// Chat (`prompt_tokens`…) and Responses (`input_tokens`…) usage alike.
#[derive(Deserialize, Default)]
pub(crate) struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<Count>,
    #[serde(default)]
    completion_tokens: Option<Count>,
    #[serde(default)]
    input_tokens: Option<Count>,
    #[serde(default)]
    output_tokens: Option<Count>,
    #[serde(default)]
    total_tokens: Option<Count>,
    #[serde(default)]
    prompt_tokens_details: Option<Details>,
    #[serde(default)]
    input_tokens_details: Option<Details>,
    #[serde(default)]
    completion_tokens_details: Option<Details>,
    #[serde(default)]
    output_tokens_details: Option<Details>,
    /// LiteLLM and some gateways report Anthropic-style cache counts beside
    /// an inclusive `prompt_tokens`.
    #[serde(default)]
    cache_read_input_tokens: Option<Count>,
    #[serde(default)]
    cache_creation_input_tokens: Option<Count>,
    /// OpenRouter's reported cost, in dollars.
    #[serde(default)]
    cost: Option<json::Cost>,
}

#[derive(Deserialize)]
struct Conversation<'a> {
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    model: Option<Str<'a>>,
    #[serde(default)]
    created: Option<When>,
    #[serde(default)]
    created_at: Option<When>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(borrow, default)]
    status: Option<Str<'a>>,
    #[serde(borrow, default)]
    conversation: Option<ConversationRef<'a>>,
}

/// `conversation` is an id or `{"id": …}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ConversationRef<'a> {
    Id(#[serde(borrow)] Str<'a>),
    Object(#[serde(borrow)] Conversation<'a>),
}

/// Normalizes an inclusive (OpenAI-convention) usage.
///
/// # Errors
/// Cached tokens above the prompt, reasoning above the output, or no counts.
pub(crate) fn usage(raw: &RawUsage) -> Result<Usage, String> {
    let (input, input_details, input_name) = match (raw.prompt_tokens, raw.input_tokens) {
        (Some(n), _) => (n.0, raw.prompt_tokens_details.as_ref(), "prompt_tokens"),
        (None, Some(n)) => (n.0, raw.input_tokens_details.as_ref(), "input_tokens"),
        (None, None) => return Err("usage has neither prompt_tokens nor input_tokens".into()),
    };
    let (output, output_details, output_name) = match (raw.completion_tokens, raw.output_tokens) {
        (Some(n), _) => (
            n.0,
            raw.completion_tokens_details.as_ref(),
            "completion_tokens",
        ),
        (None, Some(n)) => (n.0, raw.output_tokens_details.as_ref(), "output_tokens"),
        (None, None) => (0, None, "completion_tokens"),
    };
    let details = input_details.or(raw.prompt_tokens_details.as_ref());
    let cache_read = details
        .and_then(|d| d.cached_tokens)
        .or(raw.cache_read_input_tokens)
        .map_or(0, |c| c.0);
    let write_in_details = details.and_then(|d| d.cache_write_tokens);
    let cache_write = write_in_details
        .or(raw.cache_creation_input_tokens)
        .map_or(0, |c| c.0);
    let mut cached = cache_read.saturating_add(cache_write);
    // LiteLLM before it counted Anthropic's cache writes in `prompt_tokens`
    // reported them beside it: when only the reads fit, the writes are
    // outside the prompt count (never inside twice, never dropped).
    let writes_outside = write_in_details.is_none()
        && raw.cache_creation_input_tokens.is_some()
        && cached > input
        && cache_read <= input;
    if writes_outside {
        cached = cache_read;
    }
    if cached > input {
        return Err(format!(
            "cached tokens ({cache_read}) + cache writes ({cache_write}) exceed {input_name} ({input}), which must include them"
        ));
    }
    let mut reasoning = json::count(
        output_details
            .or(raw.completion_tokens_details.as_ref())
            .and_then(|d| d.reasoning_tokens),
    );
    if reasoning > output {
        return Err(format!(
            "reasoning_tokens ({reasoning}) exceed {output_name} ({output}), which must include them"
        ));
    }
    let mut output = output;
    // Thinking that an OpenAI-compatible server left out of the output
    // (Gemini's endpoint): the total says it was produced and billed.
    if let Some(total) = raw.total_tokens {
        let counted = input.saturating_add(output);
        if total.0 > counted {
            let hidden = total.0 - counted;
            output = output.saturating_add(hidden);
            reasoning = reasoning.saturating_add(hidden);
        }
    }
    Usage {
        input_uncached: input - cached,
        cache_read,
        cache_write_5m: cache_write,
        cache_write_1h: 0,
        output,
        reasoning,
    }
    .plausible()
}

impl FormatDecoder for OpenAi {
    fn decode(
        &mut self,
        line: &[u8],
        line_no: u64,
        cx: Context<'_>,
        out: &mut dyn Emit,
    ) -> Result<Decoded, String> {
        let (labels, body): (_, Body<'_>) = envelope::open(line)?;
        let Some(raw) = &body.usage else {
            return Ok(Decoded::Ignored);
        };
        let usage = usage(raw)?;
        let reported = match &raw.cost {
            Some(cost) => Some(json::usd(cost, "usage.cost")?),
            None => None,
        };
        let run = labels.run.clone().or_else(|| match body.conversation {
            Some(ConversationRef::Id(id)) => json::text(Some(id)),
            Some(ConversationRef::Object(c)) => json::text(c.id),
            None => None,
        });
        let ts_ms = labels
            .ts_ms
            .or_else(|| body.created.or(body.created_at).and_then(|w| w.0));
        let id = json::text(body.id);
        let event = hop_event(
            Format::OpenAi,
            cx,
            labels,
            run,
            ts_ms,
            json::text(body.model),
            usage,
            reported,
            json::text(body.status),
            id.as_deref().map(|id| CallId {
                key: json::call_key(Format::OpenAi, &[id]),
                attempt: 0,
                replay: false,
                rule: Supersede::Largest,
                pin: false,
            }),
        );
        out.event(line_no, event);
        Ok(Decoded::Events)
    }
}

/// A model call from a provider response and its envelope's labels (the
/// OpenAI, Anthropic and Gemini decoders share it).
#[allow(clippy::too_many_arguments, reason = "one call site per format")]
pub(super) fn hop_event<'a>(
    format: Format,
    cx: Context<'_>,
    labels: Resolved<'a>,
    run: Option<Cow<'a, str>>,
    ts_ms: Option<i64>,
    model: Option<Cow<'a, str>>,
    usage: Usage,
    reported: Option<crate::types::money::Usd>,
    status: Option<Cow<'a, str>>,
    call: Option<CallId>,
) -> TelemetryEvent<'a> {
    let run_id = run.unwrap_or_else(|| Cow::Owned(synthetic_run_id(cx.origin, ts_ms)));
    TelemetryEvent {
        kind: EventKind::Hop,
        ts_ms,
        run_id,
        hop: labels.hop,
        agent: labels.agent.unwrap_or(Cow::Borrowed(UNKNOWN)),
        parent_agent: labels.parent_agent,
        user: labels.user,
        segment: labels.segment,
        task: labels.task,
        tool: None,
        provider: None,
        model: model
            .or(labels.request_model)
            .unwrap_or(Cow::Borrowed(UNKNOWN)),
        usage,
        reported_cost: labels.cost.or(reported),
        latency_ms: labels.latency_ms,
        status: labels.status.or(status),
        estimated: false,
        format,
        call,
        prompt: labels.prompt,
    }
}

/// Calls without a run from one source and one UTC day form one run (as in
/// the native schema).
pub(crate) fn synthetic_run_id(origin: &str, ts_ms: Option<i64>) -> String {
    super::native::synthetic_run_id(origin, ts_ms)
}

#[cfg(test)]
mod tests;
