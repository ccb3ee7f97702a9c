//! The topics this broker holds: names, ids, configs and the partition logs.
//!
//! Topic metadata lives in `<data dir>/topics.json`, rewritten atomically
//! (temp file, fsync, rename) once per administrative request; partition
//! logs live in `<data dir>/<topic>-<partition>/`, as in Kafka.
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

/// How to recover from a damaged `topics.json`.
const TOPICS_REMEDY: &str = "It lists this broker's topics and nothing else replaces it: \
restore topics.json from a backup of this data directory, or, if none of its topics is needed, \
move the data directory aside and start with an empty one";

/// A topic to create (see [`Topics::create_all`]).
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Config overrides (Kafka names).
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
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

/// Reads `topics.json`; a missing file means no topics (a new data
/// directory), an empty, damaged or unreadable one stops the broker with a
/// message saying which and how to recover.
fn read_metadata(path: &Path) -> Result<Vec<TopicRecord>, TopicError> {
    let damaged = |problem: String| TopicError::Damaged {
        path: path.to_path_buf(),
        problem,
        remedy: TOPICS_REMEDY,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(damaged(format!("cannot be read ({e})"))),
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(damaged(format!(
            "is empty ({} bytes), but it should list this broker's topics",
            bytes.len()
        )));
    }
    let records: Vec<TopicRecord> = serde_json::from_slice(&bytes).map_err(|e| {
        damaged(format!(
            "is damaged: it is not the JSON list of topics the broker writes ({e})"
        ))
    })?;
    let mut seen = std::collections::HashSet::new();
    for r in &records {
        if names::validate_topic_name(&r.name).is_err() || !(1..=100_000).contains(&r.partitions) {
            return Err(damaged(format!(
                "is damaged: it lists a topic {:?} with {} partitions, which this broker never writes",
                r.name, r.partitions
            )));
        }
        if !seen.insert(r.name.as_str()) {
            return Err(damaged(format!(
                "is damaged: it lists topic {:?} twice",
                r.name
            )));
        }
    }
    Ok(records)
}

/// The registry of topics.
#[derive(Debug)]
pub struct Topics {
    dir: PathBuf,
    broker: Arc<BrokerConfig>,
    by_name: RwLock<HashMap<String, Arc<Topic>>>,
    /// Collision key ('.' and '_' alike) to topic name, so a new name is
    /// checked in constant time. Changed only under `admin`.
    collisions: RwLock<HashMap<String, String>>,
    /// Serializes admin changes and metadata-file writes; never held by
    /// readers (Metadata, Produce, Fetch use `by_name` alone).
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
            collisions: RwLock::new(HashMap::new()),
            admin: Mutex::new(()),
            appended,
        };
        let records = read_metadata(&dir.join(METADATA_FILE))?;
        let mut map = HashMap::new();
        let mut collisions = HashMap::new();
        for r in records {
            let t = topics.open_topic(&r.name, r.id, r.partitions, r.configs)?;
            collisions.insert(names::collision_key(&r.name), r.name.clone());
            map.insert(r.name, t);
        }
        tracing::info!(topics = map.len(), dir = %dir.display(), "loaded topics");
        *topics.by_name.write() = map;
        *topics.collisions.write() = collisions;
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

    /// Lays out new partitions `from..to` of `name` on disk, returning them
    /// and the directories made. A directory left by an earlier topic of the
    /// same name that no metadata lists (a stray) is moved aside first, so a
    /// new partition never starts with someone else's data.
    fn lay_out(
        &self,
        name: &str,
        from: i32,
        to: i32,
        lc: &strom_storage::LogConfig,
        made: &mut Vec<PathBuf>,
    ) -> Result<Vec<Arc<Partition>>, TopicError> {
        let mut parts = Vec::with_capacity((to - from).max(0) as usize);
        for i in from..to {
            let dir = self.partition_dir(name, i);
            if dir.exists() {
                let stray = self
                    .dir
                    .join(format!("{name}-{i}.{}-stray", Uuid::new_v4().simple()));
                tracing::warn!(dir = %dir.display(), moved_to = %stray.display(), "a directory no topic owns is in the way of a new partition; moving it aside");
                std::fs::rename(&dir, &stray)?;
            }
            made.push(dir.clone());
            parts.push(Arc::new(Partition::open(name, i, &dir, lc.clone())?));
        }
        Ok(parts)
    }

    /// Removes directories laid out by a creation that failed.
    fn undo_layout(made: &[PathBuf]) {
        for dir in made {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::error!(dir = %dir.display(), error = %e, "cannot remove the directory of a partition whose creation failed");
                }
            }
        }
    }

    fn persist(&self) -> Result<(), TopicError> {
        self.persist_with(&[], &HashMap::new())
    }

    /// Writes `topics.json` as it will be once `new_topics` are added and
    /// the topics in `counts` have those partition counts: a change is
    /// recorded before anyone can see it, so no client ever writes to a
    /// partition whose creation is then undone.
    fn persist_with(
        &self,
        new_topics: &[Arc<Topic>],
        counts: &HashMap<String, i32>,
    ) -> Result<(), TopicError> {
        let record = |t: &Topic| TopicRecord {
            name: t.name.clone(),
            id: t.id,
            partitions: counts
                .get(&t.name)
                .copied()
                .unwrap_or(t.partition_count() as i32),
            configs: t.configs.read().clone(),
        };
        let mut records: Vec<TopicRecord> = self
            .by_name
            .read()
            .values()
            .map(|t| record(t))
            .chain(new_topics.iter().map(|t| record(t)))
            .collect();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let path = self.dir.join(METADATA_FILE);
        let bytes = serde_json::to_vec_pretty(&records).map_err(|e| TopicError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        crate::durable::write_atomically(&path, &bytes)
            .map_err(|source| TopicError::Write { path, source })
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
        if let Some(other) = self.collisions.read().get(&names::collision_key(name)) {
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
        let new = NewTopic {
            name: name.to_string(),
            partitions,
            configs,
        };
        match self.create_all(vec![new], false)?.pop() {
            Some(Ok(Some(t))) => Ok(t),
            Some(Err(e)) => Err(e),
            Some(Ok(None)) | None => Err(TopicError::Unknown(name.to_string())),
        }
    }

    /// Creates several topics in one step (CreateTopics). Each is checked
    /// again under the admin lock (another request may have taken a name
    /// meanwhile) and gets its own result: the topic (`None` with
    /// `validate_only`) or why not. The ones that pass are created together
    /// or not at all: when the disk or `topics.json` fails, each gets
    /// [`TopicError::NotCreated`] and nothing they laid out is left behind.
    /// `Err` refuses the whole request ([`EXCESSIVE_BATCH`]), as Kafka's
    /// controller does, with `validate_only` too.
    ///
    /// Blocking (directories, files and an fsync): call it off the async
    /// runtime's worker threads.
    #[allow(clippy::type_complexity)]
    pub fn create_all(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<Vec<Result<Option<Arc<Topic>>, TopicError>>, TopicError> {
        let _g = self.admin.lock();
        let mut results: Vec<Result<Option<Arc<Topic>>, TopicError>> =
            Vec::with_capacity(topics.len());
        let mut accepted: Vec<(usize, NewTopic)> = Vec::new();
        let mut keys = HashMap::new();
        let mut records = 0usize;
        for (i, t) in topics.into_iter().enumerate() {
            let checked = self
                .validate_new(&t.name, t.partitions, &t.configs)
                .and_then(|()| match keys.get(&names::collision_key(&t.name)) {
                    Some(other) => Err(TopicError::InvalidName(format!(
                        "Topic '{}' collides with existing topic: {other}",
                        t.name
                    ))),
                    None => Ok(()),
                });
            match checked {
                Err(e) => results.push(Err(e)),
                Ok(()) => {
                    // Stored as Kafka reports them (trimmed, normalised).
                    let mut t = t;
                    t.configs = config::validate_topic_configs(&self.broker, &t.configs)?;
                    records += t.records();
                    if records > MAX_RECORDS_PER_USER_OP {
                        return Err(TopicError::PolicyViolation(EXCESSIVE_BATCH.into()));
                    }
                    keys.insert(names::collision_key(&t.name), t.name.clone());
                    results.push(Ok(None));
                    accepted.push((i, t));
                }
            }
        }
        if validate_only || accepted.is_empty() {
            return Ok(results);
        }
        match self.create_accepted(&accepted) {
            Ok(created) => {
                for (i, t) in created {
                    tracing::info!(topic = %t.name, partitions = t.partition_count(), "created topic");
                    results[i] = Ok(Some(t));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, topics = accepted.len(), "creating topics failed; none of them was created");
                let msg = e.to_string();
                for (i, _) in &accepted {
                    results[*i] = Err(TopicError::NotCreated(msg.clone()));
                }
            }
        }
        Ok(results)
    }

    /// Lays out, publishes and records checked topics; undoes it all on failure.
    fn create_accepted(
        &self,
        accepted: &[(usize, NewTopic)],
    ) -> Result<Vec<(usize, Arc<Topic>)>, TopicError> {
        let mut made = Vec::new();
        let mut created = Vec::with_capacity(accepted.len());
        for (i, t) in accepted {
            let lc = config::log_config(&self.broker, &t.configs);
            match self.lay_out(&t.name, 0, t.partitions, &lc, &mut made) {
                Ok(parts) => created.push((
                    *i,
                    Arc::new(Topic {
                        name: t.name.clone(),
                        id: Uuid::new_v4(),
                        configs: RwLock::new(t.configs.clone()),
                        partitions: RwLock::new(parts),
                    }),
                )),
                Err(e) => {
                    drop(created);
                    Self::undo_layout(&made);
                    return Err(e);
                }
            }
        }
        let fresh: Vec<Arc<Topic>> = created.iter().map(|(_, t)| t.clone()).collect();
        if let Err(e) = self.persist_with(&fresh, &HashMap::new()) {
            drop((fresh, created));
            Self::undo_layout(&made);
            return Err(e);
        }
        let mut by_name = self.by_name.write();
        let mut collisions = self.collisions.write();
        for t in fresh {
            collisions.insert(names::collision_key(&t.name), t.name.clone());
            by_name.insert(t.name.clone(), t);
        }
        Ok(created)
    }

    /// Deletes a topic and its data.
    pub fn delete(&self, name: &str) -> Result<(), TopicError> {
        let _g = self.admin.lock();
        let t = self
            .by_name
            .write()
            .remove(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        self.collisions.write().remove(&names::collision_key(name));
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

    /// Grows a topic to `count` partitions (see [`Topics::grow_all`]).
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        match self
            .grow_all(vec![(name.to_string(), count)], validate_only)?
            .pop()
        {
            Some(r) => r,
            None => Err(TopicError::Unknown(name.to_string())),
        }
    }

    /// Grows topics to new partition counts in one step (CreatePartitions).
    /// Each `(topic, count)` gets its own result; the ones that pass are
    /// grown together or not at all: when the disk or `topics.json` fails,
    /// each gets [`TopicError::NotCreated`], keeps its old count, and no new
    /// partition directory is left behind. `Err` refuses the whole request
    /// when it would add more than [`MAX_RECORDS_PER_USER_OP`] partitions
    /// ([`EXCESSIVE_BATCH`]), with `validate_only` too.
    ///
    /// Blocking: call it off the async runtime's worker threads.
    #[allow(clippy::type_complexity)]
    pub fn grow_all(
        &self,
        wants: Vec<(String, i32)>,
        validate_only: bool,
    ) -> Result<Vec<Result<(), TopicError>>, TopicError> {
        let _g = self.admin.lock();
        let mut results = Vec::with_capacity(wants.len());
        let mut accepted: Vec<(usize, Arc<Topic>, i32, i32)> = Vec::new();
        let mut added = 0usize;
        for (i, (name, count)) in wants.into_iter().enumerate() {
            match self.check_new_partitions(&name, count) {
                Err(e) => results.push(Err(e)),
                Ok(t) => {
                    let current = t.partition_count() as i32;
                    added += (count - current) as usize;
                    if added > MAX_RECORDS_PER_USER_OP {
                        return Err(TopicError::PolicyViolation(EXCESSIVE_BATCH.into()));
                    }
                    results.push(Ok(()));
                    accepted.push((i, t, current, count));
                }
            }
        }
        if validate_only || accepted.is_empty() {
            return Ok(results);
        }
        if let Err(e) = self.grow_accepted(&accepted) {
            tracing::error!(error = %e, topics = accepted.len(), "adding partitions failed; every topic keeps its partition count");
            let msg = e.to_string();
            for (i, ..) in &accepted {
                results[*i] = Err(TopicError::NotCreated(msg.clone()));
            }
            return Ok(results);
        }
        for (_, t, from, to) in &accepted {
            tracing::info!(topic = %t.name, from, to, "added partitions");
        }
        Ok(results)
    }

    /// Lays out, publishes and records new partitions; undoes it all on failure.
    fn grow_accepted(&self, accepted: &[(usize, Arc<Topic>, i32, i32)]) -> Result<(), TopicError> {
        let mut made = Vec::new();
        let mut laid = Vec::with_capacity(accepted.len());
        for (_, t, from, to) in accepted {
            let lc = config::log_config(&self.broker, &t.configs.read());
            match self.lay_out(&t.name, *from, *to, &lc, &mut made) {
                Ok(parts) => laid.push(parts),
                Err(e) => {
                    drop(laid);
                    Self::undo_layout(&made);
                    return Err(e);
                }
            }
        }
        let counts: HashMap<String, i32> = accepted
            .iter()
            .map(|(_, t, _, to)| (t.name.clone(), *to))
            .collect();
        if let Err(e) = self.persist_with(&[], &counts) {
            drop(laid);
            Self::undo_layout(&made);
            return Err(e);
        }
        for ((_, t, ..), parts) in accepted.iter().zip(laid) {
            t.partitions.write().extend(parts);
        }
        Ok(())
    }

    /// Checks that `name` exists and may grow to `count` partitions
    /// (Kafka's controller messages).
    fn check_new_partitions(&self, name: &str, count: i32) -> Result<Arc<Topic>, TopicError> {
        let t = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let current = t.partition_count() as i32;
        if count == current {
            return Err(TopicError::InvalidPartitions(format!(
                "Topic already has {current} partition(s)."
            )));
        }
        if count < current {
            return Err(TopicError::InvalidPartitions(format!(
                "The topic {name} currently has {current} partition(s); {count} would not be an increase."
            )));
        }
        if count > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "Number of partitions {count} is too large."
            )));
        }
        Ok(t)
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
