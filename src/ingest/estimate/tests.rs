//! Counting text safely, and the worker that does it off the ingest path.

use std::borrow::Cow;
use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::ingest::formats::tests::Collect;
use crate::ingest::formats::{Decoder, DecoderConfig};
use crate::types::event::Supersede;

#[test]
fn tokenizers_follow_the_model_and_others_are_approximations() {
    assert_eq!(tokenizer_for("gpt-4o-mini"), (Tokenizer::O200kBase, true));
    assert_eq!(
        tokenizer_for("openai/gpt-5.2"),
        (Tokenizer::O200kBase, true)
    );
    assert_eq!(tokenizer_for("o3-mini"), (Tokenizer::O200kBase, true));
    // Only o200k's table ships: older models are approximated with it.
    assert_eq!(tokenizer_for("gpt-4-0613"), (Tokenizer::O200kBase, false));
    assert_eq!(
        tokenizer_for("text-davinci-003"),
        (Tokenizer::O200kBase, false)
    );
    assert_eq!(
        tokenizer_for("gpt-3.5-turbo"),
        (Tokenizer::O200kBase, false)
    );
    assert_eq!(
        tokenizer_for("claude-sonnet-4-5"),
        (Tokenizer::O200kBase, false)
    );
}

#[test]
fn counts_match_the_tokenizer_on_ordinary_text() {
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(20);
    let bpe = tiktoken_rs::bpe_for_tokenizer(Tokenizer::O200kBase).unwrap();
    assert_eq!(
        count_tokens(Tokenizer::O200kBase, &text),
        bpe.encode_ordinary(&text).len() as u64
    );
    // Runs up to the limit are tokenized as they are.
    let spaced = format!("a{}b", " ".repeat(MAX_RUN));
    assert_eq!(
        count_tokens(Tokenizer::O200kBase, &spaced),
        bpe.encode_ordinary(&spaced).len() as u64
    );
}

#[test]
fn a_million_spaces_neither_panic_nor_take_long() {
    let spaces = " ".repeat(1_000_000);
    let tokens = count_tokens(Tokenizer::O200kBase, &spaces);
    // Extrapolated from a run of MAX_RUN: a fraction of a token per space.
    assert!(tokens > 1_000 && tokens < 1_000_000, "{tokens}");
    let mixed = format!(
        "word {}word\n{}end",
        "\t".repeat(300_000),
        "\n".repeat(300_000)
    );
    assert!(count_tokens(Tokenizer::Cl100kBase, &mixed) > 0);
}

#[test]
fn text_beyond_the_cap_is_extrapolated() {
    let chunk = "lorem ipsum dolor sit amet, consectetur adipiscing elit. ";
    let big = chunk.repeat(2 * MAX_TEXT_BYTES / chunk.len());
    let tokens = count_tokens(Tokenizer::O200kBase, &big);
    let half = count_tokens(Tokenizer::O200kBase, &big[..MAX_TEXT_BYTES]);
    assert!(
        tokens >= 2 * half - 2 && tokens <= 2 * half + 2,
        "{tokens} vs {half}"
    );
}

#[test]
fn the_decoder_counts_roughly_at_once_and_the_worker_exactly_later() {
    let (tx, rx) = mpsc::channel();
    let estimator = Estimator::new(move |e| {
        let _ = tx.send(e);
    });
    let config = DecoderConfig {
        estimator: Some(estimator.clone()),
        ..DecoderConfig::default()
    };
    let mut decoder = Decoder::new(std::sync::Arc::new(config), "f.jsonl".into());
    let prompt = "Summarize the quarterly report for the board. ".repeat(40);
    let line = format!(
        r#"{{"run_id":"r","hop":1,"model":"gpt-4o","prompt":"{prompt}","completion":"Revenue grew.","cache_read_tokens":0,"messages":[{{"role":"user","content":"SECRET"}}],"system":"SECRET2"}}"#
    );
    let mut out = Collect::default();
    decoder.decode_str(&line, 7, &mut out);
    // At once: rough counts, marked estimated, with an identity.
    let (_, rough) = &out.0[0];
    assert!(rough.estimated);
    assert_eq!(rough.usage.input_uncached, rough_tokens(&prompt));
    let call = rough.call.unwrap();
    assert_eq!(call.rule, Supersede::Largest);
    estimator.flush();
    let exact = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let bpe = tiktoken_rs::bpe_for_tokenizer(Tokenizer::O200kBase).unwrap();
    assert_eq!(
        exact.event.usage.input_uncached,
        bpe.encode_ordinary(&prompt).len() as u64
    );
    assert_eq!(exact.event.usage.output, 3);
    assert_eq!(
        exact.event.call.map(|c| (c.key, c.rule)),
        Some((call.key, Supersede::Latest))
    );
    assert_eq!(exact.line_no, 7);
    assert!(exact.exact_tokenizer);
    // The recording carries the counts, never the text.
    let record = String::from_utf8(exact.record.unwrap().unwrap()).unwrap();
    assert!(
        !record.contains("Summarize") && !record.contains("Revenue") && !record.contains("SECRET"),
        "{record}"
    );
    assert!(record.contains("\"estimated\":true"));
    // Counts given stay as they are: nothing to estimate.
    let counted =
        r#"{"run_id":"r","model":"gpt-4o","prompt":"x","input_tokens":5,"output_tokens":1}"#;
    let mut out = Collect::default();
    decoder.decode_str(counted, 8, &mut out);
    assert!(out.0[0].1.call.is_none());
    let _ = Cow::Borrowed("");
}

#[test]
fn a_report_shows_the_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let prompt = "Tell me a story about a lighthouse keeper. ".repeat(30);
    std::fs::write(
        &path,
        format!(
            "{}\n",
            format_args!(
                r#"{{"run_id":"r","model":"gpt-4o","prompt":"{prompt}","output_tokens":5}}"#
            )
        ),
    )
    .unwrap();
    let cli = <crate::cli::Cli as clap::Parser>::try_parse_from([
        "tokwatch",
        "report",
        path.to_str().unwrap(),
        "--format",
        "json",
    ])
    .unwrap();
    let Some(crate::cli::Command::Report(args)) = cli.command else {
        unreachable!()
    };
    let (snapshot, stats, _) = crate::build_report(&args, 0).unwrap();
    let bpe = tiktoken_rs::bpe_for_tokenizer(Tokenizer::O200kBase).unwrap();
    assert_eq!(
        snapshot.totals.input_tokens,
        bpe.encode_ordinary(&prompt).len() as u64
    );
    assert_eq!(snapshot.totals.events, 1);
    assert_eq!(snapshot.totals.estimated_events, 1);
    assert_eq!(stats.revised, 1);
}

#[test]
fn a_tokenizer_that_panics_falls_back_to_the_rough_count() {
    let text = "some text";
    assert_eq!(
        guarded(text, |_| panic!("tokenizer bug")),
        rough_tokens(text)
    );
    assert_eq!(guarded(text, |_| 2), 2);
}
