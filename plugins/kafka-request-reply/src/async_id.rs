//! Correlation ids of `Prefer: respond-async` requests: `a1.<until>.<owner>.<uuid>`,
//! carrying until when the result is kept (Unix milliseconds) and who may read it (a tag
//! of the consumer's name, `-` on a route without authentication). Every instance reads
//! every reply, so with this any instance keeps the result of any asynchronous request
//! and answers its status URL, not only the one that took it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What an asynchronous id says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncId {
    /// The result is kept until then (Unix milliseconds).
    pub until_ms: u64,
    /// [`owner_tag`] of the consumer who asked.
    pub owner: String,
}

impl AsyncId {
    /// When the result expires on this machine's clock, if it has not: never later than
    /// `ttl` from now (an id cannot keep a result longer than the route's setting).
    pub fn expires(&self, ttl: Duration) -> Option<Instant> {
        let left = self.until_ms.checked_sub(now_ms()).filter(|l| *l > 0)?;
        Some(Instant::now() + Duration::from_millis(left).min(ttl))
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The tag of `consumer` (the first 16 hex digits of a name-based UUID of it), or `-`.
pub fn owner_tag(consumer: Option<&str>) -> String {
    match consumer {
        None => "-".to_string(),
        Some(name) => {
            let u = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes());
            u.simple().to_string()[..16].to_string()
        }
    }
}

/// A new asynchronous id for `consumer`, kept for `ttl`.
pub fn new_id(consumer: Option<&str>, ttl: Duration) -> String {
    let until = now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
    format!(
        "a1.{until}.{}.{}",
        owner_tag(consumer),
        uuid::Uuid::now_v7()
    )
}

/// Read an asynchronous id (`None`: not one).
pub fn parse(id: &str) -> Option<AsyncId> {
    let mut parts = id.splitn(4, '.');
    if parts.next()? != "a1" {
        return None;
    }
    let until_ms = parts.next()?.parse().ok()?;
    let owner = parts.next()?;
    let valid_owner =
        owner == "-" || (owner.len() == 16 && owner.bytes().all(|b| b.is_ascii_hexdigit()));
    let rest = parts.next()?;
    if !valid_owner || uuid::Uuid::try_parse(rest).is_err() {
        return None;
    }
    Some(AsyncId {
        until_ms,
        owner: owner.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_expiry_and_owner_and_nothing_else_parses() {
        let id = new_id(Some("alice"), Duration::from_secs(60));
        let a = parse(&id).unwrap();
        assert_eq!(a.owner, owner_tag(Some("alice")));
        assert_ne!(a.owner, owner_tag(Some("bob")));
        assert_eq!(owner_tag(Some("alice")), owner_tag(Some("alice")));
        let left = a.until_ms - now_ms();
        assert!((59_000..=60_000).contains(&left), "{left}");
        assert!(a.expires(Duration::from_secs(60)).is_some());
        assert_eq!(
            parse(&new_id(None, Duration::from_secs(1))).unwrap().owner,
            "-"
        );
        // Expired, or not ours.
        let old = format!("a1.{}.-.{}", now_ms() - 1, uuid::Uuid::now_v7());
        assert!(parse(&old)
            .unwrap()
            .expires(Duration::from_secs(60))
            .is_none());
        for bad in [
            uuid::Uuid::now_v7().to_string(),
            "a1.x.-.0190b7a0-0000-7000-8000-000000000000".into(),
            "a1.1.zz.0190b7a0-0000-7000-8000-000000000000".into(),
            "a2.1.-.0190b7a0-0000-7000-8000-000000000000".into(),
            "a1.1.-.nope".into(),
            "a1.1.-".into(),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
        // A far-future id keeps its result no longer than the route's ttl.
        let far = format!("a1.{}.-.{}", u64::MAX, uuid::Uuid::now_v7());
        let at = parse(&far)
            .unwrap()
            .expires(Duration::from_secs(5))
            .unwrap();
        assert!(at <= Instant::now() + Duration::from_secs(5));
    }
}
