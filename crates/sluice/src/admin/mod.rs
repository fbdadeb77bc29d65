//! The admin listener: `GET /metrics` (Prometheus text format, default registry),
//! `GET /healthz` (the process is up), `GET /readyz` (Kafka producers started, the
//! proxy listeners accepting and reload by `SIGHUP` armed; per cluster broker
//! connectivity, and whether Redis answered its last operation, in the body) and the read-only admin API ([`api`], `GET /v1/...`).
//! With `admin.token`, `/metrics` and `/v1/...` require `Authorization: Bearer
//! <token>`; the probes stay open.

mod api;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::live::Live;
use async_trait::async_trait;
use http::Response;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use prometheus::{Encoder, TextEncoder};
use serde_json::json;

/// The admin HTTP application.
pub struct AdminApp {
    live: Arc<Live>,
    /// `admin.token` (fixed until a restart, as the listener is).
    token: Option<String>,
}

impl AdminApp {
    /// Admin endpoints reporting on the live configuration.
    pub fn new(live: Arc<Live>) -> Self {
        let token = live.config.load().admin.token.clone();
        Self { live, token }
    }

    /// True when the request may see `/metrics` and `/v1/...`.
    fn authorized(&self, req: &pingora_http::RequestHeader) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(given.as_bytes(), token.as_bytes())
    }

    fn readiness(&self) -> (u16, Vec<u8>) {
        let kafka = self.live.kafka.load();
        let clusters: serde_json::Map<String, serde_json::Value> = kafka
            .clusters()
            .map(|c| {
                (
                    c.name().to_string(),
                    json!({
                        "started": c.is_started(),
                        "bootstrap": c.bootstrap(),
                        "brokers_up": c.brokers_up(),
                    }),
                )
            })
            .collect();
        let listening = self
            .live
            .config
            .load()
            .server
            .listen
            .iter()
            .all(|l| accepting(l));
        let reloadable = self.live.reloadable.load(Ordering::Acquire);
        let state = self.live.state.load();
        let waiting: Vec<serde_json::Value> = state
            .router
            .routes()
            .iter()
            .flat_map(|r| {
                r.chain.entries().iter().filter_map(|e| {
                    e.plugin
                        .not_ready()
                        .map(|why| json!({ "route": &*r.id, "plugin": e.name, "waiting": why }))
                })
            })
            .collect();
        let ready = kafka.is_started() && listening && reloadable && waiting.is_empty();
        // The shared store does not decide readiness (each plugin's on_store_error
        // does what an outage means), but it is reported.
        let config = self.live.config.load();
        let in_use = config
            .redis
            .as_ref()
            .and_then(|c| crate::server::stores().find(c));
        let redis = in_use.map(|r| {
            let c = r.config();
            let address = if c.cluster.is_empty() {
                c.address.clone()
            } else {
                c.cluster.join(",")
            };
            json!({ "address": address, "answering": r.answering() })
        });
        let body = json!({
            "ready": ready,
            "listening": listening,
            "reloadable": reloadable,
            "plugins_waiting": waiting,
            "clusters": clusters,
            "redis": redis,
        });
        (if ready { 200 } else { 503 }, body.to_string().into_bytes())
    }
}

/// True when the proxy listener at `listen` accepts connections (it opens only after the
/// Kafka producers exist).
fn accepting(listen: &str) -> bool {
    let Ok(mut addr) = listen.parse::<std::net::SocketAddr>() else {
        return false;
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)).is_ok()
}

fn response(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            return response(405, "text/plain", b"method not allowed\n".to_vec());
        }
        let path = req.uri.path();
        let protected = path == "/metrics" || path.starts_with("/v1/");
        if protected && !self.authorized(req) {
            let mut r = response(401, "text/plain", b"admin token required\n".to_vec());
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
        if let Some(body) = api::get(&self.live, path) {
            return response(200, "application/json", body.to_string().into_bytes());
        }
        match path {
            "/metrics" => {
                let mut buf = Vec::new();
                let encoder = TextEncoder::new();
                if let Err(e) = encoder.encode(&prometheus::gather(), &mut buf) {
                    return response(
                        500,
                        "text/plain",
                        format!("encoding metrics: {e}\n").into_bytes(),
                    );
                }
                response(200, encoder.format_type(), buf)
            }
            "/healthz" => response(200, "application/json", b"{\"status\":\"ok\"}".to_vec()),
            "/readyz" => {
                let (status, body) = self.readiness();
                response(status, "application/json", body)
            }
            _ => response(
                404,
                "text/plain",
                b"not found; try /metrics, /healthz, /readyz, /v1/routes, /v1/upstreams, /v1/clusters, /v1/subscriptions, /v1/config\n".to_vec(),
            ),
        }
    }
}

/// Equal bytes, compared in a time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
