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

/// A scope whose version is already `u64::MAX`: no change can be numbered
/// above it (versions never wrap to 0, which every runtime would take for
/// an old version or, worse, acknowledge).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{scope} is at v{version}: no version above it, so no change can be made (versions never wrap to 0)"
)]
pub struct VersionsExhausted {
    pub scope: Scope,
    pub version: u64,
}

/// What the user wants in force, per scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub budgets: BTreeMap<Scope, VersionedBudget>,
    /// Scopes whose entry is not the user's change but the budget a runtime
    /// had in force when it refused the user's change as a conflict (the
    /// runtime is the source of truth): the runtime it was taken from. A
    /// refused change is never pushed again; the adopted budget is (a
    /// runtime that restarted without it gets it back).
    pub adopted: BTreeMap<Scope, String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    #[serde(default, rename = "budget")]
    budgets: Vec<VersionedBudget>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    adopted: Vec<AdoptedEntry>,
}

/// `[[adopted]]` in the store: a scope whose entry was adopted from a runtime.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdoptedEntry {
    scope: Scope,
    from: String,
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
        let budgets: BTreeMap<Scope, VersionedBudget> = file
            .budgets
            .into_iter()
            .map(|b| (b.scope.clone(), b))
            .collect();
        let adopted = file
            .adopted
            .into_iter()
            .filter(|a| budgets.contains_key(&a.scope))
            .map(|a| (a.scope, a.from))
            .collect();
        Ok(DesiredState { budgets, adopted })
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
            adopted: self
                .adopted
                .iter()
                .map(|(scope, from)| AdoptedEntry {
                    scope: scope.clone(),
                    from: from.clone(),
                })
                .collect(),
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
    ///
    /// Versions never wrap: a scope already at `u64::MAX` gets `u64::MAX`
    /// again, which every runtime refuses (it is not above the version in
    /// force). [`DesiredState::try_set`] refuses to make such a change.
    pub fn set(&mut self, scope: Scope, limits: Limits, base: u64) -> VersionedBudget {
        self.set_above(scope, limits, base, base)
    }

    /// [`DesiredState::set`], refusing (and recording nothing) when no
    /// version is left above the ones known for the scope.
    ///
    /// # Errors
    /// The scope is at `u64::MAX` here or at a runtime.
    pub fn try_set(
        &mut self,
        scope: Scope,
        limits: Limits,
        base: u64,
    ) -> Result<VersionedBudget, VersionsExhausted> {
        self.next_version(&scope, base, base)?;
        Ok(self.set_above(scope, limits, base, base))
    }

    /// The version of the next change of `scope`: above what is desired
    /// here, `base` and `seen`.
    ///
    /// # Errors
    /// One of them is `u64::MAX`: versions never wrap to 0.
    pub fn next_version(
        &self,
        scope: &Scope,
        base: u64,
        seen: u64,
    ) -> Result<u64, VersionsExhausted> {
        let highest = self.version(scope).max(base).max(seen);
        highest.checked_add(1).ok_or_else(|| VersionsExhausted {
            scope: scope.clone(),
            version: highest,
        })
    }

    /// [`DesiredState::set`] when runtimes reported versions newer than the
    /// one the change is based on (`seen`, e.g. while the editor was open):
    /// the version is above `seen` too (versions are ordered per scope at
    /// the runtime, never reused), while `base_version` stays `base`, so a
    /// runtime that moved on since still refuses the change as a conflict.
    pub fn set_above(
        &mut self,
        scope: Scope,
        limits: Limits,
        base: u64,
        seen: u64,
    ) -> VersionedBudget {
        // Saturating: see `set` (the editor path cannot fail here).
        let version = self.next_version(&scope, base, seen).unwrap_or(u64::MAX);
        let budget = VersionedBudget {
            scope: scope.clone(),
            version,
            base_version: Some(base),
            idempotency_key: Some(new_key()),
            limits,
        };
        self.adopted.remove(&scope);
        self.budgets.insert(scope, budget.clone());
        budget
    }

    /// Adopts what runtime `from` has in force for `in_force.scope` as the
    /// desired state of the scope, in place of a change it refused as a
    /// conflict. `None`: the runtime has nothing in force there, so nothing
    /// is wanted. Returns the limits the refused change wanted.
    pub fn adopt(
        &mut self,
        scope: &Scope,
        in_force: Option<VersionedBudget>,
        from: &str,
    ) -> Option<Limits> {
        let refused = self.budgets.remove(scope).map(|b| b.limits);
        self.adopted.remove(scope);
        if let Some(budget) = in_force {
            let budget = VersionedBudget {
                scope: scope.clone(),
                // Based on itself: a runtime that lost it (restarted) takes
                // it back; one that has it acknowledges it (same key).
                base_version: Some(budget.version),
                ..budget
            };
            self.budgets.insert(scope.clone(), budget);
            self.adopted.insert(scope.clone(), from.to_owned());
        }
        refused
    }

    #[must_use]
    pub fn limits(&self) -> crate::model::budget::LimitsByScope {
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
    /// `change` (the user's edit), `result` (a runtime's answer) or `adopt`
    /// (a refused change replaced by what the runtime has in force).
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

/// Appends the record of an adoption: runtime `runtime` refused version
/// `refused` of `scope` (`before`, the user's change) as a conflict, and
/// what it has in force (`adopted`, `None`: nothing) became the desired state.
///
/// # Errors
/// The log cannot be written.
pub fn audit_adopt(
    store: &Path,
    scope: &Scope,
    refused: u64,
    before: Option<&Limits>,
    adopted: Option<&VersionedBudget>,
    runtime: &str,
) -> anyhow::Result<()> {
    let result = match adopted {
        Some(b) => format!(
            "v{refused} refused as a conflict; adopted v{} in force there (set by another controller)",
            b.version
        ),
        None => format!(
            "v{refused} refused as a conflict; nothing is in force there, nothing is wanted"
        ),
    };
    audit(
        &audit_path(store),
        &AuditRecord {
            ts: now_rfc3339(),
            event: "adopt",
            scope,
            version: adopted.map_or(refused, |b| b.version),
            idempotency_key: adopted.and_then(|b| b.idempotency_key.as_deref()),
            before,
            after: adopted.map(|b| &b.limits),
            runtime: Some(runtime),
            result: Some(&result),
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
    fn a_change_is_numbered_above_every_version_seen_and_based_on_the_edit() {
        let mut state = DesiredState::default();
        let hop = |n| Limits {
            per_hop_limit: Some(n),
            ..Limits::default()
        };
        // Edited from v99; meanwhile a runtime reported v100.
        let change = state.set_above(Scope::Global, hop(25_000), 99, 100);
        assert_eq!((change.version, change.base_version), (101, Some(99)));
        // Never below our own either.
        let again = state.set_above(Scope::Global, hop(26_000), 99, 100);
        assert_eq!(again.version, 102);
    }

    #[test]
    fn versions_never_wrap() {
        let mut state = DesiredState::default();
        let hop = |n| Limits {
            per_hop_limit: Some(n),
            ..Limits::default()
        };
        // A runtime at the last version: the change is refused, nothing recorded.
        assert_eq!(
            state.try_set(Scope::Global, hop(1), u64::MAX),
            Err(VersionsExhausted {
                scope: Scope::Global,
                version: u64::MAX,
            })
        );
        assert!(state.budgets.is_empty());
        assert_eq!(
            state
                .try_set(Scope::Global, hop(1), u64::MAX - 1)
                .map(|b| b.version),
            Ok(u64::MAX)
        );
        // Our own store at the last version: refused too.
        assert!(state.try_set(Scope::Global, hop(2), 0).is_err());
        // The editor's path saturates (a runtime refuses it) instead of wrapping to 0.
        assert_eq!(
            state.set_above(Scope::Global, hop(3), 0, 0).version,
            u64::MAX
        );
    }

    #[test]
    fn an_adopted_budget_replaces_the_refused_change_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budgets.toml");
        let mut state = DesiredState::default();
        let ours = state.set(
            Scope::Global,
            Limits {
                per_hop_limit: Some(25_000),
                ..Limits::default()
            },
            99,
        );
        let theirs = VersionedBudget {
            scope: Scope::Global,
            version: 100,
            base_version: None,
            idempotency_key: Some("theirs".into()),
            limits: Limits {
                per_hop_limit: Some(4000),
                ..Limits::default()
            },
        };
        let refused = state.adopt(&Scope::Global, Some(theirs.clone()), "unix:/a");
        assert_eq!(refused, Some(ours.limits));
        let adopted = &state.budgets[&Scope::Global];
        assert_eq!(
            (adopted.version, adopted.base_version, &adopted.limits),
            (100, Some(100), &theirs.limits)
        );
        assert_eq!(adopted.idempotency_key.as_deref(), Some("theirs"));
        assert_eq!(state.adopted[&Scope::Global], "unix:/a");
        state.save(&path).unwrap();
        assert_eq!(DesiredState::load(&path).unwrap(), state);
        // The user's next change is theirs again, not adopted.
        state.set(Scope::Global, theirs.limits.clone(), 100);
        assert!(state.adopted.is_empty());
        // Nothing in force there: nothing wanted.
        state.adopt(&Scope::Global, None, "unix:/a");
        assert!(state.budgets.is_empty() && state.adopted.is_empty());
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
