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
