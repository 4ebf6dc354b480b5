//! The advisor over a report's runs: on every core once the fold ends, on a
//! thread of its own while `report` renders its document ([`AdviceJob`],
//! [`PendingAdvice`]), and, for `advise` and `compare`, on a thread of its
//! own for the runs that end while the fold goes on ([`EarlyAdvisor`]).
//! However the runs are split, the advice is the one a single advisor gives
//! over all of them (merges are exact sums).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

use rustc_hash::FxHashSet;

use crate::ingest::{EndedQueue, EndedRuns};
use crate::model::advisor::{Advice, Advisor, AdvisorRules};
use crate::model::budget::LimitsByScope;
use crate::model::insights::BleedRules;
use crate::model::{RunAgg, Snapshot};
use crate::pricing::PriceBook;

/// How many threads the advisor takes: `threads` (`report --threads`), or
/// one per core.
#[must_use]
pub fn advisor_threads(threads: Option<NonZeroUsize>) -> usize {
    threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
}

/// The advice on every run of `snapshot`, on `threads` threads (see
/// [`advisor_threads`]), with what `early` read while the fold went on;
/// the forecasts of runs still going against `run_limits`
/// ([`Advisor::set_run_limits`]).
#[must_use]
pub fn advise_runs(
    snapshot: &Snapshot,
    (rules, bleed): (AdvisorRules, BleedRules),
    prices: &PriceBook,
    threads: Option<NonZeroUsize>,
    early: Option<EarlyAdvisor>,
    run_limits: LimitsByScope,
) -> Advice {
    let threads = advisor_threads(threads);
    let mut advisor = match early {
        Some(early) => {
            early
                .finish(&snapshot.runs, &rules, &bleed, prices, threads)
                .0
        }
        None => advise_final_runs(&snapshot.runs, &rules, &bleed, prices, threads),
    };
    advisor.set_run_limits(run_limits);
    let span = snapshot.first_ts_ms.zip(snapshot.last_ts_ms);
    let mut advice = advisor.advice(span, &snapshot.runs);
    if let Some(duplicates) = &snapshot.duplicates {
        advice.add_duplicates(duplicates, advisor.rules(), snapshot.totals.cost);
    }
    advice
}

/// What a report needs to advise on its runs once they are read: the rules,
/// the prices, the threads, the advisor that read runs while the fold went
/// on, and the run limits forecasts are measured against.
pub struct AdviceJob {
    pub rules: AdvisorRules,
    pub bleed: BleedRules,
    pub prices: PriceBook,
    pub threads: Option<NonZeroUsize>,
    pub early: Option<EarlyAdvisor>,
    pub run_limits: LimitsByScope,
}

impl AdviceJob {
    /// The advice on every run of `snapshot`, now ([`advise_runs`]).
    #[must_use]
    pub fn run(self, snapshot: &Snapshot) -> Advice {
        advise_runs(
            snapshot,
            (self.rules, self.bleed),
            &self.prices,
            self.threads,
            self.early,
            self.run_limits,
        )
    }

    /// The advice on every run of `snapshot`, on a thread of its own while
    /// the caller goes on (renders the report on its core): the advisor
    /// takes one thread fewer than [`advisor_threads`], so that the
    /// rendering is never the one waiting for a core. With one thread
    /// (`--threads 1`, one core), or without a thread (the system refused
    /// one), now.
    #[must_use]
    pub fn spawn(mut self, snapshot: Arc<Snapshot>) -> PendingAdvice {
        let threads = advisor_threads(self.threads);
        if threads <= 1 {
            return PendingAdvice {
                thread: Mutex::new(None),
                advice: OnceLock::from(Some(self.run(&snapshot))),
            };
        }
        self.threads = NonZeroUsize::new(threads - 1);
        let job = Arc::new(Mutex::new(Some(self)));
        let on_thread = Arc::clone(&job);
        let shared = Arc::clone(&snapshot);
        let spawned = std::thread::Builder::new()
            .name("advisor".into())
            .spawn(move || {
                let job = on_thread
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                job.map(|job| job.run(&shared))
            });
        match spawned {
            Ok(thread) => PendingAdvice {
                thread: Mutex::new(Some(thread)),
                advice: OnceLock::new(),
            },
            Err(error) => {
                tracing::debug!("no thread for the advisor: {error}");
                let job = job.lock().unwrap_or_else(PoisonError::into_inner).take();
                PendingAdvice {
                    thread: Mutex::new(None),
                    advice: OnceLock::from(job.map(|job| job.run(&snapshot))),
                }
            }
        }
    }
}

/// Advice being worked out on a thread of its own ([`AdviceJob::spawn`]):
/// a report renders everything else meanwhile and waits for it only where
/// it writes `insights`, last.
pub struct PendingAdvice {
    thread: Mutex<Option<JoinHandle<Option<Advice>>>>,
    advice: OnceLock<Option<Advice>>,
}

impl PendingAdvice {
    /// The advice, once its thread is done (waits for it). A panic on that
    /// thread is resumed here; `None` only when a wait before resumed one.
    #[must_use]
    pub fn wait(&self) -> Option<&Advice> {
        self.advice
            .get_or_init(|| {
                let thread = self
                    .thread
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                match thread.map(JoinHandle::join) {
                    Some(Ok(advice)) => advice,
                    Some(Err(panic)) => std::panic::resume_unwind(panic),
                    None => None,
                }
            })
            .as_ref()
    }
}

/// An advisor over `runs`, all final ([`Advisor::observe_final`]),
/// analysed on up to `threads` threads (the decode threads are idle once the
/// fold ends): each takes a contiguous share of the runs with its own
/// advisor, and the advisors are merged. The merge is exact, so the advice
/// is the one a single advisor gives.
#[must_use]
pub fn advise_final_runs(
    runs: &[Arc<RunAgg>],
    rules: &AdvisorRules,
    bleed: &BleedRules,
    prices: &PriceBook,
    threads: usize,
) -> Advisor {
    let runs = runs.iter().map(|run| &**run).collect();
    advise_each(runs, rules, bleed, prices, threads)
}

fn advise_each(
    mut runs: Vec<&RunAgg>,
    rules: &AdvisorRules,
    bleed: &BleedRules,
    prices: &PriceBook,
    threads: usize,
) -> Advisor {
    /// Below this many runs per thread, one thread is quicker than starting more.
    const MIN_RUNS_PER_THREAD: usize = 500;
    let observe = |runs: &[&RunAgg]| {
        let mut advisor = Advisor::new(rules.clone(), bleed.clone(), prices);
        advisor.observe_final(runs.iter().copied());
        advisor
    };
    // By address: the ledger allocated runs as they came, so this order
    // reads memory forward (the listed order, by cost, jumps about it and
    // waits on each run; measured in BENCHMARKS.md). Any order gives the
    // same advice.
    runs.sort_unstable_by_key(|run| run.address());
    let runs = &runs[..];
    let threads = threads.clamp(1, (runs.len() / MIN_RUNS_PER_THREAD).max(1));
    if threads == 1 {
        return observe(runs);
    }
    let chunk = runs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut chunks = runs.chunks(chunk);
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks
            .map(|part| scope.spawn(move || observe(part)))
            .collect();
        let mut advisor = observe(first);
        for other in others {
            match other.join() {
                Ok(other) => advisor.merge(other),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        advisor
    })
}

/// Lowers this thread's priority to the least (`SCHED_IDLE` on Linux): it
/// runs on what the others leave idle. Best effort: where that is refused,
/// it keeps its priority.
fn run_when_idle() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(error) =
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
        {
            tracing::debug!("advisor thread keeps its priority: {error:?}");
        }
    }
}

/// An advisor on a thread of its own, fed the runs that end while `advise`
/// or `compare` folds its input ([`EndedRuns`],
/// [`crate::model::Ledger::note_ended_runs`]): their advice is mostly done
/// by the time the fold is. The fold is the bottleneck and never waits for
/// it; the decode thread leaves a core partly idle, which this thread takes
/// at idle priority. When the fold ends, [`EarlyAdvisor::finish`] takes back
/// what it has not read, so the advice waits for one batch at most, not for
/// a thread the scheduler serves last.
pub struct EarlyAdvisor {
    queue: Arc<EndedQueue>,
    reader: Option<JoinHandle<ReadEarly>>,
}

/// The early advisor, the batches of runs it read, and their addresses
/// (gathered there, off the report's critical path: `finish` only looks
/// them up).
type ReadEarly = (Advisor, Vec<Vec<Arc<RunAgg>>>, FxHashSet<usize>);

impl EarlyAdvisor {
    /// The advisor, started, and the fold's end of its queue (for
    /// [`crate::ingest::Ingestor::ended`]).
    #[must_use]
    pub fn start(rules: AdvisorRules, bleed: BleedRules, prices: PriceBook) -> (Self, EndedRuns) {
        let queue = Arc::new(EndedQueue::default());
        let from_fold = Arc::clone(&queue);
        let reader = std::thread::Builder::new()
            .name("early-advisor".into())
            .spawn(move || {
                run_when_idle();
                let mut advisor = Advisor::with_book(rules, bleed, Arc::new(prices));
                // Every run read is kept until the report has matched them
                // (see `finish`): no other run can take their addresses.
                let mut read = Vec::new();
                let mut addresses = FxHashSet::default();
                while let Some(runs) = from_fold.next() {
                    advisor.observe_final(runs.iter().map(|run| &**run));
                    addresses.extend(runs.iter().map(|run| run.address()));
                    read.push(runs);
                }
                (advisor, read, addresses)
            });
        Self::with_reader(queue, reader)
    }

    /// Without a thread (the system refused one) the fold queues nothing
    /// and `finish` reads every run.
    fn with_reader(
        queue: Arc<EndedQueue>,
        reader: std::io::Result<JoinHandle<ReadEarly>>,
    ) -> (Self, EndedRuns) {
        let reader = reader
            .inspect_err(|error| {
                tracing::debug!("no early advisor thread: {error}");
                queue.close();
            })
            .ok();
        let early = EarlyAdvisor {
            queue: Arc::clone(&queue),
            reader,
        };
        (early, EndedRuns::new(queue))
    }

    /// The advisor over every run of `runs` (a report's, all final): the
    /// runs this one has read, merged with the others read here on
    /// `threads` threads. A run read early and changed later (a call after
    /// its `run_end`) is no longer among `runs` (the ledger copied it on
    /// write): what was read early is then dropped and every run is read
    /// again, so the advice is exact either way. Also returns how many runs'
    /// early reading was kept.
    #[must_use]
    pub fn finish(
        mut self,
        runs: &[Arc<RunAgg>],
        rules: &AdvisorRules,
        bleed: &BleedRules,
        prices: &PriceBook,
        threads: usize,
    ) -> (Advisor, usize) {
        let unread = self.queue.waiting();
        self.queue.close();
        let (mut early, read, addresses) = match self.reader.take().map(JoinHandle::join) {
            Some(Ok(done)) => done,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => return (advise_final_runs(runs, rules, bleed, prices, threads), 0),
        };
        let mut current = 0;
        let rest: Vec<&RunAgg> = runs
            .iter()
            .filter(|run| {
                let early = addresses.contains(&run.address());
                current += usize::from(early);
                !early
            })
            .map(|run| &**run)
            .collect();
        tracing::debug!(
            read = addresses.len(),
            unread_batches = unread,
            "runs advised while the fold went on"
        );
        // `read` holds every run read, so none of their addresses was reused
        drop(read);
        if current != addresses.len() {
            return (advise_final_runs(runs, rules, bleed, prices, threads), 0);
        }
        let rest = advise_each(rest, rules, bleed, prices, threads);
        early.merge(rest);
        (early, current)
    }
}

impl Drop for EarlyAdvisor {
    /// A report that stops early (an error) ends the reader too.
    fn drop(&mut self) {
        self.queue.close();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ingest::formats::native;
    use crate::ingest::{Ingestor, LineOrigin, TimeWindow};
    use crate::model::{Ledger, LedgerConfig};
    use crate::workload;

    /// A ledger with `events` lines of the bench corpus (seed `seed`).
    fn bench_ledger(events: u64, seed: u64) -> Ledger {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.jsonl");
        workload::write_bench_corpus(&path, events, seed).unwrap();
        let text = std::fs::read(&path).unwrap();
        let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default().unlimited());
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let origin = LineOrigin {
                source: "bench",
                rough: false,
            };
            ledger.apply(&native::parse_line(line, origin).unwrap());
        }
        ledger
    }

    #[test]
    fn advice_on_several_threads_is_the_advice_on_one() {
        let ledger = bench_ledger(30_000, 3);
        let snapshot = ledger.snapshot();
        assert!(snapshot.runs.len() > 1_500, "{} runs", snapshot.runs.len());
        let rules = AdvisorRules::default();
        let span = snapshot.first_ts_ms.zip(snapshot.last_ts_ms);
        let advice = |threads| {
            let advisor = advise_final_runs(
                &snapshot.runs,
                &rules,
                &BleedRules::default(),
                ledger.prices(),
                threads,
            );
            advisor.advice(span, &snapshot.runs)
        };
        let one = advice(1);
        assert!(!one.recommendations.is_empty());
        assert!(
            one.recommendations
                .iter()
                .any(|r| r.evidence.len() == crate::model::advisor::EVIDENCE_RUNS)
        );
        for threads in [2, 3, 64] {
            assert_eq!(advice(threads), one, "{threads} threads");
        }
    }

    #[test]
    fn advice_worked_out_on_a_thread_of_its_own_is_the_advice_worked_out_now() {
        let ledger = bench_ledger(10_000, 11);
        let snapshot = Arc::new(ledger.snapshot());
        let job = |threads| AdviceJob {
            rules: AdvisorRules::default(),
            bleed: BleedRules::default(),
            prices: ledger.prices().clone(),
            threads: NonZeroUsize::new(threads),
            early: None,
            run_limits: LimitsByScope::new(),
        };
        let now = job(1).run(&snapshot);
        assert!(!now.recommendations.is_empty());
        // one thread: worked out at once; more: on a thread of its own
        for threads in [1, 2, 3] {
            let pending = job(threads).spawn(Arc::clone(&snapshot));
            assert_eq!(pending.wait(), Some(&now), "{threads} threads");
            assert_eq!(pending.wait(), Some(&now), "asked again");
        }
    }

    #[test]
    fn a_panic_on_the_advisors_thread_reaches_the_one_waiting_and_the_document_fails() {
        let thread = std::thread::spawn(|| -> Option<Advice> {
            std::panic::panic_any("the advisor broke");
        });
        let pending = PendingAdvice {
            thread: Mutex::new(Some(thread)),
            advice: OnceLock::new(),
        };
        let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pending.wait()));
        let panic = waited.expect_err("the panic is resumed");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"the advisor broke"));
        // asked again: no advice, and a document cannot be written with none
        assert_eq!(pending.wait(), None);
        let late = crate::report::insights::AdviceToWrite::Late(&pending);
        let written = serde_json::to_string(&late);
        assert!(
            written.is_err_and(|e| e.to_string().contains("the advisor failed")),
            "no insights without advice"
        );
    }

    /// The bench corpus (`events` lines, then `late`: lines after the runs
    /// ended) folded into a ledger that hands its ended runs to `ended`
    /// every 500 lines.
    fn fold_handing_off(events: u64, late: &[&str], ended: EndedRuns) -> Ledger {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.jsonl");
        workload::write_bench_corpus(&path, events, 5).unwrap();
        let text = std::fs::read(&path).unwrap();
        let lines = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .chain(late.iter().map(|l| l.as_bytes()));
        let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default().unlimited());
        ledger.note_ended_runs();
        let mut ingestor = Ingestor::new(&mut ledger, TimeWindow::default());
        ingestor.ended = Some(ended);
        for (i, line) in lines.enumerate() {
            let origin = LineOrigin {
                source: "bench",
                rough: false,
            };
            ingestor
                .ledger
                .apply(&native::parse_line(line, origin).unwrap());
            if i % 500 == 499 {
                ingestor.hand_off_ended_runs();
            }
        }
        ingestor.hand_off_ended_runs();
        ledger
    }

    /// The advice of `early` finished over `ledger`'s runs, how many runs'
    /// early reading it kept, how many runs ended, and the advice of the
    /// final pass alone over the same snapshot.
    fn finish_and_alone(early: EarlyAdvisor, ledger: &Ledger) -> (Advice, usize, usize, Advice) {
        let (rules, bleed) = (AdvisorRules::default(), BleedRules::default());
        let snapshot = ledger.snapshot();
        let ended = snapshot.runs.iter().filter(|r| r.ended.is_some()).count();
        let span = snapshot.first_ts_ms.zip(snapshot.last_ts_ms);
        let (advisor, kept) = early.finish(&snapshot.runs, &rules, &bleed, ledger.prices(), 2);
        let alone = advise_final_runs(&snapshot.runs, &rules, &bleed, ledger.prices(), 1);
        (
            advisor.advice(span, &snapshot.runs),
            kept,
            ended,
            alone.advice(span, &snapshot.runs),
        )
    }

    /// [`fold_handing_off`] 20,000 lines to an early advisor, waiting until
    /// it took every batch, then [`finish_and_alone`].
    fn early_and_final(late: &[&str]) -> (Advice, usize, usize, Advice) {
        let (early, ended) = EarlyAdvisor::start(
            AdvisorRules::default(),
            BleedRules::default(),
            PriceBook::embedded(),
        );
        let ledger = fold_handing_off(20_000, late, ended);
        // every batch handed off taken by the reader (then read in full)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while early.queue.waiting() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the reader took no batch"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        finish_and_alone(early, &ledger)
    }

    #[test]
    fn runs_advised_as_they_end_give_the_advice_of_one_pass_at_the_end() {
        let (early, kept, ended, alone) = early_and_final(&[]);
        assert!(ended > 1_000, "{ended} runs ended");
        // all but those short of a whole batch when the fold ended
        assert_eq!(kept, ended / EndedRuns::BATCH * EndedRuns::BATCH);
        assert!(!alone.recommendations.is_empty());
        assert_eq!(early, alone);
    }

    #[test]
    fn without_a_thread_for_it_the_report_reads_every_run_itself() {
        let queue = Arc::new(EndedQueue::default());
        let (early, ended) =
            EarlyAdvisor::with_reader(Arc::clone(&queue), Err(std::io::Error::other("no thread")));
        let ledger = fold_handing_off(5_000, &[], ended);
        assert_eq!(queue.waiting(), 0, "nothing is queued for no reader");
        let (advice, kept, ended, alone) = finish_and_alone(early, &ledger);
        assert!(ended > EndedRuns::BATCH, "{ended} runs ended");
        assert_eq!(kept, 0);
        assert!(!advice.recommendations.is_empty());
        assert_eq!(advice, alone);
    }

    #[test]
    fn a_call_after_a_run_ended_drops_the_early_reading() {
        // run 1 ended in the first lines (and was sent); a call comes after
        let late = r#"{"ts":"2026-11-23T09:00:00Z","run_id":"bench-00000001","hop":9,"agent":"writer","model":"claude-sonnet-4-5","input_tokens":90000,"output_tokens":4000}"#;
        let (early, kept, ended, alone) = early_and_final(&[late]);
        assert!(ended > 1_000, "{ended} runs ended");
        assert_eq!(early, alone);
        assert_eq!(kept, 0, "the early reading is stale");
        let (before, ..) = early_and_final(&[]);
        assert_ne!(early, before, "the late call changes the advice");
    }
}
