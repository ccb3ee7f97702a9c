//! The broker's one way to read the time.
//!
//! Coordinators, partitions and the controller decide on the time (session
//! expiry, transaction timeouts, ISR shrink, producer-id expiry, record
//! timestamps); they read it from a [`Clock`] handed to them at open rather
//! than from the system, so a test or a simulation can hold time still and
//! move it on by hand ([`ManualClock`]). Async waits (long-poll deadlines,
//! request timeouts) are the drivers' business and run on tokio's timer,
//! which tests pause and advance with `tokio::time::pause`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time: wall-clock milliseconds for what is written down
/// (timestamps in logs and on the wire) and a monotonic instant for
/// intervals (sessions, timeouts), which must not jump when the wall clock
/// is set.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn wall_ms(&self) -> i64;
    /// A monotonic instant.
    fn now(&self) -> Instant;
}

/// The clock every component shares.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to: both readings advance together by
/// [`ManualClock::advance`], from where the system clocks stood at creation.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    start_wall_ms: i64,
    elapsed_ns: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the system's current time.
    pub fn new() -> Arc<ManualClock> {
        Self::at_wall_ms(SystemClock.wall_ms())
    }

    /// A clock whose wall reading starts at `wall_ms`.
    pub fn at_wall_ms(wall_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            start: Instant::now(),
            start_wall_ms: wall_ms,
            elapsed_ns: AtomicU64::new(0),
        })
    }

    /// Moves time on by `by`.
    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_ns.fetch_add(ns, Ordering::SeqCst);
    }

    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_ns.load(Ordering::SeqCst))
    }
}

impl Clock for ManualClock {
    fn wall_ms(&self) -> i64 {
        self.start_wall_ms + self.elapsed().as_millis() as i64
    }

    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_advanced() {
        let clock = ManualClock::at_wall_ms(1_000);
        let (t0, w0) = (clock.now(), clock.wall_ms());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!((clock.now(), clock.wall_ms()), (t0, w0));
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clock.now() - t0, Duration::from_millis(1_500));
        assert_eq!(clock.wall_ms(), 2_500);
    }

    #[test]
    fn the_system_clock_reads_the_epoch_in_milliseconds() {
        let ms = SystemClock.wall_ms();
        // After 2020-01-01 and before 2100-01-01.
        assert!((1_577_836_800_000..4_102_444_800_000).contains(&ms));
    }
}
