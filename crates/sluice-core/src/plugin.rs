//! The plugin API: the [`Plugin`] trait whose phases mirror Pingora's `ProxyHttp` hooks,
//! the [`Flow`] a request phase returns, and the explicit [`Registry`] of plugin
//! factories the binary fills in one list.
//!
//! A plugin is (as in APISIX) a name, a priority, a typed config with defaults, and the
//! phases it implements. One instance is built per route from that route's config. The
//! proxy runs request phases in descending priority and response phases in reverse
//! (Envoy's order); only the proxy knows Pingora's "`Ok(true)` means responded" rule.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::{Error, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use serde::de::DeserializeOwned;

use crate::config::consumer::ConsumerConfig;
use crate::config::decode::{decode, FieldError};
use crate::config::path::FieldPath;
use crate::context::{CredentialNames, RequestCtx};
use crate::response::HttpResponse;

/// What a request phase decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on with the next plugin, then the upstream.
    Continue,
    /// Answer the client with this response; later plugins and the upstream are skipped.
    Respond(HttpResponse),
    /// The plugin already wrote the whole response itself (e.g. a stream).
    Responded,
}

/// One plugin instance, configured for one route.
///
/// Every phase has a default that does nothing, so a plugin implements only what it needs.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// The plugin's name as written in the config (`kafka-logger`).
    fn name(&self) -> &'static str;

    /// Higher runs first in request phases (APISIX convention).
    fn priority(&self) -> i32;

    /// True when the plugin answers requests itself, so its route needs no upstream.
    fn answers_requests(&self) -> bool {
        false
    }

    /// True when the plugin wants to see the request body (its `request_body` phase),
    /// also on routes where another plugin answers the request without reading it.
    fn wants_request_body(&self) -> bool {
        false
    }

    /// True when the plugin reads the request body itself in its `request` phase (so the
    /// proxy must not read it first).
    fn reads_request_body(&self) -> bool {
        false
    }

    /// Header and query parameter names that carry credentials this plugin checks
    /// (authentication plugins). Loggers redact them on every request of the route,
    /// whether this plugin ran, refused or accepted the request.
    fn credential_names(&self) -> CredentialNames {
        CredentialNames::default()
    }

    /// After routing, before the upstream is chosen (`request_filter`).
    async fn request(&self, _session: &mut Session, _ctx: &mut RequestCtx) -> Result<Flow> {
        Ok(Flow::Continue)
    }

    /// The request header about to be sent upstream (`upstream_request_filter`).
    async fn upstream_request(
        &self,
        _session: &mut Session,
        _request: &mut RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        Ok(())
    }

    /// Each chunk of the request body on its way upstream (`request_body_filter`).
    async fn request_body(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        Ok(())
    }

    /// The response header on its way to the client (`response_filter`).
    async fn response(
        &self,
        _session: &mut Session,
        _response: &mut ResponseHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        Ok(())
    }

    /// Each chunk of the response body on its way to the client (`response_body_filter`).
    /// Synchronous, as in Pingora: never wait here.
    fn response_body(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        Ok(())
    }

    /// After the response was sent or the request failed (`logging`). Always runs.
    async fn log(&self, _session: &mut Session, _error: Option<&Error>, _ctx: &mut RequestCtx) {}
}

/// What a plugin factory may look at while building an instance.
pub struct BuildScope<'a> {
    /// The route the instance is for.
    pub route_id: &'a str,
    /// Every cluster name declared under `kafka.clusters`, valid or not, so that a
    /// reference to a cluster with its own errors is not reported twice.
    pub declared_clusters: &'a BTreeSet<String>,
    /// The API clients under `consumers:` that decoded (authentication plugins build
    /// their credential tables from them).
    pub consumers: &'a [ConsumerConfig],
    /// True when one of the route's plugins authenticates requests (so every request
    /// that reaches later phases has a consumer).
    pub authenticates: bool,
    /// The top-level `redis:` section, when present and valid (plugins with
    /// `policy: redis` need it).
    pub redis: Option<&'a crate::config::redis::RedisConfig>,
}

/// Builds plugin instances from their YAML config. Implemented for every [`PluginSpec`].
pub trait PluginFactory: Send + Sync {
    /// The plugin's config name.
    fn name(&self) -> &'static str;
    /// True for authentication plugins: they refuse requests without a consumer.
    fn authenticates(&self) -> bool {
        false
    }
    /// Build one instance; errors carry paths relative to `at` (the plugin's config node).
    fn build(
        &self,
        config: &serde_yaml::Value,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>>;
    /// `config` as the plugin reads it, every default filled in (`None` when it does
    /// not decode).
    fn effective(&self, config: &serde_yaml::Value) -> Option<serde_yaml::Value>;
}

/// The typed side of a plugin: its config struct and how to build an instance from it.
pub trait PluginSpec: Send + Sync + 'static {
    /// The plugin's config name.
    const NAME: &'static str;
    /// Its typed config (`#[serde(deny_unknown_fields)]`); serializable, so that the
    /// admin API can show it with every default filled in.
    type Config: DeserializeOwned + serde::Serialize;
    /// True for authentication plugins (every request they let through has a consumer).
    const AUTHENTICATES: bool = false;
    /// Check the config's meaning and build an instance. Errors carry paths relative to
    /// the plugin's config node (`at`).
    fn build(
        &self,
        config: Self::Config,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>>;
}

impl<S: PluginSpec> PluginFactory for S {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn authenticates(&self) -> bool {
        S::AUTHENTICATES
    }

    fn build(
        &self,
        config: &serde_yaml::Value,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>> {
        // `plugin-name: {}` and `plugin-name:` (null) both mean "all defaults".
        let empty = serde_yaml::Value::Mapping(Default::default());
        let config = if config.is_null() { &empty } else { config };
        let typed = decode::<S::Config>(config, at)?;
        PluginSpec::build(self, typed, at, scope)
    }

    fn effective(&self, config: &serde_yaml::Value) -> Option<serde_yaml::Value> {
        let empty = serde_yaml::Value::Mapping(Default::default());
        let config = if config.is_null() { &empty } else { config };
        let typed = decode::<S::Config>(config, &FieldPath::root()).ok()?;
        serde_yaml::to_value(&typed).ok()
    }
}

/// The plugins the binary knows, by name.
#[derive(Default)]
pub struct Registry {
    factories: BTreeMap<&'static str, Arc<dyn PluginFactory>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a plugin factory; a later one with the same name replaces the earlier.
    pub fn register(&mut self, factory: impl PluginFactory + 'static) -> &mut Self {
        self.factories.insert(factory.name(), Arc::new(factory));
        self
    }

    /// The factory for `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn PluginFactory>> {
        self.factories.get(name)
    }

    /// All registered names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.factories.keys().copied().collect()
    }
}
