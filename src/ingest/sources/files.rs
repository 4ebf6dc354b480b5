//! Reading files once (`tokwatch report`): discovery and chunked reads.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ingest::Ingestor;
use crate::ingest::formats::DecoderConfig;
use crate::ingest::lines::{Line, LineSplitter, ReadBuffer};

/// Default `--max-line-bytes`: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// Bytes per `read` (and per pipeline batch).
pub(crate) const CHUNK_BYTES: usize = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("'{0}': no such file or directory")]
    Missing(PathBuf),
    #[error("'{path}': {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Files named on the command line, and `*.jsonl` files found recursively
/// under directories, in a stable (sorted) order, without duplicates.
///
/// # Errors
/// A path that does not exist or a directory that cannot be read.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DiscoverError> {
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => DiscoverError::Missing(path.clone()),
            _ => DiscoverError::Io {
                path: path.clone(),
                source: e,
            },
        })?;
        if meta.is_dir() {
            let walker = walkdir::WalkDir::new(path)
                .follow_links(true)
                .sort_by_file_name();
            for entry in walker {
                let entry = entry.map_err(|e| DiscoverError::Io {
                    path: e.path().map_or_else(|| path.clone(), Path::to_path_buf),
                    source: e.into(),
                })?;
                if entry.file_type().is_file()
                    && entry.path().extension().is_some_and(|x| x == "jsonl")
                {
                    found.push(entry.into_path());
                }
            }
        } else {
            found.push(path.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    found.retain(|p| seen.insert(FileIdentity::of(p)));
    Ok(found)
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
