use std::ops::Range;

/// Abbreviations that end in a period without ending a sentence (compared lower-case).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "approx", "dept",
    "inc", "ltd", "co", "corp", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
    "oct", "nov", "dec",
];

/// Splits chat text into sentences: byte ranges into `text`, trimmed, never empty, in order.
///
/// A sentence ends at a line break, or after a run of terminators (`. ! ? …` and their CJK
/// full-width forms) and closing quotes/brackets when whitespace or the end follows, except after a
/// known abbreviation or a single capital letter ("J. Smith"). CJK terminators end a sentence even
/// without a following space. Chat rarely punctuates carefully; this is deliberately conservative.
pub fn split_sentences(text: &str) -> Vec<Range<usize>> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let boundary = if c == '\n' || c == '\r' {
            Some(i)
        } else if is_terminator(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, next)) = chars.peek() {
                if is_terminator(next) || is_closer(next) {
                    end = j + next.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let followed_by_space_or_end =
                chars.peek().is_none_or(|&(_, next)| next.is_whitespace());
            let cjk = matches!(c, '。' | '！' | '？');
            if (followed_by_space_or_end || cjk)
                && !(c == '.' && ends_with_abbreviation(&text[start..i]))
            {
                Some(end)
            } else {
                None
            }
        } else {
            None
        };
        if let Some(end) = boundary {
            push_trimmed(text, start..end, &mut sentences);
            start = end;
        }
    }
    push_trimmed(text, start..text.len(), &mut sentences);
    sentences
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？' | '‼' | '⁉')
}

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '”' | '’' | '»' | '」' | '』')
}

fn ends_with_abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"')
        .next()
        .unwrap_or("");
    let mut letters = word.chars();
    let single_capital =
        matches!((letters.next(), letters.next()), (Some(c), None) if c.is_uppercase());
    single_capital || ABBREVIATIONS.iter().any(|a| word.eq_ignore_ascii_case(a))
}

fn push_trimmed(text: &str, range: Range<usize>, out: &mut Vec<Range<usize>>) {
    let slice = &text[range.clone()];
    let lead = slice.len() - slice.trim_start().len();
    let trail = slice.len() - slice.trim_end().len();
    if lead < slice.len() {
        out.push(range.start + lead..range.end - trail);
    }
}

#[cfg(test)]
mod tests {
    use super::split_sentences;

    fn split(text: &str) -> Vec<&str> {
        split_sentences(text)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn splits_chat_text_into_sentences() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("   \n  ", &[]),
            ("hello", &["hello"]),
            (
                "Great app. Terrible support!",
                &["Great app.", "Terrible support!"],
            ),
            (
                "Why?!? It broke again...  Fix it",
                &["Why?!?", "It broke again...", "Fix it"],
            ),
            (
                "Mr. Smith said \"no.\" Then left.",
                &["Mr. Smith said \"no.\"", "Then left."],
            ),
            (
                "Version 2.5 is out. e.g. today",
                &["Version 2.5 is out.", "e.g. today"],
            ),
            ("J. Doe helped me. Thanks", &["J. Doe helped me.", "Thanks"]),
            (
                "line one\nline two\r\n\r\nline three",
                &["line one", "line two", "line three"],
            ),
            ("很好。非常好！", &["很好。", "非常好！"]),
            ("ok… fine", &["ok…", "fine"]),
            ("(this is bad.) really", &["(this is bad.)", "really"]),
        ];
        for (text, expected) in cases {
            assert_eq!(split(text), *expected, "text: {text:?}");
        }
    }

    #[test]
    fn ranges_are_ordered_disjoint_and_on_char_boundaries() {
        let text = "É bom! 😀 Não gostei... 最悪。 Fine.\n\nOk";
        let ranges = split_sentences(text);
        assert!(ranges.windows(2).all(|w| w[0].end <= w[1].start));
        for r in &ranges {
            assert!(
                text.is_char_boundary(r.start) && text.is_char_boundary(r.end) && r.start < r.end
            );
        }
    }
}
