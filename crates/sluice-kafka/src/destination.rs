//! Where a plugin's events go: a cluster, a topic template and an optional key
//! template — validated once at config load (every error reported), rendered per
//! request.

use std::sync::Arc;

use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::template::{RequestData, Template};
use sluice_core::BuildScope;

use crate::event::valid_topic;
use crate::{Cluster, KafkaRuntime};

/// A validated destination.
pub struct Destination {
    /// The cluster.
    pub cluster: Arc<Cluster>,
    topic: Template,
    key: Option<Template>,
}

impl Destination {
    /// Check the `cluster`, `topic` and `key` fields of a plugin config found at `at`.
    /// Errors are appended to `errors`; `None` when any of them is wrong (or the cluster
    /// has its own errors, already reported).
    pub fn build(
        kafka: &KafkaRuntime,
        cluster: &str,
        topic: &str,
        key: Option<&str>,
        at: &FieldPath,
        scope: &BuildScope<'_>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        let before = errors.len();
        let found = kafka.cluster(cluster);
        if found.is_none() && !scope.declared_clusters.contains(cluster) {
            errors.push(FieldError::value(
                at.key("cluster"),
                format!("unknown cluster `{cluster}` (define it under kafka.clusters)"),
            ));
        }
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
            }),
            _ => None,
        }
    }

    /// The topic for a request, or `None` if it renders to an invalid name.
    pub fn topic(&self, data: &RequestData<'_>) -> Option<String> {
        Some(self.topic.render(data)).filter(|t| valid_topic(t))
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
