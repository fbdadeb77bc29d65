//! A connection wrapper that bounds the time a client takes to send a request header
//! (slowloris): the clock starts at a request's first byte (a CR or LF before the request
//! line included; precisely, at the first read after it that finds the header unfinished,
//! which follows within the same burst of reads) and stops at the blank line ending its
//! header; a request still
//! unfinished at the deadline fails the read with `TimedOut`, and Pingora closes the
//! connection. It also counts the `400`s the HTTP parser answers by itself (obs-fold,
//! bytes no request line may hold), which no proxy phase sees. Bodies, idle keep-alive time and
//! responses are not covered (Pingora's per-read and keep-alive timeouts are).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{SslDigest, TlsRef, ALPN};
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::h2;
use super::header_scan::{scan, Phase};

/// Callback for a refused connection or request, with its rejection reason.
pub type OnReject = Arc<dyn Fn(&'static str) + Send + Sync>;

/// The wrapped connection (see the module docs).
pub struct HeaderDeadline {
    inner: Stream,
    limit: Duration,
    phase: Phase,
    /// One timer per connection. It is set only when a read finds a header unfinished:
    /// a header that arrives whole (nearly all of them) never touches the timer wheel.
    deadline: Pin<Box<Sleep>>,
    /// A header is in progress: the deadline applies.
    armed: bool,
    /// `deadline` holds this header's deadline.
    timer_set: bool,
    on_reject: OnReject,
    /// HTTP/2 frame tracking, when ALPN chose `h2`.
    h2: Option<Box<(h2::Inbound, h2::Outbound)>>,
}

impl std::fmt::Debug for HeaderDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDeadline")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish()
    }
}

impl HeaderDeadline {
    /// Wrap `inner`; `on_reject` counts a missed deadline (`header_timeout`) and a
    /// request the HTTP parser refused (`malformed_request`).
    pub fn new(inner: Stream, limit: Duration, on_reject: OnReject) -> Self {
        Self {
            inner,
            limit,
            phase: Phase::Idle,
            deadline: Box::pin(tokio::time::sleep(limit)),
            armed: false,
            timer_set: false,
            on_reject,
            h2: None,
        }
    }

    /// The same guard for an HTTP/2 connection: the deadline covers the preface and each
    /// request's header block, and refused streams are counted (`http2_stream_limit`).
    pub fn http2(inner: Stream, limit: Duration, on_reject: OnReject) -> Self {
        let mut s = Self::new(inner, limit, on_reject);
        s.h2 = Some(Box::default());
        // The preface is due at once: the clock runs from the connection's start.
        s.armed = true;
        s.timer_set = true;
        s
    }

    fn observe_h2(&mut self, bytes: &[u8]) {
        let Some(h2) = self.h2.as_mut() else { return };
        let clock = h2.0.feed(bytes);
        if clock.started || (clock.needed && !self.armed) {
            let at = tokio::time::Instant::now() + self.limit;
            self.deadline.as_mut().reset(at);
        }
        self.armed = clock.needed;
        self.timer_set = clock.needed;
    }

    /// Follow the bytes the client sent (see [`scan`]).
    fn observe(&mut self, bytes: &[u8]) {
        let (phase, started) = scan(self.phase, bytes);
        if started {
            // The clock starts at the first byte, blank lines included (the timer itself
            // is set by the first read that finds the header unfinished, within the same
            // burst of reads).
            self.timer_set = false;
        }
        self.armed = matches!(phase, Phase::Header { .. });
        self.phase = phase;
    }
}

/// True for a `400` the HTTP parser wrote itself: every answer of the gateway (its own
/// and proxied ones) carries `x-request-id`, the parser's does not.
fn parser_refusal(data: &[u8]) -> bool {
    if !(data.starts_with(b"HTTP/1.1 400 ") || data.starts_with(b"HTTP/1.0 400 ")) {
        return false;
    }
    let head_end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(data.len());
    !data[..head_end]
        .windows(14)
        .any(|w| w.eq_ignore_ascii_case(b"\nx-request-id:"))
}

impl AsyncRead for HeaderDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        match r {
            Poll::Ready(Ok(())) => {
                let got = buf.filled().get(before..).unwrap_or_default();
                if this.h2.is_some() {
                    this.observe_h2(got);
                } else {
                    this.observe(got);
                }
            }
            // Waiting for more of an unfinished header: now the clock must run (and
            // wake this task at the deadline).
            Poll::Pending if this.armed && !this.timer_set => {
                let at = tokio::time::Instant::now() + this.limit;
                this.deadline.as_mut().reset(at);
                this.timer_set = true;
                if this.expired(cx) {
                    return Poll::Ready(Err(timed_out()));
                }
            }
            _ => {}
        }
        r
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "request header not received within server.limits.header_timeout",
    )
}

impl HeaderDeadline {
    /// True (and counted, once) when the current header's deadline has passed; polls the
    /// timer, so the task wakes at the deadline.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.armed && self.timer_set && self.deadline.as_mut().poll(cx).is_ready() {
            self.armed = false;
            (self.on_reject)("header_timeout");
            return true;
        }
        false
    }
}

impl AsyncWrite for HeaderDeadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(h2) = this.h2.as_mut() {
            let r = Pin::new(&mut this.inner).poll_write(cx, data);
            if let Poll::Ready(Ok(n)) = r {
                for _ in 0..h2.1.feed(data.get(..n).unwrap_or_default()) {
                    (this.on_reject)("http2_stream_limit");
                }
            }
            return r;
        }
        if parser_refusal(data) {
            (this.on_reject)("malformed_request");
        }
        // A response (other than `100 Continue` and other 1xx) ends the request: the next
        // bytes from the client start a new header.
        if this.phase == Phase::Body
            && !(data.starts_with(b"HTTP/1.1 1") || data.starts_with(b"HTTP/1.0 1"))
        {
            this.phase = Phase::Idle;
        }
        Pin::new(&mut this.inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HeaderDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for HeaderDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeaderDeadline {
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

impl GetTimingDigest for HeaderDeadline {
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

impl GetProxyDigest for HeaderDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for HeaderDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for HeaderDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
