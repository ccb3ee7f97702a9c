//! Transactions as the cleaner walks the log in offset order: which data
//! batches belong to aborted transactions (they go), and which markers may
//! go (a marker stays while data of its transaction is still in the log,
//! so read_committed consumers still learn of the abort).
//!
//! This is Kafka's rule (`CleanedTransactionMetadata`): an abort marker
//! may be removed once no batch of its transaction is left (the cleaner
//! removes aborted data, so after one clean none is); a commit marker may be
//! removed once the cleaner met no batch of its transaction between the
//! previous marker of the producer and it. Either way it is removed only
//! after its delete horizon has passed, like a tombstone.

use std::collections::{HashMap, HashSet};

/// An aborted transaction on this partition: the producer's batches in
/// `first_offset..last_offset` are aborted; `last_offset` is the abort marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: i64,
    /// First offset of the transaction on this partition.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
}

/// A control batch's marker type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerType {
    /// The transaction was aborted.
    Abort,
    /// The transaction was committed.
    Commit,
    /// Another control record, or none (an already emptied control batch).
    Other,
}

/// The walk's transaction state.
#[derive(Debug, Default)]
pub(crate) struct TxnTracker {
    /// Aborted transactions still to start, by first offset (descending, so
    /// the next one is popped from the end).
    pending: Vec<AbortedTxn>,
    /// Aborted transactions the walk is inside, per producer, with whether
    /// a batch of it was seen.
    aborted: HashMap<i64, (AbortedTxn, bool)>,
    /// Producers whose committed (or still unknown) transaction had data.
    committed: HashSet<i64>,
}

impl TxnTracker {
    /// A tracker knowing the aborted transactions of the range walked.
    pub fn new(mut aborted: Vec<AbortedTxn>) -> TxnTracker {
        aborted.sort_by_key(|a| std::cmp::Reverse(a.first_offset));
        TxnTracker {
            pending: aborted,
            ..TxnTracker::default()
        }
    }

    fn start_up_to(&mut self, offset: i64) {
        while self
            .pending
            .last()
            .is_some_and(|a| a.first_offset <= offset)
        {
            if let Some(a) = self.pending.pop() {
                self.aborted.entry(a.producer_id).or_insert((a, false));
            }
        }
    }

    /// A data batch: true when it belongs to an aborted transaction (discard it).
    pub fn on_data_batch(
        &mut self,
        producer_id: i64,
        transactional: bool,
        last_offset: i64,
    ) -> bool {
        self.start_up_to(last_offset);
        if !transactional {
            return false;
        }
        match self.aborted.get_mut(&producer_id) {
            Some((_, seen)) => {
                *seen = true;
                true
            }
            None => {
                self.committed.insert(producer_id);
                false
            }
        }
    }

    /// A control batch: true when its marker may be discarded (once its
    /// delete horizon passed).
    pub fn on_control_batch(
        &mut self,
        producer_id: i64,
        last_offset: i64,
        marker: MarkerType,
    ) -> bool {
        self.start_up_to(last_offset);
        match marker {
            MarkerType::Abort => !matches!(self.aborted.remove(&producer_id), Some((_, true))),
            MarkerType::Commit => !self.committed.remove(&producer_id),
            MarkerType::Other => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aborted_data_goes_and_its_marker_stays_while_data_was_seen() {
        let mut t = TxnTracker::new(vec![AbortedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 20,
        }]);
        assert!(!t.on_data_batch(1, true, 5), "before the transaction");
        assert!(t.on_data_batch(1, true, 12));
        assert!(
            !t.on_data_batch(2, false, 13),
            "plain data of another producer"
        );
        assert!(
            !t.on_control_batch(1, 20, MarkerType::Abort),
            "data was there"
        );
    }

    #[test]
    fn markers_of_emptied_transactions_may_go() {
        let mut t = TxnTracker::new(vec![AbortedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 20,
        }]);
        assert!(t.on_control_batch(1, 20, MarkerType::Abort));
        // Commit with data: stays; without: may go.
        assert!(!t.on_data_batch(3, true, 30));
        assert!(!t.on_control_batch(3, 31, MarkerType::Commit));
        assert!(t.on_control_batch(3, 40, MarkerType::Commit));
        assert!(t.on_control_batch(4, 41, MarkerType::Other));
    }
}
