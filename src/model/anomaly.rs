//! Anomalies: spend-rate spikes (over 1, 5 and 60 minutes) and hops whose
//! input is far above what that agent's hop at that position usually sends.
//!
//! Pure and incremental: [`AnomalyDetector::observe`] takes one counted call
//! (O(1) amortised), [`AnomalyDetector::tick`] takes the caller's clock and
//! closes the minutes that ended since the last tick (O(60) per minute
//! closed, whatever the history). No clock is read here. The rules, with a
//! worked example, are in `docs/insights.md` § Anomalies.
//!
//! Band: an exponentially weighted mean and variance (EWMA) per series,
//! rather than a median/MAD over a window: it is O(1) in time and memory per
//! sample with one knob (the half-life), and both the spend windows and the
//! hop keys need thousands of independent bands. A spike itself enters the
//! band clipped at the threshold (winsorised), so one outlier does not widen
//! the band enough to hide the next one, while a lasting new level still
//! moves it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use super::ledger::ahead_of_clock;
use crate::types::money::Usd;

/// The spend windows, in minutes, shortest first (the order suppression
/// relies on: a longer window never repeats a spike a shorter one raised).
pub const WINDOWS: [i64; 3] = [1, 5, 60];

/// Minutes of per-minute spend kept: the longest window, the few minutes a
/// call may be timed ahead of the clock (`ledger::FUTURE_MINUTES`), and
/// slack for minutes closed late. A power of two: slots are `minute % RING`.
const RING: usize = 128;

/// Anomalies kept for display ([`AnomalyDetector::recent`]).
pub const RECENT_KEPT: usize = 20;

/// Thresholds (`[anomalies]` in the config file).
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyRules {
    /// Off: nothing is observed, nothing raised.
    pub enabled: bool,
    /// A value this many (effective) standard deviations above its band's
    /// mean is a spike.
    pub z: f64,
    /// A raised spend window is re-armed once a closed minute's rate is at
    /// most this many standard deviations above the band (hysteresis).
    pub rearm_z: f64,
    /// Samples a band needs before it can raise anything (warm-up).
    pub min_samples: u32,
    /// Half-life of the bands, in samples (minutes for spend, calls for a
    /// hop key): weight `α = 1 − 2^(−1/half_life)` per new sample.
    pub half_life: f64,
    /// The standard deviation used is at least this share of the mean: a
    /// very regular series does not turn small changes into huge z-scores.
    pub min_spread: f64,
    /// Least spend rate that can be a spike, per minute.
    pub min_rate: Usd,
    /// Least input tokens of a hop that can be a spike.
    pub hop_min_tokens: u64,
    /// One hop spike per (agent, hop position) per this long (ms).
    pub hop_cooldown_ms: i64,
    /// (agent, hop position) bands kept; past it the least recently seen
    /// sixteenth is forgotten.
    pub max_hop_keys: usize,
}

impl Default for AnomalyRules {
    fn default() -> Self {
        AnomalyRules {
            enabled: true,
            z: 4.0,
            rearm_z: 1.0,
            min_samples: 10,
            half_life: 30.0,
            min_spread: 0.25,
            min_rate: Usd::from_picos(50_000_000_000), // $0.05 a minute
            hop_min_tokens: 20_000,
            hop_cooldown_ms: 10 * 60_000,
            max_hop_keys: 4_096,
        }
    }
}

impl AnomalyRules {
    /// The EWMA weight of a new sample.
    fn alpha(&self) -> f64 {
        1.0 - 0.5_f64.powf(1.0 / self.half_life.max(1e-9))
    }
}

/// What spiked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Spend over the last minute.
    #[serde(rename = "spend_1m")]
    Spend1m,
    /// Spend over the last 5 minutes.
    #[serde(rename = "spend_5m")]
    Spend5m,
    /// Spend over the last 60 minutes.
    #[serde(rename = "spend_60m")]
    Spend60m,
    /// One call's input tokens for its (agent, hop position).
    HopTokens,
}

impl AnomalyKind {
    /// `spend_1m`, … as in JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::Spend1m => "spend_1m",
            AnomalyKind::Spend5m => "spend_5m",
            AnomalyKind::Spend60m => "spend_60m",
            AnomalyKind::HopTokens => "hop_tokens",
        }
    }

    fn of_window(minutes: i64) -> AnomalyKind {
        match minutes {
            1 => AnomalyKind::Spend1m,
            5 => AnomalyKind::Spend5m,
            _ => AnomalyKind::Spend60m,
        }
    }
}

/// An observed or expected value, in its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Level {
    /// Dollars per minute (exact decimal in JSON).
    PerMinute(Usd),
    /// Input tokens of one call.
    Tokens(u64),
}

impl Level {
    /// `usd_per_minute` or `tokens`.
    #[must_use]
    pub fn unit(self) -> &'static str {
        match self {
            Level::PerMinute(_) => "usd_per_minute",
            Level::Tokens(_) => "tokens",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Level::PerMinute(usd) => write!(f, "${}/min", usd.display_significant(2)),
            Level::Tokens(n) => write!(f, "{} tokens", thousands(*n)),
        }
    }
}

/// One spike.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    /// When it was raised, on the caller's clock (epoch ms).
    pub at_ms: i64,
    /// The window (`1m`, `5m`, `60m`) or the agent (untrusted text: sanitize
    /// before a terminal shows it).
    #[serde(serialize_with = "as_str")]
    pub subject: Arc<str>,
    /// The hop position, for [`AnomalyKind::HopTokens`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hop: Option<u32>,
    pub observed: Level,
    /// The band's centre (its mean).
    pub expected: Level,
    /// (observed − mean) ÷ effective standard deviation.
    pub z: f64,
    /// A sentence for people (holds `subject` unsanitized).
    pub message: String,
}

/// An exponentially weighted mean and variance.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Band {
    mean: f64,
    var: f64,
    samples: u32,
}

impl Band {
    /// The standard deviation used for z: at least `min_spread` × mean and
    /// at least `floor` (never zero).
    fn spread(&self, rules: &AnomalyRules, floor: f64) -> f64 {
        self.var
            .sqrt()
            .max(rules.min_spread * self.mean.abs())
            .max(floor)
    }

    fn z(&self, x: f64, rules: &AnomalyRules, floor: f64) -> f64 {
        (x - self.mean) / self.spread(rules, floor)
    }

    fn warm(&self, rules: &AnomalyRules) -> bool {
        self.samples >= rules.min_samples
    }

    /// Adds a sample; once warm, clipped at the spike threshold (a spike
    /// moves the band as much as the largest normal value would).
    fn learn(&mut self, x: f64, rules: &AnomalyRules, floor: f64) {
        if self.samples == 0 {
            *self = Band {
                mean: x,
                var: 0.0,
                samples: 1,
            };
            return;
        }
        let x = if self.warm(rules) {
            x.min(self.mean + rules.z * self.spread(rules, floor))
        } else {
            x
        };
        let alpha = rules.alpha();
        let diff = x - self.mean;
        let step = alpha * diff;
        self.mean += step;
        self.var = (1.0 - alpha) * (self.var + diff * step);
        self.samples = self.samples.saturating_add(1);
    }
}

/// The floor of a spend band's spread, in picodollars a minute (only keeps
/// z finite; `min_rate` is the real floor).
const SPEND_FLOOR: f64 = 1.0;
/// The floor of a hop band's spread, in tokens.
const TOKENS_FLOOR: f64 = 1.0;

/// One spend window's band and alarm state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Window {
    band: Band,
    /// A spike was raised (or a shorter window's spike covered it) and the
    /// rate has not come back inside the band since.
    raised: bool,
}

/// One (agent, hop position)'s band.
#[derive(Debug, Clone, Copy)]
struct HopBand {
    band: Band,
    last_alert_ms: Option<i64>,
    /// [`AnomalyDetector::touch`] when last seen (eviction order).
    touched: u64,
}

/// The incremental detector (see the module's documentation).
#[derive(Debug, Clone)]
pub struct AnomalyDetector {
    rules: AnomalyRules,
    /// Spend per minute: slot `minute % RING` holds (minute, picodollars).
    ring: Box<[(i64, i128); RING]>,
    /// The first minute any spend was seen in: a window is sampled only once
    /// it lies wholly after it (no diluted rates while history is short).
    first_minute: Option<i64>,
    /// Minutes up to this one are closed (learned from).
    closed: Option<i64>,
    /// The caller's clock (epoch ms), from [`AnomalyDetector::set_clock`]
    /// or [`AnomalyDetector::tick`].
    clock_ms: Option<i64>,
    windows: [Window; WINDOWS.len()],
    hops: HashMap<(Arc<str>, u32), HopBand>,
    touch: u64,
    /// Raised since the last [`AnomalyDetector::take_new`].
    new: Vec<Anomaly>,
    recent: VecDeque<Anomaly>,
    /// Anomalies raised so far (tells a reader `recent` changed).
    raised: u64,
    /// Calls left out: timed more than two hours before the clock, or too
    /// far ahead of it.
    pub skipped: u64,
}

impl AnomalyDetector {
    #[must_use]
    pub fn new(rules: AnomalyRules) -> Self {
        AnomalyDetector {
            rules,
            ring: Box::new([(i64::MIN, 0); RING]),
            first_minute: None,
            closed: None,
            clock_ms: None,
            windows: [Window::default(); WINDOWS.len()],
            hops: HashMap::new(),
            touch: 0,
            new: Vec::new(),
            recent: VecDeque::with_capacity(RECENT_KEPT),
            raised: 0,
            skipped: 0,
        }
    }

    #[must_use]
    pub fn rules(&self) -> &AnomalyRules {
        &self.rules
    }

    /// The caller's clock (epoch ms): anchors "too late" and "too far ahead".
    pub fn set_clock(&mut self, now_ms: i64) {
        self.clock_ms = Some(now_ms);
    }

    /// One counted call: its time (`None`: spend not placed), its effective
    /// cost (`None`: unpriced), agent, hop position and input tokens. Hop
    /// spikes are raised here; spend spikes at [`AnomalyDetector::tick`].
    pub fn observe(
        &mut self,
        ts_ms: Option<i64>,
        cost: Option<Usd>,
        agent: &Arc<str>,
        hop: u32,
        input_tokens: u64,
    ) {
        if !self.rules.enabled {
            return;
        }
        if let (Some(ts), Some(cost)) = (ts_ms, cost) {
            self.add_spend(ts, cost);
        }
        self.observe_hop(agent, hop, input_tokens, ts_ms);
    }

    fn add_spend(&mut self, ts: i64, cost: Usd) {
        let minute = ts.div_euclid(60_000);
        if let Some(clock) = self.clock_ms {
            let clock_minute = clock.div_euclid(60_000);
            // A wrong agent clock cannot move the series into the future;
            // a call older than the longest window plus slack is history.
            let too_old = minute < clock_minute - (RING as i64 - 8);
            if ahead_of_clock(ts, clock_minute) || too_old {
                self.skipped += 1;
                return;
            }
        }
        let slot = &mut self.ring[minute.rem_euclid(RING as i64) as usize];
        if slot.0 != minute {
            if slot.0 > minute {
                // The slot holds a newer minute: this one is long gone.
                self.skipped += 1;
                return;
            }
            *slot = (minute, 0);
        }
        slot.1 = slot.1.saturating_add(cost.picos());
        if self.first_minute.is_none_or(|f| minute < f) {
            self.first_minute = Some(minute);
        }
    }

    /// Spend in minute `m` (picodollars).
    fn spend(&self, minute: i64) -> i128 {
        let (at, picos) = self.ring[minute.rem_euclid(RING as i64) as usize];
        if at == minute { picos } else { 0 }
    }

    /// Spend in the `w` minutes ending with minute `end`, and whether they
    /// all lie after the first minute seen.
    fn window_sum(&self, end: i64, w: i64) -> (i128, bool) {
        let start = end - w + 1;
        let full = self.first_minute.is_some_and(|f| start >= f);
        let sum = (start..=end).map(|m| self.spend(m)).sum();
        (sum, full)
    }

    /// Closes the minutes before `now_ms`'s (learning the bands from them)
    /// and checks each spend window ending now, the current minute so far
    /// included (a rate that is already a spike only grows as the minute
    /// goes on). Call at least once a minute; minutes more than an hour
    /// before the clock are never closed late.
    pub fn tick(&mut self, now_ms: i64) {
        self.clock_ms = Some(now_ms);
        if !self.rules.enabled {
            return;
        }
        let current = now_ms.div_euclid(60_000);
        let from = match self.closed {
            Some(closed) => (closed + 1).max(current - 61),
            // The first tick learns from the hour before it (a backlog).
            None => current - 61,
        };
        for minute in from..current {
            self.close(minute);
        }
        if self.closed.is_none_or(|c| c < current - 1) {
            self.closed = Some(current - 1);
        }
        self.check(current, now_ms);
    }

    /// Learns minute `m`'s window rates; a raised window whose closed rate
    /// is back inside the band is re-armed.
    fn close(&mut self, minute: i64) {
        for (i, w) in WINDOWS.iter().enumerate() {
            let (sum, full) = self.window_sum(minute, *w);
            // Idle windows are not samples: a quiet night does not make the
            // morning's usual rate a spike.
            if !full || sum <= 0 {
                continue;
            }
            let rate = sum as f64 / *w as f64;
            let window = &mut self.windows[i];
            if window.raised && window.band.z(rate, &self.rules, SPEND_FLOOR) <= self.rules.rearm_z
            {
                window.raised = false;
            }
            window.band.learn(rate, &self.rules, SPEND_FLOOR);
        }
    }

    /// Checks the windows ending with the current minute.
    fn check(&mut self, current: i64, now_ms: i64) {
        let mut covered = false;
        for (i, w) in WINDOWS.iter().enumerate() {
            let (sum, _) = self.window_sum(current, *w);
            let rate = Usd::from_picos(sum / i128::from(*w));
            let window = self.windows[i];
            if window.raised {
                covered = true;
                continue;
            }
            let x = sum as f64 / *w as f64;
            let z = window.band.z(x, &self.rules, SPEND_FLOOR);
            if !window.band.warm(&self.rules) || rate < self.rules.min_rate || z < self.rules.z {
                continue;
            }
            self.windows[i].raised = true;
            if covered {
                // A shorter window already said it: one spike, one alert.
                continue;
            }
            covered = true;
            let expected = Usd::from_picos(window.band.mean.round() as i128);
            let span = if *w == 1 {
                "the last minute".to_owned()
            } else {
                format!("the last {w} minutes")
            };
            let observed = Level::PerMinute(rate);
            let expected = Level::PerMinute(expected);
            self.raise(Anomaly {
                kind: AnomalyKind::of_window(*w),
                at_ms: now_ms,
                subject: Arc::from(format!("{w}m")),
                hop: None,
                observed,
                expected,
                z,
                message: format!(
                    "spend spike: {observed} over {span}, usually {expected} (z {z:.1})"
                ),
            });
        }
    }

    fn observe_hop(&mut self, agent: &Arc<str>, hop: u32, input: u64, ts_ms: Option<i64>) {
        let at_ms = self.clock_ms.or(ts_ms).unwrap_or(0);
        self.touch += 1;
        let touch = self.touch;
        let rules = &self.rules;
        let entry = self.hops.entry((agent.clone(), hop)).or_insert(HopBand {
            band: Band::default(),
            last_alert_ms: None,
            touched: touch,
        });
        entry.touched = touch;
        let x = input as f64;
        let z = entry.band.z(x, rules, TOKENS_FLOOR);
        let cooled = entry
            .last_alert_ms
            .is_none_or(|last| at_ms.saturating_sub(last) >= rules.hop_cooldown_ms);
        let spike = entry.band.warm(rules) && input >= rules.hop_min_tokens && z >= rules.z;
        let expected = entry.band.mean.round() as u64;
        entry.band.learn(x, rules, TOKENS_FLOOR);
        if spike && cooled {
            entry.last_alert_ms = Some(at_ms);
            let observed = Level::Tokens(input);
            let expected = Level::Tokens(expected);
            self.raise(Anomaly {
                kind: AnomalyKind::HopTokens,
                at_ms,
                subject: agent.clone(),
                hop: Some(hop),
                observed,
                expected,
                z,
                message: format!(
                    "hop spike: {agent} hop {hop} sent {observed} of input, usually {expected} (z {z:.1})"
                ),
            });
        }
        if self.hops.len() > self.rules.max_hop_keys {
            self.evict_hops();
        }
    }

    /// Forgets the least recently seen keys down to 15/16 of the cap: one
    /// pass per cap/16 new keys (amortised O(1) a call).
    fn evict_hops(&mut self) {
        let keep = self.rules.max_hop_keys - self.rules.max_hop_keys / 16;
        let excess = self.hops.len().saturating_sub(keep.max(1));
        if excess == 0 {
            return;
        }
        let mut touched: Vec<u64> = self.hops.values().map(|h| h.touched).collect();
        let (_, nth, _) = touched.select_nth_unstable(excess - 1);
        let cut = *nth;
        self.hops.retain(|_, h| h.touched > cut);
    }

    fn raise(&mut self, anomaly: Anomaly) {
        self.raised += 1;
        if self.recent.len() == RECENT_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(anomaly.clone());
        // Bounded too: a reader that never takes them keeps the latest.
        if self.new.len() == RECENT_KEPT {
            self.new.remove(0);
        }
        self.new.push(anomaly);
    }

    /// The anomalies raised since the last call (for the webhook), oldest
    /// first.
    pub fn take_new(&mut self) -> Vec<Anomaly> {
        std::mem::take(&mut self.new)
    }

    /// The last [`RECENT_KEPT`] anomalies, oldest first.
    #[must_use]
    pub fn recent(&self) -> &VecDeque<Anomaly> {
        &self.recent
    }

    /// Anomalies raised so far: `recent` changed when this did.
    #[must_use]
    pub fn raised(&self) -> u64 {
        self.raised
    }

    /// (agent, hop position) bands held.
    #[must_use]
    pub fn hop_keys(&self) -> usize {
        self.hops.len()
    }
}

fn as_str<S: serde::Serializer>(text: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(text)
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
