//! Real-kernel tests of exec mode: a static C program (built from `static/exec_probe.c`)
//! executed by a fully locked-down child from an fd the broker opened, with an empty root.

use portcullis_tests::scenarios;

scenarios! {
    // Must work: arguments, stdout, exit status; stdin; exactly the environment and fds given.
    exec_static_program_runs => "exec-static",
    exec_stdin_passes_through => "exec-stdin",
    exec_environment_and_fds_are_only_what_was_given => "exec-env-fds",
    // Must fail: no host file; a socket ends it as a violation naming `socket`.
    exec_cannot_read_host_files => "exec-no-host-files",
    exec_socket_is_a_named_violation => "exec-socket-violation",
}

// The must-fail list of issue 5 from the exec'd static program, in both violation modes; the
// terminal it was given cannot be injected into; processes only when allowed (the pair), and
// then capped by the pids limit; memory capped by the memory limit.
scenarios! {
    exec_must_fail_list_deny_mode => "exec-must-fail-deny",
    exec_must_fail_list_kill_mode => "exec-must-fail-kill",
    exec_terminal_input_cannot_be_injected => "exec-no-terminal-injection",
    exec_processes_only_when_allowed => "exec-processes-pair",
    exec_fork_bomb_is_capped_by_the_pids_limit => "exec-fork-bomb",
    exec_memory_bomb_is_capped_by_the_memory_limit => "exec-memory-bomb",
}
