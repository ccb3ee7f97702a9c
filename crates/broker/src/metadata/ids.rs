//! Newtypes for the cluster's identities, so a node id, a leader epoch and a
//! partition index can't be mixed up where they used to be bare integers and
//! `(String, i32)` tuples.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A broker's or controller's `node.id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub i32);

impl NodeId {
    /// Kafka's "no node" (`-1`): a partition with no leader, say.
    pub const NONE: NodeId = NodeId(-1);
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A partition's leader epoch: bumped by the controller each time the
/// partition gets a new leader, stamped on every batch that leader writes,
/// and checked on requests that carry one (KIP-101, KIP-320).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    /// The epoch a new partition's first leader gets.
    pub const FIRST: LeaderEpoch = LeaderEpoch(0);
    /// "No epoch given" in requests (`-1`): skip the check.
    pub const UNKNOWN: LeaderEpoch = LeaderEpoch(-1);

    /// The epoch after this one.
    pub fn next(self) -> LeaderEpoch {
        LeaderEpoch(self.0.saturating_add(1))
    }
}

impl fmt::Display for LeaderEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One partition of one topic, by name: the key of everything per partition.
/// The name is shared, so cloning one is a reference count, not a copy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// The partition `partition` of `topic`.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// Kafka's spelling, as in its logs and directory names: `orders-3`.
impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_partition_prints_as_kafka_does() {
        assert_eq!(TopicPartition::new("orders", 3).to_string(), "orders-3");
    }

    #[test]
    fn leader_epoch_never_overflows() {
        assert_eq!(LeaderEpoch(i32::MAX).next(), LeaderEpoch(i32::MAX));
        assert_eq!(LeaderEpoch::FIRST.next(), LeaderEpoch(1));
    }

    #[test]
    fn ids_serialise_as_plain_numbers() {
        assert_eq!(serde_json::to_string(&NodeId(3)).unwrap(), "3");
        assert_eq!(serde_json::to_string(&LeaderEpoch(7)).unwrap(), "7");
    }
}
