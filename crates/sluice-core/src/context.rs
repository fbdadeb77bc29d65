//! The per-request context ([`RequestCtx`]) that the proxy creates for every request and
//! hands to every plugin phase, plus a small typed map plugins keep their own state in.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use pingora_http::RequestHeader;

/// The credential names of a request before routing (shared: no allocation per request).
static NO_CREDENTIALS: once_cell::sync::Lazy<Arc<CredentialNames>> =
    once_cell::sync::Lazy::new(Arc::default);
/// The route id before routing.
static NO_ROUTE: once_cell::sync::Lazy<Arc<str>> = once_cell::sync::Lazy::new(|| Arc::from(""));
use crate::template::RequestData;

/// Per-request state shared by the proxy and the plugins.
pub struct RequestCtx {
    /// The matched route's id; empty until routing ran or when nothing matched.
    pub route_id: Arc<str>,
    /// The request id (`X-Request-Id` from the client, or generated).
    pub request_id: String,
    /// Monotonic start of the request (for latencies).
    pub started: Instant,
    /// The client's IP address (the TCP peer).
    pub client_ip: Option<IpAddr>,
    /// What happened on the way to the upstream.
    pub upstream: UpstreamTiming,
    /// Name of the plugin that answered the request itself, if any.
    pub responded_by: Option<&'static str>,
    /// The API client, once an authentication plugin identified it.
    pub consumer: Option<Consumer>,
    /// Headers added to the response whoever makes it (the upstream or a plugin), e.g.
    /// `RateLimit-Remaining`.
    pub response_headers: Vec<(&'static str, String)>,
    /// Header and query parameter names that carry credentials on this route (from its
    /// authentication plugins, set at routing): loggers redact their values whether
    /// authentication ran, failed or succeeded.
    pub credentials: Arc<CredentialNames>,
    /// Request body bytes that went through the `request_body` phases so far.
    pub request_body_bytes: u64,
    /// Plugin-private per-request state, keyed by type.
    pub ext: Extensions,
}

/// Names of request fields carrying credentials (lower-case header names, query
/// parameter names).
#[derive(Debug, Default, Clone)]
pub struct CredentialNames {
    /// Header names.
    pub headers: Vec<Arc<str>>,
    /// Query parameter names.
    pub query: Vec<Arc<str>>,
}

impl CredentialNames {
    /// Add `other`'s names.
    pub fn extend(&mut self, other: CredentialNames) {
        self.headers.extend(other.headers);
        self.query.extend(other.query);
    }
}

/// Who a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// The name from `consumers[].name`.
    pub name: Arc<str>,
    /// The plugin that authenticated it (`key-auth`, `jwt-auth`).
    pub auth: &'static str,
    /// The CloudEvents `authtype` of that authentication (`api_key`, `app_user`, ...).
    pub auth_type: &'static str,
    /// The verified token's claims (`jwt-auth`), for `{claim.NAME}` templates.
    pub claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

impl Consumer {
    /// The CloudEvents `authcontext` extension for events this consumer caused:
    /// `ce_authtype` (`api_key` for key-auth) and `ce_authid` (the consumer's name).
    pub fn cloudevents_headers(&self) -> [(String, Vec<u8>); 2] {
        [
            ("ce_authtype".into(), self.auth_type.as_bytes().to_vec()),
            ("ce_authid".into(), self.name.as_bytes().to_vec()),
        ]
    }
}

/// Upstream bookkeeping for one request.
#[derive(Default, Debug, Clone)]
pub struct UpstreamTiming {
    /// Address of the last upstream node tried (`ip:port`).
    pub addr: Option<Arc<str>>,
    /// Number of upstream selections (1 = first try).
    pub tries: u32,
    /// When the first upstream selection happened.
    pub started: Option<Instant>,
    /// When the upstream response header arrived.
    pub response_at: Option<Instant>,
}

impl RequestCtx {
    /// A fresh context; the proxy fills in the request data in its first phase.
    pub fn new() -> Self {
        Self {
            route_id: NO_ROUTE.clone(),
            request_id: String::new(),
            started: Instant::now(),
            client_ip: None,
            upstream: UpstreamTiming::default(),
            responded_by: None,
            consumer: None,
            response_headers: Vec::new(),
            credentials: NO_CREDENTIALS.clone(),
            request_body_bytes: 0,
            ext: Extensions::default(),
        }
    }

    /// Wall-clock start of the request (for event timestamps), derived from `started`
    /// when asked: most requests never need it, and each clock read costs. A step of the
    /// wall clock while the request runs (not NTP's gradual slew) shifts it by the step.
    pub fn started_at(&self) -> SystemTime {
        SystemTime::now()
            .checked_sub(self.started.elapsed())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// The matched route's id, or `""` before routing.
    pub fn route_id(&self) -> &str {
        &self.route_id
    }

    /// The authenticated consumer's name, if any.
    pub fn consumer_name(&self) -> Option<&str> {
        self.consumer.as_ref().map(|c| c.name.as_ref())
    }

    /// What templates render from, for this request and its header `req`.
    pub fn request_data<'a>(&'a self, req: &'a RequestHeader) -> RequestData<'a> {
        RequestData {
            route_id: self.route_id(),
            request_id: &self.request_id,
            client_ip: self.client_ip,
            consumer: self.consumer_name(),
            claims: self.consumer.as_ref().and_then(|c| c.claims.as_deref()),
            req,
        }
    }

    /// Seconds spent waiting on the upstream (selection to response header), if any.
    pub fn upstream_seconds(&self) -> Option<f64> {
        match (self.upstream.started, self.upstream.response_at) {
            (Some(s), Some(r)) => Some(r.saturating_duration_since(s).as_secs_f64()),
            _ => None,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}

/// A map from type to one value of that type; plugins keep per-request state here.
#[derive(Default)]
pub struct Extensions {
    map: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl Extensions {
    /// Store `value`, replacing any previous value of the same type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        self.map.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// The stored value of type `T`.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.map
            .get(&TypeId::of::<T>())
            .and_then(|b| b.downcast_ref())
    }

    /// The stored value of type `T`, mutably.
    pub fn get_mut<T: Any + Send + Sync>(&mut self) -> Option<&mut T> {
        self.map
            .get_mut(&TypeId::of::<T>())
            .and_then(|b| b.downcast_mut())
    }

    /// Remove and return the stored value of type `T`.
    pub fn remove<T: Any + Send + Sync>(&mut self) -> Option<T> {
        self.map
            .remove(&TypeId::of::<T>())
            .and_then(|b| b.downcast().ok())
            .map(|b| *b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_typed() {
        let mut e = Extensions::default();
        e.insert(5u32);
        e.insert(vec![0u8]);
        if let Some(v) = e.get_mut::<Vec<u8>>() {
            v.push(1);
        }
        assert_eq!(e.get::<u32>(), Some(&5));
        assert_eq!(e.get::<Vec<u8>>(), Some(&vec![0, 1]));
        assert_eq!(e.remove::<u32>(), Some(5));
        assert!(e.get::<u32>().is_none());
    }
}
