//! OpenAI shapes, traps (formats.md §8 1–3) and oracles A and B (§9).

use crate::ingest::formats::tests::{decode_all, report};
use crate::ingest::formats::{Decoder, Outcome};
use crate::types::Usd;
use crate::types::event::Format;

fn usd(text: &str) -> Usd {
    Usd::parse_decimal(text).unwrap()
}

/// Oracle A: a gpt-4o-mini chat completion, cached tokens inside the prompt.
const CHAT: &str = r#"{"id":"chatcmpl-A","object":"chat.completion","created":1753357673,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4263,"completion_tokens":529,"total_tokens":4792,"prompt_tokens_details":{"cached_tokens":4096,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#;

#[test]
fn oracle_a_chat_completion() {
    let (snap, stats) = report(&[CHAT]);
    let t = &snap.totals;
    assert_eq!(t.events, 1);
    assert_eq!(t.uncached_input_tokens, 167);
    assert_eq!(t.cache_read_tokens, 4096);
    assert_eq!(t.output_tokens, 529);
    assert_eq!(t.cost, usd("0.00064965"));
    assert_eq!(snap.by_format[0].0, Format::OpenAi);
    assert_eq!(stats.sources[0].formats.get("openai"), Some(&1));
    assert_eq!(snap.first_ts_ms, Some(1_753_357_673_000));
}

/// Oracle B: a Responses API object (gpt-5.2-codex) from its `response.completed` event.
#[test]
fn oracle_b_responses_completed_event() {
    let lines = [
        r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_B","object":"response","created_at":1760000000,"status":"in_progress","model":"gpt-5.2-codex","usage":null}}"#,
        r#"{"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}"#,
        r#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_B","object":"response","created_at":1760000000,"status":"completed","model":"gpt-5.2-codex","output":[],"usage":{"input_tokens":16909,"input_tokens_details":{"cached_tokens":15744},"output_tokens":54,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":16963}}}"#,
    ];
    let mut decoder = Decoder::plain("t");
    let (outcomes, events) = decode_all(&mut decoder, &lines);
    assert_eq!(
        outcomes,
        vec![
            Outcome::Ignored(Format::OpenAi),
            Outcome::Ignored(Format::OpenAi),
            Outcome::Events(Format::OpenAi),
        ]
    );
    assert_eq!(events[0].1.status.as_deref(), Some("completed"));
    let (snap, stats) = report(&lines);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.uncached_input_tokens, 1165);
    assert_eq!(snap.totals.cost, usd("0.00554995"));
    assert_eq!(stats.ignored, 2);
    assert_eq!(stats.events, 1);
}

#[test]
fn reasoning_is_inside_the_output_and_never_billed_twice() {
    let line = r#"{"id":"resp_R","object":"response","created_at":1760000000,"model":"gpt-5","usage":{"input_tokens":64,"input_tokens_details":{"cached_tokens":0},"output_tokens":340,"output_tokens_details":{"reasoning_tokens":320},"total_tokens":404}}"#;
    let (snap, _) = report(&[line]);
    assert_eq!(snap.totals.output_tokens, 340);
    assert_eq!(snap.totals.reasoning_tokens, 320);
    assert_eq!(snap.totals.total_tokens, 404);
}

#[test]
fn a_stream_counts_its_final_usage_chunk_once() {
    let lines = [
        r#"data: {"id":"chatcmpl-S","object":"chat.completion.chunk","created":1753357673,"model":"gpt-4.1-2025-04-14","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}"#,
        r#"data: {"id":"chatcmpl-S","object":"chat.completion.chunk","created":1753357673,"model":"gpt-4.1-2025-04-14","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
        r#"data: {"id":"chatcmpl-S","object":"chat.completion.chunk","created":1753357673,"model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_51e1070cf2","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":238,"total_tokens":257,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#,
        "data: [DONE]",
        "",
    ];
    let (snap, stats) = report(&lines);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.input_tokens, 19);
    assert_eq!(snap.totals.output_tokens, 238);
    assert_eq!(stats.ignored, 3);
    assert_eq!(stats.blank, 1);
}

#[test]
fn cumulative_usage_on_every_chunk_is_taken_once_not_summed() {
    // vLLM's continuous usage stats: each chunk carries the running total.
    let chunk = |out: u64| {
        format!(
            r#"{{"id":"cmpl-v","object":"chat.completion.chunk","created":1760000000,"model":"gpt-4o","choices":[],"usage":{{"prompt_tokens":100,"completion_tokens":{out},"total_tokens":{}}}}}"#,
            100 + out
        )
    };
    let lines: Vec<String> = [1, 2, 5, 40].into_iter().map(chunk).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (snap, stats) = report(&refs);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.output_tokens, 40);
    assert_eq!(stats.revised, 3);
}

#[test]
fn a_gateway_envelope_names_run_agent_segment_and_user() {
    let line = r#"{"timestamp":"2026-02-01T10:00:00Z","request":{"model":"gpt-4o-mini","user":"user-42","messages":[{"role":"user","content":"hi"}]},"response":{"id":"chatcmpl-E","object":"chat.completion","created":1753357673,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":4263,"completion_tokens":529,"total_tokens":4792,"prompt_tokens_details":{"cached_tokens":4096}}},"metadata":{"run_id":"run-7","agent":"researcher","segment":"enterprise","hop":2},"latency_ms":950}"#;
    let (snap, _) = report(&[line]);
    let run = &snap.runs[0];
    assert_eq!(&*run.run_id, "run-7");
    assert_eq!(run.segment.as_deref(), Some("enterprise"));
    assert_eq!(run.user.as_deref(), Some("user-42"));
    assert_eq!(run.hops[0].hop, 2);
    assert_eq!(&*run.hops[0].agent, "researcher");
    assert_eq!(run.hops[0].latency_ms, Some(950));
    assert_eq!(run.first_ts_ms, Some(1_769_940_000_000));
    assert_eq!(snap.totals.cost, usd("0.00064965"));
}

#[test]
fn bare_responses_without_labels_form_one_run_per_source_and_day() {
    let (snap, _) = report(&[CHAT, &CHAT.replace("chatcmpl-A", "chatcmpl-A2")]);
    assert_eq!(snap.runs.len(), 1);
    assert_eq!(&*snap.runs[0].run_id, "auto:t.jsonl:2025-07-24");
    assert_eq!(snap.runs[0].hops.len(), 2);
    assert_eq!(&*snap.by_agent[0].name, "unknown");
}

#[test]
fn hidden_thinking_in_the_total_is_billed_as_reasoning_output() {
    // Gemini's OpenAI-compatible endpoint leaves thinking out of completion_tokens.
    let line = r#"{"id":"g1","object":"chat.completion","created":1760000000,"model":"gemini-2.5-flash","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":45}}"#;
    let (snap, _) = report(&[line]);
    assert_eq!(snap.totals.output_tokens, 35);
    assert_eq!(snap.totals.reasoning_tokens, 30);
    assert_eq!(snap.totals.total_tokens, 45);
}

#[test]
fn inconsistent_counts_are_rejected_with_a_reason_naming_the_format() {
    let lines = [
        r#"{"id":"x","object":"chat.completion","model":"gpt-4o","usage":{"prompt_tokens":10,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":11}}}"#,
        r#"{"id":"y","object":"chat.completion","model":"gpt-4o","usage":{"prompt_tokens":10,"completion_tokens":1,"completion_tokens_details":{"reasoning_tokens":2}}}"#,
        r#"{"id":"z","object":"chat.completion","model":"gpt-4o","usage":{"prompt_tokens":-3,"completion_tokens":1}}"#,
        r#"{"id":"w","object":"chat.completion","model":"gpt-4o","usage":{"prompt_tokens":10"#,
    ];
    let (snap, stats) = report(&lines);
    assert_eq!(snap.totals.events, 0);
    assert_eq!(stats.malformed, 4);
    let reasons: Vec<&str> = stats
        .malformed_samples
        .iter()
        .map(|s| s.reason.as_str())
        .collect();
    assert!(
        reasons.iter().all(|r| r.starts_with("openai: ")),
        "{reasons:?}"
    );
    assert!(reasons[0].contains("exceed prompt_tokens"), "{reasons:?}");
    assert!(reasons[1].contains("reasoning_tokens (2) exceed completion_tokens"));
    assert!(reasons[2].contains("negative"), "{reasons:?}");
    assert!(reasons[3].contains("invalid JSON"), "{reasons:?}");
    assert_eq!(stats.malformed_samples[3].location, "t.jsonl:4");
}

#[test]
fn a_reported_gateway_cost_is_kept_beside_the_list_price() {
    let line = r#"{"id":"gen-1","object":"chat.completion","created":1760000000,"model":"openai/gpt-4o-mini","usage":{"prompt_tokens":4263,"completion_tokens":529,"total_tokens":4792,"prompt_tokens_details":{"cached_tokens":4096},"cost":0.0007}}"#;
    let (snap, _) = report(&[line]);
    assert_eq!(snap.totals.reported_cost, usd("0.0007"));
    assert_eq!(snap.totals.computed_cost, usd("0.00064965"));
    assert_eq!(snap.totals.cost, usd("0.0007"));
}
