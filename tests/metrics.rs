//! `--metrics` through the real binary: scrapes over HTTP (hyper), checked
//! by `promtool check metrics` when it is installed (required when `CI` is
//! set), summed against the one-shot report, bounded and sanitized against
//! hostile names, guarded by a token off loopback; and `--headless`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

const WAIT: Duration = Duration::from_secs(20);

mod common;

/// A running tokwatch whose standard error is read line by line.
struct Tw {
    child: Child,
    stderr: Receiver<String>,
    seen: Vec<String>,
}

impl Tw {
    fn start(args: &[&str]) -> Tw {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
            .args(args)
            .env_remove("TOKWATCH_METRICS_TOKEN")
            .env_remove("TOKWATCH_CONFIG")
            .env("XDG_CONFIG_HOME", "/nonexistent-tokwatch-test-config")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tokwatch starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Tw {
            child,
            stderr: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line of standard error starting with `prefix`; returns the rest.
    fn line(&mut self, prefix: &str) -> String {
        if let Some(line) = self.seen.iter().find_map(|l| l.strip_prefix(prefix)) {
            return line.to_owned();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            match self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let rest = line.strip_prefix(prefix).map(str::to_owned);
                    self.seen.push(line);
                    if let Some(rest) = rest {
                        return rest;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out waiting for '{prefix}'; stderr: {:?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("tokwatch exited before '{prefix}'; stderr: {:?}", self.seen)
                }
            }
        }
    }

    fn metrics_addr(&mut self) -> SocketAddr {
        self.line("tokwatch: metrics listening on ")
            .parse()
            .expect("an address")
    }

    fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        common::until(WAIT, || {
            self.child
                .try_wait()
                .expect("try_wait")
                .ok_or_else(|| "still running".to_owned())
        })
        .unwrap_or_else(|e| panic!("tokwatch did not exit: {e}"))
    }
}

impl Drop for Tw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    content_type: String,
    body: String,
}

/// One HTTP/1.1 request with hyper's client.
fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Response {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("host", addr.to_string());
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let response = sender
            .send_request(builder.body(Empty::<Bytes>::new()).expect("a request"))
            .await
            .expect("a response");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        Response {
            status,
            content_type,
            body: String::from_utf8(body.to_vec()).expect("UTF-8"),
        }
    })
}

fn scrape(addr: SocketAddr) -> String {
    let response = request(addr, "GET", "/metrics", None);
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}

/// Scrapes until `ready` holds (deadline: [`WAIT`]).
fn scrape_until(addr: SocketAddr, what: &str, ready: impl Fn(&Samples) -> bool) -> String {
    common::until(WAIT, || {
        let text = scrape(addr);
        if ready(&Samples::parse(&text)) {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .unwrap_or_else(|text| panic!("timed out waiting for {what}:\n{text}"))
}

/// A decimal as picounits (exact: tokwatch prints exact decimals).
fn picos(text: &str) -> i128 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    assert!(frac.len() <= 12, "{text}");
    let frac = format!("{frac:0<12}");
    whole.parse::<i128>().expect("digits") * 1_000_000_000_000
        + frac.parse::<i128>().expect("digits")
}

/// Samples of a scrape: (name, labels) → value text.
struct Samples(Vec<(String, BTreeMap<String, String>, String)>);

impl Samples {
    fn parse(text: &str) -> Samples {
        let mut out = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("name value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').expect("}"))),
                None => (series, BTreeMap::new()),
            };
            out.push((name.to_owned(), labels, value.to_owned()));
        }
        Samples(out)
    }

    fn of<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a (String, BTreeMap<String, String>, String)> {
        self.0.iter().filter(move |(n, _, _)| n == name)
    }

    /// Sum of a family, exact (picounits).
    fn sum(&self, name: &str) -> i128 {
        self.of(name).map(|(_, _, v)| picos(v)).sum()
    }

    fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .of(name)
            .filter_map(|(_, labels, _)| labels.get(label).cloned())
            .collect();
        values.sort();
        values.dedup();
        values
    }
}

/// `a="x",b="y\"z"` → map, unescaping `\\`, `\"`, `\n`.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if name.is_empty() {
            return labels;
        }
        assert_eq!(chars.next(), Some('"'));
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => panic!("dangling escape"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(name, value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

/// `promtool check metrics` on a scrape: must pass; when promtool is
/// missing, fails under `CI` and is skipped loudly otherwise.
fn promtool_check(text: &str) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is required when CI is set (Debian: apt-get install prometheus)"
            );
            eprintln!(
                "!!! SKIPPED promtool check metrics: promtool is not installed (apt-get install prometheus)"
            );
            return;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("promtool reads");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn report_totals(path: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["report", path.to_str().unwrap(), "--format", "json"])
        .env_remove("TOKWATCH_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent-tokwatch-test-config")
        .output()
        .expect("report runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    json["totals"].clone()
}

fn copy_samples(dir: &Path) {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_logs");
    for entry in walkdir(&samples) {
        let to = dir.join(entry.file_name().unwrap());
        std::fs::copy(&entry, to).expect("copy");
    }
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(walkdir(&path));
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[test]
fn headless_metrics_add_up_to_the_report_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    copy_samples(dir.path());
    let totals = report_totals(dir.path());
    let events = totals["events"].as_u64().unwrap();
    let mut tw = Tw::start(&[
        "--headless",
        "--follow",
        dir.path().to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
        "--log-file",
        dir.path().join("tw.log").to_str().unwrap(),
    ]);
    let addr = tw.metrics_addr();
    assert!(addr.ip().is_loopback());
    let cost = picos(&totals["cost_usd"].to_string());
    // Records counted from their text are counted roughly at once, exactly
    // a moment later (`ingest::estimate`): the sum settles on the report's.
    let text = scrape_until(addr, "every call at its exact cost", |s| {
        s.sum("tokwatch_calls_total") == i128::from(events) * 1_000_000_000_000
            && s.sum("tokwatch_cost_usd_total") == cost
    });
    let s = Samples::parse(&text);
    let unit = 1_000_000_000_000_i128;
    assert_eq!(
        s.sum("tokwatch_tokens_total"),
        i128::from(totals["total_tokens"].as_u64().unwrap()) * unit
    );
    assert_eq!(
        s.sum("tokwatch_reasoning_tokens_total"),
        i128::from(totals["reasoning_tokens"].as_u64().unwrap()) * unit
    );
    assert_eq!(
        s.sum("tokwatch_unpriced_calls_total"),
        i128::from(totals["unpriced_events"].as_u64().unwrap()) * unit
    );
    assert_eq!(
        s.sum("tokwatch_runs_total"),
        i128::from(totals["runs"].as_u64().unwrap()) * unit
    );
    let kinds = s.label_values("tokwatch_tokens_total", "kind");
    assert_eq!(
        kinds,
        [
            "cache_read",
            "cache_write_1h",
            "cache_write_5m",
            "output",
            "uncached_input"
        ]
    );
    assert_eq!(
        s.sum("tokwatch_ingest_lines_total"),
        s.of("tokwatch_ingest_lines_total")
            .filter(|(_, l, _)| l["source_kind"] == "file")
            .map(|(_, _, v)| picos(v))
            .sum::<i128>()
    );
    assert!(s.sum("tokwatch_ingest_lines_total") > 0);
    promtool_check(&text);

    let response = request(addr, "GET", "/metrics", None);
    assert_eq!(
        response.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(request(addr, "GET", "/", None).status, 404);
    assert_eq!(request(addr, "GET", "/metrics/x", None).status, 404);
    assert_eq!(request(addr, "POST", "/metrics", None).status, 405);

    // SIGTERM: ends, folding what was accepted, and says what it counted.
    tw.signal("TERM");
    assert!(tw.wait_exit().success());
    let summary = tw.line("tokwatch: stopped (SIGTERM): ");
    assert!(summary.starts_with(&format!("{events} calls")), "{summary}");
}

#[test]
fn jsonl_mode_serves_metrics_that_follow_a_growing_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.jsonl");
    std::fs::write(&file, line("r1", "planner", "gpt-4.1", 1_000, 100)).unwrap();
    let mut tw = Tw::start(&[
        "--jsonl",
        "--follow",
        file.to_str().unwrap(),
        "--metrics",
        "localhost:0",
    ]);
    let addr = tw.metrics_addr();
    scrape_until(addr, "the first call", |s| {
        s.sum("tokwatch_calls_total") == 1_000_000_000_000
    });
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    f.write_all(line("r2", "writer", "gpt-4.1", 500, 50).as_bytes())
        .unwrap();
    let text = scrape_until(addr, "the second call", |s| {
        s.sum("tokwatch_calls_total") == 2_000_000_000_000
    });
    let s = Samples::parse(&text);
    assert_eq!(
        s.label_values("tokwatch_calls_total", "agent"),
        ["planner", "writer"]
    );
    // gpt-4.1: $2 per million input tokens, $8 per million output tokens.
    assert_eq!(s.sum("tokwatch_cost_usd_total"), picos("0.0042"));
    assert_eq!(s.sum("tokwatch_runs_total"), 2_000_000_000_000);
    promtool_check(&text);
}

fn line(run: &str, agent: &str, model: &str, input: u64, output: u64) -> String {
    format!(
        "{}\n",
        serde_json::json!({
            "ts": "2026-11-23T08:07:31.101Z",
            "run_id": run,
            "agent": agent,
            "model": model,
            "input_tokens": input,
            "output_tokens": output,
        })
    )
}

#[test]
fn hostile_agent_names_are_bounded_to_other_and_sanitized() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[metrics]\nmax-agents = 3\nmax-label-bytes = 32\n").unwrap();
    let file = dir.path().join("hostile.jsonl");
    let mut lines = String::new();
    let hostile = [
        "planner".to_owned(),
        "evil\u{1b}[2J\u{1b}]0;pwned\u{7}".to_owned(),
        "quote\"back\\slash\nnewline".to_owned(),
        "x".repeat(500),
    ];
    for (i, agent) in hostile.iter().enumerate() {
        lines.push_str(&line(&format!("r{i}"), agent, "gpt-4.1", 10, 1));
    }
    for i in 0..500 {
        lines.push_str(&line(
            &format!("flood{i}"),
            &format!("agent-{i}"),
            "gpt-4.1",
            10,
            1,
        ));
    }
    std::fs::write(&file, lines).unwrap();
    let mut tw = Tw::start(&[
        "--headless",
        "--config",
        config.to_str().unwrap(),
        "--follow",
        file.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
        "--log-file",
        dir.path().join("tw.log").to_str().unwrap(),
    ]);
    let addr = tw.metrics_addr();
    let text = scrape_until(addr, "every call", |s| {
        s.sum("tokwatch_calls_total") == 504 * 1_000_000_000_000
    });
    promtool_check(&text);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "raw controls:\n{text}"
    );
    let s = Samples::parse(&text);
    let agents = s.label_values("tokwatch_calls_total", "agent");
    assert_eq!(agents.len(), 4, "three agents and (other): {agents:?}");
    assert!(agents.contains(&"(other)".to_owned()));
    assert!(agents.contains(&"planner".to_owned()));
    assert!(
        agents.contains(&"evil\u{FFFD}[2J\u{FFFD}]0;pwned\u{FFFD}".to_owned()),
        "{agents:?}"
    );
    assert!(agents.iter().all(|a| a.len() <= 32), "{agents:?}");
    let other: i128 = s
        .of("tokwatch_calls_total")
        .filter(|(_, l, _)| l["agent"] == "(other)")
        .map(|(_, _, v)| picos(v))
        .sum();
    assert_eq!(other, 501 * 1_000_000_000_000, "the newcomers past the cap");
}

#[test]
fn a_non_loopback_address_needs_a_token_and_scrapes_must_present_it() {
    let refused = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args([
            "--headless",
            "--follow",
            "/nonexistent-dir",
            "--metrics",
            "0.0.0.0:0",
        ])
        .env_remove("TOKWATCH_METRICS_TOKEN")
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("--metrics-token"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let mut tw = Tw::start(&[
        "--headless",
        "--follow",
        dir.path().to_str().unwrap(),
        "--metrics",
        "0.0.0.0:0",
        "--metrics-token",
        "s3cret",
        "--log-file",
        dir.path().join("tw.log").to_str().unwrap(),
    ]);
    let bound = tw.metrics_addr();
    let addr = SocketAddr::from(([127, 0, 0, 1], bound.port()));
    assert_eq!(request(addr, "GET", "/metrics", None).status, 401);
    assert_eq!(request(addr, "GET", "/metrics", Some("wrong")).status, 401);
    assert_eq!(
        request(addr, "GET", "/metrics", Some("s3cret!")).status,
        401
    );
    assert_eq!(request(addr, "GET", "/elsewhere", None).status, 401);
    let ok = request(addr, "GET", "/metrics", Some("s3cret"));
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("# TYPE tokwatch_cost_usd_total counter"));
    promtool_check(&ok.body);
}

#[test]
fn headless_ends_at_exit_after_and_records_what_it_received() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.jsonl");
    let mut tw = Tw::start(&[
        "--headless",
        "--listen",
        "tcp:127.0.0.1:0",
        "--record",
        record.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
        "--exit-after",
        "60s",
        "--log-file",
        dir.path().join("tw.log").to_str().unwrap(),
    ]);
    let listen = tw.line("tokwatch: listening on tcp:");
    let addr = tw.metrics_addr();
    let mut client = std::net::TcpStream::connect(listen.trim()).expect("connects");
    client
        .write_all(line("r1", "planner", "gpt-4.1", 1_000, 100).as_bytes())
        .unwrap();
    client.flush().unwrap();
    scrape_until(addr, "the call", |s| {
        s.sum("tokwatch_calls_total") == 1_000_000_000_000
    });
    drop(client);
    tw.signal("INT");
    assert!(tw.wait_exit().success());
    let summary = tw.line("tokwatch: stopped (SIGINT): ");
    assert!(summary.starts_with("1 calls"), "{summary}");
    let recorded = std::fs::read_to_string(&record).unwrap();
    assert_eq!(recorded.lines().count(), 1, "{recorded}");
}

#[test]
fn headless_and_jsonl_exclude_each_other() {
    let out = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["--headless", "--jsonl", "--follow", "x"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--jsonl"));
}

#[test]
fn runtimes_and_their_budgets_in_force_are_gauges_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("unix:{}", dir.path().join("rt.sock").display());
    let out = dir.path().join("out");
    let budgets = dir.path().join("budgets.toml");
    let mut runtime = Tw::start(&[
        "demo",
        "--headless",
        "--out",
        out.to_str().unwrap(),
        "--control",
        &socket,
        "--rate",
        "2",
    ]);
    runtime.line("tokwatch demo: telemetry in ");
    let set = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args([
            "budget",
            "set",
            "--agent",
            "planner",
            "--per-hop-limit",
            "9000",
        ])
        .args(["--run-cost-limit", "0.50", "--control", &socket])
        .args(["--budgets", budgets.to_str().unwrap()])
        .output()
        .expect("budget set runs");
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );

    let mut tw = Tw::start(&[
        "--headless",
        "--follow",
        out.to_str().unwrap(),
        "--control",
        &socket,
        "--budgets",
        dir.path().join("unused.toml").to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
        "--log-file",
        dir.path().join("tw.log").to_str().unwrap(),
    ]);
    let addr = tw.metrics_addr();
    let gauge = |s: &Samples, name: &str, want: &[(&str, &str)]| -> Option<String> {
        s.of(name)
            .find(|(_, labels, _)| {
                want.iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v.clone())
    };
    let text = scrape_until(addr, "the runtime's budgets", |s| {
        gauge(s, "tokwatch_runtime_up", &[("runtime", &socket)]).as_deref() == Some("1")
            && gauge(
                s,
                "tokwatch_budget_limit",
                &[
                    ("runtime", &socket),
                    ("scope", "agent:planner"),
                    ("kind", "run_cost_usd"),
                ],
            )
            .is_some()
    });
    let s = Samples::parse(&text);
    let limit = |kind: &str| {
        gauge(
            &s,
            "tokwatch_budget_limit",
            &[
                ("runtime", &socket),
                ("scope", "agent:planner"),
                ("kind", kind),
            ],
        )
    };
    assert_eq!(limit("per_hop_input_tokens").as_deref(), Some("9000"));
    assert_eq!(limit("run_cost_usd").as_deref(), Some("0.5"));
    assert_eq!(limit("run_tokens"), None);
    promtool_check(&text);
    // Read-only: the runtime still has the one version that was set.
    let list = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["budget", "list", "--control", &socket])
        .args(["--budgets", budgets.to_str().unwrap()])
        .output()
        .expect("budget list runs");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("agent planner") && listed.contains(" v1 "),
        "{listed}"
    );
    assert_eq!(listed.matches(" v").count(), 1, "{listed}");

    // The runtime goes away: its link is down.
    runtime.signal("TERM");
    runtime.wait_exit();
    scrape_until(addr, "the runtime down", |s| {
        gauge(s, "tokwatch_runtime_up", &[("runtime", &socket)]).as_deref() == Some("0")
    });
}

/// An OTLP/JSON span (`attrs`: string and integer attributes).
fn otlp_span(
    trace: u64,
    span: u64,
    parent: Option<u64>,
    name: &str,
    attrs: &[(&str, serde_json::Value)],
) -> serde_json::Value {
    let attributes: Vec<serde_json::Value> = attrs
        .iter()
        .map(|(key, value)| {
            let value = match value {
                serde_json::Value::Number(n) => serde_json::json!({ "intValue": n.to_string() }),
                other => serde_json::json!({ "stringValue": other.as_str().unwrap() }),
            };
            serde_json::json!({ "key": key, "value": value })
        })
        .collect();
    let start = 1_764_000_000_000_000_000_u64 + span * 1_000_000_000;
    serde_json::json!({
        "traceId": format!("{trace:032x}"),
        "spanId": format!("{span:016x}"),
        "parentSpanId": parent.map(|p| format!("{p:016x}")).unwrap_or_default(),
        "name": name,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": (start + 500_000_000).to_string(),
        "attributes": attributes,
    })
}

fn otlp_post(addr: SocketAddr, spans: Vec<serde_json::Value>) {
    let body = serde_json::json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": "fleet-bot" } }
            ]},
            "scopeSpans": [{ "spans": spans }]
        }]
    })
    .to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = hyper::Request::post(format!("http://{addr}/v1/traces"))
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(Bytes::from(body)))
            .unwrap();
        sender
            .send_request(request)
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 200);
}

#[test]
fn otlp_calls_re_attributed_to_their_agent_move_series_and_keep_sums_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut tw = Tw::start(&[
        "--headless",
        "--otlp",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--log-file",
        dir.path().join("tw.log").to_str().unwrap(),
    ]);
    let otlp: SocketAddr = tw
        .line("tokwatch: otlp-http listening on ")
        .parse()
        .unwrap();
    let addr = tw.metrics_addr();
    let chat = |span: u64, input: i64, output: i64| {
        otlp_span(
            0xA,
            span,
            Some(1),
            "chat gpt-4o",
            &[
                ("gen_ai.operation.name", "chat".into()),
                ("gen_ai.request.model", "gpt-4o".into()),
                ("gen_ai.usage.input_tokens", input.into()),
                ("gen_ai.usage.output_tokens", output.into()),
            ],
        )
    };
    // The model calls end (and are exported) before their agent's span.
    otlp_post(otlp, vec![chat(2, 1_000, 100), chat(3, 500, 50)]);
    let calls_of = |s: &Samples, agent: &str| -> i128 {
        s.of("tokwatch_calls_total")
            .filter(|(_, l, _)| l["agent"] == agent)
            .map(|(_, _, v)| picos(v))
            .sum()
    };
    let before = Samples::parse(&scrape_until(addr, "both calls", |s| {
        calls_of(s, "fleet-bot") == 2_000_000_000_000
    }));
    let cost = before.sum("tokwatch_cost_usd_total");
    assert!(cost > 0);
    let agent = otlp_span(
        0xA,
        1,
        None,
        "invoke_agent Planner",
        &[
            ("gen_ai.operation.name", "invoke_agent".into()),
            ("gen_ai.agent.name", "Planner".into()),
            ("gen_ai.conversation.id", "conv-1".into()),
            ("gen_ai.usage.input_tokens", 1_500.into()),
            ("gen_ai.usage.output_tokens", 150.into()),
        ],
    );
    otlp_post(otlp, vec![agent]);
    let text = scrape_until(addr, "the calls under their agent", |s| {
        calls_of(s, "Planner") == 2_000_000_000_000
    });
    let after = Samples::parse(&text);
    // Moved, not copied: the service-named series went down to 0 ...
    assert_eq!(calls_of(&after, "fleet-bot"), 0);
    // ... every sum is what it was (the agent's own usage is not added) ...
    assert_eq!(after.sum("tokwatch_cost_usd_total"), cost);
    assert_eq!(
        after.sum("tokwatch_tokens_total"),
        before.sum("tokwatch_tokens_total")
    );
    assert_eq!(after.sum("tokwatch_calls_total"), 2_000_000_000_000);
    // ... and the decrease is said.
    assert!(
        after.sum("tokwatch_series_decreases_total") >= 1_000_000_000_000,
        "{text}"
    );
    assert!(
        after.sum("tokwatch_call_corrections_total") >= 2_000_000_000_000,
        "{text}"
    );
    assert_eq!(
        after.sum("tokwatch_runs_total"),
        1_000_000_000_000,
        "one conversation"
    );
    assert_eq!(after.sum("tokwatch_otlp_requests_total"), 2_000_000_000_000);
    assert_eq!(
        after.sum("tokwatch_otlp_spans_accepted_total"),
        3_000_000_000_000
    );
    assert_eq!(
        after.label_values("tokwatch_otlp_requests_total", "source_kind"),
        ["otlp-http"]
    );
    promtool_check(&text);
}

/// A span timed in the year 2200 (a wrong clock, a hostile client) is in
/// the totals but never in the burn rate, and never pushes the present out
/// of it: the burn rate is anchored on the clock at scrape time.
#[test]
fn a_span_timed_in_the_future_leaves_the_burn_rate_of_the_present() {
    let dir = tempfile::tempdir().unwrap();
    let mut tw = Tw::start(&[
        "--headless",
        "--otlp",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--log-file",
        dir.path().join("tw.log").to_str().unwrap(),
    ]);
    let otlp: SocketAddr = tw
        .line("tokwatch: otlp-http listening on ")
        .parse()
        .unwrap();
    let addr = tw.metrics_addr();
    let chat = |span: u64, start_ns: u128| {
        let mut span = otlp_span(
            0xB,
            span,
            None,
            "chat gpt-4o",
            &[
                ("gen_ai.operation.name", "chat".into()),
                ("gen_ai.request.model", "gpt-4o".into()),
                ("gen_ai.usage.input_tokens", 1_000_000.into()),
            ],
        );
        span["startTimeUnixNano"] = start_ns.to_string().into();
        span["endTimeUnixNano"] = (start_ns + 500_000_000).to_string().into();
        span
    };
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // the middle of the last full minute
    let last_minute = u128::from((now_s / 60 - 1) * 60 + 30) * 1_000_000_000;
    otlp_post(otlp, vec![chat(1, 7_258_118_400_000_000_000)]);
    otlp_post(otlp, vec![chat(2, last_minute)]);
    let text = scrape_until(addr, "both calls", |s| {
        s.sum("tokwatch_calls_total") == 2_000_000_000_000
    });
    let samples = Samples::parse(&text);
    let burn = |window: &str| {
        samples
            .of("tokwatch_burn_rate_usd_per_minute")
            .find(|(_, l, _)| l["window"] == window)
            .map(|(_, _, v)| picos(v))
            .unwrap()
    };
    // gpt-4o: $2.50 per million input tokens; the scrape may fall in the
    // next minute already, so the 5-minute window is the one sure to hold it.
    assert_eq!(burn("5m"), 500_000_000_000, "{text}");
    assert_eq!(
        samples.sum("tokwatch_cost_usd_total"),
        5_000_000_000_000,
        "{text}"
    );
}

#[test]
fn a_metrics_address_in_use_is_a_clear_error_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args([
            "--headless",
            "--follow",
            dir.path().to_str().unwrap(),
            "--metrics",
            &addr,
        ])
        .args(["--log-file", dir.path().join("tw.log").to_str().unwrap()])
        .env_remove("TOKWATCH_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent-tokwatch-test-config")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains(&format!("cannot listen on {addr} for --metrics")),
        "{message}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["--headless", "--follow", "x", "--metrics", "nowhere"])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected HOST:PORT"));
}

#[test]
fn the_dashboard_serves_metrics_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.jsonl");
    std::fs::write(&file, line("r1", "planner", "gpt-4.1", 1_000, 100)).unwrap();
    let log = dir.path().join("tw.log");
    // The dashboard needs a terminal: util-linux's `script` gives it one.
    let command = format!(
        "{} --follow {} --metrics 127.0.0.1:0 --log-file {}",
        env!("CARGO_BIN_EXE_tokwatch"),
        file.display(),
        log.display()
    );
    let spawned = Command::new("script")
        .args(["-qfc", &command, "/dev/null"])
        .env("XDG_STATE_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env_remove("TOKWATCH_CONFIG")
        .env_remove("TOKWATCH_METRICS_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() => {
            eprintln!(
                "!!! SKIPPED the dashboard's metrics: `script` (util-linux) is not installed"
            );
            return;
        }
        Err(e) => panic!("cannot run script: {e}"),
    };
    // The dashboard owns the terminal: it logs where the metrics are.
    let addr: SocketAddr = common::until(WAIT, || {
        let logged = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("tw.log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>();
        match logged.split("metrics listening addr=Some(").nth(1) {
            Some(rest) => Ok(rest.split(')').next().unwrap().parse().unwrap()),
            None => Err(logged),
        }
    })
    .unwrap_or_else(|logged| panic!("no metrics address logged: {logged}"));
    let text = scrape_until(addr, "the call", |s| {
        s.sum("tokwatch_calls_total") == 1_000_000_000_000
    });
    assert_eq!(
        Samples::parse(&text).label_values("tokwatch_calls_total", "agent"),
        ["planner"]
    );
    promtool_check(&text);
    let _ = child.kill();
    let _ = child.wait();
}
