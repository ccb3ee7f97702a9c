//! ListGroups, DescribeGroups and DeleteGroups.

use crate::net::log::Escaped;
use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::state::GroupState;
use super::store::Entry;
use super::{code, state_name, GroupCoordinator};

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct Described {
    /// State name.
    pub state: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen protocol.
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment).
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

impl GroupCoordinator {
    /// ListGroups: (group id, protocol type, state, group type "classic" or "consumer"), filtered by state names.
    pub fn list(&self, states: &[String]) -> Vec<(String, String, &'static str, &'static str)> {
        let groups = self.groups.lock();
        let mut v: Vec<_> = groups
            .values()
            .filter(|g| {
                states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(state_name(g)))
            })
            .map(|g| {
                let kind = if g.consumer.is_some() {
                    "consumer"
                } else {
                    "classic"
                };
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    state_name(g),
                    kind,
                )
            })
            .collect();
        v.sort();
        v
    }

    /// DescribeGroups for one group (`None`: unknown, reported as Dead).
    pub fn describe(&self, group: &str) -> Option<Described> {
        let groups = self.groups.lock();
        let g = groups.get(group)?;
        let proto = g.protocol.clone().unwrap_or_default();
        let show_protocol = matches!(
            g.state,
            GroupState::Stable | GroupState::CompletingRebalance
        );
        if let Some(cg) = g.consumer.as_ref().filter(|c| !c.members.is_empty()) {
            let members = cg
                .members
                .values()
                .map(|m| {
                    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for (id, p) in m.sent.iter().flatten() {
                        if let Some(t) = self.topics.get_by_id(*id) {
                            by_topic.entry(t.name.clone()).or_default().push(*p);
                        }
                    }
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.host.clone(),
                        Bytes::new(),
                        encode_assignment(by_topic),
                    )
                })
                .collect();
            return Some(Described {
                state: cg.state(),
                protocol_type: "consumer".into(),
                protocol: cg.assignor.clone(),
                members,
            });
        }
        Some(Described {
            state: state_name(g),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if show_protocol {
                proto.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .iter()
                .map(|m| {
                    let meta = m.metadata(&proto).cloned().unwrap_or_default();
                    let assignment = if g.state == GroupState::Stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    };
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        meta,
                        assignment,
                    )
                })
                .collect(),
        })
    }

    /// DeleteGroups for one group.
    pub fn delete(&self, group: &str) -> i16 {
        let mut groups = self.groups.lock();
        let Some(g) = groups.get(group) else {
            return code(ResponseError::GroupIdNotFound);
        };
        let consumer_members = g.consumer.as_ref().map_or(0, |c| c.members.len());
        if !g.members.is_empty() || consumer_members > 0 || g.state != GroupState::Empty {
            return code(ResponseError::NonEmptyGroup);
        }
        let mut entries: Vec<Entry> = g
            .offsets
            .keys()
            .map(|(t, p)| Entry::Offset {
                group: group.to_string(),
                topic: t.clone(),
                partition: *p,
                value: None,
            })
            .collect();
        entries.push(Entry::Group {
            group: group.to_string(),
            value: None,
        });
        if let Err(e) = self.persist(group, &entries) {
            return e;
        }
        groups.remove(group);
        tracing::info!(group = %Escaped(group), "deleted group");
        0
    }
}

/// A consumer-protocol assignment (v0) as classic DescribeGroups carries it.
pub(super) fn encode_assignment(by_topic: BTreeMap<String, Vec<i32>>) -> Bytes {
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::Encodable;
    let a = kafka_protocol::messages::ConsumerProtocolAssignment::default()
        .with_assigned_partitions(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    TopicPartition::default()
                        .with_topic(kafka_protocol::messages::TopicName(
                            kafka_protocol::protocol::StrBytes::from_string(t),
                        ))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let mut out = bytes::BytesMut::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    if a.encode(&mut out, 0).is_err() {
        return Bytes::new();
    }
    out.freeze()
}
