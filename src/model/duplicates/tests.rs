use super::*;

fn usd(text: &str) -> Usd {
    Usd::parse_decimal(text).unwrap()
}

fn call(run: &str, hop: u32, agent: u32, cost: Option<&str>) -> CallRef {
    CallRef {
        run_id: Arc::from(run),
        hop,
        agent,
        cost: cost.map(usd),
    }
}

fn text(t: &str) -> PromptPrint {
    PromptPrint::of_text(t)
}

fn name(agent: u32) -> Arc<str> {
    Arc::from(format!("agent-{agent}"))
}

/// A deterministic stream of 64-bit values (SplitMix64).
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn raw(exact: u64, near: Option<u64>) -> PromptPrint {
    PromptPrint {
        exact: NonZeroU64::new(exact.max(1)).unwrap(),
        near: near.and_then(NonZeroU64::new),
    }
}

#[test]
fn first_sights_exact_and_near_repeats_and_their_avoidable_spend() {
    let mut index = DuplicateIndex::new(DuplicateRules::default());
    let q = "How do I reset my password?";
    assert_eq!(
        index.observe(text(q), &call("r1", 1, 0, Some("0.010")), None),
        Sight::First
    );
    // Case and spacing: exact.
    let again = "how do I reset my  PASSWORD?";
    assert_eq!(
        index.observe(text(again), &call("r2", 1, 1, Some("0.012")), None),
        Sight::Exact
    );
    // Punctuation: near (same words, distance 0).
    let near = "How do I reset my password";
    assert_eq!(
        index.observe(text(near), &call("r3", 1, 1, Some("0.020")), None),
        Sight::Near
    );
    // Its exact repeat is an exact duplicate, in the first sight's group.
    assert_eq!(
        index.observe(text(near), &call("r4", 1, 0, None), None),
        Sight::Exact
    );
    // Something else.
    let other = "Which plans include single sign-on for the whole team?";
    assert_eq!(
        index.observe(text(other), &call("r5", 1, 0, Some("1")), None),
        Sight::First
    );
    let s = index.summary(TOP_GROUPS, name);
    assert_eq!(
        (s.prompts, s.first, s.exact, s.near, s.unpriced_exact),
        (5, 2, 2, 1, 1)
    );
    assert_eq!(s.avoidable_exact, usd("0.012"));
    assert_eq!(s.avoidable_near, usd("0.020"));
    assert_eq!(s.avoidable(), usd("0.032"));
    assert_eq!(s.top_groups.len(), 1);
    let g = &s.top_groups[0];
    assert_eq!(g.print, format!("{:016x}", text(q).exact.get()));
    assert_eq!((g.repeats, g.exact, g.near, g.unpriced), (3, 2, 1, 1));
    assert_eq!(g.avoidable, usd("0.032"));
    assert_eq!(g.agents, [name(1), name(0)]);
    assert_eq!(g.first, Some((Arc::from("r1"), 1)));
    assert_eq!(s.by_agent.len(), 2);
    assert_eq!(s.by_agent[0].agent, name(1));
    assert_eq!(s.by_agent[0].avoidable, usd("0.032"));
    assert_eq!((s.by_agent[1].repeats, s.by_agent[1].unpriced), (1, 1));
}

#[test]
fn a_prompt_hash_only_matches_exactly() {
    let mut index = DuplicateIndex::new(DuplicateRules::default());
    let h = PromptPrint::of_hash("sha256:abc").unwrap();
    assert_eq!(
        index.observe(h, &call("r", 1, 0, Some("1")), None),
        Sight::First
    );
    assert_eq!(
        index.observe(h, &call("r", 2, 0, Some("1")), None),
        Sight::Exact
    );
    let other = PromptPrint::of_hash("sha256:abd").unwrap();
    assert_eq!(
        index.observe(other, &call("r", 3, 0, Some("1")), None),
        Sight::First
    );
}

#[test]
fn max_hamming_0_takes_only_identical_word_sets() {
    let rules = DuplicateRules {
        max_hamming: 0,
        ..DuplicateRules::default()
    };
    let mut index = DuplicateIndex::new(rules);
    index.observe(raw(1, Some(0b1011)), &call("r", 1, 0, None), None);
    assert_eq!(
        index.observe(raw(2, Some(0b1010)), &call("r", 2, 0, None), None),
        Sight::First
    );
    assert_eq!(
        index.observe(raw(3, Some(0b1011)), &call("r", 3, 0, None), None),
        Sight::Near
    );
}

#[test]
fn banding_finds_every_print_within_k_bits() {
    // (k, prints stored): at k = 16 the bands are 3 or 4 bits wide, and
    // more than PROBES prints in a bucket would be past the recall promised.
    for (k, n) in [
        (0, 2_000),
        (1, 2_000),
        (3, 2_000),
        (5, 2_000),
        (7, 2_000),
        (16, 256),
    ] {
        let mut near = NearIndex::new(k);
        let mut next = rng(u64::from(k) + 7);
        let stored: Vec<u64> = (0..n).map(|_| next()).collect();
        for (i, &p) in stored.iter().enumerate() {
            near.insert(p, i as u64, i as u64 + 1);
        }
        for (i, &p) in stored.iter().enumerate() {
            // Flip exactly `flips` distinct bits, 0 to k.
            let flips = (next() % u64::from(k + 1)) as u32;
            let mut query = p;
            while hamming(query, p) < flips {
                query ^= 1 << (next() % 64);
            }
            let found = near.find(query, k, 10_000 + i as u64);
            let group = found.unwrap_or_else(|| panic!("k={k}: missed a print {flips} bits away"));
            // Another stored print may be as close only by chance.
            assert!(hamming(stored[group as usize], query) <= k);
        }
    }
}

#[test]
fn banding_finds_nothing_beyond_k() {
    let mut near = NearIndex::new(3);
    near.insert(0, 1, 1);
    assert_eq!(near.find(0b1111, 3, 2), None);
    assert_eq!(near.find(0b0111, 3, 3), Some(1));
    assert_eq!(near.find(u64::MAX, 3, 4), None);
}

#[test]
fn near_index_removal_keeps_buckets_linked() {
    let mut near = NearIndex::new(3);
    // Same lowest band for all: one bucket of three in band 0.
    for (i, p) in [0x0001_u64, 0x1_0001, 0x2_0001].into_iter().enumerate() {
        near.insert(p << 16 | 0x0001, i as u64, i as u64 + 1);
    }
    near.remove(1);
    assert_eq!(near.len(), 2);
    assert_eq!(near.find(0x2_0001 << 16 | 0x0001, 0, 10), Some(2));
    assert_eq!(near.find(0x0001 << 16 | 0x0001, 0, 11), Some(0));
    assert_eq!(near.find(0x1_0001 << 16 | 0x0001, 0, 12), None);
    near.remove(0);
    near.remove(2);
    assert!(near.heads.iter().all(HashMap::is_empty));
    // Freed slots are reused.
    near.insert(5, 9, 13);
    assert_eq!(near.slots.len(), 3);
    assert_eq!(near.find(5, 0, 14), Some(9));
}

#[test]
fn memory_stays_within_the_capacity_under_a_million_distinct_prompts() {
    let capacity = 1_000;
    let mut index = DuplicateIndex::new(DuplicateRules {
        max_hamming: 3,
        capacity,
    });
    let mut next = rng(42);
    let c = call("r", 1, 0, Some("0.000001"));
    for i in 0..1_000_000_u64 {
        // Revisable every 7th call: marks are bounded too.
        let key = (i % 7 == 0).then_some(i);
        let print = raw(next(), Some(next()));
        index.observe(print, &c, key);
        if i % 50_000 == 0 {
            // A repeat of a recent one now and then: groups fill too.
            index.observe(print, &c, None);
        }
        let (exact, near, groups, marks) = index.held();
        assert!(exact <= capacity && near <= capacity, "{exact} {near}");
        assert!(groups <= capacity && marks <= capacity);
    }
    let s = index.summary(TOP_GROUPS, name);
    assert_eq!(s.prompts, 1_000_020);
    assert_eq!(s.exact, 20);
    assert!(s.forgotten >= 1_000_000 - capacity as u64);
    assert!(index.near.slots.len() <= capacity + 1);
}

#[test]
fn the_least_recently_matched_prints_go_first() {
    let mut index = DuplicateIndex::new(DuplicateRules {
        max_hamming: 3,
        capacity: 16,
    });
    let c = call("r", 1, 0, Some("1"));
    let keep = raw(1_000, None);
    index.observe(keep, &c, None);
    for i in 0..100 {
        index.observe(raw(i + 2_000, None), &c, None);
        // Matched again and again: never the least recent.
        index.observe(keep, &c, None);
    }
    assert_eq!(index.observe(keep, &c, None), Sight::Exact);
    assert_eq!(index.observe(raw(2_000, None), &c, None), Sight::First);
}

#[test]
fn a_retracted_repeat_takes_its_avoidable_spend_back() {
    let mut index = DuplicateIndex::new(DuplicateRules::default());
    let p = text("What is the refund policy for late orders?");
    index.observe(p, &call("r", 1, 0, Some("0.5")), Some(10));
    index.observe(p, &call("r", 2, 1, Some("0.25")), Some(11));
    index.observe(p, &call("r", 3, 1, None), Some(12));
    let before = index.summary(TOP_GROUPS, name);
    assert_eq!(before.avoidable(), usd("0.25"));
    index.retract(11);
    index.retract(12);
    // Unknown keys and a second take-back change nothing.
    index.retract(11);
    index.retract(99);
    let s = index.summary(TOP_GROUPS, name);
    assert_eq!((s.prompts, s.first, s.exact, s.unpriced()), (1, 1, 0, 0));
    assert_eq!(s.avoidable(), Usd::ZERO);
    assert!(s.top_groups.is_empty(), "{:?}", s.top_groups);
    assert!(s.by_agent.is_empty());
    // The first sight taken back: its print stays remembered.
    index.retract(10);
    assert_eq!(
        index.observe(p, &call("r", 4, 0, Some("1")), None),
        Sight::Exact
    );
    let s = index.summary(TOP_GROUPS, name);
    assert_eq!((s.prompts, s.first, s.exact), (1, 0, 1));
    assert_eq!(s.avoidable(), usd("1"));
}

#[test]
fn a_replaced_repeat_moves_its_spend_to_the_new_cost_and_agent() {
    let mut index = DuplicateIndex::new(DuplicateRules::default());
    let p = text("Summarize ticket 4411");
    index.observe(p, &call("r", 1, 0, Some("0.5")), Some(1));
    index.observe(p, &call("r", 2, 0, Some("0.25")), Some(2));
    index.replace(2, 3, 5, Some(usd("0.75")));
    // The old key is gone, the new one can be revised again.
    index.replace(2, 4, 6, Some(usd("9")));
    let s = index.summary(TOP_GROUPS, name);
    assert_eq!((s.prompts, s.exact), (2, 1));
    assert_eq!(s.avoidable(), usd("0.75"));
    assert_eq!(s.by_agent.len(), 1);
    assert_eq!(s.by_agent[0].agent, name(5));
    index.replace(3, 4, 5, None);
    let s = index.summary(TOP_GROUPS, name);
    assert_eq!((s.avoidable(), s.unpriced()), (Usd::ZERO, 1));
    index.retract(4);
    let s = index.summary(TOP_GROUPS, name);
    assert_eq!((s.prompts, s.exact, s.unpriced()), (1, 0, 0));
    // Replacing a first sight changes no sum.
    index.replace(1, 7, 0, Some(usd("2")));
    assert_eq!(index.summary(TOP_GROUPS, name).first, 1);
}

#[test]
fn groups_are_listed_by_avoidable_spend() {
    let mut index = DuplicateIndex::new(DuplicateRules::default());
    let c = |cost| call("r", 1, 0, Some(cost));
    for (print, cost, times) in [(1, "1", 3), (2, "5", 1), (3, "0.5", 2)] {
        for _ in 0..=times {
            index.observe(raw(print, None), &c(cost), None);
        }
    }
    let s = index.summary(2, name);
    let listed: Vec<(String, Usd)> = s
        .top_groups
        .iter()
        .map(|g| (g.print.clone(), g.avoidable))
        .collect();
    assert_eq!(
        listed,
        [
            (format!("{:016x}", 2), usd("5")),
            (format!("{:016x}", 1), usd("3")),
        ]
    );
    assert_eq!(s.avoidable(), usd("9"));
}

mod through_the_ledger {
    //! The ledger feeds the index once per counted call, and revises it
    //! when `ingest::dedup` replaces or takes a call back.

    use super::*;
    use crate::ingest::dedup::{CallRegistry, Settled};
    use crate::model::{Ledger, LedgerConfig};
    use crate::pricing::PriceBook;
    use crate::types::event::{CallId, Format, Supersede, TelemetryEvent};
    use crate::types::usage::Usage;

    fn event(
        hop: u32,
        agent: &'static str,
        prompt: &str,
        cost: &str,
        call: Option<CallId>,
    ) -> TelemetryEvent<'static> {
        let usage = Usage {
            input_uncached: 100,
            output: 10,
            ..Usage::default()
        };
        TelemetryEvent {
            ts_ms: Some(1_772_445_600_000),
            reported_cost: Some(usd(cost)),
            format: Format::Otlp,
            call,
            prompt: Some(text(prompt)),
            ..TelemetryEvent::hop_for_test("r", hop, agent, "gpt-4.1", usage)
        }
    }

    fn id(key: u64, rule: Supersede) -> CallId {
        CallId {
            key,
            attempt: 0,
            replay: false,
            rule,
            pin: false,
        }
    }

    fn summary(ledger: &Ledger) -> DuplicateSummary {
        ledger.snapshot().duplicates.map(|s| (*s).clone()).unwrap()
    }

    #[test]
    fn no_prompt_no_summary() {
        let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
        let mut e = event(1, "a", "x", "1", None);
        e.prompt = None;
        ledger.apply(&e);
        assert!(ledger.snapshot().duplicates.is_none());
    }

    #[test]
    fn replaced_and_retracted_calls_never_count_twice() {
        let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
        let mut calls = CallRegistry::default();
        let q = "What changed in the March release?";
        ledger.apply(&event(1, "a", q, "0.10", None));
        let largest = id(7, Supersede::Largest);
        let first = event(2, "b", q, "0.20", Some(largest));
        assert_eq!(
            calls.settle(largest, &first, true, &mut ledger),
            Settled::Counted
        );
        assert_eq!(summary(&ledger).avoidable(), usd("0.20"));
        // A larger report of the same call replaces it: still one hit, at
        // its new cost and agent (observed again, it would match itself).
        let mut larger = event(2, "c", q, "0.30", Some(largest));
        larger.usage.output = 20;
        assert_eq!(
            calls.settle(largest, &larger, true, &mut ledger),
            Settled::Revised
        );
        let s = summary(&ledger);
        assert_eq!((s.prompts, s.first, s.exact), (2, 1, 1));
        assert_eq!(s.avoidable(), usd("0.30"));
        assert_eq!(s.by_agent.len(), 1);
        assert_eq!(&*s.by_agent[0].agent, "c");
        // Taken back: the hit goes with it.
        let retract = id(7, Supersede::Retract);
        assert_eq!(
            calls.settle(retract, &larger, true, &mut ledger),
            Settled::Revised
        );
        let s = summary(&ledger);
        assert_eq!((s.prompts, s.first, s.exact), (1, 1, 0));
        assert_eq!(s.avoidable(), Usd::ZERO);
        assert!(s.top_groups.is_empty());
        // A plain repeat of a report already counted changes nothing.
        let again = id(8, Supersede::Largest);
        let e = event(3, "a", q, "0.05", Some(again));
        calls.settle(again, &e, true, &mut ledger);
        assert_eq!(
            calls.settle(again, &e, true, &mut ledger),
            Settled::Duplicate
        );
        assert_eq!(summary(&ledger).avoidable(), usd("0.05"));
    }
}

#[test]
fn entries_stay_the_size_docs_insights_md_gives() {
    // Per entry, before the hash tables' own byte and slack: exact print
    // 8 + 40, near slot 24 (+ 8 per band of links), group 8 + 96, mark 8 + 64.
    assert_eq!(std::mem::size_of::<Seen>(), 40);
    assert_eq!(std::mem::size_of::<Slot>(), 24);
    assert!(std::mem::size_of::<Group>() <= 96);
    assert!(std::mem::size_of::<Mark>() <= 64);
    // A decoded event in a batch has no room for a print: it holds an index.
    assert!(crate::ingest::parsed::rel_event_size() <= 216);
}
