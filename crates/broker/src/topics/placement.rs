//! Where new partitions go: `replication.factor` replicas each, spread
//! round-robin over the unfenced brokers in an order that alternates racks
//! (`broker.rack`), from a random start as Kafka's controller does, so
//! consecutive partitions are led by different brokers and, where racks
//! are set, a partition's replicas sit on different racks. The first
//! replica is the preferred leader. Explicit assignments are checked here
//! too, with Kafka's messages.

use std::collections::BTreeMap;

use crate::metadata::{MetadataImage, NodeId};

/// The unfenced brokers, racks interleaved: the first broker of each rack,
/// then the second of each, and so on (Kafka's rack-alternated list).
pub fn broker_order(image: &MetadataImage) -> Vec<NodeId> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<NodeId>> = BTreeMap::new();
    for b in image.brokers().filter(|b| !b.fenced) {
        by_rack.entry(b.rack.as_deref()).or_default().push(b.id);
    }
    let racks: Vec<Vec<NodeId>> = by_rack.into_values().collect();
    let longest = racks.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| racks.iter().filter_map(move |r| r.get(i).copied()))
        .collect()
}

/// Why partitions cannot be placed as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    /// INVALID_REPLICATION_FACTOR.
    ReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT.
    Assignment(String),
}

/// Kafka's message for a replication factor the cluster cannot meet.
pub fn replication_factor_message(rf: i32, usable: usize) -> String {
    if usable == 0 {
        return format!(
            "Unable to replicate the partition {rf} time(s): All brokers are currently fenced."
        );
    }
    format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {usable} broker(s) are registered.")
}

/// The replicas of each partition `from..to` of a topic, `rf` each,
/// starting the round-robin at `start`.
pub fn assign(
    image: &MetadataImage,
    from: i32,
    to: i32,
    rf: i32,
    start: usize,
) -> Result<Vec<Vec<NodeId>>, PlacementError> {
    let order = broker_order(image);
    let n = order.len();
    if rf <= 0 || n == 0 || rf as usize > n {
        return Err(PlacementError::ReplicationFactor(
            replication_factor_message(rf, n),
        ));
    }
    Ok((from..to)
        .map(|p| {
            let first = start + p.max(0) as usize;
            (0..rf as usize).map(|k| order[(first + k) % n]).collect()
        })
        .collect())
}

/// Checks explicit replica lists (CreateTopics / CreatePartitions
/// `assignments`) as Kafka's controller does: none empty, all the same
/// length, no broker twice in one, every broker registered.
pub fn check_assignment(
    image: &MetadataImage,
    assignment: &[Vec<NodeId>],
) -> Result<(), PlacementError> {
    let bad = |m: String| Err(PlacementError::Assignment(m));
    let Some(first) = assignment.first() else {
        return Ok(());
    };
    for replicas in assignment {
        if replicas.is_empty() {
            return bad("The manual partition assignment includes an empty replica list.".into());
        }
        if replicas.len() != first.len() {
            return bad("All partitions in the manual partition assignment must have the same number of replicas.".into());
        }
        for (i, r) in replicas.iter().enumerate() {
            if replicas[..i].contains(r) {
                return bad(format!(
                    "The manual partition assignment includes the broker {r} more than once."
                ));
            }
            if image.broker(*r).is_none() {
                return bad(format!("The manual partition assignment includes broker {r}, but no such broker is registered."));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::{BrokerRegistration, MetadataRecord};
    use std::collections::BTreeMap;

    fn image(brokers: &[(i32, Option<&str>, bool)]) -> MetadataImage {
        let records: Vec<_> = brokers
            .iter()
            .map(|(id, rack, fenced)| {
                MetadataRecord::RegisterBroker(BrokerRegistration {
                    id: NodeId(*id),
                    epoch: 1,
                    incarnation: uuid::Uuid::new_v4(),
                    endpoints: BTreeMap::new(),
                    rack: rack.map(str::to_string),
                    fenced: *fenced,
                })
            })
            .collect();
        MetadataImage::default().apply(1, &records).unwrap().0
    }

    #[test]
    fn partitions_spread_over_unfenced_brokers_alternating_racks() {
        let img = image(&[
            (1, Some("a"), false),
            (2, Some("a"), false),
            (3, Some("b"), false),
            (4, Some("b"), true),
        ]);
        assert_eq!(broker_order(&img), vec![NodeId(1), NodeId(3), NodeId(2)]);
        let placed = assign(&img, 0, 6, 1, 1).unwrap();
        let leaders: Vec<NodeId> = placed.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, [3, 2, 1, 3, 2, 1].map(NodeId).to_vec());
        // New partitions continue the pattern from their index.
        assert_eq!(assign(&img, 6, 7, 1, 1).unwrap(), vec![vec![NodeId(3)]]);
        assert!(matches!(
            assign(&image(&[(1, None, true)]), 0, 1, 1, 0),
            Err(PlacementError::ReplicationFactor(m)) if m.contains("fenced")
        ));
    }

    #[test]
    fn replicas_are_distinct_brokers_and_leaders_rotate() {
        let ids = |v: &[i32]| v.iter().map(|i| NodeId(*i)).collect::<Vec<_>>();
        let img = image(&[(1, None, false), (2, None, false), (3, None, false)]);
        let placed = assign(&img, 0, 3, 3, 0).unwrap();
        assert_eq!(placed[0], [1, 2, 3].map(NodeId).to_vec());
        assert_eq!(placed[1], [2, 3, 1].map(NodeId).to_vec());
        assert_eq!(placed[2], [3, 1, 2].map(NodeId).to_vec());
        let racks = image(&[
            (1, Some("a"), false),
            (2, Some("a"), false),
            (3, Some("b"), false),
        ]);
        // Consecutive replicas alternate racks where the racks allow.
        let placed = assign(&racks, 0, 2, 2, 0).unwrap();
        assert_eq!(placed, vec![ids(&[1, 3]), ids(&[3, 2])]);
        assert_eq!(
            assign(&img, 0, 1, 4, 0),
            Err(PlacementError::ReplicationFactor(
                "Unable to replicate the partition 4 time(s): The target replication factor of 4 cannot be reached because only 3 broker(s) are registered.".into()
            ))
        );
    }

    #[test]
    fn manual_assignments_are_checked_as_kafka_does() {
        let img = image(&[(1, None, false), (2, None, false)]);
        let ids = |v: &[i32]| v.iter().map(|i| NodeId(*i)).collect::<Vec<_>>();
        assert_eq!(
            check_assignment(&img, &[ids(&[1, 2]), ids(&[2, 1])]),
            Ok(())
        );
        for (bad, says) in [
            (vec![ids(&[1]), ids(&[])], "empty"),
            (vec![ids(&[1]), ids(&[1, 2])], "same number"),
            (vec![ids(&[1, 1])], "more than once"),
            (vec![ids(&[7])], "no such broker"),
        ] {
            match check_assignment(&img, &bad) {
                Err(PlacementError::Assignment(m)) => assert!(m.contains(says), "{m}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
