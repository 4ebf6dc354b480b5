//! `tokwatch demo`: a simulated multi-agent runtime that writes native
//! telemetry, serves the control protocol and obeys the budgets it is sent
//! (`docs/demo.md`), with the dashboard on it.
//!
//! ```text
//!  tokwatch budget / dashboard ──control──► server ──► BudgetTable ──limits──► runs ──► DIR/*.jsonl ──► dashboard
//!                             ◄─budget.exceeded──────────────────────────────┘
//! ```

pub mod budgets;
pub mod server;
pub mod simulation;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::cli::DemoArgs;
use crate::control::ControlAddr;
use server::{Control, ControlListener};
use simulation::{Sim, Telemetry, Totals};

/// The most runs started per second.
const MAX_RATE: f64 = 1000.0;

/// What the simulated runtime needs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Directory for the telemetry (created if missing).
    pub out: PathBuf,
    /// Control address as given: `unix:PATH`, a bare path, or
    /// `tcp:127.0.0.1:PORT`.
    pub control: String,
    /// Stop after this many runs have finished.
    pub runs: Option<u64>,
    /// Runs started per second.
    pub rate: f64,
    pub seed: u64,
}

/// A bound runtime, ready to [`serve`](Demo::serve).
pub struct Demo {
    config: DemoConfig,
    listener: ControlListener,
    control: Arc<Control>,
    sim: Arc<Sim>,
}

impl Demo {
    /// Validates the configuration, opens the telemetry files and binds the
    /// control address. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// A bad rate or address, an address in use, unwritable output.
    pub fn start(config: DemoConfig) -> anyhow::Result<Demo> {
        anyhow::ensure!(
            config.rate.is_finite() && config.rate > 0.0 && config.rate <= MAX_RATE,
            "--rate must be a number of runs per second above 0 and at most {MAX_RATE}"
        );
        std::fs::create_dir_all(&config.out)
            .with_context(|| format!("cannot create the directory '{}'", config.out.display()))?;
        let addr: ControlAddr = config.control.parse().map_err(anyhow::Error::msg)?;
        let (telemetry, last_run) = Telemetry::open(&config.out).with_context(|| {
            format!(
                "cannot open the telemetry files in '{}'",
                config.out.display()
            )
        })?;
        let listener = ControlListener::bind(&addr)?;
        let control = Arc::new(Control::new());
        let sim = Arc::new(Sim {
            seed: config.seed,
            first_run: last_run,
            control: control.clone(),
            prices: crate::pricing::PriceBook::embedded(),
            telemetry,
        });
        Ok(Demo {
            config,
            listener,
            control,
            sim,
        })
    }

    /// The control address clients use (with the real port for `tcp:…:0`).
    #[must_use]
    pub fn control_addr(&self) -> &str {
        self.listener.name()
    }

    /// This process start's runtime id (as sent in `hello`).
    #[must_use]
    pub fn runtime_id(&self) -> &str {
        self.control.runtime_id()
    }

    /// Runs the simulation and serves the control protocol until `shutdown`
    /// turns true (or its sender is dropped), or until `runs` runs have
    /// finished. Runs in flight end as `cancelled`; the socket is removed.
    ///
    /// # Errors
    /// The telemetry cannot be written (a full disk): the runtime stops
    /// (runs cancelled, socket removed) rather than go on without it.
    pub async fn serve(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<Totals> {
        let out = self.config.out.clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(self.listener.serve(self.control.clone(), stop_rx.clone()));
        let driver = simulation::drive(self.sim, self.config.rate, self.config.runs, stop_rx);
        tokio::pin!(driver);
        let totals = tokio::select! {
            totals = &mut driver => totals,
            () = simulation::stopped(&mut shutdown) => {
                let _ = stop_tx.send(true);
                driver.await
            }
        };
        let _ = stop_tx.send(true);
        if let Err(e) = server.await {
            tracing::error!(error = %e, "demo: the control server failed");
        }
        let totals = totals.with_context(|| {
            format!(
                "the demo runtime stopped: its telemetry in '{}' cannot be written",
                out.display()
            )
        })?;
        tracing::info!(?totals, "demo runtime stopped");
        Ok(totals)
    }
}

/// Runs the simulated runtime (see [`Demo::serve`]).
///
/// # Errors
/// As [`Demo::start`] and [`Demo::serve`].
pub async fn run_runtime(
    config: DemoConfig,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let demo = Demo::start(config)?;
    demo.serve(shutdown).await?;
    Ok(())
}

/// Turns true on SIGINT, SIGTERM or SIGHUP (a closed terminal).
fn on_signals() -> anyhow::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        let _ = tx.send(true);
        // Keep the sender alive: a dropped sender also means "stop".
        std::future::pending::<()>().await;
    });
    Ok(rx)
}

/// `tokwatch demo`.
///
/// # Errors
/// Bad arguments, an unusable output directory or control address, the
/// dashboard's own errors.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    // The session's temporary directory, removed at exit (when no --out).
    let temp = match &args.out {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("tokwatch-demo-")
                .tempdir()
                .context("cannot create the demo directory")?,
        ),
    };
    let out = match (&args.out, &temp) {
        (Some(out), _) => out.clone(),
        (None, Some(dir)) => dir.path().to_path_buf(),
        (None, None) => anyhow::bail!("no output directory"),
    };
    let control = args
        .control
        .clone()
        .unwrap_or_else(|| format!("unix:{}", out.join("control.sock").display()));
    let config = DemoConfig {
        out: out.clone(),
        control,
        runs: args.runs,
        rate: args.rate,
        seed: args.seed,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = if args.headless {
        runtime.block_on(async {
            let shutdown = on_signals()?;
            let demo = Demo::start(config)?;
            eprintln!(
                "tokwatch demo: telemetry in {}, control on {}",
                out.display(),
                demo.control_addr()
            );
            demo.serve(shutdown).await?;
            anyhow::Ok(())
        })
    } else {
        run_with_dashboard(&runtime, config)
    };
    drop(runtime);
    drop(temp);
    result
}

fn run_with_dashboard(runtime: &tokio::runtime::Runtime, config: DemoConfig) -> anyhow::Result<()> {
    let mut ui = crate::dashboard_settings(None, None)?;
    let prices = crate::load_prices(None)?;
    let _log = crate::logging::init_file(None)?;
    crate::logging::install_panic_hook();
    // The dashboard's budgets (store and audit log) live in a directory of
    // this session, removed at exit like the runtime's own budgets: not in
    // the user's store, and not among the telemetry, where `tokwatch report`
    // would count the audit log's lines as malformed records.
    let state = tempfile::Builder::new()
        .prefix("tokwatch-demo-budgets-")
        .tempdir()
        .context("cannot create the demo's budgets directory")?;
    ui.budgets_path = Some(state.path().join("budgets.toml"));
    tracing::info!(dir = %state.path().display(), "demo budgets (removed at exit)");
    // Only the team files.
    let follow = simulation::TEAM_FILES
        .iter()
        .map(|(_, name)| config.out.join(name).display().to_string())
        .collect();
    let settings = crate::live::LiveSettings {
        follow,
        listen: Vec::new(),
        listen_token: None,
        max_clients: 1024,
        client_idle_timeout: crate::ingest::sources::socket::DEFAULT_IDLE_TIMEOUT,
        poll: false,
        poll_interval: Duration::from_millis(500),
        from_end: false,
        window: crate::ingest::TimeWindow::default(),
        max_line_bytes: crate::ingest::sources::files::DEFAULT_MAX_LINE_BYTES,
        record: None,
        decoders: std::sync::Arc::default(),
        otlp: crate::ingest::sources::otlp::OtlpSettings::default(),
        metrics: None,
        advisor: Some((ui.advisor.clone(), ui.rules.clone())),
        // the dashboard measures forecasts against the limits it shows
        run_limits: std::collections::BTreeMap::new(),
        alerts: crate::live::AlertSettings::default(),
        duplicates: Default::default(),
    };
    runtime
        .block_on(async {
            let demo = Demo::start(config)?;
            // The dashboard's budget editor pushes to the demo runtime.
            let control: ControlAddr = demo.control_addr().parse().map_err(anyhow::Error::msg)?;
            tracing::info!(%control, runtime_id = demo.runtime_id(), "demo runtime started");
            ui.control = vec![control];
            let (stop_tx, stop_rx) = watch::channel(false);
            let mut runtime_task = tokio::spawn(demo.serve(stop_rx));
            let dashboard = crate::ui::app::run_tui(settings, prices, ui);
            tokio::pin!(dashboard);
            // A runtime that fails (its telemetry cannot be written) ends
            // the dashboard too, which restores the terminal when dropped:
            // the error is then printed, not left behind a frozen screen.
            let result = tokio::select! {
                result = &mut dashboard => result,
                ended = &mut runtime_task => match ended {
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(anyhow::Error::new(e).context("the demo runtime failed")),
                    // `--runs` reached: the dashboard stays until the user quits.
                    Ok(Ok(_)) => return dashboard.await,
                },
            };
            let _ = stop_tx.send(true);
            match runtime_task.await {
                Ok(Ok(_)) => result,
                Ok(Err(e)) => result.and(Err(e)),
                Err(e) => result.and(Err(anyhow::Error::new(e).context("the demo runtime failed"))),
            }
        })
        .and_then(|()| {
            state
                .close()
                .context("cannot remove the demo's budgets directory")
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_runtime_that_cannot_write_its_telemetry_stops_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("control.sock");
        let config = DemoConfig {
            out: dir.path().to_path_buf(),
            control: format!("unix:{}", sock.display()),
            runs: None,
            rate: 200.0,
            seed: 1,
        };
        let control = Arc::new(Control::new());
        let demo = Demo {
            listener: ControlListener::bind(&config.control.parse().unwrap()).unwrap(),
            config,
            control,
            sim: simulation::tests::unwritable_sim(dir.path()),
        };
        // Never told to stop: only the failure ends it.
        let (_shutdown, rx) = watch::channel(false);
        let error = tokio::time::timeout(Duration::from_secs(10), demo.serve(rx))
            .await
            .unwrap()
            .unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.starts_with(&format!(
                "the demo runtime stopped: its telemetry in '{}' cannot be written: cannot write ",
                dir.path().display()
            )),
            "{text}"
        );
        assert!(!sock.exists(), "the socket is removed");
    }
}
