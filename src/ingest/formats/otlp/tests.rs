//! OTLP/JSON GenAI spans: the formats.md §5.3 example, nesting in any order
//! and across requests, deprecated names, and the double-count trap (§8.8).

use crate::ingest::formats::DecoderConfig;
use crate::ingest::formats::tests::{report, report_with};
use crate::types::Usd;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn attr(key: &str, value: &str) -> String {
    format!(r#"{{"key":"{key}","value":{value}}}"#)
}

fn s(text: &str) -> String {
    format!(r#"{{"stringValue":"{text}"}}"#)
}

fn int(n: u64) -> String {
    format!(r#"{{"intValue":"{n}"}}"#)
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    name: &str,
    start_s: u64,
    attrs: &[String],
) -> String {
    let parent = parent.map_or(String::new(), |p| format!(r#""parentSpanId":"{p}","#));
    format!(
        r#"{{"traceId":"{trace}","spanId":"{id}",{parent}"name":"{name}","kind":1,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[{}],"status":{{}}}}"#,
        start_s * 1_000_000_000,
        start_s * 1_000_000_000 + 1_800_000_000,
        attrs.join(",")
    )
}

fn request(spans: &[String]) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{},{}]}},"scopeSpans":[{{"scope":{{"name":"opentelemetry.instrumentation.openai_v2","version":"2.1b0"}},"spans":[{}]}}]}}]}}"#,
        attr("service.name", &s("support-bot")),
        attr("enduser.id", &s("user-42")),
        spans.join(",")
    )
}

fn agent_span(usage: Option<(u64, u64)>) -> String {
    let mut attrs = vec![
        attr("gen_ai.operation.name", &s("invoke_agent")),
        attr("gen_ai.provider.name", &s("openai")),
        attr("gen_ai.agent.name", &s("Triage")),
        attr(
            "gen_ai.conversation.id",
            &s("conv_5j66UpCpwteGg4YSxUnt7lPY"),
        ),
    ];
    if let Some((input, output)) = usage {
        attrs.push(attr("gen_ai.usage.input_tokens", &int(input)));
        attrs.push(attr("gen_ai.usage.output_tokens", &int(output)));
    }
    span(
        TRACE,
        "a1b2c3d4e5f60718",
        None,
        "invoke_agent Triage",
        1_760_000_000,
        &attrs,
    )
}

fn chat_span(id: &str) -> String {
    span(
        TRACE,
        id,
        Some("a1b2c3d4e5f60718"),
        "chat gpt-4o-mini",
        1_760_000_001,
        &[
            attr("gen_ai.operation.name", &s("chat")),
            attr("gen_ai.provider.name", &s("openai")),
            attr("gen_ai.request.model", &s("gpt-4o-mini")),
            attr("gen_ai.response.model", &s("gpt-4o-mini-2024-07-18")),
            attr("gen_ai.usage.input_tokens", &int(4263)),
            attr("gen_ai.usage.cache_read.input_tokens", &int(4096)),
            attr("gen_ai.usage.output_tokens", r#"{"intValue":529}"#),
            attr("server.port", r#"{"intValue":443}"#),
        ],
    )
}

fn tool_span() -> String {
    span(
        TRACE,
        "0a1b2c3d4e5f6071",
        Some("a1b2c3d4e5f60718"),
        "execute_tool get_weather",
        1_760_000_002,
        &[
            attr("gen_ai.operation.name", &s("execute_tool")),
            attr("gen_ai.tool.name", &s("get_weather")),
        ],
    )
}

#[test]
fn the_documented_example_is_one_hop_of_triage_in_its_conversation() {
    let line = request(&[agent_span(None), chat_span("00f067aa0ba902b7"), tool_span()]);
    let (snap, stats) = report(&[&line]);
    let t = &snap.totals;
    assert_eq!(t.events, 1);
    assert_eq!(t.uncached_input_tokens, 167);
    assert_eq!(t.cache_read_tokens, 4096);
    assert_eq!(t.output_tokens, 529);
    assert_eq!(t.cost, Usd::parse_decimal("0.00064965").unwrap());
    let run = &snap.runs[0];
    assert_eq!(&*run.run_id, "conv_5j66UpCpwteGg4YSxUnt7lPY");
    assert_eq!(&*run.hops[0].agent, "Triage");
    assert_eq!(run.user.as_deref(), Some("user-42"));
    assert_eq!(run.hops[0].latency_ms, Some(1800));
    assert_eq!(snap.by_model[0].provider.as_deref(), Some("openai"));
    assert_eq!(stats.malformed, 0);
}

#[test]
fn an_agent_span_s_own_usage_never_adds_to_its_model_calls() {
    // In one request: only the chat span counts.
    let line = request(&[agent_span(Some((4263, 529))), chat_span("00f067aa0ba902b7")]);
    let (snap, _) = report(&[&line]);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.input_tokens, 4263);

    // The agent span first (its children exported later): counted while
    // alone, taken back when its model call arrives.
    let first = request(&[agent_span(Some((4263, 529)))]);
    let second = request(&[chat_span("00f067aa0ba902b7")]);
    let (alone, _) = report(&[&first]);
    assert_eq!(alone.totals.input_tokens, 4263);
    let (snap, stats) = report(&[&first, &second]);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.input_tokens, 4263, "not 2 × 4263");
    assert_eq!(snap.runs_total, 1);
    assert_eq!(stats.revised, 1);
}

#[test]
fn a_model_call_before_its_agent_span_is_re_attributed_when_it_arrives() {
    // Children end first, so exporters send them first.
    let chat = request(&[chat_span("00f067aa0ba902b7"), tool_span()]);
    let (early, _) = report(&[&chat]);
    assert_eq!(
        &*early.runs[0].run_id, TRACE,
        "the trace until the conversation is known"
    );
    assert_eq!(
        &*early.by_agent[0].name, "support-bot",
        "the service until the agent is known"
    );
    let agent = request(&[agent_span(None)]);
    let (snap, stats) = report(&[&chat, &agent]);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.total_tokens, early.totals.total_tokens);
    assert_eq!(snap.runs_total, 1);
    assert_eq!(&*snap.runs[0].run_id, "conv_5j66UpCpwteGg4YSxUnt7lPY");
    let agents: Vec<&str> = snap.by_agent.iter().map(|a| &*a.name).collect();
    assert_eq!(agents, vec!["Triage"]);
    assert_eq!(stats.revised, 1);
}

#[test]
fn nested_agents_name_the_parent_agent() {
    let outer = span(
        TRACE,
        "1111111111111111",
        None,
        "invoke_agent Planner",
        1_760_000_000,
        &[
            attr("gen_ai.operation.name", &s("invoke_agent")),
            attr("gen_ai.agent.name", &s("Planner")),
        ],
    );
    let inner = span(
        TRACE,
        "A1B2C3D4E5F60718",
        Some("1111111111111111"),
        "invoke_agent Triage",
        1_760_000_000,
        &[
            attr("gen_ai.operation.name", &s("invoke_agent")),
            attr("gen_ai.agent.name", &s("Triage")),
        ],
    );
    // Upper-case hex ids match lower-case ones.
    let line = request(&[chat_span("00f067aa0ba902b7"), inner, outer]);
    let (snap, _) = report(&[&line]);
    let hop = &snap.runs[0].hops[0];
    assert_eq!(&*hop.agent, "Triage");
    assert_eq!(hop.labels.parent_agent.as_deref(), Some("Planner"));
    assert_eq!(&*snap.runs[0].run_id, TRACE);
}

#[test]
fn deprecated_names_and_anthropic_exclusive_input() {
    let old = span(
        TRACE,
        "2222222222222222",
        None,
        "chat claude",
        1_760_000_000,
        &[
            attr("gen_ai.system", &s("anthropic")),
            attr("gen_ai.request.model", &s("claude-sonnet-4-5")),
            attr("gen_ai.usage.prompt_tokens", &int(3)),
            attr("gen_ai.usage.cache_read_input_tokens", &int(9011)),
            attr("gen_ai.usage.cache_creation_input_tokens", &int(273)),
            attr("gen_ai.usage.completion_tokens", &int(6626)),
        ],
    );
    let (snap, _) = report(&[&request(&[old])]);
    let t = &snap.totals;
    assert_eq!(t.events, 1);
    assert_eq!(
        t.uncached_input_tokens, 3,
        "input below its cache counts excludes them"
    );
    assert_eq!(t.cache_read_tokens, 9011);
    assert_eq!(t.cache_write_tokens, 273);
    assert_eq!(t.output_tokens, 6626);
    assert_eq!(snap.by_model[0].provider.as_deref(), Some("anthropic"));
}

#[test]
fn segments_from_a_configured_attribute_and_embeddings_count() {
    let embed = span(
        TRACE,
        "3333333333333333",
        None,
        "embeddings text-embedding-3-small",
        1_760_000_000,
        &[
            attr("gen_ai.operation.name", &s("embeddings")),
            attr("gen_ai.request.model", &s("text-embedding-3-small")),
            attr("gen_ai.usage.input_tokens", &int(500)),
            attr("app.plan", &s("enterprise")),
        ],
    );
    let config = DecoderConfig {
        segment_attribute: Some("app.plan".into()),
        ..DecoderConfig::default()
    };
    let (snap, _) = report_with(config, &[&request(&[embed])]);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.runs[0].segment.as_deref(), Some("enterprise"));
}

#[test]
fn a_re_exported_span_counts_once() {
    let line = request(&[agent_span(None), chat_span("00f067aa0ba902b7")]);
    let (snap, stats) = report(&[&line, &line]);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(stats.duplicates, 1);
}

#[test]
fn bad_spans_reject_the_request_whole() {
    let negative = span(
        TRACE,
        "4444444444444444",
        None,
        "chat x",
        1_760_000_000,
        &[
            attr("gen_ai.operation.name", &s("chat")),
            attr("gen_ai.usage.input_tokens", r#"{"intValue":"-5"}"#),
        ],
    );
    let (snap, stats) = report(&[&request(&[chat_span("00f067aa0ba902b7"), negative])]);
    assert_eq!(snap.totals.events, 0, "never partly counted");
    assert_eq!(stats.malformed, 1);
    assert!(
        stats.malformed_samples[0]
            .reason
            .starts_with("otlp: gen_ai.usage.input_tokens (-5) is negative")
    );
    let bad_id = request(&[span("zz", "4444444444444444", None, "chat", 1, &[])]);
    let (_, stats) = report(&[&bad_id]);
    assert!(
        stats.malformed_samples[0]
            .reason
            .contains("traceId 'zz' is not hex")
    );
}

#[test]
fn calls_re_attributed_later_keep_their_start_order() {
    // Eight calls arrive before their agent span, in one request; when it
    // arrives they move to its conversation, in the order they started
    // (the order of a run's hops), whatever order they are remembered in.
    let calls: Vec<String> = (1..=8_u64)
        .map(|n| {
            span(
                TRACE,
                &format!("{n:016x}"),
                Some("a1b2c3d4e5f60718"),
                "chat gpt-4o",
                1_760_000_000 + n,
                &[
                    attr("gen_ai.operation.name", &s("chat")),
                    attr("gen_ai.request.model", &s("gpt-4o")),
                    attr("gen_ai.usage.input_tokens", &int(n * 100)),
                    attr("gen_ai.usage.output_tokens", &int(n)),
                ],
            )
        })
        .rev()
        .collect();
    let (snap, _) = report(&[&request(&calls), &request(&[agent_span(None)])]);
    let run = snap
        .runs
        .iter()
        .find(|r| &*r.run_id == "conv_5j66UpCpwteGg4YSxUnt7lPY")
        .expect("the conversation's run");
    let outputs: Vec<u64> = run.hops.iter().map(|h| h.usage.output).collect();
    assert_eq!(outputs, (1..=8).collect::<Vec<u64>>());
}

#[test]
fn spans_remembered_over_all_traces_are_capped() {
    use super::{AttrValue, MAX_SPANS_REMEMBERED, Otlp, SpanRecord};
    use crate::ingest::formats::{Context, Emit};
    struct Sink;
    impl Emit for Sink {
        fn event(&mut self, _: u64, _: crate::types::event::TelemetryEvent<'_>) {}
    }
    let config = DecoderConfig::default();
    let cx = Context {
        origin: "t",
        scope: "t",
        config: &config,
    };
    let mut otlp = Otlp::default();
    // 70 traces of 4,096 tool spans each: within the per-trace and the
    // trace caps, over the total.
    for trace in 0..70_u32 {
        let spans: Vec<SpanRecord<'_>> = (0..4096_u32)
            .map(|span| SpanRecord {
                trace_id: format!("{trace:032x}"),
                span_id: format!("{span:016x}"),
                parent_span_id: None,
                name: "execute_tool x".into(),
                attributes: vec![(
                    "gen_ai.operation.name".into(),
                    AttrValue::Str("execute_tool".into()),
                )],
                ..SpanRecord::default()
            })
            .collect();
        otlp.spans(&spans, &[], 1, cx, &mut Sink).unwrap();
        assert!(
            otlp.remembered_spans() <= MAX_SPANS_REMEMBERED,
            "{} spans remembered after trace {trace}",
            otlp.remembered_spans()
        );
    }
    // the newest traces are still known whole
    assert!(otlp.remembered_spans() >= MAX_SPANS_REMEMBERED - 4096);
}

#[test]
fn a_deep_chain_of_agents_and_calls_decodes_in_linear_time() {
    // A hostile request: 4,096 spans in one chain, agents with usage and
    // model calls in turn. Whether an agent has a call below it must not
    // cost a walk per call per agent (4,096³ / 4 steps).
    let spans: Vec<String> = (1..=4096_u64)
        .map(|n| {
            let parent = (n > 1).then(|| format!("{:016x}", n - 1));
            let operation = if n % 2 == 0 { "chat" } else { "invoke_agent" };
            span(
                TRACE,
                &format!("{n:016x}"),
                parent.as_deref(),
                operation,
                1_760_000_000 + n,
                &[
                    attr("gen_ai.operation.name", &s(operation)),
                    attr("gen_ai.agent.name", &s(&format!("a{}", n % 3))),
                    attr("gen_ai.usage.input_tokens", &int(10)),
                    attr("gen_ai.usage.output_tokens", &int(1)),
                ],
            )
        })
        .collect();
    let line = request(&spans);
    let started = std::time::Instant::now();
    let (snap, _) = report(&[&line]);
    let took = started.elapsed();
    assert_eq!(
        snap.totals.events, 2048,
        "the calls; no agent has usage of its own left"
    );
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
}

/// An `invoke_agent` span with usage, named `name`, below `parent`.
fn agent_with_usage(id: &str, parent: Option<&str>, name: &str, input: u64, output: u64) -> String {
    span(
        TRACE,
        id,
        parent,
        &format!("invoke_agent {name}"),
        1_760_000_000,
        &[
            attr("gen_ai.operation.name", &s("invoke_agent")),
            attr("gen_ai.agent.name", &s(name)),
            attr("gen_ai.usage.input_tokens", &int(input)),
            attr("gen_ai.usage.output_tokens", &int(output)),
        ],
    )
}

#[test]
fn a_nested_agent_with_usage_is_not_added_to_the_agent_that_totals_it() {
    // An agent used as a tool (or a handoff): the outer span's usage totals
    // the inner one's; no model span is exported. Every order, one request
    // or two.
    let outer = agent_with_usage("00000000000000a1", None, "Planner", 1000, 100);
    let inner = agent_with_usage(
        "00000000000000b2",
        Some("00000000000000a1"),
        "Researcher",
        1000,
        100,
    );
    for lines in [
        vec![request(&[outer.clone(), inner.clone()])],
        vec![request(&[inner.clone(), outer.clone()])],
        vec![
            request(std::slice::from_ref(&outer)),
            request(std::slice::from_ref(&inner)),
        ],
        vec![
            request(std::slice::from_ref(&inner)),
            request(std::slice::from_ref(&outer)),
        ],
    ] {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (snap, _) = report(&lines);
        assert_eq!(snap.totals.events, 1, "{lines:?}");
        assert_eq!(snap.totals.total_tokens, 1100, "{lines:?}");
        let agents: Vec<&str> = snap
            .by_agent
            .iter()
            .filter(|a| a.counters.events > 0)
            .map(|a| &*a.name)
            .collect();
        assert_eq!(agents, ["Researcher"], "{lines:?}");
    }
}

#[test]
fn a_request_with_more_traces_than_are_remembered_counts_every_call() {
    // A Collector's batch of root chat spans, one trace each: more traces in
    // one request than the decoder remembers between requests.
    let n = super::MAX_TRACES as u64 + 904;
    let spans: Vec<String> = (0..n)
        .map(|i| {
            span(
                &format!("{i:032x}"),
                "00000000000000c1",
                None,
                "chat gpt-4o",
                1_760_000_000 + i,
                &[
                    attr("gen_ai.operation.name", &s("chat")),
                    attr("gen_ai.request.model", &s("gpt-4o")),
                    attr("gen_ai.usage.input_tokens", &int(10)),
                    attr("gen_ai.usage.output_tokens", &int(1)),
                ],
            )
        })
        .collect();
    let line = request(&spans);
    let (snap, _) = report(&[&line, &line]);
    assert_eq!(
        snap.totals.events, n,
        "every call once, the second line a duplicate"
    );
    assert_eq!(snap.totals.total_tokens, 11 * n);
}

#[test]
fn calls_past_a_traces_span_cap_are_counted_with_their_own_agent() {
    use super::{AttrValue, MAX_SPANS, Otlp, SpanRecord};
    use crate::ingest::formats::{Context, Emit};
    use crate::types::event::TelemetryEvent;
    struct Sink(Vec<TelemetryEvent<'static>>);
    impl Emit for Sink {
        fn event(&mut self, _: u64, event: TelemetryEvent<'_>) {
            self.0.push(event.into_owned());
        }
    }
    let config = DecoderConfig::default();
    let cx = Context {
        origin: "t",
        scope: "t",
        config: &config,
    };
    let mut otlp = Otlp::default();
    let mut spans: Vec<SpanRecord<'_>> = (0..MAX_SPANS as u32)
        .map(|span| SpanRecord {
            trace_id: TRACE.into(),
            span_id: format!("{span:016x}"),
            name: "execute_tool x".into(),
            ..SpanRecord::default()
        })
        .collect();
    spans.push(SpanRecord {
        trace_id: TRACE.into(),
        span_id: "ffffffffffffffff".into(),
        name: "chat".into(),
        attributes: vec![
            (
                "gen_ai.operation.name".into(),
                AttrValue::Str("chat".into()),
            ),
            ("gen_ai.agent.name".into(), AttrValue::Str("Writer".into())),
            ("gen_ai.usage.input_tokens".into(), AttrValue::Int(7)),
        ],
        ..SpanRecord::default()
    });
    let mut sink = Sink(Vec::new());
    otlp.spans(&spans, &[], 1, cx, &mut sink).unwrap();
    assert_eq!(sink.0.len(), 1);
    assert_eq!(&*sink.0[0].agent, "Writer");
    assert_eq!(sink.0[0].usage.input_uncached, 7);
    assert!(otlp.remembered_traces() <= super::MAX_TRACES);
}

#[test]
fn calls_waiting_for_an_ancestor_cost_nothing_to_later_requests() {
    // A chain of 3,000 chat spans whose root has not arrived: each call
    // waits for an ancestor. Later small requests of the same trace must not
    // re-walk them all (3,000 walks of up to 3,000 steps each, per
    // request), only the calls their spans wake.
    let chain: Vec<String> = (1..=3000_u64)
        .map(|n| {
            span(
                TRACE,
                &format!("{n:016x}"),
                Some(&format!("{:016x}", n + 1)),
                "chat",
                1_760_000_000 + n,
                &[
                    attr("gen_ai.operation.name", &s("chat")),
                    attr("gen_ai.usage.input_tokens", &int(1)),
                ],
            )
        })
        .collect();
    let mut lines = vec![request(&chain)];
    for n in 0..200_u64 {
        lines.push(request(&[span(
            TRACE,
            &format!("{:016x}", 10_000 + n),
            None,
            "execute_tool",
            1_760_000_000,
            &[attr("gen_ai.operation.name", &s("execute_tool"))],
        )]));
    }
    // at last the missing root: the calls near it learn their agent
    lines.push(request(&[span(
        TRACE,
        &format!("{:016x}", 3001),
        None,
        "invoke_agent",
        1_760_000_000,
        &[
            attr("gen_ai.operation.name", &s("invoke_agent")),
            attr("gen_ai.agent.name", &s("Deep")),
        ],
    )]));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let (snap, _) = report(&lines);
    let took = started.elapsed();
    assert_eq!(snap.totals.events, 3000);
    assert_eq!(snap.totals.input_tokens, 3000);
    let deep = snap
        .by_agent
        .iter()
        .find(|a| &*a.name == "Deep")
        .unwrap_or_else(|| {
            panic!(
                "{:?}",
                snap.by_agent
                    .iter()
                    .map(|a| (&a.name, a.counters.events))
                    .collect::<Vec<_>>()
            )
        });
    assert_eq!(deep.counters.events, super::MAX_DEPTH as u64 - 1);
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
}

#[test]
fn a_late_agent_span_of_a_forgotten_trace_is_not_added_to_its_calls() {
    // Its chat was counted, then 4,096 newer traces pushed the trace out;
    // the invoke_agent span (exported when it ends, after its calls)
    // arrives with the turn's total.
    let chat = span(
        TRACE,
        "00000000000000c2",
        Some("00000000000000a1"),
        "chat",
        1_760_000_000,
        &[
            attr("gen_ai.operation.name", &s("chat")),
            attr("gen_ai.usage.input_tokens", &int(1000)),
        ],
    );
    let newer: Vec<String> = (0..super::MAX_TRACES as u64 + 10)
        .map(|i| {
            span(
                &format!("{:032x}", i + 1),
                "00000000000000c1",
                None,
                "execute_tool",
                1_760_000_000,
                &[attr("gen_ai.operation.name", &s("execute_tool"))],
            )
        })
        .collect();
    let late = agent_with_usage("00000000000000a1", None, "Writer", 1000, 0);
    let lines = [request(&[chat]), request(&newer), request(&[late])];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (snap, _) = report(&lines);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.input_tokens, 1000, "not 2 × 1000");
}

#[test]
fn a_call_of_a_forgotten_trace_takes_back_its_agents_counted_usage() {
    // An exporter pushed back retries later: the invoke_agent span (with
    // the turn's total) came first and was counted, then the trace was
    // forgotten before its chat arrived.
    use super::{AttrValue, MAX_TRACES, Otlp, SpanRecord};
    use crate::ingest::formats::{Context, Emit};
    use crate::types::event::{Supersede, TelemetryEvent};
    struct Sink(Vec<TelemetryEvent<'static>>);
    impl Emit for Sink {
        fn event(&mut self, _: u64, event: TelemetryEvent<'_>) {
            self.0.push(event.into_owned());
        }
    }
    let config = DecoderConfig::default();
    let cx = Context {
        origin: "t",
        scope: "t",
        config: &config,
    };
    let record = |trace: String, id: &str, parent: Option<&str>, operation: &str| SpanRecord {
        trace_id: trace,
        span_id: id.into(),
        parent_span_id: parent.map(str::to_owned),
        name: operation.to_owned().into(),
        attributes: vec![
            (
                "gen_ai.operation.name".into(),
                AttrValue::Str(operation.to_owned().into()),
            ),
            ("gen_ai.usage.input_tokens".into(), AttrValue::Int(1000)),
        ],
        ..SpanRecord::default()
    };
    let mut otlp = Otlp::default();
    let mut sink = Sink(Vec::new());
    let agent = record(TRACE.into(), "00000000000000a1", None, "invoke_agent");
    otlp.spans(&[agent], &[], 1, cx, &mut sink).unwrap();
    let newer: Vec<SpanRecord<'_>> = (0..MAX_TRACES as u64)
        .map(|i| SpanRecord {
            trace_id: format!("{:032x}", i + 1),
            span_id: "00000000000000c1".into(),
            name: "execute_tool".into(),
            ..SpanRecord::default()
        })
        .collect();
    otlp.spans(&newer, &[], 2, cx, &mut sink).unwrap();
    let chat = record(
        TRACE.into(),
        "00000000000000c2",
        Some("00000000000000a1"),
        "chat",
    );
    otlp.spans(&[chat], &[], 3, cx, &mut sink).unwrap();
    let rules: Vec<Supersede> = sink.0.iter().map(|e| e.call.unwrap().rule).collect();
    assert_eq!(
        rules,
        [Supersede::Largest, Supersede::Retract, Supersede::Largest],
        "the agent's usage counted, taken back, the call counted"
    );
    assert_eq!(sink.0[1].call.unwrap().key, sink.0[0].call.unwrap().key);
}

mod forgetting {
    use super::super::{AttrValue, MAX_TRACES, Otlp, SpanRecord};
    use super::TRACE;
    use crate::ingest::formats::{Context, DecoderConfig, Emit};
    use crate::types::event::{Supersede, TelemetryEvent};

    struct Sink(Vec<TelemetryEvent<'static>>);
    impl Emit for Sink {
        fn event(&mut self, _: u64, event: TelemetryEvent<'_>) {
            self.0.push(event.into_owned());
        }
    }

    fn record(
        trace: &str,
        id: &str,
        parent: Option<&str>,
        operation: &str,
        agent: Option<&str>,
        input: Option<i64>,
    ) -> SpanRecord<'static> {
        let mut attributes = vec![(
            "gen_ai.operation.name".into(),
            AttrValue::Str(operation.to_owned().into()),
        )];
        if let Some(agent) = agent {
            attributes.push((
                "gen_ai.agent.name".into(),
                AttrValue::Str(agent.to_owned().into()),
            ));
        }
        if let Some(input) = input {
            attributes.push(("gen_ai.usage.input_tokens".into(), AttrValue::Int(input)));
        }
        SpanRecord {
            trace_id: trace.into(),
            span_id: id.into(),
            parent_span_id: parent.map(str::to_owned),
            name: operation.to_owned().into(),
            attributes,
            ..SpanRecord::default()
        }
    }

    fn newer(from: usize, n: usize) -> Vec<SpanRecord<'static>> {
        (from..from + n)
            .map(|i| {
                record(
                    &format!("{:032x}", i + 1),
                    "00000000000000c1",
                    None,
                    "execute_tool",
                    None,
                    None,
                )
            })
            .collect()
    }

    fn decode(otlp: &mut Otlp, spans: &[SpanRecord<'_>], sink: &mut Sink) {
        let config = DecoderConfig::default();
        let cx = Context {
            origin: "t",
            scope: "t",
            config: &config,
        };
        otlp.spans(spans, &[], 1, cx, sink).unwrap();
    }

    #[test]
    fn a_trace_in_use_is_not_forgotten() {
        // the least recently used traces go first, not the first to arrive:
        // a long session keeps its agent while others come and go
        let mut otlp = Otlp::default();
        let mut sink = Sink(Vec::new());
        let agent = record(
            TRACE,
            "00000000000000a1",
            None,
            "invoke_agent",
            Some("Keeper"),
            None,
        );
        decode(&mut otlp, &[agent], &mut sink);
        decode(&mut otlp, &newer(0, 40_000), &mut sink);
        let tool = record(
            TRACE,
            "00000000000000b1",
            Some("00000000000000a1"),
            "execute_tool",
            None,
            None,
        );
        decode(&mut otlp, &[tool], &mut sink);
        decode(&mut otlp, &newer(40_000, 40_000), &mut sink);
        assert!(otlp.remembered_traces() <= MAX_TRACES);
        let chat = record(
            TRACE,
            "00000000000000c2",
            Some("00000000000000a1"),
            "chat",
            None,
            Some(10),
        );
        decode(&mut otlp, &[chat], &mut sink);
        assert_eq!(sink.0.len(), 1);
        assert_eq!(&*sink.0[0].agent, "Keeper");
    }

    #[test]
    fn a_forgotten_trace_with_a_call_takes_back_its_agents_usage() {
        // The call's link to its agent (a tool span) never came before the
        // trace was forgotten: the agent's usage totals that call.
        let mut otlp = Otlp::default();
        let mut sink = Sink(Vec::new());
        let agent = record(
            TRACE,
            "00000000000000a1",
            None,
            "invoke_agent",
            Some("A"),
            Some(10),
        );
        let chat = record(
            TRACE,
            "00000000000000c2",
            Some("00000000000000b1"),
            "chat",
            None,
            Some(10),
        );
        decode(&mut otlp, &[agent, chat], &mut sink);
        decode(&mut otlp, &newer(0, MAX_TRACES), &mut sink);
        let rules: Vec<Supersede> = sink.0.iter().map(|e| e.call.unwrap().rule).collect();
        assert_eq!(
            rules,
            [Supersede::Largest, Supersede::Largest, Supersede::Retract]
        );
        assert_eq!(&*sink.0[2].agent, "A");
    }
}

#[test]
fn ids_of_another_length_are_refused() {
    // base64 of hex-looking characters, or a truncated id: not the 16 and
    // 8 bytes of the specification
    for (trace, span, parent) in [
        ("01", "0000000000000001", None),
        (TRACE, "01", None),
        (TRACE, "0000000000000001", Some("0001")),
        (
            "000102030405060708090a0b0c0d0e0f10",
            "0000000000000001",
            None,
        ),
    ] {
        let parent = parent.map_or(String::new(), |p| format!(r#","parentSpanId":"{p}""#));
        let line = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{trace}","spanId":"{span}"{parent},"name":"chat"}}]}}]}}]}}"#
        );
        let error = super::parse_request(line.as_bytes())
            .err()
            .unwrap_or_else(|| panic!("{line}"));
        assert!(error.contains("bytes of hex"), "{error}");
    }
}
