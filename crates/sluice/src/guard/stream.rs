//! A connection wrapper that bounds the time a client takes to send a request header
//! (slowloris): the clock starts at a request's first byte and stops at the blank line
//! ending its header; a request still unfinished at the deadline fails the read with
//! `TimedOut`, and Pingora closes the connection. Bodies, idle keep-alive time and
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

/// Where the client is in its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests (or waiting for the first).
    Idle,
    /// Inside a request header; `newlines` counts line ends since the last other byte.
    Header { newlines: u8 },
    /// Past the header (body, or waiting for the response).
    Body,
}

/// The wrapped connection (see the module docs).
pub struct HeaderDeadline {
    inner: Stream,
    limit: Duration,
    phase: Phase,
    /// One timer per connection, re-armed at each request's first byte.
    deadline: Pin<Box<Sleep>>,
    armed: bool,
    on_timeout: Arc<dyn Fn() + Send + Sync>,
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
    /// Wrap `inner`; `on_timeout` runs when a client misses the deadline.
    pub fn new(inner: Stream, limit: Duration, on_timeout: Arc<dyn Fn() + Send + Sync>) -> Self {
        Self {
            inner,
            limit,
            phase: Phase::Idle,
            deadline: Box::pin(tokio::time::sleep(limit)),
            armed: false,
            on_timeout,
        }
    }

    /// Follow the bytes the client sent.
    fn observe(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match self.phase {
                Phase::Idle => {
                    let at = tokio::time::Instant::now() + self.limit;
                    self.deadline.as_mut().reset(at);
                    self.armed = true;
                    self.phase = Phase::Header {
                        newlines: u8::from(b == b'\n'),
                    };
                }
                Phase::Header { newlines } => {
                    let n = match b {
                        b'\n' => newlines + 1,
                        b'\r' => newlines,
                        _ => 0,
                    };
                    if n >= 2 {
                        self.phase = Phase::Body;
                        self.armed = false;
                        return;
                    }
                    self.phase = Phase::Header { newlines: n };
                }
                Phase::Body => return,
            }
        }
    }
}

impl AsyncRead for HeaderDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.armed && this.deadline.as_mut().poll(cx).is_ready() {
            this.armed = false;
            (this.on_timeout)();
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request header not received within server.limits.header_timeout",
            )));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.observe(buf.filled().get(before..).unwrap_or_default());
        }
        r
    }
}

impl AsyncWrite for HeaderDeadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
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
