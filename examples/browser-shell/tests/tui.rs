//! The terminal UI end to end, in a real terminal: tmux runs `browser-shell` in a 120×40 pane,
//! keys go in with `send-keys`, the screen comes back with `capture-pane`. Three tabs on the
//! bundled pages; one crashes with about:crash; its sad tab shows the reason while the other two
//! still show their pages from their live renderers; going back gives the crashed tab a fresh
//! renderer.
//!
//! Skips (with the reason) when tmux is missing or the host cannot sandbox; fails instead under
//! `PORTCULLIS_TESTS_REQUIRED=1`. `scripts/ensure-deps.sh` installs tmux.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{run, shell_bin, tests_required};

/// A private tmux server (its own socket name), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .expect("run tmux")
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "shell"];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(out.status.success(), "send-keys {keys:?}: {out:?}");
    }

    fn text(&self, text: &str) {
        let out = self.cmd(&["send-keys", "-t", "shell", "-l", text]);
        assert!(out.status.success(), "send-keys -l {text:?}: {out:?}");
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "shell"]).stdout)
            .into_owned()
    }

    /// Waits (up to 30 s) until the screen satisfies `ok`; panics with the screen otherwise.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn tmux_missing() -> Option<String> {
    match Command::new("tmux").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!("tmux -V failed: {out:?}")),
        Err(e) => Some(format!(
            "tmux is not installed ({e}); scripts/ensure-deps.sh installs it"
        )),
    }
}

fn status_line(screen: &str) -> &str {
    screen.lines().rev().nth(1).unwrap_or_default()
}

#[test]
fn three_tabs_one_crashes_the_others_still_render() {
    if let Some(reason) = tmux_missing() {
        assert!(
            !tests_required(),
            "PORTCULLIS_TESTS_REQUIRED=1 but {reason}"
        );
        eprintln!("SKIPPED: {reason}");
        return;
    }
    // The same skip as every other test when the host cannot sandbox.
    if run(&["--dump", "about:blank"]).is_none() {
        return;
    }
    let tmux = Tmux {
        socket: format!("browser-shell-test-{}", std::process::id()),
    };
    let command = format!("{} ; echo browser-shell exited $? ; sleep 30", shell_bin());
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "shell",
        "-x",
        "120",
        "-y",
        "40",
        "sh",
        "-c",
        &command,
    ]);
    assert!(out.status.success(), "tmux new-session: {out:?}");

    // Tab 1: the bundled start page, rendered by a sandboxed renderer.
    let first = tmux.wait_for("the start page in tab 1", |s| {
        s.contains("sandboxed renderer") && status_line(s).contains("tab 1/1 · renderer pid")
    });
    assert!(status_line(&first).contains("seccomp 2"), "{first}");
    // Tabs 2 and 3.
    tmux.keys(&["t"]);
    tmux.wait_for("tab 2", |s| {
        s.contains("sandboxed renderer") && status_line(s).contains("tab 2/2 · renderer pid")
    });
    tmux.keys(&["t"]);
    tmux.wait_for("tab 3", |s| {
        s.contains("sandboxed renderer") && status_line(s).contains("tab 3/3 · renderer pid")
    });
    // Tab 2 follows a link to another bundled page (link [1]: Lists).
    tmux.keys(&["BTab"]);
    tmux.wait_for("tab 2 active", |s| status_line(s).contains("tab 2/3"));
    tmux.keys(&["1", "Enter"]);
    tmux.wait_for("the lists page in tab 2", |s| {
        s.contains("lists.html")
            && s.contains("nested list")
            && status_line(s).contains("renderer pid")
    });
    // Tab 3 crashes.
    tmux.keys(&["Tab"]);
    tmux.wait_for("tab 3 active", |s| status_line(s).contains("tab 3/3"));
    tmux.keys(&["g"]);
    tmux.text("about:crash");
    tmux.keys(&["Enter"]);
    let sad = tmux.wait_for("the sad tab", |s| s.contains("renderer is gone"));
    assert!(sad.contains("Crashed: signal 11 (SIGSEGV)"), "{sad}");
    assert!(sad.contains("renderer gone"), "{sad}");
    // The other tabs still render, from live renderers.
    tmux.keys(&["Tab"]);
    let one = tmux.wait_for("tab 1 after the crash", |s| {
        status_line(s).contains("tab 1/3")
    });
    assert!(one.contains("sandboxed renderer"), "{one}");
    assert!(status_line(&one).contains("renderer pid"), "{one}");
    tmux.keys(&["Tab"]);
    let two = tmux.wait_for("tab 2 after the crash", |s| {
        status_line(s).contains("tab 2/3")
    });
    assert!(two.contains("nested list"), "{two}");
    assert!(status_line(&two).contains("renderer pid"), "{two}");
    // A relayout reaches the live renderers (the shell asks, the renderer answers).
    let resized = tmux.cmd(&["resize-window", "-t", "shell", "-x", "90", "-y", "30"]);
    assert!(resized.status.success(), "{resized:?}");
    tmux.wait_for("tab 2 after a resize", |s| {
        s.contains("nested list") && status_line(s).contains("renderer pid")
    });
    // Back in the crashed tab, `b` goes back to the start page in a fresh renderer.
    tmux.keys(&["Tab"]);
    tmux.wait_for("tab 3 again", |s| status_line(s).contains("tab 3/3"));
    tmux.keys(&["b"]);
    tmux.wait_for("tab 3 with a fresh renderer", |s| {
        s.contains("sandboxed renderer") && status_line(s).contains("tab 3/3 · renderer pid")
    });
    // The help, then quit.
    tmux.keys(&["?"]);
    tmux.wait_for("the help", |s| s.contains(" Help "));
    tmux.keys(&["Escape"]);
    tmux.keys(&["q"]);
    tmux.wait_for("a clean exit", |s| s.contains("browser-shell exited 0"));
}
