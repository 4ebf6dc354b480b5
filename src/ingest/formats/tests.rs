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

/// One line per place a format reports a cost, with `{COST}` where the
/// value goes (review findings 1, 2 and 4).
const COST_LINES: &[(&str, &str)] = &[
    (
        "native",
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":{COST}}"#,
    ),
    (
        "openai",
        r#"{"id":"chatcmpl-1","object":"chat.completion","created":1778662800,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"cost":{COST}}}"#,
    ),
    (
        "openai",
        r#"{"id":"chatcmpl-1","object":"chat.completion","created":1778662800,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1},"cost_usd":{COST}}"#,
    ),
    (
        "litellm",
        r#"{"id":"litellm-1","call_type":"acompletion","response_cost":{COST},"status":"success","custom_llm_provider":"openai","prompt_tokens":1,"completion_tokens":1,"startTime":1778662804.5,"endTime":1778662805.75,"model":"gpt-4o-mini"}"#,
    ),
    (
        "claude-code",
        r#"{"parentUuid":null,"isSidechain":false,"userType":"external","cwd":"/x","sessionId":"s-1","version":"1.0.0","costUSD":{COST},"message":{"id":"msg_cc_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":1,"output_tokens":1}},"requestId":"req_1","type":"assistant","uuid":"u-1","timestamp":"2026-05-13T09:00:03.000Z"}"#,
    ),
];

/// The cost each line of [`COST_LINES`] yields for `value` written there:
/// the reported cost, or the rejection's reason.
fn costs_for(value: &str) -> Vec<(&'static str, Result<String, String>)> {
    COST_LINES
        .iter()
        .map(|(name, template)| {
            let line = template.replace("{COST}", value);
            let mut decoder = Decoder::plain("t.jsonl");
            let (outcomes, events) = decode_all(&mut decoder, &[&line]);
            let result = match &outcomes[0] {
                Outcome::Rejected { reason, .. } => Err(reason.clone()),
                _ => match events.as_slice() {
                    [(_, event)] => Ok(event
                        .reported_cost
                        .map_or_else(|| "none".to_owned(), |c| c.to_string())),
                    _ => Err(format!("{outcomes:?}: {} events", events.len())),
                },
            };
            (*name, result)
        })
        .collect()
}

/// Every format reads a reported cost from the text written, by one rule
/// (`Usd::parse_reported`): whole picodollars exactly, float noise past
/// them dropped, anything finer or $10^5 and more rejected, with the text
/// quoted in the reason. Through `f64`, `1e-400` became $0 and
/// `12345.000000000001` became 12345.000000000002 (or 12345).
#[test]
fn every_format_reads_a_reported_cost_from_its_text() {
    for (value, exact) in [
        ("12345.000000000001", "12345.000000000001"),
        ("\"12345.000000000001\"", "12345.000000000001"),
        ("99999.999999999999", "99999.999999999999"),
        ("\"99999.999999999999\"", "99999.999999999999"),
        ("0.011349000000000001", "0.011349"),
        ("0.00064965", "0.00064965"),
        ("1E-3", "0.001"),
        ("0", "0"),
    ] {
        for (name, result) in costs_for(value) {
            assert_eq!(result, Ok(exact.to_owned()), "{name}: {value}");
        }
    }
    for (value, text, why) in [
        ("1e-400", "1e-400", "finer than a picodollar"),
        ("\"1e-400\"", "1e-400", "finer than a picodollar"),
        ("4.9e-324", "4.9e-324", "finer than a picodollar"),
        (
            "0.00000000000150000000001",
            "0.00000000000150000000001",
            "finer than a picodollar",
        ),
        ("1e-30", "1e-30", "finer than a picodollar"),
        ("100000", "100000", "implausible"),
        ("99999.9999999999999", "99999.9999999999999", "implausible"),
        ("1e400", "1e400", "implausible"),
        ("\"9e23\"", "9e23", "implausible"),
        ("-1", "-1", "negative"),
    ] {
        for (name, result) in costs_for(value) {
            let reason = result.expect_err(&format!("{name}: {value}"));
            assert!(
                reason.starts_with(&format!("{name}: "))
                    && reason.contains(&format!("'{text}'"))
                    && reason.contains(why),
                "{name}: {value}: {reason}"
            );
        }
    }
}

/// A call's total tokens are limited as its buckets are: an OpenAI
/// `total_tokens` whose remainder becomes output (and reasoning) cannot
/// bring a call to 10^10 tokens (review finding 5).
#[test]
fn a_derived_total_of_ten_billion_tokens_is_rejected() {
    let line = |total: u64| {
        format!(
            r#"{{"id":"chatcmpl-1","object":"chat.completion","created":1778662800,"model":"gpt-4o","choices":[],"usage":{{"prompt_tokens":1,"completion_tokens":1,"total_tokens":{total}}}}}"#
        )
    };
    let max = crate::types::usage::MAX_CALL_TOKENS;
    let (snap, stats) = report(&[&line(max)]);
    assert_eq!(stats.malformed, 1, "{:?}", snap.totals);
    assert!(
        stats.malformed_samples[0]
            .reason
            .contains("total tokens 10000000000 is implausible"),
        "{:?}",
        stats.malformed_samples[0]
    );
    let (snap, stats) = report(&[&line(max - 1)]);
    assert_eq!(stats.malformed, 0, "{:?}", stats.malformed_samples);
    assert_eq!(snap.totals.output_tokens, max - 2);
    assert_eq!(snap.totals.reasoning_tokens, max - 3);
    // Input and output each under the limit, together over it.
    let half = max / 2;
    let native = format!(r#"{{"model":"m","input_tokens":{half},"output_tokens":{half}}}"#);
    let (_, stats) = report(&[&native]);
    assert_eq!(stats.malformed, 1);
}

/// How each format spells a token count (formats.md, schema.md): the
/// native schema takes JSON integers only; the other formats also take
/// an integral float (`12.0`, `1E2`) or a decimal string (`"12"`).
#[test]
fn token_count_spellings_per_format() {
    let native = |n: &str| format!(r#"{{"model":"m","input_tokens":{n},"output_tokens":1}}"#);
    let openai = |n: &str| {
        format!(
            r#"{{"id":"chatcmpl-1","object":"chat.completion","created":1778662800,"model":"gpt-4o","choices":[],"usage":{{"prompt_tokens":{n},"completion_tokens":1}}}}"#
        )
    };
    for spelling in ["100.0", "1E2", "\"100\"", "-1", "1.5"] {
        let (_, stats) = report(&[&native(spelling)]);
        assert_eq!(stats.malformed, 1, "native {spelling}");
    }
    for spelling in ["100", "100.0", "1E2", "\"100\""] {
        let (snap, stats) = report(&[&openai(spelling)]);
        assert_eq!(stats.malformed, 0, "openai {spelling}");
        assert_eq!(snap.totals.input_tokens, 100, "openai {spelling}");
    }
    for spelling in ["-1", "1.5", "\"1.5\"", "\"x\""] {
        let (_, stats) = report(&[&openai(spelling)]);
        assert_eq!(stats.malformed, 1, "openai {spelling}");
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

mod properties {
    //! Every format's decoder on generated lines (`scripts/fuzz.sh` runs
    //! this for minutes): runs of real lines from the format fixtures and
    //! `sample_logs/`, with values swapped for hostile ones and bytes
    //! changed. No panic; a rejection says why; whatever is emitted, on
    //! any path, is within the per-call limits.
    use proptest::prelude::*;

    use crate::ingest::formats::mutation::replace_value;

    use super::*;
    use crate::types::event::MAX_HOP;
    use crate::types::money::{MAX_CALL_COST, Usd};

    /// Runs of consecutive lines (stateful formats need their context),
    /// per file.
    fn files() -> Vec<Vec<Vec<u8>>> {
        let mut files = Vec::new();
        let mut dirs = vec![
            std::path::PathBuf::from("tests/fixtures/formats"),
            std::path::PathBuf::from("sample_logs"),
        ];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|x| x == "jsonl") {
                    let data = std::fs::read(&path).unwrap();
                    let lines: Vec<Vec<u8>> = data
                        .split(|b| *b == b'\n')
                        .map(<[u8]>::to_vec)
                        .take(400)
                        .collect();
                    files.push(lines);
                }
            }
        }
        assert!(files.len() >= 10, "{}", files.len());
        files
    }

    const HOSTILE: &[&str] = &[
        "9223372036854775808",
        "9223372036854775807",
        "\"9223372036854775807\"",
        "18446744073709551615",
        "10000000000",
        "9999999999",
        "4294967295",
        "-1",
        "1e-30",
        "1e24",
        "\"9e23\"",
        "99999.99",
        "0.30000000000000004",
        "1.5",
        "null",
        "\"\"",
        "\"\\u001b]52;c;aGk=\\u0007\"",
        "[]",
        "{}",
    ];

    fn mutate(line: &mut Vec<u8>, at: prop::sample::Index, pick: prop::sample::Index, kind: u8) {
        let value = HOSTILE[pick.index(HOSTILE.len())].as_bytes();
        match kind % 3 {
            0 | 1 if replace_value(line, at, value, b",}]") => {}
            _ => {
                let pos = at.index(line.len() + 1);
                let pool = b"\"{}[],:0\\\xff";
                line.insert(pos, pool[pick.index(pool.len())]);
            }
        }
    }

    fn runs() -> impl Strategy<Value = (Vec<Vec<u8>>, bool)> {
        let files = files();
        (
            prop::sample::select(files),
            any::<prop::sample::Index>(),
            1_usize..8,
            proptest::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    any::<prop::sample::Index>(),
                    any::<prop::sample::Index>(),
                    any::<u8>(),
                ),
                0..6,
            ),
            any::<bool>(),
        )
            .prop_map(|(file, start, len, edits, bom)| {
                let start = start.index(file.len());
                let mut run: Vec<Vec<u8>> = file[start..(start + len).min(file.len())].to_vec();
                for (which, at, pick, kind) in edits {
                    let n = which.index(run.len());
                    mutate(&mut run[n], at, pick, kind);
                }
                (run, bom)
            })
    }

    proptest! {
        #[test]
        fn prop_every_decoder_is_total_and_within_limits((run, bom) in runs()) {
            // Two decoders in step: one reads bytes, the other text where
            // the line is UTF-8; they must agree line by line.
            let mut decoder = Decoder::plain("t.jsonl");
            let mut twin = Decoder::plain("t.jsonl");
            let mut out = Collect::default();
            let mut twin_out = Collect::default();
            for (n, line) in run.iter().enumerate() {
                let mut bytes = if bom && n == 0 { "\u{feff}".as_bytes().to_vec() } else { Vec::new() };
                bytes.extend_from_slice(line);
                let line_no = n as u64 + 1;
                let outcome = decoder.decode_bytes(&bytes, line_no, &mut out);
                let twin_outcome = match std::str::from_utf8(&bytes) {
                    Ok(text) => twin.decode_str(text, line_no, &mut twin_out),
                    Err(_) => twin.decode_bytes(&bytes, line_no, &mut twin_out),
                };
                prop_assert_eq!(&outcome, &twin_outcome);
                if let Outcome::Rejected { format, kind, reason } = &outcome {
                    match kind {
                        RejectKind::InvalidUtf8 => prop_assert!(!reason.is_empty()),
                        _ => prop_assert!(
                            reason.starts_with(&format!("{}: ", format.name())) && reason.len() > format.name().len() + 3,
                            "{}", reason
                        ),
                    }
                }
            }
            twin.flush(&mut twin_out);
            decoder.flush(&mut out);
            prop_assert_eq!(&out.0, &twin_out.0);
            for (_, event) in &out.0 {
                prop_assert_eq!(event.usage.plausible(), Ok(event.usage));
                prop_assert!(event.hop.is_none_or(|h| h <= MAX_HOP));
                prop_assert!(event
                    .reported_cost
                    .is_none_or(|c| c >= Usd::ZERO && c < MAX_CALL_COST), "{:?}", event.reported_cost);
            }
        }
    }
}
