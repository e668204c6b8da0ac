//! # echo — Portcullis top to bottom
//!
//! Run: `cargo run --release -p portcullis-example-echo` (as root or as any user on a host with
//! unprivileged user namespaces; `portcullis` needs nothing else).
//!
//! Shows: registering entry functions, starting the broker (and its zygote), spawning sandboxed
//! children, typed request/response, and what a child meets when it reaches for the host: every
//! escape attempt below fails, and the broker learns how each child ended from the kernel, not
//! from the child.

use std::time::Duration;

use anyhow::Context;
use portcullis::{Broker, BrokerConfig, ChildContext, ChildEnd, Entries};
use serde::{Deserialize, Serialize};

/// What the broker asks a child.
#[derive(Debug, Serialize, Deserialize)]
enum Ask {
    Echo(String),
    Quit,
}

/// What a child answers.
#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Echo(String),
    Tried { what: String, result: String },
}

/// A child that echoes, upper-cased.
fn echo(ctx: ChildContext<Answer, Ask>, _: ()) -> i32 {
    while let Ok(ask) = ctx.recv() {
        match ask {
            Ask::Echo(s) => {
                if ctx.send(&Answer::Echo(s.to_uppercase())).is_err() {
                    return 1;
                }
            }
            Ask::Quit => return 0,
        }
    }
    1
}

/// A child that tries to reach the host; `escape` names the attempt.
fn escape(ctx: ChildContext<Answer, Ask>, escape: String) -> i32 {
    let result = match escape.as_str() {
        "read /etc/passwd" => format!(
            "{:?}",
            std::fs::read_to_string("/etc/passwd").map(|s| s.len())
        ),
        "list /" => format!("{:?}", std::fs::read_dir("/").map(|d| d.count())),
        "my pid" => format!("{}", std::process::id()),
        // SAFETY: a probe syscall with integer arguments; the seccomp filter kills the child.
        "open a TCP socket" => format!("{}", unsafe {
            libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0)
        }),
        // SAFETY: as above; fork is denied (clone without thread flags).
        "fork" => format!("{}", unsafe { libc::fork() }),
        other => format!("unknown attempt {other}"),
    };
    let _ = ctx.send(&Answer::Tried {
        what: escape,
        result,
    });
    0
}

fn main() -> anyhow::Result<()> {
    // First line of main: in the zygote (a re-exec of this binary) this never returns.
    let broker = Broker::start(
        Entries::new()
            .register("echo", echo)
            .register("escape", escape),
        BrokerConfig::default(),
    )
    .context("start the broker (does this host allow user namespaces? see README)")?;
    println!(
        "broker pid {}, zygote pid {}",
        std::process::id(),
        broker.zygote_pid()
    );

    let child = broker.spawn::<Ask, Answer, _>("echo", &())?;
    println!(
        "echo child: pid {} (PID 1 inside its own namespace)",
        child.pid()
    );
    let answer = child.request(&Ask::Echo("hello from the broker".into()))?;
    println!("  asked \"hello from the broker\", got {answer:?}");
    child.send(&Ask::Quit)?;
    println!("  ended: {:?}", child.wait());

    for attempt in [
        "read /etc/passwd",
        "list /",
        "my pid",
        "open a TCP socket",
        "fork",
    ] {
        let child = broker.spawn::<Ask, Answer, _>("escape", &attempt.to_string())?;
        let reply = child.recv_timeout(Duration::from_secs(10));
        let end = child.wait();
        let shown = match (&reply, &end) {
            (Ok(Answer::Tried { result, .. }), _) => format!("child saw {result}"),
            (_, ChildEnd::SeccompViolation { violation: Some(v) }) => {
                format!("killed before it could: seccomp violation: {v}")
            }
            _ => format!("{reply:?}"),
        };
        println!("escape attempt {attempt:>18}: {shown}; ended {end:?}");
    }
    Ok(())
}
