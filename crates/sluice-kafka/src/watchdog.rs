//! The producer watchdog of a started cluster: twice a second it retires the producers
//! of profiles nothing uses any more ([`crate::profile_use`]) and looks for producers
//! that raised a fatal error and replaces each with a fresh producer of the same profile
//! (counted in `sluice_kafka_producer_replacements_total{cluster,reason}`, logged). A
//! cluster whose new producers keep dying (e.g. refused by the broker at once) is not
//! churned: replacements within a minute of the last one back off, 1 s doubling to
//! 30 s. The old producer's queued and in-flight events are purged: their delivery
//! reports arrive with an error, so each is counted failed, moved to the spool
//! (at-least-once routes) or answered 503 (divert) — none waits forever, none is lost
//! uncounted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{Producer, PurgeConfig};

use crate::cluster::Cluster;
use crate::metrics::kafka;

/// How often producers are checked.
const PERIOD: Duration = Duration::from_millis(500);
/// The first and the longest wait between replacements that follow each other.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// Replacements further apart than this start the backoff over.
const CALM: Duration = Duration::from_secs(60);

/// Run until the cluster's tasks are aborted (shutdown, or the cluster was replaced).
pub(crate) async fn run(cluster: Arc<Cluster>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Instant> = None;
    let mut backoff = BACKOFF.0;
    loop {
        tick.tick().await;
        let Some(producers) = cluster.producers.get() else {
            continue;
        };
        for r in producers.retire_unused(|p| cluster.uses.used(p)) {
            log::info!(
                "kafka cluster `{}`: producer (delivery timeout {:?}, linger {:?}) retired: nothing uses it any more",
                cluster.name(),
                r.profile.delivery_timeout,
                r.profile.linger,
            );
            let (old, slot, cluster) = (r.old, r.slot, cluster.clone());
            // Its events in flight get their delivery reports (counted) before it goes;
            // what is left after its delivery timeout is purged, which reports it failed.
            // Until then the shutdown flush covers it too.
            tokio::task::spawn_blocking(move || {
                let _ = old.flush(r.profile.delivery_timeout + Duration::from_secs(1));
                purge(&old);
                if let Some(p) = cluster.producers.get() {
                    p.retired(slot);
                }
                drop(old);
                cluster.health.forget(slot);
            });
        }
        if last.is_some_and(|l| l.elapsed() < backoff) {
            continue;
        }
        let replaced = producers.replace_fatal();
        if !replaced.is_empty() {
            backoff = match last {
                Some(l) if l.elapsed() < CALM => (backoff * 2).min(BACKOFF.1),
                _ => BACKOFF.0,
            };
            last = Some(Instant::now());
        }
        for r in replaced {
            log::error!(
                "kafka cluster `{}`: producer (delivery timeout {:?}, linger {:?}) hit a fatal error ({}: {}); replaced by a new producer",
                cluster.name(),
                r.profile.delivery_timeout,
                r.profile.linger,
                r.code,
                r.message
            );
            if let Some(m) = kafka() {
                m.producer_replacements
                    .with_label_values(&[cluster.name(), &r.code])
                    .inc();
            }
            let old = r.old;
            // Dropping joins the polling thread.
            tokio::task::spawn_blocking(move || {
                purge(&old);
                drop(old);
            });
        }
    }
}

/// Purge what a producer taken out of service still holds, serving the delivery reports
/// (each event is counted failed, or spooled).
fn purge(old: &crate::producers::Sender) {
    old.purge(PurgeConfig::default().queue().inflight());
    let _ = old.flush(Duration::from_secs(5));
}
