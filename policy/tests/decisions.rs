//! Table-driven decision tests: every `Access` variant, allowed and denied.

use portcullis_policy::{
    Access, Decision, DenyReason, FsGrant, OpenMode, Policy, Profile, Rights, Scheme, Scope,
};
use std::net::IpAddr;

const POLICY: &str = r#"
[profiles.t]
[[profiles.t.fs]]     # 0
path = "/data"
rights = ["read", "list"]
[[profiles.t.fs]]     # 1
path = "/data/rw"
rights = ["read", "write", "create", "delete", "list"]
[[profiles.t.fs]]     # 2: narrower and read-only inside 1
path = "/data/rw/locked"
rights = ["read"]
[[profiles.t.fs]]     # 3
path = "/etc/fonts/fonts.conf"
scope = "literal"
rights = ["read"]
[[profiles.t.fs]]     # 4
path = "/other"
rights = ["read", "write", "create", "delete", "list"]
[[profiles.t.fs]]     # 5
path = "/drop"
rights = ["create", "write"]
[[profiles.t.fs]]     # 6
path = "/trash"
rights = ["delete"]

[[profiles.t.net]]    # 0
scheme = "https"
host = "example.com"
[[profiles.t.net]]    # 1
scheme = "https"
host = "*.example.com"
ports = [443, 8443]
[[profiles.t.net]]    # 2
scheme = "tcp"
host = "db.internal"
port = 5432
allow_private = true
[[profiles.t.net]]    # 3
scheme = "http"
host = "1.2.3.4"
[[profiles.t.net]]    # 4
scheme = "tcp"
host = "10.0.0.5"
port = 22
[[profiles.t.net]]    # 5
scheme = "tcp"
host = "[::1]"
port = 9000
[[profiles.t.net]]    # 6: longer wildcard than 1
scheme = "https"
host = "*.cdn.example.com"
allow_private = true
"#;

fn profile() -> Profile {
    Policy::from_toml_str(POLICY, "decisions.toml")
        .expect("test policy loads")
        .instantiate("t", &[])
        .expect("test profile instantiates")
}

fn allow(grant: usize, relative: &str) -> Decision {
    Decision::AllowPath {
        grant,
        relative: relative.to_owned(),
    }
}

fn deny(reason: DenyReason) -> Decision {
    Decision::Deny(reason)
}

fn mode(flags: &str) -> OpenMode {
    OpenMode {
        read: flags.contains('r'),
        write: flags.contains('w'),
        create: flags.contains('c'),
        truncate: flags.contains('t'),
        append: flags.contains('a'),
        exclusive: flags.contains('x'),
    }
}

fn check(profile: &Profile, table: &[(Access<'_>, Decision)]) {
    for (access, expected) in table {
        assert_eq!(&profile.decide(access), expected, "{access:?}");
    }
}

#[test]
fn open_needs_the_rights_its_flags_imply() {
    use DenyReason::*;
    let open = |path, flags| Access::Open {
        path,
        mode: mode(flags),
    };
    check(
        &profile(),
        &[
            (open("/data/a.txt", "r"), allow(0, "a.txt")),
            (open("/data/sub/dir/a.txt", "r"), allow(0, "sub/dir/a.txt")),
            // A read-only grant asked for anything more.
            (open("/data/a.txt", "w"), deny(MissingRight)),
            (open("/data/a.txt", "rw"), deny(MissingRight)),
            (open("/data/a.txt", "rc"), deny(MissingRight)),
            (open("/data/a.txt", "rt"), deny(MissingRight)),
            (open("/data/a.txt", "ra"), deny(MissingRight)),
            (open("/data/a.txt", "rx"), deny(MissingRight)),
            (open("/data/a.txt", "wcx"), deny(MissingRight)),
            // The full-rights grant nested inside it.
            (open("/data/rw/a.txt", "r"), allow(1, "a.txt")),
            (open("/data/rw/a.txt", "wcta"), allow(1, "a.txt")),
            (open("/data/rw/a.txt", "rwcx"), allow(1, "a.txt")),
            // Longest grant wins, even when it has fewer rights.
            (open("/data/rw/locked/a", "r"), allow(2, "a")),
            (open("/data/rw/locked/a", "w"), deny(MissingRight)),
            (open("/data/rw/locked/a", "rc"), deny(MissingRight)),
            // A grant's root is an entry of its parent grant, not of itself.
            (open("/data/rw/locked", "w"), allow(1, "locked")),
            (open("/data", "r"), deny(NotGranted)),
            // Create-and-write drop box.
            (open("/drop/new", "wcx"), allow(5, "new")),
            (open("/drop/new", "r"), deny(MissingRight)),
            // Neither read nor write makes no sense, wherever it points.
            (open("/data/rw/a.txt", ""), deny(BadRequest)),
            (open("/data/rw/a.txt", "cta"), deny(BadRequest)),
            (open("/nowhere/a", ""), deny(BadRequest)),
            (open("/nowhere/a", "r"), deny(NotGranted)),
            (open("/", "r"), deny(NotGranted)),
        ],
    );
}

#[test]
fn literal_grants_cover_exactly_their_file() {
    use DenyReason::*;
    let read = mode("r");
    check(
        &profile(),
        &[
            (
                Access::Open {
                    path: "/etc/fonts/fonts.conf",
                    mode: read,
                },
                allow(3, "fonts.conf"),
            ),
            (
                Access::Stat {
                    path: "/etc/fonts/fonts.conf",
                },
                allow(3, "fonts.conf"),
            ),
            (
                Access::Open {
                    path: "/etc/fonts/fonts.conf",
                    mode: mode("w"),
                },
                deny(MissingRight),
            ),
            (
                Access::Open {
                    path: "/etc/fonts/other.conf",
                    mode: read,
                },
                deny(NotGranted),
            ),
            (
                Access::Open {
                    path: "/etc/fonts/fonts.conf.bak",
                    mode: read,
                },
                deny(NotGranted),
            ),
            (
                Access::Open {
                    path: "/etc/fonts/fonts.conf/x",
                    mode: read,
                },
                deny(NotGranted),
            ),
            (Access::Stat { path: "/etc/fonts" }, deny(NotGranted)),
            (Access::ReadDir { path: "/etc/fonts" }, deny(NotGranted)),
            (Access::Stat { path: "/etc" }, deny(NotGranted)),
        ],
    );
}

#[test]
fn literal_grant_beats_subtree_grant_on_its_file() {
    let profile = Profile {
        fs: vec![
            FsGrant {
                root: "/etc".into(),
                scope: Scope::Subtree,
                rights: Rights {
                    list: true,
                    ..Rights::default()
                },
            },
            FsGrant {
                root: "/etc".into(),
                scope: Scope::Literal {
                    file_name: "passwd".into(),
                },
                rights: Rights {
                    read: true,
                    ..Rights::default()
                },
            },
        ],
        ..Profile::default()
    };
    let read = mode("r");
    check(
        &profile,
        &[
            (
                Access::Open {
                    path: "/etc/passwd",
                    mode: read,
                },
                allow(1, "passwd"),
            ),
            (
                Access::Open {
                    path: "/etc/shadow",
                    mode: read,
                },
                deny(DenyReason::MissingRight),
            ),
            (Access::ReadDir { path: "/etc" }, allow(0, "")),
        ],
    );
}

#[test]
fn longest_grant_wins_whatever_the_policy_order() {
    let all = Rights {
        read: true,
        write: true,
        create: true,
        delete: true,
        list: true,
    };
    let read = Rights {
        read: true,
        ..Rights::default()
    };
    let subtree = |root: &str, rights| FsGrant {
        root: root.into(),
        scope: Scope::Subtree,
        rights,
    };
    let specific_first = Profile {
        fs: vec![subtree("/a/b", read), subtree("/a", all)],
        ..Profile::default()
    };
    let specific_last = Profile {
        fs: vec![subtree("/a", all), subtree("/a/b", read)],
        ..Profile::default()
    };
    for (profile, narrow) in [(&specific_first, 0), (&specific_last, 1)] {
        check(
            profile,
            &[
                (
                    Access::Open {
                        path: "/a/b/x",
                        mode: mode("w"),
                    },
                    deny(DenyReason::MissingRight),
                ),
                (
                    Access::Open {
                        path: "/a/b/x",
                        mode: mode("r"),
                    },
                    allow(narrow, "x"),
                ),
                (
                    Access::Remove { path: "/a/b/x" },
                    deny(DenyReason::MissingRight),
                ),
                (Access::Remove { path: "/a/x" }, allow(1 - narrow, "x")),
            ],
        );
    }
}

#[test]
fn equally_specific_grants_use_the_first_with_the_right() {
    let grant = |rights| FsGrant {
        root: "/dup".into(),
        scope: Scope::Subtree,
        rights,
    };
    let profile = Profile {
        fs: vec![
            grant(Rights {
                read: true,
                ..Rights::default()
            }),
            grant(Rights {
                write: true,
                ..Rights::default()
            }),
        ],
        ..Profile::default()
    };
    check(
        &profile,
        &[
            (
                Access::Open {
                    path: "/dup/f",
                    mode: mode("r"),
                },
                allow(0, "f"),
            ),
            (
                Access::Open {
                    path: "/dup/f",
                    mode: mode("w"),
                },
                allow(1, "f"),
            ),
            (
                Access::Open {
                    path: "/dup/f",
                    mode: mode("rw"),
                },
                deny(DenyReason::MissingRight),
            ),
        ],
    );
}

#[test]
fn a_grant_of_the_root_directory_works() {
    let profile = Profile {
        fs: vec![FsGrant {
            root: "/".into(),
            scope: Scope::Subtree,
            rights: Rights {
                read: true,
                list: true,
                ..Rights::default()
            },
        }],
        ..Profile::default()
    };
    check(
        &profile,
        &[
            (Access::ReadDir { path: "/" }, allow(0, "")),
            (
                Access::Stat {
                    path: "/etc/passwd",
                },
                allow(0, "etc/passwd"),
            ),
            (
                Access::Stat { path: "/etc/../x" },
                deny(DenyReason::BadPath),
            ),
        ],
    );
}

#[test]
fn hand_built_grants_with_unclean_roots_match_nothing() {
    let rights = Rights {
        read: true,
        ..Rights::default()
    };
    let profile = Profile {
        fs: vec![
            FsGrant {
                root: "data".into(),
                scope: Scope::Subtree,
                rights,
            },
            FsGrant {
                root: "/data/../etc".into(),
                scope: Scope::Subtree,
                rights,
            },
            FsGrant {
                root: "/etc".into(),
                scope: Scope::Literal {
                    file_name: "..".into(),
                },
                rights,
            },
        ],
        ..Profile::default()
    };
    for path in ["/data/x", "/etc/x", "/data/../etc/x", "/"] {
        assert!(
            matches!(profile.decide(&Access::Stat { path }), Decision::Deny(_)),
            "{path}"
        );
    }
}

#[test]
fn stat_readdir_createdir_remove() {
    use DenyReason::*;
    check(
        &profile(),
        &[
            (Access::Stat { path: "/data" }, allow(0, "")),
            (Access::Stat { path: "/data/x" }, allow(0, "x")),
            (Access::Stat { path: "/drop/x" }, deny(MissingRight)),
            (Access::Stat { path: "/" }, deny(NotGranted)),
            (Access::Stat { path: "/nowhere" }, deny(NotGranted)),
            (Access::ReadDir { path: "/data" }, allow(0, "")),
            (Access::ReadDir { path: "/data/sub" }, allow(0, "sub")),
            (Access::ReadDir { path: "/data/rw" }, allow(1, "")),
            (
                Access::ReadDir {
                    path: "/data/rw/locked",
                },
                deny(MissingRight),
            ),
            (Access::ReadDir { path: "/trash" }, deny(MissingRight)),
            (Access::ReadDir { path: "/" }, deny(NotGranted)),
            (
                Access::CreateDir {
                    path: "/data/rw/new",
                },
                allow(1, "new"),
            ),
            (Access::CreateDir { path: "/drop/new" }, allow(5, "new")),
            (Access::CreateDir { path: "/data/new" }, deny(MissingRight)),
            (Access::CreateDir { path: "/data/rw" }, deny(MissingRight)),
            (Access::CreateDir { path: "/data" }, deny(NotGranted)),
            (Access::CreateDir { path: "/new" }, deny(NotGranted)),
            (Access::Remove { path: "/data/rw/f" }, allow(1, "f")),
            (Access::Remove { path: "/trash/f" }, allow(6, "f")),
            (Access::Remove { path: "/data/f" }, deny(MissingRight)),
            (
                Access::Remove {
                    path: "/data/rw/locked/f",
                },
                deny(MissingRight),
            ),
            (Access::Remove { path: "/trash" }, deny(NotGranted)),
            (Access::Remove { path: "/nowhere/f" }, deny(NotGranted)),
            (
                Access::Remove {
                    path: "/data/rw/f/",
                },
                deny(BadPath),
            ),
        ],
    );
}

#[test]
fn rename_needs_delete_then_create_under_one_root() {
    use DenyReason::*;
    let rename = |from, to| Access::Rename { from, to };
    let allow_rename = |grant, from: &str, to: &str| Decision::AllowRename {
        grant,
        from: from.to_owned(),
        to: to.to_owned(),
    };
    check(
        &profile(),
        &[
            (
                rename("/data/rw/a", "/data/rw/b"),
                allow_rename(1, "a", "b"),
            ),
            (
                rename("/data/rw/x/a", "/data/rw/y/b"),
                allow_rename(1, "x/a", "y/b"),
            ),
            (rename("/other/a", "/other/a"), allow_rename(4, "a", "a")),
            // Both sides granted, but under different roots.
            (rename("/data/rw/a", "/other/b"), deny(CrossGrant)),
            (rename("/trash/a", "/drop/a"), deny(CrossGrant)),
            // Missing delete on the source, missing create on the target.
            (rename("/data/a", "/data/rw/b"), deny(MissingRight)),
            (rename("/data/rw/a", "/data/b"), deny(MissingRight)),
            (
                rename("/data/rw/locked/a", "/data/rw/b"),
                deny(MissingRight),
            ),
            (rename("/drop/a", "/drop/b"), deny(MissingRight)),
            (rename("/data/rw/a", "/nowhere/b"), deny(NotGranted)),
            (rename("/nowhere/a", "/data/rw/b"), deny(NotGranted)),
            // Renaming the root of a narrower grant would carry its files out from under its
            // rules (read-only `locked` renamed to a writable name): refused.
            (
                rename("/data/rw/locked", "/data/rw/unlocked"),
                deny(MissingRight),
            ),
            (
                rename("/data/rw/other", "/data/rw/locked"),
                deny(MissingRight),
            ),
            (rename("/data/rw", "/data/rw2"), deny(MissingRight)),
            (rename("/data/rw/../a", "/data/rw/b"), deny(BadPath)),
            (rename("/data/rw/a", "/data/rw/./b"), deny(BadPath)),
            (rename("/data/rw/a", "data/rw/b"), deny(BadPath)),
        ],
    );
}

#[test]
fn unclean_paths_are_bad_paths_wherever_the_problem_is() {
    let profile = profile();
    let long = format!("/data/{}", "a/".repeat(32 * 1024));
    let unclean = [
        "/..",
        "/../data/x",
        "/data/..",
        "/data/../data/x",
        "/data/x/..",
        "/data/x/../y",
        "/data/rw/../../etc/passwd",
        "//data/x",
        "/data//x",
        "/data/x//",
        "/data/x/",
        "/data/",
        "/data/x/.",
        "/data/.",
        "/data/./x",
        "/./data/x",
        "/.",
        "data/x",
        "./data/x",
        "../data/x",
        "",
        "x",
        "/data/x\0y",
        "/data/\0",
        "\0/data/x",
        long.as_str(),
    ];
    for path in unclean {
        let show = &path[..path.len().min(40)];
        let bad = Decision::Deny(DenyReason::BadPath);
        assert_eq!(profile.decide(&Access::Stat { path }), bad, "stat {show:?}");
        assert_eq!(
            profile.decide(&Access::ReadDir { path }),
            bad,
            "readdir {show:?}"
        );
        let open = Access::Open {
            path,
            mode: mode("r"),
        };
        assert_eq!(profile.decide(&open), bad, "open {show:?}");
        assert_eq!(
            profile.decide(&Access::CreateDir { path }),
            bad,
            "mkdir {show:?}"
        );
        assert_eq!(profile.decide(&Access::Remove { path }), bad, "rm {show:?}");
        let rename = Access::Rename {
            from: "/data/rw/a",
            to: path,
        };
        assert_eq!(profile.decide(&rename), bad, "rename to {show:?}");
    }
    // Dots inside a name are just a name.
    check(
        &profile,
        &[
            (
                Access::Stat {
                    path: "/data/..foo",
                },
                allow(0, "..foo"),
            ),
            (Access::Stat { path: "/data/a..b" }, allow(0, "a..b")),
            (Access::Stat { path: "/data/..." }, allow(0, "...")),
            (
                Access::Stat {
                    path: "/data/.hidden",
                },
                allow(0, ".hidden"),
            ),
        ],
    );
    // The length limit is 4096 bytes, inclusive.
    let exactly = format!("/data/{}", "b".repeat(4096 - "/data/".len()));
    let one_more = format!("{exactly}b");
    assert!(matches!(
        profile.decide(&Access::Stat { path: &exactly }),
        Decision::AllowPath { grant: 0, .. }
    ));
    assert_eq!(
        profile.decide(&Access::Stat { path: &one_more }),
        Decision::Deny(DenyReason::BadPath)
    );
}

#[test]
fn grants_match_whole_components_not_prefixes() {
    let profile = profile();
    for path in [
        "/data-evil/x",
        "/data-evil",
        "/datax",
        "/dat",
        "/data.bak/x",
        "/other2/x",
        "/dataa/rw/x",
        "/etc/fontsx/fonts.conf",
    ] {
        assert_eq!(
            profile.decide(&Access::Stat { path }),
            Decision::Deny(DenyReason::NotGranted),
            "{path}"
        );
    }
    assert_eq!(
        profile.decide(&Access::Open {
            path: "/data/rw-evil/x",
            mode: mode("w"),
        }),
        Decision::Deny(DenyReason::MissingRight),
        "/data/rw-evil is under the read-only /data, not under /data/rw"
    );
}

fn allow_net(grant: usize, host: &str, port: u16, scheme: Scheme) -> Decision {
    Decision::AllowNet {
        grant,
        host: host.to_owned(),
        port,
        scheme,
    }
}

#[test]
fn fetch_matches_scheme_host_and_port() {
    use DenyReason::*;
    use Scheme::*;
    let fetch = |url| Access::Fetch { url };
    check(
        &profile(),
        &[
            (
                fetch("https://example.com/"),
                allow_net(0, "example.com", 443, Https),
            ),
            (
                fetch("https://example.com"),
                allow_net(0, "example.com", 443, Https),
            ),
            (
                fetch("https://example.com:443/x"),
                allow_net(0, "example.com", 443, Https),
            ),
            (
                fetch("HTTPS://EXAMPLE.Com/A?b#C"),
                allow_net(0, "example.com", 443, Https),
            ),
            (
                fetch("https://example.com/#frag"),
                allow_net(0, "example.com", 443, Https),
            ),
            (fetch("http://example.com/"), deny(NotGranted)),
            (fetch("https://example.com:8443/"), deny(NotGranted)),
            // Subdomain patterns.
            (
                fetch("https://a.example.com/"),
                allow_net(1, "a.example.com", 443, Https),
            ),
            (
                fetch("https://a.b.example.com:8443/"),
                allow_net(1, "a.b.example.com", 8443, Https),
            ),
            (fetch("https://a.example.com:444/"), deny(NotGranted)),
            (fetch("https://evilexample.com/"), deny(NotGranted)),
            (fetch("https://example.com.evil.net/"), deny(NotGranted)),
            (fetch("https://aexample.com/"), deny(NotGranted)),
            // The longer wildcard wins.
            (
                fetch("https://x.cdn.example.com/"),
                allow_net(6, "x.cdn.example.com", 443, Https),
            ),
            (
                fetch("https://cdn.example.com/"),
                allow_net(1, "cdn.example.com", 443, Https),
            ),
            // IP literals, default port 80 for http.
            (fetch("http://1.2.3.4/"), allow_net(3, "1.2.3.4", 80, Http)),
            (
                fetch("http://1.2.3.4:80"),
                allow_net(3, "1.2.3.4", 80, Http),
            ),
            (
                fetch("http://[::ffff:1.2.3.4]/"),
                allow_net(3, "1.2.3.4", 80, Http),
            ),
            (fetch("http://1.2.3.5/"), deny(NotGranted)),
            (fetch("https://1.2.3.4/"), deny(NotGranted)),
            (fetch("http://[::1]:9000/"), deny(NotGranted)),
            // A tcp grant is not an http grant.
            (fetch("https://db.internal:5432/"), deny(NotGranted)),
            // Malformed URLs.
            (fetch("https://user@example.com/"), deny(BadUrl)),
            (fetch("https://user:pass@example.com/"), deny(BadUrl)),
            (fetch("https://evil.com\\@example.com/"), deny(BadUrl)),
            (fetch("https:///"), deny(BadUrl)),
            (fetch("https://"), deny(BadUrl)),
            (fetch("https://:443/"), deny(BadUrl)),
            (fetch("https://example.com:/"), deny(BadUrl)),
            (fetch("https://example.com:99999/"), deny(BadUrl)),
            (fetch("https://example.com:0/"), deny(BadUrl)),
            (fetch("https://example.com:44x/"), deny(BadUrl)),
            (fetch("https://[::1/"), deny(BadUrl)),
            (fetch("https://::1/"), deny(BadUrl)),
            (fetch("https://exämple.com/"), deny(BadUrl)),
            (fetch("https://xn--exmple-cua.com/"), deny(NotGranted)),
            (fetch("https://example.com\n/"), deny(BadUrl)),
            (fetch("ftp://example.com/"), deny(BadUrl)),
            (fetch("example.com"), deny(BadUrl)),
            (fetch("//example.com/"), deny(BadUrl)),
            (fetch("https:example.com"), deny(BadUrl)),
            (fetch(""), deny(BadUrl)),
        ],
    );
}

#[test]
fn connect_matches_tcp_grants() {
    use DenyReason::*;
    use Scheme::Tcp;
    let connect = |host, port| Access::Connect { host, port };
    check(
        &profile(),
        &[
            (
                connect("db.internal", 5432),
                allow_net(2, "db.internal", 5432, Tcp),
            ),
            (
                connect("DB.Internal", 5432),
                allow_net(2, "db.internal", 5432, Tcp),
            ),
            (connect("db.internal", 5433), deny(NotGranted)),
            (connect("x.db.internal", 5432), deny(NotGranted)),
            (connect("10.0.0.5", 22), allow_net(4, "10.0.0.5", 22, Tcp)),
            (
                connect("::ffff:10.0.0.5", 22),
                allow_net(4, "10.0.0.5", 22, Tcp),
            ),
            (connect("10.0.0.6", 22), deny(NotGranted)),
            (connect("[::1]", 9000), allow_net(5, "::1", 9000, Tcp)),
            (connect("::1", 9000), allow_net(5, "::1", 9000, Tcp)),
            (
                connect("0:0:0:0:0:0:0:1", 9000),
                allow_net(5, "::1", 9000, Tcp),
            ),
            (connect("127.0.0.1", 9000), deny(NotGranted)),
            (connect("example.com", 443), deny(NotGranted)),
            (connect("", 22), deny(BadRequest)),
            (connect("db internal", 5432), deny(BadRequest)),
            (connect("db.internal:5432", 5432), deny(BadRequest)),
            (connect("db.internal", 0), deny(BadRequest)),
            (connect("127.1", 9000), deny(BadRequest)),
            (connect("[10.0.0.5]", 22), deny(BadRequest)),
        ],
    );
}

const PRIVATE: &[&str] = &[
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "192.168.255.255",
    "169.254.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.255",
    "0.0.0.0",
    "224.0.0.1",
    "239.255.255.255",
    "255.255.255.255",
    "::",
    "::1",
    "fe80::1",
    "febf:ffff::1",
    "fc00::1",
    "fdff:ffff::1",
    "ff02::1",
    "ff0e::1",
    "::ffff:127.0.0.1",
    "::ffff:10.1.1.1",
    "::ffff:169.254.169.254",
];

const PUBLIC: &[&str] = &[
    "93.184.216.34",
    "9.9.9.9",
    "11.0.0.1",
    "172.15.255.255",
    "172.32.0.1",
    "192.169.0.1",
    "169.253.0.1",
    "100.63.255.255",
    "100.128.0.1",
    "223.255.255.255",
    "2606:2800:220:1:248:1893:25c8:1946",
    "::ffff:93.184.216.34",
];

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address parses")
}

#[test]
fn private_addresses_are_denied_unless_the_grant_allows_them() {
    let profile = profile();
    let (strict, lenient) = (0, 2);
    assert!(!profile.net[strict].allow_private);
    assert!(profile.net[lenient].allow_private);
    for addr in PRIVATE {
        assert_eq!(
            profile.check_address(strict, ip(addr)),
            Err(DenyReason::PrivateAddress),
            "{addr} on a strict grant"
        );
        assert_eq!(
            profile.check_address(lenient, ip(addr)),
            Ok(()),
            "{addr} on an allow_private grant"
        );
    }
    for addr in PUBLIC {
        assert_eq!(profile.check_address(strict, ip(addr)), Ok(()), "{addr}");
        assert_eq!(profile.check_address(lenient, ip(addr)), Ok(()), "{addr}");
    }
}

#[test]
fn an_ip_grant_allows_exactly_its_address() {
    let profile = profile();
    let (private_ip_grant, loopback_grant, public_ip_grant) = (4, 5, 3);
    let table = [
        (private_ip_grant, "10.0.0.5", Ok(())),
        (private_ip_grant, "::ffff:10.0.0.5", Ok(())),
        (private_ip_grant, "10.0.0.6", Err(DenyReason::NotGranted)),
        (
            private_ip_grant,
            "93.184.216.34",
            Err(DenyReason::NotGranted),
        ),
        (loopback_grant, "::1", Ok(())),
        (loopback_grant, "127.0.0.1", Err(DenyReason::NotGranted)),
        (public_ip_grant, "1.2.3.4", Ok(())),
        (public_ip_grant, "1.2.3.5", Err(DenyReason::NotGranted)),
        (99, "93.184.216.34", Err(DenyReason::NotGranted)),
    ];
    for (grant, addr, expected) in table {
        assert_eq!(
            profile.check_address(grant, ip(addr)),
            expected,
            "{grant} {addr}"
        );
    }
}

#[test]
fn deny_reasons_have_distinct_stable_names() {
    use DenyReason::*;
    let table = [
        (NotGranted, "not-granted"),
        (MissingRight, "missing-right"),
        (BadPath, "bad-path"),
        (BadUrl, "bad-url"),
        (BadRequest, "bad-request"),
        (CrossGrant, "cross-grant"),
        (PrivateAddress, "private-address"),
        (RateLimited, "rate-limited"),
        (TooManyFds, "too-many-fds"),
    ];
    for (reason, name) in table {
        assert_eq!(reason.as_str(), name);
        assert_eq!(reason.to_string(), name);
    }
}

#[test]
fn the_empty_profile_denies_everything() {
    let profile = Profile::default();
    check(
        &profile,
        &[
            (Access::Stat { path: "/" }, deny(DenyReason::NotGranted)),
            (
                Access::Open {
                    path: "/etc/passwd",
                    mode: mode("r"),
                },
                deny(DenyReason::NotGranted),
            ),
            (
                Access::Connect {
                    host: "example.com",
                    port: 443,
                },
                deny(DenyReason::NotGranted),
            ),
            (
                Access::Fetch {
                    url: "https://example.com/",
                },
                deny(DenyReason::NotGranted),
            ),
        ],
    );
    assert_eq!(
        profile.check_address(0, ip("1.1.1.1")),
        Err(DenyReason::NotGranted)
    );
}

/// Tiny xorshift64 PRNG: deterministic, no `rand` crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).expect("small n")).expect("fits")
    }
}

/// Every allowed path lies inside its grant's root, has no `.`/`..`/empty component, and is
/// exactly the path that was asked for.
fn assert_contained(profile: &Profile, asked: &str, grant: usize, relative: &str) {
    let g = &profile.fs[grant];
    for component in relative.split('/') {
        assert!(
            !matches!(component, "." | "..") && (relative.is_empty() || !component.is_empty()),
            "{asked:?} gave relative {relative:?}"
        );
    }
    assert!(
        !relative.starts_with('/') && !relative.contains('\0'),
        "{relative:?}"
    );
    if let Scope::Literal { file_name } = &g.scope {
        assert_eq!(relative, file_name, "{asked:?}");
    }
    let full = if relative.is_empty() {
        g.root.clone()
    } else {
        format!("{}/{relative}", g.root)
    };
    assert_eq!(full, asked, "{asked:?} resolved elsewhere");
    let inside = full == g.root || full.starts_with(&format!("{}/", g.root));
    assert!(inside, "{asked:?} escaped {:?}", g.root);
}

#[test]
fn random_paths_never_escape_their_grant() {
    const SEGMENTS: &[&str] = &[
        "a",
        "b",
        "..",
        ".",
        "",
        "b\0",
        "data-evil",
        "data",
        "rw",
        "locked",
        "etc",
        "fonts",
        "fonts.conf",
        "...",
        "..a",
        "trash",
        "drop",
    ];
    const PREFIXES: &[&str] = &[
        "",
        "/data",
        "/data/rw",
        "/data/rw/locked",
        "/etc/fonts",
        "/trash",
    ];
    let profile = profile();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let (mut allowed, mut denied) = (0usize, 0usize);
    for _ in 0..5_000 {
        let mut path = PREFIXES[rng.below(PREFIXES.len())].to_owned();
        for _ in 0..rng.below(6) {
            path.push('/');
            path.push_str(SEGMENTS[rng.below(SEGMENTS.len())]);
        }
        match rng.below(8) {
            0 => path = path.trim_start_matches('/').to_owned(),
            1 => path.push('/'),
            _ => {}
        }
        let other = "/data/rw/a";
        let accesses = [
            Access::Open {
                path: &path,
                mode: mode("r"),
            },
            Access::Open {
                path: &path,
                mode: mode("wc"),
            },
            Access::Stat { path: &path },
            Access::ReadDir { path: &path },
            Access::CreateDir { path: &path },
            Access::Remove { path: &path },
            Access::Rename {
                from: &path,
                to: other,
            },
            Access::Rename {
                from: other,
                to: &path,
            },
        ];
        for access in &accesses {
            match profile.decide(access) {
                Decision::AllowPath { grant, relative } => {
                    allowed += 1;
                    assert_contained(&profile, &path, grant, &relative);
                }
                Decision::AllowRename { grant, from, to } => {
                    allowed += 1;
                    let Access::Rename { from: f, to: t } = *access else {
                        panic!("rename decision for {access:?}");
                    };
                    assert_contained(&profile, f, grant, &from);
                    assert_contained(&profile, t, grant, &to);
                }
                Decision::AllowNet { .. } => panic!("net decision for {access:?}"),
                Decision::Deny(_) => denied += 1,
            }
        }
    }
    // The generator must exercise both outcomes, or the property says nothing.
    assert!(
        allowed > 2_000 && denied > 2_000,
        "{allowed} allowed, {denied} denied"
    );
}
