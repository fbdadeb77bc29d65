//! The `consumer-restriction` plugin (APISIX's, by consumer name): authorization after
//! authentication. A route lists the consumers allowed (`allow`) or refused (`deny`);
//! a request nobody authenticated is refused with `401`, a consumer not allowed with
//! `403`. Put it on kafka-divert routes to say who may produce to their topics, and on
//! kafka-sse routes to say who may read a stream.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_error::Result;
use serde::Deserialize;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::config::ConsumerConfig;
use sluice_core::{
    BuildScope, Flow, HttpResponse, Phases, Plugin, PluginSpec, Request, RequestCtx,
};

/// `plugins.consumer-restriction:` — exactly one of `allow` and `deny`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerRestrictionConfig {
    /// Consumers (names under `consumers:`) allowed on the route; all others refused.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Consumers refused on the route; all others allowed.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Claims the consumer's verified JWT must carry (`jwt-auth`), each with one of the
    /// listed values (for an array claim: any element), e.g. `{ tenant: [acme] }`.
    /// Requests without a token's claims are refused.
    #[serde(default)]
    pub claims: std::collections::BTreeMap<String, Vec<String>>,
    /// Status for an authenticated consumer that is refused (400-599). Default `403`.
    #[serde(default = "default_code")]
    pub rejected_code: u16,
    /// `detail` of the refusal. Default `the consumer is not allowed on this route`.
    #[serde(default)]
    pub rejected_msg: Option<String>,
}

const fn default_code() -> u16 {
    403
}

/// The plugin factory (`consumer-restriction`).
pub struct ConsumerRestriction;

/// One configured instance.
pub struct ConsumerRestrictionPlugin {
    names: HashSet<String>,
    allow: bool,
    claims: std::collections::BTreeMap<String, Vec<String>>,
    code: u16,
    msg: String,
}

/// What the plugin decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Allowed,
    /// No consumer was authenticated (no or a failed authentication plugin before).
    Unauthenticated,
    /// The consumer is not allowed.
    Forbidden,
}

impl PluginSpec for ConsumerRestriction {
    const NAME: &'static str = "consumer-restriction";
    // APISIX's consumer-restriction priority: right after authentication (2500).
    const PRIORITY: i32 = 2400;
    type Config = ConsumerRestrictionConfig;

    fn build(
        &self,
        c: ConsumerRestrictionConfig,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>> {
        Ok(Arc::new(ConsumerRestrictionPlugin::new(
            c,
            at,
            scope.consumers,
        )?))
    }
}

impl ConsumerRestrictionPlugin {
    /// An instance; every listed name must be a declared consumer.
    pub fn new(
        c: ConsumerRestrictionConfig,
        at: &FieldPath,
        consumers: &[ConsumerConfig],
    ) -> std::result::Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let (field, list) = match (c.allow.is_empty(), c.deny.is_empty()) {
            (false, true) => ("allow", &c.allow),
            (true, false) => ("deny", &c.deny),
            (true, true) if !c.claims.is_empty() => ("deny", &c.deny),
            _ => {
                errors.push(FieldError::value(
                    at.clone(),
                    "set `allow` or `deny` (not both; non-empty lists of consumer names), and/or `claims`",
                ));
                ("allow", &c.allow)
            }
        };
        for (name, values) in &c.claims {
            if values.is_empty() {
                errors.push(FieldError::value(
                    at.key("claims").key(name),
                    "list at least one accepted value",
                ));
            }
        }
        let declared: HashSet<&str> = consumers.iter().map(|c| c.name.as_str()).collect();
        for (i, name) in list.iter().enumerate() {
            if !declared.contains(name.as_str()) {
                errors.push(FieldError::value(
                    at.key(field).index(i),
                    format!("unknown consumer `{name}` (not under `consumers:`)"),
                ));
            }
        }
        if !(400..=599).contains(&c.rejected_code) {
            errors.push(FieldError::value(
                at.key("rejected_code"),
                "must be an HTTP error status (400-599)",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            names: list.iter().cloned().collect(),
            allow: field == "allow",
            claims: c.claims,
            code: c.rejected_code,
            msg: c
                .rejected_msg
                .unwrap_or_else(|| "the consumer is not allowed on this route".into()),
        })
    }

    /// The decision for the request's consumer.
    pub fn verdict(&self, ctx: &RequestCtx) -> Verdict {
        let Some(consumer) = ctx.consumer.as_ref() else {
            return Verdict::Unauthenticated;
        };
        if self.names.contains(consumer.name.as_ref()) != self.allow {
            return Verdict::Forbidden;
        }
        let claims = consumer.claims.as_deref();
        let ok = self.claims.iter().all(|(name, accepted)| {
            claims
                .and_then(|c| c.get(name))
                .is_some_and(|v| claim_matches(v, accepted))
        });
        if ok {
            Verdict::Allowed
        } else {
            Verdict::Forbidden
        }
    }
}

/// Whether a claim value is one of `accepted` (strings as-is, numbers and booleans as
/// written in JSON; an array when any element is).
fn claim_matches(v: &serde_json::Value, accepted: &[String]) -> bool {
    match v {
        serde_json::Value::String(s) => accepted.iter().any(|a| a == s),
        serde_json::Value::Array(items) => items.iter().any(|i| claim_matches(i, accepted)),
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
            let s = v.to_string();
            accepted.contains(&s)
        }
        _ => false,
    }
}

#[async_trait]
impl Plugin for ConsumerRestrictionPlugin {
    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request(&self, _req: &mut Request<'_>, ctx: &mut RequestCtx) -> Result<Flow> {
        let response = match self.verdict(ctx) {
            Verdict::Allowed => return Ok(Flow::Continue),
            Verdict::Unauthenticated => HttpResponse::refusal(
                ctx,
                401,
                "unauthenticated",
                "authentication required (the route has no authentication plugin, or it did not identify a consumer)",
            ),
            Verdict::Forbidden => HttpResponse::refusal(ctx, self.code, "forbidden", &self.msg),
        };
        Ok(Flow::Respond(response))
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::context::Consumer;

    use super::*;

    fn consumers() -> Vec<ConsumerConfig> {
        ["billing", "mobile", "ops"]
            .iter()
            .map(|n| ConsumerConfig {
                name: n.to_string(),
                credentials: Default::default(),
            })
            .collect()
    }

    fn plugin(yaml: &str) -> std::result::Result<ConsumerRestrictionPlugin, Vec<FieldError>> {
        let c: ConsumerRestrictionConfig = serde_yaml::from_str(yaml).unwrap();
        ConsumerRestrictionPlugin::new(c, &FieldPath::root().key("cr"), &consumers())
    }

    fn ctx(name: Option<&str>) -> RequestCtx {
        let mut c = RequestCtx::new();
        c.consumer = name.map(|n| Consumer {
            name: n.into(),
            auth: "key-auth",
            auth_type: "api_key",
            claims: None,
        });
        c
    }

    #[test]
    fn allow_and_deny_lists() {
        let claims = plugin("{ claims: { tenant: [acme], roles: [admin] } }").unwrap();
        let mut c = ctx(Some("mobile"));
        assert_eq!(claims.verdict(&c), Verdict::Forbidden, "no token claims");
        if let Some(x) = c.consumer.as_mut() {
            let m = serde_json::json!({"tenant": "acme", "roles": ["user", "admin"]});
            x.claims = m.as_object().cloned().map(std::sync::Arc::new);
        }
        assert_eq!(claims.verdict(&c), Verdict::Allowed);
        if let Some(x) = c.consumer.as_mut() {
            let m = serde_json::json!({"tenant": "beta", "roles": ["admin"]});
            x.claims = m.as_object().cloned().map(std::sync::Arc::new);
        }
        assert_eq!(claims.verdict(&c), Verdict::Forbidden, "other tenant");
        let allow = plugin("{ allow: [billing, ops] }").unwrap();
        assert_eq!(allow.verdict(&ctx(Some("billing"))), Verdict::Allowed);
        assert_eq!(allow.verdict(&ctx(Some("mobile"))), Verdict::Forbidden);
        assert_eq!(allow.verdict(&ctx(None)), Verdict::Unauthenticated);
        let deny = plugin("{ deny: [mobile] }").unwrap();
        assert_eq!(deny.verdict(&ctx(Some("billing"))), Verdict::Allowed);
        assert_eq!(deny.verdict(&ctx(Some("mobile"))), Verdict::Forbidden);
        assert_eq!(deny.verdict(&ctx(None)), Verdict::Unauthenticated);
    }

    #[test]
    fn config_errors() {
        let e = plugin("{}").err().unwrap();
        assert!(e[0].message.contains("not both"), "{e:?}");
        let e = plugin("{ allow: [billing], deny: [ops] }").err().unwrap();
        assert!(e[0].message.contains("not both"));
        let e = plugin("{ claims: { tenant: [] } }").err().unwrap();
        assert_eq!(e[0].path.to_string(), "cr.claims.tenant");
        let e = plugin("{ allow: [billing, nobody], rejected_code: 302 }")
            .err()
            .unwrap();
        assert_eq!(e[0].path.to_string(), "cr.allow[1]");
        assert!(e[0].message.contains("unknown consumer `nobody`"));
        assert_eq!(e[1].path.to_string(), "cr.rejected_code");
    }

    /// Through the trait, as the proxy runs it after an authentication plugin.
    #[tokio::test]
    async fn the_request_phase_answers_401_and_403_and_lets_allowed_consumers_through() {
        let r = sluice_core::testkit::TestRoute::new()
            .consumers("[{ name: billing }, { name: mobile }]")
            .with(ConsumerRestriction, "{ allow: [billing] }");
        let get = sluice_core::testkit::TestExchange::get;
        for (consumer, status) in [(Some("billing"), 200), (Some("mobile"), 403), (None, 401)] {
            let mut ctx = r.ctx();
            ctx.consumer = self::ctx(consumer).consumer;
            let out = r.exchange_in(&mut get("/"), ctx, None).await;
            assert_eq!(out.status(), Some(status), "{consumer:?}");
            assert_eq!(out.upstream.is_some(), status == 200);
        }
        assert_eq!(r.rejections("forbidden"), 1);
        assert_eq!(r.rejections("unauthenticated"), 1);
    }
}
