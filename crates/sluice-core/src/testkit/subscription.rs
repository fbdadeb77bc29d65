//! Building a subscription plugin from YAML as the loader does: the subscription's own
//! fields and its one plugin block, checked by the plugin's spec, errors as
//! `path: message`.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::config::path::FieldPath;
use crate::config::SubscriptionConfig;
use crate::plugin::{Subscription, SubscriptionFactory, SubscriptionScope};

/// Build the subscription `yaml` (one entry of `subscriptions[]`) with `factory`.
pub fn subscription(
    factory: &dyn SubscriptionFactory,
    yaml: &str,
) -> Result<Arc<dyn Subscription>, Vec<String>> {
    let sub: SubscriptionConfig = serde_yaml::from_str(yaml).map_err(|e| vec![e.to_string()])?;
    let block = sub.plugin.get(factory.name()).cloned().unwrap_or_default();
    let at = FieldPath::root()
        .key("subscriptions")
        .index(0)
        .key(factory.name());
    let declared = BTreeSet::from([sub.cluster.clone()]);
    let scope = SubscriptionScope {
        declared_clusters: &declared,
    };
    factory.build(&sub, &block, &at, &scope).map_err(|e| {
        e.iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect()
    })
}
