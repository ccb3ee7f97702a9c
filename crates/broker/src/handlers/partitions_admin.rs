//! ElectLeaders, AlterPartitionReassignments and ListPartitionReassignments.
//! Reassignments go to the controller, which moves the partition (see
//! [`crate::metadata::reassignment`]); elections are not needed while
//! every partition has one replica. Checks and messages are Kafka's
//! controller's.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, TopicName,
};
use thiserror::Error;

use super::s;
use crate::broker::Broker;
use crate::metadata::controller::{ControllerReply, ControllerRequest};
use crate::metadata::reassignment::ReassignError;
use crate::metadata::NodeId;

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

fn check_exists(broker: &Broker, topic: &str, partition: i32) -> Result<(), PartitionAdminError> {
    let n = partition_count(broker, topic)
        .ok_or_else(|| PartitionAdminError::ReassignNoTopic(topic.to_string()))?;
    if partition < 0 || partition >= n {
        return Err(PartitionAdminError::ReassignNoPartition(
            topic.to_string(),
            partition,
        ));
    }
    Ok(())
}

/// Kafka's code for a refused reassignment.
fn reassign_code(e: &ReassignError) -> i16 {
    match e {
        ReassignError::UnknownTopicOrPartition(..) => ResponseError::UnknownTopicOrPartition,
        ReassignError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        ReassignError::NoReassignmentInProgress(..) => ResponseError::NoReassignmentInProgress,
        ReassignError::StaleLeader { .. } => ResponseError::NotLeaderOrFollower,
        ReassignError::InvalidIsr(..) => ResponseError::InvalidRequest,
    }
    .code()
}

/// A partition's local check: its place in the controller request, or the refusal.
type Checked = (i32, Result<usize, PartitionAdminError>);

/// AlterPartitionReassignments: partitions that exist go to the controller
/// as one request (each decided on its own); the answer comes once this
/// broker's image shows the change, so a ListPartitionReassignments that
/// follows sees it. Blocks (call off the async workers).
pub fn alter_reassignments(
    broker: &Broker,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    // Per partition: the local check's refusal, or its place in the controller request.
    let mut asks: Vec<(String, i32, Option<Vec<NodeId>>)> = Vec::new();
    let mut plan: Vec<(TopicName, Vec<Checked>)> = Vec::new();
    for t in req.topics {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let checked = check_exists(broker, &t.name.0, p.partition_index).map(|()| {
                asks.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    p.replicas
                        .as_ref()
                        .map(|r| r.iter().map(|b| NodeId(b.0)).collect()),
                ));
                asks.len() - 1
            });
            parts.push((p.partition_index, checked));
        }
        plan.push((t.name, parts));
    }
    let decided: Result<Vec<Result<(), ReassignError>>, String> = if asks.is_empty() {
        Ok(Vec::new())
    } else {
        let store = broker.topics.store();
        match store.call(&ControllerRequest::Reassign(asks)) {
            Ok(ControllerReply::Reassigned { offset, results }) => {
                if let Err(e) = store.wait_applied(offset) {
                    tracing::warn!(error = %e, "reassignment committed but not yet applied here");
                }
                Ok(results)
            }
            Ok(other) => Err(format!("the controller answered {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    };
    let responses = plan
        .into_iter()
        .map(|(name, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(index, checked)| {
                    let r = ReassignablePartitionResponse::default().with_partition_index(index);
                    let outcome: Result<(), (i16, String)> = match checked {
                        Err(e) => Err((e.code(), e.to_string())),
                        Ok(at) => match &decided {
                            Err(why) => Err((ResponseError::RequestTimedOut.code(), why.clone())),
                            Ok(results) => match results.get(at) {
                                Some(Ok(())) => Ok(()),
                                Some(Err(e)) => Err((reassign_code(e), e.to_string())),
                                None => Err((
                                    ResponseError::UnknownServerError.code(),
                                    "the controller gave no answer for this partition".into(),
                                )),
                            },
                        },
                    };
                    match outcome {
                        Ok(()) => r,
                        Err((code, message)) => {
                            r.with_error_code(code).with_error_message(Some(s(message)))
                        }
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_responses(responses)
}

/// ListPartitionReassignments: the reassignments under way, from the image
/// (of the named partitions, or of all).
pub fn list_reassignments(
    broker: &Broker,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let image = broker.topics.image();
    let ongoing = |t: &crate::metadata::TopicImage, index: i32| {
        let p = t.partition(index).filter(|p| p.reassigning())?;
        let ids = |v: &[NodeId]| v.iter().map(|n| BrokerId(n.0)).collect::<Vec<_>>();
        Some(
            OngoingPartitionReassignment::default()
                .with_partition_index(index)
                .with_replicas(ids(&p.replicas))
                .with_adding_replicas(ids(&p.adding))
                .with_removing_replicas(ids(&p.removing)),
        )
    };
    let mut topics = Vec::new();
    match req.topics {
        None => {
            for t in image.topics() {
                let parts: Vec<_> = (0..t.partitions.len() as i32)
                    .filter_map(|i| ongoing(t, i))
                    .collect();
                if !parts.is_empty() {
                    topics.push(
                        OngoingTopicReassignment::default()
                            .with_name(TopicName(s(t.name.to_string())))
                            .with_partitions(parts),
                    );
                }
            }
        }
        Some(asked) => {
            for a in asked {
                let Some(t) = image.topic(&a.name.0) else {
                    continue;
                };
                let parts: Vec<_> = a
                    .partition_indexes
                    .iter()
                    .filter_map(|i| ongoing(t, *i))
                    .collect();
                if !parts.is_empty() {
                    topics.push(
                        OngoingTopicReassignment::default()
                            .with_name(a.name)
                            .with_partitions(parts),
                    );
                }
            }
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
