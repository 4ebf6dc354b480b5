//! The `GET /metrics` server (axum, HTTP/1): each scrape asks the aggregator
//! thread for a [`MetricsView`] of that moment ([`MetricsRequest`]), renders
//! it off the runtime's workers and answers with the text format.
//!
//! Loopback only by default: any other address needs `--metrics-token`
//! (refused at start otherwise). With a token, every request must carry
//! `Authorization: Bearer TOKEN` (compared in constant time) or gets 401;
//! other paths get 404, other methods 405.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{mpsc, oneshot, watch};

use super::{BudgetGauge, CONTENT_TYPE, MetricsView, render};

/// A scrape's request to the aggregator thread: the view at `now_ms`
/// (wall clock, epoch milliseconds: the burn rate's reference).
#[derive(Debug)]
pub struct MetricsRequest {
    pub now_ms: i64,
    pub reply: oneshot::Sender<MetricsView>,
}

/// What the control links report (`--control`), merged into each scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeBoard {
    /// Every runtime, by address: whether its link is connected.
    pub runtimes: Vec<(Arc<str>, bool)>,
    pub budgets: Vec<BudgetGauge>,
}

/// How long a scrape waits for the aggregator thread before a 503.
pub const VIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the metrics server does not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("--metrics '{0}': expected HOST:PORT (127.0.0.1:9464, [::1]:9464, localhost:9464)")]
    BadAddress(String),
    #[error(
        "--metrics {0} is not a loopback address: pass --metrics-token (or TOKWATCH_METRICS_TOKEN) so that only holders of the token can read the metrics"
    )]
    TokenRequired(SocketAddr),
    #[error("--metrics-token is empty")]
    EmptyToken,
    #[error("cannot listen on {0} for --metrics: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// Parses `--metrics HOST:PORT` (an IP address, or `localhost`).
///
/// # Errors
/// Not an address with a port.
pub fn parse_addr(text: &str) -> Result<SocketAddr, MetricsError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match text.rsplit_once(':') {
        Some(("localhost", port)) => port
            .parse::<u16>()
            .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
            .map_err(|_| MetricsError::BadAddress(text.to_owned())),
        _ => Err(MetricsError::BadAddress(text.to_owned())),
    }
}

/// Whether serving on `addr` with `token` is allowed: loopback, or a token.
///
/// # Errors
/// A non-loopback address without a token, or an empty token.
pub fn check(addr: SocketAddr, token: Option<&str>) -> Result<(), MetricsError> {
    match token {
        Some("") => Err(MetricsError::EmptyToken),
        None if !addr.ip().is_loopback() => Err(MetricsError::TokenRequired(addr)),
        _ => Ok(()),
    }
}

/// A running metrics server.
pub struct MetricsServer {
    /// Where it listens (the port chosen when 0 was asked).
    pub local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Stops accepting and waits (at most a second) for scrapes in flight.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.task).await;
        self.task.abort();
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    token: Option<Arc<str>>,
    requests: mpsc::Sender<MetricsRequest>,
    board: Option<watch::Receiver<Arc<RuntimeBoard>>>,
}

/// Binds `addr` and serves `GET /metrics` on the current tokio runtime
/// (must be called inside one).
///
/// # Errors
/// [`check`] refuses, or the address cannot be bound.
pub fn start(
    addr: SocketAddr,
    token: Option<String>,
    requests: mpsc::Sender<MetricsRequest>,
    board: Option<watch::Receiver<Arc<RuntimeBoard>>>,
) -> Result<MetricsServer, MetricsError> {
    check(addr, token.as_deref())?;
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|e| MetricsError::Bind(addr, e))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| MetricsError::Bind(addr, e))?;
    let shared = Shared {
        token: token.map(Arc::from),
        requests,
        board,
    };
    let app = Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: the metrics are at /metrics\n",
            )
        })
        .layer(middleware::from_fn_with_state(shared.clone(), authorize))
        .with_state(shared);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the metrics server stopped");
        }
    });
    Ok(MetricsServer {
        local_addr,
        shutdown: Some(tx),
        task,
    })
}

/// With a token, every request must present it.
async fn authorize(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    if let Some(token) = &shared.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .map(<[u8]>::trim_ascii);
        let ok = presented.is_some_and(|p| constant_time_eq::constant_time_eq(p, token.as_bytes()));
        if !ok {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                "a bearer token is required (--metrics-token)\n",
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tokwatch\""),
            );
            return response;
        }
    }
    next.run(request).await
}

async fn scrape(State(shared): State<Shared>) -> Response {
    let (reply, view) = oneshot::channel();
    let request = MetricsRequest {
        now_ms: chrono::Utc::now().timestamp_millis(),
        reply,
    };
    let view = tokio::time::timeout(VIEW_TIMEOUT, async {
        shared.requests.send(request).await.ok()?;
        view.await.ok()
    })
    .await
    .ok()
    .flatten();
    let Some(mut view) = view else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the aggregator did not answer (stopping, or behind)\n",
        )
            .into_response();
    };
    if let Some(board) = &shared.board {
        let board = board.borrow().clone();
        view.runtimes.clone_from(&board.runtimes);
        view.budgets.clone_from(&board.budgets);
    }
    match tokio::task::spawn_blocking(move || render(&view)).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response(),
    }
}
