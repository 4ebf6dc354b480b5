//! The bleeding-hop rule of docs/insights.md, one case per reason.

use std::borrow::Cow;

use super::*;
use crate::model::ledger::{Ledger, LedgerConfig};
use crate::types::event::{EventKind, TelemetryEvent};
use crate::types::usage::Usage;

fn hop(
    run: &str,
    n: u32,
    agent: &'static str,
    model: &'static str,
    usage: Usage,
) -> TelemetryEvent<'static> {
    TelemetryEvent {
        kind: EventKind::Hop,
        ts_ms: Some(1_795_860_000_000 + i64::from(n) * 1_000),
        run_id: Cow::Owned(run.to_owned()),
        hop: Some(n),
        agent: Cow::Borrowed(agent),
        parent_agent: None,
        user: None,
        segment: None,
        task: None,
        tool: None,
        provider: None,
        model: Cow::Borrowed(model),
        usage,
        reported_cost: None,
        latency_ms: None,
        status: None,
        estimated: false,
        format: crate::types::Format::Native,
        call: None,
    }
}

fn input(uncached: u64, cache_read: u64, output: u64) -> Usage {
    Usage {
        input_uncached: uncached,
        cache_read,
        output,
        ..Usage::default()
    }
}

/// A loop that re-sends everything: input(k) = input(k-1) + output(k-1) + 5000.
fn naive(ledger: &mut Ledger, run: &str) {
    let mut context = 3_000;
    for n in 1..=6 {
        ledger.apply(&hop(
            run,
            n,
            if n == 1 { "planner" } else { "worker" },
            "claude-sonnet-4-5",
            input(context, 0, 500),
        ));
        context += 500 + 5_000;
    }
}

/// The same work with trimmed, cached context.
fn lean(ledger: &mut Ledger, run: &str) {
    for n in 1..=6 {
        ledger.apply(&hop(
            run,
            n,
            if n == 1 { "planner" } else { "worker" },
            "claude-sonnet-4-5",
            input(1_500, 2_000, 500),
        ));
    }
}

fn snapshot(build: impl FnOnce(&mut Ledger)) -> (Snapshot, PriceBook) {
    let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
    build(&mut ledger);
    (ledger.snapshot(), PriceBook::embedded())
}

fn run<'s>(snapshot: &'s Snapshot, id: &str) -> &'s RunAgg {
    snapshot.runs.iter().find(|r| &*r.run_id == id).unwrap()
}

#[test]
fn resent_history_bleeds_once_it_has_grown_and_trimmed_context_does_not() {
    let (snap, _) = snapshot(|l| {
        naive(l, "naive");
        lean(l, "lean");
    });
    let rules = BleedRules::default();
    let naive = run(&snap, "naive");
    let flagged: Vec<u32> = (0..naive.hops.len())
        .filter(|&i| hop_bleeding(naive, i, &rules).is_some())
        .map(|i| naive.hops[i].hop)
        .collect();
    // hop 3 carries 14,000 tokens: 4.7× the first hop and over 8,000
    assert_eq!(flagged, vec![3, 4, 5, 6]);
    match hop_bleeding(naive, 2, &rules) {
        Some(BleedReason::HistoryResent {
            input,
            carried,
            times_first,
        }) => {
            assert_eq!(input, 14_000);
            assert_eq!(carried, 8_500, "hop 2's whole input, re-sent");
            assert!((times_first - 14_000.0 / 3_000.0).abs() < 1e-9);
        }
        other => panic!("{other:?}"),
    }
    let lean = run(&snap, "lean");
    assert!((0..lean.hops.len()).all(|i| hop_bleeding(lean, i, &rules).is_none()));
}

#[test]
fn cached_history_is_not_bleeding() {
    let (snap, _) = snapshot(|l| {
        let mut context = 3_000;
        for n in 1..=5 {
            // same growth, but 90 % of it read from cache
            l.apply(&hop(
                "cached",
                n,
                "w",
                "claude-sonnet-4-5",
                input(context / 10, context - context / 10, 500),
            ));
            context += 5_500;
        }
    });
    let r = run(&snap, "cached");
    assert!((0..r.hops.len()).all(|i| hop_bleeding(r, i, &BleedRules::default()).is_none()));
}

#[test]
fn budgets_and_cost_share_are_reasons_too() {
    let (snap, _) = snapshot(|l| {
        l.apply(&hop("r", 1, "a", "gpt-4o", input(1_000, 0, 10)));
        l.apply(&hop("r", 2, "b", "gpt-4o", input(50_000, 0, 10)));
        l.apply(&hop("r", 3, "c", "gpt-4o", input(1_000, 0, 10)));
        let mut hit = hop("r", 3, "c", "gpt-4o", Usage::default());
        hit.kind = EventKind::BudgetExceeded {
            limit_kind: Some("per_hop".into()),
            limit: Some(900),
            observed: Some(1_000),
            action: Some("trim".into()),
        };
        l.apply(&hit);
    });
    let r = run(&snap, "r");
    let rules = BleedRules {
        growth_over_first: 100.0,
        ..BleedRules::default()
    };
    assert!(
        matches!(hop_bleeding(r, 1, &rules), Some(BleedReason::CostShare { share }) if share > 0.9)
    );
    assert_eq!(
        hop_bleeding(r, 2, &rules),
        Some(BleedReason::BudgetEnforced {
            limit_kind: "per_hop".into()
        })
    );
    assert_eq!(hop_bleeding(r, 0, &rules), None);
    let limited = BleedRules {
        per_hop_limit: Some(20_000),
        ..rules
    };
    assert_eq!(
        hop_bleeding(r, 1, &limited),
        Some(BleedReason::OverHopBudget {
            input: 50_000,
            limit: 20_000
        })
    );
    assert_eq!(
        hop_bleeding(r, 1, &limited).unwrap().code(),
        "over_hop_budget"
    );
    assert!(
        hop_bleeding(r, 1, &limited)
            .unwrap()
            .to_string()
            .contains("per-hop limit of 20000")
    );
}

#[test]
fn offenders_rank_agent_hop_positions_by_money() {
    let (snap, prices) = snapshot(|l| {
        for i in 0..4 {
            naive(l, &format!("naive-{i}"));
        }
        lean(l, "lean");
    });
    let insights = Insights::compute(&snap, &BleedRules::default(), &prices);
    assert_eq!(insights.bleeding_hops, 16);
    let worst = &insights.offenders[0];
    assert_eq!((&*worst.agent, worst.hop, worst.runs), ("worker", 6, 4));
    assert_eq!(worst.reason, "history_resent");
    assert_eq!(worst.carried_tokens, 25_000, "hop 5's input");
    assert_eq!(
        worst.total_cost,
        Usd::from_picos(worst.cost_per_run.picos() * 4)
    );
    let positions = &insights.positions["worker"];
    assert_eq!(
        positions.iter().map(|p| p.hop).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6]
    );
    assert_eq!(positions[0].runs, 5);
    assert_eq!(positions[0].input_tokens.median, 8_500);
    assert_eq!(positions[0].input_tokens.p95, 8_500);
    assert!(insights.run_cost.p95 >= insights.run_cost.median);
}

#[test]
fn spread_uses_nearest_rank() {
    let s = spread((1..=100_u64).collect());
    assert_eq!((s.median, s.p95), (50, 95));
    let s = spread(vec![7_u64]);
    assert_eq!((s.median, s.p95), (7, 7));
    assert_eq!(spread(Vec::<u64>::new()), Spread::default());
}

#[test]
fn cache_savings_and_reasoning_cost_use_the_price_table() {
    let (snap, prices) = snapshot(|l| {
        l.apply(&hop(
            "r",
            1,
            "a",
            "claude-sonnet-4-5",
            input(0, 1_000_000, 0),
        ));
        let mut reasoning = input(10, 0, 1_000);
        reasoning.reasoning = 1_000;
        l.apply(&hop("r", 2, "a", "o3", reasoning));
    });
    let insights = Insights::compute(&snap, &BleedRules::default(), &prices);
    // 1M reads at $3 − $0.30 per MTok
    assert_eq!(insights.cache_savings, Usd::parse_decimal("2.7").unwrap());
    // 1,000 reasoning tokens at o3's $8/MTok
    assert_eq!(
        insights.reasoning_cost,
        Usd::parse_decimal("0.008").unwrap()
    );
}

#[test]
fn burn_per_minute_fills_gaps_with_zero() {
    let (snap, _) = snapshot(|l| {
        l.apply(&hop("r", 1, "a", "gpt-4o", input(1_000_000, 0, 0))); // $2.50 at minute m
    });
    let minute = snap.per_minute[0].0;
    let burn = burn_per_minute(&snap, minute + 2, 5);
    assert_eq!(burn.len(), 5);
    assert_eq!(burn[2], Usd::parse_decimal("2.5").unwrap());
    assert_eq!(burn.iter().filter(|c| **c == Usd::ZERO).count(), 4);
}
