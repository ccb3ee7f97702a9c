//! ListOffsets: earliest, latest (the last stable offset under read_committed),
//! by timestamp and max timestamp (KIP-734).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Broker;

/// Latest offset (the high watermark).
pub const LATEST: i64 = -1;
/// Log start offset.
pub const EARLIEST: i64 = -2;
/// The record with the largest timestamp.
pub const MAX_TIMESTAMP: i64 = -3;
/// Earliest offset kept locally (tiered storage); the log start here.
pub const EARLIEST_LOCAL: i64 = -4;

/// Handles a ListOffsets request.
pub fn handle(broker: &Broker, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    // leader_epoch exists from v4.
    let epoch = if version >= 4 { 0 } else { -1 };
    // read_committed (v2+) reads "latest" as the last stable offset.
    let read_committed = version >= 2 && req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topics.get(&t.name.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index).with_timestamp(-1).with_offset(-1);
                    let Some(part) = topic.as_ref().and_then(|t| t.partition(p.partition_index)) else {
                        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let log = &part.log;
                    let found = match p.timestamp {
                        LATEST if read_committed => Ok(Some((part.last_stable_offset(), -1))),
                        LATEST => Ok(Some((log.log_end_offset(), -1))),
                        EARLIEST | EARLIEST_LOCAL => Ok(Some((log.log_start_offset(), -1))),
                        MAX_TIMESTAMP => log.max_timestamp(),
                        ts if ts < 0 => return r.with_error_code(ResponseError::InvalidRequest.code()),
                        ts => log.offset_for_timestamp(ts),
                    };
                    match found {
                        Ok(Some((offset, ts))) => r.with_offset(offset).with_timestamp(ts).with_leader_epoch(epoch),
                        Ok(None) => r.with_leader_epoch(epoch),
                        Err(e) => {
                            tracing::error!(topic = %t.name.0, partition = p.partition_index, error = %e, "offset lookup failed");
                            r.with_error_code(ResponseError::KafkaStorageError.code())
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
