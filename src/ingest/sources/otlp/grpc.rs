//! OTLP/gRPC (`--otlp-grpc`): `opentelemetry-proto`'s generated
//! `TraceServiceServer` on tonic, gzip accepted, answered as the OTLP
//! specification says: `OK` with `partial_success` naming rejected spans,
//! `INVALID_ARGUMENT` for bad data, `UNAUTHENTICATED` without the token,
//! `RESOURCE_EXHAUSTED` with a `google.rpc.RetryInfo` when tokwatch is
//! behind (and without one for a message over `--otlp-max-body`, on the
//! wire or decompressed: not to be retried), `UNAVAILABLE` while stopping.
//!
//! Before a message is decoded, an interceptor checks the token and takes
//! one of the intake's slots (none free: `RESOURCE_EXHAUSTED` with a retry
//! delay); tonic then decodes the message within the size cap. A message
//! that is not protobuf comes back from tonic's codec as `INTERNAL`; it is
//! answered `INVALID_ARGUMENT` and counted as a malformed request, as over
//! HTTP. A message over the cap is answered `RESOURCE_EXHAUSTED` without a
//! retry delay (tonic says `OUT_OF_RANGE` on the wire, which exporters
//! retry).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tonic::body::Body;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use super::{Endpoint, Export, MAX_IN_FLIGHT, Payload, RETRY_AFTER};

/// A slot held from the interceptor to the end of the export (request
/// extensions must be `Clone`).
#[derive(Clone)]
struct Slot(#[allow(dead_code, reason = "held, not read")] Arc<OwnedSemaphorePermit>);

/// `RESOURCE_EXHAUSTED` with a retry delay (`google.rpc.RetryInfo`): the
/// OTLP exporters retry it after that delay.
fn behind(message: &str) -> Status {
    Status::with_error_details(
        Code::ResourceExhausted,
        message,
        ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
    )
}

/// The `TraceService` implementation: every export goes to the intake.
struct Receiver {
    endpoint: Arc<Endpoint>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let (_, extensions, message) = request.into_parts();
        // Held until the export is done.
        let _slot = extensions.get::<Slot>().cloned();
        let endpoint = &self.endpoint;
        match endpoint
            .intake
            .export(endpoint, Payload::Decoded(message))
            .await
        {
            Export::Accepted { rejected, message } => {
                Ok(Response::new(ExportTraceServiceResponse {
                    partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                        rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
                        error_message: message,
                    }),
                }))
            }
            Export::Malformed(reason) => Err(Status::invalid_argument(reason)),
            Export::Throttled => Err(behind("tokwatch is behind: retry later")),
            Export::Stopping => Err(Status::unavailable("tokwatch is stopping")),
            Export::Failed(reason) => Err(Status::internal(reason)),
        }
    }
}

/// The generated server behind the interceptor, with tonic's decoding
/// failure (`INTERNAL`: not a protobuf message) answered and counted as a
/// malformed request.
#[derive(Clone)]
struct Checked<S> {
    inner: S,
    endpoint: Arc<Endpoint>,
}

impl<S> NamedService for Checked<S> {
    const NAME: &'static str =
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::SERVICE_NAME;
}

impl<S, B> Service<http::Request<Body>> for Checked<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let response = self.inner.call(request);
        let endpoint = self.endpoint.clone();
        Box::pin(async move {
            let response = response.await?;
            let status = Status::from_header_map(response.headers());
            let reason = match status {
                // tonic's codec: not a protobuf message
                Some(s)
                    if s.code() == Code::Internal
                        && s.message().starts_with("failed to decode Protobuf message") =>
                {
                    format!("invalid OTLP protobuf: {}", s.message())
                }
                // over the cap: on the wire tonic says OUT_OF_RANGE, which
                // OTLP exporters would retry for ever; decompressed it says
                // RESOURCE_EXHAUSTED without a retry delay (not retried)
                Some(s)
                    if (s.code() == Code::OutOfRange
                        && s.message().contains("message length too large"))
                        || (s.code() == Code::ResourceExhausted
                            && s.message().starts_with("Error decompressing")) =>
                {
                    endpoint.counters.refuse();
                    let status = Status::resource_exhausted(format!(
                        "the message is over {} bytes (--otlp-max-body), on the wire or decompressed",
                        endpoint.intake.max_body
                    ));
                    return Ok(status.into_http());
                }
                _ => return Ok(response.map(Body::new)),
            };
            let status = match endpoint.intake.malformed(&endpoint, reason).await {
                Export::Throttled => behind("tokwatch is behind: retry later"),
                Export::Stopping => Status::unavailable("tokwatch is stopping"),
                Export::Malformed(reason) | Export::Failed(reason) => {
                    Status::invalid_argument(reason)
                }
                Export::Accepted { .. } => Status::invalid_argument("invalid OTLP protobuf"),
            };
            Ok(status.into_http())
        })
    }
}

/// Serves OTLP/gRPC on `listener` until `shutdown` turns true: then new
/// exports get `UNAVAILABLE`, and what was accepted is on the channel.
pub async fn serve(
    listener: super::conn::Limited,
    endpoint: Endpoint,
    mut shutdown: watch::Receiver<bool>,
) {
    let endpoint = Arc::new(endpoint);
    let intake = endpoint.intake.clone();
    let max = intake.max_body;
    let server = TraceServiceServer::new(Receiver {
        endpoint: endpoint.clone(),
    })
    .accept_compressed(CompressionEncoding::Gzip)
    .send_compressed(CompressionEncoding::Gzip)
    .max_decoding_message_size(max);
    let gate = endpoint.clone();
    let intercepted = tonic::service::interceptor::InterceptedService::new(
        server,
        move |mut request: Request<()>| {
            let token = request
                .metadata()
                .get("authorization")
                .map(tonic::metadata::MetadataValue::as_bytes);
            if !gate.intake.authorized(token) {
                gate.counters.refuse();
                return Err(Status::unauthenticated(
                    "missing or wrong bearer token (--otlp-token)",
                ));
            }
            // The connection is no longer closed for want of the token.
            if let Some(vouch) = request.extensions().get::<super::conn::Vouch>() {
                vouch.set();
            }
            if gate.intake.stopping() {
                gate.counters.refuse();
                return Err(Status::unavailable("tokwatch is stopping"));
            }
            let Some(slot) = gate.intake.try_slot() else {
                gate.counters.throttle();
                return Err(behind("too many requests at once: retry later"));
            };
            request.extensions_mut().insert(Slot(Arc::new(slot)));
            Ok(request)
        },
    );
    let service = Checked {
        inner: intercepted,
        endpoint: endpoint.clone(),
    };
    let name = endpoint.source.name.clone();
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
        intake.stop();
    };
    let incoming = futures_util::stream::unfold(listener, |mut listener| async move {
        let (conn, _) = listener.next().await;
        Some((Ok::<_, std::io::Error>(conn), listener))
    });
    if let Err(e) = tonic::transport::Server::builder()
        // A connection's exports beyond this wait (HTTP/2 flow control);
        // over all connections, the intake's slots bound the rest.
        .concurrency_limit_per_connection(MAX_IN_FLIGHT)
        .timeout(super::http::BODY_DEADLINE)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, stop)
        .await
    {
        tracing::warn!(listener = %name, error = %e, "OTLP/gRPC listener failed");
    }
}
