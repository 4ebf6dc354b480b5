//! The one-shot report's two-stage pipeline: a scoped thread reads and
//! parses the files (stage A) while the calling thread folds the events into
//! the ledger (stage B), in exactly the order [`files::read_files`] would.
//!
//! Parsed events cannot cross threads as they are (their strings borrow the
//! read buffer), and owning every string would cost an allocation per field.
//! So stage A moves each 1 MiB chunk into a [`Batch`] and stores every
//! string of an event as a [`Span`]: a byte range into that chunk, or into
//! the batch's side storage for strings that are not in the chunk (JSON
//! escapes, synthetic run ids, `unknown`, and lines that straddled two reads
//! and were joined by the splitter). Stage B rebuilds each
//! [`TelemetryEvent`] borrowing from the batch and hands it to the
//! [`Ingestor`]'s ledger and statistics, then sends the emptied batch back
//! so its buffers are reused: memory stays at a few chunks.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use super::Ingestor;
use super::files::{self, CHUNK_BYTES, DiscoverError, origin_of};
use super::lines::{Line, LineSplitter};
use super::native::{self, LineOrigin, ParseError};
use super::stats::RejectKind;
use crate::model::event::{EventKind, TelemetryEvent, Usage};
use crate::model::money::Usd;

/// Parsed batches queued between the stages. Each holds one 1 MiB chunk and
/// its records (~4,000 lines of the benchmark corpus), so at most this many
/// plus two (the one being parsed, the one being applied) exist at once:
/// ~6 MiB of chunks. Four absorbs the jitter between the stages; a deeper
/// queue only costs memory, since the slower stage sets the pace anyway.
const QUEUE_BATCHES: usize = 4;

/// Reads each file once into the ingestor, using a parse thread when
/// `threads` allows it: `Some(1)` is [`files::read_files`] on this thread;
/// `None` pipelines when the machine has more than one core. Both give the
/// same ingestor state.
///
/// # Errors
/// As [`files::read_files`].
pub fn read_files_threads(
    files: &[PathBuf],
    max_line_bytes: usize,
    ingestor: &mut Ingestor<'_>,
    threads: Option<NonZeroUsize>,
) -> Result<(), DiscoverError> {
    let threads = threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        NonZeroUsize::get,
    );
    if threads > 1 {
        read_files(files, max_line_bytes, ingestor)
    } else {
        files::read_files(files, max_line_bytes, ingestor)
    }
}

/// [`files::read_files`] with reading and parsing on a second thread.
///
/// # Errors
/// As [`files::read_files`]: a file that cannot be opened or read, named in
/// the message; everything before it has been ingested.
pub fn read_files(
    files: &[PathBuf],
    max_line_bytes: usize,
    ingestor: &mut Ingestor<'_>,
) -> Result<(), DiscoverError> {
    std::thread::scope(|scope| {
        let (to_b, from_a) = mpsc::sync_channel(QUEUE_BATCHES);
        // Unbounded, but it only ever holds batches stage B has finished,
        // which stage A takes back before allocating new ones.
        let (to_a, from_b) = mpsc::channel();
        scope.spawn(move || produce(files, max_line_bytes, &to_b, &from_b));
        // `from_a` is dropped when this returns, so stage A stops at its
        // next send if stage B gave up early.
        consume(files, max_line_bytes, ingestor, &from_a, &to_a)
    })
}

/// What stage A tells stage B, in reading order.
enum Msg {
    /// Reading file number `.0` starts (register it as a source).
    File(usize),
    Batch(Batch),
    /// File number `.0` could not be opened or read; nothing follows.
    Failed(usize, io::Error),
}

/// One read's worth of parsed lines, with the bytes their strings live in.
struct Batch {
    /// The read buffer (always [`CHUNK_BYTES`] long; spans stay in the part
    /// that was read).
    chunk: Vec<u8>,
    /// How much of `chunk` was read.
    filled: usize,
    /// Strings that are not in `chunk`.
    side: String,
    /// One per line completed by this read, in order.
    items: Vec<Item>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            chunk: vec![0; CHUNK_BYTES],
            filled: 0,
            side: String::new(),
            items: Vec::new(),
        }
    }

    /// A batch stage B has finished with, else a new one.
    fn reuse(recycled: &Receiver<Batch>) -> Self {
        match recycled.try_recv() {
            Ok(mut batch) => {
                batch.items.clear();
                batch.side.clear();
                batch
            }
            Err(_) => Batch::new(),
        }
    }
}

/// One line, parsed.
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every line is an event; boxing it would allocate per event"
)]
enum Item {
    Event(RelEvent),
    /// An event whose strings did not fit a span (over 2 GiB of side text
    /// in one batch): owned instead.
    Owned(Box<TelemetryEvent<'static>>),
    Blank,
    Rejected {
        line_no: u64,
        kind: RejectKind,
        reason: String,
    },
    Oversized {
        line_no: u64,
        bytes: u64,
    },
}

/// A string's place in its batch: `start` with [`SIDE`] set is in the side
/// storage, otherwise in the chunk; `len == u32::MAX` is "no string".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
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
enum RelKind {
    Hop,
    RunEnd,
    Other(Box<EventKind>),
}

/// A [`TelemetryEvent`] with its strings as spans.
struct RelEvent {
    kind: RelKind,
    ts_ms: Option<i64>,
    hop: Option<u32>,
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
    reported_cost: Option<Usd>,
    latency_ms: Option<u64>,
    estimated: bool,
}

/// Turns the strings of events parsed from one chunk into spans.
struct Relocator<'s> {
    /// Address range of the bytes read into the chunk.
    chunk_start: usize,
    chunk_end: usize,
    side: &'s mut String,
}

impl Relocator<'_> {
    /// `None` when the side storage would outgrow a span's range.
    fn span(&mut self, text: &str) -> Option<Span> {
        let start = text.as_ptr().addr();
        let len = u32::try_from(text.len()).ok().filter(|&l| l < u32::MAX)?;
        if start >= self.chunk_start
            && start
                .checked_add(text.len())
                .is_some_and(|end| end <= self.chunk_end)
        {
            let offset = u32::try_from(start - self.chunk_start).ok()?;
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

    fn relocate(&mut self, event: TelemetryEvent<'_>) -> Item {
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
            return Item::Owned(Box::new(event.into_owned()));
        };
        Item::Event(RelEvent {
            kind: match event.kind {
                EventKind::Hop => RelKind::Hop,
                EventKind::RunEnd => RelKind::RunEnd,
                other => RelKind::Other(Box::new(other)),
            },
            ts_ms: event.ts_ms,
            hop: event.hop,
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
            reported_cost: event.reported_cost,
            latency_ms: event.latency_ms,
            estimated: event.estimated,
        })
    }
}

/// Parses one line into an item, as [`Ingestor::line`] would judge it.
fn parse_item(line: Line<'_>, line_no: u64, origin: &str, relocator: &mut Relocator<'_>) -> Item {
    let bytes = match line {
        Line::Oversized(bytes) => return Item::Oversized { line_no, bytes },
        Line::Complete(bytes) => bytes,
    };
    if bytes.trim_ascii().is_empty() {
        return Item::Blank;
    }
    match native::parse_line(bytes, LineOrigin { source: origin }) {
        Ok(event) => relocator.relocate(event),
        Err(ParseError::InvalidUtf8) => Item::Rejected {
            line_no,
            kind: RejectKind::InvalidUtf8,
            reason: "invalid UTF-8".into(),
        },
        Err(error) => Item::Rejected {
            line_no,
            kind: RejectKind::Malformed,
            reason: error.to_string(),
        },
    }
}

/// Why stage A stopped reading a file early.
enum Stop {
    Io(io::Error),
    /// Stage B is gone.
    Hung,
}

/// Stage A: reads, splits and parses every file, sending batches in order.
fn produce(
    files: &[PathBuf],
    max_line_bytes: usize,
    to_b: &SyncSender<Msg>,
    recycled: &Receiver<Batch>,
) {
    for (index, path) in files.iter().enumerate() {
        if to_b.send(Msg::File(index)).is_err() {
            return;
        }
        let result = File::open(path)
            .map_err(Stop::Io)
            .and_then(|mut file| produce_file(&mut file, path, max_line_bytes, to_b, recycled));
        match result {
            Ok(()) => {}
            Err(Stop::Io(error)) => {
                // Stage B returns on this; whether it is still there does
                // not matter.
                let _ = to_b.send(Msg::Failed(index, error));
                return;
            }
            Err(Stop::Hung) => return,
        }
    }
}

/// One file through [`LineSplitter`] as [`files::for_each_line`] reads it:
/// lines numbered from 1, an unterminated last line counted at the end, and
/// on a read error, the lines before it kept and no final line.
fn produce_file(
    reader: &mut impl Read,
    path: &std::path::Path,
    max_line_bytes: usize,
    to_b: &SyncSender<Msg>,
    recycled: &Receiver<Batch>,
) -> Result<(), Stop> {
    let origin = origin_of(path);
    let mut splitter = LineSplitter::new(max_line_bytes);
    let mut line_no = 0_u64;
    let mut batch = Batch::reuse(recycled);
    loop {
        let read = match reader.read(&mut batch.chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Stop::Io(e)),
        };
        batch.filled = read;
        let Batch {
            chunk, side, items, ..
        } = &mut batch;
        let bytes = &chunk[..read];
        let mut relocator = Relocator {
            chunk_start: bytes.as_ptr().addr(),
            chunk_end: bytes.as_ptr().addr() + bytes.len(),
            side,
        };
        let mut push = |line: Line<'_>| {
            line_no += 1;
            items.push(parse_item(line, line_no, &origin, &mut relocator));
        };
        if read == 0 {
            splitter.finish(&mut push);
        } else {
            splitter.feed(bytes, &mut push);
        }
        if !batch.items.is_empty() {
            to_b.send(Msg::Batch(batch)).map_err(|_| Stop::Hung)?;
            batch = Batch::reuse(recycled);
        }
        if read == 0 {
            return Ok(());
        }
    }
}

/// Stage B: applies the batches in order, as [`files::read_files`] would.
fn consume(
    files: &[PathBuf],
    max_line_bytes: usize,
    ingestor: &mut Ingestor<'_>,
    from_a: &Receiver<Msg>,
    to_a: &Sender<Batch>,
) -> Result<(), DiscoverError> {
    let mut source = 0;
    let mut path_index = 0;
    for msg in from_a {
        match msg {
            Msg::File(index) => {
                let path = &files[index];
                source = ingestor
                    .stats
                    .add_source(path.display().to_string(), origin_of(path));
                ingestor.stats.files += 1;
                path_index = index;
            }
            Msg::Batch(mut batch) => {
                apply(&mut batch, source, max_line_bytes, ingestor).map_err(|source| {
                    DiscoverError::Io {
                        path: files[path_index].clone(),
                        source,
                    }
                })?;
                // Stage A may have finished already; the batch is then freed.
                let _ = to_a.send(batch);
            }
            Msg::Failed(index, source) => {
                return Err(DiscoverError::Io {
                    path: files[index].clone(),
                    source,
                });
            }
        }
    }
    Ok(())
}

fn apply(
    batch: &mut Batch,
    source: usize,
    max_line_bytes: usize,
    ingestor: &mut Ingestor<'_>,
) -> io::Result<()> {
    let Batch {
        chunk,
        filled,
        side,
        items,
    } = batch;
    let texts = Texts::new(&chunk[..*filled], side);
    for item in items.drain(..) {
        match item {
            Item::Event(event) => {
                let event = texts.rebuild(event).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "internal error: a relocated string is out of place",
                    )
                })?;
                event_line(ingestor, source, &event);
            }
            Item::Owned(event) => event_line(ingestor, source, &event),
            Item::Blank => {
                ingestor.stats.count_line(source);
                ingestor.stats.count_blank(source);
            }
            Item::Rejected {
                line_no,
                kind,
                reason,
            } => {
                ingestor.stats.count_line(source);
                ingestor.stats.reject(source, line_no, kind, reason);
            }
            Item::Oversized { line_no, bytes } => {
                ingestor.oversized(source, line_no, bytes, max_line_bytes);
            }
        }
    }
    Ok(())
}

/// What [`Ingestor::line`] does with a line that parsed.
fn event_line(ingestor: &mut Ingestor<'_>, source: usize, event: &TelemetryEvent<'_>) {
    ingestor.stats.count_line(source);
    if ingestor.window.contains(event.ts_ms) {
        ingestor.ledger.apply(event);
        ingestor.stats.count_event(source);
    } else {
        ingestor.stats.count_filtered(source);
    }
}

/// Where stage B finds the strings of a batch.
struct Texts<'b> {
    chunk: &'b [u8],
    /// The longest valid UTF-8 prefix of `chunk`, validated once: the whole
    /// chunk unless it holds an invalid line or starts or ends inside a
    /// character. Spans in it need no validation of their own.
    valid: &'b str,
    side: &'b str,
}

impl<'b> Texts<'b> {
    fn new(chunk: &'b [u8], side: &'b str) -> Self {
        let valid = match std::str::from_utf8(chunk) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&chunk[..e.valid_up_to()]).unwrap_or_default(),
        };
        Texts { chunk, valid, side }
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
            std::str::from_utf8(self.chunk.get(start..end)?).ok()
        }
    }

    /// `Some(None)` for an absent string, `None` for a span out of place.
    fn opt(&self, span: Span) -> Option<Option<Cow<'b, str>>> {
        if span == Span::NONE {
            return Some(None);
        }
        self.get(span).map(|t| Some(Cow::Borrowed(t)))
    }

    fn rebuild(&self, event: RelEvent) -> Option<TelemetryEvent<'b>> {
        Some(TelemetryEvent {
            kind: match event.kind {
                RelKind::Hop => EventKind::Hop,
                RelKind::RunEnd => EventKind::RunEnd,
                RelKind::Other(kind) => *kind,
            },
            ts_ms: event.ts_ms,
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
            reported_cost: event.reported_cost,
            latency_ms: event.latency_ms,
            status: self.opt(event.status)?,
            estimated: event.estimated,
        })
    }
}
