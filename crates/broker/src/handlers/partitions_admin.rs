//! ElectLeaders, AlterPartitionReassignments and ListPartitionReassignments
//! on one node: every partition has its only replica, this node, as leader,
//! so no election is ever needed and a reassignment can only name this
//! node (which changes nothing and completes at once). Checks and messages
//! are Kafka's controller's.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsResponse, TopicName,
};
use thiserror::Error;

use super::s;
use crate::broker::Broker;

/// Why a partition cannot be elected or reassigned (Kafka's messages).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
enum PartitionAdminError {
    #[error("No such topic as {0}")]
    ElectNoTopic(String),
    #[error("No such partition as {0}-{1}")]
    ElectNoPartition(String, i32),
    #[error("Leader election not needed for topic partition.")]
    ElectionNotNeeded,
    #[error("Unable to find a topic named {0}.")]
    ReassignNoTopic(String),
    #[error("Unable to find partition {0}:{1}.")]
    ReassignNoPartition(String, i32),
    #[error("No partition reassignment is in progress.")]
    NoReassignmentInProgress,
    #[error("The manual partition assignment includes an empty replica list.")]
    EmptyReplicas,
    #[error(
        "The manual partition assignment includes broker {0}, but no such broker is registered."
    )]
    UnknownBroker(i32),
    #[error("The manual partition assignment includes the broker {0} more than once.")]
    DuplicateBroker(i32),
}

impl PartitionAdminError {
    fn code(&self) -> i16 {
        use PartitionAdminError::*;
        match self {
            ElectNoTopic(_)
            | ElectNoPartition(..)
            | ReassignNoTopic(_)
            | ReassignNoPartition(..) => ResponseError::UnknownTopicOrPartition,
            ElectionNotNeeded => ResponseError::ElectionNotNeeded,
            NoReassignmentInProgress => ResponseError::NoReassignmentInProgress,
            EmptyReplicas | UnknownBroker(_) | DuplicateBroker(_) => {
                ResponseError::InvalidReplicaAssignment
            }
        }
        .code()
    }
}

/// The partitions of `topic`, if it exists.
fn partition_count(broker: &Broker, topic: &str) -> Option<i32> {
    broker.topics.get(topic).map(|t| t.partition_count() as i32)
}

/// Kafka's election types: 0 preferred, 1 unclean.
fn valid_election_type(t: i8) -> bool {
    t == 0 || t == 1
}

fn elect_one(broker: &Broker, topic: &str, partition: i32) -> PartitionAdminError {
    match partition_count(broker, topic) {
        None => PartitionAdminError::ElectNoTopic(topic.to_string()),
        Some(n) if partition < 0 || partition >= n => {
            PartitionAdminError::ElectNoPartition(topic.to_string(), partition)
        }
        // The only replica leads already: preferred and unclean alike.
        Some(_) => PartitionAdminError::ElectionNotNeeded,
    }
}

fn result(partition: i32, e: &PartitionAdminError) -> PartitionResult {
    PartitionResult::default()
        .with_partition_id(partition)
        .with_error_code(e.code())
        .with_error_message(Some(s(e.to_string())))
}

/// ElectLeaders (v0 is always a preferred election). With no partitions
/// named, every topic is listed and, as in Kafka, partitions that need no
/// election are left out; named partitions each get their answer.
pub fn elect_leaders(
    broker: &Broker,
    version: i16,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    if version >= 1 && !valid_election_type(req.election_type) {
        // Kafka refuses the request: the error on the request and each partition.
        let e = ResponseError::InvalidRequest.code();
        let results = req
            .topic_partitions
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                ReplicaElectionResult::default()
                    .with_partition_result(
                        t.partitions
                            .iter()
                            .map(|p| {
                                PartitionResult::default()
                                    .with_partition_id(*p)
                                    .with_error_code(e)
                            })
                            .collect(),
                    )
                    .with_topic(t.topic)
            })
            .collect();
        return ElectLeadersResponse::default()
            .with_error_code(e)
            .with_replica_election_results(results);
    }
    let results = match req.topic_partitions {
        None => {
            let mut names: Vec<String> =
                broker.topics.all().iter().map(|t| t.name.clone()).collect();
            names.sort();
            names
                .into_iter()
                .map(|t| ReplicaElectionResult::default().with_topic(TopicName(s(t))))
                .collect()
        }
        Some(topics) => topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| result(*p, &elect_one(broker, &t.topic.0, *p)))
                    .collect();
                ReplicaElectionResult::default()
                    .with_topic(t.topic)
                    .with_partition_result(partitions)
            })
            .collect(),
    };
    ElectLeadersResponse::default().with_replica_election_results(results)
}

/// Checks a target replica list as Kafka's controller does.
fn check_replicas(broker: &Broker, replicas: &[BrokerId]) -> Result<(), PartitionAdminError> {
    if replicas.is_empty() {
        return Err(PartitionAdminError::EmptyReplicas);
    }
    let mut sorted: Vec<i32> = replicas.iter().map(|b| b.0).collect();
    sorted.sort_unstable();
    let mut seen = BTreeSet::new();
    for id in sorted {
        if id != broker.node_id {
            return Err(PartitionAdminError::UnknownBroker(id));
        }
        if !seen.insert(id) {
            return Err(PartitionAdminError::DuplicateBroker(id));
        }
    }
    Ok(())
}

fn reassign_one(
    broker: &Broker,
    topic: &str,
    partition: i32,
    replicas: Option<&[BrokerId]>,
) -> Result<(), PartitionAdminError> {
    let n = partition_count(broker, topic)
        .ok_or_else(|| PartitionAdminError::ReassignNoTopic(topic.to_string()))?;
    if partition < 0 || partition >= n {
        return Err(PartitionAdminError::ReassignNoPartition(
            topic.to_string(),
            partition,
        ));
    }
    match replicas {
        // Cancelling: nothing is ever in progress.
        None => Err(PartitionAdminError::NoReassignmentInProgress),
        // The only valid target is this node, where the replica already is.
        Some(r) => check_replicas(broker, r),
    }
}

/// AlterPartitionReassignments: each partition's answer; a valid target
/// changes nothing (it is the current assignment).
pub fn alter_reassignments(
    broker: &Broker,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match reassign_one(broker, &t.name.0, p.partition_index, p.replicas.as_deref())
                    {
                        Ok(()) => r,
                        Err(e) => r
                            .with_error_code(e.code())
                            .with_error_message(Some(s(e.to_string()))),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_responses(responses)
}

/// ListPartitionReassignments: none is ever in progress.
pub fn list_reassignments() -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default()
}
