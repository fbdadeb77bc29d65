//! Local (per instance) rate limiting for the `limit-req` and `limit-count` plugins.
//!
//! - [`clock`]: a monotonic clock, and a manual one for exact tests.
//! - [`key`]: what a limit counts by (`remote_addr`, `consumer`, `route` or a template).
//! - [`table`]: a sharded, bounded map from key to limiter state.
//! - [`leaky`]: the leaky bucket (rate and burst) of `limit-req`, as nginx's `limit_req`.
//! - [`window`]: fixed and sliding windows (count per time window) of `limit-count`.
//! - [`reply`]: the config fields every limit has, the refusal, and [`Keyed`] (key,
//!   state table and clock of one plugin instance).
//!
//! State lives in the plugin instance of one route on one Sluice process: several
//! instances behind a load balancer each allow the full limit.

pub use sluice_core::clock;
pub mod key;
pub mod leaky;
pub mod reply;
pub mod table;
pub mod window;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use key::LimitKey;
pub use leaky::{Decision, LeakyBucket, LeakyState};
pub use reply::{CommonLimitConfig, Keyed, OnStoreError};
pub use table::{Expiring, Table};
pub use window::{Policy, Quota, WindowCounter, WindowState};

/// Whole seconds for `Retry-After` and `RateLimit-Reset`: rounded up, at least 1 when
/// there is anything to wait for.
pub fn ceil_secs(d: std::time::Duration) -> u64 {
    let s = d.as_secs();
    if d.subsec_nanos() > 0 {
        s + 1
    } else {
        s
    }
}
