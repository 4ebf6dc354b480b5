//! Schema rules of `docs/schema.md`, one test each.

use super::*;

const ORIGIN: LineOrigin<'static> = LineOrigin {
    source: "test.jsonl",
    rough: false,
};

fn parse(line: &str) -> Result<TelemetryEvent<'_>, ParseError> {
    parse_line(line.as_bytes(), ORIGIN)
}

fn reason(line: &str) -> String {
    parse(line).unwrap_err().to_string()
}

#[test]
fn full_hop_record_normalizes_to_disjoint_buckets() {
    let line = r#"{"ts":"2026-11-28T10:00:00Z","run_id":"r1","hop":2,"agent":"writer","parent_agent":"planner","user":"u1","segment":"pro","task":"draft","tool":"search","provider":"openai","model":"gpt-4o","input_tokens":1000,"cache_read_tokens":600,"cache_write_tokens":100,"cache_write_1h_tokens":50,"output_tokens":300,"reasoning_tokens":120,"cost_usd":0.0123,"latency_ms":850,"status":"ok","extra":{"ignored":[1,2]}}"#;
    let event = parse(line).unwrap();
    assert_eq!(event.kind, EventKind::Hop);
    assert_eq!(event.ts_ms, Some(1_795_860_000_000));
    assert_eq!(event.run_id, "r1");
    assert_eq!(event.hop, Some(2));
    assert_eq!(event.agent, "writer");
    assert_eq!(event.parent_agent.as_deref(), Some("planner"));
    assert_eq!(event.segment.as_deref(), Some("pro"));
    assert_eq!(event.tool.as_deref(), Some("search"));
    assert_eq!(
        event.usage,
        Usage {
            input_uncached: 250,
            cache_read: 600,
            cache_write_5m: 100,
            cache_write_1h: 50,
            output: 300,
            reasoning: 120
        }
    );
    assert_eq!(
        event.usage.input_total(),
        1000,
        "input_tokens includes cache"
    );
    assert_eq!(
        event.reported_cost,
        Some(Usd::parse_decimal("0.0123").unwrap())
    );
    assert_eq!(event.latency_ms, Some(850));
    assert!(!event.estimated);
}

#[test]
fn strings_borrow_from_the_line_when_unescaped() {
    let event =
        parse(r#"{"run_id":"r1","agent":"a","model":"gpt-4o","input_tokens":1,"output_tokens":1}"#)
            .unwrap();
    assert!(matches!(event.agent, Cow::Borrowed(_)));
    let escaped = parse(
        r#"{"run_id":"r1","agent":"a\u00e9","model":"gpt-4o","input_tokens":1,"output_tokens":1}"#,
    )
    .unwrap();
    assert_eq!(escaped.agent, "aé");
}

#[test]
fn epoch_milliseconds_and_offsets_are_accepted() {
    let ms =
        parse(r#"{"ts":1795860000000,"model":"m","input_tokens":1,"output_tokens":1}"#).unwrap();
    let offset = parse(
        r#"{"ts":"2026-11-28T11:00:00+01:00","model":"m","input_tokens":1,"output_tokens":1}"#,
    )
    .unwrap();
    assert_eq!(ms.ts_ms, Some(1_795_860_000_000));
    assert_eq!(offset.ts_ms, ms.ts_ms);
}

#[test]
fn epoch_seconds_and_bad_dates_are_rejected_with_a_reason() {
    let err = reason(r#"{"ts":1795860000,"model":"m","input_tokens":1,"output_tokens":1}"#);
    assert!(err.contains("epoch seconds"), "{err}");
    let err = reason(r#"{"ts":"yesterday","model":"m","input_tokens":1,"output_tokens":1}"#);
    assert!(err.contains("not RFC 3339"), "{err}");
}

#[test]
fn missing_identity_gets_defaults() {
    let event = parse(
        r#"{"ts":"2026-11-28T10:00:00Z","model":"gpt-4o","input_tokens":5,"output_tokens":1}"#,
    )
    .unwrap();
    assert_eq!(
        event.run_id, "auto:test.jsonl:2026-11-28",
        "stable synthetic run id"
    );
    assert_eq!(event.agent, UNKNOWN);
    assert_eq!(event.hop, None, "arrival order is assigned by the ledger");
    let no_model =
        parse(r#"{"run_id":"r","agent":"","input_tokens":5,"output_tokens":1}"#).unwrap();
    assert_eq!(no_model.model, UNKNOWN);
    assert_eq!(no_model.agent, UNKNOWN, "empty counts as missing");
    let untimed = parse(r#"{"model":"m","input_tokens":5,"output_tokens":1}"#).unwrap();
    assert_eq!(untimed.run_id, "auto:test.jsonl");
}

#[test]
fn cache_subsets_larger_than_input_are_rejected() {
    let err = reason(
        r#"{"model":"m","input_tokens":100,"cache_read_tokens":80,"cache_write_tokens":30,"output_tokens":1}"#,
    );
    assert!(err.contains("exceed input_tokens (100)"), "{err}");
    // Anthropic-style exclusive input is the classic mistake this catches.
    let err = reason(
        r#"{"model":"m","input_tokens":3,"cache_write_1h_tokens":141272,"output_tokens":1}"#,
    );
    assert!(err.contains("must include cached tokens"), "{err}");
    assert!(parse(r#"{"model":"m","input_tokens":110,"cache_read_tokens":80,"cache_write_tokens":30,"output_tokens":1}"#).is_ok());
}

#[test]
fn reasoning_larger_than_output_is_rejected() {
    let err = reason(r#"{"model":"m","input_tokens":1,"output_tokens":10,"reasoning_tokens":11}"#);
    assert!(
        err.contains("reasoning_tokens (11) exceed output_tokens (10)"),
        "{err}"
    );
}

#[test]
fn missing_counts_without_text_are_rejected() {
    let err = reason(r#"{"model":"m","output_tokens":1}"#);
    assert!(err.contains("missing input_tokens"), "{err}");
    let err = reason(r#"{"model":"m","input_tokens":1}"#);
    assert!(err.contains("missing output_tokens"), "{err}");
}

#[test]
fn counts_are_estimated_from_text_and_marked() {
    let event = parse(r#"{"model":"gpt-4o","prompt":"Hello there, how are you today?","completion":"Fine, thanks.","input_tokens":null}"#).unwrap();
    assert!(event.estimated);
    assert!(
        event.usage.input_uncached > 3 && event.usage.input_uncached < 20,
        "{:?}",
        event.usage
    );
    assert!(
        event.usage.output > 1 && event.usage.output < 10,
        "{:?}",
        event.usage
    );
    let exact =
        parse(r#"{"model":"gpt-4o","prompt":"ignored","input_tokens":7,"output_tokens":2}"#)
            .unwrap();
    assert!(!exact.estimated, "given counts win over text");
    assert_eq!(exact.usage.input_uncached, 7);
}

#[test]
fn wrong_types_and_negative_numbers_are_rejected() {
    assert!(
        reason(r#"{"model":"m","input_tokens":-1,"output_tokens":1}"#).contains("invalid value")
    );
    assert!(
        reason(r#"{"model":"m","input_tokens":"12","output_tokens":1}"#).contains("invalid type")
    );
    assert!(
        reason(r#"{"model":"m","input_tokens":1,"output_tokens":1,"hop":"two"}"#)
            .contains("invalid type")
    );
    assert!(
        reason(r#"{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":-0.5}"#)
            .contains("negative")
    );
}

#[test]
fn invalid_json_and_utf8_are_distinguished() {
    assert_eq!(
        parse_line(b"{\"model\":\"\xff\"}", ORIGIN),
        Err(ParseError::InvalidUtf8)
    );
    let err = reason(r#"{"model":"m","#);
    assert!(err.starts_with("invalid JSON"), "{err}");
    assert!(
        !err.contains("line 1"),
        "line numbers are the caller's: {err}"
    );
    assert!(reason("[1,2,3]").starts_with("invalid JSON"));
    assert!(reason("not json at all").starts_with("invalid JSON"));
}

#[test]
fn unknown_type_is_rejected() {
    let err = reason(r#"{"type":"heartbeat","model":"m"}"#);
    assert!(err.contains("unknown type 'heartbeat'"), "{err}");
}

#[test]
fn budget_and_run_end_events_need_no_usage() {
    let event = parse(r#"{"type":"budget_exceeded","run_id":"r","hop":4,"agent":"writer","limit_kind":"total_run","limit":20000,"tokens":23100,"action":"abort"}"#).unwrap();
    assert_eq!(
        event.kind,
        EventKind::BudgetExceeded {
            limit_kind: Some("total_run".into()),
            limit: Some(20000),
            observed: Some(23100),
            action: Some("abort".into())
        }
    );
    assert_eq!(event.usage, Usage::default());
    let end = parse(r#"{"type":"run_end","run_id":"r","status":"aborted"}"#).unwrap();
    assert_eq!(end.kind, EventKind::RunEnd);
    assert_eq!(end.status.as_deref(), Some("aborted"));
}

#[test]
fn reported_cost_is_exact_from_numbers_and_strings() {
    let number =
        parse(r#"{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":0.00064965}"#).unwrap();
    assert_eq!(number.reported_cost.unwrap().picos(), 649_650_000);
    let string =
        parse(r#"{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":"1.5e-07"}"#).unwrap();
    assert_eq!(string.reported_cost.unwrap().picos(), 150_000);
    let integer =
        parse(r#"{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":2}"#).unwrap();
    assert_eq!(integer.reported_cost.unwrap().to_string(), "2");
}

#[test]
fn into_owned_keeps_every_field() {
    let line = String::from(
        r#"{"ts":1795860000000,"run_id":"r","hop":1,"agent":"a","segment":"s","model":"gpt-4o","input_tokens":3,"output_tokens":4}"#,
    );
    let event = parse(&line).unwrap();
    let owned = event.clone().into_owned();
    drop(line);
    assert_eq!(owned.run_id, "r");
    assert_eq!(owned.segment.as_deref(), Some("s"));
    assert_eq!(owned.usage.output, 4);
}

#[test]
fn fast_timestamp_path_agrees_with_chrono() {
    let samples = [
        "2026-11-28T10:00:00Z",
        "2026-11-28T10:00:00.1Z",
        "2026-11-28T10:00:00.123Z",
        "2026-11-28T10:00:00.123456789Z",
        "2026-11-28T10:00:00.999+05:30",
        "2026-11-28T10:00:00-08:00",
        "1999-12-31T23:59:59z",
        "2000-02-29T00:00:00Z",
        "2024-02-29T12:34:56.789Z",
        "1970-01-01T00:00:00Z",
        "2100-03-01T00:00:00+00:00",
    ];
    for text in samples {
        let chrono_ms = chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis();
        assert_eq!(fast_rfc3339_millis(text), Some(chrono_ms), "{text}");
    }
    // a sweep over days, hours and offsets
    let mut ts = 946_684_800_000_i64; // 2000-01-01
    while ts < 4_102_444_800_000 {
        let t = chrono::DateTime::from_timestamp_millis(ts).unwrap();
        let text = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        assert_eq!(fast_rfc3339_millis(&text), Some(ts), "{text}");
        let shifted = t
            .with_timezone(&chrono::FixedOffset::east_opt(-(3 * 3600 + 1800)).unwrap())
            .to_rfc3339();
        assert_eq!(fast_rfc3339_millis(&shifted), Some(ts), "{shifted}");
        ts += 86_400_000 * 13 + 3_600_000 * 7 + 61_001;
    }
}

#[test]
fn fast_timestamp_path_declines_what_it_does_not_know() {
    for text in [
        "2026-02-30T00:00:00Z",
        "2026-11-28T24:00:00Z",
        "2026-11-28T10:00:60Z",
        "2026-11-28 10:00:00Z",
        "2026-11-28T10:00:00",
        "2026-11-28T10:00:00.Z",
        "2026-11-28T10:00:00+0100",
    ] {
        assert_eq!(fast_rfc3339_millis(text), None, "{text}");
    }
}

#[test]
fn synthetic_run_ids_name_the_utc_day_as_chrono_does() {
    for ts in [
        0_i64,
        951_782_400_000,
        1_772_445_600_000,
        1_772_531_999_999,
        4_102_444_800_000,
        -86_400_001,
        253_402_300_799_000,
    ] {
        let chrono = chrono::DateTime::from_timestamp_millis(ts)
            .map(|t| format!("auto:f:{}", t.format("%Y-%m-%d")))
            .unwrap();
        assert_eq!(synthetic_run_id("f", Some(ts)), chrono, "{ts}");
    }
    assert_eq!(synthetic_run_id("f", None), "auto:f");
}

#[test]
fn token_counts_of_ten_billion_or_more_are_implausible() {
    for field in [
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "reasoning_tokens",
    ] {
        let line =
            format!(r#"{{"model":"m","input_tokens":1,"output_tokens":1,"{field}":10000000000}}"#)
                .replacen(&format!(r#""{field}":1,"#), "", 1);
        let reason = reason(&line);
        assert!(
            reason.contains(&format!("{field} 10000000000 is implausible")),
            "{field}: {reason}"
        );
        assert!(reason.contains("10^10"), "{reason}");
    }
    let most = r#"{"model":"m","input_tokens":9999999998,"cache_read_tokens":9999999998,"output_tokens":1,"reasoning_tokens":1}"#;
    assert_eq!(parse(most).unwrap().usage.cache_read, 9_999_999_998);
    // A call's input and output together are limited too.
    let both = r#"{"model":"m","input_tokens":9999999999,"output_tokens":1}"#;
    assert!(
        reason(both).contains("total tokens 10000000000 is implausible"),
        "{}",
        reason(both)
    );
    // The limit holds whichever path reads the line.
    let escaped = r#"{"model":"\u006d","input_tokens":10000000000,"output_tokens":1}"#;
    assert!(
        reason(escaped).contains("implausible"),
        "{}",
        reason(escaped)
    );
}

#[test]
fn costs_of_a_hundred_thousand_dollars_or_more_are_implausible() {
    for cost in [
        "100000",
        "1e5",
        "\"100000\"",
        "\"9e23\"",
        "1e300",
        "18446744073709551615",
    ] {
        let line =
            format!(r#"{{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":{cost}}}"#);
        let reason = reason(&line);
        assert!(
            reason.contains("implausible") || reason.contains("out of range"),
            "{cost}: {reason}"
        );
    }
    let line =
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":"99999.999999999999"}"#;
    assert_eq!(
        parse(line).unwrap().reported_cost,
        Some(Usd::parse_decimal("99999.999999999999").unwrap())
    );
}

/// Costs are whole picodollars; finer digits are rejected unless they are
/// binary floating-point noise (issue 11: `1e-30` became $0 silently).
#[test]
fn costs_finer_than_a_picodollar_are_rejected_unless_float_noise() {
    for cost in [
        "1e-30",
        "\"1e-30\"",
        "0.0000000000015",
        "\"0.0000000000015\"",
        "1.0000000000005",
    ] {
        let line =
            format!(r#"{{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":{cost}}}"#);
        let reason = reason(&line);
        assert!(
            reason.contains("finer than a picodollar"),
            "{cost}: {reason}"
        );
    }
    for (cost, exact) in [
        ("0.011349000000000001", "0.011349"),
        ("\"0.011349000000000001\"", "0.011349"),
        ("0.30000000000000004", "0.3"),
        ("3.0000000000000004e-06", "0.000003"),
        ("1.5e-07", "0.00000015"),
        ("0.000000000001", "0.000000000001"),
        ("0", "0"),
    ] {
        let line =
            format!(r#"{{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":{cost}}}"#);
        assert_eq!(
            parse(&line).unwrap().reported_cost.map(|c| c.to_string()),
            Some(exact.to_owned()),
            "{cost}"
        );
    }
}

/// A hop index of 10^9 or more is rejected (an arrival-order position
/// after it could not advance past u32::MAX).
#[test]
fn hop_indexes_of_a_billion_or_more_are_rejected() {
    for hop in [
        "1000000000",
        "4294967295",
        "4294967296",
        "18446744073709551615",
    ] {
        let line = format!(r#"{{"model":"m","hop":{hop},"input_tokens":1,"output_tokens":1}}"#);
        let reason = reason(&line);
        assert!(
            reason.contains(&format!("hop {hop} is out of range")),
            "{hop}: {reason}"
        );
    }
    let line = r#"{"model":"m","hop":999999999,"input_tokens":1,"output_tokens":1}"#;
    assert_eq!(parse(line).unwrap().hop, Some(999_999_999));
}

#[test]
fn prompts_become_fingerprints_and_never_text() {
    use crate::types::prompt::PromptPrint;
    let print = |line: &str| parse(line).unwrap().prompt;
    // The text, escaped or not, gives the same prints (exact and SimHash).
    let plain =
        print(r#"{"model":"m","prompt":"Café au lait?","input_tokens":3,"output_tokens":1}"#);
    let escaped =
        print(r#"{"model":"m","prompt":"Caf\u00e9  AU lait?","input_tokens":3,"output_tokens":1}"#);
    assert_eq!(plain, Some(PromptPrint::of_text("café au lait?")));
    assert_eq!(plain, escaped);
    assert!(plain.unwrap().near.is_some());
    // A hash: exact only; with text too, the hash's exact print and the
    // text's SimHash.
    let hashed = print(r#"{"model":"m","prompt_hash":"ab12","input_tokens":3,"output_tokens":1}"#);
    assert_eq!(hashed, PromptPrint::of_hash("ab12"));
    let both = print(
        r#"{"model":"m","prompt_hash":"ab12","prompt":"Café au lait?","input_tokens":3,"output_tokens":1}"#,
    );
    assert_eq!(
        both,
        PromptPrint::of_record(Some("Café au lait?"), Some("ab12"))
    );
    // Counted from the text, fingerprinted all the same.
    let counted = parse(r#"{"model":"m","prompt":"Café au lait?","output_tokens":1}"#).unwrap();
    assert!(counted.estimated);
    assert_eq!(counted.prompt, plain);
    // Nothing to fingerprint, or not a call.
    assert_eq!(
        print(r#"{"model":"m","input_tokens":3,"output_tokens":1}"#),
        None
    );
    assert_eq!(
        print(r#"{"model":"m","prompt_hash":"  ","input_tokens":3,"output_tokens":1}"#),
        None
    );
    assert_eq!(
        print(r#"{"type":"run_end","run_id":"r","prompt_hash":"ab12"}"#),
        None
    );
    assert!(
        reason(r#"{"model":"m","prompt_hash":12,"input_tokens":3,"output_tokens":1}"#)
            .contains("invalid type: integer `12`, expected a string")
    );
}
