use std::io;

use super::{cvt, cvt_int};

/// Drops one capability from the bounding set, so no later execve can ever gain it.
/// prctl(2) `PR_CAPBSET_DROP`. Preconditions: `CAP_SETPCAP` in the effective set.
pub fn drop_bounding_capability(cap: u8) -> io::Result<()> {
    // SAFETY: PR_CAPBSET_DROP takes a capability number by value; no memory is passed.
    cvt_int(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) })
        .map(drop)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Empties the effective, permitted and inheritable sets of this thread. capset(2).
/// Run it while the process is single-threaded: capabilities are per thread.
pub fn clear_all_capability_sets() -> io::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: `header` and `data` are live, correctly laid out (`_LINUX_CAPABILITY_VERSION_3`
    // takes two data elements) and outlive the call; the kernel only reads `data`.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    })
    .map(drop)
}
