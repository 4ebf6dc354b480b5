//! Streams: standard input (`--follow -`) and pipes (`--follow <(…)`, a
//! named FIFO). Each is read to its end on its own thread, lines as they
//! come (no offsets: what was read is gone from the pipe), split and parsed
//! into batches like any other source.
//!
//! A stream is caught up (its share of the backlog read, see
//! [`CatchUp`]) once its first read returned and no more data is ready
//! (`FIONREAD` says 0 bytes), or at its end; a terminal at once (nothing
//! was written before tokwatch started).

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::ingest::channel::{IngestMsg, LineBatch, SourceKind, SourceRef};
use crate::ingest::formats::DecoderConfig;
use crate::ingest::lines::{Line, LineSplitter, ReadBuffer};
use crate::ingest::sources::CatchUp;
use crate::ingest::sources::tail::FileEvent;

/// Reads standard input to its end on a thread of its own.
///
/// # Errors
/// The thread cannot be started.
pub fn spawn(
    tx: mpsc::Sender<IngestMsg>,
    catch_up: CatchUp,
    max_line_bytes: usize,
    decoders: Arc<DecoderConfig>,
) -> io::Result<JoinHandle<()>> {
    let source = SourceRef {
        name: "stdin".into(),
        origin: "stdin".into(),
        kind: SourceKind::Stdin,
        client: None,
    };
    spawn_reader(
        "tokwatch-stdin",
        source,
        || Ok(io::stdin().lock()),
        tx,
        catch_up,
        max_line_bytes,
        decoders,
    )
}

/// Is `path` a pipe (a named FIFO, or `/dev/fd/N` from `<(…)`)? Such a
/// path is read as a stream ([`spawn_pipe`]), not followed as a file.
#[must_use]
pub fn is_pipe(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.file_type().is_fifo())
}

/// Reads the pipe at `path` to its end on a thread of its own (opening a
/// named FIFO waits there for a writer). The source is named as given.
///
/// # Errors
/// The thread cannot be started.
pub fn spawn_pipe(
    path: PathBuf,
    tx: mpsc::Sender<IngestMsg>,
    catch_up: CatchUp,
    max_line_bytes: usize,
    decoders: Arc<DecoderConfig>,
) -> io::Result<JoinHandle<()>> {
    let source = SourceRef {
        name: path.display().to_string().into(),
        origin: crate::ingest::sources::files::origin_of(&path).into(),
        kind: SourceKind::File,
        client: None,
    };
    spawn_reader(
        "tokwatch-pipe",
        source,
        move || File::open(&path),
        tx,
        catch_up,
        max_line_bytes,
        decoders,
    )
}

/// Reads what `open` returns to its end on a thread named `name`. A failure
/// A stream read to its end, that says whether more is ready now.
trait Stream: Read {
    /// Bytes ready to be read without waiting, if that can be known.
    fn ready(&self) -> Option<u64>;
    /// A terminal: nothing was written before tokwatch started.
    fn is_terminal(&self) -> bool;
}

impl Stream for File {
    fn ready(&self) -> Option<u64> {
        rustix::io::ioctl_fionread(self.as_fd()).ok()
    }
    fn is_terminal(&self) -> bool {
        IsTerminal::is_terminal(self)
    }
}

impl Stream for io::StdinLock<'static> {
    fn ready(&self) -> Option<u64> {
        rustix::io::ioctl_fionread(self.as_fd()).ok()
    }
    fn is_terminal(&self) -> bool {
        self.as_fd().is_terminal()
    }
}

/// to open or read is counted as an error of the source.
fn spawn_reader<R: Stream>(
    name: &str,
    source: SourceRef,
    open: impl FnOnce() -> io::Result<R> + Send + 'static,
    tx: mpsc::Sender<IngestMsg>,
    catch_up: CatchUp,
    max_line_bytes: usize,
    decoders: Arc<DecoderConfig>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut catch_up = Some(catch_up);
            // After this stream's lines: the last source caught up says so.
            let caught_up = |catch_up: &mut Option<CatchUp>| {
                if catch_up.take().is_some_and(CatchUp::done) {
                    if let Some(estimator) = &decoders.estimator {
                        estimator.flush();
                    }
                    let _ = tx.blocking_send(IngestMsg::CaughtUp);
                }
            };
            let fail = |what: &str, e: io::Error| {
                let _ = tx.blocking_send(IngestMsg::File {
                    source: source.clone(),
                    event: FileEvent::Error(format!("cannot {what}: {e}")),
                });
            };
            let mut reader = match open() {
                Ok(reader) => reader,
                Err(e) => {
                    fail("open", e);
                    return caught_up(&mut catch_up);
                }
            };
            if reader.is_terminal() {
                caught_up(&mut catch_up);
            }
            let mut splitter = LineSplitter::new(max_line_bytes);
            let estimator = decoders.estimator.clone();
            let mut batch = LineBatch::new(&source, decoders.clone());
            let mut line_no = 0_u64;
            let mut buffer = ReadBuffer::new(256 * 1024);
            let mut pending = Vec::new();
            let mut handle =
                |line: Line<'_>, batch: &mut LineBatch, pending: &mut Vec<IngestMsg>| {
                    line_no += 1;
                    match line {
                        Line::Complete(bytes) => {
                            batch.push(line_no, bytes);
                            if batch.is_full() {
                                pending.extend(batch.take(&source));
                            }
                        }
                        Line::Oversized(bytes) => {
                            pending.extend(batch.take(&source));
                            pending.push(IngestMsg::Oversized {
                                source: source.clone(),
                                line_no,
                                bytes,
                            });
                        }
                    }
                };
            loop {
                let n = match reader.read(buffer.space()) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        fail("read", e);
                        break;
                    }
                };
                splitter.feed(buffer.data(n), |line| {
                    handle(line, &mut batch, &mut pending)
                });
                pending.extend(batch.take(&source));
                for msg in pending.drain(..) {
                    if tx.blocking_send(msg).is_err() {
                        return;
                    }
                }
                // what was ready is read: the next read would wait
                if catch_up.is_some() && reader.ready() == Some(0) {
                    caught_up(&mut catch_up);
                }
            }
            // a stream is complete at EOF: an unterminated last line counts
            splitter.finish(|line| handle(line, &mut batch, &mut pending));
            batch.end_of_source();
            pending.extend(batch.take(&source));
            for msg in pending {
                let _ = tx.blocking_send(msg);
            }
            // Records still being counted from text come back before the
            // channel may close.
            if let Some(estimator) = estimator {
                estimator.flush();
            }
            caught_up(&mut catch_up);
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `chunks` in turn; `None` is a read interrupted by a signal,
    /// and after the chunks, `end` (end of file or an error).
    struct Scripted {
        chunks: std::collections::VecDeque<Option<&'static [u8]>>,
        end: Option<io::ErrorKind>,
    }

    impl Stream for Scripted {
        fn ready(&self) -> Option<u64> {
            Some(self.chunks.iter().flatten().map(|c| c.len() as u64).sum())
        }
        fn is_terminal(&self) -> bool {
            false
        }
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.chunks.pop_front() {
                Some(Some(chunk)) => {
                    buf[..chunk.len()].copy_from_slice(chunk);
                    Ok(chunk.len())
                }
                Some(None) => Err(io::ErrorKind::Interrupted.into()),
                None => self.end.map_or(Ok(0), |kind| Err(kind.into())),
            }
        }
    }

    fn read_all(input: Scripted) -> Vec<IngestMsg> {
        let (tx, mut rx) = mpsc::channel(64);
        let source = SourceRef {
            name: "stdin".into(),
            origin: "stdin".into(),
            kind: SourceKind::Stdin,
            client: None,
        };
        let thread = spawn_reader(
            "test",
            source,
            move || Ok(input),
            tx,
            CatchUp::new(1),
            1 << 20,
            Arc::default(),
        )
        .unwrap();
        let msgs = std::iter::from_fn(|| rx.blocking_recv()).collect();
        thread.join().unwrap();
        msgs
    }

    fn lines(msgs: &[IngestMsg]) -> usize {
        msgs.iter()
            .map(|m| match m {
                IngestMsg::Lines { lines, .. } => lines.len(),
                _ => 0,
            })
            .sum()
    }

    const HOP: &[u8] = br#"{"run_id":"r","model":"gpt-4o","input_tokens":1,"output_tokens":1}"#;

    #[test]
    fn a_stream_is_caught_up_once_nothing_more_is_ready_after_what_was() {
        let line: &'static [u8] =
            b"{\"run_id\":\"r\",\"model\":\"gpt-4o\",\"input_tokens\":1,\"output_tokens\":1}\n";
        let msgs = read_all(Scripted {
            chunks: [Some(line), Some(line), Some(line)].into(),
            end: None,
        });
        let at = msgs
            .iter()
            .position(|m| matches!(m, IngestMsg::CaughtUp))
            .expect("caught up");
        assert_eq!(lines(&msgs[..at]), 3, "after every line that was ready");
        assert_eq!(
            msgs.iter()
                .filter(|m| matches!(m, IngestMsg::CaughtUp))
                .count(),
            1
        );
    }

    #[test]
    fn an_interrupted_read_is_retried_not_taken_for_the_end() {
        let msgs = read_all(Scripted {
            chunks: [
                Some(&b"{\"run_id\":\"r\",\"model\":\"gpt-4o\",\"input"[..]),
                None,
            ]
            .into_iter()
            .chain([
                Some(&b"_tokens\":1,\"output_tokens\":1}\n"[..]),
                None,
                Some(HOP),
            ])
            .collect(),
            end: None,
        });
        assert_eq!(lines(&msgs), 2, "{msgs:?}");
        assert!(!msgs.iter().any(|m| matches!(m, IngestMsg::File { .. })));
    }

    #[test]
    fn a_read_error_is_reported() {
        let msgs = read_all(Scripted {
            chunks: [Some(HOP)].into_iter().collect(),
            end: Some(io::ErrorKind::BrokenPipe),
        });
        assert_eq!(lines(&msgs), 1);
        let error = msgs.iter().find_map(|m| match m {
            IngestMsg::File {
                event: FileEvent::Error(message),
                ..
            } => Some(message),
            _ => None,
        });
        assert!(
            error.is_some_and(|m| m.starts_with("cannot read")),
            "{msgs:?}"
        );
    }
}
