//! Webhook metrics: deliveries by outcome, attempts by result, attempt latency, disabled
//! targets, consumer lag and the read buffer, per subscription.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
use sluice_core::metric_set::{MetricSet, MetricsError};
use sluice_core::metrics::LATENCY_BUCKETS;

/// The webhook metrics.
pub struct WebhookMetrics {
    /// `sluice_webhook_deliveries_total{subscription,outcome}`: `delivered`, `dead_lettered`.
    pub deliveries: IntCounterVec,
    /// `sluice_webhook_attempts_total{subscription,result}`: `2xx`, `3xx`, `4xx`, `429`,
    /// `5xx`, `timeout`, `connect_error`, `refused_target`.
    pub attempts: IntCounterVec,
    /// `sluice_webhook_attempt_duration_seconds{subscription}`.
    pub duration: HistogramVec,
    /// `sluice_webhook_target_disabled{subscription}`: 1 after a `410 Gone`.
    pub disabled: IntGaugeVec,
    /// `sluice_webhook_consumer_lag{subscription,topic,partition}`: records behind.
    pub lag: IntGaugeVec,
    /// `sluice_webhook_retry_after_capped_total{subscription}`: `Retry-After` waits cut
    /// to `max_retry_after`.
    pub capped: IntCounterVec,
    /// `sluice_webhook_buffered{subscription}`: records read and not finished (delivering,
    /// waiting behind their key or for a slot); at most 1000.
    pub buffered: IntGaugeVec,
    /// `sluice_webhook_paused{subscription}`: 1 while reading is paused because the buffer
    /// stayed full with no delivery ending.
    pub paused: IntGaugeVec,
}

static M: MetricSet<WebhookMetrics> = MetricSet::new("kafka-webhook", || {
    let m = WebhookMetrics {
        deliveries: IntCounterVec::new(
            Opts::new(
                "sluice_webhook_deliveries_total",
                "Records delivered to webhooks or dead-lettered",
            ),
            &["subscription", "outcome"],
        )?,
        attempts: IntCounterVec::new(
            Opts::new(
                "sluice_webhook_attempts_total",
                "Webhook attempts by result",
            ),
            &["subscription", "result"],
        )?,
        duration: HistogramVec::new(
            HistogramOpts::new(
                "sluice_webhook_attempt_duration_seconds",
                "Duration of webhook attempts",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["subscription"],
        )?,
        disabled: IntGaugeVec::new(
            Opts::new(
                "sluice_webhook_target_disabled",
                "1 when the target answered 410 Gone and is disabled",
            ),
            &["subscription"],
        )?,
        lag: IntGaugeVec::new(
            Opts::new(
                "sluice_webhook_consumer_lag",
                "Records between the committed position and the partition end",
            ),
            &["subscription", "topic", "partition"],
        )?,
        capped: IntCounterVec::new(
            Opts::new(
                "sluice_webhook_retry_after_capped_total",
                "Retry-After waits cut to max_retry_after",
            ),
            &["subscription"],
        )?,
        buffered: IntGaugeVec::new(
            Opts::new(
                "sluice_webhook_buffered",
                "Records read and not finished (delivering, waiting behind their key or for a slot)",
            ),
            &["subscription"],
        )?,
        paused: IntGaugeVec::new(
            Opts::new(
                "sluice_webhook_paused",
                "1 while reading is paused: the buffer stayed full with no delivery ending",
            ),
            &["subscription"],
        )?,
    };
    let r = prometheus::default_registry();
    r.register(Box::new(m.deliveries.clone()))?;
    r.register(Box::new(m.attempts.clone()))?;
    r.register(Box::new(m.duration.clone()))?;
    r.register(Box::new(m.disabled.clone()))?;
    r.register(Box::new(m.lag.clone()))?;
    r.register(Box::new(m.capped.clone()))?;
    r.register(Box::new(m.buffered.clone()))?;
    r.register(Box::new(m.paused.clone()))?;
    Ok(m)
});

/// The metrics, if registered.
pub fn webhook() -> Option<&'static WebhookMetrics> {
    M.get()
}

/// Register now; the binary refuses to start if this fails.
pub fn init() -> Result<(), MetricsError> {
    M.init()
}
