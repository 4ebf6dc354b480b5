//! Hand-computed examples of the anomaly rules (`docs/insights.md` § Anomalies).

#![allow(clippy::unwrap_used, clippy::float_cmp)]

use super::*;

/// A whole minute: 2027-01-15T08:00:00Z.
const T0: i64 = 1_800_000_000_000;
const MIN: i64 = 60_000;

fn dollars(n: i64) -> Usd {
    Usd::from_picos(i128::from(n) * 1_000_000_000_000)
}

fn agent(name: &str) -> Arc<str> {
    Arc::from(name)
}

/// Minute `m` after T0: one call of `cost` at its start, then a tick half
/// way through it.
fn minute(d: &mut AnomalyDetector, m: i64, cost: Usd) {
    d.set_clock(T0 + m * MIN);
    d.observe(Some(T0 + m * MIN), Some(cost), &agent("a"), 1, 100);
    d.tick(T0 + m * MIN + 30_000);
}

fn spend_kinds(d: &mut AnomalyDetector) -> Vec<(AnomalyKind, f64)> {
    d.take_new()
        .into_iter()
        .filter(|a| a.kind != AnomalyKind::HopTokens)
        .map(|a| (a.kind, a.z))
        .collect()
}

#[test]
fn a_flat_series_then_ten_times_raises_one_alert_with_z_36() {
    let mut d = AnomalyDetector::new(AnomalyRules::default());
    for m in 0..20 {
        minute(&mut d, m, dollars(1));
    }
    assert!(spend_kinds(&mut d).is_empty());
    // Band of the 1-minute rate: mean $1, variance 0, so the spread is the
    // floor 0.25 × $1; z = ($10 − $1) ÷ $0.25 = 36. The 5-minute rate
    // ($4 + $10) ÷ 5 = $2.80 is z = 1.8 ÷ 0.25 = 7.2, also over 4, but the
    // 1-minute window already said it: one spike, one alert.
    minute(&mut d, 20, dollars(10));
    let raised = d.take_new();
    assert_eq!(raised.len(), 1, "{raised:?}");
    let a = &raised[0];
    assert_eq!(a.kind, AnomalyKind::Spend1m);
    assert_eq!(a.z, 36.0);
    assert_eq!(a.observed, Level::PerMinute(dollars(10)));
    assert_eq!(a.expected, Level::PerMinute(dollars(1)));
    assert_eq!(a.at_ms, T0 + 20 * MIN + 30_000);
    assert_eq!(&*a.subject, "1m");
    assert_eq!(
        a.message,
        "spend spike: $10.00/min over the last minute, usually $1.00/min (z 36.0)"
    );
    // Ticks later in the same minute say nothing more.
    d.tick(T0 + 20 * MIN + 50_000);
    assert!(d.take_new().is_empty());
    assert_eq!(d.recent().len(), 1);
}

#[test]
fn z_of_a_band_with_variance_by_hand() {
    // Half-life 1 sample: α = 0.5. Samples $2 then $4: mean 2, then
    // diff 2, step 1, mean 3, variance 0.5 × (0 + 2 × 1) = 1, spread 1.
    // $10: z = (10 − 3) ÷ 1 = 7.
    let rules = AnomalyRules {
        half_life: 1.0,
        min_samples: 2,
        min_spread: 0.0,
        ..AnomalyRules::default()
    };
    let mut d = AnomalyDetector::new(rules);
    minute(&mut d, 0, dollars(2));
    minute(&mut d, 1, dollars(4));
    assert!(d.take_new().is_empty());
    minute(&mut d, 2, dollars(10));
    assert_eq!(spend_kinds(&mut d), vec![(AnomalyKind::Spend1m, 7.0)]);
}

#[test]
fn warm_up_raises_nothing() {
    let mut d = AnomalyDetector::new(AnomalyRules::default());
    // 9 closed samples of the 1-minute rate when the spike comes: one short.
    for m in 0..9 {
        minute(&mut d, m, dollars(1));
    }
    minute(&mut d, 9, dollars(100));
    assert!(d.take_new().is_empty());
}

#[test]
fn a_spike_below_the_floor_raises_nothing() {
    let mut d = AnomalyDetector::new(AnomalyRules::default());
    let cent = Usd::from_picos(1_000_000_000); // $0.001
    for m in 0..20 {
        minute(&mut d, m, cent);
    }
    // 10× a tenth of a cent a minute is $0.01/min: under the $0.05 floor.
    minute(&mut d, 20, Usd::from_picos(10_000_000_000));
    assert!(d.take_new().is_empty());
}

#[test]
fn gradual_growth_within_the_band_raises_nothing() {
    let mut d = AnomalyDetector::new(AnomalyRules::default());
    // +1 % a minute for three hours (6×): the bands follow.
    let mut picos: i128 = 1_000_000_000_000;
    for m in 0..180 {
        minute(&mut d, m, Usd::from_picos(picos));
        picos += picos / 100;
    }
    assert!(d.take_new().is_empty(), "{:?}", d.recent());
}

#[test]
fn hysteresis_one_alert_until_the_rate_is_back_in_the_band() {
    let mut d = AnomalyDetector::new(AnomalyRules::default());
    for m in 0..20 {
        minute(&mut d, m, dollars(1));
    }
    minute(&mut d, 20, dollars(10));
    assert_eq!(spend_kinds(&mut d).len(), 1);
    // Still high the next minute: the same spike.
    minute(&mut d, 21, dollars(10));
    assert!(spend_kinds(&mut d).is_empty());
    // Back to normal for a minute: minute 21 closes high (still raised) …
    minute(&mut d, 22, dollars(1));
    assert!(spend_kinds(&mut d).is_empty());
    // … minute 22 closes at $1, inside the band: re-armed, and a new
    // spike is a new alert.
    minute(&mut d, 23, dollars(10));
    let again = spend_kinds(&mut d);
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].0, AnomalyKind::Spend1m);
}

#[test]
fn a_sustained_rise_seen_by_the_five_minute_window() {
    let mut d = AnomalyDetector::new(AnomalyRules::default());
    for m in 0..30 {
        minute(&mut d, m, dollars(4));
    }
    // Two calls a minute of $3 each: the 1-minute rate $6 is z = 2 ÷ 1 = 2,
    // under 4; over five minutes the 1-minute band follows, the 5-minute one
    // lags but never reaches 4 either. Nothing.
    for m in 30..36 {
        d.set_clock(T0 + m * MIN);
        d.observe(Some(T0 + m * MIN), Some(dollars(3)), &agent("a"), 1, 1);
        d.observe(Some(T0 + m * MIN + 1), Some(dollars(3)), &agent("a"), 1, 1);
        d.tick(T0 + m * MIN + 30_000);
    }
    assert!(spend_kinds(&mut d).is_empty());
}

#[test]
fn late_and_future_calls() {
    let mut d = AnomalyDetector::new(AnomalyRules::default());
    d.set_clock(T0 + 200 * MIN);
    // More than two hours before the clock: history, left out.
    d.observe(Some(T0 + 60 * MIN), Some(dollars(1)), &agent("a"), 1, 1);
    // More than 5 minutes ahead of the clock: a wrong agent clock, left out.
    d.observe(Some(T0 + 206 * MIN), Some(dollars(1)), &agent("a"), 1, 1);
    assert_eq!(d.skipped, 2);
    // Three minutes ahead: within the tolerance, placed in its minute.
    d.observe(Some(T0 + 203 * MIN), Some(dollars(1)), &agent("a"), 1, 1);
    // A late call for a minute already closed still counts in windows
    // ending later (not in bands already learned).
    d.tick(T0 + 200 * MIN);
    d.observe(Some(T0 + 198 * MIN), Some(dollars(2)), &agent("a"), 1, 1);
    assert_eq!(d.skipped, 2);
    assert_eq!(d.window_sum(T0 / MIN + 200, 5).0, 2_000_000_000_000);
    assert_eq!(d.spend(T0 / MIN + 203), 1_000_000_000_000);
}

#[test]
fn a_first_tick_learns_from_the_hour_before_it() {
    let mut d = AnomalyDetector::new(AnomalyRules::default());
    // A backlog: 30 minutes of $1 read before the first tick.
    d.set_clock(T0 + 30 * MIN);
    for m in 0..30 {
        d.observe(Some(T0 + m * MIN), Some(dollars(1)), &agent("a"), 1, 1);
    }
    d.observe(Some(T0 + 30 * MIN), Some(dollars(10)), &agent("a"), 1, 1);
    d.tick(T0 + 30 * MIN + 1_000);
    assert_eq!(spend_kinds(&mut d), vec![(AnomalyKind::Spend1m, 36.0)]);
}

fn hop(d: &mut AnomalyDetector, at: i64, tokens: u64) -> Vec<Anomaly> {
    d.set_clock(at);
    d.observe(None, None, &agent("writer"), 3, tokens);
    d.take_new()
}

#[test]
fn a_hop_far_above_its_band_raises_once_per_cooldown() {
    let mut d = AnomalyDetector::new(AnomalyRules::default());
    for i in 0..12 {
        assert!(hop(&mut d, T0 + i, 10_000).is_empty());
    }
    // Mean 10,000, variance 0: spread 0.25 × 10,000 = 2,500;
    // z = (100,000 − 10,000) ÷ 2,500 = 36.
    let raised = hop(&mut d, T0 + 100, 100_000);
    assert_eq!(raised.len(), 1);
    let a = &raised[0];
    assert_eq!(a.kind, AnomalyKind::HopTokens);
    assert_eq!((&*a.subject, a.hop), ("writer", Some(3)));
    assert_eq!(a.z, 36.0);
    assert_eq!(a.observed, Level::Tokens(100_000));
    assert_eq!(a.expected, Level::Tokens(10_000));
    assert_eq!(
        a.message,
        "hop spike: writer hop 3 sent 100,000 tokens of input, usually 10,000 tokens (z 36.0)"
    );
    // Within the 10-minute cooldown: no second alert for the same key.
    assert!(hop(&mut d, T0 + 5 * MIN, 100_000).is_empty());
    // After it, a spike is news again.
    assert_eq!(hop(&mut d, T0 + 11 * MIN, 400_000).len(), 1);
}

#[test]
fn hop_warm_up_and_floor() {
    let mut d = AnomalyDetector::new(AnomalyRules::default());
    for i in 0..5 {
        hop(&mut d, T0 + i, 1_000);
    }
    assert!(hop(&mut d, T0 + 10, 100_000).is_empty(), "warm-up");
    let mut d = AnomalyDetector::new(AnomalyRules::default());
    for i in 0..20 {
        hop(&mut d, T0 + i, 100);
    }
    // z is huge, but 10,000 tokens is under the 20,000-token floor.
    assert!(hop(&mut d, T0 + 30, 10_000).is_empty(), "floor");
}

#[test]
fn hop_keys_are_capped() {
    let rules = AnomalyRules {
        max_hop_keys: 32,
        ..AnomalyRules::default()
    };
    let mut d = AnomalyDetector::new(rules);
    for i in 0..1_000 {
        d.observe(None, None, &agent(&format!("agent-{i}")), 1, 10);
        assert!(d.hop_keys() <= 32);
    }
    // The most recent key is kept.
    assert!(d.hops.contains_key(&(agent("agent-999"), 1)));
}

#[test]
fn disabled_observes_nothing() {
    let mut d = AnomalyDetector::new(AnomalyRules {
        enabled: false,
        ..AnomalyRules::default()
    });
    for m in 0..30 {
        minute(&mut d, m, dollars(if m == 29 { 100 } else { 1 }));
    }
    assert!(d.take_new().is_empty());
    assert_eq!(d.hop_keys(), 0);
}

#[test]
fn recent_is_bounded() {
    let mut d = AnomalyDetector::new(AnomalyRules {
        hop_cooldown_ms: 0,
        ..AnomalyRules::default()
    });
    for i in 0..12 {
        hop(&mut d, T0 + i, 1_000);
    }
    for i in 0..100 {
        hop(&mut d, T0 + 100 + i, 10_000_000);
    }
    assert_eq!(d.recent().len(), RECENT_KEPT);
    assert!(d.raised() > RECENT_KEPT as u64);
}

#[test]
fn json_of_an_anomaly() {
    let a = Anomaly {
        kind: AnomalyKind::Spend5m,
        at_ms: T0,
        subject: agent("5m"),
        hop: None,
        observed: Level::PerMinute(Usd::from_picos(2_800_000_000_000)),
        expected: Level::PerMinute(dollars(1)),
        z: 7.2,
        message: "m".into(),
    };
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        r#"{"kind":"spend_5m","at_ms":1800000000000,"subject":"5m","observed":2.8,"expected":1,"z":7.2,"message":"m"}"#
    );
}
