//! Client-controlled keys have a byte bound: a `limit-count` keyed by a header gets a
//! flood of distinct 30 KB keys. Memory stays flat (keys are stored as fixed-size
//! digests), and a client that keeps sending through the flood keeps its counter (the
//! full table evicts the least recently used keys, not an arbitrary one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::metrics::scrape;

#[test]
fn a_flood_of_long_distinct_keys_neither_grows_memory_nor_resets_a_client() {
    let gw = Gateway::start(
        r#"
server: { listen: ["127.0.0.1:{PORT}"], grace_period: 1s }
admin: { listen: "127.0.0.1:{ADMIN}" }
routes:
  - id: limited
    match: { paths: ["/limited"] }
    plugins:
      limit-count: { count: 5, time_window: 1h, key: "{header.x-client}", max_keys: 1000 }
      mocking: { status: 200, body: "ok" }
"#,
    );
    let call =
        |client: &str| request(gw.port, "GET", "/limited", &[("x-client", client)], b"").status;
    // Warm up (allocator arenas, connection handling), then measure.
    for i in 0..200 {
        call(&format!("warm-{i}"));
    }
    let before = gw.rss_kib();
    let pad = "k".repeat(30 * 1024);
    let (mut steady_ok, mut steady_limited) = (0, 0);
    for i in 0..3000 {
        assert_eq!(call(&format!("{i}-{pad}")), 200, "flood key {i}");
        if i % 50 == 0 {
            match call("steady-client") {
                200 => steady_ok += 1,
                429 => steady_limited += 1,
                s => panic!("steady client got {s}"),
            }
        }
    }
    let after = gw.rss_kib();
    assert_eq!(
        (steady_ok, steady_limited),
        (5, 55),
        "the steady client's counter survived the flood"
    );
    // 3000 keys of 30 KB are 90 MB of key bytes; the table holds 1000 digests.
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 16,
        "RSS grew {grown_mib} MiB ({before} -> {after} KiB)"
    );
    let m = scrape(gw.admin);
    assert_eq!(
        m.sum(
            "sluice_http_rejections_total",
            &[("route", "limited"), ("reason", "quota_exceeded")]
        ),
        55.0
    );
}
