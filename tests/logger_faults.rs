//! kafka-logger under Kafka faults, with the real binary and librdkafka's mock cluster
//! (held by the test, so brokers can be taken down and up): requests keep being proxied
//! without waiting on Kafka, and every event is counted — failed when the broker is down,
//! discarded when the producer queue is full, purged and counted at shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::metrics::{events, scrape, Scrape};
use sluice_e2e::origin::Origin;
use sluice_e2e::wait_for;

fn gateway(bootstrap: &str, origin: u16, cluster_extra: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default: {{ brokers: ["{bootstrap}"], linger: 1ms, {cluster_extra} }}
upstreams:
  origin: {{ nodes: ["127.0.0.1:{origin}"] }}
routes:
  - id: mirrored
    match: {{ paths: ["/*"] }}
    upstream: origin
    plugins:
      kafka-logger: {{ topic: faults }}
"#
    ))
}

fn settled(admin: u16, what: &str, f: impl Fn(&Scrape) -> bool) -> Scrape {
    wait_for(what, Duration::from_secs(20), || {
        let m = scrape(admin);
        f(&m).then_some(m)
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn broker_down_events_fail_counted_and_requests_do_not_wait() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("faults", 1, 1).unwrap();
    let origin = Origin::start();
    let gw = gateway(
        &mock.bootstrap_servers(),
        origin.port,
        "delivery_timeout: 1s",
    );

    let mut up = Vec::new();
    for i in 0..10 {
        let r = request(gw.port, "POST", &format!("/up/{i}"), &[], b"payload");
        assert_eq!(r.status, 200);
        up.push(r.elapsed);
    }
    settled(gw.admin, "10 acks", |m| {
        events(m, "mirrored", "kafka-logger").1 == 10.0
    });

    mock.broker_down(1).unwrap();
    let mut down = Vec::new();
    for i in 0..30 {
        let r = request(gw.port, "POST", &format!("/down/{i}"), &[], b"payload");
        assert_eq!(r.status, 200, "requests are proxied while Kafka is down");
        down.push(r.elapsed);
    }
    let (m_up, m_down) = (median(up), median(down.clone()));
    assert!(
        m_down <= m_up * 3 + Duration::from_millis(5),
        "no added latency with Kafka down: median {m_down:?} vs {m_up:?} with Kafka up"
    );
    assert!(
        down.iter().all(|d| *d < Duration::from_millis(500)),
        "a request waited: {down:?}"
    );

    let m = settled(gw.admin, "30 failures", |m| {
        events(m, "mirrored", "kafka-logger").2 == 30.0
    });
    let (attempted, acked, failed, discarded, in_flight) = events(&m, "mirrored", "kafka-logger");
    assert_eq!(
        (attempted, acked, failed, discarded, in_flight),
        (40.0, 10.0, 30.0, 0.0, 0.0)
    );
    assert_eq!(
        m.sum(
            "sluice_kafka_events_total",
            &[
                ("route", "mirrored"),
                ("outcome", "failed"),
                ("reason", "message_timed_out")
            ]
        ),
        30.0
    );
    assert_eq!(
        m.sum(
            "sluice_http_requests_total",
            &[("route", "mirrored"), ("status", "200")]
        ),
        40.0
    );

    // The broker comes back: events are delivered again once the producer reconnected
    // (its reconnect backoff can reach seconds, so keep sending until one is acked).
    mock.broker_up(1).unwrap();
    let mut sent = 40.0;
    wait_for("an ack after recovery", Duration::from_secs(30), || {
        assert_eq!(request(gw.port, "GET", "/back", &[], b"").status, 200);
        sent += 1.0;
        std::thread::sleep(Duration::from_millis(100));
        (events(&scrape(gw.admin), "mirrored", "kafka-logger").1 > 10.0).then_some(())
    });
    let m = settled(gw.admin, "all settled", |m| {
        let e = events(m, "mirrored", "kafka-logger");
        e.0 == sent && e.4 == 0.0
    });
    let (attempted, acked, failed, discarded, _) = events(&m, "mirrored", "kafka-logger");
    assert_eq!(
        attempted,
        acked + failed + discarded,
        "every event is accounted for"
    );
    drop(gw);
}

#[test]
fn full_queue_discards_are_counted_and_shutdown_purges_are_reported() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("faults", 1, 1).unwrap();
    let origin = Origin::start();
    let gw = gateway(
        &mock.bootstrap_servers(),
        origin.port,
        "queue_max_messages: 5, delivery_timeout: 60s, flush_timeout: 1s",
    );
    assert_eq!(request(gw.port, "GET", "/warm", &[], b"").status, 200);
    settled(gw.admin, "warm-up ack", |m| {
        events(m, "mirrored", "kafka-logger").1 == 1.0
    });

    mock.broker_down(1).unwrap();
    for i in 0..20 {
        let r = request(gw.port, "POST", &format!("/burst/{i}"), &[], b"x");
        assert_eq!(r.status, 200, "a full queue never fails the request");
        // Not held for the 60 s delivery timeout (the margin is for a busy machine).
        assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    }
    // Events are built after the response is sent: wait for the last one.
    let m = settled(gw.admin, "21 attempts", |m| {
        events(m, "mirrored", "kafka-logger").0 == 21.0
    });
    let (attempted, acked, failed, discarded, in_flight) = events(&m, "mirrored", "kafka-logger");
    assert_eq!(
        (attempted, acked, failed, discarded, in_flight),
        (21.0, 1.0, 0.0, 15.0, 5.0)
    );
    assert_eq!(
        m.sum(
            "sluice_kafka_events_total",
            &[
                ("route", "mirrored"),
                ("outcome", "discarded"),
                ("reason", "queue_full")
            ]
        ),
        15.0
    );
    // The statistics (every second) show the 5 queued events against a capacity of 5.
    settled(gw.admin, "queue statistics: 5 of 5 messages", |m| {
        let c = [("cluster", "default")];
        m.sum("sluice_kafka_producer_queue_messages", &c) == 5.0
            && m.sum("sluice_kafka_producer_queue_max_messages", &c) == 5.0
    });

    // SIGTERM with the broker still down: the 5 queued events are purged, and said so.
    let log = gw.stop();
    assert!(
        log.contains("shutdown flush done (5 queued, 5 purged)"),
        "{log}"
    );
}
