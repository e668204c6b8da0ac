//! Waiting with an optional deadline: for a socket to become ready, and for a channel lock.

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

/// The deadline passed before the wait was over.
#[derive(Debug)]
pub(crate) struct DeadlinePassed;

/// Why a wait ended without the thing waited for.
#[derive(Debug)]
pub(crate) enum WaitError {
    /// The deadline passed.
    TimedOut,
    /// `poll(2)` failed.
    Io(io::Error),
}

/// Waits until `fd` reports any of `events` (or an error/hang-up, which the caller's next
/// syscall will report), or until `deadline` passes. `None` waits without limit. Loops on
/// `EINTR`, and re-polls if woken before the deadline with nothing ready. poll(2)
pub(crate) fn wait_ready(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Option<Instant>,
) -> Result<(), WaitError> {
    loop {
        let timeout = match deadline {
            None => None,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(WaitError::TimedOut);
                }
                Some(timespec(left))
            }
        };
        let mut fds = [PollFd::from_borrowed_fd(fd, events)];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) => continue,
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(WaitError::Io(errno.into())),
        }
    }
}

/// Whether the peer has closed or shut down its sending side, without waiting. poll(2)
pub(crate) fn peer_hung_up(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::RDHUP)];
        match poll(&mut fds, Some(&now)) {
            Ok(_) => {
                return Ok(fds[0]
                    .revents()
                    .intersects(PollFlags::HUP | PollFlags::RDHUP))
            }
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// `left` as a poll timeout; a span too long to represent waits a day and re-polls.
fn timespec(left: Duration) -> Timespec {
    const LONGEST: Duration = Duration::from_secs(24 * 60 * 60);
    Timespec::try_from(left.min(LONGEST)).unwrap_or(Timespec {
        tv_sec: 24 * 60 * 60,
        tv_nsec: 0,
    })
}

/// Locks `mutex`, giving up once `deadline` passes. A poisoned lock is recovered, never a
/// panic: its data is passed once to `on_poison` so the caller can reset state a panicking
/// holder may have left half updated, and the poison flag is cleared.
///
/// `std::sync::Mutex` has no timed lock, so with a deadline this retries `try_lock` with sleeps
/// growing from 50 µs to 1 ms; the sleep never runs past the deadline.
pub(crate) fn lock_until<'a, T>(
    mutex: &'a Mutex<T>,
    deadline: Option<Instant>,
    on_poison: impl FnOnce(&mut T),
) -> Result<MutexGuard<'a, T>, DeadlinePassed> {
    const FIRST_NAP: Duration = Duration::from_micros(50);
    const LONGEST_NAP: Duration = Duration::from_millis(1);

    let Some(deadline) = deadline else {
        return Ok(mutex
            .lock()
            .unwrap_or_else(|poisoned| recover(mutex, poisoned, on_poison)));
    };
    let mut nap = FIRST_NAP;
    loop {
        match mutex.try_lock() {
            Ok(guard) => return Ok(guard),
            Err(TryLockError::Poisoned(poisoned)) => {
                return Ok(recover(mutex, poisoned, on_poison))
            }
            Err(TryLockError::WouldBlock) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(DeadlinePassed);
                }
                std::thread::sleep(nap.min(left));
                nap = (nap * 2).min(LONGEST_NAP);
            }
        }
    }
}

/// Locks `mutex` only if it is free right now; poison is handled as by [`lock_until`].
pub(crate) fn try_lock<'a, T>(
    mutex: &'a Mutex<T>,
    on_poison: impl FnOnce(&mut T),
) -> Result<MutexGuard<'a, T>, DeadlinePassed> {
    match mutex.try_lock() {
        Ok(guard) => Ok(guard),
        Err(TryLockError::Poisoned(poisoned)) => Ok(recover(mutex, poisoned, on_poison)),
        Err(TryLockError::WouldBlock) => Err(DeadlinePassed),
    }
}

/// Takes the guard out of a poisoned lock, lets `on_poison` repair the data, clears the flag.
fn recover<'a, T>(
    mutex: &'a Mutex<T>,
    poisoned: PoisonError<MutexGuard<'a, T>>,
    on_poison: impl FnOnce(&mut T),
) -> MutexGuard<'a, T> {
    let mut guard = poisoned.into_inner();
    on_poison(&mut guard);
    mutex.clear_poison();
    guard
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lock_until_gives_up_after_the_deadline() {
        let mutex = Mutex::new(0_u8);
        let _held = mutex.lock().unwrap();
        let deadline = Instant::now() + Duration::from_millis(5);
        assert!(lock_until(&mutex, Some(deadline), |_| {}).is_err());
    }

    #[test]
    fn lock_until_recovers_a_poisoned_lock() {
        let mutex = Arc::new(Mutex::new(1_u8));
        let holder = Arc::clone(&mutex);
        let _ = std::thread::spawn(move || {
            let _guard = holder.lock().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert!(mutex.is_poisoned());
        let guard = lock_until(&mutex, None, |value| *value = 2).unwrap();
        assert_eq!(*guard, 2);
        drop(guard);
        assert!(!mutex.is_poisoned());
        let deadline = Some(Instant::now() + Duration::from_secs(5));
        let guard = lock_until(&mutex, deadline, |value| *value = 3).unwrap();
        assert_eq!(*guard, 2, "a recovered lock is not repaired twice");
    }

    #[test]
    fn huge_timeouts_are_clamped() {
        assert_eq!(timespec(Duration::MAX).tv_sec, 24 * 60 * 60);
        assert_eq!(timespec(Duration::from_millis(1500)).tv_nsec, 500_000_000);
    }
}
