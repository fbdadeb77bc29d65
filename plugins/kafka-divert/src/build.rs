//! Building a `kafka-divert` instance from its config: every meaning check, and the
//! registration of the route's producer profile with the cluster.

use std::sync::Arc;

use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::{BuildScope, Plugin, PluginSpec};
use sluice_kafka::Profile;

use super::*;
use idempotency::SharedStore;
use sluice_store::StorePolicy;

impl PluginSpec for KafkaDivert {
    const NAME: &'static str = "kafka-divert";
    // Answers the request: after authentication and rate limiting (APISIX-style
    // priorities above 2000), before loggers.
    const PRIORITY: i32 = 1000;
    type Config = KafkaDivertConfig;

    fn init_metrics(&self) -> std::result::Result<(), sluice_core::metric_set::MetricsError> {
        metrics::init()
    }

    fn build(
        &self,
        c: KafkaDivertConfig,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let dest = Destination::build(&self.kafka, c.target(), at, scope, &mut errors);
        if let Some(d) = &dest {
            if c.acks == DivertAcks::Spool {
                d.require_spool(at, "acks", "`acks: spool`", &mut errors);
            }
            match (d.cluster.config().acks, c.acks) {
                (ClusterAcks::None, DivertAcks::All) => errors.push(FieldError::value(
                    at.key("acks"),
                    format!(
                        "cluster `{}` has `acks: none`, so the broker never acknowledges; use `acks: none` here too or change the cluster",
                        c.cluster
                    ),
                )),
                (ClusterAcks::Leader, DivertAcks::All) => errors.push(FieldError::value(
                    at.key("acks"),
                    format!(
                        "cluster `{}` has `acks: leader`: a 202 after the leader alone acknowledged can be lost when the leader fails; set the cluster's `acks: all`, or `acks: spool`/`none` here",
                        c.cluster
                    ),
                )),
                _ => {}
            }
        }
        let mut forward = Vec::new();
        for (i, h) in c.forward_headers.iter().enumerate() {
            let at_h = at.key("forward_headers").index(i);
            match http::HeaderName::from_bytes(h.as_bytes()) {
                Err(_) => errors.push(FieldError::value(
                    at_h,
                    format!("{h:?} is not a header name"),
                )),
                Ok(n) if record::HOP_BY_HOP.contains(&n.as_str()) => {
                    errors.push(FieldError::value(
                        at_h,
                        format!(
                        "`{n}` describes the HTTP connection, not the event; it is never copied"
                    ),
                    ))
                }
                Ok(n) => forward.push(n),
            }
        }
        let key_header = http::HeaderName::from_bytes(c.idempotency.header.as_bytes())
            .map_err(|_| {
                errors.push(FieldError::value(
                    at.key("idempotency").key("header"),
                    format!("{:?} is not a header name", c.idempotency.header),
                ))
            })
            .ok();
        let timeout = c.timeout.0;
        if timeout < std::time::Duration::from_millis(10)
            || timeout > std::time::Duration::from_secs(300)
        {
            errors.push(FieldError::value(
                at.key("timeout"),
                "must be between 10ms and 5m",
            ));
        }
        if c.linger.0 > std::time::Duration::from_secs(1) || c.linger.0 >= timeout {
            errors.push(FieldError::value(
                at.key("linger"),
                "must be at most 1s and below `timeout`",
            ));
        }
        if c.max_body_bytes.0 == 0 || c.max_body_bytes.0 > 64 << 20 {
            errors.push(FieldError::value(
                at.key("max_body_bytes"),
                "must be between 1 byte and 64MiB",
            ));
        }
        if c.idempotency.max_entries == 0 {
            errors.push(FieldError::value(
                at.key("idempotency").key("max_entries"),
                "must be at least 1",
            ));
        }
        if c.idempotency.ttl.0.is_zero() {
            errors.push(FieldError::value(
                at.key("idempotency").key("ttl"),
                "must be greater than 0",
            ));
        }
        let key_scope = match (c.idempotency.scope, scope.authenticates) {
            (Some(IdempotencyScope::Consumer), false) => {
                errors.push(FieldError::value(
                    at.key("idempotency").key("scope"),
                    "`consumer` needs an authentication plugin (key-auth, jwt-auth) on the route",
                ));
                IdempotencyScope::Consumer
            }
            (Some(s), _) => s,
            (None, true) => IdempotencyScope::Consumer,
            (None, false) => {
                errors.push(FieldError::value(
                    at.key("idempotency"),
                    "this route does not authenticate: choose `idempotency: { scope: client_ip }` (keys per client address) or `scope: global` (any client can claim any key)",
                ));
                IdempotencyScope::Global
            }
        };
        let shared = match c.idempotency.policy {
            StorePolicy::Local => None,
            StorePolicy::Redis => {
                let at = at.key("idempotency").key("policy");
                match self.stores.client_for(scope.redis, &at) {
                    Ok(client) => Some(client),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                }
            }
        };
        let key_header_name = c.idempotency.header.to_ascii_lowercase();
        let (Some(dest), Some(key_header), true) = (dest, key_header, errors.is_empty()) else {
            return Err(errors);
        };
        let profile = Profile {
            delivery_timeout: timeout,
            linger: c.linger.0,
        };
        let profile = dest.cluster.register_profile(profile);
        Ok(Arc::new(KafkaDivertPlugin {
            dest,
            spec: RecordSpec {
                ce_source: c
                    .ce_source
                    .unwrap_or_else(|| format!("/routes/{}", scope.route_id)),
                ce_type: c.ce_type,
                forward,
            },
            acks: c.acks,
            timeout,
            profile,
            max_body: c.max_body_bytes.0 as usize,
            allow_empty: c.allow_empty_body,
            retry_after_secs: c.retry_after.0.as_secs_f64().ceil() as u64,
            key_header,
            key_required: c.idempotency.required,
            key_scope,
            keys: match shared {
                // A key's claim lapses once the broker can no longer acknowledge it.
                Some(client) => Keys::Shared(SharedStore::new(
                    client,
                    scope.route_id,
                    c.idempotency.ttl.0,
                    timeout + std::time::Duration::from_secs(10),
                )),
                None => Keys::Local(idempotency::shared_store(
                    scope.route_id,
                    (
                        key_header_name,
                        format!("{key_scope:?}"),
                        c.idempotency.ttl.0,
                        c.idempotency.max_entries,
                    ),
                )),
            },
            counters: Arc::new(EventCounters::new(scope.route_id, Self::NAME)),
        }))
    }
}
