//! The native format's serde baseline, shared by `benches/report.rs` and
//! `benches/formats.rs` so both measure against the same parse.

use serde::Deserialize;

/// The typed record the baseline parses: the fields the corpus has, strings
/// borrowed (`&str`: the fastest typed parse serde_json offers).
#[derive(Deserialize)]
#[allow(dead_code)]
pub struct Baseline<'a> {
    #[serde(rename = "type")]
    pub kind: Option<&'a str>,
    pub ts: Option<&'a str>,
    pub run_id: Option<&'a str>,
    pub hop: Option<u32>,
    pub agent: Option<&'a str>,
    pub parent_agent: Option<&'a str>,
    pub user: Option<&'a str>,
    pub segment: Option<&'a str>,
    pub task: Option<&'a str>,
    pub tool: Option<&'a str>,
    pub model: Option<&'a str>,
    pub input_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub latency_ms: Option<u64>,
    pub status: Option<&'a str>,
}
