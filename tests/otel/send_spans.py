#!/usr/bin/env python3
"""Sends a multi-agent GenAI workload to an OTLP endpoint with the official OpenTelemetry SDK.

Used by tests/fleet.rs, runnable by hand against a tokwatch started with `--otlp`/`--otlp-grpc`:

    target/otel-venv/bin/python tests/otel/send_spans.py --protocol http \\
        --endpoint http://127.0.0.1:4318 --token T --tag demo > expected.json

The spans follow the OpenTelemetry GenAI semantic conventions (`invoke_agent`, `chat`,
`execute_tool`) the way agent frameworks emit them, including the cases a receiver must get right:

- runs named by `gen_ai.conversation.id`, and runs without one (the trace id is the run);
- nested agents (a sub-agent's `invoke_agent` inside its parent's);
- `invoke_agent` spans that carry the usage totals of the model calls below them (never to be
  added on top of those calls), arriving after their calls and, in one run, before them (an agent
  span ended early, as with fire-and-forget tasks);
- one trace exported in several requests, children before parents (`force_flush` in the middle);
- a model without a price (it must be counted as unpriced, never as $0);
- an Anthropic instrumentation's input count that excludes the cache counts;
- a chat span with no agent anywhere (the service name is the agent);
- prompt-cache reads and writes, reasoning tokens, an errored call, tool spans;
- with `--protocol split`, one trace through two listeners (agent spans over HTTP, the rest
  over gRPC).

stdout gets one JSON object: what was sent, in tokwatch's disjoint buckets, computed here without
tokwatch (totals, per agent, per model, per run). `--native-out FILE` also writes the same calls
as tokwatch native JSONL lines, for `tokwatch report` to price. Exits non-zero when any export
failed (the SDK itself only logs a failure).
"""

import argparse
import json
import sys
import threading
import time

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

BUCKETS = ("uncached_input", "cache_read", "cache_write", "output", "reasoning")


class Counting(SpanExporter):
    """Wraps the real exporter: counts export batches (requests, but two with --protocol
    split) and spans, remembers failures, and optionally writes each batch as one OTLP/JSON
    line (what the Collector's file exporter writes)."""

    def __init__(self, inner, json_out=None):
        self.inner = inner
        self.json_out = json_out
        self.requests = 0
        self.spans = 0
        self.failures = 0
        self.lock = threading.Lock()

    def export(self, spans):
        if self.json_out is not None:
            self.json_out.write(otlp_json(spans) + "\n")
        result = self.inner.export(spans)
        with self.lock:
            self.requests += 1
            if result == SpanExportResult.SUCCESS:
                self.spans += len(spans)
            else:
                self.failures += 1
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return self.inner.force_flush(timeout_millis)


class Discard(SpanExporter):
    """`--protocol file`: nothing goes over the network (only --otlp-json-out)."""

    def export(self, spans):
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


class Split(SpanExporter):
    """`--protocol split`: each batch is sent in two requests, the agent and root spans
    over OTLP/HTTP and the rest (model calls, tools) over OTLP/gRPC, so the spans of one
    trace reach the receiver through two listeners."""

    def __init__(self, http, grpc):
        self.http = http
        self.grpc = grpc

    def export(self, spans):
        def over_http(span):
            agent = span.attributes.get("gen_ai.operation.name") == "invoke_agent"
            return agent or span.parent is None

        results = []
        for inner, part in ((self.grpc, [s for s in spans if not over_http(s)]),
                            (self.http, [s for s in spans if over_http(s)])):
            if part:
                results.append(inner.export(part))
        ok = all(r == SpanExportResult.SUCCESS for r in results)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self):
        self.http.shutdown()
        self.grpc.shutdown()


def exporter(protocol, endpoint, token, gzip, grpc_endpoint=None):
    if protocol == "file":
        return Discard()
    if protocol == "split":
        return Split(exporter("http", endpoint, token, gzip),
                     exporter("grpc", grpc_endpoint, token, gzip))
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )

        return OTLPSpanExporter(
            endpoint=endpoint.rstrip("/") + "/v1/traces",
            headers=headers,
            timeout=10,
            compression=Compression.Gzip if gzip else Compression.NoCompression,
        )
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    target = endpoint.split("://", 1)[-1]
    return OTLPSpanExporter(
        endpoint=target,
        insecure=True,
        headers=tuple(headers.items()),
        timeout=10,
        compression=grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression,
    )


class Workload:
    """Emits spans and keeps the expected totals of what it emitted."""

    def __init__(self, provider, processor, service, tag):
        self.tracer = provider.get_tracer("tokwatch.fleet-test", "1.0")
        self.processor = processor
        self.service = service
        self.tag = tag
        self.clock = time.time_ns() - 600 * 1_000_000_000
        self.calls = []  # (run, agent, parent_agent, model, provider, buckets, status, end_ns)
        self.span_count = 0

    def tick(self, ms):
        self.clock += ms * 1_000_000
        return self.clock

    def flush(self):
        if not self.processor.force_flush(30_000):
            sys.exit("force_flush timed out")

    def start(self, name, parent=None, kind=SpanKind.INTERNAL, attributes=None):
        self.span_count += 1
        context = set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(
            name,
            context=context,
            kind=kind,
            attributes=attributes or {},
            start_time=self.tick(5),
        )

    def agent(self, name, parent=None, conversation=None, usage=None):
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": name,
            "gen_ai.provider.name": "openai",
        }
        if conversation is not None:
            attributes["gen_ai.conversation.id"] = conversation
        if usage is not None:
            attributes.update(usage_attributes(usage))
        return self.start(f"invoke_agent {name}", parent, attributes=attributes)

    def tool(self, name, parent):
        span = self.start(
            f"execute_tool {name}",
            parent,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "gen_ai.tool.call.id": f"call_{self.span_count}",
            },
        )
        span.end(end_time=self.tick(40))

    def chat(self, parent, run, agent, parent_agent, model, provider, tokens, *,
             response_model=None, exclusive_input=False, error=False, end=True):
        """A model call. `tokens` are disjoint buckets; the span reports them the
        GenAI way (input includes the cache counts, output includes reasoning) or,
        with `exclusive_input`, the way Anthropic's API counts input (without them)."""
        b = dict(zip(BUCKETS, tokens))
        cached = b["cache_read"] + b["cache_write"]
        usage = {
            "input": b["uncached_input"] + (0 if exclusive_input else cached),
            "cache_read": b["cache_read"],
            "cache_write": b["cache_write"],
            "output": b["output"],
            "reasoning": b["reasoning"],
        }
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.response.model": response_model or model,
            "gen_ai.response.id": f"resp_{self.tag}_{self.span_count}",
        }
        attributes.update(usage_attributes(usage))
        span = self.start(f"chat {model}", parent, kind=SpanKind.CLIENT, attributes=attributes)
        if error:
            span.set_attribute("error.type", "RateLimitError")
            span.set_status(Status(StatusCode.ERROR, "rate limited"))
        end_ns = self.tick(700)
        if end:
            span.end(end_time=end_ns)
        self.calls.append((run, agent, parent_agent, response_model or model, provider, b,
                           "error" if error else "ok", end_ns))
        return span

    def run_id(self, span):
        return format(span.get_span_context().trace_id, "032x")

    def emit(self):
        tag = self.tag
        # Run 1: a planner with a conversation id, a nested researcher, tools; both agent
        # spans carry the totals of the calls below them; exported in three requests,
        # children first.
        conv = f"conv-{tag}-planning"
        planner = self.agent("planner", conversation=conv)
        self.chat(planner, conv, "planner", None, "claude-sonnet-4-5", "anthropic",
                  (3, 9011, 273, 412, 0), exclusive_input=True)
        self.tool("web_search", planner)
        researcher = self.agent("researcher", parent=planner)
        self.chat(researcher, conv, "researcher", "planner", "gpt-4o-mini", "openai",
                  (1200, 4096, 0, 350, 0), response_model="gpt-4o-mini-2024-07-18")
        self.tool("fetch_page", researcher)
        self.flush()  # request: two chats, two tools; their agent spans are still open
        self.chat(researcher, conv, "researcher", "planner", "o4-mini", "openai",
                  (5300, 0, 0, 2048, 1536))
        self.end_with_totals(researcher, since=1)
        self.flush()  # request: the third chat, then the researcher span (with its totals)
        self.chat(planner, conv, "planner", None, "claude-sonnet-4-5", "anthropic",
                  (820, 9284, 0, 1310, 0))
        self.end_with_totals(planner, since=0)
        self.flush()

        # Run 2: no conversation id (the trace is the run); the agent span, with totals,
        # ends after its calls but is exported in a later request; one call errored.
        writer = self.agent("writer")
        run2 = self.run_id(writer)
        first = len(self.calls)
        self.chat(writer, run2, "writer", None, "gpt-4o", "openai", (2400, 1024, 0, 900, 0),
                  response_model="gpt-4o-2024-08-06")
        self.chat(writer, run2, "writer", None, "gpt-4o", "openai", (3100, 0, 0, 0, 0),
                  response_model="gpt-4o-2024-08-06", error=True)
        self.chat(writer, run2, "writer", None, "gpt-4o", "openai", (3150, 3072, 0, 1422, 0),
                  response_model="gpt-4o-2024-08-06")
        self.flush()
        self.end_with_totals(writer, since=first)
        self.flush()

        # Run 3: a critic whose agent span (with totals) ends and is exported before its
        # model calls (a task awaited elsewhere): its usage counts until they arrive, then
        # it is taken back.
        conv3 = f"conv-{tag}-review"
        critic = self.agent("critic", conversation=conv3)
        first = len(self.calls)
        c1 = self.chat(critic, conv3, "critic", None, "gpt-4.1", "openai",
                       (6100, 2048, 0, 640, 0), end=False)
        c2 = self.chat(critic, conv3, "critic", None, "gpt-4.1-mini", "openai",
                       (900, 0, 0, 95, 0), end=False)
        self.end_with_totals(critic, since=first)
        self.flush()  # request: the critic span alone, with its usage
        c1.end(end_time=self.calls[first][7])
        c2.end(end_time=self.calls[first + 1][7])
        self.flush()

        # Run 4: a self-hosted model tokwatch has no price for, in a sub-agent.
        triage = self.agent("triage")
        run4 = self.run_id(triage)
        summarizer = self.agent("summarizer", parent=triage)
        self.chat(summarizer, run4, "summarizer", "triage", "acme-llm-7b-instruct", "vllm",
                  (15000, 0, 0, 800, 0))
        self.chat(triage, run4, "triage", None, "gpt-4.1-nano", "openai",
                  (2000, 0, 0, 20, 0))
        summarizer.end(end_time=self.tick(10))
        triage.end(end_time=self.tick(10))

        # Run 5: a web request span with plain chat calls under it (an instrumented
        # OpenAI client, no agent framework): the service name is the agent.
        root = self.start("POST /answer", kind=SpanKind.SERVER,
                          attributes={"http.request.method": "POST", "url.path": "/answer"})
        run5 = self.run_id(root)
        self.chat(root, run5, self.service, None, "gpt-4o-mini", "openai",
                  (640, 0, 0, 88, 0))
        self.chat(root, run5, self.service, None, "claude-sonnet-4-5", "anthropic",
                  (150, 0, 4210, 260, 0))
        root.end(end_time=self.tick(10))
        self.flush()

    def end_with_totals(self, span, since):
        """Ends an agent span carrying the usage totals of the calls made since
        `calls[since]` (what some frameworks report on the agent span)."""
        total = {"input": 0, "cache_read": 0, "cache_write": 0, "output": 0, "reasoning": 0}
        for (_, _, _, _, _, b, _, _) in self.calls[since:]:
            total["input"] += b["uncached_input"] + b["cache_read"] + b["cache_write"]
            total["cache_read"] += b["cache_read"]
            total["cache_write"] += b["cache_write"]
            total["output"] += b["output"]
            total["reasoning"] += b["reasoning"]
        for key, value in usage_attributes(total).items():
            span.set_attribute(key, value)
        span.end(end_time=self.tick(10))

    def expected(self):
        def zero():
            out = {k: 0 for k in BUCKETS}
            out["calls"] = 0
            out["total"] = 0
            return out

        def add(row, b):
            for k in BUCKETS:
                row[k] += b[k]
            row["calls"] += 1
            row["total"] += b["uncached_input"] + b["cache_read"] + b["cache_write"] + b["output"]

        totals, agents, models, runs = zero(), {}, {}, {}
        for (run, agent, _, model, _, b, _, _) in self.calls:
            add(totals, b)
            add(agents.setdefault(agent, zero()), b)
            add(models.setdefault(model, zero()), b)
            add(runs.setdefault(run, zero()), b)
        totals["runs"] = len(runs)
        return {"totals": totals, "by_agent": agents, "by_model": models, "by_run": runs}

    def native_lines(self):
        for (run, agent, parent_agent, model, provider, b, status, end_ns) in self.calls:
            line = {
                "ts": end_ns // 1_000_000,
                "run_id": run,
                "agent": agent,
                "model": model,
                "provider": provider,
                "status": status,
                "input_tokens": b["uncached_input"] + b["cache_read"] + b["cache_write"],
                "cache_read_tokens": b["cache_read"],
                "cache_write_tokens": b["cache_write"],
                "output_tokens": b["output"],
                "reasoning_tokens": b["reasoning"],
            }
            if parent_agent is not None:
                line["parent_agent"] = parent_agent
            yield json.dumps(line)


def otlp_json(spans):
    """The export request of `spans` as OTLP/JSON: the SDK's own protobuf encoding,
    in the JSON mapping of the OTLP spec (hex ids, integer enums)."""
    import base64

    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    request = MessageToDict(encode_spans(spans), use_integers_for_enums=True)

    def hex_ids(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    hex_ids(value)
        elif isinstance(node, list):
            for item in node:
                hex_ids(item)

    hex_ids(request)
    return json.dumps(request, separators=(",", ":"))


def usage_attributes(u):
    attributes = {
        "gen_ai.usage.input_tokens": u["input"],
        "gen_ai.usage.output_tokens": u["output"],
    }
    if u["cache_read"]:
        attributes["gen_ai.usage.cache_read.input_tokens"] = u["cache_read"]
    if u["cache_write"]:
        attributes["gen_ai.usage.cache_creation.input_tokens"] = u["cache_write"]
    if u["reasoning"]:
        attributes["gen_ai.usage.reasoning.output_tokens"] = u["reasoning"]
    return attributes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=("http", "grpc", "split", "file"), required=True,
                        help="the OTLP exporter to use (split: agent and root spans over HTTP "
                        "to --endpoint, the rest over gRPC to --grpc-endpoint; file: none, "
                        "only --otlp-json-out)")
    parser.add_argument("--grpc-endpoint", help="HOST:PORT, for --protocol split")
    parser.add_argument("--endpoint", default="",
                        help="http://HOST:PORT (HTTP: /v1/traces is added) or HOST:PORT (gRPC)")
    parser.add_argument("--token", help="sent as `authorization: Bearer TOKEN`")
    parser.add_argument("--tag", required=True,
                        help="names this workload's services and conversations apart")
    parser.add_argument("--no-gzip", action="store_true", help="send uncompressed requests")
    parser.add_argument("--batch", type=int, default=4,
                        help="spans per request at most (default 4: traces span requests)")
    parser.add_argument("--native-out", help="also write the calls as tokwatch native JSONL")
    parser.add_argument("--otlp-json-out",
                        help="also write each export request as an OTLP/JSON line")
    args = parser.parse_args()
    if args.protocol == "file" and not args.otlp_json_out:
        parser.error("--protocol file needs --otlp-json-out")
    if args.protocol != "file" and not args.endpoint:
        parser.error(f"--protocol {args.protocol} needs --endpoint")
    if args.protocol == "split" and not args.grpc_endpoint:
        parser.error("--protocol split needs --grpc-endpoint")

    service = f"fleet-{args.tag}"
    provider = TracerProvider(resource=Resource.create({
        "service.name": service,
        "service.instance.id": f"{args.tag}-1",
        "deployment.environment.name": "test",
    }))
    json_out = open(args.otlp_json_out, "w", encoding="utf-8") if args.otlp_json_out else None
    counting = Counting(exporter(args.protocol, args.endpoint, args.token, not args.no_gzip,
                                 args.grpc_endpoint), json_out)
    # Requests go out only on force_flush (the schedule never fires during a run), in
    # batches of --batch spans: the request boundaries are the workload's own.
    processor = BatchSpanProcessor(counting, max_export_batch_size=args.batch,
                                   schedule_delay_millis=600_000)
    provider.add_span_processor(processor)
    workload = Workload(provider, processor, service, args.tag)
    workload.emit()
    provider.shutdown()
    if json_out is not None:
        json_out.close()

    if args.native_out:
        with open(args.native_out, "w", encoding="utf-8") as out:
            for line in workload.native_lines():
                out.write(line + "\n")
    expected = workload.expected()
    expected["spans"] = workload.span_count
    expected["requests"] = counting.requests
    expected["exported_spans"] = counting.spans
    json.dump(expected, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    if counting.failures or counting.spans != workload.span_count:
        sys.exit(f"{counting.failures} of {counting.requests} export requests failed; "
                 f"{counting.spans} of {workload.span_count} spans exported")


if __name__ == "__main__":
    main()
