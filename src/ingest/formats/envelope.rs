//! The log envelope gateways and homegrown loggers wrap provider responses
//! in: `{"request": {…}, "response": {…}, "metadata": {…}, "user": …, …}`,
//! plus the labels tokwatch can take from it (run, agent, segment, user,
//! hop, time, latency, cost). Used by the OpenAI, Anthropic and Gemini
//! decoders: the response is decoded by its own format, the labels say where
//! in which workflow the call was.
//!
//! Label keys, looked up at the top level, then in `metadata`, then in the
//! request's `metadata` (first found wins):
//!
//! | label | keys |
//! |---|---|
//! | run | `run_id`, `session_id`, `conversation_id`, `thread_id`, `trace_id` |
//! | agent | `agent`, `agent_name`, `agent_id` |
//! | parent agent | `parent_agent` |
//! | segment | `segment`, `user_segment`, `team`, `team_id`, `tier` |
//! | user | `user`, `user_id`, `end_user` |
//! | hop | `hop`, `step` |
//! | task | `task` |
//! | time | `timestamp`, `ts`, `time`, `start_time` (RFC 3339 or epoch) |
//! | latency | `latency_ms`, `duration_ms` |
//! | reported cost | `cost_usd` (dollars) |
//! | status | `status` |

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::value::{BorrowedStrDeserializer, MapAccessDeserializer, StringDeserializer};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::json::{self, Str};
use crate::types::event::MAX_HOP;
use crate::types::money::Usd;
use crate::types::prompt::PromptPrint;

/// Labels a wrapper (or a response's own `metadata`) may carry; at the top
/// level, also where the request and the response are. Labels are read
/// leniently: a value of another type than expected (user metadata is
/// free-form, and may not even be an object) is ignored, never a reason to
/// reject the line.
#[derive(Debug, Default)]
pub struct Labels<'a> {
    request: Option<&'a RawValue>,
    response: Option<&'a RawValue>,
    metadata: Option<Box<Labels<'a>>>,
    run_id: Loose<'a>,
    session_id: Loose<'a>,
    conversation_id: Loose<'a>,
    thread_id: Loose<'a>,
    trace_id: Loose<'a>,
    agent: Loose<'a>,
    agent_name: Loose<'a>,
    agent_id: Loose<'a>,
    parent_agent: Loose<'a>,
    segment: Loose<'a>,
    user_segment: Loose<'a>,
    team: Loose<'a>,
    team_id: Loose<'a>,
    tier: Loose<'a>,
    user: Loose<'a>,
    user_id: Loose<'a>,
    end_user: Loose<'a>,
    hop: Loose<'a>,
    step: Loose<'a>,
    task: Loose<'a>,
    timestamp: Loose<'a>,
    ts: Loose<'a>,
    time: Loose<'a>,
    start_time: Loose<'a>,
    latency_ms: Loose<'a>,
    duration_ms: Loose<'a>,
    cost_usd: json::LooseCost,
    status: Loose<'a>,
}

impl<'a> Labels<'a> {
    /// Reads the value of `key` when it is one of the labels' keys (the
    /// only list of them); `false`, the value left unread, for any other.
    fn take<'de: 'a, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        let slot = match key {
            "request" => {
                self.request = map.next_value()?;
                return Ok(true);
            }
            "response" => {
                self.response = map.next_value()?;
                return Ok(true);
            }
            "metadata" => {
                self.metadata = map.next_value::<Option<Labels<'a>>>()?.map(Box::new);
                return Ok(true);
            }
            "run_id" => &mut self.run_id,
            "session_id" => &mut self.session_id,
            "conversation_id" => &mut self.conversation_id,
            "thread_id" => &mut self.thread_id,
            "trace_id" => &mut self.trace_id,
            "agent" => &mut self.agent,
            "agent_name" => &mut self.agent_name,
            "agent_id" => &mut self.agent_id,
            "parent_agent" => &mut self.parent_agent,
            "segment" => &mut self.segment,
            "user_segment" => &mut self.user_segment,
            "team" => &mut self.team,
            "team_id" => &mut self.team_id,
            "tier" => &mut self.tier,
            "user" => &mut self.user,
            "user_id" => &mut self.user_id,
            "end_user" => &mut self.end_user,
            "hop" => &mut self.hop,
            "step" => &mut self.step,
            "task" => &mut self.task,
            "timestamp" => &mut self.timestamp,
            "ts" => &mut self.ts,
            "time" => &mut self.time,
            "start_time" => &mut self.start_time,
            "latency_ms" => &mut self.latency_ms,
            "duration_ms" => &mut self.duration_ms,
            "cost_usd" => {
                self.cost_usd = map.next_value()?;
                return Ok(true);
            }
            "status" => &mut self.status,
            _ => return Ok(false),
        };
        *slot = map.next_value()?;
        Ok(true)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Labels<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LabelsVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for LabelsVisitor<'a> {
            type Value = Labels<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of labels")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels<'a>, A::Error> {
                let mut labels = Labels::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    if !labels.take(key.as_str(), &mut map)? {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(labels)
            }
            // Anything else carries no labels.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Labels<'a>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Labels::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Labels<'a>, E> {
                Ok(Labels::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Labels<'a>, E> {
                Ok(Labels::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Labels<'a>, E> {
                Ok(Labels::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Labels<'a>, E> {
                Ok(Labels::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Labels<'a>, E> {
                Ok(Labels::default())
            }
            fn visit_unit<E>(self) -> Result<Labels<'a>, E> {
                Ok(Labels::default())
            }
        }
        deserializer.deserialize_any(LabelsVisitor(std::marker::PhantomData))
    }
}

/// Any JSON value, kept as text when it is a string or a number.
#[derive(Debug, Default)]
struct Loose<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LooseVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for LooseVisitor<'a> {
            type Value = Loose<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Loose<'a>, E> {
                Ok(Loose(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Loose<'a>, E> {
                Ok(Loose(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Loose<'a>, E> {
                Ok(Loose(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Loose<'a>, E> {
                Ok(Loose(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Loose<'a>, E> {
                Ok(Loose(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Loose<'a>, E> {
                Ok(Loose(None))
            }
            fn visit_unit<E>(self) -> Result<Loose<'a>, E> {
                Ok(Loose(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Loose<'a>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Loose(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Loose<'a>, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Loose(None))
            }
        }
        deserializer.deserialize_any(LooseVisitor(std::marker::PhantomData))
    }
}

impl<'a> Loose<'a> {
    fn text(self) -> Option<Cow<'a, str>> {
        self.0.filter(|t| !t.trim().is_empty())
    }

    fn number(&self) -> Option<f64> {
        self.0.as_deref().and_then(|t| t.trim().parse::<f64>().ok())
    }

    fn when(&self) -> Option<i64> {
        let text = self.0.as_deref()?;
        json::rfc3339_ms(text).or_else(|| text.trim().parse::<f64>().ok().and_then(json::epoch_ms))
    }
}

/// The request's own fields tokwatch reads (`model`, `user`, `metadata`;
/// `messages` and `system` only to fingerprint the prompt).
#[derive(Debug, Default, Deserialize)]
pub struct Request<'a> {
    #[serde(borrow, default)]
    pub model: Option<Str<'a>>,
    #[serde(borrow, default)]
    user: Loose<'a>,
    #[serde(borrow, default)]
    metadata: Option<Labels<'a>>,
    /// Any JSON: read leniently (a shape tokwatch does not know gives no
    /// fingerprint, never a rejected line).
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
}

/// The prompt text of a request (OpenAI Chat Completions, Anthropic
/// Messages): the `system` text (a string, or its parts' `text`), then each
/// message's content (a string, or its parts' `text`: `text`,
/// `input_text` …; images and tool calls add nothing), joined by `\n`.
/// `None` when there is none. Only its fingerprints are kept.
fn prompt_text(system: Option<&RawValue>, messages: Option<&RawValue>) -> Option<String> {
    use serde_json::Value;
    fn push(value: &Value, texts: &mut Vec<String>) {
        match value {
            Value::String(text) => texts.push(text.clone()),
            Value::Array(parts) => {
                for part in parts {
                    if let Some(text) = part.get("text").and_then(Value::as_str) {
                        texts.push(text.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    let parse =
        |raw: Option<&RawValue>| raw.and_then(|r| serde_json::from_str::<Value>(r.get()).ok());
    let mut texts = Vec::new();
    if let Some(system) = parse(system) {
        push(&system, &mut texts);
    }
    if let Some(Value::Array(messages)) = parse(messages) {
        for message in &messages {
            if let Some(content) = message.get("content") {
                push(content, &mut texts);
            }
        }
    }
    (!texts.is_empty()).then(|| texts.join("\n"))
}

/// What the labels say, resolved (first found wins).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Resolved<'a> {
    pub run: Option<Cow<'a, str>>,
    pub agent: Option<Cow<'a, str>>,
    pub parent_agent: Option<Cow<'a, str>>,
    pub segment: Option<Cow<'a, str>>,
    pub user: Option<Cow<'a, str>>,
    pub hop: Option<u32>,
    pub task: Option<Cow<'a, str>>,
    pub ts_ms: Option<i64>,
    pub latency_ms: Option<u64>,
    pub cost: Option<Usd>,
    pub status: Option<Cow<'a, str>>,
    /// The request's model (a response names its own, which wins).
    pub request_model: Option<Cow<'a, str>>,
    /// Fingerprints of the request's prompt ([`prompt_text`]).
    pub prompt: Option<PromptPrint>,
}

impl<'a> Labels<'a> {
    fn resolve_into(self, out: &mut Resolved<'a>) -> Result<(), String> {
        let first = |slot: &mut Option<Cow<'a, str>>, candidates: [Loose<'a>; 5]| {
            if slot.is_none() {
                *slot = candidates.into_iter().find_map(Loose::text);
            }
        };
        let none = Loose::default;
        first(
            &mut out.run,
            [
                self.run_id,
                self.session_id,
                self.conversation_id,
                self.thread_id,
                self.trace_id,
            ],
        );
        first(
            &mut out.agent,
            [self.agent, self.agent_name, self.agent_id, none(), none()],
        );
        first(
            &mut out.parent_agent,
            [self.parent_agent, none(), none(), none(), none()],
        );
        first(
            &mut out.segment,
            [
                self.segment,
                self.user_segment,
                self.team,
                self.team_id,
                self.tier,
            ],
        );
        first(
            &mut out.user,
            [self.user, self.user_id, self.end_user, none(), none()],
        );
        first(&mut out.task, [self.task, none(), none(), none(), none()]);
        first(
            &mut out.status,
            [self.status, none(), none(), none(), none()],
        );
        if out.hop.is_none() {
            out.hop = [self.hop.number(), self.step.number()]
                .into_iter()
                .flatten()
                // Past `MAX_HOP` a label is no position (a loose label:
                // ignored, so the call takes the next one in arrival order).
                .find(|n| n.fract() == 0.0 && (0.0..=f64::from(MAX_HOP)).contains(n))
                .map(|n| {
                    #[allow(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "an integer up to MAX_HOP"
                    )]
                    let hop = n as u32;
                    hop
                });
        }
        if out.ts_ms.is_none() {
            out.ts_ms = [&self.timestamp, &self.ts, &self.time, &self.start_time]
                .into_iter()
                .find_map(Loose::when);
        }
        if out.latency_ms.is_none() {
            out.latency_ms = [self.latency_ms.number(), self.duration_ms.number()]
                .into_iter()
                .flatten()
                .find(|n| n.is_finite() && *n >= 0.0)
                .map(|n| {
                    #[allow(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "non-negative, finite; saturates"
                    )]
                    let ms = n.round() as u64;
                    ms
                });
        }
        if out.cost.is_none()
            && let Some(cost) = &self.cost_usd.0
        {
            out.cost = Some(json::usd(cost, "cost_usd")?);
        }
        Ok(())
    }
}

impl<'a> Labels<'a> {
    /// The labels of the wrapper, its `metadata`, and its request's.
    ///
    /// # Errors
    /// A label of the wrong shape (a negative hop, a negative cost…).
    pub fn resolve(mut self) -> Result<(Resolved<'a>, Option<&'a RawValue>), String> {
        let mut out = Resolved::default();
        let (request, response, metadata) = (
            self.request.take(),
            self.response.take(),
            self.metadata.take(),
        );
        self.resolve_into(&mut out)?;
        if let Some(metadata) = metadata {
            metadata.resolve_into(&mut out)?;
        }
        if let Some(raw) = request {
            let request: Request<'a> = serde_json::from_str(raw.get())
                .map_err(|e| format!("request: {}", json::json_reason(&e)))?;
            if out.user.is_none() {
                out.user = request.user.text();
            }
            if let Some(metadata) = request.metadata {
                metadata.resolve_into(&mut out)?;
            }
            out.request_model = json::text(request.model);
            out.prompt = prompt_text(request.system, request.messages)
                .map(|text| PromptPrint::of_text(&text));
        }
        Ok((out, response))
    }
}

/// Parses a line as an envelope, in one pass: its labels, and its body `B`
/// (decoded from the `response` when there is one, else from the line's
/// keys that are not labels).
///
/// # Errors
/// Invalid JSON, labels of the wrong shape, or a body `B` rejects.
pub fn open<'a, B: Deserialize<'a>>(line: &'a [u8]) -> Result<(Resolved<'a>, B), String> {
    let Ok(OnePass { labels, body }) = serde_json::from_slice::<OnePass<'a, B>>(line) else {
        // Invalid, or a wrapper key named like a body field but of another
        // shape: judged (and explained) as labels first, then the body alone.
        let (labels, response) = json::parse::<Labels<'a>>(line)?.resolve()?;
        let body = json::parse(response.map_or(line, |r| r.get().as_bytes()))?;
        return Ok((labels, body));
    };
    let (labels, response) = labels.resolve()?;
    let body = match response {
        Some(response) => json::parse(response.get().as_bytes())?,
        None => body,
    };
    Ok((labels, body))
}

/// A line's labels and, from its other keys, a body.
struct OnePass<'a, B> {
    labels: Labels<'a>,
    body: B,
}

impl<'a, B: Deserialize<'a>> Deserialize<'a> for OnePass<'a, B> {
    fn deserialize<D: Deserializer<'a>>(deserializer: D) -> Result<Self, D::Error> {
        struct OnePassVisitor<'a, B>(std::marker::PhantomData<(&'a (), B)>);
        impl<'a, B: Deserialize<'a>> Visitor<'a> for OnePassVisitor<'a, B> {
            type Value = OnePass<'a, B>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut labels = Labels::default();
                let body = B::deserialize(MapAccessDeserializer::new(BodyKeys {
                    map: &mut map,
                    labels: &mut labels,
                }))?;
                // A body that stopped early leaves the rest to the labels.
                while let Some(key) = map.next_key::<Str<'a>>()? {
                    if !labels.take(key.as_str(), &mut map)? {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(OnePass { labels, body })
            }
        }
        deserializer.deserialize_map(OnePassVisitor(std::marker::PhantomData))
    }
}

/// A map's entries as the body sees them: label keys are taken (into
/// `labels`) on the way, every other one is passed on.
struct BodyKeys<'l, 'a, M> {
    map: M,
    labels: &'l mut Labels<'a>,
}

impl<'a, M: MapAccess<'a>> MapAccess<'a> for BodyKeys<'_, 'a, M> {
    type Error = M::Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, M::Error> {
        while let Some(key) = self.map.next_key::<Str<'a>>()? {
            if self.labels.take(key.as_str(), &mut self.map)? {
                continue;
            }
            return match key.0 {
                Cow::Borrowed(key) => seed.deserialize(BorrowedStrDeserializer::new(key)),
                Cow::Owned(key) => seed.deserialize(StringDeserializer::new(key)),
            }
            .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, M::Error> {
        self.map.next_value_seed(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of a few fields, one of them (`status`) also a label key.
    #[derive(Debug, Default, Deserialize, PartialEq)]
    struct Body {
        id: Option<String>,
        usage: Option<u64>,
        status: Option<String>,
    }

    #[test]
    fn a_request_prompt_becomes_fingerprints() {
        let print = |line: &str| {
            let (labels, _): (_, Body) = open(line.as_bytes()).unwrap();
            labels.prompt
        };
        // OpenAI: string contents; Anthropic: a system prompt and parts.
        let openai = print(
            r#"{"request":{"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Reset my password?"}]},"response":{"id":"x"}}"#,
        );
        let anthropic = print(
            r#"{"request":{"model":"claude","system":[{"type":"text","text":"Be brief."}],"messages":[{"role":"user","content":[{"type":"text","text":"Reset my password?"},{"type":"image","source":{}}]}]},"response":{"id":"x"}}"#,
        );
        assert_eq!(
            openai,
            Some(PromptPrint::of_text("Be brief.\nReset my password?"))
        );
        assert_eq!(openai, anthropic);
        // Nothing to read, or a shape not known: no print, never an error.
        for line in [
            r#"{"request":{"model":"gpt-4o"},"response":{"id":"x"}}"#,
            r#"{"request":{"messages":"odd","system":7},"response":{"id":"x"}}"#,
            r#"{"request":{"messages":[{"content":[{"type":"image"}]}]},"response":{"id":"x"}}"#,
        ] {
            assert_eq!(print(line), None, "{line}");
        }
    }

    #[test]
    fn labels_come_from_the_top_then_metadata_then_the_request() {
        let line = r#"{"request":{"model":"gpt-4o","user":"u-req","metadata":{"agent":"req-agent","tier":"free"}},"response":{"id":"x"},"metadata":{"session_id":"s-1","agent_name":"writer"},"run_id":"r-top","hop":3,"timestamp":"2026-01-01T00:00:00Z","latency_ms":812.4,"cost_usd":0.25}"#;
        let (labels, body): (_, Body) = open(line.as_bytes()).unwrap();
        assert_eq!(body.id.as_deref(), Some("x"));
        assert_eq!(labels.run.as_deref(), Some("r-top"));
        assert_eq!(labels.agent.as_deref(), Some("writer"));
        assert_eq!(labels.segment.as_deref(), Some("free"));
        assert_eq!(labels.user.as_deref(), Some("u-req"));
        assert_eq!(labels.hop, Some(3));
        assert_eq!(labels.ts_ms, Some(1_767_225_600_000));
        assert_eq!(labels.latency_ms, Some(812));
        assert_eq!(labels.cost, Some(Usd::parse_decimal("0.25").unwrap()));
        assert_eq!(labels.request_model.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn a_bare_body_is_its_own_body() {
        let line = r#"{"id":"chatcmpl-1","object":"chat.completion","user":"u1","usage":7,"status":"completed"}"#;
        let (labels, body): (_, Body) = open(line.as_bytes()).unwrap();
        assert_eq!(body.id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(body.usage, Some(7));
        assert_eq!(labels.user.as_deref(), Some("u1"));
        // A key that is both a label and a body field is read once, as the label.
        assert_eq!(labels.status.as_deref(), Some("completed"));
        // Free-form labels of another shape are ignored; a negative cost is not.
        let (labels, _): (_, Body) =
            open(br#"{"hop":-1,"agent":{"x":1},"user":true,"ts":"soon","metadata":"m"}"#).unwrap();
        assert_eq!(labels, Resolved::default());
        assert!(open::<Body>(br#"{"cost_usd":-1}"#).is_err());
    }

    #[test]
    fn a_wrapper_key_named_like_a_body_field_does_not_hide_the_response() {
        // `usage` of the wrapper is not the body's: the response is.
        let line = br#"{"usage":"n/a","response":{"id":"r","usage":5},"agent":"a"}"#;
        let (labels, body): (_, Body) = open(line).unwrap();
        assert_eq!(
            body,
            Body {
                id: Some("r".into()),
                usage: Some(5),
                status: None
            }
        );
        assert_eq!(labels.agent.as_deref(), Some("a"));
    }

    #[test]
    fn errors_name_the_part_that_is_wrong() {
        let invalid = open::<Body>(br#"{"id":"x","usage":"#).unwrap_err();
        assert!(invalid.starts_with("invalid JSON"), "{invalid}");
        let body = open::<Body>(br#"{"id":"x","usage":"many"}"#).unwrap_err();
        assert!(body.contains("invalid type"), "{body}");
        let request = open::<Body>(br#"{"request":[1],"response":{}}"#).unwrap_err();
        assert!(request.starts_with("request:"), "{request}");
        assert!(
            open::<Body>(b"{\"id\":\"\xff\"}")
                .unwrap_err()
                .contains("UTF-8")
        );
    }
}
