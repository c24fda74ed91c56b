//! Server-side session storage: the [`SessionStore`] trait and its in-memory implementation.
//!
//! A store keeps each session under a *namespace* and an *id*. The namespace is `""` for an
//! anonymous session and the user's identity (for example the user id) after a login, as in
//! uapi's `AsyncSession.update_session(namespace=...)`. Sessions of a non-empty namespace are
//! indexed so that [`SessionStore::remove_namespace`] can log a user out everywhere; anonymous
//! sessions are not indexed.
//!
//! Two stores are provided: [`MemoryStore`] (one process, for tests and development) and, with
//! the `redis` feature, `sessions::redis::RedisStore` (uapi's `AsyncRedisSessionStore` layout).
//! Both have the same semantics; one behaviour suite runs against both.

use std::{future::Future, pin::Pin, time::Duration};

pub mod data;
mod json;
mod memory;

pub(crate) use self::json::session_from_json;

pub use self::{data::SessionData, memory::MemoryStore};

/// A boxed, `Send` future, as returned by [`SessionStore`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One save of a session, as passed to [`SessionStore::save`].
#[derive(Debug, Clone, Copy)]
pub struct SaveOp<'a> {
    /// Namespace of the session (`""` = anonymous).
    pub namespace: &'a str,
    /// Session id: 64 lowercase hex characters.
    pub id: &'a str,
    /// What to store.
    pub data: &'a SessionData,
    /// `true` when this id was loaded from the store in this request: the save keeps the
    /// session's remaining time to live and does *not* recreate the session if it is gone
    /// (removed meanwhile, for example by [`SessionStore::remove_namespace`], or expired); the
    /// save then returns [`SaveOutcome::Gone`].
    ///
    /// `false`: a new session, stored with a time to live of [`max_age`](Self::max_age) and
    /// indexed under its namespace (unless the namespace is `""`).
    pub existing: bool,
    /// A session `(namespace, id)` to delete in the same save: a login changes the
    /// namespace, which mints a new id, and the old session is deleted.
    pub replaces: Option<(&'a str, &'a str)>,
    /// Time to live of a new session (ignored when [`existing`](Self::existing) is `true`).
    pub max_age: Duration,
}

/// What [`SessionStore::save`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Written.
    Saved,
    /// [`SaveOp::existing`] was `true` but the session no longer exists; nothing was written.
    Gone,
}

/// Why a [`SessionStore`] call failed.
///
/// A missing, expired or corrupt session is not an error (it is `Ok(None)`); these are failures
/// of the store itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer within the configured timeout.
    #[error("session store timed out after {0:?}")]
    Timeout(Duration),
    /// The store could not be reached or failed.
    #[error("session store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Storage for server-side sessions.
///
/// Every method is one round trip to the backing store where the backend allows. Namespaces
/// are arbitrary strings (a backend encodes them as needed); ids are 64 lowercase hex
/// characters.
pub trait SessionStore: Send + Sync + std::fmt::Debug + 'static {
    /// Loads a session.
    ///
    /// An unknown or expired id is `Ok(None)`. A corrupt payload (not a JSON object of strings)
    /// is also `Ok(None)`, logged with `tracing::warn!`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Timeout`] or [`StoreError::Unavailable`] when the store fails.
    fn load<'a>(
        &'a self,
        namespace: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionData>, StoreError>>;

    /// Saves a session (see [`SaveOp`]).
    ///
    /// An update of an existing session is atomic: it keeps the TTL and never recreates a
    /// session that is gone. A new session, its index entry and the deletion of
    /// [`replaces`](SaveOp::replaces) are all done when this returns `Ok`; they need not be one
    /// atomic step, but a store must not leave a session unindexed once its save has
    /// succeeded (the Redis store writes the session, then indexes it, in one ordered batch;
    /// if that fails midway, the session it may have written was never handed to a client).
    ///
    /// # Errors
    ///
    /// [`StoreError::Timeout`] or [`StoreError::Unavailable`] when the store fails.
    fn save<'a>(&'a self, op: SaveOp<'a>) -> BoxFuture<'a, Result<SaveOutcome, StoreError>>;

    /// Deletes one session and its index entry. Returns whether the session existed.
    ///
    /// # Errors
    ///
    /// [`StoreError::Timeout`] or [`StoreError::Unavailable`] when the store fails.
    fn remove<'a>(
        &'a self,
        namespace: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Deletes every session of a namespace and the namespace's index, as uapi's
    /// `AsyncRedisSessionStore.remove_namespace`. Returns how many sessions were deleted.
    ///
    /// `""` is a no-op returning `0`: anonymous sessions have no index.
    ///
    /// # Errors
    ///
    /// [`StoreError::Timeout`] or [`StoreError::Unavailable`] when the store fails.
    fn remove_namespace<'a>(&'a self, namespace: &'a str)
        -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Ids of the live (unexpired) sessions of a namespace.
    ///
    /// `""` gives an empty list: anonymous sessions have no index.
    ///
    /// # Errors
    ///
    /// [`StoreError::Timeout`] or [`StoreError::Unavailable`] when the store fails.
    fn list_namespace<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;
}
