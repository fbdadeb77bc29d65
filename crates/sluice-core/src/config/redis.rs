//! `redis:` — the Redis server (or Redis Cluster) that holds the state several Sluice
//! instances share (limits and idempotency keys with `policy: redis`), reached over
//! one multiplexed, automatically reconnecting connection per Sluice process (per node
//! for a cluster). The section's decoding and its meaning checks.

use std::time::Duration;

use serde::Deserialize;

use super::decode::FieldError;
use super::path::FieldPath;
use super::units::HumanDuration;
use super::validate::is_host_port;

/// `redis:`
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// The server, as `host:port`. Required unless `cluster` is given.
    #[serde(default)]
    pub address: String,
    /// A Redis Cluster instead: some of its nodes as `host:port` (the others are
    /// discovered). Every key Sluice writes is touched by one script alone, so
    /// scripts run on the node owning their key.
    #[serde(default)]
    pub cluster: Vec<String>,
    /// The logical database (`SELECT`). Default `0` (the only one of a cluster).
    #[serde(default)]
    pub database: u16,
    /// ACL user name (Redis 6+); without it, the `default` user. Use `${VAR}` to take it
    /// from the environment.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (`AUTH`). Use `${VAR}` to take it from the environment rather than
    /// writing it in the file.
    #[serde(default)]
    pub password: Option<String>,
    /// Longest wait for one operation, connecting included; past it the operation
    /// counts as a store error and the plugin's `on_store_error` decides. Default
    /// `200ms` (1ms to 10s).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Longest wait for a new connection (after a start or a lost connection). Default
    /// `1s` (1ms to 60s).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Prefix of every key Sluice writes, so that several deployments can share one
    /// server. Default `sluice:`.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// TLS to the server (Redis 6+ `tls-port`); without it, plain TCP.
    #[serde(default)]
    pub tls: Option<RedisTls>,
}

/// `redis.tls:`
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RedisTls {
    /// PEM file of the CA(s) that signed the server's certificate; default: the
    /// system's trust store.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Verify the server's certificate and that it names the `address` host. Default
    /// `true`; `false` is insecure (anyone on the path can read and answer).
    #[serde(default = "default_true")]
    pub verify: bool,
}

const fn default_true() -> bool {
    true
}

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_millis(200))
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}

fn default_prefix() -> String {
    "sluice:".into()
}

impl RedisConfig {
    /// Check the section's meaning (errors under `at`).
    pub(super) fn check(&self, at: &FieldPath, errors: &mut Vec<FieldError>) {
        match (self.address.is_empty(), self.cluster.is_empty()) {
            (true, true) => errors.push(FieldError::value(
                at.clone(),
                "give `address` (one server) or `cluster` (nodes of a Redis Cluster)",
            )),
            (false, false) => errors.push(FieldError::value(
                at.key("cluster"),
                "give either `address` or `cluster`, not both",
            )),
            (false, true) if !is_host_port(&self.address) => errors.push(FieldError::value(
                at.key("address"),
                format!("{:?} is not a `host:port` address", self.address),
            )),
            _ => {}
        }
        for (i, node) in self.cluster.iter().enumerate() {
            if !is_host_port(node) {
                errors.push(FieldError::value(
                    at.key("cluster").index(i),
                    format!("{node:?} is not a `host:port` address"),
                ));
            }
        }
        if !self.cluster.is_empty() && self.database != 0 {
            errors.push(FieldError::value(
                at.key("database"),
                "a Redis Cluster has only database 0",
            ));
        }
        let ranges = [
            ("timeout", self.timeout.0, Duration::from_secs(10)),
            (
                "connect_timeout",
                self.connect_timeout.0,
                Duration::from_secs(60),
            ),
        ];
        for (field, value, max) in ranges {
            if !(Duration::from_millis(1)..=max).contains(&value) {
                errors.push(FieldError::value(
                    at.key(field),
                    format!("must be between 1ms and {}s", max.as_secs()),
                ));
            }
        }
        if let Some(f) = self.tls.as_ref().and_then(|t| t.ca_file.as_ref()) {
            if let Err(e) = std::fs::read(f) {
                errors.push(FieldError::value(
                    at.key("tls").key("ca_file"),
                    format!("cannot read {f}: {e}"),
                ));
            }
        }
        if self.key_prefix.len() > 64 || self.key_prefix.bytes().any(|b| !b.is_ascii_graphic()) {
            errors.push(FieldError::value(
                at.key("key_prefix"),
                "must be at most 64 visible ASCII characters",
            ));
        }
    }
}
