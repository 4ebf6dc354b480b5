//! Standard input (`--follow -`): read to its end on its own thread, split
//! and parsed into batches like any other source.

use std::io::{self, Read};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::ingest::channel::{IngestMsg, LineBatch, SourceKind, SourceRef};
use crate::ingest::formats::DecoderConfig;
use crate::ingest::lines::{Line, LineSplitter, ReadBuffer};

/// Reads standard input to its end on a thread of its own.
///
/// # Errors
/// The thread cannot be started.
pub fn spawn(
    tx: mpsc::Sender<IngestMsg>,
    max_line_bytes: usize,
    decoders: Arc<DecoderConfig>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tokwatch-stdin".into())
        .spawn(move || {
            let source = SourceRef {
                name: "stdin".into(),
                origin: "stdin".into(),
                kind: SourceKind::Stdin,
                client: None,
            };
            let mut splitter = LineSplitter::new(max_line_bytes);
            let estimator = decoders.estimator.clone();
            let mut batch = LineBatch::new(&source, decoders);
            let mut line_no = 0_u64;
            let mut buffer = ReadBuffer::new(256 * 1024);
            let mut stdin = io::stdin().lock();
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
                let n = match stdin.read(buffer.space()) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
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
            }
            // standard input is complete at EOF: an unterminated last line counts
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
        })
}
