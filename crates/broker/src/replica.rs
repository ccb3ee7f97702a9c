//! The replica manager: the one way handlers and coordinators reach a
//! partition's log, answering with Kafka's codes when it can't be served
//! here (the partition does not exist, another node leads it, or the
//! request's leader epoch is not the current one).
//!
//! It reads placement from the [`MetadataImage`](crate::metadata::MetadataImage)
//! and the logs hosted by [`Topics`]; on one node every partition is led here.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use thiserror::Error;

use crate::metadata::{LeaderEpoch, NodeId, TopicPartition};
use crate::partition::Partition;
use crate::topics::{Topic, Topics};

/// Why a partition can't be served by this node.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaError {
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("This server does not host this topic-partition.")]
    UnknownTopicOrPartition,
    /// NOT_LEADER_OR_FOLLOWER: another node leads it, or none does.
    #[error("For requests intended only for the leader, this error indicates that the broker is not the current leader.")]
    NotLeaderOrFollower,
    /// FENCED_LEADER_EPOCH: the request's epoch is older than the leader's.
    #[error("The leader epoch in the request is older than the epoch on the broker.")]
    FencedLeaderEpoch,
    /// UNKNOWN_LEADER_EPOCH: the request's epoch is newer than the leader's.
    #[error("The leader epoch in the request is newer than the epoch on the broker.")]
    UnknownLeaderEpoch,
}

impl ReplicaError {
    /// Kafka's error for it.
    pub fn code(self) -> ResponseError {
        match self {
            ReplicaError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            ReplicaError::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower,
            ReplicaError::FencedLeaderEpoch => ResponseError::FencedLeaderEpoch,
            ReplicaError::UnknownLeaderEpoch => ResponseError::UnknownLeaderEpoch,
        }
    }
}

/// A partition this node leads, found by [`ReplicaManager::leader`].
#[derive(Debug, Clone)]
pub struct Led {
    /// The topic's hosted logs.
    pub topic: Arc<Topic>,
    /// The partition's log.
    pub log: Arc<Partition>,
    /// The current leader epoch.
    pub epoch: LeaderEpoch,
}

/// The partitions this node hosts, and their roles.
#[derive(Debug)]
pub struct ReplicaManager {
    node: NodeId,
    topics: Arc<Topics>,
}

impl ReplicaManager {
    /// The replica manager of node `node` over `topics`.
    pub fn new(node: NodeId, topics: Arc<Topics>) -> ReplicaManager {
        ReplicaManager { node, topics }
    }

    /// The partition `tp` if this node leads it. `epoch` is the leader
    /// epoch the client believes current ([`LeaderEpoch::UNKNOWN`] skips
    /// the check, as Kafka does for clients too old to send one).
    pub fn leader(&self, tp: &TopicPartition, epoch: LeaderEpoch) -> Result<Led, ReplicaError> {
        self.leader_at(&tp.topic, tp.partition, epoch)
    }

    /// The partition `index` of `topic` if this node leads it, with no epoch check.
    pub fn leader_of(&self, topic: &str, index: i32) -> Result<Led, ReplicaError> {
        self.leader_at(topic, index, LeaderEpoch::UNKNOWN)
    }

    /// [`ReplicaManager::leader`] by name and index (no key to build on hot paths).
    pub fn leader_at(
        &self,
        topic: &str,
        index: i32,
        epoch: LeaderEpoch,
    ) -> Result<Led, ReplicaError> {
        let image = self.topics.image();
        let placed = image
            .topic(topic)
            .and_then(|t| t.partition(index))
            .ok_or(ReplicaError::UnknownTopicOrPartition)?;
        if epoch != LeaderEpoch::UNKNOWN {
            if epoch < placed.leader_epoch {
                return Err(ReplicaError::FencedLeaderEpoch);
            }
            if epoch > placed.leader_epoch {
                return Err(ReplicaError::UnknownLeaderEpoch);
            }
        }
        if placed.leader != self.node {
            return Err(ReplicaError::NotLeaderOrFollower);
        }
        let topic = self
            .topics
            .get(topic)
            .ok_or(ReplicaError::UnknownTopicOrPartition)?;
        let log = topic
            .partition(index)
            .ok_or(ReplicaError::UnknownTopicOrPartition)?;
        Ok(Led {
            topic,
            log,
            epoch: placed.leader_epoch,
        })
    }
}
