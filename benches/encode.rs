//! kafka-logger event encoding: the JSON entry and record headers of one exchange,
//! without and with 1 KiB bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, Criterion};
use pingora_http::{RequestHeader, ResponseHeader};
use sluice_plugin_kafka_logger::capture::Captured;
use sluice_plugin_kafka_logger::config::{default_redact, default_redact_query, Format};
use sluice_plugin_kafka_logger::encoder::{encode_entry, record_headers, EncodeOptions, Exchange};

fn bench(c: &mut Criterion) {
    let mut req = RequestHeader::build("POST", b"/api/orders/42?expand=items", None).unwrap();
    for (k, v) in [
        ("host", "api.example.com"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("authorization", "Bearer abc.def.ghi"),
        ("x-tenant", "acme"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ] {
        req.append_header(k, v).unwrap();
    }
    let mut resp = ResponseHeader::build(201, None).unwrap();
    resp.append_header("content-type", "application/json")
        .unwrap();
    resp.append_header("content-length", "1024").unwrap();
    let body = Captured {
        bytes: vec![b'x'; 1024],
        truncated: false,
    };
    for (name, format, with_body) in [
        ("json_no_body", Format::Json, false),
        ("json_1k_bodies", Format::Json, true),
        ("cloudevents_no_body", Format::Cloudevents, false),
    ] {
        let opts = EncodeOptions {
            redact: default_redact(),
            redact_query: default_redact_query(),
            include_headers: true,
            format,
            ce_type: "io.sluice.http.exchange".into(),
            ce_source: "/routes/orders".into(),
        };
        let x = Exchange {
            id: "01a21cdb-b03f-76d5-8bd6-a508df2282c1",
            started_at: SystemTime::now(),
            route_id: "orders",
            request_id: "53391418-9c4f-4098-af8f-7237a14e6b2b",
            client_ip: Some("192.0.2.10".parse().unwrap()),
            consumer: None,
            credentials: &Default::default(),
            request: &req,
            request_size: 1024,
            request_body: with_body.then_some(&body),
            response: Some(&resp),
            response_size: 1024,
            response_body: with_body.then_some(&body),
            upstream: Some("10.0.0.5:8080"),
            error: None,
            total_seconds: 0.0042,
            upstream_seconds: Some(0.0031),
        };
        c.bench_function(&format!("encode_{name}"), |b| {
            b.iter(|| {
                let v = encode_entry(black_box(&x), &opts);
                let h = record_headers(black_box(&x), &opts);
                v.len() + h.len()
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
