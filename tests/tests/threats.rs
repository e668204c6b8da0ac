//! Real-kernel demonstrations behind docs/THREATS.md, each in a fresh broker process
//! (`src/bin/probe/threats.rs`), in pairs.

use portcullis_tests::scenarios;

scenarios! {
    // chroot alone is not a boundary: a process with CAP_SYS_CHROOT (root, or any user in a
    // user namespace of its own) walks out of a plain chroot jail with mkdir + chroot +
    // chdir("..") and sees the host root again ...
    plain_chroot_is_escaped_by_a_privileged_process => "threat-chroot-escape",
    // ... while a Portcullis child's chroot is a seccomp violation, and from outside its root
    // and its root's parent are empty, its mount namespace holding one mount.
    portcullis_child_cannot_chroot_and_its_root_is_empty => "threat-portcullis-root",
    // LD_PRELOAD: an interposer does stop a dynamic program's libc open and socket ...
    ld_preload_interposer_stops_libc_calls_of_a_dynamic_program => "threat-ld-preload-works",
    // ... but raw syscall(2) and a static binary bypass it ...
    ld_preload_is_bypassed_by_raw_syscalls_and_static_binaries => "threat-ld-preload-bypassed",
    // ... while under Portcullis the raw openat is refused and the raw socket kills the child.
    seccomp_stops_the_raw_syscalls_that_bypass_ld_preload => "threat-seccomp-raw",
}
