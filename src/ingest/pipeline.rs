//! The one-shot report's pipeline: decode threads read and decode whole
//! files (each file through its own [`Decoder`], files taken in turn by
//! whichever thread is free) while the calling thread folds the events into
//! the ledger, file by file in the order given, exactly as
//! [`read_files_one_thread`] would.
//!
//! A decode thread reads each 1 MiB chunk into a [`ParsedLines`] batch and
//! decodes it there (see [`super::parsed`] for how events travel without
//! owning their strings); the folding thread applies the batch, then sends
//! the emptied batch back so its buffers are reused. A batch whose chunk
//! is mostly text no event keeps (Claude Code's tool results) gives its
//! read buffer back at once and travels with the few strings it needs.
//!
//! Memory is bounded by bytes in flight ([`BUDGET_BYTES`], batches decoded
//! but not folded yet): a decode thread waits for room. The file being
//! folded counts only its own batches against the budget, so threads ahead
//! can never starve it (at most twice the budget is in flight). A thread
//! may also decode at most [`AHEAD_FILES`] files beyond one per thread past
//! the one being folded.

use std::fs::File;
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};

use super::Ingestor;
use super::formats::{Decoder, DecoderConfig};
use super::lines::{Line, LineSplitter, ReadBuffer};
use super::parsed::{Emitter, ParsedLines, Relocator};
use super::sources::files::{CHUNK_BYTES, DiscoverError, origin_of};

/// Bytes of decoded batches waiting for the fold, over all files (the file
/// being folded may exceed it). A few chunks: enough for threads to work
/// ahead on sparse files, whose batches weigh little.
pub const BUDGET_BYTES: usize = 2 * 1024 * 1024;

/// Files decoded ahead of the one being folded, beyond one per thread.
pub const AHEAD_FILES: usize = 8;

/// Reads each file once into the ingestor: `threads` decode threads
/// beside the folding one (`Some(1)`: everything on this thread, see
/// [`read_files_one_thread`]; `None`: one per core, or one per file when
/// there are fewer). Every choice gives the same ingestor state.
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
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    match threads.map(NonZeroUsize::get) {
        Some(1) => read_files_one_thread(files, max_line_bytes, decoders, ingestor),
        None if cores == 1 => read_files_one_thread(files, max_line_bytes, decoders, ingestor),
        Some(n) => read_files_with(files, max_line_bytes, decoders, ingestor, n),
        None => read_files_with(files, max_line_bytes, decoders, ingestor, cores),
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

/// [`read_files_one_thread`] with reading and decoding on other threads:
/// one per core, or per file when there are fewer.
///
/// # Errors
/// As [`read_files_one_thread`].
pub fn read_files(
    files: &[PathBuf],
    max_line_bytes: usize,
    decoders: &Arc<DecoderConfig>,
    ingestor: &mut Ingestor<'_>,
) -> Result<(), DiscoverError> {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    read_files_with(files, max_line_bytes, decoders, ingestor, cores)
}

/// How far the fold is.
#[derive(Debug, Default)]
struct Progress {
    /// Files folded so far.
    folded: usize,
    /// Weight of batches sent and not folded yet.
    in_flight: usize,
    /// The same, per file.
    in_flight_of: Vec<usize>,
}

/// What decode threads and the folding thread share.
struct Shared {
    /// The next file to decode.
    next: AtomicUsize,
    /// Decode threads wait on `turn` for the fold to come within reach of
    /// their file, and for room in the budget.
    progress: Mutex<Progress>,
    turn: Condvar,
    /// The fold gave up (an error): decode threads stop.
    stop: AtomicBool,
    /// Batches the fold has emptied, for decode threads to fill again.
    recycled: Mutex<Receiver<Batch>>,
}

/// [`read_files`] with `threads` decode threads (at most one per file).
///
/// # Errors
/// As [`read_files_one_thread`].
pub fn read_files_with(
    files: &[PathBuf],
    max_line_bytes: usize,
    decoders: &Arc<DecoderConfig>,
    ingestor: &mut Ingestor<'_>,
    threads: usize,
) -> Result<(), DiscoverError> {
    let threads = threads.clamp(1, files.len().max(1));
    // Unbounded: what they hold is bounded by the budget.
    let (senders, receivers): (Vec<Sender<Msg>>, Vec<Receiver<Msg>>) =
        files.iter().map(|_| mpsc::channel()).unzip();
    // Unbounded, but it only ever holds batches the fold has finished,
    // which decode threads take back before allocating new ones.
    let (to_decoders, recycled) = mpsc::channel();
    let shared = Shared {
        next: AtomicUsize::new(0),
        progress: Mutex::new(Progress {
            in_flight_of: vec![0; files.len()],
            ..Progress::default()
        }),
        turn: Condvar::new(),
        stop: AtomicBool::new(false),
        recycled: Mutex::new(recycled),
    };
    let ahead = threads + AHEAD_FILES;
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (shared, senders) = (&shared, &senders);
            scope.spawn(move || {
                decode_files(files, max_line_bytes, decoders, senders, shared, ahead)
            });
        }
        let result = fold_files(
            files,
            max_line_bytes,
            ingestor,
            receivers,
            &to_decoders,
            &shared,
        );
        // The receivers are dropped by now, so decode threads still
        // sending stop (a send fails); those waiting for room wake here.
        shared.stop.store(true, Ordering::Relaxed);
        shared.turn.notify_all();
        result
    })
}

/// What a decode thread tells the fold about one file.
enum Msg {
    /// A batch and its weight in the budget.
    Batch(Batch, usize),
    /// The file is read to its end.
    Done,
    /// It could not be opened or read; nothing follows.
    Failed(io::Error),
}

/// One read's worth of decoded lines: `text` is the read buffer, always
/// [`CHUNK_BYTES`] long (spans stay in the part that was read).
type Batch = ParsedLines;

fn new_batch() -> Batch {
    ParsedLines {
        text: ReadBuffer::new(CHUNK_BYTES),
        ..ParsedLines::default()
    }
}

/// A batch the fold has finished with, else a new one; its read buffer is
/// one this thread gave back (`spare`) when the fold's came without one.
fn reuse(shared: &Shared, spare: &mut Vec<ReadBuffer>) -> Batch {
    let recycled = shared.recycled.lock().ok().and_then(|r| r.try_recv().ok());
    match recycled {
        Some(mut batch) => {
            batch.clear();
            if batch.text.is_empty() {
                batch.text = spare.pop().unwrap_or_else(|| ReadBuffer::new(CHUNK_BYTES));
            }
            batch
        }
        None => match spare.pop() {
            Some(text) => ParsedLines {
                text,
                ..ParsedLines::default()
            },
            None => new_batch(),
        },
    }
}

/// Waits until `weight` more bytes fit in the budget (at once for the file
/// being folded) and counts them in.
fn acquire(shared: &Shared, index: usize, weight: usize) -> Result<(), Stop> {
    let mut progress = shared.progress.lock().map_err(|_| Stop::Hung)?;
    let full = |p: &Progress| {
        let used = if p.folded == index {
            p.in_flight_of[index]
        } else {
            p.in_flight
        };
        // One batch always fits (a lone batch may be heavier than the budget).
        used > 0 && used + weight > BUDGET_BYTES
    };
    while full(&progress) && !shared.stop.load(Ordering::Relaxed) {
        progress = shared.turn.wait(progress).map_err(|_| Stop::Hung)?;
    }
    if shared.stop.load(Ordering::Relaxed) {
        return Err(Stop::Hung);
    }
    progress.in_flight += weight;
    progress.in_flight_of[index] += weight;
    Ok(())
}

/// Why decoding a file stopped early.
enum Stop {
    Io(io::Error),
    /// The fold is gone.
    Hung,
}

/// A decode thread: takes files in turn and sends each one's batches on
/// its own channel.
fn decode_files(
    files: &[PathBuf],
    max_line_bytes: usize,
    decoders: &Arc<DecoderConfig>,
    senders: &[Sender<Msg>],
    shared: &Shared,
    ahead: usize,
) {
    // Read buffers given back by sparse batches, for the next reads (a
    // fresh buffer costs a page fault per 4 KiB).
    let mut spare: Vec<ReadBuffer> = Vec::new();
    let mut leftover: Option<Batch> = None;
    loop {
        let index = shared.next.fetch_add(1, Ordering::Relaxed);
        if index >= files.len() {
            return;
        }
        // Wait until the fold is near enough: files decoded far ahead would
        // each hold a batch.
        {
            let Ok(mut progress) = shared.progress.lock() else {
                return;
            };
            while index >= progress.folded + ahead && !shared.stop.load(Ordering::Relaxed) {
                progress = match shared.turn.wait(progress) {
                    Ok(guard) => guard,
                    Err(_) => return,
                };
            }
        }
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let to_fold = &senders[index];
        let path = &files[index];
        // The batch left over from the last file, else one the fold gave back.
        let first = match leftover.take() {
            Some(batch) => batch,
            None => reuse(shared, &mut spare),
        };
        let mut send = |mut full: Batch| -> Result<Batch, Stop> {
            if full.is_sparse() {
                spare.push(full.detach_text());
            }
            let weight = full.weight();
            acquire(shared, index, weight)?;
            to_fold
                .send(Msg::Batch(full, weight))
                .map_err(|_| Stop::Hung)?;
            Ok(reuse(shared, &mut spare))
        };
        let result = File::open(path).map_err(Stop::Io).and_then(|mut file| {
            produce_file(&mut file, path, max_line_bytes, decoders, first, &mut send)
        });
        let last = match result {
            Ok(empty) => {
                leftover = Some(empty);
                Msg::Done
            }
            Err(Stop::Io(error)) => Msg::Failed(error),
            Err(Stop::Hung) => return,
        };
        if to_fold.send(last).is_err() {
            return;
        }
    }
}

/// The calling thread: folds each file's batches, in the order given.
/// Each file's receiver is dropped once the file is folded, which frees
/// its channel's buffers (a few KiB per file, for thousands of files).
fn fold_files(
    files: &[PathBuf],
    max_line_bytes: usize,
    ingestor: &mut Ingestor<'_>,
    receivers: Vec<Receiver<Msg>>,
    to_decoders: &Sender<Batch>,
    shared: &Shared,
) -> Result<(), DiscoverError> {
    for (index, (path, from_decoder)) in files.iter().zip(receivers).enumerate() {
        let source = ingestor
            .stats
            .add_source(path.display().to_string(), origin_of(path));
        ingestor.stats.files += 1;
        let io_error = |source: io::Error| DiscoverError::Io {
            path: path.clone(),
            source,
        };
        loop {
            match from_decoder.recv() {
                Ok(Msg::Batch(mut batch, weight)) => {
                    let applied = batch.apply(source, max_line_bytes, ingestor, |line_no| {
                        format!("{}:{line_no}", path.display())
                    });
                    if let Ok(mut progress) = shared.progress.lock() {
                        progress.in_flight = progress.in_flight.saturating_sub(weight);
                        progress.in_flight_of[index] =
                            progress.in_flight_of[index].saturating_sub(weight);
                    }
                    shared.turn.notify_all();
                    applied.map_err(io_error)?;
                    // Decode threads may have finished already; the batch is then freed.
                    let _ = to_decoders.send(batch);
                }
                Ok(Msg::Done) => break,
                Ok(Msg::Failed(error)) => return Err(io_error(error)),
                Err(_) => {
                    return Err(io_error(io::Error::other(
                        "internal error: a decode thread stopped early",
                    )));
                }
            }
        }
        if let Ok(mut progress) = shared.progress.lock() {
            progress.folded = index + 1;
        }
        shared.turn.notify_all();
    }
    Ok(())
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
    let mut decoder = Decoder::new(decoders.clone(), Arc::from(origin_of(path)))
        .named(Arc::from(path.display().to_string()));
    let mut splitter = LineSplitter::new(max_line_bytes);
    let mut line_no = 0_u64;
    loop {
        let read = match reader.read(batch.text.space()) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Stop::Io(e)),
        };
        batch.filled = read;
        let ParsedLines {
            text, side, items, ..
        } = &mut batch;
        let bytes = text.data(read);
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
