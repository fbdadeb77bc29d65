//! Event accounting per route and plugin. Every event a plugin hands over is counted
//! exactly once as attempted, and then exactly once as acked, failed, discarded or
//! spooled (durably written to the cluster's disk spool, from where the spool's own
//! counters take over); until then it is in flight. So at any quiet moment
//! `attempted == acked + failed + discarded + spooled + in_flight`, in the counters here
//! and in the exported metrics (`sluice_kafka_events_*`).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{IntCounter, IntGauge};

use sluice_core::internal_event::{emit, InternalEvent, LogLimiter};

use crate::metrics::kafka;

/// An event that will not reach Kafka: `failed` (the broker refused it or it timed out)
/// or `discarded` (never handed to the producer). Counted in
/// `sluice_kafka_events_total{route,plugin,outcome,reason}`; logged at most once every 10
/// seconds.
pub struct EventLost<'a> {
    /// The route.
    pub route: &'a str,
    /// The plugin that produced it.
    pub plugin: &'a str,
    /// `failed` or `discarded`.
    pub outcome: &'static str,
    /// Why (`queue_full`, `msg_timed_out`, `topic_not_allowed`, ...).
    pub reason: &'a str,
}

static LOST_LOG: LogLimiter = LogLimiter::new(10);

impl InternalEvent for EventLost<'_> {
    fn count(&self) {
        if let Some(m) = kafka() {
            m.outcomes
                .with_label_values(&[self.route, self.plugin, self.outcome, self.reason])
                .inc();
        }
    }

    fn message(&self) -> String {
        format!(
            "route `{}`, {}: event {} ({}); counted in sluice_kafka_events_total",
            self.route, self.plugin, self.outcome, self.reason
        )
    }

    fn limiter(&self) -> &'static LogLimiter {
        &LOST_LOG
    }
}

/// Counters for one (route, plugin) pair. Cheap to update; shared by `Arc`.
#[derive(Debug)]
pub struct EventCounters {
    route: String,
    plugin: &'static str,
    attempted: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    discarded: AtomicU64,
    spooled: AtomicU64,
    m_attempted: Option<IntCounter>,
    m_acked: Option<IntCounter>,
    m_in_flight: Option<IntGauge>,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Events handed over.
    pub attempted: u64,
    /// Acknowledged by the broker.
    pub acked: u64,
    /// Rejected by the broker or timed out.
    pub failed: u64,
    /// Never handed to the producer (queue full, no topic, shutdown...).
    pub discarded: u64,
    /// Written to the disk spool (delivered later from there).
    pub spooled: u64,
}

impl Snapshot {
    /// Events neither acked, failed nor discarded yet.
    pub fn in_flight(&self) -> u64 {
        self.attempted - self.acked - self.failed - self.discarded - self.spooled
    }
}

impl EventCounters {
    /// Counters for `plugin` on `route`.
    pub fn new(route: &str, plugin: &'static str) -> Self {
        let m = kafka();
        Self {
            route: route.to_string(),
            plugin,
            attempted: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            spooled: AtomicU64::new(0),
            m_attempted: m.map(|m| m.attempted.with_label_values(&[route, plugin])),
            m_acked: m.map(|m| m.outcomes.with_label_values(&[route, plugin, "acked", ""])),
            m_in_flight: m.map(|m| m.in_flight.with_label_values(&[route, plugin])),
        }
    }

    /// The route these counters belong to.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// An event was handed over and is now in flight.
    pub fn attempted(&self) {
        self.attempted.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = &self.m_attempted {
            c.inc();
        }
        if let Some(g) = &self.m_in_flight {
            g.inc();
        }
    }

    /// An in-flight event was acknowledged.
    pub fn acked(&self) {
        self.acked.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = &self.m_acked {
            c.inc();
        }
        self.leave_flight();
    }

    /// An in-flight event failed (broker error, delivery timeout, purge).
    pub fn failed(&self, reason: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.lost("failed", reason);
        self.leave_flight();
    }

    /// An in-flight event was not handed to the producer after all (queue full...).
    pub fn discarded(&self, reason: &str) {
        self.discarded.fetch_add(1, Ordering::Relaxed);
        self.lost("discarded", reason);
        self.leave_flight();
    }

    /// An in-flight event was written to the disk spool.
    pub fn spooled(&self) {
        self.spooled.fetch_add(1, Ordering::Relaxed);
        self.outcome("spooled", "");
        self.leave_flight();
    }

    /// Count an event that is discarded before it was attempted (e.g. its topic template
    /// rendered to an invalid name): attempted and discarded at once.
    pub fn discarded_unsent(&self, reason: &str) {
        self.attempted();
        self.discarded(reason);
    }

    fn lost(&self, outcome: &'static str, reason: &str) {
        emit(EventLost {
            route: &self.route,
            plugin: self.plugin,
            outcome,
            reason,
        });
    }

    fn outcome(&self, outcome: &str, reason: &str) {
        if let Some(m) = kafka() {
            m.outcomes
                .with_label_values(&[&self.route, self.plugin, outcome, reason])
                .inc();
        }
    }

    fn leave_flight(&self) {
        if let Some(g) = &self.m_in_flight {
            g.dec();
        }
    }

    /// The current counts.
    pub fn snapshot(&self) -> Snapshot {
        // Read outcomes before attempts so a concurrent event never makes in_flight
        // negative.
        let acked = self.acked.load(Ordering::Acquire);
        let failed = self.failed.load(Ordering::Acquire);
        let discarded = self.discarded.load(Ordering::Acquire);
        let spooled = self.spooled.load(Ordering::Acquire);
        let attempted = self.attempted.load(Ordering::Acquire);
        Snapshot {
            attempted: attempted.max(acked + failed + discarded + spooled),
            acked,
            failed,
            discarded,
            spooled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invariant_holds() {
        let c = EventCounters::new("acct-test", "test");
        for _ in 0..5 {
            c.attempted();
        }
        c.acked();
        c.acked();
        c.failed("message_timed_out");
        c.discarded("queue_full");
        c.discarded_unsent("invalid_topic");
        let s = c.snapshot();
        assert_eq!(s.attempted, 6);
        assert_eq!(
            (s.acked, s.failed, s.discarded, s.in_flight()),
            (2, 1, 2, 1)
        );
        let m = kafka().unwrap();
        assert_eq!(
            m.in_flight.with_label_values(&["acct-test", "test"]).get(),
            1
        );
        assert_eq!(
            m.outcomes
                .with_label_values(&["acct-test", "test", "discarded", "queue_full"])
                .get(),
            1
        );
    }
}
