//! Socket listeners under hostile and crowded conditions, through the real
//! binary in `--jsonl` mode: silent peers that never send the token, the
//! client cap shared by every listener, idle clients, id-less streams of
//! two clients, and `--record` paths that reach a followed directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
            .args(args)
            .args(["--jsonl", "--interval", "50ms"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tokwatch");
        let stdout = child.stdout.take().unwrap();
        let (tx, snapshots) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value: Value = serde_json::from_str(&line).expect("one JSON snapshot");
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
                    "timed out waiting for {what}; last snapshot's ingest: {}",
                    self.latest["ingest"]
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    self.seen_stderr.extend(self.stderr.try_iter());
                    panic!(
                        "tokwatch exited while waiting for {what}; stderr: {:?}",
                        self.seen_stderr
                    )
                }
            }
        }
    }

    /// The address a listener bound (with its real port).
    fn listening(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self.seen_stderr.iter().find_map(|line| {
                line.strip_prefix("tokwatch: listening on ")
                    .filter(|a| a.starts_with(prefix))
                    .map(|a| a.strip_prefix("tcp:").unwrap_or(a).to_owned())
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

    fn stop(mut self) -> Value {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "tokwatch exited with {status:?}");
        self.snapshots.iter().last().unwrap_or(self.latest.clone())
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

fn tcp(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

fn unix(path: &std::path::Path) -> UnixStream {
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
