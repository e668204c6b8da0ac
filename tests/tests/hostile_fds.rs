//! The hostile-child suite's fd attacks, in a test binary of their own (cargo runs test binaries
//! one at a time, so nothing else spawns while they run). Why: the kernel limits the fds a *user*
//! has in flight in unix sockets, and every sandboxed child of every broker on the host runs as
//! the same host uid, so while an attacker keeps 1,000 fds queued, other children's fd-carrying
//! sends — a new child's `LockedDown`, which carries its seccomp listener — fail with
//! `ETOOMANYREFS`. Run beside the other hostile scenarios, this attack made their spawns fail.
//! That is the known gap the ignored test below reproduces (docs/THREATS.md).

use portcullis_tests::scenarios;

scenarios! {
    // 1,000 fds in one message (four datagrams of one message), on both channels: the attacker
    // ends as a protocol violation, the broker's fds are back at baseline (pooled children the
    // attack cost are accounted for and reported), the bystander is not starved.
    thousand_fds_in_one_message_are_closed => "hostile-suite-thousand-fds",
}

/// KNOWN BUG (reported, not fixed here): a child keeping fds in flight on its unread channel
/// makes every other child's `SCM_RIGHTS` send fail with `ETOOMANYREFS` — the kernel counts fds
/// in flight per host uid and every sandboxed child has the same one — so a spawn meanwhile
/// fails in its lockdown handshake (and pre-forked children die unclaimed). Run it with
/// `cargo test -p portcullis-tests --test hostile_fds -- --ignored`.
#[test]
#[ignore = "known bug: fds in flight are limited per host uid, shared by every child (ETOOMANYREFS)"]
fn spawn_succeeds_while_another_child_holds_fds_in_flight() {
    portcullis_tests::run_scenario(
        env!("CARGO_BIN_EXE_probe"),
        "hostile-suite-spawn-while-fds-in-flight",
    );
}
