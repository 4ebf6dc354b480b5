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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};

use super::Ingestor;
use super::formats::{Decoder, DecoderConfig};
use super::lines::{Line, LineSplitter, ReadBuffer};
use super::parsed::{Emitter, ParsedLines, Relocator};
use super::sources::files::{CHUNK_BYTES, DiscoverError, note_unreadable, origin_of, read_failure};

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
/// end. A file that cannot be opened is skipped, one that fails while read
/// is cut short there (its lines before the error are counted): either is
/// counted as an error of its source, with the reason (`last_error`).
///
/// # Errors
/// An internal error (a bug), named with the file.
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
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(error) => {
                note_unreadable(&mut ingestor.stats, source, read_failure(&error, false, 0));
                continue;
            }
        };
        let mut internal = None;
        let mut apply = |mut full: Batch| -> Result<Batch, Stop> {
            if let Err(error) = full.apply(source, max_line_bytes, ingestor, |line_no| {
                format!("{}:{line_no}", path.display())
            }) {
                internal = Some(error);
                return Err(Stop::Hung);
            }
            Ok(full)
        };
        // A panic (a bug) ends the report with an error, as on decode threads.
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            produce_file(&mut file, path, max_line_bytes, decoders, batch, &mut apply)
        }))
        .map_err(|panic| DiscoverError::Internal {
            path: path.clone(),
            reason: format!("decoding panicked: {}", panic_message(panic.as_ref())),
        })?;
        if let Some(error) = internal {
            return Err(internal_error(path, &error));
        }
        batch = match read {
            Ok(batch) => batch,
            Err(Stop::Io(error)) => {
                let lines = ingestor.stats.sources[source].lines;
                note_unreadable(
                    &mut ingestor.stats,
                    source,
                    read_failure(&error, true, lines),
                );
                new_batch()
            }
            Err(Stop::Hung) => new_batch(),
        };
    }
    Ok(())
}

/// A span out of place in a batch: a bug, reported with the file.
fn internal_error(path: &Path, error: &io::Error) -> DiscoverError {
    DiscoverError::Internal {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
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
        // The receivers are dropped once the fold returns, so decode
        // threads still sending stop (a send fails); those waiting for room
        // wake when the guard drops (after the fold, even if it panicked:
        // the scope would otherwise wait for them forever).
        let _wake = StopOnDrop(&shared);
        fold_files(
            files,
            max_line_bytes,
            ingestor,
            receivers,
            &to_decoders,
            &shared,
        )
    })
}

/// Tells decode threads to stop, when dropped.
struct StopOnDrop<'a>(&'a Shared);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
        self.0.turn.notify_all();
    }
}

/// What a decode thread tells the fold about one file.
enum Msg {
    /// A batch and its weight in the budget.
    Batch(Batch, usize),
    /// The file is read to its end.
    Done,
    /// It could not be opened (`false`) or read (`true`); nothing follows.
    Failed(io::Error, bool),
    /// Decoding it panicked (a bug); nothing follows.
    Panicked(String),
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
        // A panic (a bug) must reach the fold, which waits for this file:
        // caught here, it ends the report with an error instead of a hang.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match File::open(path) {
                Ok(mut file) => {
                    produce_file(&mut file, path, max_line_bytes, decoders, first, &mut send)
                        .map_err(|stop| (stop, true))
                }
                Err(error) => Err((Stop::Io(error), false)),
            }));
        let (last, go_on) = match result {
            Ok(Ok(empty)) => {
                leftover = Some(empty);
                (Msg::Done, true)
            }
            Ok(Err((Stop::Io(error), opened))) => (Msg::Failed(error, opened), true),
            Ok(Err((Stop::Hung, _))) => return,
            Err(panic) => (Msg::Panicked(panic_message(panic.as_ref())), false),
        };
        if to_fold.send(last).is_err() || !go_on {
            return;
        }
    }
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
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
                    applied.map_err(|e| internal_error(path, &e))?;
                    // Decode threads may have finished already; the batch is then freed.
                    let _ = to_decoders.send(batch);
                }
                Ok(Msg::Done) => break,
                Ok(Msg::Failed(error, opened)) => {
                    let lines = ingestor.stats.sources[source].lines;
                    let reason = read_failure(&error, opened, lines);
                    note_unreadable(&mut ingestor.stats, source, reason);
                    break;
                }
                Ok(Msg::Panicked(message)) => {
                    return Err(DiscoverError::Internal {
                        path: path.clone(),
                        reason: format!("decoding panicked: {message}"),
                    });
                }
                Err(_) => {
                    return Err(DiscoverError::Internal {
                        path: path.clone(),
                        reason: "a decode thread stopped early".to_owned(),
                    });
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
    #[cfg(test)]
    #[allow(clippy::panic)]
    if path.file_name().is_some_and(|n| n == tests::PANICS) {
        panic!("injected panic");
    }
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
            text,
            side,
            prints,
            items,
            ..
        } = &mut batch;
        // The read is checked as UTF-8 here, once: its lines are decoded as
        // text (no check per line) and the ledger's thread takes the
        // strings of their events from it unchecked. A read that is not
        // UTF-8 is decoded line by line as bytes.
        let valid = if text.validate(read) {
            text.text(read)
        } else {
            None
        };
        let bytes = valid.map_or_else(|| text.data(read), str::as_bytes);
        let mut emitter = Emitter::new(
            Relocator {
                text_start: bytes.as_ptr().addr(),
                text_end: bytes.as_ptr().addr() + bytes.len(),
                side,
                prints,
            },
            items,
        );
        let mut push = |line: Line<'_>| {
            line_no += 1;
            emitter.line(&mut decoder, line, line_no, valid);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Ledger, LedgerConfig};
    use crate::pricing::PriceBook;

    /// Decoding a file of this name panics (a stand-in for a bug).
    pub(super) const PANICS: &str = "tokwatch-test-panic.jsonl";

    #[test]
    fn a_panicking_decode_thread_fails_the_report_instead_of_hanging_it() {
        let dir = tempfile::tempdir().unwrap();
        let line = "{\"run_id\":\"r\",\"agent\":\"a\",\"model\":\"gpt-4o\",\"input_tokens\":1,\"output_tokens\":1}\n";
        let files: Vec<PathBuf> = ["a.jsonl", PANICS, "c.jsonl", "d.jsonl"]
            .iter()
            .map(|name| {
                let path = dir.path().join(name);
                std::fs::write(&path, line).unwrap();
                path
            })
            .collect();
        for threads in [1, 2, 3] {
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            let files = files.clone();
            std::thread::spawn(move || {
                let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
                let mut ingestor = Ingestor::new(&mut ledger, Default::default());
                let result = read_files_with(&files, 4096, &Arc::default(), &mut ingestor, threads);
                let _ = done_tx.send(result.map_err(|e| e.to_string()));
            });
            let result = done_rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("{threads} threads: the report hung"));
            let error = result.expect_err("a panic is an error");
            assert!(
                error.contains(PANICS) && error.contains("decoding panicked: injected panic"),
                "{threads} threads: {error}"
            );
        }
        // On this thread too: an error, not a crash.
        let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
        let mut ingestor = Ingestor::new(&mut ledger, Default::default());
        let error = read_files_one_thread(&files, 4096, &Arc::default(), &mut ingestor)
            .expect_err("a panic is an error")
            .to_string();
        assert!(
            error.contains(PANICS) && error.contains("decoding panicked: injected panic"),
            "{error}"
        );
    }
}
