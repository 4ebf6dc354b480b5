//! Google Gemini `generateContent` responses (formats.md §6b), REST
//! camelCase or SDK snake_case, bare or in a gateway's envelope.
//!
//! | source field (`usageMetadata`) | normalized |
//! |---|---|
//! | `promptTokenCount` − `cachedContentTokenCount` + `toolUsePromptTokenCount` | `input_uncached` (the prompt count includes the cached part; tool-use prompts are billed as input) |
//! | `cachedContentTokenCount` | `cache_read` |
//! | `candidatesTokenCount` + `thoughtsTokenCount` | `output` (thinking is reported outside the candidates, billed as output) |
//! | `thoughtsTokenCount` | `reasoning` |
//! | `totalTokenCount` | not billed (a check only) |
//! | `modelVersion` (else the request's model) | model |
//! | `responseId` | call identity: stream chunks repeat the usage, the largest is kept |
//! | `createTime` | time |
//!
//! Gemini has no cache writes of its own in the response (explicit caches
//! are created by a separate call).

use serde::Deserialize;

use super::envelope;
use super::json::{self, Count, Str, When};
use super::openai::hop_event;
use super::{Context, Decoded, Emit, FormatDecoder};
use crate::types::event::{CallId, Format, Supersede};
use crate::types::usage::Usage;

/// A stream whose chunks carry no `responseId`: consecutive chunks are one
/// response until one says why it finished.
#[derive(Debug, Default)]
pub struct Gemini {
    open_stream: Option<String>,
}

#[derive(Deserialize)]
struct Candidate<'a> {
    #[serde(borrow, default, alias = "finish_reason", rename = "finishReason")]
    finish_reason: Option<Str<'a>>,
}

#[derive(Deserialize, Default)]
struct UsageMetadata {
    #[serde(default, alias = "prompt_token_count")]
    #[serde(rename = "promptTokenCount")]
    prompt: Option<Count>,
    #[serde(default, alias = "cached_content_token_count")]
    #[serde(rename = "cachedContentTokenCount")]
    cached: Option<Count>,
    #[serde(default, alias = "candidates_token_count")]
    #[serde(rename = "candidatesTokenCount")]
    candidates: Option<Count>,
    #[serde(default, alias = "thoughts_token_count")]
    #[serde(rename = "thoughtsTokenCount")]
    thoughts: Option<Count>,
    #[serde(default, alias = "tool_use_prompt_token_count")]
    #[serde(rename = "toolUsePromptTokenCount")]
    tool_use_prompt: Option<Count>,
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default, alias = "usage_metadata", rename = "usageMetadata")]
    usage: Option<UsageMetadata>,
    #[serde(borrow, default, alias = "model_version", rename = "modelVersion")]
    model: Option<Str<'a>>,
    #[serde(borrow, default, alias = "response_id", rename = "responseId")]
    id: Option<Str<'a>>,
    #[serde(default, alias = "create_time", rename = "createTime")]
    created: Option<When>,
    #[serde(borrow, default)]
    candidates: Option<Vec<Candidate<'a>>>,
}

fn usage(raw: &UsageMetadata) -> Result<Usage, String> {
    let prompt = json::count(raw.prompt);
    let cached = json::count(raw.cached);
    if cached > prompt {
        return Err(format!(
            "cachedContentTokenCount ({cached}) exceeds promptTokenCount ({prompt}), which must include it"
        ));
    }
    let thoughts = json::count(raw.thoughts);
    Usage {
        input_uncached: (prompt - cached).saturating_add(json::count(raw.tool_use_prompt)),
        cache_read: cached,
        cache_write_5m: 0,
        cache_write_1h: 0,
        output: json::count(raw.candidates).saturating_add(thoughts),
        reasoning: thoughts,
    }
    .plausible()
}

impl FormatDecoder for Gemini {
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
        let run = labels.run.clone();
        let ts_ms = labels.ts_ms.or_else(|| body.created.and_then(|w| w.0));
        let finished = body
            .candidates
            .iter()
            .flatten()
            .any(|c| c.finish_reason.is_some());
        // Chunks of one stream repeat the usage so far: without an id,
        // consecutive chunks are one call until one has finished.
        let id = json::text(body.id).or_else(|| {
            let key = self
                .open_stream
                .get_or_insert_with(|| format!("stream:{}:{line_no}", cx.scope))
                .clone();
            Some(std::borrow::Cow::Owned(key))
        });
        if finished {
            self.open_stream = None;
        }
        let event = hop_event(
            Format::Gemini,
            cx,
            labels,
            run,
            ts_ms,
            json::text(body.model),
            usage,
            None,
            None,
            id.as_deref().map(|id| CallId {
                key: json::call_key(Format::Gemini, &[id]),
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

#[cfg(test)]
mod tests {
    use crate::ingest::formats::tests::report;
    use crate::types::Usd;

    #[test]
    fn usage_metadata_maps_to_disjoint_buckets() {
        let line = r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1200,"cachedContentTokenCount":1000,"candidatesTokenCount":50,"thoughtsTokenCount":150,"toolUsePromptTokenCount":30,"totalTokenCount":1430},"modelVersion":"gemini-2.5-flash","responseId":"r-1","createTime":"2026-01-01T00:00:00Z"}"#;
        let (snap, _) = report(&[line]);
        let t = &snap.totals;
        assert_eq!(t.uncached_input_tokens, 230);
        assert_eq!(t.cache_read_tokens, 1000);
        assert_eq!(t.input_tokens, 1230);
        assert_eq!(t.output_tokens, 200);
        assert_eq!(t.reasoning_tokens, 150);
        assert_eq!(t.total_tokens, 1430);
        assert_eq!(&*snap.by_model[0].name, "gemini-2.5-flash");
        assert_eq!(snap.first_ts_ms, Some(1_767_225_600_000));
        // gemini-2.5-flash: $0.30 in, $0.03 cached, $2.50 out per MTok.
        let expected = Usd::for_tokens(230, 300_000)
            + Usd::for_tokens(1000, 30_000)
            + Usd::for_tokens(200, 2_500_000);
        assert_eq!(t.cost, expected);
    }

    #[test]
    fn stream_chunks_repeat_usage_and_count_once() {
        let chunk = |out: u64| {
            format!(
                r#"{{"candidates":[{{"content":{{"parts":[{{"text":"x"}}]}}}}],"usageMetadata":{{"promptTokenCount":10,"candidatesTokenCount":{out},"totalTokenCount":{}}},"modelVersion":"gemini-2.5-pro","responseId":"stream-1"}}"#,
                10 + out
            )
        };
        let lines: Vec<String> = [2, 9, 30].into_iter().map(chunk).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (snap, _) = report(&refs);
        assert_eq!(snap.totals.events, 1);
        assert_eq!(snap.totals.output_tokens, 30);
    }

    #[test]
    fn stream_chunks_without_a_response_id_count_once_per_stream() {
        let chunk = |out: u64, finished: bool| {
            let reason = if finished {
                r#","finishReason":"STOP""#
            } else {
                ""
            };
            format!(
                r#"{{"candidates":[{{"content":{{"parts":[{{"text":"x"}}]}}{reason}}}],"usageMetadata":{{"promptTokenCount":10,"candidatesTokenCount":{out}}},"modelVersion":"gemini-2.5-pro"}}"#
            )
        };
        let lines = [
            chunk(2, false),
            chunk(9, false),
            chunk(30, true),
            chunk(4, true),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (snap, _) = report(&refs);
        assert_eq!(snap.totals.events, 2, "one stream, then one whole response");
        assert_eq!(snap.totals.output_tokens, 34);
    }

    #[test]
    fn sdk_snake_case_and_bad_cache_counts() {
        let line = r#"{"usage_metadata":{"prompt_token_count":10,"candidates_token_count":5},"model_version":"gemini-2.5-pro","response_id":"s"}"#;
        let (snap, _) = report(&[line]);
        assert_eq!(snap.totals.total_tokens, 15);
        let bad = r#"{"usageMetadata":{"promptTokenCount":10,"cachedContentTokenCount":11},"modelVersion":"gemini-2.5-pro"}"#;
        let (_, stats) = report(&[bad]);
        assert_eq!(stats.malformed, 1);
        assert!(
            stats.malformed_samples[0]
                .reason
                .starts_with("gemini: cachedContentTokenCount")
        );
    }
}
