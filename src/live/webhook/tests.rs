#![allow(clippy::unwrap_used)]

use super::*;
use crate::model::anomaly::AnomalyKind;
use crate::types::money::Usd;

fn anomaly(i: i64, subject: &str) -> Anomaly {
    Anomaly {
        kind: AnomalyKind::HopTokens,
        at_ms: 1_800_000_000_000 + i,
        subject: Arc::from(subject),
        hop: Some(2),
        observed: Level::Tokens(100_000),
        expected: Level::Tokens(10_000),
        z: 36.004,
        message: format!("hop spike: {subject} hop 2"),
    }
}

#[test]
fn a_full_queue_drops_the_oldest_and_counts() {
    let queue = Arc::new(Queue::default());
    let sink = AlertSink {
        queues: vec![queue.clone()],
    };
    for i in 0..(QUEUE as i64 + 6) {
        sink.push(&anomaly(i, "a"));
    }
    assert_eq!(sink.dropped(), 6);
    let items = queue.items.lock().unwrap();
    assert_eq!(items.len(), QUEUE);
    assert_eq!(items[0].at_ms, 1_800_000_000_006);
}

#[test]
fn the_payload_is_slack_text_plus_the_figures() {
    let a = anomaly(0, "<!channel> & co");
    let json = serde_json::to_string(&payload(&a)).unwrap();
    assert_eq!(
        json,
        r#"{"text":"tokwatch: hop spike: &lt;!channel&gt; &amp; co hop 2","tokwatch":{"kind":"hop_tokens","at":"2027-01-15T08:00:00.000Z","at_ms":1800000000000,"subject":"<!channel> & co","hop":2,"observed":100000,"expected":10000,"unit":"tokens","z":36.0,"message":"hop spike: <!channel> & co hop 2"}}"#
    );
    let spend = Anomaly {
        kind: AnomalyKind::Spend1m,
        hop: None,
        observed: Level::PerMinute(Usd::from_picos(10_000_000_000_000)),
        expected: Level::PerMinute(Usd::from_picos(1_250_000_000_000)),
        ..a
    };
    let json = serde_json::to_string(&payload(&spend)).unwrap();
    assert!(
        json.contains(r#""observed":10,"expected":1.25,"unit":"usd_per_minute""#),
        "{json}"
    );
    assert!(!json.contains(r#""hop""#), "{json}");
}

#[test]
fn backoff_doubles_with_jitter_and_is_capped() {
    let policy = RetryPolicy::default();
    for n in 1..=4 {
        let full = Duration::from_millis(500 * (1 << (n - 1)));
        let wait = backoff(policy, n);
        assert!(wait >= full / 2 && wait <= full, "{n}: {wait:?}");
    }
    assert!(backoff(policy, 30) <= policy.max_backoff);
}
