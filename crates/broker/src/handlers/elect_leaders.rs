//! ElectLeaders (Kafka's `kafka-leader-election.sh`, the Admin client's
//! `electLeaders`): the controller elects (see
//! [`crate::metadata::election`]); the answer comes once this broker's
//! image shows the new leaders, so a Metadata request that follows sees
//! them. Checks, codes and messages are Kafka's controller's.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::s;
use crate::broker::Broker;
use crate::metadata::controller::{ControllerReply, ControllerRequest};
use crate::metadata::election::{ElectError, ElectionType};

/// Kafka's code for a partition not elected.
fn code(e: &ElectError) -> i16 {
    match e {
        ElectError::UnknownTopic(_) | ElectError::UnknownPartition(..) => {
            ResponseError::UnknownTopicOrPartition
        }
        ElectError::NotNeeded => ResponseError::ElectionNotNeeded,
        ElectError::PreferredNotAvailable(..) => ResponseError::PreferredLeaderNotAvailable,
        ElectError::EligibleNotAvailable(..) => ResponseError::EligibleLeadersNotAvailable,
    }
    .code()
}

fn failed(partition: i32, code: i16, message: String) -> PartitionResult {
    PartitionResult::default()
        .with_partition_id(partition)
        .with_error_code(code)
        .with_error_message(Some(s(message)))
}

/// Handles ElectLeaders (v0 is always a preferred election). With no
/// partitions named, every partition is tried and, as in Kafka, every
/// topic is listed with only the partitions whose election was needed.
/// Blocks (call off the async workers).
pub fn handle(broker: &Broker, version: i16, req: ElectLeadersRequest) -> ElectLeadersResponse {
    let how = if version == 0 {
        Some(ElectionType::Preferred)
    } else {
        ElectionType::from_code(req.election_type)
    };
    let Some(how) = how else {
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
    };
    let named: Option<Vec<(String, i32)>> = req.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect()
    });
    let decided = match broker
        .topics
        .store()
        .call_applied(&ControllerRequest::Elect {
            how,
            partitions: named.clone(),
        }) {
        Ok(ControllerReply::Elected { results, .. }) => Ok(results),
        Ok(other) => Err(format!("the controller answered {other:?}")),
        Err(e) => Err(e.to_string()),
    };
    let outcome = |r: &Result<(), ElectError>, partition: i32| match r {
        Ok(()) => PartitionResult::default().with_partition_id(partition),
        Err(e) => failed(partition, code(e), e.to_string()),
    };
    let results = match (req.topic_partitions, decided) {
        (Some(topics), decided) => {
            let by_partition: HashMap<(String, i32), Result<(), ElectError>> = decided
                .as_ref()
                .map(|rs| {
                    rs.iter()
                        .map(|(t, p, r)| ((t.clone(), *p), r.clone()))
                        .collect()
                })
                .unwrap_or_default();
            topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(
                            |p| match (&decided, by_partition.get(&(t.topic.0.to_string(), *p))) {
                                (Err(why), _) => {
                                    failed(*p, ResponseError::RequestTimedOut.code(), why.clone())
                                }
                                (Ok(_), Some(r)) => outcome(r, *p),
                                (Ok(_), None) => failed(
                                    *p,
                                    ResponseError::UnknownServerError.code(),
                                    "the controller gave no answer for this partition".into(),
                                ),
                            },
                        )
                        .collect();
                    ReplicaElectionResult::default()
                        .with_topic(t.topic)
                        .with_partition_result(partitions)
                })
                .collect()
        }
        (None, Err(why)) => {
            tracing::warn!(error = %why, "electing every partition failed");
            return ElectLeadersResponse::default()
                .with_error_code(ResponseError::RequestTimedOut.code());
        }
        (None, Ok(rs)) => {
            let mut names: Vec<String> =
                broker.topics.all().iter().map(|t| t.name.clone()).collect();
            names.sort();
            names
                .into_iter()
                .map(|name| {
                    let partitions = rs
                        .iter()
                        .filter(|(t, _, r)| *t == name && *r != Err(ElectError::NotNeeded))
                        .map(|(_, p, r)| outcome(r, *p))
                        .collect();
                    ReplicaElectionResult::default()
                        .with_topic(TopicName(s(name)))
                        .with_partition_result(partitions)
                })
                .collect()
        }
    };
    ElectLeadersResponse::default().with_replica_election_results(results)
}
