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
