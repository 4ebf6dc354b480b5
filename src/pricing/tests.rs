//! Pricing rules and the oracles of formats.md §9.

use super::*;

fn usd(text: &str) -> Usd {
    Usd::parse_decimal(text).unwrap()
}

fn usage(uncached: u64, read: u64, write_5m: u64, write_1h: u64, output: u64) -> Usage {
    Usage {
        input_uncached: uncached,
        cache_read: read,
        cache_write_5m: write_5m,
        cache_write_1h: write_1h,
        output,
        reasoning: 0,
    }
}

fn cost(book: &PriceBook, model: &str, usage: &Usage) -> Usd {
    book.price(model, usage)
        .unwrap_or_else(|| panic!("{model} should be priced"))
        .cost
}

#[test]
fn embedded_table_parses_and_is_dated() {
    let book = PriceBook::embedded();
    assert!(!book.version().is_empty());
    assert!(
        book.version().starts_with("20"),
        "version is a date: {}",
        book.version()
    );
}

#[test]
fn embedded_table_covers_the_required_families() {
    let book = PriceBook::embedded();
    for model in [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o3",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "claude-3-5-haiku",
        "claude-3-5-sonnet",
        "claude-3-7-sonnet",
        "claude-sonnet-4",
        "claude-opus-4",
        "claude-opus-4-1",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "claude-opus-4-5",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
    ] {
        assert!(
            book.resolve(model).is_some(),
            "{model} missing from the embedded table"
        );
    }
}

#[test]
fn oracle_a_gpt_4o_mini_with_cache_reads() {
    let book = PriceBook::embedded();
    assert_eq!(
        cost(&book, "gpt-4o-mini", &usage(4263 - 4096, 4096, 0, 0, 529)),
        usd("0.00064965")
    );
}

#[test]
fn oracle_b_gpt_5_2_codex_responses() {
    let book = PriceBook::embedded();
    assert_eq!(
        cost(
            &book,
            "gpt-5.2-codex",
            &usage(16909 - 15744, 15744, 0, 0, 54)
        ),
        usd("0.00554995")
    );
}

#[test]
fn oracle_c_sonnet_cache_write_5m() {
    let book = PriceBook::embedded();
    let u = usage(3, 0, 141_272, 0, 365);
    assert_eq!(
        cost(&book, "claude-sonnet-4-5-20250929", &u),
        usd("0.535254")
    );
    assert_eq!(cost(&book, "claude-sonnet-4", &u), usd("0.535254"));
}

#[test]
fn oracle_d_one_hour_writes_bill_at_twice_input() {
    let litellm = r#"{"test-model": {"input_cost_per_token": 1.0, "output_cost_per_token": 2.0,
        "cache_creation_input_token_cost": 1.25, "cache_read_input_token_cost": 0.1}}"#;
    let book =
        PriceBook::embedded().with_override(PriceBook::parse_override(litellm, "t.json").unwrap());
    assert_eq!(
        cost(&book, "test-model", &usage(0, 30, 10, 20, 0)),
        usd("55.5")
    );
}

#[test]
fn oracle_e_gpt_5_codex() {
    let book = PriceBook::embedded();
    assert_eq!(
        cost(
            &book,
            "gpt-5-codex",
            &usage(24763 - 24448, 24448, 0, 0, 122)
        ),
        usd("0.00466975")
    );
}

#[test]
fn oracle_f_long_context_is_all_or_nothing_on_total_input() {
    let book = PriceBook::embedded();
    let quote = book
        .price(
            "claude-sonnet-4-20250514",
            &usage(150_000, 60_000, 0, 0, 1000),
        )
        .unwrap();
    assert!(quote.long_context);
    assert_eq!(quote.cost, usd("0.9585"));
}

#[test]
fn long_context_threshold_is_exclusive_and_counts_cache_writes() {
    let book = PriceBook::embedded();
    let at = book
        .price("claude-sonnet-4", &usage(200_000, 0, 0, 0, 0))
        .unwrap();
    assert!(!at.long_context, "exactly the threshold is standard");
    assert_eq!(at.cost, usd("0.6"));
    let over = book
        .price("claude-sonnet-4", &usage(1, 0, 200_000, 0, 0))
        .unwrap();
    assert!(over.long_context, "cache writes count toward the threshold");
    assert_eq!(over.cost, usd("0.000006") + usd("1.5"));
}

#[test]
fn one_hour_writes_are_not_priced_as_five_minute_writes() {
    let book = PriceBook::embedded();
    let five = cost(&book, "claude-sonnet-4-5", &usage(0, 0, 100_000, 0, 0));
    let hour = cost(&book, "claude-sonnet-4-5", &usage(0, 0, 0, 100_000, 0));
    assert_eq!(five, usd("0.375"));
    assert_eq!(hour, usd("0.6"));
}

#[test]
fn reasoning_tokens_are_not_billed_twice() {
    let book = PriceBook::embedded();
    let mut with_reasoning = usage(1000, 0, 0, 0, 500);
    let plain = cost(&book, "o3", &with_reasoning);
    with_reasoning.reasoning = 400;
    assert_eq!(cost(&book, "o3", &with_reasoning), plain);
}

#[test]
fn names_match_with_provider_prefix_date_suffix_and_case() {
    let book = PriceBook::embedded();
    let base = book.resolve("gpt-4o-mini").unwrap();
    assert_eq!(book.resolve("openai/gpt-4o-mini"), Some(base));
    assert_eq!(book.resolve("GPT-4o-Mini"), Some(base));
    assert_eq!(book.resolve("gpt-4o-mini-2024-07-18"), Some(base));
    assert_eq!(book.resolve("openrouter/openai/gpt-4o-mini"), Some(base));
    let sonnet = book.resolve("claude-sonnet-4").unwrap();
    assert_eq!(
        book.resolve("anthropic/claude-sonnet-4-20250514"),
        Some(sonnet)
    );
    assert_eq!(
        book.resolve("us.anthropic.claude-sonnet-4-20250514"),
        Some(sonnet)
    );
    assert_eq!(book.resolve("claude-sonnet-4@20250514"), Some(sonnet));
}

#[test]
fn never_falls_back_to_another_model() {
    let book = PriceBook::embedded();
    for unknown in [
        "gpt-4o-mini-turbo-ultra",
        "claude-sonnet-9",
        "claude",
        "gpt",
        "llama-3.1-70b",
        "",
        "gpt-4o-mini-2024",
    ] {
        assert_eq!(book.resolve(unknown), None, "{unknown} must be unpriced");
    }
}

#[test]
fn date_stripping_only_removes_real_dates() {
    assert_eq!(
        strip_date("claude-sonnet-4-20250514"),
        Some("claude-sonnet-4")
    );
    assert_eq!(strip_date("gpt-4o-2024-08-06"), Some("gpt-4o"));
    assert_eq!(
        strip_date("claude-3-5-sonnet-v2@20241022"),
        Some("claude-3-5-sonnet-v2")
    );
    assert_eq!(strip_date("gpt-4o"), None);
    assert_eq!(strip_date("gpt-5.2-codex"), None);
    assert_eq!(strip_date("model-1234567"), None);
}

#[test]
fn override_wins_and_records_its_own_version() {
    let own = "version = \"team-2026-11\"\n[[model]]\nname = \"gpt-4o-mini\"\ninput = 1.0\noutput = 1.0\n";
    let table = PriceBook::parse_override(own, "team.toml").unwrap();
    assert!(table.version.starts_with("team-2026-11:team.toml#"));
    let book = PriceBook::embedded().with_override(table);
    let price = book.resolve("openai/gpt-4o-mini").unwrap();
    assert!(book.version_of(price).starts_with("team-2026-11"));
    assert_eq!(
        book.quote(price, &usage(1_000_000, 0, 0, 0, 0)).cost,
        usd("1")
    );
    // models the override lacks still come from the embedded table
    let sonnet = book.resolve("claude-sonnet-4").unwrap();
    assert_eq!(book.version_of(sonnet), PriceBook::embedded().version());
    assert!(book.version().contains('+'));
}

#[test]
fn override_versions_differ_by_content() {
    let a = PriceBook::parse_override(
        r#"{"m": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6}}"#,
        "p.json",
    )
    .unwrap();
    let b = PriceBook::parse_override(
        r#"{"m": {"input_cost_per_token": 2e-6, "output_cost_per_token": 1e-6}}"#,
        "p.json",
    )
    .unwrap();
    assert_ne!(a.version, b.version);
    assert!(a.version.starts_with("litellm:p.json#"));
}

#[test]
fn unreadable_override_is_an_error_not_an_empty_table() {
    assert!(PriceBook::parse_override("{not json", "x.json").is_err());
    assert!(PriceBook::parse_override("this is = not [toml", "x.toml").is_err());
}

#[test]
fn zero_usage_costs_zero_but_is_still_priced() {
    let book = PriceBook::embedded();
    assert_eq!(
        book.price("gpt-4o", &Usage::default()).map(|q| q.cost),
        Some(Usd::ZERO)
    );
}

/// The sum of the five products, computed wide (the reference).
fn wide_cost(rates: &Rates, u: &Usage) -> i128 {
    let picos: u128 = [
        (u.input_uncached, rates.input),
        (u.cache_read, rates.cache_read),
        (u.cache_write_5m, rates.cache_write_5m),
        (u.cache_write_1h, rates.cache_write_1h),
        (u.output, rates.output),
    ]
    .iter()
    .map(|&(n, r)| u128::from(n) * u128::from(r))
    .fold(0_u128, u128::saturating_add);
    i128::try_from(picos).unwrap_or(i128::MAX)
}

#[test]
fn rates_cost_is_exact_on_both_sides_of_its_fast_path_and_saturates_past_i128() {
    let rates = |r: u64| Rates {
        input: r,
        output: r - 1,
        cache_read: r / 3,
        cache_write_5m: r / 2,
        cache_write_1h: r,
    };
    let limit = 1_u64 << 61;
    for (n, r) in [
        (3_000, 2_500_000),
        (limit - 1, limit - 1),
        (limit, 7),
        (7, limit),
        (u64::MAX / 2, 1_000_000_000_000),
        (1 << 62, 1 << 62),
    ] {
        let u = usage(n, n / 2, n / 3, n / 5, n - 1);
        let rates = rates(r);
        assert_eq!(rates.cost(&u).picos(), wide_cost(&rates, &u), "{n} × {r}");
    }
    // past i128: saturated, never wrapped
    let u = usage(u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    assert_eq!(rates(u64::MAX).cost(&u), Usd::from_picos(i128::MAX));
}
