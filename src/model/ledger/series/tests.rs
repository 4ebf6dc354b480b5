//! Per-series sums: exact under corrections, bounded, stable.

use std::borrow::Cow;

use proptest::prelude::*;

use super::*;
use crate::model::ledger::{Ledger, LedgerConfig, Receipt};
use crate::model::{Counters, EventKind, TelemetryEvent};
use crate::pricing::PriceBook;
use crate::types::Format;

/// 2026-03-02T10:00:00Z.
const T0: i64 = 1_772_445_600_000;

fn call(
    run: &'static str,
    agent: &str,
    segment: Option<&str>,
    model: &'static str,
    input: u64,
    output: u64,
) -> TelemetryEvent<'static> {
    TelemetryEvent {
        kind: EventKind::Hop,
        ts_ms: Some(T0),
        run_id: Cow::Borrowed(run),
        hop: None,
        agent: Cow::Owned(agent.to_owned()),
        parent_agent: None,
        user: None,
        segment: segment.map(|s| Cow::Owned(s.to_owned())),
        task: None,
        tool: None,
        provider: None,
        model: Cow::Borrowed(model),
        usage: Usage {
            input_uncached: input,
            cache_read: input / 3,
            output,
            reasoning: output / 2,
            ..Usage::default()
        },
        reported_cost: None,
        latency_ms: None,
        status: None,
        estimated: false,
        format: Format::Native,
        call: None,
        prompt: None,
    }
}

fn ledger(caps: SeriesCaps) -> Ledger {
    Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            series: Some(caps),
            ..LedgerConfig::default()
        },
    )
}

/// The series of `view` summed, as the ledger's totals would say them.
fn summed(view: &SeriesView) -> (Usage, Usd, u64, u64) {
    view.rows.iter().fold(
        (Usage::default(), Usd::ZERO, 0, 0),
        |(usage, cost, calls, unpriced), r| {
            (
                usage.saturating_add(&r.sums.usage),
                cost + r.sums.cost,
                calls + r.sums.calls,
                unpriced + r.sums.unpriced_calls,
            )
        },
    )
}

fn assert_exact(ledger: &Ledger) {
    let view = ledger.series_view().expect("series kept");
    let (usage, cost, calls, unpriced) = summed(&view);
    let totals: &Counters = ledger.totals();
    assert_eq!(usage.total(), totals.total_tokens);
    assert_eq!(usage.output, totals.output_tokens);
    assert_eq!(usage.reasoning, totals.reasoning_tokens);
    assert_eq!(usage.cache_read, totals.cache_read_tokens);
    assert_eq!(cost, totals.cost);
    assert_eq!(calls, totals.events);
    assert_eq!(unpriced, totals.unpriced_events);
    let by_model: u64 = view.unpriced_calls.iter().map(|(_, n)| n).sum();
    assert_eq!(by_model, totals.unpriced_events);
}

fn row<'v>(view: &'v SeriesView, agent: &str, model: &str) -> &'v SeriesRow {
    view.rows
        .iter()
        .find(|r| &*r.agent == agent && &*r.model == model)
        .unwrap_or_else(|| panic!("no series for {agent}/{model}: {:?}", view.rows))
}

#[test]
fn no_series_unless_asked() {
    let mut plain = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
    plain.apply(&call("r", "a", None, "gpt-4.1", 10, 5));
    assert!(plain.series_view().is_none());
}

#[test]
fn a_call_moved_to_another_agent_leaves_its_first_series_and_sums_stay_exact() {
    let mut ledger = ledger(SeriesCaps::default());
    let first = ledger
        .apply_call(&call("r", "unknown", None, "gpt-4.1", 1_000, 200))
        .expect("a call");
    ledger.apply(&call("r", "planner", Some("s"), "gpt-4.1", 500, 100));
    assert_exact(&ledger);
    // The enclosing agent span arrived: the call was the planner's.
    ledger.replace(&first, &call("r", "planner", None, "gpt-4.1", 1_000, 200));
    assert_exact(&ledger);
    let view = ledger.series_view().expect("series");
    let moved_from = row(&view, "unknown", "gpt-4.1");
    assert_eq!(moved_from.sums.calls, 0);
    assert_eq!(moved_from.sums.usage, Usage::default());
    assert_eq!(moved_from.sums.cost, Usd::ZERO);
    // Once priced, its cost series stays exported (at 0 now).
    assert!(moved_from.priced);
    let planner: Vec<_> = view
        .rows
        .iter()
        .filter(|r| &*r.agent == "planner")
        .collect();
    assert_eq!(planner.len(), 2, "segment s and no segment: {planner:?}");
    assert_eq!(view.corrections, 1);
    assert_eq!(view.decreases, 1, "the first series went down");
}

#[test]
fn a_retry_replaced_in_place_with_more_tokens_decreases_nothing() {
    let mut ledger = ledger(SeriesCaps::default());
    let first = ledger
        .apply_call(&call("r", "a", None, "gpt-4.1", 100, 10))
        .expect("a call");
    ledger.replace(&first, &call("r", "a", None, "gpt-4.1", 150, 10));
    assert_exact(&ledger);
    let view = ledger.series_view().expect("series");
    assert_eq!((view.corrections, view.decreases), (1, 0));
    assert_eq!(row(&view, "a", "gpt-4.1").sums.usage.input_uncached, 150);
}

#[test]
fn a_retracted_call_lowers_its_series_exactly() {
    let mut ledger = ledger(SeriesCaps::default());
    let parent = ledger
        .apply_call(&call("r", "a", None, "gpt-4.1", 100, 10))
        .expect("a call");
    ledger.apply(&call("r", "a", None, "gpt-4.1", 40, 4));
    ledger.retract(&parent);
    assert_exact(&ledger);
    let view = ledger.series_view().expect("series");
    assert_eq!(row(&view, "a", "gpt-4.1").sums.calls, 1);
    assert_eq!((view.corrections, view.decreases), (1, 1));
}

#[test]
fn unpriced_calls_add_no_cost_and_have_no_cost_series() {
    let mut ledger = ledger(SeriesCaps::default());
    ledger.apply(&call("r", "a", None, "house-model-x", 100, 10));
    ledger.apply(&call("r", "a", None, "gpt-4.1", 100, 10));
    assert_exact(&ledger);
    let view = ledger.series_view().expect("series");
    let unpriced = row(&view, "a", "house-model-x");
    assert!(!unpriced.priced);
    assert_eq!((unpriced.sums.calls, unpriced.sums.unpriced_calls), (1, 1));
    assert!(row(&view, "a", "gpt-4.1").priced);
    assert_eq!(
        view.unpriced_calls,
        vec![(Arc::from("gpt-4.1"), 0), (Arc::from("house-model-x"), 1)]
    );
}

#[test]
fn past_a_cap_newcomers_go_to_other_and_earlier_values_keep_their_series() {
    let caps = SeriesCaps {
        agents: 2,
        ..SeriesCaps::default()
    };
    let mut ledger = ledger(caps);
    for agent in ["a", "b", "c", "d"] {
        ledger.apply(&call("r", agent, None, "gpt-4.1", 10, 1));
    }
    // "a" again: still its own series, not moved to (other).
    ledger.apply(&call("r", "a", None, "gpt-4.1", 10, 1));
    assert_exact(&ledger);
    let view = ledger.series_view().expect("series");
    let agents: Vec<&str> = view.rows.iter().map(|r| &*r.agent).collect();
    assert_eq!(agents, ["a", "b", "(other)"]);
    assert_eq!(row(&view, "a", "gpt-4.1").sums.calls, 2);
    assert_eq!(row(&view, "(other)", "gpt-4.1").sums.calls, 2);
}

/// An agent, segment or model literally named `(other)` has a series of
/// its own, `"(other)"`: `(other)` is only ever the overflow.
#[test]
fn a_name_that_reads_other_is_not_the_overflow() {
    let caps = SeriesCaps {
        agents: 1,
        ..SeriesCaps::default()
    };
    let mut ledger = ledger(caps);
    ledger.apply(&call("r", "(other)", Some("(other)"), "(other)", 10, 1));
    ledger.apply(&call("r", "b", None, "gpt-4.1", 10, 1));
    assert_exact(&ledger);
    let view = ledger.series_view().expect("series");
    let rows: Vec<(&str, &str, &str)> = view
        .rows
        .iter()
        .map(|r| (&*r.agent, &*r.segment, &*r.model))
        .collect();
    assert_eq!(
        rows,
        [
            ("\"(other)\"", "\"(other)\"", "\"(other)\""),
            ("(other)", "", "gpt-4.1"),
        ]
    );
}

#[test]
fn past_the_series_cap_new_combinations_go_to_all_other() {
    let caps = SeriesCaps {
        series: 2,
        ..SeriesCaps::default()
    };
    let mut ledger = ledger(caps);
    ledger.apply(&call("r", "a", None, "gpt-4.1", 10, 1));
    ledger.apply(&call("r", "b", None, "gpt-4.1", 10, 1));
    let third = ledger
        .apply_call(&call("r", "c", Some("s"), "gpt-4.1-mini", 10, 1))
        .expect("a call");
    assert_exact(&ledger);
    let view = ledger.series_view().expect("series");
    let last = view.rows.last().expect("rows");
    assert_eq!(
        (&*last.agent, &*last.segment, &*last.model),
        ("(other)", "(other)", "(other)")
    );
    assert_eq!(view.rows.len(), 3);
    // Taken back from where it was counted.
    ledger.retract(&third);
    assert_exact(&ledger);
    let view = ledger.series_view().expect("series");
    assert_eq!(view.rows.last().expect("rows").sums.calls, 0);
}

#[test]
fn hostile_label_values_are_sanitized_and_cut() {
    let caps = SeriesCaps {
        label_bytes: 16,
        ..SeriesCaps::default()
    };
    let mut ledger = ledger(caps);
    ledger.apply(&call("r", "evil\x1b[2J\u{202E}x", None, "gpt-4.1", 10, 1));
    ledger.apply(&call("r", &"é".repeat(40), None, "gpt-4.1", 10, 1));
    let view = ledger.series_view().expect("series");
    assert_eq!(&*view.rows[0].agent, "evil\u{FFFD}[2J\u{FFFD}x");
    let cut = &*view.rows[1].agent;
    assert!(cut.len() <= 16, "{cut}");
    assert!(cut.ends_with('…') && cut.starts_with("ééé"), "{cut}");
}

#[test]
fn label_value_keeps_short_text_and_cuts_on_a_character_boundary() {
    assert_eq!(&*label_value("planner", 128), "planner");
    assert_eq!(&*label_value("abcdefgh", 8), "abcdefgh");
    assert_eq!(&*label_value("abcdefghi", 8), "abcde…");
    assert_eq!(&*label_value("ab€€", 8), "ab€€");
    assert_eq!(&*label_value("ab€€x", 8), "ab€…");
    assert_eq!(&*label_value("a€€xy", 8), "a€…");
}

#[test]
fn burn_rate_minutes_read_the_per_minute_series() {
    let mut ledger = ledger(SeriesCaps::default());
    let minute = T0 / 60_000;
    let mut e = call("r", "a", None, "gpt-4.1", 1_000, 0);
    ledger.apply(&e);
    let one = ledger.totals().cost;
    assert!(one > Usd::ZERO);
    e.ts_ms = Some(T0 + 60_000);
    ledger.apply(&e);
    e.ts_ms = Some(T0 + 5 * 60_000);
    ledger.apply(&e);
    assert_eq!(ledger.cost_in_minutes(minute, minute + 1), one);
    assert_eq!(ledger.cost_in_minutes(minute, minute + 5), one + one);
    assert_eq!(ledger.cost_in_minutes(minute, minute + 6), one + one + one);
    assert_eq!(ledger.cost_in_minutes(minute + 2, minute + 5), Usd::ZERO);
}

#[derive(Debug, Clone)]
enum Step {
    Apply(usize, usize, usize, u64),
    Retract(usize),
    Replace(usize, usize, usize, u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..6_usize, 0..3_usize, 0..3_usize, 0..5_000_u64)
            .prop_map(|(a, s, m, n)| Step::Apply(a, s, m, n)),
        1 => (0..64_usize).prop_map(Step::Retract),
        2 => (0..64_usize, 0..6_usize, 0..3_usize, 0..5_000_u64)
            .prop_map(|(i, a, m, n)| Step::Replace(i, a, m, n)),
    ]
}

proptest! {
    /// Whatever is counted, taken back or moved, under whatever caps: the
    /// series add up to the ledger's totals.
    #[test]
    fn series_add_up_to_the_totals(steps in proptest::collection::vec(step(), 1..60), cap in 1..4_usize) {
        const AGENTS: [&str; 6] = ["a", "b", "c", "\u{1b}[31mred", "d", "e"];
        const SEGMENTS: [Option<&str>; 3] = [None, Some("x"), Some("y")];
        const MODELS: [&str; 3] = ["gpt-4.1", "gpt-4.1-mini", "unpriced-x"];
        let caps = SeriesCaps { agents: cap, segments: cap, models: cap, series: cap * 3, label_bytes: 16 };
        let mut ledger = ledger(caps);
        let mut receipts: Vec<Receipt> = Vec::new();
        for step in steps {
            match step {
                Step::Apply(a, s, m, n) => {
                    let e = call("r", AGENTS[a], SEGMENTS[s], MODELS[m], n, n / 7);
                    receipts.extend(ledger.apply_call(&e));
                }
                Step::Retract(i) if !receipts.is_empty() => {
                    let r = receipts.swap_remove(i % receipts.len());
                    ledger.retract(&r);
                }
                Step::Replace(i, a, m, n) if !receipts.is_empty() => {
                    let at = i % receipts.len();
                    let e = call("r", AGENTS[a], SEGMENTS[i % 3], MODELS[m], n, n / 3);
                    receipts[at] = ledger.replace(&receipts[at], &e);
                }
                _ => {}
            }
            assert_exact(&ledger);
            let view = ledger.series_view().expect("series");
            prop_assert!(view.rows.len() <= caps.series + 1);
            for r in &view.rows {
                prop_assert!(r.agent.len() <= 16 && !r.agent.contains(char::from(0x1b)), "{}", r.agent);
            }
        }
    }
}
