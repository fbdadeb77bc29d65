//! kafka-cache end to end: the real binary, Apache Kafka, records written and read back
//! with plain librdkafka. The view holds the latest record per key (the topic is read
//! from its beginning), the `ETag` is the record's position (read back independently)
//! and `If-None-Match` gives `304`; updates and tombstones arrive live; lists page by
//! prefix; `/readyz` and reads wait until the view caught up; over `max_bytes` a read
//! gets `507`, never a stale or wrong answer; a view that keeps up with a busy topic
//! stays servable, and with the broker frozen reads get `503` once `max_staleness`
//! passed, then answers again when it is back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use sluice_e2e::client::{get, request};
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka};
use sluice_e2e::metrics::wait_sum;
use sluice_e2e::wait_for;

const WAIT: Duration = Duration::from_secs(60);

/// Write `(key, value)` records (`None`: a tombstone) to `partition`.
fn write(bootstrap: &str, topic: &str, partition: i32, records: &[(&str, Option<&str>)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for (k, v) in records {
        let mut r = BaseRecord::<str, str>::to(topic)
            .partition(partition)
            .key(*k);
        if let Some(v) = v {
            r = r.payload(*v);
        }
        p.send(r).map_err(|(e, _)| e).unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

fn config(kafka: &Kafka, topic: &str, extra: &str) -> String {
    format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{}"] }} }} }}
routes:
  - id: items
    match: {{ paths: ["/items/*"] }}
    plugins:
      kafka-cache: {{ topic: {topic}, key: "{{path.1}}"{extra} }}
"#,
        kafka.bootstrap
    )
}

fn gateway(kafka: &Kafka, topic: &str, extra: &str, wait: bool) -> Gateway {
    Gateway::spawn(&config(kafka, topic, extra), wait)
}

#[test]
fn the_latest_record_per_key_with_its_position_live_updates_and_pages() {
    let kafka = Kafka::start();
    kafka.create_topic("items", 2);
    write(
        &kafka.bootstrap,
        "items",
        0,
        &[
            ("a", Some("a1")),
            ("b", Some("b1")),
            ("a", Some("a2")),
            ("c", Some("c1")),
            ("c", None),
        ],
    );
    write(
        &kafka.bootstrap,
        "items",
        1,
        &[
            ("user:1", Some("u1")),
            ("user:2", Some("u2")),
            ("user:3", Some("u3")),
        ],
    );
    let gw = gateway(&kafka, "items", "", true);
    let a = get(gw.port, "/items/a");
    assert_eq!((a.status, a.text()), (200, "a2".to_string()));
    // The ETag is where the record is: partition 0, offset 2 (read back independently).
    let records = read_topic(&kafka.bootstrap, "items", 8, Duration::ZERO, WAIT);
    let latest_a = records
        .iter()
        .rfind(|r| r.key.as_deref() == Some(&b"a"[..]))
        .unwrap();
    assert_eq!(
        a.header("etag"),
        Some(format!("\"{}-{}\"", latest_a.partition, latest_a.offset).as_str())
    );
    let etag = a.header("etag").unwrap().to_string();
    let same = request(gw.port, "GET", "/items/a", &[("if-none-match", &etag)], b"");
    assert_eq!(same.status, 304);
    assert_eq!(get(gw.port, "/items/c").status, 404, "a tombstone deletes");
    assert_eq!(get(gw.port, "/items/zzz").status, 404);

    // Live: an update and a tombstone.
    write(
        &kafka.bootstrap,
        "items",
        0,
        &[("a", Some("a3")), ("b", None)],
    );
    wait_for("the update", WAIT, || {
        (get(gw.port, "/items/a").text() == "a3").then_some(())
    });
    wait_for("the tombstone", WAIT, || {
        (get(gw.port, "/items/b").status == 404).then_some(())
    });
    let changed = request(gw.port, "GET", "/items/a", &[("if-none-match", &etag)], b"");
    assert_eq!(changed.status, 200, "a new position, a new ETag");

    // Pages by prefix.
    let first = get(gw.port, "/items/?prefix=user:&limit=2").json();
    let keys: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["user:1", "user:2"]);
    let next = first["next"].as_str().unwrap().to_string();
    let rest = get(
        gw.port,
        &format!("/items/?prefix=user:&limit=2&after={next}"),
    )
    .json();
    assert_eq!(rest["items"][0]["value"], "u3");
    assert!(rest["next"].is_null());
    assert_eq!(request(gw.port, "POST", "/items/a", &[], b"x").status, 405);
    // A reload that keeps the view's settings keeps the view: served at once, ready.
    let more = config(&kafka, "items", "") + "  - { id: other, match: { paths: [\"/other\"] }, plugins: { mocking: { status: 204 } } }\n";
    gw.reload(&more, 1.0);
    assert_eq!(
        get(gw.port, "/items/a").text(),
        "a3",
        "no 503 while a new view reads"
    );
    assert_eq!(get(gw.admin, "/readyz").status, 200);
    let s = wait_sum(
        gw.admin,
        "sluice_cache_reads_total",
        &[("route", "items"), ("result", "not_modified")],
        1.0,
    );
    assert!(
        s.sum(
            "sluice_cache_reads_total",
            &[("route", "items"), ("result", "hit")]
        ) >= 2.0
    );
}

#[test]
fn reads_and_readiness_wait_until_the_view_caught_up() {
    let kafka = Kafka::start();
    let gw = gateway(&kafka, "later", "", false);
    // The topic does not exist yet: not ready, and reads are refused, never answered 404.
    let waiting = wait_for("/readyz names the waiting plugin", WAIT, || {
        std::net::TcpStream::connect(("127.0.0.1", gw.admin)).ok()?;
        let r = get(gw.admin, "/readyz");
        let t = r.text();
        (r.status == 503 && t.contains("kafka-cache") && t.contains("\"listening\":true"))
            .then_some(r)
    });
    assert!(
        waiting.text().contains("\"route\":\"items\""),
        "{}",
        waiting.text()
    );
    assert_eq!(get(gw.port, "/items/x").status, 503);
    kafka.create_topic("later", 1);
    write(&kafka.bootstrap, "later", 0, &[("x", Some("here"))]);
    wait_for("ready", WAIT, || {
        (get(gw.admin, "/readyz").status == 200).then_some(())
    });
    let x = wait_for("the record", WAIT, || {
        let r = get(gw.port, "/items/x");
        (r.status == 200).then_some(r)
    });
    assert_eq!(x.text(), "here");
}

#[test]
fn over_max_bytes_reads_get_507_not_a_wrong_answer() {
    let kafka = Kafka::start();
    kafka.create_topic("big", 1);
    let value = "v".repeat(600);
    write(
        &kafka.bootstrap,
        "big",
        0,
        &[
            ("small", Some("s")),
            ("large-1", Some(&value)),
            ("large-2", Some(&value)),
        ],
    );
    let gw = gateway(&kafka, "big", ", max_bytes: 1KiB", true);
    assert_eq!(get(gw.port, "/items/small").text(), "s");
    assert_eq!(
        get(gw.port, "/items/large-1").status,
        200,
        "the first large value fits"
    );
    assert_eq!(
        get(gw.port, "/items/large-2").status,
        507,
        "its value was not kept"
    );
    assert_eq!(
        get(gw.port, "/items/unknown").status,
        404,
        "every key is still known: a real miss"
    );
    assert_eq!(
        get(gw.port, "/items/?prefix=").status,
        507,
        "a list would be incomplete"
    );
    let s = wait_sum(
        gw.admin,
        "sluice_cache_dropped_total",
        &[("route", "items")],
        1.0,
    );
    assert!(s.sum("sluice_cache_bytes", &[("route", "items")]) <= 1024.0);
}

#[test]
fn a_view_not_confirmed_current_within_max_staleness_is_not_served() {
    let kafka = Kafka::start();
    kafka.create_topic("fresh", 2);
    write(&kafka.bootstrap, "fresh", 0, &[("a", Some("1"))]);
    let gw = gateway(&kafka, "fresh", ", max_staleness: 5s", true);
    let a = wait_for("the record", WAIT, || {
        let r = get(gw.port, "/items/a");
        (r.status == 200).then_some(r)
    });
    assert_eq!(a.text(), "1");
    let staleness = |gw: &Gateway| {
        sluice_e2e::metrics::scrape(gw.admin)
            .sum("sluice_cache_staleness_seconds", &[("route", "items")])
    };
    // A busy topic (a record every 20 ms for 8 s, longer than max_staleness): the view
    // keeps up, so every read is served and the last write is read back.
    let writer = {
        let bootstrap = kafka.bootstrap.clone();
        std::thread::spawn(move || {
            let p: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("linger.ms", "0")
                .create()
                .unwrap();
            for i in 0..400 {
                let v = i.to_string();
                let r = BaseRecord::<str, str>::to("fresh")
                    .partition(0)
                    .key("busy")
                    .payload(&v);
                p.send(r).map_err(|(e, _)| e).unwrap();
                p.poll(Duration::ZERO);
                std::thread::sleep(Duration::from_millis(20));
            }
            p.flush(Duration::from_secs(30)).unwrap();
        })
    };
    while !writer.is_finished() {
        let r = get(gw.port, "/items/a");
        assert_eq!(r.status, 200, "served while it keeps up: {}", r.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.join().unwrap();
    wait_for("the last write", WAIT, || {
        (get(gw.port, "/items/busy").text() == "399").then_some(())
    });
    // The broker frozen: the view is no longer confirmed; after 5 s reads get 503.
    kafka.pause();
    let r = wait_for("stale", WAIT, || {
        let r = get(gw.port, "/items/a");
        (r.status == 503).then_some(r)
    });
    assert_eq!(r.header("retry-after"), Some("1"));
    wait_for("the staleness gauge past 5 s", WAIT, || {
        (staleness(&gw) >= 5.0).then_some(())
    });
    wait_sum(
        gw.admin,
        "sluice_http_rejections_total",
        &[("route", "items"), ("reason", "stale")],
        1.0,
    );
    // Back: confirmed again, served again, and a record written meanwhile arrives.
    kafka.resume();
    write(&kafka.bootstrap, "fresh", 1, &[("b", Some("after"))]);
    let b = wait_for("served again", WAIT, || {
        let r = get(gw.port, "/items/b");
        (r.status == 200).then_some(r)
    });
    assert_eq!(b.text(), "after");
    wait_for("the staleness gauge back under 5 s", WAIT, || {
        (staleness(&gw) < 5.0).then_some(())
    });
}

/// A topic written in transactions ends with a commit marker, which a reader never gets
/// as a record: the view still catches up (`/readyz`), and stays confirmed current while
/// the topic is idle for longer than `max_staleness`.
#[test]
fn a_transactional_topic_catches_up_and_stays_current_while_idle() {
    let kafka = Kafka::start();
    kafka.create_topic("txn", 2);
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("transactional.id", "cache-test")
        .create()
        .unwrap();
    p.init_transactions(Duration::from_secs(30)).unwrap();
    for (partition, key, value) in [(0, "a", "1"), (1, "b", "2"), (0, "a", "3")] {
        p.begin_transaction().unwrap();
        p.send(
            BaseRecord::<str, str>::to("txn")
                .partition(partition)
                .key(key)
                .payload(value),
        )
        .map_err(|(e, _)| e)
        .unwrap();
        p.commit_transaction(Duration::from_secs(30)).unwrap();
    }
    let gw = gateway(&kafka, "txn", ", max_staleness: 3s", true);
    assert_eq!(get(gw.port, "/items/a").text(), "3");
    assert_eq!(get(gw.port, "/items/b").text(), "2");
    // Idle for longer than max_staleness: still confirmed, still served.
    let staleness = || {
        sluice_e2e::metrics::scrape(gw.admin)
            .sum("sluice_cache_staleness_seconds", &[("route", "items")])
    };
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        let r = get(gw.port, "/items/a");
        assert_eq!(r.status, 200, "{} (staleness {})", r.text(), staleness());
        std::thread::sleep(Duration::from_millis(250));
    }
}
