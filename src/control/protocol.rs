//! Messages of the control protocol (`docs/control-protocol.md`), shared by
//! the client (tokwatch) and the reference runtime (`tokwatch demo`).

use serde::{Deserialize, Serialize};

use crate::model::budget::{Limits, Scope};

pub const PROTOCOL_VERSION: u32 = 1;

/// Longest line either side accepts.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// A scope's budget with its version (and the change's idempotency key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionedBudget {
    pub scope: Scope,
    pub version: u64,
    /// The version in force at the runtime(s) when the change was made (the
    /// highest reported): a runtime with a newer one refuses the change as a
    /// [`CONFLICT`]. Absent in `budget.state` and in stores written before it
    /// existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub limits: Limits,
}

/// The `code` of a `budget.nack` refusing a change that is not based on the
/// version in force (another controller changed the scope since): the nack
/// carries the version and limits in force, so the client can rebase.
pub const CONFLICT: &str = "conflict";

/// The version in force for a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub scope: Scope,
    pub version: u64,
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Request {
    #[serde(rename = "hello")]
    Hello {
        protocol: u32,
        client: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    #[serde(rename = "budget.set")]
    Set {
        id: String,
        idempotency_key: String,
        scope: Scope,
        version: u64,
        /// See [`VersionedBudget::base_version`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_version: Option<u64>,
        limits: Limits,
    },
    #[serde(rename = "budget.sync")]
    Sync {
        id: String,
        budgets: Vec<VersionedBudget>,
    },
    #[serde(rename = "budget.list")]
    List { id: String },
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Reply {
    #[serde(rename = "hello")]
    Hello {
        protocol: u32,
        runtime: String,
        runtime_id: String,
        #[serde(default)]
        applied: Vec<Applied>,
    },
    #[serde(rename = "budget.ack")]
    Ack {
        id: String,
        scope: Scope,
        version: u64,
    },
    #[serde(rename = "budget.nack")]
    Nack {
        id: String,
        scope: Scope,
        version: u64,
        #[serde(default)]
        applied_version: u64,
        reason: String,
        /// [`CONFLICT`] when a newer budget set elsewhere is in force;
        /// absent when the limits themselves were refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// With [`CONFLICT`]: the limits in force (`applied_version`), absent
        /// when the scope has none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limits: Option<Limits>,
    },
    #[serde(rename = "budget.synced")]
    Synced { id: String },
    #[serde(rename = "budget.state")]
    State {
        id: String,
        budgets: Vec<VersionedBudget>,
    },
    #[serde(rename = "budget.exceeded")]
    Exceeded(Exceeded),
    #[serde(rename = "error")]
    Error { reason: String },
}

/// A runtime enforced a limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exceeded {
    pub run_id: String,
    #[serde(default)]
    pub hop: Option<u32>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub segment: Option<String>,
    pub limit_kind: String,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub tokens: Option<u64>,
    pub action: String,
    #[serde(default)]
    pub ts: Option<String>,
}

/// Why a line from the other side was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("line of {0} bytes exceeds the {MAX_LINE_BYTES}-byte limit")]
    TooLong(usize),
    #[error("not a protocol message: {0}")]
    Malformed(String),
    #[error("cannot encode the message: {0}")]
    Unencodable(String),
}

/// Parses one line (without its newline) as `T`, refusing oversized lines.
///
/// # Errors
/// See [`WireError`].
pub fn decode<T: for<'de> Deserialize<'de>>(line: &[u8]) -> Result<T, WireError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(WireError::TooLong(line.len()));
    }
    serde_json::from_slice(line).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Serializes a message as one line with its newline.
///
/// # Errors
/// The message cannot be serialized ([`WireError::Unencodable`]).
pub fn try_encode<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    let mut line =
        serde_json::to_vec(message).map_err(|e| WireError::Unencodable(e.to_string()))?;
    line.push(b'\n');
    Ok(line)
}

/// [`try_encode`] for a side that must answer something: a message that
/// cannot be serialized becomes an `error` message saying so (never an
/// empty line).
#[must_use]
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    try_encode(message).unwrap_or_else(|e| {
        let mut line = serde_json::json!({"type": "error", "reason": e.to_string()})
            .to_string()
            .into_bytes();
        line.push(b'\n');
        line
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::budget::BreachAction;

    #[test]
    fn messages_round_trip_in_the_documented_shape() {
        let set = Request::Set {
            id: "c1-17".into(),
            idempotency_key: "k".into(),
            scope: Scope::Agent("writer".into()),
            version: 7,
            base_version: None,
            limits: Limits {
                per_hop_limit: Some(9000),
                on_hop_breach: Some(BreachAction::Trim),
                ..Limits::default()
            },
        };
        let line = encode(&set);
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            "{\"type\":\"budget.set\",\"id\":\"c1-17\",\"idempotency_key\":\"k\",\"scope\":{\"kind\":\"agent\",\"name\":\"writer\"},\"version\":7,\"limits\":{\"per_hop_limit\":9000,\"on_hop_breach\":\"trim\"}}\n"
        );
        assert_eq!(decode::<Request>(&line[..line.len() - 1]).unwrap(), set);
        let nack: Reply = decode(br#"{"type":"budget.nack","id":"c1-17","scope":{"kind":"global"},"version":7,"applied_version":6,"reason":"no"}"#).unwrap();
        assert!(matches!(
            nack,
            Reply::Nack {
                applied_version: 6,
                ..
            }
        ));
        let exceeded: Reply = decode(br#"{"type":"budget.exceeded","run_id":"r","hop":4,"agent":"a","limit_kind":"per_hop","limit":9000,"tokens":12400,"action":"trim"}"#).unwrap();
        assert!(matches!(
            exceeded,
            Reply::Exceeded(Exceeded { hop: Some(4), .. })
        ));
    }

    #[test]
    fn base_versions_and_conflicts_are_optional_fields() {
        // A client that predates base_version, and one that sends it.
        let old: Request = decode(br#"{"type":"budget.set","id":"1","idempotency_key":"k","scope":{"kind":"global"},"version":2,"limits":{"per_hop_limit":5}}"#).unwrap();
        assert!(matches!(
            old,
            Request::Set {
                base_version: None,
                ..
            }
        ));
        let based = Request::Set {
            id: "1".into(),
            idempotency_key: "k".into(),
            scope: Scope::Global,
            version: 2,
            base_version: Some(1),
            limits: Limits {
                per_hop_limit: Some(5),
                ..Limits::default()
            },
        };
        let line = encode(&based);
        assert!(String::from_utf8_lossy(&line).contains("\"base_version\":1"));
        assert_eq!(decode::<Request>(&line[..line.len() - 1]).unwrap(), based);
        // A conflict carries what is in force; a plain nack has neither field.
        let conflict: Reply = decode(br#"{"type":"budget.nack","id":"1","scope":{"kind":"global"},"version":2,"applied_version":3,"reason":"r","code":"conflict","limits":{"per_hop_limit":9000}}"#).unwrap();
        assert!(matches!(
            conflict,
            Reply::Nack { code: Some(ref c), limits: Some(ref l), applied_version: 3, .. }
                if c == CONFLICT && l.per_hop_limit == Some(9000)
        ));
        let plain = encode(&Reply::Nack {
            id: "1".into(),
            scope: Scope::Global,
            version: 2,
            applied_version: 1,
            reason: "r".into(),
            code: None,
            limits: None,
        });
        let plain = String::from_utf8(plain).unwrap();
        assert!(
            !plain.contains("code") && !plain.contains("limits"),
            "{plain}"
        );
    }

    #[test]
    fn oversized_and_malformed_lines_are_refused() {
        let long = vec![b' '; MAX_LINE_BYTES + 1];
        assert_eq!(
            decode::<Reply>(&long),
            Err(WireError::TooLong(MAX_LINE_BYTES + 1))
        );
        assert!(matches!(
            decode::<Reply>(b"{\"type\":\"budget.ack\"}"),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            decode::<Reply>(b"[1,2]"),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            decode::<Reply>(b"{\"type\":\"surprise\"}"),
            Err(WireError::Malformed(_))
        ));
        let unknown_limit: Result<Request, _> = decode(br#"{"type":"budget.set","id":"1","idempotency_key":"k","scope":{"kind":"global"},"version":1,"limits":{"per_hop":5}}"#);
        assert!(
            unknown_limit.is_err(),
            "unknown limit names are refused, not ignored"
        );
    }
}
