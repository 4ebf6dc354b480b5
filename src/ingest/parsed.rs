//! Lines parsed where they are read, applied where the ledger is.
//!
//! Parsing is most of ingest's CPU, and the ledger has one owner. So every
//! reader (the report's parse thread, the live follower, each socket client,
//! standard input) parses its lines into [`ParsedLines`] and sends them on;
//! the ledger's owner only folds the events in ([`ParsedLines::apply`]). On
//! two cores the wall time becomes about max(parse, fold) instead of their
//! sum.
//!
//! Parsed events cannot cross threads as they are (their strings borrow the
//! read buffer), and owning every string would cost an allocation per field.
//! So a batch keeps the bytes its lines were parsed from and stores every
//! string of an event as a span: a byte range into those bytes, or into
//! the batch's side storage for strings that are not in them (JSON escapes,
//! synthetic run ids, `unknown`, and lines that straddled two reads and were
//! joined by the splitter). The owner rebuilds each [`TelemetryEvent`]
//! borrowing from the batch.

use std::borrow::Cow;

use super::Ingestor;
use super::formats::{Decoder, Emit, Outcome};
use super::lines::{Line, ReadBuffer};
use super::stats::RejectKind;
use crate::types::event::{CallId, EventKind, Format, TelemetryEvent};
use crate::types::money::Usd;
use crate::types::prompt::PromptPrint;
use crate::types::usage::Usage;

/// Parsed lines and the bytes their strings live in.
#[derive(Debug, Default)]
pub struct ParsedLines {
    /// The report's read buffer: spans stay in `text[..filled]`, validated
    /// as UTF-8 once, where the read was parsed (the buffer carries the
    /// proof); a read that is not UTF-8 has its spans checked where the
    /// batch is applied. Empty in live batches.
    pub(super) text: ReadBuffer,
    /// How much of `text` holds data (the report reads into a fixed-size
    /// buffer).
    pub(super) filled: usize,
    /// Live batches: the lines pushed, each followed by `\n`, validated as
    /// they came (the parser needs that anyway), so the aggregator need not
    /// validate them again. Spans point here when it is not empty.
    pub(super) lines: String,
    /// Live lines that were not UTF-8, with where they were in `lines`
    /// (they are rejected or, like serde, only ignore the invalid bytes; a
    /// `--record` file keeps them as they were).
    pub(super) invalid: Vec<(usize, Box<[u8]>)>,
    /// Bytes in `invalid`, newlines included (kept, not summed per push:
    /// a flood of invalid lines must stay linear).
    pub(super) invalid_bytes: usize,
    /// Strings that are not in the text.
    pub(super) side: String,
    /// Prompt fingerprints of the events that have one (`RelEvent::print`
    /// indexes it: most events have none, and an index fits in the room
    /// a `RelEvent` has to spare where a print would grow every event).
    pub(super) prints: Vec<PromptPrint>,
    /// One per line, in order.
    pub(super) items: Vec<Item>,
}

impl ParsedLines {
    /// An empty live batch that will hold about `bytes` of lines.
    #[must_use]
    pub fn with_capacity(bytes: usize) -> Self {
        ParsedLines {
            lines: String::with_capacity(bytes),
            // ~400 bytes a line is typical telemetry; shorter lines grow it
            items: Vec::with_capacity(bytes / 384),
            ..ParsedLines::default()
        }
    }

    /// Copies complete line `line_no` (without its newline) in and decodes
    /// it with `decoder` (the source's).
    pub fn push_line(&mut self, decoder: &mut Decoder, line_no: u64, line: &[u8]) {
        match std::str::from_utf8(line) {
            Ok(valid) => {
                let start = self.lines.len();
                self.lines.push_str(valid);
                self.lines.push('\n');
                let base = self.lines.as_ptr().addr();
                let mut emitter = Emitter::new(
                    Relocator {
                        text_start: base,
                        text_end: base + self.lines.len(),
                        side: &mut self.side,
                        prints: &mut self.prints,
                    },
                    &mut self.items,
                );
                let line = &self.lines[start..start + valid.len()];
                let outcome = decoder.decode_str(line, line_no, &mut emitter);
                emitter.finish_line(line_no, outcome);
            }
            Err(_) => {
                self.invalid.push((self.lines.len(), line.into()));
                self.invalid_bytes += line.len() + 1;
                // Nothing of it is in `lines`: what the event keeps goes to
                // the side storage.
                let mut emitter = Emitter::new(
                    Relocator {
                        text_start: 0,
                        text_end: 0,
                        side: &mut self.side,
                        prints: &mut self.prints,
                    },
                    &mut self.items,
                );
                let outcome = decoder.decode_bytes(line, line_no, &mut emitter);
                emitter.finish_line(line_no, outcome);
            }
        }
    }

    /// Adds what `decoder` still holds (its source ended or restarts).
    pub fn flush(&mut self, decoder: &mut Decoder) {
        let mut emitter = Emitter::new(
            Relocator {
                text_start: 0,
                text_end: 0,
                side: &mut self.side,
                prints: &mut self.prints,
            },
            &mut self.items,
        );
        decoder.flush(&mut emitter);
    }

    /// Bytes of the lines pushed with [`ParsedLines::push_line`].
    #[must_use]
    pub fn pushed_bytes(&self) -> usize {
        self.lines.len() + self.invalid_bytes
    }

    /// Calls `f` with every line pushed with [`ParsedLines::push_line`], in
    /// order, as it was pushed (without its newline).
    ///
    /// # Errors
    /// What `f` returns.
    pub fn try_for_each_line<E>(&self, mut f: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let mut invalid = self.invalid.iter().peekable();
        let mut at = 0;
        for line in self.lines.split_inclusive('\n') {
            while let Some((_, bytes)) = invalid.next_if(|(pos, _)| *pos <= at) {
                f(bytes)?;
            }
            at += line.len();
            f(line.strip_suffix('\n').unwrap_or(line).as_bytes())?;
        }
        for (_, bytes) in invalid {
            f(bytes)?;
        }
        Ok(())
    }

    /// Lines and events in the batch (a line yields zero or more events).
    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Empties the batch, keeping its buffers (`text` keeps its length: the
    /// report reads into all of it).
    pub fn clear(&mut self) {
        self.items.clear();
        self.side.clear();
        self.prints.clear();
        self.lines.clear();
        self.invalid.clear();
        self.invalid_bytes = 0;
        self.filled = 0;
    }

    /// Whether the read buffer is mostly text no event keeps (Claude Code's
    /// tool results, skipped lines): then [`ParsedLines::detach_text`] is
    /// worth it.
    #[must_use]
    pub(super) fn is_sparse(&self) -> bool {
        let events = self
            .items
            .iter()
            .filter(|i| matches!(i, Item::Event(_)))
            .count();
        !self.text.is_empty() && events.saturating_mul(SPARSE_BYTES_PER_EVENT) < self.filled
    }

    /// Moves the strings events keep out of the read buffer, into the side
    /// storage, and hands the buffer back for the next read: the batch then
    /// weighs what its events do, not the chunk they were read from.
    pub(super) fn detach_text(&mut self) -> ReadBuffer {
        let text = std::mem::take(&mut self.text);
        let data = text.data(self.filled);
        for item in &mut self.items {
            if let Item::Event(event) = item {
                for span in event.spans_mut() {
                    if *span == Span::NONE || span.start & SIDE != 0 {
                        continue;
                    }
                    let (start, len) = (span.start as usize, span.len as usize);
                    let moved = data
                        .get(start..start + len)
                        .and_then(|bytes| std::str::from_utf8(bytes).ok())
                        .and_then(|s| {
                            let offset = u32::try_from(self.side.len()).ok()?;
                            (offset.checked_add(span.len)? < SIDE).then(|| {
                                self.side.push_str(s);
                                offset | SIDE
                            })
                        });
                    // A span that cannot move (a bug, or over 2 GiB of side
                    // text) becomes out of place: reported when applied.
                    span.start = moved.unwrap_or(!SIDE);
                }
            }
        }
        self.filled = 0;
        text
    }

    /// Bytes the batch holds (its read buffer, decoded items, side text).
    #[must_use]
    pub(super) fn weight(&self) -> usize {
        self.text.len()
            + self.lines.capacity()
            + self.side.capacity()
            + self.prints.capacity() * std::mem::size_of::<PromptPrint>()
            + self.items.capacity() * std::mem::size_of::<Item>()
    }

    /// Folds every line and event into `ingestor` as source number
    /// `source`; `locate` names where a rejected line was. The batch is left
    /// empty, its buffers kept for reuse.
    ///
    /// # Errors
    /// A span out of place: a bug, reported rather than trusted.
    pub fn apply(
        &mut self,
        source: usize,
        max_line_bytes: usize,
        ingestor: &mut Ingestor<'_>,
        locate: impl Fn(u64) -> String,
    ) -> std::io::Result<()> {
        let ParsedLines {
            text,
            filled,
            lines,
            invalid,
            invalid_bytes,
            side,
            prints,
            items,
        } = self;
        let texts = if lines.is_empty() {
            // A read checked as UTF-8 where it was parsed needs no check
            // here; any other (not UTF-8, or sparse and detached) is
            // checked span by span.
            match text.text(*filled) {
                Some(valid) => Texts {
                    text: valid.as_bytes(),
                    valid,
                    side,
                    prints,
                },
                None => Texts::unchecked(text.data(*filled), side, prints),
            }
        } else {
            Texts {
                text: lines.as_bytes(),
                valid: lines,
                side,
                prints,
            }
        };
        let mut result = Ok(());
        // By reference: moving each item out would copy it once more.
        for item in items.iter_mut() {
            match item {
                Item::Event(event) => match texts.rebuild(event) {
                    Some(rebuilt) => {
                        if event.flags & COUNTS_LINE != 0 {
                            ingestor.stats.count_line(source, event.format);
                        }
                        ingestor.event(source, &rebuilt, || locate(event.line_no));
                    }
                    None => {
                        result = Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "internal error: a relocated string is out of place",
                        ));
                    }
                },
                Item::Owned(owned) => {
                    let (line_no, counts_line, event) = &**owned;
                    if *counts_line {
                        ingestor.stats.count_line(source, event.format);
                    }
                    ingestor.event(source, event, || locate(*line_no));
                }
                Item::Blank => {
                    ingestor.stats.count_line(source, Format::Native);
                    ingestor.stats.count_blank(source);
                }
                Item::Ignored(format) => {
                    ingestor.stats.count_line(source, *format);
                    ingestor.stats.count_ignored(source);
                }
                Item::Rejected {
                    line_no,
                    format,
                    kind,
                    reason,
                } => {
                    ingestor.stats.count_line(source, *format);
                    ingestor.stats.reject_at(
                        source,
                        locate(*line_no),
                        *kind,
                        std::mem::take(reason),
                    );
                }
                Item::Oversized { line_no, bytes } => {
                    ingestor.stats.count_line(source, Format::Native);
                    ingestor.stats.reject_at(
                        source,
                        locate(*line_no),
                        RejectKind::Oversized,
                        oversized_reason(*bytes, max_line_bytes),
                    );
                }
            }
        }
        items.clear();
        side.clear();
        prints.clear();
        lines.clear();
        invalid.clear();
        *invalid_bytes = 0;
        *filled = 0;
        ingestor.hand_off_ended_runs();
        result
    }
}

/// Decodes numbered lines of one source with `decoder` and folds them into
/// `ingestor` as source `source`, a batch at a time, then what the decoder
/// still holds (tests, benchmarks, tools that have lines in memory).
pub fn fold_lines<'l>(
    ingestor: &mut Ingestor<'_>,
    source: usize,
    decoder: &mut Decoder,
    lines: impl IntoIterator<Item = (u64, &'l [u8])>,
) {
    let name = ingestor.stats.sources[source].name.clone();
    let mut batch = ParsedLines::with_capacity(256 * 1024);
    let fold = |batch: &mut ParsedLines, ingestor: &mut Ingestor<'_>| {
        // Spans are made by this batch: none can be out of place.
        let _ = batch.apply(source, usize::MAX, ingestor, |n| format!("{name}:{n}"));
    };
    for (line_no, line) in lines {
        batch.push_line(decoder, line_no, line);
        if batch.len() >= 2048 {
            fold(&mut batch, ingestor);
        }
    }
    batch.flush(decoder);
    fold(&mut batch, ingestor);
}

/// Why a line over `--max-line-bytes` was skipped (the one wording, for
/// every source).
#[must_use]
pub fn oversized_reason(bytes: u64, max_line_bytes: usize) -> String {
    format!("line of {bytes} bytes exceeds --max-line-bytes {max_line_bytes}")
}

/// Fills a batch's items from a decoder: events become spans into the
/// batch, the line's outcome an item unless an event already counts it.
pub(super) struct Emitter<'r, 's> {
    relocator: Relocator<'s>,
    items: &'r mut Vec<Item>,
    /// Items before the line being decoded.
    mark: usize,
}

impl<'r, 's> Emitter<'r, 's> {
    pub(super) fn new(relocator: Relocator<'s>, items: &'r mut Vec<Item>) -> Self {
        let mark = items.len();
        Emitter {
            relocator,
            items,
            mark,
        }
    }

    /// Records how line `line_no` counts, once its events are in.
    pub(super) fn finish_line(&mut self, line_no: u64, outcome: Outcome) {
        let first = self.items.get_mut(self.mark);
        match outcome {
            Outcome::Events(format) => match first {
                Some(Item::Event(event)) => event.flags |= COUNTS_LINE,
                Some(Item::Owned(owned)) => owned.1 = true,
                _ => self.items.push(Item::Ignored(format)),
            },
            Outcome::Ignored(format) => self.items.push(Item::Ignored(format)),
            Outcome::Blank => self.items.push(Item::Blank),
            Outcome::Rejected {
                format,
                kind,
                reason,
            } => self.items.push(Item::Rejected {
                line_no,
                format,
                kind,
                reason,
            }),
        }
        self.mark = self.items.len();
    }

    /// A line that came out of the splitter: decoded, or skipped as too long.
    /// `valid`: the read, when it is known to be UTF-8 (a line in it is
    /// decoded as text, not checked again).
    pub(super) fn line(
        &mut self,
        decoder: &mut Decoder,
        line: Line<'_>,
        line_no: u64,
        valid: Option<&str>,
    ) {
        match line {
            Line::Complete(bytes) => {
                let outcome = match valid.and_then(|text| within_text(text, bytes)) {
                    Some(text) => decoder.decode_str(text, line_no, self),
                    None => decoder.decode_bytes(bytes, line_no, self),
                };
                self.finish_line(line_no, outcome);
            }
            Line::Oversized(bytes) => {
                self.items.push(Item::Oversized { line_no, bytes });
                self.mark = self.items.len();
            }
        }
    }
}

impl Emit for Emitter<'_, '_> {
    fn event(&mut self, line_no: u64, event: TelemetryEvent<'_>) {
        self.items.push(self.relocator.relocate(event, line_no));
    }
}

/// One event, or how a line without an event of its own counts.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every line is an event; boxing it would allocate per event"
)]
pub(super) enum Item {
    Event(RelEvent),
    /// An event whose strings did not fit a span (over 2 GiB of side text
    /// in one batch): owned instead, with its line and whether it counts it.
    Owned(Box<(u64, bool, TelemetryEvent<'static>)>),
    Blank,
    Ignored(Format),
    Rejected {
        line_no: u64,
        format: Format,
        kind: RejectKind,
        reason: String,
    },
    Oversized {
        line_no: u64,
        bytes: u64,
    },
}

/// A string's place in its batch: `start` with [`SIDE`] set is in the side
/// storage, otherwise in the text; `len == u32::MAX` is "no string".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    start: u32,
    len: u32,
}

const SIDE: u32 = 1 << 31;

impl Span {
    const NONE: Span = Span {
        start: 0,
        len: u32::MAX,
    };
}

/// An [`EventKind`], small: the rare budget events are boxed.
#[derive(Debug)]
enum RelKind {
    Hop,
    RunEnd,
    Other(Box<EventKind>),
}

/// Text bytes per event below which a batch keeps its read buffer (native
/// lines are ~270 bytes, each an event): above, the few strings its events
/// keep are moved out of it ([`ParsedLines::detach_text`]).
const SPARSE_BYTES_PER_EVENT: usize = 2048;

/// A [`TelemetryEvent`] with its strings as spans.
#[derive(Debug)]
pub(super) struct RelEvent {
    /// The line it was decoded from.
    line_no: u64,
    call: Option<CallId>,
    kind: RelKind,
    /// [`NO_TIME`] when the event has none (compact fields: a batch holds
    /// thousands of these, and their size is memory traffic on every line).
    ts_ms: i64,
    /// [`NO_LATENCY`] when not reported.
    latency_ms: u64,
    /// Picodollars, when `flags` has [`HAS_COST`] (a cost beyond ±$9.2
    /// million makes the event [`Item::Owned`]).
    reported_cost: i64,
    hop: Option<u32>,
    /// Position of the event's prompt print in `ParsedLines::prints`,
    /// [`NO_PRINT`] when it has none.
    print: u32,
    flags: u8,
    format: Format,
    run_id: Span,
    agent: Span,
    parent_agent: Span,
    user: Span,
    segment: Span,
    task: Span,
    tool: Span,
    provider: Span,
    model: Span,
    status: Span,
    usage: Usage,
}

const NO_TIME: i64 = i64::MIN;
const NO_LATENCY: u64 = u64::MAX;
const NO_PRINT: u32 = u32::MAX;
/// `RelEvent::flags`: the first event of its line (counting it counts the line).
const COUNTS_LINE: u8 = 1;
const ESTIMATED: u8 = 2;
const HAS_COST: u8 = 4;

impl RelEvent {
    fn spans_mut(&mut self) -> [&mut Span; 10] {
        [
            &mut self.run_id,
            &mut self.agent,
            &mut self.parent_agent,
            &mut self.user,
            &mut self.segment,
            &mut self.task,
            &mut self.tool,
            &mut self.provider,
            &mut self.model,
            &mut self.status,
        ]
    }
}

/// Turns the strings of events parsed from a batch's text into spans.
pub(super) struct Relocator<'s> {
    /// Address range of the batch's text.
    pub(super) text_start: usize,
    pub(super) text_end: usize,
    pub(super) side: &'s mut String,
    pub(super) prints: &'s mut Vec<PromptPrint>,
}

impl Relocator<'_> {
    /// `None` when the side storage would outgrow a span's range.
    fn span(&mut self, text: &str) -> Option<Span> {
        let start = text.as_ptr().addr();
        let len = u32::try_from(text.len()).ok().filter(|&l| l < u32::MAX)?;
        if start >= self.text_start
            && start
                .checked_add(text.len())
                .is_some_and(|end| end <= self.text_end)
        {
            let offset = u32::try_from(start - self.text_start).ok()?;
            return (offset < SIDE).then_some(Span { start: offset, len });
        }
        let offset = u32::try_from(self.side.len())
            .ok()
            .filter(|&o| o.checked_add(len).is_some_and(|end| end < SIDE))?;
        self.side.push_str(text);
        Some(Span {
            start: offset | SIDE,
            len,
        })
    }

    fn opt(&mut self, text: Option<&Cow<'_, str>>) -> Option<Span> {
        match text {
            Some(text) => self.span(text),
            None => Some(Span::NONE),
        }
    }

    fn relocate(&mut self, event: TelemetryEvent<'_>, line_no: u64) -> Item {
        let spans = (|| {
            Some([
                self.span(&event.run_id)?,
                self.span(&event.agent)?,
                self.opt(event.parent_agent.as_ref())?,
                self.opt(event.user.as_ref())?,
                self.opt(event.segment.as_ref())?,
                self.opt(event.task.as_ref())?,
                self.opt(event.tool.as_ref())?,
                self.opt(event.provider.as_ref())?,
                self.span(&event.model)?,
                self.opt(event.status.as_ref())?,
            ])
        })();
        let Some(
            [
                run_id,
                agent,
                parent_agent,
                user,
                segment,
                task,
                tool,
                provider,
                model,
                status,
            ],
        ) = spans
        else {
            return Item::Owned(Box::new((line_no, false, event.into_owned())));
        };
        let cost = match event.reported_cost.map(|c| i64::try_from(c.picos())) {
            None => None,
            Some(Ok(picos)) => Some(picos),
            Some(Err(_)) => return Item::Owned(Box::new((line_no, false, event.into_owned()))),
        };
        // Sentinels must not be real values: such an event travels owned.
        if event.ts_ms == Some(NO_TIME) || event.latency_ms == Some(NO_LATENCY) {
            return Item::Owned(Box::new((line_no, false, event.into_owned())));
        }
        let mut flags = 0;
        if event.estimated {
            flags |= ESTIMATED;
        }
        if cost.is_some() {
            flags |= HAS_COST;
        }
        let print = match event.prompt {
            None => NO_PRINT,
            Some(print) => match u32::try_from(self.prints.len()) {
                Ok(at) if at != NO_PRINT => {
                    self.prints.push(print);
                    at
                }
                _ => return Item::Owned(Box::new((line_no, false, event.into_owned()))),
            },
        };
        Item::Event(RelEvent {
            line_no,
            format: event.format,
            call: event.call,
            ts_ms: event.ts_ms.unwrap_or(NO_TIME),
            latency_ms: event.latency_ms.unwrap_or(NO_LATENCY),
            reported_cost: cost.unwrap_or(0),
            flags,
            kind: match event.kind {
                EventKind::Hop => RelKind::Hop,
                EventKind::RunEnd => RelKind::RunEnd,
                other => RelKind::Other(Box::new(other)),
            },
            hop: event.hop,
            print,
            run_id,
            agent,
            parent_agent,
            user,
            segment,
            task,
            tool,
            provider,
            model,
            status,
            usage: event.usage,
        })
    }
}

/// `part` as a slice of `text`, when it lies in it (a line of the read, not
/// one the splitter joined from two reads).
fn within_text<'t>(text: &'t str, part: &[u8]) -> Option<&'t str> {
    let start = part.as_ptr().addr().checked_sub(text.as_ptr().addr())?;
    text.get(start..start.checked_add(part.len())?)
}

/// Where the owner finds the strings of a batch.
struct Texts<'b> {
    text: &'b [u8],
    /// Text known to be UTF-8 (a live batch's lines; a report read checked
    /// once where it was parsed): spans in it need no validation of their
    /// own. Other reads (not UTF-8, or detached) check their spans one by
    /// one.
    valid: &'b str,
    side: &'b str,
    prints: &'b [PromptPrint],
}

impl<'b> Texts<'b> {
    /// Text not known to be UTF-8: each span is checked.
    fn unchecked(text: &'b [u8], side: &'b str, prints: &'b [PromptPrint]) -> Self {
        Texts {
            text,
            valid: "",
            side,
            prints,
        }
    }

    /// `None` for a span out of place.
    fn get(&self, span: Span) -> Option<&'b str> {
        let start = usize::try_from(span.start & !SIDE).ok()?;
        let end = start.checked_add(usize::try_from(span.len).ok()?)?;
        if span.start & SIDE != 0 {
            self.side.get(start..end)
        } else if end <= self.valid.len() {
            self.valid.get(start..end)
        } else {
            std::str::from_utf8(self.text.get(start..end)?).ok()
        }
    }

    /// `Some(None)` for an absent string, `None` for a span out of place.
    fn opt(&self, span: Span) -> Option<Option<Cow<'b, str>>> {
        if span == Span::NONE {
            return Some(None);
        }
        self.get(span).map(|t| Some(Cow::Borrowed(t)))
    }

    fn rebuild(&self, event: &RelEvent) -> Option<TelemetryEvent<'b>> {
        Some(TelemetryEvent {
            kind: match &event.kind {
                RelKind::Hop => EventKind::Hop,
                RelKind::RunEnd => EventKind::RunEnd,
                RelKind::Other(kind) => (**kind).clone(),
            },
            ts_ms: (event.ts_ms != NO_TIME).then_some(event.ts_ms),
            run_id: Cow::Borrowed(self.get(event.run_id)?),
            hop: event.hop,
            agent: Cow::Borrowed(self.get(event.agent)?),
            parent_agent: self.opt(event.parent_agent)?,
            user: self.opt(event.user)?,
            segment: self.opt(event.segment)?,
            task: self.opt(event.task)?,
            tool: self.opt(event.tool)?,
            provider: self.opt(event.provider)?,
            model: Cow::Borrowed(self.get(event.model)?),
            usage: event.usage,
            reported_cost: (event.flags & HAS_COST != 0)
                .then(|| Usd::from_picos(i128::from(event.reported_cost))),
            latency_ms: (event.latency_ms != NO_LATENCY).then_some(event.latency_ms),
            status: self.opt(event.status)?,
            estimated: event.flags & ESTIMATED != 0,
            format: event.format,
            call: event.call,
            prompt: match event.print {
                NO_PRINT => None,
                at => Some(*self.prints.get(at as usize)?),
            },
        })
    }
}

/// Tests: a `RelEvent`'s size (a prompt print must not grow every event).
#[cfg(test)]
pub(crate) fn rel_event_size() -> usize {
    std::mem::size_of::<RelEvent>()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::sync::Arc;

    use super::*;
    use crate::ingest::formats::DecoderConfig;
    use crate::model::{Ledger, LedgerConfig};
    use crate::pricing::PriceBook;

    /// The report's path: the lines in a file, read in chunks.
    fn through_file(lines: &[&[u8]]) -> (crate::model::Snapshot, crate::ingest::IngestStats) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        for line in lines {
            file.write_all(line).unwrap();
            file.write_all(b"\n").unwrap();
        }
        let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
        let mut ingestor = Ingestor::new(&mut ledger, crate::ingest::TimeWindow::default());
        crate::ingest::pipeline::read_files_one_thread(
            &[file.path().to_path_buf()],
            1024,
            &Arc::new(DecoderConfig::default()),
            &mut ingestor,
        )
        .unwrap();
        let stats = ingestor.stats;
        (ledger.snapshot(), stats)
    }

    /// The live path: lines pushed into small batches.
    fn through_batch(lines: &[&[u8]]) -> (crate::model::Snapshot, crate::ingest::IngestStats) {
        let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
        let mut ingestor = Ingestor::new(&mut ledger, crate::ingest::TimeWindow::default());
        let source = ingestor.stats.add_source("s".into(), "s".into());
        let mut decoder = Decoder::plain("s");
        // Small batches, so buffers are reused and reallocated along the way.
        for (chunk_no, chunk) in lines.chunks(3).enumerate() {
            let mut batch = ParsedLines::with_capacity(8);
            for (n, line) in (1_u64..).zip(chunk) {
                batch.push_line(&mut decoder, chunk_no as u64 * 3 + n, line);
            }
            assert_eq!(batch.len(), chunk.len());
            // A `--record` file gets back exactly what was pushed, in order.
            let mut back: Vec<Vec<u8>> = Vec::new();
            batch
                .try_for_each_line(|l| {
                    back.push(l.to_vec());
                    Ok::<(), ()>(())
                })
                .unwrap();
            assert_eq!(back, chunk.iter().map(|l| l.to_vec()).collect::<Vec<_>>());
            let bytes: usize = chunk.iter().map(|l| l.len() + 1).sum();
            assert_eq!(batch.pushed_bytes(), bytes);
            batch
                .apply(source, 1024, &mut ingestor, |n| format!("s#1:{n}"))
                .unwrap();
            assert!(batch.is_empty() && batch.pushed_bytes() == 0);
        }
        let stats = ingestor.stats;
        (ledger.snapshot(), stats)
    }

    #[test]
    fn live_batches_apply_exactly_what_the_report_path_does() {
        let lines: Vec<&[u8]> = vec![
            br#"{"ts":"2026-03-01T10:00:00Z","run_id":"r1","hop":1,"agent":"planner","model":"gpt-4.1","input_tokens":1000,"output_tokens":10,"segment":"a/b","user":"u"}"#,
            br#"{"ts":"2026-03-01T10:00:01Z","run_id":"r1","hop":2,"agent":"wr\u0069ter","model":"gpt-4.1","input_tokens":2000,"output_tokens":20,"cost_usd":0.5}"#,
            b"",
            b"   ",
            b"{not json",
            b"{\"model\":\"\xff\"}",
            // invalid UTF-8 only in an ignored value: serde accepts the line
            b"{\"run_id\":\"r9\",\"model\":\"gpt-4.1\",\"x\":\"\xff\",\"input_tokens\":3,\"output_tokens\":1}",
            b"\xfe\xff",
            br#"{"model":"claude-sonnet-4-5","input_tokens":5,"output_tokens":1}"#,
            br#"{"type":"run_end","run_id":"r1","status":"ok"}"#,
            br#"{"type":"budget_exceeded","run_id":"r1","hop":2,"limit_kind":"tokens","limit":100,"tokens":120,"action":"stop"}"#,
            br#"{"ts":"2026-03-01T10:00:02Z","run_id":"r2","agent":"a","model":"mystery-model","input_tokens":7,"output_tokens":7,"trace":"abc"}"#,
        ];
        let (a, mut sa) = through_file(&lines);
        let (b, mut sb) = through_batch(&lines);
        // Only the sources' names differ (a temporary file, "s").
        for stats in [&mut sa, &mut sb] {
            stats.files = 0;
            for source in &mut stats.sources {
                source.name.clear();
                source.origin.clear();
            }
            for sample in &mut stats.malformed_samples {
                sample.location = sample.location.rsplit(':').next().unwrap().to_owned();
            }
        }
        assert_eq!(sa, sb);
        assert_eq!(a.totals, b.totals);
        assert_eq!(a.runs.len(), b.runs.len());
        assert_eq!(sb.malformed, 3);
        assert_eq!(sb.invalid_utf8, 2);
        assert!(b.runs.iter().any(|r| &*r.run_id == "r9"));
        assert_eq!(sb.malformed_samples[0].location, "5");
        assert_eq!(sb.lines, 12);
    }
}
