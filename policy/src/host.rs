//! Host names, IP literals, and which addresses count as public.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest DNS name accepted, in bytes (RFC 1035, without the trailing dot).
const MAX_DNS_NAME_LEN: usize = 253;
/// Longest DNS label, in bytes (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// A syntactically valid host: a lowercase DNS name or a canonical IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostName {
    Dns(String),
    Ip(IpAddr),
}

impl HostName {
    /// The spelling handed to the broker: the lowercase name, or the canonical address
    /// without brackets.
    pub(crate) fn to_host_string(&self) -> String {
        match self {
            HostName::Dns(name) => name.clone(),
            HostName::Ip(addr) => addr.to_string(),
        }
    }
}

/// Parses a host as written in a policy or a `Connect` request: a DNS name (any case), a dotted
/// IPv4 address, or an IPv6 address with or without brackets.
pub(crate) fn parse_host(text: &str) -> Option<HostName> {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .ok()
            .map(|a| HostName::Ip(IpAddr::V6(a).to_canonical()));
    }
    if text.contains(':') {
        return text
            .parse::<Ipv6Addr>()
            .ok()
            .map(|a| HostName::Ip(IpAddr::V6(a).to_canonical()));
    }
    parse_host_no_v6(text)
}

/// Parses a host that cannot be a bare IPv6 address (as in a URL authority): a DNS name or a
/// dotted IPv4 address.
pub(crate) fn parse_host_no_v6(text: &str) -> Option<HostName> {
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Some(HostName::Ip(IpAddr::V4(v4)));
    }
    parse_dns_name(text).map(HostName::Dns)
}

/// Validates and lowercases a DNS name.
///
/// Labels are 1 to 63 bytes of ASCII letters, digits, `-` and `_`, not starting or ending
/// with `-`; the whole name is at most 253 bytes, with no trailing dot. Non-ASCII is refused:
/// IDNA is not supported. A name whose last label looks like a number (`127.1`, `0x7f.1`,
/// `2130706433`) is refused too, because URL parsers and `inet_aton` read such names as IPv4
/// addresses, and the name checked must be the name the broker connects to.
pub(crate) fn parse_dns_name(text: &str) -> Option<String> {
    if text.is_empty() || text.len() > MAX_DNS_NAME_LEN || !text.is_ascii() {
        return None;
    }
    let name = text.to_ascii_lowercase();
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return None;
        }
    }
    let last = name.rsplit('.').next().unwrap_or_default();
    if looks_numeric(last) {
        return None;
    }
    Some(name)
}

/// The WHATWG URL "ends in a number" test for one (lowercase) label.
fn looks_numeric(label: &str) -> bool {
    if label.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    label
        .strip_prefix("0x")
        .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `addr` is a public, globally routable unicast address.
///
/// Default deny: IPv4 is public unless it falls in one of the special-purpose ranges below;
/// IPv6 is public only inside global unicast `2000::/3`, minus special blocks. IPv4-mapped
/// (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses are judged by
/// the IPv4 address they carry, since that is where the packets end up.
pub(crate) fn is_public(addr: IpAddr) -> bool {
    match addr.to_canonical() {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// IPv4 ranges that are not public: (network, prefix length, what it is).
const NON_PUBLIC_V4: &[(Ipv4Addr, u32, &str)] = &[
    (
        Ipv4Addr::new(0, 0, 0, 0),
        8,
        "this network, incl. unspecified 0.0.0.0",
    ),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared address space (carrier-grade NAT)",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        "documentation (TEST-NET-1)",
    ),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay anycast"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "documentation (TEST-NET-2)",
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "documentation (TEST-NET-3)",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (
        Ipv4Addr::new(240, 0, 0, 0),
        4,
        "reserved, incl. broadcast 255.255.255.255",
    ),
];

fn is_public_v4(addr: Ipv4Addr) -> bool {
    let bits = u32::from(addr);
    !NON_PUBLIC_V4.iter().any(|&(net, len, _)| {
        let mask = u32::MAX << (32 - len);
        bits & mask == u32::from(net) & mask
    })
}

/// IPv6 blocks inside `2000::/3` that are not public: (network, prefix length, what it is).
const NON_PUBLIC_V6_GLOBAL: &[(Ipv6Addr, u32, &str)] = &[
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignments, incl. Teredo",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
];

fn in_v6_prefix(bits: u128, net: Ipv6Addr, len: u32) -> bool {
    let mask = u128::MAX << (128 - len);
    bits & mask == u128::from(net) & mask
}

fn is_public_v6(addr: Ipv6Addr) -> bool {
    let bits = u128::from(addr);
    let [a, b, c, d] = addr.octets()[12..16] else {
        return false;
    };
    let low_v4 = Ipv4Addr::new(a, b, c, d);
    if in_v6_prefix(bits, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return is_public_v4(low_v4);
    }
    if in_v6_prefix(bits, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        let [_, _, a, b, c, d, ..] = addr.octets();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    in_v6_prefix(bits, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3)
        && !NON_PUBLIC_V6_GLOBAL
            .iter()
            .any(|&(net, len, _)| in_v6_prefix(bits, net, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_lowercased_and_checked() {
        assert_eq!(parse_dns_name("Example.COM"), Some("example.com".into()));
        assert_eq!(
            parse_dns_name("_srv.a-b.example"),
            Some("_srv.a-b.example".into())
        );
        for bad in [
            "",
            ".",
            "a..b",
            "a.",
            ".a",
            "-a.com",
            "a-.com",
            "a b.com",
            "bücher.de",
            "a%2e.com",
            "127.1",
            "0x7f.1",
            "2130706433",
            "a.0x1f",
            "*.a.com",
        ] {
            assert_eq!(parse_dns_name(bad), None, "{bad:?}");
        }
        assert!(parse_dns_name(&"a".repeat(64)).is_none());
        assert!(parse_dns_name(&"a".repeat(63)).is_some());
    }

    #[test]
    fn hosts_parse_as_names_or_canonical_addresses() {
        assert_eq!(
            parse_host("[::1]"),
            Some(HostName::Ip("::1".parse().unwrap()))
        );
        assert_eq!(
            parse_host("::1"),
            Some(HostName::Ip("::1".parse().unwrap()))
        );
        assert_eq!(
            parse_host("::ffff:10.0.0.1"),
            Some(HostName::Ip("10.0.0.1".parse().unwrap()))
        );
        assert_eq!(parse_host("[1.2.3.4]"), None);
        assert_eq!(parse_host("010.0.0.1"), None);
        assert_eq!(parse_host("fe80::1%eth0"), None);
    }

    #[test]
    fn public_addresses() {
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        for private in [
            "0.0.0.0",
            "127.0.0.1",
            "10.1.2.3",
            "100.64.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "ff02::1",
            "fec0::1",
            "2001:db8::1",
            "2001::1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
    }
}
