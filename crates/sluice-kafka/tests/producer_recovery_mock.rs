//! A producer that hit a fatal error is replaced without restarting Sluice. Fault
//! injection on librdkafka's mock cluster: the broker answers the head-of-line produce
//! request with OUT_OF_ORDER_SEQUENCE_NUMBER, which librdkafka's idempotent producer
//! treats as fatal (it can no longer vouch for order or once-ness, and never sends
//! again). Every event queued in the dead producer gets its report (failed, counted);
//! the watchdog replaces the producer and counts it; acknowledged sends succeed again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use sluice_core::config::ClusterConfig;
use sluice_kafka::{Cluster, EventCounters, OutgoingEvent};

fn event(i: usize) -> OutgoingEvent {
    OutgoingEvent {
        topic: "t".into(),
        key: Some(format!("k{i}").into_bytes()),
        value: format!("{{\"n\":{i}}}").into_bytes(),
        headers: vec![],
        timestamp_ms: None,
    }
}

/// Send one acknowledged event: `Err` with the reason when the producer refused it at
/// once (counted discarded) or its delivery failed (counted failed).
async fn send(cluster: &Cluster, counters: &Arc<EventCounters>, i: usize) -> Result<(), String> {
    let rx = cluster
        .send_acked(&event(i), counters, None)
        .map_err(|r| r.reason)?;
    tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .expect("a delivery report within the delivery timeout")
        .unwrap()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_with_a_fatal_error_is_replaced_and_sends_recover() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("t", 1, 1).unwrap();
    // acks: all (the default) is the idempotent producer.
    let config: ClusterConfig = serde_yaml::from_str(&format!(
        "brokers: [\"{}\"]\ndelivery_timeout: 10s\nflush_timeout: 1s",
        mock.bootstrap_servers()
    ))
    .unwrap();
    let cluster = Arc::new(Cluster::new("recovering", config));
    cluster.start().await.unwrap();
    let counters = Arc::new(EventCounters::new("r", "test"));
    assert!(send(&cluster, &counters, 0).await.is_ok());

    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    // Six events queued together: the first request fails fatally, and every event of the
    // dead producer gets its report (failed), none is left waiting.
    let queued: Vec<_> = (1..=6)
        .map(|i| cluster.send_acked(&event(i), &counters, None).unwrap())
        .collect();
    for rx in queued {
        let report = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("a report for every queued event")
            .unwrap();
        let err = report.expect_err("the dead producer acknowledges nothing");
        eprintln!("fatal: {err}");
    }

    // Sends go through again once the watchdog replaced the producer.
    let started = Instant::now();
    let mut i = 7;
    loop {
        if send(&cluster, &counters, i).await.is_ok() {
            break;
        }
        i += 1;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no acknowledgement after the fatal error"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("recovered after {:?}", started.elapsed());
    let replaced = sluice_kafka::metrics::kafka()
        .unwrap()
        .producer_replacements
        .with_label_values(&["recovering", "out_of_order_sequence_number"])
        .get();
    assert_eq!(replaced, 1, "one replacement, counted with its reason");
    for _ in 0..5 {
        i += 1;
        assert!(send(&cluster, &counters, i).await.is_ok());
    }
    let s = counters.snapshot();
    assert_eq!(s.in_flight(), 0);
    assert_eq!(s.attempted, s.acked + s.failed + s.discarded);
    assert!(s.failed >= 6, "the six queued events failed: {s:?}");
    assert_eq!(
        s.acked, 7,
        "the first send, the recovering one and five more"
    );
    cluster.shutdown();
}
