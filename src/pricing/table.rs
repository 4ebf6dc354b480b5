//! Price tables: tokwatch's own TOML format and LiteLLM's
//! `model_prices_and_context_window.json`, both parsed from text (no I/O).

use rustc_hash::FxHashMap;
use serde::Deserialize;

use crate::types::money::parse_scaled;

/// Picodollars per token for each token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
}

/// The premium tier: when a request's total input (cache reads and writes
/// included) exceeds `threshold`, every token of it is billed at `rates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongContext {
    pub threshold: u64,
    pub rates: Rates,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    /// Canonical name in its table.
    pub name: String,
    pub provider: Option<String>,
    pub rates: Rates,
    pub long_context: Option<LongContext>,
}

/// One parsed table with a name index (canonical names and aliases, lowercase).
#[derive(Debug, Clone)]
pub struct PriceTable {
    pub version: String,
    pub models: Vec<ModelPrice>,
    index: FxHashMap<String, usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum PriceTableError {
    // The parser's message is shown once: not also chained as a source.
    #[error("not a valid tokwatch price table: {0}")]
    Toml(toml::de::Error),
    #[error("not a valid LiteLLM price file: {0}")]
    Json(serde_json::Error),
    #[error("model '{model}': {problem}")]
    Model { model: String, problem: String },
    #[error("model name '{0}' appears twice")]
    Duplicate(String),
    #[error("the price file defines no models")]
    Empty,
}

impl From<toml::de::Error> for PriceTableError {
    fn from(error: toml::de::Error) -> Self {
        PriceTableError::Toml(error)
    }
}

impl From<serde_json::Error> for PriceTableError {
    fn from(error: serde_json::Error) -> Self {
        PriceTableError::Json(error)
    }
}

impl PriceTable {
    fn new(
        version: String,
        models: Vec<ModelPrice>,
        aliases: Vec<(String, usize)>,
    ) -> Result<Self, PriceTableError> {
        if models.is_empty() {
            return Err(PriceTableError::Empty);
        }
        let mut index = FxHashMap::default();
        let names = models.iter().enumerate().map(|(i, m)| (m.name.clone(), i));
        for (name, position) in names.chain(aliases) {
            let key = name.to_ascii_lowercase();
            if index.insert(key.clone(), position).is_some() {
                return Err(PriceTableError::Duplicate(key));
            }
        }
        Ok(PriceTable {
            version,
            models,
            index,
        })
    }

    /// Exact, case-insensitive lookup of a canonical name or alias.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<usize> {
        if let Some(&i) = self.index.get(name) {
            return Some(i);
        }
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.index.get(&name.to_ascii_lowercase()).copied();
        }
        None
    }

    /// Parses tokwatch's own TOML format (`src/pricing/prices.toml`).
    ///
    /// # Errors
    /// Syntax errors, unknown keys, negative or sub-picodollar prices,
    /// duplicate names.
    pub fn from_toml(text: &str) -> Result<Self, PriceTableError> {
        let file: TableFile = toml::from_str(text)?;
        let mut models = Vec::with_capacity(file.model.len());
        let mut aliases = Vec::new();
        for entry in file.model {
            let problem = |problem: String| PriceTableError::Model {
                model: entry.name.clone(),
                problem,
            };
            let per_mtok = |v: f64| per_mtok_to_picos(v).map_err(problem);
            let input = per_mtok(entry.input)?;
            let rates = Rates {
                input,
                output: per_mtok(entry.output)?,
                // No cache-read price means no discount (e.g. OpenAI *-pro models).
                cache_read: entry.cache_read.map(per_mtok).transpose()?.unwrap_or(input),
                cache_write_5m: entry
                    .cache_write_5m
                    .map(per_mtok)
                    .transpose()?
                    .unwrap_or(input),
                cache_write_1h: entry
                    .cache_write_1h
                    .map(per_mtok)
                    .transpose()?
                    .unwrap_or(input * 2),
            };
            let long_context = match entry.long_context {
                None => None,
                Some(tier) => {
                    let tier_input = per_mtok(tier.input)?;
                    let scaled = |standard: u64| scale_rate(standard, rates.input, tier_input);
                    Some(LongContext {
                        threshold: tier.threshold,
                        rates: Rates {
                            input: tier_input,
                            output: per_mtok(tier.output)?,
                            cache_read: tier
                                .cache_read
                                .map(per_mtok)
                                .transpose()?
                                .unwrap_or_else(|| scaled(rates.cache_read)),
                            cache_write_5m: tier
                                .cache_write_5m
                                .map(per_mtok)
                                .transpose()?
                                .unwrap_or_else(|| scaled(rates.cache_write_5m)),
                            cache_write_1h: tier
                                .cache_write_1h
                                .map(per_mtok)
                                .transpose()?
                                .unwrap_or_else(|| scaled(rates.cache_write_1h)),
                        },
                    })
                }
            };
            let position = models.len();
            aliases.extend(entry.aliases.into_iter().map(|a| (a, position)));
            models.push(ModelPrice {
                name: entry.name.to_ascii_lowercase(),
                provider: entry.provider,
                rates,
                long_context,
            });
        }
        PriceTable::new(file.version, models, aliases)
    }

    /// Parses LiteLLM's `model_prices_and_context_window.json` (USD per token).
    /// The `sample_spec` stub and entries without both an input and an output
    /// token price (images, audio, rerank …) are skipped.
    ///
    /// # Errors
    /// Invalid JSON, a top level that is not an object, or no usable entry.
    pub fn from_litellm_json(text: &str, version: String) -> Result<Self, PriceTableError> {
        let entries: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)?;
        let mut models = Vec::new();
        for (name, entry) in &entries {
            if name == "sample_spec" {
                continue;
            }
            let Some(fields) = entry.as_object() else {
                continue;
            };
            let field = |key: &str| fields.get(key).and_then(per_token_to_picos);
            let (Some(input), Some(output)) = (
                field("input_cost_per_token"),
                field("output_cost_per_token"),
            ) else {
                continue;
            };
            let cache_write_5m = field("cache_creation_input_token_cost").unwrap_or(input);
            // LiteLLM has copy-paste 1-hour rates on some models; the 1-hour
            // write is 2× input, so anything far from that is replaced.
            let cache_write_1h = field("cache_creation_input_token_cost_above_1hr")
                .filter(|&v| plausible_one_hour(v, input))
                .unwrap_or(input * 2);
            let rates = Rates {
                input,
                output,
                cache_read: field("cache_read_input_token_cost").unwrap_or(input),
                cache_write_5m,
                cache_write_1h,
            };
            let long_context = [
                ("above_128k_tokens", 128_000),
                ("above_200k_tokens", 200_000),
                ("above_272k_tokens", 272_000),
            ]
            .into_iter()
            .find_map(|(suffix, threshold)| {
                let tier_input = field(&format!("input_cost_per_token_{suffix}"))?;
                let scaled = |standard: u64| scale_rate(standard, input, tier_input);
                Some(LongContext {
                    threshold,
                    rates: Rates {
                        input: tier_input,
                        output: field(&format!("output_cost_per_token_{suffix}")).unwrap_or(output),
                        cache_read: field(&format!("cache_read_input_token_cost_{suffix}"))
                            .unwrap_or_else(|| scaled(rates.cache_read)),
                        cache_write_5m: field(&format!("cache_creation_input_token_cost_{suffix}"))
                            .unwrap_or_else(|| scaled(rates.cache_write_5m)),
                        cache_write_1h: field(&format!(
                            "cache_creation_input_token_cost_above_1hr_{suffix}"
                        ))
                        .filter(|&v| plausible_one_hour(v, tier_input))
                        .unwrap_or_else(|| scaled(rates.cache_write_1h)),
                    },
                })
            });
            models.push(ModelPrice {
                name: name.to_ascii_lowercase(),
                provider: fields
                    .get("litellm_provider")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                rates,
                long_context,
            });
        }
        // LiteLLM keys differ only by case in a few places; keep the first.
        models.sort_by(|a, b| a.name.cmp(&b.name));
        models.dedup_by(|a, b| a.name == b.name);
        PriceTable::new(version, models, Vec::new())
    }
}

fn plausible_one_hour(one_hour: u64, input: u64) -> bool {
    let doubled = u128::from(input) * 2;
    let value = u128::from(one_hour);
    // within ±25 % of 2× input
    value * 4 >= doubled * 3 && value * 4 <= doubled * 5
}

/// Keeps a bucket's multiplier over input when only the tier's input price is known.
fn scale_rate(standard: u64, standard_input: u64, tier_input: u64) -> u64 {
    if standard_input == 0 {
        return standard;
    }
    let scaled = u128::from(standard) * u128::from(tier_input) / u128::from(standard_input);
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// USD per million tokens → picodollars per token, exactly.
fn per_mtok_to_picos(value: f64) -> Result<u64, String> {
    if !value.is_finite() || value < 0.0 {
        return Err(format!("price {value} must be a non-negative number"));
    }
    // Rust prints the shortest decimal that round-trips, i.e. what was written.
    let picos = parse_scaled(&value.to_string(), 6).map_err(|e| e.to_string())?;
    u64::try_from(picos).map_err(|_| format!("price {value} is out of range"))
}

/// USD per token (LiteLLM) → picodollars per token. LiteLLM also writes
/// numbers as strings; anything finer than a picodollar is rounded.
fn per_token_to_picos(value: &serde_json::Value) -> Option<u64> {
    let text = match value {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.trim().to_owned(),
        _ => return None,
    };
    match parse_scaled(&text, 12) {
        Ok(picos) => u64::try_from(picos).ok(),
        Err(_) => {
            let float: f64 = text.parse().ok()?;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            (float.is_finite() && float >= 0.0).then(|| (float * 1e12).round() as u64)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    version: String,
    #[allow(dead_code)]
    sourced: Option<String>,
    model: Vec<ModelFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    provider: Option<String>,
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
    #[allow(dead_code)]
    source: Option<String>,
    long_context: Option<TierFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierFile {
    threshold: u64,
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = r#"
version = "test-1"
[[model]]
name = "Sonnet-X"
aliases = ["sonnet-x-20250101"]
provider = "anthropic"
input = 3.0
output = 15.0
cache_read = 0.3
cache_write_5m = 3.75
cache_write_1h = 6.0
[model.long_context]
threshold = 200000
input = 6.0
output = 22.5

[[model]]
name = "mini"
input = 0.075
output = 0.3
"#;

    #[test]
    fn own_format_converts_per_million_to_picos_per_token() {
        let table = PriceTable::from_toml(OWN).unwrap();
        assert_eq!(table.version, "test-1");
        let sonnet = &table.models[table.get("sonnet-x").unwrap()];
        assert_eq!(sonnet.rates.input, 3_000_000);
        assert_eq!(sonnet.rates.cache_read, 300_000);
        assert_eq!(sonnet.rates.cache_write_1h, 6_000_000);
        let tier = sonnet.long_context.unwrap();
        assert_eq!(tier.threshold, 200_000);
        assert_eq!(tier.rates.output, 22_500_000);
        // unspecified tier cache prices keep the standard multipliers
        assert_eq!(tier.rates.cache_read, 600_000);
        assert_eq!(tier.rates.cache_write_5m, 7_500_000);
        assert_eq!(tier.rates.cache_write_1h, 12_000_000);
        assert_eq!(table.get("SONNET-X-20250101"), table.get("sonnet-x"));
    }

    #[test]
    fn own_format_defaults_missing_cache_prices() {
        let table = PriceTable::from_toml(OWN).unwrap();
        let mini = &table.models[table.get("mini").unwrap()];
        assert_eq!(mini.rates.input, 75_000);
        assert_eq!(mini.rates.cache_read, 75_000, "no cache price: no discount");
        assert_eq!(mini.rates.cache_write_5m, 75_000, "writes bill as input");
        assert_eq!(mini.rates.cache_write_1h, 150_000, "2 × input");
    }

    #[test]
    fn own_format_rejects_unknown_keys_negative_prices_and_duplicates() {
        let unknown =
            "version = \"v\"\n[[model]]\nname = \"a\"\ninput = 1.0\noutput = 2.0\ncolour = 3\n";
        let err = PriceTable::from_toml(unknown).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        let negative = "version = \"v\"\n[[model]]\nname = \"a\"\ninput = -1.0\noutput = 2.0\n";
        let err = PriceTable::from_toml(negative).unwrap_err().to_string();
        assert!(err.contains("'a'") && err.contains("non-negative"), "{err}");
        let dup = "version = \"v\"\n[[model]]\nname = \"a\"\ninput = 1.0\noutput = 2.0\n[[model]]\nname = \"b\"\naliases = [\"A\"]\ninput = 1.0\noutput = 2.0\n";
        assert!(
            matches!(PriceTable::from_toml(dup), Err(PriceTableError::Duplicate(n)) if n == "a")
        );
        let too_fine =
            "version = \"v\"\n[[model]]\nname = \"a\"\ninput = 0.0000001\noutput = 2.0\n";
        assert!(PriceTable::from_toml(too_fine).is_err());
    }

    const LITELLM: &str = r#"{
      "sample_spec": {"input_cost_per_token": "set to 0 if free", "output_cost_per_token": 0.0},
      "gpt-4o-mini": {"input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07,
                      "cache_read_input_token_cost": 7.5e-08, "litellm_provider": "openai", "mode": "chat"},
      "claude-3-haiku-20240307": {"input_cost_per_token": 2.5e-07, "output_cost_per_token": 1.25e-06,
                      "cache_creation_input_token_cost": 3e-07, "cache_creation_input_token_cost_above_1hr": 6e-06,
                      "cache_read_input_token_cost": 3e-08, "litellm_provider": "anthropic"},
      "claude-sonnet-4-20250514": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                      "cache_creation_input_token_cost": 3.75e-06, "cache_creation_input_token_cost_above_1hr": 6e-06,
                      "cache_read_input_token_cost": 3e-07,
                      "input_cost_per_token_above_200k_tokens": 6e-06, "output_cost_per_token_above_200k_tokens": 2.25e-05,
                      "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06, "cache_read_input_token_cost_above_200k_tokens": 6e-07},
      "string-priced": {"input_cost_per_token": "1e-06", "output_cost_per_token": "2e-06"},
      "dall-e-3": {"output_cost_per_image": 0.04, "mode": "image_generation"}
    }"#;

    #[test]
    fn litellm_format_skips_sample_spec_and_non_token_entries() {
        let table = PriceTable::from_litellm_json(LITELLM, "litellm-test".into()).unwrap();
        assert!(table.get("sample_spec").is_none());
        assert!(table.get("dall-e-3").is_none());
        assert_eq!(table.models.len(), 4);
        let mini = &table.models[table.get("gpt-4o-mini").unwrap()];
        assert_eq!(mini.rates.input, 150_000);
        assert_eq!(mini.rates.cache_read, 75_000);
        assert_eq!(mini.provider.as_deref(), Some("openai"));
        let strings = &table.models[table.get("string-priced").unwrap()];
        assert_eq!(strings.rates.output, 2_000_000);
    }

    #[test]
    fn litellm_implausible_one_hour_rate_falls_back_to_twice_input() {
        let table = PriceTable::from_litellm_json(LITELLM, "t".into()).unwrap();
        let haiku = &table.models[table.get("claude-3-haiku-20240307").unwrap()];
        assert_eq!(
            haiku.rates.cache_write_1h, 500_000,
            "6e-06 is a copy-paste value; 2 × 2.5e-07"
        );
        let sonnet = &table.models[table.get("claude-sonnet-4-20250514").unwrap()];
        assert_eq!(sonnet.rates.cache_write_1h, 6_000_000);
        let tier = sonnet.long_context.unwrap();
        assert_eq!(tier.threshold, 200_000);
        assert_eq!(tier.rates.input, 6_000_000);
        assert_eq!(tier.rates.cache_read, 600_000);
        assert_eq!(
            tier.rates.cache_write_1h, 12_000_000,
            "scaled from the standard 1h rate"
        );
    }

    #[test]
    fn litellm_rejects_non_objects_and_empty_files() {
        assert!(matches!(
            PriceTable::from_litellm_json("[1,2]", "t".into()),
            Err(PriceTableError::Json(_))
        ));
        assert!(matches!(
            PriceTable::from_litellm_json("{}", "t".into()),
            Err(PriceTableError::Empty)
        ));
    }
}
