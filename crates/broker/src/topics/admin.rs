//! Topic administration: create, grow, delete and reconfigure topics, each
//! change a batch of metadata records committed to the image.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use uuid::Uuid;

use super::json_file::{config_records, partition_record, topic_records};
use super::{
    NewTopic, Partition, Topic, TopicError, Topics, EXCESSIVE_BATCH, MAX_RECORDS_PER_USER_OP,
};
use crate::config;
use crate::metadata::records::ConfigResource;
use crate::metadata::{MetadataRecord, NodeId, RecordBatch};
use crate::names;

impl Topics {
    /// Lays out new partitions `from..to` of `name` on disk, returning them
    /// and the directories made. A directory left by an earlier topic of the
    /// same name that no metadata lists (a stray) is moved aside first, so a
    /// new partition never starts with someone else's data.
    fn lay_out(
        &self,
        name: &str,
        placed: &[Vec<NodeId>],
        from: i32,
        lc: &strom_storage::LogConfig,
        made: &mut Vec<PathBuf>,
    ) -> Result<Vec<Option<Arc<Partition>>>, TopicError> {
        let mut parts = Vec::with_capacity(placed.len());
        for (i, replicas) in (from..).zip(placed) {
            if !replicas.contains(&self.node) {
                parts.push(None);
                continue;
            }
            let dir = self.partition_dir(name, i);
            if dir.exists() {
                let stray = super::strays::aside_path(&self.dir, &format!("{name}-{i}"));
                tracing::warn!(dir = %dir.display(), moved_to = %stray.display(), "a directory no topic owns is in the way of a new partition; moving it aside");
                std::fs::rename(&dir, &stray)?;
            }
            made.push(dir.clone());
            parts.push(Some(Arc::new(Partition::open(
                name,
                i,
                &dir,
                lc.clone(),
                self.clock.clone(),
            )?)));
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
        self.create_replicated(name, partitions, 1, configs)
    }

    /// Creates a topic whose partitions have `replication_factor` replicas
    /// placed over the registered brokers (the internal topics).
    pub fn create_replicated(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let mut new = NewTopic::new(name, partitions, configs);
        new.replication_factor = replication_factor;
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
                // Another broker may have created a name first (two brokers
                // making an internal topic at once): that one exists.
                let image = self.image();
                let taken = |t: &NewTopic| image.topic(&t.name).is_some();
                if accepted.iter().all(|(_, t)| taken(t)) {
                    tracing::info!(error = %e, topics = accepted.len(), "topics created meanwhile by another broker");
                } else {
                    tracing::error!(error = %e, topics = accepted.len(), "creating topics failed; none of them was created");
                }
                let msg = e.to_string();
                for (i, t) in &accepted {
                    results[*i] = Err(if taken(t) {
                        TopicError::AlreadyExists(t.name.clone())
                    } else {
                        TopicError::NotCreated(msg.clone())
                    });
                }
            }
        }
        Ok(results)
    }

    /// Lays out, records and publishes checked topics; undoes it all on failure.
    fn create_accepted(
        &self,
        accepted: &[(usize, NewTopic)],
    ) -> Result<Vec<(usize, Arc<Topic>)>, TopicError> {
        let mut made = Vec::new();
        let mut created = Vec::with_capacity(accepted.len());
        let mut batch: RecordBatch = Vec::new();
        for (i, t) in accepted {
            let lc = config::log_config(&self.broker, &t.configs);
            let placed = if t.assignments.is_empty() {
                self.place(0, t.partitions, t.replication_factor)?
            } else {
                self.check_assignment(&t.assignments)?;
                t.assignments.clone()
            };
            match self.lay_out(&t.name, &placed, 0, &lc, &mut made) {
                Ok(parts) => {
                    let id = Uuid::new_v4();
                    batch.extend(topic_records(&t.name, id, &placed));
                    batch.extend(config_records(&t.name, t.configs.clone()));
                    created.push((
                        *i,
                        Arc::new(Topic {
                            name: t.name.clone(),
                            id,
                            partitions: RwLock::new(parts),
                        }),
                    ))
                }
                Err(e) => {
                    drop(created);
                    Self::undo_layout(&made);
                    return Err(e);
                }
            }
        }
        // Hosted first: the replica manager serves a partition only once
        // the image has it too, so nothing is served before the commit.
        {
            let mut by_name = self.by_name.write();
            for (_, t) in &created {
                by_name.insert(t.name.clone(), t.clone());
            }
        }
        if let Err(e) = self.commit(&batch) {
            {
                let mut by_name = self.by_name.write();
                for (_, t) in &created {
                    by_name.remove(&t.name);
                }
            }
            drop(created);
            Self::undo_layout(&made);
            // Another broker may have created one of the names meanwhile.
            self.host_all(&self.image());
            return Err(e);
        }
        let mut collisions = self.collisions.write();
        for (_, t) in &created {
            collisions.insert(names::collision_key(&t.name), t.name.clone());
        }
        Ok(created)
    }

    /// Deletes a topic and its data.
    pub fn delete(&self, name: &str) -> Result<(), TopicError> {
        let _g = self.admin.lock();
        let id = self
            .image()
            .topic(name)
            .map(|t| t.id)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        // Every node, this one included, removes its logs as it applies the record.
        self.commit(&vec![MetadataRecord::RemoveTopic { id }])?;
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
            .grow_all(vec![(name.to_string(), count, Vec::new())], validate_only)?
            .pop()
        {
            Some(r) => r,
            None => Err(TopicError::Unknown(name.to_string())),
        }
    }

    /// Grows topics to new partition counts in one step (CreatePartitions).
    /// Each `(topic, count, assignments)` (explicit replicas of the new
    /// partitions, or none to place them as the topic's first partition
    /// is) gets its own result; the ones that pass are
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
        wants: Vec<(String, i32, Vec<Vec<NodeId>>)>,
        validate_only: bool,
    ) -> Result<Vec<Result<(), TopicError>>, TopicError> {
        let _g = self.admin.lock();
        let mut results = Vec::with_capacity(wants.len());
        let mut accepted: Vec<Growth> = Vec::new();
        let mut added = 0usize;
        for (i, (name, count, assignments)) in wants.into_iter().enumerate() {
            let checked = self.check_new_partitions(&name, count).and_then(|t| {
                self.placement_of_growth(&t, count, assignments)
                    .map(|a| (t, a))
            });
            match checked {
                Err(e) => results.push(Err(e)),
                Ok((t, placed)) => {
                    let current = t.partition_count() as i32;
                    added += (count - current) as usize;
                    if added > MAX_RECORDS_PER_USER_OP {
                        return Err(TopicError::PolicyViolation(EXCESSIVE_BATCH.into()));
                    }
                    results.push(Ok(()));
                    accepted.push((i, t, current, count, placed));
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
        for (_, t, from, to, _) in &accepted {
            tracing::info!(topic = %t.name, from, to, "added partitions");
        }
        Ok(results)
    }

    /// Lays out, records and publishes new partitions; undoes it all on failure.
    fn grow_accepted(&self, accepted: &[Growth]) -> Result<(), TopicError> {
        let mut made = Vec::new();
        let mut laid = Vec::with_capacity(accepted.len());
        let mut batch: RecordBatch = Vec::new();
        for (_, t, from, to, assigned) in accepted {
            let lc = config::log_config(&self.broker, &self.configs_of(&t.name));
            let placed = match assigned {
                Some(a) => a.clone(),
                None => {
                    let rf = self
                        .image()
                        .topic(&t.name)
                        .and_then(|ti| ti.partition(0))
                        .map_or(1, |p| p.replicas.len().max(1) as i32);
                    self.place(*from, *to, rf)?
                }
            };
            match self.lay_out(&t.name, &placed, *from, &lc, &mut made) {
                Ok(parts) => {
                    batch.extend(
                        (*from..)
                            .zip(&placed)
                            .map(|(p, r)| partition_record(t.id, p, r)),
                    );
                    laid.push(parts);
                }
                Err(e) => {
                    drop(laid);
                    Self::undo_layout(&made);
                    return Err(e);
                }
            }
        }
        // Logs first, as for new topics: served once the image has them.
        let before: Vec<usize> = accepted
            .iter()
            .map(|(_, t, ..)| t.partition_count())
            .collect();
        for ((_, t, ..), parts) in accepted.iter().zip(laid) {
            t.partitions.write().extend(parts);
        }
        if let Err(e) = self.commit(&batch) {
            for ((_, t, ..), n) in accepted.iter().zip(before) {
                t.partitions.write().truncate(n);
            }
            Self::undo_layout(&made);
            self.host_all(&self.image());
            return Err(e);
        }
        Ok(())
    }

    /// The replicas of each new partition `from..to`, `rf` each (see
    /// [`super::placement`]).
    fn place(&self, from: i32, to: i32, rf: i32) -> Result<Vec<Vec<NodeId>>, TopicError> {
        let image = self.image();
        if image.brokers().next().is_none() {
            // Before this node registered (migrating an old data directory).
            return Ok(vec![vec![self.node]; (to - from).max(0) as usize]);
        }
        let start = (Uuid::new_v4().as_u128() % 65_521) as usize;
        super::placement::assign(&image, from, to, rf, start).map_err(placement_error)
    }

    /// The explicit replicas of the partitions a growth of `t` to `count`
    /// adds, checked (`None`: place them automatically).
    fn placement_of_growth(
        &self,
        t: &Topic,
        count: i32,
        assignments: Vec<Vec<NodeId>>,
    ) -> Result<Option<Vec<Vec<NodeId>>>, TopicError> {
        if assignments.is_empty() {
            return Ok(None);
        }
        let adding = count - t.partition_count() as i32;
        if assignments.len() as i32 != adding {
            return Err(TopicError::InvalidReplicaAssignment(format!(
                "Attempted to add {adding} additional partition(s), but only {} assignment(s) were specified.",
                assignments.len()
            )));
        }
        let existing = self
            .image()
            .topic(&t.name)
            .and_then(|ti| ti.partition(0))
            .map_or(0, |p| p.replicas.len());
        if let Some(a) = assignments.iter().find(|a| a.len() != existing) {
            return Err(TopicError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {existing} replica(s).",
                a.len()
            )));
        }
        self.check_assignment(&assignments)?;
        Ok(Some(assignments))
    }

    /// Checks explicit replica lists against the registered brokers.
    pub fn check_assignment(&self, assignment: &[Vec<NodeId>]) -> Result<(), TopicError> {
        super::placement::check_assignment(&self.image(), assignment).map_err(placement_error)
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
        let current = self.configs_of(name);
        let batch = super::broker_configs::diff(
            &ConfigResource::Topic(name.to_string()),
            &current,
            &configs,
        );
        if !batch.is_empty() {
            self.commit(&batch)?;
        }
        let lc = config::log_config(&self.broker, &configs);
        // The cleaner and retention read each log's config at every pass.
        for p in t.hosted() {
            p.log.set_config(lc.clone());
        }
        Ok(())
    }
}

/// A topic growth accepted: its index in the request, the topic, the
/// partition counts from and to, and explicit replicas of the new ones.
type Growth = (usize, Arc<Topic>, i32, i32, Option<Vec<Vec<NodeId>>>);

fn placement_error(e: super::placement::PlacementError) -> TopicError {
    match e {
        super::placement::PlacementError::ReplicationFactor(m) => TopicError::NoBrokers(m),
        super::placement::PlacementError::Assignment(m) => TopicError::InvalidReplicaAssignment(m),
    }
}
