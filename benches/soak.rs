//! Memory soak (issue 3): `tokwatch --follow DIR --jsonl` while files in DIR
//! are appended to, rotated (rename + create) and copy-truncated without
//! pause; the process's RSS is sampled from /proc/PID/status.
//!
//! ```text
//! cargo bench --bench soak                              # 60 s
//! TOKWATCH_SOAK_SECS=600 cargo bench --bench soak       # 10 minutes
//! ```
//!
//! Environment: `TOKWATCH_SOAK_SECS` (60), `TOKWATCH_SOAK_SAMPLE_SECS` (10, RSS sampling
//! period), `TOKWATCH_SOAK_FILES` (4), `TOKWATCH_SOAK_RUN_IDS` (200: the bounded set of
//! run ids the records reuse, so the ledger's keys stop growing — memory grows with
//! distinct runs and hops by design), `TOKWATCH_SOAK_GAP_MS` (5: mean pause between
//! bursts of 1–20 lines), `TOKWATCH_SOAK_OP_MS` (1000: mean pause between rotations /
//! truncations).
//!
//! Exactness: a file is rotated or truncated only once tokwatch's latest
//! snapshot shows every line written to that path so far (the writer stops
//! appending to it meanwhile). Lines appended to a copy-truncated file after
//! tokwatch's last read are lost by design (docs/live.md, "Bounds with
//! truncation"); this soak does not race truncations, so the final totals must
//! equal what was written exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokwatch::workload::{RunSpec, Style, workflow_run};

const TOKWATCH: &str = env!("CARGO_BIN_EXE_tokwatch");

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the latest snapshot says about ingest.
#[derive(Debug, Clone, Default)]
struct Ingest {
    sequence: u64,
    lines: u64,
    events: u64,
    malformed: u64,
    dropped: u64,
    rotations: u64,
    truncations: u64,
    incomplete: u64,
    per_source: HashMap<String, u64>,
}

fn parse_snapshot(line: &str) -> Option<Ingest> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let ingest = v.get("ingest")?;
    let n = |o: &serde_json::Value, k: &str| o.get(k).and_then(serde_json::Value::as_u64);
    let live = ingest.get("live").unwrap_or(ingest);
    let mut per_source = HashMap::new();
    for source in ingest.get("sources")?.as_array()? {
        per_source.insert(
            source.get("name")?.as_str()?.to_owned(),
            n(source, "lines").unwrap_or(0),
        );
    }
    Some(Ingest {
        sequence: v.get("live").and_then(|l| n(l, "sequence")).unwrap_or(0),
        lines: n(ingest, "lines")?,
        events: n(ingest, "events")?,
        malformed: n(ingest, "malformed").unwrap_or(0),
        dropped: n(live, "dropped").unwrap_or(0),
        rotations: n(live, "rotations").unwrap_or(0),
        truncations: n(live, "truncations").unwrap_or(0),
        incomplete: n(live, "incomplete").unwrap_or(0),
        per_source,
    })
}

/// A pool of native lines over a bounded set of run ids.
fn line_pool(run_ids: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut lines = Vec::new();
    for run in 0..run_ids {
        let style = if run % 3 == 0 {
            Style::Naive
        } else {
            Style::Lean
        };
        let spec = RunSpec {
            run_id: format!("soak-{run:04}"),
            team: if style == Style::Naive {
                "naive"
            } else {
                "lean"
            },
            user: format!("u{:02}", run % 50),
            tier: "pro",
            start_ms: 1_795_420_800_000 + i64::try_from(run).unwrap() * 7_000,
        };
        lines.extend(
            workflow_run(style, &spec, &mut rng)
                .iter()
                .map(|r| r.to_line()),
        );
    }
    lines
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Rotate,
    Truncate,
}

struct Followed {
    path: PathBuf,
    file: File,
    /// Lines written to this path, over all its incarnations.
    written: u64,
    pending: Option<Op>,
}

fn open_append(path: &PathBuf) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let secs: u64 = env_or("TOKWATCH_SOAK_SECS", 60);
    let sample_secs: u64 = env_or("TOKWATCH_SOAK_SAMPLE_SECS", 10);
    let nfiles: usize = env_or("TOKWATCH_SOAK_FILES", 4);
    let run_ids: u64 = env_or("TOKWATCH_SOAK_RUN_IDS", 200);
    let gap_ms: u64 = env_or("TOKWATCH_SOAK_GAP_MS", 5);
    let op_ms: u64 = env_or("TOKWATCH_SOAK_OP_MS", 1000);
    let pool = line_pool(run_ids);
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<Followed> = (0..nfiles)
        .map(|i| {
            let path = dir.path().join(format!("agent-{i}.jsonl"));
            Followed {
                file: open_append(&path),
                path,
                written: 0,
                pending: None,
            }
        })
        .collect();

    let mut child = Command::new(TOKWATCH)
        .args(["--follow", dir.path().to_str().unwrap(), "--jsonl"])
        .args(["--interval", "500ms"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let latest = Arc::new(Mutex::new(Ingest::default()));
    {
        let latest = latest.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(ingest) = parse_snapshot(&line) {
                    *latest.lock().unwrap() = ingest;
                }
            }
        });
    }
    println!(
        "soak: {secs} s, {nfiles} files in {}, {run_ids} run ids ({} distinct lines reused), tokwatch pid {pid}; load {}",
        dir.path().display(),
        pool.len(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    std::thread::sleep(Duration::from_millis(300));

    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut next_sample = start;
    let mut next_op = start + Duration::from_millis(rng.random_range(0..2 * op_ms));
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let (mut total, mut next_line) = (0_u64, 0_usize);
    let (mut rotations, mut truncations) = (0_u64, 0_u64);
    let mut burst = Vec::new();
    while Instant::now() < deadline {
        let now = Instant::now();
        if now >= next_sample {
            samples.push((start.elapsed().as_secs(), rss_kb(pid, "VmRSS:")));
            next_sample += Duration::from_secs(sample_secs);
        }
        if now >= next_op {
            let active: Vec<usize> = (0..files.len())
                .filter(|&i| files[i].pending.is_none())
                .collect();
            if active.len() > 1 {
                let i = active[rng.random_range(0..active.len())];
                files[i].pending = Some(if rng.random_bool(0.5) {
                    Op::Rotate
                } else {
                    Op::Truncate
                });
            }
            next_op = now + Duration::from_millis(rng.random_range(0..2 * op_ms));
        }
        // rotate / truncate files tokwatch has read completely
        let seen = latest.lock().unwrap().per_source.clone();
        for f in &mut files {
            let Some(op) = f.pending else { continue };
            let name = f.path.display().to_string();
            if seen.get(&name).copied().unwrap_or(0) != f.written {
                continue;
            }
            match op {
                Op::Rotate => {
                    std::fs::rename(&f.path, f.path.with_extension("jsonl.1")).unwrap();
                    f.file = open_append(&f.path);
                    rotations += 1;
                }
                Op::Truncate => {
                    std::fs::copy(&f.path, f.path.with_extension("jsonl.copy")).unwrap();
                    f.file.set_len(0).unwrap();
                    truncations += 1;
                }
            }
            f.pending = None;
        }
        // a burst of lines to an active file
        let active: Vec<usize> = (0..files.len())
            .filter(|&i| files[i].pending.is_none())
            .collect();
        if !active.is_empty() {
            let f = &mut files[active[rng.random_range(0..active.len())]];
            let k = rng.random_range(1..=20_u64);
            burst.clear();
            for _ in 0..k {
                burst.extend_from_slice(pool[next_line % pool.len()].as_bytes());
                burst.push(b'\n');
                next_line += 1;
            }
            f.file.write_all(&burst).unwrap();
            f.written += k;
            total += k;
        }
        std::thread::sleep(Duration::from_micros(
            rng.random_range(0..2 * gap_ms * 1000),
        ));
    }
    let wrote_for = start.elapsed();
    // wait for tokwatch to catch up
    let wait = Instant::now();
    let mut last = latest.lock().unwrap().clone();
    while last.events < total && wait.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
        last = latest.lock().unwrap().clone();
    }
    samples.push((start.elapsed().as_secs(), rss_kb(pid, "VmRSS:")));
    let hwm = rss_kb(pid, "VmHWM:");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat[stat.rfind(')').map_or(0, |a| a + 2)..]
        .split_whitespace()
        .collect();
    let cpu = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    let _ = child.kill();
    let _ = child.wait();

    println!(
        "wrote {total} lines in {:.0} s ({:.0} lines/s); rotations {rotations}, copy-truncations {truncations}",
        wrote_for.as_secs_f64(),
        total as f64 / wrote_for.as_secs_f64()
    );
    println!(
        "tokwatch (snapshot #{}): lines {} events {} malformed {} dropped {} incomplete {} rotations {} truncations {}",
        last.sequence,
        last.lines,
        last.events,
        last.malformed,
        last.dropped,
        last.incomplete,
        last.rotations,
        last.truncations
    );
    println!(
        "totals equal what was written: {} (events {} vs {total} written)",
        last.events == total && last.lines == total,
        last.events
    );
    println!(
        "RSS (MB) every {sample_secs} s: {}",
        samples
            .iter()
            .map(|(t, kb)| format!("{t}s:{:.1}", *kb as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let rss: Vec<u64> = samples.iter().map(|s| s.1).collect();
    let half = &rss[rss.len() / 2..];
    println!(
        "RSS min {:.1} MB, max {:.1} MB, second half {:.1}..{:.1} MB; VmHWM {:.1} MB; tokwatch CPU {:.1} s",
        *rss.iter().min().unwrap() as f64 / 1024.0,
        *rss.iter().max().unwrap() as f64 / 1024.0,
        *half.iter().min().unwrap() as f64 / 1024.0,
        *half.iter().max().unwrap() as f64 / 1024.0,
        hwm as f64 / 1024.0,
        cpu / 100.0
    );
}
