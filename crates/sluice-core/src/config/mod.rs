//! The configuration file: loading, decoding, validation and route building.
//!
//! Loading happens in two steps so that plugin factories can hold runtime handles built
//! from the first step (e.g. Kafka producers from `kafka.clusters`):
//!
//! 1. [`ConfigDoc::parse`] reads the YAML, expands `${VAR}`, decodes every section and
//!    checks its meaning;
//! 2. [`ConfigDoc::build_routes`] (in `routes`) builds each route's plugins with the
//!    [`Registry`](crate::plugin::Registry).
//!
//! [`ConfigDoc::finish`] then returns the configuration or *every* error found, each as
//! `FILE:LINE:COL: path: message`, in file order.

pub mod consumer;
pub mod decode;
pub mod error;
pub mod kafka;
pub mod kafka_security;
pub mod limits;
pub mod model;
pub mod path;
pub mod redis;
mod routes;
mod shadow;
pub mod source;
pub mod subscription;
pub mod tls;
pub mod units;
mod validate;
mod validate_cluster;

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_yaml::Value;

use crate::router::RouteMatch;
pub use consumer::ConsumerConfig;
use decode::{decode, FieldError};
pub use error::{ConfigError, ConfigErrors};
pub use kafka::*;
pub use model::*;
use path::FieldPath;
use source::{expand_tree, Positions};
pub use subscription::{SubscriptionConfig, SubscriptionStart};

/// The decoded configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `server:`
    pub server: ServerConfig,
    /// `admin:`
    pub admin: AdminConfig,
    /// `kafka.clusters:`
    pub clusters: BTreeMap<String, ClusterConfig>,
    /// `upstreams:`
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// `routes:` (those that decoded).
    pub routes: Vec<RouteConfig>,
    /// `subscriptions:` (those that decoded).
    pub subscriptions: Vec<SubscriptionConfig>,
    /// `consumers:` (those that decoded).
    pub consumers: Vec<ConsumerConfig>,
    /// `redis:`, when present and valid.
    pub redis: Option<redis::RedisConfig>,
    /// SHA-256 (hex) of the text this configuration was read from.
    pub source_sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopLevel {
    #[serde(default)]
    server: Value,
    #[serde(default)]
    admin: Value,
    #[serde(default)]
    kafka: Value,
    #[serde(default)]
    upstreams: Value,
    #[serde(default)]
    routes: Value,
    #[serde(default)]
    subscriptions: Value,
    #[serde(default)]
    consumers: Value,
    #[serde(default)]
    redis: Value,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KafkaSection {
    #[serde(default)]
    clusters: BTreeMap<String, Value>,
}

/// A configuration file being loaded; collects errors until [`ConfigDoc::finish`].
pub struct ConfigDoc {
    file: String,
    positions: Positions,
    /// What decoded so far.
    pub config: Config,
    /// Route index in the file for each entry of `config.routes`.
    route_index: Vec<usize>,
    /// Subscription index in the file for each entry of `config.subscriptions`.
    subscription_index: Vec<usize>,
    /// Consumer index in the file for each entry of `config.consumers`.
    consumer_index: Vec<usize>,
    declared_clusters: BTreeSet<String>,
    declared_upstreams: BTreeSet<String>,
    errors: Vec<FieldError>,
    /// Strings whose `${VAR}` could not be expanded: other errors there are follow-ups.
    unexpanded: BTreeSet<FieldPath>,
    /// Errors before this index come from loading and expanding the file.
    expansion_errors: usize,
}

impl ConfigDoc {
    /// Read and parse a file, expanding variables from the process environment.
    pub fn load(file: &str) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.to_string(),
                line: 1,
                col: 1,
                path: FieldPath::root(),
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        Self::parse(file, &text, &|name| std::env::var(name).ok())
    }

    /// Parse `text` (named `file` in errors). Fails early only on YAML syntax errors.
    pub fn parse(
        file: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let mut value: Value = serde_yaml::from_str(text).map_err(|e| {
            let (line, col) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            ConfigErrors(vec![ConfigError {
                file: file.to_string(),
                line,
                col,
                path: FieldPath::root(),
                message: format!("invalid YAML: {e}"),
            }])
        })?;
        let mut doc = Self {
            file: file.to_string(),
            positions: Positions::index(text),
            config: Config::default(),
            route_index: Vec::new(),
            subscription_index: Vec::new(),
            consumer_index: Vec::new(),
            declared_clusters: BTreeSet::new(),
            declared_upstreams: BTreeSet::new(),
            errors: Vec::new(),
            unexpanded: BTreeSet::new(),
            expansion_errors: 0,
        };
        if value.is_null() {
            value = Value::Mapping(Default::default());
        }
        if let Err(e) = value.apply_merge() {
            doc.errors.push(FieldError::value(
                FieldPath::root(),
                format!("invalid merge key: {e}"),
            ));
        }
        let mut env_errors = Vec::new();
        expand_tree(&mut value, &FieldPath::root(), env, &mut env_errors);
        for (p, m) in env_errors {
            doc.unexpanded.insert(p.clone());
            doc.errors.push(FieldError::value(p, m));
        }
        doc.expansion_errors = doc.errors.len();
        doc.config.source_sha256 = crate::digest::hex(&crate::digest::sha256(text.as_bytes()));
        doc.decode_sections(&value);
        validate::check(&mut doc);
        Ok(doc)
    }

    fn decode_sections(&mut self, value: &Value) {
        let root = FieldPath::root();
        let Some(top) = self.take(decode::<TopLevel>(value, &root)) else {
            return;
        };
        let or_empty = |v: Value| {
            if v.is_null() {
                Value::Mapping(Default::default())
            } else {
                v
            }
        };
        if let Some(s) = self.take(decode(&or_empty(top.server), &root.key("server"))) {
            self.config.server = s;
        }
        if let Some(a) = self.take(decode(&or_empty(top.admin), &root.key("admin"))) {
            self.config.admin = a;
        }
        let kafka_path = root.key("kafka");
        let kafka: KafkaSection = self
            .take(decode(&or_empty(top.kafka), &kafka_path))
            .unwrap_or_default();
        let clusters_path = kafka_path.key("clusters");
        for (name, v) in kafka.clusters {
            self.declared_clusters.insert(name.clone());
            if let Some(c) = self.take(decode(&v, &clusters_path.key(&name))) {
                self.config.clusters.insert(name, c);
            }
        }
        let ups_path = root.key("upstreams");
        let ups: BTreeMap<String, Value> = self
            .take(decode(&or_empty(top.upstreams), &ups_path))
            .unwrap_or_default();
        for (name, v) in ups {
            self.declared_upstreams.insert(name.clone());
            if let Some(u) = self.take(decode(&v, &ups_path.key(&name))) {
                self.config.upstreams.insert(name, u);
            }
        }
        for (i, r) in self.decode_list(top.routes, root.key("routes")) {
            self.config.routes.push(r);
            self.route_index.push(i);
        }
        for (i, s) in self.decode_list(top.subscriptions, root.key("subscriptions")) {
            self.config.subscriptions.push(s);
            self.subscription_index.push(i);
        }
        for (i, c) in self.decode_list(top.consumers, root.key("consumers")) {
            self.config.consumers.push(c);
            self.consumer_index.push(i);
        }
        if !top.redis.is_null() {
            self.config.redis = self.take(decode(&top.redis, &root.key("redis")));
        }
    }

    /// Decode a list section entry by entry: the entries that decoded, with their index.
    fn decode_list<T: serde::de::DeserializeOwned>(
        &mut self,
        list: Value,
        at: FieldPath,
    ) -> Vec<(usize, T)> {
        if list.is_null() {
            return Vec::new();
        }
        let items: Vec<Value> = self.take(decode(&list, &at)).unwrap_or_default();
        items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| self.take(decode::<T>(v, &at.index(i))).map(|t| (i, t)))
            .collect()
    }

    /// The path of `consumers[i]` for the i-th decoded consumer.
    pub fn consumer_path(&self, decoded: usize) -> FieldPath {
        FieldPath::root()
            .key("consumers")
            .index(self.consumer_index.get(decoded).copied().unwrap_or(decoded))
    }

    /// The path of `subscriptions[i]` for the i-th decoded subscription.
    pub fn subscription_path(&self, decoded: usize) -> FieldPath {
        FieldPath::root().key("subscriptions").index(
            self.subscription_index
                .get(decoded)
                .copied()
                .unwrap_or(decoded),
        )
    }

    fn take<T>(&mut self, r: Result<T, Vec<FieldError>>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.extend(e);
                None
            }
        }
    }

    /// Record an error found outside the loader (e.g. while building upstreams).
    pub fn error(&mut self, e: FieldError) {
        self.errors.push(e);
    }

    /// The path of `routes[i]` for the i-th decoded route.
    pub fn route_path(&self, decoded: usize) -> FieldPath {
        FieldPath::root()
            .key("routes")
            .index(self.route_index.get(decoded).copied().unwrap_or(decoded))
    }

    /// The path of an upstream.
    pub fn upstream_path(name: &str) -> FieldPath {
        FieldPath::root().key("upstreams").key(name)
    }

    /// Every error so far, positioned and in file order.
    pub fn errors(&self) -> ConfigErrors {
        // Errors on a value that could not be expanded are follow-ups of that error.
        let follow_up = |i: usize, e: &FieldError| {
            i >= self.expansion_errors && self.unexpanded.contains(&e.path)
        };
        let mut out: Vec<ConfigError> = self
            .errors
            .iter()
            .enumerate()
            .filter(|(i, e)| !follow_up(*i, e))
            .map(|(_, e)| e)
            .map(|e| {
                let (line, col) = self.positions.locate(&e.path, e.anchor);
                ConfigError {
                    file: self.file.clone(),
                    line,
                    col,
                    path: e.path.clone(),
                    message: e.message.clone(),
                }
            })
            .collect();
        out.sort_by_key(|e| (e.line, e.col));
        out.dedup();
        ConfigErrors(out)
    }

    /// The configuration, or every error found.
    pub fn finish(self) -> Result<Config, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(self.config)
        } else {
            Err(self.errors())
        }
    }

    /// True when a cluster of that name is declared (valid or not).
    pub fn cluster_declared(&self, name: &str) -> bool {
        self.declared_clusters.contains(name)
    }
}

#[cfg(test)]
mod tests;

/// Compile a route's match rules (already validated by the loader).
pub fn compile_match(m: &MatchConfig) -> Option<RouteMatch> {
    validate::route_match(m)
}
