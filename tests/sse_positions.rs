//! kafka-sse positions: a client that drops before its first event still has an id
//! (the stream's start is sent as `id:`), so it resumes with no gap on a `start: latest`
//! route; and a resume id that predates partitions added to the topic reads those
//! partitions from their beginning instead of skipping to `latest`; an open stream picks
//! up partitions added while it runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{produce, Kafka};
use sluice_e2e::sse::read_until;
use sluice_e2e::wait_for;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn no_gap_before_the_first_event_nor_in_new_partitions() {
    let kafka = Kafka::start();
    kafka.create_topic("feed", 1);
    produce(
        &kafka.bootstrap,
        "feed",
        &[(0, "k".into(), "old".into())],
        1,
    );
    let gw = Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{}"] }} }} }}
routes:
  - id: feed
    match: {{ paths: ["/feed"], methods: [GET] }}
    plugins:
      kafka-sse: {{ topic: feed, start: latest, keepalive: 300ms, token_keys: ["feed-key-0123456789abcdef"] }}
"#,
        kafka.bootstrap
    ));
    // Connect, get only the opening position, drop before any event.
    let first = read_until(gw.port, "/feed", None, WAIT, |r| r.last_id.is_some());
    assert_eq!(first.status, 200);
    assert!(first.events.is_empty());
    let start = first.last_id.clone().unwrap();
    // While the client is away: a record, and a new partition with a record.
    produce(
        &kafka.bootstrap,
        "feed",
        &[(0, "k".into(), "while-away".into())],
        1,
    );
    kafka.add_partitions("feed", 2);
    produce(
        &kafka.bootstrap,
        "feed",
        &[(1, "k".into(), "new-partition".into())],
        1,
    );
    let again = read_until(gw.port, "/feed", Some(&start), WAIT, |r| {
        r.events.len() >= 2
    });
    assert_eq!(again.status, 200, "{}", again.error);
    let mut data: Vec<&str> = again.events.iter().map(|e| e.data.as_str()).collect();
    data.sort();
    assert_eq!(
        data,
        ["new-partition", "while-away"],
        "no gap, nothing older"
    );

    // A stream that is open when partitions are added picks them up.
    let opened = Arc::new(AtomicBool::new(false));
    let live = {
        let (port, opened) = (gw.port, opened.clone());
        std::thread::spawn(move || {
            read_until(port, "/feed", None, WAIT, |r| {
                // The opening id is sent once the start (latest) is resolved.
                if r.last_id.is_some() {
                    opened.store(true, Ordering::Release);
                }
                r.events.iter().any(|e| e.data == "added-live")
            })
        })
    };
    wait_for("the live stream's start", WAIT, || {
        opened.load(Ordering::Acquire).then_some(())
    });
    kafka.add_partitions("feed", 3);
    produce(
        &kafka.bootstrap,
        "feed",
        &[(2, "k".into(), "added-live".into())],
        1,
    );
    let r = live.join().unwrap();
    assert!(
        r.events.iter().any(|e| e.data == "added-live"),
        "the new partition's record reached the open stream"
    );
}
