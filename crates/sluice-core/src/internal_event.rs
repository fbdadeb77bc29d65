//! Internal events, Vector's pattern: one type per failure whose [`emit`] both counts it
//! (its Prometheus metric) and logs it, so a failure is never counted without a log line
//! or logged without being counted. Log lines are rate-limited per event type: an outage
//! fails every request, the counter has them all, and the log gets one line per interval
//! saying how many were not logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A failure worth counting and logging.
pub trait InternalEvent {
    /// Bump the event's metric.
    fn count(&self);
    /// The log line (without the rate-limit note).
    fn message(&self) -> String;
    /// The log level. Default `warn`.
    fn level(&self) -> log::Level {
        log::Level::Warn
    }
    /// The rate limit of this event type's log lines.
    fn limiter(&self) -> &'static LogLimiter;
}

/// Count `event` and log it unless its type logged within its interval.
pub fn emit<E: InternalEvent>(event: E) {
    event.count();
    let level = event.level();
    if !log::log_enabled!(level) {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match event.limiter().admit(now) {
        Some(0) => log::log!(level, "{}", event.message()),
        Some(n) => log::log!(
            level,
            "{} ({n} more since the last line, not logged; all counted)",
            event.message()
        ),
        None => {}
    }
}

/// At most one line per `interval` seconds; counts what it held back.
#[derive(Debug)]
pub struct LogLimiter {
    interval: u64,
    /// Seconds since the epoch of the last line, plus one (0: never).
    last: AtomicU64,
    held: AtomicU64,
}

impl LogLimiter {
    /// One line per `interval_secs` (0: every event).
    pub const fn new(interval_secs: u64) -> Self {
        Self {
            interval: interval_secs,
            last: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// At `now` (seconds): `Some(held back since the last line)` when a line may be
    /// written, `None` when it is held back.
    pub fn admit(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now >= (last - 1).saturating_add(self.interval);
        if due
            && self
                .last
                .compare_exchange(last, now + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held.swap(0, Ordering::Relaxed));
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_number_held_back() {
        let l = LogLimiter::new(10);
        assert_eq!(l.admit(100), Some(0));
        assert_eq!(l.admit(100), None);
        assert_eq!(l.admit(109), None);
        assert_eq!(l.admit(110), Some(2));
        assert_eq!(l.admit(111), None);
        assert_eq!(l.admit(125), Some(1));
        let every = LogLimiter::new(0);
        assert_eq!(every.admit(5), Some(0));
        assert_eq!(every.admit(5), Some(0));
    }
}
