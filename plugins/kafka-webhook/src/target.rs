//! Where a record goes: the URL template over the record, and the HTTP client that
//! refuses non-public targets (SSRF) unless allowed. Host names are resolved by our own
//! resolver, which drops loopback, private, link-local (including the cloud metadata
//! address), shared and other non-public addresses, and the client connects only to the
//! addresses it returned — no second lookup to rebind. Redirects are never followed.

use sluice_core::config::error::InvalidValue;
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::Message;

/// A part of the URL template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Topic,
    Partition,
    Offset,
    Key,
    Header(String),
}

/// `url` with `{topic}`, `{partition}`, `{offset}`, `{key}`, `{header.NAME}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    parts: Vec<Part>,
}

impl UrlTemplate {
    /// Parse; the URL must be http(s).
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if !(s.starts_with("http://") || s.starts_with("https://")) {
            return Err(format!("{s:?} must start with http:// or https://").into());
        }
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find('{') {
            if i > 0 {
                parts.push(Part::Lit(rest[..i].to_string()));
            }
            let end = rest[i..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in {s:?}"))?
                + i;
            let name = &rest[i + 1..end];
            parts.push(match name {
                "topic" => Part::Topic,
                "partition" => Part::Partition,
                "offset" => Part::Offset,
                "key" => Part::Key,
                _ => match name.strip_prefix("header.") {
                    Some(h) if !h.is_empty() => Part::Header(h.to_string()),
                    _ => return Err(format!("unknown placeholder `{{{name}}}` (known: topic, partition, offset, key, header.NAME)").into()),
                },
            });
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        let t = Self { parts };
        // The literal parts must make a URL (placeholders render as `x`).
        reqwest::Url::parse(&t.render_with(|_| "x".into()))
            .map_err(|e| format!("{s:?} is not a URL: {e}"))?;
        Ok(t)
    }

    fn render_with(&self, value: impl Fn(&Part) -> String) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                other => out.push_str(&encode(&value(other))),
            }
        }
        out
    }

    /// The URL for a record.
    pub fn render<M: Message>(&self, m: &M) -> String {
        self.render_with(|p| match p {
            Part::Topic => m.topic().to_string(),
            Part::Partition => m.partition().to_string(),
            Part::Offset => m.offset().to_string(),
            Part::Key => m
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default(),
            Part::Header(h) => sluice_kafka::event::header(m, h)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default(),
            Part::Lit(s) => s.clone(),
        })
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why an address is not a public one, if it is not.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            if v6.is_loopback() {
                return Some("loopback");
            }
            if v6.is_unspecified() {
                return Some("unspecified");
            }
            // Forms that carry an IPv4 address: mapped (::ffff:a.b.c.d), compatible
            // (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::).
            let embedded = v6.to_ipv4().or_else(|| {
                let o = v6.octets();
                match seg {
                    [0x64, 0xff9b, 0, 0, 0, 0, _, _] => {
                        Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
                    }
                    [0x2002, _, _, _, _, _, _, _] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
                    _ => None,
                }
            });
            if let Some(reason) = embedded.and_then(v4_reason) {
                return Some(reason);
            }
            if v6.is_multicast() {
                Some("multicast")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if seg[0] & 0xffc0 == 0xfe80 || seg[0] & 0xffc0 == 0xfec0 {
                Some("link-local")
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                Some("reserved")
            } else {
                None
            }
        }
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() {
        Some("broadcast or multicast")
    } else if o[0] == 100 && (64..128).contains(&o[1]) {
        Some("shared (carrier-grade NAT)")
    } else if o[0] == 198 && (18..20).contains(&o[1]) || o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("reserved")
    } else {
        None
    }
}

/// A target the policy refuses.
#[derive(Debug)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused target: {} (allow_private_targets is off)",
            self.0
        )
    }
}

impl StdError for Refused {}

struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (ok, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = all
                .into_iter()
                .partition(|a| allow || non_public(a.ip()).is_none());
            if ok.is_empty() {
                let why = refused
                    .first()
                    .and_then(|a| non_public(a.ip()))
                    .unwrap_or("no address");
                let e: Box<dyn StdError + Send + Sync> =
                    Box::new(Refused(format!("{host} resolves to a {why} address")));
                return Err(e);
            }
            let addrs: reqwest::dns::Addrs = Box::new(ok.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client of a subscription.
pub fn client(allow_private: bool, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .build()
}

/// Check a URL whose host is an IP literal (the resolver is not asked for those).
pub fn check_literal(url: &reqwest::Url, allow_private: bool) -> Result<(), Refused> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    match (allow_private, non_public(ip)) {
        (false, Some(why)) => Err(Refused(format!("{ip} is a {why} address"))),
        _ => Ok(()),
    }
}

/// True when `e` (or its causes) is a refusal by the policy.
pub fn is_refused(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.to_string());
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses() {
        for (ip, public) in [
            ("127.0.0.1", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("::1", false),
            ("fd00::1", false),
            ("fe80::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::10.0.0.1", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("2002:7f00:1::", false),
            ("2001:db8::1", false),
            ("fec0::1", false),
            ("64:ff9b::808:808", true),
            ("8.8.8.8", true),
            ("2606:4700::1111", true),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(non_public(ip).is_none(), public, "{ip}");
        }
        let url = reqwest::Url::parse("http://169.254.169.254/latest/meta-data").unwrap();
        assert!(check_literal(&url, false).is_err());
        assert!(check_literal(&url, true).is_ok());
    }

    #[test]
    fn url_templates() {
        assert!(UrlTemplate::parse("ftp://x").is_err());
        assert!(UrlTemplate::parse("http://x/{nope}").is_err());
        let t = UrlTemplate::parse("https://h.example/hooks/{topic}/{key}").unwrap();
        assert_eq!(
            t.render_with(|p| match p {
                Part::Topic => "orders".into(),
                _ => "a/b c".into(),
            }),
            "https://h.example/hooks/orders/a%2Fb%20c"
        );
    }
}
