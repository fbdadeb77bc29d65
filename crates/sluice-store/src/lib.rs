//! Shared state on Redis, for plugins whose state must be the same on every Sluice
//! instance (`limit-count` with `policy: redis`).
//!
//! - [`Stores`]: the runtime the plugin factories hold; hands out one [`Redis`] per
//!   `redis:` section, reused across reloads while the section is unchanged.
//! - [`Redis`]: one multiplexed, automatically reconnecting connection (redis-rs's
//!   `ConnectionManager`) driven by a small runtime of its own, and [`Redis::eval`],
//!   which runs a Lua script atomically and never waits longer than `redis.timeout`.
//! - [`StoreError`]: what went wrong, as a fixed metric label; [`count_error`] counts it
//!   in `sluice_store_errors_total{plugin,kind}`.

mod client;
mod connection;
mod errors;

pub use client::{Redis, Stores};
pub use errors::{count_error, init, StoreError};
pub use redis::{Script, Value};
