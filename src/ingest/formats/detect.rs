//! Which format a line is in, judged by its shape: a few key probes over
//! the raw bytes (SIMD substring search), never a parse. A key probe matches
//! `"key"` followed by optional whitespace and a colon, so it cannot be
//! fooled by text inside a string value (quotes there are escaped as `\"`);
//! it can match a nested key, which is why each format is recognised by a
//! key (or key and value) that the other formats never carry.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use crate::types::event::Format;

/// `"key"` with its quotes, searched once per probe.
struct Key {
    quoted: Finder<'static>,
}

impl Key {
    fn new(name: &'static str) -> Key {
        let quoted: &'static str = Box::leak(format!("\"{name}\"").into_boxed_str());
        Key {
            quoted: Finder::new(quoted.as_bytes()),
        }
    }

    /// Where the values of this key start (after the colon and spaces).
    fn values<'l>(&'l self, line: &'l [u8]) -> impl Iterator<Item = usize> + 'l {
        let width = self.quoted.needle().len();
        self.quoted.find_iter(line).filter_map(move |at| {
            let mut i = at + width;
            while line.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            if line.get(i) != Some(&b':') {
                return None;
            }
            i += 1;
            while line.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            Some(i)
        })
    }

    /// The line has this key.
    fn is_in(&self, line: &[u8]) -> bool {
        self.values(line).next().is_some()
    }

    /// The line has this key with one of these string values.
    fn has_value(&self, line: &[u8], wanted: &[&str]) -> bool {
        self.values(line).any(|at| {
            let Some(rest) = line.get(at..).and_then(|r| r.strip_prefix(b"\"")) else {
                return false;
            };
            wanted.iter().any(|w| {
                rest.strip_prefix(w.as_bytes())
                    .is_some_and(|after| after.first() == Some(&b'"'))
            })
        })
    }

    /// The line has this key with a string value starting with `prefix`.
    fn has_value_prefix(&self, line: &[u8], prefix: &str) -> bool {
        self.values(line).any(|at| {
            line.get(at..)
                .and_then(|r| r.strip_prefix(b"\""))
                .is_some_and(|r| r.starts_with(prefix.as_bytes()))
        })
    }
}

struct Keys {
    resource_spans: Key,
    resource_spans_snake: Key,
    parent_uuid: Key,
    is_sidechain: Key,
    version: Key,
    input_tokens_details: Key,
    output_tokens_details: Key,
    choices: Key,
    kind: Key,
    payload: Key,
    session_id: Key,
    leaf_uuid: Key,
    message: Key,
    response_cost: Key,
    spend: Key,
    request_id: Key,
    standard_logging_object: Key,
    usage_metadata: Key,
    usage_metadata_snake: Key,
    object: Key,
    prompt_tokens: Key,
    request: Key,
    response: Key,
    input_tokens: Key,
    usage: Key,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    resource_spans: Key::new("resourceSpans"),
    resource_spans_snake: Key::new("resource_spans"),
    parent_uuid: Key::new("parentUuid"),
    is_sidechain: Key::new("isSidechain"),
    version: Key::new("version"),
    input_tokens_details: Key::new("input_tokens_details"),
    output_tokens_details: Key::new("output_tokens_details"),
    choices: Key::new("choices"),
    kind: Key::new("type"),
    payload: Key::new("payload"),
    session_id: Key::new("sessionId"),
    leaf_uuid: Key::new("leafUuid"),
    message: Key::new("message"),
    response_cost: Key::new("response_cost"),
    spend: Key::new("spend"),
    request_id: Key::new("request_id"),
    standard_logging_object: Key::new("standard_logging_object"),
    usage_metadata: Key::new("usageMetadata"),
    usage_metadata_snake: Key::new("usage_metadata"),
    object: Key::new("object"),
    prompt_tokens: Key::new("prompt_tokens"),
    request: Key::new("request"),
    response: Key::new("response"),
    input_tokens: Key::new("input_tokens"),
    usage: Key::new("usage"),
});

const CODEX_TYPES: &[&str] = &[
    "event_msg",
    "turn_context",
    "session_meta",
    "response_item",
    "compacted",
];
const CODEX_EXEC_TYPES: &[&str] = &[
    "thread.started",
    "turn.started",
    "turn.completed",
    "turn.failed",
    "item.started",
    "item.updated",
    "item.completed",
];
const CLAUDE_TYPES: &[&str] = &[
    "user",
    "assistant",
    "system",
    "summary",
    "file-history-snapshot",
];
const ANTHROPIC_STREAM_TYPES: &[&str] = &[
    "message_start",
    "message_delta",
    "message_stop",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "ping",
];
const OPENAI_OBJECTS: &[&str] = &[
    "chat.completion",
    "chat.completion.chunk",
    "response",
    "text_completion",
];

/// The format of a line that names one, else `None` (the native schema is
/// the fallback: it has no key of its own to probe for).
#[must_use]
pub fn foreign(line: &[u8]) -> Option<Format> {
    let k = &*KEYS;
    if k.resource_spans.is_in(line) || k.resource_spans_snake.is_in(line) {
        return Some(Format::Otlp);
    }
    if k.payload.is_in(line) && k.kind.has_value(line, CODEX_TYPES) {
        return Some(Format::Codex);
    }
    if k.kind.has_value(line, CODEX_EXEC_TYPES) {
        return Some(Format::Codex);
    }
    if k.session_id.is_in(line) && is_claude_code(k, line) {
        return Some(Format::ClaudeCode);
    }
    if k.leaf_uuid.is_in(line) || k.kind.has_value(line, &["file-history-snapshot"]) {
        return Some(Format::ClaudeCode);
    }
    if is_litellm(k, line) {
        return Some(Format::LiteLlm);
    }
    if k.kind.has_value(line, ANTHROPIC_STREAM_TYPES) {
        return Some(Format::Anthropic);
    }
    if k.usage_metadata.is_in(line) || k.usage_metadata_snake.is_in(line) {
        return Some(Format::Gemini);
    }
    if k.object.has_value(line, OPENAI_OBJECTS) || k.kind.has_value_prefix(line, "response.") {
        return Some(Format::OpenAi);
    }
    if k.kind.has_value(line, &["message"]) && k.usage.is_in(line) {
        return Some(Format::Anthropic);
    }
    // A gateway's envelope, or a bare OpenAI-compatible body.
    if k.prompt_tokens.is_in(line)
        || (k.request.is_in(line) && k.response.is_in(line) && k.usage.is_in(line))
    {
        return Some(Format::OpenAi);
    }
    if k.usage.is_in(line) && k.input_tokens.is_in(line) && !k.kind.is_in(line) {
        // `{"id":…,"model":…,"usage":{"input_tokens":…}}` without `type`:
        // a Responses usage has its details objects (cached tokens inside
        // the input), an Anthropic body stripped of its type does not.
        if k.input_tokens_details.is_in(line) || k.output_tokens_details.is_in(line) {
            return Some(Format::OpenAi);
        }
        return Some(Format::Anthropic);
    }
    None
}

fn is_litellm(k: &Keys, line: &[u8]) -> bool {
    k.response_cost.is_in(line)
        || k.standard_logging_object.is_in(line)
        || (k.spend.is_in(line) && k.request_id.is_in(line))
}

/// A line with `sessionId` is Claude Code's when it also has one of its own
/// keys: a transcript `type`, `parentUuid`, `isSidechain`, or a `message`
/// with a `version` (ccusage-style lines carry no `type`). A gateway log
/// that merely labels a session id is not.
fn is_claude_code(k: &Keys, line: &[u8]) -> bool {
    if k.choices.is_in(line) || k.object.has_value(line, OPENAI_OBJECTS) {
        return false;
    }
    k.kind.has_value(line, CLAUDE_TYPES)
        || k.parent_uuid.is_in(line)
        || k.is_sidechain.is_in(line)
        || (k.message.is_in(line) && k.version.is_in(line))
}

/// Whether a line of a source remembered as `format` still looks like it
/// (cheaper than [`foreign`]; a line that does not is detected again).
#[must_use]
pub fn still(format: Format, line: &[u8]) -> bool {
    let k = &*KEYS;
    match format {
        // Native lines are recognised by parsing them (its parser is the
        // fastest path there is); see `Decoder`.
        Format::Native => true,
        Format::Otlp => k.resource_spans.is_in(line) || k.resource_spans_snake.is_in(line),
        Format::Codex => {
            (k.payload.is_in(line) && k.kind.has_value(line, CODEX_TYPES))
                || k.kind.has_value(line, CODEX_EXEC_TYPES)
        }
        // Transcript lines open with `parentUuid` and `isSidechain` (cheap
        // to find); other shapes (ccusage's fixtures) are judged afresh.
        Format::ClaudeCode => {
            (k.parent_uuid.is_in(line) && k.session_id.is_in(line))
                || k.leaf_uuid.is_in(line)
                || k.kind.has_value(line, &["file-history-snapshot"])
        }
        // A LiteLLM payload holds an OpenAI response: its own keys first.
        Format::LiteLlm => is_litellm(k, line),
        Format::OpenAi => {
            let shape = k.object.has_value(line, OPENAI_OBJECTS)
                || k.kind.has_value_prefix(line, "response.")
                || k.prompt_tokens.is_in(line)
                || k.input_tokens_details.is_in(line)
                || k.output_tokens_details.is_in(line)
                || (k.request.is_in(line)
                    && k.response.is_in(line)
                    && k.usage.is_in(line)
                    && !k.kind.has_value(line, &["message"]));
            shape && !is_litellm(k, line)
        }
        Format::Gemini => k.usage_metadata.is_in(line) || k.usage_metadata_snake.is_in(line),
        // Anthropic's shapes are shared with other formats' nested bodies:
        // judged afresh.
        Format::Anthropic => foreign(line) == Some(format),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_lines_of_a_remembered_format_need_no_detection() {
        let lines: &[(Format, &str)] = &[
            (
                Format::ClaudeCode,
                r#"{"parentUuid":null,"isSidechain":false,"cwd":"/p","sessionId":"s","type":"user","message":{}}"#,
            ),
            (
                Format::ClaudeCode,
                r#"{"type":"summary","summary":"x","leafUuid":"u"}"#,
            ),
            (
                Format::OpenAi,
                r#"{"id":"c","object":"chat.completion","usage":{"prompt_tokens":1}}"#,
            ),
            (
                Format::Gemini,
                r#"{"usageMetadata":{"promptTokenCount":1}}"#,
            ),
            (Format::LiteLlm, r#"{"id":"x","response_cost":0.1}"#),
            (Format::Otlp, r#"{"resourceSpans":[]}"#),
            (
                Format::Codex,
                r#"{"timestamp":"t","type":"event_msg","payload":{}}"#,
            ),
        ];
        for (format, line) in lines {
            assert!(still(*format, line.as_bytes()), "{format}: {line}");
        }
    }

    #[test]
    fn keys_match_with_or_without_spaces_and_never_inside_strings() {
        let k = &*KEYS;
        assert!(k.session_id.is_in(br#"{"sessionId":"x"}"#));
        assert!(k.session_id.is_in(br#"{"sessionId" : "x"}"#));
        assert!(
            !k.session_id
                .is_in(br#"{"text":"the \"sessionId\": field"}"#)
        );
        assert!(!k.session_id.is_in(br#"{"a":"sessionId"}"#));
        assert!(k.kind.has_value(br#"{"type": "event_msg"}"#, CODEX_TYPES));
        assert!(!k.kind.has_value(br#"{"type": "event_msgs"}"#, CODEX_TYPES));
    }

    #[test]
    fn each_format_is_recognised_by_its_shape() {
        let cases: &[(&str, Option<Format>)] = &[
            (
                r#"{"ts":"2026-01-01T00:00:00Z","run_id":"r","model":"gpt-4o","input_tokens":1,"output_tokens":1}"#,
                None,
            ),
            (r#"{"resourceSpans":[]}"#, Some(Format::Otlp)),
            (
                r#"{"timestamp":"t","type":"event_msg","payload":{"type":"token_count"}}"#,
                Some(Format::Codex),
            ),
            (
                r#"{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1}}"#,
                Some(Format::Codex),
            ),
            (
                r#"{"type":"user","sessionId":"s","message":{"role":"user","content":"hi"}}"#,
                Some(Format::ClaudeCode),
            ),
            (
                r#"{"type":"summary","summary":"x","leafUuid":"u"}"#,
                Some(Format::ClaudeCode),
            ),
            (
                r#"{"id":"x","model":"gpt-4o","response_cost":0.1,"prompt_tokens":3}"#,
                Some(Format::LiteLlm),
            ),
            (
                r#"{"request_id":"x","spend":0.1,"model":"gpt-4o"}"#,
                Some(Format::LiteLlm),
            ),
            (
                r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":1}}}"#,
                Some(Format::Anthropic),
            ),
            (
                r#"{"type":"message","id":"m","model":"claude-sonnet-4-5","usage":{"input_tokens":1,"output_tokens":2}}"#,
                Some(Format::Anthropic),
            ),
            (
                r#"{"candidates":[],"usageMetadata":{"promptTokenCount":1},"modelVersion":"gemini-2.5-pro"}"#,
                Some(Format::Gemini),
            ),
            (
                r#"{"id":"c","object":"chat.completion","model":"gpt-4o","usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
                Some(Format::OpenAi),
            ),
            (
                r#"{"type":"response.completed","response":{"usage":{"input_tokens":1}}}"#,
                Some(Format::OpenAi),
            ),
            (
                r#"{"request":{"model":"gpt-4o"},"response":{"usage":{"prompt_tokens":1}},"metadata":{}}"#,
                Some(Format::OpenAi),
            ),
            (r#"{"resource_spans":[]}"#, Some(Format::Otlp)),
            (
                r#"{"id":"resp_1","model":"gpt-5","usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":2}}"#,
                Some(Format::OpenAi),
            ),
            (
                r#"{"id":"msg_1","model":"claude-sonnet-4-5","usage":{"input_tokens":10,"cache_read_input_tokens":4,"output_tokens":2}}"#,
                Some(Format::Anthropic),
            ),
            // A gateway log that labels a session is not a transcript.
            (
                r#"{"sessionId":"s-1","id":"c","object":"chat.completion","choices":[{"message":{"role":"assistant","content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
                Some(Format::OpenAi),
            ),
            (
                r#"{"timestamp":"t","sessionId":"s","message":{"role":"assistant","id":"m","model":"claude-sonnet-4","usage":{"input_tokens":1,"output_tokens":1}},"requestId":"r","version":"1.0.0"}"#,
                Some(Format::ClaudeCode),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(foreign(line.as_bytes()), *want, "{line}");
            // A remembered format may let a line of its own be detected
            // afresh (same answer, slower), but never claims another's.
            for format in Format::ALL {
                if format != Format::Native
                    && Some(format) != *want
                    && still(format, line.as_bytes())
                {
                    assert!(
                        format == Format::OpenAi && want.is_none(),
                        "{format} claims {line}"
                    );
                }
            }
        }
    }
}
