//! Plugin specs and the [`Registry`]: a plugin crate declares its name, priority and
//! config type once ([`PluginSpec`]), and the binary registers it with one line. The
//! registry also holds the subscription plugins ([`SubscriptionSpec`]) and hands
//! `consumers[].<plugin>` credential blocks to the authentication plugins that claim
//! them.

use crate::metric_set::MetricsError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::subscription::{Subscription, SubscriptionScope, SubscriptionSpec};
use super::Plugin;
use crate::config::consumer::ConsumerConfig;
use crate::config::decode::{decode, FieldError};
use crate::config::path::FieldPath;
use crate::config::SubscriptionConfig;

/// What a plugin factory may look at while building an instance.
pub struct BuildScope<'a> {
    /// The route the instance is for.
    pub route_id: &'a str,
    /// Every cluster name declared under `kafka.clusters`, valid or not, so that a
    /// reference to a cluster with its own errors is not reported twice.
    pub declared_clusters: &'a BTreeSet<String>,
    /// The API clients under `consumers:` that decoded (authentication plugins build
    /// their credential tables from them, with [`BuildScope::credentials`]).
    pub consumers: &'a [ConsumerConfig],
    /// True when one of the route's plugins authenticates requests (so every request
    /// that reaches later phases has a consumer).
    pub authenticates: bool,
    /// The top-level `redis:` section, when present and valid (plugins with
    /// `policy: redis` need it).
    pub redis: Option<&'a crate::config::redis::RedisConfig>,
    /// The clock plugins count time with (a manual one in tests).
    pub clock: Arc<dyn crate::clock::Clock>,
}

impl BuildScope<'_> {
    /// Every consumer's `consumers[].<plugin>` block that decodes as `T`, with the
    /// consumer's name (blocks that do not decode were reported by
    /// [`PluginSpec::check_credentials`]).
    pub fn credentials<T: DeserializeOwned>(&self, plugin: &str) -> Vec<(&str, T)> {
        self.consumers
            .iter()
            .filter_map(|c| {
                let block = c.credentials.get(plugin)?;
                let t = decode::<T>(block, &FieldPath::root()).ok()?;
                Some((c.name.as_str(), t))
            })
            .collect()
    }
}

/// One consumer's credential block for an authentication plugin:
/// `consumers[i].<plugin>:`.
pub struct CredentialBlock<'a> {
    /// The consumer's name.
    pub consumer: &'a str,
    /// The block as written.
    pub config: &'a serde_yaml::Value,
    /// Its path (for errors).
    pub at: FieldPath,
}

impl<'a> CredentialBlock<'a> {
    /// The `consumers[i].<plugin>` blocks of `consumers` (the i-th at `path(i)`).
    pub fn of(
        consumers: &'a [ConsumerConfig],
        plugin: &str,
        path: &dyn Fn(usize) -> FieldPath,
    ) -> Vec<Self> {
        consumers
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                Some(CredentialBlock {
                    consumer: &c.name,
                    config: c.credentials.get(plugin)?,
                    at: path(i).key(plugin),
                })
            })
            .collect()
    }

    /// Decode every block as `T`; decoding errors go to `errors`.
    pub fn decode_all<'b, T: DeserializeOwned>(
        blocks: &'b [CredentialBlock<'b>],
        errors: &mut Vec<FieldError>,
    ) -> Vec<(&'b CredentialBlock<'b>, T)> {
        blocks
            .iter()
            .filter_map(|b| match decode::<T>(b.config, &b.at) {
                Ok(t) => Some((b, t)),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            })
            .collect()
    }
}

/// Builds plugin instances from their YAML config. Implemented for every [`PluginSpec`].
pub trait PluginFactory: Send + Sync {
    /// The plugin's config name.
    fn name(&self) -> &'static str;
    /// Its priority (higher runs first in request phases).
    fn priority(&self) -> i32;
    /// True for authentication plugins: they refuse requests without a consumer, and
    /// claim the `consumers[].<name>` credential blocks.
    fn authenticates(&self) -> bool {
        false
    }
    /// Check the credential blocks this plugin claims (authentication plugins).
    fn check_credentials(&self, _blocks: &[CredentialBlock<'_>]) -> Vec<FieldError> {
        Vec::new()
    }
    /// Build one instance; errors carry paths relative to `at` (the plugin's config node).
    fn build(
        &self,
        config: &serde_yaml::Value,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> Result<Arc<dyn Plugin>, Vec<FieldError>>;
    /// `config` as the plugin reads it, every default filled in (`None` when it does
    /// not decode).
    fn effective(&self, config: &serde_yaml::Value) -> Option<serde_yaml::Value>;
    /// Register the plugin's metrics (at start, so they show before first use).
    fn init_metrics(&self) -> Result<(), MetricsError>;
}

/// The typed side of a plugin: its name, priority, config struct and how to build an
/// instance from it.
pub trait PluginSpec: Send + Sync + 'static {
    /// The plugin's config name.
    const NAME: &'static str;
    /// Higher runs first in request phases (APISIX's convention and, where APISIX has
    /// the plugin, its number). The README's plugin table is checked against it.
    const PRIORITY: i32;
    /// Its typed config (`#[serde(deny_unknown_fields)]`); serializable, so that the
    /// admin API can show it with every default filled in.
    type Config: DeserializeOwned + serde::Serialize;
    /// True for authentication plugins (every request they let through has a consumer;
    /// they claim the `consumers[].NAME` credential blocks).
    const AUTHENTICATES: bool = false;
    /// Authentication plugins: check every consumer's `consumers[].NAME` block (all at
    /// once, for uniqueness across consumers).
    fn check_credentials(&self, _blocks: &[CredentialBlock<'_>]) -> Vec<FieldError> {
        Vec::new()
    }
    /// Check the config's meaning and build an instance. Errors carry paths relative to
    /// the plugin's config node (`at`).
    fn build(
        &self,
        config: Self::Config,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> Result<Arc<dyn Plugin>, Vec<FieldError>>;
    /// Register the plugin's own metrics, if it has any (called once at start).
    fn init_metrics(&self) -> Result<(), MetricsError> {
        Ok(())
    }
}

/// `plugin-name: {}` and `plugin-name:` (null) both mean "all defaults".
pub(crate) fn or_empty(config: &serde_yaml::Value) -> std::borrow::Cow<'_, serde_yaml::Value> {
    if config.is_null() {
        std::borrow::Cow::Owned(serde_yaml::Value::Mapping(Default::default()))
    } else {
        std::borrow::Cow::Borrowed(config)
    }
}

impl<S: PluginSpec> PluginFactory for S {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn priority(&self) -> i32 {
        S::PRIORITY
    }

    fn authenticates(&self) -> bool {
        S::AUTHENTICATES
    }

    fn check_credentials(&self, blocks: &[CredentialBlock<'_>]) -> Vec<FieldError> {
        PluginSpec::check_credentials(self, blocks)
    }

    fn build(
        &self,
        config: &serde_yaml::Value,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> Result<Arc<dyn Plugin>, Vec<FieldError>> {
        let typed = decode::<S::Config>(&or_empty(config), at)?;
        PluginSpec::build(self, typed, at, scope)
    }

    fn effective(&self, config: &serde_yaml::Value) -> Option<serde_yaml::Value> {
        let typed = decode::<S::Config>(&or_empty(config), &FieldPath::root()).ok()?;
        serde_yaml::to_value(&typed).ok()
    }

    fn init_metrics(&self) -> Result<(), MetricsError> {
        PluginSpec::init_metrics(self)
    }
}

/// Builds subscriptions from their YAML config. Implemented for every
/// [`SubscriptionSpec`].
pub trait SubscriptionFactory: Send + Sync {
    /// The plugin's config name (the key under `subscriptions[]`).
    fn name(&self) -> &'static str;
    /// Build the subscription `sub` whose plugin block `config` is at `at`.
    fn build(
        &self,
        sub: &SubscriptionConfig,
        config: &serde_yaml::Value,
        at: &FieldPath,
        scope: &SubscriptionScope<'_>,
    ) -> Result<Arc<dyn Subscription>, Vec<FieldError>>;
    /// Register the plugin's metrics (at start).
    fn init_metrics(&self) -> Result<(), MetricsError>;
}

impl<S: SubscriptionSpec> SubscriptionFactory for S {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn build(
        &self,
        sub: &SubscriptionConfig,
        config: &serde_yaml::Value,
        at: &FieldPath,
        scope: &SubscriptionScope<'_>,
    ) -> Result<Arc<dyn Subscription>, Vec<FieldError>> {
        let mut errors = SubscriptionSpec::check(self, sub, &at.parent());
        let built = decode::<S::Config>(&or_empty(config), at)
            .and_then(|typed| SubscriptionSpec::build(self, sub, typed, at, scope));
        match built {
            Ok(s) if errors.is_empty() => Ok(s),
            Ok(_) => Err(errors),
            Err(e) => {
                errors.extend(e);
                Err(errors)
            }
        }
    }

    fn init_metrics(&self) -> Result<(), MetricsError> {
        SubscriptionSpec::init_metrics(self)
    }
}

/// The plugins the binary knows, by name.
#[derive(Default)]
pub struct Registry {
    plugins: BTreeMap<&'static str, Arc<dyn PluginFactory>>,
    subscriptions: BTreeMap<&'static str, Arc<dyn SubscriptionFactory>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a route plugin; a later one with the same name replaces the earlier.
    pub fn register(&mut self, factory: impl PluginFactory + 'static) -> &mut Self {
        self.plugins.insert(factory.name(), Arc::new(factory));
        self
    }

    /// Add a subscription plugin; a later one with the same name replaces the earlier.
    pub fn register_subscription(
        &mut self,
        factory: impl SubscriptionFactory + 'static,
    ) -> &mut Self {
        self.subscriptions.insert(factory.name(), Arc::new(factory));
        self
    }

    /// The route plugin `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn PluginFactory>> {
        self.plugins.get(name)
    }

    /// Every route plugin, by name.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<dyn PluginFactory>> {
        self.plugins.values()
    }

    /// All route plugin names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.plugins.keys().copied().collect()
    }

    /// The subscription plugin `name`.
    pub fn subscription(&self, name: &str) -> Option<&Arc<dyn SubscriptionFactory>> {
        self.subscriptions.get(name)
    }

    /// All subscription plugin names, sorted.
    pub fn subscription_names(&self) -> Vec<&'static str> {
        self.subscriptions.keys().copied().collect()
    }

    /// Register every plugin's metrics.
    pub fn init_metrics(&self) -> Result<(), MetricsError> {
        for f in self.plugins.values() {
            f.init_metrics()?;
        }
        for f in self.subscriptions.values() {
            f.init_metrics()?;
        }
        Ok(())
    }

    /// Check every credential block of `consumers` (the i-th at `path(i)`): each must
    /// belong to an authentication plugin, which checks its blocks.
    pub fn check_credentials(
        &self,
        consumers: &[ConsumerConfig],
        path: &dyn Fn(usize) -> FieldPath,
    ) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let auth: Vec<&Arc<dyn PluginFactory>> = self
            .plugins
            .values()
            .filter(|f| f.authenticates())
            .collect();
        for (i, c) in consumers.iter().enumerate() {
            for plugin in c.credentials.keys() {
                if !auth.iter().any(|f| f.name() == plugin) {
                    let names: Vec<&str> = auth.iter().map(|f| f.name()).collect();
                    errors.push(FieldError::key(
                        path(i).key(plugin),
                        format!(
                            "unknown field or authentication plugin `{plugin}` (fields: name; authentication plugins: {})",
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        for f in auth {
            errors.extend(f.check_credentials(&CredentialBlock::of(consumers, f.name(), path)));
        }
        errors
    }
}
