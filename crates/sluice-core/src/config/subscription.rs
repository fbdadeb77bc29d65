//! `subscriptions[]:` — background Kafka consumers that deliver records elsewhere. The
//! fields here are every subscription's; the one remaining key names the subscription
//! plugin that delivers (e.g. `kafka-webhook:`) and holds its config, which the plugin
//! decodes. Field docs are user documentation.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::kafka::PropertyValue;

/// One subscription.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SubscriptionConfig {
    /// Unique id; used in metrics and in the default group name.
    pub id: String,
    /// The cluster (a name under `kafka.clusters`). Default `default`.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group: Sluice instances with the same group share the partitions.
    /// Default `sluice-<id>`.
    #[serde(default)]
    pub group: Option<String>,
    /// Where a group without committed offsets starts: `earliest` (default) or `latest`.
    #[serde(default)]
    pub start: SubscriptionStart,
    /// librdkafka consumer properties of this subscription, passed as-is (e.g.
    /// `session.timeout.ms: 10000`); they override the cluster's `properties`. The group,
    /// start position and commit settings are Sluice's (`group`, `start`).
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
    /// The delivering plugin's block, by plugin name (exactly one, e.g.
    /// `kafka-webhook: {...}`, see `plugins/kafka-webhook/README.md`).
    #[serde(flatten)]
    pub plugin: BTreeMap<String, serde_yaml::Value>,
}

/// The fields every subscription has (for errors about the other keys).
pub const FIELDS: &str = "id, cluster, topics, group, start, properties";

/// Start position of a new consumer group.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStart {
    /// The oldest records kept.
    #[default]
    Earliest,
    /// Records produced from now on.
    Latest,
}

impl SubscriptionConfig {
    /// The consumer group.
    pub fn group(&self) -> String {
        self.group
            .clone()
            .unwrap_or_else(|| format!("sluice-{}", self.id))
    }
}

fn default_cluster() -> String {
    "default".into()
}
