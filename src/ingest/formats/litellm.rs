//! LiteLLM's `StandardLoggingPayload` (what its logging callbacks receive,
//! also wrapped as `{"standard_logging_object": {…}}`) and proxy spend-log
//! rows (`LiteLLM_SpendLogs`), formats.md §6.4.
//!
//! | source field | normalized |
//! |---|---|
//! | `response.usage` (else `metadata.usage_object`) | buckets as for OpenAI (cached and cache writes inside the prompt; LiteLLM adds Anthropic's `cache_read_input_tokens` / `cache_creation_input_tokens` there) |
//! | `prompt_tokens`, `completion_tokens` | input and output when no usage object says more |
//! | `response_cost` / `spend` | reported cost (a LiteLLM cache hit reports $0) |
//! | `metadata.session_id` / `session_id`, else `trace_id` | run |
//! | `metadata.agent_id` / `agent_id` | agent |
//! | `metadata.user_api_key_team_alias`, `…team_id` / `team_id` | segment |
//! | `end_user`, else `metadata.user_api_key_end_user_id`, `metadata.user_api_key_user_id`, `user` | user |
//! | `custom_llm_provider` | provider |
//! | `model` | model |
//! | `startTime` (epoch s or RFC 3339), `endTime` | time, latency |
//! | `status` (`success` / `failure`), `cache_hit` | status |
//! | `id` / `request_id` | call identity: the payload and the spend row of one request count once |

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{self, Count, Id, Str, When};
use super::openai::{RawUsage, synthetic_run_id, usage as openai_usage};
use super::{Context, Decoded, Emit, FormatDecoder};
use crate::types::event::{CallId, EventKind, Format, Supersede, TelemetryEvent, UNKNOWN};
use crate::types::usage::Usage;

#[derive(Debug, Default)]
pub struct LiteLlm;

#[derive(Deserialize, Default)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    session_id: Option<Id<'a>>,
    #[serde(borrow, default)]
    agent_id: Option<Id<'a>>,
    #[serde(borrow, default)]
    user_api_key_team_alias: Option<Str<'a>>,
    #[serde(borrow, default)]
    user_api_key_team_id: Option<Id<'a>>,
    #[serde(borrow, default)]
    user_api_key_user_id: Option<Id<'a>>,
    #[serde(borrow, default)]
    user_api_key_end_user_id: Option<Id<'a>>,
    #[serde(default)]
    usage_object: Option<RawUsage>,
}

#[derive(Deserialize, Default)]
struct Response {
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    /// A callback's kwargs dump: the payload is inside.
    #[serde(borrow, default)]
    standard_logging_object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<Id<'a>>,
    #[serde(borrow, default)]
    request_id: Option<Id<'a>>,
    #[serde(borrow, default)]
    trace_id: Option<Id<'a>>,
    #[serde(borrow, default)]
    session_id: Option<Id<'a>>,
    #[serde(borrow, default)]
    agent_id: Option<Id<'a>>,
    #[serde(borrow, default)]
    team_id: Option<Id<'a>>,
    #[serde(borrow, default)]
    user: Option<Id<'a>>,
    #[serde(borrow, default)]
    end_user: Option<Id<'a>>,
    #[serde(borrow, default)]
    model: Option<Str<'a>>,
    #[serde(borrow, default)]
    model_group: Option<Str<'a>>,
    #[serde(borrow, default)]
    custom_llm_provider: Option<Str<'a>>,
    #[serde(default)]
    prompt_tokens: Option<Count>,
    #[serde(default)]
    completion_tokens: Option<Count>,
    #[serde(default)]
    response_cost: Option<json::Cost>,
    #[serde(default)]
    spend: Option<json::Cost>,
    #[serde(default, rename = "startTime")]
    start: Option<When>,
    #[serde(default, rename = "endTime")]
    end: Option<When>,
    #[serde(borrow, default)]
    status: Option<Str<'a>>,
    #[serde(default)]
    cache_hit: Option<CacheHit>,
    #[serde(borrow, default)]
    metadata: Option<Metadata<'a>>,
    #[serde(default)]
    response: Option<Response>,
}

/// `cache_hit` is a boolean, or `"True"`/`"False"` text in spend rows.
#[derive(Debug, Clone, Copy)]
struct CacheHit(bool);

impl<'de> Deserialize<'de> for CacheHit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(CacheHit(match value {
            serde_json::Value::Bool(b) => b,
            serde_json::Value::String(s) => s.eq_ignore_ascii_case("true"),
            _ => false,
        }))
    }
}

fn id(value: Option<Id<'_>>) -> Option<Cow<'_, str>> {
    value.map(|v| v.0).filter(|t| !t.trim().is_empty())
}

impl FormatDecoder for LiteLlm {
    fn decode(
        &mut self,
        line: &[u8],
        line_no: u64,
        cx: Context<'_>,
        out: &mut dyn Emit,
    ) -> Result<Decoded, String> {
        let outer: Payload<'_> = json::parse(line)?;
        let payload: Payload<'_> = match outer.standard_logging_object {
            Some(inner) => json::parse(inner.get().as_bytes())?,
            None => outer,
        };
        let metadata = payload.metadata.unwrap_or_default();
        let usage_object = payload
            .response
            .and_then(|r| r.usage)
            .or(metadata.usage_object);
        let usage = match &usage_object {
            Some(raw) => openai_usage(raw)?,
            None => {
                if payload.prompt_tokens.is_none() && payload.completion_tokens.is_none() {
                    return Ok(Decoded::Ignored);
                }
                Usage {
                    input_uncached: json::count(payload.prompt_tokens),
                    output: json::count(payload.completion_tokens),
                    ..Usage::default()
                }
                .plausible()?
            }
        };
        let cache_hit = payload.cache_hit.is_some_and(|c| c.0);
        let reported = match payload.response_cost.as_ref().or(payload.spend.as_ref()) {
            Some(cost) => Some(json::usd(cost, "response_cost")?),
            None => None,
        };
        let ts_ms = payload.start.and_then(|w| w.0);
        let latency_ms = match (ts_ms, payload.end.and_then(|w| w.0)) {
            (Some(start), Some(end)) if end >= start => u64::try_from(end - start).ok(),
            _ => None,
        };
        let call_name = id(payload.id).or(id(payload.request_id));
        let run = id(metadata.session_id)
            .or(id(payload.session_id))
            .or(id(payload.trace_id));
        let segment = json::text(metadata.user_api_key_team_alias)
            .or(id(metadata.user_api_key_team_id))
            .or(id(payload.team_id));
        let user = id(payload.end_user)
            .or(id(metadata.user_api_key_end_user_id))
            .or(id(metadata.user_api_key_user_id))
            .or(id(payload.user));
        let status = if cache_hit {
            Some(Cow::Borrowed("cache_hit"))
        } else {
            json::text(payload.status)
        };
        let event = TelemetryEvent {
            kind: EventKind::Hop,
            ts_ms,
            run_id: run.unwrap_or_else(|| Cow::Owned(synthetic_run_id(cx.origin, ts_ms))),
            hop: None,
            agent: id(metadata.agent_id)
                .or(id(payload.agent_id))
                .unwrap_or(Cow::Borrowed(UNKNOWN)),
            parent_agent: None,
            user,
            segment,
            task: None,
            tool: None,
            provider: json::text(payload.custom_llm_provider),
            model: json::text(payload.model)
                .or(json::text(payload.model_group))
                .unwrap_or(Cow::Borrowed(UNKNOWN)),
            usage,
            reported_cost: reported,
            latency_ms,
            status,
            estimated: false,
            format: Format::LiteLlm,
            call: call_name.as_deref().map(|name| CallId {
                key: json::call_key(Format::LiteLlm, &[name]),
                attempt: 0,
                replay: false,
                rule: Supersede::Largest,
                pin: false,
            }),
            prompt: None,
        };
        out.event(line_no, event);
        Ok(Decoded::Events)
    }
}

#[cfg(test)]
mod tests {
    use crate::ingest::formats::tests::report;
    use crate::types::Usd;

    const PAYLOAD: &str = r#"{"id":"chatcmpl-L1","trace_id":"tr-1","call_type":"acompletion","stream":false,"response_cost":0.00064965,"status":"success","custom_llm_provider":"openai","total_tokens":4792,"prompt_tokens":4263,"completion_tokens":529,"startTime":1760000000.5,"endTime":1760000001.75,"model":"gpt-4o-mini","model_group":"mini","metadata":{"user_api_key_team_alias":"growth","user_api_key_user_id":"u-1","session_id":"sess-9","agent_id":"researcher","spend_logs_metadata":null},"end_user":"cust-7","cache_hit":false,"messages":[{"role":"user","content":"hello"}],"response":{"id":"chatcmpl-L1","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":4263,"completion_tokens":529,"total_tokens":4792,"prompt_tokens_details":{"cached_tokens":4096}}}}"#;

    #[test]
    fn a_standard_logging_payload_maps_run_agent_segment_user_and_cost() {
        let (snap, _) = report(&[PAYLOAD]);
        let run = &snap.runs[0];
        assert_eq!(&*run.run_id, "sess-9");
        assert_eq!(run.segment.as_deref(), Some("growth"));
        assert_eq!(run.user.as_deref(), Some("cust-7"));
        assert_eq!(&*run.hops[0].agent, "researcher");
        assert_eq!(run.hops[0].latency_ms, Some(1250));
        assert_eq!(snap.totals.cache_read_tokens, 4096);
        assert_eq!(snap.totals.uncached_input_tokens, 167);
        let dollars = Usd::parse_decimal("0.00064965").unwrap();
        assert_eq!(snap.totals.reported_cost, dollars);
        assert_eq!(snap.totals.computed_cost, dollars);
        assert_eq!(snap.by_model[0].provider.as_deref(), Some("openai"));
    }

    #[test]
    fn a_spend_row_of_the_same_request_counts_once() {
        let row = r#"{"request_id":"chatcmpl-L1","call_type":"acompletion","api_key":"88dc28","spend":0.00064965,"total_tokens":4792,"prompt_tokens":4263,"completion_tokens":529,"startTime":"2025-10-09T08:53:20.500Z","endTime":"2025-10-09T08:53:21.750Z","model":"gpt-4o-mini","user":"u-1","team_id":"t-growth","end_user":"cust-7","session_id":"sess-9","agent_id":"researcher","cache_hit":"False","metadata":{"usage_object":{"prompt_tokens":4263,"completion_tokens":529,"prompt_tokens_details":{"cached_tokens":4096}}}}"#;
        let (snap, stats) = report(&[row]);
        assert_eq!(snap.totals.events, 1);
        assert_eq!(snap.runs[0].segment.as_deref(), Some("t-growth"));
        assert_eq!(snap.totals.cache_read_tokens, 4096);
        let (snap, stats2) = report(&[PAYLOAD, row]);
        assert_eq!(snap.totals.events, 1);
        assert_eq!(stats2.duplicates, 1);
        assert_eq!(stats.malformed, 0);
    }

    #[test]
    fn anthropic_cache_writes_inside_or_beside_prompt_tokens() {
        // Current LiteLLM: prompt_tokens = input + cache reads + cache writes.
        let new = r#"{"id":"a1","response_cost":0.1,"model":"claude-sonnet-4-5","startTime":1760000000,"response":{"usage":{"prompt_tokens":1300,"completion_tokens":10,"cache_read_input_tokens":1000,"cache_creation_input_tokens":200}}}"#;
        // Older LiteLLM: prompt_tokens = input + cache reads only.
        let old = r#"{"id":"a2","response_cost":0.1,"model":"claude-sonnet-4-5","startTime":1760000000,"response":{"usage":{"prompt_tokens":1100,"completion_tokens":10,"cache_read_input_tokens":1000,"cache_creation_input_tokens":200}}}"#;
        for line in [new, old] {
            let (snap, stats) = report(&[line]);
            assert_eq!(stats.malformed, 0, "{line}");
            let t = &snap.totals;
            assert_eq!(
                (
                    t.uncached_input_tokens,
                    t.cache_read_tokens,
                    t.cache_write_tokens
                ),
                (100, 1000, 200),
                "{line}"
            );
        }
    }

    #[test]
    fn a_wrapped_payload_and_a_cache_hit() {
        let wrapped = format!(
            r#"{{"standard_logging_object":{}}}"#,
            PAYLOAD
                .replace("\"cache_hit\":false", "\"cache_hit\":true")
                .replace("\"response_cost\":0.00064965", "\"response_cost\":0.0")
        );
        let (snap, _) = report(&[&wrapped]);
        assert_eq!(snap.totals.events, 1);
        assert_eq!(snap.totals.cost, Usd::ZERO);
        assert_eq!(
            snap.runs[0].hops[0].labels.status.as_deref(),
            Some("cache_hit")
        );
    }
}
