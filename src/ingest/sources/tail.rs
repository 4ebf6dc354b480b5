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
//! - Offsets outlive transient failures. A directory that cannot be listed
//!   (permissions, too many open files) does not make its files vanish:
//!   they keep their state and the failure is reported once. A file closed
//!   because no path led to it any more is remembered (identity, offset, a
//!   fingerprint of what was read; [`FollowConfig::remembered`] files, least
//!   recently closed forgotten first): when it comes back with the content
//!   that was read, reading resumes at the offset; changed, it starts over.
//! - At most [`FollowConfig::max_open`] files are open at once (half the
//!   soft open-file limit, see [`open_file_budget`]): the least recently
//!   active are closed, reopened when their size or time changes, and
//!   resumed at their offset only after checking it is the same file with
//!   the same content up to the offset.
//! - Failures (listing, opening, reading) are reported to the sink once per
//!   episode (again only after they cleared), with the path they concern.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, Metadata};
use std::hash::{DefaultHasher, Hasher};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::ingest::lines::{Line, LineSplitter, ReadBuffer};
use crate::ingest::sources::files;

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
    /// Followed files open at once, at most ([`open_file_budget`]).
    pub max_open: usize,
    /// Files no longer followed whose offsets are kept, in case they come
    /// back ([`REMEMBERED_FILES`]).
    pub remembered: usize,
}

/// How many closed files' offsets are kept (about 100 bytes each).
pub const REMEMBERED_FILES: usize = 16_384;
/// Bounds of [`open_file_budget`].
const OPEN_FILES: (usize, usize) = (4, 16_384);

/// How many followed files may be open at once: half the soft limit on open
/// files (`ulimit -n`), the other half left to sockets, the terminal, file
/// events and the rest; at least 4, at most 16,384.
#[must_use]
pub fn open_file_budget() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    budget_for(limit)
}

fn budget_for(soft_limit: Option<u64>) -> usize {
    let (least, most) = OPEN_FILES;
    soft_limit
        .map_or(most, |limit| usize::try_from(limit / 2).unwrap_or(most))
        .clamp(least, most)
}

impl Default for FollowConfig {
    fn default() -> Self {
        FollowConfig {
            start: StartAt::Beginning,
            max_line_bytes: super::files::DEFAULT_MAX_LINE_BYTES,
            read_budget: 4 * 1024 * 1024,
            vanish_grace: Duration::from_secs(2),
            max_open: open_file_budget(),
            remembered: REMEMBERED_FILES,
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
    /// Something that is not a file being read failed: a directory that
    /// cannot be listed, a file that cannot be opened. Reported once per
    /// episode; by default as an [`FileEvent::Error`] of a source named
    /// after `path`.
    fn error(&mut self, path: &Path, message: String) {
        let source = self.source(path);
        self.file_event(source, FileEvent::Error(message));
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent {
    /// A file is being read from `from`: a new one, or (`resumed`) one
    /// that was followed before, back after an absence (not a new file).
    Opened { from: u64, resumed: bool },
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
    /// without newline were dropped. A file that may come back (not
    /// deleted) keeps its partial line: it says 0 here, and [`FileEvent::Lost`]
    /// once the line is known never to be read whole.
    Closed { incomplete: u64 },
    /// The partial last line (`incomplete` bytes) of a file closed while
    /// away is dropped for good: the file came back with other content,
    /// was forgotten ([`FollowConfig::remembered`]), or following ended.
    Lost { incomplete: u64 },
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

/// Size and modification time: a file closed to stay within the budget is
/// reopened only when they change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    len: u64,
    mtime: (i64, i64),
}

impl Stat {
    /// Never equal to what a file has: forces a reopen.
    const UNKNOWN: Stat = Stat {
        len: u64::MAX,
        mtime: (i64::MIN, i64::MIN),
    };

    fn of(meta: &Metadata) -> Stat {
        Stat {
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }
}

struct Tracked {
    path: PathBuf,
    /// The first bytes of the file as read (up to [`HEAD_BYTES`]).
    head: Vec<u8>,
    /// `None` while closed to stay within [`FollowConfig::max_open`].
    file: Option<File>,
    source: usize,
    offset: u64,
    line_no: u64,
    splitter: LineSplitter,
    /// Set when the path no longer leads to this file.
    vanished_at: Option<Instant>,
    /// Closed: what the file looked like then ([`Stat::UNKNOWN`] when it
    /// held more than was read), and the fingerprint of what was read.
    closed: Option<(Stat, Option<u64>)>,
    /// Last activity, the key in [`Follower::open`] while open.
    used: u64,
}

impl Tracked {
    /// Where a line starts that has not been read whole: reading resumes
    /// there once the file is forgotten and comes back.
    fn resume_at(&self) -> u64 {
        self.offset.saturating_sub(self.splitter.pending())
    }
}

/// How much of a file's beginning identifies it as the source of a copy.
const HEAD_BYTES: usize = 4096;
/// Bytes of the beginning compared on every pass to notice a truncation
/// that was rewritten past the old offset before tokwatch looked.
const PROBE_BYTES: usize = 1024;
/// How many truncated files are remembered to recognize their copies.
const RETIRED_HEADS: usize = 16;
/// Bytes at the beginning and before the offset that make a fingerprint.
const FINGERPRINT_WINDOW: u64 = 4096;

/// What a file held when it was truncated: a new file that starts with the
/// same bytes is its copy (copy-truncate rotation) and is read from `offset`.
struct Retired {
    head: Vec<u8>,
    offset: u64,
}

/// A file closed after it vanished: resumed at `offset` if it comes back
/// with the same content up to there.
struct Forgotten {
    offset: u64,
    line_no: u64,
    fingerprint: u64,
    /// Bytes of a last line not read whole, and where: dropped for good
    /// ([`FileEvent::Lost`]) unless the file comes back as it was.
    partial: Option<(u64, PathBuf)>,
    /// Key in [`Follower::forgotten_order`].
    closed: u64,
}

/// What one scan of the targets found.
#[derive(Default)]
struct Listing {
    /// Paths the targets name now, sorted.
    found: Vec<PathBuf>,
    /// Per target: names nothing.
    missing: Vec<bool>,
    /// Directories (or paths) that could not be listed: the files below
    /// them keep their state.
    unlisted: Vec<PathBuf>,
    errors: Vec<(PathBuf, String)>,
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
    /// Open files by last activity (least recent first).
    open: BTreeMap<u64, FileId>,
    /// A counter for [`Tracked::used`] and [`Forgotten::closed`].
    clock: u64,
    /// Lowered when the system refuses to open more files.
    open_cap: usize,
    /// Closed files whose offsets are kept, and their order of closing.
    forgotten: HashMap<FileId, Forgotten>,
    forgotten_order: BTreeMap<u64, FileId>,
    /// Failures reported at the last pass (reported again only once cleared).
    errors: HashMap<PathBuf, String>,
    /// Failures of the pass under way.
    pass_errors: HashMap<PathBuf, String>,
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
            open: BTreeMap::new(),
            clock: 0,
            open_cap: usize::MAX,
            forgotten: HashMap::new(),
            forgotten_order: BTreeMap::new(),
            errors: HashMap::new(),
            pass_errors: HashMap::new(),
        }
    }

    #[must_use]
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Number of files currently open.
    #[must_use]
    pub fn open_files(&self) -> usize {
        self.open.len()
    }

    /// Number of files followed (open, or closed to stay within the budget).
    #[must_use]
    pub fn followed_files(&self) -> usize {
        self.files.len()
    }

    /// Scans the targets: the paths they name now, which name nothing, and
    /// what could not be listed.
    fn list(&self) -> Listing {
        let mut listing = Listing::default();
        for target in &self.targets {
            let before = listing.found.len();
            let missing = match target {
                Target::Path(path) => match std::fs::metadata(path) {
                    Ok(meta) if meta.is_dir() => {
                        walk(path, &mut listing);
                        false
                    }
                    Ok(meta) if meta.is_file() => {
                        listing.found.push(path.clone());
                        false
                    }
                    Ok(meta) => {
                        let kind = kind_of(&meta);
                        listing.errors.push((
                            path.clone(),
                            format!("{kind}, not a file or directory: not followed"),
                        ));
                        false
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                    Err(e) => {
                        listing.unlisted.push(path.clone());
                        listing
                            .errors
                            .push((path.clone(), format!("cannot read: {e}")));
                        false
                    }
                },
                Target::Glob(pattern) => {
                    match glob::glob(pattern) {
                        Ok(paths) => {
                            for entry in paths {
                                match entry {
                                    Ok(path) if path.is_file() => listing.found.push(path),
                                    Ok(path) => {
                                        let kind = std::fs::metadata(&path)
                                            .ok()
                                            .and_then(|m| files::special_kind(m.file_type()));
                                        if let Some(kind) = kind {
                                            let why = files::not_a_file(kind);
                                            listing.errors.push((path, why));
                                        }
                                    }
                                    Err(e) if e.error().kind() == io::ErrorKind::NotFound => {}
                                    Err(e) => {
                                        listing.unlisted.push(e.path().to_path_buf());
                                        listing.errors.push((
                                            e.path().to_path_buf(),
                                            format!("cannot list: {}", e.error()),
                                        ));
                                    }
                                }
                            }
                        }
                        Err(e) => listing
                            .errors
                            .push((PathBuf::from(pattern), format!("invalid pattern: {e}"))),
                    }
                    listing.found.len() == before
                }
            };
            listing.missing.push(missing);
        }
        listing.found.sort();
        listing.found.dedup();
        listing
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

    /// A failure about `path`: reported unless it was already at the last
    /// pass (with the same message), through `source` when the file has one.
    fn fail(
        &mut self,
        path: &Path,
        source: Option<usize>,
        message: String,
        sink: &mut impl TailSink,
    ) {
        if self.errors.get(path) != Some(&message) && !self.pass_errors.contains_key(path) {
            match source {
                Some(source) => sink.file_event(source, FileEvent::Error(message.clone())),
                None => sink.error(path, message.clone()),
            }
        }
        self.pass_errors.insert(path.to_path_buf(), message);
    }

    /// Rescans the targets and reads every file from its offset to the end
    /// (up to the read budget), reporting lines and file events to `sink`.
    pub fn poll(&mut self, now: Instant, sink: &mut impl TailSink) -> PassReport {
        let listing = self.list();
        self.report_missing(listing.missing, sink);
        for (path, message) in listing.errors {
            self.fail(&path, None, message, sink);
        }
        let mut unlisted = listing.unlisted;
        let mut seen: HashMap<FileId, Stat> = HashMap::new();
        let mut fresh: Vec<(FileId, PathBuf)> = Vec::new();
        for path in listing.found {
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.fail(&path, None, format!("cannot read: {e}"), sink);
                    unlisted.push(path);
                    continue;
                }
            };
            if !meta.is_file() {
                continue;
            }
            let id = FileId::of(&meta);
            if seen.insert(id, Stat::of(&meta)).is_some() {
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
                    self.path_changed(old, id, &path, now, sink);
                }
                _ => self.open_new(id, &path, sink),
            }
        }
        // Files no path leads to any more: drained, then closed after a
        // grace period. Files below a directory that could not be listed
        // are not known to be gone: they keep their state.
        for (id, tracked) in &mut self.files {
            if !seen.contains_key(id) && !unlisted.iter().any(|u| tracked.path.starts_with(u)) {
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
            let (bytes, more) = self.read_changed(id, seen.get(&id).copied(), sink);
            report.bytes += bytes;
            report.more |= more;
            let expired = self.files.get(&id).is_some_and(|tracked| {
                tracked
                    .vanished_at
                    .is_some_and(|t| now.saturating_duration_since(t) >= self.config.vanish_grace)
            });
            if expired && !more {
                self.close(id, true, sink);
            }
        }
        self.errors = std::mem::take(&mut self.pass_errors);
        report
    }

    /// Reads a file, first reopening it if it was closed for the budget and
    /// its path shows a change (`stat`: what the path led to this pass).
    fn read_changed(
        &mut self,
        id: FileId,
        stat: Option<Stat>,
        sink: &mut impl TailSink,
    ) -> (u64, bool) {
        let Some(tracked) = self.files.get(&id) else {
            return (0, false);
        };
        if let Some((closed_stat, _)) = tracked.closed {
            // No path leads to it (or it cannot be listed now): nothing to
            // reopen. Unchanged: nothing to read.
            match stat {
                Some(stat) if stat != closed_stat => {
                    if !self.reopen(id, sink) {
                        return (0, false);
                    }
                }
                _ => return (0, false),
            }
        }
        self.read_file(id, sink)
    }

    /// The next value of the activity clock.
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Marks an open file as just active.
    fn touch(&mut self, id: FileId) {
        let now = self.tick();
        if let Some(tracked) = self.files.get_mut(&id) {
            self.open.remove(&tracked.used);
            tracked.used = now;
            self.open.insert(now, id);
        }
    }

    /// How many files may be open now.
    fn cap(&self) -> usize {
        self.config.max_open.min(self.open_cap).max(1)
    }

    /// Closes the least recently active open file (not `keep`; files being
    /// drained after they vanished last). Returns whether one was closed.
    fn evict(&mut self, keep: Option<FileId>) -> bool {
        let candidates = self.open.values().filter(|id| Some(**id) != keep);
        let victim = candidates
            .clone()
            .find(|id| self.files[*id].vanished_at.is_none())
            .or_else(|| candidates.clone().next())
            .copied();
        let Some(id) = victim else {
            return false;
        };
        let Some(tracked) = self.files.get_mut(&id) else {
            return false;
        };
        self.open.remove(&tracked.used);
        if let Some(file) = tracked.file.take() {
            // What was read must still be there when it is reopened; a file
            // that already holds more than was read is reopened at once.
            let stat = file
                .metadata()
                .ok()
                .map(|m| Stat::of(&m))
                .filter(|s| s.len == tracked.offset)
                .unwrap_or(Stat::UNKNOWN);
            let print = fingerprint(&file, tracked.resume_at());
            tracked.closed = Some((stat, print));
        }
        true
    }

    /// Opens `path` within the budget, closing idle files to make room (and
    /// lowering the budget if the system refuses more).
    fn open_path(&mut self, path: &Path, keep: Option<FileId>) -> io::Result<File> {
        while self.open.len() >= self.cap() {
            if !self.evict(keep) {
                break;
            }
        }
        match File::open(path) {
            Err(e) if too_many_files(&e) && self.open.len() > 1 => {
                self.open_cap = self.open.len() - 1;
                self.evict(keep);
                File::open(path)
            }
            other => other,
        }
    }

    /// Reopens a file closed for the budget: only this very file, resumed
    /// at its offset if what was read is still there, else read again
    /// from 0 (as a truncation).
    fn reopen(&mut self, id: FileId, sink: &mut impl TailSink) -> bool {
        let Some(tracked) = self.files.get(&id) else {
            return false;
        };
        let (path, source) = (tracked.path.clone(), tracked.source);
        let file = match self.open_path(&path, Some(id)) {
            Ok(file) => file,
            Err(e) => {
                self.fail(&path, Some(source), format!("cannot open: {e}"), sink);
                return false;
            }
        };
        if !file.metadata().is_ok_and(|m| FileId::of(&m) == id) {
            return false; // the path leads elsewhere now: the next scan says where
        }
        let Some(tracked) = self.files.get_mut(&id) else {
            return false;
        };
        let (_, print) = tracked.closed.take().unwrap_or((Stat::UNKNOWN, None));
        let same = print.is_some_and(|p| fingerprint(&file, tracked.resume_at()) == Some(p));
        tracked.file = Some(file);
        self.touch(id);
        if same {
            self.check_truncation(id, sink);
        } else {
            self.restart(id, sink);
        }
        true
    }

    fn open_new(&mut self, id: FileId, path: &Path, sink: &mut impl TailSink) {
        let file = match self.open_path(path, None) {
            Ok(file) => file,
            Err(e) => {
                self.fail(path, None, format!("cannot open: {e}"), sink);
                return;
            }
        };
        if !file.metadata().is_ok_and(|m| FileId::of(&m) == id) {
            return; // replaced since the scan: the next one sees the new file
        }
        let source = sink.source(path);
        let mut offset = 0;
        let mut line_no = 0;
        let mut head = Vec::new();
        let mut resumed = false;
        let mut lost = None;
        if let Some(forgotten) = self.forget(id) {
            // It was followed before, closed when it vanished: what was read
            // is not read again if it is still there.
            resumed = true;
            if fingerprint(&file, forgotten.offset) == Some(forgotten.fingerprint) {
                offset = forgotten.offset;
                line_no = forgotten.line_no;
                head = vec![0; usize::try_from(offset).map_or(HEAD_BYTES, |o| o.min(HEAD_BYTES))];
                if file.read_exact_at(&mut head, 0).is_err() {
                    head.clear();
                }
            } else {
                // other content: its half line will never be read whole
                lost = forgotten.partial.map(|(incomplete, _)| incomplete);
            }
        }
        if offset == 0 {
            // Only files present at start are skipped with --from-end.
            if let (StartAt::End, false) = (self.config.start, self.scanned_once) {
                offset = file.metadata().map_or(0, |m| m.len());
            }
        }
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
        sink.file_event(
            source,
            FileEvent::Opened {
                from: offset,
                resumed,
            },
        );
        if let Some(incomplete) = lost {
            sink.file_event(source, FileEvent::Lost { incomplete });
        }
        let used = self.tick();
        self.open.insert(used, id);
        self.files.insert(
            id,
            Tracked {
                path: path.to_path_buf(),
                head,
                file: Some(file),
                source,
                offset,
                line_no,
                splitter: LineSplitter::new(self.config.max_line_bytes),
                vanished_at: None,
                closed: None,
                used,
            },
        );
    }

    /// The remembered state of a closed file, taken out of memory.
    fn forget(&mut self, id: FileId) -> Option<Forgotten> {
        let forgotten = self.forgotten.remove(&id)?;
        self.forgotten_order.remove(&forgotten.closed);
        Some(forgotten)
    }

    /// Keeps the offset of a file closed after it vanished (and its
    /// partial last line, if any). Returns false when it cannot be kept.
    fn remember(
        &mut self,
        id: FileId,
        offset: u64,
        line_no: u64,
        fingerprint: u64,
        partial: Option<(u64, PathBuf)>,
        sink: &mut impl TailSink,
    ) -> bool {
        if self.config.remembered == 0 || offset == 0 {
            return false;
        }
        self.forget(id);
        while self.forgotten.len() >= self.config.remembered {
            let Some((_, oldest)) = self.forgotten_order.pop_first() else {
                break;
            };
            if let Some(Forgotten {
                partial: Some((incomplete, path)),
                ..
            }) = self.forgotten.remove(&oldest)
            {
                let source = sink.source(&path);
                sink.file_event(source, FileEvent::Lost { incomplete });
            }
        }
        let closed = self.tick();
        self.forgotten_order.insert(closed, id);
        self.forgotten.insert(
            id,
            Forgotten {
                offset,
                line_no,
                fingerprint,
                partial,
                closed,
            },
        );
        true
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
        let replacement = self.open_path(path, Some(old)).ok().filter(|new_file| {
            let Some(tracked) = self.files.get(&old) else {
                return false;
            };
            match (&tracked.file, tracked.closed) {
                (Some(old_file), _) => same_prefix(old_file, new_file, tracked.offset),
                // closed for the budget: compared with what it held then
                (None, Some((_, Some(print)))) => {
                    tracked.offset > 0
                        && tracked.offset == tracked.resume_at()
                        && fingerprint(new_file, tracked.offset) == Some(print)
                }
                (None, _) => false,
            }
        });
        let Some(tracked) = self.files.get(&old) else {
            return;
        };
        let source = tracked.source;
        if let Some(new_file) = replacement {
            // An editor rewrote the file: continue where we were, in the new one.
            if let Some(mut tracked) = self.files.remove(&old) {
                self.open.remove(&tracked.used);
                tracked.file = Some(new_file);
                tracked.closed = None;
                tracked.path = path.to_path_buf();
                tracked.vanished_at = None;
                self.files.insert(new, tracked);
                self.touch(new);
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

    /// Reads one open file from its offset; returns (bytes read, budget exhausted).
    fn read_file(&mut self, id: FileId, sink: &mut impl TailSink) -> (u64, bool) {
        let budget = self.config.read_budget as u64;
        let Some(tracked) = self.files.get_mut(&id) else {
            return (0, false);
        };
        let Some(file) = &tracked.file else {
            return (0, false);
        };
        let mut total = 0_u64;
        let mut failed = None;
        let more = loop {
            if total >= budget {
                break true;
            }
            let n = match file.read_at(self.buffer.space(), tracked.offset) {
                Ok(0) => break false,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failed = Some(e);
                    break false;
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
        };
        if let Some(e) = failed {
            let (path, source) = (tracked.path.clone(), tracked.source);
            self.fail(&path, Some(source), format!("cannot read: {e}"), sink);
        }
        if total > 0 {
            self.touch(id);
        }
        (total, more)
    }

    /// `len < offset`: the file was truncated (copy-truncate). Remember what
    /// it held so its copy is recognized, then restart at 0.
    fn check_truncation(&mut self, id: FileId, sink: &mut impl TailSink) {
        let Some(tracked) = self.files.get_mut(&id) else {
            return;
        };
        let Some(file) = &tracked.file else {
            return; // checked when reopened
        };
        let rewritten = || {
            // Truncated and rewritten past the old offset between two looks:
            // the beginning no longer matches what was read.
            let probe = tracked.head.len().min(PROBE_BYTES);
            let mut start = vec![0; probe];
            probe > 0 && file.read_exact_at(&mut start, 0).is_ok() && start != tracked.head[..probe]
        };
        match file.metadata() {
            Ok(meta) if meta.len() < tracked.offset || rewritten() => self.restart(id, sink),
            Ok(_) => {}
            Err(e) => {
                let (path, source) = (tracked.path.clone(), tracked.source);
                self.fail(&path, Some(source), format!("cannot read: {e}"), sink);
            }
        }
    }

    /// The file no longer holds what was read: remember what it held (its
    /// copy is recognized), then read it again from 0.
    fn restart(&mut self, id: FileId, sink: &mut impl TailSink) {
        let Some(tracked) = self.files.get_mut(&id) else {
            return;
        };
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

    /// Stops following a file; with `remember`, keeps its offset in case it
    /// comes back.
    fn close(&mut self, id: FileId, remember: bool, sink: &mut impl TailSink) {
        let Some(tracked) = self.files.remove(&id) else {
            return;
        };
        self.open.remove(&tracked.used);
        let resume = tracked.resume_at();
        // A deleted file (no link left) cannot come back.
        let deleted = tracked
            .file
            .as_ref()
            .is_some_and(|f| f.metadata().is_ok_and(|m| m.nlink() == 0));
        let print = match (&tracked.file, tracked.closed) {
            (_, _) if deleted => None,
            (Some(file), _) => fingerprint(file, resume),
            (None, Some((_, print))) => print,
            (None, None) => None,
        };
        let mut incomplete = tracked.splitter.pending();
        let partial = (incomplete > 0).then(|| (incomplete, tracked.path.clone()));
        if let (true, Some(print)) = (remember, print)
            && self.remember(id, resume, tracked.line_no, print, partial, sink)
        {
            // kept with the offset: read whole if the file comes back
            incomplete = 0;
        }
        sink.file_event(tracked.source, FileEvent::Closed { incomplete });
    }

    /// Closes every file (shutdown), reporting incomplete last lines, those
    /// of files closed while away included.
    pub fn close_all(&mut self, sink: &mut impl TailSink) {
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        for id in ids {
            self.close(id, false, sink);
        }
        self.forgotten_order.clear();
        for (_, forgotten) in self.forgotten.drain() {
            if let Some((incomplete, path)) = forgotten.partial {
                let source = sink.source(&path);
                sink.file_event(source, FileEvent::Lost { incomplete });
            }
        }
    }
}

/// Lists `*.jsonl` below `dir`; what cannot be listed is kept apart.
fn walk(dir: &Path, listing: &mut Listing) {
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        match entry {
            Ok(entry) => {
                if entry.path().extension().is_some_and(|x| x == "jsonl") {
                    if entry.file_type().is_file() {
                        listing.found.push(entry.into_path());
                    } else if let Some(kind) = files::special_kind(entry.file_type()) {
                        // a FIFO would block the follower, a device never end
                        let why = files::not_a_file(kind);
                        listing.errors.push((entry.into_path(), why));
                    }
                }
            }
            // A symlink loop: what it leads to is listed through its target.
            Err(e) if e.loop_ancestor().is_some() => {}
            // Removed while listed (names nothing), or a dangling link
            // named like a log (said, once).
            Err(e)
                if e.io_error()
                    .is_some_and(|e| e.kind() == io::ErrorKind::NotFound) =>
            {
                if let Some(path) = e
                    .path()
                    .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                    && let Some(broken) = files::broken_link(path)
                {
                    listing
                        .errors
                        .push((path.to_path_buf(), format!("{broken}: not read")));
                }
            }
            Err(e) => {
                let at = e.path().unwrap_or(dir).to_path_buf();
                let why = e
                    .io_error()
                    .map_or_else(|| e.to_string(), ToString::to_string);
                listing.unlisted.push(at.clone());
                listing.errors.push((at, format!("cannot list: {why}")));
            }
        }
    }
}

/// What a path that is neither a file nor a directory is.
fn kind_of(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_fifo() {
        "a pipe"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// The process (EMFILE) or the system (ENFILE) has no file descriptor left.
fn too_many_files(e: &io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(e),
        Some(errno) if errno == Errno::MFILE || errno == Errno::NFILE
    )
}

/// A hash of the first `len` bytes of `file`: its length, its first and
/// its last [`FINGERPRINT_WINDOW`] bytes (all of them up to 8 KiB). Tells
/// whether a file that comes back (or is reopened) still holds what was
/// read; `None` if they cannot be read.
fn fingerprint(file: &File, len: u64) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    hasher.write_u64(len);
    let first = len.min(FINGERPRINT_WINDOW);
    let last = len.saturating_sub(FINGERPRINT_WINDOW).max(first);
    let mut buf = vec![0; usize::try_from(first).ok()?];
    file.read_exact_at(&mut buf, 0).ok()?;
    hasher.write(&buf);
    buf.resize(usize::try_from(len - last).ok()?, 0);
    file.read_exact_at(&mut buf, last).ok()?;
    hasher.write(&buf);
    Some(hasher.finish())
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
