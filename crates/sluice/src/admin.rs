//! The admin listener: `GET /metrics` (Prometheus text format, default registry),
//! `GET /healthz` (the process is up) and `GET /readyz` (Kafka producers started; per
//! cluster broker connectivity in the body).

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use prometheus::{Encoder, TextEncoder};
use serde_json::json;
use sluice_kafka::KafkaRuntime;

/// The admin HTTP application.
pub struct AdminApp {
    kafka: Arc<KafkaRuntime>,
}

impl AdminApp {
    /// Admin endpoints reporting on `kafka`.
    pub fn new(kafka: Arc<KafkaRuntime>) -> Self {
        Self { kafka }
    }

    fn readiness(&self) -> (u16, Vec<u8>) {
        let clusters: serde_json::Map<String, serde_json::Value> = self
            .kafka
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
        let ready = self.kafka.is_started();
        let body = json!({ "ready": ready, "clusters": clusters });
        (if ready { 200 } else { 503 }, body.to_string().into_bytes())
    }
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
        match req.uri.path() {
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
                b"not found; try /metrics, /healthz, /readyz\n".to_vec(),
            ),
        }
    }
}
