//! OffsetForLeaderEpoch: where the records of a leader epoch end in this
//! leader's log (KIP-101). Consumers ask it after a leader change to check
//! that their position was not cut off (KIP-320: the Java consumer's
//! "truncation detected"); followers of older versions asked it before
//! fetching.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::broker::Broker;
use crate::metadata::LeaderEpoch;

/// Handles an OffsetForLeaderEpoch request: per partition, the largest
/// epoch at most the one asked for and the offset its records end at
/// (`-1, -1` when the log knows none), from the leader only. The client's
/// `current_leader_epoch` is checked as Fetch checks it. Versions 2-4
/// (Kafka 4 dropped the older ones).
pub fn handle(broker: &Broker, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let current = LeaderEpoch(p.current_leader_epoch);
                    let r = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    match broker
                        .replicas
                        .leader_at(t.topic.0.as_str(), p.partition, current)
                    {
                        Ok(led) => {
                            let (epoch, end) = led.log.log.end_offset_for_epoch(p.leader_epoch);
                            r.with_leader_epoch(epoch).with_end_offset(end)
                        }
                        Err(e) => r.with_error_code(e.code().code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
