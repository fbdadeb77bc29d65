//! Upstream selection with the real binary: active health checks keep traffic off a
//! dead node, and consistent hashing pins a key to one node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use sluice_e2e::client::request;
use sluice_e2e::free_port;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::metrics::scrape;
use sluice_e2e::origin::Origin;

/// A gateway with one route `/*` to the upstream defined by `upstream` (YAML flow map).
fn gateway(name: &str, upstream: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
upstreams:
  {name}: {upstream}
routes:
  - id: {name}
    match: {{ paths: ["/*"] }}
    upstream: {name}
"#
    ))
}

#[test]
fn health_checks_keep_traffic_off_a_dead_node() {
    let origin = Origin::start();
    let dead = free_port();
    let gw = gateway(
        "pair",
        &format!(
            "{{ nodes: [\"127.0.0.1:{dead}\", \"127.0.0.1:{}\"], retries: 0, health_check: {{ kind: tcp, interval: 100ms }} }}",
            origin.port
        ),
    );
    // Give the first checks time to run (they mark the dead node down).
    std::thread::sleep(Duration::from_millis(600));
    let before = scrape(gw.admin).sum("sluice_upstream_errors_total", &[("route", "pair")]);
    for i in 0..20 {
        let r = request(gw.port, "GET", &format!("/x/{i}"), &[], b"");
        assert_eq!(
            r.status,
            200,
            "request {i} went to the dead node: {}",
            r.text()
        );
    }
    let after = scrape(gw.admin).sum("sluice_upstream_errors_total", &[("route", "pair")]);
    assert_eq!(after, before, "no attempt reached the dead node");
}

#[test]
fn without_health_checks_round_robin_hits_the_dead_node() {
    // The control for the test above: the same setup without checks fails half the time.
    let origin = Origin::start();
    let dead = free_port();
    let gw = gateway(
        "pair",
        &format!(
            "{{ nodes: [\"127.0.0.1:{dead}\", \"127.0.0.1:{}\"], retries: 0 }}",
            origin.port
        ),
    );
    let failures = (0..20)
        .filter(|i| request(gw.port, "GET", &format!("/x/{i}"), &[], b"").status == 502)
        .count();
    assert_eq!(failures, 10, "round robin over one dead and one live node");
}

#[test]
fn consistent_hashing_pins_a_key_to_one_node() {
    let (a, b) = (Origin::start(), Origin::start());
    let gw = gateway(
        "users",
        &format!(
            "{{ nodes: [\"127.0.0.1:{}\", \"127.0.0.1:{}\"], balance: consistent_hash, hash_key: \"{{header.x-user}}\" }}",
            a.port, b.port
        ),
    );
    for i in 0..10 {
        assert_eq!(
            request(
                gw.port,
                "GET",
                &format!("/alice/{i}"),
                &[("X-User", "alice")],
                b""
            )
            .status,
            200
        );
    }
    let (na, nb) = (a.seen().len(), b.seen().len());
    assert!(
        na == 10 && nb == 0 || na == 0 && nb == 10,
        "alice was spread: {na} / {nb}"
    );
    for u in 0..40 {
        let user = format!("user-{u}");
        assert_eq!(
            request(gw.port, "GET", "/u", &[("X-User", &user)], b"").status,
            200
        );
    }
    assert!(
        a.seen().len() > na && b.seen().len() > nb,
        "different keys use both nodes"
    );
    let users_on = |o: &Origin| -> HashSet<String> {
        o.seen()
            .iter()
            .filter_map(|s| s.header("x-user").map(String::from))
            .collect()
    };
    assert!(
        users_on(&a).is_disjoint(&users_on(&b)),
        "each user stays on one node"
    );
}
