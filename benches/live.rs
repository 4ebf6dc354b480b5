//! Live ingestion benchmarks (issue 3).
//!
//! ```text
//! cargo bench --bench live                  # latency + socket (in-process), short defaults
//! cargo bench --bench live -- latency       # append -> applied, file events and --poll
//! cargo bench --bench live -- socket        # 8 clients over unix and tcp, Sources + Aggregator in-process
//! cargo bench --bench live -- socket-bin    # the same through the real binary (--listen … --jsonl)
//! cargo bench --bench live -- backlog       # N MB of ~400-byte lines: tokwatch --follow FILE --jsonl --interval 100ms, vs report FILE
//! cargo bench --bench live -- stages        # the backlog's stages in-process: read+split+batch, aggregate, snapshot
//! ```
//!
//! Environment:
//! - `TOKWATCH_BENCH_APPENDS` (1000): appends per latency mode; `TOKWATCH_BENCH_GAP_MS` (20):
//!   the writer sleeps a uniform random 0..GAP ms between appends;
//! - `TOKWATCH_BENCH_POLL_MS` (100): `--poll-interval` of the poll mode;
//! - `TOKWATCH_BENCH_SOCKET_EVENTS` (1000000): events per transport, split over 8 clients;
//! - `TOKWATCH_BENCH_BACKLOG_MB` (1024) and `TOKWATCH_BENCH_PAD` (`unknown`: pad with an
//!   ignored `"trace"` field, which the native fast path hands to serde; `task`: pad the known
//!   `task` value, which stays on the fast path; `none`): the backlog corpus, cached as
//!   `$TMPDIR/tokwatch-backlog-<MB>mb-<pad>.jsonl`;
//! - `TOKWATCH_BENCH_INTERVAL` (`100ms`): `--interval` of the backlog run;
//!   `TOKWATCH_BENCH_BACKLOG_MAX_SECS` (300): give up after this long and report progress;
//!   `TOKWATCH_BENCH_BACKLOG_RUNS` (3): live runs, each followed by the same-run baseline
//!   (`tokwatch report FILE`); medians are printed at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokwatch::ingest::channel::IngestMsg;
use tokwatch::ingest::formats::Decoder;
use tokwatch::ingest::parsed::fold_lines;
use tokwatch::ingest::sources::files;
use tokwatch::ingest::sources::socket::ListenAddr;
use tokwatch::ingest::{Ingestor, TimeWindow};
use tokwatch::live::{Aggregator, LiveSettings, Sources};
use tokwatch::model::{Ledger, LedgerConfig};
use tokwatch::pricing::PriceBook;
use tokwatch::report::{self, ReportFormat, ReportOptions};

const TOKWATCH: &str = env!("CARGO_BIN_EXE_tokwatch");

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn settings() -> LiveSettings {
    LiveSettings {
        follow: Vec::new(),
        listen: Vec::new(),
        listen_token: None,
        max_clients: 1024,
        client_idle_timeout: tokwatch::ingest::sources::socket::DEFAULT_IDLE_TIMEOUT,
        poll: false,
        poll_interval: Duration::from_millis(500),
        from_end: false,
        window: TimeWindow::default(),
        max_line_bytes: files::DEFAULT_MAX_LINE_BYTES,
        record: None,
        decoders: std::sync::Arc::default(),
        otlp: tokwatch::ingest::sources::otlp::OtlpSettings::default(),
        metrics: None,
        advisor: None,
        run_limits: std::collections::BTreeMap::new(),
        alerts: tokwatch::live::AlertSettings::default(),
        duplicates: Default::default(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn aggregator() -> Aggregator {
    Aggregator::new(
        PriceBook::embedded(),
        TimeWindow::default(),
        files::DEFAULT_MAX_LINE_BYTES,
        None,
    )
}

/// `n` native lines of the benchmark workload (newline-terminated).
fn corpus_lines(n: u64, seed: u64) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    tokwatch::workload::write_bench_corpus(&path, n, seed).unwrap();
    let data = std::fs::read(&path).unwrap();
    data.split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn percentiles(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "n={} p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (min {:.2}, mean {:.2})",
        ms.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0),
        pct(0.0),
        ms.iter().sum::<f64>() / ms.len() as f64
    )
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

// ---------------------------------------------------------------- latency

/// What the machine itself gives: a thread sleeping the same random gaps hands
/// `Instant`s to another thread blocked on a channel; the receive delay is
/// the wake-up latency any design pays under the current load.
fn handoff_baseline() {
    let appends: usize = env_or("TOKWATCH_BENCH_APPENDS", 1000);
    let gap_ms: u64 = env_or("TOKWATCH_BENCH_GAP_MS", 20);
    let (tx, rx) = std::sync::mpsc::channel::<Instant>();
    let sender = std::thread::spawn(move || {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        for _ in 0..appends {
            std::thread::sleep(Duration::from_micros(rng.random_range(0..gap_ms * 1000)));
            tx.send(Instant::now()).unwrap();
        }
    });
    let ms: Vec<f64> = rx
        .iter()
        .map(|sent| sent.elapsed().as_secs_f64() * 1e3)
        .collect();
    sender.join().unwrap();
    println!(
        "latency {:<32} {}",
        "baseline: thread handoff",
        percentiles(ms)
    );
}

fn latency(poll: bool) {
    let appends: usize = env_or("TOKWATCH_BENCH_APPENDS", 1000);
    let gap_ms: u64 = env_or("TOKWATCH_BENCH_GAP_MS", 20);
    let poll_ms: u64 = env_or("TOKWATCH_BENCH_POLL_MS", 100);
    let lines = corpus_lines(appends as u64, 7);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.jsonl");
    std::fs::write(&path, "").unwrap();
    let rt = runtime();
    let mut sources = {
        let _guard = rt.enter();
        Sources::start(&LiveSettings {
            follow: vec![path.display().to_string()],
            poll,
            poll_interval: if poll {
                Duration::from_millis(poll_ms)
            } else {
                Duration::from_millis(500)
            },
            ..settings()
        })
        .unwrap()
    };
    let mut aggregator = aggregator();
    // let the follower open the file and the watcher settle
    std::thread::sleep(Duration::from_millis(300));
    let writer = std::thread::spawn(move || {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let mut written = Vec::with_capacity(lines.len());
        for line in &lines {
            std::thread::sleep(Duration::from_micros(rng.random_range(0..gap_ms * 1000)));
            written.push(Instant::now());
            file.write_all(line).unwrap(); // one write(2) per line
        }
        written
    });
    let mut applied: Vec<Option<Instant>> = vec![None; appends + 1];
    let mut count = 0;
    rt.block_on(async {
        while count < appends {
            let msg = match tokio::time::timeout(Duration::from_secs(10), sources.rx.recv()).await {
                Ok(Some(msg)) => msg,
                _ => break,
            };
            let range = match &msg {
                IngestMsg::Lines {
                    first_line, lines, ..
                } => {
                    let n = lines.len() as u64;
                    Some(*first_line..*first_line + n)
                }
                _ => None,
            };
            aggregator.handle(msg).unwrap();
            let now = Instant::now();
            for line in range.into_iter().flatten() {
                applied[line as usize] = Some(now);
                count += 1;
            }
        }
    });
    let written = writer.join().unwrap();
    let ms: Vec<f64> = written
        .iter()
        .enumerate()
        .filter_map(|(i, w)| applied[i + 1].map(|a| a.duration_since(*w).as_secs_f64() * 1e3))
        .collect();
    let events = aggregator.stats().events;
    rt.block_on(sources.shutdown(|m| aggregator.handle(m)))
        .unwrap();
    let mode = if poll {
        format!("--poll --poll-interval {poll_ms}ms")
    } else {
        "file events (notify)".to_owned()
    };
    println!(
        "latency {mode:<32} {}; events applied {events}/{appends}",
        percentiles(ms)
    );
}

// ---------------------------------------------------------------- sockets

const CLIENTS: usize = 8;

/// The corpus split into one contiguous chunk per client.
fn client_chunks(total: u64) -> (Vec<Arc<Vec<u8>>>, Vec<u8>) {
    let lines = corpus_lines(total, 9);
    let per = lines.len().div_ceil(CLIENTS);
    let chunks: Vec<Arc<Vec<u8>>> = lines.chunks(per).map(|c| Arc::new(c.concat())).collect();
    let all = lines.concat();
    (chunks, all)
}

/// Totals a one-shot report of the same bytes gives.
fn reference(all: &[u8]) -> (u64, u64, String) {
    let mut ledger = Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            recent_capacity: 0,
            period: None,
            per_minute: true,
            ..LedgerConfig::default()
        },
    );
    let mut ingestor = Ingestor::new(&mut ledger, TimeWindow::default());
    let source = ingestor.stats.source_named("ref", "ref");
    let mut decoder = Decoder::plain("ref");
    let lines = (1..)
        .zip(all.split(|b| *b == b'\n'))
        .filter(|(_, l)| !l.is_empty());
    fold_lines(&mut ingestor, source, &mut decoder, lines);
    let events = ingestor.stats.events;
    let snapshot = ledger.snapshot();
    (
        events,
        snapshot.totals.total_tokens,
        snapshot.totals.cost.to_string(),
    )
}

fn send_all(
    addr: &str,
    chunks: &[Arc<Vec<u8>>],
    barrier: &Arc<Barrier>,
) -> Vec<std::thread::JoinHandle<()>> {
    chunks
        .iter()
        .map(|chunk| {
            let (chunk, barrier, addr) = (chunk.clone(), barrier.clone(), addr.to_owned());
            std::thread::spawn(move || {
                let mut stream: Box<dyn Write> = if let Some(path) = addr.strip_prefix("unix:") {
                    Box::new(std::os::unix::net::UnixStream::connect(path).unwrap())
                } else {
                    let s =
                        std::net::TcpStream::connect(addr.strip_prefix("tcp:").unwrap()).unwrap();
                    Box::new(s)
                };
                barrier.wait();
                for piece in chunk.chunks(64 * 1024) {
                    stream.write_all(piece).unwrap();
                }
                stream.flush().unwrap();
            })
        })
        .collect()
}

fn socket_in_process() {
    let total: u64 = env_or("TOKWATCH_BENCH_SOCKET_EVENTS", 1_000_000);
    let (chunks, all) = client_chunks(total);
    let (ref_events, ref_tokens, ref_cost) = reference(&all);
    println!(
        "socket: {ref_events} events ({} bytes) from {CLIENTS} clients per transport; load {}",
        all.len(),
        load()
    );
    let dir = tempfile::tempdir().unwrap();
    for transport in ["unix", "tcp"] {
        let listen = if transport == "unix" {
            ListenAddr::Unix(dir.path().join("tw.sock"))
        } else {
            ListenAddr::Tcp("127.0.0.1:0".into())
        };
        let rt = runtime();
        let mut sources = {
            let _guard = rt.enter();
            Sources::start(&LiveSettings {
                listen: vec![listen],
                ..settings()
            })
            .unwrap()
        };
        let addr = sources.listening[0].clone();
        let mut aggregator = aggregator();
        let barrier = Arc::new(Barrier::new(CLIENTS + 1));
        let clients = send_all(&addr, &chunks, &barrier);
        barrier.wait();
        let start = Instant::now();
        let cpu0 = process_cpu();
        let mut all_at = None;
        rt.block_on(async {
            loop {
                match tokio::time::timeout(Duration::from_secs(10), sources.rx.recv()).await {
                    Ok(Some(msg)) => aggregator.handle(msg).unwrap(),
                    _ => break,
                }
                if aggregator.stats().events >= ref_events && all_at.is_none() {
                    all_at = Some(start.elapsed());
                }
                if all_at.is_some() && aggregator.stats().live_totals().clients_connected == 0 {
                    break;
                }
            }
        });
        let cpu = process_cpu() - cpu0;
        for c in clients {
            c.join().unwrap();
        }
        let stats = aggregator.stats().clone();
        let live = stats.live_totals();
        let snapshot = aggregator.snapshot();
        let elapsed = all_at.expect("not all events arrived").as_secs_f64();
        let equal = stats.events == ref_events
            && snapshot.totals.total_tokens == ref_tokens
            && snapshot.totals.cost.to_string() == ref_cost;
        println!(
            "socket {transport:<4} in-process: {:.0} events/s ({} events in {elapsed:.3} s; process CPU {cpu:.2} s = {:.2} cores); \
             dropped {} malformed {} incomplete {} clients {}; totals equal to a one-shot report: {equal}",
            stats.events as f64 / elapsed,
            stats.events,
            cpu / elapsed,
            live.dropped,
            stats.malformed,
            live.incomplete,
            live.clients_total,
        );
        rt.block_on(sources.shutdown(|m| aggregator.handle(m)))
            .unwrap();
    }
}

/// CPU seconds (user+system) of this process so far.
fn process_cpu() -> f64 {
    cpu_of("self")
}

fn cpu_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(at) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[at + 2..].split_whitespace().collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
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

// ---------------------------------------------------------------- the binary's snapshots

/// What a `--jsonl` snapshot line says about ingest, found without parsing
/// the (possibly huge) line: the last `"ingest":{…}` object's totals.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    at: Duration,
    bytes: usize,
    events: u64,
    dropped: u64,
    malformed: u64,
    caught_up: bool,
}

fn number_after(text: &str, key: &str) -> u64 {
    text.find(key)
        .map(|at| {
            text[at + key.len()..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .fold(0_u64, |n, d| n * 10 + u64::from(d - b'0'))
        })
        .unwrap_or(0)
}

fn seen_in(line: &[u8], at: Duration) -> Seen {
    let text = String::from_utf8_lossy(&line[line.len().saturating_sub(64 * 1024)..]);
    let ingest = &text[text.rfind("\"ingest\":").unwrap_or(0)..];
    Seen {
        at,
        bytes: line.len(),
        events: number_after(ingest, "\"events\":"),
        dropped: number_after(ingest, "\"dropped\":"),
        malformed: number_after(ingest, "\"malformed\":"),
        caught_up: ingest.contains("\"caught_up\":true"),
    }
}

/// Reads the child's stdout on a thread, sending what each snapshot says.
fn watch_snapshots(
    stdout: std::process::ChildStdout,
    start: Instant,
) -> std::sync::mpsc::Receiver<Seen> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(1 << 20, stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(seen_in(&line, start.elapsed())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

fn socket_binary() {
    let total: u64 = env_or("TOKWATCH_BENCH_SOCKET_EVENTS", 1_000_000);
    let (chunks, all) = client_chunks(total);
    let (ref_events, _, _) = reference(&all);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tw.sock");
    let start = Instant::now();
    let mut child = Command::new(TOKWATCH)
        .args(["--listen", &format!("unix:{}", sock.display())])
        .args(["--listen", "tcp:127.0.0.1:0", "--jsonl", "--interval", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut tcp = String::new();
    while tcp.is_empty() {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("tokwatch exited");
        }
        if let Some(addr) = line.trim().strip_prefix("tokwatch: listening on tcp:") {
            tcp = format!("tcp:{addr}");
        }
    }
    let snapshots = watch_snapshots(child.stdout.take().unwrap(), start);
    println!(
        "socket via the binary: tokwatch --listen unix:… --listen tcp:127.0.0.1:0 --jsonl --interval 1s; {ref_events} events per transport; load {}",
        load()
    );
    let mut expected = 0;
    for addr in [format!("unix:{}", sock.display()), tcp] {
        expected += ref_events;
        let barrier = Arc::new(Barrier::new(CLIENTS + 1));
        let clients = send_all(&addr, &chunks, &barrier);
        barrier.wait();
        let sent_at = start.elapsed();
        for c in clients {
            c.join().unwrap();
        }
        let sent_in = start.elapsed() - sent_at;
        let mut last = Seen::default();
        while last.events < expected {
            match snapshots.recv_timeout(Duration::from_secs(30)) {
                Ok(seen) => last = seen,
                Err(_) => break,
            }
        }
        let took = last.at.saturating_sub(sent_at).as_secs_f64();
        println!(
            "socket {:<4} via binary: >= {:.0} events/s (all {} events in a snapshot {took:.2} s after sending began; clients done writing after {:.2} s; \
             snapshots are 1 s apart, so this is a lower bound); dropped {} malformed {}; snapshot {} bytes",
            &addr[..addr.find(':').unwrap()],
            ref_events as f64 / took,
            last.events,
            sent_in.as_secs_f64(),
            last.dropped,
            last.malformed,
            last.bytes
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------- backlog

/// The backlog corpus: bench workload lines padded to ~400 bytes.
fn backlog_file(mb: u64, pad: &str) -> (PathBuf, u64) {
    let path = std::env::temp_dir().join(format!("tokwatch-backlog-{mb}mb-{pad}.jsonl"));
    let meta = path.with_extension("lines");
    if let (Ok(lines), true) = (std::fs::read_to_string(&meta), path.exists()) {
        return (path, lines.trim().parse().unwrap());
    }
    let target = mb * 1024 * 1024;
    let per_line = if pad == "none" { 266 } else { 400 };
    let events = target / per_line;
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw.jsonl");
    tokwatch::workload::write_bench_corpus(&raw, events, 7).unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&raw).unwrap());
    let mut lines = 0_u64;
    for line in reader.split(b'\n') {
        let mut line = line.unwrap();
        let short = 400_usize.saturating_sub(line.len() + 1);
        match pad {
            "unknown" if short > 12 => {
                // ,"trace":"xxx…"}  — an ignored field
                line.pop();
                line.extend_from_slice(b",\"trace\":\"");
                line.extend(std::iter::repeat_n(b'x', short - 12));
                line.extend_from_slice(b"\"}");
            }
            "task" if short > 0 => {
                // a longer known value: "task":"plan" -> "task":"plan-----…"
                let key = b"\"task\":\"";
                if let Some(at) = line.windows(key.len()).position(|w| w == key) {
                    let end = at
                        + key.len()
                        + line[at + key.len()..]
                            .iter()
                            .position(|b| *b == b'"')
                            .unwrap();
                    let fill: Vec<u8> = std::iter::repeat_n(b'-', short).collect();
                    line.splice(end..end, fill);
                }
            }
            _ => {}
        }
        out.write_all(&line).unwrap();
        out.write_all(b"\n").unwrap();
        lines += 1;
    }
    out.flush().unwrap();
    std::fs::write(&meta, lines.to_string()).unwrap();
    (path, lines)
}

/// What one live backlog run saw.
struct BacklogRun {
    first_ms: f64,
    /// Seconds until a snapshot held every line, if one did.
    all_s: Option<f64>,
}

fn backlog_once(path: &std::path::Path, lines: u64, bytes: u64, interval: &str) -> BacklogRun {
    let start = Instant::now();
    let mut child = Command::new(TOKWATCH)
        .args([
            "--follow",
            path.to_str().unwrap(),
            "--jsonl",
            "--interval",
            interval,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let snapshots = watch_snapshots(child.stdout.take().unwrap(), start);
    let mut first = None;
    let mut all = None;
    let mut count = 0;
    let mut emitted = 0;
    let mut last = Seen::default();
    let mut trail = Vec::new();
    let give_up = Duration::from_secs(env_or("TOKWATCH_BENCH_BACKLOG_MAX_SECS", 300));
    while let Ok(seen) = snapshots.recv_timeout(give_up.saturating_sub(start.elapsed())) {
        count += 1;
        emitted += seen.bytes;
        first.get_or_insert(seen);
        if trail.len() < 40 {
            trail.push(format!(
                "{:.2}s:{}ev{}",
                seen.at.as_secs_f64(),
                seen.events,
                if seen.caught_up { "/caught-up" } else { "" }
            ));
        }
        last = seen;
        if seen.events >= lines {
            all = Some(seen);
            break;
        }
    }
    // Read at once: tokwatch keeps running (following) until killed.
    let cpu = cpu_of(&pid.to_string());
    let hwm = rss_kb(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    let first = first.unwrap();
    println!(
        "  live: first snapshot after {:.0} ms ({} events in it, {} bytes)",
        first.at.as_secs_f64() * 1e3,
        first.events,
        first.bytes
    );
    match all {
        Some(all) => println!(
            "  live: all {} events in a snapshot after {:.3} s ({:.0} MB/s, {:.0} events/s); {count} snapshots, {:.1} MB of JSON; \
             CPU {cpu:.2} s ({:.2} cores); peak RSS {} MB; dropped {} malformed {}; caught_up {}",
            all.events,
            all.at.as_secs_f64(),
            bytes as f64 / 1e6 / all.at.as_secs_f64(),
            lines as f64 / all.at.as_secs_f64(),
            emitted as f64 / 1e6,
            cpu / all.at.as_secs_f64(),
            hwm / 1024,
            all.dropped,
            all.malformed,
            all.caught_up
        ),
        None => println!(
            "  live: gave up after {:.0} s: the last snapshot ({:.1} s) had {} of {lines} events ({:.0} events/s); {count} snapshots; CPU {cpu:.1} s, peak RSS {} MB",
            start.elapsed().as_secs_f64(),
            last.at.as_secs_f64(),
            last.events,
            last.events as f64 / last.at.as_secs_f64(),
            hwm / 1024
        ),
    }
    println!("  snapshots (time:events): {}", trail.join(" "));
    BacklogRun {
        first_ms: first.at.as_secs_f64() * 1e3,
        all_s: all.map(|a| a.at.as_secs_f64()),
    }
}

/// The same-run baseline: `tokwatch report FILE` (table: the top runs, like
/// live snapshots), the one-shot path (parse thread + fold) over the same
/// bytes. Seconds, wall.
fn backlog_baseline(path: &std::path::Path) -> f64 {
    let start = Instant::now();
    let out = Command::new(TOKWATCH)
        .args(["report", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    let secs = start.elapsed().as_secs_f64();
    println!("  baseline: tokwatch report FILE: {secs:.3} s");
    secs
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn backlog() {
    let mb: u64 = env_or("TOKWATCH_BENCH_BACKLOG_MB", 1024);
    let pad: String = env_or("TOKWATCH_BENCH_PAD", "unknown".to_owned());
    let interval: String = env_or("TOKWATCH_BENCH_INTERVAL", "100ms".to_owned());
    let runs: usize = env_or("TOKWATCH_BENCH_BACKLOG_RUNS", 3);
    let (path, lines) = backlog_file(mb, &pad);
    let bytes = std::fs::metadata(&path).unwrap().len();
    // page cache warm, as for a backlog just written
    let mut sink = vec![0; 1 << 20];
    let mut f = std::fs::File::open(&path).unwrap();
    while f.read(&mut sink).unwrap() > 0 {}
    println!(
        "backlog: {} ({bytes} bytes, {lines} lines, {:.0} bytes/line, pad {pad}); tokwatch --follow FILE --jsonl --interval {interval}; {runs} runs, each followed by the baseline",
        path.display(),
        bytes as f64 / lines as f64,
    );
    let (mut firsts, mut alls, mut bases) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        println!("run {run}; load {}", load());
        let live = backlog_once(&path, lines, bytes, &interval);
        let base = backlog_baseline(&path);
        firsts.push(live.first_ms);
        if let Some(all) = live.all_s {
            alls.push(all);
            println!("  ratio live / baseline: {:.2}", all / base);
        }
        bases.push(base);
    }
    if alls.len() == runs {
        let ratios: Vec<f64> = alls.iter().zip(&bases).map(|(a, b)| a / b).collect();
        println!(
            "median of {runs}: first snapshot {:.0} ms; all events {:.3} s (min {:.3}, max {:.3}); baseline {:.3} s; ratio {:.2}",
            median(firsts),
            median(alls.clone()),
            alls.iter().copied().fold(f64::INFINITY, f64::min),
            alls.iter().copied().fold(0.0, f64::max),
            median(bases),
            median(ratios)
        );
    }
}

/// The backlog's stages in-process, each alone: (1) the follower reading,
/// splitting, parsing and batching into the channel with a consumer that
/// keeps the batches; (2) the aggregator folding those batches (the ledger);
/// (3) one snapshot listing every run (`--top 0`): `Ledger::snapshot` + JSON
/// rendering.
fn stages() {
    let mb: u64 = env_or("TOKWATCH_BENCH_BACKLOG_MB", 1024);
    let pad: String = env_or("TOKWATCH_BENCH_PAD", "unknown".to_owned());
    let (path, lines) = backlog_file(mb, &pad);
    println!(
        "stages of {} ({lines} lines); load {}",
        path.display(),
        load()
    );
    // (1) follower -> channel, consumer keeps the batches
    let rt = runtime();
    let mut sources = {
        let _guard = rt.enter();
        Sources::start(&LiveSettings {
            follow: vec![path.display().to_string()],
            ..settings()
        })
        .unwrap()
    };
    let start = Instant::now();
    let cpu0 = process_cpu();
    let mut batches = Vec::new();
    let mut got = 0_u64;
    rt.block_on(async {
        while got < lines {
            match tokio::time::timeout(Duration::from_secs(10), sources.rx.recv()).await {
                Ok(Some(msg)) => {
                    if let IngestMsg::Lines { lines, .. } = &msg {
                        got += lines.len() as u64;
                    }
                    batches.push(msg);
                }
                _ => break,
            }
        }
    });
    let read = start.elapsed().as_secs_f64();
    let read_cpu = process_cpu() - cpu0;
    rt.block_on(sources.shutdown(|_| Ok(()))).unwrap();
    println!(
        "1. follower read + split + parse + batch + channel (the consumer keeps every batch, so all of them are fresh memory): {read:.3} s ({:.0} MB/s; process CPU {read_cpu:.2} s), {} batches",
        std::fs::metadata(&path).unwrap().len() as f64 / 1e6 / read,
        batches.len()
    );
    // (2) aggregator alone
    let mut aggregator = aggregator();
    let start = Instant::now();
    for msg in batches {
        aggregator.handle(msg).unwrap();
    }
    let agg = start.elapsed().as_secs_f64();
    println!(
        "2. Aggregator::handle (fold only: lines come parsed), one thread: {agg:.3} s ({:.0} events/s)",
        aggregator.stats().events as f64 / agg
    );
    // (3) one snapshot as --jsonl prints it
    let start = Instant::now();
    let snapshot = aggregator.snapshot();
    let snap = start.elapsed().as_secs_f64();
    let options = ReportOptions {
        format: ReportFormat::Json,
        hops: false,
        top_runs: 0,
        json_runs: 0,
        rules: tokwatch::model::insights::BleedRules::default(),
        filters: report::Filters::default(),
    };
    let start = Instant::now();
    let json = report::render_json_line(&snapshot, aggregator.stats(), &options, None);
    let render = start.elapsed().as_secs_f64();
    println!(
        "3. one --jsonl snapshot at the end listing every run (--top 0): Ledger::snapshot {:.0} ms + render_json_line {:.0} ms = {} bytes ({} runs)",
        snap * 1e3,
        render * 1e3,
        json.len(),
        snapshot.runs.len()
    );
}

fn main() {
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |p: &str| parts.iter().any(|a| a == p);
    let default = parts.is_empty();
    println!("load average: {}", load());
    if default || wanted("latency") {
        handoff_baseline();
        latency(false);
        latency(true);
    }
    if default || wanted("socket") {
        socket_in_process();
    }
    if wanted("socket-bin") {
        socket_binary();
    }
    if wanted("backlog") {
        backlog();
    }
    if wanted("stages") {
        stages();
    }
}
