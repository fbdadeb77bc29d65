//! kafka-divert metrics: requests by route and outcome (`accepted`, `replayed`,
//! `rejected` with a reason) and the acknowledgement latency.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use sluice_core::metric_set::{MetricSet, MetricsError};
use sluice_core::metrics::LATENCY_BUCKETS;

/// The divert metrics.
pub struct DivertMetrics {
    /// `sluice_divert_requests_total{route,outcome,reason}`.
    pub requests: IntCounterVec,
    /// `sluice_divert_ack_duration_seconds{route}`: enqueue to broker acknowledgement.
    pub ack_duration: HistogramVec,
}

impl DivertMetrics {
    fn register() -> Result<Self, prometheus::Error> {
        let m = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "sluice_divert_requests_total",
                    "Diverted requests by route and outcome (accepted, replayed, rejected) with the rejection reason",
                ),
                &["route", "outcome", "reason"],
            )?,
            ack_duration: HistogramVec::new(
                HistogramOpts::new(
                    "sluice_divert_ack_duration_seconds",
                    "Time from enqueueing a diverted record to its broker acknowledgement",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )?,
        };
        let r = prometheus::default_registry();
        r.register(Box::new(m.requests.clone()))?;
        r.register(Box::new(m.ack_duration.clone()))?;
        Ok(m)
    }
}

static DIVERT: MetricSet<DivertMetrics> = MetricSet::new("kafka-divert", DivertMetrics::register);

/// The metrics, or `None` if registration failed (reported by [`init`]).
pub fn divert() -> Option<&'static DivertMetrics> {
    DIVERT.get()
}

/// Register now; the binary refuses to start if this fails.
pub fn init() -> Result<(), MetricsError> {
    DIVERT.init()
}

/// Count one request's outcome.
pub fn count(route: &str, outcome: &str, reason: &str) {
    if let Some(m) = divert() {
        m.requests
            .with_label_values(&[route, outcome, reason])
            .inc();
    }
}
