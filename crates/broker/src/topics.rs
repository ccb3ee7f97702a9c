//! The topics this broker holds: names, ids, configs and the partition logs.
//!
//! Topic metadata lives in `<data dir>/topics.json`, rewritten atomically
//! (temp file, fsync, rename) on every change; partition logs live in
//! `<data dir>/<topic>-<partition>/`, as in Kafka.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::{self, BrokerConfig, ConfigError};
use crate::names;

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
    /// KAFKA_STORAGE_ERROR.
    #[error("storage error: {0}")]
    Storage(#[from] strom_storage::StorageError),
    /// KAFKA_STORAGE_ERROR (metadata file).
    #[error("cannot write topic metadata: {0}")]
    Io(#[from] std::io::Error),
}

pub use crate::partition::Partition;

/// A topic and its partitions.
#[derive(Debug)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Topic id (KIP-516).
    pub id: Uuid,
    /// Config overrides (Kafka names).
    pub configs: RwLock<BTreeMap<String, String>>,
    /// Partitions by index.
    pub partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    /// A partition by index.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.read().get(i).cloned())
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> usize {
        self.partitions.read().len()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

/// The registry of topics.
#[derive(Debug)]
pub struct Topics {
    dir: PathBuf,
    broker: Arc<BrokerConfig>,
    by_name: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serializes admin changes and metadata-file writes.
    admin: Mutex<()>,
    /// Bumped after every append so waiting fetches re-check.
    appended: watch::Sender<u64>,
}

const METADATA_FILE: &str = "topics.json";

impl Topics {
    /// Loads the topics recorded in `dir` and opens their logs.
    pub fn open(dir: &Path, broker: Arc<BrokerConfig>) -> Result<Topics, TopicError> {
        std::fs::create_dir_all(dir)?;
        let (appended, _) = watch::channel(0);
        let topics = Topics {
            dir: dir.to_path_buf(),
            broker,
            by_name: RwLock::new(HashMap::new()),
            admin: Mutex::new(()),
            appended,
        };
        let path = dir.join(METADATA_FILE);
        let records: Vec<TopicRecord> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut map = HashMap::new();
        for r in records {
            let t = topics.open_topic(&r.name, r.id, r.partitions, r.configs)?;
            map.insert(r.name, t);
        }
        tracing::info!(topics = map.len(), dir = %dir.display(), "loaded topics");
        *topics.by_name.write() = map;
        Ok(topics)
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.dir.join(format!("{topic}-{index}"))
    }

    fn open_topic(
        &self,
        name: &str,
        id: Uuid,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let lc = config::log_config(&self.broker, &configs);
        let mut parts = Vec::new();
        for i in 0..partitions {
            parts.push(Arc::new(Partition::open(
                name,
                i,
                &self.partition_dir(name, i),
                lc.clone(),
            )?));
        }
        Ok(Arc::new(Topic {
            name: name.to_string(),
            id,
            configs: RwLock::new(configs),
            partitions: RwLock::new(parts),
        }))
    }

    fn persist(&self) -> Result<(), TopicError> {
        let mut records: Vec<TopicRecord> = self
            .by_name
            .read()
            .values()
            .map(|t| TopicRecord {
                name: t.name.clone(),
                id: t.id,
                partitions: t.partition_count() as i32,
                configs: t.configs.read().clone(),
            })
            .collect();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let bytes = serde_json::to_vec_pretty(&records).map_err(std::io::Error::other)?;
        crate::durable::write_atomically(&self.dir.join(METADATA_FILE), &bytes)?;
        Ok(())
    }

    /// The broker configuration.
    pub fn broker(&self) -> &BrokerConfig {
        &self.broker
    }

    /// A topic by name.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.by_name.read().get(name).cloned()
    }

    /// A topic by id.
    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.by_name.read().values().find(|t| t.id == id).cloned()
    }

    /// All topics, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self.by_name.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Checks a would-be topic (name, partitions, configs) without creating it.
    pub fn validate_new(
        &self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        names::validate_topic_name(name).map_err(TopicError::InvalidName)?;
        if self.by_name.read().contains_key(name) {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        let key = names::collision_key(name);
        if let Some(other) = self
            .by_name
            .read()
            .keys()
            .find(|n| names::collision_key(n) == key)
        {
            return Err(TopicError::InvalidName(format!(
                "Topic '{name}' collides with existing topic: {other}"
            )));
        }
        if partitions <= 0 {
            return Err(TopicError::InvalidPartitions(
                "Number of partitions must be larger than 0.".into(),
            ));
        }
        if partitions > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "Number of partitions {partitions} is too large."
            )));
        }
        config::validate_topic_configs(&self.broker, configs)?;
        Ok(())
    }

    /// Creates a topic with `partitions` partitions and config overrides.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let _g = self.admin.lock();
        self.validate_new(name, partitions, &configs)?;
        let configs = config::validate_topic_configs(&self.broker, &configs)?;
        let t = self.open_topic(name, Uuid::new_v4(), partitions, configs)?;
        self.by_name.write().insert(name.to_string(), t.clone());
        self.persist()?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(t)
    }

    /// Deletes a topic and its data.
    pub fn delete(&self, name: &str) -> Result<(), TopicError> {
        let _g = self.admin.lock();
        let t = self
            .by_name
            .write()
            .remove(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        self.persist()?;
        for p in t.partitions.read().iter() {
            // Rename first so a same-named topic can be created at once.
            let dir = p.log.dir().to_path_buf();
            let doomed = self
                .dir
                .join(format!("{}-{}.{}-delete", name, p.index, t.id.simple()));
            if std::fs::rename(&dir, &doomed).is_ok() {
                let _ = std::fs::remove_dir_all(&doomed);
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _g = self.admin.lock();
        let t = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let current = t.partition_count() as i32;
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "Topic currently has {current} partitions, which is higher than the requested {count}."
            )));
        }
        if count > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "Number of partitions {count} is too large."
            )));
        }
        if validate_only {
            return Ok(());
        }
        let lc = config::log_config(&self.broker, &t.configs.read());
        for i in current..count {
            let p = Partition::open(name, i, &self.partition_dir(name, i), lc.clone())?;
            t.partitions.write().push(Arc::new(p));
        }
        self.persist()
    }

    /// Replaces a topic's config overrides (validated) and applies them to its logs.
    pub fn set_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _g = self.admin.lock();
        let t = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let configs = config::validate_topic_configs(&self.broker, &configs)?;
        if validate_only {
            return Ok(());
        }
        let lc = config::log_config(&self.broker, &configs);
        *t.configs.write() = configs;
        // The cleaner and retention read each log's config at every pass.
        for p in t.partitions.read().iter() {
            p.log.set_config(lc.clone());
        }
        self.persist()
    }

    /// Rebuilds every log's config from the broker's current values and the
    /// topic's overrides, after a dynamic broker config changed.
    pub fn refresh_log_configs(&self) {
        let _g = self.admin.lock();
        for t in self.all() {
            let lc = config::log_config(&self.broker, &t.configs.read());
            for p in t.partitions.read().iter() {
                p.log.set_config(lc.clone());
            }
        }
    }

    /// Tells waiting fetches that data arrived.
    pub fn notify_append(&self) {
        self.appended.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that changes after every append.
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Every partition of every topic.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.all()
            .iter()
            .flat_map(|t| t.partitions.read().clone())
            .collect()
    }

    /// Closes every log cleanly (flush and clean-shutdown marker).
    pub fn close_all(&self) {
        for p in self.all_partitions() {
            // Before the log's clean marker: a clean log with no snapshot means no producer state.
            if let Err(e) = p.save_producer_state(true) {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "saving producer state failed");
            }
            if let Err(e) = p.log.close() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "closing log failed");
            }
        }
    }
}
