//! kafka-request-reply end to end: the real binary, Apache Kafka, and a responder service
//! written here with plain librdkafka (it consumes the request topic and produces replies
//! to the topic named in `sluice-reply-to`, with the request's correlation id). A request
//! gets its own reply (status, headers, body); a late reply is a `504` then counted
//! `late`; a duplicate is counted and changes nothing; `Prefer: respond-async` gives a
//! `202` and a status URL that turns into the reply; two instances each get their own
//! replies although every reply is read by both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::Kafka;
use sluice_e2e::metrics::wait_sum;
use sluice_e2e::wait_for;

const WAIT: Duration = Duration::from_secs(60);

/// The responder: answers each request by what its body asks (`echo`, `late`, `dup`,
/// `never`), until dropped.
struct Responder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn responder(bootstrap: &str, topic: &str, partitions: i32) -> Responder {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "responder")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut later = Vec::new();
        while !stopping.load(Ordering::Acquire) {
            p.poll(Duration::ZERO);
            let now = std::time::Instant::now();
            for (at, reply) in std::mem::take(&mut later) {
                if now >= at {
                    send(&p, reply);
                } else {
                    later.push((at, reply));
                }
            }
            let Some(Ok(m)) = c.poll(Duration::from_millis(50)) else {
                continue;
            };
            let header = |n: &str| {
                m.headers()
                    .and_then(|h| h.iter().find(|x| x.key == n).and_then(|x| x.value))
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            let body = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            let reply = (
                header("sluice-reply-to"),
                header("sluice-correlation-id"),
                body.clone(),
            );
            match body.split(':').next().unwrap_or("") {
                "late" => later.push((now + Duration::from_millis(2500), reply)),
                "dup" => {
                    send(&p, reply.clone());
                    send(&p, reply);
                }
                "never" => {}
                _ => send(&p, reply),
            }
        }
        p.flush(Duration::from_secs(10)).unwrap();
    });
    Responder {
        stop,
        thread: Some(thread),
    }
}

/// Reply to `(topic, correlation id, request body)`: `201`, JSON, the body echoed.
fn send(p: &BaseProducer, (topic, id, body): (String, String, String)) {
    let value = format!("{{\"echo\":\"{body}\"}}");
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "sluice-correlation-id",
            value: Some(id.as_str()),
        })
        .insert(Header {
            key: "sluice-status",
            value: Some("201"),
        })
        .insert(Header {
            key: "content-type",
            value: Some("application/json"),
        })
        .insert(Header {
            key: "x-responder",
            value: Some("test"),
        });
    let record = BaseRecord::<str, str>::to(&topic)
        .key(id.as_str())
        .payload(value.as_str())
        .headers(headers);
    p.send(record).map_err(|(e, _)| e).unwrap();
    p.flush(Duration::from_secs(10)).unwrap();
}

fn config(kafka: &Kafka) -> String {
    format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{}"] }} }} }}
routes:
  - id: rr
    match: {{ paths: ["/quote"], methods: [GET, POST] }}
    plugins:
      kafka-request-reply: {{ topic: rr-requests, reply_topic: rr-replies, timeout: 1500ms, forward_headers: [x-tenant] }}
  - id: no-replies
    match: {{ paths: ["/nowhere"], methods: [POST] }}
    plugins:
      kafka-request-reply: {{ topic: rr-requests, reply_topic: rr-missing, timeout: 1500ms }}
"#,
        kafka.bootstrap
    )
}

fn setup() -> (Kafka, Responder) {
    let kafka = Kafka::start();
    kafka.create_topic("rr-requests", 2);
    kafka.create_topic("rr-replies", 2);
    let r = responder(&kafka.bootstrap, "rr-requests", 2);
    (kafka, r)
}

#[test]
fn a_request_gets_its_reply_and_late_or_duplicate_replies_are_counted() {
    let (kafka, _responder) = setup();
    let gw = Gateway::start(&config(&kafka));
    let r = request(
        gw.port,
        "POST",
        "/quote",
        &[("x-tenant", "acme")],
        b"echo:1",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["echo"], "echo:1");
    assert_eq!(r.header("x-responder"), Some("test"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r
        .header("x-correlation-id")
        .is_some_and(|id| id.len() == 36));

    let late = request(gw.port, "POST", "/quote", &[], b"late:1");
    assert_eq!(late.status, 504, "{}", late.text());
    wait_sum(
        gw.admin,
        "sluice_request_reply_unmatched_total",
        &[("route", "rr"), ("reason", "late")],
        1.0,
    );

    let dup = request(gw.port, "POST", "/quote", &[], b"dup:1");
    assert_eq!(dup.status, 201);
    assert_eq!(dup.json()["echo"], "dup:1");
    let s = wait_sum(
        gw.admin,
        "sluice_request_reply_unmatched_total",
        &[("route", "rr"), ("reason", "duplicate")],
        1.0,
    );
    assert_eq!(
        s.sum(
            "sluice_request_reply_requests_total",
            &[("route", "rr"), ("outcome", "replied")]
        ),
        2.0
    );
    assert_eq!(
        s.sum(
            "sluice_request_reply_requests_total",
            &[("route", "rr"), ("outcome", "timeout")]
        ),
        1.0
    );
    assert_eq!(
        s.sum("sluice_request_reply_pending", &[("route", "rr")]),
        0.0
    );
}

#[test]
fn respond_async_gives_a_status_url_that_turns_into_the_reply() {
    let (kafka, _responder) = setup();
    let gw = Gateway::start(&config(&kafka));
    let accepted = request(
        gw.port,
        "POST",
        "/quote",
        &[("prefer", "respond-async")],
        b"echo:async",
    );
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    assert_eq!(accepted.header("preference-applied"), Some("respond-async"));
    let location = accepted.header("location").unwrap().to_string();
    assert!(location.starts_with("/quote?reply_id="), "{location}");
    let done = wait_for("the reply behind the status URL", WAIT, || {
        let r = request(gw.port, "GET", &location, &[], b"");
        (r.status != 202).then_some(r)
    });
    assert_eq!(done.status, 201);
    assert_eq!(done.json()["echo"], "echo:async");
    let never = request(
        gw.port,
        "POST",
        "/quote",
        &[("prefer", "respond-async")],
        b"never:1",
    );
    let pending = request(gw.port, "GET", never.header("location").unwrap(), &[], b"");
    assert_eq!(pending.status, 202);
    assert_eq!(pending.header("retry-after"), Some("1"));
    let unknown = request(gw.port, "GET", "/quote?reply_id=nope", &[], b"");
    assert_eq!(unknown.status, 404);

    // A pending asynchronous request survives a reload (the route keeps its table).
    let slow = request(
        gw.port,
        "POST",
        "/quote",
        &[("prefer", "respond-async")],
        b"late:reload",
    );
    let location = slow.header("location").unwrap().to_string();
    let more = config(&kafka) + "  - { id: other, match: { paths: [\"/other\"] }, plugins: { mocking: { status: 204 } } }\n";
    gw.reload(&more, 1.0);
    let done = wait_for("the reply after the reload", WAIT, || {
        let r = request(gw.port, "GET", &location, &[], b"");
        (r.status != 202).then_some(r)
    });
    assert_eq!(done.status, 201, "{}", done.text());

    // A reply topic that cannot be read: 503 at once, and again at once (no new attempt).
    for _ in 0..2 {
        let r = request(gw.port, "POST", "/nowhere", &[], b"echo:x");
        assert_eq!(r.status, 503);
    }
    let s = sluice_e2e::metrics::scrape(gw.admin);
    assert_eq!(
        s.sum(
            "sluice_http_rejections_total",
            &[("route", "no-replies"), ("reason", "replies_unavailable")]
        ),
        2.0
    );
}

#[test]
fn two_instances_each_get_their_own_replies_and_answer_each_others_status_urls() {
    let (kafka, _responder) = setup();
    let a = Gateway::start(&config(&kafka));
    let b = Gateway::start(&config(&kafka));
    for i in 0..6 {
        for (name, gw) in [("b", &b), ("a", &a)] {
            let body = format!("echo:{name}-{i}");
            let r = request(gw.port, "POST", "/quote", &[], body.as_bytes());
            assert_eq!(r.status, 201, "{}", r.text());
            assert_eq!(r.json()["echo"], body.as_str(), "its own reply");
        }
    }
    // Each instance read the other's replies and left them alone: b's reader started
    // (at its first request) before a's first reply, a's after b's first reply.
    for (gw, other) in [(&a, 5.0), (&b, 6.0)] {
        wait_sum(
            gw.admin,
            "sluice_request_reply_unmatched_total",
            &[("route", "rr"), ("reason", "other")],
            other,
        );
    }

    // An asynchronous request taken by a: its status URL answers on b (pending, then the
    // reply b read), and on an instance started after the reply came (it reads back).
    let slow = request(
        a.port,
        "POST",
        "/quote",
        &[("prefer", "respond-async")],
        b"late:shared",
    );
    assert_eq!(slow.status, 202, "{}", slow.text());
    let location = slow.header("location").unwrap().to_string();
    let pending = request(b.port, "GET", &location, &[], b"");
    assert_eq!(pending.status, 202, "pending on b: {}", pending.text());
    let done = wait_for("the reply on b", WAIT, || {
        let r = request(b.port, "GET", &location, &[], b"");
        (r.status != 202).then_some(r)
    });
    assert_eq!(done.status, 201, "{}", done.text());
    assert_eq!(done.json()["echo"], "late:shared");
    let on_a = request(a.port, "GET", &location, &[], b"");
    assert_eq!((on_a.status, on_a.body.clone()), (201, done.body.clone()));
    let c = Gateway::start(&config(&kafka));
    let done = wait_for("the reply on an instance started after it", WAIT, || {
        let r = request(c.port, "GET", &location, &[], b"");
        (r.status != 202).then_some(r)
    });
    assert_eq!(done.status, 201, "{}", done.text());
    assert_eq!(done.json()["echo"], "late:shared");
    // Replies read back at c's start are not counted as anyone's; an unknown id is 404.
    let s = sluice_e2e::metrics::scrape(c.admin);
    assert_eq!(
        s.sum(
            "sluice_request_reply_unmatched_total",
            &[("route", "rr"), ("reason", "other")]
        ),
        0.0
    );
    let unknown = request(c.port, "GET", "/quote?reply_id=nope", &[], b"");
    assert_eq!(unknown.status, 404);
}
