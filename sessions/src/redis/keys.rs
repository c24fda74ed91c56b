//! Redis key layout, the cookie value codec and session id generation. Pure: no I/O.
//!
//! The layout is uapi's (`uapi.sessions.redis`), kept byte for byte for plain namespaces so that
//! a Python uapi service and this crate can share one Redis:
//!
//! | what | key | value |
//! |---|---|---|
//! | a session | `{prefix}{namespace}:s:{id}` | compact JSON object of strings, with the session's TTL |
//! | a namespace's index | `{prefix}{namespace}:s` | sorted set of ids, scored by expiry time (Unix seconds) |
//!
//! and the cookie value is `{namespace}:{id}`.
//!
//! Fixes over uapi:
//!
//! - anonymous sessions (namespace `""`) are not indexed (the store never asks for
//!   `index_key("")`), so they do not pile up in one shared sorted set;
//! - a namespace that cannot appear raw in a cookie value or would break the layout (`:`, `%`,
//!   anything outside RFC 6265's `cookie-octet`: space, `"`, `,`, `;`, `\`, control characters,
//!   non-ASCII) is percent-encoded byte-wise over its UTF-8, with uppercase hex, in both the
//!   cookie value and the Redis keys, so every namespace round-trips;
//! - a malformed cookie value parses to `None` instead of raising.
//!
//! A second, cluster-safe layout ([`KeyLayout::Cluster`]) puts a hash tag on the namespace so
//! that a namespace's keys share one Redis Cluster hash slot.

use std::borrow::Cow;

/// Longest cookie value [`parse_cookie_value`] accepts, in bytes (browsers drop cookies over
/// 4096 bytes anyway).
pub(crate) const MAX_COOKIE_VALUE_LEN: usize = 4096;

/// Length of a session id: 32 random bytes as lowercase hex (uapi: `secrets.token_hex()`).
pub(crate) const ID_LEN: usize = 64;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Whether a byte may appear raw in an encoded namespace: RFC 6265 `cookie-octet`
/// (`%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`) minus `:` (the layout's separator) and `%`
/// (the escape character).
fn is_plain(b: u8) -> bool {
    PLAIN[usize::from(b)]
}

/// [`is_plain`] of every byte: a namespace is checked a byte per load, without branches.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] =
            matches!(b, 0x21 | 0x23 | 0x24 | 0x26..=0x2B | 0x2D..=0x39 | 0x3C..=0x5B | 0x5D..=0x7E);
        b += 1;
    }
    table
};

/// Encodes a namespace for the cookie value and the Redis keys: plain bytes as they are,
/// every other byte of the UTF-8 as `%XX` (uppercase hex). Plain namespaces (`alice`,
/// `user-42`, `a.b_c`) are returned borrowed and unchanged, which keeps uapi's layout.
pub(crate) fn encode_namespace(namespace: &str) -> Cow<'_, str> {
    if namespace.bytes().all(is_plain) {
        return Cow::Borrowed(namespace);
    }
    let mut out = String::with_capacity(namespace.len() * 3);
    for b in namespace.bytes() {
        if is_plain(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0x0F)]));
        }
    }
    Cow::Owned(out)
}

/// Decodes an encoded namespace, accepting only the canonical form: the one
/// [`encode_namespace`] produces (raw bytes plain, escapes uppercase and only for bytes that
/// are not plain, and the result valid UTF-8). Anything else is `None`.
pub(crate) fn decode_namespace(encoded: &str) -> Option<String> {
    // Most namespaces (user names, ids) have nothing to decode: plain bytes are ASCII, so the
    // text is its own decoding.
    if encoded.bytes().fold(true, |plain, b| plain & is_plain(b)) {
        return Some(encoded.to_owned());
    }
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = upper_hex_value(*bytes.get(i + 1)?)?;
            let lo = upper_hex_value(*bytes.get(i + 2)?)?;
            let decoded = (hi << 4) | lo;
            if is_plain(decoded) {
                return None; // `%61` for `a`: not canonical
            }
            out.push(decoded);
            i += 3;
        } else if is_plain(b) {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

fn upper_hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether `id` looks like a session id: exactly 64 lowercase hex characters.
pub(crate) fn is_valid_id(id: &str) -> bool {
    // Every byte checked, without an early exit, so that the loop needs no branch per byte.
    id.len() == ID_LEN
        && id.bytes().fold(true, |valid, b| {
            valid & (b.wrapping_sub(b'0') < 10 || b.wrapping_sub(b'a') < 6)
        })
}

/// The cookie value of a session: `{namespace}:{id}`, the namespace encoded (uapi's format for
/// plain namespaces; `:{id}` for an anonymous session).
#[cfg(test)]
pub(crate) fn cookie_value(namespace: &str, id: &str) -> String {
    cookie_value_pieces(namespace, id).concat()
}

/// [`cookie_value`] in its pieces, for the `Set-Cookie` value to be written from them without
/// a string of its own.
pub(crate) fn cookie_value_pieces<'a>(namespace: &'a str, id: &'a str) -> [Cow<'a, str>; 3] {
    [
        encode_namespace(namespace),
        Cow::Borrowed(":"),
        Cow::Borrowed(id),
    ]
}

/// Parses a cookie value made by [`cookie_value`] into the decoded namespace and the id.
///
/// Splits at the last `:`. `None` (never a panic) when the value is longer than
/// [`MAX_COOKIE_VALUE_LEN`], has no `:`, the id is not 64 lowercase hex characters, or the
/// namespace is not canonically encoded: `""`, `abc`, `a:b:c`, non-ASCII and junk are all
/// `None`.
pub(crate) fn parse_cookie_value(value: &str) -> Option<(String, String)> {
    if value.len() > MAX_COOKIE_VALUE_LEN {
        return None;
    }
    // The id is the last ID_LEN bytes, so the last `:` can only be just before them: one
    // byte to look at, not a backward search.
    let colon = value.len().checked_sub(ID_LEN + 1)?;
    if value.as_bytes()[colon] != b':' {
        return None;
    }
    let (namespace, id) = (&value[..colon], &value[colon + 1..]);
    if !is_valid_id(id) {
        return None;
    }
    Some((decode_namespace(namespace)?, id.to_owned()))
}

/// A new session id: 32 bytes from the operating system's CSPRNG as 64 lowercase hex
/// characters (uapi: `secrets.token_hex()`).
///
/// The bytes are the operating system's, read [`RANDOM_BATCH`] ids' worth at a time into a
/// per-thread buffer: one `getrandom` call per 32 ids instead of one per id. Each byte is used
/// once. (A process that forks would share the rest of the buffer with its child; a Tokio
/// server does not fork.)
///
/// # Panics
///
/// If the operating system's random number generator fails, which it does not on supported
/// platforms; a session id must never come from a weaker source.
pub(crate) fn new_session_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = RANDOM.with_borrow_mut(RandomBuffer::take_id);
    // Written into a buffer and copied once, rather than pushed a char at a time.
    let mut hex = [0_u8; ID_LEN];
    for (pair, b) in hex.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
    std::str::from_utf8(&hex)
        .expect("hex digits are ASCII")
        .to_owned()
}

/// Ids' worth of random bytes read from the operating system at once.
const RANDOM_BATCH: usize = 32;

struct RandomBuffer {
    bytes: [u8; RANDOM_BATCH * ID_LEN / 2],
    /// Bytes of `bytes` already used.
    used: usize,
}

impl RandomBuffer {
    fn take_id(&mut self) -> [u8; ID_LEN / 2] {
        if self.used == self.bytes.len() {
            if let Err(err) = getrandom::fill(&mut self.bytes) {
                panic!("the operating system's random number generator failed: {err}");
            }
            self.used = 0;
        }
        let mut id = [0; ID_LEN / 2];
        id.copy_from_slice(&self.bytes[self.used..self.used + ID_LEN / 2]);
        // Used bytes are overwritten: the buffer never holds an id already handed out.
        self.bytes[self.used..self.used + ID_LEN / 2].fill(0);
        self.used += ID_LEN / 2;
        id
    }
}

thread_local! {
    static RANDOM: std::cell::RefCell<RandomBuffer> = const {
        std::cell::RefCell::new(RandomBuffer {
            bytes: [0; RANDOM_BATCH * ID_LEN / 2],
            used: RANDOM_BATCH * ID_LEN / 2,
        })
    };
}

/// How a store lays out its Redis keys. Chosen with
/// [`RedisStore::with_key_layout`](crate::redis::RedisStore::with_key_layout) on one Redis and
/// at construction for [`RedisClusterStore`](crate::redis::RedisClusterStore).
///
/// | | [`Uapi`](Self::Uapi) (default on one Redis) | [`Cluster`](Self::Cluster) |
/// |---|---|---|
/// | session | `{prefix}{ns}:s:{id}` | `{prefix}{{ns}}:s:{id}` |
/// | anonymous session | `{prefix}:s:{id}` | `{prefix}:s:{{id}}` |
/// | namespace index | `{prefix}{ns}:s` | `{prefix}{{ns}}:s` |
///
/// The cluster layout puts a Redis Cluster [hash tag] around the namespace, so that a
/// namespace's sessions and its index live in one hash slot (one node), which every atomic
/// script needs; anonymous sessions have the id as their tag, so they spread over all slots.
/// In that layout `{` and `}` are written `%7B` and `%7D` in the namespace, and `%`, `{` and
/// `}` as `%25`, `%7B` and `%7D` in the prefix, so that the layout's braces are the only hash
/// tag of a key. The cookie value (`{ns}:{id}`) is the same in both layouts.
///
/// [hash tag]: https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyLayout {
    /// uapi's layout, byte for byte: a Python uapi service can share the sessions. One Redis
    /// only: a namespace's keys land in unrelated hash slots.
    #[default]
    Uapi,
    /// The cluster-safe layout: a hash tag on the namespace (on the id for anonymous
    /// sessions). Works on one Redis too, which is a way to prepare a move to a cluster.
    Cluster,
}

/// The Redis keys of a store: a prefix and a [`KeyLayout`]. Methods take the *decoded*
/// namespace and encode it themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    prefix: String,
    /// The prefix as written in keys: `prefix` itself in the uapi layout, with `%`, `{` and `}`
    /// escaped in the cluster layout.
    written_prefix: String,
    layout: KeyLayout,
}

/// Escapes the hash-tag braces (and, when `escape_percent`, the escape character itself).
fn escape_braces(text: &str, escape_percent: bool) -> Cow<'_, str> {
    if !text
        .bytes()
        .any(|b| b == b'{' || b == b'}' || (escape_percent && b == b'%'))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            '%' if escape_percent => out.push_str("%25"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

impl Keys {
    /// uapi's layout under `prefix` (uapi's `redis_key_prefix`, default `""`).
    #[cfg(test)]
    pub(crate) fn new(prefix: impl Into<String>) -> Self {
        Self::with_layout(prefix, KeyLayout::Uapi)
    }

    /// `layout` under `prefix`.
    pub(crate) fn with_layout(prefix: impl Into<String>, layout: KeyLayout) -> Self {
        let prefix = prefix.into();
        let written_prefix = match layout {
            KeyLayout::Uapi => prefix.clone(),
            KeyLayout::Cluster => escape_braces(&prefix, true).into_owned(),
        };
        Self {
            prefix,
            written_prefix,
            layout,
        }
    }

    /// The key prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The layout.
    pub(crate) fn layout(&self) -> KeyLayout {
        self.layout
    }

    /// Whether the sessions of these two namespaces always share a hash slot, so that one
    /// script may touch both: always in the uapi layout (used on one Redis only), and in the
    /// cluster layout when both are the same non-empty namespace (anonymous sessions are tagged
    /// by id).
    pub(crate) fn same_slot(&self, a: &str, b: &str) -> bool {
        match self.layout {
            KeyLayout::Uapi => true,
            KeyLayout::Cluster => !a.is_empty() && a == b,
        }
    }

    /// The key of a session: `{prefix}{ns}:s:{id}` (uapi), `{prefix}{{ns}}:s:{id}` or, when
    /// anonymous, `{prefix}:s:{{id}}` (cluster).
    pub(crate) fn session_key(&self, namespace: &str, id: &str) -> String {
        if self.layout == KeyLayout::Cluster && namespace.is_empty() {
            let mut key = String::with_capacity(self.written_prefix.len() + id.len() + 5);
            key.push_str(&self.written_prefix);
            key.push_str(":s:{");
            key.push_str(id);
            key.push('}');
            return key;
        }
        let mut key = self.index_key_with_room(namespace, 1 + id.len());
        key.push(':');
        key.push_str(id);
        key
    }

    /// What every session key of a non-empty namespace starts with, the id following:
    /// `{prefix}{ns}:s:` (uapi) or `{prefix}{{ns}}:s:` (cluster). Used by the
    /// `remove_namespace` scripts to build keys from the index's members.
    pub(crate) fn session_key_prefix(&self, namespace: &str) -> String {
        let mut key = self.index_key_with_room(namespace, 1);
        key.push(':');
        key
    }

    /// The key of a namespace's index (a sorted set of ids scored by expiry): `{prefix}{ns}:s`
    /// (uapi) or `{prefix}{{ns}}:s` (cluster).
    pub(crate) fn index_key(&self, namespace: &str) -> String {
        self.index_key_with_room(namespace, 0)
    }

    /// The index key of `namespace` (not empty) as the start of `session_key`, the key
    /// [`session_key`](Self::session_key) gave for `namespace` and `id`, which is the index key,
    /// `:` and the id in both layouts: a login's batch writes both without a second string.
    /// A key of another shape gets the index key built anew.
    pub(crate) fn index_key_in<'k>(
        &self,
        session_key: &'k str,
        namespace: &str,
        id: &str,
    ) -> Cow<'k, str> {
        let index = session_key
            .strip_suffix(id)
            .and_then(|rest| rest.strip_suffix(':'));
        match index {
            Some(index) if !namespace.is_empty() => {
                debug_assert_eq!(index, self.index_key(namespace));
                Cow::Borrowed(index)
            }
            _ => Cow::Owned(self.index_key(namespace)),
        }
    }

    /// [`index_key`](Self::index_key) in a string with room for `extra` more bytes.
    fn index_key_with_room(&self, namespace: &str, extra: usize) -> String {
        let namespace = encode_namespace(namespace);
        let mut key =
            String::with_capacity(self.written_prefix.len() + namespace.len() + 4 + extra);
        key.push_str(&self.written_prefix);
        match self.layout {
            KeyLayout::Uapi => key.push_str(&namespace),
            KeyLayout::Cluster => {
                key.push('{');
                key.push_str(&escape_braces(&namespace, false));
                key.push('}');
            }
        }
        key.push_str(":s");
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn uapi_layout_for_plain_namespaces() {
        let keys = Keys::new("app:");
        assert_eq!(keys.session_key("alice", ID), format!("app:alice:s:{ID}"));
        assert_eq!(keys.index_key("alice"), "app:alice:s");
        assert_eq!(keys.session_key_prefix("user-42"), "app:user-42:s:");
        assert_eq!(Keys::new("").session_key("", ID), format!(":s:{ID}"));
        assert_eq!(cookie_value("a.b_c", ID), format!("a.b_c:{ID}"));
        assert_eq!(cookie_value("", ID), format!(":{ID}"));
    }

    #[test]
    fn awkward_namespaces_are_percent_encoded() {
        assert_eq!(encode_namespace("a:b"), "a%3Ab");
        assert_eq!(encode_namespace("100%"), "100%25");
        assert_eq!(encode_namespace("a b;c,d\"e\\f"), "a%20b%3Bc%2Cd%22e%5Cf");
        assert_eq!(encode_namespace("é\n"), "%C3%A9%0A");
        assert_eq!(Keys::new("p").index_key("a:b"), "pa%3Ab:s");
        assert_eq!(cookie_value("a:b", ID), format!("a%3Ab:{ID}"));
        assert_eq!(
            parse_cookie_value(&format!("a%3Ab:{ID}")),
            Some(("a:b".into(), ID.into()))
        );
    }

    #[test]
    fn plain_bytes_are_cookie_octets_but_the_separator_and_the_escape() {
        for b in 0..=u8::MAX {
            // RFC 6265: cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
            let cookie_octet =
                matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E);
            assert_eq!(
                is_plain(b),
                cookie_octet && b != b':' && b != b'%',
                "{b:#04x}"
            );
        }
    }

    #[test]
    fn ids_are_exactly_64_lowercase_hex_digits() {
        for b in 0..=u8::MAX {
            let mut id = ID.as_bytes().to_vec();
            id[17] = b;
            let Ok(id) = String::from_utf8(id) else {
                continue;
            };
            assert_eq!(
                is_valid_id(&id),
                b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
                "{b:#04x}"
            );
        }
        assert!(!is_valid_id(&ID[1..]));
        assert!(!is_valid_id(&format!("{ID}0")));
    }

    #[test]
    fn cookie_values_parse() {
        assert_eq!(
            parse_cookie_value(&format!("alice:{ID}")),
            Some(("alice".into(), ID.into()))
        );
        assert_eq!(
            parse_cookie_value(&format!(":{ID}")),
            Some((String::new(), ID.into()))
        );
    }

    #[test]
    fn malformed_cookie_values_are_none() {
        let upper = ID.to_uppercase();
        let junk = "x".repeat(8192);
        let long_ns = format!("{}:{ID}", "a".repeat(MAX_COOKIE_VALUE_LEN));
        for bad in [
            "",
            "abc",
            "a:b:c",
            ":",
            ID,
            &format!("alice:{upper}"),
            &format!("alice:{ID}0"),
            &format!("alice:{}", &ID[1..]),
            &format!("é:{ID}"),
            &format!("a b:{ID}"),
            &format!("a%3ab:{ID}"), // lowercase escape
            &format!("%61:{ID}"),   // escaped plain byte
            &format!("a%3:{ID}"),   // truncated escape
            &format!("%FF:{ID}"),   // not UTF-8
            &format!("{ID}:"),
            &junk,
            &long_ns,
        ] {
            assert_eq!(parse_cookie_value(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn new_ids_are_64_lowercase_hex_and_differ() {
        let a = new_session_id();
        let b = new_session_id();
        assert!(is_valid_id(&a), "{a}");
        assert!(is_valid_id(&b), "{b}");
        assert_ne!(a, b);
    }

    #[test]
    fn ids_across_buffer_refills_are_all_distinct() {
        // Several refills of the per-thread buffer: no id repeats, none is all zeros (a used
        // byte range handed out again would be).
        let ids: std::collections::HashSet<String> = (0..RANDOM_BATCH * 5 + 3)
            .map(|_| new_session_id())
            .collect();
        assert_eq!(ids.len(), RANDOM_BATCH * 5 + 3);
        assert!(ids
            .iter()
            .all(|id| is_valid_id(id) && id != &"0".repeat(64)));
    }

    #[test]
    fn cluster_layout_tags_the_namespace_or_the_id() {
        let keys = Keys::with_layout("app:", KeyLayout::Cluster);
        assert_eq!(
            keys.session_key("alice", ID),
            format!("app:{{alice}}:s:{ID}")
        );
        assert_eq!(keys.index_key("alice"), "app:{alice}:s");
        assert_eq!(keys.session_key_prefix("alice"), "app:{alice}:s:");
        assert_eq!(keys.session_key("", ID), format!("app::s:{{{ID}}}"));
        // Braces never make a second tag; `%` in the namespace is already encoded.
        assert_eq!(keys.index_key("{x}"), "app:{%7Bx%7D}:s");
        assert_eq!(keys.index_key("a:b%"), "app:{a%3Ab%25}:s");
        let odd = Keys::with_layout("p{}%", KeyLayout::Cluster);
        assert_eq!(odd.index_key("a"), "p%7B%7D%25{a}:s");
        assert_eq!(odd.session_key("", ID), format!("p%7B%7D%25:s:{{{ID}}}"));
        assert_eq!(odd.prefix(), "p{}%");
        // The cookie value does not depend on the layout.
        assert_eq!(cookie_value("{x}", ID), format!("{{x}}:{ID}"));
        assert!(keys.same_slot("alice", "alice"));
        assert!(!keys.same_slot("alice", "bob"));
        assert!(!keys.same_slot("", ""));
        assert!(Keys::new("").same_slot("", "bob"));
    }

    /// The hash tag of a key, as Redis Cluster computes it: the bytes between the first `{`
    /// and the first `}` after it, if not empty; else the whole key.
    fn hash_tag(key: &str) -> &str {
        if let Some(open) = key.find('{') {
            if let Some(len) = key[open + 1..].find('}') {
                if len > 0 {
                    return &key[open + 1..open + 1 + len];
                }
            }
        }
        key
    }

    proptest! {
        #[test]
        fn the_index_key_starts_the_session_key(
            prefix in any::<String>(),
            namespace in any::<String>(),
            id in "[0-9a-f]{64}",
            cluster in any::<bool>(),
        ) {
            prop_assume!(!namespace.is_empty());
            let layout = if cluster { KeyLayout::Cluster } else { KeyLayout::Uapi };
            let keys = Keys::with_layout(prefix, layout);
            let session = keys.session_key(&namespace, &id);
            let index = keys.index_key_in(&session, &namespace, &id);
            prop_assert!(matches!(index, Cow::Borrowed(_)));
            prop_assert_eq!(&*index, keys.index_key(&namespace));
            // Not a session key of that id: built anew, the same.
            prop_assert_eq!(&*keys.index_key_in("x", &namespace, &id), keys.index_key(&namespace));
        }

        #[test]
        fn cluster_keys_of_a_namespace_share_one_tag(
            prefix in any::<String>(),
            namespace in any::<String>(),
            other in any::<String>(),
            id in "[0-9a-f]{64}",
        ) {
            prop_assume!(!namespace.is_empty());
            let keys = Keys::with_layout(prefix, KeyLayout::Cluster);
            let index = keys.index_key(&namespace);
            let tag = hash_tag(&index);
            let session = keys.session_key(&namespace, &id);
            prop_assert_eq!(hash_tag(&session), tag);
            let encoded = encode_namespace(&namespace);
            prop_assert_eq!(tag, &*escape_braces(&encoded, false));
            // The tag is the namespace's own: distinct namespaces, distinct tags.
            if other != namespace && !other.is_empty() {
                let other_index = keys.index_key(&other);
                prop_assert_ne!(hash_tag(&other_index), tag);
            }
            // Anonymous sessions are tagged by their id.
            let anonymous = keys.session_key("", &id);
            prop_assert_eq!(hash_tag(&anonymous), id.as_str());
        }

        #[test]
        fn cookie_value_round_trips(namespace in any::<String>(), id in "[0-9a-f]{64}") {
            let value = cookie_value(&namespace, &id);
            prop_assume!(value.len() <= MAX_COOKIE_VALUE_LEN);
            prop_assert_eq!(parse_cookie_value(&value), Some((namespace.clone(), id.clone())));
            // The encoded form is cookie-safe and holds no separator of the layout.
            let encoded = encode_namespace(&namespace);
            prop_assert!(encoded.bytes().all(|b| is_plain(b) || b == b'%'));
            prop_assert_eq!(decode_namespace(&encoded), Some(namespace));
        }

        #[test]
        fn parse_splits_at_the_last_colon(
            head in "[a:é%3A]{0,6}",
            sep in prop::sample::select(vec![":", "", "é", "::", "a"]),
            id in "[0-9a-f]{63,65}|[0-9a-f]{30}:[0-9a-f]{33}",
        ) {
            let value = format!("{head}{sep}{id}");
            let reference = value.rsplit_once(':').and_then(|(namespace, id)| {
                is_valid_id(id).then(|| decode_namespace(namespace).map(|ns| (ns, id.to_owned())))?
            });
            prop_assert_eq!(parse_cookie_value(&value), reference);
        }

        #[test]
        fn parse_never_panics(value in any::<String>()) {
            let _ = parse_cookie_value(&value);
        }

        #[test]
        fn parsed_values_are_canonical(ns in "[ -~]{0,12}", id in "[0-9a-f]{64}") {
            let value = format!("{ns}:{id}");
            if let Some((namespace, parsed_id)) = parse_cookie_value(&value) {
                prop_assert_eq!(cookie_value(&namespace, &parsed_id), value);
            }
        }

        #[test]
        fn plain_namespaces_keep_uapi_layout(
            prefix in "[ -~]{0,8}",
            namespace in "[A-Za-z0-9._\\-]{0,24}",
            id in "[0-9a-f]{64}",
        ) {
            let keys = Keys::new(prefix.clone());
            prop_assert_eq!(keys.session_key(&namespace, &id), format!("{prefix}{namespace}:s:{id}"));
            prop_assert_eq!(keys.index_key(&namespace), format!("{prefix}{namespace}:s"));
            prop_assert_eq!(cookie_value(&namespace, &id), format!("{namespace}:{id}"));
        }
    }
}
