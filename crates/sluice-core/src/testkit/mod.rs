//! A test kit for plugins: build instances from YAML as a route would
//! ([`TestRoute`]), drive them through their trait with a fake client exchange
//! ([`TestExchange`]) and a [`ManualClock`], and look at what happened ([`Outcome`]: the
//! flow, who answered, the headers added, what the upstream and the client would get);
//! build a subscription plugin from YAML ([`subscription()`]).
//! Phases run through the same per-phase lists as in the proxy ([`PluginChain`]), so a
//! phase a plugin implements but does not declare fails its tests. For tests only: it
//! panics on what a test should not see.

mod exchange;
mod subscription;

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use pingora_error::Error;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::clock::ManualClock;
use crate::config::path::FieldPath;
use crate::config::ConsumerConfig;
use crate::plugin::{
    BuildScope, CredentialBlock, Entry, Flow, PluginChain, PluginFactory, Summary,
};
use crate::RequestCtx;
pub use exchange::{TestExchange, TestUpstream};
pub use subscription::subscription;

/// What a request went through.
pub struct Outcome {
    /// The request phases' decision.
    pub flow: Flow,
    /// The context after every phase ran (response headers, consumer, extensions).
    pub ctx: RequestCtx,
    /// The request header as the upstream would get it (when the request went on).
    pub upstream: Option<RequestHeader>,
    /// The response header the client gets (a plugin's answer or the upstream's, after
    /// the response phases).
    pub response: Option<ResponseHeader>,
    /// The response body the client gets.
    pub body: Vec<u8>,
}

impl Outcome {
    /// The status the client gets.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status.as_u16())
    }

    /// A response header's value, as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response
            .as_ref()?
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A route's plugins, built from YAML as the config loader builds them.
pub struct TestRoute {
    /// The route id (`test-N`).
    pub id: Arc<str>,
    /// The clock the plugins were built with.
    pub clock: Arc<ManualClock>,
    consumers: Vec<ConsumerConfig>,
    clusters: BTreeSet<String>,
    entries: Vec<Entry>,
    authenticates: bool,
    /// The chain of the plugins added so far.
    pub chain: PluginChain,
}

impl Default for TestRoute {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRoute {
    /// A route without plugins, with an id of its own (`test-N`: rejection counts of
    /// tests running side by side stay apart).
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            id: Arc::from(format!("test-{n}")),
            clock: Arc::new(ManualClock::new()),
            consumers: Vec::new(),
            clusters: ["default".to_string()].into(),
            entries: Vec::new(),
            authenticates: false,
            chain: PluginChain::default(),
        }
    }

    /// Declare `consumers:` (a YAML list) for authentication plugins.
    pub fn consumers(mut self, yaml: &str) -> Self {
        self.consumers = match serde_yaml::from_str(yaml) {
            Ok(c) => c,
            Err(e) => panic!("test consumers: {e}"),
        };
        self
    }

    /// Add the plugin `factory` configured with `yaml`; panics on config errors.
    pub fn with(self, factory: impl PluginFactory, yaml: &str) -> Self {
        match self.try_with(factory, yaml) {
            Ok(r) => r,
            Err(e) => panic!("test plugin config: {e:?}"),
        }
    }

    /// Add the plugin `factory` configured with `yaml`, or its config errors as
    /// `path: message`.
    pub fn try_with(
        mut self,
        factory: impl PluginFactory,
        yaml: &str,
    ) -> Result<Self, Vec<String>> {
        let config: serde_yaml::Value =
            serde_yaml::from_str(yaml).map_err(|e| vec![e.to_string()])?;
        let path = |i| FieldPath::root().key("consumers").index(i);
        let blocks = CredentialBlock::of(&self.consumers, factory.name(), &path);
        let show = |e: Vec<crate::config::decode::FieldError>| -> Vec<String> {
            e.iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect()
        };
        let errors = factory.check_credentials(&blocks);
        if !errors.is_empty() {
            return Err(show(errors));
        }
        self.authenticates |= factory.authenticates();
        let scope = BuildScope {
            route_id: &self.id,
            declared_clusters: &self.clusters,
            consumers: &self.consumers,
            authenticates: self.authenticates,
            redis: None,
            clock: self.clock.clone(),
        };
        let at = FieldPath::root().key(factory.name());
        let plugin = factory.build(&config, &at, &scope).map_err(show)?;
        self.entries.push(Entry {
            name: factory.name(),
            priority: factory.priority(),
            plugin,
        });
        self.chain = PluginChain::new(self.entries.clone());
        Ok(self)
    }

    /// `sluice_http_rejections_total{route,reason}` of this route so far.
    pub fn rejections(&self, reason: &str) -> u64 {
        crate::metrics::http()
            .map(|m| m.rejections.with_label_values(&[&self.id, reason]).get())
            .unwrap_or(0)
    }

    /// A context as the proxy makes it after routing (client `192.0.2.1`).
    pub fn ctx(&self) -> RequestCtx {
        let mut ctx = RequestCtx::new();
        ctx.route_id = self.id.clone();
        ctx.request_id = "test-request".into();
        ctx.client_ip = "192.0.2.1".parse().ok();
        ctx.credentials = self.chain.credentials().clone();
        ctx
    }

    /// Run `request` through every phase as the proxy would: the request phases; then
    /// a plugin's answer, or the upstream phases with `upstream`'s response (a `200`
    /// without body when `None`); then the log phase.
    pub async fn exchange(
        &self,
        mut request: TestExchange,
        upstream: Option<TestUpstream>,
    ) -> Outcome {
        self.exchange_in(&mut request, self.ctx(), upstream).await
    }

    /// [`Self::exchange`] with a given context, leaving the client side in `request`.
    pub async fn exchange_in(
        &self,
        request: &mut TestExchange,
        mut ctx: RequestCtx,
        upstream: Option<TestUpstream>,
    ) -> Outcome {
        let flow = self.chain.request(request, &mut ctx).await;
        let (flow, error) = match flow {
            Ok(f) => (f, None),
            Err(e) => (Flow::Continue, Some(e)),
        };
        let mut upstream_header = None;
        let mut response = None;
        let mut body = Vec::new();
        match (&flow, &error) {
            (_, Some(_)) => {}
            (Flow::Respond(r), _) => {
                let mut r = r.clone();
                for (name, value) in std::mem::take(&mut ctx.response_headers) {
                    r = r.with_header(name, value);
                }
                response = r.header().ok();
                body = r.body.to_vec();
            }
            (Flow::Responded, _) => {
                response = request.response.clone();
                body = request.response_body.clone();
            }
            (Flow::Continue, _) => {
                let (up, proxied) = self.proxy(request, &mut ctx, upstream).await;
                upstream_header = Some(up);
                (response, body) = proxied;
            }
        }
        let summary = Summary {
            request: &request.request,
            response: response.as_ref(),
            request_body_bytes: ctx.request_body_bytes,
            response_body_bytes: body.len() as u64,
            error: error.as_deref(),
        };
        self.chain.log(&summary, &mut ctx).await;
        Outcome {
            flow,
            ctx,
            upstream: upstream_header,
            response,
            body,
        }
    }

    /// The proxied part: upstream request, request body, response and its body. Returns
    /// the header the upstream gets and what the client gets.
    async fn proxy(
        &self,
        request: &mut TestExchange,
        ctx: &mut RequestCtx,
        upstream: Option<TestUpstream>,
    ) -> (RequestHeader, (Option<ResponseHeader>, Vec<u8>)) {
        let mut up = request.request.clone();
        let failed = |e: Box<Error>| -> (Option<ResponseHeader>, Vec<u8>) {
            let status = match e.etype() {
                pingora_error::ErrorType::HTTPStatus(s) => *s,
                _ => 502,
            };
            (ResponseHeader::build(status, None).ok(), Vec::new())
        };
        if let Err(e) = self.chain.upstream_request(&mut up, ctx).await {
            return (up, failed(e));
        }
        loop {
            let mut chunk = request.body.pop_front();
            let end = chunk.is_none();
            if let Err(e) = self.chain.request_body(&mut chunk, end, ctx).await {
                return (up, failed(e));
            }
            if end {
                break;
            }
        }
        let upstream = upstream.unwrap_or_else(|| TestUpstream::new(200, Bytes::new()));
        let mut header = upstream.response;
        for (name, value) in std::mem::take(&mut ctx.response_headers) {
            let _ = header.insert_header(name, value);
        }
        if let Err(e) = self.chain.response(&mut header, ctx).await {
            return (up, failed(e));
        }
        let mut body = Vec::new();
        let n = upstream.body.len();
        for (i, chunk) in upstream.body.into_iter().enumerate() {
            let mut chunk = Some(chunk);
            if self
                .chain
                .response_body(&mut chunk, i + 1 == n, ctx)
                .is_ok()
            {
                body.extend(chunk.unwrap_or_default());
            }
        }
        (up, (Some(header), body))
    }
}
