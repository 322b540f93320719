//! Emoji the model cannot read, spelled out as their Unicode (CLDR) names before tokenization.
//!
//! The models' WordPiece vocabulary (BERT's, uncased) has almost no emoji, and its pre-tokenizer
//! does not split them from words: "😡" becomes `[UNK]`, and "service👍" turns the whole word,
//! "service" included, into `[UNK]`. None of the training texts had emoji (the corpus ships them
//! stripped), so the models learnt nothing from `[UNK]` either: before this step every emoji-only
//! message got the same answer. Replacing each emoji the vocabulary lacks with its name, set off
//! by spaces ("😡" → " enraged face "), hands the model words it was trained on — what VADER does
//! with its emoji lexicon. Symbols the vocabulary has (♥ © ™ ★ →) stay as they are, so text the
//! model could already read is passed through unchanged, as it was in training.

use std::borrow::Cow;

const TEXT_STYLE: char = '\u{FE0E}';
const EMOJI_STYLE: char = '\u{FE0F}';
const ZERO_WIDTH_JOINER: char = '\u{200D}';
const COMBINING_KEYCAP: char = '\u{20E3}';

fn is_skin_tone(c: char) -> bool {
    ('\u{1F3FB}'..='\u{1F3FF}').contains(&c)
}

fn is_tag(c: char) -> bool {
    ('\u{E0020}'..='\u{E007F}').contains(&c)
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

fn is_variation_selector(c: char) -> bool {
    c == TEXT_STYLE || c == EMOJI_STYLE
}

/// Whether an emoji can begin at `c` (followed by `next`). Every emoji starts with ©, ®, a
/// character at or above U+2000 outside the CJK ideograph and Hangul blocks, or a keycap's digit,
/// `#` or `*` (only when a keycap mark follows: plain digits are never touched). The test
/// `every_emoji_can_start_where_the_scan_looks` holds this to the emoji data.
fn may_start_emoji(c: char, next: Option<char>) -> bool {
    match c {
        '0'..='9' | '#' | '*' => matches!(next, Some(EMOJI_STYLE | COMBINING_KEYCAP)),
        '©' | '®' => true,
        '\u{3400}'..='\u{9FFF}' | '\u{AC00}'..='\u{D7AF}' => false,
        _ => c >= '\u{2000}',
    }
}

/// Byte length of the emoji-shaped cluster at the start of `text`: its first character plus the
/// marks that extend an emoji (variation selectors, skin tones, keycap, tags), the character after
/// each zero-width joiner, and a second regional indicator (flags are pairs).
fn cluster_len(text: &str) -> usize {
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return 0;
    };
    let mut len = first.len_utf8();
    let mut regional_indicators = usize::from(is_regional_indicator(first));
    let mut after_joiner = false;
    for c in chars {
        let extends = after_joiner
            || c == ZERO_WIDTH_JOINER
            || c == COMBINING_KEYCAP
            || is_variation_selector(c)
            || is_skin_tone(c)
            || is_tag(c)
            || (regional_indicators == 1 && is_regional_indicator(c));
        if !extends {
            break;
        }
        after_joiner = c == ZERO_WIDTH_JOINER;
        regional_indicators += usize::from(is_regional_indicator(c));
        len += c.len_utf8();
    }
    len
}

/// The name of one emoji, without skin tone ("thumbs up", not "thumbs up: medium skin tone"):
/// skin tone says nothing about sentiment.
fn plain_name(emoji: &'static emojis::Emoji) -> &'static str {
    emoji
        .with_skin_tone(emojis::SkinTone::Default)
        .unwrap_or(emoji)
        .name()
}

/// `cluster` without variation selectors (and skin tones too, with `skin_tones`).
fn without_marks(cluster: &str, skin_tones: bool) -> Cow<'_, str> {
    let drop = |c: char| is_variation_selector(c) || (skin_tones && is_skin_tone(c));
    if cluster.chars().any(drop) {
        Cow::Owned(cluster.chars().filter(|&c| !drop(c)).collect())
    } else {
        Cow::Borrowed(cluster)
    }
}

/// The name(s) of `cluster`, or `None` when it is not an emoji. Tries the exact sequence, then
/// without variation selectors and skin tones, then each part of a joined sequence the data does
/// not list (a combination a keyboard made up), names separated by spaces.
fn names(cluster: &str) -> Option<Cow<'static, str>> {
    if let Some(emoji) = emojis::get(cluster) {
        return Some(Cow::Borrowed(plain_name(emoji)));
    }
    let bare = without_marks(cluster, true);
    if let Some(emoji) = emojis::get(&bare) {
        return Some(Cow::Borrowed(plain_name(emoji)));
    }
    let parts: Vec<&str> = bare
        .split(ZERO_WIDTH_JOINER)
        .filter_map(emojis::get)
        .map(plain_name)
        .collect();
    (!parts.is_empty()).then(|| Cow::Owned(parts.join(" ")))
}

/// `text` with every emoji that `readable` rejects replaced by its name, set off by spaces.
/// `readable` gets a one-character emoji without variation selectors and answers whether the
/// tokenizer has a token for it. Text without such emoji comes back borrowed, unchanged.
pub fn describe_emoji<'a>(text: &'a str, readable: impl Fn(&str) -> bool) -> Cow<'a, str> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if !may_start_emoji(c, chars.peek().map(|&(_, next)| next)) {
            continue;
        }
        let end = start + cluster_len(&text[start..]);
        // The whole cluster is decided here, emoji or not: starting again at each of its marks
        // would rescan the rest of a run of them, quadratic in a text of variation selectors.
        while chars.peek().is_some_and(|&(i, _)| i < end) {
            chars.next();
        }
        let cluster = &text[start..end];
        let Some(names) = names(cluster) else {
            continue;
        };
        let bare = without_marks(cluster, false);
        if bare.chars().count() == 1 && readable(&bare) {
            continue;
        }
        let buffer = out.get_or_insert_with(|| String::with_capacity(text.len() + 32));
        buffer.push_str(&text[copied..start]);
        buffer.push(' ');
        buffer.push_str(&names);
        buffer.push(' ');
        copied = end;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut buffer) => {
            buffer.push_str(&text[copied..]);
            Cow::Owned(buffer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A vocabulary with the symbols BERT's uncased vocabulary has among these tests' characters.
    fn bert_like(symbol: &str) -> bool {
        matches!(symbol, "♥" | "©" | "™" | "★" | "→" | "↔")
    }

    #[test]
    fn names_the_emoji_the_vocabulary_lacks() {
        let cases: &[(&str, &str)] = &[
            ("😡", " enraged face "),
            ("😡😡", " enraged face  enraged face "),
            ("great service👍", "great service thumbs up "),
            ("👍🏽 thanks", " thumbs up  thanks"),
            ("I ❤️ you", "I  red heart  you"),
            ("I ❤ you", "I  red heart  you"),
            ("go 🇺🇸!", "go  flag: United States !"),
            ("press 1️⃣", "press  keycap: 1 "),
            ("👨‍👩‍👧 trip", " family: man, woman, girl  trip"),
            // A joined pair no vendor draws: each part by name.
            ("😡\u{200D}👍", " enraged face thumbs up "),
            ("late ☹️", "late  frowning face "),
        ];
        for (text, want) in cases {
            assert_eq!(describe_emoji(text, bert_like), *want, "{text:?}");
        }
    }

    #[test]
    fn leaves_text_the_model_can_read_alone() {
        for text in [
            "",
            "plain ASCII, 123 #1 *2",
            "café naïve über",
            "日本語のテキスト 한국어",
            "I ♥ it © 2024 ™ ★ → ↔",
            "♥\u{FE0F} styled but in the vocabulary",
            // A lone regional indicator is no flag and no emoji: the tokenizer's problem.
            "\u{1F1FA} alone",
        ] {
            assert!(
                matches!(describe_emoji(text, bert_like), Cow::Borrowed(_)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn long_runs_of_marks_are_one_cluster() {
        // 100,000 variation selectors after a dash, and the same after an emoji: each is one
        // cluster, looked at once (a scan restarting at every mark took seconds on 120 KB).
        let marks = "\u{FE0F}".repeat(100_000);
        let dash = format!("—{marks}");
        assert!(matches!(describe_emoji(&dash, bert_like), Cow::Borrowed(_)));
        let face = format!("😡{marks} late");
        assert_eq!(describe_emoji(&face, bert_like), " enraged face  late");
    }

    #[test]
    fn every_emoji_can_start_where_the_scan_looks() {
        for emoji in emojis::iter() {
            let mut chars = emoji.as_str().chars();
            let first = chars.next().unwrap();
            assert!(
                may_start_emoji(first, chars.next()),
                "{emoji:?} starts outside the scanned ranges"
            );
        }
    }

    proptest! {
        /// Describing described text changes nothing (names are plain words), and text made of
        /// letters, digits and punctuation is never touched.
        #[test]
        fn idempotent_and_identity_on_plain_text(
            plain in "[a-zA-Z0-9 .,!?#*éü日]{0,40}",
            emoji in proptest::sample::select(vec!["😡", "👍🏽", "❤️", "🇫🇷", "1️⃣", "🙂", "♥", "👩‍💻"]),
            at in 0usize..40,
        ) {
            prop_assert!(matches!(describe_emoji(&plain, bert_like), Cow::Borrowed(_)));
            let cut = plain.char_indices().map(|(i, _)| i).nth(at).unwrap_or(plain.len());
            let text = format!("{}{emoji}{}", &plain[..cut], &plain[cut..]);
            let once = describe_emoji(&text, bert_like).into_owned();
            prop_assert_eq!(describe_emoji(&once, bert_like), Cow::Borrowed(once.as_str()));
        }
    }
}
