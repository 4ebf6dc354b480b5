//! Live ingestion through the real binary in `--jsonl` mode: one test per
//! file event, sockets with many clients, standard input, recording, and
//! equality with a one-shot report.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

struct Live {
    child: Child,
    snapshots: Receiver<Value>,
    latest: Value,
    stderr: Receiver<String>,
    seen_stderr: Vec<String>,
}

impl Live {
    fn start(args: &[&str]) -> Live {
        Live::start_with_stdin(args, Stdio::null())
    }

    fn start_with_stdin(args: &[&str], stdin: Stdio) -> Live {
        Live::start_command(Command::new(env!("CARGO_BIN_EXE_tokwatch")), args, stdin)
    }

    /// Runs tokwatch through `wrapper` (`prlimit …`, `setpriv …`): the
    /// binary's path and `args` follow the wrapper's own arguments.
    fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Live {
        let mut command = Command::new(wrapper[0]);
        command
            .args(&wrapper[1..])
            .arg(env!("CARGO_BIN_EXE_tokwatch"));
        Live::start_command(command, args, Stdio::null())
    }

    fn start_command(mut command: Command, args: &[&str], stdin: Stdio) -> Live {
        let mut child = command
            .args(args)
            .args(["--jsonl", "--interval", "50ms"])
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tokwatch");
        let stdout = child.stdout.take().unwrap();
        let (tx, snapshots) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value =
                    serde_json::from_str(&line).expect("each line is one JSON snapshot");
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let stderr_pipe = child.stderr.take().unwrap();
        let (etx, stderr) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                let _ = etx.send(line);
            }
        });
        Live {
            child,
            snapshots,
            latest: Value::Null,
            stderr,
            seen_stderr: Vec::new(),
        }
    }

    /// Waits for a snapshot that satisfies `ready`.
    fn wait_until(&mut self, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if !self.latest.is_null() && ready(&self.latest) {
                return self.latest.clone();
            }
            match self
                .snapshots
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(snapshot) => self.latest = snapshot,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "timed out waiting for {what}; last snapshot: {}",
                    self.latest
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "tokwatch exited while waiting for {what}; stderr: {:?}",
                    self.stderr()
                ),
            }
        }
    }

    fn events(&mut self, n: u64) -> Value {
        self.wait_until(&format!("{n} events"), |s| s["ingest"]["events"] == n)
    }

    fn stderr(&mut self) -> Vec<String> {
        self.seen_stderr.extend(self.stderr.try_iter());
        self.seen_stderr.clone()
    }

    /// The address a listener bound (with its real port).
    fn listening(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self.seen_stderr.iter().find_map(|line| {
                line.strip_prefix("tokwatch: listening on ")
                    .filter(|a| a.starts_with(prefix))
                    .map(str::to_owned)
            });
            if let Some(addr) = found {
                return addr;
            }
            let line = self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("a listening line");
            self.seen_stderr.push(line);
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and returns the final snapshot.
    fn stop(self) -> Value {
        self.signal("-TERM");
        self.finish()
    }

    fn finish(mut self) -> Value {
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "tokwatch exited with {status:?}: {:?}",
            self.stderr()
        );
        // the reader thread ends at EOF: take everything it still has
        let last = self.snapshots.iter().last().unwrap_or(self.latest.clone());
        assert_eq!(
            last["live"]["last"], true,
            "a final snapshot is printed on exit"
        );
        last
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hop(run: &str, input: u64) -> String {
    format!(
        "{{\"ts\":\"2026-11-28T10:00:00Z\",\"run_id\":\"{run}\",\"agent\":\"a\",\"model\":\"gpt-4o-mini\",\"input_tokens\":{input},\"output_tokens\":10}}\n"
    )
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn appends_in_bursts_and_partial_lines_with_file_events_and_polling() {
    for mode in [&[][..], &["--poll", "--poll-interval", "100ms"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.jsonl");
        append(&log, &hop("r1", 100));
        let mut args = vec!["--follow", arg(dir.path())];
        args.extend_from_slice(mode);
        let mut live = Live::start(&args);
        live.events(1);
        append(&log, &(hop("r1", 1) + &hop("r1", 2) + &hop("r1", 3)));
        live.events(4);
        let line = hop("r2", 5);
        append(&log, &line[..20]);
        // Proof that the fragment was read: a line written after it in
        // another file counted, then a second one. The pass that reads the
        // second began after the first was read, so after the fragment
        // was written (a pass reads every file once).
        let marker = dir.path().join("z.jsonl");
        append(&marker, &hop("m", 1000));
        live.events(5);
        append(&marker, &hop("m", 1000));
        assert_eq!(
            live.events(6)["ingest"]["malformed"],
            0,
            "a partial line is never parsed"
        );
        append(&log, &line[20..].replace('\n', "\r\n"));
        let snapshot = live.events(7);
        assert_eq!(snapshot["totals"]["input_tokens"], 2111, "{mode:?}");
        let last = live.stop();
        assert_eq!(last["ingest"]["events"], 7);
    }
}

#[test]
fn rotation_copy_truncate_deletion_and_editor_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    append(&log, &hop("r", 1));
    let mut live = Live::start(&["--follow", arg(dir.path())]);
    live.events(1);

    // rename + create
    fs::rename(&log, dir.path().join("app.jsonl.1")).unwrap();
    append(&dir.path().join("app.jsonl.1"), &hop("r", 2)); // late write through the old name
    append(&log, &hop("r", 4));
    let s = live.wait_until("rotation", |s| {
        s["ingest"]["events"] == 3 && s["ingest"]["rotations"] == 1
    });
    assert_eq!(s["totals"]["input_tokens"], 7);

    // copy-truncate (the copy is not followed: .1 suffix)
    fs::copy(&log, dir.path().join("app.jsonl.2")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &hop("r", 8));
    let s = live.wait_until("truncation", |s| {
        s["ingest"]["events"] == 4 && s["ingest"]["truncations"] == 1
    });
    assert_eq!(s["totals"]["input_tokens"], 15);

    // an editor saves by writing a new file and renaming it over
    let content = fs::read_to_string(&log).unwrap() + &hop("r", 16);
    fs::write(dir.path().join(".app.swp"), content).unwrap();
    fs::rename(dir.path().join(".app.swp"), &log).unwrap();
    let s = live.wait_until("replacement", |s| {
        s["ingest"]["events"] == 5 && s["ingest"]["replacements"] == 1
    });
    assert_eq!(s["totals"]["input_tokens"], 31, "nothing counted twice");

    // deletion with unread data and a dangling half line
    let other = dir.path().join("gone.jsonl");
    append(&other, &hop("g", 32));
    live.events(6);
    append(&other, &(hop("g", 64) + "{\"half"));
    fs::remove_file(&other).unwrap();
    let s = live.wait_until("deletion drained", |s| {
        s["ingest"]["events"] == 7 && s["ingest"]["incomplete"] == 1
    });
    assert_eq!(s["totals"]["input_tokens"], 127);
    assert_eq!(s["totals"]["events"], 7);
    live.stop();
}

#[test]
fn bad_lines_tiny_files_new_files_and_globs() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    fs::write(
        dir.path().join("forty.jsonl"),
        "{\"model\":\"m\",\"input_tokens\":1,\"output_tokens\":1}\n",
    )
    .unwrap();
    let mut live = Live::start(&[
        "--follow",
        &format!("{}/*.jsonl", dir.path().display()),
        "--follow",
        arg(&dir.path().join("sub")),
        "--max-line-bytes",
        "1024",
    ]);
    live.events(1);
    let log = dir.path().join("empty.jsonl");
    append(&log, &format!("{{\"model\":\"{}\"}}\n", "x".repeat(5000)));
    let mut file = OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(b"{\"run_id\":\"r\",\"model\":\"\xff\xfe\"}\n")
        .unwrap(); // invalid UTF-8
    file.write_all(b"\x00\x01\x02 binary garbage\n").unwrap();
    drop(file);
    append(&log, &hop("after", 2));
    let s = live.wait_until("bad lines counted", |s| {
        s["ingest"]["events"] == 2 && s["ingest"]["malformed"] == 3
    });
    assert_eq!(s["ingest"]["oversized"], 1);
    assert_eq!(s["ingest"]["invalid_utf8"], 1);
    let locations: Vec<&str> = s["ingest"]["malformed_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["location"].as_str().unwrap())
        .collect();
    assert!(
        locations.iter().any(|l| l.ends_with("empty.jsonl:1")),
        "{locations:?}"
    );
    // a directory target created later
    fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
    fs::write(dir.path().join("sub/deeper/new.jsonl"), hop("new", 4)).unwrap();
    let s = live.events(3);
    assert_eq!(s["totals"]["input_tokens"], 7);
    live.stop();
}

#[test]
fn from_end_and_since_skip_history() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.jsonl");
    append(&log, &hop("old", 1000));
    append(
        &log,
        "{\"ts\":\"2020-01-01T00:00:00Z\",\"model\":\"m\",\"input_tokens\":1,\"output_tokens\":1}\n",
    );
    let mut live = Live::start(&["--follow", arg(dir.path()), "--from-end"]);
    // what is there once caught up is history; what comes after is new
    let s = live.wait_until("caught up", |s| s["live"]["caught_up"] == true);
    assert_eq!(s["ingest"]["events"], 0, "history skipped");
    append(&log, &hop("new", 1));
    let s = live.events(1);
    assert_eq!(s["totals"]["input_tokens"], 1);
    live.stop();

    let mut live = Live::start(&[
        "--follow",
        arg(dir.path()),
        "--since",
        "2025-01-01",
        "--timezone",
        "UTC",
    ]);
    let s = live.wait_until("history filtered", |s| {
        s["ingest"]["events"] == 2 && s["ingest"]["filtered"] == 1
    });
    assert_eq!(s["totals"]["input_tokens"], 1001);
    live.stop();
}

#[test]
fn fifty_concurrent_socket_clients_are_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tw.sock");
    let mut live = Live::start(&[
        "--listen",
        &format!("unix:{}", sock.display()),
        "--listen",
        "tcp:127.0.0.1:0",
    ]);
    let tcp = live.listening("tcp:");
    let tcp_addr = tcp.strip_prefix("tcp:").unwrap().to_owned();
    let _ = live.listening("unix:");
    // Without followed files there is no backlog to wait for.
    let first = live.wait_until("a first snapshot", |_| true);
    assert_eq!(first["live"]["caught_up"], true);
    let clients: Vec<_> = (0..50_u64)
        .map(|client| {
            let (sock, tcp_addr) = (sock.clone(), tcp_addr.clone());
            std::thread::spawn(move || {
                let mut body = String::new();
                for i in 0..40 {
                    body.push_str(&hop(&format!("c{client}"), client * 1000 + i));
                }
                // send in awkward pieces so lines split across reads
                let pieces: Vec<&[u8]> = body.as_bytes().chunks(97).collect();
                if client % 2 == 0 {
                    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
                    for p in pieces {
                        s.write_all(p).unwrap();
                    }
                } else {
                    let mut s = std::net::TcpStream::connect(&tcp_addr).unwrap();
                    for p in pieces {
                        s.write_all(p).unwrap();
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let expected_input: u64 = (0..50_u64)
        .map(|c| (0..40).map(|i| c * 1000 + i).sum::<u64>())
        .sum();
    let s = live.wait_until("2000 socket events", |s| {
        s["ingest"]["events"] == 2000 && s["ingest"]["clients_connected"] == 0
    });
    assert_eq!(s["totals"]["input_tokens"], expected_input);
    assert_eq!(s["totals"]["output_tokens"], 20_000);
    assert_eq!(s["ingest"]["clients_total"], 50);
    assert_eq!(s["ingest"]["dropped"], 0);
    assert_eq!(s["runs"].as_array().unwrap().len(), 50);
    let last = live.stop();
    assert!(!sock.exists(), "the socket file is removed on exit");
    assert_eq!(last["ingest"]["events"], 2000);
}

#[test]
fn browsers_and_wrong_tokens_are_turned_away() {
    let mut live = Live::start(&["--listen", "tcp:127.0.0.1:0", "--listen-token", "s3cret"]);
    let addr = live
        .listening("tcp:")
        .strip_prefix("tcp:")
        .unwrap()
        .to_owned();
    let send = |text: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(text.as_bytes()).unwrap();
    };
    send(&format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\r\n{}",
        hop("web", 1)
    ));
    send(&(String::from("wrong\n") + &hop("bad", 1)));
    send(&hop("no-token", 1));
    send(&(String::from("s3cret\n") + &hop("ok", 7)));
    let s = live.wait_until("one accepted client", |s| {
        s["ingest"]["events"] == 1 && s["ingest"]["clients_rejected"] == 3
    });
    assert_eq!(s["totals"]["input_tokens"], 7);
    // each rejection is an error with its reason, never a reason alone
    assert_eq!(s["ingest"]["errors"], 3, "{}", brief(&s));
    assert!(
        s["ingest"]["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("tcp:127.0.0.1:")),
        "{}",
        brief(&s)
    );
    let stderr = live.stderr().join("\n");
    assert!(!stderr.contains("s3cret"), "the token is never printed");
    live.stop();

    let out = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["--listen", "tcp:0.0.0.0:0", "--jsonl", "--exit-after", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --listen-token"));
}

#[test]
fn a_live_socket_is_not_stolen_and_a_stale_one_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tw.sock");
    let listen = format!("unix:{}", sock.display());
    let mut first = Live::start(&["--listen", &listen]);
    let _ = first.listening("unix:");
    let out = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["--listen", &listen, "--jsonl", "--exit-after", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by a running process"));
    // SIGKILL leaves the socket file behind
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(sock.exists());
    let mut second = Live::start(&["--listen", &listen]);
    let _ = second.listening("unix:");
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.write_all(hop("r", 3).as_bytes()).unwrap();
    drop(s);
    second.events(1);
    second.stop();
}

#[test]
fn standard_input_is_read_to_its_end() {
    let mut live = Live::start_with_stdin(&["--follow", "-"], Stdio::piped());
    let mut stdin = live.child.stdin.take().unwrap();
    stdin
        .write_all((hop("s", 1) + &hop("s", 2)).as_bytes())
        .unwrap();
    stdin
        .write_all(b"{\"model\":\"m\",\"input_tokens\":4,\"output_tokens\":0}")
        .unwrap(); // no final newline
    drop(stdin);
    let last = live.finish();
    assert_eq!(last["ingest"]["events"], 3);
    assert_eq!(last["totals"]["input_tokens"], 7);
}

#[test]
fn recorded_socket_data_replays_to_the_same_totals() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tw.sock");
    let record = dir.path().join("record").join("socket.jsonl");
    fs::create_dir(record.parent().unwrap()).unwrap();
    let mut live = Live::start(&[
        "--listen",
        &format!("unix:{}", sock.display()),
        "--record",
        arg(&record),
    ]);
    let _ = live.listening("unix:");
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.write_all((hop("a", 1) + &hop("b", 2) + "not json\n").as_bytes())
        .unwrap();
    s.write_all(
        b"{\"run_id\":\"t\",\"model\":\"gpt-4o\",\"prompt\":\"SECRET plan\",\"output_tokens\":3}\n",
    )
    .unwrap();
    drop(s);
    live.wait_until("recorded", |s| s["ingest"]["events"] == 3);
    let last = live.stop();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&record).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let replay = Live::start(&["--follow", arg(&record), "--exit-after", "500ms"]).finish();
    assert_eq!(replay["totals"], last["totals"]);
    assert_eq!(replay["ingest"]["malformed"], 1);
    assert!(
        !fs::read_to_string(&record).unwrap().contains("SECRET"),
        "prompts are never written to disk"
    );
    assert_eq!(replay["totals"]["estimated_events"], 1);

    // recording into a followed file would count everything twice
    let out = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args([
            "--follow",
            arg(record.parent().unwrap()),
            "--listen",
            &format!("unix:{}", sock.display()),
            "--record",
            arg(&record),
            "--jsonl",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("counted twice"));
}

#[test]
fn live_totals_after_replaying_the_samples_equal_the_report() {
    let report = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["report", "sample_logs", "--format", "json", "--hops"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    let mut live = Live::start(&["--follow", "sample_logs", "--hops"]);
    let events = report["ingest"]["events"].as_u64().unwrap();
    // The snapshot printed when the backlog is read has all of it, and says so.
    let caught_up = live.wait_until("caught up", |s| s["live"]["caught_up"] == true);
    assert_eq!(caught_up["ingest"]["events"], events);
    live.events(events);
    let last = live.stop();
    for key in [
        "totals",
        "by_agent",
        "by_segment",
        "by_user",
        "by_model",
        "runs",
        "time_range",
    ] {
        assert_eq!(last[key], report[key], "{key}");
    }
}

#[test]
fn sigint_and_exit_after_end_cleanly_with_a_last_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("a.jsonl"), &hop("r", 1));
    let mut live = Live::start(&["--follow", arg(dir.path())]);
    live.events(1);
    live.signal("-INT");
    let last = live.finish();
    assert_eq!(last["ingest"]["events"], 1);
    let started = Instant::now();
    let last = Live::start(&["--follow", arg(dir.path()), "--exit-after", "300ms"]).finish();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(last["ingest"]["events"], 1);
}

/// Lines of one fixture file, as written by its tool.
fn fixture_lines(name: &str) -> Vec<String> {
    fs::read_to_string(format!("tests/fixtures/formats/{name}"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_socket_client_may_switch_formats_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tw.sock");
    let record = dir.path().join("record.jsonl");
    let mut live = Live::start(&[
        "--listen",
        &format!("unix:{}", sock.display()),
        "--record",
        arg(&record),
    ]);
    let _ = live.listening("unix:");
    let mut stream = String::new();
    stream.push_str(&hop("native-before", 5));
    for name in [
        "openai.jsonl",
        "anthropic.jsonl",
        "otlp.jsonl",
        "gemini.jsonl",
    ] {
        for line in fixture_lines(name) {
            stream.push_str(&line);
            stream.push('\n');
        }
    }
    stream.push_str(&hop("native-after", 7));
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.write_all(stream.as_bytes()).unwrap();
    drop(s);
    // 2 native, 3 OpenAI, 1 Anthropic, 1 OTLP, 1 Gemini.
    let snapshot = live.wait_until("8 calls", |s| s["totals"]["events"] == 8);
    let formats: Vec<&str> = snapshot["by_format"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["native", "openai", "anthropic", "gemini", "otlp"]);
    assert_eq!(snapshot["ingest"]["malformed"], 0);
    let last = live.stop();
    // The recording replays to the same calls, each in its own format.
    let replay = Live::start(&["--follow", arg(&record), "--exit-after", "500ms"]).finish();
    assert_eq!(replay["totals"], last["totals"]);
    assert_eq!(replay["by_format"], last["by_format"]);
}

#[test]
fn a_claude_code_session_is_followed_as_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("projects").join("-home-dev-src-shop");
    fs::create_dir_all(&project).unwrap();
    let session = project.join("7be90610-ed07-4982-aa01-018ae5e65e41.jsonl");
    let lines = fixture_lines(
        "claude/projects/-home-dev-src-shop/7be90610-ed07-4982-aa01-018ae5e65e41.jsonl",
    );
    append(&session, &format!("{}\n{}\n", lines[0], lines[1]));
    let mut live = Live::start(&["--follow", arg(dir.path())]);
    // The first block of the message: counted with what it says so far.
    let first = live.wait_until("the first block", |s| {
        s["live"]["caught_up"] == true && s["totals"]["events"] == 1
    });
    assert_eq!(first["totals"]["output_tokens"], 4);
    // Claude Code writes the next block of the same message: the call is
    // revised, not counted again.
    append(&session, &format!("{}\n{}\n", lines[2], lines[3]));
    let revised = live.wait_until("the final block", |s| s["totals"]["output_tokens"] == 254);
    assert_eq!(revised["totals"]["events"], 1);
    assert_eq!(revised["ingest"]["revised"], 1);
    assert_eq!(
        revised["ingest"]["ignored"], 2,
        "the user line and the summary"
    );
    let run = &revised["runs"][0];
    assert_eq!(run["run_id"], "7be90610-ed07-4982-aa01-018ae5e65e41");
    assert_eq!(run["hops"], 1);
    live.stop();
}

fn codex_session(id: &str, at: &str) -> String {
    format!(
        "{{\"timestamp\":\"{at}:00.000Z\",\"type\":\"session_meta\",\"payload\":{{\"id\":\"{id}\",\"cwd\":\"/p\"}}}}\n\
         {{\"timestamp\":\"{at}:01.000Z\",\"type\":\"turn_context\",\"payload\":{{\"cwd\":\"/p\",\"model\":\"gpt-5-codex\"}}}}\n"
    )
}

/// A Codex `token_count` with cumulative input `total` (no cache, no output).
fn codex_total(at: &str, total: u64) -> String {
    format!(
        "{{\"timestamp\":\"{at}:00.000Z\",\"type\":\"event_msg\",\"payload\":{{\"type\":\"token_count\",\"info\":{{\"total_token_usage\":{{\"input_tokens\":{total},\"cached_input_tokens\":0,\"output_tokens\":0,\"reasoning_output_tokens\":0,\"total_tokens\":{total}}}}}}}}}\n"
    )
}

#[test]
fn a_rotated_log_and_its_successor_keep_their_own_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("codex.jsonl");
    let old = dir.path().join("codex.jsonl.1");
    append(
        &log,
        &(codex_session("s1", "2026-05-13T09:00") + &codex_total("2026-05-13T09:01", 1_000)),
    );
    let mut live = Live::start(&["--follow", arg(dir.path())]);
    live.wait_until("the first session", |s| s["ingest"]["lines"] == 3);

    // Rotated; the new file is another session; the old one still gets a
    // late write, then goes away.
    fs::rename(&log, &old).unwrap();
    append(
        &log,
        &(codex_session("s2", "2026-05-13T10:00")
            + &codex_total("2026-05-13T10:01", 300)
            + &codex_total("2026-05-13T10:02", 450)),
    );
    live.wait_until("rotation", |s| {
        s["ingest"]["rotations"] == 1 && s["ingest"]["lines"] == 7
    });
    append(&old, &codex_total("2026-05-13T09:02", 1_500));
    live.wait_until("the late write", |s| s["ingest"]["lines"] == 8);
    fs::remove_file(&old).unwrap();
    live.wait_until("the old file closed", |s| {
        s["totals"]["input_tokens"] == 1_950
    });
    append(&log, &codex_total("2026-05-13T10:03", 600));
    live.wait_until("the last line", |s| s["ingest"]["lines"] == 9);
    let last = live.stop();
    // s1: 1,000 + 500; s2: 300 + 150 + 150.
    assert_eq!(last["totals"]["input_tokens"], 2_100, "{}", last["ingest"]);
    assert_eq!(last["totals"]["events"], 5);
}

/// Runs `args` without privileges: as root, with every capability dropped
/// (root with them reads a `chmod 000` directory all the same).
fn start_unprivileged(args: &[&str]) -> Live {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        Live::start_wrapped(&["setpriv", "--bounding-set=-all", "--inh-caps=-all"], args)
    } else {
        Live::start(args)
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The ingest counters of a snapshot, without the per-source lists.
fn brief(snapshot: &Value) -> String {
    let ingest = &snapshot["ingest"];
    format!(
        "events {} files {} errors {} last_error {}",
        ingest["events"], ingest["files"], ingest["errors"], ingest["last_error"]
    )
}

/// Longer than the 2 s grace after which a file no path leads to is closed:
/// how long a fault lasts when nothing in tokwatch should change meanwhile
/// (so there is no condition to wait on: the fault's length is the point).
const PAST_GRACE: Duration = Duration::from_millis(3500);

#[test]
fn a_directory_moved_away_and_back_is_not_read_again() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("d");
    fs::create_dir(&dir).unwrap();
    let log = dir.join("a.jsonl");
    // a second file, and a last line half written when the directory goes
    let fourth = hop("r", 4);
    let (head, tail) = fourth.split_at(30);
    append(&log, &(hop("r", 1) + &hop("r", 2) + &hop("r", 3) + head));
    append(&dir.join("b.jsonl"), &hop("s", 100));
    let mut live = Live::start(&["--follow", arg(&dir), "--poll-interval", "100ms"]);
    live.events(4);
    let moved = root.path().join("d.x");
    fs::rename(&dir, &moved).unwrap();
    live.wait_until("the directory waited for", |s| {
        s["ingest"]["waiting_for"][0] == arg(&dir)
    });
    // away past the grace: both files closed, their offsets remembered
    live.wait_until("the vanished files closed", |s| {
        s["ingest"]["files_followed"] == 0
    });
    fs::rename(&moved, &dir).unwrap();
    live.wait_until("the directory back", |s| {
        s["ingest"]["waiting_for"].is_null()
    });
    append(&log, &(tail.to_owned() + &hop("r", 5)));
    let back = live.wait_until("the new lines", |s| {
        s["ingest"]["events"].as_u64() >= Some(6)
    });
    assert_eq!(back["ingest"]["files_followed"], 2, "both followed again");
    let last = live.stop();
    assert_eq!(
        last["ingest"]["events"],
        6,
        "nothing read twice: {}",
        brief(&last)
    );
    assert_eq!(last["totals"]["input_tokens"], 115);
    assert_eq!(last["ingest"]["files"], 2, "each file counted once");
    assert_eq!(
        last["ingest"]["incomplete"],
        0,
        "the half line was read whole when it came back: {}",
        brief(&last)
    );
}

#[test]
fn a_directory_that_cannot_be_listed_keeps_its_offsets_and_says_why() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("d");
    fs::create_dir(&dir).unwrap();
    let log = dir.join("a.jsonl");
    append(&log, &(hop("r", 1) + &hop("r", 2) + &hop("r", 3)));
    let mut live = start_unprivileged(&["--follow", arg(&dir), "--poll-interval", "100ms"]);
    live.events(3);
    chmod(&dir, 0o000);
    let s = live.wait_until("the listing error", |s| s["ingest"]["errors"] == 1);
    let error = s["ingest"]["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(arg(&dir)) && error.contains("ermission denied"),
        "the error says where and why: {}",
        brief(&s)
    );
    // while the directory cannot be listed, its open file is still read
    append(&log, &hop("r", 4));
    live.wait_until("a line written meanwhile", |s| s["ingest"]["events"] == 4);
    // the fault outlasts the grace; nothing is to happen meanwhile, so this
    // is the fault's length, not a wait for tokwatch
    std::thread::sleep(PAST_GRACE);
    chmod(&dir, 0o755);
    append(&log, &hop("r", 5));
    live.wait_until("the new line", |s| {
        s["ingest"]["events"].as_u64() >= Some(5)
    });
    let last = live.stop();
    assert_eq!(
        last["ingest"]["events"],
        5,
        "nothing read twice: {}",
        brief(&last)
    );
    assert_eq!(last["totals"]["input_tokens"], 15);
    assert_eq!(
        last["ingest"]["errors"],
        1,
        "one failure, counted once: {}",
        brief(&last)
    );
}

#[test]
fn many_files_under_a_low_open_file_limit_are_each_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let files = 300;
    for i in 0..files {
        append(
            &dir.path().join(format!("f{i:03}.jsonl")),
            &hop(&format!("r{i}"), 1),
        );
    }
    let mut live = Live::start_wrapped(
        &["prlimit", "--nofile=64:64"],
        &["--follow", arg(dir.path()), "--poll-interval", "100ms"],
    );
    let s = live.wait_until("every file read", |s| {
        s["live"]["caught_up"] == true && s["ingest"]["events"].as_u64() >= Some(files)
    });
    assert_eq!(s["ingest"]["events"], files, "{}", brief(&s));
    for i in 0..files {
        append(
            &dir.path().join(format!("f{i:03}.jsonl")),
            &hop(&format!("r{i}"), 2),
        );
    }
    live.wait_until("every new line", |s| {
        s["ingest"]["events"].as_u64() >= Some(2 * files)
    });
    let last = live.stop();
    assert_eq!(last["ingest"]["events"], 2 * files, "nothing read twice");
    assert_eq!(last["totals"]["input_tokens"], 3 * files);
}

#[test]
fn a_fifo_and_a_process_substitution_are_read_as_streams() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut live = Live::start(&["--follow", arg(&fifo)]);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut pipe = OpenOptions::new().write(true).open(fifo).unwrap();
            pipe.write_all((hop("p", 1) + &hop("p", 2)).as_bytes())
                .unwrap();
        })
    };
    live.events(2);
    writer.join().unwrap();
    // the writer closed its end: the stream is over, and so is tokwatch
    // (as with standard input)
    let last = live.finish();
    assert_eq!(last["ingest"]["events"], 2, "{}", brief(&last));
    assert_eq!(last["totals"]["input_tokens"], 3);
    assert_eq!(last["ingest"]["sources"][0]["name"], arg(&fifo));

    // `--follow <(…)`: bash hands tokwatch a /dev/fd/N pipe
    let lines = dir.path().join("lines.jsonl");
    fs::write(&lines, hop("s", 5) + &hop("s", 6)).unwrap();
    let script = r#"exec "$0" --follow <(cat "$1") "${@:2}""#;
    let mut command = Command::new("bash");
    command.args(["-c", script, env!("CARGO_BIN_EXE_tokwatch"), arg(&lines)]);
    let mut live = Live::start_command(command, &[], Stdio::null());
    live.events(2);
    let last = live.finish();
    assert_eq!(last["ingest"]["events"], 2, "{}", brief(&last));
    assert_eq!(last["totals"]["input_tokens"], 11);
}

#[test]
fn a_followed_pipe_is_caught_up_once_what_it_holds_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut live = Live::start(&["--follow", arg(&fifo)]);
    // the writer keeps its end open: the stream is not over, only drained
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut pipe = OpenOptions::new().write(true).open(fifo).unwrap();
            pipe.write_all((hop("p", 1) + &hop("p", 2)).as_bytes())
                .unwrap();
            let _ = done_rx.recv_timeout(WAIT);
        })
    };
    let s = live.wait_until("caught up", |s| s["live"]["caught_up"] == true);
    assert_eq!(
        s["ingest"]["events"],
        2,
        "caught up with what the pipe held: {}",
        brief(&s)
    );
    drop(done_tx);
    writer.join().unwrap();
    live.finish();

    // `--follow <(…)`: caught up at the end of the stream at the latest
    let lines = dir.path().join("lines.jsonl");
    fs::write(&lines, hop("s", 5) + &hop("s", 6)).unwrap();
    let script = r#"exec "$0" --follow <(sleep 0.3; cat "$1") "${@:2}""#;
    let mut command = Command::new("bash");
    command.args(["-c", script, env!("CARGO_BIN_EXE_tokwatch"), arg(&lines)]);
    let mut live = Live::start_command(command, &[], Stdio::null());
    let s = live.wait_until("caught up", |s| s["live"]["caught_up"] == true);
    assert_eq!(s["ingest"]["events"], 2, "{}", brief(&s));
    live.finish();
}

#[test]
fn fifos_devices_and_dangling_links_in_a_followed_directory_are_warned_not_read() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("good.jsonl"), &hop("r", 1));
    assert!(
        Command::new("mkfifo")
            .arg(dir.path().join("fifo.jsonl"))
            .status()
            .unwrap()
            .success()
    );
    symlink("/dev/zero", dir.path().join("zero.jsonl")).unwrap();
    symlink(dir.path().join("gone"), dir.path().join("dangling.jsonl")).unwrap();
    let mut live = Live::start(&["--follow", arg(dir.path()), "--poll-interval", "100ms"]);
    let s = live.wait_until("caught up with every warning", |s| {
        s["live"]["caught_up"] == true && s["ingest"]["errors"].as_u64() >= Some(3)
    });
    assert_eq!(s["ingest"]["events"], 1, "{}", brief(&s));
    // more passes: each entry is warned about once
    append(&dir.path().join("good.jsonl"), &hop("r", 2));
    live.events(2);
    let last = live.stop();
    assert_eq!(
        last["ingest"]["errors"],
        3,
        "once per entry: {}",
        brief(&last)
    );
    let reasons: Vec<String> = last["ingest"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| Some(format!("{} {}", s["name"], s["last_error"].as_str()?)))
        .collect();
    for (name, why) in [
        ("fifo.jsonl", "a pipe"),
        ("zero.jsonl", "a device"),
        ("dangling.jsonl", "broken symbolic link"),
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(name) && r.contains(why)),
            "{name}: {reasons:?}"
        );
    }
}

// Socket listeners under hostile and crowded conditions: silent peers that
// never send the token, the client cap shared by every listener, idle
// clients, id-less streams of two clients, and `--record` paths that reach a
// followed directory.

/// Waits (with a deadline) until the peer closes `stream`: a read returns
/// end of file or a reset. Whatever it sent meanwhile is ignored.
fn closed_by_peer(mut stream: impl Read) -> bool {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0_u8; 256];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
    false
}

/// Connects to a TCP listener as `listening` names it (`tcp:HOST:PORT`).
fn tcp(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr.strip_prefix("tcp:").unwrap_or(addr)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

fn unix(path: &Path) -> UnixStream {
    let stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

#[test]
fn silent_peers_cannot_lock_token_clients_out() {
    let mut live = Live::start(&[
        "--listen",
        "tcp:127.0.0.1:0",
        "--listen-token",
        "s3cret",
        "--max-clients",
        "2",
    ]);
    let addr = live.listening("tcp:");
    // Two peers connect and never send the token.
    let silent: Vec<TcpStream> = (0..2).map(|_| tcp(&addr)).collect();
    // (Before pre-auth slots existed, they were shown as connected.)
    live.wait_until("two silent peers accepted", |s| {
        s["ingest"]["clients_pending"] == 2 || s["ingest"]["clients_total"] == 2
    });
    // Real clients still get both slots.
    let mut real: Vec<TcpStream> = (0..2).map(|_| tcp(&addr)).collect();
    for (i, client) in real.iter_mut().enumerate() {
        client
            .write_all(format!("s3cret\n{}", hop(&format!("r{i}"), 7)).as_bytes())
            .unwrap();
    }
    let s = live.wait_until("both real clients counted", |s| {
        s["ingest"]["events"] == 2 && s["ingest"]["clients_connected"] == 2
    });
    assert_eq!(s["totals"]["input_tokens"], 14);
    assert_eq!(
        s["ingest"]["clients_pending"], 2,
        "the silent peers wait apart"
    );
    // A third authenticated client is over the cap: turned away, and the
    // two connected ones are still shown as connected.
    let mut third = tcp(&addr);
    third
        .write_all(format!("s3cret\n{}", hop("r3", 1)).as_bytes())
        .unwrap();
    assert!(closed_by_peer(&mut third), "the third client is closed");
    let s = live.wait_until("the third client rejected", |s| {
        s["ingest"]["clients_rejected"] == 1
    });
    assert_eq!(s["ingest"]["clients_connected"], 2);
    assert_eq!(s["ingest"]["events"], 2);
    // The silent peers are closed when their time to send the token is up.
    for peer in silent {
        assert!(closed_by_peer(peer), "a silent peer is closed");
    }
    let s = live.wait_until("the silent peers rejected", |s| {
        s["ingest"]["clients_rejected"] == 3 && s["ingest"]["clients_pending"] == 0
    });
    assert_eq!(s["ingest"]["clients_connected"], 2);
    let last_error = &s["ingest"]["sources"][0]["last_error"];
    assert!(
        last_error
            .as_str()
            .is_some_and(|e| e.contains(": no token within 5s")),
        "{last_error}"
    );
    drop(real);
    let s = live.wait_until("everyone gone", |s| s["ingest"]["clients_connected"] == 0);
    assert_eq!(s["ingest"]["events"], 2);
    live.stop();
}

#[test]
fn max_clients_is_a_total_across_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tw.sock");
    let mut live = Live::start(&[
        "--listen",
        &format!("unix:{}", sock.display()),
        "--listen",
        "tcp:127.0.0.1:0",
        "--max-clients",
        "2",
    ]);
    let addr = live.listening("tcp:");
    let _ = live.listening("unix:");
    let mut on_unix = unix(&sock);
    on_unix.write_all(hop("u", 1).as_bytes()).unwrap();
    let mut on_tcp = tcp(&addr);
    on_tcp.write_all(hop("t", 2).as_bytes()).unwrap();
    live.wait_until("two clients counted", |s| {
        s["ingest"]["events"] == 2 && s["ingest"]["clients_connected"] == 2
    });
    // The cap is reached whichever listener a third client picks.
    for listener in ["unix", "tcp"] {
        let closed = if listener == "unix" {
            let mut third = unix(&sock);
            let _ = third.write_all(hop("x", 100).as_bytes());
            closed_by_peer(third)
        } else {
            let mut third = tcp(&addr);
            let _ = third.write_all(hop("x", 100).as_bytes());
            closed_by_peer(third)
        };
        assert!(closed, "a third client on {listener} is turned away");
    }
    let s = live.wait_until("two rejections", |s| s["ingest"]["clients_rejected"] == 2);
    assert_eq!(s["ingest"]["clients_connected"], 2);
    assert_eq!(s["ingest"]["events"], 2);
    assert_eq!(s["totals"]["input_tokens"], 3);
    // A slot freed on one listener is usable on the other.
    drop(on_unix);
    live.wait_until("one left", |s| s["ingest"]["clients_connected"] == 1);
    let mut again = tcp(&addr);
    again.write_all(hop("t2", 4).as_bytes()).unwrap();
    let s = live.wait_until("the freed slot used", |s| s["ingest"]["events"] == 3);
    assert_eq!(s["ingest"]["clients_connected"], 2);
    drop((on_tcp, again));
    live.stop();
}

#[test]
fn idle_clients_are_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tw.sock");
    let mut live = Live::start(&[
        "--listen",
        &format!("unix:{}", sock.display()),
        "--client-idle-timeout",
        "300ms",
    ]);
    let _ = live.listening("unix:");
    let mut client = unix(&sock);
    client.write_all(hop("idle", 5).as_bytes()).unwrap();
    live.wait_until("the event", |s| s["ingest"]["events"] == 1);
    assert!(closed_by_peer(client), "an idle client is closed");
    let s = live.wait_until("no client left", |s| s["ingest"]["clients_connected"] == 0);
    assert_eq!(s["ingest"]["clients_total"], 1);
    assert_eq!(s["totals"]["input_tokens"], 5);
    live.stop();
}

#[test]
fn id_less_streams_of_two_clients_are_two_calls() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tw.sock");
    let mut live = Live::start(&["--listen", &format!("unix:{}", sock.display())]);
    let _ = live.listening("unix:");
    let stream = |input: u64, output: u64| {
        format!(
            "event: message_start\n\
             data: {{\"type\":\"message_start\",\"message\":{{\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{{\"input_tokens\":{input},\"output_tokens\":1}}}}}}\n\
             \n\
             event: message_delta\n\
             data: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":{output}}}}}\n\
             \n\
             event: message_stop\n\
             data: {{\"type\":\"message_stop\"}}\n"
        )
    };
    // Same lines numbers on both connections, one after the other.
    let mut first = unix(&sock);
    first.write_all(stream(100, 10).as_bytes()).unwrap();
    live.wait_until("the first call", |s| s["ingest"]["events"] == 1);
    let mut second = unix(&sock);
    second.write_all(stream(200, 20).as_bytes()).unwrap();
    drop((first, second));
    let s = live.wait_until("both calls", |s| {
        s["totals"]["input_tokens"] == 300 && s["ingest"]["clients_connected"] == 0
    });
    assert_eq!(s["totals"]["output_tokens"], 30);
    assert_eq!(s["ingest"]["duplicates"], 0);
    live.stop();
}

#[test]
fn recording_into_a_followed_directory_is_refused_through_links_and_dots() {
    let dir = tempfile::tempdir().unwrap();
    let followed = dir.path().join("logs");
    std::fs::create_dir_all(followed.join("sub")).unwrap();
    std::fs::create_dir(dir.path().join("other")).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&followed, &link).unwrap();
    let sock = dir.path().join("tw.sock");
    let listen = format!("unix:{}", sock.display());
    let records = [
        link.join("rec.jsonl"),
        dir.path().join("other/../logs/rec.jsonl"),
        followed.join("sub/../rec.jsonl"),
    ];
    let follows = [
        followed.clone(),
        dir.path().join("other/../logs"),
        link.clone(),
    ];
    for follow in &follows {
        for record in &records {
            let out = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
                .args(["--follow", follow.to_str().unwrap()])
                .args(["--listen", &listen, "--jsonl", "--exit-after", "1s"])
                .args(["--record", record.to_str().unwrap()])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "--follow {} --record {}: {stderr}",
                follow.display(),
                record.display()
            );
            assert!(stderr.contains("is also followed"), "{stderr}");
            assert!(!followed.join("rec.jsonl").exists(), "nothing recorded");
        }
    }
}
