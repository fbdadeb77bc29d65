//! Webhook metrics: deliveries by outcome, attempts by result, attempt latency, disabled
//! targets and consumer lag, per subscription.

use once_cell::sync::Lazy;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
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
}

static M: Lazy<Option<WebhookMetrics>> = Lazy::new(|| {
    let m = WebhookMetrics {
        deliveries: IntCounterVec::new(
            Opts::new(
                "sluice_webhook_deliveries_total",
                "Records delivered to webhooks or dead-lettered",
            ),
            &["subscription", "outcome"],
        )
        .ok()?,
        attempts: IntCounterVec::new(
            Opts::new(
                "sluice_webhook_attempts_total",
                "Webhook attempts by result",
            ),
            &["subscription", "result"],
        )
        .ok()?,
        duration: HistogramVec::new(
            HistogramOpts::new(
                "sluice_webhook_attempt_duration_seconds",
                "Duration of webhook attempts",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["subscription"],
        )
        .ok()?,
        disabled: IntGaugeVec::new(
            Opts::new(
                "sluice_webhook_target_disabled",
                "1 when the target answered 410 Gone and is disabled",
            ),
            &["subscription"],
        )
        .ok()?,
        lag: IntGaugeVec::new(
            Opts::new(
                "sluice_webhook_consumer_lag",
                "Records between the committed position and the partition end",
            ),
            &["subscription", "topic", "partition"],
        )
        .ok()?,
        capped: IntCounterVec::new(
            Opts::new(
                "sluice_webhook_retry_after_capped_total",
                "Retry-After waits cut to max_retry_after",
            ),
            &["subscription"],
        )
        .ok()?,
    };
    let r = prometheus::default_registry();
    r.register(Box::new(m.deliveries.clone())).ok()?;
    r.register(Box::new(m.attempts.clone())).ok()?;
    r.register(Box::new(m.duration.clone())).ok()?;
    r.register(Box::new(m.disabled.clone())).ok()?;
    r.register(Box::new(m.lag.clone())).ok()?;
    r.register(Box::new(m.capped.clone())).ok()?;
    Some(m)
});

/// The metrics, if registered.
pub fn webhook() -> Option<&'static WebhookMetrics> {
    M.as_ref()
}

/// Register now; the binary refuses to start if this fails.
pub fn init() -> Result<(), String> {
    M.as_ref()
        .map(|_| ())
        .ok_or_else(|| "registering webhook metrics".to_string())
}
