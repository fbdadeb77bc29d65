//! `idempotency.policy: redis`: the keys live in Redis, so that the same
//! `Idempotency-Key` sent to any instance is produced once and its `202` replayed by
//! all. Each step is one Lua script, atomic in Redis:
//!
//! - begin: an unknown key is claimed *in flight* (with a random claim token, expiring
//!   after the route's ack `timeout` plus a margin, so that an instance killed
//!   mid-request does not hold it forever); a known key answers `409`, `422` or the
//!   stored `202`.
//! - complete: the claim's holder stores its `202` (status, headers, body) for `ttl`.
//! - release: a claim dropped without a `202` frees the key, if it still holds it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use once_cell::sync::Lazy;
use sluice_core::digest::{hex, sha256};
use sluice_core::HttpResponse;
use sluice_store::{Redis, Script, StoreError, Value};

use super::Decision;

/// The metric label of this plugin's store errors.
pub(super) const PLUGIN: &str = "kafka-divert";

static BEGIN: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r"
local v = redis.call('HMGET', KEYS[1], 'f', 's', 'st', 'h', 'b')
if v[1] then
  if v[1] ~= ARGV[1] then return {'mismatch'} end
  if v[2] == 'done' then return {'replay', v[3], v[4], v[5]} end
  return {'inflight'}
end
redis.call('HSET', KEYS[1], 'f', ARGV[1], 's', 'inflight', 't', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'proceed'}
",
    )
});

static COMPLETE: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', 'done', 'st', ARGV[2], 'h', ARGV[3], 'b', ARGV[4])
redis.call('HDEL', KEYS[1], 't')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
",
    )
});

static RELEASE: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 't') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
",
    )
});

/// The keys of one route in Redis.
pub struct SharedStore {
    redis: Arc<Redis>,
    /// `<prefix>idempotency:<route>:`; the key's digest follows.
    prefix: String,
    ttl_ms: u64,
    in_flight_ms: u64,
}

/// The right to process a key's first request, held in Redis by a token.
pub struct SharedClaim {
    redis: Arc<Redis>,
    key: String,
    token: String,
    ttl_ms: u64,
    completed: bool,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl SharedStore {
    /// Keys of `route` remembered for `ttl`; a claim lapses after `in_flight`.
    pub fn new(redis: Arc<Redis>, route: &str, ttl: Duration, in_flight: Duration) -> Self {
        Self {
            prefix: redis.key(&["idempotency", route, ""]),
            redis,
            ttl_ms: millis(ttl).max(1),
            in_flight_ms: millis(in_flight).max(1),
        }
    }

    /// Start processing `key` (already scoped) for a payload hashing to `fingerprint`.
    pub async fn begin(&self, key: &str, fingerprint: [u8; 32]) -> Result<Decision, StoreError> {
        let mut redis_key = self.prefix.clone();
        redis_key.push_str(&hex(&sha256(key.as_bytes())[..16]));
        let token = uuid::Uuid::new_v4().simple().to_string();
        let args = [
            hex(&fingerprint),
            token.clone(),
            self.in_flight_ms.to_string(),
        ];
        let v = match self.redis.eval(&BEGIN, &[&redis_key], &args).await {
            Ok(v) => v,
            Err(e) => {
                if matches!(e, StoreError::Timeout(_) | StoreError::Connection(_)) {
                    // The claim may still reach Redis after we stopped waiting: release
                    // it (sent after it on the same connection), or the key would answer
                    // 409 until the claim expired although nothing was produced.
                    self.redis.eval_detached(
                        PLUGIN,
                        &RELEASE,
                        &[&redis_key],
                        std::slice::from_ref(&token),
                    );
                }
                return Err(e);
            }
        };
        let bad = || StoreError::Answer(format!("unexpected answer to begin: {v:?}"));
        let Value::Array(items) = &v else {
            return Err(bad());
        };
        let text = |i: usize| match items.get(i) {
            Some(Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Some(Value::SimpleString(s)) => Some(s.clone()),
            _ => None,
        };
        Ok(match text(0).as_deref() {
            Some("proceed") => Decision::Proceed(super::Claimed::Shared(SharedClaim {
                redis: self.redis.clone(),
                key: redis_key,
                token,
                ttl_ms: self.ttl_ms,
                completed: false,
            })),
            Some("inflight") => Decision::InFlight,
            Some("mismatch") => Decision::Mismatch,
            Some("replay") => {
                let status = text(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
                let headers = text(2).unwrap_or_default();
                let body = match items.get(3) {
                    Some(Value::BulkString(b)) => Bytes::from(b.clone()),
                    _ => return Err(bad()),
                };
                Decision::Replay(HttpResponse {
                    status,
                    headers: headers
                        .lines()
                        .filter_map(|l| l.split_once(": "))
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect(),
                    body,
                })
            }
            _ => return Err(bad()),
        })
    }
}

impl SharedClaim {
    /// The request was accepted: store `response` for the replays of every instance.
    pub async fn complete(mut self, response: &HttpResponse) -> Result<(), StoreError> {
        self.completed = true;
        let headers: String = response
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}\n"))
            .collect();
        let args = [
            self.token.clone(),
            response.status.to_string(),
            headers,
            String::from_utf8_lossy(&response.body).into_owned(),
            self.ttl_ms.to_string(),
        ];
        match self.redis.eval(&COMPLETE, &[&self.key], &args).await? {
            Value::Int(1) => Ok(()),
            // The claim lapsed (the broker took longer than the route's timeout + 10 s)
            // or another instance holds the key now: the 202 is not remembered.
            _ => Err(StoreError::Answer(
                "the idempotency claim was lost before the 202 was stored".into(),
            )),
        }
    }
}

impl Drop for SharedClaim {
    fn drop(&mut self) {
        if !self.completed {
            self.redis.eval_detached(
                PLUGIN,
                &RELEASE,
                &[&self.key],
                std::slice::from_ref(&self.token),
            );
        }
    }
}
