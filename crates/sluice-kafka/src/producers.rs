//! The librdkafka producers of a cluster: their configuration, and one producer per
//! [`Profile`] (delivery timeout and linger) that routes need — librdkafka's
//! `message.timeout.ms` and `linger.ms` are per producer, not per message. Producers
//! for new profiles are created on demand, also after start (hot reload).
//!
//! A producer that hit a fatal error (e.g. the broker answered the head-of-line request
//! with an out-of-order sequence: librdkafka can no longer vouch for order or
//! once-ness) never sends again; [`Producers::replace_fatal`] swaps it for a fresh one
//! of the same profile. (A broker that merely lost its producer state is not fatal:
//! librdkafka bumps the epoch itself.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{Producer, ThreadedProducer};
use sluice_core::config::{Acks, ClusterConfig};
use sluice_spool::Spool;

use crate::context::{ClusterHealth, SluiceContext};
use crate::error::StartError;
use crate::event::code_reason;

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
    /// Every producer by profile (the default one included), with its statistics slot.
    /// Read without a lock on every send; replaced whole when a profile is added or a
    /// producer replaced (rare).
    by_profile: ArcSwap<BTreeMap<Profile, (usize, Sender)>>,
    /// Held while `by_profile` is being changed, so changes do not undo each other.
    changing: Mutex<()>,
    /// The statistics slot of the next producer made (slots are never reused: a retired
    /// producer may report once more while it is flushed).
    next_slot: AtomicUsize,
    /// Producers taken out and not dropped yet (their events still in flight): the
    /// shutdown flush covers them too.
    retiring: Mutex<Vec<(usize, Sender)>>,
}

/// A producer whose profile no longer has a user, taken out of the cluster.
pub struct Retired {
    /// Its profile.
    pub profile: Profile,
    /// Its statistics slot, to forget once it is dropped.
    pub slot: usize,
    /// The producer, to flush and drop off the async runtime (dropping joins its thread).
    pub old: Sender,
}

/// A producer taken out of service after a fatal error.
pub struct Replaced {
    /// The producer's profile.
    pub profile: Profile,
    /// The fatal error's code (snake case, e.g. `out_of_order_sequence_number`).
    pub code: String,
    /// librdkafka's description of it.
    pub message: String,
    /// The old producer, to purge and drop (off the async runtime: dropping joins its
    /// thread).
    pub old: Sender,
}

impl Producers {
    /// Create the default producer.
    pub fn start(
        cluster: &str,
        config: ClientConfig,
        health: Arc<ClusterHealth>,
        spool: Option<Arc<Spool>>,
        default_profile: Profile,
    ) -> Result<Self, StartError> {
        let default = create(cluster, &config, 0, None, &health, &spool)?;
        Ok(Self {
            cluster: cluster.to_string(),
            config,
            health,
            spool,
            default_profile,
            by_profile: ArcSwap::from_pointee(BTreeMap::from([(default_profile, (0, default))])),
            changing: Mutex::new(()),
            next_slot: AtomicUsize::new(1),
            retiring: Mutex::new(Vec::new()),
        })
    }

    /// The producer for `profile` (`None`: the default), creating it if needed.
    pub fn get(&self, profile: Option<Profile>) -> Result<Sender, StartError> {
        let p = profile.unwrap_or(self.default_profile);
        if let Some((_, s)) = self.by_profile.load().get(&p) {
            return Ok(s.clone());
        }
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.by_profile.load_full();
        if let Some((_, s)) = current.get(&p) {
            return Ok(s.clone());
        }
        let slot = self.next_slot.fetch_add(1, Ordering::AcqRel);
        let s = self.create(slot, p)?;
        let mut next = (*current).clone();
        next.insert(p, (slot, s.clone()));
        self.by_profile.store(Arc::new(next));
        Ok(s)
    }

    fn create(&self, slot: usize, p: Profile) -> Result<Sender, StartError> {
        let profile = (p != self.default_profile).then_some(p);
        create(
            &self.cluster,
            &self.config,
            slot,
            profile,
            &self.health,
            &self.spool,
        )
    }

    /// Take out the producers of profiles `used` says nobody uses any more (never the
    /// default one), for the caller to flush and drop.
    pub fn retire_unused(&self, used: impl Fn(&Profile) -> bool) -> Vec<Retired> {
        let unused = |map: &BTreeMap<Profile, (usize, Sender)>| {
            map.keys().any(|p| *p != self.default_profile && !used(p))
        };
        if !unused(&self.by_profile.load()) {
            return Vec::new();
        }
        // Under the lock, so that a profile taken into use again meanwhile either is seen
        // as used here or gets a new producer in `get` after this.
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.by_profile.load_full();
        let mut next = (*current).clone();
        let mut out = Vec::new();
        for (profile, (slot, s)) in current.iter() {
            if *profile != self.default_profile && !used(profile) {
                next.remove(profile);
                self.retiring
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((*slot, s.clone()));
                out.push(Retired {
                    profile: *profile,
                    slot: *slot,
                    old: s.clone(),
                });
            }
        }
        self.by_profile.store(Arc::new(next));
        out
    }

    /// A retired producer was flushed: forget it (the caller holds, and drops, the last
    /// handle).
    pub fn retired(&self, slot: usize) {
        self.retiring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(s, _)| *s != slot);
    }

    /// Every producer, those being retired included.
    pub fn all(&self) -> Vec<Sender> {
        let mut all: Vec<Sender> = self
            .by_profile
            .load()
            .values()
            .map(|(_, s)| s.clone())
            .collect();
        all.extend(
            self.retiring
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(_, s)| s.clone()),
        );
        all
    }

    /// Producers serving profiles (not those being retired).
    pub fn serving(&self) -> usize {
        self.by_profile.load().len()
    }

    /// Replace every producer that raised a fatal error with a new one of the same
    /// profile; the old ones are returned for the caller to purge and drop. A producer
    /// that cannot be created again stays as it is (its sends keep failing, counted) and
    /// is tried again next time.
    pub fn replace_fatal(&self) -> Vec<Replaced> {
        let fatal = |map: &BTreeMap<Profile, (usize, Sender)>| -> Vec<_> {
            map.iter()
                .filter_map(|(p, (slot, s))| {
                    let (code, message) = s.client().fatal_error()?;
                    Some((*p, *slot, code_reason(code), message))
                })
                .collect()
        };
        if fatal(&self.by_profile.load()).is_empty() {
            return Vec::new();
        }
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.by_profile.load_full();
        let mut next = (*current).clone();
        let mut out = Vec::new();
        for (profile, slot, code, message) in fatal(&current) {
            let fresh = match self.create(slot, profile) {
                Ok(f) => f,
                Err(e) => {
                    log::error!("{e}");
                    continue;
                }
            };
            if let Some(entry) = next.get_mut(&profile) {
                let old = std::mem::replace(&mut entry.1, fresh);
                out.push(Replaced {
                    profile,
                    code,
                    message,
                    old,
                });
            }
        }
        self.by_profile.store(Arc::new(next));
        out
    }
}

fn create(
    cluster: &str,
    config: &ClientConfig,
    slot: usize,
    profile: Option<Profile>,
    health: &Arc<ClusterHealth>,
    spool: &Option<Arc<Spool>>,
) -> Result<Sender, StartError> {
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
        .map_err(|source| StartError::Producer {
            cluster: cluster.to_string(),
            source,
        })
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
