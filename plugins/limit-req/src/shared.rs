//! `policy: redis`: the buckets live in Redis, so every Sluice instance that uses the
//! same server drains one bucket per key. Each request runs one Lua script (atomic in
//! Redis) with nginx's arithmetic on Redis's clock (`TIME`, microseconds), so that
//! instances with drifting clocks still agree.

use std::sync::Arc;
use std::time::Duration;

use once_cell::sync::Lazy;
use sluice_limits::{Decision, LeakyBucket, OnStoreError};
use sluice_store::{Redis, Script, StoreError, Value};

static LEAKY: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s = redis.call('HMGET', KEYS[1], 'e', 'l')
local e = tonumber(s[1]) or -1
local l = tonumber(s[2]) or now
local elapsed = math.max(now - l, 0) / 1000000
local excess = math.max(e - rate * elapsed, -1) + 1
if excess > burst + 1e-9 then
  return {0, string.format('%.17g', (excess - burst) / rate)}
end
redis.call('HSET', KEYS[1], 'e', string.format('%.17g', excess), 'l', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((excess + 1) / rate * 1000) + 1000)
return {1, string.format('%.17g', excess)}
",
    )
});

/// The shared buckets of one plugin instance.
pub struct Shared {
    redis: Arc<Redis>,
    /// `<prefix>limit-req:<route>:`; the request's key follows.
    prefix: String,
    bucket: LeakyBucket,
    /// The script's arguments, the same for every request: rate and burst.
    args: [String; 2],
    /// What a request gets when Redis fails.
    pub on_error: OnStoreError,
}

impl Shared {
    /// Buckets of `route_id` on `redis`, draining as `bucket` does.
    pub fn new(
        redis: Arc<Redis>,
        route_id: &str,
        bucket: LeakyBucket,
        on_error: OnStoreError,
    ) -> Self {
        Self {
            prefix: redis.key(&["limit-req", route_id, ""]),
            redis,
            bucket,
            args: [bucket.rate().to_string(), bucket.burst().to_string()],
            on_error,
        }
    }

    /// Account one request of `key`: how long to delay it, or how long until it would
    /// be accepted.
    pub async fn check(&self, key: &str) -> Result<Decision, StoreError> {
        let redis_key = Redis::bounded_key(&self.prefix, key);
        let v = self.redis.eval(&LEAKY, &[&redis_key], &self.args).await?;
        let bad = || StoreError::Answer(format!("unexpected answer: {v:?}"));
        let Value::Array(items) = &v else {
            return Err(bad());
        };
        let (Some(Value::Int(allowed)), Some(Value::BulkString(number))) =
            (items.first(), items.get(1))
        else {
            return Err(bad());
        };
        let number: f64 = String::from_utf8_lossy(number).parse().map_err(|_| bad())?;
        let secs = |s: f64| Duration::from_secs_f64(s.clamp(0.0, 1e9));
        Ok(if *allowed == 1 {
            if self.bucket.nodelay() || number <= 1e-9 {
                Decision::Allow(Duration::ZERO)
            } else {
                Decision::Allow(secs(number / self.bucket.rate()))
            }
        } else {
            Decision::Reject(secs(number))
        })
    }
}
