//! The live service: one aggregator on a thread of its own, publishing
//! snapshots by one policy to whoever shows them (the dashboard, `--jsonl`).
//!
//! Folding events, taking snapshots and computing insights are CPU work that
//! can take a while on a large ledger; none of it runs on the async runtime,
//! whose workers serve socket clients and control links and drive the
//! dashboard's timers. The thread waits on its inputs (the sources' channel,
//! [`Control`] messages, the next publication's deadline) with a
//! single-threaded tokio scheduler of its own, on which nothing else runs.
//!
//! Publishing ([`Publish`]): the dashboard gets a full snapshot with its
//! insights only when something changed, at most once per interval (and
//! never more than a fifth of the thread's time: a slow publication spaces
//! the next ones out); `--jsonl` gets the top runs once per interval whether
//! anything changed or not. Both get one the moment the backlog is read,
//! and a last one when the service stops. Publications travel in a `watch`
//! channel: the latest wins, a slow reader never slows the aggregator.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::webhook::Webhooks;
use super::{Aggregator, AlertSettings, LiveSettings, Sources};
use crate::ingest::IngestStats;
use crate::ingest::channel::IngestMsg;
use crate::metrics::server::{MetricsRequest, MetricsServer, RuntimeBoard};
use crate::metrics::{MetricsView, ingest_by_kind};
use crate::model::Snapshot;
use crate::model::anomaly::Anomaly;
use crate::model::insights::{BleedRules, Insights, InsightsIndex};
use crate::pricing::PriceBook;

/// How the service publishes.
#[derive(Debug, Clone)]
pub enum Publish {
    /// For the dashboard: the whole snapshot and its insights, when
    /// something changed, at most every `every`; the live tail keeps
    /// `recent_events` events. The service runs until told to stop, also
    /// after every source ended (what was read stays on screen).
    Dashboard {
        every: Duration,
        rules: BleedRules,
        recent_events: usize,
    },
    /// For `--jsonl`: the `top_runs` most expensive runs (0: all; totals
    /// stay exact), no per-minute series nor insights, once per `every`
    /// (the first within 100 ms), changed or not; the service ends when
    /// every source did (standard input alone). Waiting for and finding
    /// followed paths is told on standard error.
    Lines { every: Duration, top_runs: usize },
    /// For `--headless`: nothing until the service is stopped, then one
    /// last publication (the totals, no runs). Sources ending do not end
    /// the service (the metrics stay served).
    Quiet,
}

impl Publish {
    fn recent_events(&self) -> usize {
        match self {
            Publish::Dashboard { recent_events, .. } => *recent_events,
            // JSON snapshots never show the live tail; nothing shows one headless.
            Publish::Lines { .. } | Publish::Quiet => 0,
        }
    }
}

/// What the service publishes.
#[derive(Debug, Clone, Default)]
pub struct Publication {
    pub snapshot: Arc<Snapshot>,
    pub stats: Arc<IngestStats>,
    /// Bleeding hops, percentiles… ([`Publish::Dashboard`] only).
    pub insights: Option<Arc<Insights>>,
    /// Lines per second read over the last second or more (all sources).
    pub lines_per_sec: f64,
    /// Wall-clock time of the newest telemetry received, epoch ms.
    pub last_event_ms: Option<i64>,
    /// Every followed file has been read to its end once.
    pub caught_up: bool,
    /// The service started this long before the snapshot was taken.
    pub uptime: Duration,
    /// The last publication: the service stopped.
    pub last: bool,
    /// The latest anomalies, oldest first (`model::anomaly`; empty when
    /// not detected). Shared: rebuilt only when one is raised.
    pub anomalies: Arc<[Anomaly]>,
}

/// Messages to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop the sources, fold what they had sent, publish a last time, end.
    Stop,
}

/// A running live service: sources, and the aggregator thread.
pub struct LiveService {
    published: watch::Receiver<Arc<Publication>>,
    /// Bounded: a stop is all there is to say.
    control: mpsc::Sender<Control>,
    thread: Option<JoinHandle<io::Result<()>>>,
    /// Listeners as bound (`tcp:127.0.0.1:40123`).
    pub listening: Vec<String>,
    /// Warnings to show (file events unavailable, …).
    pub warnings: Vec<String>,
    /// Scrapes' requests to the aggregator thread (bounded: a scrape waits
    /// its turn, at most [`crate::metrics::server::VIEW_TIMEOUT`]).
    metrics_requests: mpsc::Sender<MetricsRequest>,
    /// `--metrics`: the server, while it runs.
    metrics: Option<MetricsServer>,
    /// What control links report, for the metrics (see [`LiveService::runtime_board`]).
    board: watch::Sender<Arc<RuntimeBoard>>,
    /// `--alert-webhook` senders, while they run.
    webhooks: Option<Webhooks>,
}

/// How long [`LiveService::stop`] waits for the aggregator thread: sources
/// take up to 2 s to stop, records counted from text up to 10 s.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// How long a stop waits for queued alerts to be delivered.
const WEBHOOK_GRACE: Duration = Duration::from_secs(3);

/// How often anomalies are checked against the clock (a spend spike is
/// raised within this of the call that made it).
const ANOMALY_TICK: Duration = Duration::from_secs(1);

impl LiveService {
    /// Starts the sources and the aggregator thread. Must run inside a
    /// tokio runtime (socket listeners are tasks on it).
    ///
    /// # Errors
    /// A source cannot start (see [`Sources::start`]), or the thread cannot
    /// be spawned.
    pub fn start(
        settings: &LiveSettings,
        prices: PriceBook,
        publish: Publish,
    ) -> anyhow::Result<LiveService> {
        // Refused before any source starts: a bad address or a missing
        // token is a usage error.
        if let Some(m) = &settings.metrics {
            crate::metrics::server::check(m.addr, m.token.as_deref())?;
        }
        let webhooks = match &settings.alerts {
            AlertSettings {
                rules: Some(_),
                webhooks,
                retry,
            } if !webhooks.is_empty() => Some(Webhooks::start(webhooks, *retry)?),
            _ => None,
        };
        let mut sources = Sources::start(settings)?;
        let aggregator = Aggregator::new(
            prices,
            settings.window,
            settings.max_line_bytes,
            sources.record.take(),
        )
        .with_duplicates(settings.duplicates)
        .with_input_format(settings.decoders.forced)
        .with_recent_events(publish.recent_events())
        .with_series(settings.metrics.as_ref().map(|m| m.caps))
        .with_advisor(settings.advisor.clone())
        .with_run_limits(settings.run_limits.clone())
        .with_anomalies(
            settings.alerts.rules.clone(),
            webhooks.as_ref().map(Webhooks::sink),
        );
        let mut service = Self::with_parts(sources, aggregator, publish)?;
        service.webhooks = webhooks;
        if let Some(m) = &settings.metrics {
            service.metrics = Some(crate::metrics::server::start(
                m.addr,
                m.token.clone(),
                service.metrics_requests.clone(),
                Some(service.board.subscribe()),
            )?);
            tracing::info!(addr = ?service.metrics_addr(), "metrics listening");
        }
        Ok(service)
    }

    /// Where `--metrics` listens (the port chosen when 0 was asked).
    #[must_use]
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(|m| m.local_addr)
    }

    /// Where control links report runtimes and their budgets for the
    /// metrics (`tokwatch_runtime_up`, `tokwatch_budget_limit`).
    #[must_use]
    pub fn runtime_board(&self) -> watch::Sender<Arc<RuntimeBoard>> {
        self.board.clone()
    }

    /// Runs `aggregator` over started `sources`.
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub fn with_parts(
        mut sources: Sources,
        mut aggregator: Aggregator,
        publish: Publish,
    ) -> io::Result<LiveService> {
        aggregator.watch_otlp(std::mem::take(&mut sources.otlp));
        aggregator.hold_while(sources.hold_while.take());
        let (publish_tx, published) = watch::channel(Arc::new(Publication::default()));
        let (control, control_rx) = mpsc::channel(4);
        let (metrics_requests, metrics_rx) = mpsc::channel(4);
        let listening = std::mem::take(&mut sources.listening);
        let warnings = std::mem::take(&mut sources.warnings);
        let thread = std::thread::Builder::new()
            .name("tokwatch-aggregate".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()?;
                runtime.block_on(serve(
                    sources,
                    aggregator,
                    publish,
                    (control_rx, metrics_rx),
                    publish_tx,
                ))
            })?;
        Ok(LiveService {
            published,
            control,
            thread: Some(thread),
            listening,
            warnings,
            metrics_requests,
            metrics: None,
            board: watch::channel(Arc::new(RuntimeBoard::default())).0,
            webhooks: None,
        })
    }

    /// Publications, latest first; `changed` fails once the service ended
    /// (the last publication stays readable).
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<Arc<Publication>> {
        self.published.clone()
    }

    /// Where to send [`Control`] messages.
    #[must_use]
    pub fn control(&self) -> mpsc::Sender<Control> {
        self.control.clone()
    }

    /// Stops the service (see [`Control::Stop`]) and waits for its last
    /// publication (at most [`STOP_WAIT`]).
    ///
    /// # Errors
    /// Folding failed (writing the `--record` file).
    pub async fn stop(mut self) -> io::Result<()> {
        if let Some(metrics) = self.metrics.take() {
            metrics.stop().await;
        }
        let _ = self.control.send(Control::Stop).await;
        let finished = self.finished().await;
        // Alerts raised up to the last publication get a moment to go out.
        if let Some(webhooks) = self.webhooks.take() {
            webhooks.stop(WEBHOOK_GRACE).await;
        }
        finished
    }

    /// Waits until the service ended by itself ([`Publish::Lines`]: every
    /// source ended) or was stopped, at most [`STOP_WAIT`].
    ///
    /// # Errors
    /// As [`LiveService::stop`].
    pub async fn finished(&mut self) -> io::Result<()> {
        let mut published = self.published.clone();
        let _ = tokio::time::timeout(STOP_WAIT, async {
            while published.changed().await.is_ok() {}
        })
        .await;
        match self.thread.take() {
            Some(thread) if thread.is_finished() => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the aggregator thread panicked"))),
            // Still folding after STOP_WAIT: left to end with the process.
            _ => Ok(()),
        }
    }
}

impl Drop for LiveService {
    fn drop(&mut self) {
        // Not stopped explicitly (an error path): the thread stops by itself.
        let _ = self.control.try_send(Control::Stop);
    }
}

/// When and what to publish, and the figures that span publications.
struct Publisher {
    publish: Publish,
    prices: Arc<PriceBook>,
    started: Instant,
    last_publish: Option<Instant>,
    /// How long the last publication took to build.
    cost: Duration,
    /// Publish at once (the backlog was just read).
    now: bool,
    window_start: Instant,
    lines_at_window: u64,
    lines_per_sec: f64,
    last_event_ms: Option<i64>,
    /// The dashboard's insights, kept up to date run by run.
    insights: Option<InsightsIndex>,
}

impl Publisher {
    fn new(publish: Publish, prices: PriceBook) -> Self {
        let started = Instant::now();
        let insights = match &publish {
            Publish::Dashboard { rules, .. } => Some(InsightsIndex::new(rules.clone())),
            Publish::Lines { .. } | Publish::Quiet => None,
        };
        Publisher {
            insights,
            publish,
            prices: Arc::new(prices),
            started,
            last_publish: None,
            cost: Duration::ZERO,
            now: false,
            window_start: started,
            lines_at_window: 0,
            lines_per_sec: 0.0,
            last_event_ms: None,
        }
    }

    /// When the next publication is due; `None`: nothing to publish.
    fn deadline(&self, aggregator: &Aggregator) -> Option<Instant> {
        match &self.publish {
            Publish::Dashboard { every, .. } => {
                if !aggregator.dirty {
                    return None;
                }
                if self.now {
                    return Some(Instant::now());
                }
                // The next publication waits at least four times what the
                // last one took (nine while a backlog is being read, and at
                // least a second then): building snapshots and insights of a
                // large ledger never takes more than a fifth (a tenth) of
                // the thread.
                let gap = if aggregator.caught_up {
                    (*every).max(self.cost * 4)
                } else {
                    (*every).max(self.cost * 9).max(Duration::from_secs(1))
                };
                Some(self.last_publish.map_or_else(Instant::now, |at| at + gap))
            }
            Publish::Quiet => None,
            Publish::Lines { every, .. } => {
                if self.now {
                    return Some(Instant::now());
                }
                // The first within 100 ms, then a full interval after the
                // previous one was published: a publication slower than the
                // interval never starves ingestion.
                Some(match self.last_publish {
                    Some(at) => at + *every,
                    None => self.started + (*every).min(Duration::from_millis(100)),
                })
            }
        }
    }

    fn publish(
        &mut self,
        aggregator: &mut Aggregator,
        last: bool,
        tx: &watch::Sender<Arc<Publication>>,
    ) {
        let started = Instant::now();
        aggregator.sync_otlp();
        let elapsed = self.window_start.elapsed().as_secs_f64();
        let lines = aggregator.stats().lines;
        #[allow(clippy::cast_precision_loss)]
        if elapsed >= 1.0 {
            self.lines_per_sec = lines.saturating_sub(self.lines_at_window) as f64 / elapsed;
            self.lines_at_window = lines;
            self.window_start = started;
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let anomalies = aggregator.tick_anomalies(now_ms);
        let (snapshot, insights) = match &self.publish {
            Publish::Dashboard { .. } => {
                let mut snapshot = aggregator.snapshot();
                aggregator.attach_advice(&mut snapshot);
                // Anchored on the wall clock, as the per-minute series is
                // (`Ledger::set_clock`): a call timed far in the future
                // cannot move the dashboard's burn rate out of the present.
                let insights = self.insights.as_mut().map(|index| {
                    index.sync(&aggregator.ledger);
                    Arc::new(index.insights(&snapshot, &self.prices, Some(now_ms)))
                });
                (snapshot, insights)
            }
            Publish::Lines { top_runs, .. } => {
                let mut snapshot = aggregator.snapshot_top(*top_runs);
                aggregator.attach_advice(&mut snapshot);
                (snapshot, None)
            }
            // The totals only: the one at stop says what was counted.
            Publish::Quiet => (aggregator.snapshot_top(1), None),
        };
        let publication = Publication {
            snapshot: Arc::new(snapshot),
            stats: Arc::new(aggregator.stats().clone()),
            insights,
            lines_per_sec: self.lines_per_sec,
            last_event_ms: self.last_event_ms,
            caught_up: aggregator.caught_up,
            uptime: started.duration_since(self.started),
            last,
            anomalies,
        };
        // Nobody subscribed (yet): the value is kept all the same.
        tx.send_replace(Arc::new(publication));
        aggregator.dirty = false;
        self.now = false;
        let done = Instant::now();
        self.cost = done.duration_since(started);
        self.last_publish = Some(done);
    }
}

/// What a scrape at `now_ms` exports.
fn metrics_view(aggregator: &Aggregator, now_ms: i64) -> MetricsView {
    let ledger = &aggregator.ledger;
    let minute = now_ms.div_euclid(60_000);
    MetricsView {
        series: ledger.series_view().unwrap_or_default(),
        runs: ledger.runs_counted(),
        cost_last_minute: ledger.cost_in_minutes(minute - 1, minute),
        cost_last_5_minutes: ledger.cost_in_minutes(minute - 5, minute),
        ingest: ingest_by_kind(aggregator.stats()),
        budgets: Vec::new(),
        runtimes: Vec::new(),
    }
}

/// The aggregator thread's loop.
async fn serve(
    mut sources: Sources,
    mut aggregator: Aggregator,
    publish: Publish,
    (mut control, mut metrics): (mpsc::Receiver<Control>, mpsc::Receiver<MetricsRequest>),
    tx: watch::Sender<Arc<Publication>>,
) -> io::Result<()> {
    let lines_mode = matches!(publish, Publish::Lines { .. });
    let mut publisher = Publisher::new(publish, aggregator.prices().clone());
    let mut sources_done = false;
    let mut failed = Ok(());
    let anomalies = aggregator.watches_anomalies();
    let mut anomaly_tick = tokio::time::Instant::now() + ANOMALY_TICK;
    loop {
        let deadline = publisher.deadline(&aggregator);
        let due = tokio::time::Instant::from_std(deadline.unwrap_or_else(Instant::now));
        tokio::select! {
            biased;
            // A dropped service stops it too.
            Some(Control::Stop) | None = control.recv() => break,
            // Between publications too: `--headless` publishes none.
            () = tokio::time::sleep_until(anomaly_tick), if anomalies => {
                aggregator.tick_anomalies(chrono::Utc::now().timestamp_millis());
                anomaly_tick = tokio::time::Instant::now() + ANOMALY_TICK;
            }
            // A scrape reads the ledger as it is between two messages.
            Some(request) = metrics.recv() => {
                let _ = request.reply.send(metrics_view(&aggregator, request.now_ms));
            }
            () = tokio::time::sleep_until(due), if deadline.is_some() => {
                publisher.publish(&mut aggregator, false, &tx);
            }
            msg = sources.rx.recv(), if !sources_done => match msg {
                Some(msg) => {
                    let catching_up = !aggregator.caught_up;
                    // Only telemetry is an event ("last event … ago"), not
                    // a file opened or a path waited for.
                    let telemetry = matches!(
                        msg,
                        IngestMsg::Lines { .. } | IngestMsg::Otlp(_) | IngestMsg::Oversized { .. } | IngestMsg::Estimated(_)
                    );
                    if lines_mode && let IngestMsg::Waiting { target, missing } = &msg {
                        let target = crate::sanitize::sanitize(target);
                        if *missing {
                            eprintln!("tokwatch: waiting for '{target}' to appear");
                        } else {
                            eprintln!("tokwatch: '{target}' appeared");
                        }
                    }
                    if let Err(e) = aggregator.handle(msg) {
                        failed = Err(e);
                        break;
                    }
                    // The backlog is in: published now rather than later.
                    publisher.now |= catching_up && aggregator.caught_up;
                    if telemetry {
                        publisher.last_event_ms = Some(chrono::Utc::now().timestamp_millis());
                    }
                }
                None => {
                    sources_done = true;
                    if lines_mode {
                        break;
                    }
                }
            },
        }
    }
    let stopped = sources
        .shutdown(|msg| {
            if failed.is_ok() {
                aggregator.handle(msg)
            } else {
                Ok(())
            }
        })
        .await;
    publisher.publish(&mut aggregator, true, &tx);
    failed.and(stopped)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::time::Duration;

    use super::{LiveService, Publish};
    use crate::live::LiveSettings;
    use crate::model::insights::BleedRules;
    use crate::pricing::PriceBook;
    use crate::types::money::Usd;

    /// The dashboard's insights are those of every run held, not of the
    /// 2,000 listed: with 2,000 dear runs and 2,500 cheap ones the median
    /// run is a cheap one (computed over the listed runs, the dearest
    /// 2,000, it was a dear one).
    #[test]
    fn the_dashboard_insights_cover_every_run_not_only_the_listed_ones() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.jsonl");
        let mut lines = String::new();
        for run in 0..4_500 {
            let tokens = if run < 2_000 { 100_000 } else { 1_000 };
            writeln!(
                lines,
                "{{\"ts\":\"2026-11-28T{:02}:{:02}:{:02}Z\",\"run_id\":\"r{run}\",\"hop\":1,\"agent\":\"a\",\"model\":\"gpt-4o-mini\",\"input_tokens\":{tokens},\"output_tokens\":10}}",
                10 + run / 3_600,
                (run / 60) % 60,
                run % 60
            )
            .unwrap();
        }
        std::fs::write(&log, lines).unwrap();
        let service = LiveService::start(
            &LiveSettings::following(&[&log]),
            PriceBook::embedded(),
            Publish::Dashboard {
                every: Duration::from_millis(50),
                rules: BleedRules::default(),
                recent_events: 0,
            },
        )
        .unwrap();
        let mut published = service.subscribe();
        let publication = runtime
            .block_on(tokio::time::timeout(
                Duration::from_secs(60),
                published.wait_for(|p| p.caught_up && p.snapshot.totals.events == 4_500),
            ))
            .expect("never caught up with the 4,500 runs")
            .unwrap()
            .clone();
        runtime.block_on(service.stop()).unwrap();
        assert_eq!(publication.snapshot.runs.len(), 2_000);
        let insights = publication.insights.as_ref().unwrap();
        assert_eq!(insights.bleeding.len(), 2_000);
        // gpt-4o-mini: $0.15/M input, $0.60/M output
        let cheap = Usd::for_tokens(1_000, 150_000) + Usd::for_tokens(10, 600_000);
        assert_eq!(insights.run_cost.median, cheap);
        // one run a second: those of the last minute may still be in flight
        assert_eq!(insights.finished_costs().len(), 4_440);
        assert_eq!(insights.unfinished.len(), 60);
        let positions = &insights.positions["a"];
        assert_eq!(positions[0].runs, 4_500);
    }
}
