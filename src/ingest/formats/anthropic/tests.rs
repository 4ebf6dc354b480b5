//! Anthropic shapes, traps (formats.md §8 1, 2, 4, 9) and oracles C, D, F.

use crate::ingest::formats::tests::report;
use crate::types::Usd;

fn usd(text: &str) -> Usd {
    Usd::parse_decimal(text).unwrap()
}

#[test]
fn a_stream_pairs_start_and_delta_and_never_adds_the_placeholder() {
    let lines = [
        "event: message_start",
        r#"data: {"type":"message_start","message":{"id":"msg_01Pvyf26bY17RcjmWfJsXGBn","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":18,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}       }"#,
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        r#"data: {"type":"ping"}"#,
        r#"data: {"type":"content_block_stop","index":0}"#,
        "event: message_delta",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":240}     }"#,
        r#"data: {"type":"message_stop"}"#,
    ];
    let (snap, stats) = report(&lines);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.input_tokens, 18);
    assert_eq!(snap.totals.output_tokens, 240, "overwritten, not 1 + 240");
    assert_eq!(&*snap.by_model[0].name, "claude-sonnet-4-20250514");
    assert_eq!(stats.events, 1);
    assert_eq!(stats.lines, 9);
    assert_eq!(stats.malformed, 0);
}

#[test]
fn a_second_cumulative_delta_replaces_the_first() {
    let lines = [
        r#"{"type":"message_start","message":{"id":"msg_2","model":"claude-haiku-4-5-20251001","usage":{"input_tokens":10,"output_tokens":1}}}"#,
        r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":50}}"#,
        r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":75,"input_tokens":12}}"#,
        r#"{"type":"message_stop"}"#,
    ];
    let (snap, stats) = report(&lines);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.output_tokens, 75);
    assert_eq!(snap.totals.input_tokens, 12);
    assert_eq!(stats.revised, 1);
}

#[test]
fn a_stream_without_a_message_id_still_counts_once() {
    let lines = [
        r#"{"type":"message_start","message":{"model":"claude-haiku-4-5-20251001","usage":{"input_tokens":10,"output_tokens":1}}}"#,
        r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":50}}"#,
        r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":75}}"#,
    ];
    let (snap, _) = report(&lines);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.output_tokens, 75);
}

#[test]
fn a_cut_stream_counts_what_its_start_said_and_a_lone_delta_is_located() {
    let (snap, _) = report(&[
        r#"{"type":"message_start","message":{"id":"msg_3","model":"claude-haiku-4-5-20251001","usage":{"input_tokens":900,"output_tokens":1}}}"#,
    ]);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.input_tokens, 900);
    let (snap, stats) =
        report(&[r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":5}}"#]);
    assert_eq!(snap.totals.events, 0);
    assert_eq!(stats.malformed, 1);
    assert!(
        stats.malformed_samples[0]
            .reason
            .starts_with("anthropic: message_delta without a message_start"),
        "{}",
        stats.malformed_samples[0].reason
    );
}

#[test]
fn oracle_c_writes_without_a_breakdown_are_five_minute_writes() {
    let line = r#"{"id":"msg_C","type":"message","model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":3,"cache_creation_input_tokens":141272,"cache_read_input_tokens":0,"output_tokens":365,"service_tier":"standard","server_tool_use":null}}"#;
    let (snap, _) = report(&[line]);
    assert_eq!(snap.totals.uncached_input_tokens, 3, "already uncached");
    assert_eq!(snap.totals.cache_write_tokens, 141_272);
    assert_eq!(snap.totals.cache_write_1h_tokens, 0);
    assert_eq!(snap.totals.cost, usd("0.535254"));
}

#[test]
fn oracle_d_the_breakdown_by_lifetime_wins_over_the_flat_count() {
    // 5m 10 at 1.25×, 1h 20 at 2×, reads 30 at 0.1× (haiku 4.5: $1/MTok input).
    let line = r#"{"id":"msg_D","type":"message","model":"claude-haiku-4-5-20251001","usage":{"input_tokens":0,"cache_creation_input_tokens":999,"cache_read_input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20},"output_tokens":0}}"#;
    let (snap, _) = report(&[line]);
    assert_eq!(snap.totals.cache_write_tokens, 30);
    assert_eq!(snap.totals.cache_write_1h_tokens, 20);
    // 10×1.25 + 20×2 + 30×0.1 = 55.5 input-token prices of $1e-6.
    assert_eq!(snap.totals.cost, usd("0.0000555"));
}

#[test]
fn oracle_f_long_context_is_all_or_nothing_on_total_input() {
    let line = r#"{"id":"msg_F","type":"message","model":"claude-sonnet-4-20250514","usage":{"input_tokens":150000,"cache_read_input_tokens":60000,"output_tokens":1000}}"#;
    let (snap, _) = report(&[line]);
    assert_eq!(snap.totals.cost, usd("0.9585"));
    assert_eq!(snap.totals.long_context_events, 1);
}

#[test]
fn thinking_is_inside_the_output() {
    let ok = r#"{"id":"m1","type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":5,"output_tokens":100,"output_tokens_details":{"thinking_tokens":60}}}"#;
    let (snap, _) = report(&[ok]);
    assert_eq!(snap.totals.output_tokens, 100);
    assert_eq!(snap.totals.reasoning_tokens, 60);
    let bad = r#"{"id":"m2","type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":5,"output_tokens":10,"output_tokens_details":{"thinking_tokens":60}}}"#;
    let (_, stats) = report(&[bad]);
    assert_eq!(stats.malformed, 1);
}

#[test]
fn web_searches_are_not_tokens() {
    let line = r#"{"id":"m3","type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":5,"output_tokens":10,"server_tool_use":{"web_search_requests":3,"web_fetch_requests":1}}}"#;
    let (snap, _) = report(&[line]);
    assert_eq!(snap.totals.total_tokens, 15);
}

#[test]
fn an_envelope_labels_an_anthropic_response() {
    let line = r#"{"ts":1767225600000,"request":{"model":"claude-sonnet-4-5","metadata":{"user_id":"u-9"}},"response":{"id":"msg_E","type":"message","model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":3,"output_tokens":365}},"run_id":"r-1","agent":"critic"}"#;
    let (snap, _) = report(&[line]);
    assert_eq!(&*snap.runs[0].run_id, "r-1");
    assert_eq!(snap.runs[0].user.as_deref(), Some("u-9"));
    assert_eq!(&*snap.by_agent[0].name, "critic");
    assert_eq!(snap.first_ts_ms, Some(1_767_225_600_000));
}
