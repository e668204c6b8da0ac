//! The `[profiles.<name>.limits]` table, key by key: accepted values and what they load as,
//! and refused values whose errors point at the value's line and column.

use portcullis_policy::{Limits, OnViolation, Policy, PolicyError};

/// Loads `[profiles.p.limits]` followed by `body` and instantiates profile `p`.
fn load(body: &str) -> Result<Limits, PolicyError> {
    let text = format!("[profiles.p.limits]\n{body}\n");
    Policy::from_toml_str(&text, "limits.toml")?
        .instantiate("p", &[])
        .map(|profile| profile.limits)
}

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

#[test]
fn defaults() {
    let limits = Limits::default();
    assert_eq!(limits.memory_bytes, 512 * MIB);
    assert_eq!(limits.processes, 64);
    assert_eq!(limits.cpu_seconds, 0, "no CPU-time cap by default");
    assert_eq!(limits.cpu_percent, 100, "one full CPU");
    assert_eq!(limits.wall_ms, 0, "no wall-clock cap by default");
    assert_eq!(limits.file_size_bytes, GIB);
    assert_eq!(limits.on_violation, OnViolation::Kill);
    assert_eq!(load("").expect("empty table loads"), limits);
    // A profile without a limits table gets the same defaults; grants stay empty.
    let profile = Policy::from_toml_str("[profiles.p]\n", "p.toml")
        .and_then(|p| p.instantiate("p", &[]))
        .expect("loads");
    assert_eq!(profile.limits, limits);
    assert!(profile.fs.is_empty() && profile.net.is_empty());
}

/// (`key = value` line, the limits it must load as)
fn valid() -> Vec<(&'static str, Limits)> {
    let d = Limits::default();
    vec![
        (
            "memory_bytes = 0",
            Limits {
                memory_bytes: 0,
                ..d
            },
        ),
        (
            "memory_bytes = 1048576",
            Limits {
                memory_bytes: MIB,
                ..d
            },
        ),
        (
            "memory_bytes = 0x4000_0000",
            Limits {
                memory_bytes: GIB,
                ..d
            },
        ),
        (
            "memory_bytes = \"256MiB\"",
            Limits {
                memory_bytes: 256 * MIB,
                ..d
            },
        ),
        (
            "memory_bytes = \"2 GiB\"",
            Limits {
                memory_bytes: 2 * GIB,
                ..d
            },
        ),
        (
            "memory_bytes = \"1TiB\"",
            Limits {
                memory_bytes: 1024 * GIB,
                ..d
            },
        ),
        (
            "memory_bytes = \"1024KiB\"",
            Limits {
                memory_bytes: MIB,
                ..d
            },
        ),
        (
            "memory_bytes = \"1048576B\"",
            Limits {
                memory_bytes: MIB,
                ..d
            },
        ),
        (
            "memory_bytes = \"1048576\"",
            Limits {
                memory_bytes: MIB,
                ..d
            },
        ),
        (
            "memory_bytes = \"0\"",
            Limits {
                memory_bytes: 0,
                ..d
            },
        ),
        ("processes = 1", Limits { processes: 1, ..d }),
        (
            "processes = 4194304",
            Limits {
                processes: 4_194_304,
                ..d
            },
        ),
        (
            "cpu_seconds = 0",
            Limits {
                cpu_seconds: 0,
                ..d
            },
        ),
        (
            "cpu_seconds = 30",
            Limits {
                cpu_seconds: 30,
                ..d
            },
        ),
        (
            "cpu_percent = 1",
            Limits {
                cpu_percent: 1,
                ..d
            },
        ),
        (
            "cpu_percent = 250",
            Limits {
                cpu_percent: 250,
                ..d
            },
        ),
        (
            "cpu_percent = 102400",
            Limits {
                cpu_percent: 102_400,
                ..d
            },
        ),
        ("wall_ms = 0", Limits { wall_ms: 0, ..d }),
        (
            "wall_ms = 60_000",
            Limits {
                wall_ms: 60_000,
                ..d
            },
        ),
        (
            "file_size_bytes = 0",
            Limits {
                file_size_bytes: 0,
                ..d
            },
        ),
        (
            "file_size_bytes = 1",
            Limits {
                file_size_bytes: 1,
                ..d
            },
        ),
        (
            "file_size_bytes = \"10MiB\"",
            Limits {
                file_size_bytes: 10 * MIB,
                ..d
            },
        ),
        (
            "file_size_bytes = \"16 TiB\"",
            Limits {
                file_size_bytes: 16 * 1024 * GIB,
                ..d
            },
        ),
        (
            "on_violation = \"kill\"",
            Limits {
                on_violation: OnViolation::Kill,
                ..d
            },
        ),
        (
            "on_violation = \"deny\"",
            Limits {
                on_violation: OnViolation::Deny,
                ..d
            },
        ),
        (
            "allow_processes = true",
            Limits {
                allow_processes: true,
                ..d
            },
        ),
        ("allow_processes = false", d),
        (
            "memory_bytes = \"64MiB\"\nprocesses = 8\ncpu_seconds = 5\ncpu_percent = 50\n\
             wall_ms = 1500\nfile_size_bytes = 4096\non_violation = \"deny\"\nburst = 3",
            Limits {
                memory_bytes: 64 * MIB,
                processes: 8,
                cpu_seconds: 5,
                cpu_percent: 50,
                wall_ms: 1500,
                file_size_bytes: 4096,
                on_violation: OnViolation::Deny,
                burst: 3,
                ..d
            },
        ),
    ]
}

#[test]
fn valid_values_load() {
    for (body, expected) in valid() {
        match load(body) {
            Ok(limits) => assert_eq!(limits, expected, "for {body:?}"),
            Err(err) => panic!("{body:?} should load: {err}"),
        }
    }
}

/// (`key = value` line, column of the value, substrings the message must contain). The line
/// is always 2: the table header is line 1.
const INVALID: &[(&str, usize, &[&str])] = &[
    // memory_bytes: out of range, unit mistakes, wrong types.
    (
        "memory_bytes = 512",
        16,
        &[
            "profiles.p.limits.memory_bytes",
            "0 (no limit) or at least 1 MiB",
            "found 512; did you mean \"512MiB\"?",
        ],
    ),
    (
        "memory_bytes = 1048575",
        16,
        &["at least 1 MiB (1048576)", "found 1048575"],
    ),
    (
        "memory_bytes = \"1KiB\"",
        16,
        &["at least 1 MiB", "found \"1KiB\" (1024 bytes)"],
    ),
    (
        "memory_bytes = -1",
        16,
        &["memory_bytes must be a byte count", "found -1"],
    ),
    (
        "memory_bytes = \"512MB\"",
        16,
        &["memory_bytes", "binary", "found \"512MB\""],
    ),
    (
        "memory_bytes = \"512M\"",
        16,
        &["\"MiB\", not \"MB\" or \"M\"", "found \"512M\""],
    ),
    (
        "memory_bytes = \"512mib\"",
        16,
        &["case-sensitive", "found \"512mib\""],
    ),
    (
        "memory_bytes = \"MiB\"",
        16,
        &["start with digits", "found \"MiB\""],
    ),
    (
        "memory_bytes = \"\"",
        16,
        &["start with digits", "found \"\""],
    ),
    ("memory_bytes = \" 5MiB\"", 16, &["start with digits"]),
    (
        "memory_bytes = \"1.5GiB\"",
        16,
        &["memory_bytes", "must be whole", "found \"1.5GiB\""],
    ),
    (
        "memory_bytes = \"5  MiB\"",
        16,
        &["memory_bytes", "found \"5  MiB\""],
    ),
    ("memory_bytes = \"-5MiB\"", 16, &["start with digits"]),
    (
        "memory_bytes = \"99999999999TiB\"",
        16,
        &["does not fit in 64 bits"],
    ),
    (
        "memory_bytes = 1.5",
        16,
        &["memory_bytes must be a byte count", "found float 1.5"],
    ),
    ("memory_bytes = true", 16, &["found boolean true"]),
    ("memory_bytes = [1]", 16, &["found an array"]),
    ("memory_bytes = { a = 1 }", 16, &["found a table"]),
    // processes
    (
        "processes = 0",
        13,
        &[
            "profiles.p.limits.processes",
            "between 1 and 4194304",
            "found 0",
        ],
    ),
    (
        "processes = 4194305",
        13,
        &["between 1 and 4194304", "found 4194305"],
    ),
    ("processes = -3", 13, &["processes", "found -3"]),
    (
        "processes = \"64\"",
        13,
        &["processes must be an integer", "found \"64\""],
    ),
    // cpu_seconds
    (
        "cpu_seconds = -1",
        15,
        &["profiles.p.limits.cpu_seconds", "between 0 and", "found -1"],
    ),
    (
        "cpu_seconds = 1.0",
        15,
        &["cpu_seconds must be an integer", "found float 1.0"],
    ),
    (
        "cpu_seconds = \"10s\"",
        15,
        &["cpu_seconds", "found \"10s\""],
    ),
    // cpu_percent
    (
        "cpu_percent = 0",
        15,
        &[
            "profiles.p.limits.cpu_percent",
            "between 1 and 102400",
            "found 0",
        ],
    ),
    (
        "cpu_percent = 102401",
        15,
        &["between 1 and 102400", "found 102401"],
    ),
    (
        "cpu_percent = \"50%\"",
        15,
        &["cpu_percent must be an integer", "found \"50%\""],
    ),
    // wall_ms
    (
        "wall_ms = -5",
        11,
        &["profiles.p.limits.wall_ms", "between 0 and", "found -5"],
    ),
    (
        "wall_ms = false",
        11,
        &["wall_ms must be an integer", "found boolean false"],
    ),
    // file_size_bytes
    (
        "file_size_bytes = -1",
        19,
        &[
            "profiles.p.limits.file_size_bytes",
            "byte count",
            "found -1",
        ],
    ),
    (
        "file_size_bytes = \"1GB\"",
        19,
        &["file_size_bytes", "binary", "found \"1GB\""],
    ),
    (
        "file_size_bytes = 2.5",
        19,
        &["file_size_bytes must be a byte count", "found float 2.5"],
    ),
    // on_violation
    (
        "on_violation = \"log\"",
        16,
        &[
            "profiles.p.limits.on_violation must be \"kill\" or \"deny\"",
            "found \"log\"",
        ],
    ),
    (
        "on_violation = \"Kill\"",
        16,
        &["\"kill\" or \"deny\"", "found \"Kill\""],
    ),
    (
        "on_violation = 1",
        16,
        &["on_violation must be \"kill\" or \"deny\"", "found 1"],
    ),
    ("on_violation = true", 16, &["found boolean true"]),
    // allow_processes
    ("allow_processes = 1", 19, &["allow_processes", "found 1"]),
    (
        "allow_processes = \"yes\"",
        19,
        &["allow_processes", "found \"yes\""],
    ),
    // Unknown keys stay errors; they point at the key.
    (
        "memory = 1",
        1,
        &[
            "unknown key \"memory\"",
            "profiles.p.limits",
            "memory_bytes",
        ],
    ),
    (
        "cpu_percentage = 50",
        1,
        &["unknown key \"cpu_percentage\"", "cpu_percent"],
    ),
    (
        "on-violation = \"deny\"",
        1,
        &["unknown key \"on-violation\"", "on_violation"],
    ),
];

#[test]
fn invalid_values_point_at_the_value() {
    for &(body, column, needles) in INVALID {
        let err = match load(body) {
            Ok(limits) => panic!("{body:?} loaded but should not have: {limits:?}"),
            Err(err) => err,
        };
        assert_eq!(
            (err.line, err.column),
            (2, column),
            "position for {body:?}: {err}"
        );
        for needle in needles {
            assert!(
                err.message.contains(needle),
                "message {:?} lacks {needle:?} for {body:?}",
                err.message
            );
        }
        assert!(!err.message.ends_with('.'), "{err}");
        assert_eq!(
            err.to_string(),
            format!("limits.toml:2:{column}: {}", err.message)
        );
    }
}

#[test]
fn a_later_line_is_located_too() {
    // Inline tables and later lines: the column counts from the start of the value's line.
    let text = "[profiles.p]\nlimits = { processes = 8, on_violation = \"stop\" }\n";
    let err = Policy::from_toml_str(text, "inline.toml").expect_err("refused");
    assert_eq!((err.line, err.column), (2, 42), "{err}");
    assert!(err.message.contains("on_violation"), "{err}");
}

#[test]
fn violation_names_round_trip() {
    for (violation, name) in [(OnViolation::Kill, "kill"), (OnViolation::Deny, "deny")] {
        assert_eq!(violation.as_str(), name);
        let body = format!("on_violation = {name:?}");
        assert_eq!(load(&body).expect("loads").on_violation, violation);
    }
    assert_eq!(OnViolation::default(), OnViolation::Kill);
}
