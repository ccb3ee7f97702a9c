//! Where new partitions go: one replica each (replication arrives with part
//! 2 of the cluster work), spread round-robin over the unfenced brokers in
//! an order that alternates racks (`broker.rack`), from a random start as
//! Kafka's controller does, so consecutive partitions land on different
//! brokers and, where racks are set, on different racks.

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

/// The replica of each partition `from..to` of a topic, starting the
/// round-robin at `start`. `None` when no broker is unfenced.
pub fn assign(image: &MetadataImage, from: i32, to: i32, start: usize) -> Option<Vec<NodeId>> {
    let order = broker_order(image);
    if order.is_empty() {
        return None;
    }
    Some(
        (from..to)
            .map(|p| order[(start + p.max(0) as usize) % order.len()])
            .collect(),
    )
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
        let placed = assign(&img, 0, 6, 1).unwrap();
        assert_eq!(placed, [3, 2, 1, 3, 2, 1].map(NodeId).to_vec());
        // New partitions continue the pattern from their index.
        assert_eq!(assign(&img, 6, 7, 1).unwrap(), vec![NodeId(3)]);
        assert_eq!(assign(&image(&[(1, None, true)]), 0, 1, 0), None);
    }
}
