//! `--alert-webhook URL`: each new anomaly POSTed as JSON, Slack-compatible
//! (`{"text": …}`) with the figures in a `tokwatch` object.
//!
//! The aggregator thread never waits on a webhook: [`AlertSink::push`]
//! puts the anomaly in a bounded queue per URL (when full the oldest is
//! dropped and counted) and returns. One task per URL sends them in order,
//! each with retries: on a connection error, a timeout, a 5xx or a 429
//! (after `Retry-After` seconds when given, else exponential backoff with
//! jitter), never on another 4xx (the request itself is wrong), at most
//! [`RetryPolicy::attempts`] times.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;

use crate::model::anomaly::{Anomaly, Level};

/// Anomalies waiting per URL; past it the oldest is dropped.
pub const QUEUE: usize = 64;

/// How a delivery is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per anomaly, the first included.
    pub attempts: u32,
    /// The wait before the second attempt (doubled each time, jittered).
    pub backoff: Duration,
    /// The longest wait between attempts (`Retry-After` included).
    pub max_backoff: Duration,
    /// Each attempt, connection to answer.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// One URL's queue.
#[derive(Default)]
struct Queue {
    items: Mutex<VecDeque<Arc<Anomaly>>>,
    wake: Notify,
    closed: AtomicBool,
    dropped: AtomicU64,
}

/// Where the aggregator puts new anomalies (cheap to clone, never blocks).
#[derive(Clone, Default)]
pub struct AlertSink {
    queues: Vec<Arc<Queue>>,
}

impl std::fmt::Debug for AlertSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSink")
            .field("urls", &self.queues.len())
            .finish()
    }
}

impl AlertSink {
    /// Queues `anomaly` for every URL.
    pub fn push(&self, anomaly: &Anomaly) {
        let anomaly = Arc::new(anomaly.clone());
        for queue in &self.queues {
            {
                let mut items = queue.items.lock().unwrap_or_else(|e| e.into_inner());
                if items.len() >= QUEUE {
                    items.pop_front();
                    let dropped = queue.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(dropped, "alert webhook queue full: oldest anomaly dropped");
                }
                items.push_back(anomaly.clone());
            }
            queue.wake.notify_one();
        }
    }

    /// Anomalies dropped so far (all URLs).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.queues
            .iter()
            .map(|q| q.dropped.load(Ordering::Relaxed))
            .sum()
    }
}

/// The running senders.
pub struct Webhooks {
    sink: AlertSink,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Webhooks {
    /// One sender task per URL (on the current tokio runtime).
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS roots).
    pub fn start(urls: &[reqwest::Url], policy: RetryPolicy) -> anyhow::Result<Webhooks> {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .user_agent(concat!("tokwatch/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut sink = AlertSink::default();
        let mut tasks = Vec::new();
        for url in urls {
            let queue = Arc::new(Queue::default());
            sink.queues.push(queue.clone());
            tasks.push(tokio::spawn(send_loop(
                client.clone(),
                url.clone(),
                queue,
                policy,
            )));
        }
        Ok(Webhooks { sink, tasks })
    }

    #[must_use]
    pub fn sink(&self) -> AlertSink {
        self.sink.clone()
    }

    /// Lets the senders finish what is queued for at most `grace`, then
    /// ends them.
    pub async fn stop(self, grace: Duration) {
        for queue in &self.sink.queues {
            queue.closed.store(true, Ordering::Relaxed);
            queue.wake.notify_one();
        }
        let deadline = tokio::time::Instant::now() + grace;
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

async fn send_loop(
    client: reqwest::Client,
    url: reqwest::Url,
    queue: Arc<Queue>,
    policy: RetryPolicy,
) {
    loop {
        let next = queue
            .items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        match next {
            Some(anomaly) => {
                let body = match serde_json::to_vec(&payload(&anomaly)) {
                    Ok(body) => body,
                    Err(e) => {
                        tracing::error!(error = %e, "alert webhook: cannot serialize");
                        continue;
                    }
                };
                deliver(&client, &url, body, policy).await;
            }
            None if queue.closed.load(Ordering::Relaxed) => return,
            // A push between the pop and here stored a permit: no wake-up lost.
            None => queue.wake.notified().await,
        }
    }
}

/// What one attempt came to.
enum Outcome {
    Delivered,
    /// Worth another attempt, after this long if the server said.
    Retry(Option<Duration>),
    GiveUp,
}

/// Sends one body, retrying by `policy`; returns the attempts made.
async fn deliver(
    client: &reqwest::Client,
    url: &reqwest::Url,
    body: Vec<u8>,
    policy: RetryPolicy,
) -> u32 {
    // The URL's path and query are secrets for Slack: logs name the host.
    let host = url.host_str().unwrap_or("?").to_owned();
    for attempt in 1..=policy.attempts.max(1) {
        let sent = client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let outcome = match sent {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    Outcome::Delivered
                } else if status.is_server_error() || status.as_u16() == 429 {
                    tracing::warn!(%host, %status, attempt, "alert webhook: will retry");
                    Outcome::Retry(retry_after(&response))
                } else {
                    tracing::error!(%host, %status, "alert webhook refused the alert");
                    Outcome::GiveUp
                }
            }
            Err(e) => {
                let e = e.without_url();
                tracing::warn!(%host, error = %e, attempt, "alert webhook: cannot send, will retry");
                Outcome::Retry(None)
            }
        };
        match outcome {
            Outcome::Delivered => {
                tracing::info!(%host, attempt, "alert webhook delivered");
                return attempt;
            }
            Outcome::GiveUp => return attempt,
            Outcome::Retry(_) if attempt == policy.attempts => {
                tracing::error!(%host, attempts = attempt, "alert webhook: giving up");
                return attempt;
            }
            Outcome::Retry(after) => {
                let wait = after
                    .unwrap_or_else(|| backoff(policy, attempt))
                    .min(policy.max_backoff);
                tokio::time::sleep(wait).await;
            }
        }
    }
    policy.attempts
}

/// `Retry-After` in seconds (an HTTP date is not read: backoff instead).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The wait after failed attempt `n` (1-based): `backoff × 2^(n−1)`, with
/// jitter taking it to between half and all of that (senders that failed
/// together do not retry together).
fn backoff(policy: RetryPolicy, n: u32) -> Duration {
    let full = policy
        .backoff
        .saturating_mul(1_u32 << (n - 1).min(16))
        .min(policy.max_backoff);
    full.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

/// The JSON POSTed.
#[derive(Serialize)]
pub struct Payload<'a> {
    /// Slack's message text: the sentence, with `&`, `<`, `>` escaped as
    /// Slack asks (an agent named `<!channel>` pings nobody).
    pub text: String,
    pub tokwatch: Body<'a>,
}

/// The figures, for receivers other than Slack.
#[derive(Serialize)]
pub struct Body<'a> {
    pub kind: &'static str,
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    pub at_ms: i64,
    pub subject: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hop: Option<u32>,
    pub observed: Level,
    pub expected: Level,
    pub unit: &'static str,
    pub z: f64,
    pub message: &'a str,
}

/// The payload for `anomaly`.
#[must_use]
pub fn payload(anomaly: &Anomaly) -> Payload<'_> {
    let at = chrono::DateTime::from_timestamp_millis(anomaly.at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    Payload {
        text: format!("tokwatch: {}", slack_escape(&anomaly.message)),
        tokwatch: Body {
            kind: anomaly.kind.name(),
            at,
            at_ms: anomaly.at_ms,
            subject: &anomaly.subject,
            hop: anomaly.hop,
            observed: anomaly.observed,
            expected: anomaly.expected,
            unit: anomaly.observed.unit(),
            // Two decimals are plenty for a person; NaN never (spreads are
            // never zero), but JSON has no NaN either way.
            z: if anomaly.z.is_finite() {
                (anomaly.z * 100.0).round() / 100.0
            } else {
                0.0
            },
            message: &anomaly.message,
        },
    }
}

fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests;
