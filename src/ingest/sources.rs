//! Input sources: where lines come from (files read once, followed files,
//! sockets, standard input, OTLP receivers), apart from what their lines
//! mean (`formats`).

pub mod files;
pub mod otlp;
pub mod socket;
pub mod stdin;
pub mod tail;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The sources still reading what was there when live mode started (the
/// follower, each pipe, standard input): the last of them to be caught up
/// sends [`crate::ingest::channel::IngestMsg::CaughtUp`], after its own
/// lines, so every backlog line comes before it on the channel.
#[derive(Debug, Clone)]
pub struct CatchUp {
    left: Arc<AtomicUsize>,
}

impl CatchUp {
    /// For `readers` sources, each of which gets a clone.
    #[must_use]
    pub fn new(readers: usize) -> Self {
        CatchUp {
            left: Arc::new(AtomicUsize::new(readers)),
        }
    }

    /// This source is caught up (call once per clone): true when it was
    /// the last one, and `CaughtUp` is to be sent.
    #[must_use]
    pub fn done(self) -> bool {
        self.left.fetch_sub(1, Ordering::AcqRel) == 1
    }
}
