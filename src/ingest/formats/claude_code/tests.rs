//! Claude Code lines (formats.md §3.3, written afresh in the documented
//! shapes), traps §8.5–6, oracles C and G, and where tokwatch differs from
//! ccusage on purpose.

use crate::ingest::formats::tests::{decode_all, report};
use crate::ingest::formats::{Decoder, Outcome};
use crate::types::Usd;
use crate::types::event::Format;

fn usd(text: &str) -> Usd {
    Usd::parse_decimal(text).unwrap()
}

/// An assistant line of session `session`.
#[allow(clippy::too_many_arguments)]
fn assistant(
    session: &str,
    message: &str,
    request: Option<&str>,
    sidechain: bool,
    model: &str,
    usage: &str,
    block: &str,
) -> String {
    let request = request.map_or(String::new(), |r| format!(r#""requestId":"{r}","#));
    let agent = if sidechain {
        r#""agentId":"a06eeeb7","#
    } else {
        ""
    };
    format!(
        r#"{{"parentUuid":"p-1","isSidechain":{sidechain},{agent}"userType":"external","cwd":"/home/dev/src/shop","sessionId":"{session}","version":"2.1.81","gitBranch":"main","message":{{"id":"{message}","type":"message","role":"assistant","model":"{model}","content":[{block}],"stop_reason":null,"stop_sequence":null,"usage":{usage}}},{request}"type":"assistant","uuid":"u-{message}","timestamp":"2026-03-02T10:00:00.000Z"}}"#
    )
}

const TEXT: &str = r#"{"type":"text","text":"Let me look at \"main.rs\"…"}"#;
const TOOL: &str = r#"{"type":"tool_use","id":"toolu_1","name":"Read","input":{"file_path":"/home/dev/src/shop/main.rs","usage":"not a usage"}}"#;

fn usage(output: u64) -> String {
    format!(
        r#"{{"input_tokens":10,"cache_creation_input_tokens":38477,"cache_read_input_tokens":21339,"cache_creation":{{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":38477}},"output_tokens":{output},"service_tier":"standard"}}"#
    )
}

const USER: &str = r#"{"parentUuid":"u-m1","isSidechain":false,"userType":"external","cwd":"/home/dev/src/shop","sessionId":"s-1","version":"2.1.81","type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_1","type":"tool_result","content":"fn main() {\n    println!(\"usage\": {});\n}"}]},"uuid":"u-2","timestamp":"2026-03-02T10:00:01.000Z","toolUseResult":{"type":"text","file":{"filePath":"main.rs","numLines":3}}}"#;

#[test]
fn oracle_g_streamed_blocks_are_one_hop_with_the_final_output() {
    let lines = [
        assistant(
            "s-1",
            "msg_1",
            Some("req_1"),
            false,
            "claude-sonnet-4-5-20250929",
            &usage(4),
            TEXT,
        ),
        assistant(
            "s-1",
            "msg_1",
            Some("req_1"),
            false,
            "claude-sonnet-4-5-20250929",
            &usage(131),
            TOOL,
        ),
        assistant(
            "s-1",
            "msg_1",
            Some("req_1"),
            false,
            "claude-sonnet-4-5-20250929",
            &usage(254),
            TOOL,
        ),
        USER.to_owned(),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (snap, stats) = report(&refs);
    let t = &snap.totals;
    assert_eq!(t.events, 1);
    assert_eq!(t.output_tokens, 254, "not 4 + 131 + 254");
    assert_eq!(t.uncached_input_tokens, 10);
    assert_eq!(t.cache_write_1h_tokens, 38_477);
    assert_eq!(t.cache_read_tokens, 21_339);
    assert_eq!(stats.revised, 2);
    assert_eq!(stats.ignored, 1, "the user line");
    assert_eq!(stats.malformed, 0);
    let run = &snap.runs[0];
    assert_eq!(&*run.run_id, "s-1");
    assert_eq!(run.segment.as_deref(), Some("/home/dev/src/shop"));
    assert_eq!(run.hops.len(), 1);
    assert_eq!(&*run.hops[0].agent, "main");
    assert_eq!(snap.by_format[0].0, Format::ClaudeCode);
}

#[test]
fn oracle_c_a_line_without_the_breakdown_writes_for_five_minutes() {
    let usage = r#"{"input_tokens":3,"cache_creation_input_tokens":141272,"cache_read_input_tokens":0,"output_tokens":365,"service_tier":"standard","server_tool_use":null}"#;
    let line = assistant(
        "s",
        "msg_C",
        Some("req_C"),
        false,
        "claude-sonnet-4-5-20250929",
        usage,
        TOOL,
    );
    let (snap, _) = report(&[&line]);
    assert_eq!(snap.totals.cost, usd("0.535254"));
}

#[test]
fn resumed_sessions_copy_messages_that_count_once() {
    let first = assistant(
        "s-old",
        "msg_1",
        Some("req_1"),
        false,
        "claude-haiku-4-5-20251001",
        &usage(50),
        TEXT,
    );
    let copy = assistant(
        "s-new",
        "msg_1",
        Some("req_1"),
        false,
        "claude-haiku-4-5-20251001",
        &usage(50),
        TEXT,
    );
    let next = assistant(
        "s-new",
        "msg_2",
        Some("req_2"),
        false,
        "claude-haiku-4-5-20251001",
        &usage(7),
        TEXT,
    );
    let (snap, stats) = report(&[&first, &copy, &next]);
    assert_eq!(snap.totals.events, 2);
    assert_eq!(stats.duplicates, 1);
    assert_eq!(snap.runs.len(), 2);
}

#[test]
fn a_sidechain_replay_counts_once_and_subagents_are_child_agents() {
    let parent = assistant(
        "s",
        "msg_p",
        Some("req_p"),
        false,
        "claude-sonnet-4-5",
        &usage(100),
        TOOL,
    );
    // The sub-agent's file starts by replaying the parent's message under a
    // new request id; its own messages have their own ids.
    let replay = assistant(
        "s",
        "msg_p",
        Some("req_x"),
        true,
        "claude-sonnet-4-5",
        &usage(100),
        TOOL,
    );
    let own = assistant(
        "s",
        "msg_s",
        Some("req_s"),
        true,
        "claude-sonnet-4-5",
        &usage(30),
        TEXT,
    );
    for order in [[&parent, &replay, &own], [&replay, &own, &parent]] {
        let (snap, _) = report(&order.map(String::as_str));
        assert_eq!(snap.totals.events, 2, "{order:?}");
        assert_eq!(snap.totals.output_tokens, 130);
        let agents: Vec<(&str, u64)> = snap
            .by_agent
            .iter()
            .map(|a| (&*a.name, a.counters.events))
            .collect();
        assert_eq!(agents, vec![("main", 1), ("subagent", 1)]);
        let sub = snap.runs[0]
            .hops
            .iter()
            .find(|h| &*h.agent == "subagent")
            .unwrap();
        assert_eq!(sub.labels.parent_agent.as_deref(), Some("main"));
    }
}

#[test]
fn without_a_request_id_the_message_id_alone_dedupes() {
    let a = assistant(
        "s",
        "chatcmpl-gw",
        None,
        false,
        "claude-sonnet-4-5",
        &usage(10),
        TEXT,
    );
    let b = assistant(
        "s",
        "chatcmpl-gw",
        None,
        false,
        "claude-sonnet-4-5",
        &usage(12),
        TOOL,
    );
    let (snap, _) = report(&[&a, &b]);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.output_tokens, 12);
}

#[test]
fn synthetic_and_api_error_lines_are_not_calls() {
    let synthetic = r#"{"parentUuid":"x","isSidechain":false,"sessionId":"s","type":"assistant","message":{"id":"27a26c22-aaaa","model":"<synthetic>","role":"assistant","content":[{"type":"text","text":"API Error"}],"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}},"requestId":"req_011Ccu6VkxhLpaRaY1FW5mxw","error":"rate_limit","isApiErrorMessage":true,"apiErrorStatus":429,"timestamp":"2026-03-02T10:00:00.000Z"}"#;
    let summary =
        r#"{"type":"summary","summary":"Refactor the \"usage\" parser","leafUuid":"u-9"}"#;
    let snapshot = r#"{"type":"file-history-snapshot","messageId":"m","snapshot":{"trackedFileBackups":{}},"isSnapshotUpdate":false}"#;
    let mut decoder = Decoder::plain("t");
    let (outcomes, events) = decode_all(&mut decoder, &[synthetic, summary, snapshot, USER]);
    assert!(events.is_empty());
    assert!(
        outcomes
            .iter()
            .all(|o| *o == Outcome::Ignored(Format::ClaudeCode)),
        "{outcomes:?}"
    );
}

#[test]
fn lines_without_a_type_are_read_by_their_usage() {
    // ccusage's fixtures carry no `type`.
    let line = r#"{"timestamp":"2026-01-09T10:00:00.000Z","sessionId":"session-alpha","message":{"role":"assistant","id":"msg-alpha-1","model":"claude-sonnet-4-20250514","usage":{"input_tokens":100,"output_tokens":50,"cache_creation_input_tokens":25,"cache_read_input_tokens":10}},"requestId":"req-alpha-1","costUSD":0.12,"version":"1.0.0"}"#;
    let (snap, _) = report(&[line]);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.total_tokens, 185);
    // Old versions reported their cost: kept as reported.
    assert_eq!(snap.totals.reported_cost, usd("0.12"));
}

#[test]
fn a_truncated_line_is_malformed_and_located() {
    let whole = assistant(
        "s",
        "msg_1",
        Some("r"),
        false,
        "claude-sonnet-4-5",
        &usage(5),
        TEXT,
    );
    let cut = &whole[..whole.len() - 20];
    let cut_user = &USER[..40];
    let (snap, stats) = report(&[&whole, cut, cut_user]);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(stats.malformed, 2);
    assert_eq!(stats.malformed_samples[0].location, "t.jsonl:2");
    assert!(
        stats.malformed_samples[0]
            .reason
            .starts_with("claude-code: invalid JSON")
    );
    assert_eq!(stats.malformed_samples[1].location, "t.jsonl:3");
    assert!(
        stats.malformed_samples[1]
            .reason
            .starts_with("claude-code: not a JSON object")
    );
}

/// Where tokwatch and ccusage (20.0.24) differ on purpose: the long-context
/// premium applies to every token of a request whose input exceeds 200k
/// (Anthropic's and LiteLLM's rule), where ccusage charges the premium only
/// on the tokens of each type above 200k.
#[test]
fn long_context_is_billed_per_request_unlike_ccusage() {
    let usage = r#"{"input_tokens":150000,"cache_read_input_tokens":60000,"output_tokens":1000}"#;
    let line = assistant(
        "s",
        "msg_F",
        Some("req_F"),
        false,
        "claude-sonnet-4-20250514",
        usage,
        TEXT,
    );
    let (snap, _) = report(&[&line]);
    assert_eq!(snap.totals.cost, usd("0.9585"), "ccusage would say 0.483");
}

#[test]
fn the_leading_type_is_read_only_before_nested_values() {
    use super::leading_type;
    assert_eq!(
        leading_type(
            br#"{"parentUuid":null,"sessionId":"s","type":"user","message":{"type":"x"}}"#
        ),
        Some(&b"user"[..])
    );
    assert_eq!(
        leading_type(br#"{"message":{"type":"message","usage":{}},"type":"assistant"}"#),
        None,
        "a type inside the message is not the line's"
    );
    assert_eq!(leading_type(br#"{"cwd":"C:\\{x}","type":"user"}"#), None);
    assert_eq!(
        leading_type(br#"{ "type" : "summary", "summary": "x" }"#),
        Some(&b"summary"[..])
    );
    // A user line whose tool result carries a usage is still no call.
    let user = r#"{"parentUuid":"a","isSidechain":false,"sessionId":"s","type":"user","message":{"role":"user","content":[{"type":"tool_result","content":"done"}]},"toolUseResult":{"usage":{"input_tokens":5,"output_tokens":5}},"timestamp":"2026-03-02T10:00:00.000Z"}"#;
    let (snap, stats) = report(&[user]);
    assert_eq!(snap.totals.events, 0);
    assert_eq!(stats.ignored, 1);
}
