//! Admin calls: groups, offsets, topic partitions (transactions are in
//! `transactions.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::connection::Connection;
use crate::error::ClientError;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type ("consumer", "connect", "" for offset-only groups).
    pub protocol_type: String,
    /// State name (Stable, Empty, ...).
    pub state: String,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub host: String,
    /// Assigned (topic, partition)s, decoded from the consumer protocol.
    pub partitions: Vec<(String, i32)>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// State name.
    pub state: String,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen assignor.
    pub protocol: String,
    /// Members.
    pub members: Vec<GroupMember>,
}

/// An admin client over one connection (Strom is single-node for now, so
/// the bootstrap broker is the coordinator and leader of everything).
#[derive(Debug)]
pub struct Admin {
    pub(crate) conn: Connection,
}

impl Admin {
    /// Connects to `bootstrap` (first of a comma-separated list that answers).
    pub async fn connect(bootstrap: &str, timeout: Duration) -> Result<Admin, ClientError> {
        let mut last = None;
        for addr in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match Connection::connect(addr, "strom-cli", timeout).await {
                Ok(conn) => return Ok(Admin { conn }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClientError::Protocol("no bootstrap server given".into())))
    }

    /// Every group.
    pub async fn list_groups(&mut self) -> Result<Vec<GroupListing>, ClientError> {
        let (_, r): (i16, ListGroupsResponse) = self
            .conn
            .call(ApiKey::ListGroups, &ListGroupsRequest::default())
            .await?;
        ClientError::check(r.error_code, "listing groups")?;
        Ok(r.groups
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            })
            .collect())
    }

    /// One group's state and members, as Kafka's Admin does it: a KIP-848
    /// group through ConsumerGroupDescribe (when the broker serves it),
    /// any other through DescribeGroups. An unknown group is Dead.
    pub async fn describe_group(&mut self, group: &str) -> Result<GroupDescription, ClientError> {
        if self.conn.version(ApiKey::ConsumerGroupDescribe).is_ok() {
            if let Some(d) = self.describe_consumer_group(group).await? {
                return Ok(d);
            }
        }
        let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
        let (_, r): (i16, DescribeGroupsResponse) =
            self.conn.call(ApiKey::DescribeGroups, &req).await?;
        let g = r
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol("empty DescribeGroups response".into()))?;
        if g.error_code == kafka_protocol::error::ResponseError::GroupIdNotFound.code() {
            // DescribeGroups v6+ (KIP-1043); older versions answer Dead.
            return Ok(GroupDescription {
                state: "Dead".into(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            });
        }
        ClientError::check(g.error_code, format!("describing group {group}"))?;
        let consumer = g.protocol_type.as_str() == "consumer";
        let members = g
            .members
            .into_iter()
            .map(|m| {
                let partitions = if consumer {
                    crate::consumer::decode_assignment(&m.member_assignment)
                } else {
                    Vec::new()
                };
                GroupMember {
                    member_id: m.member_id.to_string(),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    partitions,
                }
            })
            .collect();
        Ok(GroupDescription {
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members,
        })
    }

    /// ConsumerGroupDescribe of one group; `None` when it is not a KIP-848
    /// group (GROUP_ID_NOT_FOUND: unknown, or a classic group).
    async fn describe_consumer_group(
        &mut self,
        group: &str,
    ) -> Result<Option<GroupDescription>, ClientError> {
        let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
        let (_, r): (i16, ConsumerGroupDescribeResponse) =
            self.conn.call(ApiKey::ConsumerGroupDescribe, &req).await?;
        let g =
            r.groups.into_iter().next().ok_or_else(|| {
                ClientError::Protocol("empty ConsumerGroupDescribe response".into())
            })?;
        if g.error_code == kafka_protocol::error::ResponseError::GroupIdNotFound.code() {
            return Ok(None);
        }
        ClientError::check(g.error_code, format!("describing group {group}"))?;
        let members = g
            .members
            .into_iter()
            .map(|m| GroupMember {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                partitions: m
                    .assignment
                    .topic_partitions
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(|p| (t.topic_name.0.to_string(), *p))
                    })
                    .collect(),
            })
            .collect();
        Ok(Some(GroupDescription {
            state: g.group_state.to_string(),
            protocol_type: "consumer".into(),
            protocol: g.assignor_name.to_string(),
            members,
        }))
    }

    /// Committed offsets of a group: (topic, partition) → offset.
    pub async fn committed(
        &mut self,
        group: &str,
    ) -> Result<BTreeMap<(String, i32), i64>, ClientError> {
        let v = self.conn.version(ApiKey::OffsetFetch)?;
        let req = if v >= 8 {
            OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s(group)))
                    .with_topics(None),
            ])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(None)
        };
        let r: OffsetFetchResponse = self.conn.call_at(ApiKey::OffsetFetch, v, &req).await?;
        let mut out = BTreeMap::new();
        if v >= 8 {
            for g in r.groups {
                ClientError::check(g.error_code, format!("fetching offsets of {group}"))?;
                for t in g.topics {
                    for p in t.partitions {
                        if p.committed_offset >= 0 {
                            out.insert(
                                (t.name.0.to_string(), p.partition_index),
                                p.committed_offset,
                            );
                        }
                    }
                }
            }
        } else {
            ClientError::check(r.error_code, format!("fetching offsets of {group}"))?;
            for t in r.topics {
                for p in t.partitions {
                    if p.committed_offset >= 0 {
                        out.insert(
                            (t.name.0.to_string(), p.partition_index),
                            p.committed_offset,
                        );
                    }
                }
            }
        }
        Ok(out)
    }

    /// Number of partitions of a topic.
    pub async fn partitions(&mut self, topic: &str) -> Result<i32, ClientError> {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(s(topic))))]))
            .with_allow_auto_topic_creation(false);
        let (_, r): (i16, MetadataResponse) = self.conn.call(ApiKey::Metadata, &req).await?;
        let t = r
            .topics
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol("empty Metadata response".into()))?;
        ClientError::check(t.error_code, format!("topic {topic}"))?;
        Ok(t.partitions.len() as i32)
    }

    /// Offsets by ListOffsets spec (-1 latest, -2 earliest, or a timestamp) for each partition.
    pub async fn list_offsets(
        &mut self,
        partitions: &[(String, i32)],
        spec: i64,
    ) -> Result<BTreeMap<(String, i32), i64>, ClientError> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            by_topic.entry(t.as_str()).or_default().push(*p);
        }
        let topics = by_topic
            .iter()
            .map(|(t, ps)| {
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(s(t)))
                    .with_partitions(
                        ps.iter()
                            .map(|p| {
                                list_offsets_request::ListOffsetsPartition::default()
                                    .with_partition_index(*p)
                                    .with_timestamp(spec)
                            })
                            .collect(),
                    )
            })
            .collect();
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(topics);
        let (_, r): (i16, ListOffsetsResponse) = self.conn.call(ApiKey::ListOffsets, &req).await?;
        let mut out = BTreeMap::new();
        for t in r.topics {
            for p in t.partitions {
                ClientError::check(
                    p.error_code,
                    format!("offsets of {}-{}", t.name.0.as_str(), p.partition_index),
                )?;
                out.insert((t.name.0.to_string(), p.partition_index), p.offset);
            }
        }
        Ok(out)
    }

    /// Commits offsets for a group that has no active members (admin commit).
    pub async fn commit(
        &mut self,
        group: &str,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), ClientError> {
        let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for ((t, p), o) in offsets {
            by_topic.entry(t.as_str()).or_default().push((*p, *o));
        }
        let topics = by_topic
            .iter()
            .map(|(t, ps)| {
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(t)))
                    .with_partitions(
                        ps.iter()
                            .map(|(p, o)| {
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(*o)
                            })
                            .collect(),
                    )
            })
            .collect();
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(topics);
        let (_, r): (i16, OffsetCommitResponse) =
            self.conn.call(ApiKey::OffsetCommit, &req).await?;
        for t in r.topics {
            for p in t.partitions {
                ClientError::check(
                    p.error_code,
                    format!(
                        "committing {}-{} for group {group}",
                        t.name.0.as_str(),
                        p.partition_index
                    ),
                )?;
            }
        }
        Ok(())
    }

    /// Deletes an empty group.
    pub async fn delete_group(&mut self, group: &str) -> Result<(), ClientError> {
        let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]);
        let (_, r): (i16, DeleteGroupsResponse) =
            self.conn.call(ApiKey::DeleteGroups, &req).await?;
        for g in r.results {
            ClientError::check(g.error_code, format!("deleting group {group}"))?;
        }
        Ok(())
    }
}
