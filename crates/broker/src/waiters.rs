//! Per-partition waiters for long-polling fetches: an append wakes the
//! fetches waiting on that partition and no others (Kafka's fetch purgatory
//! keyed by partition), instead of every waiting fetch on the broker.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The fetches waiting for one partition to grow.
#[derive(Debug, Default)]
pub struct Waiters {
    list: Mutex<Vec<Weak<Notify>>>,
}

impl Waiters {
    /// Registers `waiter` to be notified by the next [`Waiters::wake`].
    /// Registering before reading means an append after the read is never
    /// missed: `Notify` keeps the permit until the fetch waits.
    pub fn register(&self, waiter: &Arc<Notify>) {
        let mut list = self.list.lock();
        // Fetches that timed out leave dead entries on idle partitions:
        // sweep them whenever the list doubles, so it stays bounded by the
        // fetches really waiting.
        if list.len() >= 16 && list.len().is_power_of_two() {
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(Arc::downgrade(waiter));
    }

    /// Wakes every fetch registered since the last wake.
    pub fn wake(&self) {
        let list = {
            let mut list = self.list.lock();
            if list.is_empty() {
                return;
            }
            std::mem::take(&mut *list)
        };
        for w in list {
            if let Some(n) = w.upgrade() {
                n.notify_one();
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.list.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_after_registering_is_not_missed() {
        let w = Waiters::default();
        let n = Arc::new(Notify::new());
        w.register(&n);
        w.wake();
        // The permit waits for us.
        tokio::time::timeout(std::time::Duration::from_secs(5), n.notified())
            .await
            .expect("woken");
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn dead_waiters_are_swept() {
        let w = Waiters::default();
        let live = Arc::new(Notify::new());
        w.register(&live);
        for _ in 0..10_000 {
            w.register(&Arc::new(Notify::new()));
        }
        assert!(w.len() < 64, "{}", w.len());
    }
}
