//! Every input format through the real binary: one directory of mixed
//! formats, the `--claude` and `--codex` homes, forcing a format.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use serde_json::Value;

const FIXTURES: &str = "tests/fixtures/formats";

fn tokwatch(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokwatch"));
    command
        .args(args)
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("CODEX_HOME");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run tokwatch")
}

fn json(args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = tokwatch(args, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (format, calls, cost in dollars) of a report's `by_format`.
fn by_format(report: &Value) -> Vec<(String, u64, f64)> {
    report["by_format"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["format"].as_str().unwrap().to_owned(),
                f["events"].as_u64().unwrap(),
                f["cost_usd"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_format_in_one_directory_is_recognised_and_priced_exactly() {
    let report = json(&["report", FIXTURES, "--format", "json"], &[]);
    let expected = [
        ("native", 1, 0.000_649_65),
        // Oracle A twice (a response, a stream's usage chunk), oracle B.
        ("openai", 3, 0.000_649_65 * 2.0 + 0.005_549_95),
        ("anthropic", 1, 0.535_254),
        ("gemini", 1, 0.000_599),
        // Oracle G's message once (its sidechain replay not again) and the
        // sub-agent's own call.
        ("claude-code", 2, 0.244_004_7),
        ("codex", 1, 0.004_669_75),
        // The chat span only, not its invoke_agent's totals again.
        ("otlp", 1, 0.000_649_65),
        ("litellm", 1, 0.000_649_65),
    ];
    let got = by_format(&report);
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for ((format, calls, cost), (want_format, want_calls, want_cost)) in got.iter().zip(expected) {
        assert_eq!((format.as_str(), *calls), (want_format, want_calls));
        assert!(
            (cost - want_cost).abs() < 1e-9,
            "{format}: {cost} vs {want_cost}"
        );
    }
    let ingest = &report["ingest"];
    assert_eq!(ingest["malformed"], 0);
    assert_eq!(report["totals"]["events"], 11);
    // Per source, the format its lines were read in.
    let sources = ingest["sources"].as_array().unwrap();
    let otlp = sources
        .iter()
        .find(|s| s["name"].as_str().unwrap().ends_with("otlp.jsonl"))
        .unwrap();
    assert_eq!(otlp["formats"], serde_json::json!({"otlp": 1}));
    // The text report says where the numbers came from.
    let out = tokwatch(&["report", FIXTURES], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("By input format"), "{text}");
    assert!(text.contains("claude-code"), "{text}");
}

#[test]
fn claude_and_codex_homes_are_found_from_the_environment() {
    let claude = format!("{FIXTURES}/claude");
    let codex = format!("{FIXTURES}/codex");
    let report = json(
        &["report", "--claude", "--codex", "--format", "json"],
        &[
            ("CLAUDE_CONFIG_DIR", &format!("/nonexistent,{claude}")),
            ("CODEX_HOME", &codex),
        ],
    );
    let formats: Vec<(String, u64)> = by_format(&report)
        .into_iter()
        .map(|(f, n, _)| (f, n))
        .collect();
    assert_eq!(
        formats,
        vec![("claude-code".to_owned(), 2), ("codex".to_owned(), 1)]
    );
    // Sessions are runs, projects segments, sidechains child agents.
    let run = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "7be90610-ed07-4982-aa01-018ae5e65e41")
        .unwrap();
    assert_eq!(run["segment"], "/home/dev/src/shop");
    assert_eq!(run["agent_path"], serde_json::json!(["main", "subagent"]));

    let out = tokwatch(
        &["report", "--claude"],
        &[("CLAUDE_CONFIG_DIR", "/nonexistent/a,/nonexistent/b")],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no Claude Code projects directory")
            && stderr.contains("/nonexistent/b/projects"),
        "{stderr}"
    );
}

#[test]
fn a_forced_format_reads_every_line_as_that_format() {
    let native = format!("{FIXTURES}/native.jsonl");
    let forced = json(
        &[
            "report",
            &native,
            "--input-format",
            "openai",
            "--format",
            "json",
        ],
        &[],
    );
    // A native record has no OpenAI usage: not a call in that format.
    assert_eq!(forced["totals"]["events"], 0);
    assert_eq!(forced["ingest"]["ignored"], 1);
    let out = tokwatch(&["report", &native, "--input-format", "yaml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'yaml' is not an input format"));
}
