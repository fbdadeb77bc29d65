//! Forwarding headers are believed only from `server.trusted_proxies`. Behind a trusted
//! balancer, limits and upstream headers use the forwarded client address; from anyone
//! else, `X-Forwarded-For`, `-Proto` and `-Host` are replaced, so a client cannot
//! dodge a per-address limit or pose as another host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::origin::Origin;

fn gateway(origin: &Origin, trusted: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s, trusted_proxies: [{trusted}] }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
upstreams:
  origin: {{ nodes: ["127.0.0.1:{}"] }}
routes:
  - id: api
    match: {{ paths: ["/api/*"] }}
    upstream: origin
    plugins:
      limit-count: {{ count: 2, time_window: 1h, key: remote_addr }}
"#,
        origin.port
    ))
}

fn get(gw: &Gateway, xff: &str) -> u16 {
    let headers = [
        ("x-forwarded-for", xff),
        ("x-forwarded-host", "admin.internal"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-prefix", "/admin"),
        ("forwarded", "for=6.6.6.6;host=admin.internal"),
        ("x-real-ip", "6.6.6.6"),
        ("x-original-url", "/admin/secret"),
        ("host", "shop.example"),
    ];
    request(gw.port, "GET", "/api/x", &headers, b"").status
}

#[test]
fn untrusted_peers_cannot_choose_their_address_or_host() {
    let origin = Origin::start();
    let gw = gateway(&origin, "");
    // Three different claimed addresses from one peer share the peer's quota.
    let got: Vec<u16> = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .iter()
        .map(|x| get(&gw, x))
        .collect();
    assert_eq!(got, [200, 200, 429]);
    let s = &origin.seen()[0];
    assert_eq!(s.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(s.header("x-forwarded-host"), Some("shop.example"));
    assert_eq!(s.header("x-forwarded-proto"), Some("http"));
    for gone in [
        "x-forwarded-prefix",
        "forwarded",
        "x-real-ip",
        "x-original-url",
    ] {
        assert_eq!(s.header(gone), None, "{gone} from an untrusted peer");
    }
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_client_counts() {
    let origin = Origin::start();
    let gw = gateway(&origin, "\"127.0.0.0/8\"");
    // Each forwarded client has its own quota; the spoofable left part of the header
    // (before the address the trusted proxy appended) does not matter.
    let a = [
        "6.6.6.6, 198.51.100.1",
        "7.7.7.7, 198.51.100.1",
        "198.51.100.1",
    ];
    let got: Vec<u16> = a.iter().map(|x| get(&gw, x)).collect();
    assert_eq!(got, [200, 200, 429], "one client behind the balancer");
    assert_eq!(get(&gw, "198.51.100.2"), 200, "another client");
    let s = &origin.seen()[0];
    assert_eq!(
        s.header("x-forwarded-for"),
        Some("6.6.6.6, 198.51.100.1, 127.0.0.1")
    );
    assert_eq!(s.header("x-forwarded-host"), Some("admin.internal"));
    assert_eq!(s.header("x-forwarded-proto"), Some("https"));
    assert_eq!(s.header("x-forwarded-prefix"), Some("/admin"));
    assert_eq!(s.header("x-original-url"), None, "never forwarded");
}
