//! The floor `tokwatch report` is measured against (BENCHMARKS.md, "Report
//! against its floor"): the least a report of a native JSONL file must do,
//! on one thread. Read 1 MiB at a time, split lines with `memchr`, parse
//! each into a typed struct with borrowed strings (`serde_json`), and fold
//! its tokens into four hash maps: by run, agent, model and segment. No
//! prices, no validation, no hops, no rendering beyond a line of totals.
//!
//! ```sh
//! cargo build --release --example report_floor
//! target/release/examples/report_floor /tmp/bench1m.jsonl
//! ```

use std::io::Read as _;

use rustc_hash::FxHashMap;

#[path = "../benches/support/native_baseline.rs"]
mod native_baseline;
use native_baseline::Baseline;

const CHUNK: usize = 1024 * 1024;

#[derive(Default)]
struct Sums {
    events: u64,
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    reasoning: u64,
}

impl Sums {
    fn add(&mut self, r: &Baseline<'_>) {
        self.events += 1;
        self.input += r.input_tokens.unwrap_or(0);
        self.cache_read += r.cache_read_tokens.unwrap_or(0);
        self.cache_write += r.cache_write_tokens.unwrap_or(0);
        self.output += r.output_tokens.unwrap_or(0);
        self.reasoning += r.reasoning_tokens.unwrap_or(0);
    }
}

/// Adds the record to the row of `key`, allocating the key only when new.
fn fold(map: &mut FxHashMap<Box<str>, Sums>, key: &str, r: &Baseline<'_>) {
    match map.get_mut(key) {
        Some(sums) => sums.add(r),
        None => map.entry(key.into()).or_default().add(r),
    }
}

#[derive(Default)]
struct Floor {
    by_run: FxHashMap<Box<str>, Sums>,
    by_agent: FxHashMap<Box<str>, Sums>,
    by_model: FxHashMap<Box<str>, Sums>,
    by_segment: FxHashMap<Box<str>, Sums>,
    lines: u64,
    malformed: u64,
}

impl Floor {
    fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        match serde_json::from_slice::<Baseline<'_>>(line) {
            Ok(r) => {
                fold(&mut self.by_run, r.run_id.unwrap_or(""), &r);
                fold(&mut self.by_agent, r.agent.unwrap_or(""), &r);
                fold(&mut self.by_model, r.model.unwrap_or(""), &r);
                fold(&mut self.by_segment, r.segment.unwrap_or(""), &r);
            }
            Err(_) => self.malformed += 1,
        }
    }
}

fn main() -> std::io::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or_else(|| std::io::Error::other("usage: report_floor FILE"))?;
    let mut file = std::fs::File::open(path)?;
    let mut floor = Floor::default();
    let mut buf = vec![0_u8; CHUNK];
    // Bytes of an unfinished line at the start of `buf`.
    let mut kept = 0;
    loop {
        if kept == buf.len() {
            buf.resize(buf.len() * 2, 0); // a line longer than the buffer
        }
        let read = file.read(&mut buf[kept..])?;
        if read == 0 {
            if kept > 0 {
                floor.line(&buf[..kept]);
            }
            break;
        }
        let filled = kept + read;
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &buf[kept..filled]) {
            let end = kept + end;
            if end > start {
                floor.line(&buf[start..end]);
            }
            start = end + 1;
        }
        buf.copy_within(start..filled, 0);
        kept = filled - start;
    }
    let tokens: u64 = floor
        .by_run
        .values()
        .map(|s| s.input + s.cache_read + s.cache_write + s.output + s.reasoning)
        .sum();
    let events: u64 = floor.by_agent.values().map(|s| s.events).sum();
    println!(
        "lines {} events {events} malformed {} tokens {tokens} runs {} agents {} models {} segments {}",
        floor.lines,
        floor.malformed,
        floor.by_run.len(),
        floor.by_agent.len(),
        floor.by_model.len(),
        floor.by_segment.len()
    );
    Ok(())
}
