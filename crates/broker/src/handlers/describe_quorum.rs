//! DescribeQuorum (KIP-595, KIP-836, KIP-853): the metadata quorum's leader,
//! epoch, high watermark and each voter's and observer's progress, read
//! from the quorum (`strom-quorum`). The quorum's log is Kafka's
//! `__cluster_metadata` partition 0; any other partition is unknown.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use strom_quorum::ReplicaDescription;

use super::s;
use crate::broker::Broker;

/// The metadata log's topic name, as Kafka's KRaft calls it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

fn replica(r: &ReplicaDescription) -> ReplicaState {
    let ms = |v: Option<u64>| v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
    ReplicaState::default()
        .with_replica_id(BrokerId(i32::try_from(r.node_id).unwrap_or(-1)))
        .with_log_end_offset(ms(r.log_end_offset))
        .with_last_fetch_timestamp(ms(r.last_fetch_timestamp_ms))
        .with_last_caught_up_timestamp(ms(r.last_caught_up_timestamp_ms))
}

/// Handles DescribeQuorum.
pub fn handle(broker: &Broker, req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let asks_for_the_log = req.topics.len() == 1
        && req.topics[0].topic_name.0.as_str() == METADATA_TOPIC
        && req.topics[0].partitions.len() == 1
        && req.topics[0].partitions[0].partition_index == 0;
    let partition = match (asks_for_the_log, broker.topics.quorum()) {
        (false, _) => PartitionData::default()
            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
            .with_error_message(Some(s(ResponseError::UnknownTopicOrPartition.to_string()))),
        (true, None) => PartitionData::default()
            .with_error_code(ResponseError::NotLeaderOrFollower.code())
            .with_error_message(Some(s("the metadata quorum is shutting down".to_string()))),
        (true, Some(q)) => PartitionData::default()
            .with_leader_id(BrokerId(
                q.leader_id
                    .and_then(|l| i32::try_from(l).ok())
                    .unwrap_or(-1),
            ))
            .with_leader_epoch(i32::try_from(q.leader_epoch).unwrap_or(i32::MAX))
            .with_high_watermark(i64::try_from(q.high_watermark).unwrap_or(i64::MAX))
            .with_current_voters(q.voters.iter().map(replica).collect())
            .with_observers(q.observers.iter().map(replica).collect()),
    };
    DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(s(METADATA_TOPIC.to_string())))
        .with_partitions(vec![partition])])
}
