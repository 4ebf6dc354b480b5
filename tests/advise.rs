//! The advisor end to end: `advise` and `compare` on the naive-vs-lean
//! sample, and the `insights` object of the JSON report (golden).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use clap::Parser;
use common::tokwatch::Tokwatch;
use serde_json::Value;
use tokwatch::cli::{Cli, Command};
use tokwatch::model::Usd;

const NOW_MS: i64 = 1_795_867_200_000;
const NAIVE: &str = "sample_logs/teams/naive-team.jsonl";
const LEAN: &str = "sample_logs/teams/lean-team.jsonl";

fn run(argv: &[&str]) -> String {
    let mut all = vec!["tokwatch"];
    all.extend_from_slice(argv);
    match Cli::try_parse_from(all).expect("valid arguments").command {
        Some(Command::Advise(args)) => tokwatch::advise_text(&args, NOW_MS).unwrap(),
        Some(Command::Compare(args)) => tokwatch::compare_text(&args, NOW_MS).unwrap(),
        Some(Command::Report(args)) => tokwatch::report_text(&args, NOW_MS).unwrap(),
        _ => panic!("advise, compare or report"),
    }
}

fn json(argv: &[&str]) -> Value {
    let mut all = argv.to_vec();
    all.extend_from_slice(&["--format", "json"]);
    serde_json::from_str(&run(&all)).expect("valid JSON")
}

fn usd(value: &Value) -> Usd {
    Usd::parse_decimal(&value.to_string()).expect("a decimal")
}

#[test]
fn applied_together_the_naive_teams_recommendations_predict_the_lean_teams_cost() {
    let naive = json(&["advise", NAIVE]);
    let lean = json(&["compare", NAIVE, LEAN]);
    let lean_per_run = usd(&lean["b"]["cost_per_run"]);
    let naive_per_run = usd(&lean["a"]["cost_per_run"]);
    // about $1.40 and $0.12 a run
    assert_eq!(naive_per_run.display_rounded(2), "1.40");
    assert_eq!(lean_per_run.display_rounded(2), "0.12");
    let predicted = usd(&naive["combined"]["combined_per_run"]);
    let off = (predicted.to_f64() / lean_per_run.to_f64() - 1.0).abs();
    assert!(
        off <= 0.25,
        "predicted {predicted}, lean {lean_per_run}: {:.0}% off",
        off * 100.0
    );
    // the top recommendations are the three levers, priced, with evidence
    let recs = naive["recommendations"].as_array().unwrap();
    let levers: Vec<&str> = recs
        .iter()
        .take(5)
        .map(|r| r["lever"].as_str().unwrap())
        .collect();
    for lever in ["cache", "trim", "route"] {
        assert!(levers.contains(&lever), "{levers:?}");
    }
    for r in recs {
        assert!(usd(&r["saving_per_run"]) > Usd::ZERO);
        assert!(!r["evidence"].as_array().unwrap().is_empty());
        // same provider only
        if r["lever"] == "route" {
            assert!(r["target"].as_str().unwrap().starts_with("claude-"), "{r}");
        }
    }
}

#[test]
fn compare_names_why_the_naive_team_pays_ten_times_more() {
    let cmp = json(&["compare", NAIVE, LEAN]);
    assert_eq!(cmp["dearer"], "a");
    let kinds: Vec<&str> = cmp["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 4);
    assert_eq!(kinds[3], "other");
    for kind in ["model_mix", "carried_context", "caching"] {
        assert!(kinds[..3].contains(&kind), "{kinds:?}");
    }
    // premium model everywhere, history re-sent, no caching
    assert_eq!(cmp["a"]["model_mix"][0][0], "claude-opus-4-6");
    assert_eq!(cmp["a"]["model_mix"][0][1], 1.0);
    assert_eq!(cmp["a"]["cache_hit_ratio"], 0.0);
    assert!(
        cmp["a"]["carried_share"].as_f64().unwrap() > cmp["b"]["carried_share"].as_f64().unwrap()
    );
    // the differences add up to the gap
    let sum: Usd = cmp["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| usd(&d["explains_per_run"]))
        .sum();
    assert_eq!(sum, usd(&cmp["gap_per_run"]));
    let text = run(&["compare", NAIVE, LEAN]);
    assert!(text.contains("model mix"), "{text}");
    assert!(text.contains("carried context"), "{text}");
}

#[test]
fn compare_by_segment_reads_both_teams_together() {
    let cmp = json(&[
        "compare",
        "sample_logs/teams",
        "--segment",
        "naive/free",
        "--segment",
        "lean/free",
    ]);
    assert!(cmp["a"]["runs"].as_u64().unwrap() > 0);
    assert!(cmp["b"]["runs"].as_u64().unwrap() > 0);
    assert_eq!(cmp["dearer"], "a");
}

/// An agent's cost in a report of `paths`, and its events.
fn agent_in_report(paths: &[&str], agent: &str) -> (Usd, u64) {
    let mut argv = vec!["report"];
    argv.extend_from_slice(paths);
    let report = json(&argv);
    let row = report["by_agent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == agent)
        .unwrap_or_else(|| panic!("no {agent} in the report"));
    (usd(&row["cost_usd"]), row["events"].as_u64().unwrap())
}

#[test]
fn compare_by_agent_puts_two_agents_of_the_same_runs_side_by_side() {
    let teams = "sample_logs/teams";
    let cmp = json(&[
        "compare",
        teams,
        "--agent",
        "researcher",
        "--agent",
        "planner",
    ]);
    assert_eq!(cmp["a"]["label"], "agent researcher");
    assert_eq!(cmp["b"]["label"], "agent planner");
    // each side counts the agent's hops only, every run it took part in
    for (side, agent) in [("a", "researcher"), ("b", "planner")] {
        let (cost, _) = agent_in_report(&[teams], agent);
        assert_eq!(usd(&cmp[side]["cost"]), cost, "{agent}");
        assert_eq!(cmp[side]["runs"], 48, "{agent}");
    }
    // the planner plans once per run: nothing carried from a previous hop
    assert_eq!(cmp["b"]["carried_share"], 0.0);
    assert!(cmp["a"]["carried_share"].as_f64().unwrap() > 0.3);
    assert_eq!(cmp["dearer"], "a");
}

#[test]
fn compare_by_agent_across_two_paths_puts_one_agent_of_each_side_by_side() {
    let cmp = json(&["compare", NAIVE, LEAN, "--agent", "researcher"]);
    assert_eq!(
        cmp["a"]["label"],
        format!("{NAIVE} agent researcher").as_str()
    );
    for (side, path) in [("a", NAIVE), ("b", LEAN)] {
        let (cost, _) = agent_in_report(&[path], "researcher");
        assert_eq!(usd(&cmp[side]["cost"]), cost, "{path}");
        assert_eq!(cmp[side]["runs"], 24, "{path}");
    }
    assert_eq!(cmp["dearer"], "a");
    let text = run(&["compare", NAIVE, LEAN, "--agent", "researcher"]);
    assert!(text.contains("agent researcher costs"), "{text}");
}

#[test]
fn compare_by_agent_names_an_agent_that_is_not_there() {
    let cli = Cli::try_parse_from([
        "tokwatch", "compare", NAIVE, "--agent", "planner", "--agent", "nobody",
    ])
    .unwrap();
    let Some(Command::Compare(args)) = cli.command else {
        panic!()
    };
    let err = tokwatch::compare_text(&args, NOW_MS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no hop of agent \"nobody\""), "{err}");
    // --agent and --segment do not mix
    assert!(
        Cli::try_parse_from([
            "tokwatch",
            "compare",
            NAIVE,
            "--agent",
            "a",
            "--segment",
            "s",
        ])
        .is_err()
    );
}

#[test]
fn compare_wants_two_sides() {
    let cli = Cli::try_parse_from(["tokwatch", "compare", NAIVE]).unwrap();
    let Some(Command::Compare(args)) = cli.command else {
        panic!()
    };
    let err = tokwatch::compare_text(&args, NOW_MS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("two paths"), "{err}");
}

#[test]
fn advise_prints_a_ranked_table_and_markdown() {
    let table = run(&["advise", NAIVE]);
    assert!(
        table.contains("with every recommendation applied"),
        "{table}"
    );
    assert!(table.contains("per-hop limit 6000"), "{table}");
    let markdown = run(&["advise", NAIVE, "--format", "markdown"]);
    assert!(markdown.starts_with("# tokwatch advise"), "{markdown}");
    assert!(markdown.contains("| 1 "), "{markdown}");
}

#[test]
fn golden_insights_of_the_samples() {
    let report = json(&["report", "sample_logs"]);
    insta::assert_json_snapshot!("insights", report["insights"]);
}

#[test]
fn the_report_written_while_the_advisor_finishes_is_the_report_written_after_it() {
    // more runs than one hand-off of ended runs: `build_report`'s early
    // advisor reads some of them while the fold goes on
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("bench.jsonl");
    tokwatch::workload::write_bench_corpus(&corpus, 8_000, 5).unwrap();
    let corpus = corpus.to_str().unwrap();
    let report_args = |argv: &[&str]| {
        let mut all = vec!["tokwatch", "report", "--format", "json"];
        all.extend_from_slice(argv);
        match Cli::try_parse_from(all).unwrap().command {
            Some(Command::Report(args)) => args,
            _ => panic!("report"),
        }
    };
    let inputs = [
        &["sample_logs"][..],
        &[NAIVE, LEAN],
        &["tests/fixtures"],
        &[corpus],
    ];
    // 1 thread: the advice now, then the document; 3: on a thread of its own
    for (paths, threads) in inputs.iter().flat_map(|p| [(p, "1"), (p, "3")]) {
        let mut argv = paths.to_vec();
        argv.extend_from_slice(&["--threads", threads]);
        let args = report_args(&argv);
        // the advice worked out first, then the document rendered
        let (snapshot, stats, options) = tokwatch::build_report(&args, NOW_MS).unwrap();
        assert!(snapshot.advice.is_some(), "{argv:?}");
        let after = tokwatch::report::render(&snapshot, &stats, &options).unwrap();
        // the advice worked out while the document is
        let meanwhile = tokwatch::report_text(&args, NOW_MS).unwrap();
        assert_eq!(meanwhile, after, "{argv:?}");
        let report: Value = serde_json::from_str(&meanwhile).unwrap();
        let advisor = &report["insights"]["advisor"];
        assert!(advisor["runs"].as_u64().unwrap() > 0, "{argv:?}: {advisor}");
    }
}

#[test]
fn a_report_without_insights_leaves_them_out_and_keeps_the_rest() {
    let with = json(&["report", "sample_logs"]);
    let without = json(&["report", "sample_logs", "--no-insights"]);
    assert!(with["insights"]["advisor"]["recommendations"][0].is_object());
    assert!(with["insights"]["duplicates"].is_object());
    assert_eq!(without.get("insights"), None, "{without}");
    let mut rest = with.as_object().unwrap().clone();
    rest.remove("insights");
    assert_eq!(&rest, without.as_object().unwrap());
    // the other formats never had them
    for format in ["table", "csv", "markdown"] {
        assert_eq!(
            run(&["report", "sample_logs", "--format", format, "--no-insights"]),
            run(&["report", "sample_logs", "--format", format]),
            "{format}"
        );
    }
}

#[test]
fn repeated_prompts_are_a_semantic_cache_recommendation_worth_their_avoidable_spend() {
    const FIXTURE: &str = "tests/fixtures/duplicate-prompts.jsonl";
    let advice = json(&["advise", FIXTURE]);
    let report = json(&["report", FIXTURE]);
    let by_agent = report["insights"]["duplicates"]["by_agent"]
        .as_array()
        .unwrap();
    assert!(!by_agent.is_empty());
    for agent in by_agent {
        let name = agent["agent"].as_str().unwrap();
        let rec = advice["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["lever"] == "semantic_cache" && r["agent"] == name)
            .unwrap_or_else(|| panic!("no semantic cache for {name}: {advice}"));
        assert_eq!(usd(&rec["saving"]), usd(&agent["avoidable_cost_usd"]));
        assert_eq!(rec["hops"], agent["repeats"]);
        assert!(!rec["evidence"].as_array().unwrap().is_empty());
    }
}

/// A log with two runs of 5 hops that ended and one still going (3 hops,
/// +1,000 input a hop from 1,000, 100 output each: 6,300 tokens seen,
/// 10,400 after hop 4, 15,500 after hop 5).
fn log_with_a_live_run(dir: &std::path::Path) -> String {
    let mut lines = Vec::new();
    for (run, hops, ended) in [("done-1", 5, true), ("done-2", 5, true), ("live", 3, false)] {
        for hop in 1..=hops {
            lines.push(format!(
                r#"{{"ts":"2026-11-23T08:00:{:02}Z","run_id":"{run}","hop":{hop},"agent":"writer","segment":"pro","model":"gpt-4.1","input_tokens":{},"output_tokens":100}}"#,
                hop * 2,
                hop * 1_000
            ));
        }
        if ended {
            lines.push(format!(
                r#"{{"type":"run_end","ts":"2026-11-23T08:00:59Z","run_id":"{run}","status":"ok"}}"#
            ));
        }
    }
    let path = dir.join("runs.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path.display().to_string()
}

/// A budgets file: 12,000 tokens a run for everyone, 10,000 in segment
/// `pro` (passed at hop 4 by [`log_with_a_live_run`]'s live run).
fn budgets_file(dir: &std::path::Path) -> String {
    use tokwatch::control::store::DesiredState;
    use tokwatch::model::budget::{BreachAction, Limits, Scope};
    let path = dir.join("budgets.toml");
    let mut desired = DesiredState::default();
    for (scope, limit) in [
        (Scope::Global, 12_000),
        (Scope::Segment("pro".into()), 10_000),
    ] {
        desired.set(
            scope,
            Limits {
                total_run_limit: Some(limit),
                on_run_breach: Some(BreachAction::Abort),
                ..Limits::default()
            },
            0,
        );
    }
    desired.save(&path).unwrap();
    path.display().to_string()
}

#[test]
fn forecasts_say_where_a_live_run_crosses_the_run_limits_of_a_budgets_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_a_live_run(dir.path());
    let budgets = budgets_file(dir.path());
    let forecast = |doc: &Value| {
        let list = doc["forecasts"].as_array().unwrap().clone();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0]["run_id"], "live");
        assert_eq!(list[0]["hops_expected"], 5);
        assert_eq!(list[0]["tokens"], 15_500);
        list[0]["crosses_token_limit_at"].clone()
    };
    // without the file: no limits, nothing crossed
    assert_eq!(forecast(&json(&["advise", &log])), Value::Null);
    assert_eq!(forecast(&json(&["advise", &log, "--budgets", &budgets])), 4);
    let report = json(&["report", &log, "--budgets", &budgets]);
    assert_eq!(forecast(&report["insights"]), 4);
    // a file named that is not there is said, not taken for no limits
    let mut all = vec!["tokwatch", "advise", &log, "--budgets"];
    let missing = dir.path().join("nope.toml").display().to_string();
    all.push(&missing);
    let Some(Command::Advise(args)) = Cli::try_parse_from(all).unwrap().command else {
        panic!("advise");
    };
    let err = format!("{:#}", tokwatch::advise_text(&args, NOW_MS).unwrap_err());
    assert!(
        err.contains("budgets file") && err.contains("not found"),
        "{err}"
    );
}

/// The forecasts of the first `--jsonl` snapshot with every line read, of
/// `tokwatch --follow log --jsonl` with `args` and a state home of its own
/// (where the dashboard's budgets file is), and tokwatch, still running.
fn jsonl_forecasts(log: &str, state_home: &std::path::Path, args: &[&str]) -> (Value, Tokwatch) {
    jsonl_forecasts_env(log, &[("XDG_STATE_HOME", state_home)], args)
}

/// [`jsonl_forecasts`] with the environment `env`.
fn jsonl_forecasts_env(
    log: &str,
    env: &[(&str, &std::path::Path)],
    args: &[&str],
) -> (Value, Tokwatch) {
    let mut argv = vec!["--follow", log, "--jsonl", "--interval", "100ms"];
    argv.extend_from_slice(args);
    let mut tokwatch = Tokwatch::spawn(&argv, env);
    // every line read: the live run's three hops and the two ends
    let snapshot = tokwatch.wait_for("every line read", Duration::from_secs(30), |s| {
        if s["live"]["caught_up"] == true {
            Ok(())
        } else {
            Err("not caught up".into())
        }
    });
    let forecasts = &snapshot["insights"]["forecasts"];
    assert_eq!(forecasts.as_array().map(Vec::len), Some(1), "{forecasts}");
    assert_eq!(forecasts[0]["run_id"], "live");
    assert_eq!(forecasts[0]["tokens"], 15_500);
    (forecasts[0]["crosses_token_limit_at"].clone(), tokwatch)
}

#[test]
fn jsonl_snapshots_forecast_against_the_budgets_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_a_live_run(dir.path());
    let budgets = budgets_file(dir.path());
    // named
    let state = tempfile::tempdir().unwrap();
    let (crosses, _) = jsonl_forecasts(&log, state.path(), &["--budgets", &budgets]);
    assert_eq!(crosses, 4);
    // none: no limits
    let (crosses, mut tokwatch) = jsonl_forecasts(&log, state.path(), &[]);
    assert_eq!(crosses, Value::Null);
    let stderr = tokwatch.stderr();
    assert!(!stderr.iter().any(|l| l.contains("warning")), "{stderr:?}");
    // the dashboard's store, where it keeps it
    let store = state.path().join("tokwatch");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::copy(&budgets, store.join("budgets.toml")).unwrap();
    let (crosses, _) = jsonl_forecasts(&log, state.path(), &[]);
    assert_eq!(crosses, 4);
    // the store `$TOKWATCH_BUDGETS` names; not saved yet, it holds no limits
    let named_store = |path: &std::path::Path| {
        let env = [("XDG_STATE_HOME", state.path()), ("TOKWATCH_BUDGETS", path)];
        jsonl_forecasts_env(&log, &env, &[])
    };
    let (crosses, _) = named_store(std::path::Path::new(&budgets));
    assert_eq!(crosses, 4);
    let (crosses, mut tokwatch) = named_store(&dir.path().join("not-saved-yet.toml"));
    assert_eq!(crosses, Value::Null);
    let stderr = tokwatch.stderr();
    assert!(!stderr.iter().any(|l| l.contains("warning")), "{stderr:?}");
    // a file named that is not there is said, and nothing starts
    let missing = dir.path().join("nope.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args([
            "--follow",
            &log,
            "--jsonl",
            "--exit-after",
            "30s",
            "--budgets",
        ])
        .arg(&missing)
        .env("XDG_STATE_HOME", state.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("budgets file") && stderr.contains("not found"),
        "{stderr}"
    );
    // a store that cannot be read is said, and left out
    std::fs::write(store.join("budgets.toml"), "not = [a store").unwrap();
    let (crosses, mut tokwatch) = jsonl_forecasts(&log, state.path(), &[]);
    assert_eq!(crosses, Value::Null);
    common::until(Duration::from_secs(10), || {
        let stderr = tokwatch.stderr();
        stderr
            .iter()
            .any(|l| l.contains("warning: forecasts without run limits"))
            .then_some(())
            .ok_or(format!("no warning: {stderr:?}"))
    })
    .unwrap();
}
