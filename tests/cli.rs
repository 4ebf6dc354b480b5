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
        assert!(stdout.contains("evil\u{FFFD}]0;pwned"), "{stdout}");
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
