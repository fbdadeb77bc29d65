//! Who the client is behind proxies (`server.trusted_proxies`, as nginx's `realip` and
//! Envoy's trusted hops): forwarding headers are believed only from a trusted peer. The
//! client address is then the rightmost `X-Forwarded-For` entry that is not itself a
//! trusted proxy (each trusted hop appends the address it saw); from any other peer, the
//! peer itself is the client and the headers it sent are replaced.

use crate::config::error::InvalidValue;
use std::net::IpAddr;

/// One `ip/prefix` network (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse `10.0.0.0/8`, `2001:db8::/32` or `192.0.2.7`.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or `ip/prefix` network"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0-{max}"))?,
        };
        Ok(Self { net, prefix })
    }

    /// True when `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// True when `ip` is in one of `trusted`.
pub fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    trusted.iter().any(|c| c.contains(ip))
}

/// The client's address: `peer` unless `peer` is trusted, then the rightmost
/// `X-Forwarded-For` address (over all its fields) that is not trusted, or the leftmost
/// one when all are. Unparsable entries stop the walk (nothing left of them is believed).
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut client = peer;
    for entry in forwarded_for.rev().flat_map(|v| v.rsplit(',')) {
        let Some(ip) = parse_entry(entry) else { break };
        client = ip;
        if !is_trusted(ip, trusted) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, optionally `[v6]`, `v4:port` or `[v6]:port`.
fn parse_entry(e: &str) -> Option<IpAddr> {
    let e = e.trim();
    if let Ok(ip) = e.parse() {
        return Some(ip);
    }
    if let Some(rest) = e.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    e.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("2001:db8::/32")
            .unwrap()
            .contains(ip("2001:db8::1")));
        assert!(Cidr::parse("192.0.2.7").unwrap().contains(ip("192.0.2.7")));
        assert!(!Cidr::parse("192.0.2.7").unwrap().contains(ip("192.0.2.8")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_headers_only_count_from_trusted_peers() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let xff = ["198.51.100.9, 203.0.113.5", "10.0.0.2"];
        // An untrusted peer: its header is a claim, not a fact.
        assert_eq!(
            client_address(ip("192.0.2.1"), xff.iter().copied(), &trusted),
            ip("192.0.2.1")
        );
        // A trusted balancer: the rightmost untrusted entry (the spoofable left part is
        // ignored), across several header fields.
        assert_eq!(
            client_address(ip("10.0.0.1"), xff.iter().copied(), &trusted),
            ip("203.0.113.5")
        );
        // Everything trusted: the leftmost.
        assert_eq!(
            client_address(ip("10.0.0.1"), ["10.9.9.9"].into_iter(), &trusted),
            ip("10.9.9.9")
        );
        // No header: the peer.
        assert_eq!(
            client_address(ip("10.0.0.1"), [].into_iter(), &trusted),
            ip("10.0.0.1")
        );
        // Garbage stops the walk.
        assert_eq!(
            client_address(ip("10.0.0.1"), ["1.2.3.4, junk"].into_iter(), &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), ["[2001:db8::5]:443"].into_iter(), &trusted),
            ip("2001:db8::5")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), ["203.0.113.5:8080"].into_iter(), &trusted),
            ip("203.0.113.5")
        );
    }
}
