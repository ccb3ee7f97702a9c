//! DeleteRecords: advance partitions' log start offsets.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use strom_storage::StorageError;

use crate::broker::Broker;

/// Handles DeleteRecords; offset -1 means "up to the high watermark".
pub fn handle(broker: &Broker, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1);
                    let part = match broker.replicas.leader_of(&t.name.0, p.partition_index) {
                        Ok(led) => led.log,
                        Err(e) => return r.with_error_code(e.code().code()),
                    };
                    let offset = if p.offset == -1 { part.high_watermark() } else { p.offset };
                    match part.log.delete_records_before(offset) {
                        Ok(low) => r.with_low_watermark(low),
                        Err(StorageError::OffsetOutOfRange { .. }) => r.with_error_code(ResponseError::OffsetOutOfRange.code()),
                        Err(e) => {
                            tracing::error!(topic = %t.name.0, partition = p.partition_index, error = %e, "delete records failed");
                            r.with_error_code(ResponseError::KafkaStorageError.code())
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
