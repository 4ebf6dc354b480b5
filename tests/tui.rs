//! The real dashboard in a real pseudo-terminal (tmux): numbers change when a
//! followed file grows, Enter drills into a run's hops, and the terminal is
//! restored on `q` and on SIGTERM. CI installs tmux (`.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed (apt-get install tmux)")
    }

    /// Starts `tokwatch ARGS` in a 120×35 terminal.
    fn start(args: &str) -> Tmux {
        let dir = tempfile::tempdir().unwrap();
        let socket = format!(
            "tokwatch-test-{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let command = format!(
            "env XDG_STATE_HOME={} XDG_CONFIG_HOME={} TERM=xterm-256color {} {args}",
            dir.path().display(),
            dir.path().display(),
            env!("CARGO_BIN_EXE_tokwatch")
        );
        let tmux = Tmux { socket, _dir: dir };
        let out = tmux.tmux(&[
            "new-session",
            "-d",
            "-s",
            "tw",
            "-x",
            "120",
            "-y",
            "35",
            &command,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux.tmux(&["set-option", "-t", "tw", "remain-on-exit", "on"]);
        tmux
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-t", "tw", "-p"]).stdout).into_owned()
    }

    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tw"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn pane_dead(&self) -> bool {
        String::from_utf8_lossy(
            &self
                .tmux(&["display-message", "-p", "-t", "tw", "#{pane_dead}"])
                .stdout,
        )
        .trim()
            == "1"
    }

    fn pane_pid(&self) -> String {
        String::from_utf8_lossy(
            &self
                .tmux(&["display-message", "-p", "-t", "tw", "#{pane_pid}"])
                .stdout,
        )
        .trim()
        .to_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
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

fn hop(run: &str, hop: u32, input: u64) -> String {
    format!(
        "{{\"ts\":\"2026-11-28T10:00:0{hop}Z\",\"run_id\":\"{run}\",\"hop\":{hop},\"agent\":\"writer\",\"model\":\"gpt-4o\",\"input_tokens\":{input},\"output_tokens\":100}}\n"
    )
}

#[test]
fn live_numbers_change_and_enter_drills_into_hops() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("agent.jsonl");
    append(&log, &hop("first-run", 1, 1000));
    let tui = Tmux::start(&format!("--follow {}", logs.path().display()));
    tui.wait_for("the overview", |s| {
        s.contains("Overview") && s.contains("calls 1")
    });
    append(
        &log,
        &(hop("first-run", 2, 9000) + &hop("big-run", 1, 500_000)),
    );
    let screen = tui.wait_for("the new lines on screen", |s| s.contains("calls 3"));
    assert!(screen.contains("runs 2"), "{screen}");
    tui.keys(&["2"]);
    tui.wait_for("the runs list", |s| {
        s.contains("big-run") && s.contains("first-run")
    });
    tui.keys(&["j", "Enter"]); // the second run by cost: first-run
    let screen = tui.wait_for("the run's hops", |s| {
        s.contains("Run first-run") && s.contains("Hops · 2 rows")
    });
    assert!(
        screen.contains("9.0k"),
        "hop 2's input is listed:\n{screen}"
    );
    tui.keys(&["Escape"]);
    tui.wait_for("back to the runs list", |s| s.contains("Runs · 2 rows"));
    tui.keys(&["?"]);
    tui.wait_for("the help overlay", |s| {
        s.contains("Keys") && s.contains("drill down")
    });
    // (Esc and a key sent together read as Alt+key: send them apart.)
    tui.keys(&["Escape"]);
    tui.wait_for("help closed", |s| !s.contains("drill down"));
    tui.keys(&["q"]);
    tui.wait_for("exit", |_| tui.pane_dead());
    let screen = tui.screen();
    assert!(
        !screen.contains("Overview") && !screen.contains("Runs ·"),
        "the terminal is restored:\n{screen}"
    );
}

#[test]
fn sigterm_restores_the_terminal() {
    let logs = tempfile::tempdir().unwrap();
    append(&logs.path().join("a.jsonl"), &hop("r", 1, 10));
    let tui = Tmux::start(&format!("--follow {}", logs.path().display()));
    tui.wait_for("the overview", |s| s.contains("calls 1"));
    let status = Command::new("kill")
        .args(["-TERM", &tui.pane_pid()])
        .status()
        .unwrap();
    assert!(status.success());
    tui.wait_for("exit", |_| tui.pane_dead());
    assert!(
        !tui.screen().contains("Overview"),
        "the alternate screen was left"
    );
}

#[test]
fn without_sources_the_dashboard_shows_the_built_in_workload() {
    let tui = Tmux::start("");
    let screen = tui.wait_for("the demo workload", |s| s.contains("runs 54"));
    assert!(
        screen.contains("writer · hop"),
        "bleeding hops of the naive team:\n{screen}"
    );
    tui.keys(&["q"]);
    tui.wait_for("exit", |_| tui.pane_dead());
}
