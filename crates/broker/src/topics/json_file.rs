//! `topics.json`: the single node's record of its topics, written from the
//! [`MetadataImage`] after every administrative change and read back into
//! metadata records at start-up (so it is the image's snapshot on disk).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TopicError;
use crate::metadata::records::{ConfigResource, PartitionRecord};
use crate::metadata::{LeaderEpoch, MetadataImage, MetadataRecord, NodeId, RecordBatch};
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
        batch.extend(topic_records(&e.name, e.id, 0..e.partitions, node));
        batch.extend(config_records(&e.name, e.configs));
    }
    Ok(batch)
}

/// The records that create topic `name` (`id`) with `partitions`, on one node.
pub(super) fn topic_records(
    name: &str,
    id: Uuid,
    partitions: std::ops::Range<i32>,
    node: NodeId,
) -> impl Iterator<Item = MetadataRecord> {
    let head = (partitions.start == 0).then(|| MetadataRecord::Topic {
        name: name.to_string(),
        id,
    });
    head.into_iter()
        .chain(partitions.map(move |p| partition_record(id, p, node)))
}

/// A new partition placed on `node` alone, which leads it.
pub(super) fn partition_record(topic_id: Uuid, partition: i32, node: NodeId) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition,
        replicas: vec![node],
        isr: vec![node],
        leader: node,
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

/// Writes the image's topics to `path`, atomically and durably.
pub(super) fn write(path: &Path, image: &MetadataImage) -> Result<(), TopicError> {
    let entries: Vec<TopicEntry> = image
        .topics()
        .into_iter()
        .map(|t| TopicEntry {
            name: t.name.to_string(),
            id: t.id,
            partitions: t.partitions.len() as i32,
            configs: t.configs.clone(),
        })
        .collect();
    let bytes = serde_json::to_vec_pretty(&entries).map_err(|e| TopicError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    crate::durable::write_atomically(path, &bytes).map_err(|source| TopicError::Write {
        path: path.to_path_buf(),
        source,
    })
}
