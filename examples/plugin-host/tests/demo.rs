//! The plugin host end to end, as a user runs it: `plugin-host --demo` in a fresh process (the
//! broker, its zygote and the sandboxed plugins are real). The thumbnailer must produce the
//! host's own thumbnail with no violation and no denied request; every one of the evil plugin's
//! attempts must be blocked on the broker's evidence; the exit status must say so.

use std::process::Command;

fn plugin_host() -> std::path::PathBuf {
    // The unprivileged run (scripts/test-unprivileged.sh) stages the binary elsewhere.
    std::env::var_os("PORTCULLIS_PLUGIN_HOST")
        .map_or_else(|| env!("CARGO_BIN_EXE_plugin-host").into(), Into::into)
}

#[test]
fn demo_blocks_every_escape_and_thumbnails_correctly() {
    let out = Command::new(plugin_host())
        .arg("--demo")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("plugin-host runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("were not built") {
        assert!(
            std::env::var("PORTCULLIS_TESTS_REQUIRED").as_deref() != Ok("1"),
            "the plugins were not built here: {stderr}"
        );
        eprintln!("skipped: {stderr}");
        return;
    }
    assert!(
        out.status.success(),
        "status {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(
            "thumbnailer: ok (64×43 thumbnail matches the host's, 0 violations, 0 denied requests)"
        ),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("evil plugin: 16 attempts, 16 blocked, 0 allowed"),
        "{stdout}"
    );
    // Each kind of evidence appears: a denied request, a named violation, the OOM end.
    for evidence in [
        "open /etc/passwd denied: not-granted",
        "connect 127.0.0.1:22 denied: not-granted",
        "seccomp violation: ptrace, answered EPERM",
        "seccomp violation: execve, answered EPERM",
        "killed by its cgroup's OOM killer",
    ] {
        assert!(stdout.contains(evidence), "{evidence} missing:\n{stdout}");
    }
    // The pair: the one file it may read, it reads.
    assert!(
        stdout.contains("(pair) read its granted file: Ok(38)"),
        "{stdout}"
    );
}

#[test]
fn without_demo_it_says_what_to_do_and_bad_flags_fail_clearly() {
    let out = Command::new(plugin_host())
        .output()
        .expect("plugin-host runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("try --demo"));
    let out = Command::new(plugin_host())
        .arg("--frobnicate")
        .output()
        .expect("plugin-host runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--frobnicate'"));
}
