//! [`SessionData`], a session's contents, and its iterators.

use std::{collections::BTreeMap, fmt, iter::FusedIterator, ops::Index};

use serde::{
    de::{MapAccess, Visitor},
    ser::SerializeMap,
    Deserialize, Deserializer, Serialize, Serializer,
};

/// A session's contents: string keys to string values (uapi's `dict[str, str]`), in key
/// order.
///
/// A map with the calls of a `BTreeMap<String, String>` (which it used to be): [`get`],
/// [`insert`], [`remove`], [`iter`] in key order, `session["key"]`, `collect`, `extend`, and
/// `From` an array of pairs or a `BTreeMap`. It serializes as a JSON object in key order:
/// `{"user_id":"alice"}`, what a signed cookie and the Redis store keep.
///
/// Kept as a sorted vector of pairs: a session holds a few keys, and a B-tree's first leaf
/// (some 540 bytes) and its drop cost more per request than the whole session did.
/// Lookups are binary searches; an insert or a remove moves the pairs after it.
///
/// # Examples
///
/// ```
/// use sessions::store::SessionData;
///
/// let mut data = SessionData::from([("user_id".to_owned(), "alice".to_owned())]);
/// assert_eq!(data.get("user_id").map(String::as_str), Some("alice"));
/// assert_eq!(data.insert("theme".into(), "dark".into()), None);
/// assert_eq!(data["theme"], "dark");
/// assert_eq!(serde_json::to_string(&data)?, r#"{"theme":"dark","user_id":"alice"}"#);
/// assert_eq!(data.remove("theme").as_deref(), Some("dark"));
/// assert_eq!(data.keys().collect::<Vec<_>>(), ["user_id"]);
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// [`get`]: Self::get
/// [`insert`]: Self::insert
/// [`remove`]: Self::remove
/// [`iter`]: Self::iter
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct SessionData {
    /// Sorted by key; no key twice.
    pairs: Vec<(String, String)>,
}

impl SessionData {
    /// An empty session. Allocates nothing.
    pub const fn new() -> Self {
        Self { pairs: Vec::new() }
    }

    /// An empty session with room for `capacity` keys.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            pairs: Vec::with_capacity(capacity),
        }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there is no key: an anonymous session, which saving deletes.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.pairs.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&String> {
        let at = self.position(key).ok()?;
        Some(&self.pairs[at].1)
    }

    /// The value of `key`, to change in place.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut String> {
        let at = self.position(key).ok()?;
        Some(&mut self.pairs[at].1)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Sets `key` to `value`; returns the value it had.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.position(&key) {
            Ok(at) => Some(std::mem::replace(&mut self.pairs[at].1, value)),
            Err(at) => {
                self.pairs.insert(at, (key, value));
                None
            }
        }
    }

    /// Removes `key`; returns the value it had.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let at = self.position(key).ok()?;
        Some(self.pairs.remove(at).1)
    }

    /// Removes every key (keeping the room allocated).
    pub fn clear(&mut self) {
        self.pairs.clear();
    }

    /// Keeps only the pairs for which `keep` returns `true`, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut String) -> bool) {
        self.pairs.retain_mut(|(key, value)| keep(key, value));
    }

    /// The pairs, in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.pairs.iter())
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.pairs.iter().map(|(key, _)| key)
    }

    /// The values, in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.pairs.iter().map(|(_, value)| value)
    }

    /// The values, in key order, to change in place.
    pub fn values_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = &mut String> + ExactSizeIterator {
        self.pairs.iter_mut().map(|(_, value)| value)
    }
}

impl fmt::Debug for SessionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// `data["key"]`: the value of `key`.
///
/// # Panics
///
/// When `key` has no value (use [`SessionData::get`] where it may not).
impl Index<&str> for SessionData {
    type Output = String;

    fn index(&self, key: &str) -> &String {
        match self.get(key) {
            Some(value) => value,
            None => panic!("no key {key:?} in the session"),
        }
    }
}

impl Extend<(String, String)> for SessionData {
    /// Inserts each pair in turn: of a key given twice, the last value stays.
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, pairs: I) {
        for (key, value) in pairs {
            self.insert(key, value);
        }
    }
}

impl FromIterator<(String, String)> for SessionData {
    /// Of a key given twice, the last value stays.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        let mut pairs: Vec<(String, String)> = pairs.into_iter().collect();
        // Stable: equal keys stay in the order given, and the last of each run is kept.
        pairs.sort_by(|(a, _), (b, _)| a.cmp(b));
        pairs.reverse();
        pairs.dedup_by(|(later, _), (earlier, _)| later == earlier);
        pairs.reverse();
        Self { pairs }
    }
}

impl<const N: usize> From<[(String, String); N]> for SessionData {
    /// Of a key given twice, the last value stays.
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl From<BTreeMap<String, String>> for SessionData {
    fn from(map: BTreeMap<String, String>) -> Self {
        // Already sorted, keys unique.
        Self {
            pairs: map.into_iter().collect(),
        }
    }
}

impl From<SessionData> for BTreeMap<String, String> {
    fn from(data: SessionData) -> Self {
        data.pairs.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a SessionData {
    type Item = (&'a String, &'a String);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for SessionData {
    type Item = (String, String);
    type IntoIter = IntoIter;

    /// The pairs, in key order.
    fn into_iter(self) -> IntoIter {
        IntoIter(self.pairs.into_iter())
    }
}

/// The pairs of a [`SessionData`], in key order: [`SessionData::iter`].
#[derive(Debug, Clone)]
pub struct Iter<'a>(std::slice::Iter<'a, (String, String)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a String);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(key, value)| (key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(key, value)| (key, value))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl FusedIterator for Iter<'_> {}

/// The pairs of a [`SessionData`], owned, in key order: its `into_iter`.
#[derive(Debug)]
pub struct IntoIter(std::vec::IntoIter<(String, String)>);

impl Iterator for IntoIter {
    type Item = (String, String);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for IntoIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back()
    }
}

impl ExactSizeIterator for IntoIter {}

impl FusedIterator for IntoIter {}

impl Serialize for SessionData {
    /// A map in key order: `{"a":"1","b":"2"}` in JSON.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value) in self {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SessionData {
    /// A map of strings to strings; of a key given twice, the last value stays (as for a
    /// `BTreeMap`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;

        impl<'de> Visitor<'de> for Pairs {
            type Value = SessionData;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of strings to strings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SessionData, A::Error> {
                let mut data = SessionData::new();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    data.insert(key, value);
                }
                Ok(data)
            }
        }

        deserializer.deserialize_map(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.to_owned(), value.to_owned())
    }

    #[test]
    fn keeps_keys_sorted_and_unique() {
        let mut data = SessionData::new();
        assert_eq!(data.insert("b".into(), "1".into()), None);
        assert_eq!(data.insert("a".into(), "2".into()), None);
        assert_eq!(data.insert("c".into(), "3".into()), None);
        assert_eq!(data.insert("a".into(), "4".into()).as_deref(), Some("2"));
        assert_eq!(
            data.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            [("a", "4"), ("b", "1"), ("c", "3")]
        );
        assert_eq!(data.len(), 3);
        assert_eq!(data.remove("b").as_deref(), Some("1"));
        assert_eq!(data.remove("b"), None);
        assert!(!data.contains_key("b"));
        assert_eq!(data.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(data.values().collect::<Vec<_>>(), ["4", "3"]);
        data.get_mut("c").unwrap().push('!');
        assert_eq!(data["c"], "3!");
        data.retain(|key, _| key != "a");
        assert_eq!(data.keys().collect::<Vec<_>>(), ["c"]);
        data.clear();
        assert!(data.is_empty());
    }

    #[test]
    fn from_pairs_keeps_the_last_value_of_a_key() {
        let data = SessionData::from([pair("b", "1"), pair("a", "2"), pair("b", "3")]);
        assert_eq!(
            data.into_iter().collect::<Vec<_>>(),
            [pair("a", "2"), pair("b", "3")]
        );
    }

    #[test]
    fn serializes_as_a_json_object_in_key_order() {
        let data = SessionData::from([pair("user_id", "alice"), pair("a", "\"")]);
        let json = serde_json::to_string(&data).unwrap();
        assert_eq!(json, r#"{"a":"\"","user_id":"alice"}"#);
        assert_eq!(serde_json::from_str::<SessionData>(&json).unwrap(), data);
        assert_eq!(
            serde_json::from_str::<SessionData>(r#"{"a":"1","a":"2"}"#).unwrap()["a"],
            "2"
        );
        assert!(serde_json::from_str::<SessionData>(r#"{"a":1}"#).is_err());
        assert!(serde_json::from_str::<SessionData>(r#"["a"]"#).is_err());
        assert_eq!(format!("{data:?}"), r#"{"a": "\"", "user_id": "alice"}"#);
    }

    #[test]
    #[should_panic(expected = "no key \"missing\" in the session")]
    fn indexing_a_missing_key_panics_with_its_name() {
        let _ = &SessionData::new()["missing"];
    }

    proptest! {
        /// Whatever is done to it, it holds what a `BTreeMap` would, in the same order.
        #[test]
        fn behaves_like_a_btree_map(
            ops in prop::collection::vec((0..3_u8, "[a-d]{0,2}", "[xy]{0,2}"), 0..40),
        ) {
            let mut data = SessionData::new();
            let mut model = BTreeMap::new();
            for (op, key, value) in ops {
                match op {
                    0 => prop_assert_eq!(
                        data.insert(key.clone(), value.clone()),
                        model.insert(key, value)
                    ),
                    1 => prop_assert_eq!(data.remove(&key), model.remove(&key)),
                    _ => prop_assert_eq!(data.get(&key), model.get(&key)),
                }
                prop_assert_eq!(data.iter().collect::<Vec<_>>(), model.iter().collect::<Vec<_>>());
                prop_assert_eq!(data.len(), model.len());
            }
            prop_assert_eq!(BTreeMap::from(data.clone()), model.clone());
            prop_assert_eq!(SessionData::from(model), data);
        }

        #[test]
        fn collects_like_a_btree_map(
            pairs in prop::collection::vec(("[a-c]{0,1}", "[xy]{0,2}"), 0..12),
        ) {
            let data: SessionData = pairs.iter().cloned().collect();
            let model: BTreeMap<String, String> = pairs.into_iter().collect();
            prop_assert_eq!(BTreeMap::from(data), model);
        }
    }
}
