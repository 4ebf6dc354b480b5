//! tokwatch: exact per-hop, per-run, per-agent, per-segment and per-model
//! tokens and dollars for multi-agent LLM workflows.
//!
//! Module groups (data flows top to bottom; see ARCHITECTURE.md):
//! - Leaf types: [`types`] (exact money, disjoint usage buckets, the
//!   normalized [`types::TelemetryEvent`]).
//! - Ingest: [`ingest`] reads files, sockets and standard input and decodes
//!   every input format (native, OpenAI, Anthropic, Gemini, Claude Code,
//!   Codex, OTLP, LiteLLM) into normalized events, one count per call,
//!   counting and locating rejected lines.
//! - Model (pure): [`model`] (the [`model::Ledger`] and its immutable
//!   [`model::Snapshot`]) and [`pricing`] (price tables and the cost rules).
//! - Output: [`report`] renders a snapshot as a table, JSON, CSV or Markdown;
//!   [`advise`] runs the advisor over a report's runs (on every core, and
//!   while the fold goes on).
//! - Glue: [`cli`], [`when`] (time arguments), [`workload`] (deterministic
//!   sample and benchmark workloads), [`sanitize`] (untrusted text).

#![forbid(unsafe_code)]

pub mod advise;
pub mod cli;
pub mod config;
pub mod control;
pub mod demo;
pub mod ingest;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod pricing;
pub mod report;
pub mod sanitize;
pub mod types;
pub mod ui;
pub mod when;
pub mod workload;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use clap::CommandFactory as _;

use cli::{BindingsFormat, Cli, Command, ConfigArgs, GenerateWhat, GroupBy, LiveArgs, ReportArgs};
use ingest::formats::DecoderConfig;
use ingest::sources::otlp::OtlpSettings;
use ingest::{IngestStats, Ingestor, TimeWindow};
use model::insights::BleedRules;
use model::{Ledger, LedgerConfig, PeriodSpec, PeriodUnit, Snapshot};
use pricing::PriceBook;
use report::{Filters, ReportOptions};
use when::{Bound, parse_when};

/// Runs a parsed command line.
///
/// # Errors
/// Bad arguments, missing paths, unreadable price files, I/O errors.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => run_live(cli.live)?,
        Some(Command::Report(args)) => {
            // Entries that could not be read were skipped: said once each
            // on stderr (and listed in the report), never fatal.
            let warn = |stats: &IngestStats| {
                for warning in report::unreadable_warnings(stats) {
                    eprintln!("tokwatch: warning: {warning}");
                }
            };
            let (text, read) = rendered_report(&args, now_ms(), warn)?;
            print_stdout(&text).context("cannot write the report")?;
            // The process ends here: freeing every run, hop and label one by
            // one would cost more than the system reclaiming the memory at
            // exit (5–6 % of a large report's time).
            std::mem::forget(read);
        }
        Some(Command::Advise(args)) => print_stdout(&advise_text(&args, now_ms())?)?,
        Some(Command::Compare(args)) => print_stdout(&compare_text(&args, now_ms())?)?,
        Some(Command::Demo(args)) => demo::run(args)?,
        Some(Command::Budget(args)) => return control::cli::run(args),
        Some(Command::Config(args)) => print_stdout(&config_text(&args)?)?,
        Some(Command::Completions(args)) => print_stdout(&completions(args.shell))?,
        Some(Command::Man(args)) => match args.out {
            None => print_stdout(&man_page()?)?,
            Some(dir) => {
                for path in write_man_pages(&dir)? {
                    eprintln!("wrote {}", path.display());
                }
            }
        },
        Some(Command::Generate(args)) => match args.what {
            GenerateWhat::Samples { out } => {
                let written = workload::write_samples(&out)?;
                for (path, lines) in written {
                    eprintln!("wrote {lines} lines to {}", path.display());
                }
            }
            GenerateWhat::ClaudeCode { out, bytes, seed } => {
                let corpus = workload::claude_code::write_claude_corpus(&out, bytes, seed)
                    .with_context(|| format!("cannot write the corpus to '{}'", out.display()))?;
                eprintln!(
                    "wrote {} files, {} lines, {} bytes ({} model calls) to {}",
                    corpus.files,
                    corpus.lines,
                    corpus.bytes,
                    corpus.assistant_messages,
                    out.display()
                );
            }
            GenerateWhat::Bench { out, events, seed } => {
                let bytes = workload::write_bench_corpus(&out, events, seed)?;
                eprintln!("wrote {events} events ({bytes} bytes) to {}", out.display());
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// `tokwatch config`: the commented sample config (`--print-default`), or
/// the key bindings in force after the config file (`--print-bindings`).
///
/// # Errors
/// An explicit config file that is missing, or an invalid config file.
pub fn config_text(args: &ConfigArgs) -> anyhow::Result<String> {
    if args.print_default {
        return Ok(config::SAMPLE.to_owned());
    }
    let (settings, origin) = match config::config_path(args.config.as_deref()) {
        Some((path, explicit)) => {
            let exists = path.is_file();
            let settings = config::load(Some(&path), explicit)?;
            let origin = if exists {
                format!("the defaults, then '{}'", path.display())
            } else {
                format!("the defaults (no config file at '{}')", path.display())
            };
            (settings, origin)
        }
        None => (
            config::Settings::default(),
            "the defaults (no home directory: no config file)".to_owned(),
        ),
    };
    Ok(match args.format {
        BindingsFormat::Table => config::print::bindings_table(&settings.keymap, &origin),
        BindingsFormat::Toml => config::print::bindings_toml(&settings.keymap, &origin),
    })
}

/// The completion script for `shell`.
#[must_use]
pub fn completions(shell: clap_complete::Shell) -> String {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tokwatch", &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

/// The command line as the manual pages describe it (no `help`
/// subcommands: `--help` is there).
fn man_command() -> clap::Command {
    fn no_help(cmd: clap::Command) -> clap::Command {
        cmd.disable_help_subcommand(true).mut_subcommands(no_help)
    }
    let mut cmd = no_help(Cli::command());
    cmd.build();
    cmd
}

/// `tokwatch.1`, the main manual page, as roff.
///
/// # Errors
/// Never in practice (rendering into memory).
pub fn man_page() -> anyhow::Result<String> {
    let mut page = Vec::new();
    clap_mangen::Man::new(man_command()).render(&mut page)?;
    Ok(String::from_utf8_lossy(&page).into_owned())
}

/// Writes `tokwatch.1` and a page per subcommand (`tokwatch-report.1`,
/// `tokwatch-budget-set.1`, …) into `dir`, created if missing; returns the
/// files written.
///
/// # Errors
/// The directory or a page cannot be written.
pub fn write_man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fn write(cmd: &clap::Command, dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        out.push(
            clap_mangen::Man::new(cmd.clone())
                .generate_to(dir)
                .with_context(|| format!("cannot write a manual page to '{}'", dir.display()))?,
        );
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            write(sub, dir, out)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory '{}'", dir.display()))?;
    let mut written = Vec::new();
    write(&man_command(), dir, &mut written)?;
    Ok(written)
}

/// Live mode: sources → aggregator → snapshots, shown by the dashboard or
/// printed as JSON lines. Without sources, the dashboard shows the built-in
/// sample workload.
fn run_live(mut args: LiveArgs) -> anyhow::Result<()> {
    for dir in agent_log_dirs(args.input.claude, args.input.codex)? {
        args.follow.push(dir.display().to_string());
    }
    let demo = if args.follow.is_empty()
        && args.listen.is_empty()
        && args.otlp.is_empty()
        && args.otlp_grpc.is_empty()
    {
        anyhow::ensure!(
            !args.jsonl && !args.headless,
            "nothing to watch: pass --follow PATH, --listen ADDR, --otlp HOST:PORT and/or --otlp-grpc HOST:PORT"
        );
        let dir = tempfile::Builder::new()
            .prefix("tokwatch-demo-")
            .tempdir()
            .context("cannot create the demo directory")?;
        workload::write_samples(dir.path())?;
        args.follow.push(dir.path().display().to_string());
        Some(dir)
    } else {
        None
    };
    let prices = load_prices(args.prices.as_deref())?;
    let tz = resolve_timezone(args.timezone.as_deref())?;
    let window = TimeWindow {
        since_ms: args
            .since
            .as_deref()
            .map(|s| parse_when(s, now_ms(), tz, Bound::Since))
            .transpose()?,
        until_ms: None,
    };
    let settings = live::LiveSettings {
        follow: args.follow,
        listen: args.listen,
        listen_token: args.listen_token,
        max_clients: args.max_clients,
        client_idle_timeout: args.client_idle_timeout,
        poll: args.poll,
        poll_interval: args.poll_interval,
        from_end: args.from_end,
        window,
        max_line_bytes: args.max_line_bytes,
        record: args.record,
        decoders: Arc::new(DecoderConfig {
            forced: args.input.input_format,
            segment_attribute: args.input.segment_attribute.clone(),
            // Live sources get theirs when they start (`live::Sources`).
            estimator: None,
        }),
        otlp: OtlpSettings {
            http: args.otlp,
            grpc: args.otlp_grpc,
            token: args.otlp_token,
            max_body: args.otlp_max_body,
            max_connections: args.otlp_max_connections,
            // A hidden hook for tests of backpressure (tests/otlp.rs).
            hold_aggregator_while: std::env::var_os("TOKWATCH_TEST_HOLD_WHILE").map(PathBuf::from),
        },
        metrics: match args.metrics {
            Some(addr) => {
                let token = args.metrics_token.clone();
                metrics::server::check(addr, token.as_deref())?;
                Some(live::MetricsSettings {
                    addr,
                    token,
                    caps: config_settings(args.config.as_deref())?.metrics,
                })
            }
            None => None,
        },
        advisor: {
            let settings = config_settings(args.config.as_deref())?;
            Some((settings.advisor, settings.insights.bleed_rules()))
        },
        // `--jsonl` forecasts against the budgets the dashboard would show
        // (its store, read once); the dashboard measures its own, live
        run_limits: if args.jsonl {
            jsonl_run_limits(args.budgets.as_deref())?
        } else {
            BTreeMap::new()
        },
        alerts: {
            let rules = config_settings(args.config.as_deref())?.anomalies;
            anyhow::ensure!(
                rules.enabled || args.alert_webhook.is_empty(),
                "--alert-webhook needs anomalies: the config file says [anomalies] enabled = false"
            );
            live::AlertSettings {
                rules: Some(rules),
                webhooks: args.alert_webhook.clone(),
                retry: live::RetryPolicy::default(),
            }
        },
        duplicates: config_settings(args.config.as_deref())?.duplicates,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let runtimes = live::Runtimes {
        control: args
            .control
            .iter()
            .map(|a| a.parse().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?,
        token: args.control_token.clone(),
    };
    if args.headless {
        let _log = logging::init_file(args.log_file.as_deref())?;
        tracing::info!(sources = ?settings.follow, listen = ?settings.listen, metrics = ?args.metrics, "headless starting");
        let serve = live::Serve {
            exit_after: args.exit_after,
            runtimes,
        };
        return runtime.block_on(live::run_serve(&settings, prices, &serve));
    }
    if args.jsonl {
        let options = ReportOptions {
            format: report::ReportFormat::Json,
            hops: args.hops,
            top_runs: 0,
            json_runs: args.top,
            rules: bleed_rules(args.config.as_deref())?,
            filters: Filters {
                since: args.since.clone(),
                until: None,
                group_by: None,
                timezone: args.since.as_ref().map(|_| tz.name().to_owned()),
                prices: args.prices.as_ref().map(|p| p.display().to_string()),
            },
        };
        let headless = live::Headless {
            every: args.interval,
            top_runs: args.top,
            exit_after: args.exit_after,
            runtimes,
        };
        return runtime.block_on(live::run_headless(
            &settings,
            prices,
            &headless,
            move |publication, sequence| {
                let info = report::LiveInfo {
                    sequence,
                    uptime_ms: u64::try_from(publication.uptime.as_millis()).unwrap_or(u64::MAX),
                    last: publication.last,
                    caught_up: publication.caught_up,
                };
                report::render_live_json_line(
                    &publication.snapshot,
                    &publication.stats,
                    &options,
                    info,
                    &publication.anomalies,
                )
            },
        ));
    }
    let mut ui = dashboard_settings(args.config.as_deref(), args.theme.as_deref())?;
    ui.control = args
        .control
        .iter()
        .map(|a| a.parse().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    ui.control_token = args.control_token.clone();
    ui.readonly = args.readonly;
    if let Some(path) = args.budgets.clone().or_else(budgets_store_from_env) {
        ui.budgets_path = Some(path);
    }
    let _log = logging::init_file(args.log_file.as_deref())?;
    logging::install_panic_hook();
    tracing::info!(sources = ?settings.follow, listen = ?settings.listen, "dashboard starting");
    let result = runtime.block_on(ui::app::run_tui(settings, prices, ui));
    drop(demo);
    result
}

/// The bleeding-hop thresholds of the config file (`[insights]`), the same
/// for reports, `--jsonl` and the dashboard.
///
/// # Errors
/// An explicit config file that is missing or invalid, or an invalid default one.
pub fn bleed_rules(config_path: Option<&Path>) -> anyhow::Result<BleedRules> {
    Ok(config_settings(config_path)?.insights.bleed_rules())
}

/// The config file's settings (`--config`, else the default file if any).
fn config_settings(config_path: Option<&Path>) -> anyhow::Result<config::Settings> {
    Ok(match config::config_path(config_path) {
        Some((path, explicit)) => config::load(Some(&path), explicit)?,
        None => config::load(None, false)?,
    })
}

/// Config file, themes and keymap for the dashboard.
///
/// # Errors
/// An invalid config file or theme.
pub fn dashboard_settings(
    config_path: Option<&Path>,
    theme: Option<&str>,
) -> anyhow::Result<ui::app::UiSettings> {
    let settings = match config::config_path(config_path) {
        Some((path, explicit)) => config::load(Some(&path), explicit)?,
        None => config::load(None, false)?,
    };
    let user_dir = config::user_theme_dir();
    // --theme beats NO_COLOR, which beats the config file's theme (no-color.org).
    let no_color = config::no_color_requested();
    let first = ui::theme::Theme::resolve(&settings, theme, no_color, user_dir.as_deref())?;
    // `t` cycles through the built-in themes after the chosen one (not under NO_COLOR).
    let mut themes = vec![first];
    if !(no_color && theme.is_none()) {
        for name in ui::theme::Theme::builtin_names() {
            if *name != themes[0].name
                && let Some(mut builtin) = ui::theme::Theme::builtin(name)
            {
                builtin.apply_overrides(&settings.theme_overrides);
                themes.push(builtin);
            }
        }
    }
    Ok(ui::app::UiSettings {
        advisor: settings.advisor.clone(),
        themes,
        keymap: settings.keymap.clone(),
        max_fps: settings.ui.max_fps,
        snapshot_interval: settings.ui.snapshot_interval,
        mouse: settings.ui.mouse,
        rules: settings.insights.bleed_rules(),
        recent_events: settings.ui.recent_events,
        control: Vec::new(),
        control_token: None,
        budgets_path: control::store::default_path(),
        readonly: false,
    })
}

/// The directories `--claude` and `--codex` read, from the environment.
///
/// # Errors
/// A flag was given and none of its directories exists.
pub fn agent_log_dirs(claude: bool, codex: bool) -> anyhow::Result<Vec<PathBuf>> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut dirs = Vec::new();
    if claude {
        let config = std::env::var("CLAUDE_CONFIG_DIR").ok();
        let candidates = claude_dirs(config.as_deref(), home.as_deref());
        let found = existing(&candidates);
        anyhow::ensure!(
            !found.is_empty(),
            "--claude: no Claude Code projects directory (looked in {})",
            list_paths(&candidates)
        );
        dirs.extend(found);
    }
    if codex {
        let codex_home = std::env::var("CODEX_HOME").ok();
        let candidates = codex_dirs(codex_home.as_deref(), home.as_deref());
        let found = existing(&candidates);
        anyhow::ensure!(
            !found.is_empty(),
            "--codex: no Codex sessions directory (looked in {})",
            list_paths(&candidates)
        );
        dirs.extend(found);
    }
    Ok(dirs)
}

fn existing(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths.iter().filter(|p| p.is_dir()).cloned().collect()
}

fn list_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nowhere: HOME is not set".into();
    }
    paths
        .iter()
        .map(|p| format!("'{}'", p.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `projects` under each `CLAUDE_CONFIG_DIR` entry (comma-separated), else
/// under `~/.claude` and `~/.config/claude`.
#[must_use]
pub fn claude_dirs(config_dir: Option<&str>, home: Option<&Path>) -> Vec<PathBuf> {
    let roots = listed_dirs(config_dir).unwrap_or_else(|| {
        home.map(|h| vec![h.join(".claude"), h.join(".config/claude")])
            .unwrap_or_default()
    });
    roots.into_iter().map(|r| r.join("projects")).collect()
}

/// `sessions` under each `CODEX_HOME` entry (comma-separated), else
/// `~/.codex/sessions` (archived copies are left alone: they repeat it).
#[must_use]
pub fn codex_dirs(codex_home: Option<&str>, home: Option<&Path>) -> Vec<PathBuf> {
    let roots = listed_dirs(codex_home)
        .unwrap_or_else(|| home.map(|h| vec![h.join(".codex")]).unwrap_or_default());
    roots.into_iter().map(|r| r.join("sessions")).collect()
}

/// The directories of a comma-separated list (an environment variable's
/// value); `None` when it is unset or blank.
fn listed_dirs(list: Option<&str>) -> Option<Vec<PathBuf>> {
    let list = list.filter(|l| !l.trim().is_empty())?;
    Some(
        list.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect(),
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The time zone named by `--timezone`, else the system's, else UTC.
///
/// # Errors
/// A name that is not an IANA zone.
pub fn resolve_timezone(name: Option<&str>) -> anyhow::Result<chrono_tz::Tz> {
    match name {
        Some(name) => name.parse().map_err(|_| {
            anyhow::anyhow!(
                "'{name}' is not an IANA time zone (e.g. Europe/Paris, America/New_York, UTC)"
            )
        }),
        None => Ok(iana_time_zone::get_timezone()
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(chrono_tz::UTC)),
    }
}

/// Loads `--prices` on top of the embedded table.
///
/// # Errors
/// The file cannot be read or is neither format.
pub fn load_prices(path: Option<&Path>) -> anyhow::Result<PriceBook> {
    let book = PriceBook::embedded();
    let Some(path) = path else { return Ok(book) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read price file '{}'", path.display()))?;
    let label = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let table = PriceBook::parse_override(&text, &label)
        .with_context(|| format!("price file '{}'", path.display()))?;
    Ok(book.with_override(table))
}

/// The run limits of the budgets file `path` (`--budgets`), by scope;
/// none without one.
///
/// # Errors
/// The file named is missing, unreadable or not a budgets file.
fn run_limits(path: Option<&Path>) -> anyhow::Result<model::budget::LimitsByScope> {
    let Some(path) = path else {
        return Ok(BTreeMap::new());
    };
    // A missing store is an empty one to the dashboard; a file named here
    // that is not there is a mistake to say.
    anyhow::ensure!(
        path.is_file(),
        "budgets file '{}' not found",
        path.display()
    );
    Ok(control::store::DesiredState::load(path)?.limits())
}

/// The dashboard's store `$TOKWATCH_BUDGETS` names, if it names one. (A
/// store, not a file named: the dashboard creates it on its first save.)
fn budgets_store_from_env() -> Option<PathBuf> {
    std::env::var_os("TOKWATCH_BUDGETS")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// The run limits `--jsonl` forecasts against: those of `--budgets FILE`
/// (as [`run_limits`]: it must be there, `--jsonl` never writes it), else
/// of the dashboard's store when it has one ([`budgets_store_from_env`],
/// else its default place). A store the dashboard has not saved yet holds
/// no limits; one that cannot be read is said and left out: it is not what
/// `--jsonl` was asked to read.
///
/// # Errors
/// `--budgets FILE` is missing or not a budgets file.
fn jsonl_run_limits(named: Option<&Path>) -> anyhow::Result<model::budget::LimitsByScope> {
    if named.is_some() {
        return run_limits(named);
    }
    let Some(path) = budgets_store_from_env().or_else(control::store::default_path) else {
        return Ok(BTreeMap::new());
    };
    Ok(match control::store::DesiredState::load(&path) {
        Ok(state) => state.limits(),
        Err(e) => {
            eprintln!("tokwatch: warning: forecasts without run limits: {e:#}");
            BTreeMap::new()
        }
    })
}

/// Reads the report's inputs once and returns what it shows.
///
/// # Errors
/// As [`run`].
pub fn build_report(
    args: &ReportArgs,
    now_ms: i64,
) -> anyhow::Result<(Snapshot, IngestStats, ReportOptions)> {
    let (_ledger, snapshot, stats, options) = advised_report_ledger(args, now_ms)?;
    Ok((snapshot, stats, options))
}

/// [`build_report_ledger`] with the advice (when the report has one) worked
/// out at once, with the early advisor: nothing is rendered meanwhile.
fn advised_report_ledger(
    args: &ReportArgs,
    now_ms: i64,
) -> anyhow::Result<(Ledger, Snapshot, IngestStats, ReportOptions)> {
    let (ledger, mut snapshot, stats, options, advice) =
        build_report_ledger(args, now_ms, AdviseWhen::WhileFolding)?;
    if let Some(job) = advice {
        snapshot.advice = Some(Arc::new(job.run(&snapshot)));
    }
    Ok((ledger, snapshot, stats, options))
}

/// When a report's advice is worked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AdviseWhen {
    /// Once the fold is done, on its own thread while the document is
    /// rendered (`report`): the rendering hides it, and nothing competes
    /// with the fold for the cores.
    WhileRendering,
    /// As runs end, on what the fold leaves idle, then the rest at once
    /// (`advise`, `compare`: nothing is rendered meanwhile). With one core,
    /// all of it once the fold is done.
    WhileFolding,
}

/// What [`build_report_ledger`] read: the ledger, its snapshot, how the
/// reading went, how to render it, and (a JSON report with insights) the
/// advice still to work out on the snapshot's runs.
type ReportLedger = (
    Ledger,
    Snapshot,
    IngestStats,
    ReportOptions,
    Option<advise::AdviceJob>,
);

/// [`build_report`], with the ledger the snapshot was taken from, and the
/// advice left to the caller (to work out now, or on a thread while the
/// report is rendered).
fn build_report_ledger(
    args: &ReportArgs,
    now_ms: i64,
    when: AdviseWhen,
) -> anyhow::Result<ReportLedger> {
    let settings = config_settings(args.source.config.as_deref())?;
    let prices = load_prices(args.source.prices.as_deref())?;
    let run_limits = run_limits(args.budgets.as_deref())?;
    let tz = resolve_timezone(args.source.timezone.as_deref())?;
    let window = TimeWindow {
        since_ms: args
            .source
            .since
            .as_deref()
            .map(|s| parse_when(s, now_ms, tz, Bound::Since))
            .transpose()?,
        until_ms: args
            .source
            .until
            .as_deref()
            .map(|s| parse_when(s, now_ms, tz, Bound::Until))
            .transpose()?,
    };
    let period = args.group_by.map(|g| PeriodSpec {
        unit: match g {
            GroupBy::Day => PeriodUnit::Day,
            GroupBy::Week => PeriodUnit::Week,
            GroupBy::Month => PeriodUnit::Month,
        },
        timezone: tz,
    });
    let mut paths = args.paths.clone();
    paths.extend(agent_log_dirs(
        args.source.input.claude,
        args.source.input.codex,
    )?);
    let found = ingest::sources::files::discover_all(&paths)?;
    let files = found.files;
    // Records with text but no counts: counted exactly on the estimator's
    // thread while files are read, folded in before the report is built.
    let (estimated_tx, estimated_rx) = std::sync::mpsc::channel();
    let estimator = ingest::estimate::Estimator::new(move |estimated| {
        let _ = estimated_tx.send(estimated);
    });
    let decoders = Arc::new(DecoderConfig {
        forced: args.source.input.input_format,
        segment_attribute: args.source.input.segment_attribute.clone(),
        estimator: Some(estimator.clone()),
    });
    // A report never shows the live tail, so it keeps no recent events.
    let mut ledger = Ledger::new(
        prices,
        LedgerConfig {
            period,
            recent_capacity: 0,
            per_minute: false,
            duplicates: config_settings(args.source.config.as_deref())?.duplicates,
            ..LedgerConfig::default().unlimited()
        },
    );
    // Only the JSON document prints the advisor's figures (`insights`):
    // other formats do not pay for them.
    let advise = args.format == report::ReportFormat::Json && !args.no_insights;
    let early =
        (advise && when == AdviseWhen::WhileFolding && advise::advisor_threads(args.threads) > 1)
            .then(|| {
                ledger.note_ended_runs();
                advise::EarlyAdvisor::start(
                    settings.advisor.clone(),
                    settings.insights.bleed_rules(),
                    ledger.prices().clone(),
                )
            });
    let (early, ended) = early.unzip();
    let mut ingestor = Ingestor::new(&mut ledger, window);
    ingestor.ended = ended;
    ingest::sources::files::record_skipped(&mut ingestor.stats, &found.skipped);
    ingest::pipeline::read_files_threads(
        &files,
        args.source.max_line_bytes,
        &decoders,
        &mut ingestor,
        args.threads,
    )?;
    estimator.flush();
    for estimated in estimated_rx.try_iter() {
        let source = ingestor
            .stats
            .source_named(&estimated.source, &estimated.origin);
        ingest::estimate::fold_estimated(&mut ingestor, source, &estimated);
    }
    let stats = ingestor.stats;
    let options = ReportOptions {
        format: args.format,
        hops: args.hops,
        top_runs: args.top,
        json_runs: 0,
        rules: settings.insights.bleed_rules(),
        filters: Filters {
            since: args.source.since.clone(),
            until: args.source.until.clone(),
            group_by: args.group_by.map(|g| format!("{g:?}").to_lowercase()),
            timezone: (args.group_by.is_some() || window != TimeWindow::default())
                .then(|| tz.name().to_owned()),
            prices: args
                .source
                .prices
                .as_ref()
                .map(|p: &PathBuf| p.display().to_string()),
        },
    };
    let mut snapshot = ledger.snapshot();
    if args.no_insights && args.format == report::ReportFormat::Json {
        // the ledger counted them; the document leaves `insights` out
        snapshot.duplicates = None;
    }
    let advice = advise.then(|| advise::AdviceJob {
        rules: settings.advisor,
        bleed: options.rules.clone(),
        prices: ledger.prices().clone(),
        threads: args.threads,
        early,
        run_limits,
    });
    Ok((ledger, snapshot, stats, options, advice))
}

/// What `advise` and `compare` read, as `report` arguments.
fn report_args_of(paths: Vec<PathBuf>, read: &cli::ReadArgs, budgets: Option<&Path>) -> ReportArgs {
    ReportArgs {
        paths,
        format: report::ReportFormat::Json,
        hops: false,
        group_by: None,
        top: 0,
        threads: None,
        budgets: budgets.map(Path::to_path_buf),
        no_insights: false,
        source: read.source.clone(),
    }
}

/// Reads `paths` as `report` does (unreadable entries warned about on
/// stderr), with the advice attached to the snapshot.
fn read_advised(
    paths: Vec<PathBuf>,
    read: &cli::ReadArgs,
    budgets: Option<&Path>,
    now_ms: i64,
) -> anyhow::Result<(Ledger, Snapshot)> {
    let args = report_args_of(paths, read, budgets);
    let (ledger, snapshot, stats, _) = advised_report_ledger(&args, now_ms)?;
    for warning in report::unreadable_warnings(&stats) {
        eprintln!("tokwatch: warning: {warning}");
    }
    Ok((ledger, snapshot))
}

/// Version line of the `advise` and `compare` JSON documents.
#[derive(serde::Serialize)]
struct JsonDoc<'a, T: serde::Serialize> {
    schema_version: u32,
    generator: String,
    price_table: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

fn json_doc<T: serde::Serialize>(price_table: &str, body: &T) -> anyhow::Result<String> {
    let doc = JsonDoc {
        schema_version: report::SCHEMA_VERSION,
        generator: format!("tokwatch {}", env!("CARGO_PKG_VERSION")),
        price_table,
        body,
    };
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    Ok(text)
}

/// `tokwatch advise` as text.
///
/// # Errors
/// As [`run`].
pub fn advise_text(args: &cli::AdviseArgs, now_ms: i64) -> anyhow::Result<String> {
    let mut paths = args.paths.clone();
    paths.extend(agent_log_dirs(
        args.read.source.input.claude,
        args.read.source.input.codex,
    )?);
    let (_ledger, snapshot) = read_advised(paths, &args.read, args.budgets.as_deref(), now_ms)?;
    let advice = snapshot
        .advice
        .clone()
        .context("the report carries no advice (a bug)")?;
    Ok(match args.read.format {
        cli::DocFormat::Json => json_doc(&snapshot.price_version, &*advice)?,
        cli::DocFormat::Table => report::insights::advise_text(&advice, false),
        cli::DocFormat::Markdown => report::insights::advise_text(&advice, true),
    })
}

/// One side of a comparison: the runs of `snapshot` as `part` takes them
/// (whole, or the part of an agent; `None`: left out).
fn compare_side(
    label: &str,
    snapshot: &Snapshot,
    part: impl Fn(&Arc<model::RunAgg>) -> Option<Arc<model::RunAgg>>,
    settings: &config::Settings,
    prices: &PriceBook,
) -> (model::advisor::compare::Side, model::advisor::Advice) {
    let mut sub = snapshot.clone();
    sub.runs = snapshot.runs.iter().filter_map(part).collect();
    // The duplicate prompts are summed over the whole reading and cannot be
    // split by side: a side's advice has no semantic-cache lever (compare
    // ranks its differences from the levers on each side's own hops).
    sub.duplicates = None;
    let bleed = settings.insights.bleed_rules();
    // (compare shows no forecasts: no run limits)
    let advice = advise::advise_runs(
        &sub,
        (settings.advisor.clone(), bleed.clone()),
        prices,
        None,
        None,
        BTreeMap::new(),
    );
    let insights = model::insights::Insights::compute(&sub, &bleed, prices, None);
    let cost = sub.runs.iter().map(|r| r.counters().cost).sum();
    let side = model::advisor::compare::Side::new(label, &insights, &advice, cost);
    (side, advice)
}

/// The part of `run` made by `agent`'s hops.
fn agent_part(run: &Arc<model::RunAgg>, agent: &str) -> Option<Arc<model::RunAgg>> {
    run.only_agent(agent).map(Arc::new)
}

/// `tokwatch compare` as text.
///
/// # Errors
/// Not one of the four forms (two paths; --segment twice; --agent twice;
/// --agent once with two paths); as [`run`].
pub fn compare_text(args: &cli::CompareArgs, now_ms: i64) -> anyhow::Result<String> {
    let settings = config_settings(args.read.source.config.as_deref())?;
    // compare shows no forecasts: no budgets to read
    let read_together = || read_advised(args.paths.clone(), &args.read, None, now_ms);
    let read_apart = |path: &PathBuf,
                      part: &dyn Fn(&Arc<model::RunAgg>) -> Option<Arc<model::RunAgg>>,
                      label: String|
     -> anyhow::Result<_> {
        let (ledger, snapshot) = read_advised(vec![path.clone()], &args.read, None, now_ms)?;
        Ok((
            compare_side(&label, &snapshot, part, &settings, ledger.prices()),
            snapshot.price_version.clone(),
        ))
    };
    let forms = "compare needs two paths (tokwatch compare A B), --segment given twice, --agent given twice, or --agent once with two paths";
    let ((a, advice_a), (b, advice_b), price_table) =
        match (&args.segment[..], &args.agent[..], &args.paths[..]) {
            ([x, y], [], _) => {
                let (ledger, snapshot) = read_together()?;
                let side = |name: &str| {
                    let in_segment = |r: &Arc<model::RunAgg>| {
                        (r.segment.as_deref().unwrap_or(model::snapshot::NO_SEGMENT) == name)
                            .then(|| r.clone())
                    };
                    compare_side(name, &snapshot, in_segment, &settings, ledger.prices())
                };
                (side(x), side(y), snapshot.price_version.clone())
            }
            ([], [x, y], _) => {
                let (ledger, snapshot) = read_together()?;
                let side = |name: &str| {
                    let label = format!("agent {name}");
                    let part = |r: &Arc<model::RunAgg>| agent_part(r, name);
                    compare_side(&label, &snapshot, part, &settings, ledger.prices())
                };
                for name in [x, y] {
                    anyhow::ensure!(
                        snapshot
                            .runs
                            .iter()
                            .any(|r| r.hops.iter().any(|h| &*h.agent == name)),
                        "no hop of agent {name:?} in what was read"
                    );
                }
                (side(x), side(y), snapshot.price_version.clone())
            }
            ([], [agent], [pa, pb]) => {
                let part = |r: &Arc<model::RunAgg>| agent_part(r, agent);
                let label = |p: &PathBuf| format!("{} agent {agent}", p.display());
                let (a, version) = read_apart(pa, &part, label(pa))?;
                let (b, _) = read_apart(pb, &part, label(pb))?;
                for ((side, _), path) in [(&a, pa), (&b, pb)] {
                    anyhow::ensure!(
                        side.runs > 0,
                        "no hop of agent {agent:?} in {}",
                        path.display()
                    );
                }
                (a, b, version)
            }
            ([], [], [pa, pb]) => {
                let whole = |r: &Arc<model::RunAgg>| Some(r.clone());
                let (a, version) = read_apart(pa, &whole, pa.display().to_string())?;
                let (b, _) = read_apart(pb, &whole, pb.display().to_string())?;
                (a, b, version)
            }
            _ => anyhow::bail!("{forms}"),
        };
    let comparison = model::advisor::compare::compare(a, &advice_a, b, &advice_b);
    Ok(match args.read.format {
        cli::DocFormat::Json => json_doc(&price_table, &comparison)?,
        cli::DocFormat::Table => report::insights::compare_text(&comparison, false),
        cli::DocFormat::Markdown => report::insights::compare_text(&comparison, true),
    })
}

/// The report as text.
///
/// # Errors
/// As [`run`].
pub fn report_text(args: &ReportArgs, now_ms: i64) -> anyhow::Result<String> {
    Ok(rendered_report(args, now_ms, |_| {})?.0)
}

/// What a report was rendered from: freeing it costs time a process about
/// to end can skip.
type ReportRead = (
    Ledger,
    Arc<Snapshot>,
    IngestStats,
    Option<advise::PendingAdvice>,
);

/// The report as text, and what it was rendered from; `read` is told how
/// the reading went before the rendering starts. The advisor finishes on a
/// thread of its own while the document is rendered here: JSON writes
/// `insights` last and waits for the advice only there.
fn rendered_report(
    args: &ReportArgs,
    now_ms: i64,
    read: impl FnOnce(&IngestStats),
) -> anyhow::Result<(String, ReportRead)> {
    let (ledger, snapshot, stats, options, advice) =
        build_report_ledger(args, now_ms, AdviseWhen::WhileRendering)?;
    read(&stats);
    let snapshot = Arc::new(snapshot);
    let advice = advice.map(|job| job.spawn(Arc::clone(&snapshot)));
    let text = report::render_with_late_advice(&snapshot, &stats, &options, advice.as_ref())?;
    Ok((text, (ledger, snapshot, stats, advice)))
}
