//! A real origin server for tests (one thread per connection, see
//! [`crate::http_server`]). Behaviour by path:
//! `/status/NNN` answers NNN, `/slow/MS` waits MS milliseconds first; every response
//! body is a JSON echo of the request (method, path, headers, body), and every request
//! is recorded for assertions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::http_server::{Answer, HttpServer};

/// A request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub url: String,
    /// Headers (names lower-cased).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Seen {
    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running origin; stops when dropped.
pub struct Origin {
    /// Its port.
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    _server: HttpServer,
}

impl Origin {
    /// Start on a free port.
    pub fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let server = HttpServer::start(move |req: &Seen| {
            log.lock().unwrap().push(req.clone());
            let url = &req.url;
            let mut status = 200;
            if let Some(code) = url.strip_prefix("/status/") {
                status = code
                    .split(['?', '/'])
                    .next()
                    .unwrap_or("200")
                    .parse()
                    .unwrap_or(200);
            }
            let mut delay = Duration::ZERO;
            if let Some(ms) = url.strip_prefix("/slow/") {
                let ms: u64 = ms
                    .split(['?', '/'])
                    .next()
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0);
                delay = Duration::from_millis(ms);
            }
            let echo = json!({
                "method": req.method,
                "url": url,
                "body": String::from_utf8_lossy(&req.body),
            });
            Answer {
                status,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("set-cookie".into(), "origin-session=s3cr3t".into()),
                ],
                body: echo.to_string().into_bytes(),
                delay,
            }
        });
        Self {
            port: server.port,
            seen,
            _server: server,
        }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}
