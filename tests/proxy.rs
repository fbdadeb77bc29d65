//! The proxy path with the real binary and a real origin: routing answers, forwarding
//! headers, request ids, upstream failures (502/504) and retries on another node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_e2e::client::{get, request};
use sluice_e2e::free_port;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::metrics::wait_sum;
use sluice_e2e::origin::Origin;

fn gateway(origin: u16, extra_upstreams: &str, extra_routes: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], threads: 2, grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
upstreams:
  origin:
    nodes: ["127.0.0.1:{origin}"]
    read_timeout: 500ms
{extra_upstreams}
routes:
  - id: api
    match: {{ paths: ["/api/*", "/status/*", "/slow/*"], methods: [GET, POST, PUT, DELETE] }}
    upstream: origin
  - id: only-get
    match: {{ paths: ["/only-get"], methods: [GET] }}
    upstream: origin
{extra_routes}
"#
    ))
}

#[test]
fn unmatched_requests_get_json_404_and_405() {
    let origin = Origin::start();
    let gw = gateway(origin.port, "", "");
    let r = get(gw.port, "/nowhere");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["status"], 404);
    assert!(r.header("x-request-id").is_some());
    let r = request(gw.port, "DELETE", "/only-get", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    let r = get(gw.port, "/api/a%2Fb");
    assert_eq!(r.status, 400, "an encoded slash");
    assert!(
        origin.seen().is_empty(),
        "the origin must not see rejected requests"
    );
    let m = wait_sum(gw.admin, "sluice_http_requests_total", &[], 3.0);
    assert_eq!(
        m.sum(
            "sluice_http_requests_total",
            &[("route", "_none"), ("status", "404")]
        ),
        1.0
    );
}

#[test]
fn proxies_with_forwarding_headers_and_request_id() {
    let origin = Origin::start();
    let gw = gateway(origin.port, "", "");
    let r = request(
        gw.port,
        "POST",
        "/api/orders?x=1",
        &[
            ("Host", "shop.example"),
            ("Connection", "X-Hop"),
            ("X-Hop", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
        b"{\"item\":\"tea\"}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body"], "{\"item\":\"tea\"}");
    let rid = r.header("x-request-id").unwrap().to_string();
    assert_eq!(rid.len(), 36);
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, "POST");
    assert_eq!(s.url, "/api/orders?x=1");
    assert_eq!(s.header("host"), Some("shop.example"));
    // The client is not a trusted proxy: its X-Forwarded-For is replaced.
    assert_eq!(s.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(s.header("x-forwarded-proto"), Some("http"));
    assert_eq!(s.header("x-request-id"), Some(rid.as_str()));
    assert_eq!(
        s.header("x-hop"),
        None,
        "Connection-listed headers are hop-by-hop"
    );
    assert_eq!(s.header("keep-alive"), None);
    // A client-provided request id is kept.
    let r = request(
        gw.port,
        "GET",
        "/api/x",
        &[("X-Request-Id", "client-id-1")],
        b"",
    );
    assert_eq!(r.header("x-request-id"), Some("client-id-1"));
    assert_eq!(origin.seen()[1].header("x-request-id"), Some("client-id-1"));
    let m = wait_sum(gw.admin, "sluice_http_requests_total", &[], 2.0);
    assert_eq!(
        m.sum(
            "sluice_http_requests_total",
            &[("route", "api"), ("method", "POST"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        m.sum(
            "sluice_upstream_duration_seconds_count",
            &[("route", "api")]
        ),
        2.0
    );
}

#[test]
fn origin_statuses_pass_through() {
    let origin = Origin::start();
    let gw = gateway(origin.port, "", "");
    for code in [201u16, 404, 500, 503] {
        let r = get(gw.port, &format!("/status/{code}"));
        assert_eq!(r.status, code);
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "the origin's body, not ours"
        );
    }
}

#[test]
fn upstream_failures_are_502_and_504_json() {
    let origin = Origin::start();
    let dead = free_port();
    let gw = gateway(
        origin.port,
        &format!("  dead:\n    nodes: [\"127.0.0.1:{dead}\"]\n    retries: 0\n"),
        "  - id: dead\n    match: { paths: [\"/dead\"] }\n    upstream: dead\n",
    );
    let r = get(gw.port, "/dead");
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["detail"], "the upstream refused the connection");
    let r = get(gw.port, "/slow/3000");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        r.elapsed < Duration::from_millis(2500),
        "read_timeout is 500ms, took {:?}",
        r.elapsed
    );
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let m = wait_sum(gw.admin, "sluice_http_requests_total", &[], 2.0);
    assert_eq!(
        m.sum(
            "sluice_upstream_errors_total",
            &[("route", "dead"), ("kind", "connect_refused")]
        ),
        1.0
    );
    assert!(
        m.sum(
            "sluice_upstream_errors_total",
            &[("route", "api"), ("kind", "read_timeout")]
        ) >= 1.0
    );
    assert_eq!(
        m.sum(
            "sluice_http_requests_total",
            &[("route", "dead"), ("status", "502")]
        ),
        1.0
    );
    assert_eq!(
        m.sum(
            "sluice_http_requests_total",
            &[("route", "api"), ("status", "504")]
        ),
        1.0
    );
}

#[test]
fn connection_failures_are_retried_on_the_next_node() {
    let origin = Origin::start();
    let dead = free_port();
    let gw = gateway(
        origin.port,
        &format!(
            "  pair:\n    nodes: [\"127.0.0.1:{dead}\", \"127.0.0.1:{}\"]\n",
            origin.port
        ),
        "  - id: pair\n    match: { paths: [\"/pair/*\"] }\n    upstream: pair\n",
    );
    for i in 0..6 {
        let method = if i % 2 == 0 { "GET" } else { "POST" };
        let r = request(gw.port, method, &format!("/pair/{i}"), &[], b"x");
        assert_eq!(r.status, 200, "{method} /pair/{i}: {}", r.text());
    }
    assert_eq!(origin.seen().len(), 6);
    let m = wait_sum(gw.admin, "sluice_http_requests_total", &[], 6.0);
    assert!(
        m.sum(
            "sluice_upstream_errors_total",
            &[("route", "pair"), ("kind", "connect_refused")]
        ) >= 1.0
    );
}
