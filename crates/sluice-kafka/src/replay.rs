//! The replayer: delivers the spool to Kafka, oldest records first, a window at a time
//! (with the records' original keys, headers, ids and timestamps), and exports the spool
//! metrics. After any failure the spool is rewound to its oldest unacknowledged record
//! and retried with backoff; records that were delivered meanwhile are not sent again.
//! A record Kafka will not take is set aside ([`crate::quarantine`]) so it cannot block
//! the records behind it. Compaction (deleting delivered segments, adopting directories
//! of dead processes) runs every second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_spool::{Entry, Spool, SpoolStats};
use tokio::sync::oneshot;

use crate::cluster::Cluster;
use crate::context::now_ms;
use crate::error::Refused;
use crate::event::{permanent_error, permanent_reason, reason, OutgoingEvent};
use crate::metrics::kafka;
use crate::quarantine::Quarantine;

/// Records and bytes replayed per round.
const WINDOW: usize = 256;
const WINDOW_BYTES: usize = 4 << 20;
const IDLE: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Replay the cluster's spool until the task is aborted (at shutdown).
pub async fn run(cluster: Arc<Cluster>) {
    let Some(spool) = cluster.spool().cloned() else {
        return;
    };
    let mut backoff = Duration::from_millis(500);
    let mut last_maintain = Instant::now();
    let mut exported = SpoolStats::default();
    let mut quarantine = Quarantine::default();
    loop {
        if last_maintain.elapsed() >= Duration::from_secs(1) {
            // File I/O (deleting segments, adopting directories): off the async workers.
            let s = spool.clone();
            let maintained = tokio::task::spawn_blocking(move || s.maintain())
                .await
                .unwrap_or_else(|e| Err(sluice_spool::SpoolError::Io(e.to_string())));
            if let Err(e) = maintained {
                log::error!("kafka cluster `{}`: spool maintenance: {e}", cluster.name());
            }
            exported = export(cluster.name(), &spool, exported);
            last_maintain = Instant::now();
        }
        match replay_window(&cluster, &spool, &mut quarantine).await {
            Ok(0) => tokio::time::sleep(IDLE).await,
            Ok(_) => backoff = Duration::from_millis(500),
            Err(why) => {
                log::warn!(
                    "kafka cluster `{}`: replaying the spool failed ({why}); retrying in {:.1}s",
                    cluster.name(),
                    backoff.as_secs_f64()
                );
                spool.rewind();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Send one window of spooled records and wait for their reports; the number sent.
async fn replay_window(
    cluster: &Cluster,
    spool: &Arc<Spool>,
    quarantine: &mut Quarantine,
) -> Result<usize, String> {
    // Reading segment files is blocking I/O: off the async workers.
    let s = spool.clone();
    let batch = tokio::task::spawn_blocking(move || s.read(WINDOW, WINDOW_BYTES))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let n = batch.len();
    let mut waits = Vec::with_capacity(n);
    let mut refused: Option<String> = None;
    for entry in batch {
        let Some(event) = OutgoingEvent::decode(&entry.payload, entry.timestamp_ms) else {
            // The frame's CRC was right but the bytes are not an event: nothing to deliver.
            log::error!(
                "kafka cluster `{}`: dropping an undecodable spool record",
                cluster.name()
            );
            spool.ack(entry.id);
            continue;
        };
        let (tx, rx) = oneshot::channel();
        match cluster.enqueue(&event, None, Some(tx), None, false) {
            Ok(()) => waits.push((entry, rx)),
            Err(Refused { reason: why }) if permanent_reason(&why) => {
                if !quarantine.failed(cluster.name(), spool, &entry, &why, true, false) {
                    // Could not be set aside: retry the window from it.
                    refused = Some(why);
                    break;
                }
            }
            Err(Refused { reason: why }) => {
                // Wait for what was sent, then retry from the oldest unacknowledged.
                refused = Some(why);
                break;
            }
        }
    }
    let (delivered, failed) = settle(spool, waits, quarantine).await;
    let mut left = 0;
    for (entry, why, permanent) in failed {
        if !quarantine.failed(
            cluster.name(),
            spool,
            &entry,
            &why,
            permanent,
            delivered > 0,
        ) {
            left += 1;
        }
    }
    if let Some(why) = refused {
        return Err(why);
    }
    if left > 0 {
        return Err(format!("{left} of {n} records were not acknowledged"));
    }
    Ok(n)
}

/// Acknowledge every delivered record: how many were delivered, and the failed ones
/// with their reason and whether it is permanent.
async fn settle(
    spool: &Spool,
    waits: Vec<(Entry, oneshot::Receiver<crate::DeliveryReport>)>,
    quarantine: &mut Quarantine,
) -> (usize, Vec<(Entry, String, bool)>) {
    let mut ok = 0;
    let mut failed = Vec::new();
    for (entry, rx) in waits {
        match rx.await {
            Ok(Ok(_)) => {
                spool.ack(entry.id);
                quarantine.delivered(entry.id);
                ok += 1;
            }
            Ok(Err(e)) => {
                let permanent = permanent_error(&e);
                failed.push((entry, reason(&e), permanent));
            }
            Err(_) => failed.push((entry, "no_report".into(), false)),
        }
    }
    (ok, failed)
}

/// Publish the spool's figures; counters advance by the change since `last`.
fn export(cluster: &str, spool: &Spool, last: SpoolStats) -> SpoolStats {
    let s = spool.stats();
    let Some(m) = kafka() else { return s };
    let l = [cluster];
    let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    m.spool_records.with_label_values(&l).set(g(s.records));
    m.spool_bytes.with_label_values(&l).set(g(s.bytes));
    let age = s
        .oldest_ts
        .map_or(0.0, |ts| ((now_ms() - ts).max(0) as f64) / 1000.0);
    m.spool_oldest_age.with_label_values(&l).set(age);
    for (counter, now, before) in [
        (&m.spool_appended, s.appended, last.appended),
        (&m.spool_replayed, s.acked, last.acked),
        (
            &m.spool_corrupted_tails,
            s.corrupted_tails,
            last.corrupted_tails,
        ),
        (
            &m.spool_corrupted_bytes,
            s.corrupted_bytes,
            last.corrupted_bytes,
        ),
        (&m.spool_write_errors, s.write_errors, last.write_errors),
        (&m.spool_refused, s.refused, last.refused),
    ] {
        counter
            .with_label_values(&l)
            .inc_by(now.saturating_sub(before));
    }
    s
}
