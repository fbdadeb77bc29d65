//! The one `ProxyHttp` implementation. It routes each request, runs the route's plugin
//! chain phase by phase (request phases by descending priority, response phases in
//! reverse), picks upstream nodes with retries, and records the HTTP metrics. It is the
//! only place that knows Pingora's "`Ok(true)` means the response was sent" rule.
//!
//! ```text
//! request_filter ─ route ─ plugins.request ─┬─ Respond ──────────────────────────┐
//!                                           └─ upstream_peer ─ upstream_request  │
//!                                              request_body ─▶ upstream          │
//!                    response ◀─ response_body ◀─ upstream_response              │
//! logging (metrics, plugins.log) ◀───────────────────────────────────────────────┘
//! ```

mod answer;
mod errors;
mod exchange;
mod hardening;
mod headers;
mod target;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use sluice_core::config::limits::RequestLimits;
use sluice_core::config::ServerConfig;
use sluice_core::forwarded::{client_address, is_trusted, Cidr};
use sluice_core::metrics::{http as http_metrics, method_label};
use sluice_core::normalize::{normalize_host, PathRules};
use sluice_core::router::{host_without_port, RouteResult};
use sluice_core::template::request_host;
use sluice_core::{Flow, HttpResponse, RequestCtx, Router, Summary};

use crate::live::Live;
use crate::upstream::Upstream;
use answer::{refuse, respond};
use exchange::SessionExchange;

/// Request metrics of requests no route matched (route label `_none`).
static UNROUTED: once_cell::sync::Lazy<sluice_core::metrics::RouteMetrics> =
    once_cell::sync::Lazy::new(Default::default);

/// Everything a request needs from the active configuration.
pub struct GatewayState {
    /// The routes.
    pub router: Router,
    /// Upstreams by name.
    pub upstreams: crate::upstream::Upstreams,
}

/// The proxy application.
pub struct Gateway {
    live: Arc<Live>,
    limits: RequestLimits,
    paths: PathRules,
    trusted: Vec<Cidr>,
}

impl Gateway {
    /// A gateway serving the live configuration with `server.limits`, `.paths` and
    /// `.trusted_proxies` (fixed until a restart or upgrade).
    pub fn new(live: Arc<Live>, server: &ServerConfig) -> Self {
        Self {
            live,
            limits: server.limits,
            paths: server.paths,
            trusted: server
                .trusted_proxies
                .iter()
                .filter_map(|c| Cidr::parse(c).ok())
                .collect(),
        }
    }
}

/// Pingora's per-request context: the plugins' view plus proxy bookkeeping.
pub struct GatewayCtx {
    /// What plugins see.
    pub req: RequestCtx,
    /// The matched route, for the proxy's own loops over its plugins (a field apart from
    /// `req`, so no phase clones the `Arc` to iterate while plugins change `req`).
    route: Option<Arc<sluice_core::Route>>,
    upstream: Option<Arc<Upstream>>,
    tried: Vec<SocketAddr>,
    error_status: u16,
    /// The TCP peer, and whether it is a trusted proxy.
    peer: Option<(std::net::IpAddr, bool)>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = GatewayCtx;

    fn new_ctx(&self) -> GatewayCtx {
        if let Some(m) = http_metrics() {
            m.in_flight.inc();
        }
        GatewayCtx {
            req: RequestCtx::new(),
            route: None,
            upstream: None,
            tried: Vec::new(),
            error_status: 0,
            peer: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut GatewayCtx) -> Result<bool> {
        let req = session.req_header();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.peer = peer.map(|p| (p, is_trusted(p, &self.trusted)));
        ctx.req.client_ip = peer.map(|p| {
            let xff = req.headers.get_all("x-forwarded-for");
            client_address(p, xff.iter().filter_map(|v| v.to_str().ok()), &self.trusted)
        });
        ctx.req.request_id = headers::request_id(req);
        let raw = session
            .as_downstream()
            .as_http1()
            .map(|h| h.get_headers_raw_bytes());
        let checked = hardening::check_header(raw.as_deref(), req, &self.limits)
            .and_then(|()| hardening::check_method(req))
            .and_then(|()| target::normalize(session.req_header_mut(), &self.paths));
        if let Err(r) = checked {
            return refuse(session, ctx, r).await;
        }
        let req = session.req_header();
        let path = req.uri.path();
        let state = self.live.state.load();
        let host = normalize_host(host_without_port(request_host(req)));
        let route = match state.router.find(&host, path, req.method.as_str()) {
            RouteResult::Found(r) => r.clone(),
            RouteResult::MethodNotAllowed(allowed) => {
                let r = HttpResponse::problem(
                    405,
                    "method not allowed on this route",
                    &ctx.req.request_id,
                )
                .with_header("allow", allowed.join(", "));
                return respond(session, ctx, r).await;
            }
            RouteResult::NotFound => {
                let r =
                    HttpResponse::problem(404, "no route matches the request", &ctx.req.request_id);
                return respond(session, ctx, r).await;
            }
        };
        ctx.upstream = route
            .upstream
            .as_deref()
            .and_then(|u| state.upstreams.get(u).cloned());
        ctx.req.credentials = route.chain.credentials().clone();
        ctx.req.route_id = route.id.clone();
        ctx.route = Some(route.clone());
        let max_body = route.chain.max_body_bytes();
        if let Err(r) = hardening::check_declared_body(session.req_header(), max_body) {
            return refuse(session, ctx, r).await;
        }
        match route
            .chain
            .request(&mut SessionExchange(session), &mut ctx.req)
            .await?
        {
            Flow::Continue => {}
            Flow::Respond(r) => return respond(session, ctx, r).await,
            Flow::Responded => return Ok(true),
        }
        if ctx.upstream.is_none() {
            let r = HttpResponse::problem(502, "the route has no upstream", &ctx.req.request_id);
            return respond(session, ctx, r).await;
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut GatewayCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(up) = ctx.upstream.clone() else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                "route has no upstream",
            ));
        };
        ctx.req.upstream.started.get_or_insert_with(Instant::now);
        ctx.req.upstream.tries += 1;
        let key = match &up.hash_key {
            Some(t) => t.render(&ctx.req.request_data(session.req_header())),
            None => String::new(),
        };
        let Some(backend) = up.select(key.as_bytes(), &ctx.tried) else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "no healthy upstream node",
            ));
        };
        if let Some(a) = backend.addr.as_inet() {
            ctx.tried.push(*a);
            ctx.req.upstream.addr = Some(up.name_of(a));
        }
        Ok(Box::new(up.peer(&backend)))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut GatewayCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.count_upstream_error(ctx, &e);
        // Nothing reached the upstream: any method may go to another node.
        if self.can_retry(ctx) {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut GatewayCtx,
        client_reused: bool,
    ) -> Box<Error> {
        self.count_upstream_error(ctx, &e);
        let mut e = e.more_context(format!("peer: {peer}"));
        let safe = errors::idempotent(&session.req_header().method)
            && !session.retry_buffer_truncated()
            && session.response_written().is_none();
        if !safe {
            e.set_retry(false);
        } else if self.can_retry(ctx) {
            e.set_retry(true);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut GatewayCtx,
    ) -> Result<()> {
        headers::upstream_request(
            upstream_request,
            ctx.peer,
            &ctx.req.request_id,
            session.is_upgrade_req(),
            session.digest().is_some_and(|d| d.ssl_digest.is_some()),
        )?;
        if let Some(up) = &ctx.upstream {
            use sluice_core::config::PassHost;
            match (
                up.config.pass_host,
                &up.config.upstream_host,
                &ctx.req.upstream.addr,
            ) {
                (PassHost::Rewrite, Some(h), _) => {
                    upstream_request.insert_header("host", h.as_str())?
                }
                (PassHost::Node, _, Some(addr)) => {
                    upstream_request.insert_header("host", &**addr)?
                }
                _ => {}
            }
        }
        if let Some(route) = &ctx.route {
            route
                .chain
                .upstream_request(upstream_request, &mut ctx.req)
                .await?;
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GatewayCtx,
    ) -> Result<()> {
        match &ctx.route {
            Some(route) => {
                route
                    .chain
                    .request_body(body, end_of_stream, &mut ctx.req)
                    .await
            }
            None => Ok(()),
        }
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut GatewayCtx,
    ) -> Result<()> {
        ctx.req.upstream.response_at = Some(Instant::now());
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut GatewayCtx,
    ) -> Result<()> {
        headers::downstream_response(response, &ctx.req.request_id)?;
        for (name, value) in std::mem::take(&mut ctx.req.response_headers) {
            response.insert_header(name, value)?;
        }
        if let Some(route) = &ctx.route {
            route.chain.response(response, &mut ctx.req).await?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GatewayCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(route) = &ctx.route {
            route
                .chain
                .response_body(body, end_of_stream, &mut ctx.req)?;
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut GatewayCtx,
    ) -> FailToProxy {
        let code = errors::status_for(e);
        ctx.error_status = code;
        if code > 0 && session.response_written().is_none() {
            let r = HttpResponse::problem(code, errors::detail_for(e, code), &ctx.req.request_id);
            let mut r = r.with_header(headers::REQUEST_ID, ctx.req.request_id.clone());
            if code == 503 {
                r = r.with_header("retry-after", "1");
            }
            if let Err(err) = r.write_to(&mut SessionExchange(session)).await {
                log::debug!("could not send the error response: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut GatewayCtx) {
        // Answered before the whole request body was read (a refusal, a plugin's answer,
        // an upstream that replied early): close rather than drain the rest, so no body
        // byte is ever read as the start of a next request.
        if !session.is_body_done() {
            session.set_keepalive(None);
        }
        if let Some(route) = &ctx.route {
            let summary = Summary {
                request: session.req_header(),
                response: session.response_written(),
                request_body_bytes: session.body_bytes_read() as u64,
                response_body_bytes: session.body_bytes_sent() as u64,
                error: e,
            };
            route.chain.log(&summary, &mut ctx.req).await;
        }
        if let Some(m) = http_metrics() {
            m.in_flight.dec();
        }
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(ctx.error_status);
        let method = method_label(session.req_header().method.as_str());
        let total = ctx.req.started.elapsed().as_secs_f64();
        let upstream = ctx.req.upstream_seconds();
        match ctx.route.as_deref() {
            Some(r) => r.metrics.record(&r.id, method, status, total, upstream),
            None => UNROUTED.record("_none", method, status, total, upstream),
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &GatewayCtx, e: &Error) -> bool {
        // Clients going away mid-request are routine, not errors.
        matches!(e.etype(), ErrorType::ConnectionClosed)
    }
}

impl Gateway {
    fn can_retry(&self, ctx: &GatewayCtx) -> bool {
        ctx.upstream.as_ref().is_some_and(|up| {
            ctx.req.upstream.tries <= up.config.retries && ctx.tried.len() < up.node_count()
        })
    }

    fn count_upstream_error(&self, ctx: &GatewayCtx, e: &Error) {
        if let Some(m) = http_metrics() {
            m.upstream_errors
                .with_label_values(&[ctx.req.route_id(), errors::kind_label(e)])
                .inc();
        }
    }
}
