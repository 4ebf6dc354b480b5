//! Reading files once (`tokwatch report`): discovery and chunked reads.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ingest::formats::DecoderConfig;
use crate::ingest::lines::{Line, LineSplitter, ReadBuffer};
use crate::ingest::{IngestStats, Ingestor};

/// Default `--max-line-bytes`: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// Bytes per `read` (and per pipeline batch).
pub(crate) const CHUNK_BYTES: usize = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("'{0}': no such file or directory")]
    Missing(PathBuf),
    /// A path named on the command line that cannot be looked up (the
    /// error is part of the message, not a `source`: said once).
    #[error("'{path}': {error}")]
    Io { path: PathBuf, error: io::Error },
    /// A bug (a decode thread panicked): the report cannot be trusted.
    #[error("internal error while reading '{path}': {reason}")]
    Internal { path: PathBuf, reason: String },
}

/// An entry under a named directory that cannot be read (a broken or
/// looping symbolic link, a directory that cannot be listed): skipped,
/// listed in the report and warned about once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// What [`discover_all`] found: the files to read, in order, and the
/// entries it had to skip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    pub files: Vec<PathBuf>,
    pub skipped: Vec<Skipped>,
}

/// Files named on the command line, and `*.jsonl` files found recursively
/// under directories, in a stable (sorted) order, without duplicates;
/// entries that cannot be read are left out (see [`discover_all`] for
/// them).
///
/// # Errors
/// As [`discover_all`].
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DiscoverError> {
    discover_all(paths).map(|found| found.files)
}

/// [`discover`], with the entries under directories that cannot be read:
/// a `*.jsonl` link whose target is missing or loops, a link to an
/// ancestor directory, a directory that cannot be listed. A broken link
/// that is not named `*.jsonl` is not a log and is passed over silently.
///
/// # Errors
/// A path named in `paths` that does not exist or cannot be looked up (a
/// typo never gives an empty report).
pub fn discover_all(paths: &[PathBuf]) -> Result<Discovered, DiscoverError> {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => DiscoverError::Missing(path.clone()),
            _ => DiscoverError::Io {
                path: path.clone(),
                error: e,
            },
        })?;
        if meta.is_dir() {
            let walker = walkdir::WalkDir::new(path)
                .follow_links(true)
                .sort_by_file_name();
            for entry in walker {
                match entry {
                    Ok(entry) => {
                        if entry.path().extension().is_some_and(|x| x == "jsonl") {
                            if entry.file_type().is_file() {
                                found.push(entry.into_path());
                            } else if let Some(kind) = special_kind(entry.file_type()) {
                                // a FIFO would block, a device never end
                                skipped.push(Skipped {
                                    path: entry.into_path(),
                                    reason: not_a_file(kind),
                                });
                            }
                        }
                    }
                    Err(error) => skipped.extend(skipped_entry(path, &error)),
                }
            }
        } else {
            found.push(path.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    found.retain(|p| seen.insert(FileIdentity::of(p)));
    Ok(Discovered {
        files: found,
        skipped,
    })
}

/// What a file type that is neither a regular file, a directory nor a
/// link is (`a pipe`, `a device`, `a socket`); `None` for those.
#[must_use]
pub(crate) fn special_kind(kind: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt as _;
    if kind.is_file() || kind.is_dir() || kind.is_symlink() {
        None
    } else if kind.is_fifo() {
        Some("a pipe")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else {
        Some("not a regular file")
    }
}

/// Why an entry named `*.jsonl` of kind [`special_kind`] is not read.
pub(crate) fn not_a_file(kind: &str) -> String {
    format!("{kind}, not a regular file: not read")
}

/// Why a `*.jsonl` link under a directory leads nowhere; `None` if `path`
/// is not a link.
pub(crate) fn broken_link(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    Some(format!(
        "broken symbolic link (to '{}', which does not exist)",
        target.display()
    ))
}

/// Why a directory entry cannot be read, in one phrase; `None` for a
/// broken link that does not look like a log.
fn skipped_entry(root: &Path, error: &walkdir::Error) -> Option<Skipped> {
    let path = error.path().unwrap_or(root).to_path_buf();
    let is_log = path.extension().is_some_and(|x| x == "jsonl");
    let reason = if let Some(ancestor) = error.loop_ancestor() {
        format!(
            "symbolic link loop (back to '{}'), not followed",
            ancestor.display()
        )
    } else if let Some(io) = error.io_error() {
        match (io.kind(), broken_link(&path)) {
            (io::ErrorKind::NotFound, _) if !is_log => return None,
            (io::ErrorKind::NotFound, Some(broken)) => broken,
            _ => io.to_string(),
        }
    } else {
        error.to_string()
    };
    Some(Skipped { path, reason })
}

/// Lists `skipped` entries in the ingest statistics as sources that could
/// not be read: each with one error and its reason (`errors`,
/// `last_error`, as live sources report theirs).
pub fn record_skipped(stats: &mut IngestStats, skipped: &[Skipped]) {
    for entry in skipped {
        let source = stats.add_source(entry.path.display().to_string(), origin_of(&entry.path));
        note_unreadable(stats, source, entry.reason.clone());
    }
}

/// Counts a read error of `source` (the file is skipped, or cut short
/// where it failed).
pub(crate) fn note_unreadable(stats: &mut IngestStats, source: usize, reason: String) {
    let live = &mut stats.sources[source].live;
    live.errors += 1;
    live.last_error = Some(reason);
}

/// Why a file could not be read to its end, for [`note_unreadable`]:
/// `lines` were read (and are counted) before the error.
pub(crate) fn read_failure(error: &io::Error, opened: bool, lines: u64) -> String {
    match (opened, lines) {
        (false, _) => format!("cannot open: {error}"),
        (true, 0) => format!("cannot read: {error}"),
        (true, n) => {
            format!("read error after line {n} (the lines before it are counted): {error}")
        }
    }
}

/// What makes two paths the same file: its device and inode (one `stat`,
/// where resolving the path would cost a system call per component).
#[derive(PartialEq, Eq, Hash)]
enum FileIdentity {
    #[cfg(unix)]
    Inode(u64, u64),
    Path(PathBuf),
}

impl FileIdentity {
    fn of(path: &Path) -> Self {
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::MetadataExt as _;
            return FileIdentity::Inode(meta.dev(), meta.ino());
        }
        FileIdentity::Path(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
    }
}

/// Short name of a file for synthetic run ids.
#[must_use]
pub fn origin_of(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Splits `reader` into lines read in 1 MiB chunks, calling `handle` with
/// each line's 1-based number. The one reading loop every file goes through
/// (the benchmark's baseline uses it too, so both sides read alike).
///
/// # Errors
/// A read error; lines read before it were handled.
pub fn for_each_line(
    reader: &mut impl Read,
    max_line_bytes: usize,
    mut handle: impl FnMut(u64, Line<'_>),
) -> io::Result<()> {
    let mut splitter = LineSplitter::new(max_line_bytes);
    let mut buffer = ReadBuffer::new(CHUNK_BYTES);
    let mut line_no = 0_u64;
    let mut numbered = |line: Line<'_>| {
        line_no += 1;
        handle(line_no, line);
    };
    loop {
        let read = match reader.read(buffer.space()) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        splitter.feed(buffer.data(read), &mut numbered);
    }
    splitter.finish(&mut numbered);
    Ok(())
}

/// Reads each file once into the ingestor, on this thread (see
/// [`crate::ingest::pipeline`]).
///
/// # Errors
/// A file that cannot be opened or read, named in the message.
pub fn read_files(
    files: &[PathBuf],
    max_line_bytes: usize,
    decoders: &Arc<DecoderConfig>,
    ingestor: &mut Ingestor<'_>,
) -> Result<(), DiscoverError> {
    crate::ingest::pipeline::read_files_one_thread(files, max_line_bytes, decoders, ingestor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_named_twice_or_through_a_link_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let a = logs.join("a.jsonl");
        std::fs::write(&a, "{}\n").unwrap();
        std::fs::write(logs.join("b.jsonl"), "{}\n").unwrap();
        std::os::unix::fs::symlink(&a, dir.path().join("link.jsonl")).unwrap();
        let found = discover(&[
            logs.clone(),
            a.clone(),
            dir.path().join("link.jsonl"),
            logs.join(".").join("a.jsonl"),
        ])
        .unwrap();
        assert_eq!(found, vec![a, logs.join("b.jsonl")]);
    }
}
