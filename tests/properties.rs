//! Property tests (proptest) of what hostile input reaches through the public
//! API: the line framer, counters and money, `sanitize`, the control codec,
//! and the config and theme loaders. Generated inputs start from real lines
//! of `sample_logs/` and the shipped config and themes, then get mutated.
//!
//! CI runs them at proptest's default case count (256, a few seconds in
//! all); `scripts/fuzz.sh` runs each for minutes (`PROPTEST_CASES` and a
//! fresh seed per round). A failure is shrunk, saved under
//! `proptest-regressions/` (commit it) and becomes a named regression test.
//! The decoder properties (native fast path against serde, every format
//! never panicking) live beside the code, in
//! `src/ingest/formats/native/fast_path_tests.rs` and
//! `src/ingest/formats/tests.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use proptest::prelude::*;
use tokwatch::config::{Settings, ThemeFile};
use tokwatch::control::protocol::{self, Applied, Exceeded, Reply, Request, VersionedBudget};
use tokwatch::ingest::lines::{Line, LineSplitter};
use tokwatch::model::budget::{BreachAction, Limits, Scope};
use tokwatch::model::{Costing, Counters, Provenance};
use tokwatch::sanitize::sanitize;
use tokwatch::types::money::{MoneyError, PICOS_PER_USD, Usd};
use tokwatch::types::usage::Usage;
use tokwatch::ui::theme::Theme;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every line of the sample logs (the seeds of generated lines).
fn sample_lines() -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for dir in ["sample_logs", "sample_logs/teams", "sample_logs/misc"] {
        let mut paths: Vec<_> = std::fs::read_dir(repo(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(path).unwrap();
            lines.extend(
                data.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
    }
    assert!(lines.len() > 100, "{}", lines.len());
    lines
}

// ---------------------------------------------------------------- framer

/// What the framer must produce for a whole stream: lines split at `\n`,
/// one `\r` trimmed, those longer than `max` reported by length only (CR
/// trimmed too); an unterminated tail counts at the end.
fn model_lines(data: &[u8], max: usize) -> Vec<Result<Vec<u8>, u64>> {
    let mut pieces: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let tail = pieces.pop().unwrap_or_default();
    if !tail.is_empty() {
        pieces.push(tail);
    }
    pieces
        .into_iter()
        .map(|piece| {
            let line = piece.strip_suffix(b"\r").unwrap_or(piece);
            if line.len() > max {
                // An over-long line is measured without its terminator.
                Err(line.len() as u64)
            } else {
                Ok(line.to_vec())
            }
        })
        .collect()
}

fn framed(chunks: &[&[u8]], max: usize) -> Vec<Result<Vec<u8>, u64>> {
    let mut splitter = LineSplitter::new(max);
    let mut out = Vec::new();
    let mut push = |line: Line<'_>| {
        out.push(match line {
            Line::Complete(bytes) => Ok(bytes.to_vec()),
            Line::Oversized(n) => Err(n),
        });
    };
    for chunk in chunks {
        splitter.feed(chunk, &mut push);
    }
    splitter.finish(&mut push);
    out
}

/// A stream of sample lines with short random lines, CRs and long runs
/// mixed in.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let samples = sample_lines();
    let piece = prop_oneof![
        4 => proptest::sample::select(samples).prop_map(|mut l| { l.push(b'\n'); l }),
        2 => proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'x'), Just(b'{'), any::<u8>()],
            0..40,
        ),
        1 => (0_usize..600).prop_map(|n| vec![b'y'; n]),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// Cut points: chunk lengths, cycled.
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1_usize..300, 1..20)
}

fn chunked<'d>(data: &'d [u8], cuts: &[usize]) -> Vec<&'d [u8]> {
    let mut chunks = Vec::new();
    let mut rest = data;
    for len in cuts.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*len).min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

proptest! {
    /// Any chunking of a stream gives the same lines as the whole stream
    /// read at once, and both are what the line rules say.
    #[test]
    fn prop_framer_any_chunking_gives_the_same_lines(
        data in stream(),
        cuts in cuts(),
        max in prop_oneof![Just(64_usize), Just(512), Just(1 << 20)],
    ) {
        let whole = framed(&[&data], max);
        prop_assert_eq!(&whole, &model_lines(&data, max));
        let pieces = chunked(&data, &cuts);
        prop_assert_eq!(framed(&pieces, max), whole);
    }
}

// ------------------------------------------------------ counters and money

fn usage() -> impl Strategy<Value = Usage> {
    // Near the top of u64 as often as small: sums must saturate, not wrap.
    let count = prop_oneof![0_u64..100_000, (u64::MAX - 1_000)..=u64::MAX, any::<u64>()];
    (
        count.clone(),
        count.clone(),
        count.clone(),
        count.clone(),
        count.clone(),
        count,
    )
        .prop_map(
            |(input_uncached, cache_read, cache_write_5m, cache_write_1h, output, reasoning)| {
                Usage {
                    input_uncached,
                    cache_read,
                    cache_write_5m,
                    cache_write_1h,
                    output,
                    reasoning: reasoning.min(output),
                }
            },
        )
}

fn picos() -> impl Strategy<Value = i128> {
    prop_oneof![
        -1_000_000_000_000_i128..1_000_000_000_000_000,
        (i128::MAX - 1_000)..=i128::MAX,
        i128::MIN..=(i128::MIN + 1_000),
        any::<i128>(),
    ]
}

fn opt_usd() -> impl Strategy<Value = Option<Usd>> {
    proptest::option::of(picos().prop_map(Usd::from_picos))
}

fn costing() -> impl Strategy<Value = Costing> {
    (
        opt_usd(),
        opt_usd(),
        opt_usd(),
        prop_oneof![
            Just(Provenance::Reported),
            Just(Provenance::Computed),
            Just(Provenance::Estimated),
            Just(Provenance::Unpriced),
        ],
        any::<bool>(),
    )
        .prop_map(
            |(effective, computed, reported, provenance, long_context)| Costing {
                effective,
                computed,
                reported,
                provenance,
                long_context,
            },
        )
}

fn counters() -> impl Strategy<Value = Counters> {
    proptest::collection::vec((usage(), costing()), 0..4).prop_map(|calls| {
        let mut counters = Counters::default();
        for (usage, costing) in &calls {
            counters.add(usage, costing);
        }
        counters
    })
}

fn merged(a: &Counters, b: &Counters) -> Counters {
    let mut out = *a;
    out.merge(b);
    out
}

/// Each field of `sum` is the saturating sum of `a`'s and `b`'s.
fn is_saturating_sum(sum: &Counters, a: &Counters, b: &Counters) -> bool {
    let fields = |c: &Counters| {
        [
            c.events,
            c.input_tokens,
            c.uncached_input_tokens,
            c.cache_read_tokens,
            c.cache_write_tokens,
            c.cache_write_1h_tokens,
            c.output_tokens,
            c.reasoning_tokens,
            c.total_tokens,
            c.reported_events,
            c.computed_events,
            c.estimated_events,
            c.unpriced_events,
            c.unpriced_tokens,
            c.long_context_events,
        ]
    };
    let money = |c: &Counters| [c.cost, c.computed_cost, c.reported_cost];
    let counts_ok = fields(sum)
        .iter()
        .zip(fields(a).iter().zip(fields(b)))
        .all(|(s, (x, y))| *s == x.saturating_add(y));
    let money_ok = money(sum)
        .iter()
        .zip(money(a).iter().zip(money(b)))
        .all(|(s, (x, y))| s.picos() == x.picos().saturating_add(y.picos()));
    counts_ok && money_ok
}

/// Counters whose sums cannot saturate: merging them is exact arithmetic.
fn small_counters() -> impl Strategy<Value = Counters> {
    let small_usage =
        (0_u64..1 << 40, 0_u64..1 << 40, 0_u64..1 << 40).prop_map(|(i, c, o)| Usage {
            input_uncached: i,
            cache_read: c,
            output: o,
            ..Usage::default()
        });
    let small_cost =
        proptest::option::of((-(1_i128 << 80)..(1_i128 << 80)).prop_map(Usd::from_picos));
    proptest::collection::vec((small_usage, small_cost), 0..4).prop_map(|calls| {
        let mut counters = Counters::default();
        for (usage, cost) in &calls {
            counters.add(
                usage,
                &Costing {
                    effective: *cost,
                    computed: *cost,
                    reported: None,
                    provenance: Provenance::Computed,
                    long_context: false,
                },
            );
        }
        counters
    })
}

proptest! {
    /// Merging is commutative, and each field is the saturating sum: never
    /// wrapped, never below either side.
    #[test]
    fn prop_counters_merge_is_a_saturating_sum(a in counters(), b in counters()) {
        let ab = merged(&a, &b);
        prop_assert_eq!(ab, merged(&b, &a));
        prop_assert!(is_saturating_sum(&ab, &a, &b), "{ab:?}");
        prop_assert!(ab.input_tokens >= a.input_tokens.max(b.input_tokens));
        prop_assert!(ab.events >= a.events.max(b.events));
        prop_assert_eq!(ab.saturated(), ab.saturated() || a.saturated() || b.saturated());
    }

    /// Where nothing saturates, merging is associative and equals adding
    /// every call to one aggregate.
    #[test]
    fn prop_counters_merge_is_associative_and_equals_the_sum(
        a in small_counters(), b in small_counters(), c in small_counters(),
    ) {
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        let mut taken_back = merged(&a, &b);
        taken_back.unmerge(&b);
        prop_assert_eq!(taken_back, a);
    }

    /// Adding calls one by one equals merging per-call aggregates.
    #[test]
    fn prop_counters_add_equals_merge_of_single_calls(
        calls in proptest::collection::vec((usage(), costing()), 0..6),
    ) {
        let mut added = Counters::default();
        let mut merged_all = Counters::default();
        for (usage, costing) in &calls {
            added.add(usage, costing);
            let mut one = Counters::default();
            one.add(usage, costing);
            merged_all.merge(&one);
        }
        prop_assert_eq!(added, merged_all);
    }

    /// The exact decimal reads back as the same amount.
    #[test]
    fn prop_usd_display_parse_round_trip(picos in picos()) {
        let amount = Usd::from_picos(picos);
        let text = amount.to_string();
        prop_assert_eq!(Usd::parse_decimal(&text), Ok(amount), "{}", text);
        prop_assert_eq!(Usd::parse_reported(&text), Ok(amount), "{}", text);
    }

    /// Rounded displays never overflow, and are within half a unit.
    #[test]
    fn prop_usd_rounded_display_is_within_half_a_unit(picos in picos(), decimals in 0_u32..=12) {
        let amount = Usd::from_picos(picos);
        let text = amount.display_rounded(decimals);
        let significant = amount.display_significant(decimals);
        prop_assert!(!significant.is_empty());
        // Rounding up at the very top may not fit an i128 any more.
        if let Ok(back) = Usd::parse_decimal(&text) {
            let unit = 10_u128.pow(12 - decimals);
            let diff = back.picos().abs_diff(picos);
            prop_assert!(diff <= unit / 2, "{} → {}", picos, text);
        }
    }

    /// Sums and differences saturate exactly as i128 does, never wrap.
    #[test]
    fn prop_usd_add_and_sub_saturate(a in picos(), b in picos()) {
        let (x, y) = (Usd::from_picos(a), Usd::from_picos(b));
        prop_assert_eq!((x + y).picos(), a.saturating_add(b));
        prop_assert_eq!((x - y).picos(), a.saturating_sub(b));
        let mut sum = x;
        sum += y;
        prop_assert_eq!(sum, x + y);
        let mut difference = x;
        difference -= y;
        prop_assert_eq!(difference, x - y);
        prop_assert_eq!([x, y].into_iter().sum::<Usd>(), x + y);
    }

    /// A JSON number tokwatch writes (`to_f64`) reads back as the same
    /// amount, for amounts an f64 can tell apart (15 significant digits).
    #[test]
    fn prop_usd_json_numbers_read_back_exactly(picos in -999_999_999_999_999_i128..=999_999_999_999_999) {
        let amount = Usd::from_picos(picos);
        prop_assert_eq!(Usd::from_reported_f64(amount.to_f64()), Ok(amount));
    }

    /// Any decimal text: an error or an amount, never a panic; an amount
    /// only when it is within float noise of what was written.
    #[test]
    fn prop_usd_parsing_arbitrary_text_never_panics(
        sign in prop_oneof![Just(""), Just("-"), Just("+")],
        int in "[0-9]{0,30}",
        frac in proptest::option::of("[0-9]{0,30}"),
        exp in proptest::option::of(prop_oneof![any::<i32>().prop_map(|e| e.to_string()), "[-+]?[0-9]{1,12}"]),
        junk in proptest::option::of("[ -~]{1,8}"),
    ) {
        let mut text = format!("{sign}{int}");
        if let Some(frac) = &frac {
            text.push('.');
            text.push_str(frac);
        }
        if let Some(exp) = &exp {
            text.push('e');
            text.push_str(exp);
        }
        if let Some(junk) = &junk {
            text.push_str(junk);
        }
        let strict = Usd::parse_decimal(&text);
        let reported = Usd::parse_reported(&text);
        if let Ok(amount) = strict {
            prop_assert_eq!(reported.clone(), Ok(amount), "exact values are kept exactly");
        }
        if let (Ok(amount), Ok(value)) = (&reported, text.parse::<f64>()) {
            let dollars = amount.picos() as f64 / PICOS_PER_USD as f64;
            prop_assert!((dollars - value).abs() <= value.abs() * 1e-14 + 1e-300, "{} → {:?}", text, amount);
        }
        if let Err(MoneyError::TooPrecise(_)) = &strict {
            prop_assert!(!matches!(reported, Err(MoneyError::NotANumber(_))));
        }
    }
}

// --------------------------------------------------------------- sanitize

fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            | '\u{061C}' | '\u{FEFF}')
}

fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        Just("\x1b[2J".to_owned()),
        Just("\x1b]52;c;aGk=\x07".to_owned()),
        Just("\u{9b}31m".to_owned()),
        Just("\u{202e}gnp.exe".to_owned()),
        Just("\u{2066}x\u{2069}".to_owned()),
        Just("\r\n\t\u{7f}\u{0}".to_owned()),
        "[a-z →✓]{0,8}",
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

proptest! {
    /// Nothing that could move the cursor, recolour or reorder survives;
    /// sanitizing twice is sanitizing once; safe text is left as it is,
    /// one replacement per unsafe character.
    #[test]
    fn prop_sanitize_leaves_no_control_characters(text in hostile_text()) {
        let clean = sanitize(&text);
        prop_assert!(!clean.chars().any(unsafe_char), "{:?}", clean);
        let again = sanitize(&clean);
        prop_assert_eq!(again.as_ref(), clean.as_ref());
        prop_assert_eq!(clean.chars().count(), text.chars().count());
        for (before, after) in text.chars().zip(clean.chars()) {
            if unsafe_char(before) {
                prop_assert_eq!(after, '\u{FFFD}');
            } else {
                prop_assert_eq!(after, before);
            }
        }
    }
}

// ---------------------------------------------------------- control codec

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,12}",
        any::<String>(),
        Just("\"\\\n\u{2028}\u{0}".to_owned())
    ]
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Global),
        text().prop_map(Scope::Agent),
        text().prop_map(Scope::Segment),
    ]
}

fn action() -> impl Strategy<Value = Option<BreachAction>> {
    proptest::option::of(prop_oneof![
        Just(BreachAction::Trim),
        Just(BreachAction::Abort),
        Just(BreachAction::Pause),
        Just(BreachAction::Warn),
    ])
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(text()),
        action(),
        action(),
    )
        .prop_map(|(hop, run, cost, on_hop, on_run)| Limits {
            per_hop_limit: hop,
            total_run_limit: run,
            run_cost_limit_usd: cost,
            on_hop_breach: on_hop,
            on_run_breach: on_run,
        })
}

fn budget() -> impl Strategy<Value = VersionedBudget> {
    (
        scope(),
        any::<u64>(),
        proptest::option::of(any::<u64>()),
        proptest::option::of(text()),
        limits(),
    )
        .prop_map(
            |(scope, version, base_version, idempotency_key, limits)| VersionedBudget {
                scope,
                version,
                base_version,
                idempotency_key,
                limits,
            },
        )
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u32>(), text(), proptest::option::of(text())).prop_map(
            |(protocol, client, token)| Request::Hello {
                protocol,
                client,
                token
            }
        ),
        (
            text(),
            text(),
            scope(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            limits()
        )
            .prop_map(
                |(id, idempotency_key, scope, version, base_version, limits)| Request::Set {
                    id,
                    idempotency_key,
                    scope,
                    version,
                    base_version,
                    limits,
                }
            ),
        (text(), proptest::collection::vec(budget(), 0..3))
            .prop_map(|(id, budgets)| Request::Sync { id, budgets }),
        text().prop_map(|id| Request::List { id }),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    let applied = (scope(), any::<u64>()).prop_map(|(scope, version)| Applied { scope, version });
    let exceeded = (
        text(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        text(),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        text(),
        proptest::option::of(text()),
    )
        .prop_map(
            |(run_id, hop, agent, segment, limit_kind, limit, tokens, action, ts)| Exceeded {
                run_id,
                hop,
                agent,
                segment,
                limit_kind,
                limit,
                tokens,
                action,
                ts,
            },
        );
    prop_oneof![
        (
            any::<u32>(),
            text(),
            text(),
            proptest::collection::vec(applied, 0..3)
        )
            .prop_map(|(protocol, runtime, runtime_id, applied)| Reply::Hello {
                protocol,
                runtime,
                runtime_id,
                applied,
            }),
        (text(), scope(), any::<u64>()).prop_map(|(id, scope, version)| Reply::Ack {
            id,
            scope,
            version
        }),
        (
            text(),
            scope(),
            any::<u64>(),
            any::<u64>(),
            text(),
            proptest::option::of(text()),
            proptest::option::of(limits()),
        )
            .prop_map(
                |(id, scope, version, applied_version, reason, code, limits)| Reply::Nack {
                    id,
                    scope,
                    version,
                    applied_version,
                    reason,
                    code,
                    limits,
                }
            ),
        text().prop_map(|id| Reply::Synced { id }),
        (text(), proptest::collection::vec(budget(), 0..3))
            .prop_map(|(id, budgets)| Reply::State { id, budgets }),
        exceeded.prop_map(Reply::Exceeded),
        text().prop_map(|reason| Reply::Error { reason }),
    ]
}

/// A valid line with a few bytes changed, inserted or removed.
fn mutated(line: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<prop::sample::Index>(), any::<u8>(), 0_u8..3);
    proptest::collection::vec(edit, 0..6).prop_map(move |edits| {
        let mut line = line.clone();
        for (at, byte, kind) in edits {
            let pos = at.index(line.len() + 1);
            match kind {
                0 if pos < line.len() => line[pos] = byte,
                1 if pos < line.len() => {
                    line.remove(pos);
                }
                _ => line.insert(pos, byte),
            }
        }
        line
    })
}

proptest! {
    /// Every message is one line (no raw newline inside) that decodes to
    /// itself.
    #[test]
    fn prop_control_messages_round_trip(request in request(), reply in reply()) {
        let line = protocol::encode(&request);
        prop_assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        prop_assert_eq!(protocol::decode::<Request>(&line[..line.len() - 1]), Ok(request));
        let line = protocol::encode(&reply);
        prop_assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        prop_assert_eq!(protocol::decode::<Reply>(&line[..line.len() - 1]), Ok(reply));
    }

    /// Garbage and damaged messages are refused with a reason, never a
    /// panic.
    #[test]
    fn prop_control_garbage_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        damaged in reply().prop_flat_map(|r| mutated(protocol::encode(&r))),
    ) {
        for line in [&bytes, &damaged] {
            if let Err(error) = protocol::decode::<Request>(line) {
                prop_assert!(!error.to_string().is_empty());
            }
            if let Err(error) = protocol::decode::<Reply>(line) {
                prop_assert!(!error.to_string().is_empty());
            }
        }
    }
}

// ---------------------------------------------------- config and themes

/// A TOML value of any shape, hostile ones included.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        Just("18446744073709551616".to_owned()),
        Just("-0".to_owned()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        Just("inf".to_owned()),
        Just("nan".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        "\"[ -~]{0,12}\"",
        Just("\"\\u001b[2J\"".to_owned()),
        Just("[]".to_owned()),
        Just("[1, \"a\"]".to_owned()),
        Just("{ fg = \"red\", bold = 3 }".to_owned()),
        Just("{}".to_owned()),
        Just("1979-05-27T07:32:00Z".to_owned()),
        Just("\"10h\"".to_owned()),
        Just("\"0ms\"".to_owned()),
        Just("\"color(300)\"".to_owned()),
        Just("\"#12345\"".to_owned()),
    ]
}

/// Lines of `text` with some values replaced, lines dropped, duplicated or
/// inserted (keys from the file itself, so most survive the key check).
fn mutated_toml(text: &'static str) -> impl Strategy<Value = String> {
    let lines: Vec<&'static str> = text.lines().collect();
    let count = lines.len();
    let edit = (0..count.max(1), 0_u8..5, toml_value(), "[a-z-]{1,12}");
    proptest::collection::vec(edit, 0..6).prop_map(move |edits| {
        let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        for (at, kind, value, key) in edits {
            let at = at.min(out.len().saturating_sub(1));
            if out.is_empty() {
                out.push(format!("{key} = {value}"));
                continue;
            }
            match kind {
                0 => {
                    if let Some((k, _)) = out[at].split_once('=') {
                        out[at] = format!("{}= {value}", k);
                    }
                }
                1 => {
                    out.remove(at);
                }
                2 => {
                    let line = out[at].clone();
                    out.insert(at, line);
                }
                3 => out.insert(at, format!("{key} = {value}")),
                _ => out.insert(at, format!("[{key}]")),
            }
        }
        out.join("\n")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases.min(128), ..ProptestConfig::default() })]

    /// Any config text: settings or an error that says what and where,
    /// never a panic.
    #[test]
    fn prop_config_loader_never_panics(
        text in mutated_toml(include_str!("../config/tokwatch.sample.toml")),
    ) {
        match Settings::from_toml(&text) {
            Ok(settings) => prop_assert_eq!(Settings::from_toml(&text).ok(), Some(settings)),
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.len() > 10, "{}", message);
                prop_assert!(!message.contains("Error {"), "{}", message);
            }
        }
    }

    /// Any theme file: a theme (every role set, the default's where the
    /// file has none) or an error naming the file and line.
    #[test]
    fn prop_theme_loader_never_panics(
        which in 0_usize..4,
        dark in mutated_toml(include_str!("../themes/dark.toml")),
        light in mutated_toml(include_str!("../themes/light.toml")),
        contrast in mutated_toml(include_str!("../themes/high-contrast.toml")),
        solarized in mutated_toml(include_str!("../themes/solarized.toml")),
    ) {
        let text = vec![dark, light, contrast, solarized].swap_remove(which);
        let parsed = ThemeFile::parse(&text);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(&path, &text).unwrap();
        match Theme::load(path.to_str().unwrap(), None) {
            Ok(theme) => {
                prop_assert!(parsed.is_ok());
                prop_assert_eq!(theme.styles().len(), 19);
            }
            Err(error) => {
                prop_assert!(parsed.is_err());
                let message = error.to_string();
                prop_assert!(message.contains("mine.toml"), "{}", message);
                prop_assert!(message.contains("line"), "{}", message);
            }
        }
    }
}
