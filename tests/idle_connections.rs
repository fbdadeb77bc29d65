//! Memory per idle keep-alive connection with the real binary: every client connection
//! holds `server.limits.read_buffer` for its whole life, so 1,000 connections parked after
//! one request each cost measurably less resident memory with the 16 KiB default than
//! with Pingora's own 64 KiB, and each answered its request. A small buffer bounds
//! nothing else: a 30 KiB header and a 1 MiB body pass whole through a 4 KiB one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sluice_e2e::gateway::Gateway;
use sluice_e2e::origin::Origin;

const CONNS: usize = 1000;

/// Resident KiB added per parked connection, for a gateway with `read_buffer`.
fn kib_per_idle_connection(origin: u16, read_buffer: &str) -> f64 {
    let gw = Gateway::start(&format!(
        r#"
server:
  listen: ["127.0.0.1:{{PORT}}"]
  threads: 1
  grace_period: 0s
  limits: {{ max_connections_per_ip: 0, read_buffer: {read_buffer} }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
upstreams: {{ origin: {{ nodes: ["127.0.0.1:{origin}"] }} }}
routes:
  - {{ id: r, match: {{ paths: ["/*"] }}, upstream: origin }}
"#
    ));
    // Warm up: the first connections allocate what every later one reuses.
    let mut parked: Vec<TcpStream> = (0..20).map(|_| park(gw.port)).collect();
    let before = gw.rss_kib();
    parked.extend((0..CONNS).map(|_| park(gw.port)));
    let after = gw.rss_kib();
    drop(parked);
    (after.saturating_sub(before)) as f64 / CONNS as f64
}

/// One keep-alive request, answered in full; the connection stays open.
fn park(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /idle HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !sluice_e2e::client::complete(&got) {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before the answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    s
}

#[test]
fn headers_and_bodies_larger_than_the_read_buffer_pass_whole() {
    let origin = Origin::start();
    let gw = Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s, limits: {{ read_buffer: 4KiB }} }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
upstreams: {{ origin: {{ nodes: ["127.0.0.1:{}"] }} }}
routes:
  - {{ id: r, match: {{ paths: ["/*"] }}, upstream: origin }}
"#,
        origin.port
    ));
    // A 30 KiB header (under max_header_bytes, 32 KiB) and a 1 MiB body, through 4 KiB.
    let big = "h".repeat(30 * 1024);
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let r = sluice_e2e::client::request(gw.port, "POST", "/big", &[("x-big", &big)], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = origin.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.header("x-big"), Some(big.as_str()));
    assert_eq!(last.body, body);
}

#[test]
fn idle_connections_hold_the_configured_read_buffer() {
    let origin = Origin::start();
    let pingora_default = kib_per_idle_connection(origin.port, "64KiB");
    let sluice_default = kib_per_idle_connection(origin.port, "16KiB");
    eprintln!("KiB per idle connection: read_buffer 64KiB {pingora_default:.1}, 16KiB {sluice_default:.1}");
    // 48 KiB less buffer per connection; at least 32 KiB of it must show in RSS.
    assert!(
        sluice_default + 32.0 < pingora_default,
        "read_buffer 16KiB: {sluice_default:.1} KiB per idle connection, 64KiB: {pingora_default:.1}"
    );
}
