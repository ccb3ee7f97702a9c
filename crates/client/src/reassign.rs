//! Partition reassignment, as Kafka's Admin does it: start or cancel moves
//! (AlterPartitionReassignments, API key 45) and list the moves in progress
//! (ListPartitionReassignments, API key 46).
//!
//! Kafka's Admin sends both to any broker, which forwards them to the active
//! controller; Strom's brokers forward too, so these go to the connected
//! (bootstrap) broker.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::ClientError;

/// How long the controller may take (below the CLI's 30 s call timeout, so
/// the broker's answer arrives before ours gives up).
const TIMEOUT_MS: i32 = 25_000;

/// One partition's answer to AlterPartitionReassignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentOutcome {
    /// Topic.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Kafka error code, 0 when the move was started (or cancelled).
    pub error_code: i16,
    /// The broker's message, if it sent one.
    pub error_message: Option<String>,
}

impl ReassignmentOutcome {
    /// A readable description of the error, `None` on success.
    pub fn error(&self) -> Option<String> {
        (self.error_code != 0)
            .then(|| readable_error(self.error_code, self.error_message.as_deref()))
    }
}

/// A reassignment in progress, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReassignment {
    /// Topic.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The replica set during the move (old and new replicas together).
    pub replicas: Vec<i32>,
    /// Replicas being added (catching up).
    pub adding_replicas: Vec<i32>,
    /// Replicas to be removed once the added ones are in sync.
    pub removing_replicas: Vec<i32>,
}

impl Admin {
    /// Starts moving each `(topic, partition, Some(replicas))` to those
    /// replicas (the first is the preferred leader) and cancels the move of
    /// each `(topic, partition, None)`. A top-level error (not the
    /// controller, not authorized, ...) is an `Err`; per-partition errors
    /// are in the outcomes, one per partition asked, in topic then partition order.
    pub async fn alter_partition_reassignments(
        &mut self,
        partitions: &[(String, i32, Option<Vec<i32>>)],
    ) -> Result<Vec<ReassignmentOutcome>, ClientError> {
        let req = alter_request(partitions)?;
        let (_, r): (i16, AlterPartitionReassignmentsResponse) = self
            .conn
            .call(ApiKey::AlterPartitionReassignments, &req)
            .await?;
        alter_outcomes(partitions, r)
    }

    /// The reassignments in progress: of every partition (`None`) or of the
    /// named ones (those not being moved are left out of the answer).
    pub async fn list_partition_reassignments(
        &mut self,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<PartitionReassignment>, ClientError> {
        let req = list_request(partitions);
        let (_, r): (i16, ListPartitionReassignmentsResponse) = self
            .conn
            .call(ApiKey::ListPartitionReassignments, &req)
            .await?;
        list_result(r)
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The AlterPartitionReassignments request for `partitions`, grouped by
/// topic. A partition named twice is refused (the broker would apply one
/// of them, and which is not defined).
pub(crate) fn alter_request(
    partitions: &[(String, i32, Option<Vec<i32>>)],
) -> Result<AlterPartitionReassignmentsRequest, ClientError> {
    let mut by_topic: BTreeMap<&str, BTreeMap<i32, &Option<Vec<i32>>>> = BTreeMap::new();
    for (topic, partition, replicas) in partitions {
        if by_topic
            .entry(topic)
            .or_default()
            .insert(*partition, replicas)
            .is_some()
        {
            return Err(ClientError::Config(format!(
                "partition {topic}-{partition} is listed more than once"
            )));
        }
    }
    let topics =
        by_topic
            .into_iter()
            .map(|(topic, parts)| {
                alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, replicas)| {
                            alter_partition_reassignments_request::ReassignablePartition::default()
                                .with_partition_index(p)
                                .with_replicas(replicas.as_ref().map(|rs| {
                                    rs.iter().copied().map(BrokerId).collect()
                                }))
                        })
                        .collect(),
                )
            })
            .collect();
    // allow_replication_factor_change (v1, KIP-860) stays true, the
    // default: a move may change the replica count, as with Kafka's tool.
    Ok(AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(TIMEOUT_MS)
        .with_topics(topics))
}

/// One outcome per partition asked; a partition the broker did not answer
/// for gets UNKNOWN_SERVER_ERROR with a message saying so.
pub(crate) fn alter_outcomes(
    asked: &[(String, i32, Option<Vec<i32>>)],
    r: AlterPartitionReassignmentsResponse,
) -> Result<Vec<ReassignmentOutcome>, ClientError> {
    check_top_level(
        r.error_code,
        r.error_message.as_deref(),
        "altering partition reassignments",
    )?;
    let mut answered: BTreeMap<(String, i32), ReassignmentOutcome> = BTreeMap::new();
    for t in r.responses {
        let topic = t.name.0.to_string();
        for p in t.partitions {
            answered.insert(
                (topic.clone(), p.partition_index),
                ReassignmentOutcome {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    error_code: p.error_code,
                    error_message: p.error_message.map(|m| m.to_string()),
                },
            );
        }
    }
    let wanted: BTreeSet<(String, i32)> = asked.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    Ok(wanted
        .into_iter()
        .map(|key| {
            answered
                .remove(&key)
                .unwrap_or_else(|| ReassignmentOutcome {
                    topic: key.0.clone(),
                    partition: key.1,
                    error_code: ResponseError::UnknownServerError.code(),
                    error_message: Some(
                        "the broker's response did not mention this partition".into(),
                    ),
                })
        })
        .collect())
}

/// The ListPartitionReassignments request: every partition, or the named ones.
pub(crate) fn list_request(
    partitions: Option<&[(String, i32)]>,
) -> ListPartitionReassignmentsRequest {
    let topics = partitions.map(|ps| {
        let mut by_topic: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
        for (t, p) in ps {
            by_topic.entry(t).or_default().insert(*p);
        }
        by_topic
            .into_iter()
            .map(|(t, parts)| {
                list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                    .with_name(TopicName(s(t)))
                    .with_partition_indexes(parts.into_iter().collect())
            })
            .collect()
    });
    ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(TIMEOUT_MS)
        .with_topics(topics)
}

/// The reassignments of a ListPartitionReassignments response, in topic
/// then partition order.
pub(crate) fn list_result(
    r: ListPartitionReassignmentsResponse,
) -> Result<Vec<PartitionReassignment>, ClientError> {
    check_top_level(
        r.error_code,
        r.error_message.as_deref(),
        "listing partition reassignments",
    )?;
    let ids = |v: Vec<BrokerId>| v.into_iter().map(|b| b.0).collect::<Vec<i32>>();
    let mut out: Vec<PartitionReassignment> = r
        .topics
        .into_iter()
        .flat_map(|t| {
            let topic = t.name.0.to_string();
            t.partitions
                .into_iter()
                .map(move |p| PartitionReassignment {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    replicas: ids(p.replicas),
                    adding_replicas: ids(p.adding_replicas),
                    removing_replicas: ids(p.removing_replicas),
                })
        })
        .collect();
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

/// A top-level error code as a [`ClientError::Kafka`] whose context says
/// what it means (and what the broker said).
fn check_top_level(code: i16, message: Option<&str>, what: &str) -> Result<(), ClientError> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(error) => Err(ClientError::Kafka {
            context: format!("{what}: {}", readable_error(code, message)),
            error,
        }),
    }
}

/// The error as a sentence: the broker's message when it sent one, else
/// what Kafka's `Errors` says about the code, with the code's name.
pub(crate) fn readable_error(code: i16, message: Option<&str>) -> String {
    let name = error_name(code);
    match message.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => format!("{m} ({name})"),
        None => match description(code) {
            Some(d) => format!("{d} ({name})"),
            None => name,
        },
    }
}

/// Kafka's name of an error code (`NO_REASSIGNMENT_IN_PROGRESS`).
fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".into(),
        Some(ResponseError::Unknown(c)) => format!("error code {c}"),
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}

/// What Kafka's `Errors.java` says about the codes these two APIs return.
fn description(code: i16) -> Option<&'static str> {
    let e = ResponseError::try_from_code(code)?;
    Some(match e {
        ResponseError::UnknownServerError => {
            "The server experienced an unexpected error when processing the request."
        }
        ResponseError::UnknownTopicOrPartition => "This server does not host this topic-partition.",
        ResponseError::RequestTimedOut => "The request timed out.",
        ResponseError::ClusterAuthorizationFailed => "Cluster authorization failed.",
        ResponseError::TopicAuthorizationFailed => "Topic authorization failed.",
        ResponseError::InvalidReplicationFactor => "Replication factor is below 1 or larger than the number of available brokers.",
        ResponseError::InvalidReplicaAssignment => "Replica assignment is invalid.",
        ResponseError::NotController => "This is not the correct controller for this cluster.",
        ResponseError::InvalidRequest => "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker.",
        ResponseError::UnsupportedVersion => "The version of API is not supported.",
        ResponseError::PolicyViolation => "Request parameters do not satisfy the configured policy.",
        ResponseError::ReassignmentInProgress => "A partition reassignment is in progress.",
        ResponseError::NoReassignmentInProgress => "No partition reassignment is in progress.",
        ResponseError::BrokerNotAvailable => "The broker is not available.",
        ResponseError::NotLeaderOrFollower => "For requests intended only for the leader, this error indicates that the broker is not the current leader.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(t: &str, p: i32, r: Option<&[i32]>) -> (String, i32, Option<Vec<i32>>) {
        (t.to_string(), p, r.map(<[i32]>::to_vec))
    }

    #[test]
    fn alter_request_groups_by_topic_and_keeps_cancels_null() {
        let req = alter_request(&[
            part("b", 1, Some(&[4, 5])),
            part("a", 0, None),
            part("b", 0, Some(&[3])),
        ])
        .expect("request");
        assert_eq!(req.timeout_ms, TIMEOUT_MS);
        assert!(req.allow_replication_factor_change);
        let names: Vec<String> = req.topics.iter().map(|t| t.name.0.to_string()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(req.topics[0].partitions[0].replicas, None);
        let b: Vec<(i32, Option<Vec<i32>>)> = req.topics[1]
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                )
            })
            .collect();
        assert_eq!(b, [(0, Some(vec![3])), (1, Some(vec![4, 5]))]);
    }

    #[test]
    fn alter_request_refuses_a_partition_twice() {
        let err =
            alter_request(&[part("t", 0, Some(&[1])), part("t", 0, None)]).expect_err("duplicate");
        assert!(
            err.to_string().contains("t-0 is listed more than once"),
            "{err}"
        );
    }

    #[test]
    fn alter_request_encodes_at_every_version() {
        let req = alter_request(&[part("t", 0, Some(&[1])), part("t", 1, None)]).expect("request");
        for v in 0..=1 {
            let mut buf = bytes::BytesMut::new();
            kafka_protocol::protocol::Encodable::encode(&req, &mut buf, v).expect("encode");
        }
    }

    fn alter_response(
        top: i16,
        parts: &[(&str, i32, i16, Option<&str>)],
    ) -> AlterPartitionReassignmentsResponse {
        let mut topics: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for (t, p, code, msg) in parts {
            topics.entry(t).or_default().push(
                alter_partition_reassignments_response::ReassignablePartitionResponse::default()
                    .with_partition_index(*p)
                    .with_error_code(*code)
                    .with_error_message(msg.map(s)),
            );
        }
        AlterPartitionReassignmentsResponse::default()
            .with_error_code(top)
            .with_responses(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        alter_partition_reassignments_response::ReassignableTopicResponse::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            )
    }

    #[test]
    fn alter_outcomes_are_per_partition_and_readable() {
        let asked = [
            part("t", 0, Some(&[4])),
            part("t", 1, None),
            part("t", 2, Some(&[9])),
        ];
        let r = alter_response(0, &[("t", 0, 0, None), ("t", 1, 85, None)]);
        let out = alter_outcomes(&asked, r).expect("outcomes");
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].error(), None);
        assert_eq!(
            out[1].error().as_deref(),
            Some("No partition reassignment is in progress. (NO_REASSIGNMENT_IN_PROGRESS)")
        );
        // Not answered for: an error, not a silent success.
        assert_eq!(out[2].partition, 2);
        assert_eq!(out[2].error_code, -1);
        assert!(out[2].error().expect("error").contains("did not mention"));
    }

    #[test]
    fn alter_outcomes_keep_the_brokers_message() {
        let asked = [part("t", 0, Some(&[7]))];
        let r = alter_response(0, &[("t", 0, 39, Some("broker 7 is not registered"))]);
        let out = alter_outcomes(&asked, r).expect("outcomes");
        assert_eq!(
            out[0].error().as_deref(),
            Some("broker 7 is not registered (INVALID_REPLICA_ASSIGNMENT)")
        );
    }

    #[test]
    fn top_level_error_is_an_err() {
        let asked = [part("t", 0, Some(&[4]))];
        let err = alter_outcomes(&asked, alter_response(31, &[])).expect_err("top level");
        assert_eq!(
            err.to_string(),
            "altering partition reassignments: Cluster authorization failed. \
             (CLUSTER_AUTHORIZATION_FAILED): ClusterAuthorizationFailed"
        );
        let err = list_result(ListPartitionReassignmentsResponse::default().with_error_code(41))
            .expect_err("top level");
        assert!(
            err.to_string()
                .starts_with("listing partition reassignments: This is not the correct controller"),
            "{err}"
        );
    }

    #[test]
    fn list_request_all_or_named() {
        assert_eq!(list_request(None).topics, None);
        let named = [
            ("b".to_string(), 2),
            ("a".to_string(), 1),
            ("b".to_string(), 0),
        ];
        let topics = list_request(Some(&named)).topics.expect("topics");
        let got: Vec<(String, Vec<i32>)> = topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect();
        assert_eq!(
            got,
            [("a".to_string(), vec![1]), ("b".to_string(), vec![0, 2])]
        );
    }

    #[test]
    fn list_result_is_sorted() {
        let p = |i: i32, r: &[i32], a: &[i32], rm: &[i32]| {
            let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect();
            list_partition_reassignments_response::OngoingPartitionReassignment::default()
                .with_partition_index(i)
                .with_replicas(ids(r))
                .with_adding_replicas(ids(a))
                .with_removing_replicas(ids(rm))
        };
        let r = ListPartitionReassignmentsResponse::default().with_topics(vec![
            list_partition_reassignments_response::OngoingTopicReassignment::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![p(3, &[1, 4], &[4], &[1]), p(0, &[2], &[], &[])]),
        ]);
        let out = list_result(r).expect("list");
        assert_eq!(out[0].partition, 0);
        assert_eq!(
            out[1],
            PartitionReassignment {
                topic: "t".into(),
                partition: 3,
                replicas: vec![1, 4],
                adding_replicas: vec![4],
                removing_replicas: vec![1],
            }
        );
    }

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(85), "NO_REASSIGNMENT_IN_PROGRESS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(readable_error(9999, None), "error code 9999");
    }

    /// Reads one request frame: its header and body.
    async fn read_request(sock: &mut tokio::net::TcpStream) -> (RequestHeader, bytes::Bytes) {
        use kafka_protocol::protocol::Decodable;
        use tokio::io::AsyncReadExt;
        let mut len = [0u8; 4];
        sock.read_exact(&mut len).await.expect("length");
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        sock.read_exact(&mut buf).await.expect("body");
        let mut body = bytes::Bytes::from(buf);
        let header = RequestHeader::decode(&mut body, 2).expect("header");
        (header, body)
    }

    /// Writes one response frame.
    async fn write_response<R: kafka_protocol::protocol::Encodable>(
        sock: &mut tokio::net::TcpStream,
        correlation_id: i32,
        header_version: i16,
        version: i16,
        resp: &R,
    ) {
        use kafka_protocol::protocol::Encodable;
        use tokio::io::AsyncWriteExt;
        let mut out = bytes::BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut out, header_version)
            .expect("header");
        resp.encode(&mut out, version).expect("body");
        sock.write_all(&(out.len() as i32).to_be_bytes())
            .await
            .expect("write");
        sock.write_all(&out).await.expect("write");
    }

    /// Over a socket to a scripted broker: the request arrives as Kafka's
    /// spec encodes it and the answer comes back per partition.
    #[tokio::test]
    async fn round_trip_against_a_scripted_broker() {
        use kafka_protocol::protocol::Decodable;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let broker = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let (h, _) = read_request(&mut sock).await;
            let key = |k: ApiKey, max: i16| {
                api_versions_response::ApiVersion::default()
                    .with_api_key(k as i16)
                    .with_min_version(0)
                    .with_max_version(max)
            };
            let versions = ApiVersionsResponse::default().with_api_keys(vec![
                key(ApiKey::ApiVersions, 3),
                key(ApiKey::AlterPartitionReassignments, 1),
                key(ApiKey::ListPartitionReassignments, 0),
            ]);
            write_response(&mut sock, h.correlation_id, 0, 3, &versions).await;

            let (h, mut body) = read_request(&mut sock).await;
            assert_eq!(
                h.request_api_key,
                ApiKey::AlterPartitionReassignments as i16
            );
            assert_eq!(h.request_api_version, 1);
            let req = AlterPartitionReassignmentsRequest::decode(&mut body, 1).expect("decode");
            let t = &req.topics[0];
            assert_eq!(t.name.0.as_str(), "t");
            assert_eq!(
                t.partitions[0].replicas,
                Some(vec![BrokerId(4), BrokerId(5)])
            );
            assert_eq!(t.partitions[1].replicas, None);
            let resp = alter_response(0, &[("t", 0, 0, None), ("t", 1, 85, None)]);
            write_response(&mut sock, h.correlation_id, 1, 1, &resp).await;

            let (h, mut body) = read_request(&mut sock).await;
            assert_eq!(h.request_api_key, ApiKey::ListPartitionReassignments as i16);
            let req = ListPartitionReassignmentsRequest::decode(&mut body, 0).expect("decode");
            assert_eq!(req.topics, None);
            let resp = ListPartitionReassignmentsResponse::default().with_topics(vec![
                list_partition_reassignments_response::OngoingTopicReassignment::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        list_partition_reassignments_response::OngoingPartitionReassignment::default()
                            .with_partition_index(0)
                            .with_replicas(vec![BrokerId(1), BrokerId(4), BrokerId(5)])
                            .with_adding_replicas(vec![BrokerId(4), BrokerId(5)])
                            .with_removing_replicas(vec![BrokerId(1)]),
                    ]),
            ]);
            write_response(&mut sock, h.correlation_id, 1, 0, &resp).await;
        });
        let mut admin = Admin::connect(&addr, std::time::Duration::from_secs(5))
            .await
            .expect("connect");
        let out = admin
            .alter_partition_reassignments(&[part("t", 0, Some(&[4, 5])), part("t", 1, None)])
            .await
            .expect("alter");
        assert_eq!(out[0].error(), None);
        assert_eq!(out[1].error_code, 85);
        let list = admin
            .list_partition_reassignments(None)
            .await
            .expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].adding_replicas, [4, 5]);
        assert_eq!(list[0].removing_replicas, [1]);
        broker.await.expect("broker");
    }
}
