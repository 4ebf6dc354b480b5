use std::borrow::Cow;

use super::{MIN_EPOCH_MS, RawRecord, Text, TsMillis, fast_rfc3339_millis};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = ONES * 0x80;

/// The high bit of each byte of `w` (little-endian) that is `"`, `\` or
/// a control character (below 0x20), at least for the lowest such byte.
///
/// SWAR: for `n <= 0x80`, `(w - n * 0x0101…01) & !w & 0x8080…80` sets the
/// high bit of each byte below `n`: such a byte wraps round to
/// `b + 0x100 - n >= 0x80`, bytes from `n` to 0x7f stay below 0x80, and
/// `!w` masks out bytes that were 0x80 or more already (UTF-8). With
/// `n = 1` it finds zero bytes, so XOR with a repeated `"` (or `\`) first
/// finds those. A byte that wraps borrows from the one above it, which
/// may then be flagged falsely, but nothing below the first true match
/// ever is: the lowest flag (trailing zeros / 8) is exact.
#[inline]
fn specials(w: u64) -> u64 {
    const QUOTES: u64 = ONES * b'"' as u64;
    const BACKSLASHES: u64 = ONES * b'\\' as u64;
    const SPACES: u64 = ONES * 0x20;
    let quote = w ^ QUOTES;
    let backslash = w ^ BACKSLASHES;
    (quote.wrapping_sub(ONES) & !quote
        | backslash.wrapping_sub(ONES) & !backslash
        | w.wrapping_sub(SPACES) & !w)
        & HIGH
}

/// The 8 bytes at `at` as a little-endian word, when there are 8.
#[inline]
fn word(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(*bytes.get(at..)?.first_chunk::<8>()?))
}

/// The length of the plain start of a string's body: the index of the
/// first `"`, `\\` or control character (below 0x20) in `bytes`.
///
/// 16 bytes at a time by [`has_special`] (the last 16 overlapping checked
/// ones rather than going byte by byte), located by [`specials`].
#[inline(always)]
pub(super) fn plain_len(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 16 {
        return bytes
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
    }
    let last = bytes.len() - 16;
    let mut at = 0;
    loop {
        // Past the end, the last 16 bytes (whose start is known plain).
        let from = at.min(last);
        let chunk = bytes[from..].first_chunk::<16>()?;
        if has_special(chunk) {
            let (lo, hi) = chunk.split_at(8);
            let lo = specials(u64::from_le_bytes(lo.try_into().ok()?));
            if lo != 0 {
                return Some(from + (lo.trailing_zeros() / 8) as usize);
            }
            let hi = specials(u64::from_le_bytes(hi.try_into().ok()?));
            return Some(from + 8 + (hi.trailing_zeros() / 8) as usize);
        }
        if from == last {
            return None;
        }
        at += 16;
    }
}

/// Whether `chunk` has a `"`, `\\` or control character. Written as a
/// branch-free fold of byte minimums (zero exactly for those bytes), which
/// the compiler turns into a few SIMD instructions.
#[inline]
fn has_special(chunk: &[u8; 16]) -> bool {
    chunk.iter().fold(false, |any, &b| {
        any | ((b ^ b'"').min(b ^ b'\\').min(b.saturating_sub(0x1f)) == 0)
    })
}

struct Cursor<'a> {
    /// The line; `bytes` is the same, as bytes.
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Skips whitespace, `byte` and whitespace (compact JSON has none:
    /// one compare).
    #[inline]
    fn eat_padded(&mut self, byte: u8) -> Option<()> {
        if self.peek() == Some(byte) {
            self.at += 1;
        } else {
            self.skip_ws();
            (self.peek()? == byte).then_some(())?;
            self.at += 1;
        }
        if matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.skip_ws();
        }
        Some(())
    }

    /// The bounds of a string body without escapes or control
    /// characters; the cursor is on its opening quote (already checked)
    /// and ends past the closing one.
    #[inline(always)]
    fn span(&mut self) -> Option<(usize, usize)> {
        let start = self.at + 1;
        let end = start + plain_len(self.bytes.get(start..)?)?;
        (*self.bytes.get(end)? == b'"').then_some(())?;
        self.at = end + 1;
        Some((start, end))
    }

    /// A string (see [`Self::span`]).
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        let (start, end) = self.span()?;
        self.text.get(start..end)
    }

    /// `word` (`null`, `true` or `false`) followed by a delimiter.
    #[inline]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        if self.bytes.get(self.at..end)? == word {
            self.at = end;
            self.delimited()
        } else {
            None
        }
    }

    /// The next byte ends a value.
    #[inline]
    fn delimited(&self) -> Option<()> {
        matches!(
            self.peek(),
            Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b'}')
        )
        .then_some(())
    }

    /// A JSON integer that fits `u64`: no sign, fraction, exponent or
    /// leading zero (those take the generic path). At most 19 digits
    /// (which cannot overflow, so no checked arithmetic per digit);
    /// longer ones go to serde too.
    #[inline(always)]
    fn integer(&mut self) -> Option<u64> {
        let rest = self.bytes.get(self.at..)?;
        let mut digits = 0;
        let mut value = 0_u64;
        while let Some(&b) = rest.get(digits) {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            // Wraps only past 19 digits, which are rejected below.
            value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
            digits += 1;
        }
        if digits == 0 || digits > 19 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        self.at += digits;
        self.delimited()?;
        Some(value)
    }

    /// Skips ASCII digits; whether there was at least one.
    #[inline]
    fn digits(&mut self) -> bool {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        self.at > start
    }

    /// Skips a JSON number of any shape,
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, followed by a
    /// delimiter: exactly what serde_json accepts for a number it ignores.
    #[inline]
    fn skip_number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digits().then_some(())?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digits().then_some(())?;
        }
        self.delimited()
    }

    /// Skips the value of a key serde ignores, when it is a scalar that
    /// serde_json accepts: a string without escapes or control
    /// characters, a number, `true`, `false` or `null`. Objects, arrays
    /// and escaped strings are left to serde.
    #[inline]
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.span().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.skip_number(),
        }
    }

    /// A string or `null`, stored straight into its field (returned
    /// through memory instead, the value costs a store-forwarding stall).
    #[inline]
    fn text(&mut self, slot: &mut Option<Text<'a>>) -> Option<()> {
        *slot = match self.peek()? {
            b'"' => Some(Text(Cow::Borrowed(self.string()?))),
            _ => {
                self.literal(b"null")?;
                None
            }
        };
        Some(())
    }

    #[inline]
    fn opt_u64(&mut self, slot: &mut Option<u64>) -> Option<()> {
        *slot = match self.peek()? {
            b'n' => {
                self.literal(b"null")?;
                None
            }
            _ => Some(self.integer()?),
        };
        Some(())
    }

    #[inline]
    fn opt_bool(&mut self) -> Option<Option<bool>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            b't' => self.literal(b"true").map(|()| Some(true)),
            _ => self.literal(b"false").map(|()| Some(false)),
        }
    }

    #[inline]
    fn opt_ts(&mut self) -> Option<Option<TsMillis>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            b'"' => {
                let text = self.string()?;
                let ms = fast_rfc3339_millis(text).or_else(|| {
                    chrono::DateTime::parse_from_rfc3339(text)
                        .ok()
                        .map(|t| t.timestamp_millis())
                })?;
                Some(Some(TsMillis(ms)))
            }
            _ => {
                let ms = i64::try_from(self.integer()?).ok()?;
                (ms >= MIN_EPOCH_MS).then_some(Some(TsMillis(ms)))
            }
        }
    }

    /// A key (the cursor on its opening quote) and the field it names,
    /// as [`field`] says; the cursor ends past the closing quote. Known
    /// keys are matched as bytes in place, without scanning for their end
    /// first: short ones by the word they fill ([`short_field`]), long
    /// ones by their first word and then the rest ([`long_field_at`]).
    /// Anything else is scanned and looked up.
    #[inline]
    fn key(&mut self) -> Option<u32> {
        let start = self.at + 1;
        if let Some(w) = word(self.bytes, start) {
            let flags = specials(w);
            if flags != 0 {
                let len = (flags.trailing_zeros() / 8) as usize;
                (self.bytes[start + len] == b'"').then_some(())?;
                self.at = start + len + 1;
                return Some(short_field(short_key(w, len)));
            }
            if let Some((end, f)) = long_field_at(self.bytes, start, w) {
                self.at = end + 1;
                return f;
            }
        }
        let (start, end) = self.span()?;
        field_bytes(&self.bytes[start..end])
    }
}

/// What [`field`] returns for a key [`RawRecord`] does not have: serde
/// ignores its value, and so may the fast path.
pub(super) const IGNORED: u32 = u32::MAX;

/// A key of at most 7 bytes as one number: its bytes (little-endian,
/// from `w`'s low bytes) and its length in the top byte.
#[inline]
const fn short_key(w: u64, len: usize) -> u64 {
    let mask = (1_u64 << (8 * len)) - 1;
    (w & mask) | ((len as u64) << 56)
}

/// [`short_key`] of a key given as bytes.
const fn short_key_of(key: &[u8]) -> u64 {
    let mut w = 0_u64;
    let mut i = 0;
    while i < key.len() {
        w |= (key[i] as u64) << (8 * i);
        i += 1;
    }
    short_key(w, key.len())
}

/// The field a key of at most 7 bytes names ([`short_key`]).
#[inline]
fn short_field(key: u64) -> u32 {
    const TYPE: u64 = short_key_of(b"type");
    const TS: u64 = short_key_of(b"ts");
    const RUN_ID: u64 = short_key_of(b"run_id");
    const HOP: u64 = short_key_of(b"hop");
    const AGENT: u64 = short_key_of(b"agent");
    const USER: u64 = short_key_of(b"user");
    const SEGMENT: u64 = short_key_of(b"segment");
    const TASK: u64 = short_key_of(b"task");
    const TOOL: u64 = short_key_of(b"tool");
    const MODEL: u64 = short_key_of(b"model");
    const STATUS: u64 = short_key_of(b"status");
    const PROMPT: u64 = short_key_of(b"prompt");
    const LIMIT: u64 = short_key_of(b"limit");
    const TOKENS: u64 = short_key_of(b"tokens");
    const ACTION: u64 = short_key_of(b"action");
    match key {
        TYPE => 0,
        TS => 1,
        RUN_ID => 2,
        HOP => 3,
        AGENT => 4,
        USER => 6,
        SEGMENT => 7,
        TASK => 8,
        TOOL => 9,
        MODEL => 11,
        STATUS => 19,
        PROMPT => 20,
        LIMIT => 23,
        TOKENS => 24,
        ACTION => 25,
        _ => IGNORED,
    }
}

/// The first 8 bytes of a key as a little-endian word.
const fn prefix(key: &[u8]) -> u64 {
    let mut w = 0_u64;
    let mut i = 0;
    while i < 8 {
        w |= (key[i] as u64) << (8 * i);
        i += 1;
    }
    w
}

/// A known key of 8 bytes or more at `start` whose first 8 are `w`: the
/// index of its closing quote and the field ([`field`]). `None` when the
/// key is not one of those (or is `cache_write_1h_tokens`, which shares
/// its first word with `cache_write_tokens`): then it is scanned.
#[inline]
fn long_field_at(bytes: &[u8], start: usize, w: u64) -> Option<(usize, Option<u32>)> {
    // Each arm compares a literal, so the compare is inlined.
    let at = |key: &[u8], f: Option<u32>| {
        let end = start + key.len();
        (bytes.get(start + 8..end)? == &key[8..] && *bytes.get(end)? == b'"').then_some((end, f))
    };
    const PARENT_AGENT: u64 = prefix(b"parent_agent");
    const PROVIDER: u64 = prefix(b"provider");
    const INPUT_TOKENS: u64 = prefix(b"input_tokens");
    const OUTPUT_TOKENS: u64 = prefix(b"output_tokens");
    const CACHE_READ_TOKENS: u64 = prefix(b"cache_read_tokens");
    const CACHE_WRITE_TOKENS: u64 = prefix(b"cache_write_tokens");
    const REASONING_TOKENS: u64 = prefix(b"reasoning_tokens");
    const LATENCY_MS: u64 = prefix(b"latency_ms");
    const COMPLETION: u64 = prefix(b"completion");
    const LIMIT_KIND: u64 = prefix(b"limit_kind");
    const ESTIMATED: u64 = prefix(b"estimated");
    const COST_USD: u64 = prefix(b"cost_usd");
    const PROMPT_HASH: u64 = prefix(b"prompt_hash");
    match w {
        PARENT_AGENT => at(b"parent_agent", Some(5)),
        PROVIDER => at(b"provider", Some(10)),
        INPUT_TOKENS => at(b"input_tokens", Some(12)),
        OUTPUT_TOKENS => at(b"output_tokens", Some(13)),
        CACHE_READ_TOKENS => at(b"cache_read_tokens", Some(14)),
        CACHE_WRITE_TOKENS => at(b"cache_write_tokens", Some(15)),
        REASONING_TOKENS => at(b"reasoning_tokens", Some(17)),
        LATENCY_MS => at(b"latency_ms", Some(18)),
        COMPLETION => at(b"completion", Some(21)),
        LIMIT_KIND => at(b"limit_kind", Some(22)),
        ESTIMATED => at(b"estimated", Some(26)),
        COST_USD => at(b"cost_usd", None),
        PROMPT_HASH => at(b"prompt_hash", Some(27)),
        _ => None,
    }
}

/// The field a key names, [`IGNORED`] for keys serde ignores, `None` for
/// `cost_usd` (exact decimal parsing stays with serde). `fast_path_tests`
/// checks this against the fields serde's derive knows.
#[cfg(test)]
pub(super) fn field(key: &str) -> Option<u32> {
    field_bytes(key.as_bytes())
}

#[inline]
fn field_bytes(key: &[u8]) -> Option<u32> {
    if key.len() < 8 {
        return Some(short_field(short_key_of(key)));
    }
    Some(match key {
        b"parent_agent" => 5,
        b"provider" => 10,
        b"input_tokens" => 12,
        b"output_tokens" => 13,
        b"cache_read_tokens" => 14,
        b"cache_write_tokens" => 15,
        b"cache_write_1h_tokens" => 16,
        b"reasoning_tokens" => 17,
        b"latency_ms" => 18,
        b"completion" => 21,
        b"limit_kind" => 22,
        b"estimated" => 26,
        b"prompt_hash" => 27,
        b"cost_usd" => return None,
        _ => IGNORED,
    })
}

/// The string field numbered `f` ([`field`]).
#[inline]
fn text_slot<'r, 'a>(r: &'r mut RawRecord<'a>, f: u32) -> Option<&'r mut Option<Text<'a>>> {
    Some(match f {
        0 => &mut r.kind,
        2 => &mut r.run_id,
        4 => &mut r.agent,
        5 => &mut r.parent_agent,
        6 => &mut r.user,
        7 => &mut r.segment,
        8 => &mut r.task,
        9 => &mut r.tool,
        10 => &mut r.provider,
        11 => &mut r.model,
        19 => &mut r.status,
        20 => &mut r.prompt,
        21 => &mut r.completion,
        22 => &mut r.limit_kind,
        25 => &mut r.action,
        27 => &mut r.prompt_hash,
        _ => return None,
    })
}

/// The count field numbered `f` ([`field`]).
#[inline]
fn count_slot<'r>(r: &'r mut RawRecord<'_>, f: u32) -> Option<&'r mut Option<u64>> {
    Some(match f {
        12 => &mut r.input_tokens,
        13 => &mut r.output_tokens,
        14 => &mut r.cache_read_tokens,
        15 => &mut r.cache_write_tokens,
        16 => &mut r.cache_write_1h_tokens,
        17 => &mut r.reasoning_tokens,
        18 => &mut r.latency_ms,
        23 => &mut r.limit,
        24 => &mut r.tokens,
        _ => return None,
    })
}

/// Reads the record into `r` (a default one) when the line has the
/// common shape; after `None`, `r` is half-filled and only fit to drop.
/// (Filled in place: returned by value, the ~600-byte record was copied
/// twice on the way out.)
pub(super) fn record<'a>(line: &'a [u8], r: &mut RawRecord<'a>) -> Option<()> {
    record_str(std::str::from_utf8(line).ok()?, r)
}

/// [`record`] for a line already known to be UTF-8 (live batches
/// validate each line as they store it).
#[inline]
pub(super) fn record_str<'a>(text: &'a str, r: &mut RawRecord<'a>) -> Option<()> {
    let line = text.as_bytes();
    let mut c = Cursor {
        text,
        bytes: line,
        at: 0,
    };
    let mut seen = 0_u32;
    c.skip_ws();
    c.eat_padded(b'{')?;
    if c.peek()? == b'}' {
        c.at += 1;
    } else {
        loop {
            (c.peek()? == b'"').then_some(())?;
            let f = c.key()?;
            c.eat_padded(b':')?;
            if f != IGNORED {
                // A repeated field is serde's error to report (a repeated
                // unknown key it ignores, as we do).
                if seen & (1 << f) != 0 {
                    return None;
                }
                seen |= 1 << f;
            }
            // One call site each for strings and counts, so that
            // their readers are inlined once.
            match f {
                1 => c.opt_ts().map(|v| r.ts = v),
                3 => c.opt_u64(&mut r.hop),
                26 => c.opt_bool().map(|v| r.estimated = v),
                IGNORED => c.skip_scalar(),
                _ => match text_slot(r, f) {
                    Some(slot) => c.text(slot),
                    None => c.opt_u64(count_slot(r, f)?),
                },
            }?;
            c.skip_ws();
            match c.peek()? {
                b',' => {
                    c.at += 1;
                    c.skip_ws();
                }
                b'}' => {
                    c.at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    c.skip_ws();
    (c.at == line.len()).then_some(())
}
