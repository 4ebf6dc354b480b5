//! OTLP protobuf (`ExportTraceServiceRequest`, as `opentelemetry-proto`'s
//! prost types decode it) read into the [`SpanRecord`]s the OTLP decoder
//! works on, the same as [`super::parse_request`] reads OTLP/JSON: ids as
//! lowercase hex, times, status, attributes (strings borrowed from the
//! request).

use std::borrow::Cow;
use std::fmt::Write as _;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use super::{AttrValue, Attributes, SpanRecord};

/// Lowercase hex of an id's bytes (`None` when empty: no id).
fn hex(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    Some(out)
}

fn attributes(list: &[KeyValue]) -> Attributes<'_> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => AttrValue::Str(Cow::Borrowed(s)),
                Some(any_value::Value::IntValue(n)) => AttrValue::Int(*n),
                Some(any_value::Value::DoubleValue(d)) => AttrValue::Double(*d),
                Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
                _ => AttrValue::Other,
            };
            (Cow::Borrowed(kv.key.as_str()), value)
        })
        .collect()
}

/// The spans of a protobuf export request, and its resources' attributes
/// (`SpanRecord::resource` indexes them).
///
/// # Errors
/// A span without a trace id or a span id (the request is malformed).
pub fn records(
    request: &ExportTraceServiceRequest,
) -> Result<(Vec<SpanRecord<'_>>, Vec<Attributes<'_>>), String> {
    let mut spans = Vec::new();
    let mut resources = Vec::with_capacity(request.resource_spans.len());
    for resource_spans in &request.resource_spans {
        let resource = resources.len();
        resources.push(
            resource_spans
                .resource
                .as_ref()
                .map_or_else(Vec::new, |r| attributes(&r.attributes)),
        );
        for scope in &resource_spans.scope_spans {
            for span in &scope.spans {
                let trace_id = hex(&span.trace_id).ok_or("a span without a traceId")?;
                let span_id = hex(&span.span_id).ok_or("a span without a spanId")?;
                super::id_length(&trace_id, "traceId", 16)?;
                super::id_length(&span_id, "spanId", 8)?;
                if !span.parent_span_id.is_empty() {
                    super::id_length(
                        &hex(&span.parent_span_id).unwrap_or_default(),
                        "parentSpanId",
                        8,
                    )?;
                }
                let nanos = |n: u64| (n != 0).then_some(n);
                spans.push(SpanRecord {
                    trace_id,
                    span_id,
                    parent_span_id: hex(&span.parent_span_id),
                    name: Cow::Borrowed(span.name.as_str()),
                    start_ns: nanos(span.start_time_unix_nano),
                    end_ns: nanos(span.end_time_unix_nano),
                    error: span
                        .status
                        .as_ref()
                        .is_some_and(|s| s.code == StatusCode::Error as i32),
                    attributes: attributes(&span.attributes),
                    resource,
                });
            }
        }
    }
    Ok((spans, resources))
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    use super::*;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    #[test]
    fn ids_times_status_and_attributes_of_every_type_are_read() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(
                        "service.name",
                        any_value::Value::StringValue("bot".into()),
                    )],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        Span {
                            trace_id: vec![
                                0x4b, 0xF9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0xAB,
                            ],
                            span_id: vec![0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1],
                            parent_span_id: vec![0xCA, 0xFE, 0, 0, 0, 0, 0, 2],
                            name: "chat gpt-4o".into(),
                            start_time_unix_nano: 1_700_000_000_000_000_000,
                            end_time_unix_nano: 1_700_000_001_500_000_000,
                            attributes: vec![
                                kv("gen_ai.usage.input_tokens", any_value::Value::IntValue(120)),
                                kv("ratio", any_value::Value::DoubleValue(0.5)),
                                kv("streamed", any_value::Value::BoolValue(true)),
                                kv(
                                    "gen_ai.request.model",
                                    any_value::Value::StringValue("gpt-4o".into()),
                                ),
                                kv("blob", any_value::Value::BytesValue(vec![1, 2])),
                            ],
                            status: Some(Status {
                                code: StatusCode::Error as i32,
                                ..Status::default()
                            }),
                            ..Span::default()
                        },
                        Span {
                            trace_id: vec![1; 16],
                            span_id: vec![2; 8],
                            status: Some(Status {
                                code: StatusCode::Ok as i32,
                                ..Status::default()
                            }),
                            ..Span::default()
                        },
                    ],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let (spans, resources) = records(&request).unwrap();
        assert_eq!(resources.len(), 1);
        assert_eq!(
            resources[0],
            vec![(Cow::Borrowed("service.name"), AttrValue::Str("bot".into()))]
        );
        let chat = &spans[0];
        assert_eq!(chat.trace_id, "4bf9000102030405060708090a0b0cab");
        assert_eq!(chat.span_id, "deadbeef00000001");
        assert_eq!(chat.parent_span_id.as_deref(), Some("cafe000000000002"));
        assert_eq!(chat.name, "chat gpt-4o");
        assert_eq!(chat.start_ns, Some(1_700_000_000_000_000_000));
        assert_eq!(chat.end_ns, Some(1_700_000_001_500_000_000));
        assert!(chat.error);
        assert_eq!(chat.resource, 0);
        let values: Vec<&AttrValue<'_>> = chat.attributes.iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            [
                &AttrValue::Int(120),
                &AttrValue::Double(0.5),
                &AttrValue::Bool(true),
                &AttrValue::Str("gpt-4o".into()),
                &AttrValue::Other,
            ]
        );
        let plain = &spans[1];
        assert_eq!(plain.trace_id, "01".repeat(16));
        assert_eq!(plain.parent_span_id, None, "an empty parent is a root");
        assert_eq!((plain.start_ns, plain.end_ns), (None, None), "0 is no time");
        assert!(!plain.error, "OK is not an error");
    }

    #[test]
    fn a_span_without_ids_makes_the_request_malformed() {
        let request = |trace_id: Vec<u8>, span_id: Vec<u8>| ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id,
                        span_id,
                        ..Span::default()
                    }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        assert_eq!(
            records(&request(vec![], vec![1; 8])).unwrap_err(),
            "a span without a traceId"
        );
        assert_eq!(
            records(&request(vec![1; 16], vec![])).unwrap_err(),
            "a span without a spanId"
        );
        let empty = ExportTraceServiceRequest::default();
        let (spans, resources) = records(&empty).unwrap();
        assert!(spans.is_empty() && resources.is_empty());
    }

    #[test]
    fn ids_of_another_length_are_refused() {
        let request = |trace_id: Vec<u8>, span_id: Vec<u8>, parent_span_id: Vec<u8>| {
            ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![Span {
                            trace_id,
                            span_id,
                            parent_span_id,
                            ..Span::default()
                        }],
                        ..ScopeSpans::default()
                    }],
                    ..ResourceSpans::default()
                }],
            }
        };
        assert!(records(&request(vec![1; 16], vec![2; 8], vec![3; 8])).is_ok());
        assert!(records(&request(vec![1; 16], vec![2; 8], Vec::new())).is_ok());
        for (trace, span, parent) in [
            (vec![1; 4], vec![2; 8], Vec::new()),
            (vec![1; 16], vec![2; 7], Vec::new()),
            (vec![1; 16], vec![2; 8], vec![3; 16]),
        ] {
            let error = records(&request(trace, span, parent)).err().unwrap();
            assert!(error.contains("bytes of hex"), "{error}");
        }
    }
}
