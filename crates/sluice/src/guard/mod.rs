//! Connection-level protection in front of the proxy application: a cap on open
//! connections per client IP (`server.limits.max_connections_per_ip`) and the request
//! header deadline (`server.limits.header_timeout`, see [`stream`]; on HTTP/2 per
//! stream header block, see `h2`). Pingora calls
//! [`GuardedApp::process_new`] once per connection, for its whole life (keep-alive
//! included), so a counter held across the call counts open connections exactly.

mod h2;
mod header_scan;
pub mod stream;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::tls::ALPN;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use sluice_core::config::limits::RequestLimits;

use stream::HeaderDeadline;

/// Open connections per client IP.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

/// One counted connection; uncounted when dropped.
struct Held<'a> {
    per_ip: &'a PerIp,
    ip: IpAddr,
}

impl PerIp {
    /// Count a connection from `ip` unless `cap` are already open.
    fn acquire(&self, ip: IpAddr, cap: usize) -> Option<Held<'_>> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if cap > 0 && *n >= cap {
            return None;
        }
        *n += 1;
        log::trace!("connection from {ip}: {n} open");
        Some(Held { per_ip: self, ip })
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut m = self.per_ip.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            log::trace!("connection from {} closed: {n} open", self.ip);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Wraps the proxy application (`A`) with the connection cap and the header deadline.
pub struct GuardedApp<A> {
    inner: Arc<A>,
    limits: RequestLimits,
    per_ip: PerIp,
}

impl<A> GuardedApp<A> {
    /// Guard `inner` with `limits`.
    pub fn new(inner: A, limits: RequestLimits) -> Self {
        Self {
            inner: Arc::new(inner),
            limits,
            per_ip: PerIp::default(),
        }
    }
}

fn rejected(reason: &'static str) {
    sluice_core::metrics::reject("_none", reason);
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for GuardedApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let ip = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet().map(|i| i.ip())));
        let _held = match ip {
            Some(ip) => match self.per_ip.acquire(ip, self.limits.max_connections_per_ip) {
                Some(h) => Some(h),
                None => {
                    rejected("connection_limit");
                    log::debug!("closing a connection from {ip}: max_connections_per_ip reached");
                    return None;
                }
            },
            None => None,
        };
        let on_reject: stream::OnReject = Arc::new(rejected);
        let limit = self.limits.header_timeout.0;
        let stream: Stream = if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            Box::new(HeaderDeadline::http2(stream, limit, on_reject))
        } else {
            Box::new(HeaderDeadline::new(stream, limit, on_reject))
        };
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_cap_counts_open_connections() {
        let p = PerIp::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let h1 = p.acquire(a, 2).unwrap();
        let h2 = p.acquire(a, 2).unwrap();
        assert!(p.acquire(a, 2).is_none());
        assert!(p.acquire(b, 2).is_some());
        drop(h1);
        let h3 = p.acquire(a, 2).unwrap();
        drop((h2, h3));
        assert!(
            p.0.lock().unwrap().get(&a).is_none(),
            "no entry left behind"
        );
        assert!(p.acquire(a, 0).is_some(), "0 = no cap");
    }
}
