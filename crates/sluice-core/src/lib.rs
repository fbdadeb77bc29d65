//! Sluice core: everything the gateway and its plugins share.
//!
//! - [`plugin`]: the [`Plugin`] trait (phases mirroring Pingora's `ProxyHttp` hooks), the
//!   flow value a request phase returns, and the explicit plugin [`Registry`].
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

pub mod config;
pub mod context;
pub mod digest;
pub mod forwarded;
pub mod metrics;
pub mod normalize;
pub mod plugin;
pub mod response;
pub mod router;
pub mod template;
pub mod trace;

pub use context::{Extensions, RequestCtx};
pub use plugin::{BuildScope, Flow, Plugin, PluginFactory, PluginSpec, Registry};
pub use response::HttpResponse;
pub use router::{Route, Router};
