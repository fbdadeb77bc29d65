//! A small HTTP/1.1 server for the test origin and webhook receiver: one thread per
//! connection, kept-alive connections, `Content-Length` and chunked request bodies,
//! `Expect: 100-continue`, a handler called per request.
//!
//! Why not tiny_http: its task pool can queue a newly accepted connection with no thread
//! to serve it while its threads hold kept-alive connections (two connections arriving
//! together race on its `waiting_tasks` count), so a request waits until some other
//! connection closes — seen as a webhook attempt timing out after 10 s when a burst of
//! deliveries opened many connections at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::origin::Seen;

/// What the handler answers.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers (besides `content-length`).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
}

type Handler = dyn Fn(&Seen) -> Answer + Send + Sync;

/// A running server; stops accepting connections when dropped (connections already open
/// are served until their client closes them).
pub struct HttpServer {
    /// Its port.
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    /// Serve on a port from [`crate::free_port`] (so none a broker of this process was
    /// given); every accepted connection has TCP_NODELAY (small answers are never held
    /// back by delayed ACKs).
    pub fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Self {
        let listener = loop {
            if let Ok(l) = TcpListener::bind(("127.0.0.1", crate::free_port())) {
                break l;
            }
        };
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let flag = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let handler = handler.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_nodelay(true);
                    serve(conn, &*handler);
                });
            }
        });
        Self { port, stop }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serve one connection until the client closes it or asks to.
fn serve(conn: TcpStream, handler: &Handler) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(conn);
    loop {
        let mut head = Vec::new();
        loop {
            let before = head.len();
            match r.read_until(b'\n', &mut head) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = &head[before..];
            if line == b"\r\n" || line == b"\n" {
                if before == 0 {
                    head.clear(); // blank lines before a request
                    continue;
                }
                break;
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
            let _ = out.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
            return;
        }
        let method = req.method.unwrap_or("GET").to_string();
        let url = req.path.unwrap_or("/").to_string();
        let http10 = req.version == Some(0);
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        if get("expect").as_deref() == Some("100-continue")
            && out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        let body = if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            match chunked(&mut r) {
                Some(b) => b,
                None => return,
            }
        } else {
            let n: usize = get("content-length")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let mut b = vec![0; n];
            if r.read_exact(&mut b).is_err() {
                return;
            }
            b
        };
        let close = match get("connection") {
            Some(c) if c.contains("close") => true,
            Some(c) if c.contains("keep-alive") => false,
            _ => http10,
        };
        let seen = Seen {
            method: method.clone(),
            url,
            headers,
            body,
        };
        let answer = handler(&seen);
        std::thread::sleep(answer.delay);
        let mut resp = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
        for (k, v) in &answer.headers {
            resp.push_str(&format!("{k}: {v}\r\n"));
        }
        let no_body = answer.status == 204 || answer.status == 304 || answer.status < 200;
        if !no_body {
            resp.push_str(&format!("content-length: {}\r\n", answer.body.len()));
        }
        if close {
            resp.push_str("connection: close\r\n");
        }
        resp.push_str("\r\n");
        let mut bytes = resp.into_bytes();
        if !no_body && method != "HEAD" {
            bytes.extend_from_slice(&answer.body);
        }
        if out.write_all(&bytes).is_err() || close {
            return;
        }
    }
}

/// A chunked body (trailers skipped); `None` on a broken stream.
fn chunked(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
        if size == 0 {
            loop {
                let mut t = String::new();
                if r.read_line(&mut t).ok()? == 0 || t == "\r\n" || t == "\n" {
                    return Some(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..]).ok()?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).ok()?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
