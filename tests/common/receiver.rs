//! A webhook receiver on loopback: answers each POST with the next status of
//! a script (the last one repeated) and keeps what it received.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

/// One POST as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub body: serde_json::Value,
    pub content_type: Option<String>,
}

/// The answers to give, in order: a status and an optional `Retry-After`.
pub type Script = Vec<(u16, Option<&'static str>)>;

#[derive(Clone)]
struct Shared {
    script: Arc<Script>,
    received: Arc<Mutex<Vec<Received>>>,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    /// Listens on 127.0.0.1 (a free port) on a runtime of its own.
    pub fn start(script: Script) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            script: Arc::new(script),
            received: received.clone(),
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", post(hook))
            .with_state(shared);
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            received,
            _runtime: runtime,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn hook(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, HeaderMap) {
    let n = {
        let mut received = shared.received.lock().unwrap();
        received.push(Received {
            at: Instant::now(),
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            content_type: headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        received.len()
    };
    let (status, retry_after) = shared.script[(n - 1).min(shared.script.len() - 1)];
    let mut out = HeaderMap::new();
    if let Some(seconds) = retry_after {
        out.insert("retry-after", seconds.parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), out)
}
