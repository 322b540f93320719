//! Text for [`Engine::warm_up`](crate::Engine::warm_up): the regex engines build their automata
//! lazily, one state and one transition at a time, as inputs need them. A pre-initialized
//! component snapshots whatever the warm-up built; a fresh instance per request (Spin's default)
//! starts from that snapshot, and every transition it lacks is computed again on every request
//! (measured before this generated text: ~285 µs for a 64-byte chat turn the warm-up had not
//! walked, ~54 µs for one of its own samples; BENCHMARKS.md has the corpus figures).
//! So the warm-up walks the PII formats and a few thousand generated sentences of ordinary chat
//! text (common words, casings, numbers, punctuation, non-ASCII), not a corpus of real messages.

/// PII the way customers type it, one sample per built-in pattern family.
pub(crate) const PII_SAMPLES: &[&str] = &[
    "Hi, my name is Maria Gonzalez and I'm furious: call me on +44 20 7946 0958 or (415) 555-2671.",
    "mail jane.doe@example.com or john dot smith at gmail dot com; card 4111 1111 1111 1111 exp 12/27",
    "IBAN GB82 WEST 1234 5698 7654 32, ssn 536-90-4399, routing 011000015, account 12345678901",
    "server 192.168.10.24 and 2001:db8::8a2e:370:7334, mac 00:1A:2B:3C:4D:5E, https://example.com/a?b=1",
    "wallet 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed AKIAIOSFODNN7EXAMPLE",
    "born 14/03/1985, DOB: March 14, 1985; NHS 943 476 5919; I spoke with Dr. Patel at 1600 Pennsylvania Avenue",
    "The app keeps crashing after the update. This is the worst service ever!!! 😡 Merci, très bien. ありがとう",
    "mobile 07700 900123, portable 06 12 34 56 78, 0049 30 901820, token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "my name’s Bob O’Neil, my husband Dave; Name: Wei Zhang; me llamo Lucía, teléfono 612 345 678, jörg.müller@beispiel.de",
    "password: hunter2, my pin is 4821, postal code K1A 0B1, 350 5th Ave NW, SIN 130 692 544, TFN 123 456 782",
    "medicare 2123 45670 1, DNI 12345678Z, NIE X1234567L, aadhaar 2345 6789 0124, PAN ABCPE1234F",
    "Telefon: 030 901820, Handy 0171 1234567, Tel. 0221/1234567",
    "my number is 07700900123, appelez-moi au 0612345678, mobile 02 9876 5432, whatsapp 98765-43210",
    "I'm Mark and I need help, I'm Sorry and I'm Fine, my name is john smith, MY NAME IS JANE DOE",
    "i'm called Aiko Tanaka, born 03/12/85, birthdate: 1992/05/05, dob 1992.05.05",
    "the agent, Kevin, was rude; Contact person: Ahmed Al-Farsi; maria@sub.example.travel",
    "Cheers - Alex; celular (11) 91234-5678, telefone (21) 2345-6789",
    "card four one one one one one one one one one one one one one one one, social five three six two two one two three four",
    "VIN 1HGCM82633A004352, my cell is 555-2671, jane . doe @ gmail . com, PO Box 1234, Sydney NSW 2000",
    "key sk-proj-abc123DEF456ghi789JKL012mno345PQR678; Name: Smith, John; Account holder: JOHN A SMITH",
    "a lady named Karen, the rep (Jake); John Smith here, it's Sam again; my name is John A. Smith\nBest, Maria",
];

/// How many generated sentences the warm-up analyzes (about 70 bytes each).
pub(crate) const GENERATED_SENTENCES: usize = 3000;

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "i", "I'm", "I’m", "I've", "I'd", "you", "your", "we", "they", "he", "she", "it", "it's", "my", "me",
    "our", "the", "a", "an", "this", "that", "these", "there", "here", "what", "why", "how", "when",
    "where", "who", "which", "is", "are", "was", "were", "be", "been", "have", "has", "had", "do",
    "does", "did", "don't", "don’t", "can't", "won't", "isn't", "didn't", "doesn't", "can", "could", "would",
    "should", "will", "just", "still", "again", "already", "never", "always", "now", "today",
    "yesterday", "tomorrow", "week", "month", "year", "time", "day", "hours", "minutes", "and",
    "or", "but", "so", "because", "if", "not", "no", "yes", "ok", "okay", "please", "thanks",
    "thank", "sorry", "hi", "hello", "hey", "to", "for", "of", "in", "on", "at", "with", "from",
    "about", "after", "before", "since", "by", "up", "out", "over", "order", "orders", "account",
    "payment", "refund", "charge", "charged", "card", "bank", "invoice", "bill", "price", "plan",
    "subscription", "cancel", "delivery", "package", "shipping", "tracking", "number", "email",
    "phone", "call", "address", "password", "login", "reset", "link", "app", "website", "page",
    "update", "version", "error", "bug", "crash", "crashes", "broken", "working", "works", "slow",
    "fast", "help", "support", "agent", "manager", "team", "service", "customer", "problem",
    "issue", "question", "answer", "reply", "ticket", "case", "flight", "seat", "bag", "luggage",
    "gate", "delayed", "late", "cancelled", "booked", "booking", "hotel", "room", "good", "great",
    "love", "amazing", "awesome", "excellent", "best", "happy", "nice", "fine", "bad", "worst",
    "terrible", "awful", "horrible", "angry", "furious", "annoyed", "disappointed", "frustrated",
    "unacceptable", "ridiculous", "really", "very", "too", "much", "more", "less", "all", "any",
    "some", "every", "nothing", "something", "anyone", "nobody", "everyone", "first", "second",
    "third", "last", "next", "new", "old", "same", "other", "another", "one", "two", "three", "ten",
    "hundred", "get", "got", "make", "made", "take", "took", "send", "sent", "receive", "received",
    "wait", "waiting", "waited", "need", "want", "try", "tried", "know", "think", "see", "say",
    "said", "tell", "told", "ask", "asked", "give", "pay", "paid", "buy", "bought", "return",
    "returned", "change", "changed", "fix", "fixed", "open", "close", "use", "download", "install",
    "weekend", "morning", "evening", "night", "Monday", "Friday", "lol", "omg", "pls", "thx", "u",
    "ur", "btw", "asap", "Mr", "Mrs", "Dr", "St", "Street", "Road", "Avenue", "London", "Paris",
    "Berlin", "New", "York", "Chicago", "Boston", "Dallas", "John", "Sarah", "Ahmed", "Li", "Maria",
    "Smith", "García", "Müller", "café", "naïve", "señor",
];

#[rustfmt::skip]
const END: &[&str] = &[
    ".", ".", ".", "!", "?", "...", "!!", "??", "?!", " :)", " :(", "", " 😡", " 🙏", " 👍", " 😂",
];

/// A small deterministic generator (xorshift64*): the same warm-up text on every build.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }

    fn digits(&mut self, out: &mut String, n: usize) {
        for _ in 0..n {
            out.push(char::from(b'0' + self.below(10) as u8));
        }
    }
}

/// Ordinary chat sentences: common words in several casings, numbers of the kinds support chats
/// carry (order numbers, prices, times, dates, counts), punctuation, emoji and accented letters.
pub(crate) fn generated_sentences() -> impl Iterator<Item = String> {
    let mut rng = Rng(0x5E17_10C0_FFEE_2026);
    (0..GENERATED_SENTENCES).map(move |_| {
        let mut sentence = String::new();
        let words = 3 + rng.below(14);
        let shout = rng.below(20) == 0;
        let lower = rng.below(6) == 0;
        for i in 0..words {
            if i > 0 {
                sentence.push(' ');
            }
            match rng.below(14) {
                0 => {
                    match rng.below(7) {
                        0 => sentence.push('#'),
                        1 => sentence.push('$'),
                        2 => sentence.push('£'),
                        _ => {}
                    }
                    let n = 1 + rng.below(8);
                    rng.digits(&mut sentence, n);
                    match rng.below(6) {
                        0 => {
                            sentence.push('.');
                            rng.digits(&mut sentence, 2);
                        }
                        1 => sentence.push_str(["pm", "am", "%", "th", "x", "k"][rng.below(6)]),
                        2 => {
                            sentence.push([':', '/', '-'][rng.below(3)]);
                            rng.digits(&mut sentence, 2);
                        }
                        _ => {}
                    }
                }
                _ => {
                    let word = WORDS[rng.below(WORDS.len())];
                    if shout {
                        sentence.push_str(&word.to_uppercase());
                    } else if (i == 0 && !lower) || rng.below(12) == 0 {
                        let mut chars = word.chars();
                        if let Some(first) = chars.next() {
                            sentence.extend(first.to_uppercase());
                            sentence.push_str(chars.as_str());
                        }
                    } else {
                        sentence.push_str(word);
                    }
                    if rng.below(10) == 0 {
                        sentence.push_str([",", ",", ";", ":", " -", "'s", ")"][rng.below(7)]);
                    }
                }
            }
        }
        sentence.push_str(END[rng.below(END.len())]);
        sentence
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_warm_up_text_is_the_same_every_time_and_varied() {
        let sentences: Vec<String> = generated_sentences().collect();
        assert_eq!(sentences, generated_sentences().collect::<Vec<_>>());
        assert_eq!(sentences.len(), GENERATED_SENTENCES);
        let share = |f: fn(&str) -> bool| {
            sentences.iter().filter(|s| f(s)).count() as f64 / sentences.len() as f64
        };
        // Each kind of text the automata must already know shows up often enough to be walked.
        assert!(share(|s| s.bytes().any(|b| b.is_ascii_digit())) > 0.3);
        assert!(share(|s| !s.is_ascii()) > 0.1);
        assert!(share(|s| s.starts_with(|c: char| c.is_ascii_lowercase())) > 0.05);
        assert!(
            share(|s| s
                .split(' ')
                .any(|w| w.len() > 2 && w.bytes().all(|b| b.is_ascii_uppercase())))
                > 0.02
        );
        let mean_len = sentences.iter().map(String::len).sum::<usize>() / sentences.len();
        assert!((30..150).contains(&mean_len), "{mean_len}");
    }
}
