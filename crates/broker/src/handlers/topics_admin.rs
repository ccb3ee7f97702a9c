//! CreateTopics, DeleteTopics and CreatePartitions.
//!
//! Creation runs on tokio's blocking pool (it makes directories and files
//! and fsyncs `topics.json`), so a large request never stalls the acceptor
//! or other connections. Requests larger than Kafka's controller allows are
//! refused whole with POLICY_VIOLATION before anything is touched.

use std::collections::{BTreeMap, HashMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
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
use crate::metadata::NodeId;
use crate::topics::{
    NewTopic, TopicError, Topics, EXCESSIVE_PARTITIONS, MAX_PARTITIONS_PER_REQUEST,
};

/// The Kafka error code and message for a topic administration error.
pub fn error_of(e: &TopicError) -> (ResponseError, String) {
    let code = match e {
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::InvalidName(_) => ResponseError::InvalidTopicException,
        TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::PolicyViolation(_) => ResponseError::PolicyViolation,
        TopicError::NoBrokers(_) => ResponseError::InvalidReplicationFactor,
        TopicError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        _ => ResponseError::KafkaStorageError,
    };
    (code, e.to_string())
}

fn replication_error(rf: i32, usable: usize) -> (ResponseError, String) {
    (
        ResponseError::InvalidReplicationFactor,
        crate::topics::placement::replication_factor_message(rf, usable),
    )
}

/// Partitions a CreateTopics asks for, counted as Kafka's controller does
/// before any other check: `num.partitions` for -1, assignments when given,
/// nothing for a count that is invalid anyway.
fn requested_partitions(req: &CreateTopicsRequest, default_parts: i32) -> u64 {
    req.topics
        .iter()
        .map(|t| {
            if !t.assignments.is_empty() {
                t.assignments.len() as u64
            } else if t.num_partitions == -1 {
                default_parts.max(0) as u64
            } else {
                t.num_partitions.max(0) as u64
            }
        })
        .sum()
}

/// Runs blocking topic administration on tokio's blocking pool, so the
/// connection acceptor and other clients keep being served meanwhile.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "topic administration task failed");
            None
        }
    }
}

/// The request-level checks of one CreateTopics entry.
fn check_creatable(
    broker: &Broker,
    t: &CreatableTopic,
    default_parts: i32,
    default_rf: i32,
) -> Result<NewTopic, (ResponseError, String)> {
    let name = t.name.0.to_string();
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let v = c.value.as_ref().map(|v| v.to_string()).ok_or_else(|| {
            (
                ResponseError::InvalidConfig,
                format!("Null value not supported for topic config '{}'", c.name),
            )
        })?;
        configs.insert(c.name.to_string(), v);
    }
    let image = broker.topics.image();
    // Before this node registered (an old data directory) it is the one broker.
    let usable = crate::topics::placement::broker_order(&image).len().max(1);
    let mut assignments = Vec::new();
    let rf;
    let partitions = if !t.assignments.is_empty() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set.".into(),
            ));
        }
        let mut ordered: Vec<_> = t.assignments.iter().collect();
        ordered.sort_by_key(|a| a.partition_index);
        if ordered
            .iter()
            .enumerate()
            .any(|(i, a)| a.partition_index != i as i32)
        {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                "partitions should be a consecutive 0-based integer sequence".into(),
            ));
        }
        assignments = ordered
            .iter()
            .map(|a| a.broker_ids.iter().map(|b| NodeId(b.0)).collect())
            .collect::<Vec<Vec<NodeId>>>();
        crate::topics::placement::check_assignment(&image, &assignments).map_err(|e| match e {
            crate::topics::placement::PlacementError::Assignment(m)
            | crate::topics::placement::PlacementError::ReplicationFactor(m) => {
                (ResponseError::InvalidReplicaAssignment, m)
            }
        })?;
        rf = assignments.first().map_or(1, |a| a.len() as i32);
        t.assignments.len() as i32
    } else {
        rf = if t.replication_factor == -1 {
            default_rf
        } else {
            t.replication_factor as i32
        };
        if rf <= 0 {
            return Err((
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0.".into(),
            ));
        }
        if rf as usize > usable {
            return Err(replication_error(rf, usable));
        }
        if t.num_partitions == -1 {
            default_parts
        } else {
            t.num_partitions
        }
    };
    Ok(NewTopic {
        name,
        partitions,
        configs,
        replication_factor: rf,
        assignments,
    })
}

/// Handles CreateTopics: request-level checks here, then every topic that
/// passes is created in one all-or-nothing step off the async workers.
pub async fn create(
    broker: &Broker,
    version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let topics = &broker.topics;
    let default_parts = topics.broker().get_i64("num.partitions", 1) as i32;
    let default_rf = topics.broker().get_i64("default.replication.factor", 1) as i32;
    let base = |name: &TopicName| {
        let r = CreatableTopicResult::default().with_name(name.clone());
        if version >= 5 {
            r.with_num_partitions(-1).with_replication_factor(-1)
        } else {
            r
        }
    };
    let refuse_all = |req: &CreateTopicsRequest, code: ResponseError, msg: &str| {
        let results = req
            .topics
            .iter()
            .map(|t| {
                base(&t.name)
                    .with_error_code(code.code())
                    .with_error_message(Some(s(msg)))
            })
            .collect();
        CreateTopicsResponse::default().with_topics(results)
    };
    if requested_partitions(&req, default_parts) > MAX_PARTITIONS_PER_REQUEST {
        tracing::warn!(
            topics = req.topics.len(),
            "refusing CreateTopics: more than {MAX_PARTITIONS_PER_REQUEST} partitions requested"
        );
        return refuse_all(&req, ResponseError::PolicyViolation, EXCESSIVE_PARTITIONS);
    }
    let mut seen = std::collections::HashSet::new();
    // Per entry: the request-level error, or the index of its NewTopic.
    let mut checked = Vec::with_capacity(req.topics.len());
    let mut wanted = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let outcome = if !seen.insert(name.clone()) {
            Err((
                ResponseError::InvalidRequest,
                format!(
                    "Create topics request from client contains multiple entries for topic {name}"
                ),
            ))
        } else {
            check_creatable(broker, t, default_parts, default_rf)
        };
        checked.push(outcome.map(|n| {
            wanted.push(n);
            wanted.len() - 1
        }));
    }
    let plan = wanted.clone();
    let all = broker.topics.clone();
    let validate_only = req.validate_only;
    let created = match blocking(move || all.create_all(plan, validate_only)).await {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            let (code, msg) = error_of(&e);
            tracing::warn!(topics = req.topics.len(), error = %msg, "refusing CreateTopics");
            return refuse_all(&req, code, &msg);
        }
        None => {
            return refuse_all(
                &req,
                ResponseError::UnknownServerError,
                "The server experienced an unexpected error when processing the request.",
            )
        }
    };
    let results = req
        .topics
        .iter()
        .zip(checked)
        .map(|(t, outcome)| {
            let r = base(&t.name);
            let i = match outcome {
                Err((e, msg)) => {
                    return r.with_error_code(e.code()).with_error_message(Some(s(msg)))
                }
                Ok(i) => i,
            };
            match &created[i] {
                Err(e) => {
                    let (code, msg) = error_of(e);
                    r.with_error_code(code.code())
                        .with_error_message(Some(s(msg)))
                }
                Ok(topic) => {
                    let new = &wanted[i];
                    let mut r = r;
                    if version >= 7 {
                        r = r.with_topic_id(topic.as_ref().map(|t| t.id).unwrap_or_default());
                    }
                    if version >= 5 {
                        let described = config::TOPIC_CONFIGS
                            .iter()
                            .map(|d| {
                                let (v, src) =
                                    config::topic_value(topics.broker(), &new.configs, d);
                                CreatableTopicConfigs::default()
                                    .with_name(s(d.name))
                                    .with_value(Some(s(v)))
                                    .with_config_source(src as i8)
                            })
                            .collect();
                        r = r
                            .with_num_partitions(new.partitions)
                            .with_replication_factor(new.replication_factor as i16)
                            .with_configs(Some(described));
                    }
                    r
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

/// Handles DeleteTopics (by name, or by id from v6), on the blocking pool
/// (it removes directories and rewrites `topics.json`).
pub async fn delete(
    broker: &Broker,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let topics = broker.topics.clone();
    blocking(move || delete_blocking(&topics, version, req))
        .await
        .unwrap_or_default()
}

fn delete_blocking(
    topics: &Topics,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
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

/// A request entry after the request-level checks: its index among the
/// operations to run, or its error.
type Checked = Result<usize, (ResponseError, String)>;

/// Handles CreatePartitions: every topic that passes is grown in one
/// all-or-nothing step off the async workers.
pub async fn create_partitions(
    broker: &Broker,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &req.topics {
        *counts.entry(t.name.0.as_str()).or_default() += 1;
    }
    let mut answered = HashSet::new();
    // Per entry to answer: the request-level error, or the index of its want.
    let mut plan: Vec<(TopicName, Checked)> = Vec::new();
    let mut wants = Vec::new();
    for t in &req.topics {
        let name = t.name.0.as_str();
        if !answered.insert(name) {
            continue;
        }
        let outcome = if counts[name] > 1 {
            Err((
                ResponseError::InvalidRequest,
                "Duplicate topic name.".into(),
            ))
        } else {
            let assignments = t
                .assignments
                .iter()
                .flatten()
                .map(|a| a.broker_ids.iter().map(|b| NodeId(b.0)).collect())
                .collect();
            wants.push((name.to_string(), t.count, assignments));
            Ok(wants.len() - 1)
        };
        plan.push((t.name.clone(), outcome));
    }
    let all = broker.topics.clone();
    let validate_only = req.validate_only;
    let grown = match blocking(move || all.grow_all(wants, validate_only)).await {
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) => {
            let (code, msg) = error_of(&e);
            tracing::warn!(topics = req.topics.len(), error = %msg, "refusing CreatePartitions");
            Err((code, msg))
        }
        None => Err((
            ResponseError::UnknownServerError,
            "The server experienced an unexpected error when processing the request.".into(),
        )),
    };
    let results = plan
        .into_iter()
        .map(|(name, outcome)| {
            let r = CreatePartitionsTopicResult::default().with_name(name);
            let failed = match (&grown, outcome) {
                (Err((code, msg)), _) => Some((*code, msg.clone())),
                (_, Err(e)) => Some(e),
                (Ok(grown), Ok(i)) => grown[i].as_ref().err().map(error_of),
            };
            match failed {
                None => r,
                Some((code, msg)) => r
                    .with_error_code(code.code())
                    .with_error_message(Some(s(msg))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// Maps a config error to Kafka's INVALID_CONFIG.
pub fn config_error(e: &ConfigError) -> (ResponseError, String) {
    (ResponseError::InvalidConfig, e.to_string())
}
