//! The control protocol's server side (`docs/control-protocol.md`): one task
//! per client reads requests, a writer task per client sends replies and
//! `budget.exceeded` notifications. A line that is too long or not a
//! protocol message gets an `error` reply and the connection is closed.

use std::collections::BTreeMap;
use std::io;
use std::net::ToSocketAddrs as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::io::{AsyncWriteExt as _, BufReader};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use super::budgets::BudgetTable;
use crate::control::ControlAddr;
use crate::control::protocol::{self, Exceeded, MAX_LINE_BYTES, PROTOCOL_VERSION, Reply, Request};
use crate::ingest::sources::socket::{Inner, Stream};
use crate::model::budget::{Limits, Scope};

/// Limits in force per scope, as the simulation reads them.
pub type LimitsMap = Arc<BTreeMap<Scope, Limits>>;

/// Notifications buffered per client before a slow one misses some (they are
/// for display; the telemetry has every breach).
const NOTIFICATION_BUFFER: usize = 1024;

/// State shared by the server and the simulated runs.
pub struct Control {
    table: Mutex<BudgetTable>,
    limits: watch::Sender<LimitsMap>,
    exceeded: broadcast::Sender<Exceeded>,
    runtime_id: String,
}

impl Default for Control {
    fn default() -> Self {
        Self::new()
    }
}

impl Control {
    #[must_use]
    pub fn new() -> Self {
        static STARTS: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // Unique per process start (and per runtime within a process).
        let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
        let runtime_id = format!(
            "demo-{mixed:016x}-{}",
            STARTS.fetch_add(1, Ordering::Relaxed)
        );
        Control {
            table: Mutex::new(BudgetTable::default()),
            limits: watch::Sender::new(Arc::new(BTreeMap::new())),
            exceeded: broadcast::Sender::new(NOTIFICATION_BUFFER),
            runtime_id,
        }
    }

    #[must_use]
    pub fn runtime_id(&self) -> &str {
        &self.runtime_id
    }

    /// The limits in force; `changed()` wakes when a budget is applied.
    #[must_use]
    pub fn limits(&self) -> watch::Receiver<LimitsMap> {
        self.limits.subscribe()
    }

    /// Sends a breach to every client that said hello.
    pub fn notify(&self, exceeded: Exceeded) {
        // No client connected is not an error.
        let _ = self.exceeded.send(exceeded);
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BudgetTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(
        &self,
        id: &str,
        scope: Scope,
        version: u64,
        base: Option<u64>,
        key: Option<&str>,
        limits: Limits,
    ) -> Reply {
        let mut table = self.table();
        let (outcome, changed) = table.set(scope, version, base, key, limits);
        if changed {
            // Published under the lock: readers never see versions out of order.
            self.limits.send_replace(Arc::new(table.limits()));
        }
        drop(table);
        let reply = outcome.reply(id);
        if let Reply::Nack { scope, reason, .. } = &reply {
            tracing::info!(%scope, version, reason, "budget refused");
        } else if changed {
            tracing::info!(version, "budget applied");
        }
        reply
    }

    fn hello(&self) -> Reply {
        Reply::Hello {
            protocol: PROTOCOL_VERSION,
            runtime: format!("tokwatch-demo {}", env!("CARGO_PKG_VERSION")),
            runtime_id: self.runtime_id.clone(),
            applied: self.table().applied(),
        }
    }

    /// Answers one request; `Err` is the `error` reply after which the
    /// connection closes.
    fn handle(&self, request: Request, greeted: &mut bool) -> Result<Vec<Reply>, String> {
        match request {
            Request::Hello { protocol, .. } => {
                if protocol != PROTOCOL_VERSION {
                    return Err(format!("unsupported protocol {protocol}"));
                }
                *greeted = true;
                Ok(vec![self.hello()])
            }
            _ if !*greeted => Err("the first message must be hello".to_owned()),
            Request::Set {
                id,
                idempotency_key,
                scope,
                version,
                base_version,
                limits,
            } => Ok(vec![self.set(
                &id,
                scope,
                version,
                base_version,
                Some(&idempotency_key),
                limits,
            )]),
            Request::Sync { id, budgets } => {
                let mut replies: Vec<Reply> = budgets
                    .into_iter()
                    .map(|b| {
                        self.set(
                            &id,
                            b.scope,
                            b.version,
                            b.base_version,
                            b.idempotency_key.as_deref(),
                            b.limits,
                        )
                    })
                    .collect();
                replies.push(Reply::Synced { id });
                Ok(replies)
            }
            Request::List { id } => Ok(vec![Reply::State {
                id,
                budgets: self.table().state(),
            }]),
        }
    }
}

/// A bound control listener.
pub struct ControlListener {
    inner: Inner,
    name: String,
}

impl ControlListener {
    /// Binds `addr`: a Unix socket with mode 0600 (a stale socket is
    /// replaced only if nothing answers), or TCP on loopback only. Must be
    /// called inside a tokio runtime.
    ///
    /// # Errors
    /// The address is in use, not loopback, or cannot be bound.
    pub fn bind(addr: &ControlAddr) -> anyhow::Result<ControlListener> {
        match addr {
            ControlAddr::Unix(path) => {
                let (listener, ino) = crate::ingest::sources::socket::bind_private_unix(path)?;
                Ok(ControlListener {
                    inner: Inner::Unix {
                        listener,
                        path: path.clone(),
                        ino,
                    },
                    name: format!("unix:{}", path.display()),
                })
            }
            ControlAddr::Tcp(host_port) => {
                let addrs: Vec<_> = host_port
                    .to_socket_addrs()
                    .with_context(|| format!("cannot resolve tcp:{host_port}"))?
                    .collect();
                anyhow::ensure!(
                    !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()),
                    "tcp:{host_port} is not a loopback address: the control protocol has no \
                     authentication here, so it only listens on 127.0.0.1 or ::1"
                );
                let listener = std::net::TcpListener::bind(addrs[0])
                    .with_context(|| format!("cannot listen on tcp:{host_port}"))?;
                listener.set_nonblocking(true)?;
                let local = listener.local_addr()?;
                Ok(ControlListener {
                    inner: Inner::Tcp(tokio::net::TcpListener::from_std(listener)?),
                    name: format!("tcp:{local}"),
                })
            }
        }
    }

    /// The address clients use (`tcp:127.0.0.1:40123` with the real port).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Serves clients until `stop` turns true (or its sender is gone), then
    /// closes every connection and removes the socket file if it is still
    /// ours.
    pub async fn serve(self, control: Arc<Control>, mut stop: watch::Receiver<bool>) {
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = super::simulation::stopped(&mut stop) => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = self.inner.accept() => accepted,
            };
            match accepted {
                Ok(Stream::Unix(s)) => {
                    connections.spawn(connection(s, control.clone(), stop.clone()));
                }
                Ok(Stream::Tcp(s)) => {
                    connections.spawn(connection(s, control.clone(), stop.clone()));
                }
                Err(e) => {
                    // e.g. EMFILE: keep serving the others, without spinning.
                    tracing::warn!(error = %e, "control: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        connections.shutdown().await;
        self.inner.remove_socket_file();
    }
}

enum LineRead {
    Line,
    TooLong,
    Eof,
}

/// Reads one line into `buf` (without its `\n` or `\r\n`), never buffering
/// more than the protocol's limit.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<LineRead> {
    buf.clear();
    let limit = MAX_LINE_BYTES as u64 + 2;
    let n = (&mut *reader).take(limit).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(LineRead::Eof);
    }
    if buf.last() != Some(&b'\n') {
        // Either the limit stopped the read, or the peer closed mid-line.
        return Ok(if n as u64 >= limit {
            LineRead::TooLong
        } else {
            LineRead::Eof
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(if buf.len() > MAX_LINE_BYTES {
        LineRead::TooLong
    } else {
        LineRead::Line
    })
}

/// One client: requests in order, replies and notifications out.
async fn connection<S>(stream: S, control: Arc<Control>, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Reply>(64);
    let writer = tokio::spawn(write_replies(write, rx, control.clone()));
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    let mut greeted = false;
    loop {
        let read = tokio::select! {
            () = super::simulation::stopped(&mut stop) => break,
            read = read_line(&mut reader, &mut buf) => read,
        };
        let refusal = match read {
            Ok(LineRead::Eof) | Err(_) => break,
            Ok(LineRead::TooLong) => {
                Some(format!("line longer than the {MAX_LINE_BYTES}-byte limit"))
            }
            Ok(LineRead::Line) if buf.trim_ascii().is_empty() => continue,
            Ok(LineRead::Line) => match protocol::decode::<Request>(&buf) {
                Err(e) => Some(e.to_string()),
                Ok(request) => match control.handle(request, &mut greeted) {
                    Ok(replies) => {
                        let mut gone = false;
                        for reply in replies {
                            gone |= tx.send(reply).await.is_err();
                        }
                        if gone {
                            break;
                        }
                        None
                    }
                    Err(reason) => Some(reason),
                },
            },
        };
        if let Some(reason) = refusal {
            tracing::warn!(reason, "control: closing a connection");
            let _ = tx.send(Reply::Error { reason }).await;
            break;
        }
    }
    drop(tx);
    // The writer sends what is queued, then closes the connection.
    let _ = writer.await;
}

async fn write_replies<W: AsyncWrite>(
    write: W,
    mut rx: mpsc::Receiver<Reply>,
    control: Arc<Control>,
) {
    let mut write = std::pin::pin!(write);
    // Subscribed once the client said hello (then notifications flow).
    let mut notes: Option<broadcast::Receiver<Exceeded>> = None;
    loop {
        let message = tokio::select! {
            reply = rx.recv() => match reply {
                Some(reply) => {
                    if matches!(reply, Reply::Hello { .. }) && notes.is_none() {
                        notes = Some(control.exceeded.subscribe());
                    }
                    reply
                }
                None => break,
            },
            note = async {
                match notes.as_mut() {
                    Some(n) => n.recv().await,
                    None => std::future::pending().await,
                }
            } => match note {
                Ok(exceeded) => Reply::Exceeded(exceeded),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => {
                    notes = None;
                    continue;
                }
            },
        };
        let line = protocol::encode(&message);
        if write.write_all(&line).await.is_err() || write.flush().await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_listens_on_loopback_only() {
        let err = ControlListener::bind(&ControlAddr::Tcp("0.0.0.0:0".into()))
            .err()
            .unwrap();
        assert!(err.to_string().contains("loopback"), "{err}");
        let ok = ControlListener::bind(&ControlAddr::Tcp("127.0.0.1:0".into())).unwrap();
        assert!(ok.name().starts_with("tcp:127.0.0.1:") && !ok.name().ends_with(":0"));
    }

    #[tokio::test]
    async fn lines_are_bounded() {
        let mut input: &[u8] = b"{\"a\":1}\r\nrest";
        let mut reader = BufReader::new(&mut input);
        let mut buf = Vec::new();
        assert!(matches!(
            read_line(&mut reader, &mut buf).await.unwrap(),
            LineRead::Line
        ));
        assert_eq!(buf, b"{\"a\":1}");
        assert!(matches!(
            read_line(&mut reader, &mut buf).await.unwrap(),
            LineRead::Eof
        ));
        let long = vec![b'x'; MAX_LINE_BYTES * 3];
        let mut reader = BufReader::new(long.as_slice());
        assert!(matches!(
            read_line(&mut reader, &mut buf).await.unwrap(),
            LineRead::TooLong
        ));
        assert!(buf.len() <= MAX_LINE_BYTES + 2);
        let mut exact = vec![b'x'; MAX_LINE_BYTES];
        exact.push(b'\n');
        let mut reader = BufReader::new(exact.as_slice());
        assert!(matches!(
            read_line(&mut reader, &mut buf).await.unwrap(),
            LineRead::Line
        ));
    }
}
