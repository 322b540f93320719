//! The analyzer: runs recognizers over a text and resolves their findings into one set of spans.

use std::collections::BTreeMap;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use regex::{CaptureLocations, Regex, RegexBuilder};
use regex_automata::nfa::thompson;
use regex_automata::util::pool::Pool;
use regex_automata::{Input, MatchKind, hybrid};
use serde::Serialize;
use smallvec::SmallVec;
use std::panic::{RefUnwindSafe, UnwindSafe};

use crate::RedactError;
use crate::spec::{RecognizerFile, RecognizerSpec};
use crate::validators::{ValidatorKind, Verdict, digit_value};

/// How much a context word raises a score, and the least score a context hit leaves (Presidio's
/// `LemmaContextAwareEnhancer` defaults).
pub const CONTEXT_BOOST: f32 = 0.35;
pub const MIN_SCORE_WITH_CONTEXT: f32 = 0.4;
/// Words after the match that still count as its context ("4111 ... my card", "... (cell)").
const CONTEXT_WORDS_AFTER: usize = 2;
/// Reject words count only when this close before the match ("order 12345" but not "my order is
/// late, call me on 415..."), and never past another value ([`reject_window`]).
const REJECT_WINDOW_WORDS: usize = 3;
/// Default score threshold for reporting a finding.
pub const DEFAULT_SCORE_THRESHOLD: f32 = 0.5;

/// Why a finding was reported: enough to explain it to an auditor without the raw value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    #[serde(serialize_with = "crate::serialize_shared_str")]
    pub pattern: Arc<str>,
    pub pattern_score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validator: Option<&'static str>,
    pub validation: Validation,
    /// Context words found near the match.
    pub context_words: Vec<String>,
    pub context_boost: f32,
}

/// What the recognizer's validator said about a finding's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    Valid,
    /// A greedy match was shortened to its valid part.
    ValidPrefix,
    /// The recognizer has no validator.
    NotChecked,
}

/// A detected entity in the input text, with byte offsets (`start..end`).
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub entity_type: Arc<str>,
    pub start: usize,
    pub end: usize,
    pub score: f32,
    pub recognizer: Arc<str>,
    pub explanation: Explanation,
    /// Recognizer and pattern indices, and which context words were hit (bit i = word i).
    pub(crate) recognizer_index: usize,
    pub(crate) pattern_index: usize,
    pub(crate) context_mask: u64,
}

/// A scored match before overlap resolution: indices and numbers only, so the many candidates
/// that are dropped cost no allocation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    start: usize,
    end: usize,
    score: f32,
    recognizer: usize,
    pattern: usize,
    validation: Validation,
    context_mask: u64,
    context_boost: f32,
    repeat: bool,
}

/// A value found earlier in the same request or conversation, and the candidate that found it
/// (indices, no strings: a request's scope keeps one per distinct value).
#[derive(Debug, Clone)]
pub(crate) struct KnownValue {
    pub(crate) value: String,
    pub(crate) found_as: Candidate,
    /// The bytes of the value.
    bytes: ByteSet,
}

impl KnownValue {
    pub(crate) fn new(value: String, found_as: Candidate) -> Self {
        Self {
            bytes: ByteSet::of(&value),
            value,
            found_as,
        }
    }
}

/// Which bytes a text contains, a bit each. A known value with a byte that the text lacks cannot
/// occur in it: most later turns of a request have no `@`, `+` or the card's digits, and the
/// check settles them without a search (searching every known value in every turn was 17 % of
/// the engine's time over 64-turn requests).
#[derive(Debug, Clone, Copy)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn of(text: &str) -> Self {
        let mut bits = [0u64; 4];
        for &b in text.as_bytes() {
            bits[usize::from(b >> 6)] |= 1 << (b & 63);
        }
        Self(bits)
    }

    fn may_contain(&self, known: &KnownValue) -> bool {
        (0..4).all(|i| known.bytes.0[i] & !self.0[i] == 0)
    }
}

impl Candidate {
    pub(crate) fn from_detection(d: &Detection) -> Self {
        Self {
            start: d.start,
            end: d.end,
            score: d.score,
            recognizer: d.recognizer_index,
            pattern: d.pattern_index,
            validation: d.explanation.validation,
            context_mask: d.context_mask,
            context_boost: d.explanation.context_boost,
            repeat: true,
        }
    }
}

/// Rounds of re-searching inside candidates that lost an overlap.
const MAX_RESCAN_ROUNDS: usize = 3;

/// Most context words one recognizer may list (they are tracked as bits).
pub const MAX_CONTEXT_WORDS: usize = 64;

/// Which entities to look for and how sure a finding must be.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    pub score_threshold: f32,
    /// Only these entity types (all when `None`).
    pub entities: Option<Vec<String>>,
    /// Never these entity types.
    pub exclude_entities: Vec<String>,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self {
            score_threshold: DEFAULT_SCORE_THRESHOLD,
            entities: None,
            exclude_entities: Vec::new(),
        }
    }
}

impl AnalyzeOptions {
    fn wants(&self, entity: &str) -> bool {
        self.entities
            .as_ref()
            .is_none_or(|list| list.iter().any(|e| e == entity))
            && !self.exclude_entities.iter().any(|e| e == entity)
    }
}

#[derive(Clone)]
struct CompiledPattern {
    name: Arc<str>,
    /// The name a finding that repeats a value found elsewhere reports.
    repeat_name: Arc<str>,
    regex: Regex,
    score: f32,
    /// Index of the `value` capture group, when the finding is only part of the match.
    value_group: Option<usize>,
}

#[derive(Clone)]
struct Recognizer {
    name: Arc<str>,
    entity: Arc<str>,
    patterns: Vec<CompiledPattern>,
    context: Vec<String>,
    context_matcher: WordMatcher,
    reject_matcher: WordMatcher,
    reject_prefix: Vec<String>,
    validator: Option<ValidatorKind>,
    context_window: usize,
}

/// A compiled set of recognizers. Build once, share freely: analysis takes `&self`.
#[derive(Clone)]
pub struct Engine {
    recognizers: Vec<Recognizer>,
    prefilters: Vec<Prefilter>,
    /// The file's `<<NAME>>` regex macros, kept for recognizers added later.
    macros: BTreeMap<String, String>,
}

/// The patterns of a group of recognizers in one automaton: a text with no candidate at all (most
/// chat turns) costs one pass; otherwise only the patterns that matched somewhere are run for
/// positions. Built-in and team recognizers are separate groups, so adding a team's few
/// recognizers to a compiled engine compiles only those.
///
/// The pass walks regex's lazy DFA (the engine behind `RegexSet`) in a loop of its own: the set's
/// overlapping search stops at every match and keeps its position in memory, 42 instructions a
/// byte on chat turns, and its answer is a bit per pattern that every text then walks.
struct Prefilter {
    dfa: hybrid::dfa::DFA,
    caches: Pool<hybrid::dfa::Cache, CacheFn>,
    /// DFA pattern index -> (recognizer, pattern).
    pattern_owner: Vec<(usize, usize)>,
}

type CacheFn = Box<dyn Fn() -> hybrid::dfa::Cache + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// The lazy DFA could not finish a search: a byte it cannot decide on (non-ASCII next to a
/// Unicode `\b` in a team's pattern) or a cache it gave up on.
#[derive(Debug)]
struct Undecided;

impl Prefilter {
    fn new(dfa: hybrid::dfa::DFA, pattern_owner: Vec<(usize, usize)>) -> Self {
        let for_caches = dfa.clone();
        let create: CacheFn = Box::new(move || for_caches.create_cache());
        Self {
            dfa,
            caches: Pool::new(create),
            pattern_owner,
        }
    }

    /// Adds to `out` the (recognizer, pattern) of every pattern that matches somewhere in `text`,
    /// in declaration order.
    fn matching_patterns(&self, text: &str, out: &mut Vec<(usize, usize)>) {
        let mut found = FoundPatterns::new(self.pattern_owner.len());
        match self.search(&mut self.caches.get(), text.as_bytes(), &mut found) {
            Ok(()) => out.extend(found.patterns().map(|p| self.pattern_owner[p])),
            // Every pattern is searched instead; their own regexes decide.
            Err(Undecided) => out.extend(self.pattern_owner.iter().copied()),
        }
    }

    /// One forward pass, recording the patterns of every match state it passes through; in two
    /// lanes when the text is long enough.
    fn search(
        &self,
        cache: &mut hybrid::dfa::Cache,
        haystack: &[u8],
        found: &mut FoundPatterns,
    ) -> Result<(), Undecided> {
        if let Some(second) = second_lane_start(haystack)
            && self.search_two_lanes(cache, haystack, second, found)?
        {
            return Ok(());
        }
        let sid = self.start(cache, haystack, 0)?;
        self.walk(cache, haystack, sid, 0, found)
    }

    /// Walks from state `sid` at `at` to the end of the text. Not inlined: on its own, the byte
    /// loop keeps the haystack and the cache in registers.
    #[inline(never)]
    fn walk(
        &self,
        cache: &mut hybrid::dfa::Cache,
        haystack: &[u8],
        mut sid: hybrid::LazyStateID,
        mut at: usize,
        found: &mut FoundPatterns,
    ) -> Result<(), Undecided> {
        let dfa = &self.dfa;
        while at < haystack.len() {
            // Most bytes lead from an untagged state to another (nothing matched, nothing to
            // compute): that loop checks nothing else.
            if !sid.is_tagged() {
                while let Some(&byte) = haystack.get(at) {
                    let next = dfa.next_state_untagged(cache, sid, byte);
                    if next.is_tagged() {
                        break;
                    }
                    sid = next;
                    at += 1;
                }
                if at == haystack.len() {
                    break;
                }
            }
            match self.transition(cache, sid, haystack[at], found)? {
                Some(next) => sid = next,
                None => return Ok(()),
            }
            at += 1;
        }
        // Matches are reported one byte late: the end of the text is one more transition.
        let eoi = dfa.next_eoi_state(cache, sid).map_err(|_| Undecided)?;
        if eoi.is_match() {
            found.read(dfa, cache, eoi);
        }
        Ok(())
    }

    /// The search in two lanes, `Ok(false)` when it could not finish that way (a full cache was
    /// cleared, so state ids held by the other lane mean nothing; or the dead state, which an
    /// unanchored search never reaches): the caller then walks the text in one lane.
    ///
    /// Each transition is a load that depends on the one before, so one walk leaves the core
    /// waiting on memory. Lane A walks the first half while lane B, started fresh at
    /// `second`, walks the second half in the same loop: their loads overlap. B knew nothing of
    /// what came before `second`, so A then walks on until it reaches the state B was in at the
    /// same byte; from there both walks are one, and B finishes the text (over the bench corpus's
    /// chat turns A meets B after 2.9 bytes on average). Every match B reports is a match of the
    /// text, and A reaches every state from which B goes on, so the patterns found are exactly
    /// one walk's.
    #[inline(never)]
    fn search_two_lanes(
        &self,
        cache: &mut hybrid::dfa::Cache,
        haystack: &[u8],
        second: usize,
        found: &mut FoundPatterns,
    ) -> Result<bool, Undecided> {
        let clears = cache.clear_count();
        let mut a = self.start(cache, haystack, 0)?;
        let mut b = self.start(cache, haystack, second)?;
        // B's state after each of its first bytes, for A to meet.
        let mut b_states = [hybrid::LazyStateID::default(); LANE_MEET_WINDOW];
        // A's segment is the shorter one: `second` is at most half the text.
        for i in 0..second {
            let (byte_a, byte_b) = (haystack[i], haystack[second + i]);
            // Both loads first, so that they overlap.
            let (next_a, next_b) = (
                self.next_if_plain(cache, a, byte_a),
                self.next_if_plain(cache, b, byte_b),
            );
            let Some(stepped_a) = self.lane_step(cache, a, next_a, byte_a, clears, found)? else {
                return Ok(false);
            };
            let Some(stepped_b) = self.lane_step(cache, b, next_b, byte_b, clears, found)? else {
                return Ok(false);
            };
            (a, b) = (stepped_a, stepped_b);
            if let Some(slot) = b_states.get_mut(i) {
                *slot = b;
            }
        }
        // A walks on into B's segment until it meets B.
        let meet_until = b_states.len().min(second);
        for (i, &b_state) in b_states[..meet_until].iter().enumerate() {
            let byte = haystack[second + i];
            let next = self.next_if_plain(cache, a, byte);
            let Some(stepped) = self.lane_step(cache, a, next, byte, clears, found)? else {
                return Ok(false);
            };
            a = stepped;
            if a == b_state {
                // One walk from here: B's, which is further on.
                self.walk(cache, haystack, b, 2 * second, found)?;
                return Ok(true);
            }
        }
        // They did not meet: A walks the rest of the text alone (what B found still stands).
        self.walk(cache, haystack, a, second + meet_until, found)?;
        Ok(true)
    }

    /// The state after `byte` from `sid` when both are plain states (untagged: nothing to compute,
    /// nothing matched); otherwise a tagged id, for [`Prefilter::lane_step`] to resolve.
    #[inline(always)]
    fn next_if_plain(
        &self,
        cache: &hybrid::dfa::Cache,
        sid: hybrid::LazyStateID,
        byte: u8,
    ) -> hybrid::LazyStateID {
        if sid.is_tagged() {
            sid
        } else {
            self.dfa.next_state_untagged(cache, sid, byte)
        }
    }

    /// A lane's state after `byte` from `sid`, given `next` from [`Prefilter::next_if_plain`]:
    /// `next` itself when plain, else the full transition. `None` when the lanes must stop: the
    /// dead state, or a cache cleared since `clears` (the other lane's state id means nothing).
    #[inline(always)]
    fn lane_step(
        &self,
        cache: &mut hybrid::dfa::Cache,
        sid: hybrid::LazyStateID,
        next: hybrid::LazyStateID,
        byte: u8,
        clears: usize,
        found: &mut FoundPatterns,
    ) -> Result<Option<hybrid::LazyStateID>, Undecided> {
        if !next.is_tagged() {
            return Ok(Some(next));
        }
        let next = self.transition(cache, sid, byte, found)?;
        Ok(next.filter(|_| cache.clear_count() == clears))
    }

    /// The state after `byte` from `sid`, computing it if it is new and reading the patterns of
    /// a match state; `None` at the dead state (no match can follow).
    fn transition(
        &self,
        cache: &mut hybrid::dfa::Cache,
        sid: hybrid::LazyStateID,
        byte: u8,
        found: &mut FoundPatterns,
    ) -> Result<Option<hybrid::LazyStateID>, Undecided> {
        let next = self
            .dfa
            .next_state(cache, sid, byte)
            .map_err(|_| Undecided)?;
        if next.is_match() {
            found.read(&self.dfa, cache, next);
        } else if next.is_quit() {
            return Err(Undecided);
        } else if next.is_dead() {
            return Ok(None);
        }
        Ok(Some(next))
    }

    /// The start state of a walk from `at`, which sees the byte before it (for `\b`).
    fn start(
        &self,
        cache: &mut hybrid::dfa::Cache,
        haystack: &[u8],
        at: usize,
    ) -> Result<hybrid::LazyStateID, Undecided> {
        self.dfa
            .start_state_forward(cache, &Input::new(haystack).range(at..))
            .map_err(|_| Undecided)
    }
}

/// Texts this long or longer are walked in two lanes.
const TWO_LANES_FROM: usize = 48;
/// How many bytes into the second lane's segment the first lane looks for it.
const LANE_MEET_WINDOW: usize = 16;

/// Where the second lane of a walk starts: after the last space in the 8 bytes up to the middle
/// of the text (a walk started after a space meets the walk before it soonest), else at the
/// char boundary at or before the middle. `None` for a text too short for two lanes. Either start
/// is at least 24 bytes in (a char is at most 4 bytes).
fn second_lane_start(haystack: &[u8]) -> Option<usize> {
    if haystack.len() < TWO_LANES_FROM {
        return None;
    }
    let middle = haystack.len() / 2;
    let after_space = haystack[middle - 8..middle]
        .iter()
        .rposition(|&b| b == b' ')
        .map(|i| middle - 8 + i + 1);
    after_space.or_else(|| (0..=middle).rev().find(|&i| haystack[i] & 0xC0 != 0x80))
}

/// The patterns a walk found, a bit per DFA pattern. A run of digits can stay in one match state
/// for many bytes: the last few match states read are not read again.
struct FoundPatterns {
    /// Inline up to 128 patterns (the built-in group has 123): no allocation per text.
    bits: SmallVec<[u64; 2]>,
    /// Recently read match states, with the cache's clear count then (a cleared cache reuses
    /// state ids).
    recent: [(hybrid::LazyStateID, usize); 4],
    next_recent: usize,
}

impl FoundPatterns {
    fn new(patterns: usize) -> Self {
        Self {
            bits: smallvec::smallvec![0; patterns.div_ceil(64)],
            // A match state is never the default (unknown) id, so these never hit.
            recent: [(hybrid::LazyStateID::default(), usize::MAX); 4],
            next_recent: 0,
        }
    }

    /// Records the patterns of match state `state`.
    fn read(
        &mut self,
        dfa: &hybrid::dfa::DFA,
        cache: &hybrid::dfa::Cache,
        state: hybrid::LazyStateID,
    ) {
        let key = (state, cache.clear_count());
        if self.recent.contains(&key) {
            return;
        }
        self.recent[self.next_recent % self.recent.len()] = key;
        self.next_recent += 1;
        for i in 0..dfa.match_len(cache, state) {
            let pattern = dfa.match_pattern(cache, state, i).as_usize();
            self.bits[pattern / 64] |= 1 << (pattern % 64);
        }
    }

    /// The patterns found, in order.
    fn patterns(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits.iter().enumerate().flat_map(|(word, &bits)| {
            let mut rest = bits;
            std::iter::from_fn(move || {
                let bit = (rest != 0).then(|| rest.trailing_zeros() as usize)?;
                rest &= rest - 1;
                Some(word * 64 + bit)
            })
        })
    }
}

impl Clone for Prefilter {
    fn clone(&self) -> Self {
        Self::new(self.dfa.clone(), self.pattern_owner.clone())
    }
}

fn expand_macros(regex: &str, macros: &BTreeMap<String, String>) -> String {
    let mut out = regex.to_owned();
    for (name, body) in macros {
        out = out.replace(&format!("<<{name}>>"), body);
    }
    out
}

/// A deny-list becomes one case-insensitive alternation of escaped literals.
fn deny_list_regex(words: &[String]) -> String {
    let mut sorted: Vec<&String> = words.iter().filter(|w| !w.trim().is_empty()).collect();
    // Longest first, so "Project Falcon X" wins over "Project Falcon".
    sorted.sort_by_key(|w| std::cmp::Reverse(w.len()));
    let alternatives: Vec<String> = sorted.iter().map(|w| regex::escape(w.trim())).collect();
    format!("(?i:{})", alternatives.join("|"))
}

impl Engine {
    /// The built-in recognizers only.
    pub fn builtin() -> Result<Self, RedactError> {
        Self::from_file(&RecognizerFile::builtin())
    }

    /// Compiles a recognizer file.
    pub fn from_file(file: &RecognizerFile) -> Result<Self, RedactError> {
        let mut engine = Self {
            recognizers: Vec::new(),
            prefilters: Vec::new(),
            macros: file.macros.clone(),
        };
        engine.add_group(&file.recognizers)?;
        Ok(engine)
    }

    /// This engine plus `extra` recognizers (a team's deny-lists and patterns, with the same
    /// macros); only the extra ones are compiled.
    pub fn extend(&self, extra: &[RecognizerSpec]) -> Result<Self, RedactError> {
        let mut engine = self.clone();
        engine.add_group(extra)?;
        Ok(engine)
    }

    fn add_group(&mut self, specs: &[RecognizerSpec]) -> Result<(), RedactError> {
        let mut sources = Vec::new();
        let mut pattern_owner = Vec::new();
        let mut names: std::collections::BTreeSet<String> = self
            .recognizers
            .iter()
            .map(|r| r.name.to_string())
            .collect();
        for spec in specs {
            if !names.insert(spec.name.clone()) {
                return Err(RedactError::DuplicateRecognizer(spec.name.clone()));
            }
            if spec.entity.trim().is_empty() {
                return Err(RedactError::InvalidRecognizer {
                    recognizer: spec.name.clone(),
                    reason: "entity is empty".into(),
                });
            }
            if spec.context.len() > MAX_CONTEXT_WORDS {
                return Err(RedactError::InvalidRecognizer {
                    recognizer: spec.name.clone(),
                    reason: format!("more than {MAX_CONTEXT_WORDS} context words"),
                });
            }
            let mut pattern_specs: Vec<(String, String, f32)> = spec
                .patterns
                .iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        expand_macros(&p.regex, &self.macros),
                        p.score,
                    )
                })
                .collect();
            if !spec.deny_list.is_empty() {
                pattern_specs.push((
                    "deny_list".into(),
                    deny_list_regex(&spec.deny_list),
                    spec.deny_list_score,
                ));
            }
            if pattern_specs.is_empty() {
                return Err(RedactError::InvalidRecognizer {
                    recognizer: spec.name.clone(),
                    reason: "has neither patterns nor a deny_list".into(),
                });
            }
            let index = self.recognizers.len();
            let mut patterns = Vec::new();
            for (name, source, score) in pattern_specs {
                if !(0.0..=1.0).contains(&score) {
                    return Err(RedactError::InvalidRecognizer {
                        recognizer: spec.name.clone(),
                        reason: format!("pattern `{name}` score {score} is outside 0..=1"),
                    });
                }
                let regex = RegexBuilder::new(&source)
                    .size_limit(1 << 22)
                    .build()
                    .map_err(|e| RedactError::BadPattern {
                        recognizer: spec.name.clone(),
                        pattern: name.clone(),
                        reason: e.to_string(),
                    })?;
                let value_group = regex.capture_names().position(|n| n == Some("value"));
                pattern_owner.push((index, patterns.len()));
                sources.push(source);
                patterns.push(CompiledPattern {
                    repeat_name: format!("{name}{REPEAT_SUFFIX}").into(),
                    name: name.into(),
                    regex,
                    score,
                    value_group,
                });
            }
            let lower = |words: &[String]| -> Vec<String> {
                words.iter().map(|w| w.to_lowercase()).collect()
            };
            self.recognizers.push(Recognizer {
                name: spec.name.as_str().into(),
                entity: spec.entity.as_str().into(),
                patterns,
                context_matcher: WordMatcher::new(&spec.context),
                reject_matcher: WordMatcher::new(&spec.reject_context),
                context: lower(&spec.context),
                reject_prefix: spec.reject_prefix.clone(),
                validator: spec.validator,
                context_window: spec.context_window,
            });
        }
        // The prefilter runs over every text. Its lazy DFA adds states as new inputs need them;
        // with a 2 MiB cache (`RegexSet`'s default), varied PII values (every card and IBAN
        // different) filled it, the cache was cleared again and again and the set's search fell
        // back to the PikeVM, 13x slower on a labeled set of distinct values. 64 MiB holds them.
        // `MatchKind::All` reports every pattern that matches anywhere, as a `RegexSet` does.
        // Unicode `\b` (none built in; a team's pattern may have one) makes non-ASCII bytes quit
        // the search, which then falls back to searching every pattern of the group.
        let dfa = hybrid::dfa::DFA::builder()
            .configure(
                hybrid::dfa::Config::new()
                    .match_kind(MatchKind::All)
                    .cache_capacity(64 << 20)
                    .unicode_word_boundary(true),
            )
            .thompson(
                thompson::Config::new()
                    .nfa_size_limit(Some(1 << 24))
                    .which_captures(thompson::WhichCaptures::None),
            )
            .build_many(&sources)
            .map_err(|e| RedactError::BadPattern {
                recognizer: "*".into(),
                pattern: "prefilter".into(),
                reason: e.to_string(),
            })?;
        self.prefilters.push(Prefilter::new(dfa, pattern_owner));
        Ok(())
    }

    /// Runs the analyzer over sample PII in every built-in format and a few thousand generated
    /// chat sentences, so the regex engines' lazily built automata hold the states ordinary text
    /// needs before the first real request. The PII samples are also redacted, which walks the
    /// type-tagged text (`call me on <PHONE_NUMBER>`) that every redaction with findings analyses
    /// once more. Worth doing before a pre-initialization snapshot: every fresh instance then
    /// starts warm (see `warm_up.rs` for what it saves).
    pub fn warm_up(&self) {
        let options = AnalyzeOptions {
            score_threshold: 0.0,
            ..AnalyzeOptions::default()
        };
        for text in crate::warm_up::PII_SAMPLES {
            std::hint::black_box(self.analyze(text, &options));
            std::hint::black_box(self.redact(
                text,
                &crate::Policy::default(),
                &mut crate::RequestScope::default(),
            ));
        }
        for text in crate::warm_up::generated_sentences() {
            std::hint::black_box(self.analyze(&text, &options));
        }
    }

    /// Entity types this engine can find, in declaration order, without duplicates.
    pub fn supported_entities(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.recognizers {
            if !out.iter().any(|e| *e == *r.entity) {
                out.push(r.entity.to_string());
            }
        }
        out
    }

    /// Whether some recognizer finds `entity`.
    pub fn supports_entity(&self, entity: &str) -> bool {
        self.recognizers.iter().any(|r| *r.entity == *entity)
    }

    /// Finds entities in `text`, resolves overlaps, and returns them sorted by position.
    ///
    /// Overlap strategy (explicit, deterministic): candidates are ranked by score (higher first),
    /// then length (longer first), then recognizer declaration order, then position; each candidate
    /// is kept if it overlaps no candidate already kept. A finding never partially covers another.
    pub fn analyze(&self, text: &str, options: &AnalyzeOptions) -> Vec<Detection> {
        self.analyze_with_known(text, options, &[], "")
    }

    /// The entity type `c` was found as.
    pub(crate) fn entity_of(&self, c: &Candidate) -> &str {
        &self.recognizers[c.recognizer].entity
    }

    /// [`Engine::analyze`], also finding `known` values (found earlier in the same request or
    /// conversation) wherever they recur in `text`. `carried_context` is the end of the text
    /// before this one in the conversation: its context words count for matches near the start
    /// of `text` ("What is your date of birth?", then "14/03/1985").
    pub(crate) fn analyze_with_known(
        &self,
        text: &str,
        options: &AnalyzeOptions,
        known: &[KnownValue],
        carried_context: &str,
    ) -> Vec<Detection> {
        // A finding is never empty. Returning here also keeps a fresh component instance's
        // memory untouched for an empty text (the prefilter's cache is 20 pages away).
        if text.is_empty() {
            return Vec::new();
        }
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut matched = Vec::new();
        for prefilter in &self.prefilters {
            prefilter.matching_patterns(text, &mut matched);
        }
        for (ri, pi) in matched {
            let recognizer = &self.recognizers[ri];
            if !options.wants(&recognizer.entity) {
                continue;
            }
            // A pattern scored under the threshold needs a context word near its match; with
            // none anywhere in the text, none of its matches can be reported, so its search,
            // validations and context windows are skipped (most order numbers and digit runs).
            let needs_context = recognizer.patterns[pi].score < options.score_threshold;
            if !needs_context
                || recognizer.context_matcher.any_in(text)
                || recognizer.context_matcher.any_in(carried_context)
            {
                self.scan(
                    text,
                    carried_context,
                    ri,
                    pi,
                    0,
                    text.len(),
                    options.score_threshold,
                    &mut candidates,
                );
            }
        }
        let mut kept = resolve_overlaps(candidates.clone());
        // A pattern's search goes on after each candidate it accepted. When overlap resolution
        // then drops that candidate (a phone beat a card-shaped run "2671 4111 ..."), whatever
        // the pattern would have found inside the dropped span was never looked for: search the
        // uncovered rest of each dropped span again. Bounded: each round only looks inside spans
        // dropped in the round before.
        for _ in 0..MAX_RESCAN_ROUNDS {
            let mut found_more = Vec::new();
            for c in &candidates {
                if is_kept(&kept, c) {
                    continue;
                }
                let resume = kept
                    .iter()
                    .filter(|k| k.start < c.end && k.end > c.start)
                    .map(|k| k.end)
                    .max()
                    .unwrap_or(c.end);
                if resume < c.end {
                    self.scan(
                        text,
                        carried_context,
                        c.recognizer,
                        c.pattern,
                        resume,
                        c.end,
                        options.score_threshold,
                        &mut found_more,
                    );
                }
            }
            found_more.retain(|n| {
                !candidates.iter().any(|c| {
                    c.start == n.start
                        && c.end == n.end
                        && c.pattern == n.pattern
                        && c.recognizer == n.recognizer
                })
            });
            if found_more.is_empty() {
                break;
            }
            candidates.extend(found_more);
            kept = resolve_overlaps(candidates.clone());
        }
        keep_container_remnants(text, &candidates, &mut kept, |ri| {
            &*self.recognizers[ri].entity
        });
        let text_bytes = ByteSet::of(if known.is_empty() { "" } else { text });
        let known = known
            .iter()
            .filter(|k| text_bytes.may_contain(k))
            .filter(|k| options.wants(self.entity_of(&k.found_as)))
            .map(|k| (k.value.as_str(), k.found_as));
        propagate_repeats(text, &mut kept, known);
        kept.into_iter().map(|c| self.detection(c)).collect()
    }

    /// Finds `pattern`'s candidates whose match starts in `from..until`.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        text: &str,
        carried_context: &str,
        ri: usize,
        pi: usize,
        from: usize,
        until: usize,
        threshold: f32,
        out: &mut Vec<Candidate>,
    ) {
        let pattern = &self.recognizers[ri].patterns[pi];
        // Search by hand rather than with `find_iter`: when a greedy match is rejected (a bank
        // number followed by a card swallows the card's first digits), the search resumes at the
        // next word inside the rejected match instead of after it.
        let mut pos = from;
        // Capture slots for patterns with a `value` group, allocated once per scan.
        let mut locations = pattern
            .value_group
            .map(|_| pattern.regex.capture_locations());
        while pos <= text.len() {
            let Some((match_start, match_end, start, end)) =
                next_match(pattern, text, pos, locations.as_mut())
            else {
                break;
            };
            if match_start >= until {
                break;
            }
            match self.score_candidate(text, carried_context, ri, pi, start, end) {
                Some(c) if c.score >= threshold => {
                    pos = c.end.max(match_start + 1);
                    out.push(c);
                }
                _ => {
                    pos = next_word_start(text, match_start, match_end)
                        .unwrap_or(match_end.max(match_start + 1))
                }
            }
            while pos < text.len() && !text.is_char_boundary(pos) {
                pos += 1;
            }
        }
    }

    fn detection(&self, c: Candidate) -> Detection {
        let recognizer = &self.recognizers[c.recognizer];
        let pattern = &recognizer.patterns[c.pattern];
        let pattern_name = if c.repeat {
            pattern.repeat_name.clone()
        } else {
            pattern.name.clone()
        };
        Detection {
            entity_type: recognizer.entity.clone(),
            start: c.start,
            end: c.end,
            score: c.score,
            recognizer: recognizer.name.clone(),
            explanation: Explanation {
                pattern: pattern_name,
                pattern_score: pattern.score,
                validator: recognizer.validator.map(ValidatorKind::name),
                validation: c.validation,
                context_words: recognizer
                    .context
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| c.context_mask & (1 << i) != 0)
                    .map(|(_, w)| w.clone())
                    .collect(),
                context_boost: c.context_boost,
            },
            recognizer_index: c.recognizer,
            pattern_index: c.pattern,
            context_mask: c.context_mask,
        }
    }

    fn score_candidate(
        &self,
        text: &str,
        carried_context: &str,
        ri: usize,
        pi: usize,
        start: usize,
        mut end: usize,
    ) -> Option<Candidate> {
        let recognizer = &self.recognizers[ri];
        let pattern = &recognizer.patterns[pi];
        if start == end {
            return None;
        }
        let validation = match recognizer.validator {
            None => Validation::NotChecked,
            Some(validator) => match validate_or_shorten(validator, text, start, end) {
                Verdict::Valid => Validation::Valid,
                Verdict::ValidUntil(new_end) => {
                    end = new_end;
                    Validation::ValidPrefix
                }
                Verdict::Invalid(_) => return None,
            },
        };
        if !on_word_boundaries(text, start, end) {
            return None;
        }
        let before = text[..start].trim_end_matches([' ', '\u{3000}']);
        if recognizer
            .reject_prefix
            .iter()
            .any(|p| before.ends_with(p.as_str()))
        {
            return None;
        }
        if recognizer.reject_matcher.any_in(reject_window(text, start)) {
            return None;
        }
        let mut score = pattern.score;
        let before = words_before(text, start, recognizer.context_window);
        // A window that reaches the start of the text goes on into the previous text's end.
        let carried = if before.len() == start {
            carried_context
        } else {
            ""
        };
        let context_mask = recognizer.context_matcher.mask_in(&[
            carried,
            before,
            words_after(text, end, CONTEXT_WORDS_AFTER),
        ]);
        let context_boost = if context_mask == 0 {
            0.0
        } else {
            let boosted = (score + CONTEXT_BOOST).clamp(MIN_SCORE_WITH_CONTEXT, 1.0);
            let boost = boosted - score;
            score = boosted;
            boost
        };
        Some(Candidate {
            start,
            end,
            score,
            recognizer: ri,
            pattern: pi,
            validation,
            context_mask,
            context_boost,
            repeat: false,
        })
    }
}

/// Longest span a greedy match may be shortened to when its whole fails validation.
const MAX_SHORTEN_SPAN: usize = 64;

/// Validates `start..end`; if that fails, tries the prefixes that end where a digit group ends
/// ("+44 20 7946 0958 00:1A:..." swallowed the next token), longest first.
fn validate_or_shorten(validator: ValidatorKind, text: &str, start: usize, end: usize) -> Verdict {
    let verdict = validator.validate(text, start, end);
    if !matches!(verdict, Verdict::Invalid(_))
        || end - start > MAX_SHORTEN_SPAN
        || !validator.judges_prefixes()
    {
        return verdict;
    }
    // Longest first: walk back from the end, trying each cut after a word character that a
    // non-word character follows.
    let mut following: Option<char> = None;
    for (i, c) in text[start..end].char_indices().rev() {
        let ends_group = following.is_some_and(|n| is_word_char(c) && !is_word_char(n));
        following = Some(c);
        if !ends_group {
            continue;
        }
        let cut = start + i + c.len_utf8();
        match validator.validate(text, start, cut) {
            Verdict::Valid => return Verdict::ValidUntil(cut),
            Verdict::ValidUntil(e) => return Verdict::ValidUntil(e),
            Verdict::Invalid(_) => {}
        }
    }
    verdict
}

/// The next match of `pattern` at or after `pos`: the whole match, then the finding's span (the
/// `value` group when the pattern has one).
fn next_match(
    pattern: &CompiledPattern,
    text: &str,
    pos: usize,
    locations: Option<&mut CaptureLocations>,
) -> Option<(usize, usize, usize, usize)> {
    match (pattern.value_group, locations) {
        (Some(group), Some(locations)) => {
            let whole = pattern.regex.captures_read_at(locations, text, pos)?;
            let (start, end) = locations.get(group).unwrap_or((whole.start(), whole.end()));
            Some((whole.start(), whole.end(), start, end))
        }
        _ => {
            let m = pattern.regex.find_at(text, pos)?;
            Some((m.start(), m.end(), m.start(), m.end()))
        }
    }
}

/// Byte offset of the first word character in `pos..until` (after `pos`) that follows a
/// non-word character. Bounded: searching on to the end of the text after every rejected match
/// made a text without words (200 KB of ":") quadratic.
fn next_word_start(text: &str, pos: usize, until: usize) -> Option<usize> {
    let mut prev_is_word = true;
    for (i, c) in text[pos..until].char_indices().skip(1) {
        let w = is_word_char(c);
        if w && !prev_is_word {
            return Some(pos + i);
        }
        prev_is_word = w;
    }
    None
}

fn resolve_overlaps(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.sort_by(precedence);
    // What is kept stays disjoint: a lookup per candidate, not a scan of everything kept so far.
    let mut covered: BTreeMap<usize, usize> = BTreeMap::new();
    candidates.retain(|c| {
        let free = is_uncovered(&covered, c.start, c.end);
        if free {
            covered.insert(c.start, c.end);
        }
        free
    });
    candidates.sort_by_key(|d| d.start);
    candidates
}

/// Which of two candidates goes first where they compete: the higher score, then the longer
/// span, then the recognizer declared first, then the earlier start.
fn precedence(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.score
        .total_cmp(&a.score)
        .then((b.end - b.start).cmp(&(a.end - a.start)))
        .then(a.recognizer.cmp(&b.recognizer))
        .then(a.start.cmp(&b.start))
}

/// A candidate that lost to findings lying wholly inside it still covers the rest of its span.
/// When they are all of its own type (a whole phone number that lost to a better-scored part of
/// it), it replaces them: one value, one finding. Otherwise (a link with an e-mail address in its
/// query string) each uncovered piece with a letter or digit in it is kept as a finding of the
/// container's type, trimmed of spaces. Without this only the better-scored e-mail address was
/// redacted and the `&token=…` after it stayed in the text. (Presidio's anonymizer lets the
/// container win outright; keeping both types means a policy that keeps links still redacts the
/// address inside one.) A candidate that only partly overlaps a finding is no container: its
/// uncovered rest was searched again above.
fn keep_container_remnants<'e>(
    text: &str,
    candidates: &[Candidate],
    kept: &mut Vec<Candidate>,
    entity_of: impl Fn(usize) -> &'e str,
) {
    let mut dropped: Vec<Candidate> = candidates
        .iter()
        .filter(|c| !is_kept(kept, c))
        .copied()
        .collect();
    dropped.sort_by(precedence);
    for container in dropped {
        // `kept` is sorted by start and disjoint: the findings overlapping the container are
        // one run of it.
        let first = kept.partition_point(|k| k.end <= container.start);
        let last = kept.partition_point(|k| k.start < container.end);
        let inside = &kept[first..last];
        if inside.is_empty()
            || inside
                .iter()
                .any(|k| k.start < container.start || k.end > container.end)
        {
            continue;
        }
        // A candidate with nothing of its own outside the findings (the same span found by two
        // recognizers of one type: "310-795-2210" as a NANP number and as an Italian mobile's
        // shape) covers nothing more; the better-scored finding stands.
        let mut gaps = inside.iter().map(|k| k.start).chain([container.end]).zip(
            [container.start]
                .into_iter()
                .chain(inside.iter().map(|k| k.end)),
        );
        if !gaps
            .any(|(gap_end, gap_start)| text[gap_start..gap_end].chars().any(char::is_alphanumeric))
        {
            continue;
        }
        let entity = entity_of(container.recognizer);
        if inside.iter().all(|k| entity_of(k.recognizer) == entity) {
            kept.splice(first..last, [container]);
            continue;
        }
        // The run, rebuilt in order with the pieces between its findings, replaces itself: no
        // sort of everything kept per container (a text of many such links stays linear).
        let mut run = Vec::with_capacity(2 * inside.len() + 1);
        let mut from = container.start;
        for k in inside.iter().map(Some).chain([None]) {
            let next_start = k.map_or(container.end, |k| k.start);
            let piece = &text[from..next_start];
            let trimmed = piece.trim();
            if trimmed.chars().any(char::is_alphanumeric) {
                let start = from + (piece.len() - piece.trim_start().len());
                run.push(Candidate {
                    start,
                    end: start + trimmed.len(),
                    ..container
                });
            }
            if let Some(k) = k {
                run.push(*k);
                from = k.end;
            }
        }
        kept.splice(first..last, run);
    }
}

/// Whether `c` is one of `kept` (sorted by start and disjoint, so only one can start where it
/// does): a lookup, not a scan, since a long text has thousands of candidates.
fn is_kept(kept: &[Candidate], c: &Candidate) -> bool {
    let i = kept.partition_point(|k| k.start < c.start);
    kept.get(i)
        .is_some_and(|k| k.start == c.start && k.end == c.end && k.recognizer == c.recognizer)
}

/// Whether `start..end` overlaps none of the disjoint spans in `covered` (start → end): only the
/// span starting last before `end` can overlap it, so one lookup answers.
fn is_uncovered(covered: &BTreeMap<usize, usize>, start: usize, end: usize) -> bool {
    covered
        .range(..end)
        .next_back()
        .is_none_or(|(_, &covered_end)| covered_end <= start)
}

/// A value found once is redacted everywhere it occurs in the same text, and in the later texts
/// of the same request or conversation: a phone number typed a second time without the words that
/// gave it away must not survive the first redaction.
fn propagate_repeats<'k>(
    text: &'k str,
    kept: &mut Vec<Candidate>,
    known: impl Iterator<Item = (&'k str, Candidate)>,
) {
    let value = |c: &Candidate| &text[c.start..c.end];
    // Each value found here once, in text order: the first template to claim a value covers all
    // its free occurrences, so a later one with the same value would only rescan the text (a
    // text of thousands of equal findings, "ab:" × 8,000, was cubic). Sorting, not a hash set:
    // texts have a handful of findings, and the scope's values are distinct already.
    let mut firsts: Vec<usize> = (0..kept.len()).collect();
    firsts.sort_by(|&a, &b| value(&kept[a]).cmp(value(&kept[b])).then(a.cmp(&b)));
    firsts.dedup_by(|later, first| value(&kept[*later]) == value(&kept[*first]));
    firsts.sort_unstable();
    let templates = firsts
        .into_iter()
        .map(|i| (value(&kept[i]), kept[i]))
        .chain(known);
    let mut repeats = Repeats::default();
    for (value, template) in templates {
        repeats.add(text, value, template, kept);
    }
    if !repeats.found.is_empty() {
        kept.append(&mut repeats.found);
        kept.sort_by_key(|c| c.start);
    }
}

/// The repeats found so far, and the spans they cover (start → end).
#[derive(Default)]
struct Repeats {
    found: Vec<Candidate>,
    covered: BTreeMap<usize, usize>,
}

impl Repeats {
    /// Adds a repeat of `template` wherever `value` occurs in `text` outside `kept` (sorted by
    /// start, disjoint) and the repeats found before.
    fn add(&mut self, text: &str, value: &str, template: Candidate, kept: &[Candidate]) {
        for start in occurrences(text, value) {
            let end = start + value.len();
            // As in `is_uncovered`: only the kept span starting last before `end` can overlap.
            let starting_before_end = &kept[..kept.partition_point(|k| k.start < end)];
            let free_of_kept = starting_before_end.last().is_none_or(|k| k.end <= start);
            if free_of_kept
                && is_uncovered(&self.covered, start, end)
                && stands_apart(text, start, end)
            {
                self.found.push(Candidate {
                    start,
                    end,
                    repeat: true,
                    ..template
                });
                self.covered.insert(start, end);
            }
        }
    }
}

/// Byte offsets where `needle` occurs in `haystack`: a vectorized scan for the needle's first
/// byte, then a compare. The texts are chat turns and the needles short, where building a
/// substring searcher per needle (`str::match_indices`, `memmem`) costs more than the search.
fn occurrences<'a>(haystack: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let first = n.first().copied();
    first
        .into_iter()
        .flat_map(move |b| memchr::memchr_iter(b, h))
        .filter(move |&i| h[i..].starts_with(n))
}

/// Marks, in an explanation, a finding that repeats a value found elsewhere.
const REPEAT_SUFFIX: &str = " (repeat)";

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn on_word_boundaries(text: &str, start: usize, end: usize) -> bool {
    bounded_by(text, start, end, is_word_char)
}

/// A repeat of a known value needs only that no letter or digit be glued to it: `_` and other
/// punctuation separate it (`ref_011000015` shows the number to any reader). Looser than the
/// word boundaries that patterns need, because the value is already known to be PII (a fuzzer
/// found the repeat in `x_011000015` surviving when `_` counted as a word character).
fn stands_apart(text: &str, start: usize, end: usize) -> bool {
    bounded_by(text, start, end, char::is_alphanumeric)
}

/// No `is_word` character is glued to an `is_word` character at either end of `start..end`.
fn bounded_by(text: &str, start: usize, end: usize, is_word: fn(char) -> bool) -> bool {
    let word = |c: Option<char>| c.is_some_and(is_word);
    let span = &text[start..end];
    (!word(span.chars().next()) || !word(text[..start].chars().next_back()))
        && (!word(span.chars().next_back()) || !word(text[end..].chars().next()))
}

/// The most bytes a context window gives each word. Chat words are short; without a cap, a text
/// with no whitespace (200 KB of "ab:ab:…") made every candidate's window the whole text before
/// it, and the engine quadratic.
const MAX_BYTES_PER_WORD: usize = 64;

/// The slice of `text` holding up to `n` words before `pos`, at most `n` × [`MAX_BYTES_PER_WORD`]
/// bytes (then starting after a non-alphanumeric character, so no word is cut in two).
fn words_before(text: &str, pos: usize, n: usize) -> &str {
    let mut floor = pos.saturating_sub(n * MAX_BYTES_PER_WORD);
    while !text.is_char_boundary(floor) {
        floor -= 1;
    }
    let head = &text[floor..pos];
    let mut words = 0;
    let mut in_word = false;
    for (i, c) in head.char_indices().rev() {
        let w = !c.is_whitespace();
        if w && !in_word {
            words += 1;
            if words > n {
                return &head[i + c.len_utf8()..];
            }
        }
        in_word = w;
    }
    if floor == 0 {
        return head;
    }
    head.find(|c: char| !c.is_alphanumeric())
        .map_or("", |i| &head[i..])
}

/// Where a reject word discards a match starting at `pos`: the [`REJECT_WINDOW_WORDS`] words
/// before it, cut after the last word with a digit. A label names the value right after it, so
/// in "routing 021000021 account 000123456789" and "account 12345678, phone 212 555 0132" the
/// first label belongs to the first number and must not discard the second. Digits inside a type
/// tag (`<PERSON_1>`) do not cut: the value the tag replaced may have had none, and redacting
/// redacted text must not find what the original text did not.
fn reject_window(text: &str, pos: usize) -> &str {
    let window = words_before(text, pos, REJECT_WINDOW_WORDS);
    let last_digit = window
        .char_indices()
        .rev()
        .find(|&(i, c)| digit_value(c).is_some() && !inside_type_tag(window, i, i + c.len_utf8()));
    match last_digit {
        None => window,
        Some((i, _)) => {
            let rest = &window[i..];
            rest.find(char::is_whitespace)
                .map_or("", |end| &rest[end..])
        }
    }
}

/// The slice of `text` holding up to `n` words after `pos`, capped like [`words_before`].
fn words_after(text: &str, pos: usize, n: usize) -> &str {
    let mut ceiling = (pos + n * MAX_BYTES_PER_WORD).min(text.len());
    while !text.is_char_boundary(ceiling) {
        ceiling += 1;
    }
    let tail = &text[pos..ceiling];
    let mut words = 0;
    let mut in_word = false;
    for (i, c) in tail.char_indices() {
        let w = !c.is_whitespace();
        if w && !in_word {
            words += 1;
            if words > n {
                return &tail[..i];
            }
        }
        in_word = w;
    }
    if ceiling == text.len() {
        return tail;
    }
    tail.rfind(|c: char| !c.is_alphanumeric())
        .map_or("", |i| &tail[..i])
}

/// Finds a recognizer's context (or reject) words in a window of text in one pass: ASCII
/// case-insensitive, whole words only (no letter or digit directly around a hit). A word with an
/// apostrophe also matches with phones' typographic one ("driver’s license").
#[derive(Clone)]
struct WordMatcher(Option<WordAutomaton>);

#[derive(Clone)]
struct WordAutomaton {
    automaton: AhoCorasick,
    /// Automaton pattern -> index of the word in the recognizer's list.
    word_of_pattern: Vec<usize>,
}

impl WordMatcher {
    fn new(words: &[String]) -> Self {
        let mut patterns = Vec::with_capacity(words.len());
        let mut word_of_pattern = Vec::with_capacity(words.len());
        for (i, word) in words.iter().enumerate() {
            patterns.push(word.clone());
            word_of_pattern.push(i);
            if word.contains('\'') {
                patterns.push(word.replace('\'', "’"));
                word_of_pattern.push(i);
            }
        }
        if patterns.is_empty() {
            return Self(None);
        }
        // The words come from validated specs; a failure here would only mean "no context".
        Self(
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(&patterns)
                .ok()
                .map(|automaton| WordAutomaton {
                    automaton,
                    word_of_pattern,
                }),
        )
    }

    /// Bit i set when word i occurs in any of `windows`.
    fn mask_in(&self, windows: &[&str]) -> u64 {
        let Some(words) = &self.0 else { return 0 };
        let mut mask = 0u64;
        for window in windows {
            for m in words.automaton.find_overlapping_iter(*window) {
                if is_whole_word(window, m.start(), m.end())
                    && !inside_type_tag(window, m.start(), m.end())
                {
                    mask |= 1 << words.word_of_pattern[m.pattern().as_usize()];
                }
            }
        }
        mask
    }

    fn any_in(&self, window: &str) -> bool {
        self.mask_in(&[window]) != 0
    }
}

/// True when `start..end` lies inside a type tag this engine wrote (`<US_BANK_NUMBER>`,
/// `<PERSON_2>`, `<EMAIL_ADDRESS#3f9a…>`): a replaced value is not context for its neighbours,
/// or redacting redacted text would find "bank" in `<US_BANK_NUMBER>` and report the number
/// next to it (a fuzzer found exactly that).
fn inside_type_tag(haystack: &str, start: usize, end: usize) -> bool {
    let is_tag_char = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'#';
    let bytes = haystack.as_bytes();
    let open = bytes[..start].iter().rposition(|b| !is_tag_char(b));
    let close = bytes[end..]
        .iter()
        .position(|b| !is_tag_char(b))
        .map(|i| end + i);
    match (open, close) {
        (Some(open), Some(close)) => {
            bytes[open] == b'<'
                && bytes[close] == b'>'
                && bytes.get(open + 1).is_some_and(u8::is_ascii_uppercase)
        }
        _ => false,
    }
}

fn is_whole_word(haystack: &str, start: usize, end: usize) -> bool {
    haystack.is_char_boundary(start)
        && haystack.is_char_boundary(end)
        && !haystack[..start]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
        && !haystack[end..]
            .chars()
            .next()
            .is_some_and(char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn context_words_inside_type_tags_do_not_count() {
        let m = WordMatcher::new(&["bank".into(), "phone".into()]);
        // (window, bits set)
        let cases: &[(&str, u64)] = &[
            ("my bank account", 0b01),
            ("<US_BANK_NUMBER> and", 0b00),
            ("<PHONE_NUMBER_2> again", 0b00),
            ("<PHONE_NUMBER#3f9a> again", 0b00),
            ("<phone> as typed by a customer", 0b10),
            ("bank_phone", 0b11),
        ];
        for &(window, want) in cases {
            assert_eq!(m.mask_in(&[window]), want, "{window}");
        }
    }

    #[test]
    fn windows_and_words() {
        let t = "please call my mobile 415 555 2671 today ok";
        let start = t.find("415").unwrap();
        assert_eq!(words_before(t, start, 2).trim(), "my mobile");
        assert_eq!(words_after(t, start + 12, 1).trim(), "today");
        let m = WordMatcher::new(&["mobile".into(), "d.o.b".into(), "date of birth".into()]);
        assert_eq!(m.mask_in(&["my Mobile"]), 0b001);
        assert_eq!(m.mask_in(&["automobile"]), 0);
        assert_eq!(m.mask_in(&["D.O.B: ", "date of birth"]), 0b110);
    }

    #[test]
    fn values_with_a_byte_the_text_lacks_are_ruled_out() {
        for (text, value, may_occur) in [
            ("order 54321", "12345", true),
            ("order 5432", "12345", false),
            ("mail me", "me@x.io", false),
            ("a café", "é", true),
            ("a cafe", "é", false),
            ("", "", true),
        ] {
            let found_as = Candidate {
                start: 0,
                end: value.len(),
                score: 1.0,
                recognizer: 0,
                pattern: 0,
                validation: Validation::NotChecked,
                context_mask: 0,
                context_boost: 0.0,
                repeat: false,
            };
            let known = KnownValue::new(value.into(), found_as);
            assert_eq!(
                ByteSet::of(text).may_contain(&known),
                may_occur,
                "{text:?} / {value:?}"
            );
        }
    }

    #[test]
    fn occurrences_table() {
        let found = |h: &str, n: &str| occurrences(h, n).collect::<Vec<_>>();
        assert_eq!(found("a-b-a-b", "a-b"), [0, 4]);
        assert_eq!(found("é415é415", "415"), [2, 7]);
        assert_eq!(found("ab", "abc"), Vec::<usize>::new());
        assert_eq!(found("aaa", "aa"), [0, 1]);
        assert_eq!(found("abc", ""), Vec::<usize>::new());
    }

    #[test]
    fn overlap_prefers_score_then_length_then_order() {
        let c = |recognizer, start, end, score| Candidate {
            start,
            end,
            score,
            recognizer,
            pattern: 0,
            validation: Validation::NotChecked,
            context_mask: 0,
            context_boost: 0.0,
            repeat: false,
        };
        let kept = resolve_overlaps(vec![
            c(0, 0, 10, 0.6),
            c(1, 5, 12, 0.9),
            c(2, 12, 20, 0.5),
            c(3, 12, 22, 0.5),
        ]);
        let order: Vec<usize> = kept.iter().map(|k| k.recognizer).collect();
        assert_eq!(order, [1, 3]);
    }

    /// The prefilter's answer for `text` from one walk, and from two lanes split at `second`.
    fn one_walk_and_two_lanes(
        prefilter: &Prefilter,
        text: &str,
        second: usize,
    ) -> (Vec<usize>, Vec<usize>) {
        let haystack = text.as_bytes();
        let mut cache = prefilter.dfa.create_cache();
        let mut one = FoundPatterns::new(prefilter.pattern_owner.len());
        let sid = prefilter.start(&mut cache, haystack, 0).unwrap();
        prefilter
            .walk(&mut cache, haystack, sid, 0, &mut one)
            .unwrap();
        let mut two = FoundPatterns::new(prefilter.pattern_owner.len());
        let finished = prefilter
            .search_two_lanes(&mut cache, haystack, second, &mut two)
            .unwrap();
        assert!(finished, "{text:?} at {second}: the cache was not cleared");
        (one.patterns().collect(), two.patterns().collect())
    }

    #[test]
    fn two_lanes_find_what_one_walk_finds_wherever_the_text_is_cut() {
        let engine = Engine::builtin().unwrap();
        let prefilter = &engine.prefilters[0];
        // PII across the middle, at either end, twice, next to non-ASCII text, and none.
        let texts = [
            "You can reach me at maria.g@example.com or on +44 20 7946 0958 after five.",
            "card 4111 1111 1111 1111 and my name is Maria Gonzalez, born 14/03/1985",
            "ok so the thing is, john dot smith at gmail dot com is my address",
            "wire it to GB82 WEST 1234 5698 7654 32 please, merci beaucoup très bien 😡",
            "The app keeps crashing every time I open the settings page since the update.",
            "ip 192.168.10.24 then 2001:db8::8a2e:370:7334 then 00:1A:2B:3C:4D:5E, ssn 536-90-4399",
            "４１１１ １１１１ １１１１ １１１１ ありがとう ４１１１ １１１１ １１１１ １１１１",
        ];
        for text in texts {
            let cuts = (1..=text.len() / 2).filter(|&i| text.is_char_boundary(i));
            for second in cuts {
                let (one, two) = one_walk_and_two_lanes(prefilter, text, second);
                assert_eq!(one, two, "{text:?} cut at {second}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn two_lanes_find_what_one_walk_finds(
            pieces in proptest::collection::vec(
                prop_oneof![
                    proptest::sample::select(&[
                        "my email is jane.doe@example.com", "call (415) 555-2671",
                        "IBAN DE89370400440532013000", "my name is Tom Baker",
                        "password: hunter2", "https://example.com/a?b=c", "thanks!",
                    ][..]).prop_map(str::to_owned),
                    "\\PC{0,12}",
                    "[0-9 .\\-+()@a-z]{0,16}",
                ],
                1..8,
            ),
        ) {
            static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
            let engine = ENGINE.get_or_init(|| Engine::builtin().unwrap());
            let text = pieces.join(" ");
            for second in (1..=text.len() / 2).filter(|&i| text.is_char_boundary(i)) {
                let (one, two) = one_walk_and_two_lanes(&engine.prefilters[0], &text, second);
                prop_assert_eq!(one, two, "{:?} cut at {}", text, second);
            }
        }
    }
}
