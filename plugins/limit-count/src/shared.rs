//! `policy: redis`: the counters live in Redis, so every Sluice instance that uses the
//! same server counts against one quota. Each request runs one Lua script, which Redis
//! executes atomically: no two instances can both take the last unit.
//!
//! - fixed: one counter per key (`INCR`, expiring `time_window` after the key's first
//!   request, as the local policy does).
//! - sliding: a hash with the current aligned window's index and count and the previous
//!   window's count, on Redis's clock (`TIME`), so that instances with drifting clocks
//!   still agree.

use std::sync::Arc;
use std::time::Duration;

use once_cell::sync::Lazy;
use sluice_limits::{OnStoreError, Policy, Quota, WindowCounter};
use sluice_store::{Redis, Script, StoreError, Value};

static FIXED: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r"
local count = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local allowed = 0
if used < count then
  used = redis.call('INCR', KEYS[1])
  allowed = 1
  if used == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {allowed, used, ttl}
",
    )
});

static SLIDING: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r"
local count = tonumber(ARGV[1])
local w = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local idx = math.floor(now / w)
local s = redis.call('HMGET', KEYS[1], 'i', 'c', 'p')
local i = tonumber(s[1])
local c = tonumber(s[2]) or 0
local p = tonumber(s[3]) or 0
if i == nil then c = 0; p = 0
elseif idx == i + 1 then p = c; c = 0
elseif idx > i + 1 then p = 0; c = 0 end
local into = (now - idx * w) / w
local allowed = 0
if p * (1 - into) + c + 1 <= count + 1e-9 then
  c = c + 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'i', idx, 'c', c, 'p', p)
redis.call('PEXPIRE', KEYS[1], 2 * w)
return {allowed, c, p, idx, now - idx * w}
",
    )
});

/// The shared counters of one plugin instance.
pub struct Shared {
    redis: Arc<Redis>,
    /// `<prefix>limit-count:<route>:<fixed|sliding>:<window ms>:`; the request's key
    /// follows. The window is part of it: a reload that changes it starts afresh
    /// instead of reading a counter of another shape.
    prefix: String,
    counter: WindowCounter,
    window_ms: u64,
    /// The script's arguments, the same for every request: count and window (ms).
    args: [String; 2],
    /// What a request gets when Redis fails.
    pub on_error: OnStoreError,
}

impl Shared {
    /// Counters for `route_id` on `redis`, counting as `counter` does.
    pub fn new(
        redis: Arc<Redis>,
        route_id: &str,
        counter: WindowCounter,
        on_error: OnStoreError,
    ) -> Self {
        let window_ms = u64::try_from(counter.window().as_millis()).unwrap_or(u64::MAX);
        let kind = match counter.policy() {
            Policy::Fixed => "fixed",
            Policy::Sliding => "sliding",
        };
        let prefix = redis.key(&["limit-count", route_id, kind, &window_ms.to_string(), ""]);
        Self {
            redis,
            prefix,
            counter,
            window_ms,
            args: [counter.count().to_string(), window_ms.to_string()],
            on_error,
        }
    }

    /// Count one request of `key` in Redis.
    pub async fn check(&self, key: &str) -> Result<Quota, StoreError> {
        let redis_key = Redis::bounded_key(&self.prefix, key);
        let args = &self.args;
        match self.counter.policy() {
            Policy::Fixed => {
                let v = self.redis.eval(&FIXED, &[&redis_key], args).await?;
                let [allowed, used, ttl] = integers::<3>(&v)?;
                Ok(Quota {
                    allowed: allowed == 1,
                    remaining: if allowed == 1 {
                        self.counter.count().saturating_sub(used)
                    } else {
                        0
                    },
                    reset: Duration::from_millis(ttl),
                })
            }
            Policy::Sliding => {
                let v = self.redis.eval(&SLIDING, &[&redis_key], args).await?;
                let [allowed, current, previous, index, into] = integers::<5>(&v)?;
                // The same arithmetic as the local counter, on the state the script
                // saw, gives the headers; the script's decision stands.
                let before = current.saturating_sub(allowed);
                let mut state = self.counter.sliding_state(index, before, previous);
                let now = Duration::from_millis(index.saturating_mul(self.window_ms) + into);
                let mut quota = self.counter.check(&mut state, now);
                if (allowed == 1) != quota.allowed {
                    quota.allowed = allowed == 1;
                    if !quota.allowed {
                        quota.remaining = 0;
                    }
                }
                Ok(quota)
            }
        }
    }
}

/// `N` non-negative integers from a script's array answer.
fn integers<const N: usize>(v: &Value) -> Result<[u64; N], StoreError> {
    let bad = || StoreError::Answer(format!("expected {N} integers, got {v:?}"));
    let Value::Array(items) = v else {
        return Err(bad());
    };
    if items.len() != N {
        return Err(bad());
    }
    let mut out = [0u64; N];
    for (o, item) in out.iter_mut().zip(items) {
        *o = match item {
            Value::Int(i) => u64::try_from(*i).unwrap_or(0),
            _ => return Err(bad()),
        };
    }
    Ok(out)
}
