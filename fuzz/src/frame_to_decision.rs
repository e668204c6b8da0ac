//! Fuzz target (a): the whole path a hostile child's bytes take to a decision.
//!
//! Input format: a sequence of datagrams, each a 2-byte little-endian length and that many bytes
//! (cut to what is left). Each datagram goes through the channel's receive-side framing checks
//! and each whole message is decoded as a `ServiceRequest` (`portcullis_ipc::fuzzing`, the code
//! `Channel::recv` runs), then mapped to an `Access` as the broker maps it and decided by a
//! fixed profile. Properties: nothing panics; a decision is always one of
//! [`crate::invariants::check`]'s allowed shapes (never an allow outside a grant); and memory
//! stays bounded by the input — the replay test measures each input's peak allocation, and
//! libFuzzer runs with `-malloc_limit_mb` (see `scripts/fuzz.sh`).

use portcullis_broker::to_access;
use portcullis_ipc::fuzzing::decode_datagrams;
use portcullis_ipc::service::ServiceRequest;
use portcullis_ipc::ChannelLimits;
use portcullis_policy::{Policy, Profile};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

/// The profile every input is decided against: nested subtrees with narrowing, a literal file,
/// and network grants of every kind (exact, wildcard, IP, private).
pub const POLICY: &str = r#"
[profiles.fuzz]
[[profiles.fuzz.fs]]
path = "/data"
rights = ["read", "list"]
[[profiles.fuzz.fs]]
path = "/data/rw"
rights = ["read", "write", "create", "delete", "list"]
[[profiles.fuzz.fs]]
path = "/data/rw/locked"
rights = ["read"]
[[profiles.fuzz.fs]]
path = "/etc/fonts/fonts.conf"
scope = "literal"
rights = ["read"]
[[profiles.fuzz.fs]]
path = "/srv/a"
rights = ["read", "write", "create", "delete", "list"]
[[profiles.fuzz.fs]]
path = "/tmp"
rights = ["create", "write"]
[[profiles.fuzz.net]]
scheme = "https"
host = "example.com"
[[profiles.fuzz.net]]
scheme = "https"
host = "*.example.com"
ports = [443, 8443]
[[profiles.fuzz.net]]
scheme = "tcp"
host = "db.internal"
port = 5432
allow_private = true
[[profiles.fuzz.net]]
scheme = "http"
host = "1.2.3.4"
[[profiles.fuzz.net]]
scheme = "tcp"
host = "[::1]"
port = 9000
"#;

/// The fixed profile (parsed once).
pub fn profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| {
        Policy::from_toml_str(POLICY, "fuzz.toml")
            .and_then(|p| p.instantiate("fuzz", &[]))
            .unwrap_or_else(|e| panic!("the fuzz policy must load: {e}"))
    })
}

/// The service channel's real limits, and a tiny message cap to reach `TooLarge` often.
pub const LIMITS: [ChannelLimits; 2] = [
    ChannelLimits {
        max_message_bytes: 16 * 1024 * 1024,
        max_fds_per_message: 8,
    },
    ChannelLimits {
        max_message_bytes: 64,
        max_fds_per_message: 8,
    },
];

/// Splits an input into datagrams (2-byte little-endian length, then the bytes).
pub fn datagrams(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let [lo, hi, rest @ ..] = data {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len());
        let (datagram, tail) = rest.split_at(len);
        out.push(datagram);
        data = tail;
    }
    out
}

/// What one input led to (under the real limits).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Requests decoded.
    pub requests: usize,
    /// Of those, allowed.
    pub allowed: usize,
    /// A framing or decode violation ended the input.
    pub violation: bool,
}

/// Runs one input; panics if a property fails.
pub fn run(data: &[u8]) -> Outcome {
    let profile = profile();
    let mut outcome = Outcome::default();
    for (pass, limits) in LIMITS.into_iter().enumerate() {
        for result in decode_datagrams::<ServiceRequest>(datagrams(data), limits) {
            let Ok(request) = result else {
                if pass == 0 {
                    outcome.violation = true;
                }
                continue;
            };
            let access = to_access(&request);
            let decision = profile.decide(&access);
            if let Err(broken) = crate::invariants::check(profile, &access, &decision) {
                panic!("{broken}\n  request {request:?}\n  decision {decision:?}");
            }
            if let portcullis_policy::Decision::AllowNet { grant, .. } = decision {
                // The broker's next step: every resolved address is checked (never panics).
                for addr in [
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                    IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
                ] {
                    let _ = profile.check_address(grant, addr);
                }
            }
            if pass == 0 {
                outcome.requests += 1;
                if !matches!(decision, portcullis_policy::Decision::Deny(_)) {
                    outcome.allowed += 1;
                }
            }
        }
    }
    outcome
}
