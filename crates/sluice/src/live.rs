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
    /// Since when the configuration runs, and how the last reload went (the running
    /// file's hash is `config.source_sha256`).
    pub generation: Mutex<Generation>,
}

/// What `GET /v1/config` reports besides the configuration's own hash.
#[derive(Debug, Clone, Default)]
pub struct Generation {
    /// When the running configuration was loaded (Unix seconds).
    pub loaded_at: u64,
    /// The last reload: when (Unix seconds), whether it was applied, and its errors.
    pub last_reload: Option<(u64, bool, Vec<String>)>,
}

/// Now, in Unix seconds.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
            generation: Mutex::new(Generation {
                loaded_at: unix_now(),
                last_reload: None,
            }),
        })
    }

    /// Remember a reload: applied (the configuration runs from now on) or rejected with
    /// `errors`.
    pub fn record_reload(&self, applied: bool, errors: Vec<String>) {
        let now = unix_now();
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        if applied {
            g.loaded_at = now;
        }
        g.last_reload = Some((now, applied, errors));
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
