//! OTLP receivers: `--otlp HOST:PORT` serves OTLP/HTTP (`POST /v1/traces`,
//! protobuf or JSON, gzip), `--otlp-grpc HOST:PORT` OTLP/gRPC
//! (`TraceService/Export`). Every listener hands its requests to one
//! [`Intake`], which owns the one OTLP decoder state: spans of one trace
//! may arrive through any listener, in any order, in several requests.
//!
//! A request's way (docs/live.md § OTLP receivers):
//! 1. refused before its body is read: no or a wrong `--otlp-token` (401 /
//!    `UNAUTHENTICATED`), an unsupported content type or encoding (415), a
//!    declared length over `--otlp-max-body` (413);
//! 2. one of [`MAX_IN_FLIGHT`] slots is taken (waiting at most
//!    [`BACKPRESSURE_WAIT`], else 429): memory stays within about
//!    `MAX_IN_FLIGHT` × (2 × `--otlp-max-body` + its decoded form);
//! 3. the body is read and, when gzip, decompressed through a reader capped
//!    at `--otlp-max-body` (a gzip bomb gets 413, its output is never held);
//! 4. room for one message on the aggregator's bounded channel is reserved,
//!    waiting at most [`BACKPRESSURE_WAIT`]: when there is none the answer
//!    is 429 / `RESOURCE_EXHAUSTED` with a retry delay, and nothing of the
//!    request was decoded or counted (the retry counts once);
//! 5. on a blocking thread: the body is decoded (prost types, or the same
//!    [`parse_request`] the file decoder uses), each span whose usage the
//!    decoder would reject is set apart (`partial_success`), the others are
//!    written as one normalized OTLP/JSON line ([`normalized_line`]: no
//!    text); its bytes are taken from [`MAX_BYTES_IN_FLIGHT`] (none free
//!    within [`BACKPRESSURE_WAIT`]: 429, the shared decoder untouched);
//!    the shared decoder decodes it as request number N
//!    (`otlp-http:127.0.0.1:4318#request N`), and the result is sent with
//!    the reserved room, in decoding order.
//!
//! The same request sent twice (a retry after a lost response) counts once:
//! its spans carry the same call ids (`ingest::dedup`).

pub mod conn;
pub mod grpc;
pub mod http;

use std::io::Read as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit, mpsc};

use crate::ingest::channel::{IngestMsg, OtlpRequest, SourceKind, SourceRef};
use crate::ingest::formats::otlp::normalize::normalized_lines;
use crate::ingest::formats::otlp::{
    Attributes, SpanRecord, check_span, parse_request, proto::records, structure_only,
};
use crate::ingest::formats::{Decoder, DecoderConfig};
use crate::ingest::parsed::ParsedLines;
use crate::types::event::Format;

/// Default `--otlp-max-body`: the largest request body, on the wire and
/// once decompressed (the OpenTelemetry Collector's OTLP/HTTP receiver
/// allows 20 MiB; an SDK's batch of 512 spans is well under 1 MiB).
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// Requests read and decoded at once over every OTLP listener; more wait
/// for a slot (at most [`BACKPRESSURE_WAIT`], then 429).
pub const MAX_IN_FLIGHT: usize = 4;

/// How long a request waits for a slot, or for room on the aggregator's
/// channel, before it is answered 429 / `RESOURCE_EXHAUSTED`.
pub const BACKPRESSURE_WAIT: Duration = Duration::from_secs(1);

/// Bytes of normalized lines on their way to the aggregator, over all OTLP
/// requests: a request whose line does not fit waits for room (at most
/// [`BACKPRESSURE_WAIT`], then 429), so that the channel's 64 messages never
/// hold 64 maximal requests (a protobuf body of spans without text grows
/// several times as a JSON line: hex ids, key names).
pub const MAX_BYTES_IN_FLIGHT: usize = 64 * 1024 * 1024;

/// The retry delay a throttled client is told (`Retry-After`, `RetryInfo`).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Longest list of rejected spans in a `partial_success` message.
const MAX_REJECTED_LISTED: usize = 10;

/// What the OTLP receivers need from the command line.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// `--otlp` addresses (OTLP/HTTP).
    pub http: Vec<String>,
    /// `--otlp-grpc` addresses.
    pub grpc: Vec<String>,
    /// `--otlp-token`: the bearer token clients must send (required when an
    /// address is not loopback).
    pub token: Option<String>,
    /// `--otlp-max-body`.
    pub max_body: usize,
    /// `--otlp-max-connections`: over every OTLP listener.
    pub max_connections: usize,
    /// Tests only (`TOKWATCH_TEST_HOLD_WHILE`, read by `lib.rs`): the
    /// aggregator folds nothing while this file exists, so that a test can
    /// fill the channel and see backpressure deterministically.
    pub hold_aggregator_while: Option<std::path::PathBuf>,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        OtlpSettings {
            http: Vec::new(),
            grpc: Vec::new(),
            token: None,
            max_body: DEFAULT_MAX_BODY,
            max_connections: conn::DEFAULT_MAX_CONNECTIONS,
            hold_aggregator_while: None,
        }
    }
}

impl OtlpSettings {
    #[must_use]
    pub fn any(&self) -> bool {
        !self.http.is_empty() || !self.grpc.is_empty()
    }
}

/// What a listener did that never reaches the aggregator's channel; the
/// aggregator reads them into `OtlpStats`.
#[derive(Debug, Default)]
pub struct OtlpCounters {
    pub throttled: AtomicU64,
    pub refused: AtomicU64,
}

impl OtlpCounters {
    pub fn throttle(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// A listener as the aggregator's statistics know it.
#[derive(Debug, Clone)]
pub struct OtlpEndpointStats {
    /// `otlp-http:127.0.0.1:4318`.
    pub name: Arc<str>,
    /// `otlp-http` or `otlp-grpc`.
    pub protocol: &'static str,
    pub counters: Arc<OtlpCounters>,
}

/// One listener: its source and counters, and the shared intake.
#[derive(Debug)]
pub struct Endpoint {
    pub source: SourceRef,
    pub counters: Arc<OtlpCounters>,
    pub intake: Arc<Intake>,
}

/// A request body as received.
#[derive(Debug)]
pub enum Payload {
    /// OTLP/HTTP `application/x-protobuf`.
    Protobuf(Vec<u8>),
    /// OTLP/HTTP `application/json`.
    Json(Vec<u8>),
    /// OTLP/gRPC: decoded by tonic already.
    Decoded(ExportTraceServiceRequest),
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// Decoded and passed on; `rejected` spans were set apart, `message`
    /// names them (empty when none).
    Accepted { rejected: u64, message: String },
    /// Not a valid request (400 / `INVALID_ARGUMENT`); counted as such.
    Malformed(String),
    /// The aggregator is behind (429 / `RESOURCE_EXHAUSTED`): nothing was
    /// decoded or counted.
    Throttled,
    /// tokwatch is stopping (503 / `UNAVAILABLE`).
    Stopping,
    /// A bug (500 / `INTERNAL`).
    Failed(String),
}

/// Why a gzip body was not decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gunzip {
    /// Over the cap once decompressed.
    TooLarge,
    Invalid(String),
}

/// Decompresses a gzip body (one or more members) through a reader capped
/// at `max` bytes of output: a bomb stops at `max + 1` bytes.
///
/// # Errors
/// See [`Gunzip`].
pub fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, Gunzip> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| Gunzip::Invalid(format!("invalid gzip body: {e}")))?;
    if out.len() > max {
        return Err(Gunzip::TooLarge);
    }
    Ok(out)
}

/// The decoder every OTLP listener shares, and the request numbering.
#[derive(Debug)]
struct State {
    decoder: Decoder,
    requests: u64,
}

/// Every OTLP listener's requests go through this (see the module
/// documentation).
#[derive(Debug)]
pub struct Intake {
    tx: mpsc::Sender<IngestMsg>,
    state: Mutex<State>,
    slots: Arc<Semaphore>,
    /// [`MAX_BYTES_IN_FLIGHT`], one permit a byte.
    bytes: Arc<Semaphore>,
    bytes_max: usize,
    token: Option<String>,
    pub max_body: usize,
    segment_attribute: Option<String>,
    /// `--max-line-bytes`: the longest normalized line (see [`Self::normalize`]).
    max_line_bytes: usize,
    stopping: AtomicBool,
}

impl Intake {
    #[must_use]
    pub fn new(
        tx: mpsc::Sender<IngestMsg>,
        decoders: &DecoderConfig,
        token: Option<String>,
        max_body: usize,
    ) -> Self {
        let config = DecoderConfig {
            forced: Some(Format::Otlp),
            segment_attribute: decoders.segment_attribute.clone(),
            // Spans carry their counts: nothing is counted from text.
            estimator: None,
        };
        Intake {
            tx,
            state: Mutex::new(State {
                decoder: Decoder::new(Arc::new(config), Arc::from("otlp")),
                requests: 0,
            }),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            bytes: Arc::new(Semaphore::new(MAX_BYTES_IN_FLIGHT)),
            bytes_max: MAX_BYTES_IN_FLIGHT,
            token: token.filter(|t| !t.is_empty()),
            max_body,
            segment_attribute: decoders.segment_attribute.clone(),
            max_line_bytes: crate::ingest::sources::files::DEFAULT_MAX_LINE_BYTES,
            stopping: AtomicBool::new(false),
        }
    }

    /// The longest normalized line: `--max-line-bytes`, so that what
    /// `--record` keeps is read back by `--follow` with the same setting.
    #[must_use]
    pub fn with_max_line_bytes(mut self, max_line_bytes: usize) -> Self {
        self.max_line_bytes = max_line_bytes.max(1);
        self
    }

    /// Whether an `authorization` header value lets a request in: any when
    /// there is no token, else `Bearer TOKEN` (compared in constant time).
    #[must_use]
    pub fn authorized(&self, header: Option<&[u8]>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let Some(header) = header else {
            return false;
        };
        let header = header.trim_ascii();
        let Some((scheme, credentials)) = header
            .iter()
            .position(|b| *b == b' ')
            .map(|at| header.split_at(at))
        else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer")
            && constant_time_eq::constant_time_eq(credentials.trim_ascii(), token.as_bytes())
    }

    /// The same intake with another budget of bytes in flight (tests).
    #[must_use]
    pub fn with_bytes_in_flight(mut self, max: usize) -> Self {
        self.bytes = Arc::new(Semaphore::new(max));
        self.bytes_max = max;
        self
    }

    /// New requests are answered 503 / `UNAVAILABLE` from now on.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    #[must_use]
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// One of [`MAX_IN_FLIGHT`] slots for reading and decoding a request,
    /// waiting at most [`BACKPRESSURE_WAIT`]; `None`: answer 429.
    pub async fn slot(&self) -> Option<SemaphorePermit<'_>> {
        tokio::time::timeout(BACKPRESSURE_WAIT, self.slots.acquire())
            .await
            .ok()?
            .ok()
    }

    /// A slot without waiting (gRPC takes it before tonic decodes the
    /// message); `None`: answer `RESOURCE_EXHAUSTED`.
    #[must_use]
    pub fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Room for one message on the aggregator's channel, waiting at most
    /// [`BACKPRESSURE_WAIT`]; else the answer.
    async fn reserve(&self, endpoint: &Endpoint) -> Result<mpsc::OwnedPermit<IngestMsg>, Export> {
        if self.stopping() {
            endpoint.counters.refuse();
            return Err(Export::Stopping);
        }
        match tokio::time::timeout(BACKPRESSURE_WAIT, self.tx.clone().reserve_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The aggregator is gone: stopping.
            Ok(Err(_)) => Err(Export::Stopping),
            Err(_) => {
                endpoint.counters.throttle();
                Err(Export::Throttled)
            }
        }
    }

    /// Decodes and passes on one request (steps 4 and 5 of the module
    /// documentation).
    pub async fn export(self: &Arc<Self>, endpoint: &Endpoint, payload: Payload) -> Export {
        let permit = match self.reserve(endpoint).await {
            Ok(permit) => permit,
            Err(answer) => return answer,
        };
        let intake = self.clone();
        let source = endpoint.source.clone();
        let counters = endpoint.counters.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let decoded = intake.decode(&payload);
            drop(payload);
            // Room for the line among the bytes in flight; the decoder's
            // state is untouched so far, so a request turned away here
            // was not counted either.
            let budget = match &decoded {
                Ok(normal) => {
                    let weight = normal.bytes().clamp(1, intake.bytes_max);
                    let weight = u32::try_from(weight).unwrap_or(u32::MAX);
                    let room = runtime.block_on(tokio::time::timeout(
                        BACKPRESSURE_WAIT,
                        intake.bytes.clone().acquire_many_owned(weight),
                    ));
                    match room {
                        Ok(Ok(budget)) => Some(budget),
                        Ok(Err(_)) => return Export::Stopping,
                        Err(_) => {
                            counters.throttle();
                            return Export::Throttled;
                        }
                    }
                }
                Err(_) => None,
            };
            intake.send(source, decoded, budget, permit)
        })
        .await
        .unwrap_or_else(|e| Export::Failed(format!("decoding the request failed: {e}")))
    }

    /// Counts a request found malformed before it reached the intake (a
    /// gRPC message tonic could not decode), as [`Intake::export`] would.
    pub async fn malformed(&self, endpoint: &Endpoint, reason: String) -> Export {
        match self.reserve(endpoint).await {
            Ok(permit) => self.send(endpoint.source.clone(), Err(reason), None, permit),
            Err(answer) => answer,
        }
    }

    fn decode(&self, payload: &Payload) -> Result<Normal, String> {
        match payload {
            Payload::Json(body) => parse_request(body)
                .map_err(|e| format!("invalid OTLP/JSON: {e}"))
                .map(|(spans, resources)| self.normalize(&spans, &resources)),
            Payload::Protobuf(body) => ExportTraceServiceRequest::decode(body.as_slice())
                .map_err(|e| format!("invalid OTLP protobuf: {e}"))
                .and_then(|request| {
                    records(&request).map(|(spans, resources)| self.normalize(&spans, &resources))
                }),
            Payload::Decoded(request) => {
                records(request).map(|(spans, resources)| self.normalize(&spans, &resources))
            }
        }
    }

    /// Numbers a decoded request, decodes its line and sends the result
    /// with the room reserved for it.
    fn send(
        &self,
        source: SourceRef,
        decoded: Result<Normal, String>,
        budget: Option<OwnedSemaphorePermit>,
        permit: mpsc::OwnedPermit<IngestMsg>,
    ) -> Export {
        // Numbered, decoded and sent in one order: a later request's
        // re-attribution never overtakes the call it replaces.
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.requests += 1;
        let request = state.requests;
        let (msg, export) = match decoded {
            Ok(normal) => {
                let mut lines = ParsedLines::with_capacity(normal.bytes() + normal.lines.len());
                for line in &normal.lines {
                    lines.push_line(&mut state.decoder, request, line.as_bytes());
                }
                let export = Export::Accepted {
                    rejected: normal.rejected.len() as u64,
                    message: rejected_message(&normal.rejected),
                };
                let msg = OtlpRequest {
                    source,
                    request,
                    lines,
                    spans_accepted: normal.accepted,
                    rejected_spans: normal.rejected,
                    malformed: None,
                    budget,
                };
                (msg, export)
            }
            Err(reason) => {
                let msg = OtlpRequest {
                    source,
                    request,
                    lines: ParsedLines::default(),
                    spans_accepted: 0,
                    rejected_spans: Vec::new(),
                    malformed: Some(reason.clone()),
                    budget: None,
                };
                (msg, Export::Malformed(reason))
            }
        };
        permit.send(IngestMsg::Otlp(Box::new(msg)));
        export
    }

    /// Sets apart the spans the decoder would reject, and writes the others
    /// as lines of at most `--max-line-bytes` (what `--record` keeps must
    /// replay: `--follow` skips a longer line). A rejected agent span still
    /// gives its children their agent and conversation: it is kept without
    /// its usage.
    fn normalize(&self, spans: &[SpanRecord<'_>], resources: &[Attributes<'_>]) -> Normal {
        let mut kept = Vec::with_capacity(spans.len());
        let mut structure = Vec::new();
        let mut rejected = Vec::new();
        for span in spans {
            match check_span(span) {
                Ok(()) => kept.push(span),
                Err(reason) => {
                    rejected.push(format!("span {}/{}: {reason}", span.trace_id, span.span_id));
                    structure.extend(structure_only(span));
                }
            }
        }
        let accepted = kept.len();
        kept.extend(structure.iter());
        let (lines, too_long) = normalized_lines(
            &kept,
            resources,
            self.segment_attribute.as_deref(),
            self.max_line_bytes,
        );
        // (a rejected agent span's structure too long to keep is not
        // rejected twice)
        let structure_range = structure.as_ptr_range();
        let too_long: Vec<_> = too_long
            .into_iter()
            .filter(|(span, _)| !structure_range.contains(&std::ptr::from_ref(*span)))
            .collect();
        for (span, bytes) in &too_long {
            rejected.push(format!(
                "span {}/{}: {bytes} bytes once normalized, over --max-line-bytes {} (it could not be recorded and replayed)",
                span.trace_id, span.span_id, self.max_line_bytes
            ));
        }
        Normal {
            lines,
            accepted: accepted.saturating_sub(too_long.len()) as u64,
            rejected,
        }
    }
}

struct Normal {
    /// Each at most `--max-line-bytes`; one unless the request is larger.
    lines: Vec<String>,
    accepted: u64,
    rejected: Vec<String>,
}

impl Normal {
    fn bytes(&self) -> usize {
        self.lines.iter().map(String::len).sum()
    }
}

/// `partial_success.error_message`: how many spans were rejected, and the
/// first few of them with their reasons.
fn rejected_message(rejected: &[String]) -> String {
    if rejected.is_empty() {
        return String::new();
    }
    let mut message = format!(
        "{} span{} rejected: {}",
        rejected.len(),
        if rejected.len() == 1 { "" } else { "s" },
        rejected
            .iter()
            .take(MAX_REJECTED_LISTED)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    if rejected.len() > MAX_REJECTED_LISTED {
        message.push_str(&format!(
            "; and {} more",
            rejected.len() - MAX_REJECTED_LISTED
        ));
    }
    message
}

/// Binds `host_port` for an OTLP listener of `protocol`: loopback, or any
/// address with a token.
///
/// # Errors
/// The address does not resolve, is not loopback and there is no token, or
/// cannot be bound.
pub fn bind(
    protocol: &str,
    host_port: &str,
    token: Option<&str>,
) -> anyhow::Result<(tokio::net::TcpListener, SourceRef)> {
    let addrs: Vec<SocketAddr> = host_port
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("cannot resolve {protocol} address '{host_port}': {e}"))?
        .collect();
    let addr = *addrs
        .first()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {protocol} address '{host_port}'"))?;
    let flag = if protocol == "otlp-grpc" {
        "--otlp-grpc"
    } else {
        "--otlp"
    };
    anyhow::ensure!(
        addrs.iter().all(|a| a.ip().is_loopback()) || token.is_some_and(|t| !t.is_empty()),
        "{flag} {host_port} is not a loopback address: pass --otlp-token so that only clients with the token can send"
    );
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| anyhow::anyhow!("cannot listen on {protocol} {host_port}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| anyhow::anyhow!("cannot listen on {protocol} {host_port}: {e}"))?;
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| anyhow::anyhow!("cannot listen on {protocol} {host_port}: {e}"))?;
    let source = SourceRef {
        name: format!("{protocol}:{local}").into(),
        origin: "otlp".into(),
        kind: SourceKind::Otlp,
        client: None,
    };
    Ok((listener, source))
}

/// Checks an OTLP address argument: `HOST:PORT`.
///
/// # Errors
/// No port.
pub fn parse_addr(text: &str) -> Result<String, String> {
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(text.to_owned())
        }
        _ => Err(format!("'{text}': expected HOST:PORT, e.g. 127.0.0.1:4318")),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn intake(token: Option<&str>) -> Intake {
        let (tx, _rx) = mpsc::channel(1);
        Intake::new(
            tx,
            &DecoderConfig::default(),
            token.map(str::to_owned),
            1024,
        )
    }

    #[test]
    fn the_bearer_token_is_required_when_set() {
        let open = intake(None);
        assert!(open.authorized(None));
        let closed = intake(Some("s3cret"));
        assert!(closed.authorized(Some(b"Bearer s3cret")));
        assert!(closed.authorized(Some(b"bearer  s3cret ")));
        for wrong in [
            &b""[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer s3cre",
            b"Bearer s3cret2",
            b"Basic s3cret",
            b"s3cret",
        ] {
            assert!(!closed.authorized(Some(wrong)), "{wrong:?}");
        }
        assert!(!closed.authorized(None));
    }

    #[test]
    fn gzip_is_decompressed_up_to_the_cap() {
        let gz = |data: &[u8]| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        };
        assert_eq!(gunzip(&gz(b"hello"), 5).unwrap(), b"hello");
        // two members, as `cat a.gz b.gz` makes
        let mut two = gz(b"hel");
        two.extend(gz(b"lo"));
        assert_eq!(gunzip(&two, 5).unwrap(), b"hello");
        assert_eq!(gunzip(&gz(b"hello!"), 5), Err(Gunzip::TooLarge));
        let bomb = gz(&vec![0_u8; 50 << 20]);
        assert!(bomb.len() < 100 << 10, "{} bytes", bomb.len());
        assert_eq!(gunzip(&bomb, 1 << 20), Err(Gunzip::TooLarge));
        assert!(matches!(gunzip(b"not gzip", 5), Err(Gunzip::Invalid(_))));
    }

    fn endpoint(intake: Intake) -> Endpoint {
        Endpoint {
            source: SourceRef {
                name: "otlp-http:127.0.0.1:4318".into(),
                origin: "otlp".into(),
                kind: SourceKind::Otlp,
                client: None,
            },
            counters: Arc::default(),
            intake: Arc::new(intake),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    const REQUEST: &[u8] = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"chat","attributes":[{"key":"gen_ai.usage.input_tokens","value":{"intValue":"5"}},{"key":"gen_ai.prompt.0.content","value":{"stringValue":"SECRET"}}]}]}]}]}"#;

    #[test]
    fn a_request_is_decoded_only_with_room_on_the_channel() {
        runtime().block_on(async {
            let (tx, mut rx) = mpsc::channel(1);
            let endpoint = endpoint(Intake::new(tx, &DecoderConfig::default(), None, 1024));
            let intake = endpoint.intake.clone();
            let first = intake
                .export(&endpoint, Payload::Json(REQUEST.to_vec()))
                .await;
            assert_eq!(
                first,
                Export::Accepted {
                    rejected: 0,
                    message: String::new()
                }
            );
            // the channel is full: throttled, not numbered, not decoded
            let second = intake
                .export(&endpoint, Payload::Json(REQUEST.to_vec()))
                .await;
            assert_eq!(second, Export::Throttled);
            assert_eq!(endpoint.counters.throttled.load(Ordering::Relaxed), 1);
            let Some(IngestMsg::Otlp(request)) = rx.recv().await else {
                panic!("the first request")
            };
            assert_eq!((request.request, request.spans_accepted), (1, 1));
            let mut line = Vec::new();
            request
                .lines
                .try_for_each_line(|l| {
                    line.extend_from_slice(l);
                    Ok::<_, ()>(())
                })
                .unwrap();
            let line = String::from_utf8(line).unwrap();
            assert!(
                line.contains("gen_ai.usage.input_tokens") && !line.contains("SECRET"),
                "{line}"
            );
            // room again: the retry is request 2, counted once
            let retry = intake
                .export(&endpoint, Payload::Json(REQUEST.to_vec()))
                .await;
            assert!(matches!(retry, Export::Accepted { .. }));
            let Some(IngestMsg::Otlp(request)) = rx.recv().await else {
                panic!("the retry")
            };
            assert_eq!(request.request, 2);
        });
    }

    #[test]
    fn lines_in_flight_are_bounded_by_bytes() {
        runtime().block_on(async {
            let (tx, mut rx) = mpsc::channel(8);
            // room for one request's line, not two
            let endpoint = endpoint(
                Intake::new(tx, &DecoderConfig::default(), None, 1024).with_bytes_in_flight(300),
            );
            let intake = endpoint.intake.clone();
            let first = intake
                .export(&endpoint, Payload::Json(REQUEST.to_vec()))
                .await;
            assert!(matches!(first, Export::Accepted { .. }), "{first:?}");
            // the first is not folded yet: no room, though the channel has some
            let second = intake
                .export(&endpoint, Payload::Json(REQUEST.to_vec()))
                .await;
            assert_eq!(second, Export::Throttled);
            assert_eq!(endpoint.counters.throttled.load(Ordering::Relaxed), 1);
            // folded (dropped by the aggregator): room again, and the
            // throttled request was never numbered
            let Some(IngestMsg::Otlp(folded)) = rx.recv().await else {
                panic!("the first request")
            };
            drop(folded);
            let retry = intake
                .export(&endpoint, Payload::Json(REQUEST.to_vec()))
                .await;
            assert!(matches!(retry, Export::Accepted { .. }), "{retry:?}");
            let Some(IngestMsg::Otlp(request)) = rx.recv().await else {
                panic!("the retry")
            };
            assert_eq!(request.request, 2);
        });
    }

    #[test]
    fn a_stopping_intake_answers_unavailable() {
        runtime().block_on(async {
            let (tx, mut rx) = mpsc::channel(4);
            let endpoint = endpoint(Intake::new(tx, &DecoderConfig::default(), None, 1024));
            endpoint.intake.stop();
            let answer = endpoint
                .intake
                .export(&endpoint, Payload::Json(REQUEST.to_vec()))
                .await;
            assert_eq!(answer, Export::Stopping);
            assert_eq!(endpoint.counters.refused.load(Ordering::Relaxed), 1);
            assert!(rx.try_recv().is_err(), "nothing sent");
        });
    }

    #[test]
    fn addresses_need_a_port() {
        assert!(parse_addr("127.0.0.1:4318").is_ok());
        assert!(parse_addr("[::1]:0").is_ok());
        assert!(parse_addr("localhost:4317").is_ok());
        assert!(parse_addr("127.0.0.1").is_err());
        assert!(parse_addr(":4318").is_err());
        assert!(parse_addr("host:port").is_err());
    }

    #[test]
    fn rejected_spans_are_listed_up_to_a_limit() {
        assert_eq!(rejected_message(&[]), "");
        assert_eq!(
            rejected_message(&["span a/b: bad".into()]),
            "1 span rejected: span a/b: bad"
        );
        let many: Vec<String> = (0..12).map(|n| format!("s{n}")).collect();
        let message = rejected_message(&many);
        assert!(
            message.starts_with("12 spans rejected: s0; s1;"),
            "{message}"
        );
        assert!(message.ends_with("s9; and 2 more"), "{message}");
    }
}
