//! Leader elections an operator asks for (ElectLeaders, Kafka's
//! `kafka-leader-election.sh`) and the controller's own balancing
//! (`auto.leader.rebalance.enable`): pure decisions against the image,
//! returning the partition changes to commit.
//!
//! - **Preferred**: the first replica of the assignment leads again, if it
//!   is in the ISR and its broker is unfenced. Failover moves leadership
//!   away from a dead broker; this brings it back once it has caught up, so
//!   leaders stay spread as placement spread them.
//! - **Unclean**: only for a partition with no leader: an in-sync replica
//!   if one is live, else any live replica, which becomes the whole ISR.
//!   Records the others had and it lacks are lost; the others cut them by
//!   leader epoch when they follow it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::image::{MetadataImage, PartitionImage};
use super::records::{MetadataRecord, PartitionChange};
use super::NodeId;

/// Kafka's election types (ElectLeaders `election_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// 0: the preferred (first) replica.
    Preferred,
    /// 1: any live replica when no in-sync one is left.
    Unclean,
}

impl ElectionType {
    /// From the wire code; `None` for codes Kafka does not define.
    pub fn from_code(code: i8) -> Option<ElectionType> {
        match code {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// Why a partition got no new leader (Kafka's codes and messages).
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ElectError {
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("No such topic as {0}")]
    UnknownTopic(String),
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("No such partition as {0}-{1}")]
    UnknownPartition(String, i32),
    /// ELECTION_NOT_NEEDED: the preferred replica leads already, or (unclean) a leader is live.
    #[error("Leader election not needed for topic partition.")]
    NotNeeded,
    /// PREFERRED_LEADER_NOT_AVAILABLE.
    #[error("Failed to elect leader for partition {0}-{1}: the preferred replica {2} is not live and in sync")]
    PreferredNotAvailable(String, i32, NodeId),
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE.
    #[error("Failed to elect leader for partition {0}-{1}: no replica is live")]
    EligibleNotAvailable(String, i32),
}

fn live(image: &MetadataImage, id: NodeId) -> bool {
    image.broker(id).is_some_and(|b| !b.fenced)
}

/// The change electing a leader of `topic`-`partition` by `how`.
pub fn elect(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    how: ElectionType,
) -> Result<MetadataRecord, ElectError> {
    let t = image
        .topic(topic)
        .ok_or_else(|| ElectError::UnknownTopic(topic.to_string()))?;
    let p = t
        .partition(partition)
        .ok_or_else(|| ElectError::UnknownPartition(topic.to_string(), partition))?;
    let (leader, isr) = match how {
        ElectionType::Preferred => (preferred(image, topic, partition, p)?, None),
        ElectionType::Unclean => unclean(image, topic, partition, p)?,
    };
    Ok(MetadataRecord::PartitionChange(PartitionChange {
        topic_id: t.id,
        partition,
        leader: Some(leader),
        isr,
        ..Default::default()
    }))
}

fn preferred(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    p: &PartitionImage,
) -> Result<NodeId, ElectError> {
    let Some(&first) = p.replicas.first() else {
        return Err(ElectError::EligibleNotAvailable(
            topic.to_string(),
            partition,
        ));
    };
    if p.leader == first {
        return Err(ElectError::NotNeeded);
    }
    if !p.isr.contains(&first) || !live(image, first) {
        return Err(ElectError::PreferredNotAvailable(
            topic.to_string(),
            partition,
            first,
        ));
    }
    Ok(first)
}

fn unclean(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    p: &PartitionImage,
) -> Result<(NodeId, Option<Vec<NodeId>>), ElectError> {
    if p.leader != NodeId::NONE && live(image, p.leader) {
        return Err(ElectError::NotNeeded);
    }
    if let Some(&r) = p.isr.iter().find(|r| live(image, **r)) {
        return Ok((r, None));
    }
    p.replicas
        .iter()
        .find(|r| live(image, **r))
        .map(|&r| (r, Some(vec![r])))
        .ok_or_else(|| ElectError::EligibleNotAvailable(topic.to_string(), partition))
}

/// Every partition, by topic name and index (an election with none named
/// tries them all, as Kafka's does).
pub fn all_partitions(image: &MetadataImage) -> Vec<(String, i32)> {
    image
        .topics()
        .into_iter()
        .flat_map(|t| (0..t.partitions.len() as i32).map(move |i| (t.name.to_string(), i)))
        .collect()
}

/// Partitions not led by their preferred replica although it could lead
/// (in the ISR, unfenced): what the controller's balancing elects, as
/// KRaft's controller does every `leader.imbalance.check.interval.seconds`.
pub fn imbalanced(image: &MetadataImage) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for t in image.topics() {
        for (i, p) in t.partitions.iter().enumerate() {
            if preferred(image, &t.name, i as i32, p).is_ok() {
                out.push((t.name.to_string(), i as i32));
            }
        }
    }
    out
}
