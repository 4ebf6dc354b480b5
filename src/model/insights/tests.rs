//! The bleeding-hop rule of docs/insights.md, one case per reason.

use std::borrow::Cow;

use super::*;
use crate::model::ledger::{FUTURE_MINUTES, Ledger, LedgerConfig};
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
        ts_ms: Some(1_795_860_000_000 + i64::from(n) * 1_000),
        run_id: Cow::Owned(run.to_owned()),
        ..TelemetryEvent::hop_for_test("", n, agent, model, usage)
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
    let insights = Insights::compute(&snap, &BleedRules::default(), &prices, None);
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
    let insights = Insights::compute(&snap, &BleedRules::default(), &prices, None);
    // 1M reads at $3 − $0.30 per MTok
    assert_eq!(insights.cache_savings, Usd::parse_decimal("2.7").unwrap());
    // 1,000 reasoning tokens at o3's $8/MTok
    assert_eq!(
        insights.reasoning_cost,
        Usd::parse_decimal("0.008").unwrap()
    );
}

/// A naive run whose hop `trim_at` the runtime trimmed to a per-hop limit
/// (the `budget_exceeded` record comes first, as runtimes send it).
fn naive_trimmed(ledger: &mut Ledger, run: &str, trim_at: u32, limit: u64) {
    let mut context = 3_000;
    for n in 1..=6 {
        let mut sent = context;
        if n == trim_at {
            let mut hit = hop(run, n, "worker", "claude-sonnet-4-5", Usage::default());
            hit.kind = EventKind::BudgetExceeded {
                limit_kind: Some("per_hop".into()),
                limit: Some(limit),
                observed: Some(context),
                action: Some("trim".into()),
            };
            ledger.apply(&hit);
            sent = limit;
        }
        ledger.apply(&hop(
            run,
            n,
            if n == 1 { "planner" } else { "worker" },
            "claude-sonnet-4-5",
            input(sent, 0, 500),
        ));
        context += 500 + 5_000;
    }
}

#[test]
fn hops_trimmed_by_a_budget_are_marked_but_not_ranked_as_offenders() {
    let (snap, prices) = snapshot(|l| {
        for i in 0..4 {
            naive(l, &format!("naive-{i}"));
        }
        // hop 6 cut from 30,500 to 9,000 input tokens: the fix, not the leak
        naive_trimmed(l, "trimmed", 6, 9_000);
    });
    let insights = Insights::compute(&snap, &BleedRules::default(), &prices, None);
    let hop6 = insights
        .offenders
        .iter()
        .find(|o| &*o.agent == "worker" && o.hop == 6)
        .unwrap();
    assert_eq!(hop6.runs, 4, "the trimmed run is not counted at hop 6");
    assert_eq!(hop6.reason, "history_resent");
    assert!(
        insights
            .offenders
            .iter()
            .all(|o| o.reason != "budget_enforced"),
        "{:?}",
        insights.offenders
    );
    // 4 × 4 re-sent hops, plus hops 3–5 of the trimmed run (it still re-sent them)
    assert_eq!(insights.bleeding_hops, 19);
    // … and the trimmed hop is still marked where hops are shown
    let trimmed = snap
        .runs
        .iter()
        .position(|r| &*r.run_id == "trimmed")
        .unwrap();
    assert!(
        insights.bleeding[trimmed]
            .iter()
            .any(|(i, reason)| *i == 5 && reason.code() == "budget_enforced")
    );
}

fn at(mut event: TelemetryEvent<'static>, ts_ms: i64) -> TelemetryEvent<'static> {
    event.ts_ms = Some(ts_ms);
    event
}

fn run_end(run: &str, ts_ms: i64) -> TelemetryEvent<'static> {
    let mut end = hop(run, 0, "a", "gpt-4o", Usage::default());
    end.kind = EventKind::RunEnd;
    end.hop = None;
    at(end, ts_ms)
}

/// 1M gpt-4o input tokens: $2.50.
fn dollars_2_50(run: &str, ts_ms: i64) -> TelemetryEvent<'static> {
    at(hop(run, 1, "a", "gpt-4o", input(1_000_000, 0, 0)), ts_ms)
}

const T0: i64 = 1_795_860_000_000;

#[test]
fn burn_rate_divides_by_the_time_actually_observed() {
    // $30 in 11 s: twelve calls a second apart
    let (snap, prices) = snapshot(|l| {
        for i in 0..12 {
            l.apply(&dollars_2_50(&format!("r{i}"), T0 + i * 1_000));
        }
    });
    let insights = Insights::compute(&snap, &BleedRules::default(), &prices, None);
    let now = T0 + 11_000;
    for window in [60_000, 5 * 60_000, 60 * 60_000] {
        let rate = burn_rate(&insights, now, window).unwrap();
        assert_eq!(rate.spend, Usd::parse_decimal("30").unwrap());
        assert_eq!(rate.observed_ms, 11_000);
        assert!(rate.partial());
        // $30 ÷ 11 s × 60 s
        assert_eq!(
            rate.per_minute(),
            Usd::from_picos(30 * 1_000_000_000_000 * 60 / 11)
        );
    }
    // two minutes later the 1-minute window is whole and empty; the others
    // divide by what was seen (2 min 11 s)
    let later = now + 120_000;
    let one = burn_rate(&insights, later, 60_000).unwrap();
    assert_eq!(
        (one.spend, one.observed_ms, one.partial()),
        (Usd::ZERO, 60_000, false)
    );
    let five = burn_rate(&insights, later, 5 * 60_000).unwrap();
    assert_eq!(five.observed_ms, 131_000);
    assert_eq!(five.spend, Usd::parse_decimal("30").unwrap());
    // an hour of history: the 60-minute rate is spend ÷ 60
    let (snap, prices) = snapshot(|l| {
        l.apply(&dollars_2_50("old", T0 - 3 * 3_600_000));
        for i in 0..12 {
            l.apply(&dollars_2_50(&format!("r{i}"), T0 + i * 1_000));
        }
    });
    let insights = Insights::compute(&snap, &BleedRules::default(), &prices, None);
    let hour = burn_rate(&insights, now, 60 * 60_000).unwrap();
    assert_eq!(hour.observed_ms, 3_600_000);
    assert_eq!(hour.per_minute(), Usd::parse_decimal("0.5").unwrap());
    assert_eq!(Insights::default().first_ts_ms, None);
    assert_eq!(burn_rate(&Insights::default(), now, 60_000), None);
}

/// A call timed in the year 2200 (a wrong agent clock, a hostile OTLP span)
/// cannot move the dashboard's windows into the future: they are anchored
/// on the caller's clock, so the present keeps its burn rate (the same as
/// without that call) and its in-flight runs stay in flight.
#[test]
fn a_call_timed_in_the_future_leaves_the_burn_rate_of_the_present() {
    let now = T0 + 10 * 60_000;
    let year_2200 = 7_258_118_400_000;
    let rules = BleedRules::default();
    // $10: 4M gpt-4o input tokens
    let future = || {
        at(
            hop("future", 1, "a", "gpt-4o", input(4_000_000, 0, 0)),
            year_2200,
        )
    };
    let (snap, prices) = snapshot(|l| l.apply(&dollars_2_50("present", now - 30_000)));
    let one = Insights::compute(&snap, &rules, &prices, Some(now));
    let (snap, prices) = snapshot(|l| {
        l.apply(&future());
        l.apply(&dollars_2_50("present", now - 30_000));
    });
    let both = Insights::compute(&snap, &rules, &prices, Some(now));
    for window in [60_000, 5 * 60_000, RECENT_SPEND_MS] {
        let rate = burn_rate(&both, now, window).unwrap();
        assert!(rate.per_minute() > Usd::ZERO, "{window}: {rate:?}");
        assert_eq!(Some(rate), burn_rate(&one, now, window), "{window}");
    }
    assert_eq!(
        burn_series(&both, now, 10_000, 6),
        burn_series(&one, now, 10_000, 6)
    );
    assert_eq!(both.last_ts_ms, Some(now - 30_000));
    assert_eq!(both.recent_spend, one.recent_spend);
    // the present run is still in flight (not settled at the year 2200)
    assert_eq!(both.finished_costs(), one.finished_costs());
    assert_eq!(both.run_lag_ms, one.run_lag_ms);
    // a view drawn later still reads the present, not the year 2200
    let later = now + 90_000;
    assert_eq!(
        burn_rate(&both, later, 60_000),
        burn_rate(&one, later, 60_000)
    );
    // a little skew is kept: a call FUTURE_MINUTES ahead ends the windows
    let skewed = now + FUTURE_MINUTES * 60_000;
    let (snap, prices) = snapshot(|l| {
        l.apply(&future());
        l.apply(&dollars_2_50("skewed", skewed));
    });
    let ahead = Insights::compute(&snap, &rules, &prices, Some(now));
    assert_eq!(ahead.last_ts_ms, Some(skewed));
    assert_eq!(
        burn_rate(&ahead, now, 60_000).unwrap().spend,
        Usd::parse_decimal("2.5").unwrap()
    );
    // nothing but the future: no timed event of the present
    let (snap, prices) = snapshot(|l| l.apply(&future()));
    let only = Insights::compute(&snap, &rules, &prices, Some(now));
    assert_eq!(burn_rate(&only, now, 60_000), None);
    assert!(only.recent_spend.is_empty());
}

#[test]
fn burn_series_buckets_the_recent_spend_ending_now() {
    let (snap, prices) = snapshot(|l| {
        l.apply(&dollars_2_50("a", T0));
        l.apply(&dollars_2_50("b", T0 + 9_999));
        l.apply(&dollars_2_50("c", T0 + 25_000));
    });
    let insights = Insights::compute(&snap, &BleedRules::default(), &prices, None);
    // 10-second buckets, the last one holding the second of T0 + 29 s
    let series = burn_series(&insights, T0 + 29_000, 10_000, 4);
    let d = |s: &str| Usd::parse_decimal(s).unwrap();
    assert_eq!(series, vec![Usd::ZERO, d("5"), Usd::ZERO, d("2.5")]);
}

#[test]
fn cost_per_run_in_recent_windows_counts_finished_runs_only() {
    let minute = 60_000;
    let (snap, prices) = snapshot(|l| {
        // ten $2.50 runs an hour ago, finished
        for i in 0..10 {
            let id = format!("old-{i}");
            l.apply(&dollars_2_50(&id, T0 - 60 * minute + i * 1_000));
            l.apply(&run_end(&id, T0 - 60 * minute + i * 1_000 + 500));
        }
        // three cheap runs in the last minute ($0.0025 each), one still running
        for i in 0..3 {
            let id = format!("new-{i}");
            l.apply(&at(
                hop(&id, 1, "a", "gpt-4o", input(1_000, 0, 0)),
                T0 - 30_000 + i * 1_000,
            ));
            if i < 2 {
                l.apply(&run_end(&id, T0 - 30_000 + i * 1_000 + 500));
            }
        }
    });
    let insights = Insights::compute(&snap, &BleedRules::default(), &prices, None);
    let d = |s: &str| Usd::parse_decimal(s).unwrap();
    let recent = recent_run_cost(&insights, T0, None);
    assert_eq!(recent.last_minutes.runs, 2);
    assert_eq!(recent.last_minutes.in_flight, 1);
    assert_eq!(recent.last_minutes.cost.median, d("0.0025"));
    assert_eq!(recent.last_runs.runs, 12);
    assert_eq!(recent.last_runs.in_flight, 1);
    assert_eq!(recent.last_runs.cost.median, d("2.5"));
    assert_eq!(recent.since_change, None);
    // a budget change 3 minutes ago: since $0.0025 a run, was $2.50
    let change = recent_run_cost(&insights, T0, Some(T0 - 3 * minute))
        .since_change
        .unwrap();
    assert_eq!((change.since.runs, change.since.in_flight), (2, 1));
    assert_eq!(change.since.cost.median, d("0.0025"));
    assert_eq!(change.before.runs, 10);
    assert_eq!(change.before.cost.median, d("2.5"));
    // a run without run_end is finished after a minute of silence
    let recent = recent_run_cost(&insights, T0 + SETTLED_AFTER_MS, None);
    assert_eq!(recent.last_runs.in_flight, 0);
    assert_eq!(recent.last_runs.runs, 13);
}

#[test]
fn cost_per_run_windows_carry_the_exact_mean_beside_the_spread() {
    // two teams, half and half: the median sits on one hump or the other,
    // the mean says what a run costs on average (what finance pays)
    let (snap, prices) = snapshot(|l| {
        for i in 0..4 {
            let id = format!("naive-{i}");
            l.apply(&dollars_2_50(&id, T0 - 60_000 + i * 1_000));
            l.apply(&run_end(&id, T0 - 60_000 + i * 1_000 + 500));
        }
        for i in 0..4 {
            let id = format!("lean-{i}");
            l.apply(&at(
                hop(&id, 1, "a", "gpt-4o", input(1_000, 0, 0)),
                T0 - 50_000 + i * 1_000,
            ));
            l.apply(&run_end(&id, T0 - 50_000 + i * 1_000 + 500));
        }
    });
    let insights = Insights::compute(&snap, &BleedRules::default(), &prices, None);
    let d = |s: &str| Usd::parse_decimal(s).unwrap();
    let recent = recent_run_cost(&insights, T0, None);
    assert_eq!(recent.last_runs.runs, 8);
    // (4 × $2.50 + 4 × $0.0025) / 8
    assert_eq!(recent.last_runs.mean, d("1.25125"));
    assert_eq!(recent.last_minutes.mean, d("1.25125"));
    let empty = recent_run_cost(&insights, T0 - 3_600_000, None);
    assert_eq!((empty.last_runs.runs, empty.last_runs.mean), (0, Usd::ZERO));
}

#[test]
fn context_growth_spread_and_first_enforcements() {
    let (snap, prices) = snapshot(|l| {
        naive(l, "naive"); // 3,000 → 30,500 input: 10.17×
        lean(l, "lean"); // flat: 1.0×
        naive_trimmed(l, "trimmed", 6, 9_000); // 3,000 → 9,000: 3.0×
    });
    let insights = Insights::compute(&snap, &BleedRules::default(), &prices, None);
    assert_eq!(insights.run_growth.median, 300);
    assert_eq!(insights.run_growth.p95, 1_017);
    assert_eq!(
        insights.enforcements,
        vec![Enforcement {
            at_ms: 1_795_860_000_000 + 6_000,
            limit_kind: Some("per_hop".into()),
            limit: Some(9_000),
        }]
    );
    assert_eq!(insights.trimmed_hops, 1);
}

#[test]
fn the_cost_histogram_is_logarithmic_so_two_teams_make_two_humps() {
    let d = |s: &str| Usd::parse_decimal(s).unwrap();
    let mut costs: Vec<Usd> = [
        "0", "0.10", "0.11", "0.12", "0.12", "0.13", "0.15", "1.2", "1.3", "1.4", "1.4", "1.5",
        "2.0",
    ]
    .into_iter()
    .map(d)
    .collect();
    costs.sort_unstable();
    let bag = |costs: &[Usd]| costs.iter().copied().collect::<SortedBag<Usd>>();
    let h = cost_histogram(&bag(&costs), &[], 10).unwrap();
    assert_eq!(h.low, d("0.10"));
    assert_eq!(h.high, d("2.0"));
    assert_eq!(h.counts.iter().sum::<u64>(), 13);
    // lean at the left (the free run with them), naive at the right,
    // nothing in between; buckets are ×1.35 wide (20^(1/10))
    assert_eq!(h.counts, vec![6, 1, 0, 0, 0, 0, 0, 0, 4, 2]);
    assert_eq!(h.edge(0), h.low);
    assert_eq!(h.edge(10), h.high);
    assert!(h.edge(5) > d("0.44") && h.edge(5) < d("0.45"));
    assert_eq!(cost_histogram(&bag(&[Usd::ZERO]), &[], 10), None);
    assert_eq!(cost_histogram(&bag(&[]), &[], 10), None);
    // one cost: one bucket holds it
    assert_eq!(
        cost_histogram(&bag(&[d("1")]), &[], 3).unwrap().counts,
        vec![0, 0, 1]
    );
    // runs still in flight are left out, whatever their cost (a free one, the
    // cheapest, the dearest, one equal to a finished run's)
    let in_flight = [Usd::ZERO, d("0.01"), d("0.12"), d("9")];
    let all: Vec<Usd> = costs.iter().chain(&in_flight).copied().collect();
    assert_eq!(cost_histogram(&bag(&all), &in_flight, 10).unwrap(), h);
    assert_eq!(cost_histogram(&bag(&in_flight), &in_flight, 10), None);
    // a cost left out that the bag lacks (never so from one `Insights`)
    // takes one run off the count and never underflows in the draw loop
    let odd = cost_histogram(&bag(&costs[1..]), &[Usd::ZERO], 10).unwrap();
    assert_eq!(odd.counts.iter().sum::<u64>(), 11);
    // once finished they count, and may widen the scale
    let wider = cost_histogram(&bag(&all), &[Usd::ZERO, d("0.12"), d("9")], 10).unwrap();
    assert_eq!((wider.low, wider.counts[0]), (d("0.01"), 2));
}

#[test]
fn only_runs_finished_by_the_last_event_are_in_the_distribution() {
    let (snap, prices) = snapshot(|l| {
        l.apply(&dollars_2_50("done", T0));
        l.apply(&run_end("done", T0 + 1_000));
        l.apply(&dollars_2_50("idle", T0));
        l.apply(&dollars_2_50("running", T0 + 61_000));
    });
    let insights = Insights::compute(&snap, &BleedRules::default(), &prices, None);
    // "idle" has had no event for 61 s at the last event; "running" is in flight
    assert_eq!(
        insights.finished_costs(),
        vec![Usd::parse_decimal("2.5").unwrap(); 2]
    );
}

#[test]
fn windows_do_not_favour_the_runs_that_happen_to_finish_first() {
    // a run starts every 10 s; before the change two in three are dear and
    // take 100 s, one is cheap and takes 1 s; after it (at 150 s) all are
    // cheap. Right after the change, the runs that had finished were mostly
    // the cheap ones.
    let change = T0 + 150_000;
    let (snap, prices) = snapshot(|l| {
        for n in 0..45_i64 {
            let start = T0 + n * 10_000;
            let id = format!("r{n}");
            let dear = start < change && n % 3 != 0;
            if dear {
                l.apply(&dollars_2_50(&id, start));
                l.apply(&run_end(&id, start + 100_000));
            } else {
                l.apply(&at(hop(&id, 1, "a", "gpt-4o", input(1_000, 0, 0)), start));
                l.apply(&run_end(&id, start + 1_000));
            }
        }
    });
    let insights = Insights::compute(&snap, &BleedRules::default(), &prices, None);
    assert_eq!(insights.run_lag_ms, 100_000);
    let d = |s: &str| Usd::parse_decimal(s).unwrap();
    // 20 s after the change: judged before it are the runs that started
    // 100 s before it and ended before it (0–40 s): three dear, two cheap —
    // not the 8 that had ended, 5 of them cheap
    let early = recent_run_cost(&insights, change + 20_000, Some(change))
        .since_change
        .unwrap();
    assert_eq!(early.before.runs, 5);
    assert_eq!(early.before.cost.median, d("2.5"));
    // runs started since are too young to judge yet (those of the snapshot
    // that start later count as in flight too)
    assert_eq!(early.since.runs, 0);
    assert!(early.since.in_flight >= 3);
    let later = recent_run_cost(&insights, T0 + 450_000, Some(change))
        .since_change
        .unwrap();
    assert_eq!(later.since.cost.median, d("0.0025"));
    assert_eq!(later.since.runs, 21, "started 150–350 s, 100 s or more ago");
    assert_eq!(later.before, early.before);
}

/// The index kept up to date run by run says what a computation from
/// scratch over the runs held says, through new hops, hops out of order,
/// calls taken back, run ends, budget hits and runs evicted past the cap.
#[test]
fn kept_up_to_date_run_by_run_the_index_says_what_a_fresh_computation_says() {
    let config = LedgerConfig {
        max_runs: 12,
        ..LedgerConfig::default()
    };
    let mut ledger = Ledger::new(PriceBook::embedded(), config);
    let rules = BleedRules::default();
    let prices = PriceBook::embedded();
    let mut index = InsightsIndex::new(rules.clone());
    let mut receipts = Vec::new();
    let mut checked = 0;
    // 30 runs of 1 to 7 hops, interleaved in threes; every seventh call is
    // taken back later, every fourth run ends, every fifth hits a budget
    for step in 0..150u32 {
        let run = format!("r{}", step / 5 + (step % 3) * 10);
        let n = (step % 7) + 1 + u32::from(step % 11 == 0) * 3;
        let agent = ["planner", "worker", "writer"][(step % 3) as usize];
        let mut call = hop(
            &run,
            n,
            agent,
            "claude-sonnet-4-5",
            input(2_000 * u64::from(n) + u64::from(step), 0, 300),
        );
        call.ts_ms = Some(1_795_860_000_000 + i64::from(step) * 7_000);
        receipts.push(ledger.apply_call(&call));
        if step % 5 == 4 {
            let mut hit = call.clone();
            hit.usage = Usage::default();
            hit.kind = EventKind::BudgetExceeded {
                limit_kind: Some("per_hop".into()),
                limit: Some(u64::from(step % 2) * 1_000 + 5_000),
                observed: Some(9_000),
                action: Some(if step % 10 == 4 { "trim" } else { "halt" }.into()),
            };
            ledger.apply(&hit);
        }
        if step % 20 == 19 {
            let mut end = call.clone();
            end.usage = Usage::default();
            end.kind = EventKind::RunEnd;
            ledger.apply(&end);
        }
        if step % 7 == 6
            && let Some(receipt) = receipts[step as usize - 3].as_ref()
        {
            ledger.retract(receipt);
        }
        if step % 3 == 0 {
            index.sync(&ledger);
            let snap = ledger.snapshot();
            let clock = Some(1_795_860_000_000 + i64::from(step) * 7_000 + 30_000);
            assert_eq!(
                format!("{:?}", index.insights(&snap, &prices, clock)),
                format!("{:?}", Insights::compute(&snap, &rules, &prices, clock)),
                "after step {step}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 50);
    // every part was exercised: the cap was reached (evicted runs left the
    // index), hops bled and were trimmed, runs finished and are in flight
    let snap = ledger.snapshot();
    assert_eq!(snap.runs.len(), 12);
    assert!(ledger.runs_evicted > 0);
    let last = index.insights(&snap, &prices, None);
    assert!(last.bleeding_hops > 0 && last.trimmed_hops > 0);
    assert!(!last.offenders.is_empty() && !last.enforcements.is_empty());
    assert!(!last.finished_costs().is_empty() && !last.unfinished.is_empty());
    assert!(!last.recent_spend.is_empty());
}
