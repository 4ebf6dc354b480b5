//! The real binary: exit codes and messages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn tokwatch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(args)
        .output()
        .expect("run tokwatch")
}

#[test]
fn report_succeeds_with_malformed_lines() {
    let out = tokwatch(&["report", "tests/fixtures/malformed.jsonl"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("tests/fixtures/malformed.jsonl:3:"),
        "{stdout}"
    );
    assert!(stdout.contains("10 malformed"), "{stdout}");
}

#[test]
fn missing_path_is_a_clear_error() {
    let out = tokwatch(&["report", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'no/such/dir': no such file or directory"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn unreadable_or_invalid_price_file_is_a_clear_error() {
    let out = tokwatch(&["report", "sample_logs", "--prices", "no/such/prices.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read price file 'no/such/prices.json'")
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("prices.toml");
    std::fs::write(
        &bad,
        "version = \"x\"\n[[model]]\nname = \"m\"\ninput = 1.0\noutput = 1.0\nsurprise = 1\n",
    )
    .unwrap();
    let out = tokwatch(&["report", "sample_logs", "--prices", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("price file") && stderr.contains("surprise"),
        "{stderr}"
    );
}

#[test]
fn bad_time_arguments_are_clear_errors() {
    let out = tokwatch(&["report", "sample_logs", "--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'last tuesday' is not a time"));
    let out = tokwatch(&[
        "report",
        "sample_logs",
        "--group-by",
        "day",
        "--timezone",
        "Mars/Olympus",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("'Mars/Olympus' is not an IANA time zone")
    );
}

#[test]
fn escape_sequences_in_logs_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("evil.jsonl");
    std::fs::write(
        &log,
        "{\"run_id\":\"r\\u001b[2J\",\"agent\":\"evil\\u001b]0;pwned\\u0007\\u202e\",\"model\":\"gpt-4o\",\"input_tokens\":1,\"output_tokens\":1}\n",
    )
    .unwrap();
    for format in ["table", "markdown"] {
        let out = tokwatch(&[
            "report",
            log.to_str().unwrap(),
            "--format",
            format,
            "--hops",
        ]);
        assert!(out.status.success());
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            !stdout.contains('\u{1b}') && !stdout.contains('\u{7}') && !stdout.contains('\u{202e}'),
            "{format}: {stdout:?}"
        );
        // Markdown escapes the `]` too (it could close a link).
        let shown = if format == "markdown" {
            "evil\u{FFFD}\\]0;pwned"
        } else {
            "evil\u{FFFD}]0;pwned"
        };
        assert!(stdout.contains(shown), "{stdout}");
    }
}

#[test]
fn closed_pipe_is_not_an_error() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["report", "sample_logs", "--format", "json", "--hops"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0_u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // stdout is dropped here: the rest of the write hits a closed pipe
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// Runs tokwatch with a config home of its own (no user config, no
/// `TOKWATCH_CONFIG`).
fn tokwatch_in(config_home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(args)
        .env("XDG_CONFIG_HOME", config_home)
        .env_remove("TOKWATCH_CONFIG")
        .output()
        .expect("run tokwatch")
}

fn stdout_of(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether `program` can be run here (zsh, fish and groff are optional).
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Every command of the CLI with its path (`["budget", "set"]`).
fn commands() -> Vec<(Vec<String>, clap::Command)> {
    use clap::CommandFactory as _;
    fn walk(path: Vec<String>, cmd: &clap::Command, out: &mut Vec<(Vec<String>, clap::Command)>) {
        out.push((path.clone(), cmd.clone()));
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut sub_path = path.clone();
            sub_path.push(sub.get_name().to_owned());
            walk(sub_path, sub, out);
        }
    }
    let mut out = Vec::new();
    walk(Vec::new(), &tokwatch::cli::Cli::command(), &mut out);
    out
}

#[test]
fn completion_scripts_parse_and_know_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let subcommands: Vec<String> = commands()
        .into_iter()
        .filter(|(path, _)| path.len() == 1)
        .map(|(path, _)| path[0].clone())
        .collect();
    assert!(subcommands.contains(&"completions".to_owned()) && subcommands.len() >= 7);
    for (shell, marker, check) in [
        ("bash", "complete -F _tokwatch", Some(("bash", "-n"))),
        ("zsh", "#compdef tokwatch", Some(("zsh", "-n"))),
        (
            "fish",
            "complete -c tokwatch",
            Some(("fish", "--no-execute")),
        ),
        ("elvish", "edit:completion:arg-completer[tokwatch]", None),
        ("powershell", "Register-ArgumentCompleter", None),
    ] {
        let script = stdout_of(tokwatch_in(dir.path(), &["completions", shell]));
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for name in &subcommands {
            assert!(script.contains(name.as_str()), "{shell} lacks {name}");
        }
        for flag in ["follow", "print-bindings", "per-hop-limit", "group-by"] {
            assert!(script.contains(flag), "{shell} lacks --{flag}");
        }
        let Some((program, flag)) = check else {
            continue;
        };
        if !installed(program) {
            eprintln!("{program} is not installed: {shell} checked by content only");
            continue;
        }
        let path = dir.path().join(format!("tokwatch.{shell}"));
        std::fs::write(&path, &script).unwrap();
        let out = Command::new(program).arg(flag).arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Bash completes for real: subcommands after `tokwatch`, flags of `config`.
    let script = dir.path().join("tokwatch.bash");
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; \
             _tokwatch tokwatch '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            line.len(),
            words[words.len() - 1],
            words[words.len().saturating_sub(2)],
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(program)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let first = complete("tokwatch ");
    for name in ["report", "demo", "config", "completions", "man"] {
        assert!(
            first.lines().any(|l| l == name),
            "{name} not offered: {first}"
        );
    }
    let config = complete("tokwatch config --print");
    assert!(
        config.lines().any(|l| l == "--print-bindings")
            && config.lines().any(|l| l == "--print-default"),
        "{config}"
    );
}

#[test]
fn the_man_pages_cover_every_command_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let main = stdout_of(tokwatch_in(dir.path(), &["man"]));
    assert!(main.contains(".TH tokwatch 1"), "{main}");
    let out = dir.path().join("man1");
    let written = tokwatch_in(dir.path(), &["man", "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&written.stderr).into_owned();
    assert!(written.status.success(), "{stderr}");
    // What `man` prints is the directory's tokwatch.1.
    assert_eq!(
        std::fs::read_to_string(out.join("tokwatch.1")).unwrap(),
        main
    );
    let groff = installed("groff");
    for (path, cmd) in commands() {
        let name = std::iter::once("tokwatch".to_owned())
            .chain(path.iter().cloned())
            .collect::<Vec<_>>()
            .join("-");
        let file = out.join(format!("{name}.1"));
        assert!(
            stderr.contains(&format!("wrote {}", file.display())),
            "{stderr}"
        );
        let page = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        // roff writes '-' as '\-'.
        let text = page.replace("\\-", "-");
        assert!(text.contains(&format!(".TH {name} 1")), "{name}");
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(
                    text.contains(&format!("\\fB--{long}\\fR")),
                    "{name}.1 lacks --{long}"
                );
            } else if arg.is_positional() {
                let value = arg.get_id().as_str().to_uppercase();
                assert!(text.contains(&value), "{name}.1 lacks <{value}>");
            }
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let reference = format!("{name}-{}(1)", sub.get_name());
            assert!(text.contains(&reference), "{name}.1 lacks {reference}");
        }
        assert!(
            !text.contains("-help(1)"),
            "{name}.1 lists a help subcommand"
        );
        if groff {
            let check = Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                check.status.success() && check.stderr.is_empty(),
                "{name}.1: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
    let pages = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(pages, commands().len(), "one page per command, no more");
}

#[test]
fn config_print_default_is_the_commented_sample() {
    let dir = tempfile::tempdir().unwrap();
    let printed = stdout_of(tokwatch_in(dir.path(), &["config", "--print-default"]));
    let sample = std::fs::read_to_string("config/tokwatch.sample.toml").unwrap();
    assert_eq!(printed, sample);
    assert_eq!(
        tokwatch::config::Settings::from_toml(&printed).unwrap(),
        tokwatch::config::Settings::default()
    );
    // Written where the dashboard looks, it changes nothing.
    let home = dir.path().join("tokwatch");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("config.toml"), &printed).unwrap();
    let defaults = stdout_of(tokwatch_in(dir.path(), &["config", "--print-bindings"]));
    assert!(!defaults.contains('*'), "{defaults}");
}

#[test]
fn config_print_bindings_shows_the_keys_in_force() {
    use tokwatch::config::{Action, Settings};
    let dir = tempfile::tempdir().unwrap();
    // No config file: the defaults, and where the file would be.
    let defaults = stdout_of(tokwatch_in(dir.path(), &["config", "--print-bindings"]));
    let expected = dir.path().join("tokwatch").join("config.toml");
    assert!(
        defaults.starts_with(&format!(
            "Key bindings in force: the defaults (no config file at '{}')",
            expected.display()
        )),
        "{defaults}"
    );
    assert!(
        defaults
            .lines()
            .any(|l| l.starts_with("  quit ") && l.contains("q, ctrl+c"))
    );

    // The user's file remaps quit and freeze: the table and the TOML say so.
    let config = dir.path().join("mine.toml");
    std::fs::write(
        &config,
        "[bindings]\nquit = \"x\"\nfreeze = [\"F\", \"ctrl+f\"]\n",
    )
    .unwrap();
    let table = stdout_of(tokwatch_in(
        dir.path(),
        &[
            "config",
            "--print-bindings",
            "--config",
            config.to_str().unwrap(),
        ],
    ));
    assert!(
        table.contains(&format!("then '{}'", config.display())),
        "{table}"
    );
    let line = |name: &str| {
        table
            .lines()
            .find(|l| {
                l.get(2..)
                    .is_some_and(|rest| rest.starts_with(&format!("{name} ")))
            })
            .unwrap_or_else(|| panic!("no {name} in {table}"))
    };
    assert!(
        line("quit").starts_with("* quit") && line("quit").contains(" x "),
        "{table}"
    );
    assert!(line("freeze").starts_with("* freeze") && line("freeze").contains("F, ctrl+f"));
    assert!(line("help").starts_with("  help") && line("help").contains('?'));

    // Through TOKWATCH_CONFIG too, as TOML that reads back as the same keys.
    let toml = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["config", "--print-bindings", "--format", "toml"])
        .env("XDG_CONFIG_HOME", dir.path())
        .env("TOKWATCH_CONFIG", &config)
        .output()
        .unwrap();
    let toml = stdout_of(toml);
    let keymap = Settings::from_toml(&toml).unwrap().keymap;
    assert_eq!(keymap.describe(Action::Quit), "x");
    assert_eq!(keymap.describe(Action::Freeze), "F, ctrl+f");
    assert_eq!(keymap.describe(Action::Help), "?");
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(keymap, Settings::from_toml(&text).unwrap().keymap);

    // A named file that is missing, or a conflict, is an error that says so.
    let out = tokwatch_in(
        dir.path(),
        &["config", "--print-bindings", "--config", "no/such.toml"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'no/such.toml' does not exist"));
    std::fs::write(&config, "[bindings]\nquit = \"t\"\n").unwrap();
    let out = tokwatch_in(
        dir.path(),
        &[
            "config",
            "--print-bindings",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'next-theme'"));
    // One of the two is required.
    let out = tokwatch_in(dir.path(), &["config"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_followed_path_that_does_not_exist_is_waited_for_visibly_then_read() {
    use std::io::{BufRead as _, BufReader, Read as _};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-yet/agent.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["--follow", path.to_str().unwrap(), "--jsonl"])
        .args(["--interval", "100ms", "--poll-interval", "100ms"])
        .args(["--exit-after", "60s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut snapshots = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut next_until = |what: &str, done: &dyn Fn(&serde_json::Value) -> bool| loop {
        assert!(Instant::now() < deadline, "no snapshot with {what}");
        let line = snapshots.next().expect("a snapshot").unwrap();
        let snapshot: serde_json::Value = serde_json::from_str(&line).unwrap();
        if done(&snapshot) {
            return snapshot;
        }
    };
    let shown = path.display().to_string();
    let waiting = next_until("the path waited for", &|s| {
        s["ingest"]["waiting_for"] == serde_json::json!([shown.as_str()])
    });
    assert_eq!(waiting["totals"]["events"], 0);

    // It appears, with two model calls: they are counted, nothing waited for.
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let line = r#"{"ts":"2026-11-28T10:00:00Z","run_id":"r1","hop":1,"agent":"a","model":"gpt-4o-mini","input_tokens":100,"output_tokens":10}"#;
    std::fs::write(
        &path,
        format!("{line}\n{}\n", line.replace("\"hop\":1", "\"hop\":2")),
    )
    .unwrap();
    let read = next_until("both calls", &|s| s["totals"]["events"] == 2);
    assert!(
        read["ingest"].get("waiting_for").is_none(),
        "{}",
        read["ingest"]
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains(&format!("tokwatch: waiting for '{shown}' to appear"))
            && stderr.contains(&format!("tokwatch: '{shown}' appeared")),
        "{stderr}"
    );
}

/// Counts how often `needle` occurs in `text`.
fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn bad_entries_under_a_directory_are_skipped_warned_once_and_listed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join("sub")).unwrap();
    std::fs::write(
        logs.join("good.jsonl"),
        "{\"run_id\":\"r\",\"agent\":\"a\",\"model\":\"gpt-4o\",\"input_tokens\":10,\"output_tokens\":5}\n",
    )
    .unwrap();
    symlink(logs.join("gone.jsonl"), logs.join("dangling.jsonl")).unwrap();
    symlink("loop-b.jsonl", logs.join("loop-a.jsonl")).unwrap();
    symlink("loop-a.jsonl", logs.join("loop-b.jsonl")).unwrap();
    symlink("..", logs.join("sub/up")).unwrap();
    // Opens, then fails to read (EIO at offset 0), even for root.
    symlink("/proc/self/mem", logs.join("unreadable.jsonl")).unwrap();
    // A broken link that is not a log is none of our business.
    symlink(logs.join("gone.txt"), logs.join("notes.txt")).unwrap();
    let bad = [
        "dangling.jsonl",
        "loop-a.jsonl",
        "loop-b.jsonl",
        "sub/up",
        "unreadable.jsonl",
    ];
    for threads in ["1", "2"] {
        let out = tokwatch(&["report", logs.to_str().unwrap(), "--threads", threads]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "{threads}: {stderr}");
        assert!(stdout.contains("1 model calls in 1 runs"), "{stdout}");
        for name in bad {
            assert_eq!(
                occurrences(&stderr, &format!("{name}'")),
                1,
                "{threads}: one warning for {name}: {stderr}"
            );
            assert!(
                stdout.contains(&format!("{name}'")),
                "{threads}: {name} listed in the report: {stdout}"
            );
        }
        assert!(!stderr.contains("notes.txt"), "{stderr}");
        assert!(stderr.contains("broken symbolic link"), "{stderr}");
        assert!(stderr.contains("symbolic link loop"), "{stderr}");
        assert!(stderr.contains("Input/output error"), "{stderr}");
        assert!(
            stdout.contains("5 entries skipped (cannot be read)"),
            "{stdout}"
        );
    }
    let out = tokwatch(&["report", logs.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ingest"]["errors"], 5, "{}", json["ingest"]);
    let failed: Vec<&str> = json["ingest"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["errors"] == 1 && s["last_error"].is_string())
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 5, "{failed:?}");
    for name in bad {
        assert!(
            failed.iter().any(|f| f.ends_with(name)),
            "{name}: {failed:?}"
        );
    }
}

#[test]
fn a_named_path_that_is_a_symlink_loop_is_a_clear_error_said_once() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    symlink("b.jsonl", &a).unwrap();
    symlink("a.jsonl", dir.path().join("b.jsonl")).unwrap();
    let out = tokwatch(&["report", a.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(occurrences(&stderr, "symbolic links"), 1, "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_full_disk_is_an_error_not_an_empty_report() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // no /dev/full here
    };
    for format in ["table", "json", "csv", "markdown"] {
        let out = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
            .args(["report", "sample_logs", "--format", format])
            .stdout(full.try_clone().unwrap())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{format}: {stderr}");
        assert!(
            stderr.contains("cannot write the report") && stderr.contains("No space left"),
            "{format}: {stderr}"
        );
    }
}
