//! The leaky bucket of `limit-req`, nginx's `limit_req` algorithm: requests drain at
//! `rate` per second; up to `burst` requests above the rate are accepted (delayed until
//! their turn, or at once with `nodelay`); beyond that they are rejected.

use std::time::Duration;

use crate::table::Expiring;

/// Per-key state: requests above the rate still in the bucket, as of `last`.
#[derive(Debug, Clone, Copy)]
pub struct LeakyState {
    excess: f64,
    last: Duration,
    rate: f64,
}

impl Expiring for LeakyState {
    fn expired(&self, now: Duration) -> bool {
        now.saturating_sub(self.last).as_secs_f64() * self.rate >= self.excess
    }
}

/// What the bucket decided for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Accepted; wait this long before going on (zero when within the rate or `nodelay`).
    Allow(Duration),
    /// Rejected; the same request would be accepted after this long.
    Reject(Duration),
}

/// Rate and burst of one `limit-req`.
#[derive(Debug, Clone, Copy)]
pub struct LeakyBucket {
    rate: f64,
    burst: f64,
    nodelay: bool,
}

impl LeakyBucket {
    /// `rate` requests per second (> 0), `burst` extra requests, delayed unless `nodelay`.
    pub fn new(rate: f64, burst: f64, nodelay: bool) -> Self {
        Self {
            rate,
            burst,
            nodelay,
        }
    }

    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Requests above the rate accepted.
    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// Whether accepted requests above the rate go on at once.
    pub fn nodelay(&self) -> bool {
        self.nodelay
    }

    /// A fresh state for a key seen for the first time at `now`.
    pub fn state(&self, now: Duration) -> LeakyState {
        LeakyState {
            excess: -1.0,
            last: now,
            rate: self.rate,
        }
    }

    /// Account one request at `now`.
    pub fn check(&self, s: &mut LeakyState, now: Duration) -> Decision {
        let elapsed = now.saturating_sub(s.last).as_secs_f64();
        let excess = (s.excess - self.rate * elapsed).max(-1.0) + 1.0;
        // The tolerance keeps a client sending exactly at the rate from being rejected
        // by floating-point rounding.
        if excess > self.burst + 1e-9 {
            let wait = (excess - self.burst) / self.rate;
            return Decision::Reject(Duration::from_secs_f64(wait.max(0.0)));
        }
        s.excess = excess;
        s.last = now;
        if self.nodelay || excess <= 1e-9 {
            Decision::Allow(Duration::ZERO)
        } else {
            Decision::Allow(Duration::from_secs_f64(excess / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(b: &LeakyBucket, s: &mut LeakyState, at_ms: u64, n: usize) -> (usize, usize) {
        let now = Duration::from_millis(at_ms);
        let mut ok = 0;
        let mut rejected = 0;
        for _ in 0..n {
            match b.check(s, now) {
                Decision::Allow(_) => ok += 1,
                Decision::Reject(_) => rejected += 1,
            }
        }
        (ok, rejected)
    }

    #[test]
    fn rate_and_burst_are_exact() {
        // 10 r/s, burst 5: a burst of 20 at t=0 lets 1 + 5 through.
        let b = LeakyBucket::new(10.0, 5.0, true);
        let mut s = b.state(Duration::ZERO);
        assert_eq!(run(&b, &mut s, 0, 20), (6, 14));
        // 100 ms later exactly one more request has drained.
        assert_eq!(run(&b, &mut s, 100, 5), (1, 4));
        // After 1 s the bucket is empty again: 1 + 5.
        assert_eq!(run(&b, &mut s, 1100, 10), (6, 4));
    }

    #[test]
    fn steady_rate_is_never_rejected() {
        let b = LeakyBucket::new(50.0, 0.0, false);
        let mut s = b.state(Duration::ZERO);
        for i in 0..500 {
            assert_eq!(run(&b, &mut s, i * 20, 1), (1, 0), "request {i}");
        }
        // Twice the rate: every other request is rejected.
        let mut s = b.state(Duration::ZERO);
        let rejected: usize = (0..100).map(|i| run(&b, &mut s, i * 10, 1).1).sum();
        assert_eq!(rejected, 50);
    }

    #[test]
    fn delays_and_retry_after() {
        let b = LeakyBucket::new(2.0, 2.0, false);
        let mut s = b.state(Duration::ZERO);
        assert_eq!(
            b.check(&mut s, Duration::ZERO),
            Decision::Allow(Duration::ZERO)
        );
        assert_eq!(
            b.check(&mut s, Duration::ZERO),
            Decision::Allow(Duration::from_millis(500))
        );
        assert_eq!(
            b.check(&mut s, Duration::ZERO),
            Decision::Allow(Duration::from_secs(1))
        );
        assert_eq!(
            b.check(&mut s, Duration::ZERO),
            Decision::Reject(Duration::from_millis(500))
        );
        assert!(!s.expired(Duration::from_millis(900)));
        assert!(s.expired(Duration::from_secs(1)));
    }
}
