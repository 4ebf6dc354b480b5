use super::*;

/// A 200-word prompt of varied words (a fixed pseudo-random sequence, so
/// the test is deterministic).
fn long_prompt() -> Vec<String> {
    const VOCABULARY: &[&str] = &[
        "the",
        "customer",
        "asked",
        "about",
        "refund",
        "policy",
        "for",
        "orders",
        "shipped",
        "late",
        "and",
        "whether",
        "a",
        "partial",
        "credit",
        "applies",
        "when",
        "items",
        "arrive",
        "damaged",
        "please",
        "summarize",
        "ticket",
        "history",
        "include",
        "dates",
        "amounts",
        "agent",
        "notes",
        "escalation",
        "status",
        "priority",
        "region",
        "warehouse",
        "carrier",
        "tracking",
        "number",
        "invoice",
        "tax",
        "currency",
        "discount",
        "coupon",
        "loyalty",
        "tier",
        "account",
        "email",
        "phone",
        "address",
        "billing",
        "subscription",
        "renewal",
        "cancel",
        "pause",
        "upgrade",
        "downgrade",
        "plan",
        "monthly",
        "annual",
        "trial",
        "seat",
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..200)
        .map(|_| {
            state = mix(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
            VOCABULARY[(state % VOCABULARY.len() as u64) as usize].to_owned()
        })
        .collect()
}

fn near(text: &str) -> u64 {
    PromptPrint::of_text(text).near.map_or(0, NonZeroU64::get)
}

#[test]
fn the_hash_is_fnv1a_64_then_splitmix() {
    // FNV-1a 64 test vectors (before the finalizer): "" and "a".
    assert_eq!(Fnv::new().0, 0xcbf2_9ce4_8422_2325);
    let mut a = Fnv::new();
    a.bytes(b"a");
    assert_eq!(a.0, 0xaf63_dc4c_8601_ec8c);
    let mut foobar = Fnv::new();
    foobar.bytes(b"foobar");
    assert_eq!(foobar.0, 0x8594_4171_f739_67e8);
    // Pinned outputs: a change here changes every saved report's prints.
    assert_eq!(stable_hash(b""), mix(0xcbf2_9ce4_8422_2325));
    assert_eq!(stable_hash(b"a"), mix(0xaf63_dc4c_8601_ec8c));
}

#[test]
fn normalization_lowercases_collapses_whitespace_and_trims() {
    assert_eq!(
        normalize("  What IS\tthe\n\n Refund   POLICY? "),
        "what is the refund policy?"
    );
    assert_eq!(normalize("ÉCOLE  Straße"), "école straße");
    // Non-ASCII whitespace collapses too; digits and punctuation stay.
    assert_eq!(normalize("order\u{a0}\u{2003}#42!"), "order #42!");
    assert_eq!(normalize(" \t\n"), "");
    assert_eq!(
        words("What's the refund-policy for order #42?"),
        ["what", "s", "the", "refund", "policy", "for", "order", "42"]
    );
}

#[test]
fn the_exact_print_is_the_hash_of_the_normalized_text() {
    for text in ["", "  Hello,   World! ", "ÀB\tc", "a\u{130}b", "x  y\n"] {
        let mut domain = vec![0_u8];
        domain.extend_from_slice(normalize(text).as_bytes());
        assert_eq!(
            PromptPrint::of_text(text).exact.get(),
            stable_hash(&domain).max(1),
            "{text:?}"
        );
    }
}

#[test]
fn case_and_whitespace_are_exact_duplicates_punctuation_is_near() {
    let a = PromptPrint::of_text("How do I reset my password?");
    let b = PromptPrint::of_text("  how do i RESET my   password?\n");
    let c = PromptPrint::of_text("How do I reset my password");
    assert_eq!(a, b);
    assert_ne!(a.exact, c.exact);
    // Same words: same SimHash.
    assert_eq!(a.near, c.near);
    assert!(a.near.is_some());
}

#[test]
fn identical_texts_have_identical_prints_and_no_words_no_near_print() {
    let text = long_prompt().join(" ");
    assert_eq!(PromptPrint::of_text(&text), PromptPrint::of_text(&text));
    assert_eq!(PromptPrint::of_text("?!  ...").near, None);
    assert_eq!(PromptPrint::of_text("").near, None);
}

#[test]
fn one_word_changed_in_200_stays_within_3_bits() {
    let words = long_prompt();
    let base = near(&words.join(" "));
    let mut changed = words.clone();
    changed[100] = "zebra".to_owned();
    let distance = hamming(base, near(&changed.join(" ")));
    assert!(distance <= 3, "{distance}");
    // At every position (the SimHash is a statistical estimate: in theory
    // a one-word change in 200 flips about 2 bits on average).
    let mut within = 0;
    let mut worst = 0;
    for i in 0..words.len() {
        let mut changed = words.clone();
        changed[i] = "zebra".to_owned();
        let d = hamming(base, near(&changed.join(" ")));
        worst = worst.max(d);
        within += usize::from(d <= 3);
    }
    assert_eq!(within, 200, "worst {worst}");
}

#[test]
fn unrelated_texts_are_far_apart() {
    let a = near(&long_prompt().join(" "));
    let b = near(
        "Write a sonnet about the autumn sea, the gulls that wheel above the harbour \
         wall, and fishing boats returning late with nets hung out to dry beneath a copper sky",
    );
    let c = near("SELECT id, name FROM users WHERE created_at > now() - interval '1 day'");
    for (x, y) in [(a, b), (a, c), (b, c)] {
        let d = hamming(x, y);
        assert!(d >= 16, "{d}");
    }
}

#[test]
fn prompt_hash_prints_are_exact_only_and_never_meet_text_prints() {
    let h = PromptPrint::of_hash("  9f86d081884c7d65  ").unwrap_or_else(|| unreachable!());
    assert_eq!(Some(h), PromptPrint::of_hash("9f86d081884c7d65"));
    assert_eq!(h.near, None);
    assert_eq!(PromptPrint::of_hash(" "), None);
    assert_ne!(h.exact, PromptPrint::of_text("9f86d081884c7d65").exact);
    let both = PromptPrint::of_record(Some("Reset my password"), Some("9f86d081884c7d65"));
    assert_eq!(
        both,
        Some(PromptPrint {
            exact: h.exact,
            near: PromptPrint::of_text("Reset my password").near,
        })
    );
    assert_eq!(PromptPrint::of_record(None, None), None);
    assert_eq!(PromptPrint::of_record(None, Some("")), None);
}

#[test]
fn a_print_option_is_16_bytes() {
    assert_eq!(std::mem::size_of::<Option<PromptPrint>>(), 16);
}
