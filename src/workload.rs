//! Deterministic workloads in the native schema: the committed `sample_logs/`
//! (two teams running the same multi-agent workflow, naive versus lean, and
//! a 5-step naive loop beside a single call) and large benchmark corpora.
//!
//! Generation is pure (seeded, no clock); only the `write_*` functions touch
//! the file system.

pub mod claude_code;

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::types::money::Usd;

/// One native record, fields in documentation order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NativeRecord {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub ts: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hop: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_agent: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Exact (written as the decimal, never through `f64`; so never `NaN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<Usd>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
}

impl NativeRecord {
    /// The record as one JSON line (without its `\n`).
    ///
    /// # Panics
    /// Never: the fields are strings, integers and exact money (a valid
    /// JSON number), none of which `serde_json` can fail to write; a unit
    /// test writes a record with every field set.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a native record always serializes")
    }
}

/// How a team runs the shared workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Premium model everywhere, full history re-sent every hop, no caching.
    Naive,
    /// Routed models, cached system prompts, context trimmed to a summary.
    Lean,
}

/// One step of the planner → researcher → writer → critic workflow.
struct Step {
    agent: &'static str,
    task: &'static str,
    tool: Option<&'static str>,
    system_prompt: u64,
    output: u64,
    /// Tool output appended to the history after this hop.
    tool_result: u64,
    lean_model: &'static str,
    /// Reasoning share of output on reasoning models.
    reasoning: u64,
}

const WORKFLOW: [Step; 8] = [
    Step {
        agent: "planner",
        task: "plan",
        tool: None,
        system_prompt: 2_200,
        output: 900,
        tool_result: 0,
        lean_model: "claude-haiku-4-5",
        reasoning: 0,
    },
    Step {
        agent: "researcher",
        task: "search",
        tool: Some("web_search"),
        system_prompt: 2_600,
        output: 450,
        tool_result: 10_300,
        lean_model: "gpt-4.1-mini",
        reasoning: 0,
    },
    Step {
        agent: "researcher",
        task: "read",
        tool: Some("fetch_page"),
        system_prompt: 2_600,
        output: 450,
        tool_result: 13_300,
        lean_model: "gpt-4.1-mini",
        reasoning: 0,
    },
    Step {
        agent: "researcher",
        task: "read",
        tool: Some("fetch_page"),
        system_prompt: 2_600,
        output: 600,
        tool_result: 11_400,
        lean_model: "gpt-4.1-mini",
        reasoning: 0,
    },
    Step {
        agent: "writer",
        task: "draft",
        tool: None,
        system_prompt: 3_400,
        output: 2_600,
        tool_result: 0,
        lean_model: "claude-sonnet-4-5",
        reasoning: 0,
    },
    Step {
        agent: "critic",
        task: "review",
        tool: None,
        system_prompt: 1_800,
        output: 1_400,
        tool_result: 0,
        lean_model: "o4-mini",
        reasoning: 1_000,
    },
    Step {
        agent: "writer",
        task: "revise",
        tool: None,
        system_prompt: 3_400,
        output: 2_600,
        tool_result: 0,
        lean_model: "claude-sonnet-4-5",
        reasoning: 0,
    },
    Step {
        agent: "critic",
        task: "review",
        tool: None,
        system_prompt: 1_800,
        output: 900,
        tool_result: 0,
        lean_model: "gpt-4.1-mini",
        reasoning: 0,
    },
];

const NAIVE_MODEL: &str = "claude-opus-4-6";
const TASK_TOKENS: u64 = 700;
/// What a lean hop carries instead of the full history.
const LEAN_SUMMARY: u64 = 1_300;
/// Lean researchers keep this much of a tool result.
const LEAN_TOOL_KEEP: u64 = 3_000;
/// Lean runtime's per-hop budget (`trim` on breach).
const LEAN_PER_HOP_LIMIT: u64 = 8_000;
const TIERS: [&str; 3] = ["free", "pro", "enterprise"];

/// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: RFC 3339 writes
/// four-digit years only.
const MIN_TS_MS: i64 = -62_167_219_200_000;
const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Why a workload cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// A record's time is outside the years RFC 3339 can write.
    #[error(
        "a record would be dated {0} ms from 1970, outside the years 0000 to 9999 that RFC 3339 can write"
    )]
    TimeOutOfRange(i128),
}

impl From<WorkloadError> for io::Error {
    fn from(e: WorkloadError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// `ts_ms` as RFC 3339 with milliseconds, or the error: never another date
/// (chrono's default is 1970; past year 9999 it writes `+10000-…`).
fn rfc3339(ts_ms: i64) -> Result<String, WorkloadError> {
    (MIN_TS_MS..=MAX_TS_MS)
        .contains(&ts_ms)
        .then(|| chrono::DateTime::from_timestamp_millis(ts_ms))
        .flatten()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .ok_or(WorkloadError::TimeOutOfRange(i128::from(ts_ms)))
}

/// `ms + delta`, or the error when the sum leaves `i64`.
fn later(ms: i64, delta: u64) -> Result<i64, WorkloadError> {
    i64::try_from(i128::from(ms) + i128::from(delta))
        .map_err(|_| WorkloadError::TimeOutOfRange(i128::from(ms) + i128::from(delta)))
}

/// ±15 % jitter.
fn jitter(rng: &mut ChaCha8Rng, value: u64) -> u64 {
    let factor = rng.random_range(85..=115_u64);
    value * factor / 100
}

/// Identity of one run.
pub struct RunSpec<'a> {
    pub run_id: String,
    pub team: &'a str,
    pub user: String,
    pub tier: &'a str,
    pub start_ms: i64,
}

/// The records of one workflow run (hops, budget events, `run_end`).
///
/// # Panics
/// When a record's time would fall outside the years 0000 to 9999 (a
/// `start_ms` out of that range): [`try_workflow_run`] returns that error.
#[must_use]
#[allow(clippy::panic)]
pub fn workflow_run(style: Style, spec: &RunSpec<'_>, rng: &mut ChaCha8Rng) -> Vec<NativeRecord> {
    try_workflow_run(style, spec, rng).unwrap_or_else(|e| panic!("run '{}': {e}", spec.run_id))
}

/// The records of one workflow run (hops, budget events, `run_end`).
///
/// # Errors
/// A record's time would fall outside the years 0000 to 9999.
pub fn try_workflow_run(
    style: Style,
    spec: &RunSpec<'_>,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<NativeRecord>, WorkloadError> {
    let mut records = Vec::with_capacity(WORKFLOW.len() + 2);
    let mut history = TASK_TOKENS;
    let mut clock = spec.start_ms;
    let segment = format!("{}/{}", spec.team, spec.tier);
    // The lean team's writer system prompt is cached; the first run of a
    // burst writes it, later ones read it.
    let cache_warm = rng.random_bool(0.8);
    for (index, step) in WORKFLOW.iter().enumerate() {
        let hop = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let output = jitter(rng, step.output);
        let system = step.system_prompt;
        let (model, input, cache_read, cache_write, reasoning) = match style {
            Style::Naive => (NAIVE_MODEL, system + history, 0, 0, 0),
            Style::Lean => {
                let carried = if index == 0 {
                    TASK_TOKENS
                } else {
                    TASK_TOKENS + jitter(rng, LEAN_SUMMARY)
                };
                let tool_context = if step.tool.is_some() && index > 1 {
                    jitter(rng, LEAN_TOOL_KEEP)
                } else {
                    0
                };
                let input = system + carried + tool_context;
                let (read, write) = if step.lean_model.starts_with("claude") {
                    if cache_warm { (system, 0) } else { (0, system) }
                } else if step.lean_model.starts_with("gpt") && input >= 1024 {
                    // OpenAI caches the static prefix automatically (in 128-token steps).
                    (system / 128 * 128, 0)
                } else {
                    (0, 0)
                };
                let reasoning = jitter(rng, step.reasoning).min(output);
                (step.lean_model, input, read, write, reasoning)
            }
        };
        let mut input = input;
        let latency = 350 + output * 18 + input / 50;
        let hop_start = clock;
        clock = later(clock, latency)?;
        if style == Style::Lean && input > LEAN_PER_HOP_LIMIT {
            // The runtime trims the context to the per-hop limit and says so.
            records.push(NativeRecord {
                kind: Some("budget_exceeded"),
                ts: rfc3339(hop_start)?,
                run_id: Some(spec.run_id.clone()),
                hop: Some(hop),
                agent: Some(step.agent),
                limit_kind: Some("per_hop"),
                limit: Some(LEAN_PER_HOP_LIMIT),
                tokens: Some(input),
                action: Some("trim"),
                ..NativeRecord::default()
            });
            input = LEAN_PER_HOP_LIMIT;
        }
        records.push(NativeRecord {
            ts: rfc3339(clock)?,
            run_id: Some(spec.run_id.clone()),
            hop: Some(hop),
            agent: Some(step.agent),
            parent_agent: (index > 0)
                .then_some("planner")
                .filter(|_| step.agent != "planner"),
            user: Some(spec.user.clone()),
            segment: Some(segment.clone()),
            task: Some(step.task),
            tool: step.tool,
            model: Some(model),
            input_tokens: Some(input),
            cache_read_tokens: (cache_read > 0).then_some(cache_read.min(input)),
            cache_write_tokens: (cache_write > 0)
                .then_some(cache_write.min(input - cache_read.min(input))),
            output_tokens: Some(output),
            reasoning_tokens: (reasoning > 0).then_some(reasoning),
            latency_ms: Some(latency),
            status: Some("ok"),
            ..NativeRecord::default()
        });
        let tool_result = if step.tool_result > 0 {
            jitter(rng, step.tool_result)
        } else {
            0
        };
        history += output + tool_result;
    }
    records.push(NativeRecord {
        kind: Some("run_end"),
        ts: rfc3339(later(clock, 5)?)?,
        run_id: Some(spec.run_id.clone()),
        status: Some("ok"),
        ..NativeRecord::default()
    });
    Ok(records)
}

/// 2026-11-23T08:00:00Z
const SAMPLE_START_MS: i64 = 1_795_420_800_000;
const RUNS_PER_TEAM: usize = 24;

/// One team's runs over three working days.
///
/// # Errors
/// None in practice: the dates are fixed in November 2026.
pub fn team_runs(style: Style, team: &str, seed: u64) -> Result<Vec<NativeRecord>, WorkloadError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut records = Vec::new();
    for run in 0..RUNS_PER_TEAM {
        let day = i64::try_from(run / 8).unwrap_or(0);
        let slot = i64::try_from(run % 8).unwrap_or(0);
        let start_ms =
            SAMPLE_START_MS + day * 86_400_000 + slot * 55 * 60_000 + rng.random_range(0..600_000);
        let user_no = rng.random_range(1..=6_usize);
        let spec = RunSpec {
            run_id: format!("{team}-{:04}", run + 1),
            team,
            user: format!("{team}-u{user_no:02}"),
            tier: TIERS[user_no % TIERS.len()],
            start_ms,
        };
        records.extend(try_workflow_run(style, &spec, &mut rng)?);
    }
    Ok(records)
}

/// The 5-step loop that re-sends its history (~27,000 tokens) beside the
/// single 2,000-token call that does the same job.
///
/// # Errors
/// None in practice: the dates are fixed in November 2026.
pub fn loop_versus_single() -> Result<Vec<NativeRecord>, WorkloadError> {
    let start = SAMPLE_START_MS + 4 * 86_400_000;
    let mut records = Vec::new();
    let base =
        |run: &str, hop: u32, ts: i64, input: u64, output: u64| -> Result<_, WorkloadError> {
            Ok(NativeRecord {
                ts: rfc3339(ts)?,
                run_id: Some(run.to_owned()),
                hop: Some(hop),
                agent: Some("assistant"),
                user: Some("lab-u01".to_owned()),
                segment: Some("lab/pro".to_owned()),
                task: Some("answer"),
                model: Some("gpt-4.1"),
                input_tokens: Some(input),
                output_tokens: Some(output),
                latency_ms: Some(1_200),
                status: Some("ok"),
                ..NativeRecord::default()
            })
        };
    for step in 0..5_u32 {
        // hop k re-sends everything before it: 1,400 + 1,800·(k-1) tokens in.
        let input = 1_400 + 1_800 * u64::from(step);
        records.push(base(
            "loop-5-step",
            step + 1,
            start + i64::from(step) * 2_000,
            input,
            400,
        )?);
    }
    records.push(base("single-call", 1, start + 60_000, 1_600, 400)?);
    Ok(records)
}

/// Other realities: a gateway that reports its own cost, a self-hosted model
/// with no price, a record with text but no counts, one without a run id.
///
/// # Errors
/// None in practice: the dates are fixed in November 2026.
pub fn gateway_and_self_hosted() -> Result<Vec<NativeRecord>, WorkloadError> {
    let start = SAMPLE_START_MS + 4 * 86_400_000 + 3_600_000;
    let hop =
        |run: &str, n: u32, model: &'static str, input: u64, output: u64, cost: Option<Usd>| {
            Ok::<_, WorkloadError>(NativeRecord {
                ts: rfc3339(start + i64::from(n) * 1_500)?,
                run_id: Some(run.to_owned()),
                hop: Some(n),
                agent: Some("support-bot"),
                user: Some("ops-u01".to_owned()),
                segment: Some("ops/enterprise".to_owned()),
                task: Some("triage"),
                model: Some(model),
                input_tokens: Some(input),
                output_tokens: Some(output),
                cost_usd: cost,
                status: Some("ok"),
                ..NativeRecord::default()
            })
        };
    Ok(vec![
        // LiteLLM proxy reports cost; 0.0071 differs from list price (a negotiated discount).
        hop("gw-0001", 1, "openai/gpt-4o", 2_000, 300, Some(usd(71, 4)))?,
        hop("gw-0001", 2, "openai/gpt-4o", 2_600, 250, Some(usd(82, 4)))?,
        hop(
            "selfhost-0001",
            1,
            "llama-3.1-70b-instruct",
            3_000,
            500,
            None,
        )?,
        hop(
            "selfhost-0001",
            2,
            "llama-3.1-70b-instruct",
            3_800,
            450,
            None,
        )?,
        NativeRecord {
            ts: rfc3339(start + 30_000)?,
            run_id: Some("estimate-0001".to_owned()),
            hop: Some(1),
            agent: Some("support-bot"),
            segment: Some("ops/enterprise".to_owned()),
            model: Some("gpt-4o-mini"),
            prompt: Some("Summarize the customer's last three tickets and suggest a next step."),
            completion: Some(
                "All three tickets concern failed CSV exports; suggest upgrading the export worker.",
            ),
            ..NativeRecord::default()
        },
        NativeRecord {
            ts: rfc3339(start + 40_000)?,
            agent: Some("cron-digest"),
            segment: Some("ops/enterprise".to_owned()),
            model: Some("claude-haiku-4-5"),
            input_tokens: Some(5_200),
            cache_read_tokens: Some(4_096),
            output_tokens: Some(320),
            ..NativeRecord::default()
        },
    ])
}

/// `units × 10^-decimals` dollars, exact.
const fn usd(units: i128, decimals: u32) -> Usd {
    Usd::from_picos(units * 10_i128.pow(12 - decimals))
}

/// The files of `sample_logs/` and their lines.
///
/// # Panics
/// Never: the dates are fixed in November 2026 and a unit test generates
/// the files ([`try_sample_files`] returns the error instead).
#[must_use]
#[allow(clippy::panic)]
pub fn sample_files() -> Vec<(&'static str, Vec<String>)> {
    try_sample_files().unwrap_or_else(|e| panic!("sample_logs: {e}"))
}

/// The files of `sample_logs/` and their lines.
///
/// # Errors
/// None in practice: the dates are fixed in November 2026.
pub fn try_sample_files() -> Result<Vec<(&'static str, Vec<String>)>, WorkloadError> {
    let lines = |records: Vec<NativeRecord>| records.iter().map(NativeRecord::to_line).collect();
    Ok(vec![
        (
            "teams/naive-team.jsonl",
            lines(team_runs(Style::Naive, "naive", 11)?),
        ),
        (
            "teams/lean-team.jsonl",
            lines(team_runs(Style::Lean, "lean", 22)?),
        ),
        ("loop-vs-single.jsonl", lines(loop_versus_single()?)),
        (
            "misc/gateway-and-self-hosted.jsonl",
            lines(gateway_and_self_hosted()?),
        ),
    ])
}

/// Writes `sample_logs/` under `out`.
///
/// # Errors
/// File system errors.
pub fn write_samples(out: &Path) -> io::Result<Vec<(PathBuf, usize)>> {
    let mut written = Vec::new();
    for (name, lines) in try_sample_files()? {
        let path = out.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(&path, text)?;
        written.push((path, lines.len()));
    }
    Ok(written)
}

/// Runs of the benchmark corpus start 7 s apart.
const BENCH_RUN_EVERY_MS: u64 = 7_000;
/// Longer than any generated run lasts (8 hops of at most about a minute).
const RUN_SPAN_BOUND_MS: u64 = 3_600_000;

/// When benchmark run number `run` starts.
fn bench_start(run: u64) -> Result<i64, WorkloadError> {
    let ms = i128::from(SAMPLE_START_MS) + i128::from(run) * i128::from(BENCH_RUN_EVERY_MS);
    i64::try_from(ms).map_err(|_| WorkloadError::TimeOutOfRange(ms))
}

/// A benchmark corpus: `events` records of naive and lean runs with unique
/// run ids (so hops are distinct keys, as in real logs).
///
/// # Errors
/// File system errors; so many events that the last runs would be dated
/// after year 9999 (refused before anything is written).
pub fn write_bench_corpus(out: &Path, events: u64, seed: u64) -> io::Result<u64> {
    // Every run writes at least one event, so no run is numbered past
    // `events`.
    rfc3339(later(bench_start(events)?, RUN_SPAN_BOUND_MS)?)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut writer = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let (mut written, mut bytes, mut run) = (0_u64, 0_u64, 0_u64);
    while written < events {
        run += 1;
        let style = if run % 3 == 0 {
            Style::Naive
        } else {
            Style::Lean
        };
        let team = if style == Style::Naive {
            "naive"
        } else {
            "lean"
        };
        let user_no = rng.random_range(1..=500_usize);
        let spec = RunSpec {
            run_id: format!("bench-{run:08}"),
            team,
            user: format!("{team}-u{user_no:03}"),
            tier: TIERS[user_no % TIERS.len()],
            start_ms: bench_start(run)?,
        };
        for record in try_workflow_run(style, &spec, &mut rng)? {
            if written == events {
                break;
            }
            let line = record.to_line();
            writer.write_all(line.as_bytes())?;
            writer.write_all(b"\n")?;
            bytes += line.len() as u64 + 1;
            written += 1;
        }
    }
    writer.flush()?;
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(start_ms: i64) -> RunSpec<'static> {
        RunSpec {
            run_id: "r-1".into(),
            team: "lean",
            user: "lean-u01".into(),
            tier: "pro",
            start_ms,
        }
    }

    #[test]
    fn an_out_of_range_start_is_never_written_as_another_date() {
        // Past chrono's range (was written as 1970), past year 9999 (was
        // written as `+10000-…`, not RFC 3339), a day before year 0.
        for start_ms in [
            9_000_000_000_000_000,
            253_402_300_800_000,
            -62_167_305_600_000,
        ] {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let generated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                workflow_run(Style::Lean, &spec(start_ms), &mut rng)
            }));
            if let Ok(records) = generated {
                let ts: Vec<&str> = records.iter().map(|r| r.ts.as_str()).collect();
                unreachable!("start {start_ms} ms written as {ts:?}");
            }
        }
    }

    #[test]
    fn out_of_range_times_are_errors() {
        assert_eq!(rfc3339(MIN_TS_MS).unwrap(), "0000-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(MAX_TS_MS).unwrap(), "9999-12-31T23:59:59.999Z");
        for ms in [MIN_TS_MS - 1, MAX_TS_MS + 1, i64::MIN, i64::MAX] {
            assert_eq!(
                rfc3339(ms),
                Err(WorkloadError::TimeOutOfRange(i128::from(ms)))
            );
        }
        // Within range but minutes before its end: the later hops are refused.
        // Near `i64::MAX`: the clock never overflows, the start is refused.
        for start_ms in [MAX_TS_MS - 10_000, i64::MAX - 1, i64::MIN] {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let error = try_workflow_run(Style::Naive, &spec(start_ms), &mut rng).unwrap_err();
            assert!(
                error.to_string().contains("outside the years 0000 to 9999"),
                "{error}"
            );
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(try_workflow_run(Style::Naive, &spec(SAMPLE_START_MS), &mut rng).is_ok());
    }

    #[test]
    fn a_corpus_dated_past_year_9999_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corpus.jsonl");
        // ~3.6·10^10 runs 7 s apart reach year 10000.
        for events in [40_000_000_000, u64::MAX] {
            let error = write_bench_corpus(&path, events, 1).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
            assert!(error.to_string().contains("outside the years"), "{error}");
            assert!(!path.exists(), "nothing is written");
        }
        assert!(write_bench_corpus(&path, 100, 1).unwrap() > 0);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 100);
        assert!(text.lines().all(|l| l.starts_with('{') && l.ends_with('}')));
    }

    #[test]
    fn a_record_with_every_field_set_is_one_json_line() {
        let record = NativeRecord {
            kind: Some("budget_exceeded"),
            ts: rfc3339(SAMPLE_START_MS).unwrap(),
            run_id: Some("r\"1\n".into()),
            hop: Some(u32::MAX),
            agent: Some("writer"),
            parent_agent: Some("planner"),
            user: Some("u".into()),
            segment: Some("s/pro".into()),
            task: Some("draft"),
            tool: Some("fetch_page"),
            model: Some("gpt-4o"),
            input_tokens: Some(u64::MAX),
            cache_read_tokens: Some(1),
            cache_write_tokens: Some(2),
            output_tokens: Some(3),
            reasoning_tokens: Some(4),
            cost_usd: Some(usd(12_345_000_000_000_001, 12)),
            latency_ms: Some(5),
            status: Some("ok"),
            prompt: Some("p"),
            completion: Some("c"),
            limit_kind: Some("per_hop"),
            limit: Some(6),
            tokens: Some(7),
            action: Some("trim"),
        };
        let line = record.to_line();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("\"cost_usd\":12345.000000000001,"), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value.as_object().unwrap().len(), 25);
        assert_eq!(value["run_id"], "r\"1\n");
        assert_eq!(value["input_tokens"], u64::MAX);
    }

    #[test]
    fn samples_generate() {
        let files = try_sample_files().unwrap();
        assert_eq!(files.len(), 4);
        assert!(files.iter().all(|(_, lines)| {
            !lines.is_empty()
                && lines
                    .iter()
                    .all(|l| l.starts_with("{\"") && l.ends_with('}'))
        }));
    }
}
