//! The `portcullis` command, run as a user runs it: the built binary in a fresh process, its exit
//! status, standard output and standard error.
//!
//! This file belongs to the root crate `portcullis` (Cargo finds `tests/*.rs` of the root
//! package), not to the `portcullis-tests` crate whose manifest shares the directory:
//! `CARGO_BIN_EXE_portcullis` exists only for the binary's own package.
//!
//! `PORTCULLIS_CLI` overrides the binary's path (the unprivileged CI run uses a copy the test
//! user can reach). Policy files are written to a temporary directory from copies compiled into
//! this test, so the tests need no read access to the source tree.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use portcullis::seccomp::CHILD_ALLOWLIST;

const RENDERER: &str = include_str!("../examples/policies/renderer.toml");
const PLUGIN: &str = include_str!("../examples/policies/plugin.toml");

fn cli() -> PathBuf {
    std::env::var_os("PORTCULLIS_CLI").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_portcullis")),
        PathBuf::from,
    )
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(cli())
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("the portcullis binary runs")
}

fn run(args: &[&str]) -> Output {
    run_in(&std::env::temp_dir(), args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Text with every run of whitespace made one space, so wrapped lines compare as one.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[track_caller]
fn assert_status(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
    assert!(
        !stderr(output).contains("panicked"),
        "a panic: {}",
        stderr(output)
    );
}

/// A temporary directory holding `files` (name, contents).
fn files(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (name, contents) in files {
        std::fs::write(dir.path().join(name), contents).expect("write test file");
    }
    dir
}

#[test]
fn check_accepts_the_example_policies() {
    let dir = files(&[
        ("renderer.toml", RENDERER.as_bytes()),
        ("plugin.toml", PLUGIN.as_bytes()),
    ]);
    let out = run_in(dir.path(), &["check", "renderer.toml"]);
    assert_status(&out, 0);
    assert_eq!(
        stdout(&out),
        "renderer.toml: valid, 1 profile\n  renderer  parameters: site\n"
    );
    assert!(stderr(&out).is_empty());

    let out = run_in(dir.path(), &["check", "plugin.toml"]);
    assert_status(&out, 0);
    assert_eq!(
        stdout(&out),
        "plugin.toml: valid, 2 profiles\n  plugin         parameters: name\n  \
         plugin-online  parameters: name\n"
    );
}

#[test]
fn check_reads_standard_input() {
    let mut child = Command::new(cli())
        .args(["check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the portcullis binary runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(b"[profiles.web]\nparams = [\"site\"]\nrights = 1\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert_status(&out, 1);
    assert!(
        stderr(&out).starts_with("<stdin>:3:1: unknown key \"rights\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_reports_broken_policies_at_file_line_column() {
    // (file, contents, where, what the message says)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "syntax.toml",
            "[profiles.web\nparams = []\n",
            "1:14",
            "invalid TOML",
        ),
        (
            "unknown-key.toml",
            "[profiles.web]\nparams = [\"site\"]\nrigths = [\"read\"]\n",
            "3:1",
            "unknown key \"rigths\" in profiles.web; expected one of params, fs, net, limits",
        ),
        (
            "wrong-type.toml",
            "[profiles.web]\nparams = \"site\"\n",
            "2:10",
            "profiles.web.params must be a list of parameter names",
        ),
        (
            "out-of-range.toml",
            "[profiles.web.limits]\nmemory_bytes = \"256MiB\"\nprocesses = 0\n",
            "3:13",
            "profiles.web.limits.processes must be an integer between 1 and 4194304",
        ),
        (
            "unit-missing.toml",
            "[profiles.web.limits]\nmemory_bytes = 512\n",
            "2:16",
            "did you mean \"512MiB\"?",
        ),
        (
            "bad-host.toml",
            "[[profiles.web.net]]\nscheme = \"https\"\nhost = \"exa mple.com\"\n",
            "3:8",
            "profiles.web.net[0].host must be a DNS name",
        ),
        (
            "bad-path.toml",
            "[[profiles.web.fs]]\npath = \"/srv/sites/../etc\"\nrights = [\"read\"]\n",
            "2:8",
            "must not contain \"..\" components",
        ),
        (
            "bad-right.toml",
            "[[profiles.web.fs]]\npath = \"/srv\"\nrights = [\"read\", \"exec\"]\n",
            "3:19",
            "found \"exec\"",
        ),
        (
            "undeclared-param.toml",
            "[[profiles.web.fs]]\npath = \"/srv/${site}\"\nrights = [\"read\"]\n",
            "2:8",
            "uses undeclared parameter \"${site}\"",
        ),
    ];
    let dir = files(
        &cases
            .iter()
            .map(|(name, text, _, _)| (*name, text.as_bytes()))
            .collect::<Vec<_>>(),
    );
    for (name, _, at, message) in cases {
        let out = run_in(dir.path(), &["check", name]);
        assert_status(&out, 1);
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!("{name}:{at}: ")),
            "{name}: expected {name}:{at}: at the start of {err:?}"
        );
        assert!(err.contains(message), "{name}: {message:?} not in {err:?}");
        assert_eq!(err.lines().count(), 1, "{name}: one line: {err:?}");
        assert!(stdout(&out).is_empty(), "{name}: nothing on stdout");
    }
}

#[test]
fn check_refuses_missing_unreadable_huge_and_binary_files() {
    let huge = vec![b'#'; 5 << 20];
    let dir = files(&[("huge.toml", &huge), ("binary.toml", b"ab\xff\xfe\n")]);
    let out = run_in(dir.path(), &["check", "no-such-policy.toml"]);
    assert_status(&out, 1);
    assert_eq!(
        stderr(&out),
        "cannot read policy file no-such-policy.toml: No such file or directory (os error 2)\n"
    );

    let out = run_in(dir.path(), &["check", "."]);
    assert_status(&out, 1);
    assert!(stderr(&out).contains("Is a directory"), "{}", stderr(&out));

    let out = run_in(dir.path(), &["check", "huge.toml"]);
    assert_status(&out, 1);
    assert!(
        stderr(&out).starts_with("huge.toml: larger than 4194304 bytes (4 MiB)"),
        "{}",
        stderr(&out)
    );

    let out = run_in(dir.path(), &["check", "binary.toml"]);
    assert_status(&out, 1);
    assert!(
        stderr(&out).starts_with("binary.toml:1:3: not UTF-8 text (byte 0xff)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn explain_default_profile_lists_every_allowed_syscall_with_its_reason() {
    let out = run(&["explain"]);
    assert_status(&out, 0);
    let text = flat(&stdout(&out));
    assert!(text.contains("Sandbox of a child spawned without a profile"));
    for namespace in ["pid", "user", "mount", "net", "ipc", "uts", "cgroup"] {
        assert!(
            stdout(&out).contains(&format!("\n    {namespace} ")),
            "namespace {namespace} missing"
        );
    }
    // Every rule is a row of its own, and its reason is printed in full (maybe wrapped).
    for rule in CHILD_ALLOWLIST {
        let label = format!("    {} ", rule.name);
        assert!(
            stdout(&out).lines().any(|line| line.starts_with(&label)),
            "{} has no row",
            rule.name
        );
        assert!(
            text.contains(&flat(rule.reason)),
            "reason of {} missing",
            rule.name
        );
    }
    assert!(text
        .contains("fcntl only when cmd is F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC, F_ADD_SEALS or F_GET_SEALS"));
    assert!(text.contains("memfd_create only when flags is MFD_CLOEXEC | MFD_ALLOW_SEALING"));
    assert!(text.contains(
        "Filesystem grants (through the broker) none: the child can open, list, create or delete \
         no file"
    ));
    assert!(text.contains(
        "Network grants (through the broker) none: the child can connect to nothing and fetch \
         nothing"
    ));
    assert!(text.contains("/ is an empty tmpfs, mounted ro,nosuid,nodev,noexec"));
    assert!(text.contains("capabilities none"));
    assert!(text.contains("no_new_privs set"));
    assert!(text.contains("RLIMIT_NOFILE 96"));
    assert!(text.contains("violation kill:"));
}

#[test]
fn explain_a_profile_shows_its_grants_and_limits() {
    let dir = files(&[
        ("renderer.toml", RENDERER.as_bytes()),
        ("plugin.toml", PLUGIN.as_bytes()),
    ]);
    let out = run_in(
        dir.path(),
        &["explain", "renderer.toml", "--param", "site=example.com"],
    );
    assert_status(&out, 0);
    let text = flat(&stdout(&out));
    for expected in [
        "profile \"renderer\" of renderer.toml with site=example.com",
        "/srv/sites/example.com read, list: this directory and everything beneath",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf read: this file only",
        "https example.com port 443 (fetched by the broker; this name only; public addresses only)",
        "https *.example.com port 443",
        "RLIMIT_NOFILE 96",
        "16 processes and threads at once",
        "60 s, then the child is killed (WallTimeout)",
        "100 requests a second, bursts of 200",
        "bodies cut at 16 MiB",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    // The memory limit is the cgroup's, or RLIMIT_AS on a host without a memory cgroup.
    assert!(
        text.contains("memory 256 MiB, swap included") || text.contains("RLIMIT_AS 256 MiB"),
        "{text}"
    );

    let out = run_in(
        dir.path(),
        &[
            "explain",
            "plugin.toml",
            "--profile",
            "plugin-online",
            "--param",
            "name=spell",
        ],
    );
    assert_status(&out, 0);
    let text = flat(&stdout(&out));
    for expected in [
        "/var/lib/host-app/plugins/spell read, write, create, delete, list",
        "tcp 127.0.0.1 port 8125 (a TCP connection the broker makes; this address only; private, \
         loopback and other non-public addresses allowed)",
        "violation deny: a system call outside the list below fails with EPERM",
        "Any system call not listed here",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }

    let out = run_in(
        dir.path(),
        &[
            "explain",
            "plugin.toml",
            "-p",
            "plugin",
            "--param",
            "name=spell",
            "--json",
        ],
    );
    assert_status(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["profile"]["name"], "plugin");
    assert_eq!(json["limits"]["on_violation"], "deny");
    assert_eq!(
        json["filesystem"][0]["path"],
        "/var/lib/host-app/plugins/spell"
    );
    assert_eq!(
        json["filesystem"][1]["rights"],
        serde_json::json!(["read", "list"])
    );
    assert_eq!(json["network"], serde_json::json!([]));
    let rlimits = json["limits"]["rlimits"].as_array().expect("rlimits");
    let value = |name: &str| {
        rlimits
            .iter()
            .find(|r| r["resource"] == name)
            .map(|r| r["value"].clone())
    };
    assert_eq!(value("RLIMIT_CPU"), Some(serde_json::json!(30)));
    assert_eq!(value("RLIMIT_FSIZE"), Some(serde_json::json!(64 << 20)));
    assert_eq!(value("RLIMIT_NOFILE"), Some(serde_json::json!(16 + 32)));
    let rules = json["seccomp"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), CHILD_ALLOWLIST.len());
}

#[test]
fn explain_shows_exec_mounts_landlock_and_the_added_rules() {
    let dir = files(&[(
        "tool.toml",
        b"[profiles.tool]\nparams = [\"user\"]\n[[profiles.tool.mounts]]\npath = \"/usr/share/zoneinfo\"\n[[profiles.tool.mounts]]\npath = \"/srv/out/${user}\"\naccess = \"rw\"\n",
    )]);
    let out = run_in(dir.path(), &["explain", "tool.toml", "--param", "user=ada"]);
    assert_status(&out, 0);
    let text = flat(&stdout(&out));
    for expected in [
        "Exec mode (portcullis run",
        "/usr/share/zoneinfo read-only",
        "/srv/out/ada read-write (writes reach the host)",
        "execveat only when flags include AT_EMPTY_PATH",
        // A read-write mount: any open (the mounts and Landlock bound the writes).
        "openat open files of the program root, writing only where a read-write bind is",
        "socket fails with EACCES when domain is AF_UNIX",
        "getdents64",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    // This host's Landlock, either way said plainly.
    assert!(
        text.contains("Landlock ABI ") || text.contains("no Landlock on this host"),
        "{text}"
    );
    let out = run_in(
        dir.path(),
        &["explain", "tool.toml", "--param", "user=ada", "--json"],
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(json["exec"]["mounts"][1]["access"], "rw");
    assert!(json["exec"]["root_rules"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
    // A parameter cannot make a mount path escape.
    let out = run_in(
        dir.path(),
        &["explain", "tool.toml", "--param", "user=../etc"],
    );
    assert_status(&out, 2);
}

#[test]
fn explain_usage_errors_say_what_to_write() {
    let dir = files(&[
        ("renderer.toml", RENDERER.as_bytes()),
        ("plugin.toml", PLUGIN.as_bytes()),
        ("broken.toml", b"[profiles.web]\nnet = 3\n"),
    ]);
    let cases: &[(&[&str], i32, &str)] = &[
        (&["explain", "--profile", "renderer"], 2, "give POLICY too"),
        (
            &["explain", "plugin.toml", "--param", "name=x"],
            2,
            "defines 2 profiles (plugin, plugin-online); choose one with --profile NAME",
        ),
        (
            &["explain", "renderer.toml"],
            2,
            "profile \"renderer\" needs parameter \"site\"; give each parameter with --param \
             NAME=VALUE",
        ),
        (
            &["explain", "renderer.toml", "--profile", "nope"],
            2,
            "no profile named \"nope\"; the policy defines renderer",
        ),
        (
            &["explain", "renderer.toml", "--param", "site=../etc"],
            2,
            "parameter \"site\" of profile \"renderer\"",
        ),
        (
            &["explain", "renderer.toml", "--param", "site"],
            2,
            "expected NAME=VALUE",
        ),
        (
            &["explain", "broken.toml"],
            1,
            "broken.toml:2:7: profiles.web.net must be",
        ),
    ];
    for (args, code, message) in cases {
        let out = run_in(dir.path(), args);
        assert_status(&out, *code);
        assert!(
            stderr(&out).contains(message),
            "{args:?}: {message:?} not in {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{args:?}: nothing on stdout");
    }
}

#[test]
fn doctor_checks_this_host() {
    let out = run(&["doctor"]);
    let text = stdout(&out);
    for check in [
        "kernel",
        "user namespaces",
        "seccomp",
        "libseccomp",
        "landlock",
        "cgroups",
        "nesting",
    ] {
        let line = text.lines().find(|l| {
            l.starts_with('[')
                && l.get(7..)
                    .is_some_and(|rest| rest.starts_with(&format!("{check} ")))
        });
        assert!(line.is_some(), "check {check:?} missing from:\n{text}");
    }
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.contains(" OK, ") && l.contains(" WARN, ") && l.contains(" FAIL.")),
        "{text}"
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    if out.status.code() == Some(1) && !required() {
        // A host without user namespaces or seccomp notification (a developer's container,
        // say) fails honestly; CI (PORTCULLIS_TESTS_REQUIRED=1) must not.
        eprintln!("doctor_checks_this_host: skipped, this host fails a check:\n{text}");
        return;
    }
    assert_status(&out, 0);
    assert!(!text.contains("[FAIL]"), "{text}");
}

fn required() -> bool {
    std::env::var("PORTCULLIS_TESTS_REQUIRED").is_ok_and(|v| v == "1")
}

/// The command is linked as a static PIE (`scripts/rustc-wrapper`): every `run` starts without
/// a dynamic loader, libraries or symbol lookups, and the binary stays position-independent, so
/// ASLR still places it. A build that lost the wrapper (a RUSTC_WRAPPER of one's own, or a host
/// without `libseccomp.a`) is dynamic: a skip here, a failure under
/// `PORTCULLIS_TESTS_REQUIRED=1`.
#[test]
fn the_command_is_a_static_pie() {
    use std::io::Read;
    let binary = Path::new(env!("CARGO_BIN_EXE_portcullis"));
    let info = portcullis::broker::elf::read_elf(binary).expect("the command's ELF headers");
    if info.interpreter.is_some() && !required() {
        eprintln!(
            "skipped: this build of the command is dynamic ({:?}, needs {:?})",
            info.interpreter, info.needed
        );
        return;
    }
    assert_eq!(info.interpreter, None, "a dynamic loader: {info:?}");
    assert!(info.needed.is_empty(), "shared libraries: {info:?}");
    // e_type, bytes 16-17 of the ELF header (little-endian here): ET_DYN (3), a PIE, not
    // ET_EXEC (2), which the kernel would load at one fixed address.
    let mut header = [0u8; 18];
    std::fs::File::open(binary)
        .and_then(|mut f| f.read_exact(&mut header))
        .expect("the command's ELF header");
    assert_eq!(u16::from_le_bytes([header[16], header[17]]), 3, "not a PIE");
}

#[test]
fn help_for_every_subcommand() {
    let out = run(&["--help"]);
    assert_status(&out, 0);
    let top = stdout(&out);
    for subcommand in ["check", "explain", "doctor", "run", "serve"] {
        assert!(top.contains(&format!("\n  {subcommand} ")), "{top}");
    }
    assert!(
        !top.contains("__doctor-probe"),
        "internal subcommand shown: {top}"
    );
    assert!(top.contains("Exit status:"), "{top}");

    for (subcommand, usage) in [
        ("check", "Usage: portcullis check <POLICY>"),
        ("explain", "Usage: portcullis explain [OPTIONS] [POLICY]"),
        ("doctor", "Usage: portcullis doctor"),
        ("run", "Usage: portcullis run [OPTIONS] <PROGRAM>..."),
        ("serve", "Usage: portcullis serve [OPTIONS]"),
    ] {
        let out = run(&[subcommand, "--help"]);
        assert_status(&out, 0);
        let help = stdout(&out);
        assert!(help.contains(usage), "{help}");
        assert!(help.contains("Examples:"), "{subcommand}: {help}");
        assert!(help.contains("Exit status:"), "{subcommand}: {help}");
        let out = run(&["help", subcommand]);
        assert_status(&out, 0);
        assert_eq!(
            stdout(&out),
            help,
            "`help {subcommand}` is `{subcommand} --help`"
        );
    }
    let out = run(&["--version"]);
    assert_status(&out, 0);
    assert!(stdout(&out).starts_with("portcullis "));
}

#[test]
fn bad_command_lines_fail_with_clap_messages() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "Usage: portcullis <COMMAND>"),
        (
            &["check"],
            "the following required arguments were not provided",
        ),
        (
            &["check", "a.toml", "b.toml"],
            "unexpected argument 'b.toml'",
        ),
        (&["explain", "--bogus"], "unexpected argument '--bogus'"),
        (&["doctor", "--fix"], "unexpected argument '--fix'"),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (
            &["explain", "--profile"],
            "a value is required for '--profile <NAME>'",
        ),
    ];
    for (args, message) in cases {
        let out = run(args);
        assert_status(&out, 2);
        assert!(
            stderr(&out).contains(message),
            "{args:?}: {message:?} not in {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{args:?}: stdout {}", stdout(&out));
    }
}

// --- run: a program in the sandbox (exec mode) ---

/// The static test program (`tests/static/exec_probe.c`), compiled for this test run with the
/// system's C compiler into a directory of the test's own; `None` (a skip, or a failure under
/// `PORTCULLIS_TESTS_REQUIRED=1`) when this host cannot build static C programs.
fn static_program() -> Option<PathBuf> {
    const SOURCE: &str = include_str!("static/exec_probe.c");
    let dir = std::env::temp_dir().join(format!(
        "portcullis-cli-exec-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).ok()?;
    let source = dir.join("exec_probe.c");
    std::fs::write(&source, SOURCE).ok()?;
    let program = dir.join("exec_probe");
    let built = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&program)
        .arg(&source)
        .status();
    if matches!(built, Ok(s) if s.success()) {
        Some(program)
    } else {
        assert!(
            !required(),
            "cannot build a static C program here: {built:?}"
        );
        eprintln!("skipped: cannot build a static C program here: {built:?}");
        None
    }
}

fn run_program(args: &[&str], program: &Path, program_args: &[&str], input: &[u8]) -> Output {
    let mut command = Command::new(cli());
    command
        .arg("run")
        .args(args)
        .arg("--")
        .arg(program)
        .args(program_args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the portcullis binary runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("portcullis run ends")
}

/// The static program's `hello world` ran: its line on stdout and its exit status 3.
#[track_caller]
fn assert_said_hello(out: &Output) {
    assert_eq!(
        stdout(out),
        "hello from a static program, argv[2]=world\n",
        "{}",
        stderr(out)
    );
    assert_status(out, 3);
}

#[test]
fn run_passes_arguments_stdout_and_exit_status() {
    let Some(program) = static_program() else {
        return;
    };
    let out = run_program(&[], &program, &["hello", "world"], b"");
    assert_said_hello(&out);
}

/// A broker's zygote is executed as the sandbox's host id, inside its user namespace: a root
/// broker whose binary only its owner may execute (mode 0700) runs it from a sealed in-memory
/// copy instead. (Run as another user, the copy is the user's own, which the zygote, as that
/// user, may execute.)
#[test]
fn run_works_from_a_binary_only_its_owner_may_execute() {
    use std::os::unix::fs::PermissionsExt;
    let Some(program) = static_program() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let private = dir.path().join("portcullis");
    std::fs::copy(cli(), &private).expect("copy the binary");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = Command::new(&private)
        .arg("run")
        .arg("--")
        .arg(&program)
        .args(["hello", "world"])
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("the private copy runs");
    assert_said_hello(&out);
}

/// A one-connection TCP server on loopback: answers the first line it gets with "got: LINE".
/// Returns its port and whether a connection arrived within `wait`.
fn line_server(wait: std::time::Duration) -> (u16, std::thread::JoinHandle<bool>) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    let mut line = String::new();
                    let _ = BufReader::new(&stream).read_line(&mut line);
                    let _ = (&stream).write_all(format!("got: {line}").as_bytes());
                    return true;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        false
    });
    (port, server)
}

/// `--connect`: the command connects, checked as a broker checks a child's connect, and the
/// program gets the connection as fd 3. The pair: a name that resolves to loopback is denied
/// (a grant by name covers public addresses only), and nothing connects.
#[test]
fn run_connect_passes_a_checked_connection_as_fd_3() {
    let Some(program) = static_program() else {
        return;
    };
    let expected = std::time::Duration::from_secs(20);
    // Allowed: the loopback address named as itself.
    let (port, server) = line_server(expected);
    let destination = format!("127.0.0.1:{port}");
    let out = run_program(&["--connect", &destination], &program, &["fd3"], b"");
    assert_eq!(stdout(&out), "got: hello\n", "{}", stderr(&out));
    assert_status(&out, 0);
    assert!(server.join().unwrap(), "the server saw the connection");
    // Four at once (the most): fds 3 to 6, whatever numbers they arrived on.
    let servers: Vec<_> = (0..4).map(|_| line_server(expected)).collect();
    let mut flags = Vec::new();
    for (port, _) in &servers {
        flags.push("--connect".to_owned());
        flags.push(format!("127.0.0.1:{port}"));
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let out = run_program(&flags, &program, &["fd3"], b"");
    assert_eq!(stdout(&out), "got: hello\n", "{}", stderr(&out));
    assert_status(&out, 0);
    for (_, server) in servers {
        assert!(server.join().unwrap(), "every server saw its connection");
    }
    // It is told where fd 3 goes.
    let (port, server) = line_server(expected);
    let destination = format!("127.0.0.1:{port}");
    let out = run_program(&["--connect", &destination], &program, &["env"], b"");
    assert!(server.join().unwrap(), "the server saw the connection");
    assert_eq!(
        stdout(&out),
        format!("PORTCULLIS_CONNECT_FDS=3={destination}\n"),
        "{}",
        stderr(&out)
    );
    // Denied: a name that resolves to loopback; the program never starts. (The command has
    // ended long before the server stops waiting.)
    let (port, server) = line_server(std::time::Duration::from_secs(2));
    let out = run_program(
        &["--connect", &format!("localhost:{port}")],
        &program,
        &["fd3"],
        b"",
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let err = flat(&stderr(&out));
    assert!(
        err.contains(&format!(
            "cannot connect to localhost:{port}: denied: private-address"
        )),
        "{err}"
    );
    assert_status(&out, 126);
    assert!(!server.join().unwrap(), "nothing connected to the server");
    // A closed port fails with its reason; bad destinations are usage errors.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let out = run_program(
        &["--connect", &format!("127.0.0.1:{closed_port}")],
        &program,
        &["fd3"],
        b"",
    );
    assert!(
        flat(&stderr(&out)).contains("failed: connection-refused"),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 126);
    for bad in ["nowhere", "host:0", "host:99999", ":80"] {
        let out = run_program(&["--connect", bad], &program, &["fd3"], b"");
        assert_status(&out, 2);
    }
}

#[test]
fn run_passes_stdin_and_only_the_environment_given() {
    let Some(program) = static_program() else {
        return;
    };
    let out = run_program(&[], &program, &["echo"], b"through the sandbox");
    assert_eq!(stdout(&out), "through the sandbox", "{}", stderr(&out));
    assert_status(&out, 0);
    // The caller's environment (PATH, HOME, ...) is not passed; --env is.
    let out = run_program(&["--env", "ONLY=this"], &program, &["env"], b"");
    assert_eq!(stdout(&out), "ONLY=this\n", "{}", stderr(&out));
    assert_status(&out, 0);
}

/// Started with its standard input closed, `portcullis run` gives the program `/dev/null`
/// there, not the first file it opens itself (the program, a socket): the command opens
/// `/dev/null` on each closed standard fd before anything else, as std's runtime start would.
#[test]
fn run_with_stdin_closed_gives_the_program_dev_null() {
    use std::os::unix::process::CommandExt;
    let Some(program) = static_program() else {
        return;
    };
    let mut command = Command::new(cli());
    command
        .args(["run", "--no-server", "--"])
        .arg(&program)
        .arg("echo")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only close, which is async-signal-safe, on the child's own
    // fd 0.
    unsafe {
        command.pre_exec(|| {
            libc::close(0);
            Ok(())
        });
    }
    let out = command.output().expect("the portcullis binary runs");
    assert_eq!(stdout(&out), "", "{}", stderr(&out));
    assert_status(&out, 0);
}

/// `portcullis run ARGS -- PROGRAM fds` with a file of the caller's at fd 7: the program must
/// list only 0, 1 and 2.
#[track_caller]
fn assert_callers_fd_7_hidden(args: &[&str], program: &Path) {
    use std::os::unix::process::CommandExt;
    let file = std::fs::File::open(program).expect("open a file to leak");
    let leaked = std::os::fd::AsRawFd::as_raw_fd(&file);
    let mut command = Command::new(cli());
    command
        .arg("run")
        .args(args)
        .arg("--")
        .arg(program)
        .arg("fds");
    // SAFETY: between fork and exec only dup2, which is async-signal-safe, on fds we own.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(leaked, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = command.output().expect("portcullis run ends");
    assert_eq!(stdout(&out), "0\n1\n2\n", "{}", stderr(&out));
    assert_status(&out, 0);
}

#[test]
fn run_hides_the_callers_other_fds() {
    let Some(program) = static_program() else {
        return;
    };
    assert_callers_fd_7_hidden(&[], &program);
}

/// Skips (or fails under `PORTCULLIS_TESTS_REQUIRED=1`) when `portcullis run` said this host
/// gives its broker no cgroup for `what`.
fn cgroup_missing(out: &Output, what: &str) -> bool {
    let err = stderr(out);
    let missing = err.contains("needs a pids cgroup") || err.contains("no cgroup");
    if missing {
        assert!(
            !required(),
            "{what}: this host gives the broker no cgroup: {err}"
        );
        eprintln!("skipped {what}: no cgroup here: {err}");
    }
    missing
}

#[test]
fn run_fork_bomb_is_capped_by_the_pids_limit() {
    let Some(program) = static_program() else {
        return;
    };
    let out = run_program(
        &["--allow-processes", "--pids", "16"],
        &program,
        &["forkbomb"],
        b"",
    );
    if cgroup_missing(&out, "fork bomb") {
        return;
    }
    assert_eq!(
        stdout(&out),
        "fork refused after 15 children: Resource temporarily unavailable\n",
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("portcullis: ended after hitting its process limit"),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 126);
    // The pair: without --allow-processes the first fork is a violation.
    let out = run_program(&[], &program, &["fork-and-wait"], b"");
    assert!(
        stderr(&out).contains("portcullis: killed: seccomp violation: clone"),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 128 + libc::SIGSYS);
    let out = run_program(&["--allow-processes"], &program, &["fork-and-wait"], b"");
    if cgroup_missing(&out, "fork and wait") {
        return;
    }
    assert_eq!(stdout(&out), "child exited 7\n", "{}", stderr(&out));
    assert_status(&out, 0);
}

#[test]
fn run_without_a_cgroup_still_limits_and_refuses_unbounded_processes() {
    let Some(program) = static_program() else {
        return;
    };
    let out = run_program(&["--no-cgroup"], &program, &["hello", "x"], b"");
    assert_eq!(stdout(&out), "hello from a static program, argv[2]=x\n");
    assert_status(&out, 3);
    // Memory falls back to RLIMIT_AS: the bomb's malloc fails instead of an OOM kill.
    let out = run_program(
        &["--no-cgroup", "--memory", "64MiB"],
        &program,
        &["membomb"],
        b"",
    );
    assert_eq!(stdout(&out), "malloc failed\n", "{}", stderr(&out));
    assert_status(&out, 1);
    // Nothing would bound the processes: refused, fail closed.
    let out = run_program(
        &["--no-cgroup", "--allow-processes"],
        &program,
        &["fork-and-wait"],
        b"",
    );
    assert!(
        stderr(&out).contains("needs a pids cgroup"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    assert_status(&out, 126);
}

#[test]
fn run_memory_bomb_is_capped_by_the_memory_limit() {
    let Some(program) = static_program() else {
        return;
    };
    let out = run_program(&["--memory", "64MiB"], &program, &["membomb"], b"");
    let err = stderr(&out);
    if err.contains("killed: out of memory") {
        assert_status(&out, 128 + libc::SIGKILL);
    } else {
        // Without a memory cgroup the limit is RLIMIT_AS: malloc fails instead of the kernel
        // killing; either way the bomb is capped.
        assert!(
            !required(),
            "no memory cgroup under PORTCULLIS_TESTS_REQUIRED=1: {err}"
        );
        assert_eq!(stdout(&out), "malloc failed\n", "{err}");
        assert_status(&out, 1);
    }
}

#[test]
fn run_reports_a_violation_by_name_in_both_modes() {
    let Some(program) = static_program() else {
        return;
    };
    let out = run_program(&[], &program, &["socket"], b"");
    assert!(
        stderr(&out).contains("portcullis: killed: seccomp violation: socket"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    assert_status(&out, 128 + libc::SIGSYS);
    let out = run_program(&["--on-violation", "deny"], &program, &["socket"], b"");
    assert_eq!(stdout(&out), "socket: Operation not permitted\n");
    assert!(stderr(&out).contains("syscalls denied with EPERM: socket"));
    assert_status(&out, 0);
}

#[test]
fn run_cannot_read_host_files() {
    let Some(program) = static_program() else {
        return;
    };
    let out = run_program(&[], &program, &["passwd"], b"");
    assert_eq!(stdout(&out), "open /etc/passwd: Permission denied\n");
    assert_status(&out, 0);
}

#[test]
fn run_refuses_missing_and_dynamic_programs_clearly() {
    let out = run(&["run", "--", "no-such-program-anywhere"]);
    assert!(
        stderr(&out).contains("program not found"),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 127);
    if let Some(ls) = dynamic_program("ls") {
        // A dynamic program without its automatic root and with nothing mounted cannot run.
        let out = run(&["run", "--no-auto-root", "--", &ls]);
        assert!(
            stderr(&out).contains("a dynamic program needs its interpreter and libraries"),
            "{}",
            stderr(&out)
        );
        assert_status(&out, 126);
        // A path that does not exist cannot be mounted.
        let out = run(&["run", "--ro", "/no/such/path/anywhere", "--", &ls]);
        assert!(
            stderr(&out).contains("cannot mount /no/such/path/anywhere"),
            "{}",
            stderr(&out)
        );
        assert_status(&out, 126);
        let out = run(&["run", "--ro", "/", "--", &ls]);
        assert!(stderr(&out).contains("not '/' itself"), "{}", stderr(&out));
        assert_status(&out, 126);
        // The host's /proc (and /proc/sys beneath it) is never mounted.
        for proc in ["/proc", "/proc/sys/kernel"] {
            let out = run(&["run", "--rw", proc, "--", &ls]);
            assert!(
                stderr(&out).contains("the host's /proc cannot be mounted"),
                "{}",
                stderr(&out)
            );
            assert_status(&out, 126);
        }
    }
    let out = run(&["run", "--memory", "lots", "--", "/bin/ls"]);
    assert_status(&out, 2);
    // A limit a policy file could not give either: refused before anything starts.
    for (flag, value, message) in [
        ("--pids", "0", "bad limit: processes must be from 1"),
        (
            "--memory",
            "4096",
            "bad limit: memory_bytes must be 0 (no limit) or at least 1 MiB",
        ),
    ] {
        let out = run(&["run", flag, value, "--", "/bin/ls"]);
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
        assert_status(&out, 2);
    }
    let out = run(&["run"]);
    assert_status(&out, 2);
}

// --- run: dynamic programs in a read-only minimal root, under Landlock ---

/// A dynamic ELF program of this host by name (`/bin` or `/usr/bin`), or `None` (a skip, or a
/// failure under `PORTCULLIS_TESTS_REQUIRED=1`).
fn dynamic_program(name: &str) -> Option<String> {
    let found = ["/bin", "/usr/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| {
            portcullis::broker::elf::read_elf(path).is_ok_and(|info| info.interpreter.is_some())
        });
    if found.is_none() {
        assert!(!required(), "no dynamic {name} on this host");
        eprintln!("skipped: no dynamic {name} on this host");
    }
    found.map(|p| p.display().to_string())
}

/// A directory holding `inside.txt`, readable by the sandbox's host id (an unprivileged id
/// other than the test's own when the tests run as root).
fn world_readable_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("inside.txt");
    std::fs::write(&file, "inside the root\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    dir
}

#[test]
fn run_dynamic_program_gets_its_automatic_root() {
    let Some(echo) = dynamic_program("echo") else {
        return;
    };
    let out = run(&["run", "--", &echo, "hello"]);
    assert_eq!(stdout(&out), "hello\n", "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_status(&out, 0);
    // --verbose says what the root holds and that Landlock is enforced.
    let out = run(&["run", "-v", "--", &echo, "hello"]);
    assert_eq!(stdout(&out), "hello\n", "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("root: a read-only tmpfs with"), "{err}");
    assert!(err.contains("libc.so.6"), "{err}");
    assert!(err.contains("landlock: enforced (ABI "), "{err}");
    assert_status(&out, 0);
}

#[test]
fn run_dynamic_program_reads_inside_its_root_only() {
    let Some(cat) = dynamic_program("cat") else {
        return;
    };
    let dir = world_readable_dir();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let inside = root.join("inside.txt").display().to_string();
    let granted = root.display().to_string();
    // Allowed: a file beneath a --ro path.
    let out = run(&["run", "--ro", &granted, "--", &cat, &inside]);
    assert_eq!(stdout(&out), "inside the root\n", "{}", stderr(&out));
    assert_status(&out, 0);
    // Denied: /etc/passwd is not in the root.
    let out = run(&["run", "--ro", &granted, "--", &cat, "/etc/passwd"]);
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("/etc/passwd: No such file or directory"),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 1);
    // Without the grant, the same file is not there either.
    let out = run(&["run", "--", &cat, &inside]);
    assert!(
        stderr(&out).contains("No such file or directory"),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 1);
}

#[test]
fn run_dynamic_program_cannot_list_outside_its_mounts() {
    let Some(ls) = dynamic_program("ls") else {
        return;
    };
    let dir = world_readable_dir();
    let granted = std::fs::canonicalize(dir.path())
        .unwrap()
        .display()
        .to_string();
    // Allowed: the granted directory lists.
    let out = run(&["run", "--ro", &granted, "--", &ls, &granted]);
    assert_eq!(stdout(&out), "inside.txt\n", "{}", stderr(&out));
    assert_status(&out, 0);
    // Denied by Landlock: `/` of the root is a real directory (the tmpfs holding the mount
    // points), but no rule covers it.
    let out = run(&["run", "--ro", &granted, "--", &ls, "/"]);
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 2);
    // Denied by the mounts: /etc is not there at all.
    let out = run(&["run", "--ro", &granted, "--", &ls, "/etc"]);
    assert!(
        stderr(&out).contains("No such file or directory"),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 2);
}

#[test]
fn run_policy_mounts_and_rw_binds() {
    use std::os::unix::fs::PermissionsExt;
    let (Some(cat), Some(touch)) = (dynamic_program("cat"), dynamic_program("touch")) else {
        return;
    };
    let dir = world_readable_dir();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let policy = root.join("p.toml");
    std::fs::write(
        &policy,
        format!(
            "[profiles.tool]\n[[profiles.tool.mounts]]\npath = \"{}\"\n",
            root.display()
        ),
    )
    .unwrap();
    let inside = root.join("inside.txt").display().to_string();
    let policy = policy.display().to_string();
    // The profile's mount is in the root.
    let out = run(&["run", "--policy", &policy, "--", &cat, &inside]);
    assert_eq!(stdout(&out), "inside the root\n", "{}", stderr(&out));
    assert_status(&out, 0);
    // Writing: refused below a read-only mount, done below a read-write one.
    let out_dir = root.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let new = out_dir.join("new.txt");
    let (out_s, new_s) = (out_dir.display().to_string(), new.display().to_string());
    let out = run(&["run", "--ro", &out_s, "--", &touch, &new_s]);
    assert!(!new.exists(), "{}", stderr(&out));
    assert_status(&out, 1);
    let out = run(&["run", "--rw", &out_s, "--", &touch, &new_s]);
    assert!(new.exists(), "{}", stderr(&out));
    assert_status(&out, 0);
    // A symlink: made below the read-write mount, refused below the read-only one.
    if let Some(ln) = dynamic_program("ln") {
        let link = out_dir.join("link");
        let link_s = link.display().to_string();
        let out = run(&["run", "--ro", &out_s, "--", &ln, "-s", "new.txt", &link_s]);
        assert!(link.symlink_metadata().is_err(), "{}", stderr(&out));
        assert_status(&out, 1);
        let out = run(&["run", "--rw", &out_s, "--", &ln, "-s", "new.txt", &link_s]);
        assert!(link.symlink_metadata().is_ok(), "{}", stderr(&out));
        assert_status(&out, 0);
    }
}

#[test]
fn run_refuses_a_directory_as_stdio() {
    let Some(echo) = dynamic_program("echo") else {
        return;
    };
    let dir = std::fs::File::open("/").expect("open / as a directory");
    let out = Command::new(cli())
        .args(["run", "--", &echo, "x"])
        .stdin(Stdio::from(dir))
        .output()
        .expect("portcullis run ends");
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("a directory cannot be one of the program's fds"),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 126);
}

#[test]
fn run_a_script_through_its_interpreter() {
    use std::os::unix::fs::PermissionsExt;
    let Some(sh) = dynamic_program("sh") else {
        return;
    };
    let dir = world_readable_dir();
    let script = std::fs::canonicalize(dir.path()).unwrap().join("job.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho from a script; for i in 1 2; do echo $i; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = script.display().to_string();
    // The script itself: refused, naming the form that works.
    let out = run(&["run", "--", &script]);
    assert!(
        stderr(&out).contains(&format!("a script; run its interpreter with the script mounted instead, e.g. portcullis run --ro {script} -- /bin/sh {script}")),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 126);
    // That form: the shell (a dynamic program) runs it.
    let out = run(&["run", "--ro", &script, "--", &sh, &script]);
    assert_eq!(stdout(&out), "from a script\n1\n2\n", "{}", stderr(&out));
    assert_status(&out, 0);
}

#[test]
fn run_says_when_the_sandbox_cannot_reach_a_path() {
    use std::os::unix::fs::PermissionsExt;
    // Only a root broker's sandbox runs as another host id than the caller's.
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: only a root caller's sandbox has another host id");
        return;
    }
    let Some(echo) = dynamic_program("echo") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let private = dir.path().join("echo");
    std::fs::copy(&echo, &private).unwrap();
    let out = run(&["run", "--", &private.display().to_string(), "hi"]);
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("must be searchable by others"),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 126);
    // The pair: the same directory opened to others runs it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(&["run", "--", &private.display().to_string(), "hi"]);
    assert_eq!(stdout(&out), "hi\n", "{}", stderr(&out));
    assert_status(&out, 0);
}

// --- serve: runs through a long-running server of the same user ---

/// A `portcullis serve` of this test, on a socket in a directory of its own; killed on drop.
struct Server {
    process: std::process::Child,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server with `args` and waits until it accepts connections. `None` (a skip, or a
    /// failure under `PORTCULLIS_TESTS_REQUIRED=1`) when it cannot start here.
    fn start(args: &[&str]) -> Option<Server> {
        Self::start_as(&cli(), None, args)
    }

    /// [`Server::start`] of `binary`, as `uid` (and its gid) when given, the socket's directory
    /// then made that user's (a server refuses a directory that is not its own).
    fn start_as(binary: &Path, uid: Option<u32>, args: &[&str]) -> Option<Server> {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("run.sock");
        let mut command = Command::new(binary);
        if let Some(uid) = uid {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid)).expect("chown");
            command.uid(uid).gid(uid).current_dir("/");
        }
        let mut process = command
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the portcullis binary runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = process.try_wait() {
                let mut err = String::new();
                if let Some(mut pipe) = process.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut err);
                }
                assert!(!required(), "the server did not start ({status}): {err}");
                eprintln!("skipped: the server did not start ({status}): {err}");
                return None;
            }
            if connect_raw(&socket).is_some() {
                return Some(Server {
                    process,
                    socket,
                    dir,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = process.kill();
        let _ = process.wait();
        panic!("the server did not listen within 20 s");
    }

    fn socket(&self) -> &str {
        self.socket.to_str().expect("a UTF-8 temp path")
    }

    /// The zygote's children: the programs running (and warm children waiting).
    fn sandboxed_processes(&self) -> usize {
        let zygotes = children_of(self.process.id());
        zygotes.iter().map(|&z| children_of(z).len()).sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The pids whose parent is `pid` (`/proc/PID/task/*/children`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// `portcullis run --server SOCKET -- PROGRAM hello world`.
fn served_hello(server: &Server, program: &Path) -> Output {
    run_program(
        &["--server", server.socket()],
        program,
        &["hello", "world"],
        b"",
    )
}

/// A connection to the server at `socket`, as a channel speaking the serve protocol.
fn connect_raw(socket: &Path) -> Option<portcullis::ipc::Channel> {
    use nix::sys::socket::{
        connect, socket as make_socket, AddressFamily, SockFlag, SockType, UnixAddr,
    };
    let fd = make_socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    let addr = UnixAddr::new(socket).ok()?;
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).ok()?;
    Some(portcullis::ipc::Channel::from_fd(
        fd,
        portcullis::serve_protocol::limits(),
    ))
}

/// What the server answered on `conn`, until its end: the lines and the last reply.
fn replies(conn: &portcullis::ipc::Channel) -> (Vec<String>, portcullis::serve_protocol::RunReply) {
    use portcullis::serve_protocol::RunReply;
    let mut lines = Vec::new();
    loop {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        match conn.recv::<RunReply>(Some(deadline)) {
            Ok((RunReply::Say(line), _)) => lines.push(line),
            Ok((end, _)) => return (lines, end),
            Err(e) => panic!("no answer from the server: {e}"),
        }
    }
}

#[test]
fn serve_runs_programs_as_a_standalone_run_does() {
    let Some(program) = static_program() else {
        return;
    };
    let Some(server) = Server::start(&["--warm", "2"]) else {
        return;
    };
    let via = ["--server", server.socket()];
    // Twice: the first takes a warm child, and so does the second once the pool is refilled.
    for _ in 0..2 {
        let out = run_program(&via, &program, &["hello", "world"], b"");
        assert_said_hello(&out);
    }
    let out = run_program(&via, &program, &["echo"], b"through the server");
    assert_eq!(stdout(&out), "through the server", "{}", stderr(&out));
    assert_status(&out, 0);
    let out = run_program(
        &[&via[..], &["--env", "ONLY=this"]].concat(),
        &program,
        &["env"],
        b"",
    );
    assert_eq!(stdout(&out), "ONLY=this\n", "{}", stderr(&out));
    assert_status(&out, 0);
    let out = run_program(&via, &program, &["passwd"], b"");
    assert_eq!(stdout(&out), "open /etc/passwd: Permission denied\n");
    assert_status(&out, 0);
    // A violation: named on the client's stderr, the status 128 + SIGSYS.
    let out = run_program(&via, &program, &["socket"], b"");
    assert!(
        stderr(&out).contains("portcullis: killed: seccomp violation: socket"),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 128 + libc::SIGSYS);
    let out = run_program(
        &[&via[..], &["--on-violation", "deny"]].concat(),
        &program,
        &["socket"],
        b"",
    );
    assert_eq!(stdout(&out), "socket: Operation not permitted\n");
    assert!(stderr(&out).contains("syscalls denied with EPERM: socket"));
    assert_status(&out, 0);
    // Limits other than the warm children's: a child forked for the run, limited as asked.
    let out = run_program(
        &[&via[..], &["--memory", "64MiB"]].concat(),
        &program,
        &["membomb"],
        b"",
    );
    if !cgroup_missing(&out, "serve memory bomb") {
        assert!(
            stderr(&out).contains("killed: out of memory"),
            "{}",
            stderr(&out)
        );
        assert_status(&out, 128 + libc::SIGKILL);
    }
    // A dynamic program, with its automatic root planned by the client.
    if let Some(echo) = dynamic_program("echo") {
        let out = run(&["run", "--server", server.socket(), "--", &echo, "dynamic"]);
        assert_eq!(stdout(&out), "dynamic\n", "{}", stderr(&out));
        assert_status(&out, 0);
    }
}

/// A server found through `PORTCULLIS_SERVER` (the connection the client makes before it parses
/// its arguments) runs the program, and says so with -v; `--no-server` (the pair) runs it with a
/// broker of the run's own.
#[test]
fn serve_is_found_through_the_environment() {
    let Some(program) = static_program() else {
        return;
    };
    let Some(server) = Server::start(&["--warm", "1"]) else {
        return;
    };
    let served_line = format!("run by the server at {}", server.socket());
    let with_env = |args: &[&str]| {
        Command::new(cli())
            .arg("run")
            .args(args)
            .arg("--")
            .arg(&program)
            .args(["hello", "world"])
            .env("PORTCULLIS_SERVER", server.socket())
            .stdin(Stdio::null())
            .output()
            .expect("the client runs")
    };
    for _ in 0..2 {
        let out = with_env(&["-v"]);
        assert_said_hello(&out);
        assert!(stderr(&out).contains(&served_line), "{}", stderr(&out));
    }
    let out = with_env(&["-v", "--no-server"]);
    assert_said_hello(&out);
    assert!(
        !stderr(&out).contains("run by the server"),
        "{}",
        stderr(&out)
    );
    // A run that ends before it asks (its policy file is missing) drops that early connection;
    // the server goes on serving.
    let out = with_env(&["--policy", "/nonexistent/policy.toml"]);
    assert_status(&out, 1);
    let out = with_env(&["-v"]);
    assert_said_hello(&out);
    assert!(stderr(&out).contains(&served_line), "{}", stderr(&out));
}

#[test]
fn serve_hides_the_clients_other_fds() {
    let Some(program) = static_program() else {
        return;
    };
    let Some(server) = Server::start(&[]) else {
        return;
    };
    assert_callers_fd_7_hidden(&["--server", server.socket()], &program);
}

/// The program must not outlive the `run` that asked for it: kill the client, and the server
/// kills the program (which would otherwise wait for its stdin forever).
#[test]
fn serve_kills_the_program_when_its_run_is_killed() {
    let Some(program) = static_program() else {
        return;
    };
    let Some(server) = Server::start(&["--warm", "0"]) else {
        return;
    };
    assert_eq!(server.sandboxed_processes(), 0);
    let mut client = Command::new(cli())
        .args(["run", "--server", server.socket(), "--"])
        .arg(&program)
        .arg("echo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the portcullis binary runs");
    let wait_for = |want: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while server.sandboxed_processes() != want {
            assert!(
                std::time::Instant::now() < deadline,
                "{} sandboxed processes, expected {want}",
                server.sandboxed_processes()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    wait_for(1);
    // The pair: while its client lives, the program runs on (it waits for its stdin).
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(server.sandboxed_processes(), 1);
    // The test keeps the program's stdin open (`wait` would close it): the program cannot end
    // by itself, only be killed.
    let stdin = client.stdin.take();
    client.kill().expect("kill the client");
    let _ = client.wait();
    wait_for(0);
    drop(stdin);
}

/// Bad requests get a clear refusal and leave the server serving.
#[test]
fn serve_refuses_bad_requests_and_keeps_serving() {
    use portcullis::serve_protocol::{RunGo, RunReply, RunRequest, PROTOCOL};
    use std::os::fd::AsFd;
    let Some(program) = static_program() else {
        return;
    };
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let file = std::fs::File::open(&program).expect("open the program");
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null");
    let request = |protocol: u32, limits: portcullis::policy::Limits| RunRequest {
        protocol,
        name: program.display().to_string(),
        argv: vec![b"probe".to_vec(), b"hello".to_vec()],
        env: Vec::new(),
        limits,
        program_root: None,
        extra_fds: 0,
        verbose: false,
    };
    let fds = [file.as_fd(), null.as_fd(), null.as_fd(), null.as_fd()];
    let default = portcullis::policy::Limits::default();
    // A well-formed request runs (the probe's `hello` exits 3).
    let conn = connect_raw(&server.socket).expect("connect");
    conn.send(&request(PROTOCOL, default), &[], None)
        .expect("send");
    assert!(matches!(replies(&conn).1, RunReply::Accepted));
    conn.send(&RunGo::Go, &fds, None).expect("go");
    assert!(matches!(replies(&conn).1, RunReply::Ended { status: 3 }));
    // `fall_back`: whether the client may run it itself (another build's request) or it is an
    // error (a bad request).
    let refused =
        |conn: &portcullis::ipc::Channel, what: &str, fall_back: bool| match replies(conn).1 {
            RunReply::Refused {
                message,
                fall_back: said,
            } => {
                assert!(message.contains(what), "{message:?} lacks {what:?}");
                assert_eq!(said, fall_back, "{message}");
            }
            other => panic!("{what}: not refused: {other:?}"),
        };
    // Another protocol version.
    let conn = connect_raw(&server.socket).expect("connect");
    conn.send(&request(PROTOCOL + 1, default), &[], None)
        .expect("send");
    refused(&conn, "protocol", true);
    // A limit no policy file could give.
    let conn = connect_raw(&server.socket).expect("connect");
    let zero = portcullis::policy::Limits {
        processes: 0,
        ..default
    };
    conn.send(&request(PROTOCOL, zero), &[], None)
        .expect("send");
    refused(&conn, "processes must be from 1", false);
    // Fds with the request: they come only with the go, to a server that answered.
    let conn = connect_raw(&server.socket).expect("connect");
    conn.send(&request(PROTOCOL, default), &fds, None)
        .expect("send");
    refused(&conn, "fds come with the go", false);
    // Fewer fds than a run needs.
    let conn = connect_raw(&server.socket).expect("connect");
    conn.send(&request(PROTOCOL, default), &[], None)
        .expect("send");
    assert!(matches!(replies(&conn).1, RunReply::Accepted));
    conn.send(&RunGo::Go, &fds[..2], None).expect("go");
    refused(&conn, "2 fds", false);
    // Bytes that are no request at all.
    let conn = connect_raw(&server.socket).expect("connect");
    conn.send_raw_datagram(&[0xff; 64], &[]).expect("send");
    refused(&conn, "bad request", false);
    // A client that connects and says nothing, then goes: nothing to answer, nothing lost.
    drop(connect_raw(&server.socket).expect("connect"));
    // One that says nothing for the server's 10 s (a client connects before it plans, so a slow
    // plan looks like this): refused with a fall back, since it has sent nothing yet.
    let conn = connect_raw(&server.socket).expect("connect");
    refused(&conn, "no request", true);
    // The server still runs programs.
    assert_said_hello(&served_hello(&server, &program));
}

#[test]
fn serve_refuses_a_second_server_and_replaces_a_stale_socket() {
    let Some(mut first) = Server::start(&["--warm", "0"]) else {
        return;
    };
    let out = run(&["serve", "--socket", first.socket(), "--warm", "0"]);
    assert!(
        stderr(&out).contains("a server is listening at"),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 1);
    // Killed, the first leaves its socket behind; the next server takes its place.
    first.process.kill().expect("kill the server");
    let _ = first.process.wait();
    assert!(first.socket.exists());
    let second = Command::new(cli())
        .args(["serve", "--socket", first.socket(), "--warm", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the portcullis binary runs");
    first.process = second;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while connect_raw(&first.socket).is_none() {
        assert!(std::time::Instant::now() < deadline, "no second server");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A run named a server that is not there: an error, not a silent standalone run.
    let missing = first.dir.path().join("none.sock");
    let out = run(&[
        "run",
        "--server",
        missing.to_str().unwrap(),
        "--",
        "/nonexistent",
    ]);
    assert_status(&out, 127);
    let Some(program) = static_program() else {
        return;
    };
    let out = run_program(
        &["--server", missing.to_str().unwrap()],
        &program,
        &["hello"],
        b"",
    );
    assert!(stderr(&out).contains("no server at"), "{}", stderr(&out));
    assert_status(&out, 126);
}

/// Only the server's own user is served, and a client uses only a server of its own user: a
/// server of another uid is refused from both ends even where the socket lets them connect.
/// (Root only: only root can start processes of another uid.)
#[test]
fn serve_serves_only_its_own_user() {
    use portcullis::serve_protocol::RunReply;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // Not the overflow uid (65534), which a client refuses whoever it is.
    const OTHER: u32 = 4242;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: only root can start a server of another uid");
        return;
    }
    let Some(program) = static_program() else {
        return;
    };
    // The binary where the other user can execute it.
    let bin = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = bin.path().join("portcullis");
    std::fs::copy(cli(), &copy).expect("copy the binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some(server) = Server::start_as(&copy, Some(OTHER), &["--warm", "0"]) else {
        return;
    };
    // The pair: the server's own user is served.
    let out = Command::new(&copy)
        .args(["run", "--server", server.socket(), "--"])
        .arg(&program)
        .args(["hello", "world"])
        .current_dir("/")
        .uid(OTHER)
        .gid(OTHER)
        .stdin(Stdio::null())
        .output()
        .expect("the client runs");
    assert_said_hello(&out);
    // Root's client does not even connect to a socket in another user's directory...
    let out = served_hello(&server, &program);
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("must be a directory of uid 0"),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 126);
    // ...and, reached through a directory of its own (a link to the same socket), it will not
    // hand its terminal and program to another user's server.
    let own = tempfile::tempdir().expect("temp dir");
    let link = own.path().join("run.sock");
    std::fs::hard_link(&server.socket, &link).expect("link the socket");
    let link = link.to_str().expect("a UTF-8 temp path");
    let out = run_program(&["--server", link], &program, &["hello", "world"], b"");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("runs as uid {OTHER}, not as this user (0)")),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 126);
    // And the server refuses root, checked before it reads a request: nothing to send (a
    // request sent now may find the connection closed already).
    let conn = connect_raw(&server.socket).expect("connect");
    match replies(&conn).1 {
        RunReply::Refused { message, .. } => assert!(
            message.contains(&format!("this server serves uid {OTHER} only")),
            "{message}"
        ),
        other => panic!("another user's connection was not refused: {other:?}"),
    }
}

/// Nothing starts before the client's go: a request the server accepted waits for it, so a
/// client that gave up waiting can run the program itself without it ever running twice.
#[test]
fn serve_starts_nothing_before_the_clients_go() {
    use portcullis::serve_protocol::{RunGo, RunReply, RunRequest, PROTOCOL};
    use std::os::fd::AsFd;
    let Some(program) = static_program() else {
        return;
    };
    let Some(server) = Server::start(&["--warm", "0"]) else {
        return;
    };
    let file = std::fs::File::open(&program).expect("open the program");
    // The program's stdin: a pipe this test holds open, so a started program waits and is seen.
    let (stdin_r, stdin_w) = nix::unistd::pipe().expect("pipe");
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null");
    let request = RunRequest {
        protocol: PROTOCOL,
        name: program.display().to_string(),
        argv: vec![b"probe".to_vec(), b"echo".to_vec()],
        env: Vec::new(),
        limits: portcullis::policy::Limits::default(),
        program_root: None,
        extra_fds: 0,
        verbose: false,
    };
    let conn = connect_raw(&server.socket).expect("connect");
    let fds = [file.as_fd(), stdin_r.as_fd(), null.as_fd(), null.as_fd()];
    conn.send(&request, &[], None).expect("send");
    assert!(matches!(replies(&conn).1, RunReply::Accepted));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(server.sandboxed_processes(), 0, "started before the go");
    // The pair: the go starts it (it waits for its stdin), and closing its stdin ends it.
    conn.send(&RunGo::Go, &fds, None).expect("go");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.sandboxed_processes() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "not started after the go"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(stdin_w);
    assert!(matches!(replies(&conn).1, RunReply::Ended { status: 0 }));
    // A client that goes away after the accept, without a go: nothing runs.
    let conn = connect_raw(&server.socket).expect("connect");
    conn.send(&request, &[], None).expect("send");
    assert!(matches!(replies(&conn).1, RunReply::Accepted));
    drop(conn);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(server.sandboxed_processes(), 0, "started without a go");
}

/// A client confined otherwise than the server (here `no_new_privs`, which every seccomp filter
/// and Landlock domain of an unprivileged process comes with) is not served: a served run would
/// escape what a broker of its own inherits. It runs the program itself, unless it named the
/// server.
#[test]
fn serve_sends_a_confined_client_to_a_broker_of_its_own() {
    use std::os::unix::process::CommandExt;
    let Some(program) = static_program() else {
        return;
    };
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let confined = |args: &[&str], env_server: Option<&str>| {
        let mut command = Command::new(cli());
        command
            .arg("run")
            .args(args)
            .arg("--")
            .arg(&program)
            .args(["hello", "world"])
            .stdin(Stdio::null());
        if let Some(socket) = env_server {
            command.env("PORTCULLIS_SERVER", socket);
        }
        // SAFETY: between fork and exec only prctl, which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.output().expect("the client runs")
    };
    let out = confined(&["--server", server.socket()], None);
    assert!(
        stderr(&out).contains(
            "refused: the client is confined by a seccomp filter or no_new_privs (NoNewPrivs: 1)"
        ),
        "{}",
        stderr(&out)
    );
    assert_status(&out, 126);
    // Found without --server, the server's refusal sends it to a broker of its own.
    let out = confined(&[], Some(server.socket()));
    assert_said_hello(&out);
    // The pair: the same client unconfined is served.
    assert_said_hello(&served_hello(&server, &program));
}

/// A stuck server (stopped) is not waited for: a client that found it runs the program itself
/// after a short wait, one that named it gives up with a message; the server, continued, starts
/// nothing for them.
#[test]
fn serve_stuck_is_not_waited_for() {
    let Some(program) = static_program() else {
        return;
    };
    let Some(server) = Server::start(&["--warm", "0"]) else {
        return;
    };
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.process.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("stop the server");
    let started = std::time::Instant::now();
    let out = Command::new(cli())
        .args(["run", "--"])
        .arg(&program)
        .args(["hello", "world"])
        .env("PORTCULLIS_SERVER", server.socket())
        .stdin(Stdio::null())
        .output()
        .expect("the client runs");
    assert_said_hello(&out);
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    let out = served_hello(&server, &program);
    assert!(stderr(&out).contains("did not answer"), "{}", stderr(&out));
    assert_status(&out, 126);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("continue the server");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(server.sandboxed_processes(), 0);
    // The pair: continued, it serves again.
    assert_said_hello(&served_hello(&server, &program));
}

/// A long-running server follows the host's mounts: a filesystem mounted (or unmounted) after
/// it started is what a served program's root shows, as for a standalone run, and an unmounted
/// one is not kept alive by the server. (Root only: mounting needs it.)
#[test]
fn serve_follows_the_hosts_mounts() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: only root can mount here");
        return;
    }
    let Some(cat) = dynamic_program("cat") else {
        return;
    };
    let dir = world_readable_dir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("f"), "under\n").unwrap();
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let data_path = data.to_str().expect("a UTF-8 temp path");
    let file = data.join("f");
    let file = file.to_str().expect("a UTF-8 temp path");
    let served_cat = || {
        run(&[
            "run",
            "--server",
            server.socket(),
            "--ro",
            data_path,
            "--",
            &cat,
            file,
        ])
    };
    let out = served_cat();
    assert_eq!(stdout(&out), "under\n", "{}", stderr(&out));
    assert_status(&out, 0);
    nix::mount::mount(
        Some("tmpfs"),
        data.as_path(),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("mode=0755"),
    )
    .expect("mount a tmpfs");
    let unmount = || nix::mount::umount2(data.as_path(), nix::mount::MntFlags::MNT_DETACH);
    let written = std::fs::write(data.join("f"), "over\n").and_then(|()| {
        std::fs::set_permissions(data.join("f"), std::fs::Permissions::from_mode(0o644))
    });
    if let Err(e) = written {
        let _ = unmount();
        panic!("write on the tmpfs: {e}");
    }
    // The server noticed the mount (a new broker, whose zygote copied the tree after it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let over = loop {
        let out = served_cat();
        if stdout(&out) == "over\n" || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // The new broker has cgroups of its own (not the old one's directory name, which the old
    // one still held when it started): a memory limit still ends a memory bomb as an
    // out-of-memory kill.
    let bomb = static_program().map(|program| {
        run_program(
            &["--server", server.socket(), "--memory", "64MiB"],
            &program,
            &["membomb"],
            b"",
        )
    });
    let unmounted = unmount();
    assert_eq!(stdout(&over), "over\n", "{}", stderr(&over));
    assert_status(&over, 0);
    unmounted.expect("unmount the tmpfs");
    if let Some(out) = bomb {
        if !cgroup_missing(&out, "serve memory bomb after a new broker") {
            assert!(
                stderr(&out).contains("killed: out of memory"),
                "{}",
                stderr(&out)
            );
            assert_status(&out, 128 + libc::SIGKILL);
        }
    }
    // The pair: unmounted, the file beneath shows again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let under = loop {
        let out = served_cat();
        if stdout(&out) == "under\n" || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(stdout(&under), "under\n", "{}", stderr(&under));
    assert_status(&under, 0);
}
