//! Sites and the renderer profile each one gets.
//!
//! A site is a scheme, host and port (`http://example.com:80`); every site gets its own
//! renderer process. Its profile is the policy's profile for the site's kind, narrowed to that
//! one site: a web renderer keeps only the policy's grant for its own scheme and port, plus an
//! explicit grant when the user allowed the origin (`--allow-origin`); the file:// renderer gets
//! read access beneath the one directory of `--files` and nothing else.

use std::net::IpAddr;
use std::path::Path;

use portcullis::policy::{FsGrant, HostPattern, NetGrant, Policy, Profile, Rights, Scheme, Scope};

/// The default policy, embedded.
pub const DEFAULT_POLICY: &str = include_str!("../policy.toml");

/// Which renderer a URL belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Site {
    /// `http` or `https`, a host (lowercase name or IP literal without brackets) and a port.
    Web {
        /// `http` or `https`.
        scheme: String,
        /// The host.
        host: String,
        /// The port (the scheme's default when the URL gives none).
        port: u16,
    },
    /// Every `file://` URL.
    File,
    /// An about: page that runs in a renderer of its own (`crash`, `hang`, `escape`).
    About(String),
}

impl Site {
    /// The site of an absolute URL, or why it has none a renderer could load.
    pub fn of(url: &url::Url) -> Result<Site, String> {
        match url.scheme() {
            "http" | "https" => {
                let host = match url.host() {
                    Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
                    Some(url::Host::Ipv4(a)) => a.to_string(),
                    Some(url::Host::Ipv6(a)) => a.to_string(),
                    None => return Err(format!("{url} has no host")),
                };
                let port = url
                    .port_or_known_default()
                    .ok_or_else(|| format!("{url} has no port"))?;
                Ok(Site::Web {
                    scheme: url.scheme().to_owned(),
                    host,
                    port,
                })
            }
            "file" => Ok(Site::File),
            "about" => Ok(Site::About(url.path().to_owned())),
            other => Err(format!("{other}: URLs are not supported")),
        }
    }

    /// Parses an origin given on the command line (`http://127.0.0.1:8080`).
    pub fn parse_origin(text: &str) -> Result<Site, String> {
        let url = url::Url::parse(text).map_err(|e| format!("bad origin {text:?}: {e}"))?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "bad origin {text:?}: give scheme://host:port only, no path"
            ));
        }
        match Site::of(&url)? {
            site @ Site::Web { .. } => Ok(site),
            _ => Err(format!("bad origin {text:?}: only http and https origins")),
        }
    }

    /// `http://host:port`, `file://`, `about:name`.
    pub fn key(&self) -> String {
        match self {
            Site::Web { scheme, host, port } if host.contains(':') => {
                format!("{scheme}://[{host}]:{port}")
            }
            Site::Web { scheme, host, port } => format!("{scheme}://{host}:{port}"),
            Site::File => "file://".into(),
            Site::About(name) => format!("about:{name}"),
        }
    }
}

/// Whether `ip` is an address anyone on the internet could have (not loopback, private,
/// link-local, unique-local, unspecified, multicast, broadcast, shared or documentation space).
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let [o0, o1, ..] = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || o0 == 0
                || (o0 == 100 && (64..128).contains(&o1)))
        }
        IpAddr::V6(a) => {
            let s0 = a.segments()[0];
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s0 & 0xfe00) == 0xfc00
                || (s0 & 0xffc0) == 0xfe80
                || s0 == 0x2001 && a.segments()[1] == 0x0db8)
        }
    }
}

/// What the shell knows when it builds a profile.
#[derive(Debug, Clone)]
pub struct Grants {
    /// The policy (the embedded default or `--policy`).
    pub policy: Policy,
    /// The directory of `--files` (absolute, canonical), if any.
    pub files: Option<String>,
    /// Origins the user granted explicitly (and the shell's own pages server).
    pub allowed_origins: Vec<Site>,
}

impl Grants {
    /// The profile of `site`'s renderer.
    ///
    /// Errors: the policy lacks the profile, or refuses the site's host as a parameter.
    pub fn profile_for(&self, site: &Site) -> Result<Profile, String> {
        let instantiate = |name: &str, params: &[(&str, &str)]| {
            self.policy
                .instantiate(name, params)
                .map_err(|e| format!("policy: {e}"))
        };
        match site {
            Site::Web { scheme, host, port } => {
                let mut profile = instantiate("renderer", &[("site", host)])?;
                // An IP literal that is not public (127.0.0.1, 10.x, ::1) is reachable only
                // through an explicit grant, whatever the policy's `${site}` grants would say.
                let private_literal = host.parse::<IpAddr>().is_ok_and(|ip| !is_public(ip));
                profile.net.retain(|g| {
                    !private_literal && g.scheme.as_str() == scheme && g.ports.contains(port)
                });
                if self.allowed_origins.contains(site) {
                    let scheme = if scheme == "https" {
                        Scheme::Https
                    } else {
                        Scheme::Http
                    };
                    let pattern = match host.parse::<IpAddr>() {
                        Ok(ip) => HostPattern::Ip(ip),
                        Err(_) => HostPattern::Exact(host.clone()),
                    };
                    profile.net.push(NetGrant {
                        scheme,
                        host: pattern,
                        ports: vec![*port],
                        allow_private: true,
                    });
                }
                Ok(profile)
            }
            Site::File => {
                let mut profile = instantiate("renderer-files", &[])?;
                profile.net.clear();
                profile.fs = self
                    .files
                    .iter()
                    .map(|root| FsGrant {
                        root: root.clone(),
                        scope: Scope::Subtree,
                        rights: Rights {
                            read: true,
                            list: true,
                            ..Rights::default()
                        },
                    })
                    .collect();
                Ok(profile)
            }
            Site::About(name) => {
                let mut profile = match name.as_str() {
                    "hang" => instantiate("about-hang", &[])?,
                    "escape" => instantiate("about-escape", &[])?,
                    _ => instantiate("renderer-files", &[])?,
                };
                profile.net.clear();
                profile.fs.clear();
                Ok(profile)
            }
        }
    }
}

/// Makes `dir` the clean absolute path a grant needs.
pub fn files_root(dir: &Path) -> Result<String, String> {
    let canonical =
        std::fs::canonicalize(dir).map_err(|e| format!("--files {}: {e}", dir.display()))?;
    if !canonical.is_dir() {
        return Err(format!("--files {}: not a directory", dir.display()));
    }
    canonical
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("--files {}: not a UTF-8 path", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis::policy::{Access, Decision, DenyReason};

    fn grants(allowed: &[&str]) -> Grants {
        Grants {
            policy: Policy::from_toml_str(DEFAULT_POLICY, "policy.toml").unwrap(),
            files: Some("/srv/files".into()),
            allowed_origins: allowed
                .iter()
                .map(|o| Site::parse_origin(o).unwrap())
                .collect(),
        }
    }

    fn site(url: &str) -> Site {
        Site::of(&url::Url::parse(url).unwrap()).unwrap()
    }

    fn fetch(profile: &Profile, url: &str) -> Decision {
        profile.decide(&Access::Fetch { url })
    }

    #[test]
    fn a_site_may_fetch_its_own_origin_only() {
        let g = grants(&[]);
        let p = g.profile_for(&site("https://example.com/a")).unwrap();
        assert!(matches!(
            fetch(&p, "https://example.com/x.png"),
            Decision::AllowNet { .. }
        ));
        for other in [
            "http://example.com/",
            "https://example.com:8443/",
            "https://a.example.com/",
            "https://example.org/",
        ] {
            assert_eq!(
                fetch(&p, other),
                Decision::Deny(DenyReason::NotGranted),
                "{other}"
            );
        }
        assert!(p.fs.is_empty());
    }

    #[test]
    fn loopback_needs_an_explicit_grant_of_exactly_that_port() {
        let url = "http://127.0.0.1:8080/";
        let none = grants(&[]).profile_for(&site(url)).unwrap();
        assert_eq!(fetch(&none, url), Decision::Deny(DenyReason::NotGranted));
        let port80 = grants(&[]).profile_for(&site("http://127.0.0.1/")).unwrap();
        assert!(port80.net.is_empty());
        let granted = grants(&["http://127.0.0.1:8080"])
            .profile_for(&site(url))
            .unwrap();
        assert!(matches!(fetch(&granted, url), Decision::AllowNet { .. }));
        assert_eq!(
            fetch(&granted, "http://127.0.0.1:8081/"),
            Decision::Deny(DenyReason::NotGranted)
        );
        assert!(granted
            .check_address(0, "127.0.0.1".parse().unwrap())
            .is_ok());
    }

    #[test]
    fn file_renderer_reads_beneath_the_files_directory_only() {
        let p = grants(&[]).profile_for(&Site::File).unwrap();
        let read = portcullis::policy::OpenMode {
            read: true,
            ..Default::default()
        };
        assert!(matches!(
            p.decide(&Access::Open {
                path: "/srv/files/a.html",
                mode: read
            }),
            Decision::AllowPath { .. }
        ));
        assert_eq!(
            p.decide(&Access::Open {
                path: "/etc/passwd",
                mode: read
            }),
            Decision::Deny(DenyReason::NotGranted)
        );
        assert!(p.net.is_empty());
    }

    #[test]
    fn about_renderers_get_nothing_and_escape_is_deny_mode() {
        let g = grants(&["http://127.0.0.1:8080"]);
        let escape = g.profile_for(&Site::About("escape".into())).unwrap();
        assert!(escape.net.is_empty() && escape.fs.is_empty());
        assert_eq!(
            escape.limits.on_violation,
            portcullis::policy::OnViolation::Deny
        );
        let hang = g.profile_for(&Site::About("hang".into())).unwrap();
        assert!(hang.limits.wall_ms > 0);
    }

    #[test]
    fn origins_parse_strictly() {
        assert_eq!(
            Site::parse_origin("http://127.0.0.1:8080").unwrap().key(),
            "http://127.0.0.1:8080"
        );
        assert!(Site::parse_origin("http://127.0.0.1:8080/path").is_err());
        assert!(Site::parse_origin("file:///tmp").is_err());
        assert_eq!(
            site("HTTPS://Example.COM/x").key(),
            "https://example.com:443"
        );
        assert_eq!(site("http://[::1]:9/").key(), "http://[::1]:9");
    }

    #[test]
    fn public_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        assert!(is_public("93.184.216.34".parse().unwrap()));
    }
}
