//! Metadata records: the changes the metadata log is made of, after KRaft's
//! (`TopicRecord`, `PartitionRecord`, `PartitionChangeRecord`,
//! `RemoveTopicRecord`, `ConfigRecord`, `RegisterBrokerRecord`, `FenceBrokerRecord`, …).
//!
//! The controller writes them, the quorum replicates them, and every node
//! builds its [`MetadataImage`](super::image::MetadataImage) by applying them
//! in order. One administrative operation is one [`RecordBatch`], applied
//! whole or not at all, as KRaft appends an operation's records atomically.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ids::{LeaderEpoch, NodeId};

/// One change to the cluster's metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A new topic (KRaft's `TopicRecord`); its partitions follow as
    /// [`MetadataRecord::Partition`] records.
    Topic {
        /// Name.
        name: String,
        /// Topic id (KIP-516).
        id: Uuid,
    },
    /// A new partition of an existing topic and its placement.
    Partition(PartitionRecord),
    /// A change to a partition's leader, ISR or replicas.
    PartitionChange(PartitionChange),
    /// A topic deleted, with its partitions and config overrides.
    RemoveTopic {
        /// The topic's id.
        id: Uuid,
    },
    /// A config override set (`value` given) or removed (`value` null).
    Config {
        /// Whose config.
        resource: ConfigResource,
        /// Kafka's config name.
        name: String,
        /// The new value; `None` removes the override.
        value: Option<String>,
    },
    /// A broker registered (or registered again after a restart).
    RegisterBroker(BrokerRegistration),
    /// A broker left the cluster for good.
    UnregisterBroker {
        /// Its node id.
        id: NodeId,
    },
    /// A broker stopped heartbeating: it may lead nothing until unfenced.
    FenceBroker {
        /// Its node id.
        id: NodeId,
        /// The registration it applies to.
        epoch: i64,
    },
    /// A fenced broker caught up with the metadata log.
    UnfenceBroker {
        /// Its node id.
        id: NodeId,
        /// The registration it applies to.
        epoch: i64,
    },
    /// A block of producer ids handed to a broker (AllocateProducerIds):
    /// the next block starts at `next_producer_id`.
    ProducerIds {
        /// The broker that got the block.
        broker: NodeId,
        /// First id not yet handed out.
        next_producer_id: i64,
    },
    /// The cluster's id, written once by the first controller (Kafka keeps
    /// it in `meta.properties`, formatted on every node alike).
    ClusterId {
        /// The id (22 characters of base64url, as Kafka's).
        id: String,
    },
    /// A partition's reassignment state (KRaft keeps it in the partition
    /// record's `addingReplicas` / `removingReplicas`): replicas being
    /// added and removed; both empty when none is under way.
    Reassignment {
        /// The topic's id.
        topic_id: Uuid,
        /// Partition index.
        partition: i32,
        /// Replicas catching up, to join the replica set for good.
        adding: Vec<NodeId>,
        /// Replicas to drop once the adding ones are in sync.
        removing: Vec<NodeId>,
    },
    /// A user's SCRAM credential for one mechanism, set or replaced
    /// (KRaft's `UserScramCredentialRecord`).
    ScramCredential {
        /// The user name.
        user: String,
        /// Kafka's mechanism type: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.
        mechanism: i8,
        /// What the server keeps of the password.
        credential: ScramCredential,
    },
    /// A user's SCRAM credential for one mechanism removed
    /// (`RemoveUserScramCredentialRecord`).
    RemoveScramCredential {
        /// The user name.
        user: String,
        /// Kafka's mechanism type.
        mechanism: i8,
    },
}

/// What the server keeps of a SCRAM password (RFC 5802): never the password
/// or the salted password, only what verifies a client's proof and signs
/// the server's answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The salt the client salts its password with.
    pub salt: Vec<u8>,
    /// H(HMAC(salted password, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(salted password, "Server Key").
    pub server_key: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Whose config a [`MetadataRecord::Config`] record changes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfigResource {
    /// A topic, by name (Kafka keys topic configs by name).
    Topic(String),
    /// One broker's dynamic config, by node id.
    Broker(NodeId),
    /// The cluster-wide broker default (Kafka's broker resource `""`).
    ClusterDefault,
}

/// A partition's placement when it is created (KRaft's `PartitionRecord`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// The topic's id.
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<NodeId>,
    /// In-sync replicas.
    pub isr: Vec<NodeId>,
    /// Leader, or [`NodeId::NONE`].
    pub leader: NodeId,
    /// Leader epoch.
    pub leader_epoch: LeaderEpoch,
    /// Bumped on every change to the partition.
    pub partition_epoch: i32,
}

/// A change to one partition (KRaft's `PartitionChangeRecord`): fields left
/// `None` keep their value. A new leader bumps the leader epoch; every
/// change bumps the partition epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionChange {
    /// The topic's id.
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
    /// New leader ([`NodeId::NONE`] for none).
    pub leader: Option<NodeId>,
    /// New ISR.
    pub isr: Option<Vec<NodeId>>,
    /// New replica set (reassignment).
    pub replicas: Option<Vec<NodeId>>,
}

/// A broker's registration (KRaft's `RegisterBrokerRecord`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// `node.id`.
    pub id: NodeId,
    /// Registration epoch: grows with each registration, so a stale
    /// heartbeat or fence is told apart from the current one.
    pub epoch: i64,
    /// A new random id per process start (Kafka's incarnation id).
    pub incarnation: Uuid,
    /// The listeners clients reach it on, by listener name.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// Fenced brokers lead no partitions and are not given to clients.
    pub fenced: bool,
}

/// One listener of a broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: String,
}

/// The records of one operation, applied together.
pub type RecordBatch = Vec<MetadataRecord>;

/// A batch as the quorum stores it: postcard, compact as KRaft's binary
/// records are (a partition record is ~30 bytes), so the largest operation
/// Kafka's controller allows (10,000 records) is one quorum entry.
pub fn encode_batch(batch: &[MetadataRecord]) -> Vec<u8> {
    // Serialising plain data into a Vec cannot fail.
    postcard::to_allocvec(batch).unwrap_or_default()
}

/// Reads a batch written by [`encode_batch`]; damage is an error, and
/// lengths inside are checked against the bytes there before allocating.
pub fn decode_batch(bytes: &[u8]) -> Result<RecordBatch, postcard::Error> {
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip() {
        let id = Uuid::new_v4();
        let batch = vec![
            MetadataRecord::Topic {
                name: "orders".into(),
                id,
            },
            MetadataRecord::Partition(PartitionRecord {
                topic_id: id,
                partition: 0,
                replicas: vec![NodeId(1)],
                isr: vec![NodeId(1)],
                leader: NodeId(1),
                leader_epoch: LeaderEpoch::FIRST,
                partition_epoch: 0,
            }),
            MetadataRecord::Config {
                resource: ConfigResource::Topic("orders".into()),
                name: "cleanup.policy".into(),
                value: Some("compact".into()),
            },
            MetadataRecord::Config {
                resource: ConfigResource::ClusterDefault,
                name: "log.retention.ms".into(),
                value: None,
            },
            MetadataRecord::PartitionChange(PartitionChange {
                topic_id: id,
                partition: 0,
                isr: Some(vec![]),
                ..Default::default()
            }),
        ];
        let bytes = encode_batch(&batch);
        assert_eq!(decode_batch(&bytes).unwrap(), batch);
    }

    #[test]
    fn a_damaged_batch_is_an_error_not_a_panic() {
        let bytes = encode_batch(&[MetadataRecord::Topic {
            name: "orders".into(),
            id: Uuid::new_v4(),
        }]);
        for cut in 0..bytes.len() {
            assert!(decode_batch(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // An absurd element count is refused, not allocated.
        assert!(decode_batch(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(decode_batch(&[0x01, 0x7f]).is_err());
    }

    #[test]
    fn the_largest_operation_fits_one_quorum_entry() {
        let id = Uuid::new_v4();
        let batch: Vec<_> = (0..10_000)
            .map(|p| {
                MetadataRecord::Partition(PartitionRecord {
                    topic_id: id,
                    partition: p,
                    replicas: vec![NodeId(1), NodeId(2), NodeId(3)],
                    isr: vec![NodeId(1), NodeId(2), NodeId(3)],
                    leader: NodeId(1),
                    leader_epoch: LeaderEpoch::FIRST,
                    partition_epoch: 0,
                })
            })
            .collect();
        assert!(encode_batch(&batch).len() < strom_quorum::MAX_ENTRY_BYTES / 2);
    }
}
