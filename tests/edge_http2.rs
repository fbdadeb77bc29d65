//! HTTP/2 has its own limits: one connection cannot carry more concurrent requests than
//! `http2_max_concurrent_streams` (the rest are refused with `REFUSED_STREAM` and
//! counted), and a header block trickled byte by byte is cut at `header_timeout` like an
//! HTTP/1 header. The client is `tests/tools/h2probe.py`, raw frames over TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use sluice_e2e::certs::certificate;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::metrics::scrape;
use sluice_e2e::origin::Origin;
use sluice_e2e::{free_port, scratch_dir, wait_for};

fn gateway(origin: &Origin, https: u16) -> Gateway {
    let dir = scratch_dir("h2");
    let (cert, key) = certificate(&dir, "localhost");
    Gateway::start(&format!(
        r#"
server:
  listen: ["127.0.0.1:{{PORT}}"]
  grace_period: 1s
  limits: {{ header_timeout: 1s, http2_max_concurrent_streams: 4 }}
  tls:
    listen: ["127.0.0.1:{https}"]
    certificates: [{{ cert: "{cert}", key: "{key}" }}]
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
upstreams:
  origin: {{ nodes: ["127.0.0.1:{}"] }}
routes:
  - id: api
    match: {{ paths: ["/api/*", "/slow/*"] }}
    upstream: origin
"#,
        origin.port
    ))
}

/// Run the probe; its one output line as `key=value` pairs.
fn probe(args: &[&str]) -> Vec<(String, String)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/h2probe.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 (scripts/ensure-deps --test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "h2probe {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn value(kv: &[(String, String)], key: &str) -> String {
    kv.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[test]
fn one_connection_carries_at_most_the_stream_limit() {
    let origin = Origin::start();
    let https = free_port();
    let gw = gateway(&origin, https);
    // Ten requests at once, each held 1.5 s by the origin: four are served.
    let kv = probe(&[&https.to_string(), "streams", "10", "/slow/1500"]);
    assert_eq!(value(&kv, "ok"), "4", "{kv:?}");
    assert_eq!(value(&kv, "refused"), "6", "{kv:?}");
    assert_eq!(origin.seen().len(), 4);
    wait_for("refusals counted", Duration::from_secs(10), || {
        let n = scrape(gw.admin).sum(
            "sluice_http_rejections_total",
            &[("reason", "http2_stream_limit")],
        );
        (n == 6.0).then_some(())
    });
}

#[test]
fn a_trickled_http2_header_block_is_cut_at_the_deadline() {
    let origin = Origin::start();
    let https = free_port();
    let gw = gateway(&origin, https);
    // About 7 s of header bytes against a 1 s deadline.
    let kv = probe(&[&https.to_string(), "trickle", "20"]);
    assert_eq!(value(&kv, "closed"), "1", "{kv:?}");
    assert_eq!(value(&kv, "response"), "0", "{kv:?}");
    assert!(origin.seen().is_empty());
    wait_for("header_timeout counted", Duration::from_secs(10), || {
        let n = scrape(gw.admin).sum(
            "sluice_http_rejections_total",
            &[("reason", "header_timeout")],
        );
        (n == 1.0).then_some(())
    });
    // A client that negotiates h2 and never sends the preface is cut too.
    let kv = probe(&[&https.to_string(), "silent", "20"]);
    assert_eq!(value(&kv, "closed"), "1", "{kv:?}");
    wait_for(
        "both header timeouts counted",
        Duration::from_secs(10),
        || {
            let n = scrape(gw.admin).sum(
                "sluice_http_rejections_total",
                &[("reason", "header_timeout")],
            );
            (n == 2.0).then_some(())
        },
    );
    // A prompt HTTP/2 client is served on the same listener.
    let kv = probe(&[&https.to_string(), "streams", "2", "/api/ok"]);
    assert_eq!(value(&kv, "ok"), "2", "{kv:?}");
}
