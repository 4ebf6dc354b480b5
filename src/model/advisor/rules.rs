//! The advisor's rules: what counts as a simple task, where hops may be
//! routed, the trim limit, the providers' caching rules. Defaults here; the
//! config file's `[advisor]` section overrides them (`docs/config.md`).

use crate::pricing::ModelPrice;

/// Where a routing rule sends the hops it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// The cheapest of the candidate models of the hop's provider.
    Cheapest,
    /// One tier down: the dearest candidate of the same provider that is
    /// still cheaper for this hop.
    NextCheaper,
    /// This model, when it has the hop's provider (never across providers).
    Model(String),
}

/// How sure a recommendation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }

    /// Parses `low`, `medium` or `high`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Confidence> {
        match text {
            "low" => Some(Confidence::Low),
            "medium" => Some(Confidence::Medium),
            "high" => Some(Confidence::High),
            _ => None,
        }
    }
}

/// One routing rule: a hop matches when every condition given holds (a
/// condition left out matches everything). The first matching rule wins.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRule {
    pub name: String,
    /// The hop's task label is one of these (case-insensitive).
    pub tasks: Vec<String>,
    /// The hop's agent is one of these.
    pub agents: Vec<String>,
    /// Output tokens per call at most this.
    pub max_output_tokens: Option<u64>,
    /// Reasoning tokens at most this share of the output.
    pub max_reasoning_share: Option<f64>,
    pub to: RouteTarget,
    /// How sure a saving of this rule is (quality is the risk).
    pub confidence: Confidence,
}

/// The advisor's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvisorRules {
    /// Task labels of simple work (routing, reasoning share).
    pub simple_tasks: Vec<String>,
    /// In order; the first that matches a hop routes it.
    pub routes: Vec<RouteRule>,
    /// Models hops may be routed to (only ever within the hop's own provider).
    pub route_targets: Vec<String>,
    /// Per-hop input limit to trim carried context to; `None`: derived per
    /// run (see [`AdvisorRules::trim_limit`]).
    pub trim_limit: Option<u64>,
    /// The derived limit: this many times the run's first hop input …
    pub trim_over_first: f64,
    /// … and at least this many tokens.
    pub trim_min_tokens: u64,
    /// Least cacheable prefix per provider (tokens), and per model where a
    /// model differs from its provider.
    pub cache_min_tokens: Vec<(String, u64)>,
    /// When a provider is not listed.
    pub cache_min_default: u64,
    /// A hop on a simple task whose reasoning exceeds this many times its
    /// visible output reasons too much.
    pub reasoning_over_visible: f64,
    /// … and at least this many reasoning tokens per call.
    pub reasoning_min_tokens: u64,
    /// Days in the month the monthly savings are projected over.
    pub month_days: u32,
    /// Recommendations saving less than this share of the spend are left out.
    pub min_saving_share: f64,
}

/// The simple tasks of the default rules: classification, lookup and
/// extraction-like work a small model does as well.
pub const DEFAULT_SIMPLE_TASKS: &[&str] = &[
    "classify",
    "faq",
    "extract",
    "search",
    "read",
    "lookup",
    "route",
    "tag",
    "label",
    "parse",
    "summarize",
    "rerank",
    "validate",
    "format",
    "translate",
];

/// Default routing targets: current small and middle models of the main
/// providers.
pub const DEFAULT_ROUTE_TARGETS: &[&str] = &[
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-4.1-mini",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
];

impl Default for AdvisorRules {
    fn default() -> Self {
        let words = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        AdvisorRules {
            simple_tasks: words(DEFAULT_SIMPLE_TASKS),
            routes: vec![
                RouteRule {
                    name: "simple-task".into(),
                    tasks: words(DEFAULT_SIMPLE_TASKS),
                    agents: Vec::new(),
                    max_output_tokens: None,
                    max_reasoning_share: Some(0.5),
                    to: RouteTarget::Cheapest,
                    confidence: Confidence::High,
                },
                RouteRule {
                    name: "short-output".into(),
                    tasks: Vec::new(),
                    agents: Vec::new(),
                    max_output_tokens: Some(1_500),
                    max_reasoning_share: Some(0.5),
                    to: RouteTarget::Cheapest,
                    confidence: Confidence::Medium,
                },
                RouteRule {
                    name: "tier-down".into(),
                    tasks: Vec::new(),
                    agents: Vec::new(),
                    max_output_tokens: None,
                    max_reasoning_share: Some(0.5),
                    to: RouteTarget::NextCheaper,
                    confidence: Confidence::Low,
                },
            ],
            route_targets: words(DEFAULT_ROUTE_TARGETS),
            trim_limit: None,
            trim_over_first: 2.0,
            trim_min_tokens: 4_000,
            cache_min_tokens: vec![
                ("anthropic".into(), 1_024),
                ("openai".into(), 1_024),
                ("google".into(), 1_024),
                ("claude-haiku-4-5".into(), 4_096),
                ("claude-opus-4-5".into(), 4_096),
                ("claude-opus-4-6".into(), 4_096),
                ("claude-3-haiku".into(), 2_048),
                ("claude-3-5-haiku".into(), 2_048),
                ("gemini-2.5-pro".into(), 2_048),
            ],
            cache_min_default: 1_024,
            reasoning_over_visible: 3.0,
            reasoning_min_tokens: 256,
            month_days: 30,
            min_saving_share: 0.005,
        }
    }
}

/// Rounds up to a whole thousand tokens.
fn round_up_thousand(tokens: u64) -> u64 {
    tokens.div_ceil(1_000) * 1_000
}

impl AdvisorRules {
    /// The per-hop input limit a run's context is trimmed to: the
    /// configured one, else `trim_over_first` × the run's first hop input
    /// (per call: the head every hop needs — system prompt and task — and
    /// as much again for the hop's own material), rounded up to a
    /// thousand, at least `trim_min_tokens`.
    #[must_use]
    pub fn trim_limit(&self, first_input_per_call: u64) -> u64 {
        if let Some(limit) = self.trim_limit {
            return limit;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let grown = (first_input_per_call as f64 * self.trim_over_first).ceil() as u64;
        round_up_thousand(grown).max(self.trim_min_tokens)
    }

    /// The least cacheable prefix of `model` (by its name, then its provider).
    #[must_use]
    pub fn cache_min(&self, model: &ModelPrice) -> u64 {
        let find = |key: &str| {
            self.cache_min_tokens
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| *v)
        };
        find(&model.name)
            .or_else(|| model.provider.as_deref().and_then(find))
            .unwrap_or(self.cache_min_default)
    }

    /// Whether `task` is a simple task.
    #[must_use]
    pub fn is_simple(&self, task: Option<&str>) -> bool {
        task.is_some_and(|t| self.simple_tasks.iter().any(|s| s.eq_ignore_ascii_case(t)))
    }
}
