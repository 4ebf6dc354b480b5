//! What `--record` writes for a line received on a socket: the line in its
//! own format, without any prompt or completion text (tokwatch never writes
//! text to disk), so that following the recording later decodes to the same
//! events.
//!
//! Text is removed by key, in every format: members named like text
//! ([`TEXT_KEYS`]: `prompt`, `completion`, `content`, `messages`, `input`,
//! …) and OTLP attributes that carry it (`gen_ai.prompt…`,
//! `gen_ai.input.messages`, …, and span events). Counts, ids, models and
//! labels are kept. A native record whose counts are missing (to be
//! counted from its text) is recorded once counted, with the counts and
//! `"estimated": true` ([`Recorded::Later`], `ingest::estimate`).

use std::borrow::Cow;

use serde_json::Value;

use super::formats::{Sse, detect, sse};
use crate::types::event::Format;

/// Members whose value is text (or holds text) in some format.
pub const TEXT_KEYS: &[&str] = &[
    "prompt",
    "completion",
    "content",
    "contents",
    "messages",
    "input",
    "instructions",
    "system",
    "text",
    "parts",
    "thinking",
    "signature",
    "arguments",
    "delta",
    "summary",
    "snapshot",
    "toolUseResult",
    "error_str",
    "events",
];

/// OTLP attributes whose value is text.
const TEXT_ATTRIBUTES: &[&str] = &[
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.tool.definitions",
];

/// What to record for a line.
#[derive(Debug, PartialEq, Eq)]
pub enum Recorded<'l> {
    /// This (the line itself when it carried no text).
    Line(Cow<'l, [u8]>),
    /// Nothing now: its counts come from its text, and the estimator
    /// records it once counted.
    Later,
}

/// What stands for a line that is not a JSON object and may hold text.
pub const NOT_RECORDED: &[u8] = b"(a line that was not a JSON object, left out of the recording)";

/// The line as recorded (see the module documentation), for a source
/// whose format is `forced` (`--input-format`) or detected per line. A
/// server-sent event's `data:` is recorded as its JSON alone (which decodes
/// the same); other framing lines as they are.
#[must_use]
pub fn record_line(line: &[u8], forced: Option<Format>) -> Recorded<'_> {
    let data = match sse(line) {
        Sse::Data(data) => data,
        Sse::Framing | Sse::Plain => line,
    };
    if !may_hold_text(data) {
        return Recorded::Line(Cow::Borrowed(line));
    }
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(data) else {
        // Not a JSON object, and it may hold text: left out, in a line a
        // replay rejects as this one was.
        return Recorded::Line(Cow::Borrowed(NOT_RECORDED));
    };
    // The decoder counts a native record from its text later, and the
    // estimator records it then.
    let native = forced.map_or_else(|| detect::foreign(data).is_none(), |f| f == Format::Native);
    if native && counts_from_text(&object) {
        return Recorded::Later;
    }
    strip_object(&mut object);
    Recorded::Line(Cow::Owned(
        serde_json::to_vec(&Value::Object(object)).unwrap_or_default(),
    ))
}

/// A native record that will be counted from its text.
fn counts_from_text(object: &serde_json::Map<String, Value>) -> bool {
    let missing = |count: &str| object.get(count).is_none_or(Value::is_null);
    (object.get("prompt").is_some_and(Value::is_string) && missing("input_tokens"))
        || (object.get("completion").is_some_and(Value::is_string) && missing("output_tokens"))
}

fn may_hold_text(line: &[u8]) -> bool {
    TEXT_KEYS
        .iter()
        .any(|key| memchr::memmem::find(line, format!("\"{key}\"").as_bytes()).is_some())
        || memchr::memmem::find(line, b"gen_ai.").is_some()
}

pub(crate) fn strip_object(object: &mut serde_json::Map<String, Value>) {
    object.retain(|key, value| {
        !(TEXT_KEYS.contains(&key.as_str())
            && (value.is_string() || value.is_array() || value.is_object()))
    });
    for (key, value) in object.iter_mut() {
        if key == "attributes"
            && let Value::Array(attributes) = value
        {
            attributes.retain(|kv| !is_text_attribute(kv));
        }
        strip(value);
    }
}

fn is_text_attribute(kv: &Value) -> bool {
    kv.get("key").and_then(Value::as_str).is_some_and(|key| {
        TEXT_ATTRIBUTES
            .iter()
            .any(|t| key == *t || key.strip_prefix(t).is_some_and(|r| r.starts_with('.')))
    })
}

fn strip(value: &mut Value) {
    match value {
        Value::Object(object) => strip_object(object),
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::formats::tests::report;

    fn recorded(line: &str) -> String {
        match record_line(line.as_bytes(), None) {
            Recorded::Line(bytes) => String::from_utf8(bytes.into_owned()).unwrap(),
            Recorded::Later => "later".into(),
        }
    }

    #[test]
    fn text_never_reaches_the_recording_and_the_replay_counts_the_same() {
        let lines = [
            r#"{"run_id":"r","hop":1,"model":"gpt-4o","prompt":"SECRET plan","input_tokens":12,"completion":"SECRET answer","output_tokens":7}"#,
            r#"{"id":"chatcmpl-A","object":"chat.completion","created":1753357673,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"SECRET reply"}}],"usage":{"prompt_tokens":4263,"completion_tokens":529,"prompt_tokens_details":{"cached_tokens":4096}}}"#,
            r#"{"request":{"model":"gpt-4o","messages":[{"role":"user","content":"SECRET question"}],"input":"SECRET"},"response":{"id":"resp_1","object":"response","created_at":1760000000,"model":"gpt-4o","output":[{"type":"message","content":[{"type":"output_text","text":"SECRET"}]}],"usage":{"input_tokens":10,"output_tokens":2}},"metadata":{"run_id":"r2"}}"#,
            r#"{"parentUuid":"p","isSidechain":false,"cwd":"/p","sessionId":"s","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"SECRET","signature":"SECRET"},{"type":"tool_use","id":"t","name":"Write","input":{"content":"SECRET file"}}],"usage":{"input_tokens":3,"cache_read_input_tokens":100,"output_tokens":5}},"requestId":"req_1","type":"assistant","timestamp":"2026-03-02T10:00:00.000Z","toolUseResult":"SECRET"}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"SECRET"}],"role":"model"}}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5},"modelVersion":"gemini-2.5-pro","responseId":"g1"}"#,
            r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"bot"}}]},"scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"chat gpt-4o","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},{"key":"gen_ai.input.messages","value":{"stringValue":"SECRET"}},{"key":"gen_ai.prompt.0.content","value":{"stringValue":"SECRET"}},{"key":"gen_ai.usage.input_tokens","value":{"intValue":"10"}},{"key":"gen_ai.usage.output_tokens","value":{"intValue":"3"}}],"events":[{"name":"gen_ai.content.prompt","attributes":[{"key":"gen_ai.prompt","value":{"stringValue":"SECRET"}}]}]}]}]}]}"#,
        ];
        for line in lines {
            let stripped = recorded(line);
            assert!(!stripped.contains("SECRET"), "{stripped}");
            let (original, _) = report(&[line]);
            let (replayed, stats) = report(&[&stripped]);
            assert_eq!(stats.malformed, 0, "{stripped}");
            assert_eq!(replayed.totals, original.totals, "{line}");
            assert_eq!(replayed.by_format, original.by_format);
        }
    }

    #[test]
    fn lines_without_text_are_recorded_as_they_came() {
        let line = br#"{"model":"m","input_tokens":1,"output_tokens":1}"#;
        assert_eq!(
            record_line(line, None),
            Recorded::Line(Cow::Borrowed(&line[..]))
        );
        assert_eq!(
            record_line(b"{broken", None),
            Recorded::Line(Cow::Borrowed(&b"{broken"[..]))
        );
        assert_eq!(
            record_line(b"event: message_delta", None),
            Recorded::Line(Cow::Borrowed(&b"event: message_delta"[..]))
        );
    }

    #[test]
    fn stream_data_and_damaged_lines_leave_their_text_out() {
        let data = r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"SECRET"}}"#;
        let stripped = recorded(data);
        assert!(!stripped.contains("SECRET"), "{stripped}");
        assert_eq!(report(&[&stripped]).1.malformed, 0);
        // Cut off, or not an object: left out, and still a line a replay rejects.
        for damaged in [
            r#"{"prompt":"SECRET plan","input"#,
            r#"data: {"delta":{"text":"SECRET"#,
            r#"[{"prompt":"SECRET"}]"#,
        ] {
            let stripped = recorded(damaged);
            assert!(!stripped.contains("SECRET"), "{stripped}");
            assert_eq!(report(&[damaged]).1.malformed, 1);
            assert_eq!(report(&[&stripped]).1.malformed, 1, "{stripped}");
        }
    }

    #[test]
    fn records_counted_from_text_are_recorded_once_counted() {
        let native = r#"{"run_id":"r","model":"gpt-4o","prompt":"hi there","output_tokens":7}"#;
        assert_eq!(recorded(native), "later");
        assert_eq!(recorded(&format!("data: {native}")), "later");
        // Read as another format (`--input-format`), it is never counted
        // from its text: recorded now, without it.
        let Recorded::Line(now) = record_line(native.as_bytes(), Some(Format::OpenAi)) else {
            panic!("recorded later");
        };
        assert!(!String::from_utf8_lossy(&now).contains("hi there"));
        // Forced native, a line of another shape with text but no counts is.
        let shaped = r#"{"object":"chat.completion","model":"gpt-4o","prompt":"hi"}"#;
        assert_eq!(
            record_line(shaped.as_bytes(), Some(Format::Native)),
            Recorded::Later
        );
    }
}
