//! A scripted webhook receiver: every request is recorded (with its arrival time) and
//! answered by a script that sees the request and how many earlier requests carried the
//! same `webhook-id`; and a Standard Webhooks signature check written from the spec.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::origin::{nodelay_listener, Seen};

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

type Script = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

/// A running receiver; stops when dropped.
pub struct Receiver {
    /// Its port.
    pub port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    server: Arc<tiny_http::Server>,
}

impl Receiver {
    /// Start; `script(request, earlier attempts with the same webhook-id)`.
    pub fn start(script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        let server = Arc::new(tiny_http::Server::from_listener(nodelay_listener(), None).unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let attempts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let (srv, log) = (server.clone(), hits.clone());
        std::thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let (log, attempts, script) = (log.clone(), attempts.clone(), script.clone());
                std::thread::spawn(move || {
                    let at = Instant::now();
                    let mut body = Vec::new();
                    let _ = req.as_reader().read_to_end(&mut body);
                    let seen = Seen {
                        method: req.method().as_str().to_string(),
                        url: req.url().to_string(),
                        headers: req
                            .headers()
                            .iter()
                            .map(|h| {
                                (
                                    h.field.as_str().as_str().to_ascii_lowercase(),
                                    h.value.as_str().to_string(),
                                )
                            })
                            .collect(),
                        body,
                    };
                    let earlier = {
                        let mut a = attempts.lock().unwrap();
                        let n = a
                            .entry(seen.header("webhook-id").unwrap_or_default().to_string())
                            .or_default();
                        *n += 1;
                        *n - 1
                    };
                    let reply = script(&seen, earlier);
                    log.lock().unwrap().push(Hit { seen, at });
                    std::thread::sleep(reply.delay);
                    let mut resp =
                        tiny_http::Response::from_string("ok").with_status_code(reply.status);
                    for (k, v) in &reply.headers {
                        resp = resp.with_header(
                            tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap(),
                        );
                    }
                    let _ = req.respond(resp);
                });
            }
        });
        Self { port, hits, server }
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

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
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
