//! The demo runtime: the control protocol's server side against
//! `run_runtime` over a Unix socket, and end to end through the binary
//! (a lower per-hop limit pushed over the socket lowers the cost per run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokwatch::control::protocol::{MAX_LINE_BYTES, Reply};
use tokwatch::demo::{Demo, DemoConfig, run_runtime};
use tokwatch::model::budget::Scope;

const WAIT: Duration = Duration::from_secs(5);

/// `run_runtime` on its own tokio runtime in a thread.
struct Runtime {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Runtime {
    fn start(out: &Path, control: &str, rate: f64) -> Runtime {
        let config = DemoConfig {
            out: out.to_path_buf(),
            control: control.to_owned(),
            runs: None,
            rate,
            seed: 1,
        };
        let (stop, rx) = watch::channel(false);
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(run_runtime(config, rx))
        });
        Runtime {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> anyhow::Result<()> {
        self.stop.send(true).unwrap();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn connect(path: &Path) -> UnixStream {
    let deadline = Instant::now() + WAIT;
    loop {
        match UnixStream::connect(path) {
            Ok(stream) => {
                stream.set_read_timeout(Some(WAIT)).unwrap();
                return stream;
            }
            Err(e) if Instant::now() > deadline => panic!("cannot connect: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// `budget.exceeded` notifications seen while waiting for replies.
    notes: Vec<Value>,
}

impl Client {
    fn connect(path: &Path) -> Client {
        let stream = connect(path);
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            notes: Vec::new(),
        }
    }

    fn hello(path: &Path) -> (Client, Reply) {
        let mut client = Client::connect(path);
        client.send(&json!({"type":"hello","protocol":1,"client":"test"}));
        let hello = client.reply();
        (client, hello)
    }

    fn send(&mut self, message: &Value) {
        let mut line = serde_json::to_vec(message).unwrap();
        line.push(b'\n');
        self.writer.write_all(&line).unwrap();
    }

    /// The next line, `None` at end of stream.
    fn line(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
            Err(e) => panic!("no reply within {WAIT:?}: {e}"),
        }
    }

    /// The next reply, keeping notifications aside.
    fn reply(&mut self) -> Reply {
        loop {
            let value = self.line().expect("connection closed");
            if value["type"] == "budget.exceeded" {
                self.notes.push(value);
                continue;
            }
            return serde_json::from_value(value).unwrap();
        }
    }

    /// The connection ends (after any notifications).
    fn closed(&mut self) -> bool {
        while let Some(value) = self.line() {
            assert_eq!(value["type"], "budget.exceeded", "unexpected {value}");
        }
        true
    }
}

fn set(id: &str, key: &str, scope: Value, version: u64, limits: Value) -> Value {
    json!({"type":"budget.set","id":id,"idempotency_key":key,"scope":scope,"version":version,"limits":limits})
}

fn ack(id: &str, scope: Scope, version: u64) -> Reply {
    Reply::Ack {
        id: id.into(),
        scope,
        version,
    }
}

fn state(client: &mut Client) -> Vec<(Scope, u64, Option<u64>)> {
    client.send(&json!({"type":"budget.list","id":"list"}));
    match client.reply() {
        Reply::State { id, budgets } => {
            assert_eq!(id, "list");
            budgets
                .into_iter()
                .map(|b| (b.scope, b.version, b.limits.per_hop_limit))
                .collect()
        }
        other => panic!("expected budget.state, got {other:?}"),
    }
}

fn error_then_closed(client: &mut Client, contains: &str) {
    match client.reply() {
        Reply::Error { reason } => assert!(reason.contains(contains), "{reason}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(client.closed());
}

#[test]
fn the_control_protocol_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("control.sock");
    let runtime = Runtime::start(dir.path(), &format!("unix:{}", sock.display()), 5.0);

    let (mut client, hello) = Client::hello(&sock);
    let Reply::Hello {
        protocol,
        runtime: name,
        runtime_id,
        applied,
    } = hello
    else {
        panic!("expected hello, got {hello:?}")
    };
    assert_eq!(protocol, 1);
    assert_eq!(name, format!("tokwatch-demo {}", env!("CARGO_PKG_VERSION")));
    assert!(runtime_id.starts_with("demo-"));
    assert!(applied.is_empty());
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // set → ack; the same key again → the same answer; another change that
    // is not newer than what is in force → refused as a conflict carrying
    // what is in force, without change.
    let global = json!({"kind":"global"});
    client.send(&set(
        "1",
        "k1",
        global.clone(),
        1,
        json!({"per_hop_limit":9000}),
    ));
    assert_eq!(client.reply(), ack("1", Scope::Global, 1));
    client.send(&set(
        "2",
        "k1",
        global.clone(),
        1,
        json!({"per_hop_limit":9000}),
    ));
    assert_eq!(client.reply(), ack("2", Scope::Global, 1));
    client.send(&set(
        "3",
        "k0",
        global.clone(),
        1,
        json!({"per_hop_limit":1}),
    ));
    assert_eq!(
        client.reply(),
        Reply::Nack {
            id: "3".into(),
            scope: Scope::Global,
            version: 1,
            applied_version: 1,
            reason: "v1 is not newer than v1 in force (set by another controller)".into(),
            code: Some("conflict".into()),
            limits: Some(serde_json::from_value(json!({"per_hop_limit":9000})).unwrap()),
        }
    );
    // Based on an older version than in force: refused too.
    let mut behind = set("3b", "k0b", global.clone(), 5, json!({"per_hop_limit":1}));
    behind["base_version"] = json!(0);
    client.send(&behind);
    assert!(matches!(
        client.reply(),
        Reply::Nack { code: Some(code), applied_version: 1, .. } if code == "conflict"
    ));
    assert_eq!(state(&mut client), vec![(Scope::Global, 1, Some(9000))]);

    // Invalid → nack with the reason; the previous limits stay. The same
    // key again gets the same nack.
    let bad = set(
        "4",
        "k2",
        global.clone(),
        2,
        json!({"per_hop_limit":90000,"total_run_limit":60000}),
    );
    client.send(&bad);
    let nack = client.reply();
    assert_eq!(
        nack,
        Reply::Nack {
            id: "4".into(),
            scope: Scope::Global,
            version: 2,
            applied_version: 1,
            reason: "per_hop_limit (90000) exceeds total_run_limit (60000)".into(),
            code: None,
            limits: None,
        }
    );
    client.send(&bad);
    assert_eq!(client.reply(), nack);
    assert_eq!(state(&mut client), vec![(Scope::Global, 1, Some(9000))]);

    // sync → one answer per entry, then synced.
    client.send(&json!({"type":"budget.sync","id":"s","budgets":[
        {"scope":{"kind":"global"},"version":3,"idempotency_key":"k3","limits":{"per_hop_limit":7000}},
        {"scope":{"kind":"agent","name":"writer"},"version":1,"idempotency_key":"kw","limits":{"per_hop_limit":4000,"on_hop_breach":"warn"}},
        {"scope":{"kind":"segment","name":"naive/pro"},"version":1,"idempotency_key":"ks","limits":{}},
    ]}));
    assert_eq!(client.reply(), ack("s", Scope::Global, 3));
    assert_eq!(client.reply(), ack("s", Scope::Agent("writer".into()), 1));
    match client.reply() {
        Reply::Nack {
            id,
            applied_version,
            reason,
            ..
        } => {
            assert_eq!((id.as_str(), applied_version), ("s", 0));
            assert!(reason.contains("at least one limit"), "{reason}");
        }
        other => panic!("expected a nack, got {other:?}"),
    }
    assert_eq!(client.reply(), Reply::Synced { id: "s".into() });
    assert_eq!(
        state(&mut client),
        vec![
            (Scope::Global, 3, Some(7000)),
            (Scope::Agent("writer".into()), 1, Some(4000)),
        ]
    );

    // Breaches reach every client that said hello.
    let deadline = Instant::now() + WAIT;
    while client.notes.is_empty() && Instant::now() < deadline {
        assert_eq!(state(&mut client).len(), 2);
        std::thread::sleep(Duration::from_millis(100));
    }
    let note = client
        .notes
        .first()
        .expect("a budget.exceeded notification");
    assert_eq!(note["limit_kind"], "per_hop");
    assert!(
        note["action"] == "trim" || note["action"] == "warn",
        "{note}"
    );

    // Many clients at once; a new hello lists the applied versions.
    let mut many: Vec<Client> = (0..40)
        .map(|_| {
            let mut c = Client::connect(&sock);
            c.send(&json!({"type":"hello","protocol":1,"client":"many"}));
            c
        })
        .collect();
    for c in &mut many {
        match c.reply() {
            Reply::Hello { applied, .. } => assert_eq!(applied.len(), 2),
            other => panic!("expected hello, got {other:?}"),
        }
        assert_eq!(state(c).len(), 2);
    }
    drop(many);

    // Refusals: error, then the connection closes; the others go on.
    let mut future = Client::connect(&sock);
    future.send(&json!({"type":"hello","protocol":2,"client":"t"}));
    error_then_closed(&mut future, "unsupported protocol 2");

    let mut rude = Client::connect(&sock);
    rude.send(&json!({"type":"budget.list","id":"x"}));
    error_then_closed(&mut rude, "hello");

    let (mut big, _) = Client::hello(&sock);
    let mut line = vec![b' '; MAX_LINE_BYTES + 10];
    line.push(b'\n');
    // The server may close before reading everything: ignore write errors.
    let _ = big.writer.write_all(&line);
    error_then_closed(&mut big, "limit");

    let (mut bad, _) = Client::hello(&sock);
    bad.writer.write_all(b"{\"type\":\"budget.set\"\n").unwrap();
    error_then_closed(&mut bad, "not a protocol message");

    let (mut unknown, _) = Client::hello(&sock);
    unknown.send(&json!({"type":"budget.delete","id":"1"}));
    error_then_closed(&mut unknown, "not a protocol message");

    assert_eq!(state(&mut client).len(), 2);

    // A second runtime on a live socket is refused; stopping removes it.
    let second = tokio::runtime::Runtime::new().unwrap().block_on(async {
        Demo::start(DemoConfig {
            out: dir.path().to_path_buf(),
            control: sock.display().to_string(),
            runs: None,
            rate: 1.0,
            seed: 1,
        })
        .err()
    });
    assert!(
        second.unwrap().to_string().contains("in use"),
        "a live socket is never replaced"
    );
    runtime.stop().unwrap();
    assert!(!sock.exists(), "the socket is removed at exit");
    let mut rest = String::new();
    client.reader.read_to_string(&mut rest).unwrap();
}

#[test]
fn stale_sockets_are_replaced_and_tcp_stays_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let runtime = Runtime::start(dir.path(), sock.to_str().unwrap(), 2.0);
    let (_client, hello) = Client::hello(&sock);
    assert!(matches!(hello, Reply::Hello { .. }));
    runtime.stop().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = |control: &str| DemoConfig {
        out: dir.path().to_path_buf(),
        control: control.to_owned(),
        runs: Some(2),
        rate: 50.0,
        seed: 3,
    };
    let refused = rt.block_on(async { Demo::start(config("tcp:0.0.0.0:0")).err() });
    assert!(refused.unwrap().to_string().contains("loopback"));
    let refused = rt.block_on(async { Demo::start(config("tcp:127.0.0.1")).err() });
    assert!(refused.unwrap().to_string().contains("tcp:HOST:PORT"));
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "data").unwrap();
    let refused =
        rt.block_on(async { Demo::start(config(&format!("unix:{}", plain.display()))).err() });
    assert!(refused.unwrap().to_string().contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "data");

    // Over TCP, and --runs: the runtime ends by itself.
    let totals = rt.block_on(async {
        let demo = Demo::start(config("tcp:127.0.0.1:0")).unwrap();
        let addr = demo.control_addr().strip_prefix("tcp:").unwrap().to_owned();
        let (_stop, rx) = watch::channel(false);
        let serving = tokio::spawn(demo.serve(rx));
        let answer = tokio::task::spawn_blocking(move || {
            let stream = std::net::TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            let mut writer = stream.try_clone().unwrap();
            writer
                .write_all(b"{\"type\":\"hello\",\"protocol\":1,\"client\":\"tcp\"}\n")
                .unwrap();
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        assert!(answer.contains("\"type\":\"hello\""), "{answer}");
        tokio::time::timeout(Duration::from_secs(15), serving)
            .await
            .expect("--runs ends the runtime")
            .unwrap()
            .unwrap()
    });
    assert_eq!(totals.started, 2);
    assert_eq!(totals.ok + totals.aborted, 2);
}

/// A finished run as the report shows it.
struct RunRow {
    run_id: String,
    first_ms: i64,
    last_ms: i64,
    cost: f64,
    status: String,
    breaches: usize,
}

/// The report JSON and its finished runs.
fn report_runs(dir: &Path) -> (Value, Vec<RunRow>) {
    let output = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["report", dir.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let ms = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    let runs = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["status"].is_null())
        .map(|r| RunRow {
            run_id: r["run_id"].as_str().unwrap().to_owned(),
            first_ms: ms(&r["first_ts"]),
            last_ms: ms(&r["last_ts"]),
            cost: r["cost_usd"].as_f64().unwrap(),
            status: r["status"].as_str().unwrap().to_owned(),
            breaches: r["budget_exceeded"].as_array().unwrap().len(),
        })
        .collect();
    (report, runs)
}

fn mean(costs: &[f64]) -> f64 {
    costs.iter().sum::<f64>() / costs.len() as f64
}

#[test]
fn lowering_the_per_hop_limit_lowers_cost_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sock: PathBuf = dir.path().join("c.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["demo", "--headless", "--out", out.to_str().unwrap()])
        .args(["--control", &format!("unix:{}", sock.display())])
        .args(["--rate", "20", "--seed", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert_eq!(
        first.trim_end(),
        format!(
            "tokwatch demo: telemetry in {}, control on unix:{}",
            out.display(),
            sock.display()
        )
    );
    let started = Instant::now();

    // Unlimited for a while, then a 5,000-token per-hop limit.
    std::thread::sleep(Duration::from_secs(5));
    let (mut client, _) = Client::hello(&sock);
    client.send(&set(
        "1",
        "low",
        json!({"kind":"global"}),
        1,
        json!({"per_hop_limit":5000}),
    ));
    assert_eq!(client.reply(), ack("1", Scope::Global, 1));
    let pushed = chrono::Utc::now().timestamp_millis();
    std::thread::sleep(Duration::from_secs(6));

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    assert!(!sock.exists(), "the socket is removed at exit");
    assert!(started.elapsed() < Duration::from_secs(15));

    let (report, runs) = report_runs(&out);
    assert_eq!(report["ingest"]["malformed"], 0, "{}", report["ingest"]);
    let finished = |r: &&RunRow| r.status == "ok" || r.status == "aborted";
    let before: Vec<f64> = runs
        .iter()
        .filter(finished)
        .filter(|r| r.last_ms < pushed)
        .map(|r| r.cost)
        .collect();
    let after: Vec<_> = runs
        .iter()
        .filter(finished)
        .filter(|r| r.first_ms > pushed + 300)
        .collect();
    assert!(
        before.len() >= 10 && after.len() >= 10,
        "{} runs before, {} after",
        before.len(),
        after.len()
    );
    let after_costs: Vec<f64> = after.iter().map(|r| r.cost).collect();
    let (mean_before, mean_after) = (mean(&before), mean(&after_costs));
    eprintln!(
        "mean cost per run: ${mean_before:.4} over {} runs before, ${mean_after:.4} over {} after",
        before.len(),
        after.len()
    );
    assert!(
        mean_after < mean_before,
        "${mean_after} after is not below ${mean_before} before"
    );
    // The naive team (full history re-sent) is where the limit bites.
    let naive_costs = |rows: Vec<&RunRow>| {
        mean(
            &rows
                .iter()
                .filter(|r| r.run_id.starts_with("naive-"))
                .map(|r| r.cost)
                .collect::<Vec<_>>(),
        )
    };
    let naive_before = naive_costs(
        runs.iter()
            .filter(finished)
            .filter(|r| r.last_ms < pushed)
            .collect(),
    );
    let naive_after = naive_costs(after.clone());
    eprintln!("naive runs: ${naive_before:.4} before, ${naive_after:.4} after");
    assert!(
        naive_after < naive_before * 0.8,
        "naive runs: ${naive_after} after, ${naive_before} before"
    );
    assert!(report["totals"]["budget_exceeded_events"].as_u64().unwrap() > 0);
    assert!(
        after.iter().any(|r| r.breaches > 0),
        "trimmed runs list breaches"
    );
    assert!(
        runs.iter()
            .filter(|r| r.last_ms < pushed)
            .all(|r| r.breaches == 0),
        "no breach before any limit"
    );
    // Every hop of the runs started afterwards stays within the limit (a
    // hop's input is decided before its call, so the timestamps of hops in
    // flight at the push say nothing).
    let later: std::collections::HashSet<&str> = after.iter().map(|r| r.run_id.as_str()).collect();
    let hops: Vec<Value> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .flat_map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .filter(|v| v.get("type").is_none() && later.contains(v["run_id"].as_str().unwrap()))
        .collect();
    assert!(!hops.is_empty());
    let over: Vec<&Value> = hops
        .iter()
        .filter(|v| v["input_tokens"].as_u64().unwrap() > 5000)
        .collect();
    assert!(over.is_empty(), "hops over the limit: {over:?}");
}

#[test]
fn headless_runs_n_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["demo", "--headless", "--out", out.to_str().unwrap()])
        .args(["--runs", "6", "--rate", "50", "--seed", "9"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "tokwatch demo: telemetry in {}, control on unix:{}",
            out.display(),
            out.join("control.sock").display()
        )),
        "{stderr}"
    );
    assert!(!out.join("control.sock").exists());
    let (report, runs) = report_runs(&out);
    assert_eq!(runs.len(), 6);
    assert!(runs.iter().all(|r| r.status == "ok"));
    assert_eq!(report["ingest"]["malformed"], 0);
    // No prompt text is ever written.
    for name in ["naive-team.jsonl", "lean-team.jsonl"] {
        let text = std::fs::read_to_string(out.join(name)).unwrap_or_default();
        assert!(!text.contains("\"prompt\"") && !text.contains("\"completion\""));
    }
    // A second session in the same directory continues the run numbering.
    let again = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["demo", "--headless", "--out", out.to_str().unwrap()])
        .args(["--runs", "3", "--rate", "50", "--seed", "9"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}");
    let (_, runs) = report_runs(&out);
    assert_eq!(runs.len(), 9);
    // Bad arguments are refused clearly.
    let bad = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["demo", "--headless", "--rate", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--rate"));
}

#[test]
fn an_empty_idempotency_key_is_no_key() {
    // Two controllers that both send empty keys make two different changes:
    // each is processed, neither gets the other's remembered answer.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("control.sock");
    let runtime = Runtime::start(dir.path(), &format!("unix:{}", sock.display()), 1.0);
    let global = json!({"kind":"global"});
    let (mut first, _) = Client::hello(&sock);
    let (mut second, _) = Client::hello(&sock);
    first.send(&set(
        "a",
        "",
        global.clone(),
        1,
        json!({"per_hop_limit":9000}),
    ));
    assert_eq!(first.reply(), ack("a", Scope::Global, 1));
    second.send(&set(
        "b",
        "",
        global.clone(),
        2,
        json!({"per_hop_limit":5000}),
    ));
    assert_eq!(second.reply(), ack("b", Scope::Global, 2));
    assert_eq!(state(&mut first), vec![(Scope::Global, 2, Some(5000))]);
    // A blank key is no key either, in a sync too; the state lists none.
    second.send(&json!({"type":"budget.sync","id":"s","budgets":[
        {"scope":global,"version":3,"idempotency_key":"  ","limits":{"per_hop_limit":4000}},
    ]}));
    assert_eq!(second.reply(), ack("s", Scope::Global, 3));
    assert_eq!(second.reply(), Reply::Synced { id: "s".into() });
    first.send(&set(
        "c",
        " ",
        json!({"kind":"global"}),
        4,
        json!({"per_hop_limit":3000}),
    ));
    assert_eq!(first.reply(), ack("c", Scope::Global, 4));
    first.send(&json!({"type":"budget.list","id":"l"}));
    match first.reply() {
        Reply::State { budgets, .. } => {
            assert_eq!(budgets.len(), 1);
            assert_eq!(budgets[0].version, 4);
            assert_eq!(budgets[0].limits.per_hop_limit, Some(3000));
            assert_eq!(budgets[0].idempotency_key, None, "{budgets:?}");
        }
        other => panic!("expected budget.state, got {other:?}"),
    }
    runtime.stop().unwrap();
}

#[test]
fn team_files_that_are_not_regular_files_are_refused() {
    // A FIFO in place of a team file: reading it for the last run number
    // must not block the start (nor a device such as /dev/zero fill memory).
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("naive-team.jsonl");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let out = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let refused = tokio::runtime::Runtime::new().unwrap().block_on(async {
            Demo::start(DemoConfig {
                control: format!("unix:{}", out.join("control.sock").display()),
                out,
                runs: Some(1),
                rate: 1.0,
                seed: 1,
            })
            .err()
            .map(|e| format!("{e:#}"))
        });
        let _ = tx.send(refused);
    });
    let refused = rx
        .recv_timeout(WAIT)
        .expect("Demo::start blocked on a FIFO")
        .expect("a FIFO team file is refused");
    assert!(refused.contains("is not a regular file"), "{refused}");
}
