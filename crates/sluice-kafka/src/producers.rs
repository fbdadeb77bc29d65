//! The librdkafka producers of a cluster: their configuration, and one producer per
//! [`Profile`] (delivery timeout and linger) that routes need — librdkafka's
//! `message.timeout.ms` and `linger.ms` are per producer, not per message. Producers
//! for new profiles are created on demand, also after start (hot reload).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::ThreadedProducer;
use sluice_core::config::{Acks, ClusterConfig};
use sluice_spool::Spool;

use crate::context::{ClusterHealth, SluiceContext};

/// One producer.
pub type Sender = ThreadedProducer<SluiceContext>;

/// The per-producer settings a route may need different from the cluster's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Profile {
    /// `message.timeout.ms`: when an undelivered event counts as failed.
    pub delivery_timeout: Duration,
    /// `linger.ms`: how long to wait to fill a batch.
    pub linger: Duration,
}

/// The producers of a started cluster.
pub struct Producers {
    cluster: String,
    config: ClientConfig,
    health: Arc<ClusterHealth>,
    spool: Option<Arc<Spool>>,
    default_profile: Profile,
    default: Sender,
    by_profile: RwLock<BTreeMap<Profile, Sender>>,
}

impl Producers {
    /// Create the default producer.
    pub fn start(
        cluster: &str,
        config: ClientConfig,
        health: Arc<ClusterHealth>,
        spool: Option<Arc<Spool>>,
        default_profile: Profile,
    ) -> Result<Self, String> {
        let default = create(cluster, &config, 0, None, &health, &spool)?;
        Ok(Self {
            cluster: cluster.to_string(),
            config,
            health,
            spool,
            default_profile,
            default,
            by_profile: RwLock::new(BTreeMap::new()),
        })
    }

    /// The producer for `profile` (`None`: the default), creating it if needed.
    pub fn get(&self, profile: Option<Profile>) -> Result<Sender, String> {
        let Some(p) = profile.filter(|p| *p != self.default_profile) else {
            return Ok(self.default.clone());
        };
        if let Some(s) = self
            .by_profile
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&p)
        {
            return Ok(s.clone());
        }
        let mut map = self.by_profile.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(&p) {
            return Ok(s.clone());
        }
        let s = create(
            &self.cluster,
            &self.config,
            map.len() + 1,
            Some(p),
            &self.health,
            &self.spool,
        )?;
        map.insert(p, s.clone());
        Ok(s)
    }

    /// Every producer.
    pub fn all(&self) -> Vec<Sender> {
        let map = self.by_profile.read().unwrap_or_else(|e| e.into_inner());
        std::iter::once(self.default.clone())
            .chain(map.values().cloned())
            .collect()
    }
}

fn create(
    cluster: &str,
    config: &ClientConfig,
    slot: usize,
    profile: Option<Profile>,
    health: &Arc<ClusterHealth>,
    spool: &Option<Arc<Spool>>,
) -> Result<Sender, String> {
    let mut cfg = config.clone();
    if let Some(p) = profile {
        cfg.set(
            "message.timeout.ms",
            p.delivery_timeout.as_millis().max(1).to_string(),
        )
        .set("linger.ms", p.linger.as_millis().to_string());
    }
    let context = SluiceContext {
        cluster: cluster.to_string(),
        slot,
        health: health.clone(),
        spool: spool.clone(),
    };
    cfg.create_with_context(context)
        .map_err(|e| format!("kafka cluster `{cluster}`: cannot create a producer: {e}"))
}

/// The librdkafka producer properties for a cluster config.
pub fn producer_config(c: &ClusterConfig, bootstrap: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("client.id", "sluice")
        .set("statistics.interval.ms", "1000")
        // A gateway answers requests while Kafka recovers: reconnect within ~2 s instead
        // of librdkafka's 10 s backoff ceiling (overridable in `properties`).
        .set("reconnect.backoff.max.ms", "2000")
        .set(
            "queue.buffering.max.kbytes",
            (c.queue_max_bytes.0 / 1024).max(1).to_string(),
        )
        .set(
            "queue.buffering.max.messages",
            c.queue_max_messages.to_string(),
        )
        .set(
            "message.timeout.ms",
            c.delivery_timeout.0.as_millis().to_string(),
        )
        .set("linger.ms", c.linger.0.as_millis().to_string());
    match c.acks {
        Acks::All => {
            cfg.set("acks", "all").set("enable.idempotence", "true");
        }
        Acks::Leader => {
            cfg.set("acks", "1");
        }
        Acks::None => {
            cfg.set("acks", "0");
        }
    }
    for (k, v) in c.security_properties() {
        cfg.set(k, v);
    }
    for (k, v) in &c.properties {
        cfg.set(k, v.to_property());
    }
    cfg
}
