//! tokwatch as a child process: its JSON snapshots (`--jsonl`) and stderr
//! lines read on threads, waits on them with a deadline, a stop by SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The real binary; killed when dropped.
pub struct Tokwatch {
    pub child: Child,
    snapshots: Receiver<Value>,
    latest: Value,
    stderr: Receiver<String>,
    seen_stderr: Vec<String>,
}

impl Tokwatch {
    /// Starts tokwatch with `args` (its mode included: `--jsonl …`,
    /// `--headless`) and `env`.
    pub fn spawn(args: &[&str], env: &[(&str, &Path)]) -> Tokwatch {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tokwatch"));
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
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
                if etx.send(line).is_err() {
                    break;
                }
            }
        });
        Tokwatch {
            child,
            snapshots,
            latest: Value::Null,
            stderr,
            seen_stderr: Vec::new(),
        }
    }

    /// Its stderr so far.
    pub fn stderr(&mut self) -> Vec<String> {
        self.seen_stderr.extend(self.stderr.try_iter());
        self.seen_stderr.clone()
    }

    /// The addresses of the first `n` listeners of `kind` (`otlp-http`,
    /// `metrics`), from their `tokwatch: KIND listening on ADDR` lines.
    pub fn listening_all(&mut self, kind: &str, n: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let prefix = format!("tokwatch: {kind} listening on ");
        loop {
            let found: Vec<String> = self
                .seen_stderr
                .iter()
                .filter_map(|line| line.strip_prefix(&prefix).map(|a| a.trim().to_owned()))
                .collect();
            if found.len() >= n {
                return found;
            }
            match self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.seen_stderr.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no `{prefix}ADDR` line; stderr: {:?}", self.seen_stderr)
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "tokwatch exited before `{prefix}ADDR`; stderr: {:?}",
                    self.seen_stderr
                ),
            }
        }
    }

    /// Waits for a snapshot on which `check` finds nothing wrong; on the
    /// deadline, fails with what it found wrong last.
    pub fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        check: impl Fn(&Value) -> Result<(), String>,
    ) -> Value {
        let deadline = Instant::now() + within;
        let mut problem = "no snapshot yet".to_owned();
        loop {
            if !self.latest.is_null() {
                match check(&self.latest) {
                    Ok(()) => return self.latest.clone(),
                    Err(e) => problem = e,
                }
            }
            match self
                .snapshots
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(snapshot) => self.latest = snapshot,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "timed out waiting for {what}: {problem}\nlast snapshot: {}",
                    self.latest
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "tokwatch exited while waiting for {what}; stderr: {:?}",
                    self.stderr()
                ),
            }
        }
    }

    /// Sends SIGTERM; checks it exits 0 with a final snapshot, and returns it.
    pub fn stop(mut self) -> Value {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "tokwatch exited with {status:?}: {:?}",
            self.stderr()
        );
        let last = self.snapshots.iter().last().unwrap_or(self.latest.clone());
        assert_eq!(last["live"]["last"], true, "a final snapshot on exit");
        last
    }
}

impl Drop for Tokwatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
