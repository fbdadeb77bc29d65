//! Load client for the protocol translators (benches/translators.sh): WebSocket
//! publish and subscribe rates, request-reply round trips with a responder, each over
//! loopback, printing one Markdown table row.
//!
//! Usage:
//!   translate-load ws-publish PORT PATH N WINDOW
//!   translate-load ws-subscribe PORT PATH N
//!   translate-load request-reply PORT PATH BOOTSTRAP REQUEST_TOPIC CONCURRENCY SECONDS
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tungstenite::Message as Frame;

fn ws(port: u16, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream).unwrap();
    ws
}

fn ws_publish(port: u16, path: &str, n: usize, window: usize) {
    let mut s = ws(port, path);
    let value = "x".repeat(1024);
    let (mut sent, mut acked) = (0usize, 0usize);
    let start = Instant::now();
    while acked < n {
        while sent < n && sent - acked < window {
            let m = format!(r#"{{"id":{sent},"value":"{value}"}}"#);
            s.write(Frame::text(m)).unwrap();
            sent += 1;
        }
        s.flush().unwrap();
        if let Frame::Text(t) = s.read().unwrap() {
            assert!(t.as_str().contains("\"ack\""), "{t}");
            acked += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("| kafka-websocket publish (1 KiB, window {window}) | {n} | {:.0} messages/s | acknowledged by the broker |", n as f64 / secs);
}

fn ws_subscribe(port: u16, path: &str, n: usize) {
    let mut s = ws(port, path);
    let mut got = 0usize;
    let mut start = None;
    while got < n {
        if let Frame::Text(t) = s.read().unwrap() {
            if t.as_str().contains("\"record\"") {
                start.get_or_insert_with(Instant::now);
                got += 1;
            }
        }
    }
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!("| kafka-websocket subscribe (1 KiB, from earliest) | {n} | {:.0} messages/s | first to last record |", (n - 1) as f64 / secs);
}

/// Answer every request record (to its `sluice-reply-to`, same correlation id) until
/// `stop`.
fn responder(bootstrap: &str, topic: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-responder")
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        tpl.add_partition_offset(topic, p.id(), Offset::End)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Acquire) {
            p.poll(Duration::ZERO);
            let Some(Ok(m)) = c.poll(Duration::from_millis(20)) else {
                continue;
            };
            let h = |n: &str| {
                m.headers()
                    .and_then(|h| h.iter().find(|x| x.key == n).and_then(|x| x.value))
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            let (to, id) = (h("sluice-reply-to"), h("sluice-correlation-id"));
            let headers = OwnedHeaders::new().insert(Header {
                key: "sluice-correlation-id",
                value: Some(id.as_str()),
            });
            let body = m.payload().unwrap_or_default().to_vec();
            let mut r = BaseRecord::<[u8], [u8]>::to(&to)
                .payload(&body)
                .headers(headers);
            loop {
                match p.send(r) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        p.poll(Duration::from_millis(5));
                        r = back;
                    }
                }
            }
        }
        let _ = p.flush(Duration::from_secs(5));
    })
}

/// One keep-alive connection sending POSTs until `until`; each round trip's latency.
fn client(port: u16, path: &str, until: Instant) -> Vec<Duration> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let body = "x".repeat(256);
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: b\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    while Instant::now() < until {
        let t = Instant::now();
        s.write_all(req.as_bytes()).unwrap();
        let mut got = Vec::new();
        loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed");
            got.extend_from_slice(&buf[..n]);
            let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + len {
                break;
            }
        }
        out.push(t.elapsed());
    }
    out
}

fn request_reply(port: u16, path: &str, bootstrap: &str, topic: &str, conc: usize, secs: u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let r = responder(bootstrap, topic, stop.clone());
    // Warm up: the route's reply reader starts on its first request.
    client(port, path, Instant::now() + Duration::from_millis(500));
    let until = Instant::now() + Duration::from_secs(secs);
    let path = path.to_string();
    let threads: Vec<_> = (0..conc)
        .map(|_| {
            let p = path.clone();
            std::thread::spawn(move || client(port, &p, until))
        })
        .collect();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    stop.store(true, Ordering::Release);
    r.join().unwrap();
    all.sort();
    let p =
        |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    println!("| kafka-request-reply, {conc} clients, {secs} s | {} | {:.0} round trips/s | p50 {:.1} ms, p99 {:.1} ms |", all.len(), all.len() as f64 / secs as f64, p(0.5), p(0.99));
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let port = |i: usize| a[i].parse::<u16>().unwrap();
    let num = |i: usize| a[i].parse::<usize>().unwrap();
    match a.get(1).map(String::as_str) {
        Some("ws-publish") => ws_publish(port(2), &a[3], num(4), num(5)),
        Some("ws-subscribe") => ws_subscribe(port(2), &a[3], num(4)),
        Some("request-reply") => request_reply(port(2), &a[3], &a[4], &a[5], num(6), num(7) as u64),
        _ => eprintln!("usage: see the source's header"),
    }
}
