//! Delivering one record: attempts with Standard Webhooks headers, classified results,
//! and the retry schedule (exponential by default, with jitter; `Retry-After` honoured
//! on `429`).
//!
//! | result | what happens |
//! |---|---|
//! | 2xx | delivered |
//! | 429, 5xx, timeout, connection error | retried per schedule, then dead-lettered |
//! | 410 | the target is disabled; this and later records are dead-lettered |
//! | 3xx (never followed), other 4xx, refused target | dead-lettered at once |

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::metrics::webhook;
use crate::sign::sign;
use crate::stopped;
use crate::target::{check_literal, is_refused};

/// What a delivery needs besides the record.
pub struct Target<'a> {
    /// Metric label.
    pub subscription: &'a str,
    /// The client.
    pub client: &'a reqwest::Client,
    /// HTTP method.
    pub method: &'a reqwest::Method,
    /// Signing keys.
    pub keys: &'a [Vec<u8>],
    /// Delays before retries.
    pub retries: &'a [Duration],
    /// Cap on a `Retry-After` wait.
    pub max_retry_after: Duration,
    /// Response body cap.
    pub max_response_bytes: usize,
    /// Private targets allowed.
    pub allow_private: bool,
    /// Set after a `410`.
    pub disabled: &'a AtomicBool,
}

/// One record to deliver.
pub struct Request {
    /// `webhook-id`.
    pub id: String,
    /// The URL.
    pub url: String,
    /// Extra headers (content type, forwarded Kafka headers).
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx.
    Delivered {
        /// Attempts made.
        attempts: u32,
    },
    /// Give up: to the dead-letter topic.
    Dead {
        /// Attempts made.
        attempts: u32,
        /// Last HTTP status, if any.
        status: Option<u16>,
        /// Last error.
        error: String,
    },
}

enum Attempt {
    Ok,
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    Permanent {
        status: Option<u16>,
        error: String,
    },
}

fn count(subscription: &str, result: &str, elapsed: Duration) {
    if let Some(m) = webhook() {
        m.attempts.with_label_values(&[subscription, result]).inc();
        m.duration
            .with_label_values(&[subscription])
            .observe(elapsed.as_secs_f64());
    }
}

async fn attempt(t: &Target<'_>, r: &Request) -> Attempt {
    let url = match reqwest::Url::parse(&r.url) {
        Ok(u) => u,
        Err(e) => {
            return Attempt::Permanent {
                status: None,
                error: format!("bad URL {:?}: {e}", r.url),
            }
        }
    };
    if let Err(refused) = check_literal(&url, t.allow_private) {
        count(t.subscription, "refused_target", Duration::ZERO);
        return Attempt::Permanent {
            status: None,
            error: refused.to_string(),
        };
    }
    let ts = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut req = t
        .client
        .request(t.method.clone(), url)
        .headers(r.headers.clone())
        .header("webhook-id", &r.id)
        .header("webhook-timestamp", ts.to_string())
        .body(r.body.clone());
    if !t.keys.is_empty() {
        req = req.header("webhook-signature", sign(t.keys, &r.id, ts, &r.body));
    }
    let started = Instant::now();
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) => {
            let elapsed = started.elapsed();
            if let Some(why) = is_refused(&e) {
                count(t.subscription, "refused_target", elapsed);
                return Attempt::Permanent {
                    status: None,
                    error: why,
                };
            }
            let kind = if e.is_timeout() {
                "timeout"
            } else {
                "connect_error"
            };
            count(t.subscription, kind, elapsed);
            return Attempt::Retry {
                status: None,
                error: format!("{kind}: {e}"),
                after: None,
            };
        }
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // Read (a capped part of) the body so the connection can be reused; drop the rest.
    let mut resp = resp;
    let mut read = 0usize;
    while read < t.max_response_bytes {
        match resp.chunk().await {
            Ok(Some(c)) => read += c.len(),
            _ => break,
        }
    }
    let elapsed = started.elapsed();
    let class = match status {
        200..=299 => "2xx",
        429 => "429",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    count(t.subscription, class, elapsed);
    match status {
        200..=299 => Attempt::Ok,
        429 => Attempt::Retry {
            status: Some(status),
            error: "429 Too Many Requests".into(),
            after: retry_after,
        },
        410 => {
            t.disabled.store(true, Ordering::Release);
            if let Some(m) = webhook() {
                m.disabled.with_label_values(&[t.subscription]).set(1);
            }
            log::error!(
                "webhook subscription `{}`: the target answered 410 Gone; it is disabled",
                t.subscription
            );
            Attempt::Permanent {
                status: Some(status),
                error: "410 Gone: target disabled".into(),
            }
        }
        500..=599 => Attempt::Retry {
            status: Some(status),
            error: format!("HTTP {status}"),
            after: None,
        },
        _ => Attempt::Permanent {
            status: Some(status),
            error: format!("HTTP {status} (not retried)"),
        },
    }
}

/// `d` ±20%.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.8 + 0.4 * fastrand::f64())
}

/// Deliver `r`, retrying per the schedule. Stops early (with `None`) when `stop` is set,
/// so a shutdown does not wait out a retry schedule; the record is then redelivered by
/// whoever consumes its partition next.
pub async fn deliver(
    t: &Target<'_>,
    r: &Request,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Option<Outcome> {
    let mut attempts = 0u32;
    loop {
        if t.disabled.load(Ordering::Acquire) {
            return Some(Outcome::Dead {
                attempts,
                status: Some(410),
                error: "target disabled after 410 Gone".into(),
            });
        }
        attempts += 1;
        let (status, error, after) = match attempt(t, r).await {
            Attempt::Ok => return Some(Outcome::Delivered { attempts }),
            Attempt::Permanent { status, error } => {
                return Some(Outcome::Dead {
                    attempts,
                    status,
                    error,
                })
            }
            Attempt::Retry {
                status,
                error,
                after,
            } => (status, error, after),
        };
        let Some(delay) = t.retries.get(attempts as usize - 1) else {
            return Some(Outcome::Dead {
                attempts,
                status,
                error,
            });
        };
        let wait = match after {
            Some(a) if a > t.max_retry_after => {
                if let Some(m) = webhook() {
                    m.capped.with_label_values(&[t.subscription]).inc();
                }
                t.max_retry_after
            }
            Some(a) => a,
            None => jitter(*delay),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped(stop) => return None,
        }
    }
}

/// Copy the listed Kafka headers into HTTP headers, skipping names or values HTTP does
/// not allow (CR, LF, NUL...).
pub fn forwarded<'h>(
    names: &[HeaderName],
    headers: impl Iterator<Item = (&'h str, &'h [u8])>,
    into: &mut HeaderMap,
) {
    for (k, v) in headers {
        let Some(name) = names.iter().find(|n| n.as_str().eq_ignore_ascii_case(k)) else {
            continue;
        };
        if let Ok(value) = HeaderValue::from_bytes(v) {
            into.append(name.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_are_validated() {
        let names = [
            HeaderName::from_static("x-tenant"),
            HeaderName::from_static("x-evil"),
        ];
        let mut h = HeaderMap::new();
        let kafka: Vec<(&str, &[u8])> = vec![
            ("x-tenant", b"acme"),
            ("x-evil", b"a\r\nx-injected: 1"),
            ("other", b"z"),
        ];
        forwarded(&names, kafka.into_iter(), &mut h);
        assert_eq!(h.get("x-tenant").unwrap(), "acme");
        assert!(h.get("x-evil").is_none());
        assert!(h.get("other").is_none());
        let d = jitter(Duration::from_secs(10));
        assert!(d >= Duration::from_secs(8) && d <= Duration::from_secs(12));
    }
}
