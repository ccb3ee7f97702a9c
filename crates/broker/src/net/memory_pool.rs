//! A broker-wide bound on the bytes held for requests (Kafka's
//! `queued.max.request.bytes` memory pool) and, with a second pool, on the
//! bytes of responses waiting for clients that do not read them.
//!
//! A connection reserves a frame's size after reading its length prefix and
//! before reading its body; the reservation is given back when the request
//! has been handled and its response written. When the pool is used up a
//! connection waits before reading the body: its client's bytes wait in the
//! kernel's socket buffer and TCP slows the client down (back-pressure, not
//! an error).
//!
//! Three tiers keep small requests flowing while large frames wait:
//! - a small frame (at most [`SMALL_FRAME`], which is every ApiVersions,
//!   Metadata, Fetch or offset request a client sends) is granted whenever
//!   any memory is left, as in Kafka's non-strict `SimpleMemoryPool`;
//! - a larger frame only while the pool stays at most three quarters used,
//!   or when nothing at all is reserved (so a frame larger than the whole
//!   pool can still be read): clients stalling large partial frames cannot
//!   take the last quarter, and a fresh client still gets in;
//! - buffers a connection keeps between requests for reuse (see
//!   `strom_protocol::FrameReader`) only while the pool stays at most half
//!   used ([`MemoryPool::try_keep`]); a connection gives them up otherwise.
//!
//! So the bytes held never exceed the pool's size plus one frame of
//! `socket.request.max.bytes`.
//!
//! The accounting is a pure [`PoolState`]; [`MemoryPool`] adds waiting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Frames up to this size are "small": they may use the last quarter of
/// the pool.
pub const SMALL_FRAME: u64 = 64 * 1024;

/// The pool's bookkeeping, without waiting or time: what `used` may become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolState {
    /// Bytes the pool may lend out (a reservation may overshoot it once).
    size: u64,
    /// Bytes lent out now.
    used: u64,
}

impl PoolState {
    /// An empty pool of `size` bytes.
    pub fn new(size: u64) -> PoolState {
        PoolState { size, used: 0 }
    }

    /// Lends `n` bytes for a frame: a small one while any of the pool is
    /// left, a larger one while the pool stays at most three quarters used
    /// or when nothing is lent at all.
    pub fn try_take(&mut self, n: u64) -> bool {
        if n == 0 {
            return true;
        }
        let fits = if n <= SMALL_FRAME {
            self.used < self.size
        } else {
            self.used == 0 || self.used.saturating_add(n) <= self.size / 4 * 3
        };
        if fits {
            self.used += n;
        }
        fits
    }

    /// Counts `n` bytes that are already in memory (a response being
    /// written), whatever the pool holds.
    pub fn take_anyway(&mut self, n: u64) {
        self.used = self.used.saturating_add(n);
    }

    /// Lends `n` bytes only if the pool stays at most half used: for memory
    /// a connection merely keeps (it can always give it up instead).
    pub fn try_take_half(&mut self, n: u64) -> bool {
        if self.used.saturating_add(n) > self.size / 2 {
            return false;
        }
        self.used += n;
        true
    }

    /// Takes back `n` bytes lent earlier.
    pub fn give(&mut self, n: u64) {
        self.used = self.used.saturating_sub(n);
    }

    /// Bytes lent out.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The pool's size.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// A shared pool connections reserve bytes from.
#[derive(Debug)]
pub struct MemoryPool {
    state: Mutex<PoolState>,
    /// Whether more is counted than the pool holds, readable without the
    /// lock (checked before every request).
    over: AtomicBool,
    /// Wakes connections waiting for memory when some is given back.
    freed: Notify,
}

impl MemoryPool {
    /// A pool of `size` bytes.
    pub fn new(size: u64) -> Arc<MemoryPool> {
        Arc::new(MemoryPool {
            state: Mutex::new(PoolState::new(size)),
            over: AtomicBool::new(false),
            freed: Notify::new(),
        })
    }

    /// Reserves `n` bytes, waiting while the pool is used up.
    pub async fn reserve(self: &Arc<Self>, n: u64) -> Reservation {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a release in between wakes us.
            freed.as_mut().enable();
            if let Some(r) = self.try_reserve(n) {
                return r;
            }
            freed.await;
        }
    }

    /// Reserves `n` bytes if the pool is not used up, without waiting.
    pub fn try_reserve(self: &Arc<Self>, n: u64) -> Option<Reservation> {
        let mut s = self.state.lock();
        let taken = s.try_take(n);
        self.over.store(s.used() > s.size(), Ordering::Relaxed);
        drop(s);
        taken.then(|| Reservation {
            pool: self.clone(),
            bytes: n,
        })
    }

    /// Reserves `n` bytes a connection wants to keep between requests, only
    /// if the pool stays at most half used.
    pub fn try_keep(self: &Arc<Self>, n: u64) -> Option<Reservation> {
        self.state.lock().try_take_half(n).then(|| Reservation {
            pool: self.clone(),
            bytes: n,
        })
    }

    /// Counts `n` bytes already in memory, whatever the pool holds.
    pub fn account(self: &Arc<Self>, n: u64) -> Reservation {
        let mut s = self.state.lock();
        s.take_anyway(n);
        self.over.store(s.used() > s.size(), Ordering::Relaxed);
        drop(s);
        Reservation {
            pool: self.clone(),
            bytes: n,
        }
    }

    /// Whether more is counted than the pool holds.
    pub fn over(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// Waits until no more is counted than the pool holds.
    pub async fn wait_until_under(&self) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if !self.over() {
                return;
            }
            freed.await;
        }
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.state.lock().used()
    }

    /// The pool's size.
    pub fn size(&self) -> u64 {
        self.state.lock().size()
    }

    /// Whether more is reserved than the pool holds (only the last
    /// reservation granted can have taken it past its size).
    pub fn exhausted(&self) -> bool {
        let s = self.state.lock();
        s.used() >= s.size()
    }

    fn give(&self, n: u64) {
        if n == 0 {
            return;
        }
        let mut s = self.state.lock();
        s.give(n);
        self.over.store(s.used() > s.size(), Ordering::Relaxed);
        drop(s);
        self.freed.notify_waiters();
    }
}

/// Bytes reserved from a [`MemoryPool`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    pool: Arc<MemoryPool>,
    bytes: u64,
}

impl Reservation {
    /// Bytes this reservation holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.pool.give(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frames_may_use_the_whole_pool_and_overshoot_it_once() {
        let mut p = PoolState::new(400 * 1024);
        let mut granted = 0;
        while p.try_take(SMALL_FRAME) {
            granted += 1;
        }
        assert_eq!(granted, 7, "400 KiB lends seven 64 KiB frames (non-strict)");
        assert!(p.used() >= p.size() && p.used() < p.size() + SMALL_FRAME);
        assert!(
            !p.try_take(1),
            "used up: nothing more until bytes come back"
        );
        p.give(u64::MAX);
        assert_eq!(p.used(), 0, "over-giving never underflows");
        assert!(p.try_take(0));
    }

    #[test]
    fn large_frames_leave_the_last_quarter_to_small_ones() {
        let mib = 1 << 20;
        let mut p = PoolState::new(100 * mib);
        for _ in 0..7 {
            assert!(p.try_take(10 * mib));
        }
        assert!(!p.try_take(10 * mib), "80 MiB would pass three quarters");
        assert!(p.try_take(5 * mib), "75 MiB is three quarters exactly");
        assert!(!p.try_take(SMALL_FRAME + 1));
        for _ in 0..400 {
            assert!(p.try_take(SMALL_FRAME), "small frames get the last quarter");
        }
        assert!(!p.try_take(SMALL_FRAME));
        assert!(p.used() <= p.size() + SMALL_FRAME);
        p.give(u64::MAX);
        assert!(
            p.try_take(500 * mib),
            "a frame larger than an idle pool is read"
        );
        assert!(!p.try_take(mib));
        assert!(p.try_take(SMALL_FRAME) == (p.used() < p.size()));
    }

    #[test]
    fn kept_buffers_never_take_the_pool_past_half() {
        let mut p = PoolState::new(1 << 20);
        assert!(p.try_take_half(1 << 19));
        assert!(!p.try_take_half(1));
        p.give(u64::MAX);
        assert!(p.try_take(600 << 10));
        assert!(!p.try_take_half(1), "frames in flight use more than half");
        assert!(p.try_take(10), "frames still get the rest");
        p.take_anyway(1 << 30);
        assert!(!p.try_take(1));
    }

    #[tokio::test]
    async fn a_reservation_waits_for_memory_and_gets_it_when_given_back() {
        let pool = MemoryPool::new(10);
        let first = pool.reserve(10).await;
        assert!(!pool.over());
        assert!(pool.exhausted());
        assert!(pool.try_reserve(1).is_none());
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.reserve(5).await.bytes() })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "waits while the pool is used up");
        drop(first);
        assert_eq!(waiter.await.expect("waiter"), 5);
        assert_eq!(pool.used(), 0, "the waiter's reservation was dropped");
        let kept = pool.try_keep(5).expect("half is free");
        assert!(pool.try_keep(1).is_none());
        drop(kept);
        let counted = pool.account(100);
        assert!(pool.over());
        let under = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.wait_until_under().await })
        };
        tokio::task::yield_now().await;
        assert!(
            !under.is_finished(),
            "waits while more is counted than the pool holds"
        );
        drop(counted);
        under.await.expect("woken when the bytes are given back");
        assert_eq!(pool.used(), 0);
    }
}
