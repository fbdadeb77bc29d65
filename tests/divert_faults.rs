//! kafka-divert under Kafka faults, with the real binary and librdkafka's mock cluster
//! held by the test: never a 202 without an acknowledgement, `503` + `Retry-After`
//! within the route's timeout, no lost acknowledged event under injected produce errors
//! (each at the partition and offset its 202 names), and idempotency keys (replay, 409,
//! 422, 400). That no acknowledged event is written twice is tested on Apache Kafka
//! (`divert_kafka.rs`): the mock cluster checks producer sequence numbers only for
//! transactional producers (rdkafka_mock.c, `rd_kafka_mock_validate_records`), so a
//! retried request whose response a forced disconnect lost is appended again there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use sluice_e2e::client::{request, Response};
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Record};
use sluice_e2e::metrics::{events, scrape, wait_sum};
use sluice_e2e::wait_for;

fn gateway(bootstrap: &str, divert: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default: {{ brokers: ["{bootstrap}"], linger: 1ms }}
routes:
  - id: ingest
    match: {{ paths: ["/events/*"], methods: [POST] }}
    plugins:
      kafka-divert: {{ topic: events, key: "{{path.1}}", idempotency: {{ scope: global }}, {divert} }}
  - id: strict
    match: {{ paths: ["/strict/*"], methods: [POST] }}
    plugins:
      kafka-divert: {{ topic: events, idempotency: {{ required: true, scope: global }} }}
"#
    ))
}

fn post(gw: &Gateway, path: &str, body: &str, headers: &[(&str, &str)]) -> Response {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    request(gw.port, "POST", path, &h, body.as_bytes())
}

fn mock(partitions: i32) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let m = MockCluster::new(1).unwrap();
    m.create_topic("events", partitions, 1).unwrap();
    m
}

fn ce_id(r: &Record) -> String {
    r.header("ce_id").unwrap()
}

#[test]
fn broker_down_answers_503_within_the_timeout_and_never_202() {
    let mock = mock(1);
    let gw = gateway(&mock.bootstrap_servers(), "timeout: 1s, retry_after: 2s");
    assert_eq!(post(&gw, "/events/warm", "{}", &[]).status, 202);

    mock.broker_down(1).unwrap();
    let responses: Vec<Response> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let gw = &gw;
                s.spawn(move || post(gw, &format!("/events/k{i}"), &format!("{{\"n\":{i}}}"), &[]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &responses {
        assert_eq!(
            r.status,
            503,
            "never 202 without an acknowledgement: {}",
            r.text()
        );
        assert_eq!(r.header("retry-after"), Some("2"));
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        // Bounded by the route's 1 s timeout, not the cluster's delivery timeout; the
        // margin is for a busy machine.
        assert!(
            r.elapsed < Duration::from_secs(5),
            "answered after {:?}",
            r.elapsed
        );
    }
    let m = wait_sum(
        gw.admin,
        "sluice_divert_requests_total",
        &[("outcome", "rejected")],
        8.0,
    );
    assert_eq!(
        m.sum("sluice_divert_requests_total", &[("outcome", "accepted")]),
        1.0
    );

    // Back up: new requests are accepted again, without restarting Sluice.
    mock.broker_up(1).unwrap();
    wait_for(
        "a 202 after the broker is back",
        Duration::from_secs(30),
        || (post(&gw, "/events/back", "{}", &[]).status == 202).then_some(()),
    );
    let m = wait_for("events settled", Duration::from_secs(10), || {
        let m = scrape(gw.admin);
        (events(&m, "ingest", "kafka-divert").4 == 0.0).then_some(m)
    });
    let (attempted, acked, failed, discarded, _) = events(&m, "ingest", "kafka-divert");
    assert_eq!(attempted, acked + failed + discarded);
    assert_eq!(failed + discarded, attempted - acked);
    assert!(
        failed >= 8.0,
        "the 8 unacknowledged events failed: {failed}"
    );
}

#[test]
fn round_trip_above_the_timeout_is_503() {
    let mock = mock(1);
    let gw = gateway(&mock.bootstrap_servers(), "timeout: 500ms");
    // The first produce also connects and fetches metadata, which a busy machine can
    // take longer than 500 ms to do: wait for a 202 rather than expect the first.
    wait_for("a first 202", Duration::from_secs(30), || {
        (post(&gw, "/events/warm", "{}", &[]).status == 202).then_some(())
    });
    mock.broker_round_trip_time(1, Duration::from_secs(2))
        .unwrap();
    for i in 0..3 {
        let r = post(&gw, &format!("/events/slow{i}"), "{}", &[]);
        // A 503, not the 202 the broker would give after its 2 s round trip: the route's
        // 500 ms timeout applied.
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            r.elapsed < Duration::from_millis(1900),
            "answered after {:?}",
            r.elapsed
        );
        assert!(r.header("retry-after").is_some());
    }
}

#[test]
fn injected_produce_errors_lose_no_acknowledged_event() {
    let mock = mock(3);
    let gw = gateway(&mock.bootstrap_servers(), "timeout: 10s");
    assert_eq!(post(&gw, "/events/warm", "{}", &[]).status, 202);
    use RDKafkaRespErr::*;
    let errors = [
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR__TRANSPORT,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR__TRANSPORT,
    ];
    mock.request_errors(RDKafkaApiKey::Produce, &errors);
    let responses: Vec<Response> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let gw = &gw;
                s.spawn(move || {
                    (0..10)
                        .map(|i| {
                            post(
                                gw,
                                &format!("/events/t{t}"),
                                &format!("{{\"t\":{t},\"i\":{i}}}"),
                                &[],
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let accepted: Vec<serde_json::Value> = responses
        .iter()
        .filter(|r| r.status == 202)
        .map(|r| r.json())
        .collect();
    assert!(
        responses.iter().all(|r| r.status == 202 || r.status == 503),
        "only 202 or 503"
    );
    assert!(!accepted.is_empty());
    let records = read_topic(
        &mock.bootstrap_servers(),
        "events",
        accepted.len() + 1,
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    let ids: Vec<String> = records.iter().map(ce_id).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    let at: HashMap<(i32, i64), &Record> = records
        .iter()
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    for a in &accepted {
        let id = a["id"].as_str().unwrap();
        assert!(
            unique.contains(&id.to_string()),
            "acknowledged event {id} is in the topic"
        );
        let rec = at[&(
            a["partition"].as_i64().unwrap() as i32,
            a["offset"].as_i64().unwrap(),
        )];
        assert_eq!(
            ce_id(rec),
            id,
            "partition/offset of the 202 point at its record"
        );
    }
}

#[test]
fn idempotency_keys_replay_conflict_and_mismatch() {
    let mock = mock(1);
    let gw = gateway(&mock.bootstrap_servers(), "timeout: 5s");
    let key = ("Idempotency-Key", "\"order-42\"");
    let first = post(&gw, "/events/a", "{\"qty\":1}", &[key]);
    assert_eq!(first.status, 202, "{}", first.text());
    let replay = post(&gw, "/events/a", "{\"qty\":1}", &[key]);
    assert_eq!(replay.status, 202);
    assert_eq!(replay.body, first.body, "the stored response is replayed");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let other = post(&gw, "/events/a", "{\"qty\":2}", &[key]);
    assert_eq!(other.status, 422);
    let missing = post(&gw, "/strict/x", "{}", &[]);
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json()["detail"],
        "this route requires an Idempotency-Key header"
    );
    let records = read_topic(
        &mock.bootstrap_servers(),
        "events",
        1,
        Duration::from_secs(1),
        Duration::from_secs(20),
    );
    assert_eq!(records.len(), 1, "the replay produced nothing");
    assert_eq!(ce_id(&records[0]), first.json()["id"].as_str().unwrap());
    assert_eq!(records[0].key.as_deref(), Some(&b"a"[..]));
    let m = wait_sum(
        gw.admin,
        "sluice_divert_requests_total",
        &[("outcome", "replayed")],
        1.0,
    );
    assert_eq!(
        m.sum(
            "sluice_divert_requests_total",
            &[("reason", "idempotency_mismatch")]
        ),
        1.0
    );
    assert_eq!(
        m.sum(
            "sluice_divert_requests_total",
            &[("reason", "idempotency_key_missing")]
        ),
        1.0
    );
}

#[test]
fn concurrent_requests_with_one_key_get_one_202_and_409s() {
    let mock = mock(1);
    let gw = gateway(&mock.bootstrap_servers(), "timeout: 5s");
    assert_eq!(post(&gw, "/events/warm", "{}", &[]).status, 202);
    mock.broker_round_trip_time(1, Duration::from_millis(1000))
        .unwrap();
    let barrier = Arc::new(Barrier::new(5));
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..5)
            .map(|_| {
                let (gw, b) = (&gw, barrier.clone());
                s.spawn(move || {
                    b.wait();
                    post(
                        gw,
                        "/events/same",
                        "{\"x\":1}",
                        &[("Idempotency-Key", "same-key")],
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [202, 409, 409, 409, 409], "{statuses:?}");
    let records = read_topic(
        &mock.bootstrap_servers(),
        "events",
        2,
        Duration::from_secs(1),
        Duration::from_secs(20),
    );
    assert_eq!(records.len(), 2, "the warm-up and one event");
}
