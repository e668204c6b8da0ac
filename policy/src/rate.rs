//! A per-child token bucket for broker requests.

use crate::profile::Limits;
use std::time::Duration;

/// Units one token is divided into: with a refill of `requests_per_second` tokens per second,
/// the bucket gains exactly `requests_per_second` units per nanosecond, so integer arithmetic
/// loses nothing.
const UNITS_PER_TOKEN: u128 = 1_000_000_000;

/// Per-child token bucket (the broker keeps one per child). Pure: the caller passes the time.
///
/// The bucket holds up to `burst` tokens, starts full, and refills at `requests_per_second`
/// tokens per second. Each request takes one token; with none left it is refused, and the
/// broker answers [`DenyReason::RateLimited`](crate::DenyReason::RateLimited).
///
/// ```
/// use portcullis_policy::{Limits, RateLimiter};
/// use std::time::Duration;
/// let limits = Limits { requests_per_second: 10, burst: 2, ..Limits::default() };
/// let mut bucket = RateLimiter::new(&limits);
/// let t0 = Duration::from_secs(100);
/// assert!(bucket.try_acquire(t0));
/// assert!(bucket.try_acquire(t0));
/// assert!(!bucket.try_acquire(t0));
/// assert!(bucket.try_acquire(t0 + Duration::from_millis(100)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimiter {
    /// Units gained per nanosecond (= tokens per second).
    refill_per_nanosecond: u128,
    /// Bucket size in units.
    capacity: u128,
    /// Units in the bucket at `last`.
    units: u128,
    /// Time of the latest refill; `None` before the first request.
    last: Option<Duration>,
}

impl RateLimiter {
    /// A full bucket sized by `limits.burst`, refilled at `limits.requests_per_second`.
    /// A `burst` of 0 refuses every request.
    pub fn new(limits: &Limits) -> Self {
        let capacity = u128::from(limits.burst) * UNITS_PER_TOKEN;
        RateLimiter {
            refill_per_nanosecond: u128::from(limits.requests_per_second),
            capacity,
            units: capacity,
            last: None,
        }
    }

    /// Takes one token if there is one. `now` is a monotonic time since any fixed point, the
    /// same point for every call; a `now` earlier than a previous one adds no tokens.
    pub fn try_acquire(&mut self, now: Duration) -> bool {
        match self.last {
            Some(last) if now > last => {
                let gained = (now - last)
                    .as_nanos()
                    .saturating_mul(self.refill_per_nanosecond);
                self.units = self.units.saturating_add(gained).min(self.capacity);
                self.last = Some(now);
            }
            Some(_) => {}
            None => self.last = Some(now),
        }
        if self.units >= UNITS_PER_TOKEN {
            self.units -= UNITS_PER_TOKEN;
            true
        } else {
            false
        }
    }
}
