//! The simulated multi-agent workload and its budget controller.
//!
//! Every run walks planner → researcher (tool calls, then a summarizer
//! sub-agent) → writer → critic, usually with one revision loop (0 or 2 in
//! one run out of twenty each). A *naive* run uses the premium model
//! everywhere and re-sends the whole history each hop; a *lean* run routes
//! to cheaper models, caches its system prompts and carries a summary
//! instead of the history (the ideas and sizes of [`crate::workload`]).
//! Without budgets a naive run costs about $1.40 and a lean one about $0.12
//! (the README's story; a test keeps the medians and the spread there). The
//! shape of run `n` depends only on the seed and `n`; budgets change what is
//! sent, and timestamps are the wall clock.
//!
//! Enforcement follows `docs/control-protocol.md`: before each hop the
//! effective per-hop limit (agent over segment over global) trims, warns,
//! aborts or pauses; after each hop the run's tokens and cost are checked
//! against the run limits. Each breach is written as a `budget_exceeded`
//! record and sent to control clients as `budget.exceeded`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead as _, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};

use super::server::Control;
use crate::control::protocol::Exceeded;
use crate::model::budget::{BreachAction, Limits, effective};
use crate::pricing::PriceBook;
use crate::types::money::Usd;
use crate::types::usage::Usage;
use crate::workload::Style;

/// Simulated latencies are divided by this: a run takes a few seconds.
pub const TIME_SCALE: u64 = 50;
const NAIVE_MODEL: &str = "claude-opus-4-6";
/// The user's request, carried by every hop.
const TASK_TOKENS: u64 = 700;
/// What a lean hop carries instead of the full history.
const LEAN_SUMMARY: u64 = 1_500;
/// Lean researchers keep this much of a tool result.
const LEAN_TOOL_KEEP: u64 = 3_000;
const TIERS: [&str; 3] = ["free", "pro", "enterprise"];
const USERS_PER_TEAM: usize = 9;
/// Telemetry files, one per team, in the output directory.
pub const TEAM_FILES: [(&str, &str); 2] =
    [("naive", "naive-team.jsonl"), ("lean", "lean-team.jsonl")];

/// One kind of step in the workflow.
#[derive(Debug)]
pub struct Step {
    pub agent: &'static str,
    pub parent: Option<&'static str>,
    pub task: &'static str,
    pub tool: Option<&'static str>,
    system_prompt: u64,
    output: u64,
    /// Tool output appended to the history after this hop.
    tool_result: u64,
    lean_model: &'static str,
    /// Reasoning share of output on reasoning models.
    reasoning: u64,
}

const PLAN: Step = Step {
    agent: "planner",
    parent: None,
    task: "plan",
    tool: None,
    system_prompt: 2_200,
    output: 900,
    tool_result: 0,
    lean_model: "claude-haiku-4-5",
    reasoning: 0,
};
const SEARCH: Step = Step {
    agent: "researcher",
    parent: Some("planner"),
    task: "search",
    tool: Some("web_search"),
    system_prompt: 2_600,
    output: 450,
    tool_result: 9_000,
    lean_model: "gpt-4.1-mini",
    reasoning: 0,
};
const READ: Step = Step {
    agent: "researcher",
    parent: Some("planner"),
    task: "read",
    tool: Some("fetch_page"),
    system_prompt: 2_600,
    output: 500,
    tool_result: 10_000,
    lean_model: "gpt-4.1-mini",
    reasoning: 0,
};
const SUMMARIZE: Step = Step {
    agent: "summarizer",
    parent: Some("researcher"),
    task: "summarize",
    tool: None,
    system_prompt: 1_200,
    output: 800,
    tool_result: 0,
    lean_model: "gpt-4.1-nano",
    reasoning: 0,
};
const DRAFT: Step = Step {
    agent: "writer",
    parent: Some("planner"),
    task: "draft",
    tool: None,
    system_prompt: 3_400,
    output: 2_600,
    tool_result: 0,
    lean_model: "claude-sonnet-4-5",
    reasoning: 0,
};
const REVIEW: Step = Step {
    agent: "critic",
    parent: Some("planner"),
    task: "review",
    tool: None,
    system_prompt: 1_800,
    output: 1_200,
    tool_result: 0,
    lean_model: "o4-mini",
    reasoning: 800,
};
const REVISE: Step = Step {
    agent: "writer",
    parent: Some("planner"),
    task: "revise",
    tool: None,
    system_prompt: 3_400,
    output: 2_200,
    tool_result: 0,
    lean_model: "claude-sonnet-4-5",
    reasoning: 0,
};

/// One hop of a planned run, with its random sizes drawn up front.
#[derive(Debug)]
pub struct PlannedHop {
    pub step: &'static Step,
    output: u64,
    tool_result: u64,
    summary: u64,
    tool_keep: u64,
    reasoning: u64,
}

impl PlannedHop {
    /// What this hop adds to the history the next hops carry (whatever a
    /// budget trimmed from its own input).
    fn adds_to_history(&self) -> u64 {
        self.output + self.tool_result
    }
}

/// The shape of one run: who, where, and its hops.
#[derive(Debug)]
pub struct RunPlan {
    pub style: Style,
    pub team: &'static str,
    pub user: String,
    pub segment: String,
    /// The lean team's cached system prompts are already warm.
    cache_warm: bool,
    pub hops: Vec<PlannedHop>,
}

/// ±15 % jitter.
fn jitter(rng: &mut ChaCha8Rng, value: u64) -> u64 {
    value * rng.random_range(85..=115_u64) / 100
}

/// The plan of run `n` (1-based) under `seed`: deterministic.
#[must_use]
pub fn plan_run(seed: u64, n: u64) -> RunPlan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(n);
    let style = if rng.random_bool(0.5) {
        Style::Naive
    } else {
        Style::Lean
    };
    let team = match style {
        Style::Naive => "naive",
        Style::Lean => "lean",
    };
    let user_no = rng.random_range(1..=USERS_PER_TEAM);
    let tier = TIERS[user_no % TIERS.len()];
    let cache_warm = rng.random_bool(0.9);
    // Two pages read, then the critic sends the draft back once (in one
    // run out of twenty not at all, in one out of twenty twice): a team's
    // runs cost about the same (the README's $1.40 and $0.12 per run),
    // since every extra hop of a naive run re-sends a longer history.
    let mut steps: Vec<&'static Step> = vec![&PLAN, &SEARCH, &READ, &READ];
    steps.extend([&SUMMARIZE, &DRAFT, &REVIEW]);
    let revisions = match rng.random_range(0..100_u32) {
        0..5 => 0,
        5..95 => 1,
        _ => 2,
    };
    for _ in 0..revisions {
        steps.extend([&REVISE, &REVIEW]);
    }
    let hops = steps
        .into_iter()
        .map(|step| PlannedHop {
            step,
            output: jitter(&mut rng, step.output),
            tool_result: jitter(&mut rng, step.tool_result),
            summary: jitter(&mut rng, LEAN_SUMMARY),
            tool_keep: jitter(&mut rng, LEAN_TOOL_KEEP),
            reasoning: jitter(&mut rng, step.reasoning),
        })
        .collect();
    RunPlan {
        style,
        team,
        user: format!("{team}-u{user_no:02}"),
        segment: format!("{team}/{tier}"),
        cache_warm,
        hops,
    }
}

/// What one call sends and gets back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopShape {
    pub model: &'static str,
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
}

impl HopShape {
    /// Trims the context to `limit` input tokens (the cached prefix is
    /// trimmed last).
    fn trim(&mut self, limit: u64) {
        self.input = self.input.min(limit);
        self.cache_read = self.cache_read.min(self.input);
        self.cache_write = self.cache_write.min(self.input - self.cache_read);
    }

    fn usage(&self) -> Usage {
        Usage {
            input_uncached: self.input - self.cache_read - self.cache_write,
            cache_read: self.cache_read,
            cache_write_5m: self.cache_write,
            cache_write_1h: 0,
            output: self.output,
            reasoning: self.reasoning,
        }
    }

    /// Simulated duration of the call (before [`TIME_SCALE`]).
    fn latency_ms(&self) -> u64 {
        350 + self.output * 18 + self.input / 50
    }
}

/// The call hop `index` of `plan` makes, given the history so far.
#[must_use]
pub fn shape(plan: &RunPlan, index: usize, history: u64) -> HopShape {
    let hop = &plan.hops[index];
    let step = hop.step;
    let system = step.system_prompt;
    match plan.style {
        Style::Naive => HopShape {
            model: NAIVE_MODEL,
            input: system + history,
            cache_read: 0,
            cache_write: 0,
            output: hop.output,
            reasoning: 0,
        },
        Style::Lean => {
            let carried = TASK_TOKENS + if index == 0 { 0 } else { hop.summary };
            let tool_context = if step.tool.is_some() && index > 1 {
                hop.tool_keep
            } else {
                0
            };
            let input = system + carried + tool_context;
            let model = step.lean_model;
            let (cache_read, cache_write) = if model.starts_with("claude") {
                if plan.cache_warm {
                    (system, 0)
                } else {
                    (0, system)
                }
            } else if model.starts_with("gpt") && input >= 1024 {
                // OpenAI caches the static prefix automatically (in 128-token steps).
                (system / 128 * 128, 0)
            } else {
                (0, 0)
            };
            HopShape {
                model,
                input,
                cache_read,
                cache_write,
                output: hop.output,
                reasoning: hop.reasoning.min(hop.output),
            }
        }
    }
}

/// The calls run `plan` makes when no budget applies, in order: what
/// [`run`] sends then.
#[must_use]
pub fn unlimited_calls(plan: &RunPlan) -> Vec<HopShape> {
    let mut history = TASK_TOKENS;
    plan.hops
        .iter()
        .enumerate()
        .map(|(index, hop)| {
            let call = shape(plan, index, history);
            history += hop.adds_to_history();
            call
        })
        .collect()
}

/// One native record (`docs/schema.md`); no prompt text, ever.
#[derive(Debug, Default, Serialize)]
struct Record<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    ts: String,
    run_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hop: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_agent: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_write_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    /// Run-cost breaches: the dollar limit and the run's cost (extra fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    limit_usd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_cost_usd: Option<String>,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The team files, appended with complete lines (one `write` each, so a
/// follower never sees half a record).
pub struct Telemetry {
    naive: Mutex<File>,
    lean: Mutex<File>,
}

impl Telemetry {
    /// Opens (creates) the team files in `out`; also returns the highest run
    /// number already in them, so that a second session in the same
    /// directory continues the numbering instead of reusing run ids.
    ///
    /// # Errors
    /// The files cannot be opened or read, or one is not a regular file (a
    /// FIFO would block the start, a device such as `/dev/zero` never end).
    pub fn open(out: &Path) -> io::Result<(Telemetry, u64)> {
        let mut last_run = 0;
        let mut files = Vec::new();
        for (team, name) in TEAM_FILES {
            let path = out.join(name);
            let exists = match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => true,
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("'{}' is not a regular file", path.display()),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => return Err(e),
            };
            if exists {
                let prefix = format!("{team}-");
                for line in io::BufReader::new(File::open(&path)?).lines() {
                    let line = line?;
                    let number = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .and_then(|v| {
                            v.get("run_id")?
                                .as_str()?
                                .strip_prefix(&prefix)?
                                .parse::<u64>()
                                .ok()
                        });
                    last_run = last_run.max(number.unwrap_or(0));
                }
            }
            files.push(OpenOptions::new().create(true).append(true).open(&path)?);
        }
        let lean = files
            .pop()
            .ok_or_else(|| io::Error::other("no lean file"))?;
        let naive = files
            .pop()
            .ok_or_else(|| io::Error::other("no naive file"))?;
        Ok((
            Telemetry {
                naive: Mutex::new(naive),
                lean: Mutex::new(lean),
            },
            last_run,
        ))
    }

    /// Appends `record` to its team's file.
    ///
    /// # Errors
    /// The record cannot be serialized (a bug: nothing is written) or the
    /// file cannot be written (a full disk). Either ends the demo: its
    /// telemetry is its whole output, so it never goes on without it.
    fn write(&self, style: Style, record: &Record<'_>) -> io::Result<()> {
        let (file, name) = match style {
            Style::Naive => (&self.naive, TEAM_FILES[0].1),
            Style::Lean => (&self.lean, TEAM_FILES[1].1),
        };
        let mut line = serde_json::to_vec(record).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cannot serialize a record for {name}: {e}"),
            )
        })?;
        line.push(b'\n');
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(&line)
            .and_then(|()| file.flush())
            .map_err(|e| io::Error::new(e.kind(), format!("cannot write {name}: {e}")))
    }
}

/// Everything the runs share.
pub struct Sim {
    pub seed: u64,
    /// Run numbers already used in the output directory.
    pub first_run: u64,
    pub control: Arc<Control>,
    pub prices: PriceBook,
    pub telemetry: Telemetry,
}

/// How a run ended (its `run_end` status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Ok,
    /// A budget stopped it.
    Aborted,
    /// The demo stopped while it ran.
    Cancelled,
}

impl RunStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Aborted => "aborted",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// A breach to report.
struct Breach {
    hop: u32,
    agent: &'static str,
    limit_kind: &'static str,
    limit: Option<u64>,
    tokens: u64,
    action: BreachAction,
    limit_usd: Option<Usd>,
    cost: Option<Usd>,
}

struct RunCtx<'a> {
    sim: &'a Sim,
    plan: &'a RunPlan,
    run_id: String,
}

impl RunCtx<'_> {
    fn report(&self, breach: &Breach) -> io::Result<()> {
        let ts = now_rfc3339();
        self.sim.telemetry.write(
            self.plan.style,
            &Record {
                kind: Some("budget_exceeded"),
                ts: ts.clone(),
                run_id: &self.run_id,
                hop: Some(breach.hop),
                agent: Some(breach.agent),
                user: Some(&self.plan.user),
                segment: Some(&self.plan.segment),
                limit_kind: Some(breach.limit_kind),
                limit: breach.limit,
                tokens: Some(breach.tokens),
                action: Some(breach.action.as_str()),
                limit_usd: breach.limit_usd.map(|u| u.to_string()),
                run_cost_usd: breach.cost.map(|u| u.to_string()),
                ..Record::default()
            },
        )?;
        self.sim.control.notify(Exceeded {
            run_id: self.run_id.clone(),
            hop: Some(breach.hop),
            agent: Some(breach.agent.to_owned()),
            segment: Some(self.plan.segment.clone()),
            limit_kind: breach.limit_kind.to_owned(),
            limit: breach.limit,
            tokens: Some(breach.tokens),
            action: breach.action.as_str().to_owned(),
            ts: Some(ts),
        });
        Ok(())
    }

    fn hop(&self, index: usize, shape: &HopShape) -> io::Result<()> {
        let hop = &self.plan.hops[index];
        self.sim.telemetry.write(
            self.plan.style,
            &Record {
                ts: now_rfc3339(),
                run_id: &self.run_id,
                hop: Some(hop_number(index)),
                agent: Some(hop.step.agent),
                parent_agent: hop.step.parent,
                user: Some(&self.plan.user),
                segment: Some(&self.plan.segment),
                task: Some(hop.step.task),
                tool: hop.step.tool,
                model: Some(shape.model),
                input_tokens: Some(shape.input),
                cache_read_tokens: (shape.cache_read > 0).then_some(shape.cache_read),
                cache_write_tokens: (shape.cache_write > 0).then_some(shape.cache_write),
                output_tokens: Some(shape.output),
                reasoning_tokens: (shape.reasoning > 0).then_some(shape.reasoning),
                latency_ms: Some(shape.latency_ms()),
                status: Some("ok"),
                ..Record::default()
            },
        )
    }

    fn end(&self, status: RunStatus) -> io::Result<RunStatus> {
        self.sim.telemetry.write(
            self.plan.style,
            &Record {
                kind: Some("run_end"),
                ts: now_rfc3339(),
                run_id: &self.run_id,
                status: Some(status.as_str()),
                ..Record::default()
            },
        )?;
        Ok(status)
    }
}

fn hop_number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// Waits for `stop` to turn true (or its sender to go away).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// What the effective limits say after a hop: the run limits exceeded.
fn run_breaches(
    limits: &Limits,
    hop: u32,
    agent: &'static str,
    tokens: u64,
    cost: Usd,
) -> Vec<Breach> {
    let action = limits.on_run_breach.unwrap_or(BreachAction::Abort);
    let mut breaches = Vec::new();
    if let Some(limit) = limits.total_run_limit.filter(|&l| tokens > l) {
        breaches.push(Breach {
            hop,
            agent,
            limit_kind: "total_run",
            limit: Some(limit),
            tokens,
            action,
            limit_usd: None,
            cost: None,
        });
    }
    if let Some(limit) = limits.run_cost_limit().filter(|&l| cost > l) {
        breaches.push(Breach {
            hop,
            agent,
            limit_kind: "run_cost",
            limit: None,
            tokens,
            action,
            limit_usd: Some(limit),
            cost: Some(cost),
        });
    }
    breaches
}

/// Runs run number `n` to its end, writing its telemetry.
///
/// # Errors
/// The telemetry cannot be written: the run ends there.
pub async fn run(sim: Arc<Sim>, n: u64, mut stop: watch::Receiver<bool>) -> io::Result<RunStatus> {
    let plan = plan_run(sim.seed, n);
    let ctx = RunCtx {
        sim: &sim,
        plan: &plan,
        run_id: format!("{}-{:05}", plan.team, sim.first_run + n),
    };
    let mut limits_rx = sim.control.limits();
    let mut history = TASK_TOKENS;
    let (mut run_tokens, mut run_cost) = (0_u64, Usd::ZERO);
    // Run breaches under `warn` are reported once per run and kind.
    let mut warned: Vec<&'static str> = Vec::new();
    for (index, planned) in plan.hops.iter().enumerate() {
        let hop = hop_number(index);
        let agent = planned.step.agent;
        let mut call = shape(&plan, index, history);
        let original = call.input;

        // Before the call: the per-hop limit.
        let mut pause_reported = false;
        loop {
            let limits = limits_rx.borrow_and_update().clone();
            let eff = effective(&limits, Some(agent), Some(&plan.segment));
            let Some(limit) = eff.per_hop_limit.filter(|&l| original > l) else {
                break;
            };
            let action = eff.on_hop_breach.unwrap_or(BreachAction::Trim);
            let breach = Breach {
                hop,
                agent,
                limit_kind: "per_hop",
                limit: Some(limit),
                tokens: original,
                action,
                limit_usd: None,
                cost: None,
            };
            match action {
                BreachAction::Trim => {
                    ctx.report(&breach)?;
                    call.trim(limit);
                    break;
                }
                BreachAction::Warn => {
                    ctx.report(&breach)?;
                    break;
                }
                BreachAction::Abort => {
                    ctx.report(&breach)?;
                    return ctx.end(RunStatus::Aborted);
                }
                BreachAction::Pause => {
                    if !pause_reported {
                        ctx.report(&breach)?;
                        pause_reported = true;
                    }
                    // Held until a budget changes, then looked at again.
                    tokio::select! {
                        changed = limits_rx.changed() => if changed.is_err() {
                            return ctx.end(RunStatus::Cancelled);
                        },
                        () = stopped(&mut stop) => return ctx.end(RunStatus::Cancelled),
                    }
                }
            }
        }

        // The call.
        let pause = Duration::from_millis(call.latency_ms() / TIME_SCALE);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stopped(&mut stop) => return ctx.end(RunStatus::Cancelled),
        }
        ctx.hop(index, &call)?;
        let cost = sim
            .prices
            .price(call.model, &call.usage())
            .map_or(Usd::ZERO, |q| q.cost);
        run_tokens += call.input + call.output;
        run_cost += cost;
        history += planned.adds_to_history();

        // After the call: the run limits.
        let mut paused: Vec<&'static str> = Vec::new();
        loop {
            let limits = limits_rx.borrow_and_update().clone();
            let eff = effective(&limits, Some(agent), Some(&plan.segment));
            let breaches = run_breaches(&eff, hop, agent, run_tokens, run_cost);
            if breaches.is_empty() {
                break;
            }
            match eff.on_run_breach.unwrap_or(BreachAction::Abort) {
                BreachAction::Warn => {
                    for breach in breaches {
                        if !warned.contains(&breach.limit_kind) {
                            warned.push(breach.limit_kind);
                            ctx.report(&breach)?;
                        }
                    }
                    break;
                }
                BreachAction::Pause => {
                    for breach in breaches {
                        if !paused.contains(&breach.limit_kind) {
                            paused.push(breach.limit_kind);
                            ctx.report(&breach)?;
                        }
                    }
                    tokio::select! {
                        changed = limits_rx.changed() => if changed.is_err() {
                            return ctx.end(RunStatus::Cancelled);
                        },
                        () = stopped(&mut stop) => return ctx.end(RunStatus::Cancelled),
                    }
                }
                // A run cannot be trimmed: `trim` on a run limit stops it.
                BreachAction::Abort | BreachAction::Trim => {
                    for mut breach in breaches {
                        breach.action = BreachAction::Abort;
                        ctx.report(&breach)?;
                    }
                    return ctx.end(RunStatus::Aborted);
                }
            }
        }
    }
    ctx.end(RunStatus::Ok)
}

/// Counts of a driver's runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub started: u64,
    pub ok: u64,
    pub aborted: u64,
    pub cancelled: u64,
}

/// Starts `rate` runs per second until `stop` (or until `runs` runs have
/// finished), then lets the runs in flight end as cancelled.
///
/// # Errors
/// A run could not write its telemetry (or panicked): the other runs are
/// stopped as on `stop`, and the first failure is returned.
pub async fn drive(
    sim: Arc<Sim>,
    rate: f64,
    runs: Option<u64>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<Totals> {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The runs' own stop: `stop`, or a run that failed.
    let (halt, halted) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut totals = Totals::default();
    let mut failure: Option<io::Error> = None;
    let mut settle =
        |totals: &mut Totals, done: Result<io::Result<RunStatus>, JoinError>| match done {
            Ok(Ok(RunStatus::Ok)) => totals.ok += 1,
            Ok(Ok(RunStatus::Aborted)) => totals.aborted += 1,
            Ok(Ok(RunStatus::Cancelled)) => totals.cancelled += 1,
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert_with(|| io::Error::other(format!("a run failed: {e}")));
            }
        };
    loop {
        if runs.is_some_and(|n| totals.ok + totals.aborted + totals.cancelled >= n) {
            break;
        }
        let more = runs.is_none_or(|n| totals.started < n);
        tokio::select! {
            () = stopped(&mut stop) => break,
            _ = ticker.tick(), if more => {
                totals.started += 1;
                tasks.spawn(run(sim.clone(), totals.started, halted.clone()));
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let failed = matches!(done, Ok(Err(_)) | Err(_));
                settle(&mut totals, done);
                if failed {
                    break;
                }
            }
        }
    }
    // Runs in flight see the halt and end as cancelled; give them a moment.
    halt.send_replace(true);
    let drain = async {
        while let Some(done) = tasks.join_next().await {
            settle(&mut totals, done);
        }
    };
    if tokio::time::timeout(Duration::from_secs(2), drain)
        .await
        .is_err()
    {
        tracing::warn!("demo: runs still in flight after 2 s are abandoned");
    }
    match failure {
        Some(e) => {
            tracing::error!(error = %e, ?totals, "demo: the simulated runtime stopped");
            Err(e)
        }
        None => Ok(totals),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn plans_depend_only_on_seed_and_run_number() {
        let a = plan_run(1, 42);
        let b = plan_run(1, 42);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_ne!(format!("{a:?}"), format!("{:?}", plan_run(2, 42)));
        let styles: Vec<Style> = (1..=40).map(|n| plan_run(7, n).style).collect();
        assert!(styles.contains(&Style::Naive) && styles.contains(&Style::Lean));
        for n in 1..=40 {
            let plan = plan_run(7, n);
            assert!((6..=12).contains(&plan.hops.len()));
            assert_eq!(plan.hops[0].step.agent, "planner");
            assert!(
                plan.hops
                    .iter()
                    .any(|h| h.step.parent == Some("researcher"))
            );
            assert!(plan.segment.starts_with(plan.team));
        }
    }

    #[test]
    fn naive_runs_resend_history_and_lean_runs_do_not() {
        let naive = (1..)
            .map(|n| plan_run(3, n))
            .find(|p| p.style == Style::Naive)
            .unwrap();
        let lean = (1..)
            .map(|n| plan_run(3, n))
            .find(|p| p.style == Style::Lean)
            .unwrap();
        let naive_hops = unlimited_calls(&naive);
        let lean_hops = unlimited_calls(&lean);
        assert!(naive_hops.iter().all(|s| s.model == NAIVE_MODEL));
        assert!(
            naive_hops
                .windows(2)
                .all(|w| w[1].input + 3_000 > w[0].input)
        );
        assert!(naive_hops.last().unwrap().input > 20_000);
        assert!(lean_hops.iter().all(|s| s.input < 9_000));
        assert!(lean_hops.iter().any(|s| s.cache_read + s.cache_write > 0));
        let prices = PriceBook::embedded();
        for s in naive_hops.iter().chain(&lean_hops) {
            assert!(
                prices.price(s.model, &s.usage()).is_some(),
                "{} unpriced",
                s.model
            );
            assert!(s.cache_read + s.cache_write <= s.input && s.reasoning <= s.output);
        }
    }

    /// The nearest-rank percentile, as the dashboard computes it.
    fn percentile(sorted: &[Usd], p: usize) -> Usd {
        sorted[(p * sorted.len()).div_ceil(100).max(1) - 1]
    }

    #[test]
    fn each_team_costs_what_the_readme_says_per_run() {
        // README: a naive run costs about $1.40, a lean one about $0.12 —
        // the median, and most runs near it (the cost-per-run
        // distribution shows two humps, not a smear from $0.60 to $2.70).
        let prices = PriceBook::embedded();
        let usd = |text: &str| Usd::parse_decimal(text).unwrap();
        for seed in [7, 1, 2] {
            let (mut naive, mut lean) = (Vec::new(), Vec::new());
            for n in 1..=400 {
                let plan = plan_run(seed, n);
                let cost = unlimited_calls(&plan)
                    .iter()
                    .map(|call| prices.price(call.model, &call.usage()).unwrap().cost)
                    .fold(Usd::ZERO, |a, b| a + b);
                match plan.style {
                    Style::Naive => naive.push(cost),
                    Style::Lean => lean.push(cost),
                }
            }
            for (team, mut costs, low, high) in [
                ("naive", naive, usd("1.25"), usd("1.55")),
                ("lean", lean, usd("0.10"), usd("0.14")),
            ] {
                assert!(
                    costs.len() > 150,
                    "seed {seed}: {} {team} runs",
                    costs.len()
                );
                costs.sort_unstable();
                let median = percentile(&costs, 50);
                let (p10, p90) = (percentile(&costs, 10), percentile(&costs, 90));
                let summary = format!(
                    "seed {seed}, {team}: p10 ${p10}, p25 ${}, median ${median}, p75 ${}, p90 ${p90}, max ${}",
                    percentile(&costs, 25),
                    percentile(&costs, 75),
                    costs[costs.len() - 1]
                );
                eprintln!("{summary}");
                assert!((low..=high).contains(&median), "{summary}");
                // Half the runs within ±15 % of the median, 80 % within
                // -30 % / +40 %.
                let within = |cost: Usd, low: f64, high: f64| {
                    (median.to_f64() * low..=median.to_f64() * high).contains(&cost.to_f64())
                };
                assert!(within(percentile(&costs, 25), 0.85, 1.0), "{summary}");
                assert!(within(percentile(&costs, 75), 1.0, 1.15), "{summary}");
                assert!(within(p10, 0.7, 1.0) && within(p90, 1.0, 1.4), "{summary}");
            }
        }
    }

    /// A `Sim` whose telemetry files are open read-only: every write fails.
    pub(crate) fn unwritable_sim(dir: &Path) -> Arc<Sim> {
        let file = |name: &str| {
            let path = dir.join(name);
            std::fs::write(&path, "").unwrap();
            Mutex::new(File::open(&path).unwrap())
        };
        Arc::new(Sim {
            seed: 1,
            first_run: 0,
            control: Arc::new(Control::new()),
            prices: PriceBook::embedded(),
            telemetry: Telemetry {
                naive: file("naive.jsonl"),
                lean: file("lean.jsonl"),
            },
        })
    }

    #[tokio::test]
    async fn the_driver_stops_when_telemetry_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let (_stop, stop_rx) = watch::channel(false);
        // Without a limit on runs, only the failure can end the driver.
        let ended = tokio::time::timeout(
            Duration::from_secs(10),
            drive(unwritable_sim(dir.path()), 200.0, None, stop_rx),
        )
        .await;
        let error = ended
            .expect("the driver went on without its telemetry")
            .expect_err("a failure to write is an error");
        assert!(
            error
                .to_string()
                .starts_with("cannot write naive-team.jsonl: ")
                || error
                    .to_string()
                    .starts_with("cannot write lean-team.jsonl: "),
            "{error}"
        );
    }

    #[test]
    fn trimming_keeps_cache_within_input() {
        let mut s = HopShape {
            model: "claude-sonnet-4-5",
            input: 8_000,
            cache_read: 3_400,
            cache_write: 0,
            output: 10,
            reasoning: 0,
        };
        s.trim(2_000);
        assert_eq!((s.input, s.cache_read), (2_000, 2_000));
        s.trim(5_000);
        assert_eq!(s.input, 2_000);
        let mut w = HopShape {
            cache_read: 0,
            cache_write: 3_000,
            input: 4_000,
            ..s
        };
        w.trim(1_000);
        assert_eq!((w.input, w.cache_write), (1_000, 1_000));
    }
}
