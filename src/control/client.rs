//! The control client: a connection to one runtime (hello, set, sync, list
//! with timeouts and bounded replies), and the long-lived per-runtime actor
//! the dashboard uses: it keeps the runtime in sync with the desired state,
//! reconnects with backoff and jitter, and reports what the runtime applied.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::{RngExt as _, SeedableRng as _};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

use super::ControlAddr;
use super::protocol::{
    CONFLICT, Exceeded, MAX_LINE_BYTES, PROTOCOL_VERSION, Reply, Request, VersionedBudget,
    WireError, decode, try_encode,
};
use super::store::DesiredState;
use crate::model::budget::{Limits, Scope};

/// Why talking to a runtime failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("{0} did not answer in time")]
    Timeout(String),
    #[error("{addr} broke the protocol: {reason}")]
    Protocol { addr: String, reason: String },
    #[error("{addr} refused: {reason}")]
    Refused { addr: String, reason: String },
    #[error("{0} closed the connection")]
    Closed(String),
}

/// A runtime's answer to one budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The runtime enforces this version.
    Ack,
    /// The limits were refused; `applied_version` stays in force.
    Nack {
        reason: String,
        applied_version: u64,
    },
    /// Not applied: the runtime has a newer budget for the scope, set by
    /// another controller (`applied_version`, with its limits when the
    /// runtime said them). The change must be rebased on it.
    Conflict {
        reason: String,
        applied_version: u64,
        limits: Option<Limits>,
    },
}

impl Outcome {
    /// The outcome of a reply to a change of version `sent`. Only an `ack`
    /// of exactly that version applies it. An `ack` of a newer version (what
    /// a runtime that predates conflicts answers to a stale change) is a
    /// conflict: that version, not ours, is in force. An `ack` of an older
    /// one (a runtime that wrapped or mixed up versions) applied nothing
    /// we know of: a conflict too, so the state in force is asked again.
    fn of(reply: Reply, sent: u64) -> Option<Outcome> {
        match reply {
            Reply::Ack { version, .. } if version == sent => Some(Outcome::Ack),
            Reply::Ack { version, .. } if version > sent => Some(Outcome::Conflict {
                reason: format!("v{version} is in force (set by another controller)"),
                applied_version: version,
                limits: None,
            }),
            Reply::Ack { version, .. } => Some(Outcome::Conflict {
                reason: format!("the runtime acknowledged v{version}, not v{sent}"),
                applied_version: version,
                limits: None,
            }),
            Reply::Nack {
                reason,
                applied_version,
                code,
                limits,
                ..
            } => Some(if code.as_deref() == Some(CONFLICT) {
                Outcome::Conflict {
                    reason,
                    applied_version,
                    limits,
                }
            } else {
                Outcome::Nack {
                    reason,
                    applied_version,
                }
            }),
            _ => None,
        }
    }

    /// How the audit log records it: `ack`, `nack: reason`, `conflict: reason`.
    #[must_use]
    pub fn audit(&self) -> String {
        match self {
            Outcome::Ack => "ack".to_owned(),
            Outcome::Nack { reason, .. } => format!("nack: {reason}"),
            Outcome::Conflict { reason, .. } => format!("conflict: {reason}"),
        }
    }
}

trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// An open, greeted connection to one runtime.
pub struct Connection {
    addr: String,
    writer: tokio::io::WriteHalf<Box<dyn Duplex>>,
    lines: mpsc::Receiver<Result<Reply, ControlError>>,
    next_id: u64,
    pub runtime: String,
    pub runtime_id: String,
    /// Version in force per scope, as the runtime said in `hello`.
    pub applied: BTreeMap<Scope, u64>,
    /// Notifications received while waiting for replies.
    pub notifications: Vec<Exceeded>,
}

/// Reads lines (at most [`MAX_LINE_BYTES`]) and decodes them; stops at the first error.
async fn read_replies(
    addr: String,
    reader: tokio::io::ReadHalf<Box<dyn Duplex>>,
    tx: mpsc::Sender<Result<Reply, ControlError>>,
) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        // +2: room for the newline (and a CR) of a maximal line
        let mut limited = (&mut reader).take((MAX_LINE_BYTES + 2) as u64);
        let result = match limited.read_until(b'\n', &mut line).await {
            Ok(0) => Err(ControlError::Closed(addr.clone())),
            Ok(_) if !line.ends_with(b"\n") => Err(ControlError::Protocol {
                addr: addr.clone(),
                reason: WireError::TooLong(line.len()).to_string(),
            }),
            Ok(_) => {
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                decode::<Reply>(text).map_err(|e| ControlError::Protocol {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })
            }
            Err(e) => Err(ControlError::Closed(format!("{addr} ({e})"))),
        };
        let stop = result.is_err();
        if tx.send(result).await.is_err() || stop {
            return;
        }
    }
}

impl Connection {
    /// Connects and exchanges `hello`.
    ///
    /// # Errors
    /// Unreachable, timeout, a refused or malformed `hello`.
    pub async fn open(
        addr: &ControlAddr,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<Connection, ControlError> {
        let name = addr.to_string();
        let unreachable = |e: std::io::Error| ControlError::Unreachable {
            addr: name.clone(),
            reason: e.to_string(),
        };
        let connect = async {
            let stream: Box<dyn Duplex> = match addr {
                ControlAddr::Unix(path) => Box::new(
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(unreachable)?,
                ),
                ControlAddr::Tcp(host_port) => Box::new(
                    tokio::net::TcpStream::connect(host_port.as_str())
                        .await
                        .map_err(unreachable)?,
                ),
            };
            Ok::<_, ControlError>(stream)
        };
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ControlError::Timeout(name.clone()))??;
        let (reader, writer) = tokio::io::split(stream);
        let (tx, lines) = mpsc::channel(64);
        tokio::spawn(read_replies(name.clone(), reader, tx));
        let mut connection = Connection {
            addr: name,
            writer,
            lines,
            next_id: 0,
            runtime: String::new(),
            runtime_id: String::new(),
            applied: BTreeMap::new(),
            notifications: Vec::new(),
        };
        let hello = Request::Hello {
            protocol: PROTOCOL_VERSION,
            client: format!("tokwatch {}", env!("CARGO_PKG_VERSION")),
            token: token.map(str::to_owned),
        };
        connection.write(&hello).await?;
        match connection.next_reply(timeout).await? {
            Reply::Hello {
                protocol,
                runtime,
                runtime_id,
                applied,
            } => {
                if protocol != PROTOCOL_VERSION {
                    return Err(ControlError::Protocol {
                        addr: connection.addr,
                        reason: format!(
                            "speaks protocol {protocol}, tokwatch speaks {PROTOCOL_VERSION}"
                        ),
                    });
                }
                connection.runtime = runtime;
                connection.runtime_id = runtime_id;
                connection.applied = applied.into_iter().map(|a| (a.scope, a.version)).collect();
                Ok(connection)
            }
            Reply::Error { reason } => Err(ControlError::Refused {
                addr: connection.addr,
                reason,
            }),
            other => Err(ControlError::Protocol {
                addr: connection.addr,
                reason: format!("expected hello, got {other:?}"),
            }),
        }
    }

    #[must_use]
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("c{}", self.next_id)
    }

    async fn write(&mut self, request: &Request) -> Result<(), ControlError> {
        let line = try_encode(request).map_err(|e| ControlError::Protocol {
            addr: self.addr.clone(),
            reason: e.to_string(),
        })?;
        self.writer
            .write_all(&line)
            .await
            .map_err(|e| ControlError::Closed(format!("{} ({e})", self.addr)))?;
        self.writer
            .flush()
            .await
            .map_err(|e| ControlError::Closed(format!("{} ({e})", self.addr)))
    }

    /// The next reply that is not a notification (notifications are kept).
    async fn next_reply(&mut self, timeout: Duration) -> Result<Reply, ControlError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let reply = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .map_err(|_| ControlError::Timeout(self.addr.clone()))?
                .unwrap_or_else(|| Err(ControlError::Closed(self.addr.clone())))?;
            match reply {
                Reply::Exceeded(exceeded) => self.notifications.push(exceeded),
                Reply::Error { reason } => {
                    return Err(ControlError::Refused {
                        addr: self.addr.clone(),
                        reason,
                    });
                }
                other => return Ok(other),
            }
        }
    }

    /// Sends one budget (based on its `base_version`) and waits for the
    /// answer.
    ///
    /// # Errors
    /// Timeout, closed connection, a reply that does not match.
    pub async fn set(
        &mut self,
        budget: &VersionedBudget,
        timeout: Duration,
    ) -> Result<Outcome, ControlError> {
        let id = self.id();
        let request = Request::Set {
            id: id.clone(),
            // A budget adopted from a runtime may have no key: one of its
            // own (never an empty key shared by every such budget, which a
            // runtime would answer with the first one's answer), the same
            // for every retry of it.
            idempotency_key: budget
                .idempotency_key
                .clone()
                .unwrap_or_else(|| format!("unkeyed:{}:v{}", budget.scope, budget.version)),
            scope: budget.scope.clone(),
            version: budget.version,
            base_version: budget.base_version,
            limits: budget.limits.clone(),
        };
        self.write(&request).await?;
        loop {
            match self.next_reply(timeout).await? {
                reply @ (Reply::Ack { .. } | Reply::Nack { .. }) if reply_id(&reply) == id => {
                    self.check_scope(&reply, |scope| *scope == budget.scope, &budget.scope)?;
                    if let Some(outcome) = Outcome::of(reply, budget.version) {
                        return Ok(outcome);
                    }
                }
                _ => {} // a late reply to an earlier request
            }
        }
    }

    /// An answer about a scope that was not sent breaks the protocol: it
    /// says nothing about what was sent (never taken for an answer to it).
    fn check_scope(
        &self,
        reply: &Reply,
        sent: impl Fn(&Scope) -> bool,
        expected: &dyn std::fmt::Display,
    ) -> Result<(), ControlError> {
        let (verb, scope) = match reply {
            Reply::Ack { scope, .. } => ("acknowledged", scope),
            Reply::Nack { scope, .. } => ("refused", scope),
            _ => return Ok(()),
        };
        if sent(scope) {
            return Ok(());
        }
        Err(ControlError::Protocol {
            addr: self.addr.clone(),
            reason: format!("{verb} {scope} instead of {expected}"),
        })
    }

    /// Sends the full desired state; returns each scope's outcome (with the
    /// version sent).
    ///
    /// # Errors
    /// As [`Connection::set`].
    pub async fn sync(
        &mut self,
        budgets: &[VersionedBudget],
        timeout: Duration,
    ) -> Result<Vec<(Scope, u64, Outcome)>, ControlError> {
        let id = self.id();
        self.write(&Request::Sync {
            id: id.clone(),
            budgets: budgets.to_vec(),
        })
        .await?;
        let sent: BTreeMap<&Scope, u64> = budgets.iter().map(|b| (&b.scope, b.version)).collect();
        let mut outcomes = Vec::new();
        loop {
            match self.next_reply(timeout).await? {
                reply @ (Reply::Ack { .. } | Reply::Nack { .. }) if reply_id(&reply) == id => {
                    let (Reply::Ack { scope, .. } | Reply::Nack { scope, .. }) = &reply else {
                        continue;
                    };
                    let scope = scope.clone();
                    self.check_scope(&reply, |s| sent.contains_key(s), &"a scope it was sent")?;
                    let Some(&version) = sent.get(&scope) else {
                        continue; // checked above
                    };
                    if let Some(outcome) = Outcome::of(reply, version) {
                        outcomes.push((scope, version, outcome));
                    }
                }
                Reply::Synced { id: got } if got == id => return Ok(outcomes),
                _ => {}
            }
        }
    }

    /// The budgets the runtime has in force.
    ///
    /// # Errors
    /// As [`Connection::set`].
    pub async fn list(&mut self, timeout: Duration) -> Result<Vec<VersionedBudget>, ControlError> {
        let id = self.id();
        self.write(&Request::List { id: id.clone() }).await?;
        loop {
            if let Reply::State { id: got, budgets } = self.next_reply(timeout).await?
                && got == id
            {
                return Ok(budgets);
            }
        }
    }
}

fn reply_id(reply: &Reply) -> &str {
    match reply {
        Reply::Ack { id, .. }
        | Reply::Nack { id, .. }
        | Reply::Synced { id }
        | Reply::State { id, .. } => id,
        _ => "",
    }
}

/// Reconnection delays: 1 s, ×1.6 per failure, at most 30 s, ±20 % jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const CAP: Duration = Duration::from_secs(30);

    #[must_use]
    pub fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The delay before the next attempt (with jitter), and grows the base.
    pub fn delay(&mut self, rng: &mut impl rand::Rng) -> Duration {
        let base = self.next;
        self.next = base.mul_f64(1.6).min(Self::CAP);
        base.mul_f64(rng.random_range(0.8..=1.2))
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// How a runtime link is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Connected {
        runtime: String,
        runtime_id: String,
    },
    /// Down; the next attempt is in `retry_in` (at the time of the report).
    Down {
        error: String,
        retry_in: Duration,
    },
}

/// What the per-runtime actor reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    Link {
        addr: String,
        link: Link,
    },
    /// A budget's outcome at a runtime.
    Outcome {
        addr: String,
        scope: Scope,
        version: u64,
        outcome: Outcome,
    },
    /// What the runtime has in force (`budget.list`): after `hello`, after
    /// a sync or a conflict, and every refresh interval while connected.
    State {
        addr: String,
        budgets: Vec<VersionedBudget>,
    },
    Exceeded {
        addr: String,
        exceeded: Exceeded,
    },
}

/// How often a connected link asks the runtime what it has in force, so
/// changes made by another controller show up.
pub const REFRESH: Duration = Duration::from_secs(5);

/// Keeps one runtime in sync with `desired` until `shutdown` turns true,
/// asking it what it has in force every `refresh`.
/// Events are sent on a bounded channel; the actor waits when it is full.
pub async fn run_runtime_link(
    addr: ControlAddr,
    token: Option<String>,
    (timeout, refresh): (Duration, Duration),
    mut desired: watch::Receiver<Arc<DesiredState>>,
    events: mpsc::Sender<ClientEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = addr.to_string();
    let mut backoff = Backoff::new();
    // Send-able (the link runs on any worker); seeded per link so fleets disperse.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(rand::rng().random());
    let emit = |event: ClientEvent| {
        let events = events.clone();
        async move {
            let _ = events.send(event).await;
        }
    };
    loop {
        emit(ClientEvent::Link {
            addr: name.clone(),
            link: Link::Connecting,
        })
        .await;
        let error = match Connection::open(&addr, token.as_deref(), timeout).await {
            Ok(mut connection) => {
                backoff.reset();
                emit(ClientEvent::Link {
                    addr: name.clone(),
                    link: Link::Connected {
                        runtime: connection.runtime.clone(),
                        runtime_id: connection.runtime_id.clone(),
                    },
                })
                .await;
                let session = Session {
                    events: &events,
                    timeout,
                    refresh,
                };
                match session
                    .serve(&mut connection, &mut desired, &mut shutdown)
                    .await
                {
                    Ok(()) => return, // shutdown
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        let delay = backoff.delay(&mut rng);
        emit(ClientEvent::Link {
            addr: name.clone(),
            link: Link::Down {
                error: error.to_string(),
                retry_in: delay,
            },
        })
        .await;
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// One connected session of a link.
struct Session<'a> {
    events: &'a mpsc::Sender<ClientEvent>,
    timeout: Duration,
    refresh: Duration,
}

impl Session<'_> {
    async fn emit(&self, event: ClientEvent) {
        let _ = self.events.send(event).await;
    }

    /// Asks the runtime what it has in force and reports it.
    async fn list(&self, connection: &mut Connection) -> Result<(), ControlError> {
        let budgets = connection.list(self.timeout).await?;
        let addr = connection.addr().to_owned();
        self.emit(ClientEvent::State { addr, budgets }).await;
        Ok(())
    }

    /// What the runtime has in force, then a full sync (each entry based on
    /// the version it was made on: a runtime where another controller set
    /// a newer one refuses it, and that state wins), then every new change;
    /// the runtime's state is asked again after a refusal and every refresh.
    async fn serve(
        &self,
        connection: &mut Connection,
        desired: &mut watch::Receiver<Arc<DesiredState>>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ControlError> {
        let addr = connection.addr().to_owned();
        self.list(connection).await?;
        // The change (idempotency key) sent per scope in this session.
        let mut sent: BTreeMap<Scope, Option<String>> = BTreeMap::new();
        let state = desired.borrow_and_update().clone();
        let budgets: Vec<VersionedBudget> = state.budgets.values().cloned().collect();
        if !budgets.is_empty() {
            for (scope, version, outcome) in connection.sync(&budgets, self.timeout).await? {
                self.emit(ClientEvent::Outcome {
                    addr: addr.clone(),
                    scope,
                    version,
                    outcome,
                })
                .await;
            }
            self.list(connection).await?;
        }
        for budget in &budgets {
            sent.insert(budget.scope.clone(), budget.idempotency_key.clone());
        }
        let mut refresh =
            tokio::time::interval_at(tokio::time::Instant::now() + self.refresh, self.refresh);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            for exceeded in connection.notifications.drain(..) {
                self.emit(ClientEvent::Exceeded {
                    addr: addr.clone(),
                    exceeded,
                })
                .await;
            }
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                changed = desired.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let state = desired.borrow_and_update().clone();
                    // New changes only, in scope order.
                    let mut refused = false;
                    for budget in state.budgets.values() {
                        if sent.get(&budget.scope) == Some(&budget.idempotency_key) {
                            continue;
                        }
                        let outcome = connection.set(budget, self.timeout).await?;
                        sent.insert(budget.scope.clone(), budget.idempotency_key.clone());
                        refused |= !matches!(outcome, Outcome::Ack);
                        self.emit(ClientEvent::Outcome { addr: addr.clone(), scope: budget.scope.clone(), version: budget.version, outcome }).await;
                    }
                    if refused {
                        self.list(connection).await?;
                    }
                }
                _ = refresh.tick() => self.list(connection).await?,
                line = connection.lines.recv() => match line {
                    Some(Ok(Reply::Exceeded(exceeded))) => {
                        self.emit(ClientEvent::Exceeded { addr: addr.clone(), exceeded }).await;
                    }
                    Some(Ok(_)) => {} // a late reply
                    Some(Err(e)) => return Err(e),
                    None => return Err(ControlError::Closed(addr.clone())),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_of_another_version_is_a_conflict_not_an_application() {
        let ack = |version| Reply::Ack {
            id: "c1".into(),
            scope: Scope::Global,
            version,
        };
        assert_eq!(Outcome::of(ack(4), 4), Some(Outcome::Ack));
        // What a runtime that predates conflicts answers to a stale change.
        assert_eq!(
            Outcome::of(ack(7), 4),
            Some(Outcome::Conflict {
                reason: "v7 is in force (set by another controller)".into(),
                applied_version: 7,
                limits: None,
            })
        );
        let nack = |code: Option<&str>| Reply::Nack {
            id: "c1".into(),
            scope: Scope::Global,
            version: 4,
            applied_version: 3,
            reason: "r".into(),
            code: code.map(str::to_owned),
            limits: None,
        };
        assert!(matches!(
            Outcome::of(nack(Some(CONFLICT)), 4),
            Some(Outcome::Conflict {
                applied_version: 3,
                ..
            })
        ));
        // An unknown code is a plain refusal.
        assert!(matches!(
            Outcome::of(nack(Some("quota")), 4),
            Some(Outcome::Nack {
                applied_version: 3,
                ..
            })
        ));
        // An ack of an older version, or of one that wrapped: not applied.
        assert_eq!(
            Outcome::of(ack(3), 4),
            Some(Outcome::Conflict {
                reason: "the runtime acknowledged v3, not v4".into(),
                applied_version: 3,
                limits: None,
            })
        );
        assert!(matches!(
            Outcome::of(ack(0), u64::MAX),
            Some(Outcome::Conflict {
                applied_version: 0,
                ..
            })
        ));
        assert_eq!(Outcome::of(Reply::Synced { id: "c1".into() }, 4), None);
    }

    #[test]
    fn backoff_grows_by_1_6_with_jitter_and_caps_at_30s() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..12).map(|_| backoff.delay(&mut rng)).collect();
        let bases = [
            1.0, 1.6, 2.56, 4.096, 6.5536, 10.48576, 16.777216, 26.8435456, 30.0, 30.0, 30.0, 30.0,
        ];
        for (delay, base) in delays.iter().zip(bases) {
            let ratio = delay.as_secs_f64() / base;
            assert!((0.8..=1.2).contains(&ratio), "{delay:?} vs base {base}");
        }
        backoff.reset();
        assert!(backoff.delay(&mut rng) <= Duration::from_millis(1200));
    }
}
