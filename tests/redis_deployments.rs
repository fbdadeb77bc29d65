//! The shared store in the deployments other than one plain server: Redis with TLS
//! only (the server's certificate verified: the wrong CA fails every operation, the
//! right one works) and a three-node Redis Cluster (three `sluice` processes share
//! twelve tenants' quotas exactly; the counters land on every node).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_e2e::client::get;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::metrics::scrape;
use sluice_e2e::redis::{Redis, RedisCluster};

#[test]
fn tls_to_redis_verifies_the_server() {
    let redis = Redis::start_tls();
    let cert = redis.ca.clone().unwrap();
    // A CA that did not sign the server's certificate.
    let other =
        sluice_e2e::certs::certificate(&sluice_e2e::scratch_dir("other-ca"), "other.test").0;
    let yaml = |ca: &str| {
        format!(
            r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
redis: {{ address: "{}", timeout: 500ms, connect_timeout: 500ms, tls: {{ ca_file: "{ca}" }} }}
routes:
  - id: closed
    match: {{ paths: ["/closed"] }}
    plugins:
      limit-count: {{ policy: redis, count: 2, time_window: 1h, key: route, on_store_error: deny }}
      mocking: {{ status: 200, body: "ok" }}
"#,
            redis.address()
        )
    };
    // The wrong CA: the handshake fails; the route denies, counted.
    let gw = Gateway::start(&yaml(&other));
    let r = get(gw.port, "/closed");
    assert_eq!(r.status, 503, "{}", r.text());
    let m = scrape(gw.admin);
    assert!(
        m.sum(
            "sluice_store_errors_total",
            &[("plugin", "limit-count"), ("kind", "connection")]
        ) >= 1.0
    );
    assert_eq!(get(gw.admin, "/readyz").json()["redis"]["answering"], false);
    drop(gw);
    // The right CA: limits work over TLS.
    let gw = Gateway::start(&yaml(&cert));
    let statuses: Vec<u16> = (0..3).map(|_| get(gw.port, "/closed").status).collect();
    assert_eq!(statuses, [200, 200, 429]);
}

#[test]
fn three_instances_share_quotas_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3);
    let nodes: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("\"{}\"", n.address()))
        .collect();
    let yaml = format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
redis: {{ cluster: [{}], timeout: 500ms, connect_timeout: 500ms }}
routes:
  - id: tenants
    match: {{ paths: ["/tenants"] }}
    plugins:
      limit-count: {{ policy: redis, count: 4, time_window: 1h, key: "{{header.x-tenant}}" }}
      mocking: {{ status: 200, body: "ok" }}
"#,
        nodes[..1].join(", ")
    );
    let gateways: Vec<Gateway> = (0..3).map(|_| Gateway::start(&yaml)).collect();
    // Twelve tenants, so that their counters land on every node; each tenant sends 9
    // requests spread over the three instances, all at once.
    let accepted: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|t| {
                let ports: Vec<u16> = gateways.iter().map(|g| g.port).collect();
                s.spawn(move || {
                    let tenant = format!("tenant-{t}");
                    (0..9)
                        .filter(|i| {
                            let r = sluice_e2e::client::request(
                                ports[i % 3],
                                "GET",
                                "/tenants",
                                &[("x-tenant", &tenant)],
                                b"",
                            );
                            r.status == 200
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(accepted, vec![4; 12], "exactly the quota per tenant");
    let per_node: Vec<usize> = cluster
        .nodes
        .iter()
        .map(|n| n.key_count("sluice:limit-count:tenants:*"))
        .collect();
    assert_eq!(per_node.iter().sum::<usize>(), 12, "{per_node:?}");
    assert!(
        per_node.iter().all(|n| *n > 0),
        "counters on every node: {per_node:?}"
    );
}
