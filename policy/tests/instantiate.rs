//! Instantiating profiles: parameters substitute cleanly, and injection attempts are refused.

use portcullis_policy::{Access, Decision, DenyReason, HostPattern, Policy, PolicyError, Scope};

const POLICY: &str = r#"
[profiles.site]
params = ["site", "file"]
[[profiles.site.fs]]
path = "/srv/sites/${site}"
rights = ["read", "list"]
[[profiles.site.fs]]
path = "/etc/conf.d/${file}"
scope = "literal"
rights = ["read"]
[[profiles.site.net]]
scheme = "https"
host = "${site}"
[[profiles.site.net]]
scheme = "https"
host = "*.${site}"

[profiles.path_only]
params = ["dir"]
[[profiles.path_only.fs]]
path = "/srv/x.${dir}"
rights = ["read"]

[profiles.fixed]
[[profiles.fixed.fs]]
path = "/data"
rights = ["read"]
"#;

fn policy() -> Policy {
    Policy::from_toml_str(POLICY, "inst.toml").expect("test policy loads")
}

fn refused(profile: &str, params: &[(&str, &str)]) -> PolicyError {
    match policy().instantiate(profile, params) {
        Ok(p) => panic!("{profile} {params:?} instantiated: {p:?}"),
        Err(err) => err,
    }
}

#[test]
fn parameters_are_substituted() {
    let profile = policy()
        .instantiate("site", &[("file", "app.conf"), ("site", "Example.com")])
        .expect("instantiates");
    assert_eq!(profile.fs[0].root, "/srv/sites/Example.com");
    assert_eq!(profile.fs[1].root, "/etc/conf.d");
    assert_eq!(
        profile.fs[1].scope,
        Scope::Literal {
            file_name: "app.conf".into()
        }
    );
    assert_eq!(
        profile.net[0].host,
        HostPattern::Exact("example.com".into())
    );
    assert_eq!(
        profile.net[1].host,
        HostPattern::Subdomains("example.com".into())
    );
    assert_eq!(
        profile.decide(&Access::Stat {
            path: "/srv/sites/Example.com/index.html"
        }),
        Decision::AllowPath {
            grant: 0,
            relative: "index.html".into()
        }
    );
    assert_eq!(
        profile.decide(&Access::Stat {
            path: "/srv/sites/other.com/index.html"
        }),
        Decision::Deny(DenyReason::NotGranted)
    );

    let by_ip = policy()
        .instantiate("site", &[("site", "192.0.2.7"), ("file", "a")])
        .expect_err("\"*.192.0.2.7\" is not a host pattern");
    assert!(by_ip.message.contains("*.192.0.2.7"), "{by_ip}");
}

#[test]
fn an_ip_parameter_becomes_an_ip_pattern() {
    let text = "[profiles.p]\nparams = [\"ip\"]\n[[profiles.p.net]]\nscheme = \"tcp\"\n\
                host = \"${ip}\"\nport = 22\n";
    let profile = Policy::from_toml_str(text, "ip.toml")
        .and_then(|p| p.instantiate("p", &[("ip", "::ffff:10.0.0.1")]))
        .expect("instantiates");
    assert_eq!(
        profile.net[0].host,
        HostPattern::Ip("10.0.0.1".parse().expect("address"))
    );
}

#[test]
fn injection_through_parameters_is_refused() {
    let table: &[(&str, &str, &str)] = &[
        // (param, value, what the message must mention)
        ("site", "../../etc", "'/'"),
        ("site", "..", "\"..\""),
        ("site", "a..b", "\"..\""),
        ("site", ".", "\".\""),
        ("site", "", "empty"),
        ("site", "a/b", "'/'"),
        ("site", "/", "'/'"),
        ("site", "x\0y", "NUL"),
        ("site", "${file}", "\"${\""),
        // Used in a host: must also be a DNS name or an address.
        ("site", "*", "host"),
        ("site", "evil.com:80", "host"),
        ("site", "a b", "host"),
        ("site", "user@evil.com", "host"),
        ("site", "127.1", "host"),
        ("site", "bücher.de", "host"),
        ("file", "..", "\"..\""),
        ("file", "a/../../etc/shadow", "'/'"),
        ("file", ".", "\".\""),
    ];
    for &(param, value, needle) in table {
        let other = if param == "site" { "file" } else { "site" };
        let err = refused("site", &[(param, value), (other, "ok.example")]);
        assert_eq!((err.line, err.column), (0, 0), "{err}");
        assert!(err.message.contains(param), "{err}");
        assert!(err.message.contains(needle), "{value:?}: {err}");
        assert!(err.to_string().starts_with("inst.toml: "), "{err}");
    }
}

#[test]
fn values_that_combine_into_a_bad_path_are_refused() {
    // "/srv/x.${dir}" with "." is "/srv/x.." — a fine name, not a ".." component.
    let ok = policy()
        .instantiate("path_only", &[("dir", ".")])
        .expect_err("\".\" is refused on its own");
    assert!(ok.message.contains("\".\""), "{ok}");
    let fine = policy()
        .instantiate("path_only", &[("dir", "d")])
        .expect("instantiates");
    assert_eq!(fine.fs[0].root, "/srv/x.d");
    let long = "a".repeat(5000);
    let err = refused("path_only", &[("dir", &long)]);
    assert!(err.message.contains("4096"), "{err}");
}

#[test]
fn parameters_must_match_the_declaration() {
    type Params<'a> = &'a [(&'a str, &'a str)];
    let table: &[(&str, Params<'_>, &str)] = &[
        ("site", &[("site", "a.com")], "needs parameter \"file\""),
        ("site", &[], "needs parameter \"site\""),
        (
            "site",
            &[("site", "a.com"), ("file", "f"), ("extra", "x")],
            "no parameter \"extra\"",
        ),
        (
            "site",
            &[("site", "a.com"), ("site", "b.com"), ("file", "f")],
            "more than once",
        ),
        ("fixed", &[("site", "a.com")], "declares none"),
        ("nope", &[], "no profile named \"nope\""),
    ];
    for &(profile, params, needle) in table {
        let err = refused(profile, params);
        assert!(err.message.contains(needle), "{profile} {params:?}: {err}");
        assert_eq!((err.line, err.column), (0, 0));
    }
    let err = refused("nope", &[]);
    assert!(err.message.contains("fixed, path_only, site"), "{err}");
}
