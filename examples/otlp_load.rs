//! Load generator for tokwatch's OTLP receiver (BENCHMARKS.md, "Fleet: OTLP
//! ingest"; docs/fleet.md, "What one tokwatch sustains").
//!
//! Sends GenAI traces over OTLP/HTTP (protobuf, `POST /v1/traces`) or
//! OTLP/gRPC (`TraceService/Export`) at a target rate, with a number of
//! requests in flight, and prints what it sent, what was acknowledged, how
//! often the receiver pushed back (HTTP 429 / 503, gRPC `RESOURCE_EXHAUSTED` /
//! `UNAVAILABLE`, each retried with backoff) and the totals tokwatch must
//! report for the acknowledged spans: calls, every token bucket, cost at the
//! embedded prices (exact picodollars) and unpriced calls.
//!
//! ```sh
//! cargo build --release --example otlp_load
//! target/release/examples/otlp_load --http http://127.0.0.1:4318/v1/traces --traces 20000
//! target/release/examples/otlp_load --grpc http://127.0.0.1:4317 --rate 20000 --duration 30s
//! ```
//!
//! Content is deterministic: trace `i` of run `--run-id R` always has the
//! same ids, agents, models and token counts, so two runs with different ids
//! never share a call and the totals are known in advance. A trace is one
//! `invoke_agent` span, `--chats` `chat` spans under it and one
//! `execute_tool` span, exported children first (as SDKs do: a span is
//! exported when it ends). The spans of all traces form one sequence that is
//! cut into requests of `--spans-per-request`, so a trace often spans two
//! requests, and requests in flight together arrive in any order. Every
//! `invoke_agent` span carries the usage of its model calls (as some
//! instrumentations do), which tokwatch must never add on top of them; the
//! model calls of even traces name their agent and conversation themselves,
//! those of odd traces only through the enclosing `invoke_agent` span.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use prost::Message as _;
use tokio::sync::Mutex;
use tokwatch::pricing::PriceBook;
use tokwatch::types::money::Usd;
use tokwatch::types::usage::Usage;
use tonic_types::StatusExt as _;

#[derive(Parser, Debug, Clone)]
#[command(about = "OTLP load generator for tokwatch (GenAI traces with known totals)")]
struct Args {
    /// OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318/v1/traces (protobuf bodies).
    #[arg(long, conflicts_with = "grpc", required_unless_present_any = ["grpc", "write_json"])]
    http: Option<String>,
    /// OTLP/gRPC endpoint, e.g. http://127.0.0.1:4317.
    #[arg(long)]
    grpc: Option<String>,
    /// Bearer token (sent as `authorization: Bearer TOKEN`).
    #[arg(long, env = "TOKWATCH_OTLP_TOKEN")]
    token: Option<String>,
    /// Traces to send (each is `--chats` + 2 spans); with --duration, the most sent.
    #[arg(long, default_value_t = 20_000)]
    traces: u64,
    /// Stop starting requests after this long (e.g. 30s); requests started are finished.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Target spans per second (0: as fast as the receiver acknowledges).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Requests in flight at once (one connection each).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Spans per export request (512: an SDK batch processor's largest export).
    #[arg(long, default_value_t = 512)]
    spans_per_request: u64,
    /// `chat` spans per trace.
    #[arg(long, default_value_t = 3)]
    chats: u64,
    /// Distinct `service.name`s (machines) the traces come from.
    #[arg(long, default_value_t = 50)]
    hosts: u64,
    /// Gzip request bodies.
    #[arg(long)]
    gzip: bool,
    /// Distinguishes the ids of one run from another's (a call sent twice counts once).
    #[arg(long, default_value_t = 1)]
    run_id: u64,
    /// Give up on a request after this many retries.
    #[arg(long, default_value_t = 50)]
    max_retries: u32,
    /// Send nothing: write the requests to FILE as OTLP/JSON lines (what the
    /// Collector's `file` exporter writes), for `tokwatch report` / `--follow`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["http", "grpc"])]
    write_json: Option<std::path::PathBuf>,
}

/// What the sender saw.
#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    spans_sent: AtomicU64,
    spans_acked: AtomicU64,
    spans_rejected: AtomicU64,
    throttled: AtomicU64,
    /// gRPC `RESOURCE_EXHAUSTED` without a `RetryInfo`: the OTLP spec says
    /// not to retry those; this generator retries them anyway and counts them.
    throttled_without_retry_info: AtomicU64,
    retries: AtomicU64,
    transport_errors: AtomicU64,
    failed_requests: AtomicU64,
}

/// Totals tokwatch must report for the acknowledged spans.
#[derive(Default, Clone)]
struct Expected {
    traces: u64,
    calls: u64,
    usage: Usage,
    cost: Usd,
    unpriced_calls: u64,
    by_model: BTreeMap<&'static str, u64>,
}

const AGENTS: [&str; 6] = [
    "planner",
    "researcher",
    "writer",
    "critic",
    "coder",
    "reviewer",
];
const SEGMENTS: [&str; 4] = ["team-a", "team-b", "team-c", "team-d"];
/// (model, provider). The last one has no price: its calls are unpriced.
const MODELS: [(&str, &str); 5] = [
    ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4", "anthropic"),
    ("o4-mini", "openai"),
    ("gpt-4.1", "openai"),
    ("acme-local-7b", "acme"),
];

/// A small deterministic mix (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// One model call of the workload: span `j` (0-based) of trace `i`.
struct Call {
    model: &'static str,
    provider: &'static str,
    /// Input as OpenTelemetry reports it: cache reads and writes included.
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    reasoning: u64,
}

impl Call {
    fn new(run: u64, i: u64, j: u64) -> Call {
        let h = mix(run ^ mix(i.wrapping_mul(64).wrapping_add(j)));
        let (model, provider) = MODELS[(h % MODELS.len() as u64) as usize];
        let input = 500 + (h >> 8) % 20_000;
        let cache_read = if j == 0 {
            0
        } else {
            input * ((h >> 24) % 90) / 100
        };
        let cache_write = if provider == "anthropic" {
            (input - cache_read) * ((h >> 32) % 50) / 100
        } else {
            0
        };
        let output = 20 + (h >> 40) % 1_500;
        let reasoning = if model == "o4-mini" {
            output * ((h >> 48) % 80) / 100
        } else {
            0
        };
        Call {
            model,
            provider,
            input,
            cache_read,
            cache_write,
            output,
            reasoning,
        }
    }

    fn usage(&self) -> Usage {
        Usage {
            input_uncached: self.input - self.cache_read - self.cache_write,
            cache_read: self.cache_read,
            cache_write_5m: self.cache_write,
            cache_write_1h: 0,
            output: self.output,
            reasoning: self.reasoning,
        }
    }
}

/// The shape of the workload: which span is which.
#[derive(Clone, Copy)]
struct Shape {
    run: u64,
    chats: u64,
    hosts: u64,
    /// Epoch nanoseconds the first trace starts at.
    base_ns: u64,
}

enum Kind {
    Chat(u64),
    Tool,
    Agent,
}

impl Shape {
    fn spans_per_trace(&self) -> u64 {
        self.chats + 2
    }

    /// Span `n` of the sequence: its trace and what it is (children first).
    fn locate(&self, n: u64) -> (u64, Kind) {
        let per = self.spans_per_trace();
        let (i, j) = (n / per, n % per);
        let kind = if j < self.chats {
            Kind::Chat(j)
        } else if j == self.chats {
            Kind::Tool
        } else {
            Kind::Agent
        };
        (i, kind)
    }

    fn trace_id(&self, i: u64) -> Vec<u8> {
        let mut id = Vec::with_capacity(16);
        id.extend_from_slice(&mix(self.run.wrapping_mul(0x1000_0000_0001)).to_be_bytes());
        id.extend_from_slice(&i.to_be_bytes());
        id
    }

    /// Span ids: 1 + the span's place in its trace, under a prefix of the trace.
    fn span_id(&self, i: u64, j: u64) -> Vec<u8> {
        let word = (mix(self.run ^ i) & 0xFFFF_FFFF_FFFF_0000) | (j + 1);
        word.to_be_bytes().to_vec()
    }

    fn agent(&self, i: u64) -> &'static str {
        AGENTS[(mix(self.run.wrapping_add(i)) % AGENTS.len() as u64) as usize]
    }

    fn conversation(&self, i: u64) -> String {
        format!("conv-{}-{}", self.run, i)
    }

    fn host(&self, i: u64) -> u64 {
        i % self.hosts.max(1)
    }

    fn segment(&self, i: u64) -> &'static str {
        SEGMENTS[(self.host(i) % SEGMENTS.len() as u64) as usize]
    }

    fn span(&self, n: u64) -> Span {
        let (i, kind) = self.locate(n);
        let start = self.base_ns + i * 1_000_000;
        let agent = self.agent(i);
        let agent_span = self.span_id(i, self.chats + 1);
        let mut attributes = Vec::new();
        let (name, span_id, parent, kind_code, end) = match kind {
            Kind::Chat(j) => {
                let call = Call::new(self.run, i, j);
                attributes.push(text("gen_ai.operation.name", "chat"));
                attributes.push(text("gen_ai.provider.name", call.provider));
                attributes.push(text("gen_ai.request.model", call.model));
                attributes.push(text("gen_ai.response.model", call.model));
                attributes.push(int("gen_ai.usage.input_tokens", call.input));
                if call.cache_read > 0 {
                    attributes.push(int("gen_ai.usage.cache_read.input_tokens", call.cache_read));
                }
                if call.cache_write > 0 {
                    attributes.push(int(
                        "gen_ai.usage.cache_creation.input_tokens",
                        call.cache_write,
                    ));
                }
                attributes.push(int("gen_ai.usage.output_tokens", call.output));
                if call.reasoning > 0 {
                    attributes.push(int("gen_ai.usage.reasoning.output_tokens", call.reasoning));
                }
                if i % 2 == 0 {
                    attributes.push(text("gen_ai.agent.name", agent));
                    attributes.push(text("gen_ai.conversation.id", &self.conversation(i)));
                }
                let begin = start + 1_000 + j * 200_000;
                (
                    format!("chat {}", call.model),
                    self.span_id(i, j),
                    agent_span.clone(),
                    span::SpanKind::Client,
                    begin + 150_000,
                )
            }
            Kind::Tool => {
                attributes.push(text("gen_ai.operation.name", "execute_tool"));
                attributes.push(text("gen_ai.tool.name", "web_search"));
                (
                    "execute_tool web_search".to_owned(),
                    self.span_id(i, self.chats),
                    agent_span.clone(),
                    span::SpanKind::Internal,
                    start + 900_000,
                )
            }
            Kind::Agent => {
                attributes.push(text("gen_ai.operation.name", "invoke_agent"));
                attributes.push(text("gen_ai.agent.name", agent));
                attributes.push(text("gen_ai.conversation.id", &self.conversation(i)));
                // The usage of the calls it encloses, as some instrumentations
                // put it on the agent span: never to be counted on top.
                let (mut input, mut read, mut output) = (0, 0, 0);
                for j in 0..self.chats {
                    let call = Call::new(self.run, i, j);
                    input += call.input;
                    read += call.cache_read;
                    output += call.output;
                }
                attributes.push(int("gen_ai.usage.input_tokens", input));
                attributes.push(int("gen_ai.usage.cache_read.input_tokens", read));
                attributes.push(int("gen_ai.usage.output_tokens", output));
                (
                    format!("invoke_agent {agent}"),
                    agent_span,
                    Vec::new(),
                    span::SpanKind::Internal,
                    start + 999_000,
                )
            }
        };
        let begin = match kind {
            Kind::Chat(j) => start + 1_000 + j * 200_000,
            _ => start,
        };
        Span {
            trace_id: self.trace_id(i),
            span_id,
            parent_span_id: parent,
            name,
            kind: kind_code as i32,
            start_time_unix_nano: begin,
            end_time_unix_nano: end,
            attributes,
            ..Span::default()
        }
    }

    /// Spans `[from, to)`, grouped by resource (host) as an SDK batch would be.
    fn request(&self, from: u64, to: u64) -> ExportTraceServiceRequest {
        let mut resource_spans: Vec<ResourceSpans> = Vec::new();
        let mut current: Option<u64> = None;
        for n in from..to {
            let (i, _) = self.locate(n);
            let host = self.host(i);
            if current != Some(host) {
                current = Some(host);
                resource_spans.push(ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            text("service.name", &format!("fleet-host-{host:03}")),
                            text("tokwatch.segment", self.segment(i)),
                        ],
                        ..Resource::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "tokwatch.otlp_load".to_owned(),
                            version: "1".to_owned(),
                            ..InstrumentationScope::default()
                        }),
                        spans: Vec::new(),
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                });
            }
            if let Some(scope) = resource_spans
                .last_mut()
                .and_then(|r| r.scope_spans.last_mut())
            {
                scope.spans.push(self.span(n));
            }
        }
        ExportTraceServiceRequest { resource_spans }
    }

    /// Adds the model calls among spans `[from, to)` to `expected`.
    fn expect(&self, prices: &PriceBook, from: u64, to: u64, expected: &mut Expected) {
        for n in from..to {
            match self.locate(n) {
                (i, Kind::Chat(j)) => {
                    let call = Call::new(self.run, i, j);
                    let usage = call.usage();
                    expected.calls += 1;
                    expected.usage = expected.usage.saturating_add(&usage);
                    *expected.by_model.entry(call.model).or_default() += 1;
                    match prices.price(call.model, &usage) {
                        Some(quote) => expected.cost += quote.cost,
                        None => expected.unpriced_calls += 1,
                    }
                }
                (_, Kind::Agent) => expected.traces += 1,
                (_, Kind::Tool) => {}
            }
        }
    }
}

/// A request as OTLP/JSON (the protobuf JSON mapping: camelCase, hex ids,
/// 64-bit integers as strings), one line.
fn request_json(request: &ExportTraceServiceRequest) -> serde_json::Value {
    use serde_json::json;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let attributes = |list: &[KeyValue]| -> Vec<serde_json::Value> {
        list.iter()
            .map(|kv| {
                let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => json!({"stringValue": s}),
                    Some(any_value::Value::IntValue(n)) => json!({"intValue": n.to_string()}),
                    _ => json!({}),
                };
                json!({"key": kv.key, "value": value})
            })
            .collect()
    };
    let resource_spans: Vec<serde_json::Value> = request
        .resource_spans
        .iter()
        .map(|rs| {
            let scope_spans: Vec<serde_json::Value> = rs
                .scope_spans
                .iter()
                .map(|ss| {
                    let spans: Vec<serde_json::Value> = ss
                        .spans
                        .iter()
                        .map(|sp| {
                            let mut span = json!({
                                "traceId": hex(&sp.trace_id),
                                "spanId": hex(&sp.span_id),
                                "name": sp.name,
                                "kind": sp.kind,
                                "startTimeUnixNano": sp.start_time_unix_nano.to_string(),
                                "endTimeUnixNano": sp.end_time_unix_nano.to_string(),
                                "attributes": attributes(&sp.attributes),
                                "status": {},
                            });
                            if !sp.parent_span_id.is_empty() {
                                span["parentSpanId"] = json!(hex(&sp.parent_span_id));
                            }
                            span
                        })
                        .collect();
                    let scope = ss
                        .scope
                        .as_ref()
                        .map_or(json!({}), |s| json!({"name": s.name, "version": s.version}));
                    json!({"scope": scope, "spans": spans})
                })
                .collect();
            let resource = rs.resource.as_ref().map_or(
                json!({}),
                |r| json!({"attributes": attributes(&r.attributes)}),
            );
            json!({"resource": resource, "scopeSpans": scope_spans})
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

/// `--write-json`: the whole workload as OTLP/JSON lines, and its totals.
fn write_json(args: &Args, shape: Shape, path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let prices = PriceBook::embedded();
    let mut expected = Expected::default();
    let total = args.traces * shape.spans_per_trace();
    let per = args.spans_per_request.max(1);
    let mut from = 0;
    while from < total {
        let to = (from + per).min(total);
        serde_json::to_writer(&mut out, &request_json(&shape.request(from, to)))?;
        out.write_all(b"\n")?;
        shape.expect(&prices, from, to, &mut expected);
        from = to;
    }
    out.flush()?;
    println!("{}", expected_json(&expected));
    Ok(())
}

fn expected_json(expected: &Expected) -> serde_json::Value {
    let usage = expected.usage;
    let by_model: serde_json::Map<String, serde_json::Value> = expected
        .by_model
        .iter()
        .map(|(m, n)| ((*m).to_owned(), serde_json::Value::from(*n)))
        .collect();
    serde_json::json!({
        "traces": expected.traces,
        "calls": expected.calls,
        "uncached_input_tokens": usage.input_uncached,
        "cache_read_tokens": usage.cache_read,
        "cache_write_tokens": usage.cache_write_5m + usage.cache_write_1h,
        "output_tokens": usage.output,
        "reasoning_tokens": usage.reasoning,
        "total_tokens": usage.input_total() + usage.output,
        // Exact decimal dollars, as text (a JSON number would go through f64).
        "cost_usd": expected.cost.to_string(),
        "unpriced_calls": expected.unpriced_calls,
        "calls_by_model": by_model,
    })
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

fn int(key: &str, value: u64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(
                i64::try_from(value).unwrap_or(i64::MAX),
            )),
        }),
        ..KeyValue::default()
    }
}

/// How one attempt ended.
enum Outcome {
    /// Accepted; `rejected` spans named in `partial_success`.
    Accepted { rejected: u64 },
    /// Pushed back (429 / 503 / RESOURCE_EXHAUSTED / UNAVAILABLE): retry
    /// after the delay the server gave, if any; `false` when a gRPC
    /// `RESOURCE_EXHAUSTED` came without `RetryInfo`.
    Throttled(Option<Duration>, bool),
    /// The connection failed: reconnect and retry (a call sent twice counts once).
    Transport(String),
    /// Refused for good (400, 401, 413, …).
    Refused(String),
}

/// One OTLP/HTTP connection (keep-alive), reopened after an error.
struct HttpSender {
    host: String,
    authority: String,
    path: String,
    token: Option<String>,
    gzip: bool,
    conn: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl HttpSender {
    fn new(url: &str, token: Option<String>, gzip: bool) -> anyhow::Result<Self> {
        let uri: hyper::Uri = url
            .parse()
            .with_context(|| format!("bad --http URL {url}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("--http takes an http:// URL (TLS belongs to a proxy or Collector in front)");
        }
        let authority = uri
            .authority()
            .context("--http URL has no host:port")?
            .to_string();
        let host = if uri.port().is_some() {
            authority.clone()
        } else {
            format!("{authority}:80")
        };
        let path = uri
            .path_and_query()
            .map_or("/v1/traces".to_owned(), ToString::to_string);
        Ok(HttpSender {
            host,
            authority,
            path,
            token,
            gzip,
            conn: None,
        })
    }

    async fn send(&mut self, body: &Bytes) -> Outcome {
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            match self.connect().await {
                Ok(conn) => self.conn = Some(conn),
                Err(e) => return Outcome::Transport(format!("connect: {e:#}")),
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Outcome::Transport("no connection".to_owned());
        };
        if let Err(e) = conn.ready().await {
            self.conn = None;
            return Outcome::Transport(format!("connection: {e}"));
        }
        let mut request = hyper::Request::post(&self.path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/x-protobuf");
        if self.gzip {
            request = request.header(hyper::header::CONTENT_ENCODING, "gzip");
        }
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match request.body(Full::new(body.clone())) {
            Ok(r) => r,
            Err(e) => return Outcome::Refused(format!("request: {e}")),
        };
        let response = match conn.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                self.conn = None;
                return Outcome::Transport(format!("send: {e}"));
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = match response.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.conn = None;
                return Outcome::Transport(format!("response body: {e}"));
            }
        };
        match status.as_u16() {
            200..=299 => {
                let rejected = ExportTraceServiceResponse::decode(bytes.as_ref())
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0));
                Outcome::Accepted { rejected }
            }
            429 | 502 | 503 | 504 => Outcome::Throttled(retry_after, true),
            code => Outcome::Refused(format!(
                "HTTP {code}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            )),
        }
    }

    async fn connect(
        &self,
    ) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(&self.host).await?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it.
            let _ = conn.await;
        });
        Ok(send)
    }
}

/// One OTLP/gRPC channel (HTTP/2) per sender.
struct GrpcSender {
    client: TraceServiceClient<tonic::transport::Channel>,
    token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl GrpcSender {
    async fn new(url: &str, token: Option<&str>, gzip: bool) -> anyhow::Result<Self> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
            .with_context(|| format!("bad --grpc URL {url}"))?
            .connect()
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        let mut client = TraceServiceClient::new(channel);
        if gzip {
            client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
        }
        let token = match token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .context("the token is not valid header text")?,
            ),
            None => None,
        };
        Ok(GrpcSender { client, token })
    }

    async fn send(&mut self, request: ExportTraceServiceRequest) -> Outcome {
        let mut request = tonic::Request::new(request);
        request.set_timeout(Duration::from_secs(30));
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        match self.client.export(request).await {
            Ok(response) => Outcome::Accepted {
                rejected: response
                    .into_inner()
                    .partial_success
                    .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0)),
            },
            Err(status) => match status.code() {
                tonic::Code::ResourceExhausted | tonic::Code::Unavailable => {
                    let info = status.get_details_retry_info();
                    let signalled = info.is_some() || status.code() == tonic::Code::Unavailable;
                    Outcome::Throttled(info.and_then(|i| i.retry_delay), signalled)
                }
                tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => {
                    Outcome::Transport(format!("{:?}: {}", status.code(), status.message()))
                }
                code => Outcome::Refused(format!("{code:?}: {}", status.message())),
            },
        }
    }
}

enum Sender {
    Http(HttpSender),
    Grpc(GrpcSender),
}

/// Backoff before retry `attempt` (1-based): the server's delay when it gave
/// one, else 50 ms doubling up to 2 s; ±25 % jitter.
fn backoff(attempt: u32, told: Option<Duration>, salt: u64) -> Duration {
    let base = told.unwrap_or_else(|| {
        Duration::from_millis(50u64.saturating_mul(1 << attempt.min(6)).min(2_000))
    });
    let jitter = (mix(salt ^ u64::from(attempt)) % 500) as f64 / 1000.0 + 0.75;
    base.mul_f64(jitter)
}

struct Shared {
    args: Args,
    shape: Shape,
    total_spans: u64,
    next: AtomicU64,
    stop: AtomicBool,
    started: Instant,
    stats: Stats,
    expected: Mutex<Expected>,
    latencies_us: Mutex<Vec<u64>>,
    prices: PriceBook,
    first_error: Mutex<Option<String>>,
}

async fn worker(shared: Arc<Shared>, mut sender: Sender, worker: u64) {
    let per = shared.args.spans_per_request.max(1);
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        if let Some(limit) = shared.args.duration
            && shared.started.elapsed() >= limit
        {
            // Checked before a request is claimed, and every claimed request
            // is sent: the spans sent stay a prefix of the sequence, so no
            // `invoke_agent` span goes out without the calls it encloses.
            shared.stop.store(true, Ordering::Relaxed);
            return;
        }
        let k = shared.next.fetch_add(1, Ordering::Relaxed);
        let from = k * per;
        if from >= shared.total_spans {
            return;
        }
        let to = (from + per).min(shared.total_spans);
        if shared.args.rate > 0 {
            // Request k is due when the spans before it fit the target rate.
            let due = Duration::from_secs_f64(from as f64 / shared.args.rate as f64);
            let now = shared.started.elapsed();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
        let request = shared.shape.request(from, to);
        let mut body = request.encode_to_vec();
        if shared.args.gzip && matches!(sender, Sender::Http(_)) {
            use std::io::Write as _;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            if gz.write_all(&body).is_ok()
                && let Ok(packed) = gz.finish()
            {
                body = packed;
            }
        }
        let body = Bytes::from(body);
        let spans = to - from;
        let mut attempt = 0u32;
        loop {
            shared.stats.requests.fetch_add(1, Ordering::Relaxed);
            shared.stats.spans_sent.fetch_add(spans, Ordering::Relaxed);
            let began = Instant::now();
            let outcome = match &mut sender {
                Sender::Http(s) => s.send(&body).await,
                Sender::Grpc(s) => s.send(request.clone()).await,
            };
            let took = began.elapsed();
            let told = match outcome {
                Outcome::Accepted { rejected } => {
                    shared
                        .latencies_us
                        .lock()
                        .await
                        .push(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                    shared.stats.spans_acked.fetch_add(spans, Ordering::Relaxed);
                    shared
                        .stats
                        .spans_rejected
                        .fetch_add(rejected, Ordering::Relaxed);
                    let mut expected = shared.expected.lock().await;
                    shared.shape.expect(&shared.prices, from, to, &mut expected);
                    break;
                }
                Outcome::Throttled(told, signalled) => {
                    shared.stats.throttled.fetch_add(1, Ordering::Relaxed);
                    if !signalled {
                        shared
                            .stats
                            .throttled_without_retry_info
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    told
                }
                Outcome::Transport(e) => {
                    shared
                        .stats
                        .transport_errors
                        .fetch_add(1, Ordering::Relaxed);
                    shared.first_error.lock().await.get_or_insert(e);
                    None
                }
                Outcome::Refused(e) => {
                    shared.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                    shared.first_error.lock().await.get_or_insert(e);
                    break;
                }
            };
            attempt += 1;
            if attempt > shared.args.max_retries {
                shared.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                shared
                    .first_error
                    .lock()
                    .await
                    .get_or_insert(format!("gave up after {attempt} attempts"));
                break;
            }
            shared.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(backoff(attempt, told, worker ^ k)).await;
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base_ns = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("clock before 1970")?
            .as_nanos(),
    )
    .unwrap_or(0);
    let shape = Shape {
        run: args.run_id,
        chats: args.chats.max(1),
        hosts: args.hosts.max(1),
        base_ns,
    };
    if let Some(path) = &args.write_json {
        return write_json(&args, shape, path);
    }
    let total_spans = args.traces * shape.spans_per_trace();
    let (protocol, endpoint) = match (&args.http, &args.grpc) {
        (Some(url), _) => ("http-protobuf", url.clone()),
        (None, Some(url)) => ("grpc", url.clone()),
        (None, None) => bail!("give --http URL or --grpc URL"),
    };
    let mut senders = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        senders.push(match (&args.http, &args.grpc) {
            (Some(url), _) => Sender::Http(HttpSender::new(url, args.token.clone(), args.gzip)?),
            (None, Some(url)) => {
                Sender::Grpc(GrpcSender::new(url, args.token.as_deref(), args.gzip).await?)
            }
            (None, None) => bail!("give --http URL or --grpc URL"),
        });
    }
    let shared = Arc::new(Shared {
        args: args.clone(),
        shape,
        total_spans,
        next: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        started: Instant::now(),
        stats: Stats::default(),
        expected: Mutex::new(Expected::default()),
        latencies_us: Mutex::new(Vec::new()),
        prices: PriceBook::embedded(),
        first_error: Mutex::new(None),
    });
    let progress = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                let acked = shared.stats.spans_acked.load(Ordering::Relaxed);
                eprintln!(
                    "otlp_load: {:>6.1}s {acked} spans acknowledged ({:.0}/s over the last 5 s), {} throttled",
                    shared.started.elapsed().as_secs_f64(),
                    (acked - last) as f64 / 5.0,
                    shared.stats.throttled.load(Ordering::Relaxed),
                );
                last = acked;
            }
        })
    };
    let mut tasks = Vec::new();
    for (w, sender) in senders.into_iter().enumerate() {
        tasks.push(tokio::spawn(worker(Arc::clone(&shared), sender, w as u64)));
    }
    for task in tasks {
        task.await.context("a sender task failed")?;
    }
    progress.abort();
    let seconds = shared.started.elapsed().as_secs_f64();
    let stats = &shared.stats;
    let expected = shared.expected.lock().await.clone();
    let mut latencies = shared.latencies_us.lock().await.clone();
    latencies.sort_unstable();
    let acked = stats.spans_acked.load(Ordering::Relaxed);
    let first_error = shared.first_error.lock().await.clone();
    let summary = serde_json::json!({
        "protocol": protocol,
        "endpoint": endpoint,
        "run_id": args.run_id,
        "gzip": args.gzip,
        "concurrency": args.concurrency,
        "spans_per_request": args.spans_per_request,
        "target_rate": args.rate,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "requests": stats.requests.load(Ordering::Relaxed),
        "spans_sent": stats.spans_sent.load(Ordering::Relaxed),
        "spans_acked": acked,
        "spans_per_s_acked": (acked as f64 / seconds).round(),
        "spans_rejected": stats.spans_rejected.load(Ordering::Relaxed),
        "throttled": stats.throttled.load(Ordering::Relaxed),
        "throttled_without_retry_info": stats.throttled_without_retry_info.load(Ordering::Relaxed),
        "retries": stats.retries.load(Ordering::Relaxed),
        "transport_errors": stats.transport_errors.load(Ordering::Relaxed),
        "failed_requests": stats.failed_requests.load(Ordering::Relaxed),
        "first_error": first_error,
        "latency_ms": {
            "p50": percentile(&latencies, 0.50),
            "p99": percentile(&latencies, 0.99),
            "max": percentile(&latencies, 1.0),
        },
        "expected": expected_json(&expected),
    });
    println!("{summary}");
    if stats.failed_requests.load(Ordering::Relaxed) > 0 {
        bail!("some requests were refused or given up: see first_error");
    }
    Ok(())
}
