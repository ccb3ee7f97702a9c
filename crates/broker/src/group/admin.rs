//! ListGroups, DescribeGroups and DeleteGroups.

use crate::net::log::Escaped;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::consumer_describe::DescribeError;
use super::state::{Group, GroupState};
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
        let mut v: Vec<_> = self
            .groups
            .all()
            .iter()
            .filter_map(|shared| {
                let g = shared.lock();
                let wanted = g.state != GroupState::Dead
                    && (states.is_empty()
                        || states
                            .iter()
                            .any(|s| s.eq_ignore_ascii_case(state_name(&g))));
                let kind = if g.consumer.is_some() {
                    "consumer"
                } else {
                    "classic"
                };
                wanted.then(|| {
                    (
                        g.id.clone(),
                        g.protocol_type.clone().unwrap_or_default(),
                        state_name(&g),
                        kind,
                    )
                })
            })
            .collect();
        v.sort();
        v
    }

    /// DescribeGroups for one classic group: unknown groups and
    /// consumer-protocol (KIP-848) groups are errors, as in Kafka (which
    /// reports them as Dead before DescribeGroups v6).
    pub fn describe(&self, group: &str) -> Result<Described, DescribeError> {
        self.groups
            .with(group, |g| Self::describe_one(g))
            .unwrap_or_else(|| Err(DescribeError::NotFound(group.to_string())))
    }

    fn describe_one(g: &Group) -> Result<Described, DescribeError> {
        let group = g.id.as_str();
        if g.consumer.is_some() && g.members.is_empty() {
            return Err(DescribeError::NotClassic(group.to_string()));
        }
        // As Kafka: the protocol, metadata and assignments only once Stable.
        let stable = g.state == GroupState::Stable;
        let proto = g.protocol.clone().filter(|_| stable).unwrap_or_default();
        Ok(Described {
            state: state_name(g),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: proto.clone(),
            members: g
                .members
                .iter()
                .map(|m| {
                    let (meta, assignment) = if stable {
                        let meta = m.metadata(&proto).cloned().unwrap_or_default();
                        (meta, m.assignment.clone())
                    } else {
                        (Bytes::new(), Bytes::new())
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
        self.groups
            .with_removing(group, |g| {
                let code = self.delete_one(g);
                (code, code == 0)
            })
            .unwrap_or(code(ResponseError::GroupIdNotFound))
    }

    /// Writes the tombstones of an empty group; 0 when it may go.
    fn delete_one(&self, g: &Group) -> i16 {
        let group = g.id.as_str();
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
        tracing::info!(group = %Escaped(group), "deleted group");
        0
    }
}
