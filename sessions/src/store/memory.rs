//! [`MemoryStore`]: sessions in this process's memory.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

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
            Ok(inner) => s.field("sessions", &inner.expiries.len()),
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
        let result = self.with(|inner, _| inner.get(namespace, id).map(|e| e.data.clone()));
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
/// kept as their 32 bytes in four big-endian words, which compare as integers (in the order
/// of the strings) and are built for a lookup without allocating; the B-tree compares keys
/// about fifty times per insert into a million sessions, and string comparisons were 12 % of
/// a login's CPU time. Any other id is kept as it is, ordered after the hex ones.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum IdKey {
    Hex([u64; 4]),
    Other(Box<str>),
}

impl IdKey {
    fn new(id: &str) -> Self {
        Self::hex(id).map_or_else(|| Self::Other(id.into()), Self::Hex)
    }

    fn hex(id: &str) -> Option<[u64; 4]> {
        let bytes = id.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut words = [0_u64; 4];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(16)) {
            for &c in chunk {
                let digit = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    _ => return None,
                };
                *word = *word << 4 | u64::from(digit);
            }
        }
        Some(words)
    }

    fn to_id(&self) -> String {
        match self {
            Self::Hex(words) => words.iter().map(|word| format!("{word:016x}")).collect(),
            Self::Other(id) => id.to_string(),
        }
    }
}

/// A stored session.
#[derive(Debug)]
struct Entry {
    data: SessionData,
    expires_at: Instant,
    /// Tie-breaker of this entry's key in [`Inner::expiries`].
    seq: u64,
}

/// The state behind the lock. Methods take `now` so that tests can drive the clock.
///
/// Invariant: `expiries` holds exactly one key per entry of `namespaces`, `(expires_at, seq)`
/// of that entry, and no namespace map is empty.
#[derive(Debug, Default)]
struct Inner {
    /// Namespace -> id -> session. The map of a non-empty namespace is its index; the map of
    /// `""` holds the anonymous sessions and is never listed. B-trees, not hash maps: a hash
    /// map that grows to a million sessions rehashes them all at once, stalling every request
    /// behind the lock for tens of milliseconds; a B-tree grows a node at a time.
    namespaces: BTreeMap<String, BTreeMap<IdKey, Entry>>,
    /// Every session by expiry time, for purging in `O(expired)`.
    expiries: BTreeMap<(Instant, u64), (String, IdKey)>,
    next_seq: u64,
}

impl Inner {
    /// Drops every session whose expiry is at or before `now`.
    fn purge(&mut self, now: Instant) {
        while let Some(entry) = self.expiries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (namespace, id) = entry.remove();
            self.take(&namespace, &id);
        }
    }

    fn get(&self, namespace: &str, id: &str) -> Option<&Entry> {
        self.namespaces.get(namespace)?.get(&IdKey::new(id))
    }

    /// Removes an entry from `namespaces` only (dropping an emptied namespace map).
    fn take(&mut self, namespace: &str, id: &IdKey) -> Option<Entry> {
        let sessions = self.namespaces.get_mut(namespace)?;
        let entry = sessions.remove(id);
        if sessions.is_empty() {
            self.namespaces.remove(namespace);
        }
        entry
    }

    fn save(&mut self, op: &SaveOp<'_>, now: Instant) -> SaveOutcome {
        if op.existing {
            let Some(entry) = self
                .namespaces
                .get_mut(op.namespace)
                .and_then(|s| s.get_mut(&IdKey::new(op.id)))
            else {
                return SaveOutcome::Gone;
            };
            entry.data.clone_from(op.data);
        } else {
            // A 0 max_age stores a session that is already expired, which the next call purges.
            let expires_at = now
                .checked_add(op.max_age)
                .unwrap_or_else(|| far_future(now));
            let seq = self.next_seq;
            self.next_seq += 1;
            let entry = Entry {
                data: op.data.clone(),
                expires_at,
                seq,
            };
            let id = IdKey::new(op.id);
            let sessions = match self.namespaces.get_mut(op.namespace) {
                Some(sessions) => sessions,
                None => self.namespaces.entry(op.namespace.to_owned()).or_default(),
            };
            if let Some(previous) = sessions.insert(id.clone(), entry) {
                self.expiries.remove(&(previous.expires_at, previous.seq));
            }
            self.expiries
                .insert((expires_at, seq), (op.namespace.to_owned(), id));
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
        let Some(sessions) = self.namespaces.remove(namespace) else {
            return 0;
        };
        for entry in sessions.values() {
            self.expiries.remove(&(entry.expires_at, entry.seq));
        }
        sessions.len() as u64
    }

    fn list_namespace(&self, namespace: &str) -> Vec<String> {
        if namespace.is_empty() {
            return Vec::new();
        }
        self.namespaces
            .get(namespace)
            .map(|sessions| sessions.keys().map(IdKey::to_id).collect())
            .unwrap_or_default()
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

    /// Checks the invariant between the two maps.
    fn check(inner: &Inner) {
        let count: usize = inner.namespaces.values().map(BTreeMap::len).sum();
        assert_eq!(count, inner.expiries.len());
        assert!(inner.namespaces.values().all(|s| !s.is_empty()));
        for ((at, seq), (ns, id)) in &inner.expiries {
            let entry = inner.get(ns, &id.to_id()).expect("indexed entry exists");
            assert_eq!((entry.expires_at, entry.seq), (*at, *seq));
        }
    }

    proptest::proptest! {
        #[test]
        fn id_keys_round_trip_and_keep_the_order_of_ids(
            a in "[0-9a-f]{64}|[0-9a-zA-Z]{0,70}",
            b in "[0-9a-f]{64}|[0-9a-zA-Z]{0,70}",
        ) {
            let (ka, kb) = (IdKey::new(&a), IdKey::new(&b));
            proptest::prop_assert_eq!(ka.to_id(), a.clone());
            let hex = |id: &str| matches!(IdKey::new(id), IdKey::Hex(_));
            if hex(&a) == hex(&b) {
                proptest::prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
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
