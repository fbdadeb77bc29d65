//! The control service: runs the active health checks of the current configuration
//! generation and reloads the configuration on SIGHUP (or when the file changes, with
//! `server.watch_config`). A valid file atomically replaces routes, upstreams and
//! plugins for new requests (in-flight requests finish on the old generation); Kafka
//! clusters whose settings did not change are reused, replaced ones are flushed after
//! the grace period; subscriptions are restarted when their settings or cluster changed.
//! An invalid file is rejected with every error and the old
//! configuration keeps serving. `sluice_config_reloads_total{result}` counts outcomes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use prometheus::IntCounterVec;
use sluice_core::metric_set::{MetricSet, MetricsError};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::live::Live;
use crate::server::load;

static RELOADS: MetricSet<IntCounterVec> = MetricSet::new("config reload", || {
    let c = IntCounterVec::new(
        prometheus::Opts::new(
            "sluice_config_reloads_total",
            "Configuration reloads by result",
        ),
        &["result"],
    )?;
    prometheus::default_registry().register(Box::new(c.clone()))?;
    for result in ["success", "failure"] {
        c.with_label_values(&[result]);
    }
    Ok(c)
});

fn count(result: &str) {
    if let Some(c) = RELOADS.get() {
        c.with_label_values(&[result]).inc();
    }
}

/// Register the reload counter now (so it is exported before the first reload).
pub fn init() -> Result<(), MetricsError> {
    RELOADS.init()
}

/// The control background service.
pub struct ControlService {
    live: Arc<Live>,
}

impl ControlService {
    /// Control over `live`.
    pub fn new(live: Arc<Live>) -> Self {
        Self { live }
    }

    /// Start the health checks of the current generation; they stop when the returned
    /// sender is dropped or set.
    fn start_health_checks(&self) -> watch::Sender<bool> {
        let (tx, rx) = watch::channel(false);
        for up in self.live.state.load().upstreams.values() {
            let (up, rx) = (up.clone(), rx.clone());
            tokio::spawn(async move { up.run_health_checks(rx).await });
        }
        tx
    }

    async fn reload(&self) -> bool {
        let old = self.live.kafka.load_full();
        let loaded = match load(&self.live.file, Some(&old)) {
            Ok(l) => l,
            Err(errors) => {
                let shown: Vec<String> = errors.0.iter().map(shown).collect();
                for e in &shown {
                    log::error!("reload rejected: {e}");
                }
                self.live.record_reload(false, shown);
                log::error!(
                    "reload rejected: {} error(s); the previous configuration keeps serving",
                    errors.0.len()
                );
                count("failure");
                return false;
            }
        };
        let current = self.live.config.load();
        if loaded.config.server != current.server || loaded.config.admin != current.admin {
            log::warn!("reload: `server` and `admin` changes take effect after a restart or graceful upgrade");
        }
        if let Err(e) = loaded.kafka.start().await {
            log::error!("reload rejected: {e}; the previous configuration keeps serving");
            self.live.record_reload(false, vec![e.to_string()]);
            // Clusters started for the new generation go again.
            for c in loaded.kafka.retired_by(&old) {
                c.shutdown();
            }
            count("failure");
            return false;
        }
        let retired = old.retired_by(&loaded.kafka);
        self.live.kafka.store(loaded.kafka);
        self.live.state.store(Arc::new(loaded.state));
        self.live.config.store(Arc::new(loaded.config));
        self.live.subscriptions.apply(loaded.subscriptions).await;
        let grace = self.live.config.load().server.grace_period.0 + Duration::from_secs(1);
        for c in retired {
            self.live
                .retired
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(c.clone());
            let live = self.live.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let name = c.name().to_string();
                let c2 = c.clone();
                let o = tokio::task::spawn_blocking(move || c2.shutdown())
                    .await
                    .unwrap_or_default();
                live.retired
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|r| !Arc::ptr_eq(r, &c));
                log::info!(
                    "kafka cluster `{name}` (replaced by a reload): flushed ({} queued, {} purged)",
                    o.queued,
                    o.purged
                );
            });
        }
        log::info!("configuration reloaded from {}", self.live.file);
        self.live.record_reload(true, Vec::new());
        count("success");
        true
    }
}

/// `e` as the log and `GET /v1/config` show it: an error about a credential does not
/// repeat the value (a secret written as a YAML number would be quoted by the decoder).
fn shown(e: &sluice_core::config::ConfigError) -> String {
    if sluice_core::config::source::is_credential(&e.path) {
        format!(
            "{}:{}:{}: {}: invalid credential value (not shown)",
            e.file, e.line, e.col, e.path
        )
    } else {
        e.to_string()
    }
}

fn modified(file: &str) -> Option<SystemTime> {
    std::fs::metadata(file).and_then(|m| m.modified()).ok()
}

#[async_trait]
impl BackgroundService for ControlService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut checks = self.start_health_checks();
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("cannot listen for SIGHUP, reload by signal is off: {e}");
                None
            }
        };
        self.live.reloadable.store(true, Ordering::Release);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut seen = modified(&self.live.file);
        loop {
            let watch = self.live.config.load().server.watch_config;
            let reload = tokio::select! {
                _ = shutdown.changed() => break,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                    log::info!("SIGHUP: reloading {}", self.live.file);
                    true
                }
                _ = tick.tick() => {
                    let now = modified(&self.live.file);
                    let changed = watch && now != seen;
                    seen = now;
                    if changed {
                        log::info!("{} changed: reloading", self.live.file);
                    }
                    changed
                }
            };
            if reload && self.reload().await {
                let _ = checks.send(true);
                checks = self.start_health_checks();
            }
        }
        let _ = checks.send(true);
    }
}
