//! A deliberately strict parser for the URLs of `Access::Fetch`.
//!
//! The broker hands the URL to an HTTP client whose own (WHATWG) parser must see the same
//! scheme, host and port as this one did. So anything on which lenient parsers disagree is
//! refused rather than interpreted: userinfo, backslashes, ASCII control characters and spaces
//! (WHATWG silently strips tabs and newlines), `http:host` or `http:/host` without `//`, empty
//! ports, percent signs or non-ASCII in the host (no IDNA), numeric-looking names such as
//! `0x7f.1`, and IPv6 zone ids.

use crate::host::{parse_dns_name, HostName};
use crate::profile::Scheme;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 8192;

/// What a fetch would connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchTarget {
    pub(crate) scheme: Scheme,
    pub(crate) host: HostName,
    pub(crate) port: u16,
}

/// Parses an `http` or `https` URL; `None` for anything else or anything ambiguous.
pub(crate) fn parse_fetch_url(url: &str) -> Option<FetchTarget> {
    if url.len() > MAX_URL_LEN
        || url
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\')
    {
        return None;
    }
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (inner, after) = bracketed.split_once(']')?;
        let addr = inner.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (HostName::Ip(IpAddr::V6(addr).to_canonical()), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let host = match host.parse::<Ipv4Addr>() {
            Ok(v4) => HostName::Ip(IpAddr::V4(v4)),
            Err(_) => HostName::Dns(parse_dns_name(host)?),
        };
        (host, port)
    };
    let port = match port {
        None => scheme.default_port()?,
        Some(digits) => parse_port(digits)?,
    };
    Some(FetchTarget { scheme, host, port })
}

/// 1 to 5 ASCII digits with a value in 1..=65535.
fn parse_port(digits: &str) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u16>().ok().filter(|&p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Option<(Scheme, String, u16)> {
        parse_fetch_url(url).map(|t| (t.scheme, t.host.to_host_string(), t.port))
    }

    #[test]
    fn accepted_urls() {
        let table = [
            ("http://example.com", (Scheme::Http, "example.com", 80)),
            ("https://example.com/", (Scheme::Https, "example.com", 443)),
            (
                "HTTPS://WWW.Example.COM:8443/a?b#c",
                (Scheme::Https, "www.example.com", 8443),
            ),
            (
                "https://example.com#frag",
                (Scheme::Https, "example.com", 443),
            ),
            (
                "https://example.com?q=@x",
                (Scheme::Https, "example.com", 443),
            ),
            ("http://[::1]:8080/x", (Scheme::Http, "::1", 8080)),
            ("http://[::ffff:7f00:1]/", (Scheme::Http, "127.0.0.1", 80)),
            ("http://1.2.3.4:65535", (Scheme::Http, "1.2.3.4", 65535)),
            (
                "https://example.com:0443/",
                (Scheme::Https, "example.com", 443),
            ),
        ];
        for (url, (scheme, host, port)) in table {
            assert_eq!(target(url), Some((scheme, host.to_owned(), port)), "{url}");
        }
    }

    #[test]
    fn refused_urls() {
        for url in [
            "",
            "example.com",
            "ftp://example.com/",
            "http:/example.com",
            "http:example.com",
            "http:///example.com",
            "http://",
            "http://user@example.com/",
            "http://user:pw@example.com/",
            "http://example.com@evil.com/",
            "http://evil.com\\@example.com/",
            "http://exa\tmple.com/",
            "http://example.com /",
            "http://example.com:/",
            "http://example.com:0/",
            "http://example.com:65536/",
            "http://example.com:80a/",
            "http://example.com:-1/",
            "http://example.com:1:2/",
            "http://::1/",
            "http://[::1/",
            "http://[::1]x/",
            "http://[fe80::1%25eth0]/",
            "http://[1.2.3.4]/",
            "http://bücher.de/",
            "http://%65xample.com/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://example.com./",
        ] {
            assert_eq!(target(url), None, "{url:?}");
        }
        let long = format!("http://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(target(&long), None);
    }
}
