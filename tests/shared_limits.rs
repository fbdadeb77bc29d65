//! `limit-count` and `limit-req` with `policy: redis`: three `sluice` processes and one
//! real `redis-server` behave as one gateway. Requests sent concurrently to all three
//! take exactly `count` units (fixed and sliding windows; each unit is handed out once)
//! or `1 + burst` from one leaky bucket (TLS and Redis Cluster: `redis_deployments.rs`).
//! A reload that keeps the `redis:` section keeps the connection; one that changes it
//! replaces it; the counters live on in Redis either way.
//! Redis killed, then frozen (`SIGSTOP`: connections accepted, nothing answered): each
//! route degrades as its `on_store_error` says, within `redis.timeout`, counted; and
//! limits hold again once Redis is back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use sluice_e2e::client::{get, Response};
use sluice_e2e::gateway::Gateway;
use sluice_e2e::metrics::{scrape, wait_sum};
use sluice_e2e::redis::Redis;
use sluice_e2e::wait_for;

fn config(redis: &Redis) -> String {
    format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
redis: {{ address: "{}", timeout: 300ms, connect_timeout: 300ms }}
routes:
  - id: fixed
    match: {{ paths: ["/fixed"] }}
    plugins:
      limit-count: {{ policy: redis, count: 10, time_window: 1h, key: route }}
      mocking: {{ status: 200, body: "ok" }}
  - id: sliding
    match: {{ paths: ["/sliding"] }}
    plugins:
      limit-count: {{ policy: redis, window_type: sliding, count: 7, time_window: 1h, key: route }}
      mocking: {{ status: 200, body: "ok" }}
  - id: bucket
    match: {{ paths: ["/bucket"] }}
    plugins:
      limit-req: {{ policy: redis, rate: 0.1, burst: 4, nodelay: true, key: route }}
      mocking: {{ status: 200, body: "ok" }}
  - id: open
    match: {{ paths: ["/open"] }}
    plugins:
      limit-count: {{ policy: redis, count: 2, time_window: 1h, key: route, on_store_error: allow }}
      mocking: {{ status: 200, body: "ok" }}
  - id: closed
    match: {{ paths: ["/closed"] }}
    plugins:
      limit-count: {{ policy: redis, count: 2, time_window: 1h, key: route, on_store_error: deny }}
      mocking: {{ status: 200, body: "ok" }}
"#,
        redis.address()
    )
}

/// `per` requests to `path` on each gateway, all gateways at once; the responses.
fn burst(gateways: &[Gateway], path: &str, per: usize) -> Vec<Response> {
    std::thread::scope(|s| {
        let handles: Vec<_> = gateways
            .iter()
            .map(|g| {
                let port = g.port;
                s.spawn(move || (0..per).map(|_| get(port, path)).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

#[test]
fn three_instances_share_one_quota() {
    let redis = Redis::start();
    let yaml = config(&redis);
    let gateways: Vec<Gateway> = (0..3).map(|_| Gateway::start(&yaml)).collect();

    let answers = burst(&gateways, "/fixed", 10);
    let ok: Vec<&Response> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 10, "exactly the quota across three instances");
    assert_eq!(answers.iter().filter(|r| r.status == 429).count(), 20);
    // Every unit was handed out once: the accepted requests saw 9, 8, ..., 0 remaining.
    let remaining: BTreeSet<u64> = ok
        .iter()
        .map(|r| r.header("ratelimit-remaining").unwrap().parse().unwrap())
        .collect();
    assert_eq!(remaining, (0..10).collect());
    for r in answers.iter().filter(|r| r.status == 429) {
        assert_eq!(r.header("ratelimit-remaining"), Some("0"));
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((3500..=3600).contains(&retry), "retry-after {retry}");
    }

    let answers = burst(&gateways, "/sliding", 7);
    assert_eq!(answers.iter().filter(|r| r.status == 200).count(), 7);
    assert_eq!(answers.iter().filter(|r| r.status == 429).count(), 14);

    // limit-req: one bucket drained at 0.1/s, so 1 + burst 4 pass, whoever asks.
    let answers = burst(&gateways, "/bucket", 5);
    assert_eq!(answers.iter().filter(|r| r.status == 200).count(), 5);
    assert_eq!(answers.iter().filter(|r| r.status == 429).count(), 10);
    for r in answers.iter().filter(|r| r.status == 429) {
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=10).contains(&retry), "retry-after {retry}");
    }
    assert_eq!(redis.key_count("sluice:limit-req:bucket:*"), 1);

    // The rejections are counted where they happened, 20 + 14 in all.
    let mut rejected = 0.0;
    for g in &gateways {
        rejected += scrape(g.admin).sum(
            "sluice_http_rejections_total",
            &[("reason", "quota_exceeded")],
        );
    }
    assert_eq!(rejected, 34.0);
    // One counter per route key in Redis, under the prefix.
    assert_eq!(redis.key_count("sluice:limit-count:fixed:*"), 1);
    assert_eq!(redis.key_count("sluice:limit-count:sliding:*"), 1);
}

#[test]
fn a_lost_or_frozen_store_degrades_as_configured_and_limits_return() {
    let mut redis = Redis::start();
    let gw = Gateway::start(&config(&redis));
    let statuses = |path: &str, n: usize| {
        (0..n)
            .map(|_| get(gw.port, path).status)
            .collect::<Vec<_>>()
    };
    assert_eq!(statuses("/open", 3), [200, 200, 429]);

    // Killed: connections are refused.
    redis.stop();
    let r = get(gw.port, "/open");
    assert_eq!(r.status, 200, "allow: the request goes on");
    assert_eq!(r.header("ratelimit-remaining"), None, "no quota to report");
    let r = get(gw.port, "/closed");
    assert_eq!(r.status, 503, "deny: {}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    let m = wait_sum(
        gw.admin,
        "sluice_http_rejections_total",
        &[("route", "closed"), ("reason", "limit_store_unavailable")],
        1.0,
    );
    assert!(m.sum("sluice_store_errors_total", &[("plugin", "limit-count")]) >= 2.0);
    // /readyz says so, and stays 200: each route's on_store_error decides.
    let ready = get(gw.admin, "/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["redis"]["answering"], false);

    // Back, empty: the limits hold again (the first request that gets through takes
    // the first unit).
    redis.restart();
    wait_for(
        "limit-count to reach Redis again",
        Duration::from_secs(30),
        || (get(gw.port, "/closed").status == 200).then_some(()),
    );
    assert_eq!(statuses("/closed", 3), [200, 429, 429]);
    assert_eq!(get(gw.admin, "/readyz").json()["redis"]["answering"], true);

    // Frozen: connections are accepted and nothing answers. Each request waits at
    // most `redis.timeout` (300 ms) before its route's degradation applies (the bound
    // below leaves room for a busy machine, not for a second wait).
    redis.signal(libc::SIGSTOP);
    let r = get(gw.port, "/closed");
    assert_eq!(r.status, 503);
    assert!(
        r.elapsed < Duration::from_millis(1500),
        "bounded: {:?}",
        r.elapsed
    );
    let r = get(gw.port, "/open");
    assert_eq!(r.status, 200);
    assert!(
        r.elapsed < Duration::from_millis(1500),
        "bounded: {:?}",
        r.elapsed
    );
    let m = scrape(gw.admin);
    assert!(
        m.sum(
            "sluice_store_errors_total",
            &[("plugin", "limit-count"), ("kind", "timeout")]
        ) >= 2.0
    );
    redis.signal(libc::SIGCONT);
    // The counter survived the freeze: /closed is still spent.
    wait_for("Redis to answer again", Duration::from_secs(30), || {
        (get(gw.port, "/closed").status == 429).then_some(())
    });
}

#[test]
fn the_shared_sliding_window_weighs_the_previous_window() {
    let redis = Redis::start();
    let gw = Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
redis: {{ address: "{}" }}
routes:
  - id: sliding
    match: {{ paths: ["/sliding"] }}
    plugins:
      limit-count: {{ policy: redis, window_type: sliding, count: 4, time_window: 2s, key: route }}
      mocking: {{ status: 200, body: "ok" }}
"#,
        redis.address()
    ));
    // Windows are aligned on Redis's clock. Fill one early in it, then ask a quarter
    // into the next; a machine too busy to catch that moment starts over (two windows
    // later the counter is empty again).
    let into = |ms: u64| ms % 2000;
    let statuses = |n: usize| {
        (0..n)
            .map(|_| get(gw.port, "/sliding").status)
            .collect::<Vec<_>>()
    };
    for attempt in 0.. {
        assert!(attempt < 5, "never caught the moment");
        let first = wait_for("the start of a window", Duration::from_secs(10), || {
            let t = redis.time_ms();
            (into(t) < 500).then_some(t / 2000)
        });
        if statuses(5) != [200, 200, 200, 200, 429] {
            continue; // the fill ran into the next window
        }
        // A quarter into the next window the previous window's 4 still weigh 3 (2
        // at half): one or two requests fit, not four (a fixed window would let 4
        // through) and not none (a previous window counted in full).
        let hit = wait_for(
            "a quarter into the next window",
            Duration::from_secs(10),
            || {
                let t = redis.time_ms();
                match (t / 2000).cmp(&(first + 1)) {
                    std::cmp::Ordering::Less => None,
                    std::cmp::Ordering::Equal if into(t) < 500 => None,
                    std::cmp::Ordering::Equal => Some(into(t) <= 700),
                    std::cmp::Ordering::Greater => Some(false),
                }
            },
        );
        if !hit {
            continue;
        }
        let ok = statuses(4).iter().filter(|s| **s == 200).count();
        assert!((1..=2).contains(&ok), "{ok} accepted");
        break;
    }
}

#[test]
fn a_reload_keeps_the_connection_and_the_counters() {
    let redis = Redis::start();
    let yaml = |timeout: &str, body: &str| {
        format!(
            r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
redis: {{ address: "{}", timeout: {timeout} }}
routes:
  - id: quota
    match: {{ paths: ["/quota"] }}
    plugins:
      limit-count: {{ policy: redis, count: 5, time_window: 1h, key: route }}
      mocking: {{ status: 200, body: "{body}" }}
"#,
            redis.address()
        )
    };
    let gw = Gateway::start(&yaml("300ms", "one"));
    let statuses = |n: usize| {
        (0..n)
            .map(|_| get(gw.port, "/quota").status)
            .collect::<Vec<_>>()
    };
    assert_eq!(statuses(2), [200, 200]);
    let before = redis.client_ids();
    assert_eq!(before.len(), 1, "one connection: {before:?}");

    // A reload that keeps the `redis:` section keeps the connection; the counter is
    // Redis's, so the quota goes on.
    gw.reload(&yaml("300ms", "two"), 1.0);
    assert_eq!(get(gw.port, "/quota").text(), "two");
    assert_eq!(redis.client_ids(), before, "the same connection");

    // A changed section gets a new client; the old connection closes once the old
    // configuration is gone.
    gw.reload(&yaml("400ms", "three"), 2.0);
    assert_eq!(statuses(3), [200, 200, 429], "the same counter: 5 in all");
    let after = wait_for(
        "the old connection to close",
        Duration::from_secs(30),
        || {
            let ids = redis.client_ids();
            (ids.len() == 1 && ids != before).then_some(ids)
        },
    );
    assert_ne!(after, before);
}
