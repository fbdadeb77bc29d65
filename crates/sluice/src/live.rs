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
    /// Which file content is running, since when, and how the last reload went.
    pub generation: Mutex<Generation>,
}

/// What `GET /v1/config` reports.
#[derive(Debug, Clone, Default)]
pub struct Generation {
    /// SHA-256 (hex) of the file content running.
    pub sha256: String,
    /// When it was loaded (Unix seconds).
    pub loaded_at: u64,
    /// The last reload: when (Unix seconds), whether it was applied, and its errors.
    pub last_reload: Option<(u64, bool, Vec<String>)>,
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// SHA-256 (hex) of `file`'s content; empty when it cannot be read.
pub fn file_sha256(file: &str) -> String {
    use sha2::{Digest, Sha256};
    std::fs::read(file)
        .map(|b| {
            Sha256::digest(&b)
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect()
        })
        .unwrap_or_default()
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
                sha256: file_sha256(file),
                loaded_at: unix_now(),
                last_reload: None,
            }),
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
