//! The metadata image: an immutable picture of the cluster built by applying
//! [`MetadataRecord`]s in order (KRaft's `MetadataImage`).
//!
//! Handlers read an `Arc<MetadataImage>` and never see one half-changed: a
//! batch is applied to a copy, and the copy replaces the image only when the
//! whole batch applied. Topics are held behind `Arc`s, so a copy costs one
//! pointer per topic, and a batch touching one topic copies only that topic.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use super::ids::{LeaderEpoch, NodeId, TopicPartition};
use super::records::{
    BrokerRegistration, ConfigResource, MetadataRecord, PartitionChange, PartitionRecord,
    ScramCredential,
};

/// A record that does not fit the image it is applied to: the metadata log
/// is damaged or was written by a different cluster.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum ImageError {
    /// A record names a topic id the image does not have.
    #[error("record {0} names topic id {1}, which does not exist")]
    UnknownTopic(&'static str, Uuid),
    /// A topic record reuses a name or an id.
    #[error("topic {name:?} ({id}) is created twice")]
    DuplicateTopic {
        /// Name.
        name: String,
        /// Id.
        id: Uuid,
    },
    /// Partitions must be created in order, 0 first.
    #[error(
        "partition {partition} of topic {topic:?} is created out of order (the topic has {have})"
    )]
    PartitionOutOfOrder {
        /// Topic name.
        topic: String,
        /// The record's partition.
        partition: i32,
        /// Partitions the topic had.
        have: usize,
    },
    /// A change names a partition the topic does not have.
    #[error("partition {partition} of topic {topic:?} does not exist")]
    UnknownPartition {
        /// Topic name.
        topic: String,
        /// The record's partition.
        partition: i32,
    },
    /// A record names a broker that never registered.
    #[error("record {0} names broker {1}, which is not registered")]
    UnknownBroker(&'static str, NodeId),
    /// A topic config names a topic that does not exist.
    #[error("a config record names topic {0:?}, which does not exist")]
    ConfigForUnknownTopic(String),
}

/// One partition's placement and leadership.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<NodeId>,
    /// In-sync replicas.
    pub isr: Vec<NodeId>,
    /// Leader, or [`NodeId::NONE`].
    pub leader: NodeId,
    /// Current leader epoch.
    pub leader_epoch: LeaderEpoch,
    /// Bumped on every change.
    pub partition_epoch: i32,
    /// Replicas a reassignment is adding (KRaft's `addingReplicas`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<NodeId>,
    /// Replicas a reassignment will remove (KRaft's `removingReplicas`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<NodeId>,
}

impl PartitionImage {
    fn from_record(r: &PartitionRecord) -> PartitionImage {
        PartitionImage {
            replicas: r.replicas.clone(),
            isr: r.isr.clone(),
            leader: r.leader,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    /// A reassignment is under way.
    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    fn apply(&mut self, c: &PartitionChange) {
        if let Some(leader) = c.leader {
            self.leader = leader;
            self.leader_epoch = self.leader_epoch.next();
        }
        if let Some(isr) = &c.isr {
            self.isr = isr.clone();
        }
        if let Some(replicas) = &c.replicas {
            self.replicas = replicas.clone();
        }
        self.partition_epoch = self.partition_epoch.saturating_add(1);
    }
}

/// A topic: its id, partitions and config overrides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Name.
    pub name: Arc<str>,
    /// Topic id (KIP-516).
    pub id: Uuid,
    /// Partitions by index.
    pub partitions: Vec<PartitionImage>,
    /// Config overrides, Kafka names.
    pub configs: BTreeMap<String, String>,
}

impl TopicImage {
    /// The partition `index`, if the topic has it.
    pub fn partition(&self, index: i32) -> Option<&PartitionImage> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    /// The key of partition `index`.
    pub fn key(&self, index: i32) -> TopicPartition {
        TopicPartition {
            topic: self.name.clone(),
            partition: index,
        }
    }
}

/// What a batch changed, for the parts of a node that act on it (the
/// replica manager opens, moves and removes logs).
#[derive(Debug, Default, PartialEq)]
pub struct ImageChanges {
    /// Partitions that now exist and did not.
    pub created: Vec<TopicPartition>,
    /// Partitions whose leader, ISR or replicas changed.
    pub changed: Vec<TopicPartition>,
    /// Topics removed, with their partition counts.
    pub removed_topics: Vec<(Arc<str>, Uuid, usize)>,
    /// Topics whose config overrides changed.
    pub topic_configs: Vec<Arc<str>>,
    /// Broker-level configs changed.
    pub broker_configs: bool,
}

/// The cluster as the metadata log describes it up to [`MetadataImage::offset`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Index of the last batch applied (0: none).
    pub offset: u64,
    topics: BTreeMap<Uuid, Arc<TopicImage>>,
    #[serde(skip)]
    by_name: HashMap<Arc<str>, Uuid>,
    brokers: BTreeMap<NodeId, Arc<BrokerRegistration>>,
    /// Dynamic broker configs per node.
    broker_configs: BTreeMap<NodeId, BTreeMap<String, String>>,
    /// Dynamic broker configs of the cluster default.
    #[serde(default)]
    default_broker_configs: BTreeMap<String, String>,
    /// SCRAM credentials by user, then mechanism type.
    #[serde(default)]
    scram: BTreeMap<String, BTreeMap<i8, ScramCredential>>,
    /// First producer id not yet handed out by the controller.
    pub next_producer_id: i64,
    /// The cluster's id, once the first controller wrote it.
    #[serde(default)]
    pub cluster_id: Option<String>,
}

impl MetadataImage {
    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.by_name.get(name).and_then(|id| self.topics.get(id))
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.topics.get(&id)
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<&Arc<TopicImage>> {
        let mut v: Vec<_> = self.topics.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Number of topics.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// A partition's placement.
    pub fn partition(&self, tp: &TopicPartition) -> Option<&PartitionImage> {
        self.topic(&tp.topic)
            .and_then(|t| t.partition(tp.partition))
    }

    /// Every registered broker, by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().map(|b| b.as_ref())
    }

    /// One broker's registration.
    pub fn broker(&self, id: NodeId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id).map(|b| b.as_ref())
    }

    /// Dynamic configs of `node` (`None`: the cluster default).
    pub fn broker_configs(&self, node: Option<NodeId>) -> Option<&BTreeMap<String, String>> {
        match node {
            Some(n) => self.broker_configs.get(&n),
            None => Some(&self.default_broker_configs),
        }
    }

    /// Every user with a SCRAM credential, and theirs by mechanism type.
    pub fn scram_credentials(&self) -> &BTreeMap<String, BTreeMap<i8, ScramCredential>> {
        &self.scram
    }

    /// Applies one batch, returning the new image and what changed; `self`
    /// is left as it was, so a batch that does not fit changes nothing.
    pub fn apply(
        &self,
        offset: u64,
        batch: &[MetadataRecord],
    ) -> Result<(MetadataImage, ImageChanges), ImageError> {
        let mut next = self.clone();
        let mut changes = ImageChanges::default();
        for record in batch {
            next.apply_one(record, &mut changes)?;
        }
        next.offset = offset;
        Ok((next, changes))
    }

    fn topic_mut(&mut self, what: &'static str, id: Uuid) -> Result<&mut TopicImage, ImageError> {
        self.topics
            .get_mut(&id)
            .map(Arc::make_mut)
            .ok_or(ImageError::UnknownTopic(what, id))
    }

    fn apply_one(
        &mut self,
        record: &MetadataRecord,
        changes: &mut ImageChanges,
    ) -> Result<(), ImageError> {
        match record {
            MetadataRecord::Topic { name, id } => {
                if self.by_name.contains_key(name.as_str()) || self.topics.contains_key(id) {
                    return Err(ImageError::DuplicateTopic {
                        name: name.clone(),
                        id: *id,
                    });
                }
                let name: Arc<str> = name.as_str().into();
                self.by_name.insert(name.clone(), *id);
                self.topics.insert(
                    *id,
                    Arc::new(TopicImage {
                        name,
                        id: *id,
                        partitions: Vec::new(),
                        configs: BTreeMap::new(),
                    }),
                );
            }
            MetadataRecord::Partition(r) => {
                let t = self.topic_mut("partition", r.topic_id)?;
                if usize::try_from(r.partition).ok() != Some(t.partitions.len()) {
                    return Err(ImageError::PartitionOutOfOrder {
                        topic: t.name.to_string(),
                        partition: r.partition,
                        have: t.partitions.len(),
                    });
                }
                t.partitions.push(PartitionImage::from_record(r));
                changes.created.push(t.key(r.partition));
            }
            MetadataRecord::PartitionChange(c) => {
                let t = self.topic_mut("partition_change", c.topic_id)?;
                let name = t.name.to_string();
                let p = usize::try_from(c.partition)
                    .ok()
                    .and_then(|i| t.partitions.get_mut(i))
                    .ok_or(ImageError::UnknownPartition {
                        topic: name,
                        partition: c.partition,
                    })?;
                p.apply(c);
                changes.changed.push(t.key(c.partition));
            }
            MetadataRecord::RemoveTopic { id } => {
                let t = self
                    .topics
                    .remove(id)
                    .ok_or(ImageError::UnknownTopic("remove_topic", *id))?;
                self.by_name.remove(&t.name);
                changes
                    .removed_topics
                    .push((t.name.clone(), t.id, t.partitions.len()));
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                let configs = match resource {
                    ConfigResource::Topic(topic) => {
                        let id = *self
                            .by_name
                            .get(topic.as_str())
                            .ok_or_else(|| ImageError::ConfigForUnknownTopic(topic.clone()))?;
                        let t = self.topic_mut("config", id)?;
                        changes.topic_configs.push(t.name.clone());
                        &mut t.configs
                    }
                    ConfigResource::Broker(node) => {
                        changes.broker_configs = true;
                        self.broker_configs.entry(*node).or_default()
                    }
                    ConfigResource::ClusterDefault => {
                        changes.broker_configs = true;
                        &mut self.default_broker_configs
                    }
                };
                match value {
                    Some(v) => configs.insert(name.clone(), v.clone()),
                    None => configs.remove(name),
                };
            }
            MetadataRecord::RegisterBroker(b) => {
                self.brokers.insert(b.id, Arc::new(b.clone()));
            }
            MetadataRecord::UnregisterBroker { id } => {
                self.brokers
                    .remove(id)
                    .ok_or(ImageError::UnknownBroker("unregister_broker", *id))?;
            }
            MetadataRecord::FenceBroker { id, epoch }
            | MetadataRecord::UnfenceBroker { id, epoch } => {
                let fenced = matches!(record, MetadataRecord::FenceBroker { .. });
                let b = self
                    .brokers
                    .get_mut(id)
                    .map(Arc::make_mut)
                    .ok_or(ImageError::UnknownBroker("fence_broker", *id))?;
                // A fence for an older registration is stale: ignore it, as Kafka does.
                if b.epoch == *epoch {
                    b.fenced = fenced;
                }
            }
            MetadataRecord::Reassignment {
                topic_id,
                partition,
                adding,
                removing,
            } => {
                let t = self.topic_mut("reassignment", *topic_id)?;
                let name = t.name.to_string();
                let p = usize::try_from(*partition)
                    .ok()
                    .and_then(|i| t.partitions.get_mut(i))
                    .ok_or(ImageError::UnknownPartition {
                        topic: name,
                        partition: *partition,
                    })?;
                p.adding = adding.clone();
                p.removing = removing.clone();
                p.partition_epoch = p.partition_epoch.saturating_add(1);
                changes.changed.push(t.key(*partition));
            }
            MetadataRecord::ScramCredential {
                user,
                mechanism,
                credential,
            } => {
                self.scram
                    .entry(user.clone())
                    .or_default()
                    .insert(*mechanism, credential.clone());
            }
            MetadataRecord::RemoveScramCredential { user, mechanism } => {
                if let Some(m) = self.scram.get_mut(user) {
                    m.remove(mechanism);
                    if m.is_empty() {
                        self.scram.remove(user);
                    }
                }
            }
            MetadataRecord::ClusterId { id } => {
                // Written once; a second (a retried registration) keeps the first.
                self.cluster_id.get_or_insert_with(|| id.clone());
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
        }
        Ok(())
    }

    /// The image's contents for a snapshot of the metadata log.
    pub fn to_snapshot(&self) -> Vec<u8> {
        // Every map key is a string or an integer, so this cannot fail;
        // say so loudly if a change ever breaks that.
        serde_json::to_vec(self).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot serialize the metadata image for a snapshot");
            Vec::new()
        })
    }

    /// An image read back from [`MetadataImage::to_snapshot`].
    pub fn from_snapshot(bytes: &[u8]) -> Result<MetadataImage, serde_json::Error> {
        let mut image: MetadataImage = serde_json::from_slice(bytes)?;
        image.by_name = image
            .topics
            .values()
            .map(|t| (t.name.clone(), t.id))
            .collect();
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32) -> (Uuid, Vec<MetadataRecord>) {
        let id = Uuid::new_v4();
        let mut batch = vec![MetadataRecord::Topic {
            name: name.into(),
            id,
        }];
        for p in 0..partitions {
            batch.push(MetadataRecord::Partition(PartitionRecord {
                topic_id: id,
                partition: p,
                replicas: vec![NodeId(1)],
                isr: vec![NodeId(1)],
                leader: NodeId(1),
                leader_epoch: LeaderEpoch::FIRST,
                partition_epoch: 0,
            }));
        }
        (id, batch)
    }

    #[test]
    fn topics_appear_with_their_partitions() {
        let (id, batch) = topic("orders", 3);
        let (image, changes) = MetadataImage::default().apply(1, &batch).unwrap();
        let t = image.topic("orders").unwrap();
        assert_eq!(t.id, id);
        assert_eq!(t.partitions.len(), 3);
        assert_eq!(image.topic_by_id(id).unwrap().name.as_ref(), "orders");
        assert_eq!(changes.created.len(), 3);
        assert_eq!(image.offset, 1);
    }

    #[test]
    fn a_batch_that_does_not_fit_changes_nothing() {
        let (_, batch) = topic("orders", 2);
        let (image, _) = MetadataImage::default().apply(1, &batch).unwrap();
        let (_, mut again) = topic("payments", 1);
        again.push(batch[0].clone()); // "orders" a second time
        let err = image.apply(2, &again).unwrap_err();
        assert!(matches!(err, ImageError::DuplicateTopic { .. }));
        assert!(image.topic("payments").is_none());
        assert_eq!(image.offset, 1);
    }

    #[test]
    fn partitions_are_created_in_order() {
        let (id, mut batch) = topic("orders", 1);
        if let MetadataRecord::Partition(p) = &mut batch[1] {
            p.partition = 1;
        }
        let err = MetadataImage::default().apply(1, &batch).unwrap_err();
        assert_eq!(
            err,
            ImageError::PartitionOutOfOrder {
                topic: "orders".into(),
                partition: 1,
                have: 0
            }
        );
        let _ = id;
    }

    #[test]
    fn a_new_leader_bumps_the_leader_epoch_and_an_isr_change_does_not() {
        let (id, batch) = topic("orders", 1);
        let (image, _) = MetadataImage::default().apply(1, &batch).unwrap();
        let isr = MetadataRecord::PartitionChange(PartitionChange {
            topic_id: id,
            partition: 0,
            isr: Some(vec![NodeId(1), NodeId(2)]),
            ..Default::default()
        });
        let (image, changes) = image.apply(2, &[isr]).unwrap();
        let p = image.partition(&TopicPartition::new("orders", 0)).unwrap();
        assert_eq!((p.leader_epoch, p.partition_epoch), (LeaderEpoch(0), 1));
        assert_eq!(changes.changed, vec![TopicPartition::new("orders", 0)]);
        let lead = MetadataRecord::PartitionChange(PartitionChange {
            topic_id: id,
            partition: 0,
            leader: Some(NodeId(2)),
            ..Default::default()
        });
        let (image, _) = image.apply(3, &[lead]).unwrap();
        let p = image.partition(&TopicPartition::new("orders", 0)).unwrap();
        assert_eq!(
            (p.leader, p.leader_epoch, p.partition_epoch),
            (NodeId(2), LeaderEpoch(1), 2)
        );
    }

    #[test]
    fn removing_a_topic_frees_its_name_and_keeps_older_images_intact() {
        let (id, batch) = topic("orders", 2);
        let (before, _) = MetadataImage::default().apply(1, &batch).unwrap();
        let (after, changes) = before
            .apply(2, &[MetadataRecord::RemoveTopic { id }])
            .unwrap();
        assert!(after.topic("orders").is_none());
        assert!(before.topic("orders").is_some());
        assert_eq!(changes.removed_topics, vec![("orders".into(), id, 2)]);
        let (_, again) = topic("orders", 1);
        assert!(after.apply(3, &again).is_ok());
    }

    #[test]
    fn configs_are_set_and_removed() {
        let (_, mut batch) = topic("orders", 1);
        let set = |name: &str, value: Option<&str>| MetadataRecord::Config {
            resource: ConfigResource::Topic("orders".into()),
            name: name.into(),
            value: value.map(String::from),
        };
        batch.push(set("cleanup.policy", Some("compact")));
        batch.push(set("retention.ms", Some("1000")));
        let (image, _) = MetadataImage::default().apply(1, &batch).unwrap();
        let (image, changes) = image.apply(2, &[set("retention.ms", None)]).unwrap();
        let t = image.topic("orders").unwrap();
        assert_eq!(t.configs.len(), 1);
        assert_eq!(changes.topic_configs, vec![Arc::<str>::from("orders")]);
        let bad = MetadataRecord::Config {
            resource: ConfigResource::Topic("nope".into()),
            name: "retention.ms".into(),
            value: None,
        };
        assert!(image.apply(3, &[bad]).is_err());
    }

    #[test]
    fn a_stale_fence_is_ignored() {
        let reg = |epoch| {
            MetadataRecord::RegisterBroker(BrokerRegistration {
                id: NodeId(2),
                epoch,
                incarnation: Uuid::new_v4(),
                endpoints: BTreeMap::new(),
                rack: None,
                fenced: false,
            })
        };
        let (image, _) = MetadataImage::default().apply(1, &[reg(5)]).unwrap();
        let (image, _) = image
            .apply(
                2,
                &[MetadataRecord::FenceBroker {
                    id: NodeId(2),
                    epoch: 4,
                }],
            )
            .unwrap();
        assert!(!image.broker(NodeId(2)).unwrap().fenced);
        let (image, _) = image
            .apply(
                3,
                &[MetadataRecord::FenceBroker {
                    id: NodeId(2),
                    epoch: 5,
                }],
            )
            .unwrap();
        assert!(image.broker(NodeId(2)).unwrap().fenced);
    }

    #[test]
    fn snapshots_round_trip() {
        let (_, mut batch) = topic("orders", 2);
        batch.extend([
            MetadataRecord::Config {
                resource: ConfigResource::Broker(NodeId(2)),
                name: "log.retention.ms".into(),
                value: Some("1".into()),
            },
            MetadataRecord::Config {
                resource: ConfigResource::ClusterDefault,
                name: "log.cleaner.threads".into(),
                value: Some("2".into()),
            },
            MetadataRecord::ScramCredential {
                user: "alice".into(),
                mechanism: 1,
                credential: ScramCredential {
                    salt: vec![1, 2],
                    stored_key: vec![3],
                    server_key: vec![4],
                    iterations: 4096,
                },
            },
        ]);
        let (image, _) = MetadataImage::default().apply(7, &batch).unwrap();
        let bytes = image.to_snapshot();
        assert!(!bytes.is_empty());
        let back = MetadataImage::from_snapshot(&bytes).unwrap();
        assert_eq!(back, image);
        assert!(back.topic("orders").is_some());
        assert_eq!(
            back.broker_configs(None).unwrap()["log.cleaner.threads"],
            "2"
        );
        assert_eq!(
            back.broker_configs(Some(NodeId(2))).unwrap()["log.retention.ms"],
            "1"
        );
        assert_eq!(back.scram_credentials()["alice"][&1].iterations, 4096);
        assert!(MetadataImage::from_snapshot(b"{not json").is_err());
    }
}
