//! Real-kernel tests of supervision: limits, violation reports from outside the child, the
//! broker's death, and leak-free spawn/exit cycles. Each runs one probe scenario in a fresh
//! broker process (see `src/lib.rs` for why).

use portcullis_tests::scenarios;

scenarios! {
    // Limits, each next to a bystander child that keeps answering.
    cpu_spin_ends_at_its_cpu_limit => "limit-cpu",
    sleeper_ends_at_its_wall_timeout => "limit-wall",
    // cgroups (skipped only where the host gives the broker none, which fails under
    // PORTCULLIS_TESTS_REQUIRED=1).
    memory_bomb_ends_out_of_memory => "limit-memory",
    thread_bomb_ends_at_its_process_limit => "limit-threads",
    // Violations reported from outside the child, by name with arguments, in both modes; and
    // the pair: an allowed syscall is never reported.
    violation_kill_mode_names_ptrace => "violation-kill",
    violation_deny_mode_eperm_names_ptrace_and_socket => "violation-deny",
    violation_reported_after_the_child_closed_every_fd => "violation-gagged",
    allowed_syscalls_are_never_reported => "no-violation-when-allowed",
    // 10,000 spawn/exit cycles (PORTCULLIS_LEAK_CYCLES): fds, RSS, zombies, tracked children
    // back at their baseline.
    leak_free_spawn_exit_cycles => "leak-cycles",
    // One broker holds 1,000 live idle children (PORTCULLIS_SCALE_CHILDREN), then ends them all.
    one_broker_holds_1000_children => "scale-1000",
}
