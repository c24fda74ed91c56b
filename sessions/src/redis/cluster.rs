//! [`RedisClusterStore`]: sessions on a Redis Cluster, in the cluster-safe key layout.

use std::{fmt, time::Duration};

use redis::{cluster::ClusterClient, cluster_async::ClusterConnection};

use crate::redis::keys::KeyLayout;
use crate::redis::store::{Core, CONNECTION_TIMEOUT};
use crate::store::StoreError;

/// Attempts of one cluster request (redirections, `TRYAGAIN` during a slot migration,
/// reconnections during a failover) before the client gives up; the store's timeout bounds
/// them all anyway.
const CLUSTER_RETRIES: u32 = 10;
/// Waits between those attempts, in milliseconds: from 10 ms, doubling, at most 200 ms (the
/// client's defaults start at 1.28 s, longer than a session call should ever take).
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 10;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 200;

/// Why a [`RedisClusterStore`] could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterStoreError {
    /// [`KeyLayout::Uapi`] was chosen: its keys of one namespace land in unrelated hash slots,
    /// which the store's atomic scripts cannot touch together.
    #[error(
        "the uapi key layout cannot be used on a Redis Cluster: a namespace's sessions and \
         index would land in different hash slots; use `KeyLayout::Cluster` \
         (`RedisClusterStore::connect(nodes, KeyLayout::Cluster)`)"
    )]
    UapiLayoutOnCluster,
    /// The cluster could not be reached, or a node URL is invalid.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[doc = include_str!("../../docs/cluster.md")]
#[derive(Clone)]
pub struct RedisClusterStore {
    core: Core<ClusterConnection>,
}

impl RedisClusterStore {
    /// Connects to the Redis Cluster that `nodes` belong to (`redis://host:port` URLs; one
    /// reachable node is enough, the others are discovered), with `layout`, which must be
    /// [`KeyLayout::Cluster`].
    ///
    /// The client ([`ClusterClient`]) follows `MOVED` and `ASK` redirections, retries
    /// `TRYAGAIN` (a multi-key script on a slot being migrated) and reconnects after a
    /// failover, up to 10 attempts 10 ms to 200 ms apart; each connection attempt times out
    /// after 500 ms. The store's [`with_timeout`](Self::with_timeout) bounds every call,
    /// retries included.
    ///
    /// # Errors
    ///
    /// - [`ClusterStoreError::UapiLayoutOnCluster`] for [`KeyLayout::Uapi`], before any
    ///   connection is made; the message says to use [`KeyLayout::Cluster`].
    /// - [`ClusterStoreError::Store`] ([`StoreError::Unavailable`]) if a URL is invalid, no
    ///   node can be reached now, or the cluster's slots cannot be read (the first connection
    ///   is made before this returns, so a misconfiguration shows at start-up).
    pub async fn connect<I, S>(nodes: I, layout: KeyLayout) -> Result<Self, ClusterStoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        check_layout(layout)?;
        let nodes: Vec<String> = nodes.into_iter().map(|n| n.as_ref().to_owned()).collect();
        let client = ClusterClient::builder(nodes)
            .connection_timeout(CONNECTION_TIMEOUT)
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
            .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
            .retry_wait_formula(10, 2)
            .build()
            .map_err(unavailable)?;
        let connection = client.get_async_connection().await.map_err(unavailable)?;
        Self::from_connection(connection, layout)
    }

    /// A store on a cluster connection you configured yourself (TLS, credentials, replica
    /// reads, other retry settings), with `layout`, which must be [`KeyLayout::Cluster`].
    ///
    /// # Errors
    ///
    /// [`ClusterStoreError::UapiLayoutOnCluster`] for [`KeyLayout::Uapi`].
    pub fn from_connection(
        connection: ClusterConnection,
        layout: KeyLayout,
    ) -> Result<Self, ClusterStoreError> {
        check_layout(layout)?;
        Ok(Self {
            core: Core::new(connection, layout, true),
        })
    }

    /// Prefixes every key this store reads or writes. Defaults to `""`, as uapi's
    /// `redis_key_prefix`. `%`, `{` and `}` in the prefix are written `%25`, `%7B` and `%7D`
    /// (see [`KeyLayout`]), so a prefix cannot pin every session to one slot by accident.
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.core = self.core.with_key_prefix(prefix);
        self
    }

    /// Bounds every call to the cluster, redirections and retries included: a call that takes
    /// longer fails with [`StoreError::Timeout`] (a 503). Defaults to 250 ms, as
    /// [`RedisStore::with_timeout`](crate::redis::RedisStore::with_timeout). A manual
    /// failover or a slot migration stalls the calls of the slots concerned for up to about a
    /// second: raise the timeout if those calls should wait rather than fail.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.core.timeout = timeout;
        self
    }
}

fn check_layout(layout: KeyLayout) -> Result<(), ClusterStoreError> {
    match layout {
        KeyLayout::Uapi => Err(ClusterStoreError::UapiLayoutOnCluster),
        KeyLayout::Cluster => Ok(()),
    }
}

fn unavailable(err: redis::RedisError) -> ClusterStoreError {
    ClusterStoreError::Store(StoreError::Unavailable(Box::new(err)))
}

impl fmt::Debug for RedisClusterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("RedisClusterStore");
        self.core.debug_fields(&mut out);
        out.finish_non_exhaustive()
    }
}

super::store::session_store_via_core!(RedisClusterStore);

impl crate::redis::store::DirectConnection for ClusterConnection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn uapi_layout_is_refused_before_connecting() {
        // Nothing listens on port 1: the layout is checked first.
        let err = RedisClusterStore::connect(["redis://127.0.0.1:1/"], KeyLayout::Uapi)
            .await
            .unwrap_err();
        assert!(matches!(err, ClusterStoreError::UapiLayoutOnCluster));
        assert!(
            err.to_string().contains("use `KeyLayout::Cluster`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn bad_urls_and_no_cluster_are_store_errors() {
        for nodes in [vec!["not a url"], vec![], vec!["redis://127.0.0.1:1/"]] {
            let err = RedisClusterStore::connect(nodes, KeyLayout::Cluster)
                .await
                .unwrap_err();
            assert!(matches!(err, ClusterStoreError::Store(_)), "{err}");
        }
    }
}
