//! Graceful shutdown of served connections, for one atomic load per poll.
//!
//! hyper-util's `GracefulShutdown` polls a `watch` channel's `changed()` future every time a
//! connection is polled: in callgrind, about 210 instructions per request of a signed-cookie
//! `GET`. Here a connection registers its task's waker once (again
//! only if the task's waker changes) and each poll reads one flag. A shutdown sets the flag,
//! then wakes every registered task; each one then asks its connection to finish gracefully
//! (hyper answers the request in flight and closes an idle keep-alive connection).

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    task::{Context, Poll, Waker},
};

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::Notify;

/// The served connections, and the switch that drains them.
#[derive(Default)]
pub(crate) struct Drain {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    draining: AtomicBool,
    connections: Mutex<Connections>,
    /// Signalled when the last connection ends while draining.
    ended: Notify,
}

/// The registered wakers, by slot; slots of ended connections are reused.
#[derive(Default)]
struct Connections {
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
    live: usize,
}

impl Shared {
    fn connections(&self) -> std::sync::MutexGuard<'_, Connections> {
        // Nothing here panics while holding the lock; if something did, the slots are
        // still consistent.
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drain {
    /// Wraps `connection` so that [`shutdown`](Self::shutdown) can drain it.
    pub(crate) fn watch<C: GracefulConnection>(&self, connection: C) -> Watched<C> {
        let slot = {
            let mut connections = self.shared.connections();
            connections.live += 1;
            match connections.free.pop() {
                Some(slot) => slot,
                None => {
                    connections.wakers.push(None);
                    connections.wakers.len() - 1
                }
            }
        };
        Watched {
            connection: Box::pin(connection),
            shared: Arc::clone(&self.shared),
            slot,
            registered: None,
            shutting_down: false,
        }
    }

    /// Asks every watched connection to finish gracefully and waits until all have ended.
    pub(crate) async fn shutdown(self) {
        // Set before the wakers are taken: a connection that registers after this takes
        // the lock after it too, and then sees the flag.
        self.shared.draining.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = self
            .shared
            .connections()
            .wakers
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for waker in wakers {
            waker.wake();
        }
        while self.shared.connections().live > 0 {
            // `notify_one` keeps a permit when nobody waits yet: an end between the check
            // and this wait is not missed.
            self.shared.ended.notified().await;
        }
    }
}

/// A connection that a [`Drain`] can shut down gracefully.
pub(crate) struct Watched<C> {
    // Boxed, once per connection, so that this wrapper is `Unpin` without unsafe
    // projections.
    connection: Pin<Box<C>>,
    shared: Arc<Shared>,
    slot: usize,
    /// The waker last registered in the slot.
    registered: Option<Waker>,
    shutting_down: bool,
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = &mut *self;
        if !this.shutting_down {
            let known = this
                .registered
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()));
            if !known && !this.shared.draining.load(Ordering::SeqCst) {
                let waker = cx.waker().clone();
                this.shared.connections().wakers[this.slot] = Some(waker.clone());
                this.registered = Some(waker);
            }
            if this.shared.draining.load(Ordering::SeqCst) {
                this.shutting_down = true;
                this.connection.as_mut().graceful_shutdown();
            }
        }
        this.connection.as_mut().poll(cx)
    }
}

impl<C> Drop for Watched<C> {
    fn drop(&mut self) {
        let last = {
            let mut connections = self.shared.connections();
            connections.wakers[self.slot] = None;
            connections.free.push(self.slot);
            connections.live -= 1;
            connections.live == 0
        };
        if last && self.shared.draining.load(Ordering::SeqCst) {
            self.shared.ended.notify_one();
        }
    }
}
