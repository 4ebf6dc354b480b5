//! Which runs of the ledger changed since the last look: the seam of the
//! incremental analyses (the advisor, the insights index).

use std::sync::Arc;

use super::{Ledger, RunAgg};

/// The ledger's runs as last seen, by slot. Holding them makes the ledger
/// copy a run it changes (`Arc::make_mut`), so a changed run is a new
/// pointer and one pointer comparison per slot finds every change.
#[derive(Debug, Clone, Default)]
pub struct RunWatch {
    held: Vec<Option<Arc<RunAgg>>>,
}

impl RunWatch {
    /// Calls `changed(slot, before, now)` for every slot whose run is not
    /// the one seen last time: `before` is the run seen then (`None`: the
    /// slot was free), `now` the ledger's (`None`: the run was evicted and
    /// the slot is free). A slot may hold another run than before (its run
    /// evicted and the slot reused): compare the run ids.
    pub fn sync(
        &mut self,
        ledger: &Ledger,
        mut changed: impl FnMut(usize, Option<&Arc<RunAgg>>, Option<&Arc<RunAgg>>),
    ) {
        let slots = ledger.run_slots();
        if self.held.len() < slots {
            self.held.resize(slots, None);
        }
        for (i, held) in self.held.iter_mut().enumerate().take(slots) {
            let now = ledger.run_slot(i);
            let same = match (&*held, now) {
                (Some(old), Some(new)) => Arc::ptr_eq(old, new),
                (None, None) => true,
                _ => false,
            };
            if !same {
                changed(i, held.as_ref(), now);
                *held = now.cloned();
            }
        }
    }
}
