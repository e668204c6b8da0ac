//! The hostile-child suite's fd attacks, in a test binary of their own (cargo runs test binaries
//! one at a time, and the tests here take turns, so nothing else spawns while one runs). Why:
//! the kernel limits the fds a *user* has in flight in unix sockets, and every sandboxed child
//! of an unprivileged broker runs as the broker's own uid, so while an attacker keeps 1,000 fds
//! queued, other children's fd-carrying application messages fail with `ETOOMANYREFS` (a
//! residual gap, docs/THREATS.md) — those of every broker of that user, a test running beside
//! it included (CI saw one fail so). Spawning no longer sends an fd (the broker takes each
//! child's seccomp listener with `pidfd_getfd`), which the second test proves.

use std::sync::{Mutex, PoisonError};

/// One scenario at a time in this binary (libtest runs tests on several threads).
fn one_at_a_time(scenario: &str) {
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    portcullis_tests::run_scenario(env!("CARGO_BIN_EXE_probe"), scenario);
}

/// 1,000 fds in one message (four datagrams of one message), on both channels: the attacker
/// ends as a protocol violation (or, when the kernel refused all of it, says so and ends
/// normally), the broker's fds are back at baseline with its pool full, and the bystander is
/// not starved.
#[test]
fn thousand_fds_in_one_message_are_closed() {
    one_at_a_time("hostile-suite-thousand-fds");
}

/// A spawn succeeds while another child holds 1,000 fds in flight: no step of a lockdown passes
/// an fd, so the per-user in-flight limit the attacker exhausts cannot deny it.
#[test]
fn spawn_succeeds_while_another_child_holds_fds_in_flight() {
    one_at_a_time("hostile-suite-spawn-while-fds-in-flight");
}

/// An fd-carrying application message succeeds while another child holds 1,000 fds in flight,
/// under a root broker (one host uid per child); with one uid for all it fails (the pair).
#[test]
fn fd_message_succeeds_while_another_child_holds_fds_in_flight() {
    one_at_a_time("hostile-suite-fd-message-while-fds-in-flight");
}

/// 128 idle children hold no fd in flight (a child's service mailbox is installed in it only
/// when it asks, never queued on a socket): an fd-carrying message still arrives beside them,
/// as before them (the pair). Discriminating under an unprivileged broker, whose children share
/// its uid; CI runs the suite both ways.
#[test]
fn idle_children_hold_no_fds_in_flight() {
    one_at_a_time("hostile-suite-idle-children");
}
