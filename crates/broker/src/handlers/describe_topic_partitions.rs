//! DescribeTopicPartitions (KIP-966, API 75): topics and their partitions
//! with eligible leader replicas, paged by a cursor. On one node every
//! partition is led by this node, in sync, with no ELR to report.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};

use super::{authorized, s};
use crate::broker::Broker;
use crate::metadata::{NodeId, PartitionImage, TopicImage};

/// Kafka's `max.request.partition.size.limit` default.
const DEFAULT_PARTITION_LIMIT: i64 = 2000;

/// Every requested topic with `error`, as Kafka answers a request it refuses.
fn refused(names: Vec<String>, error: ResponseError) -> DescribeTopicPartitionsResponse {
    let topics = names
        .into_iter()
        .map(|n| {
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(s(n))))
                .with_error_code(error.code())
                .with_topic_authorized_operations(authorized::OMITTED)
        })
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}

/// A partition as the metadata image places it.
fn partition(index: i32, p: &PartitionImage) -> DescribeTopicPartitionsResponsePartition {
    let nodes = |v: &[NodeId]| v.iter().map(|n| BrokerId(n.0)).collect::<Vec<_>>();
    DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(index)
        .with_leader_id(BrokerId(p.leader.0))
        .with_leader_epoch(p.leader_epoch.0)
        .with_replica_nodes(nodes(&p.replicas))
        .with_isr_nodes(nodes(&p.isr))
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
}

fn topic_entry(
    t: &TopicImage,
    partitions: Vec<DescribeTopicPartitionsResponsePartition>,
) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(s(t.name.to_string()))))
        .with_topic_id(t.id)
        .with_is_internal(crate::topics::is_internal_topic(&t.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(authorized::TOPIC)
}

/// Handles DescribeTopicPartitions as Kafka's broker does: the named topics
/// (or all, when none is named), sorted by name, from the cursor on; at
/// most `min(response_partition_limit, max.request.partition.size.limit)`
/// partitions, with a cursor to the first partition left out. Unknown
/// topics are answered UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION
/// for names Kafka would refuse) unless all topics were asked for.
pub fn handle(
    broker: &Broker,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let asked: Vec<String> = req.topics.iter().map(|t| t.name.0.to_string()).collect();
    let all = asked.is_empty();
    let cursor = req
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    let from = cursor.as_ref().map_or("", |(t, _)| t.as_str());
    let image = broker.topics.image();
    let mut names: Vec<String> = if all {
        image.topics().iter().map(|t| t.name.to_string()).collect()
    } else {
        asked.clone()
    };
    names.retain(|n| n.as_str() >= from);
    names.sort();
    names.dedup();
    if let Some((topic, index)) = &cursor {
        if (!all && names.binary_search(topic).is_err()) || *index < 0 {
            return refused(asked, ResponseError::InvalidRequest);
        }
    }
    let limit = broker
        .topics
        .broker()
        .get_i64("max.request.partition.size.limit", DEFAULT_PARTITION_LIMIT)
        .min(i64::from(req.response_partition_limit))
        .max(1) as usize;
    let mut remaining = limit;
    let mut resp = DescribeTopicPartitionsResponse::default();
    for name in names {
        if remaining == 0 {
            resp.next_cursor = Some(Cursor::default().with_topic_name(TopicName(s(name))));
            break;
        }
        let Some(t) = image.topic(&name) else {
            if !all {
                let error = if crate::names::validate_topic_name(&name).is_ok() {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::InvalidTopicException
                };
                resp.topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(TopicName(s(name.clone()))))
                        .with_error_code(error.code())
                        .with_is_internal(crate::topics::is_internal_topic(&name))
                        .with_topic_authorized_operations(authorized::TOPIC),
                );
            }
            continue;
        };
        let start = match &cursor {
            Some((c, i)) if *c == name => (*i).max(0) as usize,
            _ => 0,
        };
        let count = t.partitions.len();
        let end = count.min(start.saturating_add(remaining));
        let partitions: Vec<_> = (start..end)
            .map(|i| partition(i as i32, &t.partitions[i]))
            .collect();
        remaining -= partitions.len();
        resp.topics.push(topic_entry(t, partitions));
        if end < count {
            resp.next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(s(name)))
                    .with_partition_index(end as i32),
            );
            break;
        }
    }
    resp
}
