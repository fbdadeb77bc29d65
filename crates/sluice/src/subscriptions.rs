//! Running the `subscriptions:` of the configuration: each is a task on the
//! subscription service's runtime. A reload keeps subscriptions whose settings and
//! cluster did not change, stops removed or changed ones (what they finished is
//! committed; what they had in flight is redelivered) and starts new ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use sluice_core::config::SubscriptionConfig;
use sluice_core::plugin::Subscription;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a stopping subscription may take to finish its attempts in flight.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// A subscription built from the configuration, with the settings it came from.
pub type Built = (SubscriptionConfig, Arc<dyn Subscription>);

struct Running {
    config: SubscriptionConfig,
    sub: Arc<dyn Subscription>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The running subscriptions.
#[derive(Default)]
pub struct Subscriptions {
    /// Serializes `apply` (the first one, at start, and those of reloads).
    applying: tokio::sync::Mutex<()>,
    runtime: Mutex<Option<Handle>>,
    /// Wanted before the service started.
    pending: Mutex<Vec<Built>>,
    running: Mutex<HashMap<String, Running>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn stop_all(stopping: Vec<Running>) {
    for r in &stopping {
        let _ = r.stop.send(true);
    }
    for r in stopping {
        let id = r.sub.id().to_string();
        if tokio::time::timeout(STOP_WAIT, r.task).await.is_err() {
            log::warn!("subscription `{id}`: did not stop within {STOP_WAIT:?}; its unfinished records are redelivered");
        }
    }
}

impl Subscriptions {
    /// The subscriptions running now, by id.
    pub fn running(&self) -> Vec<(SubscriptionConfig, Arc<dyn Subscription>)> {
        let mut v: Vec<_> = lock(&self.running)
            .values()
            .map(|r| (r.config.clone(), r.sub.clone()))
            .collect();
        v.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        v
    }

    /// What the service starts with.
    pub fn set_pending(&self, wanted: Vec<Built>) {
        *lock(&self.pending) = wanted;
    }

    /// Make `wanted` the running set. Before the service started, remembered for it.
    pub async fn apply(&self, wanted: Vec<Built>) {
        let _serial = self.applying.lock().await;
        self.apply_locked(wanted).await;
    }

    async fn apply_locked(&self, wanted: Vec<Built>) {
        let Some(rt) = lock(&self.runtime).clone() else {
            *lock(&self.pending) = wanted;
            return;
        };
        let mut stopping = Vec::new();
        let mut starting = Vec::new();
        {
            let mut running = lock(&self.running);
            let mut keep: HashMap<String, Running> = HashMap::new();
            for (config, sub) in wanted {
                match running.remove(&config.id) {
                    Some(r) if r.config == config && r.sub.same_runtime(&*sub) => {
                        keep.insert(config.id.clone(), r);
                    }
                    old => {
                        stopping.extend(old);
                        starting.push((config, sub));
                    }
                }
            }
            stopping.extend(running.drain().map(|(_, r)| r));
            *running = keep;
        }
        for r in &stopping {
            log::info!(
                "subscription `{}`: stopping (removed or changed)",
                r.sub.id()
            );
        }
        // A changed subscription stops before its successor starts, so two consumers of
        // the same group in one process do not fight over the partitions.
        stop_all(stopping).await;
        let mut running = lock(&self.running);
        for (config, sub) in starting {
            let (stop, rx) = watch::channel(false);
            let task = rt.spawn(sub.clone().run(rx));
            running.insert(
                config.id.clone(),
                Running {
                    config,
                    sub,
                    stop,
                    task,
                },
            );
        }
    }

    /// Stop everything (at shutdown).
    pub async fn shutdown(&self) {
        let stopping: Vec<Running> = lock(&self.running).drain().map(|(_, r)| r).collect();
        stop_all(stopping).await;
    }
}

/// The background service running the subscriptions.
pub struct SubscriptionService(pub Arc<Subscriptions>);

#[async_trait]
impl BackgroundService for SubscriptionService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        {
            let _serial = self.0.applying.lock().await;
            *lock(&self.0.runtime) = Some(Handle::current());
            let pending = std::mem::take(&mut *lock(&self.0.pending));
            self.0.apply_locked(pending).await;
        }
        let _ = shutdown.changed().await;
        self.0.shutdown().await;
    }
}
