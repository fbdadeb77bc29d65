//! Store errors: a typed error whose kind is a low-cardinality metric label, and the
//! `sluice_store_errors_total{plugin,kind}` counter, bumped (and logged) by the
//! [`StoreFailed`] event.

use prometheus::{IntCounterVec, Opts};
use sluice_core::internal_event::{emit, InternalEvent, LogLimiter};
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

/// A failed store operation of a plugin (`sluice_store_errors_total{plugin,kind}`),
/// logged at most once every 10 seconds: an outage fails every request and the counter
/// has them all.
pub struct StoreFailed<'a> {
    /// The plugin whose operation failed.
    pub plugin: &'a str,
    /// Why.
    pub error: &'a StoreError,
}

static FAILED_LOG: LogLimiter = LogLimiter::new(10);

impl InternalEvent for StoreFailed<'_> {
    fn count(&self) {
        if let Some(c) = ERRORS.get() {
            c.with_label_values(&[self.plugin, self.error.kind()]).inc();
        }
    }

    fn message(&self) -> String {
        format!(
            "{}: shared store: {} (counted in sluice_store_errors_total)",
            self.plugin, self.error
        )
    }

    fn limiter(&self) -> &'static LogLimiter {
        &FAILED_LOG
    }
}

/// Count and log a failed store operation of `plugin` ([`StoreFailed`]).
pub fn count_error(plugin: &str, error: &StoreError) {
    emit(StoreFailed { plugin, error });
}

/// Register the counter now (so that it is scraped, at zero, before the first error).
pub fn init() -> Result<(), MetricsError> {
    ERRORS.init()
}
