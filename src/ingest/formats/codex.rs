//! OpenAI Codex CLI session logs (`~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl`)
//! and `codex exec --json` output, formats.md §4.
//!
//! | source field | normalized |
//! |---|---|
//! | `token_count` `info.total_token_usage`, minus the previous event's | the call's usage (totals are cumulative per session) |
//! | `input_tokens` − `cached_input_tokens` − `cache_write_input_tokens` | `input_uncached` (cached tokens are inside the input) |
//! | `cached_input_tokens` | `cache_read` |
//! | `cache_write_input_tokens` (newer builds) | `cache_write_5m` |
//! | `output_tokens` | `output` |
//! | `reasoning_output_tokens` | `reasoning` (inside `output`) |
//! | `info.model` of the event (else the latest `turn_context.model`) | model |
//! | `session_meta.id` (`thread.started`'s `thread_id` for exec) | run |
//! | `session_meta.cwd`, `turn_context.cwd` | segment |
//! | line `timestamp` | time |
//! | `turn.completed` `usage` (exec) | one call's usage (not cumulative) |
//!
//! Traps: Codex re-emits `token_count` with unchanged totals (UI and rate
//! limit refreshes): those are not calls. When the totals drop (a reset,
//! a compaction) the event's `last_token_usage` is the call. A forked or
//! sub-agent session (a `source` naming a sub-agent, or a second
//! `session_meta`) starts by replaying its parent's history as a burst of
//! `token_count` events within one second: that burst is the parent's
//! usage, already counted, and is skipped (its totals become the baseline).
//! Each call's identity is its session and running totals, so an archived
//! copy of a session read beside the original counts once.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{self, Count, Str, When};
use super::openai::synthetic_run_id;
use super::{Context, Decoded, Emit, FormatDecoder};
use crate::types::event::{CallId, EventKind, Format, Supersede, TelemetryEvent, UNKNOWN};
use crate::types::usage::Usage;

/// The agent of a main session, and of a sub-agent's.
pub const MAIN_AGENT: &str = "codex";
pub const SUBAGENT: &str = "subagent";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
struct TokenUsage {
    #[serde(default)]
    input_tokens: Option<Count>,
    #[serde(default)]
    cached_input_tokens: Option<Count>,
    #[serde(default)]
    cache_write_input_tokens: Option<Count>,
    #[serde(default)]
    output_tokens: Option<Count>,
    #[serde(default)]
    reasoning_output_tokens: Option<Count>,
}

/// The counts of a [`TokenUsage`], in a fixed order.
type Counts = [u64; 5];

impl TokenUsage {
    fn counts(&self) -> Counts {
        [
            json::count(self.input_tokens),
            json::count(self.cached_input_tokens),
            json::count(self.cache_write_input_tokens),
            json::count(self.output_tokens),
            json::count(self.reasoning_output_tokens),
        ]
    }
}

fn usage(counts: Counts) -> Result<Usage, String> {
    let [input, cached, written, output, reasoning] = counts;
    let cached_all = cached.saturating_add(written);
    if cached_all > input {
        return Err(format!(
            "cached_input_tokens ({cached}) + cache_write_input_tokens ({written}) exceed input_tokens ({input}), which must include them"
        ));
    }
    if reasoning > output {
        return Err(format!(
            "reasoning_output_tokens ({reasoning}) exceed output_tokens ({output}), which must include them"
        ));
    }
    Usage {
        input_uncached: input - cached_all,
        cache_read: cached,
        cache_write_5m: written,
        cache_write_1h: 0,
        output,
        reasoning,
    }
    .plausible()
}

#[derive(Deserialize)]
struct Info<'a> {
    #[serde(default)]
    total_token_usage: Option<TokenUsage>,
    #[serde(default)]
    last_token_usage: Option<TokenUsage>,
    #[serde(borrow, default)]
    model: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    cwd: Option<Str<'a>>,
    #[serde(borrow, default)]
    model: Option<Str<'a>>,
    /// `"cli"`, `"exec"`, … or `{"subagent": …}` for a sub-agent's session.
    #[serde(borrow, default)]
    source: Option<&'a RawValue>,
    #[serde(borrow, default)]
    info: Option<Info<'a>>,
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(default)]
    timestamp: Option<When>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    payload: Option<Payload<'a>>,
    /// `codex exec --json`: `thread.started`'s id, `turn.completed`'s usage.
    #[serde(borrow, default)]
    thread_id: Option<Str<'a>>,
    #[serde(default)]
    usage: Option<TokenUsage>,
}

/// One session file's state.
#[derive(Debug, Default)]
pub struct Codex {
    session: Option<String>,
    cwd: Option<String>,
    model: Option<String>,
    /// Totals of the last counted (or replayed) `token_count`.
    totals: Option<Counts>,
    session_metas: u32,
    /// A sub-agent's or forked session: its first second replays its parent.
    child: bool,
    /// A child's first `token_count`s, until a second has passed.
    window: Option<ReplayWindow>,
    /// The window is over: what follows are the session's own calls.
    window_closed: bool,
}

/// How long after a child session's first `token_count` a burst of them is
/// its parent's history replayed.
const REPLAY_WINDOW_MS: i64 = 1000;

/// The start of a child session: one `token_count` alone is the child's own
/// first call (held until the window closes), two or more in the window
/// are a replay burst.
#[derive(Debug)]
struct ReplayWindow {
    first_ms: i64,
    events: u32,
    /// The first event, while it may be the child's own.
    held: Option<Held>,
}

#[derive(Debug)]
struct Held {
    total: Counts,
    model: Option<String>,
    ts_ms: Option<i64>,
    line_no: u64,
}

impl Codex {
    fn event<'a>(
        &self,
        cx: Context<'_>,
        ts_ms: Option<i64>,
        usage: Usage,
        model: Option<Cow<'a, str>>,
        call: Option<CallId>,
    ) -> TelemetryEvent<'a> {
        TelemetryEvent {
            kind: EventKind::Hop,
            ts_ms,
            run_id: Cow::Owned(
                self.session
                    .clone()
                    .unwrap_or_else(|| synthetic_run_id(cx.origin, ts_ms)),
            ),
            hop: None,
            agent: Cow::Borrowed(if self.child { SUBAGENT } else { MAIN_AGENT }),
            parent_agent: self.child.then_some(Cow::Borrowed(MAIN_AGENT)),
            user: None,
            segment: self.cwd.clone().map(Cow::Owned),
            task: None,
            tool: None,
            provider: Some(Cow::Borrowed("openai")),
            model: model
                .or_else(|| self.model.clone().map(Cow::Owned))
                .unwrap_or(Cow::Borrowed(UNKNOWN)),
            usage,
            reported_cost: None,
            latency_ms: None,
            status: None,
            estimated: false,
            format: Format::Codex,
            call,
            prompt: None,
        }
    }

    fn token_count(
        &mut self,
        info: Info<'_>,
        ts_ms: Option<i64>,
        line_no: u64,
        cx: Context<'_>,
        out: &mut dyn Emit,
    ) -> Result<Decoded, String> {
        // A model named on the event wins over the turn's.
        let model = json::text(info.model);
        let Some(total) = info.total_token_usage.map(|t| t.counts()) else {
            return Ok(Decoded::Ignored);
        };
        if self.child && !self.window_closed {
            match (&mut self.window, ts_ms) {
                (None, Some(ts)) => {
                    self.window = Some(ReplayWindow {
                        first_ms: ts,
                        events: 1,
                        held: Some(Held {
                            total,
                            model: model.map(Cow::into_owned),
                            ts_ms,
                            line_no,
                        }),
                    });
                    return Ok(Decoded::Ignored);
                }
                (Some(window), Some(ts)) if ts - window.first_ms < REPLAY_WINDOW_MS => {
                    // A burst: the parent's history replayed, its baseline.
                    window.events += 1;
                    window.held = None;
                    self.totals = Some(total);
                    return Ok(Decoded::Ignored);
                }
                _ => self.close_window(cx, out)?,
            }
        }
        self.count(total, info.last_token_usage, model, ts_ms, line_no, cx, out)
    }

    /// Ends a child's replay window: a lone first event was its own call.
    fn close_window(&mut self, cx: Context<'_>, out: &mut dyn Emit) -> Result<(), String> {
        self.window_closed = true;
        if let Some(held) = self.window.take().and_then(|w| w.held) {
            self.count(
                held.total,
                None,
                held.model.map(Cow::Owned),
                held.ts_ms,
                held.line_no,
                cx,
                out,
            )?;
        }
        Ok(())
    }

    /// Counts the difference of `total` with the last totals as a call.
    #[allow(clippy::too_many_arguments, reason = "the parts of one event")]
    fn count(
        &mut self,
        total: Counts,
        last: Option<TokenUsage>,
        model: Option<Cow<'_, str>>,
        ts_ms: Option<i64>,
        line_no: u64,
        cx: Context<'_>,
        out: &mut dyn Emit,
    ) -> Result<Decoded, String> {
        let counts = match self.totals {
            Some(previous) if previous == total => return Ok(Decoded::Ignored),
            Some(previous) if total.iter().zip(&previous).all(|(t, p)| t >= p) => {
                let mut delta = [0; 5];
                for (d, (t, p)) in delta.iter_mut().zip(total.iter().zip(&previous)) {
                    *d = t - p;
                }
                delta
            }
            // Totals that went down (a reset, a compaction): this event's own.
            Some(_) => match last {
                Some(last) => last.counts(),
                None => total,
            },
            None => total,
        };
        // A rejected report (implausible counts) leaves the running totals
        // as they were: it is not partly counted.
        let usage = usage(counts)?;
        self.totals = Some(total);
        let session = self.session.clone().unwrap_or_default();
        let keys: Vec<String> = total.iter().map(u64::to_string).collect();
        let call = CallId {
            key: json::call_key(
                Format::Codex,
                &[&session, &keys[0], &keys[1], &keys[2], &keys[3], &keys[4]],
            ),
            attempt: 0,
            replay: false,
            rule: Supersede::Largest,
            pin: false,
        };
        let event = self.event(cx, ts_ms, usage, model, Some(call));
        out.event(line_no, event);
        Ok(Decoded::Events)
    }
}

/// Whether a `session_meta.source` names a sub-agent (`{"subagent": …}`).
fn is_subagent(source: Option<&RawValue>) -> bool {
    source.is_some_and(|raw| {
        let text = raw.get();
        text.starts_with('{') && text.contains("subagent")
    })
}

impl FormatDecoder for Codex {
    fn decode(
        &mut self,
        line: &[u8],
        line_no: u64,
        cx: Context<'_>,
        out: &mut dyn Emit,
    ) -> Result<Decoded, String> {
        let parsed: Line<'_> = json::parse(line)?;
        let ts_ms = parsed.timestamp.and_then(|w| w.0);
        let kind = parsed.kind.as_ref().map(Str::as_str).unwrap_or_default();
        match kind {
            "session_meta" => {
                let payload = parsed.payload.ok_or("session_meta without its payload")?;
                self.session_metas += 1;
                if self.session_metas == 1 {
                    self.session = json::text(payload.id).map(Cow::into_owned);
                } else {
                    // A fork: its first burst replays the session it forked.
                    self.child = true;
                }
                if is_subagent(payload.source) {
                    self.child = true;
                }
                if let Some(cwd) = json::text(payload.cwd) {
                    self.cwd = Some(cwd.into_owned());
                }
                Ok(Decoded::Ignored)
            }
            "turn_context" => {
                let payload = parsed.payload.ok_or("turn_context without its payload")?;
                if let Some(model) = json::text(payload.model) {
                    self.model = Some(model.into_owned());
                }
                if let Some(cwd) = json::text(payload.cwd) {
                    self.cwd = Some(cwd.into_owned());
                }
                Ok(Decoded::Ignored)
            }
            "event_msg" => {
                let Some(payload) = parsed.payload else {
                    return Ok(Decoded::Ignored);
                };
                match (payload.kind.as_ref().map(Str::as_str), payload.info) {
                    (Some("token_count"), Some(info)) => {
                        self.token_count(info, ts_ms, line_no, cx, out)
                    }
                    _ => Ok(Decoded::Ignored),
                }
            }
            "thread.started" => {
                self.session = json::text(parsed.thread_id).map(Cow::into_owned);
                Ok(Decoded::Ignored)
            }
            "turn.completed" => {
                let Some(raw) = parsed.usage else {
                    return Ok(Decoded::Ignored);
                };
                let usage = usage(raw.counts())?;
                let event = self.event(cx, ts_ms, usage, None, None);
                out.event(line_no, event);
                Ok(Decoded::Events)
            }
            _ => Ok(Decoded::Ignored),
        }
    }

    fn flush(&mut self, cx: Context<'_>, out: &mut dyn Emit) {
        // A child's lone first call, still held, was its own.
        let _ = self.close_window(cx, out);
        *self = Codex::default();
    }
}

#[cfg(test)]
mod tests;
