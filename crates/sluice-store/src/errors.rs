//! Store errors: a typed error whose kind is a low-cardinality metric label, and the
//! `sluice_store_errors_total{plugin,kind}` counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{IntCounterVec, Opts};
use sluice_core::metric_set::{MetricSet, MetricsError};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer within `redis.timeout` (connecting included).
    #[error("no answer from Redis within {0:?}")]
    Timeout(std::time::Duration),
    /// The connection could not be made or was lost.
    #[error("Redis connection: {0}")]
    Connection(String),
    /// Redis answered with an error (a script error, an ACL refusal, out of memory).
    #[error("Redis answered with an error: {0}")]
    Server(String),
    /// Redis answered something the caller did not expect.
    #[error("unexpected answer from Redis: {0}")]
    Answer(String),
}

impl StoreError {
    /// The `kind` label: `timeout`, `connection`, `server` or `answer`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Connection(_) => "connection",
            Self::Server(_) => "server",
            Self::Answer(_) => "answer",
        }
    }
}

impl StoreError {
    /// `e`, from an operation bounded by `timeout`.
    pub(crate) fn of_operation(e: redis::RedisError, timeout: std::time::Duration) -> Self {
        if e.is_timeout() {
            Self::Timeout(timeout)
        } else {
            e.into()
        }
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
            Self::Connection(e.to_string())
        } else {
            Self::Server(e.to_string())
        }
    }
}

static ERRORS: MetricSet<IntCounterVec> = MetricSet::new("store", || {
    let c = IntCounterVec::new(
        Opts::new(
            "sluice_store_errors_total",
            "Failed operations on the shared store (Redis), by plugin and kind",
        ),
        &["plugin", "kind"],
    )?;
    prometheus::register(Box::new(c.clone()))?;
    Ok(c)
});

/// Seconds since the Unix epoch of the last logged store error.
static LAST_LOGGED: AtomicU64 = AtomicU64::new(0);

/// Count a failed store operation of `plugin`, and log it: at most one line every 10
/// seconds, since an outage fails every request and the counter has them all.
pub fn count_error(plugin: &str, e: &StoreError) {
    if let Some(c) = ERRORS.get() {
        c.with_label_values(&[plugin, e.kind()]).inc();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_LOGGED.load(Ordering::Relaxed);
    if now >= last + 10
        && LAST_LOGGED
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        log::warn!("{plugin}: shared store: {e} (counted in sluice_store_errors_total)");
    }
}

/// Register the counter now (so that it is scraped, at zero, before the first error).
pub fn init() -> Result<(), MetricsError> {
    ERRORS.init()
}
