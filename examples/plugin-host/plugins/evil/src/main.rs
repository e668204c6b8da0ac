//! The evil plugin: told to escape, it tries everything below, one after the other, and says
//! what it saw. Its word proves nothing: the host counts an attempt as blocked only when the
//! broker reported it from outside (a named seccomp violation, a denied request in the audit
//! log, or the end the kernel gave it). Its host runs it with `on_violation = "deny"`, so it
//! lives through the system calls and reaches the last attempt: exhausting its memory.

use std::io::Read;

use portcullis_child::OpenOptions;
use portcullis_plugin_api::{connect, HostToPlugin, Plugin, PluginToHost};

fn main() {
    let Ok(plugin) = connect() else {
        std::process::exit(2);
    };
    let Ok(HostToPlugin::Escape { host_pid, grant }) = plugin.recv() else {
        std::process::exit(3);
    };
    // The pair: what the profile grants works.
    let mut granted = String::new();
    let read = plugin
        .open(&grant, &OpenOptions::new().read(true))
        .and_then(|mut f| f.read_to_string(&mut granted));
    report(&plugin, "read its granted file", format!("{read:?}"));

    let host = libc::pid_t::try_from(host_pid).unwrap_or(1);
    let outside = format!("/tmp/portcullis-evil-{host_pid}");
    let attempts: [(&str, &dyn Fn() -> String); 15] = [
        ("read a host file (broker)", &|| {
            format!(
                "{:?}",
                plugin
                    .open("/etc/passwd", &OpenOptions::new().read(true))
                    .map(drop)
            )
        }),
        ("write outside its grant (broker)", &|| {
            let create = OpenOptions::new().write(true).create(true);
            format!("{:?}", plugin.open(&outside, &create).map(drop))
        }),
        ("write its read-only grant (broker)", &|| {
            format!(
                "{:?}",
                plugin
                    .open(&grant, &OpenOptions::new().write(true))
                    .map(drop)
            )
        }),
        ("connect to loopback (broker)", &|| {
            format!("{:?}", plugin.connect("127.0.0.1", 22).map(drop))
        }),
        ("open a socket", &|| errno(unsafe_call(Call::Socket))),
        ("fork", &|| errno(unsafe_call(Call::Fork))),
        ("exec a shell", &|| errno(unsafe_call(Call::Exec))),
        ("ptrace the host", &|| {
            errno(unsafe_call(Call::Ptrace(host)))
        }),
        ("signal the host", &|| errno(unsafe_call(Call::Kill(host)))),
        ("renice the host", &|| {
            errno(unsafe_call(Call::Renice(host)))
        }),
        ("unshare a user namespace", &|| {
            errno(unsafe_call(Call::Unshare))
        }),
        ("mount", &|| errno(unsafe_call(Call::Mount))),
        ("io_uring", &|| errno(unsafe_call(Call::IoUring))),
        ("load a BPF program", &|| errno(unsafe_call(Call::Bpf))),
        ("join another namespace", &|| {
            errno(unsafe_call(Call::Setns))
        }),
    ];
    for (name, attempt) in attempts {
        let outcome = attempt();
        report(&plugin, name, outcome);
    }
    if plugin.send(&PluginToHost::Done).is_err() {
        std::process::exit(1);
    }
    // Last: exhaust memory, 1 MiB at a time, touching every page.
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![0xa5; 1 << 20]);
    }
}

fn report(plugin: &Plugin, name: &str, outcome: String) {
    let tried = PluginToHost::Tried {
        name: name.to_owned(),
        outcome,
    };
    if plugin.send(&tried).is_err() {
        std::process::exit(1);
    }
}

/// A raw system call the plugin tries.
enum Call {
    Socket,
    Fork,
    Exec,
    Ptrace(libc::pid_t),
    Kill(libc::pid_t),
    Renice(libc::pid_t),
    Unshare,
    Mount,
    IoUring,
    Bpf,
    Setns,
}

/// Makes the call; its return value (−1 with errno when refused).
fn unsafe_call(call: Call) -> libc::c_long {
    // SAFETY: each call gets integer arguments, null pointers or pointers to live constants; a
    // call that the sandbox let through would act only on this process (fork: the child exits
    // at once; exec: argv is a valid NULL-terminated array of C strings).
    unsafe {
        match call {
            Call::Socket => libc::c_long::from(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0)),
            Call::Fork => {
                let pid = libc::fork();
                if pid == 0 {
                    libc::_exit(0);
                }
                libc::c_long::from(pid)
            }
            Call::Exec => {
                let argv = [c"/bin/sh".as_ptr(), std::ptr::null()];
                libc::c_long::from(libc::execv(c"/bin/sh".as_ptr(), argv.as_ptr()))
            }
            Call::Ptrace(pid) => libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0),
            Call::Kill(pid) => libc::c_long::from(libc::kill(pid, libc::SIGTERM)),
            Call::Renice(pid) => libc::c_long::from(libc::setpriority(
                libc::PRIO_PROCESS,
                libc::id_t::try_from(pid).unwrap_or(0),
                19,
            )),
            Call::Unshare => libc::c_long::from(libc::unshare(libc::CLONE_NEWUSER)),
            Call::Mount => libc::c_long::from(libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )),
            Call::IoUring => libc::syscall(libc::SYS_io_uring_setup, 8, std::ptr::null_mut::<u8>()),
            Call::Bpf => libc::syscall(libc::SYS_bpf, 0, std::ptr::null_mut::<u8>(), 0),
            Call::Setns => libc::c_long::from(libc::setns(0, libc::CLONE_NEWNET)),
        }
    }
}

fn errno(ret: libc::c_long) -> String {
    if ret < 0 {
        format!("refused: {}", std::io::Error::last_os_error())
    } else {
        format!("returned {ret}")
    }
}
