//! What a limit counts by. `remote_addr` (the client's IP address), `consumer` (the
//! authenticated API client), `route` (everyone on the route together) or a template over
//! request data (`"{header.x-tenant}"`, `"{consumer}:{path.1}"`). A key that renders empty
//! (no consumer, a missing header) falls back to the client's IP address, as in APISIX, so
//! that an unauthenticated client cannot escape the limit by leaving the header out.

use pingora_http::RequestHeader;
use sluice_core::config::error::InvalidValue;
use sluice_core::template::Template;
use sluice_core::RequestCtx;

/// A parsed limit key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The client's IP address.
    RemoteAddr,
    /// The consumer's name (client IP when unauthenticated).
    Consumer,
    /// One shared limit for the whole route.
    Route,
    /// A template (client IP when it renders empty).
    Template(Template),
}

impl LimitKey {
    /// Parse the `key` field; the error says what is accepted.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match s {
            "remote_addr" => Ok(Self::RemoteAddr),
            "consumer" | "consumer_name" => Ok(Self::Consumer),
            "route" => Ok(Self::Route),
            t if t.contains('{') => Template::parse(t).map(Self::Template),
            other => Err(format!(
                "unknown key {other:?}: use remote_addr, consumer, route or a template such as \"{{header.x-tenant}}\""
            ).into()),
        }
    }

    /// The key of this request (never empty).
    pub fn render(&self, ctx: &RequestCtx, req: &RequestHeader) -> String {
        let key = match self {
            Self::RemoteAddr => String::new(),
            Self::Consumer => ctx.consumer_name().unwrap_or_default().to_string(),
            Self::Route => return "route".into(),
            Self::Template(t) => t.render(&ctx.request_data(req)),
        };
        if !key.is_empty() {
            return key;
        }
        ctx.client_ip
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "unknown".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::context::Consumer;

    #[test]
    fn keys_render_with_fallback() {
        let mut ctx = RequestCtx::new();
        ctx.client_ip = Some("10.0.0.7".parse().unwrap());
        let mut req = RequestHeader::build("GET", b"/a", None).unwrap();
        let consumer = LimitKey::parse("consumer").unwrap();
        let tenant = LimitKey::parse("{header.x-tenant}").unwrap();
        assert_eq!(consumer.render(&ctx, &req), "10.0.0.7");
        assert_eq!(tenant.render(&ctx, &req), "10.0.0.7");
        ctx.consumer = Some(Consumer {
            name: "billing".into(),
            auth: "key-auth",
            auth_type: "api_key",
            claims: None,
        });
        req.insert_header("x-tenant", "acme").unwrap();
        assert_eq!(consumer.render(&ctx, &req), "billing");
        assert_eq!(tenant.render(&ctx, &req), "acme");
        assert_eq!(
            LimitKey::parse("remote_addr").unwrap().render(&ctx, &req),
            "10.0.0.7"
        );
        assert_eq!(
            LimitKey::parse("route").unwrap().render(&ctx, &req),
            "route"
        );
        assert!(LimitKey::parse("client")
            .unwrap_err()
            .0
            .contains("remote_addr"));
        assert!(LimitKey::parse("{nope}").is_err());
    }
}
