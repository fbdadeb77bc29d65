//! Bounded memory with the real binary: Kafka down, 16 KiB bodies mirrored as fast as the
//! machine allows for a fixed time; the resident memory stays within the documented
//! bound — baseline + producer queue bytes (+ per-message overhead) + spool buffer + a
//! fixed margin — while every event is counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sluice_e2e::free_port;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::load::Load;
use sluice_e2e::metrics::{events, scrape};
use sluice_e2e::origin::Origin;

const QUEUE_MIB: u64 = 8;

#[test]
fn rss_stays_bounded_with_kafka_down_under_overload() {
    let origin = Origin::start();
    let dead = free_port();
    let gw = Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default: {{ brokers: ["127.0.0.1:{dead}"], queue_max_bytes: {QUEUE_MIB}MiB, delivery_timeout: 5m, flush_timeout: 1s }}
upstreams: {{ origin: {{ nodes: ["127.0.0.1:{}"] }} }}
routes:
  - id: big
    match: {{ paths: ["/*"] }}
    upstream: origin
    plugins: {{ kafka-logger: {{ topic: mem, include_req_body: true, max_req_body_bytes: 16KiB }} }}
"#,
        origin.port
    ));
    std::thread::sleep(Duration::from_millis(500));
    let baseline = gw.rss_kib();
    let body = vec![b'x'; 16 * 1024];
    let load = Load::start(gw.port, 4, Duration::ZERO, move |_| {
        ("POST".into(), "/upload".into(), vec![], body.clone())
    });
    let mut peak = baseline;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        peak = peak.max(gw.rss_kib());
        std::thread::sleep(Duration::from_millis(100));
    }
    let sent = load.stop().len();
    peak = peak.max(gw.rss_kib());
    let m = scrape(gw.admin);
    let (attempted, acked, failed, discarded, in_flight) = events(&m, "big", "kafka-logger");
    // Each queued event is a ~16.5 KiB JSON entry; librdkafka's per-message overhead and
    // allocator slack are on top of the queue's byte bound: allow 2x the bound plus 48 MiB.
    let bound = baseline + 2 * QUEUE_MIB * 1024 + 48 * 1024;
    eprintln!(
        "memory: {sent} requests in 10 s, baseline {baseline} KiB, peak {peak} KiB, bound {bound} KiB; events attempted {attempted}, in flight {in_flight}, discarded {discarded}"
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
    assert_eq!(attempted, acked + failed + discarded + in_flight);
}
