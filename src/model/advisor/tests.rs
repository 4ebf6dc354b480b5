//! The advisor's formulas on hand-computed examples (`docs/insights.md`,
//! "Advisor"), and its incremental sums against a fresh computation.

use std::borrow::Cow;

use super::forecast::forecast;
use super::*;
use crate::model::budget::{Limits, Scope};
use crate::model::{EventKind, LedgerConfig, Snapshot, TelemetryEvent, Usage};

const T0: i64 = 1_772_445_600_000;

/// Dollars from micro-dollars (exact).
fn micros(n: i128) -> Usd {
    Usd::from_picos(n * 1_000_000)
}

struct Hop {
    run: &'static str,
    hop: u32,
    agent: &'static str,
    model: &'static str,
    task: Option<&'static str>,
    usage: Usage,
}

fn hop(run: &'static str, hop: u32, model: &'static str, input: u64, output: u64) -> Hop {
    Hop {
        run,
        hop,
        agent: "agent",
        model,
        task: None,
        usage: Usage {
            input_uncached: input,
            output,
            ..Usage::default()
        },
    }
}

fn event(h: &Hop) -> TelemetryEvent<'static> {
    TelemetryEvent {
        ts_ms: Some(T0 + i64::from(h.hop) * 1_000),
        task: h.task.map(Cow::Borrowed),
        ..TelemetryEvent::hop_for_test(h.run, h.hop, h.agent, h.model, h.usage)
    }
}

fn snapshot(hops: &[Hop]) -> Snapshot {
    let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default().unlimited());
    for h in hops {
        ledger.apply(&event(h));
    }
    ledger.snapshot()
}

/// An advisor with `rules` that observed every run of `snap`.
fn observing(rules: AdvisorRules, snap: &Snapshot) -> Advisor {
    let mut advisor = Advisor::new(rules, BleedRules::default(), &PriceBook::embedded());
    for run in &snap.runs {
        advisor.observe(run);
    }
    advisor
}

fn advise(rules: AdvisorRules, hops: &[Hop]) -> Advice {
    let snap = snapshot(hops);
    observing(rules, &snap).advice(snap.first_ts_ms.zip(snap.last_ts_ms), &snap.runs)
}

fn rec(advice: &Advice, lever: Lever) -> &Recommendation {
    advice
        .recommendations
        .iter()
        .find(|r| r.lever == lever)
        .unwrap_or_else(|| panic!("no {lever:?} in {:#?}", advice.recommendations))
}

/// Only the lever under test: no routing rule, no trimming (a limit no hop
/// reaches), every saving listed.
fn bare() -> AdvisorRules {
    AdvisorRules {
        routes: Vec::new(),
        trim_limit: Some(u64::MAX / 4),
        min_saving_share: 0.0,
        ..AdvisorRules::default()
    }
}

#[test]
fn trimming_cuts_each_hop_to_twice_the_first_hop_rounded_up() {
    // first hop 2,900 → limit 5,800 → 6,000; hop 2 loses 14,000 uncached
    // tokens at opus-4-6's $5/M: $0.07
    let rules = AdvisorRules {
        trim_limit: None,
        ..bare()
    };
    let advice = advise(
        rules,
        &[
            hop("r", 1, "claude-opus-4-6", 2_900, 1_000),
            hop("r", 2, "claude-opus-4-6", 20_000, 500),
        ],
    );
    let trim = rec(&advice, Lever::Trim);
    assert_eq!(trim.suggested_limit, Some(6_000));
    assert_eq!(trim.saving, micros(70_000));
    assert_eq!(trim.tokens, 14_000);
    assert_eq!(trim.evidence[0].hops, vec![2]);
    // a small first hop: the floor of 4,000
    assert_eq!(AdvisorRules::default().trim_limit(1_000), 4_000);
    assert_eq!(AdvisorRules::default().trim_limit(2_001), 5_000);
}

#[test]
fn hops_of_one_agent_and_model_under_several_tasks_make_one_recommendation() {
    // limit 6,000 as above; the "writer" hops (two tasks: two hop
    // identities, one agent and model) lose 14,000 + 4,000 uncached tokens
    // at $5/M: $0.09 in one recommendation; the other agent's hop 3 loses
    // 2,000 ($0.01) in its own
    let rules = AdvisorRules {
        trim_limit: None,
        ..bare()
    };
    let opus = |n, input, agent, task| Hop {
        agent,
        task: Some(task),
        ..hop("r", n, "claude-opus-4-6", input, 500)
    };
    let advice = advise(
        rules,
        &[
            opus(1, 2_900, "writer", "draft"),
            opus(2, 20_000, "writer", "edit"),
            opus(3, 8_000, "critic", "review"),
            opus(4, 10_000, "writer", "draft"),
        ],
    );
    let trims: Vec<_> = advice
        .recommendations
        .iter()
        .filter(|r| r.lever == Lever::Trim)
        .map(|r| {
            (
                &*r.agent,
                r.saving,
                r.tokens,
                r.hops,
                r.evidence[0].hops.clone(),
            )
        })
        .collect();
    assert_eq!(
        trims,
        vec![
            ("writer", micros(90_000), 18_000, 2, vec![2, 4]),
            ("critic", micros(10_000), 2_000, 1, vec![3]),
        ]
    );
    let hops: Vec<_> = advice
        .by_agent
        .iter()
        .map(|a| (&*a.name, a.tally.hops))
        .collect();
    assert_eq!(hops, vec![("writer", 3), ("critic", 1)]);
}

#[test]
fn caching_reads_the_carried_prefix_and_pays_the_write_premium() {
    // sonnet-4-5: input $3, cache read $0.30, 5-minute write $3.75, output $15 (per M).
    // hop 1 (2,000 in): written for hop 2: 2,000 × 3.75 + 100 × 15 = 9,000 µ$
    // hop 2 (5,000 in, 2,000 carried): reads 2,000, writes the other 3,000
    //   for hop 3: 600 + 11,250 + 1,500 = 13,350 µ$
    // hop 3 (8,000 in, 5,000 carried): reads 5,000, 3,000 uncached:
    //   1,500 + 9,000 + 1,500 = 12,000 µ$
    // today 15,000 × 3 + 300 × 15 = 49,500 µ$; cached 34,350 µ$
    let model = "claude-sonnet-4-5";
    let advice = advise(
        bare(),
        &[
            hop("r", 1, model, 2_000, 100),
            hop("r", 2, model, 5_000, 100),
            hop("r", 3, model, 8_000, 100),
        ],
    );
    assert_eq!(advice.total.cost, micros(49_500));
    assert_eq!(advice.total.cached, micros(34_350));
    let cache = rec(&advice, Lever::Cache);
    assert_eq!(cache.saving, micros(49_500 - 34_350));
    assert_eq!(cache.tokens, 7_000);
    // hop 1 pays the write premium: it is part of the fix
    assert_eq!(cache.evidence[0].hops, vec![1, 2, 3]);
    assert_eq!(advice.combined.combined_per_run, micros(34_350));
}

#[test]
fn a_prefix_under_the_providers_minimum_is_not_cached() {
    // haiku-4-5 caches from 4,096 tokens: a 2,000-token prefix is not
    let model = "claude-haiku-4-5";
    let advice = advise(
        bare(),
        &[hop("r", 1, model, 2_000, 10), hop("r", 2, model, 2_500, 10)],
    );
    assert!(
        advice.recommendations.is_empty(),
        "{:#?}",
        advice.recommendations
    );
    assert_eq!(advice.total.cached, advice.total.cost);
}

#[test]
fn a_run_whose_cache_reads_stop_is_a_cache_break() {
    let model = "claude-sonnet-4-5";
    let mut first = hop("r", 1, model, 3_000, 10);
    first.usage = Usage {
        input_uncached: 1_000,
        cache_read: 2_000,
        output: 10,
        ..Usage::default()
    };
    let advice = advise(
        bare(),
        &[
            first,
            hop("r", 2, model, 5_000, 10),
            hop("r", 3, model, 7_000, 10),
        ],
    );
    // hop 2 carries hop 1's 3,000 tokens and reads none of them: broken there
    let broke = rec(&advice, Lever::CacheBreak);
    assert_eq!(broke.evidence[0].hops, vec![2, 3]);
    assert_eq!(advice.cache_break_runs, 1);
    assert_eq!(advice.cache_breaks[0].hop, 2);
    assert!(
        advice
            .recommendations
            .iter()
            .all(|r| r.lever != Lever::Cache)
    );
}

#[test]
fn routing_picks_the_cheapest_model_of_the_same_provider_only() {
    let mut classify = hop("r", 1, "gpt-4.1", 10_000, 200);
    classify.task = Some("classify");
    let mut claude = hop("s", 1, "claude-sonnet-4-5", 10_000, 200);
    claude.task = Some("classify");
    let rules = AdvisorRules {
        routes: AdvisorRules::default().routes,
        ..bare()
    };
    let advice = advise(
        rules,
        &[classify, claude, hop("t", 1, "mystery-9", 10_000, 200)],
    );
    let routes: Vec<(&str, &str)> = advice
        .recommendations
        .iter()
        .filter(|r| r.lever == Lever::Route)
        .map(|r| (&*r.model, r.target.as_deref().unwrap_or("")))
        .collect();
    // gpt-4.1 $2/$8 → gpt-5-nano $0.05/$0.40: 500 + 80 µ$; sonnet → haiku-4-5
    assert!(routes.contains(&("gpt-4.1", "gpt-5-nano")), "{routes:?}");
    assert!(
        routes.contains(&("claude-sonnet-4-5", "claude-haiku-4-5")),
        "{routes:?}"
    );
    let gpt = advice
        .recommendations
        .iter()
        .find(|r| &*r.model == "gpt-4.1")
        .unwrap();
    assert_eq!(gpt.saving, micros(20_000 + 1_600 - 500 - 80));
    assert_eq!(gpt.rule.as_deref(), Some("simple-task"));
    // the unpriced model is in no dollar figure, and counted as such
    assert_eq!(advice.total.unpriced_hops, 1);
    assert_eq!(advice.combined.unpriced_hops, 1);
    assert!(
        advice
            .recommendations
            .iter()
            .all(|r| &*r.model != "mystery-9")
    );
}

#[test]
fn a_rule_naming_a_model_of_another_provider_routes_nothing() {
    let mut h = hop("r", 1, "gpt-4.1", 10_000, 200);
    h.task = Some("extract");
    let rule = |to: &str| RouteRule {
        name: "custom".into(),
        tasks: vec!["extract".into()],
        agents: Vec::new(),
        max_output_tokens: None,
        max_reasoning_share: None,
        to: RouteTarget::Model(to.into()),
        confidence: Confidence::High,
    };
    let across = AdvisorRules {
        routes: vec![rule("claude-haiku-4-5")],
        route_targets: vec!["claude-haiku-4-5".into(), "gpt-4.1-mini".into()],
        ..bare()
    };
    assert!(
        advise(across, &[hop("r", 1, "gpt-4.1", 10_000, 200)])
            .recommendations
            .is_empty()
    );
    let within = AdvisorRules {
        routes: vec![rule("gpt-4.1-mini")],
        route_targets: vec!["claude-haiku-4-5".into(), "gpt-4.1-mini".into()],
        ..bare()
    };
    let advice = advise(within, &[h]);
    // $2/$8 → $0.40/$1.60: 20,000 + 1,600 − 4,000 − 320 µ$
    assert_eq!(rec(&advice, Lever::Route).saving, micros(17_280));
}

#[test]
fn next_cheaper_goes_one_tier_down() {
    let rules = AdvisorRules {
        routes: vec![RouteRule {
            name: "tier-down".into(),
            tasks: Vec::new(),
            agents: Vec::new(),
            max_output_tokens: None,
            max_reasoning_share: None,
            to: RouteTarget::NextCheaper,
            confidence: Confidence::Low,
        }],
        ..bare()
    };
    let advice = advise(rules, &[hop("r", 1, "claude-opus-4-6", 10_000, 3_000)]);
    let route = rec(&advice, Lever::Route);
    assert_eq!(route.target.as_deref(), Some("claude-sonnet-4-5"));
    // opus $5/$25 → sonnet $3/$15: 50,000 + 75,000 − 30,000 − 45,000 µ$
    assert_eq!(route.saving, micros(50_000));
    // one run over no time at all: a thin sample lowers how sure it is
    assert_eq!(route.confidence, Confidence::Low);
}

#[test]
fn reasoning_far_beyond_the_visible_output_on_a_simple_task() {
    // o4-mini: output $4.40/M. 2,000 output of which 1,800 reasoning: 200
    // visible allow 600 (3×); 1,200 too many: 5,280 µ$
    let mut h = hop("r", 1, "o4-mini", 1_000, 2_000);
    h.task = Some("classify");
    h.usage.reasoning = 1_800;
    let advice = advise(bare(), &[h]);
    let reasoning = rec(&advice, Lever::Reasoning);
    assert_eq!(reasoning.tokens, 1_200);
    assert_eq!(reasoning.saving, micros(5_280));
    assert_eq!(advice.total.reasoning_cost, micros(7_920));
}

#[test]
fn a_run_forecast_follows_its_growth_to_the_expected_length() {
    let snap = snapshot(&[
        hop("r", 1, "gpt-4.1", 1_000, 100),
        hop("r", 2, "gpt-4.1", 2_000, 100),
        hop("r", 3, "gpt-4.1", 3_000, 100),
    ]);
    let run = &snap.runs[0];
    // +1,000 input a hop: hops 4 and 5 send 4,000 and 5,000 (100 out each)
    let book = PriceBook::embedded();
    let price = book.model(book.resolve("gpt-4.1").unwrap());
    let f = forecast(run, 5, Some(10_000), Some(micros(20_000)), Some(price)).unwrap();
    assert_eq!(f.input_growth_per_hop, 1_000);
    assert_eq!(f.tokens, 6_300 + 4_100 + 5_100);
    // 6,300 seen; 10,400 after hop 4
    assert_eq!(f.crosses_token_limit_at, Some(4));
    // $2/M in, $8/M out: seen 12,000 + 2,400 µ$; hop 4 8,000 + 800; hop 5 10,000 + 800
    assert_eq!(f.cost, micros(14_400 + 8_800 + 10_800));
    assert_eq!(f.crosses_cost_limit_at, Some(4));
    assert_eq!(forecast(run, 2, None, None, None).unwrap().hops_expected, 3);
}

#[test]
fn forecasts_cross_the_run_limits_of_the_runs_agent_over_its_segment_over_global() {
    // Two runs of 5 hops ended (loops run 5 hops); three still going, each
    // growing +1,000 input a hop from 1,000 (100 output): 6,300 tokens seen
    // after 3 hops, 10,400 after hop 4, 15,500 after hop 5.
    let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default().unlimited());
    let mut apply =
        |run: &'static str, agent: &'static str, segment: Option<&'static str>, n: u32| {
            for i in 1..=n {
                let mut e = event(&Hop {
                    agent,
                    ..hop(run, i, "gpt-4.1", u64::from(i) * 1_000, 100)
                });
                e.segment = segment.map(Cow::Borrowed);
                ledger.apply(&e);
            }
        };
    apply("done-1", "writer", None, 5);
    apply("done-2", "writer", None, 5);
    apply("live-global", "writer", None, 3);
    apply("live-segment", "writer", Some("pro"), 3);
    apply("live-agent", "critic", Some("pro"), 3);
    for run in ["done-1", "done-2"] {
        let mut end = event(&hop(run, 6, "gpt-4.1", 0, 0));
        end.kind = EventKind::RunEnd;
        ledger.apply(&end);
    }
    let snap = ledger.snapshot();
    let tokens = |n: u64| Limits {
        total_run_limit: Some(n),
        on_run_breach: Some(budget::BreachAction::Abort),
        ..Limits::default()
    };
    let mut advisor = observing(AdvisorRules::default(), &snap);
    let crossing = |advisor: &Advisor| -> Vec<(String, Option<u32>, Option<u32>)> {
        let mut list: Vec<_> = advisor
            .forecasts(&snap.runs)
            .into_iter()
            .map(|f| {
                (
                    f.run_id.to_string(),
                    f.forecast.crosses_token_limit_at,
                    f.forecast.crosses_cost_limit_at,
                )
            })
            .collect();
        list.sort();
        list
    };
    // no limits: nothing to cross
    assert_eq!(
        crossing(&advisor),
        [
            ("live-agent".into(), None, None),
            ("live-global".into(), None, None),
            ("live-segment".into(), None, None),
        ]
    );
    advisor.set_run_limits(BTreeMap::from([
        // everyone: 12,000 tokens, passed at hop 5
        (Scope::Global, tokens(12_000)),
        // segment pro: 10,000, passed at hop 4; and $0.0235, passed at hop 5
        // (gpt-4.1, $2/M in, $8/M out: 14,400 µ$ seen, +8,800 at hop 4,
        // +10,800 at hop 5)
        (
            Scope::Segment("pro".into()),
            Limits {
                run_cost_limit_usd: Some("0.0235".into()),
                ..tokens(10_000)
            },
        ),
        // the critic: 20,000, never passed (its segment's cost limit still is)
        (Scope::Agent("critic".into()), tokens(20_000)),
    ]));
    assert_eq!(
        crossing(&advisor),
        [
            ("live-agent".into(), None, Some(5)),
            ("live-global".into(), Some(5), None),
            ("live-segment".into(), Some(4), Some(5)),
        ]
    );
}

#[test]
fn kept_up_to_date_run_by_run_it_says_what_a_fresh_advisor_says() {
    let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default().unlimited());
    let mut live = Advisor::new(
        AdvisorRules::default(),
        BleedRules::default(),
        &PriceBook::embedded(),
    );
    let hops = [
        hop("a", 1, "claude-opus-4-6", 2_900, 1_000),
        hop("b", 1, "gpt-4.1", 3_000, 100),
        hop("a", 2, "claude-opus-4-6", 9_000, 400),
        hop("a", 3, "claude-opus-4-6", 20_000, 400),
        hop("b", 2, "gpt-4.1", 12_000, 2_000),
    ];
    let mut receipts = Vec::new();
    for h in &hops {
        receipts.push(ledger.apply_call(&event(h)));
        live.sync(&ledger);
    }
    // a call taken back (a duplicate seen later): its share goes too
    ledger.retract(receipts[3].as_ref().unwrap());
    live.sync(&ledger);
    let snap = ledger.snapshot();
    let fresh = observing(AdvisorRules::default(), &snap);
    let span = snap.first_ts_ms.zip(snap.last_ts_ms);
    assert_eq!(
        live.advice(span, &snap.runs),
        fresh.advice(span, &snap.runs)
    );
    assert!(live.advice(span, &snap.runs).total.hops == 4);
}

/// Three-hop runs on a premium model whose context grows (trimming pays),
/// each a little dearer than the one before.
fn growing_runs(ids: &[&'static str]) -> Vec<Hop> {
    let mut hops = Vec::new();
    for (i, run) in ids.iter().enumerate() {
        let extra = u64::try_from(i).unwrap() * 1_000;
        hops.push(hop(run, 1, "claude-opus-4-6", 2_900, 1_000));
        hops.push(hop(run, 2, "claude-opus-4-6", 9_000 + extra, 400));
        hops.push(hop(run, 3, "claude-opus-4-6", 20_000 + extra, 400));
    }
    hops
}

#[test]
fn final_runs_give_the_same_advice_keeping_only_the_evidence() {
    let snap = snapshot(&growing_runs(&["a", "b", "c", "d", "e", "f", "g"]));
    let span = snap.first_ts_ms.zip(snap.last_ts_ms);
    let book = PriceBook::embedded();
    let (mut live, mut last) = (
        Advisor::new(AdvisorRules::default(), BleedRules::default(), &book),
        Advisor::new(AdvisorRules::default(), BleedRules::default(), &book),
    );
    for run in &snap.runs {
        live.observe(run);
        last.observe_final([&**run]);
    }
    let advice = live.advice(span, &snap.runs);
    assert_eq!(advice, last.advice(span, &snap.runs));
    assert_eq!(last.runs_held(), 0);
    // seven runs, five named: the dearest, with their hops
    let trim = rec(&advice, Lever::Trim);
    assert_eq!(trim.runs, 7);
    assert_eq!(trim.evidence.len(), EVIDENCE_RUNS);
    assert_eq!(&*trim.evidence[0].run_id, "g");
    assert_eq!(trim.evidence[0].hops, vec![2, 3]);
}

/// A run the ledger let go stays in every sum but is no longer named as
/// evidence, in every recommendation it was part of; the others still are.
#[test]
fn a_frozen_run_stays_in_the_sums_and_leaves_the_evidence() {
    let snap = snapshot(&growing_runs(&["a", "b", "c"]));
    let span = snap.first_ts_ms.zip(snap.last_ts_ms);
    let mut advisor = observing(AdvisorRules::default(), &snap);
    let before = advisor.advice(span, &snap.runs);
    let named = |advice: &Advice| -> Vec<Vec<String>> {
        advice
            .recommendations
            .iter()
            .map(|r| r.evidence.iter().map(|e| e.run_id.to_string()).collect())
            .collect()
    };
    assert!(
        named(&before)
            .iter()
            .any(|ids| ids.contains(&"c".to_owned()))
    );
    advisor.freeze("c");
    assert_eq!(advisor.runs_held(), 2);
    let after = advisor.advice(span, &snap.runs);
    assert_eq!(after.total, before.total);
    for (was, now) in named(&before).into_iter().zip(named(&after)) {
        let kept: Vec<String> = was.into_iter().filter(|id| id != "c").collect();
        assert_eq!(now, kept);
    }
    assert_eq!(rec(&after, Lever::Trim).runs, 3);
}

#[test]
fn advisors_merged_say_what_one_advisor_over_all_runs_says() {
    // runs of two agents on three models, twins (equal savings: the
    // evidence's ties go by run id), cache breaks, more runs than evidence
    let names: Vec<&'static str> = (0..32)
        .map(|i| &*Box::leak(format!("r{i:02}").into_boxed_str()))
        .collect();
    let mut hops = Vec::new();
    for (i, run) in names.into_iter().enumerate() {
        let n = u64::try_from(i).unwrap();
        let extra = (n % 4) * 1_000;
        let model = ["claude-opus-4-6", "gpt-4.1", "claude-sonnet-4-5"][i / 2 % 3];
        let agent = if i % 2 == 0 { "planner" } else { "coder" };
        for (k, input) in [2_900, 9_000 + extra, 20_000 + extra, 30_000]
            .into_iter()
            .enumerate()
        {
            let mut h = hop(run, u32::try_from(k).unwrap() + 1, model, input, 400);
            h.agent = agent;
            if i % 5 == 0 && k == 1 {
                h.usage.cache_read = 2_000;
            }
            if i % 4 == 1 {
                h.task = Some("classify");
                h.usage.reasoning = 300;
            }
            hops.push(h);
        }
    }
    let snap = snapshot(&hops);
    let span = snap.first_ts_ms.zip(snap.last_ts_ms);
    let book = PriceBook::embedded();
    let rules = AdvisorRules {
        min_saving_share: 0.0,
        ..AdvisorRules::default()
    };
    let fed = |runs: &[Arc<RunAgg>]| {
        let mut advisor = Advisor::new(rules.clone(), BleedRules::default(), &book);
        advisor.observe_final(runs.iter().map(|run| &**run));
        advisor
    };
    let one = fed(&snap.runs).advice(span, &snap.runs);
    assert!(one.recommendations.len() > 3);
    assert!(one.cache_break_runs > 0);
    assert!(
        one.recommendations
            .iter()
            .any(|r| r.runs > EVIDENCE_RUNS as u64)
    );
    for cut in 0..=snap.runs.len() {
        let (a, b) = snap.runs.split_at(cut);
        let mut merged = fed(a);
        merged.merge(fed(b));
        assert_eq!(merged.advice(span, &snap.runs), one, "cut at {cut}");
        // in the other order
        let mut merged = fed(b);
        merged.merge(fed(a));
        assert_eq!(
            merged.advice(span, &snap.runs),
            one,
            "cut at {cut}, reversed"
        );
    }
    // three ways, interleaved
    let parts: Vec<Vec<Arc<RunAgg>>> = (0..3)
        .map(|p| snap.runs.iter().skip(p).step_by(3).cloned().collect())
        .collect();
    let mut merged = fed(&parts[2]);
    merged.merge(fed(&parts[0]));
    merged.merge(fed(&parts[1]));
    assert_eq!(merged.advice(span, &snap.runs), one);
}

/// A report's batch keys its sums by the addresses of names: names equal
/// in text but not shared (two ledgers) must still meet, and a batch that
/// outgrows the price memo (distinct identities past its bound) must lose
/// nothing when the memo is forgotten between runs.
#[test]
fn a_batch_of_final_runs_adds_up_by_name_past_the_memo_bound() {
    let mut first = Vec::new();
    let mut second = Vec::new();
    for i in 0..4_400_u32 {
        let run: &'static str = Box::leak(format!("r{i}").into_boxed_str());
        let agent: &'static str = Box::leak(format!("agent-{}", i % 4_000).into_boxed_str());
        let model = if i % 3 == 0 {
            "claude-opus-4-6"
        } else {
            "gpt-4.1"
        };
        let hops = if i % 2 == 0 { &mut first } else { &mut second };
        for (n, input) in [(1, 3_000), (2, 9_000 + u64::from(i)), (3, 21_000)] {
            hops.push(Hop {
                agent,
                task: (i % 5 == 0).then_some("classify"),
                ..hop(run, n, model, input, 300)
            });
        }
    }
    let (a, b) = (snapshot(&first), snapshot(&second));
    let runs: Vec<Arc<RunAgg>> = a.runs.iter().chain(&b.runs).cloned().collect();
    let shared = |name: fn(&HopAgg) -> &Arc<str>| {
        a.runs
            .iter()
            .zip(&b.runs)
            .any(|(x, y)| Arc::ptr_eq(name(&x.hops[0]), name(&y.hops[0])))
    };
    assert!(!shared(model_of), "two ledgers: the names are not shared");
    let span = Some((T0, T0 + 3_000));
    let book = PriceBook::embedded();
    let rules = AdvisorRules {
        min_saving_share: 0.0,
        ..AdvisorRules::default()
    };
    let mut live = Advisor::new(rules.clone(), BleedRules::default(), &book);
    for run in &runs {
        live.observe(run);
    }
    let mut batch = Advisor::new(rules, BleedRules::default(), &book);
    batch.observe_final(runs.iter().map(|run| &**run));
    assert!(batch.pricer.forgot > 0, "the memo bound was passed");
    let (live, batch) = (live.advice(span, &runs), batch.advice(span, &runs));
    assert_eq!(live.total.runs, 4_400);
    assert_eq!(live.by_agent.len(), 4_000);
    assert!(live.recommendations.len() > 3);
    assert_eq!(live, batch);
}

#[test]
fn scaling_a_large_amount_to_a_part_of_it_is_exact_where_the_product_overflows() {
    // the hostile hop: input worth 2^100 picodollars, nearly all of it carried
    let input_cost = Usd::from_picos(1 << 100);
    let whole = u64::MAX;
    let part = u64::MAX - 1;
    // 2^100 × (whole - 1) ÷ whole = 2^100 - 2^100 ÷ whole, where 2^100 ÷ whole is a
    // little over 2^36: toward zero, 2^100 - 2^36 - 1
    let expected = (1_i128 << 100) - (1 << 36) - 1;
    assert_eq!(scale(input_cost, part, whole), Usd::from_picos(expected));
    assert_eq!(scale(input_cost, whole, whole), input_cost);
    assert_eq!(
        scale(Usd::from_picos(-(1 << 100)), part, whole),
        Usd::from_picos(-expected)
    );
    assert_eq!(
        scale(Usd::from_picos(i128::MAX), 1, 1),
        Usd::from_picos(i128::MAX)
    );
}

#[test]
fn scaling_an_amount_is_the_product_over_the_whole_toward_zero() {
    for (picos, part, whole) in [
        (1_000_i128, 1_u64, 3_u64),
        (1_000, 2, 3),
        (-1_000, 2, 3),
        (7, 0, 5),
        (123_456_789, 4_000, 10_000),
        (-123_456_789, 9_999, 10_000),
        (5, 3, 0),
        // either side of 64 bits: the amount, and the product
        (i128::from(u64::MAX), 1, 3),
        (i128::from(u64::MAX) + 1, 2, 3),
        (1 << 40, 1 << 30, 7),
        ((1 << 40) - 1, (1 << 24) - 1, 1 << 24),
    ] {
        let expected = if whole == 0 {
            0
        } else {
            picos * i128::from(part) / i128::from(whole)
        };
        assert_eq!(
            scale(Usd::from_picos(picos), part, whole),
            Usd::from_picos(expected),
            "{picos} × {part} ÷ {whole}"
        );
    }
}
