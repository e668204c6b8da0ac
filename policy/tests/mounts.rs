//! `[[profiles.NAME.mounts]]`: the host paths an exec-mode program sees in its read-only minimal
//! root. Valid mounts instantiate with parameters; every malformed one is an error at its line
//! and column.

use portcullis_policy::{MountGrant, Policy, PolicyError};

#[test]
fn mounts_load_and_instantiate() {
    let policy = Policy::from_toml_str(
        r#"
[profiles.tool]
params = ["user"]
[[profiles.tool.mounts]]
path = "/usr/share/zoneinfo"
[[profiles.tool.mounts]]
path = "/srv/out/${user}"
access = "rw"
[[profiles.tool.mounts]]
path = "/etc/ssl/certs"
access = "ro"
"#,
        "tool.toml",
    )
    .expect("loads");
    let (profile, mounts) = policy
        .instantiate_with_mounts("tool", &[("user", "ada")])
        .expect("instantiates");
    assert!(profile.fs.is_empty());
    assert_eq!(
        mounts,
        [
            MountGrant {
                path: "/usr/share/zoneinfo".into(),
                writable: false
            },
            MountGrant {
                path: "/srv/out/ada".into(),
                writable: true
            },
            MountGrant {
                path: "/etc/ssl/certs".into(),
                writable: false
            },
        ]
    );
    // instantiate() is unchanged: the same profile, mounts left out.
    assert_eq!(
        policy.instantiate("tool", &[("user", "ada")]).unwrap(),
        profile
    );
    // A parameter value can never add a path component.
    assert!(policy
        .instantiate_with_mounts("tool", &[("user", "../etc")])
        .is_err());
}

#[test]
fn a_profile_without_mounts_has_none() {
    let policy = Policy::from_toml_str("[profiles.p]\n", "p.toml").unwrap();
    let (_, mounts) = policy.instantiate_with_mounts("p", &[]).unwrap();
    assert!(mounts.is_empty());
}

fn load_error(text: &str) -> PolicyError {
    match Policy::from_toml_str(text, "bad.toml") {
        Ok(policy) => panic!("loaded but should not have:\n{text}\n{policy:?}"),
        Err(err) => err,
    }
}

#[test]
fn malformed_mounts_point_at_the_problem() {
    let cases: &[(&str, usize, usize, &[&str])] = &[
        (
            "[[profiles.r.mounts]]\npath = \"/data\"\nmode = \"ro\"\n",
            3,
            1,
            &[
                "unknown key \"mode\"",
                "profiles.r.mounts[0]",
                "path, access",
            ],
        ),
        (
            "[[profiles.r.mounts]]\naccess = \"ro\"\n",
            1,
            1,
            &["profiles.r.mounts[0] needs a path"],
        ),
        (
            "[[profiles.r.mounts]]\npath = \"relative/dir\"\n",
            2,
            8,
            &["profiles.r.mounts[0].path must", "relative/dir"],
        ),
        (
            "[[profiles.r.mounts]]\npath = \"/usr/../etc\"\n",
            2,
            8,
            &["profiles.r.mounts[0].path must"],
        ),
        (
            "[[profiles.r.mounts]]\npath = \"/\"\n",
            2,
            8,
            &["must not be \"/\""],
        ),
        (
            "[[profiles.r.mounts]]\npath = \"/data\"\naccess = \"write\"\n",
            3,
            10,
            &[
                "profiles.r.mounts[0].access must be \"ro\" or \"rw\"",
                "\"write\"",
            ],
        ),
        (
            "[[profiles.r.mounts]]\npath = 7\n",
            2,
            8,
            &["profiles.r.mounts[0].path must be an absolute path string"],
        ),
        (
            "[profiles.r]\nmounts = \"/data\"\n",
            2,
            10,
            &["profiles.r.mounts must be an array of tables"],
        ),
        (
            "[[profiles.r.mounts]]\npath = \"/srv/${who}\"\n",
            2,
            8,
            &["undeclared parameter"],
        ),
    ];
    for &(text, line, column, needles) in cases {
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
    }
}
