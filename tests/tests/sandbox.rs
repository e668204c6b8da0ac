//! Real-kernel tests of the core sandbox. Each test runs one scenario of the probe broker in a
//! fresh process (see `src/lib.rs` for why) and pairs a must-fail with a must-work.

use portcullis_tests::scenarios;

scenarios! {
    // Filesystem: no file can be opened or listed or created; a file whose fd the broker
    // passed can be read.
    denied_read_etc_passwd => "read-etc-passwd",
    denied_list_root => "list-root",
    denied_create_file => "create-file",
    allowed_read_passed_fd => "read-passed-fd",
    // Brokered files: the traversal battery (denied/allowed pairs), the symlink-swap race,
    // and one audit record per request.
    files_traversal_battery => "files-traversal",
    files_symlink_swap_race => "files-race",
    files_audit_records => "files-audit",
    // The JSON-lines sinks: one line per request with every documented field, a denial one
    // record, a hostile target escaped and bounded, a non-UTF-8 path never a record.
    audit_file_sink_one_json_line_per_request => "audit-file-sink",
    audit_stderr_sink_one_json_line_per_request => "audit-stderr-sink",
    files_rate_limit_and_fairness => "files-rate-limit",
    // A child whose fd table is full: a brokered open fails with EMFILE, and after it closes
    // one fd the next open works on the same, still in-step service channel.
    files_full_fd_table_open_is_emfile => "files-fd-table-full",
    files_full_fd_table_recovers_after_close => "files-fd-table-recovers",
    // Ten listings larger than the socket while another thread signals the listing thread
    // every few microseconds: all complete (a doorbell the broker has read waits killably).
    files_read_dir_under_signals_completes => "files-read-dir-under-signals",
    // Brokered network on loopback: allowed host:port and name resolution; other port, other
    // host, private address denied.
    net_connect_on_loopback => "net-connect",
    net_fetch_on_loopback => "net-fetch",
    net_fetch_https_verifies_the_certificate => "net-fetch-https",
    // Network requests have their own bounded pool: fetches hanging on a server that never
    // answers leave file serving free for a bystander; with the pool and its queue full,
    // one more fetch is answered `busy` at once.
    net_slow_fetch_leaves_file_serving_free => "net-slow-fetch",
    net_network_queue_full_is_busy => "net-queue-full",
    // A mailbox ring while a network worker holds the child's turn is answered EBUSY, not
    // served; after the fetch the same request is served (denied: no grant).
    net_mailbox_ring_is_busy_while_a_fetch_holds_the_turn => "net-mailbox-busy",
    // Network: no socket of any family.
    denied_socket_inet => "socket-inet",
    denied_socket_netlink => "socket-netlink",
    // Other processes: invisible (PID 1 of its own namespace), cannot be signalled, traced or
    // reprioritised; signalling its own thread works.
    allowed_own_pid_is_1 => "own-pid-is-1",
    denied_kill_broker => "kill-broker",
    denied_signal_zygote => "signal-zygote",
    allowed_signal_own_thread => "signal-own-thread",
    denied_ptrace_broker => "ptrace-broker",
    denied_ptrace_zygote => "ptrace-zygote",
    denied_setpriority_broker => "setpriority-broker",
    // Host state and kernel attack surface.
    denied_sethostname => "sethostname",
    denied_mount => "mount",
    denied_unshare_user => "unshare-user",
    denied_clone3_namespaces => "clone3-namespaces",
    denied_io_uring_setup => "io-uring-setup",
    denied_bpf => "bpf",
    denied_keyctl => "keyctl",
    denied_x32_syscall => "x32-syscall",
    denied_ioctl_tiocsti => "ioctl-tiocsti",
    denied_execve => "execve",
    // Processes: no fork, but threads work.
    denied_fork => "fork",
    allowed_spawn_join_thread => "spawn-join-thread",
    // Ordinary Rust works.
    allowed_allocate_64mib => "allocate-64mib",
    allowed_sleep => "sleep",
    allowed_available_parallelism => "available-parallelism",
    allowed_is_terminal_probe => "is-terminal",
    crash_panic_is_reported_as_crash => "panic-is-crash",
    // The channel.
    echo_1_byte => "echo-1-byte",
    echo_1_mib => "echo-1-mib",
    // From outside.
    outside_status_namespaces_root_fds => "status-from-outside",
    // The broker.
    broker_concurrent_spawns => "concurrent-spawns",
    broker_unknown_entry => "unknown-entry",
    broker_lockdown_failure_is_typed => "lockdown-failure-is-typed",
    broker_kill_and_wait => "kill-and-wait",
    broker_wait_from_two_threads => "wait-from-two-threads",
    broker_messages_kept_across_panic => "messages-kept-across-panic",
    hostile_recv_ends_when_child_holds_its_channel => "recv-ends-when-child-holds-its-channel",
    // Hostile channel: each ends only itself.
    hostile_garbage => "hostile-garbage",
    hostile_tebibyte_length => "hostile-tebibyte-length",
    hostile_64_fds => "hostile-64-fds",
    hostile_die_mid_message => "hostile-die-mid-message",
}
