//! Ingestion: bytes from sources (files, followed files, sockets, standard
//! input) decoded by input formats into normalized events, then folded into
//! the ledger, counting and locating every line that is rejected.
//!
//! - `sources/`: where lines come from; `lines`: splitting them;
//! - `formats/`: what lines mean (one decoder per source, format detected);
//! - `parsed`: decoded lines in batches that cross threads; `pipeline`: the
//!   report's decode thread; `channel`: live sources → aggregator;
//! - [`Ingestor`] + `dedup`: folding events into the ledger, one count per
//!   call across sources; `stats`: what happened to every line.

pub mod channel;
pub mod dedup;
pub mod estimate;
pub mod formats;
pub mod lines;
pub mod parsed;
pub mod pipeline;
pub mod record;
pub mod sources;
pub mod stats;

use crate::model::{Ledger, RunAgg};
use crate::types::event::{EventKind, TelemetryEvent};
use dedup::{CallRegistry, Settled};
pub use formats::native::{LineOrigin, ParseError};
pub use stats::{IngestStats, RejectKind};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Keeps events whose timestamp falls in `[since, until)` (epoch ms). When
/// either bound is set, events without a timestamp are filtered out too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl TimeWindow {
    #[must_use]
    pub fn is_unbounded(&self) -> bool {
        self.since_ms.is_none() && self.until_ms.is_none()
    }

    #[must_use]
    pub fn contains(&self, ts_ms: Option<i64>) -> bool {
        if self.is_unbounded() {
            return true;
        }
        let Some(ts) = ts_ms else { return false };
        self.since_ms.is_none_or(|s| ts >= s) && self.until_ms.is_none_or(|u| ts < u)
    }
}

/// Folds decoded events from any source into a ledger, keeping statistics
/// and one count per call ([`CallRegistry`]).
pub struct Ingestor<'l> {
    pub ledger: &'l mut Ledger,
    pub stats: IngestStats,
    pub window: TimeWindow,
    pub calls: CallRegistry,
    /// Where runs that ended go while the fold goes on (a report's advisor).
    pub ended: Option<EndedRuns>,
}

impl<'l> Ingestor<'l> {
    #[must_use]
    pub fn new(ledger: &'l mut Ledger, window: TimeWindow) -> Self {
        Ingestor {
            ledger,
            stats: IngestStats::default(),
            window,
            calls: CallRegistry::default(),
            ended: None,
        }
    }

    /// Hands the runs that ended since the last call to `ended`'s reader
    /// (once every decoded batch is folded).
    pub fn hand_off_ended_runs(&mut self) {
        if let Some(ended) = &mut self.ended {
            ended.take_from(self.ledger);
        }
    }

    /// Folds one event of source number `source` (an index into
    /// `stats.sources`); `locate` names its line for warnings.
    pub fn event(
        &mut self,
        source: usize,
        event: &TelemetryEvent<'_>,
        locate: impl FnOnce() -> String,
    ) {
        let in_window = self.window.contains(event.ts_ms);
        let call = event.call.filter(|_| event.kind == EventKind::Hop);
        let Some(call) = call else {
            if in_window {
                self.ledger.apply(event);
                self.stats.count_event(source);
            } else {
                self.stats.count_filtered(source);
            }
            return;
        };
        match self.calls.settle(call, event, in_window, self.ledger) {
            Settled::Counted => self.stats.count_event(source),
            Settled::Filtered => self.stats.count_filtered(source),
            Settled::Duplicate => self.stats.count_duplicate(source),
            Settled::Revised => self.stats.count_revised(source),
            Settled::Unrevisable => self.stats.count_unrevisable(source, locate()),
        }
        self.stats.forgotten_calls = self.calls.forgotten;
    }
}

/// Runs that ended ([`Ledger::take_ended_runs`]) on their way to a reader
/// on another thread, [`EndedRuns::BATCH`] at a time through an
/// [`EndedQueue`]. The fold never waits for the reader.
pub struct EndedRuns {
    queue: Arc<EndedQueue>,
    filling: Vec<Arc<RunAgg>>,
}

impl EndedRuns {
    /// Runs per batch: enough that a batch's work outweighs the hand-off,
    /// few enough that the reader's batch in hand is soon done when the
    /// queue is closed (a fraction of a millisecond).
    pub const BATCH: usize = 256;

    #[must_use]
    pub fn new(queue: Arc<EndedQueue>) -> Self {
        EndedRuns {
            queue,
            filling: Vec::with_capacity(Self::BATCH),
        }
    }

    fn take_from(&mut self, ledger: &mut Ledger) {
        ledger.take_ended_runs(&mut self.filling);
        while self.filling.len() >= Self::BATCH {
            let rest = self.filling.split_off(Self::BATCH);
            self.queue.push(std::mem::replace(&mut self.filling, rest));
        }
    }
}

/// Batches of runs that ended, from the fold to one reader. Not bounded:
/// each run is queued at most once (at its first `run_end`), so it holds
/// at most one pointer per run the ledger holds; the fold must never wait.
/// Closing it drops what the reader has not taken, and the reader's next
/// [`EndedQueue::next`] is `None`: whoever closes it reads those runs itself.
#[derive(Debug, Default)]
pub struct EndedQueue {
    state: Mutex<EndedState>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct EndedState {
    batches: VecDeque<Vec<Arc<RunAgg>>>,
    closed: bool,
}

impl EndedQueue {
    fn lock(&self) -> MutexGuard<'_, EndedState> {
        // the state is whole after any panic (a push or a pop)
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, batch: Vec<Arc<RunAgg>>) {
        let mut state = self.lock();
        if !state.closed {
            state.batches.push_back(batch);
            self.ready.notify_one();
        }
    }

    /// The next batch, waiting for one; `None` once the queue is closed.
    pub fn next(&self) -> Option<Vec<Arc<RunAgg>>> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return None;
            }
            if let Some(batch) = state.batches.pop_front() {
                return Some(batch);
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Batches not yet taken.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.lock().batches.len()
    }

    /// Closes the queue, dropping the batches not taken.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.batches.clear();
        self.ready.notify_all();
    }
}
