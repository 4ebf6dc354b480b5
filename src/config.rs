//! Settings: built-in defaults, patched by the config file, resolved and
//! validated once at startup into [`Settings`].
//!
//! Precedence, lowest first: built-in defaults < config file < environment
//! (`NO_COLOR`, `TOKWATCH_*`) < command line. This module covers the first
//! two and finds the file; the command line layers its flags on top, and
//! [`crate::ui::theme::Theme::resolve`] applies `NO_COLOR` and `--theme`.
//!
//! - [`file`](mod@file): [`ConfigFile`], the file as written (serde, all optional).
//! - [`keys`]: key strings, [`Action`]s and the [`Keymap`].
//! - [`theme`]: theme files ([`ThemeFile`]) and the built-in themes.
//! - [`print`]: the bindings in force, as `tokwatch config --print-bindings` shows them.
//!
//! The format is documented in `docs/config.md`; every option, with its
//! default, is in `config/tokwatch.sample.toml` (a test keeps them equal).

pub mod file;
pub mod keys;
pub mod print;
pub mod theme;

use std::ffi::OsString;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, Visitor};

use crate::model::advisor::{AdvisorRules, Confidence, RouteRule, RouteTarget};
use crate::model::anomaly::AnomalyRules;
use crate::model::duplicates::{DuplicateRules, MAX_HAMMING};
use crate::model::insights::BleedRules;
use crate::model::ledger::SeriesCaps;
use crate::types::money::Usd;

pub use file::ConfigFile;
pub use keys::{Action, KeyBinding, Keymap, KeymapError};
pub use theme::{ThemeError, ThemeFile};

/// The environment variable naming the config file (same as `--config`).
pub const CONFIG_ENV: &str = "TOKWATCH_CONFIG";

/// `config/tokwatch.sample.toml`: every option at its default, commented
/// (`tokwatch config --print-default`; a test keeps it equal to
/// [`Settings::default`]).
pub const SAMPLE: &str = include_str!("../config/tokwatch.sample.toml");

/// Everything the config file decides, resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Theme name or path (see [`crate::ui::theme::Theme::load`]).
    pub theme: String,
    /// `[theme.overrides]`: roles patched on top of the theme.
    pub theme_overrides: ThemeFile,
    /// `[ui]`.
    pub ui: UiSettings,
    /// `[insights]`.
    pub insights: InsightSettings,
    /// `[advisor]`.
    pub advisor: AdvisorRules,
    /// `[metrics]`: caps on what `--metrics` exports.
    pub metrics: SeriesCaps,
    /// `[anomalies]`: the spike detector's thresholds.
    pub anomalies: AnomalyRules,
    /// `[duplicates]`: the duplicate-prompt index's thresholds (defaults:
    /// the model's [`DuplicateRules::default`]).
    pub duplicates: DuplicateRules,
    /// Defaults with `[bindings]` applied.
    pub keymap: Keymap,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            theme: theme::DEFAULT_THEME.to_owned(),
            theme_overrides: ThemeFile::default(),
            ui: UiSettings::default(),
            insights: InsightSettings::default(),
            advisor: AdvisorRules::default(),
            metrics: SeriesCaps::default(),
            anomalies: AnomalyRules::default(),
            duplicates: DuplicateRules::default(),
            keymap: Keymap::default(),
        }
    }
}

/// `[ui]`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UiSettings {
    /// Most frames drawn per second (a frame is drawn only when something
    /// changed).
    pub max_fps: u32,
    /// How often the aggregator publishes a snapshot.
    pub snapshot_interval: Duration,
    /// Mouse support.
    pub mouse: bool,
    /// Length of the live event tail.
    pub recent_events: usize,
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings {
            max_fps: 30,
            snapshot_interval: Duration::from_millis(100),
            mouse: true,
            recent_events: 500,
        }
    }
}

/// `[insights]`, resolved: thresholds of the bleeding-hop rule (the rule
/// itself is in `docs/insights.md`). Defaults are the model's
/// [`BleedRules::default`], so the two cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InsightSettings {
    /// A hop whose input is at least this many times the run's first hop's …
    pub growth_over_first: f64,
    /// … and at least this many tokens …
    pub min_input_tokens: u64,
    /// … with at least this share uncached, bleeds.
    pub min_uncached_share: f64,
    /// A hop re-sent the previous hop's history when its input is at most
    /// this share smaller than the previous hop's.
    pub resend_tolerance: f64,
    /// A hop taking at least this share of its run's cost bleeds …
    pub cost_share: f64,
    /// … in a run of at least this many hops.
    pub min_hops_for_share: usize,
}

impl Default for InsightSettings {
    fn default() -> Self {
        let rules = BleedRules::default();
        InsightSettings {
            growth_over_first: rules.growth_over_first,
            min_input_tokens: rules.min_input_tokens,
            min_uncached_share: rules.min_uncached_share,
            resend_tolerance: rules.resend_tolerance,
            cost_share: rules.cost_share,
            min_hops_for_share: rules.min_hops_for_share,
        }
    }
}

impl InsightSettings {
    /// The model's rules with these thresholds (no per-hop limit: that comes
    /// from budgets, not from the config file).
    #[must_use]
    pub fn bleed_rules(&self) -> BleedRules {
        BleedRules {
            growth_over_first: self.growth_over_first,
            min_input_tokens: self.min_input_tokens,
            min_uncached_share: self.min_uncached_share,
            resend_tolerance: self.resend_tolerance,
            cost_share: self.cost_share,
            min_hops_for_share: self.min_hops_for_share,
            per_hop_limit: None,
        }
    }
}

/// Why the config file's contents are not valid settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// TOML syntax, an unknown key, a wrong type, a bad colour, key, action
    /// or duration (toml's message has the line and the key).
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// A value outside its allowed range.
    #[error("{key} = {value} is out of range (allowed: {allowed})")]
    OutOfRange {
        /// `[section] key`.
        key: &'static str,
        /// The value as written.
        value: String,
        /// The allowed range, readable.
        allowed: &'static str,
    },
    /// `[bindings]` conflicts.
    #[error(transparent)]
    Keymap(#[from] KeymapError),
}

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config`/`TOKWATCH_CONFIG` names a file that does not exist.
    #[error("config file '{}' does not exist", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("cannot read config file '{}': {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file's contents are not valid.
    #[error("config file '{}': {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: SettingsError,
    },
}

impl Settings {
    /// Settings from a config file's text.
    ///
    /// # Errors
    /// See [`SettingsError`].
    pub fn from_toml(text: &str) -> Result<Settings, SettingsError> {
        Settings::from_file(ConfigFile::parse(text)?)
    }

    /// The defaults patched by `file`, validated.
    ///
    /// # Errors
    /// A value out of range, or conflicting bindings.
    pub fn from_file(file: ConfigFile) -> Result<Settings, SettingsError> {
        let mut settings = Settings::default();
        if let Some(section) = file.theme {
            if let Some(name) = section.name {
                settings.theme = name;
            }
            if let Some(overrides) = section.overrides {
                settings.theme_overrides = overrides;
            }
        }
        if let Some(ui) = file.ui {
            let s = &mut settings.ui;
            if let Some(fps) = ui.max_fps {
                s.max_fps = in_range("[ui] max-fps", fps, 1..=120, "1 to 120")?;
            }
            if let Some(interval) = ui.snapshot_interval {
                let interval = interval.0;
                if !(Duration::from_millis(20)..=Duration::from_secs(10)).contains(&interval) {
                    return Err(SettingsError::OutOfRange {
                        key: "[ui] snapshot-interval",
                        value: format!("\"{}\"", humantime::format_duration(interval)),
                        allowed: "\"20ms\" to \"10s\"",
                    });
                }
                s.snapshot_interval = interval;
            }
            if let Some(mouse) = ui.mouse {
                s.mouse = mouse;
            }
            if let Some(n) = ui.recent_events {
                s.recent_events = in_range("[ui] recent-events", n, 10..=100_000, "10 to 100000")?;
            }
        }
        if let Some(insights) = file.insights {
            let s = &mut settings.insights;
            if let Some(growth) = insights.growth_over_first {
                // Written so that NaN fails too.
                if !(growth > 1.0 && growth.is_finite()) {
                    return Err(SettingsError::OutOfRange {
                        key: "[insights] growth-over-first",
                        value: growth.to_string(),
                        allowed: "a number above 1.0",
                    });
                }
                s.growth_over_first = growth;
            }
            if let Some(n) = insights.min_input_tokens {
                s.min_input_tokens =
                    in_range("[insights] min-input-tokens", n, 0..=i64::MAX, "0 or more")?;
            }
            for (key, value, slot) in [
                (
                    "[insights] min-uncached-share",
                    insights.min_uncached_share,
                    &mut s.min_uncached_share,
                ),
                (
                    "[insights] resend-tolerance",
                    insights.resend_tolerance,
                    &mut s.resend_tolerance,
                ),
                (
                    "[insights] cost-share",
                    insights.cost_share,
                    &mut s.cost_share,
                ),
            ] {
                if let Some(share) = value {
                    *slot = share_in_range(key, share)?;
                }
            }
            if let Some(n) = insights.min_hops_for_share {
                s.min_hops_for_share = in_range(
                    "[insights] min-hops-for-share",
                    n,
                    1..=i64::MAX,
                    "1 or more",
                )?;
            }
        }
        if let Some(advisor) = file.advisor {
            advisor_rules(&mut settings.advisor, advisor)?;
        }
        if let Some(duplicates) = file.duplicates {
            let rules = &mut settings.duplicates;
            if let Some(k) = duplicates.max_hamming {
                rules.max_hamming = in_range(
                    "[duplicates] max-hamming",
                    k,
                    0..=i64::from(MAX_HAMMING),
                    "0 to 16",
                )?;
            }
            if let Some(n) = duplicates.capacity {
                rules.capacity = in_range(
                    "[duplicates] capacity",
                    n,
                    16..=10_000_000,
                    "16 to 10000000",
                )?;
            }
        }
        if let Some(metrics) = file.metrics {
            let caps = &mut settings.metrics;
            for (key, value, slot, range, allowed) in [
                (
                    "[metrics] max-agents",
                    metrics.max_agents,
                    &mut caps.agents,
                    1..=100_000,
                    "1 to 100000",
                ),
                (
                    "[metrics] max-segments",
                    metrics.max_segments,
                    &mut caps.segments,
                    1..=100_000,
                    "1 to 100000",
                ),
                (
                    "[metrics] max-models",
                    metrics.max_models,
                    &mut caps.models,
                    1..=100_000,
                    "1 to 100000",
                ),
                (
                    "[metrics] max-series",
                    metrics.max_series,
                    &mut caps.series,
                    1..=1_000_000,
                    "1 to 1000000",
                ),
                (
                    "[metrics] max-label-bytes",
                    metrics.max_label_bytes,
                    &mut caps.label_bytes,
                    16..=4_096,
                    "16 to 4096",
                ),
            ] {
                if let Some(n) = value {
                    *slot = in_range(key, n, range, allowed)?;
                }
            }
        }
        if let Some(section) = file.anomalies {
            settings.anomalies = anomaly_rules(&section)?;
        }
        if let Some(bindings) = file.bindings {
            settings.keymap = Keymap::new(&bindings)?;
        }
        Ok(settings)
    }
}

/// `[anomalies]` over the defaults, validated.
fn anomaly_rules(section: &file::AnomaliesSection) -> Result<AnomalyRules, SettingsError> {
    let mut rules = AnomalyRules::default();
    let out_of_range = |key, value: String, allowed| SettingsError::OutOfRange {
        key,
        value,
        allowed,
    };
    if let Some(enabled) = section.enabled {
        rules.enabled = enabled;
    }
    // Written so that NaN fails too.
    if let Some(z) = section.z {
        if !(z > 0.0 && z <= 1_000.0) {
            return Err(out_of_range(
                "[anomalies] z",
                z.to_string(),
                "above 0 to 1000",
            ));
        }
        rules.z = z;
    }
    if let Some(rearm) = section.rearm_z {
        if !(rearm >= 0.0 && rearm < rules.z) {
            return Err(out_of_range(
                "[anomalies] rearm-z",
                rearm.to_string(),
                "0 or more and below z",
            ));
        }
        rules.rearm_z = rearm;
    } else if rules.rearm_z >= rules.z {
        rules.rearm_z = rules.z / 2.0;
    }
    if let Some(n) = section.min_samples {
        rules.min_samples = in_range("[anomalies] min-samples", n, 1..=100_000, "1 to 100000")?;
    }
    if let Some(h) = section.half_life {
        if !(1.0..=100_000.0).contains(&h) {
            return Err(out_of_range(
                "[anomalies] half-life",
                h.to_string(),
                "1 to 100000",
            ));
        }
        rules.half_life = h;
    }
    if let Some(share) = section.min_spread {
        rules.min_spread = share_in_range("[anomalies] min-spread", share)?;
    }
    if let Some(rate) = section.min_rate {
        rules.min_rate = Usd::from_reported_f64(rate)
            .ok()
            .filter(|usd| *usd >= Usd::ZERO && rate <= 1_000_000.0)
            .ok_or_else(|| {
                out_of_range(
                    "[anomalies] min-rate",
                    rate.to_string(),
                    "0 to 1000000 (dollars a minute)",
                )
            })?;
    }
    if let Some(n) = section.hop_min_tokens {
        rules.hop_min_tokens =
            in_range("[anomalies] hop-min-tokens", n, 0..=i64::MAX, "0 or more")?;
    }
    if let Some(cooldown) = section.hop_cooldown {
        let cooldown = cooldown.0;
        if cooldown > Duration::from_secs(24 * 3600) {
            return Err(out_of_range(
                "[anomalies] hop-cooldown",
                format!("\"{}\"", humantime::format_duration(cooldown)),
                "\"0s\" to \"24h\"",
            ));
        }
        rules.hop_cooldown_ms = i64::try_from(cooldown.as_millis()).unwrap_or(i64::MAX);
    }
    if let Some(n) = section.max_hop_keys {
        rules.max_hop_keys = in_range(
            "[anomalies] max-hop-keys",
            n,
            16..=1_000_000,
            "16 to 1000000",
        )?;
    }
    Ok(rules)
}

/// Reads a table key through a check, so that an unknown name (a theme role,
/// an action) is reported at the key itself rather than at its table.
struct TableKey<F>(F);

impl<'de, T, F: FnOnce(&str) -> Result<T, String>> DeserializeSeed<'de> for TableKey<F> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for TableKey<F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<T, E> {
        (self.0)(name).map_err(E::custom)
    }
}

/// `value` converted to `T` when it is in `range`.
fn in_range<T: TryFrom<i64>>(
    key: &'static str,
    value: i64,
    range: RangeInclusive<i64>,
    allowed: &'static str,
) -> Result<T, SettingsError> {
    let out_of_range = || SettingsError::OutOfRange {
        key,
        value: value.to_string(),
        allowed,
    };
    if !range.contains(&value) {
        return Err(out_of_range());
    }
    T::try_from(value).map_err(|_| out_of_range())
}

/// A share must be in 0..=1 (NaN is not).
/// `[advisor]` over the default rules.
fn advisor_rules(
    rules: &mut AdvisorRules,
    section: file::AdvisorSection,
) -> Result<(), SettingsError> {
    let bad = |key: &'static str, value: String, allowed: &'static str| SettingsError::OutOfRange {
        key,
        value,
        allowed,
    };
    if let Some(tasks) = section.simple_tasks {
        rules.simple_tasks = tasks;
    }
    if let Some(targets) = section.route_targets {
        rules.route_targets = targets;
    }
    if let Some(n) = section.trim_limit {
        rules.trim_limit = Some(in_range(
            "[advisor] trim-limit",
            n,
            1..=i64::MAX,
            "1 or more",
        )?);
    }
    if let Some(x) = section.trim_over_first {
        if !(x >= 1.0 && x.is_finite()) {
            return Err(bad(
                "[advisor] trim-over-first",
                x.to_string(),
                "1.0 or more",
            ));
        }
        rules.trim_over_first = x;
    }
    if let Some(n) = section.trim_min_tokens {
        rules.trim_min_tokens =
            in_range("[advisor] trim-min-tokens", n, 0..=i64::MAX, "0 or more")?;
    }
    if let Some(mins) = section.cache_min_tokens {
        for (name, n) in mins {
            let n: u64 = in_range("[advisor] cache-min-tokens", n, 0..=i64::MAX, "0 or more")?;
            match rules
                .cache_min_tokens
                .iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case(&name))
            {
                Some(slot) => slot.1 = n,
                None => rules.cache_min_tokens.push((name, n)),
            }
        }
    }
    if let Some(x) = section.reasoning_over_visible {
        if !(x >= 0.0 && x.is_finite()) {
            return Err(bad(
                "[advisor] reasoning-over-visible",
                x.to_string(),
                "0.0 or more",
            ));
        }
        rules.reasoning_over_visible = x;
    }
    if let Some(n) = section.reasoning_min_tokens {
        rules.reasoning_min_tokens = in_range(
            "[advisor] reasoning-min-tokens",
            n,
            0..=i64::MAX,
            "0 or more",
        )?;
    }
    if let Some(n) = section.month_days {
        rules.month_days = in_range("[advisor] month-days", n, 1..=31, "1 to 31")?;
    }
    if let Some(share) = section.min_saving_share {
        rules.min_saving_share = share_in_range("[advisor] min-saving-share", share)?;
    }
    if let Some(routes) = section.route {
        rules.routes = routes
            .into_iter()
            .map(|r| {
                let to = match r.to.as_str() {
                    "cheapest" => RouteTarget::Cheapest,
                    "next-cheaper" => RouteTarget::NextCheaper,
                    "" => {
                        return Err(bad(
                            "[[advisor.route]] to",
                            "\"\"".into(),
                            "cheapest, next-cheaper or a model name",
                        ));
                    }
                    model => RouteTarget::Model(model.to_owned()),
                };
                let confidence = match r.confidence.as_deref() {
                    None => Confidence::Medium,
                    Some(text) => Confidence::parse(text).ok_or_else(|| {
                        bad(
                            "[[advisor.route]] confidence",
                            format!("\"{text}\""),
                            "low, medium or high",
                        )
                    })?,
                };
                let max_output_tokens = r
                    .max_output_tokens
                    .map(|n| {
                        in_range(
                            "[[advisor.route]] max-output-tokens",
                            n,
                            0..=i64::MAX,
                            "0 or more",
                        )
                    })
                    .transpose()?;
                let max_reasoning_share = r
                    .max_reasoning_share
                    .map(|x| share_in_range("[[advisor.route]] max-reasoning-share", x))
                    .transpose()?;
                Ok(RouteRule {
                    name: r.name,
                    tasks: r.tasks.unwrap_or_default(),
                    agents: r.agents.unwrap_or_default(),
                    max_output_tokens,
                    max_reasoning_share,
                    to,
                    confidence,
                })
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}

fn share_in_range(key: &'static str, share: f64) -> Result<f64, SettingsError> {
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err(SettingsError::OutOfRange {
            key,
            value: share.to_string(),
            allowed: "0.0 to 1.0",
        })
    }
}

/// Reads the settings.
///
/// `path` is the file to read, or `None` for [`default_config_path`].
/// `explicit` says the user named it (`--config`, `TOKWATCH_CONFIG`): then a
/// missing file is an error; a missing default file just means defaults.
///
/// # Errors
/// A missing explicit file, an unreadable file, invalid contents; the
/// message names the file.
pub fn load(path: Option<&Path>, explicit: bool) -> Result<Settings, ConfigError> {
    let default;
    let path = match path {
        Some(path) => path,
        None => match default_config_path() {
            Some(path) => {
                default = path;
                &default
            }
            None => return Ok(Settings::default()),
        },
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if explicit {
                Err(ConfigError::Missing {
                    path: path.to_owned(),
                })
            } else {
                Ok(Settings::default())
            };
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    Settings::from_toml(&text).map_err(|source| ConfigError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// The config file to read and whether the user named it: `cli_path`
/// (`--config`), else `$TOKWATCH_CONFIG`, else [`default_config_path`].
/// Pass the result to [`load`]. (A clap flag with `env = "TOKWATCH_CONFIG"`
/// does the same; this is for callers without one.)
#[must_use]
pub fn config_path(cli_path: Option<&Path>) -> Option<(PathBuf, bool)> {
    if let Some(path) = cli_path {
        return Some((path.to_owned(), true));
    }
    match std::env::var_os(CONFIG_ENV) {
        Some(path) if !path.is_empty() => Some((PathBuf::from(path), true)),
        _ => default_config_path().map(|path| (path, false)),
    }
}

/// `$XDG_CONFIG_HOME/tokwatch/config.toml`, else
/// `~/.config/tokwatch/config.toml`; `None` without a home directory.
#[must_use]
pub fn default_config_path() -> Option<PathBuf> {
    tokwatch_dir().map(|dir| dir.join("config.toml"))
}

/// `$XDG_CONFIG_HOME/tokwatch/themes`, else `~/.config/tokwatch/themes`:
/// where user themes live (`<name>.toml`).
#[must_use]
pub fn user_theme_dir() -> Option<PathBuf> {
    tokwatch_dir().map(|dir| dir.join("themes"))
}

/// Whether `NO_COLOR` asks for no colour: set and not empty
/// (<https://no-color.org>).
#[must_use]
pub fn no_color_requested() -> bool {
    no_color_value(std::env::var_os("NO_COLOR"))
}

fn no_color_value(value: Option<OsString>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

fn tokwatch_dir() -> Option<PathBuf> {
    config_home(std::env::var_os("XDG_CONFIG_HOME"), std::env::home_dir())
        .map(|dir| dir.join("tokwatch"))
}

/// The XDG config directory. A relative `XDG_CONFIG_HOME` is ignored, as
/// the XDG Base Directory spec requires.
fn config_home(xdg_config_home: Option<OsString>, home: Option<PathBuf>) -> Option<PathBuf> {
    match xdg_config_home.map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => Some(dir),
        _ => home
            .filter(|h| !h.as_os_str().is_empty())
            .map(|h| h.join(".config")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_config_home_then_home() {
        let home = Some(PathBuf::from("/home/ada"));
        assert_eq!(
            config_home(Some("/xdg".into()), home.clone()),
            Some(PathBuf::from("/xdg"))
        );
        assert_eq!(
            config_home(None, home.clone()),
            Some(PathBuf::from("/home/ada/.config"))
        );
        assert_eq!(
            config_home(Some("relative".into()), home.clone()),
            Some(PathBuf::from("/home/ada/.config"))
        );
        assert_eq!(
            config_home(Some("".into()), home),
            Some(PathBuf::from("/home/ada/.config"))
        );
        assert_eq!(config_home(None, None), None);
        assert_eq!(config_home(None, Some(PathBuf::new())), None);
    }

    #[test]
    fn no_color_means_set_and_not_empty() {
        assert!(!no_color_value(None));
        assert!(!no_color_value(Some("".into())));
        assert!(no_color_value(Some("1".into())));
        assert!(no_color_value(Some("0".into())));
    }

    #[test]
    fn file_values_replace_defaults() {
        let settings = Settings::from_toml(
            "theme = \"light\"\n[ui]\nmax-fps = 60\nmouse = false\n\
             [insights]\ngrowth-over-first = 2\nmin-hops-for-share = 5\n\
             [bindings]\nquit = \"x\"\n",
        )
        .unwrap();
        assert_eq!(settings.theme, "light");
        assert_eq!(settings.ui.max_fps, 60);
        assert!(!settings.ui.mouse);
        assert_eq!(settings.ui.recent_events, 500);
        assert!((settings.insights.growth_over_first - 2.0).abs() < f64::EPSILON);
        assert_eq!(settings.insights.min_hops_for_share, 5);
        assert_eq!(settings.keymap.describe(Action::Quit), "x");
        let metrics = Settings::from_toml("[metrics]\nmax-agents = 7\nmax-series = 70\n")
            .unwrap()
            .metrics;
        assert_eq!((metrics.agents, metrics.series), (7, 70));
        assert_eq!(metrics.models, SeriesCaps::DEFAULT_MODELS);
        let duplicates = Settings::from_toml("[duplicates]\nmax-hamming = 5\n")
            .unwrap()
            .duplicates;
        assert_eq!(duplicates.max_hamming, 5);
        assert_eq!(duplicates.capacity, DuplicateRules::default().capacity);
    }

    #[test]
    fn insight_defaults_are_the_models() {
        assert_eq!(
            InsightSettings::default().bleed_rules(),
            BleedRules::default()
        );
    }

    #[test]
    fn ranges() {
        for (text, needle) in [
            ("[ui]\nmax-fps = 121", "[ui] max-fps = 121 is out of range"),
            ("[ui]\nmax-fps = 0", "allowed: 1 to 120"),
            (
                "[ui]\nsnapshot-interval = \"5ms\"",
                "snapshot-interval = \"5ms\"",
            ),
            ("[ui]\nsnapshot-interval = \"11s\"", "\"20ms\" to \"10s\""),
            ("[ui]\nrecent-events = 9", "recent-events = 9"),
            ("[insights]\ngrowth-over-first = 1.0", "above 1.0"),
            (
                "[metrics]\nmax-agents = 0",
                "[metrics] max-agents = 0 is out of range",
            ),
            ("[metrics]\nmax-series = 1000001", "1 to 1000000"),
            ("[metrics]\nmax-label-bytes = 8", "16 to 4096"),
            (
                "[duplicates]\nmax-hamming = 17",
                "[duplicates] max-hamming = 17 is out of range (allowed: 0 to 16)",
            ),
            ("[duplicates]\nmax-hamming = -1", "max-hamming = -1"),
            ("[duplicates]\ncapacity = 15", "16 to 10000000"),
            (
                "[duplicates]\nmax-distance = 3",
                "unknown field `max-distance`",
            ),
            (
                "[insights]\ngrowth-over-first = nan",
                "growth-over-first = NaN",
            ),
            ("[insights]\ncost-share = 1.5", "cost-share = 1.5"),
            (
                "[insights]\nmin-uncached-share = -0.1",
                "min-uncached-share",
            ),
            ("[insights]\nresend-tolerance = nan", "resend-tolerance"),
            ("[insights]\nmin-input-tokens = -1", "min-input-tokens = -1"),
            (
                "[insights]\nmin-hops-for-share = 0",
                "min-hops-for-share = 0",
            ),
        ] {
            let message = Settings::from_toml(text).unwrap_err().to_string();
            assert!(message.contains(needle), "{text}: {message}");
        }
        for text in [
            "[ui]\nmax-fps = 1",
            "[ui]\nmax-fps = 120",
            "[ui]\nsnapshot-interval = \"20ms\"",
            "[ui]\nsnapshot-interval = \"10s\"",
            "[insights]\ncost-share = 0\nmin-uncached-share = 1",
            "[duplicates]\nmax-hamming = 0\ncapacity = 16",
            "[duplicates]\nmax-hamming = 16\ncapacity = 10000000",
        ] {
            assert!(Settings::from_toml(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn anomalies_section() {
        let settings = Settings::from_toml(
            "[anomalies]\nz = 6\nmin-rate = 0.5\nhop-cooldown = \"1m\"\nmax-hop-keys = 64\n",
        )
        .unwrap();
        let rules = &settings.anomalies;
        assert!((rules.z - 6.0).abs() < f64::EPSILON);
        assert_eq!(rules.min_rate, Usd::from_picos(500_000_000_000));
        assert_eq!(rules.hop_cooldown_ms, 60_000);
        assert_eq!(rules.max_hop_keys, 64);
        assert_eq!(rules.min_samples, AnomalyRules::default().min_samples);
        // a z at or below the default re-arm point moves it
        let low = Settings::from_toml("[anomalies]\nz = 0.5").unwrap();
        assert!(low.anomalies.rearm_z < low.anomalies.z);
        for (text, needle) in [
            ("[anomalies]\nz = 0", "[anomalies] z = 0 is out of range"),
            ("[anomalies]\nz = nan", "[anomalies] z = NaN"),
            ("[anomalies]\nrearm-z = 4", "below z"),
            ("[anomalies]\nmin-samples = 0", "1 to 100000"),
            (
                "[anomalies]\nhalf-life = 0.5",
                "[anomalies] half-life = 0.5",
            ),
            ("[anomalies]\nmin-spread = 2", "min-spread = 2"),
            ("[anomalies]\nmin-rate = -1", "min-rate = -1"),
            ("[anomalies]\nhop-min-tokens = -1", "hop-min-tokens = -1"),
            ("[anomalies]\nhop-cooldown = \"2d\"", "\"0s\" to \"24h\""),
            ("[anomalies]\nmax-hop-keys = 1", "16 to 1000000"),
            ("[anomalies]\nthreshold = 3", "threshold"),
        ] {
            let message = Settings::from_toml(text).unwrap_err().to_string();
            assert!(message.contains(needle), "{text}: {message}");
        }
    }
}
