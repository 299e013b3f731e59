//! Connection-level limits on the public listener: how many client connections may be open
//! (`server.max_connections`), how long a request head may take to arrive
//! (`server.header_timeout`), and how long a connection may wait for its next request
//! (`server.idle_timeout`). See `docs/configuration.md` and `docs/threat-model.md` (slow
//! clients).
//!
//! Pingora 0.9 bounds none of these. Its HTTP/1 head read re-arms a per-read timer on every read
//! (`HttpSession::read_request_buf` in pingora-core), so a client sending one byte a minute
//! holds its connection for ever; and its listener accepts without limit. A thousand such
//! clients used up the process's file descriptors, and the token watcher and the admin socket
//! stopped working with them. So:
//!
//! * [`LimitedApp`] wraps the proxy's `ServerApp`: a connection over the limit is closed at
//!   once, before a byte is read; every other one reaches the proxy as a [`TimedStream`];
//! * [`TimedStream`] enforces the head and idle deadlines in its reads (`stream.rs`);
//! * [`fd`] raises the open-file limit at start and keeps descriptors in reserve, so the admin
//!   socket, the token watcher and the metrics listener still work when every client slot is
//!   taken.

pub mod fd;
mod stream;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

pub(crate) use stream::{untime_for_drain, TimedStream};

use crate::metrics;

/// The limits one listener enforces, resolved from `server:`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open client connections at most; more are closed at once.
    pub max_connections: usize,
    /// From the first byte of a request head to its end.
    pub header_timeout: Duration,
    /// From the end of a response (or the accept) to the first byte of the next request.
    pub idle_timeout: Duration,
}

/// A `ServerApp` that admits at most `max_connections` connections to `inner` at once and hands
/// it each one as a [`TimedStream`].
pub struct LimitedApp<A> {
    inner: Arc<A>,
    limits: ConnectionLimits,
    open: Arc<AtomicUsize>,
}

impl<A> LimitedApp<A> {
    /// Wraps `inner` (Pingora's HTTP proxy app).
    pub fn new(inner: A, limits: ConnectionLimits) -> LimitedApp<A> {
        LimitedApp {
            inner: Arc::new(inner),
            limits,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for LimitedApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Pingora's HTTP/1 app keeps a connection for all its requests and returns `None`; a
        // stream handed back for another round is already ours and holds its slot.
        if stream.as_any().is::<TimedStream>() {
            return self.inner.process_new(stream, shutdown).await;
        }
        let Some(slot) = Slot::take(&self.open, self.limits.max_connections) else {
            metrics::count_connection_closed(metrics::ConnectionClose::MaxConnections);
            warn_refused(self.limits.max_connections);
            // Dropping the stream closes the connection before anything is read or written.
            return None;
        };
        let timed: Stream = Box::new(TimedStream::new(stream, slot, &self.limits));
        self.inner.process_new(timed, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// One open connection counted against `max_connections`; given back when dropped (the
/// stream that holds it is dropped when the connection closes, whatever closed it).
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A slot, or `None` when `max` are taken.
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()?;
        metrics::CONNECTIONS.inc();
        Some(Slot(Arc::clone(open)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics::CONNECTIONS.dec();
    }
}

/// Logs a refusal at most once every ten seconds: a flood of connections must not become a
/// flood of log lines.
fn warn_refused(max: usize) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST.load(Ordering::Relaxed);
    if now >= last + 10
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        log::warn!(
            "{max} client connections are open (server.max_connections); new ones are being \
             closed at once (scim_gate_connections_closed_total counts them)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back() {
        let open = Arc::new(AtomicUsize::new(0));
        let a = Slot::take(&open, 2);
        let b = Slot::take(&open, 2);
        assert!(a.is_some() && b.is_some());
        assert!(Slot::take(&open, 2).is_none());
        drop(a);
        assert!(Slot::take(&open, 2).is_some());
        assert_eq!(
            open.load(Ordering::SeqCst),
            1,
            "the third slot was dropped at once"
        );
    }
}
