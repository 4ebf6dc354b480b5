//! One count per model call, across every source: the place where reports of
//! a call seen more than once are settled.
//!
//! Several formats report one call more than once: Claude Code writes a line
//! per content block and copies messages into resumed sessions and sidechain
//! replays; streams repeat cumulative usage; an OTLP span's agent may only
//! be known once its parent arrives. Their decoders give such events a
//! [`CallId`]; this registry, owned by whoever folds events into the ledger
//! (the report's folding thread, the live aggregator), decides for each one:
//!
//! - a new call is counted, and the [`Receipt`] of what it added is kept;
//! - a repeat that does not supersede the count is dropped (a duplicate);
//! - one that does (larger usage under [`Supersede::Largest`], any report
//!   under [`Supersede::Latest`], the original after a replay) replaces the
//!   earlier count exactly: the receipt is taken back, the new report added;
//! - [`Supersede::Retract`] takes the call back.
//!
//! Bounds (memory grows with distinct calls, like the ledger's hops, never
//! with lines):
//! - calls are remembered in two generations of at most [`MAX_CALLS`]` / 2`
//!   each: when the newer fills up, the older is forgotten (counted in
//!   `forgotten`), so a call repeated after more than ~2 million other
//!   calls would be counted again;
//! - receipts are kept for the last [`RECEIPTS`] counted calls: a call
//!   reported again with larger usage after that many others cannot be
//!   replaced any more, and is counted in `unrevisable` (its first count
//!   stays). Revisions come within a few lines in every known format;
//! - except a call counted with [`CallId::pin`] (an OTLP call that may be
//!   re-attributed or taken back when a span arrives, seconds later): its
//!   receipt is kept apart, for the last [`MAX_PINNED`] such calls, until
//!   it is revised without `pin` or taken back.

use std::collections::VecDeque;

use hashbrown::HashMap;

use crate::model::Ledger;
use crate::model::ledger::Receipt;
use crate::types::event::{CallId, Supersede, TelemetryEvent};

/// Calls remembered, over both generations (~45 bytes each: ~180 MB at most).
pub const MAX_CALLS: usize = 4_000_000;

/// Receipts kept for replacements (~136 bytes each: 17 MiB, reserved at
/// once, touched as used). An OTLP receiver taking 30,000 calls a second
/// must still take a call back (its `invoke_agent` span's usage) or
/// re-attribute it seconds later, when an exporter pushed back retries:
/// 8,192 receipts lasted a quarter of a second.
pub const RECEIPTS: usize = 131_072;

/// What happened to an event that carried a [`CallId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// A new call, counted.
    Counted,
    /// Outside `--since`/`--until` (decided when the call was first seen;
    /// its later reports are duplicates).
    Filtered,
    /// A repeat that does not change the count.
    Duplicate,
    /// It replaced (or took back) the earlier count of its call.
    Revised,
    /// It should have replaced the earlier count, whose receipt is gone.
    Unrevisable,
}

/// Pinned receipts kept (~150 bytes each: 10 MiB at most).
pub const MAX_PINNED: usize = 65_536;

const REPLAY: u8 = 1;
const FILTERED: u8 = 2;
const RETRACTED: u8 = 4;
/// Its receipt is in `pinned`, not the ring.
const PINNED: u8 = 8;

/// One counted call: enough to judge its next report.
#[derive(Debug, Clone, Copy)]
struct Call {
    attempt: u64,
    total: u64,
    /// Position of its receipt in the ring (valid while the ring entry
    /// still names this call).
    slot: u32,
    flags: u8,
}

/// Calls sharing a key: nearly always one; distinct attempts (retried
/// requests of one message id) are the rare rest.
#[derive(Debug, Clone)]
enum Calls {
    One(Call),
    Many(Vec<Call>),
}

impl Calls {
    fn find_mut(&mut self, id: &CallId) -> Option<&mut Call> {
        let same = |c: &Call| c.attempt == id.attempt || c.flags & REPLAY != 0 || id.replay;
        match self {
            Calls::One(call) => same(call).then_some(call),
            Calls::Many(calls) => calls.iter_mut().find(|c| same(c)),
        }
    }

    fn push(&mut self, call: Call) {
        match self {
            Calls::One(first) => *self = Calls::Many(vec![*first, call]),
            Calls::Many(calls) => calls.push(call),
        }
    }
}

/// Keys are already uniform hashes: they index the table as they are.
#[derive(Debug, Clone, Copy, Default)]
struct KeyAsHash(u64);

impl std::hash::Hasher for KeyAsHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Build = std::hash::BuildHasherDefault<KeyAsHash>;

#[derive(Debug, Clone, Copy)]
struct Stored {
    key: u64,
    attempt: u64,
    receipt: Receipt,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct CallRegistry {
    current: HashMap<u64, Calls, Build>,
    previous: HashMap<u64, Calls, Build>,
    /// Calls remembered over both generations.
    max_calls: usize,
    receipts: Vec<Stored>,
    next_slot: usize,
    /// Receipts of pinned calls by key, with the number they were pinned
    /// under (`pinned_order` may name a key pinned again since).
    pinned: HashMap<u64, (u64, Stored), Build>,
    pinned_order: VecDeque<(u64, u64)>,
    pins: u64,
    /// Calls forgotten when a generation was dropped.
    pub forgotten: u64,
}

impl Default for CallRegistry {
    fn default() -> Self {
        CallRegistry::with_capacity(MAX_CALLS)
    }
}

impl CallRegistry {
    /// A registry that remembers about `max_calls` calls.
    #[must_use]
    pub fn with_capacity(max_calls: usize) -> Self {
        CallRegistry {
            current: HashMap::default(),
            previous: HashMap::default(),
            max_calls: max_calls.max(2),
            receipts: Vec::new(),
            next_slot: 0,
            pinned: HashMap::default(),
            pinned_order: VecDeque::new(),
            pins: 0,
            forgotten: 0,
        }
    }

    /// Counts, drops, replaces or takes back `event` (which carries `id`)
    /// in `ledger`. `in_window`: the event is inside `--since`/`--until`.
    pub fn settle(
        &mut self,
        id: CallId,
        event: &TelemetryEvent<'_>,
        in_window: bool,
        ledger: &mut Ledger,
    ) -> Settled {
        let total = event.usage.total();
        if !self.current.contains_key(&id.key)
            && let Some(calls) = self.previous.remove(&id.key)
        {
            self.current.insert(id.key, calls);
        }
        let known = self.current.get_mut(&id.key);
        let Some(call) = known.and_then(|calls| calls.find_mut(&id)) else {
            if id.rule == Supersede::Retract {
                // Nothing counted to take back.
                return Settled::Duplicate;
            }
            let mut call = Call {
                attempt: id.attempt,
                total,
                slot: u32::MAX,
                flags: if id.replay { REPLAY } else { 0 },
            };
            let settled = if in_window {
                if let Some(receipt) = ledger.apply_call(event).filter(Receipt::is_exact) {
                    self.keep(&mut call, &id, receipt);
                }
                Settled::Counted
            } else {
                call.flags |= FILTERED;
                Settled::Filtered
            };
            self.insert(id.key, call);
            return settled;
        };
        if call.flags & FILTERED != 0 {
            // Counted once as filtered: its repeats change nothing.
            return Settled::Duplicate;
        }
        if call.flags & RETRACTED != 0 {
            return Settled::Duplicate;
        }
        let supersedes = match id.rule {
            Supersede::Latest | Supersede::Retract => true,
            Supersede::Largest if (call.flags & REPLAY != 0) != id.replay => {
                call.flags & REPLAY != 0
            }
            Supersede::Largest => total > call.total,
        };
        if !supersedes {
            return Settled::Duplicate;
        }
        let stored = if call.flags & PINNED != 0 {
            self.pinned.remove(&id.key).map(|(_, s)| s)
        } else {
            self.receipts.get(call.slot as usize).copied()
        };
        let Some(old) = stored
            .filter(|s| s.key == id.key && s.attempt == call.attempt)
            .map(|s| s.receipt)
        else {
            call.flags &= !PINNED;
            return Settled::Unrevisable;
        };
        if id.rule == Supersede::Retract {
            ledger.retract(&old);
            call.flags = (call.flags | RETRACTED) & !PINNED;
            call.slot = u32::MAX;
            return Settled::Revised;
        }
        let new = ledger.replace(&old, event);
        call.attempt = id.attempt;
        call.total = total;
        call.flags = if id.replay { REPLAY } else { 0 };
        call.slot = u32::MAX;
        if new.is_exact() {
            // (the borrow of `call` ends before `keep` needs `self`)
            let mut kept = *call;
            self.keep(&mut kept, &id, new);
            if let Some(call) = self
                .current
                .get_mut(&id.key)
                .and_then(|calls| calls.find_mut(&id))
            {
                *call = kept;
            }
        }
        Settled::Revised
    }

    /// Keeps `receipt` for `call`: pinned when `id` asks, else in the ring.
    fn keep(&mut self, call: &mut Call, id: &CallId, receipt: Receipt) {
        let stored = Stored {
            key: id.key,
            attempt: id.attempt,
            receipt,
        };
        if id.pin {
            self.pins += 1;
            self.pinned.insert(id.key, (self.pins, stored));
            self.pinned_order.push_back((id.key, self.pins));
            while self.pinned_order.len() > MAX_PINNED {
                if let Some((key, pin)) = self.pinned_order.pop_front()
                    && self.pinned.get(&key).is_some_and(|(p, _)| *p == pin)
                {
                    self.pinned.remove(&key);
                }
            }
            call.flags |= PINNED;
        } else {
            call.slot = store(&mut self.receipts, &mut self.next_slot, id, receipt);
        }
    }

    fn insert(&mut self, key: u64, call: Call) {
        if let Some(calls) = self.current.get_mut(&key) {
            calls.push(call);
            return;
        }
        if self.current.len() >= self.max_calls / 2 {
            self.forgotten += self.previous.len() as u64;
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, Calls::One(call));
    }

    /// Whether a call with this key was seen.
    #[must_use]
    pub fn knows(&self, key: u64) -> bool {
        self.current.contains_key(&key) || self.previous.contains_key(&key)
    }

    /// Calls remembered now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps a receipt in the ring and returns its slot.
fn store(ring: &mut Vec<Stored>, next: &mut usize, id: &CallId, receipt: Receipt) -> u32 {
    let entry = Stored {
        key: id.key,
        attempt: id.attempt,
        receipt,
    };
    let slot = *next;
    if slot < ring.len() {
        ring[slot] = entry;
    } else {
        if ring.capacity() == 0 {
            // All at once: growing by doubling would hold up to twice as much.
            ring.reserve_exact(RECEIPTS);
        }
        ring.push(entry);
    }
    *next = (slot + 1) % RECEIPTS;
    u32::try_from(slot).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
