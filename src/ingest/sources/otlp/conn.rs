//! Connections of the OTLP listeners: at most `--otlp-max-connections` at
//! once over all of them (accepting waits while there are that many: the
//! kernel's backlog holds the next ones), each closed once it has read and
//! written nothing for `--client-idle-timeout` (hyper and tonic close
//! neither an idle keep-alive connection nor one that never sends a
//! request), and closed [`VOUCH_DEADLINE`] after it was accepted unless one
//! of its requests passed the token check by then ([`Vouch`]; without
//! `--otlp-token`, any request): peers without the token cannot hold the
//! slots for the idle timeout.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Default `--otlp-max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// How long after it was accepted a connection is closed unless one of its
/// requests passed the token check (a request's head arrives well within
/// it; a connection that has answered one keeps only the idle timeout).
pub const VOUCH_DEADLINE: Duration = Duration::from_secs(10);

/// Tests of the binary: [`VOUCH_DEADLINE`] in milliseconds instead.
const VOUCH_DEADLINE_TEST_ENV: &str = "TOKWATCH_TEST_VOUCH_MS";

/// What every OTLP listener shares: the connection slots, the idle time.
#[derive(Debug)]
pub struct Connections {
    slots: Arc<Semaphore>,
    /// `None`: never closed for being idle.
    idle: Option<Duration>,
    /// [`VOUCH_DEADLINE`].
    vouch: Duration,
}

impl Connections {
    #[must_use]
    pub fn new(max: usize, idle: Duration) -> Self {
        let vouch = std::env::var(VOUCH_DEADLINE_TEST_ENV)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(VOUCH_DEADLINE, Duration::from_millis);
        Connections {
            slots: Arc::new(Semaphore::new(max.max(1))),
            idle: (!idle.is_zero()).then_some(idle),
            vouch,
        }
    }
}

/// Set by a request of the connection that passed the token check (the
/// connection's `ConnectInfo`, in each request's extensions): the
/// connection is then no longer closed at [`VOUCH_DEADLINE`].
#[derive(Debug, Clone, Default)]
pub struct Vouch(Arc<AtomicBool>);

impl Vouch {
    /// A request of this connection passed the token check.
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A listener that takes a connection slot before it accepts.
#[derive(Debug)]
pub struct Limited {
    listener: TcpListener,
    connections: Arc<Connections>,
}

impl Limited {
    #[must_use]
    pub fn new(listener: TcpListener, connections: Arc<Connections>) -> Self {
        Limited {
            listener,
            connections,
        }
    }

    /// The next connection, once a slot is free; accept errors (out of
    /// file descriptors) are retried 50 ms later.
    pub async fn next(&mut self) -> (Conn, SocketAddr) {
        let Ok(slot) = self.connections.slots.clone().acquire_owned().await else {
            // The semaphore is never closed.
            return std::future::pending().await;
        };
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let conn = Conn::new(stream, slot, &self.connections);
                    return (conn, addr);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept an OTLP connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

impl axum::serve::Listener for Limited {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        self.next().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Limited>> for Vouch {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Limited>) -> Self {
        stream.io().vouch.clone()
    }
}

/// An accepted connection: its slot, its idle deadline, and its deadline
/// for a request with the token.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle: Option<Duration>,
    deadline: Option<Pin<Box<Sleep>>>,
    vouch: Vouch,
    /// [`VOUCH_DEADLINE`] from the accept; `None` once vouched for.
    unvouched: Option<Pin<Box<Sleep>>>,
}

impl Conn {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, connections: &Connections) -> Self {
        let idle = connections.idle;
        Conn {
            stream,
            _slot: slot,
            idle,
            deadline: idle.map(|d| Box::pin(tokio::time::sleep(d))),
            vouch: Vouch::default(),
            unvouched: Some(Box::pin(tokio::time::sleep(connections.vouch))),
        }
    }

    /// [`VOUCH_DEADLINE`] passed without a request with the token.
    fn unvouched(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = &mut self.unvouched else {
            return false;
        };
        if self.vouch.is_set() {
            self.unvouched = None;
            return false;
        }
        deadline.as_mut().poll(cx).is_ready()
    }

    /// Something was read or written: the idle time starts again.
    fn touch(&mut self) {
        if let (Some(idle), Some(deadline)) = (self.idle, &mut self.deadline) {
            deadline.as_mut().reset(tokio::time::Instant::now() + idle);
        }
    }

    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "idle for --client-idle-timeout")
}

fn unvouched_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "no request with the token within the deadline",
    )
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending if this.timed_out(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending if this.unvouched(cx) => Poll::Ready(Err(unvouched_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// gRPC: the connection's [`Vouch`] is in each request's extensions.
impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Vouch;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.vouch.clone()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// An accepted connection whose deadline for the token is `vouch`, and
    /// its peer.
    async fn pair(vouch: Duration) -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Connections {
            slots: Arc::new(Semaphore::new(1)),
            idle: None,
            vouch,
        });
        let mut limited = Limited::new(listener, connections);
        let (accepted, peer) = tokio::join!(limited.next(), TcpStream::connect(addr));
        (accepted.0, peer.unwrap())
    }

    #[tokio::test]
    async fn a_connection_without_a_request_with_the_token_is_closed_at_the_deadline() {
        let (mut conn, _peer) = pair(Duration::from_millis(100)).await;
        let started = tokio::time::Instant::now();
        let mut buf = [0_u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("closed at the deadline, not at the idle timeout");
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_connection_vouched_for_outlives_the_deadline() {
        let (mut conn, mut peer) = pair(Duration::from_millis(100)).await;
        conn.vouch.set();
        let past = tokio::time::Instant::now() + Duration::from_millis(200);
        let mut buf = [0_u8; 8];
        // the read waits across the deadline, then gets what the peer sends
        let (read, wrote) = tokio::join!(conn.read(&mut buf), async {
            tokio::time::sleep_until(past).await;
            peer.write_all(b"x").await
        });
        wrote.unwrap();
        assert_eq!(read.unwrap(), 1);
    }
}
