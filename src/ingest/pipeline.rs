//! The one-shot report's two-stage pipeline: a scoped thread reads and
//! parses the files (stage A) while the calling thread folds the events into
//! the ledger (stage B), in exactly the order [`files::read_files`] would.
//!
//! Stage A reads each 1 MiB chunk into a [`ParsedLines`] batch and parses
//! it there (see [`super::parsed`] for how events travel without owning
//! their strings); stage B folds the batch into the ledger and statistics,
//! then sends the emptied batch back so its buffers are reused: memory stays
//! at a few chunks.

use std::fs::File;
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use super::Ingestor;
use super::formats::{Decoder, DecoderConfig};
use super::lines::{Line, LineSplitter};
use super::parsed::{Emitter, ParsedLines, Relocator};
use super::sources::files::{CHUNK_BYTES, DiscoverError, origin_of};

/// Parsed batches queued between the stages. Each holds one 1 MiB chunk and
/// its records (~4,000 lines of the benchmark corpus), so at most this many
/// plus two (the one being parsed, the one being applied) exist at once:
/// ~6 MiB of chunks. Four absorbs the jitter between the stages; a deeper
/// queue only costs memory, since the slower stage sets the pace anyway.
const QUEUE_BATCHES: usize = 4;

/// Reads each file once into the ingestor, using a decode thread when
/// `threads` allows it: `Some(1)` is [`read_files_one_thread`]; `None`
/// pipelines when the machine has more than one core. Both give the same
/// ingestor state.
///
/// # Errors
/// As [`read_files_one_thread`].
pub fn read_files_threads(
    files: &[PathBuf],
    max_line_bytes: usize,
    decoders: &Arc<DecoderConfig>,
    ingestor: &mut Ingestor<'_>,
    threads: Option<NonZeroUsize>,
) -> Result<(), DiscoverError> {
    let threads = threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        NonZeroUsize::get,
    );
    if threads > 1 {
        read_files(files, max_line_bytes, decoders, ingestor)
    } else {
        read_files_one_thread(files, max_line_bytes, decoders, ingestor)
    }
}

/// Reads, decodes and folds each file once, on this thread: each file
/// through its own [`Decoder`], 1 MiB at a time, held events flushed at its
/// end.
///
/// # Errors
/// A file that cannot be opened or read, named in the message; everything
/// before it has been ingested.
pub fn read_files_one_thread(
    files: &[PathBuf],
    max_line_bytes: usize,
    decoders: &Arc<DecoderConfig>,
    ingestor: &mut Ingestor<'_>,
) -> Result<(), DiscoverError> {
    let mut batch = new_batch();
    for path in files {
        let source = ingestor
            .stats
            .add_source(path.display().to_string(), origin_of(path));
        ingestor.stats.files += 1;
        let io_error = |source: io::Error| DiscoverError::Io {
            path: path.clone(),
            source,
        };
        let mut file = File::open(path).map_err(io_error)?;
        let mut apply = |mut full: Batch| -> Result<Batch, Stop> {
            full.apply(source, max_line_bytes, ingestor, |line_no| {
                format!("{}:{line_no}", path.display())
            })
            .map_err(Stop::Io)?;
            Ok(full)
        };
        let read = produce_file(&mut file, path, max_line_bytes, decoders, batch, &mut apply);
        batch = match read {
            Ok(batch) => batch,
            Err(Stop::Io(error)) => return Err(io_error(error)),
            Err(Stop::Hung) => new_batch(),
        };
    }
    Ok(())
}

/// [`read_files_one_thread`] with reading and decoding on a second thread.
///
/// # Errors
/// As [`read_files_one_thread`].
pub fn read_files(
    files: &[PathBuf],
    max_line_bytes: usize,
    decoders: &Arc<DecoderConfig>,
    ingestor: &mut Ingestor<'_>,
) -> Result<(), DiscoverError> {
    std::thread::scope(|scope| {
        let (to_b, from_a) = mpsc::sync_channel(QUEUE_BATCHES);
        // Unbounded, but it only ever holds batches stage B has finished,
        // which stage A takes back before allocating new ones.
        let (to_a, from_b) = mpsc::channel();
        scope.spawn(move || produce(files, max_line_bytes, decoders, &to_b, &from_b));
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

/// One read's worth of parsed lines: `text` is the read buffer, always
/// [`CHUNK_BYTES`] long (spans stay in the part that was read).
type Batch = ParsedLines;

fn new_batch() -> Batch {
    ParsedLines {
        text: vec![0; CHUNK_BYTES],
        ..ParsedLines::default()
    }
}

/// A batch stage B has finished with, else a new one.
fn reuse(recycled: &Receiver<Batch>) -> Batch {
    match recycled.try_recv() {
        Ok(mut batch) => {
            batch.clear();
            batch
        }
        Err(_) => new_batch(),
    }
}

/// Why stage A stopped reading a file early.
enum Stop {
    Io(io::Error),
    /// Stage B is gone.
    Hung,
}

/// Stage A: reads, splits and decodes every file, sending batches in order.
fn produce(
    files: &[PathBuf],
    max_line_bytes: usize,
    decoders: &Arc<DecoderConfig>,
    to_b: &SyncSender<Msg>,
    recycled: &Receiver<Batch>,
) {
    for (index, path) in files.iter().enumerate() {
        if to_b.send(Msg::File(index)).is_err() {
            return;
        }
        let mut send = |full: Batch| -> Result<Batch, Stop> {
            to_b.send(Msg::Batch(full)).map_err(|_| Stop::Hung)?;
            Ok(reuse(recycled))
        };
        let result = File::open(path).map_err(Stop::Io).and_then(|mut file| {
            produce_file(
                &mut file,
                path,
                max_line_bytes,
                decoders,
                reuse(recycled),
                &mut send,
            )
        });
        match result {
            Ok(_) => {}
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

/// One file through [`LineSplitter`] and a [`Decoder`] of its own: lines
/// numbered from 1, an unterminated last line counted at the end, what the
/// decoder holds flushed after it, and on a read error, the lines before it
/// kept and no final line. Each filled batch goes to `deliver`, which
/// returns an empty one to go on with; the last one is returned.
fn produce_file(
    reader: &mut impl Read,
    path: &std::path::Path,
    max_line_bytes: usize,
    decoders: &Arc<DecoderConfig>,
    mut batch: Batch,
    deliver: &mut dyn FnMut(Batch) -> Result<Batch, Stop>,
) -> Result<Batch, Stop> {
    let mut decoder = Decoder::new(decoders.clone(), Arc::from(origin_of(path)));
    let mut splitter = LineSplitter::new(max_line_bytes);
    let mut line_no = 0_u64;
    loop {
        let read = match reader.read(&mut batch.text) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Stop::Io(e)),
        };
        batch.filled = read;
        let ParsedLines {
            text, side, items, ..
        } = &mut batch;
        let bytes = &text[..read];
        let mut emitter = Emitter::new(
            Relocator {
                text_start: bytes.as_ptr().addr(),
                text_end: bytes.as_ptr().addr() + bytes.len(),
                side,
            },
            items,
        );
        let mut push = |line: Line<'_>| {
            line_no += 1;
            emitter.line(&mut decoder, line, line_no);
        };
        if read == 0 {
            splitter.finish(&mut push);
            decoder.flush(&mut emitter);
        } else {
            splitter.feed(bytes, &mut push);
        }
        if !batch.items.is_empty() {
            batch = deliver(batch)?;
        }
        if read == 0 {
            return Ok(batch);
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
                let name = &files[path_index];
                batch
                    .apply(source, max_line_bytes, ingestor, |line_no| {
                        format!("{}:{line_no}", name.display())
                    })
                    .map_err(|source| DiscoverError::Io {
                        path: name.clone(),
                        source,
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
