//! A deterministic corpus of Claude Code transcripts
//! (`<out>/projects/<project>/<session>.jsonl` and
//! `<out>/projects/<project>/<session>/subagents/agent-<agentId>.jsonl`) for
//! benchmarks and differential tests against ccusage.
//!
//! The lines follow the shapes of real Claude Code 1.0.128, 2.0.46 and 2.1.81
//! transcripts (`docs`: formats.md §2 and §3): one line per content block, so
//! a message of k blocks is k lines with the same `message.id`, `requestId`
//! and input/cache usage while `output_tokens` grows; `user` lines carry
//! prompts and large tool results (quotes, backslashes, tabs, ANSI escapes and
//! non-ASCII text included); `summary`, `system` and `file-history-snapshot`
//! lines carry no usage.
//!
//! The traps a reader must handle, at realistic rates:
//! - resumed sessions (about 10 %): a new session file replays, byte for byte,
//!   a prefix of an earlier session (same ids, same usage) and then continues;
//! - sub-agents: `Task` calls write the sub-agent's conversation
//!   (`isSidechain: true`, `agentId`, its own message ids) to
//!   `<session>/subagents/agent-<agentId>.jsonl` (2.x) or inline in the
//!   session file (1.0.x); about 2 % of sub-agent files (and always the first
//!   one, so that every corpus has the trap) start with a replay of
//!   the parent message that spawned them (same `message.id`, a new
//!   `requestId`, a larger usage) which must not count;
//! - `<synthetic>` rate-limit lines (`isApiErrorMessage`, all-zero usage);
//! - messages without `requestId` (dedupe by `message.id` alone);
//! - a long-context tail: about 0.5 % of requests have 200k–400k input tokens
//!   (Sonnet and Opus 4.6 only); every other request stays below 200k.
//!
//! Every line is valid JSON. Generation is seeded and uses no clock, so the
//! same `(target_bytes, seed)` always gives the same bytes.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What [`write_claude_corpus`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaudeCorpus {
    /// `.jsonl` files (sessions and sub-agent files).
    pub files: u64,
    /// Lines, replayed ones included.
    pub lines: u64,
    /// Bytes, newlines included.
    pub bytes: u64,
    /// Distinct API calls a correct deduplicating reader counts (ccusage's
    /// rule): one per `(message.id, requestId)`, resumed-session copies and
    /// sidechain replays of a parent message not counted again, `<synthetic>`
    /// lines not counted.
    pub assistant_messages: u64,
}

/// Writes a corpus of about `target_bytes` (it stops after the first turn
/// that reaches the target, so it overshoots by at most one turn).
///
/// # Errors
/// File system errors.
pub fn write_claude_corpus(out: &Path, target_bytes: u64, seed: u64) -> io::Result<ClaudeCorpus> {
    let root = out.join("projects");
    fs::create_dir_all(&root)?;
    let mut generator = Gen {
        rng: ChaCha8Rng::seed_from_u64(seed),
        root,
        target: target_bytes,
        stats: ClaudeCorpus::default(),
        buf: Vec::with_capacity(1 << 20),
        subagent_files: 0,
    };
    let mut resume = None;
    while generator.stats.bytes < target_bytes {
        resume = generator.session(resume.take())?;
    }
    Ok(generator.stats)
}

/// 2026-01-05T00:00:00Z.
const START_MS: u64 = 1_767_571_200_000;
const DAY_MS: u64 = 86_400_000;
/// Sessions start within this many days of [`START_MS`].
const SPREAD_DAYS: u64 = 29;

/// Share of messages written without `requestId`.
const P_NO_REQUEST_ID: f64 = 0.005;
/// Share of assistant messages preceded by a `<synthetic>` rate-limit line.
const P_SYNTHETIC: f64 = 0.002;
/// Share of long-context (200k–400k input) requests among eligible models.
const P_LONG_CONTEXT: f64 = 0.006;
/// Share of finished sessions continued (resumed) in a new session file.
const P_RESUME: f64 = 0.11;
/// Share of sub-agent files that start by replaying the parent message.
const P_SIDECHAIN_REPLAY: f64 = 0.02;
/// Auto-compaction threshold on the cached context.
const COMPACT_AT: u64 = 170_000;
/// Cap on cache reads of ordinary requests (read + write + input < 200k).
const MAX_READ: u64 = 179_000;
const MAX_CACHE_WRITE: u64 = 20_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V20,
    V21,
}

impl Version {
    fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "1.0.128",
            Version::V20 => "2.0.46",
            Version::V21 => "2.1.81",
        }
    }
}

const VERSIONS: [(Version, u32); 3] = [(Version::V1, 20), (Version::V20, 35), (Version::V21, 45)];

const MODELS: [(&str, u32); 5] = [
    ("claude-sonnet-4-5-20250929", 68),
    ("claude-opus-4-1-20250805", 8),
    ("claude-haiku-4-5-20251001", 8),
    ("claude-sonnet-4-20250514", 8),
    ("claude-opus-4-6", 8),
];
const HAIKU: &str = "claude-haiku-4-5-20251001";

const PROJECTS: [&str; 10] = [
    "tokwatch",
    "api-gateway",
    "web.frontend",
    "infra-terraform",
    "ml-pipeline",
    "docs.site",
    "payments-service",
    "mobile-app",
    "data-lake",
    "cli-tools",
];

const BRANCHES: [(&str, u32); 6] = [
    ("main", 50),
    ("develop", 10),
    ("feat/claude-code-ingest", 15),
    ("fix/pricing-1h-cache", 10),
    ("refactor/report", 10),
    ("HEAD", 5),
];

const FILES: [&str; 16] = [
    "src/main.rs",
    "src/lib.rs",
    "src/ingest/claude.rs",
    "src/pricing.rs",
    "src/report.rs",
    "src/ui/overview.rs",
    "tests/cli.rs",
    "README.md",
    "Cargo.toml",
    "app/models/usage.py",
    "app/api/routes.py",
    "web/src/App.tsx",
    "web/src/components/CostTable.tsx",
    "docs/guide.md",
    "scripts/bench.sh",
    "infra/main.tf",
];

const CODE: [&str; 40] = [
    "use std::collections::HashMap;",
    "use serde_json::{json, Value};",
    "",
    "/// Parses one transcript line; returns `None` for lines without usage.",
    "pub fn parse_line(line: &str) -> Option<Record> {",
    "    let v: Value = serde_json::from_str(line).ok()?;",
    "    if v[\"type\"] != \"assistant\" {",
    "        return None;",
    "    }",
    "    let usage = &v[\"message\"][\"usage\"];",
    "    let re = Regex::new(r\"^req_011C[A-Za-z0-9]{20}$\")?;",
    "    let win = \"C:\\\\Users\\\\dev\\\\AppData\\\\Roaming\\\\Claude\";",
    "\tlet escaped = \"tab\\tand newline\\n inside a literal\";",
    "    // Café, naïve, résumé: accents in comments",
    "    // 日本語のコメント: キャッシュ読み込みトークンを数える",
    "    println!(\"{:>8} {:<30} {}\", count, name, cost);",
    "    assert_eq!(total, 0.535_254, \"oracle C: {}\", model);",
    "}",
    "def price(usage: dict) -> float:",
    "    \"\"\"Return the cost in USD (see \"pricing.md\").\"\"\"",
    "    return usage.get('input_tokens', 0) * 3e-6 + usage[\"output_tokens\"] * 1.5e-5",
    "export function formatCost(usd: number): string {",
    "  return `$${usd.toFixed(4)}`; // e.g. \"$0.5353\"",
    "const PATTERN = /\\\"usage\\\":\\{/g;",
    "SELECT model, SUM(cost) AS \"total\" FROM usage WHERE ts >= '2026-01-01' GROUP BY 1;",
    "    { \"model\": \"claude-sonnet-4-5\", \"input\": 3.0, \"output\": 15.0 },",
    "#[test]",
    "fn dedupes_streaming_lines() {",
    "    let lines = include_str!(\"../fixtures/stream.jsonl\");",
    "        .map(|(k, v)| format!(\"{k}={v}\"))",
    "        .collect::<Vec<_>>()",
    "        .join(\"\\n\");",
    "  - name: Install \"ccusage\"",
    "    run: npm install -g ccusage@20 && echo \"done ✓\"",
    "      <td className=\"cost\">{t('résumé')}</td>",
    "    logger.info(f\"wrote {n:,} lines to {path!r}\")",
    "resource \"aws_s3_bucket\" \"logs\" {",
    "  bucket = \"tokwatch-logs-${var.env}\"",
    "\t\treturn fmt.Errorf(\"parse %q: %w\", line, err)",
    "    let path = Path::new(\"/home/dev/.claude/projects\");",
];

const SHELL: [&str; 28] = [
    "   Compiling serde_json v1.0.154",
    "   Compiling tokwatch v0.4.0 (/home/dev/src/tokwatch)",
    "warning: unused variable: `cache_5m`",
    "  --> src/ingest/claude.rs:214:13",
    "   |",
    "214 |         let cache_5m = usage[\"cache_creation\"][\"ephemeral_5m_input_tokens\"].as_u64();",
    "   = note: `#[warn(unused_variables)]` on by default",
    "error[E0308]: mismatched types: expected `u64`, found `Option<u64>`",
    "test pricing::tests::oracle_c ... ok",
    "test ingest::claude::tests::sidechain_replay_counts_once ... FAILED",
    "thread 'main' panicked at src/report.rs:88:5:",
    "assertion `left == right` failed\n  left: 0.483\n right: 0.9585",
    "FAILED tests/test_cost.py::test_long_context - AssertionError: assert 0.483 == 0.9585",
    "npm WARN deprecated inflight@1.0.6: This module is not supported, and leaks memory.",
    "\u{1b}[32m✓\u{1b}[0m src/components/CostTable.test.tsx (12 tests) 84ms",
    "\u{1b}[1m\u{1b}[31m✗\u{1b}[0m renders the \"cost\" column",
    "drwxr-xr-x  5 dev dev  4096 Jan 12 09:14 .",
    "-rw-r--r--  1 dev dev 18234 Jan 12 09:13 Cargo.toml",
    "Your branch is up to date with 'origin/main'.",
    "\tmodified:   src/pricing.rs",
    "diff --git a/src/pricing.rs b/src/pricing.rs",
    "+    let premium = total_input > 200_000; // \"all-or-nothing\"",
    "-    let premium = false;",
    "PS C:\\Users\\dev\\src\\tokwatch> cargo build --release",
    "Résultat : 42 tests réussis, 0 échec",
    "テスト結果: 42 件成功、0 件失敗",
    "    Finished `release` profile [optimized] target(s) in 41.27s",
    "{\"level\":\"warn\",\"msg\":\"slow request\",\"path\":\"/v1/messages\",\"ms\":1834}",
];

const PROSE: [&str; 20] = [
    "I'll start by reading the ingest module to see how transcript lines are parsed.",
    "The test expects \"0.9585\" but gets 0.483, so the long-context premium isn't applied.",
    "Let me check `src/pricing.rs` for the cache-write multiplier.",
    "Found it: 1-hour writes are priced at the 5-minute rate (1.25× instead of 2×).",
    "Both lines share `message.id` and `requestId`, so they are one API call.",
    "I'll run the test suite again to confirm the fix.",
    "On Windows the path is `C:\\Users\\dev\\src`, which needs escaping in JSON.",
    "This looks like a regression from the last refactor — the `Option` was dropped.",
    "Voilà : le coût total est maintenant correct.",
    "キャッシュ読み込みのトークン数が正しく集計されました。",
    "Next, I'll update the docs and add a test for the edge case.",
    "All 214 tests pass now.\tNo warnings.",
    "Here is a summary of the changes:\n\n1. Dedupe by (message.id, requestId)\n2. Keep the largest usage\n3. Drop `<synthetic>` lines\n",
    "The user wants the report to show \"unpriced\" instead of $0.00 for unknown models.",
    "Hmm, the sidechain file replays the parent message with a new request id.",
    "I should not sum the streaming lines: output_tokens is cumulative (4, 131, 254).",
    "Let me grep for every place that reads `cache_creation_input_tokens`.",
    "The benchmark shows 1.8× inflation when duplicates are summed.",
    "```rust\nlet key = (msg.id.as_str(), req.as_deref());\n```",
    "Done. The `--since` flag now filters by the line's timestamp, not the file's mtime.",
];

const PROMPTS: [&str; 12] = [
    "fix the failing test in tests/cli.rs",
    "why does the report show $0 for opus? it should say \"unpriced\"",
    "add a --since flag to the report command",
    "refactor the pricing module, it's getting too big",
    "can you explain what cache_creation_input_tokens means here?",
    "the build fails on Windows: C:\\Users\\dev\\src\\tokwatch\\target is locked",
    "update the README with the new flags — and fix the typo in « résumé »",
    "このエラーを直してください: `expected u64, found Option<u64>`",
    "run the benchmarks and compare with last week's numbers",
    "commit this with a good message",
    "ok, continue",
    "look at the logs in /var/log/app/*.log and tell me why requests are slow",
];

const SUMMARIES: [&str; 8] = [
    "Claude Code transcript ingest and dedupe",
    "Fix long-context pricing for Sonnet 4.5",
    "Refactor report renderer",
    "Windows path escaping bug (C:\\Users\\dev)",
    "Add --since flag to \"report\"",
    "Debug 1h cache-write pricing",
    "日本語ドキュメントの更新",
    "Résumé of benchmark results",
];

const COMMANDS: [&str; 10] = [
    "cargo test --release 2>&1 | tail -80",
    "git status && git diff --stat",
    "npm run build",
    "pytest -x -q tests/",
    "ls -la",
    "rg -n \"cache_creation\" src/",
    "cargo clippy --all-targets -- -D warnings",
    "git log --oneline -20",
    "python3 scripts/check.py --json \"out dir/\"",
    "tail -n 200 /var/log/app/server.log",
];

const PATTERNS: [&str; 5] = [
    "cache_creation",
    "requestId",
    "fn parse_",
    "TODO|FIXME",
    "\\\"usage\\\":\\s*\\{",
];

const B62: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &[u8; 16] = b"0123456789abcdef";

/// One open `.jsonl` file.
struct Sink {
    w: BufWriter<File>,
    bytes: u64,
}

impl Sink {
    fn create(path: &Path) -> io::Result<Sink> {
        Ok(Sink {
            w: BufWriter::with_capacity(1 << 20, File::create(path)?),
            bytes: 0,
        })
    }
}

/// One conversation: a session's main thread or a sub-agent.
struct Convo {
    session_id: String,
    cwd: String,
    dir: PathBuf,
    branch: &'static str,
    version: Version,
    model: &'static str,
    sidechain: bool,
    agent_id: Option<String>,
    last_uuid: Option<String>,
    now: u64,
    /// Cached context tokens (the next request's cache read).
    ctx: u64,
    /// Tokens added since the last request (the next request's cache write).
    pending: u64,
    started: bool,
    ttl_1h: bool,
}

#[derive(Clone, Copy)]
struct Usage {
    input: u64,
    write: u64,
    read: u64,
    write_5m: u64,
    write_1h: u64,
    output: u64,
}

/// An assistant message as written.
struct Sent {
    id: String,
    usage: Usage,
    model: &'static str,
}

/// A point where a session could be cut for resuming.
struct Boundary {
    offset: u64,
    uuid: String,
    now: u64,
}

/// A session to continue in a new file.
struct Resume {
    path: PathBuf,
    cut: u64,
    last_uuid: String,
    end_ms: u64,
    project: &'static str,
    version: Version,
    model: &'static str,
    branch: &'static str,
    ttl_1h: bool,
}

enum Kind {
    Read { path: String },
    Bash,
    Grep,
    Edit,
    Write { path: String, content: String },
    Glob,
    Todo,
    Task { prompt: String },
}

struct Call {
    id: String,
    kind: Kind,
}

struct Gen {
    rng: ChaCha8Rng,
    root: PathBuf,
    target: u64,
    stats: ClaudeCorpus,
    buf: Vec<u8>,
    subagent_files: u64,
}

// ---------------------------------------------------------------------------
// JSON and text helpers (infallible, writing into byte or string buffers)

/// Appends `s` as a JSON string literal.
fn esc(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\t' => b"\\t",
            b'\r' => b"\\r",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xf)]);
        } else {
            buf.extend_from_slice(short);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

fn raw(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(s.as_bytes());
}

/// Appends `n` in decimal, left-padded with zeros to `width` digits.
fn num_pad(buf: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = [0_u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in (digits.len() - i)..width {
        buf.push(b'0');
    }
    buf.extend_from_slice(&digits[i..]);
}

fn num(buf: &mut Vec<u8>, n: u64) {
    num_pad(buf, n, 0);
}

fn field_num(buf: &mut Vec<u8>, key: &str, n: u64) {
    raw(buf, key);
    num(buf, n);
}

fn field_str(buf: &mut Vec<u8>, key: &str, s: &str) {
    raw(buf, key);
    esc(buf, s);
}

/// Appends `n` in decimal to a string, right-aligned in `width` columns.
fn push_num(out: &mut String, n: u64, width: usize) {
    let mut tmp = Vec::with_capacity(20);
    num(&mut tmp, n);
    for _ in tmp.len()..width {
        out.push(' ');
    }
    for &d in &tmp {
        out.push(char::from(d));
    }
}

/// Appends an ISO 8601 timestamp with milliseconds and `Z`.
fn iso(buf: &mut Vec<u8>, ms: u64) {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days(secs / 86_400);
    let sod = secs % 86_400;
    num_pad(buf, y, 4);
    buf.push(b'-');
    num_pad(buf, m, 2);
    buf.push(b'-');
    num_pad(buf, d, 2);
    buf.push(b'T');
    num_pad(buf, sod / 3600, 2);
    buf.push(b':');
    num_pad(buf, sod / 60 % 60, 2);
    buf.push(b':');
    num_pad(buf, sod % 60, 2);
    buf.push(b'.');
    num_pad(buf, ms % 1000, 3);
    buf.push(b'Z');
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The project directory name Claude Code derives from a cwd.
fn project_dir_name(cwd: &str) -> String {
    cwd.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn tokens_of(bytes: usize) -> u64 {
    bytes as u64 / 4
}

fn text_block(text: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(text.len() + 32);
    raw(&mut b, "{\"type\":\"text\",\"text\":");
    esc(&mut b, text);
    b.push(b'}');
    b
}

impl Gen {
    // -- randomness ---------------------------------------------------------

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.random_range(lo..=hi)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn any<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut r = self.rng.random_range(0..total);
        for &(item, w) in items {
            if r < w {
                return item;
            }
            r -= w;
        }
        items[0].0
    }

    /// Log-uniform size in `lo..=hi`.
    fn log_size(&mut self, lo: usize, hi: usize) -> usize {
        let u: f64 = self.rng.random();
        let ratio = hi as f64 / lo as f64;
        (lo as f64 * ratio.powf(u)) as usize
    }

    /// A tool output size: 1–30 KB, sometimes 100–300 KB.
    fn output_size(&mut self) -> usize {
        if self.chance(0.03) {
            self.log_size(100_000, 300_000)
        } else {
            self.log_size(1_000, 30_000)
        }
    }

    fn chars(&mut self, prefix: &str, alphabet: &[u8], n: usize) -> String {
        let mut s = String::with_capacity(prefix.len() + n);
        s.push_str(prefix);
        for _ in 0..n {
            s.push(char::from(
                alphabet[self.rng.random_range(0..alphabet.len())],
            ));
        }
        s
    }

    fn uuid(&mut self) -> String {
        let a: u64 = self.rng.random();
        let b: u64 = self.rng.random();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    fn message_id(&mut self) -> String {
        self.chars("msg_01", B62, 22)
    }

    fn request_id(&mut self) -> String {
        self.chars("req_011C", B62, 20)
    }

    fn tool_id(&mut self) -> String {
        self.chars("toolu_01", B62, 22)
    }

    fn agent_id(&mut self, version: Version) -> String {
        if version == Version::V21 {
            self.chars("a", HEX, 16)
        } else {
            self.chars("", HEX, 8)
        }
    }

    fn tick(&mut self, c: &mut Convo, lo: u64, hi: u64) {
        c.now += self.range(lo, hi);
    }

    // -- text ---------------------------------------------------------------

    fn prose(&mut self, min_bytes: usize) -> String {
        let mut s = String::with_capacity(min_bytes + 200);
        while s.len() < min_bytes {
            if !s.is_empty() {
                s.push(if self.chance(0.2) { '\n' } else { ' ' });
            }
            let sentence = self.any(&PROSE);
            s.push_str(sentence);
        }
        s
    }

    /// Source text of about `bytes`: `(numbered as by the Read tool, raw)`.
    fn source(&mut self, bytes: usize) -> (String, String, u64) {
        let mut numbered = String::with_capacity(bytes + 200);
        let mut plain = String::with_capacity(bytes + 200);
        let mut n = 0;
        while plain.len() < bytes {
            n += 1;
            let line = self.any(&CODE);
            push_num(&mut numbered, n, 6);
            numbered.push('→');
            numbered.push_str(line);
            numbered.push('\n');
            plain.push_str(line);
            plain.push('\n');
        }
        (numbered, plain, n)
    }

    fn shell_output(&mut self, bytes: usize) -> String {
        let mut s = String::with_capacity(bytes + 200);
        let mut n = 0;
        while s.len() < bytes {
            n += 1;
            s.push_str(self.any(&SHELL));
            if self.chance(0.3) {
                s.push_str(" (");
                push_num(&mut s, n * 7 + self.range(0, 999), 0);
                s.push_str(" ms)");
            }
            s.push('\n');
        }
        s
    }

    fn grep_output(&mut self, bytes: usize, cwd: &str) -> (String, u64) {
        let mut s = String::with_capacity(bytes + 200);
        let mut n = 0;
        while s.len() < bytes {
            n += 1;
            s.push_str(cwd);
            s.push('/');
            s.push_str(self.any(&FILES));
            s.push(':');
            let line = self.range(1, 2000);
            push_num(&mut s, line, 0);
            s.push(':');
            s.push_str(self.any(&CODE));
            s.push('\n');
        }
        (s, n)
    }

    fn signature(&mut self) -> String {
        let n = self.range(300, 1500) as usize / 4 * 4;
        self.chars("", B64, n)
    }

    fn file_path(&mut self, cwd: &str) -> String {
        format!("{cwd}/{}", self.any(&FILES))
    }

    // -- lines --------------------------------------------------------------

    /// Starts a line with the envelope fields every conversation line has.
    fn head(&mut self, c: &Convo) {
        let b = &mut self.buf;
        b.clear();
        raw(b, "{\"parentUuid\":");
        match &c.last_uuid {
            Some(u) => esc(b, u),
            None => raw(b, "null"),
        }
        raw(
            b,
            if c.sidechain {
                ",\"isSidechain\":true"
            } else {
                ",\"isSidechain\":false"
            },
        );
        if let Some(agent) = &c.agent_id {
            field_str(b, ",\"agentId\":", agent);
        }
        raw(b, ",\"userType\":\"external\"");
        field_str(b, ",\"cwd\":", &c.cwd);
        field_str(b, ",\"sessionId\":", &c.session_id);
        field_str(b, ",\"version\":", c.version.as_str());
        field_str(b, ",\"gitBranch\":", c.branch);
    }

    /// Ends a line with `uuid` and `timestamp`.
    fn tail(&mut self, uuid: &str, now: u64) {
        let b = &mut self.buf;
        field_str(b, ",\"uuid\":", uuid);
        raw(b, ",\"timestamp\":\"");
        iso(b, now);
        raw(b, "\"}");
    }

    fn emit(&mut self, sink: &mut Sink) -> io::Result<()> {
        self.buf.push(b'\n');
        sink.w.write_all(&self.buf)?;
        let n = self.buf.len() as u64;
        sink.bytes += n;
        self.stats.bytes += n;
        self.stats.lines += 1;
        Ok(())
    }

    fn summary_line(&mut self, sink: &mut Sink, leaf: &str) -> io::Result<()> {
        let summary = self.any(&SUMMARIES);
        let b = &mut self.buf;
        b.clear();
        field_str(b, "{\"type\":\"summary\",\"summary\":", summary);
        field_str(b, ",\"leafUuid\":", leaf);
        b.push(b'}');
        self.emit(sink)
    }

    fn snapshot_line(&mut self, c: &Convo, sink: &mut Sink) -> io::Result<()> {
        let id = self.uuid();
        let path = self.any(&FILES);
        let version = self.range(1, 9);
        let backup = self.chars("", HEX, 16);
        let b = &mut self.buf;
        b.clear();
        field_str(b, "{\"type\":\"file-history-snapshot\",\"messageId\":", &id);
        field_str(b, ",\"snapshot\":{\"messageId\":", &id);
        raw(b, ",\"trackedFileBackups\":{");
        esc(b, path);
        field_str(b, ":{\"backupFileName\":", &format!("{backup}@v{version}"));
        field_num(b, ",\"version\":", version);
        raw(b, ",\"backupTime\":\"");
        iso(b, c.now);
        raw(b, "\"}},\"timestamp\":\"");
        iso(b, c.now);
        raw(b, "\"},\"isSnapshotUpdate\":false}");
        self.emit(sink)
    }

    fn system_line(
        &mut self,
        c: &mut Convo,
        sink: &mut Sink,
        content: &str,
        compact_pre_tokens: Option<u64>,
    ) -> io::Result<()> {
        let uuid = self.uuid();
        self.tick(c, 5, 900);
        let logical_parent = if compact_pre_tokens.is_some() {
            c.last_uuid.take()
        } else {
            None
        };
        self.head(c);
        let b = &mut self.buf;
        if let Some(parent) = &logical_parent {
            field_str(b, ",\"logicalParentUuid\":", parent);
        }
        raw(b, ",\"type\":\"system\"");
        match compact_pre_tokens {
            Some(_) => raw(b, ",\"subtype\":\"compact_boundary\""),
            None => raw(b, ",\"subtype\":\"informational\""),
        }
        field_str(b, ",\"content\":", content);
        raw(b, ",\"isMeta\":false,\"level\":\"info\"");
        if let Some(pre) = compact_pre_tokens {
            field_num(
                b,
                ",\"compactMetadata\":{\"trigger\":\"auto\",\"preTokens\":",
                pre,
            );
            b.push(b'}');
        }
        self.tail(&uuid, c.now);
        self.emit(sink)?;
        c.last_uuid = Some(uuid);
        Ok(())
    }

    fn user_text(
        &mut self,
        c: &mut Convo,
        sink: &mut Sink,
        text: &str,
        compact: bool,
    ) -> io::Result<()> {
        let uuid = self.uuid();
        self.head(c);
        let b = &mut self.buf;
        raw(
            b,
            ",\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":",
        );
        esc(b, text);
        b.push(b'}');
        if compact {
            raw(
                b,
                ",\"isVisibleInTranscriptOnly\":true,\"isCompactSummary\":true",
            );
        }
        self.tail(&uuid, c.now);
        self.emit(sink)?;
        c.last_uuid = Some(uuid);
        c.pending += tokens_of(text.len());
        Ok(())
    }

    /// A `tool_result` line; `result` is the already-encoded
    /// `toolUseResult` value (empty for none).
    fn tool_result(
        &mut self,
        c: &mut Convo,
        sink: &mut Sink,
        call_id: &str,
        content: &str,
        is_error: bool,
        result: &[u8],
    ) -> io::Result<()> {
        let uuid = self.uuid();
        self.tick(c, 50, 8_000);
        self.head(c);
        let b = &mut self.buf;
        raw(
            b,
            ",\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[",
        );
        field_str(b, "{\"tool_use_id\":", call_id);
        field_str(b, ",\"type\":\"tool_result\",\"content\":", content);
        raw(
            b,
            if is_error {
                ",\"is_error\":true}]}"
            } else {
                ",\"is_error\":false}]}"
            },
        );
        self.tail_with_result(&uuid, c.now, result);
        self.emit(sink)?;
        c.last_uuid = Some(uuid);
        c.pending += tokens_of(content.len());
        Ok(())
    }

    fn tail_with_result(&mut self, uuid: &str, now: u64, result: &[u8]) {
        let b = &mut self.buf;
        field_str(b, ",\"uuid\":", uuid);
        raw(b, ",\"timestamp\":\"");
        iso(b, now);
        b.push(b'"');
        if !result.is_empty() {
            raw(b, ",\"toolUseResult\":");
            b.extend_from_slice(result);
        }
        b.push(b'}');
    }

    fn write_usage(&mut self, version: Version, u: &Usage, output: u64) {
        let b = &mut self.buf;
        field_num(b, "\"usage\":{\"input_tokens\":", u.input);
        field_num(b, ",\"cache_creation_input_tokens\":", u.write);
        field_num(b, ",\"cache_read_input_tokens\":", u.read);
        match version {
            Version::V1 => {
                field_num(b, ",\"output_tokens\":", output);
                raw(b, ",\"service_tier\":\"standard\"}");
            }
            Version::V20 => {
                field_num(
                    b,
                    ",\"cache_creation\":{\"ephemeral_5m_input_tokens\":",
                    u.write_5m,
                );
                field_num(b, ",\"ephemeral_1h_input_tokens\":", u.write_1h);
                field_num(b, "},\"output_tokens\":", output);
                raw(b, ",\"service_tier\":\"standard\"}");
            }
            Version::V21 => {
                field_num(b, ",\"output_tokens\":", output);
                raw(
                    b,
                    ",\"server_tool_use\":{\"web_search_requests\":0,\"web_fetch_requests\":0},\"service_tier\":\"standard\"",
                );
                field_num(
                    b,
                    ",\"cache_creation\":{\"ephemeral_1h_input_tokens\":",
                    u.write_1h,
                );
                field_num(b, ",\"ephemeral_5m_input_tokens\":", u.write_5m);
                raw(
                    b,
                    "},\"inference_geo\":\"\",\"iterations\":[],\"speed\":\"standard\"}",
                );
            }
        }
    }

    /// One assistant line: `message` with a single content block.
    #[allow(clippy::too_many_arguments)]
    fn assistant_line(
        &mut self,
        c: &Convo,
        sink: &mut Sink,
        id: &str,
        model: &str,
        block: &[u8],
        stop: Option<&str>,
        usage: &Usage,
        output: u64,
        request_id: Option<&str>,
        uuid: &str,
    ) -> io::Result<()> {
        self.head(c);
        let b = &mut self.buf;
        if c.version == Version::V21 {
            field_str(b, ",\"message\":{\"model\":", model);
            field_str(b, ",\"id\":", id);
            raw(b, ",\"type\":\"message\",\"role\":\"assistant\"");
        } else {
            field_str(b, ",\"message\":{\"id\":", id);
            raw(b, ",\"type\":\"message\",\"role\":\"assistant\"");
            field_str(b, ",\"model\":", model);
        }
        raw(b, ",\"content\":[");
        b.extend_from_slice(block);
        raw(b, "],\"stop_reason\":");
        match stop {
            Some(s) => esc(b, s),
            None => raw(b, "null"),
        }
        raw(b, ",\"stop_sequence\":null,");
        self.write_usage(c.version, usage, output);
        let b = &mut self.buf;
        b.push(b'}');
        if let Some(r) = request_id {
            field_str(b, ",\"requestId\":", r);
        }
        raw(b, ",\"type\":\"assistant\"");
        self.tail(uuid, c.now);
        self.emit(sink)
    }

    fn synthetic_line(&mut self, c: &mut Convo, sink: &mut Sink) -> io::Result<()> {
        let uuid = self.uuid();
        let id = self.uuid();
        let request_id = self.request_id();
        self.tick(c, 500, 5_000);
        self.head(c);
        let b = &mut self.buf;
        field_str(b, ",\"message\":{\"id\":", &id);
        raw(
            b,
            ",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"<synthetic>\",\"content\":[{\"type\":\"text\",\"text\":\"API Error: Rate limit reached\"}],\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"\",\"usage\":{\"input_tokens\":0,\"output_tokens\":0,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"server_tool_use\":{\"web_search_requests\":0,\"web_fetch_requests\":0},\"service_tier\":null,\"cache_creation\":{\"ephemeral_1h_input_tokens\":0,\"ephemeral_5m_input_tokens\":0}}}",
        );
        field_str(b, ",\"requestId\":", &request_id);
        raw(
            b,
            ",\"type\":\"assistant\",\"error\":\"rate_limit\",\"isApiErrorMessage\":true,\"apiErrorStatus\":429",
        );
        self.tail(&uuid, c.now);
        self.emit(sink)?;
        c.last_uuid = Some(uuid);
        self.tick(c, 2_000, 60_000);
        Ok(())
    }

    /// The usage of the next request of `c` producing `output` tokens.
    fn next_usage(&mut self, c: &mut Convo, model: &str, output: u64) -> Usage {
        let input = if self.chance(0.8) {
            self.range(1, 10)
        } else {
            self.range(11, 50)
        };
        let (mut read, write) = if c.started {
            (c.ctx.min(MAX_READ), c.pending.min(MAX_CACHE_WRITE))
        } else {
            c.started = true;
            let base = self.range(10_000, 14_000);
            let extra = self.range(1_500, 8_000);
            (base, (c.pending + extra).min(MAX_CACHE_WRITE))
        };
        c.ctx = read + write + input;
        c.pending = output;
        let long_ok = model.starts_with("claude-sonnet") || model == "claude-opus-4-6";
        if long_ok && self.chance(P_LONG_CONTEXT) {
            read = self.range(200_000, 380_000);
        }
        let (write_5m, write_1h) = if !c.ttl_1h {
            (write, 0)
        } else if self.chance(0.15) {
            let five = self.range(0, write);
            (five, write - five)
        } else {
            (0, write)
        };
        Usage {
            input,
            write,
            read,
            write_5m,
            write_1h,
            output,
        }
    }

    /// Writes one API call as one line per block and counts it.
    fn assistant(
        &mut self,
        c: &mut Convo,
        sink: &mut Sink,
        blocks: &[Vec<u8>],
        output: u64,
        stop: &str,
    ) -> io::Result<Sent> {
        if self.chance(P_SYNTHETIC) {
            self.synthetic_line(c, sink)?;
        }
        let model = c.model;
        let usage = self.next_usage(c, model, output);
        let id = self.message_id();
        let request_id = if self.chance(P_NO_REQUEST_ID) {
            None
        } else {
            Some(self.request_id())
        };
        let same_output = self.chance(0.3);
        let mut shown = 0;
        let k = blocks.len();
        for (i, block) in blocks.iter().enumerate() {
            let last = i + 1 == k;
            let out = if last || same_output {
                output
            } else if i == 0 {
                self.range(1, 12).min(output)
            } else {
                shown + (output - shown) * self.range(20, 80) / 100
            };
            shown = out;
            if i == 0 {
                self.tick(c, 1_500, 25_000);
            } else {
                self.tick(c, 200, 4_000);
            }
            let uuid = self.uuid();
            self.assistant_line(
                c,
                sink,
                &id,
                model,
                block,
                last.then_some(stop),
                &usage,
                out,
                request_id.as_deref(),
                &uuid,
            )?;
            c.last_uuid = Some(uuid);
        }
        self.stats.assistant_messages += 1;
        Ok(Sent { id, usage, model })
    }

    fn compact(&mut self, c: &mut Convo, sink: &mut Sink) -> io::Result<()> {
        let pre = c.ctx + c.pending;
        self.system_line(c, sink, "Conversation compacted", Some(pre))?;
        c.ctx = 0;
        c.pending = 0;
        let n = self.range(2_000, 8_000) as usize;
        let mut text = String::from(
            "This session is being continued from a previous conversation that ran out of context. The conversation is summarized below:\n",
        );
        text.push_str(&self.prose(n));
        self.tick(c, 20_000, 90_000);
        self.user_text(c, sink, &text, true)?;
        c.started = false;
        Ok(())
    }

    // -- tools --------------------------------------------------------------

    fn make_call(&mut self, c: &Convo, allow_task: bool) -> (Call, Vec<u8>) {
        let id = self.tool_id();
        let mut input = Vec::with_capacity(256);
        let task_weight = if allow_task { 2 } else { 0 };
        let which = self.weighted(&[
            (0_u8, 30),
            (1, 25),
            (2, 12),
            (3, 12),
            (4, 4),
            (5, 5),
            (6, 5),
            (7, task_weight),
        ]);
        let (name, kind) = match which {
            0 => {
                let path = self.file_path(&c.cwd);
                field_str(&mut input, "{\"file_path\":", &path);
                if self.chance(0.2) {
                    field_num(&mut input, ",\"offset\":", self.range(1, 400));
                    field_num(&mut input, ",\"limit\":", self.range(50, 500));
                }
                input.push(b'}');
                ("Read", Kind::Read { path })
            }
            1 => {
                field_str(&mut input, "{\"command\":", self.any(&COMMANDS));
                let description = self.any(&PROSE);
                field_str(&mut input, ",\"description\":", description);
                if self.chance(0.1) {
                    raw(&mut input, ",\"timeout\":120000");
                }
                input.push(b'}');
                ("Bash", Kind::Bash)
            }
            2 => {
                field_str(&mut input, "{\"pattern\":", self.any(&PATTERNS));
                field_str(&mut input, ",\"path\":", &c.cwd);
                raw(&mut input, ",\"output_mode\":\"content\",\"-n\":true}");
                ("Grep", Kind::Grep)
            }
            3 => {
                let path = self.file_path(&c.cwd);
                let n = self.range(100, 2_000) as usize;
                let (_, old, _) = self.source(n);
                let (_, new, _) = self.source(n);
                field_str(&mut input, "{\"file_path\":", &path);
                field_str(&mut input, ",\"old_string\":", &old);
                field_str(&mut input, ",\"new_string\":", &new);
                input.push(b'}');
                ("Edit", Kind::Edit)
            }
            4 => {
                let path = self.file_path(&c.cwd);
                let n = self.log_size(500, 12_000);
                let (_, content, _) = self.source(n);
                field_str(&mut input, "{\"file_path\":", &path);
                field_str(&mut input, ",\"content\":", &content);
                input.push(b'}');
                ("Write", Kind::Write { path, content })
            }
            5 => {
                raw(&mut input, "{\"pattern\":\"**/*.rs\"}");
                ("Glob", Kind::Glob)
            }
            6 => {
                raw(&mut input, "{\"todos\":[");
                let n = self.range(2, 6);
                for i in 0..n {
                    if i > 0 {
                        input.push(b',');
                    }
                    field_str(&mut input, "{\"content\":", self.any(&PROMPTS));
                    let status = match i {
                        0 => "completed",
                        1 => "in_progress",
                        _ => "pending",
                    };
                    field_str(&mut input, ",\"status\":", status);
                    field_str(&mut input, ",\"activeForm\":", self.any(&PROSE));
                    input.push(b'}');
                }
                raw(&mut input, "]}");
                ("TodoWrite", Kind::Todo)
            }
            _ => {
                let n = self.range(300, 3_000) as usize;
                let prompt = self.prose(n);
                field_str(&mut input, "{\"description\":", self.any(&SUMMARIES));
                field_str(&mut input, ",\"prompt\":", &prompt);
                raw(&mut input, ",\"subagent_type\":\"general-purpose\"}");
                ("Task", Kind::Task { prompt })
            }
        };
        let mut block = Vec::with_capacity(input.len() + 96);
        field_str(&mut block, "{\"type\":\"tool_use\",\"id\":", &id);
        field_str(&mut block, ",\"name\":", name);
        raw(&mut block, ",\"input\":");
        block.extend_from_slice(&input);
        block.push(b'}');
        (Call { id, kind }, block)
    }

    fn run_call(
        &mut self,
        c: &mut Convo,
        sink: &mut Sink,
        call: Call,
        parent: &Sent,
    ) -> io::Result<()> {
        let mut result = Vec::new();
        match call.kind {
            Kind::Read { path } => {
                let n = self.output_size();
                let (numbered, plain, lines) = self.source(n);
                field_str(&mut result, "{\"type\":\"text\",\"file\":{\"filePath\":", &path);
                field_str(&mut result, ",\"content\":", &plain);
                field_num(&mut result, ",\"numLines\":", lines);
                field_num(&mut result, ",\"startLine\":1,\"totalLines\":", lines);
                raw(&mut result, "}}");
                self.tool_result(c, sink, &call.id, &numbered, false, &result)
            }
            Kind::Bash => {
                let n = self.output_size();
                let out = self.shell_output(n);
                let failed = self.chance(0.08);
                let content = if failed { format!("Exit code 1\n{out}") } else { out };
                field_str(&mut result, "{\"stdout\":", &content);
                raw(&mut result, ",\"stderr\":\"\",\"interrupted\":false,\"isImage\":false}");
                self.tool_result(c, sink, &call.id, &content, failed, &result)?;
                if self.chance(0.02) {
                    self.system_line(c, sink, "PostToolUse:Bash hook succeeded: \"formatted 3 files\"", None)?;
                }
                Ok(())
            }
            Kind::Grep => {
                let n = self.output_size() / 2;
                let (out, lines) = self.grep_output(n, &c.cwd);
                raw(&mut result, "{\"mode\":\"content\",\"numFiles\":0,\"filenames\":[]");
                field_str(&mut result, ",\"content\":", &out);
                field_num(&mut result, ",\"numLines\":", lines);
                result.push(b'}');
                self.tool_result(c, sink, &call.id, &out, false, &result)
            }
            Kind::Edit => {
                let n = self.range(300, 2_500) as usize;
                let (numbered, _, _) = self.source(n);
                let content = format!(
                    "The file {}/{} has been updated. Here's the result of running `cat -n` on a snippet of the edited file:\n{numbered}",
                    c.cwd,
                    self.any(&FILES)
                );
                self.tool_result(c, sink, &call.id, &content, false, &[])
            }
            Kind::Write { path, content } => {
                field_str(&mut result, "{\"type\":\"create\",\"filePath\":", &path);
                field_str(&mut result, ",\"content\":", &content);
                raw(&mut result, ",\"structuredPatch\":[]}");
                let message = format!("File created successfully at: {path}");
                self.tool_result(c, sink, &call.id, &message, false, &result)
            }
            Kind::Glob => {
                let n = self.range(3, 80);
                let mut out = String::new();
                raw(&mut result, "{\"filenames\":[");
                for i in 0..n {
                    let path = format!("{}/{}", c.cwd, self.any(&FILES));
                    if i > 0 {
                        result.push(b',');
                    }
                    esc(&mut result, &path);
                    out.push_str(&path);
                    out.push('\n');
                }
                field_num(&mut result, "],\"durationMs\":", self.range(3, 400));
                field_num(&mut result, ",\"numFiles\":", n);
                raw(&mut result, ",\"truncated\":false}");
                self.tool_result(c, sink, &call.id, &out, false, &result)
            }
            Kind::Todo => self.tool_result(
                c,
                sink,
                &call.id,
                "Todos have been modified successfully. Ensure that you continue to use the todo list to track your progress. Please proceed with the current tasks if applicable",
                false,
                &[],
            ),
            Kind::Task { prompt } => self.task(c, sink, &call.id, &prompt, parent),
        }
    }

    /// Runs a sub-agent and writes the parent's `tool_result`.
    fn task(
        &mut self,
        c: &mut Convo,
        sink: &mut Sink,
        call_id: &str,
        prompt: &str,
        parent: &Sent,
    ) -> io::Result<()> {
        let inline = c.version == Version::V1;
        let agent_id = self.agent_id(c.version);
        let model = if !inline && self.chance(0.4) {
            HAIKU
        } else {
            c.model
        };
        let mut sub = Convo {
            session_id: c.session_id.clone(),
            cwd: c.cwd.clone(),
            dir: c.dir.clone(),
            branch: c.branch,
            version: c.version,
            model,
            sidechain: true,
            agent_id: (!inline).then(|| agent_id.clone()),
            last_uuid: None,
            now: c.now,
            ctx: 0,
            pending: 0,
            started: false,
            ttl_1h: c.ttl_1h,
        };
        let turns = self.range(3, 30);
        let (final_text, messages) = if inline {
            self.sub_conversation(&mut sub, sink, prompt, turns, None)?
        } else {
            let dir = c.dir.join(&c.session_id).join("subagents");
            fs::create_dir_all(&dir)?;
            let mut own = Sink::create(&dir.join(format!("agent-{agent_id}.jsonl")))?;
            self.stats.files += 1;
            self.subagent_files += 1;
            // The first sub-agent file always replays, so that every corpus
            // with sub-agent files has the trap.
            let replay =
                (self.chance(P_SIDECHAIN_REPLAY) || self.subagent_files == 1).then_some(parent);
            let done = self.sub_conversation(&mut sub, &mut own, prompt, turns, replay)?;
            own.w.flush()?;
            done
        };
        let duration = sub.now.saturating_sub(c.now);
        c.now = sub.now;
        let mut result = Vec::new();
        raw(&mut result, "{\"status\":\"completed\"");
        field_str(&mut result, ",\"prompt\":", prompt);
        field_str(&mut result, ",\"agentId\":", &agent_id);
        raw(&mut result, ",\"content\":[");
        result.extend_from_slice(&text_block(&final_text));
        field_num(&mut result, "],\"totalDurationMs\":", duration + 1_000);
        field_num(&mut result, ",\"totalTokens\":", sub.ctx);
        field_num(&mut result, ",\"totalToolUseCount\":", messages);
        result.push(b'}');
        // The parent's tool_result line, with the agentId of the sub-agent (2.x).
        let uuid = self.uuid();
        self.tick(c, 50, 2_000);
        self.head(c);
        let b = &mut self.buf;
        raw(
            b,
            ",\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[",
        );
        field_str(b, "{\"tool_use_id\":", call_id);
        raw(b, ",\"type\":\"tool_result\",\"content\":[");
        b.extend_from_slice(&text_block(&final_text));
        raw(b, "]}]}");
        if !inline {
            field_str(b, ",\"agentId\":", &agent_id);
        }
        self.tail_with_result(&uuid, c.now, &result);
        self.emit(sink)?;
        c.last_uuid = Some(uuid);
        c.pending += tokens_of(final_text.len());
        Ok(())
    }

    /// A sub-agent conversation; returns its final text and message count.
    fn sub_conversation(
        &mut self,
        sub: &mut Convo,
        sink: &mut Sink,
        prompt: &str,
        turns: u64,
        replay: Option<&Sent>,
    ) -> io::Result<(String, u64)> {
        if let Some(parent) = replay {
            // The parent message replayed with a new requestId and a larger
            // usage: a correct reader keeps the parent's and counts it once.
            let uuid = self.uuid();
            let request_id = self.request_id();
            let mut usage = parent.usage;
            usage.read += self.range(1_000, 40_000);
            let text = text_block(self.any(&PROSE));
            self.tick(sub, 100, 2_000);
            self.assistant_line(
                sub,
                sink,
                &parent.id,
                parent.model,
                &text,
                Some("tool_use"),
                &usage,
                usage.output,
                Some(&request_id),
                &uuid,
            )?;
            sub.last_uuid = Some(uuid);
        }
        self.tick(sub, 100, 2_000);
        self.user_text(sub, sink, prompt, false)?;
        let before = self.stats.assistant_messages;
        let (text, _) = self.converse(sub, sink, turns, None)?;
        Ok((text, self.stats.assistant_messages - before))
    }

    /// The agentic loop: prompts, assistant messages and tool results until
    /// `turns` API calls or the byte target. Returns the last assistant text
    /// and whether the target was reached.
    fn converse(
        &mut self,
        c: &mut Convo,
        sink: &mut Sink,
        turns: u64,
        mut boundaries: Option<&mut Vec<Boundary>>,
    ) -> io::Result<(String, bool)> {
        let main = !c.sidechain;
        let mut done = 0;
        let mut last_text = String::new();
        let mut first = true;
        while done < turns {
            if main || !first {
                self.tick(c, 5_000, 600_000);
                if c.version != Version::V1 && main && self.chance(0.5) {
                    self.snapshot_line(c, sink)?;
                }
                let mut prompt = String::from(self.any(&PROMPTS));
                if self.chance(0.1) {
                    let n = self.log_size(500, 6_000);
                    prompt.push_str("\n\n```\n");
                    prompt.push_str(&self.shell_output(n));
                    prompt.push_str("```");
                }
                self.user_text(c, sink, &prompt, false)?;
            }
            first = false;
            // A sub-agent works through its single prompt in one loop.
            let rounds = if main { self.range(1, 8) } else { turns };
            for round in 0..rounds {
                if c.ctx + c.pending > COMPACT_AT {
                    self.compact(c, sink)?;
                }
                let last_round = round + 1 == rounds || done + 1 >= turns;
                let think = self.chance(if c.version == Version::V1 { 0.15 } else { 0.4 });
                let with_text = last_round || self.chance(0.5);
                let tools = if last_round {
                    0
                } else if self.chance(0.2) {
                    2
                } else {
                    1
                };
                let mut blocks = Vec::with_capacity(4);
                let mut output = 0;
                if think {
                    let n = self.log_size(200, 4_000);
                    let thinking = self.prose(n);
                    let signature = self.signature();
                    let mut b = Vec::with_capacity(thinking.len() + signature.len() + 64);
                    field_str(&mut b, "{\"type\":\"thinking\",\"thinking\":", &thinking);
                    field_str(&mut b, ",\"signature\":", &signature);
                    b.push(b'}');
                    blocks.push(b);
                    output += tokens_of(thinking.len()) + self.range(10, 300);
                }
                if with_text {
                    let n = self.log_size(60, 1_500);
                    let text = self.prose(n);
                    blocks.push(text_block(&text));
                    output += tokens_of(text.len()) + self.range(5, 50);
                    last_text = text;
                }
                let mut calls = Vec::with_capacity(2);
                for _ in 0..tools {
                    let (call, block) = self.make_call(c, main);
                    output += tokens_of(block.len()).min(3_000) + self.range(20, 120);
                    blocks.push(block);
                    calls.push(call);
                }
                if self.chance(0.02) {
                    output += self.range(1_000, 5_000);
                }
                let output = output.clamp(1, 8_000);
                let stop = if tools > 0 { "tool_use" } else { "end_turn" };
                let sent = self.assistant(c, sink, &blocks, output, stop)?;
                done += 1;
                for call in calls {
                    self.run_call(c, sink, call, &sent)?;
                }
                if let (Some(list), Some(uuid)) = (boundaries.as_deref_mut(), &c.last_uuid) {
                    list.push(Boundary {
                        offset: sink.bytes,
                        uuid: uuid.clone(),
                        now: c.now,
                    });
                }
                if self.stats.bytes >= self.target {
                    return Ok((last_text, true));
                }
                if last_round {
                    break;
                }
            }
            if main && self.chance(0.01) {
                self.system_line(
                    c,
                    sink,
                    "Claude Code hooks: Stop hook ran (\"notify-send\")",
                    None,
                )?;
            }
        }
        Ok((last_text, false))
    }

    // -- sessions -----------------------------------------------------------

    /// Writes one session (continuing `resume` if given) and returns the
    /// session to continue next, if any.
    fn session(&mut self, resume: Option<Resume>) -> io::Result<Option<Resume>> {
        let (project, version, model, branch, ttl_1h) = match &resume {
            Some(r) => (r.project, r.version, r.model, r.branch, r.ttl_1h),
            None => {
                let project = self.any(&PROJECTS);
                let version = self.weighted(&VERSIONS);
                let mut model = self.weighted(&MODELS);
                if version == Version::V1 && (model == HAIKU || model == "claude-opus-4-6") {
                    model = "claude-sonnet-4-20250514";
                }
                let branch = self.weighted(&BRANCHES);
                let ttl_1h = version != Version::V1 && self.chance(0.3);
                (project, version, model, branch, ttl_1h)
            }
        };
        let cwd = format!("/home/dev/src/{project}");
        let dir = self.root.join(project_dir_name(&cwd));
        fs::create_dir_all(&dir)?;
        let session_id = self.uuid();
        let path = dir.join(format!("{session_id}.jsonl"));
        let mut sink = Sink::create(&path)?;
        self.stats.files += 1;
        let mut c = Convo {
            session_id,
            cwd,
            dir,
            branch,
            version,
            model,
            sidechain: false,
            agent_id: None,
            last_uuid: None,
            now: START_MS + self.range(0, SPREAD_DAYS * DAY_MS),
            ctx: 0,
            pending: 0,
            started: false,
            ttl_1h,
        };
        let mut boundaries = Vec::new();
        if let Some(r) = &resume {
            self.summary_line(&mut sink, &r.last_uuid)?;
            let data = fs::read(&r.path)?;
            let cut = usize::try_from(r.cut).unwrap_or(data.len()).min(data.len());
            let prefix = &data[..cut];
            sink.w.write_all(prefix)?;
            let n = prefix.len() as u64;
            sink.bytes += n;
            self.stats.bytes += n;
            self.stats.lines += prefix.iter().filter(|&&b| b == b'\n').count() as u64;
            c.last_uuid = Some(r.last_uuid.clone());
            c.now = r.end_ms + self.range(120_000, 36 * 3_600_000);
            boundaries.push(Boundary {
                offset: sink.bytes,
                uuid: r.last_uuid.clone(),
                now: c.now,
            });
        } else if self.chance(0.05) {
            let leaf = self.uuid();
            self.summary_line(&mut sink, &leaf)?;
        }
        let u: f64 = self.rng.random();
        let turns = 20 + (380.0 * u * u * u) as u64;
        let (_, reached) = self.converse(&mut c, &mut sink, turns, Some(&mut boundaries))?;
        sink.w.flush()?;
        drop(sink);
        if reached || boundaries.is_empty() || !self.chance(P_RESUME) {
            return Ok(None);
        }
        let last = boundaries.len() - 1;
        let pick = if self.chance(0.5) {
            last
        } else {
            self.rng.random_range(last * 3 / 10..=last)
        };
        let b = &boundaries[pick];
        if self.stats.bytes + b.offset >= self.target {
            return Ok(None);
        }
        Ok(Some(Resume {
            path,
            cut: b.offset,
            last_uuid: b.uuid.clone(),
            end_ms: c.now.max(b.now),
            project,
            version,
            model,
            branch,
            ttl_1h,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tokwatch-cc-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn jsonl_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                jsonl_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                out.push(path);
            }
        }
    }

    fn sorted_files(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        jsonl_files(dir, &mut files);
        files.sort_by_cached_key(|p| p.to_string_lossy().into_owned());
        files
    }

    #[test]
    fn timestamps_are_iso_8601() {
        let mut b = Vec::new();
        iso(&mut b, START_MS);
        assert_eq!(b, b"2026-01-05T00:00:00.000Z");
        b.clear();
        iso(&mut b, START_MS + 55 * DAY_MS + 3_723_004);
        assert_eq!(b, b"2026-03-01T01:02:03.004Z");
        assert_eq!(
            project_dir_name("/home/dev/src/web.frontend"),
            "-home-dev-src-web-frontend"
        );
    }

    #[test]
    fn same_seed_same_bytes() {
        let (a, b, other) = (temp("a"), temp("b"), temp("c"));
        let sa = write_claude_corpus(&a, 600_000, 7).unwrap();
        let sb = write_claude_corpus(&b, 600_000, 7).unwrap();
        let sc = write_claude_corpus(&other, 600_000, 8).unwrap();
        assert_eq!(sa, sb);
        let (fa, fb) = (sorted_files(&a), sorted_files(&b));
        assert_eq!(fa.len(), fb.len());
        for (x, y) in fa.iter().zip(&fb) {
            assert_eq!(x.strip_prefix(&a).unwrap(), y.strip_prefix(&b).unwrap());
            assert_eq!(fs::read(x).unwrap(), fs::read(y).unwrap());
        }
        assert_ne!(
            fs::read(&fa[0]).unwrap(),
            fs::read(&sorted_files(&other)[0]).unwrap()
        );
        assert!(sc.bytes > 0);
        for dir in [a, b, other] {
            fs::remove_dir_all(dir).unwrap();
        }
    }

    /// Every line parses, the counters match the files, the size is near the
    /// target, and ccusage's dedupe rule counts `assistant_messages` calls.
    #[test]
    fn lines_parse_and_counts_match() {
        let dir = temp("check");
        let target = 2_000_000;
        let stats = write_claude_corpus(&dir, target, 3).unwrap();
        assert!(
            stats.bytes >= target && stats.bytes < target + 1_500_000,
            "{stats:?}"
        );
        let files = sorted_files(&dir);
        assert_eq!(files.len() as u64, stats.files);
        let (mut lines, mut bytes) = (0_u64, 0_u64);
        // message.id -> [(requestId, isSidechain)] kept, in ccusage's order.
        let mut kept: HashMap<String, Vec<(Option<String>, bool)>> = HashMap::new();
        let mut calls = 0_u64;
        let mut kinds = HashSet::new();
        let mut sidechain_replays = 0;
        for file in &files {
            let text = fs::read_to_string(file).unwrap();
            bytes += text.len() as u64;
            let mut last_ts = String::new();
            for line in text.lines() {
                lines += 1;
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                kinds.insert(v["type"].as_str().unwrap().to_string());
                if let Some(ts) = v.get("timestamp").and_then(|t| t.as_str()) {
                    assert!(ts >= last_ts.as_str(), "{file:?}: {ts} < {last_ts}");
                    last_ts = ts.to_string();
                }
                let message = &v["message"];
                let Some(usage) = message.get("usage") else {
                    continue;
                };
                let model = message["model"].as_str().unwrap();
                if model == "<synthetic>" {
                    continue;
                }
                let input = [
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                ]
                .iter()
                .map(|k| usage[*k].as_u64().unwrap())
                .sum::<u64>();
                assert!(input < 400_000);
                let id = message["id"].as_str().unwrap().to_string();
                let request = v
                    .get("requestId")
                    .and_then(|r| r.as_str())
                    .map(str::to_string);
                let sidechain = v["isSidechain"].as_bool().unwrap();
                let seen = kept.entry(id).or_default();
                let exact = seen.iter().any(|(r, _)| *r == request);
                let duplicate = exact || seen.iter().any(|(_, s)| sidechain || *s);
                if duplicate && !exact {
                    sidechain_replays += 1;
                }
                if !duplicate {
                    seen.push((request, sidechain));
                    calls += 1;
                }
            }
        }
        assert_eq!(lines, stats.lines);
        assert_eq!(bytes, stats.bytes);
        assert_eq!(calls, stats.assistant_messages);
        if files
            .iter()
            .any(|f| f.to_string_lossy().contains("/subagents/"))
        {
            assert!(sidechain_replays > 0);
        }
        for kind in ["user", "assistant"] {
            assert!(kinds.contains(kind), "{kinds:?}");
        }
        fs::remove_dir_all(dir).unwrap();
    }
}
