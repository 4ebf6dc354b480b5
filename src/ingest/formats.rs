//! Input formats: pure decoders from a line's bytes to normalized events
//! (no I/O, no clock), one file per format, behind one [`Decoder`] per
//! source.
//!
//! A [`Decoder`] belongs to the task that reads its source (a file, a socket
//! client, standard input) and keeps that source's state: the format it was
//! detected in (by shape, [`detect`], remembered until a line no longer
//! looks like it) and what each stateful format carries from line to line
//! (an Anthropic stream's `message_start`, a Codex session's running
//! totals, OTLP spans waiting for their parents). A line yields zero, one or
//! more events ([`Emit`]), and one [`Outcome`] that says how the line counts.
//!
//! Calls a format may report more than once carry a `CallId`; they are
//! settled across sources where events are folded (`ingest::dedup`).

pub mod anthropic;
pub mod claude_code;
pub mod codex;
pub mod detect;
pub mod envelope;
pub mod gemini;
pub mod json;
pub mod litellm;
#[cfg(test)]
mod mutation;
pub mod native;
pub mod openai;
pub mod otlp;

use std::sync::Arc;

use crate::ingest::estimate::{self, Estimator};
use crate::ingest::stats::RejectKind;
use crate::types::event::{Format, TelemetryEvent};

pub use native::LineOrigin;

/// Where decoded events go (the batch being filled).
pub trait Emit {
    /// An event decoded from line `line_no` of the source (for events a
    /// stateful format completes later, the line it started on).
    fn event(&mut self, line_no: u64, event: TelemetryEvent<'_>);
}

/// What a line was, once decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It yielded events of its own (the first one emitted counts the line).
    Events(Format),
    /// Valid, but not a model call of its own: a Claude Code `user` line, a
    /// stream chunk without usage, a `message_start` completed later.
    Ignored(Format),
    Blank,
    /// Malformed or unrecognised; the reason names the format tried.
    Rejected {
        format: Format,
        kind: RejectKind,
        reason: String,
    },
}

/// Settings every decoder of a run shares.
#[derive(Debug, Clone, Default)]
pub struct DecoderConfig {
    /// `--input-format`: no detection, every line is read as this format.
    pub forced: Option<Format>,
    /// An attribute of OTLP spans (or their resource) whose value is the
    /// segment (`--segment-attribute`); `tokwatch.segment` and `segment` are
    /// always tried first.
    pub segment_attribute: Option<String>,
    /// Where records with text but no counts are counted exactly, off the
    /// decoding path (none: counted where decoded).
    pub estimator: Option<Estimator>,
}

/// A decoder's view of its surroundings.
#[derive(Debug, Clone, Copy)]
pub struct Context<'c> {
    /// Short name of the source for synthetic run ids (a file name, `stdin`).
    pub origin: &'c str,
    /// Names this source instance in the keys of calls that carry no id
    /// (`stream:{scope}:{line}`): the origin, or for a socket client its
    /// listener and connection number, so that two clients never share keys.
    pub scope: &'c str,
    pub config: &'c DecoderConfig,
}

/// What a stateful format's decoder made of a line it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    Events,
    Ignored,
}

/// One format's per-source state. `decode` gets lines in this format's
/// shape (not validated as UTF-8: what a decoder skips need not be); an
/// error is the reason the line is rejected (the format's name is added by
/// [`Decoder`]; [`json::INVALID_UTF8`] is counted as such).
pub trait FormatDecoder: Send {
    /// # Errors
    /// The line is malformed for this format.
    fn decode(
        &mut self,
        line: &[u8],
        line_no: u64,
        cx: Context<'_>,
        out: &mut dyn Emit,
    ) -> Result<Decoded, String>;

    /// Emits whatever is held for lines still to come (the source ended or
    /// was truncated); the state starts afresh.
    fn flush(&mut self, _cx: Context<'_>, _out: &mut dyn Emit) {}
}

fn new_state(format: Format) -> Option<Box<dyn FormatDecoder>> {
    Some(match format {
        Format::Native => return None,
        Format::OpenAi => Box::<openai::OpenAi>::default(),
        Format::Anthropic => Box::<anthropic::Anthropic>::default(),
        Format::Gemini => Box::<gemini::Gemini>::default(),
        Format::ClaudeCode => Box::<claude_code::ClaudeCode>::default(),
        Format::Codex => Box::<codex::Codex>::default(),
        Format::Otlp => Box::<otlp::Otlp>::default(),
        Format::LiteLlm => Box::<litellm::LiteLlm>::default(),
    })
}

/// A UTF-8 byte-order mark. Editors on Windows start files with one; it is
/// dropped where a line starts (a file's first, or where concatenated files
/// meet on standard input), where JSON never has it.
const BOM: &str = "\u{feff}";

/// One source's decoder: detection, remembered format, per-format state.
pub struct Decoder {
    config: Arc<DecoderConfig>,
    origin: Arc<str>,
    /// The source as shown to the user (a path, `unix:…`).
    name: Arc<str>,
    /// [`Context::scope`].
    scope: Arc<str>,
    /// The format of the last line recognised.
    current: Option<Format>,
    /// Per-format state, created on first use (`Format::index` order).
    states: [Option<Box<dyn FormatDecoder>>; Format::ALL.len()],
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("origin", &self.origin)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// A line of Server-Sent Events, as saved from a streamed response.
pub(crate) enum Sse<'l> {
    /// `data: {…}`: the JSON after the prefix.
    Data(&'l [u8]),
    /// `event: …`, `id: …`, `retry: …`, a `: comment` or `data: [DONE]`.
    Framing,
    Plain,
}

pub(crate) fn sse(line: &[u8]) -> Sse<'_> {
    if let Some(data) = line.strip_prefix(b"data:") {
        let data = data.trim_ascii();
        return if data == b"[DONE]" || data.is_empty() {
            Sse::Framing
        } else {
            Sse::Data(data)
        };
    }
    let framing = [b"event:".as_slice(), b"id:", b"retry:", b":"];
    if framing.iter().any(|p| line.starts_with(p)) {
        Sse::Framing
    } else {
        Sse::Plain
    }
}

impl Decoder {
    #[must_use]
    pub fn new(config: Arc<DecoderConfig>, origin: Arc<str>) -> Self {
        Decoder {
            current: config.forced,
            config,
            name: origin.clone(),
            scope: origin.clone(),
            origin,
            states: Default::default(),
        }
    }

    /// The same decoder, with keys of id-less calls scoped by `scope`
    /// ([`Context::scope`]).
    #[must_use]
    pub fn scoped(mut self, scope: Arc<str>) -> Self {
        self.scope = scope;
        self
    }

    /// The same decoder for a source shown as `name`.
    #[must_use]
    pub fn named(mut self, name: Arc<str>) -> Self {
        self.name = name;
        self
    }

    /// A decoder with default settings (tests, benchmarks).
    #[must_use]
    pub fn plain(origin: &str) -> Self {
        Decoder::new(Arc::default(), Arc::from(origin))
    }

    /// The format of the last line recognised.
    #[must_use]
    pub fn format(&self) -> Option<Format> {
        self.current
    }

    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Decodes one complete line (without its newline) that may not be
    /// UTF-8.
    pub fn decode_bytes(&mut self, line: &[u8], line_no: u64, out: &mut impl Emit) -> Outcome {
        let line = line.strip_prefix(BOM.as_bytes()).unwrap_or(line);
        if line.trim_ascii().is_empty() {
            return Outcome::Blank;
        }
        match self.pick(line) {
            Picked::Native(data, fallback) => {
                self.native(data, fallback, line_no, out, |data, origin| {
                    native::parse_line(data, origin)
                })
            }
            Picked::Framing(format) => Outcome::Ignored(format),
            Picked::Foreign(format, data) => self.foreign(format, data, line_no, out),
        }
    }

    /// [`Decoder::decode_bytes`] for a line known to be UTF-8.
    pub fn decode_str(&mut self, line: &str, line_no: u64, out: &mut impl Emit) -> Outcome {
        let line = line.strip_prefix(BOM).unwrap_or(line);
        if line.trim_ascii().is_empty() {
            return Outcome::Blank;
        }
        match self.pick(line.as_bytes()) {
            Picked::Native(data, fallback) => {
                let text = within(line, data);
                self.native(text, fallback, line_no, out, |text, origin| {
                    native::parse_str(text, origin)
                })
            }
            Picked::Framing(format) => Outcome::Ignored(format),
            Picked::Foreign(format, data) => self.foreign(format, data, line_no, out),
        }
    }

    /// Emits what stateful formats hold (at the end of a source, or before
    /// it starts over after a truncation).
    pub fn flush(&mut self, out: &mut impl Emit) {
        let cx = Context {
            origin: &self.origin,
            scope: &self.scope,
            config: &self.config,
        };
        for state in self.states.iter_mut().flatten() {
            state.flush(cx, out);
        }
    }

    fn pick<'l>(&mut self, line: &'l [u8]) -> Picked<'l> {
        let data = match sse(line) {
            Sse::Data(data) => data,
            Sse::Framing => return Picked::Framing(self.current.unwrap_or(Format::Native)),
            Sse::Plain => line,
        };
        let format = match (self.config.forced, self.current) {
            (Some(format), _) => format,
            (None, Some(current)) if detect::still(current, data) => current,
            (None, current) => match detect::foreign(data) {
                Some(format) => format,
                // Nothing else recognised: a native line (a source switched
                // back), or else a damaged line of the source's own format,
                // judged as such.
                None => {
                    return Picked::Native(data, current.filter(|f| *f != Format::Native));
                }
            },
        };
        if format == Format::Native {
            Picked::Native(data, None)
        } else {
            Picked::Foreign(format, data)
        }
    }

    fn native<'t, T: ?Sized + AsRef<[u8]>>(
        &mut self,
        data: &'t T,
        fallback: Option<Format>,
        line_no: u64,
        out: &mut impl Emit,
        parse: impl Fn(&'t T, LineOrigin<'_>) -> Result<TelemetryEvent<'t>, native::ParseError>,
    ) -> Outcome {
        let origin = LineOrigin {
            source: &self.origin,
            rough: self.config.estimator.is_some(),
        };
        match parse(data, origin) {
            Ok(mut event) => {
                self.current = Some(Format::Native);
                if event.estimated
                    && let Some(estimator) = &self.config.estimator
                    && let Some(job) = self.estimate_later(data.as_ref(), &mut event, line_no)
                {
                    out.event(line_no, event);
                    estimator.submit(job);
                } else {
                    out.event(line_no, event);
                }
                Outcome::Events(Format::Native)
            }
            Err(error) => {
                // A line of another format met in a native source (a socket
                // whose client switched formats): decode it as that format.
                if self.config.forced.is_none()
                    && let Some(format) = detect::foreign(data.as_ref()).or(fallback)
                {
                    return self.foreign(format, data.as_ref(), line_no, out);
                }
                let kind = match error {
                    native::ParseError::InvalidUtf8 => RejectKind::InvalidUtf8,
                    _ => RejectKind::Malformed,
                };
                Outcome::Rejected {
                    format: Format::Native,
                    kind,
                    reason: match kind {
                        RejectKind::InvalidUtf8 => error.to_string(),
                        _ => format!("native: {error}"),
                    },
                }
            }
        }
    }

    /// The job that counts a roughly counted native record exactly, if its
    /// text is what was counted; the event gets an identity, so that the
    /// exact count replaces it.
    fn estimate_later(
        &self,
        line: &[u8],
        event: &mut TelemetryEvent<'_>,
        line_no: u64,
    ) -> Option<estimate::Job> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let Ok(serde_json::Value::Object(mut record)) = serde_json::from_slice(line) else {
            return None;
        };
        let mut text = |text_field: &str, count_field: &str| {
            let missing = record
                .get(count_field)
                .is_none_or(serde_json::Value::is_null);
            match record.remove(text_field) {
                Some(serde_json::Value::String(text)) if missing => Some(text),
                _ => None,
            }
        };
        let prompt = text("prompt", "input_tokens");
        let completion = text("completion", "output_tokens");
        if prompt.is_none() && completion.is_none() {
            return None;
        }
        // What `--record` keeps of it: no text of any kind.
        super::record::strip_object(&mut record);
        let n = NEXT
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string();
        event.call = Some(crate::types::event::CallId {
            key: json::call_key(Format::Native, &["estimated", &n]),
            attempt: 0,
            replay: false,
            rule: crate::types::event::Supersede::Largest,
            pin: false,
        });
        Some(estimate::Job {
            event: event.clone().into_owned(),
            prompt,
            completion,
            record: Some(record),
            source: self.name.clone(),
            origin: self.origin.clone(),
            line_no,
        })
    }

    fn foreign(
        &mut self,
        format: Format,
        text: &[u8],
        line_no: u64,
        out: &mut impl Emit,
    ) -> Outcome {
        let cx = Context {
            origin: &self.origin,
            scope: &self.scope,
            config: &self.config,
        };
        let slot = &mut self.states[format.index()];
        if slot.is_none() {
            *slot = new_state(format);
        }
        let Some(state) = slot.as_mut() else {
            return Outcome::Ignored(format);
        };
        self.current = Some(format);
        match state.decode(text, line_no, cx, out) {
            Ok(Decoded::Events) => Outcome::Events(format),
            Ok(Decoded::Ignored) => Outcome::Ignored(format),
            Err(reason) if reason == json::INVALID_UTF8 => Outcome::Rejected {
                format,
                kind: RejectKind::InvalidUtf8,
                reason,
            },
            Err(reason) => Outcome::Rejected {
                format,
                kind: RejectKind::Malformed,
                reason: format!("{}: {reason}", format.name()),
            },
        }
    }
}

/// `part` (a slice of `line`'s bytes cut at ASCII bytes) as text.
fn within<'l>(line: &'l str, part: &[u8]) -> &'l str {
    let start = part.as_ptr().addr().wrapping_sub(line.as_ptr().addr());
    line.get(start..start.wrapping_add(part.len()))
        .unwrap_or(line)
}

enum Picked<'l> {
    /// A native line, else one of the format given, if any.
    Native(&'l [u8], Option<Format>),
    Framing(Format),
    Foreign(Format, &'l [u8]),
}

#[cfg(test)]
pub(crate) mod tests;
