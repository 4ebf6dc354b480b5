use super::*;

const ORIGIN: LineOrigin<'static> = LineOrigin {
    source: "t.jsonl",
    rough: false,
};

fn seeds() -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for dir in [
        "sample_logs/teams",
        "sample_logs/misc",
        "sample_logs",
        "tests/fixtures",
    ] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        {
            let data = std::fs::read(path).unwrap();
            lines.extend(data.split(|b| *b == b'\n').map(<[u8]>::to_vec));
        }
    }
    for extra in [
        r#"{"ts":"2026-03-01T10:00:00.000Z","run_id":"r","hop":3,"agent":"a","model":"gpt-4.1","input_tokens":10,"output_tokens":1}"#,
        r#" { "ts" : 1772400000000 , "agent" : null , "model":"m", "input_tokens":0,"output_tokens":0 } "#,
        r#"{"ts":"2026-03-05T10:00:00+05:30","agent":"a\"b","model":"m","input_tokens":1,"output_tokens":1}"#,
        r#"{"ts":"2026-03-05T10:00:00,000Z","model":"m","input_tokens":1,"output_tokens":1}"#,
        r#"{"ts":1772400000,"model":"m","input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"input_tokens":2}"#,
        r#"{"model":"m","input_tokens":null,"output_tokens":1,"input_tokens":2}"#,
        r#"{"model":"m","input_tokens":01,"output_tokens":1}"#,
        r#"{"model":"m","input_tokens":1.0,"output_tokens":1}"#,
        r#"{"model":"m","input_tokens":-1,"output_tokens":1}"#,
        r#"{"model":"m","input_tokens":18446744073709551616,"output_tokens":1}"#,
        r#"{"model":"m","input_tokens":18446744073709551615,"output_tokens":1}"#,
        r#"{"model":"m","hop":4294967296,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","cost_usd":0.25,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","extra":{"x":[1,2]},"input_tokens":1,"output_tokens":1}"#,
        r#"{"type":"budget_exceeded","run_id":"r","hop":2,"limit_kind":"tokens","limit":100,"tokens":120,"action":"stop"}"#,
        r#"{"type":"run_end","run_id":"r","status":"ok"}"#,
        r#"{"type":"weird","run_id":"r"}"#,
        r#"{"model":"m","prompt":"hello world","completion":"hi"}"#,
        r#"{"model":"m","input_tokens":5,"output_tokens":1,"cache_read_tokens":6}"#,
        r#"{"model":"m","input_tokens":5,"output_tokens":1,"reasoning_tokens":2,"cache_write_tokens":1,"cache_write_1h_tokens":1}"#,
        r#"{"model":"   ","agent":"","run_id":" ","input_tokens":5,"output_tokens":1}"#,
        "{\"model\":\"caf\u{e9}\",\"input_tokens\":5,\"output_tokens\":1}",
        r#"{}"#,
        r#"[]"#,
        r#"{"model":"m","input_tokens":5,"output_tokens":1}x"#,
        r#"{"model":"m","input_tokens":5,"output_tokens":1,}"#,
        r#"{"model":"m" "input_tokens":5}"#,
        r#"{"model":true,"input_tokens":5,"output_tokens":1}"#,
        r#"{"ts":"","model":"m","input_tokens":5,"output_tokens":1}"#,
        r#"{"ts":"2026-02-30T10:00:00Z","model":"m","input_tokens":5,"output_tokens":1}"#,
    ] {
        lines.push(extra.as_bytes().to_vec());
    }
    lines.push(b"{\"model\":\"\xff\",\"input_tokens\":5,\"output_tokens\":1}".to_vec());
    lines.push(b"{\"model\":\"a\tb\",\"input_tokens\":5,\"output_tokens\":1}".to_vec());
    lines.extend(unknown_key_seeds());
    lines
}

/// Lines with keys [`RawRecord`] does not have (every kind of value,
/// valid and not) and with `estimated`.
fn unknown_key_seeds() -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = [
        r#"{"ts":"2026-11-23T08:00:22.474Z","run_id":"bench-00000001","hop":1,"agent":"planner","user":"lean-u071","segment":"lean/enterprise","task":"plan","model":"claude-haiku-4-5","input_tokens":2900,"cache_read_tokens":2200,"output_tokens":837,"latency_ms":15474,"status":"ok","trace":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#,
        r#"{"span_id":"","model":"m","input_tokens":1,"output_tokens":1}"#,
        r#"{"":"empty key","model":"m","input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","n":0,"i":-12,"f":3.25,"e":-0.5e-7,"g":1E+30,"h":2e5,"z":-0,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","big":123456789012345678901234567890,"tiny":1e-400,"huge":1e400,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","a":true,"b":false,"c":null,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m", "a" : true , "b":false ,"c" :null,"d" : 7 ,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":01,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":-01,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":1.,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":1.e5,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":-,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":--1,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":1e,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":1e+,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":1e5.5,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":.5,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":+1,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":0x10,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":NaN,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":tru,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":nulls,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":False,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":{},"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":{"input_tokens":2},"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":[1,"a"],"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":[],"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":"a\"b","input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":"a\nb","input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":"\u00e9","input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":"\q","input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x\u0079":1,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","t\u0073":1,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":1,"x":"dup","x":null,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","x":"#,
        r#"{"model":"m","x":1"#,
        r#"{"model":"m","x":"unterminated}"#,
        r#"{"model":"m","kind":"weird","Model":"M","type ":"x","input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":true}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":false,"trace":"t"}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":null}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated" : true }"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":true,"estimated":false}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":null,"estimated":null}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":1}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":"true"}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"estimated":trueish}"#,
        r#"{"model":"m","prompt":"count me","output_tokens":1,"estimated":false}"#,
        r#"{"model":"m","prompt_hash":"9f86d081","input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","prompt_hash":" 9F86 ","prompt":"Reset  my PASSWORD?","input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","prompt_hash":null,"prompt":"caf\u00e9 au lait","input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","prompt_hash":"a\"b","input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","prompt_hash":12,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","prompt_hash":"","prompt":"","input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","prompt_hash":"x","prompt_hash":"y","input_tokens":1,"output_tokens":1}"#,
        r#"{"type":"run_end","prompt_hash":"x","prompt":"ignored"}"#,
        r#"{"model":"m","cost_usd":"0.25","input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","cost_usd":null,"input_tokens":1,"output_tokens":1}"#,
        r#"{"model":"m","cost_usd":3,"input_tokens":1,"output_tokens":1}"#,
        r#"{"type":"budget_exceeded","run_id":"r","limit":100,"tokens":120,"usage":7,"input_tokens":"ignored?"}"#,
    ]
    .iter()
    .map(|l| l.as_bytes().to_vec())
    .collect();
    // Raw bytes serde_json rejects (a control character) or skips without
    // validating (invalid UTF-8 in an ignored string).
    lines.push(b"{\"model\":\"m\",\"x\":\"a\tb\",\"input_tokens\":1,\"output_tokens\":1}".to_vec());
    lines.push(b"{\"model\":\"m\",\"x\":\"\xff\",\"input_tokens\":1,\"output_tokens\":1}".to_vec());
    lines.push(
        b"{\"model\":\"m\",\"x\":\"caf\xc3\xa9\",\"input_tokens\":1,\"output_tokens\":1}".to_vec(),
    );
    lines
}

fn check(line: &[u8]) -> bool {
    let mut raw = RawRecord::default();
    if fast::record(line, &mut raw).is_none() {
        return false;
    }
    let fast = normalize(&mut raw, ORIGIN);
    let reference = parse_line_serde(line, ORIGIN);
    assert_eq!(fast, reference, "{}", String::from_utf8_lossy(line));
    true
}

fn takes_the_fast_path(line: &str) -> bool {
    fast::record(line.as_bytes(), &mut RawRecord::default()).is_some()
}

#[test]
fn the_fast_path_agrees_with_serde_on_seeds() {
    let seeds = seeds();
    let fast = seeds.iter().filter(|l| check(l)).count();
    assert!(seeds.len() > 400, "{}", seeds.len());
    assert!(
        fast * 10 > seeds.len() * 8,
        "most lines take the fast path: {fast}/{}",
        seeds.len()
    );
}

#[test]
fn parse_str_agrees_with_parse_line_on_seeds() {
    for line in seeds() {
        if let Ok(text) = std::str::from_utf8(&line) {
            assert_eq!(parse_str(text, ORIGIN), parse_line(&line, ORIGIN), "{text}");
        }
    }
}

/// A deterministic xorshift generator.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Mutates `rounds` lines cycled from `seeds` by up to three byte edits
/// each and checks every mutant the fast path accepts; how many it did.
fn check_mutations(seeds: &[Vec<u8>], rounds: usize, next: &mut impl FnMut() -> u64) -> usize {
    let alphabet = b" \t\"\\{}[]:,0123456789-+.eEnultrfsaxyz\xc3\xa9\x01";
    let mut accepted = 0;
    for i in 0..rounds {
        let mut line = seeds[i % seeds.len()].clone();
        for _ in 0..=(next() % 3) {
            let pos = usize::try_from(next()).unwrap() % (line.len() + 1);
            let byte = alphabet[usize::try_from(next()).unwrap() % alphabet.len()];
            match next() % 3 {
                0 if pos < line.len() => line[pos] = byte,
                1 if pos < line.len() => {
                    line.remove(pos);
                }
                _ => line.insert(pos, byte),
            }
        }
        accepted += usize::from(check(&line));
    }
    accepted
}

#[test]
fn the_fast_path_agrees_with_serde_on_mutations() {
    // Every mutation that the fast path accepts must give serde's result
    // exactly.
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let accepted = check_mutations(&seeds(), 60_000, &mut next);
    assert!(accepted > 5_000, "{accepted}");
    let accepted = check_mutations(&unknown_key_seeds(), 60_000, &mut next);
    assert!(accepted > 5_000, "{accepted}");
}

#[test]
fn the_fast_path_skips_unknown_scalars_and_leaves_the_rest_to_serde() {
    let line =
        |extra: &str| format!(r#"{{"model":"m",{extra},"input_tokens":1,"output_tokens":1}}"#);
    for extra in [
        r#""trace":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx""#,
        r#""trace":"""#,
        r#""":"""#,
        r#""café":"thé""#,
        r#""kind":"hop""#,
        r#""n":0"#,
        r#""n":-0"#,
        r#""n":7"#,
        r#""n":-12"#,
        r#""n":123456789012345678901234567890"#,
        r#""n":3.25"#,
        r#""n":-0.5e-7"#,
        r#""n":1E+30"#,
        r#""n":2e5"#,
        r#""n":1e400"#,
        r#""n" : 0.0 "#,
        r#""b":true"#,
        r#""b":false"#,
        r#""b":null"#,
        r#""x":1,"x":"again""#,
        r#""estimated":true"#,
        r#""estimated":false"#,
        r#""estimated":null"#,
    ] {
        let text = line(extra);
        assert!(takes_the_fast_path(&text), "{text}");
        assert!(check(text.as_bytes()));
    }
    for extra in [
        r#""n":01"#,
        r#""n":-01"#,
        r#""n":1."#,
        r#""n":-"#,
        r#""n":1e"#,
        r#""n":1e+"#,
        r#""n":.5"#,
        r#""n":+1"#,
        r#""n":1x"#,
        r#""n":NaN"#,
        r#""b":tru"#,
        r#""b":nulls"#,
        r#""o":{}"#,
        r#""a":[]"#,
        r#""s":"a\"b""#,
        r#""s":"a\\b""#,
        "\"s\":\"a\tb\"",
        r#""t\u0073":1"#,
        r#""cost_usd":0.25"#,
        r#""cost_usd":"0.25""#,
        r#""cost_usd":null"#,
        r#""estimated":1"#,
        r#""estimated":"true""#,
        r#""estimated":true,"estimated":true"#,
    ] {
        let text = line(extra);
        assert!(!takes_the_fast_path(&text), "{text}");
    }
}

/// The field names serde's derive gives `deserialize_struct` for
/// [`RawRecord`] (every key it does not ignore).
fn serde_fields() -> &'static [&'static str] {
    struct Capture(&'static [&'static str]);
    impl<'de> Deserializer<'de> for &mut Capture {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(de::Error::custom("captured"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut capture = Capture(&[]);
    assert!(RawRecord::deserialize(&mut capture).is_err());
    capture.0
}

#[test]
fn the_fast_path_knows_exactly_the_keys_serde_knows() {
    // Ignoring a key serde reads would silently lose a field.
    let fields = serde_fields();
    assert_eq!(fields.len(), 29, "{fields:?}");
    let mut slots: Vec<u32> = Vec::new();
    for name in fields {
        match fast::field(name) {
            None => assert_eq!(*name, "cost_usd"),
            Some(fast::IGNORED) => panic!("the fast path ignores '{name}'"),
            Some(slot) => slots.push(slot),
        }
    }
    slots.sort_unstable();
    assert_eq!(slots, (0..28).collect::<Vec<_>>(), "one slot per field");
    for unknown in [
        "", "kind", "Model", "trace", "span_id", "ts ", "cost", "hop_", "estimate",
    ] {
        assert_eq!(fast::field(unknown), Some(fast::IGNORED), "{unknown}");
    }
}

#[test]
fn the_word_scan_agrees_with_the_byte_loop() {
    let simple = |bytes: &[u8]| {
        bytes
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
    };
    let special = [
        0x00, 0x01, 0x1f, 0x20, 0x21, b'"', 0x23, b'\\', 0x5d, 0x7f, 0x80, 0x9f, 0xa2, 0xc3, 0xdc,
        0xff,
    ];
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    for len in 0..40 {
        // Every special byte at every position, alone and as a pair.
        for pos in 0..len {
            for &a in &special {
                let mut bytes = vec![b'x'; len];
                bytes[pos] = a;
                assert_eq!(fast::plain_len(&bytes), simple(&bytes), "{bytes:?}");
                if len <= 17 {
                    for later in pos + 1..len {
                        for &b in &special {
                            bytes[later] = b;
                            assert_eq!(fast::plain_len(&bytes), simple(&bytes), "{bytes:?}");
                        }
                        bytes[later] = b'x';
                    }
                }
            }
        }
        // Random bytes, mostly ones that do not end a string.
        for _ in 0..2_000 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    match r % 16 {
                        0 => special[usize::try_from(r >> 8).unwrap() % special.len()],
                        1 => (r >> 8) as u8,
                        _ => match 0x20 + ((r >> 8) % 0xe0) as u8 {
                            b'"' | b'\\' => b'y',
                            b => b,
                        },
                    }
                })
                .collect();
            assert_eq!(fast::plain_len(&bytes), simple(&bytes), "{bytes:?}");
        }
    }
}

mod properties {
    //! The fast path against serde on generated lines (`scripts/fuzz.sh`
    //! runs these for minutes): real lines whose values are swapped for
    //! hostile numbers, strings and escapes, then byte-edited.
    use proptest::prelude::*;

    use crate::ingest::formats::mutation::replace_value;

    use super::*;

    /// Values that sit on the edges of what either reader accepts.
    const HOSTILE: &[&str] = &[
        "0",
        "-0",
        "01",
        "1.0",
        "1e3",
        "-1",
        "9999999999",
        "10000000000",
        "999999999",
        "1000000000",
        "4294967295",
        "4294967296",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "123456789012345678901234567890",
        "1e-30",
        "1e400",
        "-1e400",
        "0.0000000000001",
        "0.011349000000000001",
        "99999.99",
        "100000",
        "\"9e23\"",
        "\"0.25\"",
        "\"-0.5\"",
        "\"1e-30\"",
        "\"\"",
        "\" \"",
        "\"a\\\"b\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\\ud83d\\ude00\"",
        "\"\\u00e9\"",
        "\"\u{feff}x\"",
        "\"\u{202e}evil\"",
        "\"\\u001b[2J\"",
        "\"2026-02-29T10:00:00Z\"",
        "\"2028-02-29T23:59:60Z\"",
        "1772400000000",
        "1772400000",
        "true",
        "null",
        "[]",
        "{}",
        "{\"a\":[1,{\"b\":null}]}",
    ];

    /// A seed line with `edits` applied: each swaps the value after one of
    /// its `:` for a hostile one, or changes one byte.
    fn generated(
        line: &[u8],
        edits: &[(prop::sample::Index, prop::sample::Index, u8, u8)],
    ) -> Vec<u8> {
        let mut line = line.to_vec();
        for (at, pick, byte, kind) in edits {
            let value = HOSTILE[pick.index(HOSTILE.len())].as_bytes();
            match kind % 4 {
                0 | 1 if replace_value(&mut line, *at, value, b",}") => {}
                2 => {
                    let pos = at.index(line.len() + 1);
                    line.insert(pos, *byte);
                }
                _ if !line.is_empty() => {
                    let pos = at.index(line.len());
                    line[pos] = *byte;
                }
                _ => {}
            }
        }
        line
    }

    fn lines() -> impl Strategy<Value = Vec<u8>> {
        let edit = (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            prop_oneof![
                Just(b'"'),
                Just(b'\\'),
                Just(b'0'),
                Just(b'9'),
                Just(b'e'),
                Just(b'-'),
                Just(b'.'),
                Just(b','),
                Just(b'}'),
                Just(b' '),
                Just(0xff_u8),
                any::<u8>()
            ],
            any::<u8>(),
        );
        (
            prop::sample::select(seeds()),
            proptest::collection::vec(edit, 1..5),
        )
            .prop_map(|(seed, edits)| generated(&seed, &edits))
    }

    proptest! {
        /// Same event or same rejection, whichever path reads the line; the
        /// bytes and text entry points agree too; accepted records are
        /// plausible (the limits hold on every path).
        #[test]
        fn prop_fast_path_agrees_with_serde(line in lines()) {
            let reference = parse_line_serde(&line, ORIGIN);
            let fast = parse_line(&line, ORIGIN);
            prop_assert_eq!(&fast, &reference, "{}", String::from_utf8_lossy(&line));
            if let Ok(text) = std::str::from_utf8(&line) {
                prop_assert_eq!(&parse_str(text, ORIGIN), &reference);
            }
            if let Ok(event) = &reference {
                prop_assert_eq!(event.usage.plausible(), Ok(event.usage));
                prop_assert!(event.hop.is_none_or(|h| h <= crate::types::event::MAX_HOP));
                prop_assert!(event
                    .reported_cost
                    .is_none_or(|c| c >= Usd::ZERO && c < crate::types::money::MAX_CALL_COST));
            }
        }
    }
}
