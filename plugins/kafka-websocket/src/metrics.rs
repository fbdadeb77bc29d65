//! `sluice_websocket_*`: open connections, messages each way, publish outcomes and
//! closes by code, per route.

use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use sluice_core::metric_set::{MetricSet, MetricsError};

/// The plugin's metrics.
pub struct WebsocketMetrics {
    /// `sluice_websocket_connections{route}`: open connections.
    pub connections: IntGaugeVec,
    /// `sluice_websocket_messages_total{route,direction}`: data messages received from
    /// clients (`in`) and sent to them (`out`: records, acknowledgements, errors).
    pub messages: IntCounterVec,
    /// `sluice_websocket_publish_total{route,result}`: published messages by result
    /// (`acked`, or the error frame's reason).
    pub publish: IntCounterVec,
    /// `sluice_websocket_closes_total{route,code}`: ended connections by close code.
    pub closes: IntCounterVec,
}

impl WebsocketMetrics {
    fn register() -> Result<Self, prometheus::Error> {
        let m = Self {
            connections: IntGaugeVec::new(
                Opts::new("sluice_websocket_connections", "Open WebSocket connections"),
                &["route"],
            )?,
            messages: IntCounterVec::new(
                Opts::new(
                    "sluice_websocket_messages_total",
                    "WebSocket data messages received (in) and sent (out)",
                ),
                &["route", "direction"],
            )?,
            publish: IntCounterVec::new(
                Opts::new(
                    "sluice_websocket_publish_total",
                    "Messages published by WebSocket clients, by result",
                ),
                &["route", "result"],
            )?,
            closes: IntCounterVec::new(
                Opts::new(
                    "sluice_websocket_closes_total",
                    "Ended WebSocket connections by close code",
                ),
                &["route", "code"],
            )?,
        };
        let r = prometheus::default_registry();
        r.register(Box::new(m.connections.clone()))?;
        r.register(Box::new(m.messages.clone()))?;
        r.register(Box::new(m.publish.clone()))?;
        r.register(Box::new(m.closes.clone()))?;
        Ok(m)
    }
}

static METRICS: MetricSet<WebsocketMetrics> =
    MetricSet::new("kafka-websocket", WebsocketMetrics::register);

/// The metrics, if registered.
pub fn metrics() -> Option<&'static WebsocketMetrics> {
    METRICS.get()
}

/// Register now; the binary refuses to start if this fails.
pub fn init() -> Result<(), MetricsError> {
    METRICS.init()
}

/// Count `n` messages in `direction` on `route`.
pub fn messages(route: &str, direction: &str, n: u64) {
    if let Some(m) = metrics() {
        m.messages.with_label_values(&[route, direction]).inc_by(n);
    }
}

/// Count a publish result on `route`.
pub fn published(route: &str, result: &str) {
    if let Some(m) = metrics() {
        m.publish.with_label_values(&[route, result]).inc();
    }
}
