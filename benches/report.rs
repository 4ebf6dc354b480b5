//! `report` throughput against a bare "split lines + serde_json typed parse"
//! loop over the same file, measured in the same run.
//!
//! cargo bench --bench report                 # generates a 1,000,000-event corpus in a temp dir
//! TOKWATCH_BENCH_FILE=path cargo bench --bench report

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokwatch::ingest::{Ingestor, TimeWindow, files};
use tokwatch::model::{Ledger, LedgerConfig};
use tokwatch::pricing::PriceBook;

/// The typed record the baseline parses: the fields the corpus has, strings
/// borrowed (`&str`: the fastest typed parse serde_json offers).
#[derive(Deserialize)]
#[allow(dead_code)]
struct Baseline<'a> {
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    ts: Option<&'a str>,
    run_id: Option<&'a str>,
    hop: Option<u32>,
    agent: Option<&'a str>,
    parent_agent: Option<&'a str>,
    user: Option<&'a str>,
    segment: Option<&'a str>,
    task: Option<&'a str>,
    tool: Option<&'a str>,
    model: Option<&'a str>,
    input_tokens: Option<u64>,
    cache_read_tokens: Option<u64>,
    cache_write_tokens: Option<u64>,
    output_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
    latency_ms: Option<u64>,
    status: Option<&'a str>,
}

fn baseline(path: &Path) -> (u64, u64) {
    let mut file = std::fs::File::open(path).expect("open corpus");
    let mut buffer = vec![0_u8; 1 << 20];
    let mut carry: Vec<u8> = Vec::new();
    let (mut events, mut tokens) = (0_u64, 0_u64);
    let mut parse = |line: &[u8]| {
        if let Ok(record) = serde_json::from_slice::<Baseline<'_>>(line) {
            events += 1;
            tokens += record.input_tokens.unwrap_or(0) + record.output_tokens.unwrap_or(0);
        }
    };
    loop {
        let n = file.read(&mut buffer).expect("read corpus");
        if n == 0 {
            break;
        }
        let mut rest = &buffer[..n];
        while let Some(pos) = memchr::memchr(b'\n', rest) {
            if carry.is_empty() {
                parse(&rest[..pos]);
            } else {
                carry.extend_from_slice(&rest[..pos]);
                parse(&carry);
                carry.clear();
            }
            rest = &rest[pos + 1..];
        }
        carry.extend_from_slice(rest);
    }
    (events, tokens)
}

fn parse_only(path: &Path) -> (u64, u64) {
    let data = std::fs::read(path).expect("read");
    let (mut events, mut tokens) = (0_u64, 0_u64);
    for line in data.split(|b| *b == b'\n') {
        if let Ok(e) = tokwatch::ingest::native::parse_line(line, tokwatch::ingest::LineOrigin { source: "x" }) {
            events += 1;
            tokens += e.usage.total();
        }
    }
    (events, tokens)
}

fn tokwatch_report(path: &Path) -> (u64, u64) {
    let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig { recent_capacity: 0, period: None });
    let mut ingestor = Ingestor::new(&mut ledger, TimeWindow::default());
    files::read_files(&[path.to_path_buf()], files::DEFAULT_MAX_LINE_BYTES, &mut ingestor).expect("read corpus");
    let events = ingestor.stats.events;
    let snapshot = ledger.snapshot();
    (events, snapshot.totals.total_tokens)
}

fn best_of(runs: usize, mut f: impl FnMut() -> (u64, u64)) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut events = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let (n, checksum) = f();
        best = best.min(start.elapsed());
        events = n;
        std::hint::black_box(checksum);
    }
    (best, events)
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = match std::env::var_os("TOKWATCH_BENCH_FILE") {
        Some(p) => PathBuf::from(p),
        None => {
            let path = dir.path().join("bench.jsonl");
            let bytes = tokwatch::workload::write_bench_corpus(&path, 1_000_000, 7).expect("write corpus");
            println!("corpus: 1,000,000 events, {bytes} bytes");
            path
        }
    };
    let runs = 5;
    // Interleave to share cache and frequency conditions.
    let (base, base_events) = best_of(runs, || baseline(&path));
    let (ours, our_events) = best_of(runs, || tokwatch_report(&path));
    if std::env::var_os("TOKWATCH_BENCH_PARTS").is_some() {
        let (parse, _) = best_of(runs, || parse_only(&path));
        println!("parse only: {:.3} s", parse.as_secs_f64());
    }
    let rate = |events: u64, d: Duration| events as f64 / d.as_secs_f64();
    println!("baseline split+serde typed parse: {:>8.3} s  {:>12.0} events/s ({base_events} events)", base.as_secs_f64(), rate(base_events, base));
    println!("tokwatch ingest+ledger+snapshot:  {:>8.3} s  {:>12.0} events/s ({our_events} events)", ours.as_secs_f64(), rate(our_events, ours));
    println!("ratio tokwatch / baseline: {:.2}x (goal <= 1.30x; best of {runs})", ours.as_secs_f64() / base.as_secs_f64());
}
