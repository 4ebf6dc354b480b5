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
//! - One reader task per connection, so partial lines never mix across
//!   clients; sends wait on the bounded channel (backpressure, no drops).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

use crate::ingest::channel::{ClientChange, IngestMsg, LineBatch, SourceKind, SourceRef};
use crate::ingest::formats::DecoderConfig;
use crate::ingest::lines::{Line, LineSplitter, ReadBuffer};

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

#[derive(Debug, Clone)]
pub struct ListenConfig {
    pub max_line_bytes: usize,
    /// Required as the first line of TCP clients when set.
    pub token: Option<String>,
    /// Connections beyond this many at once are turned away.
    pub max_clients: u64,
    /// How each client's lines are decoded (a decoder per client).
    pub decoders: Arc<DecoderConfig>,
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

    /// Accepts clients until `shutdown` turns true; each client is read by its own task.
    pub async fn serve(
        self,
        tx: mpsc::Sender<IngestMsg>,
        config: ListenConfig,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let connected = Arc::new(AtomicU64::new(0));
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
                Err(_) => continue, // e.g. EMFILE: keep serving the others
            };
            next_client += 1;
            let source = SourceRef {
                client: Some(next_client),
                ..self.source.clone()
            };
            if connected.load(Ordering::Relaxed) >= config.max_clients {
                let reason = format!("more than {} clients at once", config.max_clients);
                let _ = tx
                    .send(IngestMsg::Client {
                        source,
                        change: ClientChange::Rejected { reason },
                    })
                    .await;
                continue;
            }
            connected.fetch_add(1, Ordering::Relaxed);
            let (tx, connected, token, shutdown) = (
                tx.clone(),
                connected.clone(),
                token.clone(),
                shutdown.clone(),
            );
            let max_line_bytes = config.max_line_bytes;
            let decoders = config.decoders.clone();
            tokio::spawn(async move {
                match stream {
                    Stream::Unix(s) => {
                        read_client(s, source, tx, max_line_bytes, &decoders, token, shutdown).await
                    }
                    Stream::Tcp(s) => {
                        read_client(s, source, tx, max_line_bytes, &decoders, token, shutdown).await
                    }
                }
                connected.fetch_sub(1, Ordering::Relaxed);
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

enum Gate {
    /// Waiting for the first line (token or HTTP check).
    First,
    Open,
    Closed(String),
}

async fn read_client<S: AsyncRead + Unpin>(
    mut stream: S,
    source: SourceRef,
    tx: mpsc::Sender<IngestMsg>,
    max_line_bytes: usize,
    decoders: &Arc<DecoderConfig>,
    token: Option<Arc<str>>,
    mut shutdown: watch::Receiver<bool>,
) {
    if tx
        .send(IngestMsg::Client {
            source: source.clone(),
            change: ClientChange::Connected,
        })
        .await
        .is_err()
    {
        return;
    }
    let mut splitter = LineSplitter::new(max_line_bytes);
    let mut buffer = ReadBuffer::new(64 * 1024);
    let mut batch = LineBatch::new(&source, decoders.clone());
    let mut line_no = 0_u64;
    let mut gate = Gate::First;
    let mut pending: Vec<IngestMsg> = Vec::new();
    loop {
        let read = tokio::select! {
            _ = shutdown.changed() => break,
            read = stream.read(buffer.space()) => read,
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        splitter.feed(buffer.data(n), |line| {
            if matches!(gate, Gate::Closed(_)) {
                return;
            }
            line_no += 1;
            match line {
                Line::Complete(bytes) => {
                    if matches!(gate, Gate::First) {
                        if looks_like_http(bytes) {
                            gate = Gate::Closed("HTTP request on a JSONL socket".into());
                            return;
                        }
                        if let Some(token) = &token {
                            gate = if constant_time_eq::constant_time_eq(
                                bytes.trim_ascii(),
                                token.as_bytes(),
                            ) {
                                Gate::Open
                            } else {
                                Gate::Closed("missing or wrong token".into())
                            };
                            return; // the token line is not an event
                        }
                        gate = Gate::Open;
                    }
                    if batch.next_line != line_no && !batch.is_empty() {
                        pending.extend(batch.take(&source));
                    }
                    batch.push(line_no, bytes);
                    if batch.is_full() {
                        pending.extend(batch.take(&source));
                    }
                }
                Line::Oversized(bytes) => {
                    if matches!(gate, Gate::First) && token.is_some() {
                        gate = Gate::Closed("missing or wrong token".into());
                        return;
                    }
                    gate = Gate::Open;
                    pending.extend(batch.take(&source));
                    pending.push(IngestMsg::Oversized {
                        source: source.clone(),
                        line_no,
                        bytes,
                    });
                }
            }
        });
        pending.extend(batch.take(&source));
        for msg in pending.drain(..) {
            if tx.send(msg).await.is_err() {
                return;
            }
        }
        if let Gate::Closed(reason) = &gate {
            let _ = tx
                .send(IngestMsg::Client {
                    source: source.clone(),
                    change: ClientChange::Rejected {
                        reason: reason.clone(),
                    },
                })
                .await;
            return;
        }
    }
    // What the client's decoder holds (a stream cut short) counts too.
    batch.end_of_source();
    if let Some(msg) = batch.take(&source)
        && tx.send(msg).await.is_err()
    {
        return;
    }
    let incomplete = splitter.pending();
    let _ = tx
        .send(IngestMsg::Client {
            source,
            change: ClientChange::Disconnected { incomplete },
        })
        .await;
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
