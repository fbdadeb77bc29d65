//! `sluice_request_reply_*`: requests by outcome, the wait for replies, replies nobody
//! here waits for, and requests waiting now, per route.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
use sluice_core::metric_set::{MetricSet, MetricsError};
use sluice_core::metrics::LATENCY_BUCKETS;

/// The plugin's metrics.
pub struct RequestReplyMetrics {
    /// `sluice_request_reply_requests_total{route,outcome}`: `replied`, `accepted`
    /// (asynchronous), `timeout`, or a refusal reason.
    pub requests: IntCounterVec,
    /// `sluice_request_reply_wait_seconds{route}`: from the request record's
    /// acknowledgement to its reply.
    pub wait: HistogramVec,
    /// `sluice_request_reply_unmatched_total{route,reason}`: replies nobody here waits
    /// for: `late`, `duplicate`, `other` (another instance's), `no_correlation_id`.
    pub unmatched: IntCounterVec,
    /// `sluice_request_reply_pending{route}`: requests waiting for a reply.
    pub pending: IntGaugeVec,
}

impl RequestReplyMetrics {
    fn register() -> Result<Self, prometheus::Error> {
        let m = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "sluice_request_reply_requests_total",
                    "Request-reply requests by outcome",
                ),
                &["route", "outcome"],
            )?,
            wait: HistogramVec::new(
                HistogramOpts::new(
                    "sluice_request_reply_wait_seconds",
                    "Time from the request record's acknowledgement to its reply",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )?,
            unmatched: IntCounterVec::new(
                Opts::new(
                    "sluice_request_reply_unmatched_total",
                    "Replies nobody on this instance waits for, by reason",
                ),
                &["route", "reason"],
            )?,
            pending: IntGaugeVec::new(
                Opts::new(
                    "sluice_request_reply_pending",
                    "Requests waiting for a reply",
                ),
                &["route"],
            )?,
        };
        let r = prometheus::default_registry();
        r.register(Box::new(m.requests.clone()))?;
        r.register(Box::new(m.wait.clone()))?;
        r.register(Box::new(m.unmatched.clone()))?;
        r.register(Box::new(m.pending.clone()))?;
        Ok(m)
    }
}

static METRICS: MetricSet<RequestReplyMetrics> =
    MetricSet::new("kafka-request-reply", RequestReplyMetrics::register);

/// The metrics, if registered.
pub fn metrics() -> Option<&'static RequestReplyMetrics> {
    METRICS.get()
}

/// Register now; the binary refuses to start if this fails.
pub fn init() -> Result<(), MetricsError> {
    METRICS.init()
}

/// Count a request's outcome.
pub fn request(route: &str, outcome: &str) {
    if let Some(m) = metrics() {
        m.requests.with_label_values(&[route, outcome]).inc();
    }
}

/// Count a reply nobody here waits for.
pub fn unmatched(route: &str, reason: &str) {
    if let Some(m) = metrics() {
        m.unmatched.with_label_values(&[route, reason]).inc();
    }
}
