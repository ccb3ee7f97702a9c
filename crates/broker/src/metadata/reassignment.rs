//! Partition reassignment and ISR changes, decided by the controller
//! (KRaft's `ReplicationControlManager` and `PartitionChangeBuilder`).
//!
//! A reassignment to target replicas `T` of a partition placed on `O`:
//! 1. starts by making the replica set `T ∪ O`, with `T − O` *adding* and
//!    `O − T` *removing*; the adding replicas open the log and fetch from
//!    the leader as followers;
//! 2. as each catches up, the leader asks for it to join the ISR
//!    ([`alter_isr`]);
//! 3. once every adding replica is in the ISR, the same change completes
//!    the move: the replica set becomes `T`, the ISR drops the removed
//!    replicas, and if the leader is one of them, the first in-sync member
//!    of `T` leads with a new epoch. Removed replicas delete their logs.
//!
//! Cancelling (no target) goes back to `O`. All of it is pure: image in,
//! records out.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use super::image::{MetadataImage, PartitionImage};
use super::records::{MetadataRecord, PartitionChange};
use super::{LeaderEpoch, NodeId};

/// Why a reassignment or ISR change was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReassignError {
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("The topic-partition {0}-{1} does not exist.")]
    UnknownTopicOrPartition(String, i32),
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// NO_REASSIGNMENT_IN_PROGRESS.
    #[error("No partition reassignment is in progress for {0}-{1}.")]
    NoReassignmentInProgress(String, i32),
    /// NOT_LEADER_OR_FOLLOWER / FENCED_LEADER_EPOCH for an ISR change from
    /// a leader the image no longer has.
    #[error("the ISR change comes from leader {leader} at epoch {epoch}, but the partition is led by {current} at epoch {current_epoch}")]
    StaleLeader {
        /// The asking leader.
        leader: NodeId,
        /// Its epoch.
        epoch: LeaderEpoch,
        /// The image's leader.
        current: NodeId,
        /// The image's epoch.
        current_epoch: LeaderEpoch,
    },
    /// INVALID_REQUEST: an ISR with members outside the replica set.
    #[error("the proposed ISR {0:?} is not a subset of the replicas {1:?}")]
    InvalidIsr(Vec<NodeId>, Vec<NodeId>),
    /// INELIGIBLE_REPLICA (KIP-841): the ISR would gain fenced or
    /// unregistered brokers.
    #[error("the proposed ISR {0:?} adds brokers that are fenced or not registered: {1:?}")]
    IneligibleReplica(Vec<NodeId>, Vec<NodeId>),
}

/// The replicas a partition had before its reassignment began.
fn original(p: &PartitionImage) -> Vec<NodeId> {
    p.replicas
        .iter()
        .copied()
        .filter(|r| !p.adding.contains(r))
        .collect()
}

/// The records that reassign partition `index` of `topic` to `target`
/// (`None` cancels a reassignment under way).
pub fn reassign(
    image: &MetadataImage,
    topic: &str,
    index: i32,
    target: Option<&[NodeId]>,
) -> Result<Vec<MetadataRecord>, ReassignError> {
    let unknown = || ReassignError::UnknownTopicOrPartition(topic.to_string(), index);
    let t = image.topic(topic).ok_or_else(unknown)?;
    let p = t.partition(index).ok_or_else(unknown)?;
    let orig = original(p);
    let Some(target) = target else {
        if !p.reassigning() {
            return Err(ReassignError::NoReassignmentInProgress(
                topic.to_string(),
                index,
            ));
        }
        return Ok(finish(t.id, index, p, &orig));
    };
    if target.is_empty() {
        return Err(ReassignError::InvalidReplicaAssignment(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut seen = Vec::with_capacity(target.len());
    for r in target {
        if seen.contains(r) {
            return Err(ReassignError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes the broker {r} more than once."
            )));
        }
        if image.broker(*r).is_none() {
            return Err(ReassignError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes broker {r}, but no such broker is registered."
            )));
        }
        seen.push(*r);
    }
    let adding: Vec<NodeId> = target
        .iter()
        .copied()
        .filter(|r| !orig.contains(r))
        .collect();
    if adding.is_empty() {
        // Nothing to copy: a shrink or a new order completes at once.
        return Ok(finish(t.id, index, p, target));
    }
    let removing: Vec<NodeId> = orig
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let mut replicas = target.to_vec();
    replicas.extend(removing.iter().copied());
    // Replicas a replaced reassignment was adding leave the ISR too.
    let isr: Vec<NodeId> = p
        .isr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect();
    Ok(vec![
        MetadataRecord::PartitionChange(PartitionChange {
            topic_id: t.id,
            partition: index,
            leader: None,
            isr: (isr != p.isr).then_some(isr),
            replicas: Some(replicas),
        }),
        MetadataRecord::Reassignment {
            topic_id: t.id,
            partition: index,
            adding,
            removing,
        },
    ])
}

/// The records that make `replicas` the partition's replica set and end
/// any reassignment: the ISR keeps its members among them, and a leader
/// outside them hands over to the first in-sync replica of the new set
/// (none: the partition is offline until one returns).
fn finish(
    topic_id: Uuid,
    index: i32,
    p: &PartitionImage,
    replicas: &[NodeId],
) -> Vec<MetadataRecord> {
    let isr: Vec<NodeId> = p
        .isr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect();
    let leader = if replicas.contains(&p.leader) {
        None
    } else {
        Some(
            replicas
                .iter()
                .copied()
                .find(|r| isr.contains(r))
                .unwrap_or(NodeId::NONE),
        )
    };
    let change = PartitionChange {
        topic_id,
        partition: index,
        leader,
        isr: (isr != p.isr).then_some(isr),
        replicas: (replicas != p.replicas.as_slice()).then(|| replicas.to_vec()),
    };
    let mut out = Vec::new();
    if change.leader.is_some() || change.isr.is_some() || change.replicas.is_some() {
        out.push(MetadataRecord::PartitionChange(change));
    }
    if p.reassigning() {
        out.push(MetadataRecord::Reassignment {
            topic_id,
            partition: index,
            adding: Vec::new(),
            removing: Vec::new(),
        });
    }
    out
}

/// The records for partition `index` of topic `topic_id` taking `isr` as
/// its in-sync replicas, asked by `leader` at `epoch` (AlterPartition). If
/// that puts every replica a reassignment is adding in sync, the same
/// records complete the reassignment.
pub fn alter_isr(
    image: &MetadataImage,
    topic_id: Uuid,
    index: i32,
    leader: NodeId,
    epoch: LeaderEpoch,
    isr: &[NodeId],
) -> Result<Vec<MetadataRecord>, ReassignError> {
    let t = image
        .topic_by_id(topic_id)
        .ok_or_else(|| ReassignError::UnknownTopicOrPartition(topic_id.to_string(), index))?;
    let p = t
        .partition(index)
        .ok_or_else(|| ReassignError::UnknownTopicOrPartition(t.name.to_string(), index))?;
    if p.leader != leader || p.leader_epoch != epoch {
        return Err(ReassignError::StaleLeader {
            leader,
            epoch,
            current: p.leader,
            current_epoch: p.leader_epoch,
        });
    }
    if isr.iter().any(|r| !p.replicas.contains(r)) || !isr.contains(&leader) {
        return Err(ReassignError::InvalidIsr(isr.to_vec(), p.replicas.clone()));
    }
    // Only live brokers join an ISR (KIP-841's INELIGIBLE_REPLICA).
    let ineligible: Vec<NodeId> = isr
        .iter()
        .copied()
        .filter(|r| !p.isr.contains(r) && image.broker(*r).is_none_or(|b| b.fenced))
        .collect();
    if !ineligible.is_empty() {
        return Err(ReassignError::IneligibleReplica(isr.to_vec(), ineligible));
    }
    let mut next = p.clone();
    next.isr = isr.to_vec();
    if next.reassigning() && next.adding.iter().all(|r| next.isr.contains(r)) {
        let target: Vec<NodeId> = next
            .replicas
            .iter()
            .copied()
            .filter(|r| !next.removing.contains(r))
            .collect();
        let mut out = finish(topic_id, index, &next, &target);
        match out.first_mut() {
            Some(MetadataRecord::PartitionChange(c)) if c.isr.is_none() && next.isr != p.isr => {
                c.isr = Some(next.isr.clone());
            }
            Some(MetadataRecord::PartitionChange(_)) => {}
            _ if next.isr != p.isr => out.insert(
                0,
                MetadataRecord::PartitionChange(PartitionChange {
                    topic_id,
                    partition: index,
                    isr: Some(next.isr.clone()),
                    ..Default::default()
                }),
            ),
            _ => {}
        }
        return Ok(out);
    }
    if next.isr == p.isr {
        return Ok(Vec::new());
    }
    Ok(vec![MetadataRecord::PartitionChange(PartitionChange {
        topic_id,
        partition: index,
        isr: Some(next.isr),
        ..Default::default()
    })])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::metadata::records::{BrokerRegistration, PartitionRecord};

    fn image(brokers: &[i32], replicas: &[i32]) -> (MetadataImage, Uuid) {
        let id = Uuid::new_v4();
        let mut batch: Vec<MetadataRecord> = brokers
            .iter()
            .map(|b| {
                MetadataRecord::RegisterBroker(BrokerRegistration {
                    id: NodeId(*b),
                    epoch: 1,
                    incarnation: Uuid::new_v4(),
                    endpoints: BTreeMap::new(),
                    rack: None,
                    fenced: false,
                })
            })
            .collect();
        let nodes: Vec<NodeId> = replicas.iter().map(|r| NodeId(*r)).collect();
        batch.push(MetadataRecord::Topic {
            name: "orders".into(),
            id,
        });
        batch.push(MetadataRecord::Partition(PartitionRecord {
            topic_id: id,
            partition: 0,
            replicas: nodes.clone(),
            isr: nodes.clone(),
            leader: nodes[0],
            leader_epoch: LeaderEpoch::FIRST,
            partition_epoch: 0,
        }));
        let (img, _) = MetadataImage::default().apply(1, &batch).expect("apply");
        (img, id)
    }

    fn apply(img: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        img.apply(img.offset + 1, records).expect("apply").0
    }

    fn ids(v: &[i32]) -> Vec<NodeId> {
        v.iter().map(|i| NodeId(*i)).collect()
    }

    #[test]
    fn a_move_adds_the_target_catches_up_then_hands_over() {
        let (img, id) = image(&[1, 2, 4], &[1]);
        let img = apply(
            &img,
            &reassign(&img, "orders", 0, Some(&ids(&[4]))).unwrap(),
        );
        let p = img.topic("orders").unwrap().partition(0).unwrap().clone();
        assert_eq!(
            (p.replicas, p.adding, p.removing, p.leader),
            (ids(&[4, 1]), ids(&[4]), ids(&[1]), NodeId(1))
        );
        // The leader reports the new replica in sync: the move completes.
        let records = alter_isr(&img, id, 0, NodeId(1), LeaderEpoch::FIRST, &ids(&[1, 4])).unwrap();
        let img = apply(&img, &records);
        let p = img.topic("orders").unwrap().partition(0).unwrap();
        assert_eq!(
            (&p.replicas, &p.isr, p.leader, p.leader_epoch),
            (&ids(&[4]), &ids(&[4]), NodeId(4), LeaderEpoch(1))
        );
        assert!(!p.reassigning());
    }

    #[test]
    fn the_isr_grows_until_every_adding_replica_is_in_sync() {
        let (img, id) = image(&[1, 2, 3, 4], &[1, 2]);
        let img = apply(
            &img,
            &reassign(&img, "orders", 0, Some(&ids(&[3, 4]))).unwrap(),
        );
        let e = LeaderEpoch::FIRST;
        let img = apply(
            &img,
            &alter_isr(&img, id, 0, NodeId(1), e, &ids(&[1, 2, 3])).unwrap(),
        );
        let p = img.topic("orders").unwrap().partition(0).unwrap().clone();
        assert!(p.reassigning());
        assert_eq!(p.isr, ids(&[1, 2, 3]));
        let img = apply(
            &img,
            &alter_isr(&img, id, 0, NodeId(1), e, &ids(&[1, 2, 3, 4])).unwrap(),
        );
        let p = img.topic("orders").unwrap().partition(0).unwrap();
        assert_eq!(
            (&p.replicas, &p.isr, p.leader),
            (&ids(&[3, 4]), &ids(&[3, 4]), NodeId(3))
        );
    }

    #[test]
    fn cancelling_goes_back_and_bad_targets_are_refused() {
        let (img, _) = image(&[1, 2, 4], &[1]);
        // The current placement again: nothing to do.
        assert_eq!(
            reassign(&img, "orders", 0, Some(&ids(&[1]))),
            Ok(Vec::new())
        );
        assert_eq!(
            reassign(&img, "orders", 0, None),
            Err(ReassignError::NoReassignmentInProgress("orders".into(), 0))
        );
        assert!(matches!(
            reassign(&img, "orders", 0, Some(&ids(&[4, 4]))),
            Err(ReassignError::InvalidReplicaAssignment(_))
        ));
        assert!(matches!(
            reassign(&img, "orders", 0, Some(&ids(&[9]))),
            Err(ReassignError::InvalidReplicaAssignment(_))
        ));
        assert!(matches!(
            reassign(&img, "orders", 0, Some(&[])),
            Err(ReassignError::InvalidReplicaAssignment(_))
        ));
        assert!(matches!(
            reassign(&img, "orders", 7, Some(&ids(&[4]))),
            Err(ReassignError::UnknownTopicOrPartition(..))
        ));
        let img = apply(
            &img,
            &reassign(&img, "orders", 0, Some(&ids(&[4]))).unwrap(),
        );
        let img = apply(&img, &reassign(&img, "orders", 0, None).unwrap());
        let p = img.topic("orders").unwrap().partition(0).unwrap();
        assert_eq!(
            (&p.replicas, &p.isr, p.leader),
            (&ids(&[1]), &ids(&[1]), NodeId(1))
        );
        assert!(!p.reassigning());
    }

    #[test]
    fn isr_changes_from_a_stale_leader_or_outside_the_replicas_are_refused() {
        let (img, id) = image(&[1, 2], &[1, 2]);
        assert!(matches!(
            alter_isr(&img, id, 0, NodeId(2), LeaderEpoch::FIRST, &ids(&[2])),
            Err(ReassignError::StaleLeader { .. })
        ));
        assert!(matches!(
            alter_isr(&img, id, 0, NodeId(1), LeaderEpoch(3), &ids(&[1])),
            Err(ReassignError::StaleLeader { .. })
        ));
        assert!(matches!(
            alter_isr(&img, id, 0, NodeId(1), LeaderEpoch::FIRST, &ids(&[1, 5])),
            Err(ReassignError::InvalidIsr(..))
        ));
        // A replica of an unregistered broker may not join it.
        let (img, id) = image(&[1], &[1, 2]);
        let (img, _) = img
            .apply(
                img.offset + 1,
                &alter_isr(&img, id, 0, NodeId(1), LeaderEpoch::FIRST, &ids(&[1])).expect("shrink"),
            )
            .expect("apply");
        assert_eq!(
            alter_isr(&img, id, 0, NodeId(1), LeaderEpoch::FIRST, &ids(&[1, 2])),
            Err(ReassignError::IneligibleReplica(ids(&[1, 2]), ids(&[2])))
        );
        let (img, id) = image(&[1, 2], &[1, 2]);
        // The same ISR again changes nothing.
        assert_eq!(
            alter_isr(&img, id, 0, NodeId(1), LeaderEpoch::FIRST, &ids(&[1, 2])),
            Ok(Vec::new())
        );
    }
}
