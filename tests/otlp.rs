//! The OTLP receivers through the real binary in `--jsonl` mode: OTLP/HTTP
//! with a hyper client (protobuf and JSON, gzip, the answers the OTLP
//! specification asks for, tokens, size caps, backpressure) and the
//! recording that replays to the same totals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

mod common;

use common::tokwatch::Tokwatch;

/// tokwatch in `--jsonl` mode, snapshots every 50 ms.
struct Live(Tokwatch);

impl Live {
    fn start(args: &[&str]) -> Live {
        Live::start_env(args, &[])
    }

    fn start_env(args: &[&str], env: &[(&str, &Path)]) -> Live {
        let args = [args, &["--jsonl", "--interval", "50ms"]].concat();
        Live(Tokwatch::spawn(&args, env))
    }

    /// Waits for a snapshot that satisfies `ready`.
    fn wait_until(&mut self, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        self.0.wait_for(what, WAIT, |s| {
            if ready(s) {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        })
    }

    /// Waits until the OTLP listeners decoded `n` requests in all (they
    /// are all folded then).
    fn requests(&mut self, n: u64) -> Value {
        self.wait_until(&format!("{n} OTLP requests"), |s| {
            s["ingest"]["sources"].as_array().is_some_and(|sources| {
                sources
                    .iter()
                    .filter_map(|s| s["otlp"]["requests"].as_u64())
                    .sum::<u64>()
                    == n
            })
        })
    }

    fn stderr(&mut self) -> Vec<String> {
        self.0.stderr()
    }

    /// The address an OTLP listener bound (`otlp-http`), as announced.
    fn listening(&mut self, kind: &str) -> String {
        self.listening_all(kind, 1).remove(0)
    }

    /// The addresses of the first `n` listeners of `kind`, as announced.
    fn listening_all(&mut self, kind: &str, n: usize) -> Vec<String> {
        self.0.listening_all(kind, n, WAIT)
    }

    /// Sends SIGTERM and returns the final snapshot.
    fn stop(self) -> Value {
        self.0.stop()
    }

    /// Peak resident memory of the process so far, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.0.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

fn otlp_stats(snapshot: &Value) -> Value {
    snapshot["ingest"]["sources"]
        .as_array()
        .and_then(|sources| sources.iter().find(|s| s["otlp"].is_object()))
        .map(|s| s["otlp"].clone())
        .unwrap_or(Value::Null)
}

// ------------------------------------------------------------------ client

struct Response {
    status: u16,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One HTTP/1.1 request on a connection of its own.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Response {
    runtime().block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("host", addr);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = sender
            .send_request(builder.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Response {
            status,
            headers,
            body,
        }
    })
}

type Headers = Vec<(&'static str, &'static str)>;

const PROTOBUF: (&str, &str) = ("content-type", "application/x-protobuf");
const JSON: (&str, &str) = ("content-type", "application/json");
const GZIP: (&str, &str) = ("content-encoding", "gzip");

fn post(addr: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
    request(addr, "POST", "/v1/traces", headers, body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

// ------------------------------------------------------------------ spans

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

fn id(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// A trace id of 32 hex digits from a small number.
fn trace(n: u64) -> String {
    format!("{n:032x}")
}

fn span_id(n: u64) -> String {
    format!("{n:016x}")
}

/// A `chat` span with `input`/`output` tokens (a hop).
fn chat(trace_hex: &str, span: u64, parent: Option<u64>, input: i64, output: i64) -> Span {
    Span {
        trace_id: id(trace_hex),
        span_id: id(&span_id(span)),
        parent_span_id: parent.map(|p| id(&span_id(p))).unwrap_or_default(),
        name: "chat gpt-4o".into(),
        start_time_unix_nano: 1_764_000_000_000_000_000 + span * 1_000_000_000,
        end_time_unix_nano: 1_764_000_000_500_000_000 + span * 1_000_000_000,
        attributes: vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.provider.name", "openai"),
            text("gen_ai.request.model", "gpt-4o"),
            int("gen_ai.usage.input_tokens", input),
            int("gen_ai.usage.output_tokens", output),
            text("gen_ai.prompt.0.content", "SECRET prompt"),
            text("input.value", "SECRET input"),
        ],
        ..Span::default()
    }
}

/// An `invoke_agent` span naming `agent` in `conversation`, with its own
/// (total) usage when given.
fn invoke_agent(trace_hex: &str, span: u64, agent: &str, usage: Option<(i64, i64)>) -> Span {
    let mut attributes = vec![
        text("gen_ai.operation.name", "invoke_agent"),
        text("gen_ai.agent.name", agent),
        text("gen_ai.conversation.id", &format!("conv-{agent}")),
    ];
    if let Some((input, output)) = usage {
        attributes.push(int("gen_ai.usage.input_tokens", input));
        attributes.push(int("gen_ai.usage.output_tokens", output));
    }
    Span {
        trace_id: id(trace_hex),
        span_id: id(&span_id(span)),
        name: format!("invoke_agent {agent}"),
        start_time_unix_nano: 1_764_000_000_000_000_000,
        end_time_unix_nano: 1_764_000_100_000_000_000,
        attributes,
        ..Span::default()
    }
}

fn export(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "fleet-bot")],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// The same request in the OTLP/JSON encoding (ids as hex, as the
/// specification's JSON mapping for OTLP says).
fn json(request: &ExportTraceServiceRequest) -> Vec<u8> {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let attributes = |list: &[KeyValue]| {
        list.iter()
            .map(|kv| {
                let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => serde_json::json!({"stringValue": s}),
                    Some(any_value::Value::IntValue(n)) => {
                        serde_json::json!({"intValue": n.to_string()})
                    }
                    other => panic!("not used in these tests: {other:?}"),
                };
                serde_json::json!({"key": kv.key, "value": value})
            })
            .collect::<Vec<_>>()
    };
    let resource_spans: Vec<Value> = request
        .resource_spans
        .iter()
        .map(|rs| {
            let spans: Vec<Value> = rs.scope_spans[0]
                .spans
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "traceId": hex(&s.trace_id),
                        "spanId": hex(&s.span_id),
                        "parentSpanId": hex(&s.parent_span_id),
                        "name": s.name,
                        "kind": 1,
                        "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                        "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                        "attributes": attributes(&s.attributes),
                        "status": {},
                    })
                })
                .collect();
            serde_json::json!({
                "resource": {"attributes": attributes(&rs.resource.as_ref().unwrap().attributes)},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "resourceSpans": resource_spans })).unwrap()
}

fn tokens(snapshot: &Value) -> (u64, u64) {
    (
        snapshot["totals"]["input_tokens"].as_u64().unwrap(),
        snapshot["totals"]["output_tokens"].as_u64().unwrap(),
    )
}

// ------------------------------------------------------------------ tests

#[test]
fn protobuf_and_json_gzip_or_not_are_counted_alike() {
    // with a followed file beside it
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("native.jsonl");
    std::fs::write(
        &file,
        "{\"ts\":\"2026-11-28T10:00:00Z\",\"run_id\":\"f\",\"agent\":\"a\",\"model\":\"gpt-4o\",\"input_tokens\":5000,\"output_tokens\":500}\n",
    )
    .unwrap();
    let mut live = Live::start(&["--otlp", "127.0.0.1:0", "--follow", file.to_str().unwrap()]);
    let addr = live.listening("otlp-http");
    let bodies: Vec<(Headers, Vec<u8>)> = vec![
        (
            vec![PROTOBUF],
            export(vec![chat(&trace(1), 1, None, 100, 10)]).encode_to_vec(),
        ),
        (
            vec![PROTOBUF, GZIP],
            gzip(&export(vec![chat(&trace(2), 1, None, 200, 20)]).encode_to_vec()),
        ),
        (
            vec![JSON],
            json(&export(vec![chat(&trace(3), 1, None, 300, 30)])),
        ),
        (
            // a list of codings: gzip, then nothing
            vec![
                ("content-type", "application/json; charset=utf-8"),
                ("content-encoding", "gzip, identity"),
            ],
            gzip(&json(&export(vec![chat(&trace(4), 1, None, 400, 40)]))),
        ),
    ];
    for (headers, body) in bodies {
        let json_answer = headers
            .iter()
            .any(|(_, v)| v.starts_with("application/json"));
        let response = post(&addr, &headers, body);
        assert_eq!(response.status, 200, "{headers:?}");
        if json_answer {
            assert_eq!(response.headers["content-type"], "application/json");
            assert_eq!(response.body, b"{}");
        } else {
            assert_eq!(response.headers["content-type"], "application/x-protobuf");
            let answer = ExportTraceServiceResponse::decode(response.body.as_slice()).unwrap();
            assert_eq!(answer.partial_success, None);
        }
    }
    live.requests(4);
    let snapshot = live.wait_until("the followed file too", |s| s["totals"]["events"] == 5);
    assert_eq!(tokens(&snapshot), (1000 + 5000, 100 + 500));
    let fleet = snapshot["by_agent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "fleet-bot")
        .expect("the resource's service.name is the agent");
    assert_eq!(fleet["events"], 4);
    let stats = otlp_stats(&snapshot);
    assert_eq!(stats["protocol"], "otlp-http");
    assert_eq!(stats["spans_accepted"], 4);
    assert_eq!(stats["spans_rejected"], 0);
    let source = snapshot["ingest"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["otlp"].is_object())
        .unwrap();
    assert_eq!(source["name"], format!("otlp-http:{addr}"));
    assert_eq!(source["lines"], 4, "one line per request");
    assert_eq!(source["formats"]["otlp"], 4);
    live.stop();
}

#[test]
fn spans_of_a_trace_in_several_requests_and_any_order_are_attributed_once() {
    let mut live = Live::start(&["--otlp", "127.0.0.1:0", "--otlp", "127.0.0.1:0"]);
    let addrs = live.listening_all("otlp-http", 2);
    let (first, second) = (&addrs[0], &addrs[1]);
    assert_ne!(first, second);
    // Trace A: the model calls first (protobuf, to the first listener),
    // their invoke_agent span later (JSON, to the second), carrying the
    // total of its calls as its own usage (the double-count trap).
    let a = trace(0xA);
    let calls = export(vec![
        chat(&a, 2, Some(1), 100, 10),
        chat(&a, 3, Some(1), 50, 5),
    ]);
    assert_eq!(post(first, &[PROTOBUF], calls.encode_to_vec()).status, 200);
    let snapshot = live.requests(1);
    assert_eq!(
        snapshot["by_agent"][0]["agent"], "fleet-bot",
        "not known yet"
    );
    let agent = export(vec![invoke_agent(&a, 1, "Planner", Some((150, 15)))]);
    assert_eq!(post(second, &[JSON], json(&agent)).status, 200);
    // Trace B: the agent span with its usage first, its call later.
    let b = trace(0xB);
    let agent_first = export(vec![invoke_agent(&b, 1, "Coder", Some((70, 7)))]);
    assert_eq!(
        post(second, &[PROTOBUF], agent_first.encode_to_vec()).status,
        200
    );
    let snapshot = live.requests(3);
    assert_eq!(
        tokens(&snapshot),
        (150 + 70, 15 + 7),
        "B's agent counts while alone"
    );
    let call = export(vec![chat(&b, 2, Some(1), 70, 7)]);
    assert_eq!(post(first, &[JSON], json(&call)).status, 200);
    let snapshot = live.requests(4);
    assert_eq!(
        tokens(&snapshot),
        (150 + 70, 15 + 7),
        "never on top of the calls"
    );
    assert_eq!(snapshot["totals"]["events"], 3, "three model calls");
    let agents: Vec<(String, u64)> = snapshot["by_agent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["agent"].as_str().unwrap().to_owned(),
                a["events"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        agents,
        [("Planner".to_owned(), 2), ("Coder".to_owned(), 1)],
        "re-attributed to the agent that arrived later"
    );
    let mut runs: Vec<&str> = snapshot["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    runs.sort_unstable();
    assert_eq!(runs, ["conv-Coder", "conv-Planner"]);
    live.stop();
}

#[test]
fn bad_requests_get_the_answers_of_the_specification() {
    let mut live = Live::start(&["--otlp", "127.0.0.1:0", "--otlp-max-body", "65536"]);
    let addr = live.listening("otlp-http");
    // malformed protobuf: 400 with a google.rpc.Status
    let bad = post(
        &addr,
        &[PROTOBUF],
        b"\xff\xff\xff\xff not protobuf".to_vec(),
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.headers["content-type"], "application/x-protobuf");
    let status = tonic_types::Status::decode(bad.body.as_slice()).unwrap();
    assert_eq!(status.code, 3, "INVALID_ARGUMENT");
    assert!(
        status.message.contains("invalid OTLP protobuf"),
        "{}",
        status.message
    );
    // malformed JSON: 400, in JSON
    let bad = post(
        &addr,
        &[JSON],
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"01"}]}]}]}"#
            .to_vec(),
    );
    assert_eq!(bad.status, 400);
    let status: Value = serde_json::from_slice(&bad.body).unwrap();
    assert_eq!(status["code"], 3);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("traceId 'zz' is not hex")
    );
    // wrong content type or encoding: 415
    let wrong = post(&addr, &[("content-type", "text/plain")], b"hello".to_vec());
    assert_eq!(wrong.status, 415);
    assert_eq!(post(&addr, &[], b"hello".to_vec()).status, 415);
    let br = post(
        &addr,
        &[PROTOBUF, ("content-encoding", "br")],
        vec![1, 2, 3],
    );
    assert_eq!(br.status, 415);
    // too large on the wire: 413
    let big = export(vec![Span {
        name: "x".repeat(70_000),
        ..chat(&trace(1), 1, None, 1, 1)
    }]);
    assert_eq!(post(&addr, &[PROTOBUF], big.encode_to_vec()).status, 413);
    // too large once decompressed: 413
    assert_eq!(
        post(&addr, &[PROTOBUF, GZIP], gzip(&big.encode_to_vec())).status,
        413
    );
    // not gzip at all: 400
    assert_eq!(
        post(&addr, &[PROTOBUF, GZIP], b"plain".to_vec()).status,
        400
    );
    // other paths and methods
    assert_eq!(
        request(&addr, "POST", "/v1/logs", &[PROTOBUF], vec![]).status,
        404
    );
    assert_eq!(request(&addr, "GET", "/", &[], vec![]).status, 404);
    let get = request(&addr, "GET", "/v1/traces", &[], vec![]);
    assert_eq!(get.status, 405);
    assert_eq!(get.headers["allow"], "POST");
    // nothing above was counted as telemetry; the two malformed requests
    // are counted as rejected lines, located. (The refusals are counted
    // beside the requests, not through them: a snapshot taken once the two
    // requests were decoded may predate the later refusals.)
    live.requests(2);
    let snapshot = live.wait_until("the six refusals", |s| otlp_stats(s)["refused"] == 6);
    assert_eq!(snapshot["totals"]["events"], 0);
    let stats = otlp_stats(&snapshot);
    assert_eq!(stats["refused"], 6, "415 ×3, 413 ×2, bad gzip");
    assert_eq!(snapshot["ingest"]["malformed"], 2);
    let locations: Vec<&str> = snapshot["ingest"]["malformed_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["location"].as_str().unwrap())
        .collect();
    assert_eq!(
        locations,
        [
            format!("otlp-http:{addr}#request 1"),
            format!("otlp-http:{addr}#request 2")
        ]
    );
    // and the receiver still works
    assert_eq!(
        post(
            &addr,
            &[PROTOBUF],
            export(vec![chat(&trace(9), 1, None, 5, 1)]).encode_to_vec()
        )
        .status,
        200
    );
    live.requests(3);
    live.stop();
}

#[test]
fn a_client_still_sending_a_large_body_reads_the_answer() {
    // Answers given before the body is read (413 by its length, 401, 415)
    // must reach a client still writing it: not a broken pipe.
    let mut live = Live::start(&[
        "--otlp",
        "127.0.0.1:0",
        "--otlp-max-body",
        "1048576",
        "--otlp-token",
        "t",
    ]);
    let addr = live.listening("otlp-http");
    let big = vec![0_u8; 24 << 20];
    let auth = ("authorization", "Bearer t");
    assert_eq!(post(&addr, &[PROTOBUF, auth], big.clone()).status, 413);
    assert_eq!(post(&addr, &[PROTOBUF], big.clone()).status, 401);
    assert_eq!(
        post(&addr, &[("content-type", "text/plain"), auth], big).status,
        415
    );
    live.wait_until("three refusals", |s| otlp_stats(s)["refused"] == 3);
    live.stop();
}

#[test]
fn a_gzip_bomb_gets_413_and_memory_stays_small() {
    let mut live = Live::start(&["--otlp", "127.0.0.1:0", "--otlp-max-body", "4194304"]);
    let addr = live.listening("otlp-http");
    let before = live.peak_rss_kib();
    // 2 GiB of zeros: 200 gzip members of 10 MiB each (~2 MiB on the wire)
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0_u8; 10 << 20]).unwrap();
    let member = encoder.finish().unwrap();
    let bomb: Vec<u8> = member
        .iter()
        .copied()
        .cycle()
        .take(member.len() * 200)
        .collect();
    assert!(bomb.len() < 4 << 20, "{} bytes on the wire", bomb.len());
    let response = post(&addr, &[PROTOBUF, GZIP], bomb);
    assert_eq!(response.status, 413);
    let status = tonic_types::Status::decode(response.body.as_slice()).unwrap();
    assert!(
        status.message.contains("--otlp-max-body"),
        "{}",
        status.message
    );
    let after = live.peak_rss_kib();
    assert!(
        after < before + 64 * 1024,
        "peak memory grew from {before} KiB to {after} KiB"
    );
    live.wait_until("the refusal counted", |s| otlp_stats(s)["refused"] == 1);
    live.stop();
}

#[test]
fn a_token_is_checked_and_required_off_loopback() {
    let mut live = Live::start(&["--otlp", "127.0.0.1:0", "--otlp-token", "s3cret"]);
    let addr = live.listening("otlp-http");
    let body = export(vec![chat(&trace(1), 1, None, 10, 1)]).encode_to_vec();
    let missing = post(&addr, &[PROTOBUF], body.clone());
    assert_eq!(missing.status, 401);
    assert_eq!(missing.headers["www-authenticate"], "Bearer");
    assert_eq!(
        tonic_types::Status::decode(missing.body.as_slice())
            .unwrap()
            .code,
        16
    );
    let wrong = post(
        &addr,
        &[PROTOBUF, ("authorization", "Bearer s3cre")],
        body.clone(),
    );
    assert_eq!(wrong.status, 401);
    let right = post(&addr, &[PROTOBUF, ("authorization", "Bearer s3cret")], body);
    assert_eq!(right.status, 200);
    let snapshot = live.requests(1);
    assert_eq!(otlp_stats(&snapshot)["refused"], 2);
    assert_eq!(snapshot["totals"]["events"], 1);
    live.stop();

    // not loopback, no token: refused at start
    let out = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["--otlp", "0.0.0.0:0", "--jsonl"])
        .env_remove("TOKWATCH_OTLP_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--otlp 0.0.0.0:0 is not a loopback address: pass --otlp-token"),
        "{stderr}"
    );

    // with a token it starts, and demands it
    let mut open = Live::start(&["--otlp", "0.0.0.0:0", "--otlp-token", "t0ken"]);
    let bound = open.listening("otlp-http");
    let port = bound.rsplit_once(':').unwrap().1;
    assert!(bound.starts_with("0.0.0.0:"), "{bound}");
    let local = format!("127.0.0.1:{port}");
    let body = export(vec![chat(&trace(2), 1, None, 10, 1)]).encode_to_vec();
    assert_eq!(post(&local, &[PROTOBUF], body.clone()).status, 401);
    assert_eq!(
        post(&local, &[PROTOBUF, ("authorization", "bearer t0ken")], body).status,
        200
    );
    open.requests(1);
    open.stop();
}

#[test]
fn a_partial_success_names_the_rejected_span_and_counts_the_rest() {
    let mut live = Live::start(&["--otlp", "127.0.0.1:0"]);
    let addr = live.listening("otlp-http");
    let t = trace(7);
    let request = export(vec![
        chat(&t, 1, None, 100, 10),
        chat(&t, 2, None, -3, 10),
        chat(&t, 3, None, 40, 4),
    ]);
    let response = post(&addr, &[PROTOBUF], request.encode_to_vec());
    assert_eq!(response.status, 200);
    let answer = ExportTraceServiceResponse::decode(response.body.as_slice()).unwrap();
    let partial = answer.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains(&format!(
            "span {t}/{}: gen_ai.usage.input_tokens (-3) is negative",
            span_id(2)
        )),
        "{}",
        partial.error_message
    );
    // the same in JSON
    let t2 = trace(8);
    let response = post(
        &addr,
        &[JSON],
        json(&export(vec![
            chat(&t2, 1, None, 1, 20),
            chat(&t2, 2, None, 1, 1),
        ])),
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"{}");
    let reasoning = {
        let mut span = chat(&t2, 3, None, 10, 1);
        span.attributes
            .push(int("gen_ai.usage.reasoning.output_tokens", 5));
        span
    };
    let response = post(&addr, &[JSON], json(&export(vec![reasoning])));
    let answer: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], "1");
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("exceed")
    );
    let snapshot = live.requests(3);
    assert_eq!(tokens(&snapshot), (100 + 40 + 2, 10 + 4 + 21));
    let stats = otlp_stats(&snapshot);
    assert_eq!(stats["spans_accepted"], 4);
    assert_eq!(stats["spans_rejected"], 2);
    assert_eq!(snapshot["ingest"]["malformed"], 2);
    let sample = &snapshot["ingest"]["malformed_samples"][0];
    assert_eq!(sample["location"], format!("otlp-http:{addr}#request 1"));
    assert!(sample["reason"].as_str().unwrap().contains("is negative"));
    live.stop();
}

#[test]
fn what_was_accepted_before_a_stop_is_in_the_last_snapshot() {
    let mut live = Live::start(&["--otlp", "127.0.0.1:0", "--listen", "tcp:127.0.0.1:0"]);
    let addr = live.listening("otlp-http");
    // a socket listener beside it
    let tcp = live
        .stderr()
        .iter()
        .find_map(|l| {
            l.strip_prefix("tokwatch: listening on tcp:")
                .map(str::to_owned)
        })
        .expect("the socket listener");
    let mut stream = std::net::TcpStream::connect(&tcp).unwrap();
    stream
        .write_all(b"{\"run_id\":\"s\",\"agent\":\"a\",\"model\":\"gpt-4o\",\"input_tokens\":1000,\"output_tokens\":100}\n")
        .unwrap();
    drop(stream);
    live.wait_until("the socket's line", |s| s["totals"]["events"] == 1);
    for n in 1..=20 {
        let body = export(vec![chat(&trace(n), 1, None, 10, 1)]).encode_to_vec();
        assert_eq!(post(&addr, &[PROTOBUF], body).status, 200);
    }
    // stopped at once: every request answered 200 is counted
    let last = live.stop();
    assert_eq!(tokens(&last), (1000 + 200, 100 + 20));
    assert_eq!(otlp_stats(&last)["requests"], 20);
}

#[test]
fn connections_are_capped_and_idle_ones_closed() {
    let mut live = Live::start(&[
        "--otlp",
        "127.0.0.1:0",
        "--otlp-max-connections",
        "2",
        "--client-idle-timeout",
        "2s",
    ]);
    let addr = live.listening("otlp-http");
    // two peers that connect and say nothing hold both slots
    let idle: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    // (accepted in the order they connected: the kernel's backlog is FIFO)
    let started = Instant::now();
    let body = export(vec![chat(&trace(1), 1, None, 10, 1)]).encode_to_vec();
    // served once an idle one is closed, not before
    assert_eq!(post(&addr, &[PROTOBUF], body).status, 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "served after {waited:?}"
    );
    for mut stream in idle {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut byte = [0_u8; 1];
        let read = std::io::Read::read(&mut stream, &mut byte);
        assert!(matches!(read, Ok(0)), "closed by tokwatch: {read:?}");
    }
    live.requests(1);
    live.stop();
}

/// Peers without the token cannot hold the connection slots until the
/// idle timeout (15 minutes): a connection none of whose requests passed
/// the token check is closed at a short deadline (1 s here, 10 s by
/// default), and a 401 closes its connection.
#[test]
fn peers_without_the_token_cannot_hold_the_connection_slots() {
    let mut live = Live::start_env(
        &[
            "--otlp",
            "127.0.0.1:0",
            "--otlp-token",
            "t0ken",
            "--otlp-max-connections",
            "2",
        ],
        &[("TOKWATCH_TEST_VOUCH_MS", Path::new("1000"))],
    );
    let addr = live.listening("otlp-http");
    // two peers that connect and say nothing hold both slots
    let idle: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let started = Instant::now();
    let body = export(vec![chat(&trace(1), 1, None, 10, 1)]).encode_to_vec();
    let (tx, rx) = std::sync::mpsc::channel();
    let to = addr.clone();
    std::thread::spawn(move || {
        let _ = tx.send(post(
            &to,
            &[PROTOBUF, ("authorization", "Bearer t0ken")],
            body,
        ));
    });
    // served once a silent peer is closed, long before the idle timeout
    let response = rx.recv_timeout(WAIT).expect("answered within the deadline");
    assert_eq!(response.status, 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "served after {waited:?}"
    );
    for mut stream in idle {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut byte = [0_u8; 1];
        let read = std::io::Read::read(&mut stream, &mut byte);
        assert!(
            matches!(read, Ok(0))
                || read.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "closed by tokwatch"
        );
    }
    // a 401 is the last answer on its connection
    let mut peer = std::net::TcpStream::connect(&addr).unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        peer,
        "POST /v1/traces HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut peer, &mut answer).expect("closed after the answer");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 401"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    live.requests(1);
    live.stop();
}

#[test]
fn a_request_sent_twice_counts_once() {
    let mut live = Live::start(&["--otlp", "127.0.0.1:0"]);
    let addr = live.listening("otlp-http");
    let body = export(vec![
        chat(&trace(3), 1, None, 100, 10),
        chat(&trace(3), 2, None, 200, 20),
    ])
    .encode_to_vec();
    assert_eq!(post(&addr, &[PROTOBUF], body.clone()).status, 200);
    // a retry after a lost response
    assert_eq!(post(&addr, &[PROTOBUF], body).status, 200);
    let snapshot = live.requests(2);
    assert_eq!(tokens(&snapshot), (300, 30));
    assert_eq!(snapshot["totals"]["events"], 2);
    assert_eq!(snapshot["ingest"]["duplicates"], 2);
    live.stop();
}

#[test]
fn backpressure_answers_429_and_the_retry_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let hold = dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let mut live = Live::start_env(
        &["--otlp", "127.0.0.1:0"],
        &[("TOKWATCH_TEST_HOLD_WHILE", hold.as_path())],
    );
    let addr = live.listening("otlp-http");
    let body = |n: u64| export(vec![chat(&trace(n), 1, None, 10, 1)]).encode_to_vec();
    // The aggregator folds nothing: the channel fills, then 429.
    let mut accepted = 0_u64;
    let throttled = loop {
        let response = post(&addr, &[PROTOBUF], body(accepted + 1));
        match response.status {
            200 => accepted += 1,
            429 => break response,
            other => panic!("unexpected {other}"),
        }
        assert!(accepted < 200, "never throttled");
    };
    assert_eq!(throttled.headers["retry-after"], "1");
    let status = tonic_types::Status::decode(throttled.body.as_slice()).unwrap();
    assert_eq!(status.code, 8, "RESOURCE_EXHAUSTED");
    std::fs::remove_file(&hold).unwrap();
    let snapshot = live.requests(accepted);
    assert_eq!(otlp_stats(&snapshot)["throttled"], 1);
    assert_eq!(
        snapshot["totals"]["events"], accepted,
        "nothing of the 429 was counted"
    );
    // the client retries: counted once
    assert_eq!(post(&addr, &[PROTOBUF], body(accepted + 1)).status, 200);
    let snapshot = live.requests(accepted + 1);
    assert_eq!(snapshot["totals"]["events"], accepted + 1);
    assert_eq!(tokens(&snapshot), (10 * (accepted + 1), accepted + 1));
    live.stop();
}

#[test]
fn recorded_requests_replay_to_the_same_totals_without_text() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("otlp.jsonl");
    let mut live = Live::start(&[
        "--otlp",
        "127.0.0.1:0",
        "--record",
        record.to_str().unwrap(),
    ]);
    let addr = live.listening("otlp-http");
    // calls first, their agent later (a re-attribution); an agent's usage
    // first, its call later (a retraction); a rejected span; a malformed
    // request; a duplicate.
    let a = trace(0xA);
    let b = trace(0xB);
    let sends: Vec<(Headers, Vec<u8>)> = vec![
        (
            vec![PROTOBUF],
            export(vec![
                chat(&a, 2, Some(1), 100, 10),
                chat(&a, 3, Some(1), 50, 5),
            ])
            .encode_to_vec(),
        ),
        (
            vec![JSON],
            json(&export(vec![invoke_agent(
                &a,
                1,
                "Planner",
                Some((150, 15)),
            )])),
        ),
        (
            vec![PROTOBUF, GZIP],
            gzip(&export(vec![invoke_agent(&b, 1, "Coder", Some((70, 7)))]).encode_to_vec()),
        ),
        (
            vec![PROTOBUF],
            export(vec![
                chat(&b, 2, Some(1), 70, 7),
                chat(&b, 3, Some(1), -1, 7),
            ])
            .encode_to_vec(),
        ),
        (vec![PROTOBUF], b"\x0a\xff not protobuf".to_vec()),
        (
            vec![PROTOBUF],
            export(vec![chat(&a, 2, Some(1), 100, 10)]).encode_to_vec(),
        ),
    ];
    for (headers, body) in sends {
        let status = post(&addr, &headers, body).status;
        assert!(status == 200 || status == 400, "{status}");
    }
    live.requests(6);
    let last = live.stop();
    assert_eq!(tokens(&last), (220, 22));
    let recorded = std::fs::read_to_string(&record).unwrap();
    assert!(!recorded.contains("SECRET"), "no text on disk: {recorded}");
    assert_eq!(recorded.lines().count(), 5, "one line per accepted request");

    // replayed by --follow
    let mut replay = Live::start(&["--follow", record.to_str().unwrap(), "--exit-after", "1s"]);
    replay.wait_until("the replay", |s| s["live"]["caught_up"] == true);
    let replayed = replay.stop();
    assert_eq!(replayed["totals"], last["totals"]);
    assert_eq!(replayed["by_agent"], last["by_agent"]);
    assert_eq!(replayed["runs"], last["runs"]);

    // and by a one-shot report
    let out = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
        .args(["report", record.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["totals"], last["totals"]);
    assert_eq!(report["by_agent"], last["by_agent"]);
}

#[test]
fn a_request_larger_than_a_line_is_recorded_in_lines_that_replay() {
    // --follow skips a line over --max-line-bytes: a request whose
    // normalized form is longer is recorded as several lines, each within
    // it, and a span that cannot fit alone is rejected (partial_success),
    // never answered 200 and lost on replay.
    const MAX: usize = 1200;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("otlp.jsonl");
    let max = MAX.to_string();
    let mut live = Live::start(&[
        "--otlp",
        "127.0.0.1:0",
        "--record",
        record.to_str().unwrap(),
        "--max-line-bytes",
        &max,
    ]);
    let addr = live.listening("otlp-http");
    let mut spans = Vec::new();
    for t in 0..40_u64 {
        let t = trace(0x100 + t);
        spans.push(invoke_agent(&t, 1, "Planner", None));
        for s in 2..6 {
            spans.push(chat(&t, s, Some(1), 100, 10));
        }
    }
    // an agent whose name alone (cut to 1 KiB) makes a span longer than a line
    let long = trace(0x200);
    spans.push(invoke_agent(&long, 1, &"x".repeat(5000), Some((5, 5))));
    // an agent span rejected for its usage still names its child's agent
    let rejected = trace(0x300);
    spans.push(invoke_agent(&rejected, 1, "Reviewer", Some((-1, 5))));
    spans.push(chat(&rejected, 2, Some(1), 7, 1));
    let response = post(&addr, &[PROTOBUF], export(spans).encode_to_vec());
    assert_eq!(response.status, 200);
    let answer = ExportTraceServiceResponse::decode(response.body.as_slice()).unwrap();
    let partial = answer.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_spans, 2, "{}", partial.error_message);
    assert!(
        partial
            .error_message
            .contains(&format!("over --max-line-bytes {MAX}")),
        "{}",
        partial.error_message
    );
    live.requests(1);
    let last = live.stop();
    assert_eq!(tokens(&last), (40 * 4 * 100 + 7, 40 * 4 * 10 + 1));
    let reviewer = last["by_agent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "Reviewer")
        .unwrap_or_else(|| panic!("the rejected agent's child: {}", last["by_agent"]));
    assert_eq!(reviewer["events"], 1);
    let recorded = std::fs::read_to_string(&record).unwrap();
    assert!(recorded.lines().count() > 1, "split");
    assert!(
        recorded.lines().all(|l| l.len() <= MAX),
        "{:?}",
        recorded.lines().map(str::len).collect::<Vec<_>>()
    );

    let mut replay = Live::start(&[
        "--follow",
        record.to_str().unwrap(),
        "--max-line-bytes",
        &max,
        "--exit-after",
        "1s",
    ]);
    replay.wait_until("the replay", |s| s["live"]["caught_up"] == true);
    let replayed = replay.stop();
    assert_eq!(replayed["totals"], last["totals"]);
    assert_eq!(replayed["by_agent"], last["by_agent"]);
    assert_eq!(replayed["runs"], last["runs"]);
}

// ------------------------------------------------------------------ gRPC

mod grpc {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use prost::bytes::{Buf as _, BufMut as _};
    use tonic::codec::{CompressionEncoding, DecodeBuf, EncodeBuf};
    use tonic::{Code, Status};
    use tonic_types::StatusExt as _;

    use super::*;

    async fn channel(addr: &str) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// One export with the generated client.
    pub fn send(
        addr: &str,
        token: Option<&str>,
        gzip: bool,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, Status> {
        runtime().block_on(async {
            let mut client = TraceServiceClient::new(channel(addr).await)
                .accept_compressed(CompressionEncoding::Gzip);
            if gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            let mut request = tonic::Request::new(request);
            if let Some(token) = token {
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            client
                .export(request)
                .await
                .map(tonic::Response::into_inner)
        })
    }

    /// Bytes as they are, for a message that is not protobuf.
    #[derive(Debug, Clone, Copy, Default)]
    struct Raw;

    impl tonic::codec::Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }

    impl tonic::codec::Encoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl tonic::codec::Decoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
            let mut out = vec![0; src.remaining()];
            src.copy_to_slice(&mut out);
            Ok(Some(out))
        }
    }

    pub fn export_raw(addr: &str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
        runtime().block_on(async {
            let mut grpc = tonic::client::Grpc::new(channel(addr).await);
            grpc.ready().await.unwrap();
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            );
            grpc.unary(tonic::Request::new(body), path, Raw)
                .await
                .map(tonic::Response::into_inner)
        })
    }

    fn source<'s>(snapshot: &'s Value, protocol: &str) -> &'s Value {
        snapshot["ingest"]["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["otlp"]["protocol"] == protocol)
            .unwrap()
    }

    #[test]
    fn grpc_and_http_listeners_share_one_decoder() {
        let mut live = Live::start(&["--otlp-grpc", "127.0.0.1:0", "--otlp", "127.0.0.1:0"]);
        let grpc = live.listening("otlp-grpc");
        let http = live.listening("otlp-http");
        // the calls over gRPC (gzip), their agent over HTTP, later
        let a = trace(0xA);
        let calls = super::export(vec![
            chat(&a, 2, Some(1), 100, 10),
            chat(&a, 3, Some(1), 50, 5),
        ]);
        let answer = send(&grpc, None, true, calls).unwrap();
        assert_eq!(answer.partial_success, None);
        let agent = super::export(vec![invoke_agent(&a, 1, "Planner", Some((150, 15)))]);
        assert_eq!(post(&http, &[PROTOBUF], agent.encode_to_vec()).status, 200);
        // a partial success over gRPC
        let b = trace(0xB);
        let mixed = super::export(vec![chat(&b, 1, None, 7, 1), chat(&b, 2, None, -7, 1)]);
        let answer = send(&grpc, None, false, mixed).unwrap();
        let partial = answer.partial_success.expect("a partial success");
        assert_eq!(partial.rejected_spans, 1);
        assert!(
            partial
                .error_message
                .contains(&format!("span {b}/{}", span_id(2))),
            "{}",
            partial.error_message
        );
        let snapshot = live.requests(3);
        assert_eq!(tokens(&snapshot), (157, 16), "the agent's usage not on top");
        let planner = snapshot["by_agent"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent"] == "Planner")
            .expect("re-attributed across protocols");
        assert_eq!(planner["events"], 2);
        let stats = &source(&snapshot, "otlp-grpc")["otlp"];
        assert_eq!(stats["requests"], 2);
        assert_eq!(stats["spans_accepted"], 3);
        assert_eq!(stats["spans_rejected"], 1);
        assert_eq!(
            source(&snapshot, "otlp-grpc")["name"],
            format!("otlp-grpc:{grpc}")
        );
        assert_eq!(
            snapshot["ingest"]["malformed_samples"][0]["location"],
            format!("otlp-grpc:{grpc}#request 3")
        );
        live.stop();
    }

    /// Connects to one address and counts the connections made.
    #[derive(Clone)]
    struct Counting {
        addr: String,
        made: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl tonic::codegen::Service<tonic::codegen::http::Uri> for Counting {
        type Response = TokioIo<tokio::net::TcpStream>;
        type Error = std::io::Error;
        type Future = std::pin::Pin<
            Box<dyn std::future::Future<Output = std::io::Result<Self::Response>> + Send>,
        >;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: tonic::codegen::http::Uri) -> Self::Future {
            self.made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let addr = self.addr.clone();
            Box::pin(async move { tokio::net::TcpStream::connect(addr).await.map(TokioIo::new) })
        }
    }

    /// A gRPC connection whose export presented the token outlives the
    /// deadline for it (1 s here); one that never did is closed at it.
    #[test]
    fn a_grpc_connection_with_the_token_is_kept_and_one_without_is_closed() {
        let mut live = Live::start_env(
            &["--otlp-grpc", "127.0.0.1:0", "--otlp-token", "s3cret"],
            &[("TOKWATCH_TEST_VOUCH_MS", Path::new("1000"))],
        );
        let addr = live.listening("otlp-grpc");
        let mut silent = std::net::TcpStream::connect(&addr).unwrap();
        let connector = Counting {
            addr: addr.clone(),
            made: std::sync::Arc::default(),
        };
        let made = connector.made.clone();
        let results = runtime().block_on(async {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect_with_connector(connector)
                .await
                .unwrap();
            let mut client = TraceServiceClient::new(channel);
            let export = |n: u64| {
                let mut request =
                    tonic::Request::new(super::export(vec![chat(&trace(n), 1, None, 10, 1)]));
                request
                    .metadata_mut()
                    .insert("authorization", "Bearer s3cret".parse().unwrap());
                request
            };
            let first = client.export(export(1)).await.map(|_| ());
            // past the deadline, on the same connection
            tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(1500))
                .await;
            let second = client.export(export(2)).await.map(|_| ());
            (first, second)
        });
        assert!(results.0.is_ok(), "{results:?}");
        assert!(results.1.is_ok(), "{results:?}");
        assert_eq!(
            made.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one connection, kept"
        );
        // (the server's SETTINGS frame, then the end)
        silent.set_read_timeout(Some(WAIT)).unwrap();
        let read = std::io::Read::read_to_end(&mut silent, &mut Vec::new());
        assert!(
            read.is_ok() || read.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "closed by tokwatch"
        );
        let snapshot = live.requests(2);
        assert_eq!(otlp_stats(&snapshot)["refused"], 0);
        live.stop();
    }

    #[test]
    fn grpc_errors_are_the_codes_of_the_specification() {
        // The gzip bomb below is compressed (256 MiB, a debug build) on the
        // client's one thread, which can hold its request's headers back for
        // longer than the 10 s a connection has to present the token.
        let mut live = Live::start_env(
            &[
                "--otlp-grpc",
                "127.0.0.1:0",
                "--otlp-token",
                "s3cret",
                "--otlp-max-body",
                "4194304",
            ],
            &[("TOKWATCH_TEST_VOUCH_MS", Path::new("120000"))],
        );
        let addr = live.listening("otlp-grpc");
        let ok = || super::export(vec![chat(&trace(1), 1, None, 10, 1)]);
        let missing = send(&addr, None, false, ok()).unwrap_err();
        assert_eq!(missing.code(), Code::Unauthenticated);
        let wrong = send(&addr, Some("s3cre"), false, ok()).unwrap_err();
        assert_eq!(wrong.code(), Code::Unauthenticated);
        // not protobuf: INVALID_ARGUMENT, counted as a malformed request
        let bad = export_raw(&addr, b"\xff\xff\xff not protobuf".to_vec()).unwrap_err();
        assert_eq!(bad.code(), Code::Unauthenticated, "the token comes first");
        // (with the token, through the generated client's metadata)
        let mut no_ids = chat(&trace(2), 1, None, 10, 1);
        no_ids.trace_id.clear();
        let invalid = send(&addr, Some("s3cret"), false, super::export(vec![no_ids])).unwrap_err();
        assert_eq!(invalid.code(), Code::InvalidArgument);
        assert!(
            invalid.message().contains("without a traceId"),
            "{}",
            invalid.message()
        );
        // over the cap on the wire: RESOURCE_EXHAUSTED, no retry delay
        let big = super::export(vec![Span {
            name: "x".repeat(5 << 20),
            ..chat(&trace(3), 1, None, 1, 1)
        }]);
        let too_big = send(&addr, Some("s3cret"), false, big).unwrap_err();
        assert_eq!(too_big.code(), Code::ResourceExhausted, "{too_big:?}");
        assert!(
            too_big.get_details_retry_info().is_none(),
            "not to be retried"
        );
        // a gzip bomb: 256 MiB of one letter, a few hundred KiB on the wire
        let before = live.peak_rss_kib();
        let bomb = super::export(vec![Span {
            name: "a".repeat(256 << 20),
            ..chat(&trace(4), 1, None, 1, 1)
        }]);
        let bombed = send(&addr, Some("s3cret"), true, bomb).unwrap_err();
        assert_eq!(bombed.code(), Code::ResourceExhausted, "{bombed:?}");
        assert!(bombed.get_details_retry_info().is_none());
        let after = live.peak_rss_kib();
        assert!(
            after < before + 64 * 1024,
            "peak memory grew from {before} KiB to {after} KiB"
        );
        assert!(send(&addr, Some("s3cret"), false, ok()).is_ok());
        let snapshot = live.requests(2);
        let stats = otlp_stats(&snapshot);
        assert_eq!(stats["protocol"], "otlp-grpc");
        assert_eq!(
            stats["refused"], 5,
            "2 tokens, the raw message, 2 over the cap"
        );
        assert_eq!(snapshot["totals"]["events"], 1);
        assert_eq!(snapshot["ingest"]["malformed"], 1);
        live.stop();

        // without a token, a message that is not protobuf
        let mut live = Live::start(&["--otlp-grpc", "127.0.0.1:0"]);
        let addr = live.listening("otlp-grpc");
        let bad = export_raw(&addr, b"\xff\xff\xff not protobuf".to_vec()).unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
        assert!(
            bad.message().contains("invalid OTLP protobuf"),
            "{}",
            bad.message()
        );
        let snapshot = live.requests(1);
        assert_eq!(snapshot["ingest"]["malformed"], 1);
        assert_eq!(
            snapshot["ingest"]["malformed_samples"][0]["location"],
            format!("otlp-grpc:{addr}#request 1")
        );
        live.stop();

        // not loopback without a token: refused at start
        let out = Command::new(env!("CARGO_BIN_EXE_tokwatch"))
            .args(["--otlp-grpc", "0.0.0.0:0", "--jsonl"])
            .env_remove("TOKWATCH_OTLP_TOKEN")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("--otlp-grpc 0.0.0.0:0 is not a loopback address: pass --otlp-token")
        );
    }

    #[test]
    fn grpc_backpressure_is_resource_exhausted_with_a_retry_delay() {
        let dir = tempfile::tempdir().unwrap();
        let hold = dir.path().join("hold");
        std::fs::write(&hold, "").unwrap();
        let mut live = Live::start_env(
            &["--otlp-grpc", "127.0.0.1:0"],
            &[("TOKWATCH_TEST_HOLD_WHILE", hold.as_path())],
        );
        let addr = live.listening("otlp-grpc");
        let request = |n: u64| super::export(vec![chat(&trace(n), 1, None, 10, 1)]);
        let mut accepted = 0_u64;
        let throttled = loop {
            match send(&addr, None, false, request(accepted + 1)) {
                Ok(_) => accepted += 1,
                Err(status) => break status,
            }
            assert!(accepted < 200, "never throttled");
        };
        assert_eq!(throttled.code(), Code::ResourceExhausted, "{throttled:?}");
        let retry = throttled.get_details_retry_info().expect("a RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));
        std::fs::remove_file(&hold).unwrap();
        let snapshot = live.requests(accepted);
        assert_eq!(otlp_stats(&snapshot)["throttled"], 1);
        assert_eq!(snapshot["totals"]["events"], accepted);
        assert!(send(&addr, None, false, request(accepted + 1)).is_ok());
        let snapshot = live.requests(accepted + 1);
        assert_eq!(snapshot["totals"]["events"], accepted + 1);
        live.stop();
    }
}
