//! Answering a request from the gateway itself: a response (with the request id and
//! the headers plugins added for whoever answers), or a refusal before the route's
//! plugins (counted, connection closed).

use pingora_error::Result;
use pingora_proxy::Session;
use sluice_core::HttpResponse;

use super::{hardening, headers, GatewayCtx};

/// Write `resp` to the client; `Ok(true)` tells Pingora the response was sent.
pub(super) async fn respond(
    session: &mut Session,
    ctx: &mut GatewayCtx,
    resp: HttpResponse,
) -> Result<bool> {
    ctx.error_status = resp.status;
    let mut resp = resp.with_header(headers::REQUEST_ID, ctx.req.request_id.clone());
    for (name, value) in std::mem::take(&mut ctx.req.response_headers) {
        resp = resp.with_header(name, value);
    }
    resp.write_to(&mut super::SessionExchange(session)).await?;
    Ok(true)
}

/// Refuse a request before its route's plugins: counted, answered, connection closed
/// (the rest of the request may be unread or ambiguous).
pub(super) async fn refuse(
    session: &mut Session,
    ctx: &mut GatewayCtx,
    r: hardening::Refusal,
) -> Result<bool> {
    session.set_keepalive(None);
    let resp = HttpResponse::refusal(&ctx.req, r.status, r.reason, r.detail);
    respond(session, ctx, resp).await
}
