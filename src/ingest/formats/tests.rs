//! The seam: detection, remembered formats, outcomes per line.

use super::*;
use crate::types::event::EventKind;

/// Collects what a decoder emits, owned.
#[derive(Default)]
pub(crate) struct Collect(pub Vec<(u64, TelemetryEvent<'static>)>);

impl Emit for Collect {
    fn event(&mut self, line_no: u64, event: TelemetryEvent<'_>) {
        self.0.push((line_no, event.into_owned()));
    }
}

pub(crate) fn decode_all(
    decoder: &mut Decoder,
    lines: &[&str],
) -> (Vec<Outcome>, Vec<(u64, TelemetryEvent<'static>)>) {
    let mut out = Collect::default();
    let outcomes = lines
        .iter()
        .zip(1..)
        .map(|(line, n)| decoder.decode_str(line, n, &mut out))
        .collect();
    decoder.flush(&mut out);
    (outcomes, out.0)
}

/// Lines of one source through a decoder and the fold: the snapshot and
/// statistics a report of them shows.
pub(crate) fn report(lines: &[&str]) -> (crate::model::Snapshot, crate::ingest::IngestStats) {
    report_with(DecoderConfig::default(), lines)
}

pub(crate) fn report_with(
    config: DecoderConfig,
    lines: &[&str],
) -> (crate::model::Snapshot, crate::ingest::IngestStats) {
    report_sources(config, &[lines])
}

/// Several sources (files), each with its own decoder, folded in order.
pub(crate) fn report_sources(
    config: DecoderConfig,
    sources: &[&[&str]],
) -> (crate::model::Snapshot, crate::ingest::IngestStats) {
    use crate::model::{Ledger, LedgerConfig};
    let mut ledger = Ledger::new(
        crate::pricing::PriceBook::embedded(),
        LedgerConfig::default(),
    );
    let mut ingestor =
        crate::ingest::Ingestor::new(&mut ledger, crate::ingest::TimeWindow::default());
    let config = std::sync::Arc::new(config);
    for (n, lines) in sources.iter().enumerate() {
        let name = if n == 0 {
            "t.jsonl".to_owned()
        } else {
            format!("t{n}.jsonl")
        };
        let source = ingestor.stats.add_source(name.clone(), name.clone());
        let mut decoder = Decoder::new(config.clone(), name.into());
        crate::ingest::parsed::fold_lines(
            &mut ingestor,
            source,
            &mut decoder,
            (1..).zip(lines.iter().map(|l| l.as_bytes())),
        );
    }
    let stats = ingestor.stats;
    (ledger.snapshot(), stats)
}

const NATIVE: &str = r#"{"ts":"2026-03-01T10:00:00Z","run_id":"r1","agent":"a","model":"gpt-4o-mini","input_tokens":10,"output_tokens":2}"#;

#[test]
fn native_lines_decode_as_before() {
    let mut decoder = Decoder::plain("f.jsonl");
    let (outcomes, events) = decode_all(&mut decoder, &[NATIVE, "", "{oops"]);
    assert_eq!(outcomes[0], Outcome::Events(Format::Native));
    assert_eq!(outcomes[1], Outcome::Blank);
    match &outcomes[2] {
        Outcome::Rejected { format, reason, .. } => {
            assert_eq!(*format, Format::Native);
            assert!(reason.starts_with("native: invalid JSON"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, 1);
    assert_eq!(events[0].1.format, Format::Native);
    assert_eq!(decoder.format(), Some(Format::Native));
}

#[test]
fn bytes_and_str_paths_agree() {
    let mut a = Decoder::plain("f");
    let mut b = Decoder::plain("f");
    let (mut x, mut y) = (Collect::default(), Collect::default());
    for (n, line) in [NATIVE, "data: [DONE]", "event: ping", "{oops"]
        .iter()
        .enumerate()
    {
        let n = n as u64 + 1;
        assert_eq!(
            a.decode_str(line, n, &mut x),
            b.decode_bytes(line.as_bytes(), n, &mut y)
        );
    }
    assert_eq!(x.0, y.0);
}

#[test]
fn server_sent_event_framing_is_read_through() {
    let mut decoder = Decoder::plain("f");
    let data = format!("data: {NATIVE}");
    let (outcomes, events) = decode_all(
        &mut decoder,
        &["event: message", &data, "data: [DONE]", ": keep-alive"],
    );
    assert_eq!(
        outcomes,
        vec![
            Outcome::Ignored(Format::Native),
            Outcome::Events(Format::Native),
            Outcome::Ignored(Format::Native),
            Outcome::Ignored(Format::Native),
        ]
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1.kind, EventKind::Hop);
}

/// Two records of 2^63 input tokens and one of 5 (issue 11, defect 3): the
/// implausible ones are rejected, so the sum is 5, not a wrapped value.
#[test]
fn implausible_token_counts_are_rejected_not_summed() {
    let huge =
        r#"{"run_id":"r","model":"gpt-4o","input_tokens":9223372036854775808,"output_tokens":0}"#;
    let small = r#"{"run_id":"r","model":"gpt-4o","input_tokens":5,"output_tokens":0}"#;
    let (snap, stats) = report(&[huge, huge, small]);
    assert_eq!(stats.malformed, 2, "{:?}", stats.malformed_samples);
    assert_eq!(snap.totals.input_tokens, 5);
    assert!(
        stats.malformed_samples[0]
            .reason
            .contains("input_tokens 9223372036854775808 is implausible"),
        "{:?}",
        stats.malformed_samples[0]
    );
}

/// 200 records of `cost_usd` "9e23" printed a negative total; now each is
/// rejected and the total stays exact.
#[test]
fn implausible_costs_are_rejected_not_summed() {
    let line =
        r#"{"run_id":"r","model":"gpt-4o","input_tokens":1,"output_tokens":0,"cost_usd":"9e23"}"#;
    let lines = vec![line; 200];
    let (snap, stats) = report(&lines);
    assert_eq!(stats.malformed, 200);
    assert_eq!(snap.totals.events, 0);
    assert!(
        stats.malformed_samples[0].reason.contains("implausible"),
        "{:?}",
        stats.malformed_samples[0]
    );
    let number =
        r#"{"run_id":"r","model":"gpt-4o","input_tokens":1,"output_tokens":0,"cost_usd":100000}"#;
    let (_, stats) = report(&[number]);
    assert_eq!(stats.malformed, 1, "$100,000 is at the limit");
    let fine =
        r#"{"run_id":"r","model":"gpt-4o","input_tokens":1,"output_tokens":0,"cost_usd":99999.99}"#;
    let (snap, stats) = report(&[fine]);
    assert_eq!(stats.malformed, 0, "{:?}", stats.malformed_samples);
    assert_eq!(snap.totals.cost.to_string(), "99999.99");
}

/// One hostile line per format: a usage bucket of 2^63 tokens, a cost of
/// $10^24. Each is rejected, named by its format, with the limit given.
#[test]
fn every_format_rejects_implausible_values() {
    const BIG: &str = "9223372036854775808";
    // OTLP/JSON integers are int64.
    const I64_MAX: &str = "9223372036854775807";
    let otlp = |tokens: &str| {
        format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[]}},"scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"a1b2c3d4e5f60718","name":"chat gpt-4o","kind":3,"startTimeUnixNano":"1778662806000000000","endTimeUnixNano":"1778662809500000000","attributes":[{{"key":"gen_ai.operation.name","value":{{"stringValue":"chat"}}}},{{"key":"gen_ai.request.model","value":{{"stringValue":"gpt-4o"}}}},{{"key":"gen_ai.usage.input_tokens","value":{{"intValue":"{tokens}"}}}},{{"key":"gen_ai.usage.output_tokens","value":{{"intValue":"1"}}}}]}}]}}]}}]}}"#
        )
    };
    let cases: Vec<(Format, Vec<String>)> = vec![
        (
            Format::Native,
            vec![format!(
                r#"{{"model":"m","input_tokens":1,"output_tokens":{BIG}}}"#
            )],
        ),
        (
            Format::OpenAi,
            vec![format!(
                r#"{{"id":"chatcmpl-1","object":"chat.completion","created":1778662800,"model":"gpt-4o","choices":[],"usage":{{"prompt_tokens":{BIG},"completion_tokens":1}}}}"#
            )],
        ),
        (
            Format::OpenAi,
            vec![
                r#"{"id":"chatcmpl-2","object":"chat.completion","created":1778662800,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"cost":1e24}}"#.to_owned(),
            ],
        ),
        (
            Format::Anthropic,
            vec![format!(
                r#"{{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{{"input_tokens":1,"cache_read_input_tokens":{BIG},"output_tokens":1}}}}"#
            )],
        ),
        (
            Format::Gemini,
            vec![format!(
                r#"{{"candidates":[],"usageMetadata":{{"promptTokenCount":1,"candidatesTokenCount":{BIG}}},"modelVersion":"gemini-2.5-flash","responseId":"g-1"}}"#
            )],
        ),
        (
            Format::ClaudeCode,
            vec![format!(
                r#"{{"parentUuid":null,"isSidechain":false,"userType":"external","cwd":"/x","sessionId":"s-1","version":"2.1.81","message":{{"id":"msg_cc_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{{"input_tokens":{BIG},"output_tokens":1}}}},"requestId":"req_1","type":"assistant","uuid":"u-1","timestamp":"2026-05-13T09:00:03.000Z"}}"#
            )],
        ),
        (
            Format::Codex,
            vec![
                r#"{"timestamp":"2026-05-13T09:00:00.000Z","type":"session_meta","payload":{"id":"019a","timestamp":"2026-05-13T09:00:00.000Z","cwd":"/x","originator":"codex_cli_rs","cli_version":"0.50.0"}}"#.to_owned(),
                format!(
                    r#"{{"timestamp":"2026-05-13T09:01:00.000Z","type":"event_msg","payload":{{"type":"token_count","info":{{"total_token_usage":{{"input_tokens":{BIG},"cached_input_tokens":0,"output_tokens":1,"reasoning_output_tokens":0,"total_tokens":1}},"last_token_usage":{{"input_tokens":{BIG},"cached_input_tokens":0,"output_tokens":1,"reasoning_output_tokens":0,"total_tokens":1}}}}}}}}"#
                ),
            ],
        ),
        (Format::Otlp, vec![otlp(I64_MAX)]),
        (
            Format::LiteLlm,
            vec![format!(
                r#"{{"id":"litellm-1","call_type":"acompletion","response_cost":0.1,"status":"success","custom_llm_provider":"openai","prompt_tokens":{BIG},"completion_tokens":1,"startTime":1778662804.5,"endTime":1778662805.75,"model":"gpt-4o-mini"}}"#
            )],
        ),
        (
            Format::LiteLlm,
            vec![
                r#"{"id":"litellm-2","call_type":"acompletion","response_cost":1e24,"status":"success","custom_llm_provider":"openai","prompt_tokens":1,"completion_tokens":1,"startTime":1778662804.5,"endTime":1778662805.75,"model":"gpt-4o-mini"}"#.to_owned(),
            ],
        ),
    ];
    for (format, lines) in cases {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (snap, stats) = report(&lines);
        assert_eq!(
            stats.malformed, 1,
            "{format}: {:?}",
            stats.malformed_samples
        );
        assert_eq!(snap.totals.events, 0, "{format}");
        let rejection = &stats.malformed_samples[0];
        assert!(
            rejection.reason.starts_with(format.name()) && rejection.reason.contains("implausible"),
            "{format}: {rejection:?}"
        );
        // Just below the limit is a real (if enormous) call.
        let limit = (crate::types::usage::MAX_CALL_TOKENS - 10).to_string();
        let under: Vec<String> = lines
            .iter()
            .map(|l| l.replace(BIG, &limit).replace(I64_MAX, &limit))
            .collect();
        if under.iter().zip(&lines).any(|(a, b)| a != b) {
            let under: Vec<&str> = under.iter().map(String::as_str).collect();
            let (snap, stats) = report(&under);
            assert_eq!(
                stats.malformed, 0,
                "{format}: {:?}",
                stats.malformed_samples
            );
            assert_eq!(snap.totals.events, 1, "{format}");
        }
    }
}

/// A UTF-8 byte-order mark where a file starts (or where two concatenated
/// files meet) is not part of the record.
#[test]
fn a_byte_order_mark_before_a_line_is_ignored() {
    let with_bom = format!("\u{feff}{NATIVE}");
    let mut decoder = Decoder::plain("f.jsonl");
    let (outcomes, events) = decode_all(&mut decoder, &[&with_bom, NATIVE, &with_bom, "\u{feff}"]);
    assert_eq!(
        outcomes,
        vec![
            Outcome::Events(Format::Native),
            Outcome::Events(Format::Native),
            Outcome::Events(Format::Native),
            Outcome::Blank
        ]
    );
    assert_eq!(events.len(), 3);
    let mut out = Collect::default();
    let mut decoder = Decoder::plain("f.jsonl");
    assert_eq!(
        decoder.decode_bytes(with_bom.as_bytes(), 1, &mut out),
        Outcome::Events(Format::Native)
    );
    let foreign = "\u{feff}{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1778662800,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}";
    let mut decoder = Decoder::plain("f.jsonl");
    let (outcomes, _) = decode_all(&mut decoder, &[foreign]);
    assert_eq!(outcomes, vec![Outcome::Events(Format::OpenAi)]);
}
