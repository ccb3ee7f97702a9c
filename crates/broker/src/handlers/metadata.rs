//! Metadata: brokers, controller and topic layout; auto-creates topics when
//! `auto.create.topics.enable` is on and the client allows it.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::s;
use crate::broker::Broker;
use crate::topics::{Topic, TopicError};

/// Kafka's "authorized operations not requested" marker.
const OPS_OMITTED: i32 = i32::MIN;

pub(crate) fn topic_entry(broker: &Broker, version: i16, t: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(broker.node_id);
    let partitions = t
        .partitions
        .read()
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(node)
                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(s(t.name.clone()))))
        .with_topic_id(if version >= 10 {
            t.id
        } else {
            uuid::Uuid::nil()
        })
        .with_is_internal(version >= 1 && t.name == crate::group::store::OFFSETS_TOPIC)
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPS_OMITTED)
}

fn error_entry(name: Option<String>, id: uuid::Uuid, e: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(|n| TopicName(s(n))))
        .with_topic_id(id)
        .with_error_code(e.code())
        .with_topic_authorized_operations(OPS_OMITTED)
}

/// Handles a Metadata request.
pub fn handle(broker: &Broker, version: i16, req: MetadataRequest) -> MetadataResponse {
    let topics = &broker.topics;
    // v0: an empty list means all topics; v1+: null means all topics.
    let all = match &req.topics {
        None => true,
        Some(list) => list.is_empty() && version == 0,
    };
    let auto_create = topics.broker().get_bool("auto.create.topics.enable")
        && (version < 4 || req.allow_auto_topic_creation);
    let entries = if all {
        topics
            .all()
            .iter()
            .map(|t| topic_entry(broker, version, t))
            .collect()
    } else {
        let mut out = Vec::new();
        for rt in req.topics.unwrap_or_default() {
            match rt.name {
                Some(name) => {
                    let name = name.0.to_string();
                    match topics.get(&name) {
                        Some(t) => out.push(topic_entry(broker, version, &t)),
                        None if auto_create => {
                            let parts = topics.broker().get_i64("num.partitions", 1) as i32;
                            match topics.create(&name, parts, BTreeMap::new()) {
                                Ok(t) => out.push(topic_entry(broker, version, &t)),
                                Err(TopicError::InvalidName(_)) => out.push(error_entry(
                                    Some(name),
                                    uuid::Uuid::nil(),
                                    ResponseError::InvalidTopicException,
                                )),
                                Err(TopicError::AlreadyExists(_)) => match topics.get(&name) {
                                    Some(t) => out.push(topic_entry(broker, version, &t)),
                                    None => out.push(error_entry(
                                        Some(name),
                                        uuid::Uuid::nil(),
                                        ResponseError::LeaderNotAvailable,
                                    )),
                                },
                                Err(e) => {
                                    tracing::warn!(topic = %name, error = %e, "auto-creating topic failed");
                                    out.push(error_entry(
                                        Some(name),
                                        uuid::Uuid::nil(),
                                        ResponseError::UnknownTopicOrPartition,
                                    ))
                                }
                            }
                        }
                        None => {
                            let e = if crate::names::validate_topic_name(&name).is_err() {
                                ResponseError::InvalidTopicException
                            } else {
                                ResponseError::UnknownTopicOrPartition
                            };
                            out.push(error_entry(Some(name), uuid::Uuid::nil(), e))
                        }
                    }
                }
                None => match topics.get_by_id(rt.topic_id) {
                    Some(t) => out.push(topic_entry(broker, version, &t)),
                    None => out.push(error_entry(
                        None,
                        rt.topic_id,
                        ResponseError::UnknownTopicId,
                    )),
                },
            }
        }
        out
    };
    let (host, port) = &broker.advertised;
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(broker.node_id))
            .with_host(s(host.clone()))
            .with_port(*port)])
        .with_cluster_id(Some(s(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.node_id))
        .with_topics(entries)
        .with_cluster_authorized_operations(OPS_OMITTED)
}
