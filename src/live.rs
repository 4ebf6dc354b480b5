//! Live mode: sources (followed files, sockets, standard input) split and
//! parse their lines and feed one aggregator through a bounded channel; the
//! [`LiveService`] runs the aggregator on a thread of its own, folds the
//! parsed events into the ledger and publishes snapshots by one policy
//! ([`Publish`]) to the dashboard and to `--jsonl` ([`run_headless`]).
//!
//! ```text
//!  follower thread (notify hint + stat tick) ─┐  parsed                     aggregator thread
//!  socket listeners (task per client)        ├─► mpsc(64 batches) ─► Aggregator ─► Publication ─► watch ─► dashboard
//!  stdin thread                              ─┘  backpressure        Ledger, insights           (latest)  or --jsonl
//!                                                                     ▲ Control (stop)
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use notify::Watcher as _;
use tokio::sync::{mpsc, watch};

use crate::ingest::channel::{
    CHANNEL_CAPACITY, ClientChange, IngestMsg, LineBatch, OtlpRequest, SourceKind, SourceRef,
};
use crate::ingest::dedup::CallRegistry;
use crate::ingest::estimate::{Estimator, fold_estimated};
use crate::ingest::formats::DecoderConfig;
use crate::ingest::parsed::{ParsedLines, oversized_reason};
use crate::ingest::record::{Recorded, record_line};
use crate::ingest::sources::otlp::{
    Endpoint, Intake, OtlpCounters, OtlpEndpointStats, OtlpSettings,
};
use crate::ingest::sources::socket::{ListenAddr, ListenConfig, Listener};
use crate::ingest::sources::tail::{FileEvent, FollowConfig, Follower, StartAt, TailSink, Target};
use crate::ingest::stats::OtlpStats;
use crate::ingest::{IngestStats, Ingestor, RejectKind, TimeWindow};
use crate::model::anomaly::Anomaly;
use crate::model::{Ledger, LedgerConfig, Snapshot};
use crate::pricing::PriceBook;
use crate::types::event::Format;

mod headless;
mod service;
pub mod webhook;

pub use headless::{Headless, Runtimes, Serve, run_headless, run_serve};
pub use service::{Control, LiveService, Publication, Publish};
pub use webhook::{AlertSink, RetryPolicy, Webhooks};

/// Where live mode reads from and how, resolved from the command line (how
/// it publishes is [`Publish`]; what `--jsonl` prints is the caller's).
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// `--follow` arguments; `-` is standard input.
    pub follow: Vec<String>,
    pub listen: Vec<ListenAddr>,
    pub listen_token: Option<String>,
    pub max_clients: u64,
    /// Socket clients silent this long are closed (zero: never).
    pub client_idle_timeout: Duration,
    pub poll: bool,
    pub poll_interval: Duration,
    pub from_end: bool,
    pub window: TimeWindow,
    pub max_line_bytes: usize,
    pub record: Option<PathBuf>,
    /// How sources decode their lines (`--input-format`, …).
    pub decoders: Arc<DecoderConfig>,
    /// OTLP receivers (`--otlp`, `--otlp-grpc`, …).
    pub otlp: OtlpSettings,
    /// `--metrics`: serve `GET /metrics` (`crate::metrics`).
    pub metrics: Option<MetricsSettings>,
    /// The advisor's rules and the bleeding-hop thresholds: publications
    /// carry its advice (`None`: no advisor).
    pub advisor: Option<(
        crate::model::advisor::AdvisorRules,
        crate::model::insights::BleedRules,
    )>,
    /// The run limits the advisor's forecasts are measured against (the
    /// desired budgets as `--jsonl` starts), by scope.
    pub run_limits: crate::model::budget::LimitsByScope,
    /// Anomalies (`[anomalies]`) and `--alert-webhook`.
    pub alerts: AlertSettings,
    /// `[duplicates]`: the duplicate-prompt index's thresholds.
    pub duplicates: crate::model::duplicates::DuplicateRules,
}

#[cfg(test)]
impl LiveSettings {
    /// Following `paths` by polling every 100 ms, from their start, nothing
    /// else on: the settings tests start from.
    pub(crate) fn following(paths: &[&std::path::Path]) -> LiveSettings {
        LiveSettings {
            follow: paths.iter().map(|p| p.display().to_string()).collect(),
            listen: Vec::new(),
            listen_token: None,
            max_clients: 8,
            client_idle_timeout: Duration::ZERO,
            poll: true,
            poll_interval: Duration::from_millis(100),
            from_end: false,
            window: TimeWindow::default(),
            max_line_bytes: crate::ingest::sources::files::DEFAULT_MAX_LINE_BYTES,
            record: None,
            decoders: Arc::default(),
            otlp: OtlpSettings::default(),
            metrics: None,
            advisor: None,
            run_limits: std::collections::BTreeMap::new(),
            alerts: AlertSettings::default(),
            duplicates: crate::model::duplicates::DuplicateRules::default(),
        }
    }
}

/// Anomaly detection and where alerts go.
#[derive(Debug, Clone, Default)]
pub struct AlertSettings {
    /// `None`: no detection (nor alerts).
    pub rules: Option<crate::model::anomaly::AnomalyRules>,
    /// `--alert-webhook URL`, repeatable.
    pub webhooks: Vec<reqwest::Url>,
    pub retry: webhook::RetryPolicy,
}

/// `--metrics ADDR [--metrics-token T]` and the `[metrics]` caps.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub addr: std::net::SocketAddr,
    pub token: Option<String>,
    pub caps: crate::model::ledger::SeriesCaps,
}

/// Runs and rows of each list a dashboard snapshot carries: the cost of a
/// snapshot follows this, not the number of distinct keys.
pub const DASHBOARD_TOP: usize = 2_000;

/// Owns the ledger: applies what sources send, in order per source.
pub struct Aggregator {
    ledger: Ledger,
    stats: IngestStats,
    /// Socket sources whose lines are recorded (`--record`): their records
    /// counted later from text are recorded when counted.
    recorded_sources: std::collections::HashSet<Arc<str>>,
    /// Exact counts that arrived before the rough count they replace (the
    /// estimator can be faster than a source's batch): applied after it.
    /// At most the estimator's queue.
    early_estimates: Vec<crate::ingest::estimate::Estimated>,
    /// One count per call across sources (`ingest::dedup`).
    calls: CallRegistry,
    window: TimeWindow,
    max_line_bytes: usize,
    record: Option<io::BufWriter<File>>,
    /// `--input-format`: how recorded lines were read.
    input_format: Option<Format>,
    /// The advisor, kept up to date at each publication ([`Aggregator::attach_advice`]).
    advisor: Option<crate::model::advisor::Advisor>,
    /// Something changed since the last snapshot.
    pub dirty: bool,
    /// [`IngestMsg::CaughtUp`] arrived: followed files have all been read
    /// to their end once, and followed streams (pipes, standard input) as
    /// far as they had data ready (without them it comes at once).
    pub caught_up: bool,
    /// OTLP listeners' counters of what never reaches the channel
    /// (throttled, refused), by source index.
    otlp: Vec<(usize, Arc<OtlpCounters>)>,
    /// Tests of the binary (`TOKWATCH_TEST_HOLD_WHILE`): nothing is folded
    /// while this file exists.
    hold_while: Option<PathBuf>,
    /// Tests: a fold that blocks (see [`TestHold`]).
    #[cfg(test)]
    pub(crate) hold: Option<TestHold>,
    /// New anomalies go here (`--alert-webhook`).
    alert_sink: Option<webhook::AlertSink>,
    /// The detector's recent anomalies as last published, and how many had
    /// been raised then (rebuilt only when that changes).
    anomalies: (Arc<[Anomaly]>, u64),
}

/// Tests: makes [`Aggregator::handle`] say it started (`entered`) and then
/// wait until `release` is sent to or dropped — a fold as slow as a test
/// wants it.
#[cfg(test)]
pub(crate) struct TestHold {
    pub entered: std::sync::mpsc::Sender<()>,
    pub release: std::sync::mpsc::Receiver<()>,
}

impl Aggregator {
    #[must_use]
    pub fn new(
        prices: PriceBook,
        window: TimeWindow,
        max_line_bytes: usize,
        record: Option<File>,
    ) -> Self {
        Aggregator {
            ledger: Ledger::new(prices, LedgerConfig::default()),
            stats: IngestStats::default(),
            recorded_sources: std::collections::HashSet::new(),
            early_estimates: Vec::new(),
            calls: CallRegistry::default(),
            window,
            max_line_bytes,
            record: record.map(io::BufWriter::new),
            input_format: None,
            advisor: None,
            dirty: true,
            caught_up: false,
            otlp: Vec::new(),
            hold_while: None,
            #[cfg(test)]
            hold: None,
            alert_sink: None,
            anomalies: (Arc::from([]), 0),
        }
    }

    /// Detects anomalies by `rules` and queues new ones to `sink`. Call
    /// before any event is applied.
    #[must_use]
    pub fn with_anomalies(
        mut self,
        rules: Option<crate::model::anomaly::AnomalyRules>,
        sink: Option<webhook::AlertSink>,
    ) -> Self {
        if let Some(rules) = rules.filter(|r| r.enabled) {
            self.ledger.watch_anomalies(rules);
            self.alert_sink = sink;
        }
        self
    }

    /// Whether anomalies are detected (the service ticks them).
    #[must_use]
    pub fn watches_anomalies(&mut self) -> bool {
        self.ledger.anomalies_mut().is_some()
    }

    /// Ticks the detector with the clock: new anomalies are queued for the
    /// webhooks and logged; the recent ones, as published, are returned.
    pub fn tick_anomalies(&mut self, now_ms: i64) -> Arc<[Anomaly]> {
        let Some(detector) = self.ledger.anomalies_mut() else {
            return self.anomalies.0.clone();
        };
        detector.tick(now_ms);
        for anomaly in detector.take_new() {
            tracing::warn!(
                kind = anomaly.kind.name(),
                z = anomaly.z,
                "{}",
                anomaly.message
            );
            if let Some(sink) = &self.alert_sink {
                sink.push(&anomaly);
            }
        }
        if detector.raised() != self.anomalies.1 {
            self.anomalies = (
                detector.recent().iter().cloned().collect(),
                detector.raised(),
            );
            self.dirty = true;
        }
        self.anomalies.0.clone()
    }

    /// Shows these OTLP listeners in the statistics from the start, with
    /// their counters.
    pub fn watch_otlp(&mut self, endpoints: Vec<OtlpEndpointStats>) {
        for endpoint in endpoints {
            let index = self.stats.source_named(&endpoint.name, "otlp");
            self.stats.sources[index].otlp = Some(OtlpStats {
                protocol: endpoint.protocol,
                ..OtlpStats::default()
            });
            self.otlp.push((index, endpoint.counters));
        }
        self.sync_otlp();
    }

    /// Tests of the binary: fold nothing while `path` exists.
    pub fn hold_while(&mut self, path: Option<PathBuf>) {
        self.hold_while = path;
    }

    /// Reads the OTLP listeners' own counters into the statistics.
    pub fn sync_otlp(&mut self) {
        for (index, counters) in &self.otlp {
            if let Some(otlp) = &mut self.stats.sources[*index].otlp {
                let throttled = counters.throttled.load(Ordering::Relaxed);
                let refused = counters.refused.load(Ordering::Relaxed);
                self.dirty |= otlp.throttled != throttled || otlp.refused != refused;
                otlp.throttled = throttled;
                otlp.refused = refused;
            }
        }
    }

    /// Lines are read as `format` (`--input-format`), not detected: the
    /// recording must know which are counted from their text.
    #[must_use]
    pub fn with_input_format(mut self, format: Option<Format>) -> Self {
        self.input_format = format;
        self
    }

    /// Keeps `capacity` recent events for the live tail (default 500).
    /// Call before any event is applied.
    #[must_use]
    pub fn with_recent_events(mut self, capacity: usize) -> Self {
        self.ledger = self
            .ledger
            .reconfigured(|config| config.recent_capacity = capacity);
        self
    }

    /// Keeps per-series sums for the metrics under `caps` (`None`: none).
    /// Call before any event is applied.
    #[must_use]
    pub fn with_series(mut self, caps: Option<crate::model::ledger::SeriesCaps>) -> Self {
        self.ledger = self.ledger.reconfigured(|config| config.series = caps);
        self
    }

    /// Finds duplicate prompts under `rules`. Call before any event is
    /// applied.
    #[must_use]
    pub fn with_duplicates(mut self, rules: crate::model::duplicates::DuplicateRules) -> Self {
        self.ledger = self.ledger.reconfigured(|config| config.duplicates = rules);
        self
    }

    /// The prices the ledger uses.
    #[must_use]
    pub fn prices(&self) -> &PriceBook {
        self.ledger.prices()
    }

    #[must_use]
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Keeps an advisor with these rules (`None`: none).
    #[must_use]
    pub fn with_advisor(
        mut self,
        rules: Option<(
            crate::model::advisor::AdvisorRules,
            crate::model::insights::BleedRules,
        )>,
    ) -> Self {
        self.advisor = rules.map(|(advisor, bleed)| {
            crate::model::advisor::Advisor::new(advisor, bleed, self.ledger.prices())
        });
        self
    }

    /// The run limits the advisor's forecasts are measured against
    /// ([`crate::model::advisor::Advisor::set_run_limits`]).
    #[must_use]
    pub fn with_run_limits(mut self, limits: crate::model::budget::LimitsByScope) -> Self {
        if let Some(advisor) = &mut self.advisor {
            advisor.set_run_limits(limits);
        }
        self
    }

    /// Brings the advisor up to date (the runs changed since the last
    /// publication) and attaches its advice to `snapshot`.
    pub fn attach_advice(&mut self, snapshot: &mut Snapshot) {
        if let Some(advisor) = &mut self.advisor {
            advisor.sync(&self.ledger);
            let span = snapshot.first_ts_ms.zip(snapshot.last_ts_ms);
            let mut advice = advisor.advice(span, &snapshot.runs);
            if let Some(duplicates) = &snapshot.duplicates {
                advice.add_duplicates(duplicates, advisor.rules(), snapshot.totals.cost);
            }
            snapshot.advice = Some(Arc::new(advice));
        }
    }

    /// The dashboard's snapshot: the [`DASHBOARD_TOP`] most expensive runs
    /// and rows of each list, the rest folded ([`Ledger::snapshot_live`]).
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        self.ledger.snapshot_live(DASHBOARD_TOP)
    }

    /// A snapshot for printing ([`Ledger::snapshot_top`]): the `runs` most
    /// expensive runs and rows of each list (0: all), no per-minute series.
    #[must_use]
    pub fn snapshot_top(&self, runs: usize) -> Snapshot {
        self.ledger.snapshot_top(runs)
    }

    fn source(&mut self, source: &SourceRef) -> usize {
        self.stats.source_named(&source.name, &source.origin)
    }

    /// Applies one message.
    ///
    /// # Errors
    /// Writing the `--record` file failed (the message was not applied).
    pub fn handle(&mut self, msg: IngestMsg) -> io::Result<()> {
        #[cfg(test)]
        if let Some(hold) = &self.hold {
            let _ = hold.entered.send(());
            let _ = hold.release.recv();
        }
        if let Some(path) = &self.hold_while {
            while path.exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.dirty = true;
        // The per-minute series (the burn rate) is anchored on this clock,
        // not on the newest call time (an agent's clock may be wrong).
        self.ledger.set_clock(chrono::Utc::now().timestamp_millis());
        match msg {
            IngestMsg::Lines {
                source,
                first_line: _,
                mut lines,
            } => {
                self.fold(&source, &mut lines)?;
            }
            IngestMsg::Otlp(request) => self.otlp_request(*request)?,
            IngestMsg::Oversized {
                source,
                line_no,
                bytes,
            } => {
                let index = self.source(&source);
                let reason = oversized_reason(bytes, self.max_line_bytes);
                self.stats.count_line(index, Format::Native);
                self.stats.reject_at(
                    index,
                    source.location(line_no),
                    RejectKind::Oversized,
                    reason,
                );
            }
            IngestMsg::File { source, event } => {
                let index = self.source(&source);
                let live = &mut self.stats.sources[index].live;
                match event {
                    // a file back after an absence is not another file
                    FileEvent::Opened { resumed, .. } => {
                        self.stats.files += u64::from(!resumed);
                        self.stats.files_followed += 1;
                    }
                    FileEvent::Rotated => live.rotations += 1,
                    FileEvent::Truncated => live.truncations += 1,
                    FileEvent::Replaced => live.replacements += 1,
                    FileEvent::CopyOfTruncated { .. } => live.copies_skipped += 1,
                    FileEvent::Closed { incomplete } => {
                        live.incomplete += u64::from(incomplete > 0);
                        self.stats.files_followed = self.stats.files_followed.saturating_sub(1);
                    }
                    FileEvent::Lost { incomplete } => live.incomplete += u64::from(incomplete > 0),
                    FileEvent::Error(message) => self.stats.count_error(index, &message),
                }
            }
            IngestMsg::Waiting { target, missing } => self.stats.set_waiting(&target, missing),
            IngestMsg::CaughtUp => self.caught_up = true,
            IngestMsg::Estimated(estimated) => {
                let known = estimated
                    .event
                    .call
                    .is_some_and(|c| self.calls.knows(c.key));
                if known {
                    self.apply_estimated(&estimated)?;
                } else {
                    self.early_estimates.push(*estimated);
                }
            }
            IngestMsg::Client { source, change } => {
                let index = self.source(&source);
                let live = &mut self.stats.sources[index].live;
                match change {
                    ClientChange::HandshakeStarted => live.clients_pending += 1,
                    ClientChange::HandshakeEnded => {
                        live.clients_pending = live.clients_pending.saturating_sub(1);
                    }
                    ClientChange::Connected => {
                        live.clients_connected += 1;
                        live.clients_total += 1;
                    }
                    ClientChange::Disconnected { incomplete } => {
                        live.clients_connected = live.clients_connected.saturating_sub(1);
                        live.incomplete += u64::from(incomplete > 0);
                    }
                    ClientChange::Rejected { reason } => {
                        live.clients_rejected += 1;
                        // counted as an error too: `last_error` is never
                        // a reason that `errors` does not count
                        let reason =
                            format!("{}: {reason}", source.location(0).trim_end_matches(":0"));
                        self.stats.count_error(index, &reason);
                    }
                }
            }
        }
        Ok(())
    }
}

impl Aggregator {
    /// Records (socket and OTLP lines, `--record`) and folds a batch of
    /// lines; returns the source's index in the statistics.
    fn fold(&mut self, source: &SourceRef, lines: &mut ParsedLines) -> io::Result<usize> {
        if let Some(record) = &mut self.record {
            match source.kind {
                SourceKind::Unix | SourceKind::Tcp => {
                    // Socket data has no file behind it: keep it before counting it
                    // (without prompt or completion text: never written to disk).
                    lines.try_for_each_line(|line| {
                        match record_line(line, self.input_format)? {
                            Recorded::Line(bytes) => {
                                record.write_all(&bytes)?;
                                record.write_all(b"\n")
                            }
                            // Counted from its text: recorded once counted.
                            Recorded::Later => Ok(()),
                        }
                    })?;
                    record.flush()?;
                    if !self.recorded_sources.contains(&source.name) {
                        self.recorded_sources.insert(source.name.clone());
                    }
                }
                SourceKind::Otlp => {
                    // Already normalized OTLP/JSON without text: recorded
                    // as it is decoded, so a replay decodes the same.
                    lines.try_for_each_line(|line| {
                        record.write_all(line)?;
                        record.write_all(b"\n")
                    })?;
                    record.flush()?;
                }
                SourceKind::File | SourceKind::Stdin => {}
            }
        }
        let index = self.source(source);
        let mut ingestor = Ingestor {
            ledger: &mut self.ledger,
            stats: std::mem::take(&mut self.stats),
            window: self.window,
            calls: std::mem::take(&mut self.calls),
            ended: None,
        };
        let applied = lines.apply(index, self.max_line_bytes, &mut ingestor, |line_no| {
            source.location(line_no)
        });
        self.stats = ingestor.stats;
        self.calls = ingestor.calls;
        applied?;
        if !self.early_estimates.is_empty() {
            let early = std::mem::take(&mut self.early_estimates);
            for estimated in early {
                if estimated
                    .event
                    .call
                    .is_some_and(|c| self.calls.knows(c.key))
                {
                    self.apply_estimated(&estimated)?;
                } else {
                    self.early_estimates.push(estimated);
                }
            }
        }
        Ok(index)
    }

    /// Folds an OTLP request's line, and counts how its spans fared:
    /// a malformed request, and each span rejected alone, as a rejected
    /// line at the request's location.
    fn otlp_request(&mut self, request: OtlpRequest) -> io::Result<()> {
        let OtlpRequest {
            source,
            request,
            mut lines,
            spans_accepted,
            rejected_spans,
            malformed,
            budget,
        } = request;
        let index = self.fold(&source, &mut lines)?;
        // Folded: its bytes are no longer in flight.
        drop(budget);
        drop(lines);
        let location = source.location(request);
        if let Some(reason) = malformed {
            self.stats.count_line(index, Format::Otlp);
            self.stats
                .reject_at(index, location.clone(), RejectKind::Malformed, reason);
        }
        let rejected = rejected_spans.len() as u64;
        for reason in rejected_spans {
            self.stats
                .reject_at(index, location.clone(), RejectKind::Malformed, reason);
        }
        let otlp = self.stats.sources[index]
            .otlp
            .get_or_insert_with(OtlpStats::default);
        otlp.requests += 1;
        otlp.spans_accepted += spans_accepted;
        otlp.spans_rejected += rejected;
        Ok(())
    }

    /// Records (socket lines) and folds an exact count from text.
    fn apply_estimated(
        &mut self,
        estimated: &crate::ingest::estimate::Estimated,
    ) -> io::Result<()> {
        if let (Some(record), Some(line)) = (&mut self.record, &estimated.record)
            && self.recorded_sources.contains(&estimated.source)
        {
            let line = line
                .as_ref()
                .map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
            record.write_all(line)?;
            record.write_all(b"\n")?;
            record.flush()?;
        }
        let index = self
            .stats
            .source_named(&estimated.source, &estimated.origin);
        let mut ingestor = Ingestor {
            ledger: &mut self.ledger,
            stats: std::mem::take(&mut self.stats),
            window: self.window,
            calls: std::mem::take(&mut self.calls),
            ended: None,
        };
        fold_estimated(&mut ingestor, index, estimated);
        self.stats = ingestor.stats;
        self.calls = ingestor.calls;
        Ok(())
    }
}

/// Sends what a follower finds to the aggregator, batching lines per file.
/// Each file the follower opens gets a slot of its own, with its own
/// decoder: a rotated-away file still being drained and the new file at its
/// path never share a stateful decoder (statistics are kept per path all
/// the same). A closed file's slot is reused.
struct ChannelSink {
    tx: mpsc::Sender<IngestMsg>,
    decoders: Arc<DecoderConfig>,
    sources: Vec<SourceRef>,
    batches: Vec<LineBatch>,
    /// Slots of closed files (or of files that could not be opened).
    free: Vec<usize>,
    /// Slots whose file was opened and is not closed yet.
    open: Vec<bool>,
}

impl ChannelSink {
    fn new(tx: mpsc::Sender<IngestMsg>, decoders: Arc<DecoderConfig>) -> Self {
        ChannelSink {
            tx,
            decoders,
            sources: Vec::new(),
            batches: Vec::new(),
            free: Vec::new(),
            open: Vec::new(),
        }
    }

    fn send(&self, msg: IngestMsg) {
        // Blocks while the aggregator is behind (backpressure); fails only
        // when the aggregator is gone, i.e. at shutdown.
        let _ = self.tx.blocking_send(msg);
    }

    fn flush(&mut self, source: usize) {
        if let Some(msg) = self.batches[source].take(&self.sources[source]) {
            self.send(msg);
        }
    }

    fn flush_all(&mut self) {
        for source in 0..self.sources.len() {
            self.flush(source);
        }
    }
}

impl TailSink for ChannelSink {
    fn source(&mut self, path: &Path) -> usize {
        let source = SourceRef {
            name: path.display().to_string().into(),
            origin: crate::ingest::sources::files::origin_of(path).into(),
            kind: SourceKind::File,
            client: None,
        };
        let batch = LineBatch::new(&source, self.decoders.clone());
        match self.free.pop() {
            Some(slot) => {
                self.sources[slot] = source;
                self.batches[slot] = batch;
                slot
            }
            None => {
                self.sources.push(source);
                self.batches.push(batch);
                self.open.push(false);
                self.sources.len() - 1
            }
        }
    }

    fn line(&mut self, source: usize, line_no: u64, line: &[u8]) {
        let batch = &self.batches[source];
        if !batch.is_empty() && batch.next_line != line_no {
            self.flush(source);
        }
        self.batches[source].push(line_no, line);
        if self.batches[source].is_full() {
            self.flush(source);
        }
    }

    fn oversized(&mut self, source: usize, line_no: u64, bytes: u64) {
        self.flush(source);
        self.send(IngestMsg::Oversized {
            source: self.sources[source].clone(),
            line_no,
            bytes,
        });
    }

    fn file_event(&mut self, source: usize, event: FileEvent) {
        // What the decoder holds belongs to the file that ended or starts
        // over: counted now. (A rotated-away file goes on being drained, with
        // its decoder, until it is closed; the new file has a slot of its own.)
        if matches!(event, FileEvent::Truncated | FileEvent::Closed { .. }) {
            self.batches[source].end_of_source();
        }
        self.flush(source);
        // A closed file, or one that never opened, frees its slot.
        let done = match event {
            FileEvent::Opened { .. } => {
                self.open[source] = true;
                false
            }
            FileEvent::Closed { .. } => true,
            FileEvent::Error(_) | FileEvent::Lost { .. } => !self.open[source],
            _ => false,
        };
        if done {
            self.open[source] = false;
            self.free.push(source);
        }
        self.send(IngestMsg::File {
            source: self.sources[source].clone(),
            event,
        });
    }

    fn waiting(&mut self, target: &Target, missing: bool) {
        self.send(IngestMsg::Waiting {
            target: target.name().into(),
            missing,
        });
    }
}

/// Runs the follower on its own thread: a pass on every notify event (a
/// hint only) and at least every `poll_interval` (the safety net). Its
/// output: the channel, and its share of catching up.
fn spawn_follower(
    targets: Vec<Target>,
    config: FollowConfig,
    decoders: Arc<DecoderConfig>,
    poll_interval: Duration,
    use_notify: bool,
    (tx, catch_up): (mpsc::Sender<IngestMsg>, crate::ingest::sources::CatchUp),
    stop: Arc<AtomicBool>,
) -> io::Result<(JoinHandle<()>, Option<String>)> {
    // Capacity 1: wake-ups coalesce; a pass reads everything anyway.
    let (wake_tx, wake_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let mut warning = None;
    let mut watcher = None;
    if use_notify {
        let wake = wake_tx.clone();
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Opens and reads (ours included: every pass lists directories)
            // change nothing; waking on them would loop forever.
            if event.is_ok_and(|e| matches!(e.kind, notify::EventKind::Access(_))) {
                return;
            }
            let _ = wake.try_send(());
        }) {
            Ok(mut w) => {
                for target in &targets {
                    for (root, recursive) in target.watch_roots() {
                        let mode = if recursive {
                            notify::RecursiveMode::Recursive
                        } else {
                            notify::RecursiveMode::NonRecursive
                        };
                        if let Err(e) = w.watch(&root, mode)
                            && root.exists()
                        {
                            warning = Some(format!(
                                "cannot watch '{}' ({e}); polling every {poll_interval:?}",
                                root.display()
                            ));
                        }
                    }
                }
                watcher = Some(w);
            }
            Err(e) => {
                warning = Some(format!(
                    "file events unavailable ({e}); polling every {poll_interval:?}"
                ))
            }
        }
    }
    let handle = std::thread::Builder::new()
        .name("tokwatch-follow".into())
        .spawn(move || {
            let _watcher = watcher; // dropped with the thread
            let mut follower = Follower::new(targets, config);
            let mut sink = ChannelSink::new(tx, decoders);
            let mut catch_up = Some(catch_up);
            while !stop.load(Ordering::Relaxed) {
                let report = follower.poll(Instant::now(), &mut sink);
                sink.flush_all();
                if report.more {
                    continue;
                }
                // The last source caught up says so.
                if catch_up
                    .take()
                    .is_some_and(crate::ingest::sources::CatchUp::done)
                {
                    // The backlog's records counted from text are part of it.
                    if let Some(estimator) = &sink.decoders.estimator {
                        estimator.flush();
                    }
                    sink.send(IngestMsg::CaughtUp);
                }
                let _ = wake_rx.recv_timeout(poll_interval);
            }
            follower.close_all(&mut sink);
            sink.flush_all();
            drop(wake_tx);
        })?;
    Ok((handle, warning))
}

fn open_record(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open --record file '{}'", path.display()))
}

/// How long stopping waits for records being counted from text (the first
/// one loads a tokenizer: about 2 s).
const ESTIMATES_AT_EXIT: Duration = Duration::from_secs(10);

/// Running sources: their channel, and what it takes to stop them.
pub struct Sources {
    /// Everything sources send, in order per source; closes when every source is done.
    pub rx: mpsc::Receiver<IngestMsg>,
    /// `--record` file for socket data, handed to the aggregator.
    pub record: Option<File>,
    /// Listeners as bound (`tcp:127.0.0.1:40123`,
    /// `otlp-http:127.0.0.1:4318`), and warnings to show.
    pub listening: Vec<String>,
    /// OTLP listeners, for the aggregator's statistics
    /// ([`Aggregator::watch_otlp`]).
    pub otlp: Vec<OtlpEndpointStats>,
    /// Tests of the binary ([`OtlpSettings::hold_aggregator_while`]).
    pub hold_while: Option<PathBuf>,
    pub warnings: Vec<String>,
    shutdown: watch::Sender<bool>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    listener_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Counts records from their text, off the sources' paths.
    estimator: Estimator,
}

impl Sources {
    /// Binds listeners and starts the follower and stdin reader. Must run
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// A listener cannot bind, the record file cannot be opened or is followed.
    pub fn start(settings: &LiveSettings) -> anyhow::Result<Sources> {
        let (tx, rx) = mpsc::channel::<IngestMsg>(CHANNEL_CAPACITY);
        // Records counted from text come back through the same channel; a
        // weak sender, so that the channel still closes when every source
        // is done.
        let weak = tx.downgrade();
        let estimator = Estimator::new(move |estimated| {
            if let Some(tx) = weak.upgrade() {
                let _ = tx.blocking_send(IngestMsg::Estimated(Box::new(estimated)));
            }
        });
        let decoders = Arc::new(DecoderConfig {
            estimator: Some(estimator.clone()),
            ..(*settings.decoders).clone()
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let stop = Arc::new(AtomicBool::new(false));
        // Pipes (`<(…)`, a FIFO) are read as streams, like standard input.
        let (pipes, followed): (Vec<&String>, Vec<&String>) = settings
            .follow
            .iter()
            .filter(|f| f.as_str() != "-")
            .partition(|f| crate::ingest::sources::stdin::is_pipe(Path::new(f)));
        let targets: Vec<Target> = followed.into_iter().map(|f| Target::parse(f)).collect();
        let stdin = settings.follow.iter().any(|f| f == "-");
        // The follower, each pipe and standard input read a backlog: the
        // last one caught up says so (`sources::CatchUp`).
        let readers = usize::from(!targets.is_empty()) + pipes.len() + usize::from(stdin);
        let catch_up = crate::ingest::sources::CatchUp::new(readers);
        if readers == 0 {
            // No backlog to read. The channel is new, so this cannot fail.
            let _ = tx.try_send(IngestMsg::CaughtUp);
        }
        if let Some(record) = &settings.record {
            crate::ingest::record::check_not_followed(record, &targets)
                .map_err(anyhow::Error::msg)?;
        }
        let record = settings.record.as_deref().map(open_record).transpose()?;
        let mut sources = Sources {
            rx,
            record,
            listening: Vec::new(),
            otlp: Vec::new(),
            hold_while: settings.otlp.hold_aggregator_while.clone(),
            warnings: Vec::new(),
            shutdown,
            stop: stop.clone(),
            threads: Vec::new(),
            listener_tasks: Vec::new(),
            estimator,
        };
        // One configuration for all listeners: `--max-clients` is a total.
        let config = ListenConfig::new(
            settings.max_line_bytes,
            settings.listen_token.clone(),
            settings.max_clients,
            decoders.clone(),
        )
        .with_idle_timeout(settings.client_idle_timeout);
        for addr in &settings.listen {
            let listener = Listener::bind(addr, settings.listen_token.as_deref())?;
            sources.listening.push(listener.name().to_owned());
            sources.listener_tasks.push(tokio::spawn(listener.serve(
                tx.clone(),
                config.clone(),
                shutdown_rx.clone(),
            )));
        }
        if settings.otlp.any() {
            sources.start_otlp(settings, &tx, &decoders, &shutdown_rx)?;
        }
        if !targets.is_empty() {
            let config = FollowConfig {
                start: if settings.from_end {
                    StartAt::End
                } else {
                    StartAt::Beginning
                },
                max_line_bytes: settings.max_line_bytes,
                ..FollowConfig::default()
            };
            let (handle, warning) = spawn_follower(
                targets,
                config,
                decoders.clone(),
                settings.poll_interval,
                !settings.poll,
                (tx.clone(), catch_up.clone()),
                stop,
            )?;
            sources.warnings.extend(warning);
            sources.threads.push(handle);
        }
        for pipe in pipes {
            sources
                .threads
                .push(crate::ingest::sources::stdin::spawn_pipe(
                    PathBuf::from(pipe),
                    tx.clone(),
                    catch_up.clone(),
                    settings.max_line_bytes,
                    decoders.clone(),
                )?);
        }
        if stdin {
            sources.threads.push(crate::ingest::sources::stdin::spawn(
                tx,
                catch_up,
                settings.max_line_bytes,
                decoders.clone(),
            )?);
        }
        Ok(sources)
    }

    /// Binds the OTLP listeners, all sharing one [`Intake`].
    fn start_otlp(
        &mut self,
        settings: &LiveSettings,
        tx: &mpsc::Sender<IngestMsg>,
        decoders: &DecoderConfig,
        shutdown: &watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        use crate::ingest::sources::otlp;
        let otlp_settings = &settings.otlp;
        let token = otlp_settings.token.as_deref();
        let mut bound = Vec::new();
        for (protocol, addrs) in [
            ("otlp-http", &otlp_settings.http),
            ("otlp-grpc", &otlp_settings.grpc),
        ] {
            for addr in addrs {
                let (listener, source) = otlp::bind(protocol, addr, token)?;
                bound.push((protocol, listener, source));
            }
        }
        let intake = Arc::new(
            Intake::new(
                tx.clone(),
                decoders,
                otlp_settings.token.clone(),
                otlp_settings.max_body,
            )
            .with_max_line_bytes(settings.max_line_bytes),
        );
        let connections = Arc::new(otlp::conn::Connections::new(
            otlp_settings.max_connections,
            settings.client_idle_timeout,
        ));
        for (protocol, listener, source) in bound {
            let counters = Arc::new(OtlpCounters::default());
            self.listening.push(source.name.to_string());
            self.otlp.push(OtlpEndpointStats {
                name: source.name.clone(),
                protocol,
                counters: counters.clone(),
            });
            let endpoint = Endpoint {
                source,
                counters,
                intake: intake.clone(),
            };
            let listener = otlp::conn::Limited::new(listener, connections.clone());
            let task = match protocol {
                "otlp-grpc" => {
                    tokio::spawn(otlp::grpc::serve(listener, endpoint, shutdown.clone()))
                }
                _ => tokio::spawn(otlp::http::serve(listener, endpoint, shutdown.clone())),
            };
            self.listener_tasks.push(task);
        }
        Ok(())
    }

    /// Stops every source and hands what they had already sent to `apply`
    /// (waiting at most two seconds).
    ///
    /// # Errors
    /// What `apply` returns.
    pub async fn shutdown(
        mut self,
        mut apply: impl FnMut(IngestMsg) -> io::Result<()>,
    ) -> io::Result<()> {
        // Records still being counted from their text are delivered while
        // the sources (and so the channel) are still there: counted exactly
        // for a second, then with their rough counts (nothing is lost).
        let estimator = self.estimator.clone();
        let mut flushed = tokio::task::spawn_blocking(move || estimator.flush());
        let hurry_at = tokio::time::Instant::now() + Duration::from_secs(1);
        let give_up = tokio::time::Instant::now() + ESTIMATES_AT_EXIT;
        let mut hurried = false;
        loop {
            tokio::select! {
                _ = &mut flushed => break,
                () = tokio::time::sleep_until(hurry_at), if !hurried => {
                    hurried = true;
                    self.estimator.hurry();
                }
                msg = tokio::time::timeout_at(give_up, self.rx.recv()) => match msg {
                    Ok(Some(msg)) => apply(msg)?,
                    _ => break,
                },
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            apply(msg)?;
        }
        for task in self.listener_tasks {
            let _ = tokio::time::timeout_at(deadline, task).await;
        }
        drop(self.rx); // unblocks a stdin thread still waiting to send
        for thread in self.threads {
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        Ok(())
    }
}
