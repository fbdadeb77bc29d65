//! The disk spool with a cluster against librdkafka's mock cluster: at-least-once events
//! go to the spool when Kafka cannot take them and are replayed once it can; a shutdown
//! moves what is queued into the spool and the next process delivers it; durable
//! spooling for divert routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::{Offset, TopicPartitionList};
use sluice_core::config::ClusterConfig;
use sluice_kafka::{Cluster, EventCounters, OutgoingEvent};

fn spool_dir(tag: &str) -> String {
    let d = std::env::temp_dir().join(format!("sluice-kspool-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d.display().to_string()
}

fn cluster(bootstrap: &str, dir: &str, extra: &str) -> Arc<Cluster> {
    let cfg: ClusterConfig = serde_yaml::from_str(&format!(
        "brokers: [\"{bootstrap}\"]\nspool: {{ dir: \"{dir}\", max_bytes: 16MiB }}\n{extra}"
    ))
    .unwrap();
    Arc::new(Cluster::new("default", cfg))
}

fn event(i: usize) -> OutgoingEvent {
    OutgoingEvent {
        topic: "t".into(),
        key: Some(format!("k{}", i % 3).into_bytes()),
        value: format!("v{i}").into_bytes(),
        headers: vec![("ce_id".into(), format!("id-{i}").into_bytes())],
        timestamp_ms: Some(1_700_000_000_000 + i as i64),
    }
}

async fn wait(what: &str, limit: Duration, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every value in topic `t`, read from the beginning.
fn values(bootstrap: &str, expect: usize) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "t")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("t", 0, Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20)
        && (out.len() < expect || start.elapsed() < Duration::from_secs(1))
    {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_events_survive_a_broker_outage_through_the_spool() {
    let mock = MockCluster::new(1).unwrap();
    let b = mock.bootstrap_servers();
    mock.create_topic("t", 1, 1).unwrap();
    let c = cluster(&b, &spool_dir("outage"), "delivery_timeout: 1s");
    c.start().await.unwrap();
    let counters = Arc::new(EventCounters::new("alo", "test"));
    mock.broker_down(1).unwrap();
    for i in 0..30 {
        c.send_reliable(&event(i), &counters);
    }
    wait("30 spooled", Duration::from_secs(15), || {
        counters.snapshot().spooled == 30
    })
    .await;
    let s = counters.snapshot();
    assert_eq!(
        (s.attempted, s.acked, s.failed, s.discarded, s.in_flight()),
        (30, 0, 0, 0, 0)
    );
    // While the spool holds events, new ones queue up behind them (order per key).
    for i in 30..40 {
        c.send_reliable(&event(i), &counters);
    }
    wait("40 spooled", Duration::from_secs(5), || {
        counters.snapshot().spooled == 40
    })
    .await;
    mock.broker_up(1).unwrap();
    let spool = c.spool().unwrap().clone();
    wait("the spool drains", Duration::from_secs(30), || {
        spool.stats().records == 0
    })
    .await;
    let got = values(&b, 40);
    let want: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
    assert_eq!(got.len(), 40, "{got:?}");
    assert_eq!(got, want, "replayed in order");
    assert_eq!(spool.stats().acked, 40);
    c.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_spools_instead_of_discarding() {
    let mock = MockCluster::new(1).unwrap();
    let b = mock.bootstrap_servers();
    mock.create_topic("t", 1, 1).unwrap();
    let c = cluster(
        &b,
        &spool_dir("full"),
        "queue_max_messages: 5\ndelivery_timeout: 60s",
    );
    c.start().await.unwrap();
    mock.broker_down(1).unwrap();
    let counters = Arc::new(EventCounters::new("alo-full", "test"));
    for i in 0..20 {
        c.send_reliable(&event(i), &counters);
    }
    wait("15 spooled", Duration::from_secs(5), || {
        counters.snapshot().spooled == 15
    })
    .await;
    let s = counters.snapshot();
    assert_eq!((s.discarded, s.in_flight()), (0, 5));
    mock.broker_up(1).unwrap();
    let spool = c.spool().unwrap().clone();
    wait("delivered", Duration::from_secs(30), || {
        counters.snapshot().acked == 5 && spool.stats().records == 0
    })
    .await;
    let got: HashSet<String> = values(&b, 20).into_iter().collect();
    assert_eq!(got.len(), 20, "all 20 events reached Kafka: {got:?}");
    c.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_moves_queued_events_to_the_spool_and_the_next_process_delivers_them() {
    let mock = MockCluster::new(1).unwrap();
    let b = mock.bootstrap_servers();
    mock.create_topic("t", 1, 1).unwrap();
    let dir = spool_dir("shutdown");
    let first = cluster(&b, &dir, "delivery_timeout: 60s\nflush_timeout: 500ms");
    first.start().await.unwrap();
    mock.broker_down(1).unwrap();
    let counters = Arc::new(EventCounters::new("best-effort-at-shutdown", "test"));
    for i in 0..10 {
        first.send(&event(i), &counters);
    }
    let outcome = first.shutdown();
    assert_eq!(
        (outcome.queued, outcome.purged, outcome.spooled),
        (10, 10, true)
    );
    let s = counters.snapshot();
    assert_eq!(
        (s.spooled, s.failed, s.in_flight()),
        (10, 0, 0),
        "nothing dropped silently"
    );
    drop(first);

    mock.broker_up(1).unwrap();
    let second = cluster(&b, &dir, "");
    second.start().await.unwrap();
    let spool = second.spool().unwrap().clone();
    wait(
        "the previous spool is replayed",
        Duration::from_secs(30),
        || spool.stats().acked == 10,
    )
    .await;
    assert_eq!(values(&b, 10).len(), 10);
    second.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_spooling_reports_after_the_sync_and_delivers_later() {
    let mock = MockCluster::new(1).unwrap();
    let b = mock.bootstrap_servers();
    mock.create_topic("t", 1, 1).unwrap();
    let c = cluster(&b, &spool_dir("durable"), "");
    c.start().await.unwrap();
    mock.broker_down(1).unwrap();
    let counters = Arc::new(EventCounters::new("divert-spool", "test"));
    let rx = c.spool_durably(&event(0), &counters).unwrap();
    assert_eq!(rx.await.unwrap(), Ok(()));
    assert_eq!(counters.snapshot().spooled, 1);
    mock.broker_up(1).unwrap();
    let spool = c.spool().unwrap().clone();
    wait("delivered", Duration::from_secs(30), || {
        spool.stats().acked == 1
    })
    .await;
    assert_eq!(values(&b, 1), ["v0"]);
    c.shutdown();
}
