//! Meaning checks of `kafka.clusters.<name>` (brokers, dev broker, typed fields versus
//! pass-through properties, TLS/SASL) and of topic names.

use std::net::SocketAddr;

use super::decode::FieldError;
use super::kafka::*;
use super::path::FieldPath;

/// librdkafka properties that have a typed field; setting them in `properties` is an error.
const TYPED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "brokers"),
    ("queue.buffering.max.kbytes", "queue_max_bytes"),
    ("queue.buffering.max.messages", "queue_max_messages"),
    ("message.timeout.ms", "delivery_timeout"),
    ("delivery.timeout.ms", "delivery_timeout"),
    ("linger.ms", "linger"),
    ("queue.buffering.max.ms", "linger"),
    ("acks", "acks"),
    ("request.required.acks", "acks"),
];

pub(super) fn cluster(c: &ClusterConfig, at: &FieldPath, errors: &mut Vec<FieldError>) {
    match (&c.dev_broker, c.brokers.is_empty()) {
        (None, true) => errors.push(FieldError::value(
            at.clone(),
            "set `brokers` (or `dev_broker: {}` for the embedded development broker)",
        )),
        (Some(_), false) => errors.push(FieldError::value(
            at.key("brokers"),
            "`brokers` and `dev_broker` exclude each other",
        )),
        _ => {}
    }
    for (i, b) in c.brokers.iter().enumerate() {
        if !super::validate::is_host_port(b) {
            errors.push(FieldError::value(
                at.key("brokers").index(i),
                format!("{b:?} is not a `host:port` broker address"),
            ));
        }
    }
    if let Some(DevBrokerConfig {
        listen,
        topics,
        partitions,
    }) = &c.dev_broker
    {
        if let Some(l) = listen.as_ref().filter(|l| l.parse::<SocketAddr>().is_err()) {
            errors.push(FieldError::value(
                at.key("dev_broker").key("listen"),
                format!("{l:?} is not an `ip:port` address"),
            ));
        }
        topic_names(topics, &at.key("dev_broker").key("topics"), errors);
        if !(1..=1000).contains(partitions) {
            errors.push(FieldError::value(
                at.key("dev_broker").key("partitions"),
                "must be between 1 and 1000",
            ));
        }
    }
    super::kafka_security::check(
        c.tls.as_ref(),
        c.sasl.as_ref(),
        &mut c.properties.keys(),
        at,
        errors,
    );
    if c.dev_broker.is_some() && (c.tls.is_some() || c.sasl.is_some()) {
        errors.push(FieldError::value(
            at.clone(),
            "the dev broker speaks plaintext only: remove `tls` / `sasl`",
        ));
    }
    for key in c.properties.keys() {
        if let Some((_, field)) = TYPED_PROPERTIES.iter().find(|(p, _)| p == key) {
            errors.push(FieldError::key(
                at.key("properties").key(key),
                format!("set this with the cluster's `{field}` field instead"),
            ));
        }
    }
    let kib = c.queue_max_bytes.0 / 1024;
    if !(1..=2_097_151).contains(&kib) {
        errors.push(FieldError::value(
            at.key("queue_max_bytes"),
            "must be between 1KiB and 2GiB (librdkafka's range)",
        ));
    }
    if c.queue_max_messages == 0 {
        errors.push(FieldError::value(
            at.key("queue_max_messages"),
            "must be at least 1",
        ));
    }
    if c.delivery_timeout.0.is_zero() {
        errors.push(FieldError::value(
            at.key("delivery_timeout"),
            "must be greater than 0",
        ));
    }
    if c.linger.0.as_millis() > 900_000 {
        errors.push(FieldError::value(at.key("linger"), "must be at most 15m"));
    }
    if let Some(sp) = &c.spool {
        let sat = at.key("spool");
        if sp.dir.trim().is_empty() {
            errors.push(FieldError::value(sat.key("dir"), "must name a directory"));
        }
        if sp.max_bytes.0 < 1 << 20 {
            errors.push(FieldError::value(
                sat.key("max_bytes"),
                "must be at least 1MiB",
            ));
        }
        if sp.buffer_bytes.0 < 64 << 10 || sp.buffer_bytes.0 > sp.max_bytes.0 {
            errors.push(FieldError::value(
                sat.key("buffer_bytes"),
                "must be at least 64KiB and at most `max_bytes`",
            ));
        }
        if sp.sync_interval.0.is_zero() {
            errors.push(FieldError::value(
                sat.key("sync_interval"),
                "must be greater than 0",
            ));
        }
    }
}

/// Every entry of `topics` (at `at`) must be a valid Kafka topic name.
pub(super) fn topic_names(topics: &[String], at: &FieldPath, errors: &mut Vec<FieldError>) {
    for (j, t) in topics.iter().enumerate() {
        let ok = !t.is_empty()
            && t.len() <= 249
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            errors.push(FieldError::value(
                at.index(j),
                format!("{t:?} is not a valid Kafka topic name"),
            ));
        }
    }
}
