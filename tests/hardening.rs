//! Request hardening end to end, with raw sockets against the real binary: ambiguous
//! framing (CL+TE, duplicate Content-Length), obs-fold, oversized headers, slow headers
//! (slowloris), route body caps and the per-IP connection cap get the right status or a
//! closed connection in time, and the origin never sees any of those requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::metrics::scrape;
use sluice_e2e::origin::Origin;
use sluice_e2e::wait_for;

/// Send `raw`, read until the server closes (or 5 s): (status line, whole answer, time).
fn exchange(port: u16, raw: &[u8]) -> (String, String, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.lines().next().unwrap_or("").to_string();
    (status, text, start.elapsed())
}

fn gateway(origin: &Origin) -> Gateway {
    Gateway::start(&format!(
        r#"
server:
  listen: ["127.0.0.1:{{PORT}}"]
  grace_period: 1s
  limits: {{ header_timeout: 1s, max_header_bytes: 4KiB, max_headers: 20, max_connections_per_ip: 8 }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
upstreams:
  origin: {{ nodes: ["127.0.0.1:{}"] }}
routes:
  - id: api
    match: {{ paths: ["/api/*"] }}
    upstream: origin
    max_body_bytes: 64
"#,
        origin.port
    ))
}

#[test]
fn malformed_requests_are_refused_before_the_upstream() {
    let origin = Origin::start();
    let gw = gateway(&origin);
    let cases: &[(&str, Vec<u8>, &str)] = &[
        (
            "CL+TE",
            b"POST /api/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "duplicate CL",
            b"POST /api/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "conflicting CL",
            b"POST /api/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "obs-fold",
            b"GET /api/a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "oversized header",
            [b"GET /api/a HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec(), vec![b'a'; 5000], b"\r\n\r\n".to_vec()].concat(),
            "HTTP/1.1 431",
        ),
        (
            "too many headers",
            [b"GET /api/a HTTP/1.1\r\nHost: x\r\n".to_vec(), (0..30).flat_map(|i| format!("X-{i}: v\r\n").into_bytes()).collect(), b"\r\n".to_vec()].concat(),
            "HTTP/1.1 431",
        ),
        (
            "declared body over the route cap",
            [b"POST /api/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".to_vec(), vec![b'b'; 100]].concat(),
            "HTTP/1.1 413",
        ),
    ];
    let mut parser_refusals = 0;
    for (name, raw, expected) in cases {
        let (status, text, took) = exchange(gw.port, raw);
        if status.starts_with("HTTP/1.1 400") && !text.contains("problem+json") {
            parser_refusals += 1;
        }
        assert!(
            status.starts_with(expected),
            "{name}: got {status:?}\n{text}"
        );
        assert!(
            took < Duration::from_secs(3),
            "{name}: the connection was closed ({took:?})"
        );
        if !expected.ends_with("400") || text.contains("problem+json") {
            assert!(text.contains("application/problem+json"), "{name}: {text}");
        }
        assert!(
            !text.contains("smuggled"),
            "{name}: no echo of request data"
        );
    }
    assert!(
        origin.seen().is_empty(),
        "the origin saw {:?}",
        origin.seen()
    );

    // A chunked body growing past the cap ends the request too.
    let mut raw =
        b"POST /api/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        raw.extend_from_slice(b"20\r\n");
        raw.extend_from_slice(&[b'c'; 32]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let (status, text, _) = exchange(gw.port, &raw);
    assert!(
        status.starts_with("HTTP/1.1 413") || status.is_empty(),
        "chunked: {text}"
    );
    assert!(origin.seen().iter().all(|s| s.body.len() <= 64));

    // The gateway still serves well-formed requests.
    assert_eq!(request(gw.port, "GET", "/api/fine", &[], b"").status, 200);
    let s = scrape(gw.admin);
    let count = |reason: &str| s.sum("sluice_http_rejections_total", &[("reason", reason)]);
    assert_eq!(count("ambiguous_framing"), 2.0);
    assert_eq!(count("header_too_large"), 1.0);
    assert_eq!(count("too_many_headers"), 1.0);
    assert!(count("body_too_large") >= 1.0);
    // The parser's own refusals (obs-fold, ...) are counted too.
    assert!(parser_refusals >= 1);
    assert_eq!(count("malformed_request"), f64::from(parser_refusals));
}

/// Send `raw` one byte every 200 ms; how long until the server closed the connection
/// (at the latest when everything was sent and the answer read).
fn trickle(port: u16, raw: &[u8]) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for b in raw {
        if s.write_all(&[*b]).is_err() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    start.elapsed()
}

#[test]
fn slow_headers_and_connection_floods_are_cut_off() {
    let origin = Origin::start();
    let gw = gateway(&origin);

    // One byte every 200 ms: the header would take ~8 s; the deadline is 1 s. Blank
    // lines before the request line (which the parser skips) do not stop the clock.
    let slow = b"GET /api/slow HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaa\r\n\r\n";
    for (i, prefix) in [&b""[..], b"\r\n\r\n", b"\n\n\n"].iter().enumerate() {
        let closed_after = trickle(gw.port, &[prefix, &slow[..]].concat());
        assert!(
            closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(4),
            "prefix {prefix:?}: closed after {closed_after:?}"
        );
        assert!(origin.seen().is_empty());
        wait_for("header_timeout counted", Duration::from_secs(5), || {
            let n = scrape(gw.admin).sum(
                "sluice_http_rejections_total",
                &[("reason", "header_timeout")],
            );
            (n == (i + 1) as f64).then_some(())
        });
    }

    // Answered before its body was read (here: no route), a request's connection is
    // closed, not drained: body bytes are never read as the start of a next request
    // (whose header would then escape the deadline).
    let mut early = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    early
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    early
        .write_all(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = early.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "the connection is closed after the answer: {answer}"
    );

    // A quick request on a kept-alive connection is not cut off by the deadline while
    // idle between requests.
    let mut k = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    k.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..2 {
        k.write_all(format!("GET /api/k{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = k.read(&mut buf).unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "request {i}"
        );
        std::thread::sleep(Duration::from_millis(1500));
    }
    drop(k);

    // 8 open connections from one address (each served once, so all are counted, then
    // kept alive); the 9th is closed at once.
    let held: Vec<TcpStream> = (0..8)
        .map(|i| {
            let mut c = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.write_all(format!("GET /api/held{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .unwrap();
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            c
        })
        .collect();
    let (status, _, took) = exchange(
        gw.port,
        b"GET /api/9th HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        status.is_empty() && took < Duration::from_secs(1),
        "9th: {status:?} {took:?}"
    );
    drop(held);
    wait_for("served again", Duration::from_secs(5), || {
        let (status, _, _) = exchange(
            gw.port,
            b"GET /api/after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        status.starts_with("HTTP/1.1 200").then_some(())
    });
    assert!(
        scrape(gw.admin).sum(
            "sluice_http_rejections_total",
            &[("reason", "connection_limit")]
        ) >= 1.0
    );
}
