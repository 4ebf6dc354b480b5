//! The config file as written: every key optional, unknown keys rejected.
//!
//! These types check shape and syntax (colours, keys and durations are parsed
//! here, so their errors carry a line); ranges are checked when
//! [`crate::config::Settings`] is built from a [`ConfigFile`].

use std::fmt;
use std::time::Duration;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::keys::Bindings;
use super::theme::ThemeFile;

/// `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// `theme = "name"`, or a `[theme]` table with `name` and `overrides`.
    pub theme: Option<ThemeSection>,
    /// `[ui]`.
    pub ui: Option<UiSection>,
    /// `[insights]`.
    pub insights: Option<InsightsSection>,
    /// `[advisor]` and `[[advisor.route]]`.
    pub advisor: Option<AdvisorSection>,
    /// `[metrics]`.
    pub metrics: Option<MetricsSection>,
    /// `[anomalies]`.
    pub anomalies: Option<AnomaliesSection>,
    /// `[duplicates]`.
    pub duplicates: Option<DuplicatesSection>,
    /// `[bindings]`.
    pub bindings: Option<Bindings>,
}

impl ConfigFile {
    /// Parses the file's text.
    ///
    /// # Errors
    /// TOML syntax, unknown keys, wrong types, bad colours, keys or
    /// durations; toml's message has the line and names the key.
    pub fn parse(text: &str) -> Result<ConfigFile, toml::de::Error> {
        toml::from_str(text)
    }
}

/// The theme choice. TOML cannot hold both `theme = "dark"` and a
/// `[theme.overrides]` table, so the name may also go in the table as
/// `[theme] name = "dark"`; a plain `theme = "dark"` works too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThemeSection {
    /// A built-in name, a user theme name or a path to a theme file.
    pub name: Option<String>,
    /// Roles patched on top of the chosen theme.
    pub overrides: Option<ThemeFile>,
}

/// The table form of [`ThemeSection`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ThemeTable {
    name: Option<String>,
    overrides: Option<ThemeFile>,
}

/// By hand rather than an untagged enum, whose errors would all read "did
/// not match any variant" instead of naming the bad key.
impl<'de> Deserialize<'de> for ThemeSection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ThemeSectionVisitor)
    }
}

struct ThemeSectionVisitor;

impl<'de> Visitor<'de> for ThemeSectionVisitor {
    type Value = ThemeSection;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a theme name, or a [theme] table with name and overrides")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<ThemeSection, E> {
        Ok(ThemeSection {
            name: Some(name.to_owned()),
            overrides: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ThemeSection, A::Error> {
        let table = ThemeTable::deserialize(MapAccessDeserializer::new(map))?;
        Ok(ThemeSection {
            name: table.name,
            overrides: table.overrides,
        })
    }
}

/// `[ui]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UiSection {
    /// Most frames drawn per second.
    pub max_fps: Option<i64>,
    /// How often the aggregator publishes a snapshot, e.g. `"100ms"`.
    pub snapshot_interval: Option<HumanDuration>,
    /// Mouse support (scroll, click to select).
    pub mouse: Option<bool>,
    /// Length of the live event tail.
    pub recent_events: Option<i64>,
}

/// `[metrics]`: caps on the label values `--metrics` exports.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetricsSection {
    pub max_agents: Option<i64>,
    pub max_segments: Option<i64>,
    pub max_models: Option<i64>,
    pub max_series: Option<i64>,
    pub max_label_bytes: Option<i64>,
}

/// `[duplicates]`: thresholds of the duplicate-prompt index.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DuplicatesSection {
    /// Most bits two near prints may differ by.
    pub max_hamming: Option<i64>,
    /// Entries each table of the index keeps.
    pub capacity: Option<i64>,
}

/// `[insights]`: thresholds of the bleeding-hop rule.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InsightsSection {
    /// Input growth over the run's first hop.
    pub growth_over_first: Option<f64>,
    /// Least input tokens for the growth rule.
    pub min_input_tokens: Option<i64>,
    /// Least uncached share of the input for the growth rule.
    pub min_uncached_share: Option<f64>,
    /// Share of the previous output a re-sent history may differ by.
    pub resend_tolerance: Option<f64>,
    /// Share of the run's cost that makes a hop bleed.
    pub cost_share: Option<f64>,
    /// Least hops in a run for the cost-share rule.
    pub min_hops_for_share: Option<i64>,
}

/// `[advisor]`: the advisor's rules (`docs/insights.md`, "Advisor").
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AdvisorSection {
    /// Task labels of simple work.
    pub simple_tasks: Option<Vec<String>>,
    /// Models hops may be routed to (within their own provider).
    pub route_targets: Option<Vec<String>>,
    /// Per-hop input limit the carried context is trimmed to.
    pub trim_limit: Option<i64>,
    /// The derived trim limit: times the run's first hop input …
    pub trim_over_first: Option<f64>,
    /// … and at least this many tokens.
    pub trim_min_tokens: Option<i64>,
    /// Least cacheable prefix, by provider or model (merged over the defaults).
    pub cache_min_tokens: Option<std::collections::BTreeMap<String, i64>>,
    /// Reasoning allowed per visible output token on simple tasks.
    pub reasoning_over_visible: Option<f64>,
    /// Least reasoning tokens per call to flag.
    pub reasoning_min_tokens: Option<i64>,
    /// Days of the monthly projection.
    pub month_days: Option<i64>,
    /// Least share of the spend a recommendation must save.
    pub min_saving_share: Option<f64>,
    /// `[[advisor.route]]`: routing rules, in order (they replace the defaults).
    pub route: Option<Vec<RouteSection>>,
}

/// `[[advisor.route]]`: one routing rule.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteSection {
    pub name: String,
    pub tasks: Option<Vec<String>>,
    pub agents: Option<Vec<String>>,
    pub max_output_tokens: Option<i64>,
    pub max_reasoning_share: Option<f64>,
    /// `cheapest`, `next-cheaper`, or a model name.
    pub to: String,
    /// `low`, `medium` or `high` (default `medium`).
    pub confidence: Option<String>,
}

/// `[anomalies]`: thresholds of the spike detector (`model::anomaly`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AnomaliesSection {
    pub enabled: Option<bool>,
    pub z: Option<f64>,
    pub rearm_z: Option<f64>,
    pub min_samples: Option<i64>,
    pub half_life: Option<f64>,
    pub min_spread: Option<f64>,
    /// Dollars per minute.
    pub min_rate: Option<f64>,
    pub hop_min_tokens: Option<i64>,
    pub hop_cooldown: Option<HumanDuration>,
    pub max_hop_keys: Option<i64>,
}

/// A duration written as a string: `"100ms"`, `"1s"`, `"1m 30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| {
                de::Error::custom(format!(
                    "'{text}' is not a duration like \"100ms\" or \"1s\" ({e})"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_none() {
        assert_eq!(ConfigFile::parse("").unwrap(), ConfigFile::default());
    }

    #[test]
    fn theme_as_name_or_table() {
        let plain = ConfigFile::parse("theme = \"light\"").unwrap();
        assert_eq!(plain.theme.unwrap().name.as_deref(), Some("light"));
        let table =
            ConfigFile::parse("[theme]\nname = \"solarized\"\n[theme.overrides]\ncost = \"red\"\n")
                .unwrap()
                .theme
                .unwrap();
        assert_eq!(table.name.as_deref(), Some("solarized"));
        assert!(table.overrides.unwrap().cost.is_some());
        let only_overrides = ConfigFile::parse("[theme.overrides]\ntext = \"white\"\n")
            .unwrap()
            .theme
            .unwrap();
        assert_eq!(only_overrides.name, None);
    }

    #[test]
    fn unknown_keys_are_named() {
        for (text, key) in [
            ("colour = 1", "colour"),
            ("[ui]\nfps = 3", "fps"),
            ("[theme]\nnmae = \"x\"", "nmae"),
            ("[insights]\ngrowth = 2.0", "growth"),
        ] {
            let message = ConfigFile::parse(text).unwrap_err().to_string();
            assert!(message.contains(key), "{text}: {message}");
        }
    }

    #[test]
    fn durations() {
        let file = ConfigFile::parse("[ui]\nsnapshot-interval = \"250ms\"").unwrap();
        assert_eq!(
            file.ui.unwrap().snapshot_interval,
            Some(HumanDuration(Duration::from_millis(250)))
        );
        let message = ConfigFile::parse("[ui]\nsnapshot-interval = \"soon\"")
            .unwrap_err()
            .to_string();
        assert!(message.contains("'soon' is not a duration"), "{message}");
    }
}
