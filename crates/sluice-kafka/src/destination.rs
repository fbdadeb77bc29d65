//! Where a plugin's events go: a cluster, a topic template and an optional key
//! template — validated once at config load (every error reported), rendered per
//! request. A topic rendered from request data must be on the route's `topics_allowed`
//! list (exact names or `prefix*`): request data never names, or creates, a topic the
//! operator did not list.

use std::sync::Arc;

use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::template::{RequestData, Template};
use sluice_core::BuildScope;

use crate::event::valid_topic;
use crate::{Cluster, KafkaRuntime};

/// The target fields every Kafka plugin's config has: `cluster`, `topic`,
/// `topics_allowed` and `key`, lent by the config. (serde cannot flatten a shared struct
/// into a config that denies unknown fields, so each config declares the four fields
/// with its own failure wording and hands them over here, where they are checked and
/// rendered the same way for every plugin.)
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The cluster's name under `kafka.clusters`.
    pub cluster: &'a str,
    /// The topic template.
    pub topic: &'a str,
    /// Exact topic names and `prefix*` a templated topic may render to.
    pub topics_allowed: &'a [String],
    /// The record key template, if any.
    pub key: Option<&'a str>,
}

/// A validated destination.
pub struct Destination {
    /// The cluster.
    pub cluster: Arc<Cluster>,
    topic: Template,
    key: Option<Template>,
    allowed: AllowList,
}

/// Why a request's topic is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// Not a legal Kafka topic name.
    Invalid,
    /// Not on `topics_allowed`.
    NotAllowed,
}

impl TopicError {
    /// The metric reason.
    pub fn reason(self) -> &'static str {
        match self {
            TopicError::Invalid => "invalid_topic",
            TopicError::NotAllowed => "topic_not_allowed",
        }
    }
}

/// `topics_allowed`: exact names and prefixes (`prefix*`). Empty: no check (the topic is
/// a literal).
#[derive(Debug, Default)]
struct AllowList {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl AllowList {
    fn parse(list: &[String], at: &FieldPath, errors: &mut Vec<FieldError>) -> Self {
        let mut out = Self::default();
        for (i, entry) in list.iter().enumerate() {
            match entry.strip_suffix('*') {
                Some(p) if !p.is_empty() && valid_topic(p) => out.prefixes.push(p.to_string()),
                None if valid_topic(entry) => out.exact.push(entry.clone()),
                _ => errors.push(FieldError::value(
                    at.key("topics_allowed").index(i),
                    format!("{entry:?} is neither a Kafka topic name nor a `prefix*`"),
                )),
            }
        }
        out
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    fn allows(&self, topic: &str) -> bool {
        self.is_empty()
            || self.exact.iter().any(|t| t == topic)
            || self.prefixes.iter().any(|p| topic.starts_with(p.as_str()))
    }
}

impl Destination {
    /// Check the `cluster`, `topic`, `topics_allowed` and `key` fields of a plugin config
    /// found at `at`. Errors are appended to `errors`; `None` when any of them is wrong
    /// (or the cluster has its own errors, already reported).
    pub fn build(
        kafka: &KafkaRuntime,
        target: Target<'_>,
        at: &FieldPath,
        scope: &BuildScope<'_>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        let Target {
            cluster,
            topic,
            topics_allowed,
            key,
        } = target;
        let before = errors.len();
        let found = cluster_at(kafka, cluster, at, scope, errors);
        let topic = Template::parse(topic)
            .map_err(|e| errors.push(FieldError::value(at.key("topic"), e)))
            .ok();
        if let Some(lit) = topic.as_ref().and_then(Template::as_literal) {
            if !valid_topic(lit) {
                errors.push(FieldError::value(
                    at.key("topic"),
                    format!(
                        "{lit:?} is not a valid Kafka topic name ([a-zA-Z0-9._-], 1-249 chars)"
                    ),
                ));
            }
        }
        let allowed = AllowList::parse(topics_allowed, at, errors);
        let from_request = topic.as_ref().is_some_and(Template::uses_request_data);
        match topic.as_ref().map(Template::as_literal) {
            Some(None) if from_request && allowed.is_empty() => errors.push(FieldError::value(
                at.key("topic"),
                "a topic rendered from request data needs `topics_allowed` (exact names or `prefix*`): requests must not choose, or create, any topic",
            )),
            Some(Some(lit)) if !allowed.allows(lit) => errors.push(FieldError::value(
                at.key("topics_allowed"),
                format!("does not allow the route's own topic {lit:?}"),
            )),
            _ => {}
        }
        let key = key
            .map(Template::parse)
            .transpose()
            .map_err(|e| errors.push(FieldError::value(at.key("key"), e)))
            .ok()
            .flatten();
        match (found, topic, errors.len() == before) {
            (Some(cluster), Some(topic), true) => Some(Self {
                cluster,
                topic,
                key,
                allowed,
            }),
            _ => None,
        }
    }

    /// An error at `at.field` when this destination's cluster has no spool: `what` (e.g.
    /// "`acks: spool`") needs one.
    pub fn require_spool(
        &self,
        at: &FieldPath,
        field: &str,
        what: &str,
        errors: &mut Vec<FieldError>,
    ) {
        if self.cluster.config().spool.is_none() {
            errors.push(FieldError::value(
                at.key(field),
                format!(
                    "{what} needs a spool: set `kafka.clusters.{}.spool`",
                    self.cluster.name()
                ),
            ));
        }
    }

    /// The topic for a request, or why it is refused.
    pub fn topic(&self, data: &RequestData<'_>) -> Result<String, TopicError> {
        let t = self.topic.render(data);
        if !valid_topic(&t) {
            return Err(TopicError::Invalid);
        }
        if !self.allowed.allows(&t) {
            return Err(TopicError::NotAllowed);
        }
        Ok(t)
    }

    /// The record key for a request; `None` when there is no key template or it renders
    /// empty.
    pub fn key(&self, data: &RequestData<'_>) -> Option<Vec<u8>> {
        self.key
            .as_ref()
            .map(|k| k.render(data))
            .filter(|k| !k.is_empty())
            .map(String::into_bytes)
    }
}

/// The cluster `name` of a plugin config at `at` (its `cluster` field); an error when no
/// cluster of that name is declared. `None` also when it is declared but has errors of
/// its own (already reported).
pub fn cluster_at(
    kafka: &KafkaRuntime,
    name: &str,
    at: &FieldPath,
    scope: &BuildScope<'_>,
    errors: &mut Vec<FieldError>,
) -> Option<Arc<Cluster>> {
    let found = kafka.cluster(name);
    if found.is_none() && !scope.declared_clusters.contains(name) {
        errors.push(FieldError::value(
            at.key("cluster"),
            format!("unknown cluster `{name}` (define it under kafka.clusters)"),
        ));
    }
    found
}

/// Check a literal topic name at `at.field`.
pub fn check_topic(topic: &str, at: &FieldPath, field: &str, errors: &mut Vec<FieldError>) {
    if !valid_topic(topic) {
        errors.push(FieldError::value(
            at.key(field),
            format!("{topic:?} is not a valid Kafka topic name ([a-zA-Z0-9._-], 1-249 chars)"),
        ));
    }
}
