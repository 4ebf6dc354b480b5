//! Duplicate prompts end to end: `report` on `tests/fixtures/duplicate-prompts.jsonl`
//! (an FAQ bot answering the same questions), checked against a hand
//! computation and a golden copy of the JSON `duplicates` object.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::Parser;
use serde_json::{Value, json};
use tokwatch::cli::{Cli, Command};

const FIXTURE: &str = "tests/fixtures/duplicate-prompts.jsonl";

fn report(args: &[&str]) -> String {
    let mut argv = vec!["tokwatch", "report"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("valid arguments");
    let Some(Command::Report(args)) = cli.command else {
        panic!("report command")
    };
    tokwatch::report_text(&args, 1_795_867_200_000).expect("report succeeds")
}

fn duplicates(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--format", "json"]);
    let mut report: Value = serde_json::from_str(&report(&all)).expect("valid JSON");
    report["insights"]["duplicates"].take()
}

/// The fixture's 22 calls, in order (A: the password question; A' the same
/// words with a comma and without `?`; B: the refund case; B' B with
/// "nine" → "eight"; H: a `prompt_hash`; D: opening hours; O1…O6 other
/// questions; — no prompt):
///
/// | # | prompt | cost | classified | avoidable |
/// |---|---|---|---|---|
/// | 1 | A | 0.0020 | first (group A) | |
/// | 2 | O1 | 0.0018 | first | |
/// | 3 | A | 0.0021 | exact A | 0.0021 |
/// | 4 | B | 0.0150 | first (group B) | |
/// | 5 | H | 0.0300 | first (group H) | |
/// | 6 | A in other case | 0.0019 | exact A (same normalized text) | 0.0019 |
/// | 7 | O2 | 0.0012 | first | |
/// | 8 | D | 0.0005 | first (group D) | |
/// | 9 | O3 | 0.0016 | first | |
/// | 10 | A' | 0.0022 | near A (same words: distance 0) | 0.0022 |
/// | 11 | H | 0.0300 | exact H | 0.0300 |
/// | 12 | B' | 0.0140 | near B (distance ≤ 3) | 0.0140 |
/// | 13 | — | 0.0009 | | |
/// | 14 | O4 | 0.0014 | first | |
/// | 15 | A' | 0.0020 | exact, group A (A' remembered at 10) | 0.0020 |
/// | 16 | D, unknown model, no cost | unpriced | exact D, unpriced | — |
/// | 17 | O5 | 0.0017 | first | |
/// | 18 | B | 0.0150 | exact B | 0.0150 |
/// | 19 | H | 0.0310 | exact H | 0.0310 |
/// | 20 | O6 | 0.0013 | first | |
/// | 21 | — | 0.0008 | | |
/// | 22 | A | 0.0020 | exact A | 0.0020 |
///
/// 20 prompts, 10 first sights, 8 exact (1 unpriced) and 2 near
/// duplicates.
///
/// - exact: 0.0021 + 0.0019 + 0.0300 + 0.0020 + 0.0150 + 0.0310 + 0.0020 = 0.0840;
/// - near: 0.0022 + 0.0140 = 0.0162; total 0.1002;
/// - groups: H 0.0300 + 0.0310 = 0.0610; B 0.0140 + 0.0150 = 0.0290;
///   A 0.0021 + 0.0019 + 0.0022 + 0.0020 + 0.0020 = 0.0102; D unpriced;
/// - agents: escalation-agent (calls 11, 19) 0.0610; faq-bot the other 8
///   hits, 0.0392 and 1 unpriced.
#[test]
fn the_avoidable_spend_is_the_hand_computed_one() {
    let d = duplicates(&[FIXTURE]);
    assert_eq!(d["prompts"], 20);
    assert_eq!(d["first_seen"], 10);
    assert_eq!(d["exact_duplicates"], 8);
    assert_eq!(d["near_duplicates"], 2);
    assert_eq!(d["unpriced_exact_duplicates"], 1);
    assert_eq!(d["unpriced_near_duplicates"], 0);
    // Exact decimals: compared as the JSON text.
    assert_eq!(d["avoidable_cost_usd"].to_string(), "0.1002");
    assert_eq!(d["avoidable_exact_cost_usd"].to_string(), "0.084");
    assert_eq!(d["avoidable_near_cost_usd"].to_string(), "0.0162");
    let groups: Vec<(String, u64, u64, String)> = d["top_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["first_run_id"].as_str().unwrap().to_owned(),
                g["exact"].as_u64().unwrap(),
                g["near"].as_u64().unwrap(),
                g["avoidable_cost_usd"].to_string(),
            )
        })
        .collect();
    let expected = [
        ("faq-003", 2, 0, "0.061"),
        ("faq-003", 1, 1, "0.029"),
        ("faq-001", 4, 1, "0.0102"),
        ("faq-005", 1, 0, "null"),
    ];
    let expected: Vec<(String, u64, u64, String)> = expected
        .iter()
        .map(|(r, e, n, a)| ((*r).to_owned(), *e, *n, (*a).to_owned()))
        .collect();
    assert_eq!(groups, expected);
    assert_eq!(
        d["by_agent"],
        json!([
            {"agent": "escalation-agent", "repeats": 2, "unpriced_repeats": 0, "avoidable_cost_usd": 0.061},
            {"agent": "faq-bot", "repeats": 8, "unpriced_repeats": 1, "avoidable_cost_usd": 0.0392},
        ])
    );
}

#[test]
fn golden_duplicates_json() {
    insta::assert_json_snapshot!("duplicates_json", duplicates(&[FIXTURE]));
}

#[test]
fn the_tables_have_a_section_only_when_prompts_were_fingerprinted() {
    let table = report(&[FIXTURE]);
    assert!(
        table.contains("\nDuplicate prompts\n20 fingerprinted prompts"),
        "{table}"
    );
    assert!(
        table.contains("a semantic cache would have saved $0.1002+?"),
        "{table}"
    );
    let markdown = report(&[FIXTURE, "--format", "markdown"]);
    assert!(markdown.contains("\n## Duplicate prompts\n"), "{markdown}");
    assert!(
        markdown.contains("\n## Duplicate prompts by agent\n"),
        "{markdown}"
    );
    // No call with a prompt: no section, no JSON object.
    let plain = "tests/fixtures/oracles.jsonl";
    assert!(!report(&[plain]).contains("Duplicate prompts"));
    assert_eq!(duplicates(&[plain]), Value::Null);
}

#[test]
fn max_hamming_comes_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[duplicates]\nmax-hamming = 0\ncapacity = 16\n").unwrap();
    let d = duplicates(&[FIXTURE, "--config", config.to_str().unwrap()]);
    assert_eq!(
        (d["max_hamming"].as_u64(), d["capacity"].as_u64()),
        (Some(0), Some(16))
    );
    // B' (one word changed) is now a first sight and its exact repeat… has
    // none; A' (same words) is still a near duplicate at distance 0.
    assert_eq!(d["near_duplicates"], 1);
    assert_eq!(d["first_seen"], 11);
    assert_eq!(d["avoidable_near_cost_usd"].to_string(), "0.0022");
}

#[test]
fn a_repeat_counted_from_its_text_is_avoidable_at_its_exact_count() {
    // Counted roughly at once, then recounted by the estimator (a
    // replacement): the hit follows the recount, once.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("estimated.jsonl");
    let prompt = "Please summarize the attached contract in plain English for a customer, listing every fee.";
    let line = format!(
        r#"{{"run_id":"r","agent":"faq-bot","model":"gpt-4o-mini","prompt":"{prompt}","output_tokens":40}}"#
    );
    std::fs::write(&log, format!("{line}\n{line}\n")).unwrap();
    let path = log.to_str().unwrap();
    let mut all: Value =
        serde_json::from_str(&report(&[path, "--format", "json"])).expect("valid JSON");
    let d = all["insights"]["duplicates"].take();
    assert_eq!(
        (d["first_seen"].as_u64(), d["exact_duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    let usd = |v: &Value| tokwatch::model::Usd::parse_decimal(&v.to_string()).unwrap();
    let total = usd(&all["totals"]["cost_usd"]);
    let avoidable = usd(&d["avoidable_cost_usd"]);
    assert_eq!(avoidable + avoidable, total);
    assert_eq!(all["totals"]["estimated_events"], 2);
    // The recount differs from the rough count (a token per 4 bytes), so
    // the hit's amount was moved, not left at the rough one.
    let rough = u64::try_from(prompt.len()).unwrap().div_ceil(4);
    assert_ne!(all["totals"]["input_tokens"].as_u64(), Some(2 * rough));
}
