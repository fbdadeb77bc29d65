//! kafka-logger end to end: the real binary, a real origin, and Apache Kafka (a broker
//! in its own process). N mixed requests through a logged route must become
//! exactly N records whose fields match what was sent, and `/metrics` must agree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka};
use sluice_e2e::metrics::{events, scrape, wait_sum};
use sluice_e2e::origin::Origin;
use sluice_e2e::wait_for;

const N: usize = 40;
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

struct Sent {
    method: &'static str,
    path: String,
    status: u16,
    body: String,
    tenant: String,
}

/// A gateway sending to `kafka`, proxying to `origin`, with these routes.
fn gateway(kafka: &Kafka, origin: &Origin, routes: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default: {{ brokers: ["{}"], linger: 1ms }}
upstreams:
  origin: {{ nodes: ["127.0.0.1:{}"] }}
routes:{routes}"#,
        kafka.bootstrap, origin.port
    ))
}

#[test]
fn every_logged_request_is_one_record_matching_what_was_sent() {
    let kafka = Kafka::start();
    kafka.create_topic("http-log", 3);
    let origin = Origin::start();
    let gw = gateway(
        &kafka,
        &origin,
        r#"
  - id: logged
    match: { paths: ["/api/*", "/status/*"] }
    upstream: origin
    plugins:
      kafka-logger:
        topic: http-log
        key: "{header.x-tenant}"
        include_req_body: true
        include_resp_body: true
        max_req_body_bytes: 64
  - id: quiet
    match: { paths: ["/quiet/*"] }
    upstream: origin
"#,
    );

    let mut sent: HashMap<String, Sent> = HashMap::new();
    for i in 0..N {
        let method = ["GET", "POST", "PUT", "DELETE"][i % 4];
        let status = [200u16, 201, 404, 500][i % 4];
        let path = if status == 200 {
            format!("/api/items/{i}?q={i}")
        } else {
            format!("/status/{status}?i={i}")
        };
        let body = if method == "POST" || method == "PUT" {
            if i % 8 == 1 {
                "x".repeat(100)
            } else {
                format!("{{\"n\":{i}}}")
            }
        } else {
            String::new()
        };
        let rid = format!("req-{i}");
        let tenant = format!("tenant-{}", i % 3);
        let mut headers = vec![
            ("X-Request-Id", rid.as_str()),
            ("X-Tenant", tenant.as_str()),
            ("Authorization", "Bearer top-secret"),
        ];
        if i % 5 == 0 {
            headers.push(("traceparent", TRACEPARENT));
        }
        let r = request(gw.port, method, &path, &headers, body.as_bytes());
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        sent.insert(
            rid,
            Sent {
                method,
                path,
                status,
                body,
                tenant,
            },
        );
    }
    // Unlogged traffic produces nothing.
    for i in 0..5 {
        assert_eq!(
            request(gw.port, "GET", &format!("/quiet/{i}"), &[], b"").status,
            200
        );
    }

    let records = read_topic(
        &kafka.bootstrap,
        "http-log",
        N,
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    assert_eq!(records.len(), N, "exactly one record per logged request");
    let mut ids = std::collections::HashSet::new();
    for rec in &records {
        let v = rec.json();
        let rid = v["request_id"].as_str().unwrap().to_string();
        let s = sent
            .get(&rid)
            .unwrap_or_else(|| panic!("record for an unknown request: {v}"));
        assert!(
            ids.insert(v["id"].as_str().unwrap().to_string()),
            "event ids are unique"
        );
        assert_eq!(v["route_id"], "logged");
        assert_eq!(v["client_ip"], "127.0.0.1");
        assert_eq!(v["request"]["method"], s.method);
        assert_eq!(v["request"]["uri"], s.path.as_str());
        assert_eq!(v["request"]["path"], s.path.split('?').next().unwrap());
        assert_eq!(v["response"]["status"], s.status);
        assert_eq!(v["request"]["size"], s.body.len());
        assert_eq!(v["request"]["headers"]["authorization"], "[REDACTED]");
        assert_eq!(v["response"]["headers"]["set-cookie"], "[REDACTED]");
        assert_eq!(v["request"]["headers"]["x-tenant"], s.tenant.as_str());
        let expect_body: String = s.body.chars().take(64).collect();
        assert_eq!(v["request"]["body"], expect_body.as_str());
        assert_eq!(v["request"]["body_truncated"], s.body.len() > 64);
        let echoed: serde_json::Value =
            serde_json::from_str(v["response"]["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            echoed["method"], s.method,
            "the response body is the origin's"
        );
        assert!(v["upstream"].as_str().unwrap().starts_with("127.0.0.1:"));
        let lat = &v["latency_seconds"];
        assert!(lat["total"].as_f64().unwrap() >= lat["upstream"].as_f64().unwrap());
        assert_eq!(
            rec.key.as_deref(),
            Some(s.tenant.as_bytes()),
            "key = {{header.x-tenant}}"
        );
        assert_eq!(
            rec.header("content-type").as_deref(),
            Some("application/json")
        );
        let n: usize = rid.trim_start_matches("req-").parse().unwrap();
        assert_eq!(
            rec.header("traceparent").as_deref(),
            n.is_multiple_of(5).then_some(TRACEPARENT)
        );
        assert!(
            rec.timestamp.unwrap() > 1_700_000_000_000,
            "CreateTime is set"
        );
        assert!(!String::from_utf8_lossy(&rec.value).contains("top-secret"));
    }
    // Same key, same partition.
    let mut by_key: HashMap<Vec<u8>, i32> = HashMap::new();
    for rec in &records {
        let p = *by_key
            .entry(rec.key.clone().unwrap())
            .or_insert(rec.partition);
        assert_eq!(p, rec.partition);
    }

    let m = wait_for("metrics to settle", Duration::from_secs(10), || {
        let m = scrape(gw.admin);
        (events(&m, "logged", "kafka-logger").4 == 0.0).then_some(m)
    });
    let (attempted, acked, failed, discarded, in_flight) = events(&m, "logged", "kafka-logger");
    assert_eq!(
        (attempted, acked, failed, discarded, in_flight),
        (N as f64, N as f64, 0.0, 0.0, 0.0)
    );
    assert_eq!(
        m.sum("sluice_http_requests_total", &[("route", "logged")]),
        N as f64
    );
    assert_eq!(
        m.sum(
            "sluice_http_requests_total",
            &[("route", "logged"), ("status", "500")]
        ),
        (N / 4) as f64
    );
    assert_eq!(
        m.sum("sluice_http_requests_total", &[("route", "quiet")]),
        5.0
    );
    assert_eq!(
        m.sum("sluice_kafka_events_attempted_total", &[("route", "quiet")]),
        0.0
    );
    assert_eq!(
        m.sum("sluice_kafka_broker_up", &[("cluster", "default")]),
        1.0
    );
    let log = gw.stop();
    assert!(
        log.contains("shutdown flush done (0 queued, 0 purged)"),
        "{log}"
    );
}

#[test]
fn cloudevents_format_sets_ce_headers() {
    let kafka = Kafka::start();
    kafka.create_topic("ce-log", 1);
    let origin = Origin::start();
    let gw = gateway(
        &kafka,
        &origin,
        r#"
  - id: ce
    match: { paths: ["/api/*"] }
    upstream: origin
    plugins:
      kafka-logger: { topic: "ce-{path.1}", topics_allowed: [ce-log], format: cloudevents }
"#,
    );
    // The topic template renders `ce-log` from the path.
    let r = request(
        gw.port,
        "GET",
        "/api/log",
        &[("traceparent", TRACEPARENT)],
        b"",
    );
    assert_eq!(r.status, 200);
    let records = read_topic(
        &kafka.bootstrap,
        "ce-log",
        1,
        Duration::from_millis(500),
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    let v = rec.json();
    assert_eq!(rec.header("ce_specversion").as_deref(), Some("1.0"));
    assert_eq!(rec.header("ce_id").as_deref(), v["id"].as_str());
    assert_eq!(rec.header("ce_source").as_deref(), Some("/routes/ce"));
    assert_eq!(
        rec.header("ce_type").as_deref(),
        Some("io.sluice.http.exchange")
    );
    assert_eq!(rec.header("ce_time").as_deref(), v["time"].as_str());
    assert_eq!(rec.header("ce_traceparent").as_deref(), Some(TRACEPARENT));
    assert_eq!(rec.key, None, "no key template: no key");
}

#[test]
fn big_bodies_are_cut_to_fit_the_record_not_dropped() {
    let kafka = Kafka::start();
    kafka.create_topic("audit-log", 1);
    let origin = Origin::start();
    let gw = gateway(
        &kafka,
        &origin,
        r#"
  - id: audited
    match: { paths: ["/api/*"] }
    upstream: origin
    plugins:
      kafka-logger: { topic: audit-log, include_req_body: true, include_resp_body: true }
"#,
    );
    // 512 KiB in, and the origin echoes it back (a larger JSON response): both bodies at
    // their 512 KiB caps are more than one record may hold.
    let body = "b".repeat(512 * 1024);
    let r = request(gw.port, "POST", "/api/upload", &[], body.as_bytes());
    assert_eq!(r.status, 200);
    assert!(r.body.len() > 512 * 1024);
    let records = read_topic(
        &kafka.bootstrap,
        "audit-log",
        1,
        Duration::from_millis(500),
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), 1, "the exchange is logged");
    let rec = &records[0];
    assert!(rec.value.len() <= 1_000_000, "{} bytes", rec.value.len());
    let v = rec.json();
    assert_eq!(v["request"]["body_truncated"], true);
    assert_eq!(v["response"]["body_truncated"], true);
    assert_eq!(v["request"]["size"], 512 * 1024);
    let kept = v["request"]["body"].as_str().unwrap();
    assert!(kept.len() > 200 * 1024 && kept.bytes().all(|b| b == b'b'));
    wait_sum(
        gw.admin,
        "sluice_kafka_events_total",
        &[("route", "audited"), ("outcome", "acked")],
        1.0,
    );
}

#[test]
fn bodies_are_logged_on_routes_a_plugin_answers() {
    let kafka = Kafka::start();
    kafka.create_topic("inbox-log", 1);
    let origin = Origin::start();
    let gw = gateway(
        &kafka,
        &origin,
        r#"
  - id: inbox
    match: { paths: ["/inbox"], methods: [POST] }
    plugins:
      mocking: { status: 204 }
      kafka-logger: { topic: inbox-log, include_req_body: true }
"#,
    );
    let r = request(gw.port, "POST", "/inbox", &[], b"{\"hello\":\"inbox\"}");
    assert_eq!(r.status, 204);
    let records = read_topic(
        &kafka.bootstrap,
        "inbox-log",
        1,
        Duration::from_millis(500),
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), 1);
    let v = records[0].json();
    assert_eq!(v["request"]["body"], "{\"hello\":\"inbox\"}");
    assert_eq!(v["request"]["size"], 17);
}
