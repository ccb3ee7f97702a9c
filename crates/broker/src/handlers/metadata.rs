//! Metadata: brokers, controller and topic layout; auto-creates topics when
//! `auto.create.topics.enable` is on and the client allows it.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::s;
use crate::broker::Broker;
use crate::metadata::{NodeId, TopicImage};
use crate::topics::{NewTopic, TopicError};

/// Kafka's "authorized operations not requested" marker.
const OPS_OMITTED: i32 = i32::MIN;

/// A topic's entry as the image places it: leader, epoch, replicas and ISR
/// of each partition.
pub(crate) fn topic_entry(version: i16, t: &TopicImage) -> MetadataResponseTopic {
    let nodes = |v: &[NodeId]| v.iter().map(|n| BrokerId(n.0)).collect::<Vec<_>>();
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let offline = if p.leader == NodeId::NONE {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(offline)
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(p.leader.0))
                .with_leader_epoch(if version >= 7 { p.leader_epoch.0 } else { -1 })
                .with_replica_nodes(nodes(&p.replicas))
                .with_isr_nodes(nodes(&p.isr))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(s(t.name.to_string()))))
        .with_topic_id(if version >= 10 {
            t.id
        } else {
            uuid::Uuid::nil()
        })
        .with_is_internal(version >= 1 && &*t.name == crate::group::store::OFFSETS_TOPIC)
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

/// Where one requested topic's entry comes from.
enum Slot {
    /// Answered already.
    Done(MetadataResponseTopic),
    /// To be auto-created: index into the creation batch.
    Create(usize),
}

/// Handles a Metadata request. A topic named (or an id given) more than
/// once is answered once, as Kafka does (it reads the request's topics into
/// a set), so the response never grows past the topics that exist or were
/// asked for. Topics to auto-create are created in one batch, off the async
/// workers and within Kafka's per-request limits. Brokers are listed at
/// their endpoints for `listener`, the one the request came in on.
pub async fn handle(
    broker: &Broker,
    version: i16,
    req: MetadataRequest,
    listener: &str,
) -> MetadataResponse {
    let topics = &broker.topics;
    // v0: an empty list means all topics; v1+: null means all topics.
    let all = match &req.topics {
        None => true,
        Some(list) => list.is_empty() && version == 0,
    };
    let auto_create = topics.broker().get_bool("auto.create.topics.enable")
        && (version < 4 || req.allow_auto_topic_creation);
    let (topic_ops, cluster_ops) = (
        req.include_topic_authorized_operations,
        req.include_cluster_authorized_operations,
    );
    let image = topics.image();
    let mut entries: Vec<MetadataResponseTopic> = if all {
        image
            .topics()
            .into_iter()
            .map(|t| topic_entry(version, t))
            .collect()
    } else {
        let mut slots = Vec::new();
        let mut names_seen = HashSet::new();
        let mut ids_seen = HashSet::new();
        let mut to_create: Vec<NewTopic> = Vec::new();
        let parts = topics.broker().get_i64("num.partitions", 1) as i32;
        let auto_rf = topics.broker().get_i64("default.replication.factor", 1) as i32;
        for rt in req.topics.unwrap_or_default() {
            let slot = match rt.name {
                Some(name) => {
                    let name = name.0.to_string();
                    if !names_seen.insert(name.clone()) {
                        continue;
                    }
                    match image.topic(&name) {
                        Some(t) => Slot::Done(topic_entry(version, t)),
                        None if crate::names::validate_topic_name(&name).is_err() => {
                            Slot::Done(error_entry(
                                Some(name),
                                uuid::Uuid::nil(),
                                ResponseError::InvalidTopicException,
                            ))
                        }
                        None if auto_create => {
                            let mut new = NewTopic::new(&name, parts, BTreeMap::new());
                            new.replication_factor = auto_rf;
                            to_create.push(new);
                            Slot::Create(to_create.len() - 1)
                        }
                        None => Slot::Done(error_entry(
                            Some(name),
                            uuid::Uuid::nil(),
                            ResponseError::UnknownTopicOrPartition,
                        )),
                    }
                }
                None => {
                    if !ids_seen.insert(rt.topic_id) {
                        continue;
                    }
                    Slot::Done(match image.topic_by_id(rt.topic_id) {
                        Some(t) => topic_entry(version, t),
                        None => error_entry(None, rt.topic_id, ResponseError::UnknownTopicId),
                    })
                }
            };
            slots.push(slot);
        }
        let created = auto_create_all(broker, &to_create).await;
        let image = topics.image();
        slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Done(e) => e,
                Slot::Create(i) => {
                    let name = to_create[i].name.clone();
                    // Created now, or meanwhile by another request: answer with it.
                    match (&created[i], image.topic(&name)) {
                        (_, Some(t)) => topic_entry(version, t),
                        (Err(e), None) => error_entry(Some(name), uuid::Uuid::nil(), *e),
                        (Ok(()), None) => error_entry(
                            Some(name),
                            uuid::Uuid::nil(),
                            ResponseError::LeaderNotAvailable,
                        ),
                    }
                }
            })
            .collect()
    };
    if topic_ops {
        // As Kafka: every named topic, unknown ones too (not unknown topic ids).
        for e in entries.iter_mut().filter(|e| e.name.is_some()) {
            e.topic_authorized_operations = super::authorized::TOPIC;
        }
    }
    let brokers = super::cluster_view::live_brokers(broker, listener)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id.0))
                .with_host(s(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(s))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(s(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(super::cluster_view::controller_id(broker).0))
        .with_topics(entries)
        .with_cluster_authorized_operations(super::authorized::if_asked(
            cluster_ops,
            super::authorized::CLUSTER,
        ))
}

/// Auto-creates `wanted` in one batch on the blocking pool; each gets its
/// topic or the error code to answer with.
async fn auto_create_all(broker: &Broker, wanted: &[NewTopic]) -> Vec<Result<(), ResponseError>> {
    if wanted.is_empty() {
        return Vec::new();
    }
    let all = broker.topics.clone();
    let batch = wanted.to_vec();
    let outcome = tokio::task::spawn_blocking(move || all.create_all(batch, false)).await;
    let failed = |e: ResponseError| wanted.iter().map(|_| Err(e)).collect();
    match outcome {
        Ok(Ok(results)) => results
            .into_iter()
            .zip(wanted)
            .map(|(r, w)| match r {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(ResponseError::UnknownTopicOrPartition),
                Err(TopicError::InvalidName(_)) => Err(ResponseError::InvalidTopicException),
                Err(TopicError::AlreadyExists(_)) => Err(ResponseError::LeaderNotAvailable),
                Err(e) => {
                    tracing::warn!(topic = %w.name, error = %e, "auto-creating topic failed");
                    Err(ResponseError::UnknownTopicOrPartition)
                }
            })
            .collect(),
        Ok(Err(e)) => {
            tracing::warn!(topics = wanted.len(), error = %e, "auto-creating topics failed");
            failed(ResponseError::UnknownTopicOrPartition)
        }
        Err(e) => {
            tracing::error!(error = %e, "auto-creating topics failed");
            failed(ResponseError::UnknownTopicOrPartition)
        }
    }
}
