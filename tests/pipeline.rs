//! The pipelined report path (`--threads N`: N decode threads + the fold)
//! gives byte-identical reports to the single-threaded one (`--threads 1`),
//! whatever the number of threads and files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use clap::Parser;
use tokwatch::cli::{Cli, Command};
use tokwatch::ingest::sources::files;
use tokwatch::ingest::{Ingestor, TimeWindow, pipeline};
use tokwatch::model::{Ledger, LedgerConfig};
use tokwatch::pricing::PriceBook;

/// 2026-11-28T12:00:00Z: a pinned "now" for relative time filters.
const NOW_MS: i64 = 1_795_867_200_000;

fn report(args: &[&str], threads: &str) -> String {
    let mut argv = vec!["tokwatch", "report", "--threads", threads];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("valid arguments");
    let Some(Command::Report(args)) = cli.command else {
        panic!("report command")
    };
    tokwatch::report_text(&args, NOW_MS).expect("report succeeds")
}

/// Both paths, compared byte for byte; returns the report.
fn same_report(args: &[&str]) -> String {
    let single = report(args, "1");
    let piped = report(args, "2");
    assert_eq!(piped, report(args, "5"), "5 decode threads");
    if single != piped {
        let at = single
            .bytes()
            .zip(piped.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(single.len().min(piped.len()));
        let from = at.saturating_sub(200);
        panic!(
            "reports differ for {args:?} at byte {at} (lengths {} / {}):\n--- threads 1:\n{}\n--- threads 2:\n{}",
            single.len(),
            piped.len(),
            single
                .get(from..(at + 200).min(single.len()))
                .unwrap_or("?"),
            piped.get(from..(at + 200).min(piped.len())).unwrap_or("?"),
        );
    }
    piped
}

fn root(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

#[test]
fn sample_logs_in_every_shape() {
    let logs = root("sample_logs");
    for extra in [
        &["--format", "json"][..],
        &["--format", "json", "--hops"],
        &["--format", "json", "--group-by", "day", "--timezone", "UTC"],
        &[
            "--format",
            "json",
            "--since",
            "2026-11-24",
            "--until",
            "2026-11-24",
            "--timezone",
            "UTC",
        ],
        &["--format", "table", "--hops", "--top", "0"],
        &["--format", "csv"],
        &["--format", "markdown"],
    ] {
        let mut args = vec![logs.as_str()];
        args.extend_from_slice(extra);
        same_report(&args);
    }
}

#[test]
fn malformed_fixture() {
    let path = root("tests/fixtures/malformed.jsonl");
    let json = same_report(&[&path, "--max-line-bytes", "2048", "--format", "json"]);
    assert!(json.contains("exceeds --max-line-bytes 2048"));
    same_report(&[&path, "--max-line-bytes", "2048", "--hops"]);
}

#[test]
fn oracles_fixture() {
    let path = root("tests/fixtures/oracles.jsonl");
    same_report(&[&path, "--format", "json", "--hops"]);
    same_report(&[&path, "--format", "table"]);
}

/// Removes `"key":value,` (a value without commas) from a JSON line.
fn drop_field(line: &str, key: &str) -> String {
    let needle = format!("\"{key}\":");
    let Some(start) = line.find(&needle) else {
        return line.to_owned();
    };
    let end = line[start..]
        .find(',')
        .map_or(line.len(), |i| start + i + 1);
    format!("{}{}", &line[..start], &line[end..])
}

/// A generated corpus made awkward: records without `hop`, `run_id` or
/// `agent`, JSON escapes, blank and CRLF lines, malformed, invalid UTF-8
/// and oversized lines (one of several MiB), no final newline; split in two
/// files so the second one starts mid-stream.
fn awkward_corpus(dir: &Path, events: u64) -> PathBuf {
    let generated = dir.join("generated.jsonl");
    tokwatch::workload::write_bench_corpus(&generated, events, 11).unwrap();
    let text = std::fs::read_to_string(&generated).unwrap();
    std::fs::remove_file(&generated).unwrap();
    let mut out: Vec<u8> = Vec::new();
    let corpus = dir.join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let mut line = (*line).to_owned();
        if i % 5 == 1 {
            line = drop_field(&line, "hop");
        }
        if i % 7 == 2 {
            // the same values, spelled with escapes
            line = line
                .replace("\"agent\":\"w", "\"agent\":\"\\u0077")
                .replace("\"segment\":\"lean/", "\"segment\":\"lean\\/");
        }
        if i % 11 == 3 {
            line = drop_field(&line, "run_id");
        }
        if i % 13 == 4 {
            line = drop_field(&line, "agent");
        }
        if i % 3 == 0 {
            // raw non-ASCII text, some of it across read boundaries
            line = line.replace("\"user\":\"", "\"user\":\"ü€");
        }
        if i % 17 == 5 {
            line = line.replace("\"status\":\"ok\"", "\"status\":\"o\\\"k\\u00e9\"");
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(if i % 1009 == 6 { b"\r\n" } else { b"\n" });
        if i % 997 == 7 {
            out.extend_from_slice(b"\n   \n");
        }
        if i % 1499 == 8 {
            out.extend_from_slice(b"{\"ts\":\"2026-11-23T08:00:00Z\",\"run_id\":\n");
        }
        if i % 2003 == 9 {
            out.extend_from_slice(
                b"{\"run_id\":\"\xff\xfe\",\"input_tokens\":1,\"output_tokens\":1}\n",
            );
        }
        if i % 3001 == 10 {
            out.extend_from_slice(b"{\"x\":\"");
            out.extend(std::iter::repeat_n(b'a', 5_000 + i % 977));
            out.extend_from_slice(b"\"}\n");
        }
        if i == lines.len() / 3 {
            out.extend(std::iter::repeat_n(b'z', 3 * 1024 * 1024 + 17));
            out.push(b'\n');
        }
        if i == lines.len() / 2 {
            std::fs::write(corpus.join("a.jsonl"), std::mem::take(&mut out)).unwrap();
        }
    }
    out.pop(); // no final newline
    std::fs::write(corpus.join("b.jsonl"), out).unwrap();
    corpus
}

#[test]
fn awkward_generated_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = awkward_corpus(dir.path(), 50_000);
    let corpus = corpus.display().to_string();
    let json = same_report(&[&corpus, "--format", "json", "--max-line-bytes", "4096"]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let text = value.to_string();
    assert!(text.contains("auto:a.jsonl"), "synthetic run ids");
    assert!(text.contains("o\\\"k"), "escaped status");
    assert!(text.contains("exceeds --max-line-bytes 4096"));
    assert!(text.contains("invalid UTF-8"));
    same_report(&[
        &corpus,
        "--format",
        "json",
        "--hops",
        "--max-line-bytes",
        "4096",
    ]);
    same_report(&[
        &corpus,
        "--format",
        "table",
        "--group-by",
        "day",
        "--timezone",
        "UTC",
    ]);
}

fn ingest(
    files: &[PathBuf],
    read: impl FnOnce(&[PathBuf], &mut Ingestor<'_>) -> Result<(), files::DiscoverError>,
) -> (String, tokwatch::ingest::IngestStats, u64) {
    let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
    let mut ingestor = Ingestor::new(&mut ledger, TimeWindow::default());
    let result = read(files, &mut ingestor);
    let stats = ingestor.stats;
    let tokens = ledger.snapshot().totals.total_tokens;
    (format!("{result:?}"), stats, tokens)
}

#[test]
fn a_missing_file_is_skipped_alike_on_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        PathBuf::from(root("tests/fixtures/oracles.jsonl")),
        dir.path().join("gone.jsonl"),
        PathBuf::from(root("tests/fixtures/malformed.jsonl")),
    ];
    let single = ingest(&files, |f, i| {
        files::read_files(f, 2048, &Default::default(), i)
    });
    let piped = ingest(&files, |f, i| {
        pipeline::read_files(f, 2048, &Default::default(), i)
    });
    // Skipped and counted as its source's error; the files after it are read.
    assert_eq!(single.0, "Ok(())");
    let gone = single
        .1
        .sources
        .iter()
        .find(|s| s.name.ends_with("gone.jsonl"))
        .unwrap();
    assert_eq!(gone.live.errors, 1);
    assert!(
        gone.live
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("cannot open:")),
        "{gone:?}"
    );
    assert!(
        single
            .1
            .sources
            .iter()
            .any(|s| s.name.ends_with("malformed.jsonl") && s.lines > 0)
    );
    assert_eq!(single, piped);
}

#[test]
fn claude_code_sessions_decoded_in_parallel_fold_as_read_in_order() {
    // Many files (sub-agents, resumed sessions, replays): calls settled
    // across files must not depend on which thread decoded which file.
    let dir = tempfile::tempdir().unwrap();
    let corpus =
        tokwatch::workload::claude_code::write_claude_corpus(dir.path(), 5_000_000, 10).unwrap();
    assert!(corpus.files > 5, "{corpus:?}");
    let projects = dir.path().join("projects").display().to_string();
    let json = same_report(&[&projects, "--format", "json", "--hops"]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        value["totals"]["events"].as_u64(),
        Some(corpus.assistant_messages)
    );
    assert_eq!(value["ingest"]["malformed"].as_u64(), Some(0));
}
