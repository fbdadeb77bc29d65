//! Sluice core: everything the gateway and its plugins share.
//!
//! - [`plugin`]: the [`Plugin`] trait (phases mirroring Pingora's `ProxyHttp` hooks, each
//!   seeing only what it is about), per-phase plugin lists, the subscription plugin
//!   trait, and the explicit plugin [`Registry`].
//! - `testkit` (feature `testkit`, for plugin crates' tests): a fake exchange and a
//!   recorder, to test plugins through their trait.
//! - [`clock`]: the monotonic clock plugins count time with, and a manual one for tests.
//! - [`context`]: the per-request context every phase receives.
//! - [`digest`]: fixed-size digests of client-chosen keys for bounded tables.
//! - [`forwarded`]: the client address behind trusted proxies.
//! - [`config`]: the YAML configuration model, its loader and validator (every error with
//!   `file:line:col: path: message`).
//! - [`normalize`]: request path and host normalization before routing.
//! - [`router`]: route matching (exact and prefix paths, methods, hosts; most specific wins).
//! - [`template`]: key/topic templates over request data.
//! - [`trace`]: W3C `traceparent` carried into Kafka headers.
//! - [`response`]: small HTTP responses, including `application/problem+json` errors.
//! - [`metrics`]: the HTTP-side Prometheus metrics.

pub mod clock;
pub mod config;
pub mod context;
pub mod digest;
pub mod forwarded;
pub mod internal_event;
pub mod kept;
pub mod metric_set;
pub mod metrics;
pub mod normalize;
pub mod plugin;
pub mod response;
pub mod router;
pub mod template;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod trace;

pub use context::{Extensions, RequestCtx};
pub use plugin::{
    BuildScope, Flow, Phases, Plugin, PluginFactory, PluginSpec, Registry, Request, Summary,
};
pub use response::HttpResponse;
pub use router::{Route, Router};
