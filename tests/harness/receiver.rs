//! A scripted webhook receiver: every request is recorded (with its arrival time) and
//! answered by a script that sees the request and how many earlier requests carried the
//! same `webhook-id`; and a Standard Webhooks signature check written from the spec.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::http_server::{Answer, HttpServer};
use crate::origin::Seen;

/// What the script answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    /// `status`, at once.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }
}

/// A request and when it arrived.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The request.
    pub seen: Seen,
    /// Arrival.
    pub at: Instant,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    /// Its port.
    pub port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    _server: HttpServer,
}

impl Receiver {
    /// Start; `script(request, earlier attempts with the same webhook-id)`.
    pub fn start(script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let attempts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let log = hits.clone();
        let server = HttpServer::start(move |seen: &Seen| {
            let at = Instant::now();
            let earlier = {
                let mut a = attempts.lock().unwrap();
                let n = a
                    .entry(seen.header("webhook-id").unwrap_or_default().to_string())
                    .or_default();
                *n += 1;
                *n - 1
            };
            let reply = script(seen, earlier);
            log.lock().unwrap().push(Hit {
                seen: seen.clone(),
                at,
            });
            Answer {
                status: reply.status,
                headers: reply.headers,
                body: b"ok".to_vec(),
                delay: reply.delay,
            }
        });
        Self {
            port: server.port,
            hits,
            _server: server,
        }
    }

    /// Every request so far, in arrival order.
    pub fn hits(&self) -> Vec<Hit> {
        let mut h = self.hits.lock().unwrap().clone();
        h.sort_by_key(|h| h.at);
        h
    }

    /// Requests so far.
    pub fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

/// Verify a Standard Webhooks signature: HMAC-SHA256 over `id.timestamp.body` with the
/// base64-decoded `whsec_` secret; one of the space-separated `v1,<base64>` must match.
pub fn verify(secret: &str, seen: &Seen) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let (Some(id), Some(ts), Some(sigs)) = (
        seen.header("webhook-id"),
        seen.header("webhook-timestamp"),
        seen.header("webhook-signature"),
    ) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&seen.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    sigs.split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}
