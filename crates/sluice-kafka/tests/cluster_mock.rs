//! The cluster producer against librdkafka's mock cluster: delivery with the right
//! record contents, and every event counted when the broker is down or the queue full.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::{Offset, TopicPartitionList};
use sluice_core::config::ClusterConfig;
use sluice_kafka::{Cluster, EventCounters, OutgoingEvent};

fn config(bootstrap: &str, extra: &str) -> ClusterConfig {
    serde_yaml::from_str(&format!("brokers: [\"{bootstrap}\"]\n{extra}")).unwrap()
}

fn event(topic: &str, i: usize) -> OutgoingEvent {
    OutgoingEvent {
        topic: topic.into(),
        key: Some(format!("k{i}").into_bytes()),
        value: format!("{{\"n\":{i}}}").into_bytes(),
        headers: vec![("traceparent".into(), b"00-abc-def-01".to_vec())],
        timestamp_ms: Some(1_700_000_000_000 + i as i64),
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (key, value, headers, timestamp) of a consumed record.
type Record = (Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>, i64);

fn read_all(bootstrap: &str, topic: &str, expect: usize) -> Vec<Record> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "t")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < expect && start.elapsed() < Duration::from_secs(20) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
                headers,
                m.timestamp().to_millis().unwrap_or(0),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_records_with_key_headers_and_timestamp() {
    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    mock.create_topic("events", 3, 1).unwrap();
    let cluster = Arc::new(Cluster::new("default", config(&bootstrap, "")));
    cluster.start().await.unwrap();
    let counters = Arc::new(EventCounters::new("deliver", "test"));
    for i in 0..20 {
        cluster.send(&event("events", i), &counters);
    }
    wait_until("20 acks", Duration::from_secs(20), || {
        counters.snapshot().acked == 20
    });
    let s = counters.snapshot();
    assert_eq!(
        (s.attempted, s.failed, s.discarded, s.in_flight()),
        (20, 0, 0, 0)
    );
    let mut records = read_all(&bootstrap, "events", 20);
    assert_eq!(records.len(), 20);
    records.sort_by_key(|r| r.3);
    for (i, (key, value, headers, ts)) in records.iter().enumerate() {
        assert_eq!(key, format!("k{i}").as_bytes());
        assert_eq!(value, format!("{{\"n\":{i}}}").as_bytes());
        assert_eq!(
            headers,
            &vec![("traceparent".to_string(), b"00-abc-def-01".to_vec())]
        );
        assert_eq!(*ts, 1_700_000_000_000 + i as i64);
    }
    assert_eq!(cluster.shutdown().purged, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_events_fail_and_are_counted_without_blocking() {
    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    mock.create_topic("down", 1, 1).unwrap();
    let cluster = Arc::new(Cluster::new(
        "default",
        config(&bootstrap, "delivery_timeout: 1s"),
    ));
    cluster.start().await.unwrap();
    mock.broker_down(1).unwrap();
    let counters = Arc::new(EventCounters::new("down", "test"));
    let start = Instant::now();
    for i in 0..50 {
        cluster.send(&event("down", i), &counters);
    }
    // Enqueueing never waits on the broker (waiting would take the 1 s delivery timeout
    // per event).
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "send blocked: {:?}",
        start.elapsed()
    );
    wait_until("all 50 settled", Duration::from_secs(15), || {
        counters.snapshot().in_flight() == 0
    });
    let s = counters.snapshot();
    assert_eq!(s.attempted, 50);
    assert_eq!(s.acked + s.failed + s.discarded, 50);
    assert_eq!(s.acked, 0, "nothing can be acked while the broker is down");
    assert_eq!(s.failed, 50);
    let m = sluice_kafka::metrics::kafka().unwrap();
    assert_eq!(
        m.outcomes
            .with_label_values(&["down", "test", "failed", "message_timed_out"])
            .get(),
        50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_discards_and_counts() {
    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    mock.create_topic("full", 1, 1).unwrap();
    let cluster = Arc::new(Cluster::new(
        "default",
        config(
            &bootstrap,
            "queue_max_messages: 10\ndelivery_timeout: 30s\nflush_timeout: 1s",
        ),
    ));
    cluster.start().await.unwrap();
    mock.broker_down(1).unwrap();
    let counters = Arc::new(EventCounters::new("full", "test"));
    for i in 0..100 {
        cluster.send(&event("full", i), &counters);
    }
    let s = counters.snapshot();
    assert_eq!(s.attempted, 100);
    assert_eq!(s.discarded, 90, "{s:?}");
    assert_eq!(s.in_flight(), 10);
    let m = sluice_kafka::metrics::kafka().unwrap();
    assert_eq!(
        m.outcomes
            .with_label_values(&["full", "test", "discarded", "queue_full"])
            .get(),
        90
    );
    // Shutdown with the broker still down: the 10 queued events are purged and counted.
    let flush = cluster.shutdown();
    assert_eq!(flush.purged, 10);
    wait_until("purge reports", Duration::from_secs(5), || {
        counters.snapshot().in_flight() == 0
    });
    let s = counters.snapshot();
    assert_eq!((s.acked, s.failed, s.discarded), (0, 10, 90));
    // After shutdown, new events are discarded, never queued.
    cluster.send(&event("full", 0), &counters);
    assert_eq!(counters.snapshot().discarded, 91);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_profiles_get_their_own_producer() {
    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    mock.create_topic("acked", 1, 1).unwrap();
    let cluster = Arc::new(Cluster::new(
        "default",
        config(&bootstrap, "delivery_timeout: 60s\nflush_timeout: 1s"),
    ));
    let short = sluice_kafka::Profile {
        delivery_timeout: Duration::from_millis(800),
        linger: Duration::ZERO,
    };
    let _short = cluster.register_profile(short);
    cluster.start().await.unwrap();
    let counters = Arc::new(EventCounters::new("acked", "test"));
    // With the broker up, an acknowledged send reports partition and offset. On a busy
    // machine connecting can take longer than the profile's 800 ms: such sends time out
    // (counted failed) and are tried again until one is acknowledged.
    let mut warmups = 0;
    let ack = loop {
        let rx = cluster
            .send_acked(&event("acked", 0), &counters, Some(short))
            .unwrap();
        match tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .unwrap()
            .unwrap()
        {
            Ok(ack) => break ack,
            Err(e) => {
                assert_eq!(sluice_kafka::event::reason(&e), "message_timed_out");
                warmups += 1;
                assert!(warmups < 20, "no acknowledgement in 20 tries");
            }
        }
    };
    assert_eq!(ack.partition, 0);

    mock.broker_down(1).unwrap();
    let started = Instant::now();
    let short_rx = cluster
        .send_acked(&event("acked", 1), &counters, Some(short))
        .unwrap();
    let long_rx = cluster
        .send_acked(&event("acked", 2), &counters, None)
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), short_rx)
        .await
        .unwrap()
        .unwrap();
    let err = report.expect_err("the broker is down");
    assert_eq!(sluice_kafka::event::reason(&err), "message_timed_out");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up after {:?}",
        started.elapsed()
    );
    // The default producer (60 s) still holds the other event.
    assert_eq!(counters.snapshot().in_flight(), 1);
    let flush = cluster.shutdown();
    assert_eq!(flush.purged, 1);
    let purged = tokio::time::timeout(Duration::from_secs(5), long_rx)
        .await
        .unwrap()
        .unwrap();
    assert!(purged.is_err());
    let s = counters.snapshot();
    assert_eq!(
        (s.attempted, s.acked, s.failed, s.in_flight()),
        (3 + warmups, 1, 2 + warmups, 0)
    );
}

/// A profile nothing uses any more (a reload changed the route's timeout) has its
/// producer retired: its event in flight still gets its delivery report (counted), and
/// the profile taken into use again gets a new producer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_nobody_uses_has_its_producer_retired() {
    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    mock.create_topic("acked", 1, 1).unwrap();
    let cluster = Arc::new(Cluster::new(
        "default",
        config(&bootstrap, "delivery_timeout: 60s\nflush_timeout: 1s"),
    ));
    cluster.start().await.unwrap();
    assert_eq!(cluster.producer_count(), 1);
    let short = sluice_kafka::Profile {
        delivery_timeout: Duration::from_millis(800),
        linger: Duration::ZERO,
    };
    let used = cluster.register_profile(short);
    let again = cluster.register_profile(short);
    assert_eq!(cluster.producer_count(), 2, "one producer per profile");
    let counters = Arc::new(EventCounters::new("retire", "test"));
    // An event in flight on it when its last user goes: the broker is down.
    mock.broker_down(1).unwrap();
    let rx = cluster
        .send_acked(&event("acked", 0), &counters, Some(short))
        .unwrap();
    drop(used);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(cluster.producer_count(), 2, "still used");
    drop(again);
    let waited = Instant::now();
    while cluster.producer_count() != 1 {
        assert!(waited.elapsed() < Duration::from_secs(30), "not retired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .unwrap()
        .unwrap();
    assert!(report.is_err(), "reported failed, not lost");
    let s = counters.snapshot();
    assert_eq!((s.attempted, s.failed, s.in_flight()), (1, 1, 0));
    // Used again: a new producer, which delivers.
    mock.broker_up(1).unwrap();
    let _back = cluster.register_profile(short);
    assert_eq!(cluster.producer_count(), 2);
    let rx = cluster
        .send_acked(&event("acked", 1), &counters, Some(short))
        .unwrap();
    let mut tries = 0;
    let mut rx = rx;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .unwrap()
            .unwrap()
        {
            Ok(_) => break,
            Err(_) => {
                // Reconnecting can take longer than 800 ms on a busy machine.
                tries += 1;
                assert!(tries < 20);
                rx = cluster
                    .send_acked(&event("acked", 1), &counters, Some(short))
                    .unwrap();
            }
        }
    }
    cluster.shutdown();
}
