//! kafka-sse end to end: the real binary and Kafka. M records over 3 partitions are read
//! through many connections dropped at random points, each resumed with the previous
//! `Last-Event-ID`: the concatenation is exactly the M records, in per-partition order,
//! no gap, no duplicate; payloads with newlines and `id:`-looking text arrive intact;
//! keep-alives arrive while idle; bad tokens and too many streams are refused.
//!
//! Records are produced through a linger into multi-record batches, so most resume points
//! (and the `earliest` start of the by-key stream) land inside a batch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{produce, Kafka};
use sluice_e2e::metrics::scrape;
use sluice_e2e::sse::{read, read_until, StreamRead};

const M: usize = 240;
/// The longest any read here may take (each ends on its condition long before, unless
/// something is wrong).
const WAIT: Duration = Duration::from_secs(60);

fn gateway(bootstrap: &str) -> Gateway {
    Gateway::start(&config(bootstrap))
}

fn config(bootstrap: &str) -> String {
    format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{}"] }} }} }}
routes:
  - id: stream
    match: {{ paths: ["/streams/orders"], methods: [GET] }}
    plugins:
      kafka-sse: {{ topic: orders, start: earliest, keepalive: 300ms, event_header: kind }}
  - id: capped
    match: {{ paths: ["/streams/capped"], methods: [GET] }}
    plugins:
      kafka-sse: {{ topic: orders, start: earliest, keepalive: 300ms, max_streams: 2 }}
  - id: by-key
    match: {{ paths: ["/streams/customer/*"], methods: [GET] }}
    plugins:
      kafka-sse: {{ topic: orders, start: earliest, key: "{{path.2}}", keepalive: 300ms }}
"#,
        bootstrap
    )
}

/// Record i: partition i % 3, per-partition sequence i / 3; the value has newlines and
/// text that looks like SSE fields.
fn records() -> Vec<(i32, String, String)> {
    (0..M)
        .map(|i| {
            let (p, seq) = ((i % 3) as i32, i / 3);
            (
                p,
                format!("customer-{}", i % 5),
                format!("p{p} s{seq}\nid: forged-{i}\r\nevent: evil\n\ndata: x"),
            )
        })
        .collect()
}

#[test]
fn resumed_streams_deliver_every_record_once_in_partition_order() {
    let kafka = Kafka::start();
    kafka.create_topic("orders", 3);
    produce(&kafka.bootstrap, "orders", &records(), 10_000);
    resume_many_times(&gateway(&kafka.bootstrap));
}

/// Read the whole topic through connections dropped at pseudo-random points.
fn resume_many_times(gw: &Gateway) {
    let mut got = Vec::new();
    let mut last: Option<String> = None;
    let mut seed = 7u64;
    let mut connections = 0;
    while got.len() < M {
        // A pseudo-random number of events per connection (1..=37), then drop it.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let take = (1 + (seed >> 33) as usize % 37).min(M - got.len());
        let r = read(gw.port, "/streams/orders", last.as_deref(), take, WAIT);
        assert_eq!(r.status, 200, "{}", r.error);
        assert!(!r.retry.is_empty(), "a retry: hint");
        if r.events.is_empty() {
            break;
        }
        last = r.events.last().and_then(|e| e.id.clone());
        got.extend(r.events);
        connections += 1;
    }
    assert!(
        connections > 5,
        "the test must resume many times ({connections})"
    );
    assert_eq!(
        got.len(),
        M,
        "exactly M events across {connections} connections"
    );
    // Nothing after the last one: the resumed stream goes idle (keep-alives) without an
    // event.
    let r = read_until(gw.port, "/streams/orders", last.as_deref(), WAIT, |r| {
        !r.events.is_empty() || r.comments.iter().any(|c| c == "keep-alive")
    });
    assert!(
        r.events.is_empty(),
        "no event after the last: {:?}",
        r.events
    );
    let mut per_partition: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for e in &got {
        let first = e.data.lines().next().unwrap();
        let (p, s) = first.split_once(' ').unwrap();
        per_partition
            .entry(p.to_string())
            .or_default()
            .push(s.trim_start_matches('s').parse().unwrap());
        assert_eq!(
            e.event.as_deref(),
            Some("message"),
            "no `kind` header: the default event"
        );
    }
    for (p, seqs) in &per_partition {
        let want: Vec<usize> = (0..M / 3).collect();
        assert_eq!(seqs, &want, "partition {p}: every record once, in order");
    }
    // Payloads arrive intact: line endings normalized to \n, field-like text stays data.
    let i0 = &got
        .iter()
        .find(|e| e.data.starts_with("p0 s0\n"))
        .unwrap()
        .data;
    assert_eq!(i0, "p0 s0\nid: forged-0\nevent: evil\n\ndata: x");
    let m = scrape(gw.admin);
    assert!(m.sum("sluice_sse_events_total", &[("route", "stream")]) >= M as f64);
}

#[test]
fn keepalives_filters_bad_tokens_and_the_stream_cap() {
    let kafka = Kafka::start();
    kafka.create_topic("orders", 3);
    produce(&kafka.bootstrap, "orders", &records(), 10_000);
    let gw = gateway(&kafka.bootstrap);
    let keepalives = |r: &StreamRead| r.comments.iter().filter(|c| *c == "keep-alive").count();
    // Caught up and idle: keep-alive comments every 300 ms.
    let r = read_until(gw.port, "/streams/orders", None, WAIT, |r| {
        r.events.len() >= M && keepalives(r) >= 2
    });
    assert_eq!(r.events.len(), M);
    assert!(keepalives(&r) >= 2, "{:?}", r.comments);
    // A key filter from the path: only that customer's records (all of them arrive before
    // the stream goes idle: they are in Kafka already).
    let r = read_until(gw.port, "/streams/customer/customer-3", None, WAIT, |r| {
        r.events.len() >= M / 5 && keepalives(r) >= 2
    });
    assert_eq!(r.events.len(), M / 5);
    // A token that is not ours: 400.
    let r = read(
        gw.port,
        "/streams/orders",
        Some("v1.!!not-a-token"),
        1,
        WAIT,
    );
    assert_eq!(r.status, 400);
    // Resuming from the last id of a complete read: the next record produced, and
    // nothing before it again.
    let all = read(gw.port, "/streams/orders", None, M, WAIT);
    assert_eq!(all.events.len(), M);
    let end = all.events.last().unwrap().id.clone().unwrap();
    produce(
        &kafka.bootstrap,
        "orders",
        &[(1, "customer-1".into(), "the next one".into())],
        1,
    );
    let r = read_until(gw.port, "/streams/orders", Some(&end), WAIT, |r| {
        !r.events.is_empty() && keepalives(r) >= 1
    });
    assert_eq!(r.status, 200);
    let data: Vec<&str> = r.events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["the next one"]);
    // At most 2 streams on this route: a third one gets 503 while two are open.
    let release = Arc::new(AtomicBool::new(false));
    let hold = |port| {
        let release = release.clone();
        std::thread::spawn(move || {
            read_until(port, "/streams/capped", None, WAIT, |_| {
                release.load(Ordering::Acquire)
            })
        })
    };
    let (a, b) = (hold(gw.port), hold(gw.port));
    sluice_e2e::wait_for("two open streams", WAIT, || {
        (scrape(gw.admin).sum("sluice_sse_streams", &[("route", "capped")]) == 2.0).then_some(())
    });
    let r = read(gw.port, "/streams/capped", None, 1, WAIT);
    assert_eq!(r.status, 503);
    // The cap is the route's: a reload (the streams stay open on the unchanged cluster)
    // does not lift it.
    let more = config(&kafka.bootstrap)
        + "  - { id: other, match: { paths: [\"/other\"] }, plugins: { mocking: { status: 204 } } }\n";
    gw.reload(&more, 1.0);
    let r = read(gw.port, "/streams/capped", None, 1, WAIT);
    assert_eq!(r.status, 503, "still two open streams after the reload");
    assert_eq!(
        scrape(gw.admin).sum("sluice_sse_streams", &[("route", "capped")]),
        2.0
    );
    release.store(true, Ordering::Release);
    let _ = (a.join(), b.join());
    sluice_e2e::wait_for("the streams closed", WAIT, || {
        (scrape(gw.admin).sum("sluice_sse_streams", &[("route", "capped")]) == 0.0).then_some(())
    });
    let r = read(gw.port, "/streams/capped", None, 1, WAIT);
    assert_eq!(r.status, 200, "room again");
}

/// A broker killed and started again under an open stream: the stream stays open (the
/// consumer reconnects by itself) and goes on from where it was, every record once in
/// partition order, and no stream ends with `kafka_error`.
#[test]
fn an_open_stream_rides_out_a_broker_restart() {
    let mut kafka = Kafka::start();
    kafka.create_topic("orders", 3);
    let all = records();
    let (before, after) = all.split_at(M / 2);
    produce(&kafka.bootstrap, "orders", before, 10_000);
    let gw = gateway(&kafka.bootstrap);
    let port = gw.port;
    let reader = std::thread::spawn(move || {
        read_until(
            port,
            "/streams/orders",
            None,
            Duration::from_secs(180),
            |r| r.events.len() >= M,
        )
    });
    sluice_e2e::wait_for("the first half streamed", WAIT, || {
        (scrape(gw.admin).sum("sluice_sse_events_total", &[("route", "stream")]) >= (M / 2) as f64)
            .then_some(())
    });
    kafka.kill();
    // Down long enough for the consumer to notice (keep-alives go on meanwhile).
    sluice_e2e::wait_for("the consumer noticed", WAIT, || {
        gw.logs().contains("Connection refused").then_some(())
    });
    kafka.restart();
    produce(&kafka.bootstrap, "orders", after, 10_000);
    let r = reader.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.events.len(), M, "one connection, every record");
    let mut per_partition: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for e in &r.events {
        let (p, s) = e.data.lines().next().unwrap().split_once(' ').unwrap();
        per_partition
            .entry(p.to_string())
            .or_default()
            .push(s.trim_start_matches('s').parse().unwrap());
    }
    for (p, seqs) in &per_partition {
        assert_eq!(seqs, &(0..M / 3).collect::<Vec<_>>(), "partition {p}");
    }
    let m = scrape(gw.admin);
    assert_eq!(
        m.sum("sluice_sse_disconnects_total", &[("reason", "kafka_error")]),
        0.0
    );
}
