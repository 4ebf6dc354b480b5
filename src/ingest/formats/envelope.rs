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
use serde_json::value::RawValue;

use super::json::{self, Str};
use crate::types::money::Usd;

/// Labels a wrapper (or a response's own `metadata`) may carry; at the top
/// level, also where the request and the response are. (One struct for
/// both: `#[serde(flatten)]` would buffer every other field of the line.)
/// Labels are read leniently: a value of another type than expected (user
/// metadata is free-form) is ignored, never a reason to reject the line.
#[derive(Debug, Default, Deserialize)]
pub struct Labels<'a> {
    #[serde(borrow, default)]
    request: Option<&'a RawValue>,
    #[serde(borrow, default)]
    response: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metadata: Option<Box<Labels<'a>>>,
    #[serde(borrow, default)]
    run_id: Loose<'a>,
    #[serde(borrow, default)]
    session_id: Loose<'a>,
    #[serde(borrow, default)]
    conversation_id: Loose<'a>,
    #[serde(borrow, default)]
    thread_id: Loose<'a>,
    #[serde(borrow, default)]
    trace_id: Loose<'a>,
    #[serde(borrow, default)]
    agent: Loose<'a>,
    #[serde(borrow, default)]
    agent_name: Loose<'a>,
    #[serde(borrow, default)]
    agent_id: Loose<'a>,
    #[serde(borrow, default)]
    parent_agent: Loose<'a>,
    #[serde(borrow, default)]
    segment: Loose<'a>,
    #[serde(borrow, default)]
    user_segment: Loose<'a>,
    #[serde(borrow, default)]
    team: Loose<'a>,
    #[serde(borrow, default)]
    team_id: Loose<'a>,
    #[serde(borrow, default)]
    tier: Loose<'a>,
    #[serde(borrow, default)]
    user: Loose<'a>,
    #[serde(borrow, default)]
    user_id: Loose<'a>,
    #[serde(borrow, default)]
    end_user: Loose<'a>,
    #[serde(borrow, default)]
    hop: Loose<'a>,
    #[serde(borrow, default)]
    step: Loose<'a>,
    #[serde(borrow, default)]
    task: Loose<'a>,
    #[serde(borrow, default)]
    timestamp: Loose<'a>,
    #[serde(borrow, default)]
    ts: Loose<'a>,
    #[serde(borrow, default)]
    time: Loose<'a>,
    #[serde(borrow, default)]
    start_time: Loose<'a>,
    #[serde(borrow, default)]
    latency_ms: Loose<'a>,
    #[serde(borrow, default)]
    duration_ms: Loose<'a>,
    #[serde(borrow, default)]
    cost_usd: Loose<'a>,
    #[serde(borrow, default)]
    status: Loose<'a>,
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

/// The request's own fields tokwatch reads (`model`, `user`, `metadata`).
#[derive(Debug, Default, Deserialize)]
pub struct Request<'a> {
    #[serde(borrow, default)]
    pub model: Option<Str<'a>>,
    #[serde(borrow, default)]
    user: Loose<'a>,
    #[serde(borrow, default)]
    metadata: Option<Labels<'a>>,
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
                .find(|n| n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(n))
                .map(|n| {
                    #[allow(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "an integer in u32 range"
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
            && let Some(cost) = self.cost_usd.number()
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
        }
        Ok((out, response))
    }
}

/// Parses a line as an envelope: its labels, and the text of the body to
/// decode (the `response` when there is one, else the line itself).
///
/// # Errors
/// Invalid JSON, or labels of the wrong shape.
pub fn open(line: &[u8]) -> Result<(Resolved<'_>, &[u8]), String> {
    let envelope: Labels<'_> = json::parse(line)?;
    let (labels, response) = envelope.resolve()?;
    Ok((labels, response.map_or(line, |r| r.get().as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_the_top_then_metadata_then_the_request() {
        let line = r#"{"request":{"model":"gpt-4o","user":"u-req","metadata":{"agent":"req-agent","tier":"free"}},"response":{"id":"x"},"metadata":{"session_id":"s-1","agent_name":"writer"},"run_id":"r-top","hop":3,"timestamp":"2026-01-01T00:00:00Z","latency_ms":812.4,"cost_usd":0.25}"#;
        let (labels, body) = open(line.as_bytes()).unwrap();
        assert_eq!(body, br#"{"id":"x"}"#);
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
        let line = r#"{"id":"chatcmpl-1","object":"chat.completion","user":"u1","usage":{}}"#;
        let (labels, body) = open(line.as_bytes()).unwrap();
        assert_eq!(body, line.as_bytes());
        assert_eq!(labels.user.as_deref(), Some("u1"));
        // Free-form labels of another shape are ignored; a negative cost is not.
        let (labels, _) = open(br#"{"hop":-1,"agent":{"x":1},"user":true,"ts":"soon"}"#).unwrap();
        assert_eq!(labels, Resolved::default());
        assert!(open(br#"{"cost_usd":-1}"#).is_err());
    }
}
