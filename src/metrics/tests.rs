//! The exposition: golden text, escaping, exact money.

use std::sync::Arc;

use proptest::prelude::any;

use super::*;
use crate::model::ledger::series::{SeriesCaps, SeriesRow, SeriesSums};
use crate::types::usage::Usage;

fn row(
    agent: &str,
    segment: &str,
    model: &str,
    input: u64,
    picos: i128,
    priced: bool,
) -> SeriesRow {
    SeriesRow {
        agent: Arc::from(agent),
        segment: Arc::from(segment),
        model: Arc::from(model),
        sums: SeriesSums {
            usage: Usage {
                input_uncached: input,
                cache_read: 2 * input,
                cache_write_5m: 3,
                cache_write_1h: 4,
                output: input / 2,
                reasoning: input / 4,
            },
            cost: Usd::from_picos(picos),
            calls: 2,
            unpriced_calls: u64::from(!priced) * 2,
            priced_calls: u64::from(priced) * 2,
        },
        priced,
    }
}

fn small_view() -> MetricsView {
    MetricsView {
        series: SeriesView {
            rows: vec![
                row("writer", "", "gpt-4.1", 1_000, 12_345_678_901_234, true),
                row("planner", "acme/pro", "claude-sonnet-4", 400, 1, true),
                row("planner", "acme/pro", "house-model", 10, 0, false),
            ],
            unpriced_calls: vec![
                (Arc::from("claude-sonnet-4"), 0),
                (Arc::from("gpt-4.1"), 0),
                (Arc::from("house-model"), 2),
            ],
            corrections: 3,
            decreases: 1,
            caps: SeriesCaps::default(),
        },
        runs: 7,
        cost_last_minute: Usd::from_picos(1_500_000_000_000),
        cost_last_5_minutes: Usd::from_picos(1_000_000_000_001),
        ingest: vec![
            IngestKind {
                kind: "file",
                sources: 2,
                lines: 120,
                events: 100,
                malformed: 3,
                oversized: 1,
                dropped: 0,
                errors: 1,
                duplicates: 4,
                revised: 2,
                otlp: None,
            },
            IngestKind {
                kind: "otlp-http",
                sources: 1,
                lines: 4,
                events: 30,
                malformed: 1,
                otlp: Some(crate::ingest::stats::OtlpStats {
                    protocol: "otlp-http",
                    requests: 4,
                    spans_accepted: 40,
                    spans_rejected: 2,
                    throttled: 3,
                    refused: 1,
                }),
                ..IngestKind::default()
            },
            IngestKind {
                kind: "tcp",
                sources: 1,
                lines: 9,
                events: 9,
                ..IngestKind::default()
            },
        ],
        budgets: vec![BudgetGauge {
            runtime: Arc::from("unix:/run/agents.sock"),
            scope: Arc::from("agent:planner"),
            kind: Arc::from("max_cost_usd"),
            value: "2.5".into(),
        }],
        runtimes: vec![(Arc::from("unix:/run/agents.sock"), true)],
    }
}

#[test]
fn a_small_view_renders_as_the_golden_text() {
    insta::assert_snapshot!(render(&small_view()));
}

#[test]
fn label_values_are_escaped() {
    let mut view = MetricsView::default();
    view.series
        .rows
        .push(row("a\\b\"c\nd", "", "m", 1, 1, true));
    let text = render(&view);
    assert!(
        text.contains(r#"tokwatch_calls_total{agent="a\\b\"c\nd",segment="",model="m"} 2"#),
        "{text}"
    );
}

#[test]
fn unpriced_series_have_tokens_and_calls_but_no_cost() {
    let text = render(&small_view());
    assert!(text.contains(
        r#"tokwatch_calls_total{agent="planner",segment="acme/pro",model="house-model"} 2"#
    ));
    assert!(!text.contains(
        r#"tokwatch_cost_usd_total{agent="planner",segment="acme/pro",model="house-model"}"#
    ));
    assert!(text.contains(r#"tokwatch_unpriced_calls_total{model="house-model"} 2"#));
}

#[test]
fn money_is_the_exact_decimal() {
    let text = render(&small_view());
    assert!(
        text.contains(r#"model="gpt-4.1"} 12.345678901234"#),
        "{text}"
    );
    assert!(
        text.contains(r#"model="claude-sonnet-4"} 0.000000000001"#),
        "{text}"
    );
    // $1.000000000001 over five minutes: exact, one decimal more.
    assert!(text.contains(r#"{window="5m"} 0.2000000000002"#), "{text}");
    assert!(text.contains(r#"{window="1m"} 1.5"#), "{text}");
}

#[test]
fn every_sample_line_is_well_formed() {
    for line in render(&small_view()).lines() {
        if line.starts_with('#') {
            assert!(line.starts_with("# HELP tokwatch_") || line.starts_with("# TYPE tokwatch_"));
            continue;
        }
        let (_, value) = line.rsplit_once(' ').expect("a value");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

#[test]
fn source_kinds_come_from_source_names() {
    assert_eq!(source_kind("logs/a.jsonl"), "file");
    assert_eq!(source_kind("stdin"), "stdin");
    assert_eq!(source_kind("unix:/tmp/x.sock"), "unix");
    assert_eq!(source_kind("tcp:127.0.0.1:7700"), "tcp");
    assert_eq!(source_kind("otlp-http:127.0.0.1:4318"), "otlp-http");
    assert_eq!(source_kind("otlp-grpc:127.0.0.1:4317"), "otlp-grpc");
    assert_eq!(source_kind("C:weird"), "file");
}

#[test]
fn decimal_prints_exact_scaled_values() {
    assert_eq!(decimal(0, 13), "0");
    assert_eq!(decimal(20, 1), "2");
    assert_eq!(decimal(-25, 1), "-2.5");
    assert_eq!(per_minute(Usd::from_picos(3), 5), "0.0000000000006");
}

/// `a="x",b="y\"z"` back to the values, undoing the text format's escapes.
fn unescape_labels(text: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut chars = text.chars();
    while chars.by_ref().any(|c| c == '"') {
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        values.push(value);
    }
    values
}

proptest::proptest! {
    /// Whatever the telemetry names an agent, model or segment, each sample
    /// is one line whose labels read back as the sanitized, shortened value.
    #[test]
    fn any_label_value_round_trips_through_the_text_format(
        agent in "\\PC{0,40}|[\\\\\"\n\r\u{1b}\u{202e} a-z]{0,40}",
        model in any::<String>(),
        segment in any::<String>(),
    ) {
        use crate::model::ledger::series::label_value;
        let (a, m, s) = (label_value(&agent, 64), label_value(&model, 64), label_value(&segment, 64));
        let mut view = MetricsView::default();
        view.series.rows.push(SeriesRow {
            agent: a.clone(),
            segment: s.clone(),
            model: m.clone(),
            sums: SeriesSums { calls: 1, ..SeriesSums::default() },
            priced: false,
        });
        let text = render(&view);
        let line = text
            .lines()
            .find(|l| l.starts_with("tokwatch_calls_total{"))
            .expect("a calls sample");
        proptest::prop_assert!(line.ends_with("} 1"), "{}", line);
        let labels = &line["tokwatch_calls_total{".len()..line.len() - "} 1".len()];
        proptest::prop_assert_eq!(unescape_labels(labels), vec![a.to_string(), s.to_string(), m.to_string()]);
        proptest::prop_assert!(!a.chars().any(crate::sanitize::is_unsafe));
        proptest::prop_assert!(a.len() <= 64 && m.len() <= 64 && s.len() <= 64);
    }
}
