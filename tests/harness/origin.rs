//! A real origin server for tests (tiny_http, one thread per request). Behaviour by path:
//! `/status/NNN` answers NNN, `/slow/MS` waits MS milliseconds first; every response
//! body is a JSON echo of the request (method, path, headers, body), and every request
//! is recorded for assertions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

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

/// A listener on a free local port with TCP_NODELAY set. It is inherited by accepted
/// sockets (Linux): without it tiny_http's separate header and body writes stall on
/// delayed ACKs over kept-alive connections (~40 ms per request).
pub fn nodelay_listener() -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        let rc = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
    }
    listener
}

/// A running origin; stops when dropped.
pub struct Origin {
    /// Its port.
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: Arc<tiny_http::Server>,
}

impl Origin {
    /// Start on a free port.
    pub fn start() -> Self {
        let listener = nodelay_listener();
        let server = Arc::new(tiny_http::Server::from_listener(listener, None).unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (srv, log) = (server.clone(), seen.clone());
        std::thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut body = Vec::new();
                    let _ = req.as_reader().read_to_end(&mut body);
                    let headers: Vec<(String, String)> = req
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.as_str().as_str().to_ascii_lowercase(),
                                h.value.as_str().to_string(),
                            )
                        })
                        .collect();
                    let url = req.url().to_string();
                    let seen = Seen {
                        method: req.method().as_str().to_string(),
                        url: url.clone(),
                        headers: headers.clone(),
                        body: body.clone(),
                    };
                    log.lock().unwrap().push(seen);
                    let mut status = 200;
                    if let Some(code) = url.strip_prefix("/status/") {
                        status = code
                            .split(['?', '/'])
                            .next()
                            .unwrap_or("200")
                            .parse()
                            .unwrap_or(200);
                    }
                    if let Some(ms) = url.strip_prefix("/slow/") {
                        let ms: u64 = ms
                            .split(['?', '/'])
                            .next()
                            .unwrap_or("0")
                            .parse()
                            .unwrap_or(0);
                        std::thread::sleep(Duration::from_millis(ms));
                    }
                    let echo = json!({
                        "method": req.method().as_str(),
                        "url": url,
                        "body": String::from_utf8_lossy(&body),
                    });
                    let resp = tiny_http::Response::from_data(echo.to_string().into_bytes())
                        .with_status_code(status)
                        .with_header(
                            tiny_http::Header::from_bytes("content-type", "application/json")
                                .unwrap(),
                        )
                        .with_header(
                            tiny_http::Header::from_bytes("set-cookie", "origin-session=s3cr3t")
                                .unwrap(),
                        );
                    let _ = req.respond(resp);
                });
            }
        });
        Self { port, seen, server }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.server.unblock();
    }
}
