//! OpenTelemetry GenAI spans as OTLP/JSON: one `ExportTraceServiceRequest`
//! per line, as the Collector's file exporter writes them (formats.md §5).
//! Spans are first read into [`SpanRecord`]s, so an OTLP receiver (HTTP or
//! gRPC, protobuf or JSON) can feed the same [`Otlp::spans`].
//!
//! | source | normalized |
//! |---|---|
//! | spans whose `gen_ai.operation.name` is `chat`, `text_completion`, `generate_content` or `embeddings` (else whose name starts with one) | one model call each |
//! | `gen_ai.usage.input_tokens` (deprecated `gen_ai.usage.prompt_tokens`) − cache reads − cache writes | `input_uncached`: input includes cached tokens; an input smaller than its cache counts is read as excluding them (Anthropic instrumentations) |
//! | `gen_ai.usage.cache_read.input_tokens` (also `…cache_read_input_tokens`, `…input_tokens.cached`) | `cache_read` |
//! | `gen_ai.usage.cache_creation.input_tokens` (also `…cache_creation_input_tokens`, `…input_tokens.cache_write`) | `cache_write_5m` |
//! | `gen_ai.usage.output_tokens` (deprecated `…completion_tokens`) | `output` |
//! | `gen_ai.usage.reasoning.output_tokens` | `reasoning` (inside `output`) |
//! | `gen_ai.response.model`, else `gen_ai.request.model` | model |
//! | `gen_ai.provider.name`, else `gen_ai.system` | provider |
//! | `gen_ai.agent.name` of the span, else of the nearest enclosing span that has one (`invoke_agent`), else resource `service.name` | agent (and the enclosing agent's agent as parent) |
//! | `gen_ai.conversation.id` of the span or an enclosing one, else the trace id | run |
//! | `user.id`, `enduser.id` (span, then resource) | user |
//! | `tokwatch.segment`, `segment`, or `--segment-attribute` (span, then resource) | segment |
//! | `startTimeUnixNano`, `endTimeUnixNano` | time, latency |
//! | `status.code` 2 | status `error` |
//!
//! `intValue` may be a string or a number; ids are hex in any case.
//!
//! Spans of one trace arrive in any order and in several requests. A call
//! is emitted as soon as its span arrives, with the attribution known then;
//! when an enclosing span arrives later with a better one (its agent, its
//! conversation), the call is re-emitted to replace it (`Supersede::Latest`).
//! An `invoke_agent` span's own usage totals what it encloses: it counts only
//! while no span with usage below it (a model call, or a nested agent span
//! with usage of its own) is known, and is taken back (`Supersede::Retract`)
//! when one arrives. Memory: after each request at most [`MAX_TRACES`]
//! traces and [`MAX_SPANS_REMEMBERED`] spans in all are remembered (the
//! least recently used traces are forgotten first; never those of the
//! request (line) being decoded, whose calls are all emitted), and at most
//! [`MAX_SPANS`] spans
//! per trace; a span past them, or a late span of a forgotten trace, is
//! counted with what it says itself, except that a late agent span's own
//! usage is not counted when its forgotten trace had usage counted (the
//! ids of the last [`MAX_FORGOTTEN`] such traces are kept): agent spans end,
//! and are exported, after what they enclose; and a model call of a
//! forgotten trace takes back the agent usage counted in it
//! ([`MAX_FORGOTTEN_AGENTS`]), as its arrival would have had the trace been
//! remembered.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::json::{self, Str};
use super::{Context, Decoded, Emit, FormatDecoder};
use crate::types::event::{CallId, EventKind, Format, Supersede, TelemetryEvent, UNKNOWN};
use crate::types::usage::Usage;

/// Traces remembered per source between requests. Memory is bounded by
/// [`MAX_SPANS_REMEMBERED`]; this many traces lets a receiver taking tens of
/// thousands of spans a second remember a trace for seconds, longer than
/// an exporter's retry after a push-back (4,096 was a third of a second).
pub const MAX_TRACES: usize = 65_536;
/// Spans remembered per trace.
pub const MAX_SPANS: usize = 4096;
/// Spans remembered over all traces (about 380 bytes each with a parent
/// and an agent name: some 100 MB, measured through `--otlp`): past it the
/// oldest traces are forgotten, so that many large traces at once (an
/// OTLP receiver's clients) cannot hold 4,096 × 4,096 spans (~6 GB).
pub const MAX_SPANS_REMEMBERED: usize = 262_144;

/// An attribute value, as far as tokwatch reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Arrays, maps and bytes: present, not read.
    Other,
}

impl AttrValue<'_> {
    fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            AttrValue::Str(s) if !s.trim().is_empty() => Some(Cow::Borrowed(s)),
            AttrValue::Int(n) => Some(Cow::Owned(n.to_string())),
            _ => None,
        }
    }

    /// A token count: an integer (or integral text) that is not negative.
    fn count(&self, key: &str) -> Result<Option<u64>, String> {
        let value = match self {
            AttrValue::Int(n) => *n,
            AttrValue::Str(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("{key} '{s}' is not an integer"))?,
            #[allow(clippy::cast_possible_truncation, reason = "checked integral")]
            AttrValue::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e15 => *d as i64,
            _ => return Err(format!("{key} is not an integer")),
        };
        u64::try_from(value)
            .map(Some)
            .map_err(|_| format!("{key} ({value}) is negative"))
    }
}

/// One span, whatever its encoding: what the decoder needs of it.
#[derive(Debug, Clone, Default)]
pub struct SpanRecord<'a> {
    /// Lowercase hex.
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: Cow<'a, str>,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    pub error: bool,
    pub attributes: Vec<(Cow<'a, str>, AttrValue<'a>)>,
    /// Index of its resource's attributes in the request.
    pub resource: usize,
}

impl<'a> SpanRecord<'a> {
    fn attr(&self, key: &str) -> Option<&AttrValue<'a>> {
        self.attributes
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, v)| v)
    }

    fn text(&self, keys: &[&str]) -> Option<Cow<'_, str>> {
        keys.iter()
            .find_map(|k| self.attr(k).and_then(AttrValue::text))
    }

    fn count(&self, keys: &[&str]) -> Result<Option<u64>, String> {
        for key in keys {
            if let Some(value) = self.attr(key) {
                return value.count(key);
            }
        }
        Ok(None)
    }
}

/// A resource's (or span's) attributes, in the order they came.
pub type Attributes<'a> = Vec<(Cow<'a, str>, AttrValue<'a>)>;

/// What an operation is for tokwatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A model call: a hop.
    Model,
    /// `invoke_agent`: names an agent for what it encloses.
    Agent,
    Other,
}

fn role(span: &SpanRecord<'_>) -> Role {
    let operation = span
        .text(&["gen_ai.operation.name"])
        .map(|s| s.into_owned())
        .unwrap_or_else(|| {
            span.name
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        });
    match operation.as_str() {
        "chat" | "text_completion" | "generate_content" | "embeddings" => Role::Model,
        "invoke_agent" | "create_agent" => Role::Agent,
        _ => Role::Other,
    }
}

/// What the decoder remembers of a span.
#[derive(Debug, Clone, Default)]
struct Known {
    parent: Option<String>,
    agent: Option<String>,
    conversation: Option<String>,
    /// A model call, or an agent span with usage of its own: what an
    /// enclosing agent span's usage would total.
    has_usage: bool,
    /// A model call.
    model: bool,
}

impl Known {
    fn of(span: &SpanRecord<'_>) -> Self {
        Known {
            parent: span.parent_span_id.clone(),
            agent: span.text(&["gen_ai.agent.name"]).map(Cow::into_owned),
            conversation: span.text(&["gen_ai.conversation.id"]).map(Cow::into_owned),
            has_usage: match role(span) {
                Role::Model => true,
                Role::Agent => has_usage(span),
                Role::Other => false,
            },
            model: role(span) == Role::Model,
        }
    }
}

/// A call emitted whose attribution may still improve, or an agent span's
/// own usage that may have to be taken back.
#[derive(Debug, Clone)]
struct Pending {
    event: TelemetryEvent<'static>,
    line_no: u64,
}

#[derive(Debug, Default)]
struct Trace {
    spans: HashMap<String, Known>,
    /// Model calls emitted while an ancestor was unknown.
    unresolved: HashMap<String, Pending>,
    /// The calls of `unresolved` by the ancestor they wait for: only the
    /// arrival of that span can change their attribution.
    waiting: HashMap<String, Vec<String>>,
    /// `invoke_agent` spans counted for their own usage.
    agent_usage: HashMap<String, Pending>,
    /// The request that last brought a span of it ([`Otlp::requests`]).
    touched: u64,
}

/// Per-source state: recent traces.
#[derive(Debug, Default)]
pub struct Otlp {
    traces: HashMap<String, Trace>,
    /// Trace ids by the request that brought them (least recently used
    /// first), for forgetting; an entry whose number is not its trace's
    /// `touched` any more is stale (the trace was used again since).
    order: VecDeque<(String, u64)>,
    /// Requests decoded.
    requests: u64,
    /// Spans in `traces`, over all of them.
    remembered: usize,
    /// Forgotten traces that had usage counted (at most
    /// [`MAX_FORGOTTEN`], oldest dropped first): a late agent span of one
    /// totals what was counted, and is not added to it.
    forgotten_with_usage: HashSet<String>,
    forgotten_order: VecDeque<String>,
    /// Agent spans counted for their own usage in forgotten traces (at
    /// most [`MAX_FORGOTTEN_AGENTS`] traces, oldest dropped first): a model
    /// call of such a trace arriving later takes them back, as it would
    /// had the trace been remembered.
    forgotten_agent_usage: HashMap<String, Vec<(String, Pending)>>,
    forgotten_agent_order: VecDeque<String>,
    /// Events in `forgotten_agent_usage`.
    forgotten_agent_events: usize,
}

/// Counted agent usages of forgotten traces kept (an event each, about
/// 500 bytes: some 8 MB at most).
pub const MAX_FORGOTTEN_AGENTS: usize = 16_384;

/// Forgotten traces remembered by id alone (about 100 bytes each).
pub const MAX_FORGOTTEN: usize = 65_536;

/// What the walk up a span's ancestors found.
#[derive(Debug, Default, PartialEq)]
struct Attribution {
    agent: Option<String>,
    parent_agent: Option<String>,
    conversation: Option<String>,
    /// Every ancestor up to a root is known (or [`MAX_DEPTH`] of them).
    complete: bool,
    /// The first ancestor not known yet, when not complete.
    missing: Option<String>,
}

/// Ancestors looked at for a span's attribution: agent nesting is a few
/// levels deep, and a deeper (hostile) chain must not cost a walk of
/// thousands of steps per call.
pub const MAX_DEPTH: usize = 64;

impl Trace {
    fn attribution(&self, span_id: &str) -> Attribution {
        self.spans
            .get(span_id)
            .map_or_else(Attribution::default, |known| self.attribution_from(known))
    }

    /// Walks up from `start` (a span of this trace, remembered or not).
    fn attribution_from(&self, start: &Known) -> Attribution {
        let mut found = Attribution::default();
        let mut at = Some(start);
        let mut seen = 0;
        while let Some(known) = at {
            if found.agent.is_none() {
                found.agent.clone_from(&known.agent);
            } else if found.parent_agent.is_none()
                && known.agent.is_some()
                && known.agent != found.agent
            {
                found.parent_agent.clone_from(&known.agent);
            }
            if found.conversation.is_none() {
                found.conversation.clone_from(&known.conversation);
            }
            seen += 1;
            match &known.parent {
                Some(parent) if seen < MAX_DEPTH => {
                    at = self.spans.get(parent);
                    if at.is_none() {
                        found.missing = Some(parent.clone());
                    }
                }
                _ => {
                    found.complete = true;
                    break;
                }
            }
        }
        found
    }

    /// The spans a known span with usage (a model call, or a nested agent
    /// span with usage of its own) is below: one walk up from each, stopping
    /// where an earlier walk went, so linear in the trace's spans however
    /// deep it nests (a walk per agent and call was cubic on a hostile
    /// chain). An agent span among them totals usage counted below it.
    fn above_usage(&self) -> HashSet<String> {
        let mut above: HashSet<String> = HashSet::new();
        for known in self.spans.values() {
            if !known.has_usage {
                continue;
            }
            let mut at = known.parent.as_deref();
            while let Some(parent) = at {
                if above.contains(parent) {
                    break;
                }
                above.insert(parent.to_owned());
                at = self.spans.get(parent).and_then(|k| k.parent.as_deref());
            }
        }
        above
    }
}

/// Keeps the receipt of the event's call apart: it may be revised long
/// after it is counted.
fn pin(event: &mut TelemetryEvent<'_>) {
    if let Some(call) = event.call.as_mut() {
        call.pin = true;
    }
}

fn call(trace: &str, span: &str, rule: Supersede) -> CallId {
    CallId {
        key: json::call_key(Format::Otlp, &[trace, span]),
        attempt: 0,
        replay: false,
        rule,
        pin: false,
    }
}

impl Otlp {
    /// Decodes the spans of one export request (`resources[i]` are the
    /// attributes of resource `i`). Returns whether any call was emitted
    /// for these spans (re-attributions of earlier ones do not count).
    ///
    /// # Errors
    /// A usage attribute of the wrong type, or counts that contradict
    /// each other.
    pub fn spans(
        &mut self,
        spans: &[SpanRecord<'_>],
        resources: &[Attributes<'_>],
        line_no: u64,
        cx: Context<'_>,
        out: &mut dyn Emit,
    ) -> Result<bool, String> {
        // Every hop first, so that a bad span rejects the request whole
        // (never partly counted).
        let mut hops = Vec::new();
        for span in spans {
            match role(span) {
                Role::Model => hops.push((span, usage(span)?)),
                Role::Agent if has_usage(span) => hops.push((span, usage(span)?)),
                _ => {}
            }
        }
        // Register every span before judging any: a request holds parents
        // and children in any order. Nothing is forgotten until the request
        // is decoded (`forget_beyond_caps`): a request's own traces must all
        // be there when its calls are emitted.
        self.requests += 1;
        for span in spans {
            self.register(span);
        }
        hops.sort_by_key(|(span, _)| span.start_ns.unwrap_or(0));
        let mut emitted = false;
        // Per trace, computed when an agent span first needs it.
        let mut above: HashMap<&str, HashSet<String>> = HashMap::new();
        for (span, usage) in &hops {
            let resource = resources.get(span.resource).map_or(&[][..], Vec::as_slice);
            let trace = self.traces.entry(span.trace_id.clone()).or_default();
            // A span past its trace's cap is not remembered: it is
            // attributed by what it says itself and its known ancestors.
            let remembered = trace.spans.contains_key(&span.span_id);
            let found = match trace.spans.get(&span.span_id) {
                Some(known) => trace.attribution_from(known),
                None => trace.attribution_from(&Known::of(span)),
            };
            match role(span) {
                Role::Model => {
                    if let Some(counted) = self.forgotten_agent_usage.remove(&span.trace_id) {
                        self.forgotten_agent_events -= counted.len();
                        for (span_id, pending) in counted {
                            let mut event = pending.event;
                            event.call = Some(call(&span.trace_id, &span_id, Supersede::Retract));
                            out.event(pending.line_no, event);
                        }
                    }
                    let mut event = model_event(span, resource, *usage, &found, cx);
                    if !found.complete && remembered {
                        // to be re-attributed when its ancestor arrives
                        pin(&mut event);
                        let again = trace.unresolved.insert(
                            span.span_id.clone(),
                            Pending {
                                event: event.clone().into_owned(),
                                line_no,
                            },
                        );
                        // (a re-sent call is waiting already)
                        if again.is_none()
                            && let Some(missing) = &found.missing
                        {
                            trace
                                .waiting
                                .entry(missing.clone())
                                .or_default()
                                .push(span.span_id.clone());
                        }
                    }
                    out.event(line_no, event);
                    emitted = true;
                }
                _ => {
                    if self.forgotten_with_usage.contains(&span.trace_id)
                        || above
                            .entry(span.trace_id.as_str())
                            .or_insert_with(|| trace.above_usage())
                            .contains(&span.span_id)
                    {
                        continue;
                    }
                    let mut event = model_event(span, resource, *usage, &found, cx);
                    // to be taken back when a model call below it arrives
                    pin(&mut event);
                    trace.agent_usage.insert(
                        span.span_id.clone(),
                        Pending {
                            event: event.clone().into_owned(),
                            line_no,
                        },
                    );
                    out.event(line_no, event);
                    emitted = true;
                }
            }
        }
        self.settle_earlier(spans, out);
        self.forget_beyond_caps(out);
        Ok(emitted)
    }

    /// Re-attributes calls whose missing ancestor just arrived, and takes
    /// back agent usage whose model calls just arrived. Work in proportion
    /// to the request and the calls it wakes, not to all the calls still
    /// waiting in its traces.
    fn settle_earlier(&mut self, spans: &[SpanRecord<'_>], out: &mut dyn Emit) {
        let mut arrived: HashMap<&str, Vec<&str>> = HashMap::new();
        for span in spans {
            arrived
                .entry(span.trace_id.as_str())
                .or_default()
                .push(span.span_id.as_str());
        }
        let mut arrived: Vec<(&str, Vec<&str>)> = arrived.into_iter().collect();
        arrived.sort_unstable();
        for (trace_id, span_ids) in arrived {
            let Some(trace) = self.traces.get_mut(trace_id) else {
                continue;
            };
            // In the order the calls started (as they were first emitted),
            // not the map's: a run's hops are numbered as they arrive.
            let mut woken: Vec<(Option<i64>, String)> = span_ids
                .iter()
                .filter_map(|id| trace.waiting.remove(*id))
                .flatten()
                .filter_map(|id| trace.unresolved.get(&id).map(|p| (p.event.ts_ms, id)))
                .collect();
            woken.sort_unstable();
            woken.dedup();
            for (_, span_id) in woken {
                let found = trace.attribution(&span_id);
                let Some(pending) = trace.unresolved.get_mut(&span_id) else {
                    continue;
                };
                let mut event = pending.event.clone();
                apply_attribution(&mut event, &found, trace_id);
                if event != pending.event {
                    event.call = Some(CallId {
                        pin: !found.complete,
                        ..call(trace_id, &span_id, Supersede::Latest)
                    });
                    out.event(pending.line_no, event.clone());
                    event.call = Some(call(trace_id, &span_id, Supersede::Largest));
                    pending.event = event;
                }
                if found.complete {
                    trace.unresolved.remove(&span_id);
                } else if let Some(missing) = found.missing {
                    trace.waiting.entry(missing).or_default().push(span_id);
                }
            }
            let mut counted: Vec<String> = trace.agent_usage.keys().cloned().collect();
            counted.sort_unstable();
            let above = if counted.is_empty() {
                HashSet::new()
            } else {
                trace.above_usage()
            };
            for span_id in counted {
                if above.contains(&span_id)
                    && let Some(pending) = trace.agent_usage.remove(&span_id)
                {
                    let mut event = pending.event;
                    event.call = Some(call(trace_id, &span_id, Supersede::Retract));
                    out.event(pending.line_no, event);
                }
            }
        }
    }

    /// Spans remembered over all traces.
    #[cfg(test)]
    pub(crate) fn remembered_spans(&self) -> usize {
        self.remembered
    }

    /// Traces remembered.
    #[cfg(test)]
    pub(crate) fn remembered_traces(&self) -> usize {
        self.traces.len()
    }

    /// Forgets the least recently used traces until at most [`MAX_TRACES`]
    /// traces and [`MAX_SPANS_REMEMBERED`] spans are left. Between requests
    /// only: within one, memory may exceed the caps by what the request
    /// itself holds. The agent usage counted in a forgotten trace that
    /// knows a model call is taken back then (that call, not yet linked to
    /// it, is what it totals); in one that knows none it is kept, for a
    /// model call that may still come.
    fn forget_beyond_caps(&mut self, out: &mut dyn Emit) {
        while self.traces.len() > MAX_TRACES || self.remembered > MAX_SPANS_REMEMBERED {
            let Some((oldest, touched)) = self.order.pop_front() else {
                break;
            };
            if self
                .traces
                .get(&oldest)
                .is_none_or(|t| t.touched != touched)
            {
                continue;
            }
            let Some(mut trace) = self.traces.remove(&oldest) else {
                continue;
            };
            self.remembered = self.remembered.saturating_sub(trace.spans.len());
            let mut counted: Vec<(String, Pending)> = trace.agent_usage.drain().collect();
            counted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            if trace.spans.values().any(|k| k.model) {
                for (span_id, pending) in counted {
                    let mut event = pending.event;
                    event.call = Some(call(&oldest, &span_id, Supersede::Retract));
                    out.event(pending.line_no, event);
                }
            } else if !counted.is_empty() {
                self.forgotten_agent_events += counted.len();
                let kept = self
                    .forgotten_agent_usage
                    .entry(oldest.clone())
                    .or_default();
                if kept.is_empty() {
                    self.forgotten_agent_order.push_back(oldest.clone());
                }
                kept.extend(counted);
                while self.forgotten_agent_events > MAX_FORGOTTEN_AGENTS {
                    let Some(dropped) = self.forgotten_agent_order.pop_front() else {
                        break;
                    };
                    if let Some(events) = self.forgotten_agent_usage.remove(&dropped) {
                        self.forgotten_agent_events -= events.len();
                    }
                }
            }
            if trace.spans.values().any(|k| k.has_usage)
                && self.forgotten_with_usage.insert(oldest.clone())
            {
                self.forgotten_order.push_back(oldest);
                if self.forgotten_order.len() > MAX_FORGOTTEN
                    && let Some(dropped) = self.forgotten_order.pop_front()
                {
                    self.forgotten_with_usage.remove(&dropped);
                }
            }
        }
        // Stale entries (traces used again since) are dropped when the
        // queue holds more of them than live ones.
        if self.order.len() > 2 * self.traces.len() + 1024 {
            let mut live: Vec<(u64, String)> = self
                .traces
                .iter()
                .map(|(id, trace)| (trace.touched, id.clone()))
                .collect();
            live.sort_unstable();
            self.order = live
                .into_iter()
                .map(|(touched, id)| (id, touched))
                .collect();
        }
    }

    fn register(&mut self, span: &SpanRecord<'_>) {
        let trace = self.traces.entry(span.trace_id.clone()).or_default();
        if trace.touched != self.requests {
            trace.touched = self.requests;
            self.order.push_back((span.trace_id.clone(), self.requests));
        }
        let known = trace.spans.contains_key(&span.span_id);
        if !known && trace.spans.len() >= MAX_SPANS {
            return;
        }
        self.remembered += usize::from(!known);
        trace.spans.insert(span.span_id.clone(), Known::of(span));
    }
}
/// Whether the decoder accepts this span's usage: a model call's (or an
/// `invoke_agent` span's own) counts must be plausible integers. An OTLP
/// receiver rejects such a span alone (`partial_success`) and passes the
/// others on; a file's line is rejected whole.
///
/// # Errors
/// Why the span is rejected.
pub fn check_span(span: &SpanRecord<'_>) -> Result<(), String> {
    match role(span) {
        Role::Model => usage(span).map(drop),
        Role::Agent if has_usage(span) => usage(span).map(drop),
        _ => Ok(()),
    }
}

/// What remains of a rejected span for the decoder: an agent span's
/// structure (parent, agent name, conversation) without its usage, so that
/// its children are still attributed to it; nothing of a model call.
#[must_use]
pub fn structure_only<'a>(span: &SpanRecord<'a>) -> Option<SpanRecord<'a>> {
    (role(span) == Role::Agent).then(|| SpanRecord {
        attributes: span
            .attributes
            .iter()
            .filter(|(key, _)| !key.starts_with("gen_ai.usage."))
            .cloned()
            .collect(),
        ..span.clone()
    })
}

fn has_usage(span: &SpanRecord<'_>) -> bool {
    span.attributes
        .iter()
        .any(|(k, _)| k.starts_with("gen_ai.usage."))
}

/// The usage attributes the decoder reads, by bucket (first found wins):
/// input, output, cache read, cache write, reasoning.
pub const USAGE_KEYS: [&[&str]; 5] = [
    &["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"],
    &[
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
    ],
    &[
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.input_tokens.cached",
    ],
    &[
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "gen_ai.usage.input_tokens.cache_write",
    ],
    &[
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.output_tokens.reasoning",
    ],
];

fn usage(span: &SpanRecord<'_>) -> Result<Usage, String> {
    let [input, output, cache_read, cache_write, reasoning] =
        USAGE_KEYS.map(|keys| span.count(keys));
    let (input, output, cache_read, cache_write, reasoning) = (
        input?.unwrap_or(0),
        output?.unwrap_or(0),
        cache_read?.unwrap_or(0),
        cache_write?.unwrap_or(0),
        reasoning?.unwrap_or(0),
    );
    if reasoning > output {
        return Err(format!(
            "gen_ai.usage.reasoning.output_tokens ({reasoning}) exceed gen_ai.usage.output_tokens ({output}), which must include them"
        ));
    }
    let cached = cache_read.saturating_add(cache_write);
    // The convention: input includes cached tokens. Some instrumentations
    // of Anthropic report its exclusive input instead: less than the cache.
    let uncached = if input >= cached {
        input - cached
    } else {
        input
    };
    Usage {
        input_uncached: uncached,
        cache_read,
        cache_write_5m: cache_write,
        cache_write_1h: 0,
        output,
        reasoning,
    }
    .plausible()
}

fn resource_text<'r>(
    resource: &'r [(Cow<'_, str>, AttrValue<'_>)],
    keys: &[&str],
) -> Option<Cow<'r, str>> {
    keys.iter().find_map(|key| {
        resource
            .iter()
            .find(|(k, _)| k.as_ref() == *key)
            .and_then(|(_, v)| v.text())
    })
}

fn segment_keys(cx: Context<'_>) -> Vec<&str> {
    let mut keys = vec!["tokwatch.segment", "segment"];
    if let Some(extra) = cx.config.segment_attribute.as_deref() {
        keys.push(extra);
    }
    keys
}

fn model_event(
    span: &SpanRecord<'_>,
    resource: &[(Cow<'_, str>, AttrValue<'_>)],
    usage: Usage,
    found: &Attribution,
    cx: Context<'_>,
) -> TelemetryEvent<'static> {
    let own = |keys: &[&str]| span.text(keys).map(Cow::into_owned);
    let either = |keys: &[&str]| {
        span.text(keys)
            .or_else(|| resource_text(resource, keys))
            .map(Cow::into_owned)
    };
    let segment_keys = segment_keys(cx);
    let ts_ms = span
        .start_ns
        .map(|ns| i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX));
    let latency_ms = match (span.start_ns, span.end_ns) {
        (Some(start), Some(end)) if end >= start => Some((end - start) / 1_000_000),
        _ => None,
    };
    let mut event = TelemetryEvent {
        kind: EventKind::Hop,
        ts_ms,
        run_id: Cow::Borrowed(""),
        hop: None,
        agent: Cow::Borrowed(UNKNOWN),
        parent_agent: None,
        user: either(&["user.id", "enduser.id"]).map(Cow::Owned),
        segment: either(&segment_keys).map(Cow::Owned),
        task: None,
        tool: None,
        provider: own(&["gen_ai.provider.name", "gen_ai.system"]).map(Cow::Owned),
        model: own(&["gen_ai.response.model", "gen_ai.request.model"])
            .map_or(Cow::Borrowed(UNKNOWN), Cow::Owned),
        usage,
        reported_cost: None,
        latency_ms,
        status: span.error.then_some(Cow::Borrowed("error")),
        estimated: false,
        format: Format::Otlp,
        call: Some(call(&span.trace_id, &span.span_id, Supersede::Largest)),
        prompt: None,
    };
    event.agent = resource_text(resource, &["service.name"])
        .map_or(Cow::Borrowed(UNKNOWN), |s| Cow::Owned(s.into_owned()));
    apply_attribution(&mut event, found, &span.trace_id);
    event
}

/// Sets what the ancestors say (the agent falls back to what the event
/// already had: the service).
fn apply_attribution(event: &mut TelemetryEvent<'static>, found: &Attribution, trace_id: &str) {
    if let Some(agent) = &found.agent {
        event.agent = Cow::Owned(agent.clone());
    }
    event.parent_agent = found.parent_agent.clone().map(Cow::Owned);
    event.run_id = Cow::Owned(
        found
            .conversation
            .clone()
            .unwrap_or_else(|| trace_id.to_owned()),
    );
}

// ---------------------------------------------------------------- OTLP/JSON

/// `intValue`: a decimal string (the JSON mapping of int64) or a number.
struct IntValue(i64);

impl<'de> Deserialize<'de> for IntValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl Visitor<'_> for IntVisitor {
            type Value = IntValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer or a decimal string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntValue, E> {
                Ok(IntValue(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntValue, E> {
                i64::try_from(v)
                    .map(IntValue)
                    .map_err(|_| E::custom("intValue out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntValue, E> {
                v.trim()
                    .parse()
                    .map(IntValue)
                    .map_err(|_| E::custom(format!("intValue '{v}' is not an integer")))
            }
        }
        deserializer.deserialize_any(IntVisitor)
    }
}

/// `…TimeUnixNano`: a decimal string or a number, unsigned 64-bit (fixed64
/// in protobuf: every value a protobuf request carries reads back from its
/// normalized line).
struct Nanos(u64);

impl<'de> Deserialize<'de> for Nanos {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NanosVisitor;
        impl Visitor<'_> for NanosVisitor {
            type Value = Nanos;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("nanoseconds since 1970, a number or a decimal string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Nanos, E> {
                u64::try_from(v)
                    .map(Nanos)
                    .map_err(|_| E::custom("a time before 1970"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Nanos, E> {
                Ok(Nanos(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Nanos, E> {
                let v = v.trim();
                match v.parse::<u64>() {
                    Ok(n) => Ok(Nanos(n)),
                    Err(_) if v.parse::<i64>().is_ok() => Err(E::custom("a time before 1970")),
                    Err(_) => Err(E::custom(format!("time '{v}' is not an integer"))),
                }
            }
        }
        deserializer.deserialize_any(NanosVisitor)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AnyValue<'a> {
    #[serde(borrow, default, alias = "string_value")]
    string_value: Option<Str<'a>>,
    #[serde(default, alias = "int_value")]
    int_value: Option<IntValue>,
    #[serde(default, alias = "double_value")]
    double_value: Option<f64>,
    #[serde(default, alias = "bool_value")]
    bool_value: Option<bool>,
}

#[derive(Deserialize)]
struct KeyValue<'a> {
    #[serde(borrow)]
    key: Str<'a>,
    #[serde(borrow, default)]
    value: Option<AnyValue<'a>>,
}

fn attributes(list: Vec<KeyValue<'_>>) -> Attributes<'_> {
    list.into_iter()
        .map(|kv| {
            let value = match kv.value {
                Some(AnyValue {
                    string_value: Some(s),
                    ..
                }) => AttrValue::Str(s.0),
                Some(AnyValue {
                    int_value: Some(i), ..
                }) => AttrValue::Int(i.0),
                Some(AnyValue {
                    double_value: Some(d),
                    ..
                }) => AttrValue::Double(d),
                Some(AnyValue {
                    bool_value: Some(b),
                    ..
                }) => AttrValue::Bool(b),
                _ => AttrValue::Other,
            };
            (kv.key.0, value)
        })
        .collect()
}

#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    code: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan<'a> {
    #[serde(borrow, alias = "trace_id")]
    trace_id: Str<'a>,
    #[serde(borrow, alias = "span_id")]
    span_id: Str<'a>,
    #[serde(borrow, default, alias = "parent_span_id")]
    parent_span_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(default, alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<Nanos>,
    #[serde(default, alias = "end_time_unix_nano")]
    end_time_unix_nano: Option<Nanos>,
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeSpans<'a> {
    #[serde(borrow, default)]
    spans: Vec<JsonSpan<'a>>,
}

#[derive(Deserialize, Default)]
struct Resource<'a> {
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    #[serde(borrow, default)]
    resource: Option<Resource<'a>>,
    #[serde(
        borrow,
        default,
        alias = "scope_spans",
        alias = "instrumentationLibrarySpans"
    )]
    scope_spans: Vec<ScopeSpans<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    #[serde(borrow, default, alias = "resource_spans")]
    resource_spans: Vec<ResourceSpans<'a>>,
}

/// An id of `bytes` bytes, as the specification has them (a trace id 16,
/// a span id 8): another length is an id in another encoding (base64 of
/// hex-looking characters) or none at all.
pub(crate) fn id_length(hex: &str, what: &str, bytes: usize) -> Result<(), String> {
    if hex.len() == 2 * bytes {
        Ok(())
    } else {
        Err(format!(
            "{what} '{}' is not {bytes} bytes of hex",
            hex.chars().take(40).collect::<String>()
        ))
    }
}

/// An id in lowercase hex (`""` is no id).
fn hex_id(id: &str, what: &str) -> Result<Option<String>, String> {
    let id = id.trim();
    if id.is_empty() {
        return Ok(None);
    }
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{what} '{}' is not hex",
            id.chars().take(40).collect::<String>()
        ));
    }
    Ok(Some(id.to_ascii_lowercase()))
}

/// The spans of an OTLP/JSON export request, and its resources' attributes.
///
/// # Errors
/// Invalid JSON, a span without ids, ids that are not hex.
pub fn parse_request(line: &[u8]) -> Result<(Vec<SpanRecord<'_>>, Vec<Attributes<'_>>), String> {
    let request: Request<'_> = json::parse(line)?;
    let mut spans = Vec::new();
    let mut resources = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resources.len();
        resources.push(attributes(
            resource_spans.resource.unwrap_or_default().attributes,
        ));
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let trace_id =
                    hex_id(span.trace_id.as_str(), "traceId")?.ok_or("a span without a traceId")?;
                let span_id =
                    hex_id(span.span_id.as_str(), "spanId")?.ok_or("a span without a spanId")?;
                let parent_span_id = match &span.parent_span_id {
                    Some(parent) => hex_id(parent.as_str(), "parentSpanId")?,
                    None => None,
                };
                id_length(&trace_id, "traceId", 16)?;
                id_length(&span_id, "spanId", 8)?;
                if let Some(parent) = &parent_span_id {
                    id_length(parent, "parentSpanId", 8)?;
                }
                spans.push(SpanRecord {
                    trace_id,
                    span_id,
                    parent_span_id,
                    name: span.name.map_or(Cow::Borrowed(""), |n| n.0),
                    start_ns: span.start_time_unix_nano.map(|n| n.0),
                    end_ns: span.end_time_unix_nano.map(|n| n.0),
                    error: span.status.and_then(|s| s.code) == Some(2),
                    attributes: attributes(span.attributes),
                    resource,
                });
            }
        }
    }
    Ok((spans, resources))
}

impl FormatDecoder for Otlp {
    fn decode(
        &mut self,
        line: &[u8],
        line_no: u64,
        cx: Context<'_>,
        out: &mut dyn Emit,
    ) -> Result<Decoded, String> {
        let (spans, resources) = parse_request(line)?;
        Ok(if self.spans(&spans, &resources, line_no, cx, out)? {
            Decoded::Events
        } else {
            Decoded::Ignored
        })
    }
}

pub mod normalize;
pub mod proto;
#[cfg(test)]
mod tests;
