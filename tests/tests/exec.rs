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
    exec_directory_as_stdio_is_refused => "exec-directory-stdio",
    // Pre-forked exec-mode children (`BrokerConfig::prefork_programs`): a default spawn takes
    // one, other rlimits fork their own (the pair), and every one is locked down and supervised.
    exec_program_pool_serves_default_spawns => "exec-program-pool",
}

// Program roots: a dynamic program runs in a read-only minimal root computed from its ELF
// (interpreter and libraries), plus granted paths; Landlock limits it to exactly those.
scenarios! {
    exec_root_echo_runs_with_the_automatic_root => "exec-root-echo",
    exec_root_replaced_program_is_refused => "exec-root-replaced",
    exec_root_reads_inside_the_root_only => "exec-root-files-pair",
    exec_root_landlock_refuses_mounted_but_ungranted => "exec-root-landlock",
    exec_root_writes_only_below_a_read_write_bind => "exec-root-write-pair",
    exec_root_no_auto_root_has_no_loader => "exec-root-no-auto-root",
    exec_root_symlinked_source_is_refused => "exec-root-symlinked-source",
    exec_root_must_fail_list_kill_mode => "exec-root-must-fail-kill",
    exec_root_must_fail_list_deny_mode => "exec-root-must-fail-deny",
}
