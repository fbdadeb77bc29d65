//! The running configuration, shared by the proxy, the admin listener and the control
//! service: routes and upstreams, and the Kafka clusters, each swapped atomically on a
//! reload (requests in flight keep the generation they started with). Clusters replaced
//! by a reload are kept until they are flushed.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use sluice_core::config::Config;
use sluice_kafka::{Cluster, KafkaRuntime};

use crate::proxy::GatewayState;
use crate::subscriptions::Subscriptions;

/// The live configuration.
pub struct Live {
    /// The configuration file.
    pub file: String,
    /// Routes and upstreams.
    pub state: ArcSwap<GatewayState>,
    /// Kafka clusters.
    pub kafka: ArcSwap<KafkaRuntime>,
    /// The decoded configuration of the current generation.
    pub config: ArcSwap<Config>,
    /// Clusters replaced by a reload and not yet flushed.
    pub retired: Mutex<Vec<Arc<Cluster>>>,
    /// Webhook subscriptions.
    pub subscriptions: Arc<Subscriptions>,
    /// Set once the control service listens for `SIGHUP` (readiness waits for it, so a
    /// reload signalled after `/readyz` said 200 is never missed).
    pub reloadable: AtomicBool,
}

impl Live {
    /// The first generation.
    pub fn new(
        file: &str,
        config: Config,
        kafka: Arc<KafkaRuntime>,
        state: GatewayState,
    ) -> Arc<Self> {
        Arc::new(Self {
            file: file.to_string(),
            state: ArcSwap::from_pointee(state),
            kafka: ArcSwap::new(kafka),
            config: ArcSwap::from_pointee(config),
            retired: Mutex::new(Vec::new()),
            subscriptions: Arc::new(Subscriptions::default()),
            reloadable: AtomicBool::new(false),
        })
    }

    /// Flush every cluster, current and retired (at exit).
    pub fn shutdown_kafka(&self) {
        let retired: Vec<Arc<Cluster>> =
            std::mem::take(&mut *self.retired.lock().unwrap_or_else(|p| p.into_inner()));
        for c in retired {
            let o = c.shutdown();
            log::info!(
                "kafka cluster `{}` (retired): shutdown flush done ({} queued, {} purged)",
                c.name(),
                o.queued,
                o.purged
            );
        }
        for (cluster, o) in self.kafka.load().shutdown() {
            log::info!(
                "kafka cluster `{cluster}`: shutdown flush done ({} queued, {} purged{})",
                o.queued,
                o.purged,
                if o.spooled && o.purged > 0 {
                    ", moved to the spool"
                } else {
                    ""
                }
            );
        }
    }
}
