//! AlterPartitionReassignments and ListPartitionReassignments.
//! Reassignments go to the controller, which moves the partition (see
//! [`crate::metadata::reassignment`]). Checks and messages are Kafka's
//! controller's.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use thiserror::Error;

use super::s;
use crate::broker::Broker;
use crate::metadata::controller::{ControllerReply, ControllerRequest};
use crate::metadata::reassignment::ReassignError;
use crate::metadata::NodeId;

/// Why a partition cannot be reassigned (Kafka's messages).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
enum PartitionAdminError {
    #[error("Unable to find a topic named {0}.")]
    ReassignNoTopic(String),
    #[error("Unable to find partition {0}:{1}.")]
    ReassignNoPartition(String, i32),
}

impl PartitionAdminError {
    fn code(&self) -> i16 {
        use PartitionAdminError::*;
        match self {
            ReassignNoTopic(_) | ReassignNoPartition(..) => ResponseError::UnknownTopicOrPartition,
        }
        .code()
    }
}

/// The partitions of `topic`, if it exists.
fn partition_count(broker: &Broker, topic: &str) -> Option<i32> {
    broker.topics.get(topic).map(|t| t.partition_count() as i32)
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
        ReassignError::IneligibleReplica(..) => ResponseError::IneligibleReplica,
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
        match broker
            .topics
            .store()
            .call_applied(&ControllerRequest::Reassign(asks))
        {
            Ok(ControllerReply::Reassigned { results, .. }) => Ok(results),
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
