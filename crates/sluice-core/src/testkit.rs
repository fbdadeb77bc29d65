//! A test kit for plugins: build instances from YAML as a route would
//! ([`TestRoute`]), drive them through their trait with a fake client exchange
//! ([`TestExchange`]) and a [`ManualClock`], and look at what happened ([`Outcome`]: the
//! flow, who answered, the headers added, what the upstream and the client would get).
//! Phases run through the same per-phase lists as in the proxy ([`PluginChain`]), so a
//! phase a plugin implements but does not declare fails its tests. For tests only: it
//! panics on what a test should not see.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::{Error, Result};
use pingora_http::{RequestHeader, ResponseHeader};

use crate::clock::ManualClock;
use crate::config::path::FieldPath;
use crate::config::ConsumerConfig;
use crate::plugin::{BuildScope, Entry, Exchange, Flow, PluginChain, PluginFactory, Summary};
use crate::RequestCtx;

/// A client exchange in memory: a request with its body chunks, and what was written
/// back.
#[derive(Debug)]
pub struct TestExchange {
    /// The request header.
    pub request: RequestHeader,
    /// Body chunks not read yet.
    pub body: VecDeque<Bytes>,
    /// `100 Continue` was sent.
    pub continue_sent: bool,
    /// The connection is to be closed after the response.
    pub closed: bool,
    /// The response header written, if any.
    pub response: Option<ResponseHeader>,
    /// The response body written so far.
    pub response_body: Vec<u8>,
    /// The response was finished.
    pub finished: bool,
    /// What [`Exchange::shutting_down`] answers.
    pub shutting_down: bool,
    /// Body chunks read by plugins.
    pub body_reads: usize,
}

impl TestExchange {
    /// A request `method path` (no body).
    pub fn new(method: &str, path: &str) -> Self {
        let request = match RequestHeader::build(method, path.as_bytes(), None) {
            Ok(r) => r,
            Err(e) => panic!("test request {method} {path}: {e}"),
        };
        Self {
            request,
            body: VecDeque::new(),
            continue_sent: false,
            closed: false,
            response: None,
            response_body: Vec::new(),
            finished: false,
            shutting_down: false,
            body_reads: 0,
        }
    }

    /// `GET path`.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// `POST path` with `body` (one chunk, `Content-Length` set).
    pub fn post(path: &str, body: impl Into<Bytes>) -> Self {
        let body = body.into();
        Self::new("POST", path)
            .header("content-length", &body.len().to_string())
            .chunks([body])
    }

    /// Add a request header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Err(e) = self.request.append_header(name.to_string(), value) {
            panic!("test header {name}: {e}");
        }
        self
    }

    /// The body, as these chunks.
    pub fn chunks<B: Into<Bytes>>(mut self, chunks: impl IntoIterator<Item = B>) -> Self {
        self.body = chunks.into_iter().map(Into::into).collect();
        self
    }

    /// The status written, if any.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status.as_u16())
    }
}

#[async_trait]
impl Exchange for TestExchange {
    fn request(&self) -> &RequestHeader {
        &self.request
    }
    fn request_mut(&mut self) -> &mut RequestHeader {
        &mut self.request
    }
    fn close_after_response(&mut self) {
        self.closed = true;
    }
    async fn send_continue(&mut self) -> Result<()> {
        self.continue_sent = true;
        Ok(())
    }
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        self.body_reads += 1;
        Ok(self.body.pop_front())
    }
    async fn write_header(&mut self, header: ResponseHeader, end: bool) -> Result<()> {
        assert!(
            self.response.is_none(),
            "the response header was written twice"
        );
        self.response = Some(header);
        self.finished = end;
        Ok(())
    }
    async fn write_body(&mut self, chunk: Option<Bytes>, end: bool) -> Result<()> {
        assert!(
            self.response.is_some(),
            "a body was written before the header"
        );
        assert!(!self.finished, "a body was written after the end");
        if let Some(c) = chunk {
            self.response_body.extend_from_slice(&c);
        }
        self.finished = end;
        Ok(())
    }
    fn shutting_down(&self) -> bool {
        self.shutting_down
    }
}

/// What the upstream answers in [`TestRoute::exchange`].
pub struct TestUpstream {
    /// Its response header.
    pub response: ResponseHeader,
    /// Its body chunks.
    pub body: Vec<Bytes>,
}

impl TestUpstream {
    /// `status` with `body` in one chunk.
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        match ResponseHeader::build(status, None) {
            Ok(response) => Self {
                response,
                body: vec![body.into()],
            },
            Err(e) => panic!("test response {status}: {e}"),
        }
    }
}

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
        let blocks: Vec<_> = self
            .consumers
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let config = c.credentials.get(factory.name())?;
                Some(crate::plugin::CredentialBlock {
                    consumer: &c.name,
                    config,
                    at: FieldPath::root()
                        .key("consumers")
                        .index(i)
                        .key(factory.name()),
                })
            })
            .collect();
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
        ctx.credentials = Arc::new(self.chain.credential_names());
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
                let (header, b) = self.proxy(request, &mut ctx, upstream).await;
                upstream_header = Some(request.request.clone());
                if let Some(h) = header {
                    upstream_header = Some(h);
                }
                (response, body) = b;
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

    /// The proxied part: upstream request, request body, response and its body.
    async fn proxy(
        &self,
        request: &mut TestExchange,
        ctx: &mut RequestCtx,
        upstream: Option<TestUpstream>,
    ) -> (Option<RequestHeader>, (Option<ResponseHeader>, Vec<u8>)) {
        let mut up = request.request.clone();
        let failed = |e: Box<Error>| -> (Option<ResponseHeader>, Vec<u8>) {
            let status = match e.etype() {
                pingora_error::ErrorType::HTTPStatus(s) => *s,
                _ => 502,
            };
            (ResponseHeader::build(status, None).ok(), Vec::new())
        };
        if let Err(e) = self.chain.upstream_request(&mut up, ctx).await {
            return (Some(up), failed(e));
        }
        loop {
            let mut chunk = request.body.pop_front();
            let end = chunk.is_none();
            if let Err(e) = self.chain.request_body(&mut chunk, end, ctx).await {
                return (Some(up), failed(e));
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
            return (Some(up), failed(e));
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
        (Some(up), (Some(header), body))
    }
}
