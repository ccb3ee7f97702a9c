//! ListOffsets: earliest, latest (the last stable offset under read_committed),
//! by timestamp and max timestamp (KIP-734).

use kafka_protocol::error::ResponseError;
use std::collections::{HashMap, HashSet};

use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Broker;
use crate::metadata::LeaderEpoch;

/// Latest offset (the high watermark).
pub const LATEST: i64 = -1;
/// Log start offset.
pub const EARLIEST: i64 = -2;
/// The record with the largest timestamp.
pub const MAX_TIMESTAMP: i64 = -3;
/// Earliest offset kept locally (tiered storage); the log start here.
pub const EARLIEST_LOCAL: i64 = -4;

/// Handles a ListOffsets request. As in Kafka, the response holds one entry
/// per topic-partition however often the request names it (a topic named
/// twice is answered once, its partitions merged), and a partition named
/// more than once is answered INVALID_REQUEST without being looked up: the
/// response never outgrows the distinct partitions asked for.
pub fn handle(broker: &Broker, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    // leader_epoch and current_leader_epoch exist from v4.
    let with_epoch = version >= 4;
    // read_committed (v2+) reads "latest" as the last stable offset.
    let read_committed = version >= 2 && req.isolation_level == 1;
    let mut named: HashMap<(&str, i32), usize> = HashMap::new();
    for t in &req.topics {
        for p in &t.partitions {
            *named
                .entry((t.name.0.as_str(), p.partition_index))
                .or_default() += 1;
        }
    }
    let mut by_topic: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<ListOffsetsTopicResponse> = Vec::new();
    let mut answered = HashSet::new();
    for t in &req.topics {
        let name = t.name.0.as_str();
        let slot = *by_topic.entry(name).or_insert_with(|| {
            out.push(ListOffsetsTopicResponse::default().with_name(t.name.clone()));
            out.len() - 1
        });
        for p in &t.partitions {
            let key = (name, p.partition_index);
            if !answered.insert(key) {
                continue;
            }
            let r = if named[&key] > 1 {
                unknown(p.partition_index).with_error_code(ResponseError::InvalidRequest.code())
            } else {
                lookup(broker, name, p, read_committed, with_epoch)
            };
            out[slot].partitions.push(r);
        }
    }
    ListOffsetsResponse::default().with_topics(out)
}

fn unknown(index: i32) -> ListOffsetsPartitionResponse {
    ListOffsetsPartitionResponse::default()
        .with_partition_index(index)
        .with_timestamp(-1)
        .with_offset(-1)
}

/// One partition's answer.
fn lookup(
    broker: &Broker,
    name: &str,
    p: &ListOffsetsPartition,
    read_committed: bool,
    with_epoch: bool,
) -> ListOffsetsPartitionResponse {
    let r = unknown(p.partition_index);
    let asked = if with_epoch {
        LeaderEpoch(p.current_leader_epoch)
    } else {
        LeaderEpoch::UNKNOWN
    };
    let (part, epoch) = match broker.replicas.leader_at(name, p.partition_index, asked) {
        Ok(led) => (led.log, if with_epoch { led.epoch.0 } else { -1 }),
        Err(e) => return r.with_error_code(e.code().code()),
    };
    let log = &part.log;
    let found = match p.timestamp {
        LATEST if read_committed => Ok(Some((part.last_stable_offset(), -1))),
        LATEST => Ok(Some((part.high_watermark(), -1))),
        EARLIEST | EARLIEST_LOCAL => Ok(Some((log.log_start_offset(), -1))),
        MAX_TIMESTAMP => log.max_timestamp(),
        ts if ts < 0 => return r.with_error_code(ResponseError::InvalidRequest.code()),
        ts => log.offset_for_timestamp(ts),
    };
    match found {
        Ok(Some((offset, ts))) => r
            .with_offset(offset)
            .with_timestamp(ts)
            .with_leader_epoch(epoch),
        Ok(None) => r.with_leader_epoch(epoch),
        Err(e) => {
            tracing::error!(topic = %name, partition = p.partition_index, error = %e, "offset lookup failed");
            r.with_error_code(ResponseError::KafkaStorageError.code())
        }
    }
}
