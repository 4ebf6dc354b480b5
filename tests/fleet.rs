//! Real clients against the real binary: the official OpenTelemetry Python
//! SDK sends GenAI spans through its OTLP/HTTP and OTLP/gRPC exporters
//! (`tests/otel/send_spans.py`), and a real Prometheus server (Debian's
//! `prometheus`) scrapes `/metrics`. The totals tokwatch shows must equal
//! what was sent: tokens, calls and runs against the sender's own arithmetic,
//! cost against `tokwatch report` of the same calls written as native lines,
//! and everything against `tokwatch report` of the same export requests
//! written as an OTLP/JSON file (one decoder for files and the wire).
//!
//! Prerequisites: `scripts/otel-venv.sh` (the SDK in `target/otel-venv`) and
//! `prometheus`/`promtool` on `PATH`; `.ci/run` installs both. Without them
//! the tests fail when `CI` is set, and are skipped with a loud message
//! otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Map, Value, json};

const WAIT: Duration = Duration::from_secs(30);

mod common;
const OTLP_TOKEN: &str = "fleet-otlp-token";
const METRICS_TOKEN: &str = "fleet-metrics-token";

// ---------------------------------------------------------------- prerequisites

/// Returns `found`, or fails (with `CI` set) or skips loudly without it.
fn prerequisite(what: &str, found: Option<PathBuf>, how: &str) -> Option<PathBuf> {
    if found.is_some() {
        return found;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is missing and CI is set: {how}"
    );
    // Straight to stderr: libtest captures `eprintln!` of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!! SKIPPED: {what} is missing ({how}); this test is not run here, CI runs it !!!!!\n"
    );
    None
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The virtualenv's interpreter, with the SDK importable.
fn otel_python() -> Option<PathBuf> {
    let python = repo().join("target/otel-venv/bin/python");
    let ok = Command::new(&python)
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http, opentelemetry.exporter.otlp.proto.grpc",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    prerequisite(
        "the OpenTelemetry Python SDK (target/otel-venv)",
        ok.then_some(python),
        "run scripts/otel-venv.sh",
    )
}

fn on_path(command: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(command))
        .find(|path| path.is_file())
}

fn prometheus_bins() -> Option<(PathBuf, PathBuf)> {
    let how = "apt-get install prometheus";
    let server = prerequisite("prometheus", on_path("prometheus"), how)?;
    let promtool = prerequisite("promtool", on_path("promtool"), how)?;
    Some((server, promtool))
}

// ---------------------------------------------------------------- tokwatch

/// tokwatch in `--jsonl` mode (or `--headless`); killed when dropped.
struct Tokwatch(common::tokwatch::Tokwatch);

impl Tokwatch {
    fn start(args: &[&str]) -> Tokwatch {
        Tokwatch::spawn(args, &["--jsonl", "--interval", "100ms"])
    }

    /// `--headless`: no snapshots, only the listeners' lines on stderr.
    fn start_headless(args: &[&str]) -> Tokwatch {
        Tokwatch::spawn(args, &["--headless"])
    }

    fn spawn(args: &[&str], mode: &[&str]) -> Tokwatch {
        Tokwatch(common::tokwatch::Tokwatch::spawn(
            &[args, mode].concat(),
            &[],
        ))
    }

    /// The address of a listener, from its `tokwatch: KIND listening on
    /// ADDR` line on stderr.
    fn listening(&mut self, kind: &str) -> SocketAddr {
        let addr = self.0.listening_all(kind, 1, WAIT).remove(0);
        addr.parse()
            .unwrap_or_else(|e| panic!("{kind} address {addr:?}: {e}"))
    }

    /// Waits for a snapshot on which `check` finds nothing wrong; on the
    /// deadline, fails with what it found wrong last.
    fn wait_until(&mut self, what: &str, check: impl Fn(&Value) -> Vec<String>) -> Value {
        self.0.wait_for(what, WAIT, |s| {
            let problems = check(s);
            if problems.is_empty() {
                Ok(())
            } else {
                Err(format!("\n  {}", problems.join("\n  ")))
            }
        })
    }
}

// ---------------------------------------------------------------- the SDK sender

/// One run of `tests/otel/send_spans.py`: the expected totals it printed,
/// and the files it wrote (native lines, OTLP/JSON requests).
struct Sent {
    protocol: String,
    expected: Value,
    native: PathBuf,
    otlp_json: PathBuf,
}

fn send(python: &Path, dir: &Path, protocol: &str, endpoint: &str, tag: &str, gzip: bool) -> Sent {
    send_with(python, dir, protocol, endpoint, tag, gzip, &[])
}

/// `send` with more arguments for the sender.
fn send_with(
    python: &Path,
    dir: &Path,
    protocol: &str,
    endpoint: &str,
    tag: &str,
    gzip: bool,
    more: &[&str],
) -> Sent {
    let native = dir.join(format!("{tag}.native.jsonl"));
    let otlp_json = dir.join(format!("{tag}.otlp.json"));
    let mut command = Command::new(python);
    command
        .arg(repo().join("tests/otel/send_spans.py"))
        .args(["--protocol", protocol, "--endpoint", endpoint, "--tag", tag])
        .args(["--token", OTLP_TOKEN])
        .arg("--native-out")
        .arg(&native)
        .arg("--otlp-json-out")
        .arg(&otlp_json)
        .args(more);
    if !gzip {
        command.arg("--no-gzip");
    }
    let out = command.output().expect("run send_spans.py");
    assert!(
        out.status.success(),
        "send_spans.py --protocol {protocol} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Value = serde_json::from_slice(&out.stdout).expect("send_spans.py prints JSON");
    assert_eq!(expected["exported_spans"], expected["spans"], "{expected}");
    assert!(
        expected["requests"].as_u64().unwrap() > 5,
        "the workload spans several requests: {expected}"
    );
    Sent {
        protocol: protocol.to_string(),
        expected,
        native,
        otlp_json,
    }
}

/// Adds `b` into `a`: objects key by key, numbers summed.
fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in b {
                match a.get_mut(key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        a.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (a @ Value::Number(_), Value::Number(b)) => {
            *a = json!(a.as_u64().unwrap() + b.as_u64().unwrap());
        }
        (a, b) => panic!("cannot merge {a} and {b}"),
    }
}

fn expected_of(sent: &[&Sent]) -> Value {
    let mut all = Value::Object(Map::new());
    for s in sent {
        let mut e = s.expected.clone();
        for key in ["spans", "exported_spans", "requests"] {
            e.as_object_mut().unwrap().remove(key);
        }
        merge(&mut all, &e);
    }
    all
}

/// The sender's bucket names → the snapshot's counters.
const BUCKETS: [(&str, &str); 7] = [
    ("calls", "events"),
    ("uncached_input", "uncached_input_tokens"),
    ("cache_read", "cache_read_tokens"),
    ("cache_write", "cache_write_tokens"),
    ("output", "output_tokens"),
    ("reasoning", "reasoning_tokens"),
    ("total", "total_tokens"),
];

/// Money and the counters that depend on prices: compared with the report
/// of the native lines. Money is the exact decimal text in both documents;
/// serde_json reads it as the nearest f64, and the amounts here (under
/// $1,000 with at most 12 decimals, so at most 15 significant digits) map
/// to distinct doubles, so equal doubles are equal decimals.
const PRICED: [&str; 5] = [
    "cost_usd",
    "computed_cost_usd",
    "reported_cost_usd",
    "unpriced_events",
    "unpriced_tokens",
];

fn row<'a>(list: &'a Value, field: &str, key: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|r| r[field] == key)
}

/// Compares one aggregate's counters with what was sent, and its money with
/// the report of the native lines.
fn compare_counters(
    out: &mut Vec<String>,
    what: &str,
    got: Option<&Value>,
    want: &Value,
    priced: Option<&Value>,
) {
    let Some(got) = got else {
        out.push(format!("{what}: missing"));
        return;
    };
    for (sent, field) in BUCKETS {
        if got[field] != want[sent] {
            out.push(format!(
                "{what}.{field}: {} (sent {})",
                got[field], want[sent]
            ));
        }
    }
    if got["cache_write_1h_tokens"] != 0 {
        out.push(format!(
            "{what}.cache_write_1h_tokens: {}",
            got["cache_write_1h_tokens"]
        ));
    }
    match priced {
        Some(priced) => {
            for field in PRICED {
                if got[field] != priced[field] {
                    out.push(format!(
                        "{what}.{field}: {} (report of the native lines: {})",
                        got[field], priced[field]
                    ));
                }
            }
        }
        None => out.push(format!("{what}: not in the report of the native lines")),
    }
}

/// What differs between the snapshot and what was sent.
fn differences(snapshot: &Value, expected: &Value, native: &Value, otlp: &Value) -> Vec<String> {
    let mut out = Vec::new();
    compare_counters(
        &mut out,
        "totals",
        Some(&snapshot["totals"]),
        &expected["totals"],
        Some(&native["totals"]),
    );
    if snapshot["totals"]["runs"] != expected["totals"]["runs"] {
        out.push(format!(
            "totals.runs: {} (sent {})",
            snapshot["totals"]["runs"], expected["totals"]["runs"]
        ));
    }
    for (list, field, sent) in [
        ("by_agent", "agent", "by_agent"),
        ("by_model", "model", "by_model"),
        ("runs", "run_id", "by_run"),
    ] {
        let want = expected[sent].as_object().unwrap();
        for (key, want) in want {
            compare_counters(
                &mut out,
                &format!("{list}[{key}]"),
                row(&snapshot[list], field, key),
                want,
                row(&native[list], field, key),
            );
        }
        let got = snapshot[list].as_array().map_or(0, Vec::len);
        if got != want.len() {
            out.push(format!(
                "{list}: {got} rows, sent {}: {:?}",
                want.len(),
                snapshot[list]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| &r[field])
                    .collect::<Vec<_>>()
            ));
        }
    }
    // The same export requests read from an OTLP/JSON file by `tokwatch
    // report`: the same decoder, so every aggregate is the same.
    if out.is_empty() {
        for key in ["totals", "by_agent", "by_model", "by_format"] {
            let mut got = snapshot[key].clone();
            let want = &otlp[key];
            if key == "totals" {
                got.as_object_mut().unwrap().remove("runs_evicted");
            }
            if &got != want {
                out.push(format!(
                    "{key} differs from the report of the same requests as an OTLP/JSON file:\n    live:   {got}\n    report: {want}"
                ));
            }
        }
    }
    out
}

fn report(files: &[&Path]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["report", "--format", "json", "--top", "0"])
        .args(files)
        .output()
        .expect("run tokwatch report");
    assert!(
        out.status.success(),
        "tokwatch report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ingest"]["malformed"], 0, "{}", report["ingest"]);
    report
}

/// Waits until tokwatch shows exactly what `sent` sent, and checks its
/// ingest statistics; returns that snapshot and the report of the native
/// lines.
fn assert_counts_what_was_sent(tokwatch: &mut Tokwatch, sent: &[&Sent]) -> (Value, Value) {
    let expected = expected_of(sent);
    let natives: Vec<&Path> = sent.iter().map(|s| s.native.as_path()).collect();
    let native = report(&natives);
    let files: Vec<&Path> = sent.iter().map(|s| s.otlp_json.as_path()).collect();
    let otlp = report(&files);
    // The workload's own invariants, so that the comparison means something.
    assert!(
        expected["totals"]["runs"].as_u64().unwrap() >= 5,
        "{expected}"
    );
    assert_eq!(native["totals"]["unpriced_events"], json!(sent.len()));
    assert_eq!(
        expected["totals"]["runs"],
        json!(5 * sent.len()),
        "the workloads' runs are distinct"
    );
    assert!(native["totals"]["cost_usd"].as_f64().unwrap() > 0.0);
    // (spans that carry no call, such as a last request of tool spans, are
    // waited for too: the totals can be complete before they are counted)
    let over_the_wire_spans: u64 = sent
        .iter()
        .filter(|s| s.protocol != "file")
        .map(|s| s.expected["spans"].as_u64().unwrap())
        .sum();
    let snapshot = tokwatch.wait_until("the totals of what the SDK sent", |s| {
        let mut problems = differences(s, &expected, &native, &otlp);
        let accepted: u64 = s["ingest"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|source| source["otlp"]["spans_accepted"].as_u64())
            .sum();
        if accepted < over_the_wire_spans {
            problems.push(format!(
                "{accepted} spans accepted of {over_the_wire_spans}"
            ));
        }
        problems
    });
    let ingest = &snapshot["ingest"];
    assert_eq!(ingest["malformed"], 0, "{ingest}");
    assert_eq!(ingest["dropped"], 0, "{ingest}");
    // Every span the SDK exported was accepted by a listener, none rejected.
    let over_the_wire: Vec<&&Sent> = sent.iter().filter(|s| s.protocol != "file").collect();
    if !over_the_wire.is_empty() {
        let spans: u64 = over_the_wire
            .iter()
            .map(|s| s.expected["spans"].as_u64().unwrap())
            .sum();
        let listeners: Vec<&Value> = ingest["sources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s.get("otlp"))
            .collect();
        let sum = |field: &str| -> u64 {
            listeners
                .iter()
                .map(|o| o[field].as_u64().unwrap_or(0))
                .sum()
        };
        assert_eq!(sum("spans_accepted"), spans, "{listeners:?}");
        assert_eq!(sum("spans_rejected"), 0, "{listeners:?}");
    }
    let unpriced = row(&snapshot["by_model"], "model", "acme-llm-7b-instruct").unwrap();
    assert_eq!(unpriced["priced"], false, "{unpriced}");
    assert_eq!(
        unpriced["cost_usd"],
        Value::Null,
        "unpriced, never $0: {unpriced}"
    );
    (snapshot, native)
}

fn source_names(snapshot: &Value) -> Vec<String> {
    snapshot["ingest"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------- tests: OTLP

/// The SDK's OTLP/HTTP exporter (protobuf, gzip, bearer token): every
/// token, call, run and cent it sent, attributed to the right agent; and
/// the `--record`ing of it replays to the same aggregates.
#[test]
fn otel_sdk_over_http_counts_exactly_what_was_sent() {
    let Some(python) = otel_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("received.jsonl");
    let mut tokwatch = Tokwatch::start(&[
        "--otlp",
        "127.0.0.1:0",
        "--otlp-token",
        OTLP_TOKEN,
        "--record",
        record.to_str().unwrap(),
    ]);
    let http = tokwatch.listening("otlp-http");
    let sent = send(
        &python,
        dir.path(),
        "http",
        &format!("http://{http}"),
        "h",
        true,
    );
    let (snapshot, _) = assert_counts_what_was_sent(&mut tokwatch, &[&sent]);
    assert!(
        source_names(&snapshot).contains(&format!("otlp-http:{http}")),
        "{:?}",
        source_names(&snapshot)
    );
    drop(tokwatch);
    let replay = report(&[record.as_path()]);
    for key in ["totals", "by_agent", "by_model", "by_format"] {
        let mut live = snapshot[key].clone();
        if key == "totals" {
            live.as_object_mut().unwrap().remove("runs_evicted");
        }
        assert_eq!(
            live, replay[key],
            "{key}: live, then the replay of --record"
        );
    }
}

/// A fleet: four agent processes export at the same time into one
/// tokwatch, two with the SDK's OTLP/gRPC exporter (bearer token in the
/// metadata) and two with its OTLP/HTTP exporter, gzip and plain: every
/// workload counted exactly, each listener its own source.
#[test]
fn otel_sdk_over_grpc_and_http_into_one_tokwatch() {
    let Some(python) = otel_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut tokwatch = Tokwatch::start(&[
        "--otlp",
        "127.0.0.1:0",
        "--otlp-grpc",
        "127.0.0.1:0",
        "--otlp-token",
        OTLP_TOKEN,
    ]);
    let http = tokwatch.listening("otlp-http");
    let grpc = tokwatch.listening("otlp-grpc");
    let (grpc_endpoint, http_endpoint) = (grpc.to_string(), format!("http://{http}"));
    let senders = [
        ("grpc", grpc_endpoint.as_str(), "g1", true),
        ("grpc", grpc_endpoint.as_str(), "g2", false),
        ("http", http_endpoint.as_str(), "u1", false),
        ("http", http_endpoint.as_str(), "u2", true),
    ];
    let sent: Vec<Sent> = std::thread::scope(|scope| {
        let running: Vec<_> = senders
            .iter()
            .map(|&(protocol, endpoint, tag, gzip)| {
                let (python, dir) = (&python, dir.path());
                scope.spawn(move || send(python, dir, protocol, endpoint, tag, gzip))
            })
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let sent: Vec<&Sent> = sent.iter().collect();
    let (snapshot, _) = assert_counts_what_was_sent(&mut tokwatch, &sent);
    let names = source_names(&snapshot);
    for name in [format!("otlp-grpc:{grpc}"), format!("otlp-http:{http}")] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
}

/// One trace through two listeners: the SDK sends each batch's agent and
/// root spans over OTLP/HTTP and its model calls and tools over OTLP/gRPC
/// (`--protocol split`), so a call arrives on one listener and the span
/// that names its agent and run on the other. One decoder state for every
/// listener: the totals are those of one listener.
#[test]
fn otel_sdk_spans_of_one_trace_through_both_listeners() {
    let Some(python) = otel_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut tokwatch = Tokwatch::start(&[
        "--otlp",
        "127.0.0.1:0",
        "--otlp-grpc",
        "127.0.0.1:0",
        "--otlp-token",
        OTLP_TOKEN,
    ]);
    let http = tokwatch.listening("otlp-http");
    let grpc = tokwatch.listening("otlp-grpc");
    let grpc = grpc.to_string();
    let sent = send_with(
        &python,
        dir.path(),
        "split",
        &format!("http://{http}"),
        "s",
        true,
        &["--grpc-endpoint", &grpc],
    );
    let (snapshot, _) = assert_counts_what_was_sent(&mut tokwatch, &[&sent]);
    // Both listeners had a part.
    for source in snapshot["ingest"]["sources"].as_array().unwrap() {
        assert!(
            source["otlp"]["spans_accepted"].as_u64().unwrap() > 0,
            "{source}"
        );
    }
}

/// Runs the sender where every export must fail; returns how many export
/// requests it made.
fn send_refused(python: &Path, protocol: &str, endpoint: &str, token: Option<&str>) -> u64 {
    let mut command = Command::new(python);
    command.arg(repo().join("tests/otel/send_spans.py")).args([
        "--protocol",
        protocol,
        "--endpoint",
        endpoint,
        "--tag",
        "x",
    ]);
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("export requests failed"),
        "{protocol} with token {token:?}: exports succeeded ({})\n{stderr}",
        out.status
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("send_spans.py prints JSON");
    assert_eq!(printed["exported_spans"], 0, "{printed}");
    printed["requests"].as_u64().unwrap()
}

/// Waits until the OTLP listeners have refused `n` requests, and checks that
/// nothing was counted.
fn wait_refused(tokwatch: &mut Tokwatch, n: u64) {
    let snapshot = tokwatch.wait_until(&format!("{n} refused requests"), |s| {
        let refused: u64 = s["ingest"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|source| source["otlp"]["refused"].as_u64())
            .sum();
        if refused == n {
            vec![]
        } else {
            vec![format!("refused: {refused}")]
        }
    });
    assert_eq!(snapshot["totals"]["events"], 0, "{}", snapshot["totals"]);
}

/// With a wrong token, or none, the SDK's exports through `protocol` are
/// refused (each request counted as refused) and nothing is counted; then,
/// with the token, tokwatch shows exactly that workload.
fn refused_without_the_token(protocol: &str) {
    let Some(python) = otel_python() else { return };
    let (flag, kind) = match protocol {
        "http" => ("--otlp", "otlp-http"),
        _ => ("--otlp-grpc", "otlp-grpc"),
    };
    let mut tokwatch = Tokwatch::start(&[flag, "127.0.0.1:0", "--otlp-token", OTLP_TOKEN]);
    let addr = tokwatch.listening(kind);
    let endpoint = match protocol {
        "http" => format!("http://{addr}"),
        _ => addr.to_string(),
    };
    let refused = send_refused(&python, protocol, &endpoint, Some("wrong-token"))
        + send_refused(&python, protocol, &endpoint, None);
    wait_refused(&mut tokwatch, refused);
    let dir = tempfile::tempdir().unwrap();
    let sent = send(&python, dir.path(), protocol, &endpoint, "ok", true);
    assert_counts_what_was_sent(&mut tokwatch, &[&sent]);
}

/// Requests over `--otlp-max-body` get 413, which the SDK's HTTP exporter
/// does not retry: each is refused once, nothing is counted.
#[test]
fn otel_sdk_over_http_oversized_requests_get_413() {
    let Some(python) = otel_python() else { return };
    let mut tokwatch = Tokwatch::start(&[
        "--otlp",
        "127.0.0.1:0",
        "--otlp-token",
        OTLP_TOKEN,
        "--otlp-max-body",
        "300",
    ]);
    let endpoint = format!("http://{}", tokwatch.listening("otlp-http"));
    let requests = send_refused(&python, "http", &endpoint, Some(OTLP_TOKEN));
    wait_refused(&mut tokwatch, requests);
}

#[test]
fn otel_sdk_over_http_without_the_token_is_refused() {
    refused_without_the_token("http");
}

#[test]
fn otel_sdk_over_grpc_without_the_token_is_refused() {
    refused_without_the_token("grpc");
}

// ---------------------------------------------------------------- Prometheus

/// A Prometheus server of its own (free loopback port, temporary config
/// and storage); killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(server: &Path, target: SocketAddr, token: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: tokwatch\n    authorization:\n      type: Bearer\n      credentials: {token}\n\
                 \x20   static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        // Prometheus cannot report the port it bound when given port 0:
        // take a free one, and start over if another process took it
        // before Prometheus did.
        for _ in 0..5 {
            let addr = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
            let mut child = Command::new(server)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start prometheus");
            if ready(&mut child, addr) {
                return Prometheus { child, addr, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "prometheus did not start on {addr}: {}",
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
            );
        }
        panic!("prometheus did not start");
    }

    /// The last lines of the server's log, for failure messages.
    fn log(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "prometheus log (last lines):\n{}",
            lines[lines.len().saturating_sub(15)..].join("\n")
        )
    }

    /// An instant query: its `data.result`, or the error Prometheus gave.
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let path = format!("/api/v1/query?query={}", url_encode(expr));
        let (status, body) = http_get(self.addr, &path, None).map_err(|e| e.to_string())?;
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{status}: {e}: {}", String::from_utf8_lossy(&body)))?;
        if answer["status"] != "success" {
            return Err(format!("{status}: {answer}"));
        }
        Ok(answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The single value of a query that sums to one series.
    fn scalar(&self, expr: &str) -> Result<f64, String> {
        let result = self.query(expr)?;
        match result.as_slice() {
            [one] => one["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{expr}: {one}")),
            _ => Err(format!("{expr}: {} series: {result:?}", result.len())),
        }
    }
}

/// Waits for Prometheus's `/-/ready`; false when it exits first.
fn ready(child: &mut Child, addr: SocketAddr) -> bool {
    common::until(WAIT, || {
        if let Ok(Some(_)) = child.try_wait() {
            return Ok(false);
        }
        match http_get(addr, "/-/ready", None) {
            Ok((200, _)) => Ok(true),
            other => Err(format!("{other:?}")),
        }
    })
    .unwrap_or(false)
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A GET over HTTP/1.0 (so the answer is never chunked): status and body.
fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = memchr::memmem::find(&response, b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    Ok((status, response[split + 4..].to_vec()))
}

/// Waits until `check` passes; on the deadline, fails with its last error.
fn eventually<T>(what: &str, check: impl Fn() -> Result<T, String>) -> T {
    common::until(WAIT, check).unwrap_or_else(|e| panic!("timed out waiting for {what}: {e}"))
}

/// Whether two amounts are equal up to the rounding of a sum of `terms`
/// doubles: each term and each addition rounds by at most half an ulp of
/// the total, so the error is under `terms` × ε × |total|.
fn close(got: f64, want: f64, terms: usize) -> bool {
    (got - want).abs() <= (terms as f64 + 1.0) * f64::EPSILON * want.abs().max(f64::MIN_POSITIVE)
}

fn grafana_expand(expr: &str) -> String {
    let mut out = expr.to_string();
    for (var, value) in [
        ("$__rate_interval", "1m"),
        ("${__rate_interval}", "1m"),
        ("$__interval", "15s"),
        ("${__interval}", "15s"),
        ("$__range", "1h"),
        ("${__range}", "1h"),
    ] {
        out = out.replace(var, value);
    }
    // ${name}, ${name:format}, $name, [[name]]: a template variable.
    let mut expanded = String::new();
    let mut rest = out.as_str();
    while let Some(at) = rest.find(['$', '[']) {
        expanded.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = if let Some(inner) = tail.strip_prefix("${") {
            inner.find('}').map(|i| i + 3)
        } else if let Some(inner) = tail.strip_prefix("[[") {
            inner.find("]]").map(|i| i + 4)
        } else if let Some(inner) = tail.strip_prefix('$') {
            let name = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            (name > 0).then_some(name + 1)
        } else {
            None
        };
        match end {
            Some(end) => {
                expanded.push_str(".*");
                rest = &tail[end..];
            }
            None => {
                expanded.push_str(&tail[..1]);
                rest = &tail[1..];
            }
        }
    }
    expanded.push_str(rest);
    expanded
}

/// Fetches `/metrics` as Prometheus would: refused without the token, and
/// clean under `promtool check metrics` with it. Returns the text.
fn checked_scrape(metrics: SocketAddr, promtool: &Path) -> String {
    let (status, _) = http_get(metrics, "/metrics", None).unwrap();
    assert_eq!(status, 401, "/metrics without the token");
    let (status, body) = http_get(metrics, "/metrics", Some(METRICS_TOKEN)).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(&body).unwrap();
    let checked = check.wait_with_output().unwrap();
    let body = String::from_utf8(body).expect("the scrape is UTF-8");
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr),
    );
    body
}

/// What differs between Prometheus's sums and `totals`/`by_agent` (a
/// snapshot's or a report's), with `spans` accepted by the OTLP listeners.
/// Counts are integers, exact in a double at these sizes, and compared
/// exactly; money is compared with the report's exact decimal up to the
/// rounding of Prometheus's float sum (see `close`).
fn prometheus_differences(
    prometheus: &Prometheus,
    totals: &Value,
    by_agent: &Value,
    spans: u64,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut exact = |expr: &str, want: u64| match prometheus.scalar(expr) {
        Ok(got) if got == want as f64 => {}
        Ok(got) => out.push(format!("{expr} = {got}, want {want}")),
        Err(e) => out.push(e),
    };
    let n = |v: &Value| v.as_u64().unwrap();
    exact("up{job=\"tokwatch\"}", 1);
    exact("sum(tokwatch_tokens_total)", n(&totals["total_tokens"]));
    for (kind, field) in [
        ("uncached_input", "uncached_input_tokens"),
        ("cache_read", "cache_read_tokens"),
        ("cache_write_5m", "cache_write_tokens"),
        ("output", "output_tokens"),
    ] {
        exact(
            &format!("sum(tokwatch_tokens_total{{kind=\"{kind}\"}})"),
            n(&totals[field]),
        );
    }
    exact(
        "sum(tokwatch_tokens_total{kind=\"cache_write_1h\"}) or vector(0)",
        0,
    );
    exact(
        "sum(tokwatch_reasoning_tokens_total)",
        n(&totals["reasoning_tokens"]),
    );
    exact("sum(tokwatch_calls_total)", n(&totals["events"]));
    exact("sum(tokwatch_runs_total)", n(&totals["runs"]));
    exact(
        "sum(tokwatch_unpriced_calls_total)",
        n(&totals["unpriced_events"]),
    );
    exact("sum(tokwatch_otlp_spans_accepted_total)", spans);
    exact("sum(tokwatch_otlp_spans_rejected_total)", 0);
    for agent in by_agent.as_array().unwrap() {
        let name = agent["agent"].as_str().unwrap();
        exact(
            &format!("sum(tokwatch_tokens_total{{agent=\"{name}\"}})"),
            n(&agent["total_tokens"]),
        );
        exact(
            &format!("sum(tokwatch_calls_total{{agent=\"{name}\"}})"),
            n(&agent["events"]),
        );
    }
    let series = prometheus
        .query("tokwatch_cost_usd_total")
        .map_or(0, |r| r.len());
    let mut cost = |expr: &str, want: &Value| {
        let want = want.as_f64().unwrap();
        match prometheus.scalar(expr) {
            Ok(got) if close(got, want, series) => {}
            Ok(got) => out.push(format!("{expr} = {got}, want {want}")),
            Err(e) => out.push(e),
        }
    };
    cost("sum(tokwatch_cost_usd_total)", &totals["cost_usd"]);
    for agent in by_agent.as_array().unwrap() {
        if !agent["cost_usd"].is_null() {
            let name = agent["agent"].as_str().unwrap();
            cost(
                &format!("sum(tokwatch_cost_usd_total{{agent=\"{name}\"}})"),
                &agent["cost_usd"],
            );
        }
    }
    match prometheus.query("tokwatch_cost_usd_total{model=\"acme-llm-7b-instruct\"}") {
        Ok(found) if found.is_empty() => {}
        Ok(found) => out.push(format!(
            "an unpriced model has a cost (never $0): {found:?}"
        )),
        Err(e) => out.push(e),
    }
    match prometheus.scalar("sum(tokwatch_unpriced_calls_total{model=\"acme-llm-7b-instruct\"})") {
        Ok(got) if got > 0.0 => {}
        Ok(got) => out.push(format!("unpriced calls of acme-llm-7b-instruct: {got}")),
        Err(e) => out.push(e),
    }
    out
}

/// Waits until Prometheus shows `totals` and `by_agent`.
fn wait_for_prometheus(prometheus: &Prometheus, totals: &Value, by_agent: &Value, spans: u64) {
    eventually("Prometheus to show the totals", || {
        let problems = prometheus_differences(prometheus, totals, by_agent, spans);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "\n  {}\n{}",
                problems.join("\n  "),
                prometheus.log()
            ))
        }
    });
}

/// Runs every query of the Grafana dashboard (docs/grafana/tokwatch.json)
/// on `prometheus`: each must succeed and read only metrics that tokwatch
/// exports (`scrape`).
fn check_dashboard(prometheus: &Prometheus, scrape: &str) {
    let path = repo().join("docs/grafana/tokwatch.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let exported = metric_names(scrape);
    let queries = dashboard_queries(&dashboard);
    assert!(!queries.is_empty(), "the dashboard has PromQL queries");
    let mut failed = Vec::new();
    for query in &queries {
        if let Err(e) = prometheus.query(query) {
            failed.push(format!("{query}: {e}"));
        }
        for name in tokwatch_names(query) {
            if !exported.contains(&name) {
                failed.push(format!("{query}: tokwatch exports no {name}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "dashboard queries failed:\n{}",
        failed.join("\n")
    );
}

fn spans_of(sent: &[&Sent]) -> u64 {
    sent.iter()
        .map(|s| s.expected["spans"].as_u64().unwrap())
        .sum()
}

/// A real Prometheus scrapes tokwatch's `/metrics` (with the bearer token)
/// after the SDK's spans are in: its sums equal the snapshot's totals
/// (tokens, calls, runs, unpriced calls exactly; cost up to the float sum's
/// rounding), per agent too, and the scrape passes `promtool check
/// metrics`. Every query of the Grafana dashboard runs on it.
#[test]
fn prometheus_scrapes_the_totals_of_what_the_sdk_sent() {
    let Some(python) = otel_python() else { return };
    let Some((server, promtool)) = prometheus_bins() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut tokwatch = Tokwatch::start(&[
        "--otlp",
        "127.0.0.1:0",
        "--otlp-token",
        OTLP_TOKEN,
        "--metrics",
        "127.0.0.1:0",
        "--metrics-token",
        METRICS_TOKEN,
    ]);
    let http = tokwatch.listening("otlp-http");
    let metrics = tokwatch.listening("metrics");
    let sent = send(
        &python,
        dir.path(),
        "http",
        &format!("http://{http}"),
        "p",
        true,
    );
    let (snapshot, native) = assert_counts_what_was_sent(&mut tokwatch, &[&sent]);
    assert_eq!(snapshot["totals"]["cost_usd"], native["totals"]["cost_usd"]);
    let scrape = checked_scrape(metrics, &promtool);
    let prometheus = Prometheus::start(&server, metrics, METRICS_TOKEN);
    wait_for_prometheus(
        &prometheus,
        &snapshot["totals"],
        &snapshot["by_agent"],
        spans_of(&[&sent]),
    );
    eprintln!(
        "sum(tokwatch_cost_usd_total) = {:?}, report {}",
        prometheus.scalar("sum(tokwatch_cost_usd_total)"),
        native["totals"]["cost_usd"]
    );
    check_dashboard(&prometheus, &scrape);
}

/// The deployment shape of a fleet: `--headless` (no snapshots to watch)
/// with OTLP/gRPC and OTLP/HTTP in and Prometheus out. Prometheus's sums
/// equal `tokwatch report` of the same calls as native lines, whose tokens
/// equal what the SDK says it sent.
#[test]
fn headless_tokwatch_serves_prometheus_what_the_sdk_sent() {
    let Some(python) = otel_python() else { return };
    let Some((server, promtool)) = prometheus_bins() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut tokwatch = Tokwatch::start_headless(&[
        "--otlp-grpc",
        "127.0.0.1:0",
        "--otlp",
        "127.0.0.1:0",
        "--otlp-token",
        OTLP_TOKEN,
        "--metrics",
        "127.0.0.1:0",
        "--metrics-token",
        METRICS_TOKEN,
    ]);
    let grpc = tokwatch.listening("otlp-grpc").to_string();
    let http = format!("http://{}", tokwatch.listening("otlp-http"));
    let metrics = tokwatch.listening("metrics");
    let a = send(&python, dir.path(), "grpc", &grpc, "hg", true);
    let b = send(&python, dir.path(), "http", &http, "hh", true);
    let native = report(&[a.native.as_path(), b.native.as_path()]);
    let expected = expected_of(&[&a, &b]);
    for (sent, field) in BUCKETS {
        assert_eq!(native["totals"][field], expected["totals"][sent], "{field}");
    }
    assert_eq!(native["totals"]["runs"], expected["totals"]["runs"]);
    let prometheus = Prometheus::start(&server, metrics, METRICS_TOKEN);
    wait_for_prometheus(
        &prometheus,
        &native["totals"],
        &native["by_agent"],
        spans_of(&[&a, &b]),
    );
    checked_scrape(metrics, &promtool);
    assert!(
        tokwatch.0.child.try_wait().unwrap().is_none(),
        "--headless keeps running"
    );
}

/// The metric names of a scrape: its samples' and its `# TYPE` lines'.
fn metric_names(scrape: &str) -> Vec<String> {
    scrape
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(typed) => typed.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        })
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// The `tokwatch_*` metric names a query reads.
fn tokwatch_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("tokwatch_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// Every PromQL `expr` of a Grafana dashboard, and every `label_values(METRIC,
/// LABEL)` variable query as `count by (LABEL) (METRIC)`, with Grafana's
/// variables replaced by what Grafana would send: intervals by durations,
/// template variables by `.*` (every value).
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn walk(node: &Value, out: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", Value::String(expr)) if !expr.trim().is_empty() => {
                            out.push(expr.clone());
                        }
                        ("definition" | "query", Value::String(q)) => {
                            if let Some(args) = q
                                .trim()
                                .strip_prefix("label_values(")
                                .and_then(|a| a.strip_suffix(')'))
                                && let Some((metric, label)) = args.rsplit_once(',')
                            {
                                out.push(format!(
                                    "count by ({}) ({})",
                                    label.trim(),
                                    metric.trim()
                                ));
                            }
                        }
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(list) => list.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    walk(dashboard, &mut exprs);
    exprs.sort();
    exprs.dedup();
    exprs.into_iter().map(|e| grafana_expand(&e)).collect()
}

#[test]
fn grafana_variables_expand_to_valid_promql() {
    assert_eq!(
        grafana_expand(
            "sum by (agent) (rate(tokwatch_cost_usd_total{agent=~\"$agent\", segment=~\"${segment:regex}\"}[$__rate_interval]))"
        ),
        "sum by (agent) (rate(tokwatch_cost_usd_total{agent=~\".*\", segment=~\".*\"}[1m]))"
    );
    assert_eq!(grafana_expand("x[[m]] [5m] $"), "x.* [5m] $");
    let dashboard = json!({"panels": [{"targets": [{"expr": "a"}, {"expr": ""}]},
        {"type": "row", "panels": [{"targets": [{"expr": "b{x=\"$v\"}"}]}]}],
        "templating": {"list": [{"query": {"query": "label_values(m{i=~\"$i\"}, agent)"},
            "definition": "label_values(m{i=~\"$i\"}, agent)"}]}});
    assert_eq!(
        dashboard_queries(&dashboard),
        ["a", "b{x=\".*\"}", "count by (agent) (m{i=~\".*\"})"]
    );
    assert_eq!(
        tokwatch_names("sum(rate(tokwatch_a_total[1m])) / x_tokwatch_b + tokwatch_c"),
        ["tokwatch_a_total", "tokwatch_c"]
    );
    assert_eq!(
        metric_names("# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\"} 1\nb 2\n"),
        ["a_total", "a_total", "b"]
    );
}

/// The file route (formats.md, docs/fleet.md): the same export requests
/// written as OTLP/JSON lines, as the Collector's file exporter does,
/// followed live. Needs no listener.
#[test]
fn otel_sdk_requests_in_an_otlp_json_file_followed_live() {
    let Some(python) = otel_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sent = send(&python, dir.path(), "file", "", "f", true);
    let mut tokwatch = Tokwatch::start(&["--follow", sent.otlp_json.to_str().unwrap()]);
    assert_counts_what_was_sent(&mut tokwatch, &[&sent]);
}
