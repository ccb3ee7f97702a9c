//! `topics.json`: where versions before the metadata log recorded a single
//! node's topics. Read once, into metadata records, by [`migrate`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TopicError;
use crate::metadata::records::{ConfigResource, PartitionRecord};
use crate::metadata::{LeaderEpoch, MetadataRecord, MetadataStore, NodeId, RecordBatch};
use crate::names;

/// The file's name in the data directory.
pub(super) const FILE: &str = "topics.json";

/// How to recover from a damaged `topics.json`.
const REMEDY: &str = "It lists this broker's topics and nothing else replaces it: \
restore topics.json from a backup of this data directory, or, if none of its topics is needed, \
move the data directory aside and start with an empty one";

/// One topic as the file lists it.
#[derive(Debug, Serialize, Deserialize)]
struct TopicEntry {
    name: String,
    id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

/// Reads `topics.json` as the metadata records that make its topics, each
/// partition led by `node`. A missing file means no topics (a new data
/// directory); an empty, damaged or unreadable one stops the broker with a
/// message saying which and how to recover.
pub(super) fn read(path: &Path, node: NodeId) -> Result<RecordBatch, TopicError> {
    let damaged = |problem: String| TopicError::Damaged {
        path: path.to_path_buf(),
        problem,
        remedy: REMEDY,
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
    let entries: Vec<TopicEntry> = serde_json::from_slice(&bytes).map_err(|e| {
        damaged(format!(
            "is damaged: it is not the JSON list of topics the broker writes ({e})"
        ))
    })?;
    let mut names_seen = std::collections::HashSet::new();
    let mut ids_seen = std::collections::HashSet::new();
    let mut batch = Vec::new();
    for e in entries {
        if names::validate_topic_name(&e.name).is_err() || !(1..=100_000).contains(&e.partitions) {
            return Err(damaged(format!(
                "is damaged: it lists a topic {:?} with {} partitions, which this broker never writes",
                e.name, e.partitions
            )));
        }
        if !names_seen.insert(e.name.clone()) || !ids_seen.insert(e.id) {
            return Err(damaged(format!(
                "is damaged: it lists topic {:?} (or its id) twice",
                e.name
            )));
        }
        let placed = vec![vec![node]; e.partitions.max(0) as usize];
        batch.extend(topic_records(&e.name, e.id, &placed));
        batch.extend(config_records(&e.name, e.configs));
    }
    Ok(batch)
}

/// The records that create topic `name` (`id`) with `partitions`, on one node.
pub(super) fn topic_records<'a>(
    name: &str,
    id: Uuid,
    placed: &'a [Vec<NodeId>],
) -> impl Iterator<Item = MetadataRecord> + 'a {
    let head = MetadataRecord::Topic {
        name: name.to_string(),
        id,
    };
    std::iter::once(head).chain(
        placed
            .iter()
            .enumerate()
            .map(move |(p, replicas)| partition_record(id, p as i32, replicas)),
    )
}

/// A new partition on `replicas`, all in sync, led by the first.
pub(super) fn partition_record(
    topic_id: Uuid,
    partition: i32,
    replicas: &[NodeId],
) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader: replicas.first().copied().unwrap_or(NodeId::NONE),
        leader_epoch: LeaderEpoch::FIRST,
        partition_epoch: 0,
    })
}

/// The records that set `configs` as the overrides of topic `name`.
pub(super) fn config_records(
    name: &str,
    configs: BTreeMap<String, String>,
) -> impl Iterator<Item = MetadataRecord> + '_ {
    configs
        .into_iter()
        .map(move |(k, v)| MetadataRecord::Config {
            resource: ConfigResource::Topic(name.to_string()),
            name: k,
            value: Some(v),
        })
}

/// Most records one migration step commits (the controller's bound on one operation).
const MIGRATE_STEP: usize = super::MAX_RECORDS_PER_USER_OP;

/// Moves the topics of a `topics.json` written by an earlier version into
/// the metadata log, then renames the file `topics.json.migrated`. Each step
/// commits what the log does not have yet (topics, partitions, config
/// overrides), so a migration cut short by a crash resumes where it stopped.
pub(super) fn migrate(dir: &Path, node: NodeId, store: &MetadataStore) -> Result<(), TopicError> {
    let path = dir.join(FILE);
    if !path.exists() {
        return Ok(());
    }
    let records = read(&path, node)?;
    let image = store.image();
    let mut missing: RecordBatch = Vec::new();
    let mut ids = std::collections::HashMap::new();
    for r in records {
        let needed = match &r {
            MetadataRecord::Topic { name, id } => {
                ids.insert(*id, name.clone());
                image.topic(name).is_none()
            }
            MetadataRecord::Partition(p) => ids.get(&p.topic_id).is_some_and(|name| {
                image
                    .topic(name)
                    .is_none_or(|t| t.partition(p.partition).is_none())
            }),
            MetadataRecord::Config {
                resource: ConfigResource::Topic(name),
                name: key,
                value,
            } => image
                .topic(name)
                .is_none_or(|t| t.configs.get(key) != value.as_ref()),
            _ => false,
        };
        if needed {
            missing.push(r);
        }
    }
    let total = missing.len();
    for step in missing.chunks(MIGRATE_STEP) {
        store.commit(step)?;
    }
    let done = dir.join(format!("{FILE}.migrated"));
    std::fs::rename(&path, &done)?;
    tracing::info!(records = total, from = %path.display(), kept_as = %done.display(), "moved topics.json into the metadata log");
    Ok(())
}
