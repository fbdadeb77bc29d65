//! Shared state on Redis, for plugins whose state must be the same on every Sluice
//! instance (`limit-count`, `limit-req` and `kafka-divert`'s idempotency keys with
//! `policy: redis`).
//!
//! - [`StorePolicy`]: the `policy` field those plugins share (`local` or `redis`).
//! - [`Stores`]: the runtime the plugin factories hold; hands out one [`Redis`] per
//!   `redis:` section, reused across reloads while the section is unchanged.
//! - [`Redis`]: one server or one Redis Cluster behind multiplexed, automatically
//!   reconnecting connections driven by a small runtime of its own, and
//!   [`Redis::eval`], which runs a Lua script atomically and never waits longer than
//!   `redis.timeout`.
//! - [`StoreError`]: what went wrong, as a fixed metric label; [`count_error`] counts it
//!   in `sluice_store_errors_total{plugin,kind}`.

mod client;
mod connection;
mod errors;

pub use client::{Redis, Stores};
pub use errors::{count_error, init, StoreError, StoreFailed};
pub use redis::{Script, Value};

/// Where a plugin keeps its state (`policy:`).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StorePolicy {
    /// In this process.
    #[default]
    Local,
    /// In the top-level `redis:` server, shared by every instance using it.
    Redis,
}
