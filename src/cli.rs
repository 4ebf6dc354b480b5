//! Command-line interface (clap derive; every option also reads `TOKWATCH_*`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::ingest::files::DEFAULT_MAX_LINE_BYTES;
use crate::report::ReportFormat;

#[derive(Debug, Parser)]
#[command(
    name = "tokwatch",
    version,
    about = "See, live, which hop of which agent loop is burning tokens and dollars."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read telemetry files once and print tokens and dollars per run, hop,
    /// agent, segment and model.
    Report(ReportArgs),
    /// Write the deterministic sample workloads (sample_logs/) or a benchmark corpus.
    Generate(GenerateArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GroupBy {
    Day,
    Week,
    Month,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// JSONL files, or directories searched recursively for `*.jsonl`.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table", env = "TOKWATCH_FORMAT")]
    pub format: ReportFormat,
    /// Price override: tokwatch TOML or LiteLLM model_prices_and_context_window.json.
    #[arg(long, value_name = "FILE", env = "TOKWATCH_PRICES")]
    pub prices: Option<PathBuf>,
    /// Add per-hop detail to each run.
    #[arg(long)]
    pub hops: bool,
    /// Add time buckets.
    #[arg(long, value_enum)]
    pub group_by: Option<GroupBy>,
    /// IANA time zone for --group-by and bare dates in --since/--until (default: local).
    #[arg(long, value_name = "TZ", env = "TOKWATCH_TIMEZONE")]
    pub timezone: Option<String>,
    /// Only events at or after: RFC 3339, YYYY-MM-DD, YYYYMMDD, or a duration ago (`24h`, `7d`).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only events before: RFC 3339, a duration ago, or a date (inclusive: the whole day).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Runs listed in table and Markdown output (0 = all).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,
    /// Lines longer than this are skipped and counted.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE_BYTES, value_name = "BYTES", env = "TOKWATCH_MAX_LINE_BYTES")]
    pub max_line_bytes: usize,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: GenerateWhat,
}

#[derive(Debug, Subcommand)]
pub enum GenerateWhat {
    /// The sample workloads committed in sample_logs/.
    Samples {
        #[arg(long, default_value = "sample_logs")]
        out: PathBuf,
    },
    /// A large native file for benchmarks (same shape as the samples).
    Bench {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}
