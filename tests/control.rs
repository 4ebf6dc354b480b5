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
use tokwatch::control::protocol::{Applied, CONFLICT, Reply, Request, VersionedBudget, encode};
use tokwatch::control::store::DesiredState;
use tokwatch::model::budget::{Limits, Scope};
use tokwatch::ui::budgets::{BudgetBoard, ScopeState};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Normal,
    /// Never answers budget requests.
    Silent,
    /// Answers budget requests with garbage.
    Garbage,
    /// Answers budget requests with a 100 KiB line.
    Oversized,
    /// Another controller sets global per-hop 1 (5 versions up) right after
    /// each hello: a change based on that hello is stale when it arrives.
    Racy,
    /// Acknowledges every change as the version before it (wrapping).
    AckPrevious,
    /// Acknowledges every change for another scope.
    AckOtherScope,
}

/// The scope `Mode::AckOtherScope` acknowledges.
fn someone_else() -> Scope {
    Scope::Agent("someone-else".into())
}

/// What the fake runtime received and holds.
#[derive(Default)]
struct Fake {
    applied: BTreeMap<Scope, VersionedBudget>,
    /// (scope, version) of every set or sync entry received, in order.
    received: Vec<(Scope, u64)>,
    /// The idempotency key of every `budget.set` received, in order.
    set_keys: Vec<String>,
    hellos: usize,
    /// Bumped by a restart: connections of an older epoch are dropped.
    epoch: u64,
}

type Shared = Arc<Mutex<Fake>>;

async fn serve_client(stream: tokio::net::UnixStream, fake: Shared, mode: Mode) {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let epoch = fake.lock().unwrap().epoch;
    while let Ok(Some(line)) = lines.next_line().await {
        if fake.lock().unwrap().epoch != epoch {
            return; // restarted: this connection is gone
        }
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
                let hello = Reply::Hello {
                    protocol: 1,
                    runtime: "fake".into(),
                    runtime_id: "fake-1".into(),
                    applied,
                };
                if mode == Mode::Racy {
                    let version = f.applied.get(&Scope::Global).map_or(0, |b| b.version) + 5;
                    f.applied.insert(Scope::Global, elsewhere(version, 1));
                }
                vec![hello]
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
                id, scope, version, ..
            } if mode == Mode::AckPrevious || mode == Mode::AckOtherScope => {
                fake.lock().unwrap().received.push((scope.clone(), version));
                vec![if mode == Mode::AckPrevious {
                    Reply::Ack {
                        id,
                        scope,
                        version: version.wrapping_sub(1),
                    }
                } else {
                    Reply::Ack {
                        id,
                        scope: someone_else(),
                        version,
                    }
                }]
            }
            Request::Sync { id, budgets }
                if mode == Mode::AckPrevious || mode == Mode::AckOtherScope =>
            {
                let mut f = fake.lock().unwrap();
                let mut replies: Vec<Reply> = budgets
                    .into_iter()
                    .map(|b| {
                        f.received.push((b.scope.clone(), b.version));
                        let (scope, version) = if mode == Mode::AckPrevious {
                            (b.scope, b.version.wrapping_sub(1))
                        } else {
                            (someone_else(), b.version)
                        };
                        Reply::Ack {
                            id: id.clone(),
                            scope,
                            version,
                        }
                    })
                    .collect();
                replies.push(Reply::Synced { id });
                replies
            }
            Request::Set {
                id,
                scope,
                version,
                base_version,
                limits,
                idempotency_key,
            } => {
                fake.lock().unwrap().set_keys.push(idempotency_key.clone());
                vec![apply(
                    &fake,
                    id,
                    VersionedBudget {
                        scope,
                        version,
                        base_version,
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

/// A budget another controller set: global per-hop `hop` at `version`.
fn elsewhere(version: u64, hop: u64) -> VersionedBudget {
    VersionedBudget {
        scope: Scope::Global,
        version,
        base_version: None,
        idempotency_key: Some(format!("elsewhere-{version}")),
        limits: Limits {
            per_hop_limit: Some(hop),
            ..Limits::default()
        },
    }
}

/// The runtime's rules (docs/control-protocol.md): the change in force
/// again is acknowledged; a stale version, or a change based on an older
/// version than in force, is a conflict carrying what is in force; invalid
/// limits (and per-hop 13) are refused; otherwise applied.
fn apply(fake: &Shared, id: String, budget: VersionedBudget) -> Reply {
    let mut f = fake.lock().unwrap();
    f.received.push((budget.scope.clone(), budget.version));
    let in_force = f.applied.get(&budget.scope).cloned();
    let current = in_force.as_ref().map_or(0, |b| b.version);
    if in_force
        .as_ref()
        .is_some_and(|b| b.version == budget.version && b.idempotency_key == budget.idempotency_key)
    {
        return Reply::Ack {
            id,
            scope: budget.scope,
            version: budget.version,
        };
    }
    if budget.version <= current || budget.base_version.is_some_and(|b| b < current) {
        return Reply::Nack {
            id,
            scope: budget.scope,
            version: budget.version,
            applied_version: current,
            reason: format!("v{current} is in force (set by another controller)"),
            code: Some(CONFLICT.into()),
            limits: in_force.map(|b| b.limits),
        };
    }
    let refuse = |reason: String| Reply::Nack {
        id: id.clone(),
        scope: budget.scope.clone(),
        version: budget.version,
        applied_version: current,
        reason,
        code: None,
        limits: None,
    };
    if let Err(e) = budget.limits.validate() {
        return refuse(e.to_string());
    }
    if budget.limits.per_hop_limit == Some(13) {
        return refuse("13 is unlucky".into());
    }
    f.applied.insert(budget.scope.clone(), budget.clone());
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
            base_version: None,
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
                base_version: None,
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
        (Duration::from_secs(2), Duration::from_secs(5)),
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

#[test]
fn a_change_based_on_a_stale_hello_is_refused_not_acknowledged() {
    // Another controller sets global v5 between our hello and our set.
    let rig = Rig::new(Mode::Racy);
    let out = rig.budget(&["set", "--global", "--per-hop-limit", "9000"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("global: refused v1: v5 is in force (set by another controller); v5 stays in force (per-hop 1 (trim))"),
        "{stderr}"
    );
    assert_eq!(
        rig.fake.lock().unwrap().applied[&Scope::Global]
            .limits
            .per_hop_limit,
        Some(1),
        "the runtime keeps the newer budget"
    );
    let audit = std::fs::read_to_string(rig.dir.path().join("budgets-audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"result\":\"conflict: v5 is in force"),
        "{audit}"
    );
}

/// A desired state of one global change: `version` based on `base`.
fn desired_based(version: u64, base: u64, hop: u64) -> Arc<DesiredState> {
    let mut state = DesiredState::default();
    state.budgets.insert(
        Scope::Global,
        VersionedBudget {
            scope: Scope::Global,
            version,
            base_version: Some(base),
            idempotency_key: Some(format!("ours-{version}")),
            limits: Limits {
                per_hop_limit: Some(hop),
                ..Limits::default()
            },
        },
    );
    Arc::new(state)
}

/// A link to a fake runtime that refreshes every 200 ms, its events folded
/// into a board as the dashboard does.
struct Linked {
    desired: watch::Sender<Arc<DesiredState>>,
    events: mpsc::Receiver<ClientEvent>,
    board: BudgetBoard,
    addr: String,
    _stop: watch::Sender<bool>,
    link: tokio::task::JoinHandle<()>,
}

impl Linked {
    fn start(sock: &Path, desired: Arc<DesiredState>) -> Linked {
        let (desired_tx, desired_rx) = watch::channel(desired.clone());
        let (events_tx, events) = mpsc::channel(64);
        let (stop, stop_rx) = watch::channel(false);
        let link = tokio::spawn(run_runtime_link(
            ControlAddr::Unix(sock.to_path_buf()),
            None,
            (Duration::from_secs(2), Duration::from_millis(200)),
            desired_rx,
            events_tx,
            stop_rx,
        ));
        Linked {
            desired: desired_tx,
            events,
            board: BudgetBoard {
                desired: (*desired).clone(),
                ..BudgetBoard::default()
            },
            addr: format!("unix:{}", sock.display()),
            _stop: stop,
            link,
        }
    }

    /// Folds events into the board until `done` holds for one of them.
    async fn until(&mut self, what: &str, mut done: impl FnMut(&ClientEvent) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .unwrap();
            let stop = done(&event);
            self.board.apply(event);
            // As the app does: a refused change replaced by what the
            // runtime has in force is what the links push from now on.
            if !std::mem::take(&mut self.board.adoptions).is_empty() {
                self.desired
                    .send(Arc::new(self.board.desired.clone()))
                    .unwrap();
            }
            if stop {
                return;
            }
        }
    }

    fn want(&mut self, desired: Arc<DesiredState>) {
        self.board.desired = (*desired).clone();
        self.desired.send(desired).unwrap();
    }

    fn state(&self) -> ScopeState {
        self.board.state(&self.addr, &Scope::Global)
    }
}

fn global_in_force(event: &ClientEvent, version: u64) -> bool {
    matches!(event, ClientEvent::State { budgets, .. }
        if budgets.iter().any(|b| b.scope == Scope::Global && b.version == version))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_shows_what_another_controller_set_and_refuses_to_overwrite_it_blindly() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("two.sock");
    let fake = Shared::default();
    // Controller A set global per-hop 9000 (v1) before the dashboard opened.
    fake.lock()
        .unwrap()
        .applied
        .insert(Scope::Global, elsewhere(1, 9000));
    start_fake(&sock, Mode::Normal, fake.clone());
    let mut dashboard = Linked::start(&sock, Arc::new(DesiredState::default()));
    dashboard
        .until("what the runtime has in force", |e| global_in_force(e, 1))
        .await;
    assert_eq!(dashboard.state(), ScopeState::Elsewhere(1));
    let start = dashboard.board.editor_start(&Scope::Global);
    assert_eq!(
        (start.before.unwrap().per_hop_limit, start.base_version),
        (Some(9000), 1),
        "the editor starts from what is in force"
    );

    // A change numbered from this dashboard's own store (v1, based on
    // nothing) is stale at the runtime: refused, not acknowledged.
    dashboard.want(desired_based(1, 0, 20_000));
    dashboard
        .until("the conflict", |e| {
            matches!(e, ClientEvent::Outcome { outcome: Outcome::Conflict { applied_version: 1, limits: Some(l), .. }, .. }
                if l.per_hop_limit == Some(9000))
        })
        .await;
    assert_eq!(
        dashboard.state(),
        ScopeState::Conflict {
            version: 1,
            in_force: 1
        }
    );
    assert_eq!(
        fake.lock().unwrap().applied[&Scope::Global]
            .limits
            .per_hop_limit,
        Some(9000)
    );

    // Rebased on v1: applied, and shown applied only once confirmed.
    dashboard.want(desired_based(2, 1, 20_000));
    dashboard
        .until("the ack", |e| {
            matches!(
                e,
                ClientEvent::Outcome {
                    version: 2,
                    outcome: Outcome::Ack,
                    ..
                }
            )
        })
        .await;
    assert_eq!(dashboard.state(), ScopeState::Applied(2));
    assert_eq!(
        fake.lock().unwrap().applied[&Scope::Global]
            .limits
            .per_hop_limit,
        Some(20_000)
    );

    // A sets v3 while the dashboard is connected: the refresh shows it wins.
    fake.lock()
        .unwrap()
        .applied
        .insert(Scope::Global, elsewhere(3, 7000));
    dashboard
        .until("the refresh", |e| global_in_force(e, 3))
        .await;
    assert_eq!(dashboard.state(), ScopeState::Elsewhere(3));
    assert_eq!(
        dashboard
            .board
            .current(&Scope::Global)
            .unwrap()
            .0
            .limits
            .per_hop_limit,
        Some(7000)
    );
    dashboard.link.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reconnect_a_newer_state_set_elsewhere_wins_and_a_lost_one_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    // The dashboard's store: v2 based on v1. Meanwhile A set v3.
    let sock = dir.path().join("sync.sock");
    let fake = Shared::default();
    fake.lock()
        .unwrap()
        .applied
        .insert(Scope::Global, elsewhere(3, 7000));
    start_fake(&sock, Mode::Normal, fake.clone());
    let mut dashboard = Linked::start(&sock, desired_based(2, 1, 20_000));
    dashboard
        .until("the sync's answer", |e| {
            matches!(
                e,
                ClientEvent::Outcome {
                    outcome: Outcome::Conflict { .. },
                    ..
                }
            )
        })
        .await;
    dashboard
        .until("the state after the sync", |e| global_in_force(e, 3))
        .await;
    assert_eq!(
        dashboard.state(),
        ScopeState::Conflict {
            version: 2,
            in_force: 3
        }
    );
    assert_eq!(
        fake.lock().unwrap().applied[&Scope::Global]
            .limits
            .per_hop_limit,
        Some(7000),
        "the newer state set elsewhere wins"
    );
    dashboard.link.abort();

    // A runtime that lost its budgets (restarted) gets ours back.
    let sock = dir.path().join("fresh.sock");
    let fresh = Shared::default();
    start_fake(&sock, Mode::Normal, fresh.clone());
    let mut dashboard = Linked::start(&sock, desired_based(2, 1, 20_000));
    dashboard
        .until("the restore", |e| {
            matches!(
                e,
                ClientEvent::Outcome {
                    outcome: Outcome::Ack,
                    ..
                }
            )
        })
        .await;
    dashboard
        .until("the state after the sync", |e| global_in_force(e, 2))
        .await;
    assert_eq!(dashboard.state(), ScopeState::Applied(2));
    dashboard.link.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_change_is_never_pushed_again_after_the_runtime_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("restart.sock");
    let fake = Shared::default();
    // Another controller set global per-hop 4000 (v100).
    fake.lock()
        .unwrap()
        .applied
        .insert(Scope::Global, elsewhere(100, 4000));
    start_fake(&sock, Mode::Normal, fake.clone());
    let mut dashboard = Linked::start(&sock, Arc::new(DesiredState::default()));
    dashboard
        .until("what the runtime has in force", |e| global_in_force(e, 100))
        .await;
    // The user's edit was based on v99 (the editor opened before v100):
    // numbered above v100, refused as a conflict.
    let mut state = dashboard.board.desired.clone();
    let refused = state.set_above(
        Scope::Global,
        Limits {
            per_hop_limit: Some(25_000),
            ..Limits::default()
        },
        99,
        dashboard.board.seen(&Scope::Global),
    );
    assert_eq!(refused.version, 101);
    dashboard.want(Arc::new(state));
    dashboard
        .until("the conflict", |e| {
            matches!(
                e,
                ClientEvent::Outcome {
                    version: 101,
                    outcome: Outcome::Conflict { .. },
                    ..
                }
            )
        })
        .await;
    // Theirs is adopted; pushing it to the runtime that has it is a no-op ack.
    dashboard
        .until("the adopted budget acknowledged", |e| {
            matches!(
                e,
                ClientEvent::Outcome {
                    version: 100,
                    outcome: Outcome::Ack,
                    ..
                }
            )
        })
        .await;
    let refusal = ScopeState::Conflict {
        version: 101,
        in_force: 100,
    };
    assert_eq!(dashboard.state(), refusal);
    assert_eq!(dashboard.board.desired.adopted.len(), 1);

    // The runtime restarts without its budgets; the link reconnects and syncs.
    {
        let mut f = fake.lock().unwrap();
        f.applied.clear();
        f.epoch += 1;
    }
    let hellos = fake.lock().unwrap().hellos;
    dashboard
        .until("the sync after the restart", |e| {
            matches!(
                e,
                ClientEvent::Outcome {
                    outcome: Outcome::Ack,
                    ..
                }
            )
        })
        .await;
    assert!(fake.lock().unwrap().hellos > hellos, "reconnected");
    dashboard
        .until("the state after the sync", |e| global_in_force(e, 100))
        .await;
    let f = fake.lock().unwrap();
    assert_eq!(
        f.applied[&Scope::Global].limits.per_hop_limit,
        Some(4000),
        "their budget restored, not the refused one"
    );
    assert_eq!(
        f.received
            .iter()
            .filter(|(_, version)| *version == 101)
            .count(),
        1,
        "the refused change was sent once, never again: {:?}",
        f.received
    );
    drop(f);
    assert_eq!(dashboard.state(), refusal);
    dashboard.link.abort();
}

#[test]
fn an_ack_of_another_version_or_scope_is_never_reported_as_applied() {
    for (mode, message) in [
        (
            Mode::AckPrevious,
            "global: refused v1: the runtime acknowledged v0, not v1; v0 stays in force",
        ),
        (
            Mode::AckOtherScope,
            "acknowledged agent someone-else instead of global",
        ),
    ] {
        let rig = Rig::new(mode);
        let out = rig.budget(&["set", "--global", "--per-hop-limit", "9000"]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(1), "{mode:?}: {stdout}{stderr}");
        assert!(!stdout.contains("applied v1"), "{mode:?}: {stdout}");
        assert!(stderr.contains(message), "{mode:?}: {stderr}");
        let audit = std::fs::read_to_string(rig.dir.path().join("budgets-audit.jsonl")).unwrap();
        assert!(
            !audit.contains("\"result\":\"ack\""),
            "{mode:?}: the audit log never records a mismatched ack as one: {audit}"
        );
    }
}

#[test]
fn a_version_that_would_overflow_is_refused_before_anything_is_sent() {
    let rig = Rig::new(Mode::Normal);
    rig.fake
        .lock()
        .unwrap()
        .applied
        .insert(Scope::Global, elsewhere(u64::MAX, 1));
    let out = rig.budget(&["set", "--global", "--per-hop-limit", "9000"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("global is at v18446744073709551615: no version above it"),
        "{stderr}"
    );
    let f = rig.fake.lock().unwrap();
    assert!(f.received.is_empty(), "nothing sent: {:?}", f.received);
    assert_eq!(f.applied[&Scope::Global].version, u64::MAX);
    assert!(
        !rig.dir.path().join("budgets.toml").exists(),
        "nothing saved either"
    );
}

#[test]
fn empty_scope_names_are_refused() {
    let rig = Rig::new(Mode::Normal);
    for args in [
        &["set", "--agent", "", "--per-hop-limit", "9"][..],
        &["set", "--segment", "  ", "--per-hop-limit", "9"],
        &["get", "--agent", "\t"],
    ] {
        let out = rig.budget(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("a scope name cannot be empty or blank"),
            "{args:?}: {stderr}"
        );
    }
    assert!(rig.fake.lock().unwrap().received.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_never_takes_an_ack_for_another_scope_as_applied() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("other.sock");
    let fake = Shared::default();
    start_fake(&sock, Mode::AckOtherScope, fake.clone());
    let (desired_tx, desired_rx) = watch::channel(Arc::new(DesiredState::default()));
    let (events_tx, mut events) = mpsc::channel(64);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let link = tokio::spawn(run_runtime_link(
        ControlAddr::Unix(sock.clone()),
        None,
        (Duration::from_secs(2), Duration::from_secs(5)),
        desired_rx,
        events_tx,
        stop_rx,
    ));
    events_until(&mut events, "what the runtime has", |e| {
        matches!(e, ClientEvent::State { .. })
    })
    .await;
    desired_tx
        .send(desired_with(&[(Scope::Global, 1, 100)]))
        .unwrap();
    events_until(&mut events, "the link to refuse the reply", |e| {
        if let ClientEvent::Outcome { outcome, .. } = e {
            assert_ne!(*outcome, Outcome::Ack, "{e:?}");
        }
        matches!(e, ClientEvent::Link { link: Link::Down { error, .. }, .. }
            // "instead of global" (a change) or "of a scope it was sent" (a sync)
            if error.contains("acknowledged agent someone-else instead of"))
    })
    .await;
    link.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_without_a_key_never_share_one_on_the_wire() {
    // Adopted budgets carry the key the runtime listed, possibly none. Sent
    // with one empty key, a runtime that remembers keys would answer a
    // second such budget (another scope) with the first one's answer.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("keys.sock");
    let fake = Shared::default();
    start_fake(&sock, Mode::Normal, fake.clone());
    let initial = desired_with(&[(Scope::Global, 1, 100)]);
    let (desired_tx, desired_rx) = watch::channel(initial.clone());
    let (events_tx, mut events) = mpsc::channel(64);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let link = tokio::spawn(run_runtime_link(
        ControlAddr::Unix(sock.clone()),
        None,
        (Duration::from_secs(2), Duration::from_secs(5)),
        desired_rx,
        events_tx,
        stop_rx,
    ));
    // The sync of the initial state, then the state listed after it.
    events_until(&mut events, "the sync", |e| {
        matches!(
            e,
            ClientEvent::Outcome {
                outcome: Outcome::Ack,
                ..
            }
        )
    })
    .await;
    events_until(&mut events, "the state after the sync", |e| {
        matches!(e, ClientEvent::State { .. })
    })
    .await;
    let mut state = (*initial).clone();
    for scope in [Scope::Agent("w".into()), Scope::Segment("s".into())] {
        state.budgets.insert(
            scope.clone(),
            VersionedBudget {
                scope,
                version: 1,
                base_version: Some(0),
                idempotency_key: None,
                limits: Limits {
                    per_hop_limit: Some(10),
                    ..Limits::default()
                },
            },
        );
    }
    desired_tx.send(Arc::new(state)).unwrap();
    let mut acked = 0;
    events_until(&mut events, "both changes applied", |e| {
        if matches!(
            e,
            ClientEvent::Outcome {
                outcome: Outcome::Ack,
                ..
            }
        ) {
            acked += 1;
        }
        acked == 2
    })
    .await;
    let keys = fake.lock().unwrap().set_keys.clone();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter().all(|k| !k.is_empty()) && keys[0] != keys[1],
        "{keys:?}"
    );
    link.abort();
}
