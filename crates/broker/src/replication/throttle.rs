//! Replication throttles, as Kafka's replication quotas: a byte rate over
//! sampled windows (`replication.quota.window.num` windows of
//! `replication.quota.window.size.seconds`), one on the leader side for
//! what it sends followers (`leader.replication.throttled.rate`) and one
//! on the follower side for what it fetches
//! (`follower.replication.throttled.rate`). Only the replicas a topic
//! names in `leader.replication.throttled.replicas` /
//! `follower.replication.throttled.replicas` are throttled, and only while
//! the follower is out of the ISR: a reassignment's new replicas copy at
//! the set rate while in-sync followers keep up at full speed. Time is
//! passed in.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::SharedClock;
use crate::config::BrokerConfig;
use crate::metadata::NodeId;

/// Bytes per second, measured over the last `windows` windows.
#[derive(Debug)]
pub struct ByteRate {
    window_ms: u64,
    windows: usize,
    /// (window start, bytes in it), oldest first.
    samples: Mutex<VecDeque<(u64, u64)>>,
}

impl ByteRate {
    /// A rate over `windows` windows of `window_ms` each.
    pub fn new(windows: usize, window_ms: u64) -> ByteRate {
        ByteRate {
            window_ms: window_ms.max(1),
            windows: windows.max(1),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// A throttle's meter as `replication.quota.window.num` and
    /// `replication.quota.window.size.seconds` set it.
    pub fn from_config(config: &BrokerConfig) -> ByteRate {
        let windows = config.get_i64("replication.quota.window.num", 11).max(1) as usize;
        let seconds = config
            .get_i64("replication.quota.window.size.seconds", 1)
            .max(1) as u64;
        ByteRate::new(windows, seconds * 1000)
    }

    /// Counts `bytes` moved at `now_ms`.
    pub fn record(&self, bytes: u64, now_ms: u64) {
        let mut s = self.samples.lock();
        self.expire(&mut s, now_ms);
        match s.back_mut() {
            Some((start, b)) if now_ms < *start + self.window_ms => *b += bytes,
            _ => s.push_back((now_ms - now_ms % self.window_ms, bytes)),
        }
    }

    /// Bytes per second at `now_ms`. As Kafka's `Rate`, the time measured
    /// over is at least all windows but the current one, so a first burst
    /// is not read as an enormous rate.
    pub fn rate(&self, now_ms: u64) -> f64 {
        let mut s = self.samples.lock();
        self.expire(&mut s, now_ms);
        let Some((oldest, _)) = s.front() else {
            return 0.0;
        };
        let total: u64 = s.iter().map(|(_, b)| b).sum();
        let floor = (self.windows as u64 - 1) * self.window_ms;
        let elapsed = (now_ms.saturating_sub(*oldest)).max(floor).max(1);
        total as f64 * 1000.0 / elapsed as f64
    }

    /// Whether the rate is over `limit` bytes per second (`i64::MAX`, the
    /// default, is no limit).
    pub fn exceeds(&self, limit: i64, now_ms: u64) -> bool {
        limit != i64::MAX && self.rate(now_ms) > limit.max(0) as f64
    }

    fn expire(&self, s: &mut VecDeque<(u64, u64)>, now_ms: u64) {
        let span = self.windows as u64 * self.window_ms;
        while s.front().is_some_and(|(start, _)| start + span <= now_ms) {
            s.pop_front();
        }
    }
}

/// The follower side: what this broker's replica fetchers copied for
/// throttled replicas, against `follower.replication.throttled.rate`
/// (read each round, so a dynamic change applies at once).
#[derive(Debug)]
pub struct FollowerThrottle {
    /// Bytes fetched for throttled replicas.
    pub rate: ByteRate,
    /// What the fetchers read the time from.
    pub clock: SharedClock,
    config: Arc<BrokerConfig>,
}

impl FollowerThrottle {
    /// The follower throttle of the broker configured by `config`.
    pub fn new(config: Arc<BrokerConfig>, clock: SharedClock) -> FollowerThrottle {
        FollowerThrottle {
            rate: ByteRate::from_config(&config),
            clock,
            config,
        }
    }

    /// Whether throttled replicas sit out the next fetch at `now_ms`.
    pub fn holds(&self, now_ms: u64) -> bool {
        let limit = self
            .config
            .get_i64("follower.replication.throttled.rate", i64::MAX);
        self.rate.exceeds(limit, now_ms)
    }
}

/// Whether a `*.replication.throttled.replicas` value names `partition` on
/// broker `node`: `*`, or a `partition:broker` pair of the list.
pub fn names_replica(value: &str, partition: i32, node: NodeId) -> bool {
    let value = value.trim();
    if value == "*" {
        return true;
    }
    value.split(',').any(|pair| {
        pair.split_once(':').is_some_and(|(p, b)| {
            p.trim().parse::<i32>() == Ok(partition) && b.trim().parse::<i32>() == Ok(node.0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_spreads_a_burst_over_all_but_the_current_window() {
        let r = ByteRate::new(11, 1000);
        r.record(10_000, 5_000);
        // 10 kB over at least 10 s.
        assert_eq!(r.rate(5_000), 1000.0);
        assert!(r.exceeds(999, 5_000));
        assert!(!r.exceeds(1000, 5_000));
        assert!(!r.exceeds(i64::MAX, 5_000));
    }

    #[test]
    fn old_windows_stop_counting() {
        let r = ByteRate::new(3, 1000);
        r.record(6_000, 0);
        r.record(1_000, 2_500);
        // Both windows kept: 7 kB over 2.5 s.
        assert_eq!(r.rate(2_500), 2800.0);
        // The first window (0..1000) is past 3 windows at 3000.
        assert_eq!(r.rate(3_000), 500.0);
        assert_eq!(r.rate(10_000), 0.0);
    }

    #[test]
    fn bytes_in_one_window_add_up() {
        let r = ByteRate::new(2, 1000);
        r.record(100, 1_000);
        r.record(100, 1_999);
        r.record(100, 2_000);
        assert_eq!(r.rate(2_000), 300.0);
    }

    #[test]
    fn replica_lists_as_kafka_writes_them() {
        assert!(names_replica("*", 7, NodeId(3)));
        assert!(names_replica("0:1, 1:2", 1, NodeId(2)));
        assert!(!names_replica("0:1,1:2", 1, NodeId(1)));
        assert!(!names_replica("", 0, NodeId(1)));
        assert!(!names_replica("x:1", 0, NodeId(1)));
    }
}
