//! OTLP/HTTP (`--otlp`): `POST /v1/traces` on axum, answered as the OTLP
//! specification says: 200 with an `ExportTraceServiceResponse` in the
//! request's encoding (`partial_success` naming rejected spans), 400 for a
//! malformed body, 401 without the token, 404 for other paths, 405 for
//! other methods, 413 for a body over `--otlp-max-body` (on the wire or
//! decompressed), 415 for another content type or encoding, 429 with
//! `Retry-After` when the aggregator is behind, 503 while stopping. Error
//! bodies are a `google.rpc.Status` in the request's encoding (protobuf
//! when it has none). A 401 closes the connection, and a connection
//! without a request that passed the token check is closed
//! [`super::conn::VOUCH_DEADLINE`] after it was accepted.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message as _;
use tokio::sync::watch;

use super::conn::Vouch;
use super::{Endpoint, Export, Gunzip, Payload, RETRY_AFTER, gunzip};

/// How long a request's body may take to arrive (a client that trickles
/// it must not hold one of the few slots for ever).
pub(super) const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// A body answered before it is read (401, 413 by its length, 415, 429 for
/// want of a slot) is read on and thrown away up to this much, so that a
/// client still writing it gets the answer rather than a broken pipe; what
/// is read is never kept.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// google.rpc.Code values.
const INVALID_ARGUMENT: i32 = 3;
const NOT_FOUND: i32 = 5;
const RESOURCE_EXHAUSTED: i32 = 8;
const INTERNAL: i32 = 13;
const UNAVAILABLE: i32 = 14;
const UNAUTHENTICATED: i32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// The body's encoding from `Content-Type` (parameters such as
/// `charset=utf-8` allowed); `None`: unsupported.
fn encoding(headers: &HeaderMap) -> Option<Encoding> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/x-protobuf")
        || essence.eq_ignore_ascii_case("application/protobuf")
    {
        Some(Encoding::Protobuf)
    } else if essence.eq_ignore_ascii_case("application/json") {
        Some(Encoding::Json)
    } else {
        None
    }
}

/// Whether the body is gzip (`Some(true)`), plain (`Some(false)`) or in an
/// encoding tokwatch does not read (`None`). `Content-Encoding` is a list
/// (`gzip, identity`): `identity` tokens change nothing, one `gzip` (or
/// `x-gzip`) is read; gzip twice, or any other coding, is not.
fn gzipped(headers: &HeaderMap) -> Option<bool> {
    let mut gzip = false;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        for token in value.to_str().ok()?.split(',').map(str::trim) {
            if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
                if gzip {
                    return None;
                }
                gzip = true;
            } else if !(token.is_empty() || token.eq_ignore_ascii_case("identity")) {
                return None;
            }
        }
    }
    Some(gzip)
}

/// A `google.rpc.Status` answer.
fn status(http: StatusCode, encoding: Encoding, code: i32, message: &str) -> Response {
    let body = match encoding {
        Encoding::Protobuf => tonic_types::Status {
            code,
            message: message.to_owned(),
            details: Vec::new(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    };
    (
        http,
        [(header::CONTENT_TYPE, encoding.content_type())],
        Body::from(body),
    )
        .into_response()
}

fn with_retry_after(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(RETRY_AFTER.as_secs().max(1)),
    );
    response
}

fn accepted(encoding: Encoding, rejected: u64, message: String) -> Response {
    let body = match encoding {
        Encoding::Protobuf => ExportTraceServiceResponse {
            partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
                error_message: message,
            }),
        }
        .encode_to_vec(),
        Encoding::Json if rejected > 0 => serde_json::json!({
            "partialSuccess": {
                // int64 in the protobuf JSON mapping: a decimal string
                "rejectedSpans": rejected.to_string(),
                "errorMessage": message,
            }
        })
        .to_string()
        .into_bytes(),
        Encoding::Json => b"{}".to_vec(),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        Body::from(body),
    )
        .into_response()
}

/// Reads and throws away what is left of a body, up to [`DRAIN_LIMIT`] and
/// within [`BODY_DEADLINE`] (then the connection closes).
async fn drain<S>(stream: &mut S)
where
    S: futures_util::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin,
{
    let mut seen = 0_usize;
    let _ = tokio::time::timeout(BODY_DEADLINE, async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
}

/// `response`, once the unread `body` is drained.
async fn unread(response: Response, body: Body) -> Response {
    drain(&mut body.into_data_stream()).await;
    response
}

/// Reads a body of at most `max` bytes; `Err`: the answer.
async fn read_body(body: Body, max: usize, encoding: Encoding) -> Result<Vec<u8>, Response> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    let read = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                status(
                    StatusCode::BAD_REQUEST,
                    encoding,
                    INVALID_ARGUMENT,
                    &format!("cannot read the body: {e}"),
                )
            })?;
            if out.len() + chunk.len() > max {
                drain(&mut stream).await;
                return Err(too_large(encoding, max));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(())
    };
    match tokio::time::timeout(BODY_DEADLINE, read).await {
        Ok(Ok(())) => Ok(out),
        Ok(Err(response)) => Err(response),
        Err(_) => Err(status(
            StatusCode::REQUEST_TIMEOUT,
            encoding,
            INVALID_ARGUMENT,
            &format!("the body did not arrive within {BODY_DEADLINE:?}"),
        )),
    }
}

fn too_large(encoding: Encoding, max: usize) -> Response {
    status(
        StatusCode::PAYLOAD_TOO_LARGE,
        encoding,
        INVALID_ARGUMENT,
        &format!("the body is over {max} bytes (--otlp-max-body), on the wire or decompressed"),
    )
}

async fn traces(State(endpoint): State<Arc<Endpoint>>, request: Request) -> Response {
    let intake = endpoint.intake.clone();
    let (parts, body) = request.into_parts();
    // Before anything else: the token. Error bodies are protobuf until the
    // encoding is known.
    let known = encoding(&parts.headers);
    let answer_in = known.unwrap_or(Encoding::Protobuf);
    if !intake.authorized(
        parts
            .headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    ) {
        endpoint.counters.refuse();
        let mut response = status(
            StatusCode::UNAUTHORIZED,
            answer_in,
            UNAUTHENTICATED,
            "missing or wrong bearer token (--otlp-token)",
        );
        let headers = response.headers_mut();
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        // Not kept alive: the slot goes back at once.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        return unread(response, body).await;
    }
    if let Some(ConnectInfo(vouch)) = parts.extensions.get::<ConnectInfo<Vouch>>() {
        vouch.set();
    }
    if intake.stopping() {
        endpoint.counters.refuse();
        return with_retry_after(status(
            StatusCode::SERVICE_UNAVAILABLE,
            answer_in,
            UNAVAILABLE,
            "tokwatch is stopping",
        ));
    }
    let Some(encoding) = known else {
        endpoint.counters.refuse();
        let response = status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Encoding::Protobuf,
            INVALID_ARGUMENT,
            "Content-Type must be application/x-protobuf or application/json",
        );
        return unread(response, body).await;
    };
    let Some(gzip) = gzipped(&parts.headers) else {
        endpoint.counters.refuse();
        let response = status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            encoding,
            INVALID_ARGUMENT,
            "Content-Encoding must be gzip or none",
        );
        return unread(response, body).await;
    };
    let max = intake.max_body;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        endpoint.counters.refuse();
        return unread(too_large(encoding, max), body).await;
    }
    let Some(_slot) = intake.slot().await else {
        endpoint.counters.throttle();
        let response = with_retry_after(status(
            StatusCode::TOO_MANY_REQUESTS,
            encoding,
            RESOURCE_EXHAUSTED,
            "too many requests at once: retry later",
        ));
        return unread(response, body).await;
    };
    let body = match read_body(body, max, encoding).await {
        Ok(body) => body,
        Err(response) => {
            endpoint.counters.refuse();
            return response;
        }
    };
    let body = if gzip {
        match tokio::task::spawn_blocking(move || gunzip(&body, max)).await {
            Ok(Ok(body)) => body,
            Ok(Err(Gunzip::TooLarge)) => {
                endpoint.counters.refuse();
                return too_large(encoding, max);
            }
            Ok(Err(Gunzip::Invalid(reason))) => {
                endpoint.counters.refuse();
                return status(StatusCode::BAD_REQUEST, encoding, INVALID_ARGUMENT, &reason);
            }
            Err(e) => {
                return status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    encoding,
                    INTERNAL,
                    &e.to_string(),
                );
            }
        }
    } else {
        body
    };
    let payload = match encoding {
        Encoding::Protobuf => Payload::Protobuf(body),
        Encoding::Json => Payload::Json(body),
    };
    match intake.export(&endpoint, payload).await {
        Export::Accepted { rejected, message } => accepted(encoding, rejected, message),
        Export::Malformed(reason) => {
            status(StatusCode::BAD_REQUEST, encoding, INVALID_ARGUMENT, &reason)
        }
        Export::Throttled => with_retry_after(status(
            StatusCode::TOO_MANY_REQUESTS,
            encoding,
            RESOURCE_EXHAUSTED,
            "tokwatch is behind: retry later",
        )),
        Export::Stopping => with_retry_after(status(
            StatusCode::SERVICE_UNAVAILABLE,
            encoding,
            UNAVAILABLE,
            "tokwatch is stopping",
        )),
        Export::Failed(reason) => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            encoding,
            INTERNAL,
            &reason,
        ),
    }
}

async fn not_found() -> Response {
    status(
        StatusCode::NOT_FOUND,
        Encoding::Protobuf,
        NOT_FOUND,
        "tokwatch receives OTLP traces at POST /v1/traces only",
    )
}

/// Serves OTLP/HTTP on `listener` until `shutdown` turns true: then new
/// requests get 503, connections close once their request is answered,
/// and what was accepted is already on the channel.
pub async fn serve(
    listener: super::conn::Limited,
    endpoint: Endpoint,
    mut shutdown: watch::Receiver<bool>,
) {
    let endpoint = Arc::new(endpoint);
    let intake = endpoint.intake.clone();
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .fallback(not_found)
        .with_state(endpoint.clone());
    let name = endpoint.source.name.clone();
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
        intake.stop();
    };
    if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<Vouch>())
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(listener = %name, error = %e, "OTLP/HTTP listener failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn content_types_and_encodings() {
        for (value, want) in [
            ("application/x-protobuf", Some(Encoding::Protobuf)),
            ("application/protobuf", Some(Encoding::Protobuf)),
            ("application/json", Some(Encoding::Json)),
            ("Application/JSON; charset=utf-8", Some(Encoding::Json)),
            ("text/plain", None),
            ("application/jsonl", None),
        ] {
            assert_eq!(
                encoding(&headers(&[(header::CONTENT_TYPE, value)])),
                want,
                "{value}"
            );
        }
        assert_eq!(encoding(&HeaderMap::new()), None);
        assert_eq!(gzipped(&HeaderMap::new()), Some(false));
        for (value, want) in [
            ("gzip", Some(true)),
            ("GZIP", Some(true)),
            ("identity", Some(false)),
            ("br", None),
            ("deflate", None),
            ("gzip, identity", Some(true)),
            ("identity,gzip", Some(true)),
            ("identity, identity", Some(false)),
            (" ", Some(false)),
            ("gzip, gzip", None),
            ("gzip, br", None),
        ] {
            assert_eq!(
                gzipped(&headers(&[(header::CONTENT_ENCODING, value)])),
                want,
                "{value}"
            );
        }
    }
}
