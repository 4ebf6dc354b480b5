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
        Tmux::start_with_env("", args)
    }

    /// Starts `tokwatch ARGS` in a 120×35 terminal with `ENV` (`NAME=value …`)
    /// added to its environment.
    fn start_with_env(env: &str, args: &str) -> Tmux {
        Tmux::launch(env, args, 120, 35)
    }

    /// Starts `tokwatch ARGS` with `ENV` added in a `width`×`height` terminal
    /// of its own tmux server, with a private state and config home.
    fn launch(env: &str, args: &str, width: u16, height: u16) -> Tmux {
        let dir = tempfile::tempdir().unwrap();
        let socket = format!(
            "tokwatch-test-{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let command = format!(
            "env XDG_STATE_HOME={} XDG_CONFIG_HOME={} TERM=xterm-256color {env} {} {args}",
            dir.path().display(),
            dir.path().display(),
            env!("CARGO_BIN_EXE_tokwatch")
        );
        let tmux = Tmux { socket, _dir: dir };
        let (w, h) = (width.to_string(), height.to_string());
        let out = tmux.tmux(&[
            "new-session",
            "-d",
            "-s",
            "tw",
            "-x",
            &w,
            "-y",
            &h,
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
        poll(what, || {
            let screen = self.screen();
            if ready(&screen) {
                Ok(screen)
            } else {
                Err(format!("screen:\n{screen}"))
            }
        })
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
fn sigterm_and_sighup_restore_the_terminal() {
    for signal in ["-TERM", "-HUP"] {
        let logs = tempfile::tempdir().unwrap();
        append(&logs.path().join("a.jsonl"), &hop("r", 1, 10));
        let tui = Tmux::start(&format!("--follow {}", logs.path().display()));
        tui.wait_for("the overview", |s| s.contains("calls 1"));
        let status = Command::new("kill")
            .args([signal, &tui.pane_pid()])
            .status()
            .unwrap();
        assert!(status.success());
        tui.wait_for("exit", |_| tui.pane_dead());
        assert!(
            !tui.screen().contains("Overview"),
            "{signal}: the alternate screen was left"
        );
    }
}

#[test]
fn a_closed_terminal_ends_the_demo_and_removes_its_temporary_files() {
    // SIGHUP is what a closed terminal window (or `tmux kill-session`) sends
    let tmp = tempfile::tempdir().unwrap();
    let tui = Tmux::start_with_env(&format!("TMPDIR={}", tmp.path().display()), "demo");
    tui.wait_for("the demo's overview", |s| {
        s.contains("runs ") && s.contains("spend")
    });
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(
        leftovers()
            .iter()
            .any(|name| name.starts_with("tokwatch-demo")),
        "the demo works in a temporary directory: {:?}",
        leftovers()
    );
    let pid = tui.pane_pid();
    // the terminal goes away: the pty is closed, the process gets SIGHUP
    // and every write to the terminal fails from then on
    tui.tmux(&["kill-session", "-t", "tw"]);
    eventually("the demo to end", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    assert_eq!(
        leftovers(),
        Vec::<String>::new(),
        "temporary files left behind"
    );
}

#[test]
fn without_sources_the_dashboard_shows_the_built_in_workload() {
    let tui = Tmux::start("");
    let screen = tui.wait_for("the demo workload", |s| s.contains("runs 54"));
    // the Overview's bleeding hops: agent, then hop position
    assert!(
        screen.contains("leeding hops") && screen.contains("! writer "),
        "bleeding hops of the naive team:\n{screen}"
    );
    tui.keys(&["q"]);
    tui.wait_for("exit", |_| tui.pane_dead());
}

#[test]
fn the_dashboard_shows_what_an_otlp_receiver_gets() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tui = Tmux::start(&format!("--otlp 127.0.0.1:{port}"));
    let attr = |k: &str, v: &str| format!(r#"{{"key":"{k}","value":{v}}}"#);
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{}]}},"scopeSpans":[{{"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"chat","startTimeUnixNano":"1764000000000000000","attributes":[{},{},{},{}]}}]}}]}}]}}"#,
        attr("service.name", r#"{"stringValue":"otlp-fleet-bot"}"#),
        attr("gen_ai.operation.name", r#"{"stringValue":"chat"}"#),
        attr("gen_ai.request.model", r#"{"stringValue":"gpt-4o"}"#),
        attr("gen_ai.usage.input_tokens", r#"{"intValue":"1000"}"#),
        attr("gen_ai.usage.output_tokens", r#"{"intValue":"100"}"#),
    );
    let request = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = poll("the receiver", || {
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).map_err(|e| e.to_string())?;
        Ok(answer)
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tui.keys(&["3"]);
    tui.wait_for("the agent of the OTLP span", |s| {
        s.contains("otlp-fleet-bot")
    });
    tui.keys(&["q"]);
    tui.wait_for("exit", |_| tui.pane_dead());
}

/// Starts `tokwatch ARGS` in a `width`×`height` terminal.
fn tmux_at(args: &str, width: u16, height: u16) -> Tmux {
    Tmux::launch("", args, width, height)
}

fn tokwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// In the open budget editor: replaces the per-hop limit (prefilled with
/// the limit in force, `before`) by `value`, reviews, confirms with `y` or
/// `Y` as the prompt asks, and waits for the runtime to apply `version`.
fn push_from_editor(tui: &Tmux, value: &str, before: &str, version: u64) {
    let mut keys: Vec<String> = value.chars().map(String::from).collect();
    keys.push("Enter".into());
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    tui.keys(&keys);
    let screen = tui.wait_for("the diff and the prompt", |s| {
        s.contains(&format!("before  {before}"))
            && (s.contains("press y or Enter") || s.contains("press Y"))
    });
    tui.keys(&[if screen.contains("press Y") { "Y" } else { "y" }]);
    tui.wait_for("the runtime's confirmation", |s| {
        s.contains(&format!("applied v{version}"))
    });
}

/// Polls `check` until it holds (15 s deadline).
fn eventually(what: &str, check: impl Fn() -> bool) {
    poll(what, || if check() { Ok(()) } else { Err(String::new()) });
}

/// Tries `attempt` until it succeeds, with a 15 s deadline; the last
/// failure's text goes in the timeout message. What is awaited (a screen in
/// another process's terminal, a process ending, a file written by another
/// process) has nothing to block on from here, so it is polled: the pause
/// between tries is the polling interval, never a wait that an assertion
/// then trusts.
fn poll<T>(what: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    const INTERVAL: Duration = Duration::from_millis(50);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; {last}"
            ),
        }
        std::thread::sleep(INTERVAL);
    }
}

/// A headless demo runtime, stopped (SIGTERM) when dropped.
struct HeadlessDemo(std::process::Child);

impl HeadlessDemo {
    fn start(out: &Path, control: &str) -> HeadlessDemo {
        use std::io::BufRead as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
            .args(["demo", "--headless", "--rate", "4", "--out"])
            .arg(out)
            .args(["--control", control])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert!(ready.contains("control on"), "{ready}");
        HeadlessDemo(child)
    }
}

impl Drop for HeadlessDemo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn two_controllers_one_runtime_the_dashboard_shows_and_bases_on_what_the_runtime_enforces() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("D");
    let control = format!("unix:{}", dir.path().join("c.sock").display());
    let _demo = HeadlessDemo::start(&out, &control);
    let a = dir.path().join("A.toml").display().to_string();
    let b = dir.path().join("B.toml").display().to_string();
    let set = |store: &str, hop: &str| {
        tokwatch(&[
            "budget",
            "set",
            "--budgets",
            store,
            "--global",
            "--per-hop-limit",
            hop,
            "--control",
            &control,
        ])
    };
    let first = set(&a, "9000");
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("global: applied v1"),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let tui = tmux_at(
        &format!(
            "--follow {} --control {control} --budgets {b}",
            out.display()
        ),
        120,
        35,
    );
    tui.keys(&["7"]);
    // What the runtime enforces, though this dashboard never set it.
    let screen = tui.wait_for("the budget set by controller A", |s| {
        s.contains("v1 per-hop 9000 (trim)") && s.contains("v1 set by another controller")
    });
    assert!(!screen.contains("applied v1"), "{screen}");
    tui.keys(&["b"]);
    tui.wait_for("the editor, from what is in force", |s| {
        s.contains("Edit budget") && s.contains("9000") && s.contains("set by another controller")
    });
    push_from_editor(&tui, "20000", "per-hop 9000 (trim)", 2);
    let listed = tokwatch(&["budget", "list", "--control", &control]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("v2") && listed.contains("per-hop 20000"),
        "the runtime enforces what the dashboard says: {listed}"
    );
    // Controller A changes it again (based on v2, from its hello): the
    // dashboard shows the newer state set elsewhere, not "applied".
    let again = set(&a, "7000");
    assert!(String::from_utf8_lossy(&again.stdout).contains("applied v3"));
    let screen = tui.wait_for("controller A's change", |s| {
        s.contains("v3 per-hop 7000 (trim)") && s.contains("v3 set by another controller")
    });
    assert!(!screen.contains("applied v2"), "{screen}");
    tui.keys(&["q"]);
    tui.wait_for("exit", |_| tui.pane_dead());
}

#[test]
fn the_budget_flow_at_80x24_shows_the_prompt_and_the_runtime_enforces_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("D");
    let control = format!("unix:{}", dir.path().join("c.sock").display());
    let tui = tmux_at(
        &format!("demo --out {} --control {control} --rate 4", out.display()),
        80,
        24,
    );
    tui.wait_for("the demo's dashboard", |s| s.contains("Overview"));
    tui.keys(&["7"]);
    tui.wait_for("the empty Budgets screen saying what to do", |s| {
        s.contains("No budget") && s.contains("Press b")
    });
    tui.keys(&["b"]);
    tui.wait_for("the editor", |s| s.contains("Edit budget"));
    tui.keys(&["5", "0", "0", "0"]);
    // Review until a hop above 5,000 input tokens has been seen, so that the
    // change is below current usage (any key but y goes back to editing).
    let deadline = Instant::now() + Duration::from_secs(15);
    let screen = loop {
        tui.keys(&["Enter"]);
        let screen = tui.wait_for("a prompt", |s| {
            s.contains("BELOW CURRENT USAGE") || s.contains("press y or Enter")
        });
        if screen.contains("BELOW CURRENT USAGE") {
            break screen;
        }
        assert!(Instant::now() < deadline, "never below usage:\n{screen}");
        tui.keys(&["Up"]);
        tui.wait_for("editing again", |s| !s.contains("press y or Enter"));
    };
    assert!(screen.contains("press Y"), "{screen}");
    tui.keys(&["y"]);
    tui.wait_for("why y did nothing", |s| {
        s.contains("below current usage: press Y (shift+y) to confirm")
    });
    tui.keys(&["Y"]);
    tui.wait_for("the runtime's confirmation", |s| s.contains("applied v1"));
    let listed = tokwatch(&["budget", "list", "--control", &control]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("per-hop 5000 (trim)"),
        "{}",
        String::from_utf8_lossy(&listed.stdout)
    );
    // The runtime enforces it: breaches at the new limit in its telemetry.
    eventually("a breach of the 5,000-token limit", || {
        std::fs::read_to_string(out.join("naive-team.jsonl"))
            .is_ok_and(|t| t.contains("\"limit_kind\":\"per_hop\",\"limit\":5000"))
    });
    tui.keys(&["q"]);
    tui.wait_for("exit", |_| tui.pane_dead());
    // The dashboard's budgets are not among the telemetry.
    let report = tokwatch(&["report", out.to_str().unwrap(), "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(doc["ingest"]["malformed"], 0, "{doc}");
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.iter().all(|f| !f.starts_with("budgets")), "{files:?}");
}

#[test]
fn on_the_budgets_screen_b_edits_the_selected_rows_scope_at_80x24() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("D");
    let control = format!("unix:{}", dir.path().join("c.sock").display());
    let _demo = HeadlessDemo::start(&out, &control);
    // Another controller sets the writer's budget; nobody sets a global one.
    let a = dir.path().join("A.toml").display().to_string();
    let set = tokwatch(&[
        "budget",
        "set",
        "--budgets",
        &a,
        "--agent",
        "writer",
        "--per-hop-limit",
        "9000",
        "--control",
        &control,
    ]);
    assert!(
        String::from_utf8_lossy(&set.stdout).contains("applied v1"),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let b = dir.path().join("B.toml").display().to_string();
    let tui = tmux_at(
        &format!(
            "--follow {} --control {control} --budgets {b}",
            out.display()
        ),
        80,
        24,
    );
    tui.keys(&["7"]);
    tui.wait_for("the writer's budget, below the global row", |s| {
        s.contains("agent writer") && s.contains("v1 per-hop 9000 (trim)") && s.contains("global")
    });
    // The global row is first and selected: j selects the writer's.
    tui.keys(&["j", "b"]);
    tui.wait_for("the writer's editor, from what is in force", |s| {
        s.contains("Budget for agent writer") && s.contains("set by another controller")
    });
    push_from_editor(&tui, "8000", "per-hop 9000 (trim)", 2);
    let listed = tokwatch(&["budget", "list", "--control", &control]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("writer") && listed.contains("v2") && listed.contains("per-hop 8000"),
        "the runtime enforces the writer's new limit: {listed}"
    );
    assert!(
        !listed.contains("global"),
        "the global budget is untouched: {listed}"
    );
    tui.keys(&["q"]);
    tui.wait_for("exit", |_| tui.pane_dead());
}

#[test]
fn a_change_refused_as_a_conflict_is_never_pushed_after_the_runtime_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("D");
    let control = format!("unix:{}", dir.path().join("c.sock").display());
    let demo = HeadlessDemo::start(&out, &control);
    let a = dir.path().join("A.toml").display().to_string();
    let b = dir.path().join("B.toml");
    let set = |hop: &str| {
        tokwatch(&[
            "budget",
            "set",
            "--budgets",
            &a,
            "--global",
            "--per-hop-limit",
            hop,
            "--control",
            &control,
        ])
    };
    assert!(String::from_utf8_lossy(&set("30000").stdout).contains("applied v1"));
    let tui = tmux_at(
        &format!(
            "--follow {} --control {control} --budgets {}",
            out.display(),
            b.display()
        ),
        120,
        35,
    );
    tui.keys(&["7"]);
    tui.wait_for("the budget set by controller A", |s| {
        s.contains("v1 set by another controller")
    });
    // The editor opens on v1; controller A sets v2 while it is open.
    tui.keys(&["b"]);
    tui.wait_for("the editor", |s| {
        s.contains("Edit budget") && s.contains("30000")
    });
    assert!(String::from_utf8_lossy(&set("4000").stdout).contains("applied v2"));
    tui.wait_for("the editor saying the scope moved on", |s| {
        s.contains("changed by another controller: v2 per-hop 4000")
            && s.contains("your change is based on v1")
    });
    // Confirmed anyway: numbered v3 (above what the runtime reported), based
    // on v1, refused; theirs is adopted.
    tui.keys(&["BSpace", "BSpace", "BSpace", "BSpace", "BSpace"]);
    tui.keys(&["2", "5", "0", "0", "0", "Enter"]);
    let screen = tui.wait_for("the prompt", |s| {
        s.contains("press y or Enter") || s.contains("press Y")
    });
    tui.keys(&[if screen.contains("press Y") { "Y" } else { "y" }]);
    tui.wait_for("the refusal", |s| s.contains("v3 refused"));
    eventually("the adopted budget in the store", || {
        std::fs::read_to_string(&b).is_ok_and(|t| {
            t.contains("[[adopted]]") && t.contains("per_hop_limit = 4000") && !t.contains("25000")
        })
    });
    let audit = std::fs::read_to_string(dir.path().join("B-audit.jsonl")).unwrap();
    assert!(audit.contains("\"event\":\"adopt\""), "{audit}");

    // The runtime restarts without budgets; the dashboard reconnects and syncs.
    drop(demo);
    tui.wait_for("the runtime down", |s| s.contains("unconfirmed"));
    let _demo = HeadlessDemo::start(&out, &control);
    eventually("the runtime back with a budget", || {
        let listed = tokwatch(&["budget", "list", "--control", &control]);
        String::from_utf8_lossy(&listed.stdout).contains("per-hop")
    });
    // Give the sync its time; what is in force stays theirs.
    tui.wait_for("the dashboard connected again", |s| {
        s.contains("connected to") && !s.contains("unconfirmed")
    });
    let listed = tokwatch(&["budget", "list", "--control", &control]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("v2") && listed.contains("per-hop 4000") && !listed.contains("25000"),
        "{listed}"
    );
    tui.keys(&["q"]);
    tui.wait_for("exit", |_| tui.pane_dead());
}
