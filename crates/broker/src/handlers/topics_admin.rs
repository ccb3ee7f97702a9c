//! CreateTopics, DeleteTopics and CreatePartitions.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};

use super::s;
use crate::broker::Broker;
use crate::config::{self, ConfigError};
use crate::topics::TopicError;

/// The Kafka error code and message for a topic administration error.
pub fn error_of(e: &TopicError) -> (ResponseError, String) {
    let code = match e {
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::InvalidName(_) => ResponseError::InvalidTopicException,
        TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        _ => ResponseError::KafkaStorageError,
    };
    (code, e.to_string())
}

fn replication_error(rf: i32) -> (ResponseError, String) {
    (
        ResponseError::InvalidReplicationFactor,
        format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered."),
    )
}

/// Handles CreateTopics.
pub fn create(broker: &Broker, version: i16, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let topics = &broker.topics;
    let default_parts = topics.broker().get_i64("num.partitions", 1) as i32;
    let default_rf = topics.broker().get_i64("default.replication.factor", 1) as i32;
    let mut seen = std::collections::HashSet::new();
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let mut r = CreatableTopicResult::default().with_name(t.name.clone());
            if version >= 5 {
                r = r.with_num_partitions(-1).with_replication_factor(-1);
            }
            let outcome: Result<(i32, BTreeMap<String, String>), (ResponseError, String)> = (|| {
                if !seen.insert(name.clone()) {
                    return Err((ResponseError::InvalidRequest, format!("Create topics request from client contains multiple entries for topic {name}")));
                }
                let mut configs = BTreeMap::new();
                for c in &t.configs {
                    let v = c.value.as_ref().map(|v| v.to_string()).ok_or_else(|| {
                        (ResponseError::InvalidConfig, format!("Null value not supported for topic config '{}'", c.name))
                    })?;
                    configs.insert(c.name.to_string(), v);
                }
                let parts = if !t.assignments.is_empty() {
                    if t.num_partitions != -1 || t.replication_factor != -1 {
                        return Err((ResponseError::InvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set.".into()));
                    }
                    for a in &t.assignments {
                        if a.broker_ids.iter().any(|b| b.0 != broker.node_id) || a.broker_ids.len() != 1 {
                            return Err(replication_error(a.broker_ids.len() as i32));
                        }
                    }
                    t.assignments.len() as i32
                } else {
                    let rf = if t.replication_factor == -1 { default_rf } else { t.replication_factor as i32 };
                    if rf <= 0 {
                        return Err((ResponseError::InvalidReplicationFactor, "Replication factor must be larger than 0.".into()));
                    }
                    if rf > 1 {
                        return Err(replication_error(rf));
                    }
                    if t.num_partitions == -1 { default_parts } else { t.num_partitions }
                };
                topics.validate_new(&name, parts, &configs).map_err(|e| error_of(&e))?;
                Ok((parts, configs))
            })();
            match outcome {
                Err((e, msg)) => r = r.with_error_code(e.code()).with_error_message(Some(s(msg))),
                Ok((parts, configs)) => {
                    let created = if req.validate_only { Ok(None) } else { topics.create(&name, parts, configs.clone()).map(Some) };
                    match created {
                        Err(e) => {
                            let (code, msg) = error_of(&e);
                            r = r.with_error_code(code.code()).with_error_message(Some(s(msg)));
                        }
                        Ok(t) => {
                            let described = config::TOPIC_CONFIGS
                                .iter()
                                .map(|d| {
                                    let (v, src) = config::topic_value(topics.broker(), &configs, d);
                                    CreatableTopicConfigs::default()
                                        .with_name(s(d.name))
                                        .with_value(Some(s(v)))
                                        .with_config_source(src as i8)
                                })
                                .collect();
                            if version >= 7 {
                                r = r.with_topic_id(t.map(|t| t.id).unwrap_or_default());
                            }
                            if version >= 5 {
                                r = r.with_num_partitions(parts).with_replication_factor(1).with_configs(Some(described));
                            }
                        }
                    }
                }
            }
            r
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

/// Handles DeleteTopics (by name, or by id from v6).
pub fn delete(broker: &Broker, version: i16, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let topics = &broker.topics;
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    targets.extend(
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let found = match &name {
                Some(n) => topics.get(n),
                None => topics.get_by_id(id),
            };
            let r = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(s(n))))
                .with_topic_id(id);
            match found {
                None => {
                    let e = if name.is_some() {
                        ResponseError::UnknownTopicOrPartition
                    } else {
                        ResponseError::UnknownTopicId
                    };
                    let r = r.with_error_code(e.code());
                    if version >= 5 {
                        r.with_error_message(Some(s(e.to_string())))
                    } else {
                        r
                    }
                }
                Some(t) => match topics.delete(&t.name) {
                    Ok(()) => r
                        .with_name(Some(TopicName(s(t.name.clone()))))
                        .with_topic_id(if version >= 6 {
                            t.id
                        } else {
                            uuid::Uuid::nil()
                        }),
                    Err(e) => {
                        let (code, msg) = error_of(&e);
                        let r = r.with_error_code(code.code());
                        if version >= 5 {
                            r.with_error_message(Some(s(msg)))
                        } else {
                            r
                        }
                    }
                },
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Handles CreatePartitions.
pub fn create_partitions(
    broker: &Broker,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if let Some(a) = &t.assignments {
                if a.iter()
                    .any(|x| x.broker_ids.iter().any(|b| b.0 != broker.node_id))
                {
                    let e = ResponseError::InvalidReplicaAssignment;
                    return r
                        .with_error_code(e.code())
                        .with_error_message(Some(s("Unknown broker id in assignment")));
                }
            }
            match broker
                .topics
                .create_partitions(&t.name.0, t.count, req.validate_only)
            {
                Ok(()) => r,
                Err(e) => {
                    let (code, msg) = error_of(&e);
                    r.with_error_code(code.code())
                        .with_error_message(Some(s(msg)))
                }
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// Maps a config error to Kafka's INVALID_CONFIG.
pub fn config_error(e: &ConfigError) -> (ResponseError, String) {
    (ResponseError::InvalidConfig, e.to_string())
}
