//! The plugins this binary knows: one explicit list (no linker tricks, no global
//! constructors). Add a plugin crate here to make it usable in configs.

use std::sync::Arc;

use sluice_core::Registry;
use sluice_kafka::KafkaRuntime;
use sluice_plugin_consumer_restriction::ConsumerRestriction;
use sluice_plugin_jwt_auth::JwtAuth;
use sluice_plugin_kafka_divert::KafkaDivert;
use sluice_plugin_kafka_logger::KafkaLogger;
use sluice_plugin_kafka_sse::KafkaSse;
use sluice_plugin_key_auth::KeyAuth;
use sluice_plugin_limit_count::LimitCount;
use sluice_plugin_limit_req::LimitReq;
use sluice_plugin_mocking::Mocking;
use sluice_store::Stores;

/// Every plugin, with the runtime handles it needs.
pub fn plugins(kafka: Arc<KafkaRuntime>, stores: Arc<Stores>) -> Registry {
    let mut r = Registry::new();
    r.register(KafkaLogger::new(kafka.clone()))
        .register(KafkaDivert::new(kafka.clone(), stores.clone()))
        .register(KafkaSse::new(kafka))
        .register(Mocking)
        .register(KeyAuth)
        .register(JwtAuth)
        .register(ConsumerRestriction)
        .register(LimitCount::new(stores.clone()))
        .register(LimitReq::new(stores));
    r
}
