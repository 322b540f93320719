//! Validators: checksum and structure rules that turn "looks like" into "is".
//!
//! A validator sees the whole text and the candidate span, so it can look one character past the
//! match (an IPv4 address followed by `.5` is a version number). It answers [`Verdict::Valid`],
//! [`Verdict::Invalid`] with a reason, or [`Verdict::ValidUntil`] when only a prefix of a greedy match
//! is valid (a card number followed by more digits).

use serde::{Deserialize, Serialize};
use sha3::{Digest as _, Keccak256};
use smallvec::SmallVec;

/// The validators a recognizer can name in its spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidatorKind {
    Email,
    EmailObfuscated,
    EmailProviderSpoken,
    PhoneInternational,
    PhoneNanp,
    PhoneEuropeNational,
    PhoneGermanyNational,
    PhoneIndiaNational,
    PhoneBrazilNational,
    PhoneSpelledOut,
    CreditCardSpelledOut,
    UsSsnSpelledOut,
    BankNumberSpelledOut,
    CreditCard,
    Iban,
    UsSsn,
    Ipv4,
    Ipv6,
    Url,
    MacAddress,
    CryptoWallet,
    HighEntropy,
    DateOfBirth,
    AbaRouting,
    UkNhs,
    UsItin,
    UkNino,
    UkPostcode,
    UsZip,
    PersonName,
    StreetAddress,
    Password,
    Username,
    CaSin,
    AuTfn,
    AuMedicare,
    EsNif,
    InAadhaar,
    Vin,
    AuPostcode,
    EuPostcode,
    ItFiscalCode,
    FiPersonalIdentityCode,
    PlPesel,
    NlBsn,
    SePersonnummer,
    FrNir,
    DeTaxId,
    SgNricFin,
    AuAbn,
    BrCpf,
}

/// A validator's answer for one candidate span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// Valid once the span ends at this byte offset (absolute, inside the candidate).
    ValidUntil(usize),
    Invalid(&'static str),
}

impl ValidatorKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::EmailObfuscated => "email_obfuscated",
            Self::EmailProviderSpoken => "email_provider_spoken",
            Self::PhoneInternational => "phone_international",
            Self::PhoneNanp => "phone_nanp",
            Self::PhoneEuropeNational => "phone_europe_national",
            Self::PhoneGermanyNational => "phone_germany_national",
            Self::PhoneIndiaNational => "phone_india_national",
            Self::PhoneBrazilNational => "phone_brazil_national",
            Self::PhoneSpelledOut => "phone_spelled_out",
            Self::CreditCardSpelledOut => "credit_card_spelled_out",
            Self::UsSsnSpelledOut => "us_ssn_spelled_out",
            Self::BankNumberSpelledOut => "bank_number_spelled_out",
            Self::CreditCard => "credit_card",
            Self::Iban => "iban",
            Self::UsSsn => "us_ssn",
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Url => "url",
            Self::MacAddress => "mac_address",
            Self::CryptoWallet => "crypto_wallet",
            Self::HighEntropy => "high_entropy",
            Self::DateOfBirth => "date_of_birth",
            Self::AbaRouting => "aba_routing",
            Self::UkNhs => "uk_nhs",
            Self::UsItin => "us_itin",
            Self::UkNino => "uk_nino",
            Self::UkPostcode => "uk_postcode",
            Self::UsZip => "us_zip",
            Self::PersonName => "person_name",
            Self::StreetAddress => "street_address",
            Self::Password => "password",
            Self::Username => "username",
            Self::CaSin => "ca_sin",
            Self::AuTfn => "au_tfn",
            Self::AuMedicare => "au_medicare",
            Self::EsNif => "es_nif",
            Self::InAadhaar => "in_aadhaar",
            Self::Vin => "vin",
            Self::AuPostcode => "au_postcode",
            Self::EuPostcode => "eu_postcode",
            Self::ItFiscalCode => "it_fiscal_code",
            Self::FiPersonalIdentityCode => "fi_personal_identity_code",
            Self::PlPesel => "pl_pesel",
            Self::NlBsn => "nl_bsn",
            Self::SePersonnummer => "se_personnummer",
            Self::FrNir => "fr_nir",
            Self::DeTaxId => "de_tax_id",
            Self::SgNricFin => "sg_nric_fin",
            Self::AuAbn => "au_abn",
            Self::BrCpf => "br_cpf",
        }
    }

    /// Whether a prefix of a rejected match may be tried instead. Not for a street address: its
    /// pattern ends at the street-type word, so a shorter span ("100 Driverless Cars") has none.
    /// Nor for digits typed as words: the first seven of ten invalid ones are not a number. Nor
    /// for a password: the start of "not-working" is no more a password than the whole.
    pub fn judges_prefixes(self) -> bool {
        !matches!(
            self,
            Self::StreetAddress
                | Self::PhoneSpelledOut
                | Self::CreditCardSpelledOut
                | Self::UsSsnSpelledOut
                | Self::BankNumberSpelledOut
                | Self::Password
                | Self::Username
        )
    }

    /// Validates `text[start..end]`.
    pub fn validate(self, text: &str, start: usize, end: usize) -> Verdict {
        let span = &text[start..end];
        match self {
            Self::Email => email(span),
            Self::EmailObfuscated => email_obfuscated(span),
            Self::EmailProviderSpoken => email_provider_spoken(span),
            Self::PhoneInternational => phone_international(span),
            Self::PhoneNanp => {
                let d = digits(span);
                // A local number's shape is also the tail of "123-456-7890" (no area code starts
                // with 1): only a run of its own is one.
                let local = nanp_local(&d) && !joins_digit_groups(text, start, end);
                verdict(nanp(&d) || local, "not a valid NANP number")
            }
            // An Italian mobile's shape without a trunk 0 is also the tail of "1-3001408092".
            Self::PhoneEuropeNational
                if span.starts_with('3') && joins_digit_groups(text, start, end) =>
            {
                Verdict::Invalid("the tail of a longer run of digit groups")
            }
            Self::PhoneEuropeNational => phone_europe_national(span),
            Self::PhoneGermanyNational if joins_digit_groups(text, start, end) => {
                Verdict::Invalid("the tail or head of a longer run of digit groups")
            }
            Self::PhoneGermanyNational => phone_germany_national(&digits(span)),
            Self::PhoneBrazilNational => phone_brazil_national(&digits(span)),
            Self::PhoneIndiaNational => phone_india_national(&digits(span)),
            Self::PhoneSpelledOut => phone_spelled_out(span),
            // Read as digits, then held to the typed number's rule.
            Self::CreditCardSpelledOut => read_out(span, card_digits),
            Self::UsSsnSpelledOut => read_out(span, us_ssn),
            Self::BankNumberSpelledOut => read_out(span, |d| {
                verdict(
                    (8..=17).contains(&d.len()),
                    "not the length of an account number",
                )
            }),
            Self::CreditCard => credit_card(span, start),
            Self::Iban => iban(span, start),
            Self::UsSsn => us_ssn(&digits(span)),
            Self::Ipv4 => ipv4(text, span, start, end),
            Self::Ipv6 => ipv6(span),
            Self::Url => url(span, start),
            Self::MacAddress => mac_address(span),
            Self::CryptoWallet => crypto_wallet(span),
            Self::HighEntropy => high_entropy(span),
            Self::DateOfBirth => date_of_birth(span),
            Self::AbaRouting => aba_routing(&digits(span)),
            Self::UkNhs => uk_nhs(&digits(span)),
            Self::UsItin => us_itin(&digits(span)),
            Self::UkNino => uk_nino(span),
            Self::UkPostcode => uk_postcode(span),
            Self::UsZip => us_zip(&digits(span)),
            Self::PersonName => person_name(span),
            Self::StreetAddress => street_address(span),
            Self::Password => password(span),
            // An account name, like a password, is told from a plain word by a digit, a symbol
            // or an inner capital ("@jane.doe.99", "jsmith1976", not "broken").
            Self::Username => password(span),
            Self::CaSin => ca_sin(&digits(span)),
            Self::AuTfn => au_tfn(&digits(span)),
            Self::AuMedicare => au_medicare(&digits(span)),
            Self::EsNif => es_nif(span),
            Self::InAadhaar => in_aadhaar(&digits(span)),
            Self::Vin => vin(span),
            Self::AuPostcode => au_postcode(text, start, end),
            Self::EuPostcode => eu_postcode(text, end),
            Self::ItFiscalCode => it_fiscal_code(span),
            Self::FiPersonalIdentityCode => fi_personal_identity_code(span),
            Self::PlPesel => pl_pesel(&digits(span)),
            Self::NlBsn => nl_bsn(&digits(span)),
            Self::SePersonnummer => se_personnummer(&digits(span)),
            Self::FrNir => fr_nir(span),
            Self::DeTaxId => de_tax_id(&digits(span)),
            Self::SgNricFin => sg_nric_fin(span),
            Self::AuAbn => au_abn(&digits(span)),
            Self::BrCpf => br_cpf(&digits(span)),
        }
    }
}

fn verdict(ok: bool, reason: &'static str) -> Verdict {
    if ok {
        Verdict::Valid
    } else {
        Verdict::Invalid(reason)
    }
}

/// The value of a decimal digit, ASCII or full-width.
pub fn digit_value(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '０'..='９' => Some((c as u32 - '０' as u32) as u8),
        _ => None,
    }
}

/// Decimal digit values, inline up to the length of the longest number a validator accepts (a
/// validator runs on every candidate match, and a heap allocation per candidate showed in the
/// component's profile).
pub type Digits = SmallVec<[u8; 24]>;

/// The decimal digits of `s`, as values 0-9, separators dropped.
pub fn digits(s: &str) -> Digits {
    s.chars().filter_map(digit_value).collect()
}

/// The digits times their weights, summed (the weights paired from the first digit on): the
/// body of the ABA, NHS, TFN and Medicare checks.
fn weighted_sum(digits: &[u8], weights: impl IntoIterator<Item = u32>) -> u32 {
    digits
        .iter()
        .zip(weights)
        .map(|(&d, w)| u32::from(d) * w)
        .sum()
}

/// Luhn (mod 10) checksum, used by payment cards.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.len() < 2 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn starts_with_range(digits: &[u8], len: usize, lo: u32, hi: u32) -> bool {
    if digits.len() < len {
        return false;
    }
    let prefix = digits[..len]
        .iter()
        .fold(0u32, |acc, &d| acc * 10 + u32::from(d));
    (lo..=hi).contains(&prefix)
}

/// Issuer identification: a known brand's prefix with one of its lengths.
pub fn card_issuer(digits: &[u8]) -> Option<&'static str> {
    let n = digits.len();
    let r = |len, lo, hi| starts_with_range(digits, len, lo, hi);
    if r(2, 34, 34) || r(2, 37, 37) {
        return (n == 15).then_some("amex");
    }
    if r(1, 4, 4) {
        return matches!(n, 13 | 16 | 19).then_some("visa");
    }
    if r(2, 51, 55) || r(4, 2221, 2720) {
        return (n == 16).then_some("mastercard");
    }
    if r(4, 6011, 6011) || r(3, 644, 649) || r(2, 65, 65) {
        return (16..=19).contains(&n).then_some("discover");
    }
    if r(4, 3528, 3589) {
        return (16..=19).contains(&n).then_some("jcb");
    }
    if r(3, 300, 305) || r(2, 36, 36) || r(2, 38, 39) {
        return (14..=19).contains(&n).then_some("diners");
    }
    if r(2, 62, 62) {
        return (16..=19).contains(&n).then_some("unionpay");
    }
    if r(2, 50, 50) || r(2, 56, 58) || r(1, 6, 6) {
        return (12..=19).contains(&n).then_some("maestro");
    }
    None
}

fn credit_card(span: &str, start: usize) -> Verdict {
    // A greedy match may have swallowed a following number ("4111 1111 1111 1111 2025"): try the
    // whole run, then shorter prefixes that end on a digit-group boundary.
    // (byte offset where a digit group ends, digits up to there), longest last.
    let mut ends: SmallVec<[(usize, usize); 8]> = SmallVec::new();
    let mut acc = Digits::new();
    let mut chars = span.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if let Some(d) = digit_value(c) {
            acc.push(d);
            let group_ends = chars.peek().is_none_or(|&(_, n)| digit_value(n).is_none());
            if group_ends && acc.len() >= 12 {
                ends.push((i + c.len_utf8(), acc.len()));
            }
        }
    }
    for &(end, count) in ends.iter().rev() {
        let ds = &acc[..count];
        if (13..=19).contains(&ds.len()) && luhn_valid(ds) && card_issuer(ds).is_some() {
            return if end == span.len() {
                Verdict::Valid
            } else {
                Verdict::ValidUntil(start + end)
            };
        }
    }
    Verdict::Invalid("fails Luhn or issuer prefix/length")
}

/// A card number's digits, read from words: the whole run must be the card.
fn card_digits(d: &[u8]) -> Verdict {
    verdict(
        (13..=19).contains(&d.len()) && luhn_valid(d) && card_issuer(d).is_some(),
        "fails Luhn or issuer prefix/length",
    )
}

/// IBAN lengths by country (SWIFT IBAN registry).
fn iban_length(country: &str) -> Option<usize> {
    const LENGTHS: &[(&str, usize)] = &[
        ("AD", 24),
        ("AE", 23),
        ("AL", 28),
        ("AT", 20),
        ("AZ", 28),
        ("BA", 20),
        ("BE", 16),
        ("BG", 22),
        ("BH", 22),
        ("BR", 29),
        ("BY", 28),
        ("CH", 21),
        ("CR", 22),
        ("CY", 28),
        ("CZ", 24),
        ("DE", 22),
        ("DK", 18),
        ("DO", 28),
        ("EE", 20),
        ("EG", 29),
        ("ES", 24),
        ("FI", 18),
        ("FO", 18),
        ("FR", 27),
        ("GB", 22),
        ("GE", 22),
        ("GI", 23),
        ("GL", 18),
        ("GR", 27),
        ("GT", 28),
        ("HR", 21),
        ("HU", 28),
        ("IE", 22),
        ("IL", 23),
        ("IQ", 23),
        ("IS", 26),
        ("IT", 27),
        ("JO", 30),
        ("KW", 30),
        ("KZ", 20),
        ("LB", 28),
        ("LC", 32),
        ("LI", 21),
        ("LT", 20),
        ("LU", 20),
        ("LV", 21),
        ("MC", 27),
        ("MD", 24),
        ("ME", 22),
        ("MK", 19),
        ("MR", 27),
        ("MT", 31),
        ("MU", 30),
        ("NL", 18),
        ("NO", 15),
        ("PK", 24),
        ("PL", 28),
        ("PS", 29),
        ("PT", 25),
        ("QA", 29),
        ("RO", 24),
        ("RS", 22),
        ("SA", 24),
        ("SC", 31),
        ("SE", 24),
        ("SI", 19),
        ("SK", 24),
        ("SM", 27),
        ("ST", 25),
        ("SV", 28),
        ("TL", 23),
        ("TN", 24),
        ("TR", 26),
        ("UA", 29),
        ("VA", 22),
        ("VG", 24),
        ("XK", 20),
    ];
    LENGTHS
        .iter()
        .find(|(c, _)| *c == country)
        .map(|&(_, len)| len)
}

/// ISO 13616 mod-97 check over an upper-case alphanumeric IBAN.
pub fn iban_mod97_valid(iban: &str) -> bool {
    let bytes = iban.as_bytes();
    if bytes.len() < 5 {
        return false;
    }
    let mut remainder: u32 = 0;
    for &b in bytes[4..].iter().chain(&bytes[..4]) {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

fn iban(span: &str, start: usize) -> Verdict {
    let mut chars = span.char_indices().filter(|(_, c)| !c.is_whitespace());
    // The first characters up to the country's length, upper-cased (a non-ASCII one as `?`,
    // which fails mod-97), and where the last of them ends. No IBAN is longer than 34.
    let mut iban = [0u8; 34];
    let (mut taken, mut last_end, mut len) = (0, 0, None);
    for (i, c) in chars.by_ref() {
        iban[taken] = if c.is_ascii() {
            c.to_ascii_uppercase() as u8
        } else {
            b'?'
        };
        taken += 1;
        last_end = i + c.len_utf8();
        if taken == 2 {
            len = iban_length(std::str::from_utf8(&iban[..2]).unwrap_or(""));
            if len.is_none() {
                break;
            }
        }
        if Some(taken) == len || taken == iban.len() {
            break;
        }
    }
    let Some(len) = len else {
        return Verdict::Invalid("unknown IBAN country");
    };
    if taken < len {
        return Verdict::Invalid("too short for its country");
    }
    if !iban_mod97_valid(std::str::from_utf8(&iban[..len]).unwrap_or("")) {
        return Verdict::Invalid("fails mod-97");
    }
    if chars.next().is_none() {
        Verdict::Valid
    } else {
        Verdict::ValidUntil(start + last_end)
    }
}

fn us_ssn(d: &[u8]) -> Verdict {
    if d.len() != 9 {
        return Verdict::Invalid("not 9 digits");
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = u32::from(d[3]) * 10 + u32::from(d[4]);
    let serial = d[5..].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    if area == 0 || area == 666 || area >= 900 {
        return Verdict::Invalid("area 000, 666 and 900-999 are never issued");
    }
    if group == 0 || serial == 0 {
        return Verdict::Invalid("group 00 and serial 0000 are never issued");
    }
    if d.iter().all(|&x| x == d[0]) {
        return Verdict::Invalid("repeated digit");
    }
    // Advertised or sequential numbers that were voided (Woolworth's 078-05-1120 and friends).
    const VOIDED: &[[u8; 9]] = &[
        [0, 7, 8, 0, 5, 1, 1, 2, 0],
        [2, 1, 9, 0, 9, 9, 9, 9, 9],
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
    ];
    if VOIDED.iter().any(|v| v[..] == *d) {
        return Verdict::Invalid("a publicly voided number");
    }
    Verdict::Valid
}

/// North American Numbering Plan: NPA and NXX start 2-9, NPA is not an N11 service code.
pub fn nanp(d: &[u8]) -> bool {
    let d = match d.len() {
        11 if d[0] == 1 => &d[1..],
        10 => d,
        _ => return false,
    };
    let (npa, nxx) = (&d[0..3], &d[3..6]);
    npa[0] >= 2 && nxx[0] >= 2 && !(npa[1] == 1 && npa[2] == 1) && !(nxx[1] == 1 && nxx[2] == 1)
}

/// A NANP number without its area code ("555-2671"): the exchange starts 2-9 and is no N11
/// service code.
fn nanp_local(d: &[u8]) -> bool {
    d.len() == 7 && d[0] >= 2 && !(d[1] == 1 && d[2] == 1)
}

/// Country calling codes with the national significant number lengths they allow.
fn calling_code(d: &[u8]) -> Option<(usize, std::ops::RangeInclusive<usize>)> {
    const CODES: &[(&str, usize, usize)] = &[
        ("1", 10, 10),
        ("7", 10, 10),
        ("20", 9, 10),
        ("27", 9, 9),
        ("30", 10, 10),
        ("31", 9, 9),
        ("32", 8, 9),
        ("33", 9, 9),
        ("34", 9, 9),
        ("36", 8, 9),
        ("39", 6, 11),
        ("40", 9, 9),
        ("41", 9, 9),
        ("43", 4, 13),
        ("44", 9, 10),
        ("45", 8, 8),
        ("46", 7, 10),
        ("47", 8, 8),
        ("48", 9, 9),
        ("49", 6, 13),
        ("51", 8, 9),
        ("52", 10, 10),
        ("53", 8, 8),
        ("54", 10, 11),
        ("55", 10, 11),
        ("56", 9, 9),
        ("57", 10, 10),
        ("58", 10, 10),
        ("60", 7, 10),
        ("61", 9, 9),
        ("62", 8, 12),
        ("63", 8, 10),
        ("64", 8, 10),
        ("65", 8, 8),
        ("66", 8, 9),
        ("81", 9, 10),
        ("82", 8, 10),
        ("84", 9, 10),
        ("86", 10, 11),
        ("90", 10, 10),
        ("91", 10, 10),
        ("92", 9, 10),
        ("93", 9, 9),
        ("94", 9, 9),
        ("95", 8, 10),
        ("98", 10, 10),
        ("212", 9, 9),
        ("213", 9, 9),
        ("216", 8, 8),
        ("234", 8, 10),
        ("254", 9, 9),
        ("351", 9, 9),
        ("352", 6, 11),
        ("353", 7, 9),
        ("354", 7, 9),
        ("358", 6, 11),
        ("359", 8, 9),
        ("370", 8, 8),
        ("371", 8, 8),
        ("372", 7, 8),
        ("380", 9, 9),
        ("385", 8, 9),
        ("386", 8, 8),
        ("420", 9, 9),
        ("421", 9, 9),
        ("852", 8, 8),
        ("886", 8, 9),
        ("961", 7, 8),
        ("962", 8, 9),
        ("966", 9, 9),
        ("971", 8, 9),
        ("972", 8, 9),
        ("974", 8, 8),
    ];
    CODES.iter().find_map(|&(code, lo, hi)| {
        let matches =
            code.len() <= d.len() && code.bytes().zip(d).all(|(c, &digit)| c - b'0' == digit);
        matches.then_some((code.len(), lo..=hi))
    })
}

fn phone_international(span: &str) -> Verdict {
    // "+44 (0)20 7946 0958": the bracketed trunk 0 is for callers inside the country and is not
    // dialled from abroad. Italy keeps its 0 in international numbers, so the number as written
    // is tried too.
    for trunk in ["(0)", "(０)"] {
        if span.contains(trunk) {
            let without_trunk = span.replacen(trunk, "", 1);
            if matches!(international_number(&without_trunk), Verdict::Valid) {
                return Verdict::Valid;
            }
        }
    }
    international_number(span)
}

fn international_number(span: &str) -> Verdict {
    let trimmed = span.trim_start_matches(['+', '＋']);
    let mut d = digits(trimmed);
    if !span.starts_with(['+', '＋']) {
        // 00 international prefix
        if d.len() < 2 || d[0] != 0 || d[1] != 0 {
            return Verdict::Invalid("no international prefix");
        }
        d.drain(..2);
    }
    let Some((cc_len, nsn_lengths)) = calling_code(&d) else {
        return Verdict::Invalid("unknown country calling code");
    };
    let nsn = &d[cc_len..];
    if !nsn_lengths.contains(&nsn.len()) || d.len() > 15 {
        return Verdict::Invalid("national number has the wrong length for its country");
    }
    if cc_len == 1 && d[0] == 1 && !nanp(nsn) {
        return Verdict::Invalid("not a valid NANP number");
    }
    Verdict::Valid
}

/// The digits that `span` reads out as words ("five five five, one two three four", "oh seven
/// seven double oh …", "4 one 1 1"), or `None` when a word is no digit.
fn spoken_digits(span: &str) -> Option<Digits> {
    let mut d = Digits::new();
    let mut repeat = 1;
    for word in span
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let digit = match word.to_ascii_lowercase().as_str() {
            "double" => {
                repeat = 2;
                continue;
            }
            "triple" => {
                repeat = 3;
                continue;
            }
            "zero" | "oh" => 0,
            "one" => 1,
            "two" => 2,
            "three" => 3,
            "four" => 4,
            "five" => 5,
            "six" => 6,
            "seven" => 7,
            "eight" => 8,
            "nine" => 9,
            other => match other.parse::<u8>() {
                Ok(n) if n < 10 && other.len() == 1 => n,
                _ => return None,
            },
        };
        d.extend(std::iter::repeat_n(digit, repeat));
        repeat = 1;
    }
    Some(d)
}

/// `check` on the digits `span` reads out as words.
fn read_out(span: &str, check: impl Fn(&[u8]) -> Verdict) -> Verdict {
    spoken_digits(span).map_or(Verdict::Invalid("not a digit word"), |d| check(&d))
}

/// A phone number typed as words: once the words are read, the digits must have a phone
/// number's length and shape.
fn phone_spelled_out(span: &str) -> Verdict {
    let Some(d) = spoken_digits(span) else {
        return Verdict::Invalid("not a digit word");
    };
    // The lengths of the numbers people read out: a local 7, NANP's 10 or 1 + 10, and the
    // national forms that start with a trunk 0 (UK 0 + 10, France 0 + 9).
    let valid = match d.len() {
        7 => true,
        10 => nanp(&d) || (d[0] == 0 && d[1] != 0),
        11 => (d[0] == 1 && nanp(&d)) || d[0] == 0,
        _ => false,
    };
    verdict(valid, "not the length of a phone number read out")
}

fn phone_europe_national(span: &str) -> Verdict {
    let d = digits(span);
    match d.len() {
        // UK: 01, 02, 03, 05, 07, 08 with 11 digits (0 + 10)
        11 if d[0] == 0 && matches!(d[1], 1 | 2 | 3 | 5 | 7 | 8) => Verdict::Valid,
        // France (and Australia's 02, 03, 04, 07, 08): 0 + 9 digits, 01-09
        10 if d[0] == 0 && d[1] != 0 => Verdict::Valid,
        // Italy's mobiles: ten digits from 3
        10 if d[0] == 3 => Verdict::Valid,
        // Spain: 9 digits, mobiles 6 and 7, landlines 8 and 9
        9 if matches!(d[0], 6..=9) => Verdict::Valid,
        _ => Verdict::Invalid("not a UK, French, Australian or Spanish national number"),
    }
}

/// Germany: trunk 0, then at most 11 digits (area code and subscriber), never 00 (the
/// international prefix).
fn phone_germany_national(d: &[u8]) -> Verdict {
    verdict(
        (8..=12).contains(&d.len()) && d[0] == 0 && d[1] != 0,
        "not a German national number",
    )
}

/// India: mobiles, ten digits starting 6-9.
fn phone_india_national(d: &[u8]) -> Verdict {
    verdict(
        d.len() == 10 && matches!(d[0], 6..=9),
        "not an Indian mobile number",
    )
}

/// Brazil: area codes 11-99 (no 0 in either digit), then eight digits for a landline (2-5 first)
/// or nine for a mobile (9 first).
fn phone_brazil_national(d: &[u8]) -> Verdict {
    let area_ok = d.len() >= 2 && d[0] != 0 && d[1] != 0;
    let number_ok = match d.len() {
        10 => (2..=5).contains(&d[2]),
        11 => d[2] == 9,
        _ => false,
    };
    verdict(area_ok && number_ok, "not a Brazilian national number")
}

/// Whether `text[start..end]` is glued to another group of digits by a separator: in "card number
/// 4020-6581-0827-6499" the German pattern's loose shape finds "0827-6499", a card number's tail
/// (a Luhn-invalid one, so no card claims it first), not a phone number of its own.
fn joins_digit_groups(text: &str, start: usize, end: usize) -> bool {
    let is_separator = |c: char| matches!(c, ' ' | '-' | '.' | '/');
    let is_digit = |c: char| digit_value(c).is_some();
    let mut before = text[..start].chars().rev();
    let mut after = text[end..].chars();
    (before.next().is_some_and(is_separator) && before.next().is_some_and(is_digit))
        || (after.next().is_some_and(is_separator) && after.next().is_some_and(is_digit))
}

fn ipv4(text: &str, span: &str, start: usize, end: usize) -> Verdict {
    // "1.2.3.4.5" and "1.3.6.1.4.1" are version strings or OIDs, not addresses.
    let mut rest = text[end..].chars();
    let mut head = text[..start].chars().rev();
    let dotted_after = rest.next() == Some('.') && rest.next().is_some_and(|c| c.is_ascii_digit());
    let dotted_before = head.next() == Some('.') && head.next().is_some_and(|c| c.is_ascii_digit());
    if dotted_after || dotted_before {
        return Verdict::Invalid("part of a longer dotted number");
    }
    let (addr, prefix) = match span.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (span, None),
    };
    let octets_ok = addr.split('.').all(|o| {
        !o.is_empty()
            && (o == "0" || !o.starts_with('0'))
            && o.parse::<u16>().is_ok_and(|v| v <= 255)
    });
    let prefix_ok = prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|v| v <= 32));
    verdict(
        octets_ok && prefix_ok,
        "octet over 255, leading zero or bad prefix",
    )
}

fn ipv6(span: &str) -> Verdict {
    let addr = span.split('%').next().unwrap_or(span);
    if addr.matches(':').count() < 2 {
        return Verdict::Invalid("fewer than two colons");
    }
    // "::" alone parses (the unspecified address) but in text it is punctuation: "Car :: Driver".
    if !addr.bytes().any(|b| b.is_ascii_hexdigit()) {
        return Verdict::Invalid("colons without a hex digit");
    }
    verdict(
        addr.parse::<std::net::Ipv6Addr>().is_ok(),
        "not an IPv6 address",
    )
}

fn url(span: &str, start: usize) -> Verdict {
    // Trailing punctuation belongs to the sentence, not the URL; a closing bracket belongs to the
    // URL only when the URL opened it.
    let mut end = span.len();
    while let Some(last) = span[..end].chars().last() {
        let trailing_punct = matches!(last, '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '"');
        let unbalanced = match last {
            ')' => span[..end].matches('(').count() < span[..end].matches(')').count(),
            ']' => span[..end].matches('[').count() < span[..end].matches(']').count(),
            '}' => span[..end].matches('{').count() < span[..end].matches('}').count(),
            _ => false,
        };
        if trailing_punct || unbalanced {
            end -= last.len_utf8();
        } else {
            break;
        }
    }
    let lower = span[..end].to_ascii_lowercase();
    let authority = lower
        .split_once("://")
        .map_or(lower.as_str(), |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    // Credentials before the host ("https://user:secret@example.com") are part of the link, and
    // the part of it most in need of redaction.
    let host_and_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host_ok = match host_and_port.strip_prefix('[') {
        // An IPv6 literal: "http://[2001:db8::1]:8080/".
        Some(literal) => literal
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            let host = host_and_port.split(':').next().unwrap_or("");
            let labels: Vec<&str> = host.split('.').collect();
            labels.len() >= 2 && labels.iter().all(|l| !l.is_empty()) || host == "localhost"
        }
    };
    if !host_ok {
        return Verdict::Invalid("no host name");
    }
    if end == span.len() {
        Verdict::Valid
    } else {
        Verdict::ValidUntil(start + end)
    }
}

fn mac_address(span: &str) -> Verdict {
    let seps: Vec<char> = span.chars().filter(|c| !c.is_ascii_hexdigit()).collect();
    if seps.windows(2).any(|w| w[0] != w[1]) {
        return Verdict::Invalid("mixed separators");
    }
    let hex: String = span.chars().filter(char::is_ascii_hexdigit).collect();
    verdict(
        hex.chars().any(|c| c != '0') && !hex.eq_ignore_ascii_case("ffffffffffff"),
        "all-zero or broadcast address",
    )
}

fn email(span: &str) -> Verdict {
    let span = fold_full_width(span);
    // "jane%40example.com": percent-encoded in a link's query
    let at = span.rsplit_once('@').or_else(|| span.rsplit_once("%40"));
    let Some((local, domain)) = at else {
        return Verdict::Invalid("no @");
    };
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Verdict::Invalid("malformed local part");
    }
    verdict(tld_known(domain), "unknown top-level domain")
}

/// Full-width forms (U+FF01–U+FF5E) as the ASCII characters they stand for: an input method in
/// full-width mode types "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ" or "jane＠example.com".
pub(crate) fn fold_full_width(s: &str) -> std::borrow::Cow<'_, str> {
    const FULL_WIDTH: std::ops::RangeInclusive<char> = '\u{FF01}'..='\u{FF5E}';
    if !s.chars().any(|c| FULL_WIDTH.contains(&c)) {
        return s.into();
    }
    s.chars()
        .map(|c| match FULL_WIDTH.contains(&c) {
            true => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            false => c,
        })
        .collect::<String>()
        .into()
}

/// Whether the domain's last label is a top-level domain of the ICANN root (`data/tlds.txt`, from
/// the Public Suffix List, as Presidio checks through tldextract): `maria@sub.example.travel` is an
/// address, `icon@2x.png` is a file name.
fn tld_known(domain: &str) -> bool {
    let tld = domain.rsplit('.').next().unwrap_or("");
    listed_ignoring_ascii_case(top_level_domains(), tld)
}

/// Whether `word` is in `sorted`, a sorted list of lower-case ASCII words, compared ASCII
/// case-insensitively without a lowered copy of `word`.
fn listed_ignoring_ascii_case(sorted: &[&str], word: &str) -> bool {
    sorted
        .binary_search_by(|listed| {
            listed
                .bytes()
                .cmp(word.bytes().map(|b| b.to_ascii_lowercase()))
        })
        .is_ok()
}

/// The lines of `data/tlds.txt` (sorted), read once.
fn top_level_domains() -> &'static [&'static str] {
    static TOP_LEVEL_DOMAINS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    TOP_LEVEL_DOMAINS.get_or_init(|| {
        include_str!("../data/tlds.txt")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Rebuilds "john dot smith at gmail dot com" as "john.smith@gmail.com".
pub fn deobfuscate_email(span: &str) -> String {
    let mut out = String::with_capacity(span.len());
    let tokens = span
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '{' | '}'))
        .filter(|t| !t.is_empty());
    for token in tokens {
        if token.eq_ignore_ascii_case("dot") {
            out.push('.');
        } else if token.eq_ignore_ascii_case("at") {
            out.push('@');
        } else {
            out.extend(token.chars().map(|c| c.to_ascii_lowercase()));
        }
    }
    out
}

/// Whether `span` spells out a separator: "dot" anywhere, "at" between spaces or brackets
/// (" at ", "(at)", "[at]", "{at}"), in any case, or "." or "@" set apart by a space on both sides
/// ("jane . doe @ gmail . com"). One pass: every e-mail address the plain recognizer finds is also
/// a candidate here, with its prefixes when it is rejected.
fn spells_a_separator(span: &str) -> bool {
    let bytes = span.as_bytes();
    let lower = |i: usize| bytes.get(i).map(u8::to_ascii_lowercase);
    (0..bytes.len()).any(|i| match lower(i) {
        Some(b'd') => lower(i + 1) == Some(b'o') && lower(i + 2) == Some(b't'),
        Some(b'a') if i > 0 && lower(i + 1) == Some(b't') => matches!(
            (bytes[i - 1], lower(i + 2)),
            (b' ', Some(b' ')) | (b'(', Some(b')')) | (b'[', Some(b']')) | (b'{', Some(b'}'))
        ),
        Some(b'.' | b'@') => {
            i > 0
                && bytes[i - 1].is_ascii_whitespace()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_whitespace)
        }
        _ => false,
    })
}

fn email_obfuscated(span: &str) -> Verdict {
    if !spells_a_separator(span) {
        return Verdict::Invalid("not obfuscated (the plain email recognizer covers it)");
    }
    // "featured in @CarInsurance.com", "Follow @apple.holidays": an at sign spaced from the word
    // before it but not from the name after it starts a mention.
    let bytes = span.as_bytes();
    let mention = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'@'
            && (i > 0 && bytes[i - 1].is_ascii_whitespace())
                != bytes.get(i + 1).is_some_and(u8::is_ascii_whitespace)
    });
    if mention {
        return Verdict::Invalid("an @mention, not an address");
    }
    let rebuilt = deobfuscate_email(span);
    if rebuilt.matches('@').count() != 1 {
        return Verdict::Invalid("not exactly one at");
    }
    // "registered it at www.example.com": a web site, not a mail domain.
    if rebuilt.contains("@www.") {
        return Verdict::Invalid("a web address after \"at\", not a mail domain");
    }
    email(&rebuilt)
}

/// "anna.kowalski at gmail": the address with its provider's usual domain must be one.
fn email_provider_spoken(span: &str) -> Verdict {
    let mut rebuilt = deobfuscate_email(span);
    let provider = rebuilt.rsplit('@').next().unwrap_or("");
    let domain = match provider {
        "gmail" | "googlemail" | "hotmail" | "outlook" | "icloud" | "aol" | "protonmail"
        | "yahoo" | "yandex" => "com",
        "proton" => "me",
        "gmx" => "net",
        _ => return Verdict::Invalid("not a mail provider"),
    };
    rebuilt.push('.');
    rebuilt.push_str(domain);
    email(&rebuilt)
}

fn base58_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut bytes: Vec<u8> = Vec::new();
    for c in s.bytes() {
        let mut carry = ALPHABET.iter().position(|&a| a == c)? as u32;
        for b in bytes.iter_mut().rev() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = s.bytes().take_while(|&c| c == b'1').count();
    let mut out = vec![0u8; zeros];
    out.extend(bytes);
    Some(out)
}

fn btc_base58check(s: &str) -> bool {
    use sha2::{Digest, Sha256};
    let Some(data) = base58_decode(s) else {
        return false;
    };
    if data.len() != 25 || !matches!(data[0], 0x00 | 0x05) {
        return false;
    }
    let (payload, checksum) = data.split_at(21);
    let hash = Sha256::digest(Sha256::digest(payload));
    hash[..4] == *checksum
}

fn bech32_valid(s: &str) -> bool {
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    if s.chars().any(char::is_uppercase) && s.chars().any(char::is_lowercase) {
        return false;
    }
    let s = s.to_ascii_lowercase();
    let Some((hrp, data)) = s.rsplit_once('1') else {
        return false;
    };
    let Some(values) = data
        .bytes()
        .map(|c| CHARSET.iter().position(|&x| x == c).map(|v| v as u32))
        .collect::<Option<Vec<u32>>>()
    else {
        return false;
    };
    let mut chk: u32 = 1;
    let hrp_values = hrp
        .bytes()
        .map(|b| u32::from(b) >> 5)
        .chain(std::iter::once(0))
        .chain(hrp.bytes().map(|b| u32::from(b) & 31));
    for v in hrp_values.chain(values) {
        let top = chk >> 25;
        chk = ((chk & 0x1ff_ffff) << 5) ^ v;
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    // 1 is bech32 (segwit v0), 0x2bc830a3 is bech32m (taproot)
    chk == 1 || chk == 0x2bc8_30a3
}

/// EIP-55: in a mixed-case address, each hex letter is upper-case iff the matching nibble of the
/// Keccak-256 of the lower-case address is >= 8. All-lower and all-upper carry no checksum.
pub fn eip55_valid(addr: &str) -> bool {
    let hex = &addr[2..];
    let has_upper = hex.chars().any(|c| c.is_ascii_uppercase());
    let has_lower = hex.chars().any(|c| c.is_ascii_lowercase());
    if !(has_upper && has_lower) {
        return true;
    }
    let hash = Keccak256::digest(hex.to_ascii_lowercase().as_bytes());
    hex.chars().enumerate().all(|(i, c)| {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0xf;
        !c.is_ascii_alphabetic() || c.is_ascii_uppercase() == (nibble >= 8)
    })
}

fn crypto_wallet(span: &str) -> Verdict {
    if span.starts_with("0x") {
        verdict(eip55_valid(span), "fails EIP-55 checksum")
    } else if span.to_ascii_lowercase().starts_with("bc1") {
        verdict(bech32_valid(span), "fails bech32 checksum")
    } else {
        verdict(btc_base58check(span), "fails base58check")
    }
}

fn high_entropy(span: &str) -> Verdict {
    let classes = [
        span.chars().any(|c| c.is_ascii_uppercase()),
        span.chars().any(|c| c.is_ascii_lowercase()),
        span.chars().any(|c| c.is_ascii_digit()),
    ];
    verdict(
        classes.iter().all(|&x| x),
        "lacks mixed case and digits of a generated secret",
    )
}

/// ABA routing number: prefix in the Federal Reserve ranges and the 3-7-1 weighted checksum.
fn aba_routing(d: &[u8]) -> Verdict {
    if d.len() != 9 {
        return Verdict::Invalid("not 9 digits");
    }
    let prefix = d[0] * 10 + d[1];
    if !matches!(prefix, 0..=12 | 21..=32 | 61..=72 | 80) {
        return Verdict::Invalid("prefix outside Federal Reserve ranges");
    }
    let sum = weighted_sum(d, [3, 7, 1].into_iter().cycle());
    verdict(
        sum.is_multiple_of(10) && d.iter().any(|&x| x != 0),
        "fails ABA checksum",
    )
}

/// NHS number: weights 10..2 over the first nine digits, check digit = 11 - (sum mod 11).
fn uk_nhs(d: &[u8]) -> Verdict {
    if d.len() != 10 {
        return Verdict::Invalid("not 10 digits");
    }
    let sum = weighted_sum(&d[..9], (2..=10).rev());
    let check = 11 - (sum % 11);
    let check = if check == 11 { 0 } else { check };
    verdict(
        check != 10 && check == u32::from(d[9]) && !d.iter().all(|&x| x == d[0]),
        "fails mod-11 check digit",
    )
}

/// IRS Individual Taxpayer Identification Number: 9 digits, the first a 9, the middle pair in
/// the ranges the IRS assigns (50–65, 70–88, 90–92, 94–99), so no SSN is ever one.
fn us_itin(d: &[u8]) -> Verdict {
    if d.len() != 9 || d[0] != 9 {
        return Verdict::Invalid("not 9 digits starting with 9");
    }
    let group = d[3] * 10 + d[4];
    verdict(
        matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99),
        "middle digits outside the ITIN ranges",
    )
}

/// Canada's Social Insurance Number: nine digits, Luhn. 0 is never issued first, 8 not yet;
/// all one digit is a placeholder.
fn ca_sin(d: &[u8]) -> Verdict {
    if d.len() != 9 || matches!(d[0], 0 | 8) || d.iter().all(|&x| x == d[0]) {
        return Verdict::Invalid("not nine digits starting 1-7 or 9");
    }
    verdict(luhn_valid(d), "fails Luhn")
}

/// Australia's Tax File Number: nine digits whose sum weighted 1,4,3,7,5,8,6,9,10 is a multiple of 11.
fn au_tfn(d: &[u8]) -> Verdict {
    const WEIGHTS: [u32; 9] = [1, 4, 3, 7, 5, 8, 6, 9, 10];
    if d.len() != 9 || d.iter().all(|&x| x == d[0]) {
        return Verdict::Invalid("not nine digits");
    }
    verdict(
        weighted_sum(d, WEIGHTS).is_multiple_of(11),
        "fails the weighted mod-11 check",
    )
}

/// Australia's Medicare number: ten digits, the first 2-6; the ninth is the first eight weighted
/// 1,3,7,9,1,3,7,9 mod 10 (the tenth is the card's issue number).
fn au_medicare(d: &[u8]) -> Verdict {
    const WEIGHTS: [u32; 8] = [1, 3, 7, 9, 1, 3, 7, 9];
    if d.len() != 10 || !(2..=6).contains(&d[0]) {
        return Verdict::Invalid("not ten digits starting 2-6");
    }
    verdict(
        weighted_sum(&d[..8], WEIGHTS) % 10 == u32::from(d[8]),
        "wrong check digit",
    )
}

/// Spain's DNI/NIF and NIE: the letter is the number (an NIE's X, Y, Z read as 0, 1, 2) mod 23.
fn es_nif(span: &str) -> Verdict {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let Some(letter) = span.chars().next_back() else {
        return Verdict::Invalid("empty");
    };
    // An NIE's Y and Z lead the number as 1 and 2; its X, like a DNI's first digit, adds none.
    let mut number: u32 = match span.chars().next() {
        Some('Y') => 1,
        Some('Z') => 2,
        _ => 0,
    };
    for d in digits(span) {
        number = number * 10 + u32::from(d);
    }
    verdict(
        char::from(LETTERS[(number % 23) as usize]) == letter,
        "wrong check letter",
    )
}

/// India's Aadhaar: twelve digits, the first 2-9, Verhoeff check digit, not a palindrome (UIDAI
/// never issues one; test numbers often are).
fn in_aadhaar(d: &[u8]) -> Verdict {
    if d.len() != 12 || d[0] < 2 || d.iter().eq(d.iter().rev()) {
        return Verdict::Invalid("not twelve digits starting 2-9");
    }
    verdict(verhoeff_valid(d), "fails Verhoeff")
}

/// The Verhoeff checksum (dihedral group D5): a number with its check digit multiplies out to 0.
fn verhoeff_valid(d: &[u8]) -> bool {
    const MULTIPLY: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const PERMUTE: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let mut c = 0u8;
    for (i, &x) in d.iter().rev().enumerate() {
        c = MULTIPLY[usize::from(c)][usize::from(PERMUTE[i % 8][usize::from(x)])];
    }
    c == 0
}

/// A vehicle identification number (ISO 3779). The pattern keeps to the 33 characters a VIN may
/// use (no I, O or Q); here it must mix letters and digits, its tenth character (the model year)
/// is never U, Z or 0, and a vehicle built for North America (a manufacturer code starting 1-5)
/// carries a check digit in ninth place (49 CFR 565.15), which other regions do not require.
fn vin(span: &str) -> Verdict {
    let b = span.as_bytes();
    let allowed = |c: &u8| c.is_ascii_digit() || (c.is_ascii_uppercase() && !b"IOQ".contains(c));
    if b.len() != 17
        || !b.iter().all(allowed)
        || !b.iter().any(u8::is_ascii_digit)
        || !b.iter().any(u8::is_ascii_uppercase)
    {
        return Verdict::Invalid("not 17 letters and digits");
    }
    if matches!(b[9], b'U' | b'Z' | b'0') {
        return Verdict::Invalid("no model year in tenth place");
    }
    if !matches!(b[0], b'1'..=b'5') {
        return Verdict::Valid;
    }
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let value = |c: u8| -> u32 {
        match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            // A-H 1-8, J-N 1-5, P 7, R 9, S-Z 2-9: the letters' values in the standard's table.
            b'A'..=b'H' => u32::from(c - b'A') + 1,
            b'J'..=b'N' => u32::from(c - b'J') + 1,
            b'P' => 7,
            b'R' => 9,
            _ => u32::from(c - b'S') + 2,
        }
    };
    let sum: u32 = b.iter().zip(WEIGHTS).map(|(&c, w)| value(c) * w).sum();
    let check = match sum % 11 {
        10 => b'X',
        r => b'0' + r as u8,
    };
    verdict(b[8] == check, "wrong check digit for a North American VIN")
}

/// The number its decimal digits spell.
fn number(d: &[u8]) -> u64 {
    d.iter().fold(0, |a, &x| a * 10 + u64::from(x))
}

/// Whether a day and month can be a birth date (any year, so 29 February too: 2000 is a leap
/// year).
fn day_month_valid(day: u8, month: u8) -> bool {
    day >= 1 && u32::from(day) <= days_in_month(2000, u32::from(month))
}

/// Italy's codice fiscale: the check letter over the first fifteen characters (odd places by
/// the Ministry's table, even places by value), and a real day of birth (41-71 for women). A
/// digit replaced by a letter (omocodia, for two people with the same code) is read back.
fn it_fiscal_code(span: &str) -> Verdict {
    const ODD: [u8; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let code: SmallVec<[u8; 16]> = span.bytes().map(|b| b.to_ascii_uppercase()).collect();
    if code.len() != 16 || !code.iter().all(u8::is_ascii_alphanumeric) {
        return Verdict::Invalid("not 16 letters and digits");
    }
    let value = |c: u8| -> u8 {
        if c.is_ascii_digit() {
            c - b'0'
        } else {
            c - b'A'
        }
    };
    let sum: u32 = code[..15]
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let v = value(c);
            // Odd places (1st, 3rd, …) map digits like the letters A-J.
            u32::from(if i % 2 == 0 { ODD[usize::from(v)] } else { v })
        })
        .sum();
    if code[15] != b'A' + (sum % 26) as u8 {
        return Verdict::Invalid("wrong check letter");
    }
    let omocodia = |c: u8| -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            _ => b"LMNPQRSTUV".iter().position(|&l| l == c).unwrap_or(99) as u8,
        }
    };
    let day = omocodia(code[9]) * 10 + omocodia(code[10]);
    let day = if day > 40 { day - 40 } else { day };
    let month = b"ABCDEHLMPRST"
        .iter()
        .position(|&m| m == code[8])
        .unwrap_or(99) as u8
        + 1;
    verdict(day_month_valid(day, month), "no such day of birth")
}

/// Finland's henkilötunnus: a real date, then the check character of the nine digits mod 31.
fn fi_personal_identity_code(span: &str) -> Verdict {
    let b = span.as_bytes();
    if b.len() != 11 || !b[..6].iter().chain(&b[7..10]).all(u8::is_ascii_digit) {
        return Verdict::Invalid("not a date, a sign and three digits");
    }
    let d = digits(&span[..6]);
    if !day_month_valid(d[0] * 10 + d[1], d[2] * 10 + d[3]) {
        return Verdict::Invalid("no such date of birth");
    }
    let mut nine = d;
    nine.extend(digits(&span[7..10]));
    const CHECK: &[u8; 31] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";
    verdict(
        b[10] == CHECK[(number(&nine) % 31) as usize],
        "wrong check character",
    )
}

/// Poland's PESEL: a birth date whose month carries the century (+20 for the 2000s), and a check
/// digit over weights 1-3-7-9.
fn pl_pesel(d: &[u8]) -> Verdict {
    if d.len() != 11 {
        return Verdict::Invalid("not 11 digits");
    }
    let month = (d[2] * 10 + d[3]) % 20;
    if !day_month_valid(d[4] * 10 + d[5], month) {
        return Verdict::Invalid("no such date of birth");
    }
    let sum = weighted_sum(&d[..10], [1, 3, 7, 9, 1, 3, 7, 9, 1, 3]);
    verdict(
        (10 - sum % 10) % 10 == u32::from(d[10]),
        "wrong check digit",
    )
}

/// The Netherlands' burgerservicenummer: the eleven test, 9·d1 + 8·d2 + … + 2·d8 − d9 ≡ 0 (mod 11).
fn nl_bsn(d: &[u8]) -> Verdict {
    if d.len() != 9 || d.iter().all(|&x| x == 0) {
        return Verdict::Invalid("not 9 digits");
    }
    let sum = weighted_sum(&d[..8], (2..=9).rev()) as i64 - i64::from(d[8]);
    verdict(sum % 11 == 0, "fails the eleven test")
}

/// Sweden's personnummer: a birth date (day + 60 for a samordningsnummer), then a Luhn check
/// over the ten digits without the century.
fn se_personnummer(d: &[u8]) -> Verdict {
    let d = match d.len() {
        10 => d,
        12 => &d[2..],
        _ => return Verdict::Invalid("not 10 or 12 digits"),
    };
    let day = d[4] * 10 + d[5];
    let day = if day > 60 { day - 60 } else { day };
    if !day_month_valid(day, d[2] * 10 + d[3]) {
        return Verdict::Invalid("no such date of birth");
    }
    verdict(luhn_valid(d), "fails Luhn")
}

/// France's numéro de sécurité sociale (NIR): a birth month (or INSEE's 20-42 and 50-99 for
/// unknown ones), and a key of 97 minus the first thirteen digits mod 97, Corsica's 2A and 2B
/// read as 19 and 18.
fn fr_nir(span: &str) -> Verdict {
    let compact: SmallVec<[u8; 16]> = span
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if compact.len() != 15 {
        return Verdict::Invalid("not 15 characters");
    }
    let (dept_a, dept_b) = (compact[5], compact[6]);
    let mut d: SmallVec<[u8; 16]> = SmallVec::new();
    for (i, &c) in compact.iter().enumerate() {
        match c {
            b'0'..=b'9' => d.push(c - b'0'),
            b'A' | b'B' if i == 6 && dept_a == b'2' => d.push(0),
            _ => return Verdict::Invalid("not digits"),
        }
    }
    let month = d[3] * 10 + d[4];
    if !matches!(month, 1..=12 | 20..=42 | 50..=99) {
        return Verdict::Invalid("no such month");
    }
    let mut body = number(&d[..13]);
    if dept_a == b'2' && dept_b == b'A' {
        body -= 1_000_000;
    } else if dept_a == b'2' && dept_b == b'B' {
        body -= 2_000_000;
    }
    verdict(97 - body % 97 == number(&d[13..]), "wrong key")
}

/// Germany's Steuer-ID: no leading 0; among the first ten digits one appears twice or three
/// times and the others at most once; then an ISO 7064 MOD 11,10 check digit.
fn de_tax_id(d: &[u8]) -> Verdict {
    if d.len() != 11 || d[0] == 0 {
        return Verdict::Invalid("not 11 digits without a leading 0");
    }
    let mut counts = [0u8; 10];
    for &x in &d[..10] {
        counts[usize::from(x)] += 1;
    }
    let repeated = counts.iter().filter(|&&c| c >= 2).count();
    if repeated != 1 || counts.iter().any(|&c| c > 3) {
        return Verdict::Invalid("digit repetition not as issued");
    }
    let mut product = 10;
    for &x in &d[..10] {
        let sum = match (u32::from(x) + product) % 10 {
            0 => 10,
            s => s,
        };
        product = (sum * 2) % 11;
    }
    let check = (11 - product) % 10;
    verdict(check == u32::from(d[10]), "wrong check digit")
}

/// Singapore's NRIC and FIN: a prefix letter, seven digits weighted 2-7-6-5-4-3-2, and a check
/// letter from the prefix's table (T and G add 4, M adds 3).
fn sg_nric_fin(span: &str) -> Verdict {
    let b: SmallVec<[u8; 9]> = span.bytes().map(|c| c.to_ascii_uppercase()).collect();
    if b.len() != 9 || !b[1..8].iter().all(u8::is_ascii_digit) {
        return Verdict::Invalid("not a letter, seven digits and a letter");
    }
    let d = digits(&span[1..8]);
    let mut sum = weighted_sum(&d, [2, 7, 6, 5, 4, 3, 2]);
    let table: &[u8; 11] = match b[0] {
        b'S' => b"JZIHGFEDCBA",
        b'T' => {
            sum += 4;
            b"JZIHGFEDCBA"
        }
        b'F' => b"XWUTRQPNMLK",
        b'G' => {
            sum += 4;
            b"XWUTRQPNMLK"
        }
        b'M' => {
            sum += 3;
            b"KLJNPQRTUWX"
        }
        _ => return Verdict::Invalid("no such prefix"),
    };
    verdict(b[8] == table[(sum % 11) as usize], "wrong check letter")
}

/// Brazil's CPF: nine digits and two check digits, each the weighted sum (10…2, then 11…2)
/// times 10 mod 11 (10 read as 0); a digit repeated eleven times passes the check but is never issued.
fn br_cpf(d: &[u8]) -> Verdict {
    if d.len() != 11 || d.iter().all(|&x| x == d[0]) {
        return Verdict::Invalid("not 11 digits");
    }
    let check = |n: usize| (weighted_sum(&d[..n], (2..=n as u32 + 1).rev()) * 10 % 11) % 10;
    verdict(
        check(9) == u32::from(d[9]) && check(10) == u32::from(d[10]),
        "wrong check digits",
    )
}

/// Australia's ABN: one less on the first digit, weights 10, 1, 3, … 19, sum divisible by 89.
fn au_abn(d: &[u8]) -> Verdict {
    if d.len() != 11 || d[0] == 0 {
        return Verdict::Invalid("not 11 digits");
    }
    let mut d: SmallVec<[u8; 11]> = SmallVec::from_slice(d);
    d[0] -= 1;
    let sum = weighted_sum(&d, [10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
    verdict(sum.is_multiple_of(89), "fails the mod 89 check")
}

/// Capitalised words that follow an amount rather than a postcode: "5000 Euro", "10000 Steps".
const NOT_TOWNS: &[&str] = &[
    "euro",
    "euros",
    "eur",
    "dollar",
    "dollars",
    "usd",
    "pound",
    "pounds",
    "gbp",
    "franken",
    "francs",
    "kronor",
    "kr",
    "yen",
    "points",
    "pts",
    "steps",
    "calories",
    "kcal",
    "miles",
    "km",
    "meter",
    "meters",
    "metres",
    "kg",
    "mb",
    "gb",
    "tb",
    "users",
    "members",
    "followers",
    "customers",
    "people",
    "orders",
    "tickets",
    "items",
    "units",
    "pieces",
    "stück",
    "ex",
];

/// A continental postcode before its town: the word after it must be a town's name, not a unit.
fn eu_postcode(text: &str, end: usize) -> Verdict {
    let town = text[end..]
        .trim_start()
        .split(|c: char| !c.is_alphabetic())
        .next()
        .unwrap_or("");
    let unit = NOT_TOWNS.iter().any(|w| town.eq_ignore_ascii_case(w));
    verdict(!town.is_empty() && !unit, "an amount, not a postcode")
}

/// An Australian postcode after its state's abbreviation ("Sydney NSW 2000"): the number must lie
/// in that state's ranges (Australia Post), so "SA 1234" is not one.
fn au_postcode(text: &str, start: usize, end: usize) -> Verdict {
    let d = digits(&text[start..end]);
    if d.len() != 4 {
        return Verdict::Invalid("not four digits");
    }
    let n = number(&d);
    let state = text[..start]
        .trim_end()
        .rsplit(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    let ranges: &[(u64, u64)] = match state {
        "NSW" => &[(1000, 2599), (2619, 2899), (2921, 2999)],
        "ACT" => &[(200, 299), (2600, 2618), (2900, 2920)],
        "VIC" => &[(3000, 3999), (8000, 8999)],
        "QLD" => &[(4000, 4999), (9000, 9999)],
        "SA" => &[(5000, 5999)],
        "WA" => &[(6000, 6999)],
        "TAS" => &[(7000, 7999)],
        "NT" => &[(800, 999)],
        _ => &[],
    };
    verdict(
        ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&n)),
        "not a postcode of that state",
    )
}

/// UK National Insurance number: two prefix letters, six digits, a suffix A–D. HMRC never
/// issues D, F, I, Q, U or V as either prefix letter, O as the second, nor the prefixes BG, GB,
/// KN, NK, NT, TN and ZZ.
fn uk_nino(span: &str) -> Verdict {
    let chars: SmallVec<[char; 9]> = span
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let [first, second, ref digits @ .., suffix] = chars[..] else {
        return Verdict::Invalid("not two letters, six digits and a letter");
    };
    if digits.len() != 6 || !digits.iter().all(|c| digit_value(*c).is_some()) {
        return Verdict::Invalid("not two letters, six digits and a letter");
    }
    if "DFIQUV".contains(first) || "DFIOQUV".contains(second) {
        return Verdict::Invalid("a prefix letter HMRC never issues");
    }
    const NEVER_ISSUED: [[char; 2]; 7] = [
        ['B', 'G'],
        ['G', 'B'],
        ['K', 'N'],
        ['N', 'K'],
        ['N', 'T'],
        ['T', 'N'],
        ['Z', 'Z'],
    ];
    if NEVER_ISSUED.contains(&[first, second]) {
        return Verdict::Invalid("a prefix HMRC never issues");
    }
    verdict(('A'..='D').contains(&suffix), "suffix not A–D")
}

/// The 124 postcode areas (the UK's 121, Guernsey, Jersey, the Isle of Man): a postcode's
/// leading letters must name one, which turns "looks like a postcode" (`AB1 2CD`-shaped codes
/// are common) into one that mail can reach.
const UK_POSTCODE_AREAS: &[&str] = &[
    "AB", "AL", "B", "BA", "BB", "BD", "BH", "BL", "BN", "BR", "BS", "BT", "CA", "CB", "CF", "CH",
    "CM", "CO", "CR", "CT", "CV", "CW", "DA", "DD", "DE", "DG", "DH", "DL", "DN", "DT", "DY", "E",
    "EC", "EH", "EN", "EX", "FK", "FY", "G", "GL", "GU", "GY", "HA", "HD", "HG", "HP", "HR", "HS",
    "HU", "HX", "IG", "IM", "IP", "IV", "JE", "KA", "KT", "KW", "KY", "L", "LA", "LD", "LE", "LL",
    "LN", "LS", "LU", "M", "ME", "MK", "ML", "N", "NE", "NG", "NN", "NP", "NR", "NW", "OL", "OX",
    "PA", "PE", "PH", "PL", "PO", "PR", "RG", "RH", "RM", "S", "SA", "SE", "SG", "SK", "SL", "SM",
    "SN", "SO", "SP", "SR", "SS", "ST", "SW", "SY", "TA", "TD", "TF", "TN", "TQ", "TR", "TS", "TW",
    "UB", "W", "WA", "WC", "WD", "WF", "WN", "WR", "WS", "WV", "YO", "ZE",
];

/// A UK postcode whose area exists (the pattern has checked the shape).
fn uk_postcode(span: &str) -> Verdict {
    let area = &span[..span.bytes().take_while(u8::is_ascii_alphabetic).count()];
    verdict(
        UK_POSTCODE_AREAS
            .iter()
            .any(|a| a.eq_ignore_ascii_case(area)),
        "no such postcode area",
    )
}

/// A US ZIP code: 5 digits (ZIP+4: 9) whose first three are a prefix the USPS uses (000–004 are
/// not).
fn us_zip(d: &[u8]) -> Verdict {
    let prefix = d.iter().take(3).fold(0u32, |a, &x| a * 10 + u32::from(x));
    verdict(
        matches!(d.len(), 5 | 9) && prefix >= 5,
        "not a ZIP code the USPS uses",
    )
}

fn month_from_name(word: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let w = word.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|m| w.starts_with(m))
        .map(|i| i as u32 + 1)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

fn date_of_birth(span: &str) -> Verdict {
    let numbers: Vec<u32> = span
        .split(|c: char| digit_value(c).is_none())
        .filter(|s| !s.is_empty())
        .map(|s| digits(s).iter().fold(0u32, |a, &d| a * 10 + u32::from(d)))
        .collect();
    let month_name = span
        .split(|c: char| !c.is_alphabetic())
        .find_map(month_from_name);
    let centuries = |y: u32| -> &'static [u32] { if y < 100 { &[1900, 2000] } else { &[0] } };
    let plausible = |y: u32, m: u32, d: u32| {
        (1900..=2100).contains(&y) && (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
    };
    let ok = match (month_name, numbers.as_slice()) {
        // "4 jul 76": a two-digit year in either century, as below
        (Some(m), [a, b]) => {
            let (day, year) = if *a > 31 { (*b, *a) } else { (*a, *b) };
            centuries(year).iter().any(|c| plausible(c + year, m, day))
        }
        (None, [y, m, d]) if *y >= 1900 => plausible(*y, *m, *d),
        // dd/mm/yyyy or mm/dd/yyyy: either reading makes it a date; a two-digit year
        // (dd/mm/yy) in either century
        (None, [a, b, y]) => centuries(*y)
            .iter()
            .any(|c| plausible(c + y, *b, *a) || plausible(c + y, *a, *b)),
        _ => false,
    };
    verdict(ok, "not a calendar date")
}

/// Capitalised words that follow "this is" / "I'm" without being names. Sentiment words matter
/// most: redacting "I'm Furious" as a PERSON would blind the classifier.
const NOT_NAMES: &[&str] = &[
    "sorry",
    "happy",
    "sad",
    "angry",
    "furious",
    "upset",
    "mad",
    "glad",
    "done",
    "fine",
    "good",
    "great",
    "bad",
    "terrible",
    "awful",
    "horrible",
    "ridiculous",
    "unacceptable",
    "amazing",
    "awesome",
    "excellent",
    "disappointed",
    "frustrated",
    "annoyed",
    "confused",
    "tired",
    "sick",
    "not",
    "very",
    "so",
    "really",
    "just",
    "still",
    "also",
    "here",
    "there",
    "ok",
    "okay",
    "it",
    "the",
    "this",
    "that",
    "what",
    "why",
    "how",
    "when",
    "where",
    "who",
    "yes",
    "no",
    "sure",
    "yeah",
    "yep",
    "yup",
    "nope",
    "right",
    "please",
    "thanks",
    "thank",
    "hello",
    "hi",
    "hey",
    "dear",
    "sir",
    "madam",
    // Titles: "it's Dr. Emily Chen" is a title then a name, and the name_title pattern finds it.
    "mr",
    "mrs",
    "ms",
    "mx",
    "miss",
    "dr",
    "prof",
    // Verbs after "my wife" in title case ("My Wife Is an Actress"): never a first name.
    "is",
    "was",
    "has",
    "had",
    "and",
    "will",
    "would",
    "can",
    "does",
    "did",
    "customer",
    "support",
    "service",
    "team",
    "agent",
    // "Hi, Everyone here ...": who, but nobody in particular.
    "everyone",
    "everybody",
    "nobody",
    "someone",
    "somebody",
    "anyone",
    "anybody",
    "manager",
    "account",
    "order",
    "a",
    "an",
    "my",
    "your",
    "our",
    "their",
    "his",
    "her",
    "we",
    "you",
    "they",
    "he",
    "she",
    "me",
    "i",
    "going",
    "trying",
    "calling",
    "writing",
    "waiting",
    "back",
    "again",
    "now",
    "today",
    "tomorrow",
    "yesterday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "best",
    "kind",
    "warm",
    "many",
    "much",
    "all",
    "regards",
    "sincerely",
    "cheers",
    "love",
    "hate",
    "never",
    "always",
    "absolutely",
    "totally",
    "completely",
    "extremely",
    "super",
    "pretty",
    "quite",
    "worried",
    "concerned",
    "pleased",
    "satisfied",
    "unhappy",
    "impressed",
    "shocked",
    "lost",
    // After "my name is" in one case ("my name is on the booking", "spelled wrong"):
    // function words and what is said of a name.
    "on",
    "in",
    "at",
    "to",
    "of",
    "for",
    "with",
    "from",
    "by",
    "but",
    "or",
    "as",
    "if",
    "because",
    "under",
    "spelled",
    "spelt",
    "misspelled",
    "wrong",
    "incorrect",
    "correct",
    "missing",
    "listed",
    "different",
    "changed",
    "same",
    "unknown",
    "showing",
    "shown",
    "printed",
    // After "call me": when, not who.
    "maybe",
    "later",
    "soon",
    "asap",
    "anytime",
    // The first half of a hyphenated word ("it's Non-Refundable!", "I'm Fed-Up."): the self
    // introduction takes hyphenated names ("I'm Jean-Luc").
    "non",
    "self",
    "pre",
    "re",
    "ex",
    "well",
    "fed",
    "half",
    "semi",
    "anti",
    "over",
    "sold",
    // "Dear God, ...": an exclamation, not a person; "Dear Valued Customer", "Hey guys,": no one
    // by name.
    "god",
    "lord",
    "valued",
    "hiring",
    "friends",
    "colleagues",
    "member",
    "guest",
    "passenger",
    "traveler",
    "traveller",
    "client",
    "user",
    "bro",
    "guys",
    "folks",
    // Seen redacted in the airline tweets ("it's Late Flight...", "I'm Cancelled."): words that
    // carry the complaint.
    "late",
    "delayed",
    "cancelled",
    "canceled",
    "stuck",
    "stranded",
    "early",
    // After "soy", "je suis", "sono", "ik ben", "ich bin": a feeling or a role, sometimes
    // capitalised for emphasis.
    "enojado",
    "enojada",
    "enfadado",
    "enfadada",
    "furioso",
    "furiosa",
    "harto",
    "harta",
    "cliente",
    "furieux",
    "furieuse",
    "client",
    "arrabbiato",
    "arrabbiata",
    "deluso",
    "delusa",
    "stufo",
    "stufa",
    "boos",
    "woedend",
    "teleurgesteld",
    "klant",
    "sauer",
    // German capitalises nouns: "Ich bin Kunde, …" names a role, not a person.
    "kunde",
    "kundin",
    "neukunde",
    "stammkunde",
    "student",
    "studentin",
    "rentner",
    "rentnerin",
    "mitglied",
    "mutter",
    "vater",
    "arzt",
    "lehrer",
    "lehrerin",
    "deutscher",
    "deutsche",
    // A call to action before "here" at a text's start ("Sign Up here.", "Read More here!").
    "sign",
    "log",
    "click",
    "tap",
    "read",
    "learn",
    "shop",
    "buy",
    "book",
    "register",
    "join",
    "apply",
    "vote",
    "start",
    "find",
    "see",
    "get",
    "download",
    "subscribe",
    "donate",
    "more",
];

/// `NOT_NAMES` sorted, for a binary search (a name candidate checks two words against ~200).
fn not_names() -> &'static [&'static str] {
    static SORTED: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    SORTED.get_or_init(|| {
        let mut sorted = NOT_NAMES.to_vec();
        sorted.sort_unstable_by(|a, b| a.bytes().cmp(b.bytes()));
        sorted
    })
}

fn person_name(span: &str) -> Verdict {
    // The first word, and the last ("john and" after "my name is" shortens to "john").
    let mut words = span.split([' ', '-', '\'', '’']).filter(|w| !w.is_empty());
    let first = words.next().unwrap_or("");
    let last = words.next_back();
    let common = |w: &str| listed_ignoring_ascii_case(not_names(), w);
    verdict(
        !common(first) && !last.is_some_and(common) && span.chars().count() >= 2,
        "a common word, not a name",
    )
}

/// Words that do not occur inside a street name but do in a sentence that happens to run from a
/// number to a street-type word: "Put 100 Driverless Cars On The Road".
const NOT_IN_STREET_NAMES: &[&str] = &[
    "on", "in", "to", "of", "for", "and", "by", "at", "is", "are", "was", "were", "with", "from",
    "into", "about", "my", "your", "our", "their",
];

fn street_address(span: &str) -> Verdict {
    let function_word = span.split_whitespace().any(|word| {
        NOT_IN_STREET_NAMES
            .iter()
            .any(|w| word.trim_end_matches([',', '.']).eq_ignore_ascii_case(w))
    });
    verdict(!function_word, "a sentence, not a street name")
}

/// A stated password, not the word a complaint puts after "password is" ("incorrect", "WRONG",
/// "'expired'"): it has a digit, a symbol, or a capital after a small letter ("hunter2", "P@ss",
/// "myDog"). One character repeated is a mask ("********"), which redacting redacted text meets,
/// unless it is a digit: "PIN: 0000" and "cvv 111" are real, and common, values.
/// The pattern leaves the length open (a counted `\S` is a large automaton); 64 is the cap here.
fn password(span: &str) -> Verdict {
    const QUOTES: [char; 10] = ['"', '\'', '“', '”', '‘', '’', '(', ')', '[', ']'];
    let body = span.trim_start_matches(QUOTES).trim_end_matches(|c| {
        QUOTES.contains(&c) || matches!(c, '.' | ',' | ';' | ':' | '!' | '?')
    });
    if body.chars().count() > 64 {
        return Verdict::Invalid("longer than a password");
    }
    let mut chars = body.chars();
    let first = chars.next();
    if first.is_none_or(|f| digit_value(f).is_none() && chars.all(|c| c == f)) {
        return Verdict::Invalid("empty or one character repeated");
    }
    let digit_or_symbol = body.chars().any(|c| !c.is_alphabetic());
    let inner_capital = body
        .chars()
        .zip(body.chars().skip(1))
        .any(|(a, b)| a.is_lowercase() && b.is_uppercase());
    verdict(digit_or_symbol || inner_capital, "a word, not a password")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(s: &str) -> Digits {
        digits(s)
    }

    #[test]
    fn luhn_table() {
        for (number, valid) in [
            ("4111111111111111", true),
            ("4111111111111112", false),
            ("5500005555555559", true),
            ("378282246310005", true),
            ("6011111111111117", true),
            ("0000000000000000", true),
            ("1", false),
        ] {
            assert_eq!(luhn_valid(&ds(number)), valid, "{number}");
        }
    }

    #[test]
    fn spelled_out_phone_table() {
        for (words, valid) in [
            ("five five five one two three four", true),
            ("four one five, five five five, two six seven one", true),
            ("one four one five five five five two six seven one", true),
            (
                "oh seven seven double oh nine double oh one two three",
                true,
            ),
            ("zero six one two three four five six seven eight", true), // French 06…
            ("four one five one one one two six seven one", false),     // exchange 111
            ("one two three four five six seven eight", false),         // 8 digits
            ("five five five one two three fourteen", false),
        ] {
            assert_eq!(phone_spelled_out(words) == Verdict::Valid, valid, "{words}");
        }
    }

    #[test]
    fn itin_and_nino_tables() {
        for (number, valid) in [
            ("912-70-1234", true),
            ("900-50-0000", true),
            ("999-99-9999", true),
            ("912-66-1234", false), // 66–69 unassigned
            ("912-89-1234", false),
            ("912-93-1234", false),
            ("812-70-1234", false), // not 9xx
            ("912-70-123", false),
        ] {
            assert_eq!(us_itin(&ds(number)) == Verdict::Valid, valid, "{number}");
        }
        for (nino, valid) in [
            ("AB 12 34 56 C", true),
            ("jg103759a", true),
            ("AB123456D", true),
            ("AB123456E", false), // suffix A–D only
            ("QQ123456C", false), // Q never first
            ("AO123456C", false), // O never second
            ("GB123456A", false),
            ("ZZ123456A", false),
            ("AB12345C", false),
        ] {
            assert_eq!(uk_nino(nino) == Verdict::Valid, valid, "{nino}");
        }
    }

    #[test]
    fn postal_code_tables() {
        for (code, valid) in [
            ("NW1 6XE", true),
            ("SW1A 1AA", true),
            ("M1 1AE", true),
            ("EC1A 1BB", true),
            ("sw1a 1aa", true),
            ("QX1 1AA", false),
            ("ZZ1 1AA", false),
        ] {
            assert_eq!(uk_postcode(code) == Verdict::Valid, valid, "{code}");
        }
        for (zip, valid) in [
            ("20500", true),
            ("00501", true),
            ("94105-1804", true),
            ("00000", false),
            ("00499", false),
            ("1234", false),
        ] {
            assert_eq!(us_zip(&ds(zip)) == Verdict::Valid, valid, "{zip}");
        }
    }

    #[test]
    fn issuer_table() {
        for (number, issuer) in [
            ("4111111111111111", Some("visa")),
            ("5500005555555559", Some("mastercard")),
            ("2221000000000009", Some("mastercard")),
            ("378282246310005", Some("amex")),
            ("37828224631000", None),
            ("6011111111111117", Some("discover")),
            ("3530111333300000", Some("jcb")),
            ("0000000000000000", None),
        ] {
            assert_eq!(card_issuer(&ds(number)), issuer, "{number}");
        }
    }

    #[test]
    fn iban_table() {
        for (iban, valid) in [
            ("GB82WEST12345698765432", true),
            ("DE89370400440532013000", true),
            ("FR1420041010050500013M02606", true),
            ("NL91ABNA0417164300", true),
            ("GB82WEST12345698765433", false),
            ("DE89370400440532013001", false),
        ] {
            assert_eq!(iban_mod97_valid(iban), valid, "{iban}");
        }
    }

    #[test]
    fn nanp_table() {
        for (n, valid) in [
            ("4155552671", true),
            ("14155552671", true),
            ("1234567890", false),
            ("4115552671", false),
            ("4150552671", false),
            ("4159112671", false),
        ] {
            assert_eq!(nanp(&ds(n)), valid, "{n}");
        }
    }

    #[test]
    fn ssn_table() {
        for (n, valid) in [
            ("536-90-4399", true),
            ("000-12-3456", false),
            ("666-12-3456", false),
            ("912-12-3456", false),
            ("536-00-4399", false),
            ("536-90-0000", false),
            ("078-05-1120", false),
            ("111-11-1111", false),
        ] {
            assert_eq!(us_ssn(&ds(n)) == Verdict::Valid, valid, "{n}");
        }
    }

    #[test]
    fn top_level_domains_come_from_the_root_zone_list() {
        let listed = top_level_domains();
        assert!(listed.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        for (domain, known) in [
            ("example.com", true),
            ("sub.example.travel", true),
            ("EXAMPLE.CO.UK", true),
            ("example.museum", true),
            ("2x.png", false),
            ("notes.txt", false),
            ("example.zz", false),
            ("localhost", false),
        ] {
            assert_eq!(tld_known(domain), known, "{domain}");
        }
    }

    #[test]
    fn aba_and_nhs_tables() {
        for (n, valid) in [
            ("011000015", true),
            ("021000021", true),
            ("011000016", false),
            ("991000015", false),
        ] {
            assert_eq!(aba_routing(&ds(n)) == Verdict::Valid, valid, "{n}");
        }
        for (n, valid) in [
            ("943 476 5919", true),
            ("401 023 2137", true),
            ("943 476 5918", false),
            ("000 000 0000", false),
        ] {
            assert_eq!(uk_nhs(&ds(n)) == Verdict::Valid, valid, "{n}");
        }
    }

    #[test]
    fn crypto_table() {
        for (addr, valid) in [
            ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", true),
            ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", true),
            ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", false),
            ("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", true),
            ("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdr", false),
            ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", true),
            ("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", true),
            ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", false),
        ] {
            assert_eq!(crypto_wallet(addr) == Verdict::Valid, valid, "{addr}");
        }
    }

    #[test]
    fn dates_and_addresses() {
        assert_eq!(date_of_birth("14/03/1985"), Verdict::Valid);
        assert_eq!(date_of_birth("03/14/1985"), Verdict::Valid);
        assert!(matches!(date_of_birth("31/02/1985"), Verdict::Invalid(_)));
        assert_eq!(date_of_birth("March 14, 1985"), Verdict::Valid);
        assert_eq!(date_of_birth("1985-03-14"), Verdict::Valid);
        assert!(matches!(ipv6("10:30:00"), Verdict::Invalid(_)));
        assert_eq!(ipv6("2001:db8::8a2e:370:7334"), Verdict::Valid);
        assert_eq!(
            deobfuscate_email("john dot smith at gmail dot com"),
            "john.smith@gmail.com"
        );
        assert_eq!(email_obfuscated("jane(at)example(dot)org"), Verdict::Valid);
    }

    #[test]
    fn national_id_checksums() {
        for (number, validator, valid) in [
            ("130 692 544", ValidatorKind::CaSin, true),
            ("130 692 545", ValidatorKind::CaSin, false),
            ("046 454 286", ValidatorKind::CaSin, false), // Luhn-valid, but 0 is never issued
            ("123 456 782", ValidatorKind::AuTfn, true),
            ("123 456 789", ValidatorKind::AuTfn, false),
            ("2123 45670 1", ValidatorKind::AuMedicare, true),
            ("2123 45671 1", ValidatorKind::AuMedicare, false),
            ("12345678Z", ValidatorKind::EsNif, true),
            ("12345678A", ValidatorKind::EsNif, false),
            ("X1234567L", ValidatorKind::EsNif, true),
            ("Y7654321G", ValidatorKind::EsNif, true),
            ("X1234567T", ValidatorKind::EsNif, false),
            ("2345 6789 0124", ValidatorKind::InAadhaar, true),
            ("2345 6789 0125", ValidatorKind::InAadhaar, false),
            ("1HGCM82633A004352", ValidatorKind::Vin, true),
            ("1HGCM82633A004353", ValidatorKind::Vin, false),
            ("WVWZZZ1JZXW000001", ValidatorKind::Vin, true), // no check digit outside North America
            ("WVWZZZ1JZ0W000001", ValidatorKind::Vin, false), // 0: no model year
            ("RSSMRA85T10A562S", ValidatorKind::ItFiscalCode, true),
            ("RSSMRA85T10A562T", ValidatorKind::ItFiscalCode, false),
            ("131052-308T", ValidatorKind::FiPersonalIdentityCode, true),
            ("131052-308U", ValidatorKind::FiPersonalIdentityCode, false),
            ("44051401359", ValidatorKind::PlPesel, true),
            ("44051401358", ValidatorKind::PlPesel, false),
            ("111222333", ValidatorKind::NlBsn, true),
            ("111222334", ValidatorKind::NlBsn, false),
            ("811218-9876", ValidatorKind::SePersonnummer, true),
            ("811218-9875", ValidatorKind::SePersonnummer, false),
            ("2 55 08 14 168 025 38", ValidatorKind::FrNir, true),
            ("2 55 08 14 168 025 39", ValidatorKind::FrNir, false),
            ("1 85 05 2A 006 084 35", ValidatorKind::FrNir, true), // Corsica
            ("86095742719", ValidatorKind::DeTaxId, true),
            ("86095742718", ValidatorKind::DeTaxId, false),
            ("S1234567D", ValidatorKind::SgNricFin, true),
            ("S1234567A", ValidatorKind::SgNricFin, false),
            ("51 824 753 556", ValidatorKind::AuAbn, true),
            ("51 824 753 557", ValidatorKind::AuAbn, false),
            ("123.456.789-09", ValidatorKind::BrCpf, true),
            ("123.456.789-08", ValidatorKind::BrCpf, false),
        ] {
            let got = validator.validate(number, 0, number.len()) == Verdict::Valid;
            assert_eq!(got, valid, "{number} {}", validator.name());
        }
    }

    #[test]
    fn password_table() {
        for (value, valid) in [
            ("hunter2", true),
            ("Summer2024!", true),
            ("P@ss", true),
            ("myDogRex", true),
            ("hunter2.", true),
            ("incorrect", false),
            ("incorrect.", false),
            ("WRONG", false),
            ("'expired'", false),
            ("“Incorrect”", false),
            ("Changer',", false),
            ("********", false),
            ("####", false),
            ("1111", true),
            ("００００", true),
        ] {
            assert_eq!(password(value) == Verdict::Valid, valid, "{value}");
        }
    }

    #[test]
    fn common_words_are_lower_case_ascii() {
        // The name check compares them ASCII case-insensitively.
        for word in NOT_NAMES {
            assert!(
                word.bytes()
                    .all(|b| b.is_ascii() && !b.is_ascii_uppercase()),
                "{word}"
            );
        }
        assert_eq!(
            person_name("Sorry"),
            Verdict::Invalid("a common word, not a name")
        );
        assert_eq!(
            person_name("john AND"),
            Verdict::Invalid("a common word, not a name")
        );
        assert_eq!(person_name("Sorrel Andrews"), Verdict::Valid);
    }

    #[test]
    fn spelled_separators() {
        for (span, spelled) in [
            ("john dot smith", true),
            ("john.DOT.smith", true),
            ("jane(at)example", true),
            ("jane [AT] example", true),
            ("jane{at}example", true),
            ("jane at example", true),
            ("at example", false),
            ("jane at", false),
            ("jane(at]example", false),
            ("jane{at)example", false),
            ("jane@example.com", false),
            ("chat attempt", false),
            ("jane . doe", true),
            ("jane @ example", true),
            ("jane @example", false),
            ("jane.doe@example.com", false),
        ] {
            assert_eq!(spells_a_separator(span), spelled, "{span}");
        }
    }

    /// Every validator, for a team's recognizer may name any of them over any pattern.
    const ALL_VALIDATORS: &[ValidatorKind] = &[
        ValidatorKind::Email,
        ValidatorKind::EmailObfuscated,
        ValidatorKind::EmailProviderSpoken,
        ValidatorKind::PhoneInternational,
        ValidatorKind::PhoneNanp,
        ValidatorKind::PhoneEuropeNational,
        ValidatorKind::PhoneGermanyNational,
        ValidatorKind::PhoneIndiaNational,
        ValidatorKind::PhoneBrazilNational,
        ValidatorKind::PhoneSpelledOut,
        ValidatorKind::CreditCardSpelledOut,
        ValidatorKind::UsSsnSpelledOut,
        ValidatorKind::BankNumberSpelledOut,
        ValidatorKind::CreditCard,
        ValidatorKind::Iban,
        ValidatorKind::UsSsn,
        ValidatorKind::Ipv4,
        ValidatorKind::Ipv6,
        ValidatorKind::Url,
        ValidatorKind::MacAddress,
        ValidatorKind::CryptoWallet,
        ValidatorKind::HighEntropy,
        ValidatorKind::DateOfBirth,
        ValidatorKind::AbaRouting,
        ValidatorKind::UkNhs,
        ValidatorKind::UsItin,
        ValidatorKind::UkNino,
        ValidatorKind::UkPostcode,
        ValidatorKind::UsZip,
        ValidatorKind::PersonName,
        ValidatorKind::StreetAddress,
        ValidatorKind::Password,
        ValidatorKind::Username,
        ValidatorKind::CaSin,
        ValidatorKind::AuTfn,
        ValidatorKind::AuMedicare,
        ValidatorKind::EsNif,
        ValidatorKind::InAadhaar,
        ValidatorKind::Vin,
        ValidatorKind::AuPostcode,
        ValidatorKind::EuPostcode,
        ValidatorKind::ItFiscalCode,
        ValidatorKind::FiPersonalIdentityCode,
        ValidatorKind::PlPesel,
        ValidatorKind::NlBsn,
        ValidatorKind::SePersonnummer,
        ValidatorKind::FrNir,
        ValidatorKind::DeTaxId,
        ValidatorKind::SgNricFin,
        ValidatorKind::AuAbn,
        ValidatorKind::BrCpf,
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Every validator answers any span of any text, without panicking: the built-in
        /// patterns hand them their own shapes, but a team's pattern hands them anything.
        #[test]
        fn every_validator_answers_any_span(
            text in "[0-9A-Za-z .\\-+/@é０-９Ｋ]{0,24}",
            a in 0usize..25,
            b in 0usize..25,
        ) {
            let bounds: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
            let (start, end) = (bounds[a % bounds.len()], bounds[b % bounds.len()]);
            let (start, end) = (start.min(end), start.max(end));
            for v in ALL_VALIDATORS {
                let _ = v.validate(&text, start, end);
            }
        }

        /// The one-pass check says what searching for each spelled separator says.
        #[test]
        fn a_spelled_separator_is_found_in_one_pass(
            pieces in proptest::collection::vec(proptest::sample::select(&[
                "dot", "DoT", "do", "at", "AT", "a", "t", " ", "(", ")", "[", "]", "{", "}", "x", "@", ".",
            ][..]), 0..10),
        ) {
            let span = pieces.concat();
            let has = |needle: &str| {
                span.as_bytes()
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
            };
            let searched = has("dot") || has(" at ") || has("(at)") || has("[at]") || has("{at}")
                || has(" . ") || has(" @ ");
            proptest::prop_assert_eq!(spells_a_separator(&span), searched, "{:?}", span);
        }
    }
}
