//! What the limit plugins share beyond the algorithms: the config fields every limit has
//! (`key`, `rejected_code`, `rejected_msg`, `max_keys`), their checks, and the refusal.

use std::sync::Arc;
use std::time::Duration;

use pingora_http::RequestHeader;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::{HttpResponse, RequestCtx};

use crate::clock::Clock;
use crate::key::LimitKey;
use crate::table::{Expiring, Table};

/// The fields `limit-req` and `limit-count` have in common. (Each plugin's config lists
/// them itself: serde cannot flatten into a struct that denies unknown fields.)
#[derive(Debug, Clone)]
pub struct CommonLimitConfig {
    /// `key`: what to count by.
    pub key: String,
    /// `rejected_code`: status of a refused request.
    pub rejected_code: u16,
    /// `rejected_msg`: `detail` of the refusal.
    pub rejected_msg: Option<String>,
    /// `max_keys`: keys remembered at most.
    pub max_keys: usize,
}

/// Default `key`.
pub fn default_key() -> String {
    "remote_addr".into()
}
/// Default `rejected_code`.
pub const fn default_code() -> u16 {
    429
}
/// Default `max_keys`.
pub const fn default_max_keys() -> usize {
    100_000
}

impl CommonLimitConfig {
    /// Check the fields; the parsed key, or the errors (paths under `at`).
    pub fn check(&self, at: &FieldPath, errors: &mut Vec<FieldError>) -> Option<LimitKey> {
        if !(400..=599).contains(&self.rejected_code) {
            errors.push(FieldError::value(
                at.key("rejected_code"),
                "must be an HTTP error status (400-599)",
            ));
        }
        if self.max_keys == 0 {
            errors.push(FieldError::value(at.key("max_keys"), "must be at least 1"));
        }
        match LimitKey::parse(&self.key) {
            Ok(k) => Some(k),
            Err(e) => {
                errors.push(FieldError::value(at.key("key"), e));
                None
            }
        }
    }

    /// The refusal: `rejected_code`, a problem document, `Retry-After`; counted as a
    /// rejection with `reason` on the route.
    pub fn refuse(
        &self,
        ctx: &RequestCtx,
        reason: &str,
        default_msg: &str,
        retry_after: Duration,
    ) -> HttpResponse {
        let msg = self.rejected_msg.as_deref().unwrap_or(default_msg);
        HttpResponse::refusal(ctx, self.rejected_code, reason, msg).with_header(
            "retry-after",
            crate::ceil_secs(retry_after).max(1).to_string(),
        )
    }
}

/// `on_store_error:` of a limit with `policy: redis`: what a request gets when Redis
/// does not answer (or answers with an error).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// Let the request through (Kong's `fault_tolerant`, Envoy's rate-limit default).
    #[default]
    Allow,
    /// Refuse it with `503` and `Retry-After: 1`.
    Deny,
}

impl OnStoreError {
    /// The refusal for `Deny` (counted as `limit_store_unavailable`); `None` for `Allow`.
    pub fn refusal(self, ctx: &RequestCtx) -> Option<HttpResponse> {
        match self {
            Self::Allow => None,
            Self::Deny => Some(
                HttpResponse::refusal(
                    ctx,
                    503,
                    "limit_store_unavailable",
                    "the rate limit store is unavailable",
                )
                .with_header("retry-after", "1"),
            ),
        }
    }
}

/// What every limit plugin instance holds besides its algorithm: the refusal settings,
/// the parsed key, the keyed state and the clock.
pub struct Keyed<S> {
    /// The common settings (refusals use them).
    pub common: CommonLimitConfig,
    key: LimitKey,
    table: Table<S>,
    clock: Arc<dyn Clock>,
}

impl<S: Expiring> Keyed<S> {
    /// Check `common` (errors under `at` go to `errors`); `None` when it is invalid.
    pub fn new(
        common: CommonLimitConfig,
        at: &FieldPath,
        clock: Arc<dyn Clock>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        let key = common.check(at, errors)?;
        Some(Self {
            table: Table::new(common.max_keys.max(1)),
            common,
            key,
            clock,
        })
    }

    /// This request's key (what it is counted by).
    pub fn key_of(&self, req: &RequestHeader, ctx: &RequestCtx) -> String {
        self.key.render(ctx, req)
    }

    /// Run `f` on this request's state (created by `new` for a new key) at the current
    /// time.
    pub fn apply<R>(
        &self,
        req: &RequestHeader,
        ctx: &RequestCtx,
        new: impl FnOnce(Duration) -> S,
        f: impl FnOnce(&mut S, Duration) -> R,
    ) -> R {
        let key = self.key.render(ctx, req);
        let now = self.clock.now();
        self.table.with(&key, now, || new(now), |s| f(s, now))
    }
}
