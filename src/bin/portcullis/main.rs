//! `portcullis`: the Portcullis command line.
//!
//! Owns: `run` (a program in a sandbox, exec mode), `serve` (a long-running broker that runs
//! the `run`s of the user it runs as), and the subcommands that inspect policies
//! and the host without starting a sandbox — `check` (validate a policy file), `explain` (the
//! sandbox a child with a profile gets) and `doctor` (what this host offers, with the fix for
//! each gap). Each subcommand is one module
//! with its clap arguments and a `run` function; `main` parses, dispatches, prints and maps the
//! result to an exit status, so a new subcommand is one more module and one more variant.
//!
//! Must never: panic on any input (a bad flag, file or host answer is a message and an exit
//! status), change the host beyond what a broker's own start would do (`doctor` makes and removes
//! a cgroup the way a broker does, nothing else), or describe a sandbox from its own copy of the
//! facts where the broker's code can be asked (`explain` iterates the broker's allowlist and
//! derives limits with the broker's function).
//!
//! With glibc the process starts at [`main`], called by the C runtime, not through std's
//! runtime start (`#![no_main]`): every `portcullis run` is a new process, and std's start costs
//! it ~45 µs here, most of it reading `/proc/self/maps` to place a guard page for a
//! stack-overflow message. [`main`] does the two things of that start this command relies on
//! (see there). The command line still reaches `std::env::args_os`, which glibc hands to std
//! before `main` (std's `.init_array` hook); other C libraries do not, so with them the command
//! starts through std as usual.

#![cfg_attr(all(not(test), target_env = "gnu"), no_main)]

mod check;
mod doctor;
mod explain;
mod peer;
mod policy_file;
mod run;
mod serve;
mod sys;
mod text;

use std::io::Write;

use clap::{Parser, Subcommand};

/// Exit statuses, the same for every subcommand.
mod status {
    /// Done: the policy is valid, the explanation printed, no doctor check failed.
    pub const OK: u8 = 0;
    /// The input is bad (a policy that does not load, a file that cannot be read) or a doctor
    /// check failed.
    pub const FAILED: u8 = 1;
    /// The command line is wrong (unknown flag, missing argument, a profile or parameter the
    /// policy does not have). clap uses the same status for its own errors.
    pub const USAGE: u8 = 2;
}

const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  the input is bad (a policy file that is invalid, unreadable, larger than 4 MiB or not
     UTF-8), or a doctor check FAILed
  2  usage error: unknown subcommand or flag, missing argument, a profile or parameter the
     policy does not define
`portcullis run` exits with the program's own status instead (see `portcullis run --help`).

See docs/CLI.md for every command with sample output.";

/// Run programs in a Portcullis sandbox; inspect policies and hosts.
#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    long_about = "\
Run programs in a Portcullis sandbox; inspect policies and hosts.

Portcullis runs untrusted code the way Chromium does: a trusted broker starts locked-down
children through a single-threaded zygote. Each child gets empty namespaces, an empty
read-only root, no capabilities, no_new_privs, a seccomp allowlist and limits, and reaches
files and the network only through the broker, as its policy profile allows.

`run` executes a program in such a child (exec mode); `serve` keeps a broker and locked-down
children ready so that each `run` starts faster. The others start no sandbox: `check`
validates a policy file, `explain` prints in plain words the sandbox a child with a given
profile gets, and `doctor` checks that this host has what Portcullis needs and says how to
fix what it lacks.",
    after_long_help = EXIT_STATUS_HELP,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The subcommands. Each one's arguments and help are built only when it is the one given
// (`defer`): a `portcullis run` does not build the other four, ~50 µs of its start. The one-line
// summary `portcullis --help` lists for each is therefore on its variant here, and a test checks
// that it is the first line of the subcommand's own help. (A `//` comment: clap would take a
// doc comment here as the command's own about.)
#[derive(Debug, Subcommand)]
#[command(defer = true)]
enum Command {
    /// Validate a policy file and list the profiles it defines.
    Check(check::CheckArgs),
    /// Print the sandbox a child with a given profile gets, in plain words.
    Explain(explain::ExplainArgs),
    /// Check that this host can run Portcullis sandboxes, and how to fix what it lacks.
    Doctor(doctor::DoctorArgs),
    /// Run PROGRAM in a Portcullis sandbox.
    Run(Box<run::RunArgs>),
    /// Run many `portcullis run` requests from one long-running sandbox broker.
    Serve(serve::ServeArgs),
    /// Internal: the user-namespace trial `doctor` runs in a fresh process of this binary.
    #[command(name = doctor::PROBE_SUBCOMMAND, hide = true)]
    DoctorProbe(doctor::probe::ProbeArgs),
}

/// What a subcommand printed and how it ended, when it could do its job.
#[derive(Debug)]
struct Done {
    /// For standard output.
    stdout: String,
    /// The exit status ([`status::OK`], or [`status::FAILED`] for a doctor check that failed).
    status: u8,
}

/// Why a subcommand could not do its job.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    /// The policy file is bad or cannot be read (exit 1).
    #[error(transparent)]
    PolicyFile(#[from] policy_file::PolicyFileError),
    /// The command line asks for something the input does not have (exit 2).
    #[error("{message}")]
    Usage {
        /// What is wrong and what to write instead.
        message: String,
        /// The subcommand, for the "see --help" hint.
        subcommand: &'static str,
    },
}

/// The process's entry point, called by the C runtime with the command line (which
/// `std::env::args` reads too). Of std's runtime start it does what this command relies on:
/// - standard input, output and error are open before anything else is: one that is closed is
///   opened on `/dev/null`, so no file, socket or pipe opened later becomes fd 0, 1 or 2 (and
///   reaches a sandboxed program as its stdio);
/// - SIGPIPE is ignored, so a write to a closed pipe is an `EPIPE` error to handle, not the end
///   of the process.
///
/// It leaves out the stack-overflow handler (an overflow still ends the process, with SIGSEGV
/// instead of a message). A panic, which must never happen, prints its message as usual and
/// exits with status 101, as from std's start.
#[cfg(all(not(test), target_env = "gnu"))]
#[unsafe(no_mangle)]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    std::ffi::c_int::from(start())
}

/// Under `cargo test` the test harness has the entry point, and this stands in for [`main`]
/// (the harness never calls it, and the code it reaches counts as used); with a C library other
/// than glibc, std's runtime start calls it (see the module docs).
#[cfg(any(test, not(target_env = "gnu")))]
fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(start())
}

/// [`main`]'s work: the runtime start described there, then [`run`]. Returns the exit status.
fn start() -> u8 {
    if sys::open_standard_fds().is_err() {
        // As std's start does: nothing may run with a standard stream it cannot trust.
        std::process::abort();
    }
    sys::ignore_sigpipe();
    let status = std::panic::catch_unwind(run).unwrap_or(101);
    // std's start flushes standard output at the end; `run` has written all it writes with
    // `print_stdout` (which flushes), so this has nothing left to do unless that failed.
    let _ = std::io::stdout().flush();
    status
}

/// The command: the zygote's entry when this process is a broker's zygote, else the
/// subcommand the command line names. Returns the exit status.
fn run() -> u8 {
    // `run` starts a broker, whose zygote is this binary re-executed: that process must become
    // the zygote before anything else (it has no command line to parse).
    portcullis::Broker::serve_if_zygote(&portcullis::Entries::new());
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let early = run::connect_early(&argv);
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            // clap's own message: usage errors go to stderr (status 2), --help and --version
            // to stdout (status 0).
            let _ = e.print();
            return u8::try_from(e.exit_code()).unwrap_or(status::USAGE);
        }
    };
    let result = match &cli.command {
        Command::Check(args) => check::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Doctor(args) => Ok(doctor::run(args)),
        Command::Run(args) => run::run(args, early),
        Command::Serve(args) => serve::serve(args),
        Command::DoctorProbe(args) => Ok(doctor::probe::run(args)),
    };
    match result {
        Ok(done) => print_stdout(&done.stdout).unwrap_or(done.status),
        Err(CommandError::PolicyFile(e)) => {
            // A located error starts with "path:line:column:", as compilers print them.
            eprintln!("{}", text::error_chain(&e));
            status::FAILED
        }
        Err(CommandError::Usage {
            message,
            subcommand,
        }) => {
            eprintln!("portcullis {subcommand}: {message}");
            eprintln!("For more information, try 'portcullis {subcommand} --help'.");
            status::USAGE
        }
    }
}

/// Writes `text` to standard output. `Some(status)` when that failed: a closed pipe (the
/// reader, e.g. `head`, has all it wanted) ends quietly, any other error is reported; neither
/// may panic, which `println!` would.
fn print_stdout(text: &str) -> Option<u8> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => None,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Some(status::FAILED),
        Err(e) => {
            eprintln!("portcullis: cannot write to standard output: {e}");
            Some(status::FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The summaries `portcullis --help` lists (from `Command`'s variants, built before any
    /// subcommand's own help) are the subcommands' own first lines.
    #[test]
    fn each_listed_summary_is_its_subcommands_own() {
        let cli = Cli::command();
        let mut checked = 0;
        for listed in cli.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            let summary = listed.get_about().map(ToString::to_string);
            assert!(summary.is_some(), "{} has no summary", listed.get_name());
            let mut own = listed.clone();
            own.build();
            assert_eq!(
                own.get_about().map(ToString::to_string),
                summary,
                "the summary of {}",
                listed.get_name()
            );
            assert!(
                own.get_arguments().count() > 0,
                "{} was built",
                listed.get_name()
            );
            // The variant's summary must not replace the subcommand's own long help (it would,
            // were the arguments built before it).
            let long = own
                .get_long_about()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                long.len() > summary.as_deref().map_or(0, str::len),
                "{} keeps its long help",
                listed.get_name()
            );
            checked += 1;
        }
        assert_eq!(checked, 5);
    }
}
