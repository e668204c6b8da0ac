//! Entry functions, registered by name, and the child's life from fork to exit.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_ipc::{Channel, ChannelLimits};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::context::ChildContext;
use crate::files::ServiceClient;
use crate::lockdown::{lock_down, LockdownPlan};
use crate::protocol::{ChildToBroker, ExecArgs, StartChild, EXEC_ENTRY, MAX_PANIC_MESSAGE_BYTES};
use crate::{sys, EXIT_LOCKDOWN_FAILED};

/// Exit status of a child whose arguments did not decode as the entry's argument type.
pub const EXIT_BAD_ARGS: i32 = 125;
/// Exit status of a child asked to run an entry that is not registered.
pub const EXIT_UNKNOWN_ENTRY: i32 = 124;

/// A registered entry, with its argument and message types erased.
pub type EntryFn = Box<dyn Fn(Arc<Channel>, Arc<ServiceClient>, &[u8]) -> i32 + Send + Sync>;

/// The entry functions a zygote can start, by name. Register the same set in every process
/// of the application (the zygote is a re-exec of the same binary and looks them up by name).
#[derive(Default)]
pub struct Entries {
    map: BTreeMap<String, EntryFn>,
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries")
            .field("names", &self.map.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Entries {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `entry` under `name`. The child runs `entry(context, args)` once fully locked
    /// down; its return value is the child's exit status. `A` is the argument type the broker
    /// passes to `spawn`; `Up`/`Down` are the messages to and from the broker. A later
    /// registration of the same name replaces the earlier one.
    pub fn register<A, Up, Down>(
        mut self,
        name: &str,
        entry: fn(ChildContext<Up, Down>, A) -> i32,
    ) -> Self
    where
        A: DeserializeOwned + 'static,
        Up: Serialize + 'static,
        Down: DeserializeOwned + 'static,
    {
        let erased: EntryFn = Box::new(move |channel, service, args| {
            // Decoding runs the application's Deserialize code: only after lockdown.
            match postcard::from_bytes::<A>(args) {
                Ok(args) => entry(ChildContext::new(channel, service), args),
                Err(_) => EXIT_BAD_ARGS,
            }
        });
        self.map.insert(name.to_owned(), erased);
        self
    }

    /// True when `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The registered names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// The life of a freshly forked child: lock down, report `LockedDown`, wait for the
    /// broker's [`StartChild`], run that entry, exit. Never returns. If any lockdown step fails,
    /// the step and errno go to the broker and the child exits with [`EXIT_LOCKDOWN_FAILED`];
    /// no entry ever runs.
    ///
    /// Preconditions: called in a process just forked from the single-threaded zygote.
    pub fn run_child(&self, plan: &LockdownPlan<'_>, limits: ChannelLimits) -> ! {
        let mut channel_fd = plan.channel.as_raw_fd();
        let (listener, landlock) = match lock_down(plan, &mut channel_fd) {
            Ok(done) => (done.listener, done.landlock),
            Err(err) => {
                // The plan's fds are the zygote's; this copy of the process only borrows the one
                // the channel sits at now, to say why it gives up.
                let channel = Channel::from_fd(sys::owned_fd(channel_fd), limits);
                let failed = ChildToBroker::<()>::LockdownFailed {
                    step: err.step,
                    errno: err.errno,
                };
                let _ = channel.send(&failed, &[], Some(Instant::now() + Duration::from_secs(1)));
                sys::exit_now(EXIT_LOCKDOWN_FAILED);
            }
        };
        let channel = Arc::new(Channel::from_fd(sys::owned_fd(crate::CHANNEL_FD), limits));
        install_panic_reporter(Arc::clone(&channel));
        // The broker supervises this child's violations from outside, on the seccomp listener:
        // it takes its own copy by fd number (pidfd_getfd) before it sends the start message.
        let locked_down = ChildToBroker::<()>::LockedDown {
            listener: listener.as_raw_fd(),
            landlock,
        };
        if channel.send(&locked_down, &[], None).is_err() {
            sys::exit_now(EXIT_LOCKDOWN_FAILED);
        }
        let Ok((start, fds)) = channel.recv::<StartChild>(None) else {
            // The broker went away (or never needed this pre-forked child).
            sys::exit_now(0);
        };
        // The broker holds the listener now. This process keeps no copy: its filter denies the
        // ioctls that answer notifications anyway, but an fd it cannot use is one it need not
        // have.
        drop(listener);
        if start.entry == EXEC_ENTRY {
            exec_program(&start.args, fds);
        }
        let Some(entry) = self.map.get(&start.entry) else {
            sys::exit_now(EXIT_UNKNOWN_ENTRY);
        };
        drop(fds);
        // The broker's thread for this child hands it a mailbox when it first asks.
        let service = Arc::new(ServiceClient::new(
            Channel::from_fd(sys::owned_fd(crate::SERVICE_FD), limits),
            true,
        ));
        let status = entry(channel, service, &start.args);
        sys::exit_now(status)
    }
}

/// Exit status of an exec-mode child whose program could not be executed (as a shell's 127).
pub const EXIT_EXEC_FAILED: i32 = 127;

/// Exec mode: the locked-down child becomes the program the broker opened. Its stdin, stdout and
/// stderr are the fds that came with the start message; its channels are closed by the exec;
/// the seccomp filter, namespaces, limits and parent-death signal stay. Never returns.
fn exec_program(args: &[u8], fds: Vec<std::os::fd::OwnedFd>) -> ! {
    let Ok(args) = postcard::from_bytes::<ExecArgs>(args) else {
        sys::exit_now(EXIT_BAD_ARGS);
    };
    let to_c = |v: Vec<Vec<u8>>| -> Option<Vec<std::ffi::CString>> {
        v.into_iter()
            .map(|s| std::ffi::CString::new(s).ok())
            .collect()
    };
    let keep_channels = args.keep_channels;
    let extra = usize::try_from(args.extra_fds).unwrap_or(usize::MAX);
    let (Some(argv), Some(env), [program, stdin, stdout, stderr, extras @ ..]) =
        (to_c(args.argv), to_c(args.env), &fds[..])
    else {
        sys::exit_now(EXIT_BAD_ARGS);
    };
    if extras.len() != extra || (keep_channels && extra > 0) {
        sys::exit_now(EXIT_BAD_ARGS);
    }
    for (fd, target) in [(stdin, 0), (stdout, 1), (stderr, 2)] {
        if sys::dup_fd_onto(fd.as_raw_fd(), target).is_err() {
            sys::exit_now(EXIT_EXEC_FAILED);
        }
    }
    // The extra fds become 3, 4, ...: first each is copied above every target (a received fd,
    // the program's among them, may sit on one), then onto its target, without close-on-exec.
    let above_targets = crate::CHANNEL_FD + i32::try_from(extras.len()).unwrap_or(i32::MAX);
    let program = match sys::dup_fd_above_cloexec(program.as_raw_fd(), above_targets) {
        Ok(copy) => sys::owned_fd(copy),
        Err(_) => sys::exit_now(EXIT_EXEC_FAILED),
    };
    let mut parked = Vec::with_capacity(extras.len());
    for fd in extras {
        match sys::dup_fd_above_cloexec(fd.as_raw_fd(), above_targets) {
            Ok(copy) => parked.push(copy),
            Err(_) => sys::exit_now(EXIT_EXEC_FAILED),
        }
    }
    for (target, &copy) in (crate::CHANNEL_FD..).zip(&parked) {
        if sys::dup_fd_onto(copy, target).is_err() {
            sys::exit_now(EXIT_EXEC_FAILED);
        }
    }
    // The channels reach the program only when the broker asked for it (a plugin that speaks
    // the protocol); otherwise they close at the exec, unless an extra fd took their place.
    for fd in [crate::CHANNEL_FD, crate::SERVICE_FD]
        .into_iter()
        .skip(parked.len())
    {
        let set = if keep_channels {
            sys::clear_cloexec(fd)
        } else {
            sys::set_cloexec(fd)
        };
        if set.is_err() {
            sys::exit_now(EXIT_EXEC_FAILED);
        }
    }
    let _ = sys::exec_fd(program.as_fd(), &argv, &env);
    sys::exit_now(EXIT_EXEC_FAILED)
}

/// A panic on any thread of a child crashes the whole child (SIGILL), after telling the broker
/// the message. The broker reports it as a crash, not as a seccomp violation, and the message
/// stays marked as the child's own word.
fn install_panic_reporter(channel: Arc<Channel>) {
    std::panic::set_hook(Box::new(move |info| {
        let mut message = info.to_string();
        if message.len() > MAX_PANIC_MESSAGE_BYTES {
            let mut cut = MAX_PANIC_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let deadline = Some(Instant::now() + Duration::from_millis(200));
        let _ = channel.send(&ChildToBroker::<()>::Panicked { message }, &[], deadline);
        sys::crash_now();
    }));
}
