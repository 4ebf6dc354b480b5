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
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::formats::{Sse, detect, sse};
use super::sources::tail::Target;
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
///
/// # Errors
/// The line without its text cannot be written as JSON again (never an
/// empty line in its place).
pub fn record_line(line: &[u8], forced: Option<Format>) -> std::io::Result<Recorded<'_>> {
    let data = match sse(line) {
        Sse::Data(data) => data,
        Sse::Framing | Sse::Plain => line,
    };
    if !may_hold_text(data) {
        return Ok(Recorded::Line(Cow::Borrowed(line)));
    }
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(data) else {
        // Not a JSON object, and it may hold text: left out, in a line a
        // replay rejects as this one was.
        return Ok(Recorded::Line(Cow::Borrowed(NOT_RECORDED)));
    };
    // The decoder counts a native record from its text later, and the
    // estimator records it then.
    let native = forced.map_or_else(|| detect::foreign(data).is_none(), |f| f == Format::Native);
    if native && counts_from_text(&object) {
        return Ok(Recorded::Later);
    }
    strip_object(&mut object);
    Ok(Recorded::Line(Cow::Owned(serde_json::to_vec(
        &Value::Object(object),
    )?)))
}

/// Refuses to record into a file that is also followed: every socket event
/// would be counted twice. Paths are compared once resolved (symbolic links,
/// `.` and `..`; the recording may not exist yet, nor the followed path),
/// and a followed directory reaches into the directories its symbolic links
/// name, as the follower does.
///
/// # Errors
/// The recording is followed, by which `--follow` argument.
pub fn check_not_followed(record: &Path, targets: &[Target]) -> Result<(), String> {
    let resolved = resolve(record);
    let is_jsonl = resolved.extension().is_some_and(|x| x == "jsonl");
    for target in targets {
        let followed = match target {
            Target::Path(path) if path.is_dir() => is_jsonl && dir_reaches(path, &resolved),
            Target::Path(path) => resolve(path) == resolved,
            Target::Glob(pattern) => glob_reaches(pattern, record, &resolved),
        };
        if followed {
            return Err(format!(
                "--record '{}' is also followed (--follow '{}'): every socket event would be counted twice. Record elsewhere, and --follow the recording after a restart.",
                record.display(),
                target.name()
            ));
        }
    }
    Ok(())
}

/// `path` made absolute with every symbolic link, `.` and `..` resolved,
/// as far as it exists (what does not is appended as written, `..`
/// resolved lexically; a dangling link resolves to where it points).
#[must_use]
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    resolve_within(&absolute, 0)
}

fn resolve_within(path: &Path, links: u32) -> PathBuf {
    if let Ok(canonical) = path.canonicalize() {
        return canonical;
    }
    // A dangling link: opening it for writing creates what it names.
    if links < 40
        && let Ok(target) = std::fs::read_link(path)
    {
        let parent = path.parent().unwrap_or(Path::new("/"));
        return resolve_within(&parent.join(target), links + 1);
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => resolve_within(parent, links).join(name),
        _ => lexical(path),
    }
}

/// `.` and `..` removed without looking at the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether following directory `dir` reads `file` (resolved): it is inside
/// the directory, or inside a directory that a symbolic link in it names.
fn dir_reaches(dir: &Path, file: &Path) -> bool {
    let root = resolve(dir);
    if file.starts_with(&root) {
        return true;
    }
    walkdir::WalkDir::new(&root)
        .follow_links(true)
        .into_iter()
        .flatten()
        .filter(|entry| entry.path_is_symlink() && entry.file_type().is_dir())
        .any(|entry| {
            entry
                .path()
                .canonicalize()
                .is_ok_and(|d| file.starts_with(d))
        })
}

/// Whether glob `pattern` matches the recording, as written or resolved
/// (with the pattern's leading directories resolved too).
fn glob_reaches(pattern: &str, record: &Path, resolved: &Path) -> bool {
    let Ok(compiled) = glob::Pattern::new(pattern) else {
        return false;
    };
    let absolute = std::path::absolute(record).unwrap_or_else(|_| record.to_path_buf());
    if [record, &absolute, resolved]
        .iter()
        .any(|p| compiled.matches_path(p))
    {
        return true;
    }
    let wild = |c: &Component<'_>| c.as_os_str().to_string_lossy().contains(['*', '?', '[']);
    let base: PathBuf = Path::new(pattern)
        .components()
        .take_while(|c| !wild(c))
        .collect();
    let rest: PathBuf = Path::new(pattern)
        .components()
        .skip_while(|c| !wild(c))
        .collect();
    let base = resolve(if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &base
    });
    let rebuilt = format!(
        "{}/{}",
        glob::Pattern::escape(&base.to_string_lossy()),
        rest.to_string_lossy()
    );
    glob::Pattern::new(&rebuilt).is_ok_and(|p| p.matches_path(resolved))
        || glob::glob(pattern)
            .is_ok_and(|mut found| found.any(|p| p.is_ok_and(|p| resolve(&p) == resolved)))
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
        match record_line(line.as_bytes(), None).unwrap() {
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
    fn a_followed_recording_is_found_through_links_dots_and_globs() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let logs = root.join("logs");
        std::fs::create_dir_all(logs.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("elsewhere/deep")).unwrap();
        symlink(&logs, root.join("link")).unwrap();
        // A link inside the followed directory: the follower walks into it.
        symlink(root.join("elsewhere"), logs.join("more")).unwrap();
        // A dangling link: writing to it creates the file in `logs`.
        symlink(logs.join("new.jsonl"), root.join("dangling.jsonl")).unwrap();
        let dir_target = [Target::Path(logs.clone())];
        let followed =
            |record: PathBuf, targets: &[Target]| check_not_followed(&record, targets).is_err();
        assert!(followed(logs.join("r.jsonl"), &dir_target));
        assert!(followed(root.join("link/r.jsonl"), &dir_target));
        assert!(followed(
            root.join("elsewhere/../logs/r.jsonl"),
            &dir_target
        ));
        assert!(followed(logs.join("sub/../../logs/r.jsonl"), &dir_target));
        assert!(followed(root.join("dangling.jsonl"), &dir_target));
        assert!(followed(root.join("elsewhere/deep/r.jsonl"), &dir_target));
        let through_link = [Target::Path(root.join("link"))];
        assert!(followed(logs.join("r.jsonl"), &through_link));
        let glob = [Target::Glob(format!("{}/link/*.jsonl", root.display()))];
        assert!(followed(logs.join("r.jsonl"), &glob));
        let file = [Target::Path(root.join("link/r.jsonl"))];
        assert!(followed(root.join("elsewhere/../logs/r.jsonl"), &file));
        // Not followed: another directory, or not a `*.jsonl` file.
        assert!(!followed(root.join("logs2/r.jsonl"), &dir_target));
        assert!(!followed(root.join("elsewhere.jsonl"), &dir_target));
        assert!(!followed(logs.join("r.log"), &dir_target));
        assert!(!followed(root.join("r.jsonl"), &glob));
        let message = check_not_followed(&root.join("link/r.jsonl"), &dir_target).unwrap_err();
        assert!(message.contains("counted twice"), "{message}");
    }

    #[test]
    fn lines_without_text_are_recorded_as_they_came() {
        let line = br#"{"model":"m","input_tokens":1,"output_tokens":1}"#;
        assert_eq!(
            record_line(line, None).unwrap(),
            Recorded::Line(Cow::Borrowed(&line[..]))
        );
        assert_eq!(
            record_line(b"{broken", None).unwrap(),
            Recorded::Line(Cow::Borrowed(&b"{broken"[..]))
        );
        assert_eq!(
            record_line(b"event: message_delta", None).unwrap(),
            Recorded::Line(Cow::Borrowed(&b"event: message_delta"[..]))
        );
    }

    #[test]
    fn a_prompt_hash_is_kept_and_the_prompt_text_is_not() {
        // The hash is a fingerprint, not text: a replay finds the same
        // duplicates. (A recorded line that only had text loses its
        // fingerprints with the text.)
        let line = br#"{"model":"m","prompt_hash":"sha256:ab","input_tokens":1,"output_tokens":1}"#;
        assert_eq!(
            record_line(line, None).unwrap(),
            Recorded::Line(Cow::Borrowed(&line[..]))
        );
        let both = recorded(
            r#"{"model":"m","prompt":"SECRET","prompt_hash":"sha256:ab","input_tokens":1,"output_tokens":1}"#,
        );
        assert!(!both.contains("SECRET"), "{both}");
        assert!(both.contains(r#""prompt_hash":"sha256:ab""#), "{both}");
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
        let Recorded::Line(now) = record_line(native.as_bytes(), Some(Format::OpenAi)).unwrap()
        else {
            panic!("recorded later");
        };
        assert!(!String::from_utf8_lossy(&now).contains("hi there"));
        // Forced native, a line of another shape with text but no counts is.
        let shaped = r#"{"object":"chat.completion","model":"gpt-4o","prompt":"hi"}"#;
        assert_eq!(
            record_line(shaped.as_bytes(), Some(Format::Native)).unwrap(),
            Recorded::Later
        );
    }
}
