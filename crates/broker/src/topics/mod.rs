//! The topics this broker holds: names, ids, configs and the partition logs.
//!
//! What topics exist, with their ids, partitions, placement and config
//! overrides, is the [`MetadataImage`]: every administrative change is a
//! batch of metadata records applied to it. The image is kept on disk as
//! `<data dir>/topics.json`, rewritten atomically (temp file, fsync, rename)
//! once per administrative request; partition logs live in
//! `<data dir>/<topic>-<partition>/`, as in Kafka. [`Topic`] holds the logs
//! this node hosts.
//!
//! Creation is all-or-nothing per request: the partitions of every topic in
//! it are laid out on disk first, then the topics become visible and
//! `topics.json` is written once; a failure anywhere removes what was laid
//! out and changes nothing. Like Kafka's controller, one request may not
//! create more than [`MAX_PARTITIONS_PER_REQUEST`] partitions nor write more
//! than [`MAX_RECORDS_PER_USER_OP`] metadata records.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use thiserror::Error;
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::config::{self, BrokerConfig, ConfigError};
use crate::metadata::{
    ImageError, MetadataError, MetadataImage, MetadataStore, NodeId, RecordBatch,
};
use crate::names;
use crate::replication::fetcher::{FetcherConfig, ReplicaFetchers};
use crate::replication::throttle::FollowerThrottle;
use coordinator_moves::CoordinatorMoves;

mod admin;
mod broker_configs;
pub mod coordinator_moves;
mod hosting;
mod json_file;
pub mod placement;
mod strays;

/// Errors of topic administration, each mapping to one Kafka error code.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TopicError {
    /// TOPIC_ALREADY_EXISTS.
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("This server does not host this topic-partition.")]
    Unknown(String),
    /// INVALID_TOPIC_EXCEPTION.
    #[error("{0}")]
    InvalidName(String),
    /// INVALID_PARTITIONS.
    #[error("{0}")]
    InvalidPartitions(String),
    /// INVALID_CONFIG.
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    /// KAFKA_STORAGE_ERROR: the topic passed its checks but creating the
    /// request's topics failed (the reason), so none was created.
    #[error("{0}")]
    NotCreated(String),
    /// POLICY_VIOLATION: the request is larger than one operation may be.
    #[error("{0}")]
    PolicyViolation(String),
    /// KAFKA_STORAGE_ERROR.
    #[error("storage error: {0}")]
    Storage(#[from] strom_storage::StorageError),
    /// KAFKA_STORAGE_ERROR: `topics.json` could not be replaced.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The metadata file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file the broker reads at start-up is empty, damaged or unreadable.
    #[error("{} {problem}. {remedy}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// How to recover.
        remedy: &'static str,
    },
    /// Producer id allocation could not start (`producer-id-block`).
    #[error(transparent)]
    ProducerIds(#[from] crate::txn::producer_ids::ProducerIdsError),
    /// INVALID_REPLICATION_FACTOR: not enough brokers can take the partitions.
    #[error("{0}")]
    NoBrokers(String),
    /// INVALID_REPLICA_ASSIGNMENT: explicit replicas that cannot be used.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// A metadata change does not fit the image (a bug, or a damaged file).
    #[error("metadata: {0}")]
    Metadata(#[from] ImageError),
    /// The metadata log refused or failed a change.
    #[error(transparent)]
    MetadataLog(#[from] MetadataError),
    /// Other I/O in the data directory.
    #[error("data directory I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Most metadata records one administrative operation may write: Kafka's
/// controller refuses a user operation past this
/// (`QuorumController.MAX_RECORDS_PER_USER_OP`). A new topic writes one
/// record, one per partition and one per config override; a new partition one.
pub const MAX_RECORDS_PER_USER_OP: usize = 10_000;

/// Most partitions one CreateTopics request may ask for, counted before any
/// other check (Kafka's `ReplicationControlManager.MAX_PARTITIONS_PER_BATCH`).
pub const MAX_PARTITIONS_PER_REQUEST: u64 = 10_000;

/// Kafka's message for a CreateTopics over [`MAX_PARTITIONS_PER_REQUEST`].
pub const EXCESSIVE_PARTITIONS: &str = "Excessively large number of partitions per request.";

/// Kafka's message for an operation over [`MAX_RECORDS_PER_USER_OP`].
pub const EXCESSIVE_BATCH: &str = "Unable to perform excessively large batch operation.";

/// A topic to create (see [`Topics::create_all`]).
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Config overrides (Kafka names).
    pub configs: BTreeMap<String, String>,
    /// Replicas per partition when they are placed automatically.
    pub replication_factor: i32,
    /// Explicit replicas per partition, preferred leader first
    /// (CreateTopics `assignments`); empty to place them automatically.
    pub assignments: Vec<Vec<NodeId>>,
}

impl NewTopic {
    /// A topic of `partitions` single-replica partitions placed automatically.
    pub fn new(name: &str, partitions: i32, configs: BTreeMap<String, String>) -> NewTopic {
        NewTopic {
            name: name.to_string(),
            partitions,
            configs,
            replication_factor: 1,
            assignments: Vec::new(),
        }
    }

    /// Metadata records Kafka's controller would write for it.
    pub fn records(&self) -> usize {
        1 + self.partitions.max(0) as usize + self.configs.len()
    }
}

pub use crate::partition::Partition;

/// A topic and its partitions.
#[derive(Debug)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Topic id (KIP-516).
    pub id: Uuid,
    /// Its partitions by index, with the log of each one this node hosts
    /// (`None`: another broker holds it). The length is the partition count.
    pub partitions: RwLock<Vec<Option<Arc<Partition>>>>,
}

impl Topic {
    /// A partition by index.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.read().get(i).cloned().flatten())
    }

    /// The logs of its partitions this node hosts.
    pub fn hosted(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().iter().flatten().cloned().collect()
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> usize {
        self.partitions.read().len()
    }
}

/// The registry of topics.
#[derive(Debug)]
pub struct Topics {
    dir: PathBuf,
    broker: Arc<BrokerConfig>,
    /// This node: the replica and leader of every partition on one node.
    node: NodeId,
    /// The metadata log and the image built from it: the source of truth.
    store: MetadataStore,
    /// The logs hosted here, by topic name.
    by_name: RwLock<HashMap<String, Arc<Topic>>>,
    /// Collision key ('.' and '_' alike) to topic name, so a new name is
    /// checked in constant time. Changed only under `admin`.
    collisions: RwLock<HashMap<String, String>>,
    /// Serializes admin changes and metadata-file writes; never held by
    /// readers (Metadata, Produce, Fetch use `image` and `by_name` alone).
    admin: Mutex<()>,
    /// Serializes changes to the hosted logs made from applied batches.
    hosting: Mutex<()>,
    /// Copies the logs this node follows from their leaders.
    fetchers: ReplicaFetchers,
    /// Coordinator partitions whose leadership arrived or left, for the
    /// coordinators to load or unload.
    coordinator_moves: CoordinatorMoves,
    /// `inter.broker.listener.name`: where this broker reaches the others.
    inter_broker_listener: String,
    /// The broker's time, shared with its partitions and coordinators.
    clock: SharedClock,
}

/// Kafka's internal topics, whose partitions' leaders coordinate groups
/// (`__consumer_offsets`) and transactions (`__transaction_state`).
pub fn is_internal_topic(name: &str) -> bool {
    name == crate::group::store::OFFSETS_TOPIC || name == crate::txn::log::TXN_TOPIC
}

impl Topics {
    /// Where this broker reaches broker `reg`: its endpoint for
    /// `inter.broker.listener.name` (the first one of a registration
    /// without it).
    pub fn peer_endpoint<'a>(
        &self,
        reg: &'a crate::metadata::records::BrokerRegistration,
    ) -> Option<&'a crate::metadata::records::Endpoint> {
        reg.endpoints
            .get(&self.inter_broker_listener)
            .or_else(|| reg.endpoints.values().next())
    }

    /// The broker's clock: what partitions and coordinators read the time from.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Opens the single node's metadata log in `dir` (migrating a
    /// `topics.json` left by an earlier version on the first start) and the
    /// logs of its topics.
    pub fn open(
        dir: &Path,
        broker: Arc<BrokerConfig>,
        clock: SharedClock,
    ) -> Result<Arc<Topics>, TopicError> {
        std::fs::create_dir_all(dir)?;
        let store = MetadataStore::open_single(dir, NodeId(broker.node_id()), clock.clone())?;
        Self::with_store(dir, broker, store, clock)
    }

    /// Opens the logs this node hosts in `dir`, per the image of `store`,
    /// and keeps them in step with every batch `store` applies from now on.
    pub fn with_store(
        dir: &Path,
        broker: Arc<BrokerConfig>,
        store: MetadataStore,
        clock: SharedClock,
    ) -> Result<Arc<Topics>, TopicError> {
        std::fs::create_dir_all(dir)?;
        let node = NodeId(broker.node_id());
        json_file::migrate(dir, node, &store)?;
        // Before the logs open: their settings include the dynamic broker values.
        broker_configs::load(dir, node, &store, &broker)?;
        let image = store.image();
        strays::set_aside(dir, &image, node);
        let inter_broker_listener = config::cluster::ClusterLayout::from_config(&broker)
            .map(|l| l.inter_broker_listener)
            .unwrap_or_default();
        let follower_throttle = FollowerThrottle::new(broker.clone(), clock.clone());
        let topics = Topics {
            dir: dir.to_path_buf(),
            inter_broker_listener,
            broker,
            node,
            store,
            by_name: RwLock::new(HashMap::new()),
            collisions: RwLock::new(HashMap::new()),
            admin: Mutex::new(()),
            hosting: Mutex::new(()),
            fetchers: ReplicaFetchers::new(node, FetcherConfig::default(), follower_throttle),
            coordinator_moves: CoordinatorMoves::default(),
            clock,
        };
        let mut map = HashMap::new();
        let mut collisions = HashMap::new();
        let mut hosted = 0usize;
        for t in image.topics() {
            let lc = config::log_config(&topics.broker, &t.configs);
            let mut parts = Vec::with_capacity(t.partitions.len());
            for (i, placed) in t.partitions.iter().enumerate() {
                let i = i as i32;
                if !placed.replicas.contains(&node) {
                    parts.push(None);
                    continue;
                }
                hosted += 1;
                parts.push(Some(Arc::new(Partition::open(
                    &t.name,
                    i,
                    &topics.partition_dir(&t.name, i),
                    lc.clone(),
                    topics.clock.clone(),
                )?)));
            }
            let topic = Arc::new(Topic {
                name: t.name.to_string(),
                id: t.id,
                partitions: RwLock::new(parts),
            });
            collisions.insert(names::collision_key(&t.name), t.name.to_string());
            map.insert(t.name.to_string(), topic);
        }
        tracing::info!(topics = map.len(), hosted_partitions = hosted, metadata_offset = image.offset, dir = %dir.display(), "loaded topics");
        *topics.by_name.write() = map;
        *topics.collisions.write() = collisions;
        let topics = Arc::new(topics);
        let weak = Arc::downgrade(&topics);
        topics.store.on_change(Arc::new(move |image, changes| {
            if let Some(t) = weak.upgrade() {
                t.on_image_change(image, changes);
            }
        }));
        topics.place_all(&topics.image());
        Ok(topics)
    }

    /// The metadata store (the controller, registration, heartbeats).
    pub fn store(&self) -> &MetadataStore {
        &self.store
    }

    /// Coordinator partitions whose leadership arrived or left, not yet
    /// loaded or unloaded by their coordinator.
    pub fn coordinator_moves(&self) -> &CoordinatorMoves {
        &self.coordinator_moves
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.dir.join(format!("{topic}-{index}"))
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.store.image()
    }

    /// Checks `batch` against the image, then commits it to the metadata
    /// log; when this returns `Ok` the image shows it. Nothing changes when
    /// either step fails. Call under `admin`.
    fn commit(&self, batch: &RecordBatch) -> Result<(), TopicError> {
        let current = self.image();
        current.apply(current.offset + 1, batch)?;
        self.store.commit(batch)?;
        Ok(())
    }

    /// What Kafka's DescribeQuorum reports of the metadata quorum.
    pub fn quorum(&self) -> Option<strom_quorum::QuorumDescription> {
        self.store.describe_from_leader()
    }

    /// The broker configuration.
    pub fn broker(&self) -> &BrokerConfig {
        &self.broker
    }

    /// A topic by name.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.by_name.read().get(name).cloned()
    }

    /// Whether partition `index` of `topic` exists in the cluster (hosted
    /// here or not).
    pub fn partition_exists(&self, topic: &str, index: i32) -> bool {
        self.image()
            .topic(topic)
            .is_some_and(|t| t.partition(index).is_some())
    }

    /// A topic by id.
    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        let image = self.image();
        image.topic_by_id(id).and_then(|t| self.get(&t.name))
    }

    /// A topic's config overrides (Kafka names); empty for an unknown topic.
    pub fn configs_of(&self, name: &str) -> BTreeMap<String, String> {
        self.image()
            .topic(name)
            .map(|t| t.configs.clone())
            .unwrap_or_default()
    }

    /// All topics, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self.by_name.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Every partition of every topic.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.all().iter().flat_map(|t| t.hosted()).collect()
    }

    /// Closes every log cleanly (flush and clean-shutdown marker), then the metadata log.
    pub fn close_all(&self) {
        self.fetchers.stop();
        for p in self.all_partitions() {
            // Before the log's clean marker: a clean log with no snapshot means no producer state.
            if let Err(e) = p.save_producer_state(true) {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "saving producer state failed");
            }
            if let Err(e) = p.log.close() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "closing log failed");
            }
        }
        self.store.close();
    }
}
