//! Bounded memory with the real binary: Kafka down (an Apache Kafka broker killed with
//! `kill -9`), 16 KiB bodies mirrored as fast as the machine allows for a fixed time;
//! the resident memory stays within the documented bound — baseline + producer queue
//! bytes (+ per-message overhead) + spool buffer + a fixed margin. Then the broker comes
//! back: once nothing is in flight, every request is one attempted event, and the events
//! counted acknowledged are exactly the records an independent consumer reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use std::collections::HashSet;

use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka};
use sluice_e2e::load::Load;
use sluice_e2e::metrics::{events, scrape};
use sluice_e2e::origin::Origin;
use sluice_e2e::wait_for;

const QUEUE_MIB: u64 = 8;

#[test]
fn rss_stays_bounded_with_kafka_down_under_overload() {
    let origin = Origin::start();
    let mut kafka = Kafka::start();
    kafka.create_topic("mem", 1);
    kafka.kill();
    let gw = Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default: {{ brokers: ["{}"], queue_max_bytes: {QUEUE_MIB}MiB, delivery_timeout: 5m, flush_timeout: 1s }}
upstreams: {{ origin: {{ nodes: ["127.0.0.1:{}"] }} }}
routes:
  - id: big
    match: {{ paths: ["/*"] }}
    upstream: origin
    plugins: {{ kafka-logger: {{ topic: mem, include_req_body: true, max_req_body_bytes: 16KiB }} }}
"#,
        kafka.bootstrap, origin.port
    ));
    std::thread::sleep(Duration::from_millis(500));
    let baseline = gw.rss_kib();
    let body = vec![b'x'; 16 * 1024];
    let load = Load::start(gw.port, 4, Duration::ZERO, move |n| {
        let rid = vec![("X-Request-Id".to_string(), format!("req-{n}"))];
        ("POST".into(), "/upload".into(), rid, body.clone())
    });
    // Overload for 10 s, and at least until the queue overflowed (events discarded): on a
    // busy machine filling the 8 MiB queue may take longer.
    let mut peak = baseline;
    let start = Instant::now();
    let overflowed = || events(&scrape(gw.admin), "big", "kafka-logger").3 > 0.0;
    while start.elapsed() < Duration::from_secs(10) || !overflowed() {
        peak = peak.max(gw.rss_kib());
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the queue never overflowed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let outcomes = load.stop();
    let sent = outcomes.len();
    peak = peak.max(gw.rss_kib());
    let m = scrape(gw.admin);
    let (attempted, acked, _, discarded, in_flight) = events(&m, "big", "kafka-logger");
    // Each queued event is a ~16.5 KiB JSON entry; librdkafka's per-message overhead and
    // allocator slack are on top of the queue's byte bound: allow 2x the bound plus 48 MiB.
    let bound = baseline + 2 * QUEUE_MIB * 1024 + 48 * 1024;
    eprintln!(
        "memory: {sent} requests in {:?}, baseline {baseline} KiB, peak {peak} KiB, bound {bound} KiB; events attempted {attempted}, in flight {in_flight}, discarded {discarded}",
        start.elapsed(),
    );
    assert!(
        peak <= bound,
        "peak RSS {peak} KiB over the bound {bound} KiB (baseline {baseline} KiB)"
    );
    assert!(
        discarded > 0.0,
        "the queue filled and events were discarded, counted"
    );
    assert!(
        in_flight * 16.0 <= (QUEUE_MIB * 1024) as f64 * 1.1,
        "queued events fit the queue bound"
    );
    assert_eq!(
        acked, 0.0,
        "nothing can be acknowledged while the broker is down"
    );

    // The broker comes back: what was queued is delivered, nothing stays in flight.
    kafka.restart();
    let m = wait_for("nothing in flight", Duration::from_secs(120), || {
        let m = scrape(gw.admin);
        (events(&m, "big", "kafka-logger").4 == 0.0).then_some(m)
    });
    let (attempted, acked, failed, discarded, _) = events(&m, "big", "kafka-logger");
    let proxied = outcomes.iter().filter(|o| o.status == Some(200)).count();
    assert_eq!(attempted, proxied as f64, "one event per proxied request");
    assert_eq!(attempted, acked + failed + discarded);
    assert_eq!(
        failed, 0.0,
        "the 5 min delivery timeout outlasted the outage"
    );
    let ids: Vec<String> = read_topic(
        &kafka.bootstrap,
        "mem",
        acked as usize,
        Duration::from_secs(3),
        Duration::from_secs(120),
    )
    .iter()
    .map(|r| r.json()["request_id"].as_str().unwrap().to_string())
    .collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), distinct.len(), "no record twice");
    assert_eq!(
        ids.len() as f64,
        acked,
        "the records in Kafka are exactly the events counted acknowledged"
    );
}
