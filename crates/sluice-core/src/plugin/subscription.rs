//! Subscription plugins: the consume side. A subscription (`subscriptions[]`) names its
//! topics and group; its one plugin block (`kafka-webhook: {...}`) says where records
//! go. A subscription plugin is added like a route plugin: a [`SubscriptionSpec`] and
//! one registry line; core runs, reloads and stops every [`Subscription`] alike.

use crate::metric_set::MetricsError;
use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use crate::config::decode::FieldError;
use crate::config::path::FieldPath;
use crate::config::SubscriptionConfig;

/// What a subscription factory may look at while building.
pub struct SubscriptionScope<'a> {
    /// Every cluster name declared under `kafka.clusters`, valid or not.
    pub declared_clusters: &'a BTreeSet<String>,
}

/// One running (or ready to run) subscription.
#[async_trait]
pub trait Subscription: Send + Sync + 'static {
    /// Its id (`subscriptions[].id`).
    fn id(&self) -> &str;

    /// True when `other` is built on the same runtime handles (the same Kafka cluster
    /// client): a reload keeps an unchanged subscription running only then.
    fn same_runtime(&self, other: &dyn Subscription) -> bool;

    /// The partitions assigned to this instance now, as (topic, partition).
    fn assigned(&self) -> Vec<(String, i32)> {
        Vec::new()
    }

    /// True while delivery is switched off (e.g. a webhook target that keeps failing).
    fn is_disabled(&self) -> bool {
        false
    }

    /// Consume until `stop` turns true; what was finished is committed, what was in
    /// flight is redelivered to the next consumer.
    async fn run(self: Arc<Self>, stop: tokio::sync::watch::Receiver<bool>);

    /// For [`Subscription::same_runtime`]'s downcast.
    fn as_any(&self) -> &dyn Any;
}

/// The typed side of a subscription plugin.
pub trait SubscriptionSpec: Send + Sync + 'static {
    /// The plugin's config name (the key of its block under `subscriptions[]`).
    const NAME: &'static str;
    /// Its typed config (`#[serde(deny_unknown_fields)]`).
    type Config: DeserializeOwned;
    /// Register the plugin's own metrics, if it has any (called once at start).
    fn init_metrics(&self) -> Result<(), MetricsError> {
        Ok(())
    }
    /// Check what this plugin knows of the subscription's own fields (e.g. consumer
    /// properties), whether or not its block decodes. `at` is the subscription's path.
    fn check(&self, _sub: &SubscriptionConfig, _at: &FieldPath) -> Vec<FieldError> {
        Vec::new()
    }
    /// Check the config's meaning and build the subscription `sub`. Errors carry paths
    /// relative to the plugin block (`at`); `sub`'s own fields are at `at.parent`.
    fn build(
        &self,
        sub: &SubscriptionConfig,
        config: Self::Config,
        at: &FieldPath,
        scope: &SubscriptionScope<'_>,
    ) -> Result<Arc<dyn Subscription>, Vec<FieldError>>;
}
