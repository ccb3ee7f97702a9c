//! ConsumerGroupHeartbeat (KIP-848): members join, leave and reconcile by
//! heartbeat; the assignment itself is computed in [`super::consumer`].

use crate::net::log::Escaped;
use std::collections::BTreeMap;
use std::time::Instant;

use kafka_protocol::error::ResponseError;

use super::consumer;
use super::state::{Group, GroupState};
use super::store::Entry;
use super::{code, now_ms, GroupCoordinator};

/// A ConsumerGroupHeartbeat request (KIP-848), decoupled from the wire.
#[derive(Debug, Clone)]
pub struct ConsumerHeartbeat {
    /// Group id.
    pub group: String,
    /// Member id ("" on a v0 join).
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member's temporary leave, else the current epoch.
    pub member_epoch: i32,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub host: String,
    /// New subscription, `None` when unchanged.
    pub subscribed: Option<Vec<String>>,
    /// Requested assignor, `None` for the default.
    pub assignor: Option<String>,
    /// Partitions the member owns, `None` when unchanged.
    pub owned: Option<Vec<(uuid::Uuid, i32)>>,
}

/// The answer to a ConsumerGroupHeartbeat.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeatReply {
    /// Kafka error code.
    pub error: i16,
    /// Member id.
    pub member_id: String,
    /// Member epoch.
    pub member_epoch: i32,
    /// Heartbeat interval to use.
    pub heartbeat_interval_ms: i32,
    /// New assignment, `None` when unchanged.
    pub assignment: Option<Vec<(uuid::Uuid, Vec<i32>)>>,
}

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat (KIP-848): join, leave, or report and receive assignments.
    pub fn consumer_heartbeat(&self, req: ConsumerHeartbeat) -> ConsumerHeartbeatReply {
        let fail = |e: ResponseError| ConsumerHeartbeatReply {
            error: code(e),
            member_id: req.member_id.clone(),
            member_epoch: -1,
            ..Default::default()
        };
        let assignor = req.assignor.clone().unwrap_or_else(|| "uniform".into());
        if assignor != "uniform" && assignor != "range" {
            return fail(ResponseError::UnsupportedAssignor);
        }
        let mut groups = self.groups.lock();
        let g = groups
            .entry(req.group.clone())
            .or_insert_with(|| Group::new(&req.group, now_ms()));
        if !g.members.is_empty() {
            return fail(ResponseError::GroupIdNotFound);
        }
        let cg = g.consumer.get_or_insert_with(|| consumer::ConsumerGroup {
            assignor: assignor.clone(),
            ..Default::default()
        });
        let now = Instant::now();
        let topics = &self.topics;
        let lookup = |t: &str| topics.get(t).map(|t| (t.id, t.partition_count() as i32));
        let member_id;
        match req.member_epoch {
            0 => {
                let Some(subscribed) = req.subscribed.clone() else {
                    return fail(ResponseError::InvalidRequest);
                };
                member_id = if req.member_id.is_empty() {
                    uuid::Uuid::new_v4().to_string()
                } else {
                    req.member_id.clone()
                };
                // A static member that restarts replaces its old incarnation.
                if let Some(inst) = &req.instance_id {
                    let old: Vec<String> = cg
                        .members
                        .values()
                        .filter(|m| m.instance_id.as_deref() == Some(inst))
                        .map(|m| m.id.clone())
                        .collect();
                    for id in old {
                        cg.members.remove(&id);
                    }
                }
                cg.members.insert(
                    member_id.clone(),
                    consumer::CMember {
                        id: member_id.clone(),
                        instance_id: req.instance_id.clone(),
                        client_id: req.client_id.clone(),
                        host: req.host.clone(),
                        epoch: 0,
                        subscribed,
                        owned: req.owned.clone().unwrap_or_default().into_iter().collect(),
                        target: Default::default(),
                        sent: None,
                        last_seen: now,
                    },
                );
                cg.group_epoch += 1;
                cg.assignor = assignor;
                cg.recompute(lookup);
                g.protocol_type = Some("consumer".into());
                g.state = GroupState::Stable;
                g.empty_since_ms = None;
                tracing::info!(group = %Escaped(&req.group), member = %Escaped(&member_id), epoch = cg.group_epoch, "consumer joined (KIP-848)");
            }
            -1 | -2 => {
                if cg.members.remove(&req.member_id).is_some() {
                    cg.group_epoch += 1;
                    cg.recompute(lookup);
                    tracing::info!(group = %Escaped(&req.group), member = %Escaped(&req.member_id), "consumer left (KIP-848)");
                }
                if cg.members.is_empty() {
                    g.state = GroupState::Empty;
                    g.empty_since_ms = Some(now_ms());
                }
                return ConsumerHeartbeatReply {
                    member_id: req.member_id.clone(),
                    member_epoch: req.member_epoch,
                    heartbeat_interval_ms: self.config.consumer_heartbeat_interval_ms,
                    ..Default::default()
                };
            }
            epoch => {
                let Some(m) = cg.members.get_mut(&req.member_id) else {
                    return fail(ResponseError::UnknownMemberId);
                };
                if epoch != m.epoch {
                    return fail(ResponseError::FencedMemberEpoch);
                }
                m.last_seen = now;
                if let Some(owned) = &req.owned {
                    m.owned = owned.iter().copied().collect();
                }
                let resubscribed = req.subscribed.as_ref().is_some_and(|s| *s != m.subscribed);
                if let Some(s) = &req.subscribed {
                    m.subscribed = s.clone();
                }
                if resubscribed {
                    cg.group_epoch += 1;
                    cg.recompute(lookup);
                }
                member_id = req.member_id.clone();
            }
        }
        let (now_assigned, _) = cg.current_assignment(&member_id);
        let group_epoch = cg.group_epoch;
        let assignor_name = cg.assignor.clone();
        let Some(m) = cg.members.get_mut(&member_id) else {
            return fail(ResponseError::UnknownMemberId);
        };
        // The member reaches the group epoch once it has nothing left to
        // revoke; partitions others still hold arrive later in that epoch.
        if m.owned.is_subset(&m.target) {
            m.epoch = group_epoch;
        }
        let changed = m.sent.as_ref() != Some(&now_assigned);
        let assignment = changed.then(|| {
            let mut by_topic: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
            for (t, p) in &now_assigned {
                by_topic.entry(*t).or_default().push(*p);
            }
            by_topic.into_iter().collect()
        });
        m.sent = Some(now_assigned);
        let reply = ConsumerHeartbeatReply {
            error: 0,
            member_id: member_id.clone(),
            member_epoch: m.epoch,
            heartbeat_interval_ms: self.config.consumer_heartbeat_interval_ms,
            assignment,
        };
        if req.member_epoch == 0 {
            let value = Some(("consumer".to_string(), group_epoch, Some(assignor_name)));
            let _ = self.persist(
                &req.group,
                &[Entry::Group {
                    group: req.group.clone(),
                    value,
                }],
            );
        }
        reply
    }
}
