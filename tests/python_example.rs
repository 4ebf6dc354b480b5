//! The Python example runtime (`examples/python`) and its own tests, run
//! against this build's binary: `cargo test` covers the example too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

#[test]
fn the_python_example_passes_its_tests_against_this_binary() {
    let python = Command::new("python3").arg("--version").output();
    let version = match python {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => panic!(
            "python3 is required to test examples/python (stdlib only, Python 3.11+): \
             install it (e.g. apt-get install python3) and run cargo test again"
        ),
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python");
    let output = Command::new("python3")
        .args(["-m", "unittest", "-v", "test_tokwatch_runtime"])
        .current_dir(&dir)
        .env("TOKWATCH_BIN", env!("CARGO_BIN_EXE_tokwatch"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run python3 -m unittest");
    let log = format!(
        "{}\n{}{}",
        version.trim(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the example's tests failed:\n{log}"
    );
    // Skipped binary tests would hide a broken integration.
    assert!(!log.contains("skipped"), "tests were skipped:\n{log}");
    assert!(
        log.contains("test_tokwatch_pushes_budgets_and_reports_breaches"),
        "{log}"
    );
}
