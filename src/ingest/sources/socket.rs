//! Socket listeners: agents stream native JSONL over a Unix socket or TCP.
//!
//! Security defaults (docs/live.md):
//! - Unix sockets are created with mode 0600 with no window: bound inside a
//!   private 0700 directory, then renamed into place. A stale socket left by
//!   a killed process is replaced only if nothing answers on it; a path that
//!   is not a socket is never deleted.
//! - TCP binds where it is told, but an address that is not loopback needs
//!   `--listen-token`; with a token, a TCP client's first line must be the
//!   token (compared in constant time).
//! - A connection whose first line looks like HTTP is dropped: browsers can
//!   POST to localhost.
//! - Slots: `--max-clients` connected clients over every listener; a TCP
//!   connection that must send the token holds one of
//!   [`MAX_PENDING_HANDSHAKES`] handshake slots instead, for at most
//!   [`TOKEN_DEADLINE`], so silent peers cannot lock clients out. A connected
//!   client silent for the idle timeout is closed.
//! - One reader task per connection, so partial lines never mix across
//!   clients. Its reads are split and decoded on a blocking thread (a
//!   semaphore bounds how many at once), never on a runtime worker: decoding
//!   and waiting on the estimator's queue must not stall the runtime. Sends
//!   wait on the bounded channel (backpressure, no drops).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

use crate::ingest::channel::{ClientChange, IngestMsg, LineBatch, SourceKind, SourceRef};
use crate::ingest::formats::DecoderConfig;
use crate::ingest::lines::{Line, LineSplitter, ReadBuffer};
use crate::ingest::sources::tail::FileEvent;

/// A `--listen` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Unix(PathBuf),
    /// `host:port` as given.
    Tcp(String),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path, e.g. unix:/tmp/tokwatch.sock".into());
            }
            Ok(ListenAddr::Unix(PathBuf::from(path)))
        } else if let Some(host_port) = text.strip_prefix("tcp:") {
            if host_port
                .rsplit_once(':')
                .is_none_or(|(_, port)| port.parse::<u16>().is_err())
            {
                return Err(format!(
                    "'{text}': expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:7700"
                ));
            }
            Ok(ListenAddr::Tcp(host_port.to_owned()))
        } else {
            Err(format!("'{text}': expected unix:PATH or tcp:HOST:PORT"))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("'{0}' is in use by a running process (something answered on it)")]
    InUse(PathBuf),
    #[error("'{0}' exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error(
        "tcp:{0} is not a loopback address: pass --listen-token so that only clients with the token can send"
    )]
    NeedsToken(String),
    #[error("cannot resolve tcp:{0}")]
    Resolve(String),
    #[error("cannot listen on {what}: {source}")]
    Io { what: String, source: io::Error },
}

/// How long a TCP client that must send `--listen-token` has to send it
/// (its first line). Until then it holds a handshake slot, never a client
/// slot.
pub const TOKEN_DEADLINE: Duration = Duration::from_secs(5);

/// Handshakes (connections that have not sent the token yet) in progress at
/// once, over every listener: further connections are turned away until one
/// ends. Apart from `--max-clients`, so that peers that never send the token
/// cannot take the slots of clients that do.
pub const MAX_PENDING_HANDSHAKES: u64 = 64;

/// A connected client that sends nothing for this long is closed
/// (`--client-idle-timeout`; an agent reconnects when it has more to send).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Longest first line of a connection that must send the token.
const MAX_TOKEN_LINE: usize = 4096;

/// Bytes read from a client at a time.
const READ_BYTES: usize = 64 * 1024;

/// How listeners serve their clients. Clones share the client slots and the
/// decoding threads: build one per process and clone it for each listener,
/// so that `--max-clients` is a total over listeners.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    pub max_line_bytes: usize,
    /// Required as the first line of TCP clients when set (and not empty).
    pub token: Option<String>,
    /// [`TOKEN_DEADLINE`] unless changed.
    pub token_deadline: Duration,
    /// A client silent this long is closed; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// How each client's lines are decoded (a decoder per client).
    pub decoders: Arc<DecoderConfig>,
    shared: Arc<Shared>,
}

impl ListenConfig {
    /// `max_clients` connected clients at once over every listener sharing
    /// this configuration (clones), and [`MAX_PENDING_HANDSHAKES`] clients
    /// sending the token.
    #[must_use]
    pub fn new(
        max_line_bytes: usize,
        token: Option<String>,
        max_clients: u64,
        decoders: Arc<DecoderConfig>,
    ) -> Self {
        ListenConfig {
            max_line_bytes,
            token: token.filter(|t| !t.is_empty()),
            token_deadline: TOKEN_DEADLINE,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            decoders,
            shared: Shared::new(max_clients, MAX_PENDING_HANDSHAKES),
        }
    }

    /// Closes clients silent for `timeout` (zero: never).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// At most `max` handshakes at once (tests; [`MAX_PENDING_HANDSHAKES`]
    /// by default).
    #[must_use]
    pub fn with_max_pending(self, max: u64) -> Self {
        ListenConfig {
            shared: Shared::new(self.shared.slots.max_clients, max),
            ..self
        }
    }
}

/// What every listener of a process shares.
#[derive(Debug)]
struct Shared {
    slots: Slots,
    /// Batches being decoded at once, off the async runtime (one per CPU):
    /// decoding (and waiting on the estimator's queue) never runs on, or
    /// blocks, a runtime worker.
    decoding: tokio::sync::Semaphore,
}

impl Shared {
    fn new(max_clients: u64, max_pending: u64) -> Arc<Shared> {
        // At least two: one client stuck on the estimator's queue does not
        // hold every decoding thread.
        let decoding = std::thread::available_parallelism()
            .map_or(2, std::num::NonZero::get)
            .max(2);
        Arc::new(Shared {
            slots: Slots {
                max_clients,
                max_pending,
                connected: AtomicU64::new(0),
                pending: AtomicU64::new(0),
            },
            decoding: tokio::sync::Semaphore::new(decoding),
        })
    }
}

/// Connected clients and handshakes in progress, each with its own cap.
#[derive(Debug)]
struct Slots {
    max_clients: u64,
    max_pending: u64,
    connected: AtomicU64,
    pending: AtomicU64,
}

/// A taken slot, given back when dropped.
struct Slot {
    shared: Arc<Shared>,
    pending: bool,
}

impl Slot {
    fn take(shared: &Arc<Shared>, pending: bool) -> Option<Slot> {
        let slots = &shared.slots;
        let (counter, max) = if pending {
            (&slots.pending, slots.max_pending)
        } else {
            (&slots.connected, slots.max_clients)
        };
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Slot {
            shared: shared.clone(),
            pending,
        })
    }
}

fn refusal(shared: &Shared, pending: bool) -> String {
    if pending {
        format!(
            "more than {} connections waiting to send the token",
            shared.slots.max_pending
        )
    } else {
        format!("more than {} clients at once", shared.slots.max_clients)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let slots = &self.shared.slots;
        let counter = if self.pending {
            &slots.pending
        } else {
            &slots.connected
        };
        counter.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A bound Unix or TCP listener (also the demo runtime's control socket).
pub(crate) enum Inner {
    Unix {
        listener: tokio::net::UnixListener,
        path: PathBuf,
        ino: u64,
    },
    Tcp(tokio::net::TcpListener),
}

/// A bound listener, ready to [`serve`](Listener::serve).
pub struct Listener {
    source: SourceRef,
    inner: Inner,
}

impl Listener {
    /// Binds `addr`. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// See [`ListenError`].
    pub fn bind(addr: &ListenAddr, token: Option<&str>) -> Result<Listener, ListenError> {
        match addr {
            ListenAddr::Unix(path) => bind_unix(path),
            ListenAddr::Tcp(host_port) => bind_tcp(host_port, token),
        }
    }

    /// The listener as sources are named (`tcp:127.0.0.1:40123` with the real port).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.source.name
    }

    /// Accepts clients until `shutdown` turns true; each client is read by
    /// its own task. A TCP listener with a token admits a connection to a
    /// handshake slot until it sends the token, then to a client slot;
    /// other connections take a client slot at once. Without a free slot
    /// of the kind needed, the connection is closed (`Rejected`).
    pub async fn serve(
        self,
        tx: mpsc::Sender<IngestMsg>,
        config: ListenConfig,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut next_client = 0_u64;
        let token = match self.source.kind {
            SourceKind::Tcp => config.token.clone().map(Arc::<str>::from),
            _ => None,
        };
        loop {
            let accepted = tokio::select! {
                _ = shutdown.changed() => break,
                accepted = self.inner.accept() => accepted,
            };
            let stream = match accepted {
                Ok(stream) => stream,
                Err(e) => {
                    // e.g. EMFILE: the connection stays queued. Reported
                    // (`errors`, `last_error`); the others are still served,
                    // and the listener does not spin on it.
                    let _ = tx
                        .send(IngestMsg::File {
                            source: self.source.clone(),
                            event: FileEvent::Error(format!("cannot accept a connection: {e}")),
                        })
                        .await;
                    tokio::select! {
                    _ = shutdown.changed() => break,
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    }
                }
            };
            next_client += 1;
            let source = SourceRef {
                client: Some(next_client),
                ..self.source.clone()
            };
            let Some(slot) = Slot::take(&config.shared, token.is_some()) else {
                drop(stream);
                let reason = refusal(&config.shared, token.is_some());
                let _ = tx
                    .send(IngestMsg::Client {
                        source,
                        change: ClientChange::Rejected { reason },
                    })
                    .await;
                continue;
            };
            let client = Client {
                source,
                tx: tx.clone(),
                config: config.clone(),
                shutdown: shutdown.clone(),
            };
            let token = token.clone();
            tokio::spawn(async move {
                match stream {
                    Stream::Unix(s) => client.serve(s, slot, token).await,
                    Stream::Tcp(s) => client.serve(s, slot, token).await,
                }
            });
        }
        self.inner.remove_socket_file();
    }
}

/// An accepted connection.
pub(crate) enum Stream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

impl Inner {
    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        match self {
            Inner::Unix { listener, .. } => listener.accept().await.map(|(s, _)| Stream::Unix(s)),
            Inner::Tcp(listener) => listener.accept().await.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }),
        }
    }

    /// Removes the socket file if it is still ours (same inode).
    pub(crate) fn remove_socket_file(&self) {
        if let Inner::Unix { path, ino, .. } = self
            && std::fs::metadata(path).is_ok_and(|m| m.ino() == *ino)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> ListenError {
    let what = what.into();
    move |source| ListenError::Io { what, source }
}

fn bind_unix(path: &Path) -> Result<Listener, ListenError> {
    let (listener, ino) = bind_private_unix(path)?;
    Ok(Listener {
        source: SourceRef {
            name: format!("unix:{}", path.display()).into(),
            origin: "socket".into(),
            kind: SourceKind::Unix,
            client: None,
        },
        inner: Inner::Unix {
            listener,
            path: path.to_path_buf(),
            ino,
        },
    })
}

/// Binds a Unix socket at `path` with mode 0600 and no window where it is
/// reachable with looser permissions (bound inside a private 0700 directory,
/// then renamed into place). A stale socket (nothing answers on it) is
/// replaced; a live one or a path that is not a socket is refused. Returns
/// the listener and the socket file's inode, so that the caller removes the
/// file at exit only while it is still its own. Must be called inside a tokio
/// runtime.
///
/// # Errors
/// See [`ListenError`].
pub fn bind_private_unix(path: &Path) -> Result<(tokio::net::UnixListener, u64), ListenError> {
    let name = format!("unix:{}", path.display());
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ListenError::NotASocket(path.to_path_buf()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ListenError::InUse(path.to_path_buf()));
        }
        // Stale: nothing answers.
        std::fs::remove_file(path).map_err(io_error(&name))?;
    }
    // Bind inside a private directory, fix the mode, then move into place:
    // the socket is never reachable with looser permissions.
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let private = parent.join(format!(
        ".tokwatch-bind-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io_error(&name))?;
    let staged = private.join("socket");
    let result = (|| {
        let listener = std::os::unix::net::UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        listener.set_nonblocking(true)?;
        let ino = std::fs::metadata(path)?.ino();
        Ok::<_, io::Error>((tokio::net::UnixListener::from_std(listener)?, ino))
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    result.map_err(io_error(&name))
}

fn unique() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn bind_tcp(host_port: &str, token: Option<&str>) -> Result<Listener, ListenError> {
    let addrs: Vec<SocketAddr> = host_port
        .to_socket_addrs()
        .map_err(|_| ListenError::Resolve(host_port.to_owned()))?
        .collect();
    let addr = *addrs
        .first()
        .ok_or_else(|| ListenError::Resolve(host_port.to_owned()))?;
    if !addrs.iter().all(|a| a.ip().is_loopback()) && token.is_none_or(str::is_empty) {
        return Err(ListenError::NeedsToken(host_port.to_owned()));
    }
    let listener =
        std::net::TcpListener::bind(addr).map_err(io_error(format!("tcp:{host_port}")))?;
    listener
        .set_nonblocking(true)
        .map_err(io_error(format!("tcp:{host_port}")))?;
    let local = listener
        .local_addr()
        .map_err(io_error(format!("tcp:{host_port}")))?;
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(io_error(format!("tcp:{host_port}")))?;
    Ok(Listener {
        source: SourceRef {
            name: format!("tcp:{local}").into(),
            origin: "socket".into(),
            kind: SourceKind::Tcp,
            client: None,
        },
        inner: Inner::Tcp(listener),
    })
}

/// Does the first line of a connection look like an HTTP request?
#[must_use]
pub fn looks_like_http(line: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"OPTIONS ",
        b"DELETE ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    METHODS.iter().any(|m| line.starts_with(m)) || line.windows(6).any(|w| w == b" HTTP/")
}

/// One connection, as it is served.
struct Client {
    source: SourceRef,
    tx: mpsc::Sender<IngestMsg>,
    config: ListenConfig,
    shutdown: watch::Receiver<bool>,
}

/// How a handshake ended.
enum Handshake {
    /// The token line was right; what came after it.
    Accepted(Vec<u8>),
    Refused(String),
    /// Shutting down.
    Stopped,
}

impl Client {
    async fn send(&self, msg: IngestMsg) -> bool {
        self.tx.send(msg).await.is_ok()
    }

    async fn change(&self, change: ClientChange) -> bool {
        self.send(IngestMsg::Client {
            source: self.source.clone(),
            change,
        })
        .await
    }

    /// Serves a connection admitted to `slot` (a handshake slot when
    /// `token` is set).
    async fn serve<S: AsyncRead + Unpin>(
        mut self,
        mut stream: S,
        slot: Slot,
        token: Option<Arc<str>>,
    ) {
        // The token's time runs from the connection.
        let deadline = tokio::time::Instant::now() + self.config.token_deadline;
        let mut reader = Box::new(ClientReader::new(&self.source, &self.config));
        let mut first = Vec::new();
        let _slot = match token {
            Some(token) => {
                if !self.change(ClientChange::HandshakeStarted).await {
                    return;
                }
                let outcome = self.handshake(&mut stream, &token, deadline).await;
                drop(slot);
                if !self.change(ClientChange::HandshakeEnded).await {
                    return;
                }
                match outcome {
                    Handshake::Accepted(rest) => first = rest,
                    Handshake::Refused(reason) => {
                        drop(stream);
                        self.change(ClientChange::Rejected { reason }).await;
                        return;
                    }
                    Handshake::Stopped => return,
                }
                // The token line is line 1, not an event (nor an HTTP request).
                reader.line_no = 1;
                reader.first = false;
                let Some(slot) = Slot::take(&self.config.shared, false) else {
                    drop(stream);
                    let reason = refusal(&self.config.shared, false);
                    self.change(ClientChange::Rejected { reason }).await;
                    return;
                };
                slot
            }
            None => slot,
        };
        if !self.change(ClientChange::Connected).await {
            return;
        }
        let mut buffer = ReadBuffer::new(READ_BYTES);
        let mut pending = Some(first).filter(|f| !f.is_empty());
        loop {
            let data = if let Some(first) = pending.take() {
                Data::Owned(first)
            } else {
                let read = tokio::select! {
                    _ = self.shutdown.changed() => break,
                    read = read_within(&mut stream, buffer.space(), self.config.idle_timeout) => read,
                };
                match read {
                    // Idle for too long, hung up, or failed.
                    None | Some(Ok(0) | Err(_)) => break,
                    Some(Ok(n)) => Data::Read(buffer, n),
                }
            };
            // Off the runtime, one batch at a time: order kept, and the
            // client is not read while its lines wait (backpressure).
            let decoded = self
                .off_runtime(move || {
                    reader.feed(data.bytes());
                    (reader, data.into_buffer())
                })
                .await;
            let Some((decoded, returned)) = decoded else {
                return; // a decoder panicked: the connection is dropped
            };
            reader = decoded;
            buffer = returned.unwrap_or_else(|| ReadBuffer::new(READ_BYTES));
            for msg in reader.out.drain(..) {
                if self.tx.send(msg).await.is_err() {
                    return;
                }
            }
            if let Some(reason) = reader.closed.take() {
                drop(stream);
                self.change(ClientChange::Disconnected { incomplete: 0 })
                    .await;
                self.change(ClientChange::Rejected { reason }).await;
                return;
            }
        }
        drop(stream);
        // What the client's decoder holds (a stream cut short) counts too.
        let Some(mut reader) = self
            .off_runtime(move || {
                reader.finish();
                reader
            })
            .await
        else {
            return;
        };
        for msg in reader.out.drain(..) {
            if self.tx.send(msg).await.is_err() {
                return;
            }
        }
        let incomplete = reader.splitter.pending();
        self.change(ClientChange::Disconnected { incomplete }).await;
    }

    /// Reads the first line by `deadline` and checks it.
    async fn handshake<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        token: &str,
        deadline: tokio::time::Instant,
    ) -> Handshake {
        let limit = MAX_TOKEN_LINE.max(token.len() + 2);
        let mut line = Vec::with_capacity(128);
        let mut chunk = [0_u8; 1024];
        loop {
            let read = tokio::select! {
                _ = self.shutdown.changed() => return Handshake::Stopped,
                read = tokio::time::timeout_at(deadline, stream.read(&mut chunk)) => read,
            };
            let n = match read {
                Err(_) => {
                    return Handshake::Refused(format!(
                        "no token within {:?}",
                        self.config.token_deadline
                    ));
                }
                Ok(Ok(0) | Err(_)) => {
                    return Handshake::Refused("hung up before sending the token".into());
                }
                Ok(Ok(n)) => n,
            };
            let searched = line.len();
            line.extend_from_slice(&chunk[..n]);
            if let Some(at) = memchr::memchr(b'\n', &line[searched..]) {
                let rest = line.split_off(searched + at + 1);
                let first = &line[..line.len() - 1];
                let first = first.strip_suffix(b"\r").unwrap_or(first);
                if looks_like_http(first) {
                    return Handshake::Refused("HTTP request on a JSONL socket".into());
                }
                return if constant_time_eq::constant_time_eq(first.trim_ascii(), token.as_bytes()) {
                    Handshake::Accepted(rest)
                } else {
                    Handshake::Refused("missing or wrong token".into())
                };
            }
            if line.len() > limit {
                return Handshake::Refused("missing or wrong token".into());
            }
        }
    }

    /// Runs `work` on a blocking thread once a decoding permit is free
    /// (`None`: it panicked, or the runtime is shutting down).
    async fn off_runtime<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let permit = self.config.shared.clone();
        let _permit = permit.decoding.acquire().await.ok()?;
        tokio::task::spawn_blocking(work).await.ok()
    }
}

/// Bytes to decode: a read into the client's buffer, or what followed the
/// token line.
enum Data {
    Read(ReadBuffer, usize),
    Owned(Vec<u8>),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Read(buffer, n) => buffer.data(*n),
            Data::Owned(bytes) => bytes,
        }
    }

    fn into_buffer(self) -> Option<ReadBuffer> {
        match self {
            Data::Read(buffer, _) => Some(buffer),
            Data::Owned(_) => None,
        }
    }
}

/// A read, or `None` when nothing came within `idle`.
async fn read_within<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
    idle: Option<Duration>,
) -> Option<io::Result<usize>> {
    match idle {
        Some(idle) => tokio::time::timeout(idle, stream.read(buf)).await.ok(),
        None => Some(stream.read(buf).await),
    }
}

/// A client's lines: split, checked and decoded (on a blocking thread) into
/// messages for the aggregator.
struct ClientReader {
    source: SourceRef,
    splitter: LineSplitter,
    batch: LineBatch,
    line_no: u64,
    /// The first line is still to come (an HTTP request is refused).
    first: bool,
    /// Why the connection is to be closed.
    closed: Option<String>,
    out: Vec<IngestMsg>,
}

impl ClientReader {
    fn new(source: &SourceRef, config: &ListenConfig) -> Self {
        ClientReader {
            source: source.clone(),
            splitter: LineSplitter::new(config.max_line_bytes),
            batch: LineBatch::new(source, config.decoders.clone()),
            line_no: 0,
            first: true,
            closed: None,
            out: Vec::new(),
        }
    }

    fn feed(&mut self, data: &[u8]) {
        let ClientReader {
            source,
            splitter,
            batch,
            line_no,
            first,
            closed,
            out,
        } = self;
        splitter.feed(data, |line| {
            if closed.is_some() {
                return;
            }
            *line_no += 1;
            match line {
                Line::Complete(bytes) => {
                    if std::mem::take(first) && looks_like_http(bytes) {
                        *closed = Some("HTTP request on a JSONL socket".into());
                        return;
                    }
                    if batch.next_line != *line_no && !batch.is_empty() {
                        out.extend(batch.take(source));
                    }
                    batch.push(*line_no, bytes);
                    if batch.is_full() {
                        out.extend(batch.take(source));
                    }
                }
                Line::Oversized(bytes) => {
                    *first = false;
                    out.extend(batch.take(source));
                    out.push(IngestMsg::Oversized {
                        source: source.clone(),
                        line_no: *line_no,
                        bytes,
                    });
                }
            }
        });
        out.extend(self.batch.take(&self.source));
    }

    /// The client hung up: what its decoder holds counts too.
    fn finish(&mut self) {
        self.batch.end_of_source();
        self.out.extend(self.batch.take(&self.source));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse_with_clear_errors() {
        assert_eq!(
            "unix:/tmp/a.sock".parse(),
            Ok(ListenAddr::Unix("/tmp/a.sock".into()))
        );
        assert_eq!(
            "tcp:127.0.0.1:7700".parse(),
            Ok(ListenAddr::Tcp("127.0.0.1:7700".into()))
        );
        assert_eq!("tcp:[::1]:0".parse(), Ok(ListenAddr::Tcp("[::1]:0".into())));
        assert!(
            "tcp:localhost"
                .parse::<ListenAddr>()
                .unwrap_err()
                .contains("tcp:HOST:PORT")
        );
        assert!(
            "udp:1"
                .parse::<ListenAddr>()
                .unwrap_err()
                .contains("unix:PATH or tcp:HOST:PORT")
        );
        assert!("unix:".parse::<ListenAddr>().is_err());
    }

    #[test]
    fn http_request_lines_are_recognized() {
        assert!(looks_like_http(b"POST / HTTP/1.1"));
        assert!(looks_like_http(b"GET /favicon.ico HTTP/1.1"));
        assert!(looks_like_http(b"OPTIONS * HTTP/1.1"));
        assert!(!looks_like_http(br#"{"model":"gpt-4o","input_tokens":1}"#));
    }

    /// The next client change a listener reports (other messages skipped).
    async fn next_change(rx: &mut mpsc::Receiver<IngestMsg>) -> (u64, ClientChange) {
        let wait = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match rx.recv().await {
                    Some(IngestMsg::Client { source, change }) => {
                        return (source.client.unwrap_or(0), change);
                    }
                    Some(_) => {}
                    None => panic!("the listener stopped"),
                }
            }
        });
        wait.await.expect("a client change within 10 s")
    }

    #[tokio::test]
    async fn handshakes_have_slots_of_their_own_and_a_deadline() {
        use tokio::io::AsyncWriteExt;
        let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".into()), None).unwrap();
        let addr = listener.name().strip_prefix("tcp:").unwrap().to_owned();
        let mut config = ListenConfig::new(1024, Some("tok".into()), 1, Arc::default())
            .with_max_pending(2)
            .with_idle_timeout(Duration::ZERO);
        config.token_deadline = Duration::from_millis(300);
        let (tx, mut rx) = mpsc::channel(64);
        let (stop, shutdown) = watch::channel(false);
        let served = tokio::spawn(listener.serve(tx, config, shutdown));
        let connect = || tokio::net::TcpStream::connect(addr.clone());
        // Two silent peers fill the handshake slots; a third connection is
        // turned away at once.
        let _silent = (connect().await.unwrap(), connect().await.unwrap());
        assert_eq!(next_change(&mut rx).await.1, ClientChange::HandshakeStarted);
        assert_eq!(next_change(&mut rx).await.1, ClientChange::HandshakeStarted);
        let _third = connect().await.unwrap();
        let (client, change) = next_change(&mut rx).await;
        assert_eq!(client, 3);
        assert_eq!(
            change,
            ClientChange::Rejected {
                reason: "more than 2 connections waiting to send the token".into()
            }
        );
        // Their time is up: both closed, their slots free again.
        let mut ends = Vec::new();
        for _ in 0..4 {
            ends.push(next_change(&mut rx).await);
        }
        ends.sort_by_key(|(client, change)| (*client, *change != ClientChange::HandshakeEnded));
        let timed_out = ClientChange::Rejected {
            reason: "no token within 300ms".into(),
        };
        assert_eq!(
            ends,
            [
                (1, ClientChange::HandshakeEnded),
                (1, timed_out.clone()),
                (2, ClientChange::HandshakeEnded),
                (2, timed_out)
            ]
        );
        // The one client slot goes to a client with the token, whose line
        // may arrive in pieces with its first event.
        let mut client = connect().await.unwrap();
        client.write_all(b"to").await.unwrap();
        client.write_all(b"k\r\n{\"model\":\"m\"").await.unwrap();
        client.write_all(b",\"input_tokens\":1}\n").await.unwrap();
        assert_eq!(next_change(&mut rx).await.1, ClientChange::HandshakeStarted);
        assert_eq!(next_change(&mut rx).await.1, ClientChange::HandshakeEnded);
        assert_eq!(next_change(&mut rx).await.1, ClientChange::Connected);
        let lines = loop {
            if let Some(IngestMsg::Lines {
                first_line, lines, ..
            }) = rx.recv().await
            {
                break (first_line, lines.len());
            }
        };
        assert_eq!(lines, (2, 1), "the token is line 1, the event line 2");
        // With the client slot taken, a second client with the token is
        // turned away after its handshake.
        let mut second = connect().await.unwrap();
        second.write_all(b"tok\n").await.unwrap();
        assert_eq!(next_change(&mut rx).await.1, ClientChange::HandshakeStarted);
        assert_eq!(next_change(&mut rx).await.1, ClientChange::HandshakeEnded);
        assert_eq!(
            next_change(&mut rx).await.1,
            ClientChange::Rejected {
                reason: "more than 1 clients at once".into()
            }
        );
        drop(client);
        assert_eq!(
            next_change(&mut rx).await.1,
            ClientChange::Disconnected { incomplete: 0 }
        );
        stop.send(true).unwrap();
        served.await.unwrap();
    }

    /// A client whose records wait for the estimator's full queue blocks a
    /// decoding thread, never the runtime: with one runtime worker, another
    /// client is still accepted and read.
    #[test]
    fn a_client_stuck_on_the_estimator_does_not_stall_the_runtime() {
        use std::io::Write as _;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // The estimator delivers nothing until `release` is dropped: its
        // queue fills, and whoever submits more waits.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = std::sync::Mutex::new(held);
        let estimator = crate::ingest::estimate::Estimator::new(move |_| {
            let _ = held.lock().unwrap().recv();
        });
        let decoders = Arc::new(DecoderConfig {
            estimator: Some(estimator),
            ..DecoderConfig::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sock");
        let (tx, mut rx) = mpsc::channel(1024);
        let (stop, shutdown) = watch::channel(false);
        let listener = {
            let _entered = runtime.enter();
            Listener::bind(&ListenAddr::Unix(path.clone()), None).unwrap()
        };
        let config = ListenConfig::new(1 << 20, None, 8, decoders);
        let served = runtime.spawn(listener.serve(tx, config, shutdown));
        // What the listener reports, read off the runtime.
        let (changes_tx, changes) = std::sync::mpsc::channel();
        let forward = std::thread::spawn(move || {
            while let Some(msg) = rx.blocking_recv() {
                let _ = changes_tx.send(msg);
            }
        });
        let next = |what: &str| loop {
            match changes.recv_timeout(Duration::from_secs(10)) {
                Ok(IngestMsg::Client { source, change }) => break (source.client, change),
                Ok(_) => {}
                Err(_) => panic!("no {what} within 10 s: the runtime is stalled"),
            }
        };
        let mut stuck = std::os::unix::net::UnixStream::connect(&path).unwrap();
        assert_eq!(next("first client"), (Some(1), ClientChange::Connected));
        // Records to count from their text, until tokwatch stops reading:
        // the estimator's queue is full and the client's decoding waits.
        let line =
            r#"{"run_id":"r","model":"gpt-4o","prompt":"count me from my text","output_tokens":1}"#;
        let lines = format!("{line}\n").repeat(1024);
        stuck
            .set_write_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut sent = 0;
        while stuck.write_all(lines.as_bytes()).is_ok() {
            sent += lines.len();
            assert!(sent < 256 << 20, "tokwatch never stopped reading");
        }
        let mut other = std::os::unix::net::UnixStream::connect(&path).unwrap();
        assert_eq!(next("second client"), (Some(2), ClientChange::Connected));
        other
            .write_all(b"{\"model\":\"m\",\"input_tokens\":1}\n")
            .unwrap();
        drop(other);
        let read = loop {
            match changes.recv_timeout(Duration::from_secs(10)) {
                Ok(IngestMsg::Lines { source, lines, .. }) if source.client == Some(2) => {
                    break lines.len();
                }
                Ok(_) => {}
                Err(_) => panic!("the second client's line was never read"),
            }
        };
        assert_eq!(read, 1);
        drop(release);
        drop(stuck);
        stop.send(true).unwrap();
        runtime.block_on(served).unwrap();
        drop(runtime);
        forward.join().unwrap();
    }

    #[tokio::test]
    async fn non_loopback_tcp_needs_a_token() {
        assert!(matches!(
            Listener::bind(&ListenAddr::Tcp("0.0.0.0:0".into()), None),
            Err(ListenError::NeedsToken(_))
        ));
        assert!(Listener::bind(&ListenAddr::Tcp("0.0.0.0:0".into()), Some("s3cret")).is_ok());
        let local = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".into()), None).unwrap();
        assert!(local.name().starts_with("tcp:127.0.0.1:") && !local.name().ends_with(":0"));
    }

    #[tokio::test]
    async fn unix_sockets_are_0600_stale_ones_replaced_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sock");
        let first = Listener::bind(&ListenAddr::Unix(path.clone()), None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // something answers: refuse
        assert!(matches!(
            Listener::bind(&ListenAddr::Unix(path.clone()), None),
            Err(ListenError::InUse(_))
        ));
        drop(first); // the file stays, nothing answers: stale
        assert!(path.exists());
        let _second = Listener::bind(&ListenAddr::Unix(path.clone()), None).unwrap();
        // never delete what is not a socket
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "data").unwrap();
        assert!(matches!(
            Listener::bind(&ListenAddr::Unix(plain.clone()), None),
            Err(ListenError::NotASocket(_))
        ));
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "data");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".tokwatch-bind")
            })
            .collect();
        assert!(leftovers.is_empty());
    }
}
