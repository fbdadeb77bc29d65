//! A Server-Sent Events client over a plain socket: reads the chunked `text/event-stream`
//! incrementally, parses events and comments, and can stop after any number of events
//! (dropping the connection) to test resumption.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One parsed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `id` field.
    pub id: Option<String>,
    /// `event` field.
    pub event: Option<String>,
    /// `data` lines joined with `\n`.
    pub data: String,
}

/// What a read produced.
#[derive(Debug, Default)]
pub struct StreamRead {
    /// Response status.
    pub status: u16,
    /// Events, in order.
    pub events: Vec<Event>,
    /// Comment lines (`: ...`).
    pub comments: Vec<String>,
    /// `retry:` values.
    pub retry: Vec<String>,
    /// The raw response when the status is not 200.
    pub error: String,
    /// The last `id` received, with or without data (a browser's `lastEventId`).
    pub last_id: Option<String>,
}

/// Open a stream (with `Last-Event-ID` when given) and read until `max_events` events
/// arrived or `limit` passed; then drop the connection.
pub fn read(
    port: u16,
    path: &str,
    last_event_id: Option<&str>,
    max_events: usize,
    limit: Duration,
) -> StreamRead {
    read_until(port, path, last_event_id, limit, |r| {
        r.events.len() >= max_events
    })
}

/// Open a stream (with `Last-Event-ID` when given) and read until `done` holds for what
/// arrived (checked after every read), the server ends the response, or `limit` passed;
/// then drop the connection.
pub fn read_until(
    port: u16,
    path: &str,
    last_event_id: Option<&str>,
    limit: Duration,
    done: impl Fn(&StreamRead) -> bool,
) -> StreamRead {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut req =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n");
    if let Some(id) = last_event_id {
        req.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw: Vec<u8> = Vec::new();
    let mut out = StreamRead::default();
    let mut head_done = false;
    let mut chunked = Vec::new(); // de-chunked body
    let mut pos = 0; // parse position in raw (after the head)
    let started = Instant::now();
    let mut buf = [0u8; 8192];
    loop {
        if started.elapsed() > limit {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
        if !head_done {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).into_owned();
                out.status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                pos = end + 4;
                head_done = true;
                if out.status != 200 {
                    std::thread::sleep(Duration::from_millis(200));
                    let _ = s.read(&mut buf).map(|n| raw.extend_from_slice(&buf[..n]));
                    out.error = String::from_utf8_lossy(&raw).into_owned();
                    break;
                }
            } else {
                continue;
            }
        }
        // De-chunk whatever complete chunks arrived.
        loop {
            let rest = &raw[pos..];
            let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                break;
            };
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16)
                .unwrap_or(0);
            if rest.len() < eol + 2 + size + 2 {
                break;
            }
            chunked.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            pos += eol + 2 + size + 2;
        }
        // Parse complete events.
        while let Some(end) = chunked.windows(2).position(|w| w == b"\n\n") {
            let block = String::from_utf8_lossy(&chunked[..end]).into_owned();
            chunked.drain(..end + 2);
            let mut ev = Event {
                id: None,
                event: None,
                data: String::new(),
            };
            let mut data = Vec::new();
            let mut is_event = false;
            for line in block.split('\n') {
                if let Some(c) = line.strip_prefix(':') {
                    out.comments.push(c.trim().to_string());
                } else if let Some(v) = line.strip_prefix("retry: ") {
                    out.retry.push(v.to_string());
                } else if let Some(v) = line.strip_prefix("id: ") {
                    ev.id = Some(v.to_string());
                    out.last_id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    ev.event = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push(v.to_string());
                    is_event = true;
                }
            }
            if is_event {
                ev.data = data.join("\n");
                out.events.push(ev);
                if done(&out) {
                    return out;
                }
            }
        }
        if done(&out) {
            return out;
        }
    }
    out
}
