//! Ledger folding rules.

use std::borrow::Cow;

use super::*;
use crate::pricing::PriceBook;

/// 2026-03-02T10:00:00Z, a Monday.
const T0: i64 = 1_772_445_600_000;
const MINUTE: i64 = 60_000;
/// gpt-4.1 list prices in picodollars per token.
const GPT41_IN: i128 = 2_000_000;
const GPT41_OUT: i128 = 8_000_000;

fn hop(
    run: &'static str,
    hop: Option<u32>,
    agent: &'static str,
    model: &'static str,
    input: u64,
    output: u64,
) -> TelemetryEvent<'static> {
    let usage = Usage {
        input_uncached: input,
        output,
        ..Usage::default()
    };
    TelemetryEvent {
        ts_ms: Some(T0),
        hop,
        ..TelemetryEvent::hop_for_test(run, 0, agent, model, usage)
    }
}

fn at(mut event: TelemetryEvent<'static>, ts_ms: i64) -> TelemetryEvent<'static> {
    event.ts_ms = Some(ts_ms);
    event
}

fn ledger() -> Ledger {
    Ledger::new(PriceBook::embedded(), LedgerConfig::default())
}

fn fold(ledger: &mut Ledger, events: &[TelemetryEvent<'_>]) -> Snapshot {
    for event in events {
        ledger.apply(event);
    }
    ledger.snapshot()
}

fn run<'s>(snapshot: &'s Snapshot, id: &str) -> &'s RunAgg {
    snapshot
        .runs
        .iter()
        .find(|r| &*r.run_id == id)
        .expect("run exists")
}

fn gpt41(input: u64, output: u64) -> Usd {
    Usd::from_picos(i128::from(input) * GPT41_IN + i128::from(output) * GPT41_OUT)
}

fn sum<'a>(rows: impl Iterator<Item = &'a Counters>) -> Counters {
    rows.fold(Counters::default(), |mut acc, c| {
        acc.merge(c);
        acc
    })
}

#[test]
fn totals_equal_the_sum_over_agents_segments_users_models_runs_and_minutes() {
    let mut events = Vec::new();
    for (i, (agent, model, segment)) in [
        ("planner", "gpt-4.1", "a"),
        ("writer", "gpt-4.1-mini", "b"),
        ("critic", "mystery-9", "a"),
    ]
    .into_iter()
    .cycle()
    .take(30)
    .enumerate()
    {
        let runs = ["r1", "r2", "r3", "r4"];
        let mut event = at(
            hop(
                runs[i % 4],
                None,
                agent,
                model,
                100 + i as u64,
                10 + i as u64,
            ),
            T0 + i as i64 * 20_000,
        );
        event.segment = Some(Cow::Borrowed(segment));
        event.user = Some(Cow::Borrowed(if i % 2 == 0 { "u1" } else { "u2" }));
        event.usage.cache_read = 7;
        events.push(event);
    }
    let s = fold(&mut ledger(), &events);
    assert_eq!(s.totals.events, 30);
    assert_eq!(sum(s.by_agent.iter().map(|r| &r.counters)), s.totals);
    assert_eq!(sum(s.by_segment.iter().map(|r| &r.counters)), s.totals);
    assert_eq!(sum(s.by_user.iter().map(|r| &r.counters)), s.totals);
    assert_eq!(sum(s.by_model.iter().map(|r| &r.counters)), s.totals);
    let runs: Vec<Counters> = s.runs.iter().map(|r| r.counters()).collect();
    assert_eq!(sum(runs.iter()), s.totals);
    assert_eq!(sum(s.per_minute.iter().map(|(_, c)| c)), s.totals);
    let hops: Vec<Counters> = s
        .runs
        .iter()
        .flat_map(|r| r.hops.iter().map(HopAgg::counters))
        .collect();
    assert_eq!(sum(hops.iter()), s.totals);
}

#[test]
fn hops_without_a_number_take_the_runs_next_position_in_arrival_order() {
    let s = fold(
        &mut ledger(),
        &[
            hop("r", None, "a", "gpt-4.1", 1, 1),
            hop("r", None, "b", "gpt-4.1", 1, 1),
            hop("r", Some(7), "c", "gpt-4.1", 1, 1),
            hop("r", None, "d", "gpt-4.1", 1, 1),
            hop("r", Some(3), "e", "gpt-4.1", 1, 1),
            hop("other", None, "x", "gpt-4.1", 1, 1),
        ],
    );
    let r = run(&s, "r");
    let positions: Vec<(u32, &str)> = r.hops.iter().map(|h| (h.hop, &*h.agent)).collect();
    assert_eq!(
        positions,
        vec![(1, "a"), (2, "b"), (3, "e"), (7, "c"), (8, "d")]
    );
    assert_eq!(run(&s, "other").hops[0].hop, 1, "numbering is per run");
    let path: Vec<String> = r.agent_path().iter().map(|a| a.to_string()).collect();
    assert_eq!(path, ["a", "b", "e", "c", "d"]);
}

#[test]
fn two_calls_at_the_same_run_and_hop_add_up() {
    let mut second = hop("r", Some(2), "late-agent", "gpt-4.1", 300, 30);
    second.latency_ms = Some(5);
    second.ts_ms = Some(T0 - 1000);
    let mut first = hop("r", Some(2), "a", "gpt-4.1", 100, 10);
    first.latency_ms = Some(7);
    let s = fold(&mut ledger(), &[first, second]);
    let r = run(&s, "r");
    assert_eq!(r.hops.len(), 1);
    let h = &r.hops[0];
    assert_eq!(h.calls, 2);
    assert_eq!(&*h.agent, "a", "the first call names the hop");
    assert_eq!(h.usage.total(), 440);
    assert_eq!(h.cost, gpt41(400, 40));
    assert_eq!(h.latency_ms, Some(12));
    assert_eq!(h.first_ts_ms, Some(T0 - 1000));
    let c = h.counters();
    assert_eq!(
        (c.events, c.computed_events, c.computed_cost),
        (2, 2, gpt41(400, 40))
    );
    assert_eq!(r.counters(), c);
    // Each call still counts for its own agent.
    assert_eq!(
        s.by_agent
            .iter()
            .find(|a| &*a.name == "late-agent")
            .map(|a| a.counters.events),
        Some(1)
    );
}

#[test]
fn multiplier_is_run_tokens_over_first_hop_tokens() {
    let s = fold(
        &mut ledger(),
        &[
            hop("r", Some(1), "a", "gpt-4.1", 90, 10),
            hop("r", Some(2), "a", "gpt-4.1", 240, 10),
            hop("r", Some(3), "a", "gpt-4.1", 140, 10),
        ],
    );
    assert_eq!(run(&s, "r").multiplier(), Some(5.0));
    let empty = fold(&mut ledger(), &[hop("z", Some(1), "a", "gpt-4.1", 0, 0)]);
    assert_eq!(
        run(&empty, "z").multiplier(),
        None,
        "no tokens in the first hop"
    );
}

#[test]
fn context_growth_is_last_hop_input_over_first_hop_input() {
    let flat = fold(
        &mut ledger(),
        &(1..=10)
            .map(|n| hop("flat", Some(n), "a", "gpt-4.1", 1_000, 10))
            .collect::<Vec<_>>(),
    );
    let run_flat = run(&flat, "flat");
    assert_eq!(
        run_flat.multiplier(),
        Some(10.0),
        "ten hops of the same size"
    );
    assert_eq!(
        run_flat.context_growth(),
        Some(1.0),
        "but the context stays flat"
    );
    let growing = fold(
        &mut ledger(),
        &[
            hop("g", Some(1), "a", "gpt-4.1", 100, 0),
            hop("g", Some(2), "a", "gpt-4.1", 250, 0),
            hop("g", Some(3), "a", "gpt-4.1", 400, 0),
        ],
    );
    assert_eq!(run(&growing, "g").context_growth(), Some(4.0));
    let empty = fold(&mut ledger(), &[hop("z", Some(1), "a", "gpt-4.1", 0, 5)]);
    assert_eq!(
        run(&empty, "z").context_growth(),
        None,
        "no input in the first hop"
    );
}

#[test]
fn an_unpriced_model_is_counted_as_unpriced_never_as_zero_dollars() {
    let s = fold(
        &mut ledger(),
        &[
            hop("r", Some(1), "a", "mystery-model-9", 1000, 500),
            hop("r", Some(2), "a", "gpt-4.1", 10, 1),
        ],
    );
    let t = &s.totals;
    assert_eq!((t.unpriced_events, t.unpriced_tokens), (1, 1500));
    assert_eq!(t.cost, gpt41(10, 1), "unpriced tokens add no cost");
    assert_eq!(t.computed_events, 1);
    let r = run(&s, "r");
    let unpriced = &r.hops[0];
    assert_eq!(unpriced.complete_cost(), None, "cost absent, not $0");
    assert_eq!(unpriced.provenance, Provenance::Unpriced);
    assert_eq!(unpriced.price_version, None);
    assert_eq!(
        (
            unpriced.counters().unpriced_events,
            unpriced.counters().unpriced_tokens
        ),
        (1, 1500)
    );
    assert_eq!(r.hops[1].complete_cost(), Some(gpt41(10, 1)));
    let model = s
        .by_model
        .iter()
        .find(|m| &*m.name == "mystery-model-9")
        .expect("model row");
    assert_eq!(model.priced_as, None);
    assert_eq!(model.counters.unpriced_events, 1);
}

#[test]
fn a_reported_cost_wins_over_the_computed_one_and_both_are_kept() {
    let mut reported = hop("r", Some(1), "a", "gpt-4.1", 1000, 100);
    reported.reported_cost = Some(Usd::from_picos(1_234_567));
    let s = fold(
        &mut ledger(),
        &[reported, hop("r", Some(2), "a", "gpt-4.1", 1000, 100)],
    );
    let t = &s.totals;
    assert_eq!(t.cost, Usd::from_picos(1_234_567) + gpt41(1000, 100));
    assert_eq!(t.reported_cost, Usd::from_picos(1_234_567));
    assert_eq!(t.computed_cost, gpt41(1000, 100) + gpt41(1000, 100));
    assert_eq!((t.reported_events, t.computed_events), (1, 2));
    let r = run(&s, "r");
    assert_eq!(r.hops[0].provenance, Provenance::Reported);
    assert_eq!(r.hops[0].cost, Usd::from_picos(1_234_567));
    assert_eq!(r.hops[0].counters().computed_cost, gpt41(1000, 100));
    assert_eq!(r.hops[1].provenance, Provenance::Computed);
    // A hop mixing both takes the least trustworthy provenance.
    let mut estimated = hop("m", Some(1), "a", "gpt-4.1", 10, 10);
    estimated.estimated = true;
    let mixed = fold(
        &mut ledger(),
        &[hop("m", Some(1), "a", "gpt-4.1", 10, 10), estimated],
    );
    let h = &run(&mixed, "m").hops[0];
    assert_eq!(h.provenance, Provenance::Estimated);
    assert_eq!(
        (h.counters().estimated_events, h.counters().computed_events),
        (1, 2)
    );
}

#[test]
fn set_prices_does_not_reprice_past_hops() {
    let mut ledger = ledger();
    let before = fold(&mut ledger, &[hop("r", Some(1), "a", "gpt-4.1", 1000, 100)]);
    let old_version = before.runs[0].hops[0]
        .price_version
        .clone()
        .expect("priced");
    let table = PriceBook::parse_override(
        "version = \"test-2\"\n[[model]]\nname = \"gpt-4.1\"\ninput = 20.0\noutput = 80.0\n",
        "t.toml",
    )
    .expect("valid table");
    ledger.set_prices(PriceBook::embedded().with_override(table));
    let after = fold(&mut ledger, &[hop("r", Some(2), "a", "gpt-4.1", 1000, 100)]);
    let r = run(&after, "r");
    assert_eq!(r.hops[0].cost, gpt41(1000, 100), "history is not repriced");
    assert_eq!(r.hops[0].price_version.as_deref(), Some(&*old_version));
    assert_eq!(
        r.hops[1].cost,
        Usd::from_picos(1000 * 20_000_000 + 100 * 80_000_000)
    );
    let new_version = r.hops[1].price_version.as_deref().expect("priced");
    assert!(new_version.starts_with("test-2"), "{new_version}");
    assert_ne!(new_version, &*old_version);
    assert_eq!(after.totals.cost, r.hops[0].cost + r.hops[1].cost);
}

#[test]
fn calls_without_a_segment_make_the_rest_of_the_totals() {
    let mut events = Vec::new();
    for (i, segment) in [Some("a"), None, Some("b"), None, None]
        .into_iter()
        .enumerate()
    {
        let mut event = hop("r", Some(i as u32 + 1), "x", "gpt-4.1", 100, 10);
        event.segment = segment.map(Cow::Borrowed);
        events.push(event);
    }
    let s = fold(&mut ledger(), &events);
    let rest = s.unsegmented();
    assert_eq!(rest.events, 3);
    assert_eq!(
        rest.cost,
        Usd::from_picos(3 * (100 * GPT41_IN + 10 * GPT41_OUT))
    );
    let mut all = rest;
    for row in &s.by_segment {
        all.merge(&row.counters);
    }
    assert_eq!(all, s.totals);
}

#[test]
fn budget_exceeded_and_run_end_mark_the_run_and_hop() {
    let budget = |hop: Option<u32>| TelemetryEvent {
        kind: EventKind::BudgetExceeded {
            limit_kind: Some("tokens".into()),
            limit: Some(100),
            observed: Some(120),
            action: Some("stop".into()),
        },
        ..at(hop_event(hop), T0 + MINUTE)
    };
    fn hop_event(n: Option<u32>) -> TelemetryEvent<'static> {
        hop("r", n, "a", "gpt-4.1", 0, 0)
    }
    let mut end = hop("r", None, "a", "gpt-4.1", 0, 0);
    end.kind = EventKind::RunEnd;
    end.status = Some(Cow::Borrowed("budget"));
    let s = fold(
        &mut ledger(),
        &[
            hop("r", Some(1), "a", "gpt-4.1", 10, 1),
            hop("r", Some(2), "a", "gpt-4.1", 10, 1),
            budget(Some(2)),
            budget(None),
            end,
        ],
    );
    let r = run(&s, "r");
    assert_eq!(r.budget_hits.len(), 2);
    assert_eq!(r.budget_hits[0].hop, Some(2));
    assert_eq!(r.hops[1].budget_hit().map(|b| b.observed), Some(Some(120)));
    assert!(r.hops[0].budget_hit().is_none());
    assert_eq!(r.ended.as_deref(), Some("budget"));
    assert_eq!((s.budget_events, s.run_ends), (2, 1));
    assert_eq!(
        s.totals.events, 2,
        "budget and run_end records are not calls"
    );
    assert_eq!(r.last_ts_ms, Some(T0 + MINUTE));
    // the tail carries what these records said, not a blank call
    let kinds: Vec<&RecentKind> = s.recent.iter().map(|e| &e.kind).collect();
    assert_eq!(
        kinds[2],
        &RecentKind::BudgetExceeded(Box::new(BudgetHit {
            limit_kind: Some("tokens".into()),
            limit: Some(100),
            observed: Some(120),
            action: Some("stop".into()),
            hop: Some(2),
        }))
    );
    let RecentKind::RunEnd(ended) = kinds[4] else {
        panic!("{kinds:?}")
    };
    assert_eq!(&*ended.status, "budget");
    assert_eq!((ended.hops, ended.tokens), (2, 22));
    assert_eq!(ended.cost, Some(r.counters().cost));
}

#[test]
fn a_breach_reported_before_its_hop_marks_the_hop_when_it_arrives() {
    let mut breach = hop("r", Some(3), "a", "gpt-4.1", 0, 0);
    breach.kind = EventKind::BudgetExceeded {
        limit_kind: Some("per_hop".into()),
        limit: Some(9000),
        observed: Some(12_000),
        action: Some("trim".into()),
    };
    let s = fold(
        &mut ledger(),
        &[
            hop("r", Some(1), "a", "gpt-4.1", 10, 1),
            breach,
            hop("r", Some(3), "a", "gpt-4.1", 9000, 1),
        ],
    );
    let r = run(&s, "r");
    assert_eq!(r.hops[1].hop, 3);
    assert_eq!(r.hops[1].budget_hit().and_then(|b| b.limit), Some(9000));
    assert!(r.hops[0].budget_hit().is_none());
}

#[test]
fn minutes_and_periods_bucket_by_time_in_the_zone() {
    let spec = |unit| PeriodSpec {
        unit,
        timezone: chrono_tz::America::New_York,
    };
    // T0 is Monday 10:00 UTC = 05:00 in New York (EST); -7 h is Sunday 23:00 there.
    let events = [
        at(hop("r", None, "a", "gpt-4.1", 1, 0), T0),
        at(hop("r", None, "a", "gpt-4.1", 2, 0), T0 + 59_999),
        at(hop("r", None, "a", "gpt-4.1", 4, 0), T0 + MINUTE),
        at(hop("r", None, "a", "gpt-4.1", 8, 0), T0 - 7 * 3_600_000),
        at(hop("r", None, "a", "gpt-4.1", 16, 0), T0 + 3 * MINUTE),
        at(hop("r", None, "a", "gpt-4.1", 32, 0), T0 + 60_001),
    ];
    let mut by_day = Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            recent_capacity: 0,
            period: Some(spec(PeriodUnit::Day)),
            per_minute: true,
            ..LedgerConfig::default()
        },
    );
    let s = fold(&mut by_day, &events);
    let minutes: Vec<(i64, u64)> = s
        .per_minute
        .iter()
        .map(|(m, c)| (*m, c.input_tokens))
        .collect();
    let m0 = T0 / MINUTE;
    assert_eq!(
        minutes,
        vec![(m0 - 420, 8), (m0, 3), (m0 + 1, 36), (m0 + 3, 16)]
    );
    let days: Vec<(&str, u64)> = s
        .periods
        .iter()
        .map(|(p, c)| (p.as_str(), c.input_tokens))
        .collect();
    assert_eq!(days, vec![("2026-03-01", 8), ("2026-03-02", 55)]);
    let mut by_week = Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            recent_capacity: 0,
            period: Some(spec(PeriodUnit::Week)),
            per_minute: true,
            ..LedgerConfig::default()
        },
    );
    let weeks: Vec<String> = fold(&mut by_week, &events)
        .periods
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(weeks, ["2026-W09", "2026-W10"]);
    let mut by_month = Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            recent_capacity: 0,
            period: Some(spec(PeriodUnit::Month)),
            per_minute: true,
            ..LedgerConfig::default()
        },
    );
    let months: Vec<(String, u64)> = fold(&mut by_month, &events)
        .periods
        .into_iter()
        .map(|(p, c)| (p, c.events))
        .collect();
    assert_eq!(months, vec![("2026-03".to_owned(), 6)]);
    assert!(
        fold(&mut ledger(), &events).periods.is_empty(),
        "no periods unless asked"
    );
}

#[test]
fn many_interleaved_minutes_keep_exact_buckets() {
    // More minutes in flight than the ledger keeps open at once.
    let events: Vec<TelemetryEvent<'static>> = (0..200_i64)
        .map(|i| {
            at(
                hop("r", None, "a", "gpt-4.1", 1, 0),
                T0 + (i * 7 % 11) * MINUTE + i,
            )
        })
        .collect();
    let s = fold(&mut ledger(), &events);
    assert_eq!(s.per_minute.len(), 11);
    assert!(
        s.per_minute.windows(2).all(|w| w[0].0 < w[1].0),
        "sorted, no duplicates"
    );
    for (k, (minute, c)) in s.per_minute.iter().enumerate() {
        let expected = (0..200_i64).filter(|i| i * 7 % 11 == k as i64).count() as u64;
        assert_eq!((*minute, c.events), (T0 / MINUTE + k as i64, expected));
    }
}

#[test]
fn the_recent_ring_stays_bounded() {
    let mut ledger = Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            recent_capacity: 3,
            period: None,
            per_minute: true,
            ..LedgerConfig::default()
        },
    );
    let events: Vec<TelemetryEvent<'static>> = (0..10)
        .map(|i| at(hop("r", None, "a", "gpt-4.1", i, 0), T0 + i as i64))
        .collect();
    let s = fold(&mut ledger, &events);
    let hops: Vec<u32> = s.recent.iter().map(|r| r.hop).collect();
    assert_eq!(hops, [8, 9, 10]);
    assert!(
        s.recent
            .iter()
            .all(|r| r.kind == RecentKind::Hop && &*r.agent == "a")
    );
    let mut none = Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            recent_capacity: 0,
            period: None,
            per_minute: true,
            ..LedgerConfig::default()
        },
    );
    assert!(fold(&mut none, &events).recent.is_empty());
}

#[test]
fn later_labels_and_price_versions_restamp_a_hop() {
    let mut first = hop("r", Some(1), "a", "gpt-4.1", 1, 1);
    first.task = Some(Cow::Borrowed("plan"));
    let unlabelled = hop("r", Some(1), "a", "mystery-model-9", 1, 1);
    let mut relabelled = hop("r", Some(1), "a", "gpt-4.1", 1, 1);
    relabelled.tool = Some(Cow::Borrowed("search"));
    let s = fold(&mut ledger(), &[first, unlabelled]);
    let h = &run(&s, "r").hops[0];
    assert_eq!(
        h.labels.task.as_deref(),
        Some("plan"),
        "a call without labels keeps them"
    );
    assert!(
        h.price_version.is_some(),
        "an unpriced call keeps the version"
    );
    assert_eq!(h.complete_cost(), None);
    let mut ledger = ledger();
    let mut first = hop("r", Some(1), "a", "gpt-4.1", 1, 1);
    first.task = Some(Cow::Borrowed("plan"));
    let s = fold(&mut ledger, &[first, relabelled]);
    let h = &run(&s, "r").hops[0];
    assert_eq!(
        (h.labels.task.as_deref(), h.labels.tool.as_deref()),
        (None, Some("search"))
    );
}

#[test]
fn a_limited_snapshot_lists_the_same_first_runs_and_counts_them_all() {
    const IDS: [&str; 12] = [
        "r00", "r01", "r02", "r03", "r04", "r05", "r06", "r07", "r08", "r09", "r10", "r11",
    ];
    let mut ledger = ledger();
    // Equal costs for some runs, so ties are broken by run id; the runs
    // arrive out of id order, so the ledger's order breaks no tie.
    let events: Vec<_> = IDS
        .iter()
        .enumerate()
        .map(|(i, id)| hop(id, Some(1), "a", "gpt-4.1", 100 * (i as u64 % 5), 1))
        .rev()
        .collect();
    // Runs created by a run end or a budget report count too (at no cost).
    let mut end = hop("zz-ended", None, "a", "gpt-4.1", 0, 0);
    end.kind = EventKind::RunEnd;
    let mut breach = hop("r03", Some(1), "a", "gpt-4.1", 0, 0);
    breach.kind = EventKind::BudgetExceeded {
        limit_kind: Some("tokens".into()),
        limit: Some(1),
        observed: Some(2),
        action: Some("warn".into()),
    };
    ledger.apply(&end);
    ledger.apply(&breach);
    let all = fold(&mut ledger, &events);
    assert_eq!(all.runs_total, 13);
    assert_eq!(ledger.run_rank.len(), ledger.runs.rows.len());
    for (run, &(cost, tokens)) in ledger.runs.rows.iter().zip(&ledger.run_rank) {
        assert_eq!(
            (run.counters().cost.picos(), run.counters().total_tokens),
            (i128::from(cost), tokens)
        );
    }
    for limit in [1, 3, 5, 11, 12, 13, 14] {
        let top = ledger.snapshot_top(limit);
        assert_eq!(top.runs_total, 13, "limit {limit}");
        let ids = |s: &Snapshot, n: usize| -> Vec<String> {
            s.runs
                .iter()
                .take(n)
                .map(|r| r.run_id.to_string())
                .collect()
        };
        assert_eq!(ids(&top, usize::MAX), ids(&all, limit), "limit {limit}");
        assert_eq!(top.totals, all.totals);
        assert!(top.per_minute.is_empty() && !all.per_minute.is_empty());
    }
    assert_eq!(ledger.snapshot_top(0).runs.len(), 13);
}

#[test]
fn a_replaced_call_is_the_new_report_alone_in_its_hop_and_the_tail() {
    let mut ledger = Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            recent_capacity: 8,
            period: None,
            per_minute: true,
            ..LedgerConfig::default()
        },
    );
    let mut first = at(hop("r", None, "a", "gpt-4.1", 100, 10), T0);
    first.latency_ms = Some(1_000);
    let mut second = at(hop("r", None, "a", "gpt-4.1", 100, 50), T0 + 5_000);
    second.latency_ms = Some(1_200);
    let old = ledger.apply_call(&first).unwrap();
    let other = ledger
        .apply_call(&hop("r", None, "b", "gpt-4.1", 7, 7))
        .unwrap();
    let new = ledger.replace(&old, &second);

    // What applying the new report alone gives.
    let mut alone = ledger_with_tail();
    alone.apply_call(&second);
    alone.apply_call(&hop("r", Some(2), "b", "gpt-4.1", 7, 7));

    let (s, a) = (ledger.snapshot(), alone.snapshot());
    let (hop1, want) = (&run(&s, "r").hops[0], &run(&a, "r").hops[0]);
    assert_eq!(hop1.hop, 1);
    assert_eq!(hop1.usage, want.usage);
    assert_eq!(hop1.latency_ms, Some(1_200));
    assert_eq!(hop1.first_ts_ms, Some(T0 + 5_000));
    assert_eq!(s.totals, a.totals);
    // One line per call in the tail: the first call's line shows the new report.
    let tail: Vec<(u32, u64)> = s.recent.iter().map(|r| (r.hop, r.usage.output)).collect();
    assert_eq!(tail, [(1, 50), (2, 7)]);

    // Replaced again, then taken back: its line goes with it.
    let newer = ledger.replace(&new, &at(hop("r", None, "a", "gpt-4.1", 100, 60), T0));
    assert_eq!(ledger.snapshot().recent.len(), 2);
    ledger.retract(&newer);
    let s = ledger.snapshot();
    let tail: Vec<u32> = s.recent.iter().map(|r| r.hop).collect();
    assert_eq!(tail, [2]);
    ledger.retract(&other);
    assert!(ledger.snapshot().recent.is_empty());
}

#[test]
fn taking_back_one_of_a_hops_calls_takes_back_its_latency() {
    let mut ledger = ledger();
    let mut a = hop("r", Some(1), "a", "gpt-4.1", 10, 1);
    a.latency_ms = Some(300);
    let mut b = hop("r", Some(1), "a", "gpt-4.1", 20, 2);
    b.latency_ms = Some(500);
    let first = ledger.apply_call(&a).unwrap();
    ledger.apply_call(&b);
    ledger.retract(&first);
    let s = ledger.snapshot();
    assert_eq!(run(&s, "r").hops[0].latency_ms, Some(500));
    assert_eq!(run(&s, "r").hops[0].calls, 1);
    // A latency too large to keep in a receipt: the call cannot be taken back.
    let mut slow = hop("r", Some(2), "a", "gpt-4.1", 1, 1);
    slow.latency_ms = Some(u64::from(u32::MAX) + 1);
    assert!(!ledger.apply_call(&slow).unwrap().is_exact());
}

fn ledger_with_tail() -> Ledger {
    Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            recent_capacity: 8,
            period: None,
            per_minute: true,
            ..LedgerConfig::default()
        },
    )
}

/// Hops of one run arriving in descending order (OTLP exporters send spans
/// in any order), with a breach reported on every hop first: the ledger's
/// work stays near-linear (counted in hops shifted or copied and breaches
/// scanned, [`work_done`]), and the run is the same as in ascending order.
#[test]
fn hops_out_of_order_cost_near_linear_work_and_land_sorted() {
    const N: u32 = 20_000;
    let breach = |n: u32| {
        let mut event = hop("r", Some(n), "a", "gpt-4.1", 0, 0);
        event.kind = EventKind::BudgetExceeded {
            limit_kind: Some("per_hop".into()),
            limit: Some(100),
            observed: Some(u64::from(n)),
            action: Some("trim".into()),
        };
        event
    };
    let call = |n: u32| hop("r", Some(n), "a", "gpt-4.1", u64::from(n), 1);
    let mut ascending = ledger();
    for n in 1..=N {
        ascending.apply(&breach(n));
        ascending.apply(&call(n));
    }
    let mut descending = ledger();
    let before = work_done();
    for n in (1..=N).rev() {
        descending.apply(&breach(n));
        descending.apply(&call(n));
    }
    let work = work_done() - before;
    assert!(
        work <= 64 * u64::from(N),
        "{work} steps for {N} hops out of order: quadratic"
    );
    let (a, d) = (ascending.snapshot(), descending.snapshot());
    let (ra, rd) = (run(&a, "r"), run(&d, "r"));
    assert_eq!(rd.hops.len(), N as usize);
    assert!(rd.hops.iter().map(|h| h.hop).eq(1..=N));
    for (x, y) in ra.hops.iter().zip(rd.hops.iter()) {
        assert_eq!((x.hop, x.usage, x.cost), (y.hop, y.usage, y.cost));
        let observed = |h: &HopAgg| h.budget_hit().and_then(|b| b.observed);
        assert_eq!(observed(y), Some(u64::from(y.hop)));
        assert_eq!(observed(x), observed(y));
    }
    assert_eq!(rd.counters(), ra.counters());
    assert_eq!(rd.budget_hits.len(), N as usize);
    assert_eq!(d.totals, a.totals);
}

/// Hops arriving in a shuffled order, some twice, one taken back: the
/// same run as in order.
#[test]
fn shuffled_hops_repeated_and_taken_back_fold_like_ordered_ones() {
    let order: Vec<u32> = (0..3_000u32).map(|i| (i * 7_919) % 3_000 + 1).collect();
    let mut ordered = ledger();
    let mut shuffled = ledger();
    for n in 1..=3_000 {
        ordered.apply(&hop("r", Some(n), "a", "gpt-4.1", u64::from(n), 1));
        if n % 10 == 0 {
            ordered.apply(&hop("r", Some(n), "a", "gpt-4.1", 5, 5));
        }
    }
    let mut taken = None;
    for &n in &order {
        let receipt = shuffled.apply_call(&hop("r", Some(n), "a", "gpt-4.1", u64::from(n), 1));
        if n % 10 == 0 {
            shuffled.apply(&hop("r", Some(n), "a", "gpt-4.1", 5, 5));
        }
        if n == 1_501 {
            taken = receipt;
        }
    }
    // hop 1501 taken back, then reported again
    shuffled.retract(&taken.expect("a receipt"));
    let s = shuffled.snapshot();
    assert!(run(&s, "r").hops.iter().all(|h| h.hop != 1_501));
    shuffled.apply(&hop("r", Some(1_501), "a", "gpt-4.1", 1_501, 1));
    let (o, s) = (ordered.snapshot(), shuffled.snapshot());
    let (ro, rs) = (run(&o, "r"), run(&s, "r"));
    assert_eq!(rs.hops.len(), 3_000);
    for (x, y) in ro.hops.iter().zip(rs.hops.iter()) {
        assert_eq!((x.hop, x.usage, x.calls), (y.hop, y.usage, y.calls));
    }
    assert_eq!(rs.counters(), ro.counters());
    // a hop without a number goes after the last one
    shuffled.apply(&hop("r", None, "a", "gpt-4.1", 1, 1));
    let s = shuffled.snapshot();
    assert_eq!(run(&s, "r").hops.last().map(|h| h.hop), Some(3_001));
}

/// A live snapshot lists the first rows of each list, folds the rest into
/// an `(other)` row, and every list still adds up to the totals.
#[test]
fn a_live_snapshot_lists_the_top_rows_and_folds_the_rest() {
    let names: Vec<String> = (0..50).map(|i| format!("n{i:02}")).collect();
    let mut ledger = ledger();
    for (i, name) in names.iter().enumerate() {
        let mut event = hop("r", None, "a", "gpt-4.1", 10 * (i as u64 + 1), 1);
        event.run_id = Cow::Owned(format!("run-{name}"));
        event.agent = Cow::Owned(format!("agent-{name}"));
        event.segment = (i % 2 == 0).then(|| Cow::Owned(format!("seg-{name}")));
        event.user = Some(Cow::Owned(format!("user-{}", i % 7)));
        ledger.apply(&event);
    }
    let all = ledger.snapshot();
    let top = ledger.snapshot_live(10);
    assert_eq!(top.totals, all.totals);
    assert_eq!((top.runs.len(), top.runs_total), (10, 50));
    let ids = |s: &Snapshot| -> Vec<Arc<str>> { s.runs.iter().map(|r| r.run_id.clone()).collect() };
    assert_eq!(ids(&top), ids(&all)[..10]);
    assert_eq!(top.by_agent.len(), 11);
    assert_eq!(&*top.by_agent[10].name, OTHER);
    assert_eq!(&*top.by_agent[0].name, "agent-n49");
    assert_eq!(top.folded.agents, 40);
    assert_eq!((top.folded.segments, top.folded.users), (15, 0));
    assert_eq!(top.by_user.len(), 7, "under the limit: nothing folded");
    assert_eq!(top.folded.models, 0);
    for list in [&top.by_agent, &top.by_segment, &top.by_user] {
        assert!(list.len() <= 11);
    }
    assert_eq!(sum(top.by_agent.iter().map(|r| &r.counters)), top.totals);
    assert_eq!(sum(top.by_user.iter().map(|r| &r.counters)), top.totals);
    assert_eq!(sum(top.by_model.iter().map(|r| &r.counters)), top.totals);
    // segments plus the calls without one make the totals, folded or not
    let mut segments = sum(top.by_segment.iter().map(|r| &r.counters));
    segments.merge(&top.unsegmented());
    assert_eq!(segments, top.totals);
    assert_eq!(top.unsegmented(), all.unsegmented());
    assert!(!top.per_minute.is_empty());
    // 0: everything, as `report` gets it
    let everything = ledger.snapshot_live(0);
    assert_eq!((everything.by_agent.len(), everything.runs.len()), (50, 50));
    assert_eq!(everything.folded, crate::model::snapshot::Folded::default());
}

fn capped(max_runs: usize, max_labels: usize, minutes_kept: i64) -> Ledger {
    Ledger::new(
        PriceBook::embedded(),
        LedgerConfig {
            max_runs,
            max_labels,
            minutes_kept,
            ..LedgerConfig::default()
        },
    )
}

/// Past `max_runs`, the least recently active runs are evicted: the totals
/// and every other list stay exact, the evicted calls are counted apart,
/// and a call of an evicted run can still be taken back exactly.
#[test]
fn evicted_runs_keep_every_total_exact() {
    let mut ledger = capped(100, 0, 0);
    let mut first = None;
    for i in 0..1_000u64 {
        let mut event = hop("r", Some(1), "a", "gpt-4.1", 10 + i, 1);
        event.run_id = Cow::Owned(format!("run-{i:04}"));
        event.agent = Cow::Borrowed(["a", "b", "c"][(i % 3) as usize]);
        event.segment = Some(Cow::Borrowed(["s", "t"][(i % 2) as usize]));
        let receipt = ledger.apply_call(&event);
        first = first.or(receipt);
        if i % 10 == 0 {
            // an old run active again is kept
            ledger.apply(&hop("run-0000", Some(2), "a", "gpt-4.1", 1, 1));
        }
    }
    let check = |s: &Snapshot| {
        assert!(s.runs_total <= 100, "{}", s.runs_total);
        assert_eq!(s.runs.len(), s.runs_total);
        let mut runs = sum(s
            .runs
            .iter()
            .map(|r| r.counters())
            .collect::<Vec<_>>()
            .iter());
        runs.merge(&s.evicted);
        assert_eq!(runs, s.totals);
        assert_eq!(sum(s.by_agent.iter().map(|r| &r.counters)), s.totals);
        let mut segments = sum(s.by_segment.iter().map(|r| &r.counters));
        segments.merge(&s.unsegmented());
        assert_eq!(segments, s.totals);
        assert_eq!(s.unsegmented().events, 100);
        assert_eq!(sum(s.by_model.iter().map(|r| &r.counters)), s.totals);
    };
    let s = ledger.snapshot();
    check(&s);
    assert_eq!(s.totals.events, 1_000 + 100);
    assert_eq!(s.runs_evicted as usize + s.runs_total, 1_000);
    assert!(s.runs.iter().any(|r| &*r.run_id == "run-0999"));
    assert!(
        s.runs.iter().any(|r| &*r.run_id == "run-0000"),
        "active again"
    );
    assert!(
        s.runs.iter().all(|r| &*r.run_id != "run-0001"),
        "least recent"
    );
    // run-0001 was evicted: taking its call back takes it from `evicted`
    let mut event = hop("run-0001", Some(1), "b", "gpt-4.1", 11, 1);
    event.segment = Some(Cow::Borrowed("t"));
    let before = s.totals;
    let again = ledger.apply_call(&event).expect("a receipt");
    ledger.retract(&again);
    ledger.retract(&first.expect("a receipt"));
    let s = ledger.snapshot();
    check(&s);
    assert_eq!(s.totals.events, before.events - 1);
    // positions of evicted runs are reused, not grown
    assert!(ledger.runs.rows.len() <= 101, "{}", ledger.runs.rows.len());
}

/// Past `max_labels`, new agents, segments, users, models and hop labels
/// are counted in one `(other)` row; a model in it is still priced by its
/// own name, so costs equal an unlimited ledger's.
#[test]
fn labels_past_the_cap_fold_into_other_with_exact_costs() {
    let models = [
        "gpt-4.1",
        "gpt-4.1-mini",
        "claude-sonnet-4-5",
        "no-such-model",
    ];
    let mut capped = capped(0, 3, 0);
    let mut unlimited = capped_unlimited();
    for i in 0..40u64 {
        let mut event = hop("r", None, "a", "gpt-4.1", 100 + i, 10);
        event.run_id = Cow::Owned(format!("run-{}", i % 5));
        event.agent = Cow::Owned(format!("agent-{i}"));
        event.model = Cow::Borrowed(models[(i % 4) as usize]);
        event.task = Some(Cow::Owned(format!("task-{i}")));
        capped.apply(&event);
        unlimited.apply(&event);
    }
    let (c, u) = (capped.snapshot(), unlimited.snapshot());
    assert_eq!(c.totals, u.totals);
    assert_eq!(c.by_agent.len(), 4);
    assert!(c.by_agent.iter().any(|r| &*r.name == OTHER));
    assert_eq!(sum(c.by_agent.iter().map(|r| &r.counters)), c.totals);
    assert_eq!(c.by_model.len(), 4);
    assert_eq!(sum(c.by_model.iter().map(|r| &r.counters)), c.totals);
    assert_eq!(c.runs_total, 5, "runs are not labels");
    let tasks: std::collections::BTreeSet<&str> = c
        .runs
        .iter()
        .flat_map(|r| r.hops.iter().filter_map(|h| h.labels.task.as_deref()))
        .collect();
    assert!(tasks.contains(OTHER) && tasks.len() <= 4, "{tasks:?}");
}

fn capped_unlimited() -> Ledger {
    Ledger::new(PriceBook::embedded(), LedgerConfig::default().unlimited())
}

/// The per-minute series keeps `minutes_kept` minutes before the newest.
#[test]
fn the_per_minute_series_is_pruned_past_the_minutes_kept() {
    let mut ledger = capped(0, 0, 60);
    for m in 0..600 {
        ledger.apply(&at(hop("r", None, "a", "gpt-4.1", 10, 1), T0 + m * MINUTE));
    }
    // a late call before the kept minutes still counts in the totals
    ledger.apply(&at(hop("r", None, "a", "gpt-4.1", 10, 1), T0));
    let s = ledger.snapshot();
    assert_eq!(s.totals.events, 601);
    assert_eq!(s.per_minute.len(), 61);
    assert_eq!(
        s.per_minute.first().map(|(m, _)| *m),
        Some((T0 + 539 * MINUTE) / MINUTE)
    );
}

/// A call timed far ahead of the clock (a wrong agent clock, year 2200)
/// stays out of the per-minute series: the present minutes are kept and
/// the burn rate reads them; the totals count it all the same, and taking
/// it back leaves the series alone.
#[test]
fn a_call_timed_far_in_the_future_never_prunes_the_present_minutes() {
    let mut ledger = capped(0, 0, 60);
    let now = T0 + 10 * MINUTE;
    ledger.set_clock(now);
    for m in 0..10 {
        ledger.apply(&at(hop("r", None, "a", "gpt-4.1", 10, 1), T0 + m * MINUTE));
    }
    let present = ledger.cost_in_minutes(T0 / MINUTE, now / MINUTE);
    assert!(present > Usd::ZERO);
    let year_2200 = 7_258_118_400_000;
    let future = ledger
        .apply_call(&at(hop("f", None, "a", "gpt-4.1", 10, 1), year_2200))
        .expect("a model call");
    // a little skew is kept
    ledger.apply(&at(
        hop("s", None, "a", "gpt-4.1", 10, 1),
        now + FUTURE_MINUTES * MINUTE,
    ));
    let s = ledger.snapshot();
    assert_eq!(s.totals.events, 12);
    assert_eq!(s.per_minute.len(), 11, "{:?}", s.per_minute);
    assert_eq!(ledger.cost_in_minutes(T0 / MINUTE, now / MINUTE), present);
    assert_eq!(
        ledger.cost_in_minutes(year_2200 / MINUTE, year_2200 / MINUTE + 1),
        Usd::ZERO
    );
    // later calls of the present still count in it
    ledger.apply(&at(hop("r", None, "a", "gpt-4.1", 10, 1), now - MINUTE));
    let later = ledger.cost_in_minutes(T0 / MINUTE, now / MINUTE);
    assert!(later > present);
    ledger.retract(&future);
    assert_eq!(ledger.snapshot().totals.events, 12);
    assert_eq!(ledger.cost_in_minutes(T0 / MINUTE, now / MINUTE), later);
}

#[test]
fn a_hop_is_128_bytes_and_a_single_hop_run_holds_it_inline() {
    // 300,000 single-hop runs in 128 MiB (BENCHMARKS.md "Memory at scale"):
    // a hop's rare parts are boxed together, and a run's one hop lives in
    // the run, not in an allocation of its own.
    let hop_size = std::mem::size_of::<HopAgg>();
    assert!(hop_size <= 128, "HopAgg is {hop_size} bytes");
    let hops = std::mem::size_of::<Hops>();
    assert!(
        hops <= hop_size + 16,
        "Hops is {hops} bytes beside a {hop_size}-byte hop"
    );
    let run_size = std::mem::size_of::<RunAgg>();
    // Arc counts + RunAgg in one allocation: at most a 304-byte malloc chunk,
    // where the run (208) and its hop's vector (160) took 368 bytes before.
    assert!(run_size + 16 <= 296, "RunAgg is {run_size} bytes");

    let mut l = ledger();
    let one = fold(&mut l, &[hop("r1", Some(1), "a", "gpt-4.1", 10, 0)]);
    let r = run(&one, "r1");
    assert_eq!(r.hops.len(), 1);
    assert_eq!(r.hops[0].hop, 1);
    assert!(r.hops.is_merged());
    let two = fold(&mut l, &[hop("r1", Some(2), "a", "gpt-4.1", 5, 0)]);
    let r = run(&two, "r1");
    assert_eq!(r.hops.iter().map(|h| h.hop).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(r.counters().input_tokens, 15);
    assert_eq!(
        run(&one, "r1").counters().input_tokens,
        10,
        "snapshots keep theirs"
    );
}

#[test]
fn the_anomaly_detector_sees_each_call_once_when_first_counted() {
    use crate::model::anomaly::AnomalyRules;
    let mut ledger = ledger();
    ledger.set_clock(T0);
    ledger.watch_anomalies(AnomalyRules {
        min_samples: 3,
        hop_min_tokens: 1_000,
        ..AnomalyRules::default()
    });
    for i in 0..3 {
        ledger.apply(&at(hop("r", Some(1), "a", "gpt-4.1", 100, 10), T0 + i));
    }
    // Replaced and taken back: the detector's history keeps the first report.
    let old = ledger
        .apply_call(&at(hop("s", Some(1), "a", "gpt-4.1", 100, 10), T0))
        .unwrap();
    let new = ledger.replace(&old, &at(hop("s", Some(1), "a", "gpt-4.1", 90_000, 10), T0));
    ledger.retract(&new);
    let detector = ledger.anomalies_mut().unwrap();
    assert_eq!(detector.hop_keys(), 1);
    assert_eq!(detector.raised(), 0, "a replacing report is not observed");
    // A new call far above the band is.
    ledger.apply(&at(hop("t", Some(1), "a", "gpt-4.1", 90_000, 10), T0));
    let raised = ledger.anomalies_mut().unwrap().take_new();
    assert_eq!(raised.len(), 1);
    assert_eq!((&*raised[0].subject, raised[0].hop), ("a", Some(1)));
}

#[test]
fn an_agents_part_of_a_run_is_a_run_of_its_hops_alone() {
    let mut breach = at(hop("r", Some(3), "b", "gpt-4.1", 0, 0), T0 + 3 * MINUTE);
    breach.kind = EventKind::BudgetExceeded {
        limit_kind: Some("per_hop".into()),
        limit: Some(100),
        observed: Some(120),
        action: Some("trim".into()),
    };
    let mut elsewhere = breach.clone();
    elsewhere.hop = Some(1);
    let s = fold(
        &mut ledger(),
        &[
            at(hop("r", Some(1), "a", "gpt-4.1", 1_000, 10), T0),
            at(hop("r", Some(2), "b", "gpt-4.1", 2_000, 20), T0 + MINUTE),
            at(
                hop("r", Some(3), "b", "gpt-4.1", 3_000, 30),
                T0 + 2 * MINUTE,
            ),
            breach,
            elsewhere,
        ],
    );
    let whole = run(&s, "r");
    let b = whole.only_agent("b").expect("b has hops");
    assert_eq!(b.hops.iter().map(|h| h.hop).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(b.counters().cost, gpt41(5_000, 50));
    assert_eq!(b.counters().events, 2);
    assert_eq!(
        (b.first_ts_ms, b.last_ts_ms),
        (Some(T0 + MINUTE), Some(T0 + 2 * MINUTE))
    );
    // each part keeps the breaches of its own hops
    assert_eq!(whole.budget_hits.len(), 2);
    assert_eq!(b.budget_hits.len(), 1);
    assert_eq!(b.budget_hits[0].hop, Some(3));
    let a = whole.only_agent("a").expect("a has a hop");
    assert_eq!(a.counters().cost, gpt41(1_000, 10));
    assert_eq!(a.budget_hits.len(), 1);
    assert_eq!(a.budget_hits[0].hop, Some(1));
    assert_eq!(a.multiplier(), Some(1.0));
    assert!(whole.only_agent("c").is_none());
}

#[test]
fn a_reconfigured_ledger_keeps_its_anomaly_detector_and_clock() {
    let mut ledger = ledger();
    ledger.set_clock(T0);
    ledger.watch_anomalies(crate::model::anomaly::AnomalyRules::default());
    let mut ledger = ledger.reconfigured(|config| config.recent_capacity = 7);
    assert_eq!(ledger.config().recent_capacity, 7);
    assert!(ledger.anomalies_mut().is_some());
    assert_eq!(ledger.clock_minute, Some(T0.div_euclid(60_000)));
}
