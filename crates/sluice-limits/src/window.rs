//! The windows of `limit-count`: at most `count` requests per `time_window` and key.
//!
//! - `fixed`: the window starts with a key's first request and resets `time_window` later
//!   (APISIX's local policy). Simple, but a client can send `2 × count` around a reset.
//! - `sliding`: windows aligned on the clock; the estimate is the current window's count
//!   plus the previous window's, weighted by how much of it still overlaps the last
//!   `time_window` (Cloudflare's approximation). No double burst at the boundary.

use std::time::Duration;

use crate::table::Expiring;

/// Which window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Starts at a key's first request.
    Fixed,
    /// Sliding estimate over two aligned windows.
    Sliding,
}

/// Per-key state.
#[derive(Debug, Clone, Copy)]
pub struct WindowState {
    /// Fixed: the window's start. Sliding: the current aligned window's index.
    start: u64,
    current: u64,
    previous: u64,
    window: Duration,
    policy: Policy,
}

impl Expiring for WindowState {
    fn expired(&self, now: Duration) -> bool {
        let w = self.window.as_nanos().max(1);
        match self.policy {
            Policy::Fixed => now.as_nanos() >= u128::from(self.start) + w,
            Policy::Sliding => now.as_nanos() / w >= u128::from(self.start) + 2,
        }
    }
}

/// What the counter says about one request; also what goes into `RateLimit-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Whether the request is within the limit (it was counted).
    pub allowed: bool,
    /// Requests left in the window after this one.
    pub remaining: u64,
    /// Until the window resets (fixed) or the next window starts (sliding); for a
    /// rejected request, until the same request would be accepted.
    pub reset: Duration,
}

/// `count` requests per `window`.
#[derive(Debug, Clone, Copy)]
pub struct WindowCounter {
    count: u64,
    window: Duration,
    policy: Policy,
}

impl WindowCounter {
    /// A counter; `count` ≥ 1 and `window` > 0 are checked by the config.
    pub fn new(count: u64, window: Duration, policy: Policy) -> Self {
        Self {
            count,
            window,
            policy,
        }
    }

    /// A fresh state for a key seen first at `now`.
    pub fn state(&self, now: Duration) -> WindowState {
        WindowState {
            start: self.window_start(now),
            current: 0,
            previous: 0,
            window: self.window,
            policy: self.policy,
        }
    }

    /// Requests allowed per window.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Fixed or sliding.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The state of a sliding window kept elsewhere (a shared store): the aligned
    /// window's index, and the current and previous windows' counts.
    pub fn sliding_state(&self, index: u64, current: u64, previous: u64) -> WindowState {
        WindowState {
            start: index,
            current,
            previous,
            window: self.window,
            policy: Policy::Sliding,
        }
    }

    fn nanos(d: Duration) -> u64 {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    fn window_start(&self, now: Duration) -> u64 {
        match self.policy {
            Policy::Fixed => Self::nanos(now),
            Policy::Sliding => Self::nanos(now) / Self::nanos(self.window).max(1),
        }
    }

    /// Account one request at `now`.
    pub fn check(&self, s: &mut WindowState, now: Duration) -> Quota {
        match self.policy {
            Policy::Fixed => self.fixed(s, now),
            Policy::Sliding => self.sliding(s, now),
        }
    }

    fn fixed(&self, s: &mut WindowState, now: Duration) -> Quota {
        let now_ns = Self::nanos(now);
        let w = Self::nanos(self.window);
        if now_ns >= s.start.saturating_add(w) {
            s.start = now_ns;
            s.current = 0;
        }
        let reset = Duration::from_nanos(s.start.saturating_add(w).saturating_sub(now_ns));
        if s.current >= self.count {
            return Quota {
                allowed: false,
                remaining: 0,
                reset,
            };
        }
        s.current += 1;
        Quota {
            allowed: true,
            remaining: self.count - s.current,
            reset,
        }
    }

    fn sliding(&self, s: &mut WindowState, now: Duration) -> Quota {
        let w = Self::nanos(self.window).max(1);
        let now_ns = Self::nanos(now);
        let index = now_ns / w;
        if index == s.start + 1 {
            s.previous = s.current;
            s.current = 0;
        } else if index > s.start + 1 {
            s.previous = 0;
            s.current = 0;
        }
        s.start = index;
        let into = (now_ns - index * w) as f64 / w as f64;
        let estimate = s.previous as f64 * (1.0 - into) + s.current as f64;
        let next_window = Duration::from_nanos((index + 1) * w - now_ns);
        let limit = self.count as f64;
        if estimate + 1.0 > limit + 1e-9 {
            return Quota {
                allowed: false,
                remaining: 0,
                reset: self.sliding_wait(s, into, next_window),
            };
        }
        s.current += 1;
        Quota {
            allowed: true,
            remaining: (limit - estimate - 1.0).max(0.0).floor() as u64,
            reset: next_window,
        }
    }

    /// How long until `previous × (1 - t) + current + 1 ≤ count`.
    fn sliding_wait(&self, s: &WindowState, into: f64, next_window: Duration) -> Duration {
        let limit = self.count as f64;
        let w = self.window.as_secs_f64();
        let current = s.current as f64;
        if current + 1.0 <= limit && s.previous > 0 {
            // Within this window, once enough of the previous one has slid out.
            let t = 1.0 - (limit - current - 1.0) / s.previous as f64;
            return Duration::from_secs_f64(((t - into) * w).max(0.0));
        }
        // In the next window, where this window's count is the weighted one.
        let t = if current > limit - 1.0 && current > 0.0 {
            1.0 - (limit - 1.0) / current
        } else {
            0.0
        };
        next_window + Duration::from_secs_f64((t * w).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn allowed(c: &WindowCounter, s: &mut WindowState, ms: u64, n: usize) -> usize {
        (0..n).filter(|_| c.check(s, at(ms)).allowed).count()
    }

    #[test]
    fn fixed_window_counts_exactly() {
        let c = WindowCounter::new(3, Duration::from_secs(60), Policy::Fixed);
        let mut s = c.state(at(5_000));
        let q = c.check(&mut s, at(5_000));
        assert_eq!(
            q,
            Quota {
                allowed: true,
                remaining: 2,
                reset: Duration::from_secs(60)
            }
        );
        assert_eq!(allowed(&c, &mut s, 20_000, 5), 2);
        let q = c.check(&mut s, at(30_000));
        assert_eq!(
            q,
            Quota {
                allowed: false,
                remaining: 0,
                reset: Duration::from_secs(35)
            }
        );
        // The window started at the first request (5 s): it resets at 65 s.
        assert_eq!(allowed(&c, &mut s, 64_999, 1), 0);
        assert!(!s.expired(at(64_999)));
        assert!(s.expired(at(65_000)));
        assert_eq!(allowed(&c, &mut s, 65_000, 5), 3);
    }

    #[test]
    fn sliding_window_weights_the_previous_one() {
        let c = WindowCounter::new(10, Duration::from_secs(10), Policy::Sliding);
        let mut s = c.state(at(0));
        assert_eq!(allowed(&c, &mut s, 9_000, 15), 10);
        // 2.5 s into the next window, 75 % of the previous 10 still count (7.5): two more
        // fit (8.5, 9.5), a third would make 10.5.
        assert_eq!(allowed(&c, &mut s, 12_500, 5), 2);
        // A rejected request learns when one more fits: once 0.5 more of the previous
        // window has slid out, i.e. 0.5 s later (7 + 2 + 1 = 10).
        let q = c.check(&mut s, at(12_500));
        assert!(!q.allowed);
        assert_eq!(q.reset, at(500));
        let retry = at(12_500) + q.reset;
        assert!(
            c.check(&mut s.clone(), retry).allowed,
            "allowed at {retry:?}"
        );
        assert!(!c.check(&mut s.clone(), retry - at(50)).allowed);
        // Two windows later nothing counts any more.
        assert!(s.expired(at(30_000)));
        assert_eq!(allowed(&c, &mut s, 30_000, 20), 10);
    }

    #[test]
    fn sliding_no_double_burst_at_the_boundary() {
        let c = WindowCounter::new(100, Duration::from_secs(60), Policy::Sliding);
        let mut s = c.state(at(0));
        assert_eq!(allowed(&c, &mut s, 59_900, 150), 100);
        assert_eq!(
            allowed(&c, &mut s, 60_100, 150),
            0,
            "the previous window still counts fully"
        );
        let fixed = WindowCounter::new(100, Duration::from_secs(60), Policy::Fixed);
        let mut f = fixed.state(at(0));
        assert_eq!(allowed(&fixed, &mut f, 0, 1), 1);
        assert_eq!(allowed(&fixed, &mut f, 59_900, 150), 99);
        assert_eq!(
            allowed(&fixed, &mut f, 60_100, 150),
            100,
            "fixed: a second burst"
        );
    }
}
