//! Loading policies: a full example, and malformed policies whose errors must point at the
//! offending line and column and name the offending key or value.

use portcullis_policy::{
    FsGrant, HostPattern, Limits, NetGrant, OnViolation, Policy, PolicyError, Rights, Scheme, Scope,
};

const EXAMPLE: &str = r#"
[profiles.renderer]
# parameters this profile needs when instantiated, e.g. a site's origin
params = ["site"]

[[profiles.renderer.fs]]
path = "/srv/sites/${site}"
rights = ["read", "list"]
[[profiles.renderer.fs]]
path = "/etc/fonts/fonts.conf"
scope = "literal"
rights = ["read"]

[[profiles.renderer.net]]
scheme = "https"
host = "${site}"
port = 443

[profiles.renderer.limits]
requests_per_second = 200
burst = 400
open_fds = 64
fetch_bytes = 8_388_608
fetch_timeout_ms = 10_000

[profiles.plugin]
[[profiles.plugin.net]]
scheme = "tcp"
host = "*.Example.COM"
ports = [80, 443, 80]
allow_private = true
[profiles.plugin.limits]
burst = 7
"#;

#[test]
fn the_example_policy_loads() {
    let policy = Policy::from_toml_str(EXAMPLE, "example.toml").expect("example loads");
    assert_eq!(
        policy.profile_names().collect::<Vec<_>>(),
        ["plugin", "renderer"]
    );
    let renderer = policy
        .instantiate("renderer", &[("site", "Example.org")])
        .expect("renderer instantiates");
    let read_list = Rights {
        read: true,
        list: true,
        ..Rights::default()
    };
    let read = Rights {
        read: true,
        ..Rights::default()
    };
    assert_eq!(
        renderer.fs,
        [
            FsGrant {
                root: "/srv/sites/Example.org".into(),
                scope: Scope::Subtree,
                rights: read_list,
            },
            FsGrant {
                root: "/etc/fonts".into(),
                scope: Scope::Literal {
                    file_name: "fonts.conf".into()
                },
                rights: read,
            },
        ]
    );
    assert_eq!(
        renderer.net,
        [NetGrant {
            scheme: Scheme::Https,
            host: HostPattern::Exact("example.org".into()),
            ports: vec![443],
            allow_private: false,
        }]
    );
    assert_eq!(renderer.limits, Limits::default());

    let plugin = policy
        .instantiate("plugin", &[])
        .expect("plugin instantiates");
    assert!(plugin.fs.is_empty());
    assert_eq!(
        plugin.net,
        [NetGrant {
            scheme: Scheme::Tcp,
            host: HostPattern::Subdomains("example.com".into()),
            ports: vec![80, 443],
            allow_private: true,
        }]
    );
    assert_eq!(
        plugin.limits,
        Limits {
            burst: 7,
            ..Limits::default()
        }
    );
}

#[test]
fn defaults_apply_when_keys_are_absent() {
    let text = "[[profiles.p.net]]\nscheme = \"http\"\nhost = \"a.test\"\n\
                [[profiles.p.net]]\nscheme = \"https\"\nhost = \"::1\"\n";
    let profile = Policy::from_toml_str(text, "d.toml")
        .and_then(|p| p.instantiate("p", &[]))
        .expect("loads");
    assert_eq!(profile.net[0].ports, [80]);
    assert_eq!(profile.net[1].ports, [443]);
    assert_eq!(
        profile.net[1].host,
        HostPattern::Ip("::1".parse().expect("address"))
    );
    assert!(!profile.net[0].allow_private);
    assert_eq!(
        Limits::default(),
        Limits {
            requests_per_second: 200,
            burst: 400,
            open_fds: 64,
            fetch_bytes: 8 * 1024 * 1024,
            fetch_timeout_ms: 10_000,
            memory_bytes: 512 * 1024 * 1024,
            processes: 64,
            cpu_seconds: 0,
            cpu_percent: 100,
            wall_ms: 0,
            file_size_bytes: 1024 * 1024 * 1024,
            on_violation: OnViolation::Kill,
            allow_processes: false,
        }
    );
}

#[test]
fn empty_policy_has_no_profiles() {
    let policy = Policy::from_toml_str("", "empty.toml").expect("loads");
    assert_eq!(policy.profile_names().count(), 0);
    let err = policy.instantiate("x", &[]).expect_err("no such profile");
    assert_eq!(
        err.to_string(),
        "empty.toml: no profile named \"x\"; the policy defines none"
    );
}

fn load_error(text: &str) -> PolicyError {
    match Policy::from_toml_str(text, "bad.toml") {
        Ok(policy) => panic!("loaded but should not have:\n{text}\n{policy:?}"),
        Err(err) => err,
    }
}

/// (policy text, line, column, substrings the message must contain)
const MALFORMED: &[(&str, usize, usize, &[&str])] = &[
    // Unknown keys, at every level.
    (
        "[profiles.r]\n[[profiles.r.fs]]\npath = \"/data\"\nrights = [\"read\"]\nexec = true\n",
        5,
        1,
        &["unknown key \"exec\"", "profiles.r.fs[0]", "path, scope, rights"],
    ),
    ("[profile.r]\n", 1, 2, &["unknown key \"profile\"", "top level", "profiles"]),
    (
        "[profiles.r]\nparam = [\"a\"]\n",
        2,
        1,
        &["unknown key \"param\"", "profiles.r", "params"],
    ),
    (
        "[[profiles.r.net]]\nscheme = \"https\"\nhost = \"a.test\"\nallow-private = true\n",
        4,
        1,
        &["\"allow-private\"", "profiles.r.net[0]", "allow_private"],
    ),
    ("[profiles.r.limits]\nmemory = 1\n", 2, 1, &["\"memory\"", "profiles.r.limits"]),
    // Rights.
    (
        "[[profiles.r.fs]]\npath = \"/data\"\nrights = [\"read\", \"exec\"]\n",
        3,
        19,
        &["profiles.r.fs[0].rights must be a list of read, write, create, delete, list; found \"exec\""],
    ),
    (
        "[[profiles.r.fs]]\npath = \"/data\"\nrights = \"read\"\n",
        3,
        10,
        &["profiles.r.fs[0].rights", "a list of read", "found \"read\""],
    ),
    (
        "[[profiles.r.fs]]\npath = \"/data\"\nrights = []\n",
        3,
        10,
        &["profiles.r.fs[0].rights must not be empty"],
    ),
    (
        "[[profiles.r.fs]]\npath = \"/data\"\n",
        1,
        1,
        &["profiles.r.fs[0] needs rights"],
    ),
    // Paths.
    (
        "[[profiles.r.fs]]\npath = \"srv/x\"\nrights = [\"read\"]\n",
        2,
        8,
        &["profiles.r.fs[0].path", "absolute", "\"srv/x\""],
    ),
    (
        "[[profiles.r.fs]]\npath = \"/srv/../etc\"\nrights = [\"read\"]\n",
        2,
        8,
        &["profiles.r.fs[0].path", "\"..\" components", "\"/srv/../etc\""],
    ),
    (
        "[[profiles.r.fs]]\npath = \"/srv/./x\"\nrights = [\"read\"]\n",
        2,
        8,
        &["\".\" components", "\"/srv/./x\""],
    ),
    (
        "[[profiles.r.fs]]\npath = \"/data/\"\nrights = [\"read\"]\n",
        2,
        8,
        &["not end with '/'", "\"/data/\""],
    ),
    (
        "[[profiles.r.fs]]\npath = \"/a//b\"\nrights = [\"read\"]\n",
        2,
        8,
        &["empty components", "\"/a//b\""],
    ),
    (
        "[[profiles.r.fs]]\npath = \"/da\\u0000ta\"\nrights = [\"read\"]\n",
        2,
        8,
        &["profiles.r.fs[0].path", "NUL"],
    ),
    (
        "[[profiles.r.fs]]\npath = \"/\"\nscope = \"literal\"\nrights = [\"read\"]\n",
        2,
        8,
        &["literal", "name a file", "\"/\""],
    ),
    (
        "[[profiles.r.fs]]\npath = \"/data\"\nscope = \"glob\"\nrights = [\"read\"]\n",
        3,
        9,
        &["profiles.r.fs[0].scope", "\"subtree\" or \"literal\"", "\"glob\""],
    ),
    (
        "[[profiles.r.fs]]\npath = 5\nrights = [\"read\"]\n",
        2,
        8,
        &["profiles.r.fs[0].path must be", "found 5"],
    ),
    // Placeholders.
    (
        "[profiles.r]\nparams = [\"site\"]\n[[profiles.r.fs]]\npath = \"/srv/${stie}\"\nrights = [\"read\"]\n",
        4,
        8,
        &["undeclared parameter \"${stie}\"", "profiles.r.params", "\"/srv/${stie}\""],
    ),
    (
        "[[profiles.r.net]]\nscheme = \"https\"\nhost = \"${site}\"\n",
        3,
        8,
        &["profiles.r.net[0].host", "undeclared parameter \"${site}\""],
    ),
    (
        "[profiles.r]\nparams = [\"site\"]\n[[profiles.r.fs]]\npath = \"/srv/${site\"\nrights = [\"read\"]\n",
        4,
        8,
        &["unterminated placeholder", "\"/srv/${site\""],
    ),
    (
        "[profiles.r]\nparams = [\"a\", \"a\"]\n",
        2,
        16,
        &["profiles.r.params", "\"a\" twice"],
    ),
    (
        "[profiles.r]\nparams = [\"a-b\"]\n",
        2,
        11,
        &["profiles.r.params", "\"a-b\""],
    ),
    (
        "[profiles.r]\nparams = \"site\"\n",
        2,
        10,
        &["profiles.r.params must be a list", "\"site\""],
    ),
    // Network grants.
    (
        "[[profiles.r.net]]\nscheme = \"tcp\"\nhost = \"db.internal\"\nport = 70000\n",
        4,
        8,
        &["profiles.r.net[0].port", "between 1 and 65535", "70000"],
    ),
    (
        "[[profiles.r.net]]\nscheme = \"tcp\"\nhost = \"db.internal\"\nport = 0\n",
        4,
        8,
        &["profiles.r.net[0].port", "between 1 and 65535", "found 0"],
    ),
    (
        "[[profiles.r.net]]\nscheme = \"tcp\"\nhost = \"db.internal\"\nports = [22, -1]\n",
        4,
        14,
        &["profiles.r.net[0].ports", "found -1"],
    ),
    (
        "[profiles.r]\n[[profiles.r.net]]\nscheme = \"tcp\"\nhost = \"db.internal\"\n",
        2,
        1,
        &["profiles.r.net[0]", "scheme \"tcp\"", "port"],
    ),
    (
        "[[profiles.r.net]]\nscheme = \"https\"\nhost = \"example.com\"\nport = \"443\"\n",
        4,
        8,
        &["profiles.r.net[0].port must be an integer", "found \"443\""],
    ),
    (
        "[[profiles.r.net]]\nscheme = \"https\"\nhost = \"example.com\"\nport = 443\nports = [443]\n",
        5,
        1,
        &["profiles.r.net[0]", "both port and ports"],
    ),
    (
        "[[profiles.r.net]]\nscheme = \"https\"\nhost = \"*.*.com\"\n",
        3,
        8,
        &["profiles.r.net[0].host", "\"*.*.com\""],
    ),
    (
        "[[profiles.r.net]]\nscheme = \"https\"\nhost = \"127.1\"\n",
        3,
        8,
        &["profiles.r.net[0].host", "\"127.1\""],
    ),
    (
        "[[profiles.r.net]]\nscheme = \"ftp\"\nhost = \"example.com\"\n",
        2,
        10,
        &["profiles.r.net[0].scheme", "\"ftp\""],
    ),
    (
        "[[profiles.r.net]]\nscheme = \"https\"\nhost = \"a.test\"\nallow_private = \"yes\"\n",
        4,
        17,
        &["profiles.r.net[0].allow_private", "true or false", "\"yes\""],
    ),
    // Limits.
    (
        "[profiles.r.limits]\nburst = 0\n",
        2,
        9,
        &["profiles.r.limits.burst", "between 1", "found 0"],
    ),
    (
        "[profiles.r.limits]\nfetch_bytes = 1.5\n",
        2,
        15,
        &["profiles.r.limits.fetch_bytes", "integer", "float 1.5"],
    ),
    (
        "[profiles.r.limits]\nopen_fds = 4294967296\n",
        2,
        12,
        &["profiles.r.limits.open_fds", "4294967295", "found 4294967296"],
    ),
    // Shapes.
    (
        "[profiles.r.fs]\npath = \"/data\"\n",
        1,
        1,
        &["profiles.r.fs must be an array of tables", "[[profiles.r.fs]]"],
    ),
    ("profiles = 1\n", 1, 12, &["profiles must be a table", "found 1"]),
    (
        "[profiles.\"a b\"]\n",
        1,
        11,
        &["profile name \"a b\""],
    ),
    // Columns count characters, and inline tables are checked like any other.
    (
        "[profiles.r]\nfs = [{ path = \"/é\", rights = [\"read\"], bad = 1 }]\n",
        2,
        41,
        &["unknown key \"bad\"", "profiles.r.fs[0]"],
    ),
    // Not TOML at all.
    (
        "[[profiles.r.fs]]\npath = /data\n",
        2,
        8,
        &["invalid TOML"],
    ),
    (
        "[profiles.r]\nparams = []\nparams = []\n",
        3,
        1,
        &["invalid TOML", "duplicate key", "\"params\""],
    ),
];

#[test]
fn malformed_policies_point_at_the_problem() {
    for &(text, line, column, needles) in MALFORMED {
        let err = load_error(text);
        assert_eq!(
            (err.line, err.column),
            (line, column),
            "position for\n{text}\ngot: {err}"
        );
        for needle in needles {
            assert!(
                err.message.contains(needle),
                "message {:?} lacks {needle:?} for\n{text}",
                err.message
            );
        }
        assert_eq!(err.origin, "bad.toml");
        assert!(!err.message.ends_with('.'), "{err}");
        assert_eq!(
            err.to_string(),
            format!("bad.toml:{line}:{column}: {}", err.message)
        );
    }
}

#[test]
fn errors_report_the_first_problem_in_the_file() {
    // Keys are stored sorted; "zzz" comes first in the file and must be reported first.
    let err = load_error("[profiles.r]\nzzz = 1\naaa = 2\n");
    assert_eq!((err.line, err.column), (2, 1));
    assert!(err.message.contains("\"zzz\""), "{err}");
}
