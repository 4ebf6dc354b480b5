//! The normalized telemetry record every input format is turned into.
//!
//! Its usage is in disjoint buckets ([`super::usage::Usage`]), its money
//! exact ([`super::money::Usd`]).

use std::borrow::Cow;

use super::money::Usd;
use super::prompt::PromptPrint;
use super::usage::Usage;

/// What a record says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// One model call at a position in a run.
    Hop,
    /// The runtime enforced a budget on this run (and hop, when known).
    BudgetExceeded {
        limit_kind: Option<String>,
        limit: Option<u64>,
        observed: Option<u64>,
        action: Option<String>,
    },
    /// The run finished.
    RunEnd,
}

/// The input format a record was decoded from (`--input-format` names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// tokwatch's own schema (`docs/schema.md`).
    #[default]
    Native,
    /// OpenAI Chat Completions and Responses objects, stream chunks and events.
    OpenAi,
    /// Anthropic Messages responses and stream events.
    Anthropic,
    /// Google Gemini `generateContent` responses.
    Gemini,
    /// Claude Code transcripts (`~/.claude/projects/**.jsonl`).
    ClaudeCode,
    /// OpenAI Codex CLI session logs (`~/.codex/sessions/**.jsonl`).
    Codex,
    /// OpenTelemetry GenAI spans as OTLP/JSON, one export request per line.
    Otlp,
    /// LiteLLM `StandardLoggingPayload` lines and spend-log rows.
    LiteLlm,
}

impl Format {
    /// Every format, in the order detection and reports list them.
    pub const ALL: [Format; 8] = [
        Format::Native,
        Format::OpenAi,
        Format::Anthropic,
        Format::Gemini,
        Format::ClaudeCode,
        Format::Codex,
        Format::Otlp,
        Format::LiteLlm,
    ];

    /// The name used on the command line and in reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::OpenAi => "openai",
            Format::Anthropic => "anthropic",
            Format::Gemini => "gemini",
            Format::ClaudeCode => "claude-code",
            Format::Codex => "codex",
            Format::Otlp => "otlp",
            Format::LiteLlm => "litellm",
        }
    }

    /// Position in [`Format::ALL`], for per-format tables.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        Format::ALL
            .into_iter()
            .find(|f| f.name() == wanted || (wanted == "claude" && *f == Format::ClaudeCode))
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "'{text}' is not an input format (one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Which report of a call supersedes another report of the same call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Supersede {
    /// Reports of one call keep the one with the largest total usage
    /// (streamed content blocks, cumulative stream chunks, repeated copies).
    #[default]
    Largest,
    /// The latest report replaces the earlier one whatever its size (a span
    /// re-attributed once its parent arrived, an exact recount).
    Latest,
    /// The call is taken back: counted elsewhere (an `invoke_agent` span's
    /// usage once its own model calls arrive).
    Retract,
}

/// The identity of one model call, for formats that may report a call more
/// than once (`ingest::dedup` keeps one count per call, across sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallId {
    /// Hash of the format and the call's own id (message id, response id,
    /// span id): never 0.
    pub key: u64,
    /// Hash of an attempt id (a request id), 0 when there is none. Reports
    /// of one key with different attempts are distinct calls, unless one of
    /// them is a replay.
    pub attempt: u64,
    /// A copy of a call made elsewhere (a Claude Code sidechain replaying its
    /// parent's message): it never displaces the original.
    pub replay: bool,
    pub rule: Supersede,
    /// Its count may be revised long after it is counted (an OTLP call
    /// whose parent has not arrived, an `invoke_agent` span's usage that a
    /// later model call takes back): `ingest::dedup` keeps its receipt
    /// apart from the ring of recent ones.
    pub pin: bool,
}

/// One normalized record. Strings borrow from the input line where they can,
/// so the one-shot report path does not allocate per field; `into_owned`
/// detaches an event to cross a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryEvent<'a> {
    pub kind: EventKind,
    /// Milliseconds since the Unix epoch, when the record has a timestamp.
    pub ts_ms: Option<i64>,
    pub run_id: Cow<'a, str>,
    /// Position in the run; `None` means "next in arrival order".
    pub hop: Option<u32>,
    pub agent: Cow<'a, str>,
    pub parent_agent: Option<Cow<'a, str>>,
    pub user: Option<Cow<'a, str>>,
    pub segment: Option<Cow<'a, str>>,
    pub task: Option<Cow<'a, str>>,
    pub tool: Option<Cow<'a, str>>,
    pub provider: Option<Cow<'a, str>>,
    pub model: Cow<'a, str>,
    pub usage: Usage,
    /// Cost as reported by the provider or a gateway.
    pub reported_cost: Option<Usd>,
    pub latency_ms: Option<u64>,
    pub status: Option<Cow<'a, str>>,
    /// Token counts were estimated from prompt/completion text.
    pub estimated: bool,
    /// The format the record was decoded from.
    pub format: Format,
    /// Set when the format may report this call again (see [`CallId`]).
    pub call: Option<CallId>,
    /// Fingerprints of the call's prompt, when the record carries its text
    /// or a `prompt_hash` (the text itself never leaves the decoder).
    pub prompt: Option<PromptPrint>,
}

/// The largest hop index a record may give (a run has fewer than 10⁹
/// calls). Larger ones are rejected (native) or ignored (labels of other
/// formats), so that positions in arrival order (last hop + 1) stay far
/// from `u32::MAX`, where they could not advance.
pub const MAX_HOP: u32 = 999_999_999;

/// Placeholder for a missing agent or model name.
pub const UNKNOWN: &str = "unknown";

fn own(text: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(text.into_owned())
}

fn own_opt(text: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
    text.map(own)
}

impl TelemetryEvent<'_> {
    /// Detaches the event from the buffer it was parsed from.
    #[must_use]
    pub fn into_owned(self) -> TelemetryEvent<'static> {
        TelemetryEvent {
            kind: self.kind,
            ts_ms: self.ts_ms,
            run_id: own(self.run_id),
            hop: self.hop,
            agent: own(self.agent),
            parent_agent: own_opt(self.parent_agent),
            user: own_opt(self.user),
            segment: own_opt(self.segment),
            task: own_opt(self.task),
            tool: own_opt(self.tool),
            provider: own_opt(self.provider),
            model: own(self.model),
            usage: self.usage,
            reported_cost: self.reported_cost,
            latency_ms: self.latency_ms,
            status: own_opt(self.status),
            estimated: self.estimated,
            format: self.format,
            call: self.call,
            prompt: self.prompt,
        }
    }
}

#[cfg(test)]
impl TelemetryEvent<'static> {
    /// A native hop of `run` by `agent` on `model`, with nothing else set:
    /// tests set what they need with struct update syntax.
    pub(crate) fn hop_for_test(
        run: &'static str,
        hop: u32,
        agent: &'static str,
        model: &'static str,
        usage: Usage,
    ) -> Self {
        TelemetryEvent {
            kind: EventKind::Hop,
            ts_ms: None,
            run_id: Cow::Borrowed(run),
            hop: Some(hop),
            agent: Cow::Borrowed(agent),
            parent_agent: None,
            user: None,
            segment: None,
            task: None,
            tool: None,
            provider: None,
            model: Cow::Borrowed(model),
            usage,
            reported_cost: None,
            latency_ms: None,
            status: None,
            estimated: false,
            format: crate::types::Format::Native,
            call: None,
            prompt: None,
        }
    }
}

/// The provider a model name implies, when the record does not say.
#[must_use]
pub fn infer_provider(model: &str) -> Option<&'static str> {
    let bare = model.rsplit('/').next().unwrap_or(model);
    let bare = bare.to_ascii_lowercase();
    if bare.starts_with("claude") {
        Some("anthropic")
    } else if bare.starts_with("gpt-")
        || bare.starts_with("chatgpt")
        || bare.starts_with("codex")
        || bare.starts_with("text-embedding")
        || (bare.starts_with('o') && bare[1..].starts_with(|c: char| c.is_ascii_digit()))
    {
        Some("openai")
    } else if bare.starts_with("gemini") || bare.starts_with("gemma") {
        Some("google")
    } else if bare.starts_with("mistral") || bare.starts_with("codestral") {
        Some("mistral")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_providers_from_model_names() {
        assert_eq!(infer_provider("gpt-4o-mini"), Some("openai"));
        assert_eq!(infer_provider("o3"), Some("openai"));
        assert_eq!(infer_provider("o4-mini"), Some("openai"));
        assert_eq!(infer_provider("openai/gpt-4.1"), Some("openai"));
        assert_eq!(
            infer_provider("claude-sonnet-4-20250514"),
            Some("anthropic")
        );
        assert_eq!(infer_provider("gemini-2.5-pro"), Some("google"));
        assert_eq!(infer_provider("ollama-llama"), None);
        assert_eq!(infer_provider("omni"), None);
    }
}
