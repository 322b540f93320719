//! Transport-independent request checks: content type, size, UTF-8, JSON into typed requests with
//! errors that name the field. Shells hand in bytes and headers; nothing here does I/O.

use serde::de::DeserializeOwned;

use crate::ApiError;

/// Accepts `application/json` with an optional UTF-8 charset parameter.
pub fn check_json_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let found = content_type.unwrap_or("").trim();
    let mut parts = found.split(';').map(str::trim);
    let mime = parts.next().unwrap_or("");
    let charset_ok = parts.all(|p| {
        p.split_once('=').is_none_or(|(k, v)| {
            !k.trim().eq_ignore_ascii_case("charset")
                || v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        })
    });
    if mime.eq_ignore_ascii_case("application/json") && charset_ok {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            found: if found.is_empty() {
                "no Content-Type".into()
            } else {
                found.chars().take(100).collect()
            },
        })
    }
}

/// Parses a JSON body into `T`: invalid UTF-8 and broken JSON are 400, a well-formed document
/// with a wrong, missing or unknown field is 422 naming that field (`texts[2]`, `metadata.priority`).
/// A lone UTF-16 surrogate escape in a string is read as U+FFFD (see
/// [`replace_lone_surrogate_escapes`]).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        });
    }
    match parse_utf8_json(body) {
        // Only a body serde_json refused pays for the look; one without a lone surrogate keeps
        // its error.
        Err(ApiError::MalformedJson { detail }) => {
            let mut repaired = body.to_vec();
            match replace_lone_surrogate_escapes(&mut repaired) {
                true => parse_utf8_json(&repaired),
                false => Err(ApiError::MalformedJson { detail }),
            }
        }
        parsed => parsed,
    }
}

/// JavaScript strings can hold a lone UTF-16 surrogate, as a message cut at a length limit with
/// `slice` does (`"👍".slice(0, 1)`), and `JSON.stringify` writes it as `"\ud83d"`. That is not a
/// Unicode scalar, so serde_json refuses the whole body and the message would be lost. This
/// rewrites each lone surrogate escape to `\ufffd`, what `TextEncoder` makes of one, in place:
/// the same length, so nothing else moves. Answers whether it changed anything.
fn replace_lone_surrogate_escapes(body: &mut [u8]) -> bool {
    let code_unit_at = |body: &[u8], i: usize| -> Option<u16> {
        let escape = body.get(i..i + 6)?;
        let hex = escape.strip_prefix(b"\\u")?;
        match hex.iter().all(u8::is_ascii_hexdigit) {
            true => u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok(),
            false => None,
        }
    };
    let mut changed = false;
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            i += 1;
            continue;
        }
        // Any other escape (`\\`, `\"`…) is two bytes: skipping both keeps `\\ud83d` literal.
        let Some(unit) = code_unit_at(body, i) else {
            i += 2;
            continue;
        };
        match unit {
            0xD800..=0xDBFF if matches!(code_unit_at(body, i + 6), Some(0xDC00..=0xDFFF)) => {
                i += 12
            }
            0xD800..=0xDFFF => {
                body[i + 2..i + 6].copy_from_slice(b"fffd");
                changed = true;
                i += 6;
            }
            _ => i += 6,
        }
    }
    changed
}

/// [`parse_json`] for a body known to be UTF-8.
fn parse_utf8_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = match result {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            return Err(match inner.classify() {
                serde_json::error::Category::Data => {
                    let message = inner.to_string();
                    let named = quoted_field_name(&message);
                    let field = match (path.as_str(), named) {
                        (".", named) => named.unwrap_or_else(|| "body".into()),
                        // A missing field is reported at its object: name the field itself.
                        (_, Some(name)) if message.starts_with("missing field") => {
                            format!("{path}.{name}")
                        }
                        _ => path,
                    };
                    ApiError::invalid(field, strip_position(&message))
                }
                _ => ApiError::MalformedJson {
                    detail: inner.to_string(),
                },
            });
        }
    };
    de.end().map_err(|e| ApiError::MalformedJson {
        detail: e.to_string(),
    })?;
    Ok(value)
}

/// serde reports an unknown or missing top-level field at path ".", and a missing field at its
/// object's path; pull the field's name out of the message (`unknown field `txt`, expected ...`).
fn quoted_field_name(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

/// serde_json appends " at line 1 column 42"; the field name is the useful part for clients.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        text: String,
        #[serde(default)]
        n: Option<u32>,
        #[serde(default)]
        texts: Vec<String>,
    }

    #[test]
    fn content_types() {
        assert!(check_json_content_type(Some("application/json")).is_ok());
        assert!(check_json_content_type(Some("Application/JSON; charset=UTF-8")).is_ok());
        assert!(check_json_content_type(Some("application/json; charset=latin1")).is_err());
        assert!(check_json_content_type(Some("text/plain")).is_err());
        assert!(check_json_content_type(None).is_err());
    }

    #[test]
    fn parse_errors_name_fields() {
        let err = |body: &[u8]| parse_json::<Req>(body).unwrap_err();
        assert_eq!(err(b"{\"text\": ").status(), 400);
        assert_eq!(err(b"\xff\xfe").kind(), "invalid_utf8");
        assert_eq!(err(br#"{"text": 5}"#).field(), Some("text"));
        assert_eq!(err(br#"{"text": "a", "n": "x"}"#).field(), Some("n"));
        assert_eq!(
            err(br#"{"text": "a", "texts": ["a", 3]}"#).field(),
            Some("texts[1]")
        );
        assert_eq!(err(br#"{"txt": "a"}"#).field(), Some("txt"));
        assert_eq!(err(br#"{}"#).field(), Some("text"));
        assert_eq!(
            parse_json::<Vec<Req>>(br#"[{"text": "a"}, {"n": 1}]"#)
                .unwrap_err()
                .field(),
            Some("[1].text")
        );
        assert_eq!(err(br#"{"text": "a"} trailing"#).status(), 400);
        assert_eq!(err(br#"[1]"#).status(), 422);
    }

    #[test]
    fn lone_surrogate_escapes_are_read_as_replacement_characters() {
        let text = |body: &[u8]| parse_json::<Req>(body).map(|r| r.text);
        let cases: &[(&[u8], &str)] = &[
            // A message cut inside an emoji, as JavaScript's `slice` cuts it.
            (br#"{"text": "love it \ud83d"}"#, "love it \u{FFFD}"),
            (br#"{"text": "\ude00 and"}"#, "\u{FFFD} and"),
            // A lone lead before a whole pair, and a whole pair alone: the pairs stay.
            (br#"{"text": "\ud83d\ud83d\ude00"}"#, "\u{FFFD}😀"),
            (br#"{"text": "\ud83d\ude00"}"#, "😀"),
            // An escaped backslash then "ud83d" is text, not an escape.
            (br#"{"text": "\\ud83d \ud83d"}"#, "\\ud83d \u{FFFD}"),
        ];
        for (body, want) in cases {
            assert_eq!(
                text(body).as_deref(),
                Ok(*want),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Other broken escapes stay errors.
        assert_eq!(text(br#"{"text": "\ud83"}"#).unwrap_err().status(), 400);
        assert_eq!(text(br#"{"text": "\x"}"#).unwrap_err().status(), 400);
    }
}
