//! `--alert-webhook`: anomalies POSTed to a receiver on loopback, retried as
//! specified (docs/insights.md § Anomalies), through the sender alone and
//! through the binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use common::receiver::Receiver;
use common::tokwatch::Tokwatch;
use common::until;
use tokwatch::live::{RetryPolicy, Webhooks};
use tokwatch::model::anomaly::{Anomaly, AnomalyKind, Level};
use tokwatch::types::money::Usd;

fn spike(subject: &str) -> Anomaly {
    Anomaly {
        kind: AnomalyKind::Spend1m,
        at_ms: 1_800_000_000_000,
        subject: Arc::from(subject),
        hop: None,
        observed: Level::PerMinute(Usd::from_picos(10_000_000_000_000)),
        expected: Level::PerMinute(Usd::from_picos(1_000_000_000_000)),
        z: 36.0,
        message: format!("spend spike: {subject}"),
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        attempts: 5,
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
    }
}

/// Sends `anomalies` through the real sender, waits until `n` requests came.
fn send(receiver: &Receiver, policy: RetryPolicy, anomalies: &[Anomaly], n: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = receiver.url().parse().unwrap();
    let webhooks = runtime.block_on(async { Webhooks::start(&[url], policy).unwrap() });
    for anomaly in anomalies {
        webhooks.sink().push(anomaly);
    }
    until(Duration::from_secs(20), || {
        let got = receiver.received().len();
        if got >= n {
            Ok(())
        } else {
            Err(format!("{got} of {n} requests"))
        }
    })
    .unwrap();
    runtime.block_on(webhooks.stop(Duration::from_secs(1)));
}

#[test]
fn a_5xx_is_retried_with_backoff_until_delivered() {
    let receiver = Receiver::start(vec![(503, None), (503, None), (200, None)]);
    send(&receiver, fast(), &[spike("1m")], 3);
    let got = receiver.received();
    assert_eq!(got.len(), 3, "two refusals, then delivered: no more");
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the same payload"
    );
    assert_eq!(got[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(got[0].body["text"], "tokwatch: spend spike: 1m");
    assert_eq!(got[0].body["tokwatch"]["kind"], "spend_1m");
    assert_eq!(got[0].body["tokwatch"]["unit"], "usd_per_minute");
    // Backoff 50 ms then 100 ms, each jittered down to half at most.
    let first = got[1].at - got[0].at;
    let second = got[2].at - got[1].at;
    assert!(first >= Duration::from_millis(25), "{first:?}");
    assert!(second >= Duration::from_millis(50), "{second:?}");
}

#[test]
fn another_4xx_is_not_retried() {
    let receiver = Receiver::start(vec![(400, None)]);
    send(&receiver, fast(), &[spike("first"), spike("second")], 2);
    let got = receiver.received();
    // The second request is the second anomaly: the first was tried once.
    assert_eq!(got[0].body["tokwatch"]["subject"], "first");
    assert_eq!(got[1].body["tokwatch"]["subject"], "second");
}

#[test]
fn a_429_waits_retry_after() {
    let receiver = Receiver::start(vec![(429, Some("1")), (200, None)]);
    send(&receiver, fast(), &[spike("1m")], 2);
    let got = receiver.received();
    let waited = got[1].at - got[0].at;
    // Not the 50 ms backoff: the server's second.
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
}

#[test]
fn attempts_are_bounded() {
    let receiver = Receiver::start(vec![(500, None)]);
    let policy = RetryPolicy {
        attempts: 3,
        ..fast()
    };
    send(&receiver, policy, &[spike("lost"), spike("next")], 6);
    let got = receiver.received();
    let subjects: Vec<&str> = got
        .iter()
        .map(|r| r.body["tokwatch"]["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["lost", "lost", "lost", "next", "next", "next"]);
}

/// An empty config file (the defaults, whatever the user's file says).
fn empty_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, "").unwrap();
    path
}

/// A native line: one call of `cost` dollars at `ts_ms`.
fn call(ts_ms: i64, run: usize, cost: &str) -> String {
    let ts = chrono::DateTime::from_timestamp_millis(ts_ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!(
        r#"{{"ts":"{ts}","run_id":"r{run}","hop":1,"agent":"bot","model":"gpt-4.1","input_tokens":1000,"output_tokens":100,"cost_usd":{cost}}}"#
    )
}

#[test]
fn the_binary_posts_a_spend_spike_and_retries_it() {
    let receiver = Receiver::start(vec![(503, None), (503, None), (200, None)]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.jsonl");
    let now = chrono::Utc::now().timestamp_millis();
    let minute = now.div_euclid(60_000) * 60_000;
    let mut file = std::fs::File::create(&log).unwrap();
    // $1 a minute for the 40 minutes before this one (a backlog the
    // detector learns from), then $10 in this minute: a spike of the
    // 1-minute rate (z 36), or of the 5-minute one (z ≈ 6) if the minute
    // ends before tokwatch looks.
    for m in 1..=40 {
        writeln!(file, "{}", call(minute - m * 60_000, m as usize, "1.0")).unwrap();
    }
    writeln!(file, "{}", call(now, 0, "10.0")).unwrap();
    drop(file);
    let url = receiver.url();
    let mut tokwatch = Tokwatch::spawn(
        &[
            "--headless",
            "--follow",
            log.to_str().unwrap(),
            "--alert-webhook",
            &url,
        ],
        &[("TOKWATCH_CONFIG", &empty_config(dir.path()))],
    );
    let got = until(Duration::from_secs(30), || {
        let got = receiver.received();
        if got.len() >= 3 {
            Ok(got)
        } else {
            Err(format!(
                "{} requests; stderr {:?}",
                got.len(),
                tokwatch.stderr()
            ))
        }
    })
    .unwrap();
    let body = &got[0].body;
    assert!(
        got.iter().all(|r| r.body == *body),
        "the same payload retried"
    );
    let kind = body["tokwatch"]["kind"].as_str().unwrap();
    assert!(["spend_1m", "spend_5m"].contains(&kind), "{body}");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("tokwatch: spend spike: $"),
        "{body}"
    );
    assert_eq!(body["tokwatch"]["expected"], 1, "{body}");
    assert!(body["tokwatch"]["z"].as_f64().unwrap() >= 4.0, "{body}");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &tokwatch.child.id().to_string()])
        .status();
    let status = tokwatch.child.wait().unwrap();
    assert!(status.success(), "{status:?}: {:?}", tokwatch.stderr());
    // Delivered on the third attempt, and nothing else was raised.
    assert_eq!(receiver.received().len(), 3);
}

#[test]
fn jsonl_lines_carry_the_anomalies() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.jsonl");
    let now = chrono::Utc::now().timestamp_millis();
    let minute = now.div_euclid(60_000) * 60_000;
    let mut lines = String::new();
    for m in 1..=40 {
        lines += &(call(minute - m * 60_000, m as usize, "1.0") + "\n");
    }
    lines += &(call(now, 0, "10.0") + "\n");
    std::fs::write(&log, lines).unwrap();
    let mut tokwatch = Tokwatch::spawn(
        &[
            "--jsonl",
            "--interval",
            "200ms",
            "--follow",
            log.to_str().unwrap(),
        ],
        &[("TOKWATCH_CONFIG", &empty_config(dir.path()))],
    );
    let snapshot =
        tokwatch.wait_for("an anomaly", Duration::from_secs(20), |s| {
            match s["insights"]["anomalies"].as_array() {
                Some(list) if !list.is_empty() => Ok(()),
                Some(_) => Err("no anomaly yet".into()),
                None => Err("no anomalies array".into()),
            }
        });
    let anomaly = &snapshot["insights"]["anomalies"][0];
    assert!(
        anomaly["kind"].as_str().unwrap().starts_with("spend_"),
        "{anomaly}"
    );
    assert_eq!(anomaly["expected"], 1, "{anomaly}");
    let last = tokwatch.stop();
    assert!(last["insights"]["anomalies"].is_array());
}

#[test]
fn a_webhook_must_be_http_and_anomalies_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.jsonl");
    std::fs::write(&log, "").unwrap();
    let run = |config: &str, url: &str| {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokwatch"))
            .args(["--jsonl", "--follow", log.to_str().unwrap()])
            .args(["--alert-webhook", url, "--exit-after", "1s"])
            .env("TOKWATCH_CONFIG", &path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = run("", "ftp://127.0.0.1/hook");
    assert!(
        !ok && stderr.contains("is not an http:// or https:// URL"),
        "{stderr}"
    );
    let (ok, stderr) = run("[anomalies]\nenabled = false\n", "http://127.0.0.1:9/hook");
    assert!(
        !ok && stderr.contains("[anomalies] enabled = false"),
        "{stderr}"
    );
}
