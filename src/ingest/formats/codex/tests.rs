//! Codex session logs: cumulative totals, re-emits, resets, forks (formats.md
//! §4.3, §8.7) and oracle E.

use crate::ingest::formats::tests::{report, report_sources};
use crate::types::Usd;

fn token_count(ts: &str, total: [u64; 4], last: [u64; 4], model: Option<&str>) -> String {
    let usage = |u: [u64; 4]| {
        format!(
            r#"{{"input_tokens":{},"cached_input_tokens":{},"output_tokens":{},"reasoning_output_tokens":{},"total_tokens":{}}}"#,
            u[0],
            u[1],
            u[2],
            u[3],
            u[0] + u[2]
        )
    };
    let model = model.map_or(String::new(), |m| format!(r#""model":"{m}","#));
    format!(
        r#"{{"timestamp":"{ts}","type":"event_msg","payload":{{"type":"token_count","info":{{{model}"total_token_usage":{},"last_token_usage":{},"model_context_window":272000}},"rate_limits":null}}}}"#,
        usage(total),
        usage(last)
    )
}

const META: &str = r#"{"timestamp":"2026-05-13T09:00:00.000Z","type":"session_meta","payload":{"id":"019a-sess","timestamp":"2026-05-13T09:00:00.000Z","cwd":"/home/dev/src/api","originator":"codex_cli_rs","cli_version":"0.58.0","source":"cli","model_provider":"openai"}}"#;
const TURN: &str = r#"{"timestamp":"2026-05-13T09:00:01.000Z","type":"turn_context","payload":{"cwd":"/home/dev/src/api","approval_policy":"on-request","sandbox_policy":{"mode":"workspace-write"},"model":"gpt-5-codex","effort":"medium","summary":"auto"}}"#;

#[test]
fn cumulative_totals_become_per_call_deltas_and_re_emits_are_skipped() {
    let lines = [
        META.to_owned(),
        TURN.to_owned(),
        token_count("2026-05-13T09:01:00.000Z", [1000, 250, 125, 75], [1000, 250, 125, 75], None),
        // A rate-limit refresh: the same totals again.
        token_count("2026-05-13T09:01:05.000Z", [1000, 250, 125, 75], [1000, 250, 125, 75], None),
        token_count("2026-05-14T10:00:00.000Z", [3500, 750, 425, 275], [2500, 500, 300, 200], Some("gpt-5.1-codex")),
        r#"{"timestamp":"2026-05-14T10:00:01.000Z","type":"event_msg","payload":{"type":"token_count","info":null,"rate_limits":{"primary":{"used_percent":12.0}}}}"#.to_owned(),
        r#"{"timestamp":"2026-05-14T10:00:02.000Z","type":"response_item","payload":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"done"}]}}"#.to_owned(),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (snap, stats) = report(&refs);
    let t = &snap.totals;
    assert_eq!(t.events, 2);
    assert_eq!(t.input_tokens, 3500, "1000 + 2500, not 1000 + 1000 + 3500");
    assert_eq!(t.cache_read_tokens, 750);
    assert_eq!(t.output_tokens, 425);
    assert_eq!(t.reasoning_tokens, 275);
    assert_eq!(stats.ignored, 5);
    let run = &snap.runs[0];
    assert_eq!(&*run.run_id, "019a-sess");
    assert_eq!(run.segment.as_deref(), Some("/home/dev/src/api"));
    assert_eq!(&*run.hops[0].model, "gpt-5-codex");
    assert_eq!(
        &*run.hops[1].model, "gpt-5.1-codex",
        "the event's own model wins"
    );
    assert_eq!(&*run.hops[0].agent, "codex");
}

#[test]
fn oracle_e_priced_as_gpt_5_codex() {
    let line = token_count(
        "2026-05-13T09:01:00.000Z",
        [24763, 24448, 122, 0],
        [24763, 24448, 122, 0],
        None,
    );
    let (snap, _) = report(&[META, TURN, &line]);
    assert_eq!(snap.totals.uncached_input_tokens, 315);
    assert_eq!(snap.totals.cost, Usd::parse_decimal("0.00466975").unwrap());
}

#[test]
fn falling_totals_count_the_event_s_own_usage() {
    let lines = [
        META.to_owned(),
        TURN.to_owned(),
        token_count(
            "2026-05-13T09:01:00.000Z",
            [5000, 0, 100, 0],
            [5000, 0, 100, 0],
            None,
        ),
        // Compaction restarted the totals.
        token_count(
            "2026-05-13T09:02:00.000Z",
            [800, 0, 40, 0],
            [800, 0, 40, 0],
            None,
        ),
        token_count(
            "2026-05-13T09:03:00.000Z",
            [1800, 0, 90, 0],
            [1000, 0, 50, 0],
            None,
        ),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (snap, _) = report(&refs);
    assert_eq!(snap.totals.events, 3);
    assert_eq!(snap.totals.input_tokens, 5000 + 800 + 1000);
    assert_eq!(snap.totals.output_tokens, 100 + 40 + 50);
}

#[test]
fn a_fork_replays_its_parent_in_its_first_second_and_that_is_not_counted() {
    let parent = [
        META.to_owned(),
        TURN.to_owned(),
        token_count(
            "2026-05-13T09:01:00.000Z",
            [1000, 0, 100, 0],
            [1000, 0, 100, 0],
            None,
        ),
        token_count(
            "2026-05-13T09:02:00.000Z",
            [3000, 1000, 150, 0],
            [2000, 1000, 50, 0],
            None,
        ),
    ];
    let fork = [
        META.replace("019a-sess", "019b-fork"),
        META.to_owned(),
        TURN.to_owned(),
        token_count(
            "2026-05-13T09:05:00.100Z",
            [1000, 0, 100, 0],
            [1000, 0, 100, 0],
            None,
        ),
        token_count(
            "2026-05-13T09:05:00.300Z",
            [3000, 1000, 150, 0],
            [2000, 1000, 50, 0],
            None,
        ),
        token_count(
            "2026-05-13T09:06:10.000Z",
            [4500, 2000, 170, 0],
            [1500, 1000, 20, 0],
            None,
        ),
    ];
    let parent: Vec<&str> = parent.iter().map(String::as_str).collect();
    let fork: Vec<&str> = fork.iter().map(String::as_str).collect();
    let (snap, stats) = report_sources(Default::default(), &[&parent, &fork]);
    assert_eq!(
        snap.totals.events, 3,
        "two parent calls, one of the fork's own"
    );
    assert_eq!(snap.totals.input_tokens, 3000 + 1500);
    let agents: Vec<&str> = snap.by_agent.iter().map(|a| &*a.name).collect();
    assert_eq!(agents, vec!["codex", "subagent"]);
    assert_eq!(stats.malformed, 0);
}

#[test]
fn a_burst_across_a_second_boundary_is_one_replay_and_a_lone_first_call_is_the_child_s_own() {
    let sub = r#"{"timestamp":"2026-05-13T09:00:00.000Z","type":"session_meta","payload":{"id":"019c-sub","cwd":"/p","source":{"subagent":{"parent":"019a-sess"}}}}"#;
    // Replayed from 09:05:00.900 to 09:05:01.300: one burst.
    let burst = [
        sub.to_owned(),
        TURN.to_owned(),
        token_count(
            "2026-05-13T09:05:00.900Z",
            [1000, 0, 100, 0],
            [1000, 0, 100, 0],
            None,
        ),
        token_count(
            "2026-05-13T09:05:01.300Z",
            [3000, 1000, 150, 0],
            [2000, 1000, 50, 0],
            None,
        ),
        token_count(
            "2026-05-13T09:06:10.000Z",
            [4500, 2000, 170, 0],
            [1500, 1000, 20, 0],
            None,
        ),
    ];
    let burst: Vec<&str> = burst.iter().map(String::as_str).collect();
    let (snap, _) = report_sources(Default::default(), &[&burst]);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.input_tokens, 1500);
    assert_eq!(&*snap.by_agent[0].name, "subagent");
    // A sub-agent that replays nothing: its first call counts, held until
    // its window closes (by a later call or the end of the file).
    for own in [
        vec![
            sub.to_owned(),
            TURN.to_owned(),
            token_count(
                "2026-05-13T09:05:00.000Z",
                [700, 0, 70, 0],
                [700, 0, 70, 0],
                None,
            ),
        ],
        vec![
            sub.to_owned(),
            TURN.to_owned(),
            token_count(
                "2026-05-13T09:05:00.000Z",
                [700, 0, 70, 0],
                [700, 0, 70, 0],
                None,
            ),
            token_count(
                "2026-05-13T09:07:00.000Z",
                [1700, 0, 90, 0],
                [1000, 0, 20, 0],
                None,
            ),
        ],
    ] {
        let own: Vec<&str> = own.iter().map(String::as_str).collect();
        let (snap, _) = report_sources(Default::default(), &[&own]);
        assert_eq!(snap.totals.input_tokens, own.len() as u64 / 4 * 1000 + 700);
    }
}

#[test]
fn an_archived_copy_of_a_session_counts_once() {
    let lines = [
        META.to_owned(),
        TURN.to_owned(),
        token_count(
            "2026-05-13T09:01:00.000Z",
            [1000, 0, 100, 0],
            [1000, 0, 100, 0],
            None,
        ),
    ];
    let copy: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (snap, stats) = report_sources(Default::default(), &[&copy, &copy]);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(stats.duplicates, 1);
}

#[test]
fn codex_exec_json_turns() {
    let lines = [
        r#"{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}"#,
        r#"{"type":"turn.started"}"#,
        r#"{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"hi"}}"#,
        r#"{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":122}}"#,
    ];
    let (snap, stats) = report(&lines);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.uncached_input_tokens, 315);
    assert_eq!(
        &*snap.runs[0].run_id,
        "0199a213-81c0-7800-8aa1-bbab2a035a53"
    );
    // `codex exec --json` does not say which model: unpriced, not $0.
    assert_eq!(snap.totals.unpriced_events, 1);
    assert_eq!(stats.ignored, 3);
}

#[test]
fn inconsistent_totals_are_rejected() {
    let bad = token_count(
        "2026-05-13T09:01:00.000Z",
        [10, 20, 5, 0],
        [10, 20, 5, 0],
        None,
    );
    let (_, stats) = report(&[META, &bad]);
    assert_eq!(stats.malformed, 1);
    assert!(
        stats.malformed_samples[0]
            .reason
            .starts_with("codex: cached_input_tokens (20)")
    );
}

/// A report with implausible totals is rejected whole: the session's
/// running totals stay as they were, so the next report's delta is right.
#[test]
fn an_implausible_report_leaves_the_running_totals_alone() {
    let huge = 20_000_000_000;
    let lines = [
        META.to_owned(),
        TURN.to_owned(),
        token_count("2026-05-13T09:01:00.000Z", [1000, 250, 125, 75], [1000, 250, 125, 75], None),
        token_count("2026-05-13T09:02:00.000Z", [huge, 250, 125, 75], [huge - 1000, 0, 0, 0], None),
        // Totals only (no last_token_usage): the delta from the last good
        // totals, not the whole session again.
        r#"{"timestamp":"2026-05-13T09:03:00.000Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":1600,"cached_input_tokens":250,"output_tokens":225,"reasoning_output_tokens":75,"total_tokens":1825}}}}"#.to_owned(),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (snap, stats) = report(&lines);
    assert_eq!(stats.malformed, 1, "{:?}", stats.malformed_samples);
    assert!(stats.malformed_samples[0].reason.contains("implausible"));
    assert_eq!(snap.totals.events, 2);
    assert_eq!(snap.totals.input_tokens, 1600);
    assert_eq!(snap.totals.output_tokens, 225);
}
