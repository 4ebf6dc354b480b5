//! The modes without a dashboard: `--jsonl` (the live service's
//! publications printed one per line, [`run_headless`]) and `--headless`
//! (ingest, record and serve `--metrics`, printing nothing, [`run_serve`]).

use std::io::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use tokio::sync::{mpsc, watch};

use super::{LiveService, LiveSettings, Publication, Publish};
use crate::control::ControlAddr;
use crate::control::client::{REFRESH, run_runtime_link};
use crate::control::store::DesiredState;
use crate::metrics::runtimes::RuntimeFold;
use crate::pricing::PriceBook;

/// How `--jsonl` runs; what a line holds is the caller's `render`.
#[derive(Debug, Clone)]
pub struct Headless {
    /// One snapshot per interval (`--interval`).
    pub every: Duration,
    /// Runs per snapshot, most expensive first (0 = all).
    pub top_runs: usize,
    /// Stop after this long (`--exit-after`).
    pub exit_after: Option<Duration>,
    /// Runtimes whose state `--metrics` exports (`--control`, read-only).
    pub runtimes: Runtimes,
}

/// `--control` and `--control-token` in the modes without a dashboard:
/// with `--metrics`, one read-only link per runtime reports whether it is
/// up and the budgets it has in force (`tokwatch_runtime_up`,
/// `tokwatch_budget_limit`). The links push nothing: their desired state is
/// empty and never changes (budgets are changed from the dashboard or
/// `tokwatch budget`).
#[derive(Debug, Clone, Default)]
pub struct Runtimes {
    pub control: Vec<ControlAddr>,
    pub token: Option<String>,
}

/// Running read-only links and the task folding their events for the metrics.
struct Links {
    shutdown: watch::Sender<bool>,
    /// Held: a link whose desired state closes ends.
    _desired: watch::Sender<Arc<DesiredState>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Links {
    /// Links to `runtimes` when the service serves metrics (else none).
    fn start(service: &LiveService, runtimes: &Runtimes) -> Option<Links> {
        service.metrics_addr()?;
        if runtimes.control.is_empty() {
            return None;
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (desired, desired_rx) = watch::channel(Arc::new(DesiredState::default()));
        // Bounded: links wait while the fold is behind.
        let (events_tx, mut events) = mpsc::channel(256);
        let names: Vec<String> = runtimes.control.iter().map(ToString::to_string).collect();
        let mut fold = RuntimeFold::new(&names);
        let board = service.runtime_board();
        board.send_replace(Arc::new(fold.board()));
        let mut tasks: Vec<_> = runtimes
            .control
            .iter()
            .map(|addr| {
                tokio::spawn(run_runtime_link(
                    addr.clone(),
                    runtimes.token.clone(),
                    (Duration::from_secs(5), REFRESH),
                    desired_rx.clone(),
                    events_tx.clone(),
                    shutdown_rx.clone(),
                ))
            })
            .collect();
        drop(events_tx);
        tasks.push(tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if fold.apply(&event) {
                    board.send_replace(Arc::new(fold.board()));
                }
            }
        }));
        Some(Links {
            shutdown,
            _desired: desired,
            tasks,
        })
    }

    async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
    }
}

/// Runs headless live mode until a signal, `--exit-after`, or the end of
/// every finite source (standard input alone), printing each publication as
/// `render` makes it (given the publication and its 1-based sequence
/// number). Rendering and writing happen off the runtime's workers, one at
/// a time: when they are slower than the interval, publications in between
/// are skipped (the last one never is).
///
/// # Errors
/// A listener cannot bind, the record file cannot be opened or written,
/// stdout fails.
pub async fn run_headless<R>(
    settings: &LiveSettings,
    prices: PriceBook,
    headless: &Headless,
    render: R,
) -> anyhow::Result<()>
where
    R: Fn(&Publication, u64) -> String + Send + Sync + 'static,
{
    let service = LiveService::start(
        settings,
        prices,
        Publish::Lines {
            every: headless.every,
            top_runs: headless.top_runs,
        },
    )?;
    announce(&service);
    let links = Links::start(&service, &headless.runtimes);
    let render = Arc::new(render);
    let mut published = service.subscribe();
    let mut sequence = 0_u64;
    let exit_after = async {
        match headless.exit_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(exit_after);
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut printed_last = false;
    loop {
        tokio::select! {
            biased;
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sighup.recv() => break,
            () = &mut exit_after => break,
            changed = published.changed() => {
                if changed.is_err() {
                    break; // every source ended: the service stopped by itself
                }
                let publication = published.borrow_and_update().clone();
                sequence += 1;
                printed_last = publication.last;
                print(&render, publication, sequence).await?;
                if printed_last {
                    break;
                }
            }
        }
    }
    if let Some(links) = links {
        links.stop().await;
    }
    let result = service.stop().await;
    // The last publication: printed whatever was skipped before it.
    let publication = published.borrow_and_update().clone();
    if publication.last && !printed_last {
        sequence += 1;
        print(&render, publication, sequence).await?;
    }
    result.context("cannot write the --record file")
}

/// How a bound listener is announced: `listening on tcp:127.0.0.1:7700`,
/// `otlp-http listening on 127.0.0.1:4318` (scripts and tests read the port).
fn listening_line(name: &str) -> String {
    match name.split_once(':') {
        Some((kind @ ("otlp-http" | "otlp-grpc"), addr)) => format!("{kind} listening on {addr}"),
        _ => format!("listening on {name}"),
    }
}

/// Tells standard error where the service listens and what it warns of.
fn announce(service: &LiveService) {
    for name in &service.listening {
        eprintln!("tokwatch: {}", listening_line(name));
    }
    if let Some(addr) = service.metrics_addr() {
        eprintln!("tokwatch: metrics listening on {addr}");
    }
    for warning in &service.warnings {
        eprintln!("tokwatch: {warning}");
    }
}

/// How `--headless` runs.
#[derive(Debug, Clone, Default)]
pub struct Serve {
    /// Stop after this long (`--exit-after`).
    pub exit_after: Option<Duration>,
    /// Runtimes whose state `--metrics` exports.
    pub runtimes: Runtimes,
}

/// Runs `--headless` until SIGINT, SIGTERM, SIGHUP or `--exit-after`: the
/// sources feed the ledger (and `--record`), `--metrics` serves it, nothing
/// is printed but where it listens and, at the end, what was counted. Ending
/// stops the sources and folds what they had accepted. Finite sources
/// (standard input) ending do not end it: the metrics stay served.
///
/// # Errors
/// A listener cannot bind, the record file cannot be opened or written.
pub async fn run_serve(
    settings: &LiveSettings,
    prices: PriceBook,
    serve: &Serve,
) -> anyhow::Result<()> {
    let service = LiveService::start(settings, prices, Publish::Quiet)?;
    announce(&service);
    let links = Links::start(&service, &serve.runtimes);
    tracing::info!(listening = ?service.listening, metrics = ?service.metrics_addr(), "headless serving");
    let exit_after = async {
        match serve.exit_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let why = tokio::select! {
        _ = sigint.recv() => "SIGINT",
        _ = sigterm.recv() => "SIGTERM",
        _ = sighup.recv() => "SIGHUP",
        () = exit_after => "--exit-after",
    };
    tracing::info!(why, "headless stopping");
    if let Some(links) = links {
        links.stop().await;
    }
    let published = service.subscribe();
    let result = service.stop().await;
    let last = published.borrow().clone();
    let totals = last.snapshot.totals;
    eprintln!(
        "tokwatch: stopped ({why}): {} calls, {} tokens, ${} counted from {} lines",
        totals.events, totals.total_tokens, totals.cost, last.stats.lines
    );
    tracing::info!(
        calls = totals.events,
        lines = last.stats.lines,
        "headless stopped"
    );
    result.context("cannot write the --record file")
}

async fn print<R>(
    render: &Arc<R>,
    publication: Arc<Publication>,
    sequence: u64,
) -> anyhow::Result<()>
where
    R: Fn(&Publication, u64) -> String + Send + Sync + 'static,
{
    let render = render.clone();
    tokio::task::spawn_blocking(move || {
        let line = render(&publication, sequence);
        let mut out = io::stdout().lock();
        match out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other.context("cannot write to standard output"),
        }
    })
    .await
    .context("printing a snapshot failed")?
}
