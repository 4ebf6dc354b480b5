//! Connections of the OTLP listeners: at most `--otlp-max-connections` at
//! once over all of them (accepting waits while there are that many: the
//! kernel's backlog holds the next ones), each closed once it has read and
//! written nothing for `--client-idle-timeout` (hyper and tonic close
//! neither an idle keep-alive connection nor one that never sends a
//! request).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Default `--otlp-max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// What every OTLP listener shares: the connection slots, the idle time.
#[derive(Debug)]
pub struct Connections {
    slots: Arc<Semaphore>,
    /// `None`: never closed for being idle.
    idle: Option<Duration>,
}

impl Connections {
    #[must_use]
    pub fn new(max: usize, idle: Duration) -> Self {
        Connections {
            slots: Arc::new(Semaphore::new(max.max(1))),
            idle: (!idle.is_zero()).then_some(idle),
        }
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
                    return (Conn::new(stream, slot, self.connections.idle), addr);
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

/// An accepted connection: its slot, and its idle deadline.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle: Option<Duration>,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Conn {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, idle: Option<Duration>) -> Self {
        Conn {
            stream,
            _slot: slot,
            idle,
            deadline: idle.map(|d| Box::pin(tokio::time::sleep(d))),
        }
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

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}
