//! The plugins this binary knows: one explicit list, one line per plugin (no linker
//! tricks, no global constructors). Add a plugin crate here (and to the workspace and
//! this crate's `Cargo.toml`) to make it usable in configs; its name, priority and
//! config come from its spec.

use std::sync::Arc;

use sluice_core::Registry;
use sluice_kafka::KafkaRuntime;
use sluice_store::Stores;

/// Every plugin, with the runtime handles it needs.
pub fn plugins(kafka: Arc<KafkaRuntime>, stores: Arc<Stores>) -> Registry {
    let mut r = Registry::new();
    r.register(sluice_plugin_kafka_logger::KafkaLogger::new(kafka.clone()))
        .register(sluice_plugin_kafka_divert::KafkaDivert::new(
            kafka.clone(),
            stores.clone(),
        ))
        .register(sluice_plugin_kafka_sse::KafkaSse::new(kafka.clone()))
        .register(sluice_plugin_kafka_websocket::KafkaWebsocket::new(
            kafka.clone(),
        ))
        .register(sluice_plugin_kafka_request_reply::KafkaRequestReply::new(
            kafka.clone(),
        ))
        .register(sluice_plugin_kafka_cache::KafkaCache::new(kafka.clone()))
        .register(sluice_plugin_mocking::Mocking)
        .register(sluice_plugin_key_auth::KeyAuth)
        .register(sluice_plugin_jwt_auth::JwtAuth)
        .register(sluice_plugin_consumer_restriction::ConsumerRestriction)
        .register(sluice_plugin_limit_count::LimitCount::new(stores.clone()))
        .register(sluice_plugin_limit_req::LimitReq::new(stores))
        .register_subscription(sluice_plugin_kafka_webhook::KafkaWebhook::new(kafka));
    r
}

/// `sluice plugins`: one line per plugin, `NAME PRIORITY KIND`, highest priority
/// first (route plugins), then the subscription plugins.
pub fn table() -> String {
    let r = plugins(Arc::default(), Arc::default());
    let mut route: Vec<_> = r.plugins().collect();
    route.sort_by(|a, b| b.priority().cmp(&a.priority()).then(a.name().cmp(b.name())));
    let mut out = String::new();
    for f in route {
        let kind = if f.authenticates() {
            "authentication"
        } else {
            "route"
        };
        out.push_str(&format!("{} {} {kind}\n", f.name(), f.priority()));
    }
    for name in r.subscription_names() {
        out.push_str(&format!("{name} - subscription\n"));
    }
    out
}
