//! kafka-divert end to end: the real binary and Apache Kafka. Concurrent POSTs with
//! varied bodies, content types and keys become exactly one record each, at the
//! partition and offset their 202 names; oversized bodies are 413 with nothing produced;
//! `Expect: 100-continue` is answered; a stopped broker gives 503 + Retry-After and,
//! once it is back, requests succeed again without restarting Sluice; under load across
//! a `kill -9` and a graceful restart of the broker the idempotent producer keeps every
//! 202 exactly once; after the broker lost its disk, 202s come back without restarting
//! Sluice. Invariant (but for the records the wiped broker lost): every id answered 202
//! is in the topic, once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka, Record};
use sluice_e2e::load::{accepted_ids, Load, Planned};
use sluice_e2e::metrics::{events, scrape};
use sluice_e2e::wait_for;

/// A gateway with one divert route; `cluster_extra` adds cluster fields.
fn gateway(kafka: &Kafka, cluster_extra: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default: {{ brokers: ["{}"], linger: 1ms{cluster_extra} }}
routes:
  - id: orders
    match: {{ paths: ["/orders"], methods: [POST] }}
    plugins:
      kafka-divert:
        topic: orders
        key: "{{header.x-key}}"
        timeout: 3s
        max_body_bytes: 4KiB
        forward_headers: [x-tenant]
        idempotency: {{ scope: global }}
"#,
        kafka.bootstrap
    ))
}

struct Sent {
    body: Vec<u8>,
    content_type: String,
    key: String,
}

#[test]
fn concurrent_posts_become_exactly_one_record_each_where_the_202_says() {
    let kafka = Kafka::start();
    kafka.create_topic("orders", 3);
    let gw = gateway(&kafka, "");
    const THREADS: usize = 4;
    const PER: usize = 10;
    let results: Vec<(serde_json::Value, Sent)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let gw = &gw;
                s.spawn(move || {
                    (0..PER)
                        .map(|i| {
                            let n = t * PER + i;
                            let (ct, body): (&str, Vec<u8>) = match n % 3 {
                                0 => (
                                    "application/json",
                                    format!("{{\"order\":{n}}}").into_bytes(),
                                ),
                                1 => (
                                    "text/plain; charset=utf-8",
                                    format!("order {n}\nline two").into_bytes(),
                                ),
                                _ => ("application/octet-stream", vec![0, 1, 2, 255, n as u8]),
                            };
                            let key = format!("customer-{}", n % 7);
                            let r = request(
                                gw.port,
                                "POST",
                                "/orders",
                                &[
                                    ("Content-Type", ct),
                                    ("X-Key", &key),
                                    ("X-Tenant", "acme"),
                                    ("Authorization", "Bearer s"),
                                ],
                                &body,
                            );
                            assert_eq!(r.status, 202, "{}", r.text());
                            (
                                r.json(),
                                Sent {
                                    body,
                                    content_type: ct.to_string(),
                                    key,
                                },
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
    // Over the cap: 413 and nothing produced.
    let big = vec![b'x'; 5000];
    let r = request(
        gw.port,
        "POST",
        "/orders",
        &[("Content-Type", "text/plain")],
        &big,
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));

    let n = THREADS * PER;
    let records = read_topic(
        &kafka.bootstrap,
        "orders",
        n,
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    assert_eq!(records.len(), n, "exactly one record per 202");
    let at: HashMap<(i32, i64), &Record> = records
        .iter()
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    let mut ids = HashSet::new();
    for (ack, sent) in &results {
        let id = ack["id"].as_str().unwrap();
        assert!(ids.insert(id.to_string()));
        assert_eq!(ack["topic"], "orders");
        let rec = at
            .get(&(
                ack["partition"].as_i64().unwrap() as i32,
                ack["offset"].as_i64().unwrap(),
            ))
            .unwrap_or_else(|| panic!("no record at the 202's partition/offset: {ack}"));
        assert_eq!(
            rec.value, sent.body,
            "the value is the body exactly as received"
        );
        assert_eq!(rec.header("ce_id").as_deref(), Some(id));
        assert_eq!(
            rec.header("content-type").as_deref(),
            Some(sent.content_type.as_str())
        );
        assert_eq!(rec.header("ce_source").as_deref(), Some("/routes/orders"));
        assert_eq!(rec.header("ce_specversion").as_deref(), Some("1.0"));
        assert_eq!(rec.header("x-tenant").as_deref(), Some("acme"));
        assert_eq!(
            rec.header("authorization"),
            None,
            "credentials are not copied unless listed"
        );
        assert_eq!(rec.key.as_deref(), Some(sent.key.as_bytes()));
    }
    let m = scrape(gw.admin);
    assert_eq!(
        events(&m, "orders", "kafka-divert"),
        (n as f64, n as f64, 0.0, 0.0, 0.0)
    );
    assert_eq!(
        m.sum("sluice_divert_requests_total", &[("outcome", "accepted")]),
        n as f64
    );
    assert_eq!(
        m.sum(
            "sluice_divert_requests_total",
            &[("reason", "body_too_large")]
        ),
        1.0
    );
    assert_eq!(
        m.sum(
            "sluice_divert_ack_duration_seconds_count",
            &[("route", "orders")]
        ),
        n as f64
    );
}

fn raw(port: u16, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

fn read_some(s: &mut TcpStream) -> String {
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn expect_100_continue_is_answered_and_oversized_bodies_refused_before_sending() {
    let kafka = Kafka::start();
    kafka.create_topic("orders", 1);
    let gw = gateway(&kafka, "");
    // Too large: refused from the Content-Length, the client never sends the body.
    let mut s = raw(
        gw.port,
        "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n\r\n",
    );
    let answer = read_some(&mut s);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Fits: 100 Continue first, then the body, then 202.
    let body = "{\"ok\":true}";
    let mut s = raw(
        gw.port,
        &format!("POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n", body.len()),
    );
    let cont = read_some(&mut s);
    assert!(cont.starts_with("HTTP/1.1 100"), "{cont}");
    s.write_all(body.as_bytes()).unwrap();
    let mut rest = String::new();
    let _ = s.read_to_string(&mut rest);
    assert!(rest.contains("202 Accepted"), "{rest}");
    let records = read_topic(
        &kafka.bootstrap,
        "orders",
        1,
        Duration::from_millis(500),
        Duration::from_secs(20),
    );
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value, body.as_bytes());
}

fn planned_post(n: u64) -> Planned {
    (
        "POST".into(),
        "/orders".into(),
        vec![("X-Key".into(), format!("k{}", n % 5))],
        format!("{{\"n\":{n}}}").into_bytes(),
    )
}

/// Every 202 of `accepted` is exactly once in `topic` (the idempotent producer's
/// promise across broker failures); other records may be there too (a 503 whose record
/// the broker did persist).
fn assert_exactly_once(bootstrap: &str, accepted: &[String]) {
    let records = read_topic(
        bootstrap,
        "orders",
        accepted.len(),
        Duration::from_secs(2),
        Duration::from_secs(120),
    );
    let mut count: HashMap<String, usize> = HashMap::new();
    for r in &records {
        if let Some(id) = r.header("ce_id") {
            *count.entry(id).or_default() += 1;
        }
    }
    for id in accepted {
        assert_eq!(
            count.get(id).copied().unwrap_or(0),
            1,
            "acknowledged {id} is in the topic exactly once"
        );
    }
}

#[test]
fn a_stopped_broker_gives_503_and_requests_succeed_again_after_it_is_back() {
    let mut kafka = Kafka::start();
    kafka.create_topic("orders", 1);
    // The default producer: idempotent, acks from all in-sync replicas.
    let gw = gateway(&kafka, "");
    let mut accepted: Vec<String> = Vec::new();
    let mut post = |i: usize| {
        let r = request(
            gw.port,
            "POST",
            "/orders",
            &[("Content-Type", "application/json")],
            format!("{{\"i\":{i}}}").as_bytes(),
        );
        if r.status == 202 {
            accepted.push(r.json()["id"].as_str().unwrap().to_string());
        }
        r
    };
    for i in 0..5 {
        assert_eq!(post(i).status, 202);
    }
    kafka.kill();
    for i in 5..8 {
        let r = post(i);
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(
            r.elapsed < Duration::from_secs(8),
            "the 3s timeout bounds the wait: {:?}",
            r.elapsed
        );
    }
    kafka.restart();
    let mut i = 8;
    wait_for(
        "a 202 after the broker restarted",
        Duration::from_secs(60),
        || {
            i += 1;
            (post(i).status == 202).then_some(())
        },
    );
    for j in 0..5 {
        assert_eq!(post(1000 + j).status, 202);
    }
    assert_exactly_once(&kafka.bootstrap, &accepted);
}

#[test]
fn idempotent_divert_under_load_across_broker_restarts_keeps_every_202_exactly_once() {
    let mut kafka = Kafka::start();
    kafka.create_topic("orders", 1);
    let gw = gateway(&kafka, "");
    let load = Load::start(gw.port, 4, Duration::ZERO, planned_post);
    let accepted_by = |load: &Load| accepted_ids(&load.snapshot()).len();
    for round in 0..2 {
        let before = accepted_by(&load);
        wait_for("202s under load", Duration::from_secs(60), || {
            (accepted_by(&load) > before + 200).then_some(())
        });
        // A hard kill in the middle of in-flight produce requests, then a graceful stop.
        if round == 0 {
            kafka.kill();
        } else {
            kafka.terminate();
        }
        kafka.restart();
    }
    let before = accepted_by(&load);
    wait_for("202s after the restarts", Duration::from_secs(60), || {
        (accepted_by(&load) > before + 200).then_some(())
    });
    let outcomes = load.stop();
    for o in &outcomes {
        assert!(
            matches!(o.status, Some(202 | 503)),
            "only 202 or 503 under a broker restart: {o:?}"
        );
    }
    let accepted = accepted_ids(&outcomes);
    assert_exactly_once(&kafka.bootstrap, &accepted);
    let m = scrape(gw.admin);
    assert_eq!(
        m.sum("sluice_divert_requests_total", &[("outcome", "accepted")]),
        accepted.len() as f64
    );
}

#[test]
fn a_broker_that_lost_its_disk_gets_202s_again_without_restarting_sluice() {
    let mut kafka = Kafka::start();
    kafka.create_topic("orders", 1);
    let gw = gateway(&kafka, "");
    let load = Load::start(gw.port, 2, Duration::from_millis(5), planned_post);
    wait_for("202s under load", Duration::from_secs(60), || {
        (accepted_ids(&load.snapshot()).len() > 100).then_some(())
    });
    // Every topic, offset and producer id is gone: the idempotent producer's sequence
    // numbers mean nothing to the new broker.
    kafka.wipe_and_restart();
    kafka.create_topic("orders", 1);
    let back = std::time::Instant::now();
    let seen = load.count();
    let recovered = wait_for(
        "a 202 after the wiped broker came back",
        Duration::from_secs(60),
        || {
            let s = load.snapshot();
            (accepted_ids(&s[seen.min(s.len())..]).len() >= 20).then_some(back.elapsed())
        },
    );
    let outcomes = load.stop();
    eprintln!("202s again {recovered:?} after the wiped broker answered");
    // 202s answered after the wipe name records of the new broker's topic.
    let after = accepted_ids(&outcomes);
    let records = read_topic(
        &kafka.bootstrap,
        "orders",
        1,
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    let in_topic: HashSet<String> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    let acknowledged_by_new = after.iter().filter(|id| in_topic.contains(*id)).count();
    assert!(acknowledged_by_new >= 20, "{acknowledged_by_new}");
}
