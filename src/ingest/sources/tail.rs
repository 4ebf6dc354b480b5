//! Following files: discovery, reading from saved offsets, rotation,
//! truncation, deletion and editor replacement. Synchronous and driven from
//! outside (a notify event or a poll tick calls [`Follower::poll`]), so the
//! whole behaviour is testable without threads or timers.
//!
//! Rules (docs/live.md):
//! - Files are identified by (device, inode), never by name: a rotated file
//!   keeps being read under its new name and is never re-read as a new file.
//! - Every pass reads from the saved offset to the end of file; notify events
//!   are only wake-up hints, a periodic pass is the safety net.
//! - `len < offset` is a truncation (copy-truncate): restart at 0 and count it.
//! - A path whose inode changed is a rotation, unless the new file starts with
//!   exactly the bytes already read (an editor that replaced the file): then
//!   reading continues at the old offset and nothing is counted twice.
//! - A file that vanished (deleted, or rotated to a name no longer followed)
//!   is drained through its open handle and kept for a grace period, then
//!   closed; a partial last line is then reported as incomplete.
//! - A target that names nothing (a path not created yet, a glob with no
//!   match) is waited for: reported as missing ([`TailSink::waiting`]) and
//!   read from its beginning the first pass after it appears.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::ingest::lines::{Line, LineSplitter, ReadBuffer};

/// Where reading starts in files that exist when following begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    /// Skip existing content (`--from-end`); files created later are read whole.
    End,
}

/// What to follow: a path (a file, or a directory searched recursively for
/// `*.jsonl`, decided at every scan so a directory created later works) or a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Path(PathBuf),
    Glob(String),
}

impl Target {
    /// Classifies a `--follow` argument.
    #[must_use]
    pub fn parse(arg: &str) -> Target {
        if arg.contains(['*', '?', '[']) {
            Target::Glob(arg.to_owned())
        } else {
            Target::Path(PathBuf::from(arg))
        }
    }

    /// The target as the user wrote it (a path or a pattern).
    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Target::Path(path) => path.display().to_string(),
            Target::Glob(pattern) => pattern.clone(),
        }
    }

    /// Directories to watch for events, with whether to watch recursively.
    #[must_use]
    pub fn watch_roots(&self) -> Vec<(PathBuf, bool)> {
        match self {
            Target::Path(path) if path.is_dir() => vec![(path.clone(), true)],
            Target::Path(path) => {
                let parent = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                vec![(parent.to_path_buf(), false)]
            }
            Target::Glob(pattern) => {
                // the longest leading part without wildcards
                let base: PathBuf = Path::new(pattern)
                    .components()
                    .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
                    .collect();
                let base = if base.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    base
                };
                vec![(base, true)]
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct FollowConfig {
    pub start: StartAt,
    pub max_line_bytes: usize,
    /// Bytes read from one file per pass before others get a turn.
    pub read_budget: usize,
    /// How long a vanished file stays open for late writes through old handles.
    pub vanish_grace: Duration,
}

impl Default for FollowConfig {
    fn default() -> Self {
        FollowConfig {
            start: StartAt::Beginning,
            max_line_bytes: super::files::DEFAULT_MAX_LINE_BYTES,
            read_budget: 4 * 1024 * 1024,
            vanish_grace: Duration::from_secs(2),
        }
    }
}

/// What a follower reports, in order, per file.
pub trait TailSink {
    /// An index for the file just opened at `path`: its lines and events
    /// come with it until it is closed (a rotated-away file and the new
    /// one at its path have different indices; the sink keeps statistics
    /// per path).
    fn source(&mut self, path: &Path) -> usize;
    /// Complete lines (newline removed, CR removed), numbered from 1 per file
    /// incarnation.
    fn line(&mut self, source: usize, line_no: u64, line: &[u8]);
    fn oversized(&mut self, source: usize, line_no: u64, bytes: u64);
    fn file_event(&mut self, source: usize, event: FileEvent);
    /// A target names nothing (`missing`: a path that does not exist, a
    /// glob that matches no file), or names something again. Reported at
    /// the first pass for every target that is missing, then on each change.
    fn waiting(&mut self, target: &Target, missing: bool) {
        let _ = (target, missing);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent {
    /// A new file is being read (`from` is the starting offset).
    Opened { from: u64 },
    /// The path now names a different file; the old one is drained first.
    Rotated,
    /// The file shrank below what was read: reading restarts at 0.
    Truncated,
    /// An editor replaced the file with one that starts with what was read.
    Replaced,
    /// A new file is the copy of a truncated one: read from `from`, after
    /// what was already read from the original.
    CopyOfTruncated { from: u64 },
    /// The file is gone and was drained; `incomplete` bytes of a last line
    /// without newline were dropped.
    Closed { incomplete: u64 },
    /// The file could not be read.
    Error(String),
}

/// (device, inode)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    fn of(meta: &Metadata) -> Self {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

struct Tracked {
    path: PathBuf,
    /// The first bytes of the file as read (up to [`HEAD_BYTES`]).
    head: Vec<u8>,
    file: File,
    source: usize,
    offset: u64,
    line_no: u64,
    splitter: LineSplitter,
    /// Set when the path no longer leads to this file.
    vanished_at: Option<Instant>,
}

/// How much of a file's beginning identifies it as the source of a copy.
const HEAD_BYTES: usize = 4096;
/// Bytes of the beginning compared on every pass to notice a truncation
/// that was rewritten past the old offset before tokwatch looked.
const PROBE_BYTES: usize = 1024;
/// How many truncated files are remembered to recognize their copies.
const RETIRED_HEADS: usize = 16;

/// What a file held when it was truncated: a new file that starts with the
/// same bytes is its copy (copy-truncate rotation) and is read from `offset`.
struct Retired {
    head: Vec<u8>,
    offset: u64,
}

/// Follows a set of targets. Call [`Follower::poll`] on every wake-up.
pub struct Follower {
    targets: Vec<Target>,
    config: FollowConfig,
    files: HashMap<FileId, Tracked>,
    /// Which file each followed path led to at the last scan.
    paths: HashMap<PathBuf, FileId>,
    scanned_once: bool,
    buffer: ReadBuffer,
    retired: Vec<Retired>,
    /// Per target: reported missing (waited for) at the last pass.
    missing: Vec<bool>,
}

/// Outcome of a pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub bytes: u64,
    /// Some file hit its read budget: poll again without waiting.
    pub more: bool,
}

impl Follower {
    #[must_use]
    pub fn new(targets: Vec<Target>, config: FollowConfig) -> Self {
        Follower {
            targets,
            config,
            files: HashMap::new(),
            paths: HashMap::new(),
            scanned_once: false,
            buffer: ReadBuffer::new(256 * 1024),
            retired: Vec::new(),
            missing: Vec::new(),
        }
    }

    #[must_use]
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Number of files currently open.
    #[must_use]
    pub fn open_files(&self) -> usize {
        self.files.len()
    }

    /// Paths the targets name now (existing regular files only), sorted;
    /// and per target, whether it names nothing (see [`TailSink::waiting`]).
    fn candidates(&self) -> (Vec<PathBuf>, Vec<bool>) {
        let mut found = Vec::new();
        let mut missing = Vec::with_capacity(self.targets.len());
        for target in &self.targets {
            let before = found.len();
            match target {
                Target::Path(path) if path.is_dir() => {
                    for entry in walkdir::WalkDir::new(path)
                        .follow_links(true)
                        .sort_by_file_name()
                        .into_iter()
                        .flatten()
                    {
                        if entry.file_type().is_file()
                            && entry.path().extension().is_some_and(|x| x == "jsonl")
                        {
                            found.push(entry.into_path());
                        }
                    }
                }
                Target::Path(path) => found.push(path.clone()),
                Target::Glob(pattern) => {
                    if let Ok(paths) = glob::glob(pattern) {
                        found.extend(paths.flatten().filter(|p| p.is_file()));
                    }
                }
            }
            missing.push(match target {
                // A directory with no `*.jsonl` yet exists all the same.
                Target::Path(path) => std::fs::metadata(path).is_err(),
                Target::Glob(_) => found.len() == before,
            });
        }
        found.sort();
        found.dedup();
        (found, missing)
    }

    /// Reports the targets that went missing or appeared since the last pass.
    fn report_missing(&mut self, missing: Vec<bool>, sink: &mut impl TailSink) {
        for (index, (target, &now)) in self.targets.iter().zip(&missing).enumerate() {
            let before = self.missing.get(index).copied().unwrap_or(false);
            if now != before {
                sink.waiting(target, now);
            }
        }
        self.missing = missing;
    }

    /// The targets that name nothing now, as of the last pass.
    pub fn missing_targets(&self) -> impl Iterator<Item = &Target> {
        self.targets
            .iter()
            .zip(&self.missing)
            .filter_map(|(target, &missing)| missing.then_some(target))
    }

    /// Rescans the targets and reads every file from its offset to the end
    /// (up to the read budget), reporting lines and file events to `sink`.
    pub fn poll(&mut self, now: Instant, sink: &mut impl TailSink) -> PassReport {
        let mut seen: HashMap<FileId, PathBuf> = HashMap::new();
        let mut fresh: Vec<(FileId, PathBuf)> = Vec::new();
        let (candidates, missing) = self.candidates();
        self.report_missing(missing, sink);
        for path in candidates {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let id = FileId::of(&meta);
            if seen.insert(id, path.clone()).is_some() {
                continue; // two names (links) for one file: read it once
            }
            if let Some(tracked) = self.files.get_mut(&id) {
                // a known file, maybe under a new name (rotated within the targets)
                tracked.path.clone_from(&path);
                tracked.vanished_at = None;
                self.paths.insert(path, id);
            } else {
                fresh.push((id, path));
            }
        }
        // Truncations first, so that the copy of a copy-truncate is recognized.
        let known: Vec<FileId> = self.files.keys().copied().collect();
        for id in &known {
            self.check_truncation(*id, sink);
        }
        for (id, path) in fresh {
            match self.paths.insert(path.clone(), id) {
                Some(old) if old != id && self.files.contains_key(&old) => {
                    self.path_changed(old, id, &path, now, sink)
                }
                _ => self.open_new(id, &path, sink),
            }
        }
        // Files no path leads to any more: drained, then closed after a grace period.
        for (id, tracked) in &mut self.files {
            if !seen.contains_key(id) {
                tracked.vanished_at.get_or_insert(now);
            }
        }
        // A path keeps naming a vanished file while it drains, so a file that
        // appears there later is recognized as its rotation (or replacement).
        let files = &self.files;
        self.paths
            .retain(|_, id| seen.contains_key(id) || files.contains_key(id));
        self.scanned_once = true;

        let mut report = PassReport::default();
        // Vanished (rotated-away) files first: their lines are older.
        let mut ids: Vec<FileId> = self.files.keys().copied().collect();
        ids.sort_by_key(|id| {
            (
                self.files[id].vanished_at.is_none(),
                self.files[id].path.clone(),
            )
        });
        for id in ids {
            let (bytes, more) = self.read_file(id, sink);
            report.bytes += bytes;
            report.more |= more;
            let expired = self.files[&id]
                .vanished_at
                .is_some_and(|t| now.saturating_duration_since(t) >= self.config.vanish_grace);
            if expired && !more {
                self.close(id, sink);
            }
        }
        report
    }

    fn open_new(&mut self, id: FileId, path: &Path, sink: &mut impl TailSink) {
        let source = sink.source(path);
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) => {
                sink.file_event(source, FileEvent::Error(e.to_string()));
                return;
            }
        };
        // Only files present at start are skipped with --from-end.
        let mut offset = match (self.config.start, self.scanned_once) {
            (StartAt::End, false) => file.metadata().map_or(0, |m| m.len()),
            _ => 0,
        };
        let mut head = Vec::new();
        if offset == 0 {
            if let Some(copy) = self.copy_of_truncated(&file) {
                // The copy half of a copy-truncate: what was read is not read again.
                head = self.retired[copy].head.clone();
                offset = self.retired.remove(copy).offset;
                sink.file_event(source, FileEvent::CopyOfTruncated { from: offset });
            } else if self.copy_of_live(&file) {
                // A copy taken before the original is truncated: its content is
                // (or will be) read from the original.
                offset = file.metadata().map_or(0, |m| m.len());
                sink.file_event(source, FileEvent::CopyOfTruncated { from: offset });
            }
        }
        sink.file_event(source, FileEvent::Opened { from: offset });
        self.files.insert(
            id,
            Tracked {
                path: path.to_path_buf(),
                head,
                file,
                source,
                offset,
                line_no: 0,
                splitter: LineSplitter::new(self.config.max_line_bytes),
                vanished_at: None,
            },
        );
    }

    /// `path` used to lead to `old` and now leads to `new`.
    fn path_changed(
        &mut self,
        old: FileId,
        new: FileId,
        path: &Path,
        now: Instant,
        sink: &mut impl TailSink,
    ) {
        // Drain the old file completely before anything else.
        while self.read_file(old, sink).1 {}
        let Some(tracked) = self.files.get(&old) else {
            return;
        };
        let source = tracked.source;
        let replacement = File::open(path)
            .ok()
            .filter(|new_file| same_prefix(&tracked.file, new_file, tracked.offset));
        if let Some(new_file) = replacement {
            // An editor rewrote the file: continue where we were, in the new one.
            if let Some(mut tracked) = self.files.remove(&old) {
                tracked.file = new_file;
                tracked.path = path.to_path_buf();
                tracked.vanished_at = None;
                self.files.insert(new, tracked);
            }
            sink.file_event(source, FileEvent::Replaced);
            return;
        }
        if let Some(tracked) = self.files.get_mut(&old) {
            tracked.vanished_at.get_or_insert(now);
        }
        sink.file_event(source, FileEvent::Rotated);
        // A rotated-in file is new data: always from its beginning.
        let scanned = std::mem::replace(&mut self.scanned_once, true);
        self.open_new(new, path, sink);
        self.scanned_once = scanned;
    }

    /// Reads one file from its offset; returns (bytes read, budget exhausted).
    fn read_file(&mut self, id: FileId, sink: &mut impl TailSink) -> (u64, bool) {
        let budget = self.config.read_budget as u64;
        let Some(tracked) = self.files.get_mut(&id) else {
            return (0, false);
        };
        let mut total = 0_u64;
        loop {
            if total >= budget {
                return (total, true);
            }
            let n = match tracked.file.read_at(self.buffer.space(), tracked.offset) {
                Ok(0) => return (total, false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    sink.file_event(tracked.source, FileEvent::Error(e.to_string()));
                    return (total, false);
                }
            };
            if tracked.head.len() < HEAD_BYTES && tracked.offset == tracked.head.len() as u64 {
                let take = n.min(HEAD_BYTES - tracked.head.len());
                tracked.head.extend_from_slice(self.buffer.data(take));
            }
            tracked.offset += n as u64;
            total += n as u64;
            let (source, line_no) = (tracked.source, &mut tracked.line_no);
            tracked.splitter.feed(self.buffer.data(n), |line| {
                *line_no += 1;
                match line {
                    Line::Complete(bytes) => sink.line(source, *line_no, bytes),
                    Line::Oversized(len) => sink.oversized(source, *line_no, len),
                }
            });
        }
    }

    /// `len < offset`: the file was truncated (copy-truncate). Remember what
    /// it held so its copy is recognized, then restart at 0.
    fn check_truncation(&mut self, id: FileId, sink: &mut impl TailSink) {
        let Some(tracked) = self.files.get_mut(&id) else {
            return;
        };
        let rewritten = || {
            // Truncated and rewritten past the old offset between two looks:
            // the beginning no longer matches what was read.
            let probe = tracked.head.len().min(PROBE_BYTES);
            let mut start = vec![0; probe];
            probe > 0
                && tracked.file.read_exact_at(&mut start, 0).is_ok()
                && start != tracked.head[..probe]
        };
        match tracked.file.metadata() {
            Ok(meta) if meta.len() < tracked.offset || rewritten() => {
                if self.retired.len() == RETIRED_HEADS {
                    self.retired.remove(0);
                }
                self.retired.push(Retired {
                    head: std::mem::take(&mut tracked.head),
                    offset: tracked.offset,
                });
                tracked.offset = 0;
                tracked.line_no = 0;
                tracked.splitter.reset();
                sink.file_event(tracked.source, FileEvent::Truncated);
            }
            Ok(_) => {}
            Err(e) => sink.file_event(tracked.source, FileEvent::Error(e.to_string())),
        }
    }

    /// A remembered truncated file whose content `file` starts with.
    fn copy_of_truncated(&self, file: &File) -> Option<usize> {
        let len = file.metadata().ok()?.len();
        self.retired.iter().position(|retired| {
            let head_len = retired.head.len();
            if head_len == 0 || len < retired.offset || (len as usize) < head_len {
                return false;
            }
            let mut buf = vec![0; head_len];
            file.read_exact_at(&mut buf, 0).is_ok() && buf == retired.head
        })
    }

    /// Does `file` start with the full head of a file being followed? (Only
    /// full heads count, so small distinct files with equal lines stay distinct.)
    fn copy_of_live(&self, file: &File) -> bool {
        let mut buf = vec![0; HEAD_BYTES];
        if file.read_exact_at(&mut buf, 0).is_err() {
            return false;
        }
        self.files
            .values()
            .any(|t| t.head.len() == HEAD_BYTES && t.head == buf)
    }

    fn close(&mut self, id: FileId, sink: &mut impl TailSink) {
        if let Some(tracked) = self.files.remove(&id) {
            sink.file_event(
                tracked.source,
                FileEvent::Closed {
                    incomplete: tracked.splitter.pending(),
                },
            );
        }
    }

    /// Closes every file (shutdown), reporting incomplete last lines.
    pub fn close_all(&mut self, sink: &mut impl TailSink) {
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        for id in ids {
            self.close(id, sink);
        }
    }
}

/// Does `new` start with the first `len` bytes of `old`? Compares the first
/// and last 64 KiB (an editor rewrite of the same content matches; a rotated-in
/// file does not).
fn same_prefix(old: &File, new: &File, len: u64) -> bool {
    const WINDOW: u64 = 64 * 1024;
    if len == 0 || new.metadata().map_or(true, |m| m.len() < len) {
        return false;
    }
    let ranges = if len <= 2 * WINDOW {
        vec![(0, len)]
    } else {
        vec![(0, WINDOW), (len - WINDOW, WINDOW)]
    };
    ranges.into_iter().all(|(start, size)| {
        let size = usize::try_from(size).unwrap_or(0);
        let (mut a, mut b) = (vec![0; size], vec![0; size]);
        old.read_exact_at(&mut a, start).is_ok()
            && new.read_exact_at(&mut b, start).is_ok()
            && a == b
    })
}

#[cfg(test)]
mod tests;
