//! The read-only admin API (`GET /v1/...`, JSON): what this instance runs, as an
//! operator or a dashboard needs it. Credentials are redacted wherever they appear
//! (the fields the config loader treats as credentials).
//!
//! - `/v1/routes`: each route's match, upstream and plugins (config with every default
//!   filled in, and the plugin's priority).
//! - `/v1/upstreams`: nodes and whether each is healthy.
//! - `/v1/clusters`: brokers up, events in flight, the spool's records, bytes and
//!   oldest record.
//! - `/v1/subscriptions`: group, topics, the partitions this instance owns and their
//!   lag, whether the target was disabled.
//! - `/v1/config`: the running file's SHA-256, when it was loaded, the last reload.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sluice_core::config::path::FieldPath;
use sluice_core::config::source::redact;

use crate::live::Live;

/// The JSON body for `path`, or `None` when there is no such endpoint.
pub fn get(live: &Live, path: &str) -> Option<Value> {
    Some(match path {
        "/v1/routes" => routes(live),
        "/v1/upstreams" => upstreams(live),
        "/v1/clusters" => clusters(live),
        "/v1/subscriptions" => subscriptions(live),
        "/v1/config" => config(live),
        _ => return None,
    })
}

fn routes(live: &Live) -> Value {
    let config = live.config.load();
    let state = live.state.load();
    let routes: Vec<Value> = config
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let compiled = state
                .router
                .routes()
                .iter()
                .find(|c| &*c.id == r.id.as_str());
            let plugins: BTreeMap<&str, Value> = r
                .plugins
                .iter()
                .map(|(name, written)| {
                    // With every default filled in; as written if it did not decode.
                    let mut cfg = r.effective.get(name).unwrap_or(written).clone();
                    let at = FieldPath::root()
                        .key("routes")
                        .index(i)
                        .key("plugins")
                        .key(name);
                    redact(&mut cfg, &at);
                    let priority = compiled.and_then(|c| {
                        c.chain
                            .entries()
                            .iter()
                            .find(|e| e.name == name)
                            .map(|e| e.priority)
                    });
                    let config = serde_json::to_value(&cfg).unwrap_or(Value::Null);
                    (
                        name.as_str(),
                        json!({ "priority": priority, "config": config }),
                    )
                })
                .collect();
            json!({
                "id": r.id,
                "match": {
                    "hosts": r.matcher.hosts,
                    "paths": r.matcher.paths,
                    "methods": r.matcher.methods,
                },
                "upstream": r.upstream,
                "max_body_bytes": r.max_body_bytes.map(|b| b.0),
                "plugins": plugins,
            })
        })
        .collect();
    json!({ "routes": routes })
}

fn upstreams(live: &Live) -> Value {
    let state = live.state.load();
    let ups: BTreeMap<&str, Value> = state
        .upstreams
        .iter()
        .map(|(name, u)| {
            let nodes: Vec<Value> = u
                .nodes_health()
                .into_iter()
                .map(|(addr, healthy)| json!({ "address": addr, "healthy": healthy }))
                .collect();
            (
                name.as_str(),
                json!({
                    "balance": format!("{:?}", u.config.balance).to_lowercase(),
                    "health_checked": u.config.health_check.is_some(),
                    "nodes": nodes,
                }),
            )
        })
        .collect();
    json!({ "upstreams": ups })
}

fn clusters(live: &Live) -> Value {
    let kafka = live.kafka.load();
    let clusters: BTreeMap<&str, Value> = kafka
        .clusters()
        .map(|c| {
            let spool = c.spool().map(|s| {
                let st = s.stats();
                json!({
                    "records": st.records,
                    "bytes": st.bytes,
                    "oldest_record_ms": st.oldest_ts,
                })
            });
            (
                c.name(),
                json!({
                    "started": c.is_started(),
                    "bootstrap": c.bootstrap(),
                    "brokers_up": c.brokers_up(),
                    "events_in_flight": c.in_flight(),
                    "spool": spool,
                }),
            )
        })
        .collect();
    json!({ "clusters": clusters })
}

fn subscriptions(live: &Live) -> Value {
    let lag = lags();
    let subs: Vec<Value> = live
        .subscriptions
        .running()
        .iter()
        .map(|(c, s)| {
            let assigned: Vec<Value> = s
                .assigned()
                .into_iter()
                .map(|(topic, partition)| {
                    let l = lag.get(&(c.id.clone(), topic.clone(), partition)).copied();
                    json!({ "topic": topic, "partition": partition, "lag": l })
                })
                .collect();
            json!({
                "id": c.id,
                "cluster": c.cluster,
                "topics": c.topics,
                "group": c.group(),
                "assigned": assigned,
                "disabled": s.is_disabled(),
            })
        })
        .collect();
    json!({ "subscriptions": subs })
}

/// `sluice_webhook_consumer_lag` by (subscription, topic, partition), as the consumers'
/// statistics last reported it.
fn lags() -> BTreeMap<(String, String, i32), i64> {
    let mut out = BTreeMap::new();
    for family in prometheus::gather() {
        if family.name() != "sluice_webhook_consumer_lag" {
            continue;
        }
        for m in family.get_metric() {
            let label = |n: &str| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == n)
                    .map(|l| l.value().to_string())
                    .unwrap_or_default()
            };
            let partition = label("partition").parse().unwrap_or(-1);
            out.insert(
                (label("subscription"), label("topic"), partition),
                m.get_gauge().get_value() as i64,
            );
        }
    }
    out
}

fn config(live: &Live) -> Value {
    let g = live
        .generation
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let last = g
        .last_reload
        .map(|(at, applied, errors)| json!({ "at": at, "applied": applied, "errors": errors }));
    json!({
        "file": live.file,
        "sha256": live.config.load().source_sha256,
        "loaded_at": g.loaded_at,
        "last_reload": last,
    })
}
