//! The Kafka runtime: every configured cluster, the Pingora background service that
//! starts their producers (librdkafka threads must not be created before Pingora forks
//! or builds its runtimes), and the shutdown flush.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_core::services::ServiceReadyNotifier;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::config::ClusterConfig;

use crate::cluster::{producer_config, Cluster, FlushOutcome};
use crate::error::StartError;

/// All clusters of one configuration.
#[derive(Default)]
pub struct KafkaRuntime {
    clusters: BTreeMap<String, Arc<Cluster>>,
}

impl KafkaRuntime {
    /// Clusters from config; nothing is started.
    pub fn new(configs: &BTreeMap<String, ClusterConfig>) -> Self {
        Self::reusing(configs, None)
    }

    /// Clusters from config, reusing the (running) clusters of `old` whose name and
    /// settings did not change — their producers, spool and connections carry on.
    pub fn reusing(configs: &BTreeMap<String, ClusterConfig>, old: Option<&KafkaRuntime>) -> Self {
        Self {
            clusters: configs
                .iter()
                .map(|(n, c)| {
                    let kept = old
                        .and_then(|o| o.clusters.get(n))
                        .filter(|o| o.config() == c)
                        .cloned();
                    (
                        n.clone(),
                        kept.unwrap_or_else(|| Arc::new(Cluster::new(n, c.clone()))),
                    )
                })
                .collect(),
        }
    }

    /// Clusters of `self` that `next` does not use (replaced or removed).
    pub fn retired_by(&self, next: &KafkaRuntime) -> Vec<Arc<Cluster>> {
        self.clusters
            .values()
            .filter(|c| !next.clusters.values().any(|n| Arc::ptr_eq(c, n)))
            .cloned()
            .collect()
    }

    /// The cluster called `name`.
    pub fn cluster(&self, name: &str) -> Option<Arc<Cluster>> {
        self.clusters.get(name).cloned()
    }

    /// Every cluster, by name.
    pub fn clusters(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        self.clusters.values()
    }

    /// True when every producer has been created.
    pub fn is_started(&self) -> bool {
        self.clusters.values().all(|c| c.is_started())
    }

    /// Start every cluster that is not running yet. On failure the error names the
    /// cluster.
    pub async fn start(&self) -> Result<(), StartError> {
        for c in self.clusters.values().filter(|c| !c.is_started()) {
            c.start().await?;
            match &c.config().dev_broker {
                Some(_) => log::info!(
                    "kafka cluster `{}`: embedded dev broker listening on {} (try: sluice tail --brokers {} TOPIC)",
                    c.name(),
                    c.bootstrap().unwrap_or("?"),
                    c.bootstrap().unwrap_or("?"),
                ),
                None => log::info!(
                    "kafka cluster `{}`: producer started for {}",
                    c.name(),
                    c.bootstrap().unwrap_or("?")
                ),
            }
        }
        Ok(())
    }

    /// Flush every producer (in parallel), then purge what is left; counted either way.
    pub fn shutdown(&self) -> BTreeMap<String, FlushOutcome> {
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .clusters
                .iter()
                .map(|(n, c)| (n.clone(), s.spawn(move || c.shutdown())))
                .collect();
            handles
                .into_iter()
                .map(|(n, h)| (n, h.join().unwrap_or_default()))
                .collect()
        })
    }
}

/// Check librdkafka properties without connecting anywhere: every unknown property or
/// bad value becomes an error at `kafka.clusters.<name>.properties.<key>`.
pub fn validate_properties(configs: &BTreeMap<String, ClusterConfig>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (name, c) in configs {
        let at = FieldPath::root().key("kafka").key("clusters").key(name);
        // Check each pass-through property on its own so every bad one is reported.
        for key in c.properties.keys() {
            let mut single = c.clone();
            single.properties.retain(|k, _| k == key);
            if let Err(e) = producer_config(&single, "127.0.0.1:9092").create_native_config() {
                errors.push(FieldError::value(
                    at.key("properties").key(key),
                    format!("rejected by librdkafka: {e}"),
                ));
            }
        }
        if c.properties.is_empty() {
            if let Err(e) = producer_config(c, "127.0.0.1:9092").create_native_config() {
                errors.push(FieldError::value(
                    at,
                    format!("rejected by librdkafka: {e}"),
                ));
            }
        }
    }
    errors
}

/// The background service that starts the producers; the proxy listeners depend on it.
pub struct KafkaService(pub Arc<KafkaRuntime>);

#[async_trait]
impl BackgroundService for KafkaService {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        if let Err(e) = self.0.start().await {
            log::error!("{e}");
            // Without producers the gateway would silently discard every event.
            std::process::exit(1);
        }
        ready.notify_ready();
        let _ = shutdown.changed().await;
    }
}
