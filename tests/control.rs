//! The control client against a fake runtime on a Unix socket: the
//! `tokwatch budget` commands through the real binary, and the per-runtime
//! link (down, back, resync, ordering) through the library.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokwatch::control::ControlAddr;
use tokwatch::control::client::{ClientEvent, Link, Outcome, run_runtime_link};
use tokwatch::control::protocol::{Applied, Reply, Request, VersionedBudget, encode};
use tokwatch::control::store::DesiredState;
use tokwatch::model::budget::{Limits, Scope};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Normal,
    /// Never answers budget requests.
    Silent,
    /// Answers budget requests with garbage.
    Garbage,
    /// Answers budget requests with a 100 KiB line.
    Oversized,
}

/// What the fake runtime received and holds.
#[derive(Default)]
struct Fake {
    applied: BTreeMap<Scope, VersionedBudget>,
    /// (scope, version) of every set or sync entry received, in order.
    received: Vec<(Scope, u64)>,
    hellos: usize,
}

type Shared = Arc<Mutex<Fake>>;

async fn serve_client(stream: tokio::net::UnixStream, fake: Shared, mode: Mode) {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let request: Request = serde_json::from_str(&line).unwrap();
        let replies: Vec<Reply> = match request {
            Request::Hello { .. } => {
                let mut f = fake.lock().unwrap();
                f.hellos += 1;
                let applied = f
                    .applied
                    .values()
                    .map(|b| Applied {
                        scope: b.scope.clone(),
                        version: b.version,
                    })
                    .collect();
                vec![Reply::Hello {
                    protocol: 1,
                    runtime: "fake".into(),
                    runtime_id: "fake-1".into(),
                    applied,
                }]
            }
            _ if mode == Mode::Silent => continue,
            _ if mode == Mode::Garbage => {
                writer
                    .write_all(b"{\"type\":\"budget.ack\",\"oops\n")
                    .await
                    .unwrap();
                continue;
            }
            _ if mode == Mode::Oversized => {
                writer.write_all(&vec![b'x'; 100 * 1024]).await.unwrap();
                writer.write_all(b"\n").await.unwrap();
                continue;
            }
            Request::Set {
                id,
                scope,
                version,
                limits,
                idempotency_key,
            } => {
                vec![apply(
                    &fake,
                    id,
                    VersionedBudget {
                        scope,
                        version,
                        limits,
                        idempotency_key: Some(idempotency_key),
                    },
                )]
            }
            Request::Sync { id, budgets } => {
                let mut replies: Vec<Reply> = budgets
                    .into_iter()
                    .map(|b| apply(&fake, id.clone(), b))
                    .collect();
                replies.push(Reply::Synced { id });
                replies
            }
            Request::List { id } => vec![Reply::State {
                id,
                budgets: fake.lock().unwrap().applied.values().cloned().collect(),
            }],
        };
        for reply in replies {
            writer.write_all(&encode(&reply)).await.unwrap();
        }
    }
}

fn apply(fake: &Shared, id: String, budget: VersionedBudget) -> Reply {
    let mut f = fake.lock().unwrap();
    f.received.push((budget.scope.clone(), budget.version));
    let current = f.applied.get(&budget.scope).map_or(0, |b| b.version);
    if let Err(e) = budget.limits.validate() {
        return Reply::Nack {
            id,
            scope: budget.scope,
            version: budget.version,
            applied_version: current,
            reason: e.to_string(),
        };
    }
    if budget.limits.per_hop_limit == Some(13) {
        return Reply::Nack {
            id,
            scope: budget.scope,
            version: budget.version,
            applied_version: current,
            reason: "13 is unlucky".into(),
        };
    }
    if budget.version > current {
        f.applied.insert(budget.scope.clone(), budget.clone());
    }
    Reply::Ack {
        id,
        scope: budget.scope,
        version: budget.version,
    }
}

/// Starts a fake runtime on `path` inside a new tokio runtime thread.
fn start_fake(path: &Path, mode: Mode, fake: Shared) -> std::thread::JoinHandle<()> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::UnixListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(serve_client(stream, fake.clone(), mode));
            }
        });
    })
}

fn tokwatch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(args)
        .output()
        .unwrap()
}

struct Rig {
    dir: tempfile::TempDir,
    sock: PathBuf,
    fake: Shared,
}

impl Rig {
    fn new(mode: Mode) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("runtime.sock");
        let fake = Shared::default();
        start_fake(&sock, mode, fake.clone());
        Rig { dir, sock, fake }
    }

    fn budgets(&self) -> String {
        self.dir.path().join("budgets.toml").display().to_string()
    }

    fn control(&self) -> String {
        format!("unix:{}", self.sock.display())
    }

    fn budget(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["budget"];
        all.extend_from_slice(args);
        let (control, budgets) = (self.control(), self.budgets());
        all.extend_from_slice(&[
            "--control",
            &control,
            "--budgets",
            &budgets,
            "--timeout",
            "2s",
        ]);
        tokwatch(&all)
    }
}

#[test]
fn set_list_and_get_round_trip_with_versions_store_and_audit() {
    let rig = Rig::new(Mode::Normal);
    let out = rig.budget(&[
        "set",
        "--agent",
        "writer",
        "--per-hop-limit",
        "9000",
        "--run-limit",
        "60000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("agent writer: applied v1"));
    let out = rig.budget(&["set", "--agent", "writer", "--per-hop-limit", "8000"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied v2"));
    {
        let f = rig.fake.lock().unwrap();
        let writer = &f.applied[&Scope::Agent("writer".into())];
        assert_eq!(
            (
                writer.version,
                writer.limits.per_hop_limit,
                writer.limits.total_run_limit
            ),
            (2, Some(8000), None),
            "a set replaces the scope's budget"
        );
    }
    let out = rig.budget(&["list"]);
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("agent writer")
            && listed.contains("v2")
            && listed.contains("per-hop 8000 (trim)"),
        "{listed}"
    );
    let out = rig.budget(&["get", "--global"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no budget for global"));
    let store = DesiredState::load(Path::new(&rig.budgets())).unwrap();
    assert_eq!(store.version(&Scope::Agent("writer".into())), 2);
    let audit = std::fs::read_to_string(rig.dir.path().join("budgets-audit.jsonl")).unwrap();
    assert_eq!(
        audit
            .lines()
            .filter(|l| l.contains("\"event\":\"change\""))
            .count(),
        2
    );
    assert_eq!(
        audit
            .lines()
            .filter(|l| l.contains("\"result\":\"ack\""))
            .count(),
        2
    );
    assert!(audit.contains("\"before\":{\"per_hop_limit\":9000,\"total_run_limit\":60000}"));
}

#[test]
fn versions_start_above_what_the_runtime_already_applies() {
    let rig = Rig::new(Mode::Normal);
    rig.fake.lock().unwrap().applied.insert(
        Scope::Global,
        VersionedBudget {
            scope: Scope::Global,
            version: 41,
            idempotency_key: None,
            limits: Limits {
                per_hop_limit: Some(1),
                ..Limits::default()
            },
        },
    );
    let out = rig.budget(&["set", "--global", "--run-cost-limit", "0.50"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied v42"));
}

#[test]
fn a_nack_keeps_the_old_limits_and_exits_non_zero_with_the_reason() {
    let rig = Rig::new(Mode::Normal);
    assert!(
        rig.budget(&["set", "--global", "--per-hop-limit", "5000"])
            .status
            .success()
    );
    let out = rig.budget(&["set", "--global", "--per-hop-limit", "13"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rejected v2: 13 is unlucky (v1 stays in force)"),
        "{stderr}"
    );
    assert_eq!(
        rig.fake.lock().unwrap().applied[&Scope::Global]
            .limits
            .per_hop_limit,
        Some(5000)
    );
}

#[test]
fn invalid_limits_are_refused_before_anything_is_sent() {
    let rig = Rig::new(Mode::Normal);
    let out = rig.budget(&[
        "set",
        "--global",
        "--per-hop-limit",
        "9000",
        "--run-limit",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("per_hop_limit (9000) exceeds total_run_limit (100)")
    );
    let out = rig.budget(&["set", "--global"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one limit"));
    assert!(rig.fake.lock().unwrap().received.is_empty());
}

#[test]
fn unreachable_silent_and_misbehaving_runtimes_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let budgets = dir.path().join("b.toml");
    let out = tokwatch(&[
        "budget",
        "set",
        "--global",
        "--per-hop-limit",
        "9",
        "--control",
        "unix:/nonexistent/x.sock",
        "--budgets",
        budgets.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach unix:/nonexistent/x.sock") && stderr.contains("pending v1"),
        "{stderr}"
    );
    assert_eq!(
        DesiredState::load(&budgets)
            .unwrap()
            .version(&Scope::Global),
        1,
        "the change is kept for later"
    );
    for (mode, message) in [
        (Mode::Silent, "did not answer in time"),
        (Mode::Garbage, "broke the protocol"),
        (Mode::Oversized, "exceeds the 65536-byte limit"),
    ] {
        let rig = Rig::new(mode);
        let out = rig.budget(&["set", "--global", "--per-hop-limit", "9"]);
        assert_eq!(out.status.code(), Some(1), "{mode:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{mode:?}: {stderr}");
    }
}

/// Collects link events until `done` says so.
async fn events_until(
    rx: &mut mpsc::Receiver<ClientEvent>,
    what: &str,
    mut done: impl FnMut(&ClientEvent) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap();
        if done(&event) {
            return;
        }
    }
}

fn desired_with(versions: &[(Scope, u64, u64)]) -> Arc<DesiredState> {
    let mut state = DesiredState::default();
    for (scope, version, hop) in versions {
        state.budgets.insert(
            scope.clone(),
            VersionedBudget {
                scope: scope.clone(),
                version: *version,
                idempotency_key: Some(format!("k{version}")),
                limits: Limits {
                    per_hop_limit: Some(*hop),
                    ..Limits::default()
                },
            },
        );
    }
    Arc::new(state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_down_for_a_while_gets_the_latest_state_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("late.sock");
    let (desired_tx, desired_rx) = watch::channel(desired_with(&[(Scope::Global, 1, 100)]));
    let (events_tx, mut events) = mpsc::channel(64);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let link = tokio::spawn(run_runtime_link(
        ControlAddr::Unix(sock.clone()),
        None,
        Duration::from_secs(2),
        desired_rx,
        events_tx,
        stop_rx,
    ));
    events_until(&mut events, "a failed attempt", |e| {
        matches!(
            e,
            ClientEvent::Link {
                link: Link::Down { .. },
                ..
            }
        )
    })
    .await;
    // two edits while the runtime is down
    desired_tx
        .send(desired_with(&[(Scope::Global, 2, 200)]))
        .unwrap();
    desired_tx
        .send(desired_with(&[
            (Scope::Global, 3, 300),
            (Scope::Agent("w".into()), 1, 50),
        ]))
        .unwrap();
    let fake = Shared::default();
    start_fake(&sock, Mode::Normal, fake.clone());
    events_until(&mut events, "the resync", |e| {
        matches!(
            e,
            ClientEvent::Outcome {
                version: 3,
                outcome: Outcome::Ack,
                ..
            }
        )
    })
    .await;
    {
        let f = fake.lock().unwrap();
        let global: Vec<u64> = f
            .received
            .iter()
            .filter(|(s, _)| *s == Scope::Global)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(global, vec![3], "only the latest desired version, once");
        assert_eq!(f.applied[&Scope::Global].limits.per_hop_limit, Some(300));
        assert_eq!(f.applied[&Scope::Agent("w".into())].version, 1);
    }
    // two edits in quick succession while connected: applied in order, the last wins
    desired_tx
        .send(desired_with(&[
            (Scope::Global, 4, 400),
            (Scope::Agent("w".into()), 1, 50),
        ]))
        .unwrap();
    desired_tx
        .send(desired_with(&[
            (Scope::Global, 5, 500),
            (Scope::Agent("w".into()), 1, 50),
        ]))
        .unwrap();
    events_until(&mut events, "v5 applied", |e| {
        matches!(e, ClientEvent::Outcome { version: 5, .. })
    })
    .await;
    let f = fake.lock().unwrap();
    let global: Vec<u64> = f
        .received
        .iter()
        .filter(|(s, _)| *s == Scope::Global)
        .map(|(_, v)| *v)
        .collect();
    assert!(
        global.windows(2).all(|w| w[0] < w[1]),
        "never out of order: {global:?}"
    );
    assert_eq!(*global.last().unwrap(), 5);
    assert_eq!(f.applied[&Scope::Global].limits.per_hop_limit, Some(500));
    assert_eq!(
        f.received
            .iter()
            .filter(|(s, _)| *s == Scope::Agent("w".into()))
            .count(),
        1,
        "unchanged scopes are not re-sent"
    );
    drop(f);
    link.abort();
}
