//! The plugin API. A plugin is (as in APISIX) a name, a priority, a typed config with
//! defaults, and the phases it implements; one instance is built per route.
//!
//! - this module: the [`Plugin`] trait, whose phases mirror Pingora's `ProxyHttp` hooks
//!   but see only what they are about (a request view, a header, a body chunk, a summary
//!   of the finished exchange), the [`Flow`] a request phase returns and the [`Phases`]
//!   an instance declares;
//! - [`exchange`]: the request view and the capabilities the proxy lends (body reader,
//!   response writer), over the [`Exchange`] the proxy implements on Pingora's session;
//! - [`chain`]: a route's per-phase plugin lists and how a phase runs over them;
//! - [`registry`]: plugin specs (name, priority, config type), the factories built from
//!   them and the [`Registry`] the binary fills, one line per plugin;
//! - [`subscription`]: the consume-side counterpart (a spec per subscription plugin).
//!
//! Only the proxy touches `pingora_proxy::Session`; plugins are tested through this
//! trait with `testkit`.

pub mod chain;
pub mod exchange;
pub mod registry;
pub mod subscription;
pub mod upgrade;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::context::{CredentialNames, RequestCtx};
use crate::response::HttpResponse;
pub use chain::{Entry, PluginChain};
pub use exchange::{BodyReader, Exchange, Request, ResponseWriter, Summary};
pub use registry::{
    BuildScope, CredentialBlock, PluginFactory, PluginSpec, Registry, SubscriptionFactory,
};
pub use subscription::{Subscription, SubscriptionScope, SubscriptionSpec};
pub use upgrade::Upgrade;

/// What a request phase decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on with the next plugin, then the upstream.
    Continue,
    /// Answer the client with this response; later plugins and the upstream are skipped.
    Respond(HttpResponse),
    /// The plugin already wrote the whole response itself (through its
    /// [`ResponseWriter`]).
    Responded,
}

/// The phases a plugin instance implements. A route runs each phase only over the
/// plugins that declare it, so a request pays only for the phases its plugins use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phases(u8);

impl Phases {
    /// No phase (a plugin that only marks the route, e.g. with credential names).
    pub const NONE: Phases = Phases(0);
    /// [`Plugin::request`].
    pub const REQUEST: Phases = Phases(1);
    /// [`Plugin::upstream_request`].
    pub const UPSTREAM_REQUEST: Phases = Phases(1 << 1);
    /// [`Plugin::request_body`].
    pub const REQUEST_BODY: Phases = Phases(1 << 2);
    /// [`Plugin::response`].
    pub const RESPONSE: Phases = Phases(1 << 3);
    /// [`Plugin::response_body`].
    pub const RESPONSE_BODY: Phases = Phases(1 << 4);
    /// [`Plugin::log`].
    pub const LOG: Phases = Phases(1 << 5);

    /// True when every phase of `other` is in `self`.
    pub const fn contains(self, other: Phases) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Phases {
    type Output = Phases;
    fn bitor(self, rhs: Phases) -> Phases {
        Phases(self.0 | rhs.0)
    }
}

/// One plugin instance, configured for one route. Its name and priority are its spec's
/// ([`PluginSpec::NAME`], [`PluginSpec::PRIORITY`]).
///
/// Every phase has a default that does nothing; [`Plugin::phases`] says which ones the
/// instance implements (a phase it implements but does not declare never runs, which
/// the plugin's own trait-level tests catch: `testkit` runs phases through the
/// same per-phase lists as the proxy).
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// The phases this instance implements.
    fn phases(&self) -> Phases;

    /// True when the plugin answers requests itself, so its route needs no upstream.
    fn answers_requests(&self) -> bool {
        false
    }

    /// True when the plugin reads the request body itself in its `request` phase: it is
    /// lent a [`BodyReader`], and the proxy does not read the body first.
    fn reads_request_body(&self) -> bool {
        false
    }

    /// True when the plugin writes its response itself (a stream): it is lent a
    /// [`ResponseWriter`] and returns [`Flow::Responded`].
    fn writes_response(&self) -> bool {
        false
    }

    /// True when the plugin may take over the connection with an HTTP/1.1 upgrade
    /// (WebSocket): it is lent an [`Upgrade`] and returns [`Flow::Responded`] once the
    /// connection is done.
    fn upgrades_connection(&self) -> bool {
        false
    }

    /// Why the instance cannot serve yet (e.g. a view still catching up with its topic),
    /// or `None` when it can. `/readyz` answers `503` while any plugin of any route
    /// gives a reason.
    fn not_ready(&self) -> Option<String> {
        None
    }

    /// Header and query parameter names that carry credentials this plugin checks
    /// (authentication plugins). Loggers redact them on every request of the route,
    /// whether this plugin ran, refused or accepted the request.
    fn credential_names(&self) -> CredentialNames {
        CredentialNames::default()
    }

    /// After routing, before the upstream is chosen (`request_filter`).
    async fn request(&self, _req: &mut Request<'_>, _ctx: &mut RequestCtx) -> Result<Flow> {
        Ok(Flow::Continue)
    }

    /// The request header about to be sent upstream (`upstream_request_filter`).
    async fn upstream_request(
        &self,
        _upstream: &mut RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        Ok(())
    }

    /// Each chunk of the request body (`request_body_filter`, or read before a plugin
    /// that answers without reading it).
    async fn request_body(
        &self,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        Ok(())
    }

    /// The response header on its way to the client (`response_filter`).
    async fn response(&self, _response: &mut ResponseHeader, _ctx: &mut RequestCtx) -> Result<()> {
        Ok(())
    }

    /// Each chunk of the response body on its way to the client (`response_body_filter`).
    /// Synchronous, as in Pingora: never wait here.
    fn response_body(
        &self,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        Ok(())
    }

    /// After the response was sent or the request failed (`logging`).
    async fn log(&self, _exchange: &Summary<'_>, _ctx: &mut RequestCtx) {}
}
