//! A cluster's shutdown flush: stop accepting events, flush every producer for the
//! cluster's `flush_timeout`, then purge what is left into the spool (or count it
//! failed), and close the spool.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::producer::{Producer, PurgeConfig};

use crate::cluster::{lock, Cluster};

/// What a shutdown flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushOutcome {
    /// Events queued when the flush started.
    pub queued: u64,
    /// Events still queued after the flush timeout (purged: spooled when the cluster has a
    /// spool, else counted as failed).
    pub purged: u64,
    /// Whether purged events went to the spool.
    pub spooled: bool,
}

impl Cluster {
    /// Stop accepting events, wait up to the cluster's `flush_timeout` for queued events,
    /// then purge what is left: into the spool when there is one (counted as spooled),
    /// else counted as failed. Finally sync and close the spool.
    pub fn shutdown(&self) -> FlushOutcome {
        self.closed.store(true, Ordering::Release);
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        let spool = self.spool.get();
        // From now on every failed event goes to the spool, if there is one.
        self.health
            .spool_everything
            .store(spool.is_some(), Ordering::Release);
        let Some(producers) = self.producers.get() else {
            return FlushOutcome::default();
        };
        let all = producers.all();
        let queued = || self.health.in_flight.load(Ordering::Acquire);
        let before = queued();
        let deadline = Instant::now() + self.config().flush_timeout.0;
        let flushed = all.iter().all(|p| {
            p.flush(deadline.saturating_duration_since(Instant::now()))
                .is_ok()
        });
        let mut outcome = FlushOutcome {
            queued: before,
            purged: 0,
            spooled: spool.is_some(),
        };
        if !flushed {
            outcome.purged = queued();
            log::warn!(
                "kafka cluster `{}`: {} events still queued after {:.1}s; {}",
                self.name(),
                outcome.purged,
                self.config().flush_timeout.0.as_secs_f64(),
                if spool.is_some() {
                    "moving them to the spool"
                } else {
                    "purging them (counted as failed)"
                }
            );
            for p in &all {
                p.purge(PurgeConfig::default().queue().inflight());
            }
            // Serve the purge reports so every event is counted (or spooled) before exit.
            for p in &all {
                let _ = p.flush(Duration::from_secs(2));
            }
        }
        if let Some(s) = spool {
            s.close();
        }
        outcome
    }
}
