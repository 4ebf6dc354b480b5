//! Golden reports on `sample_logs/` in every format, and whole-pipeline
//! checks (oracles, malformed input, filters) through the library entry point.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::Parser;
use serde_json::Value;
use tokwatch::cli::{Cli, Command};

/// 2026-11-28T12:00:00Z: a pinned "now" for relative time filters.
const NOW_MS: i64 = 1_795_867_200_000;

fn report(args: &[&str]) -> String {
    let mut argv = vec!["tokwatch", "report"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("valid arguments");
    let Some(Command::Report(args)) = cli.command else {
        panic!("report command")
    };
    tokwatch::report_text(&args, NOW_MS).expect("report succeeds")
}

fn report_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--format", "json"]);
    serde_json::from_str(&report(&all)).expect("valid JSON")
}

/// A money field; `null` (nothing priced) adds nothing to sums.
fn usd(value: &Value) -> tokwatch::model::Usd {
    if value.is_null() {
        return tokwatch::model::Usd::ZERO;
    }
    tokwatch::model::Usd::parse_decimal(&value.to_string()).expect("a decimal")
}

#[test]
fn golden_table() {
    insta::assert_snapshot!(
        "table",
        report(&["sample_logs", "--top", "8", "--timezone", "UTC"])
    );
}

#[test]
fn golden_table_with_hops_for_top_runs() {
    insta::assert_snapshot!(
        "table_hops",
        report(&["sample_logs", "--top", "2", "--hops"])
    );
}

#[test]
fn golden_json_with_hops() {
    insta::assert_snapshot!(
        "json_hops",
        report(&["sample_logs", "--format", "json", "--hops"])
    );
}

#[test]
fn golden_csv_with_hops() {
    insta::assert_snapshot!(
        "csv_hops",
        report(&["sample_logs", "--format", "csv", "--hops"])
    );
}

#[test]
fn golden_markdown() {
    insta::assert_snapshot!(
        "markdown",
        report(&["sample_logs", "--format", "markdown", "--top", "5"])
    );
}

#[test]
fn golden_json_grouped_by_day() {
    let text = report(&[
        "sample_logs",
        "--format",
        "json",
        "--group-by",
        "day",
        "--timezone",
        "UTC",
    ]);
    let json: Value = serde_json::from_str(&text).unwrap();
    insta::assert_json_snapshot!("by_day", json["by_period"]);
}

#[test]
fn totals_equal_the_sum_of_every_breakdown() {
    let json = report_json(&["sample_logs", "--hops"]);
    let totals = &json["totals"];
    for key in ["by_agent", "by_model"] {
        for field in [
            "events",
            "input_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "output_tokens",
            "reasoning_tokens",
            "unpriced_events",
        ] {
            let sum: u64 = json[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r[field].as_u64().unwrap())
                .sum();
            assert_eq!(sum, totals[field].as_u64().unwrap(), "{key}.{field}");
        }
        let cost: tokwatch::model::Usd = json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| usd(&r["cost_usd"]))
            .sum();
        assert_eq!(cost, usd(&totals["cost_usd"]), "{key} cost");
    }
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len() as u64, totals["runs"].as_u64().unwrap());
    let run_cost: tokwatch::model::Usd = runs.iter().map(|r| usd(&r["cost_usd"])).sum();
    assert_eq!(run_cost, usd(&totals["cost_usd"]));
    for run in runs {
        let hops = run["hop_details"].as_array().unwrap();
        let tokens: u64 = hops
            .iter()
            .map(|h| h["total_tokens"].as_u64().unwrap())
            .sum();
        assert_eq!(
            tokens,
            run["total_tokens"].as_u64().unwrap(),
            "{}",
            run["run_id"]
        );
        for hop in hops {
            let input = hop["input_tokens"].as_u64().unwrap();
            let parts = hop["uncached_input_tokens"].as_u64().unwrap()
                + hop["cache_read_tokens"].as_u64().unwrap()
                + hop["cache_write_tokens"].as_u64().unwrap();
            assert_eq!(input, parts, "disjoint buckets in {}", run["run_id"]);
        }
    }
}

/// The Totals section's rows as (label, tokens, cost) cells, in the table
/// or Markdown layout.
fn totals_rows(text: &str) -> Vec<(String, String, String)> {
    let start = text
        .lines()
        .position(|l| l.trim_start_matches("## ") == "Totals")
        .expect("a Totals section");
    text.lines()
        .skip(start + 1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with('│') || (l.starts_with('|') && !l.starts_with("|-")))
        .map(|l| {
            let inner = l.trim().trim_matches(|c| c == '│' || c == '|');
            let cells: Vec<String> = inner
                .split(['┆', '|'])
                .map(|c| c.trim().to_owned())
                .collect();
            assert_eq!(cells.len(), 3, "{l}");
            (cells[0].clone(), cells[1].clone(), cells[2].clone())
        })
        .collect()
}

/// The dollar amount a cell starts with (`$36.5682+?` → 36.5682).
fn amount(cell: &str) -> Option<tokwatch::model::Usd> {
    let digits: String = cell
        .strip_prefix('$')?
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    tokwatch::model::Usd::parse_decimal(&digits).ok()
}

#[test]
fn the_totals_cost_lines_add_up_to_the_total() {
    // Some calls of the samples report their own cost (a gateway), some are
    // priced from the table, two are unpriced: the total is the reported
    // part plus the list-priced part; the rest is marked as not in it.
    let json = report_json(&["sample_logs"]);
    let totals = &json["totals"];
    assert!(totals["reported_events"].as_u64().unwrap() > 0);
    assert!(totals["unpriced_events"].as_u64().unwrap() > 0);
    for format in ["table", "markdown"] {
        let text = report(&["sample_logs", "--format", format]);
        let rows = totals_rows(&text);
        let total = rows
            .iter()
            .find(|r| r.0 == "total")
            .and_then(|r| amount(&r.2))
            .unwrap_or_else(|| panic!("{format}: no total in {rows:?}"));
        // The total shown is the exact total, rounded where it is shown.
        let total_cell = &rows.iter().find(|r| r.0 == "total").unwrap().2;
        let decimals = total_cell
            .split('.')
            .nth(1)
            .map_or(0, |d| d.chars().take_while(char::is_ascii_digit).count());
        assert!(
            total_cell.starts_with(&format!(
                "${}",
                usd(&totals["cost_usd"]).display_rounded(decimals as u32)
            )),
            "{format}: {total_cell}"
        );
        let parts: Vec<_> = rows
            .iter()
            .filter(|r| r.0.starts_with("= ") || r.0.starts_with("+ "))
            .collect();
        assert!(parts.len() >= 2, "{format}: {rows:?}");
        let sum = parts
            .iter()
            .map(|r| amount(&r.2).unwrap_or_else(|| panic!("{format}: {r:?}")))
            .fold(tokwatch::model::Usd::ZERO, |a, b| a + b);
        assert_eq!(sum, total, "{format}: {parts:?} do not add up to {total}");
        // Every other amount says it is not part of the total.
        for row in &rows {
            let is_part = parts.contains(&row);
            if row.0 != "total" && !is_part && row.2.contains('$') {
                assert!(row.2.contains("not in total"), "{format}: {row:?}");
            }
            if row.0.contains("UNPRICED") {
                assert!(row.2.contains("not in total"), "{format}: {row:?}");
            }
        }
    }
}

#[test]
fn the_story_the_samples_tell() {
    let json = report_json(&["sample_logs"]);
    let runs = json["runs"].as_array().unwrap();
    let mean_cost = |prefix: &str| {
        let costs: Vec<f64> = runs
            .iter()
            .filter(|r| r["run_id"].as_str().unwrap().starts_with(prefix))
            .map(|r| r["cost_usd"].as_f64().unwrap())
            .collect();
        costs.iter().sum::<f64>() / costs.len() as f64
    };
    let naive = mean_cost("naive-");
    let lean = mean_cost("lean-");
    assert!(
        (1.25..=1.55).contains(&naive),
        "naive team ≈ $1.40 per run, got {naive}"
    );
    assert!(
        (0.09..=0.15).contains(&lean),
        "lean team ≈ $0.12 per run, got {lean}"
    );
    let run = |id: &str| runs.iter().find(|r| r["run_id"] == id).unwrap().clone();
    let looped = run("loop-5-step");
    assert_eq!(looped["total_tokens"], 27_000);
    assert_eq!(looped["multiplier"], 15.0);
    assert_eq!(run("single-call")["total_tokens"], 2_000);
}

#[test]
fn oracles_through_the_whole_pipeline() {
    let json = report_json(&["tests/fixtures/oracles.jsonl", "--hops"]);
    let run_cost = |id: &str| {
        let run = json["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run_id"] == id)
            .unwrap();
        run["hop_details"][0]["cost_usd"].clone()
    };
    assert_eq!(run_cost("oracle-a").to_string(), "0.00064965");
    assert_eq!(run_cost("oracle-b").to_string(), "0.00554995");
    assert_eq!(run_cost("oracle-c").to_string(), "0.535254");
    assert_eq!(run_cost("oracle-e").to_string(), "0.00466975");
    assert_eq!(run_cost("oracle-f").to_string(), "0.9585");
    assert_eq!(
        run_cost("oracle-u"),
        Value::Null,
        "unpriced is null, never 0"
    );
    let totals = &json["totals"];
    assert_eq!(totals["cost_usd"].to_string(), "1.50462335");
    assert_eq!(totals["unpriced_events"], 1);
    assert_eq!(totals["unpriced_tokens"], 1010);
    assert_eq!(totals["long_context_events"], 1);
    let llama = json["by_model"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "llama-local")
        .unwrap();
    assert_eq!(llama["priced"], false);
    assert_eq!(
        llama["cost_usd"],
        Value::Null,
        "nothing priced: null, never 0"
    );
    assert_eq!(llama["computed_cost_usd"], Value::Null);
    assert_eq!(llama["unpriced_events"], 1);
}

#[test]
fn malformed_lines_are_counted_located_and_never_fatal() {
    let json = report_json(&[
        "tests/fixtures/malformed.jsonl",
        "--max-line-bytes",
        "2048",
        "--hops",
    ]);
    let ingest = &json["ingest"];
    assert_eq!(ingest["lines"], 16);
    assert_eq!(ingest["blank"], 1);
    assert_eq!(
        ingest["events"], 4,
        "hops 1, 4, 5 (CRLF) and 6 (no final newline)"
    );
    assert_eq!(ingest["malformed"], 11);
    assert_eq!(ingest["invalid_utf8"], 1);
    assert_eq!(ingest["oversized"], 1);
    let samples: Vec<(String, String)> = ingest["malformed_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["location"].as_str().unwrap().to_owned(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let reason_at = |line: u32| {
        let location = format!("tests/fixtures/malformed.jsonl:{line}");
        samples
            .iter()
            .find(|(l, _)| *l == location)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{location} not reported"))
    };
    assert!(reason_at(3).contains("exceed input_tokens (100)"));
    assert!(reason_at(4).contains("reasoning_tokens (6) exceed output_tokens (5)"));
    assert!(reason_at(5).contains("epoch seconds"));
    assert!(reason_at(6).contains("missing input_tokens"));
    assert!(reason_at(7).contains("unknown type 'heartbeat'"));
    assert!(reason_at(8).starts_with("native: invalid JSON"));
    assert!(reason_at(9).contains("invalid type"));
    assert!(reason_at(10).contains("invalid value"));
    assert!(reason_at(11).contains("EOF"), "{}", reason_at(11));
    assert_eq!(reason_at(13), "invalid UTF-8");
    assert!(reason_at(15).contains("exceeds --max-line-bytes 2048"));
    let hops: Vec<u64> = json["runs"][0]["hop_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hop"].as_u64().unwrap())
        .collect();
    assert_eq!(hops, vec![1, 4, 5, 6]);
}

#[test]
fn time_filters_keep_the_window_and_count_the_rest() {
    let all = report_json(&["sample_logs"]);
    let day = report_json(&[
        "sample_logs",
        "--since",
        "2026-11-24",
        "--until",
        "2026-11-24",
        "--timezone",
        "UTC",
    ]);
    assert_eq!(day["filters"]["timezone"], "UTC");
    let kept = day["ingest"]["events"].as_u64().unwrap();
    let filtered = day["ingest"]["filtered"].as_u64().unwrap();
    assert!(kept > 0 && filtered > 0);
    assert_eq!(kept + filtered, all["ingest"]["events"].as_u64().unwrap());
    for run in day["runs"].as_array().unwrap() {
        assert!(
            run["first_ts"].as_str().unwrap().starts_with("2026-11-24"),
            "{}",
            run["run_id"]
        );
    }
    // relative: "3d" before the pinned now (2026-11-28T12:00Z) keeps 2026-11-25T12:00Z onwards
    let recent = report_json(&["sample_logs", "--since", "3d"]);
    assert!(recent["ingest"]["filtered"].as_u64().unwrap() > 0);
    let first = recent["time_range"]["first"].as_str().unwrap();
    assert!(first >= "2026-11-25T12:00:00.000Z", "{first}");
}

#[test]
fn week_and_month_buckets_use_iso_weeks_and_the_time_zone() {
    let weeks = report_json(&["sample_logs", "--group-by", "week", "--timezone", "UTC"]);
    let labels: Vec<&str> = weeks["by_period"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["period"].as_str().unwrap())
        .collect();
    assert_eq!(labels, vec!["2026-W48"]);
    let months = report_json(&[
        "sample_logs",
        "--group-by",
        "month",
        "--timezone",
        "Pacific/Kiritimati",
    ]);
    let labels: Vec<&str> = months["by_period"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["period"].as_str().unwrap())
        .collect();
    assert_eq!(labels, vec!["2026-11"]);
    let period_events: u64 = months["by_period"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["events"].as_u64().unwrap())
        .sum();
    assert_eq!(period_events, months["totals"]["events"].as_u64().unwrap());
}

#[test]
fn committed_samples_equal_the_generator_output() {
    let dir = tempfile::tempdir().unwrap();
    tokwatch::workload::write_samples(dir.path()).unwrap();
    for (name, _) in tokwatch::workload::sample_files() {
        let generated = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let committed =
            std::fs::read_to_string(std::path::Path::new("sample_logs").join(name)).unwrap();
        assert!(
            generated == committed,
            "sample_logs/{name} is stale: run `cargo run -- generate samples`"
        );
    }
}

#[test]
fn litellm_price_override_applies_before_the_embedded_table() {
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("model_prices_and_context_window.json");
    std::fs::write(
        &prices,
        r#"{"sample_spec": {"input_cost_per_token": "doc"}, "gpt-4o-mini": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "litellm_provider": "openai"}}"#,
    )
    .unwrap();
    let json = report_json(&[
        "tests/fixtures/oracles.jsonl",
        "--hops",
        "--prices",
        prices.to_str().unwrap(),
    ]);
    assert!(
        json["price_table"]
            .as_str()
            .unwrap()
            .starts_with("litellm:model_prices_and_context_window.json#")
    );
    let a = json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "oracle-a")
        .unwrap();
    // 4263 × 1e-6 (no cache-read price: no discount) + 529 × 2e-6
    assert_eq!(a["hop_details"][0]["cost_usd"].to_string(), "0.005321");
    assert!(
        a["hop_details"][0]["price_table"]
            .as_str()
            .unwrap()
            .starts_with("litellm:")
    );
    let c = json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "oracle-c")
        .unwrap();
    assert_eq!(
        c["hop_details"][0]["cost_usd"].to_string(),
        "0.535254",
        "others keep embedded prices"
    );
}

#[test]
fn bleeding_thresholds_come_from_the_config_file() {
    let count = |json: &Value| -> usize {
        json["runs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["hop_details"].as_array().unwrap().iter())
            // a breach the runtime enforced always counts, whatever the thresholds
            .filter(|h| h["bleeding"] == true && h["bleeding_reason"]["kind"] != "budget_enforced")
            .count()
    };
    let default = report_json(&["sample_logs", "--hops"]);
    assert!(
        count(&default) > 100,
        "the naive team's hops bleed by default"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[insights]\ngrowth-over-first = 100.0\ncost-share = 1.0\n",
    )
    .unwrap();
    let strict = report_json(&[
        "sample_logs",
        "--hops",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(count(&strict), 0);
    assert_eq!(
        strict["totals"], default["totals"],
        "thresholds change flags, never numbers"
    );
}

#[test]
fn calls_without_a_segment_are_a_none_row_as_on_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mixed.jsonl");
    std::fs::write(
        &log,
        "{\"run_id\":\"r1\",\"agent\":\"a\",\"segment\":\"pro\",\"model\":\"gpt-4.1\",\"input_tokens\":1000,\"output_tokens\":0}\n\
         {\"run_id\":\"r2\",\"agent\":\"a\",\"model\":\"gpt-4.1\",\"input_tokens\":3000,\"output_tokens\":0}\n",
    )
    .unwrap();
    let path = log.to_str().unwrap();
    for format in ["table", "markdown"] {
        let text = report(&[path, "--format", format]);
        let section = text.split("By segment").nth(1).expect("a segment section");
        let row = |name: &str| {
            section
                .lines()
                .find(|l| l.contains(name))
                .unwrap_or_else(|| panic!("no {name} row in {format}:\n{text}"))
                .to_owned()
        };
        assert!(row("(none)").contains("75.0%"), "{format}:\n{text}");
        assert!(row("pro").contains("25.0%"), "{format}:\n{text}");
        // (none) is the larger: listed first
        assert!(section.find("(none)") < section.find("pro"), "{text}");
    }
}

/// Writes `records` (one JSON object each) to a fresh `calls.jsonl`.
fn log_of(records: &[serde_json::Value]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calls.jsonl");
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (dir, path)
}

#[test]
fn json_money_is_the_exact_decimal_never_a_float() {
    let record = |run: &str, cost: &str| {
        serde_json::json!({"run_id": run, "agent": "a", "model": "gpt-4o",
            "input_tokens": 1, "output_tokens": 1, "cost_usd": cost})
    };
    let (_dir, log) = log_of(&[
        record("r", "12345.000000000001"),
        record("r", "0.1"),
        record("s", "0.000000000001"),
    ]);
    let text = report(&[&log, "--format", "json", "--hops"]);
    // As f64 the sum is 12345.1, and 1e-12 prints in exponent notation.
    assert!(
        text.contains("\"cost_usd\": 12345.100000000002,")
            || text.contains("\"cost_usd\": 12345.100000000001,"),
        "{text}"
    );
    assert!(
        text.contains("\"reported_cost_usd\": 12345.100000000001,"),
        "{text}"
    );
    assert!(
        text.contains("\"reported_cost_usd\": 0.000000000001,"),
        "{text}"
    );
    assert!(!text.contains("e-"), "no exponent notation: {text}");
    // Still a JSON number, and exactly the decimal for a reader that keeps it.
    let json: Value = serde_json::from_str(&text).unwrap();
    assert!(json["totals"]["reported_cost_usd"].is_number());
}

/// Whether `c` could drive a terminal or reorder text (`sanitize`'s set).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}')
}

const HOSTILE: [&str; 14] = [
    "=HYPERLINK(\"http://evil.example\",\"x\")",
    "+1+1",
    "-2+3",
    "@SUM(A1:A2)",
    "\tcmd",
    "\rcmd",
    "osc\u{1b}]52;c;ZXZpbA==\u{7}",
    "clear\u{1b}[2J",
    "c1\u{9b}31m",
    "bidi\u{202e}gnp.exe",
    " =1+2",
    "\u{a0}=1+2",
    "%0A=1",
    " \t@SUM(A1)",
];

#[test]
fn csv_escapes_control_characters_and_neutralises_formulas() {
    let records: Vec<Value> = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, name)| {
            serde_json::json!({"run_id": name, "hop": 1, "agent": name, "model": name,
                "segment": name, "input_tokens": 10 + i, "output_tokens": 1})
        })
        .collect();
    let (_dir, log) = log_of(&records);
    let text = report(&[&log, "--format", "csv", "--hops"]);
    assert!(!text.chars().any(|c| is_unsafe(c) && c != '\n'), "{text:?}");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let text_columns = ["key", "run_id", "agent", "model", "segment"].map(column);
    let mut keys = Vec::new();
    for row in reader.records() {
        let row = row.unwrap();
        for (i, cell) in row.iter().enumerate() {
            if text_columns.contains(&i) {
                let start = cell.trim_start_matches([' ', '\u{a0}']);
                assert!(
                    !start.starts_with(['=', '+', '-', '@', '\t', '\r', '%']),
                    "{cell:?} in {row:?}"
                );
            } else if i >= column("events") && i != column("provenance") && !cell.is_empty() {
                assert!(cell.parse::<f64>().is_ok(), "numeric cell {cell:?}");
            }
        }
        if &row[0] == "agent" {
            keys.push(row[1].to_owned());
        }
    }
    for expected in [
        "'=HYPERLINK(\"http://evil.example\",\"x\")",
        "'+1+1",
        "'-2+3",
        "'@SUM(A1:A2)",
        "\\u{9}cmd",
        "\\u{d}cmd",
        "osc\\u{1b}]52;c;ZXZpbA==\\u{7}",
        "clear\\u{1b}[2J",
        "c1\\u{9b}31m",
        "bidi\\u{202e}gnp.exe",
        "' =1+2",
        "'\u{a0}=1+2",
        "'%0A=1",
        "' \\u{9}@SUM(A1)",
    ] {
        assert!(keys.iter().any(|k| k == expected), "{expected}: {keys:?}");
    }
}

#[test]
fn markdown_and_table_cells_cannot_break_out() {
    let mut names: Vec<&str> = HOSTILE.to_vec();
    names.push("pipe|tick`star*under_score[link](x)<b>");
    let records: Vec<Value> = names
        .iter()
        .map(|name| {
            serde_json::json!({"run_id": name, "hop": 1, "agent": name, "model": "gpt-4o",
                "segment": name, "input_tokens": 10, "output_tokens": 1})
        })
        .collect();
    let (_dir, log) = log_of(&records);
    for format in ["markdown", "table"] {
        let text = report(&[&log, "--format", format, "--hops", "--top", "0"]);
        assert!(!text.chars().any(|c| is_unsafe(c) && c != '\n'), "{text:?}");
        if format == "markdown" {
            assert!(
                text.contains("pipe\\|tick\\`star\\*under\\_score\\[link\\](x)\\<b\\>"),
                "{text}"
            );
            // Every table row has as many cells as its header.
            for table in text.split("\n\n").filter(|t| t.starts_with('|')) {
                let cells = |line: &str| line.replace("\\|", "").matches('|').count();
                let mut lines = table.lines();
                let header = cells(lines.next().unwrap());
                assert!(lines.all(|l| cells(l) == header), "{table}");
            }
        }
    }
}

#[test]
fn markdown_columns_line_up_after_a_replaced_character() {
    let records: Vec<Value> = ["esc\u{1b}[2Jx", "plain"]
        .iter()
        .map(|name| {
            serde_json::json!({"run_id": "r", "hop": 1, "agent": name, "model": "gpt-4o",
                "input_tokens": 10, "output_tokens": 1})
        })
        .collect();
    let (_dir, log) = log_of(&records);
    let text = report(&[&log, "--format", "markdown"]);
    let start = text.find("| agent").expect("an agent table");
    let table: Vec<&str> = text[start..]
        .lines()
        .take_while(|l| l.starts_with('|'))
        .collect();
    let width = |line: &str| unicode_width::UnicodeWidthStr::width(line);
    assert!(table.len() >= 4, "{text}");
    assert!(
        table.iter().all(|l| width(l) == width(table[0])),
        "every row as wide as the header:\n{}",
        table.join("\n")
    );
}

#[test]
fn fifos_and_devices_in_a_reported_directory_are_skipped_and_listed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.jsonl"),
        "{\"run_id\":\"r\",\"agent\":\"a\",\"model\":\"gpt-4o\",\"input_tokens\":10,\"output_tokens\":5}\n",
    )
    .unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(dir.path().join("fifo.jsonl"))
            .status()
            .unwrap()
            .success()
    );
    symlink("/dev/zero", dir.path().join("zero.jsonl")).unwrap();
    let json = report_json(&[dir.path().to_str().unwrap()]);
    assert_eq!(json["ingest"]["events"], 1, "{json}");
    let sources = json["ingest"]["sources"].as_array().unwrap();
    for (name, why) in [("fifo.jsonl", "a pipe"), ("zero.jsonl", "a device")] {
        assert!(
            sources.iter().any(|s| {
                s["name"].as_str().is_some_and(|n| n.ends_with(name))
                    && s["errors"] == 1
                    && s["last_error"].as_str().is_some_and(|e| e.contains(why))
            }),
            "{name}: {sources:?}"
        );
    }
}
