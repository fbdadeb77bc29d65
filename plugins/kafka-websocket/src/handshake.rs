//! The opening handshake (RFC 6455 §4.2): what makes a request a WebSocket request this
//! route takes, the refusals (each counted as a rejection), and the `101` answer.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use pingora_http::ResponseHeader;
use sluice_core::plugin::Upgrade;
use sluice_core::{HttpResponse, RequestCtx};

/// A refusal: status, rejection reason, detail.
pub type Refusal = (u16, &'static str, &'static str);

/// Check the handshake; the client's `Sec-WebSocket-Key` when it is a valid one.
pub fn check<'a>(up: &'a Upgrade<'_>, allowed_origins: &[String]) -> Result<&'a str, Refusal> {
    if !up.requested("websocket") {
        return Err((
            426,
            "not_websocket",
            "this route speaks WebSocket (HTTP/1.1 GET with Upgrade: websocket)",
        ));
    }
    let header = |name: &str| up.request().headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err((426, "websocket_version", "Sec-WebSocket-Version must be 13"));
    }
    let key = header("sec-websocket-key")
        .map(str::trim)
        .filter(|k| STANDARD.decode(k).is_ok_and(|b| b.len() == 16))
        .ok_or((
            400,
            "websocket_key",
            "Sec-WebSocket-Key must be 16 bytes in base64",
        ))?;
    if !allowed_origins.is_empty() {
        let origin = header("origin").unwrap_or_default();
        if !allowed_origins.iter().any(|o| o == origin) {
            return Err((
                403,
                "origin_not_allowed",
                "this Origin may not open a connection",
            ));
        }
    }
    Ok(key)
}

/// The answer for a refusal (counted); a `426` names the protocol and version.
pub fn refuse(ctx: &RequestCtx, (status, reason, detail): Refusal) -> HttpResponse {
    let r = HttpResponse::refusal(ctx, status, reason, detail);
    if status == 426 {
        return r
            .with_header("upgrade", "websocket")
            .with_header("sec-websocket-version", "13");
    }
    r
}

/// The `101 Switching Protocols` for `key`.
pub fn accepted(key: &str) -> pingora_error::Result<ResponseHeader> {
    let mut h = ResponseHeader::build(101, Some(3))?;
    h.insert_header("upgrade", "websocket")?;
    h.insert_header("connection", "Upgrade")?;
    h.insert_header(
        "sec-websocket-accept",
        tungstenite::handshake::derive_accept_key(key.as_bytes()),
    )?;
    Ok(h)
}
