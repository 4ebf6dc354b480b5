//! Token counts of records that carry text but no counts, computed off the
//! ingest and aggregator paths.
//!
//! Loading a tokenizer takes over a second and encoding long text takes
//! milliseconds, so a decoder never does it: it counts such a record at
//! once with a rough estimate (a token per 4 bytes), marked *estimated*,
//! and hands the text to an [`Estimator`]: one worker thread behind a
//! bounded queue ([`QUEUE`] jobs: a full queue makes the decoder wait —
//! backpressure, never a drop). The worker loads the tokenizers lazily,
//! counts with the model's (tiktoken: `o200k_base` for GPT-4o, GPT-4.1,
//! o-series and GPT-5; `o200k_base` as an approximation for every other
//! model — GPT-4, GPT-3.5 and older OpenAI models included: their tables
//! (cl100k, p50k, r50k) are not shipped, 3.4 MB of binary — counted in
//! `estimates_approximate`) and sends the call back recounted, replacing
//! the rough count (`Supersede::Latest`). Text never leaves memory.
//!
//! tiktoken panics on about a million consecutive spaces and slows down on
//! long whitespace runs, so [`count_tokens`] caps the text at
//! [`MAX_TEXT_BYTES`] (the rest is extrapolated), counts whitespace runs
//! over [`MAX_RUN`] bytes by extrapolation from a run of that length, and
//! guards the tokenizer with `catch_unwind` (falling back to the rough
//! estimate).

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, Weak};

use tiktoken_rs::tokenizer::Tokenizer;

use crate::types::event::TelemetryEvent;

/// Jobs waiting for the worker.
pub const QUEUE: usize = 1024;

/// Text counted per record field; beyond it, the count is extrapolated.
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;

/// Whitespace runs longer than this are extrapolated, not tokenized.
pub const MAX_RUN: usize = 256;

/// A quick count for text not tokenized yet: a token per 4 bytes.
#[must_use]
pub fn rough_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// The tokenizer for `model`, and whether it is the model's own (or an
/// approximation).
#[must_use]
pub fn tokenizer_for(model: &str) -> (Tokenizer, bool) {
    let bare = model.rsplit('/').next().unwrap_or(model).trim();
    match tiktoken_rs::tokenizer::get_tokenizer(&bare.to_ascii_lowercase()) {
        Some(tokenizer @ (Tokenizer::O200kBase | Tokenizer::O200kHarmony)) => (tokenizer, true),
        // Only o200k's table ships (each other table is 0.8–1.7 MB of
        // binary): GPT-4, GPT-3.5 and older are approximated with it.
        Some(_) | None => (Tokenizer::O200kBase, false),
    }
}

/// Tokens of `text` under `tokenizer`, safely (see the module documentation).
#[must_use]
pub fn count_tokens(tokenizer: Tokenizer, text: &str) -> u64 {
    // Only o200k's table is linked in (see `tokenizer_for`): every
    // tokenizer is counted with it; harmony differs from o200k_base only in
    // special tokens, never counted here.
    let _ = tokenizer;
    let bpe = tiktoken_rs::o200k_base_singleton();
    let counted = floor_char_boundary(text, MAX_TEXT_BYTES);
    let head = &text[..counted];
    let encode = |piece: &str| guarded(piece, |p| bpe.encode_ordinary(p).len() as u64);
    let mut tokens = 0_u64;
    let mut run_cost: Option<(u64, char)> = None;
    for piece in split_long_runs(head) {
        match piece {
            Piece::Text(text) => tokens += encode(text),
            Piece::Run(c, len) => {
                // A run of MAX_RUN of this character, counted once.
                let per_run = match run_cost {
                    Some((cost, seen)) if seen == c => cost,
                    _ => {
                        let sample: String = std::iter::repeat_n(c, MAX_RUN).collect();
                        let cost = encode(&sample).max(1);
                        run_cost = Some((cost, c));
                        cost
                    }
                };
                let chars = len / c.len_utf8();
                tokens += (chars as u64 * per_run).div_ceil(MAX_RUN as u64);
            }
        }
    }
    if counted < text.len() {
        // The rest at the rate of what was counted.
        let rest = (text.len() - counted) as u64;
        tokens += (rest * tokens).div_ceil(counted.max(1) as u64);
    }
    tokens
}

/// `encode(text)`, or the rough count if it panics (a tokenizer bug must
/// not take ingestion down).
fn guarded(text: &str, encode: impl Fn(&str) -> u64) -> u64 {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| encode(text)))
        .unwrap_or_else(|_| rough_tokens(text))
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

enum Piece<'t> {
    Text(&'t str),
    /// A run of one whitespace character, `len` bytes long.
    Run(char, usize),
}

/// Splits off whitespace runs longer than [`MAX_RUN`] characters.
fn split_long_runs(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if !c.is_whitespace() {
            continue;
        }
        let mut end = at + c.len_utf8();
        let mut count = 1;
        while let Some(&(next_at, next)) = chars.peek() {
            if next != c {
                break;
            }
            end = next_at + next.len_utf8();
            count += 1;
            chars.next();
        }
        if count > MAX_RUN {
            if start < at {
                pieces.push(Piece::Text(&text[start..at]));
            }
            pieces.push(Piece::Run(c, end - at));
            start = end;
        }
    }
    if start < text.len() {
        pieces.push(Piece::Text(&text[start..]));
    }
    pieces
}

/// What a decoder hands over: a call counted roughly, with its text.
#[derive(Debug)]
pub struct Job {
    /// The call as counted roughly (its `call` names it).
    pub event: TelemetryEvent<'static>,
    /// Text whose count is the call's input, when it had no count.
    pub prompt: Option<String>,
    /// Text whose count is the call's output, when it had no count.
    pub completion: Option<String>,
    /// The line without its text, to record once counted (`--record`).
    pub record: Option<serde_json::Map<String, serde_json::Value>>,
    /// Which source (name, short name) and line it came from.
    pub source: Arc<str>,
    pub origin: Arc<str>,
    pub line_no: u64,
}

/// A call recounted by the worker.
#[derive(Debug)]
pub struct Estimated {
    /// Replaces the rough count (`Supersede::Latest`).
    pub event: TelemetryEvent<'static>,
    /// The line to record, without its text, with the counts (or why it
    /// could not be written as JSON: recording it fails, never an empty line).
    pub record: Option<std::io::Result<Vec<u8>>>,
    pub source: Arc<str>,
    pub origin: Arc<str>,
    pub line_no: u64,
    /// The tokenizer was the model's own.
    pub exact_tokenizer: bool,
}

type Deliver = Box<dyn Fn(Estimated) + Send>;

#[derive(Default)]
struct State {
    jobs: Option<SyncSender<Job>>,
    /// Taken by the worker when it starts.
    deliver: Option<Deliver>,
    /// Jobs submitted and not delivered yet.
    pending: usize,
}

struct Shared {
    state: Mutex<State>,
    idle: Condvar,
    /// Shutting down: the jobs left keep their rough counts.
    hurry: std::sync::atomic::AtomicBool,
}

/// A handle on the estimation worker (cheap to clone; the worker starts on
/// the first job and lives as long as the handles).
#[derive(Clone)]
pub struct Estimator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Estimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Estimator")
    }
}

impl Estimator {
    /// An estimator whose recounted calls go to `deliver` (called on the
    /// worker thread).
    pub fn new(deliver: impl Fn(Estimated) + Send + 'static) -> Self {
        Estimator {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    deliver: Some(Box::new(deliver)),
                    ..State::default()
                }),
                idle: Condvar::new(),
                hurry: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// From now on, jobs keep their rough counts (delivered at once, still
    /// marked estimated): shutting down must not wait for a long queue.
    pub fn hurry(&self) {
        self.shared
            .hurry
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Queues a job, waiting while the queue is full: it blocks the calling
    /// thread, so decoders that may call it never run on an async
    /// runtime's worker (sockets decode on blocking threads).
    pub fn submit(&self, job: Job) {
        let sender = {
            let Ok(mut state) = self.shared.state.lock() else {
                return;
            };
            if state.jobs.is_none() {
                let Some(deliver) = state.deliver.take() else {
                    return;
                };
                let (tx, rx) = mpsc::sync_channel(QUEUE);
                let shared = Arc::downgrade(&self.shared);
                let started = std::thread::Builder::new()
                    .name("tokwatch-estimate".into())
                    .spawn(move || work(&rx, &*deliver, &shared));
                if started.is_err() {
                    return;
                }
                state.jobs = Some(tx);
            }
            state.pending += 1;
            state.jobs.clone()
        };
        if let Some(sender) = sender
            && sender.send(job).is_err()
            && let Ok(mut state) = self.shared.state.lock()
        {
            state.pending -= 1;
        }
    }

    /// Waits until every job submitted so far has been delivered (the
    /// report does before it prints; standard input before it ends).
    pub fn flush(&self) {
        let Ok(mut state) = self.shared.state.lock() else {
            return;
        };
        while state.pending > 0 {
            state = match self.shared.idle.wait(state) {
                Ok(state) => state,
                Err(_) => return,
            };
        }
    }
}

fn work(jobs: &Receiver<Job>, deliver: &dyn Fn(Estimated), shared: &Weak<Shared>) {
    for job in jobs {
        let Job {
            mut event,
            prompt,
            completion,
            record,
            source,
            origin,
            line_no,
        } = job;
        let (tokenizer, exact_tokenizer) = tokenizer_for(&event.model);
        let hurry = shared
            .upgrade()
            .is_some_and(|s| s.hurry.load(std::sync::atomic::Ordering::Relaxed));
        let count = |text: &str| {
            if hurry {
                rough_tokens(text)
            } else {
                count_tokens(tokenizer, text)
            }
        };
        let mut record = record;
        let usage = &mut event.usage;
        if let Some(prompt) = prompt {
            let input = count(&prompt);
            let cached = usage
                .cache_read
                .saturating_add(usage.cache_write_5m)
                .saturating_add(usage.cache_write_1h);
            usage.input_uncached = input.saturating_sub(cached);
            if let Some(record) = &mut record {
                record.insert("input_tokens".into(), input.max(cached).into());
            }
        }
        if let Some(completion) = completion {
            usage.output = count(&completion).max(usage.reasoning);
            if let Some(record) = &mut record {
                record.insert("output_tokens".into(), usage.output.into());
            }
        }
        if let Some(call) = &mut event.call {
            call.rule = crate::types::event::Supersede::Latest;
        }
        let record = record.map(|mut r| {
            r.insert("estimated".into(), true.into());
            serde_json::to_vec(&r).map_err(std::io::Error::from)
        });
        deliver(Estimated {
            event,
            record,
            source,
            origin,
            line_no,
            exact_tokenizer,
        });
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Ok(mut state) = shared.state.lock() {
            state.pending = state.pending.saturating_sub(1);
            if state.pending == 0 {
                shared.idle.notify_all();
            }
        }
    }
}

/// Folds a recounted call into `ingestor` as source `source`.
pub fn fold_estimated(
    ingestor: &mut crate::ingest::Ingestor<'_>,
    source: usize,
    estimated: &Estimated,
) {
    if !estimated.exact_tokenizer {
        ingestor.stats.estimates_approximate += 1;
    }
    ingestor.event(source, &estimated.event, || {
        format!("{}:{}", estimated.source, estimated.line_no)
    });
}

#[cfg(test)]
mod tests;
