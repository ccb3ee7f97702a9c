//! Leadership of the coordinators' internal partitions (`__consumer_offsets`,
//! `__transaction_state`) arriving at or leaving this node, queued for the
//! coordinators to load or unload their state (Kafka's
//! `onElection`/`onResignation`).
//!
//! The hosting code records a move before it gives the partition its new
//! role, so a request that finds this node leading the partition also finds
//! the move pending, and is answered COORDINATOR_LOAD_IN_PROGRESS until the
//! coordinator has read the partition's log. A driver outside the metadata
//! apply thread (the broker's maintenance task) takes the moves and marks
//! each done once it is applied.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::metadata::{LeaderEpoch, TopicPartition};

/// One move: this node now leads the partition at `Some(epoch)`, or no longer
/// leads it (`None`).
pub type CoordinatorMove = (TopicPartition, Option<LeaderEpoch>);

/// The moves not yet applied, newest per partition.
#[derive(Debug, Default)]
pub struct CoordinatorMoves {
    pending: Mutex<BTreeMap<TopicPartition, Option<LeaderEpoch>>>,
    changed: Notify,
}

impl CoordinatorMoves {
    /// Records that leadership of `tp` arrived (at `epoch`) or left (`None`);
    /// replaces a move of the same partition not yet applied.
    pub fn record(&self, tp: TopicPartition, epoch: Option<LeaderEpoch>) {
        self.pending.lock().insert(tp, epoch);
        self.changed.notify_one();
    }

    /// True while a move of `tp` waits to be applied.
    pub fn is_pending(&self, tp: &TopicPartition) -> bool {
        self.pending.lock().contains_key(tp)
    }

    /// The moves to apply now (they stay pending until [`Self::done`]).
    pub fn take(&self) -> Vec<CoordinatorMove> {
        self.pending
            .lock()
            .iter()
            .map(|(tp, e)| (tp.clone(), *e))
            .collect()
    }

    /// `applied` is done; a newer move of the same partition stays pending.
    pub fn done(&self, applied: &CoordinatorMove) {
        let mut pending = self.pending.lock();
        if pending.get(&applied.0) == Some(&applied.1) {
            pending.remove(&applied.0);
        }
    }

    /// Resolves when a move has been recorded since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(i: i32) -> TopicPartition {
        TopicPartition {
            topic: "__consumer_offsets".into(),
            partition: i,
        }
    }

    #[test]
    fn a_move_stays_pending_until_done_and_a_newer_one_survives_an_older_done() {
        let m = CoordinatorMoves::default();
        m.record(tp(3), Some(LeaderEpoch(1)));
        assert!(m.is_pending(&tp(3)));
        let taken = m.take();
        assert_eq!(taken, vec![(tp(3), Some(LeaderEpoch(1)))]);
        // Leadership leaves while the load runs: the resignation is kept.
        m.record(tp(3), None);
        m.done(&taken[0]);
        assert!(m.is_pending(&tp(3)));
        m.done(&(tp(3), None));
        assert!(!m.is_pending(&tp(3)));
        assert!(m.take().is_empty());
    }
}
