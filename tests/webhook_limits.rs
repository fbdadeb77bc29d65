//! A webhook target cannot park a subscription: a `Retry-After` of a day is cut to
//! `max_retry_after` (counted), and after a `410 Gone` disabled the target, a reload that
//! changes the subscription starts it enabled again (`sluice_webhook_target_disabled`
//! back to 0, deliveries resume).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{produce, Kafka};
use sluice_e2e::metrics::scrape;
use sluice_e2e::receiver::{Receiver, Reply};
use sluice_e2e::wait_for;

const WAIT: Duration = Duration::from_secs(60);

fn yaml(bootstrap: &str, port: u16, timeout: &str) -> String {
    format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{bootstrap}"] }} }} }}
subscriptions:
  - id: hook
    topics: [jobs]
    start: earliest
    kafka-webhook:
      url: "http://127.0.0.1:{port}/hook/{{key}}"
      retries: [1s, 1s, 1s]
      max_retry_after: 1s
      timeout: {timeout}
      allow_private_targets: true
"#
    )
}

fn metric(gw: &Gateway, name: &str) -> f64 {
    scrape(gw.admin).sum(name, &[("subscription", "hook")])
}

#[test]
fn retry_after_is_capped_and_a_reload_re_enables_a_gone_target() {
    let kafka = Kafka::start();
    kafka.create_topic("jobs", 1);
    let healed = Arc::new(AtomicBool::new(false));
    let h = healed.clone();
    let receiver = Receiver::start(move |seen, earlier| {
        if seen.url.contains("/slow") && earlier == 0 {
            let mut r = Reply::status(429);
            r.headers.push(("retry-after".into(), "86400".into()));
            return r;
        }
        if seen.url.contains("/gone") && !h.load(Ordering::Acquire) {
            return Reply::status(410);
        }
        Reply::status(200)
    });
    let gw = Gateway::start(&yaml(&kafka.bootstrap, receiver.port, "10s"));
    produce(
        &kafka.bootstrap,
        "jobs",
        &[(0, "slow".into(), "a".into())],
        1,
    );
    // Delivered on the second attempt, a second later instead of a day.
    wait_for("the capped retry", WAIT, || {
        (receiver
            .hits()
            .iter()
            .filter(|h| h.seen.url.contains("/slow"))
            .count()
            == 2)
            .then_some(())
    });
    assert_eq!(metric(&gw, "sluice_webhook_retry_after_capped_total"), 1.0);

    // 410 disables the target.
    produce(
        &kafka.bootstrap,
        "jobs",
        &[(0, "gone".into(), "b".into())],
        1,
    );
    wait_for("the target disabled", WAIT, || {
        (metric(&gw, "sluice_webhook_target_disabled") == 1.0).then_some(())
    });
    // The target is fixed and the subscription changed: a reload starts it enabled.
    healed.store(true, Ordering::Release);
    gw.reload(&yaml(&kafka.bootstrap, receiver.port, "9s"), 1.0);
    wait_for("re-enabled", WAIT, || {
        (metric(&gw, "sluice_webhook_target_disabled") == 0.0).then_some(())
    });
    produce(
        &kafka.bootstrap,
        "jobs",
        &[(0, "gone".into(), "c".into())],
        1,
    );
    wait_for("a delivery to the healed target", WAIT, || {
        receiver
            .hits()
            .iter()
            .any(|h| h.seen.url.contains("/gone") && h.seen.body == b"c")
            .then_some(())
    });
}
