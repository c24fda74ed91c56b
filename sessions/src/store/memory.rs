//! [`MemoryStore`]: sessions in this process's memory.

use std::{
    collections::BTreeMap,
    fmt,
    hash::BuildHasher,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use crate::store::{BoxFuture, SaveOp, SaveOutcome, SessionData, SessionStore, StoreError};

/// A [`SessionStore`] in this process's memory, with the same semantics as the Redis store:
/// a time to live per session, kept across updates; namespaces indexed for
/// [`remove_namespace`](SessionStore::remove_namespace) (anonymous ones not); atomic
/// replacement on login.
///
/// For tests, development and single-process deployments: sessions are lost on restart and
/// not shared between processes. Cloning is cheap and the clones share the same sessions.
///
/// # Expiry
///
/// Every session's expiry is also kept in a map ordered by expiry time. Each call first pops
/// the sessions whose time has come from the front of that map, so the cost of purging is
/// `O(expired × log n)`, paid by whichever call comes next, and nothing expired is ever
/// returned. A call that finds nothing expired pays one look at the front of the map. There is
/// no background task.
///
/// # Examples
///
/// ```
/// use sessions::store::{MemoryStore, SaveOp, SessionData, SessionStore};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sessions::store::StoreError> {
/// let store = MemoryStore::new();
/// let id = "0".repeat(64);
/// let data = SessionData::from([("user_id".to_owned(), "42".to_owned())]);
/// let op = SaveOp {
///     namespace: "",
///     id: &id,
///     data: &data,
///     existing: false,
///     replaces: None,
///     max_age: Duration::from_secs(60),
/// };
/// store.save(op).await?;
/// assert_eq!(store.load("", &id).await?, Some(data));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The remaining time to live of a session, `None` if it does not exist or has expired
    /// (Redis's `PTTL`).
    pub fn time_to_live(&self, namespace: &str, id: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.purge(now);
        inner
            .get(namespace, id)
            .map(|entry| entry.expires_at.saturating_duration_since(now))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held, and the maps stay consistent between
        // statements anyway: a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the purged state at the current time. The lock is never held across an
    /// `.await`: the returned future is already complete.
    fn with<T>(&self, f: impl FnOnce(&mut Inner, Instant) -> T) -> T {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.purge(now);
        f(&mut inner, now)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Session contents are secrets: show only the size.
        let mut s = f.debug_struct("MemoryStore");
        match self.inner.try_lock() {
            Ok(inner) => s.field("sessions", &inner.len()),
            Err(_) => s.field("sessions", &format_args!("<locked>")),
        };
        s.finish()
    }
}

impl SessionStore for MemoryStore {
    fn load<'a>(
        &'a self,
        namespace: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionData>, StoreError>> {
        let result = self.with(|inner, _| inner.get(namespace, id).map(|e| e.data.unpack()));
        Box::pin(std::future::ready(Ok(result)))
    }

    fn save<'a>(&'a self, op: SaveOp<'a>) -> BoxFuture<'a, Result<SaveOutcome, StoreError>> {
        let outcome = self.with(|inner, now| inner.save(&op, now));
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn remove<'a>(
        &'a self,
        namespace: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let existed = self.with(|inner, _| inner.remove(namespace, id));
        Box::pin(std::future::ready(Ok(existed)))
    }

    fn remove_namespace<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let count = self.with(|inner, _| inner.remove_namespace(namespace));
        Box::pin(std::future::ready(Ok(count)))
    }

    fn list_namespace<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        let ids = self.with(|inner, _| inner.list_namespace(namespace));
        Box::pin(std::future::ready(Ok(ids)))
    }
}

/// A session id as a map key. Ids this crate makes are 64 lowercase hex characters: those are
/// kept as their 32 bytes in four words, built for a lookup without allocating, hashed and
/// compared as integers. Any other id is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum IdKey {
    Hex([u64; 4]),
    Other(Box<str>),
}

impl IdKey {
    fn new(id: &str) -> Self {
        Self::hex(id).map_or_else(|| Self::Other(id.into()), Self::Hex)
    }

    fn hex(id: &str) -> Option<[u64; 4]> {
        let chars: &[u8; 64] = id.as_bytes().try_into().ok()?;
        // Eight characters at a time in one `u64` (SWAR): this runs on every load, and the
        // byte-at-a-time loop took about 300 instructions.
        let mut words = [0_u64; 4];
        let mut invalid = 0;
        for (word, sixteen) in words.iter_mut().zip(chars.chunks_exact(16)) {
            let (high, low) = sixteen.split_at(8);
            let (high, high_invalid) = hex8(high);
            let (low, low_invalid) = hex8(low);
            invalid |= high_invalid | low_invalid;
            *word = u64::from(high) << 32 | u64::from(low);
        }
        (invalid == 0).then_some(words)
    }

    fn to_id(&self) -> String {
        match self {
            Self::Hex(words) => words.iter().map(|word| format!("{word:016x}")).collect(),
            Self::Other(id) => id.to_string(),
        }
    }
}

/// Eight hex characters (`0-9a-f`) as the 32-bit number they write, and a nonzero second
/// value if any of them is not one.
fn hex8(chars: &[u8]) -> (u32, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let mut bytes = [0_u8; 8];
    bytes.copy_from_slice(chars);
    let x = u64::from_le_bytes(bytes);
    // Per byte, below 0x80: `(x | HIGH) - k` keeps its high bit where the byte is >= k (no
    // borrow crosses bytes, each being at least 0x80 before the subtraction).
    let at_least = |k: u64| ((x | HIGH) - k * ONES) & HIGH;
    let digit = at_least(0x30) & !at_least(0x3a);
    let letter = at_least(0x61) & !at_least(0x67);
    let invalid = (x & HIGH) | ((digit | letter) ^ HIGH);
    // '0'-'9' are 0x30-0x39 and 'a'-'f' 0x61-0x66: the low four bits, plus 9 for letters
    // (bit 6 set).
    let nibbles = (x & (ONES * 0x0f)) + ((x >> 6) & ONES) * 9;
    // Pairs of nibbles into bytes, then the four bytes together, first character highest.
    let pairs = ((nibbles & 0x00ff_00ff_00ff_00ff) << 4) | ((nibbles >> 8) & 0x00ff_00ff_00ff_00ff);
    let quads = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    let packed = (quads | (quads >> 16)) as u32;
    (packed.swap_bytes(), invalid)
}

/// A session's data in one allocation, as text: for each pair, the key's length in decimal,
/// `:`, the key, then the same for the value (`7:user_id2:42`). A [`SessionData`] map of one
/// pair allocates a whole B-tree leaf (about 540 bytes) and two strings; this is 20-odd bytes,
/// which keeps a store of a million sessions a third of the size and its inserts off `sbrk`.
/// Being a `str`, it unpacks into `String`s without checking UTF-8 again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PackedData(Box<str>);

impl PackedData {
    fn pack(data: &SessionData) -> Self {
        // Exactly: `into_boxed_str` would reallocate a string with room to spare.
        let part_size =
            |part: &String| part.len().checked_ilog10().unwrap_or(0) as usize + 2 + part.len();
        let size = data.iter().map(|(k, v)| part_size(k) + part_size(v)).sum();
        let mut text = String::with_capacity(size);
        let mut digits = itoa::Buffer::new();
        for (key, value) in data {
            for part in [key, value] {
                text.push_str(digits.format(part.len()));
                text.push(':');
                text.push_str(part);
            }
        }
        debug_assert_eq!(text.len(), size, "the size computed up front");
        Self(text.into_boxed_str())
    }

    fn unpack(&self) -> SessionData {
        let mut data = SessionData::new();
        let mut rest = &*self.0;
        let mut next = || {
            // The digits by hand: `split_once` and `parse` cost twice as much here.
            let bytes = rest.as_bytes();
            let mut len = 0_usize;
            let mut at = 0;
            while let Some(&digit @ b'0'..=b'9') = bytes.get(at) {
                len = len
                    .checked_mul(10)?
                    .checked_add(usize::from(digit - b'0'))?;
                at += 1;
            }
            if at == 0 || bytes.get(at) != Some(&b':') {
                return None;
            }
            let end = (at + 1).checked_add(len)?;
            let part = rest.get(at + 1..end)?;
            rest = &rest[end..];
            Some(part.to_owned())
        };
        while let (Some(key), Some(value)) = (next(), next()) {
            data.insert(key, value);
        }
        data
    }
}

/// The ids of one namespace's sessions, in chunks of [`IdList::CHUNK`]: a list of a million
/// ids grows a chunk at a time instead of copying itself whole when it doubles.
#[derive(Debug, Default)]
struct IdList {
    chunks: Vec<Vec<IdKey>>,
    len: usize,
}

impl IdList {
    const CHUNK: usize = 1024;

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[cfg(test)]
    fn get(&self, slot: usize) -> Option<&IdKey> {
        self.chunks.get(slot / Self::CHUNK)?.get(slot % Self::CHUNK)
    }

    /// Appends `id`; returns its slot.
    fn push(&mut self, id: IdKey) -> usize {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < Self::CHUNK => chunk.push(id),
            _ => {
                // Small namespaces (most) stay small; a chunk is allocated whole only once
                // the list has outgrown the first.
                let mut chunk = Vec::with_capacity(if self.chunks.is_empty() {
                    4
                } else {
                    Self::CHUNK
                });
                chunk.push(id);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
        self.len - 1
    }

    /// Removes the id at `slot`, moving the last id into its place; returns the moved id.
    fn swap_remove(&mut self, slot: usize) -> Option<&IdKey> {
        if slot >= self.len {
            return None;
        }
        let last = self.chunks.last_mut()?.pop()?;
        if self.chunks.last().is_some_and(Vec::is_empty) {
            self.chunks.pop();
        }
        self.len -= 1;
        if slot == self.len {
            return None;
        }
        let place = self
            .chunks
            .get_mut(slot / Self::CHUNK)?
            .get_mut(slot % Self::CHUNK)?;
        *place = last;
        Some(place)
    }

    fn iter(&self) -> impl Iterator<Item = &IdKey> {
        self.chunks.iter().flatten()
    }
}

/// A stored session.
#[derive(Debug)]
struct Entry {
    namespace: Arc<str>,
    id: IdKey,
    data: PackedData,
    expires_at: Instant,
    /// Tie-breaker of this entry's key in [`Inner::expiries`].
    seq: u64,
    /// Where `id` sits in its namespace's list in [`Inner::namespaces`] (0 for `""`).
    slot: usize,
}

impl Entry {
    /// Whether this is the session `id` of `namespace`.
    fn is(&self, namespace: &str, id: &IdKey) -> bool {
        self.id == *id && *self.namespace == *namespace
    }
}

/// A hash table's bucket: a session's hash and the session, boxed.
///
/// The tables hold 16 bytes a session rather than the session itself (over 100 bytes), and
/// the hash rather than rehashing: a table that grows moves 16-byte buckets into an allocation
/// a sixth the size, which is what a login that triggers it waits for. Inline sessions made
/// each of the last growths of a table of a million-session store a stall of 0.1 to 1 ms
/// (copying, and page faults on the new allocation), holding up every request queued behind
/// it.
#[derive(Debug)]
struct Bucket {
    hash: u64,
    entry: Box<Entry>,
}

impl Bucket {
    /// Whether this bucket holds the session `id` of `namespace`, whose hash is `hash`: the
    /// hash is compared first, so that other sessions are not looked at.
    fn holds(&self, hash: u64, namespace: &str, id: &IdKey) -> bool {
        self.hash == hash && self.entry.is(namespace, id)
    }
}

/// Sessions are spread over this many hash tables by the hash of their key, so that a table
/// that grows rehashes a 256th of the sessions at a time: a single table of a million
/// sessions would rehash them all at once, stalling every request behind the lock for tens of
/// milliseconds. Each table grows at a load of its own (see [`Inner::save`]), so that their
/// rehashes do not come all together either.
const SHARDS: usize = 256;

/// The state behind the lock. Methods take `now` so that tests can drive the clock.
///
/// Invariants: `expiries` holds exactly one key per session, `(expires_at, seq)` of that
/// session, mapped to the hash of its key; every session of a non-empty namespace is listed once in that namespace's list,
/// at its `slot`; no list is empty, and `""` has none.
#[derive(Debug)]
struct Inner {
    hasher: DefaultHashBuilder,
    /// (namespace, id) -> session, in [`SHARDS`] tables: a session's table is picked by bits
    /// of its hash that the table itself does not use for its buckets.
    shards: Box<[HashTable<Bucket>]>,
    /// Namespace -> the ids of its sessions: the index listed and removed as a whole.
    namespaces: HashMap<Arc<str>, IdList>,
    /// The namespace of anonymous sessions, shared by all of them.
    anonymous: Arc<str>,
    /// Every session by expiry time, for purging in `O(expired)`: `(expires_at, seq)` -> the
    /// hash of the session's key. The hash picks the table and `seq` the bucket, so the map
    /// holds 32 bytes a session instead of another copy of its namespace and id (80): 296
    /// bytes a stored session instead of 385 (measured), and as many fewer page faults for a
    /// store that grows.
    expiries: BTreeMap<(Instant, u64), u64>,
    next_seq: u64,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            hasher: DefaultHashBuilder::default(),
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
            namespaces: HashMap::new(),
            anonymous: Arc::from(""),
            expiries: BTreeMap::new(),
            next_seq: 0,
        }
    }
}

impl Inner {
    /// Drops every session whose expiry is at or before `now`.
    fn purge(&mut self, now: Instant) {
        while let Some(entry) = self.expiries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, seq), hash) = entry.remove_entry();
            self.take_bucket(hash, |b| b.hash == hash && b.entry.seq == seq);
        }
    }

    /// The table of a session whose key hashes to `hash`.
    fn shard_of(hash: u64) -> usize {
        (hash >> 40) as usize % SHARDS
    }

    /// The hash of a session's key and the table it belongs in.
    fn locate(&self, namespace: &str, id: &IdKey) -> (u64, usize) {
        let hash = self.hasher.hash_one((namespace, id));
        (hash, Self::shard_of(hash))
    }

    fn find(&self, namespace: &str, id: &IdKey) -> Option<&Entry> {
        let (hash, shard) = self.locate(namespace, id);
        let bucket = self.shards[shard].find(hash, |b| b.holds(hash, namespace, id))?;
        Some(&bucket.entry)
    }

    fn find_mut(&mut self, namespace: &str, id: &IdKey) -> Option<&mut Entry> {
        let (hash, shard) = self.locate(namespace, id);
        let bucket = self.shards[shard].find_mut(hash, |b| b.holds(hash, namespace, id))?;
        Some(&mut bucket.entry)
    }

    fn get(&self, namespace: &str, id: &str) -> Option<&Entry> {
        self.find(namespace, &IdKey::new(id))
    }

    /// Removes a session from the tables and its namespace's list (dropping an emptied list),
    /// not from `expiries`.
    fn take(&mut self, namespace: &str, id: &IdKey) -> Option<Entry> {
        let (hash, _) = self.locate(namespace, id);
        self.take_bucket(hash, |b| b.holds(hash, namespace, id))
    }

    /// [`Inner::take`] of the session whose key hashes to `hash` and whose bucket `is` picks.
    fn take_bucket(&mut self, hash: u64, is: impl FnMut(&Bucket) -> bool) -> Option<Entry> {
        let found = self.shards[Self::shard_of(hash)].find_entry(hash, is);
        let entry = *found.ok()?.remove().0.entry;
        if !entry.namespace.is_empty() {
            self.unlist(&entry.namespace, entry.slot);
        }
        Some(entry)
    }

    /// Removes the id at `slot` from a namespace's list; the last id moves into its place.
    fn unlist(&mut self, namespace: &str, slot: usize) {
        let Some(ids) = self.namespaces.get_mut(namespace) else {
            return;
        };
        match ids.swap_remove(slot).cloned() {
            Some(moved) => {
                if let Some(entry) = self.find_mut(namespace, &moved) {
                    entry.slot = slot;
                }
            }
            None if ids.is_empty() => {
                self.namespaces.remove(namespace);
            }
            None => {}
        }
    }

    /// The shared name of `namespace`, and a place in its list for `id`.
    fn list(&mut self, namespace: &str, id: &IdKey) -> (Arc<str>, usize) {
        if namespace.is_empty() {
            return (self.anonymous.clone(), 0);
        }
        if let Some((name, ids)) = self.namespaces.get_key_value_mut(namespace) {
            return (name.clone(), ids.push(id.clone()));
        }
        let name: Arc<str> = Arc::from(namespace);
        let mut ids = IdList::default();
        let slot = ids.push(id.clone());
        self.namespaces.insert(name.clone(), ids);
        (name, slot)
    }

    fn save(&mut self, op: &SaveOp<'_>, now: Instant) -> SaveOutcome {
        let id = IdKey::new(op.id);
        if op.existing {
            let Some(entry) = self.find_mut(op.namespace, &id) else {
                return SaveOutcome::Gone;
            };
            entry.data = PackedData::pack(op.data);
        } else {
            // A 0 max_age stores a session that is already expired, which the next call purges.
            let expires_at = now
                .checked_add(op.max_age)
                .unwrap_or_else(|| far_future(now));
            let seq = self.next_seq;
            self.next_seq += 1;
            let data = PackedData::pack(op.data);
            let (hash, shard) = self.locate(op.namespace, &id);
            let existing = self.shards[shard].find_mut(hash, |s| s.holds(hash, op.namespace, &id));
            if let Some(Bucket { entry, .. }) = existing {
                // A new session over an existing id: it takes the old one's place.
                let old = (entry.expires_at, entry.seq);
                entry.data = data;
                entry.expires_at = expires_at;
                entry.seq = seq;
                self.expiries.remove(&old);
            } else {
                let (namespace, slot) = self.list(op.namespace, &id);
                let entry = Entry {
                    namespace,
                    id,
                    data,
                    expires_at,
                    seq,
                    slot,
                };
                let table = &mut self.shards[shard];
                let rehash = |s: &Bucket| s.hash;
                // Tables fill evenly (the hash spreads sessions), so left alone they would all
                // reach their limit within a few thousand logins of each other and rehash in
                // one burst. Each table grows early instead, at its own load between 1/2 and
                // 7/8 of its capacity, spreading the rehashes over the whole fill.
                let grow_at = 128 + shard * 96 / SHARDS;
                if (table.len() + 1) * 256 > table.capacity() * grow_at {
                    // Room for twice the capacity: the next power of two of buckets.
                    let additional = (2 * table.capacity()).saturating_sub(table.len()).max(1);
                    table.reserve(additional, rehash);
                }
                let entry = Box::new(entry);
                table.insert_unique(hash, Bucket { hash, entry }, rehash);
            }
            self.expiries.insert((expires_at, seq), hash);
        }
        if let Some((namespace, id)) = op.replaces {
            if (namespace, id) != (op.namespace, op.id) {
                self.remove(namespace, id);
            }
        }
        SaveOutcome::Saved
    }

    fn remove(&mut self, namespace: &str, id: &str) -> bool {
        match self.take(namespace, &IdKey::new(id)) {
            Some(entry) => {
                self.expiries.remove(&(entry.expires_at, entry.seq));
                true
            }
            None => false,
        }
    }

    fn remove_namespace(&mut self, namespace: &str) -> u64 {
        if namespace.is_empty() {
            return 0;
        }
        let Some(ids) = self.namespaces.remove(namespace) else {
            return 0;
        };
        let mut removed = 0;
        for id in ids.iter() {
            let (hash, shard) = self.locate(namespace, id);
            let found = self.shards[shard].find_entry(hash, |s| s.holds(hash, namespace, id));
            if let Ok(found) = found {
                let entry = found.remove().0.entry;
                self.expiries.remove(&(entry.expires_at, entry.seq));
                removed += 1;
            }
        }
        removed
    }

    fn list_namespace(&self, namespace: &str) -> Vec<String> {
        if namespace.is_empty() {
            return Vec::new();
        }
        self.namespaces
            .get(namespace)
            .map(|ids| ids.iter().map(IdKey::to_id).collect())
            .unwrap_or_default()
    }

    /// How many sessions are stored (expired ones not yet purged included).
    fn len(&self) -> usize {
        self.expiries.len()
    }
}

/// An expiry for a `max_age` too large for `Instant` (about a century away: never, in practice).
fn far_future(now: Instant) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    now.checked_add(CENTURY).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn op<'a>(
        namespace: &'a str,
        id: &'a str,
        data: &'a SessionData,
        existing: bool,
    ) -> SaveOp<'a> {
        SaveOp {
            namespace,
            id,
            data,
            existing,
            replaces: None,
            max_age: Duration::from_secs(10),
        }
    }

    fn data(v: &str) -> SessionData {
        SessionData::from([("k".to_owned(), v.to_owned())])
    }

    /// Checks the invariants between the tables, the lists and the expiries.
    fn check(inner: &Inner) {
        let buckets: Vec<&Bucket> = inner.shards.iter().flat_map(HashTable::iter).collect();
        let sessions: Vec<&Entry> = buckets.iter().map(|s| &*s.entry).collect();
        assert_eq!(sessions.len(), inner.expiries.len());
        for bucket in &buckets {
            let entry = &*bucket.entry;
            let (hash, shard) = inner.locate(&entry.namespace, &entry.id);
            assert_eq!(bucket.hash, hash);
            assert!(inner.shards[shard].iter().any(|s| std::ptr::eq(s, *bucket)));
            assert_eq!(
                inner.expiries.get(&(entry.expires_at, entry.seq)),
                Some(&hash)
            );
            if !entry.namespace.is_empty() {
                assert_eq!(
                    inner.namespaces[&*entry.namespace].get(entry.slot),
                    Some(&entry.id)
                );
            }
        }
        let listed: usize = inner.namespaces.values().map(IdList::len).sum();
        let named = sessions.iter().filter(|e| !e.namespace.is_empty()).count();
        assert_eq!(listed, named);
        assert!(inner.namespaces.values().all(|ids| !ids.is_empty()));
        assert!(!inner.namespaces.contains_key(""));
    }

    #[test]
    fn hex_ids_are_exactly_64_lowercase_hex_digits() {
        let base = "0123456789abcdef".repeat(4);
        for b in 0..=u8::MAX {
            for at in [0, 15, 16, 37, 63] {
                let mut id = base.as_bytes().to_vec();
                id[at] = b;
                let Ok(id) = String::from_utf8(id) else {
                    continue;
                };
                let expected = (b.is_ascii_digit() || (b'a'..=b'f').contains(&b)).then(|| {
                    [0, 16, 32, 48].map(|i| u64::from_str_radix(&id[i..i + 16], 16).unwrap())
                });
                assert_eq!(IdKey::hex(&id), expected, "{b:#04x} at {at}");
            }
        }
        assert_eq!(IdKey::hex(&base[1..]), None);
        assert_eq!(IdKey::hex(&format!("{base}0")), None);
        // 64 bytes, not all ASCII.
        for at in [0, 7, 8, 62] {
            let id = format!("{}é{}", &base[..at], &base[at + 2..]);
            assert_eq!(IdKey::hex(&id), None, "é at {at}");
        }
    }

    proptest::proptest! {
        #[test]
        fn id_keys_round_trip(a in "[0-9a-f]{64}|[0-9a-zA-Z]{0,70}") {
            proptest::prop_assert_eq!(IdKey::new(&a).to_id(), a);
        }

        #[test]
        fn packed_data_round_trips(
            data in proptest::collection::btree_map("[0-9:é]{0,12}|.{0,12}", "[0-9:]{0,40}|.{0,40}", 0..6),
        ) {
            let data = SessionData::from(data);
            proptest::prop_assert_eq!(PackedData::pack(&data).unpack(), data);
        }

        /// The chunked list behaves as a vector with `swap_remove`, across chunk boundaries.
        #[test]
        fn id_list_is_a_vector(
            len in 0_usize..2500,
            removals in proptest::collection::vec(0_usize..2600, 0..40),
        ) {
            let key = |i: usize| IdKey::Hex([i as u64, 0, 0, 0]);
            let mut list = IdList::default();
            let mut model = Vec::new();
            for i in 0..len {
                proptest::prop_assert_eq!(list.push(key(i)), model.len());
                model.push(key(i));
            }
            for slot in removals {
                let moved = list.swap_remove(slot).cloned();
                let expected = (slot < model.len()).then(|| {
                    model.swap_remove(slot);
                    model.get(slot).cloned()
                });
                proptest::prop_assert_eq!(moved, expected.flatten());
                proptest::prop_assert_eq!(list.len(), model.len());
                proptest::prop_assert!(list.iter().eq(model.iter()));
            }
            proptest::prop_assert!(list.chunks.iter().all(|c| !c.is_empty()));
        }

        /// Random saves, removals and purges keep every invariant, and the store agrees with
        /// a plain map of what should be there.
        #[test]
        fn random_operations_keep_the_invariants(
            ops in proptest::collection::vec((0_u8..5, 0_usize..3, 0_usize..6), 1..120),
        ) {
            let t0 = Instant::now();
            let namespaces = ["", "alice", "bob"];
            let ids: Vec<String> = (0..6).map(|i| format!("{i:064x}")).collect();
            let d = data("x");
            let mut inner = Inner::default();
            let mut model = std::collections::BTreeMap::new();
            for (step, &(kind, ns, id)) in ops.iter().enumerate() {
                let now = t0 + Duration::from_secs(step as u64);
                inner.purge(now);
                model.retain(|_, at: &mut Instant| *at > now);
                let (ns, id) = (namespaces[ns], ids[id].as_str());
                match kind {
                    0 | 1 => {
                        let mut save = op(ns, id, &d, false);
                        save.max_age = Duration::from_secs(u64::from(kind) * 7 + 3);
                        inner.save(&save, now);
                        model.insert((ns, id), now + save.max_age);
                    }
                    2 => {
                        proptest::prop_assert_eq!(inner.remove(ns, id), model.remove(&(ns, id)).is_some());
                    }
                    3 => {
                        let count = model.keys().filter(|(n, _)| *n == ns && !ns.is_empty()).count();
                        proptest::prop_assert_eq!(inner.remove_namespace(ns), count as u64);
                        if !ns.is_empty() {
                            model.retain(|(n, _), _| *n != ns);
                        }
                    }
                    _ => {
                        let mut listed = inner.list_namespace(ns);
                        listed.sort();
                        let expected: Vec<String> = model
                            .keys()
                            .filter(|(n, _)| *n == ns && !ns.is_empty())
                            .map(|(_, i)| (*i).to_owned())
                            .collect();
                        proptest::prop_assert_eq!(listed, expected);
                    }
                }
                check(&inner);
                for &(n, i) in model.keys() {
                    proptest::prop_assert!(inner.get(n, i).is_some());
                }
                proptest::prop_assert_eq!(inner.len(), model.len());
            }
        }
    }

    #[test]
    fn expiry_is_purged_at_max_age_and_kept_across_updates() {
        let t0 = Instant::now();
        let mut inner = Inner::default();
        let (d1, d2) = (data("1"), data("2"));
        assert_eq!(
            inner.save(&op("alice", A, &d1, false), t0),
            SaveOutcome::Saved
        );
        let t5 = t0 + Duration::from_secs(5);
        inner.purge(t5);
        assert_eq!(
            inner.save(&op("alice", A, &d2, true), t5),
            SaveOutcome::Saved
        );
        assert_eq!(
            inner.get("alice", A).map(|e| e.expires_at),
            Some(t0 + Duration::from_secs(10))
        );
        check(&inner);
        inner.purge(t0 + Duration::from_secs(10));
        assert!(inner.get("alice", A).is_none());
        assert!(inner.namespaces.is_empty() && inner.expiries.is_empty());
        check(&inner);
        assert_eq!(
            inner.save(&op("alice", A, &d2, true), t0 + Duration::from_secs(11)),
            SaveOutcome::Gone
        );
        assert!(inner.namespaces.is_empty());
    }

    #[test]
    fn purge_takes_only_the_expired_front() {
        let t0 = Instant::now();
        let mut inner = Inner::default();
        let d = data("x");
        let mut short = op("", A, &d, false);
        short.max_age = Duration::from_secs(1);
        inner.save(&short, t0);
        inner.save(&op("bob", B, &d, false), t0);
        inner.purge(t0 + Duration::from_secs(2));
        assert!(inner.get("", A).is_none());
        assert!(inner.get("bob", B).is_some());
        check(&inner);
    }

    #[test]
    fn replaces_and_resave_keep_the_maps_consistent() {
        let t0 = Instant::now();
        let mut inner = Inner::default();
        let d = data("x");
        inner.save(&op("", A, &d, false), t0);
        let mut login = op("alice", B, &d, false);
        login.replaces = Some(("", A));
        assert_eq!(inner.save(&login, t0), SaveOutcome::Saved);
        assert!(inner.get("", A).is_none());
        // Saving a new session over an existing id replaces its expiry record.
        inner.save(&op("alice", B, &d, false), t0 + Duration::from_secs(1));
        check(&inner);
        assert_eq!(inner.remove_namespace("alice"), 1);
        check(&inner);
        assert!(inner.expiries.is_empty());
    }

    /// Tables grow at loads of their own, so that they do not all rehash at once: no table
    /// is ever fuller than its own growth load, and once the store holds tens of thousands of
    /// sessions the tables stand at different capacities (grown in a burst they would all
    /// stand at the same one).
    #[test]
    fn tables_grow_at_staggered_loads() {
        let t0 = Instant::now();
        let mut inner = Inner::default();
        let d = data("x");
        for i in 0..60_000_u64 {
            let id = format!(
                "{:064x}",
                u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C)
            );
            inner.save(&op("alice", &id, &d, false), t0);
        }
        for (shard, table) in inner.shards.iter().enumerate() {
            let grow_at = 128 + shard * 96 / SHARDS;
            assert!(
                table.len() * 256 <= table.capacity() * grow_at,
                "table {shard}: {} sessions, capacity {}",
                table.len(),
                table.capacity()
            );
        }
        let capacities: std::collections::BTreeSet<usize> =
            inner.shards.iter().map(HashTable::capacity).collect();
        assert!(capacities.len() > 1, "{capacities:?}");
        check(&inner);
    }

    #[test]
    fn huge_max_age_does_not_panic() {
        let t0 = Instant::now();
        let mut inner = Inner::default();
        let d = data("x");
        let mut forever = op("", A, &d, false);
        forever.max_age = Duration::MAX;
        inner.save(&forever, t0);
        assert!(inner.get("", A).is_some());
    }
}
