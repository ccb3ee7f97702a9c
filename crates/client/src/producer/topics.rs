//! The producer's per-topic table: everything `send` needs for a record —
//! the partition count, the sticky partition and the partitions' queues —
//! found with one lookup, and usually with none: a producer mostly sends
//! to the topic it sent the last record to, so that one is checked first.

use std::sync::Arc;

use super::partitioner::StickyState;
use super::PartitionQueue;

/// One topic's state.
#[derive(Debug)]
pub(super) struct TopicQueues {
    /// The name, shared by the queues and the records' metadata.
    pub name: Arc<str>,
    /// Partition count, trusted until `expires` (ms since the epoch); saves
    /// a metadata lookup per record.
    pub partitions: i32,
    pub expires: i64,
    /// Where unkeyed records go.
    pub sticky: StickyState,
    /// Queues by partition number (at least as many as the topic has partitions).
    pub queues: Vec<PartitionQueue>,
}

/// All topics this producer has sent to.
#[derive(Debug, Default)]
pub(super) struct Topics {
    entries: Vec<TopicQueues>,
    /// Position in `entries` by name.
    index: fnv::FnvHashMap<Arc<str>, usize>,
    /// Position of the topic found last.
    last: usize,
}

impl Topics {
    /// The topic's state, if its partition count was ever learned.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut TopicQueues> {
        let at = match self.entries.get(self.last) {
            Some(t) if *t.name == *name => self.last,
            _ => {
                let at = *self.index.get(name)?;
                self.last = at;
                at
            }
        };
        self.entries.get_mut(at)
    }

    /// Records a topic's partition count (learned from metadata), adding
    /// queues for new partitions. Queues are never removed: a topic deleted
    /// and made again with fewer partitions may still have batches in
    /// flight to the old ones.
    pub fn set_partitions(&mut self, name: &str, partitions: i32, expires: i64) {
        let at = match self.index.get(name) {
            Some(at) => *at,
            None => {
                let name: Arc<str> = Arc::from(name);
                self.entries.push(TopicQueues {
                    name: name.clone(),
                    partitions: 0,
                    expires: 0,
                    sticky: StickyState::default(),
                    queues: Vec::new(),
                });
                self.index.insert(name, self.entries.len() - 1);
                self.entries.len() - 1
            }
        };
        let t = &mut self.entries[at];
        t.partitions = partitions;
        t.expires = expires;
        while t.queues.len() < partitions.max(0) as usize {
            t.queues.push(PartitionQueue {
                name: t.name.clone(),
                partition: t.queues.len() as i32,
                ..Default::default()
            });
        }
    }

    /// A partition's queue, if the partition is known.
    pub fn queue_mut(&mut self, name: &str, partition: i32) -> Option<&mut PartitionQueue> {
        let t = self.get_mut(name)?;
        t.queues.get_mut(usize::try_from(partition).ok()?)
    }

    /// Every partition's queue.
    pub fn queues(&self) -> impl Iterator<Item = &PartitionQueue> {
        self.entries.iter().flat_map(|t| t.queues.iter())
    }

    /// Every partition's queue, to change.
    pub fn queues_mut(&mut self) -> impl Iterator<Item = &mut PartitionQueue> {
        self.entries.iter_mut().flat_map(|t| t.queues.iter_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_topic_and_its_partitions() {
        let mut t = Topics::default();
        t.set_partitions("a", 2, 10);
        t.set_partitions("b", 3, 20);
        assert_eq!(t.get_mut("a").map(|e| e.partitions), Some(2));
        assert_eq!(t.get_mut("b").map(|e| e.expires), Some(20));
        assert_eq!(t.get_mut("a").map(|e| e.expires), Some(10));
        assert!(t.get_mut("c").is_none());
        assert_eq!(t.queue_mut("b", 2).map(|q| q.partition), Some(2));
        assert!(t.queue_mut("b", 3).is_none());
        assert!(t.queue_mut("b", -1).is_none());
        assert_eq!(t.queues().count(), 5);
    }

    #[test]
    fn queues_outlive_a_shrinking_partition_count() {
        let mut t = Topics::default();
        t.set_partitions("a", 2, 10);
        t.set_partitions("a", 4, 30);
        t.set_partitions("a", 1, 40);
        let e = t.get_mut("a").expect("known topic");
        assert_eq!((e.partitions, e.expires, e.queues.len()), (1, 40, 4));
        let numbers: Vec<i32> = e.queues.iter().map(|q| q.partition).collect();
        assert_eq!(numbers, vec![0, 1, 2, 3]);
    }
}
