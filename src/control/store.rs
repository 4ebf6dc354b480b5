//! The desired budget state, persisted as TOML (written atomically, 0600),
//! and the append-only audit log of every change and every runtime's answer.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rand::RngExt as _;
use serde::{Deserialize, Serialize};

use super::protocol::VersionedBudget;
use crate::model::budget::{Limits, Scope};

/// The default store: `$XDG_STATE_HOME/tokwatch/budgets.toml`.
#[must_use]
pub fn default_path() -> Option<PathBuf> {
    crate::logging::default_log_file()
        .and_then(|log| log.parent().map(|dir| dir.join("budgets.toml")))
}

/// What the user wants in force, per scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub budgets: BTreeMap<Scope, VersionedBudget>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    #[serde(default, rename = "budget")]
    budgets: Vec<VersionedBudget>,
}

/// A fresh idempotency key (128 random bits, hex).
#[must_use]
pub fn new_key() -> String {
    let mut rng = rand::rng();
    format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>())
}

impl DesiredState {
    /// Loads the store; a missing file is an empty state.
    ///
    /// # Errors
    /// The file cannot be read or is not a valid store.
    pub fn load(path: &Path) -> anyhow::Result<DesiredState> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DesiredState::default());
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read budgets file '{}'", path.display()));
            }
        };
        let file: StoreFile =
            toml::from_str(&text).with_context(|| format!("budgets file '{}'", path.display()))?;
        Ok(DesiredState {
            budgets: file
                .budgets
                .into_iter()
                .map(|b| (b.scope.clone(), b))
                .collect(),
        })
    }

    /// Writes the store atomically (temporary file, fsync, rename), mode 0600.
    ///
    /// # Errors
    /// The directory or file cannot be written.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create '{}'", dir.display()))?;
        let file = StoreFile {
            budgets: self.budgets.values().cloned().collect(),
        };
        let text = format!(
            "# tokwatch desired budgets: written by tokwatch, pushed to every --control runtime.\n{}",
            toml::to_string_pretty(&file).context("cannot serialize budgets")?
        );
        let temp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name()
                .map_or("budgets".into(), |n| n.to_string_lossy()),
            std::process::id()
        ));
        let mut out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .with_context(|| format!("cannot write '{}'", temp.display()))?;
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&temp, path)
            .with_context(|| format!("cannot replace '{}'", path.display()))?;
        Ok(())
    }

    /// The highest version known for `scope` here or at any runtime.
    #[must_use]
    pub fn version(&self, scope: &Scope) -> u64 {
        self.budgets.get(scope).map_or(0, |b| b.version)
    }

    /// Records a change of `scope` to `limits`, based on `base` (the
    /// highest version a runtime reported in force when the user made it),
    /// with a version above both that and what is desired here, and returns
    /// it. A runtime with a newer version than `base` refuses it.
    pub fn set(&mut self, scope: Scope, limits: Limits, base: u64) -> VersionedBudget {
        let version = self.version(&scope).max(base) + 1;
        let budget = VersionedBudget {
            scope: scope.clone(),
            version,
            base_version: Some(base),
            idempotency_key: Some(new_key()),
            limits,
        };
        self.budgets.insert(scope, budget.clone());
        budget
    }

    #[must_use]
    pub fn limits(&self) -> BTreeMap<Scope, Limits> {
        self.budgets
            .iter()
            .map(|(s, b)| (s.clone(), b.limits.clone()))
            .collect()
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord<'a> {
    /// RFC 3339.
    pub ts: String,
    /// `change` (the user's edit) or `result` (a runtime's answer).
    pub event: &'a str,
    pub scope: &'a Scope,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<&'a Limits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<&'a Limits>,
    /// The runtime a result is from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<&'a str>,
    /// `ack`, `nack: reason`, `unreachable: …`, `timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'a str>,
    /// Who made the change (`$USER`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// The audit log beside a store: `budgets-audit.jsonl`.
#[must_use]
pub fn audit_path(store: &Path) -> PathBuf {
    let stem = store
        .file_stem()
        .map_or_else(|| "budgets".into(), |s| s.to_string_lossy().into_owned());
    store.with_file_name(format!("{stem}-audit.jsonl"))
}

/// Appends one record (0600, flushed and synced: survives a crash).
///
/// # Errors
/// The log cannot be written.
pub fn audit(path: &Path, record: &AuditRecord<'_>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write the audit log '{}'", path.display()))?;
    file.write_all(&line)?;
    file.sync_data()?;
    Ok(())
}

/// Appends the record of a user's change of `budget` (from `before`).
///
/// # Errors
/// The log cannot be written.
pub fn audit_change(
    store: &Path,
    budget: &VersionedBudget,
    before: Option<&Limits>,
) -> anyhow::Result<()> {
    audit(
        &audit_path(store),
        &AuditRecord {
            ts: now_rfc3339(),
            event: "change",
            scope: &budget.scope,
            version: budget.version,
            idempotency_key: budget.idempotency_key.as_deref(),
            before,
            after: Some(&budget.limits),
            runtime: None,
            result: None,
            user: user(),
        },
    )
}

/// Appends a runtime's answer (`ack`, `nack: reason`, `timeout` …) to version
/// `version` of `scope`.
///
/// # Errors
/// The log cannot be written.
pub fn audit_result(
    store: &Path,
    scope: &Scope,
    version: u64,
    key: Option<&str>,
    runtime: &str,
    result: &str,
) -> anyhow::Result<()> {
    audit(
        &audit_path(store),
        &AuditRecord {
            ts: now_rfc3339(),
            event: "result",
            scope,
            version,
            idempotency_key: key,
            before: None,
            after: None,
            runtime: Some(runtime),
            result: Some(result),
            user: None,
        },
    )
}

/// Now, RFC 3339 (milliseconds, UTC).
#[must_use]
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The user making changes, for the audit log.
#[must_use]
pub fn user() -> Option<String> {
    std::env::var("USER").ok().filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_store_round_trips_atomically_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("budgets.toml");
        let mut state = DesiredState::load(&path).unwrap();
        assert!(state.budgets.is_empty(), "a missing file is an empty state");
        let first = state.set(
            Scope::Global,
            Limits {
                per_hop_limit: Some(9000),
                ..Limits::default()
            },
            0,
        );
        assert_eq!(first.version, 1);
        let second = state.set(
            Scope::Agent("writer".into()),
            Limits {
                total_run_limit: Some(60_000),
                ..Limits::default()
            },
            4,
        );
        assert_eq!(second.version, 5, "above what a runtime reported");
        assert_eq!(second.base_version, Some(4), "based on it");
        assert_ne!(first.idempotency_key, second.idempotency_key);
        state.save(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(DesiredState::load(&path).unwrap(), state);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_broken_store_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budgets.toml");
        std::fs::write(&path, "[[budget]]\nsurprise = 1\n").unwrap();
        let err = format!("{:#}", DesiredState::load(&path).unwrap_err());
        assert!(err.contains("budgets.toml"), "{err}");
    }

    #[test]
    fn audit_lines_append_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let log = audit_path(&dir.path().join("budgets.toml"));
        assert!(log.ends_with("budgets-audit.jsonl"));
        let limits = Limits {
            per_hop_limit: Some(1),
            ..Limits::default()
        };
        for result in ["ack", "nack: too low"] {
            audit(
                &log,
                &AuditRecord {
                    ts: now_rfc3339(),
                    event: "result",
                    scope: &Scope::Global,
                    version: 2,
                    idempotency_key: Some("k"),
                    before: None,
                    after: Some(&limits),
                    runtime: Some("unix:/x"),
                    result: Some(result),
                    user: None,
                },
            )
            .unwrap();
        }
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("\"result\":\"nack: too low\""));
        assert_eq!(
            std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
