//! Reading a session's JSON: an object of strings, as the signed cookie and the Redis
//! store keep it.
//!
//! Sessions are written compactly (`{"user_id":"alice"}`), by this crate and by uapi alike
//! (itsdangerous' `separators=(",", ":")`), and their strings rarely need an escape. That
//! case is read here by hand, in one pass; anything else (whitespace, escapes, a value that
//! is not a string, bad UTF-8, trailing bytes) goes to serde_json, which reads it or refuses
//! it with its whole grammar. Either way the result is what `serde_json::from_slice` gives.

use super::SessionData;

/// Parses `json` as a session: an object whose values are strings. A key given twice keeps
/// its last value, as serde_json does.
pub(crate) fn session_from_json(json: &[u8]) -> serde_json::Result<SessionData> {
    match compact_object_of_plain_strings(json) {
        Some(data) => Ok(data),
        None => serde_json::from_slice(json),
    }
}

/// `{}` or `{"key":"value",...}` with no whitespace and plain strings, or `None`.
///
/// The text is checked as UTF-8 once, as a whole, and each string is a slice of it: one
/// check per string cost about 100 instructions more per session of one key.
fn compact_object_of_plain_strings(json: &[u8]) -> Option<SessionData> {
    let mut rest = std::str::from_utf8(json).ok()?.strip_prefix('{')?;
    if rest == "}" {
        return Some(SessionData::new());
    }
    // Room for one pair, the usual session (`{"user_id":"..."}`): an allocation of the
    // exact size, where the vector's first growth went through its generic path.
    let mut data = SessionData::with_capacity(1);
    loop {
        let (key, after_key) = plain_string(rest)?;
        let (value, after_value) = plain_string(after_key.strip_prefix(':')?)?;
        data.insert(key.to_owned(), value.to_owned());
        match after_value.as_bytes() {
            b"}" => return Some(data),
            [b',', ..] => rest = &after_value[1..],
            _ => return None,
        }
    }
}

/// The JSON string that `text` starts with, if it has no escape and no control character
/// (which JSON does not allow unescaped), and what follows it.
///
/// One loop over the bytes: session strings are short, and `memchr` costs more to set up
/// than it saves on them. The string ends at an ASCII byte, a character boundary.
fn plain_string(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix('"')?;
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'"' | b'\\' | 0..0x20))?;
    let (string, after) = rest.split_at(end);
    Some((string, after.strip_prefix('"')?))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What serde_json reads into a `BTreeMap`, the reference (not `SessionData`'s own
    /// `Deserialize`, which `session_from_json` falls back to).
    fn serde(json: &[u8]) -> Option<SessionData> {
        serde_json::from_slice::<std::collections::BTreeMap<String, String>>(json)
            .ok()
            .map(SessionData::from)
    }

    #[test]
    fn reads_compact_sessions_by_hand() {
        for json in [
            &br#"{}"#[..],
            br#"{"user_id":"alice"}"#,
            b"{\"a\":\"1\",\"b\":\"\",\"c\":\"caf\xc3\xa9 \x7f\"}",
            br#"{"a":"1","a":"2"}"#,
        ] {
            let by_hand = compact_object_of_plain_strings(json);
            assert!(by_hand.is_some(), "{:?}", String::from_utf8_lossy(json));
            assert_eq!(by_hand, serde(json));
        }
        assert_eq!(
            session_from_json(br#"{"a":"1","a":"2"}"#).unwrap()["a"],
            "2",
            "the last value of a key wins"
        );
    }

    #[test]
    fn leaves_the_rest_to_serde_json() {
        for (json, valid) in [
            (&br#"{ "a":"1"}"#[..], true),
            (br#"{"a":"1"} "#, true),
            (br#"{"a":"\u00e9"}"#, true),
            (br#"{"a":"x\"y"}"#, true),
            (br#"{"a":1}"#, false),
            (br#"{"a":"1",}"#, false),
            (br#"{"a":"1"}x"#, false),
            (b"{\"a\":\"\x01\"}", false),
            (b"{\"a\":\"\xff\"}", false),
            (br#"{"a""#, false),
            (br#"["a"]"#, false),
            (b"", false),
        ] {
            assert_eq!(compact_object_of_plain_strings(json), None);
            assert_eq!(
                session_from_json(json).ok(),
                serde(json),
                "{:?}",
                String::from_utf8_lossy(json)
            );
            assert_eq!(serde(json).is_some(), valid);
        }
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json_on_any_bytes(
            json in prop::collection::vec(
                prop::sample::select(b"{}\":,\\ au\x01\xc3\xa9\xff0".to_vec()),
                0..24,
            ),
        ) {
            prop_assert_eq!(session_from_json(&json).ok(), serde(&json));
        }

        #[test]
        fn agrees_with_serde_json_on_objects(
            prefix in "\\{\"[a-z]{0,3}\":\"[a-z\u{e9}\\\\\"\u{1}]{0,4}\"",
            more in prop::collection::vec(",\"[a-z]{0,2}\":\"[a-z\u{e9}\\\\\"]{0,3}\"", 0..3),
            end in prop::sample::select(vec!["}", "} ", ",}", "", "}}"]),
        ) {
            let json = format!("{prefix}{}{end}", more.concat());
            prop_assert_eq!(session_from_json(json.as_bytes()).ok(), serde(json.as_bytes()));
        }

        #[test]
        fn reads_what_serde_json_writes(
            data in prop::collection::btree_map("[a-z\u{e9}\"\\\\\u{1}]{0,6}", "[ -~\u{e9}\u{1}]{0,12}", 0..5),
        ) {
            let json = serde_json::to_vec(&data).expect("a map of strings serializes");
            prop_assert_eq!(session_from_json(&json).expect("valid JSON"), data.into());
        }
    }
}
