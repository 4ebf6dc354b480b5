//! What live sources (followed files, sockets, standard input) send to the
//! aggregator, over one bounded channel: a full channel makes sources wait
//! (file reads pause; sockets stop reading, so the kernel pushes back on
//! agents) — nothing is dropped.

use std::sync::Arc;

use super::formats::{Decoder, DecoderConfig};
use super::parsed::ParsedLines;
use super::sources::tail::FileEvent;

/// Capacity of the source → aggregator channel, in messages. Each message
/// carries up to [`BATCH_BYTES`] of lines and at most [`BATCH_LINES`] parsed
/// records (~0.5 MiB), so at most ~50 MiB are in flight: enough to absorb
/// bursts, and sources are already parsing the next batch meanwhile.
pub const CHANNEL_CAPACITY: usize = 64;

/// Lines are sent in batches of about this many bytes…
pub const BATCH_BYTES: usize = 256 * 1024;

/// … or this many lines, whichever comes first (typical 400-byte lines
/// fill the bytes first, at ~650 lines).
pub const BATCH_LINES: usize = 2048;

/// While a source sends large batches (a backlog, a busy socket), the next
/// batch is sized for a full batch plus a line from the start, so filling it
/// never reallocates (and copies) what it holds.
const BATCH_CAPACITY: usize = BATCH_BYTES + 4 * 1024;

/// Otherwise (a trickle of appends, an idle client) the next batch starts
/// small: thousands of idle clients must not each hold a full batch.
const SMALL_BATCH_CAPACITY: usize = 4 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    File,
    Stdin,
    Unix,
    Tcp,
    /// An OTLP receiver (`--otlp`, `--otlp-grpc`): each request it decodes
    /// is one line, numbered over all OTLP listeners.
    Otlp,
}

/// Which source (and which client of a listener) a message is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    /// As shown to the user: a path, `stdin`, `unix:/run/x.sock`, `tcp:127.0.0.1:7700`.
    pub name: Arc<str>,
    /// Short stable name for synthetic run ids (`file name`, `stdin`, `socket`).
    pub origin: Arc<str>,
    pub kind: SourceKind,
    /// Connection number on a listener; locations read `name#client:line`.
    pub client: Option<u64>,
}

impl SourceRef {
    /// Where line `line_no` of this source is, for error messages.
    #[must_use]
    pub fn location(&self, line_no: u64) -> String {
        if self.kind == SourceKind::Otlp {
            return format!("{}#request {line_no}", self.name);
        }
        match self.client {
            Some(client) => format!("{}#{client}:{line_no}", self.name),
            None => format!("{}:{line_no}", self.name),
        }
    }
}

/// One message from a source.
#[derive(Debug)]
pub enum IngestMsg {
    /// Complete lines numbered from `first_line`, parsed by the source
    /// (parsing is most of ingest's work; the aggregator only folds).
    Lines {
        source: SourceRef,
        first_line: u64,
        lines: ParsedLines,
    },
    /// A line over `--max-line-bytes`, skipped.
    Oversized {
        source: SourceRef,
        line_no: u64,
        bytes: u64,
    },
    /// Something happened to a followed file.
    File { source: SourceRef, event: FileEvent },
    /// A `--follow` target names nothing (`missing`; it is waited for) or
    /// names something again.
    Waiting { target: Arc<str>, missing: bool },
    /// Every followed file was read to its end once, every followed stream
    /// as far as it had data ready (`sources::CatchUp`): what existed at
    /// start (the backlog) is all in the messages before this.
    CaughtUp,
    /// A record counted from its text by the estimator (replaces its rough
    /// count).
    Estimated(Box<crate::ingest::estimate::Estimated>),
    /// One request an OTLP receiver decoded (`ingest::sources::otlp`).
    Otlp(Box<OtlpRequest>),
    /// A client connected or hung up (`incomplete` bytes of a last line lost),
    /// or was turned away before sending events.
    Client {
        source: SourceRef,
        change: ClientChange,
    },
}

/// An OTLP export request, decoded: its normalized line (one line, none
/// when the request was malformed) and how its spans fared.
#[derive(Debug)]
pub struct OtlpRequest {
    pub source: SourceRef,
    /// The request's number over every OTLP listener: its line number.
    pub request: u64,
    pub lines: ParsedLines,
    /// Spans passed on to the decoder.
    pub spans_accepted: u64,
    /// Spans rejected alone (`partial_success`): why, each naming its span.
    pub rejected_spans: Vec<String>,
    /// The request was malformed (answered 400 / `INVALID_ARGUMENT`): why.
    pub malformed: Option<String>,
    /// The bytes of its line out of the receivers' budget of bytes in
    /// flight, given back when the aggregator drops the request (folded).
    pub budget: Option<tokio::sync::OwnedSemaphorePermit>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientChange {
    /// A connection that must send the token first took a handshake slot.
    HandshakeStarted,
    /// It sent the token (then `Connected` or `Rejected` follows), or not.
    HandshakeEnded,
    /// The client took a client slot.
    Connected,
    /// A connected client is gone.
    Disconnected { incomplete: u64 },
    /// A connection was closed before (or without) being counted as
    /// connected: no slot, no token, an HTTP request; or, after its
    /// `Disconnected`, a connected client was closed for a reason.
    Rejected { reason: String },
}

/// Accumulates consecutive lines of one source into a batch, decoding
/// each with the source's own [`Decoder`].
#[derive(Debug)]
pub struct LineBatch {
    pub first_line: u64,
    pub next_line: u64,
    /// The source's decoder (its origin names the source in synthetic run
    /// ids, [`SourceRef::origin`]).
    decoder: Decoder,
    lines: ParsedLines,
}

impl LineBatch {
    #[must_use]
    pub fn new(source: &SourceRef, decoders: Arc<DecoderConfig>) -> Self {
        let mut decoder = Decoder::new(decoders, source.origin.clone()).named(source.name.clone());
        if let Some(client) = source.client {
            // Clients of a listener share its origin (`socket`): keys of
            // their id-less calls must not collide.
            decoder = decoder.scoped(format!("{}#{client}", source.name).into());
        }
        LineBatch {
            first_line: 1,
            next_line: 1,
            decoder,
            lines: ParsedLines::with_capacity(SMALL_BATCH_CAPACITY),
        }
    }

    /// Adds and decodes line `line_no`; a gap in numbering (an oversized
    /// line was reported in between) must be flushed first by the caller.
    pub fn push(&mut self, line_no: u64, line: &[u8]) {
        if self.lines.is_empty() {
            self.first_line = line_no;
        }
        self.lines.push_line(&mut self.decoder, line_no, line);
        self.next_line = line_no + 1;
    }

    /// Adds what the decoder still holds: the source ended, or starts over
    /// (a truncated or rotated file).
    pub fn end_of_source(&mut self) {
        self.lines.flush(&mut self.decoder);
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Full by bytes, or by lines: each parsed line costs ~250 bytes of
    /// record whatever its length, so a flood of tiny (blank, broken) lines
    /// must not make a batch hundreds of times its text.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.lines.pushed_bytes() >= BATCH_BYTES || self.lines.len() >= BATCH_LINES
    }

    /// Takes the batch as a message, if it holds anything.
    pub fn take(&mut self, source: &SourceRef) -> Option<IngestMsg> {
        if self.lines.is_empty() {
            return None;
        }
        // Twice what this batch held: a backlog read in passes keeps full-size
        // buffers, a trickle keeps small ones.
        let next = self
            .lines
            .pushed_bytes()
            .saturating_mul(2)
            .clamp(SMALL_BATCH_CAPACITY, BATCH_CAPACITY);
        Some(IngestMsg::Lines {
            source: source.clone(),
            first_line: self.first_line,
            lines: std::mem::replace(&mut self.lines, ParsedLines::with_capacity(next)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_full_by_bytes_or_by_lines() {
        let source = SourceRef {
            name: "t".into(),
            origin: "t".into(),
            kind: SourceKind::File,
            client: None,
        };
        let mut tiny = LineBatch::new(&source, Arc::default());
        for n in 1..BATCH_LINES as u64 {
            tiny.push(n, b"");
            assert!(!tiny.is_full(), "{n} blank lines");
        }
        tiny.push(BATCH_LINES as u64, b"");
        assert!(tiny.is_full());

        let mut invalid = LineBatch::new(&source, Arc::default());
        let line = [0xff_u8; 1023];
        let mut n = 0;
        while !invalid.is_full() {
            n += 1;
            invalid.push(n, &line);
        }
        // 1 KiB a line (newline included): full at exactly BATCH_BYTES.
        assert_eq!(n as usize, BATCH_BYTES / 1024);
        let source = SourceRef {
            name: "t".into(),
            origin: "t".into(),
            kind: SourceKind::File,
            client: None,
        };
        let Some(IngestMsg::Lines { lines, .. }) = invalid.take(&source) else {
            panic!("a batch")
        };
        assert_eq!(lines.len(), BATCH_BYTES / 1024);
        assert_eq!(lines.pushed_bytes(), BATCH_BYTES);
        assert!(invalid.is_empty() && !invalid.is_full());
    }
}
