use super::*;
use crate::model::{Ledger, LedgerConfig};
use crate::types::event::TelemetryEvent;

fn ledger_of(lines: &str) -> Ledger {
    let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default().unlimited());
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let origin = crate::ingest::formats::native::LineOrigin {
            rough: false,
            source: "test",
        };
        let event = crate::ingest::formats::native::parse_str(line, origin).expect("valid line");
        ledger.apply(&event);
    }
    ledger
}

#[test]
fn debug_naive_run() {
    let text = std::fs::read_to_string("sample_logs/teams/naive-team.jsonl").unwrap();
    let first: String = text.lines().take(9).map(|l| format!("{l}\n")).collect();
    let ledger = ledger_of(&first);
    let snapshot = ledger.snapshot();
    let mut advisor = Advisor::new(
        AdvisorRules::default(),
        BleedRules::default(),
        &PriceBook::embedded(),
    );
    for w in advisor.what_if(&snapshot.runs[0]) {
        eprintln!("{w:?}");
    }
    let _: Option<TelemetryEvent<'_>> = None;
}
