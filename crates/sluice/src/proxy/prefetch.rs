//! Reading a request body before the request phases, for routes where one plugin wants
//! to see it (a logger capturing bodies) while another answers the request without
//! reading it (`mocking`): the chunks go through every plugin's `request_body` phase, and
//! the route's body cap applies.

use std::sync::Arc;

use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::Session;

use super::GatewayCtx;

/// Read the whole request body through the route's `request_body` phases before a
/// plugin answers without reading it (see [`sluice_core::Route::prefetch_body`]).
pub(super) async fn body(
    session: &mut Session,
    ctx: &mut GatewayCtx,
    route: &Arc<sluice_core::Route>,
) -> Result<()> {
    loop {
        let mut chunk = session.read_request_body().await?;
        let end = chunk.is_none();
        ctx.body_bytes += chunk.as_ref().map_or(0, |b| b.len() as u64);
        if route.max_body_bytes.is_some_and(|max| ctx.body_bytes > max) {
            sluice_core::metrics::reject(&route.id, "body_too_large");
            return Err(Error::explain(
                ErrorType::HTTPStatus(413),
                "the request body is larger than this route accepts",
            ));
        }
        for p in &route.plugins {
            p.request_body(session, &mut chunk, end, &mut ctx.req)
                .await?;
        }
        if end {
            return Ok(());
        }
    }
}
