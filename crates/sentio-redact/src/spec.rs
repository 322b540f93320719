//! Recognizers as data: the serde shape of `data/recognizers.toml` and of team-supplied recognizers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::validators::ValidatorKind;

/// The built-in recognizer file, compiled into every binary and component.
pub const BUILTIN_RECOGNIZERS: &str = include_str!("../data/recognizers.toml");

/// A whole recognizer file: regex macros and recognizers, in declaration order.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecognizerFile {
    /// `<<NAME>>` in a pattern expands to the macro's regex text.
    #[serde(default)]
    pub macros: BTreeMap<String, String>,
    #[serde(default, rename = "recognizer")]
    pub recognizers: Vec<RecognizerSpec>,
}

/// One recognizer: what entity it finds and how (Presidio's `PatternRecognizer`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecognizerSpec {
    /// Unique name, reported in every finding.
    pub name: String,
    /// Entity type in Presidio's naming (`EMAIL_ADDRESS`, `PHONE_NUMBER`, ...).
    pub entity: String,
    #[serde(default)]
    pub patterns: Vec<PatternSpec>,
    /// Literal words or phrases that are always this entity (matched case-insensitively on word
    /// boundaries), for teams' deny-lists: product code names, internal hostnames, VIP names.
    #[serde(default)]
    pub deny_list: Vec<String>,
    /// Score of a deny-list hit.
    #[serde(default = "default_deny_list_score")]
    pub deny_list_score: f32,
    /// Words that raise the score when found near the match.
    #[serde(default)]
    pub context: Vec<String>,
    /// Words that discard the match when found just before it ("order", "invoice", ...).
    #[serde(default)]
    pub reject_context: Vec<String>,
    /// Strings that discard the match when they immediately precede it ("#" of "#4155552671").
    #[serde(default)]
    pub reject_prefix: Vec<String>,
    #[serde(default)]
    pub validator: Option<ValidatorKind>,
    /// How many words before the match are searched for context words.
    #[serde(default = "default_context_window")]
    pub context_window: usize,
}

/// One regex of a recognizer. A named group `value` narrows the finding to that group.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatternSpec {
    pub name: String,
    pub regex: String,
    pub score: f32,
}

fn default_deny_list_score() -> f32 {
    0.85
}

fn default_context_window() -> usize {
    5
}

impl RecognizerFile {
    /// Parses a recognizer file in TOML.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The built-in recognizers.
    pub fn builtin() -> Self {
        // The file is compiled in and covered by tests, so a parse failure is a build defect.
        Self::from_toml(BUILTIN_RECOGNIZERS).expect("built-in recognizers.toml parses")
    }
}
