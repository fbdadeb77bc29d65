//! `sluice_cache_*`: reads by result, the view's size, records not kept, whether it
//! caught up and how current it is, per route.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts};
use sluice_core::metric_set::{MetricSet, MetricsError};

use crate::feed::Shared;

/// The plugin's metrics.
pub struct CacheMetrics {
    /// `sluice_cache_reads_total{route,result}`: `hit`, `not_modified`, `miss`, `list`,
    /// `over_capacity`, `warming_up`, `stale`, `invalid`.
    pub reads: IntCounterVec,
    /// `sluice_cache_entries{route}` / `sluice_cache_bytes{route}`: the view's size.
    pub entries: IntGaugeVec,
    /// See `entries`.
    pub bytes: IntGaugeVec,
    /// `sluice_cache_dropped_total{route}`: records not kept for lack of room.
    pub dropped: IntCounterVec,
    /// `sluice_cache_caught_up{route}`: 1 once the view reached the ends seen at start.
    pub caught_up: IntGaugeVec,
    /// `sluice_cache_staleness_seconds{route}`: since the view was last known to hold
    /// everything its topic had (-1 before the first time).
    pub staleness: GaugeVec,
}

impl CacheMetrics {
    fn register() -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["route"]);
        let m = Self {
            reads: IntCounterVec::new(
                Opts::new("sluice_cache_reads_total", "kafka-cache reads by result"),
                &["route", "result"],
            )?,
            entries: gauge("sluice_cache_entries", "Keys held by the kafka-cache view")?,
            bytes: gauge(
                "sluice_cache_bytes",
                "Bytes counted by the kafka-cache view",
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "sluice_cache_dropped_total",
                    "Records the kafka-cache view did not keep for lack of room",
                ),
                &["route"],
            )?,
            caught_up: gauge(
                "sluice_cache_caught_up",
                "1 once the kafka-cache view reached the topic's ends seen at start",
            )?,
            staleness: GaugeVec::new(
                Opts::new(
                    "sluice_cache_staleness_seconds",
                    "Seconds since the kafka-cache view was last known to hold everything its topic had",
                ),
                &["route"],
            )?,
        };
        let r = prometheus::default_registry();
        r.register(Box::new(m.reads.clone()))?;
        r.register(Box::new(m.entries.clone()))?;
        r.register(Box::new(m.bytes.clone()))?;
        r.register(Box::new(m.dropped.clone()))?;
        r.register(Box::new(m.caught_up.clone()))?;
        r.register(Box::new(m.staleness.clone()))?;
        Ok(m)
    }
}

static METRICS: MetricSet<CacheMetrics> = MetricSet::new("kafka-cache", CacheMetrics::register);

/// Register now; the binary refuses to start if this fails.
pub fn init() -> Result<(), MetricsError> {
    METRICS.init()
}

/// Results a read is counted under.
const RESULTS: [&str; 8] = [
    "hit",
    "not_modified",
    "miss",
    "list",
    "over_capacity",
    "warming_up",
    "stale",
    "invalid",
];

/// A route's read counters, looked up once (not per request).
pub struct Reads(Vec<(&'static str, prometheus::IntCounter)>);

impl Reads {
    /// The counters of `route`.
    pub fn of(route: &str) -> Self {
        Self(
            METRICS
                .get()
                .map(|m| {
                    RESULTS
                        .iter()
                        .map(|r| (*r, m.reads.with_label_values(&[route, r])))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    /// Count a read with `result`.
    pub fn count(&self, result: &str) {
        if let Some((_, c)) = self.0.iter().find(|(r, _)| *r == result) {
            c.inc();
        }
    }
}

/// Count `n` records not kept.
pub fn dropped(route: &str, n: u64) {
    if let Some(m) = METRICS.get() {
        m.dropped.with_label_values(&[route]).inc_by(n);
    }
}

/// Publish the view's size and state.
pub fn view(route: &str, s: &Shared) {
    let Some(m) = METRICS.get() else { return };
    if let Ok(v) = s.view.read() {
        let g = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        m.entries.with_label_values(&[route]).set(g(v.len()));
        m.bytes.with_label_values(&[route]).set(g(v.bytes()));
    }
    m.caught_up
        .with_label_values(&[route])
        .set(i64::from(s.caught_up()));
    m.staleness
        .with_label_values(&[route])
        .set(s.freshness.staleness().map_or(-1.0, |d| d.as_secs_f64()));
}
