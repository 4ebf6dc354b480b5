//! Command-line interface (clap derive; every option also reads `TOKWATCH_*`).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};

use crate::ingest::sources::files::DEFAULT_MAX_LINE_BYTES;
use crate::ingest::sources::socket::ListenAddr;
use crate::report::ReportFormat;
use crate::types::event::Format;

fn parse_format(text: &str) -> Result<Format, String> {
    text.parse()
}

#[derive(Debug, Parser)]
#[command(
    name = "tokwatch",
    version,
    about = "See, live, which hop of which agent loop is burning tokens and dollars.",
    long_about = "See, live, which hop of which agent loop is burning tokens and dollars.\n\n\
        tokwatch reads agent telemetry (OpenAI, Anthropic and Gemini responses, Claude Code \
        and Codex sessions, OpenTelemetry GenAI spans, LiteLLM payloads, and its own JSONL \
        schema; recognised line by line) and shows exact tokens and dollars per hop, run, \
        agent, user segment and model.\n\n\
        Without a subcommand it opens the dashboard on the files it follows (--follow) and \
        the sockets it listens on (--listen), or prints one JSON snapshot per interval \
        (--jsonl); with neither, the dashboard shows the built-in sample workload. \
        `tokwatch report` reads files once; `tokwatch demo` runs a simulated runtime that \
        obeys budgets; `tokwatch budget` pushes budgets to agent runtimes.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Live mode (no subcommand): follow files and listen on sockets.
    #[command(flatten)]
    pub live: LiveArgs,
}

/// A duration that must be above zero (periods and timers).
fn parse_period(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("'{text}' must be longer than zero"));
    }
    Ok(duration)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration like 200ms, 1s, 5m: {e}"))
}

/// Live mode: `tokwatch --follow logs/ --listen unix:/tmp/tw.sock --jsonl`.
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// A file, a directory (recursive, `*.jsonl`, new files picked up) or a
    /// glob to follow; `-` reads standard input. Repeatable. A path that
    /// does not exist yet is waited for.
    #[arg(long, value_name = "PATH", value_hint = ValueHint::AnyPath)]
    pub follow: Vec<String>,
    /// Accept JSONL from agents on `unix:PATH` or `tcp:HOST:PORT`. Repeatable.
    #[arg(long, value_name = "ADDR", value_parser = ListenAddr::from_str)]
    pub listen: Vec<ListenAddr>,
    /// Token TCP clients send as their first line; required for a non-loopback address.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TOKWATCH_LISTEN_TOKEN",
        hide_env_values = true
    )]
    pub listen_token: Option<String>,
    /// Most socket clients at once, over all listeners; more are turned away.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_clients: u64,
    /// Receive OpenTelemetry traces over OTLP/HTTP on HOST:PORT (`POST
    /// /v1/traces`, protobuf or JSON, gzip), e.g. 127.0.0.1:4318. Repeatable.
    #[arg(long, value_name = "HOST:PORT", value_parser = crate::ingest::sources::otlp::parse_addr)]
    pub otlp: Vec<String>,
    /// Receive OpenTelemetry traces over OTLP/gRPC on HOST:PORT
    /// (`TraceService/Export`, gzip), e.g. 127.0.0.1:4317. Repeatable.
    #[arg(long, value_name = "HOST:PORT", value_parser = crate::ingest::sources::otlp::parse_addr)]
    pub otlp_grpc: Vec<String>,
    /// Bearer token OTLP clients must send (`Authorization: Bearer TOKEN`);
    /// required for a non-loopback OTLP address.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TOKWATCH_OTLP_TOKEN",
        hide_env_values = true
    )]
    pub otlp_token: Option<String>,
    /// Largest OTLP request body, on the wire and once decompressed; larger
    /// ones get 413.
    #[arg(long, default_value_t = crate::ingest::sources::otlp::DEFAULT_MAX_BODY, value_name = "BYTES")]
    pub otlp_max_body: usize,
    /// Most OTLP connections at once, over all OTLP listeners; more wait to
    /// be accepted.
    #[arg(long, default_value_t = crate::ingest::sources::otlp::conn::DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    pub otlp_max_connections: usize,
    /// Close a socket client, or an OTLP connection, that sends nothing for
    /// this long (0: never).
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION")]
    pub client_idle_timeout: Duration,
    /// Print one JSON snapshot per interval to stdout instead of the dashboard.
    #[arg(long, conflicts_with = "headless")]
    pub jsonl: bool,
    /// No dashboard and no --jsonl: ingest, --record, serve --metrics (a
    /// fleet deployment); logs go to --log-file. Ends on SIGINT/SIGTERM or --exit-after.
    #[arg(long)]
    pub headless: bool,
    /// Serve Prometheus metrics on `GET http://HOST:PORT/metrics` (loopback unless --metrics-token).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_metrics_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Bearer token scrapes must send; required for a non-loopback --metrics address.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TOKWATCH_METRICS_TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// POST each anomaly (cost spike) as JSON to this http(s) URL, Slack-compatible
    /// (repeatable; see docs/insights.md § Anomalies).
    #[arg(long, value_name = "URL", value_parser = parse_webhook_url)]
    pub alert_webhook: Vec<reqwest::Url>,
    /// Config file (default: $XDG_CONFIG_HOME/tokwatch/config.toml).
    #[arg(long, value_name = "FILE", env = "TOKWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Dashboard theme: dark, light, high-contrast, solarized, a user theme name, or a .toml path.
    #[arg(long, value_name = "NAME|PATH", env = "TOKWATCH_THEME")]
    pub theme: Option<String>,
    /// An agent runtime's control socket to push budgets to: `unix:PATH` (or a
    /// bare path) or `tcp:127.0.0.1:PORT`. Repeatable (a fleet).
    #[arg(long, value_name = "ADDR")]
    pub control: Vec<String>,
    /// Token sent in `hello` to runtimes that require one.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TOKWATCH_CONTROL_TOKEN",
        hide_env_values = true
    )]
    pub control_token: Option<String>,
    /// Desired-budgets file: the dashboard's store, and with --jsonl the
    /// run limits forecasts are measured against (then it must exist).
    /// Default: the store $TOKWATCH_BUDGETS names, else
    /// $XDG_STATE_HOME/tokwatch/budgets.toml (either may be unsaved yet).
    #[arg(long, value_name = "FILE")]
    pub budgets: Option<PathBuf>,
    /// Show budgets but never change them.
    #[arg(long)]
    pub readonly: bool,
    /// Dashboard log file (default: $XDG_STATE_HOME/tokwatch/tokwatch.log); never the screen.
    #[arg(long, value_name = "FILE", env = "TOKWATCH_LOG_FILE")]
    pub log_file: Option<PathBuf>,
    /// Snapshot interval for --jsonl.
    #[arg(long, default_value = "1s", value_parser = parse_period, value_name = "DURATION")]
    pub interval: Duration,
    /// Exit (after a last snapshot) once this much time has passed.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub exit_after: Option<Duration>,
    /// Poll files instead of using file-system events (network mounts, containers).
    #[arg(long)]
    pub poll: bool,
    /// How often files are checked (the safety net with events; the only trigger with --poll).
    #[arg(long, default_value = "500ms", value_parser = parse_period, value_name = "DURATION")]
    pub poll_interval: Duration,
    /// Skip what followed files already hold; files created later are read whole.
    #[arg(long)]
    pub from_end: bool,
    /// Only count events at or after: a duration ago (`2h`) or a time (RFC 3339, YYYY-MM-DD).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Append every line received on sockets, and every OTLP request (as one
    /// normalized OTLP/JSON line), to this JSONL file before counting it;
    /// never prompt or completion text.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Include per-hop detail in snapshots.
    #[arg(long)]
    pub hops: bool,
    /// Runs listed in each --jsonl snapshot, the most expensive first (0 = all;
    /// totals always count every run).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub top: usize,
    /// Price override: tokwatch TOML or LiteLLM JSON.
    #[arg(long, value_name = "FILE", env = "TOKWATCH_PRICES")]
    pub prices: Option<PathBuf>,
    /// IANA time zone for bare dates in --since (default: local).
    #[arg(long, value_name = "TZ", env = "TOKWATCH_TIMEZONE")]
    pub timezone: Option<String>,
    /// Lines longer than this are skipped and counted.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE_BYTES, value_name = "BYTES", env = "TOKWATCH_MAX_LINE_BYTES")]
    pub max_line_bytes: usize,
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read telemetry files once and print tokens and dollars per run, hop,
    /// agent, segment and model.
    Report(ReportArgs),
    /// What to change and what it saves: routing, trimming, caching,
    /// reasoning, ranked, with the evidence, per run and per month.
    Advise(AdviseArgs),
    /// Two sets of runs side by side (two paths, or two segments) and the
    /// differences that explain the gap in cost per run.
    Compare(CompareArgs),
    /// Write the deterministic sample workloads (sample_logs/) or a benchmark corpus.
    Generate(GenerateArgs),
    /// A simulated multi-agent runtime that writes telemetry and obeys budgets
    /// pushed over the control protocol, with the dashboard on it.
    Demo(DemoArgs),
    /// Set, list or get budgets on agent runtimes (exit 0 only when acknowledged).
    Budget(BudgetArgs),
    /// Print the commented default config file, or the key bindings in force.
    Config(ConfigArgs),
    /// Print a shell completion script to standard output.
    Completions(CompletionsArgs),
    /// Print the manual page (roff) to standard output, or write every page to a directory.
    Man(ManArgs),
}

/// `tokwatch config`: what the config file holds.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("show")
        .required(true)
        .args(["print_default", "print_bindings"])
))]
pub struct ConfigArgs {
    /// Print the sample config file: every option at its default, commented
    /// (`tokwatch config --print-default > ~/.config/tokwatch/config.toml`).
    #[arg(long)]
    pub print_default: bool,
    /// Print the key bindings in force: the defaults with the config file's
    /// `[bindings]` applied.
    #[arg(long)]
    pub print_bindings: bool,
    /// How --print-bindings prints: a table, or TOML for a `[bindings]` section.
    #[arg(long, value_enum, default_value = "table", requires = "print_bindings")]
    pub format: BindingsFormat,
    /// Config file to read (default: $XDG_CONFIG_HOME/tokwatch/config.toml).
    #[arg(long, value_name = "FILE", env = "TOKWATCH_CONFIG", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,
}

/// How `tokwatch config --print-bindings` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BindingsFormat {
    /// Action, keys and what the action does; changed bindings marked.
    Table,
    /// A `[bindings]` section that reads back as the same bindings.
    Toml,
}

/// `tokwatch completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `tokwatch man [--out DIR]`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write tokwatch.1 and one page per subcommand (tokwatch-report.1,
    /// tokwatch-budget-set.1 and so on) into this directory instead of printing tokwatch.1.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub out: Option<PathBuf>,
}

/// How `advise` and `compare` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DocFormat {
    Table,
    Json,
    Markdown,
}

/// What `advise` and `compare` read (as `report` does).
#[derive(Debug, Clone, Args)]
pub struct ReadArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: DocFormat,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// What `report`, `advise` and `compare` read, and how.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Config file: the bleeding-hop thresholds (`[insights]`), the
    /// advisor's rules (`[advisor]`), `[duplicates]`; default
    /// $XDG_CONFIG_HOME/tokwatch/config.toml when it exists.
    #[arg(long, value_name = "FILE", env = "TOKWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Price override: tokwatch TOML or LiteLLM model_prices_and_context_window.json.
    #[arg(long, value_name = "FILE", env = "TOKWATCH_PRICES")]
    pub prices: Option<PathBuf>,
    /// IANA time zone for `report --group-by` and bare dates in --since/--until (default: local).
    #[arg(long, value_name = "TZ", env = "TOKWATCH_TIMEZONE")]
    pub timezone: Option<String>,
    /// Only events at or after: RFC 3339, YYYY-MM-DD, YYYYMMDD, or a duration ago (`24h`, `7d`).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only events before: RFC 3339, a duration ago, or a date (inclusive: the whole day).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Lines longer than this are skipped and counted.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE_BYTES, value_name = "BYTES", env = "TOKWATCH_MAX_LINE_BYTES")]
    pub max_line_bytes: usize,
    #[command(flatten)]
    pub input: InputArgs,
}

/// `tokwatch advise PATH…`.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// JSONL files, or directories searched recursively for `*.jsonl`.
    #[arg(required_unless_present_any = ["claude", "codex"])]
    pub paths: Vec<PathBuf>,
    /// A desired-budgets file (as `tokwatch budget` and the dashboard
    /// write it): the forecasts of runs still going say at which hop they
    /// cross its run limits (`--format json`). None by default.
    #[arg(long, value_name = "FILE")]
    pub budgets: Option<PathBuf>,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// `tokwatch compare A B`, `tokwatch compare PATH… --segment X --segment Y`,
/// `tokwatch compare PATH… --agent X --agent Y` or `tokwatch compare A B --agent X`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Two paths (side A and side B), or with --segment or two --agent any
    /// number of paths read together.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Compare these two user segments of the runs read (give it twice).
    #[arg(long, value_name = "NAME", num_args = 1)]
    pub segment: Vec<String>,
    /// Compare these two agents' hops in the runs read (give it twice), or
    /// once with two paths: that agent in A against that agent in B. Each
    /// run counts with the agent's hops only.
    #[arg(long, value_name = "NAME", num_args = 1, conflicts_with = "segment")]
    pub agent: Vec<String>,
    #[command(flatten)]
    pub read: ReadArgs,
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
    ///
    /// A path named here must exist (else exit status 2). What cannot be
    /// read under it (a broken or looping link, a directory that cannot be
    /// listed, a file that cannot be opened or fails while read) is skipped
    /// with a warning on stderr, listed in the report and counted in the
    /// JSON (`ingest.errors`); the exit status stays 0.
    #[arg(required_unless_present_any = ["claude", "codex"])]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table", env = "TOKWATCH_FORMAT")]
    pub format: ReportFormat,
    /// Add per-hop detail to each run.
    #[arg(long)]
    pub hops: bool,
    /// Add time buckets.
    #[arg(long, value_enum)]
    pub group_by: Option<GroupBy>,
    /// Runs listed in table and Markdown output (0 = all).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,
    /// 1: read, parse and aggregate on one thread; 2+: parse on a second thread (default: 2 with 2+ cores).
    /// With `--format json`, the advisor's analysis of the runs uses one fewer (at least one) while the document is rendered.
    #[arg(long, value_name = "N")]
    pub threads: Option<std::num::NonZeroUsize>,
    /// A desired-budgets file (as `tokwatch budget` and the dashboard
    /// write it): the forecasts of runs still going say at which hop they
    /// cross its run limits (`--format json`). None by default.
    #[arg(long, value_name = "FILE")]
    pub budgets: Option<PathBuf>,
    /// With `--format json`: leave `insights` (the advisor's analysis and
    /// the repeated prompts) out of the document, and skip the advisor.
    /// (Repeated prompts are still counted; table and Markdown show them.
    /// No other format runs the advisor.)
    #[arg(long)]
    pub no_insights: bool,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// What the input is and how to read it (live mode and `report` alike).
#[derive(Debug, Clone, Default, Args)]
pub struct InputArgs {
    /// Read every line as this format instead of detecting it per line:
    /// native, openai, anthropic, gemini, claude-code, codex, otlp, litellm.
    #[arg(long, value_name = "NAME", env = "TOKWATCH_INPUT_FORMAT", value_parser = parse_format)]
    pub input_format: Option<Format>,
    /// Read Claude Code transcripts: the `projects` directories of
    /// $CLAUDE_CONFIG_DIR (comma-separated), else ~/.claude and ~/.config/claude.
    #[arg(long)]
    pub claude: bool,
    /// Read OpenAI Codex CLI sessions: $CODEX_HOME/sessions (comma-separated
    /// homes), else ~/.codex/sessions.
    #[arg(long)]
    pub codex: bool,
    /// OTLP span or resource attribute whose value is the user segment
    /// (after `tokwatch.segment` and `segment`).
    #[arg(long, value_name = "KEY", env = "TOKWATCH_SEGMENT_ATTRIBUTE")]
    pub segment_attribute: Option<String>,
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
        /// Directory the sample files are written to.
        #[arg(long, default_value = "sample_logs", value_name = "DIR")]
        out: PathBuf,
    },
    /// A Claude Code projects directory (sessions, resumed sessions,
    /// sub-agents, streamed blocks, large tool outputs) for benchmarks and
    /// comparisons with ccusage: `--claude` reads it with CLAUDE_CONFIG_DIR=OUT.
    ClaudeCode {
        /// Directory the `projects` tree is written to.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// About this many bytes of transcripts.
        #[arg(long, default_value_t = 100_000_000)]
        bytes: u64,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// A large native file for benchmarks (same shape as the samples).
    Bench {
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Model calls in the corpus.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Seed of the generator.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

/// `tokwatch demo`: the simulated runtime (and, unless `--headless`, the dashboard on it).
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Run only the simulated runtime (no dashboard): for scripts and tests.
    #[arg(long)]
    pub headless: bool,
    /// Directory for the runtime's telemetry (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Control socket the runtime serves: `unix:PATH` (or a bare path) or `tcp:127.0.0.1:PORT`
    /// (default: a socket in the telemetry directory).
    #[arg(long, value_name = "ADDR")]
    pub control: Option<String>,
    /// Stop after this many runs (default: run until stopped).
    #[arg(long, value_name = "N")]
    pub runs: Option<u64>,
    /// Runs started per second.
    #[arg(long, default_value_t = 4.0, value_name = "R")]
    pub rate: f64,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// `tokwatch budget …`
#[derive(Debug, Args)]
pub struct BudgetArgs {
    #[command(subcommand)]
    pub action: BudgetAction,
}

/// Which scope a budget command addresses.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct ScopeArgs {
    /// The global budget.
    #[arg(long)]
    pub global: bool,
    /// An agent's budget (the name as the agent reports it; not blank).
    #[arg(long, value_name = "NAME", value_parser = scope_name)]
    pub agent: Option<String>,
    /// A user segment's budget (not blank).
    #[arg(long, value_name = "NAME", value_parser = scope_name)]
    pub segment: Option<String>,
}

/// An agent or segment name for a budget scope: a blank one could never
/// match a call, so it is refused rather than stored.
fn scope_name(name: &str) -> Result<String, String> {
    if name.trim().is_empty() {
        return Err("a scope name cannot be empty or blank".to_owned());
    }
    Ok(name.to_owned())
}

/// Where runtimes are and how long to wait for them.
#[derive(Debug, Clone, Args)]
pub struct ControlArgs {
    /// A runtime's control socket: `unix:PATH` (or a bare path) or `tcp:127.0.0.1:PORT`. Repeatable.
    #[arg(long, required = true, value_name = "ADDR")]
    pub control: Vec<String>,
    /// Token sent in `hello` (TCP runtimes that require one).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TOKWATCH_CONTROL_TOKEN",
        hide_env_values = true
    )]
    pub control_token: Option<String>,
    /// How long to wait for each runtime's answer.
    #[arg(long, default_value = "5s", value_parser = parse_period, value_name = "DURATION")]
    pub timeout: Duration,
    /// Desired-state file (default: $XDG_STATE_HOME/tokwatch/budgets.toml).
    #[arg(long, value_name = "FILE", env = "TOKWATCH_BUDGETS")]
    pub budgets: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BudgetAction {
    /// Set a scope's limits and push them; exit 0 only when every runtime acknowledged.
    Set {
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        control: ControlArgs,
        /// Input tokens per hop.
        #[arg(long, value_name = "N")]
        per_hop_limit: Option<u64>,
        /// Tokens per run.
        #[arg(long, value_name = "N")]
        run_limit: Option<u64>,
        /// Dollars per run.
        #[arg(long, value_name = "USD")]
        run_cost_limit: Option<String>,
        /// What the runtime does on a breach of the limits given here
        /// (default: trim for the per-hop limit, abort for run limits).
        #[arg(long, value_enum, value_name = "ACTION")]
        on_breach: Option<crate::model::budget::BreachAction>,
    },
    /// List the budgets each runtime has in force.
    List {
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Show one scope's budget on each runtime.
    Get {
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        control: ControlArgs,
    },
}

fn parse_webhook_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("'{text}' is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("'{text}' is not an http:// or https:// URL"));
    }
    Ok(url)
}

fn parse_metrics_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    crate::metrics::server::parse_addr(text).map_err(|e| e.to_string())
}
