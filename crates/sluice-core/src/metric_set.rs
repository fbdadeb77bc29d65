//! One way to declare a family of Prometheus metrics: a [`MetricSet`] static registers
//! its metrics in the default registry on first use, keeps the registration error (so
//! the binary can refuse to start with it, see [`MetricSet::init`]), and hands out the
//! metrics, or `None` when registration failed, so a counting call never panics.

use once_cell::sync::Lazy;

/// Registering a metric family failed (a name clash, a bad label): the binary refuses to
/// start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot register the {family} metrics: {message}")]
pub struct MetricsError {
    /// The family (`http`, `kafka`, `kafka-divert`, ...).
    pub family: &'static str,
    /// Prometheus's reason.
    pub message: String,
}

/// A family of metrics registered on first use.
pub struct MetricSet<T: 'static> {
    family: &'static str,
    cell: Lazy<Result<T, prometheus::Error>>,
}

impl<T: Send + Sync + 'static> MetricSet<T> {
    /// A set called `family`, built and registered by `register` on first use.
    pub const fn new(family: &'static str, register: fn() -> Result<T, prometheus::Error>) -> Self {
        Self {
            family,
            cell: Lazy::new(register),
        }
    }

    /// The metrics, or `None` when their registration failed (reported by
    /// [`MetricSet::init`] at start).
    pub fn get(&self) -> Option<&T> {
        self.cell.as_ref().ok()
    }

    /// Register now, at start, so the metrics show before first use.
    pub fn init(&self) -> Result<(), MetricsError> {
        self.cell.as_ref().map(|_| ()).map_err(|e| MetricsError {
            family: self.family,
            message: e.to_string(),
        })
    }
}
