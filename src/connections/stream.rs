//! [`TimedStream`]: a client connection whose reads enforce `server.idle_timeout` and
//! `server.header_timeout`, however the bytes trickle in.
//!
//! The stream follows the HTTP/1.1 exchange from what passes through it, without parsing
//! requests:
//!
//! ```text
//!   Idle ──first byte read──▶ Head ──end of head (an empty line)──▶ Request
//!    ▲                                                                 │
//!    └──────────────────────── a response byte written ◀───────────────┘
//! ```
//!
//! * **Idle** (after the accept, after a response): the next request's first byte must come
//!   within `idle_timeout`; otherwise the read ends as if the client had closed, and Pingora
//!   closes the connection quietly.
//! * **Head**: the whole head, up to its empty line, must come within `header_timeout` of its
//!   first byte, however many reads it takes. Otherwise the gate writes a 408 (best effort)
//!   and fails the read, and Pingora closes the connection.
//! * **Request**: no deadline here. The body is bounded by `server.body_timeout` in the gate's
//!   admission, the upstream by its own timeouts.
//!
//! While the gate drains the body of a request it answered early ([`untime_for_drain`]), the
//! deadlines are off: those bytes are the tail of a body, not the head of a new request, and the
//! drain has its own bounds. The gate serves HTTP/1.1 only; a stream that negotiated HTTP/2 is
//! passed through untimed, since its framing has no empty line to wait for.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::{ConnectionLimits, Slot};
use crate::metrics::{self, ConnectionClose};

/// Where the connection is in its request/response exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request.
    Idle,
    /// Inside a request head; `end` tracks how much of its closing empty line has been seen.
    Head { end: HeadEnd },
    /// The head is complete; the request is the gate's until a response byte is written.
    Request,
}

/// How much of the head's closing empty line (`\n\n` or `\n\r\n`; httparse accepts both) the
/// bytes so far end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadEnd {
    /// Not at a line end.
    None,
    /// Just after a `\n`.
    Newline,
    /// Just after a `\n\r`.
    NewlineCr,
}

impl HeadEnd {
    /// Feeds `bytes`; returns where the head ends in them (the index after the empty line), or
    /// the state to carry into the next read. Jumps from line end to line end (`memchr`) rather
    /// than stepping through every byte: it runs over every request head.
    fn feed(self, bytes: &[u8]) -> Result<usize, HeadEnd> {
        // What follows a `\n` at `at` (`None`: the bytes end first, carry that state).
        let after_newline = |at: usize| -> Option<Result<usize, HeadEnd>> {
            match bytes.get(at) {
                None => Some(Err(HeadEnd::Newline)),
                Some(b'\n') => Some(Ok(at + 1)),
                Some(b'\r') => match bytes.get(at + 1) {
                    None => Some(Err(HeadEnd::NewlineCr)),
                    Some(b'\n') => Some(Ok(at + 2)),
                    Some(_) => None,
                },
                Some(_) => None,
            }
        };
        let carried = match self {
            HeadEnd::None => None,
            HeadEnd::Newline => after_newline(0),
            HeadEnd::NewlineCr => match bytes.first() {
                None => Some(Err(HeadEnd::NewlineCr)),
                Some(b'\n') => Some(Ok(1)),
                Some(_) => None,
            },
        };
        if let Some(found) = carried {
            return found;
        }
        for at in memchr::memchr_iter(b'\n', bytes) {
            if let Some(found) = after_newline(at + 1) {
                return found;
            }
        }
        Err(HeadEnd::None)
    }
}

/// What a client whose head did not arrive in time reads before the connection closes.
const HEAD_TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\n\
Content-Type: application/scim+json\r\n\
Content-Length: 146\r\n\
Connection: close\r\n\
\r\n\
{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:Error\"],\"status\":\"408\",\"detail\":\"the request head did not arrive within server.header_timeout\"}";

/// A client connection with the idle and head deadlines of the module docs.
#[derive(Debug)]
pub(crate) struct TimedStream {
    inner: Stream,
    _slot: Slot,
    header_timeout: Duration,
    idle_timeout: Duration,
    phase: Phase,
    /// When the current phase's time is up; `None` until a read has to wait in it (an idle
    /// period starts when the gate starts waiting for the next request, so the clock is read
    /// then, once per request, not on every write).
    deadline_at: Option<Instant>,
    /// Never set later than `deadline_at`, but allowed to be earlier: when it fires early it is
    /// moved on. So a busy keep-alive connection resets it about once per `idle_timeout`, not
    /// once per request (tokio's timer wheel takes a lock per reset).
    timer: Pin<Box<Sleep>>,
    /// Set (through a shared reference, from the gate) while the body of an early-answered
    /// request is drained; no deadline applies then.
    draining: Arc<AtomicBool>,
    /// HTTP/2 was negotiated: no deadlines (see the module docs).
    untimed: bool,
}

impl TimedStream {
    pub(super) fn new(inner: Stream, slot: Slot, limits: &ConnectionLimits) -> TimedStream {
        let untimed = matches!(inner.selected_alpn_proto(), Some(ALPN::H2));
        TimedStream {
            inner,
            _slot: slot,
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            phase: Phase::Idle,
            deadline_at: None,
            timer: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            draining: Arc::new(AtomicBool::new(false)),
            untimed,
        }
    }

    fn timed(&self) -> bool {
        !self.untimed && self.phase != Phase::Request && !self.draining.load(Ordering::Relaxed)
    }

    /// A response byte was written: the request is over, and the next idle period starts when
    /// a read next has to wait. (A pipelined head already arriving keeps its own deadline.)
    fn responded(&mut self) {
        if !matches!(self.phase, Phase::Head { .. }) {
            self.phase = Phase::Idle;
            self.deadline_at = None;
        }
    }

    /// Follows the exchange through the bytes a read returned.
    fn saw_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let (end, first) = match self.phase {
            Phase::Request => return,
            Phase::Idle => (HeadEnd::None, true),
            Phase::Head { end } => (end, false),
        };
        self.phase = match end.feed(bytes) {
            Ok(_) => Phase::Request,
            Err(end) => {
                if first {
                    // The head began with these bytes and did not end in them: its time runs
                    // from now. (A head that comes in one read never reads the clock.)
                    self.deadline_at = Some(Instant::now() + self.header_timeout);
                }
                Phase::Head { end }
            }
        };
    }

    /// A read found no data: has a deadline passed? `Ready(Ok)` (no bytes: an end of stream)
    /// for an idle connection, `Ready(Err)` after a best-effort 408 for a late head.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.timed() {
            return Poll::Pending;
        }
        let idle = self.idle_timeout;
        let at = *self
            .deadline_at
            .get_or_insert_with(|| Instant::now() + idle);
        if self.timer.deadline() > at {
            self.timer.as_mut().reset(at);
        }
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.timer.deadline() >= at {
                break;
            }
            // The timer of an earlier deadline: move it on and wait again.
            self.timer.as_mut().reset(at);
        }
        match self.phase {
            Phase::Idle => {
                metrics::count_connection_closed(ConnectionClose::IdleTimeout);
                log::debug!("closing a connection idle for {:?}", self.idle_timeout);
                Poll::Ready(Ok(()))
            }
            _ => {
                metrics::count_connection_closed(ConnectionClose::HeaderTimeout);
                // Best effort: a client too slow to send its head may be too slow to read;
                // whatever does not fit now is dropped with the connection.
                let inner = Pin::new(&mut self.inner);
                if inner.poll_write(cx, HEAD_TIMEOUT_RESPONSE).is_ready() {
                    let _ = Pin::new(&mut self.inner).poll_flush(cx);
                }
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the request head did not arrive within server.header_timeout ({:?})",
                        self.header_timeout
                    ),
                )))
            }
        }
    }
}

/// Turns the deadlines off for the rest of this connection, if it is a [`TimedStream`]: the gate
/// calls it before it drains the body of a request it answered early.
pub(crate) fn untime_for_drain(stream: Option<&Stream>) {
    if let Some(timed) = stream.and_then(|s| s.as_any().downcast_ref::<TimedStream>()) {
        timed.draining.store(true, Ordering::Relaxed);
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw_read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_deadline(cx),
        }
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.responded();
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.responded();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// Everything else Pingora asks of a stream is the inner stream's.

#[async_trait]
impl Shutdown for TimedStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for TimedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for TimedStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for TimedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for TimedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for TimedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for TimedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_head_is_found_across_reads_and_line_endings() {
        assert_eq!(
            HeadEnd::None.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n{}"),
            Ok(27)
        );
        assert_eq!(HeadEnd::None.feed(b"GET / HTTP/1.1\nHost: a\n\n"), Ok(24));
        let carried = HeadEnd::None.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r");
        assert_eq!(carried, Err(HeadEnd::NewlineCr));
        assert_eq!(HeadEnd::NewlineCr.feed(b"\n"), Ok(1));
        assert!(HeadEnd::None
            .feed(b"GET / HTTP/1.1\r\nHost: a\r\nX: \r\r\n")
            .is_err());
    }

    /// The definition `feed` must agree with: one byte at a time.
    fn feed_bytewise(mut end: HeadEnd, bytes: &[u8]) -> Result<usize, HeadEnd> {
        for (i, b) in bytes.iter().enumerate() {
            end = match (end, b) {
                (HeadEnd::Newline | HeadEnd::NewlineCr, b'\n') => return Ok(i + 1),
                (_, b'\n') => HeadEnd::Newline,
                (HeadEnd::Newline, b'\r') => HeadEnd::NewlineCr,
                _ => HeadEnd::None,
            };
        }
        Err(end)
    }

    #[test]
    fn feed_agrees_with_the_bytewise_definition_on_every_input_up_to_six_bytes() {
        // Every string over the alphabet that matters, from every carried state.
        let alphabet = [b'\n', b'\r', b'x'];
        for len in 0..=6u32 {
            for n in 0..3usize.pow(len) {
                let bytes: Vec<u8> = (0..len).map(|i| alphabet[n / 3usize.pow(i) % 3]).collect();
                for start in [HeadEnd::None, HeadEnd::Newline, HeadEnd::NewlineCr] {
                    assert_eq!(
                        start.feed(&bytes),
                        feed_bytewise(start, &bytes),
                        "{start:?} {bytes:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_408_says_its_length() {
        let text = std::str::from_utf8(HEAD_TIMEOUT_RESPONSE).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["status"], "408");
    }
}
