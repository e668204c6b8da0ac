//! The token bucket: a burst, then refusal, then refill as time advances.

use portcullis_policy::{Limits, RateLimiter};
use std::time::Duration;

fn limiter(requests_per_second: u32, burst: u32) -> RateLimiter {
    RateLimiter::new(&Limits {
        requests_per_second,
        burst,
        ..Limits::default()
    })
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn burst_then_refusal_then_refill() {
    let mut bucket = limiter(2, 3);
    let t0 = Duration::from_secs(1_000);
    for i in 0..3 {
        assert!(bucket.try_acquire(t0), "request {i} of the burst");
    }
    assert!(!bucket.try_acquire(t0), "the burst is spent");
    assert!(
        !bucket.try_acquire(t0 + ms(499)),
        "half a token is not a token"
    );
    assert!(
        bucket.try_acquire(t0 + ms(500)),
        "one token after 1/rate seconds"
    );
    assert!(!bucket.try_acquire(t0 + ms(500)));
    assert!(!bucket.try_acquire(t0 + ms(999)));
    assert!(bucket.try_acquire(t0 + ms(1_000)));
    // A long pause refills to the burst size, not beyond.
    let later = t0 + Duration::from_secs(3_600);
    let granted = (0..10).filter(|_| bucket.try_acquire(later)).count();
    assert_eq!(granted, 3);
}

#[test]
fn sustained_rate_matches_the_limit() {
    let mut bucket = limiter(100, 1);
    let mut granted = 0;
    // One attempt per millisecond for ten seconds.
    for t in 0..10_000 {
        if bucket.try_acquire(ms(t)) {
            granted += 1;
        }
    }
    assert!((1_000..=1_001).contains(&granted), "{granted}");
}

#[test]
fn time_going_backwards_adds_nothing() {
    let mut bucket = limiter(1, 1);
    assert!(bucket.try_acquire(ms(10_000)));
    assert!(!bucket.try_acquire(ms(5_000)));
    assert!(!bucket.try_acquire(ms(10_999)));
    assert!(bucket.try_acquire(ms(11_000)));
}

#[test]
fn extreme_limits_neither_overflow_nor_allow_with_zero_burst() {
    let mut none = limiter(u32::MAX, 0);
    assert!(!none.try_acquire(Duration::ZERO));
    assert!(!none.try_acquire(Duration::MAX));
    let mut huge = limiter(u32::MAX, u32::MAX);
    assert!(huge.try_acquire(Duration::ZERO));
    assert!(huge.try_acquire(Duration::MAX));
    let defaults = Limits::default();
    let mut bucket = RateLimiter::new(&defaults);
    let granted = (0..1_000)
        .filter(|_| bucket.try_acquire(Duration::ZERO))
        .count();
    assert_eq!(granted, 400);
}
