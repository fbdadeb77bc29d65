//! HTTP-side Prometheus metrics (`sluice_http_*`, `sluice_upstream_*`), registered once
//! in the default registry that the admin listener serves. Labels are low-cardinality:
//! the route id (never a raw path), a normalized method and the status code.

use crate::internal_event::{emit, InternalEvent, LogLimiter};
use crate::metric_set::{MetricSet, MetricsError};
use std::sync::RwLock;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
};

/// Latency buckets in seconds (OpenTelemetry's HTTP server defaults, plus finer low end).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    7.5, 10.0,
];

/// The HTTP metrics.
pub struct HttpMetrics {
    /// `sluice_http_requests_total{route,method,status}`.
    pub requests: IntCounterVec,
    /// `sluice_http_request_duration_seconds{route}`: first byte in to last byte out.
    pub request_duration: HistogramVec,
    /// `sluice_upstream_duration_seconds{route}`: node selection to response header.
    pub upstream_duration: HistogramVec,
    /// `sluice_upstream_errors_total{route,kind}`: failed upstream attempts.
    pub upstream_errors: IntCounterVec,
    /// `sluice_http_requests_in_flight`.
    pub in_flight: IntGauge,
    /// `sluice_http_rejections_total{route,reason}`: requests refused before the
    /// upstream or Kafka (authentication, authorization, rate limits, bad requests).
    pub rejections: IntCounterVec,
}

impl HttpMetrics {
    fn register() -> Result<Self, prometheus::Error> {
        let m = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "sluice_http_requests_total",
                    "HTTP requests by route, method and status",
                ),
                &["route", "method", "status"],
            )?,
            request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "sluice_http_request_duration_seconds",
                    "Time from request start to the end of the response, by route",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )?,
            upstream_duration: HistogramVec::new(
                HistogramOpts::new(
                    "sluice_upstream_duration_seconds",
                    "Time from upstream selection to the upstream response header, by route",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )?,
            upstream_errors: IntCounterVec::new(
                Opts::new(
                    "sluice_upstream_errors_total",
                    "Failed upstream attempts by route and kind (connect, timeout, ...)",
                ),
                &["route", "kind"],
            )?,
            in_flight: IntGauge::new("sluice_http_requests_in_flight", "Requests being served")?,
            rejections: IntCounterVec::new(
                Opts::new(
                    "sluice_http_rejections_total",
                    "Requests refused before the upstream or Kafka, by route and reason",
                ),
                &["route", "reason"],
            )?,
        };
        let r = prometheus::default_registry();
        r.register(Box::new(m.requests.clone()))?;
        r.register(Box::new(m.request_duration.clone()))?;
        r.register(Box::new(m.upstream_duration.clone()))?;
        r.register(Box::new(m.upstream_errors.clone()))?;
        r.register(Box::new(m.in_flight.clone()))?;
        r.register(Box::new(m.rejections.clone()))?;
        Ok(m)
    }
}

static HTTP: MetricSet<HttpMetrics> = MetricSet::new("http", HttpMetrics::register);

/// The HTTP metrics, or `None` if their registration failed (reported by [`init`]).
pub fn http() -> Option<&'static HttpMetrics> {
    HTTP.get()
}

/// Register the metrics now; the binary calls this at start-up and refuses to run if
/// it fails.
pub fn init() -> Result<(), MetricsError> {
    HTTP.init()
}

/// Count and log (at `debug`) a request refused on `route` for `reason` (a fixed,
/// low-cardinality word such as `invalid_credentials` or `rate_limited`).
pub fn reject(route: &str, reason: &str) {
    emit(RequestRejected { route, reason });
}

/// A request refused before it reached the upstream (`sluice_http_rejections_total`).
pub struct RequestRejected<'a> {
    /// The route id (`_none` before routing).
    pub route: &'a str,
    /// Why.
    pub reason: &'a str,
}

static REJECTED_LOG: LogLimiter = LogLimiter::new(1);

impl InternalEvent for RequestRejected<'_> {
    fn count(&self) {
        if let Some(m) = http() {
            m.rejections
                .with_label_values(&[self.route, self.reason])
                .inc();
        }
    }

    fn message(&self) -> String {
        format!("route `{}`: request refused ({})", self.route, self.reason)
    }

    fn level(&self) -> log::Level {
        log::Level::Debug
    }

    fn limiter(&self) -> &'static LogLimiter {
        &REJECTED_LOG
    }
}

/// A route's request metrics with the label lookups done once: the two latency
/// histograms on first use, and one counter per (method, status) seen, instead of
/// hashing the label values on every request.
#[derive(Default)]
pub struct RouteMetrics {
    histograms: once_cell::sync::OnceCell<(Histogram, Histogram)>,
    requests: RwLock<Vec<(&'static str, u16, IntCounter)>>,
}

impl RouteMetrics {
    /// Count one finished request of `route`: `method` (a [`method_label`]), `status`,
    /// its total time and, when it went upstream, the upstream time, in seconds.
    pub fn record(
        &self,
        route: &str,
        method: &'static str,
        status: u16,
        total: f64,
        upstream: Option<f64>,
    ) {
        let Some(m) = http() else { return };
        let (all, up) = self.histograms.get_or_init(|| {
            (
                m.request_duration.with_label_values(&[route]),
                m.upstream_duration.with_label_values(&[route]),
            )
        });
        all.observe(total);
        if let Some(s) = upstream {
            up.observe(s);
        }
        let read = self.requests.read().unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, c)) = read.iter().find(|(m, s, _)| *s == status && *m == method) {
            c.inc();
            return;
        }
        drop(read);
        let c = m
            .requests
            .with_label_values(&[route, method, &status.to_string()]);
        c.inc();
        let mut write = self.requests.write().unwrap_or_else(|p| p.into_inner());
        if !write.iter().any(|(m, s, _)| *s == status && *m == method) {
            write.push((method, status, c));
        }
    }
}

/// A bounded method label: the standard methods as-is, anything else `OTHER`.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_metrics_count_per_method_and_status() {
        init().unwrap();
        let r = RouteMetrics::default();
        for status in [200, 200, 404] {
            r.record("route-metrics-test", "GET", status, 0.001, Some(0.0005));
        }
        r.record("route-metrics-test", "POST", 200, 0.001, None);
        let m = http().unwrap();
        let n = |method: &str, status: &str| {
            m.requests
                .with_label_values(&["route-metrics-test", method, status])
                .get()
        };
        assert_eq!(
            (n("GET", "200"), n("GET", "404"), n("POST", "200")),
            (2, 1, 1)
        );
        let h = |v: &HistogramVec| {
            v.with_label_values(&["route-metrics-test"])
                .get_sample_count()
        };
        assert_eq!((h(&m.request_duration), h(&m.upstream_duration)), (4, 3));
    }

    #[test]
    fn metrics_register() {
        init().unwrap();
        assert_eq!(method_label("BREW"), "OTHER");
    }
}
