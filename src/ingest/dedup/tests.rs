//! Settling repeated reports of a call against a real ledger.

use std::borrow::Cow;

use super::*;
use crate::model::{LedgerConfig, Snapshot};
use crate::pricing::PriceBook;
use crate::types::event::{EventKind, Format};
use crate::types::usage::Usage;

fn call(message: &str, request: Option<&str>, replay: bool, rule: Supersede) -> CallId {
    CallId {
        key: crate::ingest::formats::json::call_key(Format::ClaudeCode, &[message]),
        attempt: crate::ingest::formats::json::attempt_key(request),
        replay,
        rule,
        pin: false,
    }
}

fn hop(run: &str, agent: &str, output: u64, id: CallId) -> TelemetryEvent<'static> {
    TelemetryEvent {
        kind: EventKind::Hop,
        ts_ms: Some(1_772_445_600_000),
        run_id: Cow::Owned(run.into()),
        hop: None,
        agent: Cow::Owned(agent.into()),
        parent_agent: None,
        user: None,
        segment: Some(Cow::Borrowed("proj")),
        task: None,
        tool: None,
        provider: None,
        model: Cow::Borrowed("claude-sonnet-4-5"),
        usage: Usage {
            input_uncached: 10,
            cache_read: 21_339,
            cache_write_1h: 38_477,
            output,
            ..Usage::default()
        },
        reported_cost: None,
        latency_ms: None,
        status: None,
        estimated: false,
        format: Format::ClaudeCode,
        call: Some(id),
        prompt: None,
    }
}

struct World {
    ledger: Ledger,
    calls: CallRegistry,
}

impl World {
    fn new() -> Self {
        World {
            ledger: Ledger::new(PriceBook::embedded(), LedgerConfig::default()),
            calls: CallRegistry::default(),
        }
    }

    fn feed(&mut self, event: &TelemetryEvent<'_>) -> Settled {
        let id = event.call.unwrap();
        self.calls.settle(id, event, true, &mut self.ledger)
    }

    fn snapshot(&self) -> Snapshot {
        self.ledger.snapshot()
    }
}

/// The same totals as one event applied alone.
fn alone(event: &TelemetryEvent<'_>) -> Snapshot {
    let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
    ledger.apply(event);
    ledger.snapshot()
}

#[test]
fn streamed_blocks_of_one_message_count_once_with_the_largest_usage() {
    // formats.md Oracle G: output 4, 131, 254 is one hop with output 254.
    let mut world = World::new();
    let id = call("msg_1", Some("req_1"), false, Supersede::Largest);
    assert_eq!(world.feed(&hop("s", "main", 4, id)), Settled::Counted);
    assert_eq!(world.feed(&hop("s", "main", 131, id)), Settled::Revised);
    assert_eq!(world.feed(&hop("s", "main", 254, id)), Settled::Revised);
    assert_eq!(world.feed(&hop("s", "main", 254, id)), Settled::Duplicate);
    assert_eq!(world.feed(&hop("s", "main", 131, id)), Settled::Duplicate);
    let snap = world.snapshot();
    let expected = alone(&hop("s", "main", 254, id));
    assert_eq!(snap.totals, expected.totals);
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.totals.output_tokens, 254);
    assert_eq!(snap.runs.len(), 1);
    assert_eq!(snap.runs[0].hops.len(), 1);
    assert_eq!(snap.runs[0].hops[0].hop, 1);
    assert_eq!(snap.runs[0].hops[0].calls, 1);
    assert_eq!(snap.by_agent[0].counters, expected.by_agent[0].counters);
    assert_eq!(snap.by_segment[0].counters, expected.by_segment[0].counters);
    assert_eq!(snap.per_minute, expected.per_minute);
    assert_eq!(snap.by_format, expected.by_format);
}

#[test]
fn a_revised_call_keeps_its_position_among_later_hops() {
    let mut world = World::new();
    let first = call("msg_1", Some("req_1"), false, Supersede::Largest);
    let second = call("msg_2", Some("req_2"), false, Supersede::Largest);
    world.feed(&hop("s", "main", 4, first));
    world.feed(&hop("s", "main", 7, second));
    world.feed(&hop("s", "main", 254, first));
    let snap = world.snapshot();
    let hops: Vec<(u32, u64)> = snap.runs[0]
        .hops
        .iter()
        .map(|h| (h.hop, h.usage.output))
        .collect();
    assert_eq!(hops, vec![(1, 254), (2, 7)]);
}

#[test]
fn a_sidechain_replay_never_displaces_the_original() {
    // Parent first: the replay (same message id, new request id) is dropped.
    let mut world = World::new();
    let parent = call("msg_p", Some("req_a"), false, Supersede::Largest);
    let replay = call("msg_p", Some("req_b"), true, Supersede::Largest);
    world.feed(&hop("s", "main", 100, parent));
    assert_eq!(
        world.feed(&hop("s", "subagent", 300, replay)),
        Settled::Duplicate
    );
    let snap = world.snapshot();
    assert_eq!(snap.totals.events, 1);
    assert_eq!(snap.by_agent.len(), 1);
    assert_eq!(&*snap.by_agent[0].name, "main");

    // Replay first (sub-agent files are read before their session's file):
    // the original replaces it, and the sub-agent row is gone.
    let mut world = World::new();
    world.feed(&hop("s", "subagent", 300, replay));
    assert_eq!(world.feed(&hop("s", "main", 100, parent)), Settled::Revised);
    // Later blocks of the parent still revise it, replays are still dropped.
    assert_eq!(world.feed(&hop("s", "main", 120, parent)), Settled::Revised);
    assert_eq!(
        world.feed(&hop("s", "subagent", 900, replay)),
        Settled::Duplicate
    );
    let snap = world.snapshot();
    assert_eq!(snap.totals, alone(&hop("s", "main", 120, parent)).totals);
    assert_eq!(snap.by_agent.len(), 1, "{:?}", snap.by_agent);
    assert_eq!(&*snap.by_agent[0].name, "main");
}

#[test]
fn distinct_request_ids_without_a_replay_are_distinct_calls() {
    let mut world = World::new();
    let a = call("msg_1", Some("req_a"), false, Supersede::Largest);
    let b = call("msg_1", Some("req_b"), false, Supersede::Largest);
    assert_eq!(world.feed(&hop("s", "main", 5, a)), Settled::Counted);
    assert_eq!(world.feed(&hop("s", "main", 5, b)), Settled::Counted);
    assert_eq!(world.feed(&hop("s", "main", 9, b)), Settled::Revised);
    assert_eq!(world.snapshot().totals.events, 2);
    assert_eq!(world.snapshot().totals.output_tokens, 14);
}

#[test]
fn latest_moves_a_call_to_its_real_run_and_agent() {
    let mut world = World::new();
    let id = call("span_1", None, false, Supersede::Largest);
    world.feed(&hop("trace-1", "unknown", 50, id));
    let moved = call("span_1", None, false, Supersede::Latest);
    assert_eq!(
        world.feed(&hop("conv-1", "Triage", 50, moved)),
        Settled::Revised
    );
    let snap = world.snapshot();
    assert_eq!(snap.runs_total, 1);
    assert_eq!(snap.runs.len(), 1);
    assert_eq!(&*snap.runs[0].run_id, "conv-1");
    assert_eq!(snap.by_agent.len(), 1);
    assert_eq!(&*snap.by_agent[0].name, "Triage");
    assert_eq!(
        snap.totals,
        alone(&hop("conv-1", "Triage", 50, moved)).totals
    );
}

#[test]
fn retract_takes_a_call_back_for_good() {
    let mut world = World::new();
    let id = call("agent_span", None, false, Supersede::Largest);
    let other = call("chat_span", None, false, Supersede::Largest);
    world.feed(&hop("t", "Triage", 50, id));
    world.feed(&hop("u", "Writer", 7, other));
    let gone = call("agent_span", None, false, Supersede::Retract);
    assert_eq!(world.feed(&hop("t", "Triage", 0, gone)), Settled::Revised);
    // Exported again: still taken back.
    assert_eq!(world.feed(&hop("t", "Triage", 50, id)), Settled::Duplicate);
    let snap = world.snapshot();
    assert_eq!(snap.totals, alone(&hop("u", "Writer", 7, other)).totals);
    assert_eq!(snap.runs_total, 1);
    assert_eq!(snap.runs.len(), 1);
    assert_eq!(
        world.ledger.runs.rows.len(),
        2,
        "the run stays in the table"
    );
    assert_eq!(snap.by_agent.len(), 1);
    // A retraction of a call never seen changes nothing.
    let unknown = call("never", None, false, Supersede::Retract);
    assert_eq!(world.feed(&hop("t", "x", 0, unknown)), Settled::Duplicate);
    // A vacant run comes back when a call lands in it again.
    let back = call("again", None, false, Supersede::Largest);
    world.feed(&hop("t", "Triage", 3, back));
    assert_eq!(world.snapshot().runs_total, 2);
}

#[test]
fn the_time_window_is_decided_when_a_call_is_first_seen() {
    let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
    let mut calls = CallRegistry::default();
    let id = call("msg_1", Some("r"), false, Supersede::Largest);
    let event = hop("s", "main", 4, id);
    assert_eq!(
        calls.settle(id, &event, false, &mut ledger),
        Settled::Filtered
    );
    let bigger = hop("s", "main", 400, id);
    assert_eq!(
        calls.settle(id, &bigger, true, &mut ledger),
        Settled::Duplicate
    );
    assert_eq!(ledger.snapshot().totals.events, 0);
}

#[test]
fn a_revision_after_too_many_calls_is_reported_not_applied() {
    let mut world = World::new();
    let first = call("msg_first", Some("r"), false, Supersede::Largest);
    world.feed(&hop("s", "main", 4, first));
    for n in 0..RECEIPTS {
        let id = call(&format!("msg_{n}"), Some("r"), false, Supersede::Largest);
        world.feed(&hop("s", "main", 1, id));
    }
    let before = world.snapshot().totals;
    assert_eq!(
        world.feed(&hop("s", "main", 9, first)),
        Settled::Unrevisable
    );
    assert_eq!(world.snapshot().totals, before);
}

#[test]
fn a_pinned_call_is_revised_and_taken_back_after_many_calls() {
    // An OTLP call waiting for its parent span, and an invoke_agent span's
    // usage waiting for its model calls: seconds and many calls later.
    let mut world = World::new();
    let pinned = |rule| CallId {
        pin: true,
        ..call("msg_pinned", None, false, rule)
    };
    let agent = CallId {
        pin: true,
        ..call("msg_agent", None, false, Supersede::Largest)
    };
    world.feed(&hop("s", "main", 4, pinned(Supersede::Largest)));
    world.feed(&hop("s", "planner", 7, agent));
    for n in 0..RECEIPTS + 1 {
        let id = call(&format!("msg_{n}"), Some("r"), false, Supersede::Largest);
        world.feed(&hop("s", "main", 1, id));
    }
    let before = world.snapshot().totals;
    // re-attributed, still pinned (its parent's parent is missing)
    assert_eq!(
        world.feed(&hop("s", "researcher", 4, pinned(Supersede::Latest))),
        Settled::Revised
    );
    assert_eq!(world.snapshot().totals, before);
    // taken back
    let retract = CallId {
        rule: Supersede::Retract,
        ..agent
    };
    assert_eq!(
        world.feed(&hop("s", "planner", 7, retract)),
        Settled::Revised
    );
    assert_eq!(world.snapshot().totals.events, before.events - 1);
    // re-attributed again, unpinned now: into the ring
    let unpinned = CallId {
        pin: false,
        ..pinned(Supersede::Latest)
    };
    assert_eq!(
        world.feed(&hop("s", "writer", 4, unpinned)),
        Settled::Revised
    );
    assert!(world.calls.pinned.is_empty());
}

#[test]
fn pinned_receipts_are_bounded() {
    let mut world = World::new();
    for n in 0..MAX_PINNED + 10 {
        let id = CallId {
            pin: true,
            ..call(&format!("msg_{n}"), None, false, Supersede::Largest)
        };
        world.feed(&hop("s", "main", 1, id));
    }
    assert_eq!(world.calls.pinned.len(), MAX_PINNED);
    // the oldest are revised no more
    let first = CallId {
        pin: true,
        ..call("msg_0", None, false, Supersede::Latest)
    };
    assert_eq!(
        world.feed(&hop("s", "other", 1, first)),
        Settled::Unrevisable
    );
}

#[test]
fn memory_is_bounded_by_two_generations() {
    let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
    let mut calls = CallRegistry::with_capacity(10);
    for n in 0..23 {
        let id = call(&format!("m{n}"), None, false, Supersede::Largest);
        calls.settle(id, &hop("s", "main", 1, id), true, &mut ledger);
        assert!(calls.len() <= 10, "{n}: {}", calls.len());
    }
    assert!(calls.forgotten > 0);
    // A recent call is still known; a forgotten one counts again.
    let recent = call("m22", None, false, Supersede::Largest);
    assert_eq!(
        calls.settle(recent, &hop("s", "main", 1, recent), true, &mut ledger),
        Settled::Duplicate
    );
    let old = call("m0", None, false, Supersede::Largest);
    assert_eq!(
        calls.settle(old, &hop("s", "main", 1, old), true, &mut ledger),
        Settled::Counted
    );
}

#[test]
fn receipts_stay_small() {
    assert!(
        std::mem::size_of::<Stored>() <= 128,
        "{}",
        std::mem::size_of::<Stored>()
    );
}

#[test]
fn a_replaced_call_takes_its_new_agent_and_labels_at_its_position() {
    let mut world = World::new();
    let replay = call("msg_p", Some("req_b"), true, Supersede::Largest);
    let parent = call("msg_p", Some("req_a"), false, Supersede::Largest);
    let mut sub = hop("s", "subagent", 300, replay);
    sub.parent_agent = Some(Cow::Borrowed("main"));
    world.feed(&sub);
    world.feed(&hop(
        "s",
        "subagent",
        5,
        call("msg_s", Some("r"), true, Supersede::Largest),
    ));
    world.feed(&hop("s", "main", 100, parent));
    let snap = world.snapshot();
    let hops: Vec<(u32, &str, Option<&str>)> = snap.runs[0]
        .hops
        .iter()
        .map(|h| (h.hop, &*h.agent, h.labels.parent_agent.as_deref()))
        .collect();
    assert_eq!(
        hops,
        vec![(1, "main", None), (2, "subagent", None)],
        "the second sub-agent call carries no parent label in this test"
    );
}
